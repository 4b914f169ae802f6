//! Where build outputs, ISOs and run files live.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The cargo target the hypervisor is built for.
pub const HYPERVISOR_TARGET: &str = "x86_64-unknown-none";
pub const HYPERVISOR_PACKAGE: &str = "keel-hypervisor";

/// Dom0's management tools: the `keel` binary of package `keel-tools`, built
/// static for the host's Linux target so it runs in Dom0's busybox initramfs.
pub const DOM0_TOOLS_TARGET: &str = "x86_64-unknown-linux-gnu";
pub const DOM0_TOOLS_PACKAGE: &str = "keel-tools";
pub const DOM0_TOOLS_BINARY: &str = "keel";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Release,
    Debug,
}

impl Profile {
    /// The directory cargo puts this profile's outputs in.
    pub fn dir_name(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Layout {
    target_dir: PathBuf,
}

impl Layout {
    pub fn new(target_dir: PathBuf) -> Self {
        Layout { target_dir }
    }

    pub fn target_dir(&self) -> &Path {
        &self.target_dir
    }

    pub fn hypervisor_elf(&self, profile: Profile) -> PathBuf {
        self.target_dir
            .join(HYPERVISOR_TARGET)
            .join(profile.dir_name())
            .join(HYPERVISOR_PACKAGE)
    }

    /// Everything xtask and the harness write: `target/keel`.
    pub fn keel_dir(&self) -> PathBuf {
        self.target_dir.join("keel")
    }

    pub fn iso(&self, name: &str) -> PathBuf {
        self.keel_dir().join(format!("{name}.iso"))
    }

    pub fn iso_staging_dir(&self, name: &str) -> PathBuf {
        self.keel_dir().join(format!("iso-{name}"))
    }

    /// Files of one boot test or benchmark run.
    pub fn run_dir(&self, name: &str) -> PathBuf {
        self.keel_dir().join("runs").join(name)
    }

    /// Files of an interactive `xtask run`.
    pub fn interactive_run_dir(&self) -> PathBuf {
        self.keel_dir().join("run")
    }

    /// Derived module files (e.g. deliberately broken Dom0 kernels).
    pub fn module_dir(&self) -> PathBuf {
        self.keel_dir().join("modules")
    }

    /// Dom0's `keel` tool (always the release build).
    pub fn dom0_tools(&self) -> PathBuf {
        self.target_dir
            .join(DOM0_TOOLS_TARGET)
            .join(Profile::Release.dir_name())
            .join(DOM0_TOOLS_BINARY)
    }

    /// Guest images fetched from Debian and built from them: `target/guest`.
    pub fn guest_dir(&self) -> PathBuf {
        self.target_dir.join("guest")
    }

    /// Dom0's Linux kernel (a bzImage).
    pub fn dom0_kernel(&self) -> PathBuf {
        self.guest_dir().join("vmlinuz")
    }

    /// Dom0's initramfs (gzip-compressed newc cpio).
    pub fn dom0_initrd(&self) -> PathBuf {
        self.guest_dir().join("dom0-initrd.gz")
    }

    /// The DomU initramfs Dom0's initramfs carries for `keel create`
    /// (gzip-compressed newc cpio).
    pub fn domu_initrd(&self) -> PathBuf {
        self.guest_dir().join("domu-initrd.gz")
    }
}

/// ISO and run names become file names: keep them to a safe alphabet.
pub fn check_artifact_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!("invalid name {name:?}: use lowercase letters, digits, '-' and '_'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_documented_layout() {
        let layout = Layout::new(PathBuf::from("/w/target"));
        assert_eq!(
            layout.hypervisor_elf(Profile::Release),
            Path::new("/w/target/x86_64-unknown-none/release/keel-hypervisor")
        );
        assert_eq!(
            layout.iso("bochs-selftest"),
            Path::new("/w/target/keel/bochs-selftest.iso")
        );
        assert_eq!(layout.iso_staging_dir("x"), Path::new("/w/target/keel/iso-x"));
        assert_eq!(layout.run_dir("x"), Path::new("/w/target/keel/runs/x"));
        assert_eq!(layout.dom0_kernel(), Path::new("/w/target/guest/vmlinuz"));
        assert_eq!(layout.dom0_initrd(), Path::new("/w/target/guest/dom0-initrd.gz"));
        assert_eq!(layout.domu_initrd(), Path::new("/w/target/guest/domu-initrd.gz"));
        assert_eq!(
            layout.dom0_tools(),
            Path::new("/w/target/x86_64-unknown-linux-gnu/release/keel")
        );
    }

    #[test]
    fn names_that_would_escape_or_break_paths_are_rejected() {
        assert!(check_artifact_name("bochs-selftest").is_ok());
        for bad in ["", "../x", "a b", "A", "x/y"] {
            assert!(check_artifact_name(bad).is_err(), "{bad:?}");
        }
    }
}
