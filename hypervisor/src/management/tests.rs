use super::*;
use crate::console_ring::ConsoleRing;
use keel_abi::mgmt::{layout, pci_function_flags, DomainState, LifecycleAction, Name, VERSION};

/// A domain table that records what it was asked.
#[derive(Default)]
struct Fake {
    created: Vec<CreateDomain>,
    chunks: Vec<(DomainId, ImageKind, u64, u64, usize)>,
    destroyed: Vec<DomainId>,
    console: Option<ConsoleRing>,
    pci: Vec<PciFunction>,
    /// Every PciAttach that reached the domain table.
    attached: Vec<(DomainId, PciAddress, bool)>,
    /// Every VirtioAttach (type, features, queues, max size, config).
    virtio: Vec<(DomainId, u16, u64, u16, u16, Vec<u8>)>,
    completions: Vec<(DomainId, VirtioCompletion)>,
    /// The INTx GSI the last PciAssignable named.
    last_intx_gsi: Option<u32>,
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
    fn pci_functions(&self) -> Vec<PciFunction> {
        self.pci.clone()
    }
    fn pci_assignable(&mut self, address: PciAddress, assignable: bool, intx_gsi: Option<u32>) -> Outcome<()> {
        self.last_intx_gsi = intx_gsi;
        let function = self
            .pci
            .iter_mut()
            .find(|function| function.address == address)
            .ok_or_else(|| Failure::new(Status::NoSuchDevice, "no such function"))?;
        if function.has(pci_function_flags::ATTACHED) && !assignable {
            return Err(Failure::new(Status::BadState, "attached"));
        }
        function.flags = if assignable {
            function.flags | pci_function_flags::ASSIGNABLE
        } else {
            function.flags & !pci_function_flags::ASSIGNABLE
        };
        Ok(())
    }
    fn pci_attach(&mut self, domain: DomainId, address: PciAddress, unconfined_dma: bool) -> Outcome<()> {
        let function = self
            .pci
            .iter_mut()
            .find(|function| function.address == address)
            .ok_or_else(|| Failure::new(Status::NoSuchDevice, "no such function"))?;
        if !function.has(pci_function_flags::DMA_CONFINED) && !unconfined_dma {
            return Err(Failure::new(Status::NotConfined, "no IOMMU"));
        }
        function.flags |= pci_function_flags::ATTACHED;
        function.owner = domain;
        self.attached.push((domain, address, unconfined_dma));
        Ok(())
    }
    fn virtio_attach(&mut self, domain: DomainId, spec: &VirtioSpec<'_>) -> Outcome<usize> {
        self.virtio.push((
            domain,
            spec.device_type,
            spec.features,
            spec.num_queues,
            spec.queue_max_size,
            spec.config.to_vec(),
        ));
        Ok(self.virtio.len() - 1)
    }
    fn window_map(&mut self, domain: DomainId) -> Outcome<WindowGrant> {
        Ok(WindowGrant {
            slot: 2,
            offset: 2 * keel_abi::mgmt::virtio::window::SLOT_BYTES,
            bytes: u64::from(domain) << 20,
        })
    }
    fn virtio_state(&mut self, _domain: DomainId, device: usize) -> Outcome<VirtioDeviceState> {
        Ok(VirtioDeviceState {
            device_type: keel_abi::mgmt::virtio::device_type::BLOCK,
            num_queues: 1,
            generation: device as u32,
            ..Default::default()
        })
    }
    fn virtio_complete(&mut self, domain: DomainId, completion: &VirtioCompletion) -> Outcome<()> {
        self.completions.push((domain, *completion));
        Ok(())
    }
}

#[test]
fn virtio_attach_checks_the_shape_and_refuses_dom0() {
    use keel_abi::mgmt::virtio::{device_type, queue_shape};
    let mut fake = Fake::default();
    let attach = Command::VirtioAttach as u32;
    let (response, _) = call(
        &mut fake,
        attach,
        [3, u64::from(device_type::BLOCK), 1 << 32, queue_shape(1, 256), 0, 0],
        &[7; 60],
    );
    assert_eq!(response.status, Status::Ok as u32);
    assert_eq!(response.values[0], 0);
    assert_eq!(fake.virtio, [(3, device_type::BLOCK, 1 << 32, 1, 256, vec![7; 60])]);
    let refused = [
        ([0, 2, 0, queue_shape(1, 256), 0, 0], 0, Status::NotPermitted),
        ([3, 0, 0, queue_shape(1, 256), 0, 0], 0, Status::InvalidArgument),
        ([3, 99, 0, queue_shape(1, 256), 0, 0], 0, Status::InvalidArgument),
        ([3, 2, 0, queue_shape(0, 256), 0, 0], 0, Status::InvalidArgument),
        ([3, 2, 0, queue_shape(33, 256), 0, 0], 0, Status::InvalidArgument),
        ([3, 2, 0, queue_shape(1, 100), 0, 0], 0, Status::InvalidArgument),
        (
            [3, 2, 0, queue_shape(1, 256) | 1 << 32, 0, 0],
            0,
            Status::InvalidArgument,
        ),
        ([3, 2, 0, queue_shape(1, 256), 0, 0], 257, Status::InvalidArgument),
    ];
    for (args, config_len, status) in refused {
        let (response, message) = call(&mut fake, attach, args, &vec![0; config_len]);
        assert_eq!(response.status, status as u32, "{args:x?}");
        assert!(!message.is_empty());
    }
    assert_eq!(fake.virtio.len(), 1, "nothing refused reached the table");
}

#[test]
fn window_state_and_complete_reach_the_table_with_checked_arguments() {
    use keel_abi::mgmt::virtio::complete_flags;
    let mut fake = Fake::default();
    let (response, _) = call(&mut fake, Command::WindowMap as u32, [5, 0, 0, 0, 0, 0], &[]);
    assert_eq!(response.status, Status::Ok as u32);
    assert_eq!(response.values[..3], [2, 2 * (4 << 30), 5 << 20]);
    let (response, _) = call(&mut fake, Command::WindowMap as u32, [0; 6], &[]);
    assert_eq!(response.status, Status::NotPermitted as u32);

    let (response, bytes) = call(&mut fake, Command::VirtioState as u32, [5, 3, 0, 0, 0, 0], &[]);
    assert_eq!(response.status, Status::Ok as u32);
    let state = VirtioDeviceState::decode(&bytes).unwrap();
    assert_eq!((state.num_queues, state.generation), (1, 3));
    let (response, _) = call(&mut fake, Command::VirtioState as u32, [5, 16, 0, 0, 0, 0], &[]);
    assert_eq!(response.status, Status::InvalidArgument as u32, "device index past 15");

    let complete = Command::VirtioComplete as u32;
    let (response, _) = call(&mut fake, complete, [5, 1, 0b11, complete_flags::ALL, 9, 0], &[]);
    assert_eq!(response.status, Status::Ok as u32);
    assert_eq!(
        fake.completions,
        [(
            5,
            VirtioCompletion {
                device: 1,
                queues: 0b11,
                reset_done: true,
                needs_reset: true,
                generation: 9,
            }
        )]
    );
    for args in [
        [5, 1, 1 << 32, 0, 9, 0],
        [5, 1, 1, 4, 9, 0],
        [5, 1, 1, 0, 1 << 32, 0],
        [5, 99, 1, 0, 9, 0],
    ] {
        let (response, _) = call(&mut fake, complete, args, &[]);
        assert_eq!(response.status, Status::InvalidArgument as u32, "{args:x?}");
    }
    assert_eq!(fake.completions.len(), 1);
}

/// A domain table that leaves the PCI methods to the trait's defaults (what
/// Keel does until passthrough is built).
#[derive(Default)]
struct WithoutPci(Fake);

impl DomainControl for WithoutPci {
    fn host_info(&self) -> HostInfo {
        self.0.host_info()
    }
    fn domains(&self) -> Vec<DomainInfo> {
        self.0.domains()
    }
    fn create(&mut self, request: &CreateDomain) -> Outcome<DomainId> {
        self.0.create(request)
    }
    fn load_image(&mut self, domain: DomainId, kind: ImageKind, offset: u64, total: u64, chunk: &[u8]) -> Outcome<()> {
        self.0.load_image(domain, kind, offset, total, chunk)
    }
    fn boot(&mut self, domain: DomainId, paused: bool) -> Outcome<()> {
        self.0.boot(domain, paused)
    }
    fn pause(&mut self, domain: DomainId) -> Outcome<()> {
        self.0.pause(domain)
    }
    fn unpause(&mut self, domain: DomainId) -> Outcome<()> {
        self.0.unpause(domain)
    }
    fn shutdown(&mut self, domain: DomainId) -> Outcome<()> {
        self.0.shutdown(domain)
    }
    fn reboot(&mut self, domain: DomainId) -> Outcome<()> {
        self.0.reboot(domain)
    }
    fn destroy(&mut self, domain: DomainId) -> Outcome<()> {
        self.0.destroy(domain)
    }
    fn console_read(&mut self, domain: DomainId, cursor: u64, out: &mut [u8]) -> Outcome<ReadResult> {
        self.0.console_read(domain, cursor, out)
    }
    fn console_write(&mut self, domain: DomainId, bytes: &[u8]) -> Outcome<usize> {
        self.0.console_write(domain, bytes)
    }
    fn dmesg(&mut self, cursor: u64, out: &mut [u8]) -> ReadResult {
        self.0.dmesg(cursor, out)
    }
}

fn call(fake: &mut impl DomainControl, command: u32, args: [u64; 6], input: &[u8]) -> (Response, Vec<u8>) {
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
    for command in [0, 22, 999, u32::MAX] {
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

fn address(bus: u8, device: u8, function: u8) -> PciAddress {
    PciAddress::new(bus, device, function).unwrap()
}

/// A host bridge, a NIC behind an IOMMU and one that is not.
fn with_pci() -> Fake {
    let function = |address, class, flags| PciFunction {
        address,
        vendor: 0x8086,
        device: 0x1234,
        class,
        flags,
        owner: 0,
    };
    Fake {
        pci: vec![
            function(address(0, 0, 0), 0x06_00_00, pci_function_flags::HOST_BRIDGE),
            function(address(0, 3, 0), 0x02_00_00, pci_function_flags::DMA_CONFINED),
            function(address(0, 4, 1), 0x02_00_00, 0),
        ],
        ..Fake::default()
    }
}

fn status(response: &Response) -> Option<Status> {
    Status::from_u32(response.status)
}

#[test]
fn pci_list_encodes_one_record_per_function() {
    let mut fake = with_pci();
    let (response, output) = call(&mut fake, Command::PciList as u32, [0; 6], &[]);
    assert_eq!(status(&response), Some(Status::Ok));
    assert_eq!(response.values[0], 3);
    assert_eq!(output.len(), 3 * PciFunction::BYTES);
    let records: Vec<_> = output
        .chunks(PciFunction::BYTES)
        .map(|record| PciFunction::decode(record).unwrap())
        .collect();
    assert_eq!(records, fake.pci);

    // No functions: no records.
    let (response, output) = call(&mut Fake::default(), Command::PciList as u32, [0; 6], &[]);
    assert_eq!(
        (status(&response), response.values[0], output.len()),
        (Some(Status::Ok), 0, 0)
    );
}

#[test]
fn pci_list_that_does_not_fit_the_data_area_is_an_error() {
    let mut fake = with_pci();
    let request = Request {
        command: Command::PciList as u32,
        data_len: 0,
        args: [0; 6],
    };
    let mut output = vec![0; 2 * PciFunction::BYTES + 3];
    let response = dispatch(&request, &[], &mut output, &mut fake);
    assert_eq!(status(&response), Some(Status::InvalidArgument));
    assert_eq!(response.values, [0; 4]);
    let message = &output[..response.data_len as usize];
    assert_eq!(message, &b"too many PCI functions for the data area"[..message.len()]);
}

#[test]
fn pci_assignable_decodes_the_address_and_the_direction() {
    let mut fake = with_pci();
    let nic = address(0, 4, 1);
    let (response, _) = call(
        &mut fake,
        Command::PciAssignable as u32,
        [u64::from(nic.raw()), 1, 0, 0, 0, 0],
        &[],
    );
    assert_eq!(status(&response), Some(Status::Ok));
    assert!(fake.pci[2].has(pci_function_flags::ASSIGNABLE));
    assert_eq!(fake.last_intx_gsi, None, "args[2] = 0: the firmware's Interrupt Line");
    let (response, _) = call(&mut fake, Command::PciAssignable as u32, [0x21, 0, 0, 0, 0, 0], &[]);
    assert_eq!(status(&response), Some(Status::Ok));
    assert!(!fake.pci[2].has(pci_function_flags::ASSIGNABLE));
    let at_gsi_19 = keel_abi::mgmt::pci_intx::at_gsi(19);
    let (response, _) = call(
        &mut fake,
        Command::PciAssignable as u32,
        [0x21, 1, at_gsi_19, 0, 0, 0],
        &[],
    );
    assert_eq!(status(&response), Some(Status::Ok));
    assert_eq!(fake.last_intx_gsi, Some(19));
    let (response, _) = call(&mut fake, Command::PciAssignable as u32, [0x21, 0, 0, 0, 0, 0], &[]);
    assert_eq!(status(&response), Some(Status::Ok));

    // The control's refusals come through.
    let (response, message) = call(&mut fake, Command::PciAssignable as u32, [0x28, 1, 0, 0, 0, 0], &[]);
    assert_eq!(status(&response), Some(Status::NoSuchDevice));
    assert_eq!(message, b"no such function");

    // Malformed arguments never reach it.
    for (args, field) in [
        ([0x1_0000, 1, 0, 0, 0, 0], "args[0]"),
        ([1 << 40, 1, 0, 0, 0, 0], "args[0]"),
        ([0x21, 2, 0, 0, 0, 0], "args[1]"),
        ([0x21, u64::MAX, 0, 0, 0, 0], "args[1]"),
        ([0x21, 1, 19, 0, 0, 0], "args[2]"),
        ([0x21, 1, 1 << 40 | 1 << 32, 0, 0, 0], "args[2]"),
    ] {
        let before = fake.pci.clone();
        let (response, message) = call(&mut fake, Command::PciAssignable as u32, args, &[]);
        assert_eq!(status(&response), Some(Status::InvalidArgument), "{args:?}");
        assert!(String::from_utf8(message).unwrap().starts_with(field), "{args:?}");
        assert_eq!(fake.pci, before);
    }
}

#[test]
fn pci_attach_passes_the_domain_address_and_unconfined_flag() {
    let mut fake = with_pci();
    let attach = |fake: &mut Fake, args| call(fake, Command::PciAttach as u32, args, &[]);
    let (response, _) = attach(&mut fake, [1, 0x18, 0, 0, 0, 0]);
    assert_eq!(status(&response), Some(Status::Ok));
    let (response, message) = attach(&mut fake, [2, 0x21, 0, 0, 0, 0]);
    assert_eq!(status(&response), Some(Status::NotConfined));
    assert_eq!(message, b"no IOMMU");
    let (response, _) = attach(&mut fake, [2, 0x21, pci_flags::UNCONFINED_DMA, 0, 0, 0]);
    assert_eq!(status(&response), Some(Status::Ok));
    assert_eq!(
        fake.attached,
        [(1, address(0, 3, 0), false), (2, address(0, 4, 1), true)]
    );
    assert_eq!(
        (fake.pci[2].owner, fake.pci[2].has(pci_function_flags::ATTACHED)),
        (2, true)
    );
}

#[test]
fn pci_attach_refuses_malformed_arguments_and_dom0_before_the_control() {
    let mut fake = with_pci();
    for (args, expected, field) in [
        ([1 << 32, 0x18, 0, 0, 0, 0], Status::InvalidArgument, "args[0]"),
        ([1, 0x1_0000, 0, 0, 0, 0], Status::InvalidArgument, "args[1]"),
        ([1, u64::MAX, 0, 0, 0, 0], Status::InvalidArgument, "args[1]"),
        ([1, 0x18, 2, 0, 0, 0], Status::InvalidArgument, "args[2]"),
        ([1, 0x18, 1 << 63 | 1, 0, 0, 0], Status::InvalidArgument, "args[2]"),
        (
            [0, 0x18, 0, 0, 0, 0],
            Status::NotPermitted,
            "devices are attached to DomUs",
        ),
    ] {
        let (response, message) = call(&mut fake, Command::PciAttach as u32, args, &[]);
        assert_eq!(status(&response), Some(expected), "{args:?}");
        assert_eq!(response.values, [0; 4]);
        let message = String::from_utf8(message).unwrap();
        assert!(message.starts_with(field), "{args:?}: {message}");
    }
    assert!(fake.attached.is_empty());
}

#[test]
fn without_pci_support_the_commands_say_so() {
    let mut control = WithoutPci::default();
    let (response, output) = call(&mut control, Command::PciList as u32, [0; 6], &[]);
    assert_eq!(
        (status(&response), response.values[0], output.len()),
        (Some(Status::Ok), 0, 0)
    );
    for (command, args) in [
        (Command::PciAssignable, [0x20, 1, 0, 0, 0, 0]),
        (Command::PciAttach, [1, 0x20, 1, 0, 0, 0]),
    ] {
        let (response, message) = call(&mut control, command as u32, args, &[]);
        assert_eq!(status(&response), Some(Status::Unsupported), "{command:?}");
        assert_eq!(message, b"PCI assignment is not built yet");
    }
    // The rest of the table works as before.
    let (response, _) = call(&mut control, Command::Create as u32, [0; 6], &create_bytes("web"));
    assert_eq!(status(&response), Some(Status::Ok));
}
