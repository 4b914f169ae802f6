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
