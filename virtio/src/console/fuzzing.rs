//! The fuzzing entry point for virtio-console: arbitrary bytes in, no
//! panic out, invariants checked with `assert!` (a failed assertion is a
//! finding). Deterministic in its input; allocates nothing.

use super::{
    Console, ConsoleOptions, ConsoleRxOutcome, ConsoleSink, ConsoleTxOutcome, TxTruncation, CONFIG_COLS,
    CONFIG_MAX_NR_PORTS, CONFIG_ROWS, MAX_TX_CHAIN_LEN, QUEUE_SIZE, TX_CHUNK_LEN, VIRTIO_CONSOLE_F_SIZE,
};
use crate::features::{VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC};
use crate::fuzzing::{queue_config, Input, Side};
use crate::memory::{GuestMemory, SliceMemory};
use crate::queue::{Queue, QueueFeatures};

/// The longest input one receive step offers: more than a page, so a
/// step can fill several of Linux-sized buffers.
const MAX_INPUT: usize = 6000;

/// Counts what it is given and checks every chunk's length.
struct CheckingSink {
    bytes: u64,
}

impl ConsoleSink for CheckingSink {
    fn write(&mut self, bytes: &[u8]) {
        assert!((1..=TX_CHUNK_LEN).contains(&bytes.len()));
        self.bytes += bytes.len() as u64;
    }
}

/// Runs a virtio-console device's two queues over `memory` (guest memory
/// at guest-physical 0) as `ops` directs, while `ops` also plays a driver
/// rewriting memory between steps. The first 19 bytes of `ops` pick the
/// feature flags, the console size and both queues' sizes and ring
/// addresses; each following byte is one step (serve the transmit queue
/// with a budget, one transmit chain by hand, receive an input of a chosen
/// length, the notification calls, a resize, a driver store, a driver
/// publishing one more entry on either queue). Asserts what the sink gets
/// (chunk sizes, totals, the per-chain cap), that every chain taken is
/// completed, what each receive reports against the used ring and the
/// counters, and that a broken queue stays broken.
pub fn fuzz_console(memory: &mut [u8], ops: &[u8]) {
    let mut input = Input { bytes: ops };
    let flags = input.u8();
    let size = (input.u16(), input.u16());
    let mut console = Console::new(ConsoleOptions {
        size: (flags & 4 != 0).then_some(size),
    });
    let mut features = console.device_features();
    if flags & 1 == 0 {
        features &= !VIRTIO_F_EVENT_IDX;
    }
    if flags & 2 == 0 {
        features &= !VIRTIO_F_INDIRECT_DESC;
    }
    if flags & 8 == 0 {
        features &= !VIRTIO_CONSOLE_F_SIZE;
    }
    console.set_negotiated(features);
    assert_eq!(console.negotiated() & !console.device_features(), 0);
    let queue_features = QueueFeatures::from_negotiated(features);
    let rx_config = queue_config(&mut input, 8);
    let tx_config = queue_config(&mut input, 8);
    let (Ok(rx), Ok(tx)) = (
        Queue::new(rx_config, QUEUE_SIZE, queue_features, console.max_segments()),
        Queue::new(tx_config, QUEUE_SIZE, queue_features, console.max_segments()),
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
    let mut sink = CheckingSink { bytes: 0 };
    let mut data = [0u8; MAX_INPUT];
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = i as u8;
    }

    while !input.is_empty() && (!rx.broken || !tx.broken) {
        let before = console.stats();
        let sink_before = sink.bytes;
        match input.u8() % 10 {
            0 | 1 => {
                let budget = usize::from(input.u8() % 8);
                let result = console.process_tx(&mut tx.queue, &mut memory, &mut sink, budget);
                if let Some(processed) = tx.check(&mut memory, result) {
                    assert!(processed.completed <= budget);
                    assert!(!processed.more || processed.completed == budget);
                    assert!(processed.truncated <= processed.completed);
                    assert_eq!(processed.bytes, sink.bytes - sink_before);
                    assert!(processed.bytes <= (processed.completed * MAX_TX_CHAIN_LEN) as u64);
                    let stats = console.stats();
                    assert_eq!(stats.tx_chains - before.tx_chains, processed.completed as u64);
                    assert_eq!(stats.tx_truncated - before.tx_truncated, processed.truncated as u64);
                }
            }
            2 => {
                // One chain by hand, as a backend without process_tx would.
                let popped = tx.queue.pop(&memory);
                if let Some(Some(chain)) = tx.check(&mut memory, popped) {
                    let outcome = console.handle_tx(&memory, &mut sink, &chain);
                    check_tx(chain.readable_len(), outcome);
                    assert_eq!(outcome.len() as u64, sink.bytes - sink_before);
                    let result = tx.queue.add_used(&mut memory, chain.head(), 0);
                    tx.check(&mut memory, result);
                }
            }
            3 | 4 => {
                let len = usize::from(input.u16()) % (MAX_INPUT + 1);
                let used_before = rx.queue.next_used();
                let result = console.receive(&mut rx.queue, &mut memory, &data[..len]);
                if let Some(outcome) = rx.check(&mut memory, result) {
                    check_rx(&rx.queue, &memory, used_before, len, outcome);
                    let stats = console.stats();
                    assert_eq!(stats.rx_bytes - before.rx_bytes, outcome.consumed as u64);
                    assert_eq!(stats.rx_chains - before.rx_chains, outcome.completed as u64);
                    assert_eq!(stats.rx_starved - before.rx_starved, u64::from(outcome.starved));
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
                // The backend's terminal is resized.
                let (cols, rows) = (u16::from(input.u8()), u16::from(input.u8()));
                let old = console.size();
                let changed = console.set_size(cols, rows);
                assert_eq!(changed, old.is_some_and(|size| size != (cols, rows)));
                assert_eq!(console.size(), old.map(|_| (cols, rows)));
                let config = console.config();
                let expected = console.size().unwrap_or((0, 0));
                let field = |at: usize| u16::from_le_bytes([config[at], config[at + 1]]);
                assert_eq!((field(CONFIG_COLS), field(CONFIG_ROWS)), expected);
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
        let stats = console.stats();
        assert_eq!(stats.tx_bytes, sink.bytes);
        assert!(stats.tx_truncated <= stats.tx_chains && stats.rx_faults <= stats.rx_chains);
        let config = console.config();
        assert_eq!(config[CONFIG_MAX_NR_PORTS..CONFIG_MAX_NR_PORTS + 4], 1u32.to_le_bytes());
    }
}

/// Checks one transmit chain's outcome against its readable length.
fn check_tx(readable_len: u64, outcome: ConsoleTxOutcome) {
    let len = outcome.len() as u64;
    let cap = MAX_TX_CHAIN_LEN as u64;
    match outcome {
        ConsoleTxOutcome::Complete { .. } => assert_eq!(len, readable_len),
        ConsoleTxOutcome::Truncated {
            reason: TxTruncation::TooLong,
            ..
        } => assert!(len == cap && readable_len > cap),
        ConsoleTxOutcome::Truncated {
            reason: TxTruncation::Memory,
            ..
        } => assert!(len < readable_len.min(cap)),
    }
}

/// Checks a receive outcome against the queue and the used ring: the last
/// completed chain's element is the last thing written, so it still reads
/// back (earlier ones may lie under buffers written after them).
fn check_rx(queue: &Queue, memory: &SliceMemory<'_>, used_before: u16, len: usize, outcome: ConsoleRxOutcome) {
    let completed = queue.next_used().wrapping_sub(used_before);
    assert_eq!(usize::from(completed), outcome.completed);
    assert!(outcome.consumed <= len);
    assert!(outcome.completed <= usize::from(queue.size()));
    if len == 0 {
        assert_eq!(outcome, ConsoleRxOutcome::default());
        return;
    }
    if outcome.starved {
        assert!(outcome.consumed < len);
    } else if outcome.consumed < len {
        assert_eq!(outcome.completed, usize::from(queue.size()));
    }
    assert!(!outcome.notify || outcome.completed > 0);
    if outcome.completed > 0 {
        let config = queue.config();
        let slot = u64::from(queue.next_used().wrapping_sub(1) & (config.size - 1));
        let used_len = memory.read_u32(config.used_ring + 8 + 8 * slot);
        assert!(used_len.is_ok_and(|used_len| used_len as usize <= outcome.consumed));
    }
}
