//! Offsets of the `boot_params` ("zero page") fields the loader fills
//! (arch/x86/include/uapi/asm/bootparam.h). Setup-header fields share their
//! offsets with the image and live in `bzimage::header`.

pub const ZERO_PAGE_SIZE: usize = 4096;
/// u64, protocol 2.14+.
pub const ACPI_RSDP_ADDR: usize = 0x070;
/// High 32 bits of `ramdisk_image`.
pub const EXT_RAMDISK_IMAGE: usize = 0x0C0;
/// High 32 bits of `ramdisk_size`.
pub const EXT_RAMDISK_SIZE: usize = 0x0C4;
/// High 32 bits of `cmd_line_ptr`.
pub const EXT_CMD_LINE_PTR: usize = 0x0C8;
/// u8 count of valid `e820_table` entries.
pub const E820_ENTRIES: usize = 0x1E8;
pub const E820_TABLE: usize = 0x2D0;
/// addr: u64, size: u64, type: u32, packed.
pub const E820_ENTRY_SIZE: usize = 20;
