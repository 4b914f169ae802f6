//! PCI passthrough: host PCI functions as the management interface names
//! them ([`PciAddress`]) and lists them ([`PciFunction`]), for
//! [`super::Command::PciList`], [`super::Command::PciAssignable`] and
//! [`super::Command::PciAttach`]. Since ABI 1.2.

use super::{DecodeError, DomainId, Reader, Writer};

/// A PCI function on segment 0. On the wire (a command's argument, a
/// [`PciFunction`] record) it is a `u32`: `bus << 8 | device << 3 |
/// function`, bits 31:16 zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    raw: u16,
}

/// Why [`PciAddress::parse`] refused a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciAddressError {
    /// Not `[segment:]bus:device.function` in hexadecimal.
    Syntax,
    /// A segment other than 0 (Keel covers segment 0 only).
    Segment,
    /// A device number above 31 (0x1f).
    Device,
    /// A function number above 7.
    Function,
}

impl core::fmt::Display for PciAddressError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(match self {
            Self::Syntax => "expected a PCI address such as 0000:00:04.0 or 00:04.0 (hexadecimal)",
            Self::Segment => "only PCI segment 0000 is supported",
            Self::Device => "the device number is at most 1f",
            Self::Function => "the function number is at most 7",
        })
    }
}

/// 1 to `max_digits` hexadecimal digits, nothing else (no sign, no `0x`).
fn hex(text: &str, max_digits: usize) -> Result<u16, PciAddressError> {
    if text.is_empty() || text.len() > max_digits || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(PciAddressError::Syntax);
    }
    u16::from_str_radix(text, 16).map_err(|_| PciAddressError::Syntax)
}

impl PciAddress {
    /// `None` when `device` > 31 or `function` > 7.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device > 31 || function > 7 {
            return None;
        }
        Some(Self {
            raw: (bus as u16) << 8 | (device as u16) << 3 | function as u16,
        })
    }

    /// The wire form: `bus << 8 | device << 3 | function`.
    pub const fn raw(self) -> u32 {
        self.raw as u32
    }

    /// `None` when bits 31:16 are set.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        if raw > 0xffff {
            return None;
        }
        Some(Self { raw: raw as u16 })
    }

    pub const fn bus(self) -> u8 {
        (self.raw >> 8) as u8
    }

    pub const fn device(self) -> u8 {
        (self.raw >> 3) as u8 & 0x1f
    }

    pub const fn function(self) -> u8 {
        self.raw as u8 & 0x7
    }

    /// `0000:00:04.0` (Linux's sysfs form) or `00:04.0` (lspci's), in
    /// hexadecimal of either case; the segment, when given, must be 0.
    pub fn parse(text: &str) -> Result<Self, PciAddressError> {
        let (rest, function) = text.rsplit_once('.').ok_or(PciAddressError::Syntax)?;
        let mut fields = rest.split(':');
        let (segment, bus, device) = match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(bus), Some(device), None, None) => (None, bus, device),
            (Some(segment), Some(bus), Some(device), None) => (Some(segment), bus, device),
            _ => return Err(PciAddressError::Syntax),
        };
        let segment = segment.map(|segment| hex(segment, 4)).transpose()?;
        let (bus, device, function) = (hex(bus, 2)?, hex(device, 2)?, hex(function, 1)?);
        if segment.is_some_and(|segment| segment != 0) {
            return Err(PciAddressError::Segment);
        }
        if device > 31 {
            return Err(PciAddressError::Device);
        }
        if function > 7 {
            return Err(PciAddressError::Function);
        }
        // In range: bus has at most 2 hex digits, device and function were checked.
        Self::new(bus as u8, device as u8, function as u8).ok_or(PciAddressError::Syntax)
    }
}

impl core::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "0000:{:02x}:{:02x}.{:x}", self.bus(), self.device(), self.function())
    }
}

/// Bits of [`super::Command::PciAttach`]'s `args[2]`.
pub mod pci_flags {
    /// Assign the device even though no IOMMU confines its DMA: it can
    /// then read and write any host memory, Keel's and other domains'.
    pub const UNCONFINED_DMA: u64 = 1 << 0;
    /// Every bit defined; Keel refuses others.
    pub const ALL: u64 = UNCONFINED_DMA;
}

/// [`super::Command::PciAssignable`]'s `args[2]`: where an assignable
/// function's INTx reaches the host's I/O APICs. Since ABI 1.4.
pub mod pci_intx {
    /// Set when the low 32 bits name the host GSI.
    pub const GSI_GIVEN: u64 = 1 << 32;

    /// The input the firmware wrote in the function's Interrupt Line.
    pub const fn from_firmware() -> u64 {
        0
    }

    /// Host GSI `gsi` (level-triggered; active low from 16 up).
    pub const fn at_gsi(gsi: u32) -> u64 {
        GSI_GIVEN | gsi as u64
    }

    /// An `args[2]` that is neither [`from_firmware`] nor [`at_gsi`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct NotARoute;

    /// `Ok(None)` for [`from_firmware`], `Ok(Some(gsi))` for [`at_gsi`].
    pub const fn decode(arg: u64) -> Result<Option<u32>, NotARoute> {
        if arg == 0 {
            Ok(None)
        } else if arg & !(GSI_GIVEN | 0xffff_ffff) == 0 && arg & GSI_GIVEN != 0 {
            Ok(Some(arg as u32))
        } else {
            Err(NotARoute)
        }
    }
}

/// Bits of [`PciFunction::flags`].
pub mod pci_function_flags {
    /// May be attached to a DomU (`keel pci-assignable-add`).
    pub const ASSIGNABLE: u32 = 1 << 0;
    /// Attached to a domain ([`super::PciFunction::owner`]).
    pub const ATTACHED: u32 = 1 << 1;
    /// An enabled IOMMU unit covers the function: once assigned, its DMA
    /// reaches only its domain's RAM.
    pub const DMA_CONFINED: u32 = 1 << 2;
    /// A host bridge: never assignable.
    pub const HOST_BRIDGE: u32 = 1 << 3;
    /// Every bit defined in this version; a newer Keel may set others,
    /// which readers ignore.
    pub const ALL: u32 = ASSIGNABLE | ATTACHED | DMA_CONFINED | HOST_BRIDGE;
}

/// One record of [`super::Command::PciList`]: a host PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciFunction {
    pub address: PciAddress,
    pub vendor: u16,
    pub device: u16,
    /// Class code, subclass and programming interface in bits 23:0 (as
    /// configuration space holds them at 0x09..0x0b).
    pub class: u32,
    /// Bits of [`pci_function_flags`].
    pub flags: u32,
    /// The domain that owns the function; meaningful with
    /// [`pci_function_flags::ATTACHED`] (0 otherwise).
    pub owner: DomainId,
}

impl PciFunction {
    /// address u32, vendor u16, device u16, class u32, flags u32, owner
    /// u32, reserved u32 (0).
    pub const BYTES: usize = 4 + 2 + 2 + 4 + 4 + 4 + 4;

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn encode(&self, out: &mut [u8]) -> Result<usize, DecodeError> {
        let mut writer = Writer::new(out);
        writer.u32(self.address.raw())?;
        writer.u16(self.vendor)?;
        writer.u16(self.device)?;
        writer.u32(self.class)?;
        writer.u32(self.flags)?;
        writer.u32(self.owner)?;
        writer.u32(0)?;
        Ok(writer.position())
    }

    /// Refuses an address with bits 31:16 set and a class with bits 31:24
    /// set; unknown flag bits are kept (a newer Keel's).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let address = reader.u32()?;
        let vendor = reader.u16()?;
        let device = reader.u16()?;
        let class = reader.u32()?;
        let flags = reader.u32()?;
        let owner = reader.u32()?;
        let _reserved = reader.u32()?;
        let address = PciAddress::from_raw(address).ok_or(DecodeError::Invalid("address"))?;
        if class > 0x00ff_ffff {
            return Err(DecodeError::Invalid("class"));
        }
        Ok(Self {
            address,
            vendor,
            device,
            class,
            flags,
            owner,
        })
    }
}
