//! Interruption-information fields: VM-exit interruption info, IDT-vectoring
//! info and VM-entry interruption info share one format (SDM Vol. 3 24.8.3,
//! 24.9.2, 24.9.3).

use core::fmt;

/// Exception vectors, for injection and the exception bitmap.
pub mod vector {
    pub const DIVIDE_ERROR: u8 = 0;
    pub const DEBUG: u8 = 1;
    pub const NMI: u8 = 2;
    pub const BREAKPOINT: u8 = 3;
    pub const OVERFLOW: u8 = 4;
    pub const BOUND_RANGE: u8 = 5;
    pub const INVALID_OPCODE: u8 = 6;
    pub const DEVICE_NOT_AVAILABLE: u8 = 7;
    pub const DOUBLE_FAULT: u8 = 8;
    pub const INVALID_TSS: u8 = 10;
    pub const SEGMENT_NOT_PRESENT: u8 = 11;
    pub const STACK_FAULT: u8 = 12;
    pub const GENERAL_PROTECTION: u8 = 13;
    pub const PAGE_FAULT: u8 = 14;
    pub const X87_FLOATING_POINT: u8 = 16;
    pub const ALIGNMENT_CHECK: u8 = 17;
    pub const MACHINE_CHECK: u8 = 18;
    pub const SIMD_FLOATING_POINT: u8 = 19;
    pub const VIRTUALIZATION: u8 = 20;
    pub const CONTROL_PROTECTION: u8 = 21;

    /// Whether the CPU pushes an error code for this exception, and so
    /// whether injection must set "deliver error code" (VM entry fails
    /// otherwise in protected mode).
    pub fn exception_has_error_code(vector: u8) -> bool {
        matches!(
            vector,
            DOUBLE_FAULT
                | INVALID_TSS
                | SEGMENT_NOT_PRESENT
                | STACK_FAULT
                | GENERAL_PROTECTION
                | PAGE_FAULT
                | ALIGNMENT_CHECK
                | CONTROL_PROTECTION
        )
    }
}

/// Bits 10:8 of an interruption-information field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptionType {
    ExternalInterrupt,
    Reserved,
    Nmi,
    HardwareException,
    SoftwareInterrupt,
    PrivilegedSoftwareException,
    SoftwareException,
    OtherEvent,
}

impl InterruptionType {
    fn from_bits(bits: u32) -> Self {
        match bits & 0b111 {
            0 => Self::ExternalInterrupt,
            1 => Self::Reserved,
            2 => Self::Nmi,
            3 => Self::HardwareException,
            4 => Self::SoftwareInterrupt,
            5 => Self::PrivilegedSoftwareException,
            6 => Self::SoftwareException,
            _ => Self::OtherEvent,
        }
    }

    fn bits(self) -> u32 {
        match self {
            Self::ExternalInterrupt => 0,
            Self::Reserved => 1,
            Self::Nmi => 2,
            Self::HardwareException => 3,
            Self::SoftwareInterrupt => 4,
            Self::PrivilegedSoftwareException => 5,
            Self::SoftwareException => 6,
            Self::OtherEvent => 7,
        }
    }

    /// Software events need `VM_ENTRY_INSTRUCTION_LEN` set when injected.
    pub fn needs_instruction_length(self) -> bool {
        matches!(
            self,
            Self::SoftwareInterrupt | Self::PrivilegedSoftwareException | Self::SoftwareException
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterruptionInfo {
    pub vector: u8,
    pub kind: InterruptionType,
    /// Exit: an error code was saved. Entry: deliver an error code.
    pub error_code_valid: bool,
    /// Exit only: the fault happened during an IRET that unblocked NMIs.
    pub nmi_unblocking: bool,
    pub valid: bool,
}

const ERROR_CODE_VALID: u32 = 1 << 11;
const NMI_UNBLOCKING: u32 = 1 << 12;
const VALID: u32 = 1 << 31;

impl InterruptionInfo {
    pub fn from_raw(raw: u32) -> Self {
        Self {
            vector: raw as u8,
            kind: InterruptionType::from_bits(raw >> 8),
            error_code_valid: raw & ERROR_CODE_VALID != 0,
            nmi_unblocking: raw & NMI_UNBLOCKING != 0,
            valid: raw & VALID != 0,
        }
    }

    /// A valid event to inject through `VM_ENTRY_INTERRUPTION_INFO`.
    pub fn injection(vector: u8, kind: InterruptionType, deliver_error_code: bool) -> Self {
        Self {
            vector,
            kind,
            error_code_valid: deliver_error_code,
            nmi_unblocking: false,
            valid: true,
        }
    }

    /// A hardware exception, delivering an error code exactly when the
    /// architecture pushes one for `vector`.
    pub fn hardware_exception(vector: u8) -> Self {
        Self::injection(
            vector,
            InterruptionType::HardwareException,
            vector::exception_has_error_code(vector),
        )
    }

    pub fn external_interrupt(vector: u8) -> Self {
        Self::injection(vector, InterruptionType::ExternalInterrupt, false)
    }

    pub fn nmi() -> Self {
        Self::injection(vector::NMI, InterruptionType::Nmi, false)
    }

    pub fn to_raw(self) -> u32 {
        let mut raw = u32::from(self.vector) | (self.kind.bits() << 8);
        if self.error_code_valid {
            raw |= ERROR_CODE_VALID;
        }
        if self.nmi_unblocking {
            raw |= NMI_UNBLOCKING;
        }
        if self.valid {
            raw |= VALID;
        }
        raw
    }
}

impl fmt::Display for InterruptionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.valid {
            return f.write_str("no event");
        }
        write!(f, "{:?} vector {}", self.kind, self.vector)?;
        if self.error_code_valid {
            f.write_str(" with error code")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_page_fault_exit_info() {
        let info = InterruptionInfo::from_raw(0x8000_0B0E);
        assert!(info.valid);
        assert_eq!(info.vector, vector::PAGE_FAULT);
        assert_eq!(info.kind, InterruptionType::HardwareException);
        assert!(info.error_code_valid);
        assert!(!info.nmi_unblocking);
        assert_eq!(info.to_string(), "HardwareException vector 14 with error code");
    }

    #[test]
    fn injection_encodings() {
        assert_eq!(
            InterruptionInfo::hardware_exception(vector::GENERAL_PROTECTION).to_raw(),
            0x8000_0B0D
        );
        assert_eq!(
            InterruptionInfo::hardware_exception(vector::INVALID_OPCODE).to_raw(),
            0x8000_0306
        );
        assert_eq!(InterruptionInfo::external_interrupt(0x20).to_raw(), 0x8000_0020);
        assert_eq!(InterruptionInfo::nmi().to_raw(), 0x8000_0202);
        let int3 = InterruptionInfo::injection(3, InterruptionType::SoftwareException, false);
        assert_eq!(int3.to_raw(), 0x8000_0603);
        assert!(int3.kind.needs_instruction_length());
    }

    #[test]
    fn round_trips_every_type() {
        for raw in [0x0000_0000, 0x8000_1202, 0x8000_0430, 0x8000_0730, 0x8000_0100] {
            assert_eq!(InterruptionInfo::from_raw(raw).to_raw(), raw);
        }
        assert_eq!(InterruptionInfo::from_raw(0).to_string(), "no event");
    }

    #[test]
    fn error_code_exceptions() {
        assert!(vector::exception_has_error_code(vector::DOUBLE_FAULT));
        assert!(vector::exception_has_error_code(vector::ALIGNMENT_CHECK));
        assert!(!vector::exception_has_error_code(vector::DEBUG));
        assert!(!vector::exception_has_error_code(vector::MACHINE_CHECK));
    }
}
