//! The DomU initramfs, `target/guest/domu-initrd.gz`: the busybox skeleton
//! with its own `/init` (`xtask/guest/domu-init.sh`), which reports itself,
//! sets up the ACPI power button (`keel shutdown`) and then, as `keel.domu=`
//! on the kernel command line says, powers off, spins, writes an MSR in a
//! loop, ticks, probes addresses outside its RAM, triple-faults, runs the
//! hostile-guest load (`keel-stress hostile`), reads the disk of an assigned
//! IDE controller (PCI passthrough), checks its virtio-blk disks (the split
//! block device), talks to another DomU and Dom0 through its virtio-net NIC
//! (the split network device), or starts a shell for `keel console`. Dom0's initramfs carries it as `/usr/lib/keel/domu-initrd.gz`. On top of the skeleton:
//!
//! | path in the DomU | what |
//! |---|---|
//! | `/bin/keel-stress` | the load generator (`guest-tools`, a static binary): `spin`, `wrmsr`, `hostile` |
//! | `/lib/modules/msr.ko` | the kernel's `msr` driver (`/dev/cpu/0/msr`) |
//! | `/lib/modules/evdev.ko` | input events as `/dev/input/event*`, which busybox acpid reads |
//! | `/lib/modules/button.ko` | the ACPI power button driver (PNP0C0C) |
//! | `/lib/modules/{scsi_common,scsi_mod,libata,ata_piix,sd_mod}.ko` | the IDE disk's drivers for PCI passthrough (`keel.domu=disk`): the PIIX3 IDE function's `ata_piix` on libata and the SCSI disk driver, in load order |
//! | `/lib/modules/{virtio_ring,virtio,virtio_pci_legacy_dev,virtio_pci_modern_dev,virtio_pci,virtio_blk}.ko` | the virtio-blk driver on virtio-pci for the split block device (`keel.domu=split-blk`), in load order |
//! | `/lib/modules/{failover,net_failover,virtio_net}.ko` | the virtio-net driver (on the same virtio-pci modules, loaded first) for the split network device (`keel.domu=split-net`), in load order |
//! | `/lib/modules/{uio,uio_pci_generic}.ko` | user-space PCI drivers (`kernel::DOMU_UIO_MODULES`, from Dom0's list): `keel.domu=disk` binds its assigned e1000 to `uio_pci_generic` for `keel-stress intx` |
//! | `/lib/modules/virtio_console.ko` | the virtio console's driver (`/dev/hvc0`), which `keel.domu=split-net` loads after virtio-net |
//! | `/lib/keel/tsc-hz.sh` | `tsc_hz`, the clock rate helper both sides of `bench io` source (`xtask/guest/tsc-hz.sh`) |
//! | `/lib/keel/domu-bench-io.sh` | the DomU side of `cargo xtask bench io` (`xtask/guest/domu-bench-io.sh`), which `/init` runs with `keel.domu=bench-io` |
//!
//! The modules are the kernel's own (`kernel::DOMU_MODULES`, taken out of
//! its Debian package with it); `/init` loads them with busybox `insmod`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use keel_boot_tests::Layout;
use keel_initramfs::Initramfs;

use super::elf;
use super::initramfs::{busybox_skeleton, write_cached};
use super::kernel::Kernel;

/// DomU's /init.
pub const INIT_SCRIPT: &str = include_str!("../../guest/domu-init.sh");
/// The DomU side of `bench io`; /init runs it with `keel.domu=bench-io`.
pub const BENCH_IO_SCRIPT: &str = include_str!("../../guest/domu-bench-io.sh");

/// Where the DomU files lie (domu-init.sh names these paths).
pub const STRESS_PATH: &str = "bin/keel-stress";
pub const MODULES_DIR: &str = "lib/modules";
pub const BENCH_IO_PATH: &str = "lib/keel/domu-bench-io.sh";
/// `tsc_hz`, which the bench-io scripts of both sides source.
pub const TSC_HZ_SCRIPT: &str = include_str!("../../guest/tsc-hz.sh");
pub const TSC_HZ_PATH: &str = "lib/keel/tsc-hz.sh";

/// `lib/modules/<name>.ko`.
pub fn module_path(name: &str) -> String {
    format!("{MODULES_DIR}/{name}.ko")
}

/// The host files the DomU initramfs carries besides the scripts.
pub struct Payload<'a> {
    /// The static `keel-stress` binary (`cargo::build_guest_tools`).
    pub stress: &'a Path,
    /// The cached kernel, whose DomU modules go in.
    pub kernel: &'a Kernel,
}

/// The same files, read.
struct Binaries {
    busybox: Vec<u8>,
    stress: Vec<u8>,
    /// `(name, contents)` of each module, in `kernel::DOMU_MODULES`' order,
    /// then `kernel::DOMU_UIO_MODULES`.
    modules: Vec<(&'static str, Vec<u8>)>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Builds `target/guest/domu-initrd.gz` from `busybox` and the payload
/// unless the image there already has exactly these contents; returns its
/// path.
pub fn ensure(layout: &Layout, busybox: &Path, payload: &Payload) -> Result<PathBuf> {
    let stress = read(payload.stress)?;
    elf::check_static_x86_64(&stress)
        .with_context(|| format!("{} cannot run in the DomU initramfs", payload.stress.display()))?;
    let uio_modules = payload
        .kernel
        .dom0_modules
        .iter()
        .filter(|(name, _)| crate::guest::kernel::DOMU_UIO_MODULES.contains(name));
    let modules = payload
        .kernel
        .modules
        .iter()
        .chain(uio_modules)
        .map(|(name, path)| Ok((*name, read(path)?)))
        .collect::<Result<Vec<_>>>()?;
    let binaries = Binaries {
        busybox: read(busybox)?,
        stress,
        modules,
    };
    let initrd = layout.domu_initrd();
    write_cached("DomU initramfs", &initrd, &domu_initramfs(INIT_SCRIPT, binaries)?)?;
    Ok(initrd)
}

fn domu_initramfs(init_script: &str, binaries: Binaries) -> Result<Initramfs> {
    let mut image = busybox_skeleton(init_script, binaries.busybox)?;
    image
        .directory("lib", 0o755)?
        .directory(MODULES_DIR, 0o755)?
        .directory("lib/keel", 0o755)?
        .file(BENCH_IO_PATH, 0o755, BENCH_IO_SCRIPT.as_bytes())?
        // Sourced, not run.
        .file(TSC_HZ_PATH, 0o644, TSC_HZ_SCRIPT.as_bytes())?
        .file(STRESS_PATH, 0o755, binaries.stress)?;
    for (name, module) in binaries.modules {
        image.file(&module_path(name), 0o644, module)?;
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::initramfs::fingerprint;
    use crate::guest::initramfs::inspect::*;
    use crate::guest::kernel::DOMU_MODULES;
    use keel_boot_tests::cases::{DOMU_POWER_BUTTON_MARKER, DOMU_USERSPACE_MARKER};

    fn binaries() -> Binaries {
        Binaries {
            busybox: b"\x7fELF busybox".to_vec(),
            stress: b"\x7fELF keel-stress".to_vec(),
            modules: DOMU_MODULES
                .iter()
                .map(|(name, _)| (*name, format!("\x7fELF {name}.ko").into_bytes()))
                .collect(),
        }
    }

    fn image() -> Initramfs {
        domu_initramfs(INIT_SCRIPT, binaries()).unwrap()
    }

    #[test]
    fn every_member_has_its_mode_and_nothing_of_dom0s_is_there() {
        let expected: &[(&str, u32)] = &[
            ("bin", DIRECTORY | 0o755),
            ("bin/busybox", REGULAR_FILE | 0o755),
            ("bin/keel-stress", REGULAR_FILE | 0o755),
            ("dev", DIRECTORY | 0o755),
            ("dev/console", CHAR_DEVICE | 0o600),
            ("dev/null", CHAR_DEVICE | 0o666),
            ("init", REGULAR_FILE | 0o755),
            ("lib", DIRECTORY | 0o755),
            ("lib/keel", DIRECTORY | 0o755),
            ("lib/keel/domu-bench-io.sh", REGULAR_FILE | 0o755),
            ("lib/keel/tsc-hz.sh", REGULAR_FILE | 0o644),
            ("lib/modules", DIRECTORY | 0o755),
            ("lib/modules/ata_piix.ko", REGULAR_FILE | 0o644),
            ("lib/modules/button.ko", REGULAR_FILE | 0o644),
            ("lib/modules/evdev.ko", REGULAR_FILE | 0o644),
            ("lib/modules/failover.ko", REGULAR_FILE | 0o644),
            ("lib/modules/libata.ko", REGULAR_FILE | 0o644),
            ("lib/modules/msr.ko", REGULAR_FILE | 0o644),
            ("lib/modules/net_failover.ko", REGULAR_FILE | 0o644),
            ("lib/modules/scsi_common.ko", REGULAR_FILE | 0o644),
            ("lib/modules/scsi_mod.ko", REGULAR_FILE | 0o644),
            ("lib/modules/sd_mod.ko", REGULAR_FILE | 0o644),
            ("lib/modules/virtio.ko", REGULAR_FILE | 0o644),
            ("lib/modules/virtio_blk.ko", REGULAR_FILE | 0o644),
            ("lib/modules/virtio_console.ko", REGULAR_FILE | 0o644),
            ("lib/modules/virtio_net.ko", REGULAR_FILE | 0o644),
            ("lib/modules/virtio_pci.ko", REGULAR_FILE | 0o644),
            ("lib/modules/virtio_pci_legacy_dev.ko", REGULAR_FILE | 0o644),
            ("lib/modules/virtio_pci_modern_dev.ko", REGULAR_FILE | 0o644),
            ("lib/modules/virtio_ring.ko", REGULAR_FILE | 0o644),
            ("proc", DIRECTORY | 0o555),
            ("root", DIRECTORY | 0o700),
            ("sys", DIRECTORY | 0o555),
            ("tmp", DIRECTORY | 0o1777),
        ];
        let mut found = members(&image());
        found.sort();
        let expected: Vec<(String, u32)> = expected.iter().map(|(name, mode)| (name.to_string(), *mode)).collect();
        assert_eq!(found, expected);
        assert_eq!(mode_of(&image(), STRESS_PATH), REGULAR_FILE | 0o755);
    }

    #[test]
    fn each_module_is_the_kernels_own_file() {
        let cpio = image().to_cpio();
        for (name, _) in DOMU_MODULES {
            let contents = format!("\x7fELF {name}.ko");
            assert!(
                cpio.windows(contents.len()).any(|window| window == contents.as_bytes()),
                "{name}"
            );
            assert_eq!(mode_of(&image(), &module_path(name)), REGULAR_FILE | 0o644);
        }
    }

    #[test]
    fn the_image_carries_domus_own_init() {
        let cpio = image().to_cpio();
        let script = INIT_SCRIPT.as_bytes();
        assert!(cpio.windows(script.len()).any(|window| window == script));
        assert_ne!(
            fingerprint(&image().archives()),
            fingerprint(&domu_initramfs("#!/bin/busybox sh\n", binaries()).unwrap().archives())
        );
        type Change = fn(&mut Binaries);
        let changed: [(&str, Change); 7] = [
            ("busybox", |b| b.busybox.push(0)),
            ("keel-stress", |b| b.stress.push(0)),
            ("msr.ko", |b| b.modules[0].1.push(0)),
            ("evdev.ko", |b| b.modules[1].1.push(0)),
            ("button.ko", |b| b.modules[2].1.push(0)),
            ("virtio_blk.ko", |b| {
                let (_, module) = b.modules.iter_mut().find(|(name, _)| *name == "virtio_blk").unwrap();
                module.push(0);
            }),
            ("virtio_net.ko", |b| b.modules.last_mut().unwrap().1.push(0)),
        ];
        for (what, change) in changed {
            let mut other = binaries();
            change(&mut other);
            let other = domu_initramfs(INIT_SCRIPT, other).unwrap();
            assert_ne!(
                fingerprint(&image().archives()),
                fingerprint(&other.archives()),
                "{what}"
            );
        }
        // One gzip stream: nothing in it is compressed already.
        assert!(stored_members(&image()).is_empty());
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
        // The WRMSR loop uses the files this image adds.
        assert!(INIT_SCRIPT.contains(&format!("insmod /{} allow_writes=on", module_path("msr"))));
        assert!(INIT_SCRIPT.contains("[ ! -c /dev/cpu/0/msr ]"));
        let stress = STRESS_PATH.rsplit('/').next().unwrap();
        assert!(INIT_SCRIPT.contains(&format!("\n            {stress} wrmsr 0x6e0 forever tsc+100000\n")));
        // The hostile mode runs the same tool.
        assert!(INIT_SCRIPT.contains("    hostile)\n        # "));
        assert!(INIT_SCRIPT.contains(&format!("\n            {stress} hostile --seed ")));
        // The marker is said (through the kernel log), not echoed to the tty.
        assert!(INIT_SCRIPT.contains(&format!("say \"{DOMU_USERSPACE_MARKER}\"")));
    }

    #[test]
    fn init_loads_the_power_button_modules_and_runs_acpid_on_them() {
        // evdev first: the button's input device gets its event node then.
        assert!(INIT_SCRIPT.contains("for module in evdev button; do"));
        assert!(INIT_SCRIPT.contains(&format!("\"/{MODULES_DIR}/$module.ko\"")));
        for needed in [
            "/dev/input/event0",
            "EV_KEY 01 KEY_POWER 116 1 button/power",
            "acpid -l /dev/kmsg",
            "domu: acpid started",
            DOMU_POWER_BUTTON_MARKER,
        ] {
            assert!(INIT_SCRIPT.contains(needed), "{needed}");
        }
    }

    #[test]
    fn disk_mode_loads_the_ide_drivers_in_order_and_reads_the_known_sectors() {
        use crate::guest::kernel::DISK_MODULES;
        use keel_boot_tests::emulator::bochs::{PASSTHROUGH_SECTOR_MARKER, PASSTHROUGH_TEXT_SECTORS};
        assert!(INIT_SCRIPT.contains("    disk)\n        # "));
        assert!(INIT_SCRIPT.contains(&format!("\nDISK_MODULES=\"{}\"\n", DISK_MODULES.join(" "))));
        assert!(INIT_SCRIPT.contains("for module in $DISK_MODULES; do"));
        assert!(INIT_SCRIPT.contains(&format!("\"/{MODULES_DIR}/$module.ko\" $(module_params \"$module\")")));
        // The image has every one of them.
        for module in DISK_MODULES {
            assert!(has(&image(), &module_path(module)), "{module}");
        }
        // The disk's text, as the harness writes it, and the sectors read.
        assert!(INIT_SCRIPT.contains(&format!("\nDISK_MARKER={PASSTHROUGH_SECTOR_MARKER}\n")));
        let sectors: Vec<String> = PASSTHROUGH_TEXT_SECTORS.iter().map(u32::to_string).collect();
        assert!(INIT_SCRIPT.contains(&format!("for sector in {}; do", sectors.join(" "))));
        for needed in [
            "\"$DISK_MARKER$sector \"*) say \"domu: $1 sector $sector: $text\" ;;",
            "read_known_sectors disk \"$disk\" disk_failed ata_irq_total ata_piix || return",
            "say \"domu: disk irqs $irqs (",
            "say \"domu: disk pci $pci $(pci_function",
            "say \"domu: disk done\"",
            "say \"domu: disk FAILED: $*\"",
            "echo 3 > /proc/sys/vm/drop_caches",
            "/proc/interrupts",
        ] {
            assert!(INIT_SCRIPT.contains(needed), "{needed}");
        }
    }
}
