//! Identity-mapping page tables: one PML4, one PDPT and one page directory
//! of 2 MiB pages per GiB mapped.

use keel_memory::GuestMemory;

use crate::error::{GuestRegion, LoadError, RegionKind};
use crate::guest_memory::{check_backed, write_guest, PAGE_SIZE};

pub(crate) const PRESENT: u64 = 1 << 0;
pub(crate) const WRITABLE: u64 = 1 << 1;
/// In a page-directory entry: the entry maps a 2 MiB page, not a table.
pub(crate) const HUGE_PAGE: u64 = 1 << 7;

const ENTRIES_PER_TABLE: u64 = 512;
const TWO_MIB: u64 = 2 << 20;
const ONE_GIB: u64 = 1 << 30;

/// Largest identity map: a single PDPT covers 512 GiB.
pub const MAX_IDENTITY_MAP_BYTES: u64 = ENTRIES_PER_TABLE * ONE_GIB;

/// Number of page directories (one per GiB) for a map of `identity_map_bytes`;
/// at least one so even an empty request maps the low memory the guest boots in.
fn directory_count(identity_map_bytes: u64) -> u64 {
    identity_map_bytes.div_ceil(ONE_GIB).clamp(1, ENTRIES_PER_TABLE)
}

/// Bytes of page tables needed to identity-map `[0, identity_map_bytes)`
/// rounded up to whole GiB (at least one). Requests beyond
/// [`MAX_IDENTITY_MAP_BYTES`] are sized as the maximum; `setup_long_mode`
/// rejects them.
pub fn long_mode_tables_size(identity_map_bytes: u64) -> u64 {
    // PML4 + PDPT + the page directories; at most 514 pages, so no overflow.
    (2 + directory_count(identity_map_bytes)) * PAGE_SIZE
}

/// Writes the identity-map tables at `tables_gpa` and returns the PML4
/// address (the guest's CR3). Each table is built in a host buffer and
/// written whole, so guest RAM may hold anything beforehand: stale bytes
/// never survive as extra mappings.
pub(crate) fn write_identity_map<M: GuestMemory + ?Sized>(
    memory: &mut M,
    tables_gpa: u64,
    identity_map_bytes: u64,
) -> Result<u64, LoadError> {
    if identity_map_bytes > MAX_IDENTITY_MAP_BYTES {
        return Err(LoadError::IdentityMapTooLarge {
            requested: identity_map_bytes,
            max: MAX_IDENTITY_MAP_BYTES,
        });
    }
    let region = GuestRegion::new(
        RegionKind::PageTables,
        tables_gpa,
        long_mode_tables_size(identity_map_bytes),
    )?;
    check_backed(memory, region)?;

    let pml4_gpa = region.start;
    let pdpt_gpa = pml4_gpa + PAGE_SIZE;
    let first_directory_gpa = pml4_gpa + 2 * PAGE_SIZE;
    let table_entry = |table_gpa: u64| table_gpa | PRESENT | WRITABLE;
    let directories = directory_count(identity_map_bytes);

    let mut pml4 = Table::default();
    pml4.set(0, table_entry(pdpt_gpa));
    write_guest(memory, RegionKind::PageTables, pml4_gpa, &pml4.0)?;

    let mut pdpt = Table::default();
    for gib in 0..directories {
        pdpt.set(gib, table_entry(first_directory_gpa + gib * PAGE_SIZE));
    }
    write_guest(memory, RegionKind::PageTables, pdpt_gpa, &pdpt.0)?;

    for gib in 0..directories {
        let mut directory = Table::default();
        for index in 0..ENTRIES_PER_TABLE {
            let physical = gib * ONE_GIB + index * TWO_MIB;
            directory.set(index, physical | PRESENT | WRITABLE | HUGE_PAGE);
        }
        write_guest(
            memory,
            RegionKind::PageTables,
            first_directory_gpa + gib * PAGE_SIZE,
            &directory.0,
        )?;
    }
    Ok(pml4_gpa)
}

/// One 4 KiB paging structure being built.
struct Table([u8; PAGE_SIZE as usize]);

impl Default for Table {
    fn default() -> Self {
        Self([0; PAGE_SIZE as usize])
    }
}

impl Table {
    /// Sets entry `index` (below 512; callers iterate up to
    /// `ENTRIES_PER_TABLE`, so anything else is silently ignored).
    fn set(&mut self, index: u64, entry: u64) {
        let start = usize::try_from(index * 8).unwrap_or(usize::MAX);
        if let Some(slot) = self.0.get_mut(start..start.saturating_add(8)) {
            slot.copy_from_slice(&entry.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_size_rounds_up_to_whole_gib() {
        assert_eq!(long_mode_tables_size(0), 3 * PAGE_SIZE);
        assert_eq!(long_mode_tables_size(1), 3 * PAGE_SIZE);
        assert_eq!(long_mode_tables_size(ONE_GIB), 3 * PAGE_SIZE);
        assert_eq!(long_mode_tables_size(ONE_GIB + 1), 4 * PAGE_SIZE);
        assert_eq!(long_mode_tables_size(4 * ONE_GIB), 6 * PAGE_SIZE);
        assert_eq!(long_mode_tables_size(MAX_IDENTITY_MAP_BYTES), 514 * PAGE_SIZE);
        assert_eq!(long_mode_tables_size(u64::MAX), 514 * PAGE_SIZE);
    }

    #[test]
    fn oversized_identity_map_is_rejected() {
        let mut ram = vec![0u8; 0x10000];
        assert_eq!(
            write_identity_map(&mut ram, 0x1000, MAX_IDENTITY_MAP_BYTES + 1),
            Err(LoadError::IdentityMapTooLarge {
                requested: MAX_IDENTITY_MAP_BYTES + 1,
                max: MAX_IDENTITY_MAP_BYTES
            })
        );
    }
}
