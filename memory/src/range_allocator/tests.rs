use super::*;
use crate::PAGE_SIZE_2M;

const KIB4: u64 = PAGE_SIZE_4K;

fn range(start: u64, end: u64) -> PhysRange {
    PhysRange::new(HostPhysAddr::new(start), HostPhysAddr::new(end))
}

fn free_ranges<const N: usize>(alloc: &RangeAllocator<N>) -> Vec<(u64, u64)> {
    alloc.ranges().map(|r| (r.start.as_u64(), r.end.as_u64())).collect()
}

#[test]
fn new_allocator_is_empty() {
    let mut alloc = RangeAllocator::<4>::new();
    assert_eq!(alloc.free_bytes(), 0);
    assert_eq!(alloc.allocate(KIB4, KIB4), None);
}

#[test]
fn adjacent_ranges_merge_in_any_order() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x3000, 0x4000)).unwrap();
    alloc.add_free(range(0x1000, 0x2000)).unwrap();
    assert_eq!(free_ranges(&alloc), [(0x1000, 0x2000), (0x3000, 0x4000)]);
    // Filling the hole joins all three into one range.
    alloc.add_free(range(0x2000, 0x3000)).unwrap();
    assert_eq!(free_ranges(&alloc), [(0x1000, 0x4000)]);
    assert_eq!(alloc.free_bytes(), 0x3000);
}

#[test]
fn add_free_drops_partial_pages() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x1234, 0x5678)).unwrap();
    alloc.add_free(range(0x9001, 0x9fff)).unwrap();
    assert_eq!(free_ranges(&alloc), [(0x2000, 0x5000)]);
}

#[test]
fn add_free_rejects_overlap_with_free_memory() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x1000, 0x4000)).unwrap();
    assert_eq!(
        alloc.add_free(range(0x3000, 0x6000)),
        Err(AllocError::OverlapsFreeMemory)
    );
    assert_eq!(alloc.add_free(range(0x0, 0x2000)), Err(AllocError::OverlapsFreeMemory));
    assert_eq!(free_ranges(&alloc), [(0x1000, 0x4000)]);
}

#[test]
fn reserve_in_the_middle_splits_a_range() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x0, 0x10000)).unwrap();
    alloc.reserve(range(0x4000, 0x6000)).unwrap();
    assert_eq!(free_ranges(&alloc), [(0x0, 0x4000), (0x6000, 0x10000)]);
}

#[test]
fn reserve_rounds_outward_to_whole_pages() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x0, 0x10000)).unwrap();
    alloc.reserve(range(0x4800, 0x5001)).unwrap();
    assert_eq!(free_ranges(&alloc), [(0x0, 0x4000), (0x6000, 0x10000)]);
}

#[test]
fn reserve_across_several_ranges_trims_and_removes() {
    let mut alloc = RangeAllocator::<8>::new();
    alloc.add_free(range(0x1000, 0x3000)).unwrap();
    alloc.add_free(range(0x4000, 0x5000)).unwrap();
    alloc.add_free(range(0x6000, 0x9000)).unwrap();
    alloc.add_free(range(0xa000, 0xb000)).unwrap();
    alloc.reserve(range(0x2000, 0x7000)).unwrap();
    assert_eq!(
        free_ranges(&alloc),
        [(0x1000, 0x2000), (0x7000, 0x9000), (0xa000, 0xb000)]
    );
}

#[test]
fn reserving_memory_that_is_not_free_is_a_no_op() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x1000, 0x2000)).unwrap();
    alloc.reserve(range(0x8000, 0x9000)).unwrap();
    alloc.reserve(range(0x0, 0x0)).unwrap();
    assert_eq!(free_ranges(&alloc), [(0x1000, 0x2000)]);
}

#[test]
fn reserve_that_needs_a_split_beyond_capacity_fails_unchanged() {
    let mut alloc = RangeAllocator::<1>::new();
    alloc.add_free(range(0x0, 0x10000)).unwrap();
    assert_eq!(alloc.reserve(range(0x4000, 0x5000)), Err(AllocError::CapacityExceeded));
    assert_eq!(free_ranges(&alloc), [(0x0, 0x10000)]);
    // Trimming an end needs no extra slot.
    alloc.reserve(range(0x0, 0x1000)).unwrap();
    assert_eq!(free_ranges(&alloc), [(0x1000, 0x10000)]);
}

#[test]
fn add_free_beyond_capacity_is_an_error() {
    let mut alloc = RangeAllocator::<2>::new();
    alloc.add_free(range(0x1000, 0x2000)).unwrap();
    alloc.add_free(range(0x3000, 0x4000)).unwrap();
    assert_eq!(alloc.add_free(range(0x5000, 0x6000)), Err(AllocError::CapacityExceeded));
    // A merging insertion still fits.
    alloc.add_free(range(0x4000, 0x5000)).unwrap();
    assert_eq!(free_ranges(&alloc), [(0x1000, 0x2000), (0x3000, 0x5000)]);
}

#[test]
fn allocate_honours_alignment_and_keeps_the_skipped_head() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x1000, 0x400000)).unwrap();
    let addr = alloc.allocate(PAGE_SIZE_2M, PAGE_SIZE_2M).unwrap();
    assert_eq!(addr, HostPhysAddr::new(0x200000));
    assert_eq!(free_ranges(&alloc), [(0x1000, 0x200000)]);
}

#[test]
fn allocate_is_first_fit() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x1000, 0x2000)).unwrap();
    alloc.add_free(range(0x10000, 0x20000)).unwrap();
    assert_eq!(alloc.allocate(KIB4, KIB4), Some(HostPhysAddr::new(0x1000)));
    assert_eq!(alloc.allocate(0x2000, KIB4), Some(HostPhysAddr::new(0x10000)));
    assert_eq!(free_ranges(&alloc), [(0x12000, 0x20000)]);
}

#[test]
fn allocate_rejects_bad_sizes_and_alignments() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x0, 0x10000)).unwrap();
    assert_eq!(alloc.allocate(0, KIB4), None);
    assert_eq!(alloc.allocate(0x800, KIB4), None);
    assert_eq!(alloc.allocate(KIB4, 0x3000), None);
    assert_eq!(alloc.allocate(KIB4, 0), None);
    // Sub-page alignment is rounded up to a page.
    assert_eq!(alloc.allocate(KIB4, 8), Some(HostPhysAddr::new(0)));
}

#[test]
fn allocation_exhausts_memory() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x1000, 0x4000)).unwrap();
    let frames: Vec<_> = (0..3).map(|_| alloc.allocate_frame()).collect();
    assert_eq!(
        frames,
        [Some(0x1000), Some(0x2000), Some(0x3000)].map(|a| a.map(HostPhysAddr::new))
    );
    assert_eq!(alloc.allocate_frame(), None);
    assert_eq!(alloc.allocate(0x2000, KIB4), None);
    assert_eq!(alloc.free_bytes(), 0);
}

#[test]
fn allocation_too_large_for_any_range_fails() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x0, 0x3000)).unwrap();
    alloc.add_free(range(0x4000, 0x7000)).unwrap();
    assert_eq!(alloc.allocate(0x4000, KIB4), None);
    assert_eq!(alloc.free_bytes(), 0x6000);
}

#[test]
fn allocation_that_needs_a_split_skips_to_a_range_that_does_not() {
    let mut alloc = RangeAllocator::<2>::new();
    alloc.add_free(range(0x1000, 0x500000)).unwrap();
    alloc.add_free(range(0x600000, 0x800000)).unwrap();
    // An aligned 2 MiB block in the first range would leave a head and a
    // tail (three ranges); the second range is exactly one 2 MiB block.
    assert_eq!(
        alloc.allocate(PAGE_SIZE_2M, PAGE_SIZE_2M),
        Some(HostPhysAddr::new(0x600000))
    );
    assert_eq!(free_ranges(&alloc), [(0x1000, 0x500000)]);
}

#[test]
fn free_returns_memory_and_merges() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x0, 0x4000)).unwrap();
    let a = alloc.allocate_frame().unwrap();
    let b = alloc.allocate_frame().unwrap();
    alloc.free(a, KIB4).unwrap();
    assert_eq!(free_ranges(&alloc), [(0x0, 0x1000), (0x2000, 0x4000)]);
    alloc.free_frame(b);
    assert_eq!(free_ranges(&alloc), [(0x0, 0x4000)]);
}

#[test]
fn double_free_is_detected() {
    let mut alloc = RangeAllocator::<4>::new();
    alloc.add_free(range(0x0, 0x4000)).unwrap();
    let frame = alloc.allocate(0x2000, KIB4).unwrap();
    alloc.free(frame, 0x2000).unwrap();
    assert_eq!(alloc.free(frame, KIB4), Err(AllocError::OverlapsFreeMemory));
    assert_eq!(
        alloc.free(HostPhysAddr::new(0x1000), 0x4000),
        Err(AllocError::OverlapsFreeMemory)
    );
    // The trait method swallows the error but must not corrupt the list.
    alloc.free_frame(frame);
    assert_eq!(free_ranges(&alloc), [(0x0, 0x4000)]);
}

#[test]
fn free_validates_its_arguments() {
    let mut alloc = RangeAllocator::<4>::new();
    assert_eq!(alloc.free(HostPhysAddr::new(0x1000), 0), Err(AllocError::InvalidRange));
    assert_eq!(alloc.free(HostPhysAddr::new(0x1800), KIB4), Err(AllocError::Misaligned));
    assert_eq!(
        alloc.free(HostPhysAddr::new(0x1000), 0x800),
        Err(AllocError::Misaligned)
    );
    assert_eq!(
        alloc.free(HostPhysAddr::new(u64::MAX - 0xfff), 0x2000),
        Err(AllocError::InvalidRange)
    );
    assert_eq!(alloc.free_bytes(), 0);
}

#[test]
fn free_beyond_capacity_is_an_error_not_a_panic() {
    let mut alloc = RangeAllocator::<1>::new();
    alloc.add_free(range(0x0, 0x3000)).unwrap();
    let _first = alloc.allocate_frame().unwrap();
    let second = alloc.allocate_frame().unwrap();
    // Freeing the middle frame would need a second, non-adjacent range.
    let _third = alloc.allocate_frame().unwrap();
    alloc.free(HostPhysAddr::new(0x0), KIB4).unwrap();
    assert_eq!(
        alloc.free(HostPhysAddr::new(0x2000), KIB4),
        Err(AllocError::CapacityExceeded)
    );
    assert_eq!(second, HostPhysAddr::new(0x1000));
    alloc.free(second, KIB4).unwrap();
    assert_eq!(free_ranges(&alloc), [(0x0, 0x2000)]);
}

#[test]
fn zero_capacity_allocator_rejects_everything_gracefully() {
    let mut alloc = RangeAllocator::<0>::new();
    assert_eq!(alloc.add_free(range(0x0, 0x1000)), Err(AllocError::CapacityExceeded));
    assert_eq!(alloc.allocate_frame(), None);
}

#[test]
fn boot_sequence_add_reserve_allocate() {
    // Memory map: low RAM below 640 KiB and 1 MiB..128 MiB; kernel image at
    // 1 MiB..3 MiB and a module at 8 MiB (unaligned end).
    let mut alloc = RangeAllocator::<16>::new();
    alloc.add_free(range(0x0, 0x9fc00)).unwrap();
    alloc.add_free(range(0x100000, 0x8000000)).unwrap();
    alloc.reserve(range(0x0, 0x1000)).unwrap();
    alloc.reserve(range(0x100000, 0x300000)).unwrap();
    alloc.reserve(range(0x800000, 0x812345)).unwrap();
    assert_eq!(
        free_ranges(&alloc),
        [(0x1000, 0x9f000), (0x300000, 0x800000), (0x813000, 0x8000000)]
    );
    let block = alloc.allocate(PAGE_SIZE_2M, PAGE_SIZE_2M).unwrap();
    assert_eq!(block, HostPhysAddr::new(0x400000));
}
