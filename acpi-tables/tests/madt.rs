//! MADT content as Linux will enumerate it.

mod common;

use common::{madt_entries, typical_config, u32_at, GuestView, MadtEntry, SCI_OVERRIDE};
use keel_acpi_tables::{build_guest_acpi, AcpiError, IsaOverride, MAX_GUEST_CPUS};

const BASE: u64 = 0x9_F000;

fn madt_of(config: &keel_acpi_tables::GuestAcpiConfig<'_>) -> (u32, u32, Vec<MadtEntry>) {
    let blob = build_guest_acpi(config, BASE).unwrap();
    let view = GuestView {
        bytes: &blob.bytes,
        base: BASE,
    };
    let madt = view.find(blob.rsdp_gpa, "APIC");
    assert_eq!(madt.revision(), 5);
    (u32_at(madt.body(), 0), u32_at(madt.body(), 4), madt_entries(&madt))
}

fn local_apic(uid: u8, apic_id: u8) -> MadtEntry {
    MadtEntry::LocalApic { uid, apic_id, flags: 1 }
}

#[test]
fn lists_cpus_io_apic_and_overrides_in_order() {
    let (lapic_address, flags, entries) = madt_of(&typical_config(&[0, 1, 2, 3]));
    assert_eq!(lapic_address, 0xFEE0_0000);
    assert_eq!(flags & 1, 1, "PCAT_COMPAT");
    assert_eq!(
        entries,
        [
            local_apic(0, 0),
            local_apic(1, 1),
            local_apic(2, 2),
            local_apic(3, 3),
            MadtEntry::IoApic {
                id: 8,
                address: 0xFEC0_0000,
                gsi_base: 0
            },
            MadtEntry::Override {
                bus: 0,
                source: 0,
                gsi: 2,
                flags: 0
            },
            MadtEntry::Override {
                bus: 0,
                source: 9,
                gsi: 9,
                flags: SCI_OVERRIDE.flags
            },
        ]
    );
}

#[test]
fn ids_from_255_get_x2apic_entries_with_sequential_uids() {
    let (_, _, entries) = madt_of(&typical_config(&[0, 254, 255, 0x1_0000]));
    assert_eq!(entries[0], local_apic(0, 0));
    assert_eq!(entries[1], local_apic(1, 254));
    assert_eq!(
        entries[2],
        MadtEntry::X2Apic {
            apic_id: 255,
            flags: 1,
            uid: 2
        }
    );
    assert_eq!(
        entries[3],
        MadtEntry::X2Apic {
            apic_id: 0x1_0000,
            flags: 1,
            uid: 3
        }
    );
}

#[test]
fn maximum_cpu_count_is_accepted() {
    let ids: Vec<u32> = (0..MAX_GUEST_CPUS as u32).map(|i| i * 2).collect();
    let (_, _, entries) = madt_of(&typical_config(&ids));
    let processors = entries
        .iter()
        .filter(|e| matches!(e, MadtEntry::LocalApic { .. } | MadtEntry::X2Apic { .. }))
        .count();
    assert_eq!(processors, MAX_GUEST_CPUS);
    assert_eq!(
        entries[MAX_GUEST_CPUS - 1],
        MadtEntry::X2Apic {
            apic_id: 508,
            flags: 1,
            uid: 254
        }
    );
}

#[test]
fn no_io_apic_means_no_routing_entries() {
    let mut config = typical_config(&[0]);
    config.io_apic = None;
    config.isa_overrides = &[];
    let (_, _, entries) = madt_of(&config);
    assert_eq!(entries, [local_apic(0, 0)]);

    config.isa_overrides = &[SCI_OVERRIDE];
    assert_eq!(
        build_guest_acpi(&config, BASE),
        Err(AcpiError::IsaOverrideWithoutIoApic)
    );
}

#[test]
fn caller_can_reroute_irq0() {
    let mut config = typical_config(&[0]);
    let timer_on_pin0 = IsaOverride {
        source_irq: 0,
        gsi: 0,
        flags: 0,
    };
    let overrides = [timer_on_pin0];
    config.isa_overrides = &overrides;
    let (_, _, entries) = madt_of(&config);
    let routed: Vec<_> = entries
        .iter()
        .filter(|e| matches!(e, MadtEntry::Override { .. }))
        .collect();
    assert_eq!(
        routed,
        [&MadtEntry::Override {
            bus: 0,
            source: 0,
            gsi: 0,
            flags: 0
        }]
    );
}

#[test]
fn local_apic_above_4g_gets_an_address_override() {
    let mut config = typical_config(&[0]);
    config.local_apic_address = 0x10_FEE0_0000;
    let (lapic_address, _, entries) = madt_of(&config);
    assert_eq!(lapic_address, 0);
    assert_eq!(entries.last(), Some(&MadtEntry::LocalApicAddress(0x10_FEE0_0000)));
}

#[test]
fn bad_overrides_are_rejected() {
    let mut config = typical_config(&[0]);
    let overrides = [IsaOverride {
        source_irq: 20,
        gsi: 20,
        flags: 0,
    }];
    config.isa_overrides = &overrides;
    assert_eq!(build_guest_acpi(&config, BASE), Err(AcpiError::InvalidIsaIrq(20)));
}
