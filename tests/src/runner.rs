//! Running boot tests, several at a time.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::case::{Requirement, TestCase};
use crate::console::{ConsoleScript, Pty, Relay, RelayOptions};
use crate::emulator::{self, RunOutcome, Watch, SERIAL_LOG};
use crate::host_kvm;
use crate::interrupt;
use crate::layout::Layout;
use crate::verdict::{judge, judge_console_input, Failure};

pub struct CaseResult {
    pub outcome: RunOutcome,
    /// Empty when the test passed.
    pub failures: Vec<Failure>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// How often a run whose emulator could not start its display is retried.
const DISPLAY_START_ATTEMPTS: u32 = 4;

/// Boots `iso` for `case` and judges the run.
pub fn run_case(layout: &Layout, case: &TestCase, iso: &Path) -> Result<CaseResult> {
    let run_dir = layout.run_dir(case.name);
    let mut attempt = 1;
    loop {
        let result = if case.console_input.is_empty() {
            run_with_file_serial(case, iso, &run_dir)
        } else {
            run_with_console_input(case, iso, &run_dir)
        };
        match result {
            Ok(result) if display_start_failed(&result.outcome) && attempt < DISPLAY_START_ATTEMPTS => {
                eprintln!(
                    "xtask: {}: Bochs could not open its display (a start-up race); starting it again",
                    case.name
                );
                // Spread the restarts so the racing instances do not meet again.
                thread::sleep(Duration::from_millis(400 * u64::from(attempt)));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Bochs' VNC display (rfb) panics when two instances race for port 5900
/// at start-up (one's listen() fails and it never tries another socket).
/// Nothing ran then, so the run can simply start again.
fn display_start_failed(outcome: &RunOutcome) -> bool {
    outcome.serial_log.is_empty() && outcome.emulator_log.contains("RFB could not bind any port")
}

fn run_with_file_serial(case: &TestCase, iso: &Path, run_dir: &Path) -> Result<CaseResult> {
    let running = emulator::launch(&case.machine, iso, run_dir)?;
    let outcome = running.watch(watch_for(case, None))?;
    let failures = judge(case, &outcome);
    Ok(CaseResult { outcome, failures })
}

fn watch_for<'a>(case: &'a TestCase, stop: Option<&'a AtomicBool>) -> Watch<'a> {
    Watch {
        timeout: Some(case.timeout),
        finish: case.finish_marker(),
        forbidden: &case.forbidden,
        echo: None,
        stop,
    }
}

/// COM1 is a pseudo-terminal: a relay copies the guest's output to the
/// serial log the watch follows, and types the case's console input.
fn run_with_console_input(case: &TestCase, iso: &Path, run_dir: &Path) -> Result<CaseResult> {
    let pty = Pty::open().context("cannot create a pseudo-terminal for the serial console")?;
    let running = emulator::launch_on_terminal(&case.machine, iso, run_dir, &pty.slave_path)?;
    let log_path = run_dir.join(SERIAL_LOG);
    let log = File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let script = ConsoleScript::new(case.console_input.clone());
    let relay =
        Relay::start(&pty, log, script, RelayOptions::default()).context("cannot start the serial console relay")?;
    // The emulator is gone once the watch returns, also on errors.
    let outcome = running.watch(watch_for(case, Some(relay.failed())));
    let script = relay.stop().context("serial console relay");
    let outcome = outcome?;
    let script = script?;
    let mut failures = judge(case, &outcome);
    failures.extend(judge_console_input(case, &outcome, script.steps_typed()));
    Ok(CaseResult { outcome, failures })
}

/// What this host offers the tests' requirements ([`Requirement`]), looked
/// at once per run: for each, `None` when it is there, else why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSupport {
    pub nested_kvm: Option<String>,
}

impl HostSupport {
    /// Looks at this host: the same detection `xtask run` uses to prefer
    /// KVM ([`host_kvm::why_no_vmx_guests`]).
    pub fn probe() -> Self {
        HostSupport {
            nested_kvm: host_kvm::why_no_vmx_guests().map(String::from),
        }
    }

    /// Why `requirement` is not met here, or `None` when it is.
    pub fn unmet(&self, requirement: Requirement) -> Option<String> {
        match requirement {
            Requirement::NestedKvm => self
                .nested_kvm
                .as_ref()
                .map(|why| format!("needs QEMU with KVM that runs VMX guests (nested VMX), but {why}")),
        }
    }
}

/// Why `case` cannot run on a host with `support` (its first unmet
/// requirement), or `None` when it can.
pub fn skip_reason(case: &TestCase, support: &HostSupport) -> Option<String> {
    case.requirements
        .iter()
        .find_map(|&requirement| support.unmet(requirement))
}

/// A test not started because the host lacks what it requires.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub case: TestCase,
    pub reason: String,
}

/// Splits `cases` into those that run here and those skipped, with the
/// reason, each keeping its order.
pub fn partition_runnable(cases: Vec<TestCase>, support: &HostSupport) -> (Vec<TestCase>, Vec<Skipped>) {
    let mut runnable = Vec::new();
    let mut skipped = Vec::new();
    for case in cases {
        match skip_reason(&case, support) {
            None => runnable.push(case),
            Some(reason) => skipped.push(Skipped { case, reason }),
        }
    }
    (runnable, skipped)
}

pub struct Job {
    pub case: TestCase,
    pub iso: PathBuf,
}

pub enum Event<'a> {
    Started(&'a TestCase),
    Finished(&'a TestCase, &'a Result<CaseResult>),
}

/// Runs `jobs` on `workers` threads; `on_event` sees each start and finish
/// as it happens. Returns one entry per job, in job order: `None` for jobs
/// never started because a stop was requested (Ctrl-C).
pub fn run_parallel(
    layout: &Layout,
    jobs: &[Job],
    workers: usize,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> Vec<Option<Result<CaseResult>>> {
    let next_job = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<CaseResult>>>> = Mutex::new(jobs.iter().map(|_| None).collect());
    thread::scope(|scope| {
        for worker in 0..workers.max(1) {
            // Emulators started at the same instant race for Bochs' display
            // port (see `display_start_failed`): stagger the first starts.
            let first_start_delay = Duration::from_millis(500 * worker as u64);
            let next_job = &next_job;
            let results = &results;
            scope.spawn(move || {
                thread::sleep(first_start_delay);
                loop {
                    if interrupt::stop_requested() {
                        break;
                    }
                    let index = next_job.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(index) else {
                        break;
                    };
                    on_event(Event::Started(&job.case));
                    let result = run_case(layout, &job.case, &job.iso);
                    on_event(Event::Finished(&job.case, &result));
                    // A poisoned lock means another worker panicked; the scope
                    // re-raises that panic, so this result no longer matters.
                    if let Ok(mut results) = results.lock() {
                        results[index] = Some(result);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::RunEnding;

    fn outcome(serial_log: &str, emulator_log: &str) -> RunOutcome {
        RunOutcome {
            serial_log: serial_log.to_string(),
            emulator_log: emulator_log.to_string(),
            exit_status: Some(1),
            ending: RunEnding::EmulatorExited,
            elapsed: Duration::from_millis(300),
            line_times: Vec::new(),
            run_dir: PathBuf::from("/tmp/run"),
        }
    }

    fn case(name: &'static str) -> TestCase {
        TestCase::new(name, crate::machine::Machine::qemu_tcg(), "", Duration::from_secs(1))
    }

    const NO_KVM: &str = "no /dev/kvm this user can open read-write";

    #[test]
    fn a_test_needing_nested_kvm_is_skipped_where_there_is_none_with_the_reason() {
        let without = HostSupport {
            nested_kvm: Some(NO_KVM.to_string()),
        };
        let with = HostSupport { nested_kvm: None };
        let kvm = case("kvm-passthrough").requires_nested_kvm();
        assert_eq!(skip_reason(&kvm, &with), None);
        assert_eq!(
            skip_reason(&kvm, &without).as_deref(),
            Some(
                "needs QEMU with KVM that runs VMX guests (nested VMX), but no /dev/kvm this user can open read-write"
            )
        );
        // A test that requires nothing runs on either host.
        assert_eq!(skip_reason(&case("bochs-dom0"), &without), None);
        assert_eq!(skip_reason(&case("bochs-dom0"), &with), None);
    }

    #[test]
    fn partition_keeps_the_order_of_both_kinds() {
        let without = HostSupport {
            nested_kvm: Some(NO_KVM.to_string()),
        };
        let cases = vec![
            case("a"),
            case("kvm-1").requires_nested_kvm(),
            case("b"),
            case("kvm-2").requires_nested_kvm(),
        ];
        let (runnable, skipped) = partition_runnable(cases.clone(), &without);
        let names: Vec<&str> = runnable.iter().map(|case| case.name).collect();
        assert_eq!(names, ["a", "b"]);
        let names: Vec<&str> = skipped.iter().map(|skipped| skipped.case.name).collect();
        assert_eq!(names, ["kvm-1", "kvm-2"]);
        assert!(skipped.iter().all(|skipped| skipped.reason.ends_with(NO_KVM)));
        let (runnable, skipped) = partition_runnable(cases, &HostSupport { nested_kvm: None });
        assert_eq!(runnable.len(), 4);
        assert!(skipped.is_empty());
    }

    #[test]
    fn the_probe_agrees_with_the_detection_xtask_run_uses() {
        assert_eq!(
            HostSupport::probe().nested_kvm.is_none(),
            host_kvm::accepts_vmx_guests()
        );
    }

    #[test]
    fn only_a_display_that_never_started_is_retried() {
        let rfb = "00000000000p[RFB   ] >>PANIC<< RFB could not bind any port between 5900 and 5949";
        assert!(display_start_failed(&outcome("", rfb)));
        assert!(!display_start_failed(&outcome("keel: Keel hypervisor\n", rfb)));
        assert!(!display_start_failed(&outcome("", "VMENTER FAIL")));
    }
}
