//! Extended System Description Table (ACPI 6.5 §5.2.8): 64-bit table pointers.

use alloc::vec::Vec;

use crate::bytes::PutLe;
use crate::error::AcpiError;
use crate::sdt::{assemble_table, TableKind, SDT_HEADER_LEN};

const KIND: TableKind = TableKind {
    signature: *b"XSDT",
    revision: 1,
};

pub(crate) fn xsdt_len(entry_count: usize) -> usize {
    SDT_HEADER_LEN + entry_count * 8
}

pub(crate) fn build_xsdt(oem_id: [u8; 6], table_gpas: &[u64]) -> Result<Vec<u8>, AcpiError> {
    let mut body = Vec::with_capacity(table_gpas.len() * 8);
    table_gpas.iter().for_each(|gpa| body.put_u64(*gpa));
    assemble_table(KIND, oem_id, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_follow_header_as_u64() {
        let xsdt = build_xsdt(*b"KEEL  ", &[0x1000, 0x1_0000_2000]).unwrap();
        assert_eq!(xsdt.len(), xsdt_len(2));
        assert_eq!(&xsdt[0..4], b"XSDT");
        assert_eq!(&xsdt[36..44], &0x1000u64.to_le_bytes());
        assert_eq!(&xsdt[44..52], &0x1_0000_2000u64.to_le_bytes());
    }
}
