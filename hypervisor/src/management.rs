//! Keel's side of the management ABI (`keel_abi::mgmt`): decoding and
//! checking a call from Dom0, running it against the domain table through
//! [`DomainControl`], and encoding the answer. Everything that arrives here
//! is checked before use; a bad call gets an error status and a message,
//! never a panic, and never touches memory outside the buffers passed in.

use alloc::string::String;
use alloc::vec::Vec;

use keel_abi::mgmt::virtio::{complete_flags, device_type, MAX_CONFIG_BYTES, MAX_DEVICES, MAX_QUEUES};
use keel_abi::mgmt::{
    pci_flags, Command, CreateDomain, DomainId, DomainInfo, HostInfo, ImageKind, PciAddress, PciFunction, Request,
    Response, Status, VirtioDeviceState, DOM0, VERSION_MAJOR,
};

use crate::console_ring::ReadResult;

/// Why a command failed: the status and a message for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub status: Status,
    pub message: String,
}

impl Failure {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

pub type Outcome<T> = Result<T, Failure>;

/// A paravirtual device as `VirtioAttach` describes it (checked for shape;
/// the transport model checks the features).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioSpec<'a> {
    pub device_type: u16,
    pub features: u64,
    pub num_queues: u16,
    pub queue_max_size: u16,
    pub config: &'a [u8],
}

/// Where `WindowMap` put a DomU's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowGrant {
    pub slot: u64,
    /// Byte offset of the slot in the window BAR.
    pub offset: u64,
    /// Guest RAM bytes from guest-physical 0.
    pub bytes: u64,
}

/// What `VirtioComplete` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioCompletion {
    pub device: usize,
    /// Bit `n`: queue `n` has used buffers.
    pub queues: u32,
    pub reset_done: bool,
    pub needs_reset: bool,
    pub generation: u32,
}

fn unsupported<T>() -> Outcome<T> {
    Err(Failure::new(
        Status::Unsupported,
        "paravirtual devices are not built yet",
    ))
}

/// The domain table as the management interface drives it.
pub trait DomainControl {
    fn host_info(&self) -> HostInfo;
    fn domains(&self) -> Vec<DomainInfo>;
    fn create(&mut self, request: &CreateDomain) -> Outcome<DomainId>;
    /// A chunk of image `kind` at `offset`; `total` is the whole image's length.
    fn load_image(&mut self, domain: DomainId, kind: ImageKind, offset: u64, total: u64, chunk: &[u8]) -> Outcome<()>;
    fn boot(&mut self, domain: DomainId, paused: bool) -> Outcome<()>;
    fn pause(&mut self, domain: DomainId) -> Outcome<()>;
    fn unpause(&mut self, domain: DomainId) -> Outcome<()>;
    fn shutdown(&mut self, domain: DomainId) -> Outcome<()>;
    fn reboot(&mut self, domain: DomainId) -> Outcome<()>;
    fn destroy(&mut self, domain: DomainId) -> Outcome<()>;
    fn console_read(&mut self, domain: DomainId, cursor: u64, out: &mut [u8]) -> Outcome<ReadResult>;
    /// Returns how many bytes the console took.
    fn console_write(&mut self, domain: DomainId, bytes: &[u8]) -> Outcome<usize>;
    fn dmesg(&mut self, cursor: u64, out: &mut [u8]) -> ReadResult;

    /// The host's PCI functions (ABI 1.2 `PciList`), in address order.
    fn pci_functions(&self) -> Vec<PciFunction> {
        Vec::new()
    }

    /// `PciAssignable`: `assignable` makes the function available to
    /// DomUs; `false` gives it back (refused with `BadState` while a domain
    /// owns it). Unknown address: `NoSuchDevice`; a host bridge:
    /// `NotPermitted`. Making an assignable function assignable again (or
    /// an unassignable one unassignable) succeeds. `intx_gsi`: the host
    /// GSI its INTx arrives at, when the firmware's Interrupt Line is not
    /// to be trusted.
    fn pci_assignable(&mut self, _address: PciAddress, _assignable: bool, _intx_gsi: Option<u32>) -> Outcome<()> {
        Err(Failure::new(Status::Unsupported, "PCI assignment is not built yet"))
    }

    /// `PciAttach`: gives the function to `domain` (a DomU still
    /// `Building`; other states `BadState`) when it boots, and takes it
    /// back (reset, assignable again) when the domain is destroyed. Not
    /// assignable: `NotPermitted`; owned by another domain: `Busy`; no
    /// IOMMU confines its DMA and `unconfined_dma` is false: `NotConfined`
    /// (with `unconfined_dma`, Keel logs that the DMA is not confined).
    /// `dispatch` has already refused Dom0 as `domain`.
    fn pci_attach(&mut self, _domain: DomainId, _address: PciAddress, _unconfined_dma: bool) -> Outcome<()> {
        Err(Failure::new(Status::Unsupported, "PCI assignment is not built yet"))
    }

    /// `VirtioAttach` (ABI 1.3): adds a paravirtual device to a DomU still
    /// `Building`; returns its index. `dispatch` has refused Dom0 and
    /// checked the shape.
    fn virtio_attach(&mut self, _domain: DomainId, _spec: &VirtioSpec<'_>) -> Outcome<usize> {
        unsupported()
    }

    /// `WindowMap`: maps the DomU's RAM into a window slot (the same one
    /// again if it has one).
    fn window_map(&mut self, _domain: DomainId) -> Outcome<WindowGrant> {
        unsupported()
    }

    /// `VirtioState`: device `device`'s transport state.
    fn virtio_state(&mut self, _domain: DomainId, _device: usize) -> Outcome<VirtioDeviceState> {
        unsupported()
    }

    /// `VirtioComplete`.
    fn virtio_complete(&mut self, _domain: DomainId, _completion: &VirtioCompletion) -> Outcome<()> {
        unsupported()
    }
}

/// `args[index]` as a device index of a DomU's paravirtual devices.
fn device_arg(request: &Request, index: usize) -> Outcome<usize> {
    usize::try_from(request.args[index])
        .ok()
        .filter(|&device| device < MAX_DEVICES)
        .ok_or_else(|| {
            Failure::new(
                Status::InvalidArgument,
                alloc::format!("args[{index}]: a device index is below {MAX_DEVICES}"),
            )
        })
}

/// The DomU `args[0]` names (paravirtual devices belong to DomUs).
fn domu_arg(request: &Request) -> Outcome<DomainId> {
    let domain = domain_arg(request)?;
    if domain == DOM0 {
        return Err(Failure::new(
            Status::NotPermitted,
            "paravirtual devices belong to DomUs; Dom0 has none",
        ));
    }
    Ok(domain)
}

fn virtio_spec<'a>(request: &Request, input: &'a [u8]) -> Outcome<VirtioSpec<'a>> {
    let device_type = u16::try_from(request.args[1])
        .ok()
        .filter(|kind| device_type::ALL.contains(kind))
        .ok_or_else(|| {
            Failure::new(
                Status::InvalidArgument,
                alloc::format!("args[1]: {} is not a virtio device type Keel offers", request.args[1]),
            )
        })?;
    let shape = request.args[3];
    let num_queues = (shape & 0xffff) as u16;
    let queue_max_size = ((shape >> 16) & 0xffff) as u16;
    if shape >> 32 != 0 || num_queues == 0 || usize::from(num_queues) > MAX_QUEUES {
        return Err(Failure::new(
            Status::InvalidArgument,
            alloc::format!("args[3]: 1 to {MAX_QUEUES} queues in bits 15:0, the largest queue size in bits 31:16"),
        ));
    }
    if !queue_max_size.is_power_of_two() {
        return Err(Failure::new(
            Status::InvalidArgument,
            alloc::format!("args[3]: queue size {queue_max_size} is not a power of two"),
        ));
    }
    if input.len() > MAX_CONFIG_BYTES {
        return Err(Failure::new(
            Status::InvalidArgument,
            alloc::format!(
                "device configuration of {} bytes: at most {MAX_CONFIG_BYTES}",
                input.len()
            ),
        ));
    }
    Ok(VirtioSpec {
        device_type,
        features: request.args[2],
        num_queues,
        queue_max_size,
        config: input,
    })
}

fn virtio_completion(request: &Request) -> Outcome<VirtioCompletion> {
    let device = device_arg(request, 1)?;
    let queues = u32::try_from(request.args[2]).map_err(|_| {
        Failure::new(
            Status::InvalidArgument,
            alloc::format!("args[2]: queue bits at or above {MAX_QUEUES}"),
        )
    })?;
    let flags = request.args[3];
    if flags & !complete_flags::ALL != 0 {
        return Err(Failure::new(
            Status::InvalidArgument,
            alloc::format!("args[3]: unknown completion flags {:#x}", flags & !complete_flags::ALL),
        ));
    }
    let generation = u32::try_from(request.args[4])
        .map_err(|_| Failure::new(Status::InvalidArgument, "args[4]: not a generation"))?;
    Ok(VirtioCompletion {
        device,
        queues,
        reset_done: flags & complete_flags::RESET_DONE != 0,
        needs_reset: flags & complete_flags::NEEDS_RESET != 0,
        generation,
    })
}

fn domain_arg(request: &Request) -> Outcome<DomainId> {
    DomainId::try_from(request.args[0]).map_err(|_| Failure::new(Status::InvalidArgument, "args[0]: not a domain id"))
}

/// `args[index]` as a PCI address (`bus << 8 | device << 3 | function`).
fn pci_address_arg(request: &Request, index: usize) -> Outcome<PciAddress> {
    u32::try_from(request.args[index])
        .ok()
        .and_then(PciAddress::from_raw)
        .ok_or_else(|| {
            Failure::new(
                Status::InvalidArgument,
                alloc::format!(
                    "args[{index}]: {:#x} is not a PCI address (bus << 8 | device << 3 | function)",
                    request.args[index]
                ),
            )
        })
}

/// Runs one call. `input` holds the request's `data_len` bytes (already
/// checked against the data area); `output` is the data area the answer's
/// bytes go to.
pub fn dispatch(request: &Request, input: &[u8], output: &mut [u8], control: &mut impl DomainControl) -> Response {
    let input = input.get(..request.data_len as usize).unwrap_or(input);
    match run(request, input, output, control) {
        Ok((values, len)) => Response {
            status: Status::Ok as u32,
            data_len: len as u32,
            values,
        },
        Err(failure) => {
            let message = failure.message.as_bytes();
            let len = message.len().min(output.len());
            output[..len].copy_from_slice(&message[..len]);
            Response {
                status: failure.status as u32,
                data_len: len as u32,
                values: [0; 4],
            }
        }
    }
}

/// The answer's values and how many output bytes it wrote.
fn run(
    request: &Request,
    input: &[u8],
    output: &mut [u8],
    control: &mut impl DomainControl,
) -> Outcome<([u64; 4], usize)> {
    let Some(command) = Command::from_u32(request.command) else {
        return Err(Failure::new(
            Status::UnknownCommand,
            alloc::format!("unknown command {}", request.command),
        ));
    };
    let done = |values: [u64; 4]| Ok((values, 0));
    match command {
        Command::Hello => {
            let caller = request.args[0];
            let caller_major = (caller >> 16) & 0xffff;
            if caller >> 32 != 0 || caller_major != u64::from(VERSION_MAJOR) {
                return Err(Failure::new(
                    Status::BadVersion,
                    alloc::format!(
                        "Keel speaks management ABI {}.x; the caller speaks {}.{}",
                        VERSION_MAJOR,
                        caller_major,
                        caller & 0xffff
                    ),
                ));
            }
            done([u64::from(keel_abi::mgmt::VERSION), 0, 0, 0])
        }
        Command::Info => {
            let len = control
                .host_info()
                .encode(output)
                .map_err(|_| Failure::new(Status::InvalidArgument, "no room for the answer"))?;
            Ok(([0; 4], len))
        }
        Command::List => {
            let domains = control.domains();
            let mut len = 0;
            for info in &domains {
                let slot = output.get_mut(len..).unwrap_or_default();
                len += info
                    .encode(slot)
                    .map_err(|_| Failure::new(Status::InvalidArgument, "too many domains for the data area"))?;
            }
            Ok(([domains.len() as u64, 0, 0, 0], len))
        }
        Command::Create => {
            let create = CreateDomain::decode(input)
                .map_err(|error| Failure::new(Status::InvalidArgument, alloc::format!("create: {error}")))?;
            let id = control.create(&create)?;
            done([u64::from(id), 0, 0, 0])
        }
        Command::LoadImage => {
            let domain = domain_arg(request)?;
            let kind = ImageKind::from_u64(request.args[1])
                .ok_or_else(|| Failure::new(Status::InvalidArgument, "args[1]: unknown image kind"))?;
            let (offset, total) = (request.args[2], request.args[3]);
            if total > kind.max_bytes() {
                return Err(Failure::new(
                    Status::InvalidArgument,
                    alloc::format!("image of {total} bytes: the limit is {} bytes", kind.max_bytes()),
                ));
            }
            let end = offset.checked_add(input.len() as u64);
            if end.is_none_or(|end| end > total) {
                return Err(Failure::new(
                    Status::InvalidArgument,
                    "chunk runs past the image's length",
                ));
            }
            control.load_image(domain, kind, offset, total, input)?;
            done([0; 4])
        }
        Command::Boot => {
            let domain = domain_arg(request)?;
            control.boot(domain, request.args[1] == 1)?;
            done([0; 4])
        }
        Command::Pause => control.pause(domain_arg(request)?).and_then(|()| done([0; 4])),
        Command::Unpause => control.unpause(domain_arg(request)?).and_then(|()| done([0; 4])),
        Command::Shutdown => control.shutdown(domain_arg(request)?).and_then(|()| done([0; 4])),
        Command::Reboot => control.reboot(domain_arg(request)?).and_then(|()| done([0; 4])),
        Command::Destroy => control.destroy(domain_arg(request)?).and_then(|()| done([0; 4])),
        Command::ConsoleRead => {
            let read = control.console_read(domain_arg(request)?, request.args[1], output)?;
            Ok(([read.start, read.end, 0, 0], (read.end - read.start) as usize))
        }
        Command::ConsoleWrite => {
            let taken = control.console_write(domain_arg(request)?, input)?;
            done([taken as u64, 0, 0, 0])
        }
        Command::Dmesg => {
            let read = control.dmesg(request.args[1], output);
            Ok(([read.start, read.end, 0, 0], (read.end - read.start) as usize))
        }
        Command::PciList => {
            let functions = control.pci_functions();
            let mut len = 0;
            for function in &functions {
                let slot = output.get_mut(len..).unwrap_or_default();
                len += function
                    .encode(slot)
                    .map_err(|_| Failure::new(Status::InvalidArgument, "too many PCI functions for the data area"))?;
            }
            Ok(([functions.len() as u64, 0, 0, 0], len))
        }
        Command::PciAssignable => {
            let address = pci_address_arg(request, 0)?;
            let assignable = match request.args[1] {
                0 => false,
                1 => true,
                other => {
                    return Err(Failure::new(
                        Status::InvalidArgument,
                        alloc::format!("args[1]: {other} is neither 1 (assignable) nor 0 (not assignable)"),
                    ))
                }
            };
            let intx_gsi = keel_abi::mgmt::pci_intx::decode(request.args[2]).map_err(|_| {
                Failure::new(
                    Status::InvalidArgument,
                    alloc::format!(
                        "args[2]: {:#x} is not an INTx route (0, or 1 << 32 | GSI)",
                        request.args[2]
                    ),
                )
            })?;
            control.pci_assignable(address, assignable, intx_gsi)?;
            done([0; 4])
        }
        Command::PciAttach => {
            let domain = domain_arg(request)?;
            let address = pci_address_arg(request, 1)?;
            let flags = request.args[2];
            if flags & !pci_flags::ALL != 0 {
                return Err(Failure::new(
                    Status::InvalidArgument,
                    alloc::format!("args[2]: unknown PCI attach flags {:#x}", flags & !pci_flags::ALL),
                ));
            }
            if domain == DOM0 {
                return Err(Failure::new(
                    Status::NotPermitted,
                    "devices are attached to DomUs; Dom0 cannot be given one",
                ));
            }
            control.pci_attach(domain, address, flags & pci_flags::UNCONFINED_DMA != 0)?;
            done([0; 4])
        }
        Command::VirtioAttach => {
            let domain = domu_arg(request)?;
            let spec = virtio_spec(request, input)?;
            let index = control.virtio_attach(domain, &spec)?;
            done([index as u64, 0, 0, 0])
        }
        Command::WindowMap => {
            let grant = control.window_map(domu_arg(request)?)?;
            done([grant.slot, grant.offset, grant.bytes, 0])
        }
        Command::VirtioState => {
            let domain = domu_arg(request)?;
            let state = control.virtio_state(domain, device_arg(request, 1)?)?;
            let len = state
                .encode(output)
                .map_err(|_| Failure::new(Status::InvalidArgument, "no room for the answer"))?;
            Ok(([0; 4], len))
        }
        Command::VirtioComplete => {
            let domain = domu_arg(request)?;
            control.virtio_complete(domain, &virtio_completion(request)?)?;
            done([0; 4])
        }
    }
}

#[cfg(test)]
mod tests;
