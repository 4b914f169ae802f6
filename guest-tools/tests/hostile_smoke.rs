//! `keel-stress hostile` on the build host, limited to what touches nothing
//! but the process itself: CPUID, user-mode VMCALL (any hypervisor refuses
//! it at CPL 3; without one it is #UD), single-stepping (CPUID, RDTSC,
//! VMCALL; REP MOVSB on RAM) and #AC. Never MSRs, ports or /dev/mem: those
//! are for a guest under Keel. Breakpoints and INT1 (group `db`) are left
//! out too: a development VM's own hypervisor may mishandle a user-mode
//! INT1 (one seen here returns onto the INT1 itself, forever), which is not
//! this program's failure.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::process::Command;

#[test]
fn the_in_process_groups_run_clean_on_the_host() {
    let output = Command::new(env!("CARGO_BIN_EXE_keel-stress"))
        .args([
            "hostile",
            "--seed",
            "7",
            "--rounds",
            "2",
            "--skip",
            "msr,port,mem,string,db",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("keel-stress: hostile start seed=7 "), "{stdout}");
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("keel-stress: hostile done seed=7 rounds=2 "))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    assert!(summary.ends_with(" failures=0"), "{summary}");
    for field in ["cpuid", "vmcall", "tf_steps", "ac_traps", "tf_string_steps"] {
        let value: u64 = summary
            .split(' ')
            .find_map(|word| word.strip_prefix(&format!("{field}=")))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{field} in {summary}"));
        assert!(value > 0, "{field}: {summary}");
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
}
