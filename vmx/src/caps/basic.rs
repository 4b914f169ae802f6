//! `IA32_VMX_BASIC` and `IA32_FEATURE_CONTROL` decoding (SDM Vol. 3 A.1, 24.7).

use core::fmt;

/// Decoded `IA32_VMX_BASIC`: what the VMXON/VMCS regions must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmxBasic {
    /// Must be written to the first dword of the VMXON region and every VMCS.
    pub revision_id: u32,
    /// Bytes to allocate for the VMXON region and each VMCS (at most 4096).
    pub region_size: u16,
    /// Physical addresses of VMX regions are limited to 32 bits (bit 48).
    pub physical_address_32bit: bool,
    /// Memory type the CPU uses to access the VMCS (bits 53:50, 6 = write-back).
    pub memory_type: u8,
    /// INS/OUTS exits report instruction information (bit 54).
    pub ins_outs_info: bool,
    /// The `IA32_VMX_TRUE_*_CTLS` MSRs exist and must be used (bit 55).
    pub true_controls: bool,
}

/// The only VMCS memory type Intel currently reports.
pub const MEMORY_TYPE_WRITE_BACK: u8 = 6;

impl VmxBasic {
    pub fn from_msr(raw: u64) -> Self {
        Self {
            // Bit 31 is always zero; masking keeps a corrupt value from leaking
            // into the region header, where bit 31 means "shadow VMCS".
            revision_id: (raw & 0x7FFF_FFFF) as u32,
            region_size: ((raw >> 32) & 0x1FFF) as u16,
            physical_address_32bit: raw & (1 << 48) != 0,
            memory_type: ((raw >> 50) & 0xF) as u8,
            ins_outs_info: raw & (1 << 54) != 0,
            true_controls: raw & (1 << 55) != 0,
        }
    }
}

/// Decoded `IA32_FEATURE_CONTROL`, the firmware's say on whether VMX may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureControl {
    /// Once set, the MSR cannot be written until reset.
    pub locked: bool,
    pub vmx_inside_smx: bool,
    pub vmx_outside_smx: bool,
}

/// What the feature-control MSR allows us to do about VMX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmxAvailability {
    /// Locked with VMX outside SMX enabled: VMXON may be executed.
    Enabled,
    /// Unlocked: write [`FeatureControl::ENABLE_VALUE`] first, then VMXON.
    CallerMayEnable,
    /// Locked with VMX outside SMX disabled (firmware setting): VMXON would #GP.
    DisabledByFirmware,
}

impl FeatureControl {
    pub const LOCK: u64 = 1 << 0;
    pub const VMX_INSIDE_SMX: u64 = 1 << 1;
    pub const VMX_OUTSIDE_SMX: u64 = 1 << 2;
    /// Bits to OR into the current value when the MSR is still unlocked.
    pub const ENABLE_VALUE: u64 = Self::LOCK | Self::VMX_OUTSIDE_SMX;

    pub fn from_msr(raw: u64) -> Self {
        Self {
            locked: raw & Self::LOCK != 0,
            vmx_inside_smx: raw & Self::VMX_INSIDE_SMX != 0,
            vmx_outside_smx: raw & Self::VMX_OUTSIDE_SMX != 0,
        }
    }

    pub fn availability(self) -> VmxAvailability {
        match (self.locked, self.vmx_outside_smx) {
            (true, true) => VmxAvailability::Enabled,
            (false, _) => VmxAvailability::CallerMayEnable,
            (true, false) => VmxAvailability::DisabledByFirmware,
        }
    }
}

/// Shorthand for `FeatureControl::from_msr(raw).availability()`.
pub fn vmx_availability(feature_control: u64) -> VmxAvailability {
    FeatureControl::from_msr(feature_control).availability()
}

impl fmt::Display for VmxAvailability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enabled => "VMX enabled and locked by firmware",
            Self::CallerMayEnable => "IA32_FEATURE_CONTROL unlocked; VMX can be enabled",
            Self::DisabledByFirmware => "VMX disabled and locked by firmware (check BIOS settings)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_bochs_skylake_vmx_basic() {
        let basic = VmxBasic::from_msr(0x00DA_0400_0000_002B);
        assert_eq!(basic.revision_id, 0x2B);
        assert_eq!(basic.region_size, 0x400);
        assert_eq!(basic.memory_type, MEMORY_TYPE_WRITE_BACK);
        assert!(basic.ins_outs_info);
        assert!(basic.true_controls);
        assert!(!basic.physical_address_32bit);
    }

    #[test]
    fn vmx_basic_without_true_controls() {
        let basic = VmxBasic::from_msr(0x0018_1000_0000_0004);
        assert_eq!(basic.revision_id, 4);
        assert_eq!(basic.region_size, 0x1000);
        assert_eq!(basic.memory_type, 6);
        assert!(!basic.true_controls);
        assert!(!basic.ins_outs_info);
    }

    #[test]
    fn revision_id_never_carries_bit_31() {
        assert_eq!(VmxBasic::from_msr(0xFFFF_FFFF).revision_id, 0x7FFF_FFFF);
    }

    #[test]
    fn feature_control_locked_and_enabled() {
        let fc = FeatureControl::from_msr(0b101);
        assert!(fc.locked && fc.vmx_outside_smx && !fc.vmx_inside_smx);
        assert_eq!(fc.availability(), VmxAvailability::Enabled);
    }

    #[test]
    fn feature_control_unlocked_lets_caller_enable() {
        assert_eq!(vmx_availability(0), VmxAvailability::CallerMayEnable);
        assert_eq!(vmx_availability(0b100), VmxAvailability::CallerMayEnable);
        assert_eq!(vmx_availability(FeatureControl::ENABLE_VALUE), VmxAvailability::Enabled);
    }

    #[test]
    fn feature_control_locked_without_vmx_is_unusable() {
        assert_eq!(vmx_availability(0b001), VmxAvailability::DisabledByFirmware);
        // VMX inside SMX alone does not help a non-SMX hypervisor.
        assert_eq!(vmx_availability(0b011), VmxAvailability::DisabledByFirmware);
    }
}
