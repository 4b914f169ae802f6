//! VMX instruction failure reporting (SDM Vol. 3 31.2, 31.4).
//!
//! A VMX instruction signals failure through RFLAGS: CF for VMfailInvalid
//! (no current VMCS to hold an error number) and ZF for VMfailValid (the
//! number is in the `VM_INSTRUCTION_ERROR` field, decoded by
//! [`VmInstructionError`]).

use core::fmt;

/// How a VMX instruction failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmFail {
    /// CF set: there is no current VMCS, so no error number is available.
    Invalid,
    /// ZF set: read `VM_INSTRUCTION_ERROR` for the reason.
    Valid,
}

impl VmFail {
    /// Interprets CF/ZF as left by a VMX instruction.
    pub fn check(carry: bool, zero: bool) -> Result<(), VmFail> {
        if carry {
            Err(VmFail::Invalid)
        } else if zero {
            Err(VmFail::Valid)
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for VmFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Invalid => "VMfailInvalid (no current VMCS)",
            Self::Valid => "VMfailValid (see VM-instruction error field)",
        })
    }
}

macro_rules! instruction_errors {
    ($($name:ident = $number:literal => $text:literal,)*) => {
        /// The value of the `VM_INSTRUCTION_ERROR` field after VMfailValid.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum VmInstructionError {
            $($name,)*
            /// Reserved or newer error number.
            Unknown(u32),
        }

        impl VmInstructionError {
            pub fn from_u32(number: u32) -> Self {
                match number {
                    $($number => Self::$name,)*
                    other => Self::Unknown(other),
                }
            }

            pub fn number(self) -> u32 {
                match self {
                    $(Self::$name => $number,)*
                    Self::Unknown(number) => number,
                }
            }

            /// The SDM's description of the error.
            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$name => $text,)*
                    Self::Unknown(_) => "unknown error",
                }
            }
        }
    };
}

instruction_errors! {
    VmcallInRoot = 1 => "VMCALL executed in VMX root operation",
    VmclearInvalidAddress = 2 => "VMCLEAR with invalid physical address",
    VmclearVmxonPointer = 3 => "VMCLEAR with VMXON pointer",
    VmlaunchNonClearVmcs = 4 => "VMLAUNCH with non-clear VMCS",
    VmresumeNonLaunchedVmcs = 5 => "VMRESUME with non-launched VMCS",
    VmresumeAfterVmxoff = 6 => "VMRESUME after VMXOFF",
    EntryInvalidControlFields = 7 => "VM entry with invalid control field(s)",
    EntryInvalidHostStateFields = 8 => "VM entry with invalid host-state field(s)",
    VmptrldInvalidAddress = 9 => "VMPTRLD with invalid physical address",
    VmptrldVmxonPointer = 10 => "VMPTRLD with VMXON pointer",
    VmptrldIncorrectRevision = 11 => "VMPTRLD with incorrect VMCS revision identifier",
    UnsupportedVmcsComponent = 12 => "VMREAD/VMWRITE from/to unsupported VMCS component",
    VmwriteReadOnlyComponent = 13 => "VMWRITE to read-only VMCS component",
    VmxonInRoot = 15 => "VMXON executed in VMX root operation",
    EntryInvalidExecutiveVmcsPointer = 16 => "VM entry with invalid executive-VMCS pointer",
    EntryNonLaunchedExecutiveVmcs = 17 => "VM entry with non-launched executive VMCS",
    EntryExecutiveVmcsNotVmxonPointer = 18 => "VM entry with executive-VMCS pointer not VMXON pointer",
    VmcallNonClearVmcs = 19 => "VMCALL with non-clear VMCS",
    VmcallInvalidExitControls = 20 => "VMCALL with invalid VM-exit control fields",
    VmcallIncorrectMsegRevision = 22 => "VMCALL with incorrect MSEG revision identifier",
    VmxoffUnderDualMonitor = 23 => "VMXOFF under dual-monitor treatment of SMIs and SMM",
    VmcallInvalidSmmMonitorFeatures = 24 => "VMCALL with invalid SMM-monitor features",
    EntryInvalidExecutiveControls = 25 => "VM entry with invalid VM-execution control fields in executive VMCS",
    EntryEventsBlockedByMovSs = 26 => "VM entry with events blocked by MOV SS",
    InvalidInveptInvvpidOperand = 28 => "invalid operand to INVEPT/INVVPID",
}

impl fmt::Display for VmInstructionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VM-instruction error {}: {}", self.number(), self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_sdm_wording() {
        assert_eq!(
            VmInstructionError::from_u32(7).to_string(),
            "VM-instruction error 7: VM entry with invalid control field(s)"
        );
        assert_eq!(
            VmInstructionError::from_u32(8).to_string(),
            "VM-instruction error 8: VM entry with invalid host-state field(s)"
        );
        assert_eq!(
            VmInstructionError::from_u32(26).description(),
            "VM entry with events blocked by MOV SS"
        );
    }

    #[test]
    fn known_numbers_round_trip() {
        for number in (1..=28).filter(|n| ![14, 21, 27].contains(n)) {
            let error = VmInstructionError::from_u32(number);
            assert!(!matches!(error, VmInstructionError::Unknown(_)), "{number}");
            assert_eq!(error.number(), number);
        }
        assert_eq!(
            VmInstructionError::from_u32(2),
            VmInstructionError::VmclearInvalidAddress
        );
        assert_eq!(
            VmInstructionError::from_u32(28),
            VmInstructionError::InvalidInveptInvvpidOperand
        );
    }

    #[test]
    fn reserved_numbers_are_unknown() {
        for number in [0, 14, 21, 27, 29, 1000] {
            assert_eq!(
                VmInstructionError::from_u32(number),
                VmInstructionError::Unknown(number)
            );
        }
        assert_eq!(
            VmInstructionError::Unknown(99).to_string(),
            "VM-instruction error 99: unknown error"
        );
    }

    #[test]
    fn flags_to_outcome() {
        assert_eq!(VmFail::check(false, false), Ok(()));
        assert_eq!(VmFail::check(true, false), Err(VmFail::Invalid));
        assert_eq!(VmFail::check(false, true), Err(VmFail::Valid));
        // CF takes precedence; the CPU never sets both.
        assert_eq!(VmFail::check(true, true), Err(VmFail::Invalid));
    }
}
