//! Test support: guest memory in a `Vec` and a minimal driver that lays out
//! a split virtqueue in it, so tests can write rings (good and hostile) the
//! way a frontend would.

use std::cell::{Cell, RefCell};
use std::vec;
use std::vec::Vec;

use crate::memory::{GuestMemory, MemoryError};
use crate::queue::{QueueConfig, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};

pub const MEMORY_SIZE: usize = 0x2_0000;
pub const DESC_TABLE: u64 = 0x1000;
pub const AVAIL_RING: u64 = 0x3000;
pub const USED_RING: u64 = 0x4000;
/// Where tests put buffers and indirect tables.
pub const DATA: u64 = 0x8000;

/// Guest memory at guest-physical 0.
#[derive(Clone, Debug)]
pub struct VecMemory {
    pub bytes: Vec<u8>,
}

impl VecMemory {
    pub fn new(len: usize) -> Self {
        Self { bytes: vec![0; len] }
    }

    fn span(&self, gpa: u64, len: usize) -> Result<core::ops::Range<usize>, MemoryError> {
        let error = MemoryError { gpa, len: len as u64 };
        let start = usize::try_from(gpa).map_err(|_| error)?;
        let end = start.checked_add(len).ok_or(error)?;
        if end > self.bytes.len() {
            return Err(error);
        }
        Ok(start..end)
    }

    pub fn slice(&self, gpa: u64, len: usize) -> &[u8] {
        &self.bytes[gpa as usize..gpa as usize + len]
    }
}

impl GuestMemory for VecMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let span = self.span(gpa, buf.len())?;
        buf.copy_from_slice(&self.bytes[span]);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        let span = self.span(gpa, data.len())?;
        self.bytes[span].copy_from_slice(data);
        Ok(())
    }
}

/// Memory that rewrites itself after a given number of reads: a driver on
/// another CPU changing the ring while the device walks it.
#[derive(Debug)]
pub struct MutatingMemory {
    pub inner: RefCell<VecMemory>,
    pub reads: Cell<usize>,
    /// After this many reads, apply `patches` (once).
    pub trigger: usize,
    pub patches: Vec<(u64, Vec<u8>)>,
}

impl GuestMemory for MutatingMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let result = self.inner.borrow().read(gpa, buf);
        let reads = self.reads.get() + 1;
        self.reads.set(reads);
        if reads == self.trigger {
            let mut inner = self.inner.borrow_mut();
            for (gpa, bytes) in &self.patches {
                inner.write(*gpa, bytes).unwrap();
            }
        }
        result
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.inner.get_mut().write(gpa, data)
    }
}

/// The driver's side of one split virtqueue.
#[derive(Debug)]
pub struct Driver {
    pub size: u16,
    pub avail_idx: u16,
    pub last_used: u16,
}

impl Driver {
    pub fn new(size: u16) -> Self {
        Self {
            size,
            avail_idx: 0,
            last_used: 0,
        }
    }

    pub fn config(&self) -> QueueConfig {
        QueueConfig {
            size: self.size,
            desc_table: DESC_TABLE,
            avail_ring: AVAIL_RING,
            used_ring: USED_RING,
        }
    }

    pub fn set_desc(&self, memory: &mut impl GuestMemory, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        write_desc(memory, DESC_TABLE + 16 * u64::from(index), addr, len, flags, next);
    }

    /// Publishes `head` in the available ring.
    pub fn publish(&mut self, memory: &mut impl GuestMemory, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        memory.write_u16(AVAIL_RING + 4 + 2 * slot, head).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        memory.write_u16(AVAIL_RING + 2, self.avail_idx).unwrap();
    }

    /// Lays out `buffers` (len, writable) as a chain in descriptors
    /// `first..`, buffers at `DATA + 0x1000 * i`, and publishes it.
    pub fn add_chain(&mut self, memory: &mut impl GuestMemory, first: u16, buffers: &[(u32, bool)]) {
        for (i, &(len, writable)) in buffers.iter().enumerate() {
            let index = first + i as u16;
            let last = i + 1 == buffers.len();
            let mut flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if !last {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            let addr = DATA + 0x1000 * u64::from(index);
            self.set_desc(memory, index, addr, len, flags, index + 1);
        }
        self.publish(memory, first);
    }

    pub fn used_idx(&self, memory: &impl GuestMemory) -> u16 {
        memory.read_u16(USED_RING + 2).unwrap()
    }

    /// The next used element (id, len), if the device published one.
    pub fn take_used(&mut self, memory: &impl GuestMemory) -> Option<(u32, u32)> {
        if self.used_idx(memory) == self.last_used {
            return None;
        }
        let slot = u64::from(self.last_used % self.size);
        let id = memory.read_u32(USED_RING + 4 + 8 * slot).unwrap();
        let len = memory.read_u32(USED_RING + 8 + 8 * slot).unwrap();
        self.last_used = self.last_used.wrapping_add(1);
        Some((id, len))
    }

    pub fn set_used_event(&self, memory: &mut impl GuestMemory, event: u16) {
        memory
            .write_u16(AVAIL_RING + 4 + 2 * u64::from(self.size), event)
            .unwrap();
    }

    pub fn avail_event(&self, memory: &impl GuestMemory) -> u16 {
        memory.read_u16(USED_RING + 4 + 8 * u64::from(self.size)).unwrap()
    }
}

pub fn write_desc(memory: &mut impl GuestMemory, gpa: u64, addr: u64, len: u32, flags: u16, next: u16) {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&addr.to_le_bytes());
    bytes[8..12].copy_from_slice(&len.to_le_bytes());
    bytes[12..14].copy_from_slice(&flags.to_le_bytes());
    bytes[14..].copy_from_slice(&next.to_le_bytes());
    memory.write(gpa, &bytes).unwrap();
}

/// A small deterministic PRNG (xorshift64*) for the randomised tests.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            let value = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&value[..chunk.len()]);
        }
    }
}
