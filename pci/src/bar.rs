//! Base address registers: what kind of space each decodes, where and how
//! much, found by the sizing protocol (write all ones, read back the
//! writable bits, restore). Sizing briefly moves a BAR, so the caller
//! turns decoding off in the command register around it ([`probe`] does).

use alloc::vec::Vec;

use crate::{header, Bdf, ConfigAccess};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Io,
    Memory32,
    Memory64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// BAR number (0..=5; a 64-bit BAR takes this one and the next).
    pub index: u8,
    pub kind: BarKind,
    pub address: u64,
    pub size: u64,
    pub prefetchable: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// A 64-bit BAR in the last slot.
    Truncated64 { index: u8 },
    /// The writable bits are not a contiguous mask.
    BadSize { index: u8 },
    /// Bits 2:1 say a reserved type.
    ReservedType { index: u8 },
}

/// The writable bits of a BAR are not a contiguous mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAMask;

/// Size of a BAR from the value read back after writing all ones
/// (`readback`, with the upper half for 64-bit BARs), or `None` when it
/// decodes nothing.
pub fn size_from_readback(kind: BarKind, readback: u64) -> Result<Option<u64>, NotAMask> {
    let mask = match kind {
        BarKind::Io => (readback & !0x3) | 0xffff_ffff_0000_0000,
        BarKind::Memory32 => (readback & !0xf) | 0xffff_ffff_0000_0000,
        BarKind::Memory64 => readback & !0xf,
    };
    if mask == 0xffff_ffff_0000_0000 || mask == 0 {
        return Ok(None);
    }
    let size = (!mask).wrapping_add(1);
    // The writable bits must be all ones above the size's bit: a power of two.
    if !size.is_power_of_two() {
        return Err(NotAMask);
    }
    Ok(Some(size))
}

/// The BARs of an endpoint (six) or a bridge (two), sized. Decoding is off
/// while the BARs are moved and restored afterwards with the original
/// command register.
pub fn probe(config: &mut impl ConfigAccess, function: Bdf) -> Result<Vec<Bar>, BarError> {
    let header_type = config.read8(function, header::HEADER_TYPE) & header::HEADER_TYPE_MASK;
    let count = if header_type == header::HEADER_BRIDGE { 2 } else { 6 };
    let command = config.read16(function, header::COMMAND);
    config.write16(
        function,
        header::COMMAND,
        command & !(header::COMMAND_IO | header::COMMAND_MEMORY),
    );
    let result = probe_with_decoding_off(config, function, count);
    config.write16(function, header::COMMAND, command);
    result
}

fn probe_with_decoding_off(config: &mut impl ConfigAccess, function: Bdf, count: u8) -> Result<Vec<Bar>, BarError> {
    let mut bars = Vec::new();
    let mut index = 0u8;
    while index < count {
        let offset = header::BAR0 + 4 * u16::from(index);
        let original = config.read32(function, offset);
        let kind = if original & 1 != 0 {
            BarKind::Io
        } else {
            match (original >> 1) & 3 {
                0 => BarKind::Memory32,
                2 => BarKind::Memory64,
                _ => return Err(BarError::ReservedType { index }),
            }
        };
        if kind == BarKind::Memory64 && index + 1 >= count {
            return Err(BarError::Truncated64 { index });
        }
        config.write32(function, offset, u32::MAX);
        let mut readback = u64::from(config.read32(function, offset));
        config.write32(function, offset, original);
        let mut address = u64::from(original);
        if kind == BarKind::Memory64 {
            let upper = config.read32(function, offset + 4);
            config.write32(function, offset + 4, u32::MAX);
            readback |= u64::from(config.read32(function, offset + 4)) << 32;
            config.write32(function, offset + 4, upper);
            address |= u64::from(upper) << 32;
        }
        let size = size_from_readback(kind, readback).map_err(|NotAMask| BarError::BadSize { index })?;
        if let Some(size) = size {
            bars.push(Bar {
                index,
                kind,
                address: address & if kind == BarKind::Io { !0x3 } else { !0xf },
                size,
                prefetchable: kind != BarKind::Io && original & 0x8 != 0,
            });
        }
        index += if kind == BarKind::Memory64 { 2 } else { 1 };
    }
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeConfig;

    #[test]
    fn sizes_io_memory_and_64_bit_bars_and_restores_them() {
        let bdf = Bdf::new(0, 1, 1).unwrap();
        let mut config = FakeConfig::default();
        let function = config.add(bdf, 0x8086, 0x7010, 0x010180, 0);
        function.space[1] = u32::from(header::COMMAND_IO | header::COMMAND_MEMORY);
        function.space[4] = 0xfebf_0000; // BAR0: 4 KiB memory
        function.bar_masks[0] = !0xfff;
        function.space[5] = 0xc001; // BAR1: 16 ports
        function.bar_masks[1] = !0xf;
        function.space[6] = 0xe000_000c; // BAR2+3: 64-bit prefetchable 1 MiB at 0x1_e000_0000
        function.bar_masks[2] = !0xf_ffff;
        function.space[7] = 1;
        function.bar_masks[3] = u32::MAX;
        let bars = probe(&mut config, bdf).unwrap();
        assert_eq!(
            bars,
            [
                Bar {
                    index: 0,
                    kind: BarKind::Memory32,
                    address: 0xfebf_0000,
                    size: 0x1000,
                    prefetchable: false
                },
                Bar {
                    index: 1,
                    kind: BarKind::Io,
                    address: 0xc000,
                    size: 16,
                    prefetchable: false
                },
                Bar {
                    index: 2,
                    kind: BarKind::Memory64,
                    address: 0x1_e000_0000,
                    size: 0x10_0000,
                    prefetchable: true
                },
            ]
        );
        let function = &config.functions[&bdf];
        assert_eq!(function.space[4], 0xfebf_0000, "restored");
        assert_eq!(function.space[6], 0xe000_000c);
        assert_eq!(function.space[7], 1);
        assert_eq!(function.space[1] & 3, 3, "decoding back on");
    }

    #[test]
    fn broken_bars_are_errors() {
        assert_eq!(size_from_readback(BarKind::Memory32, 0xffff_0ff0), Err(NotAMask));
        assert_eq!(size_from_readback(BarKind::Memory32, 0), Ok(None));
        assert_eq!(size_from_readback(BarKind::Io, 0xffff_fffd), Ok(Some(4)));
        let bdf = Bdf::new(0, 2, 0).unwrap();
        let mut config = FakeConfig::default();
        let function = config.add(bdf, 1, 2, 0, 0);
        function.space[9] = 0x4; // BAR5 says 64-bit: no room for its upper half
        assert_eq!(probe(&mut config, bdf), Err(BarError::Truncated64 { index: 5 }));
        let function = config.functions.get_mut(&bdf).unwrap();
        function.space[9] = 0;
        function.space[4] = 0x2; // reserved type
        assert_eq!(probe(&mut config, bdf), Err(BarError::ReservedType { index: 0 }));
    }
}
