//! Initrds of two archives: gzip-compressed members, then stored files.

mod common;

use std::collections::BTreeSet;
use std::io::Read;

use common::{read_newc, read_newc_at, Record, S_IFDIR, S_IFREG};
use flate2::bufread::GzDecoder;
use keel_initramfs::{read_initrd, Initramfs, InitramfsError};

/// Stands for an already-compressed payload: bytes gzip cannot shrink.
fn incompressible(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            // xorshift32
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn image(kernel: Vec<u8>) -> Initramfs {
    let mut image = Initramfs::new();
    image
        .file("init", 0o755, b"#!/bin/sh\n".repeat(50))
        .unwrap()
        .char_device("dev/console", 0o600, 5, 1)
        .unwrap()
        .directory("usr/lib/keel", 0o750)
        .unwrap()
        .stored_file("usr/lib/keel/vmlinuz", 0o644, kernel)
        .unwrap()
        .stored_file("usr/lib/keel/initrd.gz", 0o600, incompressible(3000, 7))
        .unwrap()
        .file("usr/lib/keel/notes.txt", 0o644, b"small".to_vec())
        .unwrap();
    image
}

fn names(records: &[Record]) -> Vec<&str> {
    records.iter().map(|record| record.name.as_str()).collect()
}

/// What Linux's `unpack_to_rootfs` (init/initramfs.c, 6.1) makes of an
/// initrd: an uncompressed archive where a `0` byte starts at a 4-byte
/// aligned offset, zero bytes skipped one by one, anything else a compressed
/// stream (here gzip) after which it carries on at the offset just past the
/// stream. Returns each archive's records in order, and checks what the
/// kernel's file creation needs: every member's parent directory exists by
/// the time the member is created.
fn unpack_like_linux(initrd: &[u8]) -> Vec<Vec<Record>> {
    let mut archives = Vec::new();
    let mut directories = BTreeSet::new();
    let mut offset = 0;
    while offset < initrd.len() {
        let records = if initrd[offset] == b'0' && offset % 4 == 0 {
            let (records, end) = read_newc_at(initrd, offset);
            offset = end;
            records
        } else if initrd[offset] == 0 {
            offset += 1;
            continue;
        } else {
            assert_eq!(
                initrd[offset..offset + 2],
                [0x1f, 0x8b],
                "invalid magic at start of compressed archive (offset {offset})"
            );
            let mut decoder = GzDecoder::new(&initrd[offset..]);
            let mut cpio = Vec::new();
            decoder.read_to_end(&mut cpio).unwrap();
            offset = initrd.len() - decoder.into_inner().len();
            // The decompressed stream must end with the trailer.
            read_newc(&cpio)
        };
        for record in &records {
            if let Some((parent, _)) = record.name.rsplit_once('/') {
                assert!(
                    directories.contains(parent),
                    "{}: no directory {parent} yet",
                    record.name
                );
            }
            if record.file_type() == S_IFDIR {
                directories.insert(record.name.clone());
            }
        }
        archives.push(records);
    }
    archives
}

#[test]
fn stored_files_form_the_second_archive_and_their_directories_the_first() {
    let image = image(incompressible(5000, 1));
    let archives = image.archives();
    let compressed = read_newc(&archives.compressed);
    let stored = read_newc(&archives.stored);
    assert_eq!(
        names(&compressed),
        [
            "dev",
            "dev/console",
            "init",
            "usr",
            "usr/lib",
            "usr/lib/keel",
            "usr/lib/keel/notes.txt"
        ]
    );
    assert_eq!(names(&stored), ["usr/lib/keel/initrd.gz", "usr/lib/keel/vmlinuz"]);
    assert_eq!(stored[0].mode, S_IFREG | 0o600);
    assert_eq!(stored[1].mode, S_IFREG | 0o644);
    assert_eq!(stored[1].data, incompressible(5000, 1));
    // The directory keeps the mode it was given, in the first archive only.
    let keel = compressed.iter().find(|record| record.name == "usr/lib/keel").unwrap();
    assert_eq!(keel.mode, S_IFDIR | 0o750);

    // Inode numbers are unique across both archives.
    let inodes: BTreeSet<u32> = compressed.iter().chain(&stored).map(|record| record.ino).collect();
    assert_eq!(inodes.len(), compressed.len() + stored.len());
}

#[test]
fn to_cpio_still_lists_every_member_once() {
    let image = image(incompressible(100, 2));
    let all = read_newc(&image.to_cpio());
    assert_eq!(all.len(), 9);
    assert!(all.iter().any(|record| record.name == "usr/lib/keel/vmlinuz"));
}

#[test]
fn linux_unpacks_both_archives_in_order() {
    let kernel = incompressible(20_000, 3);
    let image = image(kernel.clone());
    let initrd = image.to_initrd().unwrap();
    let archives = unpack_like_linux(&initrd);
    assert_eq!(archives.len(), 2, "a compressed and a stored archive");
    assert_eq!(archives[0], read_newc(&image.archives().compressed));
    assert_eq!(names(&archives[1]), ["usr/lib/keel/initrd.gz", "usr/lib/keel/vmlinuz"]);
    assert_eq!(archives[1][1].data, kernel);
}

#[test]
fn the_stored_part_is_uncompressed_and_aligned_after_zero_padding() {
    let kernel = incompressible(20_000, 4);
    let initrd = image(kernel.clone()).to_initrd().unwrap();
    let layout = read_initrd(&initrd).unwrap();
    let offset = layout.stored_offset.expect("a stored archive");
    assert_eq!(offset % 4, 0);
    assert_eq!(offset, layout.gzip_len.next_multiple_of(4));
    assert!(initrd[layout.gzip_len..offset].iter().all(|&byte| byte == 0));
    assert_eq!(&initrd[offset..offset + 6], b"070701");
    // The payload is in the initrd byte for byte, and the gzip stream is
    // small: the payload is not in it.
    assert!(initrd[offset..].windows(kernel.len()).any(|window| window == kernel));
    assert!(layout.gzip_len < 2000, "gzip stream of {} bytes", layout.gzip_len);
    assert_eq!(layout.archives, image(kernel).archives());
}

#[test]
fn padding_is_right_for_every_gzip_length() {
    // Vary the compressed part until the gzip stream has had every length
    // modulo 4.
    let mut residues = BTreeSet::new();
    for extra in 0..400usize {
        let mut image = image(incompressible(64, 5));
        image.file("etc/extra", 0o644, incompressible(extra, 6)).unwrap();
        let initrd = image.to_initrd().unwrap();
        let layout = read_initrd(&initrd).unwrap();
        residues.insert(layout.gzip_len % 4);
        let padding = layout.stored_offset.unwrap() - layout.gzip_len;
        assert_eq!(padding, (4 - layout.gzip_len % 4) % 4);
        assert_eq!(unpack_like_linux(&initrd).len(), 2);
        if residues.len() == 4 {
            return;
        }
    }
    panic!("gzip lengths modulo 4 seen: {residues:?}");
}

#[test]
fn without_stored_files_the_initrd_is_the_gzip_image() {
    let mut image = Initramfs::new();
    image.file("init", 0o755, b"#!/bin/sh\n".to_vec()).unwrap();
    assert_eq!(image.to_initrd().unwrap(), image.to_gzip().unwrap());
    assert!(image.archives().stored.is_empty());
    assert_eq!(image.archives().compressed, image.to_cpio());
    assert_eq!(unpack_like_linux(&image.to_initrd().unwrap()).len(), 1);
}

#[test]
fn a_refused_stored_file_changes_nothing() {
    let mut image = image(incompressible(10, 8));
    let before = image.archives();
    assert_eq!(
        image.stored_file("init", 0o644, Vec::new()).err(),
        Some(InitramfsError::DuplicatePath("init".to_owned()))
    );
    assert!(matches!(
        image.stored_file("init/x", 0o644, Vec::new()),
        Err(InitramfsError::NotADirectory { .. })
    ));
    assert!(matches!(
        image.stored_file("boot/x", 0o100_644, Vec::new()),
        Err(InitramfsError::InvalidMode { .. })
    ));
    assert_eq!(
        image.stored_file("/boot/x", 0o644, Vec::new()).err(),
        Some(InitramfsError::AbsolutePath("/boot/x".to_owned()))
    );
    assert_eq!(image.archives(), before);
}
