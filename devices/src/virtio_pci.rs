//! A virtio-pci device in a guest's PCI configuration space: the type-0
//! header (identity, BAR 0 for the common/ISR/device configuration and the
//! MSI-X table, BAR 2 for queue notifications, a capability list) in front
//! of `keel-virtio`'s transport model, which answers for everything past
//! the header and for both BARs. What the guest's accesses ask the device
//! to do (a queue kick, a reset, DRIVER_OK) is collected as
//! [`keel_virtio::pci::Effect`]s for whoever serves the device.

extern crate alloc;

use alloc::vec::Vec;

use keel_virtio::pci::{
    BarKind as VirtioBarKind, Effect, VirtioPciFunction, CAPABILITIES_POINTER, MMIO_BAR, NOTIFY_BAR,
};

use crate::pci_config::{Bar, BarKind, PciConfigError, PciIdentity, Type0Header, HEADER_BYTES};
use crate::pci_host::PciFunction;
use crate::Platform;

pub struct VirtioDevice {
    header: Type0Header,
    function: VirtioPciFunction,
    effects: Vec<Effect>,
}

impl VirtioDevice {
    /// `mmio_base`: where BAR 0 starts (firmware's placement, aligned to its
    /// size); `notify_port`: BAR 2's first port; `line`: the INTx GSI.
    pub fn new(
        function: VirtioPciFunction,
        mmio_base: u64,
        notify_port: u16,
        line: u8,
    ) -> Result<Self, PciConfigError> {
        let id = function.identity();
        let identity = PciIdentity {
            vendor_id: id.vendor_id,
            device_id: id.device_id,
            class_code: id.class_code,
            revision: id.revision,
            subsystem_vendor_id: id.subsystem_vendor_id,
            subsystem_id: id.subsystem_id,
        };
        let mut header = Type0Header::new(identity)
            .with_interrupt_pin(id.interrupt_pin)?
            .with_capabilities(CAPABILITIES_POINTER);
        for layout in function.bars() {
            let (kind, address) = match layout.kind {
                VirtioBarKind::Memory32 => (BarKind::Memory32 { prefetchable: false }, mmio_base),
                VirtioBarKind::Io => (BarKind::Io, u64::from(notify_port)),
            };
            header = header.with_bar(
                usize::from(layout.index),
                Bar {
                    kind,
                    size: layout.size,
                    address,
                },
            )?;
        }
        header.write(0x3c, 1, u32::from(line));
        Ok(Self {
            header,
            function,
            effects: Vec::new(),
        })
    }

    /// Where BAR 0 decodes now (`None` while memory decoding is off).
    pub fn mmio_window(&self) -> Option<(u64, u64)> {
        let base = self.header.decoded_bar(usize::from(MMIO_BAR))?;
        Some((base, self.header.bar(usize::from(MMIO_BAR))?.size))
    }

    /// Where BAR 2 decodes now (`None` while I/O decoding is off).
    pub fn notify_ports(&self) -> Option<(u64, u64)> {
        let base = self.header.decoded_bar(usize::from(NOTIFY_BAR))?;
        Some((base, self.header.bar(usize::from(NOTIFY_BAR))?.size))
    }

    pub fn mmio_read(&mut self, offset: u64, size: u8) -> u64 {
        self.function.mmio_read(offset, size)
    }

    pub fn mmio_write(&mut self, offset: u64, size: u8, value: u64) {
        let effect = self.function.mmio_write(offset, size, value);
        self.record(effect);
    }

    pub fn notify_write(&mut self, offset: u64, size: u8, value: u32) {
        let effect = self.function.notify_write(offset, size, value);
        self.record(effect);
    }

    fn record(&mut self, effect: Effect) {
        if effect != Effect::None {
            self.effects.push(effect);
        }
    }

    /// Moves what the guest asked for since the last call to the end of
    /// `out`, tagged with `tag`; both lists keep their capacity (the kick
    /// path allocates nothing once they have grown).
    pub fn drain_effects_into<T: Copy>(&mut self, tag: T, out: &mut Vec<(T, Effect)>) {
        out.extend(self.effects.drain(..).map(|effect| (tag, effect)));
    }

    pub fn function_mut(&mut self) -> &mut VirtioPciFunction {
        &mut self.function
    }

    pub fn header(&self) -> &Type0Header {
        &self.header
    }

    /// Brings the header's Interrupt Status up to the transport's INTx
    /// level (ISR non-zero, MSI-X off) and answers whether the pin is
    /// asserted (Interrupt Status set, Interrupt Disable clear).
    pub fn sync_intx(&mut self) -> bool {
        self.header.set_interrupt_status(self.function.intx_level());
        self.header.intx_asserted()
    }
}

impl PciFunction for VirtioDevice {
    fn config_read(&mut self, offset: u16, size: u8) -> u32 {
        if offset < HEADER_BYTES {
            self.header.read(offset, size)
        } else {
            self.function.config_read(offset, size)
        }
    }

    fn config_write(&mut self, offset: u16, size: u8, value: u32, _platform: &mut dyn Platform) {
        if offset < HEADER_BYTES {
            self.header.write(offset, size, value);
        } else {
            let effect = self.function.config_write(offset, size, value);
            self.record(effect);
        }
    }
}
