//! The host's PCI configuration space through configuration mechanism #1
//! (ports 0xCF8/0xCFC), which every PC chipset Keel targets decodes.
//! Keel is the only user of these ports: guests get their own emulated
//! ones (`keel-devices`' PCI host), never the host's.

use super::instructions::{inl, outl};

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// A host PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl Function {
    fn address(self, offset: u8) -> u32 {
        1 << 31
            | u32::from(self.bus) << 16
            | u32::from(self.device & 0x1f) << 11
            | u32::from(self.function & 7) << 8
            | u32::from(offset & 0xfc)
    }

    pub fn read32(self, offset: u8) -> u32 {
        // SAFETY: mechanism #1 only selects and reads a configuration
        // register; Keel runs on one CPU with interrupts off, so the
        // address/data pair cannot be interleaved.
        unsafe {
            outl(CONFIG_ADDRESS, self.address(offset));
            inl(CONFIG_DATA)
        }
    }

    pub fn write32(self, offset: u8, value: u32) {
        // SAFETY: as in read32; what the write does to the device is the
        // caller's business (only the IOMMU self-test programs devices).
        unsafe {
            outl(CONFIG_ADDRESS, self.address(offset));
            outl(CONFIG_DATA, value);
        }
    }

    pub fn read16(self, offset: u8) -> u16 {
        (self.read32(offset) >> (u32::from(offset & 2) * 8)) as u16
    }

    /// Writes 16 bits, keeping the other half of the dword.
    pub fn write16(self, offset: u8, value: u16) {
        let shift = u32::from(offset & 2) * 8;
        let old = self.read32(offset);
        self.write32(offset, (old & !(0xffff << shift)) | u32::from(value) << shift);
    }

    pub fn vendor_device(self) -> (u16, u16) {
        let id = self.read32(0);
        (id as u16, (id >> 16) as u16)
    }

    /// The offset of the first capability with `id`, walking at most 48
    /// entries (a looping list ends the walk).
    pub fn find_capability(self, id: u8) -> Option<u8> {
        const STATUS_CAPABILITIES: u16 = 1 << 4;
        if self.read16(0x06) & STATUS_CAPABILITIES == 0 {
            return None;
        }
        let mut pointer = (self.read32(0x34) & 0xfc) as u8;
        for _ in 0..48 {
            if pointer < 0x40 {
                return None;
            }
            let header = self.read16(pointer);
            if header as u8 == id {
                return Some(pointer);
            }
            pointer = ((header >> 8) as u8) & 0xfc;
        }
        None
    }
}

/// Every function on bus 0 that answers (Keel's tests need no more; a
/// full bridge walk comes with passthrough).
pub fn bus0_functions() -> impl Iterator<Item = Function> {
    (0..32u8)
        .flat_map(|device| {
            let first = Function {
                bus: 0,
                device,
                function: 0,
            };
            let present = first.vendor_device().0 != 0xffff;
            let multifunction = present && (first.read32(0x0c) >> 16) & 0x80 != 0;
            let count = if multifunction {
                8
            } else if present {
                1
            } else {
                0
            };
            (0..count).map(move |function| Function {
                bus: 0,
                device,
                function,
            })
        })
        .filter(|function| function.vendor_device().0 != 0xffff)
}
