//! Root System Description Pointer (ACPI 6.5 §5.2.5), revision 2 form.

use alloc::vec::Vec;

use crate::bytes::{checksum_of, PutLe};

pub(crate) const RSDP_LEN: usize = 36;
/// Firmware places the RSDP on a 16-byte boundary; legacy scanners rely on it.
pub(crate) const RSDP_ALIGN: u64 = 16;
const SIGNATURE: [u8; 8] = *b"RSD PTR ";
/// Revision 2 (ACPI 2.0+) adds the XSDT address and extended checksum.
const REVISION: u8 = 2;

/// Keel publishes only an XSDT; a zero RSDT address tells the OS there is none.
pub(crate) fn build_rsdp(oem_id: [u8; 6], xsdt_gpa: u64) -> Vec<u8> {
    let checksum = checksum_of(&[&acpi1_part(oem_id, 0)]);
    let acpi1 = acpi1_part(oem_id, checksum);
    let extended_checksum = checksum_of(&[&acpi1, &acpi2_part(xsdt_gpa, 0)]);
    let mut rsdp = acpi1;
    rsdp.extend_from_slice(&acpi2_part(xsdt_gpa, extended_checksum));
    rsdp
}

/// The first 20 bytes, which the ACPI 1.0 checksum covers.
fn acpi1_part(oem_id: [u8; 6], checksum: u8) -> Vec<u8> {
    let mut part = Vec::with_capacity(20);
    part.put_bytes(&SIGNATURE);
    part.put_u8(checksum);
    part.put_bytes(&oem_id);
    part.put_u8(REVISION);
    part.put_u32(0);
    part
}

fn acpi2_part(xsdt_gpa: u64, extended_checksum: u8) -> Vec<u8> {
    let mut part = Vec::with_capacity(RSDP_LEN - 20);
    part.put_u32(RSDP_LEN as u32);
    part.put_u64(xsdt_gpa);
    part.put_u8(extended_checksum);
    part.put_bytes(&[0; 3]);
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    fn byte_sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
    }

    #[test]
    fn layout_and_both_checksums() {
        let rsdp = build_rsdp(*b"KEEL  ", 0x1234_5678_9ABC);
        assert_eq!(rsdp.len(), RSDP_LEN);
        assert_eq!(&rsdp[0..8], b"RSD PTR ");
        assert_eq!(&rsdp[9..15], b"KEEL  ");
        assert_eq!(rsdp[15], 2);
        assert_eq!(&rsdp[16..20], &[0; 4]);
        assert_eq!(&rsdp[20..24], &36u32.to_le_bytes());
        assert_eq!(&rsdp[24..32], &0x1234_5678_9ABCu64.to_le_bytes());
        assert_eq!(&rsdp[33..36], &[0; 3]);
        assert_eq!(byte_sum(&rsdp[..20]), 0);
        assert_eq!(byte_sum(&rsdp), 0);
    }
}
