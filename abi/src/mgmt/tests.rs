use super::*;

fn name(text: &str) -> Name {
    Name::new(text).unwrap()
}

#[test]
fn request_and_response_round_trip() {
    let request = Request {
        command: Command::LoadImage as u32,
        data_len: 4096,
        args: [1, 2, 3, 4, 5, 6],
    };
    let mut bytes = [0; Request::BYTES];
    request.encode(&mut bytes).unwrap();
    assert_eq!(Request::decode(&bytes), Ok(request));

    let response = Response {
        status: Status::NoSuchDomain as u32,
        data_len: 12,
        values: [9, 8, 7, 6],
    };
    let mut bytes = [0; Response::BYTES];
    response.encode(&mut bytes).unwrap();
    assert_eq!(Response::decode(&bytes), Ok(response));
}

// The slots fit their places in shared memory (checked when compiling).
const _: () = assert!(layout::REQUEST + Request::BYTES <= layout::RESPONSE);
const _: () = assert!(layout::RESPONSE + Response::BYTES <= layout::DATA);
const _: () = assert!(layout::DATA_BYTES >= 1 << 20);

#[test]
fn a_data_length_past_the_data_area_is_refused() {
    let request = Request {
        data_len: layout::DATA_BYTES as u32 + 1,
        ..Request::default()
    };
    let mut bytes = [0; Request::BYTES];
    request.encode(&mut bytes).unwrap();
    assert_eq!(Request::decode(&bytes), Err(DecodeError::Invalid("data_len")));
}

#[test]
fn truncated_structures_are_refused_at_every_length() {
    let mut bytes = [0; DomainInfo::BYTES];
    let info = DomainInfo {
        id: 3,
        state: DomainState::Running,
        name: name("web"),
        memory_bytes: 64 << 20,
        vcpus: 1,
        cpu_time_ns: 5,
        exits: 6,
        exits_io: 1,
        exits_mmio: 2,
        exits_msr: 3,
        exits_halt: 4,
        exits_timer: 5,
        overhead_bytes: 4096,
        image_bytes: 8192,
    };
    assert_eq!(info.encode(&mut bytes), Ok(DomainInfo::BYTES));
    assert_eq!(DomainInfo::decode(&bytes), Ok(info));
    for len in 0..DomainInfo::BYTES {
        assert_eq!(
            DomainInfo::decode(&bytes[..len]),
            Err(DecodeError::Truncated),
            "length {len}"
        );
    }
    for len in 0..Request::BYTES {
        assert_eq!(Request::decode(&[0; 64][..len]), Err(DecodeError::Truncated));
    }
}

#[test]
fn create_round_trips_and_rejects_unknown_actions() {
    let create = CreateDomain {
        name: name("guest-1"),
        memory_mib: 128,
        vcpus: 1,
        on_poweroff: LifecycleAction::Destroy,
        on_reboot: LifecycleAction::Restart,
        on_crash: LifecycleAction::Preserve,
    };
    let mut bytes = [0; CreateDomain::BYTES];
    assert_eq!(create.encode(&mut bytes), Ok(CreateDomain::BYTES));
    assert_eq!(CreateDomain::decode(&bytes), Ok(create));
    bytes[NAME_MAX + 8] = 7;
    assert_eq!(CreateDomain::decode(&bytes), Err(DecodeError::Invalid("on_poweroff")));
}

#[test]
fn names_are_checked() {
    for bad in ["", "12", "a b", "a/b", "tab\t", "\u{1b}[2J", &"x".repeat(NAME_MAX + 1)] {
        assert_eq!(Name::new(bad), Err(DecodeError::Invalid("name")), "{bad:?}");
    }
    for good in ["web", "db-1", "x9", &"y".repeat(NAME_MAX), "gäst"] {
        assert_eq!(Name::new(good).unwrap().as_str(), good);
    }
}

#[test]
fn names_on_the_wire_are_nul_padded_utf8() {
    let mut bytes = [0u8; CreateDomain::BYTES];
    bytes[..3].copy_from_slice(b"abc");
    bytes[5] = b'x'; // bytes after the NUL
    assert_eq!(CreateDomain::decode(&bytes), Err(DecodeError::Invalid("name")));
    let mut bytes = [0u8; CreateDomain::BYTES];
    bytes[..2].copy_from_slice(&[0xc3, 0x28]); // invalid UTF-8
    assert_eq!(CreateDomain::decode(&bytes), Err(DecodeError::Invalid("name")));
}

#[test]
fn host_info_round_trips() {
    let info = HostInfo {
        version: VERSION,
        physical_cpus: 1,
        total_memory: 1 << 30,
        free_memory: 1 << 29,
        tsc_hz: 1_000_000_000,
        features: features::VMX | features::EPT,
        domains: 2,
        max_domain_memory_mib: 400,
    };
    let mut bytes = [0; HostInfo::BYTES];
    assert_eq!(info.encode(&mut bytes), Ok(HostInfo::BYTES));
    assert_eq!(HostInfo::decode(&bytes), Ok(info));
}

#[test]
fn numbers_map_to_commands_statuses_and_states_one_to_one() {
    for command in Command::ALL {
        assert_eq!(Command::from_u32(command as u32), Some(command));
    }
    assert_eq!(Command::from_u32(0), None);
    assert_eq!(Command::from_u32(999), None);
    for status in Status::ALL {
        assert_eq!(Status::from_u32(status as u32), Some(status));
        assert!(!status.describe().is_empty());
    }
    for state in DomainState::ALL {
        assert_eq!(DomainState::from_u32(state as u32), Some(state));
    }
    for action in LifecycleAction::ALL {
        assert_eq!(LifecycleAction::from_name(action.name()), Some(action));
    }
}

#[test]
fn encoding_into_a_short_buffer_fails_cleanly() {
    let mut short = [0; 10];
    assert_eq!(Request::default().encode(&mut short), Err(DecodeError::Truncated));
    assert_eq!(HostInfo::default().encode(&mut short), Err(DecodeError::Truncated));
}

fn pci(bus: u8, device: u8, function: u8) -> PciAddress {
    PciAddress::new(bus, device, function).unwrap()
}

#[test]
fn pci_addresses_pack_bus_device_and_function() {
    let address = pci(0x3a, 0x1f, 7);
    assert_eq!(address.raw(), 0x3a << 8 | 0x1f << 3 | 7);
    assert_eq!((address.bus(), address.device(), address.function()), (0x3a, 0x1f, 7));
    assert_eq!(PciAddress::from_raw(address.raw()), Some(address));
    assert_eq!(pci(0, 4, 0).raw(), 0x20);
    assert_eq!(PciAddress::from_raw(0xffff), Some(pci(0xff, 31, 7)));
    assert_eq!(PciAddress::from_raw(0x1_0000), None);
    assert_eq!(PciAddress::from_raw(u32::MAX), None);
    assert_eq!(PciAddress::new(0, 32, 0), None);
    assert_eq!(PciAddress::new(0, 0, 8), None);
    for raw in 0..=0xffff {
        let address = PciAddress::from_raw(raw).unwrap();
        assert_eq!(
            PciAddress::new(address.bus(), address.device(), address.function()),
            Some(address)
        );
    }
}

#[test]
fn pci_addresses_print_and_parse_in_linux_and_lspci_forms() {
    assert_eq!(pci(0, 4, 0).to_string(), "0000:00:04.0");
    assert_eq!(pci(0xab, 0x1f, 7).to_string(), "0000:ab:1f.7");
    for (text, address) in [
        ("0000:00:01.1", pci(0, 1, 1)),
        ("00:01.1", pci(0, 1, 1)),
        ("0000:AB:1F.7", pci(0xab, 0x1f, 7)),
        ("ab:1f.7", pci(0xab, 0x1f, 7)),
        ("0:0:4.0", pci(0, 4, 0)),
        ("ff:00.0", pci(0xff, 0, 0)),
    ] {
        assert_eq!(PciAddress::parse(text), Ok(address), "{text}");
    }
    for raw in (0..=0xffff).step_by(97) {
        let address = PciAddress::from_raw(raw).unwrap();
        assert_eq!(PciAddress::parse(&address.to_string()), Ok(address));
    }
    for text in [
        "",
        "00:04",
        "04.0",
        "00:04.",
        ":04.0",
        "00:04.0.0",
        "0000:00:00:04.0",
        "00000:00:04.0",
        "100:04.0",
        "00:004.0",
        "00:04.00",
        "0x0:04.0",
        "+0:04.0",
        "00:-4.0",
        " 00:04.0",
        "00:04.0\n",
        "zz:04.0",
        "00:04,0",
        "00:04.٣",
    ] {
        assert_eq!(PciAddress::parse(text), Err(PciAddressError::Syntax), "{text:?}");
    }
    assert_eq!(PciAddress::parse("0001:00:04.0"), Err(PciAddressError::Segment));
    assert_eq!(PciAddress::parse("00:20.0"), Err(PciAddressError::Device));
    assert_eq!(PciAddress::parse("0000:00:ff.0"), Err(PciAddressError::Device));
    assert_eq!(PciAddress::parse("00:04.8"), Err(PciAddressError::Function));
    for error in [
        PciAddressError::Syntax,
        PciAddressError::Segment,
        PciAddressError::Device,
        PciAddressError::Function,
    ] {
        assert!(!error.to_string().is_empty());
    }
}

fn pci_function() -> PciFunction {
    PciFunction {
        address: pci(0, 4, 0),
        vendor: 0x8086,
        device: 0x10d3,
        class: 0x02_00_00,
        flags: pci_function_flags::ASSIGNABLE | pci_function_flags::ATTACHED | pci_function_flags::DMA_CONFINED,
        owner: 3,
    }
}

#[test]
fn pci_function_records_round_trip_little_endian() {
    let function = pci_function();
    let mut bytes = [0xee; PciFunction::BYTES];
    assert_eq!(function.encode(&mut bytes), Ok(PciFunction::BYTES));
    assert_eq!(PciFunction::BYTES, 24);
    assert_eq!(
        bytes,
        [
            0x20, 0, 0, 0, // address
            0x86, 0x80, // vendor
            0xd3, 0x10, // device
            0, 0, 0x02, 0, // class
            7, 0, 0, 0, // flags
            3, 0, 0, 0, // owner
            0, 0, 0, 0, // reserved
        ]
    );
    assert_eq!(PciFunction::decode(&bytes), Ok(function));
    assert!(function.has(pci_function_flags::ATTACHED));
    assert!(!function.has(pci_function_flags::HOST_BRIDGE));
    for len in 0..PciFunction::BYTES {
        assert_eq!(
            PciFunction::decode(&bytes[..len]),
            Err(DecodeError::Truncated),
            "length {len}"
        );
    }
    assert_eq!(
        function.encode(&mut [0; PciFunction::BYTES - 1]),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn malformed_pci_function_records_are_refused() {
    let mut bytes = [0; PciFunction::BYTES];
    pci_function().encode(&mut bytes).unwrap();
    let mut bad = bytes;
    bad[2] = 1; // address bit 16
    assert_eq!(PciFunction::decode(&bad), Err(DecodeError::Invalid("address")));
    let mut bad = bytes;
    bad[11] = 1; // class bit 24
    assert_eq!(PciFunction::decode(&bad), Err(DecodeError::Invalid("class")));
    // A newer Keel's flag bits and reserved field are not errors.
    let mut newer = bytes;
    newer[15] = 0x80;
    newer[20] = 9;
    let decoded = PciFunction::decode(&newer).unwrap();
    assert_eq!(decoded.flags, pci_function().flags | 1 << 31);
    assert_eq!(decoded.owner, 3);
}

#[test]
fn abi_1_2_to_1_4_add_the_pci_and_virtio_commands_and_the_intx_gsi() {
    assert_eq!(VERSION, 1 << 16 | 4);
    assert_eq!(Command::from_u32(15), Some(Command::PciList));
    assert_eq!(Command::from_u32(16), Some(Command::PciAssignable));
    assert_eq!(pci_intx::decode(pci_intx::from_firmware()), Ok(None));
    assert_eq!(pci_intx::decode(pci_intx::at_gsi(19)), Ok(Some(19)));
    assert_eq!(pci_intx::decode(pci_intx::at_gsi(0)), Ok(Some(0)));
    assert_eq!(pci_intx::decode(19), Err(pci_intx::NotARoute), "a GSI without the flag");
    assert_eq!(
        pci_intx::decode(pci_intx::at_gsi(19) | 1 << 40),
        Err(pci_intx::NotARoute)
    );
    assert_eq!(Command::from_u32(17), Some(Command::PciAttach));
    assert_eq!(Command::from_u32(18), Some(Command::VirtioAttach));
    assert_eq!(Command::from_u32(19), Some(Command::WindowMap));
    assert_eq!(Command::from_u32(20), Some(Command::VirtioState));
    assert_eq!(Command::from_u32(21), Some(Command::VirtioComplete));
    assert_eq!(Command::from_u32(22), None);
    assert_eq!(Status::from_u32(12), Some(Status::Busy));
    assert_eq!(Status::from_u32(13), Some(Status::NotConfined));
    assert_eq!(Status::from_u32(14), Some(Status::NoSuchDevice));
    assert_eq!(Status::from_u32(15), None);
    assert_eq!(pci_flags::ALL, pci_flags::UNCONFINED_DMA);
    // Numbers are never reused: ALL lists each once.
    for (index, command) in Command::ALL.iter().enumerate() {
        assert_eq!(*command as usize, index + 1);
    }
    for (index, status) in Status::ALL.iter().enumerate() {
        assert_eq!(*status as usize, index);
    }
}
