//! Dom0's kernel: the current Debian cloud kernel (LZ4-compressed, about
//! 10 s to userspace in Bochs, where the generic flavour's XZ needs a minute),
//! cached as `target/guest/vmlinuz`, and the few of its modules the DomUs
//! load ([`DOMU_MODULES`]) and Dom0 loads ([`DOM0_MODULES`]), cached next to
//! it in `target/guest/modules/`. All come out of the one download of the
//! kernel's Debian package, and each file's `.origin` note names the package
//! version it came from: a module is used only with a note that names the
//! kernel's own version.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use keel_boot_tests::Layout;

use super::{cached_origin, debian, forget_origin, write_origin};
use crate::say;

/// Depends on the current `linux-image-<release>-cloud-amd64` package.
const METAPACKAGE: &str = "linux-image-cloud-amd64";
const KERNEL_PACKAGE_PREFIX: &str = "linux-image-";
const FLAVOUR_SUFFIX: &str = "-cloud-amd64";

/// The kernel modules the DomU initramfs carries (as
/// `/lib/modules/<name>.ko`; `xtask/guest/domu-init.sh` loads them), each
/// with its path in the kernel package below `lib/modules/<release>/`.
/// Debian's 6.1 packages hold them uncompressed. Busybox's `insmod` resolves
/// no dependencies, so the list is in load order: every module a module
/// needs (its `depends=`, checked when they are taken out) comes earlier.
/// What the kernel has built in (`crc-t10dif`, `t10-pi` for `sd_mod`)
/// needs no module.
pub const DOMU_MODULES: &[(&str, &str)] = &[
    // /dev/cpu/N/msr, for the WRMSR loop (keel.domu=wrmsr).
    ("msr", "kernel/arch/x86/kernel/msr.ko"),
    // /dev/input/eventN, which busybox acpid reads (CONFIG_INPUT_EVDEV=m).
    ("evdev", "kernel/drivers/input/evdev.ko"),
    // The ACPI power button (PNP0C0C) `keel shutdown` presses (CONFIG_ACPI_BUTTON=m).
    ("button", "kernel/drivers/acpi/button.ko"),
    // The IDE disk of PCI passthrough (keel.domu=disk): the PIIX3 IDE
    // function's driver (CONFIG_ATA_PIIX=m) on libata (CONFIG_ATA=m, with
    // the SFF and BMDMA helpers built into it), which drives the disk
    // through the SCSI midlayer (CONFIG_SCSI=m) and its disk driver
    // (CONFIG_BLK_DEV_SD=m): /dev/sdX.
    ("scsi_common", "kernel/drivers/scsi/scsi_common.ko"),
    ("scsi_mod", "kernel/drivers/scsi/scsi_mod.ko"),
    ("libata", "kernel/drivers/ata/libata.ko"),
    ("ata_piix", "kernel/drivers/ata/ata_piix.ko"),
    ("sd_mod", "kernel/drivers/scsi/sd_mod.ko"),
    // The split block device (keel.domu=split-blk): virtio-blk disks behind
    // virtio-pci functions (CONFIG_VIRTIO=m, CONFIG_VIRTIO_PCI=m with its
    // legacy and modern device helpers, CONFIG_VIRTIO_BLK=m): /dev/vdX.
    // The virtio core needs the ring code (virtio.ko: depends=virtio_ring).
    ("virtio_ring", "kernel/drivers/virtio/virtio_ring.ko"),
    ("virtio", "kernel/drivers/virtio/virtio.ko"),
    (
        "virtio_pci_legacy_dev",
        "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    ),
    (
        "virtio_pci_modern_dev",
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    ),
    ("virtio_pci", "kernel/drivers/virtio/virtio_pci.ko"),
    ("virtio_blk", "kernel/drivers/block/virtio_blk.ko"),
    // The split network device (keel.domu=split-net): a virtio-net NIC
    // behind a virtio-pci function (CONFIG_VIRTIO_NET=m): eth0. virtio_net
    // needs net_failover (CONFIG_NET_FAILOVER=m, its standby-device
    // support), which needs failover (CONFIG_FAILOVER=m); both load
    // without a second device and do nothing then.
    ("failover", "kernel/net/core/failover.ko"),
    ("net_failover", "kernel/drivers/net/net_failover.ko"),
    ("virtio_net", "kernel/drivers/net/virtio_net.ko"),
    // The virtio console (config `virtio_console = true`), /dev/hvc0
    // (CONFIG_VIRTIO_CONSOLE=m); keel.domu=split-net loads it too.
    ("virtio_console", "kernel/drivers/char/virtio_console.ko"),
];

/// The kernel modules Dom0's initramfs carries besides `msr` (which it
/// takes from [`DOMU_MODULES`]), as `/lib/modules/<name>.ko`, in load order
/// like those; Dom0's `/init` (`xtask/guest/init.sh`) loads them early. The
/// virtio backends `keel create` starts drive Keel's management function
/// from userspace: `uio` (CONFIG_UIO=m) and `uio_pci_generic`, which a
/// backend binds the function to (its interrupt as /dev/uioN). The network
/// backends' switch (`keel switch`) gives Dom0 its port as a TAP interface
/// (`keel0`, through /dev/net/tun): `tun` (CONFIG_TUN=m).
pub const DOM0_MODULES: &[(&str, &str)] = &[
    ("uio", "kernel/drivers/uio/uio.ko"),
    ("uio_pci_generic", "kernel/drivers/uio/uio_pci_generic.ko"),
    ("tun", "kernel/drivers/net/tun.ko"),
];

/// Modules of [`DOM0_MODULES`] DomUs carry too: `keel.domu=disk` binds its
/// assigned e1000 to `uio_pci_generic` for `keel-stress intx`.
pub const DOMU_UIO_MODULES: &[&str] = &["uio", "uio_pci_generic"];

/// The modules `keel.domu=disk` loads (`xtask/guest/domu-init.sh`), in
/// this order: a run of [`DOMU_MODULES`] (the tests check both).
#[cfg(test)]
pub const DISK_MODULES: &[&str] = &["scsi_common", "scsi_mod", "libata", "ata_piix", "sd_mod"];

/// The modules `keel.domu=split-blk` loads (`xtask/guest/domu-init.sh`), in
/// this order: a run of [`DOMU_MODULES`] (the tests check both).
#[cfg(test)]
pub const SPLIT_BLK_MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "virtio_blk",
];

/// The modules `keel.domu=split-net` loads (`xtask/guest/domu-init.sh`), in
/// this order: split-blk's virtio transport without `virtio_blk`, then the
/// tail of [`DOMU_MODULES`] (the tests check both).
#[cfg(test)]
pub const SPLIT_NET_MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_console",
];

/// The cached kernel and its modules.
pub struct Kernel {
    /// `target/guest/vmlinuz`.
    pub image: PathBuf,
    /// `(name, target/guest/modules/<name>.ko)`, in [`DOMU_MODULES`]' order.
    pub modules: Vec<(&'static str, PathBuf)>,
    /// The same for [`DOM0_MODULES`].
    pub dom0_modules: Vec<(&'static str, PathBuf)>,
}

/// `target/guest/modules/`.
fn modules_dir(layout: &Layout) -> PathBuf {
    layout.guest_dir().join("modules")
}

/// `(name, target/guest/modules/<name>.ko)` of each module in `list`.
fn module_paths(layout: &Layout, list: &[(&'static str, &str)]) -> Vec<(&'static str, PathBuf)> {
    let dir = modules_dir(layout);
    list.iter()
        .map(|(name, _)| (*name, dir.join(format!("{name}.ko"))))
        .collect()
}

/// Both lists' modules: the DomUs', then Dom0's.
fn all_module_paths(layout: &Layout) -> Vec<(&'static str, PathBuf)> {
    let mut paths = module_paths(layout, DOMU_MODULES);
    paths.extend(module_paths(layout, DOM0_MODULES));
    paths
}

/// The cached kernel's origin, when it and every module (the DomUs' and
/// Dom0's) are cached from that same package version.
fn cached(layout: &Layout) -> Option<String> {
    let origin = cached_origin(&layout.dom0_kernel())?;
    all_module_paths(layout)
        .iter()
        .all(|(_, module)| cached_origin(module).as_deref() == Some(origin.as_str()))
        .then_some(origin)
}

/// Whether [`ensure`] would download nothing.
pub fn is_cached(layout: &Layout) -> bool {
    cached(layout).is_some()
}

/// Fetches the kernel and its modules unless they are cached; returns
/// their paths. A kernel cached without all of its modules (a cache from
/// before xtask kept them, or before a module joined a list) gets them from
/// exactly its own package version.
pub fn ensure(layout: &Layout) -> Result<Kernel> {
    let kernel = Kernel {
        image: layout.dom0_kernel(),
        modules: module_paths(layout, DOMU_MODULES),
        dom0_modules: module_paths(layout, DOM0_MODULES),
    };
    fs::create_dir_all(modules_dir(layout))
        .with_context(|| format!("cannot create {}", modules_dir(layout).display()))?;
    if let Some(origin) = cached(layout) {
        say!(
            "Dom0 kernel: {origin} (cached in {}, its DomU and Dom0 modules in {})",
            kernel.image.display(),
            modules_dir(layout).display()
        );
        return Ok(kernel);
    }
    if let Some(origin) = cached_origin(&kernel.image) {
        let (package, version) = package_and_version(&origin)?;
        say!("Dom0 kernel: {origin} is cached, not all of its modules are: taking them from the same package");
        fetch(layout, &kernel, package, Some(version), false).with_context(|| {
            format!(
                "cannot get the modules of the cached kernel {origin}; delete {} to fetch the current kernel \
                 and its modules",
                kernel.image.display()
            )
        })?;
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
    fetch(layout, &kernel, package, None, true)?;
    Ok(kernel)
}

/// Takes the modules (the DomUs' and Dom0's), and the kernel itself when
/// `with_image`, out of one download of `package` (`version`, when given),
/// checks them and writes their origin notes.
fn fetch(layout: &Layout, kernel: &Kernel, package: &str, version: Option<&str>, with_image: bool) -> Result<()> {
    let release = release_of(package)?;
    let image_in_package = format!("boot/vmlinuz-{release}");
    let modules_in_package: Vec<String> = DOMU_MODULES
        .iter()
        .chain(DOM0_MODULES)
        .map(|(_, path)| module_in_package(release, path))
        .collect();
    let mut files: Vec<(&str, &Path)> = Vec::new();
    if with_image {
        files.push((&image_in_package, &kernel.image));
    }
    for (in_package, (_, module)) in modules_in_package
        .iter()
        .zip(kernel.modules.iter().chain(&kernel.dom0_modules))
    {
        files.push((in_package, module));
    }
    // No note survives a fetch that does not finish.
    for (_, file) in &files {
        forget_origin(file);
    }
    let extracted = debian::extract_files(package, version, &files, &layout.guest_dir().join("kernel-package"))?;
    let checked = check_fetched(kernel, release, with_image);
    if let Err(error) = checked {
        // Do not leave something that looks cached.
        for (_, file) in &files {
            let _ = fs::remove_file(file);
        }
        return Err(error.context(format!("{} is not usable", extracted.origin)));
    }
    for (_, file) in &files {
        write_origin(file, &extracted.origin)?;
    }
    let module_bytes = |modules: &[(&str, PathBuf)]| -> u64 {
        modules
            .iter()
            .filter_map(|(_, module)| fs::metadata(module).ok())
            .map(|metadata| metadata.len())
            .sum()
    };
    let names = |modules: &[(&str, PathBuf)]| -> String {
        modules.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
    };
    if with_image {
        let image_bytes = fs::metadata(&kernel.image).map(|metadata| metadata.len()).unwrap_or(0);
        say!(
            "Dom0 kernel: {} ({} MiB) in {}",
            extracted.origin,
            image_bytes >> 20,
            kernel.image.display()
        );
    }
    say!(
        "DomU modules {} ({} KiB) and Dom0 modules {} ({} KiB) of {} in {}",
        names(&kernel.modules),
        module_bytes(&kernel.modules) >> 10,
        names(&kernel.dom0_modules),
        module_bytes(&kernel.dom0_modules) >> 10,
        extracted.origin,
        modules_dir(layout).display()
    );
    Ok(())
}

fn check_fetched(kernel: &Kernel, release: &str, with_image: bool) -> Result<()> {
    if with_image {
        let image = read(&kernel.image)?;
        check_bzimage(&image).context("the kernel")?;
    }
    // Each list is loaded by itself, in its own order (`insmod`, one by one).
    for (list, modules) in [
        ("DOMU_MODULES", &kernel.modules),
        ("DOM0_MODULES", &kernel.dom0_modules),
    ] {
        for (index, (name, module)) in modules.iter().enumerate() {
            let loaded_before: Vec<&str> = modules[..index].iter().map(|(name, _)| *name).collect();
            check_module(&read(module)?, name, release, &loaded_before)
                .with_context(|| format!("{name}.ko (kernel::{list})"))?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `<release>` of `linux-image-<release>`.
fn release_of(package: &str) -> Result<&str> {
    match package.strip_prefix(KERNEL_PACKAGE_PREFIX) {
        Some(release) if !release.is_empty() => Ok(release),
        _ => bail!("`{package}` is no {KERNEL_PACKAGE_PREFIX}<release> package"),
    }
}

/// A module's path in the kernel package.
fn module_in_package(release: &str, path_in_release: &str) -> String {
    format!("lib/modules/{release}/{path_in_release}")
}

/// The package and version an origin note names
/// (`linux-image-6.1.0-57-cloud-amd64 6.1.192-3`).
fn package_and_version(origin: &str) -> Result<(&str, &str)> {
    let mut words = origin.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(package), Some(version), None) if release_of(package).is_ok() => Ok((package, version)),
        _ => {
            bail!("the cached kernel's origin `{origin}` names no {KERNEL_PACKAGE_PREFIX}<release> package and version")
        }
    }
}

/// A module a guest's `insmod` can load into this kernel after the modules
/// `loaded_before` (those before it in its list): an ELF file named `name`
/// whose `vermagic` names `release`, needing no module but those (busybox's
/// insmod resolves no dependencies; `depends=` lists only modules, never
/// what is built in).
fn check_module(module: &[u8], name: &str, release: &str, loaded_before: &[&str]) -> Result<()> {
    if !module.starts_with(b"\x7fELF") {
        bail!("not an ELF file");
    }
    let vermagic = modinfo(module, "vermagic").context("no vermagic")?;
    if vermagic.split_whitespace().next() != Some(release) {
        bail!("built for `{vermagic}`, not {release}");
    }
    if let Some(own) = modinfo(module, "name") {
        if own != name {
            bail!("the module calls itself {own}, not {name}");
        }
    }
    let depends = modinfo(module, "depends").unwrap_or("");
    let missing: Vec<&str> = depends
        .split(',')
        .filter(|dependency| !dependency.is_empty() && !loaded_before.contains(dependency))
        .collect();
    if !missing.is_empty() {
        bail!(
            "needs the modules {} loaded before it (its list loads {} first)",
            missing.join(","),
            if loaded_before.is_empty() {
                "nothing".to_string()
            } else {
                loaded_before.join(",")
            }
        );
    }
    Ok(())
}

/// The value of `key=` in a module's `.modinfo` strings (NUL-terminated
/// `key=value` entries), without its section's bounds: the first match.
fn modinfo<'a>(module: &'a [u8], key: &str) -> Option<&'a str> {
    let needle = format!("{key}=");
    let needle = needle.as_bytes();
    let at = module
        .windows(needle.len() + 1)
        .position(|window| window[0] == 0 && &window[1..] == needle)?;
    let value = &module[at + 1 + needle.len()..];
    let end = value.iter().position(|&byte| byte == 0)?;
    std::str::from_utf8(&value[..end]).ok()
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
    fn modules_come_from_the_release_directory_of_the_origins_package() {
        let (package, version) = package_and_version("linux-image-6.1.0-57-cloud-amd64 6.1.192-3").unwrap();
        assert_eq!((package, version), ("linux-image-6.1.0-57-cloud-amd64", "6.1.192-3"));
        let release = release_of(package).unwrap();
        let paths: Vec<String> = DOMU_MODULES
            .iter()
            .chain(DOM0_MODULES)
            .map(|(_, path)| module_in_package(release, path))
            .collect();
        assert_eq!(
            paths,
            [
                "lib/modules/6.1.0-57-cloud-amd64/kernel/arch/x86/kernel/msr.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/input/evdev.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/acpi/button.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/scsi/scsi_common.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/scsi/scsi_mod.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/ata/libata.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/ata/ata_piix.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/scsi/sd_mod.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/virtio/virtio_ring.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/virtio/virtio.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/virtio/virtio_pci_modern_dev.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/virtio/virtio_pci.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/block/virtio_blk.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/net/core/failover.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/net/net_failover.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/net/virtio_net.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/char/virtio_console.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/uio/uio.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/uio/uio_pci_generic.ko",
                "lib/modules/6.1.0-57-cloud-amd64/kernel/drivers/net/tun.ko",
            ]
        );
        for bad in [
            "",
            "busybox-static 1:1.35.0-4",
            "linux-image- 1",
            "linux-image-6.1.0-57-cloud-amd64",
            "linux-image-6.1.0-57-cloud-amd64 6.1.192-3 extra",
        ] {
            assert!(package_and_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_modules_are_cached_under_guest_modules() {
        let layout = Layout::new(PathBuf::from("/t"));
        let paths = module_paths(&layout, DOMU_MODULES);
        assert_eq!(
            paths,
            [
                ("msr", PathBuf::from("/t/guest/modules/msr.ko")),
                ("evdev", PathBuf::from("/t/guest/modules/evdev.ko")),
                ("button", PathBuf::from("/t/guest/modules/button.ko")),
                ("scsi_common", PathBuf::from("/t/guest/modules/scsi_common.ko")),
                ("scsi_mod", PathBuf::from("/t/guest/modules/scsi_mod.ko")),
                ("libata", PathBuf::from("/t/guest/modules/libata.ko")),
                ("ata_piix", PathBuf::from("/t/guest/modules/ata_piix.ko")),
                ("sd_mod", PathBuf::from("/t/guest/modules/sd_mod.ko")),
                ("virtio_ring", PathBuf::from("/t/guest/modules/virtio_ring.ko")),
                ("virtio", PathBuf::from("/t/guest/modules/virtio.ko")),
                (
                    "virtio_pci_legacy_dev",
                    PathBuf::from("/t/guest/modules/virtio_pci_legacy_dev.ko")
                ),
                (
                    "virtio_pci_modern_dev",
                    PathBuf::from("/t/guest/modules/virtio_pci_modern_dev.ko")
                ),
                ("virtio_pci", PathBuf::from("/t/guest/modules/virtio_pci.ko")),
                ("virtio_blk", PathBuf::from("/t/guest/modules/virtio_blk.ko")),
                ("failover", PathBuf::from("/t/guest/modules/failover.ko")),
                ("net_failover", PathBuf::from("/t/guest/modules/net_failover.ko")),
                ("virtio_net", PathBuf::from("/t/guest/modules/virtio_net.ko")),
                ("virtio_console", PathBuf::from("/t/guest/modules/virtio_console.ko")),
            ]
        );
        assert_eq!(
            module_paths(&layout, DOM0_MODULES),
            [
                ("uio", PathBuf::from("/t/guest/modules/uio.ko")),
                ("uio_pci_generic", PathBuf::from("/t/guest/modules/uio_pci_generic.ko")),
                ("tun", PathBuf::from("/t/guest/modules/tun.ko")),
            ]
        );
        // No module is in both lists: one file each.
        for (name, _) in DOM0_MODULES {
            assert!(!DOMU_MODULES.iter().any(|(domu, _)| domu == name), "{name}");
        }
    }

    #[test]
    fn the_kernel_counts_as_cached_only_with_every_module_of_its_version() {
        let root = std::env::temp_dir().join(format!("keel-kernel-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let layout = Layout::new(root.clone());
        fs::create_dir_all(modules_dir(&layout)).unwrap();
        let origin = "linux-image-6.1.0-57-cloud-amd64 6.1.192-3";
        fs::write(layout.dom0_kernel(), b"bzImage").unwrap();
        write_origin(&layout.dom0_kernel(), origin).unwrap();
        assert!(!is_cached(&layout), "no modules yet");
        for (_, module) in all_module_paths(&layout) {
            fs::write(&module, b"\x7fELF").unwrap();
            write_origin(&module, origin).unwrap();
        }
        assert_eq!(cached(&layout).as_deref(), Some(origin));
        // A cache from before Dom0's modules (or a new DomU module) joined
        // the lists: not cached, so `ensure` takes them from this version.
        for (_, module) in [
            module_paths(&layout, DOM0_MODULES).pop().unwrap(),
            module_paths(&layout, DOMU_MODULES).pop().unwrap(),
        ] {
            fs::remove_file(origin_path(&module)).unwrap();
            assert!(!is_cached(&layout), "{} without its note", module.display());
            write_origin(&module, origin).unwrap();
            assert!(is_cached(&layout));
        }
        let (_, msr) = &module_paths(&layout, DOMU_MODULES)[0];
        write_origin(msr, "linux-image-6.1.0-57-cloud-amd64 6.1.192-2").unwrap();
        assert!(!is_cached(&layout), "a module of another version");
        write_origin(msr, origin).unwrap();
        fs::remove_file(origin_path(&layout.dom0_kernel())).unwrap();
        assert!(!is_cached(&layout), "modules without their kernel");
        fs::remove_dir_all(&root).unwrap();
    }

    fn origin_path(file: &Path) -> PathBuf {
        super::super::origin_note(file)
    }

    /// What a module's `.modinfo` section holds, inside other bytes.
    fn module(modinfo: &str) -> Vec<u8> {
        let mut bytes = b"\x7fELF\x02\x01\x01\0code\0".to_vec();
        bytes.extend_from_slice(modinfo.replace(';', "\0").as_bytes());
        bytes.extend_from_slice(b"\0more");
        bytes
    }

    #[test]
    fn a_module_must_match_its_name_and_the_release() {
        let release = "6.1.0-57-cloud-amd64";
        let good = module(
            "license=GPL;depends=;name=button;vermagic=6.1.0-57-cloud-amd64 SMP preempt mod_unload modversions ",
        );
        check_module(&good, "button", release, &[]).unwrap();
        assert_eq!(modinfo(&good, "name"), Some("button"));
        assert_eq!(modinfo(&good, "depends"), Some(""));
        assert_eq!(modinfo(&good, "missing"), None);
        assert!(
            check_module(&good, "evdev", release, &[]).is_err(),
            "another module's file"
        );
        let other = module("depends=;vermagic=6.1.0-56-cloud-amd64 SMP preempt mod_unload ");
        assert!(check_module(&other, "x", release, &[]).is_err(), "another release");
        let prefix = module("depends=;vermagic=6.1.0-57-cloud-amd64-rt SMP ");
        assert!(check_module(&prefix, "x", release, &[]).is_err(), "a longer release");
        assert!(
            check_module(&module("depends=;name=msr"), "msr", release, &[]).is_err(),
            "no vermagic"
        );
        let mut not_elf = good.clone();
        not_elf[0] = b'#';
        assert!(check_module(&not_elf, "button", release, &[]).is_err(), "not ELF");
    }

    #[test]
    fn a_module_needs_every_dependency_loaded_before_it() {
        let release = "6.1.0-57-cloud-amd64";
        let libata = module("depends=scsi_mod,scsi_common;name=libata;vermagic=6.1.0-57-cloud-amd64 SMP ");
        check_module(&libata, "libata", release, &["msr", "scsi_common", "scsi_mod"]).unwrap();
        let error = check_module(&libata, "libata", release, &["scsi_common"]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("needs the modules scsi_mod loaded before it"),
            "{error}"
        );
        let error = check_module(&libata, "libata", release, &[]).unwrap_err();
        assert!(error.to_string().contains("scsi_mod,scsi_common"), "{error}");
        assert!(error.to_string().contains("loads nothing first"), "{error}");
        // A name is a whole entry of the list, not part of one.
        assert!(check_module(&libata, "libata", release, &["scsi_common", "scsi"]).is_err());
        let needy = module("depends=input-core;vermagic=6.1.0-57-cloud-amd64 SMP ");
        assert!(
            check_module(&needy, "x", release, &["evdev"]).is_err(),
            "a module not in the list"
        );
    }

    /// What `modinfo -F depends` says of each module in Debian's
    /// linux-image-6.1.0-57-cloud-amd64 6.1.192-3 (the check at fetch time
    /// reads the real files).
    const DEBIAN_DEPENDS: &[(&str, &str)] = &[
        ("msr", ""),
        ("evdev", ""),
        ("button", ""),
        ("scsi_common", ""),
        ("scsi_mod", "scsi_common"),
        ("libata", "scsi_mod,scsi_common"),
        ("ata_piix", "libata"),
        ("sd_mod", "scsi_mod"),
        ("virtio_ring", ""),
        ("virtio", "virtio_ring"),
        ("virtio_pci_legacy_dev", ""),
        ("virtio_pci_modern_dev", ""),
        (
            "virtio_pci",
            "virtio_ring,virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio",
        ),
        ("virtio_blk", "virtio,virtio_ring"),
        ("failover", ""),
        ("net_failover", "failover"),
        ("virtio_net", "virtio_ring,virtio,net_failover"),
        ("virtio_console", "virtio,virtio_ring"),
    ];

    /// The same for Dom0's modules.
    const DEBIAN_DOM0_DEPENDS: &[(&str, &str)] = &[("uio", ""), ("uio_pci_generic", "uio"), ("tun", "")];

    const RELEASE: &str = "6.1.0-57-cloud-amd64";

    /// A module file as Debian's, for `name`.
    fn debian_module(name: &str) -> Vec<u8> {
        let (_, depends) = DEBIAN_DEPENDS
            .iter()
            .chain(DEBIAN_DOM0_DEPENDS)
            .find(|(module, _)| *module == name)
            .unwrap_or_else(|| panic!("{name} is not among Debian's modules here"));
        module(&format!("depends={depends};name={name};vermagic={RELEASE} SMP "))
    }

    /// Every module of `list` (in `depends`' order) loads after those before it.
    fn loads_in_dependency_order(list: &[(&str, &str)], depends: &[(&str, &str)]) {
        let names: Vec<&str> = list.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, depends.iter().map(|(name, _)| *name).collect::<Vec<_>>());
        for (index, (name, depends)) in depends.iter().enumerate() {
            let file = debian_module(name);
            check_module(&file, name, RELEASE, &names[..index]).unwrap();
            // Loaded first, anything with dependencies fails.
            if !depends.is_empty() {
                assert!(check_module(&file, name, RELEASE, &[]).is_err(), "{name}");
            }
        }
        // Each path ends in the module's own name.
        for (name, path) in list {
            assert!(path.ends_with(&format!("/{name}.ko")), "{path}");
        }
    }

    #[test]
    fn the_domu_modules_load_in_dependency_order() {
        loads_in_dependency_order(DOMU_MODULES, DEBIAN_DEPENDS);
        let names: Vec<&str> = DOMU_MODULES.iter().map(|(name, _)| *name).collect();
        // keel.domu=disk and keel.domu=split-blk each load a run of the
        // list, in its order and by itself: each module after every module
        // it needs within that run.
        for mode in [DISK_MODULES, SPLIT_BLK_MODULES] {
            let start = names.iter().position(|name| *name == mode[0]).unwrap();
            assert_eq!(&names[start..start + mode.len()], mode);
        }
        // keel.domu=split-net loads the virtio transport (split-blk's run
        // without virtio_blk), then the list's tail: the list's order too.
        let transport = &SPLIT_BLK_MODULES[..SPLIT_BLK_MODULES.len() - 1];
        assert_eq!(SPLIT_BLK_MODULES.last(), Some(&"virtio_blk"));
        assert_eq!(&SPLIT_NET_MODULES[..transport.len()], transport);
        let net = &SPLIT_NET_MODULES[transport.len()..];
        assert_eq!(net, ["failover", "net_failover", "virtio_net", "virtio_console"]);
        assert_eq!(&names[names.len() - net.len()..], net);
        for mode in [DISK_MODULES, SPLIT_BLK_MODULES, SPLIT_NET_MODULES] {
            for (index, name) in mode.iter().enumerate() {
                check_module(&debian_module(name), name, RELEASE, &mode[..index]).unwrap();
            }
        }
    }

    #[test]
    fn the_dom0_modules_load_in_dependency_order() {
        loads_in_dependency_order(DOM0_MODULES, DEBIAN_DOM0_DEPENDS);
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
