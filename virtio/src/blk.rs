//! virtio-blk (device type 2) over a [`BlockBackend`].
//!
//! A request is a descriptor chain read as two streams (any descriptor
//! layout is accepted, as virtio 1.x requires):
//!
//! ```text
//! readable: type u32, reserved u32, sector u64, then data for OUT
//! writable: data for IN / GET_ID, then the status byte (the last writable byte)
//! ```
//!
//! Semantics, decided here and documented in `docs/virtio.md`:
//!
//! - capacity is `floor(image length / 512)` sectors: the bytes of a last
//!   partial sector are not reachable (reads and writes touching them fail
//!   with IOERR), so the guest never sees a sector Keel cannot store whole;
//! - IN and OUT need a data length that is a multiple of 512 and a range
//!   `[sector × 512, + length)` that neither overflows nor passes capacity,
//!   else IOERR with nothing transferred;
//! - OUT on a read-only disk (VIRTIO_BLK_F_RO offered) is IOERR and writes
//!   nothing (the spec's requirement; Linux marks the disk read-only and
//!   never sends one);
//! - FLUSH calls [`BlockBackend::flush`]. VIRTIO_BLK_F_FLUSH is always
//!   offered; a driver that does not accept it gets write-through (every
//!   OUT is flushed before it completes), as the spec requires;
//! - GET_ID writes the 20-byte NUL-padded id (fewer bytes if the buffer is
//!   smaller);
//! - every other type (DISCARD, WRITE_ZEROES, GET_LIFETIME, SECURE_ERASE,
//!   zoned, unknown) is UNSUPP: none of those features is offered;
//! - a header shorter than 16 bytes is IOERR; a chain with no writable byte
//!   has nowhere to put a status, so nothing is executed and it is returned
//!   with used length 0;
//! - the status byte is written after the data, and the used length is the
//!   prefix of the writable part actually written: data length + 1 for a
//!   successful IN, 1 when the writable part is just the status byte.
//!
//! A failed request never breaks the device: it only gets its status.

use crate::chain::{ChainReader, ChainWriter, DescriptorChain, MAX_CHAIN_SEGMENTS};
use crate::features::KEEL_TRANSPORT_FEATURES;
use crate::memory::GuestMemory;
use crate::queue::{Queue, QueueError};

/// Request types.
pub const VIRTIO_BLK_T_IN: u32 = 0;
pub const VIRTIO_BLK_T_OUT: u32 = 1;
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
pub const VIRTIO_BLK_T_GET_LIFETIME: u32 = 10;
pub const VIRTIO_BLK_T_DISCARD: u32 = 11;
pub const VIRTIO_BLK_T_WRITE_ZEROES: u32 = 13;
pub const VIRTIO_BLK_T_SECURE_ERASE: u32 = 14;

/// Request status values.
pub const VIRTIO_BLK_S_OK: u8 = 0;
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Feature bits.
pub const VIRTIO_BLK_F_SIZE_MAX: u64 = 1 << 1;
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
pub const VIRTIO_BLK_F_GEOMETRY: u64 = 1 << 4;
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
pub const VIRTIO_BLK_F_TOPOLOGY: u64 = 1 << 10;
pub const VIRTIO_BLK_F_CONFIG_WCE: u64 = 1 << 11;
pub const VIRTIO_BLK_F_MQ: u64 = 1 << 12;
pub const VIRTIO_BLK_F_DISCARD: u64 = 1 << 13;
pub const VIRTIO_BLK_F_WRITE_ZEROES: u64 = 1 << 14;

/// Bytes per sector, whatever `blk_size` says.
pub const SECTOR_SIZE: u64 = 512;
/// Length of the device id GET_ID returns.
pub const ID_BYTES: usize = 20;
/// type + reserved + sector.
pub const REQUEST_HEADER_LEN: usize = 16;
/// Bytes of `struct virtio_blk_config` presented (through
/// `write_zeroes_may_unmap` and its padding, the virtio 1.1 layout).
pub const CONFIG_LEN: usize = 60;
/// Offsets of the configuration fields Keel fills in.
pub const CONFIG_CAPACITY: usize = 0;
pub const CONFIG_SIZE_MAX: usize = 8;
pub const CONFIG_SEG_MAX: usize = 12;
pub const CONFIG_BLK_SIZE: usize = 20;
/// The request queue's maximum size.
pub const QUEUE_SIZE: u16 = 256;
/// `seg_max` unless configured: with header and status a chain has at most
/// 128 segments.
pub const DEFAULT_SEG_MAX: u32 = 126;

/// Bytes copied per step between guest memory and the backend.
const CHUNK: usize = 4096;

/// The backend could not do what was asked (the request gets IOERR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendError;

/// The storage behind a virtio-blk device: a raw image, byte-addressed.
/// The device only asks for ranges inside `[0, capacity × 512)`.
pub trait BlockBackend {
    /// Length of the image in bytes.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills all of `buf` from `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError>;

    /// Writes all of `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BackendError>;

    /// Makes completed writes stable.
    fn flush(&mut self) -> Result<(), BackendError>;
}

/// How a virtio-blk device is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkOptions {
    pub read_only: bool,
    /// What GET_ID returns: ASCII, NUL-padded.
    pub id: [u8; ID_BYTES],
    /// Most data segments per request (clamped to what a chain can hold
    /// with header and status).
    pub seg_max: u32,
}

impl Default for BlkOptions {
    fn default() -> Self {
        Self {
            read_only: false,
            id: [0; ID_BYTES],
            seg_max: DEFAULT_SEG_MAX,
        }
    }
}

impl BlkOptions {
    /// An id from a string, cut to 20 bytes.
    pub fn id_from_str(name: &str) -> [u8; ID_BYTES] {
        let mut id = [0; ID_BYTES];
        let len = name.len().min(ID_BYTES);
        id[..len].copy_from_slice(&name.as_bytes()[..len]);
        id
    }
}

/// What a request turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    In,
    Out,
    Flush,
    GetId,
    /// A type this device does not offer, or does not know.
    Unsupported(u32),
    /// No complete header or no status byte.
    Malformed,
}

/// The outcome of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub kind: RequestKind,
    /// The status written, or `None` when the chain has no writable byte
    /// or the status byte's memory refused the write.
    pub status: Option<u8>,
    /// For [`Queue::add_used`].
    pub used_len: u32,
}

/// What one pass over the request queue did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Processed {
    /// Requests completed.
    pub completed: usize,
    /// The driver wants a used-buffer notification.
    pub notify: bool,
    /// The budget ran out with requests still queued: call again (after
    /// giving other devices their turn).
    pub more: bool,
}

/// A virtio-blk device model.
#[derive(Clone, Debug)]
pub struct Blk {
    capacity: u64,
    read_only: bool,
    id: [u8; ID_BYTES],
    seg_max: u32,
    /// VIRTIO_BLK_F_FLUSH accepted: writes may stay volatile until FLUSH.
    writeback: bool,
}

impl Blk {
    /// A device over an image of `image_len` bytes.
    pub fn new(image_len: u64, options: BlkOptions) -> Self {
        Self {
            capacity: image_len / SECTOR_SIZE,
            read_only: options.read_only,
            id: options.id,
            seg_max: options.seg_max.clamp(1, (MAX_CHAIN_SEGMENTS - 2) as u32),
            writeback: false,
        }
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The features offered.
    pub fn device_features(&self) -> u64 {
        let mut features = KEEL_TRANSPORT_FEATURES | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH;
        if self.read_only {
            features |= VIRTIO_BLK_F_RO;
        }
        features
    }

    /// Tells the device what the driver accepted (at FEATURES_OK).
    pub fn set_negotiated(&mut self, features: u64) {
        self.writeback = features & VIRTIO_BLK_F_FLUSH != 0;
    }

    /// Segments a request chain may have: `seg_max` data segments, the
    /// header and the status.
    pub fn max_segments(&self) -> usize {
        self.seg_max as usize + 2
    }

    /// The device configuration space.
    pub fn config(&self) -> [u8; CONFIG_LEN] {
        let mut config = [0u8; CONFIG_LEN];
        config[CONFIG_CAPACITY..CONFIG_CAPACITY + 8].copy_from_slice(&self.capacity.to_le_bytes());
        config[CONFIG_SEG_MAX..CONFIG_SEG_MAX + 4].copy_from_slice(&self.seg_max.to_le_bytes());
        config[CONFIG_BLK_SIZE..CONFIG_BLK_SIZE + 4].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        config
    }

    /// Executes one request and writes its status; the caller returns the
    /// chain with [`Queue::add_used`]`(chain.head(), completion.used_len)`.
    pub fn handle<M, B>(&self, memory: &mut M, backend: &mut B, chain: &DescriptorChain) -> Completion
    where
        M: GuestMemory + ?Sized,
        B: BlockBackend + ?Sized,
    {
        let mut data = chain.writer();
        let Some(mut status_writer) = data.split_tail(1) else {
            return Completion {
                kind: RequestKind::Malformed,
                status: None,
                used_len: 0,
            };
        };
        let mut reader = chain.reader();
        let mut header = [0u8; REQUEST_HEADER_LEN];
        let (kind, status) = match reader.read_exact(memory, &mut header) {
            Err(_) => (RequestKind::Malformed, VIRTIO_BLK_S_IOERR),
            Ok(()) => {
                let [t0, t1, t2, t3, _, _, _, _, s0, s1, s2, s3, s4, s5, s6, s7] = header;
                let sector = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);
                match u32::from_le_bytes([t0, t1, t2, t3]) {
                    VIRTIO_BLK_T_IN => (RequestKind::In, self.read(memory, backend, sector, &mut data)),
                    VIRTIO_BLK_T_OUT => (RequestKind::Out, self.write(memory, backend, sector, &mut reader)),
                    VIRTIO_BLK_T_FLUSH => (RequestKind::Flush, status_of(backend.flush())),
                    VIRTIO_BLK_T_GET_ID => (RequestKind::GetId, self.get_id(memory, &mut data)),
                    other => (RequestKind::Unsupported(other), VIRTIO_BLK_S_UNSUPP),
                }
            }
        };
        let status_written = status_writer.write_all(memory, &[status]).is_ok();
        // The used length is the written prefix: the data, then the status
        // byte only if the data before it was written whole.
        let used_len = if data.is_full() {
            data.end() + status_writer.written()
        } else {
            data.position()
        };
        Completion {
            kind,
            status: status_written.then_some(status),
            used_len: u32::try_from(used_len).unwrap_or(u32::MAX),
        }
    }

    /// The byte offset of `[sector × 512, + len)` if the range is whole
    /// sectors inside the capacity.
    fn range(&self, sector: u64, len: u64) -> Option<u64> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            return None;
        }
        let offset = sector.checked_mul(SECTOR_SIZE)?;
        let end = offset.checked_add(len)?;
        (end <= self.capacity * SECTOR_SIZE).then_some(offset)
    }

    fn read<M, B>(&self, memory: &mut M, backend: &mut B, sector: u64, data: &mut ChainWriter<'_>) -> u8
    where
        M: GuestMemory + ?Sized,
        B: BlockBackend + ?Sized,
    {
        let Some(mut offset) = self.range(sector, data.remaining()) else {
            return VIRTIO_BLK_S_IOERR;
        };
        let mut buf = [0u8; CHUNK];
        while data.remaining() > 0 {
            let len = data.remaining().min(CHUNK as u64) as usize;
            if backend.read_at(offset, &mut buf[..len]).is_err() || data.write_all(memory, &buf[..len]).is_err() {
                return VIRTIO_BLK_S_IOERR;
            }
            offset += len as u64;
        }
        VIRTIO_BLK_S_OK
    }

    fn write<M, B>(&self, memory: &M, backend: &mut B, sector: u64, reader: &mut ChainReader<'_>) -> u8
    where
        M: GuestMemory + ?Sized,
        B: BlockBackend + ?Sized,
    {
        if self.read_only {
            return VIRTIO_BLK_S_IOERR;
        }
        let Some(mut offset) = self.range(sector, reader.remaining()) else {
            return VIRTIO_BLK_S_IOERR;
        };
        let mut buf = [0u8; CHUNK];
        while reader.remaining() > 0 {
            let len = reader.remaining().min(CHUNK as u64) as usize;
            if reader.read_exact(memory, &mut buf[..len]).is_err() || backend.write_at(offset, &buf[..len]).is_err() {
                return VIRTIO_BLK_S_IOERR;
            }
            offset += len as u64;
        }
        if !self.writeback && backend.flush().is_err() {
            return VIRTIO_BLK_S_IOERR;
        }
        VIRTIO_BLK_S_OK
    }

    fn get_id<M: GuestMemory + ?Sized>(&self, memory: &mut M, data: &mut ChainWriter<'_>) -> u8 {
        let len = data.remaining().min(ID_BYTES as u64) as usize;
        match data.write_all(memory, &self.id[..len]) {
            Ok(()) => VIRTIO_BLK_S_OK,
            Err(_) => VIRTIO_BLK_S_IOERR,
        }
    }

    /// Serves the request queue: handles up to `budget` requests with
    /// available-buffer notifications off, turns them back on (looping if
    /// requests arrived meanwhile), and says whether to notify the driver.
    /// A [`QueueError`] means the device must be marked DEVICE_NEEDS_RESET.
    pub fn process_queue<M, B>(
        &self,
        queue: &mut Queue,
        memory: &mut M,
        backend: &mut B,
        budget: usize,
    ) -> Result<Processed, QueueError>
    where
        M: GuestMemory + ?Sized,
        B: BlockBackend + ?Sized,
    {
        let mut completed = 0;
        let more = 'outer: loop {
            queue.disable_notification(memory)?;
            while completed < budget {
                let Some(chain) = queue.pop(memory)? else {
                    break;
                };
                let completion = self.handle(memory, backend, &chain);
                queue.add_used(memory, chain.head(), completion.used_len)?;
                completed += 1;
            }
            if completed >= budget {
                // Leave notifications off: the caller comes back anyway.
                break 'outer true;
            }
            if !queue.enable_notification(memory)? {
                break 'outer false;
            }
        };
        let notify = queue.needs_notification(memory)?;
        Ok(Processed {
            completed,
            notify,
            more,
        })
    }
}

fn status_of(result: Result<(), BackendError>) -> u8 {
    match result {
        Ok(()) => VIRTIO_BLK_S_OK,
        Err(BackendError) => VIRTIO_BLK_S_IOERR,
    }
}

#[cfg(test)]
mod tests;
