//! Simulations over many slices: CPU time shares, what yielding and blocking
//! can (not) gain, and how soon an interactive vCPU runs after a wake-up.
//! Time is a simulated TSC that advances by the guest cycles each run uses.

use super::test_util::{check_invariants, v, XorShift};
use super::RunQueue;
use crate::{Decision, VcpuId, VcpuState};

const SLICE: u64 = 10_000;

fn run_decision(rq: &mut RunQueue, now: u64) -> (VcpuId, u64) {
    match rq.pick(now) {
        Decision::Run { vcpu, slice } => {
            assert!(slice > 0 && slice <= SLICE, "slice {slice}");
            (vcpu, slice)
        }
        d => panic!("nothing runnable at {now}: {d:?}"),
    }
}

fn times(rq: &RunQueue, ids: &[VcpuId]) -> Vec<u64> {
    ids.iter().map(|&id| rq.cpu_time(id).unwrap()).collect()
}

/// `n` vCPUs that always use their whole slice (plus a fixed `overrun` the
/// exit adds): after every turn, no two CPU times differ by more than one
/// slice (plus that overrun).
fn spinners_stay_within_one_slice(n: u16, overrun: u64) {
    let ids: Vec<VcpuId> = (0..n).map(|i| v(1, i)).collect();
    let mut rq = RunQueue::new(SLICE);
    for &id in &ids {
        rq.add(id, false).unwrap();
    }
    let mut now = 0;
    for _ in 0..10_000 {
        let (vcpu, slice) = run_decision(&mut rq, now);
        assert_eq!(slice, SLICE, "a spinner always gets a full slice");
        now += slice + overrun;
        rq.charge(vcpu, slice + overrun);
        rq.preempt(vcpu).unwrap();
        let t = times(&rq, &ids);
        let (min, max) = (*t.iter().min().unwrap(), *t.iter().max().unwrap());
        assert!(max - min <= SLICE + overrun, "unfair: {t:?}");
    }
    let total: u64 = times(&rq, &ids).iter().sum();
    assert_eq!(total, now);
    check_invariants(&rq);
}

#[test]
fn two_spinners_share_equally() {
    spinners_stay_within_one_slice(2, 0);
}

#[test]
fn three_spinners_share_equally() {
    spinners_stay_within_one_slice(3, 0);
}

#[test]
fn spinners_with_exit_overrun_share_equally() {
    spinners_stay_within_one_slice(3, 137);
}

/// Yields after a random part of every turn, competing with a spinner.
#[test]
fn yielding_early_gains_nothing() {
    let (yielder, spinner) = (v(1, 0), v(2, 0));
    let mut rq = RunQueue::new(SLICE);
    rq.add(yielder, false).unwrap();
    rq.add(spinner, false).unwrap();
    let mut rng = XorShift::new(7);
    let mut now = 0;
    let mut spinner_turns = 0u64;
    for _ in 0..20_000 {
        let (vcpu, slice) = run_decision(&mut rq, now);
        let used = if vcpu == yielder { 1 + rng.below(slice) } else { slice };
        if vcpu == spinner {
            spinner_turns += 1;
        }
        now += used;
        rq.charge(vcpu, used);
        rq.preempt(vcpu).unwrap();
        let (ty, ts) = (rq.cpu_time(yielder).unwrap(), rq.cpu_time(spinner).unwrap());
        assert!(ty <= ts + SLICE, "the yielder got ahead: {ty} vs {ts}");
    }
    // Strict alternation: the spinner gets every other turn.
    assert_eq!(spinner_turns, 10_000);
    check_invariants(&rq);
}

/// One or two vCPUs that play every trick the API allows (yield, block with a
/// deadline that has already passed or comes soon, block and get woken at
/// once) against always-runnable spinners: none of them ever gets more than
/// one slice ahead of any spinner.
fn gamers_gain_nothing(gamers: u16, spinners: u16, seed: u64) {
    let gamer_ids: Vec<VcpuId> = (0..gamers).map(|i| v(1, i)).collect();
    let spinner_ids: Vec<VcpuId> = (0..spinners).map(|i| v(2, i)).collect();
    let mut rq = RunQueue::new(SLICE);
    for &id in gamer_ids.iter().chain(&spinner_ids) {
        rq.add(id, false).unwrap();
    }
    let mut rng = XorShift::new(seed);
    let mut now = 0;
    for _ in 0..50_000 {
        let (vcpu, slice) = run_decision(&mut rq, now);
        if spinner_ids.contains(&vcpu) {
            now += slice;
            rq.charge(vcpu, slice);
            rq.preempt(vcpu).unwrap();
        } else {
            // Often the whole balance, otherwise any part of it.
            let used = if rng.chance(1, 3) { slice } else { 1 + rng.below(slice) };
            now += used;
            rq.charge(vcpu, used);
            match rng.below(5) {
                0 => rq.preempt(vcpu).unwrap(),
                1 => rq.block(vcpu, Some(now)).unwrap(),
                2 => rq.block(vcpu, Some(now + rng.below(2 * SLICE))).unwrap(),
                3 => {
                    rq.block(vcpu, None).unwrap();
                    rq.wake(vcpu).unwrap();
                }
                _ => {
                    // Blocked while another gamer wakes it.
                    rq.block(vcpu, None).unwrap();
                    let other = gamer_ids[rng.below(gamers.into()) as usize];
                    rq.wake(other).unwrap();
                }
            }
        }
        // A gamer left blocked with no deadline and nobody to wake it is
        // woken by "an interrupt" now and then.
        if rng.chance(1, 4) {
            rq.wake(gamer_ids[rng.below(gamers.into()) as usize]).unwrap();
        }
        let ts = times(&rq, &spinner_ids);
        let min_spinner = *ts.iter().min().unwrap();
        for (&g, tg) in gamer_ids.iter().zip(times(&rq, &gamer_ids)) {
            assert!(tg <= min_spinner + SLICE, "{g:?} got ahead: {tg} vs spinners {ts:?}");
        }
    }
    check_invariants(&rq);
}

#[test]
fn blocking_tricks_gain_nothing_against_one_spinner() {
    gamers_gain_nothing(1, 1, 1);
}

#[test]
fn blocking_tricks_gain_nothing_against_two_spinners() {
    gamers_gain_nothing(1, 2, 2);
}

#[test]
fn two_gamers_gain_nothing_against_two_spinners() {
    gamers_gain_nothing(2, 2, 3);
}

/// An interactive Dom0 waits for input (blocked, no deadline) while DomU
/// vCPUs spin. Input arrives at random moments, during some spinner's run;
/// the device model calls `wake`. Nothing preempts the spinner, so Dom0 must
/// run as soon as that spinner's slice ends: latency at most the running
/// vCPU's remaining slice. Only when Dom0 used up its whole balance before
/// blocking does it wait for its fair place in line instead.
fn interactive_latency(spinners: u16, seed: u64) {
    let dom0 = v(0, 0);
    let spinner_ids: Vec<VcpuId> = (0..spinners).map(|i| v(1, i)).collect();
    let mut rq = RunQueue::new(SLICE);
    rq.add(dom0, false).unwrap();
    for &id in &spinner_ids {
        rq.add(id, false).unwrap();
    }
    let mut rng = XorShift::new(seed);
    let mut now = 0;
    let mut next_input = 0;
    let mut work = 0u64;
    // (when the wake came, the running spinner's slice left then, boosted?)
    let mut woken: Option<(u64, u64, bool)> = None;
    let (mut boosted_wakes, mut unboosted_wakes) = (0, 0);
    for _ in 0..50_000 {
        let (vcpu, slice) = run_decision(&mut rq, now);
        if vcpu == dom0 {
            if let Some((at, remaining, boosted)) = woken.take() {
                let latency = now - at;
                if boosted {
                    boosted_wakes += 1;
                    assert!(latency <= remaining, "boosted Dom0 waited {latency} > {remaining}");
                } else {
                    unboosted_wakes += 1;
                    let fair = remaining + u64::from(spinners - 1) * SLICE;
                    assert!(latency <= fair, "Dom0 waited {latency} > {fair}");
                }
            }
            let used = work.min(slice);
            work -= used;
            now += used;
            rq.charge(dom0, used);
            if work == 0 {
                rq.block(dom0, None).unwrap();
                next_input = now + rng.below(3 * SLICE);
            } else {
                rq.preempt(dom0).unwrap();
            }
        } else {
            let end = now + slice;
            if matches!(rq.state(dom0), Some(VcpuState::Blocked { .. })) && next_input <= end {
                let at = next_input.max(now);
                rq.wake(dom0).unwrap();
                woken = Some((at, end - at, rq.is_boosted(dom0).unwrap()));
                // Each input is a short burst of work, a few percent of a slice.
                work = 1 + rng.below(SLICE / 8);
            }
            now = end;
            rq.charge(vcpu, slice);
            rq.preempt(vcpu).unwrap();
        }
        check_invariants(&rq);
    }
    // Dom0 keeps some balance most of the time, so most wakes are boosted.
    assert!(
        boosted_wakes > 5 * unboosted_wakes,
        "{boosted_wakes} boosted, {unboosted_wakes} not"
    );
    // And it used far less than a spinner's share, as interactive work does.
    let t0 = rq.cpu_time(dom0).unwrap();
    assert!(times(&rq, &spinner_ids).iter().all(|&t| t > t0));
}

#[test]
fn interactive_dom0_runs_promptly_beside_two_spinners() {
    interactive_latency(2, 11);
}

#[test]
fn interactive_dom0_runs_promptly_beside_three_spinners() {
    interactive_latency(3, 12);
}

/// A vCPU driven by its own timer: it blocks with a deadline every period.
/// When the deadline passes during a spinner's run, it runs right after it.
#[test]
fn timer_driven_vcpu_wakes_by_its_deadline() {
    let (ticker, s1, s2) = (v(0, 0), v(1, 0), v(1, 1));
    let mut rq = RunQueue::new(SLICE);
    for id in [ticker, s1, s2] {
        rq.add(id, false).unwrap();
    }
    let period = 3 * SLICE + SLICE / 3;
    let mut now = 0;
    let mut deadline: Option<u64> = None;
    let mut ticks = 0;
    for _ in 0..20_000 {
        let (vcpu, slice) = run_decision(&mut rq, now);
        if vcpu == ticker {
            if let Some(d) = deadline {
                ticks += 1;
                assert!(now >= d, "woken early");
                assert!(now - d <= SLICE, "woken {} after its deadline", now - d);
            }
            let used = (SLICE / 20).min(slice);
            now += used;
            rq.charge(ticker, used);
            let d = now + period;
            rq.block(ticker, Some(d)).unwrap();
            deadline = Some(d);
            assert_eq!(rq.next_wake(), Some(d));
        } else {
            now += slice;
            rq.charge(vcpu, slice);
            rq.preempt(vcpu).unwrap();
        }
    }
    assert!(ticks > 1_000);
    check_invariants(&rq);
}

/// With everyone blocked on deadlines, the CPU idles exactly until the next
/// one, and waking by deadline alone keeps every vCPU going.
#[test]
fn idle_until_deadlines_only() {
    let ids = [v(0, 0), v(1, 0), v(2, 0)];
    let periods = [700u64, 1_100, 1_300];
    let mut rq = RunQueue::new(SLICE);
    for id in ids {
        rq.add(id, false).unwrap();
    }
    let mut now = 0;
    let mut runs = [0u32; 3];
    let mut due = [0u64; 3];
    for _ in 0..10_000 {
        match rq.pick(now) {
            Decision::Run { vcpu, .. } => {
                let i = ids.iter().position(|&id| id == vcpu).unwrap();
                assert!(due[i] <= now);
                runs[i] += 1;
                now += 10;
                rq.charge(vcpu, 10);
                due[i] = now + periods[i];
                rq.block(vcpu, Some(due[i])).unwrap();
            }
            Decision::Idle { until } => {
                let earliest = *due.iter().min().unwrap();
                assert_eq!(until, Some(earliest));
                assert!(earliest > now);
                now = earliest;
            }
        }
    }
    // Each ran as often as its period allows: a cycle is its period plus its
    // own run, plus at most the other two's runs when deadlines collide.
    for i in 0..3 {
        let (most, least) = (now / (periods[i] + 10) + 1, now / (periods[i] + 30));
        let runs = u64::from(runs[i]);
        assert!(least <= runs && runs <= most, "{runs} runs, {least}..={most}");
    }
    check_invariants(&rq);
}
