//! PkgLength encoding (ACPI 6.5 §20.2.4): a 1-4 byte length that counts itself.

use alloc::vec::Vec;

use super::AmlError;

const MAX_FOLLOWING_BYTES: u32 = 3;
/// A one-byte PkgLength keeps six bits of length.
const ONE_BYTE_LIMIT: u32 = 1 << 6;

/// Writes the PkgLength for a construct whose remaining body (everything after
/// the PkgLength) is `body_len` bytes long.
pub fn encode_pkg_length(body_len: usize, out: &mut Vec<u8>) -> Result<(), AmlError> {
    let too_large = AmlError::PackageTooLarge(body_len);
    let body_len = u32::try_from(body_len).map_err(|_| too_large)?;
    for following in 0..=MAX_FOLLOWING_BYTES {
        // The encoded length includes the PkgLength bytes themselves.
        let total = body_len.checked_add(1 + following).ok_or(too_large)?;
        let limit = if following == 0 {
            ONE_BYTE_LIMIT
        } else {
            // Lead byte holds the low nibble, each following byte eight more bits.
            1 << (4 + 8 * following)
        };
        if total < limit {
            write_pkg_length(total, following, out);
            return Ok(());
        }
    }
    Err(too_large)
}

fn write_pkg_length(total: u32, following: u32, out: &mut Vec<u8>) {
    let [low, ..] = total.to_le_bytes();
    if following == 0 {
        out.push(low);
        return;
    }
    let byte_count_bits = u8::try_from(following << 6).unwrap_or_default();
    out.push(byte_count_bits | (low & 0x0F));
    let high = (total >> 4).to_le_bytes();
    out.extend(high.iter().take(following as usize));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(body_len: usize) -> Result<Vec<u8>, AmlError> {
        let mut out = Vec::new();
        encode_pkg_length(body_len, &mut out).map(|()| out)
    }

    #[test]
    fn small_lengths_fit_one_byte_and_count_themselves() {
        assert_eq!(encoded(0), Ok(vec![0x01]));
        assert_eq!(encoded(7), Ok(vec![0x08]));
        assert_eq!(encoded(62), Ok(vec![0x3F]));
    }

    #[test]
    fn two_byte_form_starts_at_63_body_bytes() {
        // 63 + 2 = 65 = 0x41: low nibble 1 in the lead byte, 0x4 in the next.
        assert_eq!(encoded(63), Ok(vec![0x41, 0x04]));
        assert_eq!(encoded(0x0FFD), Ok(vec![0x4F, 0xFF]));
    }

    #[test]
    fn three_and_four_byte_forms() {
        // 0x0FFE + 3 = 0x1001.
        assert_eq!(encoded(0x0FFE), Ok(vec![0x81, 0x00, 0x01]));
        // 0x0F_FFFD + 3 = 0x10_0000 no longer fits 20 bits, so four bytes: 0x10_0001.
        assert_eq!(encoded(0x0F_FFFD), Ok(vec![0xC1, 0x00, 0x00, 0x01]));
    }

    #[test]
    fn largest_encodable_length() {
        let body = (1usize << 28) - 1 - 4;
        assert_eq!(encoded(body), Ok(vec![0xCF, 0xFF, 0xFF, 0xFF]));
        assert_eq!(encoded(body + 1), Err(AmlError::PackageTooLarge(body + 1)));
    }
}
