//! The boot tests. Adding a test is adding one entry to `BOOT_TESTS`.

use std::time::Duration;

use keel_abi::emulator::{qemu_status, QEMU_EXIT_SUCCESS};

use crate::case::TestCase;
use crate::dom0::{Dom0Modules, KernelImage};
use crate::emulator::bochs::{passthrough_sector_text, PASSTHROUGH_DISK_GEOMETRY};
use crate::machine::{BochsDisk, ExtraAcpiTable, Machine, QemuMachine};

/// The longest runs come first: two run at a time, so starting the long
/// ones early keeps the whole suite short. Measured on the 2-core
/// development machine, two at once: bochs-domu-faults 321 s, bochs-domu
/// 248 s, bochs-domu-sched 121 s; bochs-hostile 160-170 s with one other
/// emulator running; bochs-split-blk 284 s alone (Dom0's clock: 886 s;
/// measured before its DomU compared its 4 MiB file with cmp instead of
/// summing it twice); bochs-passthrough 82 s alone (Dom0's clock: 245 s);
/// then the Dom0 boots and the short self-contained guests. bochs-split-net
/// (two DomUs booting at once, then a transfer between them) is not
/// measured yet: its time-out, the longest, puts it first.
pub const BOOT_TESTS: &[fn() -> TestCase] = &[
    bochs_split_net,
    bochs_domu_faults,
    bochs_domu,
    bochs_split_blk,
    bochs_hostile,
    bochs_passthrough,
    bochs_domu_sched,
    bochs_dom0,
    bochs_dom0_reboot,
    bochs_dom0_shell,
    kvm_passthrough,
    bochs_selftest,
    bochs_bench_guest,
    bochs_dom0_bad_kernel,
    bochs_dom0_bad_boot_flag,
    qemu_iommu,
    qemu_iommu_rmrr,
    qemu_iommu_bad_dmar,
    qemu_no_vmx,
];

/// RAM of the machines that boot Dom0: Keel's own memory plus Dom0's, and
/// room for the DomUs Dom0 creates in `bochs-domu`.
pub const DOM0_MEMORY_MIB: u32 = 1024;
/// Dom0's RAM: Keel's default (`dom0-mem`).
pub const DOM0_RAM_MIB: u32 = 256;
/// RAM of each sample DomU (`xtask/guest/domu*.toml`).
pub const DOMU_MEMORY_MIB: u32 = 96;
/// What the machine needs besides guest RAM, generously: the first MiB,
/// Keel's image and heap, GRUB's modules (Dom0's kernel, about 14 MiB, and
/// initramfs, about 20 MiB with the DomU kernel in it) and EPT tables.
pub const KEEL_OVERHEAD_MIB: u32 = 128;
const _: () = assert!(
    KEEL_OVERHEAD_MIB + DOM0_RAM_MIB + 2 * DOMU_MEMORY_MIB <= DOM0_MEMORY_MIB,
    "the Dom0 machine must hold Keel, Dom0 and the two DomUs of bochs-domu"
);

pub fn all_boot_tests() -> Vec<TestCase> {
    BOOT_TESTS.iter().map(|make| make()).collect()
}

/// Failures Keel reports on its console in every configuration.
fn forbid_hypervisor_failures(case: TestCase) -> TestCase {
    case.forbid_text("KEEL PANIC")
        .forbid_text("VM entry failed")
        .forbid_text("keel: CPU exception")
}

/// The self-test guest exercises each exit kind, the instructions Keel must
/// complete (INVD/WBINVD, string port I/O), the single-step and INT1 #DBs
/// (after an emulated and a native instruction) and its TSC offset; a
/// second domain proves a guest's triple fault (a #GP Keel's string I/O
/// emulation raised, with no IDT) stops only that domain.
fn bochs_selftest() -> TestCase {
    let case = TestCase::new(
        "bochs-selftest",
        Machine::bochs(),
        "guest=selftest exit=emulator",
        Duration::from_secs(180),
    )
    .expect_text("keel: Keel hypervisor")
    .expect_regex(r"keel: boot stack guard page at 0x[0-9a-f]+: not mapped")
    .expect_text("keel: VMX root mode entered")
    .expect_text("guest1: selftest: started")
    .expect_text("guest1: selftest: cpuid ok")
    .expect_text("guest1: selftest: io ok")
    .expect_text("guest1: selftest: vmcall ok")
    .expect_text("guest1: selftest: hlt ok")
    .expect_text("guest1: selftest: preemption timer ok")
    .expect_text("guest1: selftest: msr #gp ok")
    .expect_text("guest1: selftest: invd/wbinvd ok")
    .expect_text("guest1: selftest: rep outsb ok")
    .expect_text("guest1: selftest: rep insb ok")
    .expect_text("guest1: selftest: single-step #db ok")
    .expect_text("guest1: selftest: tsc offset ok")
    .expect_regex(r"keel: domain 1 stopped: EPT violation at GPA 0x[0-9a-f]+")
    .expect_regex(r"keel: domain 1 exits:.*\bcpuid=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bio=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bvmcall=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bhlt=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bpreemption-timer=[1-9]")
    .expect_regex(r"keel: domain 1 exits:.*\bept-violation=1\b")
    .expect_regex(r"keel: domain 1 exits:.*\brdmsr=1\b")
    .expect_regex(r"keel: domain 1 exits:.*\binvd=1\b")
    .expect_regex(r"keel: domain 1 exits:.*\bexception-or-nmi=[1-9]")
    .expect_regex(r"keel: domain 2 stopped: unhandled exit triple-fault")
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

/// DomU's /init (`xtask/guest/domu-init.sh`) says this first; Dom0's DomU
/// checks wait for it with `keel console --until`.
pub const DOMU_USERSPACE_MARKER: &str = "domu: userspace started";

/// What the DomU's power button handler (`xtask/guest/domu-init.sh`, run by
/// busybox acpid on a KEY_POWER press) says before it powers off.
pub const DOMU_POWER_BUTTON_MARKER: &str = "domu: power button pressed, powering off";

/// DomU's line as its kernel logs it: `[   9.000000] domu: userspace started`.
fn domu_userspace_line() -> String {
    format!(r"\] {}", regex::escape(DOMU_USERSPACE_MARKER))
}

/// What Dom0's DomU checks (`xtask/guest/domu-test.sh`) say when a step
/// passes, in this order.
pub const DOMU_STEPS: &[&str] = &[
    "dom0: domu created",
    "dom0: domu console marker seen",
    "dom0: domu list ok",
    "dom0: domu destroyed, memory restored",
    "dom0: domu bad inputs refused",
    "dom0: domu unprivileged refused",
    "dom0: domu cycles no leak",
    "dom0: domu checks done",
];

/// What they say (at the start of a line's text) when a step fails.
pub const DOMU_FAILURES: &[&str] = &[
    "dom0: domu info failed",
    "dom0: domu create failed",
    "dom0: domu console marker not seen",
    "dom0: domu list wrong",
    "dom0: domu destroy failed",
    "dom0: domu still listed",
    "dom0: domu memory leak",
    "dom0: domu bad input accepted",
    "dom0: domu bad input refused unclearly",
    "dom0: domu unprivileged check impossible",
    "dom0: domu unprivileged caller accepted",
    "dom0: domu cycles failed",
    "dom0: domu cycles leak",
];

/// Keel's own line when `keel create` boots a domain whose kernel is cut
/// short (`xtask/guest/domu-test.sh` feeds it the first 1000000 bytes).
pub const DOMU_TRUNCATED_KERNEL_REFUSAL: &str =
    r"keel: warning: domain [0-9]+: cannot boot: cannot load the kernel: protected-mode kernel is truncated";

/// Dom0 manages DomUs with the `keel` tool (`keel.test=domu`): creates
/// `domu1` (the same kernel, a busybox userspace) and waits on its console
/// for its userspace, lists it next to Dom0, destroys it and gets all its
/// memory back; bad configs (unknown key, too much memory, a kernel file
/// that does not exist, a truncated kernel only Keel's loader can refuse),
/// a missing domain, a duplicate name and an unprivileged caller are
/// refused without changing anything; five
/// create/destroy cycles of a paused `domu2` leak nothing.
pub fn bochs_domu() -> TestCase {
    let mut case = TestCase::new(
        "bochs-domu",
        dom0_machine(),
        "guest=dom0 exit=emulator",
        // Dom0's boot, then a second Linux boot sharing the emulated CPU.
        Duration::from_secs(900),
    )
    .with_dom0(Dom0Modules::domu_test())
    .expect_text("keel: VMX root mode entered")
    .expect_text("keel: dom0: loading Linux")
    .expect_text("dom0: userspace started");
    for (index, step) in DOMU_STEPS.iter().enumerate() {
        case = case.expect_text(step);
        if index == 0 {
            // `keel console` shows DomU's output from its start: the line
            // DomU's kernel logged (after its timestamp), not Dom0's words.
            case = case.expect_regex(&domu_userspace_line());
        }
        if *step == "dom0: domu destroyed, memory restored" {
            // Among the bad inputs: Keel's loader refused the truncated
            // kernel itself (syssize), at boot.
            case = case.expect_regex(DOMU_TRUNCATED_KERNEL_REFUSAL);
        }
    }
    case = case
        .expect_text("keel: dom0 powered off")
        .finish_on_text("keel: dom0 finished")
        .forbid_text("Kernel panic");
    for failure in DOMU_FAILURES {
        case = case.forbid_text(failure);
    }
    forbid_hypervisor_failures(case)
}

// The scheduling and fault checks' DomUs (`xtask/guest/domu-{spin,wrmsr,
// tick,probe,triple}.toml`) have DOMU_MEMORY_MIB too: Keel loads the kernel
// at 16 MiB and its decompression needs about 52 MiB from there, so 64 MiB
// is refused. bochs-domu-faults may run three at once.
const _: () = assert!(
    KEEL_OVERHEAD_MIB + DOM0_RAM_MIB + 3 * DOMU_MEMORY_MIB <= DOM0_MEMORY_MIB,
    "the Dom0 machine must hold Keel, Dom0 and the three DomUs bochs-domu-faults may run at once"
);

/// Failures of the Dom0 that runs a DomU scenario: a panic, or a reset that
/// would start the scenario over.
fn forbid_dom0_failures(case: TestCase) -> TestCase {
    forbid_hypervisor_failures(
        case.forbid_text("Kernel panic")
            .forbid_text("dom0 reset: booting it again"),
    )
}

/// A Dom0 that runs one DomU scenario (`modules` selects it with a
/// `keel.test=...` flag): each step's success line in order, with `extra`
/// markers after the step they follow; no failure line; Dom0 powers off.
fn domu_scenario(
    name: &'static str,
    modules: Dom0Modules,
    timeout: Duration,
    steps: &[&str],
    extra: &[(&str, &[&str])],
    failures: &[&str],
) -> TestCase {
    let mut case = TestCase::new(name, dom0_machine(), "guest=dom0 exit=emulator", timeout)
        .with_dom0(modules)
        .expect_text("keel: VMX root mode entered")
        .expect_text("keel: dom0: loading Linux")
        .expect_text("dom0: userspace started");
    for step in steps {
        case = case.expect_text(step);
        for (after, patterns) in extra {
            if after == step {
                for pattern in *patterns {
                    case = case.expect_regex(pattern);
                }
            }
        }
    }
    case = case
        .expect_text("keel: dom0 powered off")
        .finish_on_text("keel: dom0 finished");
    for failure in failures {
        case = case.forbid_text(failure);
    }
    forbid_dom0_failures(case)
}

/// What Dom0's scheduling checks (`xtask/guest/domu-sched-test.sh`) say when
/// a step passes, in this order.
pub const DOMU_SCHED_STEPS: &[&str] = &[
    "dom0: domu sched created domu-spin and domu-wrmsr",
    "dom0: domu sched both domus run their loops",
    "dom0: domu sched dom0 stays responsive",
    "dom0: domu sched both domus got cpu time",
    "dom0: domu sched wrmsr loop exits",
    "dom0: domu sched top shows both domus",
    "dom0: domu sched domu kernels clean",
    "dom0: domu sched destroyed both, memory restored",
    "dom0: domu sched checks done",
];

/// What they say (at the start of a line's text) when a step fails.
pub const DOMU_SCHED_FAILURES: &[&str] = &[
    "dom0: domu sched info failed",
    "dom0: domu sched create failed",
    "dom0: domu sched loop not started",
    "dom0: domu sched pause failed",
    "dom0: domu sched dom0 too slow",
    "dom0: domu sched cpu share too low",
    "dom0: domu sched wrmsr loop not exiting",
    "dom0: domu sched top failed",
    "dom0: domu sched domu kernel problems",
    "dom0: domu sched destroy failed",
    "dom0: domu sched memory leak",
];

/// Two DomUs at once next to Dom0 (`keel.test=domu-sched`): `domu-spin`
/// busy-loops, `domu-wrmsr` writes the TSC-deadline MSR in a tight loop
/// (`keel-stress` through the msr driver, one exit per write). Dom0 must
/// stay responsive (commands within the bound the 10 ms round robin and the
/// wake boost give, measured against the same commands with both DomUs
/// paused), both DomUs must get CPU time and the WRMSR exits keep coming;
/// `keel top` shows them; destroying both gives all memory back.
pub fn bochs_domu_sched() -> TestCase {
    domu_scenario(
        "bochs-domu-sched",
        Dom0Modules::domu_sched_test(),
        // Dom0's boot, then two Linux boots sharing the emulated CPU.
        Duration::from_secs(900),
        DOMU_SCHED_STEPS,
        &[(
            // The DomUs' own lines, as Dom0 shows them from their consoles.
            "dom0: domu sched created domu-spin and domu-wrmsr",
            &[
                r"\] domu: spinning \(keel\.domu=spin\)",
                r"\] domu: wrmsr loop started",
                r"keel-stress: writing tsc\+100000 to MSR 0x6e0 \(forever\)",
            ],
        )],
        DOMU_SCHED_FAILURES,
    )
}

/// What Dom0's fault checks (`xtask/guest/domu-faults-test.sh`) say when a
/// step passes, in this order.
pub const DOMU_FAULTS_STEPS: &[&str] = &[
    "dom0: domu faults created domu-tick and domu-probe",
    "dom0: domu faults isolation held",
    "dom0: domu faults witness kept ticking after the probes",
    "dom0: domu faults pause froze",
    "dom0: domu faults reboot booted",
    "dom0: domu faults triple fault left domu-triple crashed",
    "dom0: domu faults witness kept ticking after the triple fault",
    "dom0: domu faults destroyed the crashed domain",
    "dom0: domu faults witness kernel clean",
    "dom0: domu faults shutdown handled",
    "dom0: domu faults destroyed every domu, memory restored",
    "dom0: domu faults checks done",
];

/// What they say (at the start of a line's text) when a step fails.
pub const DOMU_FAULTS_FAILURES: &[&str] = &[
    "dom0: domu faults info failed",
    "dom0: domu faults create failed",
    "dom0: domu faults witness stopped",
    "dom0: domu faults isolation broken",
    "dom0: domu faults probe not run",
    "dom0: domu faults shutdown impossible",
    "dom0: domu faults shutdown failed",
    "dom0: domu faults shutdown ignored",
    "dom0: domu faults pause failed",
    "dom0: domu faults paused domain ran",
    "dom0: domu faults unpaused domain did not run",
    "dom0: domu faults reboot failed",
    "dom0: domu faults reboot did not boot again",
    "dom0: domu faults triple fault not seen",
    "dom0: domu faults witness kernel problems",
    "dom0: domu faults destroy failed",
    "dom0: domu faults memory leak",
];

/// DomUs misbehaving and managed (`keel.test=domu-faults`) while a witness
/// DomU keeps ticking: one probes guest-physical addresses outside its RAM
/// (Dom0's management registers and shared memory among them) and must see
/// nothing of Dom0's; a paused spinner's CPU time stands still and moves
/// again after unpause; `keel reboot` boots it a second time; a DomU whose
/// Linux reboots by triple fault (`reboot=t`) is listed as crashed
/// (`on_crash = "preserve"`) and then destroyed; `keel shutdown` of the
/// witness presses its ACPI power button, and the witness (acpid on the
/// button driver) must say [`DOMU_POWER_BUTTON_MARKER`] and power off, so
/// that its `on_poweroff = "destroy"` takes it out of `keel list`, within
/// 120 s of Dom0's clock; all memory comes back.
pub fn bochs_domu_faults() -> TestCase {
    domu_scenario(
        "bochs-domu-faults",
        Dom0Modules::domu_faults_test(),
        // Dom0's boot and four DomU boots on the one emulated CPU.
        Duration::from_secs(1200),
        DOMU_FAULTS_STEPS,
        &[
            (
                "dom0: domu faults created domu-tick and domu-probe",
                &[r"\] domu: tick [0-9]+"],
            ),
            (
                "dom0: domu faults pause froze",
                &[r"keel: domain [0-9]+: rebooting", r"\] domu: boot id "],
            ),
            (
                "dom0: domu faults reboot booted",
                &[
                    r"keel: domain [0-9]+ stopped: triple fault",
                    r"keel: domain [0-9]+ \(domu-triple\): crash: preserve",
                ],
            ),
            (
                // Keel presses the button; the witness powers off and is
                // destroyed; Dom0 then shows the witness's own line.
                "dom0: domu faults witness kernel clean",
                &[
                    r"keel: domain [0-9]+: power button pressed",
                    r"keel: domain [0-9]+ stopped: powered off",
                    r"keel: domain [0-9]+ \(domu-tick\): power-off: destroy",
                    r"\] domu: power button pressed, powering off",
                ],
            ),
        ],
        DOMU_FAULTS_FAILURES,
    )
}

/// What Dom0's hostile-guest checks (`xtask/guest/hostile-test.sh`) say
/// when a step passes, in this order.
pub const HOSTILE_STEPS: &[&str] = &[
    "dom0: hostile witness ticking",
    "dom0: hostile created domu-hostile",
    "dom0: hostile dom0 run survived",
    "dom0: hostile witness kept ticking through dom0's run",
    "dom0: hostile domu run contained",
    "dom0: hostile witness kept ticking through domu-hostile's run",
    "dom0: hostile keel list and info answer",
    "dom0: hostile kernels clean",
    "dom0: hostile destroyed every domu, memory restored",
    "dom0: hostile checks done",
];

/// What they say (at the start of a line's text) when a step fails.
pub const HOSTILE_FAILURES: &[&str] = &[
    "dom0: hostile info failed",
    "dom0: hostile setup failed",
    "dom0: hostile create failed",
    "dom0: hostile witness stopped",
    "dom0: hostile dom0 run failed",
    "dom0: hostile domu run failed",
    "dom0: hostile domu run not finished",
    "dom0: hostile management broken",
    "dom0: hostile kernel problems",
    "dom0: hostile destroy failed",
    "dom0: hostile memory leak",
];

/// What `keel-stress hostile` (guest-tools) says when one of its checks
/// fails: a value read outside RAM, a missing single-step #DB, an #AC that
/// never came, a breakpoint that miscounted, a write the architecture
/// refuses that was accepted, a signal it did not expect.
pub const HOSTILE_STRESS_FAILURE: &str = "keel-stress: hostile FAILED";

/// The seeds Dom0's own run (`hostile-test.sh`) and the hostile DomU
/// (`xtask/guest/domu-hostile.toml`) use: their summary lines tell them apart.
pub const HOSTILE_DOM0_SEED: u64 = 1;
pub const HOSTILE_DOMU_SEED: u64 = 2;

/// Dom0's summary line, every operation counted at least once: CPUID, MSRs
/// read, written and refused with #GP, ports, loads and stores outside RAM,
/// VMCALLs, single-step traps, #AC traps, breakpoint #DBs; then string MMIO,
/// string port I/O, single-stepped REP iterations and INT1 #DBs; hardware
/// breakpoints usable (Bochs implements them); no failure.
fn hostile_dom0_summary() -> String {
    let mut pattern = format!(r"\] keel-stress: hostile done seed={HOSTILE_DOM0_SEED}");
    for field in [
        "rounds",
        "cpuid",
        "msr_read",
        "msr_write",
        "msr_gp",
        "port_read",
        "port_write",
        "mem_read",
        "mem_write",
        "vmcall",
        "tf_steps",
        "ac_traps",
        "db_traps",
    ] {
        pattern.push_str(&format!(" {field}=[1-9][0-9]*"));
    }
    pattern.push_str(" .*");
    for field in ["string_mmio", "string_io", "tf_string_steps", "int1_traps"] {
        pattern.push_str(&format!(" {field}=[1-9][0-9]*"));
    }
    pattern.push_str(r" breakpoints=ok failures=0\b");
    pattern
}

/// A hostile guest against Keel (`keel.test=hostile`): `keel-stress hostile`
/// runs in Dom0 for 60 s of its clock, then in `domu-hostile` for 45 s of
/// its own, while the witness `domu-tick` must keep ticking (at least one
/// tick per 4 s of each run). It sweeps CPUID leaves (basic, 0x4000_00xx,
/// extended, random), reads architectural and random MSRs and writes random
/// values where the guest kernel does not depend on them (and writes the
/// architecture refuses: reserved EFER, APIC_BASE, MISC_ENABLE, DEBUGCTL,
/// SPEC_CTRL bits, EFER.LME under paging, a locked FEATURE_CONTROL, which
/// must fail), reads and writes ports (never the kernel's devices or a reset
/// or power-off port), maps the holes of `/proc/iomem` (below and above
/// 4 GiB) through `/dev/mem` and reads (all ones or zeros) and writes them
/// 1 to 8 bytes wide and with `rep movs`/`rep stos`, does `rep ins`/`rep
/// outs`, VMCALLs from user mode with random registers, single-steps CPUID,
/// RDTSC, VMCALL and IN (a #DB after each) and REP string instructions on a
/// hole and a port (a #DB after each iteration, as the CPU does on RAM), and
/// raises #AC, breakpoint #DBs and INT1 (one #DB, past the instruction).
/// Dom0's run must end cleanly with every kind of operation counted
/// and Keel's warning about unbacked addresses; the DomU must finish its run
/// or be stopped by Keel as crashed (contained either way); `keel list` and
/// `keel info` must answer; no kernel may complain; all memory comes back.
/// Keel's exit counts for Dom0 must show the VMCALLs and the reflected
/// exceptions (#DB, #AC).
pub fn bochs_hostile() -> TestCase {
    let dom0_summary = hostile_dom0_summary();
    let domu_start = format!(r"\] keel-stress: hostile start seed={HOSTILE_DOMU_SEED} ");
    domu_scenario(
        "bochs-hostile",
        Dom0Modules::hostile_test(),
        // Dom0's boot, two DomU boots and two runs on the one emulated CPU.
        Duration::from_secs(900),
        HOSTILE_STEPS,
        &[
            (
                // Keel's first warnings may come before keel-stress's
                // start line reaches the kernel log (through a shell loop),
                // so only its summary is looked for after them.
                "dom0: hostile created domu-hostile",
                &[
                    r"keel: warning: domain 0: (read|write) of GPA 0x[0-9a-f]+ \(rip=0x[0-9a-f]+\): no memory or device there",
                    &dom0_summary,
                ],
            ),
            (
                // The DomU's own lines, as Dom0 shows them from its console.
                "dom0: hostile witness kept ticking through dom0's run",
                &[r"\] domu: hostile run started", &domu_start],
            ),
        ],
        HOSTILE_FAILURES,
    )
    .forbid_text(HOSTILE_STRESS_FAILURE)
    .expect_regex(r"keel: domain 0 exits:.*\bexception-or-nmi=[1-9][0-9]*.*\bvmcall=[1-9]")
}

/// What Dom0's PCI passthrough checks (`xtask/guest/passthrough-test.sh`)
/// say when a step passes, in this order.
pub const PASSTHROUGH_STEPS: &[&str] = &[
    "dom0: passthrough host function listed",
    "dom0: passthrough create refused while not assignable",
    "dom0: passthrough made assignable",
    "dom0: passthrough unconfined dma refused without pci_unconfined_dma",
    "dom0: passthrough created domu-disk",
    "dom0: passthrough domu read the disk through the host's function",
    "dom0: passthrough domu's e1000 interrupts arrive level-triggered",
    "dom0: passthrough dom0 does not see the function",
    "dom0: passthrough list shows it attached",
    "dom0: passthrough destroyed domu-disk, memory restored",
    "dom0: passthrough assignable again after destroy",
    "dom0: passthrough returned to the host",
    "dom0: passthrough checks done",
];

/// What they say (at the start of a line's text) when a step fails.
pub const PASSTHROUGH_FAILURES: &[&str] = &[
    "dom0: passthrough info failed",
    "dom0: passthrough list failed",
    "dom0: passthrough refusal failed",
    "dom0: passthrough assignable-add failed",
    "dom0: passthrough create failed",
    "dom0: passthrough domu disk failed",
    "dom0: passthrough domu intx failed",
    "dom0: passthrough dom0 isolation failed",
    "dom0: passthrough destroy failed",
    "dom0: passthrough memory check failed",
    "dom0: passthrough assignable-remove failed",
];

/// What the passthrough DomU's /init says when it cannot read the disk.
pub const PASSTHROUGH_DOMU_FAILURE: &str = "domu: disk FAILED";

/// The host function the passthrough DomU gets (Bochs' PIIX3 IDE), and
/// where Keel puts it in the DomU.
pub const PASSTHROUGH_HOST_FUNCTION: &str = "0000:00:01.1";
pub const PASSTHROUGH_GUEST_FUNCTION: &str = "0000:00:04.0";
/// The e1000 NIC the passthrough machine also has (Bochs puts it in the
/// first free slot), whose level-triggered INTx the DomU checks; where the
/// DomU sees it.
pub const PASSTHROUGH_NIC_FUNCTION: &str = "0000:00:02.0";
pub const PASSTHROUGH_GUEST_NIC_FUNCTION: &str = "0000:00:05.0";

/// The DomU's line with sector `sector`'s whole text, as its kernel logs it.
fn passthrough_sector_line(sector: u32) -> String {
    format!(
        r"\] domu: disk sector {sector}: {}",
        regex::escape(&passthrough_sector_text(sector))
    )
}

/// PCI passthrough (`keel.test=passthrough`) on the Dom0 machine with a
/// second disk (`BochsDisk::Passthrough`, on the secondary IDE channel):
/// Bochs' PIIX3 IDE function, not assignable at first, is refused to a
/// DomU; once assignable, refused again without `pci_unconfined_dma` (no
/// IOMMU confines its DMA); then `domu-disk` gets it, Keel warns that its
/// DMA is not confined and shows it to the DomU at 00:04.0 with the host's
/// ids, and the DomU's own ata_piix (PIO, `libata.dma=0`) finds the disk,
/// reads sectors 0 and 1 with their whole known text, and its interrupts
/// arrive (more during the reads). Dom0 sees no such function; the list
/// shows it attached; destroying the DomU gives all memory back and leaves
/// it assignable; `keel pci-assignable-remove` returns it.
pub fn bochs_passthrough() -> TestCase {
    let host = regex::escape(PASSTHROUGH_HOST_FUNCTION);
    let guest = regex::escape(PASSTHROUGH_GUEST_FUNCTION);
    let guest_short = regex::escape(&PASSTHROUGH_GUEST_FUNCTION[5..]);
    let nic = regex::escape(PASSTHROUGH_NIC_FUNCTION);
    let guest_nic_short = regex::escape(&PASSTHROUGH_GUEST_NIC_FUNCTION[5..]);
    let keel_lines = [
        format!(r"keel: warning: domain [0-9]+: {host} assigned WITHOUT DMA confinement"),
        format!(r"keel: domain [0-9]+: {host} assigned as {guest_short} "),
        r"keel: domain [0-9]+: host GSI [0-9]+ \(level, active (high|low)\) -> vector 0x[4-7][0-9a-f] -> guest slot 5 INTx"
            .to_string(),
        format!(r"keel: domain [0-9]+: {nic} assigned as {guest_nic_short} .*INTx level-triggered"),
    ];
    let domu_lines = [
        // Keel, as the DomU moves the e1000's BAR 0 (keel-stress intx).
        format!(
            r"keel: domain [0-9]+: {guest_nic_short} BAR 0 moved by the guest to 0x[0-9a-f]+ \(host 0x[0-9a-f]+, 131072 bytes\)"
        ),
        format!(
            r"\] domu: intx ok: {} irq [0-9]+ \([1-9][0-9]* in /proc/interrupts\): intx {}: 20 interrupts in 10 rounds, .*; BAR 0 moved from 0x[0-9a-f]+ to 0x[0-9a-f]+ and back, its registers followed",
            regex::escape(PASSTHROUGH_GUEST_NIC_FUNCTION),
            regex::escape(PASSTHROUGH_GUEST_NIC_FUNCTION)
        ),
        format!(
            r"\] domu: disk sd[a-z]+: {} sectors, behind PCI function {guest} ",
            PASSTHROUGH_DISK_GEOMETRY.sectors()
        ),
        // The host's ids; the class an IDE controller's, whose programming
        // interface Keel may change (it shows a compatibility-mode
        // controller to the DomU in native mode).
        format!(r"\] domu: disk pci {guest} 8086:7010 class 0101[0-9a-f]{{2}} driver ata_piix"),
        passthrough_sector_line(0),
        passthrough_sector_line(1),
        r"\] domu: disk irqs [1-9][0-9]* \([1-9][0-9]* during the reads".to_string(),
        r"\] domu: disk done".to_string(),
    ];
    let keel_lines: Vec<&str> = keel_lines.iter().map(String::as_str).collect();
    let domu_lines: Vec<&str> = domu_lines.iter().map(String::as_str).collect();
    let mut case = domu_scenario(
        "bochs-passthrough",
        Dom0Modules::passthrough_test(),
        // Dom0's boot, then one DomU boot and its disk reads: 82 s alone
        // (245 s of Dom0's clock); Dom0 waits up to 600 s of its clock for
        // the DomU.
        Duration::from_secs(900),
        PASSTHROUGH_STEPS,
        &[
            // Keel assigns the function when `keel create` boots the DomU.
            (
                "dom0: passthrough unconfined dma refused without pci_unconfined_dma",
                &keel_lines,
            ),
            // The DomU's own lines, as Dom0 shows them from its console.
            ("dom0: passthrough created domu-disk", &domu_lines),
        ],
        PASSTHROUGH_FAILURES,
    )
    .forbid_text(PASSTHROUGH_DOMU_FAILURE);
    case.machine = passthrough_machine();
    case
}

/// The Dom0 machine with the passthrough disk on its secondary IDE channel.
pub fn passthrough_machine() -> Machine {
    dom0_machine()
        .with_bochs_disk(BochsDisk::Passthrough)
        .with_bochs_e1000()
}

/// What Dom0's split block device checks (`xtask/guest/split-blk-test.sh`)
/// say when a step passes, in this order.
pub const SPLIT_BLK_STEPS: &[&str] = &[
    "dom0: split-blk uio modules loaded",
    "dom0: split-blk images ready",
    "dom0: split-blk created domu-split-blk",
    "dom0: split-blk backend running",
    "dom0: split-blk first boot checked both disks",
    "dom0: split-blk backend survived the hostile frontend",
    "dom0: split-blk writes reached split-rw.ext4",
    "dom0: split-blk rebooted domu-split-blk",
    "dom0: split-blk second boot found the write persisted",
    "dom0: split-blk kernels clean",
    "dom0: split-blk backend restarted after kill -9",
    "dom0: split-blk destroyed domu-split-blk, memory restored",
    "dom0: split-blk no backend left",
    "dom0: split-blk read-only image unchanged",
    "dom0: split-blk checks done",
];

/// What they say (at the start of a line's text) when a step fails.
pub const SPLIT_BLK_FAILURES: &[&str] = &[
    "dom0: split-blk info failed",
    "dom0: split-blk uio modules missing",
    "dom0: split-blk images wrong",
    "dom0: split-blk create failed",
    "dom0: split-blk backend not running",
    "dom0: split-blk first boot failed",
    "dom0: split-blk backend did not survive the hostile frontend",
    "dom0: split-blk writes not in the image",
    "dom0: split-blk reboot failed",
    "dom0: split-blk persistence failed",
    "dom0: split-blk kernel problems",
    "dom0: split-blk backend restart failed",
    "dom0: split-blk destroy failed",
    "dom0: split-blk memory leak",
    "dom0: split-blk backend left behind",
    "dom0: split-blk read-only image changed",
];

/// What the split block device DomU's /init says when a check fails.
pub const SPLIT_BLK_DOMU_FAILURE: &str = "domu: split-blk FAILED";

/// What Dom0's /init says when it cannot load a module the virtio backends
/// need (`uio`, `uio_pci_generic`, and `tun` for the network switch).
pub const DOM0_MODULE_FAILURE: &str = "dom0: cannot load module";

/// The split block device DomU's disks as it sees them: sectors of
/// `/dev/vda` (the 16 MiB ext4 image, read-write) and `/dev/vdb` (the
/// read-only image of 1 MiB and 300 bytes: its partial sector is not
/// there). `xtask/src/guest/split_disks.rs` makes the images to match.
pub const SPLIT_BLK_RW_SECTORS: u64 = 32768;
pub const SPLIT_BLK_RO_SECTORS: u64 = 2048;

/// The DomU's lines of one boot of `domu-split-blk` that passes every
/// check, as its kernel logged them (Dom0 shows them from its console):
/// the disks are modern virtio-pci block functions (1af4:1042, class
/// 010000, `docs/virtio.md`) driven by virtio-pci; `first` boots find a
/// fresh image and write to it, later ones find that write.
fn split_blk_domu_lines(first: bool) -> Vec<String> {
    let function =
        r"virtio[0-9]+ behind PCI function 0000:00:[0-9a-f]{2}\.[0-7] 1af4:1042 class 010000 driver virtio-pci";
    let mut lines = vec![
        r"\] domu: split-blk drivers loaded: virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk\r?$".to_string(),
        format!(r"\] domu: split-blk vda: {SPLIT_BLK_RW_SECTORS} sectors, ro=0, {function}"),
        format!(r"\] domu: split-blk vdb: {SPLIT_BLK_RO_SECTORS} sectors, ro=1, {function}"),
        r"\] domu: split-blk mounted vda \(ext4\)".to_string(),
        r"\] domu: split-blk data\.bin matches data\.sha256: [0-9a-f]{64}  data\.bin".to_string(),
    ];
    lines.push(if first {
        r"\] domu: split-blk wrote persist\.txt \(boot-1\), synced".to_string()
    } else {
        r"\] domu: split-blk persisted boot-1\r?$".to_string()
    });
    lines.extend([
        r"\] domu: split-blk big\.bin \(4 MiB\) read back intact after drop_caches: [1-9][0-9]* write requests \([0-9]+ sectors\), [1-9][0-9]* read requests".to_string(),
        r"\] domu: split-blk unmounted vda".to_string(),
        format!(r"\] domu: split-blk vdb is read-only with {SPLIT_BLK_RO_SECTORS} sectors"),
        r"\] domu: split-blk vdb matches ro\.sha256: [0-9a-f]{64}  -".to_string(),
        r"\] domu: split-blk vdb write refused \(.*\), contents unchanged".to_string(),
    ]);
    if first {
        lines.extend([
            r"\] domu: split-blk hostile frontend on vdb \(0000:00:[0-9a-f]{2}\.[0-7]\): 9 scenarios survived, 9 ok"
                .to_string(),
            r"\] domu: split-blk vda still served after the hostile frontend".to_string(),
        ]);
    }
    if !first {
        // Dom0 destroys it with requests in flight.
        lines.push(r"\] domu: split-blk reading vda until destroyed".to_string());
    }
    lines.push(r"\] domu: split-blk done".to_string());
    lines
}

/// Split drivers (`keel.test=split-blk`): `domu-split-blk` gets two
/// paravirtual disks from its config's `disk = [...]`, each an image file in
/// Dom0 served by a backend process `keel create` starts (Dom0's /init loads
/// `uio` and `uio_pci_generic` for them). The DomU's own virtio-blk driver
/// finds `/dev/vda` (read-write ext4, 32768 sectors) and `/dev/vdb`
/// (read-only, 2048 sectors: its image's 300-byte tail is no sector) on
/// modern virtio-pci functions, checks the files and sectors against the
/// sums xtask wrote, writes a token and 4 MiB (read back intact after
/// dropping its page cache), and sees a write to vdb refused. The writes
/// reach Dom0's file (the superblock's mount count and lifetime writes);
/// after `keel reboot` the second boot finds the token; kernels stay clean;
/// destroying the DomU gives all memory back, leaves no backend and the
/// read-only image as it was.
pub fn bochs_split_blk() -> TestCase {
    let first_boot = split_blk_domu_lines(true);
    let second_boot = split_blk_domu_lines(false);
    let first_boot: Vec<&str> = first_boot.iter().map(String::as_str).collect();
    let second_boot: Vec<&str> = second_boot.iter().map(String::as_str).collect();
    domu_scenario(
        "bochs-split-blk",
        Dom0Modules::split_blk_test(),
        // Dom0's boot and two DomU boots (create, then keel reboot) with
        // their disk checks on the one emulated CPU, each DomU boot bounded
        // by 600 s of Dom0's clock in the script. Measured once: 284 s alone
        // (Dom0's clock 886 s), when the DomU still summed its 4 MiB file
        // twice (about 170 s of its clock per boot, cmp now); three times
        // that, like bochs-domu's two Linux boots.
        Duration::from_secs(900),
        SPLIT_BLK_STEPS,
        &[
            // The DomU's own lines, as Dom0 shows them from its console.
            ("dom0: split-blk backend running", &first_boot),
            ("dom0: split-blk rebooted domu-split-blk", &second_boot),
        ],
        SPLIT_BLK_FAILURES,
    )
    .forbid_text(SPLIT_BLK_DOMU_FAILURE)
    .forbid_text(DOM0_MODULE_FAILURE)
}

/// What Dom0's split network device checks (`xtask/guest/split-net-test.sh`)
/// say when a step passes, in this order.
pub const SPLIT_NET_STEPS: &[&str] = &[
    "dom0: split-net modules loaded",
    "dom0: split-net created domu-split-net-a",
    "dom0: split-net created domu-split-net-b",
    "dom0: split-net switch running",
    "dom0: split-net backends running",
    "dom0: split-net both domus done",
    "dom0: split-net transfer intact",
    "dom0: split-net dom0 reached both domus",
    "dom0: split-net virtio console answered",
    "dom0: split-net kernels clean",
    "dom0: split-net destroyed both, memory restored",
    "dom0: split-net no backend left",
    "dom0: split-net checks done",
];

/// What they say (at the start of a line's text) when a step fails.
pub const SPLIT_NET_FAILURES: &[&str] = &[
    "dom0: split-net info failed",
    "dom0: split-net modules missing",
    "dom0: split-net create failed",
    "dom0: split-net keel0 missing",
    "dom0: split-net keel0 setup failed",
    "dom0: split-net switch not running",
    "dom0: split-net backends not running",
    "dom0: split-net domu failed",
    "dom0: split-net transfer broken",
    "dom0: split-net dom0 ping failed",
    "dom0: split-net wrong mac",
    "dom0: split-net virtio console failed",
    "dom0: split-net kernel problems",
    "dom0: split-net destroy failed",
    "dom0: split-net memory leak",
    "dom0: split-net backend left behind",
];

/// What the split network device DomUs' /init says when a step fails.
pub const SPLIT_NET_DOMU_FAILURE: &str = "domu: split-net FAILED";

/// The server DomU's configured MAC (`xtask/guest/domu-split-net-a.toml`);
/// the client's is generated.
pub const SPLIT_NET_SERVER_MAC: &str = "02:4b:45:00:00:0a";

/// Bytes the client DomU sends the server (2 MiB of /dev/urandom).
pub const SPLIT_NET_BYTES: u64 = 2 * 1024 * 1024;

/// The lines of one split-net DomU that passes every step, as its kernel
/// logged them (Dom0 shows them from its console): the NIC is a modern
/// virtio-pci network function (1af4:1041, class 020000, `docs/virtio.md`)
/// driven by virtio-pci, with the server's configured MAC or, for the
/// client, a generated one (locally administered unicast); each pings the
/// other and Dom0 (10.0.0.1 on keel0); the client sends SPLIT_NET_BYTES
/// over TCP, the server says what it received.
fn split_net_domu_lines(server: bool) -> Vec<String> {
    let function =
        r"virtio[0-9]+ behind PCI function 0000:00:[0-9a-f]{2}\.[0-7] 1af4:1041 class 020000 driver virtio-pci";
    let (address, peer, role, mac) = if server {
        (
            r"10\.0\.0\.2",
            r"10\.0\.0\.3",
            "server",
            regex::escape(SPLIT_NET_SERVER_MAC),
        )
    } else {
        (
            r"10\.0\.0\.3",
            r"10\.0\.0\.2",
            "client",
            "[0-9a-f][26ae](:[0-9a-f]{2}){5}".to_string(),
        )
    };
    let mut lines = vec![
        r"\] domu: split-net drivers loaded: virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_console\r?$".to_string(),
        format!(r"\] domu: split-net eth0 mac {mac}, {function}"),
        format!(r"\] domu: split-net eth0 up: {address}/24, the {role}, peer {peer}, mtu 1500\r?$"),
    ];
    if server {
        // Only the server's config has virtio_console = true.
        lines.push(r"\] domu: split-net hvc0 answering: said hello, answers each line\r?$".to_string());
    }
    lines.extend([
        format!(r"\] domu: split-net ping {peer} ok rtt [0-9.]+ ms \(the other DomU, "),
        r"\] domu: split-net ping 10\.0\.0\.1 ok rtt [0-9.]+ ms \(Dom0 on keel0, ".to_string(),
    ]);
    if server {
        lines.extend([
            r"\] domu: split-net listening on port 5001\r?$".to_string(),
            format!(r"\] domu: split-net received {SPLIT_NET_BYTES} bytes sha256 [0-9a-f]{{64}} "),
        ]);
    } else {
        lines.extend([
            format!(
                r"\] domu: split-net sending {SPLIT_NET_BYTES} bytes sha256 [0-9a-f]{{64}} to 10\.0\.0\.2 port 5001\r?$"
            ),
            format!(r"\] domu: split-net sent {SPLIT_NET_BYTES} bytes in [0-9.]+ s "),
        ]);
    }
    lines.push(r"\] domu: split-net done\r?$".to_string());
    lines
}

/// Split drivers for the network (`keel.test=split-net`): two DomUs, each
/// with one paravirtual NIC from its config's `vif = [...]` (the server
/// `domu-split-net-a` with a configured MAC, the client `domu-split-net-b`
/// with a generated one), whose frames a backend process per domain carries
/// to a switch process in Dom0 (`keel switch`, a learning Ethernet switch)
/// that also gives Dom0 a port, the TAP interface keel0 (Dom0's /init loads
/// `tun` for it next to `uio` and `uio_pci_generic`). Dom0 addresses keel0
/// (10.0.0.1/24). Each DomU's own virtio-net driver finds its NIC on a modern
/// virtio-pci function, brings it up, pings the other DomU and Dom0; the
/// client sends 2 MiB over TCP (busybox nc) and the server receives them:
/// the size and sha256 both say must match. Dom0 pings both through keel0
/// and finds their MACs; it talks to the server's virtio console (`keel
/// console --hvc`: the DomU's hello kept by the backend, then a live
/// answer to a typed line); kernels stay clean; destroying both gives all
/// memory back and leaves no backend (the switch may stay).
pub fn bochs_split_net() -> TestCase {
    let server = split_net_domu_lines(true);
    let client = split_net_domu_lines(false);
    let domus: Vec<&str> = server.iter().chain(&client).map(String::as_str).collect();
    domu_scenario(
        "bochs-split-net",
        Dom0Modules::split_net_test(),
        // Dom0's boot, then two DomU boots at once with their pings and
        // transfer on the one emulated CPU, bounded by 1500 s of Dom0's
        // clock in the script (its clock ran about three times as fast as
        // the wall in bochs-split-blk). Not measured yet: bochs-split-blk's
        // time-out and half as much again.
        Duration::from_secs(1350),
        SPLIT_NET_STEPS,
        &[
            // The DomUs' own lines, as Dom0 shows them from their consoles
            // once both are done: the server's, then the client's.
            ("dom0: split-net backends running", &domus),
        ],
        SPLIT_NET_FAILURES,
    )
    .forbid_text(SPLIT_NET_DOMU_FAILURE)
    .forbid_text(DOM0_MODULE_FAILURE)
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

/// VT-d on QEMU (no VMX there: the IOMMU work runs before that check):
/// Keel enables remapping with every device blocked, then `iommu=selftest`
/// gives QEMU's `edu` device a domain of two pages: a DMA through them
/// moves the exact bytes, a DMA to an unmapped address (a canary page's
/// own) is blocked and recorded with edu's source id, and edu's MSI
/// arrives through the interrupt remapping table. Then the host half of
/// MSI-X forwarding on the machine's e1000e (`hypervisor/src/iommu/
/// selftest_msix.rs`): its table programmed as passthrough programs an
/// assigned function's, entry 0 arrives through a remapping entry and,
/// masked, does not (the device holds it pending). Last, the NVMe
/// controller at 00:04.0 is reset as passthrough resets an assigned
/// function (`hypervisor/src/iommu/selftest_reset.rs`): its PCI Express
/// FLR clears a register the test set and MSI-X, and the BARs come back;
/// moved to 5 GiB, its BAR 0 is mapped by Keel on demand
/// (`selftest_high_mmio.rs`): its version register reads there and its
/// MSI-X table is found and masked there.
fn qemu_iommu() -> TestCase {
    TestCase::new(
        "qemu-iommu",
        Machine::qemu_iommu(),
        "iommu=selftest exit=emulator",
        Duration::from_secs(120),
    )
    .expect_regex(r"keel: iommu: DMAR: 1 remapping unit\(s\), host address width [0-9]+ bits, interrupt remapping supported")
    .expect_regex(r"keel: iommu: unit at 0x[0-9a-f]+ .*: translation on, every device blocked; queued invalidation on, interrupt remapping on")
    .expect_regex(r"keel: iommu: unit at 0x[0-9a-f]+: fault event interrupt on vector 0x7f")
    .expect_regex(r"keel: iommu selftest: edu at 00:0[0-9a-f]\.0")
    .expect_text("keel: iommu selftest: mapped DMA ok: 2048 bytes through the device and back")
    .expect_text("keel: iommu: fault event interrupt on vector 0x7f")
    .expect_regex(r"keel: (warning: )?iommu: unit 0x[0-9a-f]+: DMA fault: .*00:0[0-9a-f]\.0")
    .expect_text("keel: iommu selftest: unmapped DMA blocked and recorded with edu's source id")
    .expect_regex(r"keel: iommu selftest: edu's MSI arrived through remapping entry 0 at vector 0x40")
    .expect_regex(
        r"keel: iommu selftest: edu's INTx arrived through I/O APIC input (1[6-9]|2[0-3]) and remapping entry [1-9][0-9]* at vector 0x4[1-8]",
    )
    .expect_text("keel: iommu selftest: e1000e at 00:02.0, 5 MSI-X entries in BAR 3")
    .expect_regex(
        r"keel: iommu selftest: e1000e's MSI-X entry 0 arrived through remapping entry [1-9][0-9]* at vector 0x49; masked, it did not \(its pending bit set\)",
    )
    .expect_regex(r"keel: iommu selftest: the NVMe controller at 0000:00:04\.0 reset by its PCI Express FLR: INTMS back to 0, MSI-X off, BARs restored")
    .expect_regex(r"keel: iommu selftest: the NVMe controller's BAR 0 moved to 0x140000000: Keel mapped it, read its version 0x1[0-9a-f]{4} and masked its [1-9][0-9]* MSI-X entries there")
    .expect_text("keel: iommu selftest passed")
    .expect_text("keel: VMX not supported")
    .expect_exit_status(qemu_status(QEMU_EXIT_SUCCESS))
    .forbid_text("keel: iommu selftest FAILED")
    .forbid_text("KEEL PANIC")
}

/// The self-test with a firmware DMAR that gives edu a Reserved Memory
/// Region (`ExtraAcpiTable::RmrrDmar`, taken over QEMU's own DMAR with
/// `iommu-dmar=last`): at boot edu is put in the unit's identity domain,
/// where a DMA within the region works and one outside faults (through the
/// fault event interrupt); confining it with RAM over the region is
/// refused; the region stays mapped in its assigned domain and after.
fn qemu_iommu_rmrr() -> TestCase {
    let Machine::Qemu(machine) = Machine::qemu_iommu() else {
        unreachable!("qemu_iommu is QEMU")
    };
    let machine = Machine::Qemu(QemuMachine {
        extra_acpi_table: Some(ExtraAcpiTable::RmrrDmar),
        ..machine
    });
    let rmrr = r"RMRR at DMAR offset 0x[0-9a-f]+ \(0x80000-0x81fff\)";
    TestCase::new(
        "qemu-iommu-rmrr",
        machine,
        "iommu=selftest iommu-dmar=last exit=emulator",
        Duration::from_secs(120),
    )
    .expect_regex(r"keel: iommu: DMAR \(the last the firmware lists, iommu-dmar=last\): 1 remapping unit\(s\), .*, 1 reserved memory region\(s\)")
    .expect_regex(r"keel: iommu: unit at 0xfed90000 \(segment 0, every other device, 1 device scope\(s\)\).*: translation on, every device blocked")
    .expect_regex(&format!(r"keel: iommu: 00:03\.0: {rmrr} identity-mapped \(domain [0-9]+\) for the firmware's DMA; the device is otherwise blocked"))
    .expect_text("keel: iommu selftest: edu at 00:03.0")
    .expect_regex(&format!(r"keel: iommu selftest: DMA within edu's {rmrr} ok \(blocked but for it\)"))
    .expect_text("keel: iommu: fault event interrupt on vector 0x7f")
    .expect_regex(r"keel: (warning: )?iommu: unit 0xfed90000: DMA fault: DMA write from 00:03\.0 at 0x[0-9a-f]+")
    .expect_text("keel: iommu selftest: outside its RMRR, edu's DMA is blocked and recorded with edu's source id")
    .expect_regex(&format!(r"keel: iommu selftest: confining edu with RAM over its RMRR refused: the device needs its {rmrr} identity-mapped, but the domain's RAM is at guest-physical 0x80000-0x80fff"))
    .expect_regex(&format!(r"keel: iommu: 00:03\.0: {rmrr} identity-mapped into domain 1 too"))
    .expect_text("keel: iommu selftest: mapped DMA ok: 2048 bytes through the device and back")
    .expect_text("keel: iommu selftest: unmapped DMA blocked and recorded with edu's source id")
    .expect_regex(&format!(r"keel: iommu selftest: DMA within edu's {rmrr} ok \(in its assigned domain\)"))
    .expect_text("keel: iommu selftest: edu's MSI arrived through remapping entry 0 at vector 0x40")
    .expect_regex(&format!(r"keel: iommu selftest: DMA within edu's {rmrr} ok \(back in its identity domain after release\)"))
    .expect_regex(r"keel: iommu selftest: e1000e's MSI-X entry 0 arrived through remapping entry [1-9][0-9]* at vector 0x49; masked, it did not")
    .expect_regex(r"keel: iommu selftest: the NVMe controller at 0000:00:04\.0 reset by its PCI Express FLR: INTMS back to 0, MSI-X off, BARs restored")
    .expect_regex(r"keel: iommu selftest: the NVMe controller's BAR 0 moved to 0x140000000: Keel mapped it, read its version 0x1[0-9a-f]{4} and masked its [1-9][0-9]* MSI-X entries there")
    .expect_text("keel: iommu selftest passed")
    .expect_exit_status(qemu_status(QEMU_EXIT_SUCCESS))
    .forbid_text("keel: iommu selftest FAILED")
    .forbid_text("KEEL PANIC")
}

/// A malformed DMAR (a device scope claiming more bytes than it has, the
/// checksum right) passed by the firmware: Keel refuses it with the reason,
/// enables nothing, and boots on.
fn qemu_iommu_bad_dmar() -> TestCase {
    let Machine::Qemu(machine) = Machine::qemu_tcg() else {
        unreachable!("qemu_tcg is QEMU")
    };
    let machine = Machine::Qemu(QemuMachine {
        extra_acpi_table: Some(ExtraAcpiTable::MalformedDmar),
        ..machine
    });
    TestCase::new("qemu-iommu-bad-dmar", machine, "exit=emulator", Duration::from_secs(60))
        .expect_regex(r"keel: (warning: )?iommu: DMAR refused: .+; continuing without DMA remapping")
        .expect_text("keel: VMX not supported")
        .expect_exit_status(qemu_status(QEMU_EXIT_SUCCESS))
        .forbid_text("keel: iommu: unit at")
        .forbid_text("KEEL PANIC")
}

/// What Dom0's PCI passthrough checks with VT-d
/// (`xtask/guest/passthrough-kvm-test.sh`) say when a step passes, in this
/// order.
pub const PASSTHROUGH_KVM_STEPS: &[&str] = &[
    "dom0: passthrough-kvm nvme function listed, dma confined",
    "dom0: passthrough-kvm made assignable",
    "dom0: passthrough-kvm created domu-nvme",
    "dom0: passthrough-kvm domu read the namespace through the host's function",
    "dom0: passthrough-kvm dom0 does not see the function",
    "dom0: passthrough-kvm list shows it attached",
    "dom0: passthrough-kvm destroyed domu-nvme, memory restored",
    "dom0: passthrough-kvm assignable again after destroy",
    "dom0: passthrough-kvm returned to the host",
    "dom0: passthrough-kvm checks done",
];

/// What they say (at the start of a line's text) when a step fails.
pub const PASSTHROUGH_KVM_FAILURES: &[&str] = &[
    "dom0: passthrough-kvm info failed",
    "dom0: passthrough-kvm list failed",
    "dom0: passthrough-kvm assignable-add failed",
    "dom0: passthrough-kvm create failed",
    "dom0: passthrough-kvm domu nvme failed",
    "dom0: passthrough-kvm dom0 isolation failed",
    "dom0: passthrough-kvm destroy failed",
    "dom0: passthrough-kvm memory check failed",
    "dom0: passthrough-kvm assignable-remove failed",
];

/// What the DomU's /init (`keel.domu=nvme`) says when it cannot read the
/// namespace.
pub const PASSTHROUGH_KVM_DOMU_FAILURE: &str = "domu: nvme FAILED";

/// Tells Dom0's /init to run the PCI passthrough checks with VT-d
/// (`/usr/lib/keel/passthrough-kvm-test.sh`) and power off.
pub const PASSTHROUGH_KVM_TEST_FLAG: &str = "keel.test=passthrough-kvm";

/// The NVMe controller of the KVM machine (`emulator::qemu::NVME_SLOT`),
/// what it is (QEMU's nvme: Red Hat's 1b36:0010, class 010802, NVM Express),
/// and where Keel puts it in the DomU (the first passthrough slot).
pub const KVM_PASSTHROUGH_HOST_FUNCTION: &str = "0000:00:03.0";
pub const KVM_PASSTHROUGH_IDS: &str = "1b36:0010";
pub const KVM_PASSTHROUGH_CLASS: &str = "010802";
pub const KVM_PASSTHROUGH_GUEST_FUNCTION: &str = "0000:00:04.0";

/// The host GSI of the NVMe controller's INTA on q35
/// (`emulator::qemu::q35_intx_gsi`: slot 3, PIRQ H, GSI 23), which Dom0
/// gives `keel pci-assignable-add --intx-gsi`.
pub fn kvm_passthrough_intx_gsi() -> u32 {
    use crate::emulator::qemu::{q35_intx_gsi, NVME_INTX_PIN, NVME_SLOT};
    q35_intx_gsi(NVME_SLOT, NVME_INTX_PIN).expect("the NVMe slot is one q35 routes through PIRQ E-H")
}

/// The DomU's line with sector `sector`'s whole text read from the NVMe
/// namespace, as its kernel logs it.
fn kvm_passthrough_sector_line(sector: u32) -> String {
    format!(
        r"\] domu: nvme sector {sector}: {}",
        regex::escape(&passthrough_sector_text(sector))
    )
}

/// PCI passthrough with the IOMMU on (`keel.test=passthrough-kvm`), where
/// the host offers nested VMX under KVM (skipped elsewhere, see
/// `TestCase::requires_nested_kvm`): QEMU with KVM as a q35 PC with an
/// Intel IOMMU and an NVMe controller (`Machine::qemu_kvm_passthrough`).
/// Keel enables VT-d; the list shows the controller `dma confined`; Dom0
/// makes it assignable with its INTx at host GSI 23 (q35's PIRQ H) and
/// creates `domu-nvme`, whose config lists it without
/// `pci_unconfined_dma`, so Keel must confine its DMA with an IOMMU domain
/// (`... assigned as 00:04.0 (... DMA confined by the IOMMU)`, no
/// unconfined warning). The DomU's own nvme driver (built into Debian's
/// cloud kernel) finds the namespace behind 00:04.0 with the host's ids,
/// reads sectors 0 and 1 with their whole known text (the controller's
/// DMA into the DomU's RAM, through the IOMMU) on MSI-X interrupts: the
/// controller has MSI-X (and INTx, wired too but left unused by the
/// driver), so Keel traps its table and gives each entry the driver
/// unmasks a host vector and an interrupt remapping entry of its own
/// (`... MSI-X entry 0 -> vector ..., remapping entry N -> guest slot 4`),
/// and forwards what arrives; no DMA fault is recorded. Dom0
/// sees no such function; destroying the DomU gives all memory back, and
/// the function goes back to the host.
pub fn kvm_passthrough() -> TestCase {
    let host = regex::escape(KVM_PASSTHROUGH_HOST_FUNCTION);
    let guest = regex::escape(KVM_PASSTHROUGH_GUEST_FUNCTION);
    let guest_short = regex::escape(&KVM_PASSTHROUGH_GUEST_FUNCTION[5..]);
    let gsi = kvm_passthrough_intx_gsi();
    let keel_lines = [
        // Keel routes the host input to the DomU's slot 4 INTx, then says
        // what it assigned (hypervisor/src/passthrough.rs, `route_intx` and
        // `wire`); a GSI of 16 and up is level-triggered, active low; the
        // unit remaps interrupts, so the I/O APIC entry names an IRTE.
        format!(
            r"keel: domain [0-9]+: host GSI {gsi} \(level, active low, remapping entry [1-9][0-9]*\) -> vector 0x[4-7][0-9a-f] -> guest slot 4 INTx, GSI [0-9]+"
        ),
        format!(
            r"keel: domain [0-9]+: {host} assigned as {guest_short} \([0-9]+ I/O range\(s\), [1-9][0-9]* memory BAR\(s\), INTx level-triggered, host GSI {gsi} -> guest GSI [0-9]+, MSI-X \([1-9][0-9]* entries, up to 8 forwarded\), DMA confined by the IOMMU\)"
        ),
    ];
    let domu_lines = [
        // The driver unmasks its admin queue's entry: Keel gives it a host
        // vector and remapping entry (hypervisor/src/passthrough/msix.rs),
        // and forwards the controller's first interrupt (its admin
        // commands at probe).
        format!(
            r"keel: domain [0-9]+: {host} MSI-X entry 0 -> vector 0x[4-7][0-9a-f], remapping entry [1-9][0-9]* -> guest slot 4"
        ),
        r"keel: domain [0-9]+: MSI vector 0x[4-7][0-9a-f] \(MSI-X entry [0-9]+\) interrupt 1 forwarded to guest slot 4"
            .to_string(),
        format!(r"\] domu: nvme nvme0n1: 2048 sectors, behind PCI function {guest} "),
        format!(
            r"\] domu: nvme pci {guest} {} class {} driver nvme",
            regex::escape(KVM_PASSTHROUGH_IDS),
            KVM_PASSTHROUGH_CLASS
        ),
        kvm_passthrough_sector_line(0),
        kvm_passthrough_sector_line(1),
        r"\] domu: nvme irqs [1-9][0-9]* \([1-9][0-9]* during the reads".to_string(),
        r"\] domu: nvme done".to_string(),
    ];
    let unwire_lines =
        [r"keel: domain [0-9]+: MSI-X vector 0x[4-7][0-9a-f]: [1-9][0-9]* interrupt\(s\) arrived for it".to_string()];
    let keel_lines: Vec<&str> = keel_lines.iter().map(String::as_str).collect();
    let domu_lines: Vec<&str> = domu_lines.iter().map(String::as_str).collect();
    let unwire_lines: Vec<&str> = unwire_lines.iter().map(String::as_str).collect();
    let mut case = domu_scenario(
        "kvm-passthrough",
        Dom0Modules::with_linux_cmdline(&format!("{} {PASSTHROUGH_KVM_TEST_FLAG}", crate::dom0::LINUX_CMDLINE)),
        // Under KVM Dom0 and the DomU boot in seconds; Dom0 waits up to
        // 600 s of its clock for the DomU.
        Duration::from_secs(600),
        PASSTHROUGH_KVM_STEPS,
        &[
            // Keel assigns the function when `keel create` boots the DomU.
            ("dom0: passthrough-kvm made assignable", &keel_lines),
            // The DomU's own lines, as Dom0 shows them from its console.
            ("dom0: passthrough-kvm created domu-nvme", &domu_lines),
            // Keel undoes the routing when the DomU is destroyed.
            ("dom0: passthrough-kvm list shows it attached", &unwire_lines),
        ],
        PASSTHROUGH_KVM_FAILURES,
    )
    .forbid_text(PASSTHROUGH_KVM_DOMU_FAILURE)
    // Keel must confine it: no forced, unconfined assignment ...
    .forbid_text("assigned WITHOUT DMA confinement")
    // ... and the device's own DMA (into the DomU's RAM) must not fault.
    .forbid_text("DMA fault: ")
    .requires_nested_kvm();
    // VT-d is on before anything else (hypervisor/src/iommu/mod.rs, `init`
    // and `bring_up`): the same lines as qemu-iommu's.
    let iommu = [
        crate::marker::Marker::regex(
            r"keel: iommu: DMAR: 1 remapping unit\(s\), host address width [0-9]+ bits, interrupt remapping supported",
        ),
        crate::marker::Marker::regex(
            r"keel: iommu: unit at 0x[0-9a-f]+ .*: translation on, every device blocked; queued invalidation on, interrupt remapping on",
        ),
    ];
    case.expected.splice(0..0, iommu);
    case.machine = Machine::qemu_kvm_passthrough().with_memory(DOM0_MEMORY_MIB);
    case
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
    fn the_domu_test_runs_the_domu_checks_on_the_dom0_machine() {
        let case = bochs_domu();
        assert_eq!(case.dom0, Some(Dom0Modules::domu_test()));
        assert_eq!(case.machine, dom0_machine());
        assert_eq!(case.timeout, Duration::from_secs(900));
        assert_eq!(case.cmdline, "guest=dom0 exit=emulator");
    }

    #[test]
    fn the_longest_tests_start_first() {
        let names: Vec<&str> = all_boot_tests().iter().map(|case| case.name).collect();
        assert_eq!(
            names,
            [
                "bochs-split-net",
                "bochs-domu-faults",
                "bochs-domu",
                "bochs-split-blk",
                "bochs-hostile",
                "bochs-passthrough",
                "bochs-domu-sched",
                "bochs-dom0",
                "bochs-dom0-reboot",
                "bochs-dom0-shell",
                "kvm-passthrough",
                "bochs-selftest",
                "bochs-bench-guest",
                "bochs-dom0-bad-kernel",
                "bochs-dom0-bad-boot-flag",
                "qemu-iommu",
                "qemu-iommu-rmrr",
                "qemu-iommu-bad-dmar",
                "qemu-no-vmx",
            ]
        );
        // No time-out grows along the list: a longer one would have come earlier.
        let timeouts: Vec<Duration> = all_boot_tests().iter().map(|case| case.timeout).collect();
        assert!(timeouts.windows(2).all(|pair| pair[0] >= pair[1]), "{timeouts:?}");
    }

    #[test]
    fn no_domu_marker_hides_in_another() {
        let scenarios: [(&[&str], &[&str]); 7] = [
            (DOMU_STEPS, DOMU_FAILURES),
            (DOMU_SCHED_STEPS, DOMU_SCHED_FAILURES),
            (DOMU_FAULTS_STEPS, DOMU_FAULTS_FAILURES),
            (HOSTILE_STEPS, HOSTILE_FAILURES),
            (PASSTHROUGH_STEPS, PASSTHROUGH_FAILURES),
            (SPLIT_BLK_STEPS, SPLIT_BLK_FAILURES),
            (SPLIT_NET_STEPS, SPLIT_NET_FAILURES),
        ];
        for (steps, failures) in scenarios {
            for step in steps {
                for failure in failures {
                    assert!(!step.contains(failure) && !failure.contains(step), "{step} / {failure}");
                }
            }
        }
        // Each scenario's lines carry its own prefix, so none passes for another's.
        for (steps, failures) in &scenarios[1..] {
            for line in steps.iter().chain(failures.iter()) {
                for other in DOMU_STEPS.iter().chain(DOMU_FAILURES.iter()) {
                    assert!(!line.contains(other), "{line} / {other}");
                }
            }
        }
    }

    #[test]
    fn the_domu_scenarios_run_on_the_dom0_machine_with_their_flags() {
        for (case, modules) in [
            (bochs_domu_sched(), Dom0Modules::domu_sched_test()),
            (bochs_domu_faults(), Dom0Modules::domu_faults_test()),
        ] {
            assert!(case.name.contains("domu"), "{}", case.name);
            assert_eq!(case.dom0, Some(modules));
            assert_eq!(case.machine, dom0_machine());
            assert_eq!(case.cmdline, "guest=dom0 exit=emulator");
            assert!(case.console_input.is_empty());
        }
    }

    #[test]
    fn the_hostile_test_runs_on_the_dom0_machine_with_its_flag() {
        let case = bochs_hostile();
        assert!(case.name.contains("hostile"), "{}", case.name);
        assert_eq!(case.dom0, Some(Dom0Modules::hostile_test()));
        assert_eq!(case.machine, dom0_machine());
        assert_eq!(case.cmdline, "guest=dom0 exit=emulator");
        assert!(case.console_input.is_empty());
    }

    const HOSTILE_LOG: &str = "\
keel: VMX root mode entered (VMCS revision 0x2b)
keel: dom0: loading Linux (13857 KiB kernel, 18000 KiB initrd, 256 MiB RAM): console=ttyS0 keel.test=hostile
[   58.300000] dom0: userspace started
[   59.700000] dom0: hostile free memory before: 758951936 bytes
keel: domain 1 (domu-tick): created, 96 MiB
[  150.000000] dom0: hostile witness ticking: domu-tick said 'domu: tick 1'
keel: domain 2 (domu-hostile): created, 96 MiB
[  151.000000] dom0: hostile created domu-hostile (id 2)
keel: warning: domain 0: read of GPA 0x10000000 (rip=0x4a2b3c): no memory or device there; reads all ones (1 so far)
[  151.500000] keel-stress: hostile start seed=1 seconds=60 rounds=- skip=none phys_bits=39 holes=0x10000000-0xbfffffff acpi_ports=[(600, 603)] ports=in/out string_ports=yes
[  152.500000] keel-stress: hostile round 1: cpuid=1800 msr=40 port=48 mem=64 vmcall=16 tf_steps=28 ac_traps=4 db_traps=0 failures=0
[  211.600000] keel-stress: hostile done seed=1 rounds=40 cpuid=2400 msr_read=480 msr_write=330 msr_gp=700 port_read=640 port_write=320 mem_read=1280 mem_write=640 vmcall=320 tf_steps=560 ac_traps=80 db_traps=480 msr_refused=40 mem_unmappable=0 mem_pread=0 mem_pread_refused=40 vmcall_error=320 vmcall_fault=0 string_mmio=120 string_io=120 tf_string_steps=640 int1_traps=40 breakpoints=ok failures=0
[  211.700000] keel-stress: exit status 0
[  211.800000] dom0: hostile dom0 run survived: keel-stress status 0 after 60.20 s: seed=1 rounds=40
[  218.000000] dom0: hostile witness kept ticking through dom0's run: tick 20 -> 80 in 66.00 s
--- [300.0] domu-hostile's console, its own report lines ---
[   95.000000] domu: hostile run started (keel.domu=hostile: keel-stress hostile --seed 2 --seconds 45)
[   95.100000] keel-stress: hostile start seed=2 seconds=45 rounds=- skip=none phys_bits=39 holes=0x6000000-0xbfffffff acpi_ports=[(600, 603)] ports=in/out string_ports=yes
[  140.000000] keel-stress: hostile done seed=2 rounds=30 cpuid=2000 failures=0
[  140.100000] domu: hostile done (keel-stress status 0)
---
[  300.500000] dom0: hostile domu run contained: domu-hostile finished its run and is blocked: hostile done seed=2
[  307.000000] dom0: hostile witness kept ticking through domu-hostile's run: tick 80 -> 160 in 89.00 s
[  308.000000] dom0: hostile keel list and info answer: Domain-0 domu-tick domu-hostile listed
[  309.000000] dom0: hostile kernels clean: dom0, domu-tick and domu-hostile (blocked)
keel: domain 2: destroyed
keel: domain 1: destroyed
[  310.000000] dom0: hostile destroyed every domu, memory restored
[  310.500000] dom0: hostile checks done
keel: dom0 powered off
keel: domain 0 stopped: powered off
keel: domain 0 exits: exception-or-nmi=700 interrupt-window=3845 cpuid=13328 hlt=26512 io=44656 rdmsr=316 wrmsr=73244 vmcall=320 ept-violation=74503 total=293926
keel: dom0 finished
";

    #[test]
    fn the_hostile_test_accepts_its_documented_output_and_needs_every_figure() {
        let case = bochs_hostile();
        assert_eq!(judge(&case, &outcome(HOSTILE_LOG, Some(1))), vec![]);
        // Keel stopping the hostile DomU is contained too.
        let stopped = HOSTILE_LOG.replace(
            "finished its run and is blocked: hostile done seed=2",
            "Keel stopped domu-hostile (crashed, on_crash=preserve) after round 3: domain 2 stopped: triple fault",
        );
        assert_eq!(judge(&case, &outcome(&stopped, Some(1))), vec![]);
        for (what, from, to) in [
            (
                "a failed check",
                "[  152.500000] keel-stress: hostile round 1",
                "keel-stress: hostile FAILED: read 0x4c45454b at 0x10000000",
            ),
            ("no single-step trap", " tf_steps=560 ", " tf_steps=0 "),
            ("no #AC", " ac_traps=80 ", " ac_traps=0 "),
            ("no VMCALL", " vmcall=320 tf_steps", " vmcall=0 tf_steps"),
            ("no MSR #GP", " msr_gp=700 ", " msr_gp=0 "),
            ("no loads outside RAM", " mem_read=1280 ", " mem_read=0 "),
            ("no string MMIO", " string_mmio=120 ", " string_mmio=0 "),
            ("no string port I/O", " string_io=120 ", " string_io=0 "),
            ("no stepped REP", " tf_string_steps=640 ", " tf_string_steps=0 "),
            ("no INT1", " int1_traps=40 ", " int1_traps=0 "),
            ("no breakpoint #DB", " db_traps=480 ", " db_traps=0 "),
            ("no breakpoints", " breakpoints=ok ", " breakpoints=never-fired "),
            ("a failure counted", " failures=0\n[  211.7", " failures=2\n[  211.7"),
            (
                "Keel's warning",
                "keel: warning: domain 0: read of GPA",
                "keel: warning: domain 3: read of GPA",
            ),
            ("Dom0's own run", "hostile done seed=1 ", "hostile done seed=5 "),
            ("the DomU's run", "hostile start seed=2 ", "hostile start seed=5 "),
            ("reflected exceptions", "exception-or-nmi=700 ", ""),
            ("user VMCALL exits", " vmcall=320 ept", " ept"),
        ] {
            assert!(HOSTILE_LOG.contains(from), "{what}: {from}");
            let broken = HOSTILE_LOG.replace(from, to);
            assert!(!judge(&case, &outcome(&broken, Some(1))).is_empty(), "{what}");
        }
    }

    #[test]
    fn the_passthrough_test_runs_on_the_dom0_machine_with_the_disk() {
        let case = bochs_passthrough();
        assert_eq!(case.dom0, Some(Dom0Modules::passthrough_test()));
        assert_eq!(case.machine, passthrough_machine());
        let Machine::Bochs(machine) = &case.machine else {
            panic!("passthrough runs in Bochs");
        };
        assert_eq!(machine.disk, Some(BochsDisk::Passthrough));
        assert!(machine.e1000, "the e1000 whose INTx the DomU checks");
        assert_eq!(
            Machine::Bochs(crate::machine::BochsMachine {
                disk: None,
                e1000: false,
                ..machine.clone()
            }),
            dom0_machine()
        );
        assert_eq!(case.cmdline, "guest=dom0 exit=emulator");
        assert!(case.console_input.is_empty());
        // No other test has the disk.
        for other in all_boot_tests() {
            if other.name != case.name {
                assert_ne!(other.machine, case.machine, "{}", other.name);
            }
        }
    }

    /// What bochs-passthrough's serial log shows when it passes (abridged).
    fn passthrough_log() -> String {
        format!(
            "\
keel: VMX root mode entered (VMCS revision 0x2b)
keel: dom0: loading Linux (13857 KiB kernel, 18528 KiB initrd, 256 MiB RAM): console=ttyS0 cryptomgr.notests keel.test=passthrough
[   58.300000] dom0: userspace started
[   59.000000] dom0: passthrough free memory before: 758951936 bytes
dom0# keel pci-assignable-list
Address       Device     Class   State           DMA
0000:00:00.0  8086:1237  060000  host bridge     dma NOT confined
0000:00:01.1  8086:7010  010180  not assignable  dma NOT confined
[   59.500000] dom0: passthrough host function listed: 0000:00:01.1 8086:7010 010180 not assignable dma NOT confined
dom0# keel create /etc/keel/domu-disk.toml
keel: domain domu-disk (id 1): cannot attach PCI device 0000:00:01.1: not permitted
keel: destroyed the half-built domain domu-disk (id 1)
[   60.000000] dom0: passthrough create refused while not assignable: keel: domain domu-disk (id 1): cannot attach PCI device 0000:00:01.1: not permitted
dom0# keel pci-assignable-add 0000:00:01.1
[   60.500000] dom0: passthrough made assignable: 0000:00:01.1 8086:7010 010180 assignable dma NOT confined
dom0# keel create /etc/keel/domu-disk-confined.toml
keel: domain domu-disk-confined (id 2): cannot attach PCI device 0000:00:01.1: no IOMMU confines the device's DMA; set pci_unconfined_dma = true in the config to force it
[   61.000000] dom0: passthrough unconfined dma refused without pci_unconfined_dma: keel: domain domu-disk-confined (id 2): cannot attach PCI device 0000:00:01.1: no IOMMU confines the device's DMA
dom0# keel create /etc/keel/domu-disk.toml
keel: warning: domain 3: 0000:00:01.1 assigned WITHOUT DMA confinement (no IOMMU covers it): its DMA can read and write any host memory
keel: domain 3: 0000:00:01.1 assigned as 00:04.0 (5 I/O range(s), 0 memory BAR(s), IRQs [14, 15] as edges, DMA NOT confined)
keel: warning: domain 3: 0000:00:02.0 assigned WITHOUT DMA confinement (no IOMMU covers it): its DMA can read and write any host memory
keel: domain 3: host GSI 9 (level, active high) -> vector 0x43 -> guest slot 5 INTx, GSI 17
keel: domain 3: 0000:00:02.0 assigned as 00:05.0 (1 I/O range(s), 1 memory BAR(s), INTx level-triggered, host GSI 9 -> guest GSI 17, DMA NOT confined)
keel: domain 3 (domu-disk): created, 96 MiB
keel: warning: 0000:00:01.1 is attached to domu-disk (id 3) with pci_unconfined_dma: no IOMMU confines its DMA
[   62.000000] dom0: passthrough created domu-disk (id 3)
keel: domain 3: 00:05.0 BAR 0 moved by the guest to 0xfdbc0000 (host 0xfebc0000, 131072 bytes)
[  150.000000] domu-disk: done after 88.00 s
--- domu-disk's console: the controller and its disk ---
[   25.000000] scsi host1: ata_piix
[   25.100000] ata2: PATA max MWDMA2 cmd 0x170 ctl 0x376 bmdma 0xc048 irq 15
[   25.900000] sd 1:0:0:0: [sda] 2016 512-byte logical blocks: (1.03 MB/1008 KiB)
--- [150.1] domu-disk's console, its own report lines ---
[   20.000000] domu: userspace started
[   22.000000] domu: intx ok: 0000:00:05.0 irq 28 (20 in /proc/interrupts): intx 0000:00:05.0: 20 interrupts in 10 rounds, each cause re-fired while still asserted, none once cleared (1084 ms); BAR 0 moved from 0xfebc0000 to 0xfdbc0000 and back, its registers followed (STATUS 0x80080783)
[   24.000000] domu: disk drivers loaded: scsi_common scsi_mod libata ata_piix sd_mod (libata dma=0 )
[   26.000000] domu: disk sda: 2016 sectors, behind PCI function 0000:00:04.0 (/sys/devices/pci0000:00/0000:00:04.0/ata2/host1/target1:0:0/1:0:0:0/block/sda)
[   26.100000] domu: disk pci 0000:00:04.0 8086:7010 class 010185 driver ata_piix
[   26.200000] domu: disk sector 0: {sector0}
[   26.300000] domu: disk sector 1: {sector1}
[   26.400000] domu: disk irqs 21 (4 during the reads; irq 14: 16, irq 15: 5)
[   26.500000] domu: disk done
---
[  151.000000] dom0: passthrough domu read the disk through the host's function: pci 0000:00:04.0 8086:7010 class 010185 driver ata_piix; sectors 0 and 1 hold their text; irqs 21 (4 during the reads; irq 14: 16, irq 15: 5)
[  151.500000] dom0: passthrough domu's e1000 interrupts arrive level-triggered: 0000:00:05.0 irq 28 (20 in /proc/interrupts): intx 0000:00:05.0: 20 interrupts in 10 rounds, each cause re-fired while still asserted, none once cleared (1084 ms); BAR 0 moved from 0xfebc0000 to 0xfdbc0000 and back, its registers followed (STATUS 0x80080783)
[  152.000000] dom0: passthrough dom0 does not see the function: 3 PCI functions, none 8086:7010
dom0# keel pci-assignable-list
[  153.000000] dom0: passthrough list shows it attached: 0000:00:01.1 8086:7010 010180 attached to domu-disk (id 3) dma NOT confined
dom0# keel destroy domu-disk
keel: domain 3: destroyed
[  154.000000] dom0: passthrough destroyed domu-disk, memory restored
[  155.000000] dom0: passthrough assignable again after destroy: 0000:00:01.1 8086:7010 010180 assignable dma NOT confined
dom0# keel pci-assignable-remove 0000:00:01.1
[  156.000000] dom0: passthrough returned to the host: 0000:00:01.1 8086:7010 010180 not assignable dma NOT confined
[  156.500000] dom0: passthrough checks done
keel: dom0 powered off
keel: domain 0 stopped: powered off
keel: dom0 finished
",
            sector0 = passthrough_sector_text(0),
            sector1 = passthrough_sector_text(1),
        )
    }

    #[test]
    fn the_passthrough_test_accepts_its_documented_output_and_needs_the_disk_read() {
        let case = bochs_passthrough();
        let log = passthrough_log();
        assert_eq!(judge(&case, &outcome(&log, Some(1))), vec![]);
        let sector0 = passthrough_sector_text(0);
        let sector1 = passthrough_sector_text(1);
        for (what, from, to) in [
            (
                "Keel's warning",
                "assigned WITHOUT DMA confinement",
                "assigned with DMA confinement",
            ),
            ("Keel's assignment", "assigned as 00:04.0 ", "assigned as 00:05.0 "),
            (
                "the host's ids",
                "8086:7010 class 010185 driver ata_piix",
                "8086:7111 class 010185 driver ata_piix",
            ),
            ("its driver", "class 010185 driver ata_piix", "class 010185 driver "),
            ("not an IDE controller", "class 010185 driver", "class 018085 driver"),
            ("the disk's size", "disk sda: 2016 sectors", "disk sda: 2048 sectors"),
            (
                "a disk behind another function",
                "behind PCI function 0000:00:04.0",
                "behind PCI function 0000:00:05.0",
            ),
            (
                "sector 0's text",
                &sector0[40..80],
                "0000000000000000000000000000000000000000",
            ),
            (
                "sector 1's text",
                &sector1[100..140],
                "0000000000000000000000000000000000000000",
            ),
            (
                "sector 1 read as sector 0",
                &format!("disk sector 1: {sector1}"),
                &format!("disk sector 1: {sector0}"),
            ),
            ("no interrupts", "disk irqs 21 (4 during", "disk irqs 0 (0 during"),
            (
                "the e1000's INTx lost its level",
                "domu: intx ok: 0000:00:05.0 irq 28 (20 in /proc/interrupts): intx 0000:00:05.0: 20 interrupts",
                "domu: intx ok: 0000:00:05.0 irq 28 (10 in /proc/interrupts): intx 0000:00:05.0: 10 interrupts",
            ),
            (
                "Keel forwarding the e1000's INTx as an edge",
                "host GSI 9 (level,",
                "host GSI 9 (edge,",
            ),
            (
                "a BAR that did not follow",
                "and back, its registers followed",
                "and back, its registers did not follow",
            ),
            (
                "Keel not moving the BAR",
                "BAR 0 moved by the guest",
                "BAR 0 kept by the guest",
            ),
            (
                "no interrupts during the reads",
                "disk irqs 21 (4 during",
                "disk irqs 21 (0 during",
            ),
            (
                "the DomU's failure",
                "domu: disk done",
                "domu: disk FAILED: no interrupt during the reads",
            ),
            (
                "Dom0's words for the DomU's line",
                "[   26.200000] domu: disk sector 0",
                "dom0 quoting domu: disk sector 0",
            ),
        ] {
            assert!(log.contains(from), "{what}: {from}");
            let broken = log.replace(from, to);
            assert!(!judge(&case, &outcome(&broken, Some(1))).is_empty(), "{what}");
        }
        // The image the harness writes is what the test expects the DomU to read.
        let image = BochsDisk::Passthrough.image();
        assert_eq!(&image[..511], sector0.as_bytes());
        assert_eq!(&image[512..1023], sector1.as_bytes());
        assert_eq!(image.len(), PASSTHROUGH_DISK_GEOMETRY.bytes());
    }

    #[test]
    fn the_split_blk_test_runs_on_the_dom0_machine_with_its_flag() {
        let case = bochs_split_blk();
        assert_eq!(case.dom0, Some(Dom0Modules::split_blk_test()));
        assert_eq!(case.machine, dom0_machine());
        assert_eq!(case.cmdline, "guest=dom0 exit=emulator");
        assert!(case.console_input.is_empty());
        // The disks are image files in Dom0, not emulator disks.
        let Machine::Bochs(machine) = &case.machine else {
            panic!("split-blk runs in Bochs");
        };
        assert_eq!(machine.disk, None);
    }

    /// One boot's lines of the split-blk DomU as Dom0 shows them.
    fn split_blk_boot(at: u32, first: bool, boot_id: &str) -> String {
        let function = |slot: u32, virtio: u32| {
            format!("virtio{virtio} behind PCI function 0000:00:0{slot}.0 1af4:1042 class 010000 driver virtio-pci")
        };
        let persist = if first {
            "wrote persist.txt (boot-1), synced"
        } else {
            "persisted boot-1"
        };
        let reading = if first {
            String::new()
        } else {
            format!("[   {at}.308000] domu: split-blk reading vda until destroyed\r\n")
        };
        let hostile = if first {
            format!(
                "[   {at}.303000] domu: split-blk hostile frontend on vdb (0000:00:05.0): 9 scenarios survived, 9 ok\r\n\
                 [   {at}.306000] domu: split-blk vda still served after the hostile frontend\r\n"
            )
        } else {
            String::new()
        };
        format!(
            "\
--- split-blk: its virtio disks ---
[   {at}.100000] virtio_blk virtio0: [vda] 32768 512-byte logical blocks (16.8 MB/16.0 MiB)
[   {at}.110000] virtio_blk virtio1: [vdb] 2048 512-byte logical blocks (1.05 MB/1.00 MiB)
[   {at}.120000] EXT4-fs (vda): mounted filesystem with ordered data mode. Quota mode: none.
--- [{at}.9] domu-split-blk's console, its own report lines (boot {boot_id}) ---
[   {at}.000000] domu: boot id {boot_id}
[   {at}.200000] domu: split-blk drivers loaded: virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk\r
[   {at}.210000] domu: split-blk vda: 32768 sectors, ro=0, {vda}\r
[   {at}.220000] domu: split-blk vdb: 2048 sectors, ro=1, {vdb}\r
[   {at}.230000] domu: split-blk mounted vda (ext4): data.bin data.sha256 lost+found ro.sha256\r
[   {at}.240000] domu: split-blk data.bin matches data.sha256: {sum}  data.bin\r
[   {at}.250000] domu: split-blk {persist}\r
[   {at}.260000] domu: split-blk big.bin (4 MiB) read back intact after drop_caches: 12 write requests (8300 sectors), 40 read requests\r
[   {at}.270000] domu: split-blk unmounted vda\r
[   {at}.280000] domu: split-blk vdb is read-only with 2048 sectors\r
[   {at}.290000] domu: split-blk vdb matches ro.sha256: {sum}  -\r
[   {at}.300000] domu: split-blk vdb write refused (dd: error writing '/dev/vdb': Operation not permitted), contents unchanged\r
{hostile}{reading}[   {at}.310000] domu: split-blk done\r
---
",
            vda = function(4, 0),
            vdb = function(5, 1),
            sum = "ab".repeat(32),
        )
    }

    /// What bochs-split-blk's serial log shows when it passes (abridged).
    fn split_blk_log() -> String {
        format!(
            "\
keel: VMX root mode entered (VMCS revision 0x2b)
keel: dom0: loading Linux (13857 KiB kernel, 20000 KiB initrd, 256 MiB RAM): console=ttyS0 cryptomgr.notests keel.test=split-blk
[   61.000000] dom0: userspace started
[   61.500000] dom0: split-blk free memory before: 758951936 bytes
[   61.600000] dom0: split-blk uio modules loaded: uio uio_pci_generic
[   62.000000] dom0: split-blk images ready: /var/lib/keel/split-rw.ext4 16777216 bytes (never mounted, 1176 KiB written by mkfs), /var/lib/keel/split-ro.img 1048876 bytes
dom0# keel create /etc/keel/domu-split-blk.toml
keel: domain 1 (domu-split-blk): created, 96 MiB
[   63.000000] dom0: split-blk created domu-split-blk (id 1)
[   63.500000] dom0: split-blk backend running: 2 keel process(es): 120: /bin/keel backend blk 1 0
{first}[  180.000000] dom0: split-blk first boot checked both disks: big.bin (4 MiB) read back intact after drop_caches: 12 write requests (8300 sectors), 40 read requests
[  180.500000] dom0: split-blk backend survived the hostile frontend: hostile frontend on vdb (0000:00:05.0): 9 scenarios survived, 9 ok
[  181.000000] dom0: split-blk writes reached split-rw.ext4: mount count 0 -> 1, lifetime writes 1176 -> 5400 KiB
dom0# keel reboot domu-split-blk
keel: domain 1: rebooting
[  182.000000] dom0: split-blk rebooted domu-split-blk (boot id 1111)
{second}[  300.000000] dom0: split-blk second boot found the write persisted: boot id 1111 then 2222, 'domu: split-blk persisted boot-1', every check passed again
[  301.000000] dom0: split-blk kernels clean: dom0 and domu-split-blk
[  301.500000] dom0: split-blk backend restarted after kill -9: 321: /bin/keel backend 1 --run-dir /run/keel --disk /var/lib/keel/split-rw.ext4,rw --disk /var/lib/keel/split-ro.img,ro; read passes 3 before the kill, 3 when restarted, 5 after 20 s
dom0# keel destroy domu-split-blk
keel: domain 1: destroyed
[  302.000000] dom0: split-blk destroyed domu-split-blk, memory restored
[  303.000000] dom0: split-blk no backend left
[  304.000000] dom0: split-blk read-only image unchanged: /var/lib/keel/split-ro.img as before keel create (1048876 bytes)
[  305.000000] dom0: split-blk checks done
keel: dom0 powered off
keel: domain 0 stopped: powered off
keel: dom0 finished
",
            first = split_blk_boot(90, true, "1111"),
            second = split_blk_boot(95, false, "2222"),
        )
    }

    #[test]
    fn the_split_blk_test_accepts_its_documented_output_and_needs_both_boots() {
        let case = bochs_split_blk();
        let log = split_blk_log();
        assert_eq!(judge(&case, &outcome(&log, Some(1))), vec![]);
        let second_boot = log.find("dom0: split-blk rebooted").unwrap();
        for (what, from, to) in [
            (
                "the drivers",
                "split-blk drivers loaded",
                "split-blk drivers not loaded",
            ),
            ("vda's size", "vda: 32768 sectors", "vda: 32769 sectors"),
            ("vda read-only", "vda: 32768 sectors, ro=0", "vda: 32768 sectors, ro=1"),
            ("vdb's partial sector", "vdb: 2048 sectors", "vdb: 2049 sectors"),
            ("vdb writable", "vdb: 2048 sectors, ro=1", "vdb: 2048 sectors, ro=0"),
            ("a transitional device", "1af4:1042", "1af4:1001"),
            ("another driver", "driver virtio-pci", "driver uio_pci_generic"),
            ("no ext4", "mounted vda (ext4)", "mount of vda failed"),
            (
                "data.bin",
                "data.bin matches data.sha256",
                "data.bin differs from data.sha256",
            ),
            (
                "the big file",
                "big.bin (4 MiB) read back intact",
                "big.bin (4 MiB) read back wrong",
            ),
            (
                "no write requests",
                "drop_caches: 12 write requests",
                "drop_caches: 0 write requests",
            ),
            ("vdb's sum", "vdb matches ro.sha256", "vdb differs from ro.sha256"),
            ("vdb written", "vdb write refused", "vdb write accepted"),
            ("not unmounted", "split-blk unmounted vda", "split-blk umount failed"),
            (
                "the DomU's failure",
                "domu: split-blk done",
                "domu: split-blk FAILED: mount",
            ),
            (
                "Dom0's words for the DomU's line",
                "[   90.310000] domu: split-blk done",
                "quoting domu: split-blk done",
            ),
            (
                "a module Dom0 could not load",
                "dom0: userspace started",
                "dom0: cannot load module uio",
            ),
        ] {
            assert!(log.contains(from), "{what}: {from}");
            let broken = log.replacen(from, to, 1);
            assert!(!judge(&case, &outcome(&broken, Some(1))).is_empty(), "{what}");
        }
        // The second boot must find the first boot's write, and say so
        // after the reboot.
        let (before, after) = log.split_at(second_boot);
        let unpersisted = format!(
            "{before}{}",
            after.replace(
                "split-blk persisted boot-1",
                "split-blk wrote persist.txt (boot-1), synced"
            )
        );
        assert!(!judge(&case, &outcome(&unpersisted, Some(1))).is_empty());
        let second_failed = format!(
            "{before}{}",
            after.replacen("domu: split-blk done", "domu: split-blk not done", 1)
        );
        assert!(!judge(&case, &outcome(&second_failed, Some(1))).is_empty());
        // The first boot must write: a fresh image has no token.
        let unwritten = format!(
            "{}{after}",
            before.replace(
                "split-blk wrote persist.txt (boot-1), synced",
                "split-blk persisted boot-1"
            )
        );
        assert!(!judge(&case, &outcome(&unwritten, Some(1))).is_empty());
    }

    #[test]
    fn the_split_net_test_runs_on_the_dom0_machine_with_its_flag() {
        let case = bochs_split_net();
        assert_eq!(case.dom0, Some(Dom0Modules::split_net_test()));
        assert_eq!(case.machine, dom0_machine());
        assert_eq!(case.cmdline, "guest=dom0 exit=emulator");
        assert!(case.console_input.is_empty());
        // bochs-split-blk's time-out and half as much again: two DomUs.
        assert_eq!(case.timeout, bochs_split_blk().timeout * 3 / 2);
        let Machine::Bochs(machine) = &case.machine else {
            panic!("split-net runs in Bochs");
        };
        assert_eq!(machine.disk, None);
        assert_eq!(SPLIT_NET_BYTES, 2_097_152);
    }

    /// The split-net DomUs' lines as Dom0 shows them: the server's, then
    /// the client's.
    fn split_net_domus() -> String {
        let function = |slot: u32| {
            format!("virtio0 behind PCI function 0000:00:0{slot}.0 1af4:1041 class 020000 driver virtio-pci")
        };
        let sum = "cd".repeat(32);
        format!(
            "\
--- domu-split-net-a's console: its virtio NIC ---
[   80.100000] virtio_net virtio0 eth0: renamed from eth%d
--- [900.0] domu-split-net-a's console, its own report lines ---
[   70.000000] domu: userspace started
[   80.200000] domu: split-net drivers loaded: virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_console\r
[   80.300000] domu: split-net eth0 mac 02:4b:45:00:00:0a, {server_function}\r
[   80.400000] domu: split-net eth0 up: 10.0.0.2/24, the server, peer 10.0.0.3, mtu 1500\r
[   80.450000] domu: split-net hvc0 answering: said hello, answers each line\r
[  190.000000] domu: split-net ping 10.0.0.3 ok rtt 12.345 ms (the other DomU, at try 70, 109.60 s)\r
[  191.000000] domu: split-net ping 10.0.0.1 ok rtt 8.100 ms (Dom0 on keel0, at try 1, 0.90 s)\r
[  191.100000] domu: split-net listening on port 5001\r
[  300.000000] domu: split-net received 2097152 bytes sha256 {sum} (nc ended after 108.90 s)\r
[  310.000000] domu: split-net done\r
---
--- domu-split-net-b's console: its virtio NIC ---
--- [900.5] domu-split-net-b's console, its own report lines ---
[   75.000000] domu: userspace started
[   85.200000] domu: split-net drivers loaded: virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_console\r
[   85.300000] domu: split-net eth0 mac 36:fd:18:b4:1a:11, {client_function}\r
[   85.400000] domu: split-net eth0 up: 10.0.0.3/24, the client, peer 10.0.0.2, mtu 1500\r
[   86.000000] domu: split-net ping 10.0.0.2 ok rtt 10.500 ms (the other DomU, at try 1, 0.60 s)\r
[   87.000000] domu: split-net ping 10.0.0.1 ok rtt 9.000 ms (Dom0 on keel0, at try 1, 0.90 s)\r
[  150.000000] domu: split-net sending 2097152 bytes sha256 {sum} to 10.0.0.2 port 5001\r
[  260.000000] domu: split-net sent 2097152 bytes in 100.00 s (connected at try 3)\r
[  261.000000] domu: split-net done\r
---
",
            server_function = function(4),
            client_function = function(4),
        )
    }

    /// What bochs-split-net's serial log shows when it passes (abridged).
    fn split_net_log() -> String {
        let sum = "cd".repeat(32);
        format!(
            "\
keel: VMX root mode entered (VMCS revision 0x2b)
keel: dom0: loading Linux (13857 KiB kernel, 20000 KiB initrd, 256 MiB RAM): console=ttyS0 cryptomgr.notests keel.test=split-net
[   61.000000] dom0: userspace started
[   61.500000] dom0: split-net free memory before: 758951936 bytes
[   61.600000] dom0: split-net modules loaded: uio uio_pci_generic tun, /dev/net/tun there
dom0# keel create /etc/keel/domu-split-net-a.toml
keel: domain 1 (domu-split-net-a): created, 96 MiB
[   63.000000] dom0: split-net created domu-split-net-a (id 1): the server, 10.0.0.2, mac 02:4b:45:00:00:0a
dom0# keel create /etc/keel/domu-split-net-b.toml
keel: domain 2 (domu-split-net-b): created, 96 MiB
[   65.000000] dom0: split-net created domu-split-net-b (id 2): the client, 10.0.0.3, a generated mac
dom0# ip link set keel0 up
dom0# ip addr add 10.0.0.1/24 dev keel0
[   66.000000] dom0: split-net switch running: 118: /bin/keel switch; keel0 up with 10.0.0.1/24, mac 02:4b:45:ff:ff:ff
[   66.500000] dom0: split-net backends running: domu-split-net-a's pid 120, domu-split-net-b's pid 130
[  900.000000] domu-split-net-a: done after 830.00 s; domu-split-net-b: done after 700.00 s
{domus}[  901.000000] dom0: split-net both domus done: domu-split-net-a after 830.00 s, domu-split-net-b after 700.00 s
[  902.000000] dom0: split-net transfer intact: domu-split-net-b sent and domu-split-net-a received 2097152 bytes with sha256 {sum}
dom0# ping -c 3 -W 5 10.0.0.2
3 packets transmitted, 3 packets received, 0% packet loss
[  910.000000] dom0: split-net dom0 reached both domus through keel0: 10.0.0.2 3/3 (rtt 5.0/6.0/7.0 ms) at 02:4b:45:00:00:0a, 10.0.0.3 3/3 (rtt 5.0/6.0/7.0 ms) at 36:fd:18:b4:1a:11
dom0# keel network-list domu-split-net-a
[  911.000000] dom0: split-net virtio console answered: 'domu: hvc0 hello' kept, 'domu: hvc0 polo marco' live
[  912.000000] dom0: split-net kernels clean: dom0, domu-split-net-a and domu-split-net-b
dom0# keel destroy domu-split-net-a
keel: domain 1: destroyed
dom0# keel destroy domu-split-net-b
keel: domain 2: destroyed
[  914.000000] dom0: split-net destroyed both, memory restored
[  915.000000] dom0: split-net no backend left (switch: 118: /bin/keel switch)
[  916.000000] dom0: split-net checks done
keel: dom0 powered off
keel: domain 0 stopped: powered off
keel: dom0 finished
",
            domus = split_net_domus(),
        )
    }

    #[test]
    fn the_split_net_test_accepts_its_documented_output_and_needs_both_domus() {
        let case = bochs_split_net();
        let log = split_net_log();
        assert_eq!(judge(&case, &outcome(&log, Some(1))), vec![]);
        let client = log.find("--- domu-split-net-b's console").unwrap();
        for (what, from, to) in [
            (
                "the drivers",
                "split-net drivers loaded",
                "split-net drivers not loaded",
            ),
            (
                "another MAC for the server",
                "eth0 mac 02:4b:45:00:00:0a",
                "eth0 mac 02:4b:45:00:00:0b",
            ),
            ("a transitional device", "1af4:1041", "1af4:1000"),
            ("a block device", "1af4:1041 class 020000", "1af4:1042 class 010000"),
            ("another driver", "driver virtio-pci", "driver uio_pci_generic"),
            ("another address", "up: 10.0.0.2/24", "up: 10.0.0.9/24"),
            ("no answer from the peer", "ping 10.0.0.3 ok", "ping 10.0.0.3 lost"),
            (
                "no answer from Dom0",
                "ping 10.0.0.1 ok rtt 8.100",
                "ping 10.0.0.1 lost rtt 8.100",
            ),
            ("not listening", "listening on port 5001", "listening on port 5002"),
            ("a short transfer", "received 2097152 bytes", "received 1048576 bytes"),
            ("no transfer", "split-net received", "split-net got"),
            (
                "the DomU's failure",
                "[  310.000000] domu: split-net done",
                "[  310.000000] domu: split-net FAILED: nc -l -p 5001",
            ),
            (
                "Dom0's words for the DomU's line",
                "[  310.000000] domu: split-net done",
                "quoting domu: split-net done",
            ),
            (
                "the tun module Dom0 could not load",
                "dom0: userspace started",
                "dom0: cannot load module tun",
            ),
        ] {
            assert!(log.contains(from), "{what}: {from}");
            let broken = log.replacen(from, to, 1);
            assert!(!judge(&case, &outcome(&broken, Some(1))).is_empty(), "{what}");
        }
        // The client's own lines are needed too, after the server's.
        let (before, after) = log.split_at(client);
        for (what, from, to) in [
            ("a multicast MAC", "eth0 mac 36:fd", "eth0 mac 37:fd"),
            ("a globally administered MAC", "eth0 mac 36:fd", "eth0 mac 34:fd"),
            ("the client's role", "the client, peer", "the server, peer"),
            (
                "nothing sent",
                "split-net sending 2097152 bytes",
                "split-net sending 0 bytes",
            ),
            ("not sent", "split-net sent 2097152", "split-net unsent 2097152"),
            (
                "not done",
                "[  261.000000] domu: split-net done",
                "[  261.000000] domu: split-net busy",
            ),
        ] {
            assert!(after.contains(from), "{what}: {from}");
            let broken = format!("{before}{}", after.replacen(from, to, 1));
            assert!(!judge(&case, &outcome(&broken, Some(1))).is_empty(), "{what}");
        }
        // The server's NIC must have its configured MAC, not a generated one.
        let generated = log.replace(
            "[   80.300000] domu: split-net eth0 mac 02:4b:45:00:00:0a",
            "[   80.300000] domu: split-net eth0 mac 36:fd:18:b4:1a:11",
        );
        assert!(!judge(&case, &outcome(&generated, Some(1))).is_empty());
    }

    const DOMU_SCHED_LOG: &str = "\
keel: VMX root mode entered (VMCS revision 0x2b)
keel: dom0: loading Linux (13857 KiB kernel, 14042 KiB initrd, 256 MiB RAM): console=ttyS0 keel.test=domu-sched
[  101.600000] dom0: userspace started
[  103.100000] dom0: domu sched free memory before: 762507264 bytes
keel: domain 1 (domu-spin): created, 96 MiB
keel: domain 2 (domu-wrmsr): created, 96 MiB
[  110.000000] dom0: domu sched created domu-spin and domu-wrmsr
--- domu-spin's console, its domu: lines ---
[   49.400000] domu: userspace started
[   49.500000] domu: spinning (keel.domu=spin)
---
--- domu-wrmsr's console, its domu: lines ---
[   95.400000] domu: userspace started
[   95.900000] domu: wrmsr loop started (keel.domu=wrmsr: MSR 0x6e0, tsc+100000)
keel-stress: writing tsc+100000 to MSR 0x6e0 (forever)
---
[  250.000000] dom0: domu sched both domus run their loops
[  262.000000] dom0: domu sched dom0 stays responsive: sleep 1 x3 took 3.40 s (paused DomUs: 3.10 s, bound 3.90 s)
[  273.000000] dom0: domu sched both domus got cpu time: domu-spin 47.0%, domu-wrmsr 46.1% of 10.20 s
[  273.100000] dom0: domu sched wrmsr loop exits: 1500 MSR exits/s
[  278.000000] dom0: domu sched top shows both domus
[  279.000000] dom0: domu sched domu kernels clean
keel: domain 1: destroyed
keel: domain 2: destroyed
[  280.000000] dom0: domu sched destroyed both, memory restored
[  281.000000] dom0: domu sched checks done
[  281.200000] reboot: Power down
keel: dom0 powered off
keel: domain 0 stopped: powered off
keel: dom0 finished
";

    const DOMU_FAULTS_LOG: &str = "\
keel: VMX root mode entered (VMCS revision 0x2b)
keel: dom0: loading Linux (13857 KiB kernel, 14042 KiB initrd, 256 MiB RAM): console=ttyS0 keel.test=domu-faults
[  101.600000] dom0: userspace started
[  110.000000] dom0: domu faults created domu-tick and domu-probe
keel: domain 2: read of GPA 0xc0000000 (rip=0x4a2b3c): no memory or device there; reads all ones (1 so far)
--- domu-tick's console, its domu: lines ---
[   60.000000] domu: tick 7
---
[  250.000000] dom0: domu faults isolation held: 7 addresses read all ones and kept no write; domu-probe is running
[  256.000000] dom0: domu faults witness kept ticking after the probes
[  270.000000] dom0: domu faults pause froze domu-probe's cpu time, unpause gave it 88.0% of 4.10 s
keel: domain 2: rebooting
--- domu-probe's console, its domu: lines ---
[    0.900000] domu: boot id 4b1c0e52-8d1e-4d53-9f3a-0c2f5e7d9a11
---
[  340.000000] dom0: domu faults reboot booted domu-probe a second time: 'domu: userspace started' seen 2 times
keel: domain 3 stopped: triple fault at rip=0xffffffff81001234
keel: domain 3 (domu-triple): crash: preserve
[  420.000000] dom0: domu faults triple fault left domu-triple crashed
[  426.000000] dom0: domu faults witness kept ticking after the triple fault
[  427.000000] dom0: domu faults destroyed the crashed domain
[  428.000000] dom0: domu faults witness kernel clean
--- [428.100000] domu-tick's power button lines ---
[    9.800000] input: Power Button as /devices/LNXSYSTM:00/LNXSYBUS:00/PNP0C0C:00/input/input1
[    9.900000] domu: acpid started: the power button powers off
---
dom0# keel shutdown domu-tick
keel: domain 1: power button pressed
keel: domain 1 stopped: powered off
keel: domain 1 exits: io=100 total=100
keel: domain 1 (domu-tick): power-off: destroy
--- domu-tick's last console lines (keel console --until, status 0) ---
[  380.000000] domu: power button pressed, powering off
---
[  429.000000] dom0: domu faults shutdown handled: domu-tick said 'domu: power button pressed, powering off' 2.10 s after keel shutdown and left keel list after 3.20 s (bound 120 s)
[  430.000000] dom0: domu faults destroyed every domu, memory restored
[  431.000000] dom0: domu faults checks done
keel: dom0 powered off
keel: dom0 finished
";

    #[test]
    fn the_domu_scenarios_accept_their_documented_output() {
        assert_eq!(judge(&bochs_domu_sched(), &outcome(DOMU_SCHED_LOG, Some(1))), vec![]);
        assert_eq!(judge(&bochs_domu_faults(), &outcome(DOMU_FAULTS_LOG, Some(1))), vec![]);
    }

    #[test]
    fn the_domu_scenarios_reject_every_failure_line_and_need_every_step() {
        type Scenario = (
            fn() -> TestCase,
            &'static str,
            &'static [&'static str],
            &'static [&'static str],
        );
        let passthrough_log: &'static str = Box::leak(passthrough_log().into_boxed_str());
        let split_blk_log: &'static str = Box::leak(split_blk_log().into_boxed_str());
        let split_net_log: &'static str = Box::leak(split_net_log().into_boxed_str());
        let scenarios: [Scenario; 6] = [
            (bochs_domu_sched, DOMU_SCHED_LOG, DOMU_SCHED_STEPS, DOMU_SCHED_FAILURES),
            (bochs_split_blk, split_blk_log, SPLIT_BLK_STEPS, SPLIT_BLK_FAILURES),
            (bochs_split_net, split_net_log, SPLIT_NET_STEPS, SPLIT_NET_FAILURES),
            (bochs_hostile, HOSTILE_LOG, HOSTILE_STEPS, HOSTILE_FAILURES),
            (
                bochs_passthrough,
                passthrough_log,
                PASSTHROUGH_STEPS,
                PASSTHROUGH_FAILURES,
            ),
            (
                bochs_domu_faults,
                DOMU_FAULTS_LOG,
                DOMU_FAULTS_STEPS,
                DOMU_FAULTS_FAILURES,
            ),
        ];
        for (make, log, steps, failures) in scenarios {
            let case = make();
            let last = steps.last().unwrap();
            for failure in failures {
                let failed = log.replace(last, &format!("{failure}: details"));
                let verdict = judge(&case, &outcome(&failed, Some(1)));
                assert!(
                    verdict.iter().any(|f| f.to_string().starts_with("forbidden marker")),
                    "{failure}: {verdict:?}"
                );
            }
            for step in steps {
                let missing: String = log
                    .lines()
                    .filter(|line| !line.contains(step))
                    .map(|line| format!("{line}\n"))
                    .collect();
                let verdict = judge(&case, &outcome(&missing, Some(1)));
                assert_eq!(verdict.len(), 1, "{step}: {verdict:?}");
                assert!(verdict[0].to_string().starts_with("missing marker"), "{}", verdict[0]);
            }
            for bad in [
                "Kernel panic - not syncing",
                "keel: dom0 reset: booting it again",
                "KEEL PANIC",
            ] {
                let broken = log.replace("dom0: userspace started", bad);
                assert!(!judge(&case, &outcome(&broken, Some(1))).is_empty(), "{bad}");
            }
        }
        // Keel's own account of the triple fault is needed, after the reboot step.
        let no_triple = DOMU_FAULTS_LOG.replace("stopped: triple fault", "stopped: reset");
        assert_eq!(judge(&bochs_domu_faults(), &outcome(&no_triple, Some(1))).len(), 1);
        // The shutdown: Keel's press, the power-off it carried out and the
        // witness's own line, each needed.
        for line in [
            "keel: domain 1: power button pressed",
            "keel: domain 1 stopped: powered off",
            "keel: domain 1 (domu-tick): power-off: destroy",
            "[  380.000000] domu: power button pressed, powering off",
        ] {
            assert!(DOMU_FAULTS_LOG.contains(line), "{line}");
            let missing = DOMU_FAULTS_LOG.replace(line, "something else");
            assert_eq!(
                judge(&bochs_domu_faults(), &outcome(&missing, Some(1))).len(),
                1,
                "{line}"
            );
        }
        // Dom0's words quoting the marker are not the witness's line.
        let quoted = DOMU_FAULTS_LOG.replace("[  380.000000] domu: power button", "said domu: power button");
        assert_eq!(judge(&bochs_domu_faults(), &outcome(&quoted, Some(1))).len(), 1);
        assert!(format!("[  380.0] {DOMU_POWER_BUTTON_MARKER}").contains("] domu: power button pressed, powering off"));
        // The WRMSR DomU's program must be seen running.
        let no_stress = DOMU_SCHED_LOG.replace("keel-stress: writing", "keel-stress: cannot open");
        assert_eq!(judge(&bochs_domu_sched(), &outcome(&no_stress, Some(1))).len(), 1);
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

    const DOMU_LOG: &str = "\
keel: Keel hypervisor 0.1.0
keel: VMX root mode entered (revision 0x2b)
keel: dom0: loading Linux 6.1.0-57-cloud-amd64 (14 MiB), initrd 20 MiB
[    2.200000] dom0: userspace started
dom0# keel info
[    2.900000] dom0: domu free memory before: 734003200 bytes
dom0# keel create /etc/keel/domu.toml
[    3.100000] dom0: domu created
dom0# keel console domu1 --until \"$DOMU_READY\" --timeout 600
[    0.000000] Linux version 6.1.0-57-cloud-amd64
[    9.000000] domu: userspace started
[   40.000000] dom0: domu console marker seen
dom0# keel list
[   40.500000] dom0: domu list ok
dom0# keel destroy domu1
[   41.000000] dom0: domu destroyed, memory restored
dom0# keel create /nonexistent.toml
keel: cannot read /nonexistent.toml: No such file or directory
dom0# keel create /tmp/domu-truncated.toml
keel: warning: domain 3: cannot boot: cannot load the kernel: protected-mode kernel is truncated: syssize says 13676480 bytes, image holds 983040
keel: domain domu-truncated (id 3): cannot boot it: bad image: cannot load the kernel: protected-mode kernel is truncated: syssize says 13676480 bytes, image holds 983040
[   42.000000] dom0: domu bad inputs refused
dom0# (as nobody) keel list
keel: permission denied
[   42.500000] dom0: domu unprivileged refused
[   45.000000] dom0: domu cycles no leak
[   45.100000] dom0: domu checks done
[   45.200000] reboot: Power down
keel: dom0 powered off (ACPI S5)
keel: domain 0 exits: cpuid=120 io=40210
keel: dom0 finished
";

    #[test]
    fn domu_accepts_the_documented_console_output() {
        assert_eq!(judge(&bochs_domu(), &outcome(DOMU_LOG, Some(1))), vec![]);
    }

    #[test]
    fn domu_rejects_every_failure_line() {
        for failure in DOMU_FAILURES {
            let log = DOMU_LOG.replace("dom0: domu checks done", &format!("{failure}: details"));
            let failures = judge(&bochs_domu(), &outcome(&log, Some(1)));
            assert!(
                failures.iter().any(|f| f.to_string().starts_with("forbidden marker")),
                "{failure}: {failures:?}"
            );
        }
        let leak = DOMU_LOG.replace(
            "dom0: domu destroyed, memory restored",
            "dom0: domu memory leak: before=734003200 after=633339904",
        );
        assert_eq!(judge(&bochs_domu(), &outcome(&leak, Some(1))).len(), 2);
    }

    #[test]
    fn domu_needs_every_step_and_domus_own_output() {
        for step in DOMU_STEPS.iter().chain([&DOMU_USERSPACE_MARKER]) {
            let log: String = DOMU_LOG
                .lines()
                .filter(|line| !line.contains(step))
                .map(|line| format!("{line}\n"))
                .collect();
            let failures = judge(&bochs_domu(), &outcome(&log, Some(1)));
            assert_eq!(failures.len(), 1, "{step}: {failures:?}");
            assert!(failures[0].to_string().starts_with("missing marker"), "{}", failures[0]);
        }
        // Dom0's own words are not DomU's line.
        let echoed = DOMU_LOG.replace(
            "[    9.000000] domu: userspace started",
            "keel: waiting for domu: userspace started",
        );
        assert_eq!(judge(&bochs_domu(), &outcome(&echoed, Some(1))).len(), 1);
        let panicked = DOMU_LOG.replace("domu: userspace started\n", "Kernel panic - not syncing\n");
        assert!(!judge(&bochs_domu(), &outcome(&panicked, Some(1))).is_empty());
    }

    #[test]
    fn domu_needs_keels_loader_to_refuse_the_truncated_kernel() {
        // Only the tool's words (Keel's own line missing) do not do.
        let tool_only = DOMU_LOG.replace("keel: warning: domain 3: cannot boot: ", "");
        let failures = judge(&bochs_domu(), &outcome(&tool_only, Some(1)));
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].to_string().contains("truncated"), "{}", failures[0]);
        let unclear = DOMU_LOG.replace(
            "dom0: domu bad inputs refused",
            "dom0: domu bad input refused unclearly: a kernel truncated to 1000000 bytes: keel said 'x'",
        );
        assert!(judge(&bochs_domu(), &outcome(&unclear, Some(1)))
            .iter()
            .any(|failure| failure.to_string().starts_with("forbidden marker")));
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
keel: boot stack guard page at 0x243000: not mapped
keel: VMX root mode entered (VMCS revision 0x2b)
guest1: selftest: started
guest1: selftest: cpuid ok
guest1: selftest: io ok
guest1: selftest: vmcall ok
guest1: selftest: hlt ok
guest1: selftest: preemption timer ok
guest1: selftest: msr #gp ok
guest1: selftest: invd/wbinvd ok
guest1: selftest: rep outsb ok
guest1: selftest: rep insb ok
guest1: selftest: single-step #db ok
guest1: selftest: tsc offset ok
keel: domain 1 stopped: EPT violation at GPA 0x30000000 (read) rip=0x2000b9: no memory or device there
keel: domain 1 exits: exception-or-nmi=3 cpuid=3 hlt=1 invd=1 vmcall=9 io=246 rdmsr=1 ept-violation=1 preemption-timer=2 wbinvd=1 total=268
keel: domain 2 stopped: unhandled exit triple-fault (reason 2), qualification 0x0, rip=0x200114
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
    fn selftest_needs_the_reflected_debug_exceptions_and_the_contained_triple_fault() {
        let log = SELFTEST_LOG.replace("exception-or-nmi=3 ", "");
        assert_eq!(judge(&bochs_selftest(), &outcome(&log, Some(1))).len(), 1);
        let log = SELFTEST_LOG.replace(
            "unhandled exit triple-fault (reason 2)",
            "unhandled exit invd (reason 13)",
        );
        assert_eq!(judge(&bochs_selftest(), &outcome(&log, Some(1))).len(), 1);
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

    #[test]
    fn the_kvm_passthrough_test_needs_nested_kvm_and_runs_on_the_kvm_machine() {
        let case = kvm_passthrough();
        assert_eq!(case.requirements, [crate::case::Requirement::NestedKvm]);
        assert_eq!(
            case.machine,
            Machine::qemu_kvm_passthrough().with_memory(DOM0_MEMORY_MIB)
        );
        assert_eq!(case.cmdline, "guest=dom0 exit=emulator");
        assert_eq!(
            case.dom0,
            Some(Dom0Modules::with_linux_cmdline(
                "console=ttyS0 cryptomgr.notests keel.test=passthrough-kvm"
            ))
        );
        assert!(case.console_input.is_empty());
        assert!(case.name.contains("passthrough"));
        // Only this test needs nested KVM, and no other has its machine.
        for other in all_boot_tests() {
            if other.name != case.name {
                assert!(other.requirements.is_empty(), "{}", other.name);
                assert_ne!(other.machine, case.machine, "{}", other.name);
            }
        }
        // /init's grep -w of another flag must not take this one for its
        // own: keel.test=passthrough does match inside it (a hyphen ends a
        // word), so /init looks for this one first (xtask checks init.sh).
        use crate::dom0::*;
        for other in [
            TEST_FLAG,
            DOMU_TEST_FLAG,
            DOMU_SCHED_TEST_FLAG,
            DOMU_FAULTS_TEST_FLAG,
            HOSTILE_TEST_FLAG,
            SPLIT_BLK_TEST_FLAG,
            SPLIT_NET_TEST_FLAG,
        ] {
            assert!(!PASSTHROUGH_KVM_TEST_FLAG.contains(other) && !other.contains(PASSTHROUGH_KVM_TEST_FLAG));
        }
        assert!(PASSTHROUGH_KVM_TEST_FLAG.starts_with(&format!("{PASSTHROUGH_TEST_FLAG}-")));
    }

    #[test]
    fn the_kvm_passthrough_function_is_the_machines_nvme_slot_and_its_intx_is_pirq_h() {
        use crate::emulator::qemu::NVME_SLOT;
        assert_eq!(KVM_PASSTHROUGH_HOST_FUNCTION, format!("0000:00:{NVME_SLOT:02x}.0"));
        assert_eq!(kvm_passthrough_intx_gsi(), 23);
        // Keel gives the first assigned function the DomU's slot 4.
        assert_eq!(KVM_PASSTHROUGH_GUEST_FUNCTION, "0000:00:04.0");
        assert_ne!(KVM_PASSTHROUGH_HOST_FUNCTION, KVM_PASSTHROUGH_GUEST_FUNCTION);
    }

    #[test]
    fn no_kvm_passthrough_marker_hides_in_another() {
        for step in PASSTHROUGH_KVM_STEPS {
            assert!(step.starts_with("dom0: passthrough-kvm "), "{step}");
            for failure in PASSTHROUGH_KVM_FAILURES {
                assert!(!step.contains(failure) && !failure.contains(step), "{step} / {failure}");
            }
        }
        assert!(PASSTHROUGH_KVM_FAILURES
            .iter()
            .all(|failure| failure.starts_with("dom0: passthrough-kvm ") && failure.ends_with(" failed")));
        // The Bochs passthrough test's lines are not these, either way.
        for line in PASSTHROUGH_KVM_STEPS.iter().chain(PASSTHROUGH_KVM_FAILURES) {
            for other in PASSTHROUGH_STEPS.iter().chain(PASSTHROUGH_FAILURES) {
                assert!(!line.contains(other) && !other.contains(line), "{line} / {other}");
            }
        }
        assert!(!PASSTHROUGH_KVM_DOMU_FAILURE.contains(PASSTHROUGH_DOMU_FAILURE));
    }

    /// What kvm-passthrough's serial log would show when it passes
    /// (abridged, written from Keel's and the scripts' formats: the test
    /// has not run on a machine with nested VMX yet). Keel's lines up to
    /// the IOMMU's and the DomU's `domu: nvme` lines are as they came on
    /// QEMU 7.2 with TCG on this machine (Keel stopping for want of VMX;
    /// the DomU's kernel and /init booted bare, with `pci=nomsi`).
    fn kvm_passthrough_log() -> String {
        format!(
            "\
keel: Keel hypervisor 0.1.0 starting
keel: command line: `guest=dom0 exit=emulator`
keel: pci: 0000:00:03.0 1b36:0010 class 010802
keel: pci: host I/O APIC 0 at 0xfec00000, GSIs from 0
keel: iommu: DMAR: 1 remapping unit(s), host address width 39 bits, interrupt remapping supported
keel: iommu: unit at 0xfed90000 (segment 0, 8 device scope(s)): VT-d 1.0, 65536 domains, caching mode off: translation on, every device blocked; queued invalidation on, interrupt remapping on
keel: VMX root mode entered (VMCS revision 0x11e57ed0)
keel: dom0: loading Linux (13857 KiB kernel, 18528 KiB initrd, 256 MiB RAM): console=ttyS0 cryptomgr.notests keel.test=passthrough-kvm
[    3.100000] dom0: userspace started
[    3.500000] dom0: passthrough-kvm free memory before: 758951936 bytes
dom0# keel pci-assignable-list
Address       Device     Class   State           DMA
0000:00:00.0  8086:29c0  060000  host bridge     dma confined
0000:00:02.0  8086:10d3  020000  not assignable  dma confined
0000:00:03.0  1b36:0010  010802  not assignable  dma confined
[    3.600000] dom0: passthrough-kvm nvme function listed, dma confined: 0000:00:03.0 1b36:0010 010802 not assignable dma confined (INTA at host GSI 23)
dom0# keel pci-assignable-add 0000:00:03.0 --intx-gsi 23
dom0# keel pci-assignable-list
[    3.700000] dom0: passthrough-kvm made assignable with its INTx at host GSI 23: 0000:00:03.0 1b36:0010 010802 assignable dma confined
dom0# keel create /etc/keel/domu-nvme.toml
keel: domain 1: host GSI 23 (level, active low, remapping entry 1) -> vector 0x41 -> guest slot 4 INTx, GSI 17
keel: domain 1: 0000:00:03.0 assigned as 00:04.0 (0 I/O range(s), 1 memory BAR(s), INTx level-triggered, host GSI 23 -> guest GSI 17, MSI-X (65 entries, up to 8 forwarded), DMA confined by the IOMMU)
keel: domain 1 (domu-nvme): created, 96 MiB
[    3.800000] dom0: passthrough-kvm created domu-nvme (id 1)
keel: domain 1: 0000:00:03.0 MSI-X entry 0 -> vector 0x42, remapping entry 2 -> guest slot 4
keel: domain 1: MSI vector 0x42 (MSI-X entry 0) interrupt 1 forwarded to guest slot 4
keel: domain 1: MSI vector 0x42 (MSI-X entry 0) interrupt 2 forwarded to guest slot 4
keel: domain 1: 0000:00:03.0 MSI-X entry 1 -> vector 0x43, remapping entry 3 -> guest slot 4
[   10.000000] domu-nvme: done after 6.20 s
--- domu-nvme's console: the controller and its namespace ---
[    1.174659] nvme nvme0: pci function 0000:00:04.0
[    1.219160] nvme nvme0: 1/0/0 default/read/poll queues
--- [10.1] domu-nvme's console, its own report lines ---
[    1.000000] domu: userspace started
[    1.500000] domu: nvme nvme0n1: 2048 sectors, behind PCI function 0000:00:04.0 (/sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1)
[    1.510000] domu: nvme pci 0000:00:04.0 1b36:0010 class 010802 driver nvme
[    1.520000] domu: nvme sector 0: {sector0}
[    1.530000] domu: nvme sector 1: {sector1}
[    1.540000] domu: nvme irqs 14 (2 during the reads; irq 24: 14)
[    1.550000] domu: nvme done
---
[   10.200000] dom0: passthrough-kvm domu read the namespace through the host's function: pci 0000:00:04.0 1b36:0010 class 010802 driver nvme; sectors 0 and 1 hold their text; irqs 14 (2 during the reads; irq 24: 14)
Dom0: 0000:00:00.0 8086:1237
[   10.300000] dom0: passthrough-kvm dom0 does not see the function: 3 PCI functions, none 1b36:0010
dom0# keel pci-assignable-list
[   10.400000] dom0: passthrough-kvm list shows it attached: 0000:00:03.0 1b36:0010 010802 attached to domu-nvme (id 1) dma confined
dom0# keel destroy domu-nvme
keel: domain 1: MSI-X vector 0x42: 14 interrupt(s) arrived for it
keel: domain 1: MSI-X vector 0x43: 2 interrupt(s) arrived for it
keel: domain 1: host GSI 23: 0 interrupt(s) arrived for it
[   10.600000] dom0: passthrough-kvm destroyed domu-nvme, memory restored
[   10.700000] dom0: passthrough-kvm assignable again after destroy: 0000:00:03.0 1b36:0010 010802 assignable dma confined
dom0# keel pci-assignable-remove 0000:00:03.0
[   10.800000] dom0: passthrough-kvm returned to the host: 0000:00:03.0 1b36:0010 010802 not assignable dma confined
[   10.900000] dom0: passthrough-kvm checks done
keel: dom0 powered off
keel: domain 0 stopped: powered off
keel: dom0 finished
",
            sector0 = passthrough_sector_text(0),
            sector1 = passthrough_sector_text(1),
        )
    }

    #[test]
    fn the_kvm_passthrough_test_accepts_its_documented_output_and_needs_the_confined_read() {
        let case = kvm_passthrough();
        let log = kvm_passthrough_log();
        assert_eq!(judge(&case, &outcome(&log, Some(33))), vec![]);
        let sector0 = passthrough_sector_text(0);
        let sector1 = passthrough_sector_text(1);
        let unconfined_warning = "keel: warning: domain 1: 0000:00:03.0 assigned WITHOUT DMA confinement (no IOMMU covers it): its DMA can read and write any host memory\nkeel: domain 1: host GSI 23 (level";
        let dma_fault = "keel: domain 1: MSI vector 0x42 (MSI-X entry 0) interrupt 2 forwarded to guest slot 4\nkeel: warning: iommu: unit 0xfed90000: DMA fault: DMA write from 00:03.0 at 0x5000000: ...";
        for (what, from, to) in [
            (
                "VT-d not enabled",
                "translation on, every device blocked",
                "not enabled",
            ),
            (
                "no interrupt remapping",
                "interrupt remapping on\n",
                "interrupt remapping off\n",
            ),
            (
                "Keel not confining the DMA",
                "DMA confined by the IOMMU)",
                "DMA NOT confined)",
            ),
            (
                "Keel warning of an unconfined assignment",
                "keel: domain 1: host GSI 23 (level",
                unconfined_warning,
            ),
            (
                "a DMA fault",
                "keel: domain 1: MSI vector 0x42 (MSI-X entry 0) interrupt 2 forwarded to guest slot 4",
                dma_fault,
            ),
            (
                "the INTx at the Interrupt Line's IRQ",
                "host GSI 23 (level, active low, remapping entry 1)",
                "host GSI 11 (level, active high, remapping entry 1)",
            ),
            (
                "the I/O APIC entry in compatibility format",
                "active low, remapping entry 1)",
                "active low)",
            ),
            ("the INTx as an edge", "host GSI 23 (level,", "host GSI 23 (edge,"),
            ("Keel's assignment", "assigned as 00:04.0 ", "assigned as 00:05.0 "),
            (
                "no MSI-X entry routed",
                "MSI-X entry 0 -> vector 0x42, remapping entry 2",
                "MSI-X entry 0 not forwarded: no free host vector",
            ),
            (
                "the MSI-X entry in compatibility format",
                "MSI-X entry 0 -> vector 0x42, remapping entry 2 -> ",
                "MSI-X entry 0 -> vector 0x42 -> ",
            ),
            ("no MSI-X offered", ", MSI-X (65 entries, up to 8 forwarded)", ""),
            (
                "no interrupt forwarded",
                "(MSI-X entry 0) interrupt 1 forwarded",
                "(MSI-X entry 0) interrupt 0 forwarded",
            ),
            (
                "no interrupt at all",
                "MSI-X vector 0x42: 14 interrupt(s) arrived for it\nkeel: domain 1: MSI-X vector 0x43: 2 interrupt(s)",
                "MSI-X vector 0x42: 0 interrupt(s) arrived for it\nkeel: domain 1: MSI-X vector 0x43: 0 interrupt(s)",
            ),
            (
                "the host's ids",
                "1b36:0010 class 010802 driver nvme",
                "8086:5845 class 010802 driver nvme",
            ),
            (
                "not an NVMe controller",
                "class 010802 driver nvme",
                "class 010601 driver nvme",
            ),
            ("no driver", "class 010802 driver nvme", "class 010802 driver "),
            ("the namespace's size", "nvme0n1: 2048 sectors", "nvme0n1: 2016 sectors"),
            (
                "a namespace behind another function",
                "behind PCI function 0000:00:04.0",
                "behind PCI function 0000:00:05.0",
            ),
            (
                "sector 0's text",
                &sector0[40..80],
                "0000000000000000000000000000000000000000",
            ),
            (
                "sector 1's text",
                &sector1[100..140],
                "0000000000000000000000000000000000000000",
            ),
            (
                "sector 1 read as sector 0",
                &format!("nvme sector 1: {sector1}"),
                &format!("nvme sector 1: {sector0}"),
            ),
            ("no interrupts", "nvme irqs 14 (2 during", "nvme irqs 0 (0 during"),
            (
                "no interrupts during the reads",
                "nvme irqs 14 (2 during",
                "nvme irqs 14 (0 during",
            ),
            (
                "the DomU's failure",
                "domu: nvme done",
                "domu: nvme FAILED: no nvme interrupt during the reads",
            ),
            (
                "Dom0's words for the DomU's line",
                "[    1.520000] domu: nvme sector 0",
                "dom0 quoting domu: nvme sector 0",
            ),
            (
                "the list not confining it",
                "nvme function listed, dma confined: 0000:00:03.0",
                "list failed: 0000:00:03.0",
            ),
            (
                "a refused --intx-gsi",
                "dom0: passthrough-kvm made assignable",
                "dom0: passthrough-kvm assignable-add failed",
            ),
            (
                "Dom0 seeing the function",
                "dom0: passthrough-kvm dom0 does not see the function",
                "dom0: passthrough-kvm dom0 isolation failed",
            ),
            (
                "a memory leak",
                "dom0: passthrough-kvm destroyed domu-nvme, memory restored",
                "dom0: passthrough-kvm memory check failed: before=758951936 after=658288640",
            ),
            (
                "the last step",
                "dom0: passthrough-kvm checks done",
                "dom0: passthrough-kvm stopped",
            ),
        ] {
            assert!(log.contains(from), "{what}: {from}");
            let broken = log.replace(from, to);
            assert!(!judge(&case, &outcome(&broken, Some(33))).is_empty(), "{what}");
        }
        // The image the harness writes is what the test expects the DomU to read.
        let image = crate::emulator::qemu::nvme_image();
        assert_eq!(&image[..511], sector0.as_bytes());
        assert_eq!(&image[512..1023], sector1.as_bytes());
        assert_eq!(image.len(), crate::emulator::qemu::NVME_IMAGE_SECTORS as usize * 512);
        assert!(log.contains(&format!(
            "nvme0n1: {} sectors",
            crate::emulator::qemu::NVME_IMAGE_SECTORS
        )));
    }
}
