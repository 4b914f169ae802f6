//! The host firmware's ACPI tables, found through the RSDP the bootloader
//! copied into the multiboot2 information (XSDT on ACPI 2.0+, else RSDT).

use alloc::vec::Vec;

use keel_acpi_tables::find::{find_table_occurrence, FindError, Occurrence, RootTable};
use multiboot2::BootInformation;

use crate::arch::phys::Firmware;

#[derive(Debug)]
pub enum HostAcpiError {
    /// The bootloader passed no RSDP.
    NoRsdp,
    Find(FindError),
}

impl core::fmt::Display for HostAcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRsdp => f.write_str("the bootloader passed no ACPI RSDP"),
            Self::Find(error) => write!(f, "{error}"),
        }
    }
}

/// The first table with `signature`, checked and copied; `Ok(None)` when
/// the firmware has none.
pub fn find(boot_info: &BootInformation, signature: [u8; 4]) -> Result<Option<Vec<u8>>, HostAcpiError> {
    find_occurrence(boot_info, signature, Occurrence::First)
}

/// As [`find`], taking the first or the last table with `signature`.
pub fn find_occurrence(
    boot_info: &BootInformation,
    signature: [u8; 4],
    occurrence: Occurrence,
) -> Result<Option<Vec<u8>>, HostAcpiError> {
    let root = match (boot_info.rsdp_v2_tag(), boot_info.rsdp_v1_tag()) {
        (Some(v2), _) if v2.xsdt_address() != 0 => RootTable::Xsdt(v2.xsdt_address() as u64),
        (_, Some(v1)) => RootTable::Rsdt(v1.rsdt_address() as u32),
        _ => return Err(HostAcpiError::NoRsdp),
    };
    find_table_occurrence(&Firmware, root, signature, occurrence).map_err(HostAcpiError::Find)
}
