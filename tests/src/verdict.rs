//! Judging a finished run against its test case (pure).

use std::fmt;
use std::time::Duration;

use crate::case::TestCase;
use crate::emulator::{RunEnding, RunOutcome};
use crate::marker::{find_forbidden, find_in_order};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    ForbiddenMarker {
        marker: String,
        line_number: usize,
        line: String,
    },
    MissingMarker {
        marker: String,
        searched_from_line: Option<usize>,
        found_earlier_at_line: Option<usize>,
    },
    ExitStatus {
        expected: i32,
        actual: Option<i32>,
    },
    /// A console input step whose text was never typed: what it waited for
    /// did not appear in the serial output.
    ConsoleInputNotTyped {
        /// 1-based.
        step: usize,
        steps: usize,
        description: String,
    },
    TimedOut(Duration),
    Interrupted,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ForbiddenMarker {
                marker,
                line_number,
                line,
            } => write!(f, "forbidden marker {marker} at line {line_number}: {line}"),
            Failure::MissingMarker {
                marker,
                searched_from_line,
                found_earlier_at_line,
            } => {
                write!(f, "missing marker {marker}")?;
                if let Some(line) = searched_from_line {
                    write!(f, " (searched from line {line}, where the previous marker matched)")?;
                }
                if let Some(line) = found_earlier_at_line {
                    write!(f, "; it appears out of order at line {line}")?;
                }
                Ok(())
            }
            Failure::ExitStatus {
                expected,
                actual: Some(actual),
            } => write!(f, "emulator exit status {actual}, expected {expected}"),
            Failure::ExitStatus { expected, actual: None } => {
                write!(f, "emulator did not exit by itself, expected exit status {expected}")
            }
            Failure::ConsoleInputNotTyped {
                step,
                steps,
                description,
            } => write!(
                f,
                "console input step {step} of {steps} ({description}) was never typed: \
                 what it waits for did not appear in the serial output"
            ),
            Failure::TimedOut(timeout) => write!(f, "timed out after {} s", timeout.as_secs()),
            Failure::Interrupted => f.write_str("interrupted"),
        }
    }
}

/// Every reason `outcome` fails `case`; empty means the test passed.
pub fn judge(case: &TestCase, outcome: &RunOutcome) -> Vec<Failure> {
    let mut failures = Vec::new();
    match outcome.ending {
        // A run cut short by the user says nothing about Keel.
        RunEnding::Interrupted => return vec![Failure::Interrupted],
        RunEnding::TimedOut => failures.push(Failure::TimedOut(case.timeout)),
        RunEnding::FinishMarker | RunEnding::ForbiddenMarker | RunEnding::EmulatorExited => {}
    }
    if let Some(hit) = find_forbidden(&outcome.serial_log, &case.forbidden) {
        failures.push(Failure::ForbiddenMarker {
            marker: case.forbidden[hit.index].to_string(),
            line_number: hit.line_number,
            line: hit.line,
        });
    }
    let markers = case.ordered_markers();
    if let Err(missing) = find_in_order(&outcome.serial_log, &markers) {
        failures.push(Failure::MissingMarker {
            marker: markers[missing.index].to_string(),
            searched_from_line: missing.searched_from_line,
            found_earlier_at_line: missing.found_earlier_at_line,
        });
    }
    if let Some(expected) = case.expected_exit_status {
        if outcome.exit_status != Some(expected) {
            failures.push(Failure::ExitStatus {
                expected,
                actual: outcome.exit_status,
            });
        }
    }
    failures
}

/// Whether a run with console input typed all of it: `steps_typed` is how
/// many of `case.console_input` the script got to.
pub fn judge_console_input(case: &TestCase, outcome: &RunOutcome, steps_typed: usize) -> Option<Failure> {
    if outcome.ending == RunEnding::Interrupted {
        return None;
    }
    let step = case.console_input.get(steps_typed)?;
    Some(Failure::ConsoleInputNotTyped {
        step: steps_typed + 1,
        steps: case.console_input.len(),
        description: step.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;
    use std::path::PathBuf;

    fn case() -> TestCase {
        TestCase::new("t", Machine::qemu_tcg(), "", Duration::from_secs(60))
            .expect_text("keel: Keel hypervisor")
            .expect_text("keel: VMX not supported")
            .forbid_text("KEEL PANIC")
            .expect_exit_status(33)
    }

    fn outcome(serial_log: &str, exit_status: Option<i32>, ending: RunEnding) -> RunOutcome {
        RunOutcome {
            line_times: Vec::new(),
            serial_log: serial_log.to_string(),
            emulator_log: String::new(),
            exit_status,
            ending,
            elapsed: Duration::from_secs(1),
            run_dir: PathBuf::from("/r"),
        }
    }

    const GOOD_LOG: &str = "keel: Keel hypervisor\nkeel: VMX not supported\n";

    #[test]
    fn clean_run_passes() {
        let run = outcome(GOOD_LOG, Some(33), RunEnding::EmulatorExited);
        assert_eq!(judge(&case(), &run), vec![]);
    }

    #[test]
    fn wrong_exit_status_fails_even_with_all_markers() {
        let run = outcome(GOOD_LOG, Some(35), RunEnding::EmulatorExited);
        assert_eq!(
            judge(&case(), &run),
            vec![Failure::ExitStatus {
                expected: 33,
                actual: Some(35)
            }]
        );
    }

    #[test]
    fn panic_is_reported_with_its_line() {
        let log = "keel: Keel hypervisor\nKEEL PANIC: oops\n";
        let failures = judge(&case(), &outcome(log, Some(35), RunEnding::ForbiddenMarker));
        assert_eq!(
            failures[0],
            Failure::ForbiddenMarker {
                marker: "\"KEEL PANIC\"".to_string(),
                line_number: 2,
                line: "KEEL PANIC: oops".to_string(),
            }
        );
        assert_eq!(
            failures[1].to_string(),
            "missing marker \"keel: VMX not supported\" (searched from line 1, where the previous marker matched)"
        );
    }

    #[test]
    fn time_out_names_the_first_missing_marker() {
        let case = TestCase::new("t", Machine::bochs(), "", Duration::from_secs(180))
            .expect_text("keel: Keel hypervisor")
            .finish_on_text("keel: selftest passed");
        let failures = judge(&case, &outcome("keel: Keel hypervisor\n", None, RunEnding::TimedOut));
        assert_eq!(failures.len(), 2);
        assert_eq!(failures[0].to_string(), "timed out after 180 s");
        assert!(failures[1]
            .to_string()
            .starts_with("missing marker \"keel: selftest passed\""));
    }

    #[test]
    fn interrupted_run_reports_only_the_interruption() {
        let failures = judge(&case(), &outcome("", None, RunEnding::Interrupted));
        assert_eq!(failures, vec![Failure::Interrupted]);
    }

    #[test]
    fn console_input_fails_only_when_a_step_was_not_typed() {
        let case = case()
            .type_after("/ # ", "echo hi\r")
            .type_after("/ # ", "poweroff -f\r");
        let run = outcome(GOOD_LOG, Some(33), RunEnding::EmulatorExited);
        assert_eq!(judge_console_input(&case, &run, 2), None);
        let failure = judge_console_input(&case, &run, 1).unwrap();
        assert_eq!(
            failure.to_string(),
            r#"console input step 2 of 2 (type "poweroff -f\r" after "/ # ") was never typed: what it waits for did not appear in the serial output"#
        );
        let interrupted = outcome("", None, RunEnding::Interrupted);
        assert_eq!(judge_console_input(&case, &interrupted, 0), None);
        assert_eq!(
            judge_console_input(&super::tests::case(), &run, 0),
            None,
            "no input, nothing to type"
        );
    }

    #[test]
    fn killed_emulator_fails_an_exit_status_expectation() {
        let failures = judge(&case(), &outcome(GOOD_LOG, None, RunEnding::TimedOut));
        assert!(failures.contains(&Failure::ExitStatus {
            expected: 33,
            actual: None
        }));
    }
}
