//! Queued invalidation (VT-d §6.5.2): 128-bit descriptors that software
//! places in a ring in memory and hardware consumes from IQH to IQT.

use keel_memory::{HostPhysAddr, PAGE_SIZE_4K};

use crate::SourceId;

/// Descriptor type codes, bits 3:0 of the low quadword.
pub mod kind {
    pub const CONTEXT_CACHE: u64 = 0x1;
    pub const IOTLB: u64 = 0x2;
    pub const DEVICE_IOTLB: u64 = 0x3;
    pub const INTERRUPT_ENTRY_CACHE: u64 = 0x4;
    pub const INVALIDATION_WAIT: u64 = 0x5;
}

/// A descriptor is 16 bytes in legacy mode (IQA.DW clear).
pub const DESCRIPTOR_LEN: u64 = 16;
/// Descriptors in one 4 KiB page of queue.
pub const DESCRIPTORS_PER_PAGE: u32 = (PAGE_SIZE_4K / DESCRIPTOR_LEN) as u32;

const GRANULARITY_SHIFT: u32 = 4;
const DOMAIN_SHIFT: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidationError {
    /// A page-selective address not aligned to its 2^mask pages, or a wait
    /// status address not 4-byte aligned, or a queue base not 4 KiB aligned.
    Misaligned,
    /// An address or handle mask beyond its field.
    MaskTooLarge,
    /// QS beyond 7.
    BadQueueSize,
    /// IQH names a slot outside the queue.
    BadHead { head: u64 },
}

/// Drain outstanding DMA reads/writes before the IOTLB invalidation
/// completes (use when CAP.DRD/CAP.DWD report support).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drain {
    pub reads: bool,
    pub writes: bool,
}

impl Drain {
    const fn bits(self) -> u64 {
        (self.reads as u64) << 7 | (self.writes as u64) << 6
    }
}

/// One legacy-mode invalidation descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Descriptor {
    pub low: u64,
    pub high: u64,
}

impl Descriptor {
    const fn low(low: u64) -> Self {
        Self { low, high: 0 }
    }

    /// Bits 3:0.
    pub const fn kind(self) -> u64 {
        self.low & 0xf
    }

    /// Context-cache invalidation of every context entry (§6.5.2.1).
    pub const fn context_cache_global() -> Self {
        Self::low(kind::CONTEXT_CACHE | 1 << GRANULARITY_SHIFT)
    }

    /// Context-cache invalidation of one domain's entries.
    pub const fn context_cache_domain(domain: u16) -> Self {
        Self::low(kind::CONTEXT_CACHE | 2 << GRANULARITY_SHIFT | (domain as u64) << DOMAIN_SHIFT)
    }

    /// Context-cache invalidation of one device's entry. `function_mask`
    /// (0..=3) ignores that many low function bits of `source`.
    pub fn context_cache_device(domain: u16, source: SourceId, function_mask: u8) -> Result<Self, InvalidationError> {
        if function_mask > 3 {
            return Err(InvalidationError::MaskTooLarge);
        }
        Ok(Self::low(
            kind::CONTEXT_CACHE
                | 3 << GRANULARITY_SHIFT
                | u64::from(domain) << DOMAIN_SHIFT
                | u64::from(source.raw()) << 32
                | u64::from(function_mask) << 48,
        ))
    }

    /// IOTLB invalidation of everything (§6.5.2.3).
    pub const fn iotlb_global(drain: Drain) -> Self {
        Self::low(kind::IOTLB | 1 << GRANULARITY_SHIFT | drain.bits())
    }

    /// IOTLB invalidation of one domain's mappings.
    pub const fn iotlb_domain(domain: u16, drain: Drain) -> Self {
        Self::low(kind::IOTLB | 2 << GRANULARITY_SHIFT | drain.bits() | (domain as u64) << DOMAIN_SHIFT)
    }

    /// IOTLB invalidation of 2^`address_mask` pages at `address` (aligned to
    /// that many pages; CAP.MAMV bounds the mask, CAP.PSI says whether
    /// page-selective invalidation exists). `leaf_only` is the invalidation
    /// hint: only leaf entries changed, cached non-leaf entries may stay.
    pub fn iotlb_pages(
        domain: u16,
        address: u64,
        address_mask: u8,
        leaf_only: bool,
        drain: Drain,
    ) -> Result<Self, InvalidationError> {
        if address_mask > 63 - 12 {
            return Err(InvalidationError::MaskTooLarge);
        }
        let span = PAGE_SIZE_4K << address_mask;
        if !address.is_multiple_of(span) {
            return Err(InvalidationError::Misaligned);
        }
        Ok(Self {
            low: kind::IOTLB | 3 << GRANULARITY_SHIFT | drain.bits() | u64::from(domain) << DOMAIN_SHIFT,
            high: address | u64::from(leaf_only) << 6 | u64::from(address_mask),
        })
    }

    /// Interrupt entry cache invalidation of every entry (§6.5.2.7).
    pub const fn interrupt_entry_cache_global() -> Self {
        Self::low(kind::INTERRUPT_ENTRY_CACHE)
    }

    /// Interrupt entry cache invalidation of 2^`index_mask` entries from
    /// `index` (aligned to that count; ECAP.MHMV bounds the mask).
    pub fn interrupt_entry_cache_entries(index: u16, index_mask: u8) -> Result<Self, InvalidationError> {
        if index_mask > 16 {
            return Err(InvalidationError::MaskTooLarge);
        }
        if !u32::from(index).is_multiple_of(1 << index_mask) {
            return Err(InvalidationError::Misaligned);
        }
        Ok(Self::low(
            kind::INTERRUPT_ENTRY_CACHE | 1 << GRANULARITY_SHIFT | u64::from(index_mask) << 27 | u64::from(index) << 32,
        ))
    }

    /// Invalidation wait (§6.5.2.8): completes once every earlier
    /// descriptor has. With `status`, hardware then writes the 32-bit value
    /// to the 4-byte aligned address; `interrupt` raises the invalidation
    /// completion event (and sets ICS.IWC); `fence` holds back later
    /// descriptors until this one completes.
    pub fn wait(status: Option<(HostPhysAddr, u32)>, interrupt: bool, fence: bool) -> Result<Self, InvalidationError> {
        let mut low = kind::INVALIDATION_WAIT | u64::from(interrupt) << 4 | u64::from(fence) << 6;
        let mut high = 0;
        if let Some((address, data)) = status {
            if !address.as_u64().is_multiple_of(4) {
                return Err(InvalidationError::Misaligned);
            }
            low |= 1 << 5 | u64::from(data) << 32;
            high = address.as_u64();
        }
        Ok(Self { low, high })
    }
}

/// IQA.QS: the queue is 2^QS pages of 256 descriptors each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueueSize(u8);

impl QueueSize {
    /// One page, 256 descriptors.
    pub const ONE_PAGE: Self = Self(0);

    pub fn new(qs: u8) -> Result<Self, InvalidationError> {
        if qs > 7 {
            return Err(InvalidationError::BadQueueSize);
        }
        Ok(Self(qs))
    }

    pub const fn qs(self) -> u8 {
        self.0
    }

    pub const fn entries(self) -> u32 {
        DESCRIPTORS_PER_PAGE << self.0
    }

    pub const fn bytes(self) -> u64 {
        PAGE_SIZE_4K << self.0
    }
}

/// The IQA register value for a queue of `size` at `base` with 128-bit
/// descriptors (DW, bit 11, clear).
pub fn iqa_value(base: HostPhysAddr, size: QueueSize) -> Result<u64, InvalidationError> {
    if !base.is_aligned(PAGE_SIZE_4K) {
        return Err(InvalidationError::Misaligned);
    }
    Ok(base.as_u64() | u64::from(size.qs()))
}

/// Software's view of the queue: the slots between head (next descriptor
/// hardware reads) and tail (next slot software writes) are outstanding.
/// One slot always stays empty, so head == tail means empty, never full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueRing {
    size: QueueSize,
    head: u32,
    tail: u32,
}

impl QueueRing {
    /// An empty queue, as after enabling (hardware resets IQH to 0; software
    /// writes IQT as 0 first).
    pub const fn new(size: QueueSize) -> Self {
        Self { size, head: 0, tail: 0 }
    }

    pub const fn size(&self) -> QueueSize {
        self.size
    }

    pub const fn head(&self) -> u32 {
        self.head
    }

    pub const fn tail(&self) -> u32 {
        self.tail
    }

    /// Descriptors written but not yet consumed.
    pub const fn outstanding(&self) -> u32 {
        (self.tail + self.size.entries() - self.head) % self.size.entries()
    }

    /// Slots software may still fill.
    pub const fn free(&self) -> u32 {
        self.size.entries() - 1 - self.outstanding()
    }

    pub const fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    /// Claims the slot at the tail and advances the tail; `None` when full.
    pub fn push(&mut self) -> Option<u32> {
        if self.free() == 0 {
            return None;
        }
        let slot = self.tail;
        self.tail = (self.tail + 1) % self.size.entries();
        Some(slot)
    }

    /// Where slot `index` lives in a queue based at `base`.
    pub fn slot_address(&self, base: HostPhysAddr, index: u32) -> HostPhysAddr {
        HostPhysAddr::new(base.as_u64() + u64::from(index % self.size.entries()) * DESCRIPTOR_LEN)
    }

    /// The IQT value publishing every pushed descriptor (QT in bits 18:4).
    pub const fn tail_register(&self) -> u64 {
        (self.tail as u64) << 4
    }

    /// Takes the head from an IQH read. The head may only move forward
    /// through outstanding slots; anything else means the register or this
    /// state is wrong.
    pub fn update_head(&mut self, iqh: u64) -> Result<(), InvalidationError> {
        let bad = InvalidationError::BadHead { head: iqh };
        let head = u32::try_from(iqh >> 4).map_err(|_| bad)?;
        if iqh & 0xf != 0 || head >= self.size.entries() {
            return Err(bad);
        }
        let advanced = (head + self.size.entries() - self.head) % self.size.entries();
        if advanced > self.outstanding() {
            return Err(bad);
        }
        self.head = head;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(bus: u8, device: u8, function: u8) -> SourceId {
        SourceId::new(bus, device, function).unwrap()
    }

    #[test]
    fn context_cache_descriptors_encode_granularity_and_target() {
        assert_eq!(Descriptor::context_cache_global(), Descriptor { low: 0x11, high: 0 });
        assert_eq!(Descriptor::context_cache_domain(7).low, 0x7_0021);
        let device = Descriptor::context_cache_device(7, sid(1, 2, 3), 2).unwrap();
        assert_eq!(device.low, 0x31 | 7 << 16 | 0x0113 << 32 | 2 << 48);
        assert_eq!(device.kind(), kind::CONTEXT_CACHE);
        assert_eq!(
            Descriptor::context_cache_device(7, sid(1, 2, 3), 4),
            Err(InvalidationError::MaskTooLarge)
        );
    }

    #[test]
    fn iotlb_descriptors_encode_drain_domain_and_pages() {
        let drain = Drain {
            reads: true,
            writes: true,
        };
        assert_eq!(Descriptor::iotlb_global(drain).low, 0x12 | 0xc0);
        assert_eq!(Descriptor::iotlb_global(Drain::default()).low, 0x12);
        assert_eq!(Descriptor::iotlb_domain(0x1234, Drain::default()).low, 0x1234_0022);
        let pages = Descriptor::iotlb_pages(3, 0x20_0000, 9, true, Drain::default()).unwrap();
        assert_eq!(
            pages,
            Descriptor {
                low: 0x3_0032,
                high: 0x20_0000 | 1 << 6 | 9
            }
        );
        assert_eq!(
            Descriptor::iotlb_pages(3, 0x1000, 1, false, Drain::default()),
            Err(InvalidationError::Misaligned)
        );
        assert_eq!(
            Descriptor::iotlb_pages(3, 0, 52, false, Drain::default()),
            Err(InvalidationError::MaskTooLarge)
        );
    }

    #[test]
    fn interrupt_entry_cache_descriptors() {
        assert_eq!(Descriptor::interrupt_entry_cache_global().low, 0x4);
        let entries = Descriptor::interrupt_entry_cache_entries(0x40, 4).unwrap();
        assert_eq!(entries.low, 0x14 | 4 << 27 | 0x40 << 32);
        assert_eq!(
            Descriptor::interrupt_entry_cache_entries(0x41, 1),
            Err(InvalidationError::Misaligned)
        );
        assert_eq!(
            Descriptor::interrupt_entry_cache_entries(0, 17),
            Err(InvalidationError::MaskTooLarge)
        );
    }

    #[test]
    fn wait_descriptors_carry_the_status_write() {
        let status = HostPhysAddr::new(0x5000_0008);
        let wait = Descriptor::wait(Some((status, 0xabcd)), false, true).unwrap();
        assert_eq!(
            wait,
            Descriptor {
                low: 0xabcd << 32 | 0x65,
                high: 0x5000_0008
            }
        );
        assert_eq!(
            Descriptor::wait(None, true, false).unwrap(),
            Descriptor { low: 0x15, high: 0 }
        );
        assert_eq!(
            Descriptor::wait(Some((HostPhysAddr::new(0x5000_0002), 1)), false, false),
            Err(InvalidationError::Misaligned)
        );
    }

    #[test]
    fn queue_size_and_iqa() {
        assert_eq!(QueueSize::ONE_PAGE.entries(), 256);
        assert_eq!(QueueSize::new(7).unwrap().entries(), 32768);
        assert_eq!(QueueSize::new(8), Err(InvalidationError::BadQueueSize));
        assert_eq!(QueueSize::new(2).unwrap().bytes(), 0x4000);
        let base = HostPhysAddr::new(0x8000_0000);
        assert_eq!(iqa_value(base, QueueSize::new(2).unwrap()), Ok(0x8000_0002));
        assert_eq!(
            iqa_value(HostPhysAddr::new(0x8000_0800), QueueSize::ONE_PAGE),
            Err(InvalidationError::Misaligned)
        );
    }

    #[test]
    fn the_ring_keeps_one_slot_free() {
        let mut ring = QueueRing::new(QueueSize::ONE_PAGE);
        assert!(ring.is_empty());
        assert_eq!(ring.free(), 255);
        for expected in 0..255 {
            assert_eq!(ring.push(), Some(expected));
        }
        assert_eq!(ring.push(), None);
        assert_eq!((ring.outstanding(), ring.free()), (255, 0));
        assert_eq!(ring.tail_register(), 255 << 4);
    }

    #[test]
    fn the_ring_wraps_around() {
        let mut ring = QueueRing::new(QueueSize::ONE_PAGE);
        for _ in 0..250 {
            ring.push().unwrap();
        }
        ring.update_head(250 << 4).unwrap();
        assert!(ring.is_empty());
        let slots: Vec<_> = (0..10).map(|_| ring.push().unwrap()).collect();
        assert_eq!(slots, [250, 251, 252, 253, 254, 255, 0, 1, 2, 3]);
        assert_eq!(ring.tail_register(), 4 << 4);
        assert_eq!(ring.outstanding(), 10);
        let base = HostPhysAddr::new(0x10_0000);
        assert_eq!(ring.slot_address(base, 255), HostPhysAddr::new(0x10_0ff0));
        ring.update_head(1 << 4).unwrap();
        assert_eq!((ring.head(), ring.outstanding()), (1, 3));
    }

    #[test]
    fn a_head_outside_the_outstanding_slots_is_an_error() {
        let mut ring = QueueRing::new(QueueSize::ONE_PAGE);
        for _ in 0..4 {
            ring.push().unwrap();
        }
        for iqh in [5 << 4, 256 << 4, 2 << 4 | 8, u64::MAX] {
            assert_eq!(ring.update_head(iqh), Err(InvalidationError::BadHead { head: iqh }));
        }
        ring.update_head(4 << 4).unwrap();
        assert_eq!(ring.head(), 4);
    }
}
