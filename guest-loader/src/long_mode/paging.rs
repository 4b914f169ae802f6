//! Identity-mapping page tables: one PML4, one PDPT and one page directory
//! of 2 MiB pages per GiB mapped.

use crate::error::{GuestRegion, LoadError, RegionKind};
use crate::guest_memory::{guest_bytes_mut, PAGE_SIZE};

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
/// address (the guest's CR3).
pub(crate) fn write_identity_map(ram: &mut [u8], tables_gpa: u64, identity_map_bytes: u64) -> Result<u64, LoadError> {
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
    let tables = guest_bytes_mut(ram, region)?;
    // Guest RAM may hold anything; stale bytes would read as extra mappings.
    tables.fill(0);

    let pml4_offset = 0;
    let pdpt_offset = PAGE_SIZE;
    let first_directory_offset = 2 * PAGE_SIZE;
    let table_entry = |table_offset: u64| (tables_gpa + table_offset) | PRESENT | WRITABLE;

    let mut writer = TableWriter { tables, region };
    writer.set(pml4_offset, 0, table_entry(pdpt_offset))?;
    for gib in 0..directory_count(identity_map_bytes) {
        let directory_offset = first_directory_offset + gib * PAGE_SIZE;
        writer.set(pdpt_offset, gib, table_entry(directory_offset))?;
        for index in 0..ENTRIES_PER_TABLE {
            let physical = gib * ONE_GIB + index * TWO_MIB;
            writer.set(directory_offset, index, physical | PRESENT | WRITABLE | HUGE_PAGE)?;
        }
    }
    Ok(tables_gpa + pml4_offset)
}

/// Writes entries into the page-table region, which was sized from the same
/// directory count, so the bounds check below only guards against bugs.
struct TableWriter<'a> {
    tables: &'a mut [u8],
    region: GuestRegion,
}

impl TableWriter<'_> {
    fn set(&mut self, table_offset: u64, index: u64, entry: u64) -> Result<(), LoadError> {
        let out_of_range = LoadError::OutOfRange {
            region: self.region,
            ram_bytes: self.region.end,
        };
        let start = usize::try_from(table_offset + index * 8).map_err(|_| out_of_range)?;
        let slot = self
            .tables
            .get_mut(start..start.saturating_add(8))
            .ok_or(out_of_range)?;
        slot.copy_from_slice(&entry.to_le_bytes());
        Ok(())
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
