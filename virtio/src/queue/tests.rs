use super::*;
use crate::test_ring::{
    write_desc, Driver, MutatingMemory, Rng, VecMemory, AVAIL_RING, DATA, DESC_TABLE, MEMORY_SIZE, USED_RING,
};
use std::cell::{Cell, RefCell};
use std::vec;

const ALL: QueueFeatures = QueueFeatures {
    event_idx: true,
    indirect: true,
};
const NONE: QueueFeatures = QueueFeatures {
    event_idx: false,
    indirect: false,
};

fn setup(size: u16, features: QueueFeatures) -> (VecMemory, Driver, Queue) {
    let memory = VecMemory::new(MEMORY_SIZE);
    let driver = Driver::new(size);
    let queue = Queue::new(driver.config(), size, features, MAX_CHAIN_SEGMENTS).unwrap();
    (memory, driver, queue)
}

fn seg(addr: u64, len: u32, writable: bool) -> Segment {
    Segment { addr, len, writable }
}

/// Pops expecting `error`, then checks the queue is broken for good.
fn expect_fatal(queue: &mut Queue, memory: &VecMemory, error: QueueError) {
    assert_eq!(queue.pop(memory), Err(error));
    assert!(error.needs_reset());
    assert!(queue.is_broken());
    assert_eq!(queue.pop(memory), Err(QueueError::Broken));
}

#[test]
fn config_validation() {
    let good = QueueConfig {
        size: 256,
        desc_table: 0x1000,
        avail_ring: 0x2002,
        used_ring: 0x3004,
    };
    assert_eq!(good.validate(256), Ok(()));
    for size in [0, 3, 100, 0xFFFF] {
        let config = QueueConfig { size, ..good };
        assert_eq!(config.validate(MAX_QUEUE_SIZE), Err(ConfigError::BadSize(size)));
    }
    assert_eq!(
        QueueConfig { size: 512, ..good }.validate(256),
        Err(ConfigError::SizeAboveMax { size: 512, max: 256 })
    );
    assert_eq!(QueueConfig { size: 32768, ..good }.validate(0xFFFF), Ok(()));
    assert_eq!(
        QueueConfig {
            desc_table: 0x1008,
            ..good
        }
        .validate(256),
        Err(ConfigError::MisalignedDescTable)
    );
    assert_eq!(
        QueueConfig {
            avail_ring: 0x2001,
            ..good
        }
        .validate(256),
        Err(ConfigError::MisalignedAvailRing)
    );
    assert_eq!(
        QueueConfig {
            used_ring: 0x3002,
            ..good
        }
        .validate(256),
        Err(ConfigError::MisalignedUsedRing)
    );
    for config in [
        QueueConfig {
            desc_table: u64::MAX - 0xF,
            ..good
        },
        QueueConfig {
            avail_ring: u64::MAX - 1,
            ..good
        },
        QueueConfig {
            used_ring: u64::MAX - 3,
            ..good
        },
    ] {
        assert_eq!(config.validate(256), Err(ConfigError::AddressOverflow));
    }
    assert!(Queue::new(QueueConfig { size: 6, ..good }, 256, ALL, 8).is_err());
}

#[test]
fn pops_a_chain_and_returns_it() {
    let (mut memory, mut driver, mut queue) = setup(8, NONE);
    assert_eq!(queue.pop(&memory), Ok(None));
    driver.add_chain(&mut memory, 0, &[(16, false), (512, false), (1, true)]);
    let chain = queue.pop(&memory).unwrap().unwrap();
    assert_eq!(chain.head(), 0);
    assert_eq!(
        chain.segments(),
        [
            seg(DATA, 16, false),
            seg(DATA + 0x1000, 512, false),
            seg(DATA + 0x2000, 1, true)
        ]
    );
    assert_eq!((chain.readable_len(), chain.writable_len()), (528, 1));
    assert_eq!(queue.pop(&memory), Ok(None));
    assert_eq!(queue.in_flight(), 1);

    queue.add_used(&mut memory, chain.head(), 1).unwrap();
    assert_eq!(driver.take_used(&memory), Some((0, 1)));
    assert_eq!(driver.take_used(&memory), None);
    assert_eq!(queue.in_flight(), 0);
    assert_eq!(
        queue.add_used(&mut memory, 0, 0),
        Err(QueueError::NotInFlight { head: 0 })
    );
    assert!(!queue.is_broken(), "a backend bug does not break the queue");
    assert_eq!(
        queue.add_used(&mut memory, 8, 0),
        Err(QueueError::NotInFlight { head: 8 })
    );
}

#[test]
fn completes_out_of_order() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.add_chain(&mut memory, 0, &[(4, false)]);
    driver.add_chain(&mut memory, 1, &[(8, true)]);
    let first = queue.pop(&memory).unwrap().unwrap();
    let second = queue.pop(&memory).unwrap().unwrap();
    queue.add_used(&mut memory, second.head(), 8).unwrap();
    queue.add_used(&mut memory, first.head(), 0).unwrap();
    assert_eq!(driver.take_used(&memory), Some((1, 8)));
    assert_eq!(driver.take_used(&memory), Some((0, 0)));
}

#[test]
fn a_chain_as_long_as_the_queue_is_fine() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.add_chain(&mut memory, 0, &[(1, false), (1, false), (1, true), (1, true)]);
    assert_eq!(queue.pop(&memory).unwrap().unwrap().segments().len(), 4);
}

#[test]
fn head_out_of_range() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.publish(&mut memory, 4);
    expect_fatal(&mut queue, &memory, QueueError::IndexOutOfRange { index: 4 });
}

#[test]
fn next_out_of_range() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.set_desc(&mut memory, 0, DATA, 4, VIRTQ_DESC_F_NEXT, 0xFFFF);
    driver.publish(&mut memory, 0);
    expect_fatal(&mut queue, &memory, QueueError::IndexOutOfRange { index: 0xFFFF });
}

#[test]
fn loops_are_caught() {
    // 0 -> 1 -> 0 -> ...
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.set_desc(&mut memory, 0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
    driver.set_desc(&mut memory, 1, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    driver.publish(&mut memory, 0);
    expect_fatal(&mut queue, &memory, QueueError::ChainTooLong);

    // A descriptor pointing at itself, writable so no ordering error comes first.
    let (mut memory, mut driver, mut queue) = setup(2, NONE);
    driver.set_desc(&mut memory, 1, DATA, 4, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    driver.publish(&mut memory, 1);
    expect_fatal(&mut queue, &memory, QueueError::ChainTooLong);
}

#[test]
fn readable_after_writable() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.add_chain(&mut memory, 0, &[(4, true), (4, false)]);
    expect_fatal(&mut queue, &memory, QueueError::ReadableAfterWritable);
}

#[test]
fn address_overflow() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.set_desc(&mut memory, 0, u64::MAX - 3, 8, 0, 0);
    driver.publish(&mut memory, 0);
    expect_fatal(&mut queue, &memory, QueueError::AddressOverflow);
}

#[test]
fn a_chain_over_4_gib_is_refused() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.set_desc(&mut memory, 0, 0, u32::MAX, VIRTQ_DESC_F_NEXT, 1);
    driver.set_desc(&mut memory, 1, 0, 1, 0, 0);
    driver.publish(&mut memory, 0);
    expect_fatal(&mut queue, &memory, QueueError::ChainTooLarge);
}

#[test]
fn segment_limit() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let mut driver = Driver::new(8);
    let mut queue = Queue::new(driver.config(), 8, NONE, 2).unwrap();
    driver.add_chain(&mut memory, 0, &[(1, false), (1, false)]);
    driver.add_chain(&mut memory, 2, &[(1, false), (1, false), (1, true)]);
    assert_eq!(queue.pop(&memory).unwrap().unwrap().segments().len(), 2);
    expect_fatal(&mut queue, &memory, QueueError::TooManySegments);
}

fn indirect_setup(table_len: u32) -> (VecMemory, Driver, Queue) {
    let (mut memory, mut driver, queue) = setup(4, ALL);
    driver.set_desc(&mut memory, 0, DATA, table_len, VIRTQ_DESC_F_INDIRECT, 0);
    driver.publish(&mut memory, 0);
    (memory, driver, queue)
}

#[test]
fn indirect_table() {
    // More entries than the queue has: allowed (Linux does this).
    let (mut memory, _driver, mut queue) = indirect_setup(6 * 16);
    write_desc(&mut memory, DATA, 0x100, 16, VIRTQ_DESC_F_NEXT, 5);
    write_desc(&mut memory, DATA + 5 * 16, 0x200, 8, VIRTQ_DESC_F_NEXT, 2);
    write_desc(&mut memory, DATA + 2 * 16, 0x300, 1, VIRTQ_DESC_F_WRITE, 0);
    let chain = queue.pop(&memory).unwrap().unwrap();
    assert_eq!(chain.head(), 0);
    assert_eq!(
        chain.segments(),
        [seg(0x100, 16, false), seg(0x200, 8, false), seg(0x300, 1, true)]
    );
}

#[test]
fn direct_descriptors_then_an_indirect_one() {
    let (mut memory, mut driver, mut queue) = setup(4, ALL);
    driver.set_desc(&mut memory, 2, 0x100, 16, VIRTQ_DESC_F_NEXT, 3);
    // WRITE on the descriptor that points at the table is ignored.
    driver.set_desc(&mut memory, 3, DATA, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
    write_desc(&mut memory, DATA, 0x200, 8, VIRTQ_DESC_F_NEXT, 1);
    write_desc(&mut memory, DATA + 16, 0x300, 4, VIRTQ_DESC_F_WRITE, 0);
    driver.publish(&mut memory, 2);
    let chain = queue.pop(&memory).unwrap().unwrap();
    assert_eq!(chain.head(), 2);
    assert_eq!(
        chain.segments(),
        [seg(0x100, 16, false), seg(0x200, 8, false), seg(0x300, 4, true)]
    );
}

#[test]
fn indirect_needs_the_feature() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.set_desc(&mut memory, 0, DATA, 16, VIRTQ_DESC_F_INDIRECT, 0);
    driver.publish(&mut memory, 0);
    expect_fatal(&mut queue, &memory, QueueError::IndirectNotNegotiated);
}

#[test]
fn indirect_with_next() {
    let (mut memory, mut driver, mut queue) = setup(4, ALL);
    driver.set_desc(&mut memory, 0, DATA, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    driver.publish(&mut memory, 0);
    expect_fatal(&mut queue, &memory, QueueError::IndirectWithNext);
}

#[test]
fn bad_indirect_lengths() {
    for len in [0, 8, 17, 16 * 32769, !0xF] {
        let (memory, _driver, mut queue) = indirect_setup(len);
        expect_fatal(&mut queue, &memory, QueueError::BadIndirectLength { len });
    }
}

#[test]
fn indirect_table_address_overflow() {
    let (mut memory, mut driver, mut queue) = setup(4, ALL);
    driver.set_desc(&mut memory, 0, u64::MAX - 15, 32, VIRTQ_DESC_F_INDIRECT, 0);
    driver.publish(&mut memory, 0);
    expect_fatal(&mut queue, &memory, QueueError::AddressOverflow);
}

#[test]
fn nested_indirect() {
    let (mut memory, _driver, mut queue) = indirect_setup(32);
    write_desc(&mut memory, DATA, 0x100, 4, VIRTQ_DESC_F_NEXT, 1);
    write_desc(&mut memory, DATA + 16, DATA, 32, VIRTQ_DESC_F_INDIRECT, 0);
    expect_fatal(&mut queue, &memory, QueueError::IndirectInIndirect);
}

#[test]
fn indirect_loops_and_bad_next() {
    let (mut memory, _driver, mut queue) = indirect_setup(32);
    write_desc(&mut memory, DATA, 0x100, 4, VIRTQ_DESC_F_NEXT, 1);
    write_desc(&mut memory, DATA + 16, 0x100, 4, VIRTQ_DESC_F_NEXT, 0);
    expect_fatal(&mut queue, &memory, QueueError::ChainTooLong);

    let (mut memory, _driver, mut queue) = indirect_setup(32);
    write_desc(&mut memory, DATA, 0x100, 4, VIRTQ_DESC_F_NEXT, 2);
    expect_fatal(&mut queue, &memory, QueueError::IndexOutOfRange { index: 2 });

    let (mut memory, _driver, mut queue) = indirect_setup(32);
    write_desc(&mut memory, DATA, 0x100, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    write_desc(&mut memory, DATA + 16, 0x100, 4, 0, 0);
    expect_fatal(&mut queue, &memory, QueueError::ReadableAfterWritable);
}

#[test]
fn indirect_table_outside_memory() {
    let (mut memory, mut driver, mut queue) = setup(4, ALL);
    driver.set_desc(&mut memory, 0, 0x1_0000_0000, 16, VIRTQ_DESC_F_INDIRECT, 0);
    driver.publish(&mut memory, 0);
    expect_fatal(
        &mut queue,
        &memory,
        QueueError::Memory(MemoryError {
            gpa: 0x1_0000_0000,
            len: 16,
        }),
    );
}

#[test]
fn rings_outside_memory() {
    let mut memory = VecMemory::new(MEMORY_SIZE);
    let config = QueueConfig {
        size: 4,
        desc_table: 0x10_0000,
        avail_ring: AVAIL_RING,
        used_ring: 0x20_0000,
    };
    let mut queue = Queue::new(config, 4, NONE, 8).unwrap();
    let mut driver = Driver::new(4);
    driver.publish(&mut memory, 0);
    let error = QueueError::Memory(MemoryError {
        gpa: 0x10_0000,
        len: 16,
    });
    assert_eq!(queue.pop(&memory), Err(error));
    assert!(queue.is_broken());

    // A used ring outside memory breaks the queue at add_used.
    let config = QueueConfig {
        desc_table: DESC_TABLE,
        ..config
    };
    let mut queue = Queue::new(config, 4, NONE, 8).unwrap();
    driver.set_desc(&mut memory, 0, DATA, 4, 0, 0);
    let chain = queue.pop(&memory).unwrap().unwrap();
    assert!(matches!(
        queue.add_used(&mut memory, chain.head(), 0),
        Err(QueueError::Memory(_))
    ));
    assert_eq!(queue.add_used(&mut memory, chain.head(), 0), Err(QueueError::Broken));
}

#[test]
fn avail_idx_jumps() {
    let (mut memory, _driver, mut queue) = setup(4, NONE);
    memory.write_u16(AVAIL_RING + 2, 5).unwrap();
    expect_fatal(
        &mut queue,
        &memory,
        QueueError::AvailIdxJump {
            next_avail: 0,
            avail_idx: 5,
        },
    );

    // Backwards is a jump too.
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.add_chain(&mut memory, 0, &[(4, false)]);
    queue.pop(&memory).unwrap().unwrap();
    memory.write_u16(AVAIL_RING + 2, 0).unwrap();
    expect_fatal(
        &mut queue,
        &memory,
        QueueError::AvailIdxJump {
            next_avail: 1,
            avail_idx: 0,
        },
    );

    // Exactly a full ring is fine.
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    for head in 0..4 {
        driver.add_chain(&mut memory, head, &[(4, false)]);
    }
    for head in 0..4 {
        assert_eq!(queue.pop(&memory).unwrap().unwrap().head(), head);
    }
    assert_eq!(queue.pop(&memory), Ok(None));
}

#[test]
fn indices_wrap_around() {
    let (mut memory, mut driver, mut queue) = setup(4, ALL);
    for round in 0..70_000u32 {
        let head = (round % 2) as u16 * 2;
        driver.add_chain(&mut memory, head, &[(4, false), (4, true)]);
        let chain = queue.pop(&memory).unwrap().unwrap();
        assert_eq!(chain.head(), head);
        queue.add_used(&mut memory, head, 4).unwrap();
        assert_eq!(driver.take_used(&memory), Some((u32::from(head), 4)));
    }
    assert_eq!(queue.next_avail(), (70_000u32 % 65536) as u16);
    assert_eq!(queue.next_used(), queue.next_avail());
    // 70000 entries since the last check: the indices alone cannot tell
    // whether used_event was passed, so the device notifies.
    driver.set_used_event(&mut memory, queue.next_used().wrapping_add(100));
    assert_eq!(queue.needs_notification(&memory), Ok(true));
    assert_eq!(queue.needs_notification(&memory), Ok(false));
}

#[test]
fn ring_rewritten_between_pops() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    driver.add_chain(&mut memory, 0, &[(4, false), (4, true)]);
    let first = queue.pop(&memory).unwrap().unwrap();
    // The driver reuses descriptor 0 while the device still holds it (a
    // protocol violation the device can't see) and makes it a loop: the copy
    // the device holds is unchanged, and the new chain is judged on its own.
    driver.set_desc(&mut memory, 0, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    driver.publish(&mut memory, 0);
    assert_eq!(first.segments(), [seg(DATA, 4, false), seg(DATA + 0x1000, 4, true)]);
    assert_eq!(queue.pop(&memory), Err(QueueError::ChainTooLong));
}

#[test]
fn ring_rewritten_during_a_pop() {
    // Chain 0 -> 1. Right after the device has read descriptor 0 (read 3:
    // avail.idx, ring entry, descriptor 0) the driver turns descriptor 0 into
    // a loop and descriptor 1 into a readable one. The device follows its
    // copy of descriptor 0 and sees one consistent chain.
    let mut inner = VecMemory::new(MEMORY_SIZE);
    let mut driver = Driver::new(4);
    driver.add_chain(&mut inner, 0, &[(4, false), (4, true)]);
    let mut loop_desc = VecMemory::new(16);
    write_desc(&mut loop_desc, 0, DATA, 4, VIRTQ_DESC_F_NEXT, 0);
    let mut readable = VecMemory::new(16);
    write_desc(&mut readable, 0, 0x7000, 4, 0, 0);
    let memory = MutatingMemory {
        inner: RefCell::new(inner),
        reads: Cell::new(0),
        trigger: 3,
        patches: vec![(DESC_TABLE, loop_desc.bytes), (DESC_TABLE + 16, readable.bytes)],
    };
    let mut queue = Queue::new(driver.config(), 4, NONE, 8).unwrap();
    let chain = queue.pop(&memory).unwrap().unwrap();
    assert_eq!(chain.segments(), [seg(DATA, 4, false), seg(0x7000, 4, false)]);
}

#[test]
fn need_event_arithmetic() {
    // event in [old, new): notify.
    assert!(vring_need_event(0, 1, 0));
    assert!(!vring_need_event(1, 1, 0));
    assert!(vring_need_event(5, 8, 3));
    assert!(!vring_need_event(8, 8, 3));
    assert!(!vring_need_event(2, 8, 3));
    // Wrap-around.
    assert!(vring_need_event(0xFFFF, 1, 0xFFFE));
    assert!(vring_need_event(0, 1, 0xFFFE));
    assert!(!vring_need_event(1, 1, 0xFFFE));
    assert!(!vring_need_event(0xFFFD, 1, 0xFFFE));
    // Nothing moved: never.
    assert!(!vring_need_event(7, 7, 7));
}

#[test]
fn used_notifications_without_event_idx() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    assert_eq!(queue.needs_notification(&memory), Ok(false), "nothing used yet");
    driver.add_chain(&mut memory, 0, &[(4, true)]);
    let chain = queue.pop(&memory).unwrap().unwrap();
    queue.add_used(&mut memory, chain.head(), 4).unwrap();
    assert_eq!(queue.needs_notification(&memory), Ok(true));
    assert_eq!(queue.needs_notification(&memory), Ok(false), "already considered");

    memory.write_u16(AVAIL_RING, VIRTQ_AVAIL_F_NO_INTERRUPT).unwrap();
    driver.add_chain(&mut memory, 1, &[(4, true)]);
    let chain = queue.pop(&memory).unwrap().unwrap();
    queue.add_used(&mut memory, chain.head(), 4).unwrap();
    assert_eq!(queue.needs_notification(&memory), Ok(false));
}

#[test]
fn used_notifications_with_event_idx() {
    let (mut memory, mut driver, mut queue) = setup(4, ALL);
    // The flag is ignored with EVENT_IDX.
    memory.write_u16(AVAIL_RING, VIRTQ_AVAIL_F_NO_INTERRUPT).unwrap();
    // used_event = 2: notify when the entry at index 2 is used.
    driver.set_used_event(&mut memory, 2);
    let mut notified = std::vec::Vec::new();
    for i in 0..6u16 {
        driver.add_chain(&mut memory, i % 4, &[(4, true)]);
        let chain = queue.pop(&memory).unwrap().unwrap();
        queue.add_used(&mut memory, chain.head(), 4).unwrap();
        driver.take_used(&memory);
        notified.push(queue.needs_notification(&memory).unwrap());
    }
    assert_eq!(notified, [false, false, true, false, false, false]);

    // Several entries at once, crossing used_event.
    driver.set_used_event(&mut memory, 7);
    for i in 0..3u16 {
        driver.add_chain(&mut memory, i, &[(4, true)]);
    }
    for _ in 0..3 {
        let chain = queue.pop(&memory).unwrap().unwrap();
        queue.add_used(&mut memory, chain.head(), 4).unwrap();
    }
    assert_eq!(queue.next_used(), 9);
    assert_eq!(queue.needs_notification(&memory), Ok(true));
}

#[test]
fn avail_notifications_without_event_idx() {
    let (mut memory, mut driver, mut queue) = setup(4, NONE);
    queue.disable_notification(&mut memory).unwrap();
    assert_eq!(memory.read_u16(USED_RING), Ok(VIRTQ_USED_F_NO_NOTIFY));
    assert_eq!(queue.enable_notification(&mut memory), Ok(false));
    assert_eq!(memory.read_u16(USED_RING), Ok(0));
    driver.add_chain(&mut memory, 0, &[(4, false)]);
    assert_eq!(queue.enable_notification(&mut memory), Ok(true), "a chain arrived");
    queue.pop(&memory).unwrap().unwrap();
    assert_eq!(queue.enable_notification(&mut memory), Ok(false));
}

#[test]
fn avail_notifications_with_event_idx() {
    let (mut memory, mut driver, mut queue) = setup(4, ALL);
    queue.disable_notification(&mut memory).unwrap();
    assert_eq!(memory.read_u16(USED_RING), Ok(0), "flags stay 0 with EVENT_IDX");
    driver.add_chain(&mut memory, 0, &[(4, false)]);
    driver.add_chain(&mut memory, 1, &[(4, false)]);
    queue.pop(&memory).unwrap().unwrap();
    assert_eq!(queue.enable_notification(&mut memory), Ok(true));
    assert_eq!(driver.avail_event(&memory), 1);
    queue.pop(&memory).unwrap().unwrap();
    assert_eq!(queue.enable_notification(&mut memory), Ok(false));
    assert_eq!(driver.avail_event(&memory), 2);
    // The driver's side of the same test: publishing entry 2 crosses it.
    assert!(vring_need_event(driver.avail_event(&memory), 3, 2));
}

#[test]
fn enable_notification_checks_the_index() {
    let (mut memory, _driver, mut queue) = setup(4, ALL);
    memory.write_u16(AVAIL_RING + 2, 100).unwrap();
    assert!(matches!(
        queue.enable_notification(&mut memory),
        Err(QueueError::AvailIdxJump { .. })
    ));
    assert!(queue.is_broken());
}

#[test]
fn random_memory_never_panics() {
    // Whole memory random, queue placed at random aligned addresses: pop
    // until the queue is empty or broken, completing what it returns.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2000 {
        let mut memory = VecMemory::new(0x4000);
        rng.fill(&mut memory.bytes);
        let size = 1u16 << rng.below(6);
        let features = QueueFeatures {
            event_idx: rng.below(2) == 0,
            indirect: rng.below(2) == 0,
        };
        let config = QueueConfig {
            size,
            desc_table: rng.below(0x400) * 16,
            avail_ring: rng.below(0x2000) * 2,
            used_ring: rng.below(0x1000) * 4,
        };
        let mut queue = Queue::new(config, size, features, 1 + rng.below(64) as usize).unwrap();
        for _ in 0..64 {
            match queue.pop(&memory) {
                Ok(Some(chain)) => {
                    assert!(chain.segments().len() <= queue.max_segments());
                    let writable_from = chain.readable().len();
                    assert!(chain.segments()[writable_from..].iter().all(|s| s.writable));
                    assert!(chain.readable().iter().all(|s| !s.writable));
                    let _ = queue.add_used(&mut memory, chain.head(), rng.next_u64() as u32);
                    let _ = queue.needs_notification(&memory);
                }
                Ok(None) => {
                    let _ = queue.enable_notification(&mut memory);
                    break;
                }
                Err(error) => {
                    assert!(error.needs_reset());
                    assert_eq!(queue.pop(&memory), Err(QueueError::Broken));
                    break;
                }
            }
        }
    }
}

#[test]
fn a_resumed_queue_continues_where_the_last_device_completed() {
    let (mut memory, mut driver, mut first) = setup(8, NONE);
    // Three requests: the first device completes one, takes a second and
    // goes away with it in flight; the third it never saw.
    for n in 0..3 {
        driver.add_chain(&mut memory, 2 * n, &[(16, false)]);
    }
    let done = first.pop(&memory).unwrap().unwrap();
    first.add_used(&mut memory, done.head(), 0).unwrap();
    let lost = first.pop(&memory).unwrap().unwrap();
    assert_eq!((done.head(), lost.head()), (0, 2));
    // The first device goes away here.

    let mut resumed = Queue::resume(driver.config(), 8, NONE, MAX_CHAIN_SEGMENTS, &memory).unwrap();
    assert_eq!((resumed.next_avail(), resumed.next_used()), (1, 1));
    // The chain in flight is taken again, then the unseen one.
    let again = resumed.pop(&memory).unwrap().unwrap();
    assert_eq!(again.head(), 2);
    resumed.add_used(&mut memory, again.head(), 0).unwrap();
    assert_eq!(resumed.pop(&memory).unwrap().unwrap().head(), 4);
    assert_eq!(driver.used_idx(&memory), 2);
    assert_eq!(driver.take_used(&memory), Some((0, 0)));
    assert_eq!(driver.take_used(&memory), Some((2, 0)));

    // A ring the driver has just set up resumes at 0, like a new queue.
    let (memory, driver, _) = setup(8, NONE);
    let fresh = Queue::resume(driver.config(), 8, NONE, MAX_CHAIN_SEGMENTS, &memory).unwrap();
    assert_eq!((fresh.next_avail(), fresh.next_used(), fresh.in_flight()), (0, 0, 0));
    // A used ring out of reach, or a bad layout, is refused.
    let far = QueueConfig {
        used_ring: MEMORY_SIZE as u64 + 0x1000,
        ..driver.config()
    };
    assert!(matches!(
        Queue::resume(far, 8, NONE, MAX_CHAIN_SEGMENTS, &memory),
        Err(ResumeError::Queue(_))
    ));
    assert_eq!(
        Queue::resume(driver.config(), 4, NONE, MAX_CHAIN_SEGMENTS, &memory).unwrap_err(),
        ResumeError::Config(ConfigError::SizeAboveMax { size: 8, max: 4 })
    );
}
