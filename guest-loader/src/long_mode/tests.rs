use keel_memory::test_support::ArenaMemory;
use keel_memory::{GuestMemoryError, GuestMemoryMap, GuestMemoryRead, GuestPhysAddr, MemoryKind};

use super::paging::{HUGE_PAGE, PRESENT, WRITABLE};
use super::*;

const ONE_GIB: u64 = 1 << 30;
const TWO_MIB: u64 = 2 << 20;

fn read_u64(ram: &[u8], gpa: u64) -> u64 {
    let start = gpa as usize;
    u64::from_le_bytes(ram[start..start + 8].try_into().unwrap())
}

/// Translates a virtual address by walking the tables the way the MMU does,
/// returning `None` where a level is not present.
fn translate(ram: &[u8], cr3: u64, virtual_address: u64) -> Option<u64> {
    const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;
    let index = |shift: u32| (virtual_address >> shift) & 0x1FF;
    let pml4e = read_u64(ram, (cr3 & ADDRESS_MASK) + index(39) * 8);
    if pml4e & PRESENT == 0 {
        return None;
    }
    let pdpte = read_u64(ram, (pml4e & ADDRESS_MASK) + index(30) * 8);
    if pdpte & PRESENT == 0 {
        return None;
    }
    assert_eq!(pdpte & HUGE_PAGE, 0, "the PDPT must point at directories");
    let pde = read_u64(ram, (pdpte & ADDRESS_MASK) + index(21) * 8);
    if pde & PRESENT == 0 {
        return None;
    }
    assert_ne!(pde & HUGE_PAGE, 0, "directory entries must map 2 MiB pages");
    assert_ne!(pde & WRITABLE, 0);
    Some((pde & 0x000F_FFFF_FFE0_0000) | (virtual_address & (TWO_MIB - 1)))
}

fn layout(identity_map_bytes: u64) -> LongModeLayout {
    LongModeLayout {
        page_tables_gpa: 0x9000,
        gdt_gpa: 0x500,
        identity_map_bytes,
    }
}

#[test]
fn identity_map_covers_whole_gib_and_nothing_more() {
    // Guest RAM full of garbage: the loader must not leave stray entries.
    let mut ram = vec![0xA5u8; 0x100000];
    let state = setup_long_mode(&mut ram, &layout(3 * ONE_GIB - 1)).unwrap();
    assert_eq!(state.cr3, 0x9000);

    for address in [
        0,
        0x1234,
        TWO_MIB + 5,
        ONE_GIB,
        2 * ONE_GIB + 0x1F_FFFF,
        3 * ONE_GIB - 1,
    ] {
        assert_eq!(translate(&ram, state.cr3, address), Some(address), "{address:#x}");
    }
    assert_eq!(translate(&ram, state.cr3, 3 * ONE_GIB), None);
    assert_eq!(translate(&ram, state.cr3, 512 * ONE_GIB), None);
}

#[test]
fn table_entries_have_the_expected_layout() {
    let mut ram = vec![0u8; 0x100000];
    setup_long_mode(&mut ram, &layout(ONE_GIB)).unwrap();
    assert_eq!(read_u64(&ram, 0x9000), 0xA000 | PRESENT | WRITABLE);
    assert_eq!(read_u64(&ram, 0x9008), 0);
    assert_eq!(read_u64(&ram, 0xA000), 0xB000 | PRESENT | WRITABLE);
    assert_eq!(read_u64(&ram, 0xA008), 0);
    assert_eq!(read_u64(&ram, 0xB000), PRESENT | WRITABLE | HUGE_PAGE);
    assert_eq!(
        read_u64(&ram, 0xB000 + 511 * 8),
        (ONE_GIB - TWO_MIB) | PRESENT | WRITABLE | HUGE_PAGE
    );
    // Nothing written past the single page directory.
    assert!(ram[0xC000..].iter().all(|&byte| byte == 0));
}

#[test]
fn largest_map_reaches_512_gib() {
    let mut ram = vec![0u8; 0x300000];
    let state = setup_long_mode(&mut ram, &layout(MAX_IDENTITY_MAP_BYTES)).unwrap();
    let top = MAX_IDENTITY_MAP_BYTES - 1;
    assert_eq!(translate(&ram, state.cr3, top), Some(top));
}

#[test]
fn gdt_and_control_registers_follow_the_linux_64_bit_protocol() {
    let mut ram = vec![0u8; 0x100000];
    let state = setup_long_mode(&mut ram, &layout(ONE_GIB)).unwrap();
    assert_eq!(
        state,
        LongModeState {
            cr0: 0x8000_0031,
            cr3: 0x9000,
            cr4: 0x20,
            efer: 0x500,
            gdtr_base: 0x500,
            gdtr_limit: 31,
            code_selector: 0x10,
            data_selector: 0x18,
        }
    );
    assert_eq!(read_u64(&ram, 0x500), 0);
    assert_eq!(read_u64(&ram, 0x508), 0);
    assert_eq!(read_u64(&ram, 0x510), 0x00AF_9B00_0000_FFFF);
    assert_eq!(read_u64(&ram, 0x518), 0x00CF_9300_0000_FFFF);
}

#[test]
fn access_rights_constants_have_the_vmx_encoding() {
    assert_eq!(CODE64_ACCESS_RIGHTS, 0xA09B);
    assert_eq!(DATA_ACCESS_RIGHTS, 0xC093);
    assert_eq!(TSS_ACCESS_RIGHTS, 0x8B);
}

#[test]
fn misaligned_page_tables_are_rejected() {
    let mut ram = vec![0u8; 0x100000];
    let bad = LongModeLayout {
        page_tables_gpa: 0x9008,
        ..layout(ONE_GIB)
    };
    assert_eq!(
        setup_long_mode(&mut ram, &bad),
        Err(LoadError::Misaligned {
            kind: RegionKind::PageTables,
            address: 0x9008,
            alignment: 0x1000
        })
    );
}

#[test]
fn misaligned_gdt_is_rejected() {
    let mut ram = vec![0u8; 0x100000];
    let bad = LongModeLayout {
        gdt_gpa: 0x504,
        ..layout(ONE_GIB)
    };
    assert!(matches!(
        setup_long_mode(&mut ram, &bad),
        Err(LoadError::Misaligned {
            kind: RegionKind::Gdt,
            ..
        })
    ));
}

#[test]
fn structures_past_the_end_of_ram_are_rejected() {
    let mut ram = vec![0u8; 0xB000];
    // Three table pages from 0x9000 end at 0xC000, past the 0xB000 buffer.
    assert!(matches!(
        setup_long_mode(&mut ram, &layout(ONE_GIB)),
        Err(LoadError::NotBacked { region, error: GuestMemoryError::Unmapped { gpa } })
            if region.kind == RegionKind::PageTables && region.end == 0xC000 && gpa.as_u64() == 0xB000
    ));
    let gdt_outside = LongModeLayout {
        page_tables_gpa: 0x1000,
        gdt_gpa: 0xAFF0,
        identity_map_bytes: ONE_GIB,
    };
    assert!(matches!(
        setup_long_mode(&mut ram, &gdt_outside),
        Err(LoadError::NotBacked { region, .. }) if region.kind == RegionKind::Gdt
    ));
    assert!(ram.iter().all(|&byte| byte == 0), "nothing written");
}

#[test]
fn tables_may_straddle_ram_regions_but_not_reach_into_a_hole() {
    let mut memory = GuestMemoryMap::new(ArenaMemory::new());
    memory.add_arena_ram(GuestPhysAddr::new(0), 0xA000).unwrap();
    memory.add_arena_ram(GuestPhysAddr::new(0xA000), 0x6000).unwrap();
    memory.add_reserved(GuestPhysAddr::new(0x10000), 0x1000).unwrap();
    // PML4 at 0x9000 in the first region, PDPT and directory in the second.
    let state = setup_long_mode(&mut memory, &layout(ONE_GIB)).unwrap();
    let mut ram = vec![0u8; 0x10000];
    memory.read(GuestPhysAddr::new(0), &mut ram).unwrap();
    assert_eq!(translate(&ram, state.cr3, ONE_GIB - 1), Some(ONE_GIB - 1));
    assert_eq!(read_u64(&ram, 0x508), 0);
    assert_eq!(read_u64(&ram, 0x510), 0x00AF_9B00_0000_FFFF);

    // Two directories: the tables would end at 0x11000, in the hole.
    let mut fresh = GuestMemoryMap::new(ArenaMemory::new());
    fresh.add_arena_ram(GuestPhysAddr::new(0), 0x10000).unwrap();
    fresh.add_reserved(GuestPhysAddr::new(0x10000), 0x1000).unwrap();
    let too_far = LongModeLayout {
        page_tables_gpa: 0xD000,
        ..layout(2 * ONE_GIB)
    };
    assert_eq!(
        setup_long_mode(&mut fresh, &too_far),
        Err(LoadError::NotBacked {
            region: too_far.page_tables_region().unwrap(),
            error: GuestMemoryError::NotRam {
                gpa: GuestPhysAddr::new(0x10000),
                kind: MemoryKind::Reserved
            }
        })
    );
    let mut untouched = vec![0xFFu8; 0x10000];
    fresh.read(GuestPhysAddr::new(0), &mut untouched).unwrap();
    assert!(untouched.iter().all(|&byte| byte == 0), "nothing written");
}

#[test]
fn gdt_inside_the_page_tables_is_rejected() {
    let mut ram = vec![0u8; 0x100000];
    let bad = LongModeLayout {
        gdt_gpa: 0xA000,
        ..layout(ONE_GIB)
    };
    assert!(matches!(
        setup_long_mode(&mut ram, &bad),
        Err(LoadError::Overlap { first, second })
            if first.kind == RegionKind::PageTables && second.kind == RegionKind::Gdt
    ));
}

#[test]
fn addresses_near_the_top_of_the_address_space_do_not_wrap() {
    let mut ram = vec![0u8; 0x100000];
    let bad = LongModeLayout {
        page_tables_gpa: !0xFFF,
        ..layout(ONE_GIB)
    };
    assert!(matches!(
        setup_long_mode(&mut ram, &bad),
        Err(LoadError::AddressOverflow { .. })
    ));
}
