//! One virtio-blk device as the backend serves it: the image file
//! ([`ImageFile`]) and the per-device state machine ([`DiskDevice`]) that
//! turns Keel's transport state into queues, served requests and
//! VirtioComplete calls.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

use anyhow::Result;
use keel_abi::mgmt::virtio::complete_flags;
use keel_abi::mgmt::{DomainId, VirtioDeviceState};
use keel_virtio::blk::{BackendError, Blk, BlkOptions, BlockBackend, QUEUE_SIZE, SECTOR_SIZE};
use keel_virtio::status::{DEVICE_NEEDS_RESET, DRIVER_OK, FEATURES_OK};
use keel_virtio::{GuestMemory, Queue, QueueConfig, QueueError, QueueFeatures};

use crate::client::Client;
use crate::transport::Transport;

/// Requests served per queue before the other devices get their turn.
pub const BUDGET: usize = 128;

/// The id a disk's GET_ID returns (Linux shows it as the disk's serial).
pub fn disk_serial(index: usize) -> String {
    format!("keel-disk{index}")
}

/// The device model for disk `index` over an image of `len` bytes; the
/// same in `keel create` (features, configuration) and in the backend.
pub fn disk_model(index: usize, len: u64, read_only: bool) -> Blk {
    Blk::new(
        len,
        BlkOptions {
            read_only,
            id: BlkOptions::id_from_str(&disk_serial(index)),
            ..Default::default()
        },
    )
}

/// Opens a disk image read-only or read-write and measures it: a regular
/// file or a block device of at least one sector. The error says what is
/// wrong in words for a config's `disk` key.
pub fn open_image(path: &Path, read_only: bool) -> Result<(File, u64), String> {
    let label = path.display();
    let opened = OpenOptions::new().read(true).write(!read_only).open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(error)
            if !read_only
                && error
                    .raw_os_error()
                    .is_some_and(|code| READ_ONLY_ERRORS.contains(&code)) =>
        {
            return Err(format!(
                "{label} cannot be opened for writing ({error}); make it writable or attach it as \"{label},ro\""
            ))
        }
        Err(error) => return Err(format!("cannot open {label}: {error}")),
    };
    let kind = file
        .metadata()
        .map_err(|error| format!("{label}: {error}"))?
        .file_type();
    if !kind.is_file() && !kind.is_block_device() {
        return Err(format!("{label} is not a regular file or a block device"));
    }
    // Seeking measures block devices too (their metadata says 0).
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(|error| format!("cannot measure {label}: {error}"))?;
    if len < SECTOR_SIZE {
        return Err(format!(
            "{label} is {len} bytes, less than one {SECTOR_SIZE}-byte sector"
        ));
    }
    Ok((file, len))
}

/// Errors that mean "this file cannot be written": permissions, a
/// read-only file system, an immutable file, a busy executable.
const READ_ONLY_ERRORS: [i32; 4] = [libc::EACCES, libc::EROFS, libc::EPERM, libc::ETXTBSY];

/// A raw image file (or block device); the length is fixed when opened.
pub struct ImageFile {
    file: File,
    len: u64,
}

impl ImageFile {
    pub fn new(file: File, len: u64) -> Self {
        Self { file, len }
    }
}

impl BlockBackend for ImageFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.file.read_exact_at(buf, offset).map_err(|_| BackendError)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        self.file.write_all_at(data, offset).map_err(|_| BackendError)
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        self.file.sync_data().map_err(|_| BackendError)
    }
}

/// The calls a device makes; [`DomainCalls`] makes them on Keel.
pub trait VirtioCalls {
    fn state(&mut self, device: usize) -> Result<VirtioDeviceState>;
    fn complete(&mut self, device: usize, queue_mask: u32, flags: u64, generation: u32) -> Result<()>;
}

/// A client bound to one domain.
pub struct DomainCalls<T> {
    pub client: Client<T>,
    pub id: DomainId,
}

impl<T: Transport> VirtioCalls for DomainCalls<T> {
    fn state(&mut self, device: usize) -> Result<VirtioDeviceState> {
        self.client.virtio_state(self.id, device)
    }

    fn complete(&mut self, device: usize, queue_mask: u32, flags: u64, generation: u32) -> Result<()> {
        self.client
            .virtio_complete(self.id, device, queue_mask, flags, generation)
    }
}

/// Whether a Keel refusal is [`keel_abi::mgmt::Status::BadState`]: the
/// generation moved on (the domain rebooted) under the backend.
fn stale(error: &anyhow::Error) -> bool {
    crate::client::is_status(error, keel_abi::mgmt::Status::BadState)
}

/// One virtio-blk device of the domain.
pub struct DiskDevice<B> {
    index: usize,
    blk: Blk,
    image: B,
    /// The transport generation the queues belong to.
    generation: Option<u32>,
    /// Built when the driver enabled them and the device went DRIVER_OK;
    /// dropped on reset.
    queues: Vec<Option<Queue>>,
    /// NEEDS_RESET sent: nothing is served until the driver resets.
    broken: bool,
    /// A queue's budget ran out with requests left.
    more: bool,
    /// What happened worth a line in the log.
    notes: Vec<String>,
}

impl<B: BlockBackend> DiskDevice<B> {
    pub fn new(index: usize, blk: Blk, image: B, num_queues: usize) -> Self {
        Self {
            index,
            blk,
            image,
            generation: None,
            queues: vec![None; num_queues],
            broken: false,
            more: false,
            notes: Vec::new(),
        }
    }

    pub fn index(&self) -> usize {
        self.index
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.blk.capacity()
    }

    /// Requests are still queued: serve again without sleeping.
    pub fn has_more(&self) -> bool {
        self.more
    }

    /// Queues built (being served).
    pub fn live_queues(&self) -> usize {
        self.queues.iter().flatten().count()
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn drop_queues(&mut self) {
        self.queues.iter_mut().for_each(|queue| *queue = None);
        self.broken = false;
        self.more = false;
    }

    /// A transport change (and once at start): fetches the state and acts
    /// on it. A completion refused as stale means the domain rebooted
    /// meanwhile: the state is fetched again (a few times at most).
    pub fn on_control<C: VirtioCalls, M: GuestMemory>(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        let mut tries = 0;
        loop {
            let state = keel.state(self.index)?;
            match self.apply(&state, keel, memory) {
                Err(error) if stale(&error) && tries < 3 => tries += 1,
                other => return other,
            }
        }
    }

    /// What a state means for the device:
    ///
    /// - a new generation, or status 0: the queues go;
    /// - a reset pending: the queues go and RESET_DONE lets the driver
    ///   see status 0;
    /// - FEATURES_OK and DRIVER_OK without DEVICE_NEEDS_RESET: the
    ///   negotiated features apply, each enabled queue not built yet is
    ///   built, and every queue is served once (the driver may have
    ///   published buffers before DRIVER_OK).
    pub fn apply<C: VirtioCalls, M: GuestMemory>(
        &mut self,
        state: &VirtioDeviceState,
        keel: &mut C,
        memory: &mut M,
    ) -> Result<()> {
        if self.generation != Some(state.generation) || state.status == 0 {
            self.drop_queues();
            self.generation = Some(state.generation);
        }
        if state.reset_pending {
            self.drop_queues();
            return keel.complete(self.index, 0, complete_flags::RESET_DONE, state.generation);
        }
        let ready = FEATURES_OK | DRIVER_OK;
        if state.status & ready != ready || state.status & DEVICE_NEEDS_RESET != 0 || self.broken {
            return Ok(());
        }
        self.blk.set_negotiated(state.driver_features);
        let features = QueueFeatures::from_negotiated(state.driver_features);
        let count = usize::from(state.num_queues).min(self.queues.len());
        for (number, (slot, queue)) in self.queues.iter_mut().zip(&state.queues[..count]).enumerate() {
            if !queue.enabled || slot.is_some() {
                continue;
            }
            let config = QueueConfig {
                size: queue.size,
                desc_table: queue.desc,
                avail_ring: queue.driver,
                used_ring: queue.device,
            };
            match Queue::new(config, QUEUE_SIZE, features, self.blk.max_segments()) {
                Ok(built) => *slot = Some(built),
                Err(error) => {
                    // Keel validated the layout; a refusal here is a
                    // mismatch worth a reset, never a panic.
                    self.notes
                        .push(format!("device {}: queue {number} refused: {error:?}", self.index));
                    self.broken = true;
                }
            }
        }
        if self.broken {
            return keel.complete(self.index, 0, complete_flags::NEEDS_RESET, state.generation);
        }
        self.serve(keel, memory)
    }

    /// A kick (or work left over): serves every built queue, then one
    /// VirtioComplete with the queues whose driver asked for an interrupt
    /// (and NEEDS_RESET the first time a queue breaks).
    pub fn serve<C: VirtioCalls, M: GuestMemory>(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        let Some(generation) = self.generation else {
            return Ok(());
        };
        if self.broken {
            return Ok(());
        }
        let (mut notify, mut broke) = (0u32, false);
        self.more = false;
        for (number, slot) in self.queues.iter_mut().enumerate() {
            let Some(queue) = slot else { continue };
            match self.blk.process_queue(queue, memory, &mut self.image, BUDGET) {
                Ok(processed) => {
                    if processed.notify {
                        notify |= 1 << number;
                    }
                    self.more |= processed.more;
                }
                Err(error) if error.needs_reset() || error == QueueError::Broken => {
                    self.notes.push(format!(
                        "device {}: the driver broke queue {number} ({error:?}): device needs reset",
                        self.index
                    ));
                    broke = true;
                }
                Err(error) => self
                    .notes
                    .push(format!("device {}: queue {number}: {error:?}", self.index)),
            }
        }
        let mut flags = 0;
        if broke {
            self.broken = true;
            self.more = false;
            flags = complete_flags::NEEDS_RESET;
        }
        if notify == 0 && flags == 0 {
            return Ok(());
        }
        keel.complete(self.index, notify, flags, generation)
    }
}
