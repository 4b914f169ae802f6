//! Host memory for tests: blocks on the heap at made-up host-physical
//! addresses, reachable through [`PhysMemory`] like real frames, so code
//! built on [`GuestMemoryMap`](crate::GuestMemoryMap) can be tested without
//! a machine. Enabled by the `test-support` feature.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::addr::{HostPhysAddr, PAGE_SIZE_4K};
use crate::frame::PhysMemory;

/// The first block ends here; later blocks go below the previous one.
const ARENA_TOP: u64 = 0x80_0000_0000;
/// Left free between blocks, so no two blocks are host-contiguous.
const GAP: u64 = 0x20_0000;
const WORD: usize = core::mem::size_of::<u64>();

struct Block {
    base: HostPhysAddr,
    len: u64,
    /// From `Box::into_raw` of a `[u64]` of `len / 8` words; freed on drop.
    words: *mut u64,
}

/// Zeroed heap blocks posing as host memory.
#[derive(Default)]
pub struct ArenaMemory {
    blocks: Vec<Block>,
}

impl ArenaMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new zeroed block of `len` bytes (a non-zero multiple of 4 KiB) and
    /// its fake host-physical address; `None` for a bad length.
    pub fn add_block(&mut self, len: u64) -> Option<HostPhysAddr> {
        if len == 0 || !len.is_multiple_of(PAGE_SIZE_4K) {
            return None;
        }
        let below = self.blocks.last().map_or(ARENA_TOP, |block| block.base.as_u64() - GAP);
        let base = HostPhysAddr::new(below.checked_sub(len)?).align_down(PAGE_SIZE_4K);
        let words = alloc::vec![0u64; usize::try_from(len).ok()? / WORD].into_boxed_slice();
        self.blocks.push(Block {
            base,
            len,
            words: Box::into_raw(words).cast::<u64>(),
        });
        Some(base)
    }
}

impl Drop for ArenaMemory {
    fn drop(&mut self) {
        for block in &self.blocks {
            let words = core::ptr::slice_from_raw_parts_mut(block.words, block.len as usize / WORD);
            // SAFETY: `words` came from `Box::into_raw` of a slice of exactly
            // this length in `add_block` and is released only here.
            drop(unsafe { Box::from_raw(words) });
        }
    }
}

// SAFETY: a frame inside a block maps to a distinct, 8-byte-aligned 4 KiB
// piece of that block's live allocation (kept until the arena drops); any
// other address panics instead of producing a pointer.
unsafe impl PhysMemory for ArenaMemory {
    fn frame_ptr(&self, frame: HostPhysAddr) -> *mut u8 {
        assert!(frame.is_aligned(PAGE_SIZE_4K), "not a frame address: {frame}");
        let block = self
            .blocks
            .iter()
            .find(|block| block.base <= frame && frame.as_u64() < block.base.as_u64() + block.len)
            .unwrap_or_else(|| panic!("{frame} is not in the test arena"));
        let offset = (frame.as_u64() - block.base.as_u64()) as usize;
        block.words.wrapping_add(offset / WORD).cast::<u8>()
    }
}
