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
    /// A write through a read-only mapping (by supervisor code only while
    /// CR0.WP = 1).
    WriteProtected { linear: u64 },
    /// A user-mode access to a supervisor-only mapping.
    SupervisorOnly { linear: u64 },
    /// An instruction fetch from a mapping with XD set while EFER.NXE = 1.
    ExecuteDisabled { linear: u64 },
    /// The instruction bytes translate to guest-physical memory that is not
    /// readable RAM (e.g. the guest executes from an MMIO page).
    InstructionUnreadable { gpa: u64 },
}

/// How the CPU reports a failed translation to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslationFault {
    /// #PF with this error code; CR2 gets the linear address.
    PageFault { linear: u64, error_code: u32 },
    /// #GP(0): a non-canonical address.
    GeneralProtection,
}

impl WalkError {
    /// The fault the guest would have taken for this failure of an access
    /// of `kind` (`write`, `user`); `None` where the failure has no
    /// architectural fault (the walker's own limits, tables outside RAM).
    pub fn guest_fault(&self, write: bool, user: bool) -> Option<TranslationFault> {
        const PRESENT: u32 = 1 << 0;
        const WRITE: u32 = 1 << 1;
        const USER: u32 = 1 << 2;
        const RESERVED: u32 = 1 << 3;
        const FETCH: u32 = 1 << 4;
        let access = if write { WRITE } else { 0 } | if user { USER } else { 0 };
        let (linear, cause) = match *self {
            Self::NonCanonical { .. } => return Some(TranslationFault::GeneralProtection),
            Self::NotPresent { linear, .. } => (linear, 0),
            Self::ReservedBitSet { linear, .. } => (linear, PRESENT | RESERVED),
            Self::WriteProtected { linear } | Self::SupervisorOnly { linear } => (linear, PRESENT),
            Self::ExecuteDisabled { linear } => (linear, PRESENT | FETCH),
            Self::UnsupportedPagingMode(_) | Self::TableUnreadable { .. } | Self::InstructionUnreadable { .. } => {
                return None
            }
        };
        Some(TranslationFault::PageFault {
            linear,
            error_code: cause | access,
        })
    }
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
            Self::SupervisorOnly { linear } => write!(f, "{linear:#x} is a supervisor-only page"),
            Self::ExecuteDisabled { linear } => write!(f, "{linear:#x} is not executable"),
            Self::InstructionUnreadable { gpa } => {
                write!(f, "instruction bytes at gpa {gpa:#x} are not in guest RAM")
            }
        }
    }
}
