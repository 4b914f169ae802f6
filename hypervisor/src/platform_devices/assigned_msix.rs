//! MSI-X of assigned host functions, as the guest sees it.
//!
//! The MSI-X table lives in one of the device's memory BARs. Like an MSI,
//! an MSI-X message is a DMA write of the data software programmed to the
//! address software programmed, so the guest must never program the real
//! table: Keel maps the function's BARs into the guest except the pages
//! that hold the table and the pending bit array (PBA), and traps those
//! (`PassthroughFunction::trapped_pages`). Here:
//!
//! - the trapped pages are found where the guest's BAR decodes now
//!   (refreshed after every configuration write, so the MMIO path needs no
//!   PCI lookup);
//! - an access to the table or PBA goes to the model
//!   (`keel_devices::passthrough_msi`: entries, masks, pending bits); any
//!   other byte of those pages (device registers that share the page) goes
//!   to the real device at the host's address ([`PlatformHost::device_read`]);
//! - a change of MSI-X Enable, the Function Mask or a table entry is
//!   reported once ([`VirtualPlatform::take_passthrough_msix_changes`]):
//!   the hypervisor gives each entry the guest unmasked a host vector of
//!   its own (and an interrupt-remapping entry), programs the real table
//!   with those, and enables the real MSI-X;
//! - when an entry's host vector fires, the model decides
//!   ([`VirtualPlatform::passthrough_msix_fired`]): the guest's message now
//!   (checked like an MSI: fixed or lowest-priority, vectors 16-255), or
//!   pending while the guest has it masked, released when it unmasks.

use alloc::vec::Vec;

use keel_devices::pci_host::PciAddress;

use super::{PlatformHost, VirtualPlatform};

/// Trapped pages of an assigned function where the guest's BAR decodes now.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MsixWindow {
    address: PciAddress,
    bar: usize,
    /// Guest-physical start of the trapped pages, and their length.
    gpa: u64,
    len: u64,
    /// Their offset into the BAR.
    offset: u64,
    /// Host-physical address of the BAR.
    host: u64,
}

/// The guest side of assigned functions' MSI-X.
#[derive(Debug, Default)]
pub(super) struct MsixForwarding {
    /// Whether any assigned function shows MSI-X (else there is nothing to
    /// refresh after configuration writes).
    shown: bool,
    windows: Vec<MsixWindow>,
    /// Functions whose guest changed MSI-X Enable, the Function Mask or a
    /// table entry since the last take (each once).
    changed: Vec<PciAddress>,
}

/// What the guest asks of an assigned function's MSI-X.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsixRequest {
    /// MSI-X Enable (the Function Mask is the model's business).
    pub enabled: bool,
    /// The entries whose mask bit the guest cleared: each needs a host
    /// vector.
    pub unmasked: Vec<u16>,
}

impl<H: PlatformHost> VirtualPlatform<H> {
    /// Functions whose guest changed their MSI-X (Enable, Function Mask or
    /// a table entry) since the last call, each once.
    pub fn take_passthrough_msix_changes(&mut self) -> Vec<PciAddress> {
        core::mem::take(&mut self.msix.changed)
    }

    pub fn has_passthrough_msix_changes(&self) -> bool {
        !self.msix.changed.is_empty()
    }

    /// What the guest asks of the MSI-X of the function at `address`
    /// (`None` if it shows none).
    pub fn passthrough_msix_request(&mut self, address: PciAddress) -> Option<MsixRequest> {
        let function = self.msi_function(address)?;
        let msix = function.msix()?;
        let enabled = msix.control().enabled;
        Some(MsixRequest {
            enabled,
            unmasked: function.msix_unmasked_entries().collect(),
        })
    }

    /// The host vector of entry `entry` of the function at `address` fired:
    /// the guest receives its message now, later (masked) or never (MSI-X
    /// off and the entry never released, or a message it may not send).
    pub fn passthrough_msix_fired(&mut self, address: PciAddress, entry: u16) {
        let Some(message) = self
            .msi_function(address)
            .and_then(|function| function.fire_msix(entry))
        else {
            return;
        };
        self.deliver_passthrough_msi(address, message);
    }

    /// After configuration or table writes to the function at `address`:
    /// a change is noted (once until taken), and pending messages the
    /// writes released are delivered.
    pub(super) fn collect_passthrough_msix(&mut self, address: PciAddress) {
        let Some(function) = self.msi_function(address) else {
            return;
        };
        if function.msix().is_none() {
            return;
        }
        let changed = function.take_msix_change();
        let released = function.msix_unmask_released();
        if changed && !self.msix.changed.contains(&address) {
            self.msix.changed.push(address);
        }
        for message in released {
            self.deliver_passthrough_msi(address, message);
        }
    }

    /// Where assigned functions' trapped pages decode now (after attaching
    /// one, and after configuration writes: BARs move, decoding turns on
    /// and off).
    pub(super) fn refresh_msix_windows(&mut self) {
        if !self.msix.shown {
            return;
        }
        let mut windows = Vec::new();
        for index in 0..self.passthrough.len() {
            let address = self.passthrough[index];
            let Some(function) = self.msi_function(address) else {
                continue;
            };
            for pages in function.trapped_pages() {
                let (Some(base), Some(host)) = (function.header().decoded_bar(pages.bar), function.host_bar(pages.bar))
                else {
                    continue;
                };
                let gpa = base.saturating_add(pages.offset);
                windows.push(MsixWindow {
                    address,
                    bar: pages.bar,
                    gpa,
                    len: pages.len,
                    offset: pages.offset,
                    host: host.address,
                });
            }
        }
        // Where a guest put the BAR over a device Keel emulates, that device
        // wins access by access (`VirtualPlatform::mmio_read`); the rest of
        // the trapped pages stay trapped.
        self.msix.windows = windows;
    }

    /// Notes that an assigned function shows the guest MSI-X (its trapped
    /// pages are looked for after configuration writes from now on).
    pub(super) fn note_msix_function(&mut self, address: PciAddress) {
        self.msix.shown |= self
            .msi_function(address)
            .is_some_and(|function| function.msix().is_some());
    }

    pub(super) fn has_msix_windows(&self) -> bool {
        !self.msix.windows.is_empty()
    }

    /// The trapped pages `gpa` falls in, if any.
    pub(super) fn msix_window(&self, gpa: u64) -> Option<MsixWindow> {
        self.msix
            .windows
            .iter()
            .find(|window| gpa >= window.gpa && gpa - window.gpa < window.len)
            .copied()
    }

    /// A guest read in trapped pages: the table's or PBA's bytes, or the
    /// real device's register.
    pub(super) fn msix_page_read(&mut self, window: MsixWindow, gpa: u64, size: u8) -> u64 {
        let offset = window.offset + (gpa - window.gpa);
        let emulated = self
            .msi_function(window.address)
            .and_then(|function| function.msix_mmio_read(window.bar, offset, size));
        match emulated {
            Some(value) => value,
            None => self.effects.host.device_read(window.host + offset, size),
        }
    }

    /// A guest write in trapped pages: to the table (a change is noted and
    /// released messages delivered), dropped (the PBA), or to the real
    /// device's register.
    pub(super) fn msix_page_write(&mut self, window: MsixWindow, gpa: u64, size: u8, value: u64) {
        let offset = window.offset + (gpa - window.gpa);
        let taken = self
            .msi_function(window.address)
            .is_some_and(|function| function.msix_mmio_write(window.bar, offset, size, value));
        if taken {
            self.collect_passthrough_msix(window.address);
            self.settle();
        } else {
            self.effects.host.device_write(window.host + offset, size, value);
        }
    }

    /// A read Keel performs for the guest (an element of a string
    /// instruction) that lands in an assigned function's memory BAR where
    /// it is mapped, not trapped: the real device's register, as the
    /// guest's own access would have reached it (a `rep movs` from the
    /// trapped MSI-X page runs on into the mapped part of the BAR).
    /// `None` outside every assigned BAR.
    pub fn assigned_bar_read(&mut self, gpa: u64, size: u8) -> Option<u64> {
        let host = self.assigned_bar_host(gpa, size)?;
        Some(self.effects.host.device_read(host, size))
    }

    /// The same for a write; `false` outside every assigned BAR.
    pub fn assigned_bar_write(&mut self, gpa: u64, size: u8, value: u64) -> bool {
        let Some(host) = self.assigned_bar_host(gpa, size) else {
            return false;
        };
        self.effects.host.device_write(host, size, value);
        true
    }

    /// The host-physical address of a `size`-byte access at `gpa` wholly
    /// inside a memory BAR of an assigned function, where the guest's BAR
    /// decodes now, and outside its trapped MSI-X pages: the real table
    /// and PBA are never reached this way, whatever covers their pages.
    fn assigned_bar_host(&mut self, gpa: u64, size: u8) -> Option<u64> {
        let end = gpa.checked_add(u64::from(size))?;
        if self
            .msix
            .windows
            .iter()
            .any(|window| gpa < window.gpa.saturating_add(window.len) && window.gpa < end)
        {
            return None;
        }
        for index in 0..self.passthrough.len() {
            let address = self.passthrough[index];
            let Some(function) = self.msi_function(address) else {
                continue;
            };
            for bar in 0..6 {
                let (Some(base), Some(host)) = (function.header().decoded_bar(bar), function.host_bar(bar)) else {
                    continue;
                };
                if !host.kind.is_memory() || gpa < base || end > base.saturating_add(host.size) {
                    continue;
                }
                return Some(host.address + (gpa - base));
            }
        }
        None
    }
}
