//! A byte slice (or vector) as guest RAM: index = guest-physical address,
//! RAM from 0 to its length, nothing above. What tests and tools use when
//! guest memory is one buffer.

use alloc::vec::Vec;
use core::ops::Range;

use super::{span, GuestMemory, GuestMemoryError, GuestMemoryRead};
use crate::addr::GuestPhysAddr;

/// The slice indices of `[gpa, gpa + len)`, or the first address past the end.
/// An empty access touches nothing, so it succeeds anywhere (as for a map).
fn indices(ram: &[u8], gpa: GuestPhysAddr, len: u64) -> Result<Range<usize>, GuestMemoryError> {
    let range = span(gpa, len)?;
    if range.is_empty() {
        return Ok(0..0);
    }
    let ram_len = super::len_u64(ram.len());
    if range.end > ram_len {
        let first_outside = GuestPhysAddr::new(range.start.max(ram_len));
        return Err(GuestMemoryError::Unmapped { gpa: first_outside });
    }
    // Both ends are at most `ram.len()`, so they fit in usize.
    let start = usize::try_from(range.start).map_err(|_| GuestMemoryError::Unmapped { gpa })?;
    let end = usize::try_from(range.end).map_err(|_| GuestMemoryError::Unmapped { gpa })?;
    Ok(start..end)
}

impl GuestMemoryRead for [u8] {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        let range = indices(self, gpa, super::len_u64(buf.len()))?;
        let source = self.get(range).ok_or(GuestMemoryError::Unmapped { gpa })?;
        buf.copy_from_slice(source);
        Ok(())
    }

    fn check_ram(&self, gpa: GuestPhysAddr, len: u64) -> Result<(), GuestMemoryError> {
        indices(self, gpa, len).map(|_| ())
    }
}

impl GuestMemory for [u8] {
    fn write(&mut self, gpa: GuestPhysAddr, bytes: &[u8]) -> Result<(), GuestMemoryError> {
        let range = indices(self, gpa, super::len_u64(bytes.len()))?;
        let target = self.get_mut(range).ok_or(GuestMemoryError::Unmapped { gpa })?;
        target.copy_from_slice(bytes);
        Ok(())
    }

    fn fill(&mut self, gpa: GuestPhysAddr, len: u64, byte: u8) -> Result<(), GuestMemoryError> {
        let range = indices(self, gpa, len)?;
        self.get_mut(range)
            .ok_or(GuestMemoryError::Unmapped { gpa })?
            .fill(byte);
        Ok(())
    }
}

impl GuestMemoryRead for Vec<u8> {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        self.as_slice().read(gpa, buf)
    }

    fn check_ram(&self, gpa: GuestPhysAddr, len: u64) -> Result<(), GuestMemoryError> {
        self.as_slice().check_ram(gpa, len)
    }
}

impl GuestMemory for Vec<u8> {
    fn write(&mut self, gpa: GuestPhysAddr, bytes: &[u8]) -> Result<(), GuestMemoryError> {
        self.as_mut_slice().write(gpa, bytes)
    }

    fn fill(&mut self, gpa: GuestPhysAddr, len: u64, byte: u8) -> Result<(), GuestMemoryError> {
        GuestMemory::fill(self.as_mut_slice(), gpa, len, byte)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::GuestMemoryExt;

    fn gpa(raw: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(raw)
    }

    #[test]
    fn slice_is_ram_from_zero_to_its_length() {
        let mut ram = vec![0u8; 16];
        ram.write(gpa(12), &[1, 2, 3, 4]).unwrap();
        assert_eq!(&ram[12..], &[1, 2, 3, 4]);
        assert_eq!(ram.read_u32(gpa(12)), Ok(0x0403_0201));
        assert_eq!(ram.check_ram(gpa(0), 16), Ok(()));
        assert_eq!(ram.check_ram(gpa(16), 0), Ok(()));
        assert_eq!(ram.check_ram(gpa(1 << 40), 0), Ok(()), "empty accesses touch nothing");
    }

    #[test]
    fn access_past_the_end_names_the_first_missing_byte_and_changes_nothing() {
        let mut ram = vec![0u8; 16];
        assert_eq!(
            ram.write(gpa(13), &[1, 2, 3, 4]),
            Err(GuestMemoryError::Unmapped { gpa: gpa(16) })
        );
        assert_eq!(
            GuestMemory::fill(&mut ram, gpa(20), 1, 0xFF),
            Err(GuestMemoryError::Unmapped { gpa: gpa(20) })
        );
        assert!(ram.iter().all(|&byte| byte == 0));
        let mut buf = [0xAA; 4];
        assert_eq!(
            ram.read(gpa(14), &mut buf),
            Err(GuestMemoryError::Unmapped { gpa: gpa(16) })
        );
        assert_eq!(buf, [0xAA; 4], "a failed read leaves the buffer alone");
    }

    #[test]
    fn wrapping_ranges_overflow() {
        let ram = vec![0u8; 16];
        assert_eq!(
            ram.check_ram(gpa(u64::MAX), 2),
            Err(GuestMemoryError::Overflow {
                gpa: gpa(u64::MAX),
                len: 2
            })
        );
    }

    #[test]
    fn objects_round_trip_little_endian() {
        let mut ram = vec![0u8; 32];
        ram.write_obj(gpa(3), &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(ram[3], 0x88);
        assert_eq!(ram.read_obj::<u64>(gpa(3)), Ok(0x1122_3344_5566_7788));
        ram.write_u16(gpa(30), 0xBEEF).unwrap();
        assert_eq!(ram.read_array::<2>(gpa(30)), Ok([0xEF, 0xBE]));
        assert_eq!(ram.read_obj::<i16>(gpa(30)), Ok(0xBEEFu16 as i16));
        assert!(ram.write_u32(gpa(30), 0).is_err());
        ram.as_mut_slice().zero(gpa(0), 32).unwrap();
        assert!(ram.iter().all(|&byte| byte == 0));
    }

    #[test]
    fn trait_objects_work_with_every_helper() {
        let mut ram = vec![0u8; 32];
        let memory: &mut dyn GuestMemory = &mut ram;
        memory.write_obj(gpa(8), &0xCAFEu16).unwrap();
        memory.write_u32(gpa(12), 7).unwrap();
        assert_eq!(memory.read_obj::<u16>(gpa(8)), Ok(0xCAFE));
        let reader: &dyn GuestMemoryRead = &ram;
        assert_eq!(reader.read_u32(gpa(12)), Ok(7));
        assert_eq!(reader.read_array::<2>(gpa(8)), Ok([0xFE, 0xCA]));
    }
}
