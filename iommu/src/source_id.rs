//! PCI requester IDs ("source-id" in VT-d §3.4.1): the bus/device/function
//! a DMA or interrupt request carries, and the index into the root and
//! context tables.

use core::fmt;

/// A PCI bus/device/function packed as bus in bits 15:8, device in 7:3 and
/// function in 2:0, the layout VT-d uses in fault records, interrupt
/// remapping entries and invalidation descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SourceId(u16);

impl SourceId {
    /// `None` if `device > 31` or `function > 7`.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device > 31 || function > 7 {
            return None;
        }
        Some(Self((bus as u16) << 8 | (device as u16) << 3 | function as u16))
    }

    pub const fn from_raw(raw: u16) -> Self {
        Self(raw)
    }

    pub const fn raw(self) -> u16 {
        self.0
    }

    pub const fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }

    pub const fn device(self) -> u8 {
        ((self.0 >> 3) & 0x1f) as u8
    }

    pub const fn function(self) -> u8 {
        (self.0 & 0x7) as u8
    }

    /// Device and function together: the index into a context table.
    pub const fn devfn(self) -> u8 {
        (self.0 & 0xff) as u8
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus(), self.device(), self.function())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_bus_device_function() {
        let id = SourceId::new(0x3a, 0x1f, 7).unwrap();
        assert_eq!(id.raw(), 0x3aff);
        assert_eq!(
            (id.bus(), id.device(), id.function(), id.devfn()),
            (0x3a, 0x1f, 7, 0xff)
        );
        assert_eq!(SourceId::from_raw(0x0010).to_string(), "00:02.0");
        assert_eq!(SourceId::new(0, 32, 0), None);
        assert_eq!(SourceId::new(0, 0, 8), None);
    }
}
