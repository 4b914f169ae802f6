//! The root pointers and the overall layout of the blob.

mod common;

use common::{byte_sum, signature, typical_config, u32_at, u64_at, GuestView};
use keel_acpi_tables::{build_guest_acpi, AcpiError, MAX_GUEST_CPUS};

const BASE: u64 = 0xE_0000;

#[test]
fn rsdp_is_revision_2_with_both_checksums() {
    let blob = build_guest_acpi(&typical_config(&[0, 1]), BASE).unwrap();
    let view = GuestView {
        bytes: &blob.bytes,
        base: BASE,
    };
    assert_eq!(blob.rsdp_gpa, BASE);
    let rsdp = view.rsdp(blob.rsdp_gpa);
    assert_eq!(&rsdp[0..8], b"RSD PTR ");
    assert_eq!(&rsdp[9..15], b"KEEL  ");
    assert_eq!(rsdp[15], 2, "revision");
    assert_eq!(u32_at(rsdp, 16), 0, "no RSDT");
    assert_eq!(u32_at(rsdp, 20), 36, "length");
    assert_eq!(byte_sum(&rsdp[..20]), 0, "ACPI 1.0 checksum");
    assert_eq!(byte_sum(rsdp), 0, "extended checksum");
}

#[test]
fn xsdt_lists_fadt_then_madt_inside_the_blob() {
    let blob = build_guest_acpi(&typical_config(&[0]), BASE).unwrap();
    let view = GuestView {
        bytes: &blob.bytes,
        base: BASE,
    };
    let entries = view.xsdt_entries(blob.rsdp_gpa);
    assert_eq!(entries.len(), 2);
    let signatures: Vec<String> = entries.iter().map(|gpa| view.table(*gpa).signature()).collect();
    assert_eq!(signatures, ["FACP", "APIC"]);
    for gpa in entries {
        assert_eq!(gpa % 8, 0, "table at {gpa:#x} is 8-byte aligned");
    }
}

#[test]
fn every_table_sums_to_zero_and_is_reachable() {
    let blob = build_guest_acpi(&typical_config(&[0, 1, 2]), BASE).unwrap();
    let view = GuestView {
        bytes: &blob.bytes,
        base: BASE,
    };
    let xsdt_gpa = u64_at(view.rsdp(blob.rsdp_gpa), 24);
    let fadt = view.find(blob.rsdp_gpa, "FACP");
    let dsdt = view.table(u64_at(fadt.bytes, 140));
    assert_eq!(dsdt.signature(), "DSDT");
    let facs = view.slice(u64_at(fadt.bytes, 132), 64);
    assert_eq!(signature(facs), "FACS");
    assert_eq!(u32_at(facs, 4), 64);

    // Every byte is either padding or belongs to a table the guest can reach.
    let madt = view.find(blob.rsdp_gpa, "APIC");
    let xsdt = view.table(xsdt_gpa);
    let covered: usize = [
        36,
        xsdt.bytes.len(),
        fadt.bytes.len(),
        madt.bytes.len(),
        dsdt.bytes.len(),
        64,
    ]
    .iter()
    .sum();
    assert!(blob.bytes.len() >= covered);
    assert!(
        blob.bytes.len() - covered < 16 + 4 * 8 + 64,
        "layout wastes little space"
    );
}

#[test]
fn unaligned_base_still_aligns_rsdp_and_facs() {
    let base = 0x1_0003;
    let blob = build_guest_acpi(&typical_config(&[0]), base).unwrap();
    assert_eq!(blob.rsdp_gpa, 0x1_0010);
    assert!(blob.bytes[..13].iter().all(|b| *b == 0), "leading padding is zero");
    let view = GuestView {
        bytes: &blob.bytes,
        base,
    };
    let fadt = view.find(blob.rsdp_gpa, "FACP");
    assert_eq!(u64_at(fadt.bytes, 132) % 64, 0, "FACS 64-byte aligned");
}

#[test]
fn tables_above_4g_use_only_64_bit_pointers() {
    let base = 0x1_0000_0000;
    let blob = build_guest_acpi(&typical_config(&[0]), base).unwrap();
    let view = GuestView {
        bytes: &blob.bytes,
        base,
    };
    let fadt = view.find(blob.rsdp_gpa, "FACP");
    assert_eq!(u32_at(fadt.bytes, 36), 0, "FIRMWARE_CTRL");
    assert_eq!(u32_at(fadt.bytes, 40), 0, "DSDT");
    assert!(u64_at(fadt.bytes, 132) > base, "X_FIRMWARE_CTRL");
    assert_eq!(view.table(u64_at(fadt.bytes, 140)).signature(), "DSDT");
}

#[test]
fn output_is_deterministic() {
    let config = typical_config(&[0, 1]);
    assert_eq!(build_guest_acpi(&config, BASE), build_guest_acpi(&config, BASE));
}

#[test]
fn region_past_the_address_space_is_rejected() {
    let result = build_guest_acpi(&typical_config(&[0]), u64::MAX - 100);
    assert_eq!(result, Err(AcpiError::AddressOverflow));
}

#[test]
fn cpu_list_errors() {
    assert_eq!(build_guest_acpi(&typical_config(&[]), BASE), Err(AcpiError::NoCpus));
    let too_many: Vec<u32> = (0..=MAX_GUEST_CPUS as u32).collect();
    assert_eq!(
        build_guest_acpi(&typical_config(&too_many), BASE),
        Err(AcpiError::TooManyCpus {
            count: MAX_GUEST_CPUS + 1,
            max: MAX_GUEST_CPUS
        })
    );
    assert_eq!(
        build_guest_acpi(&typical_config(&[1, 1]), BASE),
        Err(AcpiError::DuplicateApicId(1))
    );
}
