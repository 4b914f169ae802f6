//! The management ABI's decoders and the hypervisor's dispatcher.
//!
//! The management ABI (`keel_abi::mgmt`), both ends: every decoder on the
//! raw input, then the input as a sequence of calls from Dom0 that go
//! through the hypervisor's `management::dispatch` (input format:
//! `keel_fuzz::mgmt`) against a fake domain table.
//!
//! Beyond "no panic": whatever decodes encodes back to the same bytes
//! (reserved fields aside) and decodes again to the same value; encoding
//! into too small a buffer fails cleanly; a response is a known status,
//! fits the data area it was given, carries no values on failure, and what
//! it says it wrote is what the domain table holds; image chunks that reach
//! the domain table are within the image and the image within its limit.
#![no_main]

use keel_abi::mgmt::{
    pci_function_flags, pci_intx, Command, CreateDomain, DecodeError, DomainId, DomainInfo, DomainState, HostInfo,
    ImageKind, LifecycleAction, Name, PciAddress, PciFunction, Request, Response, Status, VirtioDeviceState, DOM0,
    NAME_MAX, VERSION,
};
use keel_fuzz::mgmt::calls;
use keel_hypervisor::console_ring::{ConsoleRing, ReadResult};
use keel_hypervisor::management::{dispatch, DomainControl, Failure, Outcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    decoders(data);
    let mut table = Table::new();
    for call in calls(data) {
        let Ok(request) = Request::decode(call.slot) else {
            continue;
        };
        let mut output = vec![0xA5; call.output_len];
        let response = dispatch(&request, call.input, &mut output, &mut table);
        // What dispatch reads: the request's data_len bytes of the input.
        let input = call.input.get(..request.data_len as usize).unwrap_or(call.input);
        check_response(&request, input, &response, &output, &mut table);
    }
});

/// `decode`, then `encode` to exactly `BYTES`, then `decode` again.
macro_rules! round_trip {
    ($ty:ty, $bytes:expr, $reserved:expr) => {{
        let bytes: &[u8] = $bytes;
        match <$ty>::decode(bytes) {
            Ok(value) => {
                assert!(
                    bytes.len() >= <$ty>::BYTES,
                    "{} decoded from {} bytes",
                    stringify!($ty),
                    bytes.len()
                );
                let mut encoded = [0u8; <$ty>::BYTES];
                let _ = value.encode(&mut encoded).expect("encodes into BYTES");
                let reserved: std::ops::Range<usize> = $reserved;
                let mut original = bytes[..<$ty>::BYTES].to_vec();
                original[reserved.clone()].fill(0);
                encoded[reserved].fill(0);
                assert_eq!(encoded[..], original[..], "{} does not encode back", stringify!($ty));
                assert_eq!(<$ty>::decode(&encoded), Ok(value));
                let mut short = [0u8; <$ty>::BYTES - 1];
                assert_eq!(value.encode(&mut short).map(|_| ()), Err(DecodeError::Truncated));
            }
            Err(DecodeError::Truncated) => {}
            Err(DecodeError::Invalid(field)) => assert!(!field.is_empty()),
        }
    }};
}

fn decoders(data: &[u8]) {
    round_trip!(Request, data, 0..0);
    round_trip!(Response, data, 0..0);
    round_trip!(CreateDomain, data, 0..0);
    // DomainInfo's u32 after `vcpus` is reserved (written as zero).
    round_trip!(DomainInfo, data, 52..56);
    round_trip!(HostInfo, data, 0..0);
    // PciFunction's last u32 is reserved.
    round_trip!(PciFunction, data, 20..24);
    if let Ok(request) = Request::decode(data) {
        assert!(request.data_len as usize <= keel_abi::mgmt::layout::DATA_BYTES);
    }
    // Variable length: a header and `num_queues` queue records.
    if let Ok(state) = VirtioDeviceState::decode(data) {
        let mut encoded = vec![0u8; VirtioDeviceState::bytes(state.num_queues)];
        assert_eq!(state.encode(&mut encoded), Ok(encoded.len()));
        assert_eq!(VirtioDeviceState::decode(&encoded), Ok(state));
        assert!(encoded.len() <= data.len());
    }

    let word = |at: usize| {
        data.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let value = word(0);
    if let Some(command) = Command::from_u32(value) {
        assert_eq!(command as u32, value);
    }
    if let Some(status) = Status::from_u32(value) {
        assert_eq!(status as u32, value);
        assert!(!status.describe().is_empty());
    }
    if let Some(state) = DomainState::from_u32(value) {
        assert_eq!(state as u32, value);
        assert!(!state.name().is_empty());
    }
    if let Some(action) = LifecycleAction::from_u32(value) {
        assert_eq!(LifecycleAction::from_name(action.name()), Some(action));
    }
    if let Some(kind) = ImageKind::from_u64(u64::from(value)) {
        assert_eq!(kind as u64, u64::from(value));
    }
    if let Some(address) = PciAddress::from_raw(value) {
        assert_eq!(address.raw(), value);
        let parts = (address.bus(), address.device(), address.function());
        assert_eq!(PciAddress::new(parts.0, parts.1, parts.2), Some(address));
        assert_eq!(PciAddress::parse(&address.to_string()), Ok(address));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(address) = PciAddress::parse(text) {
            // Whatever form was accepted, the canonical one names the same function.
            assert_eq!(PciAddress::parse(&address.to_string()), Ok(address));
            assert!(text.len() <= "0000:00:00.0".len());
        }
        if let Ok(name) = Name::new(text) {
            assert_eq!(name.as_str(), text);
            assert!(!text.is_empty() && text.len() <= NAME_MAX);
        }
        if let Some(action) = LifecycleAction::from_name(text) {
            assert_eq!(action.name(), text);
        }
    }
}

const MAX_DOMAINS: usize = 64;
const CONSOLE_BYTES: usize = 64;

/// A domain table that accepts what a real one would and checks that
/// dispatch only passes on what it validated.
struct Table {
    domains: Vec<(CreateDomain, ConsoleRing)>,
    log: ConsoleRing,
    pci: Vec<PciFunction>,
    /// The INTx GSI the last PciAssignable that reached the table named.
    last_intx_gsi: Option<u32>,
}

fn pci_function(bus: u8, device: u8, class: u32, flags: u32) -> PciFunction {
    PciFunction {
        address: PciAddress::new(bus, device, 0).expect("a valid address"),
        vendor: 0x8086,
        device: 0x1234,
        class,
        flags,
        owner: 0,
    }
}

impl Table {
    fn new() -> Self {
        let mut log = ConsoleRing::new(32);
        log.extend(b"keel: a log line that wraps around the ring\n");
        Self {
            domains: Vec::new(),
            log,
            pci: vec![
                pci_function(0, 0, 0x06_00_00, pci_function_flags::HOST_BRIDGE),
                pci_function(0, 4, 0x02_00_00, pci_function_flags::DMA_CONFINED),
                pci_function(1, 0, 0x01_08_02, 0),
            ],
            last_intx_gsi: None,
        }
    }

    /// Domain ids are 1-based indices.
    fn domain(&mut self, domain: DomainId) -> Outcome<&mut (CreateDomain, ConsoleRing)> {
        let index = (domain as usize).checked_sub(1);
        index
            .and_then(|index| self.domains.get_mut(index))
            .ok_or_else(|| Failure::new(Status::NoSuchDomain, "no such domain"))
    }

    fn info(&self, index: usize) -> DomainInfo {
        let (create, console) = &self.domains[index];
        DomainInfo {
            id: index as u32 + 1,
            state: DomainState::ALL[index % DomainState::ALL.len()],
            name: create.name,
            memory_bytes: u64::from(create.memory_mib) << 20,
            vcpus: create.vcpus,
            cpu_time_ns: console.end(),
            exits: u64::MAX,
            exits_io: 1,
            exits_mmio: 2,
            exits_msr: 3,
            exits_halt: 4,
            exits_timer: 5,
            overhead_bytes: 6,
            image_bytes: 7,
        }
    }
}

impl DomainControl for Table {
    fn host_info(&self) -> HostInfo {
        HostInfo {
            version: VERSION,
            physical_cpus: 1,
            total_memory: 1 << 30,
            free_memory: 1 << 29,
            tsc_hz: 2_000_000_000,
            features: 0x3F,
            domains: self.domains.len() as u32,
            max_domain_memory_mib: 512,
        }
    }

    fn domains(&self) -> Vec<DomainInfo> {
        (0..self.domains.len()).map(|index| self.info(index)).collect()
    }

    fn create(&mut self, request: &CreateDomain) -> Outcome<DomainId> {
        if self.domains.iter().any(|(domain, _)| domain.name == request.name) {
            return Err(Failure::new(Status::NameInUse, "taken"));
        }
        if self.domains.len() >= MAX_DOMAINS {
            return Err(Failure::new(Status::TooManyDomains, "full"));
        }
        self.domains.push((*request, ConsoleRing::new(CONSOLE_BYTES)));
        Ok(self.domains.len() as DomainId)
    }

    fn load_image(&mut self, domain: DomainId, kind: ImageKind, offset: u64, total: u64, chunk: &[u8]) -> Outcome<()> {
        assert!(total <= kind.max_bytes(), "image of {total} bytes passed on");
        let end = offset.checked_add(chunk.len() as u64).expect("chunk end overflows");
        assert!(end <= total, "chunk [{offset}, {end}) past the image's {total} bytes");
        self.domain(domain).map(|_| ())
    }

    fn boot(&mut self, domain: DomainId, _paused: bool) -> Outcome<()> {
        self.domain(domain).map(|_| ())
    }

    fn pause(&mut self, domain: DomainId) -> Outcome<()> {
        self.domain(domain).map(|_| ())
    }

    fn unpause(&mut self, domain: DomainId) -> Outcome<()> {
        self.domain(domain).map(|_| ())
    }

    fn shutdown(&mut self, domain: DomainId) -> Outcome<()> {
        self.domain(domain).map(|_| ())
    }

    fn reboot(&mut self, domain: DomainId) -> Outcome<()> {
        self.domain(domain).map(|_| ())
    }

    fn destroy(&mut self, domain: DomainId) -> Outcome<()> {
        if domain == 0 {
            return Err(Failure::new(Status::NotPermitted, "Dom0 cannot be destroyed"));
        }
        self.domain(domain).map(|_| ())
    }

    fn console_read(&mut self, domain: DomainId, cursor: u64, out: &mut [u8]) -> Outcome<ReadResult> {
        Ok(self.domain(domain)?.1.read(cursor, out))
    }

    fn console_write(&mut self, domain: DomainId, bytes: &[u8]) -> Outcome<usize> {
        // The guest's UART takes at most a FIFO's worth at a time.
        let taken = &bytes[..bytes.len().min(16)];
        self.domain(domain)?.1.extend(taken);
        Ok(taken.len())
    }

    fn dmesg(&mut self, cursor: u64, out: &mut [u8]) -> ReadResult {
        self.log.read(cursor, out)
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
        if function.has(pci_function_flags::HOST_BRIDGE) {
            return Err(Failure::new(Status::NotPermitted, "a host bridge"));
        }
        if !assignable && function.has(pci_function_flags::ATTACHED) {
            return Err(Failure::new(Status::BadState, "attached"));
        }
        function.flags &= !pci_function_flags::ASSIGNABLE;
        if assignable {
            function.flags |= pci_function_flags::ASSIGNABLE;
        }
        Ok(())
    }

    fn pci_attach(&mut self, domain: DomainId, address: PciAddress, unconfined_dma: bool) -> Outcome<()> {
        assert_ne!(domain, DOM0, "dispatch passed Dom0 on");
        self.domain(domain)?;
        let function = self
            .pci
            .iter_mut()
            .find(|function| function.address == address)
            .ok_or_else(|| Failure::new(Status::NoSuchDevice, "no such function"))?;
        if !function.has(pci_function_flags::ASSIGNABLE) {
            return Err(Failure::new(Status::NotPermitted, "not assignable"));
        }
        if function.has(pci_function_flags::ATTACHED) {
            return Err(Failure::new(Status::Busy, "attached"));
        }
        if !function.has(pci_function_flags::DMA_CONFINED) && !unconfined_dma {
            return Err(Failure::new(Status::NotConfined, "no IOMMU"));
        }
        function.flags |= pci_function_flags::ATTACHED;
        function.owner = domain;
        Ok(())
    }
}

fn check_response(request: &Request, input: &[u8], response: &Response, output: &[u8], table: &mut Table) {
    let status = Status::from_u32(response.status).expect("a known status");
    let len = response.data_len as usize;
    assert!(
        len <= output.len(),
        "{len} bytes answered in a {}-byte data area",
        output.len()
    );
    if status != Status::Ok {
        assert_eq!(response.values, [0; 4]);
        return;
    }
    let command = Command::from_u32(request.command).expect("Ok for an unknown command");
    let written = &output[..len];
    match command {
        Command::Hello => assert_eq!(response.values[0], u64::from(VERSION)),
        Command::Info => assert_eq!(HostInfo::decode(written), Ok(table.host_info())),
        Command::List => {
            assert_eq!(response.values[0], table.domains.len() as u64);
            assert_eq!(len, table.domains.len() * DomainInfo::BYTES);
            for (index, record) in written.chunks(DomainInfo::BYTES).enumerate() {
                assert_eq!(DomainInfo::decode(record), Ok(table.info(index)));
            }
        }
        Command::Create => {
            assert_eq!(response.values[0], table.domains.len() as u64, "not the newest domain");
            let newest = table.domains.last().expect("a domain was created").0;
            assert_eq!(CreateDomain::decode(input), Ok(newest));
        }
        Command::ConsoleRead | Command::Dmesg => {
            let [start, end, ..] = response.values;
            assert!(
                start <= end && (end - start) as usize == len,
                "cursors {start}..{end} for {len} bytes"
            );
            let mut again = vec![0; len];
            let read = if command == Command::Dmesg {
                table.log.read(start, &mut again)
            } else {
                let ring = &table.domain(request.args[0] as DomainId).expect("read from it").1;
                ring.read(start, &mut again)
            };
            assert_eq!(read, ReadResult { start, end });
            assert_eq!(again, written, "the bytes answered are not the ring's");
        }
        Command::ConsoleWrite => {
            assert!(response.values[0] as usize <= input.len());
            assert_eq!(len, 0);
        }
        Command::PciList => {
            assert_eq!(response.values[0], table.pci.len() as u64);
            assert_eq!(len, table.pci.len() * PciFunction::BYTES);
            for (record, function) in written.chunks(PciFunction::BYTES).zip(&table.pci) {
                assert_eq!(PciFunction::decode(record).as_ref(), Ok(function));
            }
        }
        Command::PciAssignable | Command::PciAttach => {
            assert_eq!(len, 0);
            if command == Command::PciAssignable {
                // Only a well-formed route reaches the table, as it was sent.
                assert_eq!(pci_intx::decode(request.args[2]), Ok(table.last_intx_gsi));
            }
            let address = request.args[usize::from(command == Command::PciAttach)];
            assert!(table
                .pci
                .iter()
                .any(|function| u64::from(function.address.raw()) == address));
        }
        Command::LoadImage
        | Command::Boot
        | Command::Pause
        | Command::Unpause
        | Command::Shutdown
        | Command::Reboot
        | Command::Destroy => {
            assert_eq!(len, 0);
            assert!(
                request.args[0] <= u64::from(u32::MAX),
                "a domain id past u32 was accepted"
            );
        }
        // Commands added to the ABI later: the generic checks above.
        #[allow(unreachable_patterns)]
        _ => {}
    }
}
