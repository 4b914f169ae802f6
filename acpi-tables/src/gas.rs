//! Generic Address Structure (ACPI 6.5 §5.2.3.2).

use alloc::vec::Vec;

use crate::bytes::PutLe;

const SYSTEM_IO_SPACE: u8 = 1;

/// How wide each access to the register must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum AccessSize {
    Byte = 1,
    Word = 2,
    Dword = 3,
}

/// A register block in I/O port space, or the all-zero "not present" GAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GenericAddress {
    space_id: u8,
    bit_width: u8,
    access_size: u8,
    address: u64,
}

impl GenericAddress {
    pub const ABSENT: Self = Self {
        space_id: 0,
        bit_width: 0,
        access_size: 0,
        address: 0,
    };

    pub fn io_port(port: u16, byte_len: u8, access: AccessSize) -> Self {
        Self {
            space_id: SYSTEM_IO_SPACE,
            bit_width: byte_len.saturating_mul(8),
            access_size: access as u8,
            address: u64::from(port),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.space_id);
        out.put_u8(self.bit_width);
        // Bit offset: every register Keel describes starts on a byte boundary.
        out.put_u8(0);
        out.put_u8(self.access_size);
        out.put_u64(self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAS_LEN: usize = 12;

    #[test]
    fn io_port_gas_layout() {
        let mut out = Vec::new();
        GenericAddress::io_port(0x604, 2, AccessSize::Word).encode(&mut out);
        assert_eq!(out, [1, 16, 0, 2, 0x04, 0x06, 0, 0, 0, 0, 0, 0]);
        assert_eq!(out.len(), GAS_LEN);
    }

    #[test]
    fn absent_gas_is_all_zero() {
        let mut out = Vec::new();
        GenericAddress::ABSENT.encode(&mut out);
        assert_eq!(out, [0; GAS_LEN]);
    }
}
