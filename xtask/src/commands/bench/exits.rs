//! `bench exits`: the cost of one CPUID, VMCALL and I/O exit round trip, as
//! measured by Keel's bench guest.

use std::time::Duration;

use anyhow::{bail, Result};
use keel_boot_tests::emulator::{self, RunEnding, Watch};
use keel_boot_tests::iso::build_iso;
use keel_boot_tests::marker::find_forbidden;
use keel_boot_tests::report::tail_lines;
use keel_boot_tests::{Machine, Marker, Profile};

use crate::workspace::Workspace;
use crate::{cargo, prerequisites, say};

const NAME: &str = "bench-exits";
const RESULT_PREFIX: &str = "exit-cost ";
/// Every exit kind the bench guest measures, in the order it reports them.
const EXIT_KINDS: [&str; 3] = ["cpuid", "vmcall", "io"];
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Generous per iteration (one exit of each kind): Bochs needs about 6 µs
/// of wall time per exit.
const TIMEOUT_PER_ITERATION: Duration = Duration::from_micros(60);

fn timeout(iterations: u32) -> Duration {
    BOOT_TIMEOUT + TIMEOUT_PER_ITERATION * iterations
}

pub fn run(workspace: &Workspace, iterations: u32) -> Result<()> {
    prerequisites::ensure(&[prerequisites::ISO_TOOLS, prerequisites::BOCHS])?;
    let elf = cargo::build_hypervisor(workspace, Profile::Release)?;
    let cmdline = format!("guest=bench exit=emulator bench-iterations={iterations}");
    let iso = build_iso(&workspace.layout, &elf, NAME, &cmdline)?;

    let machine = Machine::bochs();
    let timeout = timeout(iterations);
    say!("booting {NAME} in {machine} (timeout {} s)", timeout.as_secs());
    let forbidden = [
        Marker::text("KEEL PANIC"),
        Marker::text("VM entry failed"),
        Marker::text("keel: CPU exception"),
    ];
    let running = emulator::launch(&machine, &iso, &workspace.layout.run_dir(NAME))?;
    // Keel stops Bochs once it has printed its results (exit=emulator).
    let outcome = running.watch(Watch {
        timeout: Some(timeout),
        finish: None,
        forbidden: &forbidden,
        echo: None,
        stop: None,
    })?;
    if outcome.ending == RunEnding::Interrupted {
        bail!("interrupted");
    }

    let problem = match (
        find_forbidden(&outcome.serial_log, &forbidden),
        result_lines(&outcome.serial_log),
    ) {
        (Some(hit), _) => format!("line {}: {}", hit.line_number, hit.line),
        (None, Err(missing)) => format!(
            "no `{RESULT_PREFIX}{}` line{}",
            missing.join("`, `exit-cost "),
            if outcome.ending == RunEnding::TimedOut {
                " (timed out)"
            } else {
                ""
            }
        ),
        (None, Ok(lines)) => {
            for line in lines {
                println!("{line}");
            }
            return Ok(());
        }
    };
    for line in tail_lines(&outcome.serial_log, 40) {
        eprintln!("  | {line}");
    }
    bail!("{NAME}: {problem} (files in {})", outcome.run_dir.display())
}

/// The `exit-cost` lines, or the exit kinds that have none.
fn result_lines(serial_log: &str) -> Result<Vec<&str>, Vec<&'static str>> {
    let lines: Vec<&str> = serial_log
        .lines()
        .filter(|line| line.starts_with(RESULT_PREFIX))
        .collect();
    let missing: Vec<&'static str> = EXIT_KINDS
        .into_iter()
        .filter(|kind| {
            !lines
                .iter()
                .any(|line| line[RESULT_PREFIX.len()..].split_whitespace().next() == Some(*kind))
        })
        .collect();
    if missing.is_empty() {
        Ok(lines)
    } else {
        Err(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_only_the_result_lines() {
        let log = "keel: Keel hypervisor\nexit-cost cpuid 1523\nguest1: bench: done\n\
                   exit-cost vmcall 1490\nexit-cost io 1702\nkeel: stopping emulator\n";
        assert_eq!(
            result_lines(log),
            Ok(vec![
                "exit-cost cpuid 1523",
                "exit-cost vmcall 1490",
                "exit-cost io 1702"
            ])
        );
    }

    #[test]
    fn names_each_missing_exit_kind() {
        let log = "exit-cost vmcall 1490\nguest1: exit-cost io 5\n";
        assert_eq!(result_lines(log), Err(vec!["cpuid", "io"]));
    }

    #[test]
    fn a_kind_is_matched_as_a_whole_word() {
        assert_eq!(
            result_lines("exit-cost iox 1\nexit-cost cpuid 1\nexit-cost vmcall 1\n"),
            Err(vec!["io"])
        );
    }

    #[test]
    fn time_out_grows_with_iterations() {
        assert_eq!(timeout(1000), Duration::from_millis(120_060));
        assert!(timeout(1_000_000) > Duration::from_secs(170));
    }
}
