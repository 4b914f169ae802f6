//! Dom0's kernel: the current Debian cloud kernel (LZ4-compressed, about
//! 10 s to userspace in Bochs, where the generic flavour's XZ needs a minute),
//! cached as `target/guest/vmlinuz`.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use keel_boot_tests::Layout;

use super::{cached_origin, debian, forget_origin, write_origin};
use crate::say;

/// Depends on the current `linux-image-<release>-cloud-amd64` package.
const METAPACKAGE: &str = "linux-image-cloud-amd64";
const KERNEL_PACKAGE_PREFIX: &str = "linux-image-";
const FLAVOUR_SUFFIX: &str = "-cloud-amd64";

/// Fetches the kernel unless it is cached; returns its path.
pub fn ensure(layout: &Layout) -> Result<PathBuf> {
    let kernel = layout.dom0_kernel();
    if let Some(origin) = cached_origin(&kernel) {
        say!("Dom0 kernel: {origin} (cached in {})", kernel.display());
        return Ok(kernel);
    }
    say!("finding the current Debian cloud kernel (apt-cache depends {METAPACKAGE})");
    let dependencies = debian::dependencies(METAPACKAGE)?;
    let Some(package) = kernel_package(&dependencies) else {
        bail!(
            "{METAPACKAGE} depends on no {KERNEL_PACKAGE_PREFIX}*{FLAVOUR_SUFFIX} package \
             (it lists: {})",
            dependencies.join(", ")
        );
    };
    let release = &package[KERNEL_PACKAGE_PREFIX.len()..];
    forget_origin(&kernel);
    let extracted = debian::extract_file(
        package,
        &format!("boot/vmlinuz-{release}"),
        &layout.guest_dir().join("kernel-package"),
        &kernel,
    )?;
    let image = fs::read(&kernel).with_context(|| format!("cannot read {}", kernel.display()))?;
    if let Err(error) = check_bzimage(&image) {
        // Do not leave something that looks cached.
        let _ = fs::remove_file(&kernel);
        return Err(error.context(format!("{} is not a usable kernel", extracted.origin)));
    }
    write_origin(&kernel, &extracted.origin)?;
    say!(
        "Dom0 kernel: {} ({} MiB) in {}",
        extracted.origin,
        image.len() >> 20,
        kernel.display()
    );
    Ok(kernel)
}

/// The versioned kernel package among the metapackage's dependencies.
fn kernel_package(dependencies: &[String]) -> Option<&str> {
    dependencies
        .iter()
        .map(String::as_str)
        .find(|name| *name != METAPACKAGE && name.starts_with(KERNEL_PACKAGE_PREFIX) && name.ends_with(FLAVOUR_SUFFIX))
}

/// The x86 boot protocol's marks: the 0xAA55 boot flag at 0x1FE and the
/// "HdrS" setup-header magic at 0x202.
fn check_bzimage(image: &[u8]) -> Result<()> {
    if image.get(0x1FE..0x200) != Some(&[0x55, 0xAA][..]) {
        bail!("no 0xAA55 boot flag");
    }
    if image.get(0x202..0x206) != Some(&b"HdrS"[..]) {
        bail!("no HdrS setup header");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn the_versioned_cloud_kernel_is_chosen() {
        let dependencies = names(&["linux-image-6.1.0-56-cloud-amd64"]);
        assert_eq!(kernel_package(&dependencies), Some("linux-image-6.1.0-56-cloud-amd64"));
    }

    #[test]
    fn unsigned_generic_and_unrelated_packages_are_skipped() {
        let dependencies = names(&[
            "linux-image-cloud-amd64",
            "linux-image-6.1.0-56-cloud-amd64-unsigned",
            "linux-image-6.1.0-56-amd64",
            "initramfs-tools",
            "linux-image-6.1.0-57-cloud-amd64",
        ]);
        assert_eq!(kernel_package(&dependencies), Some("linux-image-6.1.0-57-cloud-amd64"));
        assert_eq!(kernel_package(&names(&["linux-base"])), None);
    }

    #[test]
    fn a_bzimage_needs_both_boot_protocol_marks() {
        let mut image = vec![0u8; 0x400];
        assert!(check_bzimage(&image).is_err());
        image[0x1FE..0x200].copy_from_slice(&[0x55, 0xAA]);
        assert!(check_bzimage(&image).is_err(), "boot flag alone");
        image[0x202..0x206].copy_from_slice(b"HdrS");
        assert!(check_bzimage(&image).is_ok());
        assert!(check_bzimage(&image[..0x204]).is_err(), "cut short");
    }
}
