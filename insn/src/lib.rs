//! Instruction-level support for emulated MMIO.
//!
//! When a guest touches an emulated device page (an EPT violation on a device
//! range such as the I/O APIC at `0xFEC0_0000`), the exit tells the hypervisor
//! *where* the access went but not *what* it was. This crate answers the rest:
//!
//! - [`walk`] translates the guest's linear instruction pointer to a
//!   guest-physical address through the guest's own page tables, and fetches
//!   the instruction bytes (which may straddle two unrelated guest frames).
//! - [`mmio`] decodes those bytes into a load or store of a known size and
//!   applies the x86 partial-register rules when completing a load.
//!
//! Everything here is pure logic over guest-controlled data: guest memory is
//! reached only through [`GuestMemoryRead`] (`keel-memory`'s checked guest
//! memory, so the walker reads a guest whose RAM is many host blocks the
//! same way, and a table or instruction in a hole or in device memory is an
//! error), and every malformed input yields a typed error rather than a panic.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod mmio;
pub mod string;
pub mod walk;

pub use keel_memory::{GuestMemoryError, GuestMemoryRead};
