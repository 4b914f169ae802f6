use super::Gpr;

/// Operand width of the instruction stream, from the guest's CS.L/CS.D
/// (and CR0.PE/EFER.LMA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeBitness {
    Bits16,
    Bits32,
    Bits64,
}

impl CodeBitness {
    /// The mode the guest's code runs in: real and virtual-8086 mode are
    /// 16-bit; in protected mode CS.L (64-bit code, only while EFER.LMA)
    /// and then CS.D/B decide. `cs_access_rights` is in the VMCS
    /// access-rights layout (L at bit 13, D/B at bit 14).
    pub const fn from_guest(cr0: u64, efer: u64, rflags: u64, cs_access_rights: u64) -> Self {
        const CR0_PE: u64 = 1;
        const EFER_LMA: u64 = 1 << 10;
        const RFLAGS_VM: u64 = 1 << 17;
        const CS_L: u64 = 1 << 13;
        const CS_D: u64 = 1 << 14;
        if cr0 & CR0_PE == 0 || rflags & RFLAGS_VM != 0 {
            Self::Bits16
        } else if efer & EFER_LMA != 0 && cs_access_rights & CS_L != 0 {
            Self::Bits64
        } else if cs_access_rights & CS_D != 0 {
            Self::Bits32
        } else {
            Self::Bits16
        }
    }

    /// Linear addresses outside 64-bit mode are 32 bits wide.
    pub const fn linear_mask(self) -> u64 {
        match self {
            Self::Bits64 => u64::MAX,
            Self::Bits16 | Self::Bits32 => 0xFFFF_FFFF,
        }
    }

    pub const fn bits(self) -> u32 {
        match self {
            Self::Bits16 => 16,
            Self::Bits32 => 32,
            Self::Bits64 => 64,
        }
    }
}

/// Width of a memory access or register write; an enum so that impossible
/// widths cannot reach the register-merging arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessSize {
    Byte = 1,
    Word = 2,
    Dword = 4,
    Qword = 8,
}

impl AccessSize {
    pub const fn bytes(self) -> u8 {
        self as u8
    }

    pub const fn from_bytes(bytes: usize) -> Option<Self> {
        match bytes {
            1 => Some(Self::Byte),
            2 => Some(Self::Word),
            4 => Some(Self::Dword),
            8 => Some(Self::Qword),
            _ => None,
        }
    }

    /// Mask covering the low `bytes()` bytes of a value.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Byte => 0xFF,
            Self::Word => 0xFFFF,
            Self::Dword => 0xFFFF_FFFF,
            Self::Qword => u64::MAX,
        }
    }
}

/// A general-purpose register as an instruction names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterOperand {
    pub gpr: Gpr,
    /// AH/CH/DH/BH: the byte at bits 15:8 of RAX/RCX/RDX/RBX.
    pub high_byte: bool,
}

/// How a loaded value widens into its destination register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extend {
    /// `mov`: the destination is exactly as wide as the access.
    None,
    /// `movzx` into a register of width `to`.
    Zero { to: AccessSize },
    /// `movsx`/`movsxd` into a register of width `to`.
    Sign { to: AccessSize },
}

/// Where a store's data comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreSource {
    /// Use [`super::store_value`] with the access size to extract the data.
    Register(RegisterOperand),
    /// Already sign-extended as the CPU would and truncated to the access size.
    Immediate(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioKind {
    /// Device → register; complete it with [`super::apply_load`].
    Load { dest: RegisterOperand, extend: Extend },
    /// Register/immediate → device.
    Store { source: StoreSource },
}

/// One decoded MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioInstruction {
    /// Instruction length in bytes: how far to advance RIP after emulation.
    pub len: usize,
    /// Bytes transferred to or from the device.
    pub size: AccessSize,
    pub kind: MmioKind,
}

#[cfg(test)]
mod tests {
    use super::CodeBitness;

    const PE: u64 = 1;
    const LMA: u64 = 1 << 10;
    const L: u64 = 1 << 13;
    const D: u64 = 1 << 14;

    #[test]
    fn code_bitness_follows_cr0_efer_and_cs() {
        assert_eq!(CodeBitness::from_guest(0, 0, 0, D), CodeBitness::Bits16, "real mode");
        assert_eq!(
            CodeBitness::from_guest(PE, 0, 1 << 17, D),
            CodeBitness::Bits16,
            "virtual-8086"
        );
        assert_eq!(CodeBitness::from_guest(PE, 0, 0, D), CodeBitness::Bits32);
        assert_eq!(CodeBitness::from_guest(PE, 0, 0, 0), CodeBitness::Bits16);
        assert_eq!(CodeBitness::from_guest(PE, LMA, 0, L), CodeBitness::Bits64);
        assert_eq!(
            CodeBitness::from_guest(PE, LMA, 0, D),
            CodeBitness::Bits32,
            "compatibility mode"
        );
        // CS.L without long mode active means nothing.
        assert_eq!(CodeBitness::from_guest(PE, 0, 0, L | D), CodeBitness::Bits32);
    }
}
