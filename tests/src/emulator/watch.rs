//! Supervising a run: poll the serial log until the run is decided, then
//! make sure the emulator is gone.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::follow::LogFollower;
use super::RunningEmulator;
use crate::interrupt;
use crate::marker::{find_forbidden, Marker};

const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long to keep reading after a forbidden marker: a panic message's
/// details follow its first line.
const FORBIDDEN_GRACE: Duration = Duration::from_secs(2);

/// What ends a run early.
pub struct Watch<'a> {
    /// `None` waits until the emulator exits or Ctrl-C.
    pub timeout: Option<Duration>,
    pub finish: Option<&'a Marker>,
    pub forbidden: &'a [Marker],
    /// Receives serial output as it arrives.
    pub echo: Option<&'a mut dyn Write>,
    /// A stop request for this run alone, besides the process-wide one
    /// (`interrupt`): set when the run's console relay fails. Ends the run
    /// as `Interrupted`; the relay reports the error.
    pub stop: Option<&'a AtomicBool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnding {
    FinishMarker,
    ForbiddenMarker,
    EmulatorExited,
    TimedOut,
    /// Ctrl-C (see `interrupt`).
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub serial_log: String,
    pub emulator_log: String,
    /// `None` when the harness killed the emulator.
    pub exit_status: Option<i32>,
    pub ending: RunEnding,
    pub elapsed: Duration,
    /// For each line of `serial_log`, how long after the start of the watch
    /// (just after the emulator started) it was complete, to the poll interval.
    pub line_times: Vec<Duration>,
    pub run_dir: PathBuf,
}

impl RunOutcome {
    /// When the first line matching `marker` had appeared.
    pub fn time_of_first(&self, marker: &Marker) -> Option<Duration> {
        let index = self.serial_log.lines().position(|line| marker.matches_line(line))?;
        self.line_times.get(index).copied()
    }
}

/// Records when each serial line is complete.
#[derive(Default)]
struct LineClock {
    times: Vec<Duration>,
    /// Whether bytes of a line without its newline have been seen.
    partial_line: bool,
}

impl LineClock {
    fn record(&mut self, new_output: &[u8], now: Duration) {
        for byte in new_output {
            if *byte == b'\n' {
                self.times.push(now);
                self.partial_line = false;
            } else {
                self.partial_line = true;
            }
        }
    }

    /// The times, the unterminated last line (if any) counted as complete now.
    fn finish(mut self, now: Duration) -> Vec<Duration> {
        if self.partial_line {
            self.times.push(now);
        }
        self.times
    }
}

impl RunningEmulator {
    /// Polls until the run is decided, then kills the emulator if it still
    /// runs (also on errors: the process is killed when `self` drops).
    pub fn watch(mut self, mut watch: Watch<'_>) -> Result<RunOutcome> {
        let started = Instant::now();
        let mut serial = LogFollower::new(self.serial_log.clone());
        let mut forbidden_seen_at: Option<Instant> = None;
        let mut line_clock = LineClock::default();
        let ending = loop {
            let exited = self.process.poll_exit()?.is_some();
            // Read after checking for exit so the last output is not lost.
            let new_output = serial
                .read_new()
                .with_context(|| format!("cannot read {}", self.serial_log.display()))?;
            line_clock.record(new_output, started.elapsed());
            if let Some(echo) = watch.echo.as_mut() {
                echo.write_all(new_output)?;
                echo.flush()?;
            }
            let log = serial.text();
            if forbidden_seen_at.is_none() && find_forbidden(&log, watch.forbidden).is_some() {
                forbidden_seen_at = Some(Instant::now());
            }

            if watch.finish.is_some_and(|marker| marker.appears_in(&log)) {
                break RunEnding::FinishMarker;
            }
            if exited {
                break RunEnding::EmulatorExited;
            }
            if forbidden_seen_at.is_some_and(|seen| seen.elapsed() >= FORBIDDEN_GRACE) {
                break RunEnding::ForbiddenMarker;
            }
            if watch.timeout.is_some_and(|timeout| started.elapsed() >= timeout) {
                break RunEnding::TimedOut;
            }
            if interrupt::stop_requested() || watch.stop.is_some_and(|stop| stop.load(Ordering::SeqCst)) {
                break RunEnding::Interrupted;
            }
            thread::sleep(POLL_INTERVAL);
        };

        let exit_status = self.process.poll_exit()?.and_then(|status| status.code());
        self.process.kill();
        let elapsed = started.elapsed();
        Ok(RunOutcome {
            serial_log: serial.text(),
            emulator_log: self.read_emulator_log(),
            exit_status,
            ending,
            elapsed,
            line_times: line_clock.finish(elapsed),
            run_dir: self.run_dir.clone(),
        })
    }

    /// The emulator's log, or its console output when it never got as far
    /// as opening the log (e.g. a rejected config).
    fn read_emulator_log(&self) -> String {
        let log = read_lossy(&self.emulator_log);
        if log.trim().is_empty() {
            read_lossy(&self.console)
        } else {
            log
        }
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A stand-in emulator: a shell script that writes the "serial log".
    fn fake_emulator(name: &str, script: &str) -> RunningEmulator {
        let run_dir = std::env::temp_dir().join(format!("keel-watch-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&run_dir);
        fs::create_dir_all(&run_dir).unwrap();
        let serial_log = run_dir.join("serial.log");
        let mut command = Command::new("sh");
        command.arg("-c").arg(script).current_dir(&run_dir);
        let console = run_dir.join("console");
        RunningEmulator::start(command, run_dir, serial_log, console.clone(), console).unwrap()
    }

    fn watch_with<'a>(timeout: Duration, finish: Option<&'a Marker>, forbidden: &'a [Marker]) -> Watch<'a> {
        Watch {
            timeout: Some(timeout),
            finish,
            forbidden,
            echo: None,
            stop: None,
        }
    }

    #[test]
    fn finish_marker_ends_the_run_and_kills_the_emulator() {
        let emulator = fake_emulator("finish", "echo 'keel: selftest passed' > serial.log; exec sleep 30");
        let finish = Marker::text("selftest passed");
        let outcome = emulator
            .watch(watch_with(Duration::from_secs(20), Some(&finish), &[]))
            .unwrap();
        assert_eq!(outcome.ending, RunEnding::FinishMarker);
        assert_eq!(outcome.exit_status, None, "killed, not exited");
        assert!(outcome.elapsed < Duration::from_secs(10));
        assert_eq!(outcome.serial_log, "keel: selftest passed\n");
    }

    #[test]
    fn time_out_kills_a_silent_emulator() {
        let emulator = fake_emulator("timeout", "exec sleep 30");
        let outcome = emulator
            .watch(watch_with(Duration::from_millis(300), None, &[]))
            .unwrap();
        assert_eq!(outcome.ending, RunEnding::TimedOut);
        assert!(outcome.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn exit_status_and_last_output_are_kept() {
        let emulator = fake_emulator(
            "exit",
            "echo 'keel: VMX not supported' > serial.log; echo oops >&2; exit 33",
        );
        let outcome = emulator.watch(watch_with(Duration::from_secs(20), None, &[])).unwrap();
        assert_eq!(outcome.ending, RunEnding::EmulatorExited);
        assert_eq!(outcome.exit_status, Some(33));
        assert_eq!(outcome.serial_log, "keel: VMX not supported\n");
        assert_eq!(outcome.emulator_log, "oops\n");
    }

    #[test]
    fn forbidden_marker_ends_the_run_after_a_grace_period() {
        let emulator = fake_emulator(
            "forbidden",
            "echo 'KEEL PANIC at x' > serial.log; sleep 0.5; echo 'details' >> serial.log; exec sleep 30",
        );
        let forbidden = [Marker::text("KEEL PANIC")];
        let outcome = emulator
            .watch(watch_with(Duration::from_secs(20), None, &forbidden))
            .unwrap();
        assert_eq!(outcome.ending, RunEnding::ForbiddenMarker);
        assert_eq!(outcome.serial_log, "KEEL PANIC at x\ndetails\n");
    }

    #[test]
    fn a_stop_request_for_the_run_ends_it_as_interrupted() {
        let emulator = fake_emulator("stop", "exec sleep 30");
        let stop = AtomicBool::new(true);
        let watch = Watch {
            stop: Some(&stop),
            ..watch_with(Duration::from_secs(20), None, &[])
        };
        let outcome = emulator.watch(watch).unwrap();
        assert_eq!(outcome.ending, RunEnding::Interrupted);
        assert!(outcome.elapsed < Duration::from_secs(10));
        assert!(!interrupt::stop_requested(), "other runs go on");
    }

    #[test]
    fn line_clock_times_each_line_when_its_newline_arrives() {
        let mut clock = LineClock::default();
        let at = Duration::from_millis;
        clock.record(b"first\nsec", at(10));
        clock.record(b"ond\n", at(20));
        clock.record(b"", at(30));
        clock.record(b"third\nfourth\nunfinished", at(40));
        assert_eq!(clock.finish(at(50)), [at(10), at(20), at(40), at(40), at(50)]);
    }

    #[test]
    fn line_clock_adds_nothing_after_a_final_newline() {
        let mut clock = LineClock::default();
        clock.record(b"only\n", Duration::from_millis(5));
        assert_eq!(clock.finish(Duration::from_secs(1)), [Duration::from_millis(5)]);
    }

    #[test]
    fn outcome_knows_when_a_marker_appeared() {
        let emulator = fake_emulator(
            "timing",
            "echo 'booting' > serial.log; sleep 0.6; echo 'dom0: userspace started' >> serial.log",
        );
        let outcome = emulator.watch(watch_with(Duration::from_secs(20), None, &[])).unwrap();
        let started = outcome.time_of_first(&Marker::text("userspace started")).unwrap();
        let booting = outcome.time_of_first(&Marker::text("booting")).unwrap();
        assert!(started >= Duration::from_millis(500), "{started:?}");
        assert!(booting < started);
        assert!(outcome.time_of_first(&Marker::text("absent")).is_none());
        assert_eq!(outcome.line_times.len(), 2);
    }

    #[test]
    fn echo_receives_the_serial_output() {
        let emulator = fake_emulator("echo", "printf 'a\\nb\\n' > serial.log");
        let mut echoed = Vec::new();
        let watch = Watch {
            timeout: Some(Duration::from_secs(20)),
            finish: None,
            forbidden: &[],
            echo: Some(&mut echoed),
            stop: None,
        };
        let outcome = emulator.watch(watch).unwrap();
        assert_eq!(outcome.ending, RunEnding::EmulatorExited);
        assert_eq!(echoed, b"a\nb\n");
    }
}
