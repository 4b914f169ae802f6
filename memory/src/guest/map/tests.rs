use super::*;
use crate::guest::GuestMemoryExt;
use crate::test_support::ArenaMemory;

const KIB4: u64 = PAGE_SIZE_4K;

fn gpa(raw: u64) -> GuestPhysAddr {
    GuestPhysAddr::new(raw)
}

/// RAM [0, 0x3000) and [0x3000, 0x5000) in two host blocks (the second below
/// the first in host memory), a hole [0x5000, 0x6000), RAM [0x6000, 0x7000),
/// then an MMIO page at 0x8000 with nothing at 0x7000.
fn layered() -> GuestMemoryMap<ArenaMemory> {
    let mut map = GuestMemoryMap::new(ArenaMemory::new());
    map.add_arena_ram(gpa(0), 3 * KIB4).unwrap();
    map.add_arena_ram(gpa(0x3000), 2 * KIB4).unwrap();
    map.add_reserved(gpa(0x5000), KIB4).unwrap();
    map.add_arena_ram(gpa(0x6000), KIB4).unwrap();
    map.add_mmio(gpa(0x8000), KIB4).unwrap();
    map
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|index| (index % 251) as u8 + 1).collect()
}

#[test]
fn regions_are_kept_sorted_whatever_the_insertion_order() {
    let mut map = GuestMemoryMap::new(ArenaMemory::new());
    map.add_mmio(gpa(0xFEC0_0000), KIB4).unwrap();
    map.add_arena_ram(gpa(0x10_0000), 0x10_0000).unwrap();
    map.add_arena_ram(gpa(0), 0x10_0000).unwrap();
    let starts: Vec<u64> = map.regions().iter().map(|region| region.start().as_u64()).collect();
    assert_eq!(starts, [0, 0x10_0000, 0xFEC0_0000]);
    assert_eq!(map.ram_bytes(), 0x20_0000);
    assert_eq!(
        map.region_at(gpa(0x10_0000)).map(MemoryRegion::kind),
        Some(MemoryKind::Ram)
    );
    assert_eq!(
        map.region_at(gpa(0xFEC0_0FFF)).map(MemoryRegion::kind),
        Some(MemoryKind::Mmio)
    );
    assert_eq!(map.region_at(gpa(0xFEC0_1000)), None);
    assert_eq!(map.region_at(gpa(0x20_0000)), None);
}

#[test]
fn overlapping_regions_are_refused() {
    let mut map = layered();
    let before = map.regions().to_vec();
    for (start, len) in [(0x2000, KIB4), (0x4000, 0x2000), (0, 0x10_0000), (0x7000, 0x2000)] {
        let result = map.add_mmio(gpa(start), len);
        assert!(
            matches!(result, Err(MapError::Overlap { .. })),
            "{start:#x}+{len:#x}: {result:?}"
        );
    }
    assert_eq!(map.regions(), &before[..]);
    // Touching is fine.
    map.add_reserved(gpa(0x7000), KIB4).unwrap();
    map.add_mmio(gpa(0x9000), KIB4).unwrap();
}

#[test]
fn bad_regions_are_refused() {
    let mut map = GuestMemoryMap::new(ArenaMemory::new());
    assert_eq!(map.add_mmio(gpa(0x1000), 0), Err(MapError::Empty { gpa: gpa(0x1000) }));
    assert_eq!(
        map.add_mmio(gpa(0x1800), KIB4),
        Err(MapError::Misaligned {
            gpa: gpa(0x1800),
            len: KIB4
        })
    );
    assert_eq!(
        map.add_reserved(gpa(0x1000), 0x800),
        Err(MapError::Misaligned {
            gpa: gpa(0x1000),
            len: 0x800
        })
    );
    assert_eq!(
        map.add_shared(gpa(0x1000), HostPhysAddr::new(0x123), KIB4),
        Err(MapError::Misaligned {
            gpa: gpa(0x1000),
            len: KIB4
        })
    );
    assert_eq!(
        map.add_mmio(gpa(u64::MAX - 0xFFF), 2 * KIB4),
        Err(MapError::Overflow {
            gpa: gpa(u64::MAX - 0xFFF),
            len: 2 * KIB4
        })
    );
    assert_eq!(
        map.add_shared(gpa(0), HostPhysAddr::new(u64::MAX - 0xFFF), 2 * KIB4),
        Err(MapError::Overflow {
            gpa: gpa(0),
            len: 2 * KIB4
        })
    );
    assert!(map.regions().is_empty());
}

#[test]
fn writes_and_reads_span_ram_regions_in_different_host_blocks() {
    let mut map = layered();
    let first_host = map.regions()[0].host().unwrap();
    let second_host = map.regions()[1].host().unwrap();
    assert_ne!(
        first_host.as_u64() + 3 * KIB4,
        second_host.as_u64(),
        "not host-contiguous"
    );

    // 0x2F00..0x4100: the end of block one, the start of block two, across
    // host frames on both sides.
    let bytes = pattern(0x1200);
    map.write(gpa(0x2F00), &bytes).unwrap();
    let mut back = vec![0; bytes.len()];
    map.read(gpa(0x2F00), &mut back).unwrap();
    assert_eq!(back, bytes);
    assert_eq!(map.read_u8(gpa(0x2FFF)), Ok(bytes[0xFF]));
    assert_eq!(map.read_u8(gpa(0x3000)), Ok(bytes[0x100]));

    // A u64 straddling the region boundary.
    map.write_u64(gpa(0x2FFC), 0x1122_3344_5566_7788).unwrap();
    assert_eq!(map.read_u64(gpa(0x2FFC)), Ok(0x1122_3344_5566_7788));
    assert_eq!(map.read_u32(gpa(0x3000)), Ok(0x1122_3344));
    assert_eq!(map.read_obj::<u16>(gpa(0x2FFE)), Ok(0x5566));
}

#[test]
fn fill_and_zero_cover_every_piece() {
    let mut map = layered();
    map.fill(gpa(0x0800), 0x4800, 0xA5).unwrap();
    let mut all = vec![0; 0x5000];
    map.read(gpa(0), &mut all).unwrap();
    assert!(all[..0x800].iter().all(|&byte| byte == 0));
    assert!(all[0x800..].iter().all(|&byte| byte == 0xA5));
    map.zero(gpa(0x2000), 0x2000).unwrap();
    map.read(gpa(0), &mut all).unwrap();
    assert!(all[0x2000..0x4000].iter().all(|&byte| byte == 0));
    assert!(all[0x4000..].iter().all(|&byte| byte == 0xA5));
}

#[test]
fn access_into_a_hole_fails_cleanly_and_changes_nothing() {
    let mut map = layered();
    map.fill(gpa(0), 0x5000, 0x11).unwrap();
    // Ends in the reserved page.
    assert_eq!(
        map.write(gpa(0x4F00), &pattern(0x200)),
        Err(GuestMemoryError::NotRam {
            gpa: gpa(0x5000),
            kind: MemoryKind::Reserved
        })
    );
    assert_eq!(map.read_u8(gpa(0x4F00)), Ok(0x11), "nothing of the failed write landed");
    // Runs past the last RAM page into nothing.
    assert_eq!(
        map.fill(gpa(0x6800), 0x1000, 0xFF),
        Err(GuestMemoryError::Unmapped { gpa: gpa(0x7000) })
    );
    assert_eq!(map.read_u8(gpa(0x6800)), Ok(0));
    // Device memory is not memory.
    assert_eq!(
        map.read_u32(gpa(0x8000)),
        Err(GuestMemoryError::NotRam {
            gpa: gpa(0x8000),
            kind: MemoryKind::Mmio
        })
    );
    assert_eq!(
        map.check_ram(gpa(0x9000), 1),
        Err(GuestMemoryError::Unmapped { gpa: gpa(0x9000) })
    );
    let mut buf = [0x77; 16];
    assert!(map.read(gpa(0x4FF8), &mut buf).is_err());
    assert_eq!(buf, [0x77; 16], "a failed read leaves the buffer alone");
    assert_eq!(
        map.check_ram(gpa(u64::MAX), 2),
        Err(GuestMemoryError::Overflow {
            gpa: gpa(u64::MAX),
            len: 2
        })
    );
    assert_eq!(map.check_ram(gpa(0), 0x5000), Ok(()));
    assert_eq!(map.check_ram(gpa(0x4000), 0), Ok(()));
}

#[test]
fn shared_memory_is_recorded_but_not_guest_ram() {
    let mut map = layered();
    map.add_shared(gpa(0x10_0000), HostPhysAddr::new(0x4000_0000), 0x20_0000)
        .unwrap();
    assert_eq!(
        map.read_u8(gpa(0x10_0000)),
        Err(GuestMemoryError::NotRam {
            gpa: gpa(0x10_0000),
            kind: MemoryKind::Shared
        })
    );
    assert_eq!(map.ram_bytes(), 6 * KIB4);
    // Removing needs the right start and kind.
    assert_eq!(map.remove(gpa(0x10_0000), MemoryKind::Ram), None);
    assert_eq!(map.remove(gpa(0x10_1000), MemoryKind::Shared), None);
    let removed = map.remove(gpa(0x10_0000), MemoryKind::Shared).unwrap();
    assert_eq!(removed.host(), Some(HostPhysAddr::new(0x4000_0000)));
    assert_eq!(removed.len(), 0x20_0000);
    assert_eq!(map.region_at(gpa(0x10_0000)), None);
    assert_eq!(
        map.read_u8(gpa(0x10_0000)),
        Err(GuestMemoryError::Unmapped { gpa: gpa(0x10_0000) })
    );
}

#[test]
fn errors_read_well() {
    let not_ram = GuestMemoryError::NotRam {
        gpa: gpa(0xFEC0_0000),
        kind: MemoryKind::Mmio,
    };
    assert_eq!(
        not_ram.to_string(),
        "guest-physical 0xfec00000 is emulated MMIO, not RAM"
    );
    assert_eq!(not_ram.gpa(), gpa(0xFEC0_0000));
    assert_eq!(
        GuestMemoryError::Unmapped { gpa: gpa(0x1000) }.to_string(),
        "guest-physical 0x1000 is not mapped"
    );
    let map = layered();
    let overlap = MapError::Overlap {
        new: MemoryRegion {
            start: gpa(0x4000),
            len: 0x2000,
            kind: MemoryKind::Mmio,
            host: None,
        },
        existing: map.regions()[1],
    };
    assert_eq!(
        overlap.to_string(),
        "emulated MMIO [0x4000, 0x6000) overlaps RAM [0x3000, 0x5000)"
    );
}
