//! Whether this host's KVM can run Keel (a VMX guest): nested VMX. `xtask
//! run` then prefers QEMU with KVM over Bochs, and boot tests that need it
//! (`TestCase::requires_nested_kvm`) run; without it they are skipped.

use std::fs::{self, OpenOptions};

const DEV_KVM: &str = "/dev/kvm";
const CPUINFO: &str = "/proc/cpuinfo";
const KVM_INTEL_NESTED: &str = "/sys/module/kvm_intel/parameters/nested";

pub fn accepts_vmx_guests() -> bool {
    why_no_vmx_guests().is_none()
}

/// Why this host's KVM cannot run VMX guests, or `None` when it can.
pub fn why_no_vmx_guests() -> Option<&'static str> {
    // QEMU opens /dev/kvm read-write, so that is what has to work.
    let kvm_usable = OpenOptions::new().read(true).write(true).open(DEV_KVM).is_ok();
    let cpuinfo = fs::read_to_string(CPUINFO).unwrap_or_default();
    let nested = fs::read_to_string(KVM_INTEL_NESTED).ok();
    missing_for_vmx_guests(kvm_usable, &cpuinfo, nested.as_deref())
}

#[cfg(test)]
fn vmx_guests_possible(kvm_usable: bool, cpuinfo: &str, nested_parameter: Option<&str>) -> bool {
    missing_for_vmx_guests(kvm_usable, cpuinfo, nested_parameter).is_none()
}

/// A paravirtual /dev/kvm (as on the CI machines) or an AMD host has no
/// `vmx` flag; kvm_intel must also allow nesting. The first condition that
/// fails, in words.
fn missing_for_vmx_guests(kvm_usable: bool, cpuinfo: &str, nested_parameter: Option<&str>) -> Option<&'static str> {
    if !kvm_usable {
        return Some("no /dev/kvm this user can open read-write");
    }
    if !cpu_has_flag(cpuinfo, "vmx") {
        return Some("the CPU shows no vmx flag (an AMD host, or a paravirtual /dev/kvm without nested VMX)");
    }
    match nested_parameter.map(str::trim) {
        Some("Y" | "1") => None,
        Some(_) => Some("kvm_intel does not allow nesting (/sys/module/kvm_intel/parameters/nested is not Y)"),
        None => Some("kvm_intel is not loaded (no /sys/module/kvm_intel/parameters/nested)"),
    }
}

fn cpu_has_flag(cpuinfo: &str, flag: &str) -> bool {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.trim() == "flags")
        .any(|(_, flags)| flags.split_whitespace().any(|candidate| candidate == flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTEL: &str = "processor\t: 0\nflags\t\t: fpu vme vmx sse2\nbugs\t\t: spectre_v1\n";
    const AMD: &str = "processor\t: 0\nflags\t\t: fpu svm sse2\nvmx flags\t: none\n";

    #[test]
    fn vmx_flag_is_read_from_the_flags_line_only() {
        assert!(cpu_has_flag(INTEL, "vmx"));
        assert!(!cpu_has_flag(AMD, "vmx"), "the 'vmx flags' key is not the flag");
        assert!(!cpu_has_flag("flags : vmxfoo\n", "vmx"));
    }

    #[test]
    fn kvm_is_chosen_only_when_all_three_conditions_hold() {
        assert!(vmx_guests_possible(true, INTEL, Some("Y\n")));
        assert!(vmx_guests_possible(true, INTEL, Some("1\n")));
        assert!(!vmx_guests_possible(false, INTEL, Some("Y\n")));
        assert!(!vmx_guests_possible(true, AMD, Some("Y\n")));
        assert!(!vmx_guests_possible(true, INTEL, Some("N\n")));
        assert!(!vmx_guests_possible(true, INTEL, None));
    }

    #[test]
    fn the_reason_names_the_first_missing_condition() {
        assert_eq!(missing_for_vmx_guests(true, INTEL, Some("Y\n")), None);
        let reason = |kvm, cpuinfo, nested| missing_for_vmx_guests(kvm, cpuinfo, nested).unwrap();
        assert!(reason(false, AMD, None).contains("/dev/kvm"));
        assert!(reason(true, AMD, Some("Y\n")).contains("no vmx flag"));
        assert!(reason(true, INTEL, Some("N\n")).contains("does not allow nesting"));
        assert!(reason(true, INTEL, None).contains("kvm_intel is not loaded"));
    }
}
