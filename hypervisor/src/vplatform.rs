//! The virtual platform of a Linux domain, wired to this machine: device
//! timers read the real TSC and the console domain's serial output goes to
//! Keel's console. The routing logic is `keel_hypervisor::platform_devices`.

pub use keel_hypervisor::platform_devices::{COM1_BASE, COM1_IRQ, IOAPIC_ID, LOCAL_APIC_BASE, PCI_ROOT, POWER_BUTTON};

use keel_hypervisor::console_ring::ConsoleRing;
use keel_hypervisor::platform_devices::PlatformHost;

/// The machine Keel runs on, as one domain's devices see it: the real TSC,
/// and where its serial output goes.
pub struct Host {
    /// `None`: the console domain (Dom0), whose output goes to Keel's
    /// console; otherwise the domain's console ring, read by `keel console`.
    pub console_ring: Option<ConsoleRing>,
    /// The domain's TSC offset: its devices keep the guest's time.
    pub tsc_offset: u64,
}

/// How much of a DomU's console output Keel keeps while nobody reads it.
pub const CONSOLE_RING_BYTES: usize = 64 * 1024;

impl Host {
    pub fn console_domain(tsc_offset: u64) -> Self {
        Self {
            console_ring: None,
            tsc_offset,
        }
    }

    pub fn with_console_ring(tsc_offset: u64) -> Self {
        Self {
            console_ring: Some(ConsoleRing::new(CONSOLE_RING_BYTES)),
            tsc_offset,
        }
    }
}

impl PlatformHost for Host {
    fn now_tsc(&self) -> u64 {
        crate::arch::tsc::read().wrapping_add(self.tsc_offset)
    }

    fn console_output(&mut self, byte: u8) {
        match self.console_ring.as_mut() {
            Some(ring) => ring.push(byte),
            None => crate::console::write_guest_bytes(&[byte]),
        }
    }

    fn device_read(&mut self, address: u64, size: u8) -> u64 {
        crate::arch::phys::device_read(address, size).unwrap_or(keel_devices::all_ones(size))
    }

    fn device_write(&mut self, address: u64, size: u8, value: u64) {
        crate::arch::phys::device_write(address, size, value);
    }
}

pub type VirtualPlatform = keel_hypervisor::platform_devices::VirtualPlatform<Host>;
