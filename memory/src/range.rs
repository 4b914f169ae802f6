use crate::addr::HostPhysAddr;

/// A half-open range `[start, end)` of host-physical memory.
///
/// Fields are public for convenient construction from boot information; a
/// range whose `end` is below its `start` is treated as empty by every helper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PhysRange {
    pub start: HostPhysAddr,
    pub end: HostPhysAddr,
}

impl PhysRange {
    pub const EMPTY: Self = Self::new(HostPhysAddr::new(0), HostPhysAddr::new(0));

    pub const fn new(start: HostPhysAddr, end: HostPhysAddr) -> Self {
        Self { start, end }
    }

    /// `[start, start + len)`, or `None` if the end would overflow.
    pub const fn from_start_len(start: HostPhysAddr, len: u64) -> Option<Self> {
        match start.offset(len) {
            Some(end) => Some(Self::new(start, end)),
            None => None,
        }
    }

    pub const fn len(&self) -> u64 {
        self.end.as_u64().saturating_sub(self.start.as_u64())
    }

    pub const fn is_empty(&self) -> bool {
        self.end.as_u64() <= self.start.as_u64()
    }

    pub fn contains(&self, addr: HostPhysAddr) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether the two ranges share at least one byte.
    pub fn overlaps(&self, other: &PhysRange) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }

    /// The largest page-aligned range inside `self` (boot memory maps are not
    /// always page aligned; a partial page must not be handed out).
    pub fn shrink_to_alignment(&self, align: u64) -> PhysRange {
        match self.start.align_up(align) {
            Some(start) if start < self.end.align_down(align) => Self::new(start, self.end.align_down(align)),
            _ => Self::EMPTY,
        }
    }

    /// The smallest aligned range covering `self` (reserving part of a page
    /// must take the whole page). `None` if rounding up overflows.
    pub fn grow_to_alignment(&self, align: u64) -> Option<PhysRange> {
        if self.is_empty() {
            return Some(Self::EMPTY);
        }
        Some(Self::new(self.start.align_down(align), self.end.align_up(align)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PAGE_SIZE_4K;

    fn range(start: u64, end: u64) -> PhysRange {
        PhysRange::new(HostPhysAddr::new(start), HostPhysAddr::new(end))
    }

    #[test]
    fn length_and_emptiness() {
        assert_eq!(range(0x1000, 0x3000).len(), 0x2000);
        assert!(range(0x3000, 0x3000).is_empty());
        assert!(range(0x3000, 0x1000).is_empty());
        assert_eq!(range(0x3000, 0x1000).len(), 0);
    }

    #[test]
    fn contains_is_half_open() {
        let r = range(0x1000, 0x2000);
        assert!(r.contains(HostPhysAddr::new(0x1000)));
        assert!(r.contains(HostPhysAddr::new(0x1fff)));
        assert!(!r.contains(HostPhysAddr::new(0x2000)));
    }

    #[test]
    fn touching_ranges_do_not_overlap() {
        assert!(!range(0x1000, 0x2000).overlaps(&range(0x2000, 0x3000)));
        assert!(range(0x1000, 0x2001).overlaps(&range(0x2000, 0x3000)));
        assert!(!range(0x1000, 0x1000).overlaps(&range(0, 0x3000)));
    }

    #[test]
    fn shrinking_drops_partial_pages() {
        assert_eq!(
            range(0x1001, 0x5fff).shrink_to_alignment(PAGE_SIZE_4K),
            range(0x2000, 0x5000)
        );
        assert!(range(0x1001, 0x1fff).shrink_to_alignment(PAGE_SIZE_4K).is_empty());
    }

    #[test]
    fn growing_covers_partial_pages() {
        assert_eq!(
            range(0x1001, 0x5001).grow_to_alignment(PAGE_SIZE_4K),
            Some(range(0x1000, 0x6000))
        );
        assert_eq!(range(0x1000, u64::MAX).grow_to_alignment(PAGE_SIZE_4K), None);
    }

    #[test]
    fn from_start_len_detects_overflow() {
        assert_eq!(
            PhysRange::from_start_len(HostPhysAddr::new(0x1000), 0x1000),
            Some(range(0x1000, 0x2000))
        );
        assert_eq!(PhysRange::from_start_len(HostPhysAddr::new(u64::MAX), 2), None);
    }
}
