//! Differentiated System Description Table: the guest's AML namespace:
//! `\_S5_` so Linux can power the guest off, the serial ports and RTC (a
//! hardware-reduced guest learns their interrupts only from here), the
//! PCI host bridge (an ACPI guest scans only the root buses declared here)
//! and the power button with the Generic Event Device that presses it.

use alloc::vec::Vec;

use crate::aml::{
    eisa_id, encode_device, encode_if, encode_lequal, encode_method, encode_name, encode_notify, encode_scope,
    resource, AmlError, DataObject, MethodSerialization, TermArg,
};
use crate::config::{CmosRtc, GsiUser, GuestAcpiConfig, IsaOverride, PciRootConfig, PowerButtonConfig, SerialPort};
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

/// Configuration mechanism #1's ports, which the host bridge consumes.
const PCI_CONFIG_PORT: u16 = 0xCF8;
const PCI_CONFIG_PORT_COUNT: u8 = 8;
/// The I/O windows around them (what QEMU's and real DSDTs forward).
const PCI_IO_WINDOWS: [(u16, u16); 2] = [(0x0000, 0x0CF7), (0x0D00, 0xFFFF)];
/// Device slots on a PCI bus, and INTx pins per slot.
const PCI_SLOTS: u32 = 32;
const PCI_INTX_PINS: u32 = 4;
/// Bytes of an APIC's MMIO page, which the PCI window must not cover.
const APIC_MMIO_BYTES: u64 = 0x1000;
/// The control-method power button and the Generic Event Device notifying it.
const POWER_BUTTON_NAME: &str = "PWRB";
const POWER_BUTTON_PATH: &str = "\\_SB.PWRB";
const POWER_BUTTON_HID: &str = "PNP0C0C";
const GED_NAME: &str = "GED0";
/// An ACPI id (four letters), so a string rather than a compressed EISA id.
const GED_HID: &str = "ACPI0013";
/// Device-specific notification 0x80 of a power button: "pressed" (ACPI 6.5 §4.8.3.1.1).
const BUTTON_PRESSED_NOTIFICATION: u64 = 0x80;

/// Refuses a PCI root whose MMIO window is empty or covers an APIC page (a
/// BAR placed there would shadow it), or whose INTx GSIs overflow.
pub(crate) fn validate_pci(config: &GuestAcpiConfig<'_>) -> Result<(), AcpiError> {
    let Some(pci) = config.pci else {
        return Ok(());
    };
    if pci.mmio_start > pci.mmio_end {
        return Err(AcpiError::PciWindowEmpty {
            start: pci.mmio_start,
            end: pci.mmio_end,
        });
    }
    let io_apic = config.io_apic.map(|io_apic| u64::from(io_apic.address));
    for address in io_apic.into_iter().chain([config.local_apic_address]) {
        if pci.mmio_window_overlaps(address, APIC_MMIO_BYTES) {
            return Err(AcpiError::PciWindowOverlapsApic { address });
        }
    }
    if pci.intx_gsi_base.checked_add(PCI_INTX_PINS - 1).is_none() {
        return Err(AcpiError::PciIntxGsiOutOfRange(pci.intx_gsi_base));
    }
    Ok(())
}

/// Refuses a power button without an I/O APIC, on a GSI that is not one of
/// the I/O APIC's inputs, or on one that another interrupt source in
/// `config` already uses (the GED claims its interrupt exclusively, edge
/// triggered, which no other user of the line expects).
pub(crate) fn validate_power_button(config: &GuestAcpiConfig<'_>) -> Result<(), AcpiError> {
    let Some(PowerButtonConfig { gsi }) = config.power_button else {
        return Ok(());
    };
    let io_apic = config.io_apic.ok_or(AcpiError::PowerButtonWithoutIoApic)?;
    if !io_apic.serves(gsi) {
        return Err(AcpiError::PowerButtonGsiOutOfRange(gsi));
    }
    let in_use = |user| Err(AcpiError::PowerButtonGsiInUse { gsi, user });
    if gsi == u32::from(config.pm.sci_irq) {
        return in_use(GsiUser::Sci);
    }
    if let Some(index) = config.serial_ports.iter().position(|port| port.gsi == gsi) {
        return in_use(GsiUser::SerialPort(index));
    }
    if config.cmos_rtc.is_some_and(|rtc| rtc.gsi == gsi) {
        return in_use(GsiUser::CmosRtc);
    }
    if let Some(pci) = config.pci {
        // validate_pci ran first, so the four GSIs do not overflow.
        if gsi.wrapping_sub(pci.intx_gsi_base) < PCI_INTX_PINS {
            return in_use(GsiUser::PciIntx);
        }
    }
    // The MADT adds IRQ0 -> GSI 2 unless the caller routes IRQ0 itself.
    let routes_irq0 = |o: &IsaOverride| o.source_irq == IsaOverride::TIMER.source_irq;
    let timer = (!config.isa_overrides.iter().any(routes_irq0)).then_some(IsaOverride::TIMER);
    if let Some(routed) = config.isa_overrides.iter().copied().chain(timer).find(|o| o.gsi == gsi) {
        return in_use(GsiUser::IsaOverride(routed.source_irq));
    }
    Ok(())
}

pub(crate) fn build_dsdt(
    oem_id: [u8; 6],
    serial_ports: &[SerialPort],
    cmos_rtc: Option<CmosRtc>,
    pci: Option<&PciRootConfig>,
    power_button: Option<PowerButtonConfig>,
) -> Result<Vec<u8>, AcpiError> {
    let s5_type = DataObject::Integer(u64::from(S5_SLEEP_TYPE));
    // SLP_TYPa, SLP_TYPb, then two reserved elements.
    let s5 = [s5_type, s5_type, DataObject::Integer(0), DataObject::Integer(0)];
    let mut aml = Vec::new();
    // The DSDT's scope is the root, so the relative name is `\_S5_`; this is
    // also exactly what iasl emits for `Name (\_S5, Package () {5, 5, 0, 0})`.
    encode_name("_S5_", &DataObject::Package(&s5), &mut aml)?;
    if !serial_ports.is_empty() || cmos_rtc.is_some() || pci.is_some() || power_button.is_some() {
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
        if let Some(pci) = pci {
            encode_pci_root(pci, &mut devices)?;
        }
        if let Some(button) = power_button {
            encode_power_button(button, &mut devices)?;
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

/// `Device (PCI0) { Name (_HID, EisaId ("PNP0A08")) Name (_CID, EisaId ("PNP0A03"))
/// Name (_SEG, Zero) Name (_BBN, Zero) Name (_UID, Zero) Name (_CRS, ...) Name (_PRT, ...) }`.
///
/// `_CRS`: bus numbers 0 to `bus_end`; `IO (Decode16, 0xCF8, 0xCF8, 1, 8)`,
/// which Linux's x86 `pci_acpi_root_prepare_resources` recognizes as the
/// bridge's own configuration ports and drops; the I/O windows around them;
/// the MMIO window. `_PRT`: `Package () { 0xDDDDFFFF, pin, Zero, gsi }` for
/// every slot and pin: a zero Source means `gsi` is a GSI, which Linux's
/// `acpi_pci_irq_enable` registers level-triggered and active low.
fn encode_pci_root(pci: &PciRootConfig, out: &mut Vec<u8>) -> Result<(), AmlError> {
    let mut resources = Vec::new();
    resource::word_bus_number(0, u16::from(pci.bus_end), &mut resources);
    resource::io_ports(PCI_CONFIG_PORT, PCI_CONFIG_PORT_COUNT, &mut resources);
    for (min, max) in PCI_IO_WINDOWS {
        resource::word_io_window(min, max, &mut resources);
    }
    resource::dword_memory_window(pci.mmio_start, pci.mmio_end, &mut resources);
    if pci.mmio64_len != 0 {
        let end = pci.mmio64_start.saturating_add(pci.mmio64_len - 1);
        resource::qword_memory_window(pci.mmio64_start, end, &mut resources);
    }
    resource::end(&mut resources);

    let routes: Vec<[DataObject<'_>; 4]> = (0..PCI_SLOTS)
        .flat_map(|slot| (0..PCI_INTX_PINS).map(move |pin| (slot, pin)))
        .map(|(slot, pin)| {
            // validate_pci checked that base + 3 fits.
            let gsi = pci.intx_gsi_base.wrapping_add((slot + pin) % PCI_INTX_PINS);
            [
                // _ADR form: device in the high word, 0xFFFF = any function.
                DataObject::Integer(u64::from(slot << 16 | 0xFFFF)),
                DataObject::Integer(u64::from(pin)),
                DataObject::Integer(0),
                DataObject::Integer(u64::from(gsi)),
            ]
        })
        .collect();
    let prt: Vec<DataObject<'_>> = routes.iter().map(|route| DataObject::Package(route)).collect();

    let mut body = Vec::new();
    let hid = eisa_id("PNP0A08").ok_or(AmlError::InvalidNameSegment)?;
    let cid = eisa_id("PNP0A03").ok_or(AmlError::InvalidNameSegment)?;
    encode_name("_HID", &DataObject::Integer(u64::from(hid)), &mut body)?;
    encode_name("_CID", &DataObject::Integer(u64::from(cid)), &mut body)?;
    encode_name("_SEG", &DataObject::Integer(0), &mut body)?;
    encode_name("_BBN", &DataObject::Integer(0), &mut body)?;
    encode_name("_UID", &DataObject::Integer(0), &mut body)?;
    encode_name("_CRS", &DataObject::Buffer(&resources), &mut body)?;
    encode_name("_PRT", &DataObject::Package(&prt), &mut body)?;
    encode_device("PCI0", &body, out)
}

/// `Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) Name (_UID, Zero) }` and
/// `Device (GED0) { Name (_HID, "ACPI0013") Name (_UID, Zero)
/// Name (_CRS, ResourceTemplate () { Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {gsi} })
/// Method (_EVT, 1, NotSerialized) { If (LEqual (Arg0, gsi)) { Notify (\_SB.PWRB, 0x80) } } }`.
///
/// Linux's GED driver (drivers/acpi/evged.c) requests every interrupt in
/// `_CRS` as a threaded, one-shot IRQ and evaluates `_EVT (gsi)` on each
/// (it would prefer a method `_Exx`/`_Lxx` named after the GSI; there is
/// none); the button driver (drivers/acpi/button.c) turns notification
/// 0x80 of a `PNP0C0C` device into a KEY_POWER press and release. The
/// trigger is edge, so one pulse of the line is one press, whatever the OS
/// does about acknowledging it: there is no status register to clear.
fn encode_power_button(button: PowerButtonConfig, out: &mut Vec<u8>) -> Result<(), AmlError> {
    let mut body = Vec::new();
    let hid = eisa_id(POWER_BUTTON_HID).ok_or(AmlError::InvalidNameSegment)?;
    encode_name("_HID", &DataObject::Integer(u64::from(hid)), &mut body)?;
    encode_name("_UID", &DataObject::Integer(0), &mut body)?;
    encode_device(POWER_BUTTON_NAME, &body, out)?;

    let mut resources = Vec::new();
    resource::interrupt(button.gsi, true, false, &mut resources);
    resource::end(&mut resources);
    let mut is_ours = Vec::new();
    encode_lequal(TermArg::Arg(0), TermArg::Integer(u64::from(button.gsi)), &mut is_ours)?;
    let mut notify = Vec::new();
    encode_notify(
        POWER_BUTTON_PATH,
        TermArg::Integer(BUTTON_PRESSED_NOTIFICATION),
        &mut notify,
    )?;
    let mut handler = Vec::new();
    encode_if(&is_ours, &notify, &mut handler)?;

    let mut body = Vec::new();
    encode_name("_HID", &DataObject::String(GED_HID), &mut body)?;
    encode_name("_UID", &DataObject::Integer(0), &mut body)?;
    encode_name("_CRS", &DataObject::Buffer(&resources), &mut body)?;
    encode_method("_EVT", 1, MethodSerialization::NotSerialized, &handler, &mut body)?;
    encode_device(GED_NAME, &body, out)
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
        let dsdt = build_dsdt(*b"KEEL  ", &[SerialPort { io_base: 0x3f8, gsi: 4 }], None, None, None).unwrap();
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
        let dsdt = build_dsdt(*b"KEEL  ", &[], Some(CmosRtc { io_base: 0x70, gsi: 8 }), None, None).unwrap();
        assert_eq!(&dsdt[SDT_HEADER_LEN..], expected);
    }

    /// The DSDT body from `_SB_`'s scope on, for a DSDT with only the PCI root.
    fn pci_scope(pci: &PciRootConfig) -> Vec<u8> {
        let dsdt = build_dsdt(*b"KEEL  ", &[], None, Some(pci), None).unwrap();
        // Skip the header and the 14-byte `\_S5_` declaration.
        dsdt[SDT_HEADER_LEN + 14..].to_vec()
    }

    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .position(|window| window == needle)
            .unwrap_or_else(|| panic!("{needle:02x?} not found"))
    }

    #[test]
    fn pci_root_identity_and_crs_match_iasl() {
        // iasl -p of Device (PCI0) { Name (_HID, EisaId ("PNP0A08")) Name (_CID, EisaId ("PNP0A03"))
        //   Name (_SEG, Zero) Name (_BBN, Zero) Name (_UID, Zero) Name (_CRS, ResourceTemplate () {
        //   WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1)
        //   IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
        //   WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0, 0x0CF7, 0, 0x0CF8)
        //   WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0x0D00, 0xFFFF, 0, 0xF300)
        //   DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
        //     0, 0xC0000000, 0xFEBFFFFF, 0, 0x3EC00000) }) ... }
        let expected: &[u8] = &[
            b'P', b'C', b'I', b'0', 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0, 0x0a, 0x08, 0x08, 0x5f, 0x43, 0x49,
            0x44, 0x0c, 0x41, 0xd0, 0x0a, 0x03, 0x08, 0x5f, 0x53, 0x45, 0x47, 0x00, 0x08, 0x5f, 0x42, 0x42, 0x4e, 0x00,
            0x08, 0x5f, 0x55, 0x49, 0x44, 0x00, 0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x48, 0x05, 0x0a, 0x54, 0x88, 0x0d,
            0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x47, 0x01, 0xf8, 0x0c,
            0xf8, 0x0c, 0x01, 0x08, 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0xf7, 0x0c, 0x00, 0x00,
            0xf8, 0x0c, 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3,
            0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xbf, 0xfe,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x3e, 0x79, 0x00,
        ];
        let scope = pci_scope(&PciRootConfig {
            mmio64_len: 0,
            ..PciRootConfig::KEEL_DEFAULT
        });
        assert_eq!(&scope[..1], &[0x10], "ScopeOp");
        let device = find(&scope, &[0x5b, 0x82]);
        let name = find(&scope, b"PCI0");
        assert!(name > device && name <= device + 6, "DeviceOp, PkgLength, PCI0");
        assert_eq!(&scope[name..name + expected.len()], expected);
    }

    #[test]
    fn the_64_bit_window_matches_iasl() {
        // iasl -p of QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable,
        //   ReadWrite, 0, 0x1000000000, 0x1FFFFFFFFF, 0, 0x1000000000)
        let expected: &[u8] = &[
            0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x10, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
        ];
        let scope = pci_scope(&PciRootConfig::KEEL_DEFAULT);
        let at = find(&scope, &expected[..4]);
        assert_eq!(&scope[at..at + expected.len()], expected);
        assert_eq!(
            &scope[at + expected.len()..at + expected.len() + 2],
            &[0x79, 0x00],
            "EndTag"
        );
    }

    #[test]
    fn pci_root_prt_routes_every_slot_and_pin_with_the_swizzle() {
        let scope = pci_scope(&PciRootConfig::KEEL_DEFAULT);
        let prt = find(&scope, b"_PRT") + 4;
        // PackageOp, two-byte PkgLength, 128 elements.
        assert_eq!(scope[prt], 0x12);
        assert_eq!(scope[prt + 1] >> 6, 1, "two-byte PkgLength");
        assert_eq!(scope[prt + 3], 128);
        // As iasl encodes Package () { 0xFFFF, Zero, Zero, 16 } and so on.
        let entries: [&[u8]; 4] = [
            &[0x12, 0x09, 0x04, 0x0b, 0xff, 0xff, 0x00, 0x00, 0x0a, 0x10],
            &[0x12, 0x09, 0x04, 0x0b, 0xff, 0xff, 0x01, 0x00, 0x0a, 0x11],
            &[0x12, 0x0a, 0x04, 0x0b, 0xff, 0xff, 0x0a, 0x02, 0x00, 0x0a, 0x12],
            &[0x12, 0x0a, 0x04, 0x0b, 0xff, 0xff, 0x0a, 0x03, 0x00, 0x0a, 0x13],
        ];
        let mut at = prt + 4;
        for entry in entries {
            assert_eq!(&scope[at..at + entry.len()], entry);
            at += entry.len();
        }
        // Slot 1: INTA on GSI 17 (the management function), INTD wraps to 16.
        let slot1: &[u8] = &[
            0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x0a, 0x11, //
            0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00, 0x01, 0x00, 0x0a, 0x12, //
            0x12, 0x0c, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00, 0x0a, 0x02, 0x00, 0x0a, 0x13, //
            0x12, 0x0c, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00, 0x0a, 0x03, 0x00, 0x0a, 0x10,
        ];
        assert_eq!(&scope[at..at + slot1.len()], slot1);
        // The last entry: slot 31, INTD -> GSI 16 + (31 + 3) % 4 = 18; it ends the table.
        let last: &[u8] = &[
            0x12, 0x0c, 0x04, 0x0c, 0xff, 0xff, 0x1f, 0x00, 0x0a, 0x03, 0x00, 0x0a, 0x12,
        ];
        assert_eq!(&scope[scope.len() - last.len()..], last);
    }

    #[test]
    fn pci_root_config_shapes_the_bus_range_window_and_gsis() {
        let pci = PciRootConfig {
            bus_end: 0xFF,
            mmio_start: 0x8000_0000,
            mmio_end: 0xDFFF_FFFF,
            mmio64_start: 0x10_0000_0000,
            mmio64_len: 0x10_0000_0000,
            intx_gsi_base: 20,
        };
        let scope = pci_scope(&pci);
        let bus = find(&scope, &[0x88, 0x0d, 0x00, 0x02]);
        assert_eq!(&scope[bus + 8..bus + 16], &[0, 0, 0xFF, 0, 0, 0, 0, 1], "buses 0-255");
        let memory = find(&scope, &[0x87, 0x17, 0x00, 0x00]);
        let window = &scope[memory + 10..memory + 26];
        assert_eq!(&window[..4], &0x8000_0000u32.to_le_bytes());
        assert_eq!(&window[4..8], &0xDFFF_FFFFu32.to_le_bytes());
        assert_eq!(&window[12..16], &0x6000_0000u32.to_le_bytes(), "length");
        let memory64 = find(&scope, &[0x8a, 0x2b, 0x00, 0x00]);
        assert_eq!(scope[memory64 + 5], 0x03, "read-write, cacheable");
        let window64 = &scope[memory64 + 14..memory64 + 46];
        assert_eq!(&window64[..8], &0x10_0000_0000u64.to_le_bytes());
        assert_eq!(&window64[8..16], &0x1F_FFFF_FFFFu64.to_le_bytes());
        assert_eq!(&window64[24..32], &0x10_0000_0000u64.to_le_bytes(), "length");
        let prt = find(&scope, b"_PRT") + 4;
        assert_eq!(
            &scope[prt + 4..prt + 14],
            &[0x12, 0x09, 0x04, 0x0b, 0xff, 0xff, 0x00, 0x00, 0x0a, 20]
        );
    }

    #[test]
    fn power_button_and_ged_match_iasl() {
        // iasl -on -p of: Name (_S5, Package () {5, 5, 0, 0}) Scope (_SB) {
        //   Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) Name (_UID, Zero) }
        //   Device (GED0) { Name (_HID, "ACPI0013") Name (_UID, Zero) Name (_CRS, ResourceTemplate () {
        //     Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) {23} })
        //     Method (_EVT, 1, NotSerialized) { If (LEqual (Arg0, 23)) { Notify (\_SB.PWRB, 0x80) } } } }
        // (-on keeps `\_SB.PWRB` whole; by default iasl shortens it to `PWRB`, which the
        // namespace search rules resolve to the same device.)
        let expected: &[u8] = &[
            0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00, 0x10, 0x48, 0x06, 0x5f,
            0x53, 0x42, 0x5f, 0x5b, 0x82, 0x15, 0x50, 0x57, 0x52, 0x42, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0,
            0x0c, 0x0c, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x00, 0x5b, 0x82, 0x49, 0x04, 0x47, 0x45, 0x44, 0x30, 0x08, 0x5f,
            0x48, 0x49, 0x44, 0x0d, 0x41, 0x43, 0x50, 0x49, 0x30, 0x30, 0x31, 0x33, 0x00, 0x08, 0x5f, 0x55, 0x49, 0x44,
            0x00, 0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x0e, 0x0a, 0x0b, 0x89, 0x06, 0x00, 0x03, 0x01, 0x17, 0x00, 0x00,
            0x00, 0x79, 0x00, 0x14, 0x19, 0x5f, 0x45, 0x56, 0x54, 0x01, 0xa0, 0x12, 0x93, 0x68, 0x0a, 0x17, 0x86, 0x5c,
            0x2e, 0x5f, 0x53, 0x42, 0x5f, 0x50, 0x57, 0x52, 0x42, 0x0a, 0x80,
        ];
        let dsdt = build_dsdt(*b"KEEL  ", &[], None, None, Some(PowerButtonConfig::KEEL_DEFAULT)).unwrap();
        assert_eq!(&dsdt[SDT_HEADER_LEN..], expected);
    }

    #[test]
    fn power_button_follows_the_other_devices_and_carries_its_gsi() {
        let serial = [SerialPort { io_base: 0x3f8, gsi: 4 }];
        let pci = PciRootConfig::KEEL_DEFAULT;
        let button = Some(PowerButtonConfig { gsi: 0x1_0000 });
        let dsdt = build_dsdt(*b"KEEL  ", &serial, None, Some(&pci), button).unwrap();
        let without = build_dsdt(*b"KEEL  ", &serial, None, Some(&pci), None).unwrap();
        let (com1, pci0) = (find(&dsdt, b"COM1"), find(&dsdt, b"PCI0"));
        let (pwrb, ged0) = (find(&dsdt, b"PWRB"), find(&dsdt, b"GED0"));
        assert!(com1 < pci0 && pci0 < pwrb && pwrb < ged0);
        // The interrupt descriptor and the _EVT comparison both name the GSI.
        let interrupt = dsdt
            .windows(5)
            .rposition(|window| window == [0x89, 0x06, 0x00, 0x03, 0x01])
            .unwrap();
        assert!(interrupt > ged0, "GED0's own descriptor, not COM1's");
        assert_eq!(&dsdt[interrupt + 5..interrupt + 9], &0x1_0000u32.to_le_bytes());
        let compare = find(&dsdt, &[0x93, 0x68]);
        assert_eq!(&dsdt[compare + 2..compare + 7], &[0x0C, 0x00, 0x00, 0x01, 0x00]);
        // Everything before the button is unchanged but the scope's PkgLength.
        let scope = find(&without, b"_SB_");
        assert_eq!(&dsdt[scope..pwrb - 3], &without[scope..]);
    }

    #[test]
    fn dsdt_body_is_the_s5_declaration() {
        let dsdt = build_dsdt(*b"KEEL  ", &[], None, None, None).unwrap();
        assert_eq!(&dsdt[0..4], b"DSDT");
        assert_eq!(dsdt[8], 2);
        assert_eq!(
            &dsdt[SDT_HEADER_LEN..],
            &[0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0A, 5, 0x0A, 5, 0, 0]
        );
    }
}
