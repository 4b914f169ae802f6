//! A minimal AML encoder (ACPI 6.5 §20.2): just enough to declare named data
//! objects such as `Name(_S5_, Package(){5, 5, 0, 0})`, devices, and small
//! control methods (the power button's `_EVT`), so the DSDT stays readable
//! source rather than an opaque byte blob.

mod data;
mod name;
mod pkg_length;
pub mod resource;
mod term;

use alloc::vec::Vec;
use core::fmt;

pub use data::DataObject;
pub use name::encode_name_string;
pub use pkg_length::encode_pkg_length;
pub use term::{encode_if, encode_lequal, encode_method, encode_notify, MethodSerialization, TermArg};

const NAME_OP: u8 = 0x08;
const SCOPE_OP: u8 = 0x10;
const EXT_OP_PREFIX: u8 = 0x5B;
const DEVICE_OP: u8 = 0x82;

/// Encodes `DefName`: binds `path` to `value` in the namespace.
pub fn encode_name(path: &str, value: &DataObject<'_>, out: &mut Vec<u8>) -> Result<(), AmlError> {
    out.push(NAME_OP);
    encode_name_string(path, out)?;
    value.encode(out)
}

/// Encodes `DefScope`: opens `path` and places the already-encoded `body` in it.
pub fn encode_scope(path: &str, body: &[u8], out: &mut Vec<u8>) -> Result<(), AmlError> {
    let mut inner = Vec::new();
    encode_name_string(path, &mut inner)?;
    inner.extend_from_slice(body);
    out.push(SCOPE_OP);
    encode_pkg_length(inner.len(), out)?;
    out.extend_from_slice(&inner);
    Ok(())
}

/// Encodes `DefDevice`: declares device `name` holding the already-encoded `body`.
pub fn encode_device(name: &str, body: &[u8], out: &mut Vec<u8>) -> Result<(), AmlError> {
    let mut inner = Vec::new();
    encode_name_string(name, &mut inner)?;
    inner.extend_from_slice(body);
    out.extend_from_slice(&[EXT_OP_PREFIX, DEVICE_OP]);
    encode_pkg_length(inner.len(), out)?;
    out.extend_from_slice(&inner);
    Ok(())
}

/// The 32-bit compressed EISA id of a PNP id such as `PNP0501` (what iasl's
/// `EisaId()` produces), or `None` if `id` is not three letters and four hex digits.
pub fn eisa_id(id: &str) -> Option<u32> {
    let bytes = id.as_bytes();
    if bytes.len() != 7 || !bytes[..3].iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    let letters = bytes[..3].iter().fold(0u32, |acc, &b| (acc << 5) | u32::from(b - b'@'));
    let product = u32::from_str_radix(id.get(3..)?, 16).ok()?;
    let value = (letters << 16) | product;
    // Stored big-endian as the id reads, so byte-swap the little-endian integer.
    Some(value.swap_bytes())
}

/// Why a construct cannot be expressed in AML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmlError {
    /// A name segment is empty, longer than four characters, or uses
    /// characters other than `A-Z`, `0-9`, `_` (digits not first).
    InvalidNameSegment,
    /// MultiNamePath counts its segments in one byte.
    TooManyNameSegments(usize),
    /// AML strings are ASCII without embedded NULs.
    InvalidStringByte(u8),
    /// PkgLength cannot describe more than 2^28 - 1 bytes.
    PackageTooLarge(usize),
    /// Package counts its elements in one byte.
    TooManyPackageElements(usize),
    /// Only `Arg0`-`Arg6` exist.
    InvalidArg(u8),
    /// Only `Local0`-`Local7` exist.
    InvalidLocal(u8),
    /// MethodFlags hold an argument count of at most 7.
    TooManyMethodArgs(u8),
}

impl fmt::Display for AmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidNameSegment => write!(f, "invalid AML name segment"),
            Self::TooManyNameSegments(count) => {
                write!(f, "name path has {count} segments, at most 255 allowed")
            }
            Self::InvalidStringByte(byte) => write!(f, "byte {byte:#x} not allowed in AML string"),
            Self::PackageTooLarge(len) => write!(f, "{len}-byte package exceeds PkgLength range"),
            Self::TooManyPackageElements(count) => {
                write!(f, "package has {count} elements, at most 255 allowed")
            }
            Self::InvalidArg(index) => write!(f, "Arg{index} does not exist (Arg0-Arg6)"),
            Self::InvalidLocal(index) => write!(f, "Local{index} does not exist (Local0-Local7)"),
            Self::TooManyMethodArgs(count) => write!(f, "method takes {count} arguments, at most 7 allowed"),
        }
    }
}

impl core::error::Error for AmlError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_package_with_root_path() {
        let s5 = [
            DataObject::Integer(5),
            DataObject::Integer(5),
            DataObject::Integer(0),
            DataObject::Integer(0),
        ];
        let mut out = Vec::new();
        encode_name("\\_S5_", &DataObject::Package(&s5), &mut out).unwrap();
        // Hand-assembled per §20.2: NameOp, RootChar, NameSeg, PackageOp,
        // PkgLength 8, NumElements 4, BytePrefix 5 twice, ZeroOp twice.
        let expected = [
            0x08, 0x5C, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn name_with_invalid_path_is_rejected() {
        let mut out = Vec::new();
        let error = encode_name("lower", &DataObject::Integer(1), &mut out);
        assert_eq!(error, Err(AmlError::InvalidNameSegment));
    }
}

#[cfg(test)]
mod eisa_tests {
    use super::eisa_id;

    #[test]
    fn eisa_ids_match_iasl() {
        assert_eq!(eisa_id("PNP0501").map(u32::to_le_bytes), Some([0x41, 0xd0, 0x05, 0x01]));
        assert_eq!(eisa_id("PNP0A03"), Some(0x030a_d041));
        assert_eq!(eisa_id("pnp0501"), None);
        assert_eq!(eisa_id("PNP05"), None);
        assert_eq!(eisa_id("PNP05G1"), None);
    }
}
