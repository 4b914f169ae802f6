//! The DomU initramfs, `target/guest/domu-initrd.gz`: the busybox skeleton
//! with its own `/init` (`xtask/guest/domu-init.sh`), which reports itself
//! and then, as `keel.domu=` on the kernel command line says, powers off,
//! spins, or starts a shell for `keel console`. Dom0's initramfs carries it
//! as `/usr/lib/keel/domu-initrd.gz`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use keel_boot_tests::Layout;
use keel_initramfs::Initramfs;

use super::initramfs::{busybox_skeleton, write_cached};

/// DomU's /init.
pub const INIT_SCRIPT: &str = include_str!("../../guest/domu-init.sh");

/// Builds `target/guest/domu-initrd.gz` from `busybox` unless the image
/// there already has exactly these contents; returns its path.
pub fn ensure(layout: &Layout, busybox: &Path) -> Result<PathBuf> {
    let initrd = layout.domu_initrd();
    let busybox_binary = fs::read(busybox).with_context(|| format!("cannot read {}", busybox.display()))?;
    write_cached("DomU initramfs", &initrd, &domu_initramfs(INIT_SCRIPT, busybox_binary)?)?;
    Ok(initrd)
}

fn domu_initramfs(init_script: &str, busybox: Vec<u8>) -> Result<Initramfs> {
    busybox_skeleton(init_script, busybox)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::initramfs::fingerprint;
    use crate::guest::initramfs::inspect::*;
    use keel_boot_tests::cases::DOMU_USERSPACE_MARKER;

    fn image() -> Initramfs {
        domu_initramfs(INIT_SCRIPT, b"\x7fELF busybox".to_vec()).unwrap()
    }

    #[test]
    fn members_are_the_busybox_skeleton_and_nothing_of_dom0s() {
        let names: Vec<String> = members(&image()).into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "dev",
                "dev/console",
                "dev/null",
                "init",
                "proc",
                "root",
                "sys",
                "tmp"
            ]
        );
        assert_eq!(mode_of(&image(), "init"), REGULAR_FILE | 0o755);
        assert_eq!(mode_of(&image(), "bin/busybox"), REGULAR_FILE | 0o755);
        assert_eq!(mode_of(&image(), "dev/console"), CHAR_DEVICE | 0o600);
    }

    #[test]
    fn the_image_carries_domus_own_init() {
        let cpio = image().to_cpio();
        let script = INIT_SCRIPT.as_bytes();
        assert!(cpio.windows(script.len()).any(|window| window == script));
        assert_ne!(
            fingerprint(&cpio),
            fingerprint(
                &domu_initramfs("#!/bin/busybox sh\n", b"\x7fELF busybox".to_vec())
                    .unwrap()
                    .to_cpio()
            )
        );
    }

    #[test]
    fn init_reports_through_the_kernel_log_and_obeys_keel_domu() {
        assert!(INIT_SCRIPT.starts_with("#!/bin/busybox sh\n"));
        for needed in [
            "/bin/busybox --install -s /bin",
            "mount -t devtmpfs devtmpfs /dev",
            "> /dev/kmsg",
            DOMU_USERSPACE_MARKER,
            "domu: kernel $(uname -r)",
            "/proc/cmdline",
            "keel.domu=*",
            "poweroff)",
            "spin)",
            "while :; do :; done",
            "setsid cttyhack sh",
            "poweroff -f",
        ] {
            assert!(INIT_SCRIPT.contains(needed), "{needed}");
        }
        // The marker is said (through the kernel log), not echoed to the tty.
        assert!(INIT_SCRIPT.contains(&format!("say \"{DOMU_USERSPACE_MARKER}\"")));
    }
}
