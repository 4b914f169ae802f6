//! The 36-byte System Description Table header shared by every table but the
//! RSDP and FACS.

use alloc::vec::Vec;

use crate::bytes::{checksum_of, PutLe};
use crate::error::AcpiError;

pub(crate) const SDT_HEADER_LEN: usize = 36;
/// Identifies Keel as the ASL compiler/creator of the tables.
const CREATOR_ID: [u8; 4] = *b"KEEL";
const CREATOR_REVISION: u32 = 1;
const OEM_REVISION: u32 = 1;

/// Signature and revision of one table type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableKind {
    pub signature: [u8; 4],
    pub revision: u8,
}

/// Prefixes `body` with a header whose length and checksum cover the whole table.
pub(crate) fn assemble_table(kind: TableKind, oem_id: [u8; 6], body: &[u8]) -> Result<Vec<u8>, AcpiError> {
    let total_len = SDT_HEADER_LEN.checked_add(body.len()).ok_or(AcpiError::TableTooLarge)?;
    let length = u32::try_from(total_len).map_err(|_| AcpiError::TableTooLarge)?;
    let unchecked = encode_header(kind, oem_id, length, 0);
    let checksum = checksum_of(&[&unchecked, body]);
    let mut table = encode_header(kind, oem_id, length, checksum);
    table.extend_from_slice(body);
    Ok(table)
}

fn encode_header(kind: TableKind, oem_id: [u8; 6], length: u32, checksum: u8) -> Vec<u8> {
    let mut header = Vec::with_capacity(SDT_HEADER_LEN);
    header.put_bytes(&kind.signature);
    header.put_u32(length);
    header.put_u8(kind.revision);
    header.put_u8(checksum);
    header.put_bytes(&oem_id);
    header.put_bytes(&oem_table_id(kind.signature));
    header.put_u32(OEM_REVISION);
    header.put_bytes(&CREATOR_ID);
    header.put_u32(CREATOR_REVISION);
    header
}

/// "KEEL" followed by the signature, so each table's OEM table id is distinct.
fn oem_table_id(signature: [u8; 4]) -> [u8; 8] {
    let mut id = [0u8; 8];
    let (prefix, suffix) = id.split_at_mut(4);
    prefix.copy_from_slice(&CREATOR_ID);
    suffix.copy_from_slice(&signature);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_KIND: TableKind = TableKind {
        signature: *b"TEST",
        revision: 3,
    };

    #[test]
    fn header_fields_are_at_spec_offsets() {
        let table = assemble_table(TEST_KIND, *b"OEMID ", &[0xAA, 0xBB]).unwrap();
        assert_eq!(table.len(), 38);
        assert_eq!(&table[0..4], b"TEST");
        assert_eq!(&table[4..8], &38u32.to_le_bytes());
        assert_eq!(table[8], 3);
        assert_eq!(&table[10..16], b"OEMID ");
        assert_eq!(&table[16..24], b"KEELTEST");
        assert_eq!(&table[24..28], &OEM_REVISION.to_le_bytes());
        assert_eq!(&table[28..32], b"KEEL");
        assert_eq!(&table[32..36], &CREATOR_REVISION.to_le_bytes());
        assert_eq!(&table[36..], &[0xAA, 0xBB]);
    }

    #[test]
    fn whole_table_sums_to_zero() {
        let table = assemble_table(TEST_KIND, *b"OEMID ", &[1, 2, 3, 250]).unwrap();
        let sum = table.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
        assert_eq!(sum, 0);
    }
}
