//! Dom0: the Linux kernel and initramfs a boot ISO hands Keel as multiboot2
//! modules, and the deliberately broken kernels that test Keel's loader.
//!
//! The images themselves (`target/guest/vmlinuz`, `target/guest/dom0-initrd.gz`,
//! which carries `target/guest/domu-initrd.gz` and the `keel` tool for DomUs)
//! are fetched and built by xtask before any ISO that needs them.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::iso::IsoModule;
use crate::layout::Layout;

/// The role word that starts the kernel module's command line; the rest of
/// that line is Dom0's kernel command line.
pub const KERNEL_ROLE: &str = "dom0-kernel";
pub const INITRD_ROLE: &str = "dom0-initrd";

/// Dom0's Linux command line: the serial console, and no crypto self-tests
/// (they cost about 8 s in Bochs).
pub const LINUX_CMDLINE: &str = "console=ttyS0 cryptomgr.notests";
/// Tells Dom0's /init to run its checks and power off instead of starting
/// a shell.
pub const TEST_FLAG: &str = "keel.test=1";

/// Tells Dom0's /init to run the DomU checks (`/usr/lib/keel/domu-test.sh`:
/// create, watch, list and destroy DomUs with the `keel` tool) and power off.
pub const DOMU_TEST_FLAG: &str = "keel.test=domu";

/// Tells Dom0's /init to run the DomU scheduling checks
/// (`/usr/lib/keel/domu-sched-test.sh`: two DomUs spinning, one of them on
/// WRMSR, next to a responsive Dom0) and power off.
pub const DOMU_SCHED_TEST_FLAG: &str = "keel.test=domu-sched";

/// Tells Dom0's /init to run the DomU fault and lifecycle checks
/// (`/usr/lib/keel/domu-faults-test.sh`: isolation probes, shutdown, pause,
/// reboot, a triple fault) and power off.
pub const DOMU_FAULTS_TEST_FLAG: &str = "keel.test=domu-faults";

/// Tells Dom0's /init to run the hostile-guest checks
/// (`/usr/lib/keel/hostile-test.sh`: `keel-stress hostile` in Dom0 and in a
/// DomU while a witness DomU ticks) and power off.
pub const HOSTILE_TEST_FLAG: &str = "keel.test=hostile";

/// Tells Dom0's /init to run the PCI passthrough checks
/// (`/usr/lib/keel/passthrough-test.sh`: the host's IDE function assigned
/// to a DomU, whose driver reads the disk behind it) and power off.
pub const PASSTHROUGH_TEST_FLAG: &str = "keel.test=passthrough";

/// Tells Dom0's /init to run the split block device checks
/// (`/usr/lib/keel/split-blk-test.sh`: a DomU's virtio-blk disks served by
/// backend processes in Dom0 from image files) and power off.
pub const SPLIT_BLK_TEST_FLAG: &str = "keel.test=split-blk";

/// Tells Dom0's /init to run the split network device checks
/// (`/usr/lib/keel/split-net-test.sh`: two DomUs' virtio-net NICs served by
/// backend processes in Dom0, joined by a switch with a port for Dom0) and
/// power off.
pub const SPLIT_NET_TEST_FLAG: &str = "keel.test=split-net";

/// Dom0's Linux command line in boot tests and benchmarks.
pub fn test_linux_cmdline() -> String {
    format!("{LINUX_CMDLINE} {TEST_FLAG}")
}

/// Dom0's Linux command line for the DomU checks.
pub fn domu_test_linux_cmdline() -> String {
    format!("{LINUX_CMDLINE} {DOMU_TEST_FLAG}")
}

/// Offset of the setup header's `boot_flag` (0xAA55) in a bzImage.
const BOOT_FLAG_OFFSET: usize = 0x1FE;

/// Which kernel the `dom0-kernel` module carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelImage {
    /// The cached Debian kernel as is.
    Real,
    /// Only the first `bytes` bytes: a loader must notice the image is cut short.
    Truncated { bytes: usize },
    /// The setup header's 0xAA55 boot flag zeroed: not a bzImage any more.
    BootFlagZeroed,
}

impl KernelImage {
    /// The module contents for this variant of the real kernel `real`.
    pub fn derive_from(self, real: &[u8]) -> Result<Vec<u8>> {
        match self {
            KernelImage::Real => Ok(real.to_vec()),
            KernelImage::Truncated { bytes } => {
                if bytes >= real.len() {
                    bail!("cannot truncate a {} byte kernel to {bytes} bytes", real.len());
                }
                Ok(real[..bytes].to_vec())
            }
            KernelImage::BootFlagZeroed => {
                let mut image = real.to_vec();
                match image.get_mut(BOOT_FLAG_OFFSET..BOOT_FLAG_OFFSET + 2) {
                    Some(flag) if flag == [0x55, 0xAA] => flag.fill(0),
                    _ => bail!("the kernel has no 0xAA55 boot flag at {BOOT_FLAG_OFFSET:#x}"),
                }
                Ok(image)
            }
        }
    }

    /// Suffix of the file a derived kernel is written to.
    fn file_suffix(self) -> Option<String> {
        match self {
            KernelImage::Real => None,
            KernelImage::Truncated { bytes } => Some(format!("truncated-{bytes}")),
            KernelImage::BootFlagZeroed => Some("no-boot-flag".to_string()),
        }
    }
}

/// The Dom0 modules an ISO carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dom0Modules {
    pub kernel: KernelImage,
    pub with_initrd: bool,
    /// Dom0's kernel command line (after the role word on the module line).
    pub linux_cmdline: String,
}

impl Dom0Modules {
    /// The real kernel and initramfs with the boot-test command line.
    pub fn for_tests() -> Self {
        Dom0Modules {
            kernel: KernelImage::Real,
            with_initrd: true,
            linux_cmdline: test_linux_cmdline(),
        }
    }

    /// The real kernel and initramfs with Dom0 running the DomU checks.
    pub fn domu_test() -> Self {
        Self::with_linux_cmdline(&domu_test_linux_cmdline())
    }

    /// The real kernel and initramfs with Dom0 running the DomU scheduling checks.
    pub fn domu_sched_test() -> Self {
        Self::with_linux_cmdline(&format!("{LINUX_CMDLINE} {DOMU_SCHED_TEST_FLAG}"))
    }

    /// The real kernel and initramfs with Dom0 running the DomU fault checks.
    pub fn domu_faults_test() -> Self {
        Self::with_linux_cmdline(&format!("{LINUX_CMDLINE} {DOMU_FAULTS_TEST_FLAG}"))
    }

    /// The real kernel and initramfs with Dom0 running the hostile-guest checks.
    pub fn hostile_test() -> Self {
        Self::with_linux_cmdline(&format!("{LINUX_CMDLINE} {HOSTILE_TEST_FLAG}"))
    }

    /// The real kernel and initramfs with Dom0 running the PCI passthrough checks.
    pub fn passthrough_test() -> Self {
        Self::with_linux_cmdline(&format!("{LINUX_CMDLINE} {PASSTHROUGH_TEST_FLAG}"))
    }

    /// The real kernel and initramfs with Dom0 running the split block device checks.
    pub fn split_blk_test() -> Self {
        Self::with_linux_cmdline(&format!("{LINUX_CMDLINE} {SPLIT_BLK_TEST_FLAG}"))
    }

    /// The real kernel and initramfs with Dom0 running the split network device checks.
    pub fn split_net_test() -> Self {
        Self::with_linux_cmdline(&format!("{LINUX_CMDLINE} {SPLIT_NET_TEST_FLAG}"))
    }

    /// The real kernel and initramfs with Dom0 dropping to a shell.
    pub fn interactive() -> Self {
        Self::with_linux_cmdline(LINUX_CMDLINE)
    }

    /// The real kernel and initramfs, booted with `linux_cmdline`.
    pub fn with_linux_cmdline(linux_cmdline: &str) -> Self {
        Dom0Modules {
            linux_cmdline: linux_cmdline.to_string(),
            ..Self::for_tests()
        }
    }

    pub fn with_kernel(self, kernel: KernelImage) -> Self {
        Dom0Modules { kernel, ..self }
    }

    /// The modules, in grub.cfg order (kernel first), with their files made
    /// ready: a derived kernel is written to `target/keel/modules/`.
    pub fn iso_modules(&self, layout: &Layout) -> Result<Vec<IsoModule>> {
        let real_kernel = layout.dom0_kernel();
        require_image(&real_kernel, "Dom0 kernel")?;
        let kernel_file = match self.kernel.file_suffix() {
            None => real_kernel,
            Some(suffix) => {
                let real = fs::read(&real_kernel).with_context(|| format!("cannot read {}", real_kernel.display()))?;
                let derived = self.kernel.derive_from(&real)?;
                let dir = layout.module_dir();
                fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
                let path = dir.join(format!("{KERNEL_ROLE}-{suffix}"));
                fs::write(&path, derived).with_context(|| format!("cannot write {}", path.display()))?;
                path
            }
        };
        let mut modules = vec![IsoModule {
            file_name: KERNEL_ROLE.to_string(),
            source: kernel_file,
            cmdline: format!("{KERNEL_ROLE} {}", self.linux_cmdline.trim()),
        }];
        if self.with_initrd {
            let initrd = layout.dom0_initrd();
            require_image(&initrd, "Dom0 initramfs")?;
            modules.push(IsoModule {
                file_name: INITRD_ROLE.to_string(),
                source: initrd,
                cmdline: INITRD_ROLE.to_string(),
            });
        }
        Ok(modules)
    }
}

fn require_image(path: &Path, what: &str) -> Result<()> {
    if !path.is_file() {
        bail!(
            "no {what} at {} (`cargo xtask test` and `cargo xtask run` fetch and build it)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fake bzImage: zeros with the boot flag where Linux has it.
    fn fake_kernel() -> Vec<u8> {
        let mut image = vec![0u8; 0x2000];
        image[BOOT_FLAG_OFFSET] = 0x55;
        image[BOOT_FLAG_OFFSET + 1] = 0xAA;
        image[0x1000] = 7;
        image
    }

    #[test]
    fn real_kernel_is_passed_through() {
        assert_eq!(KernelImage::Real.derive_from(&fake_kernel()).unwrap(), fake_kernel());
    }

    #[test]
    fn truncated_kernel_keeps_only_the_first_bytes() {
        let derived = KernelImage::Truncated { bytes: 4096 }
            .derive_from(&fake_kernel())
            .unwrap();
        assert_eq!(derived, fake_kernel()[..4096]);
    }

    #[test]
    fn truncating_to_the_full_size_or_more_is_refused() {
        let kernel = fake_kernel();
        for bytes in [kernel.len(), kernel.len() + 1] {
            assert!(KernelImage::Truncated { bytes }.derive_from(&kernel).is_err());
        }
    }

    #[test]
    fn boot_flag_is_zeroed_and_nothing_else_changes() {
        let real = fake_kernel();
        let derived = KernelImage::BootFlagZeroed.derive_from(&real).unwrap();
        assert_eq!(derived[BOOT_FLAG_OFFSET..BOOT_FLAG_OFFSET + 2], [0, 0]);
        let differing = real.iter().zip(&derived).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 2);
    }

    #[test]
    fn an_image_without_a_boot_flag_is_refused() {
        assert!(KernelImage::BootFlagZeroed.derive_from(&[0u8; 0x400]).is_err());
        assert!(KernelImage::BootFlagZeroed.derive_from(&[0u8; 16]).is_err());
    }

    #[test]
    fn test_cmdline_adds_the_test_flag_to_the_default() {
        assert_eq!(test_linux_cmdline(), "console=ttyS0 cryptomgr.notests keel.test=1");
        assert_eq!(Dom0Modules::interactive().linux_cmdline, LINUX_CMDLINE);
    }

    #[test]
    fn domu_cmdline_adds_the_domu_flag_instead() {
        assert_eq!(
            domu_test_linux_cmdline(),
            "console=ttyS0 cryptomgr.notests keel.test=domu"
        );
        let modules = Dom0Modules::domu_test();
        assert_eq!(modules.linux_cmdline, domu_test_linux_cmdline());
        assert_eq!(modules.kernel, KernelImage::Real);
        assert!(modules.with_initrd);
        // /init matches each flag as a whole word: neither contains the other's.
        assert!(!modules.linux_cmdline.split(' ').any(|word| word == TEST_FLAG));
    }

    #[test]
    fn each_domu_check_has_its_own_flag() {
        for (modules, flag) in [
            (Dom0Modules::domu_sched_test(), DOMU_SCHED_TEST_FLAG),
            (Dom0Modules::domu_faults_test(), DOMU_FAULTS_TEST_FLAG),
        ] {
            assert_eq!(modules.linux_cmdline, format!("{LINUX_CMDLINE} {flag}"));
            assert_eq!(modules.kernel, KernelImage::Real);
            assert!(modules.with_initrd);
            let words: Vec<&str> = modules.linux_cmdline.split(' ').collect();
            assert!(!words.contains(&TEST_FLAG) && !words.contains(&DOMU_TEST_FLAG));
            // /init's `grep -w` for keel.test=domu also matches these (a
            // hyphen ends a word): their branches come first in init.sh.
            assert!(flag.starts_with(&format!("{DOMU_TEST_FLAG}-")), "{flag}");
        }
    }

    #[test]
    fn the_hostile_checks_have_their_own_flag() {
        let modules = Dom0Modules::hostile_test();
        assert_eq!(modules.linux_cmdline, format!("{LINUX_CMDLINE} {HOSTILE_TEST_FLAG}"));
        assert_eq!(modules.kernel, KernelImage::Real);
        assert!(modules.with_initrd);
        let words: Vec<&str> = modules.linux_cmdline.split(' ').collect();
        for other in [TEST_FLAG, DOMU_TEST_FLAG, DOMU_SCHED_TEST_FLAG, DOMU_FAULTS_TEST_FLAG] {
            assert!(!words.contains(&other), "{other}");
            // /init's grep -w of one flag must not find another.
            assert!(!HOSTILE_TEST_FLAG.contains(other) && !other.contains(HOSTILE_TEST_FLAG));
        }
    }

    #[test]
    fn the_passthrough_checks_have_their_own_flag() {
        let modules = Dom0Modules::passthrough_test();
        assert_eq!(
            modules.linux_cmdline,
            format!("{LINUX_CMDLINE} {PASSTHROUGH_TEST_FLAG}")
        );
        assert_eq!(modules.kernel, KernelImage::Real);
        assert!(modules.with_initrd);
        for other in [
            TEST_FLAG,
            DOMU_TEST_FLAG,
            DOMU_SCHED_TEST_FLAG,
            DOMU_FAULTS_TEST_FLAG,
            HOSTILE_TEST_FLAG,
        ] {
            // /init's grep -w of one flag must not find another.
            assert!(!PASSTHROUGH_TEST_FLAG.contains(other) && !other.contains(PASSTHROUGH_TEST_FLAG));
        }
    }

    #[test]
    fn the_split_blk_checks_have_their_own_flag() {
        let modules = Dom0Modules::split_blk_test();
        assert_eq!(
            modules.linux_cmdline,
            "console=ttyS0 cryptomgr.notests keel.test=split-blk"
        );
        assert_eq!(modules.kernel, KernelImage::Real);
        assert!(modules.with_initrd);
        for other in [
            TEST_FLAG,
            DOMU_TEST_FLAG,
            DOMU_SCHED_TEST_FLAG,
            DOMU_FAULTS_TEST_FLAG,
            HOSTILE_TEST_FLAG,
            PASSTHROUGH_TEST_FLAG,
        ] {
            // /init's grep -w of one flag must not find another.
            assert!(!SPLIT_BLK_TEST_FLAG.contains(other) && !other.contains(SPLIT_BLK_TEST_FLAG));
        }
    }

    #[test]
    fn the_split_net_checks_have_their_own_flag() {
        let modules = Dom0Modules::split_net_test();
        assert_eq!(
            modules.linux_cmdline,
            "console=ttyS0 cryptomgr.notests keel.test=split-net"
        );
        assert_eq!(modules.kernel, KernelImage::Real);
        assert!(modules.with_initrd);
        for other in [
            TEST_FLAG,
            DOMU_TEST_FLAG,
            DOMU_SCHED_TEST_FLAG,
            DOMU_FAULTS_TEST_FLAG,
            HOSTILE_TEST_FLAG,
            PASSTHROUGH_TEST_FLAG,
            SPLIT_BLK_TEST_FLAG,
        ] {
            // /init's grep -w of one flag must not find another.
            assert!(!SPLIT_NET_TEST_FLAG.contains(other) && !other.contains(SPLIT_NET_TEST_FLAG));
        }
    }

    #[test]
    fn modules_name_their_role_first_and_the_kernel_comes_first() {
        let dir = std::env::temp_dir().join(format!("keel-dom0-{}", std::process::id()));
        let layout = Layout::new(dir.clone());
        fs::create_dir_all(layout.guest_dir()).unwrap();
        fs::write(layout.dom0_kernel(), fake_kernel()).unwrap();
        fs::write(layout.dom0_initrd(), b"initrd").unwrap();

        let modules = Dom0Modules::for_tests().iso_modules(&layout).unwrap();
        assert_eq!(modules.len(), 2);
        assert_eq!(modules[0].file_name, "dom0-kernel");
        assert_eq!(modules[0].source, layout.dom0_kernel());
        assert_eq!(
            modules[0].cmdline,
            "dom0-kernel console=ttyS0 cryptomgr.notests keel.test=1"
        );
        assert_eq!(modules[1].cmdline, "dom0-initrd");

        let truncated = Dom0Modules::for_tests()
            .with_kernel(KernelImage::Truncated { bytes: 4096 })
            .iso_modules(&layout)
            .unwrap();
        assert_ne!(truncated[0].source, layout.dom0_kernel());
        assert_eq!(fs::read(&truncated[0].source).unwrap().len(), 4096);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_image_is_reported_with_its_path() {
        let layout = Layout::new(PathBuf::from("/nonexistent/target"));
        let error = Dom0Modules::for_tests().iso_modules(&layout).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/target/guest/vmlinuz"), "{error}");
    }
}
