//! Dom0's userspace: the static busybox from Debian's `busybox-static`,
//! taken out of the package so the host need not have it installed.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use keel_boot_tests::Layout;

use super::{cached_origin, debian, forget_origin, write_origin};
use crate::say;

const PACKAGE: &str = "busybox-static";
const PATH_IN_PACKAGE: &str = "bin/busybox";

pub fn path(layout: &Layout) -> PathBuf {
    layout.guest_dir().join("busybox")
}

/// Fetches busybox unless it is cached; returns its path.
pub fn ensure(layout: &Layout) -> Result<PathBuf> {
    let busybox = path(layout);
    if let Some(origin) = cached_origin(&busybox) {
        say!("busybox: {origin} (cached in {})", busybox.display());
        return Ok(busybox);
    }
    forget_origin(&busybox);
    let extracted = debian::extract_file(
        PACKAGE,
        PATH_IN_PACKAGE,
        &layout.guest_dir().join("busybox-package"),
        &busybox,
    )?;
    let binary = fs::read(&busybox).with_context(|| format!("cannot read {}", busybox.display()))?;
    if !binary.starts_with(b"\x7fELF") {
        let _ = fs::remove_file(&busybox);
        bail!("{PATH_IN_PACKAGE} in {} is not an ELF binary", extracted.origin);
    }
    write_origin(&busybox, &extracted.origin)?;
    say!("busybox: {} in {}", extracted.origin, busybox.display());
    Ok(busybox)
}
