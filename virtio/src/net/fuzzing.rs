//! The fuzzing entry point for virtio-net: arbitrary bytes in, no panic
//! out, invariants checked with `assert!` (a failed assertion is a
//! finding). Deterministic in its input; allocates nothing.

use super::{
    FrameSink, Net, NetOptions, RxDrop, RxOutcome, TxOutcome, HEADER_LEN, MAX_FRAME_LEN, MIN_FRAME_LEN, QUEUE_SIZE,
    VIRTIO_NET_F_MTU,
};
use crate::features::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC};
use crate::fuzzing::{queue_config, Input, Side};
use crate::memory::{GuestMemory, SliceMemory};
use crate::queue::{Queue, QueueFeatures};

/// Counts what it is given and checks every frame's length.
struct CheckingSink {
    max_frame_len: usize,
    frames: u64,
    bytes: u64,
}

impl FrameSink for CheckingSink {
    fn transmit(&mut self, frame: &[u8]) {
        assert!((MIN_FRAME_LEN..=self.max_frame_len).contains(&frame.len()));
        self.frames += 1;
        self.bytes += frame.len() as u64;
    }
}

/// Runs a virtio-net device's two queues over `memory` (guest memory at
/// guest-physical 0) as `ops` directs, while `ops` also plays a driver
/// rewriting memory between steps. The first 17 bytes of `ops` pick the
/// feature flags, the MTU and both queues' sizes and ring addresses; each
/// following byte is one step (serve the transmit queue with a budget,
/// receive a frame of a chosen length, the notification calls, toggle the
/// link, a driver store, a driver publishing one more entry on either
/// queue). Asserts that every frame handed on is within bounds, that every
/// chain taken is completed, the used element of each received frame, the
/// counters, and that a broken queue stays broken.
pub fn fuzz_net(memory: &mut [u8], ops: &[u8]) {
    let mut input = Input { bytes: ops };
    let flags = input.u8();
    let mtu = match input.u16() {
        0 => None,
        mtu => Some(mtu),
    };
    let mut net = Net::new(NetOptions {
        mac: [0x02, 0, 0, 0, 0, 1],
        mtu,
    });
    let mut features = net.device_features();
    if flags & 1 == 0 {
        features &= !VIRTIO_F_EVENT_IDX;
    }
    if flags & 2 == 0 {
        features &= !VIRTIO_F_INDIRECT_DESC;
    }
    if flags & 4 == 0 {
        features &= !VIRTIO_NET_F_MTU;
    }
    net.set_negotiated(features);
    let queue_features = QueueFeatures::from_negotiated(features);
    let rx_config = queue_config(&mut input, 9);
    let tx_config = queue_config(&mut input, 9);
    let (Ok(rx), Ok(tx)) = (
        Queue::new(rx_config, QUEUE_SIZE, queue_features, net.max_segments()),
        Queue::new(tx_config, QUEUE_SIZE, queue_features, net.max_segments()),
    ) else {
        return;
    };
    let mut rx = Side {
        queue: rx,
        broken: false,
    };
    let mut tx = Side {
        queue: tx,
        broken: false,
    };
    let mut memory = SliceMemory::new(0, memory);
    let mut sink = CheckingSink {
        max_frame_len: net.max_frame_len(),
        frames: 0,
        bytes: 0,
    };
    let mut frame = [0u8; MAX_FRAME_LEN + 64];
    for (i, byte) in frame.iter_mut().enumerate() {
        *byte = i as u8;
    }

    while !input.is_empty() && (!rx.broken || !tx.broken) {
        match input.u8() % 10 {
            0 | 1 => {
                let budget = usize::from(input.u8() % 8);
                let result = net.process_tx(&mut tx.queue, &mut memory, &mut sink, budget);
                if let Some(processed) = tx.check(&mut memory, result) {
                    assert_eq!(processed.completed, processed.transmitted + processed.dropped);
                    assert!(processed.completed <= budget);
                    assert!(!processed.more || processed.completed == budget);
                }
            }
            2 => {
                // One chain by hand, as a backend without process_tx would.
                let popped = tx.queue.pop(&memory);
                if let Some(Some(chain)) = tx.check(&mut memory, popped) {
                    let outcome = net.handle_tx(&memory, &mut sink, &chain);
                    if let TxOutcome::Transmitted { len } = outcome {
                        assert!(len as u64 + HEADER_LEN as u64 == chain.readable_len());
                    }
                    let result = tx.queue.add_used(&mut memory, chain.head(), 0);
                    tx.check(&mut memory, result);
                }
            }
            3 | 4 => {
                // Mostly frames of plausible sizes, sometimes any.
                let selector = input.u8();
                let len = if selector < 200 {
                    usize::from(input.u16()) % 1600
                } else {
                    usize::from(input.u16()) % frame.len()
                };
                let used_before = rx.queue.next_used();
                let result = net.receive(&mut rx.queue, &mut memory, &frame[..len]);
                if let Some(outcome) = rx.check(&mut memory, result) {
                    check_rx(&net, &rx.queue, &memory, used_before, len, outcome);
                }
            }
            5 => {
                let side = if input.u8().is_multiple_of(2) { &mut rx } else { &mut tx };
                let result = match input.u8() % 3 {
                    0 => side.queue.needs_notification(&memory).map(drop),
                    1 => side.queue.enable_notification(&mut memory).map(drop),
                    _ => side.queue.disable_notification(&mut memory),
                };
                side.check(&mut memory, result);
            }
            6 => {
                // Now and then the link goes down or comes back.
                if input.u8().is_multiple_of(4) {
                    net.set_link_up(!net.link_up());
                }
            }
            7 | 8 => {
                // The driver stores a byte anywhere, rings included.
                let len = memory.bytes().len();
                let at = usize::from(input.u16()) | usize::from(input.u8()) << 16;
                let value = input.u8();
                if len > 0 {
                    memory.bytes_mut()[at % len] = value;
                }
            }
            _ => {
                // The driver publishes one more entry on either queue.
                let config = if input.u8().is_multiple_of(2) {
                    rx_config
                } else {
                    tx_config
                };
                let at = config.avail_ring + 2;
                if let Ok(idx) = memory.read_u16(at) {
                    let _ = memory.write_u16(at, idx.wrapping_add(1));
                }
            }
        }
        // Every chain taken is completed, unless the queue broke on the
        // way (a refused used-ring write): the driver must reset it then.
        for queue in [&rx.queue, &tx.queue] {
            assert!(queue.in_flight() == 0 || queue.is_broken());
        }
        let stats = net.stats();
        assert_eq!((stats.tx_frames, stats.tx_bytes), (sink.frames, sink.bytes));
    }
}

/// Checks a receive outcome against the used ring: a completed chain's
/// element is the last thing written, so it still reads back.
fn check_rx(net: &Net, queue: &Queue, memory: &SliceMemory<'_>, used_before: u16, len: usize, outcome: RxOutcome) {
    let completed = queue.next_used().wrapping_sub(used_before);
    let in_bounds = (MIN_FRAME_LEN..=net.max_frame_len()).contains(&len);
    let expected_len = match outcome {
        RxOutcome::NoBuffer => {
            assert!(in_bounds && net.link_up());
            assert_eq!(completed, 0);
            return;
        }
        RxOutcome::Dropped {
            reason: RxDrop::LinkDown | RxDrop::TooShort | RxDrop::TooLong,
            notify,
        } => {
            assert!(!in_bounds || !net.link_up());
            assert!(!notify);
            assert_eq!(completed, 0);
            return;
        }
        RxOutcome::Dropped { .. } => 0,
        RxOutcome::Delivered { .. } => HEADER_LEN + len,
    };
    assert!(in_bounds);
    assert_eq!(completed, 1);
    let config = queue.config();
    let slot = u64::from(used_before & (config.size - 1));
    let used_len = memory.read_u32(config.used_ring + 8 + 8 * slot);
    assert_eq!(used_len, Ok(expected_len as u32));
}
