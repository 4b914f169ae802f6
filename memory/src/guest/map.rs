//! The guest-physical address space of one guest as a sorted list of
//! regions, and guest-memory access that resolves each byte through it.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use super::{len_u64, span, GuestMemory, GuestMemoryError, GuestMemoryRead};
use crate::addr::{GuestPhysAddr, HostPhysAddr, PAGE_SIZE_4K};
use crate::frame::PhysMemory;

/// What a guest-physical region is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryKind {
    /// The guest's own RAM, backed by host memory the guest owns; the only
    /// kind [`GuestMemoryRead`]/[`GuestMemory`] reach.
    Ram,
    /// An emulated device: accesses exit to Keel and are performed on the
    /// device model, never as memory.
    Mmio,
    /// A hole: nothing is there.
    Reserved,
    /// Host memory that belongs to Keel and is mapped into the guest (the
    /// management interface's shared memory); not the guest's RAM.
    Shared,
}

impl fmt::Display for MemoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ram => "RAM",
            Self::Mmio => "emulated MMIO",
            Self::Reserved => "reserved",
            Self::Shared => "memory shared by Keel",
        })
    }
}

/// A 4 KiB-aligned, non-empty range of guest-physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    start: GuestPhysAddr,
    len: u64,
    kind: MemoryKind,
    host: Option<HostPhysAddr>,
}

impl MemoryRegion {
    pub const fn start(&self) -> GuestPhysAddr {
        self.start
    }

    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Never true: the map refuses empty regions.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first address past the region (cannot overflow: checked on insertion).
    pub const fn end(&self) -> u64 {
        self.start.as_u64().saturating_add(self.len)
    }

    pub const fn kind(&self) -> MemoryKind {
        self.kind
    }

    /// The host-physical address backing the region's first byte, for
    /// [`MemoryKind::Ram`] and [`MemoryKind::Shared`].
    pub const fn host(&self) -> Option<HostPhysAddr> {
        self.host
    }

    pub fn contains(&self, gpa: GuestPhysAddr) -> bool {
        self.start <= gpa && gpa.as_u64() < self.end()
    }

    fn overlaps(&self, other: &MemoryRegion) -> bool {
        self.start.as_u64() < other.end() && other.start.as_u64() < self.end()
    }
}

impl fmt::Display for MemoryRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}, {:#x})", self.kind, self.start, self.end())
    }
}

/// Why a region was not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The start, length or host address is not a multiple of 4 KiB.
    Misaligned { gpa: GuestPhysAddr, len: u64 },
    /// The region has no bytes.
    Empty { gpa: GuestPhysAddr },
    /// The guest or host end of the region wraps around the address space.
    Overflow { gpa: GuestPhysAddr, len: u64 },
    /// The new region shares bytes with one already in the map.
    Overlap { new: MemoryRegion, existing: MemoryRegion },
    /// No memory to record another region.
    NoRoom,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Misaligned { gpa, len } => {
                write!(f, "region of {len:#x} bytes at {gpa} is not 4 KiB aligned")
            }
            Self::Empty { gpa } => write!(f, "empty region at {gpa}"),
            Self::Overflow { gpa, len } => {
                write!(f, "region of {len:#x} bytes at {gpa} wraps around the address space")
            }
            Self::Overlap { new, existing } => write!(f, "{new} overlaps {existing}"),
            Self::NoRoom => f.write_str("no memory to record another region"),
        }
    }
}

impl core::error::Error for MapError {}

/// A guest's physical address space: sorted, non-overlapping regions of
/// RAM, emulated MMIO, holes and shared memory. Guest RAM may be made of
/// any number of host blocks at unrelated host-physical addresses; an
/// access that spans several RAM regions is split between them, and one
/// that touches anything but RAM fails before any byte moves.
///
/// Host memory is reached only through `P` ([`PhysMemory`]), one 4 KiB
/// frame at a time, and only for RAM regions, whose host memory the caller
/// of [`GuestMemoryMap::add_ram`] vouched for. No reference into guest RAM
/// is ever handed out: every access copies.
pub struct GuestMemoryMap<P> {
    /// Invariant: sorted by start, non-overlapping, each 4 KiB aligned and
    /// non-empty, and neither end wraps.
    regions: Vec<MemoryRegion>,
    phys: P,
}

impl<P: PhysMemory> GuestMemoryMap<P> {
    /// An empty address space whose RAM will be reached through `phys`.
    pub const fn new(phys: P) -> Self {
        Self {
            regions: Vec::new(),
            phys,
        }
    }

    /// Adds `len` bytes of RAM at `gpa`, backed by host memory at `host`.
    ///
    /// # Safety
    /// Until the region is removed or the map dropped, `[host, host + len)`
    /// must be memory the caller owns and lends to the guest: every 4 KiB
    /// frame in it valid for reads and writes through `P::frame_ptr`, and no
    /// Rust reference to any of it alive (the map copies through raw
    /// pointers; the guest itself may access it between calls).
    pub unsafe fn add_ram(&mut self, gpa: GuestPhysAddr, host: HostPhysAddr, len: u64) -> Result<(), MapError> {
        self.insert(gpa, len, MemoryKind::Ram, Some(host))
    }

    /// Marks `[gpa, gpa + len)` as an emulated device.
    pub fn add_mmio(&mut self, gpa: GuestPhysAddr, len: u64) -> Result<(), MapError> {
        self.insert(gpa, len, MemoryKind::Mmio, None)
    }

    /// Marks `[gpa, gpa + len)` as a hole.
    pub fn add_reserved(&mut self, gpa: GuestPhysAddr, len: u64) -> Result<(), MapError> {
        self.insert(gpa, len, MemoryKind::Reserved, None)
    }

    /// Records Keel's host memory at `host` mapped into the guest at `gpa`.
    /// Guest-memory accesses do not reach it: it is not the guest's RAM.
    pub fn add_shared(&mut self, gpa: GuestPhysAddr, host: HostPhysAddr, len: u64) -> Result<(), MapError> {
        self.insert(gpa, len, MemoryKind::Shared, Some(host))
    }

    /// Removes and returns the region that starts at `gpa`, if `kind`.
    pub fn remove(&mut self, gpa: GuestPhysAddr, kind: MemoryKind) -> Option<MemoryRegion> {
        let index = self
            .regions
            .iter()
            .position(|region| region.start == gpa && region.kind == kind)?;
        Some(self.regions.remove(index))
    }

    /// The region holding `gpa`, if any.
    pub fn region_at(&self, gpa: GuestPhysAddr) -> Option<&MemoryRegion> {
        let index = self.regions.partition_point(|region| region.end() <= gpa.as_u64());
        self.regions.get(index).filter(|region| region.contains(gpa))
    }

    /// Every region in address order.
    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions
    }

    /// Total bytes of RAM.
    pub fn ram_bytes(&self) -> u64 {
        self.regions
            .iter()
            .filter(|region| region.kind == MemoryKind::Ram)
            .map(MemoryRegion::len)
            .sum()
    }

    fn insert(
        &mut self,
        gpa: GuestPhysAddr,
        len: u64,
        kind: MemoryKind,
        host: Option<HostPhysAddr>,
    ) -> Result<(), MapError> {
        if len == 0 {
            return Err(MapError::Empty { gpa });
        }
        let host_aligned = host.is_none_or(|host| host.is_aligned(PAGE_SIZE_4K));
        if !gpa.is_aligned(PAGE_SIZE_4K) || !len.is_multiple_of(PAGE_SIZE_4K) || !host_aligned {
            return Err(MapError::Misaligned { gpa, len });
        }
        let host_wraps = host.is_some_and(|host| host.offset(len).is_none());
        if gpa.offset(len).is_none() || host_wraps {
            return Err(MapError::Overflow { gpa, len });
        }
        let new = MemoryRegion {
            start: gpa,
            len,
            kind,
            host,
        };
        let position = self.regions.partition_point(|region| region.start < gpa);
        let neighbours = [position.checked_sub(1), Some(position)];
        for existing in neighbours
            .into_iter()
            .flatten()
            .filter_map(|index| self.regions.get(index))
        {
            if existing.overlaps(&new) {
                return Err(MapError::Overlap {
                    new,
                    existing: *existing,
                });
            }
        }
        self.regions.try_reserve(1).map_err(|_| MapError::NoRoom)?;
        self.regions.insert(position, new);
        Ok(())
    }

    /// Checks that `[gpa, gpa + len)` is all RAM; returns the byte range and
    /// the index of the region holding its first byte.
    fn ram_span(&self, gpa: GuestPhysAddr, len: u64) -> Result<(Range<u64>, usize), GuestMemoryError> {
        let range = span(gpa, len)?;
        let first = self.regions.partition_point(|region| region.end() <= range.start);
        let mut index = first;
        let mut cursor = range.start;
        while cursor < range.end {
            // Sorted and non-overlapping: the region after one that ends at
            // `cursor` covers `cursor` only if it starts right there.
            let region = self
                .regions
                .get(index)
                .filter(|region| region.start.as_u64() <= cursor)
                .ok_or(GuestMemoryError::Unmapped {
                    gpa: GuestPhysAddr::new(cursor),
                })?;
            if region.kind != MemoryKind::Ram {
                return Err(GuestMemoryError::NotRam {
                    gpa: GuestPhysAddr::new(cursor),
                    kind: region.kind,
                });
            }
            cursor = region.end();
            index += 1;
        }
        Ok((range, first))
    }

    /// Calls `access(pointer, offset, len)` for each piece of a range that
    /// [`Self::ram_span`] accepted, in order: `pointer` is valid for `len`
    /// bytes (all within one host frame) and stands for the access's bytes
    /// `offset..offset + len`.
    fn for_each_piece(&self, range: Range<u64>, first: usize, mut access: impl FnMut(*mut u8, usize, usize)) {
        let mut cursor = range.start;
        for region in self.regions.iter().skip(first) {
            if cursor >= range.end {
                break;
            }
            let Some(host) = region.host else { break };
            let piece_end = region.end().min(range.end);
            // Cannot overflow: the region's host end was checked on insertion.
            let mut hpa = host.as_u64() + (cursor - region.start.as_u64());
            while cursor < piece_end {
                let frame = hpa & !(PAGE_SIZE_4K - 1);
                let in_frame = hpa - frame;
                let len = (PAGE_SIZE_4K - in_frame).min(piece_end - cursor);
                let pointer = self
                    .phys
                    .frame_ptr(HostPhysAddr::new(frame))
                    .wrapping_add(in_frame as usize);
                access(pointer, (cursor - range.start) as usize, len as usize);
                cursor += len;
                hpa += len;
            }
        }
    }
}

impl<P: PhysMemory> GuestMemoryRead for GuestMemoryMap<P> {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        let (range, first) = self.ram_span(gpa, len_u64(buf.len()))?;
        self.for_each_piece(range, first, |source, offset, len| {
            if let Some(target) = buf.get_mut(offset..offset + len) {
                // SAFETY: `source` points `len` bytes into one frame of a RAM
                // region (`for_each_piece`), which `add_ram`'s caller vouched
                // is valid for reads and not referenced by any Rust reference,
                // so it cannot overlap `target` either.
                unsafe { core::ptr::copy_nonoverlapping(source, target.as_mut_ptr(), len) };
            }
        });
        Ok(())
    }

    fn check_ram(&self, gpa: GuestPhysAddr, len: u64) -> Result<(), GuestMemoryError> {
        self.ram_span(gpa, len).map(|_| ())
    }
}

impl<P: PhysMemory> GuestMemory for GuestMemoryMap<P> {
    fn write(&mut self, gpa: GuestPhysAddr, bytes: &[u8]) -> Result<(), GuestMemoryError> {
        let (range, first) = self.ram_span(gpa, len_u64(bytes.len()))?;
        self.for_each_piece(range, first, |target, offset, len| {
            if let Some(source) = bytes.get(offset..offset + len) {
                // SAFETY: as in `read`, with writes: RAM regions are valid for
                // both and never behind a Rust reference.
                unsafe { core::ptr::copy_nonoverlapping(source.as_ptr(), target, len) };
            }
        });
        Ok(())
    }

    fn fill(&mut self, gpa: GuestPhysAddr, len: u64, byte: u8) -> Result<(), GuestMemoryError> {
        let (range, first) = self.ram_span(gpa, len)?;
        self.for_each_piece(range, first, |target, _, len| {
            // SAFETY: `target` is valid for `len` bytes of writes, as in `write`.
            unsafe { core::ptr::write_bytes(target, byte, len) };
        });
        Ok(())
    }
}

#[cfg(any(test, feature = "test-support"))]
impl GuestMemoryMap<crate::test_support::ArenaMemory> {
    /// Adds `len` bytes of fresh zeroed RAM at `gpa`, backed by a new block
    /// of the arena (placed below the previous one, so guest-contiguous RAM
    /// is never host-contiguous). Returns the block's fake host address.
    pub fn add_arena_ram(&mut self, gpa: GuestPhysAddr, len: u64) -> Result<HostPhysAddr, MapError> {
        let host = self.phys.add_block(len).ok_or(MapError::Misaligned { gpa, len })?;
        // SAFETY: the block was just created in the arena this map owns; it
        // lives as long as the map and only the map reaches it.
        unsafe { self.add_ram(gpa, host, len) }?;
        Ok(host)
    }
}

#[cfg(test)]
mod tests;
