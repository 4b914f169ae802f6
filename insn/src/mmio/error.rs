use core::fmt;

use iced_x86::Mnemonic;

/// Why the bytes at the faulting RIP cannot be emulated as an MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the instruction does (e.g. a short fetch at an
    /// unmapped page boundary). The decoder also reports an invalid encoding
    /// this way when it runs out of bytes before it can tell.
    Truncated,
    /// Not a valid x86 encoding in the given mode.
    Invalid,
    /// A valid instruction that is not a plain MMIO move.
    Unsupported { mnemonic: Mnemonic },
    /// A supported mnemonic whose operands are not a register or immediate
    /// paired with memory (e.g. `mov ds, [rax]`, or no memory operand at all).
    UnsupportedOperands { mnemonic: Mnemonic },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("instruction bytes are truncated"),
            Self::Invalid => f.write_str("invalid instruction encoding"),
            Self::Unsupported { mnemonic } => {
                write!(f, "unsupported MMIO instruction `{mnemonic:?}`")
            }
            Self::UnsupportedOperands { mnemonic } => {
                write!(f, "unsupported operands for MMIO `{mnemonic:?}`")
            }
        }
    }
}
