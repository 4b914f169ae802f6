use super::*;
use crate::test_support::{FakeFrames, FakeMemory, FRAME_BASE};

const RW: Access = Access::READ_WRITE;
const ALL_PAGES: LargePages = LargePages {
    size_2m: true,
    size_1g: true,
};

fn gpa(raw: u64) -> GuestPhysAddr {
    GuestPhysAddr::new(raw)
}

fn hpa(raw: u64) -> HostPhysAddr {
    HostPhysAddr::new(raw)
}

fn config(agaw: Agaw) -> SlConfig {
    SlConfig {
        agaw,
        large_pages: ALL_PAGES,
        snoop: false,
    }
}

fn setup(agaw: Agaw) -> (SecondLevelTables, FakeFrames, FakeMemory) {
    let (mut alloc, mut mem) = (FakeFrames::default(), FakeMemory::default());
    let tables = SecondLevelTables::new(config(agaw), &mut alloc, &mut mem).unwrap();
    (tables, alloc, mem)
}

/// The pages covering `[start, start + len)`, found by stepping from
/// translation to translation.
fn pages(tables: &SecondLevelTables, mem: &FakeMemory, start: u64, len: u64) -> Vec<(u64, PageSize)> {
    let mut found = Vec::new();
    let mut address = start;
    while address < start + len {
        let translation = tables.translate(gpa(address), mem).expect("range fully mapped");
        found.push((address, translation.size));
        address += translation.size.bytes();
    }
    found
}

#[test]
fn new_tables_are_zeroed_and_translate_nothing() {
    let (tables, alloc, mem) = setup(Agaw::Bits48);
    assert_eq!(alloc.outstanding(), 1);
    assert_eq!(tables.root(), hpa(FRAME_BASE));
    for index in 0..512 {
        assert_eq!(mem.read_u64(hpa(FRAME_BASE + index * 8)), 0);
    }
    assert_eq!(tables.translate(gpa(0), &mem), None);
}

#[test]
fn each_walk_depth_maps_and_translates() {
    for (agaw, tables_for_4k) in [(Agaw::Bits39, 3), (Agaw::Bits48, 4), (Agaw::Bits57, 5)] {
        let (mut tables, mut alloc, mut mem) = setup(agaw);
        let top = agaw.limit() - PAGE_SIZE_4K;
        tables
            .map(gpa(top), hpa(0x1234_5000), PageSize::Size4K, RW, &mut alloc, &mut mem)
            .unwrap();
        assert_eq!(alloc.outstanding(), tables_for_4k, "{agaw:?}");
        let translation = tables.translate(gpa(top + 0x678), &mem).unwrap();
        assert_eq!(
            translation,
            SlTranslation {
                hpa: hpa(0x1234_5678),
                size: PageSize::Size4K,
                access: RW,
                snoop: false
            }
        );
        assert_eq!(tables.translate(gpa(top - 1), &mem), None);
        assert_eq!(tables.translate(gpa(agaw.limit()), &mem), None);
        assert_eq!(
            tables.map(gpa(agaw.limit()), hpa(0), PageSize::Size4K, RW, &mut alloc, &mut mem),
            Err(TableError::AddressOutOfRange)
        );
    }
}

#[test]
fn leaf_entries_follow_the_spec_encoding() {
    let (mut alloc, mut mem) = (FakeFrames::default(), FakeMemory::default());
    let snooping = SlConfig {
        snoop: true,
        ..config(Agaw::Bits39)
    };
    let mut tables = SecondLevelTables::new(snooping, &mut alloc, &mut mem).unwrap();
    tables
        .map(
            gpa(PAGE_SIZE_1G),
            hpa(0x8_4000_0000),
            PageSize::Size1G,
            Access::READ,
            &mut alloc,
            &mut mem,
        )
        .unwrap();
    // A 1 GiB page sits in the top table of a 3-level walk, entry 1.
    let entry = mem.read_u64(hpa(tables.root().as_u64() + 8));
    assert_eq!(entry, 0x8_4000_0000 | READ | PAGE_SIZE_BIT | SNOOP);
    assert!(tables.translate(gpa(PAGE_SIZE_1G), &mem).unwrap().snoop);

    tables
        .map(gpa(0x5000), hpa(0x9000), PageSize::Size4K, RW, &mut alloc, &mut mem)
        .unwrap();
    let pdpte = mem.read_u64(hpa(tables.root().as_u64()));
    assert_eq!(pdpte & 0xfff, TABLE_POINTER);
    let pde = mem.read_u64(hpa(pdpte & ADDRESS_MASK));
    let pte = mem.read_u64(hpa((pde & ADDRESS_MASK) + 5 * 8));
    assert_eq!(pte, 0x9000 | READ | WRITE | SNOOP);
}

#[test]
fn write_only_mappings_are_allowed_but_no_access_is_not() {
    let (mut tables, mut alloc, mut mem) = setup(Agaw::Bits48);
    let write_only = Access {
        read: false,
        write: true,
    };
    tables
        .map(gpa(0), hpa(0), PageSize::Size4K, write_only, &mut alloc, &mut mem)
        .unwrap();
    assert_eq!(tables.translate(gpa(0), &mem).unwrap().access, write_only);
    assert_eq!(
        tables.map(
            gpa(0x1000),
            hpa(0),
            PageSize::Size4K,
            Access::default(),
            &mut alloc,
            &mut mem
        ),
        Err(TableError::NoAccess)
    );
}

#[test]
fn unsupported_superpages_are_refused() {
    let (mut alloc, mut mem) = (FakeFrames::default(), FakeMemory::default());
    let small_only = SlConfig {
        large_pages: LargePages::default(),
        ..config(Agaw::Bits48)
    };
    let mut tables = SecondLevelTables::new(small_only, &mut alloc, &mut mem).unwrap();
    for size in [PageSize::Size2M, PageSize::Size1G] {
        assert_eq!(
            tables.map(gpa(0), hpa(0), size, RW, &mut alloc, &mut mem),
            Err(TableError::PageSizeUnsupported)
        );
    }
    // map_range falls back to 4 KiB pages.
    tables
        .map_range(gpa(0), hpa(0), PAGE_SIZE_2M, RW, &mut alloc, &mut mem)
        .unwrap();
    assert_eq!(pages(&tables, &mem, 0, PAGE_SIZE_2M).len(), 512);
}

#[test]
fn misaligned_and_out_of_range_requests_are_rejected() {
    let (mut tables, mut alloc, mut mem) = setup(Agaw::Bits48);
    for (guest, host, size) in [
        (0x1800, 0x1000, PageSize::Size4K),
        (0x1000, 0x1800, PageSize::Size4K),
        (0x1000, 0x20_0000, PageSize::Size2M),
        (PAGE_SIZE_2M, PAGE_SIZE_1G, PageSize::Size1G),
    ] {
        assert_eq!(
            tables.map(gpa(guest), hpa(host), size, RW, &mut alloc, &mut mem),
            Err(TableError::Misaligned)
        );
    }
    assert_eq!(
        tables.map(
            gpa(0),
            hpa(HOST_ADDRESS_LIMIT),
            PageSize::Size4K,
            RW,
            &mut alloc,
            &mut mem
        ),
        Err(TableError::AddressOutOfRange)
    );
    assert_eq!(
        tables.map_range(gpa(0), hpa(u64::MAX - 0xfff), 0x2000, RW, &mut alloc, &mut mem),
        Err(TableError::AddressOutOfRange)
    );
    assert_eq!(
        tables.map_range(gpa(0), hpa(0), 0x1800, RW, &mut alloc, &mut mem),
        Err(TableError::Misaligned)
    );
    assert_eq!(alloc.outstanding(), 1);
}

#[test]
fn overlapping_mappings_are_refused() {
    let (mut tables, mut alloc, mut mem) = setup(Agaw::Bits48);
    tables
        .map(
            gpa(0x20_0000),
            hpa(0x20_0000),
            PageSize::Size2M,
            RW,
            &mut alloc,
            &mut mem,
        )
        .unwrap();
    tables
        .map(gpa(0x40_1000), hpa(0x1000), PageSize::Size4K, RW, &mut alloc, &mut mem)
        .unwrap();
    let before = alloc.outstanding();
    for (guest, size) in [
        (0x20_0000, PageSize::Size2M),
        (0x20_5000, PageSize::Size4K),
        (0, PageSize::Size1G),
        (0x40_1000, PageSize::Size4K),
        (0x40_0000, PageSize::Size2M),
    ] {
        assert_eq!(
            tables.map(gpa(guest), hpa(0), size, RW, &mut alloc, &mut mem),
            Err(TableError::AlreadyMapped),
            "{guest:#x} {size:?}"
        );
    }
    assert_eq!(alloc.outstanding(), before);
}

#[test]
fn map_range_picks_the_largest_pages() {
    let (mut tables, mut alloc, mut mem) = setup(Agaw::Bits48);
    let start = PAGE_SIZE_1G - PAGE_SIZE_2M - PAGE_SIZE_4K;
    let end = 2 * PAGE_SIZE_1G + PAGE_SIZE_2M + PAGE_SIZE_4K;
    let delta = 0x10_0000_0000;
    tables
        .map_range(gpa(start), hpa(start + delta), end - start, RW, &mut alloc, &mut mem)
        .unwrap();
    assert_eq!(
        pages(&tables, &mem, start, end - start),
        [
            (start, PageSize::Size4K),
            (PAGE_SIZE_1G - PAGE_SIZE_2M, PageSize::Size2M),
            (PAGE_SIZE_1G, PageSize::Size1G),
            (2 * PAGE_SIZE_1G, PageSize::Size2M),
            (2 * PAGE_SIZE_1G + PAGE_SIZE_2M, PageSize::Size4K),
        ]
    );
    for guest in [start, start + 0xabc, PAGE_SIZE_1G + 0x1234_5678, end - 1] {
        assert_eq!(tables.translate(gpa(guest), &mem).unwrap().hpa, hpa(guest + delta));
    }
    assert_eq!(tables.translate(gpa(start - 1), &mem), None);
    assert_eq!(tables.translate(gpa(end), &mem), None);
}

#[test]
fn map_range_honours_2m_only_units() {
    let (mut alloc, mut mem) = (FakeFrames::default(), FakeMemory::default());
    let two_meg = SlConfig {
        large_pages: LargePages {
            size_2m: true,
            size_1g: false,
        },
        ..config(Agaw::Bits39)
    };
    let mut tables = SecondLevelTables::new(two_meg, &mut alloc, &mut mem).unwrap();
    tables
        .map_range(gpa(0), hpa(0), PAGE_SIZE_1G, RW, &mut alloc, &mut mem)
        .unwrap();
    let found = pages(&tables, &mem, 0, PAGE_SIZE_1G);
    assert_eq!(found.len(), 512);
    assert!(found.iter().all(|&(_, size)| size == PageSize::Size2M));
}

#[test]
fn unmap_frees_emptied_tables() {
    let (mut tables, mut alloc, mut mem) = setup(Agaw::Bits48);
    tables
        .map(gpa(0x5000), hpa(0x9000), PageSize::Size4K, RW, &mut alloc, &mut mem)
        .unwrap();
    tables
        .map(gpa(0x6000), hpa(0xa000), PageSize::Size4K, RW, &mut alloc, &mut mem)
        .unwrap();
    assert_eq!(alloc.outstanding(), 4);
    assert_eq!(
        tables.unmap(gpa(0x5000), PageSize::Size4K, &mut alloc, &mut mem),
        Ok(hpa(0x9000))
    );
    assert_eq!(tables.translate(gpa(0x5000), &mem), None);
    assert_eq!(alloc.outstanding(), 4);
    assert_eq!(
        tables.unmap(gpa(0x6000), PageSize::Size4K, &mut alloc, &mut mem),
        Ok(hpa(0xa000))
    );
    assert_eq!(alloc.outstanding(), 1);
    tables
        .map(gpa(0), hpa(0), PageSize::Size1G, RW, &mut alloc, &mut mem)
        .unwrap();
}

#[test]
fn unmap_reports_missing_and_mismatched_pages() {
    let (mut tables, mut alloc, mut mem) = setup(Agaw::Bits48);
    tables
        .map(
            gpa(0x20_0000),
            hpa(0x20_0000),
            PageSize::Size2M,
            RW,
            &mut alloc,
            &mut mem,
        )
        .unwrap();
    tables
        .map(
            gpa(0x40_0000),
            hpa(0x40_0000),
            PageSize::Size4K,
            RW,
            &mut alloc,
            &mut mem,
        )
        .unwrap();
    for (guest, size, error) in [
        (0x60_0000, PageSize::Size2M, TableError::NotMapped),
        (0x40_1000, PageSize::Size4K, TableError::NotMapped),
        (0x20_1000, PageSize::Size4K, TableError::SizeMismatch),
        (0, PageSize::Size1G, TableError::SizeMismatch),
        (0x40_0000, PageSize::Size2M, TableError::SizeMismatch),
        (0x20_1000, PageSize::Size2M, TableError::Misaligned),
        (1 << 48, PageSize::Size4K, TableError::AddressOutOfRange),
    ] {
        assert_eq!(
            tables.unmap(gpa(guest), size, &mut alloc, &mut mem),
            Err(error),
            "{guest:#x} {size:?}"
        );
    }
}

#[test]
fn unmap_range_skips_holes_and_refuses_to_split_pages() {
    let (mut tables, mut alloc, mut mem) = setup(Agaw::Bits48);
    tables
        .map(
            gpa(0x20_0000),
            hpa(0x20_0000),
            PageSize::Size2M,
            RW,
            &mut alloc,
            &mut mem,
        )
        .unwrap();
    tables
        .map(gpa(0x7f_0000_0000), hpa(0), PageSize::Size4K, RW, &mut alloc, &mut mem)
        .unwrap();
    assert_eq!(
        tables.unmap_range(gpa(0x30_0000), PAGE_SIZE_2M, &mut alloc, &mut mem),
        Err(TableError::SizeMismatch)
    );
    assert!(tables.translate(gpa(0x20_0000), &mem).is_some());
    // Half a terabyte of holes is crossed in a few steps.
    tables
        .unmap_range(gpa(0), 0x80_0000_0000, &mut alloc, &mut mem)
        .unwrap();
    assert_eq!(tables.translate(gpa(0x20_0000), &mem), None);
    assert_eq!(tables.translate(gpa(0x7f_0000_0000), &mem), None);
    assert_eq!(alloc.outstanding(), 1);
}

#[test]
fn running_out_of_frames_changes_nothing() {
    let (mut tables, mut alloc, mut mem) = setup(Agaw::Bits57);
    alloc.limit_allocations(3);
    assert_eq!(
        tables.map(gpa(0x1000), hpa(0x1000), PageSize::Size4K, RW, &mut alloc, &mut mem),
        Err(TableError::OutOfFrames)
    );
    assert_eq!(alloc.outstanding(), 1);
    assert_eq!(tables.translate(gpa(0x1000), &mem), None);
    alloc.limit_allocations(usize::MAX);
    tables
        .map(gpa(0x1000), hpa(0x1000), PageSize::Size4K, RW, &mut alloc, &mut mem)
        .unwrap();
}

#[test]
fn a_failed_map_range_rolls_back() {
    let (mut tables, mut alloc, mut mem) = setup(Agaw::Bits48);
    // 0x1ff000 needs PDPT, PD and PT; the 2 MiB page after it needs nothing
    // new; a 4 KiB page in the next GiB needs a PD and a PT, one too many.
    alloc.limit_allocations(4);
    let start = PAGE_SIZE_2M - PAGE_SIZE_4K;
    let len = PAGE_SIZE_1G + PAGE_SIZE_4K - start;
    let no_1g = SlConfig {
        large_pages: LargePages {
            size_2m: true,
            size_1g: false,
        },
        ..tables.config()
    };
    tables.config = no_1g;
    assert_eq!(
        tables.map_range(gpa(start), hpa(start), len, RW, &mut alloc, &mut mem),
        Err(TableError::OutOfFrames)
    );
    assert_eq!(alloc.outstanding(), 1);
    assert_eq!(tables.translate(gpa(start), &mem), None);
    assert_eq!(tables.translate(gpa(PAGE_SIZE_2M), &mem), None);
}

#[test]
fn destroy_frees_every_table_but_no_mapped_page() {
    let (mut tables, mut alloc, mut mem) = setup(Agaw::Bits48);
    let data = alloc.allocate_frame().unwrap();
    tables
        .map(gpa(0x1000), data, PageSize::Size4K, RW, &mut alloc, &mut mem)
        .unwrap();
    tables
        .map_range(
            gpa(0x3fff_f000),
            hpa(0x3fff_f000),
            PAGE_SIZE_1G + 0x2000,
            RW,
            &mut alloc,
            &mut mem,
        )
        .unwrap();
    tables
        .map(gpa(0x7f_0000_0000), hpa(0), PageSize::Size1G, RW, &mut alloc, &mut mem)
        .unwrap();
    assert!(alloc.outstanding() > 5);
    tables.destroy(&mut alloc, &mem);
    assert_eq!(alloc.outstanding(), 1);
    alloc.free_frame(data);
}

#[test]
fn config_follows_the_unit() {
    let cap = Capabilities::from_raw(0b00100 << 8 | 1 << 34);
    let ecap = ExtendedCapabilities::from_raw(1 << 7);
    let config = SlConfig::for_unit(cap, ecap, 39).unwrap();
    assert_eq!(config.agaw, Agaw::Bits48);
    assert_eq!(
        config.large_pages,
        LargePages {
            size_2m: true,
            size_1g: false
        }
    );
    assert!(config.snoop);
    assert_eq!(SlConfig::for_unit(cap, ecap, 52), None);
}
