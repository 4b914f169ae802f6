//! Running boot tests, several at a time.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::case::TestCase;
use crate::console::{ConsoleScript, Pty, Relay, RelayOptions};
use crate::emulator::{self, RunOutcome, Watch, SERIAL_LOG};
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

    #[test]
    fn only_a_display_that_never_started_is_retried() {
        let rfb = "00000000000p[RFB   ] >>PANIC<< RFB could not bind any port between 5900 and 5949";
        assert!(display_start_failed(&outcome("", rfb)));
        assert!(!display_start_failed(&outcome("keel: Keel hypervisor\n", rfb)));
        assert!(!display_start_failed(&outcome("", "VMENTER FAIL")));
    }
}
