use super::*;
use crate::chain::Segment;
use crate::features::{KEEL_TRANSPORT_FEATURES, VIRTIO_F_EVENT_IDX};
use crate::queue::{
    QueueFeatures, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
    VIRTQ_USED_F_NO_NOTIFY,
};
use crate::test_ring::{write_desc, Driver, MutatingMemory, Rng, VecMemory, AVAIL_RING, DATA, MEMORY_SIZE, USED_RING};
use std::cell::{Cell, RefCell};
use std::vec;
use std::vec::Vec;

/// Collects what it is given, chunk by chunk.
#[derive(Debug, Default)]
struct Sink {
    chunks: Vec<Vec<u8>>,
}

impl Sink {
    fn bytes(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

impl ConsoleSink for Sink {
    fn write(&mut self, bytes: &[u8]) {
        self.chunks.push(bytes.to_vec());
    }
}

fn r(addr: u64, len: u32) -> Segment {
    Segment {
        addr,
        len,
        writable: false,
    }
}

fn w(addr: u64, len: u32) -> Segment {
    Segment {
        addr,
        len,
        writable: true,
    }
}

/// A device with everything it offers negotiated.
fn device() -> Console {
    let mut console = Console::new(ConsoleOptions { size: Some((80, 25)) });
    console.set_negotiated(console.device_features());
    console
}

fn device_without_event_idx() -> Console {
    let mut console = device();
    console.set_negotiated(console.device_features() & !VIRTIO_F_EVENT_IDX);
    console
}

/// `len` bytes of a pattern starting at `seed`.
fn text(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add((i * 7 % 251) as u8)).collect()
}

/// Publishes a chain of the given pieces (address, length, writable) in
/// descriptors `first..`.
fn post(driver: &mut Driver, memory: &mut VecMemory, first: u16, pieces: &[(u64, u32, bool)]) {
    for (i, &(addr, len, writable)) in pieces.iter().enumerate() {
        let index = first + i as u16;
        let mut flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 };
        if i + 1 < pieces.len() {
            flags |= VIRTQ_DESC_F_NEXT;
        }
        driver.set_desc(memory, index, addr, len, flags, index + 1);
    }
    driver.publish(memory, first);
}

fn new_queue(driver: &Driver, console: &Console) -> Queue {
    let features = QueueFeatures::from_negotiated(console.negotiated());
    Queue::new(driver.config(), QUEUE_SIZE, features, console.max_segments()).unwrap()
}

#[test]
fn features_and_config() {
    let plain = Console::new(ConsoleOptions::default());
    assert_eq!(plain.device_features(), KEEL_TRANSPORT_FEATURES);
    assert_eq!(plain.config(), [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(plain.size(), None);

    let mut sized = Console::new(ConsoleOptions { size: Some((132, 43)) });
    assert_eq!(sized.device_features(), KEEL_TRANSPORT_FEATURES | VIRTIO_CONSOLE_F_SIZE);
    assert_eq!(sized.config(), [132, 0, 43, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(sized.max_segments(), MAX_CHAIN_SEGMENTS);

    // What was not offered cannot be negotiated.
    sized.set_negotiated(u64::MAX);
    assert_eq!(sized.negotiated(), sized.device_features());
    assert_eq!(
        sized.negotiated() & (VIRTIO_CONSOLE_F_MULTIPORT | VIRTIO_CONSOLE_F_EMERG_WRITE),
        0
    );
    sized.set_negotiated(0);
    assert_eq!(sized.negotiated(), 0);

    // A resize changes the configuration only when SIZE is offered.
    assert!(sized.set_size(0x100, 50));
    assert!(!sized.set_size(0x100, 50), "no change");
    assert_eq!(sized.size(), Some((0x100, 50)));
    assert_eq!(sized.config()[..4], [0, 1, 50, 0]);
    let mut plain = plain;
    assert!(!plain.set_size(80, 25));
    assert_eq!(plain.size(), None);
    assert_eq!(plain.config()[..4], [0; 4]);
}

#[test]
fn transmits_any_layout_in_order() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut driver = Driver::new(16);
    let mut queue = new_queue(&driver, &console);
    let mut sink = Sink::default();

    // Three descriptors, one of them empty.
    let (a, b, c) = (text(1, 5), text(2, 11), text(3, 3));
    memory.write(DATA, &a).unwrap();
    memory.write(DATA + 0x1000, &b).unwrap();
    memory.write(DATA + 0x3000, &c).unwrap();
    post(
        &mut driver,
        &mut memory,
        0,
        &[
            (DATA, 5, false),
            (DATA + 0x1000, 11, false),
            (DATA + 0x2000, 0, false),
            (DATA + 0x3000, 3, false),
        ],
    );
    // An indirect table of two buffers.
    let (d, e) = (text(4, 100), text(5, 7));
    memory.write(DATA + 0x4000, &d).unwrap();
    memory.write(DATA + 0x5000, &e).unwrap();
    let table = DATA + 0x6000;
    write_desc(&mut memory, table, DATA + 0x4000, 100, VIRTQ_DESC_F_NEXT, 1);
    write_desc(&mut memory, table + 16, DATA + 0x5000, 7, 0, 0);
    driver.set_desc(&mut memory, 4, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
    driver.publish(&mut memory, 4);
    // One plain buffer.
    let f = text(6, 1);
    memory.write(DATA + 0x7000, &f).unwrap();
    post(&mut driver, &mut memory, 5, &[(DATA + 0x7000, 1, false)]);

    let processed = console.process_tx(&mut queue, &mut memory, &mut sink, 64).unwrap();
    assert_eq!(
        processed,
        ConsoleTxProcessed {
            completed: 3,
            bytes: 127,
            truncated: 0,
            notify: true,
            more: false
        }
    );
    assert_eq!(sink.bytes(), [a, b, c, d, e, f].concat());
    assert!(sink.chunks.iter().all(|chunk| !chunk.is_empty()));
    for head in [0, 4, 5] {
        assert_eq!(driver.take_used(&memory), Some((head, 0)));
    }
    let stats = console.stats();
    assert_eq!((stats.tx_chains, stats.tx_bytes, stats.tx_truncated), (3, 127, 0));
}

#[test]
fn transmit_ignores_writable_descriptors() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &console);
    let mut sink = Sink::default();
    memory.bytes[DATA as usize..].fill(0xEE);
    memory.write(DATA, b"hello").unwrap();
    post(
        &mut driver,
        &mut memory,
        0,
        &[(DATA, 5, false), (DATA + 0x1000, 64, true)],
    );
    // Nothing readable at all: completed, nothing sent.
    post(&mut driver, &mut memory, 2, &[(DATA + 0x2000, 64, true)]);
    let processed = console.process_tx(&mut queue, &mut memory, &mut sink, 64).unwrap();
    assert_eq!((processed.completed, processed.bytes), (2, 5));
    assert_eq!(sink.bytes(), b"hello");
    assert_eq!(memory.slice(DATA + 0x1000, 64), [0xEE; 64], "nothing written");
    assert_eq!(memory.slice(DATA + 0x2000, 64), [0xEE; 64], "nothing written");
    assert_eq!(driver.take_used(&memory), Some((0, 0)));
    assert_eq!(driver.take_used(&memory), Some((2, 0)));
}

#[test]
fn transmit_goes_through_the_sink_in_chunks() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut sink = Sink::default();
    let data = text(9, 3 * TX_CHUNK_LEN + 10);
    memory.write(DATA, &data).unwrap();
    let chain =
        DescriptorChain::from_segments(0, &[r(DATA, 10), r(DATA + 10, TX_CHUNK_LEN as u32 * 3), w(DATA, 4)]).unwrap();
    let outcome = console.handle_tx(&memory, &mut sink, &chain);
    assert_eq!(outcome, ConsoleTxOutcome::Complete { len: data.len() });
    assert_eq!(sink.bytes(), data);
    let lens: Vec<usize> = sink.chunks.iter().map(Vec::len).collect();
    assert_eq!(lens, [TX_CHUNK_LEN, TX_CHUNK_LEN, TX_CHUNK_LEN, 10]);
}

#[test]
fn transmit_truncation() {
    // A refused buffer: the sink has everything before it.
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut sink = Sink::default();
    memory.write(DATA, b"abcdefgh").unwrap();
    let chain = DescriptorChain::from_segments(0, &[r(DATA, 3), r(0x1_0000_0000, 8), r(DATA + 3, 5)]).unwrap();
    assert_eq!(
        console.handle_tx(&memory, &mut sink, &chain),
        ConsoleTxOutcome::Truncated {
            len: 3,
            reason: TxTruncation::Memory
        }
    );
    assert_eq!(sink.bytes(), b"abc");
    // Partly outside memory: the part inside still counts.
    let mut sink = Sink::default();
    let end = MEMORY_SIZE as u64;
    memory.write(end - 2, b"yz").unwrap();
    let chain = DescriptorChain::from_segments(0, &[r(end - 2, 4)]).unwrap();
    let outcome = console.handle_tx(&memory, &mut sink, &chain);
    assert_eq!(outcome.len(), 0, "one refused piece: all of that segment");
    assert!(outcome.is_empty());
    assert_eq!(sink.bytes(), b"");

    // Longer than the cap: the first MAX_TX_CHAIN_LEN bytes.
    let mut big = VecMemory::new(MAX_TX_CHAIN_LEN + 0x1000);
    let data = text(3, MAX_TX_CHAIN_LEN + 0x1000);
    big.write(0, &data).unwrap();
    let mut sink = Sink::default();
    let chain = DescriptorChain::from_segments(0, &[r(0, 0x800), r(0x800, MAX_TX_CHAIN_LEN as u32)]).unwrap();
    assert_eq!(
        console.handle_tx(&big, &mut sink, &chain),
        ConsoleTxOutcome::Truncated {
            len: MAX_TX_CHAIN_LEN,
            reason: TxTruncation::TooLong
        }
    );
    assert_eq!(sink.bytes(), data[..MAX_TX_CHAIN_LEN]);
    // Exactly the cap is whole.
    let mut sink = Sink::default();
    let chain = DescriptorChain::from_segments(0, &[r(0, MAX_TX_CHAIN_LEN as u32)]).unwrap();
    assert_eq!(
        console.handle_tx(&big, &mut sink, &chain),
        ConsoleTxOutcome::Complete { len: MAX_TX_CHAIN_LEN }
    );

    let stats = console.stats();
    assert_eq!((stats.tx_chains, stats.tx_truncated), (4, 3));
    assert_eq!(stats.tx_bytes, 3 + 2 * MAX_TX_CHAIN_LEN as u64);

    // Through the queue, the chain is still completed.
    let mut driver = Driver::new(4);
    let mut queue = new_queue(&driver, &console);
    let mut sink = Sink::default();
    post(
        &mut driver,
        &mut memory,
        0,
        &[(DATA, 2, false), (0x1_0000_0000, 8, false)],
    );
    let processed = console.process_tx(&mut queue, &mut memory, &mut sink, 8).unwrap();
    assert_eq!((processed.completed, processed.truncated, processed.bytes), (1, 1, 2));
    assert_eq!(driver.take_used(&memory), Some((0, 0)));
}

#[test]
fn transmit_budget_and_event_idx() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &console);
    let mut sink = Sink::default();
    let send = |driver: &mut Driver, memory: &mut VecMemory, index: u16| {
        let addr = DATA + 0x100 * u64::from(index);
        memory.write(addr, &[b'0' + index as u8]).unwrap();
        post(driver, memory, index, &[(addr, 1, false)]);
    };
    for index in 0..3 {
        send(&mut driver, &mut memory, index);
    }
    // The driver wants to hear only when entry 1 is used.
    driver.set_used_event(&mut memory, 1);
    let processed = console.process_tx(&mut queue, &mut memory, &mut sink, 2).unwrap();
    assert_eq!((processed.completed, processed.more, processed.notify), (2, true, true));
    let processed = console.process_tx(&mut queue, &mut memory, &mut sink, 2).unwrap();
    assert_eq!(
        (processed.completed, processed.more, processed.notify),
        (1, false, false)
    );
    assert_eq!(driver.avail_event(&memory), 3, "kick me at the next entry");
    let processed = console.process_tx(&mut queue, &mut memory, &mut sink, 0).unwrap();
    assert_eq!(
        processed,
        ConsoleTxProcessed {
            more: true,
            ..Default::default()
        }
    );
    for index in 3..6 {
        send(&mut driver, &mut memory, index);
    }
    driver.set_used_event(&mut memory, 5);
    let processed = console.process_tx(&mut queue, &mut memory, &mut sink, 64).unwrap();
    assert_eq!((processed.completed, processed.notify), (3, true));
    assert_eq!(sink.bytes(), b"012345");
    for index in 0..6 {
        assert_eq!(driver.take_used(&memory), Some((index, 0)));
    }
}

#[test]
fn transmit_without_event_idx() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device_without_event_idx();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &console);
    let mut sink = Sink::default();
    post(&mut driver, &mut memory, 0, &[(DATA, 4, false)]);
    memory.write_u16(AVAIL_RING, VIRTQ_AVAIL_F_NO_INTERRUPT).unwrap();
    let processed = console.process_tx(&mut queue, &mut memory, &mut sink, 64).unwrap();
    assert_eq!((processed.completed, processed.notify), (1, false));
    assert_eq!(memory.read_u16(USED_RING), Ok(0), "notifications back on");
    memory.write_u16(AVAIL_RING, 0).unwrap();
    post(&mut driver, &mut memory, 0, &[(DATA, 4, false)]);
    post(&mut driver, &mut memory, 1, &[(DATA, 4, false)]);
    let processed = console.process_tx(&mut queue, &mut memory, &mut sink, 1).unwrap();
    assert_eq!((processed.completed, processed.notify, processed.more), (1, true, true));
    assert_eq!(
        memory.read_u16(USED_RING),
        Ok(VIRTQ_USED_F_NO_NOTIFY),
        "left off when the budget ran out"
    );
}

#[test]
fn transmit_on_a_broken_ring() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &console);
    let mut sink = Sink::default();
    // A looping chain.
    driver.set_desc(&mut memory, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
    driver.publish(&mut memory, 0);
    let error = console.process_tx(&mut queue, &mut memory, &mut sink, 64).unwrap_err();
    assert_eq!(error, QueueError::ChainTooLong);
    assert!(error.needs_reset());
    assert!(queue.is_broken());
    // Even once the driver fixes it.
    post(&mut driver, &mut memory, 1, &[(DATA, 4, false)]);
    assert_eq!(
        console.process_tx(&mut queue, &mut memory, &mut sink, 64),
        Err(QueueError::Broken)
    );
    assert!(sink.chunks.is_empty());
    assert_eq!(console.stats().tx_chains, 0);
}

#[test]
fn receive_spreads_input_over_buffers() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut driver = Driver::new(16);
    let mut queue = new_queue(&driver, &console);
    memory.bytes[DATA as usize..].fill(0xEE);
    post(&mut driver, &mut memory, 0, &[(DATA, 8, true)]);
    // Any layout: a readable part (ignored), two writable pieces.
    post(
        &mut driver,
        &mut memory,
        1,
        &[
            (DATA + 0x1000, 16, false),
            (DATA + 0x2000, 5, true),
            (DATA + 0x3000, 7, true),
        ],
    );
    post(&mut driver, &mut memory, 4, &[(DATA + 0x4000, 100, true)]);
    post(&mut driver, &mut memory, 5, &[(DATA + 0x5000, 100, true)]);

    let input = text(1, 30);
    assert_eq!(
        console.receive(&mut queue, &mut memory, &input),
        Ok(ConsoleRxOutcome {
            consumed: 30,
            completed: 3,
            notify: true,
            starved: false
        })
    );
    assert_eq!(memory.slice(DATA, 8), &input[..8]);
    assert_eq!(memory.slice(DATA + 0x1000, 16), [0xEE; 16], "readable part untouched");
    assert_eq!(memory.slice(DATA + 0x2000, 5), &input[8..13]);
    assert_eq!(memory.slice(DATA + 0x3000, 7), &input[13..20]);
    assert_eq!(memory.slice(DATA + 0x4000, 11), [&input[20..], &[0xEE]].concat());
    assert_eq!(driver.take_used(&memory), Some((0, 8)));
    assert_eq!(driver.take_used(&memory), Some((1, 12)));
    assert_eq!(driver.take_used(&memory), Some((4, 10)));
    assert_eq!(driver.take_used(&memory), None);
    // The next input starts a fresh buffer. (The driver, having seen
    // entry 2, asks to hear about entry 3.)
    driver.set_used_event(&mut memory, 3);
    assert_eq!(
        console.receive(&mut queue, &mut memory, b"!"),
        Ok(ConsoleRxOutcome {
            consumed: 1,
            completed: 1,
            notify: true,
            starved: false
        })
    );
    assert_eq!(driver.take_used(&memory), Some((5, 1)));
    assert_eq!(memory.slice(DATA + 0x5000, 1), b"!");
    let stats = console.stats();
    assert_eq!((stats.rx_chains, stats.rx_bytes, stats.rx_starved), (4, 31, 0));
}

#[test]
fn receive_without_buffers_is_starved() {
    // With EVENT_IDX: avail_event names the next entry.
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &console);
    memory.write_u16(USED_RING + 4 + 8 * 8, 0xFFFF).unwrap();
    let starved = ConsoleRxOutcome {
        consumed: 0,
        completed: 0,
        notify: false,
        starved: true,
    };
    assert_eq!(console.receive(&mut queue, &mut memory, b"abc"), Ok(starved));
    assert_eq!(driver.avail_event(&memory), 0);
    assert_eq!(driver.take_used(&memory), None);
    // Buffers for part of the input: what fits, then starved again.
    post(&mut driver, &mut memory, 0, &[(DATA, 2, true)]);
    assert_eq!(
        console.receive(&mut queue, &mut memory, b"abc"),
        Ok(ConsoleRxOutcome {
            consumed: 2,
            completed: 1,
            notify: true,
            starved: true
        })
    );
    assert_eq!(driver.avail_event(&memory), 1);
    assert_eq!(driver.take_used(&memory), Some((0, 2)));
    post(&mut driver, &mut memory, 1, &[(DATA + 0x1000, 2, true)]);
    driver.set_used_event(&mut memory, 1);
    assert_eq!(
        console.receive(&mut queue, &mut memory, b"c"),
        Ok(ConsoleRxOutcome {
            consumed: 1,
            completed: 1,
            notify: true,
            starved: false
        })
    );
    assert_eq!(memory.slice(DATA, 2), b"ab");
    assert_eq!(memory.slice(DATA + 0x1000, 1), b"c");
    assert_eq!(console.stats().rx_starved, 2);
    assert_eq!(queue.in_flight(), 0);

    // Without: used.flags is clear while out of buffers, set while the
    // device has buffers.
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device_without_event_idx();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &console);
    memory.write_u16(USED_RING, VIRTQ_USED_F_NO_NOTIFY).unwrap();
    assert_eq!(console.receive(&mut queue, &mut memory, b"abc"), Ok(starved));
    assert_eq!(memory.read_u16(USED_RING), Ok(0));
    post(&mut driver, &mut memory, 0, &[(DATA, 2, true)]);
    post(&mut driver, &mut memory, 1, &[(DATA + 0x1000, 2, true)]);
    assert_eq!(console.receive(&mut queue, &mut memory, b"a").unwrap().consumed, 1);
    assert_eq!(memory.read_u16(USED_RING), Ok(VIRTQ_USED_F_NO_NOTIFY));
}

#[test]
fn receive_finds_buffers_posted_while_asking_for_a_kick() {
    // The driver publishes a buffer right after the device's pop found
    // none, before it could see the request for a kick: the re-check
    // after enabling notifications takes it.
    let mut inner = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let driver = Driver::new(8);
    driver.set_desc(&mut inner, 0, DATA, 4, VIRTQ_DESC_F_WRITE, 0);
    inner.write_u16(AVAIL_RING + 4, 0).unwrap();
    let mut memory = MutatingMemory {
        inner: RefCell::new(inner),
        reads: Cell::new(0),
        // The first read is the pop's avail.idx.
        trigger: 1,
        patches: vec![(AVAIL_RING + 2, vec![1, 0])],
    };
    let mut queue = new_queue(&driver, &console);
    let outcome = console.receive(&mut queue, &mut memory, b"abcdef").unwrap();
    assert_eq!(
        outcome,
        ConsoleRxOutcome {
            consumed: 4,
            completed: 1,
            notify: true,
            starved: true
        }
    );
    let inner = memory.inner.into_inner();
    assert_eq!(inner.slice(DATA, 4), b"abcd");
    assert_eq!(driver.avail_event(&inner), 1);
}

#[test]
fn receive_empty_and_readable_only_chains() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &console);
    post(&mut driver, &mut memory, 0, &[(DATA, 0, true)]);
    post(&mut driver, &mut memory, 1, &[(DATA + 0x1000, 64, false)]);
    post(
        &mut driver,
        &mut memory,
        2,
        &[(DATA + 0x2000, 0, false), (DATA + 0x3000, 0, true)],
    );
    post(&mut driver, &mut memory, 4, &[(DATA + 0x4000, 64, true)]);
    // An empty input takes nothing.
    assert_eq!(
        console.receive(&mut queue, &mut memory, b""),
        Ok(ConsoleRxOutcome::default())
    );
    assert_eq!(queue.next_avail(), 0);
    assert_eq!(
        console.receive(&mut queue, &mut memory, b"xyz"),
        Ok(ConsoleRxOutcome {
            consumed: 3,
            completed: 4,
            notify: true,
            starved: false
        })
    );
    for (head, len) in [(0, 0), (1, 0), (2, 0), (4, 3)] {
        assert_eq!(driver.take_used(&memory), Some((head, len)));
    }
    assert_eq!(memory.slice(DATA + 0x4000, 3), b"xyz");
}

#[test]
fn receive_work_is_bounded_by_the_queue_size() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut driver = Driver::new(4);
    let mut queue = new_queue(&driver, &console);
    for index in 0..4 {
        post(&mut driver, &mut memory, index, &[(DATA, 0, true)]);
    }
    // Four empty buffers: the call stops there, not starved; call again.
    assert_eq!(
        console.receive(&mut queue, &mut memory, b"abc"),
        Ok(ConsoleRxOutcome {
            consumed: 0,
            completed: 4,
            notify: true,
            starved: false
        })
    );
    // The driver keeps posting empty buffers: each call still ends.
    for index in 0..4 {
        post(&mut driver, &mut memory, index, &[(DATA, 0, true)]);
    }
    assert_eq!(console.receive(&mut queue, &mut memory, b"abc").unwrap().completed, 4);
    let outcome = console.receive(&mut queue, &mut memory, b"abc").unwrap();
    assert_eq!((outcome.completed, outcome.starved), (0, true));
}

#[test]
fn receive_memory_faults_cost_only_the_chain() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let input = text(5, 20);
    let chain = DescriptorChain::from_segments(0, &[w(DATA, 4), w(0x1_0000_0000, 100)]).unwrap();
    assert_eq!(console.write_rx(&mut memory, &chain, &input), (4, true));
    let chain = DescriptorChain::from_segments(0, &[w(DATA, 4), w(DATA + 0x100, 100)]).unwrap();
    assert_eq!(console.write_rx(&mut memory, &chain, &input), (20, false));
    assert_eq!(console.write_rx(&mut memory, &chain, &input[..2]), (2, false));

    // Through the queue: the faulty chain keeps its prefix, the rest goes
    // into the next one.
    let mut driver = Driver::new(4);
    let mut queue = new_queue(&driver, &console);
    memory.bytes[DATA as usize..].fill(0xEE);
    post(
        &mut driver,
        &mut memory,
        0,
        &[(DATA, 4, true), (0x1_0000_0000, 100, true)],
    );
    post(&mut driver, &mut memory, 2, &[(DATA + 0x1000, 100, true)]);
    assert_eq!(
        console.receive(&mut queue, &mut memory, &input),
        Ok(ConsoleRxOutcome {
            consumed: 20,
            completed: 2,
            notify: true,
            starved: false
        })
    );
    assert_eq!(driver.take_used(&memory), Some((0, 4)));
    assert_eq!(driver.take_used(&memory), Some((2, 16)));
    assert_eq!(memory.slice(DATA, 4), &input[..4]);
    assert_eq!(memory.slice(DATA + 0x1000, 16), &input[4..]);
    let stats = console.stats();
    assert_eq!((stats.rx_chains, stats.rx_bytes, stats.rx_faults), (2, 20, 1));
}

#[test]
fn receive_notification_suppression() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &console);
    for index in 0..6 {
        post(
            &mut driver,
            &mut memory,
            index,
            &[(DATA + 0x800 * u64::from(index), 4, true)],
        );
    }
    // The driver asks to hear when entry 2 is used.
    driver.set_used_event(&mut memory, 2);
    let notifies: Vec<bool> = (0..4)
        .map(|_| console.receive(&mut queue, &mut memory, b"abcd").unwrap().notify)
        .collect();
    assert_eq!(notifies, [false, false, true, false]);
    // One call over several chains: notify when any of them is the one.
    driver.set_used_event(&mut memory, 5);
    let outcome = console.receive(&mut queue, &mut memory, b"abcdefgh").unwrap();
    assert_eq!((outcome.completed, outcome.notify), (2, true));

    // Without EVENT_IDX: VIRTQ_AVAIL_F_NO_INTERRUPT.
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device_without_event_idx();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &console);
    for index in 0..2 {
        post(
            &mut driver,
            &mut memory,
            index,
            &[(DATA + 0x800 * u64::from(index), 4, true)],
        );
    }
    memory.write_u16(AVAIL_RING, VIRTQ_AVAIL_F_NO_INTERRUPT).unwrap();
    assert!(!console.receive(&mut queue, &mut memory, b"ab").unwrap().notify);
    memory.write_u16(AVAIL_RING, 0).unwrap();
    assert!(console.receive(&mut queue, &mut memory, b"ab").unwrap().notify);
}

#[test]
fn receive_on_a_broken_ring() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut console = device();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &console);
    post(&mut driver, &mut memory, 0, &[(DATA, 2, true)]);
    driver.publish(&mut memory, 9);
    // The good chain is filled and completed, then the bad one breaks the
    // queue (and the call).
    let error = console.receive(&mut queue, &mut memory, b"abcd").unwrap_err();
    assert_eq!(error, QueueError::IndexOutOfRange { index: 9 });
    assert!(error.needs_reset());
    assert_eq!(driver.take_used(&memory), Some((0, 2)));
    assert_eq!(
        console.receive(&mut queue, &mut memory, b"abcd"),
        Err(QueueError::Broken)
    );
    // Even an empty input.
    assert_eq!(console.receive(&mut queue, &mut memory, b""), Err(QueueError::Broken));
}

/// Guest memory with both queues laid out as a driver would (16 entries
/// each, 8 of them posted), and the 19 header bytes of `fuzz_console` that
/// describe it, so random steps start from a working device.
fn fuzz_image(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    const RX_DESC: u64 = 0x1000;
    const RX_AVAIL: u64 = 0x1200;
    const RX_USED: u64 = 0x1400;
    const TX_DESC: u64 = 0x2000;
    const TX_AVAIL: u64 = 0x2200;
    const TX_USED: u64 = 0x2400;
    let mut memory = VecMemory::new(0x2_0000 + 16 * 0x800);
    rng.fill(&mut memory.bytes[0x8000..]);
    for i in 0..16u16 {
        let slot = u64::from(i);
        let rx_buffer = 0x1_0000 + 0x800 * slot;
        let rx_len = [0x800, 0x800, 64, 1, 0][rng.below(5) as usize];
        write_desc(
            &mut memory,
            RX_DESC + 16 * slot,
            rx_buffer,
            rx_len,
            VIRTQ_DESC_F_WRITE,
            0,
        );
        memory.write_u16(RX_AVAIL + 4 + 2 * slot, i).unwrap();
        let tx_buffer = 0x8000 + 0x800 * slot;
        let tx_len = rng.below(0x801) as u32;
        write_desc(&mut memory, TX_DESC + 16 * slot, tx_buffer, tx_len, 0, 0);
        memory.write_u16(TX_AVAIL + 4 + 2 * slot, i).unwrap();
    }
    memory.write_u16(RX_AVAIL + 2, 8).unwrap();
    memory.write_u16(TX_AVAIL + 2, 8).unwrap();
    let mut header = vec![rng.below(16) as u8];
    header.extend_from_slice(&[80, 0, 25, 0]);
    for (desc, avail, used) in [(RX_DESC, RX_AVAIL, RX_USED), (TX_DESC, TX_AVAIL, TX_USED)] {
        header.push(4);
        header.extend_from_slice(&((desc / 16) as u16).to_le_bytes());
        header.extend_from_slice(&((avail / 2) as u16).to_le_bytes());
        header.extend_from_slice(&((used / 4) as u16).to_le_bytes());
    }
    (memory.bytes, header)
}

#[test]
fn random_console_inputs() {
    let mut rng = Rng(0xC0_5013_F00D_5EED);
    for round in 0..3000 {
        let mut ops = vec![0u8; rng.below(512) as usize];
        rng.fill(&mut ops);
        let mut image = if round % 2 == 0 {
            let (image, header) = fuzz_image(&mut rng);
            ops.splice(0..0, header);
            image
        } else {
            let mut image = vec![0u8; 256 + rng.below(8192) as usize];
            rng.fill(&mut image);
            // Small queues near the start of memory.
            if ops.len() >= 19 && round % 4 == 1 {
                for base in [5, 12] {
                    ops[base] %= 4;
                    for field in [base + 1, base + 3, base + 5] {
                        ops[field] %= 32;
                        ops[field + 1] = 0;
                    }
                }
            }
            image
        };
        fuzz_console(&mut image, &ops);
    }
}

#[test]
fn fuzz_console_empty_and_tiny_inputs() {
    fuzz_console(&mut [], &[]);
    fuzz_console(&mut [0; 64], &[0; 19]);
    fuzz_console(&mut [0xFF; 64], &[0xFF; 64]);
    let mut rng = Rng(7);
    let (mut image, mut ops) = fuzz_image(&mut rng);
    // Everything negotiated; serve the transmit queue, one chain by hand,
    // receive 5000 bytes, resize.
    ops[0] = 15;
    ops.extend_from_slice(&[0, 7, 2, 3, 0x88, 0x13, 6, 100, 40, 1, 3]);
    fuzz_console(&mut image, &ops);
}
