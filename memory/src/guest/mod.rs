//! Guest-physical memory behind one checked interface.
//!
//! Everything Keel does to a guest's memory (loading a kernel, writing boot
//! structures, walking the guest's page tables, fetching an instruction)
//! goes through [`GuestMemoryRead`] and [`GuestMemory`]: copies of byte
//! ranges and little-endian values at typed [`GuestPhysAddr`]s that either
//! complete or fail with a [`GuestMemoryError`] naming the first byte that
//! is not RAM. No caller ever holds a host pointer or slice into guest RAM,
//! so RAM need not be one host block: [`GuestMemoryMap`] stitches it together
//! from regions (RAM backed by host memory at any host-physical address,
//! emulated MMIO, reserved holes, memory Keel shares with the guest), and a
//! plain byte slice serves as RAM at guest-physical 0 for tests and tools.

mod chunks;
mod error;
mod map;
mod object;
mod slice;

pub use chunks::ChunkPlan;
pub use error::GuestMemoryError;
pub use map::{GuestMemoryMap, MapError, MemoryKind, MemoryRegion};
pub use object::GuestObject;

use crate::addr::GuestPhysAddr;

/// Read access to guest-physical memory.
///
/// Implementations succeed only when every byte of the range is ordinary
/// guest RAM: an emulated device range, a hole or memory past the end of RAM
/// is an error, never device state or some other host memory, so a hostile
/// guest cannot make Keel read what is not its RAM by pointing its page
/// tables there. Ranges may span several RAM regions; an empty range touches
/// nothing and always succeeds.
pub trait GuestMemoryRead {
    /// Fills `buf` from guest-physical memory starting at `gpa`. All or
    /// nothing: on error `buf` is left unchanged.
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), GuestMemoryError>;

    /// Succeeds when every byte of `[gpa, gpa + len)` is guest RAM, so that
    /// reads and writes of that range will succeed.
    fn check_ram(&self, gpa: GuestPhysAddr, len: u64) -> Result<(), GuestMemoryError>;

    /// The byte at `gpa`.
    fn read_u8(&self, gpa: GuestPhysAddr) -> Result<u8, GuestMemoryError> {
        let mut bytes = [0; 1];
        self.read(gpa, &mut bytes)?;
        Ok(bytes[0])
    }

    /// The little-endian 16-bit value at `gpa`.
    fn read_u16(&self, gpa: GuestPhysAddr) -> Result<u16, GuestMemoryError> {
        let mut bytes = [0; 2];
        self.read(gpa, &mut bytes)?;
        Ok(u16::from_le_bytes(bytes))
    }

    /// The little-endian 32-bit value at `gpa`.
    fn read_u32(&self, gpa: GuestPhysAddr) -> Result<u32, GuestMemoryError> {
        let mut bytes = [0; 4];
        self.read(gpa, &mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    /// The little-endian 64-bit value at `gpa` (a paging-structure entry, say).
    fn read_u64(&self, gpa: GuestPhysAddr) -> Result<u64, GuestMemoryError> {
        let mut bytes = [0; 8];
        self.read(gpa, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }
}

/// Read and write access to guest-physical memory; see [`GuestMemoryRead`]
/// for what counts as accessible. A write that fails changes nothing.
pub trait GuestMemory: GuestMemoryRead {
    /// Copies `bytes` to guest-physical memory starting at `gpa`.
    fn write(&mut self, gpa: GuestPhysAddr, bytes: &[u8]) -> Result<(), GuestMemoryError>;

    /// Sets the `len` bytes from `gpa` to `byte`.
    fn fill(&mut self, gpa: GuestPhysAddr, len: u64, byte: u8) -> Result<(), GuestMemoryError>;

    /// Zeroes the `len` bytes from `gpa`.
    fn zero(&mut self, gpa: GuestPhysAddr, len: u64) -> Result<(), GuestMemoryError> {
        self.fill(gpa, len, 0)
    }

    fn write_u8(&mut self, gpa: GuestPhysAddr, value: u8) -> Result<(), GuestMemoryError> {
        self.write(gpa, &[value])
    }

    /// Stores `value` little-endian.
    fn write_u16(&mut self, gpa: GuestPhysAddr, value: u16) -> Result<(), GuestMemoryError> {
        self.write(gpa, &value.to_le_bytes())
    }

    /// Stores `value` little-endian.
    fn write_u32(&mut self, gpa: GuestPhysAddr, value: u32) -> Result<(), GuestMemoryError> {
        self.write(gpa, &value.to_le_bytes())
    }

    /// Stores `value` little-endian.
    fn write_u64(&mut self, gpa: GuestPhysAddr, value: u64) -> Result<(), GuestMemoryError> {
        self.write(gpa, &value.to_le_bytes())
    }
}

/// Typed object access on top of the byte interface, for every
/// [`GuestMemoryRead`]/[`GuestMemory`] including trait objects. Objects are
/// encoded and decoded explicitly ([`GuestObject`]), never transmuted.
pub trait GuestMemoryExt: GuestMemoryRead {
    /// Reads and decodes the object at `gpa`.
    fn read_obj<T: GuestObject>(&self, gpa: GuestPhysAddr) -> Result<T, GuestMemoryError> {
        let mut bytes = T::Bytes::default();
        self.read(gpa, bytes.as_mut())?;
        Ok(T::from_guest_bytes(bytes))
    }

    /// Encodes `value` and stores it at `gpa`.
    fn write_obj<T: GuestObject>(&mut self, gpa: GuestPhysAddr, value: &T) -> Result<(), GuestMemoryError>
    where
        Self: GuestMemory,
    {
        self.write(gpa, value.to_guest_bytes().as_ref())
    }

    /// The `N` bytes at `gpa`.
    fn read_array<const N: usize>(&self, gpa: GuestPhysAddr) -> Result<[u8; N], GuestMemoryError> {
        let mut bytes = [0; N];
        self.read(gpa, &mut bytes)?;
        Ok(bytes)
    }
}

impl<M: GuestMemoryRead + ?Sized> GuestMemoryExt for M {}

impl<M: GuestMemoryRead + ?Sized> GuestMemoryRead for &M {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        (**self).read(gpa, buf)
    }

    fn check_ram(&self, gpa: GuestPhysAddr, len: u64) -> Result<(), GuestMemoryError> {
        (**self).check_ram(gpa, len)
    }
}

impl<M: GuestMemoryRead + ?Sized> GuestMemoryRead for &mut M {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        (**self).read(gpa, buf)
    }

    fn check_ram(&self, gpa: GuestPhysAddr, len: u64) -> Result<(), GuestMemoryError> {
        (**self).check_ram(gpa, len)
    }
}

impl<M: GuestMemory + ?Sized> GuestMemory for &mut M {
    fn write(&mut self, gpa: GuestPhysAddr, bytes: &[u8]) -> Result<(), GuestMemoryError> {
        (**self).write(gpa, bytes)
    }

    fn fill(&mut self, gpa: GuestPhysAddr, len: u64, byte: u8) -> Result<(), GuestMemoryError> {
        (**self).fill(gpa, len, byte)
    }
}

/// `[gpa, gpa + len)` as a range of `u64`, or `Overflow` when it wraps.
pub(crate) fn span(gpa: GuestPhysAddr, len: u64) -> Result<core::ops::Range<u64>, GuestMemoryError> {
    let end = gpa
        .as_u64()
        .checked_add(len)
        .ok_or(GuestMemoryError::Overflow { gpa, len })?;
    Ok(gpa.as_u64()..end)
}

/// `usize` length as `u64` (lossless on every supported target).
pub(crate) fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}
