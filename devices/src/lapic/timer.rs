//! The local APIC timer: one-shot and periodic countdown from the initial
//! count at the bus clock divided by the divide configuration, and
//! TSC-deadline mode (IA32_TSC_DEADLINE).
//!
//! Time is never sampled here: every entry point takes the guest TSC, so the
//! model is deterministic. The countdown is stored as "started at TSC t with
//! n ticks to go" and the current count is derived on demand, so no periodic
//! host work is needed; the hypervisor only wakes at
//! [`LocalApic::next_timer_deadline`] and calls [`LocalApic::on_time`].

use super::registers::{LvtEntry, LVT_TIMER_MODE_SHIFT};
use super::LocalApic;

/// The clocks the timer relates: the guest TSC frequency and the APIC timer
/// input ("bus") frequency that the divide configuration divides. A zero
/// frequency is treated as 1 Hz so a misconfiguration cannot divide by zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerClock {
    pub tsc_hz: u64,
    pub bus_hz: u64,
}

/// LVT timer bits 18:17.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerMode {
    OneShot,
    Periodic,
    TscDeadline,
}

impl TimerMode {
    /// Decodes an LVT timer value. Encoding 3 is reserved and rejected on
    /// write, so it never reaches here; it would read as one-shot.
    pub(crate) fn of_lvt(lvt_timer: u32) -> Self {
        match (lvt_timer >> LVT_TIMER_MODE_SHIFT) & 0b11 {
            1 => TimerMode::Periodic,
            2 => TimerMode::TscDeadline,
            _ => TimerMode::OneShot,
        }
    }

    /// Whether an LVT timer value uses the reserved mode encoding 3.
    pub(crate) fn is_reserved(lvt_timer: u32) -> bool {
        (lvt_timer >> LVT_TIMER_MODE_SHIFT) & 0b11 == 0b11
    }
}

/// The divisor selected by a divide configuration value: bits 3,1,0 form a
/// 3-bit code where 0b111 means 1 and code `n` means `2^(n+1)`.
pub(crate) fn divisor(divide_config: u32) -> u64 {
    let code = (divide_config & 0b11) | ((divide_config >> 1) & 0b100);
    if code == 0b111 {
        1
    } else {
        2 << code
    }
}

/// A running one-shot/periodic countdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Countdown {
    start_tsc: u64,
    /// The divisor in effect since `start_tsc`; a divide change re-bases.
    divisor: u64,
    /// Timer ticks from `start_tsc` to the first expiry (>= 1). Equals the
    /// initial count, except after a divide change mid-count.
    first_period_ticks: u64,
    /// Expiries already handled by `on_time`.
    expirations_handled: u64,
}

impl Countdown {
    fn start(now_tsc: u64, divisor: u64, ticks: u64) -> Option<Self> {
        (ticks != 0).then_some(Self {
            start_tsc: now_tsc,
            divisor,
            first_period_ticks: ticks,
            expirations_handled: 0,
        })
    }

    /// Whole timer ticks since the start, at `now_tsc`.
    fn ticks_elapsed(&self, clock: TimerClock, now_tsc: u64) -> u64 {
        let tsc_elapsed = u128::from(now_tsc.saturating_sub(self.start_tsc));
        let tsc_per_tick_denominator = u128::from(clock.bus_hz.max(1));
        let tsc_per_tick_numerator = u128::from(clock.tsc_hz.max(1)) * u128::from(self.divisor);
        let ticks = tsc_elapsed * tsc_per_tick_denominator / tsc_per_tick_numerator;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// The first TSC value at which `ticks` whole ticks have elapsed
    /// (rounded up, so `on_time` at that TSC sees the expiry).
    fn tsc_after_ticks(&self, clock: TimerClock, ticks: u64) -> u64 {
        let numerator = u128::from(ticks)
            .saturating_mul(u128::from(clock.tsc_hz.max(1)))
            .saturating_mul(u128::from(self.divisor));
        let tsc = numerator.div_ceil(u128::from(clock.bus_hz.max(1)));
        let deadline = u128::from(self.start_tsc).saturating_add(tsc);
        u64::try_from(deadline).unwrap_or(u64::MAX)
    }

    /// Expiries that have happened after `ticks` ticks. `reload` is the
    /// period for periodic mode, `None` for one-shot.
    fn expirations_after(&self, ticks: u64, reload: Option<u64>) -> u64 {
        let Some(since_first) = ticks.checked_sub(self.first_period_ticks) else {
            return 0;
        };
        match reload.and_then(|period| since_first.checked_div(period)) {
            Some(periods) => periods.saturating_add(1),
            None => 1,
        }
    }

    /// The current-count register after `ticks` ticks.
    fn count_after(&self, ticks: u64, reload: Option<u64>) -> u64 {
        let Some(since_first) = ticks.checked_sub(self.first_period_ticks) else {
            return self.first_period_ticks - ticks;
        };
        match reload {
            // Reloads to the initial count at each expiry, then counts down.
            Some(period) => since_first
                .checked_rem(period)
                .map_or(0, |into_period| period - into_period),
            None => 0,
        }
    }

    /// Ticks from the start to the next unhandled expiry, if there is one.
    fn next_expiry_ticks(&self, reload: Option<u64>) -> Option<u64> {
        if self.expirations_handled == 0 {
            return Some(self.first_period_ticks);
        }
        let period = reload.filter(|period| *period != 0)?;
        let later_periods = period.saturating_mul(self.expirations_handled);
        Some(self.first_period_ticks.saturating_add(later_periods))
    }
}

impl LocalApic {
    fn timer_mode(&self) -> TimerMode {
        TimerMode::of_lvt(self.lvt.get(LvtEntry::Timer))
    }

    /// The periodic reload value, `None` in one-shot mode.
    fn timer_reload(&self) -> Option<u64> {
        (self.timer_mode() == TimerMode::Periodic).then_some(u64::from(self.timer_initial_count))
    }

    /// IA32_TSC_DEADLINE as the guest reads it: zero outside TSC-deadline
    /// mode and once the deadline has fired.
    pub fn tsc_deadline(&self) -> u64 {
        self.tsc_deadline
    }

    /// A guest write to IA32_TSC_DEADLINE. Ignored outside TSC-deadline mode
    /// (SDM 11.5.4.1); 0 disarms; a deadline already in the past fires now.
    /// Arming works while the LVT timer is masked, but then expiry raises no
    /// interrupt.
    pub fn set_tsc_deadline(&mut self, value: u64, now_tsc: u64) {
        if self.timer_mode() != TimerMode::TscDeadline {
            return;
        }
        self.tsc_deadline = value;
        self.on_time(now_tsc);
    }

    /// The guest TSC at which the timer next needs [`Self::on_time`], or
    /// `None` when no interrupt can come from it (disarmed or masked). Query
    /// it after every register write and `on_time` call to reprogram the
    /// hypervisor's preemption timer.
    pub fn next_timer_deadline(&self) -> Option<u64> {
        self.lvt.unmasked_vector(LvtEntry::Timer)?;
        if self.tsc_deadline != 0 {
            return Some(self.tsc_deadline);
        }
        let countdown = self.countdown?;
        let ticks = countdown.next_expiry_ticks(self.timer_reload())?;
        Some(countdown.tsc_after_ticks(self.clock, ticks))
    }

    /// Fires expired timers at guest TSC `now_tsc`: raises the LVT timer
    /// vector (unless masked), disarms one-shot and deadline timers and
    /// advances periodic ones. Periods missed while the hypervisor was not
    /// looking coalesce into one interrupt, as IRR holds one bit per vector.
    pub fn on_time(&mut self, now_tsc: u64) {
        if self.tsc_deadline != 0 && now_tsc >= self.tsc_deadline {
            self.tsc_deadline = 0;
            self.raise_timer_interrupt();
        }
        let Some(mut countdown) = self.countdown else {
            return;
        };
        let reload = self.timer_reload();
        let ticks = countdown.ticks_elapsed(self.clock, now_tsc);
        let expirations = countdown.expirations_after(ticks, reload);
        if expirations <= countdown.expirations_handled {
            return;
        }
        countdown.expirations_handled = expirations;
        self.countdown = reload.and(Some(countdown));
        self.raise_timer_interrupt();
    }

    fn raise_timer_interrupt(&mut self) {
        if let Some(vector) = self.lvt.unmasked_vector(LvtEntry::Timer) {
            self.raise_local(vector);
        }
    }

    /// The current-count register at `now_tsc`.
    pub(crate) fn timer_current_count(&self, now_tsc: u64) -> u32 {
        let Some(countdown) = self.countdown else {
            return 0;
        };
        let reload = self.timer_reload();
        let ticks = countdown.ticks_elapsed(self.clock, now_tsc);
        u32::try_from(countdown.count_after(ticks, reload)).unwrap_or(u32::MAX)
    }

    /// Applies an already-sanitized LVT timer value.
    pub(crate) fn write_lvt_timer(&mut self, value: u32, now_tsc: u64) {
        // Expiries up to now belong to the old configuration (mask, mode).
        self.on_time(now_tsc);
        let was_deadline = self.timer_mode() == TimerMode::TscDeadline;
        self.lvt.set(LvtEntry::Timer, value);
        let is_deadline = self.timer_mode() == TimerMode::TscDeadline;
        // SDM 11.5.4.1: switching into or out of TSC-deadline mode disarms.
        if was_deadline != is_deadline {
            self.tsc_deadline = 0;
            self.countdown = None;
        }
    }

    pub(crate) fn write_timer_initial_count(&mut self, value: u32, now_tsc: u64) {
        self.on_time(now_tsc);
        // SDM 11.5.4.1: initial-count writes are ignored in TSC-deadline mode.
        if self.timer_mode() == TimerMode::TscDeadline {
            return;
        }
        self.timer_initial_count = value;
        let divisor = divisor(self.timer_divide_config);
        self.countdown = Countdown::start(now_tsc, divisor, u64::from(value));
    }

    /// Applies an already-sanitized divide configuration. A countdown in
    /// progress keeps its current count and continues at the new rate.
    pub(crate) fn write_timer_divide_config(&mut self, value: u32, now_tsc: u64) {
        self.on_time(now_tsc);
        let remaining = u64::from(self.timer_current_count(now_tsc));
        self.timer_divide_config = value;
        if self.countdown.is_some() {
            self.countdown = Countdown::start(now_tsc, divisor(value), remaining);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divide_configuration_encoding() {
        let expected = [
            (0b0000, 2),
            (0b0001, 4),
            (0b0010, 8),
            (0b0011, 16),
            (0b1000, 32),
            (0b1001, 64),
            (0b1010, 128),
            (0b1011, 1),
        ];
        for (config, divide_by) in expected {
            assert_eq!(divisor(config), divide_by, "config {config:#06b}");
        }
    }

    #[test]
    fn countdown_math_rounds_deadline_up() {
        // 3 GHz TSC, 100 MHz bus, divide by 1: 30 TSC cycles per tick.
        let clock = TimerClock {
            tsc_hz: 3_000_000_000,
            bus_hz: 100_000_000,
        };
        let countdown = Countdown::start(1000, 1, 10).unwrap();
        assert_eq!(countdown.tsc_after_ticks(clock, 10), 1300);
        assert_eq!(countdown.ticks_elapsed(clock, 1299), 9);
        assert_eq!(countdown.ticks_elapsed(clock, 1300), 10);
        // Time going backwards reads as no time passing.
        assert_eq!(countdown.ticks_elapsed(clock, 0), 0);

        // 7 Hz bus against a 10 Hz TSC: 10/7 TSC per tick, rounded up.
        let odd = TimerClock { tsc_hz: 10, bus_hz: 7 };
        let deadline = countdown.tsc_after_ticks(odd, 3);
        assert_eq!(deadline, 1000 + 5); // ceil(30 / 7)
        assert_eq!(countdown.ticks_elapsed(odd, deadline), 3);
        assert_eq!(countdown.ticks_elapsed(odd, deadline - 1), 2);
    }

    #[test]
    fn countdown_survives_extreme_values() {
        let clock = TimerClock {
            tsc_hz: u64::MAX,
            bus_hz: 0,
        };
        let countdown = Countdown::start(u64::MAX - 1, 128, u64::from(u32::MAX)).unwrap();
        assert_eq!(countdown.tsc_after_ticks(clock, u64::MAX), u64::MAX);
        assert_eq!(countdown.ticks_elapsed(clock, u64::MAX), 0);
        assert_eq!(
            countdown.expirations_after(u64::MAX, Some(1)),
            u64::MAX - u64::from(u32::MAX) + 1
        );
        assert_eq!(countdown.count_after(u64::MAX, Some(0)), 0);
    }
}
