//! The boot tests. Adding a test is adding one entry to `BOOT_TESTS`.

use std::time::Duration;

use keel_abi::emulator::{qemu_status, QEMU_EXIT_SUCCESS};

use crate::case::TestCase;
use crate::machine::Machine;

pub const BOOT_TESTS: &[fn() -> TestCase] = &[bochs_selftest, bochs_bench_guest, qemu_no_vmx];

pub fn all_boot_tests() -> Vec<TestCase> {
    BOOT_TESTS.iter().map(|make| make()).collect()
}

/// Failures Keel reports on its console in every configuration.
fn forbid_hypervisor_failures(case: TestCase) -> TestCase {
    case.forbid_text("KEEL PANIC")
        .forbid_text("VM entry failed")
        .forbid_text("keel: CPU exception")
}

/// The self-test guest exercises each exit kind; a second domain proves an
/// unhandled exit stops only that domain.
fn bochs_selftest() -> TestCase {
    let case = TestCase::new(
        "bochs-selftest",
        Machine::bochs(),
        "guest=selftest exit=emulator",
        Duration::from_secs(180),
    )
    .expect_text("keel: Keel hypervisor")
    .expect_text("keel: VMX root mode entered")
    .expect_text("guest1: selftest: started")
    .expect_text("guest1: selftest: cpuid ok")
    .expect_text("guest1: selftest: io ok")
    .expect_text("guest1: selftest: vmcall ok")
    .expect_text("guest1: selftest: hlt ok")
    .expect_text("guest1: selftest: preemption timer ok")
    .expect_regex(r"keel: domain 1 stopped: EPT violation at GPA 0x[0-9a-f]+")
    .expect_regex(r"keel: domain 1 exits:.*\bcpuid=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bio=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bvmcall=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bhlt=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bpreemption-timer=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bept-violation=1\b")
    .expect_regex(r"keel: domain 2 stopped: unhandled exit")
    .finish_on_text("keel: selftest passed")
    .forbid_text("keel: selftest FAILED");
    forbid_hypervisor_failures(case)
}

/// The benchmark guest reports a cost for every exit kind it times and
/// stops itself cleanly (`cargo xtask bench exits` prints the figures).
fn bochs_bench_guest() -> TestCase {
    let case = TestCase::new(
        "bochs-bench-guest",
        Machine::bochs(),
        "guest=bench exit=emulator bench-iterations=100",
        Duration::from_secs(180),
    )
    .expect_text("keel: VMX root mode entered")
    .expect_regex(r"^exit-cost cpuid [1-9][0-9]*$")
    .expect_regex(r"^exit-cost vmcall [1-9][0-9]*$")
    .expect_regex(r"^exit-cost io [1-9][0-9]*$")
    .expect_text("keel: domain 1 stopped: guest requested stop (status 0)")
    .finish_on_text("keel: bench finished")
    .forbid_text("keel: bench FAILED");
    forbid_hypervisor_failures(case)
}

/// Without VMX (QEMU's TCG has none) Keel must say so and stop cleanly.
fn qemu_no_vmx() -> TestCase {
    TestCase::new(
        "qemu-no-vmx",
        Machine::qemu_tcg(),
        "exit=emulator",
        Duration::from_secs(60),
    )
    .expect_text("keel: Keel hypervisor")
    .expect_text("keel: VMX not supported")
    .expect_exit_status(qemu_status(QEMU_EXIT_SUCCESS))
    .forbid_text("KEEL PANIC")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::{RunEnding, RunOutcome};
    use crate::layout::check_artifact_name;
    use crate::verdict::judge;
    use std::collections::HashSet;
    use std::path::PathBuf;

    fn outcome(serial_log: &str, exit_status: Option<i32>) -> RunOutcome {
        RunOutcome {
            serial_log: serial_log.to_string(),
            emulator_log: String::new(),
            exit_status,
            ending: RunEnding::EmulatorExited,
            elapsed: Duration::from_secs(1),
            run_dir: PathBuf::from("/r"),
        }
    }

    #[test]
    fn every_entry_builds_with_a_unique_usable_name() {
        let tests = all_boot_tests();
        let names: HashSet<&str> = tests.iter().map(|case| case.name).collect();
        assert_eq!(names.len(), tests.len());
        for case in &tests {
            check_artifact_name(case.name).unwrap();
            crate::iso::check_cmdline(case.cmdline).unwrap();
        }
    }

    const SELFTEST_LOG: &str = "\
keel: Keel hypervisor 0.1.0
keel: VMX root mode entered (revision 0x2b)
guest1: selftest: started
guest1: selftest: cpuid ok
guest1: selftest: io ok
guest1: selftest: vmcall ok
guest1: selftest: hlt ok
guest1: selftest: preemption timer ok
keel: domain 1 stopped: EPT violation at GPA 0xdead000
keel: domain 1 exits: cpuid=4 io=2 vmcall=1 hlt=1 preemption-timer=1 ept-violation=1
keel: domain 2 stopped: unhandled exit 10 (RDRAND)
keel: selftest passed
";

    #[test]
    fn selftest_accepts_the_documented_console_output() {
        assert_eq!(
            judge(&bochs_selftest(), &outcome(SELFTEST_LOG, Some(1))),
            vec![]
        );
    }

    #[test]
    fn selftest_rejects_a_zero_exit_counter() {
        let log = SELFTEST_LOG.replace("hlt=1", "hlt=0");
        let failures = judge(&bochs_selftest(), &outcome(&log, Some(1)));
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].to_string().contains(r"hlt=[1-9]"),
            "{}",
            failures[0]
        );
    }

    #[test]
    fn selftest_rejects_a_second_ept_violation() {
        let log = SELFTEST_LOG.replace("ept-violation=1", "ept-violation=12");
        assert_eq!(judge(&bochs_selftest(), &outcome(&log, Some(1))).len(), 1);
    }

    #[test]
    fn no_vmx_passes_only_with_a_clean_qemu_exit() {
        let log = "keel: Keel hypervisor\nkeel: VMX not supported\n";
        assert_eq!(judge(&qemu_no_vmx(), &outcome(log, Some(33))), vec![]);
        assert_eq!(judge(&qemu_no_vmx(), &outcome(log, Some(35))).len(), 1);
    }
}
