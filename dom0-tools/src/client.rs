//! Typed management calls over a [`Transport`]: argument packing, output
//! decoding, and statuses turned into errors ([`CallError`]).

use std::fmt;

use anyhow::{anyhow, bail, ensure, Result};
use keel_abi::mgmt::{
    layout, pci_flags, Command, CreateDomain, DomainId, DomainInfo, HostInfo, ImageKind, PciAddress, PciFunction,
    Request, Response, Status, VERSION,
};

use crate::transport::Transport;

/// A call Keel refused: the status and the message it left in the data area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub command: Command,
    pub status: Status,
    pub message: String,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.status.describe())?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for CallError {}

/// Whether `error` is Keel saying `status` (e.g. the domain went away).
pub fn is_status(error: &anyhow::Error, status: Status) -> bool {
    error
        .downcast_ref::<CallError>()
        .is_some_and(|call| call.status == status)
}

/// "1.0" for an ABI version word.
pub fn version_string(version: u32) -> String {
    format!("{}.{}", version >> 16, version & 0xffff)
}

/// Bytes of a console or log ring: `start`/`end` are cursors (bytes since
/// the ring began); `start` past the requested cursor means bytes were lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingChunk {
    pub start: u64,
    pub end: u64,
    pub bytes: Vec<u8>,
}

impl RingChunk {
    /// Bytes between `cursor` and what the ring still held.
    pub fn lost_since(&self, cursor: u64) -> u64 {
        self.start.saturating_sub(cursor)
    }
}

/// Keel's message: UTF-8 from the data area, control characters removed so
/// a message cannot drive the terminal.
fn message_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches(['\0', '\n', ' '])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

pub struct Client<T> {
    transport: T,
    keel_version: u32,
}

impl<T: Transport> Client<T> {
    /// Says Hello (every process must before anything else) and checks that
    /// Keel speaks a compatible ABI.
    pub fn connect(transport: T) -> Result<Self> {
        let mut client = Self {
            transport,
            keel_version: 0,
        };
        client.keel_version = client.hello()?;
        Ok(client)
    }

    pub fn keel_version(&self) -> u32 {
        self.keel_version
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// One call; anything but [`Status::Ok`] becomes a [`CallError`].
    fn call(&mut self, command: Command, args: [u64; 6], input: &[u8]) -> Result<(Response, Vec<u8>)> {
        ensure!(
            input.len() <= layout::DATA_BYTES,
            "{command:?} input larger than the data area"
        );
        let request = Request {
            command: command as u32,
            data_len: input.len() as u32,
            args,
        };
        let (response, data) = self.transport.call(&request, input)?;
        let status = Status::from_u32(response.status)
            .ok_or_else(|| anyhow!("Keel answered {command:?} with unknown status {}", response.status))?;
        if status != Status::Ok {
            return Err(CallError {
                command,
                status,
                message: message_text(&data),
            }
            .into());
        }
        Ok((response, data))
    }

    fn call_domain(&mut self, command: Command, id: DomainId) -> Result<()> {
        self.call(command, [u64::from(id), 0, 0, 0, 0, 0], &[])?;
        Ok(())
    }

    /// Version negotiation; returns Keel's version.
    pub fn hello(&mut self) -> Result<u32> {
        let ours = version_string(VERSION);
        let (response, _) = match self.call(Command::Hello, [u64::from(VERSION), 0, 0, 0, 0, 0], &[]) {
            Ok(answer) => answer,
            Err(error) => {
                let Some(call) = error
                    .downcast_ref::<CallError>()
                    .filter(|call| call.status == Status::BadVersion)
                else {
                    return Err(error);
                };
                // Keel's answer carries no version on BadVersion; the
                // VERSION register has it. Without it, Keel's message must do.
                let text = match self.transport.advertised_version().filter(|&version| version != 0) {
                    Some(theirs) => format!(
                        "Keel speaks management ABI {}, this keel tool speaks {ours}",
                        version_string(theirs)
                    ),
                    None if call.message.is_empty() => format!("Keel refused management ABI {ours}"),
                    None => format!("Keel refused management ABI {ours} ({})", call.message),
                };
                bail!("{text}: use the tools built with this hypervisor");
            }
        };
        let theirs = response.values[0] as u32;
        if theirs >> 16 != VERSION >> 16 {
            bail!(
                "Keel speaks management ABI {}, this keel tool speaks {ours}: use the tools built with this hypervisor",
                version_string(theirs)
            );
        }
        Ok(theirs)
    }

    pub fn info(&mut self) -> Result<HostInfo> {
        let (_, data) = self.call(Command::Info, [0; 6], &[])?;
        HostInfo::decode(&data).map_err(|error| anyhow!("Keel's host information is malformed: {error}"))
    }

    pub fn list(&mut self) -> Result<Vec<DomainInfo>> {
        let (response, data) = self.call(Command::List, [0; 6], &[])?;
        let count = usize::try_from(response.values[0]).unwrap_or(usize::MAX);
        ensure!(
            count
                .checked_mul(DomainInfo::BYTES)
                .is_some_and(|len| len <= data.len()),
            "Keel's domain list is malformed: {count} records in {} bytes",
            data.len()
        );
        data.chunks(DomainInfo::BYTES)
            .take(count)
            .map(|record| {
                DomainInfo::decode(record).map_err(|error| anyhow!("Keel's domain list is malformed: {error}"))
            })
            .collect()
    }

    pub fn create(&mut self, domain: &CreateDomain) -> Result<DomainId> {
        let mut input = [0; CreateDomain::BYTES];
        let len = domain
            .encode(&mut input)
            .map_err(|error| anyhow!("encoding the domain: {error}"))?;
        let (response, _) = self.call(Command::Create, [0; 6], &input[..len])?;
        DomainId::try_from(response.values[0]).map_err(|_| anyhow!("Keel returned domain id {}", response.values[0]))
    }

    /// One chunk (at most [`layout::DATA_BYTES`]) of an image of `total` bytes.
    pub fn load_image(&mut self, id: DomainId, kind: ImageKind, offset: u64, total: u64, chunk: &[u8]) -> Result<()> {
        self.call(
            Command::LoadImage,
            [u64::from(id), kind as u64, offset, total, 0, 0],
            chunk,
        )?;
        Ok(())
    }

    pub fn boot(&mut self, id: DomainId, paused: bool) -> Result<()> {
        self.call(Command::Boot, [u64::from(id), u64::from(paused), 0, 0, 0, 0], &[])?;
        Ok(())
    }

    pub fn pause(&mut self, id: DomainId) -> Result<()> {
        self.call_domain(Command::Pause, id)
    }

    pub fn unpause(&mut self, id: DomainId) -> Result<()> {
        self.call_domain(Command::Unpause, id)
    }

    pub fn shutdown(&mut self, id: DomainId) -> Result<()> {
        self.call_domain(Command::Shutdown, id)
    }

    pub fn reboot(&mut self, id: DomainId) -> Result<()> {
        self.call_domain(Command::Reboot, id)
    }

    pub fn destroy(&mut self, id: DomainId) -> Result<()> {
        self.call_domain(Command::Destroy, id)
    }

    fn ring(&mut self, command: Command, id: DomainId, cursor: u64) -> Result<RingChunk> {
        let (response, bytes) = self.call(command, [u64::from(id), cursor, 0, 0, 0, 0], &[])?;
        let [start, end, ..] = response.values;
        ensure!(
            end.checked_sub(start) == Some(bytes.len() as u64),
            "Keel's {command:?} answer is malformed: cursors {start}..{end} for {} bytes",
            bytes.len()
        );
        Ok(RingChunk { start, end, bytes })
    }

    /// The domain's console output from `cursor` on, as much as one call holds.
    pub fn console_read(&mut self, id: DomainId, cursor: u64) -> Result<RingChunk> {
        self.ring(Command::ConsoleRead, id, cursor)
    }

    /// Hands bytes to the domain's console; returns how many it took.
    pub fn console_write(&mut self, id: DomainId, bytes: &[u8]) -> Result<usize> {
        let bytes = &bytes[..bytes.len().min(layout::DATA_BYTES)];
        let (response, _) = self.call(Command::ConsoleWrite, [u64::from(id), 0, 0, 0, 0, 0], bytes)?;
        Ok(usize::try_from(response.values[0])
            .unwrap_or(usize::MAX)
            .min(bytes.len()))
    }

    /// Keel's own log from `cursor` on.
    pub fn dmesg(&mut self, cursor: u64) -> Result<RingChunk> {
        self.ring(Command::Dmesg, 0, cursor)
    }

    /// PCI passthrough came with ABI 1.2: say so rather than pass on an
    /// older Keel's "unknown command".
    fn require_pci(&self) -> Result<()> {
        ensure!(
            self.keel_version >> 16 != 1 || self.keel_version & 0xffff >= 2,
            "Keel speaks management ABI {}, which has no PCI passthrough (1.2 added it): use the hypervisor built with this tool",
            version_string(self.keel_version)
        );
        Ok(())
    }

    /// The host's PCI functions.
    pub fn pci_list(&mut self) -> Result<Vec<PciFunction>> {
        self.require_pci()?;
        let (response, data) = self.call(Command::PciList, [0; 6], &[])?;
        let count = usize::try_from(response.values[0]).unwrap_or(usize::MAX);
        ensure!(
            count
                .checked_mul(PciFunction::BYTES)
                .is_some_and(|len| len <= data.len()),
            "Keel's PCI function list is malformed: {count} records in {} bytes",
            data.len()
        );
        data.chunks(PciFunction::BYTES)
            .take(count)
            .map(|record| {
                PciFunction::decode(record).map_err(|error| anyhow!("Keel's PCI function list is malformed: {error}"))
            })
            .collect()
    }

    /// Makes `address` assignable to DomUs (`true`) or gives it back.
    pub fn pci_assignable(&mut self, address: PciAddress, assignable: bool) -> Result<()> {
        self.require_pci()?;
        self.call(
            Command::PciAssignable,
            [u64::from(address.raw()), u64::from(assignable), 0, 0, 0, 0],
            &[],
        )?;
        Ok(())
    }

    /// Attaches `address` to domain `id` (still building); with
    /// `unconfined_dma`, even when no IOMMU confines the device's DMA.
    pub fn pci_attach(&mut self, id: DomainId, address: PciAddress, unconfined_dma: bool) -> Result<()> {
        self.require_pci()?;
        let flags = if unconfined_dma { pci_flags::UNCONFINED_DMA } else { 0 };
        self.call(
            Command::PciAttach,
            [u64::from(id), u64::from(address.raw()), flags, 0, 0, 0],
            &[],
        )?;
        Ok(())
    }
}
