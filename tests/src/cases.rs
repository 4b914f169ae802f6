//! The boot tests. Adding a test is adding one entry to `BOOT_TESTS`.

use std::time::Duration;

use keel_abi::emulator::{qemu_status, QEMU_EXIT_SUCCESS};

use crate::case::TestCase;
use crate::dom0::{Dom0Modules, KernelImage};
use crate::machine::Machine;

/// The longest runs come first: two run at a time, so starting Dom0's boot
/// early keeps the whole suite short.
pub const BOOT_TESTS: &[fn() -> TestCase] = &[
    bochs_dom0,
    bochs_dom0_shell,
    bochs_dom0_reboot,
    bochs_selftest,
    bochs_dom0_bad_kernel,
    bochs_dom0_bad_boot_flag,
    bochs_bench_guest,
    qemu_no_vmx,
];

/// RAM of the machines that boot Dom0: Keel's own memory plus Dom0's.
pub const DOM0_MEMORY_MIB: u32 = 1024;

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
    .expect_text("guest1: selftest: msr #gp ok")
    .expect_regex(r"keel: domain 1 stopped: EPT violation at GPA 0x[0-9a-f]+")
    .expect_regex(r"keel: domain 1 exits:.*\bcpuid=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bio=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bvmcall=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bhlt=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bpreemption-timer=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bept-violation=1\b")
    .expect_regex(r"keel: domain 1 exits:.*\brdmsr=1\b")
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

/// The machine every Dom0 boot (test or benchmark, under Keel or bare) runs on.
pub fn dom0_machine() -> Machine {
    Machine::bochs().with_memory(DOM0_MEMORY_MIB)
}

/// Keel boots the unmodified Debian cloud kernel as Dom0 from multiboot2
/// modules; Dom0's /init checks what it sees (`keel.test=1`) and powers off.
pub fn bochs_dom0() -> TestCase {
    let case = TestCase::new(
        "bochs-dom0",
        dom0_machine(),
        "guest=dom0 exit=emulator",
        // About 10 s bare; Keel's exits cost more, and Linux's decompression
        // and boot take several hundred million instructions.
        Duration::from_secs(600),
    )
    .with_dom0(Dom0Modules::for_tests())
    .expect_text("keel: VMX root mode entered")
    .expect_text("keel: dom0: loading Linux")
    .expect_text("dom0: userspace started")
    .expect_regex(r"dom0: cpuinfo hypervisor=yes vmx=no")
    .expect_regex(r"dom0: clock advanced")
    .expect_text("dom0: dmesg clean")
    .expect_text("dom0: checks done")
    .expect_regex(r"keel: dom0 powered off")
    .expect_regex(r"keel: domain 0 exits: ")
    .finish_on_text("keel: dom0 finished")
    .forbid_text("Kernel panic")
    .forbid_text("dom0: clock stuck")
    .forbid_text("dom0: dmesg problems");
    forbid_hypervisor_failures(case)
}

/// The prompt of Dom0's busybox shell: root, in `/`.
pub const DOM0_SHELL_PROMPT: &str = "/ # ";

/// Dom0 without `keel.test=1`: /init starts a busybox shell on the console,
/// and the harness types into it through a pseudo-terminal. The answer proves
/// input reached the shell through Keel's UART, the I/O APIC interrupt and
/// Linux's tty, and its output came back (the typed command line itself
/// echoes `$((6*7))`, not 42).
pub fn bochs_dom0_shell() -> TestCase {
    let case = TestCase::new(
        "bochs-dom0-shell",
        dom0_machine(),
        "guest=dom0 exit=emulator",
        Duration::from_secs(600),
    )
    .with_dom0(Dom0Modules::interactive())
    .type_after(DOM0_SHELL_PROMPT, "echo shell-says-$((6*7))\r")
    // The next prompt, not the answer: a wrong answer still powers off and
    // fails at once instead of at the time-out.
    .type_after(DOM0_SHELL_PROMPT, "poweroff -f\r")
    .expect_text("dom0: userspace started")
    .expect_text("shell-says-42")
    .expect_text("keel: dom0 powered off")
    .finish_on_text("keel: dom0 finished")
    .forbid_text("Kernel panic");
    forbid_hypervisor_failures(case)
}

/// `reboot -f` in Dom0: Linux resets the machine (ACPI reset register),
/// Keel boots Dom0 again from the same modules, and the second Dom0 powers off.
pub fn bochs_dom0_reboot() -> TestCase {
    let case = TestCase::new(
        "bochs-dom0-reboot",
        dom0_machine(),
        "guest=dom0 exit=emulator",
        Duration::from_secs(600),
    )
    .with_dom0(Dom0Modules::interactive())
    .type_after(DOM0_SHELL_PROMPT, "reboot -f\r")
    .type_after(DOM0_SHELL_PROMPT, "poweroff -f\r")
    .expect_text("dom0: userspace started")
    .expect_text("keel: domain 0 stopped: reset")
    .expect_text("keel: dom0 reset: booting it again")
    .expect_text("dom0: userspace started")
    .expect_text("keel: dom0 powered off")
    .finish_on_text("keel: dom0 finished")
    .forbid_text("Kernel panic");
    forbid_hypervisor_failures(case)
}

/// A Dom0 kernel module that is not a whole bzImage: Keel must refuse it
/// with a message, not crash or jump into it.
fn bad_dom0_kernel(name: &'static str, kernel: KernelImage) -> TestCase {
    let case = TestCase::new(
        name,
        dom0_machine(),
        "guest=dom0 exit=emulator",
        Duration::from_secs(120),
    )
    .with_dom0(Dom0Modules::for_tests().with_kernel(kernel))
    .expect_text("keel: VMX root mode entered")
    // Keel logs errors as `keel: error: ...`.
    .expect_regex(r"keel: (error: )?dom0: cannot load the kernel: ")
    .finish_on_text("keel: dom0 finished");
    forbid_hypervisor_failures(case)
}

/// Only the first 4 KiB of the kernel: the setup header is there, the
/// protected-mode code it describes is not.
fn bochs_dom0_bad_kernel() -> TestCase {
    bad_dom0_kernel("bochs-dom0-bad-kernel", KernelImage::Truncated { bytes: 4096 })
}

/// The whole kernel with its 0xAA55 boot flag zeroed.
fn bochs_dom0_bad_boot_flag() -> TestCase {
    bad_dom0_kernel("bochs-dom0-bad-boot-flag", KernelImage::BootFlagZeroed)
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
            line_times: Vec::new(),
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
            if let Some(dom0) = &case.dom0 {
                crate::iso::check_cmdline(&dom0.linux_cmdline).unwrap();
            }
        }
    }

    #[test]
    fn dom0_tests_carry_the_modules_and_enough_memory() {
        let case = bochs_dom0();
        assert_eq!(case.dom0, Some(Dom0Modules::for_tests()));
        assert_eq!(case.machine, dom0_machine());
        let Machine::Bochs(bochs) = &case.machine else {
            panic!("Dom0 runs in Bochs");
        };
        assert_eq!(bochs.memory_mib, 1024);
        let bad = bochs_dom0_bad_kernel();
        assert_eq!(
            bad.dom0.map(|dom0| dom0.kernel),
            Some(KernelImage::Truncated { bytes: 4096 })
        );
        assert!(bochs_selftest().dom0.is_none(), "self-test ISOs stay as they were");
        let shell = bochs_dom0_shell();
        assert_eq!(shell.dom0, Some(Dom0Modules::interactive()));
        assert!(!shell.dom0.unwrap().linux_cmdline.contains(crate::dom0::TEST_FLAG));
        assert_eq!(shell.machine, dom0_machine());
    }

    #[test]
    fn only_the_interactive_dom0_tests_type_into_the_console() {
        for case in all_boot_tests() {
            let interactive = matches!(case.name, "bochs-dom0-shell" | "bochs-dom0-reboot");
            assert_eq!(case.console_input.is_empty(), !interactive, "{}", case.name);
        }
        let steps: Vec<(String, String)> = bochs_dom0_shell()
            .console_input
            .into_iter()
            .map(|step| (step.wait_for, step.send))
            .collect();
        assert_eq!(
            steps,
            [
                ("/ # ".to_string(), "echo shell-says-$((6*7))\r".to_string()),
                ("/ # ".to_string(), "poweroff -f\r".to_string()),
            ]
        );
    }

    const DOM0_SHELL_LOG: &str = "\
keel: VMX root mode entered (revision 0x2b)
keel: dom0: loading Linux 6.1.0-56-cloud-amd64 (14 MiB), initrd 1 MiB
[    2.200000] dom0: userspace started\r
\r
Keel Dom0: busybox shell on the console ('poweroff -f' or 'exit' powers off).\r
/ # echo shell-says-$((6*7))\r
shell-says-42\r
/ # poweroff -f\r
[    9.100000] reboot: Power down\r
keel: dom0 powered off (ACPI S5)
keel: domain 0 exits: cpuid=120 io=40210
keel: dom0 finished
";

    #[test]
    fn dom0_shell_accepts_the_documented_console_output() {
        assert_eq!(judge(&bochs_dom0_shell(), &outcome(DOM0_SHELL_LOG, Some(1))), vec![]);
    }

    #[test]
    fn dom0_shell_needs_the_answer_not_just_the_echoed_command() {
        let no_answer = DOM0_SHELL_LOG.replace("shell-says-42\r\n", "");
        let failures = judge(&bochs_dom0_shell(), &outcome(&no_answer, Some(1)));
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].to_string().starts_with("missing marker \"shell-says-42\""),
            "{}",
            failures[0]
        );
        let panicked = DOM0_SHELL_LOG.replace("reboot: Power down", "Kernel panic - not syncing");
        assert_eq!(judge(&bochs_dom0_shell(), &outcome(&panicked, Some(1))).len(), 1);
    }

    const DOM0_LOG: &str = "\
keel: Keel hypervisor 0.1.0
keel: VMX root mode entered (revision 0x2b)
keel: dom0: loading Linux 6.1.0-56-cloud-amd64 (14 MiB), initrd 1 MiB
[    0.000000] Linux version 6.1.0-56-cloud-amd64
[    2.100000] Run /init as init process
[    2.200000] dom0: userspace started
[    2.210000] dom0: cpuinfo hypervisor=yes vmx=no
[    3.300000] dom0: clock advanced 2.21 -> 3.29
[    3.400000] dom0: dmesg clean
[    3.410000] dom0: checks done
[    3.500000] reboot: Power down
keel: dom0 powered off (ACPI S5)
keel: domain 0 exits: cpuid=120 io=40210 msr-read=300 ept-violation=12
keel: dom0 finished
";

    #[test]
    fn dom0_accepts_the_documented_console_output() {
        assert_eq!(judge(&bochs_dom0(), &outcome(DOM0_LOG, Some(1))), vec![]);
    }

    #[test]
    fn dom0_rejects_a_visible_vmx_flag_a_stuck_clock_and_dmesg_problems() {
        let vmx = DOM0_LOG.replace("vmx=no", "vmx=yes");
        assert_eq!(judge(&bochs_dom0(), &outcome(&vmx, Some(1))).len(), 1);
        let stuck = DOM0_LOG.replace("dom0: clock advanced", "dom0: clock stuck");
        assert_eq!(judge(&bochs_dom0(), &outcome(&stuck, Some(1))).len(), 2);
        let problems = DOM0_LOG.replace(
            "dom0: dmesg clean",
            "dom0: dmesg problems:\n[ 1.0] WARNING: CPU: 0 at x",
        );
        assert_eq!(judge(&bochs_dom0(), &outcome(&problems, Some(1))).len(), 2);
    }

    #[test]
    fn bad_kernel_passes_on_a_clean_refusal_only() {
        let refused = "keel: VMX root mode entered\n\
                       keel: error: dom0: cannot load the kernel: setup code takes 20480 bytes \
                       but the image is only 4096 bytes\n\
                       keel: dom0 finished\n";
        assert_eq!(judge(&bochs_dom0_bad_kernel(), &outcome(refused, Some(1))), vec![]);
        let panicked = "keel: VMX root mode entered\nKEEL PANIC at loader.rs:10\n";
        assert!(!judge(&bochs_dom0_bad_kernel(), &outcome(panicked, Some(1))).is_empty());
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
guest1: selftest: msr #gp ok
keel: domain 1 stopped: EPT violation at GPA 0x30000000 (read) rip=0x10016d: no memory or device there
keel: domain 1 exits: cpuid=2 hlt=1 vmcall=9 io=140 rdmsr=1 ept-violation=1 preemption-timer=1 total=155
keel: domain 2 stopped: unhandled exit invd (reason 13), qualification 0x0, rip=0x1001b5
keel: selftest passed
";

    #[test]
    fn selftest_accepts_the_documented_console_output() {
        assert_eq!(judge(&bochs_selftest(), &outcome(SELFTEST_LOG, Some(1))), vec![]);
    }

    #[test]
    fn selftest_rejects_a_zero_exit_counter() {
        let log = SELFTEST_LOG.replace("hlt=1", "hlt=0");
        let failures = judge(&bochs_selftest(), &outcome(&log, Some(1)));
        assert_eq!(failures.len(), 1);
        assert!(failures[0].to_string().contains(r"hlt=[1-9]"), "{}", failures[0]);
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
