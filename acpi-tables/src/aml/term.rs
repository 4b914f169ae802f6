//! Control methods and the few statements in them Keel's AML needs (ACPI 6.5
//! §20.2.5): `Method`, `If`, `LEqual`, `Notify`, and their operands. As with
//! [`super::encode_scope`], bodies are passed already encoded.

use alloc::vec::Vec;

use super::{encode_name_string, encode_pkg_length, AmlError, DataObject};

const METHOD_OP: u8 = 0x14;
const IF_OP: u8 = 0xA0;
const LEQUAL_OP: u8 = 0x93;
const NOTIFY_OP: u8 = 0x86;
const LOCAL0_OP: u8 = 0x60;
const ARG0_OP: u8 = 0x68;
/// Local0-Local7.
const LOCAL_COUNT: u8 = 8;
/// Arg0-Arg6.
const ARG_COUNT: u8 = 7;
/// MethodFlags bit 3; bits 0-2 hold the argument count, bits 4-7 the SyncLevel (always 0 here).
const SERIALIZE_FLAG: u8 = 1 << 3;

/// An operand a statement evaluates: a constant, a method argument or a local.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermArg {
    /// Encoded in its shortest form, as iasl does.
    Integer(u64),
    /// `Arg0`-`Arg6`.
    Arg(u8),
    /// `Local0`-`Local7`.
    Local(u8),
}

impl TermArg {
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), AmlError> {
        match *self {
            Self::Integer(value) => DataObject::Integer(value).encode(out),
            Self::Arg(index) if index < ARG_COUNT => {
                out.push(ARG0_OP + index);
                Ok(())
            }
            Self::Arg(index) => Err(AmlError::InvalidArg(index)),
            Self::Local(index) if index < LOCAL_COUNT => {
                out.push(LOCAL0_OP + index);
                Ok(())
            }
            Self::Local(index) => Err(AmlError::InvalidLocal(index)),
        }
    }
}

/// Whether the interpreter runs a method one invocation at a time (ASL's
/// `Serialized`). A method that creates no named objects needs not be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodSerialization {
    NotSerialized,
    Serialized,
}

/// Encodes `DefMethod`: `Method (name, arg_count, serialization) { body }`
/// with SyncLevel 0.
pub fn encode_method(
    name: &str,
    arg_count: u8,
    serialization: MethodSerialization,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AmlError> {
    if arg_count > ARG_COUNT {
        return Err(AmlError::TooManyMethodArgs(arg_count));
    }
    let mut flags = arg_count;
    if serialization == MethodSerialization::Serialized {
        flags |= SERIALIZE_FLAG;
    }
    let mut inner = Vec::new();
    encode_name_string(name, &mut inner)?;
    inner.push(flags);
    inner.extend_from_slice(body);
    out.push(METHOD_OP);
    encode_pkg_length(inner.len(), out)?;
    out.extend_from_slice(&inner);
    Ok(())
}

/// Encodes `DefIfElse` without an `Else`: `If (predicate) { body }`, where
/// `predicate` is an already-encoded expression such as [`encode_lequal`]'s.
pub fn encode_if(predicate: &[u8], body: &[u8], out: &mut Vec<u8>) -> Result<(), AmlError> {
    out.push(IF_OP);
    encode_pkg_length(predicate.len() + body.len(), out)?;
    out.extend_from_slice(predicate);
    out.extend_from_slice(body);
    Ok(())
}

/// Encodes `DefLEqual`: `LEqual (left, right)` (ASL+ `left == right`).
pub fn encode_lequal(left: TermArg, right: TermArg, out: &mut Vec<u8>) -> Result<(), AmlError> {
    out.push(LEQUAL_OP);
    left.encode(out)?;
    right.encode(out)
}

/// Encodes `DefNotify`: `Notify (object, value)`, which queues notification
/// `value` for the device (or thermal zone, processor) at path `object`.
pub fn encode_notify(object: &str, value: TermArg, out: &mut Vec<u8>) -> Result<(), AmlError> {
    out.push(NOTIFY_OP);
    encode_name_string(object, out)?;
    value.encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(encode: impl FnOnce(&mut Vec<u8>) -> Result<(), AmlError>) -> Result<Vec<u8>, AmlError> {
        let mut out = Vec::new();
        encode(&mut out).map(|()| out)
    }

    #[test]
    fn power_button_event_method_matches_iasl() {
        // iasl -on of: Method (_EVT, 1, NotSerialized) { If (LEqual (Arg0, 23)) { Notify (\_SB.PWRB, 0x80) } }
        let expected = [
            0x14, 0x19, b'_', b'E', b'V', b'T', 0x01, // MethodOp, PkgLength, name, one argument
            0xA0, 0x12, // IfOp, PkgLength
            0x93, 0x68, 0x0A, 0x17, // LEqual (Arg0, 0x17)
            0x86, 0x5C, 0x2E, b'_', b'S', b'B', b'_', b'P', b'W', b'R', b'B', 0x0A, 0x80, // Notify
        ];
        let method = encoded(|out| {
            let mut predicate = Vec::new();
            encode_lequal(TermArg::Arg(0), TermArg::Integer(23), &mut predicate)?;
            let mut notify = Vec::new();
            encode_notify("\\_SB.PWRB", TermArg::Integer(0x80), &mut notify)?;
            let mut body = Vec::new();
            encode_if(&predicate, &notify, &mut body)?;
            encode_method("_EVT", 1, MethodSerialization::NotSerialized, &body, out)
        });
        assert_eq!(method, Ok(expected.to_vec()));
    }

    #[test]
    fn method_flags_and_operands_match_iasl() {
        // iasl -on of: Method (M000, 0, NotSerialized) {}
        let empty = encoded(|out| encode_method("M000", 0, MethodSerialization::NotSerialized, &[], out));
        assert_eq!(empty, Ok(vec![0x14, 0x06, b'M', b'0', b'0', b'0', 0x00]));
        // Method (M002, 7, NotSerialized) { If (LEqual (Arg6, 0x1234)) {} }
        let last_arg = encoded(|out| {
            let mut predicate = Vec::new();
            encode_lequal(TermArg::Arg(6), TermArg::Integer(0x1234), &mut predicate)?;
            let mut body = Vec::new();
            encode_if(&predicate, &[], &mut body)?;
            encode_method("M002", 7, MethodSerialization::NotSerialized, &body, out)
        });
        let expected = [
            0x14, 0x0D, b'M', b'0', b'0', b'2', 0x07, 0xA0, 0x06, 0x93, 0x6E, 0x0B, 0x34, 0x12,
        ];
        assert_eq!(last_arg, Ok(expected.to_vec()));
        // Method (M001, 7, Serialized) { Local0 = Arg0  If (LEqual (Local0, One)) { Notify (PWRB, 0x02) } }
        // (the Store, 0x70 0x68 0x60, is passed through as raw body bytes).
        let serialized = encoded(|out| {
            let mut predicate = Vec::new();
            encode_lequal(TermArg::Local(0), TermArg::Integer(1), &mut predicate)?;
            let mut notify = Vec::new();
            encode_notify("PWRB", TermArg::Integer(2), &mut notify)?;
            let mut body = vec![0x70, 0x68, 0x60];
            encode_if(&predicate, &notify, &mut body)?;
            encode_method("M001", 7, MethodSerialization::Serialized, &body, out)
        });
        let expected = [
            0x14, 0x15, b'M', b'0', b'0', b'1', 0x0F, 0x70, 0x68, 0x60, 0xA0, 0x0B, 0x93, 0x60, 0x01, 0x86, b'P', b'W',
            b'R', b'B', 0x0A, 0x02,
        ];
        assert_eq!(serialized, Ok(expected.to_vec()));
    }

    #[test]
    fn out_of_range_args_locals_and_arg_counts_are_rejected() {
        assert_eq!(encoded(|out| TermArg::Arg(7).encode(out)), Err(AmlError::InvalidArg(7)));
        assert_eq!(
            encoded(|out| TermArg::Local(8).encode(out)),
            Err(AmlError::InvalidLocal(8))
        );
        assert_eq!(encoded(|out| TermArg::Local(7).encode(out)), Ok(vec![0x67]));
        assert_eq!(
            encoded(|out| encode_method("M000", 8, MethodSerialization::NotSerialized, &[], out)),
            Err(AmlError::TooManyMethodArgs(8))
        );
        assert_eq!(
            encoded(|out| encode_notify("pwrb", TermArg::Integer(0x80), out)),
            Err(AmlError::InvalidNameSegment)
        );
    }

    #[test]
    fn long_bodies_get_multibyte_pkg_lengths() {
        let body = vec![0xA3; 100]; // NoopOp
        let bytes = encoded(|out| encode_if(&[0x01], &body, out)).unwrap();
        // 101 bytes after a two-byte PkgLength: 103 = 0x67.
        assert_eq!(&bytes[..4], &[0xA0, 0x47, 0x06, 0x01]);
        assert_eq!(bytes.len(), 1 + 2 + 101);
        let method = encoded(|out| encode_method("_EVT", 1, MethodSerialization::NotSerialized, &body, out)).unwrap();
        // Name, flags and body: 105 bytes, 107 = 0x6B with the PkgLength.
        assert_eq!(&method[..3], &[0x14, 0x4B, 0x06]);
    }
}
