//! A deliberately independent reader for the generated tables: it knows the
//! ACPI layouts from the spec, not from the generator's constants.
#![allow(dead_code)]

use keel_acpi_tables::{
    BootArchFlags, GuestAcpiConfig, IoApicConfig, IsaOverride, PowerManagement, ResetRegister, DEFAULT_IO_APIC_ADDRESS,
    DEFAULT_LOCAL_APIC_ADDRESS, KEEL_OEM_ID,
};

pub const SCI_OVERRIDE: IsaOverride = IsaOverride {
    source_irq: 9,
    gsi: 9,
    flags: IsaOverride::POLARITY_ACTIVE_HIGH | IsaOverride::TRIGGER_LEVEL,
};

pub fn typical_config(cpus: &[u32]) -> GuestAcpiConfig<'_> {
    GuestAcpiConfig {
        cpus,
        local_apic_address: DEFAULT_LOCAL_APIC_ADDRESS,
        io_apic: Some(IoApicConfig {
            id: 8,
            address: DEFAULT_IO_APIC_ADDRESS,
            gsi_base: 0,
        }),
        isa_overrides: &[SCI_OVERRIDE],
        pm: PowerManagement {
            pm1a_event_block: 0x600,
            pm1a_control_block: 0x604,
            pm_timer_block: None,
            sci_irq: 9,
            reset_register: ResetRegister::PCI_RESET_CONTROL,
            sleep_registers: None,
        },
        hw_reduced: false,
        boot_arch_flags: BootArchFlags::KEEL_DEFAULT,
        oem_id: KEEL_OEM_ID,
        serial_ports: &[],
        cmos_rtc: None,
        pci: None,
        power_button: None,
    }
}

pub fn byte_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

pub fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(bytes[offset..offset + 2].try_into().unwrap())
}

pub fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}

pub fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap())
}

/// The blob as the guest would see it at `base`.
pub struct GuestView<'a> {
    pub bytes: &'a [u8],
    pub base: u64,
}

impl<'a> GuestView<'a> {
    pub fn slice(&self, gpa: u64, len: usize) -> &'a [u8] {
        let offset = usize::try_from(gpa.checked_sub(self.base).expect("gpa below blob")).unwrap();
        self.bytes
            .get(offset..offset + len)
            .unwrap_or_else(|| panic!("{gpa:#x}+{len} outside the blob"))
    }

    /// A System Description Table; asserts its length fits and it sums to 0.
    pub fn table(&self, gpa: u64) -> Table<'a> {
        let header = self.slice(gpa, 36);
        let len = u32_at(header, 4) as usize;
        let bytes = self.slice(gpa, len);
        assert_eq!(byte_sum(bytes), 0, "{} checksum", signature(bytes));
        Table { gpa, bytes }
    }

    pub fn rsdp(&self, gpa: u64) -> &'a [u8] {
        self.slice(gpa, 36)
    }

    pub fn xsdt_entries(&self, rsdp_gpa: u64) -> Vec<u64> {
        let xsdt = self.table(u64_at(self.rsdp(rsdp_gpa), 24));
        assert_eq!(xsdt.signature(), "XSDT");
        xsdt.body().chunks_exact(8).map(|c| u64_at(c, 0)).collect()
    }

    pub fn find(&self, rsdp_gpa: u64, wanted: &str) -> Table<'a> {
        self.xsdt_entries(rsdp_gpa)
            .into_iter()
            .map(|gpa| self.table(gpa))
            .find(|table| table.signature() == wanted)
            .unwrap_or_else(|| panic!("no {wanted} in XSDT"))
    }
}

pub fn signature(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..4]).into_owned()
}

pub struct Table<'a> {
    pub gpa: u64,
    pub bytes: &'a [u8],
}

impl<'a> Table<'a> {
    pub fn signature(&self) -> String {
        signature(self.bytes)
    }

    pub fn revision(&self) -> u8 {
        self.bytes[8]
    }

    pub fn body(&self) -> &'a [u8] {
        &self.bytes[36..]
    }
}

/// A Generic Address Structure as (space, bit width, bit offset, access size, address).
pub fn gas_at(bytes: &[u8], offset: usize) -> (u8, u8, u8, u8, u64) {
    (
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
        u64_at(bytes, offset + 4),
    )
}

#[derive(Debug, PartialEq, Eq)]
pub enum MadtEntry {
    LocalApic { uid: u8, apic_id: u8, flags: u32 },
    IoApic { id: u8, address: u32, gsi_base: u32 },
    Override { bus: u8, source: u8, gsi: u32, flags: u16 },
    LocalApicAddress(u64),
    X2Apic { apic_id: u32, flags: u32, uid: u32 },
}

pub fn madt_entries(madt: &Table<'_>) -> Vec<MadtEntry> {
    let mut entries = Vec::new();
    let mut rest = &madt.body()[8..];
    while !rest.is_empty() {
        let (kind, len) = (rest[0], rest[1] as usize);
        assert!(len >= 2 && len <= rest.len(), "bad MADT entry length {len}");
        let e = &rest[..len];
        entries.push(match (kind, len) {
            (0, 8) => MadtEntry::LocalApic {
                uid: e[2],
                apic_id: e[3],
                flags: u32_at(e, 4),
            },
            (1, 12) => MadtEntry::IoApic {
                id: e[2],
                address: u32_at(e, 4),
                gsi_base: u32_at(e, 8),
            },
            (2, 10) => MadtEntry::Override {
                bus: e[2],
                source: e[3],
                gsi: u32_at(e, 4),
                flags: u16_at(e, 8),
            },
            (5, 12) => MadtEntry::LocalApicAddress(u64_at(e, 4)),
            (9, 16) => MadtEntry::X2Apic {
                apic_id: u32_at(e, 4),
                flags: u32_at(e, 8),
                uid: u32_at(e, 12),
            },
            other => panic!("unexpected MADT entry {other:?}"),
        });
        rest = &rest[len..];
    }
    entries
}
