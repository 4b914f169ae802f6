//! Model-specific register numbers used by VMX setup and guest-state handling.
//!
//! Numbers are from the Intel SDM Vol. 4 (MSR index) and Vol. 3 Appendix A
//! (VMX capability reporting).

/// Feature-control lock and VMX enable bits; decoded by [`crate::caps::FeatureControl`].
pub const IA32_FEATURE_CONTROL: u32 = 0x3A;

/// VMCS revision, region size and memory type; see [`crate::caps::VmxBasic`].
pub const IA32_VMX_BASIC: u32 = 0x480;
pub const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
pub const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
pub const IA32_VMX_EXIT_CTLS: u32 = 0x483;
pub const IA32_VMX_ENTRY_CTLS: u32 = 0x484;
pub const IA32_VMX_MISC: u32 = 0x485;
pub const IA32_VMX_CR0_FIXED0: u32 = 0x486;
pub const IA32_VMX_CR0_FIXED1: u32 = 0x487;
pub const IA32_VMX_CR4_FIXED0: u32 = 0x488;
pub const IA32_VMX_CR4_FIXED1: u32 = 0x489;
pub const IA32_VMX_VMCS_ENUM: u32 = 0x48A;
pub const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48B;
pub const IA32_VMX_EPT_VPID_CAP: u32 = 0x48C;
pub const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48D;
pub const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48E;
pub const IA32_VMX_TRUE_EXIT_CTLS: u32 = 0x48F;
pub const IA32_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;
pub const IA32_VMX_VMFUNC: u32 = 0x491;

pub const IA32_SYSENTER_CS: u32 = 0x174;
pub const IA32_SYSENTER_ESP: u32 = 0x175;
pub const IA32_SYSENTER_EIP: u32 = 0x176;
pub const IA32_DEBUGCTL: u32 = 0x1D9;
pub const IA32_PAT: u32 = 0x277;
pub const IA32_EFER: u32 = 0xC000_0080;
pub const IA32_FS_BASE: u32 = 0xC000_0100;
pub const IA32_GS_BASE: u32 = 0xC000_0101;
pub const IA32_KERNEL_GS_BASE: u32 = 0xC000_0102;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmx_capability_msrs_are_contiguous_from_basic() {
        // The SDM allocates the capability MSRs as one block; a typo in any
        // constant would break the sequence.
        let block = [
            IA32_VMX_BASIC,
            IA32_VMX_PINBASED_CTLS,
            IA32_VMX_PROCBASED_CTLS,
            IA32_VMX_EXIT_CTLS,
            IA32_VMX_ENTRY_CTLS,
            IA32_VMX_MISC,
            IA32_VMX_CR0_FIXED0,
            IA32_VMX_CR0_FIXED1,
            IA32_VMX_CR4_FIXED0,
            IA32_VMX_CR4_FIXED1,
            IA32_VMX_VMCS_ENUM,
            IA32_VMX_PROCBASED_CTLS2,
            IA32_VMX_EPT_VPID_CAP,
            IA32_VMX_TRUE_PINBASED_CTLS,
            IA32_VMX_TRUE_PROCBASED_CTLS,
            IA32_VMX_TRUE_EXIT_CTLS,
            IA32_VMX_TRUE_ENTRY_CTLS,
            IA32_VMX_VMFUNC,
        ];
        for (offset, msr) in (0u32..).zip(block) {
            assert_eq!(msr, 0x480 + offset);
        }
    }

    #[test]
    fn well_known_msr_numbers() {
        assert_eq!(IA32_EFER, 0xC000_0080);
        assert_eq!(IA32_PAT, 0x277);
        assert_eq!(IA32_KERNEL_GS_BASE, 0xC000_0102);
    }
}
