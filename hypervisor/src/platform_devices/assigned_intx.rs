//! Level-triggered INTx of assigned host functions, as the guest sees it.
//!
//! A PCI device holds its INTx line asserted until its driver clears the
//! cause, so Keel cannot simply pass each host interrupt on as an edge: the
//! host input is masked when it fires (by Keel's interrupt handler, before
//! its EOI), and the guest's line goes up. When the guest acknowledges the
//! interrupt (an EOI of the vector its I/O APIC pin uses), Keel drops the
//! guest's line and asks the hypervisor to unmask the host input again
//! ([`VirtualPlatform::take_intx_resamples`]): if the device still asserts
//! its line (the driver has not cleared the cause, or a new one came), it
//! fires again at once. This is the "resample" scheme of KVM's and VFIO's
//! INTx forwarding.
//!
//! The guest's Interrupt Disable (command bit 10) keeps the guest's line
//! low; the host input then stays masked until the guest clears the bit,
//! when Keel resamples instead of replaying a stale level (the driver may
//! have cleared the cause meanwhile). Interrupt Status shows "fired, not
//! resampled" (`PassthroughFunction::intx_pending`).
//!
//! A guest that never acknowledges only keeps its own device's input
//! masked. Lines are shared by slot (`PciRootConfig::intx_gsi`): the level
//! of a guest GSI is the OR of every source on it, paravirtual devices'
//! included.

use alloc::vec::Vec;

use keel_devices::passthrough::PassthroughFunction;
use keel_devices::pci_host::{PciAddress, PciHost};

use super::{PlatformError, PlatformHost, VirtualPlatform};

/// One assigned function whose INTx Keel forwards level-triggered.
#[derive(Clone, Copy, Debug)]
pub(super) struct IntxSource {
    address: PciAddress,
    gsi: u32,
    /// The level this source drives on the guest's line.
    asserted: bool,
}

impl<H: PlatformHost> VirtualPlatform<H> {
    /// Forwards the INTx of the assigned function at `address` level-
    /// triggered; returns the guest GSI its pin is routed to.
    pub fn forward_passthrough_intx(&mut self, address: PciAddress) -> Result<u32, PlatformError> {
        if !self.passthrough.contains(&address) {
            return Err(PlatformError::Passthrough("no assigned function there"));
        }
        let pin = self
            .passthrough_function(address)
            .map(|function| function.header().interrupt_pin())
            .ok_or(PlatformError::Passthrough("no assigned function there"))?;
        let gsi = super::PCI_ROOT
            .intx_gsi(address.device(), pin)
            .ok_or(PlatformError::Passthrough("no INTx route for the slot"))?;
        if !self.intx_sources.iter().any(|source| source.address == address) {
            self.intx_sources.push(IntxSource {
                address,
                gsi,
                asserted: false,
            });
        }
        Ok(gsi)
    }

    fn passthrough_function(&mut self, address: PciAddress) -> Option<&mut PassthroughFunction> {
        self.ports
            .device_as::<PciHost>(self.pci)?
            .function_as::<PassthroughFunction>(address)
    }

    /// The host input of the function at `address` fired (and is masked
    /// now): the guest's line goes up unless the guest disabled INTx.
    pub fn passthrough_intx_fired(&mut self, address: PciAddress) {
        let Some(index) = self.intx_sources.iter().position(|source| source.address == address) else {
            return;
        };
        let Some(function) = self.passthrough_function(address) else {
            return;
        };
        function.set_intx_pending(true);
        let assert = !function.intx_disabled();
        if assert && !self.intx_sources[index].asserted {
            self.intx_sources[index].asserted = true;
            let gsi = self.intx_sources[index].gsi;
            self.drive_intx_line(gsi);
        }
    }

    /// Assigned functions whose host input Keel must unmask now, because
    /// the guest acknowledged their interrupt or re-enabled INTx.
    pub fn take_intx_resamples(&mut self) -> Vec<PciAddress> {
        core::mem::take(&mut self.intx_resamples)
    }

    pub fn has_intx_resamples(&self) -> bool {
        !self.intx_resamples.is_empty()
    }

    /// An EOI of `vector` at the local APIC: sources asserting a line whose
    /// I/O APIC pin uses that vector are acknowledged (whatever the pin's
    /// trigger mode, so a guest that programs it edge-triggered does not
    /// leave its device masked for good). Runs before the I/O APIC sees the
    /// EOI, so it does not re-deliver a level Keel is about to resample.
    pub(super) fn acknowledge_intx(&mut self, vector: u8) {
        for index in 0..self.intx_sources.len() {
            let source = self.intx_sources[index];
            if !source.asserted || self.ioapic.vector_of(source.gsi) != Some(vector) {
                continue;
            }
            self.resample(index);
            self.drive_intx_line(source.gsi);
        }
    }

    /// After the guest wrote a command register: Interrupt Disable set
    /// drops the guest's line; cleared while an interrupt is pending,
    /// resamples the host input.
    pub(super) fn sync_intx_after_command(&mut self) {
        for index in 0..self.intx_sources.len() {
            let source = self.intx_sources[index];
            let Some(function) = self.passthrough_function(source.address) else {
                continue;
            };
            let (pending, disabled) = (function.intx_pending(), function.intx_disabled());
            if disabled && source.asserted {
                self.intx_sources[index].asserted = false;
                self.drive_intx_line(source.gsi);
            } else if pending && !disabled && !source.asserted {
                self.resample(index);
            }
        }
    }

    /// Forgets the pending interrupt of source `index` and asks for its
    /// host input to be unmasked.
    fn resample(&mut self, index: usize) {
        let address = self.intx_sources[index].address;
        self.intx_sources[index].asserted = false;
        if let Some(function) = self.passthrough_function(address) {
            function.set_intx_pending(false);
        }
        if !self.intx_resamples.contains(&address) {
            self.intx_resamples.push(address);
        }
    }

    /// Whether an assigned function asserts guest GSI `gsi`.
    pub(super) fn passthrough_asserts(&self, gsi: u32) -> bool {
        self.intx_sources
            .iter()
            .any(|source| source.gsi == gsi && source.asserted)
    }

    /// Drives guest GSI `gsi` to the OR of its sources.
    fn drive_intx_line(&mut self, gsi: u32) {
        let level = self.passthrough_asserts(gsi) || self.virtio_asserts(gsi);
        self.effects.irq_lines.push((gsi, level));
        self.settle();
    }
}
