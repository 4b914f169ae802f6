//! The Linux `boot_params` structure (the "zero page") handed to the kernel
//! in RSI at the 64-bit entry point.

pub mod e820;
pub mod offsets;
mod zero_page;

pub use e820::{E820Entry, E820Table, E820Type, GuestMemoryLayout, ReservedRange, E820_MAX_ENTRIES, LEGACY_HOLE};
pub use zero_page::ZeroPage;

use crate::bzimage::header::{
    CAN_USE_HEAP, CMD_LINE_PTR, HEAP_END_PTR, LOADFLAGS, RAMDISK_IMAGE, RAMDISK_SIZE, RSDP_PROTOCOL_VERSION,
    SETUP_HEADER_START, TYPE_OF_LOADER,
};
use crate::bzimage::BzImage;
use crate::error::LoadError;
use offsets::*;

/// `type_of_loader` for a boot loader without an assigned ID.
pub const UNDEFINED_LOADER: u8 = 0xFF;

/// End of the setup heap relative to the real-mode code, minus 0x200, as
/// boot.rst's example loader sets it. The 64-bit entry skips the real-mode
/// code that uses the heap; we set it so the header stays self-consistent.
pub const HEAP_END: u16 = 0xE000 - 0x200;

/// Where the loader put the pieces the zero page points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZeroPageContents {
    pub cmdline_gpa: u64,
    /// `(gpa, size)` of the initrd, if any.
    pub initrd: Option<(u64, u64)>,
    /// Physical address of the ACPI RSDP. Written only for protocol 2.14+;
    /// older kernels find the RSDP by scanning the BIOS area instead.
    pub acpi_rsdp_gpa: Option<u64>,
}

/// Builds `boot_params` for `image`: the image's own setup header with the
/// loader-owned fields filled in, plus the e820 map of `memory`.
pub fn build_zero_page(
    image: &BzImage<'_>,
    memory: &GuestMemoryLayout<'_>,
    contents: &ZeroPageContents,
) -> Result<ZeroPage, LoadError> {
    let mut page = ZeroPage::new();
    // The kernel reads its own header back from boot_params, so copy it
    // verbatim before overriding the fields a loader owns.
    page.copy_at(SETUP_HEADER_START, image.setup_header_bytes()?)?;

    page.set_u8::<TYPE_OF_LOADER>(UNDEFINED_LOADER);
    let loadflags = page.u8_at::<LOADFLAGS>() | CAN_USE_HEAP;
    page.set_u8::<LOADFLAGS>(loadflags);
    page.set_u16::<HEAP_END_PTR>(HEAP_END);

    page.set_split_u64::<CMD_LINE_PTR, EXT_CMD_LINE_PTR>(contents.cmdline_gpa);
    let (initrd_gpa, initrd_size) = contents.initrd.unwrap_or((0, 0));
    page.set_split_u64::<RAMDISK_IMAGE, EXT_RAMDISK_IMAGE>(initrd_gpa);
    page.set_split_u64::<RAMDISK_SIZE, EXT_RAMDISK_SIZE>(initrd_size);

    if let Some(rsdp) = contents.acpi_rsdp_gpa {
        if image.protocol_version >= RSDP_PROTOCOL_VERSION {
            page.set_u64::<ACPI_RSDP_ADDR>(rsdp);
        }
    }

    page.set_e820(memory.e820_table()?.as_slice())?;
    Ok(page)
}

#[cfg(test)]
mod tests;
