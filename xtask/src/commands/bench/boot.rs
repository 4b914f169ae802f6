//! `bench boot`: how long Dom0's Linux takes to reach userspace under Keel
//! compared with the same kernel and initramfs on bare Bochs, how long a
//! DomU takes from `keel create` to its userspace, and how many VM exits
//! Keel handled on the way. Every figure comes in wall seconds and in
//! emulated instructions (TSC ticks, see `serial`); `docs/testing.md` says
//! exactly what each measures.
//!
//! Three boots, one after the other (a second emulator on the other core
//! would be fine, but anything else running, a build, would skew one of
//! them): Dom0 under Keel with `keel.test=1` (its /init checks and powers
//! off), the same kernel, initramfs and command line on bare Bochs (plus the
//! TSC rate Keel measured: [`bare_linux_cmdline`]), then Dom0 with
//! `keel.test=domu-bench`, whose /init (`xtask/guest/init.sh`) creates
//! `domu2` from `/etc/keel/domu-poweroff.toml`, waits with `keel console
//! --until` for its userspace marker, waits for it to power off (Keel
//! prints its exits then) and powers off. Each boot has a time-out, and the
//! emulator is stopped however it ends.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use keel_boot_tests::cases::{bochs_dom0, dom0_machine, DOMU_USERSPACE_MARKER};
use keel_boot_tests::dom0::{Dom0Modules, LINUX_CMDLINE};
use keel_boot_tests::emulator::{self, RunEnding, RunOutcome, Watch};
use keel_boot_tests::iso::{build_boot_iso, build_case_iso, BootEntry};
use keel_boot_tests::marker::find_forbidden;
use keel_boot_tests::report::tail_lines;
use keel_boot_tests::{Layout, Machine, Marker, Profile, TestCase};

use super::serial::{self, ClockRates};
use crate::cli::BootPart;
use crate::workspace::Workspace;
use crate::{cargo, guest, prerequisites, say};

const BARE_NAME: &str = "bench-boot-bare";
const KEEL_NAME: &str = "bench-boot-keel";
const DOMU_RUN_NAME: &str = "bench-boot-domu";
/// Printed by Dom0's /init on both machines: the end of the measured span.
const USERSPACE_MARKER: &str = "dom0: userspace started";
/// The last line of /init's checks, just before it powers off.
const CHECKS_DONE_MARKER: &str = "dom0: checks done";

/// Makes Dom0's /init run the DomU boot measurement.
pub const DOMU_BENCH_FLAG: &str = "keel.test=domu-bench";
/// The domain `/etc/keel/domu-poweroff.toml` creates.
const DOMU_NAME: &str = "domu2";
/// What /init says (through the kernel log, so with Dom0's timestamp) in
/// `keel.test=domu-bench`: just before `keel create`...
const DOMU_CREATE_MARKER: &str = "dom0: domu-bench create";
/// ...once `keel console --until` has seen DomU's marker...
const DOMU_SEEN_MARKER: &str = "dom0: domu-bench marker seen";
/// ...when something went wrong (the rest of the line says what)...
const DOMU_FAILED_MARKER: &str = "dom0: domu-bench failed";
/// ...and last, before powering off.
const DOMU_DONE_MARKER: &str = "dom0: domu-bench done";
/// Dom0's boot, then a second Linux boot sharing the emulated CPU.
const DOMU_TIMEOUT: Duration = Duration::from_secs(900);

/// A bench run fails on these; /init's own verdicts (dmesg, clock) are the
/// boot test's business, not the benchmark's.
const FAILURE_MARKERS: [&str; 4] = ["KEEL PANIC", "VM entry failed", "keel: CPU exception", "Kernel panic"];

/// Dom0's Linux command line for the DomU boot measurement.
fn domu_bench_linux_cmdline() -> String {
    format!("{LINUX_CMDLINE} {DOMU_BENCH_FLAG}")
}

pub fn run(workspace: &Workspace, only: Option<BootPart>) -> Result<()> {
    prerequisites::ensure(&[prerequisites::ISO_TOOLS, prerequisites::BOCHS])?;
    let layout = &workspace.layout;
    guest::ensure_dom0_images(workspace)?;
    let elf = cargo::build_hypervisor(workspace, Profile::Release)?;
    let linux = only != Some(BootPart::Domu);
    let domu = only != Some(BootPart::Linux);

    // The ISOs first, so that the boots run back to back (all but bare
    // Linux's, which needs the TSC rate Keel measures).
    let keel_case = TestCase {
        name: KEEL_NAME,
        ..bochs_dom0()
    };
    let keel_iso = if linux {
        say!("building ISO {KEEL_NAME} (cmdline {:?})", keel_case.cmdline);
        Some(build_case_iso(layout, &elf, &keel_case)?)
    } else {
        None
    };
    let domu_case = TestCase {
        name: DOMU_RUN_NAME,
        timeout: DOMU_TIMEOUT,
        ..bochs_dom0()
    }
    .with_dom0(Dom0Modules::with_linux_cmdline(&domu_bench_linux_cmdline()));
    let domu_iso = if domu {
        say!("building ISO {DOMU_RUN_NAME} (Dom0 with {DOMU_BENCH_FLAG})");
        Some(build_case_iso(layout, &elf, &domu_case)?)
    } else {
        None
    };

    if let Some(keel_iso) = keel_iso {
        let Some(dom0) = &keel_case.dom0 else {
            bail!("the bochs-dom0 test case carries no Dom0 modules");
        };
        let keel_run = Run {
            name: KEEL_NAME,
            machine: keel_case.machine.clone(),
            timeout: keel_case.timeout,
            finish: keel_case.finish_marker(),
            done: CHECKS_DONE_MARKER,
            failures: &[],
        };
        let keel = keel_run.boot(layout, &keel_iso)?;
        let keel_figures =
            linux_figures(&keel.serial_log, &keel.line_times).map_err(|e| failure(&keel, KEEL_NAME, &e))?;
        say!("Keel: userspace after {}", keel_figures.describe());
        let exits = match serial::domain_exits(&keel.serial_log, 0) {
            Some(Ok(total)) => total,
            Some(Err(error)) => return Err(failure(&keel, KEEL_NAME, &format!("{error:#}"))),
            None => return Err(failure(&keel, KEEL_NAME, "no `keel: domain 0 exits: ` line")),
        };
        let Some(tsc_mhz) = serial::keel_tsc_mhz(&keel.serial_log) else {
            return Err(failure(&keel, KEEL_NAME, "no `keel: TSC: <n> MHz` line"));
        };

        let cmdline = bare_linux_cmdline(&dom0.linux_cmdline, tsc_mhz);
        say!("building ISO {BARE_NAME} (Linux alone, through GRUB's linux/initrd: {cmdline})");
        let bare_iso = build_boot_iso(
            layout,
            BARE_NAME,
            &BootEntry::Linux {
                kernel: &layout.dom0_kernel(),
                initrd: &layout.dom0_initrd(),
                cmdline: &cmdline,
            },
        )?;
        let bare_run = Run {
            name: BARE_NAME,
            machine: dom0_machine(),
            timeout: keel_case.timeout,
            finish: None,
            done: CHECKS_DONE_MARKER,
            failures: &[],
        };
        let bare = bare_run.boot(layout, &bare_iso)?;
        let bare_figures =
            linux_figures(&bare.serial_log, &bare.line_times).map_err(|e| failure(&bare, BARE_NAME, &e))?;
        say!("bare Bochs: userspace after {}", bare_figures.describe());
        println!("{}", linux_result_line(&bare_figures, &keel_figures, exits));
    }

    if let Some(domu_iso) = domu_iso {
        let domu_run = Run {
            name: DOMU_RUN_NAME,
            machine: domu_case.machine.clone(),
            timeout: domu_case.timeout,
            finish: domu_case.finish_marker(),
            done: DOMU_DONE_MARKER,
            failures: &[DOMU_FAILED_MARKER],
        };
        let outcome = domu_run.boot(layout, &domu_iso)?;
        let figures =
            domu_figures(&outcome.serial_log, &outcome.line_times).map_err(|e| failure(&outcome, DOMU_RUN_NAME, &e))?;
        println!("{}", domu_result_line(&figures));
    }
    Ok(())
}

/// Bare Linux's command line: Dom0's, and the TSC rate. Under Keel, Linux
/// learns the rate Keel measured through CPUID; on bare Bochs it would
/// believe the CPU model's CPUID leaves (3.5 GHz for corei7_skylake_x)
/// while the TSC counts 10 M per emulated second, so every sleep and
/// time-out of its boot would last 350 times longer on the instruction
/// clock (Bochs skips through the halted time, so wall time hardly shows
/// it). `tsc_early_khz` gives it the rate Keel measured instead; Linux
/// still checks it against its timers (`tsc: Refined ...`).
fn bare_linux_cmdline(linux_cmdline: &str, tsc_mhz: f64) -> String {
    format!("{linux_cmdline} tsc_early_khz={}", (tsc_mhz * 1000.0).round() as u64)
}

/// One measured boot (`bench io` boots through it too).
pub(super) struct Run<'a> {
    pub name: &'static str,
    pub machine: Machine,
    pub timeout: Duration,
    /// Stop as soon as this appears (else when the emulator exits).
    pub finish: Option<&'a Marker>,
    /// The run counts only if this appeared: the guest got to its end.
    pub done: &'a str,
    /// Fail the run, besides `FAILURE_MARKERS`.
    pub failures: &'a [&'a str],
}

impl Run<'_> {
    /// Boots `iso` until the emulator exits (bare Bochs on ACPI power-off,
    /// Keel with `exit=emulator`), `finish` appears, a failure marker
    /// appears, or the time-out; the emulator is stopped in every case.
    pub fn boot(&self, layout: &Layout, iso: &Path) -> Result<RunOutcome> {
        let name = self.name;
        say!(
            "booting {name} in {} (timeout {} s)",
            self.machine,
            self.timeout.as_secs()
        );
        let forbidden: Vec<Marker> = FAILURE_MARKERS
            .iter()
            .chain(self.failures)
            .map(|text| Marker::text(*text))
            .collect();
        let running = emulator::launch(&self.machine, iso, &layout.run_dir(name))?;
        let outcome = running.watch(Watch {
            timeout: Some(self.timeout),
            finish: self.finish,
            forbidden: &forbidden,
            echo: None,
            stop: None,
        })?;
        let problem = match outcome.ending {
            RunEnding::Interrupted => bail!("interrupted"),
            RunEnding::TimedOut => Some(format!("timed out after {} s", self.timeout.as_secs())),
            _ => find_forbidden(&outcome.serial_log, &forbidden)
                .map(|hit| format!("line {}: {}", hit.line_number, hit.line)),
        };
        let problem = problem.or_else(|| {
            (!Marker::text(self.done).appears_in(&outcome.serial_log)).then(|| format!("no {:?} line", self.done))
        });
        match problem {
            Some(problem) => Err(failure(&outcome, name, &problem)),
            None => Ok(outcome),
        }
    }
}

/// An error naming the run's problem, after the end of its serial log.
pub(super) fn failure(outcome: &RunOutcome, name: &str, problem: &str) -> anyhow::Error {
    for line in tail_lines(&outcome.serial_log, 40) {
        eprintln!("  | {line}");
    }
    anyhow::anyhow!("{name}: {problem} (files in {})", outcome.run_dir.display())
}

/// When line `index` of the serial log was complete, after the emulator
/// started.
fn line_time(line_times: &[Duration], index: usize) -> Result<Duration, String> {
    line_times
        .get(index)
        .copied()
        .ok_or_else(|| format!("no arrival time for serial line {}", index + 1))
}

/// The rate that turns the timestamps of the kernel whose lines come before
/// line `end` back into TSC ticks: its own (`tsc: Detected ...`), else
/// Keel's measurement.
fn clock_rates(log: &str, end: usize) -> Result<ClockRates, String> {
    let linux = ClockRates::from_linux_log(log, end);
    if let (Some(linux), Some(keel)) = (&linux, serial::keel_tsc_mhz(log)) {
        let mhz = linux.mhz_at(0.0);
        if (mhz - keel).abs() > keel * 0.001 {
            say!("note: Linux runs its clock at {mhz:.3} MHz, Keel measured the TSC at {keel:.3} MHz");
        }
    }
    linux
        .or_else(|| serial::keel_tsc_mhz(log).map(ClockRates::constant))
        .ok_or_else(|| "no TSC rate: neither Linux's `tsc: Detected` line nor Keel's `keel: TSC:` line".to_string())
}

/// Dom0's (or bare Linux's) boot to userspace.
#[derive(Debug, Clone, PartialEq)]
struct LinuxBoot {
    /// From the emulator's start to the serial line with the marker.
    wall: Duration,
    /// TSC ticks from Linux's clock start to the marker.
    ticks: f64,
}

impl LinuxBoot {
    fn describe(&self) -> String {
        format!(
            "{:.2} s, {:.1} M instructions",
            self.wall.as_secs_f64(),
            self.ticks / 1e6
        )
    }
}

fn linux_figures(log: &str, line_times: &[Duration]) -> Result<LinuxBoot, String> {
    let (index, seconds) = serial::first_kernel_line(log, USERSPACE_MARKER)
        .ok_or_else(|| format!("no {USERSPACE_MARKER:?} kernel-log line"))?;
    let rates = clock_rates(log, index)?;
    Ok(LinuxBoot {
        wall: line_time(line_times, index)?,
        ticks: rates.ticks_at(seconds),
    })
}

fn linux_result_line(bare: &LinuxBoot, keel: &LinuxBoot, exits: u64) -> String {
    let (bare_s, keel_s) = (bare.wall.as_secs_f64(), keel.wall.as_secs_f64());
    format!(
        "linux-boot bare={bare_s:.2} keel={keel_s:.2} ratio={:.2} exits={exits} \
         bare-instructions={:.1} keel-instructions={:.1} instructions-ratio={:.2}",
        keel_s / bare_s,
        bare.ticks / 1e6,
        keel.ticks / 1e6,
        keel.ticks / bare.ticks
    )
}

/// A DomU's boot, from `keel create` to its userspace.
#[derive(Debug, Clone, PartialEq)]
struct DomuBoot {
    /// From the serial line Dom0 says before `keel create` to the one with
    /// DomU's marker (relayed by `keel console`).
    wall: Duration,
    /// DomU's own printk timestamp of its marker.
    guest_seconds: f64,
    /// TSC ticks between Dom0's timestamps before `keel create` and after
    /// `keel console` saw the marker.
    ticks: f64,
    /// Keel's exit count for the DomU, printed when it powered off.
    exits: u64,
}

fn domu_figures(log: &str, line_times: &[Duration]) -> Result<DomuBoot, String> {
    let (create_index, create_seconds) = serial::first_kernel_line(log, DOMU_CREATE_MARKER)
        .ok_or_else(|| format!("no {DOMU_CREATE_MARKER:?} line from Dom0"))?;
    let (marker_index, guest_seconds) = serial::first_kernel_line_from(log, DOMU_USERSPACE_MARKER, create_index)
        .ok_or_else(|| {
            format!("no kernel-log line {DOMU_USERSPACE_MARKER:?} from the DomU after {DOMU_CREATE_MARKER:?}")
        })?;
    let (_, seen_seconds) = serial::first_kernel_line_from(log, DOMU_SEEN_MARKER, marker_index)
        .ok_or_else(|| format!("no {DOMU_SEEN_MARKER:?} line from Dom0 after the DomU's marker"))?;
    if seen_seconds < create_seconds {
        return Err(format!(
            "Dom0's clock went back: {DOMU_CREATE_MARKER:?} at {create_seconds} s, {DOMU_SEEN_MARKER:?} at {seen_seconds} s"
        ));
    }
    // Dom0's lines only: the DomU's kernel reports its own rate later.
    let rates = clock_rates(log, create_index)?;
    let id = serial::domain_id(log, DOMU_NAME)
        .ok_or_else(|| format!("no `keel: domain <id> ({DOMU_NAME}): created` line"))?;
    let exits = match serial::domain_exits(log, id) {
        Some(Ok(exits)) => exits,
        Some(Err(error)) => return Err(format!("{error:#}")),
        None => return Err(format!("no `keel: domain {id} exits: ` line: {DOMU_NAME} did not stop")),
    };
    Ok(DomuBoot {
        wall: line_time(line_times, marker_index)?.saturating_sub(line_time(line_times, create_index)?),
        guest_seconds,
        ticks: rates.ticks_at(seen_seconds) - rates.ticks_at(create_seconds),
        exits,
    })
}

fn domu_result_line(domu: &DomuBoot) -> String {
    format!(
        "domu-boot keel={:.2} guest-seconds={:.2} instructions={:.1} exits={}",
        domu.wall.as_secs_f64(),
        domu.guest_seconds,
        domu.ticks / 1e6,
        domu.exits
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dom0's /init.
    const INIT_SCRIPT: &str = include_str!("../../../guest/init.sh");
    const DOMU_POWEROFF_CONFIG: &str = include_str!("../../../guest/domu-poweroff.toml");

    /// Arrival times: line i arrived at i seconds.
    fn times(log: &str) -> Vec<Duration> {
        (0..log.lines().count() as u64).map(Duration::from_secs).collect()
    }

    const KEEL_LOG: &str = "\
keel: Keel hypervisor 0.1.0 starting
keel: TSC: 10.000 MHz
[    0.000000] tsc: Detected 10.000 MHz processor
[   55.759351] Run /init as init process
[   56.944849] dom0: userspace started
[   60.288842] dom0: checks done
keel: domain 0 exits: io=36742 total=85187
";

    #[test]
    fn linux_boot_figures_come_from_the_marker_line() {
        let figures = linux_figures(KEEL_LOG, &times(KEEL_LOG)).unwrap();
        assert_eq!(figures.wall, Duration::from_secs(4));
        assert!((figures.ticks - 569_448_490.0).abs() < 1.0, "{}", figures.ticks);
    }

    #[test]
    fn bare_linux_uses_its_own_rate() {
        let log = "\
[    0.000000] tsc: Fast TSC calibration using PIT
[    0.000000] tsc: Detected 9.990 MHz processor
[    1.000000] tsc: Refined TSC clocksource calibration: 10.010 MHz
[   10.000000] dom0: userspace started
";
        let figures = linux_figures(log, &times(log)).unwrap();
        assert!(
            (figures.ticks - (9.99e6 + 9.0 * 10.01e6)).abs() < 1.0,
            "{}",
            figures.ticks
        );
        assert_eq!(figures.wall, Duration::from_secs(3));
    }

    #[test]
    fn linux_boot_without_marker_or_rate_is_an_error() {
        assert!(linux_figures("[    1.0] dom0: checks done\n", &[Duration::ZERO])
            .unwrap_err()
            .contains("dom0: userspace started"));
        let no_rate = "[   56.944849] dom0: userspace started\n";
        assert!(linux_figures(no_rate, &times(no_rate))
            .unwrap_err()
            .contains("no TSC rate"));
        // Keel's rate stands in for a kernel that reports none.
        let keel_only = "keel: TSC: 10.000 MHz\n[   10.000000] dom0: userspace started\n";
        assert_eq!(
            linux_figures(keel_only, &times(keel_only)).unwrap().ticks,
            100_000_000.0
        );
    }

    #[test]
    fn linux_result_line_has_seconds_instructions_and_ratios() {
        let bare = LinuxBoot {
            wall: Duration::from_millis(12_340),
            ticks: 500_000_000.0,
        };
        let keel = LinuxBoot {
            wall: Duration::from_millis(18_510),
            ticks: 569_448_490.0,
        };
        assert_eq!(
            linux_result_line(&bare, &keel, 123_456),
            "linux-boot bare=12.34 keel=18.51 ratio=1.50 exits=123456 \
             bare-instructions=500.0 keel-instructions=569.4 instructions-ratio=1.14"
        );
    }

    /// The shape of a `keel.test=domu-bench` run's log.
    const DOMU_LOG: &str = "\
keel: TSC: 10.000 MHz
[    0.000000] tsc: Detected 10.000 MHz processor
[   56.944849] dom0: userspace started
[   57.000000] dom0: domu-bench create
keel: domain 1 (domu2): created, 96 MiB
keel: domain 1: booted
Created domain domu2 (id 1)
keel: connected to domu2 (id 1)'s console (Ctrl-] to detach)
[    0.000000] tsc: Detected 12.000 MHz processor
[   50.774387] domu: userspace started
[  128.500000] dom0: domu-bench marker seen
[   50.900000] domu: kernel 6.1.0-57-cloud-amd64
keel: domain 1 stopped: powered off
keel: domain 1 exits: io=36269 hlt=2 total=74702
keel: domain 1 time: guest 80% hypervisor 19% (720 M TSC cycles)
keel: domain 1 (domu2): poweroff: destroy
[  130.000000] dom0: domu-bench done
keel: domain 0 exits: io=1 total=234278
";

    #[test]
    fn domu_boot_figures() {
        let figures = domu_figures(DOMU_LOG, &times(DOMU_LOG)).unwrap();
        assert_eq!(
            figures,
            DomuBoot {
                // Line 3 (create) to line 9 (DomU's marker).
                wall: Duration::from_secs(6),
                guest_seconds: 50.774387,
                // (128.5 - 57.0) s of Dom0's clock at Dom0's 10 MHz: not the DomU's rate.
                ticks: 715_000_000.0,
                exits: 74_702,
            }
        );
        assert_eq!(
            domu_result_line(&figures),
            "domu-boot keel=6.00 guest-seconds=50.77 instructions=715.0 exits=74702"
        );
    }

    #[test]
    fn domu_boot_needs_every_line_in_order() {
        let without = |text: &str| -> String {
            DOMU_LOG
                .lines()
                .filter(|line| !line.contains(text))
                .map(|line| format!("{line}\n"))
                .collect()
        };
        for (missing, complaint) in [
            ("dom0: domu-bench create", "dom0: domu-bench create"),
            ("domu: userspace started", "from the DomU"),
            ("marker seen", "marker seen"),
            ("(domu2): created", "created"),
            ("domain 1 exits", "did not stop"),
        ] {
            let log = without(missing);
            let error = domu_figures(&log, &times(&log)).unwrap_err();
            assert!(error.contains(complaint), "{missing}: {error}");
        }
        // Dom0 quoting the marker (keel console's time-out message) is not DomU's line.
        let quoted = DOMU_LOG.replace(
            "[   50.774387] domu: userspace started",
            "keel: timed out after 600 s waiting for `domu: userspace started` on domu2's console",
        );
        assert!(domu_figures(&quoted, &times(&quoted)).is_err());
        // A DomU marker before Dom0 created anything does not count.
        let early = format!("[    1.000000] domu: userspace started\n{DOMU_LOG}");
        let figures = domu_figures(&early, &times(&early)).unwrap();
        assert_eq!(figures.guest_seconds, 50.774387);
        // Dom0 saying it saw the marker before the DomU's line: not taken.
        let seen_early = DOMU_LOG.replace(
            "[   57.000000] dom0: domu-bench create\n",
            "[   57.000000] dom0: domu-bench create\n[   57.100000] dom0: domu-bench marker seen\n",
        );
        let figures = domu_figures(&seen_early, &times(&seen_early)).unwrap();
        assert_eq!(figures.ticks, 715_000_000.0);
    }

    #[test]
    fn init_runs_the_domu_bench_before_the_domu_checks() {
        let branch = format!("if grep -qwF '{DOMU_BENCH_FLAG}' /proc/cmdline; then");
        let bench = INIT_SCRIPT.find(&branch).expect("a keel.test=domu-bench branch");
        // grep -w takes "-" for a word boundary: keel.test=domu matches this
        // flag too, so the bench branch must come (and power off) first.
        let domu = INIT_SCRIPT.find("if grep -qwF 'keel.test=domu' /proc/cmdline").unwrap();
        assert!(bench < domu);
        let body = &INIT_SCRIPT[bench..domu];
        for needed in [
            format!("say \"{DOMU_CREATE_MARKER}\""),
            "keel create /etc/keel/domu-poweroff.toml".to_string(),
            format!("keel console {DOMU_NAME} --until '{DOMU_USERSPACE_MARKER}' --timeout 600"),
            format!("say \"{DOMU_SEEN_MARKER}\""),
            format!("say \"{DOMU_FAILED_MARKER}: "),
            format!("say \"{DOMU_DONE_MARKER}\""),
            "poweroff -f".to_string(),
        ] {
            assert!(body.contains(&needed), "{needed}");
        }
        // In this order.
        let create = body.find(DOMU_CREATE_MARKER).unwrap();
        let seen = body.find(DOMU_SEEN_MARKER).unwrap();
        let done = body.find(DOMU_DONE_MARKER).unwrap();
        assert!(create < seen && seen < done);
        // Dom0 never says DomU's marker itself (only as `--until`'s argument).
        assert_eq!(body.matches(DOMU_USERSPACE_MARKER).count(), 1);
    }

    #[test]
    fn the_benchmarked_domu_powers_off_and_is_destroyed() {
        assert!(DOMU_POWEROFF_CONFIG.contains(&format!("name = \"{DOMU_NAME}\"")));
        assert!(DOMU_POWEROFF_CONFIG.contains("keel.domu=poweroff"));
        assert!(DOMU_POWEROFF_CONFIG.contains("on_poweroff = \"destroy\""));
    }

    #[test]
    fn bare_linux_gets_the_tsc_rate_keel_measured() {
        assert_eq!(
            bare_linux_cmdline("console=ttyS0 cryptomgr.notests keel.test=1", 10.001),
            "console=ttyS0 cryptomgr.notests keel.test=1 tsc_early_khz=10001"
        );
        assert!(bare_linux_cmdline("x", 9.9996).ends_with(" tsc_early_khz=10000"));
    }

    #[test]
    fn the_domu_bench_cmdline_adds_the_flag() {
        assert_eq!(
            domu_bench_linux_cmdline(),
            "console=ttyS0 cryptomgr.notests keel.test=domu-bench"
        );
    }
}
