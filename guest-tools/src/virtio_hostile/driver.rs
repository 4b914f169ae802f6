//! The scenarios, carried out by a minimal virtio 1.x driver (polling, no
//! interrupts: MSI-X stays off and the avail ring asks for none) over any
//! [`Hardware`]: the Linux one in the binary, or a model in the tests.
//!
//! Ordering (virtio 1.x, 2.7.13): descriptors and the ring entry are
//! written first, then `avail.idx` with a release store, then a full fence
//! before the notification, so the device sees the ring before the kick.
//! A completion is taken by an acquire load of `used.idx` before the used
//! element and the status byte are read.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use super::{
    common, describe_status, hex, request_header, sector_request, status, used_entry, Buffers, Capabilities,
    Descriptor, Page, AVAIL_FLAGS, AVAIL_IDX, PAGE_SIZE, QUEUE_SIZE, REQUEST_HEADER, REQUEST_STATUS, SECTOR_SIZE,
    USED_IDX, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VIRTIO_F_VERSION_1, VIRTQ_AVAIL_F_NO_INTERRUPT,
};

mod scenarios;

pub use scenarios::{run_all, REWRITE_ROUNDS};

/// The device and the driver's memory.
pub trait Hardware {
    /// A read of `size` (1, 2 or 4) bytes at `offset` of the BAR that holds
    /// the common configuration (one access of that width).
    fn mmio_read(&mut self, offset: u64, size: u8) -> u64;
    fn mmio_write(&mut self, offset: u64, size: u8, value: u64);
    /// Writes the 16-bit `value` at `offset` of the notification BAR.
    fn notify(&mut self, offset: u64, value: u16) -> Result<(), String>;
    /// Guest-physical address of a page.
    fn page_gpa(&self, page: Page) -> u64;
    /// Copies into a page; 1, 2, 4 and 8 bytes at a multiple of their size
    /// are one store.
    fn dma_write(&mut self, page: Page, offset: usize, bytes: &[u8]);
    fn dma_read(&mut self, page: Page, offset: usize, buf: &mut [u8]);
    /// A release store of a ring index.
    fn dma_publish_u16(&mut self, page: Page, offset: usize, value: u16);
    /// An acquire load of a ring index.
    fn dma_observe_u16(&mut self, page: Page, offset: usize) -> u16;
    /// Lets the device work a while (between polls).
    fn pause(&mut self);
    /// Whether every page is still where [`page_gpa`](Self::page_gpa) says.
    fn check_pages(&mut self) -> Result<(), String>;
}

/// How a scenario ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok(String),
    Skipped(String),
    Failed(String),
}

/// What the device did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// `used` element: head and length.
    Completed {
        id: u32,
        len: u32,
    },
    NeedsReset,
    TimedOut,
}

/// Byte written to the data page before a read, and to the status byte.
const DATA_FILL: u8 = 0xA5;
const STATUS_UNSET: u8 = 0xFF;

pub struct Driver<'h, H: Hardware> {
    hw: &'h mut H,
    caps: Capabilities,
    wait: Duration,
    seed: u64,
    /// Features the device offers (read by [`probe`](Self::probe)).
    offered: u64,
    /// Free-running index of the next avail entry.
    next_avail: u16,
    /// `used.idx` as far as the driver has taken completions.
    used_seen: u16,
    /// Queue 0's notification address in the notification BAR.
    notify_at: u64,
    /// Sector 0 as the first valid read found it.
    reference: Option<Vec<u8>>,
}

impl<'h, H: Hardware> Driver<'h, H> {
    pub fn new(hw: &'h mut H, caps: Capabilities, wait: Duration, seed: u64) -> Self {
        Self {
            hw,
            caps,
            wait,
            seed,
            offered: 0,
            next_avail: 0,
            used_seen: 0,
            notify_at: 0,
            reference: None,
        }
    }

    pub fn hardware(&mut self) -> &mut H {
        self.hw
    }

    // --- registers ---

    fn common_read(&mut self, field: u64, size: u8) -> u64 {
        self.hw.mmio_read(u64::from(self.caps.common.offset) + field, size)
    }

    fn common_write(&mut self, field: u64, size: u8, value: u64) {
        self.hw
            .mmio_write(u64::from(self.caps.common.offset) + field, size, value);
    }

    pub fn status(&mut self) -> u8 {
        self.common_read(common::DEVICE_STATUS, 1) as u8
    }

    fn set_status(&mut self, value: u8) {
        self.common_write(common::DEVICE_STATUS, 1, u64::from(value));
    }

    /// Writes a 64-bit queue address as two 32-bit halves, low first (as
    /// Linux does; the transport takes both forms).
    fn write_address(&mut self, field: u64, gpa: u64) {
        self.common_write(field, 4, gpa & 0xFFFF_FFFF);
        self.common_write(field + 4, 4, gpa >> 32);
    }

    /// Polls `done` until it holds or the wait runs out.
    fn wait_until(&mut self, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if done(self) {
                return true;
            }
            if start.elapsed() >= self.wait {
                return false;
            }
            self.hw.pause();
        }
    }

    /// Status 0, then polls until the device reads 0 (its backend let go
    /// of the rings).
    pub fn reset(&mut self) -> Result<(), String> {
        self.set_status(0);
        if self.wait_until(|driver| driver.status() == 0) {
            Ok(())
        } else {
            let status = self.status();
            Err(format!(
                "reset: status still {} after {} s",
                describe_status(status),
                self.wait.as_secs()
            ))
        }
    }

    /// Sets ACKNOWLEDGE until it reads back. A reset the device started
    /// from status 0 reads 0 at once, yet keel-virtio's transport ignores
    /// register writes until the backend acknowledges the reset.
    fn acknowledge(&mut self) -> Result<(), String> {
        let taken = self.wait_until(|driver| {
            driver.set_status(status::ACKNOWLEDGE);
            driver.status() == status::ACKNOWLEDGE
        });
        if taken {
            Ok(())
        } else {
            let now = self.status();
            Err(format!(
                "ACKNOWLEDGE not taken within {} s after reset (status {})",
                self.wait.as_secs(),
                describe_status(now)
            ))
        }
    }

    /// Resets the device and reads what it offers: features and capacity.
    pub fn probe(&mut self) -> Result<(u64, u64), String> {
        self.reset()?;
        self.acknowledge()?;
        self.set_status(status::ACKNOWLEDGE | status::DRIVER);
        let mut features = 0;
        for select in [0u64, 1] {
            self.common_write(common::DEVICE_FEATURE_SELECT, 4, select);
            features |= self.common_read(common::DEVICE_FEATURE, 4) << (32 * select);
        }
        self.offered = features;
        let capacity = match self.caps.device {
            Some(device) => {
                let at = u64::from(device.offset);
                self.hw.mmio_read(at, 4) | self.hw.mmio_read(at + 4, 4) << 32
            }
            None => 0,
        };
        self.reset()?;
        Ok((features, capacity))
    }

    /// Resets and initialises the device (virtio 1.x, 3.1.1) with
    /// VIRTIO_F_VERSION_1 and `extra` accepted, queue 0 of 8 entries over
    /// zeroed rings, MSI-X vectors left unassigned, up to DRIVER_OK.
    pub fn setup(&mut self, extra: u64) -> Result<(), String> {
        let features = VIRTIO_F_VERSION_1 | extra;
        if self.offered & features != features {
            return Err(format!(
                "device offers features {:#x}, without {:#x}",
                self.offered,
                features & !self.offered
            ));
        }
        self.reset()?;
        for page in [Page::Desc, Page::Avail, Page::Used] {
            self.hw.dma_write(page, 0, &[0; PAGE_SIZE]);
        }
        self.hw
            .dma_write(Page::Avail, AVAIL_FLAGS, &VIRTQ_AVAIL_F_NO_INTERRUPT.to_le_bytes());
        self.next_avail = 0;
        self.used_seen = 0;
        self.acknowledge()?;
        let mut bits = status::ACKNOWLEDGE | status::DRIVER;
        self.set_status(bits);
        for select in [0u64, 1] {
            self.common_write(common::DRIVER_FEATURE_SELECT, 4, select);
            self.common_write(common::DRIVER_FEATURE, 4, (features >> (32 * select)) & 0xFFFF_FFFF);
        }
        bits |= status::FEATURES_OK;
        self.set_status(bits);
        let now = self.status();
        if now & status::FEATURES_OK == 0 {
            return Err(format!(
                "FEATURES_OK refused for {features:#x} (status {})",
                describe_status(now)
            ));
        }
        self.common_write(common::QUEUE_SELECT, 2, 0);
        let max = self.common_read(common::QUEUE_SIZE, 2) as u16;
        if max < QUEUE_SIZE {
            return Err(format!("queue 0 holds only {max} entries"));
        }
        self.common_write(common::QUEUE_SIZE, 2, u64::from(QUEUE_SIZE));
        let size = self.common_read(common::QUEUE_SIZE, 2);
        if size != u64::from(QUEUE_SIZE) {
            return Err(format!("queue size {QUEUE_SIZE} not taken (reads {size})"));
        }
        let (desc, avail, used) = (
            self.hw.page_gpa(Page::Desc),
            self.hw.page_gpa(Page::Avail),
            self.hw.page_gpa(Page::Used),
        );
        let notify_off = self.common_read(common::QUEUE_NOTIFY_OFF, 2);
        self.notify_at = u64::from(self.caps.notify.offset) + notify_off * u64::from(self.caps.notify_off_multiplier);
        self.write_address(common::QUEUE_DESC, desc);
        self.write_address(common::QUEUE_DRIVER, avail);
        self.write_address(common::QUEUE_DEVICE, used);
        self.common_write(common::QUEUE_ENABLE, 2, 1);
        if self.common_read(common::QUEUE_ENABLE, 2) != 1 {
            let now = self.status();
            return Err(format!("queue 0 not enabled (status {})", describe_status(now)));
        }
        bits |= status::DRIVER_OK;
        self.set_status(bits);
        let now = self.status();
        if now != bits {
            return Err(format!("status {} after DRIVER_OK", describe_status(now)));
        }
        Ok(())
    }

    // --- the ring ---

    /// Descriptors from index 0 of a table, each field one store.
    fn write_descriptors(&mut self, page: Page, descriptors: &[Descriptor]) {
        for (index, descriptor) in (0..).zip(descriptors) {
            let at = super::descriptor_offset(index);
            let bytes = descriptor.encode();
            for (start, end) in [(0, 8), (8, 12), (12, 14), (14, 16)] {
                self.hw.dma_write(page, at + start, &bytes[start..end]);
            }
        }
    }

    /// Puts `head` in the next avail entry and moves `avail.idx` past it.
    fn publish(&mut self, head: u16) {
        self.hw
            .dma_write(Page::Avail, super::avail_entry(self.next_avail), &head.to_le_bytes());
        self.next_avail = self.next_avail.wrapping_add(1);
        self.publish_idx(self.next_avail);
    }

    fn publish_idx(&mut self, idx: u16) {
        fence(Ordering::Release);
        self.hw.dma_publish_u16(Page::Avail, AVAIL_IDX, idx);
    }

    /// Notifies queue 0, after a full fence (the spec's barrier between
    /// `avail.idx` and reading `used.flags`; no suppression is honoured).
    fn kick(&mut self) -> Result<(), String> {
        fence(Ordering::SeqCst);
        self.hw.notify(self.notify_at, 0)
    }

    /// Waits for the next completion or DEVICE_NEEDS_RESET.
    fn wait_outcome(&mut self) -> Outcome {
        let mut outcome = Outcome::TimedOut;
        self.wait_until(|driver| {
            let used = driver.hw.dma_observe_u16(Page::Used, USED_IDX);
            if used != driver.used_seen {
                let mut element = [0u8; 8];
                driver
                    .hw
                    .dma_read(Page::Used, used_entry(driver.used_seen), &mut element);
                driver.used_seen = driver.used_seen.wrapping_add(1);
                let [i0, i1, i2, i3, l0, l1, l2, l3] = element;
                outcome = Outcome::Completed {
                    id: u32::from_le_bytes([i0, i1, i2, i3]),
                    len: u32::from_le_bytes([l0, l1, l2, l3]),
                };
                return true;
            }
            if driver.status() & status::DEVICE_NEEDS_RESET != 0 {
                outcome = Outcome::NeedsReset;
                return true;
            }
            false
        });
        outcome
    }

    fn buffers(&self) -> Buffers {
        let request = self.hw.page_gpa(Page::Request);
        Buffers {
            header: request + REQUEST_HEADER as u64,
            data: self.hw.page_gpa(Page::Data),
            status: request + REQUEST_STATUS as u64,
        }
    }

    /// Header and status byte of a request on sector 0.
    fn prepare_request(&mut self, kind: u32) {
        self.hw
            .dma_write(Page::Request, REQUEST_HEADER, &request_header(kind, 0));
        self.hw.dma_write(Page::Request, REQUEST_STATUS, &[STATUS_UNSET]);
    }

    fn request_status(&mut self) -> u8 {
        let mut byte = [0u8];
        self.hw.dma_read(Page::Request, REQUEST_STATUS, &mut byte);
        byte[0]
    }

    /// Waits for the completion of head 0 and returns its used length and
    /// status byte.
    fn expect_completion(&mut self) -> Result<(u32, u8), String> {
        match self.wait_outcome() {
            Outcome::Completed { id: 0, len } => Ok((len, self.request_status())),
            Outcome::Completed { id, .. } => Err(format!("completed head {id}, not 0")),
            Outcome::NeedsReset => {
                let now = self.status();
                Err(format!("device needs reset (status {})", describe_status(now)))
            }
            Outcome::TimedOut => Err(self.timed_out("no completion")),
        }
    }

    fn timed_out(&mut self, what: &str) -> String {
        let now = self.status();
        let used = self.hw.dma_observe_u16(Page::Used, USED_IDX);
        format!(
            "{what} within {} s (status {}, avail.idx {}, used.idx {used})",
            self.wait.as_secs(),
            describe_status(now),
            self.next_avail
        )
    }

    /// A correct read of sector 0 in descriptors 0-2: must complete with
    /// OK, and give the same bytes as the first one did. Returns the
    /// sector and the used length.
    pub fn valid_read(&mut self) -> Result<(Vec<u8>, u32), String> {
        self.prepare_request(VIRTIO_BLK_T_IN);
        self.hw.dma_write(Page::Data, 0, &[DATA_FILL; SECTOR_SIZE]);
        self.write_descriptors(Page::Desc, &sector_request(0, self.buffers(), false));
        self.publish(0);
        self.kick()?;
        let (len, status) = self.expect_completion().map_err(|why| format!("valid read: {why}"))?;
        if status != VIRTIO_BLK_S_OK {
            return Err(format!("valid read: status {status:#04x}, not OK"));
        }
        let mut sector = vec![0u8; SECTOR_SIZE];
        self.hw.dma_read(Page::Data, 0, &mut sector);
        match &self.reference {
            Some(reference) if *reference != sector => Err(format!(
                "valid read: sector 0 now begins {}, first read {}",
                hex(&sector[..16]),
                hex(&reference[..16])
            )),
            Some(_) => Ok((sector, len)),
            None => {
                self.reference = Some(sector.clone());
                Ok((sector, len))
            }
        }
    }

    /// A reset, initialisation and a valid read.
    fn recover(&mut self) -> Result<(), String> {
        self.setup(0).map_err(|why| format!("recovery: {why}"))?;
        self.valid_read()
            .map(|_| ())
            .map_err(|why| format!("after reset: {why}"))
    }

    /// Expects DEVICE_NEEDS_RESET, and no completion.
    fn expect_needs_reset(&mut self) -> Result<(), String> {
        match self.wait_outcome() {
            Outcome::NeedsReset => {}
            Outcome::Completed { id, len } => {
                let status = self.request_status();
                return Err(format!(
                    "completed (head {id}, len {len}, status byte {status:#04x}) instead of DEVICE_NEEDS_RESET"
                ));
            }
            Outcome::TimedOut => return Err(self.timed_out("no DEVICE_NEEDS_RESET")),
        }
        let used = self.hw.dma_observe_u16(Page::Used, USED_IDX);
        if used != self.used_seen {
            return Err(format!("DEVICE_NEEDS_RESET, but used.idx moved to {used}"));
        }
        Ok(())
    }
}
