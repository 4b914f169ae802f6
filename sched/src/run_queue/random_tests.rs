//! Property-style tests: random sequences of calls, checked against a model
//! of the states and against the run queue's invariants after every call.

use std::collections::BTreeMap;

use super::test_util::{check_invariants, v, XorShift};
use super::RunQueue;
use crate::{Decision, SchedError, Tsc, VcpuId, VcpuState};

const SLICE: u64 = 1_000;

/// What the API promises about states, without any of the ordering policy.
#[derive(Default)]
struct Model {
    states: BTreeMap<VcpuId, VcpuState>,
    cpu_time: BTreeMap<VcpuId, u64>,
    current: Option<VcpuId>,
}

impl Model {
    fn known(&self, id: VcpuId) -> Result<VcpuState, SchedError> {
        self.states.get(&id).copied().ok_or(SchedError::NotQueued)
    }

    fn leave_cpu(&mut self, id: VcpuId) {
        if self.current == Some(id) {
            self.current = None;
        }
    }

    fn earliest_wake(&self) -> Option<Tsc> {
        self.states
            .values()
            .filter_map(|s| match s {
                VcpuState::Blocked { wake_at } => *wake_at,
                _ => None,
            })
            .min()
    }
}

/// Runs one random call on both the run queue and the model, and checks the
/// run queue's answer against what the model allows.
fn step(rq: &mut RunQueue, m: &mut Model, rng: &mut XorShift, pool: &[VcpuId], now: &mut Tsc) {
    let id = pool[rng.below(pool.len() as u64) as usize];
    let deadline = match rng.below(3) {
        0 => None,
        1 => Some(*now + rng.below(3 * SLICE)),
        // Sometimes a deadline already in the past.
        _ => Some(now.saturating_sub(rng.below(SLICE))),
    };
    match rng.below(11) {
        0 => {
            let paused = rng.chance(1, 3);
            let expect = match m.known(id) {
                Ok(_) => Err(SchedError::AlreadyQueued),
                Err(_) => {
                    let state = if paused { VcpuState::Paused } else { VcpuState::Runnable };
                    m.states.insert(id, state);
                    m.cpu_time.insert(id, 0);
                    Ok(())
                }
            };
            assert_eq!(rq.add(id, paused), expect);
        }
        1 => {
            let expect = m.known(id).map(|_| {
                m.states.remove(&id);
                m.cpu_time.remove(&id);
                m.leave_cpu(id);
            });
            assert_eq!(rq.remove(id), expect);
        }
        2 => {
            let expect = m.known(id).map(|_| {
                m.states.insert(id, VcpuState::Paused);
            });
            assert_eq!(rq.pause(id), expect);
        }
        3 => {
            let expect = m.known(id).map(|s| {
                if s == VcpuState::Paused {
                    let back = if m.current == Some(id) {
                        VcpuState::Running
                    } else {
                        VcpuState::Runnable
                    };
                    m.states.insert(id, back);
                }
            });
            assert_eq!(rq.unpause(id), expect);
        }
        4 => {
            let expect = m.known(id).map(|s| {
                m.leave_cpu(id);
                if s != VcpuState::Paused {
                    m.states.insert(id, VcpuState::Blocked { wake_at: deadline });
                }
            });
            assert_eq!(rq.block(id, deadline), expect);
        }
        5 => {
            let expect = m.known(id).map(|s| {
                if let VcpuState::Blocked { .. } = s {
                    m.states.insert(id, VcpuState::Runnable);
                }
            });
            assert_eq!(rq.wake(id), expect);
        }
        6 => {
            let expect = m.known(id).map(|s| {
                if m.current == Some(id) {
                    m.current = None;
                    if s == VcpuState::Running {
                        m.states.insert(id, VcpuState::Runnable);
                    }
                }
            });
            assert_eq!(rq.preempt(id), expect);
        }
        7 => {
            // Mostly what the slice allows, sometimes an overrun, rarely huge.
            let used = match rng.below(8) {
                0 => u64::MAX - rng.below(3),
                1 => SLICE + rng.below(SLICE),
                _ => rng.below(SLICE + 1),
            };
            if let Some(t) = m.cpu_time.get_mut(&id) {
                *t = t.saturating_add(used);
            }
            rq.charge(id, used);
        }
        8 => {
            // Time passes: sometimes a little, sometimes a lot.
            *now += if rng.chance(1, 10) {
                rng.below(10 * SLICE)
            } else {
                rng.below(SLICE / 10)
            };
        }
        _ => pick(rq, m, *now),
    }
}

fn pick(rq: &mut RunQueue, m: &mut Model, now: Tsc) {
    for s in m.states.values_mut() {
        if let VcpuState::Blocked { wake_at: Some(t) } = *s {
            if t <= now {
                *s = VcpuState::Runnable;
            }
        }
    }
    let still_running = m.current.filter(|c| m.states[c] == VcpuState::Running);
    if still_running.is_none() {
        // One paused while it ran has left the CPU by the time of a pick.
        m.current = None;
    }
    let decision = rq.pick(now);
    match decision {
        Decision::Run { vcpu, slice } => {
            assert!(slice > 0 && slice <= SLICE, "slice {slice}");
            assert_eq!(rq.balance(vcpu), Some(slice));
            match still_running {
                Some(c) => assert_eq!(vcpu, c, "a second vCPU was handed out"),
                None => {
                    assert_eq!(m.states.get(&vcpu), Some(&VcpuState::Runnable), "picked {vcpu:?}");
                    // Boosted vCPUs go first.
                    if rq.is_boosted(vcpu) == Some(false) {
                        for (&other, &s) in &m.states {
                            if s == VcpuState::Runnable && other != vcpu {
                                assert_eq!(rq.is_boosted(other), Some(false), "{other:?} was boosted");
                            }
                        }
                    }
                    m.states.insert(vcpu, VcpuState::Running);
                    m.current = Some(vcpu);
                }
            }
        }
        Decision::Idle { until } => {
            assert!(still_running.is_none());
            assert!(!m.states.values().any(|s| *s == VcpuState::Runnable), "idle with work");
            assert_eq!(until, m.earliest_wake());
        }
    }
}

fn compare(rq: &RunQueue, m: &Model, pool: &[VcpuId]) {
    check_invariants(rq);
    assert_eq!(rq.current(), m.current);
    assert_eq!(rq.len(), m.states.len());
    for &id in pool {
        assert_eq!(rq.state(id), m.states.get(&id).copied(), "{id:?}");
        assert_eq!(rq.cpu_time(id), m.cpu_time.get(&id).copied(), "{id:?}");
    }
    // Every vCPU exactly once.
    let listed: Vec<(VcpuId, VcpuState)> = rq.vcpus().collect();
    let modelled: Vec<(VcpuId, VcpuState)> = m.states.iter().map(|(&id, &s)| (id, s)).collect();
    assert_eq!(listed, modelled);
}

#[test]
fn random_call_sequences_keep_the_invariants() {
    let pool = [v(0, 0), v(0, 1), v(1, 0), v(2, 0), v(2, 1), v(9, 65_535)];
    for seed in 1..=200u64 {
        let mut rq = RunQueue::new(SLICE);
        let mut m = Model::default();
        let mut rng = XorShift::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut now: Tsc = rng.below(1 << 40);
        for _ in 0..2_000 {
            step(&mut rq, &mut m, &mut rng, &pool, &mut now);
            compare(&rq, &m, &pool);
        }
    }
}

/// Random, but following the protocol (charge what was used of the slice,
/// then preempt or block; interrupts wake blocked vCPUs at random): a
/// Runnable vCPU never waits while the others use more than one slice each.
#[test]
fn random_protocol_never_starves_anyone() {
    const N: u16 = 4;
    let ids: Vec<VcpuId> = (0..N).map(|i| v(u32::from(i % 2), i)).collect();
    let bound = u64::from(N - 1) * SLICE;
    for seed in 1..=50u64 {
        let mut rng = XorShift::new(seed);
        let mut rq = RunQueue::new(SLICE);
        for &id in &ids {
            rq.add(id, false).unwrap();
        }
        let mut now: Tsc = 0;
        // Cycles the others used since this vCPU last became Runnable.
        let mut waited = vec![0u64; ids.len()];
        let mut was_runnable = vec![true; ids.len()];
        for _ in 0..20_000 {
            let decision = rq.pick(now);
            // Deadlines that passed made some vCPUs Runnable just now.
            refresh(&rq, &ids, &mut waited, &mut was_runnable);
            match decision {
                Decision::Run { vcpu, slice } => {
                    let used = if rng.chance(1, 2) { slice } else { 1 + rng.below(slice) };
                    now += used;
                    rq.charge(vcpu, used);
                    for (i, &id) in ids.iter().enumerate() {
                        if id != vcpu && rq.state(id) == Some(VcpuState::Runnable) {
                            waited[i] += used;
                            assert!(waited[i] <= bound, "{id:?} waited {} > {bound}", waited[i]);
                        }
                    }
                    match rng.below(3) {
                        0 => rq.block(vcpu, Some(now + rng.below(2 * SLICE))).unwrap(),
                        1 => rq.block(vcpu, None).unwrap(),
                        _ => rq.preempt(vcpu).unwrap(),
                    }
                }
                Decision::Idle { until } => now = until.unwrap_or(now + SLICE).max(now),
            }
            if rng.chance(1, 2) {
                rq.wake(ids[rng.below(ids.len() as u64) as usize]).unwrap();
            }
            refresh(&rq, &ids, &mut waited, &mut was_runnable);
            check_invariants(&rq);
        }
    }
}

/// Starts the wait of every vCPU that became Runnable since the last call.
fn refresh(rq: &RunQueue, ids: &[VcpuId], waited: &mut [u64], was_runnable: &mut [bool]) {
    for (i, &id) in ids.iter().enumerate() {
        let runnable = rq.state(id) == Some(VcpuState::Runnable);
        if runnable && !was_runnable[i] {
            waited[i] = 0;
        }
        was_runnable[i] = runnable;
    }
}
