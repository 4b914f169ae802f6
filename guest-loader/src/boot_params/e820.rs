//! The guest's physical memory map in the BIOS e820 format Linux reads from
//! `boot_params`.

use crate::error::{GuestRegion, LoadError, RegionKind};

/// Most entries the `boot_params.e820_table` array holds.
pub const E820_MAX_ENTRIES: usize = 128;

/// Memory types as the e820 interface encodes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    Ram = 1,
    Reserved = 2,
    /// ACPI tables; the OS may reclaim the memory after reading them.
    Acpi = 3,
    /// ACPI non-volatile storage; must be preserved across sleep states.
    Nvs = 4,
    Unusable = 5,
    Persistent = 7,
}

/// One entry of the e820 table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: E820Type,
}

/// A range the guest must not treat as ordinary RAM. It may lie inside
/// guest RAM (carving a hole) or above it (MMIO such as the local APIC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservedRange {
    pub start: u64,
    pub size: u64,
    pub kind: E820Type,
}

impl ReservedRange {
    /// The guest-physical range, rejecting empty or wrapping ranges.
    pub fn region(&self) -> Result<GuestRegion, LoadError> {
        let bad = LoadError::BadReservedRange {
            start: self.start,
            size: self.size,
        };
        if self.size == 0 {
            return Err(bad);
        }
        GuestRegion::new(RegionKind::Reserved, self.start, self.size).map_err(|_| bad)
    }
}

/// The VGA window and BIOS area between 640 KiB and 1 MiB, which PC guests
/// expect to find reserved rather than usable.
pub const LEGACY_HOLE: ReservedRange = ReservedRange {
    start: 0xA_0000,
    size: 0x6_0000,
    kind: E820Type::Reserved,
};

/// Guest RAM `[0, ram_bytes)` with the holes the guest must not use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMemoryLayout<'a> {
    pub ram_bytes: u64,
    /// Non-overlapping, in any order.
    pub reserved: &'a [ReservedRange],
}

/// A sorted e820 table in a fixed-size array, as `no_std` has no Vec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Table {
    entries: [E820Entry; E820_MAX_ENTRIES],
    len: usize,
}

impl E820Table {
    fn new() -> Self {
        let unused = E820Entry {
            addr: 0,
            size: 0,
            kind: E820Type::Reserved,
        };
        Self {
            entries: [unused; E820_MAX_ENTRIES],
            len: 0,
        }
    }

    fn push(&mut self, entry: E820Entry) -> Result<(), LoadError> {
        let slot = self
            .entries
            .get_mut(self.len)
            .ok_or(LoadError::TooManyE820Entries { max: E820_MAX_ENTRIES })?;
        *slot = entry;
        self.len = self.len.saturating_add(1);
        Ok(())
    }

    pub fn as_slice(&self) -> &[E820Entry] {
        self.entries.get(..self.len).unwrap_or_default()
    }
}

impl GuestMemoryLayout<'_> {
    /// Fails unless every reserved range is well-formed and no two overlap.
    pub fn validate(&self) -> Result<(), LoadError> {
        for (index, range) in self.reserved.iter().enumerate() {
            let first = range.region()?;
            for other in self.reserved.iter().skip(index.saturating_add(1)) {
                let second = other.region()?;
                if first.overlaps(&second) {
                    return Err(LoadError::Overlap { first, second });
                }
            }
        }
        Ok(())
    }

    /// Builds the e820 table: RAM split around the reserved ranges, sorted
    /// by address.
    pub fn e820_table(&self) -> Result<E820Table, LoadError> {
        self.validate()?;
        let mut table = E820Table::new();
        let mut ram_cursor = 0u64;
        let mut previous_start = None;
        while let Some(range) = self.next_reserved_after(previous_start) {
            let ram_end = range.start.min(self.ram_bytes);
            if ram_cursor < ram_end {
                table.push(ram_entry(ram_cursor, ram_end))?;
            }
            table.push(E820Entry {
                addr: range.start,
                size: range.size,
                kind: range.kind,
            })?;
            // validate() proved start + size does not overflow.
            ram_cursor = ram_cursor.max(range.start.saturating_add(range.size));
            previous_start = Some(range.start);
        }
        if ram_cursor < self.ram_bytes {
            table.push(ram_entry(ram_cursor, self.ram_bytes))?;
        }
        Ok(table)
    }

    /// The reserved range with the lowest start above `after`; a selection
    /// sort, which is enough for at most 128 ranges and needs no allocation.
    /// Starts are unique because validate() rejects overlapping ranges.
    fn next_reserved_after(&self, after: Option<u64>) -> Option<&ReservedRange> {
        self.reserved
            .iter()
            .filter(|range| after.is_none_or(|after| range.start > after))
            .min_by_key(|range| range.start)
    }
}

fn ram_entry(start: u64, end: u64) -> E820Entry {
    E820Entry {
        addr: start,
        size: end.saturating_sub(start),
        kind: E820Type::Ram,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn entry(addr: u64, size: u64, kind: E820Type) -> E820Entry {
        E820Entry { addr, size, kind }
    }

    #[test]
    fn ram_is_split_around_unsorted_holes() {
        let acpi = ReservedRange {
            start: 60 * MIB,
            size: MIB,
            kind: E820Type::Acpi,
        };
        let lapic = ReservedRange {
            start: 0xFEE0_0000,
            size: 0x1000,
            kind: E820Type::Reserved,
        };
        let layout = GuestMemoryLayout {
            ram_bytes: 64 * MIB,
            reserved: &[lapic, acpi, LEGACY_HOLE],
        };
        let table = layout.e820_table().unwrap();
        assert_eq!(
            table.as_slice(),
            &[
                entry(0, 0xA_0000, E820Type::Ram),
                entry(0xA_0000, 0x6_0000, E820Type::Reserved),
                entry(MIB, 59 * MIB, E820Type::Ram),
                entry(60 * MIB, MIB, E820Type::Acpi),
                entry(61 * MIB, 3 * MIB, E820Type::Ram),
                entry(0xFEE0_0000, 0x1000, E820Type::Reserved),
            ]
        );
    }

    #[test]
    fn hole_at_the_very_end_leaves_no_empty_ram_entry() {
        let layout = GuestMemoryLayout {
            ram_bytes: 4 * MIB,
            reserved: &[ReservedRange {
                start: 3 * MIB,
                size: MIB,
                kind: E820Type::Nvs,
            }],
        };
        assert_eq!(
            layout.e820_table().unwrap().as_slice(),
            &[entry(0, 3 * MIB, E820Type::Ram), entry(3 * MIB, MIB, E820Type::Nvs)]
        );
    }

    #[test]
    fn overlapping_holes_are_rejected() {
        let layout = GuestMemoryLayout {
            ram_bytes: 4 * MIB,
            reserved: &[
                LEGACY_HOLE,
                ReservedRange {
                    start: 0xF_F000,
                    size: 0x2000,
                    kind: E820Type::Reserved,
                },
            ],
        };
        assert!(matches!(layout.e820_table(), Err(LoadError::Overlap { .. })));
    }

    #[test]
    fn empty_or_wrapping_holes_are_rejected() {
        for (start, size) in [(MIB, 0), (u64::MAX, 2)] {
            let layout = GuestMemoryLayout {
                ram_bytes: 4 * MIB,
                reserved: &[ReservedRange {
                    start,
                    size,
                    kind: E820Type::Reserved,
                }],
            };
            assert_eq!(layout.e820_table(), Err(LoadError::BadReservedRange { start, size }));
        }
    }

    #[test]
    fn more_than_128_entries_are_rejected() {
        // 64 holes split RAM into 65 pieces: 129 entries.
        let holes: Vec<ReservedRange> = (0..64)
            .map(|index| ReservedRange {
                start: (2 * index + 1) * MIB,
                size: MIB,
                kind: E820Type::Reserved,
            })
            .collect();
        let layout = GuestMemoryLayout {
            ram_bytes: 256 * MIB,
            reserved: &holes,
        };
        assert_eq!(layout.e820_table(), Err(LoadError::TooManyE820Entries { max: 128 }));
        let fits = GuestMemoryLayout {
            reserved: &holes[..63],
            ..layout
        };
        assert_eq!(fits.e820_table().unwrap().as_slice().len(), 127);
    }
}
