//! Helpers shared by the run-queue tests: a deterministic PRNG (no
//! dependencies) and a check of the run queue's internal invariants.

use super::RunQueue;
use crate::{VcpuId, VcpuState};

/// xorshift64*: small, deterministic, good enough to shuffle test inputs.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // A zero state would stay zero forever.
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n`; `n` must be non-zero.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

pub fn v(domain: u32, index: u16) -> VcpuId {
    VcpuId::new(domain, index)
}

/// Checks everything the run queue promises about its own state: at most one
/// Running vCPU and it is `current`, every vCPU listed once in one state, a
/// consistent round-robin order, and balances that allow a non-zero slice.
pub fn check_invariants(rq: &RunQueue) {
    let entries = &rq.entries;
    for pair in entries.windows(2) {
        assert!(pair[0].id < pair[1].id, "entries not strictly sorted: {:?}", entries);
    }

    // Queue order consistent: positions are unique and all handed out.
    let mut seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs.len(),
        entries.len(),
        "duplicate round-robin positions: {:?}",
        entries
    );
    assert!(
        entries.iter().all(|e| e.seq < rq.next_seq),
        "position past the back: {:?}",
        rq
    );

    let running: Vec<VcpuId> = entries
        .iter()
        .filter(|e| e.state == VcpuState::Running)
        .map(|e| e.id)
        .collect();
    assert!(running.len() <= 1, "more than one Running vCPU: {:?}", running);
    if let Some(&r) = running.first() {
        assert_eq!(rq.current, Some(r), "Running vCPU is not current");
    }
    if let Some(cur) = rq.current {
        let e = entries
            .iter()
            .find(|e| e.id == cur)
            .expect("current vCPU not in the queue");
        assert!(
            matches!(e.state, VcpuState::Running | VcpuState::Paused),
            "current vCPU is {:?}",
            e.state
        );
    }

    for e in entries {
        assert!(e.balance <= rq.slice, "balance above the slice: {:?}", e);
        if e.state == VcpuState::Runnable {
            assert!(e.balance > 0, "Runnable with no balance: {:?}", e);
        }
        if e.boosted {
            assert!(
                matches!(e.state, VcpuState::Runnable | VcpuState::Running),
                "boosted while {:?}",
                e.state
            );
            assert!(e.balance > 0, "boosted with no balance: {:?}", e);
        }
    }

    assert_eq!(rq.len(), entries.len());
    assert_eq!(rq.is_empty(), entries.is_empty());
    let listed: Vec<(VcpuId, VcpuState)> = rq.vcpus().collect();
    assert_eq!(listed.len(), entries.len());
    for (id, state) in listed {
        assert_eq!(rq.state(id), Some(state));
    }
    let earliest = entries
        .iter()
        .filter_map(|e| match e.state {
            VcpuState::Blocked { wake_at } => wake_at,
            _ => None,
        })
        .min();
    assert_eq!(rq.next_wake(), earliest);
}
