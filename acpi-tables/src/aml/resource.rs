//! Resource descriptors for `_CRS` buffers (ACPI 6.5 §6.4).

use alloc::vec::Vec;

const IO_PORT_DESCRIPTOR: u8 = 0x47;
const IO_DECODE_16: u8 = 0x01;
const EXTENDED_INTERRUPT_DESCRIPTOR: u8 = 0x89;
const INTERRUPT_CONSUMER: u8 = 1 << 0;
const INTERRUPT_EDGE: u8 = 1 << 1;
const INTERRUPT_ACTIVE_LOW: u8 = 1 << 2;
const END_TAG: [u8; 2] = [0x79, 0x00];

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
}
