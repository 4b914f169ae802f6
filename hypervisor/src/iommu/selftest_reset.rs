//! The self-test's reset part: passthrough resets a function when it
//! assigns it and when it takes it back (`passthrough::reset_function`,
//! with `keel_pci::reset` choosing the method). Here the same call resets
//! QEMU's NVMe controller (1b36:0010, which offers a PCI Express
//! function-level reset; the `qemu-iommu` machine has one at 00:04.0 on a
//! null block device): a controller register the check wrote (the admin
//! mask, INTMS) must read its reset value again, MSI-X (turned
//! on for the check) must be off, and the BARs must be where the firmware
//! put them. The e1000e's power-management reset (D3hot and back) is not
//! used for this: QEMU does not reset a function on that transition.
//!
//! Without such a controller the check is skipped and says so.

use alloc::format;
use alloc::string::String;

use keel_iommu::RegisterAccess;
use keel_pci::bar::BarKind;
use keel_pci::reset::ResetMethod;
use keel_pci::{header, Bdf, ConfigAccess};

use crate::arch::pci::HostConfig;
use crate::arch::phys::Mmio;

const NVME_VENDOR: u16 = 0x1b36;
const NVME_DEVICE: u16 = 0x0010;
/// Interrupt Mask Set: a write sets mask bits (for INTx and MSI; the
/// check writes it before MSI-X is on), a read shows them; 0 after a
/// reset. (An NVMe controller keeps its admin queue registers across
/// resets of its own, so those say nothing.)
const INTMS: u32 = 0x0c;
const INTMS_PATTERN: u32 = 0x1;
const MSIX_ENABLE: u16 = 1 << 15;

pub fn run() -> Result<(), String> {
    let config = &mut HostConfig;
    let Some(nvme) = super::selftest::find_function(NVME_VENDOR, NVME_DEVICE) else {
        log::info!(
            "iommu selftest: no NVMe controller ({NVME_VENDOR:04x}:{NVME_DEVICE:04x}): the reset check is skipped"
        );
        return Ok(());
    };
    let method = keel_pci::reset::method(config, nvme);
    if !matches!(method, Some(ResetMethod::ExpressFlr(_))) {
        return Err(format!(
            "the NVMe controller at {nvme} offers no PCI Express FLR ({method:?})"
        ));
    }
    let bars = keel_pci::bar::probe(config, nvme).map_err(|error| format!("the NVMe controller's BARs: {error:?}"))?;
    let bar0 = bars
        .iter()
        .find(|bar| bar.index == 0 && bar.kind != BarKind::Io)
        .ok_or("the NVMe controller has no memory BAR 0")?;
    let mut registers =
        Mmio::new(bar0.address, bar0.size).ok_or("the NVMe controller's BAR 0 is outside the identity map")?;
    let saved_bars: [u32; 6] = core::array::from_fn(|index| config.read32(nvme, header::BAR0 + 4 * index as u16));
    let saved_line = config.read8(nvme, header::INTERRUPT_LINE);
    let command = config.read16(nvme, header::COMMAND);

    config.write16(nvme, header::COMMAND, command | header::COMMAND_MEMORY);
    registers.write32(INTMS, INTMS_PATTERN);
    let written = registers.read32(INTMS);
    let msix = keel_pci::capabilities::find(config, nvme, keel_pci::capabilities::MSI_X);
    if let Some(msix) = msix {
        let control = config.read16(nvme, msix + 2);
        config.write16(nvme, msix + 2, control | MSIX_ENABLE);
    }
    let reset = crate::passthrough::reset_function(config, nvme, &saved_bars, saved_line, "self-test");
    config.write16(nvme, header::COMMAND, command | header::COMMAND_MEMORY);
    let after = registers.read32(INTMS);
    let msix_on = msix.is_some_and(|msix| config.read16(nvme, msix + 2) & MSIX_ENABLE != 0);
    let bars_now: [u32; 6] = core::array::from_fn(|index| config.read32(nvme, header::BAR0 + 4 * index as u16));
    let line_now = config.read8(nvme, header::INTERRUPT_LINE);
    config.write16(nvme, header::COMMAND, command);
    reset?;
    check(
        nvme,
        written,
        after,
        msix_on,
        bars_now == saved_bars && line_now == saved_line,
    )
}

fn check(nvme: Bdf, written: u32, after: u32, msix_on: bool, restored: bool) -> Result<(), String> {
    if written != INTMS_PATTERN {
        return Err(format!(
            "the NVMe controller's INTMS read {written:#x} after the check wrote it"
        ));
    }
    if after != 0 || msix_on || !restored {
        return Err(format!(
            "after its FLR the NVMe controller at {nvme} has INTMS {after:#x}, MSI-X {}, BARs and Interrupt Line {}",
            if msix_on { "on" } else { "off" },
            if restored { "restored" } else { "NOT restored" }
        ));
    }
    log::info!(
        "iommu selftest: the NVMe controller at {nvme} reset by its PCI Express FLR: INTMS back to 0, MSI-X off, BARs restored"
    );
    Ok(())
}
