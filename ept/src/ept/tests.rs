use keel_memory::{FrameAllocator, PAGE_SIZE_1G, PAGE_SIZE_2M};

use super::*;
use crate::test_support::{arena, TestAllocator, TestMemory, ARENA_BASE};

const RWX: EptFlags = EptFlags::READ_WRITE_EXECUTE;
const WB: MemoryType = MemoryType::WriteBack;

fn gpa(raw: u64) -> GuestPhysAddr {
    GuestPhysAddr::new(raw)
}

fn hpa(raw: u64) -> HostPhysAddr {
    HostPhysAddr::new(raw)
}

fn setup(frames: usize) -> (EptTables, TestAllocator, TestMemory) {
    let (mut alloc, mem) = arena(frames);
    let ept = EptTables::new(&mut alloc, &mem).unwrap();
    (ept, alloc, mem)
}

/// The pages covering `[start, start + len)` as (guest address, size), found
/// by stepping from translation to translation.
fn pages(ept: &EptTables, mem: &TestMemory, start: u64, len: u64) -> Vec<(u64, PageSize)> {
    let mut found = Vec::new();
    let mut addr = start;
    while addr < start + len {
        let translation = ept.translate(gpa(addr), mem).expect("range fully mapped");
        found.push((addr, translation.size));
        addr += translation.size.bytes();
    }
    found
}

#[test]
fn new_tables_have_a_zeroed_root_and_translate_nothing() {
    let (ept, alloc, mem) = setup(4);
    assert_eq!(alloc.outstanding(), 1);
    assert_eq!(ept.root(), hpa(ARENA_BASE));
    let root = mem.frame_ptr(ept.root()).cast::<u64>();
    // SAFETY: the root is an arena frame of 512 u64s owned by this test.
    let entries = unsafe { std::slice::from_raw_parts(root, 512) };
    assert!(entries.iter().all(|&entry| entry == 0));
    assert_eq!(ept.translate(gpa(0), &mem), None);
}

#[test]
fn new_fails_without_frames() {
    let (mut alloc, mem) = arena(0);
    assert_eq!(EptTables::new(&mut alloc, &mem).err(), Some(EptError::OutOfFrames));
}

#[test]
fn each_page_size_translates_every_offset_exactly() {
    let cases = [
        (PageSize::Size4K, 0x7000, 0x1_2345_6000, 4),
        (PageSize::Size2M, 0x60_0000, 0x2_0040_0000, 3),
        (PageSize::Size1G, 0x8000_0000, 0x3_c000_0000, 2),
    ];
    for (size, guest, host, tables) in cases {
        let (mut ept, mut alloc, mem) = setup(8);
        ept.map(gpa(guest), hpa(host), size, RWX, WB, &mut alloc, &mem).unwrap();
        assert_eq!(alloc.outstanding(), tables, "{size:?}");
        let last = size.bytes() - 1;
        for offset in [0, 0x123, last] {
            let translation = ept.translate(gpa(guest + offset), &mem).unwrap();
            assert_eq!(
                translation,
                Translation {
                    hpa: hpa(host + offset),
                    size,
                    flags: RWX,
                    memtype: WB
                }
            );
        }
        assert_eq!(ept.translate(gpa(guest + size.bytes()), &mem), None);
        assert_eq!(ept.translate(gpa(guest - 1), &mem), None);
    }
}

#[test]
fn leaf_entries_follow_the_sdm_encoding() {
    let leaf = encode_leaf(gpa(PAGE_SIZE_1G), hpa(0x4000_0000), PageSize::Size1G, RWX, WB);
    assert_eq!(leaf, Ok(0x4000_0000 | 0b111 | 6 << 3 | 1 << 7));
    let flags = EptFlags::READ | EptFlags::IGNORE_PAT;
    let leaf = encode_leaf(
        gpa(0x1000),
        hpa(0xfee0_0000),
        PageSize::Size4K,
        flags,
        MemoryType::Uncacheable,
    );
    assert_eq!(leaf, Ok(0xfee0_0000 | 0b001 | 1 << 6));
}

#[test]
fn translation_reports_permissions_and_memory_type() {
    let (mut ept, mut alloc, mem) = setup(8);
    let flags = EptFlags::READ | EptFlags::IGNORE_PAT;
    ept.map(
        gpa(0xfee0_0000),
        hpa(0xfee0_0000),
        PageSize::Size4K,
        flags,
        MemoryType::Uncacheable,
        &mut alloc,
        &mem,
    )
    .unwrap();
    let execute_only = EptFlags::EXECUTE;
    ept.map(
        gpa(0x20_0000),
        hpa(0x20_0000),
        PageSize::Size2M,
        execute_only,
        MemoryType::WriteThrough,
        &mut alloc,
        &mem,
    )
    .unwrap();
    let mmio = ept.translate(gpa(0xfee0_0010), &mem).unwrap();
    assert_eq!((mmio.flags, mmio.memtype), (flags, MemoryType::Uncacheable));
    let code = ept.translate(gpa(0x20_1000), &mem).unwrap();
    assert_eq!((code.flags, code.memtype), (execute_only, MemoryType::WriteThrough));
}

#[test]
fn invalid_permissions_are_rejected() {
    let (mut ept, mut alloc, mem) = setup(8);
    for perms in [
        EptFlags::empty(),
        EptFlags::WRITE,
        EptFlags::WRITE | EptFlags::EXECUTE,
        EptFlags::IGNORE_PAT,
        RWX | EptFlags::HUGE,
        RWX | EptFlags::DIRTY,
    ] {
        assert_eq!(
            ept.map(gpa(0), hpa(0), PageSize::Size4K, perms, WB, &mut alloc, &mem),
            Err(EptError::InvalidPermissions),
            "{perms:?}"
        );
    }
    assert_eq!(alloc.outstanding(), 1);
}

#[test]
fn misaligned_addresses_are_rejected() {
    let (mut ept, mut alloc, mem) = setup(8);
    let attempts = [
        (0x1800, 0x1000, PageSize::Size4K),
        (0x1000, 0x1800, PageSize::Size4K),
        (0x1000, 0x20_0000, PageSize::Size2M),
        (0x20_0000, 0x1000, PageSize::Size2M),
        (PAGE_SIZE_2M, PAGE_SIZE_1G, PageSize::Size1G),
    ];
    for (guest, host, size) in attempts {
        assert_eq!(
            ept.map(gpa(guest), hpa(host), size, RWX, WB, &mut alloc, &mem),
            Err(EptError::Misaligned)
        );
    }
    assert_eq!(
        ept.map_range(gpa(0), hpa(0), 0x1800, RWX, WB, PageSize::Size1G, &mut alloc, &mem),
        Err(EptError::Misaligned)
    );
    assert_eq!(alloc.outstanding(), 1);
}

#[test]
fn addresses_beyond_the_architectural_limits_are_rejected() {
    let (mut ept, mut alloc, mem) = setup(8);
    assert_eq!(
        ept.map(
            gpa(GUEST_PHYS_ADDR_LIMIT),
            hpa(0),
            PageSize::Size4K,
            RWX,
            WB,
            &mut alloc,
            &mem
        ),
        Err(EptError::AddressOutOfRange)
    );
    assert_eq!(
        ept.map(
            gpa(0),
            hpa(HOST_PHYS_ADDR_LIMIT),
            PageSize::Size4K,
            RWX,
            WB,
            &mut alloc,
            &mem
        ),
        Err(EptError::AddressOutOfRange)
    );
    let near_top = GUEST_PHYS_ADDR_LIMIT - PAGE_SIZE_4K;
    assert_eq!(
        ept.map_range(
            gpa(near_top),
            hpa(0),
            2 * PAGE_SIZE_4K,
            RWX,
            WB,
            PageSize::Size4K,
            &mut alloc,
            &mem
        ),
        Err(EptError::AddressOutOfRange)
    );
    assert_eq!(
        ept.map_range(
            gpa(0),
            hpa(u64::MAX - 0xfff),
            0x2000,
            RWX,
            WB,
            PageSize::Size4K,
            &mut alloc,
            &mem
        ),
        Err(EptError::AddressOutOfRange)
    );
    // The top-level index ignores bits 63:48, so such an address must not
    // alias a low mapping.
    ept.map(gpa(0), hpa(0), PageSize::Size4K, RWX, WB, &mut alloc, &mem)
        .unwrap();
    assert_eq!(ept.translate(gpa(GUEST_PHYS_ADDR_LIMIT), &mem), None);
    assert_eq!(ept.translate(gpa(u64::MAX), &mem), None);
}

#[test]
fn overlapping_mappings_are_already_mapped() {
    let (mut ept, mut alloc, mem) = setup(16);
    ept.map(
        gpa(0x20_0000),
        hpa(0x20_0000),
        PageSize::Size2M,
        RWX,
        WB,
        &mut alloc,
        &mem,
    )
    .unwrap();
    ept.map(gpa(0x40_1000), hpa(0x1000), PageSize::Size4K, RWX, WB, &mut alloc, &mem)
        .unwrap();
    let tables_before = alloc.outstanding();
    let conflicts = [
        // The same 2 MiB page again.
        (0x20_0000, PageSize::Size2M),
        // A 4 KiB page inside the 2 MiB page.
        (0x20_5000, PageSize::Size4K),
        // A 1 GiB page over the 2 MiB page.
        (0x0, PageSize::Size1G),
        // The same 4 KiB page again.
        (0x40_1000, PageSize::Size4K),
        // A 2 MiB page over a table of 4 KiB pages.
        (0x40_0000, PageSize::Size2M),
    ];
    for (guest, size) in conflicts {
        assert_eq!(
            ept.map(gpa(guest), hpa(0), size, RWX, WB, &mut alloc, &mem),
            Err(EptError::AlreadyMapped),
            "{guest:#x} {size:?}"
        );
    }
    assert_eq!(alloc.outstanding(), tables_before);
}

#[test]
fn map_range_uses_one_gib_pages_for_aligned_ram() {
    let (mut ept, mut alloc, mem) = setup(8);
    ept.map_range(
        gpa(0),
        hpa(0x1_0000_0000),
        2 * PAGE_SIZE_1G,
        RWX,
        WB,
        PageSize::Size1G,
        &mut alloc,
        &mem,
    )
    .unwrap();
    assert_eq!(
        pages(&ept, &mem, 0, 2 * PAGE_SIZE_1G),
        [(0, PageSize::Size1G), (PAGE_SIZE_1G, PageSize::Size1G)]
    );
    // Root plus one PDPT.
    assert_eq!(alloc.outstanding(), 2);
    assert_eq!(ept.translate(gpa(0x7fff_ffff), &mem).unwrap().hpa, hpa(0x1_7fff_ffff));
}

#[test]
fn map_range_mixes_page_sizes_for_unaligned_regions() {
    let (mut ept, mut alloc, mem) = setup(16);
    let start = PAGE_SIZE_1G - PAGE_SIZE_2M - PAGE_SIZE_4K;
    let end = 2 * PAGE_SIZE_1G + PAGE_SIZE_2M + PAGE_SIZE_4K;
    let delta = 0x10_0000_0000;
    ept.map_range(
        gpa(start),
        hpa(start + delta),
        end - start,
        RWX,
        WB,
        PageSize::Size1G,
        &mut alloc,
        &mem,
    )
    .unwrap();
    assert_eq!(
        pages(&ept, &mem, start, end - start),
        [
            (start, PageSize::Size4K),
            (PAGE_SIZE_1G - PAGE_SIZE_2M, PageSize::Size2M),
            (PAGE_SIZE_1G, PageSize::Size1G),
            (2 * PAGE_SIZE_1G, PageSize::Size2M),
            (2 * PAGE_SIZE_1G + PAGE_SIZE_2M, PageSize::Size4K),
        ]
    );
    for guest in [start, start + 0xabc, PAGE_SIZE_1G + 0x1234_5678, end - 1] {
        assert_eq!(ept.translate(gpa(guest), &mem).unwrap().hpa, hpa(guest + delta));
    }
    assert_eq!(ept.translate(gpa(start - 1), &mem), None);
    assert_eq!(ept.translate(gpa(end), &mem), None);
}

#[test]
fn map_range_respects_max_page() {
    let (mut ept, mut alloc, mem) = setup(16);
    ept.map_range(
        gpa(0),
        hpa(0),
        PAGE_SIZE_1G,
        RWX,
        WB,
        PageSize::Size2M,
        &mut alloc,
        &mem,
    )
    .unwrap();
    let found = pages(&ept, &mem, 0, PAGE_SIZE_1G);
    assert_eq!(found.len(), 512);
    assert!(found.iter().all(|&(_, size)| size == PageSize::Size2M));
}

#[test]
fn map_range_falls_back_to_small_pages_when_host_alignment_differs() {
    let (mut ept, mut alloc, mem) = setup(16);
    // The guest side is 2 MiB aligned but the host side only 4 KiB aligned.
    ept.map_range(
        gpa(PAGE_SIZE_2M),
        hpa(0x1000),
        PAGE_SIZE_2M,
        RWX,
        WB,
        PageSize::Size1G,
        &mut alloc,
        &mem,
    )
    .unwrap();
    let found = pages(&ept, &mem, PAGE_SIZE_2M, PAGE_SIZE_2M);
    assert_eq!(found.len(), 512);
    assert!(found.iter().all(|&(_, size)| size == PageSize::Size4K));
}

#[test]
fn unmap_removes_the_page_and_frees_emptied_tables() {
    let (mut ept, mut alloc, mem) = setup(8);
    ept.map(gpa(0x5000), hpa(0x9000), PageSize::Size4K, RWX, WB, &mut alloc, &mem)
        .unwrap();
    ept.map(gpa(0x6000), hpa(0xa000), PageSize::Size4K, RWX, WB, &mut alloc, &mem)
        .unwrap();
    assert_eq!(alloc.outstanding(), 4);

    assert_eq!(
        ept.unmap(gpa(0x5000), PageSize::Size4K, &mut alloc, &mem),
        Ok(hpa(0x9000))
    );
    assert_eq!(ept.translate(gpa(0x5000), &mem), None);
    assert!(ept.translate(gpa(0x6000), &mem).is_some());
    assert_eq!(alloc.outstanding(), 4, "the page table still holds 0x6000");

    assert_eq!(
        ept.unmap(gpa(0x6000), PageSize::Size4K, &mut alloc, &mem),
        Ok(hpa(0xa000))
    );
    assert_eq!(alloc.outstanding(), 1);
    // With the small-page tables gone a large page fits again.
    ept.map(gpa(0), hpa(0), PageSize::Size1G, RWX, WB, &mut alloc, &mem)
        .unwrap();
}

#[test]
fn unmap_reports_missing_and_mismatched_pages() {
    let (mut ept, mut alloc, mem) = setup(8);
    ept.map(
        gpa(0x20_0000),
        hpa(0x20_0000),
        PageSize::Size2M,
        RWX,
        WB,
        &mut alloc,
        &mem,
    )
    .unwrap();
    ept.map(
        gpa(0x40_0000),
        hpa(0x40_0000),
        PageSize::Size4K,
        RWX,
        WB,
        &mut alloc,
        &mem,
    )
    .unwrap();
    let cases = [
        (0x60_0000, PageSize::Size2M, EptError::NotMapped),
        (0x40_1000, PageSize::Size4K, EptError::NotMapped),
        (0x8000_0000, PageSize::Size1G, EptError::NotMapped),
        (0x20_1000, PageSize::Size4K, EptError::SizeMismatch),
        (0x0, PageSize::Size1G, EptError::SizeMismatch),
        (0x40_0000, PageSize::Size2M, EptError::SizeMismatch),
        (0x20_1000, PageSize::Size2M, EptError::Misaligned),
    ];
    for (guest, size, error) in cases {
        assert_eq!(
            ept.unmap(gpa(guest), size, &mut alloc, &mem),
            Err(error),
            "{guest:#x} {size:?}"
        );
    }
    assert!(ept.translate(gpa(0x20_0000), &mem).is_some());
    assert!(ept.translate(gpa(0x40_0000), &mem).is_some());
}

#[test]
fn running_out_of_frames_changes_nothing_and_leaks_nothing() {
    let (mut ept, mut alloc, mem) = setup(8);
    // A 4 KiB page needs three new tables; allow only two.
    alloc.limit_allocations(2);
    assert_eq!(
        ept.map(gpa(0x1000), hpa(0x1000), PageSize::Size4K, RWX, WB, &mut alloc, &mem),
        Err(EptError::OutOfFrames)
    );
    assert_eq!(alloc.outstanding(), 1);
    assert_eq!(ept.translate(gpa(0x1000), &mem), None);

    alloc.limit_allocations(usize::MAX);
    ept.map(gpa(0x1000), hpa(0x1000), PageSize::Size4K, RWX, WB, &mut alloc, &mem)
        .unwrap();
    assert_eq!(ept.translate(gpa(0x1000), &mem).unwrap().hpa, hpa(0x1000));
}

#[test]
fn failed_map_range_rolls_back_what_it_mapped() {
    let (mut ept, mut alloc, mem) = setup(16);
    // 4 KiB at 0x1ff000 needs PDPT, PD and PT; the 2 MiB page after it is
    // free of new tables; the 4 KiB page in the next 1 GiB needs a new PD and
    // PT, of which only one is allowed.
    alloc.limit_allocations(4);
    let start = PAGE_SIZE_2M - PAGE_SIZE_4K;
    let len = PAGE_SIZE_1G + PAGE_SIZE_4K - start;
    assert_eq!(
        ept.map_range(gpa(start), hpa(start), len, RWX, WB, PageSize::Size2M, &mut alloc, &mem),
        Err(EptError::OutOfFrames)
    );
    assert_eq!(alloc.outstanding(), 1);
    assert_eq!(ept.translate(gpa(start), &mem), None);
    assert_eq!(ept.translate(gpa(PAGE_SIZE_2M), &mem), None);
}

#[test]
fn eptp_holds_root_memory_type_walk_length_and_ad_flag() {
    let (ept, _alloc, _mem) = setup(1);
    let root = ept.root().as_u64();
    assert_eq!(ept.eptp(MemoryType::WriteBack, true), root | 6 | 3 << 3 | 1 << 6);
    assert_eq!(ept.eptp(MemoryType::WriteBack, false), root | 0x1e);
    assert_eq!(ept.eptp(MemoryType::Uncacheable, false), root | 0x18);
}

#[test]
fn destroy_returns_every_table_frame_but_no_data_frame() {
    let (mut ept, mut alloc, mem) = setup(32);
    let data_frame = alloc.allocate_frame().unwrap();
    ept.map(gpa(0x1000), data_frame, PageSize::Size4K, RWX, WB, &mut alloc, &mem)
        .unwrap();
    ept.map_range(
        gpa(0x3fff_f000),
        hpa(0x3fff_f000),
        PAGE_SIZE_1G + 0x2000,
        RWX,
        WB,
        PageSize::Size1G,
        &mut alloc,
        &mem,
    )
    .unwrap();
    ept.map(gpa(0x7f_0000_0000), hpa(0), PageSize::Size1G, RWX, WB, &mut alloc, &mem)
        .unwrap();
    assert!(alloc.outstanding() > 5);
    ept.destroy(&mut alloc, &mem);
    assert_eq!(alloc.outstanding(), 1, "only the data frame remains allocated");
    alloc.free_frame(data_frame);
}
