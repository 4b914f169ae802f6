//! The device side of a split virtqueue (virtio 1.x, section 2.7).
//!
//! Guest memory layout for a queue of `size` entries (`size` a power of two,
//! at most 32768), all fields little-endian:
//!
//! ```text
//! descriptor table (align 16): size × { addr u64, len u32, flags u16, next u16 }
//! available ring   (align 2):  flags u16, idx u16, ring[size] u16, used_event u16
//! used ring        (align 4):  flags u16, idx u16, ring[size] { id u32, len u32 }, avail_event u16
//! ```
//!
//! The driver owns the descriptor table and the available ring, the device
//! the used ring. A hostile driver may write anything anywhere at any time,
//! so [`Queue`] reads every guest field exactly once per use, by copy, and
//! validates the copy; nothing it decides depends on reading the same field
//! twice. What it checks, and what happens on failure, is in [`QueueError`].
//!
//! A backend's loop over one queue, with notification suppression:
//!
//! ```text
//! loop {
//!     queue.disable_notification(mem)?;
//!     while let Some(chain) = queue.pop(mem)? {
//!         let len = handle(chain);
//!         queue.add_used(mem, chain.head(), len)?;
//!     }
//!     if !queue.enable_notification(mem)? { break; }   // true: more arrived meanwhile
//! }
//! if queue.needs_notification(mem)? { interrupt the driver }
//! ```

use core::sync::atomic::{fence, Ordering};

use crate::chain::{DescriptorChain, Segment, MAX_CHAIN_SEGMENTS};
use crate::features::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC};
use crate::memory::{GuestMemory, MemoryError};

/// Largest queue size a split virtqueue can have.
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Descriptor flags.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Available ring flag: the driver asks for no used-buffer notifications
/// (only without VIRTIO_F_EVENT_IDX).
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used ring flag: the device asks for no available-buffer notifications
/// (only without VIRTIO_F_EVENT_IDX).
pub const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;

/// Bytes per descriptor, in the descriptor table and in indirect tables.
pub const DESCRIPTOR_SIZE: u64 = 16;
/// Required alignments of the three areas.
pub const DESC_TABLE_ALIGN: u64 = 16;
pub const AVAIL_RING_ALIGN: u64 = 2;
pub const USED_RING_ALIGN: u64 = 4;

/// The event-index test from the virtio spec (and Linux's
/// `vring_need_event`): having moved an index from `old` to `new`, must the
/// other side be notified, given that it asked to hear when `event` is
/// passed? True exactly when `event` lies in `[old, new)` modulo 2^16.
pub fn vring_need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// Where a queue lives in guest memory, as the driver configured it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    pub size: u16,
    /// Descriptor table (`queue_desc`).
    pub desc_table: u64,
    /// Available ring, the "driver area" (`queue_driver`).
    pub avail_ring: u64,
    /// Used ring, the "device area" (`queue_device`).
    pub used_ring: u64,
}

/// Why a queue configuration is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Zero or not a power of two.
    BadSize(u16),
    /// Larger than the device's maximum for this queue.
    SizeAboveMax {
        size: u16,
        max: u16,
    },
    MisalignedDescTable,
    MisalignedAvailRing,
    MisalignedUsedRing,
    /// One of the three areas ends past the top of the address space.
    AddressOverflow,
}

impl QueueConfig {
    pub fn desc_table_len(size: u16) -> u64 {
        DESCRIPTOR_SIZE * u64::from(size)
    }

    /// Including `used_event`.
    pub fn avail_ring_len(size: u16) -> u64 {
        6 + 2 * u64::from(size)
    }

    /// Including `avail_event`.
    pub fn used_ring_len(size: u16) -> u64 {
        6 + 8 * u64::from(size)
    }

    /// Checks the size (a power of two no larger than `max_size`, itself
    /// capped at [`MAX_QUEUE_SIZE`]), the alignments and that no area wraps.
    /// Whether the areas are RAM is left to each access: the driver can
    /// change its memory map (balloon, hotplug) after enabling anyway.
    pub fn validate(&self, max_size: u16) -> Result<(), ConfigError> {
        let size = self.size;
        if size == 0 || !size.is_power_of_two() {
            return Err(ConfigError::BadSize(size));
        }
        let max = max_size.min(MAX_QUEUE_SIZE);
        if size > max {
            return Err(ConfigError::SizeAboveMax { size, max });
        }
        if !self.desc_table.is_multiple_of(DESC_TABLE_ALIGN) {
            return Err(ConfigError::MisalignedDescTable);
        }
        if !self.avail_ring.is_multiple_of(AVAIL_RING_ALIGN) {
            return Err(ConfigError::MisalignedAvailRing);
        }
        if !self.used_ring.is_multiple_of(USED_RING_ALIGN) {
            return Err(ConfigError::MisalignedUsedRing);
        }
        let areas = [
            (self.desc_table, Self::desc_table_len(size)),
            (self.avail_ring, Self::avail_ring_len(size)),
            (self.used_ring, Self::used_ring_len(size)),
        ];
        if areas.iter().any(|&(start, len)| start.checked_add(len).is_none()) {
            return Err(ConfigError::AddressOverflow);
        }
        Ok(())
    }
}

/// The negotiated features that change how a queue works.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueFeatures {
    /// VIRTIO_F_EVENT_IDX: `used_event` / `avail_event` instead of the flags.
    pub event_idx: bool,
    /// VIRTIO_F_INDIRECT_DESC: indirect descriptor tables are allowed.
    pub indirect: bool,
}

impl QueueFeatures {
    /// The queue features in a negotiated feature set.
    pub fn from_negotiated(features: u64) -> Self {
        Self {
            event_idx: features & VIRTIO_F_EVENT_IDX != 0,
            indirect: features & VIRTIO_F_INDIRECT_DESC != 0,
        }
    }
}

/// What went wrong with a queue.
///
/// **Policy.** Every error [`Queue::pop`], [`Queue::add_used`],
/// [`Queue::needs_notification`], [`Queue::enable_notification`] or
/// [`Queue::disable_notification`] returns because of the driver
/// ([`needs_reset`](Self::needs_reset) is true) means the driver broke the
/// ring protocol or made its rings unreachable: the queue marks itself
/// broken, refuses all further work ([`QueueError::Broken`]) and the device
/// must set DEVICE_NEEDS_RESET and send a configuration-change notification
/// ([`crate::pci::VirtioPciFunction::set_needs_reset`]). Nothing else stops:
/// the other devices, the backend, Dom0 and Keel carry on, and a driver
/// reset brings the device back. This is what QEMU's `virtio_error()` does;
/// completing a malformed chain instead would hand a driver (for example
/// Linux's virtio-blk) a request whose status byte was never written.
///
/// Problems with the *contents* of a well-formed chain (a buffer outside
/// RAM, a request too short, an unknown request type, a sector out of
/// range) are not queue errors: they fail that request only, in the device
/// model (see [`crate::blk`]), and the chain is completed normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// An earlier error broke this queue; it does nothing until the device
    /// is reset (the queue is then rebuilt).
    Broken,
    /// `avail.idx` moved more than the queue size past the last chain the
    /// device took (or backwards): the driver published entries it cannot
    /// have, and nothing in the ring can be trusted.
    AvailIdxJump { next_avail: u16, avail_idx: u16 },
    /// An available ring entry or a `next` field names a descriptor past the
    /// end of its table (the queue size, or an indirect table's length).
    IndexOutOfRange { index: u16 },
    /// The chain visits more descriptors than its table holds: a loop.
    ChainTooLong,
    /// The chain has more segments than the queue accepts.
    TooManySegments,
    /// The chain describes more than `u32::MAX` bytes (the spec's limit is 2^32).
    ChainTooLarge,
    /// VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated.
    IndirectNotNegotiated,
    /// VIRTQ_DESC_F_INDIRECT inside an indirect table.
    IndirectInIndirect,
    /// VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT.
    IndirectWithNext,
    /// An indirect table whose length is 0, not a multiple of 16 or larger
    /// than [`MAX_QUEUE_SIZE`] descriptors.
    BadIndirectLength { len: u32 },
    /// A device-readable descriptor after a device-writable one.
    ReadableAfterWritable,
    /// A buffer or indirect table whose end overflows 64 bits.
    AddressOverflow,
    /// A ring or descriptor table access failed.
    Memory(MemoryError),
    /// [`Queue::add_used`] for a head the device does not hold (a backend
    /// bug, not the driver's: the queue stays usable).
    NotInFlight { head: u16 },
}

impl QueueError {
    /// Whether the device must now be marked DEVICE_NEEDS_RESET: true for
    /// every error the driver can cause.
    pub fn needs_reset(&self) -> bool {
        !matches!(self, Self::Broken | Self::NotInFlight { .. })
    }
}

impl From<MemoryError> for QueueError {
    fn from(error: MemoryError) -> Self {
        Self::Memory(error)
    }
}

/// One descriptor as copied out of guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Descriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

fn read_descriptor<M: GuestMemory + ?Sized>(memory: &M, gpa: u64) -> Result<Descriptor, MemoryError> {
    let mut bytes = [0u8; DESCRIPTOR_SIZE as usize];
    memory.read(gpa, &mut bytes)?;
    let [a0, a1, a2, a3, a4, a5, a6, a7, l0, l1, l2, l3, f0, f1, n0, n1] = bytes;
    Ok(Descriptor {
        addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        len: u32::from_le_bytes([l0, l1, l2, l3]),
        flags: u16::from_le_bytes([f0, f1]),
        next: u16::from_le_bytes([n0, n1]),
    })
}

/// Why [`Queue::resume`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeError {
    Config(ConfigError),
    /// The used ring cannot be read.
    Queue(QueueError),
}

/// The device's view of one split virtqueue, built when the driver enables
/// the queue and dropped on device reset. It holds only indices and the
/// configuration, never a reference into guest memory.
#[derive(Clone, Debug)]
pub struct Queue {
    config: QueueConfig,
    features: QueueFeatures,
    max_segments: usize,
    /// Index (free-running, mod 2^16) of the next available ring entry to take.
    next_avail: u16,
    /// Last `avail.idx` read; `next_avail..avail_shadow` are known to be published.
    avail_shadow: u16,
    /// Index of the next used ring entry to fill (what `used.idx` says).
    next_used: u16,
    /// Chains taken and not yet returned.
    in_flight: u32,
    /// `used.idx` when the driver was last considered for a notification.
    signalled_used: u16,
    /// Entries added since then (saturating).
    unsignalled: u32,
    broken: bool,
}

impl Queue {
    /// A queue over `config` (validated against `max_size`), taking chains
    /// of at most `max_segments` segments (capped at [`MAX_CHAIN_SEGMENTS`]).
    pub fn new(
        config: QueueConfig,
        max_size: u16,
        features: QueueFeatures,
        max_segments: usize,
    ) -> Result<Self, ConfigError> {
        config.validate(max_size)?;
        Ok(Self {
            config,
            features,
            max_segments: max_segments.clamp(1, MAX_CHAIN_SEGMENTS),
            next_avail: 0,
            avail_shadow: 0,
            next_used: 0,
            in_flight: 0,
            signalled_used: 0,
            unsignalled: 0,
            broken: false,
        })
    }

    /// A queue a device takes over from another device instance that
    /// served it and went away (a Dom0 backend that died and was
    /// restarted): it continues from the `used.idx` in guest memory, as a
    /// vhost-user backend does on reconnect. The chains published after
    /// that index are the ones the old instance never completed (it
    /// completed in order), so they are taken again; the old instance's
    /// work on them may be done twice, which a disk read or write and a
    /// network frame tolerate. A queue the driver has just set up reads 0
    /// here, as [`new`](Self::new) starts. A driver-controlled index makes
    /// no difference to safety: [`pop`](Self::pop) checks every later
    /// `avail.idx` against it.
    pub fn resume<M: GuestMemory + ?Sized>(
        config: QueueConfig,
        max_size: u16,
        features: QueueFeatures,
        max_segments: usize,
        memory: &M,
    ) -> Result<Self, ResumeError> {
        let mut queue = Self::new(config, max_size, features, max_segments).map_err(ResumeError::Config)?;
        let used_idx = memory
            .read_u16(queue.used_idx_addr())
            .map_err(|error| ResumeError::Queue(error.into()))?;
        queue.next_avail = used_idx;
        queue.avail_shadow = used_idx;
        queue.next_used = used_idx;
        queue.signalled_used = used_idx;
        Ok(queue)
    }

    pub fn config(&self) -> QueueConfig {
        self.config
    }

    pub fn size(&self) -> u16 {
        self.config.size
    }

    pub fn features(&self) -> QueueFeatures {
        self.features
    }

    pub fn max_segments(&self) -> usize {
        self.max_segments
    }

    /// Free-running index of the next available entry the device will take.
    pub fn next_avail(&self) -> u16 {
        self.next_avail
    }

    /// Free-running index of the next used entry (the `used.idx` the device
    /// last published).
    pub fn next_used(&self) -> u16 {
        self.next_used
    }

    /// Chains popped and not yet returned with [`add_used`](Self::add_used).
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Whether a driver-caused error has stopped this queue.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn mask(&self) -> u16 {
        self.config.size - 1
    }

    fn avail_idx_addr(&self) -> u64 {
        self.config.avail_ring + 2
    }

    fn used_event_addr(&self) -> u64 {
        self.config.avail_ring + 4 + 2 * u64::from(self.config.size)
    }

    fn used_idx_addr(&self) -> u64 {
        self.config.used_ring + 2
    }

    fn avail_event_addr(&self) -> u64 {
        self.config.used_ring + 4 + 8 * u64::from(self.config.size)
    }

    /// Runs `f` unless the queue is broken; breaks it when `f` fails
    /// because of the driver.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, QueueError>) -> Result<T, QueueError> {
        if self.broken {
            return Err(QueueError::Broken);
        }
        let result = f(self);
        if let Err(error) = &result {
            if error.needs_reset() {
                self.broken = true;
            }
        }
        result
    }

    /// Reads `avail.idx` once and checks it against what the device took.
    fn refresh_avail_idx<M: GuestMemory + ?Sized>(&mut self, memory: &M) -> Result<u16, QueueError> {
        let avail_idx = memory.read_u16(self.avail_idx_addr())?;
        if avail_idx.wrapping_sub(self.next_avail) > self.config.size {
            return Err(QueueError::AvailIdxJump {
                next_avail: self.next_avail,
                avail_idx,
            });
        }
        self.avail_shadow = avail_idx;
        Ok(avail_idx)
    }

    /// Takes the next available chain, validated, or `None` when the driver
    /// has published nothing new. See [`QueueError`] for what is checked
    /// and what an error means.
    pub fn pop<M: GuestMemory + ?Sized>(&mut self, memory: &M) -> Result<Option<DescriptorChain>, QueueError> {
        self.guarded(|queue| {
            if queue.avail_shadow == queue.next_avail {
                if queue.refresh_avail_idx(memory)? == queue.next_avail {
                    return Ok(None);
                }
                // The ring entries and descriptors the new index covers are
                // read after it (the driver wrote them before it).
                fence(Ordering::Acquire);
            }
            let slot = u64::from(queue.next_avail & queue.mask());
            let head = memory.read_u16(queue.config.avail_ring + 4 + 2 * slot)?;
            let chain = queue.walk(memory, head)?;
            queue.next_avail = queue.next_avail.wrapping_add(1);
            queue.in_flight = queue.in_flight.saturating_add(1);
            Ok(Some(chain))
        })
    }

    /// Follows the chain starting at `head`, copying each descriptor once.
    fn walk<M: GuestMemory + ?Sized>(&self, memory: &M, head: u16) -> Result<DescriptorChain, QueueError> {
        let size = self.config.size;
        let mut chain = DescriptorChain::new(head);
        let mut index = head;
        let mut visited: u32 = 0;
        loop {
            if index >= size {
                return Err(QueueError::IndexOutOfRange { index });
            }
            visited += 1;
            if visited > u32::from(size) {
                return Err(QueueError::ChainTooLong);
            }
            let gpa = self.config.desc_table + DESCRIPTOR_SIZE * u64::from(index);
            let descriptor = read_descriptor(memory, gpa)?;
            if descriptor.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                if !self.features.indirect {
                    return Err(QueueError::IndirectNotNegotiated);
                }
                if descriptor.flags & VIRTQ_DESC_F_NEXT != 0 {
                    return Err(QueueError::IndirectWithNext);
                }
                // "Zero or more normal chained descriptors followed by a
                // single descriptor with VIRTQ_DESC_F_INDIRECT": the indirect
                // one always ends the chain in the main table.
                self.walk_indirect(memory, descriptor, &mut chain)?;
                return Ok(chain);
            }
            self.push(&mut chain, descriptor)?;
            if descriptor.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            index = descriptor.next;
        }
    }

    /// Appends the chain in the indirect table `table` describes. Its WRITE
    /// flag is ignored, as the spec requires.
    fn walk_indirect<M: GuestMemory + ?Sized>(
        &self,
        memory: &M,
        table: Descriptor,
        chain: &mut DescriptorChain,
    ) -> Result<(), QueueError> {
        let len = table.len;
        let entries = u64::from(len) / DESCRIPTOR_SIZE;
        if len == 0 || !u64::from(len).is_multiple_of(DESCRIPTOR_SIZE) || entries > u64::from(MAX_QUEUE_SIZE) {
            return Err(QueueError::BadIndirectLength { len });
        }
        if table.addr.checked_add(u64::from(len)).is_none() {
            return Err(QueueError::AddressOverflow);
        }
        // Linux sizes indirect tables by the request, not the queue (a
        // virtio-blk request may use more descriptors than a small queue
        // has), so the table's own length bounds the walk, like QEMU does;
        // the segment limit bounds it further.
        let mut index: u16 = 0;
        let mut visited: u64 = 0;
        loop {
            visited += 1;
            if visited > entries {
                return Err(QueueError::ChainTooLong);
            }
            let descriptor = read_descriptor(memory, table.addr + DESCRIPTOR_SIZE * u64::from(index))?;
            if descriptor.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                return Err(QueueError::IndirectInIndirect);
            }
            self.push(chain, descriptor)?;
            if descriptor.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(());
            }
            if u64::from(descriptor.next) >= entries {
                return Err(QueueError::IndexOutOfRange { index: descriptor.next });
            }
            index = descriptor.next;
        }
    }

    fn push(&self, chain: &mut DescriptorChain, descriptor: Descriptor) -> Result<(), QueueError> {
        let segment = Segment {
            addr: descriptor.addr,
            len: descriptor.len,
            writable: descriptor.flags & VIRTQ_DESC_F_WRITE != 0,
        };
        chain.push(segment, self.max_segments)
    }

    /// Returns the chain `head` to the driver, `len` bytes written into its
    /// writable part (a prefix, starting at the first writable byte; an
    /// underestimate is allowed). The element is written before `used.idx`
    /// moves, with a release fence between them.
    pub fn add_used<M: GuestMemory + ?Sized>(&mut self, memory: &mut M, head: u16, len: u32) -> Result<(), QueueError> {
        self.guarded(|queue| {
            if head >= queue.config.size || queue.in_flight == 0 {
                return Err(QueueError::NotInFlight { head });
            }
            let slot = u64::from(queue.next_used & queue.mask());
            let mut element = [0u8; 8];
            element[..4].copy_from_slice(&u32::from(head).to_le_bytes());
            element[4..].copy_from_slice(&len.to_le_bytes());
            memory.write(queue.config.used_ring + 4 + 8 * slot, &element)?;
            fence(Ordering::Release);
            let next_used = queue.next_used.wrapping_add(1);
            memory.write_u16(queue.used_idx_addr(), next_used)?;
            queue.next_used = next_used;
            queue.in_flight -= 1;
            queue.unsignalled = queue.unsignalled.saturating_add(1);
            Ok(())
        })
    }

    /// Whether the driver wants a used-buffer notification for the entries
    /// added since the last call. Without VIRTIO_F_EVENT_IDX: unless the
    /// driver set VIRTQ_AVAIL_F_NO_INTERRUPT; with it: when `used_event`
    /// lies among the entries just added ([`vring_need_event`]). False when
    /// nothing was added; true when 65536 or more were, since the 16-bit
    /// indices can no longer tell.
    pub fn needs_notification<M: GuestMemory + ?Sized>(&mut self, memory: &M) -> Result<bool, QueueError> {
        self.guarded(|queue| {
            // Order the used.idx store before the flag / used_event load.
            fence(Ordering::SeqCst);
            let old = queue.signalled_used;
            let new = queue.next_used;
            let added = queue.unsignalled;
            queue.signalled_used = new;
            queue.unsignalled = 0;
            if added == 0 {
                return Ok(false);
            }
            if added > u32::from(u16::MAX) {
                return Ok(true);
            }
            if queue.features.event_idx {
                let used_event = memory.read_u16(queue.used_event_addr())?;
                Ok(vring_need_event(used_event, new, old))
            } else {
                let flags = memory.read_u16(queue.config.avail_ring)?;
                Ok(flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0)
            }
        })
    }

    /// Asks the driver for available-buffer notifications again (clears
    /// VIRTQ_USED_F_NO_NOTIFY, or with VIRTIO_F_EVENT_IDX sets `avail_event`
    /// to the next entry the device will take), then re-reads `avail.idx`:
    /// true when chains arrived meanwhile, which the caller must process
    /// since no notification will come for them.
    pub fn enable_notification<M: GuestMemory + ?Sized>(&mut self, memory: &mut M) -> Result<bool, QueueError> {
        self.guarded(|queue| {
            if queue.features.event_idx {
                memory.write_u16(queue.avail_event_addr(), queue.next_avail)?;
            } else {
                memory.write_u16(queue.config.used_ring, 0)?;
            }
            fence(Ordering::SeqCst);
            let avail_idx = queue.refresh_avail_idx(memory)?;
            Ok(avail_idx != queue.next_avail)
        })
    }

    /// Tells the driver notifications are not needed while the device is
    /// busy with the queue. Without VIRTIO_F_EVENT_IDX this sets
    /// VIRTQ_USED_F_NO_NOTIFY; with it nothing is written (the spec wants
    /// `used.flags` 0): `avail_event` already stays behind, so the driver
    /// notifies at most once until [`enable_notification`](Self::enable_notification).
    pub fn disable_notification<M: GuestMemory + ?Sized>(&mut self, memory: &mut M) -> Result<(), QueueError> {
        self.guarded(|queue| {
            if !queue.features.event_idx {
                memory.write_u16(queue.config.used_ring, VIRTQ_USED_F_NO_NOTIFY)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;
