//! Extended Page Tables (Intel SDM vol. 3C §29.3): the second-level
//! translation from guest-physical to host-physical addresses.
//!
//! The tables neither own an allocator nor assume how physical memory is
//! reached: every operation that touches tables takes a
//! [`keel_memory::FrameAllocator`] and a [`keel_memory::PhysMemory`].
//! Changing or removing a mapping that a running vCPU may have cached
//! requires an `INVEPT` by the caller before the vCPU resumes.
#![cfg_attr(not(test), no_std)]

mod ept;
mod error;
mod flags;
mod table;
#[cfg(test)]
mod test_support;

pub use ept::{EptTables, Translation, GUEST_PHYS_ADDR_LIMIT, HOST_PHYS_ADDR_LIMIT};
pub use error::EptError;
pub use flags::{EptFlags, MemoryType, PageSize};
