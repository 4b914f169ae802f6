//! Cross-check against rust-osdev's `acpi` crate, an independent parser that
//! validates signatures and checksums the way an OS would.

mod common;

use std::ptr::NonNull;

use acpi::address::{AccessSize, AddressSpace};
use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use common::typical_config;
use keel_acpi_tables::{build_guest_acpi, GuestAcpiConfig};

const BASE: usize = 0xF_0000;

/// Serves "physical memory" out of the generated blob.
#[derive(Clone, Copy)]
struct BlobHandler {
    base: usize,
    bytes: &'static [u8],
}

impl AcpiHandler for BlobHandler {
    unsafe fn map_physical_region<T>(&self, address: usize, size: usize) -> PhysicalMapping<Self, T> {
        let offset = address.checked_sub(self.base).expect("mapping below the blob");
        let region = self
            .bytes
            .get(offset..offset + size)
            .unwrap_or_else(|| panic!("mapping {address:#x}+{size} outside the blob"));
        let start = NonNull::new(region.as_ptr().cast_mut().cast::<T>()).unwrap();
        unsafe { PhysicalMapping::new(address, start, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

fn parse(config: &GuestAcpiConfig<'_>) -> AcpiTables<BlobHandler> {
    let blob = build_guest_acpi(config, BASE as u64).unwrap();
    let rsdp = usize::try_from(blob.rsdp_gpa).unwrap();
    let handler = BlobHandler {
        base: BASE,
        bytes: Box::leak(blob.bytes.into_boxed_slice()),
    };
    unsafe { AcpiTables::from_rsdp(handler, rsdp) }.expect("acpi crate accepts the RSDP and XSDT")
}

#[test]
fn acpi_crate_finds_every_table() {
    let tables = parse(&typical_config(&[0, 1]));
    assert_eq!(tables.revision(), 2);
    let signatures: Vec<String> = tables
        .headers()
        .map(|header| header.signature.as_str().to_owned())
        .collect();
    assert_eq!(signatures, ["FACP", "APIC"]);
    let dsdt = tables.dsdt().expect("DSDT reachable and checksummed");
    assert!(dsdt.length > 0);
}

#[test]
fn acpi_crate_reads_fadt_registers() {
    let mut config = typical_config(&[0]);
    config.pm.pm_timer_block = Some(0x608);
    let tables = parse(&config);
    let fadt = tables.find_table::<Fadt>().unwrap();
    let pm1a_event = fadt.pm1a_event_block().unwrap();
    assert!(matches!(pm1a_event.address_space, AddressSpace::SystemIo));
    assert_eq!((pm1a_event.address, pm1a_event.bit_width), (0x600, 32));
    let pm1a_control = fadt.pm1a_control_block().unwrap();
    assert_eq!((pm1a_control.address, pm1a_control.bit_width), (0x604, 16));
    assert!(fadt.pm1b_event_block().unwrap().is_none());
    let timer = fadt.pm_timer_block().unwrap().expect("timer present");
    assert_eq!(timer.address, 0x608);
    let reset = fadt.reset_register().unwrap();
    assert!(matches!(reset.access_size, AccessSize::ByteAccess));
    assert_eq!((reset.address, fadt.reset_value), (0xCF9, 0x06));
    // Copied out: the table is packed, so its fields cannot be borrowed.
    let (flags, boot_arch) = ({ fadt.flags }, { fadt.iapc_boot_arch });
    assert!(flags.supports_system_reset_via_fadt());
    assert!(!flags.system_is_hw_reduced_acpi());
    assert!(boot_arch.dont_probe_vga());
    assert!(!boot_arch.motherboard_implements_8042());
    assert_eq!({ fadt.smi_cmd_port }, 0);
    assert_eq!({ fadt.sci_interrupt }, 9);
    assert!(fadt.facs_address().unwrap().is_multiple_of(64));
}

#[test]
fn acpi_crate_reads_madt_entries() {
    let tables = parse(&typical_config(&[0, 1, 300]));
    let madt = tables.find_table::<Madt>().unwrap();
    let madt = madt.get();
    assert_eq!({ madt.local_apic_address }, 0xFEE0_0000);
    assert!(madt.supports_8259());
    let mut local_apic_ids = Vec::new();
    let mut x2apic_ids = Vec::new();
    let mut overrides = Vec::new();
    let mut io_apics = 0;
    for entry in madt.entries() {
        match entry {
            MadtEntry::LocalApic(e) => local_apic_ids.push(e.apic_id),
            MadtEntry::LocalX2Apic(e) => x2apic_ids.push(e.x2apic_id),
            MadtEntry::IoApic(e) => {
                io_apics += 1;
                assert_eq!({ e.io_apic_address }, 0xFEC0_0000);
            }
            MadtEntry::InterruptSourceOverride(e) => overrides.push((e.irq, e.global_system_interrupt)),
            _ => panic!("unexpected MADT entry"),
        }
    }
    assert_eq!(local_apic_ids, [0, 1]);
    assert_eq!(x2apic_ids, [300]);
    assert_eq!(io_apics, 1);
    assert_eq!(overrides, [(0, 2), (9, 9)]);
}
