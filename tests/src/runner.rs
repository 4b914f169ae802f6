//! Running boot tests, several at a time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

use anyhow::Result;

use crate::case::TestCase;
use crate::emulator::{self, RunOutcome, Watch};
use crate::interrupt;
use crate::layout::Layout;
use crate::verdict::{judge, Failure};

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

/// Boots `iso` for `case` and judges the run.
pub fn run_case(layout: &Layout, case: &TestCase, iso: &std::path::Path) -> Result<CaseResult> {
    let running = emulator::launch(&case.machine, iso, &layout.run_dir(case.name))?;
    let outcome = running.watch(Watch {
        timeout: Some(case.timeout),
        finish: case.finish_marker(),
        forbidden: &case.forbidden,
        echo: None,
    })?;
    let failures = judge(case, &outcome);
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
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
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
            });
        }
    });
    results.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
}
