//! The hot paths must not allocate: the hypervisor calls them on every VM
//! exit that ends a run, possibly with interrupts off. A counting global
//! allocator (which needs `unsafe`, so it lives here, outside the crate)
//! checks that only `add` allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use keel_sched::{Decision, RunQueue, VcpuId};

struct Counting;

thread_local! {
    // Per thread, so tests running in parallel do not count each other.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; the counter
// is a const-initialised thread local, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn only_add_allocates() {
    let ids: Vec<VcpuId> = (0..8).map(|i| VcpuId::new(i % 3, i as u16)).collect();
    let mut rq = RunQueue::new(1_000);
    let before = allocations();
    for &id in &ids {
        rq.add(id, false).unwrap();
    }
    assert!(allocations() > before, "the counter works");

    let before = allocations();
    let mut now = 0;
    let mut x = 0x2545_f491u64;
    for round in 0..10_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let other = ids[(x % ids.len() as u64) as usize];
        match rq.pick(now) {
            Decision::Run { vcpu, slice } => {
                let used = 1 + x % slice;
                now += used;
                rq.charge(vcpu, used);
                match round % 4 {
                    0 => rq.block(vcpu, Some(now + x % 3_000)).unwrap(),
                    1 => rq.block(vcpu, None).unwrap(),
                    _ => rq.preempt(vcpu).unwrap(),
                }
            }
            Decision::Idle { until } => now = until.unwrap_or(now + 1),
        }
        rq.wake(other).unwrap();
        if round % 97 == 0 {
            rq.pause(other).unwrap();
        }
        if round % 89 == 0 {
            rq.unpause(other).unwrap();
        }
        let _ = (rq.next_wake(), rq.state(other), rq.cpu_time(other));
        let _ = rq.vcpus().count();
    }
    // Removing frees, never allocates.
    for &id in &ids {
        rq.remove(id).unwrap();
    }
    assert_eq!(allocations(), before, "a hot path allocated");
}
