use super::*;
use crate::bzimage::header::{JUMP_OFFSET, LOADED_HIGH, VERSION};
use crate::test_image::*;

const MIB: u64 = 1 << 20;

fn u16_at(page: &ZeroPage, offset: usize) -> u16 {
    u16::from_le_bytes(page.as_bytes()[offset..offset + 2].try_into().unwrap())
}

fn u32_at(page: &ZeroPage, offset: usize) -> u32 {
    u32::from_le_bytes(page.as_bytes()[offset..offset + 4].try_into().unwrap())
}

fn u64_at(page: &ZeroPage, offset: usize) -> u64 {
    u64::from_le_bytes(page.as_bytes()[offset..offset + 8].try_into().unwrap())
}

fn memory() -> GuestMemoryLayout<'static> {
    GuestMemoryLayout {
        ram_bytes: 64 * MIB,
        reserved: &[LEGACY_HOLE],
    }
}

fn contents() -> ZeroPageContents {
    ZeroPageContents {
        cmdline_gpa: 0x2_0000,
        initrd: Some((0x300_0000, 0x12345)),
        acpi_rsdp_gpa: Some(0xE_0000),
    }
}

#[test]
fn loader_fields_land_at_their_protocol_offsets() {
    let image = SyntheticImage::new();
    let parsed = BzImage::parse(&image.bytes).unwrap();
    let page = build_zero_page(&parsed, &memory(), &contents()).unwrap();
    let bytes = page.as_bytes();

    assert_eq!(bytes[0x210], 0xFF, "type_of_loader");
    assert_eq!(bytes[0x211], LOADED_HIGH | CAN_USE_HEAP, "loadflags");
    assert_eq!(u16_at(&page, 0x224), 0xDE00, "heap_end_ptr");
    assert_eq!(u32_at(&page, 0x228), 0x2_0000, "cmd_line_ptr");
    assert_eq!(u32_at(&page, 0x0C8), 0, "ext_cmd_line_ptr");
    assert_eq!(u32_at(&page, 0x218), 0x300_0000, "ramdisk_image");
    assert_eq!(u32_at(&page, 0x21C), 0x12345, "ramdisk_size");
    assert_eq!(u64_at(&page, 0x070), 0xE_0000, "acpi_rsdp_addr");
    // The rest of the header is the image's, byte for byte.
    assert_eq!(&bytes[0x1F1..0x210], &image.bytes[0x1F1..0x210]);
    assert_eq!(&bytes[0x22C..0x26C], &image.bytes[0x22C..0x26C]);
    // Nothing beyond the header's declared end is copied from the image.
    assert!(bytes[0x26C..0x2D0].iter().all(|&byte| byte == 0));
    // The sentinel must stay zero or the kernel discards our fields.
    assert_eq!(bytes[0x1EF], 0);
}

#[test]
fn e820_table_is_written_in_20_byte_entries() {
    let image = SyntheticImage::new();
    let parsed = BzImage::parse(&image.bytes).unwrap();
    let page = build_zero_page(&parsed, &memory(), &contents()).unwrap();
    assert_eq!(page.as_bytes()[0x1E8], 3, "e820_entries");
    let expected = [(0, 0xA_0000, 1), (0xA_0000, 0x6_0000, 2), (MIB, 63 * MIB, 1)];
    for (index, (addr, size, kind)) in expected.into_iter().enumerate() {
        let entry = 0x2D0 + index * 20;
        assert_eq!(u64_at(&page, entry), addr, "entry {index} addr");
        assert_eq!(u64_at(&page, entry + 8), size, "entry {index} size");
        assert_eq!(u32_at(&page, entry + 16), kind, "entry {index} type");
    }
    assert!(page.as_bytes()[0x2D0 + 3 * 20..].iter().all(|&byte| byte == 0));
}

#[test]
fn addresses_above_4_gib_use_the_ext_fields() {
    let image = SyntheticImage::new();
    let parsed = BzImage::parse(&image.bytes).unwrap();
    let high = ZeroPageContents {
        cmdline_gpa: 0x1_2345_6000,
        initrd: Some((0x2_0000_1000, 0x1_0000_0010)),
        acpi_rsdp_gpa: None,
    };
    let page = build_zero_page(&parsed, &memory(), &high).unwrap();
    assert_eq!(u32_at(&page, 0x228), 0x2345_6000);
    assert_eq!(u32_at(&page, 0x0C8), 0x1);
    assert_eq!(u32_at(&page, 0x218), 0x1000);
    assert_eq!(u32_at(&page, 0x0C0), 0x2);
    assert_eq!(u32_at(&page, 0x21C), 0x10);
    assert_eq!(u32_at(&page, 0x0C4), 0x1);
    assert_eq!(u64_at(&page, 0x070), 0);
}

#[test]
fn no_initrd_leaves_the_ramdisk_fields_zero() {
    let image = SyntheticImage::new();
    let parsed = BzImage::parse(&image.bytes).unwrap();
    let none = ZeroPageContents {
        initrd: None,
        ..contents()
    };
    let page = build_zero_page(&parsed, &memory(), &none).unwrap();
    for offset in [0x218, 0x21C, 0x0C0, 0x0C4] {
        assert_eq!(u32_at(&page, offset), 0, "{offset:#x}");
    }
}

#[test]
fn rsdp_is_omitted_before_protocol_2_14() {
    let mut image = SyntheticImage::new();
    image.set_u16(VERSION, 0x020D);
    let parsed = BzImage::parse(&image.bytes).unwrap();
    let page = build_zero_page(&parsed, &memory(), &contents()).unwrap();
    assert_eq!(u64_at(&page, 0x070), 0);
}

#[test]
fn short_declared_header_copies_only_what_it_declares() {
    let mut image = SyntheticImage::new();
    // A 2.12-era header ends after handover_offset at 0x268.
    image.set_u8(JUMP_OFFSET, 0x66);
    let parsed = BzImage::parse(&image.bytes).unwrap();
    let page = build_zero_page(&parsed, &memory(), &contents()).unwrap();
    assert_eq!(&page.as_bytes()[0x258..0x268], &image.bytes[0x258..0x268]);
    assert!(page.as_bytes()[0x268..0x26C].iter().all(|&byte| byte == 0));
}

#[test]
fn bad_memory_layout_is_reported() {
    let image = SyntheticImage::new();
    let parsed = BzImage::parse(&image.bytes).unwrap();
    let broken = GuestMemoryLayout {
        ram_bytes: 64 * MIB,
        reserved: &[ReservedRange {
            start: MIB,
            size: 0,
            kind: E820Type::Reserved,
        }],
    };
    assert_eq!(
        build_zero_page(&parsed, &broken, &contents()),
        Err(LoadError::BadReservedRange { start: MIB, size: 0 })
    );
}
