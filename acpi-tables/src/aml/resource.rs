//! Resource descriptors for `_CRS` buffers (ACPI 6.5 §6.4).

use alloc::vec::Vec;

const IO_PORT_DESCRIPTOR: u8 = 0x47;
const IO_DECODE_16: u8 = 0x01;
const EXTENDED_INTERRUPT_DESCRIPTOR: u8 = 0x89;
const INTERRUPT_CONSUMER: u8 = 1 << 0;
const INTERRUPT_EDGE: u8 = 1 << 1;
const INTERRUPT_ACTIVE_LOW: u8 = 1 << 2;
const END_TAG: [u8; 2] = [0x79, 0x00];
const WORD_ADDRESS_SPACE_DESCRIPTOR: u8 = 0x88;
const DWORD_ADDRESS_SPACE_DESCRIPTOR: u8 = 0x87;
const QWORD_ADDRESS_SPACE_DESCRIPTOR: u8 = 0x8A;
/// Bytes after the 3-byte header of a Word / DWord Address Space
/// Descriptor without a resource source.
const WORD_ADDRESS_SPACE_LEN: u16 = 0x0D;
const DWORD_ADDRESS_SPACE_LEN: u16 = 0x17;
const QWORD_ADDRESS_SPACE_LEN: u16 = 0x2B;
/// Address space descriptor resource types.
const RESOURCE_TYPE_MEMORY: u8 = 0;
const RESOURCE_TYPE_IO: u8 = 1;
const RESOURCE_TYPE_BUS: u8 = 2;
/// General flags: ResourceProducer (bit 0 clear), PosDecode (bit 1 clear),
/// MinFixed (bit 2) and MaxFixed (bit 3): a bridge window of fixed extent.
const PRODUCER_FIXED_WINDOW: u8 = (1 << 2) | (1 << 3);
/// I/O type-specific flags: EntireRange (ISA and non-ISA ports), TypeStatic,
/// DenseTranslation.
const IO_ENTIRE_RANGE: u8 = 0b11;
/// Memory type-specific flags: ReadWrite (bit 0), NonCacheable (bits 2:1 =
/// 0), AddressRangeMemory, TypeStatic.
const MEMORY_READ_WRITE_NON_CACHEABLE: u8 = 1 << 0;

/// `IO (Decode16, base, base, 1, len)`: a fixed range of I/O ports.
pub fn io_ports(base: u16, len: u8, out: &mut Vec<u8>) {
    out.push(IO_PORT_DESCRIPTOR);
    out.push(IO_DECODE_16);
    out.extend_from_slice(&base.to_le_bytes());
    out.extend_from_slice(&base.to_le_bytes());
    out.push(1);
    out.push(len);
}

/// `Interrupt (ResourceConsumer, Edge|Level, ActiveHigh|ActiveLow, Exclusive) { gsi }`.
pub fn interrupt(gsi: u32, edge: bool, active_low: bool, out: &mut Vec<u8>) {
    let mut flags = INTERRUPT_CONSUMER;
    if edge {
        flags |= INTERRUPT_EDGE;
    }
    if active_low {
        flags |= INTERRUPT_ACTIVE_LOW;
    }
    out.push(EXTENDED_INTERRUPT_DESCRIPTOR);
    // Length of what follows the 3-byte header: flags, count, one u32.
    out.extend_from_slice(&6u16.to_le_bytes());
    out.push(flags);
    out.push(1);
    out.extend_from_slice(&gsi.to_le_bytes());
}

/// Closes a resource template (checksum 0: "treat as correct").
pub fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(&END_TAG);
}

/// `WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len)`:
/// the bus numbers a host bridge decodes. `max` below `min` is the caller's bug;
/// the length is computed with wrapping arithmetic rather than panicking.
pub fn word_bus_number(min: u16, max: u16, out: &mut Vec<u8>) {
    word_address_space(RESOURCE_TYPE_BUS, 0, min, max, out);
}

/// `WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len)`:
/// an I/O port window a host bridge forwards to its bus.
pub fn word_io_window(min: u16, max: u16, out: &mut Vec<u8>) {
    word_address_space(RESOURCE_TYPE_IO, IO_ENTIRE_RANGE, min, max, out);
}

/// `DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
/// 0, min, max, 0, len)`: a 32-bit MMIO window a host bridge forwards to its bus.
pub fn dword_memory_window(min: u32, max: u32, out: &mut Vec<u8>) {
    out.push(DWORD_ADDRESS_SPACE_DESCRIPTOR);
    out.extend_from_slice(&DWORD_ADDRESS_SPACE_LEN.to_le_bytes());
    out.extend_from_slice(&[
        RESOURCE_TYPE_MEMORY,
        PRODUCER_FIXED_WINDOW,
        MEMORY_READ_WRITE_NON_CACHEABLE,
    ]);
    let len = max.wrapping_sub(min).wrapping_add(1);
    // Granularity, minimum, maximum, translation offset, length.
    for field in [0, min, max, 0, len] {
        out.extend_from_slice(&field.to_le_bytes());
    }
}

/// `QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
/// 0, min, max, 0, len)`: a 64-bit MMIO window for prefetchable BARs above 4 GiB.
pub fn qword_memory_window(min: u64, max: u64, out: &mut Vec<u8>) {
    /// ReadWrite, Cacheable (bits 2:1 = 1): prefetchable BARs go here.
    const MEMORY_READ_WRITE_CACHEABLE: u8 = 1 << 0 | 1 << 1;
    out.push(QWORD_ADDRESS_SPACE_DESCRIPTOR);
    out.extend_from_slice(&QWORD_ADDRESS_SPACE_LEN.to_le_bytes());
    out.extend_from_slice(&[RESOURCE_TYPE_MEMORY, PRODUCER_FIXED_WINDOW, MEMORY_READ_WRITE_CACHEABLE]);
    let len = max.wrapping_sub(min).wrapping_add(1);
    for field in [0, min, max, 0, len] {
        out.extend_from_slice(&field.to_le_bytes());
    }
}

fn word_address_space(resource_type: u8, type_flags: u8, min: u16, max: u16, out: &mut Vec<u8>) {
    out.push(WORD_ADDRESS_SPACE_DESCRIPTOR);
    out.extend_from_slice(&WORD_ADDRESS_SPACE_LEN.to_le_bytes());
    out.extend_from_slice(&[resource_type, PRODUCER_FIXED_WINDOW, type_flags]);
    let len = max.wrapping_sub(min).wrapping_add(1);
    for field in [0, min, max, 0, len] {
        out.extend_from_slice(&field.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_port_template_matches_iasl() {
        // iasl: ResourceTemplate () { IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08)
        //        Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 4 } }
        let mut out = Vec::new();
        io_ports(0x3f8, 8, &mut out);
        interrupt(4, true, false, &mut out);
        end(&mut out);
        assert_eq!(
            out,
            [
                0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x89, 0x06, 0x00, 0x03, 0x01, 0x04, 0x00, 0x00, 0x00,
                0x79, 0x00
            ]
        );
    }

    #[test]
    fn generic_event_device_interrupt_matches_iasl() {
        // iasl: Name (BUF0, ResourceTemplate () {
        //        Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {23} })
        // gives 08 BUF0 11 0e 0a 0b and then these eleven bytes.
        let mut out = Vec::new();
        interrupt(23, true, false, &mut out);
        end(&mut out);
        assert_eq!(out, [0x89, 0x06, 0x00, 0x03, 0x01, 0x17, 0x00, 0x00, 0x00, 0x79, 0x00]);
    }

    #[test]
    fn interrupt_flags_encode_trigger_and_polarity() {
        // Level, ActiveLow: flags bit 1 clear, bit 2 set; GSI above 255 spans the dword.
        let mut out = Vec::new();
        interrupt(0x1_2345, false, true, &mut out);
        assert_eq!(out, [0x89, 0x06, 0x00, 0x05, 0x01, 0x45, 0x23, 0x01, 0x00]);
    }

    #[test]
    fn host_bridge_windows_match_iasl() {
        // iasl of: WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
        //   0x0000, 0x0000, 0x0000, 0x0000, 0x0001)
        // WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
        //   0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300)
        // DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
        //   0x00000000, 0xC0000000, 0xFEBFFFFF, 0x00000000, 0x3EC00000)
        let mut out = Vec::new();
        word_bus_number(0, 0, &mut out);
        word_io_window(0x0D00, 0xFFFF, &mut out);
        dword_memory_window(0xC000_0000, 0xFEBF_FFFF, &mut out);
        let expected: &[u8] = &[
            0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, //
            0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3, //
            0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xbf, 0xfe,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x3e,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn whole_ranges_get_their_length_without_overflow() {
        let mut out = Vec::new();
        word_bus_number(0, 0xFF, &mut out);
        assert_eq!(&out[14..16], &[0x00, 0x01], "256 buses");
        out.clear();
        word_io_window(0, 0xFFFF, &mut out);
        assert_eq!(
            &out[14..16],
            &[0x00, 0x00],
            "a full 64 Ki range wraps; callers never ask for one"
        );
        out.clear();
        dword_memory_window(0, u32::MAX, &mut out);
        assert_eq!(&out[22..26], &[0, 0, 0, 0]);
    }
}
