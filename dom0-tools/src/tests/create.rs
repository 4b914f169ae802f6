use std::path::{Path, PathBuf};

use keel_abi::mgmt::{layout, pci_flags, pci_function_flags, Command, DomainState, ImageKind, Status};

use super::fake::{FakeKeel, Load};
use crate::client::Client;
use crate::config::Config;
use keel_abi::mgmt::virtio::{device_type, queue_shape};
use keel_virtio::blk::VIRTIO_BLK_F_RO;

use super::fake::{BackendEvent, FakeBackends};
use crate::backend::blk::disk_model;
use crate::config::Disk;
use crate::create::{create_domain, open_disks, open_images, resolve_nics, Image, OpenDisk, Staging};
use crate::transport::Transport;

fn config() -> Config {
    Config::parse(
        "name = \"web\"\nmemory = 128\nkernel = \"bzImage\"\ninitrd = \"initrd\"\n",
        "web.toml",
        Path::new("/nonexistent"),
    )
    .unwrap()
}

/// create_domain without disks (no backend to start).
fn create<T: Transport>(
    client: &mut Client<T>,
    config: &Config,
    images: Vec<Image>,
    paused: bool,
    notes: &mut dyn std::io::Write,
) -> anyhow::Result<u32> {
    let staging = Staging {
        images,
        disks: Vec::new(),
        nics: Vec::new(),
        paused,
    };
    let mut backends = FakeBackends::default();
    let id = create_domain(client, config, staging, &mut backends, notes);
    assert_eq!(backends.events, [], "no disks, no backend");
    id
}

/// A recognizable pattern, so misplaced chunks show.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|at| (at % 251) as u8 ^ seed).collect()
}

fn images(kernel: &[u8], initrd: &[u8]) -> Vec<Image> {
    vec![
        Image::from_bytes(ImageKind::Kernel, "/nonexistent/bzImage", kernel.to_vec()),
        Image::from_bytes(ImageKind::Initrd, "/nonexistent/initrd", initrd.to_vec()),
        Image::from_bytes(ImageKind::Cmdline, "command line", b"console=ttyS0".to_vec()),
    ]
}

#[test]
fn images_larger_than_the_data_area_go_in_chunks_with_offsets_and_the_total() {
    let kernel = pattern(2 * layout::DATA_BYTES + 1234, 0x5a);
    let initrd = pattern(layout::DATA_BYTES, 0x33);
    let mut keel = FakeKeel::new();
    let mut notes = Vec::new();
    let id = {
        let mut client = Client::connect(&mut keel).unwrap();
        create(&mut client, &config(), images(&kernel, &initrd), false, &mut notes).unwrap()
    };
    let total = kernel.len() as u64;
    let chunk = layout::DATA_BYTES;
    assert_eq!(
        keel.loads,
        [
            Load {
                id,
                kind: ImageKind::Kernel,
                offset: 0,
                total,
                len: chunk
            },
            Load {
                id,
                kind: ImageKind::Kernel,
                offset: chunk as u64,
                total,
                len: chunk
            },
            Load {
                id,
                kind: ImageKind::Kernel,
                offset: 2 * chunk as u64,
                total,
                len: 1234
            },
            Load {
                id,
                kind: ImageKind::Initrd,
                offset: 0,
                total: chunk as u64,
                len: chunk
            },
            Load {
                id,
                kind: ImageKind::Cmdline,
                offset: 0,
                total: 13,
                len: 13
            },
        ]
    );
    // Every chunk's args: domain, kind, offset, total.
    let loads: Vec<_> = keel
        .calls
        .iter()
        .filter(|call| call.command == Command::LoadImage as u32)
        .collect();
    assert_eq!(
        loads[2].args[..4],
        [u64::from(id), ImageKind::Kernel as u64, 2 * chunk as u64, total]
    );
    assert_eq!(loads[3].args[1], ImageKind::Initrd as u64);

    let domain = keel.domain(id);
    assert_eq!(domain.image(ImageKind::Kernel), Some(&kernel[..]));
    assert_eq!(domain.image(ImageKind::Initrd), Some(&initrd[..]));
    assert_eq!(domain.image(ImageKind::Cmdline), Some(&b"console=ttyS0"[..]));
    assert_eq!(domain.info.state, DomainState::Running);
    assert_eq!(domain.paused_at_boot, Some(false));
    let created = domain.config.unwrap();
    assert_eq!(
        (created.name.as_str(), created.memory_mib, created.vcpus),
        ("web", 128, 1)
    );
    assert_eq!(
        keel.commands(),
        [
            Command::Hello,
            Command::Create,
            Command::LoadImage,
            Command::LoadImage,
            Command::LoadImage,
            Command::LoadImage,
            Command::LoadImage,
            Command::Boot
        ]
    );
    assert!(notes.is_empty());
}

#[test]
fn paused_sets_boot_args_1() {
    let mut keel = FakeKeel::new();
    let id = {
        let mut client = Client::connect(&mut keel).unwrap();
        create(
            &mut client,
            &config(),
            images(b"kernel", b"initrd"),
            true,
            &mut Vec::new(),
        )
        .unwrap()
    };
    let boot = keel.calls.last().unwrap();
    assert_eq!(
        (boot.command, boot.args[0], boot.args[1]),
        (Command::Boot as u32, u64::from(id), 1)
    );
    assert_eq!(keel.domain(id).info.state, DomainState::Paused);
}

#[test]
fn a_failed_load_destroys_the_half_built_domain() {
    let mut keel = FakeKeel::new();
    // The second chunk of the kernel is refused.
    keel.fail(Command::LoadImage, 1, Status::BadImage, "not a bzImage");
    let mut notes = Vec::new();
    let error = {
        let mut client = Client::connect(&mut keel).unwrap();
        let kernel = pattern(layout::DATA_BYTES + 1, 1);
        create(&mut client, &config(), images(&kernel, b"initrd"), false, &mut notes).unwrap_err()
    };
    assert_eq!(
        format!("{error:#}"),
        "domain web (id 1): cannot load the kernel (/nonexistent/bzImage): the image was refused: not a bzImage"
    );
    assert_eq!(
        keel.commands()[1..],
        [
            Command::Create,
            Command::LoadImage,
            Command::LoadImage,
            Command::Destroy
        ]
    );
    assert_eq!(keel.calls.last().unwrap().args[0], 1);
    assert!(!keel.domains.contains_key(&1));
    assert_eq!(
        String::from_utf8(notes).unwrap(),
        "keel: destroyed the half-built domain web (id 1)\n"
    );
}

#[test]
fn a_failed_boot_destroys_the_half_built_domain() {
    let mut keel = FakeKeel::new();
    keel.fail(Command::Boot, 0, Status::OutOfMemory, "page tables");
    let mut notes = Vec::new();
    let error = {
        let mut client = Client::connect(&mut keel).unwrap();
        create(&mut client, &config(), images(b"k", b"i"), false, &mut notes).unwrap_err()
    };
    assert_eq!(
        format!("{error:#}"),
        "domain web (id 1): cannot boot it: not enough free memory: page tables"
    );
    assert_eq!(*keel.commands().last().unwrap(), Command::Destroy);
    assert_eq!(keel.domains.len(), 1);
    assert_eq!(
        String::from_utf8(notes).unwrap(),
        "keel: destroyed the half-built domain web (id 1)\n"
    );
}

#[test]
fn a_failed_destroy_after_a_failure_says_what_to_do() {
    let mut keel = FakeKeel::new();
    keel.fail(Command::Boot, 0, Status::BadImage, "no entry point");
    keel.fail(Command::Destroy, 0, Status::BadState, "busy");
    let mut notes = Vec::new();
    let error = {
        let mut client = Client::connect(&mut keel).unwrap();
        create(&mut client, &config(), images(b"k", b"i"), false, &mut notes).unwrap_err()
    };
    assert_eq!(
        format!("{error:#}"),
        "domain web (id 1): cannot boot it: the image was refused: no entry point"
    );
    assert_eq!(
        String::from_utf8(notes).unwrap(),
        "keel: could not destroy the half-built domain web (id 1): the domain's state does not allow that: busy; \
         try `keel destroy 1`\n"
    );
}

#[test]
fn a_failed_create_destroys_nothing() {
    let mut keel = FakeKeel::new();
    keel.add("web", DomainState::Running, 64);
    let error = {
        let mut client = Client::connect(&mut keel).unwrap();
        create(&mut client, &config(), images(b"k", b"i"), false, &mut Vec::new()).unwrap_err()
    };
    assert_eq!(
        format!("{error:#}"),
        "cannot create domain web: a domain with that name exists: `web` exists"
    );
    assert_eq!(keel.commands(), [Command::Hello, Command::Create]);
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-tools-create-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn images_are_opened_from_the_config_and_checked_first() {
    let dir = scratch("open");
    std::fs::write(dir.join("bzImage"), b"KERNEL").unwrap();
    let text = "name = \"web\"\nmemory = 64\nkernel = \"bzImage\"\ninitrd = \"initrd\"\ncmdline = \"\"\n";
    let config = Config::parse(text, "web.toml", &dir).unwrap();

    let error = open_images(&config, "web.toml").err().unwrap();
    assert_eq!(
        error.to_string(),
        format!(
            "web.toml: initrd: cannot read {}: No such file or directory (os error 2)",
            dir.join("initrd").display()
        )
    );

    std::fs::write(dir.join("initrd"), b"").unwrap();
    let error = open_images(&config, "web.toml").err().unwrap();
    assert_eq!(
        error.to_string(),
        format!("web.toml: initrd: {} is empty", dir.join("initrd").display())
    );

    std::fs::write(dir.join("initrd"), b"INITRD").unwrap();
    let images = open_images(&config, "web.toml").unwrap();
    // No command line image for an empty command line.
    let kinds: Vec<_> = images.iter().map(|image| (image.kind, image.len)).collect();
    assert_eq!(kinds, [(ImageKind::Kernel, 6), (ImageKind::Initrd, 6)]);

    let mut keel = FakeKeel::new();
    let id = {
        let mut client = Client::connect(&mut keel).unwrap();
        create(&mut client, &config, images, false, &mut Vec::new()).unwrap()
    };
    assert_eq!(keel.domain(id).image(ImageKind::Kernel), Some(&b"KERNEL"[..]));
    assert_eq!(keel.domain(id).image(ImageKind::Cmdline), None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_kernel_names_the_file_and_the_os_error() {
    let config = config();
    let error = open_images(&config, "web.toml").err().unwrap();
    assert_eq!(
        error.to_string(),
        "web.toml: kernel: cannot read /nonexistent/bzImage: No such file or directory (os error 2)"
    );
}

fn pci_config(extra: &str) -> Config {
    Config::parse(
        &format!("name = \"web\"\nmemory = 128\nkernel = \"bzImage\"\n{extra}"),
        "web.toml",
        Path::new("/nonexistent"),
    )
    .unwrap()
}

/// Runs create_domain against `keel`: (result as text, notes).
fn create_with(keel: &mut FakeKeel, config: &Config) -> (Result<u32, String>, String) {
    let mut notes = Vec::new();
    let result = {
        let mut client = Client::connect(&mut *keel).unwrap();
        create(&mut client, config, images(b"k", b"i"), false, &mut notes)
    };
    (
        result.map_err(|error| format!("{error:#}")),
        String::from_utf8(notes).unwrap(),
    )
}

#[test]
fn pci_devices_are_attached_after_create_and_before_the_images_and_boot() {
    let mut keel = FakeKeel::with_pci();
    let config = pci_config("pci = [\"0000:00:03.0\"]\n");
    let (result, notes) = create_with(&mut keel, &config);
    assert_eq!((result, notes.as_str()), (Ok(1), ""));
    // No PciList without pci_unconfined_dma: Keel decides.
    assert_eq!(
        keel.commands(),
        [
            Command::Hello,
            Command::Create,
            Command::PciAttach,
            Command::LoadImage,
            Command::LoadImage,
            Command::LoadImage,
            Command::Boot
        ]
    );
    assert_eq!(keel.attaches(), [(1, "0000:00:03.0".to_string(), 0)]);
    let nic = *keel.pci_function("00:03.0");
    assert!(nic.has(pci_function_flags::ATTACHED));
    assert_eq!(nic.owner, 1);
}

#[test]
fn pci_unconfined_dma_sets_the_flag_and_warns_about_each_unconfined_device() {
    let mut keel = FakeKeel::with_pci();
    let config = pci_config("pci = [\"00:04.0\", \"00:03.0\"]\npci_unconfined_dma = true\n");
    let (result, notes) = create_with(&mut keel, &config);
    assert_eq!(result, Ok(1));
    // The list comes before anything is created.
    assert_eq!(
        keel.commands()[..5],
        [
            Command::Hello,
            Command::PciList,
            Command::Create,
            Command::PciAttach,
            Command::PciAttach
        ]
    );
    assert_eq!(
        keel.attaches(),
        [
            (1, "0000:00:04.0".to_string(), pci_flags::UNCONFINED_DMA),
            (1, "0000:00:03.0".to_string(), pci_flags::UNCONFINED_DMA)
        ]
    );
    // 00:03.0 is behind an IOMMU: only 00:04.0 is worth a warning.
    assert_eq!(
        notes,
        "keel: warning: 0000:00:04.0 is attached to web (id 1) with pci_unconfined_dma: no IOMMU confines its DMA, \
         so the device can read and write all host memory, Keel's and other domains'\n"
    );
}

#[test]
fn a_device_no_iommu_confines_is_refused_and_the_domain_destroyed() {
    let mut keel = FakeKeel::with_pci();
    let config = pci_config("pci = [\"00:03.0\", \"00:04.0\"]\n");
    let (result, notes) = create_with(&mut keel, &config);
    assert_eq!(
        result,
        Err(
            "domain web (id 1): cannot attach PCI device 0000:00:04.0: no IOMMU confines the device's DMA: \
             0000:00:04.0 is behind no IOMMU; set pci_unconfined_dma = true in the config to force it \
             (the device's DMA will not be confined: it can read and write all host memory)"
                .to_string()
        )
    );
    assert_eq!(notes, "keel: destroyed the half-built domain web (id 1)\n");
    assert_eq!(
        keel.commands()[1..],
        [
            Command::Create,
            Command::PciAttach,
            Command::PciAttach,
            Command::Destroy
        ]
    );
    assert!(!keel.domains.contains_key(&1));
    // The device attached before the refusal went back with the domain.
    let nic = *keel.pci_function("00:03.0");
    assert!(!nic.has(pci_function_flags::ATTACHED));
    assert!(nic.has(pci_function_flags::ASSIGNABLE));
}

#[test]
fn other_attach_refusals_report_keels_message_and_clean_up() {
    let mut keel = FakeKeel::with_pci();
    let other = keel.add("db", DomainState::Running, 64);
    let nic = keel.pci_function("00:03.0");
    nic.flags |= pci_function_flags::ATTACHED;
    nic.owner = other;
    for (address, expected) in [
        (
            "00:03.0",
            "cannot attach PCI device 0000:00:03.0: the device is attached to another domain: domain 1 has it",
        ),
        (
            "00:1f.2",
            "cannot attach PCI device 0000:00:1f.2: not permitted: 0000:00:1f.2 is not assignable",
        ),
        (
            "00:05.0",
            "cannot attach PCI device 0000:00:05.0: no such PCI device: no function 0000:00:05.0",
        ),
    ] {
        let config = pci_config(&format!("pci = [\"{address}\"]\n"));
        let (result, notes) = create_with(&mut keel, &config);
        let id = keel.next_id - 1;
        assert_eq!(result, Err(format!("domain web (id {id}): {expected}")));
        assert_eq!(notes, format!("keel: destroyed the half-built domain web (id {id})\n"));
        assert_eq!(*keel.commands().last().unwrap(), Command::Destroy);
        assert_eq!(keel.domains.len(), 2, "only Dom0 and db are left");
    }
    assert_eq!(keel.pci_function("00:03.0").owner, other);
    assert_eq!(keel.count(Command::Boot), 0);
    assert_eq!(keel.count(Command::LoadImage), 0);
}

#[test]
fn a_keel_without_pci_passthrough_is_named_before_anything_is_created() {
    let mut keel = FakeKeel::with_pci();
    keel.version = (1 << 16) | 1;
    let config = pci_config("pci = [\"00:03.0\"]\npci_unconfined_dma = true\n");
    let (result, _) = create_with(&mut keel, &config);
    assert_eq!(
        result,
        Err(
            "cannot list the host's PCI devices: Keel speaks management ABI 1.1, which has no PCI passthrough \
             (1.2 added it): use the hypervisor built with this tool"
                .to_string()
        )
    );
    assert_eq!(keel.commands(), [Command::Hello]);

    // Without the list, the attach says the same and the domain goes.
    let config = pci_config("pci = [\"00:03.0\"]\n");
    let (result, notes) = create_with(&mut keel, &config);
    assert!(result.unwrap_err().contains("which has no PCI passthrough"));
    assert_eq!(notes, "keel: destroyed the half-built domain web (id 1)\n");
    // A config without pci works with the older Keel.
    let (result, _) = create_with(&mut keel, &pci_config(""));
    assert_eq!(result, Ok(2));
}

/// A directory with a kernel and disk images of `sectors` sectors each.
fn disk_dir(name: &str, disks: &[(&str, usize)]) -> PathBuf {
    let dir = scratch(name);
    std::fs::write(dir.join("bzImage"), b"KERNEL").unwrap();
    for (file, sectors) in disks {
        std::fs::write(dir.join(file), vec![0u8; sectors * 512]).unwrap();
    }
    dir
}

fn disk_config(dir: &Path, disks: &str) -> Config {
    let text = format!("name = \"web\"\nmemory = 64\nkernel = \"bzImage\"\ndisk = {disks}\n");
    Config::parse(&text, "web.toml", dir).unwrap()
}

/// Opens the config's images and disks and runs create_domain.
fn create_with_disks(
    keel: &mut FakeKeel,
    backends: &mut FakeBackends,
    config: &Config,
) -> (Result<u32, String>, String) {
    let staging = Staging {
        images: open_images(config, "web.toml").unwrap(),
        disks: open_disks(config, "web.toml").unwrap(),
        nics: resolve_nics(config),
        paused: false,
    };
    let mut notes = Vec::new();
    let result = {
        let mut client = Client::connect(&mut *keel).unwrap();
        create_domain(&mut client, config, staging, backends, &mut notes)
    };
    (
        result.map_err(|error| format!("{error:#}")),
        String::from_utf8(notes).unwrap(),
    )
}

#[test]
fn disks_are_attached_in_order_and_served_before_boot() {
    let dir = disk_dir("disks", &[("root.img", 2048), ("iso.img", 9)]);
    let config = disk_config(&dir, "[\"root.img,rw\", \"iso.img,ro\"]");
    let (mut keel, mut backends) = (FakeKeel::new(), FakeBackends::default());
    let (result, notes) = create_with_disks(&mut keel, &mut backends, &config);
    assert_eq!((result, notes.as_str()), (Ok(1), ""));
    assert_eq!(
        keel.commands()[1..],
        [
            Command::Create,
            Command::LoadImage,
            Command::LoadImage,
            Command::VirtioAttach,
            Command::VirtioAttach,
            Command::Boot
        ]
    );
    let attach = keel
        .calls
        .iter()
        .find(|call| call.command == Command::VirtioAttach as u32)
        .unwrap();
    assert_eq!(
        attach.args[..4],
        [1, u64::from(device_type::BLOCK), attach.args[2], queue_shape(1, 256)]
    );
    let root = keel.virtio(1, 0).clone();
    let iso = keel.virtio(1, 1).clone();
    assert_eq!(root.features, disk_model(0, 2048 * 512, false).device_features());
    assert_eq!(iso.features & VIRTIO_BLK_F_RO, VIRTIO_BLK_F_RO);
    assert_eq!(root.features & VIRTIO_BLK_F_RO, 0);
    assert_eq!((root.queue_max_size, root.state.num_queues), (256, 1));
    // Capacity in sectors at offset 0 of the configuration.
    assert_eq!(root.config.len(), 60);
    assert_eq!(root.config[..8], 2048u64.to_le_bytes());
    assert_eq!(iso.config[..8], 9u64.to_le_bytes());
    // The backend got absolute paths in device order, and started before
    // Boot (the fake refuses Boot otherwise: see the next test).
    let canonical = dir.canonicalize().unwrap();
    assert_eq!(
        backends.events,
        [BackendEvent::Start(
            1,
            vec![
                Disk {
                    path: canonical.join("root.img"),
                    read_only: false
                },
                Disk {
                    path: canonical.join("iso.img"),
                    read_only: true
                }
            ]
        )]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_backend_that_fails_to_start_leaves_no_domain_and_no_backend() {
    let dir = disk_dir("backend-fails", &[("root.img", 8)]);
    let config = disk_config(&dir, "[\"root.img,rw\"]");
    let (mut keel, mut backends) = (FakeKeel::new(), FakeBackends::default());
    backends.fail_start = Some("the backend exited before it was ready (exit status: 1)".into());
    let (result, notes) = create_with_disks(&mut keel, &mut backends, &config);
    assert_eq!(
        result,
        Err(
            "domain web (id 1): cannot start the backend: the backend exited before it was ready \
             (exit status: 1)"
                .to_string()
        )
    );
    assert_eq!(notes, "keel: destroyed the half-built domain web (id 1)\n");
    assert_eq!(
        keel.commands()[4..],
        [Command::VirtioAttach, Command::Destroy],
        "never booted"
    );
    assert!(matches!(
        backends.events[..],
        [BackendEvent::Start(1, _), BackendEvent::Stop(1)]
    ));
    assert!(!keel.domains.contains_key(&1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_boot_stops_the_backend_before_destroying_the_domain() {
    let dir = disk_dir("boot-fails", &[("root.img", 8)]);
    let config = disk_config(&dir, "[\"root.img,rw\"]");
    let (mut keel, mut backends) = (FakeKeel::new(), FakeBackends::default());
    keel.fail(Command::Boot, 0, Status::OutOfMemory, "page tables");
    backends.fail_stop = Some("pid 77 does not exit".into());
    let (result, notes) = create_with_disks(&mut keel, &mut backends, &config);
    assert_eq!(
        result,
        Err("domain web (id 1): cannot boot it: not enough free memory: page tables".to_string())
    );
    assert_eq!(
        notes,
        "keel: could not stop the backend of web (id 1): pid 77 does not exit\n\
         keel: destroyed the half-built domain web (id 1)\n"
    );
    assert_eq!(backends.events.last(), Some(&BackendEvent::Stop(1)));
    assert_eq!(*keel.commands().last().unwrap(), Command::Destroy);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_refused_virtio_attach_destroys_the_domain() {
    let dir = disk_dir("attach-refused", &[("root.img", 8)]);
    let config = disk_config(&dir, "[\"root.img,rw\"]");
    let (mut keel, mut backends) = (FakeKeel::new(), FakeBackends::default());
    keel.fail(
        Command::VirtioAttach,
        0,
        Status::OutOfMemory,
        "no room for the function",
    );
    let (result, notes) = create_with_disks(&mut keel, &mut backends, &config);
    assert_eq!(
        result,
        Err(format!(
            "domain web (id 1): cannot attach disk {}: not enough free memory: no room for the function",
            dir.canonicalize().unwrap().join("root.img").display()
        ))
    );
    assert_eq!(notes, "keel: destroyed the half-built domain web (id 1)\n");
    // Nothing was started; stopping nothing is harmless.
    assert_eq!(backends.events, [BackendEvent::Stop(1)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_keel_without_virtio_is_named_before_anything_is_created() {
    let dir = disk_dir("old-keel", &[("root.img", 8)]);
    let config = disk_config(&dir, "[\"root.img,rw\"]");
    let (mut keel, mut backends) = (FakeKeel::new(), FakeBackends::default());
    keel.version = (1 << 16) | 2;
    let (result, notes) = create_with_disks(&mut keel, &mut backends, &config);
    assert_eq!(
        result,
        Err(
            "Keel speaks management ABI 1.2, which has no virtio devices (1.3 added them): use the hypervisor \
             built with this tool"
                .to_string()
        )
    );
    // Said before anything was created.
    assert_eq!((notes.as_str(), keel.commands()), ("", vec![Command::Hello]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn disk_files_are_checked_before_anything_is_created() {
    let dir = disk_dir("disk-files", &[("root.img", 8), ("tiny.img", 0)]);
    std::fs::write(dir.join("tiny.img"), [0u8; 511]).unwrap();
    std::fs::create_dir(dir.join("folder")).unwrap();
    let error = |disks: &str| {
        open_disks(&disk_config(&dir, disks), "web.toml")
            .unwrap_err()
            .to_string()
    };
    let path = |name: &str| dir.join(name).display().to_string();
    assert_eq!(
        error("[\"gone.img,rw\"]"),
        format!(
            "web.toml: disk: cannot open {}: No such file or directory (os error 2)",
            path("gone.img")
        )
    );
    assert_eq!(
        error("[\"tiny.img,ro\"]"),
        format!(
            "web.toml: disk: {} is 511 bytes, less than one 512-byte sector",
            path("tiny.img")
        )
    );
    assert_eq!(
        error("[\"folder,ro\"]"),
        format!(
            "web.toml: disk: {} is not a regular file or a block device",
            path("folder")
        )
    );
    std::os::unix::fs::symlink(dir.join("root.img"), dir.join("alias.img")).unwrap();
    assert_eq!(
        error("[\"root.img,rw\", \"alias.img,ro\"]"),
        format!(
            "web.toml: disk: {} and {} are the same file",
            path("root.img"),
            path("alias.img")
        )
    );
    let disks = open_disks(&disk_config(&dir, "[\"alias.img,ro\"]"), "web.toml").unwrap();
    assert_eq!(
        disks,
        [OpenDisk {
            disk: Disk {
                path: dir.canonicalize().unwrap().join("root.img"),
                read_only: true
            },
            len: 4096
        }]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_rw_disk_on_a_file_that_cannot_be_written_is_refused() {
    let dir = disk_dir("read-only-file", &[("root.img", 8)]);
    let image = dir.join("root.img");
    std::fs::set_permissions(&image, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
    if std::fs::OpenOptions::new().write(true).open(&image).is_ok() {
        // Root writes read-only files: nothing to check here.
        eprintln!("skipped: this user can write a mode 0444 file");
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    let error = open_disks(&disk_config(&dir, "[\"root.img,rw\"]"), "web.toml").unwrap_err();
    let label = image.display();
    assert_eq!(
        error.to_string(),
        format!(
            "web.toml: disk: {label} cannot be opened for writing (Permission denied (os error 13)); make it \
             writable or attach it as \"{label},ro\""
        )
    );
    assert!(open_disks(&disk_config(&dir, "[\"root.img,ro\"]"), "web.toml").is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}
