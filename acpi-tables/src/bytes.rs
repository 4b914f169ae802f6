//! Little-endian serialisation helpers: every ACPI structure is little-endian.

use alloc::vec::Vec;

pub(crate) trait PutLe {
    fn put_u8(&mut self, value: u8);
    fn put_u16(&mut self, value: u16);
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
    fn put_bytes(&mut self, bytes: &[u8]);
}

impl PutLe for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }

    fn put_u16(&mut self, value: u16) {
        self.extend_from_slice(&value.to_le_bytes());
    }

    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_le_bytes());
    }

    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_le_bytes());
    }

    fn put_bytes(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// The byte that makes the sum of `parts` plus itself zero modulo 256, as every
/// ACPI checksum field requires.
pub(crate) fn checksum_of(parts: &[&[u8]]) -> u8 {
    let sum = parts
        .iter()
        .flat_map(|part| part.iter())
        .fold(0u8, |acc, byte| acc.wrapping_add(*byte));
    0u8.wrapping_sub(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_little_endian() {
        let mut out = Vec::new();
        out.put_u8(0x01);
        out.put_u16(0x0302);
        out.put_u32(0x0706_0504);
        out.put_u64(0x0f0e_0d0c_0b0a_0908);
        out.put_bytes(b"xy");
        let expected: Vec<u8> = (1..=15).chain([b'x', b'y']).collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn checksum_makes_total_sum_zero() {
        let a = [0xffu8, 0x10, 0x22];
        let b = [0x80u8, 0x7f];
        let checksum = checksum_of(&[&a, &b]);
        let total = a
            .iter()
            .chain(b.iter())
            .fold(checksum, |acc, byte| acc.wrapping_add(*byte));
        assert_eq!(total, 0);
    }

    #[test]
    fn checksum_of_nothing_is_zero() {
        assert_eq!(checksum_of(&[]), 0);
    }
}
