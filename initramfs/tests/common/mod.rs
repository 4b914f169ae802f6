//! A strict newc reader written from the format description, independent of
//! the writer: it checks magic, hex fields, NUL terminators, zero padding and
//! the trailer while decoding.
#![allow(dead_code)]

pub const S_IFMT: u32 = 0o170_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFLNK: u32 = 0o120_000;
pub const S_IFCHR: u32 = 0o020_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset: usize,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub dev: (u32, u32),
    pub rdev: (u32, u32),
    pub check: u32,
    pub name: String,
    pub data: Vec<u8>,
}

impl Record {
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }

    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }
}

fn hex_field(bytes: &[u8], index: usize) -> u32 {
    let start = 6 + index * 8;
    let text = std::str::from_utf8(&bytes[start..start + 8]).expect("ASCII header");
    assert!(text.bytes().all(|b| b.is_ascii_hexdigit()), "field {index} = {text:?}");
    u32::from_str_radix(text, 16).unwrap()
}

fn skip_padding(archive: &[u8], mut pos: usize) -> usize {
    while !pos.is_multiple_of(4) {
        assert_eq!(archive[pos], 0, "padding byte at {pos} is zero");
        pos += 1;
    }
    pos
}

/// Every record before the trailer; asserts the trailer ends the archive.
pub fn read_newc(archive: &[u8]) -> Vec<Record> {
    let (records, end) = read_newc_at(archive, 0);
    assert_eq!(end, archive.len(), "nothing follows the trailer");
    records
}

/// The records of the archive starting at `start` (4-byte aligned) and the
/// offset just past its trailer's padding.
pub fn read_newc_at(archive: &[u8], start: usize) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut pos = start;
    loop {
        assert_eq!(pos % 4, 0, "record at {pos} is 4-byte aligned");
        let header = &archive[pos..pos + 110];
        assert_eq!(&header[..6], b"070701", "magic at {pos}");
        let field = |i| hex_field(header, i);
        let file_size = field(6) as usize;
        let name_size = field(11) as usize;
        let name_start = pos + 110;
        let name_bytes = &archive[name_start..name_start + name_size];
        let (nul, name) = name_bytes.split_last().expect("namesize counts the NUL");
        assert_eq!(*nul, 0, "name is NUL-terminated");
        assert!(!name.contains(&0), "no NUL inside the name");
        let name = String::from_utf8(name.to_vec()).unwrap();
        let data_start = skip_padding(archive, name_start + name_size);
        let data = archive[data_start..data_start + file_size].to_vec();
        let next = skip_padding(archive, data_start + file_size);
        let record = Record {
            offset: pos,
            ino: field(0),
            mode: field(1),
            uid: field(2),
            gid: field(3),
            nlink: field(4),
            mtime: field(5),
            dev: (field(7), field(8)),
            rdev: (field(9), field(10)),
            check: field(12),
            name,
            data,
        };
        if record.name == "TRAILER!!!" {
            assert!(record.data.is_empty());
            return (records, next);
        }
        records.push(record);
        pos = next;
    }
}
