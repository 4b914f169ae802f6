use keel_memory::test_support::ArenaMemory;
use keel_memory::{GuestMemoryError, GuestMemoryMap, GuestMemoryRead, GuestPhysAddr, MemoryKind};

use super::*;
use crate::boot_params::{E820Type, ReservedRange, LEGACY_HOLE};
use crate::bzimage::header::{CMDLINE_SIZE, INIT_SIZE, PREF_ADDRESS, RELOCATABLE_KERNEL};
use crate::test_image::*;

const MIB: u64 = 1 << 20;
const RAM_BYTES: u64 = 64 * MIB;
const ZERO_PAGE_GPA: u64 = 0x7000;
const CMDLINE_GPA: u64 = 0x2_0000;
const ACPI: ReservedRange = ReservedRange {
    start: 62 * MIB,
    size: MIB,
    kind: E820Type::Acpi,
};
const RESERVED: [ReservedRange; 2] = [LEGACY_HOLE, ACPI];

fn layout() -> LinuxLayout<'static> {
    LinuxLayout {
        memory: GuestMemoryLayout {
            ram_bytes: RAM_BYTES,
            reserved: &RESERVED,
        },
        zero_page_gpa: ZERO_PAGE_GPA,
        cmdline_gpa: CMDLINE_GPA,
        long_mode: LongModeLayout {
            page_tables_gpa: 0x9000,
            gdt_gpa: 0x8000,
            identity_map_bytes: RAM_BYTES,
        },
        acpi_rsdp_gpa: Some(ACPI.start),
    }
}

fn ram() -> Vec<u8> {
    vec![0; RAM_BYTES as usize]
}

fn u32_at(ram: &[u8], gpa: u64) -> u32 {
    let start = gpa as usize;
    u32::from_le_bytes(ram[start..start + 4].try_into().unwrap())
}

fn u64_at(ram: &[u8], gpa: u64) -> u64 {
    let start = gpa as usize;
    u64::from_le_bytes(ram[start..start + 8].try_into().unwrap())
}

fn initrd_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|index| (index % 13) as u8 + 1).collect()
}

#[test]
fn good_image_loads_with_every_field_in_place() {
    let image = SyntheticImage::new();
    let initrd = initrd_bytes(0x5432);
    let cmdline = "console=ttyS0 root=/dev/ram0";
    let mut ram = ram();
    let entry = load_linux(&mut ram, &image.bytes, Some(&initrd), cmdline, &layout()).unwrap();

    // Kernel at its preferred 16 MiB, entered 0x200 in.
    assert_eq!(
        entry.kernel,
        GuestRegion::new(RegionKind::Kernel, 16 * MIB, 0x80_0000).unwrap()
    );
    assert_eq!(entry.rip, 16 * MIB + 0x200);
    assert_eq!(entry.rsi, ZERO_PAGE_GPA);
    let kernel_start = (16 * MIB) as usize;
    assert_eq!(
        &ram[kernel_start..kernel_start + KERNEL_LEN],
        &image.bytes[SETUP_BYTES..]
    );

    // Initrd as high as it goes: page aligned, at the top of RAM above ACPI.
    let initrd_region = entry.initrd.unwrap();
    assert_eq!(initrd_region.start, (RAM_BYTES - 0x5432) & !0xFFF);
    assert!(initrd_region.start >= ACPI.start + ACPI.size);
    assert_eq!(initrd_region.len(), 0x5432);
    let initrd_start = initrd_region.start as usize;
    assert_eq!(&ram[initrd_start..initrd_start + initrd.len()], &initrd[..]);

    // Command line, NUL-terminated.
    let cmdline_start = CMDLINE_GPA as usize;
    assert_eq!(&ram[cmdline_start..cmdline_start + cmdline.len()], cmdline.as_bytes());
    assert_eq!(ram[cmdline_start + cmdline.len()], 0);

    // Zero page fields.
    let zero_page = ZERO_PAGE_GPA;
    assert_eq!(u32_at(&ram, zero_page + 0x202), u32::from_le_bytes(*b"HdrS"));
    assert_eq!(ram[(zero_page + 0x210) as usize], 0xFF, "type_of_loader");
    assert_eq!(u32_at(&ram, zero_page + 0x228), CMDLINE_GPA as u32);
    assert_eq!(u32_at(&ram, zero_page + 0x218), initrd_region.start as u32);
    assert_eq!(u32_at(&ram, zero_page + 0x21C), 0x5432);
    assert_eq!(u64_at(&ram, zero_page + 0x070), ACPI.start);
    assert_eq!(ram[(zero_page + 0x1E8) as usize], 5, "e820_entries");
    let e820 = zero_page + 0x2D0;
    let expected = [
        (0, 0xA_0000, 1),
        (0xA_0000, 0x6_0000, 2),
        (MIB, ACPI.start - MIB, 1),
        (ACPI.start, MIB, 3),
        (ACPI.start + MIB, RAM_BYTES - ACPI.start - MIB, 1),
    ];
    for (index, (addr, size, kind)) in expected.into_iter().enumerate() {
        let entry_gpa = e820 + index as u64 * 20;
        assert_eq!(u64_at(&ram, entry_gpa), addr, "e820[{index}].addr");
        assert_eq!(u64_at(&ram, entry_gpa + 8), size, "e820[{index}].size");
        assert_eq!(u32_at(&ram, entry_gpa + 16), kind, "e820[{index}].type");
    }

    // Long mode: tables and GDT written where the layout asked.
    assert_eq!(entry.long_mode.cr3, 0x9000);
    assert_eq!(entry.long_mode.gdtr_base, 0x8000);
    assert_eq!(u64_at(&ram, 0x8010), 0x00AF_9B00_0000_FFFF);
    assert_eq!(u64_at(&ram, 0x9000), 0xA000 | 0b11);
}

#[test]
fn no_initrd_leaves_ramdisk_fields_empty() {
    let image = SyntheticImage::new();
    let mut ram = ram();
    for initrd in [None, Some(&[][..])] {
        let entry = load_linux(&mut ram, &image.bytes, initrd, "", &layout()).unwrap();
        assert_eq!(entry.initrd, None);
        assert_eq!(u32_at(&ram, ZERO_PAGE_GPA + 0x218), 0);
        assert_eq!(u32_at(&ram, ZERO_PAGE_GPA + 0x21C), 0);
        assert_eq!(ram[CMDLINE_GPA as usize], 0);
    }
}

#[test]
fn relocatable_kernel_is_aligned_up_from_pref_address() {
    let mut image = SyntheticImage::new();
    image.set_u64(PREF_ADDRESS, 17 * MIB + 0x1000);
    let mut ram = ram();
    let entry = load_linux(&mut ram, &image.bytes, None, "", &layout()).unwrap();
    assert_eq!(entry.kernel.start, 18 * MIB);
    assert_eq!(entry.rip, 18 * MIB + 0x200);
}

#[test]
fn non_relocatable_kernel_stays_at_pref_address() {
    let mut image = SyntheticImage::new();
    image
        .set_u8(RELOCATABLE_KERNEL, 0)
        .set_u64(PREF_ADDRESS, 17 * MIB + 0x1000);
    let mut ram = ram();
    let entry = load_linux(&mut ram, &image.bytes, None, "", &layout()).unwrap();
    assert_eq!(entry.kernel.start, 17 * MIB + 0x1000);
}

#[test]
fn missing_pref_address_defaults_to_16_mib() {
    let mut image = SyntheticImage::new();
    image.set_u64(PREF_ADDRESS, 0);
    let mut ram = ram();
    let entry = load_linux(&mut ram, &image.bytes, None, "", &layout()).unwrap();
    assert_eq!(entry.kernel.start, DEFAULT_KERNEL_LOAD_GPA);
}

#[test]
fn kernel_too_large_for_ram_is_rejected() {
    let mut image = SyntheticImage::new();
    image.set_u32(INIT_SIZE, 60 << 20);
    let mut ram = ram();
    let err = load_linux(&mut ram, &image.bytes, None, "", &layout()).unwrap_err();
    assert_eq!(
        err,
        LoadError::KernelDoesNotFit {
            need: 76 * MIB,
            have: RAM_BYTES
        }
    );
    assert_eq!(
        err.to_string(),
        "kernel needs guest RAM up to 0x4c00000 but only 0x4000000 bytes exist"
    );
}

#[test]
fn kernel_footprint_over_a_reserved_range_is_rejected() {
    let mut image = SyntheticImage::new();
    image.set_u32(INIT_SIZE, 47 << 20);
    let mut ram = ram();
    assert!(matches!(
        load_linux(&mut ram, &image.bytes, None, "", &layout()),
        Err(LoadError::Overlap { first, second })
            if first.kind == RegionKind::Kernel && second.kind == RegionKind::Reserved
    ));
}

#[test]
fn initrd_too_large_is_rejected_and_ram_is_untouched() {
    let image = SyntheticImage::new();
    let initrd = initrd_bytes((40 * MIB) as usize);
    let mut ram = ram();
    assert_eq!(
        load_linux(&mut ram, &image.bytes, Some(&initrd), "quiet", &layout()),
        Err(LoadError::InitrdDoesNotFit {
            size: 40 * MIB,
            limit: RAM_BYTES
        })
    );
    assert!(ram.iter().all(|&byte| byte == 0), "a failed load must not write");
}

#[test]
fn command_line_too_long_is_rejected() {
    let mut image = SyntheticImage::new();
    image.set_u32(CMDLINE_SIZE, 8);
    let mut ram = ram();
    assert_eq!(
        load_linux(&mut ram, &image.bytes, None, "console=ttyS0", &layout()),
        Err(LoadError::CommandLineTooLong { len: 13, max: 8 })
    );
    // Exactly cmdline_size bytes is fine: the limit excludes the NUL.
    assert!(load_linux(&mut ram, &image.bytes, None, "12345678", &layout()).is_ok());
}

#[test]
fn command_line_with_nul_is_rejected() {
    let image = SyntheticImage::new();
    let mut ram = ram();
    assert_eq!(
        load_linux(&mut ram, &image.bytes, None, "quiet\0init=/bin/sh", &layout()),
        Err(LoadError::CommandLineContainsNul)
    );
}

#[test]
fn malformed_image_is_reported_before_anything_is_written() {
    let mut image = SyntheticImage::new();
    image.set_u16(0x1FE, 0);
    let mut ram = ram();
    assert_eq!(
        load_linux(&mut ram, &image.bytes, None, "", &layout()),
        Err(LoadError::BadBootFlag { found: 0 })
    );
    assert!(ram.iter().all(|&byte| byte == 0));
}

#[test]
fn zero_page_inside_the_kernel_is_an_overlap() {
    let image = SyntheticImage::new();
    let mut ram = ram();
    let bad = LinuxLayout {
        zero_page_gpa: 16 * MIB + 0x1000,
        ..layout()
    };
    assert!(matches!(
        load_linux(&mut ram, &image.bytes, None, "", &bad),
        Err(LoadError::Overlap { first, second })
            if first.kind == RegionKind::Kernel && second.kind == RegionKind::ZeroPage
    ));
}

#[test]
fn command_line_running_into_the_page_tables_is_an_overlap() {
    let image = SyntheticImage::new();
    let mut ram = ram();
    let bad = LinuxLayout {
        cmdline_gpa: 0x8FFC,
        ..layout()
    };
    assert!(matches!(
        load_linux(&mut ram, &image.bytes, None, "console=ttyS0", &bad),
        Err(LoadError::Overlap { first, second })
            if first.kind == RegionKind::CommandLine && second.kind == RegionKind::PageTables
    ));
}

#[test]
fn zero_page_in_the_legacy_hole_is_an_overlap() {
    let image = SyntheticImage::new();
    let mut ram = ram();
    let bad = LinuxLayout {
        zero_page_gpa: 0xB_8000,
        ..layout()
    };
    assert!(matches!(
        load_linux(&mut ram, &image.bytes, None, "", &bad),
        Err(LoadError::Overlap { first, second })
            if first.kind == RegionKind::ZeroPage && second.kind == RegionKind::Reserved
    ));
}

#[test]
fn zero_page_past_ram_is_out_of_range() {
    let image = SyntheticImage::new();
    let mut ram = ram();
    let bad = LinuxLayout {
        zero_page_gpa: RAM_BYTES - 0x800,
        ..layout()
    };
    assert!(matches!(
        load_linux(&mut ram, &image.bytes, None, "", &bad),
        Err(LoadError::OutOfRange { region, ram_bytes: RAM_BYTES })
            if region.kind == RegionKind::ZeroPage
    ));
}

#[test]
fn layout_larger_than_the_buffer_is_rejected() {
    let image = SyntheticImage::new();
    let mut ram = vec![0u8; (32 * MIB) as usize];
    assert_eq!(
        load_linux(&mut ram, &image.bytes, None, "", &layout()),
        Err(LoadError::NotBacked {
            region: GuestRegion::new(RegionKind::UsableRam, MIB, ACPI.start - MIB).unwrap(),
            error: GuestMemoryError::Unmapped {
                gpa: GuestPhysAddr::new(32 * MIB)
            }
        })
    );
    assert!(ram.iter().all(|&byte| byte == 0));
}

/// Guest RAM [0, 64 MiB) as three host blocks split at `splits`, each
/// below the previous one in host memory.
fn ram_in_blocks(splits: &[u64]) -> GuestMemoryMap<ArenaMemory> {
    let mut memory = GuestMemoryMap::new(ArenaMemory::new());
    let mut start = 0;
    for &end in splits.iter().chain([RAM_BYTES].iter()) {
        memory.add_arena_ram(GuestPhysAddr::new(start), end - start).unwrap();
        start = end;
    }
    memory
}

fn read_back(memory: &impl GuestMemoryRead, gpa: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    memory.read(GuestPhysAddr::new(gpa), &mut bytes).unwrap();
    bytes
}

#[test]
fn image_and_initrd_are_written_across_ram_regions() {
    let image = SyntheticImage::new();
    let initrd = initrd_bytes(0x5432);
    // The kernel [16 MiB, 24 MiB) straddles 20 MiB; the initrd (at the top,
    // 0x3FFA000..0x3FFF432) straddles 0x3FFC000.
    let mut memory = ram_in_blocks(&[20 * MIB, RAM_BYTES - 0x4000]);
    let entry = load_linux(&mut memory, &image.bytes, Some(&initrd), "console=ttyS0", &layout()).unwrap();

    let mut flat = ram();
    let flat_entry = load_linux(&mut flat, &image.bytes, Some(&initrd), "console=ttyS0", &layout()).unwrap();
    assert_eq!(entry, flat_entry, "the same placements whatever backs RAM");

    assert_eq!(entry.kernel.start, 16 * MIB);
    assert_eq!(read_back(&memory, 16 * MIB, KERNEL_LEN), &image.bytes[SETUP_BYTES..]);
    let initrd_region = entry.initrd.unwrap();
    assert!(initrd_region.start < RAM_BYTES - 0x4000 && initrd_region.end > RAM_BYTES - 0x4000);
    assert_eq!(read_back(&memory, initrd_region.start, initrd.len()), initrd);
    // Byte for byte what the flat buffer holds.
    for (start, len) in [
        (0, 0x3_0000),
        (16 * MIB, KERNEL_LEN),
        (initrd_region.start, initrd.len()),
    ] {
        assert_eq!(
            read_back(&memory, start, len),
            &flat[start as usize..start as usize + len],
            "{start:#x}"
        );
    }
}

#[test]
fn a_hole_in_usable_ram_fails_cleanly_before_anything_is_written() {
    let image = SyntheticImage::new();
    let initrd = initrd_bytes(0x5432);
    // RAM [0, 20 MiB) and [21 MiB, 64 MiB) with a hole the layout does not
    // know about: the kernel would be written into it.
    let mut memory = GuestMemoryMap::new(ArenaMemory::new());
    memory.add_arena_ram(GuestPhysAddr::new(0), 20 * MIB).unwrap();
    memory.add_reserved(GuestPhysAddr::new(20 * MIB), MIB).unwrap();
    memory
        .add_arena_ram(GuestPhysAddr::new(21 * MIB), RAM_BYTES - 21 * MIB)
        .unwrap();
    let err = load_linux(&mut memory, &image.bytes, Some(&initrd), "quiet", &layout()).unwrap_err();
    assert_eq!(
        err,
        LoadError::NotBacked {
            region: GuestRegion::new(RegionKind::UsableRam, MIB, ACPI.start - MIB).unwrap(),
            error: GuestMemoryError::NotRam {
                gpa: GuestPhysAddr::new(20 * MIB),
                kind: MemoryKind::Reserved
            }
        }
    );
    assert_eq!(
        err.to_string(),
        "usable RAM [0x100000, 0x3e00000) is not backed by guest RAM: guest-physical 0x1400000 is reserved, not RAM"
    );
    for (start, len) in [(0, 20 * MIB), (21 * MIB, RAM_BYTES - 21 * MIB)] {
        assert!(
            read_back(&memory, start, len as usize).iter().all(|&byte| byte == 0),
            "a failed load must not write"
        );
    }
}

#[test]
fn ram_ending_early_fails_cleanly() {
    let image = SyntheticImage::new();
    // Device memory where the layout expects the top of RAM.
    let mut memory = GuestMemoryMap::new(ArenaMemory::new());
    memory.add_arena_ram(GuestPhysAddr::new(0), 48 * MIB).unwrap();
    memory.add_mmio(GuestPhysAddr::new(48 * MIB), 16 * MIB).unwrap();
    assert!(matches!(
        load_linux(&mut memory, &image.bytes, None, "", &layout()),
        Err(LoadError::NotBacked {
            error: GuestMemoryError::NotRam {
                kind: MemoryKind::Mmio,
                ..
            },
            ..
        })
    ));
    // Told the truth, the same memory loads.
    let reserved = [LEGACY_HOLE];
    let smaller = LinuxLayout {
        memory: GuestMemoryLayout {
            ram_bytes: 48 * MIB,
            reserved: &reserved,
        },
        acpi_rsdp_gpa: None,
        ..layout()
    };
    assert!(load_linux(&mut memory, &image.bytes, None, "", &smaller).is_ok());
}

#[test]
fn initrd_too_big_for_the_top_gap_goes_below_the_acpi_region() {
    let image = SyntheticImage::new();
    let initrd = initrd_bytes((2 * MIB) as usize);
    let mut ram = ram();
    let entry = load_linux(&mut ram, &image.bytes, Some(&initrd), "", &layout()).unwrap();
    assert_eq!(
        entry.initrd,
        Some(GuestRegion::new(RegionKind::Initrd, ACPI.start - 2 * MIB, 2 * MIB).unwrap())
    );
}

/// Found by the `bzimage` fuzz target: the long-mode layout's alignment and
/// identity-map size used to be checked only by `setup_long_mode`, after the
/// kernel, initrd, command line and zero page were written.
#[test]
fn a_bad_long_mode_layout_is_refused_before_anything_is_written() {
    let image = SyntheticImage::new();
    let initrd = initrd_bytes(0x1000);
    let mut misaligned = layout();
    misaligned.long_mode.page_tables_gpa = 0x9010;
    let mut gdt_misaligned = layout();
    gdt_misaligned.long_mode.gdt_gpa = 0x8004;
    let mut too_large = layout();
    too_large.long_mode.identity_map_bytes = crate::long_mode::MAX_IDENTITY_MAP_BYTES + 1;
    // Its tables (sized as the maximum, 2 MiB) clear of the legacy hole.
    too_large.long_mode.page_tables_gpa = 0x30_0000;
    for bad in [misaligned, gdt_misaligned, too_large] {
        let mut ram = ram();
        let error = load_linux(&mut ram, &image.bytes, Some(&initrd), "quiet", &bad).unwrap_err();
        assert!(
            matches!(
                error,
                LoadError::Misaligned { .. } | LoadError::IdentityMapTooLarge { .. }
            ),
            "{error}"
        );
        assert!(ram.iter().all(|&byte| byte == 0), "a failed load must not write");
    }
}
