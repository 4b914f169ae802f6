//! `bench boot`: how long Dom0's Linux takes to reach userspace under Keel
//! compared with the same kernel and initramfs on bare Bochs, and how many
//! VM exits Keel handled on the way.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use keel_boot_tests::cases::{bochs_dom0, dom0_machine};
use keel_boot_tests::emulator::{self, RunEnding, RunOutcome, Watch};
use keel_boot_tests::iso::{build_boot_iso, build_case_iso, BootEntry};
use keel_boot_tests::marker::find_forbidden;
use keel_boot_tests::report::tail_lines;
use keel_boot_tests::{Layout, Machine, Marker, Profile, TestCase};

use crate::workspace::Workspace;
use crate::{cargo, guest, prerequisites, say};

const BARE_NAME: &str = "bench-boot-bare";
const KEEL_NAME: &str = "bench-boot-keel";
/// Printed by Dom0's /init on both machines: the end of the measured span.
const USERSPACE_MARKER: &str = "dom0: userspace started";
/// The last line of /init's checks, just before it powers off.
const CHECKS_DONE_MARKER: &str = "dom0: checks done";
const EXITS_PREFIX: &str = "keel: domain 0 exits: ";

/// A bench run fails on these; /init's own verdicts (dmesg, clock) are the
/// boot test's business, not the benchmark's.
const FAILURE_MARKERS: [&str; 4] = ["KEEL PANIC", "VM entry failed", "keel: CPU exception", "Kernel panic"];

pub fn run(workspace: &Workspace) -> Result<()> {
    prerequisites::ensure(&[prerequisites::ISO_TOOLS, prerequisites::BOCHS])?;
    let layout = &workspace.layout;
    guest::ensure_dom0_images(workspace)?;
    let keel_case = TestCase {
        name: KEEL_NAME,
        ..bochs_dom0()
    };
    let Some(dom0) = &keel_case.dom0 else {
        bail!("the bochs-dom0 test case carries no Dom0 modules");
    };

    say!("building ISO {BARE_NAME} (Linux alone, through GRUB's linux/initrd)");
    let bare_iso = build_boot_iso(
        layout,
        BARE_NAME,
        &BootEntry::Linux {
            kernel: &layout.dom0_kernel(),
            initrd: &layout.dom0_initrd(),
            cmdline: &dom0.linux_cmdline,
        },
    )?;
    let elf = cargo::build_hypervisor(workspace, Profile::Release)?;
    say!("building ISO {KEEL_NAME} (cmdline {:?})", keel_case.cmdline);
    let keel_iso = build_case_iso(layout, &elf, &keel_case)?;

    // One after the other: a second emulator on the other core would be
    // fine, but anything else running (a build) would skew one of the two.
    let machine = dom0_machine();
    let bare = boot(layout, &machine, &bare_iso, BARE_NAME, keel_case.timeout, None)?;
    let bare_time = time_to_userspace(&bare, BARE_NAME)?;
    say!("bare Bochs: userspace after {:.2} s", bare_time.as_secs_f64());
    let keel = boot(
        layout,
        &keel_case.machine,
        &keel_iso,
        KEEL_NAME,
        keel_case.timeout,
        keel_case.finish_marker(),
    )?;
    let keel_time = time_to_userspace(&keel, KEEL_NAME)?;
    say!("Keel: userspace after {:.2} s", keel_time.as_secs_f64());
    let exits_line = keel
        .serial_log
        .lines()
        .find_map(|line| line.find(EXITS_PREFIX).map(|start| &line[start + EXITS_PREFIX.len()..]));
    let exits = match exits_line.map(exit_total) {
        Some(Ok(total)) => total,
        Some(Err(error)) => {
            let problem = format!("unreadable `{EXITS_PREFIX}` line: {error:#}");
            return Err(failure(&keel, KEEL_NAME, &problem));
        }
        None => {
            let problem = format!("no `{EXITS_PREFIX}` line");
            return Err(failure(&keel, KEEL_NAME, &problem));
        }
    };
    println!("{}", result_line(bare_time, keel_time, exits));
    Ok(())
}

/// Boots `iso` until the emulator exits (bare Bochs on ACPI power-off, Keel
/// with `exit=emulator`) or `finish` appears.
fn boot(
    layout: &Layout,
    machine: &Machine,
    iso: &Path,
    name: &str,
    timeout: Duration,
    finish: Option<&Marker>,
) -> Result<RunOutcome> {
    say!("booting {name} in {machine} (timeout {} s)", timeout.as_secs());
    let forbidden = FAILURE_MARKERS.map(Marker::text);
    let running = emulator::launch(machine, iso, &layout.run_dir(name))?;
    let outcome = running.watch(Watch {
        timeout: Some(timeout),
        finish,
        forbidden: &forbidden,
        echo: None,
        stop: None,
    })?;
    let problem = match outcome.ending {
        RunEnding::Interrupted => bail!("interrupted"),
        RunEnding::TimedOut => Some("timed out".to_string()),
        _ => {
            find_forbidden(&outcome.serial_log, &forbidden).map(|hit| format!("line {}: {}", hit.line_number, hit.line))
        }
    };
    let problem = problem.or_else(|| {
        (!Marker::text(CHECKS_DONE_MARKER).appears_in(&outcome.serial_log))
            .then(|| format!("no {CHECKS_DONE_MARKER:?} line"))
    });
    match problem {
        Some(problem) => Err(failure(&outcome, name, &problem)),
        None => Ok(outcome),
    }
}

fn time_to_userspace(outcome: &RunOutcome, name: &str) -> Result<Duration> {
    outcome
        .time_of_first(&Marker::text(USERSPACE_MARKER))
        .ok_or_else(|| failure(outcome, name, &format!("no {USERSPACE_MARKER:?} line")))
}

/// An error naming the run's problem, after the end of its serial log.
fn failure(outcome: &RunOutcome, name: &str, problem: &str) -> anyhow::Error {
    for line in tail_lines(&outcome.serial_log, 40) {
        eprintln!("  | {line}");
    }
    anyhow::anyhow!("{name}: {problem} (files in {})", outcome.run_dir.display())
}

/// The exit total of a `keel: domain 0 exits: ` line (after the prefix):
/// its `total=` field if it has one, else the sum of its `name=count` pairs.
fn exit_total(counts: &str) -> Result<u64> {
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

fn result_line(bare: Duration, keel: Duration, exits: u64) -> String {
    let (bare, keel) = (bare.as_secs_f64(), keel.as_secs_f64());
    format!(
        "linux-boot bare={bare:.2} keel={keel:.2} ratio={:.2} exits={exits}",
        keel / bare
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn result_line_has_two_decimals_and_the_ratio() {
        assert_eq!(
            result_line(Duration::from_millis(12_340), Duration::from_millis(18_510), 123_456),
            "linux-boot bare=12.34 keel=18.51 ratio=1.50 exits=123456"
        );
    }
}
