//! Builds the initramfs images Keel boots its Linux guests with: a newc
//! ("070701") cpio archive, gzip-compressed.
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
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod archive;
mod entry;
mod error;
mod newc;
mod path;

pub use archive::{Initramfs, DEFAULT_DIRECTORY_MODE};
pub use error::InitramfsError;
pub use path::MAX_PATH_LEN;
