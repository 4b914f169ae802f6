//! One virtio-blk device as the backend serves it: the image file
//! ([`ImageFile`]) and the per-device state machine ([`DiskDevice`]) that
//! turns Keel's transport state into queues, served requests and
//! VirtioComplete calls.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

use anyhow::Result;
use keel_abi::mgmt::VirtioDeviceState;
use keel_virtio::blk::{BackendError, Blk, BlkOptions, BlockBackend, QUEUE_SIZE, SECTOR_SIZE};
use keel_virtio::GuestMemory;

use super::calls::{on_control, VirtioCalls};
use super::queues::{CoreDevice, DeviceCore};

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

/// One virtio-blk device of the domain.
pub struct DiskDevice<B> {
    core: DeviceCore,
    blk: Blk,
    image: B,
}

impl<B: BlockBackend> DiskDevice<B> {
    pub fn new(index: usize, blk: Blk, image: B, num_queues: usize) -> Self {
        Self {
            core: DeviceCore::new(index, num_queues),
            blk,
            image,
        }
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.blk.capacity()
    }

    /// Queues built (being served).
    pub fn live_queues(&self) -> usize {
        self.core.queues.live()
    }

    /// A transport change (and once at start): fetches the state and acts
    /// on it ([`on_control`]).
    pub fn on_control<C: VirtioCalls, M: GuestMemory>(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        on_control(self.core.index, keel, |state, keel| self.apply(state, keel, memory))
    }

    /// What a state means for the device ([`DeviceCore::apply`]); once
    /// ready, the negotiated features apply and every queue is served once
    /// (the driver may have published requests before DRIVER_OK).
    pub fn apply<C: VirtioCalls, M: GuestMemory>(
        &mut self,
        state: &VirtioDeviceState,
        keel: &mut C,
        memory: &mut M,
    ) -> Result<()> {
        self.blk.set_negotiated(state.driver_features);
        let limits = (QUEUE_SIZE, self.blk.max_segments());
        if self.core.apply(state, limits, keel, &*memory)?.0 {
            self.serve(keel, memory)?;
        }
        Ok(())
    }

    /// A kick (or work left over): serves every built queue, then one
    /// VirtioComplete with the queues whose driver asked for an interrupt
    /// (and NEEDS_RESET the first time a queue breaks).
    pub fn serve<C: VirtioCalls, M: GuestMemory>(&mut self, keel: &mut C, memory: &mut M) -> Result<()> {
        self.core.more = false;
        if self.core.queues.is_broken() {
            return Ok(());
        }
        let (mut notify, mut errors) = (0u32, Vec::new());
        for (number, queue) in self.core.queues.iter_mut() {
            match self.blk.process_queue(queue, memory, &mut self.image, BUDGET) {
                Ok(processed) => {
                    if processed.notify {
                        notify |= 1 << number;
                    }
                    self.core.more |= processed.more;
                }
                Err(error) => errors.push((number, error)),
            }
        }
        let mut broke = false;
        for (number, error) in errors {
            broke |= self.core.queue_error(number, error);
        }
        self.core.finish(keel, notify, broke)
    }
}

impl<B: BlockBackend> CoreDevice for DiskDevice<B> {
    fn core(&self) -> &DeviceCore {
        &self.core
    }

    fn core_mut(&mut self) -> &mut DeviceCore {
        &mut self.core
    }
}
