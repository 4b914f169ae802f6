//! Builds the initramfs images Keel boots its Linux guests with: a newc
//! ("070701") cpio archive, gzip-compressed, optionally followed by an
//! uncompressed archive of files that are compressed already
//! ([`Initramfs::stored_file`], [`Archives`]).
//!
//! ```
//! use keel_initramfs::Initramfs;
//!
//! let mut image = Initramfs::new();
//! image
//!     .file("init", 0o755, b"#!/bin/sh\nexec /bin/sh\n".to_vec())?
//!     .symlink("bin/sh", "busybox")?
//!     .char_device("dev/console", 0o600, 5, 1)?
//!     .char_device("dev/null", 0o666, 1, 3)?;
//! let gzip = image.to_gzip()?;
//! assert!(gzip.starts_with(&[0x1f, 0x8b]));
//!
//! // A kernel for a nested guest is compressed already: stored, not gzipped.
//! image.stored_file("boot/vmlinuz", 0o644, b"bzImage".to_vec())?;
//! let initrd = image.to_initrd()?;
//! let layout = keel_initramfs::read_initrd(&initrd)?;
//! assert_eq!(layout.stored_offset, Some(layout.gzip_len.next_multiple_of(4)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod archive;
mod entry;
mod error;
mod initrd;
mod newc;
mod path;

pub use archive::{Initramfs, DEFAULT_DIRECTORY_MODE};
pub use error::InitramfsError;
pub use initrd::{gzip, read_initrd, Archives, InitrdLayout, ARCHIVE_ALIGNMENT};
pub use path::MAX_PATH_LEN;
