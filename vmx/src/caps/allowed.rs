//! Allowed-settings decoding for the VMX control capability MSRs (SDM A.3–A.5).
//!
//! Each control MSR reports, per bit, whether the control must be 1 (low
//! dword, "allowed 0-settings") and whether it may be 1 (high dword, "allowed
//! 1-settings"). [`AllowedControls::adjust`] turns the controls a hypervisor
//! wants into a value VM entry will accept, failing loudly if a control the
//! hypervisor cannot work without is missing.

use core::fmt;

/// Which VMCS control word an MSR or error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    PinBased,
    PrimaryProcessor,
    SecondaryProcessor,
    Exit,
    Entry,
}

impl ControlKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::PinBased => "pin-based VM-execution controls",
            Self::PrimaryProcessor => "primary processor-based VM-execution controls",
            Self::SecondaryProcessor => "secondary processor-based VM-execution controls",
            Self::Exit => "VM-exit controls",
            Self::Entry => "VM-entry controls",
        }
    }
}

/// Required controls the processor cannot set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlError {
    pub kind: ControlKind,
    /// The required bits that the capability MSR does not allow to be 1.
    pub unsupported: u32,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "required {} not supported by this CPU: bits {:#010x}",
            self.kind.name(),
            self.unsupported
        )
    }
}

/// Allowed settings of one control word, decoded from its capability MSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowedControls {
    pub kind: ControlKind,
    /// Bits that must be 1 (low dword of the MSR).
    pub must_be_one: u32,
    /// Bits that may be 1 (high dword of the MSR); every other bit must be 0.
    pub may_be_one: u32,
}

impl AllowedControls {
    pub fn from_msr(kind: ControlKind, raw: u64) -> Self {
        Self {
            kind,
            must_be_one: raw as u32,
            may_be_one: (raw >> 32) as u32,
        }
    }

    /// Whether every bit in `bits` may be set to 1.
    pub fn supports(&self, bits: u32) -> bool {
        bits & !self.may_be_one == 0
    }

    /// Builds the control value to write to the VMCS.
    ///
    /// `required` bits must be supported or the call fails naming them;
    /// `optional` bits are silently dropped when unsupported; bits the CPU
    /// insists on are forced to 1.
    pub fn adjust(&self, required: u32, optional: u32) -> Result<u32, ControlError> {
        let unsupported = required & !self.may_be_one;
        if unsupported != 0 {
            return Err(ControlError {
                kind: self.kind,
                unsupported,
            });
        }
        Ok(((required | optional) & self.may_be_one) | self.must_be_one)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // must be one: bits 1, 2, 4; may be one: bits 0..=7 and 31.
    const RAW: u64 = (0x8000_00FF << 32) | 0x16;

    fn pin() -> AllowedControls {
        AllowedControls::from_msr(ControlKind::PinBased, RAW)
    }

    #[test]
    fn splits_msr_into_must_and_may() {
        let allowed = pin();
        assert_eq!(allowed.must_be_one, 0x16);
        assert_eq!(allowed.may_be_one, 0x8000_00FF);
    }

    #[test]
    fn forces_must_be_one_bits() {
        assert_eq!(pin().adjust(0, 0), Ok(0x16));
        assert_eq!(pin().adjust(1 << 0, 0), Ok(0x17));
    }

    #[test]
    fn drops_unsupported_optional_bits() {
        assert_eq!(pin().adjust(1 << 31, (1 << 8) | (1 << 3)), Ok(0x8000_001E));
    }

    #[test]
    fn required_unsupported_bits_are_named() {
        let err = pin().adjust((1 << 8) | (1 << 9) | (1 << 3), 0).unwrap_err();
        assert_eq!(err.kind, ControlKind::PinBased);
        assert_eq!(err.unsupported, (1 << 8) | (1 << 9));
        let message = err.to_string();
        assert!(message.contains("pin-based"), "{message}");
        assert!(message.contains("0x00000300"), "{message}");
    }

    #[test]
    fn supports_checks_allowed_one_settings() {
        assert!(pin().supports(0x8000_0001));
        assert!(!pin().supports(1 << 30));
    }
}
