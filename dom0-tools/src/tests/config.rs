use std::path::{Path, PathBuf};

use keel_abi::mgmt::{LifecycleAction, PciAddress};

use crate::config::{Config, Disk, DEFAULT_CMDLINE};
use crate::vif::Vif;

const MINIMAL: &str = "name = \"web\"\nmemory = 512\nkernel = \"bzImage\"\n";

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, "web.toml", Path::new("/etc/keel")).map_err(|error| error.to_string())
}

fn error(text: &str) -> String {
    parse(text).unwrap_err()
}

#[test]
fn a_minimal_config_takes_every_default() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(
        config,
        Config {
            name: "web".into(),
            memory_mib: 512,
            vcpus: 1,
            kernel: PathBuf::from("/etc/keel/bzImage"),
            initrd: None,
            cmdline: "console=ttyS0".into(),
            on_poweroff: LifecycleAction::Destroy,
            on_reboot: LifecycleAction::Restart,
            on_crash: LifecycleAction::Destroy,
            pci: Vec::new(),
            pci_unconfined_dma: false,
            disks: Vec::new(),
            vifs: Vec::new(),
            virtio_console: false,
        }
    );
    assert_eq!(config.cmdline, DEFAULT_CMDLINE);
}

#[test]
fn every_key_can_be_set() {
    let config = parse(
        "name = \"db-1\"\nmemory = 16\nvcpus = 1\nkernel = \"/boot/vmlinuz\"\ninitrd = \"images/initrd.img\"\n\
         cmdline = \"console=ttyS0 quiet\"\non_poweroff = \"preserve\"\non_reboot = \"destroy\"\non_crash = \"restart\"\n",
    )
    .unwrap();
    assert_eq!(config.name, "db-1");
    assert_eq!(config.memory_mib, 16);
    // Absolute paths stay; relative ones are taken from the file's directory.
    assert_eq!(config.kernel, PathBuf::from("/boot/vmlinuz"));
    assert_eq!(config.initrd, Some(PathBuf::from("/etc/keel/images/initrd.img")));
    assert_eq!(config.cmdline, "console=ttyS0 quiet");
    assert_eq!(config.on_poweroff, LifecycleAction::Preserve);
    assert_eq!(config.on_reboot, LifecycleAction::Destroy);
    assert_eq!(config.on_crash, LifecycleAction::Restart);

    let request = config.create_request();
    assert_eq!(request.name.as_str(), "db-1");
    assert_eq!((request.memory_mib, request.vcpus), (16, 1));
    assert_eq!(request.on_poweroff, LifecycleAction::Preserve);
}

#[test]
fn the_largest_memory_is_accepted() {
    assert_eq!(parse(&MINIMAL.replace("512", "1048576")).unwrap().memory_mib, 1 << 20);
}

#[test]
fn memory_out_of_range_names_the_key_and_the_range() {
    assert_eq!(
        error(&MINIMAL.replace("512", "0")),
        "web.toml: memory: must be between 16 and 1048576 MiB, got 0"
    );
    assert_eq!(
        error(&MINIMAL.replace("512", "1048577")),
        "web.toml: memory: must be between 16 and 1048576 MiB, got 1048577"
    );
    assert_eq!(
        error(&MINIMAL.replace("512", "-5")),
        "web.toml: memory: must be between 16 and 1048576 MiB, got -5"
    );
}

#[test]
fn wrong_types_name_the_key_and_what_was_found() {
    assert_eq!(
        error(&MINIMAL.replace("512", "\"512\"")),
        "web.toml: memory: expected an integer (MiB), found a string"
    );
    assert_eq!(
        error(&MINIMAL.replace("512", "1.5")),
        "web.toml: memory: expected an integer (MiB), found a float"
    );
    assert_eq!(
        error(&MINIMAL.replace("\"web\"", "7")),
        "web.toml: name: expected a string, found an integer"
    );
    assert_eq!(
        error(&MINIMAL.replace("\"bzImage\"", "[\"a\"]")),
        "web.toml: kernel: expected a path (string), found an array"
    );
    assert_eq!(
        error(&format!("{MINIMAL}cmdline = true\n")),
        "web.toml: cmdline: expected a string, found a boolean"
    );
    assert_eq!(
        error(&format!("{MINIMAL}vcpus = \"1\"\n")),
        "web.toml: vcpus: expected an integer, found a string"
    );
}

#[test]
fn required_keys_are_named_when_missing() {
    assert_eq!(
        error("memory = 512\nkernel = \"k\"\n"),
        "web.toml: name: required key is missing"
    );
    assert_eq!(
        error("name = \"web\"\nkernel = \"k\"\n"),
        "web.toml: memory: required key is missing"
    );
    assert_eq!(
        error("name = \"web\"\nmemory = 512\n"),
        "web.toml: kernel: required key is missing"
    );
}

#[test]
fn more_than_one_vcpu_is_refused_for_now() {
    for count in ["0", "2", "64"] {
        assert_eq!(
            error(&format!("{MINIMAL}vcpus = {count}\n")),
            "web.toml: vcpus: only 1 vCPU per domain is supported until SMP guests land"
        );
    }
}

#[test]
fn invalid_names_say_why() {
    let named = |name: &str| error(&MINIMAL.replace("\"web\"", &format!("{name:?}")));
    assert_eq!(named(""), "web.toml: name: must not be empty");
    assert_eq!(
        named("123"),
        "web.toml: name: `123` is all digits, which would read as a domain id"
    );
    assert_eq!(
        named(&"x".repeat(33)),
        format!("web.toml: name: `{}` is longer than 32 bytes", "x".repeat(33))
    );
    assert_eq!(
        named("my web"),
        "web.toml: name: `my web` contains a space, a slash or a control character"
    );
    assert_eq!(
        named("a/b"),
        "web.toml: name: `a/b` contains a space, a slash or a control character"
    );
    // 32 bytes exactly is fine.
    assert_eq!(parse(&MINIMAL.replace("web", &"x".repeat(32))).unwrap().name.len(), 32);
}

#[test]
fn lifecycle_actions_are_checked() {
    for key in ["on_poweroff", "on_reboot", "on_crash"] {
        assert_eq!(
            error(&format!("{MINIMAL}{key} = \"reboot\"\n")),
            format!("web.toml: {key}: expected \"destroy\", \"restart\" or \"preserve\", got \"reboot\"")
        );
        assert_eq!(
            error(&format!("{MINIMAL}{key} = 1\n")),
            format!("web.toml: {key}: expected \"destroy\", \"restart\" or \"preserve\", found an integer")
        );
    }
}

#[test]
fn unknown_keys_are_refused_before_anything_else() {
    assert_eq!(error(&format!("{MINIMAL}foo = 1\n")), "web.toml: unknown key `foo`");
    // A misspelt key is reported as such, not as the missing one.
    assert_eq!(
        error("name = \"web\"\nmemroy = 512\nkernel = \"k\"\n"),
        "web.toml: unknown key `memroy`"
    );
    assert_eq!(
        error(&format!("{MINIMAL}[disks]\npath = \"x\"\n")),
        "web.toml: unknown key `disks`"
    );
}

#[test]
fn empty_paths_and_bad_command_lines_are_refused() {
    assert_eq!(
        error(&MINIMAL.replace("\"bzImage\"", "\"\"")),
        "web.toml: kernel: must not be empty"
    );
    assert_eq!(
        error(&format!("{MINIMAL}initrd = \"\"\n")),
        "web.toml: initrd: must not be empty"
    );
    assert_eq!(
        error(&format!("{MINIMAL}cmdline = \"{}\"\n", "x".repeat(2048))),
        "web.toml: cmdline: is 2048 bytes long, Keel takes at most 2047"
    );
    assert_eq!(
        error(&format!("{MINIMAL}cmdline = \"a\\u0000b\"\n")),
        "web.toml: cmdline: must not contain NUL characters"
    );
    // An empty command line is allowed (it is simply not staged).
    assert_eq!(parse(&format!("{MINIMAL}cmdline = \"\"\n")).unwrap().cmdline, "");
}

#[test]
fn syntax_errors_show_tomls_message_with_the_line() {
    let message = error("name = \"web\"\nmemory = \n");
    assert!(
        message.starts_with("web.toml: TOML parse error at line 2, column 10"),
        "{message}"
    );
    assert!(message.contains("memory = "), "{message}");
}

#[test]
fn load_reads_the_file_and_resolves_paths_against_its_directory() {
    let dir = std::env::temp_dir().join(format!("keel-tools-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("web.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    assert_eq!(Config::load(&path).unwrap().kernel, dir.join("bzImage"));

    let missing = dir.join("none.toml");
    let message = Config::load(&missing).unwrap_err().to_string();
    assert_eq!(
        message,
        format!("{}: No such file or directory (os error 2)", missing.display())
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // A bare file name means the current directory.
    let config = Config::parse(MINIMAL, "web.toml", Path::new("")).unwrap();
    assert_eq!(config.kernel, PathBuf::from("bzImage"));
}

fn pci(text: &str) -> PciAddress {
    PciAddress::parse(text).unwrap()
}

#[test]
fn pci_devices_are_listed_in_order_in_either_address_form() {
    let config = parse(&format!(
        "{MINIMAL}pci = [\"0000:00:04.0\", \"00:1f.2\", \"0000:3A:00.7\"]\npci_unconfined_dma = true\n"
    ))
    .unwrap();
    assert_eq!(config.pci, [pci("00:04.0"), pci("0000:00:1f.2"), pci("3a:00.7")]);
    assert!(config.pci_unconfined_dma);
    let config = parse(&format!("{MINIMAL}pci = []\npci_unconfined_dma = false\n")).unwrap();
    assert_eq!((config.pci.len(), config.pci_unconfined_dma), (0, false));
}

#[test]
fn bad_pci_addresses_name_the_key_and_say_why() {
    let with = |list: &str| error(&format!("{MINIMAL}pci = {list}\n"));
    assert_eq!(
        with("[\"00:04\"]"),
        "web.toml: pci: `00:04`: expected a PCI address such as 0000:00:04.0 or 00:04.0 (hexadecimal)"
    );
    assert_eq!(
        with("[\"00:03.0\", \"0001:00:04.0\"]"),
        "web.toml: pci: `0001:00:04.0`: only PCI segment 0000 is supported"
    );
    assert_eq!(
        with("[\"00:20.0\"]"),
        "web.toml: pci: `00:20.0`: the device number is at most 1f"
    );
    assert_eq!(
        with("[\"00:04.8\"]"),
        "web.toml: pci: `00:04.8`: the function number is at most 7"
    );
    assert_eq!(
        with("[\"eth0\"]"),
        "web.toml: pci: `eth0`: expected a PCI address such as 0000:00:04.0 or 00:04.0 (hexadecimal)"
    );
}

#[test]
fn a_pci_device_listed_twice_is_refused_whatever_its_spelling() {
    assert_eq!(
        error(&format!(
            "{MINIMAL}pci = [\"00:04.0\", \"00:05.0\", \"0000:00:04.0\"]\n"
        )),
        "web.toml: pci: 0000:00:04.0 is listed twice"
    );
    assert_eq!(
        error(&format!("{MINIMAL}pci = [\"00:0a.1\", \"00:0A.1\"]\n")),
        "web.toml: pci: 0000:00:0a.1 is listed twice"
    );
}

#[test]
fn pci_keys_of_the_wrong_type_say_what_was_found() {
    assert_eq!(
        error(&format!("{MINIMAL}pci = \"00:04.0\"\n")),
        "web.toml: pci: expected an array of PCI addresses such as [\"0000:00:04.0\"], found a string"
    );
    assert_eq!(
        error(&format!("{MINIMAL}pci = [\"00:04.0\", 4]\n")),
        "web.toml: pci: expected an array of PCI addresses such as [\"0000:00:04.0\"], found an integer in the array"
    );
    assert_eq!(
        error(&format!("{MINIMAL}pci_unconfined_dma = \"yes\"\n")),
        "web.toml: pci_unconfined_dma: expected true or false, found a string"
    );
    assert_eq!(
        error(&format!("{MINIMAL}pci_unconfined_dma = 1\n")),
        "web.toml: pci_unconfined_dma: expected true or false, found an integer"
    );
    assert_eq!(
        error(&format!("{MINIMAL}pci_unconfined = true\n")),
        "web.toml: unknown key `pci_unconfined`"
    );
}

fn disk(path: &str, read_only: bool) -> Disk {
    Disk {
        path: PathBuf::from(path),
        read_only,
    }
}

#[test]
fn disks_take_a_path_and_a_required_mode_in_order() {
    let config = parse(&format!(
        "{MINIMAL}disk = [\"images/root.img,rw\", \"/srv/iso,v1.img,ro\"]\n"
    ))
    .unwrap();
    assert_eq!(
        config.disks,
        [
            // Relative to the file's directory, like kernel.
            disk("/etc/keel/images/root.img", false),
            // The mode is after the last comma: paths may hold commas.
            disk("/srv/iso,v1.img", true),
        ]
    );
    assert_eq!(config.disks[0].spec(), "/etc/keel/images/root.img,rw");
    assert_eq!(config.disks[1].mode(), "ro");
    assert_eq!(parse(&format!("{MINIMAL}disk = []\n")).unwrap().disks, []);
}

#[test]
fn bad_disks_say_what_is_wrong() {
    let disks = |value: &str| error(&format!("{MINIMAL}disk = {value}\n"));
    assert_eq!(
        disks("\"root.img,rw\""),
        "web.toml: disk: expected an array of disks such as [\"root.img,rw\", \"data.img,ro\"], found a string"
    );
    assert_eq!(
        disks("[1]"),
        "web.toml: disk: expected an array of disks such as [\"root.img,rw\", \"data.img,ro\"], found an integer \
         in the array"
    );
    assert_eq!(
        disks("[\"root.img\"]"),
        "web.toml: disk: `root.img`: expected \"<path>,rw\" or \"<path>,ro\" (the mode is required)"
    );
    assert_eq!(
        disks("[\"root.img,w\"]"),
        "web.toml: disk: `root.img,w`: the mode must be rw or ro, got `w`"
    );
    assert_eq!(
        disks("[\"root.img,RO\"]"),
        "web.toml: disk: `root.img,RO`: the mode must be rw or ro, got `RO`"
    );
    assert_eq!(disks("[\",rw\"]"), "web.toml: disk: `,rw`: the path must not be empty");
    assert_eq!(
        disks("[\"a.img,rw\", \"/etc/keel/a.img,ro\"]"),
        "web.toml: disk: /etc/keel/a.img is listed twice"
    );
}

#[test]
fn at_most_sixteen_disks() {
    let list = |count: usize| {
        let items: Vec<String> = (0..count).map(|n| format!("\"d{n}.img,ro\"")).collect();
        format!("{MINIMAL}disk = [{}]\n", items.join(", "))
    };
    assert_eq!(parse(&list(16)).unwrap().disks.len(), 16);
    assert_eq!(
        error(&list(17)),
        "web.toml: disk: 17 disks listed, a domain can have at most 16"
    );
}

#[test]
fn vifs_are_read_in_order_and_checked() {
    let config = parse(&format!(
        "{MINIMAL}vif = [\"mac=02:4b:45:00:00:0a\", \"\", \"mtu=9000\"]\n"
    ))
    .unwrap();
    assert_eq!(
        config.vifs,
        [
            Vif {
                mac: Some([2, 0x4b, 0x45, 0, 0, 0x0a]),
                mtu: None
            },
            Vif::default(),
            Vif {
                mac: None,
                mtu: Some(9000)
            }
        ]
    );
    let cases = [
        (
            "vif = \"mac=02:4b:45:00:00:0a\"",
            "vif: expected an array of interfaces",
        ),
        (
            "vif = [1]",
            "vif: expected an array of interfaces such as [\"mac=02:4b:45:00:00:0a\", \"\"], found an integer",
        ),
        (
            "vif = [\"bridge=xenbr0\"]",
            "vif: `bridge=xenbr0`: every vif is on Dom0's one switch",
        ),
        (
            "vif = [\"mac=02:4b:45:00:00:0a\", \"mac=02:4B:45:00:00:0A\"]",
            "vif: 02:4b:45:00:00:0a is given to two interfaces",
        ),
    ];
    for (line, expected) in cases {
        let message = error(&format!("{MINIMAL}{line}\n"));
        assert!(
            message.starts_with(&format!("web.toml: {expected}")),
            "{line}: {message}"
        );
    }
}

#[test]
fn disks_and_vifs_share_the_sixteen_devices() {
    let disks: Vec<String> = (0..10).map(|n| format!("\"d{n}.img,rw\"")).collect();
    let vifs = ["\"\""; 7];
    let message = error(&format!(
        "{MINIMAL}disk = [{}]\nvif = [{}]\n",
        disks.join(", "),
        vifs.join(", ")
    ));
    assert_eq!(
        message,
        "web.toml: vif: 10 disks, 7 interfaces: a domain can have at most 16 virtio devices"
    );
    let vifs = ["\"\""; 6];
    assert_eq!(
        error(&format!(
            "{MINIMAL}disk = [{}]\nvif = [{}]\nvirtio_console = true\n",
            disks.join(", "),
            vifs.join(", ")
        )),
        "web.toml: vif: 10 disks, 6 interfaces and a console: a domain can have at most 16 virtio devices"
    );
    assert!(
        parse(&format!("{MINIMAL}virtio_console = true\n"))
            .unwrap()
            .virtio_console
    );
    assert_eq!(
        error(&format!("{MINIMAL}virtio_console = \"yes\"\n")),
        "web.toml: virtio_console: expected true or false, found a string"
    );
    assert_eq!(
        parse(&format!(
            "{MINIMAL}disk = [{}]\nvif = [{}]\n",
            disks.join(", "),
            vifs.join(", ")
        ))
        .unwrap()
        .vifs
        .len(),
        6
    );
}
