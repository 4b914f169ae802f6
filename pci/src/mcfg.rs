//! The MCFG ACPI table: where each segment's ECAM window lies (PCI
//! Firmware Spec 3.x, "MCFG"): a 36-byte header, 8 reserved bytes, then
//! 16-byte entries of base address (u64), segment (u16), start and end bus
//! (u8 each) and 4 reserved bytes. The table is firmware data: lengths are
//! checked and nothing panics.

use alloc::vec::Vec;

use crate::Bdf;

const HEADER_LEN: usize = 36;
const ENTRIES_OFFSET: usize = HEADER_LEN + 8;
const ENTRY_LEN: usize = 16;

/// One ECAM window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcamWindow {
    pub base: u64,
    pub segment: u16,
    pub start_bus: u8,
    pub end_bus: u8,
}

impl EcamWindow {
    /// The physical address of `offset` in `function`'s 4 KiB of
    /// configuration space, `None` outside this window's buses.
    pub fn address(&self, function: Bdf, offset: u16) -> Option<u64> {
        if !(self.start_bus..=self.end_bus).contains(&function.bus) || offset >= 4096 {
            return None;
        }
        let index = u64::from(function.bus - self.start_bus) << 20
            | u64::from(function.device) << 15
            | u64::from(function.function) << 12;
        Some(self.base + index + u64::from(offset))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum McfgError {
    NotMcfg,
    /// The header's length disagrees with the bytes, or the entries do not
    /// fill the table in whole 16-byte entries.
    BadLength,
    BadChecksum,
    /// An entry whose bus range is inverted, or whose window does not fit
    /// in 64 bits, or is not 1 MiB aligned.
    BadEntry {
        index: usize,
    },
}

/// The windows an MCFG table lists.
pub fn parse(table: &[u8]) -> Result<Vec<EcamWindow>, McfgError> {
    if table.get(..4) != Some(b"MCFG") {
        return Err(McfgError::NotMcfg);
    }
    let length = table
        .get(4..8)
        .map(|bytes| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
        .ok_or(McfgError::BadLength)?;
    if length != table.len() || length < ENTRIES_OFFSET || !(length - ENTRIES_OFFSET).is_multiple_of(ENTRY_LEN) {
        return Err(McfgError::BadLength);
    }
    if table.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte)) != 0 {
        return Err(McfgError::BadChecksum);
    }
    table[ENTRIES_OFFSET..]
        .chunks_exact(ENTRY_LEN)
        .enumerate()
        .map(|(index, entry)| {
            let mut base = [0u8; 8];
            base.copy_from_slice(&entry[..8]);
            let window = EcamWindow {
                base: u64::from_le_bytes(base),
                segment: u16::from_le_bytes([entry[8], entry[9]]),
                start_bus: entry[10],
                end_bus: entry[11],
            };
            let buses = u64::from(
                window
                    .end_bus
                    .checked_sub(window.start_bus)
                    .ok_or(McfgError::BadEntry { index })?,
            ) + 1;
            let fits = window.base.checked_add(buses << 20).is_some();
            if !fits || !window.base.is_multiple_of(1 << 20) {
                return Err(McfgError::BadEntry { index });
            }
            Ok(window)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(u64, u16, u8, u8)]) -> Vec<u8> {
        let mut bytes = vec![0u8; ENTRIES_OFFSET];
        bytes[..4].copy_from_slice(b"MCFG");
        for &(base, segment, start, end) in entries {
            bytes.extend_from_slice(&base.to_le_bytes());
            bytes.extend_from_slice(&segment.to_le_bytes());
            bytes.extend_from_slice(&[start, end, 0, 0, 0, 0]);
        }
        let length = bytes.len() as u32;
        bytes[4..8].copy_from_slice(&length.to_le_bytes());
        let sum = bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
        bytes[9] = 0u8.wrapping_sub(sum);
        bytes
    }

    #[test]
    fn parses_windows_and_computes_addresses() {
        let windows = parse(&table(&[(0xb000_0000, 0, 0, 0xff)])).unwrap();
        assert_eq!(windows.len(), 1);
        let window = windows[0];
        let bdf = Bdf::new(2, 3, 1).unwrap();
        assert_eq!(
            window.address(bdf, 0x100),
            Some(0xb000_0000 + (2 << 20) + (3 << 15) + (1 << 12) + 0x100)
        );
        assert_eq!(window.address(bdf, 4096), None);
        let narrow = EcamWindow { start_bus: 4, ..window };
        assert_eq!(narrow.address(bdf, 0), None);
    }

    #[test]
    fn malformed_tables_are_refused() {
        assert_eq!(parse(b"APIC"), Err(McfgError::NotMcfg));
        let mut bad = table(&[(0xb000_0000, 0, 0, 0xff)]);
        bad.pop();
        assert_eq!(parse(&bad), Err(McfgError::BadLength));
        let mut bad = table(&[(0xb000_0000, 0, 0, 0xff)]);
        bad[20] ^= 1;
        assert_eq!(parse(&bad), Err(McfgError::BadChecksum));
        assert_eq!(
            parse(&table(&[(0xb000_0000, 0, 5, 4)])),
            Err(McfgError::BadEntry { index: 0 })
        );
        assert_eq!(
            parse(&table(&[(0xb000_1000, 0, 0, 0)])),
            Err(McfgError::BadEntry { index: 0 })
        );
        assert_eq!(
            parse(&table(&[(!0xf_ffff, 0, 0, 0xff)])),
            Err(McfgError::BadEntry { index: 0 })
        );
        // Random bytes never panic.
        let mut state = 0x1234_5678_9abc_def0u64;
        for len in 0..200 {
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            if len >= 4 {
                bytes[..4].copy_from_slice(b"MCFG");
            }
            let _ = parse(&bytes);
        }
    }
}
