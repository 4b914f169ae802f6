//! Data object encoding (ACPI 6.5 §20.2.3): integers, strings, packages.

use alloc::vec::Vec;

use super::{encode_pkg_length, AmlError};

const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const ONES_OP: u8 = 0xFF;
const BYTE_PREFIX: u8 = 0x0A;
const WORD_PREFIX: u8 = 0x0B;
const DWORD_PREFIX: u8 = 0x0C;
const STRING_PREFIX: u8 = 0x0D;
const QWORD_PREFIX: u8 = 0x0E;
const BUFFER_OP: u8 = 0x11;
const PACKAGE_OP: u8 = 0x12;
const NULL_CHAR: u8 = 0x00;

/// A constant AML value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataObject<'a> {
    Integer(u64),
    /// ASCII text without NULs.
    String(&'a str),
    Package(&'a [DataObject<'a>]),
    /// Raw bytes, e.g. a resource template.
    Buffer(&'a [u8]),
}

impl DataObject<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), AmlError> {
        match self {
            Self::Integer(value) => {
                encode_integer(*value, out);
                Ok(())
            }
            Self::String(text) => encode_string(text, out),
            Self::Package(elements) => encode_package(elements, out),
            Self::Buffer(bytes) => encode_buffer(bytes, out),
        }
    }
}

/// Uses the shortest encoding, as iasl does.
fn encode_integer(value: u64, out: &mut Vec<u8>) {
    match value {
        0 => out.push(ZERO_OP),
        1 => out.push(ONE_OP),
        // OnesOp is all-ones at the table's integer width; DSDT revision 2 makes that 64 bits.
        u64::MAX => out.push(ONES_OP),
        _ => {
            let bytes = value.to_le_bytes();
            let (prefix, width) = if value <= u64::from(u8::MAX) {
                (BYTE_PREFIX, 1)
            } else if value <= u64::from(u16::MAX) {
                (WORD_PREFIX, 2)
            } else if value <= u64::from(u32::MAX) {
                (DWORD_PREFIX, 4)
            } else {
                (QWORD_PREFIX, 8)
            };
            out.push(prefix);
            out.extend(bytes.iter().take(width));
        }
    }
}

fn encode_string(text: &str, out: &mut Vec<u8>) -> Result<(), AmlError> {
    if let Some(bad) = text.bytes().find(|b| *b == NULL_CHAR || !b.is_ascii()) {
        return Err(AmlError::InvalidStringByte(bad));
    }
    out.push(STRING_PREFIX);
    out.extend_from_slice(text.as_bytes());
    out.push(NULL_CHAR);
    Ok(())
}

fn encode_buffer(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), AmlError> {
    let mut body = Vec::new();
    encode_integer(bytes.len() as u64, &mut body);
    body.extend_from_slice(bytes);
    out.push(BUFFER_OP);
    encode_pkg_length(body.len(), out)?;
    out.extend_from_slice(&body);
    Ok(())
}

fn encode_package(elements: &[DataObject<'_>], out: &mut Vec<u8>) -> Result<(), AmlError> {
    let count = elements.len();
    let count_byte = u8::try_from(count).map_err(|_| AmlError::TooManyPackageElements(count))?;
    let mut body = Vec::new();
    body.push(count_byte);
    for element in elements {
        element.encode(&mut body)?;
    }
    out.push(PACKAGE_OP);
    encode_pkg_length(body.len(), out)?;
    out.extend_from_slice(&body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(object: DataObject<'_>) -> Result<Vec<u8>, AmlError> {
        let mut out = Vec::new();
        object.encode(&mut out).map(|()| out)
    }

    #[test]
    fn integers_use_the_shortest_form() {
        let cases: [(u64, &[u8]); 9] = [
            (0, &[0x00]),
            (1, &[0x01]),
            (2, &[0x0A, 0x02]),
            (0xFF, &[0x0A, 0xFF]),
            (0x100, &[0x0B, 0x00, 0x01]),
            (0xFFFF, &[0x0B, 0xFF, 0xFF]),
            (0x1_0000, &[0x0C, 0x00, 0x00, 0x01, 0x00]),
            (0x1_0000_0000, &[0x0E, 0, 0, 0, 0, 1, 0, 0, 0]),
            (u64::MAX, &[0xFF]),
        ];
        for (value, expected) in cases {
            assert_eq!(encoded(DataObject::Integer(value)), Ok(expected.to_vec()), "{value:#x}");
        }
    }

    #[test]
    fn strings_are_prefixed_and_nul_terminated() {
        assert_eq!(encoded(DataObject::String("Keel")), Ok(b"\x0DKeel\x00".to_vec()));
        assert_eq!(encoded(DataObject::String("")), Ok(vec![0x0D, 0x00]));
    }

    #[test]
    fn strings_with_nul_or_non_ascii_are_rejected() {
        assert_eq!(encoded(DataObject::String("a\0b")), Err(AmlError::InvalidStringByte(0)));
        assert_eq!(encoded(DataObject::String("é")), Err(AmlError::InvalidStringByte(0xC3)));
    }

    #[test]
    fn nested_packages_carry_their_own_lengths() {
        let inner = [DataObject::Integer(1)];
        let outer = [DataObject::Package(&inner), DataObject::String("A")];
        let expected = [
            0x12, 0x09, 0x02, // outer: PkgLength 9 covers itself, count and 7 element bytes
            0x12, 0x03, 0x01, 0x01, // inner: PkgLength 3, one element, OneOp
            0x0D, b'A', 0x00,
        ];
        assert_eq!(encoded(DataObject::Package(&outer)), Ok(expected.to_vec()));
    }

    #[test]
    fn empty_package_has_zero_count() {
        assert_eq!(encoded(DataObject::Package(&[])), Ok(vec![0x12, 0x02, 0x00]));
    }

    #[test]
    fn package_with_more_than_255_elements_is_rejected() {
        let elements = [DataObject::Integer(0); 256];
        assert_eq!(
            encoded(DataObject::Package(&elements)),
            Err(AmlError::TooManyPackageElements(256))
        );
    }

    #[test]
    fn large_package_uses_multibyte_pkg_length() {
        let elements = [DataObject::Integer(0x1234); 40];
        let bytes = encoded(DataObject::Package(&elements)).unwrap();
        // Body: count byte + 40 * 3 bytes = 121; with a two-byte PkgLength, 123 = 0x7B.
        assert_eq!(bytes.get(..4), Some(&[0x12, 0x4B, 0x07, 40][..]));
        assert_eq!(bytes.len(), 1 + 2 + 121);
    }
}
