//! The guest images, cached in `target/guest/`: the Debian cloud kernel
//! (with the few modules DomUs and Dom0 load, in `target/guest/modules/`),
//! busybox, the DomU initramfs, the split block device test's disk images,
//! and Dom0's initramfs, built around busybox, our /init and Dom0's `keel`
//! tool with what DomUs boot from.

mod busybox;
mod debian;
mod dom0_initramfs;
mod domu_initramfs;
mod elf;
mod initramfs;
mod kernel;
mod split_disks;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::workspace::Workspace;
use crate::{cargo, prerequisites};

/// Fetches and builds whatever of Dom0's kernel and initramfs is missing or
/// out of date (Dom0's `keel` tool, the DomU initramfs and the split block
/// device test's disks first: Dom0's initramfs carries them, and
/// `keel-stress` and `msr.ko` for its own hostile run and the kernel's Dom0
/// modules; the DomU initramfs in turn carries `keel-stress` and the
/// kernel's DomU modules); afterwards `layout.dom0_kernel()`,
/// `layout.domu_initrd()` and `layout.dom0_initrd()` exist.
pub fn ensure_dom0_images(workspace: &Workspace) -> Result<()> {
    let layout = &workspace.layout;
    let guest_dir = layout.guest_dir();
    fs::create_dir_all(&guest_dir).with_context(|| format!("cannot create {}", guest_dir.display()))?;
    // Only a fetch needs apt; a warm cache works anywhere.
    if !(kernel::is_cached(layout) && is_cached(&busybox::path(layout))) {
        prerequisites::ensure(&[prerequisites::DEBIAN_PACKAGE_TOOLS])?;
    }
    let kernel = kernel::ensure(layout)?;
    let busybox = busybox::ensure(layout)?;
    let keel = cargo::build_dom0_tools(workspace)?;
    let stress = cargo::build_guest_tools(workspace)?;
    let domu_payload = domu_initramfs::Payload {
        stress: &stress,
        kernel: &kernel,
    };
    let domu_initrd = domu_initramfs::ensure(layout, &busybox, &domu_payload)?;
    let msr_module = kernel
        .modules
        .iter()
        .find(|(name, _)| *name == "msr")
        .map(|(_, path)| path.clone())
        .context("msr.ko is not among the kernel's DomU modules")?;
    let split_disks = split_disks::ensure(layout)?;
    let payload = dom0_initramfs::Payload {
        keel: &keel,
        kernel: &kernel.image,
        domu_initrd: &domu_initrd,
        stress: &stress,
        msr_module: &msr_module,
        dom0_modules: &kernel.dom0_modules,
        split_rw_disk: &split_disks.rw,
        split_ro_disk: &split_disks.ro,
    };
    dom0_initramfs::ensure(layout, &busybox, &payload)?;
    Ok(())
}

/// `<file>.origin`: which package version a cached file came from.
fn origin_note(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".origin");
    PathBuf::from(name)
}

/// The file is there, and so is the note written only after it was
/// complete and checked.
fn is_cached(file: &Path) -> bool {
    cached_origin(file).is_some()
}

fn cached_origin(file: &Path) -> Option<String> {
    if !file.is_file() {
        return None;
    }
    let origin = fs::read_to_string(origin_note(file)).ok()?;
    Some(origin.trim().to_string()).filter(|origin| !origin.is_empty())
}

/// Drops the note before a file is fetched again, so an interrupted fetch
/// never leaves a new file under an old note.
fn forget_origin(file: &Path) {
    let _ = fs::remove_file(origin_note(file));
}

fn write_origin(file: &Path, origin: &str) -> Result<()> {
    let note = origin_note(file);
    fs::write(&note, format!("{origin}\n")).with_context(|| format!("cannot write {}", note.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_counts_as_cached_only_with_its_origin_note() {
        let dir = std::env::temp_dir().join(format!("keel-guest-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vmlinuz");
        assert_eq!(origin_note(&file), dir.join("vmlinuz.origin"));
        assert!(!is_cached(&file));
        fs::write(&file, b"kernel").unwrap();
        assert!(!is_cached(&file), "no note: an interrupted fetch");
        write_origin(&file, "linux-image-6.1.0-56-cloud-amd64 6.1.192-2").unwrap();
        assert_eq!(
            cached_origin(&file).as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64 6.1.192-2")
        );
        fs::remove_file(&file).unwrap();
        assert!(!is_cached(&file), "a note without its file");
        fs::remove_dir_all(&dir).unwrap();
    }
}
