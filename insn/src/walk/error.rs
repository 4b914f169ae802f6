use core::fmt;

/// The paging mode selected by CR0.PG, CR4.PAE, CR4.LA57 and EFER.LMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingMode {
    /// CR0.PG = 0: linear addresses are physical (truncated to 32 bits).
    Disabled,
    /// Legacy 2-level 32-bit paging (CR4.PAE = 0).
    ThirtyTwoBit,
    /// Legacy PAE paging outside long mode.
    Pae,
    /// 4-level paging (long mode).
    FourLevel,
    /// 5-level paging (CR4.LA57 = 1).
    FiveLevel,
}

/// A level of the 4-level paging hierarchy, top first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingLevel {
    Pml4,
    Pdpt,
    PageDirectory,
    PageTable,
}

/// Why a guest linear address could not be translated or fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The guest uses a paging mode this walker does not implement.
    UnsupportedPagingMode(PagingMode),
    /// Bits 63:47 of a 4-level linear address are not a sign extension.
    NonCanonical { linear: u64 },
    /// A paging-structure entry is outside readable guest RAM.
    TableUnreadable { linear: u64, entry_gpa: u64 },
    /// The entry at `level` has its present bit clear.
    NotPresent { linear: u64, level: PagingLevel },
    /// The entry at `level` has a reserved bit set (a #PF with RSVD on hardware).
    ReservedBitSet {
        linear: u64,
        level: PagingLevel,
        entry: u64,
    },
    /// A write through a read-only mapping while CR0.WP = 1.
    WriteProtected { linear: u64 },
    /// An instruction fetch from a mapping with XD set while EFER.NXE = 1.
    ExecuteDisabled { linear: u64 },
    /// The instruction bytes translate to guest-physical memory that is not
    /// readable RAM (e.g. the guest executes from an MMIO page).
    InstructionUnreadable { gpa: u64 },
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnsupportedPagingMode(mode) => {
                write!(f, "unsupported guest paging mode {mode:?}")
            }
            Self::NonCanonical { linear } => write!(f, "non-canonical linear address {linear:#x}"),
            Self::TableUnreadable { linear, entry_gpa } => write!(
                f,
                "paging entry for {linear:#x} at gpa {entry_gpa:#x} is not in guest RAM"
            ),
            Self::NotPresent { linear, level } => {
                write!(f, "{linear:#x} not present at {level:?} level")
            }
            Self::ReservedBitSet { linear, level, entry } => {
                write!(f, "{linear:#x}: reserved bit set in {level:?} entry {entry:#x}")
            }
            Self::WriteProtected { linear } => write!(f, "{linear:#x} is write-protected"),
            Self::ExecuteDisabled { linear } => write!(f, "{linear:#x} is not executable"),
            Self::InstructionUnreadable { gpa } => {
                write!(f, "instruction bytes at gpa {gpa:#x} are not in guest RAM")
            }
        }
    }
}
