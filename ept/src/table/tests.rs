//! The walker with a VT-d-like format (present = read or write), showing it
//! is independent of EPT's encoding.

use keel_memory::PAGE_SIZE_2M;

use super::*;
use crate::error::EptError;
use crate::flags::PageSize;
use crate::test_support::arena;

struct ReadWriteFormat;

impl EntryFormat for ReadWriteFormat {
    const PRESENT_MASK: u64 = 0b11;
    const TABLE_POINTER_FLAGS: u64 = 0b11;
}

#[test]
fn level_indices_come_from_the_right_address_bits() {
    let addr: u64 = (3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0x123;
    assert_eq!(Level::Pml4.index(addr).get(), 3);
    assert_eq!(Level::Pdpt.index(addr).get(), 5);
    assert_eq!(Level::Pd.index(addr).get(), 7);
    assert_eq!(Level::Pt.index(addr).get(), 9);
    // Bits above 47 never leak into the top-level index.
    assert_eq!(Level::Pml4.index(u64::MAX).get(), 511);
}

#[test]
fn leaf_detection_depends_on_level() {
    assert!(is_leaf(0x1003, Level::Pt));
    assert!(!is_leaf(0x1003, Level::Pd));
    assert!(is_leaf(0x1003 | LARGE_PAGE_BIT, Level::Pdpt));
    assert!(!is_leaf(0x1003 | LARGE_PAGE_BIT, Level::Pml4));
}

#[test]
fn another_format_maps_looks_up_and_prunes() {
    let (mut alloc, mem) = arena(8);
    let mut tables = PageTables::<ReadWriteFormat>::new(&mut alloc, &mem).unwrap();
    let leaf = 0x8000_0000 | 0b01 | LARGE_PAGE_BIT;
    tables
        .map_leaf(PAGE_SIZE_2M, leaf, PageSize::Size2M, &mut alloc, &mem)
        .unwrap();
    assert_eq!(alloc.outstanding(), 3);
    assert_eq!(
        tables.lookup(PAGE_SIZE_2M + 0x1234, &mem),
        Some(Leaf {
            entry: leaf,
            size: PageSize::Size2M
        })
    );
    // Write-only counts as present in this format.
    assert_eq!(
        tables.map_leaf(PAGE_SIZE_2M, 0b10, PageSize::Size2M, &mut alloc, &mem),
        Err(EptError::AlreadyMapped)
    );
    assert_eq!(
        tables.unmap_leaf(PAGE_SIZE_2M, PageSize::Size2M, &mut alloc, &mem),
        Ok(leaf)
    );
    assert_eq!(alloc.outstanding(), 1);
    tables.destroy(&mut alloc, &mem);
    assert_eq!(alloc.outstanding(), 0);
}
