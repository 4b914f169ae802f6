//! State-machine tests: each call in each state, round-robin order, boosts,
//! deadlines, pause, remove and idle decisions.

use super::test_util::{check_invariants, v};
use super::RunQueue;
use crate::{Decision, SchedError, VcpuId, VcpuState};

const SLICE: u64 = 1_000;

fn run(vcpu: VcpuId, slice: u64) -> Decision {
    Decision::Run { vcpu, slice }
}

/// Picks, checks it is `expect`, charges `used` and preempts it.
fn turn(rq: &mut RunQueue, now: u64, expect: VcpuId, used: u64) {
    match rq.pick(now) {
        Decision::Run { vcpu, .. } => assert_eq!(vcpu, expect),
        d => panic!("expected {expect:?} to run, got {d:?}"),
    }
    rq.charge(expect, used);
    rq.preempt(expect).unwrap();
    check_invariants(rq);
}

fn picked(rq: &mut RunQueue, now: u64) -> VcpuId {
    match rq.pick(now) {
        Decision::Run { vcpu, .. } => vcpu,
        d => panic!("expected a vCPU to run, got {d:?}"),
    }
}

fn queue_of(ids: &[VcpuId]) -> RunQueue {
    let mut rq = RunQueue::new(SLICE);
    for &id in ids {
        rq.add(id, false).unwrap();
    }
    rq
}

#[test]
fn zero_slice_is_taken_as_one() {
    let mut rq = RunQueue::new(0);
    assert_eq!(rq.slice(), 1);
    rq.add(v(1, 0), false).unwrap();
    assert_eq!(rq.pick(0), run(v(1, 0), 1));
}

#[test]
fn add_rejects_duplicates_and_honours_paused() {
    let mut rq = RunQueue::new(SLICE);
    assert!(rq.is_empty());
    rq.add(v(0, 0), false).unwrap();
    rq.add(v(1, 0), true).unwrap();
    assert_eq!(rq.add(v(0, 0), false), Err(SchedError::AlreadyQueued));
    assert_eq!(rq.add(v(1, 0), false), Err(SchedError::AlreadyQueued));
    assert_eq!(rq.len(), 2);
    assert!(!rq.is_empty());
    assert_eq!(rq.state(v(0, 0)), Some(VcpuState::Runnable));
    assert_eq!(rq.state(v(1, 0)), Some(VcpuState::Paused));
    assert_eq!(rq.cpu_time(v(0, 0)), Some(0));
    assert_eq!(rq.balance(v(0, 0)), Some(SLICE));
    check_invariants(&rq);
}

#[test]
fn unknown_vcpu_is_not_queued_everywhere() {
    let mut rq = queue_of(&[v(0, 0)]);
    let ghost = v(7, 3);
    assert_eq!(rq.remove(ghost), Err(SchedError::NotQueued));
    assert_eq!(rq.pause(ghost), Err(SchedError::NotQueued));
    assert_eq!(rq.unpause(ghost), Err(SchedError::NotQueued));
    assert_eq!(rq.block(ghost, Some(5)), Err(SchedError::NotQueued));
    assert_eq!(rq.wake(ghost), Err(SchedError::NotQueued));
    assert_eq!(rq.preempt(ghost), Err(SchedError::NotQueued));
    rq.charge(ghost, 500);
    assert_eq!(rq.state(ghost), None);
    assert_eq!(rq.cpu_time(ghost), None);
    assert_eq!(rq.balance(ghost), None);
    assert_eq!(rq.is_boosted(ghost), None);
    // Nothing leaked into the real vCPU's accounting.
    assert_eq!(rq.cpu_time(v(0, 0)), Some(0));
    assert_eq!(rq.len(), 1);
    check_invariants(&rq);
}

#[test]
fn error_messages() {
    assert_eq!(
        SchedError::AlreadyQueued.to_string(),
        "vCPU is already in the run queue"
    );
    assert_eq!(SchedError::NotQueued.to_string(), "vCPU is not in the run queue");
}

#[test]
fn pick_runs_for_the_full_slice_and_marks_running() {
    let mut rq = queue_of(&[v(0, 0)]);
    assert_eq!(rq.pick(0), run(v(0, 0), SLICE));
    assert_eq!(rq.state(v(0, 0)), Some(VcpuState::Running));
    assert_eq!(rq.current(), Some(v(0, 0)));
    check_invariants(&rq);
}

#[test]
fn round_robin_in_add_order() {
    let (a, b, c) = (v(2, 0), v(0, 0), v(1, 1));
    let mut rq = queue_of(&[a, b, c]);
    for _ in 0..3 {
        turn(&mut rq, 0, a, SLICE);
        turn(&mut rq, 0, b, SLICE);
        turn(&mut rq, 0, c, SLICE);
    }
}

#[test]
fn early_yield_keeps_the_rest_for_the_next_turn() {
    let (a, b) = (v(1, 0), v(2, 0));
    let mut rq = queue_of(&[a, b]);
    turn(&mut rq, 0, a, 300);
    // A yielded with 700 left: it goes to the back, keeping the 700.
    assert_eq!(rq.balance(a), Some(SLICE - 300));
    turn(&mut rq, 0, b, SLICE);
    assert_eq!(rq.pick(0), run(a, SLICE - 300));
    rq.charge(a, SLICE - 300);
    rq.preempt(a).unwrap();
    // Only now that it ran out is it refilled.
    assert_eq!(rq.balance(a), Some(SLICE));
    assert_eq!(rq.cpu_time(a), Some(SLICE));
    check_invariants(&rq);
}

#[test]
fn overrun_is_charged_to_cpu_time_but_not_carried() {
    let mut rq = queue_of(&[v(1, 0)]);
    assert_eq!(rq.pick(0), run(v(1, 0), SLICE));
    rq.charge(v(1, 0), SLICE + 37);
    assert_eq!(rq.balance(v(1, 0)), Some(0));
    assert_eq!(rq.cpu_time(v(1, 0)), Some(SLICE + 37));
    rq.preempt(v(1, 0)).unwrap();
    assert_eq!(rq.pick(0), run(v(1, 0), SLICE));
    check_invariants(&rq);
}

#[test]
fn cpu_time_accumulates_and_saturates() {
    let mut rq = queue_of(&[v(1, 0)]);
    rq.pick(0);
    rq.charge(v(1, 0), 10);
    rq.charge(v(1, 0), 20);
    assert_eq!(rq.cpu_time(v(1, 0)), Some(30));
    rq.charge(v(1, 0), u64::MAX);
    assert_eq!(rq.cpu_time(v(1, 0)), Some(u64::MAX));
    check_invariants(&rq);
}

#[test]
fn pick_while_running_returns_the_same_vcpu() {
    let (a, b) = (v(1, 0), v(2, 0));
    let mut rq = queue_of(&[a, b]);
    assert_eq!(rq.pick(0), run(a, SLICE));
    // The caller forgot to report A's exit: B must not run alongside it.
    assert_eq!(rq.pick(10), run(a, SLICE));
    rq.charge(a, 400);
    assert_eq!(rq.pick(20), run(a, SLICE - 400));
    // Even with its balance gone the slice is not 0: refilled in place.
    rq.charge(a, 600);
    assert_eq!(rq.pick(30), run(a, SLICE));
    assert_eq!(rq.state(b), Some(VcpuState::Runnable));
    check_invariants(&rq);
}

#[test]
fn idle_until_the_earliest_deadline() {
    let mut rq = RunQueue::new(SLICE);
    assert_eq!(rq.pick(0), Decision::Idle { until: None });

    let (a, b, c) = (v(1, 0), v(2, 0), v(3, 0));
    rq.add(a, false).unwrap();
    rq.add(b, false).unwrap();
    rq.add(c, false).unwrap();
    rq.block(a, None).unwrap();
    assert_eq!(rq.pick(0), run(b, SLICE));
    rq.block(b, Some(900)).unwrap();
    assert_eq!(rq.pick(0), run(c, SLICE));
    rq.block(c, Some(500)).unwrap();
    assert_eq!(rq.next_wake(), Some(500));
    assert_eq!(rq.pick(100), Decision::Idle { until: Some(500) });
    // A paused vCPU's deadline no longer counts.
    rq.pause(c).unwrap();
    assert_eq!(rq.pick(100), Decision::Idle { until: Some(900) });
    rq.block(b, None).unwrap();
    assert_eq!(rq.pick(100), Decision::Idle { until: None });
    // A Paused vCPU alone is not runnable either.
    rq.wake(a).unwrap();
    rq.pause(a).unwrap();
    assert_eq!(rq.pick(100), Decision::Idle { until: None });
    check_invariants(&rq);
}

#[test]
fn deadline_wakes_at_exactly_wake_at() {
    let a = v(1, 0);
    let mut rq = queue_of(&[a]);
    rq.pick(0);
    rq.charge(a, 100);
    rq.block(a, Some(5_000)).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Blocked { wake_at: Some(5_000) }));
    assert_eq!(rq.pick(4_999), Decision::Idle { until: Some(5_000) });
    assert_eq!(rq.state(a), Some(VcpuState::Blocked { wake_at: Some(5_000) }));
    assert_eq!(rq.pick(5_000), run(a, SLICE - 100));
    assert_eq!(rq.next_wake(), None);
    check_invariants(&rq);
}

#[test]
fn deadline_wake_is_boosted_past_spinners() {
    let (timer, s1, s2) = (v(0, 0), v(1, 0), v(2, 0));
    let mut rq = queue_of(&[timer, s1, s2]);
    rq.pick(0);
    rq.charge(timer, 50);
    rq.block(timer, Some(800)).unwrap();
    turn(&mut rq, 50, s1, SLICE);
    // The deadline passed while S1 ran; S2 is at the front, but the timer
    // vCPU is boosted.
    assert_eq!(rq.pick(1_050), run(timer, SLICE - 50));
    assert_eq!(rq.is_boosted(timer), Some(true));
    check_invariants(&rq);
}

#[test]
fn several_deadlines_in_one_pick_keep_round_robin_order() {
    let (a, b, c) = (v(1, 0), v(2, 0), v(3, 0));
    let mut rq = queue_of(&[a, b, c]);
    for (id, at) in [(a, 30), (b, 20), (c, 10)] {
        rq.pick(0);
        rq.charge(id, 1);
        rq.block(id, Some(at)).unwrap();
    }
    // All three wake at once; all are boosted, so their old order decides.
    assert_eq!(picked(&mut rq, 100), a);
    rq.charge(a, 1);
    rq.block(a, None).unwrap();
    assert_eq!(picked(&mut rq, 100), b);
    rq.charge(b, 1);
    rq.block(b, None).unwrap();
    assert_eq!(picked(&mut rq, 100), c);
    check_invariants(&rq);
}

#[test]
fn wake_boosts_a_blocked_vcpu_ahead_of_the_queue() {
    let (dom0, s1, s2) = (v(0, 0), v(1, 0), v(2, 0));
    let mut rq = queue_of(&[dom0, s1, s2]);
    rq.pick(0);
    rq.charge(dom0, 10);
    rq.block(dom0, None).unwrap();
    assert_eq!(picked(&mut rq, 10), s1);
    rq.wake(dom0).unwrap();
    assert_eq!(rq.state(dom0), Some(VcpuState::Runnable));
    assert_eq!(rq.is_boosted(dom0), Some(true));
    rq.charge(s1, SLICE);
    rq.preempt(s1).unwrap();
    // S2 is ahead in the round-robin order, but Dom0 is boosted.
    assert_eq!(rq.pick(1_010), run(dom0, SLICE - 10));
    check_invariants(&rq);
}

#[test]
fn boost_ends_at_preempt() {
    let (dom0, s1) = (v(0, 0), v(1, 0));
    let mut rq = queue_of(&[dom0, s1]);
    rq.pick(0);
    rq.block(dom0, None).unwrap();
    rq.wake(dom0).unwrap();
    // Picked again at once (boosted), runs 100 and yields.
    assert_eq!(picked(&mut rq, 0), dom0);
    rq.charge(dom0, 100);
    rq.preempt(dom0).unwrap();
    assert_eq!(rq.is_boosted(dom0), Some(false));
    assert_eq!(picked(&mut rq, 100), s1);
    check_invariants(&rq);
}

#[test]
fn boost_ends_when_the_balance_is_burnt() {
    let (dom0, s1) = (v(0, 0), v(1, 0));
    let mut rq = queue_of(&[dom0, s1]);
    rq.pick(0);
    rq.charge(dom0, 600);
    rq.block(dom0, None).unwrap();
    rq.wake(dom0).unwrap();
    assert_eq!(rq.pick(600), run(dom0, SLICE - 600));
    assert_eq!(rq.is_boosted(dom0), Some(true));
    rq.charge(dom0, SLICE - 600);
    assert_eq!(rq.is_boosted(dom0), Some(false));
    check_invariants(&rq);
}

#[test]
fn blocking_with_nothing_left_does_not_skip_the_line() {
    let (a, b, c) = (v(1, 0), v(2, 0), v(3, 0));
    let mut rq = queue_of(&[a, b, c]);
    // A burns its whole slice, blocks and is woken straight away: it gets a
    // full slice but no boost, and waits behind B and C like a preempted
    // vCPU would.
    rq.pick(0);
    rq.charge(a, SLICE);
    rq.block(a, None).unwrap();
    rq.wake(a).unwrap();
    assert_eq!(rq.is_boosted(a), Some(false));
    assert_eq!(rq.balance(a), Some(SLICE));
    turn(&mut rq, SLICE, b, SLICE);
    turn(&mut rq, 2 * SLICE, c, SLICE);
    turn(&mut rq, 3 * SLICE, a, SLICE);
}

#[test]
fn blocked_while_exhausted_keeps_its_place_not_the_back() {
    let (a, b, c) = (v(1, 0), v(2, 0), v(3, 0));
    let mut rq = queue_of(&[a, b, c]);
    rq.pick(0);
    rq.charge(a, SLICE);
    rq.block(a, None).unwrap();
    // While A sleeps, B and C each take a turn: A's place comes up.
    turn(&mut rq, 0, b, SLICE);
    turn(&mut rq, 0, c, SLICE);
    rq.wake(a).unwrap();
    // Not boosted, yet it is first in line, ahead of B and C.
    assert_eq!(rq.is_boosted(a), Some(false));
    assert_eq!(rq.pick(0), run(a, SLICE));
    check_invariants(&rq);
}

#[test]
fn wake_has_no_effect_unless_blocked() {
    let (a, b, c) = (v(1, 0), v(2, 0), v(3, 0));
    let mut rq = queue_of(&[a, b]);
    rq.add(c, true).unwrap();
    rq.pick(0);
    for id in [a, b, c] {
        let before = rq.state(id);
        rq.wake(id).unwrap();
        assert_eq!(rq.state(id), before);
        assert_eq!(rq.is_boosted(id), Some(false));
    }
    assert_eq!(rq.state(a), Some(VcpuState::Running));
    assert_eq!(rq.state(b), Some(VcpuState::Runnable));
    assert_eq!(rq.state(c), Some(VcpuState::Paused));
    check_invariants(&rq);
}

#[test]
fn block_from_each_state() {
    let (a, b, c) = (v(1, 0), v(2, 0), v(3, 0));
    let mut rq = queue_of(&[a, b]);
    rq.add(c, true).unwrap();
    // Running -> Blocked frees the CPU.
    rq.pick(0);
    rq.block(a, Some(10)).unwrap();
    assert_eq!(rq.current(), None);
    // Runnable -> Blocked takes it out of the queue (a vCPU waiting for SIPI).
    rq.block(b, None).unwrap();
    assert_eq!(rq.state(b), Some(VcpuState::Blocked { wake_at: None }));
    // Blocked -> Blocked replaces the deadline.
    rq.block(a, Some(99)).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Blocked { wake_at: Some(99) }));
    // Paused stays Paused.
    rq.block(c, Some(5)).unwrap();
    assert_eq!(rq.state(c), Some(VcpuState::Paused));
    assert_eq!(rq.pick(50), Decision::Idle { until: Some(99) });
    check_invariants(&rq);
}

#[test]
fn preempt_does_nothing_to_a_vcpu_not_on_the_cpu() {
    let (a, b, c) = (v(1, 0), v(2, 0), v(3, 0));
    let mut rq = queue_of(&[a, b, c]);
    rq.block(c, Some(7)).unwrap();
    rq.pick(0);
    rq.preempt(b).unwrap();
    rq.preempt(c).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Running));
    assert_eq!(rq.state(b), Some(VcpuState::Runnable));
    assert_eq!(rq.state(c), Some(VcpuState::Blocked { wake_at: Some(7) }));
    // Preempting twice is harmless, and B keeps its turn.
    rq.preempt(a).unwrap();
    rq.preempt(a).unwrap();
    assert_eq!(picked(&mut rq, 0), b);
    check_invariants(&rq);
}

#[test]
fn paused_vcpus_are_never_picked() {
    let (a, b) = (v(1, 0), v(2, 0));
    let mut rq = queue_of(&[a, b]);
    rq.pause(a).unwrap();
    for _ in 0..3 {
        turn(&mut rq, 0, b, SLICE);
    }
    rq.pause(b).unwrap();
    assert_eq!(rq.pick(0), Decision::Idle { until: None });
    // Unpause: Runnable at the back, not boosted.
    rq.unpause(a).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Runnable));
    assert_eq!(rq.is_boosted(a), Some(false));
    rq.unpause(b).unwrap();
    turn(&mut rq, 0, a, SLICE);
    turn(&mut rq, 0, b, SLICE);
}

#[test]
fn pause_and_unpause_are_idempotent() {
    let a = v(1, 0);
    let mut rq = queue_of(&[a]);
    rq.unpause(a).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Runnable));
    rq.pause(a).unwrap();
    rq.pause(a).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Paused));
    rq.unpause(a).unwrap();
    rq.unpause(a).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Runnable));
    check_invariants(&rq);
}

#[test]
fn pausing_the_running_vcpu_takes_effect_at_its_exit() {
    let (a, b) = (v(1, 0), v(2, 0));
    let mut rq = queue_of(&[a, b]);
    rq.pick(0);
    rq.pause(a).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Paused));
    // Still on the CPU until the caller reports the exit.
    assert_eq!(rq.current(), Some(a));
    rq.charge(a, 200);
    rq.preempt(a).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Paused));
    assert_eq!(rq.current(), None);
    assert_eq!(picked(&mut rq, 200), b);
    check_invariants(&rq);
}

#[test]
fn block_after_pause_while_running_stays_paused() {
    let (a, b) = (v(1, 0), v(2, 0));
    let mut rq = queue_of(&[a, b]);
    rq.pick(0);
    rq.pause(a).unwrap();
    rq.block(a, Some(10)).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Paused));
    assert_eq!(rq.current(), None);
    assert_eq!(rq.pick(100), run(b, SLICE));
    check_invariants(&rq);
}

#[test]
fn pick_after_pause_without_preempt_moves_on() {
    let (a, b) = (v(1, 0), v(2, 0));
    let mut rq = queue_of(&[a, b]);
    rq.pick(0);
    rq.pause(a).unwrap();
    // The caller asks again without reporting A's exit; A is Paused, so it
    // must not run again, and B may.
    assert_eq!(rq.pick(0), run(b, SLICE));
    assert_eq!(rq.state(a), Some(VcpuState::Paused));
    // A late preempt of A is harmless now.
    rq.preempt(a).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Paused));
    assert_eq!(rq.current(), Some(b));
    check_invariants(&rq);
}

#[test]
fn unpause_before_the_exit_resumes_running() {
    let (a, b) = (v(1, 0), v(2, 0));
    let mut rq = queue_of(&[a, b]);
    rq.pick(0);
    rq.pause(a).unwrap();
    rq.unpause(a).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Running));
    assert_eq!(rq.pick(0), run(a, SLICE));
    rq.charge(a, SLICE);
    rq.preempt(a).unwrap();
    assert_eq!(picked(&mut rq, 0), b);
    check_invariants(&rq);
}

#[test]
fn pause_forgets_a_deadline_and_a_wake() {
    let (a, b) = (v(1, 0), v(2, 0));
    let mut rq = queue_of(&[a, b]);
    rq.pick(0);
    rq.block(a, Some(100)).unwrap();
    rq.pause(a).unwrap();
    assert_eq!(rq.next_wake(), None);
    rq.wake(a).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Paused));
    assert_eq!(rq.pick(1_000), run(b, SLICE));
    assert_eq!(rq.state(a), Some(VcpuState::Paused));
    rq.preempt(b).unwrap();
    // Unpaused, it is simply Runnable; the hypervisor re-checks interrupts.
    rq.unpause(a).unwrap();
    assert_eq!(rq.state(a), Some(VcpuState::Runnable));
    assert_eq!(rq.is_boosted(a), Some(false));
    check_invariants(&rq);
}

#[test]
fn pause_drops_a_boost() {
    let (a, b) = (v(1, 0), v(2, 0));
    let mut rq = queue_of(&[a, b]);
    rq.pick(0);
    rq.block(a, None).unwrap();
    rq.wake(a).unwrap();
    assert_eq!(rq.is_boosted(a), Some(true));
    rq.pause(a).unwrap();
    rq.unpause(a).unwrap();
    assert_eq!(rq.is_boosted(a), Some(false));
    // Back of the queue: B first.
    assert_eq!(picked(&mut rq, 0), b);
    check_invariants(&rq);
}

#[test]
fn unpause_refills_an_exhausted_balance() {
    let (a, b) = (v(1, 0), v(2, 0));
    let mut rq = queue_of(&[a, b]);
    rq.pick(0);
    rq.charge(a, SLICE);
    rq.pause(a).unwrap();
    rq.preempt(a).unwrap();
    assert_eq!(rq.balance(a), Some(0));
    rq.unpause(a).unwrap();
    assert_eq!(rq.balance(a), Some(SLICE));
    check_invariants(&rq);
}

#[test]
fn remove_in_every_state() {
    let (runnable, running, blocked, paused, paused_on_cpu) = (v(1, 0), v(2, 0), v(3, 0), v(4, 0), v(5, 0));
    let mut rq = queue_of(&[paused_on_cpu, running, runnable, blocked, paused]);
    rq.pick(0);
    rq.pause(paused_on_cpu).unwrap();
    rq.preempt(paused_on_cpu).unwrap();
    assert_eq!(picked(&mut rq, 0), running);
    rq.block(running, None).unwrap();
    assert_eq!(picked(&mut rq, 0), runnable);
    rq.block(runnable, None).unwrap();
    assert_eq!(picked(&mut rq, 0), blocked);
    rq.block(blocked, Some(42)).unwrap();
    rq.wake(running).unwrap();
    rq.wake(runnable).unwrap();
    rq.pause(paused).unwrap();
    // Now each vCPU is in the state it is named after, except
    // `paused_on_cpu`, which waits Paused for the last case below.
    assert_eq!(picked(&mut rq, 0), running);
    assert_eq!(rq.state(runnable), Some(VcpuState::Runnable));
    assert_eq!(rq.state(blocked), Some(VcpuState::Blocked { wake_at: Some(42) }));
    assert_eq!(rq.state(paused), Some(VcpuState::Paused));

    rq.remove(blocked).unwrap();
    assert_eq!(rq.next_wake(), None);
    rq.remove(paused).unwrap();
    rq.remove(runnable).unwrap();
    check_invariants(&rq);
    // Removing the Running vCPU frees the CPU for someone else.
    rq.remove(running).unwrap();
    assert_eq!(rq.current(), None);
    rq.unpause(paused_on_cpu).unwrap();
    assert_eq!(picked(&mut rq, 0), paused_on_cpu);
    // Paused while on the CPU, then removed before its exit is reported.
    rq.pause(paused_on_cpu).unwrap();
    rq.remove(paused_on_cpu).unwrap();
    assert_eq!(rq.current(), None);
    assert!(rq.is_empty());
    assert_eq!(rq.pick(0), Decision::Idle { until: None });

    for id in [runnable, running, blocked, paused, paused_on_cpu] {
        assert_eq!(rq.state(id), None);
        assert_eq!(rq.remove(id), Err(SchedError::NotQueued));
        assert_eq!(rq.preempt(id), Err(SchedError::NotQueued));
    }
    // A removed vCPU can be added again, fresh.
    rq.add(running, false).unwrap();
    assert_eq!(rq.cpu_time(running), Some(0));
    assert_eq!(rq.pick(0), run(running, SLICE));
    check_invariants(&rq);
}

#[test]
fn vcpus_lists_every_vcpu_by_id() {
    let (a, b, c) = (v(3, 1), v(0, 0), v(3, 0));
    let mut rq = queue_of(&[a, b]);
    rq.add(c, true).unwrap();
    rq.pick(0);
    let listed: Vec<_> = rq.vcpus().collect();
    assert_eq!(
        listed,
        [
            (b, VcpuState::Runnable),
            (c, VcpuState::Paused),
            (a, VcpuState::Running)
        ]
    );
}

#[test]
fn charging_a_queued_vcpu_keeps_the_invariants() {
    // Not the protocol, but it must not break anything: a Runnable vCPU
    // charged to zero goes to the back refilled; a Blocked one moves back.
    let (a, b, c) = (v(1, 0), v(2, 0), v(3, 0));
    let mut rq = queue_of(&[a, b, c]);
    rq.charge(a, SLICE);
    check_invariants(&rq);
    assert_eq!(rq.balance(a), Some(SLICE));
    assert_eq!(picked(&mut rq, 0), b);
    rq.preempt(b).unwrap();
    rq.block(c, None).unwrap();
    rq.charge(c, 2 * SLICE);
    rq.wake(c).unwrap();
    assert_eq!(rq.is_boosted(c), Some(false));
    assert_eq!(picked(&mut rq, 0), a);
    check_invariants(&rq);
}
