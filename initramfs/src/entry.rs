//! One archive member and its newc header.

use crate::error::InitramfsError;
use crate::newc::RecordHeader;
use crate::path::{ArchivePath, MAX_PATH_LEN};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;
const PERMISSION_BITS: u32 = 0o7777;
/// Symlink permissions are never consulted on Linux; 0777 is what `ln -s` makes.
pub(crate) const SYMLINK_PERMISSIONS: u32 = 0o777;
/// The kernel packs device numbers as a 12-bit major and a 20-bit minor.
const MAX_DEVICE_MAJOR: u32 = 0xFFF;
const MAX_DEVICE_MINOR: u32 = 0xF_FFFF;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Directory,
    File(Vec<u8>),
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
}

/// A validated member: every size already fits its 32-bit header field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    permissions: u32,
    kind: EntryKind,
    data_size: u32,
}

impl Entry {
    pub fn new(path: &ArchivePath, permissions: u32, kind: EntryKind) -> Result<Self, InitramfsError> {
        validate_permissions(path, permissions)?;
        let data_size = match &kind {
            EntryKind::Directory => 0,
            EntryKind::File(contents) => u32::try_from(contents.len()).map_err(|_| InitramfsError::FileTooLarge {
                path: path.as_str().to_owned(),
                size: contents.len(),
            })?,
            EntryKind::Symlink(target) => symlink_target_size(path, target)?,
            EntryKind::CharDevice { major, minor } => {
                validate_device_number(path, *major, *minor)?;
                0
            }
        };
        Ok(Self {
            permissions,
            kind,
            data_size,
        })
    }

    pub fn is_directory(&self) -> bool {
        self.kind == EntryKind::Directory
    }

    pub fn set_permissions(&mut self, path: &ArchivePath, permissions: u32) -> Result<(), InitramfsError> {
        validate_permissions(path, permissions)?;
        self.permissions = permissions;
        Ok(())
    }

    /// Inode numbers only need to be unique within the archive (the kernel
    /// uses them to recognise hard links), so the caller assigns them.
    pub fn header(&self, path: &ArchivePath, ino: u32) -> RecordHeader {
        let (file_type, nlink, (rdev_major, rdev_minor)) = match &self.kind {
            // A directory's own "." entry plus its entry in the parent.
            EntryKind::Directory => (S_IFDIR, 2, (0, 0)),
            EntryKind::File(_) => (S_IFREG, 1, (0, 0)),
            EntryKind::Symlink(_) => (S_IFLNK, 1, (0, 0)),
            EntryKind::CharDevice { major, minor } => (S_IFCHR, 1, (*major, *minor)),
        };
        RecordHeader {
            ino,
            mode: file_type | self.permissions,
            nlink,
            file_size: self.data_size,
            rdev_major,
            rdev_minor,
            name_size: path.name_size(),
        }
    }

    /// What follows the name: file contents, or a symlink's target without NUL.
    pub fn data(&self) -> &[u8] {
        match &self.kind {
            EntryKind::File(contents) => contents,
            EntryKind::Symlink(target) => target.as_bytes(),
            EntryKind::Directory | EntryKind::CharDevice { .. } => &[],
        }
    }
}

fn validate_permissions(path: &ArchivePath, permissions: u32) -> Result<(), InitramfsError> {
    if permissions & !PERMISSION_BITS != 0 {
        return Err(InitramfsError::InvalidMode {
            path: path.as_str().to_owned(),
            mode: permissions,
        });
    }
    Ok(())
}

fn validate_device_number(path: &ArchivePath, major: u32, minor: u32) -> Result<(), InitramfsError> {
    if major > MAX_DEVICE_MAJOR || minor > MAX_DEVICE_MINOR {
        return Err(InitramfsError::InvalidDeviceNumber {
            path: path.as_str().to_owned(),
            major,
            minor,
        });
    }
    Ok(())
}

fn symlink_target_size(path: &ArchivePath, target: &str) -> Result<u32, InitramfsError> {
    let invalid = || InitramfsError::InvalidSymlinkTarget(path.as_str().to_owned());
    if target.is_empty() || target.contains('\0') || target.len() > MAX_PATH_LEN {
        return Err(invalid());
    }
    u32::try_from(target.len()).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> ArchivePath {
        ArchivePath::parse(p).unwrap()
    }

    #[test]
    fn headers_carry_type_bits_and_sizes() {
        let file = Entry::new(&path("init"), 0o755, EntryKind::File(b"#!/bin/sh\n".to_vec())).unwrap();
        let header = file.header(&path("init"), 3);
        assert_eq!((header.ino, header.mode, header.nlink), (3, 0o100_755, 1));
        assert_eq!((header.file_size, header.name_size), (10, 5));

        let dir = Entry::new(&path("dev"), 0o755, EntryKind::Directory).unwrap();
        assert_eq!(dir.header(&path("dev"), 1).mode, 0o040_755);
        assert_eq!(dir.header(&path("dev"), 1).nlink, 2);

        let console = EntryKind::CharDevice { major: 5, minor: 1 };
        let console = Entry::new(&path("dev/console"), 0o600, console).unwrap();
        let header = console.header(&path("dev/console"), 2);
        assert_eq!((header.mode, header.rdev_major, header.rdev_minor), (0o020_600, 5, 1));
        assert_eq!(header.file_size, 0);
    }

    #[test]
    fn symlink_data_is_its_target() {
        let link = EntryKind::Symlink("busybox".to_owned());
        let link = Entry::new(&path("bin/sh"), SYMLINK_PERMISSIONS, link).unwrap();
        assert_eq!(link.data(), b"busybox");
        assert_eq!(link.header(&path("bin/sh"), 4).mode, 0o120_777);
        assert_eq!(link.header(&path("bin/sh"), 4).file_size, 7);
    }

    #[test]
    fn file_type_bits_in_mode_are_rejected() {
        let error = Entry::new(&path("init"), 0o100_755, EntryKind::File(Vec::new()));
        assert_eq!(
            error,
            Err(InitramfsError::InvalidMode {
                path: "init".to_owned(),
                mode: 0o100_755
            })
        );
    }

    #[test]
    fn out_of_range_device_numbers_are_rejected() {
        let big_major = EntryKind::CharDevice {
            major: 0x1000,
            minor: 0,
        };
        assert!(matches!(
            Entry::new(&path("dev/x"), 0o600, big_major),
            Err(InitramfsError::InvalidDeviceNumber { major: 0x1000, .. })
        ));
        let max = EntryKind::CharDevice {
            major: 0xFFF,
            minor: 0xF_FFFF,
        };
        assert!(Entry::new(&path("dev/x"), 0o600, max).is_ok());
    }

    #[test]
    fn bad_symlink_targets_are_rejected() {
        for target in ["", "a\0b"] {
            let kind = EntryKind::Symlink(target.to_owned());
            assert_eq!(
                Entry::new(&path("l"), SYMLINK_PERMISSIONS, kind),
                Err(InitramfsError::InvalidSymlinkTarget("l".to_owned()))
            );
        }
    }
}
