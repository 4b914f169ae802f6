//! The host tools the commands need, and installing them on Debian.

use std::env;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use keel_boot_tests::emulator::{bochs, qemu};
use keel_boot_tests::iso::GRUB_BIOS_DIR;

use crate::say;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A program on PATH.
    Program(&'static str),
    /// A file or directory.
    Path(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prerequisite {
    pub check: Check,
    /// The Debian package that provides it.
    pub package: &'static str,
}

const fn program(name: &'static str, package: &'static str) -> Prerequisite {
    Prerequisite {
        check: Check::Program(name),
        package,
    }
}

const fn path(path: &'static str, package: &'static str) -> Prerequisite {
    Prerequisite {
        check: Check::Path(path),
        package,
    }
}

pub const ISO_TOOLS: &[Prerequisite] = &[
    program("grub-mkrescue", "grub-common"),
    path(GRUB_BIOS_DIR, "grub-pc-bin"),
    program("xorriso", "xorriso"),
    program("mformat", "mtools"),
];

pub const BOCHS: &[Prerequisite] = &[
    program("bochs", "bochs"),
    path(bochs::BIOS_IMAGE, "bochsbios"),
    path(bochs::VGA_BIOS_IMAGE, "vgabios"),
];

pub const QEMU: &[Prerequisite] = &[program(qemu::BINARY, "qemu-system-x86")];

/// libfuzzer-sys compiles libFuzzer (C++) for the fuzz targets.
pub const FUZZ: &[Prerequisite] = &[program("c++", "g++")];

/// mkfs.ext4 makes the ext4 disk of the split block device test
/// (`guest::split_disks`). xtask runs it by this path: Debian's e2fsprogs
/// puts it in /sbin (/usr/sbin), which an ordinary user's PATH lacks.
pub const MKFS_EXT4: &str = "/sbin/mkfs.ext4";
pub const EXT4_TOOLS: &[Prerequisite] = &[path(MKFS_EXT4, "e2fsprogs")];

/// sha256sum sums the split block device test's disk contents
/// (`guest::split_disks`) for the checks inside the DomU.
pub const CHECKSUM_TOOLS: &[Prerequisite] = &[program("sha256sum", "coreutils")];

/// What takes Dom0's kernel and busybox out of Debian packages.
pub const DEBIAN_PACKAGE_TOOLS: &[Prerequisite] = &[
    program("apt-get", "apt"),
    program("apt-cache", "apt"),
    program("dpkg-deb", "dpkg"),
];

fn is_present(check: Check) -> bool {
    match check {
        Check::Program(name) => program_on_path(name),
        Check::Path(path) => Path::new(path).exists(),
    }
}

fn program_on_path(name: &str) -> bool {
    let Some(search_path) = env::var_os("PATH") else {
        return false;
    };
    env::split_paths(&search_path).any(|dir| {
        dir.join(name)
            .metadata()
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
    })
}

/// Packages providing whatever `present` says is missing, each once, in
/// order of first need.
fn missing_packages(groups: &[&[Prerequisite]], present: impl Fn(Check) -> bool) -> Vec<&'static str> {
    let mut packages = Vec::new();
    for prerequisite in groups.iter().flat_map(|group| group.iter()) {
        if !present(prerequisite.check) && !packages.contains(&prerequisite.package) {
            packages.push(prerequisite.package);
        }
    }
    packages
}

fn install_command(packages: &[&str]) -> String {
    format!("apt-get install -y {}", packages.join(" "))
}

/// Makes sure every prerequisite in `groups` is there: installs missing
/// packages when running as root on Debian (CI machines start bare), else
/// fails with the command to run.
pub fn ensure(groups: &[&[Prerequisite]]) -> Result<()> {
    let missing = missing_packages(groups, is_present);
    if missing.is_empty() {
        return Ok(());
    }
    if !(running_as_root() && Path::new("/etc/debian_version").exists()) {
        bail!(
            "missing packages: {}; install them with: sudo {}",
            missing.join(" "),
            install_command(&missing)
        );
    }
    say!("installing {} with apt-get", missing.join(" "));
    apt_get(&["update"])?;
    let mut install = vec!["install", "-y"];
    install.extend(&missing);
    apt_get(&install)?;
    let still_missing = missing_packages(groups, is_present);
    if !still_missing.is_empty() {
        bail!("still missing after apt-get: {}", still_missing.join(" "));
    }
    Ok(())
}

pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

pub fn apt_get(arguments: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(arguments)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", arguments.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_install_when_everything_is_present() {
        assert!(missing_packages(&[ISO_TOOLS, BOCHS, QEMU], |_| true).is_empty());
    }

    #[test]
    fn each_missing_package_is_listed_once_in_order() {
        let all_missing = missing_packages(&[ISO_TOOLS, BOCHS, QEMU, BOCHS], |_| false);
        assert_eq!(
            all_missing,
            [
                "grub-common",
                "grub-pc-bin",
                "xorriso",
                "mtools",
                "bochs",
                "bochsbios",
                "vgabios",
                "qemu-system-x86"
            ]
        );
    }

    #[test]
    fn only_the_packages_of_missing_items_are_listed() {
        let missing = missing_packages(&[BOCHS, QEMU], |check| check != Check::Path(bochs::VGA_BIOS_IMAGE));
        assert_eq!(missing, ["vgabios"]);
        assert_eq!(install_command(&missing), "apt-get install -y vgabios");
    }

    #[test]
    fn the_split_disk_tools_come_from_debian_packages() {
        assert_eq!(
            missing_packages(&[EXT4_TOOLS, CHECKSUM_TOOLS], |_| false),
            ["e2fsprogs", "coreutils"]
        );
        assert_eq!(EXT4_TOOLS[0].check, Check::Path("/sbin/mkfs.ext4"));
    }

    #[test]
    fn programs_are_found_on_path() {
        assert!(program_on_path("sh"));
        assert!(!program_on_path("keel-no-such-program"));
    }
}
