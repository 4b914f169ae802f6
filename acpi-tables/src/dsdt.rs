//! Differentiated System Description Table: the guest's AML namespace:
//! `\_S5_` so Linux can power the guest off, and the serial ports (a
//! hardware-reduced guest learns their interrupts only from here).

use alloc::vec::Vec;

use crate::aml::{eisa_id, encode_device, encode_name, encode_scope, resource, AmlError, DataObject};
use crate::config::{CmosRtc, SerialPort};
use crate::error::AcpiError;
use crate::sdt::{assemble_table, TableKind};

/// Revision 2 makes AML integers 64 bits wide.
const KIND: TableKind = TableKind {
    signature: *b"DSDT",
    revision: 2,
};

/// The SLP_TYP value Linux writes to PM1a_CNT (with SLP_EN) to enter S5; the
/// PM1 control emulation must treat it as power-off.
pub const S5_SLEEP_TYPE: u8 = 5;

pub(crate) fn build_dsdt(
    oem_id: [u8; 6],
    serial_ports: &[SerialPort],
    cmos_rtc: Option<CmosRtc>,
) -> Result<Vec<u8>, AcpiError> {
    let s5_type = DataObject::Integer(u64::from(S5_SLEEP_TYPE));
    // SLP_TYPa, SLP_TYPb, then two reserved elements.
    let s5 = [s5_type, s5_type, DataObject::Integer(0), DataObject::Integer(0)];
    let mut aml = Vec::new();
    // The DSDT's scope is the root, so the relative name is `\_S5_`; this is
    // also exactly what iasl emits for `Name (\_S5, Package () {5, 5, 0, 0})`.
    encode_name("_S5_", &DataObject::Package(&s5), &mut aml)?;
    if !serial_ports.is_empty() || cmos_rtc.is_some() {
        let mut devices = Vec::new();
        for (index, port) in serial_ports.iter().enumerate() {
            encode_serial_port(index, port, &mut devices)?;
        }
        if let Some(rtc) = cmos_rtc {
            let device = IsaDevice {
                name: "RTC_",
                hid: "PNP0B00",
                uid: 0,
                io_base: rtc.io_base,
                io_len: 2,
                gsi: rtc.gsi,
            };
            encode_isa_device(&device, &mut devices)?;
        }
        // At the root, `_SB_` and `\_SB_` name the same scope; iasl emits the former.
        encode_scope("_SB_", &devices, &mut aml)?;
    }
    assemble_table(KIND, oem_id, &aml)
}

/// `Device (COMn) { Name (_HID, EisaId ("PNP0501")) Name (_UID, n) Name (_CRS, ...) }`.
fn encode_serial_port(index: usize, port: &SerialPort, out: &mut Vec<u8>) -> Result<(), AmlError> {
    const NAMES: [&str; 4] = ["COM1", "COM2", "COM3", "COM4"];
    let name = NAMES.get(index).ok_or(AmlError::InvalidNameSegment)?;
    let device = IsaDevice {
        name,
        hid: "PNP0501",
        uid: index as u64 + 1,
        io_base: port.io_base,
        io_len: 8,
        gsi: port.gsi,
    };
    encode_isa_device(&device, out)
}

/// A legacy device at fixed I/O ports with one edge-triggered interrupt.
struct IsaDevice<'a> {
    name: &'a str,
    hid: &'a str,
    uid: u64,
    io_base: u16,
    io_len: u8,
    gsi: u32,
}

/// `Device (name) { Name (_HID, EisaId (hid)) Name (_UID, uid) Name (_CRS, ResourceTemplate () {
/// IO (Decode16, base, base, 1, len) Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {gsi} }) }`.
fn encode_isa_device(device: &IsaDevice, out: &mut Vec<u8>) -> Result<(), AmlError> {
    let mut resources = Vec::new();
    resource::io_ports(device.io_base, device.io_len, &mut resources);
    resource::interrupt(device.gsi, true, false, &mut resources);
    resource::end(&mut resources);
    let mut body = Vec::new();
    let hid = eisa_id(device.hid).ok_or(AmlError::InvalidNameSegment)?;
    encode_name("_HID", &DataObject::Integer(u64::from(hid)), &mut body)?;
    encode_name("_UID", &DataObject::Integer(device.uid), &mut body)?;
    encode_name("_CRS", &DataObject::Buffer(&resources), &mut body)?;
    encode_device(device.name, &body, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdt::SDT_HEADER_LEN;

    #[test]
    fn serial_port_device_matches_iasl() {
        // iasl -p of: Name (_S5, Package () {5, 5, 0, 0}) Scope (\_SB) { Device (COM1) {
        //   Name (_HID, EisaId ("PNP0501")) Name (_UID, One) Name (_CRS, ResourceTemplate () {
        //   IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08)
        //   Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {4} }) } }
        let expected: &[u8] = &[
            0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00, 0x10, 0x38, 0x5f, 0x53,
            0x42, 0x5f, 0x5b, 0x82, 0x31, 0x43, 0x4f, 0x4d, 0x31, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0, 0x05,
            0x01, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x01, 0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x16, 0x0a, 0x13, 0x47, 0x01,
            0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x89, 0x06, 0x00, 0x03, 0x01, 0x04, 0x00, 0x00, 0x00, 0x79, 0x00,
        ];
        let dsdt = build_dsdt(*b"KEEL  ", &[SerialPort { io_base: 0x3f8, gsi: 4 }], None).unwrap();
        assert_eq!(&dsdt[SDT_HEADER_LEN..], expected);
    }

    #[test]
    fn rtc_device_matches_iasl() {
        // iasl -p of: Name (_S5, ...) Scope (\_SB) { Device (RTC) { Name (_HID, EisaId ("PNP0B00"))
        //   Name (_UID, Zero) Name (_CRS, ResourceTemplate () { IO (Decode16, 0x0070, 0x0070, 0x01, 0x02)
        //   Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {8} }) } }
        let expected: &[u8] = &[
            0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00, 0x10, 0x38, 0x5f, 0x53,
            0x42, 0x5f, 0x5b, 0x82, 0x31, 0x52, 0x54, 0x43, 0x5f, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0, 0x0b,
            0x00, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x00, 0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x16, 0x0a, 0x13, 0x47, 0x01,
            0x70, 0x00, 0x70, 0x00, 0x01, 0x02, 0x89, 0x06, 0x00, 0x03, 0x01, 0x08, 0x00, 0x00, 0x00, 0x79, 0x00,
        ];
        let dsdt = build_dsdt(*b"KEEL  ", &[], Some(CmosRtc { io_base: 0x70, gsi: 8 })).unwrap();
        assert_eq!(&dsdt[SDT_HEADER_LEN..], expected);
    }

    #[test]
    fn dsdt_body_is_the_s5_declaration() {
        let dsdt = build_dsdt(*b"KEEL  ", &[], None).unwrap();
        assert_eq!(&dsdt[0..4], b"DSDT");
        assert_eq!(dsdt[8], 2);
        assert_eq!(
            &dsdt[SDT_HEADER_LEN..],
            &[0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0A, 5, 0x0A, 5, 0, 0]
        );
    }
}
