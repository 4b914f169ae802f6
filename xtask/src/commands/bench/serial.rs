//! Reading a boot's figures from its serial log: Linux's printk timestamps,
//! the TSC rate that turns them back into TSC ticks, and Keel's per-domain
//! lines.
//!
//! In Bochs the TSC counts emulated instructions (one tick per instruction,
//! and the idle ticks it skips through while the CPU halts), and Keel does
//! not offset it: every guest reads the machine's own counter. Linux's printk
//! clock is that counter since Linux started its TSC clock (early in
//! `setup_arch`, after the kernel decompressed itself), divided by the rate
//! Linux believes in; multiplying back gives ticks.

use anyhow::{bail, Context, Result};

/// Keel's line with the TSC rate it measured: `keel: TSC: 10.000 MHz`.
const KEEL_TSC_PREFIX: &str = "keel: TSC: ";
/// Linux's lines with the rate its clock runs at, the first at boot, the
/// second when it has recalibrated (it rescales its clock from then on).
const LINUX_TSC_DETECTED: &str = "tsc: Detected ";
const LINUX_TSC_REFINED: &str = "tsc: Refined TSC clocksource calibration: ";
/// Keel's mark in front of a guest console line that starts like its own.
const GUEST_MARK: &str = "dom0| ";

/// The printk timestamp of the kernel-log line that says `text`:
/// `[  12.345678] text` gives 12.345678. The timestamp must come right
/// before `text` (so a line that merely quotes it does not count); whatever
/// precedes the `[` on the line is ignored.
pub fn kernel_time(line: &str, text: &str) -> Option<f64> {
    let at = line.find(text)?;
    let before = line[..at].strip_suffix("] ")?;
    let open = before.rfind('[')?;
    let seconds = before[open + 1..].trim();
    if seconds.is_empty() || !seconds.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.') {
        return None;
    }
    seconds.parse().ok()
}

/// The index and timestamp of the first line of `log` that is a kernel-log
/// line saying `text`.
pub fn first_kernel_line(log: &str, text: &str) -> Option<(usize, f64)> {
    first_kernel_line_from(log, text, 0)
}

/// The same, from line `from` on.
pub fn first_kernel_line_from(log: &str, text: &str, from: usize) -> Option<(usize, f64)> {
    log.lines()
        .enumerate()
        .skip(from)
        .find_map(|(index, line)| kernel_time(line, text).map(|seconds| (index, seconds)))
}

/// What follows `prefix` on one of Keel's own lines. Keel marks a guest line
/// that starts like its own (`dom0| keel: ...`); such a line does not count.
fn keel_line<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let at = line.find(prefix)?;
    if line[..at].ends_with(GUEST_MARK) {
        return None;
    }
    Some(&line[at + prefix.len()..])
}

/// `10.000 MHz` (and whatever follows) as MHz.
fn parse_mhz(text: &str) -> Option<f64> {
    let (number, rest) = text.trim_start().split_once(' ')?;
    if !rest.starts_with("MHz") {
        return None;
    }
    number.parse().ok().filter(|mhz: &f64| *mhz > 0.0)
}

/// The rate from Keel's `keel: TSC: <n> MHz` line.
pub fn keel_tsc_mhz(log: &str) -> Option<f64> {
    log.lines()
        .find_map(|line| keel_line(line, KEEL_TSC_PREFIX).and_then(parse_mhz))
}

/// The rate Linux's clock ran at, by its own time: from 0 at the rate it
/// detected, and from each recalibration at the refined rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockRates {
    /// (from this time on, MHz), in time order; the first from 0.
    spans: Vec<(f64, f64)>,
}

impl ClockRates {
    /// One rate from the start.
    pub fn constant(mhz: f64) -> Self {
        Self {
            spans: vec![(0.0, mhz)],
        }
    }

    /// Linux's rates from the lines of `log` before line `end` (exclusive;
    /// it keeps another kernel's lines out, a DomU's relayed by `keel
    /// console`): the TSC rate it found at boot, from its `tsc: Detected <n>
    /// MHz TSC` line (printed when the TSC runs at another rate than the
    /// CPU), else its `tsc: Detected <n> MHz processor` line, and then any
    /// `tsc: Refined TSC clocksource calibration: <n> MHz`.
    pub fn from_linux_log(log: &str, end: usize) -> Option<Self> {
        let (mut processor, mut tsc) = (None, None);
        let mut refined = Vec::new();
        for line in log.lines().take(end) {
            if let Some(at) = line.find(LINUX_TSC_DETECTED) {
                let rest = &line[at + LINUX_TSC_DETECTED.len()..];
                match (parse_mhz(rest), rest.split_whitespace().nth(2)) {
                    (Some(mhz), Some("TSC")) => _ = tsc.get_or_insert(mhz),
                    (Some(mhz), Some("processor")) => _ = processor.get_or_insert(mhz),
                    _ => {}
                }
            } else if let Some(at) = line.find(LINUX_TSC_REFINED) {
                let from = kernel_time(line, LINUX_TSC_REFINED);
                if let (Some(from), Some(mhz)) = (from, parse_mhz(&line[at + LINUX_TSC_REFINED.len()..])) {
                    refined.push((from, mhz));
                }
            }
        }
        let mut spans = vec![(0.0, tsc.or(processor)?)];
        spans.extend(refined);
        Some(Self { spans })
    }

    /// The rate at `seconds`, in MHz.
    pub fn mhz_at(&self, seconds: f64) -> f64 {
        self.spans
            .iter()
            .take_while(|(from, _)| *from <= seconds)
            .last()
            .map_or(self.spans[0].1, |(_, mhz)| *mhz)
    }

    /// TSC ticks from the clock's start to `seconds` on it.
    pub fn ticks_at(&self, seconds: f64) -> f64 {
        let mut ticks = 0.0;
        for (index, (from, mhz)) in self.spans.iter().enumerate() {
            if *from >= seconds {
                break;
            }
            let until = self.spans.get(index + 1).map_or(seconds, |(next, _)| next.min(seconds));
            ticks += (until - from) * mhz * 1e6;
        }
        ticks
    }
}

/// The id Keel gave the domain named `name`: its
/// `keel: domain <id> (<name>): created` line (the first such).
pub fn domain_id(log: &str, name: &str) -> Option<u32> {
    const PREFIX: &str = "keel: domain ";
    let created = format!("({name}): created");
    log.lines().find_map(|line| {
        let (id, after) = keel_line(line, PREFIX)?.split_once(' ')?;
        if !after.starts_with(&created) {
            return None;
        }
        id.parse().ok()
    })
}

/// The exit total of domain `id`'s `keel: domain <id> exits: ...` line (Keel
/// prints it when the domain stops); `None` when there is no such line.
pub fn domain_exits(log: &str, id: u32) -> Option<Result<u64>> {
    let prefix = format!("keel: domain {id} exits: ");
    log.lines().find_map(|line| {
        let counts = keel_line(line, &prefix)?;
        Some(exit_total(counts).with_context(|| format!("unreadable `{prefix}` line")))
    })
}

/// The exit total of a `keel: domain N exits: ` line (after the prefix):
/// its `total=` field if it has one, else the sum of its `name=count` pairs.
pub fn exit_total(counts: &str) -> Result<u64> {
    let mut sum: u64 = 0;
    let mut pairs = 0;
    for field in counts.split_whitespace() {
        let Some((name, count)) = field.split_once('=') else {
            continue;
        };
        let count: u64 = count
            .trim_end_matches(',')
            .parse()
            .with_context(|| format!("count {count:?} of {name:?} is not a number"))?;
        if name == "total" {
            return Ok(count);
        }
        sum = sum.saturating_add(count);
        pairs += 1;
    }
    if pairs == 0 {
        bail!("no name=count pairs in {counts:?}");
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_time_reads_the_stamp_right_before_the_text() {
        assert_eq!(
            kernel_time("[  101.656059] dom0: userspace started", "dom0: userspace started"),
            Some(101.656059)
        );
        assert_eq!(kernel_time("[    0.000000] x", "x"), Some(0.0));
        // Output that ran into the line before the stamp does not matter.
        assert_eq!(
            kernel_time(
                "dom0# \r[   50.774387] domu: userspace started",
                "domu: userspace started"
            ),
            Some(50.774387)
        );
    }

    #[test]
    fn a_line_that_only_quotes_the_text_has_no_time() {
        let marker = "domu: userspace started";
        for line in [
            "keel: timed out after 600 s waiting for `domu: userspace started` on domu2's console",
            "domu: userspace started",
            "[ abc] domu: userspace started",
            "[] domu: userspace started",
            "[  1.5]domu: userspace started",
            "[  1.5] dom0: domu-bench create",
        ] {
            assert_eq!(kernel_time(line, marker), None, "{line}");
        }
    }

    #[test]
    fn first_kernel_line_skips_quotes_and_gives_the_index() {
        let log = "keel: waiting for `domu: userspace started`\n\
                   [    3.000000] something\n\
                   [   50.774387] domu: userspace started\n\
                   [   51.000000] domu: userspace started\n";
        assert_eq!(first_kernel_line(log, "domu: userspace started"), Some((2, 50.774387)));
        assert_eq!(first_kernel_line(log, "nothing"), None);
        assert_eq!(
            first_kernel_line_from(log, "domu: userspace started", 3),
            Some((3, 51.0))
        );
    }

    #[test]
    fn keel_reports_its_tsc_rate() {
        let log = "keel: memory: 987 MiB free\nkeel: TSC: 10.000 MHz\n";
        assert_eq!(keel_tsc_mhz(log), Some(10.0));
        assert_eq!(keel_tsc_mhz("keel: TSC: 2400.123 MHz\n"), Some(2400.123));
        assert_eq!(
            keel_tsc_mhz("keel: TSC: the PIT did not count; guests get no TSC frequency\n"),
            None
        );
        // A guest's line that looks like Keel's is marked, and ignored.
        assert_eq!(
            keel_tsc_mhz("dom0| keel: TSC: 1.000 MHz\nkeel: TSC: 10.000 MHz\n"),
            Some(10.0)
        );
    }

    #[test]
    fn linux_rates_come_from_its_own_lines_before_the_end() {
        let log = "keel: TSC: 10.000 MHz\n\
                   [    0.000000] tsc: Fast TSC calibration using PIT\n\
                   [    0.000000] tsc: Detected 9.998 MHz processor\n\
                   [   30.000000] tsc: Refined TSC clocksource calibration: 10.002 MHz\n\
                   [   60.000000] dom0: domu-bench create\n\
                   [    0.000000] tsc: Detected 10.000 MHz processor\n\
                   [    5.000000] tsc: Refined TSC clocksource calibration: 11.000 MHz\n";
        let rates = ClockRates::from_linux_log(log, 5).unwrap();
        assert_eq!(rates.spans, vec![(0.0, 9.998), (30.0, 10.002)]);
        assert_eq!(rates.mhz_at(10.0), 9.998);
        assert_eq!(rates.mhz_at(45.0), 10.002);
        // 30 s at 9.998 MHz, then 10 s at 10.002 MHz.
        let ticks = rates.ticks_at(40.0);
        assert!((ticks - (30.0 * 9.998e6 + 10.0 * 10.002e6)).abs() < 1.0, "{ticks}");
        assert!((rates.ticks_at(20.0) - 20.0 * 9.998e6).abs() < 1.0);
        // Only the first kernel's lines before the end count.
        assert_eq!(ClockRates::from_linux_log(log, 2), None);
        assert_eq!(ClockRates::from_linux_log(log, 3).unwrap(), ClockRates::constant(9.998));
    }

    #[test]
    fn the_tsc_line_wins_over_the_processor_line() {
        // Bare Bochs: the CPU model's CPUID leaves, which Linux believes.
        let log = "[    0.000000] tsc: Detected 3500.000 MHz processor\n\
                   [    0.000000] tsc: Detected 3499.912 MHz TSC\n";
        assert_eq!(
            ClockRates::from_linux_log(log, 2).unwrap(),
            ClockRates::constant(3499.912)
        );
        let log = "[    0.000000] tsc: Detected 10.000 MHz processor\n\
                   [    0.000000] tsc: Detected 10.001 MHz TSC\n\
                   [    1.000000] tsc: Detected 12.000 MHz TSC\n";
        assert_eq!(
            ClockRates::from_linux_log(log, 3).unwrap(),
            ClockRates::constant(10.001)
        );
        assert_eq!(
            ClockRates::from_linux_log("[ 0.0] tsc: Detected lots of MHz TSC\n", 1),
            None
        );
    }

    #[test]
    fn a_constant_rate_multiplies() {
        let rates = ClockRates::constant(10.0);
        assert!((rates.ticks_at(101.656059) - 1_016_560_590.0).abs() < 1.0);
        assert_eq!(rates.ticks_at(0.0), 0.0);
    }

    #[test]
    fn domain_ids_come_from_the_created_line() {
        let log = "keel: domain 3 (domu2x): created, 96 MiB\n\
                   keel: domain 4 (domu2): created, 96 MiB\n\
                   Created domain domu2 (id 4)\n\
                   keel: domain 5 (domu2): created, 96 MiB\n";
        assert_eq!(domain_id(log, "domu2"), Some(4));
        assert_eq!(domain_id(log, "domu2x"), Some(3));
        assert_eq!(domain_id(log, "domu1"), None);
        assert_eq!(domain_id("dom0| keel: domain 9 (domu1): created\n", "domu1"), None);
    }

    #[test]
    fn domain_exits_read_that_domains_line() {
        let log = "keel: domain 1 exits: io=5 total=5\n\
                   keel: domain 12 exits: cpuid=1 total=99\n\
                   keel: domain 2 exits: interrupt-window=3 io=40 total=43\n";
        assert_eq!(domain_exits(log, 2).unwrap().unwrap(), 43);
        assert_eq!(domain_exits(log, 1).unwrap().unwrap(), 5);
        assert_eq!(domain_exits(log, 12).unwrap().unwrap(), 99);
        assert!(domain_exits(log, 3).is_none());
        assert!(domain_exits("dom0| keel: domain 3 exits: io=1 total=1\n", 3).is_none());
        // Keel's line after a guest's unfinished line still counts.
        assert_eq!(
            domain_exits("domu# keel: domain 3 exits: total=8\n", 3)
                .unwrap()
                .unwrap(),
            8
        );
        assert!(domain_exits("keel: domain 3 exits: io=lots\n", 3).unwrap().is_err());
    }

    #[test]
    fn exit_total_sums_the_counters() {
        assert_eq!(
            exit_total("cpuid=120 io=40210 msr-read=300 ept-violation=12").unwrap(),
            40642
        );
    }

    #[test]
    fn an_explicit_total_wins_over_the_sum() {
        assert_eq!(exit_total("total=99 cpuid=1 io=2").unwrap(), 99);
        assert_eq!(exit_total("cpuid=1 io=2 total=7").unwrap(), 7);
    }

    #[test]
    fn words_without_a_count_are_ignored_and_bad_counts_refused() {
        assert_eq!(exit_total("cpuid=3, io=4 (since boot)").unwrap(), 7);
        assert!(exit_total("cpuid=lots").is_err());
        assert!(exit_total("none").is_err());
        assert!(exit_total("").is_err());
    }
}
