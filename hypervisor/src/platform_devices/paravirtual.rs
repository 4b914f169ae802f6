//! The platform's side of paravirtual devices with backends in Dom0 (ABI
//! 1.3): in a DomU, the virtio-pci functions by index (attach order) for
//! the backend's state queries and completions; in Dom0, the management
//! function's memory window and its notification slots.

use keel_abi::mgmt::virtio::{control_bit, kick_bit, MAX_DEVICES};
use keel_devices::mgmt_pci::MgmtFunction;
use keel_devices::pci_host::PciAddress;
use keel_virtio::pci::{Effect, Interrupt as VirtioInterrupt, VirtioPciFunction};

use super::{LineSink, PlatformHost, VirtualPlatform};

impl<H: PlatformHost> VirtualPlatform<H> {
    /// Whether the guest's accesses left work for paravirtual backends
    /// (checked after every port and MMIO exit: one length compare).
    pub fn has_virtio_effects(&self) -> bool {
        !self.virtio_effects.is_empty()
    }

    /// What the guest's accesses asked of its paravirtual devices, as
    /// notification bits for their backend (ABI 1.3: kick bit `d` for a
    /// queue kick of device `d`, control bit `16 + d` for a transport
    /// change). Without a backend (`has_backend` false) a reset completes
    /// at once: nothing else can be using the queues. Effects no backend
    /// needs (configuration writes, released interrupts) are dropped. The
    /// list keeps its capacity: a kick allocates nothing.
    pub fn take_virtio_notifications(&mut self, has_backend: bool) -> u32 {
        let mut bits = 0;
        for index in 0..self.virtio_effects.len() {
            let (address, effect) = self.virtio_effects[index];
            let Some(device) = self.virtio_index(address).filter(|&device| device < MAX_DEVICES) else {
                continue;
            };
            match effect {
                Effect::QueueNotify(_) => bits |= kick_bit(device),
                Effect::None | Effect::DeviceConfigWrite { .. } | Effect::InterruptsReleased => {}
                Effect::Reset if !has_backend => {
                    if let Some(transport) = self.virtio_transport(device) {
                        transport.complete_reset();
                    }
                }
                Effect::QueueEnabled(_) | Effect::StatusChanged { .. } | Effect::Reset | Effect::NeedsReset(_) => {
                    bits |= control_bit(device);
                }
            }
        }
        self.virtio_effects.clear();
        bits
    }

    /// How many paravirtual devices the domain has.
    pub fn virtio_count(&self) -> usize {
        self.virtio.len()
    }

    /// The index (attach order) of the paravirtual device at `address`.
    pub fn virtio_index(&self, address: PciAddress) -> Option<usize> {
        self.virtio.iter().position(|slot| slot.address == address)
    }

    /// The transport of paravirtual device `index`.
    pub fn virtio_transport(&mut self, index: usize) -> Option<&mut VirtioPciFunction> {
        let address = self.virtio.get(index)?.address;
        Some(self.virtio_device(address)?.function_mut())
    }

    /// Queue `queue` of device `index` has used buffers: its interrupt, if
    /// the driver wants one.
    pub fn signal_virtio(&mut self, index: usize, queue: u16) -> bool {
        match self.virtio.get(index) {
            Some(slot) => {
                let address = slot.address;
                self.signal_virtio_queue(address, queue)
            }
            None => false,
        }
    }

    /// The backend found device `index`'s queues broken: DEVICE_NEEDS_RESET
    /// and the configuration interrupt the driver then expects.
    pub fn virtio_needs_reset(&mut self, index: usize) {
        let Some(address) = self.virtio.get(index).map(|slot| slot.address) else {
            return;
        };
        let interrupt = self
            .virtio_device(address)
            .and_then(|device| device.function_mut().set_needs_reset());
        if let Some(interrupt) = interrupt {
            self.deliver_virtio_interrupt(address, interrupt);
        }
    }

    /// Delivers an interrupt a virtio transport returned: its MSI-X
    /// message, or its INTx line.
    pub(super) fn deliver_virtio_interrupt(&mut self, address: PciAddress, interrupt: VirtioInterrupt) {
        match interrupt {
            VirtioInterrupt::Msi(message) => self.deliver_msi(message),
            VirtioInterrupt::Intx => self.sync_virtio_intx(address),
        }
    }

    /// Drives the device's INTx line to its level (after any access: an
    /// ISR read lowers it, Interrupt Disable masks it).
    pub(super) fn sync_virtio_intx(&mut self, address: PciAddress) {
        let Some(index) = self.virtio_index(address) else {
            return;
        };
        let Some((level, gsi)) = self
            .virtio_device(address)
            .map(|device| (device.sync_intx(), u32::from(device.header().interrupt_line())))
        else {
            return;
        };
        if self.virtio[index].intx != level {
            self.virtio[index].intx = level;
            self.virtio[index].gsi = gsi;
            // A slot's line may be shared with other functions' (by slot
            // number modulo 4): it stays up while any of them asserts it.
            let shared = level || self.virtio_asserts(gsi) || self.passthrough_asserts(gsi);
            self.effects.irq_lines.push((gsi, shared));
            self.settle();
        }
    }

    /// Whether a paravirtual device asserts guest GSI `gsi`.
    pub(super) fn virtio_asserts(&self, gsi: u32) -> bool {
        self.virtio.iter().any(|slot| slot.intx && slot.gsi == gsi)
    }

    /// The interrupt a transport effect carries (a misconfiguration's
    /// configuration-change interrupt), delivered at once.
    pub(super) fn deliver_effect_interrupt(&mut self, address: PciAddress, effect: &Effect) {
        if let Effect::NeedsReset(Some(interrupt)) = *effect {
            self.deliver_virtio_interrupt(address, interrupt);
        }
    }

    /// Where Dom0's memory window decodes now (`None` while it does not,
    /// or outside Dom0).
    pub fn management_window(&self) -> Option<u64> {
        self.management?.window
    }

    /// Runs `action` on the management function with a sink for its INTx
    /// line, then settles the line.
    fn with_management(&mut self, action: impl FnOnce(&mut MgmtFunction, &mut LineSink<'_>)) {
        let mut lines = core::mem::take(&mut self.effects.irq_lines);
        if let Some(function) = self.management_function() {
            let mut sink = LineSink(&mut lines);
            action(function, &mut sink);
        }
        self.effects.irq_lines = lines;
        self.settle();
    }

    /// Adds `bits` to window slot `slot`'s notifications (Dom0 only).
    pub fn notify_backend(&mut self, slot: usize, bits: u32) {
        self.with_management(|function, sink| function.notify(slot, bits, sink));
    }

    /// Forgets window slot `slot`'s notifications (its domain is gone).
    pub fn clear_backend_slot(&mut self, slot: usize) {
        self.with_management(|function, sink| function.clear_slot(slot, sink));
    }
}
