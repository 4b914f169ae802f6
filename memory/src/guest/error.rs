use core::fmt;

use super::map::MemoryKind;
use crate::addr::GuestPhysAddr;

/// Why a guest-memory access did not happen. Nothing was read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestMemoryError {
    /// No region covers `gpa` (the first byte of the access that is
    /// neither RAM nor anything else).
    Unmapped { gpa: GuestPhysAddr },
    /// `gpa` (the first such byte of the access) lies in a region that is
    /// not RAM: an emulated device, a hole, memory Keel shares.
    NotRam { gpa: GuestPhysAddr, kind: MemoryKind },
    /// `gpa + len` passes the top of the 64-bit address space.
    Overflow { gpa: GuestPhysAddr, len: u64 },
}

impl GuestMemoryError {
    /// The guest-physical address the error is about.
    pub const fn gpa(&self) -> GuestPhysAddr {
        match *self {
            Self::Unmapped { gpa } | Self::NotRam { gpa, .. } | Self::Overflow { gpa, .. } => gpa,
        }
    }
}

impl fmt::Display for GuestMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unmapped { gpa } => write!(f, "guest-physical {gpa} is not mapped"),
            Self::NotRam { gpa, kind } => write!(f, "guest-physical {gpa} is {kind}, not RAM"),
            Self::Overflow { gpa, len } => {
                write!(
                    f,
                    "{len:#x} bytes at guest-physical {gpa} wrap around the address space"
                )
            }
        }
    }
}

impl core::error::Error for GuestMemoryError {}
