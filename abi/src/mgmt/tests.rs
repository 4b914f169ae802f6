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

#[test]
fn slots_fit_their_places_in_shared_memory() {
    assert!(layout::REQUEST + Request::BYTES <= layout::RESPONSE);
    assert!(layout::RESPONSE + Response::BYTES <= layout::DATA);
    assert!(layout::DATA_BYTES >= 1 << 20);
}

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
        assert_eq!(DomainInfo::decode(&bytes[..len]), Err(DecodeError::Truncated), "length {len}");
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
