use crate::flags::PageSize;

pub(crate) const ENTRIES_PER_TABLE: usize = 512;

/// A level of the 4-level walk, ordered from the leaf-most table upwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Pt,
    Pd,
    Pdpt,
    Pml4,
}

impl Level {
    pub(crate) const TOP: Self = Self::Pml4;

    /// The level whose entries map pages of `size`.
    pub(crate) fn for_leaf(size: PageSize) -> Self {
        match size {
            PageSize::Size4K => Self::Pt,
            PageSize::Size2M => Self::Pd,
            PageSize::Size1G => Self::Pdpt,
        }
    }

    pub(crate) fn leaf_size(self) -> Option<PageSize> {
        match self {
            Self::Pt => Some(PageSize::Size4K),
            Self::Pd => Some(PageSize::Size2M),
            Self::Pdpt => Some(PageSize::Size1G),
            Self::Pml4 => None,
        }
    }

    /// The next level down; `Pt` has none and maps to itself (every present
    /// `Pt` entry is a leaf, so walks never descend from it).
    pub(crate) fn below(self) -> Self {
        match self {
            Self::Pml4 => Self::Pdpt,
            Self::Pdpt => Self::Pd,
            Self::Pd | Self::Pt => Self::Pt,
        }
    }

    /// How many table levels lie strictly between `self` and `lower`, i.e.
    /// how many tables must be created to reach `lower` from a table at `self`.
    pub(crate) fn tables_down_to(self, lower: Self) -> usize {
        (self as usize).saturating_sub(lower as usize)
    }

    pub(crate) fn index(self, addr: u64) -> EntryIndex {
        let shift = match self {
            Self::Pt => 12,
            Self::Pd => 21,
            Self::Pdpt => 30,
            Self::Pml4 => 39,
        };
        EntryIndex::masked(addr >> shift)
    }
}

/// An index into a table, always below [`ENTRIES_PER_TABLE`] by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryIndex(usize);

impl EntryIndex {
    pub(crate) const FIRST: Self = Self(0);

    fn masked(raw: u64) -> Self {
        Self((raw & (ENTRIES_PER_TABLE as u64 - 1)) as usize)
    }

    pub(crate) fn all() -> impl Iterator<Item = Self> {
        (0..ENTRIES_PER_TABLE).map(Self)
    }

    pub(crate) fn get(self) -> usize {
        self.0
    }
}
