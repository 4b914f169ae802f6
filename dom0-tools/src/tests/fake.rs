//! A small Keel in memory: the management protocol's semantics (domains,
//! image staging, console and log rings) as the ABI documents them, strict
//! where Keel must be strict, so tests see what a real call sequence does.

use std::collections::{BTreeMap, VecDeque};

use anyhow::{ensure, Result};
use keel_abi::mgmt::virtio::{complete_flags, device_type, window, MAX_CONFIG_BYTES, MAX_DEVICES, MAX_QUEUES};
use keel_abi::mgmt::{
    layout, pci_flags, pci_function_flags, regs, Command, CreateDomain, DomainId, DomainInfo, DomainState, HostInfo,
    ImageKind, LifecycleAction, Name, PciAddress, PciFunction, Request, Response, Status, VirtioDeviceState, DOM0,
    SHARED_BYTES, VERSION,
};

use crate::backend::runfiles::{ConsoleRecord, DiskRecord, NicRecord, ReadyInfo};
use crate::backend::supervisor::{BackendDevices, BackendStatus, Backends};
use crate::config::Disk;
use crate::transport::{Bars, Transport};
use crate::vif::MacText;

pub const MIB: u64 = 1 << 20;

#[derive(Debug, Default, Clone)]
pub struct Staged {
    pub total: u64,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct FakeDomain {
    pub info: DomainInfo,
    pub config: Option<CreateDomain>,
    /// Indexed by `ImageKind as usize`.
    pub staged: [Option<Staged>; 3],
    pub paused_at_boot: Option<bool>,
    /// Everything the guest printed since it started.
    pub console: Vec<u8>,
    /// Printed one piece per ConsoleRead, before answering: output that
    /// arrives while a console is attached.
    pub script: VecDeque<Vec<u8>>,
    /// Bytes typed into the console.
    pub typed: Vec<u8>,
    /// Destroyed after this many more ConsoleReads (the guest powers off).
    pub vanish_after_reads: Option<usize>,
    /// Its virtio devices, by index.
    pub virtio: Vec<FakeVirtio>,
}

/// A virtio device as VirtioAttach made it; tests drive `state` as a
/// driver would.
#[derive(Debug, Clone)]
pub struct FakeVirtio {
    pub features: u64,
    pub queue_max_size: u16,
    pub config: Vec<u8>,
    pub state: VirtioDeviceState,
}

/// One VirtioComplete as Keel saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Complete {
    pub id: DomainId,
    pub device: usize,
    pub queue_mask: u32,
    pub flags: u64,
    pub generation: u32,
}

/// One LoadImage chunk as Keel saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub id: DomainId,
    pub kind: ImageKind,
    pub offset: u64,
    pub total: u64,
    pub len: usize,
}

struct Failure {
    command: Command,
    /// Calls of `command` to let through first.
    skip: usize,
    status: Status,
    message: String,
}

pub struct FakeKeel {
    pub version: u32,
    pub total_memory: u64,
    pub domains: BTreeMap<DomainId, FakeDomain>,
    pub next_id: DomainId,
    /// Console and log rings keep this many bytes.
    pub ring_bytes: usize,
    /// At most this many bytes per ConsoleRead/Dmesg answer.
    pub read_limit: usize,
    /// A ConsoleWrite takes at most this many bytes.
    pub input_room: usize,
    pub dmesg: Vec<u8>,
    /// Every request, in order.
    pub calls: Vec<Request>,
    pub loads: Vec<Load>,
    /// The host's PCI functions.
    pub pci: Vec<PciFunction>,
    /// Window slots of mapped domains.
    pub windows: BTreeMap<DomainId, u64>,
    /// Every VirtioComplete that Keel accepted, in order.
    pub completes: Vec<Complete>,
    failures: Vec<Failure>,
}

/// A host PCI function as PciList reports it, not attached.
pub fn pci_function(address: &str, vendor: u16, device: u16, class: u32, flags: u32) -> PciFunction {
    PciFunction {
        address: PciAddress::parse(address).unwrap(),
        vendor,
        device,
        class,
        flags,
        owner: 0,
    }
}

fn name(text: &str) -> Name {
    Name::new(text).unwrap()
}

pub fn domain_info(id: DomainId, text: &str, state: DomainState, memory_mib: u64) -> DomainInfo {
    DomainInfo {
        id,
        state,
        name: name(text),
        memory_bytes: memory_mib * MIB,
        vcpus: 1,
        cpu_time_ns: 0,
        exits: 0,
        exits_io: 0,
        exits_mmio: 0,
        exits_msr: 0,
        exits_halt: 0,
        exits_timer: 0,
        overhead_bytes: 2 * MIB,
        image_bytes: 0,
    }
}

impl FakeDomain {
    fn new(info: DomainInfo) -> Self {
        Self {
            info,
            config: None,
            staged: [None, None, None],
            paused_at_boot: None,
            console: Vec::new(),
            script: VecDeque::new(),
            typed: Vec::new(),
            vanish_after_reads: None,
            virtio: Vec::new(),
        }
    }

    pub fn image(&self, kind: ImageKind) -> Option<&[u8]> {
        self.staged[kind as usize]
            .as_ref()
            .map(|staged| staged.bytes.as_slice())
    }
}

type Answer = Result<(Response, Vec<u8>), (Status, String)>;

fn ok(values: [u64; 4], data: Vec<u8>) -> Answer {
    Ok((
        Response {
            status: Status::Ok as u32,
            data_len: data.len() as u32,
            values,
        },
        data,
    ))
}

fn refuse<T>(status: Status, message: impl Into<String>) -> Result<T, (Status, String)> {
    Err((status, message.into()))
}

/// The part of a ring still held from `cursor`, limited to `limit` bytes.
fn ring(all: &[u8], cursor: u64, held: usize, limit: usize) -> Answer {
    let total = all.len() as u64;
    let oldest = total.saturating_sub(held as u64);
    let start = cursor.clamp(oldest, total);
    let end = total.min(start + limit as u64);
    ok([start, end, 0, 0], all[start as usize..end as usize].to_vec())
}

impl FakeKeel {
    /// Keel with Dom0 (id 0) and 4 GiB.
    pub fn new() -> Self {
        let mut domains = BTreeMap::new();
        domains.insert(
            0,
            FakeDomain::new(domain_info(0, "Domain-0", DomainState::Running, 256)),
        );
        Self {
            version: VERSION,
            total_memory: 4096 * MIB,
            domains,
            next_id: 1,
            ring_bytes: 16 << 10,
            read_limit: layout::DATA_BYTES,
            input_room: 16,
            dmesg: Vec::new(),
            calls: Vec::new(),
            loads: Vec::new(),
            pci: Vec::new(),
            windows: BTreeMap::new(),
            completes: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Keel with the PCI functions of a small host: the host bridge
    /// (00:00.0), a NIC behind an IOMMU (00:03.0, assignable), a NIC no
    /// IOMMU covers (00:04.0, assignable) and a disk controller
    /// (00:1f.2, not assignable).
    pub fn with_pci() -> Self {
        let mut keel = Self::new();
        keel.pci = vec![
            pci_function("00:00.0", 0x8086, 0x29c0, 0x06_00_00, pci_function_flags::HOST_BRIDGE),
            pci_function(
                "00:03.0",
                0x8086,
                0x10d3,
                0x02_00_00,
                pci_function_flags::ASSIGNABLE | pci_function_flags::DMA_CONFINED,
            ),
            pci_function("00:04.0", 0x1af4, 0x1000, 0x02_00_00, pci_function_flags::ASSIGNABLE),
            pci_function("00:1f.2", 0x8086, 0x2922, 0x01_06_01, pci_function_flags::DMA_CONFINED),
        ];
        keel
    }

    pub fn pci_function(&mut self, address: &str) -> &mut PciFunction {
        let address = PciAddress::parse(address).unwrap();
        self.pci
            .iter_mut()
            .find(|function| function.address == address)
            .expect("fake PCI function")
    }

    /// The PciAttach calls as (domain, address, flags).
    pub fn attaches(&self) -> Vec<(u64, String, u64)> {
        self.calls
            .iter()
            .filter(|call| call.command == Command::PciAttach as u32)
            .map(|call| {
                let address = PciAddress::from_raw(call.args[1] as u32).unwrap();
                (call.args[0], address.to_string(), call.args[2])
            })
            .collect()
    }

    /// Device `device` of domain `id`.
    pub fn virtio(&mut self, id: DomainId, device: usize) -> &mut FakeVirtio {
        &mut self.domain(id).virtio[device]
    }

    /// Adds a running domain; returns its id.
    pub fn add(&mut self, text: &str, state: DomainState, memory_mib: u64) -> DomainId {
        let id = self.next_id;
        self.next_id += 1;
        self.domains
            .insert(id, FakeDomain::new(domain_info(id, text, state, memory_mib)));
        id
    }

    pub fn domain(&mut self, id: DomainId) -> &mut FakeDomain {
        self.domains.get_mut(&id).expect("fake domain")
    }

    /// The `skip + 1`-th call of `command` from now fails with `status`.
    pub fn fail(&mut self, command: Command, skip: usize, status: Status, message: &str) {
        self.failures.push(Failure {
            command,
            skip,
            status,
            message: message.to_string(),
        });
    }

    pub fn commands(&self) -> Vec<Command> {
        self.calls
            .iter()
            .map(|call| Command::from_u32(call.command).unwrap())
            .collect()
    }

    pub fn count(&self, command: Command) -> usize {
        self.commands().into_iter().filter(|&seen| seen == command).count()
    }

    fn used_memory(&self) -> u64 {
        self.domains
            .values()
            .map(|domain| domain.info.memory_bytes + domain.info.overhead_bytes)
            .sum()
    }

    fn injected(&mut self, command: Command) -> Option<(Status, String)> {
        let at = self.failures.iter().position(|failure| failure.command == command)?;
        if self.failures[at].skip > 0 {
            self.failures[at].skip -= 1;
            return None;
        }
        let failure = self.failures.remove(at);
        Some((failure.status, failure.message))
    }

    /// Executes one request the way Keel does.
    pub fn handle(&mut self, request: &Request, input: &[u8]) -> (Response, Vec<u8>) {
        self.calls.push(*request);
        let answer = match Command::from_u32(request.command) {
            None => refuse(Status::UnknownCommand, format!("command {}", request.command)),
            Some(command) => match self.injected(command) {
                Some(failure) => Err(failure),
                None => self.execute(command, request.args, input),
            },
        };
        // A domain that went away (destroyed, powered off) returns its
        // devices: reset, still assignable.
        for function in &mut self.pci {
            if function.has(pci_function_flags::ATTACHED) && !self.domains.contains_key(&function.owner) {
                function.flags &= !pci_function_flags::ATTACHED;
                function.owner = 0;
            }
        }
        let domains = &self.domains;
        self.windows.retain(|id, _| domains.contains_key(id));
        answer.unwrap_or_else(|(status, message)| {
            let data = message.into_bytes();
            (
                Response {
                    status: status as u32,
                    data_len: data.len() as u32,
                    values: [0; 4],
                },
                data,
            )
        })
    }

    fn live(&mut self, arg: u64) -> Result<&mut FakeDomain, (Status, String)> {
        match u32::try_from(arg).ok().and_then(|id| self.domains.get_mut(&id)) {
            Some(domain) => Ok(domain),
            None => refuse(Status::NoSuchDomain, format!("no domain {arg}")),
        }
    }

    fn execute(&mut self, command: Command, args: [u64; 6], input: &[u8]) -> Answer {
        let id = args[0];
        match command {
            Command::Hello => {
                if args[0] >> 16 != u64::from(self.version >> 16) {
                    return refuse(Status::BadVersion, format!("caller speaks {:#x}", args[0]));
                }
                ok([u64::from(self.version), 0, 0, 0], Vec::new())
            }
            Command::Info => {
                let free = self.total_memory - self.used_memory();
                let host = HostInfo {
                    version: self.version,
                    physical_cpus: 4,
                    total_memory: self.total_memory,
                    free_memory: free,
                    tsc_hz: 2_995_204_000,
                    features: 0b1_0111,
                    domains: self.domains.len() as u32,
                    max_domain_memory_mib: (free / MIB) as u32 - 4,
                };
                let mut data = vec![0; HostInfo::BYTES];
                host.encode(&mut data).unwrap();
                ok([0; 4], data)
            }
            Command::List => {
                let mut data = vec![0; self.domains.len() * DomainInfo::BYTES];
                for (domain, record) in self.domains.values().zip(data.chunks_mut(DomainInfo::BYTES)) {
                    domain.info.encode(record).unwrap();
                }
                ok([self.domains.len() as u64, 0, 0, 0], data)
            }
            Command::Create => {
                let Ok(create) = CreateDomain::decode(input) else {
                    return refuse(Status::InvalidArgument, "CreateDomain record");
                };
                if self.domains.values().any(|domain| domain.info.name == create.name) {
                    return refuse(Status::NameInUse, format!("`{}` exists", create.name.as_str()));
                }
                if create.vcpus != 1 {
                    return refuse(Status::Unsupported, "more than one vCPU");
                }
                let memory = u64::from(create.memory_mib) * MIB;
                if memory + 2 * MIB > self.total_memory - self.used_memory() {
                    return refuse(Status::OutOfMemory, format!("{} MiB asked", create.memory_mib));
                }
                let id = self.add(
                    create.name.as_str(),
                    DomainState::Building,
                    u64::from(create.memory_mib),
                );
                self.domain(id).config = Some(create);
                ok([u64::from(id), 0, 0, 0], Vec::new())
            }
            Command::LoadImage => {
                let domain = self.live(id)?;
                if domain.info.state != DomainState::Building {
                    return refuse(Status::BadState, "not building");
                }
                let Some(kind) = ImageKind::from_u64(args[1]) else {
                    return refuse(Status::InvalidArgument, "image kind");
                };
                let (offset, total) = (args[2], args[3]);
                if total > kind.max_bytes() {
                    return refuse(Status::InvalidArgument, "image too large");
                }
                let slot = &mut domain.staged[kind as usize];
                if offset == 0 {
                    *slot = Some(Staged {
                        total,
                        bytes: Vec::new(),
                    });
                }
                // Chunks in order, each agreeing on the total, none past it.
                let Some(staged) = slot.as_mut().filter(|staged| staged.total == total) else {
                    return refuse(Status::InvalidArgument, "total length changed");
                };
                if offset != staged.bytes.len() as u64 || offset + input.len() as u64 > total {
                    return refuse(Status::InvalidArgument, "chunk offset");
                }
                staged.bytes.extend_from_slice(input);
                self.loads.push(Load {
                    id: id as u32,
                    kind,
                    offset,
                    total,
                    len: input.len(),
                });
                ok([0; 4], Vec::new())
            }
            Command::Boot => {
                let domain = self.live(id)?;
                if domain.info.state != DomainState::Building {
                    return refuse(Status::BadState, "already booted");
                }
                let complete =
                    |staged: &Option<Staged>| staged.as_ref().is_some_and(|s| s.bytes.len() as u64 == s.total);
                if !complete(&domain.staged[ImageKind::Kernel as usize]) {
                    return refuse(Status::BadImage, "no kernel staged");
                }
                let paused = args[1] == 1;
                domain.paused_at_boot = Some(paused);
                domain.info.state = if paused {
                    DomainState::Paused
                } else {
                    DomainState::Running
                };
                ok([0; 4], Vec::new())
            }
            Command::Pause | Command::Unpause | Command::Shutdown | Command::Reboot | Command::Destroy => {
                if id == 0 && command != Command::Shutdown {
                    return refuse(Status::NotPermitted, "Dom0");
                }
                let domain = self.live(id)?;
                let state = domain.info.state;
                let active = matches!(state, DomainState::Running | DomainState::Blocked);
                match command {
                    Command::Pause if active => domain.info.state = DomainState::Paused,
                    Command::Unpause if state == DomainState::Paused => domain.info.state = DomainState::Running,
                    Command::Shutdown | Command::Reboot if active || state == DomainState::Paused => {
                        if command == Command::Shutdown {
                            let action = domain
                                .config
                                .map_or(LifecycleAction::Destroy, |config| config.on_poweroff);
                            domain.info.state = DomainState::Shutdown;
                            if action == LifecycleAction::Destroy {
                                self.domains.remove(&(id as u32));
                            }
                        } else {
                            domain.info.state = DomainState::Running;
                        }
                    }
                    Command::Destroy => drop(self.domains.remove(&(id as u32))),
                    _ => return refuse(Status::BadState, state.name()),
                }
                ok([0; 4], Vec::new())
            }
            Command::ConsoleRead => {
                let (held, limit) = (self.ring_bytes, self.read_limit);
                let domain = self.live(id)?;
                if let Some(piece) = domain.script.pop_front() {
                    domain.console.extend_from_slice(&piece);
                }
                let answer = ring(&domain.console, args[1], held, limit);
                if let Some(left) = domain.vanish_after_reads.as_mut() {
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        self.domains.remove(&(id as u32));
                    }
                }
                answer
            }
            Command::ConsoleWrite => {
                let room = self.input_room;
                let domain = self.live(id)?;
                let taken = input.len().min(room);
                domain.typed.extend_from_slice(&input[..taken]);
                ok([taken as u64, 0, 0, 0], Vec::new())
            }
            Command::Dmesg => ring(&self.dmesg, args[1], self.ring_bytes, self.read_limit),
            Command::PciList => {
                let mut data = vec![0; self.pci.len() * PciFunction::BYTES];
                for (function, record) in self.pci.iter().zip(data.chunks_mut(PciFunction::BYTES)) {
                    function.encode(record).unwrap();
                }
                ok([self.pci.len() as u64, 0, 0, 0], data)
            }
            Command::PciAssignable => {
                let assignable = match args[1] {
                    0 => false,
                    1 => true,
                    _ => return refuse(Status::InvalidArgument, "args[1]"),
                };
                let function = self.pci_at(args[0])?;
                if function.has(pci_function_flags::HOST_BRIDGE) {
                    return refuse(Status::NotPermitted, "a host bridge is never assignable");
                }
                if !assignable && function.has(pci_function_flags::ATTACHED) {
                    return refuse(Status::BadState, format!("attached to domain {}", function.owner));
                }
                if assignable {
                    function.flags |= pci_function_flags::ASSIGNABLE;
                } else {
                    function.flags &= !pci_function_flags::ASSIGNABLE;
                }
                ok([0; 4], Vec::new())
            }
            Command::PciAttach => {
                let flags = args[2];
                if flags & !pci_flags::ALL != 0 {
                    return refuse(Status::InvalidArgument, "args[2]");
                }
                if id == u64::from(DOM0) {
                    return refuse(Status::NotPermitted, "Dom0");
                }
                if self.live(id)?.info.state != DomainState::Building {
                    return refuse(Status::BadState, "already booted");
                }
                let function = self.pci_at(args[1])?;
                if !function.has(pci_function_flags::ASSIGNABLE) {
                    return refuse(Status::NotPermitted, format!("{} is not assignable", function.address));
                }
                if function.has(pci_function_flags::ATTACHED) {
                    return refuse(Status::Busy, format!("domain {} has it", function.owner));
                }
                if !function.has(pci_function_flags::DMA_CONFINED) && flags & pci_flags::UNCONFINED_DMA == 0 {
                    return refuse(Status::NotConfined, format!("{} is behind no IOMMU", function.address));
                }
                function.flags |= pci_function_flags::ATTACHED;
                function.owner = id as DomainId;
                ok([0; 4], Vec::new())
            }
            Command::VirtioAttach | Command::WindowMap | Command::VirtioState | Command::VirtioComplete => {
                self.virtio_command(command, args, input)
            }
        }
    }

    fn virtio_command(&mut self, command: Command, args: [u64; 6], input: &[u8]) -> Answer {
        let id = args[0];
        if id == u64::from(DOM0) {
            return refuse(Status::NotPermitted, "Dom0");
        }
        match command {
            Command::VirtioAttach => {
                let domain = self.live(id)?;
                if domain.info.state != DomainState::Building {
                    return refuse(Status::BadState, "already booted");
                }
                let Some(kind) = u16::try_from(args[1])
                    .ok()
                    .filter(|kind| device_type::ALL.contains(kind))
                else {
                    return refuse(Status::InvalidArgument, "device type");
                };
                let (features, num_queues, queue_max_size) = (args[2], args[3] as u16, (args[3] >> 16) as u16);
                if features & (1 << 32) == 0 {
                    return refuse(Status::InvalidArgument, "VIRTIO_F_VERSION_1 not offered");
                }
                if num_queues == 0 || usize::from(num_queues) > MAX_QUEUES || args[3] >> 32 != 0 {
                    return refuse(Status::InvalidArgument, "queue count");
                }
                if !queue_max_size.is_power_of_two() {
                    return refuse(Status::InvalidArgument, "queue size");
                }
                if input.len() > MAX_CONFIG_BYTES {
                    return refuse(Status::InvalidArgument, "configuration too large");
                }
                if domain.virtio.len() >= MAX_DEVICES {
                    return refuse(Status::InvalidArgument, "too many virtio devices");
                }
                domain.virtio.push(FakeVirtio {
                    features,
                    queue_max_size,
                    config: input.to_vec(),
                    state: VirtioDeviceState {
                        device_type: kind,
                        num_queues,
                        generation: 1,
                        ..Default::default()
                    },
                });
                ok([domain.virtio.len() as u64 - 1, 0, 0, 0], Vec::new())
            }
            Command::WindowMap => {
                let ram = self.live(id)?.info.memory_bytes;
                let id = id as DomainId;
                let slot = match self.windows.get(&id) {
                    Some(&slot) => slot,
                    None => {
                        let Some(slot) = (0..window::SLOTS).find(|slot| !self.windows.values().any(|s| s == slot))
                        else {
                            return refuse(Status::Busy, "every window slot is in use");
                        };
                        self.windows.insert(id, slot);
                        slot
                    }
                };
                ok([slot, slot * window::SLOT_BYTES, ram, 0], Vec::new())
            }
            Command::VirtioState => {
                let domain = self.live(id)?;
                let Some(device) = usize::try_from(args[1]).ok().and_then(|at| domain.virtio.get(at)) else {
                    return refuse(Status::InvalidArgument, "no such virtio device");
                };
                let mut data = vec![0; VirtioDeviceState::bytes(device.state.num_queues)];
                device.state.encode(&mut data).unwrap();
                ok([0; 4], data)
            }
            Command::VirtioComplete => {
                let domain = self.live(id)?;
                let Some(device) = usize::try_from(args[1]).ok().and_then(|at| domain.virtio.get_mut(at)) else {
                    return refuse(Status::InvalidArgument, "no such virtio device");
                };
                let (mask, flags) = (args[2], args[3]);
                if flags & !complete_flags::ALL != 0 || mask >> device.state.num_queues != 0 {
                    return refuse(Status::InvalidArgument, "flags or queue mask");
                }
                if args[4] != u64::from(device.state.generation) {
                    return refuse(Status::BadState, "stale generation");
                }
                if flags & complete_flags::RESET_DONE != 0 {
                    if !device.state.reset_pending {
                        return refuse(Status::BadState, "no reset pending");
                    }
                    device.state.reset_pending = false;
                    device.state.status = 0;
                }
                if flags & complete_flags::NEEDS_RESET != 0 {
                    device.state.status |= 0x40;
                }
                self.completes.push(Complete {
                    id: id as DomainId,
                    device: args[1] as usize,
                    queue_mask: mask as u32,
                    flags,
                    generation: args[4] as u32,
                });
                ok([0; 4], Vec::new())
            }
            _ => unreachable!("not a virtio command"),
        }
    }

    fn pci_at(&mut self, arg: u64) -> Result<&mut PciFunction, (Status, String)> {
        let Some(address) = u32::try_from(arg).ok().and_then(PciAddress::from_raw) else {
            return refuse(Status::InvalidArgument, "PCI address");
        };
        match self.pci.iter_mut().find(|function| function.address == address) {
            Some(function) => Ok(function),
            None => refuse(Status::NoSuchDevice, format!("no function {address}")),
        }
    }
}

/// Goes through the wire format both ways, as the device path does.
impl Transport for FakeKeel {
    fn call(&mut self, request: &Request, input: &[u8]) -> Result<(Response, Vec<u8>)> {
        ensure!(
            request.data_len as usize == input.len(),
            "data_len {} for {} bytes",
            request.data_len,
            input.len()
        );
        let mut slot = [0; Request::BYTES];
        request.encode(&mut slot).unwrap();
        let request = Request::decode(&slot).map_err(|error| anyhow::anyhow!("{error}"))?;
        let (response, data) = self.handle(&request, input);
        let mut slot = [0; Response::BYTES];
        response.encode(&mut slot).unwrap();
        Ok((Response::decode(&slot).unwrap(), data))
    }
}

/// The fake behind fake BARs: shared memory and registers, answering the
/// doorbell by reading the request out of the shared page.
pub struct FakeBars {
    pub keel: FakeKeel,
    pub magic: u32,
    pub shared_size: u32,
    pub shared: Vec<u8>,
    pub doorbells: usize,
    /// False: the doorbell is ignored (a device that does not answer).
    pub answers: bool,
}

impl FakeBars {
    pub fn new(keel: FakeKeel) -> Self {
        Self {
            keel,
            magic: regs::MAGIC_VALUE,
            shared_size: SHARED_BYTES as u32,
            shared: vec![0xa5; SHARED_BYTES as usize],
            doorbells: 0,
            answers: true,
        }
    }
}

impl Bars for FakeBars {
    fn read_reg(&self, offset: u64) -> u32 {
        match offset {
            regs::MAGIC => self.magic,
            regs::VERSION => self.keel.version,
            regs::SHARED_SIZE => self.shared_size,
            _ => 0,
        }
    }

    fn write_reg(&mut self, offset: u64, value: u32) {
        if offset != regs::DOORBELL || value != regs::DOORBELL_RING || !self.answers {
            return;
        }
        self.doorbells += 1;
        let request = Request::decode(&self.shared[layout::REQUEST..layout::REQUEST + Request::BYTES]).unwrap();
        let input = self.shared[layout::DATA..layout::DATA + request.data_len as usize].to_vec();
        let (response, data) = self.keel.handle(&request, &input);
        response
            .encode(&mut self.shared[layout::RESPONSE..layout::RESPONSE + Response::BYTES])
            .unwrap();
        self.shared[layout::DATA..layout::DATA + data.len()].copy_from_slice(&data);
    }

    fn write_shared(&mut self, offset: usize, bytes: &[u8]) {
        self.shared[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    fn read_shared(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.shared[offset..offset + out.len()]);
    }
}

/// What a [`FakeBackends`] was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendEvent {
    Start(DomainId, Vec<Disk>),
    Stop(DomainId),
}

/// Backends without processes: records starts and stops; a started one
/// "runs" (pid 4242) with a ready file listing its disks.
#[derive(Default)]
pub struct FakeBackends {
    pub events: Vec<BackendEvent>,
    pub running: BTreeMap<DomainId, BackendStatus>,
    /// The next start fails with this message.
    pub fail_start: Option<String>,
    /// Every stop fails with this message.
    pub fail_stop: Option<String>,
    /// What each domain's backend was last started with (until stopped).
    pub started: BTreeMap<DomainId, BackendDevices>,
}

pub const FAKE_BACKEND_PID: i32 = 4242;

impl Backends for FakeBackends {
    fn start(&mut self, id: DomainId, devices: &BackendDevices) -> Result<()> {
        let disks = &devices.disks;
        self.events.push(BackendEvent::Start(id, disks.to_vec()));
        self.started.insert(id, devices.clone());
        if let Some(message) = self.fail_start.take() {
            anyhow::bail!(message);
        }
        let ready = ReadyInfo {
            domain: id,
            pid: FAKE_BACKEND_PID as u32,
            slot: 0,
            notifications: "uio".into(),
            disks: disks
                .iter()
                .enumerate()
                .map(|(index, disk)| DiskRecord {
                    index,
                    path: disk.path.display().to_string(),
                    read_only: disk.read_only,
                    sectors: 8,
                })
                .collect(),
            nics: devices
                .nics
                .iter()
                .enumerate()
                .map(|(position, nic)| NicRecord {
                    index: disks.len() + position,
                    mac: MacText(&nic.mac).to_string(),
                    mtu: nic.mtu,
                })
                .collect(),
            console: devices.console.then(|| ConsoleRecord {
                index: devices.count() - 1,
                socket: format!("/run/keel/console-{id}.sock"),
            }),
        };
        self.running.insert(
            id,
            BackendStatus {
                running: Some(FAKE_BACKEND_PID),
                ready: Some(ready),
            },
        );
        Ok(())
    }

    fn restart(&mut self, id: DomainId) -> Result<()> {
        if self.running.get(&id).is_some_and(|status| status.running.is_some()) {
            anyhow::bail!("a backend (pid {FAKE_BACKEND_PID}) already serves domain {id}");
        }
        let Some(devices) = self.started.get(&id).cloned() else {
            anyhow::bail!("no backend was started for domain {id}: nothing to restart");
        };
        self.start(id, &devices)
    }

    fn stop(&mut self, id: DomainId) -> Result<bool> {
        self.events.push(BackendEvent::Stop(id));
        if let Some(message) = &self.fail_stop {
            anyhow::bail!(message.clone());
        }
        self.started.remove(&id);
        Ok(self.running.remove(&id).is_some())
    }

    fn status(&mut self, id: DomainId) -> Result<BackendStatus> {
        Ok(self.running.get(&id).cloned().unwrap_or(BackendStatus {
            running: None,
            ready: None,
        }))
    }
}
