//! Memory primitives shared by the Keel hypervisor crates: typed addresses,
//! physical ranges, the pre-heap frame allocator and the traits page-table
//! builders use to obtain and touch physical frames.
#![cfg_attr(not(test), no_std)]

mod addr;
mod frame;
mod range;
mod range_allocator;

pub use addr::{GuestPhysAddr, HostPhysAddr, HostVirtAddr, PAGE_SIZE_1G, PAGE_SIZE_2M, PAGE_SIZE_4K};
pub use frame::{FrameAllocator, IdentityPhysMemory, PhysMemory};
pub use range::PhysRange;
pub use range_allocator::{AllocError, RangeAllocator};
