//! Whether this host's KVM can run Keel (a VMX guest): `xtask run` then
//! prefers QEMU with KVM over Bochs.

use std::fs::{self, OpenOptions};

const DEV_KVM: &str = "/dev/kvm";
const CPUINFO: &str = "/proc/cpuinfo";
const KVM_INTEL_NESTED: &str = "/sys/module/kvm_intel/parameters/nested";

pub fn accepts_vmx_guests() -> bool {
    // QEMU opens /dev/kvm read-write, so that is what has to work.
    let kvm_usable = OpenOptions::new().read(true).write(true).open(DEV_KVM).is_ok();
    let cpuinfo = fs::read_to_string(CPUINFO).unwrap_or_default();
    let nested = fs::read_to_string(KVM_INTEL_NESTED).ok();
    vmx_guests_possible(kvm_usable, &cpuinfo, nested.as_deref())
}

/// A paravirtual /dev/kvm (as on the CI machines) or an AMD host has no
/// `vmx` flag; kvm_intel must also allow nesting.
fn vmx_guests_possible(kvm_usable: bool, cpuinfo: &str, nested_parameter: Option<&str>) -> bool {
    let nested = matches!(nested_parameter.map(str::trim), Some("Y" | "1"));
    kvm_usable && cpu_has_flag(cpuinfo, "vmx") && nested
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
}
