//! Memory primitives shared by the Keel hypervisor crates: typed addresses,
//! physical ranges, the pre-heap frame allocator, the traits page-table
//! builders use to obtain and touch physical frames, and guest-physical
//! memory behind one checked interface ([`GuestMemory`], [`GuestMemoryMap`]).
//!
//! `unsafe` is confined to `frame.rs` (the identity map), the copies in
//! `guest/map.rs` (through [`PhysMemory`]) and the test arena.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod addr;
mod frame;
mod guest;
mod range;
mod range_allocator;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use addr::{GuestPhysAddr, HostPhysAddr, HostVirtAddr, PAGE_SIZE_1G, PAGE_SIZE_2M, PAGE_SIZE_4K};
pub use frame::{FrameAllocator, IdentityPhysMemory, PhysMemory};
pub use guest::{
    ChunkPlan, GuestMemory, GuestMemoryError, GuestMemoryExt, GuestMemoryMap, GuestMemoryRead, GuestObject, MapError,
    MemoryKind, MemoryRegion,
};
pub use range::PhysRange;
pub use range_allocator::{AllocError, RangeAllocator};
