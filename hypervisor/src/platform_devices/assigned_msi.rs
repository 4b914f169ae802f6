//! MSI of assigned host functions, as the guest sees it.
//!
//! An assigned function whose host has an MSI capability shows the guest an
//! emulated one (`PassthroughFunction::with_msi`, one vector). The guest's
//! address and data never reach the real device: an MSI is nothing but a
//! DMA write the device performs to the address, with the data, software
//! programmed, so a guest that programmed the device could make it write
//! anywhere in the interrupt window, to any host CPU and vector, or send
//! NMIs, SMIs and INITs to the host. Instead Keel programs the real device
//! with a host vector of its own (or an interrupt-remapping entry) and
//! translates:
//!
//! - the guest's programming, after each configuration write that changed
//!   Enable, the address or the data, is reported once
//!   ([`VirtualPlatform::take_passthrough_msi_changes`]), for the
//!   hypervisor to enable or disable the real device's MSI with its host
//!   vector;
//! - when that host vector fires, the hypervisor calls
//!   [`VirtualPlatform::passthrough_msi_fired`]: the model decides what the
//!   guest receives (MSI disabled: nothing; the vector masked: it pends in
//!   the guest-visible Pending Bits; otherwise the guest's message), and a
//!   message is checked (`GuestMsi::decode`: fixed or lowest-priority
//!   interrupts to vectors 16-255 only) before it reaches the guest's local
//!   APIC. A message the guest should not have programmed (NMI, INIT, SMI,
//!   ExtINT, a reserved vector, an address outside the interrupt window) is
//!   dropped and counted ([`VirtualPlatform::passthrough_msi_refused`]);
//!   it is never delivered as anything else;
//! - a guest write that unmasks a pending vector (or enables MSI again)
//!   releases it right after the configuration write.
//!
//! MSI is edge-triggered: nothing waits for the guest's EOI, and the host
//! vector is never masked on the guest's behalf (a masked guest vector only
//! sets its pending bit, as the device would).

use alloc::vec::Vec;

use keel_devices::passthrough::PassthroughFunction;
use keel_devices::passthrough_msi::{GuestMsi, MsiError, MsiState};
use keel_devices::pci_host::{PciAddress, PciHost};

use super::{PlatformHost, VirtualPlatform};

/// The vector Keel forwards: assigned functions are offered one.
const FORWARDED_VECTOR: u8 = 0;

/// The guest side of assigned functions' MSI: what the hypervisor must
/// apply, and what was refused.
#[derive(Debug, Default)]
pub(super) struct MsiForwarding {
    /// Functions whose guest changed their MSI message since the last
    /// take (each once; the state is read when taken, so it is the latest).
    changed: Vec<PciAddress>,
    /// Guest messages dropped because they did not decode to an interrupt
    /// the guest may send.
    refused: u64,
    /// The last of those, for the hypervisor's log.
    last_refusal: Option<(PciAddress, MsiError)>,
}

impl<H: PlatformHost> VirtualPlatform<H> {
    /// The guest changed the MSI programming (Enable, address or data) of
    /// these assigned functions since the last call: each with its latest
    /// state, once. The hypervisor enables the real device's MSI (with its
    /// own host vector) while `enabled`, disables it otherwise; the guest's
    /// address and data are for [`VirtualPlatform::passthrough_msi_fired`]
    /// to use, not for the device. The state is the current one (mask bits
    /// included), however many writes came since the last call.
    pub fn take_passthrough_msi_changes(&mut self) -> Vec<(PciAddress, MsiState)> {
        let changed = core::mem::take(&mut self.msi.changed);
        changed
            .into_iter()
            .filter_map(|address| Some((address, self.passthrough_msi_state(address)?)))
            .collect()
    }

    pub fn has_passthrough_msi_changes(&self) -> bool {
        !self.msi.changed.is_empty()
    }

    /// What the guest programmed into the MSI capability of the assigned
    /// function at `address` (`None` if it shows none).
    pub fn passthrough_msi_state(&mut self, address: PciAddress) -> Option<MsiState> {
        self.msi_function(address)?.msi_state()
    }

    /// The host vector of the assigned function at `address` fired: the
    /// guest receives its message now, later (masked: when it unmasks), or
    /// never (MSI disabled, or a message it may not send). Unknown
    /// functions and functions without MSI are ignored.
    pub fn passthrough_msi_fired(&mut self, address: PciAddress) {
        let Some(message) = self
            .msi_function(address)
            .and_then(|function| function.fire_msi(FORWARDED_VECTOR))
        else {
            return;
        };
        self.deliver_passthrough_msi(address, message);
    }

    /// How many guest messages were dropped because they were not an
    /// interrupt the guest may send (NMI, INIT, SMI, ExtINT, vectors 0-15,
    /// addresses outside 0xFEEx_xxxx, the remappable format).
    pub fn passthrough_msi_refused(&self) -> u64 {
        self.msi.refused
    }

    /// The last refused message's function and why, once (for a log line).
    pub fn take_passthrough_msi_refusal(&mut self) -> Option<(PciAddress, MsiError)> {
        self.msi.last_refusal.take()
    }

    /// After configuration writes: a change of the MSI message of the
    /// function at `address` is noted (once until taken), and pending
    /// messages the writes released are delivered.
    pub(super) fn collect_passthrough_msi(&mut self, address: PciAddress) {
        let Some(function) = self.msi_function(address) else {
            return;
        };
        if function.msi().is_none() {
            return;
        }
        let changed = function.take_msi_change().is_some();
        let released: Vec<GuestMsi> = function.msi_unmask_released().collect();
        if changed && !self.msi.changed.contains(&address) {
            self.msi.changed.push(address);
        }
        for message in released {
            self.deliver_passthrough_msi(address, message);
        }
    }

    /// A guest message to the local APIC, if it is one the guest may send.
    pub(super) fn deliver_passthrough_msi(&mut self, address: PciAddress, message: GuestMsi) {
        match message.interrupt() {
            Ok(interrupt) => {
                self.effects.interrupts.push(interrupt);
                self.settle();
            }
            Err(error) => {
                self.msi.refused = self.msi.refused.saturating_add(1);
                self.msi.last_refusal = Some((address, error));
            }
        }
    }

    pub(super) fn msi_function(&mut self, address: PciAddress) -> Option<&mut PassthroughFunction> {
        if !self.passthrough.contains(&address) {
            return None;
        }
        self.ports
            .device_as::<PciHost>(self.pci)?
            .function_as::<PassthroughFunction>(address)
    }
}
