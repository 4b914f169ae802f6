//! `cargo xtask test`: host unit tests, a few seconds of each fuzz target,
//! then the boot tests.

use std::sync::Mutex;

use anyhow::{bail, Result};
use keel_boot_tests::iso::build_case_iso;
use keel_boot_tests::report::{failure_report, skip_line, summary};
use keel_boot_tests::runner::{partition_runnable, run_parallel, CaseResult, Event, HostSupport, Job};
use keel_boot_tests::{all_boot_tests, Profile, TestCase};

use crate::commands::emulator_prerequisites;
use crate::prerequisites::{self, Prerequisite};
use crate::workspace::Workspace;
use crate::{cargo, guest, say};

/// The machines have two cores, and each emulator keeps one busy.
const PARALLEL_RUNS: usize = 2;

pub fn run(workspace: &Workspace, filter: Option<&str>, no_host: bool, no_fuzz: bool) -> Result<()> {
    if !no_host {
        cargo::test_host_crates(workspace)?;
        if !no_fuzz {
            crate::commands::fuzz::smoke(workspace)?;
        }
    }
    let cases = select(all_boot_tests(), filter);
    if cases.is_empty() {
        bail!("no boot test name contains {:?}", filter.unwrap_or_default());
    }
    // Tests whose requirements this host lacks (nested VMX under KVM) are
    // not started, nor is anything built or installed for them.
    let (cases, skipped) = partition_runnable(cases, &HostSupport::probe());
    for skipped in &skipped {
        println!("{}", skip_line(skipped.case.name, &skipped.reason));
    }
    if cases.is_empty() {
        return conclude(0, 0, skipped.len());
    }
    prerequisites::ensure(&needed_prerequisites(&cases))?;

    if cases.iter().any(|case| case.dom0.is_some()) {
        guest::ensure_dom0_images(workspace)?;
    }

    let elf = cargo::build_hypervisor(workspace, Profile::Release)?;
    say!("building {} ISO(s)", cases.len());
    let mut jobs = Vec::with_capacity(cases.len());
    for case in cases {
        let iso = build_case_iso(&workspace.layout, &elf, &case)?;
        jobs.push(Job { case, iso });
    }

    // One lock so a failure report is never interleaved with other output.
    let output = Mutex::new(());
    let results = run_parallel(&workspace.layout, &jobs, PARALLEL_RUNS, &|event| {
        let _guard = output.lock();
        print_event(event);
    });

    let passed = results
        .iter()
        .filter(|result| matches!(result, Some(Ok(result)) if result.passed()))
        .count();
    for (job, result) in jobs.iter().zip(&results) {
        if result.is_none() {
            println!("SKIP  {} (interrupted)", job.case.name);
        }
    }
    let failed = results.len() - passed;
    conclude(passed, failed, skipped.len())
}

/// Prints the summary; the run fails only when a test failed (or was
/// interrupted), never for a skipped one.
fn conclude(passed: usize, failed: usize, skipped: usize) -> Result<()> {
    println!("{}", summary(passed, failed, skipped));
    if failed > 0 {
        bail!("{failed} boot test(s) failed");
    }
    Ok(())
}

fn select(cases: Vec<TestCase>, filter: Option<&str>) -> Vec<TestCase> {
    match filter {
        Some(filter) => cases.into_iter().filter(|case| case.name.contains(filter)).collect(),
        None => cases,
    }
}

fn needed_prerequisites(cases: &[TestCase]) -> Vec<&'static [Prerequisite]> {
    let mut groups: Vec<&'static [Prerequisite]> = vec![prerequisites::ISO_TOOLS];
    for case in cases {
        let group = emulator_prerequisites(&case.machine);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

fn print_event(event: Event<'_>) {
    match event {
        Event::Started(case) => say!(
            "booting {} in {} (timeout {} s)",
            case.name,
            case.machine,
            case.timeout.as_secs()
        ),
        Event::Finished(case, Ok(result)) => print_result(case, result),
        Event::Finished(case, Err(error)) => println!("FAIL  {}: {error:#}", case.name),
    }
}

fn print_result(case: &TestCase, result: &CaseResult) {
    let seconds = result.outcome.elapsed.as_secs_f64();
    if result.passed() {
        println!("PASS  {} ({seconds:.1} s)", case.name);
    } else {
        println!("FAIL  {} ({seconds:.1} s)", case.name);
        print!("{}", failure_report(&result.failures, &result.outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_boot_tests::Machine;
    use std::time::Duration;

    fn case(name: &'static str, machine: Machine) -> TestCase {
        TestCase::new(name, machine, "", Duration::from_secs(1))
    }

    #[test]
    fn filter_selects_by_substring() {
        let cases = vec![
            case("bochs-selftest", Machine::bochs()),
            case("qemu-no-vmx", Machine::qemu_tcg()),
        ];
        let names: Vec<&str> = select(cases, Some("vmx")).iter().map(|c| c.name).collect();
        assert_eq!(names, ["qemu-no-vmx"]);
    }

    #[test]
    fn skipped_tests_do_not_fail_the_run_and_failed_ones_do() {
        assert!(conclude(0, 0, 1).is_ok());
        assert!(conclude(17, 0, 1).is_ok());
        assert!(conclude(16, 1, 1).is_err());
        assert!(conclude(0, 1, 0).is_err());
    }

    #[test]
    fn the_nested_kvm_test_is_the_one_skipped_on_a_host_without_it() {
        let without = HostSupport {
            nested_kvm: Some("no /dev/kvm this user can open read-write".to_string()),
        };
        let (runnable, skipped) = partition_runnable(select(all_boot_tests(), Some("kvm-passthrough")), &without);
        assert!(runnable.is_empty());
        let names: Vec<&str> = skipped.iter().map(|skipped| skipped.case.name).collect();
        assert_eq!(names, ["kvm-passthrough"]);
        // Every other boot test runs on such a host (the CI machines).
        let (runnable, skipped) = partition_runnable(all_boot_tests(), &without);
        assert_eq!(skipped.len(), 1);
        assert_eq!(runnable.len(), all_boot_tests().len() - 1);
    }

    #[test]
    fn prerequisites_follow_the_selected_machines() {
        let bochs_only = needed_prerequisites(&[case("a", Machine::bochs()), case("b", Machine::bochs())]);
        assert_eq!(bochs_only.len(), 2, "ISO tools and Bochs, Bochs once");
        assert_eq!(bochs_only[1], prerequisites::BOCHS);
        let both = needed_prerequisites(&[case("a", Machine::bochs()), case("b", Machine::qemu_tcg())]);
        assert_eq!(both.len(), 3);
    }
}
