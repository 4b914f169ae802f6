use anyhow::Result;
use keel_abi::mgmt::{Command, DomainState, Request, Response, Status, VERSION};

use super::fake::{FakeKeel, MIB};
use crate::client::{is_status, version_string, CallError, Client};
use crate::transport::Transport;

fn connect(keel: &mut FakeKeel) -> Client<&mut FakeKeel> {
    Client::connect(keel).unwrap()
}

#[test]
fn connecting_says_hello_with_our_version_first() {
    let mut keel = FakeKeel::new();
    let client = connect(&mut keel);
    assert_eq!(client.keel_version(), VERSION);
    assert_eq!(keel.commands(), [Command::Hello]);
    assert_eq!(keel.calls[0].args[0], u64::from(VERSION));
}

#[test]
fn a_newer_minor_version_is_accepted() {
    let mut keel = FakeKeel::new();
    keel.version = VERSION + 3;
    assert_eq!(connect(&mut keel).keel_version(), VERSION + 3);
}

#[test]
fn bad_version_names_both_versions() {
    // The fake refuses like Keel; the transport advertises nothing, so the
    // message can only name ours...
    let mut keel = FakeKeel::new();
    keel.version = 2 << 16;
    let error = Client::connect(&mut keel).err().unwrap();
    assert_eq!(
        format!("{error:#}"),
        format!(
            "Keel refused management ABI {} (caller speaks {VERSION:#x}): use the tools built with this hypervisor",
            version_string(VERSION)
        )
    );

    // ...while the device's VERSION register names Keel's too.
    struct Advertising(FakeKeel);
    impl Transport for Advertising {
        fn call(&mut self, request: &Request, input: &[u8]) -> Result<(Response, Vec<u8>)> {
            self.0.call(request, input)
        }
        fn advertised_version(&self) -> Option<u32> {
            Some(self.0.version)
        }
    }
    let mut keel = FakeKeel::new();
    keel.version = (2 << 16) | 1;
    let error = Client::connect(Advertising(keel)).err().unwrap();
    assert_eq!(
        format!("{error:#}"),
        format!(
            "Keel speaks management ABI 2.1, this keel tool speaks {}: use the tools built with this hypervisor",
            version_string(VERSION)
        )
    );
}

#[test]
fn a_hello_answered_with_another_major_is_refused_too() {
    struct Lenient;
    impl Transport for Lenient {
        fn call(&mut self, _: &Request, _: &[u8]) -> Result<(Response, Vec<u8>)> {
            let values = [3 << 16, 0, 0, 0];
            Ok((
                Response {
                    status: 0,
                    data_len: 0,
                    values,
                },
                Vec::new(),
            ))
        }
    }
    let error = Client::connect(Lenient).err().unwrap();
    assert_eq!(
        error.to_string(),
        format!(
            "Keel speaks management ABI 3.0, this keel tool speaks {}: use the tools built with this hypervisor",
            version_string(VERSION)
        )
    );
}

#[test]
fn every_status_maps_to_its_description_and_keels_message() {
    for status in Status::ALL.into_iter().filter(|&status| status != Status::Ok) {
        let mut keel = FakeKeel::new();
        let id = keel.add("web", DomainState::Running, 64);
        keel.fail(Command::Pause, 0, status, "the detail");
        let mut client = connect(&mut keel);
        let error = client.pause(id).unwrap_err();
        assert_eq!(error.to_string(), format!("{}: the detail", status.describe()));
        assert!(is_status(&error, status));
        assert_eq!(
            error.downcast_ref::<CallError>(),
            Some(&CallError {
                command: Command::Pause,
                status,
                message: "the detail".into()
            })
        );
    }
}

#[test]
fn an_empty_message_leaves_only_the_description() {
    let mut keel = FakeKeel::new();
    keel.fail(Command::Destroy, 0, Status::NotPermitted, "");
    let error = connect(&mut keel).destroy(0).unwrap_err();
    assert_eq!(error.to_string(), "not permitted");
}

#[test]
fn control_characters_in_messages_are_neutralized() {
    let mut keel = FakeKeel::new();
    keel.fail(Command::Destroy, 0, Status::BadState, "bad\x1b[2Jstate\n");
    let error = connect(&mut keel).destroy(1).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the domain's state does not allow that: bad?[2Jstate"
    );
}

#[test]
fn an_unknown_status_is_an_error_naming_it() {
    struct Odd;
    impl Transport for Odd {
        fn call(&mut self, request: &Request, _: &[u8]) -> Result<(Response, Vec<u8>)> {
            let status = if request.command == Command::Hello as u32 {
                0
            } else {
                99
            };
            let values = [u64::from(VERSION), 0, 0, 0];
            Ok((
                Response {
                    status,
                    data_len: 0,
                    values,
                },
                Vec::new(),
            ))
        }
    }
    let error = Client::connect(Odd).unwrap().list().unwrap_err();
    assert_eq!(error.to_string(), "Keel answered List with unknown status 99");
}

#[test]
fn list_and_info_decode_keels_records() {
    let mut keel = FakeKeel::new();
    let web = keel.add("web", DomainState::Blocked, 512);
    keel.domain(web).info.cpu_time_ns = 1_500_000_000;
    let mut client = connect(&mut keel);
    let domains = client.list().unwrap();
    assert_eq!(domains.len(), 2);
    assert_eq!((domains[0].id, domains[0].name.as_str()), (0, "Domain-0"));
    assert_eq!(
        (domains[1].id, domains[1].name.as_str(), domains[1].state),
        (web, "web", DomainState::Blocked)
    );
    assert_eq!(domains[1].cpu_time_ns, 1_500_000_000);
    let host = client.info().unwrap();
    assert_eq!(host.domains, 2);
    assert_eq!(host.free_memory, (4096 - 256 - 2 - 512 - 2) * MIB);
}

#[test]
fn a_short_list_is_malformed() {
    struct Short;
    impl Transport for Short {
        fn call(&mut self, _: &Request, _: &[u8]) -> Result<(Response, Vec<u8>)> {
            let values = [u64::from(VERSION), 0, 0, 0];
            Ok((
                Response {
                    status: 0,
                    data_len: 10,
                    values,
                },
                vec![0; 10],
            ))
        }
    }
    let error = Client::connect(Short).unwrap().list().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("Keel's domain list is malformed: {VERSION} records in 10 bytes")
    );
}

#[test]
fn domain_commands_carry_the_id_in_args_0() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    {
        let mut client = connect(&mut keel);
        client.pause(id).unwrap();
        client.unpause(id).unwrap();
        client.reboot(id).unwrap();
        client.shutdown(id).unwrap();
    }
    let commands = &keel.commands()[1..];
    assert_eq!(
        commands,
        [Command::Pause, Command::Unpause, Command::Reboot, Command::Shutdown]
    );
    assert!(keel.calls[1..]
        .iter()
        .all(|call| call.args[0] == u64::from(id) && call.data_len == 0));
    // on_poweroff defaults to destroy in the fake's domains without config.
    assert!(!keel.domains.contains_key(&id));
}

#[test]
fn console_write_reports_what_keel_took() {
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    keel.input_room = 3;
    assert_eq!(connect(&mut keel).console_write(id, b"hello").unwrap(), 3);
    assert_eq!(keel.domain(id).typed, b"hel");
}

#[test]
fn versions_print_as_major_dot_minor() {
    assert_eq!(version_string(0x1_0000), "1.0");
    assert_eq!(version_string(0x2_0003), "2.3");
    assert_eq!(version_string((2 << 16) | 17), "2.17");
}

#[test]
fn pci_calls_pack_their_arguments_and_check_keels_records() {
    use keel_abi::mgmt::{pci_flags, PciAddress, PciFunction};

    let mut keel = FakeKeel::with_pci();
    let nic = PciAddress::parse("00:04.0").unwrap();
    {
        let mut client = connect(&mut keel);
        let functions = client.pci_list().unwrap();
        assert_eq!(functions.len(), 4);
        assert_eq!(functions[3].address.to_string(), "0000:00:1f.2");
        client.pci_assignable(nic, false, None).unwrap();
        client.pci_assignable(nic, true, Some(19)).unwrap();
    }
    let id = keel.add("web", DomainState::Building, 64);
    connect(&mut keel).pci_attach(id, nic, true).unwrap();
    let args: Vec<_> = keel.calls.iter().map(|call| (call.command, call.args)).collect();
    assert_eq!(
        args[2..5],
        [
            (Command::PciAssignable as u32, [0x20, 0, 0, 0, 0, 0]),
            (Command::PciAssignable as u32, [0x20, 1, 1 << 32 | 19, 0, 0, 0]),
            (Command::Hello as u32, [u64::from(VERSION), 0, 0, 0, 0, 0]),
        ]
    );
    assert_eq!(
        *args.last().unwrap(),
        (
            Command::PciAttach as u32,
            [u64::from(id), 0x20, pci_flags::UNCONFINED_DMA, 0, 0, 0]
        )
    );

    /// Answers every call with `count` records and `data`.
    struct Bogus(u64, Vec<u8>);
    impl Transport for Bogus {
        fn call(&mut self, request: &Request, _: &[u8]) -> Result<(Response, Vec<u8>)> {
            let values = if request.command == Command::Hello as u32 {
                [u64::from(VERSION), 0, 0, 0]
            } else {
                [self.0, 0, 0, 0]
            };
            let response = Response {
                status: 0,
                data_len: self.1.len() as u32,
                values,
            };
            Ok((response, self.1.clone()))
        }
    }
    let error = Client::connect(Bogus(2, vec![0; PciFunction::BYTES]))
        .unwrap()
        .pci_list()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Keel's PCI function list is malformed: 2 records in 24 bytes"
    );
    let mut record = vec![0; PciFunction::BYTES];
    record[2] = 1;
    let error = Client::connect(Bogus(1, record)).unwrap().pci_list().unwrap_err();
    assert_eq!(
        error.to_string(),
        "Keel's PCI function list is malformed: invalid address"
    );
}

#[test]
fn virtio_calls_pack_their_arguments_and_decode_the_answers() {
    use keel_abi::mgmt::virtio::{device_type, queue_shape, window};

    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Building, 64);
    let features = (1 << 32) | (1 << 9);
    {
        let mut client = connect(&mut keel);
        assert_eq!(
            client
                .virtio_attach(id, device_type::BLOCK, features, queue_shape(1, 256), &[7; 60])
                .unwrap(),
            0
        );
        assert_eq!(
            client
                .virtio_attach(id, device_type::NET, features, queue_shape(2, 256), &[])
                .unwrap(),
            1
        );
    }
    let attach = keel.calls[1];
    assert_eq!(
        (attach.command, attach.args, attach.data_len),
        (
            Command::VirtioAttach as u32,
            [u64::from(id), 2, features, (256 << 16) | 1, 0, 0],
            60
        )
    );
    keel.virtio(id, 0).state.status = 0x0f;
    let mut client = connect(&mut keel);
    let slot = client.window_map(id).unwrap();
    assert_eq!((slot.slot, slot.offset, slot.ram_bytes), (0, 0, 64 * MIB));
    let state = client.virtio_state(id, 0).unwrap();
    assert_eq!((state.device_type, state.num_queues, state.status), (2, 1, 0x0f));
    client.virtio_complete(id, 0, 1, 0, state.generation).unwrap();
    // A stale generation is Keel's BadState.
    let error = client.virtio_complete(id, 0, 1, 0, state.generation + 1).unwrap_err();
    assert!(is_status(&error, Status::BadState));
    // Flags Keel does not define never leave the tool.
    assert_eq!(
        client.virtio_complete(id, 0, 0, 1 << 5, 1).unwrap_err().to_string(),
        "unknown VirtioComplete flags 0x20"
    );
    assert_eq!(
        client
            .virtio_attach(id, device_type::BLOCK, features, 1, &[0; 257])
            .unwrap_err()
            .to_string(),
        "a virtio configuration of 257 bytes is larger than Keel takes (256)"
    );
    let other = keel.add("db", DomainState::Building, 32);
    let slot = connect(&mut keel).window_map(other).unwrap();
    assert_eq!((slot.slot, slot.offset), (1, window::SLOT_BYTES));
    let complete = keel
        .calls
        .iter()
        .find(|call| call.command == Command::VirtioComplete as u32)
        .unwrap();
    assert_eq!(complete.args, [u64::from(id), 0, 1, 0, 1, 0]);
}

#[test]
fn malformed_window_answers_and_older_keels_are_refused() {
    use keel_abi::mgmt::virtio::window;

    // An answer whose offset is not its slot's.
    struct Skewed(FakeKeel);
    impl Transport for Skewed {
        fn call(&mut self, request: &Request, input: &[u8]) -> Result<(Response, Vec<u8>)> {
            let (mut response, data) = self.0.call(request, input)?;
            if request.command == Command::WindowMap as u32 {
                response.values[1] += 4096;
            }
            Ok((response, data))
        }
    }
    let mut keel = FakeKeel::new();
    let id = keel.add("web", DomainState::Running, 64);
    let mut client = Client::connect(Skewed(keel)).unwrap();
    assert_eq!(
        client.window_map(id).unwrap_err().to_string(),
        "Keel's WindowMap answer is malformed: slot 0, offset 0x1000, 0x4000000 bytes"
    );
    assert_eq!(window::SLOTS, 16);

    let mut keel = FakeKeel::new();
    keel.version = (1 << 16) | 2;
    let error = connect(&mut keel).virtio_state(1, 0).unwrap_err();
    assert_eq!(
        error.to_string(),
        "Keel speaks management ABI 1.2, which has no virtio devices (1.3 added them): use the hypervisor built with \
         this tool"
    );
    assert_eq!(keel.commands(), [Command::Hello]);
}
