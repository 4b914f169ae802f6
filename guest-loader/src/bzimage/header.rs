//! Offsets and flag bits of the x86 boot protocol setup header
//! (Documentation/arch/x86/boot.rst), all relative to the start of the image.

pub const SETUP_SECTS: usize = 0x1F1;
pub const SYSSIZE: usize = 0x1F4;
pub const BOOT_FLAG: usize = 0x1FE;
/// Byte holding the jump offset; 0x202 plus it is where the header ends.
pub const JUMP_OFFSET: usize = 0x201;
pub const HEADER_MAGIC: usize = 0x202;
pub const VERSION: usize = 0x206;
pub const TYPE_OF_LOADER: usize = 0x210;
pub const LOADFLAGS: usize = 0x211;
pub const RAMDISK_IMAGE: usize = 0x218;
pub const RAMDISK_SIZE: usize = 0x21C;
pub const HEAP_END_PTR: usize = 0x224;
pub const CMD_LINE_PTR: usize = 0x228;
pub const INITRD_ADDR_MAX: usize = 0x22C;
pub const KERNEL_ALIGNMENT: usize = 0x230;
pub const RELOCATABLE_KERNEL: usize = 0x234;
pub const MIN_ALIGNMENT: usize = 0x235;
pub const XLOADFLAGS: usize = 0x236;
pub const CMDLINE_SIZE: usize = 0x238;
pub const PAYLOAD_OFFSET: usize = 0x248;
pub const PAYLOAD_LENGTH: usize = 0x24C;
pub const PREF_ADDRESS: usize = 0x258;
pub const INIT_SIZE: usize = 0x260;

/// Where the setup header starts, both in the image and in `boot_params`.
pub const SETUP_HEADER_START: usize = SETUP_SECTS;
/// Image bytes needed to read every field this loader uses (through `init_size`).
pub const MIN_IMAGE_LEN: usize = INIT_SIZE + 4;
/// In `boot_params` the setup header is followed by padding up to
/// `edd_mbr_sig_buffer` at 0x290; a longer header would clobber it.
pub const SETUP_HEADER_LIMIT: usize = 0x290;

pub const BOOT_FLAG_VALUE: u16 = 0xAA55;
/// "HdrS" read as a little-endian u32.
pub const HEADER_MAGIC_VALUE: u32 = 0x5372_6448;
/// 2.12 introduced xloadflags and with it XLF_KERNEL_64.
pub const MIN_PROTOCOL_VERSION: u16 = 0x020C;
/// 2.14 introduced `acpi_rsdp_addr` in `boot_params`.
pub const RSDP_PROTOCOL_VERSION: u16 = 0x020E;

/// A `setup_sects` of zero means four, for compatibility with ancient images.
pub const LEGACY_SETUP_SECTS: u8 = 4;
pub const SECTOR_SIZE: u64 = 512;

/// loadflags: the protected-mode kernel is loaded at 0x100000 or above.
pub const LOADED_HIGH: u8 = 1 << 0;
/// loadflags: `heap_end_ptr` is valid.
pub const CAN_USE_HEAP: u8 = 1 << 7;

/// xloadflags: the kernel has the 64-bit entry point at load address + 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// xloadflags: kernel, boot_params, command line and ramdisk may sit above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
