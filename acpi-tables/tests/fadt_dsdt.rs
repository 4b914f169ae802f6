//! FADT fields and the DSDT's `\_S5_` object.

mod common;

use common::{gas_at, typical_config, u16_at, u32_at, u64_at, GuestView};
use keel_acpi_tables::{
    build_guest_acpi, AcpiError, BootArchFlags, PciRootConfig, SleepRegisters, DEFAULT_LOCAL_APIC_ADDRESS,
    S5_SLEEP_TYPE,
};

const BASE: u64 = 0x7F_F000;
const SYSTEM_IO: u8 = 1;

const FLAG_WBINVD: u32 = 1 << 0;
const FLAG_RESET_REG_SUP: u32 = 1 << 10;
const FLAG_HW_REDUCED: u32 = 1 << 20;

fn fadt_and_view(config: &keel_acpi_tables::GuestAcpiConfig<'_>) -> (Vec<u8>, Vec<u8>) {
    let blob = build_guest_acpi(config, BASE).unwrap();
    let view = GuestView {
        bytes: &blob.bytes,
        base: BASE,
    };
    let fadt = view.find(blob.rsdp_gpa, "FACP").bytes.to_vec();
    (fadt, blob.bytes.clone())
}

#[test]
fn fadt_is_revision_6_and_points_at_the_dsdt_both_ways() {
    let (fadt, bytes) = fadt_and_view(&typical_config(&[0]));
    let view = GuestView {
        bytes: &bytes,
        base: BASE,
    };
    assert_eq!(fadt.len(), 276);
    assert_eq!(fadt[8], 6, "revision");
    assert_eq!(fadt[131], 5, "minor version");
    let dsdt_gpa = u64_at(&fadt, 140);
    assert_eq!(u64::from(u32_at(&fadt, 40)), dsdt_gpa, "DSDT == X_DSDT");
    assert_eq!(view.table(dsdt_gpa).signature(), "DSDT");
    let facs_gpa = u64_at(&fadt, 132);
    assert_eq!(
        u64::from(u32_at(&fadt, 36)),
        facs_gpa,
        "FIRMWARE_CTRL == X_FIRMWARE_CTRL"
    );
    assert_eq!(&view.slice(facs_gpa, 4), b"FACS");
}

#[test]
fn pm1a_blocks_in_legacy_and_extended_form() {
    let (fadt, _) = fadt_and_view(&typical_config(&[0]));
    assert_eq!(u16_at(&fadt, 46), 9, "SCI_INT");
    assert_eq!(u32_at(&fadt, 56), 0x600, "PM1a_EVT_BLK");
    assert_eq!(u32_at(&fadt, 64), 0x604, "PM1a_CNT_BLK");
    assert_eq!((fadt[88], fadt[89]), (4, 2), "PM1_EVT_LEN, PM1_CNT_LEN");
    assert_eq!(gas_at(&fadt, 148), (SYSTEM_IO, 32, 0, 2, 0x600), "X_PM1a_EVT_BLK");
    assert_eq!(gas_at(&fadt, 172), (SYSTEM_IO, 16, 0, 2, 0x604), "X_PM1a_CNT_BLK");
    for (name, offset) in [("X_PM1b_EVT", 160), ("X_PM1b_CNT", 184), ("X_GPE0", 220)] {
        assert_eq!(gas_at(&fadt, offset), (0, 0, 0, 0, 0), "{name} absent");
    }
}

#[test]
fn no_smi_port_so_acpi_is_already_enabled() {
    let (fadt, _) = fadt_and_view(&typical_config(&[0]));
    assert_eq!(u32_at(&fadt, 48), 0, "SMI_CMD");
    assert_eq!((fadt[52], fadt[53]), (0, 0), "ACPI_ENABLE/DISABLE");
}

#[test]
fn reset_register_is_advertised() {
    let (fadt, _) = fadt_and_view(&typical_config(&[0]));
    let flags = u32_at(&fadt, 112);
    assert_ne!(flags & FLAG_RESET_REG_SUP, 0);
    assert_ne!(flags & FLAG_WBINVD, 0);
    assert_eq!(flags & FLAG_HW_REDUCED, 0);
    assert_eq!(gas_at(&fadt, 116), (SYSTEM_IO, 8, 0, 1, 0xCF9), "RESET_REG");
    assert_eq!(fadt[128], 0x06, "RESET_VALUE");
}

#[test]
fn boot_arch_flags_are_copied() {
    let (fadt, _) = fadt_and_view(&typical_config(&[0]));
    assert_eq!(u16_at(&fadt, 109), 0b10_0100, "no VGA, no CMOS RTC, no 8042");

    let mut config = typical_config(&[0]);
    config.boot_arch_flags = BootArchFlags::KEEL_DEFAULT.with_i8042(true);
    let (fadt, _) = fadt_and_view(&config);
    assert_eq!(u16_at(&fadt, 109), 0b10_0110);
}

#[test]
fn pm_timer_is_optional() {
    let (fadt, _) = fadt_and_view(&typical_config(&[0]));
    assert_eq!((u32_at(&fadt, 76), fadt[91]), (0, 0));
    assert_eq!(gas_at(&fadt, 208), (0, 0, 0, 0, 0));

    let mut config = typical_config(&[0]);
    config.pm.pm_timer_block = Some(0x608);
    let (fadt, _) = fadt_and_view(&config);
    assert_eq!((u32_at(&fadt, 76), fadt[91]), (0x608, 4));
    assert_eq!(gas_at(&fadt, 208), (SYSTEM_IO, 32, 0, 3, 0x608));
}

#[test]
fn hw_reduced_sets_flag_drops_facs_and_uses_sleep_registers() {
    let mut config = typical_config(&[0]);
    config.hw_reduced = true;
    config.pm.sleep_registers = Some(SleepRegisters {
        control_port: 0x3C0,
        status_port: 0x3C1,
    });
    let (fadt, _) = fadt_and_view(&config);
    assert_ne!(u32_at(&fadt, 112) & FLAG_HW_REDUCED, 0);
    assert_eq!(u64_at(&fadt, 132), 0, "no FACS");
    assert_eq!(u32_at(&fadt, 36), 0);
    assert_eq!(gas_at(&fadt, 244), (SYSTEM_IO, 8, 0, 1, 0x3C0), "SLEEP_CONTROL_REG");
    assert_eq!(gas_at(&fadt, 256), (SYSTEM_IO, 8, 0, 1, 0x3C1), "SLEEP_STATUS_REG");
}

#[test]
fn full_acpi_needs_pm1a_blocks() {
    let mut config = typical_config(&[0]);
    config.pm.pm1a_control_block = 0;
    assert_eq!(build_guest_acpi(&config, BASE), Err(AcpiError::MissingPm1aBlock));
    config.hw_reduced = true;
    assert!(build_guest_acpi(&config, BASE).is_ok());
}

#[test]
fn dsdt_declares_s5_package() {
    let blob = build_guest_acpi(&typical_config(&[0]), BASE).unwrap();
    let view = GuestView {
        bytes: &blob.bytes,
        base: BASE,
    };
    let fadt = view.find(blob.rsdp_gpa, "FACP");
    let dsdt = view.table(u64_at(fadt.bytes, 140));
    assert_eq!(dsdt.revision(), 2);
    let aml = dsdt.body();
    let name_at = aml.windows(4).position(|w| w == b"_S5_").expect("DSDT names _S5_");
    assert_eq!(aml[name_at - 1], 0x08, "NameOp at root scope");
    let package = &aml[name_at + 4..];
    assert_eq!(package[0], 0x12, "PackageOp");
    assert_eq!(package[2], 4, "four elements");
    assert_eq!(&package[3..7], &[0x0A, S5_SLEEP_TYPE, 0x0A, S5_SLEEP_TYPE]);
    assert_eq!(&package[7..9], &[0x00, 0x00]);
    assert_eq!(usize::from(package[1]), package.len() - 1, "PkgLength ends the table");
}

fn dsdt_body(config: &keel_acpi_tables::GuestAcpiConfig<'_>) -> Vec<u8> {
    let blob = build_guest_acpi(config, BASE).unwrap();
    let view = GuestView {
        bytes: &blob.bytes,
        base: BASE,
    };
    let fadt = view.find(blob.rsdp_gpa, "FACP");
    view.table(u64_at(fadt.bytes, 140)).body().to_vec()
}

#[test]
fn pci_root_appears_only_when_configured() {
    let without = dsdt_body(&typical_config(&[0]));
    assert!(!without.windows(4).any(|w| w == b"PCI0"));
    let mut config = typical_config(&[0]);
    config.pci = Some(PciRootConfig::KEEL_DEFAULT);
    let with = dsdt_body(&config);
    let device = with.windows(4).position(|w| w == b"PCI0").expect("PCI0 declared");
    assert_eq!(
        &with[device - 4..device - 2],
        &[0x5b, 0x82],
        "DeviceOp, two-byte PkgLength"
    );
    assert!(with.windows(4).any(|w| w == b"_SB_"), "inside \\_SB");
    for name in [b"_HID", b"_CID", b"_SEG", b"_BBN", b"_UID", b"_CRS", b"_PRT"] {
        assert!(
            with[device..].windows(4).any(|w| w == name),
            "{}",
            String::from_utf8_lossy(name)
        );
    }
}

#[test]
fn pci_window_must_be_nonempty_and_clear_of_the_apics() {
    let mut config = typical_config(&[0]);
    config.pci = Some(PciRootConfig {
        mmio_start: 0xC000_0000,
        mmio_end: 0xBFFF_FFFF,
        ..PciRootConfig::KEEL_DEFAULT
    });
    assert_eq!(
        build_guest_acpi(&config, BASE),
        Err(AcpiError::PciWindowEmpty {
            start: 0xC000_0000,
            end: 0xBFFF_FFFF
        })
    );
    config.pci = Some(PciRootConfig {
        mmio_end: 0xFEC0_0000,
        ..PciRootConfig::KEEL_DEFAULT
    });
    assert_eq!(
        build_guest_acpi(&config, BASE),
        Err(AcpiError::PciWindowOverlapsApic { address: 0xFEC0_0000 })
    );
    config.pci = Some(PciRootConfig {
        mmio_start: 0xFEE0_0FFF,
        mmio_end: 0xFFFF_FFFF,
        ..PciRootConfig::KEEL_DEFAULT
    });
    assert_eq!(
        build_guest_acpi(&config, BASE),
        Err(AcpiError::PciWindowOverlapsApic {
            address: DEFAULT_LOCAL_APIC_ADDRESS
        })
    );
    // Without an I/O APIC only the local APIC constrains the window.
    config.io_apic = None;
    config.isa_overrides = &[];
    config.pci = Some(PciRootConfig {
        mmio_end: 0xFEC0_0FFF,
        ..PciRootConfig::KEEL_DEFAULT
    });
    assert!(build_guest_acpi(&config, BASE).is_ok());
    config.pci = Some(PciRootConfig {
        intx_gsi_base: u32::MAX - 2,
        ..PciRootConfig::KEEL_DEFAULT
    });
    assert_eq!(
        build_guest_acpi(&config, BASE),
        Err(AcpiError::PciIntxGsiOutOfRange(u32::MAX - 2))
    );
}
