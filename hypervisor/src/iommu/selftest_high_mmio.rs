//! The self-test's device-memory-above-4-GiB part: Keel's boot page tables
//! map only the first 4 GiB, and firmware often puts 64-bit BARs above it;
//! Keel maps such registers on first use (`arch::phys::map_device_memory`)
//! to program an assigned function's MSI-X table there (`host_msix`) and
//! to forward a guest's accesses around it. Here QEMU's NVMe controller
//! (the `qemu-iommu` machine's at 00:04.0, BAR 0 64-bit) is moved to
//! 5 GiB, inside q35's 64-bit PCI window (which starts at 4 GiB on a
//! machine with less than 2 GiB of RAM): its version register must read
//! there, and `HostMsixTable::find` must find its MSI-X table there and
//! mask it, read back. Then the BAR goes back.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use keel_iommu::RegisterAccess;
use keel_pci::bar::{Bar, BarKind};
use keel_pci::{header, Bdf, ConfigAccess};

use crate::arch::pci::HostConfig;
use crate::arch::phys::Mmio;
use crate::host_msix::HostMsixTable;

const NVME_VENDOR: u16 = 0x1b36;
const NVME_DEVICE: u16 = 0x0010;
/// Where the check puts BAR 0: 5 GiB.
const HIGH: u64 = 5 << 30;
/// The controller's Version register (NVMe 1.x reads 0x0001_xx00).
const VS: u32 = 0x08;

pub fn run() -> Result<(), String> {
    let config = &mut HostConfig;
    let Some(nvme) = super::selftest::find_function(NVME_VENDOR, NVME_DEVICE) else {
        log::info!("iommu selftest: no NVMe controller: the check of device memory above 4 GiB is skipped");
        return Ok(());
    };
    let bars = keel_pci::bar::probe(config, nvme).map_err(|error| format!("the NVMe controller's BARs: {error:?}"))?;
    let bar0 = *bars
        .iter()
        .find(|bar| bar.index == 0 && bar.kind == BarKind::Memory64)
        .ok_or("the NVMe controller has no 64-bit BAR 0")?;
    let command = config.read16(nvme, header::COMMAND);
    let saved = [config.read32(nvme, header::BAR0), config.read32(nvme, header::BAR0 + 4)];
    config.write16(nvme, header::COMMAND, command & !header::COMMAND_MEMORY);
    config.write32(nvme, header::BAR0, (saved[0] & 0xf) | HIGH as u32);
    config.write32(nvme, header::BAR0 + 4, (HIGH >> 32) as u32);
    config.write16(nvme, header::COMMAND, command | header::COMMAND_MEMORY);
    let moved: Vec<Bar> = bars
        .iter()
        .map(|bar| {
            if bar.index == 0 {
                Bar { address: HIGH, ..*bar }
            } else {
                *bar
            }
        })
        .collect();
    let result = check(config, nvme, bar0.size, &moved);
    config.write16(nvme, header::COMMAND, command & !header::COMMAND_MEMORY);
    config.write32(nvme, header::BAR0, saved[0]);
    config.write32(nvme, header::BAR0 + 4, saved[1]);
    config.write16(nvme, header::COMMAND, command);
    let (version, entries) = result?;
    log::info!(
        "iommu selftest: the NVMe controller's BAR 0 moved to {HIGH:#x}: Keel mapped it, read its version {version:#x} and masked its {entries} MSI-X entries there"
    );
    Ok(())
}

fn check(config: &mut HostConfig, nvme: Bdf, size: u64, moved: &[Bar]) -> Result<(u32, u16), String> {
    let mut registers = Mmio::new(HIGH, size).ok_or_else(|| format!("{HIGH:#x} could not be mapped"))?;
    let version = registers.read32(VS);
    if version >> 16 != 1 {
        return Err(format!(
            "the NVMe controller's version reads {version:#x} at {HIGH:#x}: not its registers"
        ));
    }
    let mut table = HostMsixTable::find(config, nvme, moved)?.ok_or("the NVMe controller has no MSI-X")?;
    table.mask_all(config);
    let last = table.entries() - 1;
    if table.vector_control(config, last) != Some(1) {
        return Err(format!(
            "the NVMe controller's MSI-X entry {last} did not read back masked at {HIGH:#x}"
        ));
    }
    Ok((version, table.entries()))
}
