//! Keel's device models. Every model is pure logic: it sees register
//! accesses from a guest (which it treats as hostile) and asks the outside
//! world for effects only through [`Platform`], so the hypervisor wires it to
//! hardware and the tests wire it to a recorder.
//!
//! Port-I/O and MMIO devices implement [`Device`]; a [`bus::DeviceBus`]-style
//! range map routes accesses to them. The local APIC is per vCPU and reached
//! through its xAPIC MMIO page or x2APIC MSRs, so it has its own interface in [`lapic`].
#![cfg_attr(not(test), no_std)]

/// Offset of an access within a device's registered range.
pub type Offset = u64;

/// Power actions a guest can request (ACPI, reset registers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    PowerOff,
    Reset,
}

/// An interrupt message: what an I/O APIC redirection entry or an MSI turns
/// a device interrupt into, for delivery to a local APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptMessage {
    pub vector: u8,
    pub destination: u32,
    pub level_triggered: bool,
}

/// What device models may ask of the hypervisor.
pub trait Platform {
    /// Drives a global system interrupt line (I/O APIC pin) high or low.
    fn set_irq_line(&mut self, gsi: u32, asserted: bool);
    /// Delivers an interrupt to a local APIC.
    fn deliver_interrupt(&mut self, message: InterruptMessage);
    /// A byte the guest wrote to a console device.
    fn console_output(&mut self, byte: u8);
    /// The guest asked to power off or reset the machine.
    fn power(&mut self, action: PowerAction);
    /// Guest time in nanoseconds since the domain started.
    fn now_ns(&self) -> u64;
}

/// A port-I/O or MMIO device model. `size` is 1, 2, 4 or 8 bytes; offsets are
/// relative to the start of the range the device was registered at. A device
/// never panics on any offset/size/value a guest can produce: unknown
/// registers read as all ones (or zero where the hardware does) and ignore writes.
///
/// Devices are `Any` so the owner of a [`bus::DeviceBus`] can reach a
/// registered device's own interface ([`bus::DeviceBus::device_as`]).
pub trait Device: core::any::Any {
    fn name(&self) -> &'static str;
    fn read(&mut self, offset: Offset, size: u8, platform: &mut dyn Platform) -> u64;
    fn write(&mut self, offset: Offset, size: u8, value: u64, platform: &mut dyn Platform);
}

/// All-ones for an access of `size` bytes: what an empty bus returns.
pub const fn all_ones(size: u8) -> u64 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

pub mod acpi_pm;
pub mod bus;
pub mod cmos_rtc;
pub mod ioapic;
pub mod lapic;
pub mod mgmt_pci;
pub mod passthrough;
pub mod passthrough_msi;
pub mod pci_config;
pub mod pci_host;
pub mod power_button;
pub mod reset;
#[cfg(test)]
pub(crate) mod testing;
pub mod uart16550;
pub mod virtio_pci;
