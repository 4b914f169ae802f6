use super::*;
use crate::chain::Segment;
use crate::features::{KEEL_TRANSPORT_FEATURES, VIRTIO_F_EVENT_IDX};
use crate::queue::{
    QueueFeatures, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
    VIRTQ_USED_F_NO_NOTIFY,
};
use crate::test_ring::{write_desc, Driver, Rng, VecMemory, AVAIL_RING, DATA, MEMORY_SIZE, USED_RING};
use std::vec;
use std::vec::Vec;

const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

#[derive(Debug, Default)]
struct Sink {
    frames: Vec<Vec<u8>>,
}

impl FrameSink for Sink {
    fn transmit(&mut self, frame: &[u8]) {
        self.frames.push(frame.to_vec());
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
fn device(mtu: Option<u16>) -> Net {
    let mut net = Net::new(NetOptions { mac: MAC, mtu });
    net.set_negotiated(net.device_features());
    net
}

/// A frame of `len` bytes: broadcast destination, our source, then a pattern.
fn frame(len: usize) -> Vec<u8> {
    let mut frame: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let header = [[0xFF; 6], MAC].concat();
    let n = len.min(12);
    frame[..n].copy_from_slice(&header[..n]);
    frame
}

fn tx_header(flags: u8, gso_type: u8) -> [u8; HEADER_LEN] {
    NetHeader {
        flags,
        gso_type,
        ..NetHeader::default()
    }
    .to_bytes()
}

/// A transmit chain over one readable buffer at `addr`: header + frame.
fn tx_chain(memory: &mut VecMemory, addr: u64, header: [u8; HEADER_LEN], frame: &[u8]) -> DescriptorChain {
    memory.write(addr, &header).unwrap();
    memory.write(addr + HEADER_LEN as u64, frame).unwrap();
    DescriptorChain::from_segments(0, &[r(addr, (HEADER_LEN + frame.len()) as u32)]).unwrap()
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

fn new_queue(driver: &Driver, net: &Net) -> Queue {
    let features = QueueFeatures::from_negotiated(net.negotiated());
    Queue::new(driver.config(), QUEUE_SIZE, features, net.max_segments()).unwrap()
}

#[test]
fn features_and_config() {
    let plain = Net::new(NetOptions { mac: MAC, mtu: None });
    let features = plain.device_features();
    assert_eq!(
        features,
        KEEL_TRANSPORT_FEATURES | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS
    );
    for bit in [
        VIRTIO_NET_F_CSUM,
        VIRTIO_NET_F_GUEST_CSUM,
        VIRTIO_NET_F_GUEST_TSO4,
        VIRTIO_NET_F_GUEST_TSO6,
        VIRTIO_NET_F_GUEST_UFO,
        VIRTIO_NET_F_HOST_TSO4,
        VIRTIO_NET_F_HOST_TSO6,
        VIRTIO_NET_F_HOST_UFO,
        VIRTIO_NET_F_HOST_USO,
        VIRTIO_NET_F_MRG_RXBUF,
        VIRTIO_NET_F_CTRL_VQ,
        VIRTIO_NET_F_MQ,
        VIRTIO_NET_F_MTU,
        VIRTIO_NET_F_SPEED_DUPLEX,
    ] {
        assert_eq!(features & bit, 0, "{bit:#x}");
    }
    let config = plain.config();
    assert_eq!(config[..6], MAC);
    assert_eq!(config[6..8], VIRTIO_NET_S_LINK_UP.to_le_bytes());
    assert_eq!(config[8..10], 1u16.to_le_bytes());
    assert_eq!(config[10..12], [0, 0], "no MTU offered");
    assert_eq!(config[12..16], [0xFF; 4], "speed unknown");
    assert_eq!(config[16], 0xFF, "duplex unknown");
    assert!(config[17..].iter().all(|&b| b == 0));
    assert_eq!(plain.max_frame_len(), 1518);

    let mut jumbo = Net::new(NetOptions {
        mac: MAC,
        mtu: Some(9000),
    });
    assert_ne!(jumbo.device_features() & VIRTIO_NET_F_MTU, 0);
    assert_eq!(jumbo.config()[10..12], 9000u16.to_le_bytes());
    assert_eq!(jumbo.max_frame_len(), 1518, "MTU not negotiated yet");
    jumbo.set_negotiated(u64::MAX);
    assert_eq!(jumbo.negotiated(), jumbo.device_features(), "unoffered bits ignored");
    assert_eq!(jumbo.max_frame_len(), 9018);
    jumbo.set_negotiated(jumbo.device_features() & !VIRTIO_NET_F_MTU);
    assert_eq!(jumbo.effective_mtu(), DEFAULT_MTU);

    let small = Net::new(NetOptions {
        mac: MAC,
        mtu: Some(10),
    });
    assert_eq!(small.mtu(), Some(MIN_MTU));
    let huge = Net::new(NetOptions {
        mac: MAC,
        mtu: Some(u16::MAX),
    });
    assert_eq!(huge.mtu(), Some(MAX_MTU));

    let mut down = device(None);
    down.set_link_up(false);
    assert_eq!(down.config()[6..8], [0, 0]);
    assert_eq!((RX_QUEUE, TX_QUEUE, NUM_QUEUES), (0, 1, 2));
}

#[test]
fn header_round_trip() {
    let header = NetHeader {
        flags: 1,
        gso_type: 4,
        hdr_len: 0x0102,
        gso_size: 0x0304,
        csum_start: 0x0506,
        csum_offset: 0x0708,
        num_buffers: 0x090A,
    };
    let bytes = header.to_bytes();
    assert_eq!(bytes, [1, 4, 2, 1, 4, 3, 6, 5, 8, 7, 0x0A, 0x09]);
    assert_eq!(NetHeader::from_bytes(bytes), header);
    assert_eq!(NetHeader::RX.to_bytes(), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert!(!NetHeader::RX.wants_offload());
}

#[test]
fn transmits_a_frame_split_over_descriptors() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let mut driver = Driver::new(16);
    let mut queue = new_queue(&driver, &net);
    let mut sink = Sink::default();

    // Header cut in two, the frame's start sharing a descriptor with the
    // header's end, an empty descriptor, the rest, then a writable
    // descriptor the device must ignore.
    let header = tx_header(0, VIRTIO_NET_HDR_GSO_NONE);
    let data = frame(100);
    memory.write(DATA, &header[..5]).unwrap();
    memory.write(DATA + 0x1000, &header[5..]).unwrap();
    memory.write(DATA + 0x1000 + 7, &data[..30]).unwrap();
    memory.write(DATA + 0x3000, &data[30..]).unwrap();
    post(
        &mut driver,
        &mut memory,
        3,
        &[
            (DATA, 5, false),
            (DATA + 0x1000, 37, false),
            (DATA + 0x2000, 0, false),
            (DATA + 0x3000, 70, false),
            (DATA + 0x4000, 64, true),
        ],
    );
    // The same through an indirect table.
    memory.write(DATA + 0x6000, &header).unwrap();
    memory.write(DATA + 0x7000, &data).unwrap();
    write_desc(&mut memory, DATA + 0x5000, DATA + 0x6000, 12, VIRTQ_DESC_F_NEXT, 1);
    write_desc(&mut memory, DATA + 0x5010, DATA + 0x7000, 100, 0, 0);
    driver.set_desc(&mut memory, 10, DATA + 0x5000, 32, VIRTQ_DESC_F_INDIRECT, 0);
    driver.publish(&mut memory, 10);

    let processed = net.process_tx(&mut queue, &mut memory, &mut sink, 64).unwrap();
    assert_eq!(
        processed,
        TxProcessed {
            completed: 2,
            transmitted: 2,
            dropped: 0,
            notify: true,
            more: false,
        }
    );
    assert_eq!(sink.frames, [data.clone(), data]);
    assert_eq!(driver.take_used(&memory), Some((3, 0)));
    assert_eq!(driver.take_used(&memory), Some((10, 0)));
    assert_eq!(driver.take_used(&memory), None);
    let stats = net.stats();
    assert_eq!((stats.tx_frames, stats.tx_bytes, stats.tx_dropped), (2, 200, 0));
}

#[test]
fn rejects_offload_headers() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let mut sink = Sink::default();
    let data = frame(60);
    let refused = [
        (VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE),
        (0, VIRTIO_NET_HDR_GSO_TCPV4),
        (0, VIRTIO_NET_HDR_GSO_TCPV6),
        (0, VIRTIO_NET_HDR_GSO_UDP),
        (0, VIRTIO_NET_HDR_GSO_UDP_L4),
        (0, VIRTIO_NET_HDR_GSO_ECN),
        (
            VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID,
            VIRTIO_NET_HDR_GSO_TCPV4,
        ),
        (0xFF, 0xFF),
    ];
    for (flags, gso_type) in refused {
        let chain = tx_chain(&mut memory, DATA, tx_header(flags, gso_type), &data);
        assert_eq!(
            net.handle_tx(&memory, &mut sink, &chain),
            TxOutcome::Dropped(TxDrop::Offload { flags, gso_type })
        );
    }
    assert!(sink.frames.is_empty());
    assert_eq!(net.stats().tx_dropped, refused.len() as u64);

    // Flags the device does not act on are ignored, and so are the other
    // fields when no offload is asked for.
    let mut ignored = NetHeader {
        flags: VIRTIO_NET_HDR_F_DATA_VALID | VIRTIO_NET_HDR_F_RSC_INFO | 0xF0,
        gso_type: VIRTIO_NET_HDR_GSO_NONE,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
        num_buffers: 7,
    };
    let chain = tx_chain(&mut memory, DATA, ignored.to_bytes(), &data);
    assert_eq!(
        net.handle_tx(&memory, &mut sink, &chain),
        TxOutcome::Transmitted { len: 60 }
    );
    ignored.flags = 0;
    let chain = tx_chain(&mut memory, DATA, ignored.to_bytes(), &data);
    assert_eq!(
        net.handle_tx(&memory, &mut sink, &chain),
        TxOutcome::Transmitted { len: 60 }
    );
    assert_eq!(sink.frames, [data.clone(), data]);
}

#[test]
fn bounds_transmitted_frames() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut sink = Sink::default();
    let header = tx_header(0, 0);

    let mut plain = device(None);
    for (len, expected) in [
        (0, TxOutcome::Dropped(TxDrop::TooShort { len: 0 })),
        (13, TxOutcome::Dropped(TxDrop::TooShort { len: 13 })),
        (14, TxOutcome::Transmitted { len: 14 }),
        (1518, TxOutcome::Transmitted { len: 1518 }),
        (1519, TxOutcome::Dropped(TxDrop::TooLong { len: 1519 })),
    ] {
        let chain = tx_chain(&mut memory, DATA, header, &frame(len));
        assert_eq!(plain.handle_tx(&memory, &mut sink, &chain), expected, "{len}");
    }
    assert_eq!(sink.frames.len(), 2);
    assert_eq!(sink.frames[1], frame(1518));

    // Jumbo frames only once the MTU is negotiated.
    let mut jumbo = Net::new(NetOptions {
        mac: MAC,
        mtu: Some(9000),
    });
    let chain = tx_chain(&mut memory, DATA, header, &frame(9018));
    assert_eq!(
        jumbo.handle_tx(&memory, &mut sink, &chain),
        TxOutcome::Dropped(TxDrop::TooLong { len: 9018 })
    );
    jumbo.set_negotiated(jumbo.device_features());
    assert_eq!(
        jumbo.handle_tx(&memory, &mut sink, &chain),
        TxOutcome::Transmitted { len: 9018 }
    );
    assert_eq!(sink.frames.last().unwrap(), &frame(9018));
    let chain = tx_chain(&mut memory, DATA, header, &frame(9019));
    assert_eq!(
        jumbo.handle_tx(&memory, &mut sink, &chain),
        TxOutcome::Dropped(TxDrop::TooLong { len: 9019 })
    );

    // A chain claiming almost 4 GiB is refused before anything is read
    // (most of it is not even memory).
    memory.write(0, &header).unwrap();
    let chain = DescriptorChain::from_segments(0, &[r(0, 12), r(0, 0xFFFF_0000)]).unwrap();
    assert_eq!(
        plain.handle_tx(&memory, &mut sink, &chain),
        TxOutcome::Dropped(TxDrop::TooLong { len: 0xFFFF_0000 })
    );
}

#[test]
fn malformed_transmit_chains() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let mut sink = Sink::default();
    memory.write(DATA, &tx_header(0, 0)).unwrap();
    let cases = [
        (vec![r(DATA, 11)], TxDrop::ShortHeader),
        (vec![w(DATA, 2000)], TxDrop::ShortHeader),
        (vec![r(0x1_0000_0000, 100)], TxDrop::Memory),
        (vec![r(DATA, 12), r(0x1_0000_0000, 100)], TxDrop::Memory),
        (
            vec![r(DATA, 12), r(DATA + 0x100, 50), r(0x1_0000_0000, 50)],
            TxDrop::Memory,
        ),
    ];
    for (segments, reason) in &cases {
        let chain = DescriptorChain::from_segments(0, segments).unwrap();
        assert_eq!(
            net.handle_tx(&memory, &mut sink, &chain),
            TxOutcome::Dropped(*reason),
            "{segments:?}"
        );
    }
    net.set_link_up(false);
    let chain = tx_chain(&mut memory, DATA, tx_header(0, 0), &frame(60));
    assert_eq!(
        net.handle_tx(&memory, &mut sink, &chain),
        TxOutcome::Dropped(TxDrop::LinkDown)
    );
    assert!(sink.frames.is_empty());
    assert_eq!(net.stats().tx_dropped, cases.len() as u64 + 1);
}

#[test]
fn tx_queue_budget_and_event_idx() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let mut driver = Driver::new(16);
    let mut queue = new_queue(&driver, &net);
    let mut sink = Sink::default();
    let send = |driver: &mut Driver, memory: &mut VecMemory, index: u16, flags: u8| {
        let addr = DATA + 0x1000 * u64::from(index);
        tx_chain(memory, addr, tx_header(flags, 0), &frame(60 + usize::from(index)));
        post(driver, memory, index, &[(addr, 72 + u32::from(index), false)]);
    };
    send(&mut driver, &mut memory, 0, 0);
    send(&mut driver, &mut memory, 1, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    send(&mut driver, &mut memory, 2, 0);

    let processed = net.process_tx(&mut queue, &mut memory, &mut sink, 2).unwrap();
    assert_eq!(
        (
            processed.completed,
            processed.transmitted,
            processed.dropped,
            processed.more
        ),
        (2, 1, 1, true)
    );
    assert!(processed.notify, "used_event 0 was crossed");
    // The driver asks to hear about entry 5 only.
    driver.set_used_event(&mut memory, 5);
    let processed = net.process_tx(&mut queue, &mut memory, &mut sink, 64).unwrap();
    assert_eq!(
        (processed.completed, processed.more, processed.notify),
        (1, false, false)
    );
    assert_eq!(driver.avail_event(&memory), 3, "kick me at the next entry");
    for index in 3..6 {
        send(&mut driver, &mut memory, index, 0);
    }
    let processed = net.process_tx(&mut queue, &mut memory, &mut sink, 64).unwrap();
    assert_eq!((processed.completed, processed.notify), (3, true));
    assert_eq!(sink.frames.len(), 5);
    for index in 0..6 {
        assert_eq!(driver.take_used(&memory), Some((index, 0)));
    }

    // A looping chain breaks the queue.
    driver.set_desc(&mut memory, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
    driver.publish(&mut memory, 0);
    let error = net.process_tx(&mut queue, &mut memory, &mut sink, 64).unwrap_err();
    assert!(error.needs_reset());
    assert_eq!(
        net.process_tx(&mut queue, &mut memory, &mut sink, 64),
        Err(QueueError::Broken)
    );
}

#[test]
fn tx_queue_without_event_idx() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    net.set_negotiated(net.device_features() & !VIRTIO_F_EVENT_IDX);
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &net);
    let mut sink = Sink::default();
    tx_chain(&mut memory, DATA, tx_header(0, 0), &frame(64));
    post(&mut driver, &mut memory, 0, &[(DATA, 76, false)]);
    memory.write_u16(AVAIL_RING, VIRTQ_AVAIL_F_NO_INTERRUPT).unwrap();
    let processed = net.process_tx(&mut queue, &mut memory, &mut sink, 64).unwrap();
    assert_eq!((processed.transmitted, processed.notify), (1, false));
    assert_eq!(memory.read_u16(USED_RING), Ok(0), "notifications back on");
    memory.write_u16(AVAIL_RING, 0).unwrap();
    post(&mut driver, &mut memory, 0, &[(DATA, 76, false)]);
    let processed = net.process_tx(&mut queue, &mut memory, &mut sink, 1).unwrap();
    assert_eq!(
        (processed.transmitted, processed.notify, processed.more),
        (1, true, true)
    );
    assert_eq!(
        memory.read_u16(USED_RING),
        Ok(VIRTQ_USED_F_NO_NOTIFY),
        "left off when the budget ran out"
    );
}

#[test]
fn receives_into_a_chain() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let mut driver = Driver::new(16);
    let mut queue = new_queue(&driver, &net);
    memory.bytes[DATA as usize..].fill(0xEE);

    // Linux's small buffers: one descriptor of header + 1518.
    post(&mut driver, &mut memory, 0, &[(DATA, 1530, true)]);
    // Any layout: the header split, the frame over two more pieces.
    post(
        &mut driver,
        &mut memory,
        1,
        &[
            (DATA + 0x1000, 7, true),
            (DATA + 0x2000, 20, true),
            (DATA + 0x3000, 3000, true),
        ],
    );

    let small = frame(60);
    assert_eq!(
        net.receive(&mut queue, &mut memory, &small),
        Ok(RxOutcome::Delivered { notify: true })
    );
    assert_eq!(memory.slice(DATA, 12), NetHeader::RX.to_bytes());
    assert_eq!(memory.slice(DATA + 12, 60), &small[..]);
    assert_eq!(memory.slice(DATA + 72, 1), [0xEE], "nothing past the frame");
    assert_eq!(driver.take_used(&memory), Some((0, 72)));

    let big = frame(1518);
    assert!(matches!(
        net.receive(&mut queue, &mut memory, &big),
        Ok(RxOutcome::Delivered { .. })
    ));
    let mut written = memory.slice(DATA + 0x1000, 7).to_vec();
    written.extend_from_slice(memory.slice(DATA + 0x2000, 20));
    written.extend_from_slice(memory.slice(DATA + 0x3000, 1530 - 27));
    assert_eq!(written[..12], NetHeader::RX.to_bytes());
    assert_eq!(written[12..], big[..]);
    assert_eq!(driver.take_used(&memory), Some((1, 1530)));

    let stats = net.stats();
    assert_eq!((stats.rx_frames, stats.rx_bytes, stats.rx_dropped), (2, 1578, 0));
}

#[test]
fn receive_buffer_too_small() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let mut driver = Driver::new(16);
    let mut queue = new_queue(&driver, &net);
    memory.bytes[DATA as usize..].fill(0xEE);
    post(&mut driver, &mut memory, 0, &[(DATA, 211, true)]);
    post(&mut driver, &mut memory, 1, &[(DATA + 0x1000, 212, true)]);
    // A chain with no writable part at all.
    post(&mut driver, &mut memory, 2, &[(DATA + 0x2000, 2000, false)]);

    let data = frame(200);
    assert_eq!(
        net.receive(&mut queue, &mut memory, &data),
        Ok(RxOutcome::Dropped {
            reason: RxDrop::BufferTooSmall,
            notify: true
        })
    );
    assert_eq!(memory.slice(DATA, 211), [0xEE; 211], "nothing written");
    assert_eq!(driver.take_used(&memory), Some((0, 0)));
    // Exactly header + frame fits.
    assert_eq!(
        net.receive(&mut queue, &mut memory, &data),
        Ok(RxOutcome::Delivered { notify: false })
    );
    assert_eq!(driver.take_used(&memory), Some((1, 212)));
    assert_eq!(
        net.receive(&mut queue, &mut memory, &data).unwrap(),
        RxOutcome::Dropped {
            reason: RxDrop::BufferTooSmall,
            notify: false
        }
    );
    assert_eq!(driver.take_used(&memory), Some((2, 0)));
    assert_eq!(net.stats().rx_dropped, 2);
}

#[test]
fn receive_memory_errors_drop_the_frame() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let data = frame(100);
    let chain = DescriptorChain::from_segments(0, &[w(0x1_0000_0000, 2000)]).unwrap();
    assert_eq!(net.write_rx(&mut memory, &chain, &data), Err(RxDrop::Memory));
    let chain = DescriptorChain::from_segments(0, &[w(DATA, 12), w(0x1_0000_0000, 2000)]).unwrap();
    assert_eq!(net.write_rx(&mut memory, &chain, &data), Err(RxDrop::Memory));
    let chain = DescriptorChain::from_segments(0, &[w(DATA, 2000)]).unwrap();
    assert_eq!(net.write_rx(&mut memory, &chain, &data[..13]), Err(RxDrop::TooShort));
    assert_eq!(net.write_rx(&mut memory, &chain, &frame(1519)), Err(RxDrop::TooLong));
    assert_eq!(net.write_rx(&mut memory, &chain, &data), Ok(112));

    // Through the queue: completed with used length 0.
    let mut driver = Driver::new(4);
    let mut queue = new_queue(&driver, &net);
    post(
        &mut driver,
        &mut memory,
        0,
        &[(DATA, 12, true), (0x1_0000_0000, 2000, true)],
    );
    assert_eq!(
        net.receive(&mut queue, &mut memory, &data),
        Ok(RxOutcome::Dropped {
            reason: RxDrop::Memory,
            notify: true
        })
    );
    assert_eq!(driver.take_used(&memory), Some((0, 0)));
    assert_eq!(net.stats().rx_dropped, 1);
}

#[test]
fn receive_out_of_bounds_frames_take_no_buffer() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let mut driver = Driver::new(4);
    let mut queue = new_queue(&driver, &net);
    post(&mut driver, &mut memory, 0, &[(DATA, 0x2000, true)]);
    for (len, reason) in [(0, RxDrop::TooShort), (13, RxDrop::TooShort), (1519, RxDrop::TooLong)] {
        assert_eq!(
            net.receive(&mut queue, &mut memory, &frame(len)),
            Ok(RxOutcome::Dropped { reason, notify: false })
        );
    }
    net.set_link_up(false);
    assert_eq!(
        net.receive(&mut queue, &mut memory, &frame(60)),
        Ok(RxOutcome::Dropped {
            reason: RxDrop::LinkDown,
            notify: false
        })
    );
    assert_eq!(queue.next_avail(), 0);
    assert_eq!(driver.take_used(&memory), None);
    assert_eq!(net.stats().rx_dropped, 4);
    net.set_link_up(true);
    assert_eq!(
        net.receive(&mut queue, &mut memory, &frame(14)),
        Ok(RxOutcome::Delivered { notify: true })
    );
}

#[test]
fn receive_without_buffers_asks_for_a_kick() {
    // With EVENT_IDX: avail_event names the next entry.
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &net);
    memory.write_u16(USED_RING + 4 + 8 * 8, 0xFFFF).unwrap();
    assert_eq!(
        net.receive(&mut queue, &mut memory, &frame(60)),
        Ok(RxOutcome::NoBuffer)
    );
    assert_eq!(driver.avail_event(&memory), 0);
    post(&mut driver, &mut memory, 0, &[(DATA, 1530, true)]);
    assert!(matches!(
        net.receive(&mut queue, &mut memory, &frame(60)),
        Ok(RxOutcome::Delivered { .. })
    ));
    assert_eq!(
        net.receive(&mut queue, &mut memory, &frame(60)),
        Ok(RxOutcome::NoBuffer)
    );
    assert_eq!(driver.avail_event(&memory), 1);
    assert_eq!(net.stats().rx_no_buffer, 2);
    assert_eq!(queue.in_flight(), 0);

    // Without: used.flags is clear while out of buffers, set while the
    // device has buffers.
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = net_without_event_idx();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &net);
    assert_eq!(
        net.receive(&mut queue, &mut memory, &frame(60)),
        Ok(RxOutcome::NoBuffer)
    );
    assert_eq!(memory.read_u16(USED_RING), Ok(0));
    post(&mut driver, &mut memory, 0, &[(DATA, 1530, true)]);
    post(&mut driver, &mut memory, 1, &[(DATA + 0x1000, 1530, true)]);
    assert!(matches!(
        net.receive(&mut queue, &mut memory, &frame(60)),
        Ok(RxOutcome::Delivered { .. })
    ));
    assert_eq!(memory.read_u16(USED_RING), Ok(VIRTQ_USED_F_NO_NOTIFY));
}

fn net_without_event_idx() -> Net {
    let mut net = device(None);
    net.set_negotiated(net.device_features() & !VIRTIO_F_EVENT_IDX);
    net
}

#[test]
fn receive_notification_suppression() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &net);
    for index in 0..5 {
        post(
            &mut driver,
            &mut memory,
            index,
            &[(DATA + 0x800 * u64::from(index), 1530, true)],
        );
    }
    // The driver (NAPI done with entry 1) asks to hear when entry 2 is used.
    driver.set_used_event(&mut memory, 2);
    let notifies: Vec<bool> = (0..5)
        .map(|_| net.receive(&mut queue, &mut memory, &frame(100)).unwrap().notify())
        .collect();
    assert_eq!(notifies, [false, false, true, false, false]);

    // Without EVENT_IDX: VIRTQ_AVAIL_F_NO_INTERRUPT.
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = net_without_event_idx();
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &net);
    for index in 0..2 {
        post(
            &mut driver,
            &mut memory,
            index,
            &[(DATA + 0x800 * u64::from(index), 1530, true)],
        );
    }
    memory.write_u16(AVAIL_RING, VIRTQ_AVAIL_F_NO_INTERRUPT).unwrap();
    assert_eq!(
        net.receive(&mut queue, &mut memory, &frame(100)),
        Ok(RxOutcome::Delivered { notify: false })
    );
    memory.write_u16(AVAIL_RING, 0).unwrap();
    assert_eq!(
        net.receive(&mut queue, &mut memory, &frame(100)),
        Ok(RxOutcome::Delivered { notify: true })
    );
}

#[test]
fn receive_on_a_broken_ring() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut net = device(None);
    let mut driver = Driver::new(8);
    let mut queue = new_queue(&driver, &net);
    driver.publish(&mut memory, 9);
    let error = net.receive(&mut queue, &mut memory, &frame(60)).unwrap_err();
    assert_eq!(error, QueueError::IndexOutOfRange { index: 9 });
    assert!(error.needs_reset());
    assert_eq!(
        net.receive(&mut queue, &mut memory, &frame(60)),
        Err(QueueError::Broken)
    );
    // Even frames the device would drop before touching the ring.
    assert_eq!(net.receive(&mut queue, &mut memory, &frame(2)), Err(QueueError::Broken));
}

/// Guest memory with both queues laid out as a driver would (16 entries
/// each, 8 of them posted), and the 17 header bytes of `fuzz_net` that
/// describe it, so random steps start from a working device.
fn fuzz_image(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    const RX_DESC: u64 = 0x1000;
    const RX_AVAIL: u64 = 0x1200;
    const RX_USED: u64 = 0x1400;
    const TX_DESC: u64 = 0x2000;
    const TX_AVAIL: u64 = 0x2200;
    const TX_USED: u64 = 0x2400;
    let mut memory = VecMemory::new(0x2_0000 + 16 * 0x800);
    for i in 0..16u16 {
        let slot = u64::from(i);
        let rx_buffer = 0x1_0000 + 0x800 * slot;
        let rx_len = [1530, 1530, 1530, 100, 0x800][rng.below(5) as usize];
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
        let tx_len = 12 + rng.below(1530) as u32;
        let flags = if rng.below(8) == 0 { 1 } else { 0 };
        memory.write(tx_buffer, &tx_header(flags, 0)).unwrap();
        write_desc(&mut memory, TX_DESC + 16 * slot, tx_buffer, tx_len, 0, 0);
        memory.write_u16(TX_AVAIL + 4 + 2 * slot, i).unwrap();
    }
    memory.write_u16(RX_AVAIL + 2, 8).unwrap();
    memory.write_u16(TX_AVAIL + 2, 8).unwrap();
    let mut header = vec![rng.below(8) as u8];
    header.extend_from_slice(&[0, 0]);
    for (desc, avail, used) in [(RX_DESC, RX_AVAIL, RX_USED), (TX_DESC, TX_AVAIL, TX_USED)] {
        header.push(4);
        header.extend_from_slice(&((desc / 16) as u16).to_le_bytes());
        header.extend_from_slice(&((avail / 2) as u16).to_le_bytes());
        header.extend_from_slice(&((used / 4) as u16).to_le_bytes());
    }
    (memory.bytes, header)
}

#[test]
fn random_net_inputs() {
    let mut rng = Rng(0x5EED_0F4E_7F00_D00D);
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
            if ops.len() >= 17 && round % 4 == 1 {
                for base in [3, 10] {
                    ops[base] %= 4;
                    for field in [base + 1, base + 3, base + 5] {
                        ops[field] %= 32;
                        ops[field + 1] = 0;
                    }
                }
            }
            image
        };
        fuzz_net(&mut image, &ops);
    }
}

#[test]
fn fuzz_net_empty_and_tiny_inputs() {
    fuzz_net(&mut [], &[]);
    fuzz_net(&mut [0; 64], &[0; 17]);
    fuzz_net(&mut [0xFF; 64], &[0xFF; 64]);
    let mut rng = Rng(7);
    let (mut image, mut ops) = fuzz_image(&mut rng);
    // Serve the transmit queue, receive, with EVENT_IDX and the MTU.
    ops[0] = 7;
    ops.extend_from_slice(&[0, 7, 3, 0, 60, 0, 3, 0, 0xDC, 0x05, 1, 7, 9, 0, 3, 0, 0x40, 0x00]);
    fuzz_net(&mut image, &ops);
}
