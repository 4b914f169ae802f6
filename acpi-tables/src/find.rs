//! Finding a table in the firmware's ACPI tables on the machine Keel boots
//! on: from the root table the RSDP names (XSDT, or RSDT on ACPI 1.0
//! firmware) to the first table with a given signature. Firmware data is
//! not trusted: every length is bounded, every checksum verified, and the
//! table found is returned as a copy, so a later change in memory cannot
//! change what was checked.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// The longest table accepted (real ones are a few KiB; a DSDT can reach
/// a few hundred).
pub const MAX_TABLE_LEN: u32 = 1 << 20;
const HEADER_LEN: usize = 36;

/// Reads host-physical memory.
pub trait PhysicalMemory {
    /// Fills `buf` from `address`; `Err` where that memory cannot be read.
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), Unreadable>;
}

/// The memory asked for cannot be read (outside what the reader maps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable;

/// The root table, as the RSDP gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootTable {
    /// ACPI 2.0+: 64-bit entries.
    Xsdt(u64),
    /// ACPI 1.0: 32-bit entries.
    Rsdt(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindError {
    Unreadable {
        address: u64,
    },
    /// The root table's signature is not XSDT/RSDT, or its length is bad.
    BadRoot,
    BadLength {
        signature: [u8; 4],
        address: u64,
        length: u32,
    },
    BadChecksum {
        signature: [u8; 4],
        address: u64,
    },
}

impl fmt::Display for FindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn name(signature: &[u8; 4]) -> &str {
            core::str::from_utf8(signature).unwrap_or("????")
        }
        match self {
            Self::Unreadable { address } => write!(f, "ACPI memory at {address:#x} is not readable"),
            Self::BadRoot => f.write_str("the root table (XSDT/RSDT) is malformed"),
            Self::BadLength {
                signature,
                address,
                length,
            } => write!(f, "{} at {address:#x} claims {length} bytes", name(signature)),
            Self::BadChecksum { signature, address } => {
                write!(f, "{} at {address:#x} has a bad checksum", name(signature))
            }
        }
    }
}

/// Which of several tables with one signature to take. Firmware lists a
/// signature like DMAR once; a second copy comes from a test harness
/// (QEMU's `-acpitable` appends its tables after the firmware's own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Occurrence {
    #[default]
    First,
    Last,
}

/// The first table with `signature` the root table lists, checked and
/// copied; `Ok(None)` when there is none. A listed table that is itself
/// malformed is an error only if it has the signature looked for.
pub fn find_table(
    memory: &impl PhysicalMemory,
    root: RootTable,
    signature: [u8; 4],
) -> Result<Option<Vec<u8>>, FindError> {
    find_table_occurrence(memory, root, signature, Occurrence::First)
}

/// As [`find_table`], taking the first or the last table with `signature`
/// the root table lists (only the one taken is read whole and checked).
pub fn find_table_occurrence(
    memory: &impl PhysicalMemory,
    root: RootTable,
    signature: [u8; 4],
    occurrence: Occurrence,
) -> Result<Option<Vec<u8>>, FindError> {
    let (address, expected, entry_len) = match root {
        RootTable::Xsdt(address) => (address, *b"XSDT", 8),
        RootTable::Rsdt(address) => (u64::from(address), *b"RSDT", 4),
    };
    let root_table = read_table(memory, address).map_err(|error| match error {
        FindError::Unreadable { .. } => error,
        _ => FindError::BadRoot,
    })?;
    if root_table[..4] != expected {
        return Err(FindError::BadRoot);
    }
    let entries = &root_table[HEADER_LEN..];
    if entries.len() % entry_len != 0 {
        return Err(FindError::BadRoot);
    }
    let mut found = None;
    for entry in entries.chunks_exact(entry_len) {
        let mut raw = [0u8; 8];
        raw[..entry_len].copy_from_slice(entry);
        let table_address = u64::from_le_bytes(raw);
        let mut header = [0u8; 4];
        if memory.read(table_address, &mut header).is_err() {
            // Firmware lists tables it never filled in; skip what cannot be read.
            continue;
        }
        if header == signature {
            found = Some(table_address);
            if occurrence == Occurrence::First {
                break;
            }
        }
    }
    found.map(|address| read_table(memory, address)).transpose()
}

/// Reads one table whole: header, bounded length, checksum.
fn read_table(memory: &impl PhysicalMemory, address: u64) -> Result<Vec<u8>, FindError> {
    let mut header = [0u8; HEADER_LEN];
    memory
        .read(address, &mut header)
        .map_err(|Unreadable| FindError::Unreadable { address })?;
    let signature = [header[0], header[1], header[2], header[3]];
    let length = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if (length as usize) < HEADER_LEN || length > MAX_TABLE_LEN {
        return Err(FindError::BadLength {
            signature,
            address,
            length,
        });
    }
    let mut table = vec![0u8; length as usize];
    memory
        .read(address, &mut table)
        .map_err(|Unreadable| FindError::Unreadable { address })?;
    if table.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte)) != 0 {
        return Err(FindError::BadChecksum { signature, address });
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Sparse memory: regions of bytes at addresses.
    #[derive(Default)]
    struct Memory(BTreeMap<u64, Vec<u8>>);

    impl PhysicalMemory for Memory {
        fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
            let (start, bytes) = self.0.range(..=address).next_back().ok_or(Unreadable)?;
            let offset = usize::try_from(address - start).map_err(|_| Unreadable)?;
            let end = offset.checked_add(buf.len()).ok_or(Unreadable)?;
            buf.copy_from_slice(bytes.get(offset..end).ok_or(Unreadable)?);
            Ok(())
        }
    }

    fn table(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; HEADER_LEN];
        bytes[..4].copy_from_slice(signature);
        bytes.extend_from_slice(body);
        let length = bytes.len() as u32;
        bytes[4..8].copy_from_slice(&length.to_le_bytes());
        let sum = bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
        bytes[9] = 0u8.wrapping_sub(sum);
        bytes
    }

    fn xsdt(entries: &[u64]) -> Vec<u8> {
        let body: Vec<u8> = entries.iter().flat_map(|entry| entry.to_le_bytes()).collect();
        table(b"XSDT", &body)
    }

    fn machine() -> Memory {
        let mut memory = Memory::default();
        memory.0.insert(0x1000, xsdt(&[0x2000, 0x3000, 0x9000_0000]));
        memory.0.insert(0x2000, table(b"APIC", &[1, 2, 3]));
        memory.0.insert(0x3000, table(b"DMAR", &[39, 1, 0, 0]));
        memory
    }

    #[test]
    fn finds_a_listed_table_and_skips_unreadable_entries() {
        let memory = machine();
        let dmar = find_table(&memory, RootTable::Xsdt(0x1000), *b"DMAR").unwrap().unwrap();
        assert_eq!(&dmar[..4], b"DMAR");
        assert_eq!(dmar.len(), HEADER_LEN + 4);
        assert_eq!(find_table(&memory, RootTable::Xsdt(0x1000), *b"HPET"), Ok(None));
    }

    #[test]
    fn the_first_or_the_last_of_two_tables_is_taken() {
        let mut memory = machine();
        memory.0.insert(0x1000, xsdt(&[0x2000, 0x3000, 0x9000_0000, 0x4000]));
        memory.0.insert(0x4000, table(b"DMAR", &[38, 1, 0, 0, 0, 0]));
        let root = RootTable::Xsdt(0x1000);
        let first = find_table_occurrence(&memory, root, *b"DMAR", Occurrence::First)
            .unwrap()
            .unwrap();
        let last = find_table_occurrence(&memory, root, *b"DMAR", Occurrence::Last)
            .unwrap()
            .unwrap();
        assert_eq!((first.len(), last.len()), (HEADER_LEN + 4, HEADER_LEN + 6));
        assert_eq!(find_table(&memory, root, *b"DMAR").unwrap().unwrap(), first);
        assert_eq!(
            find_table_occurrence(&memory, root, *b"HPET", Occurrence::Last),
            Ok(None)
        );
        // Only the table taken is checked.
        let mut bad = table(b"DMAR", &[39, 1, 0, 0]);
        bad[10] ^= 0xff;
        memory.0.insert(0x3000, bad);
        assert!(find_table_occurrence(&memory, root, *b"DMAR", Occurrence::Last).is_ok());
        assert!(find_table(&memory, root, *b"DMAR").is_err());
    }

    #[test]
    fn an_rsdt_has_32_bit_entries() {
        let mut memory = machine();
        memory.0.insert(0x1000, table(b"RSDT", &[0x00, 0x30, 0, 0]));
        let dmar = find_table(&memory, RootTable::Rsdt(0x1000), *b"DMAR").unwrap();
        assert!(dmar.is_some());
    }

    #[test]
    fn broken_tables_are_errors_not_panics() {
        let mut memory = machine();
        let mut bad = table(b"DMAR", &[39, 1, 0, 0]);
        bad[10] ^= 0xff;
        memory.0.insert(0x3000, bad);
        assert_eq!(
            find_table(&memory, RootTable::Xsdt(0x1000), *b"DMAR"),
            Err(FindError::BadChecksum {
                signature: *b"DMAR",
                address: 0x3000
            })
        );
        let mut huge = table(b"DMAR", &[]);
        huge[4..8].copy_from_slice(&(MAX_TABLE_LEN + 1).to_le_bytes());
        memory.0.insert(0x3000, huge);
        assert!(matches!(
            find_table(&memory, RootTable::Xsdt(0x1000), *b"DMAR"),
            Err(FindError::BadLength { .. })
        ));
        let mut short = table(b"DMAR", &[]);
        short[4..8].copy_from_slice(&8u32.to_le_bytes());
        memory.0.insert(0x3000, short);
        assert!(matches!(
            find_table(&memory, RootTable::Xsdt(0x1000), *b"DMAR"),
            Err(FindError::BadLength { length: 8, .. })
        ));
        // A table that runs past readable memory.
        let mut truncated = table(b"DMAR", &[0; 16]);
        truncated.truncate(40);
        memory.0.insert(0x3000, truncated);
        assert!(matches!(
            find_table(&memory, RootTable::Xsdt(0x1000), *b"DMAR"),
            Err(FindError::Unreadable { .. })
        ));
        // The root table itself.
        assert_eq!(
            find_table(&memory, RootTable::Rsdt(0x1000), *b"DMAR"),
            Err(FindError::BadRoot),
            "an XSDT where an RSDT should be"
        );
        memory.0.insert(0x1000, table(b"XSDT", &[1, 2, 3]));
        assert_eq!(
            find_table(&memory, RootTable::Xsdt(0x1000), *b"DMAR"),
            Err(FindError::BadRoot)
        );
        assert_eq!(
            find_table(&Memory::default(), RootTable::Xsdt(0x1000), *b"DMAR"),
            Err(FindError::Unreadable { address: 0x1000 })
        );
    }
}
