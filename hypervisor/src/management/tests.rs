use super::*;
use crate::console_ring::ConsoleRing;
use keel_abi::mgmt::{layout, DomainState, LifecycleAction, Name, VERSION};

/// A domain table that records what it was asked.
#[derive(Default)]
struct Fake {
    created: Vec<CreateDomain>,
    chunks: Vec<(DomainId, ImageKind, u64, u64, usize)>,
    destroyed: Vec<DomainId>,
    console: Option<ConsoleRing>,
}

impl DomainControl for Fake {
    fn host_info(&self) -> HostInfo {
        HostInfo {
            version: VERSION,
            free_memory: 123,
            ..HostInfo::default()
        }
    }
    fn domains(&self) -> Vec<DomainInfo> {
        self.created
            .iter()
            .enumerate()
            .map(|(index, create)| DomainInfo {
                id: index as u32 + 1,
                state: DomainState::Running,
                name: create.name,
                memory_bytes: u64::from(create.memory_mib) << 20,
                vcpus: 1,
                cpu_time_ns: 0,
                exits: 0,
                exits_io: 0,
                exits_mmio: 0,
                exits_msr: 0,
                exits_halt: 0,
                exits_timer: 0,
                overhead_bytes: 0,
                image_bytes: 0,
            })
            .collect()
    }
    fn create(&mut self, request: &CreateDomain) -> Outcome<DomainId> {
        if self.created.iter().any(|c| c.name == request.name) {
            return Err(Failure::new(Status::NameInUse, "taken"));
        }
        self.created.push(*request);
        Ok(self.created.len() as u32)
    }
    fn load_image(&mut self, domain: DomainId, kind: ImageKind, offset: u64, total: u64, chunk: &[u8]) -> Outcome<()> {
        self.chunks.push((domain, kind, offset, total, chunk.len()));
        Ok(())
    }
    fn boot(&mut self, _domain: DomainId, _paused: bool) -> Outcome<()> {
        Ok(())
    }
    fn pause(&mut self, _domain: DomainId) -> Outcome<()> {
        Ok(())
    }
    fn unpause(&mut self, _domain: DomainId) -> Outcome<()> {
        Ok(())
    }
    fn shutdown(&mut self, _domain: DomainId) -> Outcome<()> {
        Ok(())
    }
    fn reboot(&mut self, _domain: DomainId) -> Outcome<()> {
        Ok(())
    }
    fn destroy(&mut self, domain: DomainId) -> Outcome<()> {
        if domain == 0 {
            return Err(Failure::new(Status::NotPermitted, "Dom0 cannot be destroyed"));
        }
        self.destroyed.push(domain);
        Ok(())
    }
    fn console_read(&mut self, domain: DomainId, cursor: u64, out: &mut [u8]) -> Outcome<ReadResult> {
        match (&self.console, domain) {
            (Some(ring), 1) => Ok(ring.read(cursor, out)),
            _ => Err(Failure::new(Status::NoSuchDomain, "no such domain")),
        }
    }
    fn console_write(&mut self, _domain: DomainId, bytes: &[u8]) -> Outcome<usize> {
        Ok(bytes.len().min(4))
    }
    fn dmesg(&mut self, cursor: u64, out: &mut [u8]) -> ReadResult {
        let mut ring = ConsoleRing::new(64);
        ring.extend(b"keel log");
        ring.read(cursor, out)
    }
}

fn call(fake: &mut Fake, command: u32, args: [u64; 6], input: &[u8]) -> (Response, Vec<u8>) {
    let request = Request {
        command,
        data_len: input.len() as u32,
        args,
    };
    let mut output = vec![0xaa; layout::DATA_BYTES];
    let response = dispatch(&request, input, &mut output, fake);
    output.truncate(response.data_len as usize);
    (response, output)
}

fn create_bytes(name: &str) -> Vec<u8> {
    let create = CreateDomain {
        name: Name::new(name).unwrap(),
        memory_mib: 64,
        vcpus: 1,
        on_poweroff: LifecycleAction::Destroy,
        on_reboot: LifecycleAction::Restart,
        on_crash: LifecycleAction::Preserve,
    };
    let mut bytes = vec![0; CreateDomain::BYTES];
    create.encode(&mut bytes).unwrap();
    bytes
}

#[test]
fn hello_accepts_the_same_major_and_refuses_others_with_a_message() {
    let mut fake = Fake::default();
    let (response, _) = call(
        &mut fake,
        Command::Hello as u32,
        [u64::from(VERSION), 0, 0, 0, 0, 0],
        &[],
    );
    assert_eq!(response.status, Status::Ok as u32);
    assert_eq!(response.values[0], u64::from(VERSION));
    let (response, message) = call(&mut fake, Command::Hello as u32, [2 << 16, 0, 0, 0, 0, 0], &[]);
    assert_eq!(response.status, Status::BadVersion as u32);
    assert!(String::from_utf8(message).unwrap().contains("2.0"));
    let (response, _) = call(&mut fake, Command::Hello as u32, [1 << 40, 0, 0, 0, 0, 0], &[]);
    assert_eq!(response.status, Status::BadVersion as u32);
}

#[test]
fn unknown_commands_get_a_clean_error() {
    let mut fake = Fake::default();
    for command in [0, 15, 999, u32::MAX] {
        let (response, message) = call(&mut fake, command, [0; 6], &[]);
        assert_eq!(response.status, Status::UnknownCommand as u32);
        assert!(!message.is_empty());
    }
}

#[test]
fn create_decodes_the_input_and_returns_the_id() {
    let mut fake = Fake::default();
    let (response, _) = call(&mut fake, Command::Create as u32, [0; 6], &create_bytes("web"));
    assert_eq!(response.status, Status::Ok as u32);
    assert_eq!(response.values[0], 1);
    let (response, _) = call(&mut fake, Command::Create as u32, [0; 6], &create_bytes("web"));
    assert_eq!(response.status, Status::NameInUse as u32);
    let (response, message) = call(&mut fake, Command::Create as u32, [0; 6], &[1, 2, 3]);
    assert_eq!(response.status, Status::InvalidArgument as u32);
    assert!(String::from_utf8(message).unwrap().contains("truncated"));
}

#[test]
fn list_encodes_one_record_per_domain() {
    let mut fake = Fake::default();
    call(&mut fake, Command::Create as u32, [0; 6], &create_bytes("a1"));
    call(&mut fake, Command::Create as u32, [0; 6], &create_bytes("b2"));
    let (response, output) = call(&mut fake, Command::List as u32, [0; 6], &[]);
    assert_eq!(response.values[0], 2);
    assert_eq!(output.len(), 2 * DomainInfo::BYTES);
    let second = DomainInfo::decode(&output[DomainInfo::BYTES..]).unwrap();
    assert_eq!(second.name.as_str(), "b2");
}

#[test]
fn image_chunks_are_checked_against_the_image_length_and_limits() {
    let mut fake = Fake::default();
    let chunk = [0u8; 100];
    let load = |fake: &mut Fake, args| call(fake, Command::LoadImage as u32, args, &chunk).0.status;
    assert_eq!(load(&mut fake, [1, 0, 0, 1000, 0, 0]), Status::Ok as u32);
    assert_eq!(load(&mut fake, [1, 0, 950, 1000, 0, 0]), Status::InvalidArgument as u32);
    assert_eq!(
        load(&mut fake, [1, 0, u64::MAX, 1000, 0, 0]),
        Status::InvalidArgument as u32
    );
    assert_eq!(load(&mut fake, [1, 9, 0, 1000, 0, 0]), Status::InvalidArgument as u32);
    assert_eq!(
        load(&mut fake, [1, 2, 0, 4096, 0, 0]),
        Status::InvalidArgument as u32,
        "cmdline limit"
    );
    assert_eq!(
        load(&mut fake, [1 << 33, 0, 0, 1000, 0, 0]),
        Status::InvalidArgument as u32
    );
    assert_eq!(fake.chunks, [(1, ImageKind::Kernel, 0, 1000, 100)]);
}

#[test]
fn console_reads_return_cursors_and_bytes() {
    let mut fake = Fake::default();
    let mut ring = ConsoleRing::new(8);
    ring.extend(b"0123456789");
    fake.console = Some(ring);
    let (response, output) = call(&mut fake, Command::ConsoleRead as u32, [1, 0, 0, 0, 0, 0], &[]);
    assert_eq!(response.status, Status::Ok as u32);
    assert_eq!((response.values[0], response.values[1]), (2, 10));
    assert_eq!(output, b"23456789");
    let (response, _) = call(&mut fake, Command::ConsoleRead as u32, [7, 0, 0, 0, 0, 0], &[]);
    assert_eq!(response.status, Status::NoSuchDomain as u32);
    let (response, _) = call(&mut fake, Command::ConsoleWrite as u32, [1, 0, 0, 0, 0, 0], b"abcdef");
    assert_eq!(response.values[0], 4);
    let (response, output) = call(&mut fake, Command::Dmesg as u32, [0, 5, 0, 0, 0, 0], &[]);
    assert_eq!(output, b"log");
    assert_eq!(response.values[1], 8);
}

#[test]
fn failures_carry_their_message_and_no_values() {
    let mut fake = Fake::default();
    let (response, message) = call(&mut fake, Command::Destroy as u32, [0; 6], &[]);
    assert_eq!(response.status, Status::NotPermitted as u32);
    assert_eq!(response.values, [0; 4]);
    assert_eq!(message, b"Dom0 cannot be destroyed");
}

#[test]
fn input_beyond_data_len_is_ignored() {
    let mut fake = Fake::default();
    let request = Request {
        command: Command::ConsoleWrite as u32,
        data_len: 2,
        args: [1, 0, 0, 0, 0, 0],
    };
    let mut output = vec![0; 64];
    let response = dispatch(&request, b"abcdef", &mut output, &mut fake);
    assert_eq!(response.values[0], 2);
}
