//! A heap-backed stand-in for physical memory: an arena of frames at fake
//! host-physical addresses, and an allocator over it that counts frames and
//! can be told to run dry.

use std::collections::BTreeSet;

use keel_memory::{FrameAllocator, HostPhysAddr, PhysMemory, PAGE_SIZE_4K};

/// Far from the data addresses tests map, so table and data frames never mix.
pub(crate) const ARENA_BASE: u64 = 0x40_0000_0000;
const WORDS_PER_FRAME: usize = 512;
/// Fresh frames are filled with this so tests notice missing zeroing.
const POISON: u64 = 0xdead_beef_dead_beef;

pub(crate) struct TestMemory {
    words: *mut u64,
    frames: usize,
}

impl TestMemory {
    fn new(frames: usize) -> Self {
        let words = vec![POISON; frames * WORDS_PER_FRAME].into_boxed_slice();
        Self {
            words: Box::into_raw(words).cast::<u64>(),
            frames,
        }
    }
}

impl Drop for TestMemory {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.words, self.frames * WORDS_PER_FRAME);
        // SAFETY: `words` came from `Box::into_raw` of a slice of exactly this
        // length in `new`, and is released only here.
        drop(unsafe { Box::from_raw(slice) });
    }
}

// SAFETY: every frame the paired `TestAllocator` hands out is a distinct
// 4096-byte, 8-byte-aligned chunk of the live `words` allocation; other
// addresses panic instead of producing a pointer.
unsafe impl PhysMemory for TestMemory {
    fn frame_ptr(&self, frame: HostPhysAddr) -> *mut u8 {
        let offset = frame.as_u64().checked_sub(ARENA_BASE).expect("frame below the arena");
        let index = usize::try_from(offset / PAGE_SIZE_4K).expect("frame index fits usize");
        assert!(
            frame.is_aligned(PAGE_SIZE_4K) && index < self.frames,
            "not an arena frame: {frame}"
        );
        self.words.wrapping_add(index * WORDS_PER_FRAME).cast::<u8>()
    }
}

pub(crate) struct TestAllocator {
    free: Vec<HostPhysAddr>,
    outstanding: BTreeSet<HostPhysAddr>,
    allocations_left: usize,
}

impl TestAllocator {
    /// Allows only `count` more successful allocations.
    pub(crate) fn limit_allocations(&mut self, count: usize) {
        self.allocations_left = count;
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.len()
    }
}

impl FrameAllocator for TestAllocator {
    fn allocate_frame(&mut self) -> Option<HostPhysAddr> {
        if self.allocations_left == 0 {
            return None;
        }
        let frame = self.free.pop()?;
        self.allocations_left -= 1;
        self.outstanding.insert(frame);
        Some(frame)
    }

    fn free_frame(&mut self, frame: HostPhysAddr) {
        assert!(
            self.outstanding.remove(&frame),
            "freed a frame that is not allocated: {frame}"
        );
        self.free.push(frame);
    }
}

pub(crate) fn arena(frames: usize) -> (TestAllocator, TestMemory) {
    let free = (0..frames as u64)
        .rev()
        .map(|i| HostPhysAddr::new(ARENA_BASE + i * PAGE_SIZE_4K))
        .collect();
    let alloc = TestAllocator {
        free,
        outstanding: BTreeSet::new(),
        allocations_left: usize::MAX,
    };
    (alloc, TestMemory::new(frames))
}
