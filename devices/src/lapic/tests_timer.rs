//! Timer tests: TSC-deadline, one-shot and periodic modes. The test clock
//! has 2 TSC cycles per bus cycle.

use super::tests::enabled_apic;
use super::*;

const LVT_TIMER: u32 = 0x832;
const TIMER_INITIAL: u32 = 0x838;
const TIMER_CURRENT: u32 = 0x839;
const TIMER_DIVIDE: u32 = 0x83e;

const VECTOR: u8 = 0xec;
const ONE_SHOT: u64 = VECTOR as u64;
const PERIODIC: u64 = (1 << 17) | VECTOR as u64;
const TSC_DEADLINE: u64 = (2 << 17) | VECTOR as u64;
const MASKED: u64 = 1 << 16;
const DIVIDE_BY_1: u64 = 0b1011;
const DIVIDE_BY_16: u64 = 0b0011;

fn write_at(apic: &mut LocalApic, msr: u32, value: u64, now_tsc: u64) {
    assert_eq!(apic.wrmsr(msr, value, now_tsc), Ok(None), "{msr:#x}");
}

fn current_count(apic: &LocalApic, now_tsc: u64) -> u64 {
    apic.rdmsr(TIMER_CURRENT, now_tsc).unwrap()
}

fn timer_fired(apic: &mut LocalApic) -> bool {
    let fired = apic.requested.contains(VECTOR);
    apic.requested.remove(VECTOR);
    fired
}

#[test]
fn tsc_deadline_arms_fires_once_and_disarms() {
    let mut apic = enabled_apic(0);
    write_at(&mut apic, LVT_TIMER, TSC_DEADLINE, 0);
    apic.set_tsc_deadline(10_000, 500);
    assert_eq!(apic.tsc_deadline(), 10_000);
    assert_eq!(apic.next_timer_deadline(), Some(10_000));
    apic.on_time(9_999);
    assert!(!timer_fired(&mut apic));
    apic.on_time(10_000);
    assert!(timer_fired(&mut apic));
    assert_eq!(apic.tsc_deadline(), 0, "reads zero once fired");
    assert_eq!(apic.next_timer_deadline(), None);
    apic.on_time(20_000);
    assert!(!timer_fired(&mut apic), "fires only once");
}

#[test]
fn tsc_deadline_zero_disarms_and_past_deadline_fires_now() {
    let mut apic = enabled_apic(0);
    write_at(&mut apic, LVT_TIMER, TSC_DEADLINE, 0);
    apic.set_tsc_deadline(5_000, 0);
    apic.set_tsc_deadline(0, 100);
    assert_eq!(apic.next_timer_deadline(), None);
    apic.on_time(6_000);
    assert!(!timer_fired(&mut apic));

    apic.set_tsc_deadline(7_000, 8_000);
    assert!(timer_fired(&mut apic), "a deadline in the past fires at once");
    assert_eq!(apic.tsc_deadline(), 0);
}

#[test]
fn tsc_deadline_is_ignored_outside_deadline_mode() {
    let mut apic = enabled_apic(0);
    write_at(&mut apic, LVT_TIMER, ONE_SHOT, 0);
    apic.set_tsc_deadline(5_000, 0);
    assert_eq!(apic.tsc_deadline(), 0);
    assert_eq!(apic.next_timer_deadline(), None);
}

#[test]
fn masked_tsc_deadline_expires_silently() {
    let mut apic = enabled_apic(0);
    write_at(&mut apic, LVT_TIMER, TSC_DEADLINE | MASKED, 0);
    apic.set_tsc_deadline(5_000, 0);
    assert_eq!(apic.tsc_deadline(), 5_000, "arming works while masked");
    assert_eq!(apic.next_timer_deadline(), None, "nothing to wake for");
    apic.on_time(5_000);
    assert!(!timer_fired(&mut apic));
    assert_eq!(apic.tsc_deadline(), 0);
    // Unmasking afterwards does not resurrect the expired deadline.
    write_at(&mut apic, LVT_TIMER, TSC_DEADLINE, 6_000);
    apic.on_time(7_000);
    assert!(!timer_fired(&mut apic));
}

#[test]
fn leaving_deadline_mode_disarms() {
    let mut apic = enabled_apic(0);
    write_at(&mut apic, LVT_TIMER, TSC_DEADLINE, 0);
    apic.set_tsc_deadline(5_000, 0);
    write_at(&mut apic, LVT_TIMER, ONE_SHOT, 100);
    write_at(&mut apic, LVT_TIMER, TSC_DEADLINE, 200);
    assert_eq!(apic.tsc_deadline(), 0);
    apic.on_time(6_000);
    assert!(!timer_fired(&mut apic));

    // And entering it stops a countdown; initial-count writes are ignored.
    write_at(&mut apic, LVT_TIMER, ONE_SHOT, 0);
    write_at(&mut apic, TIMER_INITIAL, 1_000, 0);
    write_at(&mut apic, LVT_TIMER, TSC_DEADLINE, 10);
    write_at(&mut apic, TIMER_INITIAL, 1_000, 20);
    assert_eq!(current_count(&apic, 30), 0);
    assert_eq!(apic.next_timer_deadline(), None);
}

#[test]
fn one_shot_counts_down_at_the_divided_rate() {
    let mut apic = enabled_apic(0);
    write_at(&mut apic, LVT_TIMER, ONE_SHOT, 0);
    write_at(&mut apic, TIMER_DIVIDE, DIVIDE_BY_16, 0);
    // 2 TSC per bus cycle * 16 = 32 TSC per tick; 100 ticks = 3200 TSC.
    write_at(&mut apic, TIMER_INITIAL, 100, 1_000);
    assert_eq!(apic.rdmsr(TIMER_INITIAL, 1_000), Ok(100));
    assert_eq!(current_count(&apic, 1_000), 100);
    assert_eq!(current_count(&apic, 1_000 + 320), 90);
    assert_eq!(current_count(&apic, 1_000 + 351), 90, "partial ticks round down");
    assert_eq!(apic.next_timer_deadline(), Some(4_200));
    apic.on_time(4_199);
    assert!(!timer_fired(&mut apic));
    assert_eq!(current_count(&apic, 4_199), 1);
    apic.on_time(4_200);
    assert!(timer_fired(&mut apic));
    assert_eq!(current_count(&apic, 4_200), 0);
    assert_eq!(apic.next_timer_deadline(), None);
    apic.on_time(1_000_000);
    assert!(!timer_fired(&mut apic), "one-shot fires once");
}

#[test]
fn each_divide_value_scales_the_period() {
    for (config, divide_by) in [(0b0000, 2), (0b1001, 64), (0b1010, 128), (0b1011, 1)] {
        let mut apic = enabled_apic(0);
        write_at(&mut apic, LVT_TIMER, ONE_SHOT, 0);
        write_at(&mut apic, TIMER_DIVIDE, config, 0);
        write_at(&mut apic, TIMER_INITIAL, 10, 0);
        assert_eq!(
            apic.next_timer_deadline(),
            Some(10 * 2 * divide_by),
            "divide config {config:#06b}"
        );
    }
}

#[test]
fn periodic_reloads_and_coalesces_missed_periods() {
    let mut apic = enabled_apic(0);
    write_at(&mut apic, LVT_TIMER, PERIODIC, 0);
    write_at(&mut apic, TIMER_DIVIDE, DIVIDE_BY_1, 0);
    // 10 ticks of 2 TSC: a 20-cycle period.
    write_at(&mut apic, TIMER_INITIAL, 10, 0);
    assert_eq!(apic.next_timer_deadline(), Some(20));
    apic.on_time(20);
    assert!(timer_fired(&mut apic));
    assert_eq!(apic.next_timer_deadline(), Some(40));
    assert_eq!(current_count(&apic, 20), 10, "reloaded");
    assert_eq!(current_count(&apic, 25), 8);
    // Late by several periods: one interrupt, next deadline on the grid.
    apic.on_time(95);
    assert!(timer_fired(&mut apic));
    assert_eq!(apic.next_timer_deadline(), Some(100));
    apic.on_time(99);
    assert!(!timer_fired(&mut apic));
    // Initial count 0 stops the timer.
    write_at(&mut apic, TIMER_INITIAL, 0, 99);
    assert_eq!(apic.next_timer_deadline(), None);
    assert_eq!(current_count(&apic, 500), 0);
}

#[test]
fn masked_periodic_timer_counts_without_interrupts() {
    let mut apic = enabled_apic(0);
    write_at(&mut apic, LVT_TIMER, PERIODIC | MASKED, 0);
    write_at(&mut apic, TIMER_DIVIDE, DIVIDE_BY_1, 0);
    write_at(&mut apic, TIMER_INITIAL, 10, 0);
    assert_eq!(apic.next_timer_deadline(), None);
    assert_eq!(current_count(&apic, 30), 5, "still counting");
    apic.on_time(50);
    assert!(!timer_fired(&mut apic));
    // Unmasking does not deliver the periods that expired while masked.
    write_at(&mut apic, LVT_TIMER, PERIODIC, 50);
    assert!(!timer_fired(&mut apic));
    assert_eq!(apic.next_timer_deadline(), Some(60));
    apic.on_time(60);
    assert!(timer_fired(&mut apic));
}

#[test]
fn divide_change_mid_count_keeps_the_current_count() {
    let mut apic = enabled_apic(0);
    write_at(&mut apic, LVT_TIMER, ONE_SHOT, 0);
    write_at(&mut apic, TIMER_DIVIDE, DIVIDE_BY_1, 0);
    write_at(&mut apic, TIMER_INITIAL, 100, 0);
    // 40 ticks in, switch to divide by 16 (32 TSC per tick).
    write_at(&mut apic, TIMER_DIVIDE, DIVIDE_BY_16, 80);
    assert_eq!(current_count(&apic, 80), 60);
    assert_eq!(apic.next_timer_deadline(), Some(80 + 60 * 32));
}

#[test]
fn software_disable_masks_a_running_timer() {
    let mut apic = enabled_apic(0);
    write_at(&mut apic, LVT_TIMER, ONE_SHOT, 0);
    write_at(&mut apic, TIMER_INITIAL, 10, 0);
    write_at(&mut apic, 0x80f, 0xff, 1);
    assert_eq!(apic.next_timer_deadline(), None);
    apic.on_time(1_000);
    assert!(!timer_fired(&mut apic));
}
