//! bzImage parsing and loading into a guest memory layout.
//!
//! The loader (`keel_guest_loader::load_linux`, which parses the image with
//! `BzImage::parse`) on any image, memory layout, initrd size and command
//! line (input format: `keel_fuzz::bzimage`). Guest RAM is
//! sparse, so layouts of gigabytes cost nothing.
//!
//! Beyond "no panic": a refused load wrote nothing; an accepted one put
//! every structure inside backed RAM, clear of each other and of the
//! reserved ranges, wrote the kernel, initrd and command line where it says,
//! and its page tables translate the entry point to itself.
#![no_main]

use keel_fuzz::bzimage::Case;
use keel_fuzz::SparseMemory;
use keel_guest_loader::bzimage::BzImage;
use keel_guest_loader::{load_linux, GuestRegion, LinuxEntry, RegionKind};
use keel_insn::walk::{AccessKind, PagingState};
use keel_memory::{GuestMemoryRead, GuestPhysAddr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let case = Case::parse(data);
    // The parser alone, on the bytes as given.
    if let Ok(image) = BzImage::parse(case.image) {
        check_image(&image, case.image);
    }

    let mut memory = SparseMemory::new(case.ram_ranges());
    let initrd = case.initrd();
    let layout = case.layout();
    match load_linux(
        &mut memory,
        case.image,
        Some(initrd).filter(|initrd| !initrd.is_empty()),
        &case.cmdline,
        &layout,
    ) {
        Ok(entry) => check_loaded(&case, &memory, initrd, &entry),
        Err(error) => {
            assert_eq!(memory.writes(), 0, "a refused load wrote to guest memory: {error}");
            // Display must not panic either.
            let _ = error.to_string();
        }
    }
});

fn check_image(image: &BzImage<'_>, bytes: &[u8]) {
    assert!(image.kernel_alignment.is_power_of_two());
    assert!(image.setup_sects != 0);
    let kernel = image.protected_mode_kernel();
    assert!(!kernel.is_empty());
    assert_eq!(kernel.len() as u64 + image.setup_bytes(), bytes.len() as u64);
    assert!(kernel.len() as u64 >= u64::from(image.syssize) * 16);
    let header = image.setup_header_bytes().expect("a parsed image has its whole header");
    assert!(
        (0x264..=0x290).contains(&(0x1F1 + header.len())),
        "header ends at {:#x}",
        0x1F1 + header.len()
    );
    assert!(u64::from(image.payload_offset) + u64::from(image.payload_length) <= kernel.len() as u64);
}

fn check_loaded(case: &Case<'_>, memory: &SparseMemory, initrd: &[u8], entry: &LinuxEntry) {
    let image = BzImage::parse(case.image).expect("load_linux accepted the image");
    let kernel = entry.kernel;
    assert_eq!(entry.rip, kernel.start + 0x200);
    assert_eq!(entry.rsi, case.zero_page_gpa);
    let region = |kind, start, len| GuestRegion::new(kind, start, len).expect("a loaded region");
    let cmdline = region(RegionKind::CommandLine, case.cmdline_gpa, case.cmdline.len() as u64 + 1);
    let zero_page = region(RegionKind::ZeroPage, case.zero_page_gpa, 4096);
    let tables = case.layout().long_mode.page_tables_region().expect("valid tables");
    let gdt = case.layout().long_mode.gdt_region().expect("valid GDT");
    let mut placed = vec![kernel, cmdline, zero_page, tables, gdt];
    match entry.initrd {
        Some(initrd_region) => {
            assert_eq!(initrd_region.len(), initrd.len() as u64);
            assert!(initrd_region.start >= 1 << 20, "initrd below 1 MiB");
            assert_eq!(initrd_region.start % 4096, 0);
            placed.push(initrd_region);
        }
        None => assert!(initrd.is_empty(), "the initrd was dropped"),
    }
    for (index, first) in placed.iter().enumerate() {
        assert!(first.end <= case.ram_bytes, "{first:?} is past RAM");
        memory
            .check_ram(GuestPhysAddr::new(first.start), first.len())
            .unwrap_or_else(|error| panic!("{first:?} is not backed: {error}"));
        for second in &placed[index + 1..] {
            assert!(!first.overlaps(second), "{first:?} overlaps {second:?}");
        }
        for reserved in &case.reserved {
            let reserved = reserved.region().expect("the layout was validated");
            assert!(!first.overlaps(&reserved), "{first:?} overlaps reserved {reserved:?}");
        }
    }
    if !image.can_be_loaded_above_4g() {
        for structure in [kernel, cmdline, zero_page] {
            assert!(structure.end <= 1 << 32, "{structure:?} above 4 GiB");
        }
    }

    let read = |gpa: u64, len: usize| {
        let mut bytes = vec![0; len];
        memory
            .read(GuestPhysAddr::new(gpa), &mut bytes)
            .expect("loaded memory reads back");
        bytes
    };
    let pm_kernel = image.protected_mode_kernel();
    assert_eq!(read(kernel.start, pm_kernel.len()), pm_kernel);
    let mut expected_cmdline = case.cmdline.as_bytes().to_vec();
    expected_cmdline.push(0);
    assert_eq!(read(cmdline.start, expected_cmdline.len()), expected_cmdline);
    if let Some(initrd_region) = entry.initrd {
        assert_eq!(read(initrd_region.start, initrd.len()), initrd);
    }
    let boot_params = read(zero_page.start, 4096);
    let u32_at = |offset: usize| u32::from_le_bytes(boot_params[offset..offset + 4].try_into().unwrap());
    assert_eq!(u32_at(0x202), 0x5372_6448, "boot_params lost the header magic");
    let split = |low: usize, high: usize| u64::from(u32_at(low)) | u64::from(u32_at(high)) << 32;
    assert_eq!(split(0x228, 0x0C8), cmdline.start, "cmd_line_ptr");
    let (initrd_gpa, initrd_len) = entry.initrd.map_or((0, 0), |region| (region.start, region.len()));
    assert_eq!(split(0x218, 0x0C0), initrd_gpa, "ramdisk_image");
    assert_eq!(split(0x21C, 0x0C4), initrd_len, "ramdisk_size");

    // The loader's identity map, walked as the CPU would: the entry point
    // (if inside the map) translates to itself.
    let state = entry.long_mode;
    assert_eq!(state.cr3, tables.start);
    let paging = PagingState::new(state.cr0, state.cr3, state.cr4, state.efer);
    let mapped_bytes = (tables.len() / 4096 - 2) << 30;
    if entry.rip < mapped_bytes {
        assert_eq!(paging.translate(memory, entry.rip, AccessKind::Execute), Ok(entry.rip));
    }
}
