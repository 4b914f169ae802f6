//! Entry points for fuzz targets: arbitrary bytes in, no panic out, and the
//! crate's invariants checked with `assert!` along the way (a failed
//! assertion is a finding).
//!
//! The libFuzzer targets are `fuzz/fuzz_targets/virtqueue.rs` (steps first,
//! then the initial guest memory) and `fuzz/fuzz_targets/virtio_pci.rs`;
//! the devices' own entry points (`net::fuzz_net`, `console::fuzz_console`,
//! targets `virtio_net` and `virtio_console`) share the input reader and
//! queue harness here ([`Input`], [`queue_config`], [`Side`]).
//!
//! Every function is deterministic in its input and allocates nothing.

use crate::blk::{BackendError, Blk, BlkOptions, BlockBackend};
use crate::chain::MAX_CHAIN_SEGMENTS;
use crate::features::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1};
use crate::memory::{GuestMemory, SliceMemory};
use crate::pci::{FunctionConfig, VirtioPciFunction, MMIO_BAR_SIZE};
use crate::queue::{Queue, QueueConfig, QueueError, QueueFeatures};
use crate::status::{DRIVER_OK, FEATURES_OK};

/// Bytes consumed one field at a time; reads past the end give zeros.
/// Shared by every device's fuzzing entry point.
pub(crate) struct Input<'a> {
    pub(crate) bytes: &'a [u8],
}

impl Input<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&first, rest)) => {
                self.bytes = rest;
                first
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
}

/// A queue configuration from 7 input bytes: a power-of-two size below
/// `2^max_log2`, ring addresses anywhere in the first 1 MiB, 128 KiB and
/// 256 KiB.
pub(crate) fn queue_config(input: &mut Input<'_>, max_log2: u8) -> QueueConfig {
    QueueConfig {
        size: 1 << (input.u8() % max_log2),
        desc_table: u64::from(input.u16()) * 16,
        avail_ring: u64::from(input.u16()) * 2,
        used_ring: u64::from(input.u16()) * 4,
    }
}

/// One queue under test in a device harness, and what it knows about it.
pub(crate) struct Side {
    pub(crate) queue: Queue,
    pub(crate) broken: bool,
}

impl Side {
    /// Checks a queue call's result: success leaves the queue usable, a
    /// driver-caused error breaks it for good.
    pub(crate) fn check<T>(&mut self, memory: &mut SliceMemory<'_>, result: Result<T, QueueError>) -> Option<T> {
        match result {
            Ok(value) => {
                assert!(!self.broken && !self.queue.is_broken());
                Some(value)
            }
            Err(QueueError::NotInFlight { .. }) => unreachable!("the device completes every chain it takes"),
            Err(error) => {
                assert!(self.queue.is_broken());
                assert!(error == QueueError::Broken || error.needs_reset());
                assert!(error != QueueError::Broken || self.broken);
                assert_eq!(self.queue.pop(memory), Err(QueueError::Broken));
                self.broken = true;
                None
            }
        }
    }
}

/// A 16-sector disk in an array.
struct ArrayDisk {
    bytes: [u8; 16 * 512],
}

impl BlockBackend for ArrayDisk {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        let start = usize::try_from(offset).map_err(|_| BackendError)?;
        let end = start.checked_add(buf.len()).ok_or(BackendError)?;
        buf.copy_from_slice(self.bytes.get(start..end).ok_or(BackendError)?);
        Ok(())
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        let start = usize::try_from(offset).map_err(|_| BackendError)?;
        let end = start.checked_add(data.len()).ok_or(BackendError)?;
        self.bytes
            .get_mut(start..end)
            .ok_or(BackendError)?
            .copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
}

const IN_FLIGHT: usize = 64;

/// Runs a device-side queue over `image` (guest memory at guest-physical
/// 0) as `ops` directs, while `ops` also plays a driver rewriting memory
/// between steps. The first 10 bytes of `ops` pick the queue's size,
/// features, segment limit and ring addresses; each following byte is one
/// step (pop, pop and serve as virtio-blk, complete, notification
/// handling, a driver store, publishing).
pub fn virtqueue(image: &mut [u8], ops: &[u8]) {
    let mut input = Input { bytes: ops };
    let size = 1u16 << (input.u8() % 16);
    let flags = input.u8();
    let features = QueueFeatures {
        event_idx: flags & 1 != 0,
        indirect: flags & 2 != 0,
    };
    let max_segments = usize::from(input.u8()) + 1;
    let config = QueueConfig {
        size,
        desc_table: u64::from(input.u16()) * 16,
        avail_ring: u64::from(input.u16()) * 2,
        used_ring: u64::from(input.u16()) * 4,
    };
    let Ok(mut queue) = Queue::new(config, size, features, max_segments) else {
        return;
    };
    let mut memory = SliceMemory::new(0, image);
    let mut blk = Blk::new(16 * 512, BlkOptions::default());
    blk.set_negotiated(if flags & 4 != 0 { blk.device_features() } else { 0 });
    let mut disk = ArrayDisk { bytes: [0; 16 * 512] };
    let mut in_flight = [0u16; IN_FLIGHT];
    let mut held = 0usize;
    let mut popped = 0u64;
    let mut completed = 0u64;

    while !input.is_empty() {
        let result = match input.u8() % 8 {
            0 | 1 => match queue.pop(&memory) {
                Ok(Some(chain)) => {
                    popped += 1;
                    check_chain(&queue, &chain);
                    let serve = held == IN_FLIGHT || input.u8().is_multiple_of(2);
                    if serve {
                        let completion = blk.handle(&mut memory, &mut disk, &chain);
                        assert!(u64::from(completion.used_len) <= chain.writable_len());
                        let result = queue.add_used(&mut memory, chain.head(), completion.used_len);
                        if result.is_ok() {
                            completed += 1;
                            check_used_idx(&queue, &memory);
                        }
                        result
                    } else {
                        in_flight[held] = chain.head();
                        held += 1;
                        Ok(())
                    }
                }
                Ok(None) => Ok(()),
                Err(error) => Err(error),
            },
            2 if held > 0 => {
                held -= 1;
                let result = queue.add_used(&mut memory, in_flight[held], input.u32());
                if result.is_ok() {
                    completed += 1;
                    check_used_idx(&queue, &memory);
                }
                result
            }
            3 => queue.needs_notification(&memory).map(drop),
            4 => queue.enable_notification(&mut memory).map(drop),
            5 => queue.disable_notification(&mut memory),
            6 => {
                // The driver stores a byte anywhere, rings included.
                let len = memory.bytes().len();
                let at = usize::from(input.u16());
                let value = input.u8();
                if len > 0 {
                    memory.bytes_mut()[at % len] = value;
                }
                Ok(())
            }
            _ => {
                // The driver publishes one more entry.
                let at = config.avail_ring + 2;
                if let Ok(idx) = memory.read_u16(at) {
                    let _ = memory.write_u16(at, idx.wrapping_add(1));
                }
                Ok(())
            }
        };
        assert_eq!(u64::from(queue.in_flight()), popped - completed);
        match result {
            Ok(()) => assert!(!queue.is_broken()),
            Err(QueueError::NotInFlight { .. }) => unreachable!("held heads are in flight"),
            Err(error) => {
                assert!(queue.is_broken());
                assert!(error == QueueError::Broken || error.needs_reset());
                assert_eq!(queue.pop(&memory), Err(QueueError::Broken));
                assert_eq!(queue.add_used(&mut memory, 0, 0), Err(QueueError::Broken));
                return;
            }
        }
    }
}

fn check_chain(queue: &Queue, chain: &crate::chain::DescriptorChain) {
    let segments = chain.segments();
    assert!(!segments.is_empty() && segments.len() <= queue.max_segments().min(MAX_CHAIN_SEGMENTS));
    assert!(chain.head() < queue.size());
    let readable = chain.readable().len();
    assert!(segments[..readable].iter().all(|s| !s.writable));
    assert!(segments[readable..].iter().all(|s| s.writable));
    assert!(segments.iter().all(|s| s.addr.checked_add(u64::from(s.len)).is_some()));
    assert!(chain.readable_len() + chain.writable_len() <= u64::from(u32::MAX));
}

fn check_used_idx(queue: &Queue, memory: &SliceMemory<'_>) {
    // used.idx is the last thing add_used writes.
    let used_idx = memory.read_u16(queue.config().used_ring + 2);
    assert_eq!(used_idx, Ok(queue.next_used()));
}

/// Drives a virtio-pci function with arbitrary register accesses and
/// device-side events, checking after each step that the transport's
/// promises hold (FEATURES_OK only for acceptable features, DRIVER_OK only
/// after FEATURES_OK, enabled queues have valid layouts, released
/// interrupts run out).
pub fn pci_transport(ops: &[u8]) {
    let mut input = Input { bytes: ops };
    let num_queues = u16::from(input.u8() % 4) + 1;
    let config = FunctionConfig {
        device_type: u16::from(input.u8() % 4),
        device_features: VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC | u64::from(input.u16()),
        num_queues,
        queue_max_size: 1 << (input.u8() % 9),
        msix_vectors: u16::from(input.u8() % 8) + 1,
        notify_off_multiplier: [0, 2, 4][usize::from(input.u8() % 3)],
    };
    let mut device_config = [0u8; 16];
    let config_len = usize::from(input.u8() % 17);
    let Ok(mut function) = VirtioPciFunction::new(config, &device_config[..config_len]) else {
        return;
    };
    const SIZES: [u8; 4] = [1, 2, 4, 8];
    while !input.is_empty() {
        match input.u8() % 10 {
            0 => {
                let size = SIZES[usize::from(input.u8() % 4)];
                let _ = function.mmio_read(u64::from(input.u16()) % MMIO_BAR_SIZE, size);
            }
            1 | 2 => {
                // Mostly the common configuration, sometimes anywhere.
                let size = SIZES[usize::from(input.u8() % 4)];
                let selector = input.u8();
                let offset = if selector < 192 {
                    u64::from(selector % 0x38)
                } else {
                    u64::from(input.u16()) % MMIO_BAR_SIZE
                };
                let _ = function.mmio_write(offset, size, input.u64());
            }
            3 => {
                let _ = function.config_read(u16::from(input.u8()), SIZES[usize::from(input.u8() % 3)]);
            }
            4 => {
                let offset = u16::from(input.u8());
                let size = SIZES[usize::from(input.u8() % 3)];
                let _ = function.config_write(offset, size, input.u32());
            }
            5 => {
                let _ = function.notify_write(u64::from(input.u8()), SIZES[usize::from(input.u8() % 3)], input.u32());
            }
            6 => {
                let _ = function.signal_queue(u16::from(input.u8() % 8));
            }
            7 => {
                device_config[usize::from(input.u8() % 16)] = input.u8();
                let _ = function.set_device_config(&device_config[..config_len]);
            }
            8 => function.complete_reset(),
            _ => {
                let _ = function.set_needs_reset();
            }
        }
        let mut released = 0;
        while function.next_released_interrupt().is_some() {
            released += 1;
            assert!(released <= usize::from(config.msix_vectors));
        }
        let status = function.status();
        if let Some(features) = function.negotiated_features() {
            assert_eq!(features & !config.device_features, 0);
            assert_ne!(features & VIRTIO_F_VERSION_1, 0);
        }
        if status & DRIVER_OK != 0 {
            assert_ne!(status & FEATURES_OK, 0);
        }
        for n in 0..num_queues {
            if let Some(queue) = function.queue_config(n) {
                assert_eq!(queue.validate(config.queue_max_size), Ok(()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_ring::Rng;
    use std::vec;

    #[test]
    fn random_virtqueue_inputs() {
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        for round in 0..3000 {
            let mut image = vec![0u8; 256 + rng.below(4096) as usize];
            rng.fill(&mut image);
            let mut ops = vec![0u8; rng.below(512) as usize];
            rng.fill(&mut ops);
            // Small queues near the start of memory, so rings are mostly
            // reachable and the run gets past the first pop.
            if ops.len() >= 10 && round % 2 == 0 {
                ops[0] %= 5;
                for field in [3, 5, 7] {
                    ops[field] %= 16;
                    ops[field + 1] = 0;
                }
            }
            virtqueue(&mut image, &ops);
        }
    }

    #[test]
    fn random_pci_inputs() {
        let mut rng = Rng(0xFEDC_BA98_7654_3210);
        for _ in 0..2000 {
            let mut ops = vec![0u8; rng.below(1024) as usize];
            rng.fill(&mut ops);
            pci_transport(&ops);
        }
    }

    #[test]
    fn empty_and_tiny_inputs() {
        virtqueue(&mut [], &[]);
        virtqueue(&mut [0; 64], &[0; 10]);
        virtqueue(&mut [0xFF; 64], &[1, 3, 0, 0, 0, 1, 0, 2, 0, 7, 0, 1, 7, 0]);
        pci_transport(&[]);
        pci_transport(&[0xFF; 64]);
    }
}
