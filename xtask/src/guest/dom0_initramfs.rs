//! Dom0's initramfs, `target/guest/dom0-initrd.gz`: the busybox skeleton
//! with `/init` (`xtask/guest/init.sh`, which reports the `dom0: ...` lines
//! the boot tests and `bench boot` look for), and what Dom0 needs to run
//! DomUs:
//!
//! | path in Dom0 | what |
//! |---|---|
//! | `/bin/keel` | the management tool (`dom0-tools`, a static binary) |
//! | `/usr/lib/keel/vmlinuz` | the kernel DomUs boot: the one Dom0 boots |
//! | `/usr/lib/keel/domu-initrd.gz` | the DomU initramfs (`domu_initramfs`) |
//! | `/usr/lib/keel/domu-test.sh` | the DomU checks `keel.test=domu` runs (`xtask/guest/domu-test.sh`) |
//! | `/etc/keel/domu.toml` | sample config: `domu1`, a shell on its console |
//! | `/etc/keel/domu-poweroff.toml` | sample config: `domu2`, powers off at once |
//! | `/etc/passwd`, `/etc/group` | root and nobody, so `su` can run `keel` unprivileged |
//! | `/usr/lib/keel/domu-sched-test.sh`, `domu-faults-test.sh` | the DomU scheduling and fault checks `keel.test=domu-sched` / `keel.test=domu-faults` run, and `domu-lib.sh`, the functions they share |
//! | `/etc/keel/domu-{spin,wrmsr,tick,probe,triple}.toml` | the configs of those checks' DomUs |
//! | `/usr/lib/keel/hostile-test.sh`, `/etc/keel/domu-hostile.toml` | the hostile-guest checks `keel.test=hostile` runs, and its hostile DomU's config |
//! | `/usr/lib/keel/passthrough-test.sh`, `/etc/keel/domu-disk{,-confined}.toml` | the PCI passthrough checks `keel.test=passthrough` runs, and the configs of their DomU (the host's IDE function, with and without `pci_unconfined_dma`) |
//! | `/usr/lib/keel/passthrough-kvm-test.sh`, `/etc/keel/domu-nvme.toml` | the PCI passthrough checks with VT-d `keel.test=passthrough-kvm` runs (boot test `kvm-passthrough`, nested KVM only), and the config of their DomU (the host's NVMe controller, without `pci_unconfined_dma`) |
//! | `/bin/keel-stress`, `/lib/modules/msr.ko` | the load generator (`guest-tools`, static) and the kernel's `msr` driver, for Dom0's own hostile run |
//! | `/lib/modules/{uio,uio_pci_generic,tun}.ko` | the kernel's modules for the virtio backends and the network switch's TAP interface (`kernel::DOM0_MODULES`), which `/init` loads |
//! | `/usr/lib/keel/split-blk-test.sh`, `/etc/keel/domu-split-blk.toml` | the split block device checks `keel.test=split-blk` runs, and the config of their DomU (two disks) |
//! | `/usr/lib/keel/split-net-test.sh`, `/etc/keel/domu-split-net-{a,b}.toml` | the split network device checks `keel.test=split-net` runs, and the configs of their two DomUs (one NIC each: the server with a configured MAC, the client with a generated one) |
//! | `/usr/lib/keel/tsc-hz.sh` | `tsc_hz`, sourced by `bench-io.sh` (the DomU has the same file) |
//! | `/usr/lib/keel/bench-io.sh`, `/etc/keel/domu-bench-io.toml` | `cargo xtask bench io`'s Dom0 side, which `keel.test=bench-io` runs, and its DomU's config (the ext4 image read-only) |
//! | `/etc/keel/domu-bench-net-{a,b}.toml` | the configs of `bench io`'s two network DomUs (the split-net ones' NICs and addresses, with `keel.net-bench=1`) |
//! | `/var/lib/keel/split-rw.ext4.gz`, `/var/lib/keel/split-ro.img` | that DomU's disk images (`split_disks`); the ext4 image gzip-compressed as a file, which split-blk-test.sh unpacks, so that the other tests' Dom0s do not pay for unpacking 16 MiB |
//!
//! The file is two archives back to back (`keel_initramfs::Archives`):
//! everything but the DomU kernel and initramfs and the read-only split
//! disk gzip-compressed, then those three, compressed already (or, the
//! disk, pseudo-random bytes gzip cannot shrink), in an uncompressed
//! archive (after zero padding to a 4-byte boundary, where Linux's unpacker
//! looks for it). Gunzipping them again cost Dom0 about a minute of Bochs'
//! guest time at boot; copying them costs little. Their directories,
//! `/usr/lib/keel` and `/var/lib/keel`, come in the first archive: the
//! unpacker creates no missing parents. The ext4 disk is mostly zeros and
//! shrinks from 16 MiB to about 1 MiB compressed.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use keel_boot_tests::Layout;
use keel_initramfs::Initramfs;

use super::elf;
use super::initramfs::{busybox_skeleton, write_cached};

/// Dom0's /init.
const INIT_SCRIPT: &str = include_str!("../../guest/init.sh");
/// The DomU checks; init.sh runs it with `keel.test=domu`.
const DOMU_TEST_SCRIPT: &str = include_str!("../../guest/domu-test.sh");
const DOMU_CONFIG: &str = include_str!("../../guest/domu.toml");
const DOMU_POWEROFF_CONFIG: &str = include_str!("../../guest/domu-poweroff.toml");
/// The DomU scheduling and fault checks (init.sh runs them with
/// `keel.test=domu-sched` / `keel.test=domu-faults`), the shell functions
/// they share, and the configs of their DomUs.
const DOMU_LIB_SCRIPT: &str = include_str!("../../guest/domu-lib.sh");
const DOMU_SCHED_TEST_SCRIPT: &str = include_str!("../../guest/domu-sched-test.sh");
const DOMU_FAULTS_TEST_SCRIPT: &str = include_str!("../../guest/domu-faults-test.sh");
const DOMU_SPIN_CONFIG: &str = include_str!("../../guest/domu-spin.toml");
const DOMU_WRMSR_CONFIG: &str = include_str!("../../guest/domu-wrmsr.toml");
const DOMU_TICK_CONFIG: &str = include_str!("../../guest/domu-tick.toml");
const DOMU_PROBE_CONFIG: &str = include_str!("../../guest/domu-probe.toml");
const DOMU_TRIPLE_CONFIG: &str = include_str!("../../guest/domu-triple.toml");
/// The hostile-guest checks (init.sh runs them with `keel.test=hostile`)
/// and their hostile DomU's config.
const HOSTILE_TEST_SCRIPT: &str = include_str!("../../guest/hostile-test.sh");
const DOMU_HOSTILE_CONFIG: &str = include_str!("../../guest/domu-hostile.toml");
/// The PCI passthrough checks (init.sh runs them with `keel.test=passthrough`)
/// and their DomU's configs.
const PASSTHROUGH_TEST_SCRIPT: &str = include_str!("../../guest/passthrough-test.sh");
const DOMU_DISK_CONFIG: &str = include_str!("../../guest/domu-disk.toml");
const DOMU_DISK_CONFINED_CONFIG: &str = include_str!("../../guest/domu-disk-confined.toml");
/// The PCI passthrough checks with VT-d (init.sh runs them with
/// `keel.test=passthrough-kvm`) and their DomU's config.
const PASSTHROUGH_KVM_TEST_SCRIPT: &str = include_str!("../../guest/passthrough-kvm-test.sh");
const DOMU_NVME_CONFIG: &str = include_str!("../../guest/domu-nvme.toml");
/// The split block device checks (init.sh runs them with
/// `keel.test=split-blk`) and their DomU's config.
const SPLIT_BLK_TEST_SCRIPT: &str = include_str!("../../guest/split-blk-test.sh");
const DOMU_SPLIT_BLK_CONFIG: &str = include_str!("../../guest/domu-split-blk.toml");
/// The split network device checks (init.sh runs them with
/// `keel.test=split-net`) and their two DomUs' configs.
const SPLIT_NET_TEST_SCRIPT: &str = include_str!("../../guest/split-net-test.sh");
const DOMU_SPLIT_NET_A_CONFIG: &str = include_str!("../../guest/domu-split-net-a.toml");
const DOMU_SPLIT_NET_B_CONFIG: &str = include_str!("../../guest/domu-split-net-b.toml");
/// `bench io`'s Dom0 side (init.sh runs it with `keel.test=bench-io`) and
/// its DomU's config.
const BENCH_IO_SCRIPT: &str = include_str!("../../guest/bench-io.sh");
const DOMU_BENCH_IO_CONFIG: &str = include_str!("../../guest/domu-bench-io.toml");
/// The configs of `bench io`'s two network DomUs (bench-io.sh's network part).
const DOMU_BENCH_NET_A_CONFIG: &str = include_str!("../../guest/domu-bench-net-a.toml");
const DOMU_BENCH_NET_B_CONFIG: &str = include_str!("../../guest/domu-bench-net-b.toml");
/// busybox's `su` reads these itself; the DomU checks run `keel` as nobody.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Where the DomU files lie in Dom0 (the sample configs name these paths).
const KEEL_PATH: &str = "bin/keel";
const DOMU_KERNEL_PATH: &str = "usr/lib/keel/vmlinuz";
const DOMU_INITRD_PATH: &str = "usr/lib/keel/domu-initrd.gz";
const DOMU_TEST_PATH: &str = "usr/lib/keel/domu-test.sh";
const DOMU_CONFIG_PATH: &str = "etc/keel/domu.toml";
const DOMU_POWEROFF_CONFIG_PATH: &str = "etc/keel/domu-poweroff.toml";
const DOMU_LIB_PATH: &str = "usr/lib/keel/domu-lib.sh";
const DOMU_SCHED_TEST_PATH: &str = "usr/lib/keel/domu-sched-test.sh";
const DOMU_FAULTS_TEST_PATH: &str = "usr/lib/keel/domu-faults-test.sh";
const DOMU_SPIN_CONFIG_PATH: &str = "etc/keel/domu-spin.toml";
const DOMU_WRMSR_CONFIG_PATH: &str = "etc/keel/domu-wrmsr.toml";
const DOMU_TICK_CONFIG_PATH: &str = "etc/keel/domu-tick.toml";
const DOMU_PROBE_CONFIG_PATH: &str = "etc/keel/domu-probe.toml";
const DOMU_TRIPLE_CONFIG_PATH: &str = "etc/keel/domu-triple.toml";
const HOSTILE_TEST_PATH: &str = "usr/lib/keel/hostile-test.sh";
const DOMU_HOSTILE_CONFIG_PATH: &str = "etc/keel/domu-hostile.toml";
const PASSTHROUGH_TEST_PATH: &str = "usr/lib/keel/passthrough-test.sh";
const DOMU_DISK_CONFIG_PATH: &str = "etc/keel/domu-disk.toml";
const DOMU_DISK_CONFINED_CONFIG_PATH: &str = "etc/keel/domu-disk-confined.toml";
const PASSTHROUGH_KVM_TEST_PATH: &str = "usr/lib/keel/passthrough-kvm-test.sh";
const DOMU_NVME_CONFIG_PATH: &str = "etc/keel/domu-nvme.toml";
const SPLIT_BLK_TEST_PATH: &str = "usr/lib/keel/split-blk-test.sh";
const DOMU_SPLIT_BLK_CONFIG_PATH: &str = "etc/keel/domu-split-blk.toml";
const SPLIT_NET_TEST_PATH: &str = "usr/lib/keel/split-net-test.sh";
const DOMU_SPLIT_NET_A_CONFIG_PATH: &str = "etc/keel/domu-split-net-a.toml";
const DOMU_SPLIT_NET_B_CONFIG_PATH: &str = "etc/keel/domu-split-net-b.toml";
const BENCH_IO_PATH: &str = "usr/lib/keel/bench-io.sh";
/// The DomU's copy lives in /lib/keel (`domu_initramfs::TSC_HZ_PATH`).
const TSC_HZ_PATH: &str = "usr/lib/keel/tsc-hz.sh";
const DOMU_BENCH_IO_CONFIG_PATH: &str = "etc/keel/domu-bench-io.toml";
const DOMU_BENCH_NET_A_CONFIG_PATH: &str = "etc/keel/domu-bench-net-a.toml";
const DOMU_BENCH_NET_B_CONFIG_PATH: &str = "etc/keel/domu-bench-net-b.toml";
/// The split-blk DomU's disk images (its config names these paths).
#[cfg(test)]
const SPLIT_RW_DISK_PATH: &str = super::split_disks::RW_IMAGE_PATH;
const SPLIT_RO_DISK_PATH: &str = super::split_disks::RO_IMAGE_PATH;
/// Where the read-write image travels, compressed.
const SPLIT_RW_DISK_GZ_PATH: &str = "var/lib/keel/split-rw.ext4.gz";
/// Where Dom0's own hostile run finds its tools (the DomUs' paths too).
const STRESS_PATH: &str = super::domu_initramfs::STRESS_PATH;
const MODULES_DIR: &str = super::domu_initramfs::MODULES_DIR;

/// The host files Dom0's initramfs carries besides busybox.
pub struct Payload<'a> {
    /// The static `keel` binary (`cargo::build_dom0_tools`).
    pub keel: &'a Path,
    /// The kernel DomUs boot (Dom0's own).
    pub kernel: &'a Path,
    /// The DomU initramfs (`domu_initramfs::ensure`).
    pub domu_initrd: &'a Path,
    /// The static `keel-stress` binary (`cargo::build_guest_tools`).
    pub stress: &'a Path,
    /// The kernel's `msr.ko` (`kernel::DOMU_MODULES`).
    pub msr_module: &'a Path,
    /// `(name, path)` of the kernel's Dom0 modules (`kernel::DOM0_MODULES`).
    pub dom0_modules: &'a [(&'static str, PathBuf)],
    /// The split-blk DomU's disk images (`split_disks::ensure`).
    pub split_rw_disk: &'a Path,
    pub split_ro_disk: &'a Path,
}

/// The same files, read.
struct Binaries {
    busybox: Vec<u8>,
    keel: Vec<u8>,
    kernel: Vec<u8>,
    domu_initrd: Vec<u8>,
    stress: Vec<u8>,
    msr_module: Vec<u8>,
    /// `(name, contents)` of each module, in `kernel::DOM0_MODULES`' order.
    dom0_modules: Vec<(&'static str, Vec<u8>)>,
    /// The read-write image, gzip-compressed.
    split_rw_disk_gz: Vec<u8>,
    split_ro_disk: Vec<u8>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Builds `target/guest/dom0-initrd.gz` unless the image there already has
/// exactly these contents; returns its path.
pub fn ensure(layout: &Layout, busybox: &Path, payload: &Payload) -> Result<PathBuf> {
    let keel = read(payload.keel)?;
    elf::check_static_x86_64(&keel)
        .with_context(|| format!("{} cannot run in Dom0's initramfs", payload.keel.display()))?;
    let stress = read(payload.stress)?;
    elf::check_static_x86_64(&stress)
        .with_context(|| format!("{} cannot run in Dom0's initramfs", payload.stress.display()))?;
    let binaries = Binaries {
        busybox: read(busybox)?,
        keel,
        kernel: read(payload.kernel)?,
        domu_initrd: read(payload.domu_initrd)?,
        stress,
        msr_module: read(payload.msr_module)?,
        dom0_modules: payload
            .dom0_modules
            .iter()
            .map(|(name, path)| Ok((*name, read(path)?)))
            .collect::<Result<Vec<_>>>()?,
        split_rw_disk_gz: keel_initramfs::gzip(&read(payload.split_rw_disk)?)
            .context("compressing the split-blk ext4 image")?,
        split_ro_disk: read(payload.split_ro_disk)?,
    };
    let initrd = layout.dom0_initrd();
    write_cached("Dom0 initramfs", &initrd, &dom0_initramfs(INIT_SCRIPT, binaries)?)?;
    Ok(initrd)
}

fn dom0_initramfs(init_script: &str, binaries: Binaries) -> Result<Initramfs> {
    let mut image = busybox_skeleton(init_script, binaries.busybox)?;
    image
        .directory("etc", 0o755)?
        .directory("etc/keel", 0o755)?
        .directory("lib", 0o755)?
        .directory(MODULES_DIR, 0o755)?
        // For /run/keel.lock, which serializes concurrent `keel` calls.
        .directory("run", 0o755)?
        .directory("usr", 0o755)?
        .directory("usr/lib", 0o755)?
        .directory("usr/lib/keel", 0o755)?
        .directory("var", 0o755)?
        .directory("var/lib", 0o755)?
        .directory("var/lib/keel", 0o755)?
        .file(KEEL_PATH, 0o755, binaries.keel)?
        .file(STRESS_PATH, 0o755, binaries.stress)?
        .file(&super::domu_initramfs::module_path("msr"), 0o644, binaries.msr_module)?
        // Compressed already (LZ4 inside the bzImage, gzip): stored.
        .stored_file(DOMU_KERNEL_PATH, 0o644, binaries.kernel)?
        .stored_file(DOMU_INITRD_PATH, 0o644, binaries.domu_initrd)?
        .file(DOMU_TEST_PATH, 0o755, DOMU_TEST_SCRIPT.as_bytes())?
        .file(DOMU_CONFIG_PATH, 0o644, DOMU_CONFIG.as_bytes())?
        .file(DOMU_POWEROFF_CONFIG_PATH, 0o644, DOMU_POWEROFF_CONFIG.as_bytes())?
        // Sourced, not run.
        .file(DOMU_LIB_PATH, 0o644, DOMU_LIB_SCRIPT.as_bytes())?
        .file(DOMU_SCHED_TEST_PATH, 0o755, DOMU_SCHED_TEST_SCRIPT.as_bytes())?
        .file(DOMU_FAULTS_TEST_PATH, 0o755, DOMU_FAULTS_TEST_SCRIPT.as_bytes())?
        .file(DOMU_SPIN_CONFIG_PATH, 0o644, DOMU_SPIN_CONFIG.as_bytes())?
        .file(DOMU_WRMSR_CONFIG_PATH, 0o644, DOMU_WRMSR_CONFIG.as_bytes())?
        .file(DOMU_TICK_CONFIG_PATH, 0o644, DOMU_TICK_CONFIG.as_bytes())?
        .file(DOMU_PROBE_CONFIG_PATH, 0o644, DOMU_PROBE_CONFIG.as_bytes())?
        .file(DOMU_TRIPLE_CONFIG_PATH, 0o644, DOMU_TRIPLE_CONFIG.as_bytes())?
        .file(HOSTILE_TEST_PATH, 0o755, HOSTILE_TEST_SCRIPT.as_bytes())?
        .file(DOMU_HOSTILE_CONFIG_PATH, 0o644, DOMU_HOSTILE_CONFIG.as_bytes())?
        .file(PASSTHROUGH_TEST_PATH, 0o755, PASSTHROUGH_TEST_SCRIPT.as_bytes())?
        .file(DOMU_DISK_CONFIG_PATH, 0o644, DOMU_DISK_CONFIG.as_bytes())?
        .file(
            DOMU_DISK_CONFINED_CONFIG_PATH,
            0o644,
            DOMU_DISK_CONFINED_CONFIG.as_bytes(),
        )?
        .file(PASSTHROUGH_KVM_TEST_PATH, 0o755, PASSTHROUGH_KVM_TEST_SCRIPT.as_bytes())?
        .file(DOMU_NVME_CONFIG_PATH, 0o644, DOMU_NVME_CONFIG.as_bytes())?
        .file(SPLIT_BLK_TEST_PATH, 0o755, SPLIT_BLK_TEST_SCRIPT.as_bytes())?
        .file(DOMU_SPLIT_BLK_CONFIG_PATH, 0o644, DOMU_SPLIT_BLK_CONFIG.as_bytes())?
        .file(SPLIT_NET_TEST_PATH, 0o755, SPLIT_NET_TEST_SCRIPT.as_bytes())?
        .file(DOMU_SPLIT_NET_A_CONFIG_PATH, 0o644, DOMU_SPLIT_NET_A_CONFIG.as_bytes())?
        .file(DOMU_SPLIT_NET_B_CONFIG_PATH, 0o644, DOMU_SPLIT_NET_B_CONFIG.as_bytes())?
        .file(BENCH_IO_PATH, 0o755, BENCH_IO_SCRIPT.as_bytes())?
        // Sourced, not run.
        .file(TSC_HZ_PATH, 0o644, super::domu_initramfs::TSC_HZ_SCRIPT.as_bytes())?
        .file(DOMU_BENCH_IO_CONFIG_PATH, 0o644, DOMU_BENCH_IO_CONFIG.as_bytes())?
        .file(DOMU_BENCH_NET_A_CONFIG_PATH, 0o644, DOMU_BENCH_NET_A_CONFIG.as_bytes())?
        .file(DOMU_BENCH_NET_B_CONFIG_PATH, 0o644, DOMU_BENCH_NET_B_CONFIG.as_bytes())?
        // Mostly zeros: gzip shrinks it to about 1 MiB; a gzip file, not
        // an archive member, so that only the test that needs it unpacks it.
        .stored_file(SPLIT_RW_DISK_GZ_PATH, 0o644, binaries.split_rw_disk_gz)?
        // Pseudo-random bytes gzip cannot shrink: stored.
        .stored_file(SPLIT_RO_DISK_PATH, 0o644, binaries.split_ro_disk)?
        .file("etc/passwd", 0o644, PASSWD.as_bytes())?
        .file("etc/group", 0o644, GROUP.as_bytes())?;
    for (name, module) in binaries.dom0_modules {
        image.file(&super::domu_initramfs::module_path(name), 0o644, module)?;
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::initramfs::fingerprint;
    use crate::guest::initramfs::inspect::*;
    use crate::guest::kernel::DOM0_MODULES;
    use keel_boot_tests::cases::{DOMU_FAILURES, DOMU_MEMORY_MIB, DOMU_STEPS, DOMU_USERSPACE_MARKER};
    use keel_boot_tests::dom0::{DOMU_TEST_FLAG, TEST_FLAG};
    use serde::Deserialize;

    fn binaries() -> Binaries {
        Binaries {
            busybox: b"\x7fELF busybox".to_vec(),
            keel: b"\x7fELF keel".to_vec(),
            kernel: b"bzImage".to_vec(),
            domu_initrd: b"\x1f\x8b domu".to_vec(),
            stress: b"\x7fELF keel-stress".to_vec(),
            msr_module: b"\x7fELF msr.ko".to_vec(),
            dom0_modules: DOM0_MODULES
                .iter()
                .map(|(name, _)| (*name, format!("\x7fELF {name}.ko").into_bytes()))
                .collect(),
            split_rw_disk_gz: b"ext4 image".to_vec(),
            split_ro_disk: b"read-only image".to_vec(),
        }
    }

    fn image() -> Initramfs {
        dom0_initramfs(INIT_SCRIPT, binaries()).unwrap()
    }

    #[test]
    fn every_member_has_its_mode() {
        let expected: &[(&str, u32)] = &[
            ("bin", DIRECTORY | 0o755),
            ("bin/busybox", REGULAR_FILE | 0o755),
            ("bin/keel", REGULAR_FILE | 0o755),
            ("bin/keel-stress", REGULAR_FILE | 0o755),
            ("dev", DIRECTORY | 0o755),
            ("dev/console", CHAR_DEVICE | 0o600),
            ("dev/null", CHAR_DEVICE | 0o666),
            ("etc", DIRECTORY | 0o755),
            ("etc/group", REGULAR_FILE | 0o644),
            ("etc/keel", DIRECTORY | 0o755),
            ("etc/keel/domu-bench-io.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-bench-net-a.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-bench-net-b.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-disk-confined.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-disk.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-hostile.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-nvme.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-poweroff.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-probe.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-spin.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-split-blk.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-split-net-a.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-split-net-b.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-tick.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-triple.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu-wrmsr.toml", REGULAR_FILE | 0o644),
            ("etc/keel/domu.toml", REGULAR_FILE | 0o644),
            ("etc/passwd", REGULAR_FILE | 0o644),
            ("init", REGULAR_FILE | 0o755),
            ("lib", DIRECTORY | 0o755),
            ("lib/modules", DIRECTORY | 0o755),
            ("lib/modules/msr.ko", REGULAR_FILE | 0o644),
            ("lib/modules/tun.ko", REGULAR_FILE | 0o644),
            ("lib/modules/uio.ko", REGULAR_FILE | 0o644),
            ("lib/modules/uio_pci_generic.ko", REGULAR_FILE | 0o644),
            ("proc", DIRECTORY | 0o555),
            ("root", DIRECTORY | 0o700),
            ("run", DIRECTORY | 0o755),
            ("sys", DIRECTORY | 0o555),
            ("tmp", DIRECTORY | 0o1777),
            ("usr", DIRECTORY | 0o755),
            ("usr/lib", DIRECTORY | 0o755),
            ("usr/lib/keel", DIRECTORY | 0o755),
            ("usr/lib/keel/bench-io.sh", REGULAR_FILE | 0o755),
            ("usr/lib/keel/domu-faults-test.sh", REGULAR_FILE | 0o755),
            ("usr/lib/keel/domu-initrd.gz", REGULAR_FILE | 0o644),
            ("usr/lib/keel/domu-lib.sh", REGULAR_FILE | 0o644),
            ("usr/lib/keel/domu-sched-test.sh", REGULAR_FILE | 0o755),
            ("usr/lib/keel/domu-test.sh", REGULAR_FILE | 0o755),
            ("usr/lib/keel/hostile-test.sh", REGULAR_FILE | 0o755),
            ("usr/lib/keel/passthrough-kvm-test.sh", REGULAR_FILE | 0o755),
            ("usr/lib/keel/passthrough-test.sh", REGULAR_FILE | 0o755),
            ("usr/lib/keel/split-blk-test.sh", REGULAR_FILE | 0o755),
            ("usr/lib/keel/split-net-test.sh", REGULAR_FILE | 0o755),
            ("usr/lib/keel/tsc-hz.sh", REGULAR_FILE | 0o644),
            ("usr/lib/keel/vmlinuz", REGULAR_FILE | 0o644),
            ("var", DIRECTORY | 0o755),
            ("var/lib", DIRECTORY | 0o755),
            ("var/lib/keel", DIRECTORY | 0o755),
            ("var/lib/keel/split-ro.img", REGULAR_FILE | 0o644),
            ("var/lib/keel/split-rw.ext4.gz", REGULAR_FILE | 0o644),
        ];
        let expected: Vec<(String, u32)> = expected.iter().map(|(name, mode)| (name.to_string(), *mode)).collect();
        let mut found = members(&image());
        found.sort();
        assert_eq!(found, expected);
    }

    /// What goes into the uncompressed archive: what gzip cannot shrink.
    const STORED: [&str; 4] = [
        DOMU_INITRD_PATH,
        DOMU_KERNEL_PATH,
        SPLIT_RO_DISK_PATH,
        SPLIT_RW_DISK_GZ_PATH,
    ];

    #[test]
    fn only_the_domu_images_and_the_read_only_disk_are_stored_uncompressed() {
        let image = image();
        assert_eq!(names(&stored_members(&image)), STORED, "the stored archive");
        // Every other member is in the compressed archive, with the
        // directories the stored files need.
        let compressed = compressed_members(&image);
        let all = members(&image);
        let rest: Vec<_> = all
            .iter()
            .filter(|(name, _)| !STORED.contains(&name.as_str()))
            .cloned()
            .collect();
        assert_eq!(compressed, rest);
        assert!(has(&image, SPLIT_RW_DISK_GZ_PATH));
        for directory in ["usr", "usr/lib", "usr/lib/keel", "var", "var/lib", "var/lib/keel"] {
            assert!(
                compressed.contains(&(directory.to_string(), DIRECTORY | 0o755)),
                "{directory}"
            );
        }
        for (name, mode) in stored_members(&image) {
            assert_eq!(mode, REGULAR_FILE | 0o644, "{name}");
        }
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
            "poweroff -f",
            "setsid cttyhack sh",
        ] {
            assert!(INIT_SCRIPT.contains(marker), "{marker}");
        }
        // Both test modes, each by its whole word on the kernel command line.
        assert!(INIT_SCRIPT.contains(&format!("grep -qwF '{TEST_FLAG}' /proc/cmdline")));
        assert!(INIT_SCRIPT.contains(&format!("grep -qwF '{DOMU_TEST_FLAG}' /proc/cmdline")));
        assert!(INIT_SCRIPT.contains(&format!("/{DOMU_TEST_PATH}\n")));
    }

    #[test]
    fn domu_checks_say_every_marker_the_boot_test_knows() {
        assert!(DOMU_TEST_SCRIPT.starts_with("#!/bin/busybox sh\n"));
        for marker in DOMU_STEPS.iter().chain(DOMU_FAILURES) {
            assert!(DOMU_TEST_SCRIPT.contains(&format!("say \"{marker}")), "{marker}");
        }
        // In the order the test expects them.
        let positions: Vec<usize> = DOMU_STEPS
            .iter()
            .map(|marker| DOMU_TEST_SCRIPT.find(&format!("say \"{marker}")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{positions:?}");
        // The console step waits for what DomU's /init says.
        assert!(DOMU_TEST_SCRIPT.contains(&format!("DOMU_READY='{DOMU_USERSPACE_MARKER}'")));
        assert!(super::super::domu_initramfs::INIT_SCRIPT.contains(DOMU_USERSPACE_MARKER));
    }

    #[test]
    fn domu_checks_use_the_files_and_names_the_image_has() {
        for path in [DOMU_CONFIG_PATH, DOMU_POWEROFF_CONFIG_PATH] {
            assert!(DOMU_TEST_SCRIPT.contains(&format!("=/{path} ")), "{path}");
        }
        assert!(DOMU_TEST_SCRIPT.contains(&format!("DOMU={}\n", config(DOMU_CONFIG).name)));
        assert!(DOMU_TEST_SCRIPT.contains(&format!("CYCLE_DOMU={}\n", config(DOMU_POWEROFF_CONFIG).name)));
        // The unprivileged caller: busybox su finds nobody in /etc/passwd.
        assert!(DOMU_TEST_SCRIPT.contains("su -s /bin/sh nobody -c"));
        assert!(PASSWD.lines().any(|line| line.starts_with("nobody:x:65534:65534:")));
        assert!(PASSWD.lines().any(|line| line.starts_with("root:x:0:0:")));
        assert!(GROUP.lines().any(|line| line.starts_with("nogroup:x:65534:")));
    }

    /// A domain config as `keel create` reads it; unknown keys are errors.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // Parsing is the test; not every field is looked at.
    struct DomainConfig {
        name: String,
        memory: u64,
        vcpus: Option<u32>,
        kernel: String,
        initrd: Option<String>,
        cmdline: Option<String>,
        on_poweroff: Option<String>,
        on_reboot: Option<String>,
        on_crash: Option<String>,
        pci: Option<Vec<String>>,
        pci_unconfined_dma: Option<bool>,
        disk: Option<Vec<String>>,
        vif: Option<Vec<String>>,
        virtio_console: Option<bool>,
    }

    fn config(text: &str) -> DomainConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn sample_configs_parse_and_name_files_dom0_has() {
        let image = image();
        for (text, name, mode) in [
            (DOMU_CONFIG, "domu1", None),
            (DOMU_POWEROFF_CONFIG, "domu2", Some("keel.domu=poweroff")),
        ] {
            let config = config(text);
            assert_eq!(config.name, name);
            assert_eq!(config.memory, u64::from(DOMU_MEMORY_MIB));
            assert_eq!(config.vcpus, Some(1));
            assert_eq!(config.kernel, format!("/{DOMU_KERNEL_PATH}"));
            assert_eq!(config.initrd, Some(format!("/{DOMU_INITRD_PATH}")));
            assert_eq!(config.on_poweroff.as_deref(), Some("destroy"));
            for path in [Some(&config.kernel), config.initrd.as_ref()].into_iter().flatten() {
                assert!(has(&image, path.trim_start_matches('/')), "{path}");
            }
            let cmdline = config.cmdline.unwrap();
            assert!(cmdline.starts_with("console=ttyS0 cryptomgr.notests"), "{cmdline}");
            match mode {
                Some(mode) => assert!(cmdline.split(' ').any(|word| word == mode), "{cmdline}"),
                None => assert!(!cmdline.contains("keel.domu="), "{cmdline}"),
            }
        }
    }

    #[test]
    fn a_config_with_an_unknown_key_does_not_parse() {
        let bad = format!("{DOMU_CONFIG}colour = \"blue\"\n");
        assert!(toml::from_str::<DomainConfig>(&bad).is_err());
    }

    #[test]
    fn fingerprint_covers_every_file() {
        let print = |init: &str, binaries: Binaries| fingerprint(&dom0_initramfs(init, binaries).unwrap().archives());
        let one = print(INIT_SCRIPT, binaries());
        assert_eq!(one, print(INIT_SCRIPT, binaries()));
        assert_ne!(one, print("#!/bin/busybox sh\n", binaries()), "init");
        type Change = fn(&mut Binaries);
        let changed: [(&str, Change); 11] = [
            ("busybox", |b| b.busybox.push(0)),
            ("keel", |b| b.keel.push(0)),
            ("kernel", |b| b.kernel.push(0)),
            ("domu initrd", |b| b.domu_initrd.push(0)),
            ("keel-stress", |b| b.stress.push(0)),
            ("msr.ko", |b| b.msr_module.push(0)),
            ("uio.ko", |b| b.dom0_modules[0].1.push(0)),
            ("uio_pci_generic.ko", |b| b.dom0_modules[1].1.push(0)),
            ("tun.ko", |b| b.dom0_modules[2].1.push(0)),
            ("the ext4 disk", |b| b.split_rw_disk_gz.push(0)),
            ("the read-only disk", |b| b.split_ro_disk.push(0)),
        ];
        for (what, change) in changed {
            let mut other = binaries();
            change(&mut other);
            assert_ne!(one, print(INIT_SCRIPT, other), "{what}");
        }
    }

    #[test]
    fn ensure_builds_the_image_and_refuses_a_dynamic_keel() {
        let dir = std::env::temp_dir().join(format!("keel-dom0-initramfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let layout = Layout::new(dir.join("target"));
        fs::create_dir_all(layout.guest_dir()).unwrap();
        let file = |name: &str, contents: &[u8]| {
            let path = dir.join(name);
            fs::write(&path, contents).unwrap();
            path
        };
        // A static x86-64 ELF header with no program headers.
        let mut keel = vec![0u8; 64];
        keel[..6].copy_from_slice(b"\x7fELF\x02\x01");
        keel[0x12] = 62;
        let busybox = file("busybox", b"\x7fELF busybox");
        let kernel = file("vmlinuz", b"bzImage");
        let domu_initrd = file("domu-initrd.gz", b"\x1f\x8b");
        let static_keel = file("keel", &keel);
        let static_stress = file("keel-stress", &keel);
        let msr_module = file("msr.ko", b"\x7fELF msr");
        let dom0_modules: Vec<(&'static str, PathBuf)> = DOM0_MODULES
            .iter()
            .map(|(name, _)| (*name, file(&format!("{name}.ko"), b"\x7fELF module")))
            .collect();
        let split_rw_disk = file("split-rw.ext4", b"ext4");
        let split_ro_disk = file("split-ro.img", b"\x5a read-only disk");
        let payload = Payload {
            keel: &static_keel,
            kernel: &kernel,
            domu_initrd: &domu_initrd,
            stress: &static_stress,
            msr_module: &msr_module,
            dom0_modules: &dom0_modules,
            split_rw_disk: &split_rw_disk,
            split_ro_disk: &split_ro_disk,
        };
        let initrd = ensure(&layout, &busybox, &payload).unwrap();
        assert_eq!(initrd, layout.dom0_initrd());
        // The gzip stream, zero padding to a 4-byte boundary, and the
        // uncompressed archive holding the kernel and DomU initramfs as they are.
        let bytes = fs::read(&initrd).unwrap();
        assert!(bytes.starts_with(&[0x1f, 0x8b]));
        let read = keel_initramfs::read_initrd(&bytes).unwrap();
        let offset = read.stored_offset.expect("a stored archive");
        assert_eq!(offset, read.gzip_len.next_multiple_of(4));
        assert!(bytes[read.gzip_len..offset].iter().all(|&byte| byte == 0));
        assert_eq!(names(&list_newc(&read.archives.stored)), STORED);
        let stored = &bytes[offset..];
        assert!(stored.starts_with(b"070701"));
        for payload in [&b"bzImage"[..], &b"\x1f\x8b"[..], &b"\x5a read-only disk"[..]] {
            assert!(stored.windows(payload.len()).any(|window| window == payload));
        }
        let compressed = list_newc(&read.archives.compressed);
        assert!(compressed.iter().any(|(name, _)| name == "init"));
        assert!(!compressed.iter().any(|(name, _)| name == DOMU_KERNEL_PATH));

        let script = file("keel-script", b"#!/bin/sh\n");
        let payload = Payload {
            keel: &script,
            ..payload
        };
        let error = format!("{:#}", ensure(&layout, &busybox, &payload).unwrap_err());
        assert!(error.contains("keel-script cannot run in Dom0"), "{error}");
        let payload = Payload {
            keel: &static_keel,
            stress: &script,
            ..payload
        };
        let error = format!("{:#}", ensure(&layout, &busybox, &payload).unwrap_err());
        assert!(error.contains("keel-script cannot run in Dom0"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Every marker of a DomU scenario is said by its script, the steps in
    /// the order the boot test expects them.
    fn says_every_marker_in_order(script: &str, steps: &[&str], failures: &[&str]) {
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        assert!(script.contains(&format!(". /{DOMU_LIB_PATH}\n")));
        for marker in steps.iter().chain(failures) {
            assert!(script.contains(&format!("say \"{marker}")), "{marker}");
        }
        let positions: Vec<usize> = steps
            .iter()
            .map(|marker| script.find(&format!("say \"{marker}")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{positions:?}");
    }

    #[test]
    fn domu_scenarios_say_every_marker_their_boot_tests_know() {
        use keel_boot_tests::cases::{
            DOMU_FAULTS_FAILURES, DOMU_FAULTS_STEPS, DOMU_SCHED_FAILURES, DOMU_SCHED_STEPS, HOSTILE_FAILURES,
            HOSTILE_STEPS,
        };
        says_every_marker_in_order(DOMU_SCHED_TEST_SCRIPT, DOMU_SCHED_STEPS, DOMU_SCHED_FAILURES);
        says_every_marker_in_order(DOMU_FAULTS_TEST_SCRIPT, DOMU_FAULTS_STEPS, DOMU_FAULTS_FAILURES);
        says_every_marker_in_order(HOSTILE_TEST_SCRIPT, HOSTILE_STEPS, HOSTILE_FAILURES);
        says_every_marker_in_order(
            PASSTHROUGH_TEST_SCRIPT,
            keel_boot_tests::cases::PASSTHROUGH_STEPS,
            keel_boot_tests::cases::PASSTHROUGH_FAILURES,
        );
        says_every_marker_in_order(
            PASSTHROUGH_KVM_TEST_SCRIPT,
            keel_boot_tests::cases::PASSTHROUGH_KVM_STEPS,
            keel_boot_tests::cases::PASSTHROUGH_KVM_FAILURES,
        );
        says_every_marker_in_order(
            SPLIT_BLK_TEST_SCRIPT,
            keel_boot_tests::cases::SPLIT_BLK_STEPS,
            keel_boot_tests::cases::SPLIT_BLK_FAILURES,
        );
        says_every_marker_in_order(
            SPLIT_NET_TEST_SCRIPT,
            keel_boot_tests::cases::SPLIT_NET_STEPS,
            keel_boot_tests::cases::SPLIT_NET_FAILURES,
        );
        // The shared functions report through the kernel log as well.
        assert!(DOMU_LIB_SCRIPT.contains("> /dev/kmsg"));
    }

    #[test]
    fn the_shutdown_step_waits_for_the_witnesss_own_words_within_its_bound() {
        use super::super::domu_initramfs::INIT_SCRIPT as DOMU_INIT;
        use keel_boot_tests::cases::DOMU_POWER_BUTTON_MARKER;
        let script = DOMU_FAULTS_TEST_SCRIPT;
        assert!(script.contains(&format!("POWERING_OFF='{DOMU_POWER_BUTTON_MARKER}'\n")));
        assert!(DOMU_INIT.contains(&format!("echo \"{DOMU_POWER_BUTTON_MARKER}\" > /dev/kmsg")));
        assert!(script.contains("POWER_BUTTON='domu: acpid started'\n"));
        assert!(DOMU_INIT.contains("say \"domu: acpid started: the power button powers off\""));
        assert!(script.contains("SHUTDOWN_TIMEOUT=120\n"));
        assert!(
            script.contains("keel console \"$TICK_DOMU\" --until \"$POWERING_OFF\" --timeout \"$SHUTDOWN_TIMEOUT\"")
        );
        // The console follower starts before the press.
        let follower = script.find("--until \"$POWERING_OFF\"").unwrap();
        let press = script.find("keel shutdown \"$TICK_DOMU\" >").unwrap();
        assert!(follower < press);
    }

    #[test]
    fn the_hostile_checks_run_keel_stress_in_dom0_and_in_their_domu() {
        use super::super::domu_initramfs::INIT_SCRIPT as DOMU_INIT;
        use keel_boot_tests::cases::{HOSTILE_DOM0_SEED, HOSTILE_DOMU_SEED};
        let image = image();
        // Dom0's own run: the tool, the msr driver and the seed the boot test names.
        for path in [
            STRESS_PATH.to_string(),
            super::super::domu_initramfs::module_path("msr"),
        ] {
            assert!(has(&image, &path), "{path}");
        }
        let script = HOSTILE_TEST_SCRIPT;
        assert!(script.contains(&format!(
            "MSR_MODULE=/{}\n",
            super::super::domu_initramfs::module_path("msr")
        )));
        assert!(script.contains("insmod \"$MSR_MODULE\" allow_writes=on"));
        assert!(script.contains(&format!("DOM0_SEED={HOSTILE_DOM0_SEED}\n")));
        assert!(script.contains(
            "keel-stress hostile --seed \"$DOM0_SEED\" --seconds \"$DOM0_SECONDS\" --skip \"$DOM0_SKIP\" 2>&1"
        ));
        // Every check counts in the boot test.
        assert!(script.contains("\nDOM0_SKIP=\n"));
        assert!(!DOMU_HOSTILE_CONFIG.contains("keel.hostile-skip="));
        // The DomU's: its own seed on its command line, which its /init reads.
        let cmdline = config(DOMU_HOSTILE_CONFIG).cmdline.unwrap();
        let words: Vec<&str> = cmdline.split(' ').collect();
        assert!(
            words.contains(&format!("keel.hostile-seed={HOSTILE_DOMU_SEED}").as_str()),
            "{cmdline}"
        );
        assert!(
            words.iter().any(|word| word.starts_with("keel.hostile-seconds=")),
            "{cmdline}"
        );
        assert_ne!(HOSTILE_DOM0_SEED, HOSTILE_DOMU_SEED);
        for needed in [
            "keel.hostile-seed=*) hostile_seed=${word#keel.hostile-seed=} ;;",
            "keel.hostile-seconds=*) hostile_seconds=${word#keel.hostile-seconds=} ;;",
            "keel.hostile-skip=*) hostile_skip=${word#keel.hostile-skip=} ;;",
            "keel-stress hostile --seed \"$hostile_seed\" --seconds \"$hostile_seconds\" --skip \"$hostile_skip\" 2>&1",
            "say \"domu: hostile done (keel-stress status",
        ] {
            assert!(DOMU_INIT.contains(needed), "{needed}");
        }
        // Dom0 waits for that line, and keeps the witness of domu-faults.
        assert!(script.contains("HOSTILE_DONE='domu: hostile done'\n"));
        assert!(script.contains(&format!("TICK_CONFIG=/{DOMU_TICK_CONFIG_PATH} ")));
        // Keel stopping the DomU leaves it listed for Dom0 to see.
        assert_eq!(config(DOMU_HOSTILE_CONFIG).on_crash.as_deref(), Some("preserve"));
    }

    #[test]
    fn the_passthrough_checks_give_their_domu_the_host_function_and_know_its_disk() {
        use super::super::domu_initramfs::INIT_SCRIPT as DOMU_INIT;
        use keel_boot_tests::cases::{
            PASSTHROUGH_DOMU_FAILURE, PASSTHROUGH_FAILURES, PASSTHROUGH_HOST_FUNCTION, PASSTHROUGH_NIC_FUNCTION,
            PASSTHROUGH_STEPS,
        };
        use keel_boot_tests::emulator::bochs::PASSTHROUGH_SECTOR_MARKER;
        let image = image();
        let script = PASSTHROUGH_TEST_SCRIPT;
        let disk = config(DOMU_DISK_CONFIG);
        let confined = config(DOMU_DISK_CONFINED_CONFIG);
        for (path, config, name, unconfined) in [
            (DOMU_DISK_CONFIG_PATH, &disk, "domu-disk", Some(true)),
            (DOMU_DISK_CONFINED_CONFIG_PATH, &confined, "domu-disk-confined", None),
        ] {
            assert_eq!(config.name, name);
            assert_eq!(config.memory, u64::from(DOMU_MEMORY_MIB), "{name}");
            assert_eq!(config.vcpus, Some(1));
            assert_eq!(config.kernel, format!("/{DOMU_KERNEL_PATH}"));
            assert_eq!(config.initrd, Some(format!("/{DOMU_INITRD_PATH}")));
            assert_eq!(
                config.pci.as_deref(),
                Some(
                    &[
                        PASSTHROUGH_HOST_FUNCTION.to_string(),
                        PASSTHROUGH_NIC_FUNCTION.to_string()
                    ][..]
                )
            );
            assert_eq!(config.pci_unconfined_dma, unconfined, "{name}");
            let cmdline = config.cmdline.as_deref().unwrap();
            assert!(cmdline.starts_with("console=ttyS0 cryptomgr.notests"), "{cmdline}");
            let words: Vec<&str> = cmdline.split(' ').collect();
            // PIO only: nothing confines the device's DMA.
            for word in ["keel.domu=disk", "libata.dma=0"] {
                assert!(words.contains(&word), "{name}: {cmdline}");
            }
            assert!(has(&image, path), "{path}");
            assert!(script.contains(&format!("=/{path} ")), "{path}");
            assert!(script.contains(&format!("={name}\n")), "{name}");
        }
        // The script names the same function, the DomU's words and the disk's text.
        assert!(script.contains(&format!("\nPCI_DEVICE={PASSTHROUGH_HOST_FUNCTION}\n")));
        assert!(script.contains(&format!("\nNIC_DEVICE={PASSTHROUGH_NIC_FUNCTION}\n")));
        assert!(DOMU_INIT.contains("say \"domu: intx ok: "));
        assert!(script.contains(&format!("\nDISK_FAILED='{PASSTHROUGH_DOMU_FAILURE}'\n")));
        assert!(script.contains("\nDISK_DONE='domu: disk done'\n"));
        assert!(DOMU_INIT.contains("say \"domu: disk done\""));
        assert!(script.contains(&format!("\nDISK_MARKER={PASSTHROUGH_SECTOR_MARKER}\n")));
        // Each refusal says why; the forced create comes after both.
        let not_assignable = script.find("\"before keel pci-assignable-add\"").unwrap();
        let add = script.find("run keel pci-assignable-add \"$PCI_DEVICE\"").unwrap();
        let unconfined = script.find("\"not (be )?confined|no IOMMU confines\"").unwrap();
        let create = script.find("if run keel create \"$DISK_CONFIG\"; then").unwrap();
        let remove = script.find("run keel pci-assignable-remove \"$PCI_DEVICE\"").unwrap();
        assert!(not_assignable < add && add < unconfined && unconfined < create && create < remove);
        assert_eq!(PASSTHROUGH_STEPS.len(), 13);
        assert!(PASSTHROUGH_FAILURES.iter().all(|failure| failure.ends_with(" failed")));
        // The shared helpers it uses are in domu-lib.sh.
        for helper in ["destroy_and_wait() {", "keel_refuses() {", "pci_list_line() {"] {
            assert!(DOMU_LIB_SCRIPT.contains(helper), "{helper}");
        }
    }

    #[test]
    fn the_passthrough_kvm_checks_give_their_domu_the_nvme_function_confined_and_know_its_namespace() {
        use super::super::domu_initramfs::INIT_SCRIPT as DOMU_INIT;
        use keel_boot_tests::cases::{
            kvm_passthrough_intx_gsi, KVM_PASSTHROUGH_CLASS, KVM_PASSTHROUGH_HOST_FUNCTION, KVM_PASSTHROUGH_IDS,
            PASSTHROUGH_KVM_DOMU_FAILURE, PASSTHROUGH_KVM_FAILURES, PASSTHROUGH_KVM_STEPS, PASSTHROUGH_KVM_TEST_FLAG,
        };
        use keel_boot_tests::emulator::bochs::PASSTHROUGH_SECTOR_MARKER;
        let image = image();
        let script = PASSTHROUGH_KVM_TEST_SCRIPT;
        let nvme = config(DOMU_NVME_CONFIG);
        assert_eq!(nvme.name, "domu-nvme");
        assert_eq!(nvme.memory, u64::from(DOMU_MEMORY_MIB));
        assert_eq!(nvme.vcpus, Some(1));
        assert_eq!(nvme.kernel, format!("/{DOMU_KERNEL_PATH}"));
        assert_eq!(nvme.initrd, Some(format!("/{DOMU_INITRD_PATH}")));
        assert_eq!(nvme.on_poweroff.as_deref(), Some("destroy"));
        assert_eq!(
            nvme.pci.as_deref(),
            Some(&[KVM_PASSTHROUGH_HOST_FUNCTION.to_string()][..])
        );
        // Keel must confine the DMA itself: the config does not force it.
        assert_eq!(nvme.pci_unconfined_dma, None);
        assert!(!DOMU_NVME_CONFIG.contains("pci_unconfined_dma ="));
        let cmdline = nvme.cmdline.as_deref().unwrap();
        assert!(cmdline.starts_with("console=ttyS0 cryptomgr.notests"), "{cmdline}");
        assert!(cmdline.split(' ').any(|word| word == "keel.domu=nvme"), "{cmdline}");
        assert!(has(&image, DOMU_NVME_CONFIG_PATH));
        assert!(has(&image, PASSTHROUGH_KVM_TEST_PATH));
        assert!(script.contains(&format!("NVME_CONFIG=/{DOMU_NVME_CONFIG_PATH} ")));
        assert!(script.contains("\nNVME_DOMU=domu-nvme\n"));
        // The function, its ids and class, the DomU's words and the disk's text.
        assert!(script.contains(&format!("\nPCI_DEVICE={KVM_PASSTHROUGH_HOST_FUNCTION}\n")));
        assert!(script.contains(&format!("\nPCI_IDS={KVM_PASSTHROUGH_IDS}\n")));
        assert!(script.contains(&format!("\nPCI_CLASS={KVM_PASSTHROUGH_CLASS}\n")));
        assert!(script.contains(&format!("\nNVME_FAILED='{PASSTHROUGH_KVM_DOMU_FAILURE}'\n")));
        assert!(DOMU_INIT.contains("say \"domu: nvme FAILED: $*\""));
        assert!(script.contains("\nNVME_DONE='domu: nvme done'\n"));
        assert!(DOMU_INIT.contains("say \"domu: nvme done\""));
        assert!(script.contains(&format!("\nDISK_MARKER={PASSTHROUGH_SECTOR_MARKER}\n")));
        assert!(DOMU_INIT.contains(&format!("\nDISK_MARKER={PASSTHROUGH_SECTOR_MARKER}\n")));
        // The DomU's mode, and the lines the boot test needs from it.
        assert!(DOMU_INIT.contains("    nvme)\n        # PCI passthrough with VT-d"));
        for line in [
            "say \"domu: nvme $NVME_DISK: $sectors sectors, behind PCI function ${pci:-none} ($path)\"",
            "say \"domu: nvme pci $pci $(pci_function \"/sys/bus/pci/devices/$pci\")\"",
            "read_known_sectors nvme \"$NVME_DISK\" nvme_failed nvme_irq_total nvme || return",
            "say \"domu: nvme irqs $irqs ($((irqs - irqs_before)) during the reads; $(nvme_irq_list))\"",
        ] {
            assert!(DOMU_INIT.contains(line), "{line}");
        }
        assert!(DOMU_INIT.contains("\nNVME_DISK=nvme0n1\n"));
        // The INTx's host GSI: computed by the script from the listed
        // address with q35's routing, the same the boot test expects Keel
        // to route (slot 3: 23).
        assert_eq!(kvm_passthrough_intx_gsi(), 23);
        assert!(script.contains("echo $((16 + slot % 4 + 4))"));
        assert!(script.contains("run keel pci-assignable-add \"$PCI_DEVICE\" --intx-gsi \"$gsi\""));
        // The list must say the DMA is confined, before and while attached.
        assert!(script.contains("$PCI_CLASS $1 .*dma confined\\$\""));
        // The order: listed, assignable, created, removed.
        let listed = script.find("listed_as \"not assignable\"; then").unwrap();
        let add = script.find("run keel pci-assignable-add").unwrap();
        let create = script.find("if run keel create \"$NVME_CONFIG\"; then").unwrap();
        let remove = script.find("run keel pci-assignable-remove \"$PCI_DEVICE\"").unwrap();
        assert!(listed < add && add < create && create < remove);
        assert_eq!(PASSTHROUGH_KVM_STEPS.len(), 10);
        assert!(PASSTHROUGH_KVM_FAILURES
            .iter()
            .all(|failure| failure.ends_with(" failed")));
        // /init runs it before the Bochs passthrough checks, whose flag
        // grep -w also finds inside this one.
        let kvm = INIT_SCRIPT
            .find(&format!("if grep -qwF '{PASSTHROUGH_KVM_TEST_FLAG}' /proc/cmdline; then\n    /{PASSTHROUGH_KVM_TEST_PATH}\n    poweroff -f\nfi\n"))
            .expect("init.sh runs passthrough-kvm-test.sh");
        let bochs = INIT_SCRIPT
            .find(&format!(
                "grep -qwF '{}' /proc/cmdline",
                keel_boot_tests::dom0::PASSTHROUGH_TEST_FLAG
            ))
            .unwrap();
        assert!(kvm < bochs);
    }

    #[test]
    fn the_split_blk_checks_give_their_domu_both_disks_and_know_them() {
        use super::super::domu_initramfs::INIT_SCRIPT as DOMU_INIT;
        use super::super::kernel::SPLIT_BLK_MODULES;
        use super::super::split_disks::{
            DATA_FILE, DATA_SUM_FILE, RO_IMAGE_BYTES, RO_SECTORS, RO_SUM_FILE, RW_IMAGE_BYTES, RW_SECTORS,
        };
        use keel_boot_tests::cases::{
            SPLIT_BLK_DOMU_FAILURE, SPLIT_BLK_FAILURES, SPLIT_BLK_RO_SECTORS, SPLIT_BLK_RW_SECTORS, SPLIT_BLK_STEPS,
        };
        let image = image();
        let script = SPLIT_BLK_TEST_SCRIPT;
        let config = config(DOMU_SPLIT_BLK_CONFIG);
        assert_eq!(config.name, "domu-split-blk");
        assert_eq!(config.memory, u64::from(DOMU_MEMORY_MIB));
        assert_eq!(config.vcpus, Some(1));
        assert_eq!(config.kernel, format!("/{DOMU_KERNEL_PATH}"));
        assert_eq!(config.initrd, Some(format!("/{DOMU_INITRD_PATH}")));
        assert_eq!(config.on_poweroff.as_deref(), Some("destroy"));
        assert_eq!(config.pci, None);
        assert_eq!(
            config.cmdline.as_deref(),
            Some("console=ttyS0 cryptomgr.notests keel.domu=split-blk")
        );
        // vda read-write, vdb read-only, in that order; the files are Dom0's.
        assert_eq!(
            config.disk.as_deref(),
            Some(&[format!("/{SPLIT_RW_DISK_PATH},rw"), format!("/{SPLIT_RO_DISK_PATH},ro")][..])
        );
        for path in [SPLIT_RW_DISK_GZ_PATH, SPLIT_RO_DISK_PATH, DOMU_SPLIT_BLK_CONFIG_PATH] {
            assert!(has(&image, path), "{path}");
        }
        // The script names the same files, sizes and domain.
        assert!(script.contains(&format!("\nSPLIT_CONFIG=/{DOMU_SPLIT_BLK_CONFIG_PATH} ")));
        assert!(script.contains(&format!("\nSPLIT_DOMU={}\n", config.name)));
        assert!(script.contains(&format!("\nRW_IMAGE=/{SPLIT_RW_DISK_PATH}\n")));
        assert!(script.contains(&format!("\nRO_IMAGE=/{SPLIT_RO_DISK_PATH}\n")));
        assert!(script.contains(&format!("\nRW_IMAGE_BYTES={RW_IMAGE_BYTES}\n")));
        assert!(script.contains(&format!("\nRO_IMAGE_BYTES={RO_IMAGE_BYTES}\n")));
        let dom0_modules: Vec<&str> = DOM0_MODULES.iter().map(|(name, _)| *name).collect();
        // The backends' own modules (the switch needs tun too).
        let uio_modules: Vec<&str> = dom0_modules
            .iter()
            .copied()
            .filter(|name| name.starts_with("uio"))
            .collect();
        assert_eq!(uio_modules, ["uio", "uio_pci_generic"]);
        assert!(script.contains(&format!("\nUIO_MODULES=\"{}\"\n", uio_modules.join(" "))));
        // The DomU's words the script waits for, which its /init says.
        assert!(script.contains(&format!("\nSPLIT_FAILED='{SPLIT_BLK_DOMU_FAILURE}'\n")));
        assert!(DOMU_INIT.contains(&format!("say \"{SPLIT_BLK_DOMU_FAILURE}: $*\"")));
        for (variable, said) in [
            ("SPLIT_DONE='domu: split-blk done'", "say \"domu: split-blk done\""),
            (
                "SPLIT_WROTE='domu: split-blk wrote persist.txt (boot-1)'",
                "say \"domu: split-blk wrote persist.txt ($SPLIT_BLK_TOKEN), synced\"",
            ),
            (
                "SPLIT_PERSISTED='domu: split-blk persisted boot-1'",
                "say \"domu: split-blk persisted $(cat /mnt/persist.txt)\"",
            ),
        ] {
            assert!(script.contains(&format!("\n{variable}\n")), "{variable}");
            assert!(DOMU_INIT.contains(said), "{said}");
        }
        assert!(DOMU_INIT.contains("\nSPLIT_BLK_TOKEN=boot-1\n"));
        // The DomU's mode: the virtio drivers in load order, only there; the
        // disks' sizes and the files xtask puts on vda.
        assert!(DOMU_INIT.contains("    split-blk)\n        # "));
        assert!(DOMU_INIT.contains(&format!("\nSPLIT_BLK_MODULES=\"{}\"\n", SPLIT_BLK_MODULES.join(" "))));
        assert_eq!(
            DOMU_INIT.matches("$SPLIT_BLK_MODULES").count(),
            2,
            "loaded in split_blk only"
        );
        assert_eq!((RW_SECTORS, RO_SECTORS), (SPLIT_BLK_RW_SECTORS, SPLIT_BLK_RO_SECTORS));
        assert!(DOMU_INIT.contains(&format!("\nSPLIT_RW_SECTORS={RW_SECTORS}\n")));
        assert!(DOMU_INIT.contains(&format!("\nSPLIT_RO_SECTORS={RO_SECTORS}\n")));
        assert_eq!(
            (DATA_FILE, DATA_SUM_FILE, RO_SUM_FILE),
            ("data.bin", "data.sha256", "ro.sha256")
        );
        for needed in [
            "sha256sum -c -s data.sha256",
            "ro_sum=$(cat /mnt/ro.sha256 2> /dev/null)",
            "echo 3 > /proc/sys/vm/drop_caches",
            "dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=notrunc oflag=direct",
            "iflag=direct",
            "umount /mnt",
        ] {
            assert!(DOMU_INIT.contains(needed), "{needed}");
        }
        // Dom0's /init loads the backends' modules, in order, before any test runs.
        let loads = INIT_SCRIPT
            .find(&format!("for module in {}; do", dom0_modules.join(" ")))
            .unwrap();
        assert!(INIT_SCRIPT.contains("insmod \"/lib/modules/$module.ko\""));
        assert!(loads < INIT_SCRIPT.find("if grep -qwF 'keel.test=1' /proc/cmdline").unwrap());
        assert!(INIT_SCRIPT.contains(&format!("say \"{}", keel_boot_tests::cases::DOM0_MODULE_FAILURE)));
        for module in &dom0_modules {
            assert!(
                has(&image, &super::super::domu_initramfs::module_path(module)),
                "{module}"
            );
        }
        // Create, then the first boot, the reboot and destroy, in that order.
        let create = script.find("if run keel create \"$SPLIT_CONFIG\"; then").unwrap();
        let reboot = script.find("if run keel reboot \"$SPLIT_DOMU\"; then").unwrap();
        let restart = script
            .find("if run keel backend-restart \"$SPLIT_DOMU\"; then")
            .unwrap();
        let destroy = script
            .find("destroy_domain \"$SPLIT_DOMU\" \"after its checks\"")
            .unwrap();
        assert!(create < reboot && reboot < restart && restart < destroy);
        // The restart is judged by the second boot's read passes.
        assert!(DOMU_INIT.contains("say \"domu: split-blk read pass $pass\""));
        assert_eq!(SPLIT_BLK_STEPS.len(), 15);
        assert!(SPLIT_BLK_FAILURES
            .iter()
            .all(|failure| failure.starts_with("dom0: split-blk ")));
    }

    #[test]
    fn the_split_net_checks_give_their_domus_one_nic_each_and_know_them() {
        use super::super::domu_initramfs::{module_path, INIT_SCRIPT as DOMU_INIT};
        use super::super::kernel::SPLIT_NET_MODULES;
        use keel_boot_tests::cases::{
            SPLIT_NET_BYTES, SPLIT_NET_DOMU_FAILURE, SPLIT_NET_FAILURES, SPLIT_NET_SERVER_MAC, SPLIT_NET_STEPS,
        };
        let image = image();
        let script = SPLIT_NET_TEST_SCRIPT;
        let server = config(DOMU_SPLIT_NET_A_CONFIG);
        let client = config(DOMU_SPLIT_NET_B_CONFIG);
        // Two DomUs like the others, each with one NIC and no disk: the
        // server's MAC configured, the client's generated (an empty entry).
        for (config, path, name, vif) in [
            (
                &server,
                DOMU_SPLIT_NET_A_CONFIG_PATH,
                "domu-split-net-a",
                format!("mac={SPLIT_NET_SERVER_MAC}"),
            ),
            (&client, DOMU_SPLIT_NET_B_CONFIG_PATH, "domu-split-net-b", String::new()),
        ] {
            assert_eq!(config.name, name);
            let console = (name == "domu-split-net-a").then_some(true);
            assert_eq!(
                config.virtio_console, console,
                "{name}: only the server has a virtio console"
            );
            assert_eq!(config.memory, u64::from(DOMU_MEMORY_MIB), "{name}");
            assert_eq!(config.vcpus, Some(1));
            assert_eq!(config.kernel, format!("/{DOMU_KERNEL_PATH}"));
            assert_eq!(config.initrd, Some(format!("/{DOMU_INITRD_PATH}")));
            assert_eq!(config.on_poweroff.as_deref(), Some("destroy"));
            assert_eq!((config.pci.as_ref(), config.disk.as_ref()), (None, None), "{name}");
            assert_eq!(config.vif.as_deref(), Some(&[vif][..]), "{name}");
            assert!(has(&image, path), "{path}");
            assert_eq!(mode_of(&image, path), REGULAR_FILE | 0o644);
            // The script names the file and the domain.
            assert!(script.contains(&format!("_CONFIG=/{path} ")), "{path}");
            assert!(script.contains(&format!("_DOMU={name}\n")), "{name}");
        }
        assert!(script.contains(&format!("\nSERVER_CONFIG=/{DOMU_SPLIT_NET_A_CONFIG_PATH} ")));
        assert!(script.contains(&format!("\nCLIENT_CONFIG=/{DOMU_SPLIT_NET_B_CONFIG_PATH} ")));
        assert_eq!(mode_of(&image, SPLIT_NET_TEST_PATH), REGULAR_FILE | 0o755);
        // Each knows its address, the other's and its role, on a /24 with Dom0.
        assert_eq!(
            server.cmdline.as_deref(),
            Some("console=ttyS0 cryptomgr.notests keel.domu=split-net keel.net-ip=10.0.0.2 keel.net-peer=10.0.0.3 keel.net-role=server")
        );
        assert_eq!(
            client.cmdline.as_deref(),
            Some("console=ttyS0 cryptomgr.notests keel.domu=split-net keel.net-ip=10.0.0.3 keel.net-peer=10.0.0.2 keel.net-role=client")
        );
        for needed in [
            "\nSERVER_IP=10.0.0.2\n",
            "\nCLIENT_IP=10.0.0.3\n",
            &format!("\nSERVER_MAC={SPLIT_NET_SERVER_MAC}\n"),
            "\nSWITCH_PORT=keel0\n",
            "\nDOM0_ADDRESS=10.0.0.1/24\n",
        ] {
            assert!(script.contains(needed), "{needed}");
        }
        for needed in [
            "\nSPLIT_NET_DOM0=10.0.0.1\n",
            "\nSPLIT_NET_PREFIX=24\n",
            "keel.net-ip=*) net_ip=${word#keel.net-ip=} ;;",
            "keel.net-peer=*) net_peer=${word#keel.net-peer=} ;;",
            "keel.net-role=*) net_role=${word#keel.net-role=} ;;",
        ] {
            assert!(DOMU_INIT.contains(needed), "{needed}");
        }
        // Dom0 has the modules the backends and the switch need, loaded by
        // /init (the backends' and tun).
        let dom0_modules: Vec<&str> = DOM0_MODULES.iter().map(|(name, _)| *name).collect();
        assert!(dom0_modules.contains(&"tun"));
        assert!(script.contains(&format!("\nDOM0_MODULES=\"{}\"\n", dom0_modules.join(" "))));
        assert!(INIT_SCRIPT.contains(&format!("for module in {}; do", dom0_modules.join(" "))));
        // The DomU's mode: the virtio transport and virtio_net in load order,
        // only there; the image has every one of them.
        assert!(DOMU_INIT.contains("    split-net)\n        # "));
        assert!(DOMU_INIT.contains(&format!("\nSPLIT_NET_MODULES=\"{}\"\n", SPLIT_NET_MODULES.join(" "))));
        assert_eq!(
            DOMU_INIT.matches("$SPLIT_NET_MODULES").count(),
            2,
            "loaded in split_net only"
        );
        assert!(DOMU_INIT.contains(&format!("insmod \"/{}\"", module_path("$module"))));
        // The DomU's words the script waits for and reads, which its /init says.
        assert!(script.contains(&format!("\nNET_FAILED='{SPLIT_NET_DOMU_FAILURE}'\n")));
        assert!(DOMU_INIT.contains(&format!("say \"{SPLIT_NET_DOMU_FAILURE}: $*\"")));
        assert!(script.contains("\nNET_DONE='domu: split-net done'\n"));
        assert!(DOMU_INIT.contains("say \"domu: split-net done\""));
        for (dom0, domu) in [
            (
                "transfer_of \"$CLIENT_DOMU\" sending",
                "say \"domu: split-net sending $bytes bytes sha256 $sum to",
            ),
            (
                "transfer_of \"$SERVER_DOMU\" received",
                "say \"domu: split-net received $bytes bytes sha256 $sum ",
            ),
            (
                "grep -qF 'domu: split-net sent '",
                "say \"domu: split-net sent $bytes bytes in ",
            ),
            (
                "grep -oE 'domu: split-net [a-z0-9]+ mac [0-9a-f:]{17}'",
                "say \"domu: split-net $split_net_iface mac $(cat ",
            ),
        ] {
            assert!(script.contains(dom0), "{dom0}");
            assert!(DOMU_INIT.contains(domu), "{domu}");
        }
        assert!(script.contains("\"domu: split-net $2 [0-9]+ bytes sha256 [0-9a-f]{64}\""));
        // What the client sends, as the boot test expects it.
        assert!(DOMU_INIT.contains(&format!("\nSPLIT_NET_MIB={}\n", SPLIT_NET_BYTES >> 20)));
        assert_eq!(SPLIT_NET_BYTES % (1 << 20), 0);
        // busybox nc shuts its sending side down at its input's end, and the
        // client's nc then stops wherever it is: the server's input never ends.
        assert!(
            DOMU_INIT.contains("nc -w \"$SPLIT_NET_CONNECT_WAIT\" -l -p \"$SPLIT_NET_PORT\" <> \"$SPLIT_NET_HOLD\"")
        );
        assert!(DOMU_INIT.contains("mkfifo \"$SPLIT_NET_HOLD\""));
        // Backends and the switch are told apart by their command lines
        // (`keel backend <id> ...`, `keel switch`): the switch outlives them.
        assert!(script
            .contains("[ \"$(command_word \"$pid\" 2)\" = backend ] && [ \"$(command_word \"$pid\" 3)\" = \"$1\" ]"));
        assert!(script.contains("keel_processes switch"));
        assert!(script.contains("while [ -n \"$(keel_processes backend)\" ]; do"));
        // The server first, then the client, keel0's address, then destroy.
        let server_create = script.find("if run keel create \"$SERVER_CONFIG\"; then").unwrap();
        let client_create = script.find("if run keel create \"$CLIENT_CONFIG\"; then").unwrap();
        let address = script
            .find("run ip addr add \"$DOM0_ADDRESS\" dev \"$SWITCH_PORT\"")
            .unwrap();
        let destroy = script.find("destroy_domain \"$SERVER_DOMU\"").unwrap();
        assert!(server_create < client_create && client_create < address && address < destroy);
        assert_eq!(SPLIT_NET_STEPS.len(), 13);
        // The server's virtio console: its config asks for one, its /init
        // answers on it, Dom0 types to it.
        assert!(DOMU_INIT.contains("grep -qx 0x0003 /sys/bus/virtio/devices/*/device"));
        assert!(script.contains("keel console \"$SERVER_DOMU\" --hvc --until \"$HVC_ANSWER\""));
        assert!(SPLIT_NET_FAILURES
            .iter()
            .all(|failure| failure.starts_with("dom0: split-net ")));
    }

    #[test]
    fn the_bad_kernels_are_refused_with_a_reason() {
        for needed in [
            "kernel = \"/nonexistent/vmlinuz\"",
            "'cannot read /nonexistent/vmlinuz'",
            &format!("head -c 1000000 /{DOMU_KERNEL_PATH} > /tmp/vmlinuz-truncated"),
            "'cannot load the kernel: .*truncated'",
        ] {
            assert!(DOMU_TEST_SCRIPT.contains(needed), "{needed}");
        }
        // The sample config's kernel line, which the script rewrites.
        assert!(DOMU_CONFIG.contains(&format!("\nkernel = \"/{DOMU_KERNEL_PATH}\"\n")));
    }

    #[test]
    fn init_runs_each_domu_scenario_before_the_domu_checks() {
        use keel_boot_tests::dom0::{DOMU_FAULTS_TEST_FLAG, DOMU_SCHED_TEST_FLAG, HOSTILE_TEST_FLAG};
        let domu = INIT_SCRIPT
            .find(&format!("grep -qwF '{DOMU_TEST_FLAG}' /proc/cmdline"))
            .unwrap();
        for (flag, path) in [
            (DOMU_SCHED_TEST_FLAG, DOMU_SCHED_TEST_PATH),
            (DOMU_FAULTS_TEST_FLAG, DOMU_FAULTS_TEST_PATH),
            (HOSTILE_TEST_FLAG, HOSTILE_TEST_PATH),
            (keel_boot_tests::dom0::PASSTHROUGH_TEST_FLAG, PASSTHROUGH_TEST_PATH),
            (
                keel_boot_tests::cases::PASSTHROUGH_KVM_TEST_FLAG,
                PASSTHROUGH_KVM_TEST_PATH,
            ),
            (keel_boot_tests::dom0::SPLIT_BLK_TEST_FLAG, SPLIT_BLK_TEST_PATH),
            (keel_boot_tests::dom0::SPLIT_NET_TEST_FLAG, SPLIT_NET_TEST_PATH),
        ] {
            let branch = format!("if grep -qwF '{flag}' /proc/cmdline; then\n    /{path}\n    poweroff -f\nfi\n");
            let at = INIT_SCRIPT
                .find(&branch)
                .unwrap_or_else(|| panic!("no branch for {flag}"));
            // grep -w finds keel.test=domu inside keel.test=domu-...
            assert!(at < domu, "{flag} must come before {DOMU_TEST_FLAG}");
        }
    }

    #[test]
    fn domu_scenario_configs_parse_and_match_their_scripts() {
        use super::super::domu_initramfs::INIT_SCRIPT as DOMU_INIT;
        let image = image();
        let configs = [
            (DOMU_SPIN_CONFIG_PATH, DOMU_SPIN_CONFIG, "domu-spin", "spin", "destroy"),
            (
                DOMU_WRMSR_CONFIG_PATH,
                DOMU_WRMSR_CONFIG,
                "domu-wrmsr",
                "wrmsr",
                "destroy",
            ),
            (DOMU_TICK_CONFIG_PATH, DOMU_TICK_CONFIG, "domu-tick", "tick", "destroy"),
            (
                DOMU_PROBE_CONFIG_PATH,
                DOMU_PROBE_CONFIG,
                "domu-probe",
                "probe",
                "preserve",
            ),
            (
                DOMU_TRIPLE_CONFIG_PATH,
                DOMU_TRIPLE_CONFIG,
                "domu-triple",
                "triple",
                "preserve",
            ),
            (
                DOMU_HOSTILE_CONFIG_PATH,
                DOMU_HOSTILE_CONFIG,
                "domu-hostile",
                "hostile",
                "preserve",
            ),
        ];
        for (path, text, name, mode, on_crash) in configs {
            let config = config(text);
            assert_eq!(config.name, name);
            assert_eq!(config.memory, u64::from(DOMU_MEMORY_MIB), "{name}");
            assert_eq!(config.vcpus, Some(1));
            assert_eq!(config.kernel, format!("/{DOMU_KERNEL_PATH}"));
            assert_eq!(config.initrd, Some(format!("/{DOMU_INITRD_PATH}")));
            assert_eq!(config.on_crash.as_deref().unwrap_or("destroy"), on_crash, "{name}");
            let cmdline = config.cmdline.unwrap();
            assert!(cmdline.starts_with("console=ttyS0 cryptomgr.notests"), "{cmdline}");
            assert!(
                cmdline.split(' ').any(|word| word == format!("keel.domu={mode}")),
                "{cmdline}"
            );
            // DomU's /init knows the mode; the scripts name the file and the domain.
            assert!(DOMU_INIT.contains(&format!("    {mode})\n")), "{mode}");
            let scripts = [DOMU_SCHED_TEST_SCRIPT, DOMU_FAULTS_TEST_SCRIPT, HOSTILE_TEST_SCRIPT];
            assert!(
                scripts.iter().any(|script| script.contains(&format!("=/{path} "))),
                "{path}"
            );
            assert!(
                scripts.iter().any(|script| script.contains(&format!("={name}\n"))),
                "{name}"
            );
            assert!(has(&image, path), "{path}");
        }
        // The shutdown step waits for the witness to leave `keel list`.
        assert_eq!(config(DOMU_TICK_CONFIG).on_poweroff.as_deref(), Some("destroy"));
        // Linux's triple-fault reboot method.
        assert!(config(DOMU_TRIPLE_CONFIG)
            .cmdline
            .unwrap()
            .split(' ')
            .any(|word| word == "reboot=t"));
    }

    #[test]
    fn the_bench_io_scripts_agree_on_the_domu_its_disk_and_the_image() {
        use super::super::domu_initramfs::{
            module_path, BENCH_IO_PATH as DOMU_BENCH_IO_PATH, BENCH_IO_SCRIPT as DOMU_BENCH_IO_SCRIPT,
            INIT_SCRIPT as DOMU_INIT,
        };
        use super::super::kernel::SPLIT_BLK_MODULES;
        use super::super::split_disks::{RW_IMAGE_BYTES, RW_SECTORS};
        let image = image();
        let script = BENCH_IO_SCRIPT;
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        assert!(DOMU_BENCH_IO_SCRIPT.starts_with("#!/bin/busybox sh\n"));
        // The DomU: one disk, Dom0's ext4 image read-only, and the bench-io mode.
        let config = config(DOMU_BENCH_IO_CONFIG);
        assert_eq!(config.name, "domu-bench-io");
        assert_eq!(config.memory, u64::from(DOMU_MEMORY_MIB));
        assert_eq!(config.vcpus, Some(1));
        assert_eq!(config.kernel, format!("/{DOMU_KERNEL_PATH}"));
        assert_eq!(config.initrd, Some(format!("/{DOMU_INITRD_PATH}")));
        assert_eq!(config.on_poweroff.as_deref(), Some("destroy"));
        assert_eq!(
            config.cmdline.as_deref(),
            Some("console=ttyS0 cryptomgr.notests keel.domu=bench-io")
        );
        assert_eq!(config.disk.as_deref(), Some(&[format!("/{SPLIT_RW_DISK_PATH},ro")][..]));
        for path in [BENCH_IO_PATH, DOMU_BENCH_IO_CONFIG_PATH] {
            assert!(has(&image, path), "{path}");
        }
        assert_eq!(mode_of(&image, BENCH_IO_PATH), REGULAR_FILE | 0o755);
        // Dom0's script names the same config, domain, image and size.
        assert!(script.contains(&format!("\nBENCH_CONFIG=/{DOMU_BENCH_IO_CONFIG_PATH} ")));
        assert!(script.contains(&format!("\nBENCH_DOMU={}\n", config.name)));
        assert!(script.contains(&format!("\nIMAGE=/{SPLIT_RW_DISK_PATH}\n")));
        assert!(script.contains(&format!("\nIMAGE_BYTES={RW_IMAGE_BYTES}\n")));
        // The image may come gzip-compressed; the script unpacks it then.
        assert!(script.contains("gunzip -c \"$IMAGE.gz\" > \"$IMAGE\""));
        assert!(script.contains(". /usr/lib/keel/domu-lib.sh\n"));
        // The DomU's side: the virtio drivers in load order, the disk's size,
        // the same block size and pause; the DomU's /init can run it.
        assert!(DOMU_BENCH_IO_SCRIPT.contains(&format!("\nBENCH_IO_MODULES=\"{}\"\n", SPLIT_BLK_MODULES.join(" "))));
        assert!(DOMU_BENCH_IO_SCRIPT.contains(&format!("insmod \"/{}\"", module_path("$module"))));
        assert!(DOMU_BENCH_IO_SCRIPT.contains(&format!("\nBENCH_IO_SECTORS={RW_SECTORS}\n")));
        for (dom0, domu) in [("BLOCK", "BENCH_IO_BLOCK"), ("BENCH_IO_PAUSE", "BENCH_IO_PAUSE")] {
            let value = |text: &str, name: &str| {
                text.lines()
                    .find_map(|line| line.strip_prefix(&format!("{name}=")))
                    .map(str::to_string)
                    .unwrap_or_else(|| panic!("no {name}="))
            };
            assert_eq!(value(script, dom0), value(DOMU_BENCH_IO_SCRIPT, domu), "{dom0}");
        }
        assert_eq!(
            DOMU_BENCH_IO_PATH, "lib/keel/domu-bench-io.sh",
            "the path the bench-io branch of domu-init.sh runs"
        );
        if DOMU_INIT.contains("bench-io)") {
            assert!(DOMU_INIT.contains(&format!("/{DOMU_BENCH_IO_PATH}")));
        }
        // Each line Dom0 waits for or types, the DomU says or waits for.
        for (variable, said) in [
            (
                "READY='domu: bench-io ready'",
                "say \"domu: bench-io ready warmup_bytes=",
            ),
            ("GO='domu: bench-io go'", "say \"domu: bench-io go\""),
            ("RESULT='domu: bench-io result'", "say \"domu: bench-io result bytes="),
            (
                "DOMU_FAILED='domu: bench-io FAILED'",
                "say \"domu: bench-io FAILED: $*\"",
            ),
            (
                "OFF='domu: bench-io powering off'",
                "say \"domu: bench-io powering off\"",
            ),
        ] {
            assert!(script.contains(&format!("\n{variable}\n")), "{variable}");
            assert!(DOMU_BENCH_IO_SCRIPT.contains(said), "{said}");
        }
        assert!(script.contains("printf 'go\\n' | keel console \"$BENCH_DOMU\" --until \"$GO\""));
        assert!(DOMU_BENCH_IO_SCRIPT.contains("bench_io_wait_line go\n"));
        assert!(script.contains("printf 'off\\n' | keel console \"$BENCH_DOMU\" --until \"$OFF\""));
        assert!(DOMU_BENCH_IO_SCRIPT.contains("bench_io_wait_line off\n"));
        // Dom0's /init runs it, by its whole flag.
        let branch = "if grep -qwF 'keel.test=bench-io' /proc/cmdline; then\n    /usr/lib/keel/bench-io.sh\n    poweroff -f\nfi\n";
        assert!(INIT_SCRIPT.contains(branch));
        assert_eq!(format!("/{BENCH_IO_PATH}"), "/usr/lib/keel/bench-io.sh");
    }

    #[test]
    fn the_bench_net_domus_are_the_split_net_ones_with_the_bench_flag() {
        use super::super::domu_initramfs::INIT_SCRIPT as DOMU_INIT;
        let image = image();
        let script = BENCH_IO_SCRIPT;
        for (text, path, split_net, variable) in [
            (
                DOMU_BENCH_NET_A_CONFIG,
                DOMU_BENCH_NET_A_CONFIG_PATH,
                DOMU_SPLIT_NET_A_CONFIG,
                "NET_SERVER",
            ),
            (
                DOMU_BENCH_NET_B_CONFIG,
                DOMU_BENCH_NET_B_CONFIG_PATH,
                DOMU_SPLIT_NET_B_CONFIG,
                "NET_CLIENT",
            ),
        ] {
            let (bench, split_net) = (config(text), config(split_net));
            // The boot test's DomU, renamed, with keel.net-bench=1 last.
            assert_eq!(bench.name, split_net.name.replace("split-net", "bench-net"));
            assert_eq!(
                bench.cmdline,
                split_net
                    .cmdline
                    .as_ref()
                    .map(|line| format!("{line} keel.net-bench=1"))
            );
            assert_eq!(
                (
                    bench.memory,
                    bench.vcpus,
                    &bench.kernel,
                    &bench.initrd,
                    &bench.on_poweroff
                ),
                (
                    split_net.memory,
                    split_net.vcpus,
                    &split_net.kernel,
                    &split_net.initrd,
                    &split_net.on_poweroff
                )
            );
            assert_eq!((bench.vif, bench.disk, bench.pci), (split_net.vif, None, None));
            assert!(has(&image, path), "{path}");
            assert_eq!(mode_of(&image, path), REGULAR_FILE | 0o644);
            // bench-io.sh names the file and the domain.
            assert!(script.contains(&format!("\n{variable}_CONFIG=/{path} ")), "{path}");
            assert!(
                script.contains(&format!("\n{variable}_DOMU={}\n", bench.name)),
                "{variable}"
            );
        }
        // The DomU's /init knows the flag, and says what Dom0 waits for.
        assert!(DOMU_INIT.contains("[ \"$word\" = keel.net-bench=1 ] && return 0"));
        for (variable, said) in [
            (
                "NET_READY='domu: split-net bench ready'",
                "say \"domu: split-net bench ready warmup_bytes=",
            ),
            ("NET_GO='domu: split-net bench go'", "say \"domu: split-net bench go\""),
            (
                "NET_SENT='domu: split-net bench sent'",
                "say \"domu: split-net bench sent bytes=",
            ),
            (
                "NET_PINGING='domu: split-net bench pinging'",
                "say \"domu: split-net bench pinging ",
            ),
            (
                "NET_RESULT='domu: split-net bench result'",
                "say \"domu: split-net bench result rtt_min_ms=",
            ),
            (
                "NET_DOMU_FAILED='domu: split-net FAILED'",
                "say \"domu: split-net FAILED: $*\"",
            ),
        ] {
            assert!(script.contains(&format!("\n{variable}\n")), "{variable}");
            assert!(DOMU_INIT.contains(said), "{said}");
        }
        assert!(script.contains("printf 'go\\n' | keel console \"$NET_CLIENT_DOMU\" --until \"$NET_GO\""));
        assert!(DOMU_INIT.contains("split_net_bench_wait_line go || return 1\n"));
        assert!(script.contains("printf 'rtt\\n' | keel console \"$NET_CLIENT_DOMU\" --until \"$NET_PINGING\""));
        assert!(DOMU_INIT.contains("split_net_bench_wait_line rtt || return 1\n"));
        // The same pause, pings and interval on both sides.
        let value = |text: &str, name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
                .unwrap_or_else(|| panic!("no {name}="))
        };
        for (dom0, domu) in [
            ("NET_PAUSE", "SPLIT_NET_BENCH_PAUSE"),
            ("NET_PINGS", "SPLIT_NET_BENCH_PINGS"),
            ("NET_INTERVAL", "SPLIT_NET_BENCH_INTERVAL"),
        ] {
            assert_eq!(value(script, dom0), value(DOMU_INIT, domu), "{dom0}");
        }
        // Dom0's address on keel0 is the one the DomUs ping.
        assert_eq!(
            value(script, "DOM0_ADDRESS"),
            format!("{}/24", value(DOMU_INIT, "SPLIT_NET_DOM0"))
        );
    }
}
