use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// An address or length not aligned to the page size in use.
    Misaligned,
    /// Part of the range is already mapped, by a page of this size or
    /// larger, or by tables of smaller pages.
    AlreadyMapped,
    /// The frame allocator ran dry.
    OutOfFrames,
    /// Nothing is mapped at the address.
    NotMapped,
    /// The address is mapped by a page of another size, or a range would
    /// split a larger page.
    SizeMismatch,
    /// Neither read nor write requested.
    NoAccess,
    /// The input address is beyond the walk's width, or the host address
    /// beyond 52 bits.
    AddressOutOfRange,
    /// A superpage size the unit does not support (CAP.SLLPS).
    PageSizeUnsupported,
    /// An entry in memory that does not decode (reserved encodings).
    BadEntry,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Misaligned => "address or length not aligned to the page size",
            Self::AlreadyMapped => "range already mapped",
            Self::OutOfFrames => "out of table frames",
            Self::NotMapped => "address not mapped",
            Self::SizeMismatch => "address mapped with a different page size",
            Self::NoAccess => "mapping grants no access",
            Self::AddressOutOfRange => "address out of range",
            Self::PageSizeUnsupported => "page size not supported by the unit",
            Self::BadEntry => "table entry with a reserved encoding",
        })
    }
}
