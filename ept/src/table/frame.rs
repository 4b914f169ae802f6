//! The only code that dereferences pointers obtained from [`PhysMemory`].

use keel_memory::{FrameAllocator, HostPhysAddr, PhysMemory};

use super::level::{EntryIndex, ENTRIES_PER_TABLE};
use super::ADDRESS_MASK;

/// A 4 KiB frame holding one table, allocated by the allocator used with
/// the tables that own it.
///
/// Invariant: a `TableFrame` only ever comes from [`TableFrame::allocate`] or
/// from a pointer entry written with [`TableFrame::pointer_entry`], and is
/// used only while that frame stays allocated to the same tables. With the
/// [`PhysMemory`] contract this makes every entry access below valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableFrame(HostPhysAddr);

impl TableFrame {
    /// A fresh table with every entry zero (not present).
    pub(crate) fn allocate(alloc: &mut impl FrameAllocator, mem: &impl PhysMemory) -> Option<Self> {
        let frame = Self(alloc.allocate_frame()?);
        let table = frame.entry_ptr(mem, EntryIndex::FIRST);
        // SAFETY: the frame was just allocated for these tables, and
        // `PhysMemory` guarantees its pointer is 8-byte aligned and valid for
        // writes of 4096 bytes = ENTRIES_PER_TABLE u64s.
        unsafe { core::ptr::write_bytes(table, 0, ENTRIES_PER_TABLE) };
        Some(frame)
    }

    /// The table that `entry` (a present, non-leaf entry) points to.
    pub(crate) fn from_pointer_entry(entry: u64) -> Self {
        Self(HostPhysAddr::new(entry & ADDRESS_MASK))
    }

    pub(crate) fn pointer_entry(self, flags: u64) -> u64 {
        self.0.as_u64() | flags
    }

    pub(crate) fn addr(self) -> HostPhysAddr {
        self.0
    }

    pub(crate) fn free(self, alloc: &mut impl FrameAllocator) {
        alloc.free_frame(self.0);
    }

    pub(crate) fn read(self, mem: &impl PhysMemory, index: EntryIndex) -> u64 {
        let entry = self.entry_ptr(mem, index);
        // SAFETY: by the type invariant the frame is a live table of ours;
        // `PhysMemory` makes its pointer aligned and valid for 4096 bytes, and
        // `EntryIndex` is below 512 so the entry lies inside the frame.
        // Volatile because the processor reads and writes (A/D bits) entries
        // behind the compiler's back.
        unsafe { entry.read_volatile() }
    }

    pub(crate) fn write(self, mem: &impl PhysMemory, index: EntryIndex, value: u64) {
        let entry = self.entry_ptr(mem, index);
        // SAFETY: as in `read`; the tables own the frame exclusively, so no
        // Rust reference to it exists.
        unsafe { entry.write_volatile(value) }
    }

    fn entry_ptr(self, mem: &impl PhysMemory, index: EntryIndex) -> *mut u64 {
        mem.frame_ptr(self.0).cast::<u64>().wrapping_add(index.get())
    }
}
