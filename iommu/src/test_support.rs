//! Host-side stand-ins for physical memory and a frame allocator.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use keel_memory::{FrameAllocator, HostPhysAddr, PAGE_SIZE_4K};

use crate::TableMemory;

/// Words never written read as this, so tests notice missing zeroing.
pub(crate) const POISON: u64 = 0xdead_beef_dead_beef;
/// Where [`FakeFrames`] hands out frames from.
pub(crate) const FRAME_BASE: u64 = 0x40_0000_0000;

/// Sparse physical memory: 8-byte words by address.
#[derive(Debug, Default)]
pub(crate) struct FakeMemory {
    words: BTreeMap<u64, u64>,
    pub(crate) writes: usize,
}

impl FakeMemory {
    pub(crate) fn write_u32(&mut self, addr: u64, value: u32) {
        let aligned = HostPhysAddr::new(addr & !7);
        let shift = (addr & 4) * 8;
        let word = self.read_u64(aligned) & !(0xffff_ffff << shift) | u64::from(value) << shift;
        self.write_u64(aligned, word);
    }
}

impl TableMemory for FakeMemory {
    fn read_u64(&self, addr: HostPhysAddr) -> u64 {
        assert!(addr.is_aligned(8), "unaligned read at {addr:?}");
        self.words.get(&addr.as_u64()).copied().unwrap_or(POISON)
    }

    fn write_u64(&mut self, addr: HostPhysAddr, value: u64) {
        assert!(addr.is_aligned(8), "unaligned write at {addr:?}");
        self.writes += 1;
        self.words.insert(addr.as_u64(), value);
    }
}

/// One [`FakeMemory`] shared between the code under test and a fake
/// remapping unit that reads descriptors and writes wait statuses.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedMemory(pub(crate) Rc<RefCell<FakeMemory>>);

impl TableMemory for SharedMemory {
    fn read_u64(&self, addr: HostPhysAddr) -> u64 {
        self.0.borrow().read_u64(addr)
    }

    fn write_u64(&mut self, addr: HostPhysAddr, value: u64) {
        self.0.borrow_mut().write_u64(addr, value);
    }
}

/// Hands out 4 KiB frames upwards from [`FRAME_BASE`], counts the ones
/// outstanding and can be told to run dry.
#[derive(Debug)]
pub(crate) struct FakeFrames {
    next: u64,
    outstanding: BTreeSet<u64>,
    allocations_left: usize,
}

impl Default for FakeFrames {
    fn default() -> Self {
        Self {
            next: FRAME_BASE,
            outstanding: BTreeSet::new(),
            allocations_left: usize::MAX,
        }
    }
}

impl FakeFrames {
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    pub(crate) fn limit_allocations(&mut self, count: usize) {
        self.allocations_left = count;
    }
}

impl FrameAllocator for FakeFrames {
    fn allocate_frame(&mut self) -> Option<HostPhysAddr> {
        if self.allocations_left == 0 {
            return None;
        }
        self.allocations_left -= 1;
        let frame = self.next;
        self.next += PAGE_SIZE_4K;
        self.outstanding.insert(frame);
        Some(HostPhysAddr::new(frame))
    }

    fn free_frame(&mut self, frame: HostPhysAddr) {
        assert!(
            self.outstanding.remove(&frame.as_u64()),
            "freed {frame:?} twice or never allocated"
        );
    }
}
