//! The boot-time physical frame allocator. It runs before any heap exists, so
//! free memory is tracked as a fixed-capacity array of ranges kept sorted by
//! address, non-overlapping and coalesced (no two ranges touch).

use crate::addr::{HostPhysAddr, PAGE_SIZE_4K};
use crate::frame::FrameAllocator;
use crate::range::PhysRange;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// An address or size passed to `free` is not a multiple of 4 KiB.
    Misaligned,
    /// The range is empty or its end overflows the address space.
    InvalidRange,
    /// Part of the range is already free: a double free or a memory map with
    /// overlapping entries.
    OverlapsFreeMemory,
    /// Recording the change needs more than `N` free ranges.
    CapacityExceeded,
}

/// First-fit allocator over at most `N` disjoint free ranges.
///
/// Every range it holds is 4 KiB aligned at both ends.
#[derive(Clone, Debug)]
pub struct RangeAllocator<const N: usize> {
    /// Invariant: `ranges[..len]` is sorted, non-empty, non-overlapping and
    /// non-adjacent; entries from `len` on are unused.
    ranges: [PhysRange; N],
    len: usize,
}

impl<const N: usize> Default for RangeAllocator<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RangeAllocator<N> {
    pub const fn new() -> Self {
        Self {
            ranges: [PhysRange::EMPTY; N],
            len: 0,
        }
    }

    /// Adds usable memory, e.g. an "available" entry from the boot memory
    /// map. Partial pages at either end are dropped, and a range with no whole
    /// page in it is ignored; it merges with free neighbours it touches.
    pub fn add_free(&mut self, range: PhysRange) -> Result<(), AllocError> {
        let usable = range.shrink_to_alignment(PAGE_SIZE_4K);
        if usable.is_empty() {
            return Ok(());
        }
        self.insert_merging(usable)
    }

    /// Removes `range` (rounded outward to whole pages) from the free memory,
    /// e.g. to carve out the hypervisor image or boot modules. Parts of it that
    /// are not free are ignored. On `CapacityExceeded` nothing changes.
    pub fn reserve(&mut self, range: PhysRange) -> Result<(), AllocError> {
        let reserved = range.grow_to_alignment(PAGE_SIZE_4K).ok_or(AllocError::InvalidRange)?;
        if reserved.is_empty() {
            return Ok(());
        }
        let list = self.free_list();
        let first = list.partition_point(|r| r.end <= reserved.start);
        let past_last = list.partition_point(|r| r.start < reserved.end);
        if first >= past_last {
            return Ok(());
        }
        let (Some(first_range), Some(last_range)) = (list.get(first), list.get(past_last - 1)) else {
            return Ok(());
        };
        let head = PhysRange::new(first_range.start, reserved.start);
        let tail = PhysRange::new(reserved.end, last_range.end);
        let (pieces, count) = non_empty_pieces(head, tail);
        self.replace(first, past_last, &pieces[..count])
    }

    /// First-fit allocation of `size` bytes aligned to `align`. `size` must be
    /// a non-zero multiple of 4 KiB and `align` a power of two (anything below
    /// 4 KiB means 4 KiB); otherwise, or when no range fits, returns `None`.
    pub fn allocate(&mut self, size: u64, align: u64) -> Option<HostPhysAddr> {
        if size == 0 || !size.is_multiple_of(PAGE_SIZE_4K) || !align.is_power_of_two() {
            return None;
        }
        let align = align.max(PAGE_SIZE_4K);
        for index in 0..self.len {
            let range = *self.ranges.get(index)?;
            let Some(start) = range.start.align_up(align) else {
                continue;
            };
            let Some(end) = start.offset(size) else {
                continue;
            };
            if end > range.end {
                continue;
            }
            let (pieces, count) = non_empty_pieces(PhysRange::new(range.start, start), PhysRange::new(end, range.end));
            // Carving from the middle needs a spare slot; with none left, a
            // later range might still fit without splitting.
            if self.replace(index, index + 1, &pieces[..count]).is_ok() {
                return Some(start);
            }
        }
        None
    }

    /// Returns `[addr, addr + size)` to the free memory.
    pub fn free(&mut self, addr: HostPhysAddr, size: u64) -> Result<(), AllocError> {
        if size == 0 {
            return Err(AllocError::InvalidRange);
        }
        if !addr.is_aligned(PAGE_SIZE_4K) || !size.is_multiple_of(PAGE_SIZE_4K) {
            return Err(AllocError::Misaligned);
        }
        let range = PhysRange::from_start_len(addr, size).ok_or(AllocError::InvalidRange)?;
        self.insert_merging(range)
    }

    pub fn free_bytes(&self) -> u64 {
        self.free_list().iter().map(PhysRange::len).sum()
    }

    /// The free ranges in ascending address order.
    pub fn ranges(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.free_list().iter().copied()
    }

    fn free_list(&self) -> &[PhysRange] {
        self.ranges.get(..self.len).unwrap_or(&[])
    }

    /// Inserts a page-aligned, non-empty range, coalescing with neighbours.
    fn insert_merging(&mut self, range: PhysRange) -> Result<(), AllocError> {
        let list = self.free_list();
        let position = list.partition_point(|r| r.end <= range.start);
        let next = list.get(position).copied();
        if next.is_some_and(|next| next.start < range.end) {
            return Err(AllocError::OverlapsFreeMemory);
        }
        let previous = position.checked_sub(1).and_then(|i| list.get(i)).copied();
        let merged_start = match previous {
            Some(previous) if previous.end == range.start => previous.start,
            _ => range.start,
        };
        let merged_end = match next {
            Some(next) if next.start == range.end => next.end,
            _ => range.end,
        };
        let replace_from = if merged_start < range.start {
            position - 1
        } else {
            position
        };
        let replace_to = if merged_end > range.end { position + 1 } else { position };
        self.replace(replace_from, replace_to, &[PhysRange::new(merged_start, merged_end)])
    }

    /// Replaces `ranges[from..to]` with `pieces`, shifting the tail; fails
    /// without changing anything if the result would exceed `N` entries.
    fn replace(&mut self, from: usize, to: usize, pieces: &[PhysRange]) -> Result<(), AllocError> {
        let new_len = self.len - (to - from) + pieces.len();
        if new_len > N {
            return Err(AllocError::CapacityExceeded);
        }
        self.ranges.copy_within(to..self.len, from + pieces.len());
        if let Some(slots) = self.ranges.get_mut(from..from + pieces.len()) {
            slots.copy_from_slice(pieces);
        }
        self.len = new_len;
        Ok(())
    }
}

/// The non-empty ones of `first` and `second`, in order, as an array and a count.
fn non_empty_pieces(first: PhysRange, second: PhysRange) -> ([PhysRange; 2], usize) {
    match (first.is_empty(), second.is_empty()) {
        (false, false) => ([first, second], 2),
        (false, true) => ([first, PhysRange::EMPTY], 1),
        (true, false) => ([second, PhysRange::EMPTY], 1),
        (true, true) => ([PhysRange::EMPTY; 2], 0),
    }
}

impl<const N: usize> FrameAllocator for RangeAllocator<N> {
    fn allocate_frame(&mut self) -> Option<HostPhysAddr> {
        self.allocate(PAGE_SIZE_4K, PAGE_SIZE_4K)
    }

    fn free_frame(&mut self, frame: HostPhysAddr) {
        // The trait cannot report failure. A rejected frame (double free, or
        // no slot to record it) is leaked: losing 4 KiB is harmless, whereas
        // handing the same frame out twice would corrupt memory.
        let _ = self.free(frame, PAGE_SIZE_4K);
    }
}

#[cfg(test)]
mod tests;
