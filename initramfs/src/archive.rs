//! The archive builder.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use crate::entry::{Entry, EntryKind, SYMLINK_PERMISSIONS};
use crate::error::InitramfsError;
use crate::initrd::{gzip, Archives};
use crate::newc::{write_record, write_trailer};
use crate::path::ArchivePath;

/// Permissions given to parent directories created implicitly.
pub const DEFAULT_DIRECTORY_MODE: u32 = 0o755;

/// Inode numbers are 32-bit and start at 1.
const MAX_ENTRIES: usize = u32::MAX as usize - 1;

/// An in-memory initramfs. Members are emitted sorted by path, which puts
/// every directory before its contents, and numbered in that order, so the
/// image depends only on the contents and not on the order of calls.
///
/// Files added with [`Initramfs::stored_file`] are kept out of the
/// compressed archive: [`Initramfs::to_initrd`] writes them into a second,
/// uncompressed archive after it (see [`Archives`]).
#[derive(Clone, Debug, Default)]
pub struct Initramfs {
    entries: BTreeMap<ArchivePath, Entry>,
    /// The members [`Initramfs::stored_file`] added: regular files only.
    stored: BTreeSet<ArchivePath>,
}

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory, or sets the permissions of one that already exists
    /// (for example one created implicitly as a parent).
    pub fn directory(&mut self, path: &str, mode: u32) -> Result<&mut Self, InitramfsError> {
        let path = ArchivePath::parse(path)?;
        match self.entries.get_mut(&path) {
            Some(existing) if existing.is_directory() => existing.set_permissions(&path, mode)?,
            Some(_) => return Err(InitramfsError::DuplicatePath(path.as_str().to_owned())),
            None => self.insert(path, mode, EntryKind::Directory)?,
        }
        Ok(self)
    }

    pub fn file(&mut self, path: &str, mode: u32, contents: impl Into<Vec<u8>>) -> Result<&mut Self, InitramfsError> {
        let path = ArchivePath::parse(path)?;
        self.insert(path, mode, EntryKind::File(contents.into()))?;
        Ok(self)
    }

    /// A file that is already compressed (a kernel, another initramfs):
    /// gzip would shrink it little and cost the guest a full decompression
    /// pass, so [`Initramfs::to_initrd`] puts it into the uncompressed
    /// archive, which the kernel only copies. Its parent directories are
    /// created in the compressed archive, which the kernel unpacks first.
    /// In [`Initramfs::to_cpio`] and [`Initramfs::to_gzip`] it is an
    /// ordinary member.
    pub fn stored_file(
        &mut self,
        path: &str,
        mode: u32,
        contents: impl Into<Vec<u8>>,
    ) -> Result<&mut Self, InitramfsError> {
        let parsed = ArchivePath::parse(path)?;
        self.file(path, mode, contents)?;
        self.stored.insert(parsed);
        Ok(self)
    }

    /// `target` is stored verbatim and resolved by the guest at lookup time,
    /// so it may be absolute and need not exist in the archive.
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, InitramfsError> {
        let path = ArchivePath::parse(path)?;
        let kind = EntryKind::Symlink(target.to_owned());
        self.insert(path, SYMLINK_PERMISSIONS, kind)?;
        Ok(self)
    }

    /// A character device node, e.g. `dev/console` (5, 1) or `dev/null` (1, 3):
    /// the kernel needs `/dev/console` before devtmpfs is mounted.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> Result<&mut Self, InitramfsError> {
        let path = ArchivePath::parse(path)?;
        self.insert(path, mode, EntryKind::CharDevice { major, minor })?;
        Ok(self)
    }

    /// Every member in one uncompressed newc archive, ending with the
    /// `TRAILER!!!` record (stored files included, as ordinary members).
    pub fn to_cpio(&self) -> Vec<u8> {
        self.archive_of(|_| true)
    }

    /// [`Initramfs::to_cpio`] gzip-compressed, the form the kernel unpacks
    /// from `initrd` memory (CONFIG_RD_GZIP).
    pub fn to_gzip(&self) -> io::Result<Vec<u8>> {
        gzip(&self.to_cpio())
    }

    /// The two uncompressed archives [`Initramfs::to_initrd`] writes: every
    /// member but the stored files, then the stored files alone (empty when
    /// there are none). Inode numbers are those of [`Initramfs::to_cpio`],
    /// so they are unique across both.
    pub fn archives(&self) -> Archives {
        let stored = if self.stored.is_empty() {
            Vec::new()
        } else {
            self.archive_of(|path| self.stored.contains(path))
        };
        Archives {
            compressed: self.archive_of(|path| !self.stored.contains(path)),
            stored,
        }
    }

    /// The initrd: [`Archives::to_initrd`] of [`Initramfs::archives`]. The
    /// same bytes as [`Initramfs::to_gzip`] when no file is stored.
    pub fn to_initrd(&self) -> io::Result<Vec<u8>> {
        self.archives().to_initrd()
    }

    /// The members `include` selects, in path order, as one newc archive.
    fn archive_of(&self, include: impl Fn(&ArchivePath) -> bool) -> Vec<u8> {
        let mut out = Vec::new();
        for ((path, entry), ino) in self.entries.iter().zip(1u32..) {
            if include(path) {
                write_record(&mut out, &entry.header(path, ino), path.as_str(), entry.data());
            }
        }
        write_trailer(&mut out);
        out
    }

    /// Adds `path` and any missing parent directories, or nothing on error.
    fn insert(&mut self, path: ArchivePath, permissions: u32, kind: EntryKind) -> Result<(), InitramfsError> {
        if self.entries.contains_key(&path) {
            return Err(InitramfsError::DuplicatePath(path.as_str().to_owned()));
        }
        let entry = Entry::new(&path, permissions, kind)?;
        let missing_parents = self.missing_parents(&path)?;
        let new_total = self.entries.len() + missing_parents.len() + 1;
        if new_total > MAX_ENTRIES {
            return Err(InitramfsError::TooManyEntries);
        }
        for parent in missing_parents {
            let directory = Entry::new(&parent, DEFAULT_DIRECTORY_MODE, EntryKind::Directory)?;
            self.entries.insert(parent, directory);
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// The ancestors of `path` not yet in the archive, outermost first; fails
    /// if an existing ancestor is not a directory.
    fn missing_parents(&self, path: &ArchivePath) -> Result<Vec<ArchivePath>, InitramfsError> {
        let mut missing = Vec::new();
        for ancestor in path.ancestors() {
            match self.entries.get(&ancestor) {
                Some(existing) if existing.is_directory() => {}
                Some(_) => {
                    return Err(InitramfsError::NotADirectory {
                        path: path.as_str().to_owned(),
                        parent: ancestor.as_str().to_owned(),
                    })
                }
                None => missing.push(ancestor),
            }
        }
        Ok(missing)
    }
}
