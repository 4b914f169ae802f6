//! A 4 KiB `boot_params` image under construction.

use super::e820::E820Entry;
use super::offsets::*;
use crate::error::LoadError;

/// The bytes of a `boot_params` structure. Fixed-offset writes take the
/// offset as a const parameter so their bounds are checked at compile time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZeroPage {
    bytes: [u8; ZERO_PAGE_SIZE],
}

impl ZeroPage {
    pub(crate) fn new() -> Self {
        Self {
            bytes: [0; ZERO_PAGE_SIZE],
        }
    }

    pub fn as_bytes(&self) -> &[u8; ZERO_PAGE_SIZE] {
        &self.bytes
    }

    fn put<const OFFSET: usize, const N: usize>(&mut self, value: [u8; N]) {
        const { assert!(OFFSET + N <= ZERO_PAGE_SIZE) };
        self.bytes[OFFSET..OFFSET + N].copy_from_slice(&value);
    }

    pub(crate) fn set_u8<const OFFSET: usize>(&mut self, value: u8) {
        self.put::<OFFSET, 1>([value]);
    }

    pub(crate) fn set_u16<const OFFSET: usize>(&mut self, value: u16) {
        self.put::<OFFSET, 2>(value.to_le_bytes());
    }

    pub(crate) fn set_u32<const OFFSET: usize>(&mut self, value: u32) {
        self.put::<OFFSET, 4>(value.to_le_bytes());
    }

    pub(crate) fn set_u64<const OFFSET: usize>(&mut self, value: u64) {
        self.put::<OFFSET, 8>(value.to_le_bytes());
    }

    /// Sets a 64-bit quantity split into a legacy low field and an `ext_` high field.
    pub(crate) fn set_split_u64<const LOW: usize, const HIGH: usize>(&mut self, value: u64) {
        self.set_u32::<LOW>(value as u32);
        self.set_u32::<HIGH>((value >> 32) as u32);
    }

    pub(crate) fn u8_at<const OFFSET: usize>(&self) -> u8 {
        const { assert!(OFFSET < ZERO_PAGE_SIZE) };
        self.bytes[OFFSET]
    }

    /// Copies `bytes` to `offset`; used for the image's setup header, whose
    /// length comes from the image.
    pub(crate) fn copy_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), LoadError> {
        let end = offset.saturating_add(bytes.len());
        let destination = self.bytes.get_mut(offset..end).ok_or(LoadError::SetupHeaderTooLong {
            end: end as u64,
            max: ZERO_PAGE_SIZE as u64,
        })?;
        destination.copy_from_slice(bytes);
        Ok(())
    }

    /// Writes the e820 table and its entry count.
    pub(crate) fn set_e820(&mut self, entries: &[E820Entry]) -> Result<(), LoadError> {
        let too_many = LoadError::TooManyE820Entries {
            max: super::e820::E820_MAX_ENTRIES,
        };
        let count = u8::try_from(entries.len()).map_err(|_| too_many)?;
        let table = self
            .bytes
            .get_mut(E820_TABLE..)
            .ok_or(too_many)?
            .chunks_exact_mut(E820_ENTRY_SIZE);
        if entries.len() > table.len() || entries.len() > super::e820::E820_MAX_ENTRIES {
            return Err(too_many);
        }
        for (slot, entry) in table.zip(entries) {
            let (addr, rest) = slot.split_at_mut(8);
            let (size, kind) = rest.split_at_mut(8);
            addr.copy_from_slice(&entry.addr.to_le_bytes());
            size.copy_from_slice(&entry.size.to_le_bytes());
            kind.copy_from_slice(&(entry.kind as u32).to_le_bytes());
        }
        self.set_u8::<E820_ENTRIES>(count);
        Ok(())
    }
}
