use bitflags::bitflags;
use keel_memory::{PAGE_SIZE_1G, PAGE_SIZE_2M, PAGE_SIZE_4K};

bitflags! {
    /// EPT entry bits (SDM vol. 3C tables 29-1 to 29-6). Bits 5:3 of a leaf
    /// hold the [`MemoryType`] and are deliberately not flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct EptFlags: u64 {
        const READ = 1 << 0;
        const WRITE = 1 << 1;
        /// Execute (supervisor-mode execute when mode-based control is on).
        const EXECUTE = 1 << 2;
        /// Use the EPT memory type as-is instead of combining it with PAT.
        const IGNORE_PAT = 1 << 6;
        /// Set in a PDPT/PD entry that maps a 1 GiB / 2 MiB page.
        const HUGE = 1 << 7;
        const ACCESSED = 1 << 8;
        const DIRTY = 1 << 9;
        /// User-mode execute, with mode-based execute control enabled.
        const USER_EXECUTE = 1 << 10;
    }
}

impl EptFlags {
    pub const READ_WRITE_EXECUTE: Self = Self::READ.union(Self::WRITE).union(Self::EXECUTE);

    /// Bits a caller may request for a mapping; the rest are managed here
    /// (HUGE) or by the processor (ACCESSED, DIRTY).
    pub(crate) const REQUESTABLE: Self = Self::READ_WRITE_EXECUTE
        .union(Self::IGNORE_PAT)
        .union(Self::USER_EXECUTE);
}

/// EPT memory types (SDM vol. 3C §29.3.7); also the paging-structure memory
/// type in the EPTP, where only `Uncacheable` and `WriteBack` are valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MemoryType {
    Uncacheable = 0,
    WriteCombining = 1,
    WriteThrough = 4,
    WriteProtected = 5,
    WriteBack = 6,
}

impl MemoryType {
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::Uncacheable),
            1 => Some(Self::WriteCombining),
            4 => Some(Self::WriteThrough),
            5 => Some(Self::WriteProtected),
            6 => Some(Self::WriteBack),
            _ => None,
        }
    }

    pub const fn bits(self) -> u8 {
        self as u8
    }
}

/// Ordered smallest first, so `size <= max_page` reads naturally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    Size4K,
    Size2M,
    Size1G,
}

impl PageSize {
    pub(crate) const LARGEST_FIRST: [Self; 3] = [Self::Size1G, Self::Size2M, Self::Size4K];

    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => PAGE_SIZE_4K,
            Self::Size2M => PAGE_SIZE_2M,
            Self::Size1G => PAGE_SIZE_1G,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_bits_match_the_sdm() {
        assert_eq!(EptFlags::READ_WRITE_EXECUTE.bits(), 0b111);
        assert_eq!(EptFlags::IGNORE_PAT.bits(), 0x40);
        assert_eq!(EptFlags::HUGE.bits(), 0x80);
        assert_eq!(EptFlags::USER_EXECUTE.bits(), 0x400);
    }

    #[test]
    fn memory_type_round_trips_and_rejects_reserved_encodings() {
        for memory_type in [
            MemoryType::Uncacheable,
            MemoryType::WriteCombining,
            MemoryType::WriteThrough,
            MemoryType::WriteProtected,
            MemoryType::WriteBack,
        ] {
            assert_eq!(MemoryType::from_bits(memory_type.bits()), Some(memory_type));
        }
        for reserved in [2, 3, 7] {
            assert_eq!(MemoryType::from_bits(reserved), None);
        }
    }

    #[test]
    fn page_sizes_are_ordered_by_size() {
        assert!(PageSize::Size4K < PageSize::Size2M && PageSize::Size2M < PageSize::Size1G);
        assert_eq!(PageSize::Size2M.bytes(), 0x20_0000);
    }
}
