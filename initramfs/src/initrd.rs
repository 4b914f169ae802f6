//! An initrd of two archives back to back: a gzip-compressed one, then an
//! uncompressed ("stored") one for files that are already compressed.
//!
//! Linux's initramfs unpacker (`unpack_to_rootfs` in init/initramfs.c)
//! reads archives one after the other from the initrd. At each offset it
//! takes a `0` byte at a 4-byte-aligned offset for the start of an
//! uncompressed newc archive (`*buf == '0' && !(this_header & 3)`), skips a
//! zero byte (counting it), and otherwise decompresses a stream and carries
//! on at the offset just past it (`this_header = saved_offset + my_inptr`;
//! gunzip's count includes the 8-byte trailer). Offsets count from the start
//! of the initrd, so after the gzip stream (which starts at offset 0) zero
//! bytes pad up to the next multiple of 4, where the stored archive starts.
//! The unpacker creates members in order and does not create missing parent
//! directories, so those come in the first archive.

use std::io::{self, Read, Write};

use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::newc::MAGIC;

/// Where an uncompressed archive that follows another may start: a multiple
/// of this from the start of the initrd.
pub const ARCHIVE_ALIGNMENT: usize = 4;

/// The two uncompressed newc archives of an initrd (see
/// [`crate::Initramfs::archives`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Archives {
    /// Gzip-compressed in the initrd: every directory, and every member but
    /// the stored files.
    pub compressed: Vec<u8>,
    /// Copied into the initrd as is: the stored files; empty when there are
    /// none.
    pub stored: Vec<u8>,
}

impl Archives {
    /// The initrd: `compressed` gzip-compressed, then (when there are stored
    /// files) zero bytes up to a multiple of [`ARCHIVE_ALIGNMENT`] and
    /// `stored` as it is.
    pub fn to_initrd(&self) -> io::Result<Vec<u8>> {
        let mut initrd = gzip(&self.compressed)?;
        if !self.stored.is_empty() {
            initrd.resize(initrd.len().next_multiple_of(ARCHIVE_ALIGNMENT), 0);
            initrd.reserve_exact(self.stored.len());
            initrd.extend_from_slice(&self.stored);
        }
        Ok(initrd)
    }
}

/// An initrd written by [`Archives::to_initrd`], read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitrdLayout {
    /// The archives, `compressed` decompressed.
    pub archives: Archives,
    /// Bytes of the gzip stream, trailer included.
    pub gzip_len: usize,
    /// Where the stored archive starts (after the zero padding); `None` when
    /// the initrd ends with the gzip stream.
    pub stored_offset: Option<usize>,
}

/// Reads an initrd of one gzip stream, optionally followed by zero padding
/// to a multiple of [`ARCHIVE_ALIGNMENT`] and an uncompressed newc archive,
/// as Linux would find its parts; fails on anything else (a padding byte
/// that is not zero, padding past the boundary, a second part that is not a
/// newc archive).
pub fn read_initrd(initrd: &[u8]) -> io::Result<InitrdLayout> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    let mut decoder = GzDecoder::new(initrd);
    let mut compressed = Vec::new();
    decoder.read_to_end(&mut compressed)?;
    // The decoder consumes exactly the gzip member, trailer included.
    let rest = decoder.into_inner();
    let gzip_len = initrd.len() - rest.len();
    if rest.is_empty() {
        return Ok(InitrdLayout {
            archives: Archives {
                compressed,
                stored: Vec::new(),
            },
            gzip_len,
            stored_offset: None,
        });
    }
    let stored_offset = gzip_len.next_multiple_of(ARCHIVE_ALIGNMENT);
    let padding = initrd.get(gzip_len..stored_offset).ok_or_else(|| {
        invalid(format!(
            "the initrd ends inside the padding after the gzip stream ({gzip_len} bytes)"
        ))
    })?;
    if let Some(at) = padding.iter().position(|&byte| byte != 0) {
        return Err(invalid(format!("padding byte at {} is not zero", gzip_len + at)));
    }
    let stored = &initrd[stored_offset..];
    if !stored.starts_with(MAGIC) {
        return Err(invalid(format!(
            "no newc archive at offset {stored_offset}, the first 4-byte boundary after the gzip stream"
        )));
    }
    Ok(InitrdLayout {
        archives: Archives {
            compressed,
            stored: stored.to_vec(),
        },
        gzip_len,
        stored_offset: Some(stored_offset),
    })
}

/// `data` gzip-compressed at the best level (reproducible: no name, no time).
/// `data` as one gzip stream (best compression).
pub fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archives(stored: &[u8]) -> Archives {
        Archives {
            compressed: b"070701 compressed part".repeat(10),
            stored: stored.to_vec(),
        }
    }

    #[test]
    fn without_stored_files_the_initrd_is_the_gzip_stream_alone() {
        let initrd = archives(b"").to_initrd().unwrap();
        assert_eq!(initrd, gzip(&archives(b"").compressed).unwrap());
        let layout = read_initrd(&initrd).unwrap();
        assert_eq!((layout.gzip_len, layout.stored_offset), (initrd.len(), None));
        assert_eq!(layout.archives, archives(b""));
    }

    #[test]
    fn the_stored_archive_starts_on_the_next_boundary_after_zero_padding() {
        let stored = b"070701 stored part, verbatim";
        let initrd = archives(stored).to_initrd().unwrap();
        let gzip_len = gzip(&archives(b"").compressed).unwrap().len();
        let offset = gzip_len.next_multiple_of(4);
        assert!(initrd[gzip_len..offset].iter().all(|&byte| byte == 0));
        assert_eq!(&initrd[offset..], stored);
        let layout = read_initrd(&initrd).unwrap();
        assert_eq!((layout.gzip_len, layout.stored_offset), (gzip_len, Some(offset)));
        assert_eq!(layout.archives, archives(stored));
    }

    #[test]
    fn reading_refuses_what_linux_would_not_find() {
        // A stream whose length is not a multiple of 4, so padding is needed.
        let gzip_stream = (1..64)
            .map(|len| gzip(&b"070701".repeat(len)).unwrap())
            .find(|stream| stream.len() % 4 != 0)
            .unwrap();
        let padded_len = gzip_stream.len().next_multiple_of(4);
        let with = |between: &[u8], after: &[u8]| [&gzip_stream[..], between, after].concat();
        let padding = vec![0u8; padded_len - gzip_stream.len()];

        assert!(read_initrd(&with(&padding, b"070701")).is_ok());
        // Not a newc archive after the padding.
        assert!(read_initrd(&with(&padding, b"junk")).is_err());
        // Four more zero bytes: the kernel would skip them, but the writer
        // never makes them, so the reader does not accept them either.
        let extra = [&padding[..], &[0u8; 4]].concat();
        assert!(read_initrd(&with(&extra, b"070701")).is_err());
        // Unaligned: the archive right after the gzip stream.
        assert!(read_initrd(&with(b"", b"070701")).is_err());
        // A padding byte that is not zero.
        let mut bad = padding.clone();
        bad[0] = 1;
        assert!(read_initrd(&with(&bad, b"070701")).is_err());
        // Cut short inside the padding.
        assert!(read_initrd(&with(&padding[..1], b"")).is_err());
        assert!(read_initrd(b"not gzip").is_err());
    }
}
