//! The virtual platform of a Linux domain, wired to this machine: device
//! timers read the real TSC and the console domain's serial output goes to
//! Keel's console. The routing logic is `keel_hypervisor::platform_devices`.

pub use keel_hypervisor::platform_devices::{COM1_BASE, COM1_IRQ, IOAPIC_ID, LOCAL_APIC_BASE};

use keel_hypervisor::platform_devices::PlatformHost;

/// The machine Keel runs on, as the platform's devices see it.
pub struct Host;

impl PlatformHost for Host {
    fn now_tsc(&self) -> u64 {
        crate::arch::tsc::read()
    }

    fn console_output(&mut self, byte: u8) {
        crate::console::write_bytes(&[byte]);
    }
}

pub type VirtualPlatform = keel_hypervisor::platform_devices::VirtualPlatform<Host>;
