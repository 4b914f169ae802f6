//! Choosing the host blocks that make up a guest's RAM when one contiguous
//! block of the whole size is not available.

use crate::addr::PAGE_SIZE_4K;

/// The sizes to try, in order, when allocating `total` bytes of guest RAM
/// as host blocks laid out at consecutive guest-physical addresses: first
/// the whole remainder, then ever smaller powers of two down to `min_chunk`.
/// After a block of some size is found, the next block tries that size
/// again (or the remainder, if smaller), since memory that just produced it
/// likely has more of it.
///
/// ```
/// # use keel_memory::ChunkPlan;
/// const MIB: u64 = 1 << 20;
/// let mut plan = ChunkPlan::new(6 * MIB, 2 * MIB).unwrap();
/// assert_eq!(plan.next_size(), Some(6 * MIB)); // the whole size is not free...
/// assert!(plan.shrink());
/// assert_eq!(plan.next_size(), Some(4 * MIB)); // ...but 4 MiB is
/// plan.allocated();
/// assert_eq!((plan.placed(), plan.next_size()), (4 * MIB, Some(2 * MIB)));
/// plan.allocated();
/// assert_eq!(plan.next_size(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkPlan {
    total: u64,
    placed: u64,
    min_chunk: u64,
    /// The size to try next (capped by what is left).
    next: u64,
}

impl ChunkPlan {
    /// A plan for `total` bytes (a non-zero multiple of 4 KiB) in blocks of
    /// at least `min_chunk` bytes (a power of two, at least 4 KiB) except
    /// perhaps a smaller last one. `None` if either is unusable.
    pub fn new(total: u64, min_chunk: u64) -> Option<Self> {
        let usable = total != 0
            && total.is_multiple_of(PAGE_SIZE_4K)
            && min_chunk.is_power_of_two()
            && min_chunk >= PAGE_SIZE_4K;
        usable.then_some(Self {
            total,
            placed: 0,
            min_chunk,
            next: total,
        })
    }

    /// Starts with blocks of at most `max_chunk` bytes instead of the whole
    /// size (rounded down to a power of two, at least the minimum chunk).
    pub fn with_max_chunk(mut self, max_chunk: u64) -> Self {
        if max_chunk < self.next {
            self.next = power_of_two_at_most(max_chunk).max(self.min_chunk);
        }
        self
    }

    /// The size of the block to allocate next; `None` when done.
    pub fn next_size(&self) -> Option<u64> {
        let remaining = self.total - self.placed;
        (remaining > 0).then_some(self.next.min(remaining))
    }

    /// The bytes the plan is for.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Where the next block goes: its offset from the start of guest RAM.
    pub fn placed(&self) -> u64 {
        self.placed
    }

    /// A block of [`Self::next_size`] bytes was allocated and placed.
    pub fn allocated(&mut self) {
        if let Some(size) = self.next_size() {
            self.placed += size;
        }
    }

    /// No block of [`Self::next_size`] bytes was available: plans a smaller
    /// one. `false` when there is none smaller to try (out of memory).
    pub fn shrink(&mut self) -> bool {
        let Some(size) = self.next_size() else { return false };
        if size <= self.min_chunk {
            return false;
        }
        // Strictly smaller than `size`, and `size > min_chunk` keeps it at
        // least `min_chunk`.
        self.next = power_of_two_at_most(size - 1).max(self.min_chunk);
        true
    }
}

/// The largest power of two not above `value` (1 for 0).
fn power_of_two_at_most(value: u64) -> u64 {
    match value.checked_ilog2() {
        Some(log) => 1 << log,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HostPhysAddr, PhysRange, RangeAllocator, PAGE_SIZE_2M};

    const MIB: u64 = 1 << 20;

    /// Runs a plan against `alloc` the way the hypervisor does; returns the
    /// blocks as (guest offset, host address, size), or `None` when memory
    /// ran out (after freeing what it took).
    fn allocate(alloc: &mut RangeAllocator<16>, mut plan: ChunkPlan) -> Option<Vec<(u64, u64, u64)>> {
        let mut blocks = Vec::new();
        while let Some(size) = plan.next_size() {
            match alloc.allocate(size, PAGE_SIZE_2M) {
                Some(host) => {
                    blocks.push((plan.placed(), host.as_u64(), size));
                    plan.allocated();
                }
                None if plan.shrink() => {}
                None => {
                    for (_, host, size) in blocks {
                        alloc.free(HostPhysAddr::new(host), size).unwrap();
                    }
                    return None;
                }
            }
        }
        Some(blocks)
    }

    fn allocator(ranges: &[(u64, u64)]) -> RangeAllocator<16> {
        let mut alloc = RangeAllocator::new();
        for &(start, end) in ranges {
            alloc
                .add_free(PhysRange::new(HostPhysAddr::new(start), HostPhysAddr::new(end)))
                .unwrap();
        }
        alloc
    }

    #[test]
    fn contiguous_memory_gives_one_block() {
        let mut alloc = allocator(&[(64 * MIB, 256 * MIB)]);
        let plan = ChunkPlan::new(64 * MIB, PAGE_SIZE_2M).unwrap();
        assert_eq!(allocate(&mut alloc, plan), Some(vec![(0, 64 * MIB, 64 * MIB)]));
    }

    #[test]
    fn fragmented_memory_is_used_largest_pieces_first() {
        // 6 MiB, then 2 MiB, then 16 MiB of free memory; 20 MiB wanted.
        let mut alloc = allocator(&[(16 * MIB, 22 * MIB), (32 * MIB, 34 * MIB), (64 * MIB, 80 * MIB)]);
        let free_before = alloc.free_bytes();
        let plan = ChunkPlan::new(20 * MIB, PAGE_SIZE_2M).unwrap();
        let blocks = allocate(&mut alloc, plan).unwrap();
        assert_eq!(blocks, vec![(0, 64 * MIB, 16 * MIB), (16 * MIB, 16 * MIB, 4 * MIB),]);
        assert_eq!(blocks.iter().map(|block| block.2).sum::<u64>(), 20 * MIB);
        assert_eq!(alloc.free_bytes(), free_before - 20 * MIB);
    }

    #[test]
    fn every_block_is_aligned_and_guest_contiguous() {
        let mut alloc = allocator(&[(2 * MIB, 6 * MIB), (10 * MIB, 12 * MIB), (14 * MIB, 20 * MIB)]);
        let blocks = allocate(&mut alloc, ChunkPlan::new(12 * MIB, PAGE_SIZE_2M).unwrap()).unwrap();
        let mut expected_offset = 0;
        for &(offset, host, size) in &blocks {
            assert_eq!(offset, expected_offset);
            assert_eq!(host % PAGE_SIZE_2M, 0);
            assert_eq!(size % PAGE_SIZE_2M, 0);
            expected_offset += size;
        }
        assert_eq!(expected_offset, 12 * MIB);
        assert_eq!(alloc.free_bytes(), 0);
    }

    #[test]
    fn running_out_frees_everything_taken() {
        let mut alloc = allocator(&[(2 * MIB, 6 * MIB), (10 * MIB, 12 * MIB)]);
        let free_before = alloc.free_bytes();
        assert_eq!(
            allocate(&mut alloc, ChunkPlan::new(8 * MIB, PAGE_SIZE_2M).unwrap()),
            None
        );
        assert_eq!(alloc.free_bytes(), free_before);
    }

    #[test]
    fn a_remainder_below_the_minimum_is_its_own_block() {
        let mut alloc = allocator(&[(2 * MIB, 4 * MIB), (8 * MIB, 10 * MIB)]);
        let blocks = allocate(&mut alloc, ChunkPlan::new(3 * MIB, PAGE_SIZE_2M).unwrap()).unwrap();
        assert_eq!(blocks, vec![(0, 2 * MIB, 2 * MIB), (2 * MIB, 8 * MIB, MIB)]);
    }

    #[test]
    fn max_chunk_caps_the_first_attempt() {
        let mut alloc = allocator(&[(64 * MIB, 128 * MIB)]);
        let plan = ChunkPlan::new(6 * MIB, PAGE_SIZE_2M).unwrap().with_max_chunk(3 * MIB);
        assert_eq!(
            allocate(&mut alloc, plan),
            Some(vec![
                (0, 64 * MIB, 2 * MIB),
                (2 * MIB, 66 * MIB, 2 * MIB),
                (4 * MIB, 68 * MIB, 2 * MIB)
            ])
        );
    }

    #[test]
    fn unusable_sizes_are_refused() {
        assert_eq!(ChunkPlan::new(0, PAGE_SIZE_2M), None);
        assert_eq!(ChunkPlan::new(0x1800, PAGE_SIZE_2M), None);
        assert_eq!(ChunkPlan::new(PAGE_SIZE_2M, 3 * MIB), None);
        assert_eq!(ChunkPlan::new(PAGE_SIZE_2M, 0x800), None);
    }

    #[test]
    fn shrinking_stops_at_the_minimum() {
        let mut plan = ChunkPlan::new(16 * MIB, PAGE_SIZE_2M).unwrap();
        let mut tried = vec![plan.next_size().unwrap()];
        while plan.shrink() {
            tried.push(plan.next_size().unwrap());
        }
        assert_eq!(tried, [16 * MIB, 8 * MIB, 4 * MIB, 2 * MIB]);
    }
}
