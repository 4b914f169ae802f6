//! The DomU's RAM as the backend sees it: its slot of the management
//! function's memory window (BAR 4, `resource4`), mapped shared, behind a
//! bounds-checked [`GuestMemory`].
//!
//! The guest writes the same memory while the backend reads it, so every
//! copy is volatile, with naturally aligned accesses (`sys::Mapping`'s
//! `read_volatile`/`write_volatile`): ring indices and descriptor fields
//! are loaded and stored whole, never torn or repeated.

use std::path::Path;

use anyhow::{Context, Result};
use keel_abi::mgmt::virtio::window;
use keel_virtio::{GuestMemory, MemoryError};

use crate::client::WindowSlot;
use crate::device::map_resource_at;
use crate::sys::Mapping;

/// Bytes a [`WindowMemory`] copies from and to; offsets are checked by the
/// caller ([`WindowMemory`]) and again by the implementation.
pub trait Ram {
    /// Bytes it holds.
    fn size(&self) -> u64;
    fn read(&self, offset: usize, out: &mut [u8]);
    fn write(&mut self, offset: usize, data: &[u8]);
}

impl Ram for Mapping {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read(&self, offset: usize, out: &mut [u8]) {
        self.read_volatile(offset, out)
    }

    fn write(&mut self, offset: usize, data: &[u8]) {
        self.write_volatile(offset, data)
    }
}

/// Guest-physical `[0, bytes)` over `ram`; every access outside it is
/// refused whole.
pub struct WindowMemory<R> {
    ram: R,
    bytes: u64,
}

impl<R: Ram> WindowMemory<R> {
    /// Guest RAM of `bytes` bytes (no more than `ram` holds).
    pub fn new(ram: R, bytes: u64) -> Self {
        let bytes = bytes.min(ram.size());
        Self { ram, bytes }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The offset of `[gpa, gpa + len)` if all of it is guest RAM.
    fn span(&self, gpa: u64, len: usize) -> Result<usize, MemoryError> {
        let error = MemoryError { gpa, len: len as u64 };
        let end = gpa.checked_add(len as u64).ok_or(error)?;
        if end > self.bytes {
            return Err(error);
        }
        usize::try_from(gpa).map_err(|_| error)
    }
}

impl<R: Ram> GuestMemory for WindowMemory<R> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let offset = self.span(gpa, buf.len())?;
        self.ram.read(offset, buf);
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        let offset = self.span(gpa, data.len())?;
        self.ram.write(offset, data);
        Ok(())
    }
}

/// Maps `slot` of the window of the management function at `dir` (its
/// sysfs directory): `ram_bytes` from the slot's offset in `resource4`.
pub fn map_window(dir: &Path, slot: &WindowSlot) -> Result<WindowMemory<Mapping>> {
    let name = format!("resource{}", window::BAR);
    let mapping = map_resource_at(dir, &name, slot.offset, slot.ram_bytes).with_context(|| {
        format!(
            "cannot map window slot {} ({} bytes of guest RAM)",
            slot.slot, slot.ram_bytes
        )
    })?;
    Ok(WindowMemory::new(mapping, slot.ram_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Ram for Vec<u8> {
        fn size(&self) -> u64 {
            self.len() as u64
        }

        fn read(&self, offset: usize, out: &mut [u8]) {
            out.copy_from_slice(&self[offset..offset + out.len()]);
        }

        fn write(&mut self, offset: usize, data: &[u8]) {
            self[offset..offset + data.len()].copy_from_slice(data);
        }
    }

    #[test]
    fn accesses_inside_guest_ram_go_through() {
        let mut memory = WindowMemory::new(vec![0u8; 4096], 4096);
        memory.write(0, &[1, 2, 3]).unwrap();
        memory.write_u16(4094, 0xbeef).unwrap();
        assert_eq!(memory.read_u16(4094), Ok(0xbeef));
        let mut out = [0; 3];
        memory.read(0, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3]);
        // Empty accesses up to the end are fine.
        assert_eq!(memory.read(4096, &mut []), Ok(()));
    }

    #[test]
    fn accesses_past_guest_ram_or_overflowing_are_refused_whole() {
        let mut memory = WindowMemory::new(vec![0u8; 4096], 4096);
        assert_eq!(memory.write(4095, &[1, 2]), Err(MemoryError { gpa: 4095, len: 2 }));
        assert_eq!(memory.read_u16(4095), Err(MemoryError { gpa: 4095, len: 2 }));
        assert!(memory.read(4097, &mut []).is_err());
        assert!(memory.read_u64(u64::MAX - 3).is_err(), "wraps");
        assert!(memory.read_u32(u64::MAX).is_err());
        // Nothing was written by the refused access.
        assert_eq!(memory.read_u16(4094), Ok(0));
    }

    #[test]
    fn guest_ram_is_never_larger_than_the_mapping() {
        // Keel's ram_bytes larger than what was mapped: the mapping bounds.
        let memory = WindowMemory::new(vec![0u8; 4096], 1 << 30);
        assert_eq!(memory.bytes(), 4096);
        assert!(memory.read_u16(4096).is_err());
        // And smaller: the rest of the mapping is not guest RAM.
        let memory = WindowMemory::new(vec![0u8; 4096], 1024);
        assert!(memory.read_u16(1024).is_err());
        assert_eq!(memory.read_u16(1022), Ok(0));
    }
}
