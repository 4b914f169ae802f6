//! NameString encoding (ACPI 6.5 §20.2.2).

use alloc::vec::Vec;

use super::AmlError;

const ROOT_CHAR: u8 = b'\\';
const PARENT_PREFIX_CHAR: u8 = b'^';
const NULL_NAME: u8 = 0x00;
const DUAL_NAME_PREFIX: u8 = 0x2E;
const MULTI_NAME_PREFIX: u8 = 0x2F;
const NAME_SEGMENT_LEN: usize = 4;
/// ASL lets authors write short segments; the compiler pads them with '_'.
const SEGMENT_PADDING: u8 = b'_';

/// Encodes an ASL-style path such as `\_SB_.PCI0`, `^FOO` or `_S5` as an AML
/// NameString.
pub fn encode_name_string(path: &str, out: &mut Vec<u8>) -> Result<(), AmlError> {
    let bytes = path.as_bytes();
    let relative = match bytes.split_first() {
        Some((&ROOT_CHAR, rest)) => {
            out.push(ROOT_CHAR);
            rest
        }
        _ => {
            let parents = bytes.iter().take_while(|b| **b == PARENT_PREFIX_CHAR).count();
            out.extend(core::iter::repeat_n(PARENT_PREFIX_CHAR, parents));
            bytes.get(parents..).unwrap_or_default()
        }
    };
    encode_name_path(relative, out)
}

fn encode_name_path(path: &[u8], out: &mut Vec<u8>) -> Result<(), AmlError> {
    if path.is_empty() {
        out.push(NULL_NAME);
        return Ok(());
    }
    let segments = path
        .split(|b| *b == b'.')
        .map(name_segment)
        .collect::<Result<Vec<_>, _>>()?;
    match segments.len() {
        1 => {}
        2 => out.push(DUAL_NAME_PREFIX),
        count => {
            let count_byte = u8::try_from(count).map_err(|_| AmlError::TooManyNameSegments(count))?;
            out.push(MULTI_NAME_PREFIX);
            out.push(count_byte);
        }
    }
    segments.iter().for_each(|segment| out.extend_from_slice(segment));
    Ok(())
}

fn name_segment(text: &[u8]) -> Result<[u8; NAME_SEGMENT_LEN], AmlError> {
    let (first, rest) = text.split_first().ok_or(AmlError::InvalidNameSegment)?;
    let valid_lead = first.is_ascii_uppercase() || *first == b'_';
    let valid_rest = rest
        .iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_');
    if !valid_lead || !valid_rest || text.len() > NAME_SEGMENT_LEN {
        return Err(AmlError::InvalidNameSegment);
    }
    let mut segment = [SEGMENT_PADDING; NAME_SEGMENT_LEN];
    segment.iter_mut().zip(text).for_each(|(slot, b)| *slot = *b);
    Ok(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(path: &str) -> Result<Vec<u8>, AmlError> {
        let mut out = Vec::new();
        encode_name_string(path, &mut out).map(|()| out)
    }

    #[test]
    fn single_segment_is_written_verbatim() {
        assert_eq!(encoded("_S5_"), Ok(b"_S5_".to_vec()));
    }

    #[test]
    fn short_segment_is_padded_with_underscores() {
        assert_eq!(encoded("\\_S5"), Ok(b"\\_S5_".to_vec()));
        assert_eq!(encoded("A"), Ok(b"A___".to_vec()));
    }

    #[test]
    fn two_segments_use_dual_name_prefix() {
        assert_eq!(encoded("\\_SB.PCI0"), Ok(b"\\\x2E_SB_PCI0".to_vec()));
    }

    #[test]
    fn three_segments_use_multi_name_prefix_with_count() {
        assert_eq!(encoded("_SB.PCI0.ISA"), Ok(b"\x2F\x03_SB_PCI0ISA_".to_vec()));
    }

    #[test]
    fn parent_prefixes_are_kept() {
        assert_eq!(encoded("^^FOO"), Ok(b"^^FOO_".to_vec()));
    }

    #[test]
    fn bare_root_is_null_name() {
        assert_eq!(encoded("\\"), Ok(vec![b'\\', 0x00]));
    }

    #[test]
    fn invalid_segments_are_rejected() {
        for path in ["_s5_", "5ABC", "ABCDE", "A..B", "A.", "\\A-B", "^\\A"] {
            assert_eq!(encoded(path), Err(AmlError::InvalidNameSegment), "{path}");
        }
    }

    #[test]
    fn more_than_255_segments_are_rejected() {
        let path = vec!["A"; 256].join(".");
        assert_eq!(encoded(&path), Err(AmlError::TooManyNameSegments(256)));
    }
}
