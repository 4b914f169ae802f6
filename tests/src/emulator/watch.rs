//! Supervising a run: poll the serial log until the run is decided, then
//! make sure the emulator is gone.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// Receives serial output as it arrives (`xtask run` streams it).
    pub echo: Option<&'a mut dyn Write>,
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
    pub run_dir: PathBuf,
}

impl RunningEmulator {
    /// Polls until the run is decided, then kills the emulator if it still
    /// runs (also on errors: the process is killed when `self` drops).
    pub fn watch(mut self, mut watch: Watch<'_>) -> Result<RunOutcome> {
        let started = Instant::now();
        let mut serial = LogFollower::new(self.serial_log.clone());
        let mut forbidden_seen_at: Option<Instant> = None;
        let ending = loop {
            let exited = self.process.poll_exit()?.is_some();
            // Read after checking for exit so the last output is not lost.
            let new_output = serial
                .read_new()
                .with_context(|| format!("cannot read {}", self.serial_log.display()))?;
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
            if watch
                .timeout
                .is_some_and(|timeout| started.elapsed() >= timeout)
            {
                break RunEnding::TimedOut;
            }
            if interrupt::stop_requested() {
                break RunEnding::Interrupted;
            }
            thread::sleep(POLL_INTERVAL);
        };

        let exit_status = self.process.poll_exit()?.and_then(|status| status.code());
        self.process.kill();
        Ok(RunOutcome {
            serial_log: serial.text(),
            emulator_log: self.read_emulator_log(),
            exit_status,
            ending,
            elapsed: started.elapsed(),
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
        let run_dir =
            std::env::temp_dir().join(format!("keel-watch-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&run_dir);
        fs::create_dir_all(&run_dir).unwrap();
        let serial_log = run_dir.join("serial.log");
        let mut command = Command::new("sh");
        command.arg("-c").arg(script).current_dir(&run_dir);
        let console = run_dir.join("console");
        RunningEmulator::start(command, run_dir, serial_log, console.clone(), console).unwrap()
    }

    fn watch_with<'a>(
        timeout: Duration,
        finish: Option<&'a Marker>,
        forbidden: &'a [Marker],
    ) -> Watch<'a> {
        Watch {
            timeout: Some(timeout),
            finish,
            forbidden,
            echo: None,
        }
    }

    #[test]
    fn finish_marker_ends_the_run_and_kills_the_emulator() {
        let emulator = fake_emulator(
            "finish",
            "echo 'keel: selftest passed' > serial.log; exec sleep 30",
        );
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
        let outcome = emulator
            .watch(watch_with(Duration::from_secs(20), None, &[]))
            .unwrap();
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
    fn echo_receives_the_serial_output() {
        let emulator = fake_emulator("echo", "printf 'a\\nb\\n' > serial.log");
        let mut echoed = Vec::new();
        let watch = Watch {
            timeout: Some(Duration::from_secs(20)),
            finish: None,
            forbidden: &[],
            echo: Some(&mut echoed),
        };
        let outcome = emulator.watch(watch).unwrap();
        assert_eq!(outcome.ending, RunEnding::EmulatorExited);
        assert_eq!(echoed, b"a\nb\n");
    }
}
