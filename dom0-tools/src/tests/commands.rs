//! Whole commands as the binary runs them, against the fake Keel.

use clap::{CommandFactory, Parser};
use keel_abi::mgmt::{pci_function_flags, Command as Call, DomainState, ImageKind, PciAddress};

use keel_abi::mgmt::virtio::{device_type, queue_shape};

use super::fake::{BackendEvent, FakeBackends, FakeKeel, FAKE_BACKEND_PID};
use crate::backend::blk::disk_model;
use crate::backend::supervisor::{BackendDevices, Backends};
use crate::cli::{seconds, Cli, Command};
use crate::client::Client;
use crate::commands::{execute, resolve, Streams, Target};
use crate::config::Disk;

/// Runs `keel <args>` against `keel`: (result as `keel: ...` text, stdout, stderr).
fn keel_run(keel: &mut FakeKeel, args: &[&str]) -> (Result<(), String>, String, String) {
    keel_run_with(keel, &mut FakeBackends::default(), args)
}

/// [`keel_run`] with the backends a test watches.
pub fn keel_run_with(
    keel: &mut FakeKeel,
    backends: &mut FakeBackends,
    args: &[&str],
) -> (Result<(), String>, String, String) {
    let cli = Cli::try_parse_from(std::iter::once("keel").chain(args.iter().copied())).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = execute(
        cli.command,
        || Client::connect(&mut *keel),
        Streams {
            out: &mut out,
            err: &mut err,
        },
        backends,
    );
    (
        result.map_err(|error| format!("keel: {error:#}")),
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn domains_are_named_by_id_or_name() {
    let mut keel = FakeKeel::new();
    keel.add("web", DomainState::Running, 64);
    let db = keel.add("db", DomainState::Running, 64);
    let client = &mut Client::connect(&mut keel).unwrap();
    assert_eq!(
        resolve(client, "db").unwrap(),
        Target {
            id: db,
            label: "db (id 2)".into()
        }
    );
    // All digits is an id and needs no lookup (Keel checks it).
    assert_eq!(
        resolve(client, "7").unwrap(),
        Target {
            id: 7,
            label: "7".into()
        }
    );
    assert_eq!(resolve(client, "Domain-0").unwrap().id, 0);
    assert_eq!(resolve(client, "www").unwrap_err().to_string(), "no domain named `www`");
    assert_eq!(resolve(client, "").unwrap_err().to_string(), "no domain named ``");
    assert_eq!(
        resolve(client, "99999999999").unwrap_err().to_string(),
        "domain id 99999999999 is out of range"
    );
    assert_eq!(keel.count(Call::List), 4);
}

#[test]
fn lifecycle_commands_act_on_the_resolved_domain() {
    let mut keel = FakeKeel::new();
    let web = keel.add("web", DomainState::Running, 64);
    assert_eq!(
        keel_run(&mut keel, &["pause", "web"]),
        (Ok(()), String::new(), String::new())
    );
    assert_eq!(keel.domain(web).info.state, DomainState::Paused);
    assert_eq!(keel_run(&mut keel, &["unpause", "1"]).0, Ok(()));
    assert_eq!(keel.domain(web).info.state, DomainState::Running);
    assert_eq!(keel_run(&mut keel, &["reboot", "web"]).0, Ok(()));
    assert_eq!(*keel.commands().last().unwrap(), Call::Reboot);
    assert_eq!(keel_run(&mut keel, &["destroy", "web"]).0, Ok(()));
    assert!(!keel.domains.contains_key(&web));
    let db = keel.add("db", DomainState::Running, 64);
    assert_eq!(keel_run(&mut keel, &["shutdown", "db"]).0, Ok(()));
    assert_eq!(keel.calls.last().unwrap().args[0], u64::from(db));
}

#[test]
fn unknown_domains_and_refusals_are_errors() {
    let mut keel = FakeKeel::new();
    assert_eq!(
        keel_run(&mut keel, &["destroy", "www"]).0,
        Err("keel: no domain named `www`".into())
    );
    assert_eq!(
        keel_run(&mut keel, &["destroy", "5"]).0,
        Err("keel: cannot destroy domain 5: no such domain: no domain 5".into())
    );
    assert_eq!(
        keel_run(&mut keel, &["pause", "Domain-0"]).0,
        Err("keel: cannot pause domain Domain-0 (id 0): not permitted: Dom0".into())
    );
    let web = keel.add("web", DomainState::Paused, 64);
    assert_eq!(
        keel_run(&mut keel, &["pause", "web"]).0,
        Err(format!(
            "keel: cannot pause domain web (id {web}): the domain's state does not allow that: paused"
        ))
    );
}

#[test]
fn list_and_info_print_tables_or_json() {
    let mut keel = FakeKeel::new();
    keel.add("web", DomainState::Blocked, 512);
    let (result, out, _) = keel_run(&mut keel, &["list"]);
    assert_eq!(result, Ok(()));
    assert_eq!(out.lines().count(), 3);
    assert!(out.lines().nth(2).unwrap().starts_with("web "));
    let (_, out, _) = keel_run(&mut keel, &["list", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[1]["name"], "web");
    let (_, out, _) = keel_run(&mut keel, &["info"]);
    assert!(out.contains("domains               : 2\n"), "{out}");
    let (_, out, _) = keel_run(&mut keel, &["info", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["domains"][1]["name"], "web");
}

#[test]
fn dmesg_prints_the_log() {
    let mut keel = FakeKeel::new();
    keel.dmesg = b"keel: hello\n".to_vec();
    assert_eq!(
        keel_run(&mut keel, &["dmesg"]),
        (Ok(()), "keel: hello\n".into(), String::new())
    );
}

#[test]
fn create_reads_the_config_loads_and_boots() {
    let dir = std::env::temp_dir().join(format!("keel-tools-commands-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::write(dir.join("images/bzImage"), b"KERNEL").unwrap();
    let config = dir.join("web.toml");
    std::fs::write(
        &config,
        "name = \"web\"\nmemory = 64\nkernel = \"images/bzImage\"\ncmdline = \"quiet\"\n",
    )
    .unwrap();
    let path = config.to_str().unwrap();

    let mut keel = FakeKeel::new();
    let (result, out, err) = keel_run(&mut keel, &["create", path, "--paused"]);
    assert_eq!(
        (result, out.as_str(), err.as_str()),
        (Ok(()), "Created domain web (id 1)\n", "")
    );
    assert_eq!(keel.domain(1).info.state, DomainState::Paused);
    assert_eq!(keel.domain(1).image(ImageKind::Cmdline), Some(&b"quiet"[..]));

    // Config errors come before any call (even on a machine without Keel).
    std::fs::write(&config, "name = \"web\"\nmemory = 0\nkernel = \"images/bzImage\"\n").unwrap();
    let mut keel = FakeKeel::new();
    let (result, _, _) = keel_run(&mut keel, &["create", path]);
    assert_eq!(
        result,
        Err(format!(
            "keel: {path}: memory: must be between 16 and 1048576 MiB, got 0"
        ))
    );
    assert!(keel.calls.is_empty());

    std::fs::write(&config, "name = \"web\"\nmemory = 64\nkernel = \"gone\"\n").unwrap();
    let (result, _, _) = keel_run(&mut keel, &["create", path]);
    assert_eq!(
        result,
        Err(format!(
            "keel: {path}: kernel: cannot read {}: No such file or directory (os error 2)",
            dir.join("gone").display()
        ))
    );
    assert!(keel.calls.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_command_has_help() {
    let cli = Cli::command();
    cli.clone().debug_assert();
    for command in cli.get_subcommands() {
        assert!(command.get_about().is_some(), "{} has no help", command.get_name());
        for arg in command.get_arguments() {
            assert!(
                arg.get_help().is_some(),
                "{} {} has no help",
                command.get_name(),
                arg.get_id()
            );
        }
    }
    let help = Cli::command()
        .find_subcommand_mut("create")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(help.contains("on_poweroff"), "{help}");
}

#[test]
fn the_command_line_parses_as_documented() {
    let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("keel").chain(args.iter().copied()));
    match parse(&["create", "web.toml", "-p", "-c"]).unwrap().command {
        Command::Create {
            config,
            paused,
            console,
        } => {
            assert_eq!((config.to_str().unwrap(), paused, console), ("web.toml", true, true))
        }
        other => panic!("{other:?}"),
    }
    match parse(&["console", "web", "--until", "login:", "--timeout", "1.5"])
        .unwrap()
        .command
    {
        Command::Console {
            domain,
            until,
            timeout,
            hvc,
        } => {
            assert_eq!(domain, "web");
            assert_eq!(until.as_deref(), Some("login:"));
            assert_eq!(timeout, Some(std::time::Duration::from_millis(1500)));
            assert!(!hvc);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse(&["console", "web", "--hvc"]).unwrap().command,
        Command::Console { hvc: true, .. }
    ));
    match parse(&["top"]).unwrap().command {
        Command::Top { delay, iterations } => assert_eq!((delay.as_secs(), iterations), (1, None)),
        other => panic!("{other:?}"),
    }
    match parse(&["top", "-d", "0.5", "-n", "3"]).unwrap().command {
        Command::Top { delay, iterations } => assert_eq!((delay.as_millis(), iterations), (500, Some(3))),
        other => panic!("{other:?}"),
    }
    // Usage errors keep clap's exit status 2.
    for args in [
        &["top", "-n", "0"][..],
        &["console"],
        &["list", "--yaml"],
        &["frobnicate"],
    ] {
        assert_eq!(parse(args).unwrap_err().exit_code(), 2, "{args:?}");
    }
    assert_eq!(parse(&["--help"]).unwrap_err().exit_code(), 0);
    assert_eq!(seconds("0").unwrap_err(), "must be more than 0 seconds, got 0");
    assert_eq!(seconds("nan").unwrap_err(), "must be more than 0 seconds, got nan");
    assert_eq!(seconds("soon").unwrap_err(), "`soon` is not a number of seconds");
    assert!(seconds("1e300").is_err());
}

#[test]
fn pci_assignable_list_prints_a_table_or_json() {
    let mut keel = FakeKeel::with_pci();
    let web = keel.add("web", DomainState::Running, 64);
    let nic = keel.pci_function("00:03.0");
    nic.flags |= pci_function_flags::ATTACHED;
    nic.owner = web;
    let (result, out, err) = keel_run(&mut keel, &["pci-assignable-list"]);
    assert_eq!((result, err.as_str()), (Ok(()), ""));
    assert_eq!(
        out,
        "Address       Device     Class   State                   DMA\n\
         0000:00:00.0  8086:29c0  060000  host bridge             dma NOT confined\n\
         0000:00:03.0  8086:10d3  020000  attached to web (id 1)  dma confined\n\
         0000:00:04.0  1af4:1000  020000  assignable              dma NOT confined\n\
         0000:00:1f.2  8086:2922  010601  not assignable          dma confined\n"
    );
    assert_eq!(keel.commands()[1..], [Call::PciList, Call::List]);

    let (result, out, _) = keel_run(&mut keel, &["pci-assignable-list", "--json"]);
    assert_eq!(result, Ok(()));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 4);
    assert_eq!(
        json[1],
        serde_json::json!({
            "address": "0000:00:03.0",
            "vendor": "8086",
            "device": "10d3",
            "class": "020000",
            "state": "attached",
            "assignable": true,
            "attached": true,
            "host_bridge": false,
            "dma_confined": true,
            "owner": 1,
            "owner_name": "web",
            "flags": 7,
        })
    );
    assert_eq!(json[2]["owner"], serde_json::Value::Null);
    assert_eq!(json[2]["dma_confined"], false);
}

#[test]
fn pci_assignable_add_and_remove_change_the_device_and_report_refusals() {
    let mut keel = FakeKeel::with_pci();
    assert_eq!(
        keel_run(&mut keel, &["pci-assignable-add", "00:1f.2"]),
        (Ok(()), String::new(), String::new())
    );
    assert!(keel.pci_function("00:1f.2").has(pci_function_flags::ASSIGNABLE));
    let call = keel.calls.last().unwrap();
    assert_eq!(
        (call.command, call.args[0], call.args[1]),
        (Call::PciAssignable as u32, 0xfa, 1)
    );

    assert_eq!(
        keel_run(&mut keel, &["pci-assignable-remove", "0000:00:04.0"]).0,
        Ok(())
    );
    assert!(!keel.pci_function("00:04.0").has(pci_function_flags::ASSIGNABLE));
    assert_eq!(keel.calls.last().unwrap().args[..2], [0x20, 0]);

    let db = keel.add("db", DomainState::Running, 64);
    let nic = keel.pci_function("00:03.0");
    nic.flags |= pci_function_flags::ATTACHED;
    nic.owner = db;
    assert_eq!(
        keel_run(&mut keel, &["pci-assignable-remove", "00:03.0"]).0,
        Err(
            "keel: cannot give 0000:00:03.0 back to the host: the domain's state does not allow that: attached to domain 1"
                .into()
        )
    );
    assert_eq!(
        keel_run(&mut keel, &["pci-assignable-add", "00:00.0"]).0,
        Err("keel: cannot make 0000:00:00.0 assignable: not permitted: a host bridge is never assignable".into())
    );
    assert_eq!(
        keel_run(&mut keel, &["pci-assignable-add", "00:09.0"]).0,
        Err("keel: cannot make 0000:00:09.0 assignable: no such PCI device: no function 0000:00:09.0".into())
    );
}

#[test]
fn create_attaches_the_configs_pci_devices() {
    let dir = std::env::temp_dir().join(format!("keel-tools-commands-pci-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bzImage"), b"KERNEL").unwrap();
    let config = dir.join("web.toml");
    std::fs::write(
        &config,
        "name = \"web\"\nmemory = 64\nkernel = \"bzImage\"\npci = [\"00:04.0\"]\npci_unconfined_dma = true\n",
    )
    .unwrap();
    let path = config.to_str().unwrap();
    let mut keel = FakeKeel::with_pci();
    let (result, out, err) = keel_run(&mut keel, &["create", path]);
    assert_eq!((result, out.as_str()), (Ok(()), "Created domain web (id 1)\n"));
    assert!(
        err.starts_with("keel: warning: 0000:00:04.0 is attached to web (id 1)"),
        "{err}"
    );
    assert_eq!(keel.pci_function("00:04.0").owner, 1);

    // A bad address is a config error: nothing is called.
    std::fs::write(
        &config,
        "name = \"web\"\nmemory = 64\nkernel = \"bzImage\"\npci = [\"00:04\"]\n",
    )
    .unwrap();
    let mut keel = FakeKeel::with_pci();
    let (result, _, _) = keel_run(&mut keel, &["create", path]);
    assert_eq!(
        result,
        Err(format!(
            "keel: {path}: pci: `00:04`: expected a PCI address such as 0000:00:04.0 or 00:04.0 (hexadecimal)"
        ))
    );
    assert!(keel.calls.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pci_addresses_on_the_command_line_are_checked_by_the_parser() {
    let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("keel").chain(args.iter().copied()));
    match parse(&["pci-assignable-add", "00:04.0"]).unwrap().command {
        Command::PciAssignableAdd { address, intx_gsi } => {
            assert_eq!(address, PciAddress::new(0, 4, 0).unwrap());
            assert_eq!(intx_gsi, None);
        }
        other => panic!("{other:?}"),
    }
    match parse(&["pci-assignable-add", "00:04.0", "--intx-gsi", "19"])
        .unwrap()
        .command
    {
        Command::PciAssignableAdd { intx_gsi, .. } => assert_eq!(intx_gsi, Some(19)),
        other => panic!("{other:?}"),
    }
    assert!(parse(&["pci-assignable-add", "00:04.0", "--intx-gsi", "-1"]).is_err());
    match parse(&["pci-assignable-remove", "0000:0a:1f.7"]).unwrap().command {
        Command::PciAssignableRemove { address } => assert_eq!(address.to_string(), "0000:0a:1f.7"),
        other => panic!("{other:?}"),
    }
    match parse(&["pci-assignable-list", "--json"]).unwrap().command {
        Command::PciAssignableList { json } => assert!(json),
        other => panic!("{other:?}"),
    }
    for args in [
        &["pci-assignable-add", "0001:00:04.0"][..],
        &["pci-assignable-add", "eth0"],
        &["pci-assignable-add"],
        &["pci-assignable-remove", "00:20.0"],
    ] {
        assert_eq!(parse(args).unwrap_err().exit_code(), 2, "{args:?}");
    }
    let error = parse(&["pci-assignable-add", "00:04.9"]).unwrap_err().to_string();
    assert!(error.contains("`00:04.9`: the function number is at most 7"), "{error}");
    let help = Cli::command()
        .find_subcommand_mut("create")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(help.contains("pci_unconfined_dma"), "{help}");
}

#[test]
fn destroy_stops_the_backend_first_and_a_missing_one_is_fine() {
    let mut keel = FakeKeel::new();
    let web = keel.add("web", DomainState::Running, 64);
    let mut backends = FakeBackends::default();
    backends.start(web, &BackendDevices::default()).unwrap();
    assert_eq!(
        keel_run_with(&mut keel, &mut backends, &["destroy", "web"]),
        (Ok(()), String::new(), String::new())
    );
    assert_eq!(backends.events[1..], [BackendEvent::Stop(web)]);
    assert!(backends.running.is_empty());
    assert!(!keel.domains.contains_key(&web));

    // No backend: destroyed all the same, silently.
    let db = keel.add("db", DomainState::Running, 64);
    assert_eq!(
        keel_run_with(&mut keel, &mut backends, &["destroy", "db"]),
        (Ok(()), String::new(), String::new())
    );
    assert!(!keel.domains.contains_key(&db));

    // A backend that cannot be stopped: a warning, and the domain still goes.
    let app = keel.add("app", DomainState::Running, 64);
    backends.fail_stop = Some("pid 99 does not exit".into());
    let (result, _, err) = keel_run_with(&mut keel, &mut backends, &["destroy", "app"]);
    assert_eq!(result, Ok(()));
    assert_eq!(
        err,
        "keel: warning: cannot stop the backend of app (id 3): pid 99 does not exit\n"
    );
    assert!(!keel.domains.contains_key(&app));
}

/// A running domain with two disks (as `keel create` leaves it) and its
/// backend's ready file; the first disk's driver is up.
fn domain_with_disks(keel: &mut FakeKeel, backends: &mut FakeBackends) -> u32 {
    let id = keel.add("web", DomainState::Building, 64);
    {
        let mut client = Client::connect(&mut *keel).unwrap();
        for read_only in [false, true] {
            let model = disk_model(0, 4096, read_only);
            client
                .virtio_attach(
                    id,
                    device_type::BLOCK,
                    model.device_features(),
                    queue_shape(1, 256),
                    &model.config(),
                )
                .unwrap();
        }
    }
    keel.domain(id).info.state = DomainState::Running;
    keel.virtio(id, 0).state.status = 0x0f;
    keel.virtio(id, 1).state.status = 0x01;
    let disks = vec![
        Disk {
            path: "/srv/web/root.img".into(),
            read_only: false,
        },
        Disk {
            path: "/srv/iso/debian.iso".into(),
            read_only: true,
        },
    ];
    backends
        .start(
            id,
            &BackendDevices {
                disks,
                nics: Vec::new(),
                console: false,
            },
        )
        .unwrap();
    id
}

#[test]
fn block_list_shows_each_disk_with_its_mode_and_driver_status() {
    let mut keel = FakeKeel::new();
    let mut backends = FakeBackends::default();
    let id = domain_with_disks(&mut keel, &mut backends);
    let (result, out, err) = keel_run_with(&mut keel, &mut backends, &["block-list", "web"]);
    assert_eq!((result, err.as_str()), (Ok(()), ""));
    assert_eq!(
        out,
        "Index  Mode  Status              Path\n\
         0      rw    driver-ok (0x0f)    /srv/web/root.img\n\
         1      ro    acknowledge (0x01)  /srv/iso/debian.iso\n"
    );
    let (_, out, _) = keel_run_with(&mut keel, &mut backends, &["block-list", &id.to_string(), "--json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[0]["path"], "/srv/web/root.img");
    assert_eq!(json[0]["mode"], "rw");
    assert_eq!(json[0]["status"], "driver-ok");
    assert_eq!(json[0]["status_bits"], 15);
    assert_eq!(json[0]["backend_pid"], FAKE_BACKEND_PID);
    assert_eq!(json[1]["read_only"], true);
    assert_eq!(json[1]["generation"], 1);
}

#[test]
fn block_list_without_a_backend_still_shows_keels_devices() {
    let mut keel = FakeKeel::new();
    let mut backends = FakeBackends::default();
    let id = domain_with_disks(&mut keel, &mut backends);
    backends.running.clear();
    keel.virtio(id, 0).state.status |= 0x40;
    let (result, out, err) = keel_run_with(&mut keel, &mut backends, &["block-list", "web"]);
    assert_eq!(result, Ok(()));
    assert_eq!(
        out,
        "Index  Mode  Status              Path\n\
         0      ?     needs-reset (0x4f)  ?\n\
         1      ?     acknowledge (0x01)  ?\n"
    );
    assert_eq!(
        err,
        "keel: no backend runs for web (id 1): its disks are not served; `keel backend-restart` starts it again\n"
    );
    // A domain without disks: just the header, no note.
    keel.add("db", DomainState::Running, 64);
    let (result, out, err) = keel_run_with(&mut keel, &mut backends, &["block-list", "db"]);
    assert_eq!((result, out.lines().count(), err.as_str()), (Ok(()), 1, ""));
    // An unknown domain is an error.
    let (result, _, _) = keel_run_with(&mut keel, &mut backends, &["block-list", "9"]);
    assert_eq!(result, Err("keel: no such domain: no domain 9".to_string()));
}

#[test]
fn disks_cannot_be_attached_or_detached_at_run_time_yet() {
    let mut keel = FakeKeel::new();
    for args in [
        &["block-attach", "web", "/srv/data.img,rw"][..],
        &["block-detach", "web", "1"],
    ] {
        let (result, _, _) = keel_run(&mut keel, args);
        assert_eq!(
            result,
            Err(
                "keel: disks are attached when a domain is created, not while it runs, in this version: list them \
                 in its configuration (disk = [\"<path>,rw\", \"<path>,ro\"]) and create it again"
                    .to_string()
            )
        );
    }
    assert!(keel.calls.is_empty(), "refused before connecting");
}

#[test]
fn the_backend_command_is_hidden_but_parses() {
    let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("keel").chain(args.iter().copied()));
    match parse(&["backend", "3", "--disk", "/a.img,rw", "--disk", "/b,c.img,ro"])
        .unwrap()
        .command
    {
        Command::Backend(args) => {
            assert_eq!(args.domain, 3);
            assert_eq!(args.disks, ["/a.img,rw", "/b,c.img,ro"]);
            assert_eq!(args.run_dir, std::path::Path::new("/run/keel"));
        }
        other => panic!("{other:?}"),
    }
    assert!(parse(&["backend", "3"]).is_err(), "at least one device");
    match parse(&["backend", "4", "--vif", "mac=02:4b:45:00:00:0a"])
        .unwrap()
        .command
    {
        Command::Backend(args) => assert_eq!((args.disks.len(), args.vifs.len()), (0, 1)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse(&["switch", "--no-tap"]).unwrap().command,
        Command::Switch(_)
    ));
    let help = Cli::command().render_help().to_string();
    assert!(!help.contains("\n  backend "), "{help}");
    assert!(help.contains("\n  backend-restart "), "{help}");
    assert!(!help.contains("\n  switch"), "{help}");
    assert!(help.contains("network-list"), "{help}");
    assert!(help.contains("block-list"), "{help}");
}

#[test]
fn console_hvc_needs_a_virtio_console_and_its_backend() {
    let mut keel = FakeKeel::new();
    keel.add("web", DomainState::Running, 64);
    let mut backends = FakeBackends::default();
    let (result, _, _) = keel_run_with(&mut keel, &mut backends, &["console", "web", "--hvc"]);
    assert_eq!(
        result,
        Err("keel: web (id 1) has no virtio console (it needs virtio_console = true in its config)".to_string())
    );
    let devices = BackendDevices {
        console: true,
        ..BackendDevices::default()
    };
    backends.start(1, &devices).unwrap();
    backends.running.get_mut(&1).unwrap().running = None;
    let (result, _, _) = keel_run_with(&mut keel, &mut backends, &["console", "web", "--hvc"]);
    assert_eq!(
        result,
        Err("keel: no backend runs for web (id 1): its virtio console is not served".to_string())
    );
}

#[test]
fn backend_restart_starts_what_the_domain_was_created_with() {
    let mut keel = FakeKeel::new();
    keel.add("web", DomainState::Running, 64);
    let mut backends = FakeBackends::default();
    let (result, _, _) = keel_run_with(&mut keel, &mut backends, &["backend-restart", "web"]);
    assert_eq!(
        result,
        Err(
            "keel: cannot restart the backend of web (id 1): no backend was started for domain 1: nothing to restart"
                .to_string()
        )
    );
    let devices = BackendDevices {
        console: true,
        ..BackendDevices::default()
    };
    backends.start(1, &devices).unwrap();
    backends.running.get_mut(&1).unwrap().running = None;
    let (result, out, _) = keel_run_with(&mut keel, &mut backends, &["backend-restart", "web"]);
    assert_eq!(
        (result, out.as_str()),
        (Ok(()), "Restarted the backend of web (id 1)\n")
    );
    assert_eq!(backends.started[&1], devices);
    assert_eq!(backends.running[&1].running, Some(FAKE_BACKEND_PID));
}
