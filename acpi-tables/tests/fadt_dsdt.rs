//! FADT fields and the DSDT's `\_S5_` object.

mod common;

use common::{gas_at, typical_config, u16_at, u32_at, u64_at, GuestView};
use keel_acpi_tables::{
    build_guest_acpi, AcpiError, BootArchFlags, CmosRtc, GsiUser, IoApicConfig, IsaOverride, PciRootConfig,
    PowerButtonConfig, SerialPort, SleepRegisters, DEFAULT_LOCAL_APIC_ADDRESS, S5_SLEEP_TYPE,
};

const BASE: u64 = 0x7F_F000;
const SYSTEM_IO: u8 = 1;

const FLAG_WBINVD: u32 = 1 << 0;
const FLAG_RESET_REG_SUP: u32 = 1 << 10;
const FLAG_HW_REDUCED: u32 = 1 << 20;
/// Set: no fixed-feature power (sleep) button; a control-method one, if any.
const FLAG_PWR_BUTTON: u32 = 1 << 4;
const FLAG_SLP_BUTTON: u32 = 1 << 5;

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

#[test]
fn no_fixed_feature_buttons_in_either_profile() {
    let mut config = typical_config(&[0]);
    config.power_button = Some(PowerButtonConfig::KEEL_DEFAULT);
    for hw_reduced in [false, true] {
        config.hw_reduced = hw_reduced;
        let (fadt, _) = fadt_and_view(&config);
        let flags = u32_at(&fadt, 112);
        assert_ne!(flags & FLAG_PWR_BUTTON, 0, "power button is a control-method one");
        assert_ne!(flags & FLAG_SLP_BUTTON, 0);
    }
}

#[test]
fn power_button_and_ged_appear_only_when_configured() {
    let without = dsdt_body(&typical_config(&[0]));
    assert!(!without.windows(4).any(|w| w == b"PWRB" || w == b"GED0"));
    let mut config = typical_config(&[0]);
    config.power_button = Some(PowerButtonConfig::KEEL_DEFAULT);
    let with = dsdt_body(&config);
    let button = with.windows(4).position(|w| w == b"PWRB").expect("PWRB declared");
    assert_eq!(&with[button - 3..button - 1], &[0x5b, 0x82], "DeviceOp");
    let ged = with.windows(4).position(|w| w == b"GED0").expect("GED0 declared");
    assert!(with[ged..].windows(10).any(|w| w == b"\x0dACPI0013\x00"), "_HID string");
    assert!(with[ged..].windows(4).any(|w| w == b"_EVT"));
}

#[test]
fn power_button_gsi_must_be_a_free_io_apic_input() {
    let serial = [SerialPort { io_base: 0x3f8, gsi: 4 }];
    let mut config = typical_config(&[0]);
    config.serial_ports = &serial;
    config.cmos_rtc = Some(CmosRtc { io_base: 0x70, gsi: 8 });
    config.pci = Some(PciRootConfig::KEEL_DEFAULT);
    let with_gsi = |config: &keel_acpi_tables::GuestAcpiConfig<'_>, gsi| {
        let mut config = *config;
        config.power_button = Some(PowerButtonConfig { gsi });
        build_guest_acpi(&config, BASE).map(|_| ())
    };
    for free in [1, 3, 10, 15, 20, 21, 22, 23] {
        assert_eq!(with_gsi(&config, free), Ok(()), "GSI {free}");
    }
    let in_use = |gsi, user| Err(AcpiError::PowerButtonGsiInUse { gsi, user });
    assert_eq!(
        with_gsi(&config, 2),
        in_use(2, GsiUser::IsaOverride(0)),
        "IRQ0 -> GSI 2"
    );
    assert_eq!(with_gsi(&config, 4), in_use(4, GsiUser::SerialPort(0)));
    assert_eq!(with_gsi(&config, 8), in_use(8, GsiUser::CmosRtc));
    assert_eq!(with_gsi(&config, 9), in_use(9, GsiUser::Sci));
    for intx in 16..20 {
        assert_eq!(with_gsi(&config, intx), in_use(intx, GsiUser::PciIntx));
    }
    assert_eq!(with_gsi(&config, 24), Err(AcpiError::PowerButtonGsiOutOfRange(24)));
    assert_eq!(
        with_gsi(&config, u32::MAX),
        Err(AcpiError::PowerButtonGsiOutOfRange(u32::MAX))
    );

    // An override that routes IRQ0 elsewhere frees GSI 2 and claims its own target.
    let overrides = [IsaOverride {
        source_irq: 0,
        gsi: 21,
        flags: 0,
    }];
    config.isa_overrides = &overrides;
    assert_eq!(with_gsi(&config, 2), Ok(()));
    assert_eq!(with_gsi(&config, 21), in_use(21, GsiUser::IsaOverride(0)));

    // A second I/O APIC's inputs start at its base.
    config.isa_overrides = &[];
    config.io_apic = Some(IoApicConfig {
        gsi_base: 24,
        ..config.io_apic.unwrap()
    });
    assert_eq!(with_gsi(&config, 23), Err(AcpiError::PowerButtonGsiOutOfRange(23)));
    assert_eq!(with_gsi(&config, 47), Ok(()));
    assert_eq!(with_gsi(&config, 48), Err(AcpiError::PowerButtonGsiOutOfRange(48)));

    config.io_apic = None;
    assert_eq!(with_gsi(&config, 23), Err(AcpiError::PowerButtonWithoutIoApic));
}

#[test]
fn power_button_errors_read_well() {
    let in_use = AcpiError::PowerButtonGsiInUse {
        gsi: 4,
        user: GsiUser::SerialPort(0),
    };
    assert_eq!(
        in_use.to_string(),
        "power button GSI 4 is already used by serial port 0"
    );
    assert_eq!(
        AcpiError::PowerButtonGsiOutOfRange(24).to_string(),
        "power button GSI 24 is not an input of the I/O APIC"
    );
    assert_eq!(
        AcpiError::PowerButtonWithoutIoApic.to_string(),
        "the power button needs an I/O APIC"
    );
}
