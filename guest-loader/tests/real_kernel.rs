//! Parses and loads a real distribution kernel when one has been fetched to
//! `target/guest/vmlinuz` (or named by `KEEL_GUEST_KERNEL`); skipped
//! otherwise, since the synthetic-image unit tests carry the real coverage.

use keel_guest_loader::boot_params::LEGACY_HOLE;
use keel_guest_loader::{load_linux, BzImage, GuestMemoryLayout, LinuxLayout, LongModeLayout, PAGE_SIZE};

const KERNEL_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/guest/vmlinuz");
const RAM_BYTES: u64 = 512 << 20;

#[test]
fn real_kernel_parses_and_loads() {
    let path = std::env::var("KEEL_GUEST_KERNEL").unwrap_or_else(|_| KERNEL_PATH.to_owned());
    let Ok(image) = std::fs::read(&path) else {
        println!("note: {path} not present, skipping the real-kernel test");
        return;
    };
    let parsed = BzImage::parse(&image).expect("a distribution kernel is a valid bzImage");
    assert!(parsed.protocol_version >= 0x020C);
    assert!(parsed.relocatable_kernel);
    assert!(u64::from(parsed.init_size) > parsed.protected_mode_kernel().len() as u64 / 2);

    let reserved = [LEGACY_HOLE];
    let layout = LinuxLayout {
        memory: GuestMemoryLayout {
            ram_bytes: RAM_BYTES,
            reserved: &reserved,
        },
        zero_page_gpa: 0x7000,
        cmdline_gpa: 0x2_0000,
        long_mode: LongModeLayout {
            page_tables_gpa: 0x9000,
            gdt_gpa: 0x8000,
            identity_map_bytes: RAM_BYTES,
        },
        acpi_rsdp_gpa: None,
    };
    let initrd = vec![0x42u8; 3 * PAGE_SIZE as usize + 17];
    let mut ram = vec![0u8; RAM_BYTES as usize];
    let entry = load_linux(&mut ram, &image, Some(&initrd), "console=ttyS0", &layout)
        .expect("a distribution kernel loads into 512 MiB");
    assert_eq!(entry.rip, entry.kernel.start + 0x200);
    assert_eq!(entry.kernel.start % u64::from(parsed.kernel_alignment), 0);
    let initrd_region = entry.initrd.expect("initrd placed");
    assert!(initrd_region.start >= entry.kernel.end);
    println!(
        "loaded protocol {:#06x} kernel at {}, initrd at {}",
        parsed.protocol_version, entry.kernel, initrd_region
    );
}
