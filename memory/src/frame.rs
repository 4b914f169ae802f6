//! The two capabilities page-table builders need: a source of 4 KiB frames
//! and a way to reach a frame's bytes from the hypervisor's address space.

use crate::addr::HostPhysAddr;

/// A source of 4 KiB host-physical frames.
pub trait FrameAllocator {
    /// A 4 KiB-aligned frame, not necessarily zeroed; `None` when exhausted.
    fn allocate_frame(&mut self) -> Option<HostPhysAddr>;

    /// Returns a frame obtained from `allocate_frame`.
    fn free_frame(&mut self, frame: HostPhysAddr);
}

/// Turns a host-physical frame address into a pointer the hypervisor can use.
///
/// # Safety
/// Implementors promise that for every frame handed out by the
/// [`FrameAllocator`] used alongside them, `frame_ptr(frame)` returns a
/// pointer that is 8-byte aligned and valid for reads and writes of 4096
/// bytes for as long as the frame stays allocated, and that this memory is
/// not accessed through any other Rust reference meanwhile. Page-table code
/// relies on this to dereference the pointer.
pub unsafe trait PhysMemory {
    fn frame_ptr(&self, frame: HostPhysAddr) -> *mut u8;
}

/// The hypervisor identity-maps physical memory, so a physical address is
/// also its virtual address.
#[derive(Clone, Copy, Debug)]
pub struct IdentityPhysMemory {
    _only_via_new: (),
}

impl IdentityPhysMemory {
    /// # Safety
    /// The current address space must identity-map (read/write) all physical
    /// memory that the frame allocator used alongside this value hands out.
    pub const unsafe fn new() -> Self {
        Self { _only_via_new: () }
    }
}

// SAFETY: `IdentityPhysMemory::new` is unsafe and its caller promised that
// every allocatable frame is identity-mapped, so the physical address is a
// valid, page-aligned pointer to the frame.
unsafe impl PhysMemory for IdentityPhysMemory {
    fn frame_ptr(&self, frame: HostPhysAddr) -> *mut u8 {
        core::ptr::with_exposed_provenance_mut(frame.as_u64() as usize)
    }
}
