//! Host-testable logic of the Keel hypervisor binary: the binary's own
//! modules (see `main.rs`) touch the hardware and call into these.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod cmdline;
pub mod console_guard;
pub mod console_line;
pub mod console_ring;
pub mod cpuid_policy;
pub mod cr_policy;
pub mod host_irq;
pub mod host_probe;
pub mod management;
pub mod platform_devices;
pub mod speculation;
pub mod tx_ring;
pub mod wallclock;
