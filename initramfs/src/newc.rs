//! The "new ASCII" cpio record format the kernel's initramfs unpacker reads
//! (Documentation/driver-api/early-userspace/buffer-format.rst).

pub(crate) const MAGIC: &[u8; 6] = b"070701";
pub(crate) const TRAILER_NAME: &str = "TRAILER!!!";
/// Both the header+name and the data are padded to this boundary.
const ALIGNMENT: usize = 4;

/// The header fields that vary between records. Ownership and timestamps are
/// always zero so that images are reproducible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub ino: u32,
    /// File type and permission bits, as in `st_mode`.
    pub mode: u32,
    pub nlink: u32,
    pub file_size: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    /// Name length including its terminating NUL.
    pub name_size: u32,
}

/// Appends one record: header, NUL-terminated name, data, each padded.
pub(crate) fn write_record(out: &mut Vec<u8>, header: &RecordHeader, name: &str, data: &[u8]) {
    out.extend_from_slice(MAGIC);
    let fields = [
        header.ino,
        header.mode,
        0, // uid
        0, // gid
        header.nlink,
        0, // mtime
        header.file_size,
        0, // devmajor
        0, // devminor
        header.rdev_major,
        header.rdev_minor,
        header.name_size,
        0, // check: only used by the CRC variant (070702)
    ];
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad_to_alignment(out);
    out.extend_from_slice(data);
    pad_to_alignment(out);
}

/// The end-of-archive marker record.
pub(crate) fn write_trailer(out: &mut Vec<u8>) {
    let header = RecordHeader {
        ino: 0,
        mode: 0,
        nlink: 1,
        file_size: 0,
        rdev_major: 0,
        rdev_minor: 0,
        name_size: TRAILER_NAME.len() as u32 + 1,
    };
    write_record(out, &header, TRAILER_NAME, &[]);
}

/// Records start at offset 0 and every part is padded, so padding relative to
/// the whole archive equals padding relative to the record.
fn pad_to_alignment(out: &mut Vec<u8>) {
    let padded_len = out.len().next_multiple_of(ALIGNMENT);
    out.resize(padded_len, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Magic plus thirteen 8-digit hex fields.
    const HEADER_LEN: usize = 6 + 13 * 8;

    #[test]
    fn header_is_110_bytes_of_uppercase_hex() {
        let mut out = Vec::new();
        let header = RecordHeader {
            ino: 0xAB,
            mode: 0o100_644,
            nlink: 1,
            file_size: 3,
            rdev_major: 0,
            rdev_minor: 0,
            name_size: 2,
        };
        write_record(&mut out, &header, "x", b"abc");
        let fields = [
            "000000AB", "000081A4", "00000000", "00000000", "00000001", "00000000", "00000003", "00000000", "00000000",
            "00000000", "00000000", "00000002", "00000000",
        ];
        let expected = format!("070701{}", fields.concat());
        assert_eq!(std::str::from_utf8(&out[..HEADER_LEN]), Ok(expected.as_str()));
        // 110 + "x\0" = 112 is aligned; "abc" is padded to 4.
        assert_eq!(&out[HEADER_LEN..], b"x\0abc\0");
        assert_eq!(out.len(), 116);
    }

    #[test]
    fn name_padding_depends_on_name_length() {
        for (name, expected_len) in [("a", 112), ("ab", 116), ("abc", 116), ("abcdefghij", 124)] {
            let mut out = Vec::new();
            let header = RecordHeader {
                ino: 1,
                mode: 0o040_755,
                nlink: 2,
                file_size: 0,
                rdev_major: 0,
                rdev_minor: 0,
                name_size: name.len() as u32 + 1,
            };
            write_record(&mut out, &header, name, &[]);
            assert_eq!(out.len(), expected_len, "{name}");
        }
    }

    #[test]
    fn trailer_record() {
        let mut out = Vec::new();
        write_trailer(&mut out);
        assert_eq!(&out[..6], MAGIC);
        assert_eq!(&out[HEADER_LEN..HEADER_LEN + 11], b"TRAILER!!!\0");
        assert_eq!(out.len(), 124);
        assert_eq!(out.len() % 4, 0);
    }
}
