//! Speculative-execution side channels between domains: what the host CPU
//! offers (CPUID leaf 7 EDX, IA32_ARCH_CAPABILITIES), what Keel does about
//! it on domain switches and VM entries, and which controls a guest may use
//! to protect itself.
//!
//! - **IBPB on domain switch** (Spectre v2, branch target injection): when
//!   the CPU runs a vCPU of another domain than the last one, Keel writes
//!   IA32_PRED_CMD.IBPB so one domain's branch predictions cannot steer
//!   another's.
//! - **L1D flush on VM entry** (L1TF): where the CPU is vulnerable (no
//!   RDCL_NO, no SKIP_L1DFL_VMENTRY) and has IA32_FLUSH_CMD, every entry
//!   flushes the L1 data cache, so a guest's speculative loads of
//!   not-present translations find none of Keel's or another domain's data.
//! - **VERW on VM entry** (MDS/TAA): where the CPU has MD_CLEAR and lacks
//!   MDS_NO, every entry clears the CPU's buffers (unless the L1D flush,
//!   which also overwrites them on such CPUs, already ran).
//! - **Guest controls**: IA32_SPEC_CTRL (IBRS, STIBP, SSBD as the host
//!   has them) and IA32_PRED_CMD (IBPB) work in the guest and its CPUID
//!   shows them; SPEC_CTRL is switched on entry and exit when the guest
//!   set a non-zero value.

pub const IA32_SPEC_CTRL: u32 = 0x48;
pub const IA32_PRED_CMD: u32 = 0x49;
pub const IA32_ARCH_CAPABILITIES: u32 = 0x10a;
pub const IA32_FLUSH_CMD: u32 = 0x10b;

/// IA32_PRED_CMD: indirect branch prediction barrier.
pub const PRED_CMD_IBPB: u64 = 1;
/// IA32_FLUSH_CMD: write back and invalidate the L1 data cache.
pub const FLUSH_CMD_L1D: u64 = 1;

/// CPUID.(EAX=7,ECX=0):EDX bits.
pub mod leaf7_edx {
    pub const MD_CLEAR: u32 = 1 << 10;
    pub const IBRS_IBPB: u32 = 1 << 26;
    pub const STIBP: u32 = 1 << 27;
    pub const L1D_FLUSH: u32 = 1 << 28;
    pub const ARCH_CAPABILITIES: u32 = 1 << 29;
    pub const SSBD: u32 = 1 << 31;
}

/// IA32_ARCH_CAPABILITIES bits.
pub mod arch_caps {
    pub const RDCL_NO: u64 = 1 << 0;
    pub const SKIP_L1DFL_VMENTRY: u64 = 1 << 3;
    pub const MDS_NO: u64 = 1 << 5;
}

/// IA32_SPEC_CTRL bits.
pub mod spec_ctrl {
    pub const IBRS: u64 = 1 << 0;
    pub const STIBP: u64 = 1 << 1;
    pub const SSBD: u64 = 1 << 2;
}

/// What Keel does, decided once from the host CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mitigations {
    pub ibpb_on_switch: bool,
    pub l1d_flush_on_entry: bool,
    pub verw_on_entry: bool,
    /// SPEC_CTRL bits a guest may set (0: the MSR does not exist for it).
    pub guest_spec_ctrl: u64,
    /// Whether the guest may write PRED_CMD.IBPB.
    pub guest_ibpb: bool,
}

impl Mitigations {
    /// From the host's CPUID.(7,0).EDX and, where that says it exists,
    /// IA32_ARCH_CAPABILITIES.
    pub fn for_host(leaf7_edx: u32, arch_capabilities: Option<u64>) -> Self {
        let has = |bit: u32| leaf7_edx & bit != 0;
        // Without the MSR, assume every vulnerability.
        let caps = arch_capabilities
            .filter(|_| has(leaf7_edx::ARCH_CAPABILITIES))
            .unwrap_or(0);
        let l1tf_vulnerable = caps & (arch_caps::RDCL_NO | arch_caps::SKIP_L1DFL_VMENTRY) == 0;
        let l1d_flush_on_entry = has(leaf7_edx::L1D_FLUSH) && l1tf_vulnerable;
        let mds_vulnerable = caps & arch_caps::MDS_NO == 0;
        let mut guest_spec_ctrl = 0;
        if has(leaf7_edx::IBRS_IBPB) {
            guest_spec_ctrl |= spec_ctrl::IBRS;
        }
        if has(leaf7_edx::STIBP) {
            guest_spec_ctrl |= spec_ctrl::STIBP;
        }
        if has(leaf7_edx::SSBD) {
            guest_spec_ctrl |= spec_ctrl::SSBD;
        }
        Self {
            ibpb_on_switch: has(leaf7_edx::IBRS_IBPB),
            l1d_flush_on_entry,
            verw_on_entry: has(leaf7_edx::MD_CLEAR) && mds_vulnerable && !l1d_flush_on_entry,
            guest_spec_ctrl,
            guest_ibpb: has(leaf7_edx::IBRS_IBPB),
        }
    }

    /// The leaf 7 EDX bits a guest sees: the controls it can use, and
    /// MD_CLEAR (VERW clears buffers on this CPU, so the guest's own
    /// VERW-based mitigation works). L1D_FLUSH and ARCH_CAPABILITIES stay
    /// hidden: Keel flushes for it, and does not emulate the MSR.
    pub fn guest_leaf7_edx(&self, host_leaf7_edx: u32) -> u32 {
        let mut shown = host_leaf7_edx & leaf7_edx::MD_CLEAR;
        if self.guest_ibpb {
            shown |= leaf7_edx::IBRS_IBPB;
        }
        if self.guest_spec_ctrl & spec_ctrl::STIBP != 0 {
            shown |= leaf7_edx::STIBP;
        }
        if self.guest_spec_ctrl & spec_ctrl::SSBD != 0 {
            shown |= leaf7_edx::SSBD;
        }
        shown
    }

    /// A guest's WRMSR of SPEC_CTRL: `None` is #GP (a bit the CPU lacks,
    /// or the MSR does not exist for this guest).
    pub fn check_spec_ctrl(&self, value: u64) -> Option<u64> {
        (self.guest_spec_ctrl != 0 && value & !self.guest_spec_ctrl == 0).then_some(value)
    }

    /// A guest's WRMSR of PRED_CMD: whether to issue an IBPB (`Some(true)`),
    /// do nothing (`Some(false)`, a zero write) or raise #GP (`None`).
    pub fn check_pred_cmd(&self, value: u64) -> Option<bool> {
        match value {
            0 if self.guest_ibpb => Some(false),
            PRED_CMD_IBPB if self.guest_ibpb => Some(true),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u32 = leaf7_edx::MD_CLEAR
        | leaf7_edx::IBRS_IBPB
        | leaf7_edx::STIBP
        | leaf7_edx::L1D_FLUSH
        | leaf7_edx::ARCH_CAPABILITIES
        | leaf7_edx::SSBD;

    #[test]
    fn a_cpu_without_the_controls_gets_no_mitigation_and_guests_no_msrs() {
        let none = Mitigations::for_host(0, None);
        assert_eq!(none, Mitigations::default());
        assert_eq!(none.guest_leaf7_edx(0), 0);
        assert_eq!(none.check_spec_ctrl(0), None, "SPEC_CTRL does not exist");
        assert_eq!(none.check_pred_cmd(1), None);
    }

    #[test]
    fn a_vulnerable_cpu_flushes_l1d_on_entry_instead_of_verw() {
        let old = Mitigations::for_host(ALL & !leaf7_edx::ARCH_CAPABILITIES, None);
        assert!(old.ibpb_on_switch);
        assert!(old.l1d_flush_on_entry);
        assert!(!old.verw_on_entry, "the L1D flush also clears the buffers");
        let no_flush = Mitigations::for_host(ALL & !(leaf7_edx::ARCH_CAPABILITIES | leaf7_edx::L1D_FLUSH), None);
        assert!(no_flush.verw_on_entry);
    }

    #[test]
    fn arch_capabilities_lift_the_entry_flushes() {
        let l1tf_safe = Mitigations::for_host(ALL, Some(arch_caps::RDCL_NO));
        assert!(!l1tf_safe.l1d_flush_on_entry);
        assert!(l1tf_safe.verw_on_entry, "still MDS-vulnerable");
        let fixed = Mitigations::for_host(ALL, Some(arch_caps::SKIP_L1DFL_VMENTRY | arch_caps::MDS_NO));
        assert!(!fixed.l1d_flush_on_entry && !fixed.verw_on_entry);
        assert!(fixed.ibpb_on_switch, "branch predictions are still shared");
        // The MSR's value counts only when CPUID says the MSR exists.
        let unannounced = Mitigations::for_host(ALL & !leaf7_edx::ARCH_CAPABILITIES, Some(arch_caps::RDCL_NO));
        assert!(unannounced.l1d_flush_on_entry);
    }

    #[test]
    fn guests_see_and_may_use_only_what_the_host_has() {
        let host = leaf7_edx::IBRS_IBPB | leaf7_edx::MD_CLEAR;
        let policy = Mitigations::for_host(host, None);
        assert_eq!(policy.guest_leaf7_edx(host), host);
        assert_eq!(policy.check_spec_ctrl(spec_ctrl::IBRS), Some(spec_ctrl::IBRS));
        assert_eq!(policy.check_spec_ctrl(spec_ctrl::SSBD), None, "no SSBD on this host");
        assert_eq!(policy.check_spec_ctrl(1 << 40), None);
        assert_eq!(policy.check_pred_cmd(PRED_CMD_IBPB), Some(true));
        assert_eq!(policy.check_pred_cmd(0), Some(false));
        assert_eq!(policy.check_pred_cmd(2), None);
        let full = Mitigations::for_host(ALL, None);
        let shown = full.guest_leaf7_edx(ALL);
        assert_eq!(shown & (leaf7_edx::L1D_FLUSH | leaf7_edx::ARCH_CAPABILITIES), 0);
        assert_eq!(
            full.check_spec_ctrl(spec_ctrl::IBRS | spec_ctrl::STIBP | spec_ctrl::SSBD),
            Some(7)
        );
    }
}
