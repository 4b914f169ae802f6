//! Intel VT-d ("Intel Virtualization Technology for Directed I/O
//! Architecture Specification", cited below as "VT-d" with the section
//! numbers of revision 3.x: chapter 8 is the DMAR table, chapter 9 the
//! translation structure formats, §10.4 the register descriptions; register
//! citations also name the register, whose title later revisions keep) as
//! pure logic for the Keel hypervisor:
//!
//! - [`dmar`]: the ACPI DMAR table, parsed and validated from bytes
//!   ([`parse_dmar`] is the single entry point a fuzz target needs);
//! - [`caps`] and [`regs`]: the remapping unit's capability registers and
//!   register map, and the global command/status handshake as pure functions;
//! - [`mod@unit`]: a driver for one remapping unit written against
//!   [`RegisterAccess`], with bounded polls that end in typed errors;
//! - [`tables`]: root, context and second-level page tables;
//! - [`invalidation`]: queued-invalidation descriptors and queue arithmetic;
//! - [`irte`]: interrupt remapping table entries and remappable MSI/IOAPIC
//!   formats;
//! - [`fault`]: fault recording registers, the fault status register and
//!   the fault event interrupt's message;
//! - [`rmrr`]: which reserved memory regions a device needs identity-mapped,
//!   and whether they fit beside a domain's memory.
//!
//! Nothing here touches hardware or dereferences a pointer: registers go
//! through [`RegisterAccess`] and table memory through [`TableMemory`], both
//! implemented by the hypervisor. See `docs/iommu.md` for the enable
//! sequence and the blocking default policy.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "builder"))]
extern crate alloc;

mod bytes;
pub mod caps;
pub mod dmar;
pub mod fault;
pub mod invalidation;
pub mod irte;
mod memory;
pub mod regs;
pub mod rmrr;
mod source_id;
pub mod tables;
#[cfg(test)]
mod test_support;
pub mod unit;

pub use dmar::{parse_dmar, parse_dmar_with, Dmar, DmarError};
pub use memory::TableMemory;
pub use regs::RegisterAccess;
pub use source_id::SourceId;
pub use unit::{RemappingUnit, UnitError};
