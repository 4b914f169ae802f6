//! Guest memory for fuzzing: RAM is a set of ranges (gigabytes cost
//! nothing: pages exist only once written, unwritten RAM reads as zeros),
//! and the memory counts its writes so a target can check that a failed
//! load wrote nothing.

use std::collections::BTreeMap;
use std::ops::Range;

use keel_memory::{GuestMemory, GuestMemoryError, GuestMemoryRead, GuestPhysAddr};

const PAGE: u64 = 4096;

#[derive(Default)]
pub struct SparseMemory {
    /// Sorted, disjoint, non-empty.
    ram: Vec<Range<u64>>,
    pages: BTreeMap<u64, Box<[u8; PAGE as usize]>>,
    writes: usize,
}

impl SparseMemory {
    /// RAM made of `ranges` (empty ones are dropped, overlapping ones merged).
    pub fn new(ranges: impl IntoIterator<Item = Range<u64>>) -> Self {
        let mut ram: Vec<Range<u64>> = ranges.into_iter().filter(|range| !range.is_empty()).collect();
        ram.sort_by_key(|range| range.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(ram.len());
        for range in ram {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        Self {
            ram: merged,
            ..Self::default()
        }
    }

    /// Successful writes (and fills) so far.
    pub fn writes(&self) -> usize {
        self.writes
    }

    /// The first byte of `[gpa, gpa + len)` that is not RAM, if any.
    fn first_hole(&self, gpa: u64, len: u64) -> Result<Option<u64>, GuestMemoryError> {
        let end = gpa.checked_add(len).ok_or(GuestMemoryError::Overflow {
            gpa: GuestPhysAddr::new(gpa),
            len,
        })?;
        let mut at = gpa;
        while at < end {
            match self.ram.iter().find(|range| range.contains(&at)) {
                Some(range) => at = range.end,
                None => return Ok(Some(at)),
            }
        }
        Ok(None)
    }

    fn check(&self, gpa: GuestPhysAddr, len: u64) -> Result<(), GuestMemoryError> {
        match self.first_hole(gpa.as_u64(), len)? {
            Some(hole) => Err(GuestMemoryError::Unmapped {
                gpa: GuestPhysAddr::new(hole),
            }),
            None => Ok(()),
        }
    }

    /// Calls `visit(page, offset in page, range in the buffer)` for each page
    /// piece of `[gpa, gpa + len)` (already checked not to wrap).
    fn pieces(gpa: u64, len: usize, mut visit: impl FnMut(u64, usize, Range<usize>)) {
        let mut done = 0;
        while done < len {
            let at = gpa + done as u64;
            let offset = (at % PAGE) as usize;
            let count = (PAGE as usize - offset).min(len - done);
            visit(at - offset as u64, offset, done..done + count);
            done += count;
        }
    }
}

impl GuestMemoryRead for SparseMemory {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        self.check(gpa, buf.len() as u64)?;
        Self::pieces(gpa.as_u64(), buf.len(), |page, offset, range| {
            let len = range.len();
            match self.pages.get(&page) {
                Some(bytes) => buf[range].copy_from_slice(&bytes[offset..offset + len]),
                None => buf[range].fill(0),
            }
        });
        Ok(())
    }

    fn check_ram(&self, gpa: GuestPhysAddr, len: u64) -> Result<(), GuestMemoryError> {
        self.check(gpa, len)
    }
}

impl GuestMemory for SparseMemory {
    fn write(&mut self, gpa: GuestPhysAddr, bytes: &[u8]) -> Result<(), GuestMemoryError> {
        self.check(gpa, bytes.len() as u64)?;
        let pages = &mut self.pages;
        Self::pieces(gpa.as_u64(), bytes.len(), |page, offset, range| {
            let len = range.len();
            let target = pages.entry(page).or_insert_with(|| Box::new([0; PAGE as usize]));
            target[offset..offset + len].copy_from_slice(&bytes[range]);
        });
        self.writes += 1;
        Ok(())
    }

    fn fill(&mut self, gpa: GuestPhysAddr, len: u64, byte: u8) -> Result<(), GuestMemoryError> {
        self.check(gpa, len)?;
        let len = usize::try_from(len).map_err(|_| GuestMemoryError::Overflow { gpa, len })?;
        let pages = &mut self.pages;
        Self::pieces(gpa.as_u64(), len, |page, offset, range| {
            // Zeroing a page nobody wrote changes nothing: keep it sparse.
            if byte == 0 && !pages.contains_key(&page) {
                return;
            }
            let target = pages.entry(page).or_insert_with(|| Box::new([0; PAGE as usize]));
            target[offset..offset + range.len()].fill(byte);
        });
        self.writes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpa(raw: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(raw)
    }

    #[test]
    fn ram_reads_back_across_pages_and_regions() {
        let mut memory = SparseMemory::new([0x2000..0x3000, 0..0x2000, 0x10_0000_0000..0x10_0000_1000]);
        memory.write(gpa(0xFFE), &[1, 2, 3, 4]).unwrap();
        memory.write(gpa(0x2FFF), &[9]).unwrap();
        let mut buf = [0xAA; 6];
        memory.read(gpa(0xFFD), &mut buf).unwrap();
        assert_eq!(buf, [0, 1, 2, 3, 4, 0]);
        assert_eq!(memory.read_u8(gpa(0x2FFF)), Ok(9));
        assert_eq!(memory.read_u64(gpa(0x10_0000_0FF8)), Ok(0));
        assert_eq!(memory.writes(), 2);
    }

    #[test]
    fn holes_and_wrapping_fail_and_change_nothing() {
        let mut memory = SparseMemory::new([0..0x1000, 0x2000..0x3000]);
        assert_eq!(
            memory.write(gpa(0xFFF), &[1, 2]),
            Err(GuestMemoryError::Unmapped { gpa: gpa(0x1000) })
        );
        assert_eq!(
            memory.check_ram(gpa(u64::MAX), 2),
            Err(GuestMemoryError::Overflow {
                gpa: gpa(u64::MAX),
                len: 2
            })
        );
        assert_eq!(memory.check_ram(gpa(0x5000), 0), Ok(()));
        assert_eq!(memory.writes(), 0);
        assert!(memory.pages.is_empty());
    }
}
