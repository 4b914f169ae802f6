//! Loading a bzImage for the 64-bit boot protocol: kernel, initrd, command
//! line, zero page and long-mode environment, ready to jump to.

mod placement;

pub use placement::{DEFAULT_KERNEL_LOAD_GPA, INITRD_MIN_GPA};

use keel_memory::GuestMemory;

use crate::boot_params::offsets::ZERO_PAGE_SIZE;
use crate::boot_params::{build_zero_page, E820Type, GuestMemoryLayout, ZeroPageContents};
use crate::bzimage::BzImage;
use crate::error::{GuestRegion, LoadError, RegionKind};
use crate::guest_memory::{check_backed, check_disjoint, check_in_ram, write_guest};
use crate::long_mode::{setup_long_mode, LongModeLayout, LongModeState};

/// The 64-bit entry point sits this far past the protected-mode kernel's start.
pub const ENTRY_64_OFFSET: u64 = 0x200;

/// Where the loader may put things in guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxLayout<'a> {
    /// Guest RAM and its holes; becomes the e820 map. Every range it
    /// offers as usable RAM must be RAM in the guest memory loaded into.
    pub memory: GuestMemoryLayout<'a>,
    /// 4 KiB `boot_params`.
    pub zero_page_gpa: u64,
    /// The command line and its NUL terminator.
    pub cmdline_gpa: u64,
    pub long_mode: LongModeLayout,
    /// Passed to the kernel in `boot_params.acpi_rsdp_addr`.
    pub acpi_rsdp_gpa: Option<u64>,
}

/// How to start the loaded kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxEntry {
    /// The 64-bit entry point.
    pub rip: u64,
    /// Address of `boot_params`, which the protocol passes in RSI.
    pub rsi: u64,
    pub long_mode: LongModeState,
    /// The kernel's load address and `init_size` footprint.
    pub kernel: GuestRegion,
    pub initrd: Option<GuestRegion>,
}

/// Loads `image` (a bzImage) with an optional initrd and a command line into
/// guest memory. Every placement is validated (against the layout and
/// against what is RAM in `memory`) before the first byte is written, so an
/// error leaves guest memory untouched. RAM may be made of several regions:
/// the kernel or initrd may straddle them.
pub fn load_linux<M: GuestMemory + ?Sized>(
    memory: &mut M,
    image: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
    layout: &LinuxLayout<'_>,
) -> Result<LinuxEntry, LoadError> {
    let kernel_image = BzImage::parse(image)?;
    let ram_bytes = layout.memory.ram_bytes;
    layout.memory.validate()?;
    check_usable_ram_backed(memory, &layout.memory)?;
    let cmdline_region = command_line_region(&kernel_image, cmdline, layout.cmdline_gpa)?;

    let kernel = placement::kernel_region(&kernel_image, ram_bytes)?;
    let zero_page = GuestRegion::new(RegionKind::ZeroPage, layout.zero_page_gpa, ZERO_PAGE_SIZE as u64)?;
    let occupied = [
        kernel,
        zero_page,
        cmdline_region,
        layout.long_mode.page_tables_region()?,
        layout.long_mode.gdt_region()?,
    ];
    for region in occupied {
        check_in_ram(region, ram_bytes)?;
        check_clear_of_reserved(region, &layout.memory)?;
        check_backed(memory, region)?;
    }
    check_disjoint(&occupied)?;
    for region in [kernel, zero_page, cmdline_region] {
        placement::check_below_4g(&kernel_image, region)?;
    }
    // Alignment and the identity map's size, checked here too: a refusal
    // from setup_long_mode would come after the kernel is written.
    layout.long_mode.check(memory)?;

    let initrd_region = match initrd {
        Some(bytes) if !bytes.is_empty() => {
            let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            let region = placement::place_initrd(&kernel_image, &layout.memory, &occupied, size)?;
            check_backed(memory, region)?;
            Some((region, bytes))
        }
        _ => None,
    };

    let zero_page_contents = ZeroPageContents {
        cmdline_gpa: cmdline_region.start,
        initrd: initrd_region.map(|(region, _)| (region.start, region.len())),
        acpi_rsdp_gpa: layout.acpi_rsdp_gpa,
    };
    let zero_page_bytes = build_zero_page(&kernel_image, &layout.memory, &zero_page_contents)?;

    write_guest(
        memory,
        RegionKind::Kernel,
        kernel.start,
        kernel_image.protected_mode_kernel(),
    )?;
    if let Some((region, bytes)) = initrd_region {
        write_guest(memory, RegionKind::Initrd, region.start, bytes)?;
    }
    write_command_line(memory, cmdline_region, cmdline)?;
    write_guest(
        memory,
        RegionKind::ZeroPage,
        zero_page.start,
        zero_page_bytes.as_bytes(),
    )?;
    let long_mode = setup_long_mode(memory, &layout.long_mode)?;

    Ok(LinuxEntry {
        rip: kernel.start.saturating_add(ENTRY_64_OFFSET),
        rsi: zero_page.start,
        long_mode,
        kernel,
        initrd: initrd_region.map(|(region, _)| region),
    })
}

/// The command line's region including its NUL, after checking the kernel
/// can take it.
fn command_line_region(image: &BzImage<'_>, cmdline: &str, gpa: u64) -> Result<GuestRegion, LoadError> {
    if cmdline.as_bytes().contains(&0) {
        return Err(LoadError::CommandLineContainsNul);
    }
    let len = u64::try_from(cmdline.len()).unwrap_or(u64::MAX);
    let max = u64::from(image.cmdline_size);
    if len > max {
        return Err(LoadError::CommandLineTooLong { len, max });
    }
    GuestRegion::new(RegionKind::CommandLine, gpa, len.saturating_add(1))
}

fn write_command_line<M: GuestMemory + ?Sized>(
    memory: &mut M,
    region: GuestRegion,
    cmdline: &str,
) -> Result<(), LoadError> {
    write_guest(memory, RegionKind::CommandLine, region.start, cmdline.as_bytes())?;
    let terminator = region.end.saturating_sub(1);
    write_guest(memory, RegionKind::CommandLine, terminator, &[0])
}

/// Fails unless every range the e820 map will offer as RAM is RAM in
/// `memory`: the guest would use it as such.
fn check_usable_ram_backed<M: GuestMemory + ?Sized>(
    memory: &M,
    layout: &GuestMemoryLayout<'_>,
) -> Result<(), LoadError> {
    for entry in layout.e820_table()?.as_slice() {
        if entry.kind == E820Type::Ram {
            check_backed(memory, GuestRegion::new(RegionKind::UsableRam, entry.addr, entry.size)?)?;
        }
    }
    Ok(())
}

fn check_clear_of_reserved(region: GuestRegion, memory: &GuestMemoryLayout<'_>) -> Result<(), LoadError> {
    for range in memory.reserved {
        let reserved = range.region()?;
        if region.overlaps(&reserved) {
            return Err(LoadError::Overlap {
                first: region,
                second: reserved,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
