//! Format-agnostic 4-level radix tables of 512 eight-byte entries per 4 KiB
//! frame. EPT and the VT-d second-level tables share this layout (including
//! bit 7 marking a large page) and differ only in which bits make an entry
//! present and what a pointer to a next-level table carries, which is what
//! [`EntryFormat`] describes.

mod frame;
mod level;
mod page_tables;
#[cfg(test)]
mod tests;

pub(crate) use level::Level;
pub(crate) use page_tables::{Leaf, PageTables};

/// Bits 51:12: the physical address of a page or next-level table.
pub(crate) const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Bit 7 in a level-2 or level-3 entry: the entry maps a page, not a table.
pub(crate) const LARGE_PAGE_BIT: u64 = 1 << 7;

pub(crate) trait EntryFormat {
    /// An entry with none of these bits set is not present.
    const PRESENT_MASK: u64;
    /// Access bits of an entry pointing to a next-level table. Permissions
    /// are enforced at the leaves, so these grant everything.
    const TABLE_POINTER_FLAGS: u64;
}

pub(crate) fn is_present<F: EntryFormat>(entry: u64) -> bool {
    entry & F::PRESENT_MASK != 0
}

/// Whether a present entry at `level` maps a page rather than a table.
pub(crate) fn is_leaf(entry: u64, level: Level) -> bool {
    match level {
        Level::Pt => true,
        Level::Pd | Level::Pdpt => entry & LARGE_PAGE_BIT != 0,
        Level::Pml4 => false,
    }
}
