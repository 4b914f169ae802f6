//! The host's PCI devices as Keel sees them: a [`ConfigAccess`] to their
//! configuration space (the hypervisor implements it with ports 0xCF8/0xCFC
//! or with ECAM at the addresses the MCFG table gives, [`mcfg`]), a
//! bounded enumeration that follows bridges ([`enumerate`]), the
//! capability list ([`capabilities`]), BAR sizing ([`bar`]) and function
//! resets ([`reset`]).
//!
//! Everything read from devices or firmware is untrusted: loops in
//! capability lists or bridge numbering end the walk, sizes that make no
//! sense are errors, nothing panics.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bar;
pub mod capabilities;
pub mod enumerate;
pub mod mcfg;
pub mod reset;

use core::fmt;

/// A function's address: segment 0 (the only one mechanism #1 reaches),
/// bus, device, function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Bdf {
    /// `None` for a device above 31 or a function above 7.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device > 31 || function > 7 {
            return None;
        }
        Some(Self { bus, device, function })
    }

    /// Parses `bus:device.function` or `segment:bus:device.function` (hex,
    /// segment 0 only), as `lspci` and Xen's configs write them.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.rsplitn(3, ':');
        let device_function = parts.next()?;
        let bus = parts.next()?;
        if let Some(segment) = parts.next() {
            if u16::from_str_radix(segment, 16).ok()? != 0 {
                return None;
            }
        }
        let (device, function) = device_function.split_once('.')?;
        fn hex(text: &str, max_digits: usize) -> Option<u8> {
            if !(1..=max_digits).contains(&text.len()) {
                return None;
            }
            u8::from_str_radix(text, 16).ok()
        }
        Self::new(hex(bus, 2)?, hex(device, 2)?, hex(function, 1)?)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0000:{:02x}:{:02x}.{:x}", self.bus, self.device, self.function)
    }
}

/// Reading and writing configuration space (32-bit, dword-aligned
/// offsets below 256 for mechanism #1, below 4096 for ECAM).
pub trait ConfigAccess {
    fn read32(&mut self, function: Bdf, offset: u16) -> u32;
    fn write32(&mut self, function: Bdf, offset: u16, value: u32);

    fn read16(&mut self, function: Bdf, offset: u16) -> u16 {
        (self.read32(function, offset & !3) >> ((offset & 2) * 8)) as u16
    }

    fn read8(&mut self, function: Bdf, offset: u16) -> u8 {
        (self.read32(function, offset & !3) >> ((offset & 3) * 8)) as u8
    }

    /// Writes 16 bits by read-modify-write of their dword.
    fn write16(&mut self, function: Bdf, offset: u16, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read32(function, offset & !3);
        self.write32(
            function,
            offset & !3,
            (old & !(0xffff << shift)) | u32::from(value) << shift,
        );
    }
}

/// Standard header offsets.
pub mod header {
    pub const VENDOR_ID: u16 = 0x00;
    pub const COMMAND: u16 = 0x04;
    pub const STATUS: u16 = 0x06;
    pub const CLASS_REVISION: u16 = 0x08;
    pub const HEADER_TYPE: u16 = 0x0e;
    pub const BAR0: u16 = 0x10;
    pub const PRIMARY_BUS: u16 = 0x18;
    pub const SECONDARY_BUS: u16 = 0x19;
    pub const CAPABILITY_POINTER: u16 = 0x34;
    pub const INTERRUPT_LINE: u16 = 0x3c;
    pub const INTERRUPT_PIN: u16 = 0x3d;

    pub const STATUS_CAPABILITIES: u16 = 1 << 4;
    pub const COMMAND_IO: u16 = 1 << 0;
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
    pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
    pub const HEADER_TYPE_MASK: u8 = 0x7f;
    pub const HEADER_MULTIFUNCTION: u8 = 0x80;
    pub const HEADER_ENDPOINT: u8 = 0;
    pub const HEADER_BRIDGE: u8 = 1;
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdfs_parse_and_print_like_lspci() {
        let bdf = Bdf::parse("0000:00:1f.3").unwrap();
        assert_eq!((bdf.bus, bdf.device, bdf.function), (0, 0x1f, 3));
        assert_eq!(bdf.to_string(), "0000:00:1f.3");
        assert_eq!(Bdf::parse("03:00.1"), Bdf::new(3, 0, 1));
        for bad in [
            "",
            "00:20.0",
            "00:1f.8",
            "0001:00:00.0",
            "00:00",
            "x:00.0",
            "000:00.0",
            "00:00.00",
        ] {
            assert_eq!(Bdf::parse(bad), None, "{bad}");
        }
    }
}
