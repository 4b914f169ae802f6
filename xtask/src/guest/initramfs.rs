//! Dom0's initramfs: busybox, the device nodes the kernel needs before
//! devtmpfs is mounted, and `/init` (`xtask/guest/init.sh`), which reports
//! the `dom0: ...` lines the boot tests and `bench boot` look for.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use keel_boot_tests::Layout;
use keel_initramfs::Initramfs;

use crate::say;

/// Dom0's /init.
const INIT_SCRIPT: &str = include_str!("../../guest/init.sh");

/// Builds `target/guest/dom0-initrd.gz` from `busybox` unless the image
/// there already has exactly these contents.
pub fn ensure(layout: &Layout, busybox: &Path) -> Result<PathBuf> {
    let initrd = layout.dom0_initrd();
    let busybox_binary = fs::read(busybox).with_context(|| format!("cannot read {}", busybox.display()))?;
    let image = dom0_initramfs(INIT_SCRIPT, busybox_binary)?;
    // The uncompressed archive is cheap to make; compressing it is not, so
    // its fingerprint decides whether to rebuild (init script, busybox and
    // this file's layout all show in it).
    let fingerprint = fingerprint(&image.to_cpio());
    let stamp = stamp_path(&initrd);
    let built = fs::read_to_string(&stamp).unwrap_or_default();
    if initrd.is_file() && built.trim() == fingerprint {
        say!("Dom0 initramfs: up to date ({})", initrd.display());
        return Ok(initrd);
    }
    say!("building Dom0 initramfs {}", initrd.display());
    let gzip = image.to_gzip().context("cannot compress the Dom0 initramfs")?;
    let _ = fs::remove_file(&stamp);
    fs::write(&initrd, &gzip).with_context(|| format!("cannot write {}", initrd.display()))?;
    fs::write(&stamp, format!("{fingerprint}\n")).with_context(|| format!("cannot write {}", stamp.display()))?;
    say!("Dom0 initramfs: {} KiB", gzip.len() >> 10);
    Ok(initrd)
}

/// The archive: busybox installs its applet links itself at boot
/// (`busybox --install -s /bin` in /init), so only busybox is listed here.
fn dom0_initramfs(init_script: &str, busybox: Vec<u8>) -> Result<Initramfs> {
    let mut image = Initramfs::new();
    image
        .directory("bin", 0o755)?
        .directory("dev", 0o755)?
        .directory("proc", 0o555)?
        .directory("sys", 0o555)?
        .directory("tmp", 0o1777)?
        .directory("root", 0o700)?
        .file("bin/busybox", 0o755, busybox)?
        .file("init", 0o755, init_script.as_bytes())?
        // The kernel opens /dev/console for init before devtmpfs exists.
        .char_device("dev/console", 0o600, 5, 1)?
        .char_device("dev/null", 0o666, 1, 3)?;
    Ok(image)
}

fn stamp_path(initrd: &Path) -> PathBuf {
    let mut name = initrd.as_os_str().to_owned();
    name.push(".contents");
    PathBuf::from(name)
}

/// Only compared with the stamp this same program wrote: a hash that
/// changes between Rust releases merely causes one rebuild.
fn fingerprint(archive: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    archive.hash(&mut hasher);
    format!("{:016x} {}", hasher.finish(), archive.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (path, mode) of every member of a newc archive.
    fn list_newc(archive: &[u8]) -> Vec<(String, u32)> {
        let field = |header: &[u8], index: usize| {
            let text = std::str::from_utf8(&header[6 + 8 * index..14 + 8 * index]).unwrap();
            usize::from_str_radix(text, 16).unwrap()
        };
        let align = |offset: usize| (offset + 3) & !3;
        let mut members = Vec::new();
        let mut offset = 0;
        loop {
            let header = &archive[offset..offset + 110];
            assert_eq!(&header[..6], b"070701");
            let (mode, file_size, name_size) = (field(header, 1), field(header, 6), field(header, 11));
            let name_start = offset + 110;
            let name = String::from_utf8(archive[name_start..name_start + name_size - 1].to_vec()).unwrap();
            if name == "TRAILER!!!" {
                return members;
            }
            members.push((name, mode as u32));
            offset = align(align(name_start + name_size) + file_size);
        }
    }

    fn members() -> Vec<(String, u32)> {
        let image = dom0_initramfs(INIT_SCRIPT, b"\x7fELF busybox".to_vec()).unwrap();
        list_newc(&image.to_cpio())
    }

    fn mode_of(path: &str) -> u32 {
        members()
            .into_iter()
            .find(|(name, _)| name == path)
            .unwrap_or_else(|| panic!("no {path} in the initramfs"))
            .1
    }

    #[test]
    fn init_and_busybox_are_executable_files() {
        assert_eq!(mode_of("init"), 0o100_755);
        assert_eq!(mode_of("bin/busybox"), 0o100_755);
    }

    #[test]
    fn console_and_null_exist_before_devtmpfs() {
        assert_eq!(mode_of("dev/console"), 0o020_600);
        assert_eq!(mode_of("dev/null"), 0o020_666);
    }

    #[test]
    fn mount_points_and_home_exist() {
        for directory in ["proc", "sys", "dev", "tmp", "root", "bin"] {
            assert_eq!(mode_of(directory) & 0o170_000, 0o040_000, "{directory}");
        }
        assert_eq!(mode_of("tmp"), 0o041_777);
    }

    #[test]
    fn init_runs_under_busybox_and_prints_every_marker_the_tests_expect() {
        assert!(INIT_SCRIPT.starts_with("#!/bin/busybox sh\n"));
        for marker in [
            "dom0: userspace started",
            "dom0: cpuinfo hypervisor=",
            "dom0: clock advanced",
            "dom0: clock stuck",
            "dom0: dmesg clean",
            "dom0: dmesg problems:",
            "dom0: checks done",
            "keel.test=1",
            "poweroff -f",
            "setsid cttyhack sh",
        ] {
            assert!(INIT_SCRIPT.contains(marker), "{marker}");
        }
    }

    #[test]
    fn fingerprint_follows_the_contents() {
        let one = dom0_initramfs("#!/bin/busybox sh\n", b"a".to_vec()).unwrap();
        let same = dom0_initramfs("#!/bin/busybox sh\n", b"a".to_vec()).unwrap();
        let other_init = dom0_initramfs("#!/bin/busybox sh\necho\n", b"a".to_vec()).unwrap();
        let other_busybox = dom0_initramfs("#!/bin/busybox sh\n", b"b".to_vec()).unwrap();
        let print = |image: &Initramfs| fingerprint(&image.to_cpio());
        assert_eq!(print(&one), print(&same));
        assert_ne!(print(&one), print(&other_init));
        assert_ne!(print(&one), print(&other_busybox));
    }

    #[test]
    fn stamp_sits_next_to_the_image() {
        assert_eq!(
            stamp_path(Path::new("/t/guest/dom0-initrd.gz")),
            Path::new("/t/guest/dom0-initrd.gz.contents")
        );
    }
}
