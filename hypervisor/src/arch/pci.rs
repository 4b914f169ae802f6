//! The host's PCI configuration space: ECAM (memory-mapped, 4 KiB per
//! function) where the firmware's MCFG table gives a window Keel can map
//! (below 512 GiB: `phys::map_device_memory`), otherwise configuration
//! mechanism #1 (ports 0xCF8/0xCFC, the first 256
//! bytes). Keel is the only user of either: guests get their own emulated
//! configuration space (`keel-devices`' PCI host), never the host's. The
//! walking and sizing logic is `keel-pci`'s.

use keel_pci::mcfg::EcamWindow;
use keel_pci::{Bdf, ConfigAccess};
use spin::Once;

use super::instructions::{inl, outl};

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

static ECAM: Once<Option<EcamWindow>> = Once::new();

/// Chooses ECAM when the MCFG table (already parsed by the caller) has a
/// usable window for segment 0; called once at boot.
pub fn init(windows: &[EcamWindow]) {
    ECAM.call_once(|| {
        windows.iter().copied().find(|window| {
            let buses = u64::from(window.end_bus - window.start_bus) + 1;
            window.segment == 0 && super::phys::map_device_memory(window.base, buses << 20)
        })
    });
}

pub fn ecam_in_use() -> bool {
    ECAM.get().is_some_and(Option::is_some)
}

/// Host configuration space.
pub struct HostConfig;

impl HostConfig {
    fn ecam_address(function: Bdf, offset: u16) -> Option<u64> {
        ECAM.get().copied().flatten()?.address(function, offset & !3)
    }
}

fn mechanism1_address(function: Bdf, offset: u16) -> u32 {
    1 << 31
        | u32::from(function.bus) << 16
        | u32::from(function.device) << 11
        | u32::from(function.function) << 8
        | u32::from(offset & 0xfc)
}

impl ConfigAccess for HostConfig {
    fn read32(&mut self, function: Bdf, offset: u16) -> u32 {
        if let Some(address) = Self::ecam_address(function, offset) {
            // SAFETY: the window is mapped at its address (init mapped it);
            // a configuration read has no side effects Keel relies on.
            return unsafe { core::ptr::read_volatile(address as *const u32) };
        }
        if offset >= 256 {
            return u32::MAX;
        }
        // SAFETY: mechanism #1 selects and reads one register; Keel runs
        // on one CPU with interrupts off, so the pair is not interleaved.
        unsafe {
            outl(CONFIG_ADDRESS, mechanism1_address(function, offset));
            inl(CONFIG_DATA)
        }
    }

    fn write32(&mut self, function: Bdf, offset: u16, value: u32) {
        if let Some(address) = Self::ecam_address(function, offset) {
            // SAFETY: as in read32; what the write does to the device is
            // the caller's business.
            unsafe { core::ptr::write_volatile(address as *mut u32, value) };
            return;
        }
        if offset >= 256 {
            return;
        }
        // SAFETY: as in read32.
        unsafe {
            outl(CONFIG_ADDRESS, mechanism1_address(function, offset));
            outl(CONFIG_DATA, value);
        }
    }
}
