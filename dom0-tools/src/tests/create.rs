use std::path::{Path, PathBuf};

use keel_abi::mgmt::{layout, Command, DomainState, ImageKind, Status};

use super::fake::{FakeKeel, Load};
use crate::client::Client;
use crate::config::Config;
use crate::create::{create_domain, open_images, Image};

fn config() -> Config {
    Config::parse(
        "name = \"web\"\nmemory = 128\nkernel = \"bzImage\"\ninitrd = \"initrd\"\n",
        "web.toml",
        Path::new("/nonexistent"),
    )
    .unwrap()
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
        create_domain(&mut client, &config(), images(&kernel, &initrd), false, &mut notes).unwrap()
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
        create_domain(
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
        create_domain(&mut client, &config(), images(&kernel, b"initrd"), false, &mut notes).unwrap_err()
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
        create_domain(&mut client, &config(), images(b"k", b"i"), false, &mut notes).unwrap_err()
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
        create_domain(&mut client, &config(), images(b"k", b"i"), false, &mut notes).unwrap_err()
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
        create_domain(&mut client, &config(), images(b"k", b"i"), false, &mut Vec::new()).unwrap_err()
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
        create_domain(&mut client, &config, images, false, &mut Vec::new()).unwrap()
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
