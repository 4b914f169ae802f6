//! A sparse fake guest RAM and helpers to build page tables in it.

use std::collections::BTreeMap;

use keel_memory::{GuestMemoryError, GuestMemoryRead, GuestPhysAddr};

pub const P: u64 = 1 << 0;
pub const RW: u64 = 1 << 1;
pub const PS: u64 = 1 << 7;
pub const XD: u64 = 1 << 63;

pub const LONG_MODE_CR0: u64 = (1 << 31) | (1 << 16) | 1;
pub const LONG_MODE_CR4: u64 = 1 << 5;
pub const LONG_MODE_EFER: u64 = (1 << 8) | (1 << 10) | (1 << 11);

/// Byte-granular guest RAM; absent bytes read as "not RAM".
#[derive(Default)]
pub struct FakeMemory {
    bytes: BTreeMap<u64, u8>,
}

impl FakeMemory {
    pub fn write_u64(&mut self, gpa: u64, value: u64) {
        self.write_bytes(gpa, &value.to_le_bytes());
    }

    pub fn write_bytes(&mut self, gpa: u64, data: &[u8]) {
        for (offset, byte) in data.iter().enumerate() {
            self.bytes.insert(gpa + offset as u64, *byte);
        }
    }

    /// Writes `entry` into slot `index` of the table at `table`.
    pub fn set_entry(&mut self, table: u64, index: u64, entry: u64) {
        self.write_u64(table + index * 8, entry);
    }
}

impl GuestMemoryRead for FakeMemory {
    fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        self.check_ram(gpa, buf.len() as u64)?;
        for (offset, slot) in buf.iter_mut().enumerate() {
            *slot = self.bytes[&(gpa.as_u64() + offset as u64)];
        }
        Ok(())
    }

    fn check_ram(&self, gpa: GuestPhysAddr, len: u64) -> Result<(), GuestMemoryError> {
        match (gpa.as_u64()..gpa.as_u64() + len).find(|address| !self.bytes.contains_key(address)) {
            Some(missing) => Err(GuestMemoryError::Unmapped {
                gpa: GuestPhysAddr::new(missing),
            }),
            None => Ok(()),
        }
    }
}

/// Splits a 4-level linear address into its four table indices.
pub fn indices(linear: u64) -> [u64; 4] {
    [39, 30, 21, 12].map(|shift| (linear >> shift) & 0x1FF)
}
