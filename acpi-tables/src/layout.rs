//! Places the tables one after another in a single guest-physical region.

use alloc::vec::Vec;

use crate::error::AcpiError;

/// Where one table lives, both inside the blob and in guest-physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    pub offset: usize,
    pub gpa: u64,
    pub len: usize,
}

/// Hands out aligned, non-overlapping slots in increasing address order.
/// Alignment is applied to the guest-physical address, so it holds whatever
/// the alignment of the region's base.
pub(crate) struct RegionPlanner {
    base_gpa: u64,
    end: usize,
}

impl RegionPlanner {
    pub fn new(base_gpa: u64) -> Self {
        Self { base_gpa, end: 0 }
    }

    /// `align` must be a power of two.
    pub fn place(&mut self, len: usize, align: u64) -> Result<Placement, AcpiError> {
        let cursor_gpa = self.gpa_at(self.end)?;
        let gpa = align_up(cursor_gpa, align).ok_or(AcpiError::AddressOverflow)?;
        let offset = usize::try_from(gpa - self.base_gpa).map_err(|_| AcpiError::AddressOverflow)?;
        let end = offset.checked_add(len).ok_or(AcpiError::AddressOverflow)?;
        // The whole table must be addressable, not just its first byte.
        self.gpa_at(end)?;
        self.end = end;
        Ok(Placement { offset, gpa, len })
    }

    pub fn len(&self) -> usize {
        self.end
    }

    fn gpa_at(&self, offset: usize) -> Result<u64, AcpiError> {
        u64::try_from(offset)
            .ok()
            .and_then(|offset| self.base_gpa.checked_add(offset))
            .ok_or(AcpiError::AddressOverflow)
    }
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    value.checked_add(mask).map(|bumped| bumped & !mask)
}

/// Fills a region laid out by a [`RegionPlanner`], zeroing the alignment gaps.
pub(crate) struct RegionWriter {
    bytes: Vec<u8>,
}

impl RegionWriter {
    pub fn with_capacity(len: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(len),
        }
    }

    /// Tables must be written in the order they were placed.
    pub fn write(&mut self, placement: Placement, table: &[u8]) {
        debug_assert!(self.bytes.len() <= placement.offset, "tables written out of order");
        debug_assert_eq!(placement.len, table.len(), "table length differs from its slot");
        self.bytes.resize(placement.offset, 0);
        self.bytes.extend_from_slice(table);
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_are_aligned_on_guest_physical_addresses() {
        let mut planner = RegionPlanner::new(0x1004);
        let first = planner.place(36, 16).unwrap();
        assert_eq!(
            first,
            Placement {
                offset: 12,
                gpa: 0x1010,
                len: 36
            }
        );
        let second = planner.place(10, 8).unwrap();
        assert_eq!(
            second,
            Placement {
                offset: 52,
                gpa: 0x1038,
                len: 10
            }
        );
        let third = planner.place(64, 64).unwrap();
        assert_eq!(
            third,
            Placement {
                offset: 0x7C,
                gpa: 0x1080,
                len: 64
            }
        );
        assert_eq!(planner.len(), 0x7C + 64);
    }

    #[test]
    fn region_running_past_the_address_space_is_rejected() {
        let mut planner = RegionPlanner::new(u64::MAX - 40);
        assert!(planner.place(36, 1).is_ok());
        assert_eq!(planner.place(8, 1), Err(AcpiError::AddressOverflow));
        let mut planner = RegionPlanner::new(u64::MAX - 3);
        assert_eq!(planner.place(1, 16), Err(AcpiError::AddressOverflow));
    }

    #[test]
    fn writer_zero_fills_gaps() {
        let mut planner = RegionPlanner::new(0);
        let a = planner.place(3, 1).unwrap();
        let b = planner.place(2, 8).unwrap();
        let mut writer = RegionWriter::with_capacity(planner.len());
        writer.write(a, &[1, 2, 3]);
        writer.write(b, &[4, 5]);
        assert_eq!(writer.finish(), [1, 2, 3, 0, 0, 0, 0, 0, 4, 5]);
    }
}
