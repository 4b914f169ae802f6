use iced_x86::Register;

use super::{AccessSize, RegisterOperand};

/// A 64-bit general-purpose register; the discriminant is its encoding number
/// (ModRM/REX order), which is also the conventional save-area index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gpr {
    Rax = 0,
    Rcx = 1,
    Rdx = 2,
    Rbx = 3,
    Rsp = 4,
    Rbp = 5,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
}

impl Gpr {
    /// The register's encoding number, 0..=15.
    pub const fn number(self) -> usize {
        self as usize
    }
}

const ALL_GPRS: [Gpr; 16] = [
    Gpr::Rax,
    Gpr::Rcx,
    Gpr::Rdx,
    Gpr::Rbx,
    Gpr::Rsp,
    Gpr::Rbp,
    Gpr::Rsi,
    Gpr::Rdi,
    Gpr::R8,
    Gpr::R9,
    Gpr::R10,
    Gpr::R11,
    Gpr::R12,
    Gpr::R13,
    Gpr::R14,
    Gpr::R15,
];

/// iced's register names per width, in encoding order (parallel to
/// [`ALL_GPRS`]). With a REX prefix, encodings 4..=7 of byte registers are
/// SPL..DIL, the low bytes of RSP..RDI.
#[rustfmt::skip]
const REGISTERS_BY_WIDTH: [(AccessSize, [Register; 16]); 4] = {
    use Register::*;
    [
        (AccessSize::Byte, [AL, CL, DL, BL, SPL, BPL, SIL, DIL, R8L, R9L, R10L, R11L, R12L, R13L, R14L, R15L]),
        (AccessSize::Word, [AX, CX, DX, BX, SP, BP, SI, DI, R8W, R9W, R10W, R11W, R12W, R13W, R14W, R15W]),
        (AccessSize::Dword, [EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI, R8D, R9D, R10D, R11D, R12D, R13D, R14D, R15D]),
        (AccessSize::Qword, [RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15]),
    ]
};

/// Without REX, byte encodings 4..=7 name bits 15:8 of the first four GPRs.
const HIGH_BYTE_REGISTERS: [(Register, Gpr); 4] = [
    (Register::AH, Gpr::Rax),
    (Register::CH, Gpr::Rcx),
    (Register::DH, Gpr::Rdx),
    (Register::BH, Gpr::Rbx),
];

/// Maps an iced register to a general-purpose register operand and its
/// width; `None` for segment, control, vector or any other register.
pub(super) fn decode_register(register: Register) -> Option<(RegisterOperand, AccessSize)> {
    if let Some(&(_, gpr)) = HIGH_BYTE_REGISTERS.iter().find(|(high, _)| *high == register) {
        let operand = RegisterOperand { gpr, high_byte: true };
        return Some((operand, AccessSize::Byte));
    }
    REGISTERS_BY_WIDTH.iter().find_map(|(width, names)| {
        let (_, &gpr) = names.iter().zip(ALL_GPRS.iter()).find(|(name, _)| **name == register)?;
        let operand = RegisterOperand { gpr, high_byte: false };
        Some((operand, *width))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpr_numbers_follow_encoding_order() {
        for (expected, gpr) in ALL_GPRS.iter().enumerate() {
            assert_eq!(gpr.number(), expected);
        }
    }

    #[test]
    fn every_width_maps_to_the_same_gpr() {
        for register in [Register::R13L, Register::R13W, Register::R13D, Register::R13] {
            let (operand, _) = decode_register(register).expect("R13 family is a GPR");
            assert_eq!(operand.gpr, Gpr::R13);
            assert!(!operand.high_byte);
        }
        assert_eq!(decode_register(Register::R13W).map(|(_, w)| w), Some(AccessSize::Word));
    }

    #[test]
    fn high_and_rex_low_bytes_are_distinguished() {
        let (ah, _) = decode_register(Register::AH).expect("AH is a GPR");
        assert_eq!((ah.gpr, ah.high_byte), (Gpr::Rax, true));
        let (spl, _) = decode_register(Register::SPL).expect("SPL is a GPR");
        assert_eq!((spl.gpr, spl.high_byte), (Gpr::Rsp, false));
    }

    #[test]
    fn non_gprs_are_rejected() {
        for register in [Register::DS, Register::CR0, Register::XMM0, Register::RIP] {
            assert_eq!(decode_register(register), None);
        }
    }
}
