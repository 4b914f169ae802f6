//! Allocators for small integer ids: VPIDs (lowest free, so the hardware's
//! VPID space stays dense) and domain ids (cycling, so a destroyed domain's
//! id is not handed to the next domain at once, and a management tool that
//! still holds the old id cannot hit the new domain by mistake).
//!
//! Only the ids in use are stored, in a sorted `Vec`: the ranges can be huge
//! (domain ids span most of `u32`) while the number in use is small, so a
//! bitmap would waste memory. Allocation and release are O(n) in the ids in
//! use at worst (an insertion), with binary searches to find the spot.

use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    LowestFree,
    /// Searches from `next`, wrapping to `first`.
    Cycling {
        next: u32,
    },
}

/// Hands out ids from the inclusive range `first..=last`.
#[derive(Clone, Debug)]
pub struct IdAllocator {
    first: u32,
    last: u32,
    mode: Mode,
    /// Ids in use, sorted, unique, all within `first..=last`.
    used: Vec<u32>,
}

impl IdAllocator {
    /// The same as [`IdAllocator::lowest_free`].
    pub fn new(first: u32, last: u32) -> Self {
        Self::lowest_free(first, last)
    }

    /// `allocate` returns the lowest free id (for VPIDs). If `first > last`
    /// the range is empty and nothing can be allocated.
    pub fn lowest_free(first: u32, last: u32) -> Self {
        Self {
            first,
            last,
            mode: Mode::LowestFree,
            used: Vec::new(),
        }
    }

    /// `allocate` returns the first free id after the one it returned last,
    /// wrapping around to `first` past `last` and skipping ids in use (for
    /// domain ids). If `first > last` the range is empty.
    pub fn cycling(first: u32, last: u32) -> Self {
        Self {
            first,
            last,
            mode: Mode::Cycling { next: first },
            used: Vec::new(),
        }
    }

    /// A free id, now in use; `None` when every id in the range is in use.
    pub fn allocate(&mut self) -> Option<u32> {
        if self.first > self.last {
            return None;
        }
        let (id, at) = match self.mode {
            Mode::LowestFree => self.free_from(self.first)?,
            Mode::Cycling { next } => match self.free_from(next) {
                Some(found) => found,
                // Nothing free from `next` on: wrap, and take what is free
                // before `next` (`free_from` found nothing up to `last`, so a
                // hit at or past `next` is impossible).
                None => self.free_from(self.first)?,
            },
        };
        self.used.insert(at, id);
        if let Mode::Cycling { next } = &mut self.mode {
            *next = if id >= self.last { self.first } else { id + 1 };
        }
        Some(id)
    }

    /// Marks a specific id as in use (Dom0's domain id, say). False if it is
    /// outside the range or already in use. Does not move a cycling
    /// allocator's position.
    pub fn claim(&mut self, id: u32) -> bool {
        if !self.in_range(id) {
            return false;
        }
        match self.used.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.used.insert(at, id);
                true
            }
        }
    }

    /// Frees an id. False if it was not allocated (never, or already
    /// released), in which case nothing changes.
    pub fn release(&mut self, id: u32) -> bool {
        match self.used.binary_search(&id) {
            Ok(at) => {
                self.used.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `id` is in use.
    pub fn is_allocated(&self, id: u32) -> bool {
        self.used.binary_search(&id).is_ok()
    }

    /// How many ids are in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// How many ids the range holds (up to 2^32, hence `u64`).
    pub fn capacity(&self) -> u64 {
        if self.first > self.last {
            0
        } else {
            u64::from(self.last - self.first) + 1
        }
    }

    fn in_range(&self, id: u32) -> bool {
        self.first <= id && id <= self.last
    }

    /// The lowest free id at or after `from` (within the range), and where it
    /// goes in `used`.
    fn free_from(&self, from: u32) -> Option<(u32, usize)> {
        let start = self.used.partition_point(|&id| id < from);
        // The ids in use from `start` on are increasing and unique, so
        // `used[start + k] == from + k` holds for a prefix of them (no gap
        // yet) and fails from the first gap on: binary search for it.
        let (mut lo, mut hi) = (start, self.used.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if u64::from(self.used[mid]) == u64::from(from) + (mid - start) as u64 {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let candidate = u64::from(from) + (lo - start) as u64;
        if candidate <= u64::from(self.last) {
            // `candidate <= last` fits in u32.
            Some((candidate as u32, lo))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests;
