use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EptError {
    /// An address or length is not aligned to the page size in use.
    Misaligned,
    /// Part of the requested range is already mapped, or covered by a larger
    /// page or by page tables that a larger page would replace.
    AlreadyMapped,
    /// The frame allocator ran dry.
    OutOfFrames,
    /// Nothing is mapped at the address.
    NotMapped,
    /// The address is mapped, but by a page of a different size.
    SizeMismatch,
    /// Permissions are empty, write-without-read (an EPT misconfiguration),
    /// or contain bits that are not permissions.
    InvalidPermissions,
    /// The guest-physical address is beyond what a 4-level walk covers, or
    /// the host-physical address beyond the architectural maximum.
    AddressOutOfRange,
}

impl fmt::Display for EptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Misaligned => "address or length not aligned to the page size",
            Self::AlreadyMapped => "range already mapped",
            Self::OutOfFrames => "out of page-table frames",
            Self::NotMapped => "address not mapped",
            Self::SizeMismatch => "address mapped with a different page size",
            Self::InvalidPermissions => "invalid EPT permissions",
            Self::AddressOutOfRange => "address out of range",
        };
        f.write_str(text)
    }
}
