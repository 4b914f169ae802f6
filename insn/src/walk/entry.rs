//! Bit layout of 4-level paging-structure entries (SDM vol. 3A §4.5).

use super::PagingLevel;

pub(super) const PRESENT: u64 = 1 << 0;
pub(super) const WRITABLE: u64 = 1 << 1;
pub(super) const USER: u64 = 1 << 2;
/// PS: maps a large page at the PDPT/PD levels; reserved in a PML4 entry.
pub(super) const PAGE_SIZE: u64 = 1 << 7;
pub(super) const EXECUTE_DISABLE: u64 = 1 << 63;
/// Bits 51:12, the widest physical address the architecture allows.
pub(super) const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

pub(super) const SMALL_PAGE_SIZE: u64 = 1 << 12;
const MIB_2: u64 = 1 << 21;
const GIB_1: u64 = 1 << 30;

impl PagingLevel {
    /// Bit position of the lowest linear-address bit that indexes this level.
    const fn index_shift(self) -> u32 {
        match self {
            Self::Pml4 => 39,
            Self::Pdpt => 30,
            Self::PageDirectory => 21,
            Self::PageTable => 12,
        }
    }

    /// Guest-physical address of the entry this level uses for `linear`.
    pub(super) const fn entry_address(self, table_base: u64, linear: u64) -> u64 {
        let index = (linear >> self.index_shift()) & 0x1FF;
        table_base.wrapping_add(index * 8)
    }

    /// Size of the page an entry with PS = 1 maps at this level, or `None`
    /// where PS does not mean a large page (reserved in a PML4 entry, PAT in
    /// a page-table entry).
    pub(super) const fn large_page_size(self) -> Option<u64> {
        match self {
            Self::Pdpt => Some(GIB_1),
            Self::PageDirectory => Some(MIB_2),
            Self::Pml4 | Self::PageTable => None,
        }
    }

    /// Level-specific reserved bits, given whether the entry maps a page.
    pub(super) const fn reserved_bits(self, is_large_leaf: bool) -> u64 {
        match (self, is_large_leaf) {
            (Self::Pml4, _) => PAGE_SIZE,
            // Between the PAT bit (12) and the page-aligned frame address.
            (Self::Pdpt, true) => bits(13, 29),
            (Self::PageDirectory, true) => bits(13, 20),
            _ => 0,
        }
    }
}

/// Mask of bits `low..=high`.
pub(super) const fn bits(low: u32, high: u32) -> u64 {
    (u64::MAX >> (63 - high)) & (u64::MAX << low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_ranges_cover_inclusive_bounds() {
        assert_eq!(bits(13, 20), 0x001F_E000);
        assert_eq!(bits(13, 29), 0x3FFF_E000);
        assert_eq!(bits(0, 63), u64::MAX);
    }

    #[test]
    fn entry_address_uses_nine_index_bits_per_level() {
        let linear = 0x0000_7FFF_FFFF_F000;
        assert_eq!(PagingLevel::Pml4.entry_address(0x1000, linear), 0x1000 + 0xFF * 8);
        assert_eq!(PagingLevel::PageTable.entry_address(0x1000, linear), 0x1000 + 0x1FF * 8);
    }
}
