use core::fmt;

/// Why a DMAR table was rejected. Offsets are byte offsets from the start
/// of the table, so a report points at the offending structure or scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarError {
    /// Fewer bytes than the 48-byte DMAR header.
    TruncatedHeader { len: usize },
    /// The signature is not `DMAR`.
    BadSignature { found: [u8; 4] },
    /// The header's length is below the header size or beyond the buffer.
    BadTableLength { declared: u32, available: usize },
    /// The bytes of the table do not sum to zero.
    BadChecksum { sum: u8 },
    /// The Host Address Width byte says more than 64 bits.
    BadHostAddressWidth { raw: u8 },
    /// Fewer than 4 bytes remain where a remapping structure must start.
    TruncatedStructureHeader { offset: usize },
    /// A structure's length is below the fixed part its type requires
    /// (a length of 0 lands here too).
    StructureTooShort { offset: usize, kind: u16, length: u16 },
    /// A structure's length reaches past the end of the table.
    StructureOverflow {
        offset: usize,
        length: u16,
        remaining: usize,
    },
    /// A structure type this parser does not know, under
    /// [`UnknownStructurePolicy::Reject`](super::UnknownStructurePolicy::Reject).
    UnknownStructureType { offset: usize, kind: u16 },
    /// A DRHD register base that is zero or not 4 KiB aligned.
    BadRegisterBase { offset: usize, base: u64 },
    /// Two DRHD structures describe the same register set.
    DuplicateRegisterBase { base: u64 },
    /// More than one DRHD with INCLUDE_PCI_ALL in one PCI segment.
    MultipleIncludeAll { segment: u16 },
    /// An RMRR whose base or limit + 1 is not 4 KiB aligned, or whose limit
    /// is below its base.
    BadReservedRegion { offset: usize, base: u64, limit: u64 },
    /// Fewer than 2 bytes remain where a device scope must start.
    TruncatedScope { offset: usize },
    /// A device scope shorter than its 6-byte fixed part.
    ScopeTooShort { offset: usize, length: u8 },
    /// A device scope reaching past the end of its structure.
    ScopeOverflow {
        offset: usize,
        length: u8,
        remaining: usize,
    },
    /// A device scope whose path is not a whole number of 2-byte entries.
    ScopeLengthMismatch { offset: usize, length: u8 },
    /// A device scope without a single path entry.
    EmptyScopePath { offset: usize },
    /// A device scope type outside 1..=5.
    UnknownScopeType { offset: usize, kind: u8 },
    /// A path entry with device > 31 or function > 7.
    BadPathEntry { offset: usize, device: u8, function: u8 },
    /// More device scopes than [`MAX_DEVICE_SCOPES`](super::MAX_DEVICE_SCOPES).
    TooManyScopes,
    /// Two remapping-unit scopes name the same device (same segment, start
    /// bus and path), or the same I/O APIC or HPET.
    DuplicateScope { first: usize, second: usize },
    /// A PCI sub-hierarchy scope contains a device another remapping-unit
    /// scope names (its path is a prefix of the other's).
    OverlappingScopes { first: usize, second: usize },
}

impl fmt::Display for DmarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TruncatedHeader { len } => write!(f, "DMAR shorter than its header ({len} bytes)"),
            Self::BadSignature { found } => write!(f, "signature {found:?} is not DMAR"),
            Self::BadTableLength { declared, available } => {
                write!(f, "DMAR length {declared} invalid ({available} bytes available)")
            }
            Self::BadChecksum { sum } => write!(f, "DMAR checksum off by {sum:#04x}"),
            Self::BadHostAddressWidth { raw } => write!(f, "host address width {} bits", u16::from(raw) + 1),
            Self::TruncatedStructureHeader { offset } => write!(f, "truncated structure header at {offset:#x}"),
            Self::StructureTooShort { offset, kind, length } => {
                write!(f, "structure type {kind} at {offset:#x} too short ({length} bytes)")
            }
            Self::StructureOverflow {
                offset,
                length,
                remaining,
            } => write!(f, "structure at {offset:#x} claims {length} bytes, {remaining} remain"),
            Self::UnknownStructureType { offset, kind } => write!(f, "unknown structure type {kind} at {offset:#x}"),
            Self::BadRegisterBase { offset, base } => {
                write!(f, "DRHD at {offset:#x} has register base {base:#x}")
            }
            Self::DuplicateRegisterBase { base } => write!(f, "two DRHDs at register base {base:#x}"),
            Self::MultipleIncludeAll { segment } => write!(f, "segment {segment} has several INCLUDE_PCI_ALL units"),
            Self::BadReservedRegion { offset, base, limit } => {
                write!(f, "RMRR at {offset:#x} has bad range {base:#x}..={limit:#x}")
            }
            Self::TruncatedScope { offset } => write!(f, "truncated device scope at {offset:#x}"),
            Self::ScopeTooShort { offset, length } => write!(f, "device scope at {offset:#x} too short ({length})"),
            Self::ScopeOverflow {
                offset,
                length,
                remaining,
            } => write!(
                f,
                "device scope at {offset:#x} claims {length} bytes, {remaining} remain"
            ),
            Self::ScopeLengthMismatch { offset, length } => {
                write!(f, "device scope at {offset:#x} has odd path length ({length})")
            }
            Self::EmptyScopePath { offset } => write!(f, "device scope at {offset:#x} has no path"),
            Self::UnknownScopeType { offset, kind } => write!(f, "unknown device scope type {kind} at {offset:#x}"),
            Self::BadPathEntry {
                offset,
                device,
                function,
            } => write!(f, "path entry {device:#x}.{function:#x} at {offset:#x} out of range"),
            Self::TooManyScopes => f.write_str("too many device scopes"),
            Self::DuplicateScope { first, second } => {
                write!(f, "device scopes at {first:#x} and {second:#x} name the same device")
            }
            Self::OverlappingScopes { first, second } => {
                write!(f, "device scopes at {first:#x} and {second:#x} overlap")
            }
        }
    }
}
