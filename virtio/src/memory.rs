//! The one door to the driver's memory.
//!
//! Everything in this crate that touches guest RAM (rings, descriptor
//! tables, data buffers) goes through [`GuestMemory`], by copy: the queue
//! never holds a reference into guest memory, so a driver rewriting a ring
//! while the device reads it can change what the device *sees next*, never
//! what it already validated.
//!
//! The backend implements the trait over Dom0's mapping of the DomU's RAM
//! (the window); tests and fuzzing use [`SliceMemory`]. Implementations
//! check every access against what they can reach and fail it whole
//! rather than report a partial success.
//!
//! Over memory the guest writes concurrently (the window), an
//! implementation must copy with volatile or atomic accesses: the queue
//! copies each field once and orders its copies with fences, but the copies
//! themselves must be real loads and stores the compiler cannot merge,
//! repeat or drop.

/// An access that left the memory an implementation can reach (or that it
/// refused for another reason, such as a window not mapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryError {
    /// Guest-physical address of the first byte of the refused access.
    pub gpa: u64,
    /// Length of the refused access.
    pub len: u64,
}

/// Guest-physical memory as the device sees it. Addresses are
/// guest-physical; all multi-byte ring fields are little-endian (virtio
/// 1.x), which the helpers below handle.
pub trait GuestMemory {
    /// Fills `buf` from `[gpa, gpa + buf.len())`. All or nothing: on error
    /// the contents of `buf` are unspecified but no partial success is
    /// reported.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError>;

    /// Copies `data` to `[gpa, gpa + data.len())`, all or nothing.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError>;

    fn read_u16(&self, gpa: u64) -> Result<u16, MemoryError> {
        let mut bytes = [0; 2];
        self.read(gpa, &mut bytes)?;
        Ok(u16::from_le_bytes(bytes))
    }

    fn read_u32(&self, gpa: u64) -> Result<u32, MemoryError> {
        let mut bytes = [0; 4];
        self.read(gpa, &mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn read_u64(&self, gpa: u64) -> Result<u64, MemoryError> {
        let mut bytes = [0; 8];
        self.read(gpa, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn write_u16(&mut self, gpa: u64, value: u16) -> Result<(), MemoryError> {
        self.write(gpa, &value.to_le_bytes())
    }

    fn write_u32(&mut self, gpa: u64, value: u32) -> Result<(), MemoryError> {
        self.write(gpa, &value.to_le_bytes())
    }
}

impl<M: GuestMemory + ?Sized> GuestMemory for &mut M {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        (**self).read(gpa, buf)
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        (**self).write(gpa, data)
    }
}

/// Guest memory that is one byte slice starting at guest-physical `base`:
/// the test fake, the fuzzing memory, and a model for the backend's window
/// (one contiguous mapping of the DomU's RAM).
#[derive(Debug)]
pub struct SliceMemory<'a> {
    base: u64,
    bytes: &'a mut [u8],
}

impl<'a> SliceMemory<'a> {
    pub fn new(base: u64, bytes: &'a mut [u8]) -> Self {
        Self { base, bytes }
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.bytes
    }

    /// The index range of `[gpa, gpa + len)` in the slice, if all of it is there.
    fn span(&self, gpa: u64, len: usize) -> Result<core::ops::Range<usize>, MemoryError> {
        let error = MemoryError { gpa, len: len as u64 };
        let start = gpa.checked_sub(self.base).ok_or(error)?;
        let start = usize::try_from(start).map_err(|_| error)?;
        let end = start.checked_add(len).ok_or(error)?;
        if end > self.bytes.len() {
            return Err(error);
        }
        Ok(start..end)
    }
}

impl GuestMemory for SliceMemory<'_> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_memory_checks_every_edge() {
        let mut backing = [0u8; 16];
        let mut memory = SliceMemory::new(0x1000, &mut backing);
        memory.write(0x100E, &[1, 2]).unwrap();
        assert_eq!(memory.read_u16(0x100E), Ok(0x0201));
        assert_eq!(memory.write(0x100F, &[1, 2]), Err(MemoryError { gpa: 0x100F, len: 2 }));
        assert!(memory.read_u16(0xFFF).is_err(), "below base");
        assert!(memory.read_u16(u64::MAX).is_err(), "wraps");
        let mut empty = [];
        assert_eq!(memory.read(0x1010, &mut empty), Ok(()), "empty access at the end");
        assert!(memory.read(0x1011, &mut empty).is_err(), "empty access past the end");
    }
}
