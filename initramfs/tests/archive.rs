//! Round-trips archives through the independent reader.

mod common;

use std::collections::BTreeSet;

use common::{read_newc, Record, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG};
use keel_initramfs::{Initramfs, InitramfsError, DEFAULT_DIRECTORY_MODE};

const INIT_SCRIPT: &[u8] = b"#!/bin/sh\nmount -t proc proc /proc\nexec /bin/sh\n";

fn guest_image() -> Initramfs {
    let mut image = Initramfs::new();
    image
        .directory("proc", 0o555)
        .unwrap()
        .file("init", 0o755, INIT_SCRIPT)
        .unwrap()
        .file("bin/busybox", 0o755, vec![0x7F, b'E', b'L', b'F', 2, 1])
        .unwrap()
        .symlink("bin/sh", "busybox")
        .unwrap()
        .char_device("dev/console", 0o600, 5, 1)
        .unwrap()
        .char_device("dev/null", 0o666, 1, 3)
        .unwrap();
    image
}

fn find<'a>(records: &'a [Record], name: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn every_member_round_trips() {
    let records = read_newc(&guest_image().to_cpio());
    let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/busybox",
            "bin/sh",
            "dev",
            "dev/console",
            "dev/null",
            "init",
            "proc"
        ]
    );

    let init = find(&records, "init");
    assert_eq!((init.file_type(), init.permissions()), (S_IFREG, 0o755));
    assert_eq!(init.data, INIT_SCRIPT);
    assert_eq!(init.nlink, 1);

    let busybox = find(&records, "bin/busybox");
    assert_eq!(busybox.data, [0x7F, b'E', b'L', b'F', 2, 1]);

    let sh = find(&records, "bin/sh");
    assert_eq!((sh.file_type(), sh.permissions()), (S_IFLNK, 0o777));
    assert_eq!(sh.data, b"busybox");

    let console = find(&records, "dev/console");
    assert_eq!((console.file_type(), console.permissions()), (S_IFCHR, 0o600));
    assert_eq!(console.rdev, (5, 1));
    assert!(console.data.is_empty());
    assert_eq!(find(&records, "dev/null").rdev, (1, 3));

    let proc_dir = find(&records, "proc");
    assert_eq!((proc_dir.file_type(), proc_dir.permissions()), (S_IFDIR, 0o555));
    assert_eq!(proc_dir.nlink, 2);
}

#[test]
fn headers_are_reproducible_and_owned_by_root() {
    for record in read_newc(&guest_image().to_cpio()) {
        assert_eq!((record.uid, record.gid, record.mtime), (0, 0, 0), "{}", record.name);
        assert_eq!((record.dev, record.check), ((0, 0), 0), "{}", record.name);
    }
}

#[test]
fn parents_are_created_before_children_with_default_mode() {
    let mut image = Initramfs::new();
    image.file("usr/lib/modules/virtio.ko", 0o644, b"ko".to_vec()).unwrap();
    let records = read_newc(&image.to_cpio());
    let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["usr", "usr/lib", "usr/lib/modules", "usr/lib/modules/virtio.ko"]
    );
    for dir in &records[..3] {
        assert_eq!(dir.mode, S_IFDIR | DEFAULT_DIRECTORY_MODE, "{}", dir.name);
    }
}

#[test]
fn explicit_directory_mode_overrides_implicit_parent() {
    let mut image = Initramfs::new();
    image.file("root/.profile", 0o600, b"".to_vec()).unwrap();
    image.directory("root", 0o700).unwrap();
    image.directory("root", 0o750).unwrap();
    let records = read_newc(&image.to_cpio());
    assert_eq!(find(&records, "root").mode, S_IFDIR | 0o750);
    assert_eq!(records.len(), 2);
}

#[test]
fn inode_numbers_are_unique_and_nonzero() {
    let records = read_newc(&guest_image().to_cpio());
    let inodes: BTreeSet<u32> = records.iter().map(|r| r.ino).collect();
    assert_eq!(inodes.len(), records.len());
    assert!(!inodes.contains(&0));
}

#[test]
fn padding_follows_names_and_data_of_every_length() {
    let mut image = Initramfs::new();
    for len in 0..9 {
        let name = format!("f{}", "x".repeat(len));
        image.file(&name, 0o644, vec![b'd'; len]).unwrap();
    }
    let cpio = image.to_cpio();
    assert_eq!(cpio.len() % 4, 0);
    // The reader asserts alignment and zeroed padding for each record.
    let records = read_newc(&cpio);
    for record in &records {
        assert_eq!(record.data.len(), record.name.len() - 1, "{}", record.name);
    }
}

#[test]
fn empty_archive_is_just_the_trailer() {
    let cpio = Initramfs::new().to_cpio();
    assert!(read_newc(&cpio).is_empty());
    assert_eq!(cpio.len(), 124);
    assert_eq!(&cpio[110..121], b"TRAILER!!!\0");
}

#[test]
fn output_does_not_depend_on_call_order() {
    let mut reversed = Initramfs::new();
    reversed
        .char_device("dev/null", 0o666, 1, 3)
        .unwrap()
        .char_device("dev/console", 0o600, 5, 1)
        .unwrap()
        .symlink("bin/sh", "busybox")
        .unwrap()
        .file("bin/busybox", 0o755, vec![0x7F, b'E', b'L', b'F', 2, 1])
        .unwrap()
        .file("init", 0o755, INIT_SCRIPT)
        .unwrap()
        .directory("proc", 0o555)
        .unwrap();
    assert_eq!(reversed.to_cpio(), guest_image().to_cpio());
}

#[test]
fn conflicting_paths_are_rejected() {
    let mut image = guest_image();
    assert_eq!(
        image.file("init", 0o644, Vec::new()).err(),
        Some(InitramfsError::DuplicatePath("init".to_owned()))
    );
    assert_eq!(
        image.directory("bin/sh", 0o755).err(),
        Some(InitramfsError::DuplicatePath("bin/sh".to_owned()))
    );
    assert_eq!(
        image.symlink("init/x", "y").err(),
        Some(InitramfsError::NotADirectory {
            path: "init/x".to_owned(),
            parent: "init".to_owned()
        })
    );
}

#[test]
fn rejected_entries_leave_the_archive_unchanged() {
    let mut image = guest_image();
    let before = image.to_cpio();
    assert!(matches!(
        image.file("etc/passwd", 0o100_644, Vec::new()),
        Err(InitramfsError::InvalidMode { .. })
    ));
    assert!(matches!(
        image.char_device("a/b/tty", 0o600, 4096, 0),
        Err(InitramfsError::InvalidDeviceNumber { .. })
    ));
    assert!(matches!(
        image.symlink("a/link", ""),
        Err(InitramfsError::InvalidSymlinkTarget(_))
    ));
    assert_eq!(image.to_cpio(), before, "no parent directories leaked");
}

#[test]
fn invalid_paths_are_rejected_by_every_method() {
    let mut image = Initramfs::new();
    assert_eq!(image.directory("", 0o755).err(), Some(InitramfsError::EmptyPath));
    assert_eq!(
        image.file("/init", 0o755, Vec::new()).err(),
        Some(InitramfsError::AbsolutePath("/init".to_owned()))
    );
    assert_eq!(
        image.symlink("../escape", "x").err(),
        Some(InitramfsError::ParentComponent("../escape".to_owned()))
    );
    assert_eq!(
        image.char_device("dev\0null", 0o666, 1, 3).err(),
        Some(InitramfsError::NulInPath("dev\0null".to_owned()))
    );
    assert!(read_newc(&image.to_cpio()).is_empty());
}
