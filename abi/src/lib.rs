//! The contract between Keel and everything outside it: guests (CPUID leaves,
//! hypercalls, the debug console port), Dom0 tools, and the emulator-driven
//! test harness (exit ports and status codes).
//!
//! Everything here is plain data so the hypervisor, guest-side code and
//! host-side tools agree on one definition.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod cpuid;
pub mod emulator;
pub mod hypercall;
pub mod mgmt;

/// Port a guest writes bytes to for the hypervisor's debug console. Keel
/// prefixes each line with the domain's name on its own console.
pub const DEBUG_CONSOLE_PORT: u16 = 0xE9;
