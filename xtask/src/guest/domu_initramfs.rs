//! The DomU initramfs, `target/guest/domu-initrd.gz`: the busybox skeleton
//! with its own `/init` (`xtask/guest/domu-init.sh`), which reports itself
//! and then, as `keel.domu=` on the kernel command line says, powers off,
//! spins, writes an MSR in a loop, ticks, probes addresses outside its RAM,
//! triple-faults, or starts a shell for `keel console`. Dom0's initramfs
//! carries it as `/usr/lib/keel/domu-initrd.gz`. On top of the skeleton:
//!
//! | path in the DomU | what |
//! |---|---|
//! | `/bin/keel-stress` | the load generator (`guest-tools`, a static binary): `spin`, `wrmsr` |
//! | `/lib/modules/msr.ko` | the kernel's `msr` driver (`/dev/cpu/0/msr`), from the kernel's own Debian package |

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use keel_boot_tests::Layout;
use keel_initramfs::Initramfs;

use super::initramfs::{busybox_skeleton, write_cached};
use super::{cached_origin, debian, elf, forget_origin, write_origin};
use crate::workspace::Workspace;
use crate::{cargo, prerequisites, say};

/// DomU's /init.
pub const INIT_SCRIPT: &str = include_str!("../../guest/domu-init.sh");

/// Where the DomU files lie (domu-init.sh names these paths).
pub const STRESS_PATH: &str = "bin/keel-stress";
pub const MSR_MODULE_PATH: &str = "lib/modules/msr.ko";

/// The msr driver in the kernel package, below `lib/modules/<release>/`.
const MSR_MODULE_IN_RELEASE: &str = "kernel/arch/x86/kernel/msr.ko";
/// Kernel packages are `linux-image-<release>`.
const KERNEL_PACKAGE_PREFIX: &str = "linux-image-";

/// The host files the DomU initramfs carries besides busybox, read.
struct Binaries {
    busybox: Vec<u8>,
    stress: Vec<u8>,
    msr_module: Vec<u8>,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Builds `target/guest/domu-initrd.gz` from `busybox`, `keel-stress` (built
/// here: `cargo::build_guest_tools`) and the cached kernel's `msr.ko`
/// (fetched once: [`msr_module`]) unless the image there already has exactly
/// these contents; returns its path.
pub fn ensure(layout: &Layout, busybox: &Path) -> Result<PathBuf> {
    let stress_path = cargo::build_guest_tools(&Workspace::locate())?;
    let stress = read(&stress_path)?;
    elf::check_static_x86_64(&stress)
        .with_context(|| format!("{} cannot run in the DomU initramfs", stress_path.display()))?;
    let binaries = Binaries {
        busybox: read(busybox)?,
        stress,
        msr_module: read(&msr_module(layout)?)?,
    };
    let initrd = layout.domu_initrd();
    write_cached("DomU initramfs", &initrd, &domu_initramfs(INIT_SCRIPT, binaries)?)?;
    Ok(initrd)
}

/// `target/guest/msr.ko`: the msr driver of exactly the cached kernel (its
/// `.origin` note names the same package version), taken out of that
/// kernel's Debian package on first use.
fn msr_module(layout: &Layout) -> Result<PathBuf> {
    let kernel = layout.dom0_kernel();
    let module = layout.guest_dir().join("msr.ko");
    let Some(kernel_origin) = cached_origin(&kernel) else {
        bail!("no cached kernel at {}: fetch it before its msr.ko", kernel.display());
    };
    if cached_origin(&module).as_deref() == Some(kernel_origin.as_str()) {
        say!("msr.ko: {kernel_origin} (cached in {})", module.display());
        return Ok(module);
    }
    let (package, path) = msr_module_source(&kernel_origin)?;
    forget_origin(&module);
    prerequisites::ensure(&[prerequisites::DEBIAN_PACKAGE_TOOLS])?;
    let extracted = debian::extract_file(&package, &path, &layout.guest_dir().join("msr-package"), &module)?;
    if extracted.origin != kernel_origin {
        let _ = fs::remove_file(&module);
        bail!(
            "apt offers {} but the cached kernel is {kernel_origin}, and a module must match its kernel;              delete {} to fetch the current kernel again",
            extracted.origin,
            kernel.display()
        );
    }
    if !read(&module)?.starts_with(b"\x7fELF") {
        let _ = fs::remove_file(&module);
        bail!("{path} in {} is not an ELF file", extracted.origin);
    }
    write_origin(&module, &extracted.origin)?;
    say!("msr.ko: {} in {}", extracted.origin, module.display());
    Ok(module)
}

/// The package and the path of msr.ko in it, from the kernel's origin note
/// (`linux-image-6.1.0-57-cloud-amd64 6.1.192-3`).
fn msr_module_source(kernel_origin: &str) -> Result<(String, String)> {
    let package = kernel_origin.split_whitespace().next().unwrap_or_default();
    match package.strip_prefix(KERNEL_PACKAGE_PREFIX) {
        Some(release) if !release.is_empty() => Ok((
            package.to_string(),
            format!("lib/modules/{release}/{MSR_MODULE_IN_RELEASE}"),
        )),
        _ => bail!("the cached kernel's origin `{kernel_origin}` names no {KERNEL_PACKAGE_PREFIX}* package"),
    }
}

fn domu_initramfs(init_script: &str, binaries: Binaries) -> Result<Initramfs> {
    let mut image = busybox_skeleton(init_script, binaries.busybox)?;
    image
        .directory("lib", 0o755)?
        .directory("lib/modules", 0o755)?
        .file(STRESS_PATH, 0o755, binaries.stress)?
        .file(MSR_MODULE_PATH, 0o644, binaries.msr_module)?;
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::initramfs::fingerprint;
    use crate::guest::initramfs::inspect::*;
    use keel_boot_tests::cases::DOMU_USERSPACE_MARKER;

    fn binaries() -> Binaries {
        Binaries {
            busybox: b"\x7fELF busybox".to_vec(),
            stress: b"\x7fELF keel-stress".to_vec(),
            msr_module: b"\x7fELF msr.ko".to_vec(),
        }
    }

    fn image() -> Initramfs {
        domu_initramfs(INIT_SCRIPT, binaries()).unwrap()
    }

    #[test]
    fn members_are_the_busybox_skeleton_and_nothing_of_dom0s() {
        let names: Vec<String> = members(&image()).into_iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "bin/keel-stress",
                "dev",
                "dev/console",
                "dev/null",
                "init",
                "lib",
                "lib/modules",
                "lib/modules/msr.ko",
                "proc",
                "root",
                "sys",
                "tmp"
            ]
        );
        assert_eq!(mode_of(&image(), "init"), REGULAR_FILE | 0o755);
        assert_eq!(mode_of(&image(), "bin/busybox"), REGULAR_FILE | 0o755);
        assert_eq!(mode_of(&image(), "dev/console"), CHAR_DEVICE | 0o600);
        assert_eq!(mode_of(&image(), STRESS_PATH), REGULAR_FILE | 0o755);
        assert_eq!(mode_of(&image(), MSR_MODULE_PATH), REGULAR_FILE | 0o644);
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
        let changed: [(&str, Change); 3] = [
            ("busybox", |b| b.busybox.push(0)),
            ("keel-stress", |b| b.stress.push(0)),
            ("msr.ko", |b| b.msr_module.push(0)),
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
        assert!(INIT_SCRIPT.contains(&format!("insmod /{MSR_MODULE_PATH} allow_writes=on")));
        assert!(INIT_SCRIPT.contains("[ ! -c /dev/cpu/0/msr ]"));
        let stress = STRESS_PATH.rsplit('/').next().unwrap();
        assert!(INIT_SCRIPT.contains(&format!("\n            {stress} wrmsr 0x6e0 forever tsc+100000\n")));
        // The marker is said (through the kernel log), not echoed to the tty.
        assert!(INIT_SCRIPT.contains(&format!("say \"{DOMU_USERSPACE_MARKER}\"")));
    }

    #[test]
    fn msr_ko_comes_from_the_cached_kernels_package() {
        assert_eq!(
            msr_module_source("linux-image-6.1.0-57-cloud-amd64 6.1.192-3").unwrap(),
            (
                "linux-image-6.1.0-57-cloud-amd64".to_string(),
                "lib/modules/6.1.0-57-cloud-amd64/kernel/arch/x86/kernel/msr.ko".to_string()
            )
        );
        for bad in ["", "busybox-static 1:1.35.0-4", "linux-image- 1"] {
            assert!(msr_module_source(bad).is_err(), "{bad}");
        }
    }
}
