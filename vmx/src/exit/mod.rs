//! VM-exit decoding: the exit reason plus the per-reason qualification and
//! interruption-information formats.
//!
//! Decoders take the raw VMCS value and never panic; the few encodings the
//! SDM leaves undefined yield a [`QualificationError`].

mod cr;
mod ept;
mod interruption;
mod io;
mod reason;

use core::fmt;

pub use cr::{CrAccess, CrAccessType};
pub use ept::EptViolation;
pub use interruption::{vector, InterruptionInfo, InterruptionType};
pub use io::{IoDirection, IoQualification};
pub use reason::{ExitInfo, ExitReason};

/// An exit qualification with an encoding the SDM does not define.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualificationError {
    /// I/O size field (bits 2:0) other than 0, 1 or 3.
    InvalidIoSize { raw: u64 },
}

impl fmt::Display for QualificationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidIoSize { raw } => {
                write!(
                    f,
                    "I/O exit qualification {raw:#x} has undefined size encoding {}",
                    raw & 0b111
                )
            }
        }
    }
}
