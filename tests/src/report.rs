//! Human-readable reports: failures, skipped tests and the summary.

use std::fmt::Write;

use crate::emulator::RunOutcome;
use crate::verdict::Failure;

pub const SERIAL_TAIL_LINES: usize = 40;
pub const EMULATOR_TAIL_LINES: usize = 20;

/// The last `count` lines of `text`.
pub fn tail_lines(text: &str, count: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].to_vec()
}

/// The line for a test not started because the host lacks what it
/// requires (`crate::runner::skip_reason`).
pub fn skip_line(name: &str, reason: &str) -> String {
    format!("SKIP  {name}: {reason}")
}

/// The last line of a boot-test run. Skipped tests are counted on their
/// own: they neither passed nor failed.
pub fn summary(passed: usize, failed: usize, skipped: usize) -> String {
    format!("boot tests: {passed} passed, {failed} failed, {skipped} skipped")
}

/// Why a test failed, with the end of both logs and where to find them.
pub fn failure_report(failures: &[Failure], outcome: &RunOutcome) -> String {
    let mut report = String::new();
    for failure in failures {
        let _ = writeln!(report, "  - {failure}");
    }
    if failures == [Failure::Interrupted] {
        return report;
    }
    append_tail(&mut report, "serial log", &outcome.serial_log, SERIAL_TAIL_LINES);
    append_tail(&mut report, "emulator log", &outcome.emulator_log, EMULATOR_TAIL_LINES);
    let _ = writeln!(report, "  (all files of this run: {})", outcome.run_dir.display());
    report
}

fn append_tail(report: &mut String, title: &str, text: &str, count: usize) {
    let tail = tail_lines(text, count);
    if tail.is_empty() {
        let _ = writeln!(report, "  --- {title}: empty ---");
        return;
    }
    let _ = writeln!(report, "  --- last {} lines of the {title} ---", tail.len());
    for line in tail {
        let _ = writeln!(report, "  | {}", visible(line));
    }
}

/// `line` with control characters escaped: a guest's terminal sequences
/// (busybox's shell asks for the cursor position with ESC [6n) must not act
/// on the terminal that shows the report.
fn visible(line: &str) -> String {
    line.chars()
        .map(|c| match c {
            '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::RunEnding;
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn tail_keeps_the_last_lines_in_order() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(tail_lines("a\nb", 5), ["a", "b"]);
        assert!(tail_lines("", 3).is_empty());
    }

    #[test]
    fn a_skipped_test_says_why_and_is_counted_on_its_own() {
        assert_eq!(
            skip_line(
                "kvm-passthrough",
                "needs QEMU with KVM that runs VMX guests (nested VMX), but no /dev/kvm"
            ),
            "SKIP  kvm-passthrough: needs QEMU with KVM that runs VMX guests (nested VMX), but no /dev/kvm"
        );
        assert_eq!(summary(17, 0, 1), "boot tests: 17 passed, 0 failed, 1 skipped");
        assert_eq!(summary(0, 0, 1), "boot tests: 0 passed, 0 failed, 1 skipped");
        assert_eq!(summary(3, 2, 0), "boot tests: 3 passed, 2 failed, 0 skipped");
    }

    #[test]
    fn control_characters_in_log_lines_are_shown_escaped() {
        assert_eq!(visible("/ # \x1b[6necho\tx\r"), "/ # \\u{1b}[6necho\tx\\r");
        assert_eq!(visible("plain text"), "plain text");
    }

    #[test]
    fn report_lists_failures_and_log_tails() {
        let serial: String = (1..=50).map(|n| format!("line {n}\n")).collect();
        let outcome = RunOutcome {
            line_times: Vec::new(),
            serial_log: serial,
            emulator_log: String::new(),
            exit_status: None,
            ending: RunEnding::TimedOut,
            elapsed: Duration::from_secs(3),
            run_dir: PathBuf::from("/runs/t"),
        };
        let report = failure_report(&[Failure::TimedOut(Duration::from_secs(3))], &outcome);
        assert!(report.starts_with("  - timed out after 3 s\n  --- last 40 lines of the serial log ---\n  | line 11\n"));
        assert!(!report.contains("| line 10\n"));
        assert!(report.contains("  --- emulator log: empty ---\n"));
        assert!(report.ends_with("(all files of this run: /runs/t)\n"));
    }
}
