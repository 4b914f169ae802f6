//! Builds every table and lays them out in one guest-physical region.

use alloc::vec::Vec;

use crate::config::GuestAcpiConfig;
use crate::dsdt::{build_dsdt, validate_pci, validate_power_button};
use crate::error::AcpiError;
use crate::facs::{build_facs, FACS_ALIGN};
use crate::fadt::{build_fadt, FadtLinks, FADT_LEN};
use crate::layout::{RegionPlanner, RegionWriter};
use crate::madt::build_madt;
use crate::rsdp::{build_rsdp, RSDP_ALIGN, RSDP_LEN};
use crate::xsdt::{build_xsdt, xsdt_len};

/// SDTs need only natural alignment for their 64-bit fields.
const TABLE_ALIGN: u64 = 8;
/// FADT and MADT; the DSDT and FACS are reached through the FADT.
const XSDT_ENTRY_COUNT: usize = 2;

/// The guest's ACPI tables, ready to be copied to guest-physical `base_gpa`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiBlob {
    /// Byte `i` belongs at guest-physical `base_gpa + i`.
    pub bytes: Vec<u8>,
    /// What to hand Linux as `boot_params.acpi_rsdp_addr`.
    pub rsdp_gpa: u64,
}

/// Generates RSDP, XSDT, FADT, MADT, DSDT and (unless hardware-reduced) FACS
/// for one guest, addressed as if the returned bytes start at `base_gpa`.
pub fn build_guest_acpi(config: &GuestAcpiConfig<'_>, base_gpa: u64) -> Result<AcpiBlob, AcpiError> {
    let madt = build_madt(config)?;
    validate_pci(config)?;
    validate_power_button(config)?;
    let dsdt = build_dsdt(
        config.oem_id,
        config.serial_ports,
        config.cmos_rtc,
        config.pci.as_ref(),
        config.power_button,
    )?;
    // Hardware-reduced platforms have no FACS: no global lock, no waking vector.
    let facs = (!config.hw_reduced).then(build_facs);

    let mut planner = RegionPlanner::new(base_gpa);
    let rsdp_at = planner.place(RSDP_LEN, RSDP_ALIGN)?;
    let xsdt_at = planner.place(xsdt_len(XSDT_ENTRY_COUNT), TABLE_ALIGN)?;
    let fadt_at = planner.place(FADT_LEN, TABLE_ALIGN)?;
    let madt_at = planner.place(madt.len(), TABLE_ALIGN)?;
    let dsdt_at = planner.place(dsdt.len(), TABLE_ALIGN)?;
    let facs_at = facs
        .as_ref()
        .map(|facs| planner.place(facs.len(), FACS_ALIGN))
        .transpose()?;

    let links = FadtLinks {
        dsdt_gpa: dsdt_at.gpa,
        facs_gpa: facs_at.map(|placement| placement.gpa),
    };
    let fadt = build_fadt(config, links)?;
    let xsdt = build_xsdt(config.oem_id, &[fadt_at.gpa, madt_at.gpa])?;
    let rsdp = build_rsdp(config.oem_id, xsdt_at.gpa);

    let mut writer = RegionWriter::with_capacity(planner.len());
    writer.write(rsdp_at, &rsdp);
    writer.write(xsdt_at, &xsdt);
    writer.write(fadt_at, &fadt);
    writer.write(madt_at, &madt);
    writer.write(dsdt_at, &dsdt);
    if let (Some(placement), Some(facs)) = (facs_at, &facs) {
        writer.write(placement, facs);
    }
    Ok(AcpiBlob {
        bytes: writer.finish(),
        rsdp_gpa: rsdp_at.gpa,
    })
}
