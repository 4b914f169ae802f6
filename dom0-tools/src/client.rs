//! Typed management calls over a [`Transport`]: argument packing, output
//! decoding, and statuses turned into errors ([`CallError`]).

use std::fmt;

use anyhow::{anyhow, bail, ensure, Result};
use keel_abi::mgmt::virtio::{complete_flags, window, MAX_CONFIG_BYTES, MAX_DEVICES};
use keel_abi::mgmt::{
    layout, pci_flags, pci_intx, Command, CreateDomain, DomainId, DomainInfo, HostInfo, ImageKind, PciAddress,
    PciFunction, Request, Response, Status, VirtioDeviceState, VERSION,
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

/// Where [`Client::window_map`] put a DomU's RAM in the memory window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSlot {
    pub slot: u64,
    /// Byte offset of the slot in the window BAR (`resource4`).
    pub offset: u64,
    /// Guest RAM bytes mapped, from guest-physical 0.
    pub ram_bytes: u64,
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

    /// Makes `address` assignable to DomUs (`true`) or gives it back;
    /// `intx_gsi` names the host GSI its INTx arrives at (ABI 1.4).
    pub fn pci_assignable(&mut self, address: PciAddress, assignable: bool, intx_gsi: Option<u32>) -> Result<()> {
        self.require_pci()?;
        ensure!(
            intx_gsi.is_none() || self.keel_version >> 16 != 1 || self.keel_version & 0xffff >= 4,
            "Keel speaks management ABI {}, which cannot be told a device's INTx GSI (1.4 added it)",
            version_string(self.keel_version)
        );
        let route = intx_gsi.map_or(pci_intx::from_firmware(), pci_intx::at_gsi);
        self.call(
            Command::PciAssignable,
            [u64::from(address.raw()), u64::from(assignable), route, 0, 0, 0],
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

    /// Paravirtual devices came with ABI 1.3.
    pub fn require_virtio(&self) -> Result<()> {
        ensure!(
            self.keel_version >> 16 != 1 || self.keel_version & 0xffff >= 3,
            "Keel speaks management ABI {}, which has no virtio devices (1.3 added them): use the hypervisor built with this tool",
            version_string(self.keel_version)
        );
        Ok(())
    }

    /// Gives domain `id` (still building) a virtio device of `device_type`
    /// offering `features`, with [`keel_abi::mgmt::virtio::queue_shape`]
    /// `queue_shape` and configuration bytes `config`; returns the device's
    /// index in the domain.
    pub fn virtio_attach(
        &mut self,
        id: DomainId,
        device_type: u16,
        features: u64,
        queue_shape: u64,
        config: &[u8],
    ) -> Result<usize> {
        self.require_virtio()?;
        ensure!(
            config.len() <= MAX_CONFIG_BYTES,
            "a virtio configuration of {} bytes is larger than Keel takes ({MAX_CONFIG_BYTES})",
            config.len()
        );
        let (response, _) = self.call(
            Command::VirtioAttach,
            [u64::from(id), u64::from(device_type), features, queue_shape, 0, 0],
            config,
        )?;
        let index = response.values[0];
        ensure!(
            index < MAX_DEVICES as u64,
            "Keel answered VirtioAttach with device index {index} (at most {} expected)",
            MAX_DEVICES - 1
        );
        Ok(index as usize)
    }

    /// Maps domain `id`'s RAM into the memory window (again the same slot
    /// if it is mapped already).
    pub fn window_map(&mut self, id: DomainId) -> Result<WindowSlot> {
        self.require_virtio()?;
        let (response, _) = self.call(Command::WindowMap, [u64::from(id), 0, 0, 0, 0, 0], &[])?;
        let [slot, offset, ram_bytes, _] = response.values;
        ensure!(
            slot < window::SLOTS
                && offset == slot * window::SLOT_BYTES
                && ram_bytes > 0
                && ram_bytes <= window::SLOT_BYTES,
            "Keel's WindowMap answer is malformed: slot {slot}, offset {offset:#x}, {ram_bytes:#x} bytes"
        );
        Ok(WindowSlot {
            slot,
            offset,
            ram_bytes,
        })
    }

    /// The transport state of device `device` of domain `id`.
    pub fn virtio_state(&mut self, id: DomainId, device: usize) -> Result<VirtioDeviceState> {
        self.require_virtio()?;
        let (_, data) = self.call(Command::VirtioState, [u64::from(id), device as u64, 0, 0, 0, 0], &[])?;
        VirtioDeviceState::decode(&data).map_err(|error| anyhow!("Keel's virtio device state is malformed: {error}"))
    }

    /// Sends the interrupts of the queues in `queue_mask`, and with `flags`
    /// ([`complete_flags`]) acknowledges a reset or marks the device
    /// broken, for transport generation `generation`.
    pub fn virtio_complete(
        &mut self,
        id: DomainId,
        device: usize,
        queue_mask: u32,
        flags: u64,
        generation: u32,
    ) -> Result<()> {
        self.require_virtio()?;
        ensure!(
            flags & !complete_flags::ALL == 0,
            "unknown VirtioComplete flags {flags:#x}"
        );
        self.call(
            Command::VirtioComplete,
            [
                u64::from(id),
                device as u64,
                u64::from(queue_mask),
                flags,
                u64::from(generation),
                0,
            ],
            &[],
        )?;
        Ok(())
    }
}
