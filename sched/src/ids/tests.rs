use std::collections::BTreeSet;

use super::IdAllocator;

fn drain(ids: &mut IdAllocator) -> Vec<u32> {
    core::iter::from_fn(|| ids.allocate()).collect()
}

#[test]
fn lowest_free_hands_out_the_range_in_order_then_runs_out() {
    let mut ids = IdAllocator::lowest_free(1, 5);
    assert_eq!(ids.capacity(), 5);
    assert_eq!(drain(&mut ids), [1, 2, 3, 4, 5]);
    assert_eq!(ids.allocate(), None);
    assert_eq!(ids.in_use(), 5);
    assert!((1..=5).all(|id| ids.is_allocated(id)));
    assert!(!ids.is_allocated(0) && !ids.is_allocated(6));
}

#[test]
fn new_is_lowest_free() {
    let mut ids = IdAllocator::new(1, 0xffff);
    assert_eq!(ids.allocate(), Some(1));
    assert_eq!(ids.allocate(), Some(2));
    assert!(ids.release(1));
    assert_eq!(ids.allocate(), Some(1));
}

#[test]
fn lowest_free_reuses_the_lowest_released_id() {
    let mut ids = IdAllocator::lowest_free(10, 19);
    assert_eq!(drain(&mut ids).len(), 10);
    assert!(ids.release(15));
    assert!(ids.release(12));
    assert!(ids.release(19));
    assert!(!ids.is_allocated(12));
    assert_eq!(ids.in_use(), 7);
    assert_eq!(ids.allocate(), Some(12));
    assert_eq!(ids.allocate(), Some(15));
    assert_eq!(ids.allocate(), Some(19));
    assert_eq!(ids.allocate(), None);
}

#[test]
fn release_of_an_id_not_allocated_is_refused() {
    let mut ids = IdAllocator::lowest_free(1, 3);
    assert!(!ids.release(1), "never allocated");
    assert_eq!(ids.allocate(), Some(1));
    assert!(ids.release(1));
    assert!(!ids.release(1), "double release");
    assert!(!ids.release(0), "below the range");
    assert!(!ids.release(4), "above the range");
    assert_eq!(ids.in_use(), 0);
    // The refused releases changed nothing.
    assert_eq!(drain(&mut ids), [1, 2, 3]);
}

#[test]
fn cycling_does_not_reuse_a_released_id_at_once() {
    let mut ids = IdAllocator::cycling(1, 100);
    assert_eq!(ids.allocate(), Some(1));
    assert_eq!(ids.allocate(), Some(2));
    assert!(ids.release(2));
    assert!(ids.release(1));
    assert_eq!(ids.allocate(), Some(3));
    assert_eq!(ids.allocate(), Some(4));
}

#[test]
fn cycling_wraps_around_and_skips_ids_in_use() {
    let mut ids = IdAllocator::cycling(1, 5);
    assert_eq!(drain(&mut ids), [1, 2, 3, 4, 5]);
    assert!(ids.release(4));
    assert!(ids.release(2));
    // Past the end: wrap to the start, skipping 1, which is still in use.
    assert_eq!(ids.allocate(), Some(2));
    assert_eq!(ids.allocate(), Some(4));
    assert_eq!(ids.allocate(), None);
    assert!(ids.release(1));
    assert!(ids.release(5));
    // The search goes on after 4: 5 first, then round to 1.
    assert_eq!(ids.allocate(), Some(5));
    assert_eq!(ids.allocate(), Some(1));
    assert_eq!(ids.allocate(), None);
}

#[test]
fn cycling_keeps_going_round() {
    let mut ids = IdAllocator::cycling(1, 4);
    let mut handed = Vec::new();
    for _ in 0..10 {
        let id = ids.allocate().unwrap();
        handed.push(id);
        assert!(ids.release(id));
    }
    assert_eq!(handed, [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]);
}

#[test]
fn exhaustion_after_a_failed_allocation_recovers_on_release() {
    for mut ids in [IdAllocator::lowest_free(7, 9), IdAllocator::cycling(7, 9)] {
        assert_eq!(drain(&mut ids), [7, 8, 9]);
        assert_eq!(ids.allocate(), None);
        assert_eq!(ids.allocate(), None);
        assert!(ids.release(8));
        assert_eq!(ids.allocate(), Some(8));
        assert_eq!(ids.allocate(), None);
    }
}

#[test]
fn empty_and_single_id_ranges() {
    for mut ids in [IdAllocator::lowest_free(5, 4), IdAllocator::cycling(5, 4)] {
        assert_eq!(ids.capacity(), 0);
        assert_eq!(ids.allocate(), None);
        assert!(!ids.claim(5));
        assert!(!ids.release(5));
    }
    for mut ids in [IdAllocator::lowest_free(42, 42), IdAllocator::cycling(42, 42)] {
        assert_eq!(ids.capacity(), 1);
        assert_eq!(ids.allocate(), Some(42));
        assert_eq!(ids.allocate(), None);
        assert!(ids.release(42));
        assert_eq!(ids.allocate(), Some(42));
    }
}

#[test]
fn ranges_at_the_ends_of_u32_do_not_overflow() {
    let mut ids = IdAllocator::lowest_free(u32::MAX - 2, u32::MAX);
    assert_eq!(drain(&mut ids), [u32::MAX - 2, u32::MAX - 1, u32::MAX]);
    let mut ids = IdAllocator::cycling(u32::MAX - 1, u32::MAX);
    assert_eq!(ids.allocate(), Some(u32::MAX - 1));
    assert_eq!(ids.allocate(), Some(u32::MAX));
    assert!(ids.release(u32::MAX - 1));
    assert_eq!(ids.allocate(), Some(u32::MAX - 1));
    let mut ids = IdAllocator::cycling(0, u32::MAX);
    assert_eq!(ids.capacity(), 1 << 32);
    assert_eq!(ids.allocate(), Some(0));
    assert!(ids.claim(u32::MAX));
    assert_eq!(ids.allocate(), Some(1));
}

#[test]
fn claim_reserves_a_specific_id() {
    let mut ids = IdAllocator::cycling(0, 9);
    assert!(ids.claim(0), "Dom0 takes domain id 0");
    assert!(!ids.claim(0));
    assert!(!ids.claim(10));
    assert!(ids.claim(2));
    assert_eq!(ids.allocate(), Some(1));
    assert_eq!(ids.allocate(), Some(3));
    assert!(ids.release(2));
    assert!(!ids.release(2));
    assert_eq!(ids.in_use(), 3);
}

/// Random allocate/release/claim sequences against a naive model that scans
/// the whole range.
#[test]
fn random_sequences_match_a_naive_model() {
    let mut state = 0x1234_5678_9abc_def1u64;
    let mut rand = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for cycling in [false, true] {
        let (first, last) = (3u32, 40u32);
        let mut ids = if cycling {
            IdAllocator::cycling(first, last)
        } else {
            IdAllocator::lowest_free(first, last)
        };
        let mut model = BTreeSet::new();
        let mut next = first;
        for _ in 0..20_000 {
            let id = first - 2 + rand(u64::from(last - first + 5)) as u32;
            match rand(3) {
                0 => {
                    let expect = if cycling {
                        (next..=last).chain(first..next).find(|i| !model.contains(i))
                    } else {
                        (first..=last).find(|i| !model.contains(i))
                    };
                    assert_eq!(ids.allocate(), expect);
                    if let Some(got) = expect {
                        model.insert(got);
                        next = if got == last { first } else { got + 1 };
                    }
                }
                1 => assert_eq!(ids.release(id), model.remove(&id)),
                _ => {
                    let expect = (first..=last).contains(&id) && !model.contains(&id);
                    assert_eq!(ids.claim(id), expect);
                    if expect {
                        model.insert(id);
                    }
                }
            }
            assert_eq!(ids.in_use(), model.len());
            for i in first - 2..=last + 2 {
                assert_eq!(ids.is_allocated(i), model.contains(&i));
            }
        }
    }
}
