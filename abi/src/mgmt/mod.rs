//! The management interface between Dom0's tools and Keel.
//!
//! Dom0 alone sees a virtual PCI function ([`PCI_VENDOR_ID`]:[`PCI_DEVICE_ID`]).
//! Its BAR 0 is a page of registers ([`regs`]); its BAR 2 is shared memory
//! ([`SHARED_BYTES`]) holding one request slot, one response slot and a data
//! area ([`layout`]). Root in Dom0 maps both through
//! `/sys/bus/pci/devices/<bdf>/resource0` and `resource2` (files only root can
//! open, so Linux's own permission model is the privilege check inside Dom0).
//!
//! A call: the tool writes a [`Request`] (and any input bytes into the data
//! area), then writes [`regs::DOORBELL_RING`] to [`regs::DOORBELL`]. Keel
//! copies the request and the input out of shared memory before looking at
//! them (Dom0 may change the page at any time), executes the command while
//! the doorbell write is still in progress, and writes the [`Response`]
//! (and any output bytes) back before the guest's write instruction
//! completes: the call is synchronous. One call at a time: tools serialize
//! with a lock file ([`LOCK_FILE`]).
//!
//! Every layout is little-endian with explicit offsets; [`Request::decode`]
//! and the payload decoders refuse anything out of range, never panic, and
//! never read past the buffer they are given.

mod codec;
pub mod payload;
pub mod pci;
pub mod virtio;

pub use codec::{Reader, Writer};
pub use payload::*;
pub use pci::*;
pub use virtio::{VirtioDeviceState, VirtioQueueState};

/// PCI identity of the management function. 0x4b45 ("KE") is not a
/// PCI-SIG-assigned vendor id; the function exists only inside Dom0.
pub const PCI_VENDOR_ID: u16 = 0x4b45;
pub const PCI_DEVICE_ID: u16 = 0x0001;
/// Class "other system peripheral" (0x0880).
pub const PCI_CLASS: u32 = 0x08_80_00;

/// ABI version: a major change breaks callers, a minor one only adds.
pub const VERSION_MAJOR: u16 = 1;
pub const VERSION_MINOR: u16 = 4;
pub const VERSION: u32 = ((VERSION_MAJOR as u32) << 16) | VERSION_MINOR as u32;

/// Size of BAR 0 (registers) and BAR 2 (shared memory).
pub const REGISTER_BYTES: u64 = 0x1000;
pub const SHARED_BYTES: u64 = 2 << 20;

/// Where tools serialize their calls.
pub const LOCK_FILE: &str = "/run/keel.lock";

/// BAR 0 registers (32-bit accesses).
pub mod regs {
    /// Reads [`MAGIC_VALUE`].
    pub const MAGIC: u64 = 0x00;
    pub const MAGIC_VALUE: u32 = u32::from_le_bytes(*b"KEEL");
    /// Reads [`super::VERSION`].
    pub const VERSION: u64 = 0x04;
    /// Write [`DOORBELL_RING`] to execute the request in shared memory.
    pub const DOORBELL: u64 = 0x08;
    pub const DOORBELL_RING: u32 = 1;
    /// Reads the size of the shared memory (BAR 2) in bytes.
    pub const SHARED_SIZE: u64 = 0x0c;
    /// Pending events ([`super::events`]); a read clears them and
    /// deasserts the interrupt.
    pub const EVENTS: u64 = 0x10;
    /// Events that raise the interrupt (write a mask of [`super::events`]).
    pub const EVENT_MASK: u64 = 0x14;
    // 0x100.. and 0x200..: the notification registers of window slots
    // (`super::virtio::notify_register`, `notify_arm_register`).
}

/// Event bits in [`regs::EVENTS`].
pub mod events {
    /// A domain's console has new output.
    pub const CONSOLE_OUTPUT: u32 = 1 << 0;
    /// A domain changed state (shut down, crashed, ...).
    pub const DOMAIN_STATE: u32 = 1 << 1;
    /// An armed window slot has notifications pending (a level, not an
    /// edge: reading EVENTS does not clear it; reading the slots'
    /// notification registers does). Since ABI 1.3.
    pub const VIRTIO: u32 = 1 << 2;
}

/// Offsets in shared memory (BAR 2).
pub mod layout {
    /// The request slot ([`super::Request::BYTES`] bytes).
    pub const REQUEST: usize = 0x0;
    /// The response slot ([`super::Response::BYTES`] bytes).
    pub const RESPONSE: usize = 0x100;
    /// Input and output bytes of a call.
    pub const DATA: usize = 0x1000;
    /// Bytes in the data area.
    pub const DATA_BYTES: usize = super::SHARED_BYTES as usize - DATA;
}

/// Domain ids: Dom0 is 0; DomUs get 1.. and ids are not reused until the
/// id space wraps.
pub type DomainId = u32;
pub const DOM0: DomainId = 0;

/// Longest domain name, in bytes (UTF-8, no NUL, no control characters).
pub const NAME_MAX: usize = 32;

/// What a call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Command {
    /// Version negotiation: `args[0]` = the caller's [`VERSION`]. Keel
    /// answers with its own in `values[0]`, or [`Status::BadVersion`] when
    /// the majors differ.
    Hello = 1,
    /// Host figures: output [`HostInfo`].
    Info = 2,
    /// Every domain: output a sequence of [`DomainInfo`] records; `values[0]`
    /// is their count.
    List = 3,
    /// Input: [`CreateDomain`]. Output: `values[0]` = the new domain's id.
    /// The domain starts in [`DomainState::Building`].
    Create = 4,
    /// Input: an image chunk (`args[1]` = [`ImageKind`], `args[2]` = offset
    /// of the chunk in the image, `args[3]` = the whole image's length,
    /// `data_len` bytes of input). The first chunk (offset 0) fixes the
    /// length; later ones must agree with it.
    LoadImage = 5,
    /// Loads the staged kernel, initramfs and command line into the
    /// domain's memory and makes its vCPU; `args[1]` = 1 to leave it paused.
    Boot = 6,
    Pause = 7,
    Unpause = 8,
    /// Asks the guest to power off (ACPI power button).
    Shutdown = 9,
    /// Resets the domain and boots it again from its images.
    Reboot = 10,
    /// Stops the domain and returns all its memory.
    Destroy = 11,
    /// Console output from `args[1]` (a byte count since the domain
    /// started): output the bytes still held; `values[0]` = the cursor of
    /// the first byte returned, `values[1]` = the cursor after the last
    /// (bytes older than the ring holds are lost; `values[0]` says so).
    ConsoleRead = 12,
    /// Input bytes for the domain's console (UART receive side);
    /// `values[0]` = how many were taken.
    ConsoleWrite = 13,
    /// Keel's own log ring, as [`Command::ConsoleRead`] with `args[1]` as
    /// the cursor; `args[0]` is ignored.
    Dmesg = 14,
    /// The host's PCI functions: output a sequence of [`PciFunction`]
    /// records; `values[0]` is their count. Since ABI 1.2.
    PciList = 15,
    /// `args[0]` = a [`PciAddress`] (its `raw` form), `args[1]` = 1 to make
    /// the function assignable to DomUs, 0 to give it back. A function
    /// attached to a domain cannot be given back ([`Status::BadState`]);
    /// a host bridge is never assignable ([`Status::NotPermitted`]).
    /// `args[2]` (since ABI 1.4; 0 before): where the function's INTx
    /// arrives, [`pci_intx::from_firmware`] (0: the input its firmware's
    /// Interrupt Line names) or [`pci_intx::at_gsi`], for firmware that
    /// routes PCI interrupts only through ACPI `_PRT`, which Keel cannot
    /// evaluate. Since ABI 1.2.
    PciAssignable = 16,
    /// `args[0]` = a DomU in [`DomainState::Building`], `args[1]` = the
    /// [`PciAddress`] of an assignable function, `args[2]` = bits of
    /// [`pci_flags`]. The function is handed to the domain when it boots
    /// and returned (reset, assignable again) when it is destroyed.
    /// Without an IOMMU confining the function's DMA, Keel refuses with
    /// [`Status::NotConfined`] unless [`pci_flags::UNCONFINED_DMA`] is
    /// set. Since ABI 1.2.
    PciAttach = 17,
    /// `args[0]` = a DomU in [`DomainState::Building`], `args[1]` = a
    /// virtio device type ([`virtio::device_type`]), `args[2]` = the
    /// features the device offers (VIRTIO_F_VERSION_1 required),
    /// `args[3]` = [`virtio::queue_shape`]; input: the device
    /// configuration bytes (at most [`virtio::MAX_CONFIG_BYTES`]). Output:
    /// `values[0]` = the device's index in the domain (0, 1, ... in attach
    /// order; at most [`virtio::MAX_DEVICES`]). The function appears at
    /// every boot of the domain. Since ABI 1.3.
    VirtioAttach = 18,
    /// `args[0]` = a DomU: maps its RAM into a slot of the memory window
    /// (the same slot again if it is mapped). Output: `values[0]` = the
    /// slot, `values[1]` = the slot's byte offset in the window BAR,
    /// `values[2]` = the guest RAM bytes mapped (guest-physical 0 up).
    /// The mapping lasts until the domain is destroyed. Since ABI 1.3.
    WindowMap = 19,
    /// `args[0]` = a DomU, `args[1]` = a device index: output
    /// [`VirtioDeviceState`]. Since ABI 1.3.
    VirtioState = 20,
    /// `args[0]` = a DomU, `args[1]` = a device index, `args[2]` = a bit
    /// mask of queues whose interrupt to send (as the driver asked for
    /// them), `args[3]` = [`virtio::complete_flags`], `args[4]` = the
    /// generation ([`VirtioDeviceState::generation`]) the backend served:
    /// a stale one gets [`Status::BadState`] and changes nothing. Since
    /// ABI 1.3.
    VirtioComplete = 21,
}

impl Command {
    pub const ALL: [Self; 21] = [
        Self::Hello,
        Self::Info,
        Self::List,
        Self::Create,
        Self::LoadImage,
        Self::Boot,
        Self::Pause,
        Self::Unpause,
        Self::Shutdown,
        Self::Reboot,
        Self::Destroy,
        Self::ConsoleRead,
        Self::ConsoleWrite,
        Self::Dmesg,
        Self::PciList,
        Self::PciAssignable,
        Self::PciAttach,
        Self::VirtioAttach,
        Self::WindowMap,
        Self::VirtioState,
        Self::VirtioComplete,
    ];

    pub fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|command| *command as u32 == value)
    }
}

/// How a call ended. Everything but [`Status::Ok`] is an error; the data
/// area may hold a UTF-8 message (`data_len` bytes) saying more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    UnknownCommand = 1,
    BadVersion = 2,
    /// A field is out of range or inconsistent (the message names it).
    InvalidArgument = 3,
    NoSuchDomain = 4,
    NameInUse = 5,
    OutOfMemory = 6,
    /// The domain is not in a state that allows the command.
    BadState = 7,
    /// The kernel or initramfs was refused by the loader.
    BadImage = 8,
    /// The command may not act on this domain (e.g. destroying Dom0).
    NotPermitted = 9,
    TooManyDomains = 10,
    /// Valid but not supported yet (e.g. more than one vCPU).
    Unsupported = 11,
    /// The PCI function is attached to another domain. Since ABI 1.2.
    Busy = 12,
    /// No IOMMU confines the PCI function's DMA and the caller did not
    /// pass [`pci_flags::UNCONFINED_DMA`]. Since ABI 1.2.
    NotConfined = 13,
    /// No PCI function at that address. Since ABI 1.2.
    NoSuchDevice = 14,
}

impl Status {
    pub const ALL: [Self; 15] = [
        Self::Ok,
        Self::UnknownCommand,
        Self::BadVersion,
        Self::InvalidArgument,
        Self::NoSuchDomain,
        Self::NameInUse,
        Self::OutOfMemory,
        Self::BadState,
        Self::BadImage,
        Self::NotPermitted,
        Self::TooManyDomains,
        Self::Unsupported,
        Self::Busy,
        Self::NotConfined,
        Self::NoSuchDevice,
    ];

    pub fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|status| *status as u32 == value)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Ok => "success",
            Self::UnknownCommand => "unknown command",
            Self::BadVersion => "incompatible management ABI version",
            Self::InvalidArgument => "invalid argument",
            Self::NoSuchDomain => "no such domain",
            Self::NameInUse => "a domain with that name exists",
            Self::OutOfMemory => "not enough free memory",
            Self::BadState => "the domain's state does not allow that",
            Self::BadImage => "the image was refused",
            Self::NotPermitted => "not permitted",
            Self::TooManyDomains => "too many domains",
            Self::Unsupported => "not supported",
            Self::Busy => "the device is attached to another domain",
            Self::NotConfined => "no IOMMU confines the device's DMA",
            Self::NoSuchDevice => "no such PCI device",
        }
    }
}

/// The request slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub command: u32,
    /// Bytes of input in the data area.
    pub data_len: u32,
    /// `args[0]` is the target domain for commands that have one.
    pub args: [u64; 6],
}

/// The response slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// A [`Status`] as u32.
    pub status: u32,
    /// Bytes of output (or of the error message) in the data area.
    pub data_len: u32,
    pub values: [u64; 4],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends before the structure does.
    Truncated,
    /// A field holds a value the ABI does not define; names the field.
    Invalid(&'static str),
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated structure"),
            Self::Invalid(field) => write!(f, "invalid {field}"),
        }
    }
}

impl Request {
    pub const BYTES: usize = 8 + 6 * 8;

    pub fn encode(&self, out: &mut [u8]) -> Result<(), DecodeError> {
        let mut writer = Writer::new(out);
        writer.u32(self.command)?;
        writer.u32(self.data_len)?;
        for arg in self.args {
            writer.u64(arg)?;
        }
        Ok(())
    }

    /// Reads a request; `data_len` is checked against the data area.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let command = reader.u32()?;
        let data_len = reader.u32()?;
        if data_len as usize > layout::DATA_BYTES {
            return Err(DecodeError::Invalid("data_len"));
        }
        let mut args = [0; 6];
        for arg in &mut args {
            *arg = reader.u64()?;
        }
        Ok(Self {
            command,
            data_len,
            args,
        })
    }
}

impl Response {
    pub const BYTES: usize = 8 + 4 * 8;

    pub fn encode(&self, out: &mut [u8]) -> Result<(), DecodeError> {
        let mut writer = Writer::new(out);
        writer.u32(self.status)?;
        writer.u32(self.data_len)?;
        for value in self.values {
            writer.u64(value)?;
        }
        Ok(())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let status = reader.u32()?;
        let data_len = reader.u32()?;
        if data_len as usize > layout::DATA_BYTES {
            return Err(DecodeError::Invalid("data_len"));
        }
        let mut values = [0; 4];
        for value in &mut values {
            *value = reader.u64()?;
        }
        Ok(Self {
            status,
            data_len,
            values,
        })
    }
}

#[cfg(test)]
mod tests;
