//! Decoding of the VMX capability MSRs.
//!
//! The caller reads the raw MSRs (usually via [`CapabilityMsrs::read_with`],
//! which knows which MSRs exist) and this module turns them into typed
//! capabilities and adjusted control words. Nothing here touches hardware.

mod allowed;
mod basic;
mod cr;
mod ept_vpid;
mod misc;

pub use allowed::{AllowedControls, ControlError, ControlKind};
pub use basic::{vmx_availability, FeatureControl, VmxAvailability, VmxBasic, MEMORY_TYPE_WRITE_BACK};
pub use cr::{cr0_fixed0_unrestricted, cr_is_valid, fixed_cr, CR0_PE, CR0_PG, CR4_VMXE};
pub use ept_vpid::EptVpidCaps;
pub use misc::{ActivityState, VmxMisc};

use crate::controls::{PrimaryControls, SecondaryControls};
use crate::msr;

/// Raw values of every VMX capability MSR. MSRs the processor does not
/// implement are left at 0, which decodes as "nothing allowed".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapabilityMsrs {
    pub basic: u64,
    pub pinbased: u64,
    pub procbased: u64,
    pub exit: u64,
    pub entry: u64,
    pub misc: u64,
    pub cr0_fixed0: u64,
    pub cr0_fixed1: u64,
    pub cr4_fixed0: u64,
    pub cr4_fixed1: u64,
    pub vmcs_enum: u64,
    pub procbased2: u64,
    pub ept_vpid_cap: u64,
    pub true_pinbased: u64,
    pub true_procbased: u64,
    pub true_exit: u64,
    pub true_entry: u64,
    pub vmfunc: u64,
}

impl CapabilityMsrs {
    /// Reads all capability MSRs through `rdmsr`, skipping those whose
    /// existence the SDM makes conditional (reading them would #GP).
    pub fn read_with(mut rdmsr: impl FnMut(u32) -> u64) -> Self {
        let mut caps = Self {
            basic: rdmsr(msr::IA32_VMX_BASIC),
            pinbased: rdmsr(msr::IA32_VMX_PINBASED_CTLS),
            procbased: rdmsr(msr::IA32_VMX_PROCBASED_CTLS),
            exit: rdmsr(msr::IA32_VMX_EXIT_CTLS),
            entry: rdmsr(msr::IA32_VMX_ENTRY_CTLS),
            misc: rdmsr(msr::IA32_VMX_MISC),
            cr0_fixed0: rdmsr(msr::IA32_VMX_CR0_FIXED0),
            cr0_fixed1: rdmsr(msr::IA32_VMX_CR0_FIXED1),
            cr4_fixed0: rdmsr(msr::IA32_VMX_CR4_FIXED0),
            cr4_fixed1: rdmsr(msr::IA32_VMX_CR4_FIXED1),
            vmcs_enum: rdmsr(msr::IA32_VMX_VMCS_ENUM),
            ..Self::default()
        };
        if VmxBasic::from_msr(caps.basic).true_controls {
            caps.true_pinbased = rdmsr(msr::IA32_VMX_TRUE_PINBASED_CTLS);
            caps.true_procbased = rdmsr(msr::IA32_VMX_TRUE_PROCBASED_CTLS);
            caps.true_exit = rdmsr(msr::IA32_VMX_TRUE_EXIT_CTLS);
            caps.true_entry = rdmsr(msr::IA32_VMX_TRUE_ENTRY_CTLS);
        }
        let primary_may_be_one = (caps.procbased >> 32) as u32;
        if primary_may_be_one & PrimaryControls::ACTIVATE_SECONDARY.bits() != 0 {
            caps.procbased2 = rdmsr(msr::IA32_VMX_PROCBASED_CTLS2);
            let secondary_may_be_one = SecondaryControls::from_bits_retain((caps.procbased2 >> 32) as u32);
            if secondary_may_be_one.intersects(SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VPID) {
                caps.ept_vpid_cap = rdmsr(msr::IA32_VMX_EPT_VPID_CAP);
            }
            if secondary_may_be_one.contains(SecondaryControls::ENABLE_VMFUNC) {
                caps.vmfunc = rdmsr(msr::IA32_VMX_VMFUNC);
            }
        }
        caps
    }

    /// The MSR that reports the allowed settings of `kind`: the TRUE variant
    /// when `IA32_VMX_BASIC[55]` says it exists, because the legacy MSRs
    /// report some default-1 controls as must-be-one even when they can be 0.
    pub fn controls_msr_for(kind: ControlKind, basic: &VmxBasic) -> u32 {
        let (legacy, true_variant) = match kind {
            ControlKind::PinBased => (msr::IA32_VMX_PINBASED_CTLS, msr::IA32_VMX_TRUE_PINBASED_CTLS),
            ControlKind::PrimaryProcessor => (msr::IA32_VMX_PROCBASED_CTLS, msr::IA32_VMX_TRUE_PROCBASED_CTLS),
            ControlKind::Exit => (msr::IA32_VMX_EXIT_CTLS, msr::IA32_VMX_TRUE_EXIT_CTLS),
            ControlKind::Entry => (msr::IA32_VMX_ENTRY_CTLS, msr::IA32_VMX_TRUE_ENTRY_CTLS),
            ControlKind::SecondaryProcessor => return msr::IA32_VMX_PROCBASED_CTLS2,
        };
        if basic.true_controls {
            true_variant
        } else {
            legacy
        }
    }

    pub fn vmx_basic(&self) -> VmxBasic {
        VmxBasic::from_msr(self.basic)
    }

    pub fn vmx_misc(&self) -> VmxMisc {
        VmxMisc::from_msr(self.misc)
    }

    pub fn ept_vpid(&self) -> EptVpidCaps {
        EptVpidCaps::from_msr(self.ept_vpid_cap)
    }

    /// Raw value of the capability MSR numbered `msr`, if it is one we hold.
    fn raw(&self, msr_number: u32) -> u64 {
        match msr_number {
            msr::IA32_VMX_PINBASED_CTLS => self.pinbased,
            msr::IA32_VMX_PROCBASED_CTLS => self.procbased,
            msr::IA32_VMX_EXIT_CTLS => self.exit,
            msr::IA32_VMX_ENTRY_CTLS => self.entry,
            msr::IA32_VMX_PROCBASED_CTLS2 => self.procbased2,
            msr::IA32_VMX_TRUE_PINBASED_CTLS => self.true_pinbased,
            msr::IA32_VMX_TRUE_PROCBASED_CTLS => self.true_procbased,
            msr::IA32_VMX_TRUE_EXIT_CTLS => self.true_exit,
            msr::IA32_VMX_TRUE_ENTRY_CTLS => self.true_entry,
            _ => 0,
        }
    }

    /// Allowed settings for `kind`, taken from the right (TRUE or legacy) MSR.
    /// Secondary controls report nothing allowed when the primary controls
    /// cannot activate them.
    pub fn allowed_controls(&self, kind: ControlKind) -> AllowedControls {
        let msr_number = Self::controls_msr_for(kind, &self.vmx_basic());
        AllowedControls::from_msr(kind, self.raw(msr_number))
    }

    /// `allowed_controls(kind).adjust(required, optional)`.
    pub fn adjust_controls(&self, kind: ControlKind, required: u32, optional: u32) -> Result<u32, ControlError> {
        self.allowed_controls(kind).adjust(required, optional)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC_WITH_TRUE: u64 = 0x00DA_0400_0000_002B;
    const BASIC_WITHOUT_TRUE: u64 = 0x0058_0400_0000_002B;

    #[test]
    fn true_msr_chosen_only_when_basic_bit_55_set() {
        let with_true = VmxBasic::from_msr(BASIC_WITH_TRUE);
        let without_true = VmxBasic::from_msr(BASIC_WITHOUT_TRUE);
        let pairs = [
            (ControlKind::PinBased, 0x481, 0x48D),
            (ControlKind::PrimaryProcessor, 0x482, 0x48E),
            (ControlKind::Exit, 0x483, 0x48F),
            (ControlKind::Entry, 0x484, 0x490),
        ];
        for (kind, legacy, true_variant) in pairs {
            assert_eq!(CapabilityMsrs::controls_msr_for(kind, &with_true), true_variant);
            assert_eq!(CapabilityMsrs::controls_msr_for(kind, &without_true), legacy);
        }
    }

    #[test]
    fn secondary_controls_have_no_true_variant() {
        for basic in [BASIC_WITH_TRUE, BASIC_WITHOUT_TRUE] {
            let basic = VmxBasic::from_msr(basic);
            assert_eq!(
                CapabilityMsrs::controls_msr_for(ControlKind::SecondaryProcessor, &basic),
                0x48B
            );
        }
    }

    #[test]
    fn allowed_controls_uses_true_values() {
        let caps = CapabilityMsrs {
            basic: BASIC_WITH_TRUE,
            pinbased: 0x0000_007F_0000_0016,
            true_pinbased: 0x0000_007F_0000_0000,
            ..CapabilityMsrs::default()
        };
        let allowed = caps.allowed_controls(ControlKind::PinBased);
        assert_eq!(allowed.must_be_one, 0);
        assert_eq!(caps.adjust_controls(ControlKind::PinBased, 1, 0), Ok(1));

        let legacy = CapabilityMsrs {
            basic: BASIC_WITHOUT_TRUE,
            ..caps
        };
        assert_eq!(legacy.adjust_controls(ControlKind::PinBased, 1, 0), Ok(0x17));
    }

    #[test]
    fn read_with_skips_msrs_that_do_not_exist() {
        // No TRUE controls, no secondary controls: reading 0x48B..=0x491 would #GP.
        let caps = CapabilityMsrs::read_with(|msr_number| {
            assert!(
                msr_number <= msr::IA32_VMX_VMCS_ENUM,
                "read nonexistent MSR {msr_number:#x}"
            );
            if msr_number == msr::IA32_VMX_BASIC {
                BASIC_WITHOUT_TRUE
            } else {
                u64::from(msr_number)
            }
        });
        assert_eq!(caps.basic, BASIC_WITHOUT_TRUE);
        assert_eq!(caps.misc, 0x485);
        assert_eq!(caps.procbased2, 0);
        assert_eq!(caps.true_entry, 0);
    }

    #[test]
    fn read_with_reads_conditional_msrs_when_advertised() {
        let secondary_allowed = u64::from(PrimaryControls::ACTIVATE_SECONDARY.bits()) << 32;
        let ept_and_vmfunc = u64::from((SecondaryControls::ENABLE_EPT | SecondaryControls::ENABLE_VMFUNC).bits()) << 32;
        let caps = CapabilityMsrs::read_with(|msr_number| match msr_number {
            msr::IA32_VMX_BASIC => BASIC_WITH_TRUE,
            msr::IA32_VMX_PROCBASED_CTLS => secondary_allowed,
            msr::IA32_VMX_PROCBASED_CTLS2 => ept_and_vmfunc,
            other => u64::from(other),
        });
        assert_eq!(caps.procbased2, ept_and_vmfunc);
        assert_eq!(caps.ept_vpid_cap, 0x48C);
        assert_eq!(caps.true_pinbased, 0x48D);
        assert_eq!(caps.true_entry, 0x490);
        assert_eq!(caps.vmfunc, 0x491);
    }
}
