//! Decompiles the DSDT with ACPICA's iasl, the reference AML toolchain, when
//! it is installed (package `acpica-tools`); skipped otherwise.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{typical_config, u32_at, u64_at, GuestView};
use keel_acpi_tables::{
    build_guest_acpi, CmosRtc, GuestAcpiConfig, PciRootConfig, PowerButtonConfig, SerialPort, SleepRegisters,
};

const BASE: u64 = 0xE_0000;

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-acpi-iasl-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn iasl_decompiles_s5_package() {
    if Command::new("iasl").arg("-v").output().is_err() {
        eprintln!("note: iasl not installed, skipping the ACPICA cross-check");
        return;
    }
    let blob = build_guest_acpi(&typical_config(&[0]), BASE).unwrap();
    let view = GuestView {
        bytes: &blob.bytes,
        base: BASE,
    };
    let fadt = view.find(blob.rsdp_gpa, "FACP");
    let dsdt_gpa = u64_at(fadt.bytes, 140);
    let dsdt_len = u32_at(view.slice(dsdt_gpa, 8), 4) as usize;

    let dir = scratch_dir("s5");
    let aml_path = dir.join("dsdt.dat");
    std::fs::write(&aml_path, view.slice(dsdt_gpa, dsdt_len)).unwrap();
    let status = Command::new("iasl").arg("-d").arg(&aml_path).output().unwrap();
    assert!(status.status.success(), "iasl -d failed: {status:?}");
    let asl = std::fs::read_to_string(dir.join("dsdt.dsl")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(
        asl.contains(r#"DefinitionBlock ("", "DSDT", 2, "KEEL  ", "KEELDSDT""#),
        "{asl}"
    );
    let s5: String = asl.split_whitespace().collect();
    assert!(
        s5.contains(r"Name(_S5,Package(0x04)//_S5_:S5SystemState{0x05,0x05,Zero,Zero})"),
        "{asl}"
    );
}

fn iasl_installed() -> bool {
    if Command::new("iasl").arg("-v").output().is_err() {
        eprintln!("note: iasl not installed, skipping the ACPICA cross-check");
        return false;
    }
    true
}

/// The DSDT of `config`, as the guest would find it.
fn dsdt_of(config: &GuestAcpiConfig<'_>) -> Vec<u8> {
    let blob = build_guest_acpi(config, BASE).unwrap();
    let view = GuestView {
        bytes: &blob.bytes,
        base: BASE,
    };
    let fadt = view.find(blob.rsdp_gpa, "FACP");
    let dsdt_gpa = u64_at(fadt.bytes, 140);
    let dsdt_len = u32_at(view.slice(dsdt_gpa, 8), 4) as usize;
    view.slice(dsdt_gpa, dsdt_len).to_vec()
}

/// A Dom0-like DSDT: COM1, the RTC, the PCI root bridge and the power
/// button, on a hardware-reduced platform without ISA overrides, as the
/// hypervisor configures every domain.
fn dom0_like_dsdt() -> Vec<u8> {
    let mut config = typical_config(&[0]);
    let serial = [SerialPort { io_base: 0x3f8, gsi: 4 }];
    config.hw_reduced = true;
    config.isa_overrides = &[];
    config.pm.sleep_registers = Some(SleepRegisters {
        control_port: 0x60c,
        status_port: 0x60d,
    });
    config.serial_ports = &serial;
    config.cmos_rtc = Some(CmosRtc { io_base: 0x70, gsi: 8 });
    config.pci = Some(PciRootConfig::KEEL_DEFAULT);
    config.power_button = Some(PowerButtonConfig::KEEL_DEFAULT);
    dsdt_of(&config)
}

#[test]
fn iasl_decompiles_the_pci_root_and_recompiles_it_byte_for_byte() {
    if !iasl_installed() {
        return;
    }
    let dsdt = dom0_like_dsdt();
    let dir = scratch_dir("pci");
    let aml_path = dir.join("dsdt.dat");
    std::fs::write(&aml_path, &dsdt).unwrap();
    let disassembly = Command::new("iasl").arg("-d").arg(&aml_path).output().unwrap();
    assert!(disassembly.status.success(), "iasl -d failed: {disassembly:?}");
    let log = String::from_utf8_lossy(&disassembly.stderr) + String::from_utf8_lossy(&disassembly.stdout);
    let lower = log.to_lowercase();
    assert!(!lower.contains("error") && !lower.contains("warning"), "{log}");
    let asl = std::fs::read_to_string(dir.join("dsdt.dsl")).unwrap();
    let compact: String = strip_comments(&asl).split_whitespace().collect();
    for expected in [
        r#"Device(PCI0){Name(_HID,EisaId("PNP0A08"))Name(_CID,EisaId("PNP0A03"))"#,
        "Name(_SEG,Zero)Name(_BBN,Zero)Name(_UID,Zero)",
        "WordBusNumber(ResourceProducer,MinFixed,MaxFixed,PosDecode,0x0000,0x0000,0x0000,0x0000,0x0001,,,)",
        "IO(Decode16,0x0CF8,0x0CF8,0x01,0x08,)",
        "WordIO(ResourceProducer,MinFixed,MaxFixed,PosDecode,EntireRange,0x0000,0x0000,0x0CF7,0x0000,0x0CF8,",
        "WordIO(ResourceProducer,MinFixed,MaxFixed,PosDecode,EntireRange,0x0000,0x0D00,0xFFFF,0x0000,0xF300,",
        "DWordMemory(ResourceProducer,PosDecode,MinFixed,MaxFixed,NonCacheable,ReadWrite,\
         0x00000000,0xC0000000,0xFEBFFFFF,0x00000000,0x3EC00000,",
        "Name(_PRT,Package(0x80){Package(0x04){0xFFFF,Zero,Zero,0x10},Package(0x04){0xFFFF,One,Zero,0x11},",
        "Package(0x04){0x0001FFFF,Zero,Zero,0x11},",
        "Package(0x04){0x001FFFFF,0x03,Zero,0x12}})",
        r#"Device(COM1){Name(_HID,EisaId("PNP0501"))"#,
        r#"Device(PWRB){Name(_HID,EisaId("PNP0C0C"))Name(_UID,Zero)}"#,
        r#"Device(GED0){Name(_HID,"ACPI0013")Name(_UID,Zero)"#,
        "Name(_CRS,ResourceTemplate(){Interrupt(ResourceConsumer,Edge,ActiveHigh,Exclusive,,,){0x00000017,}})",
        r"Method(_EVT,1,NotSerialized){If((Arg0==0x17)){Notify(\_SB.PWRB,0x80)}}}",
    ] {
        assert!(compact.contains(expected), "missing {expected} in\n{asl}");
    }
    // Compiling the disassembly gives back the same AML (iasl stamps its
    // own compiler id and revision in the header, so compare from the body on).
    // -on: keep `\_SB.PWRB` as written; iasl would otherwise shorten it to
    // `PWRB`, which the namespace search rules resolve to the same device.
    let compile = Command::new("iasl")
        .arg("-on")
        .arg("-p")
        .arg(dir.join("recompiled"))
        .arg(dir.join("dsdt.dsl"))
        .output()
        .unwrap();
    assert!(compile.status.success(), "iasl recompile failed: {compile:?}");
    let report = String::from_utf8_lossy(&compile.stdout);
    assert!(report.contains("0 Errors, 0 Warnings"), "{report}");
    let recompiled = std::fs::read(dir.join("recompiled.aml")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(recompiled.len(), dsdt.len());
    assert_eq!(&recompiled[36..], &dsdt[36..], "AML differs from iasl's");
}

/// ACPICA's acpiexec loads the DSDT into a real AML interpreter and runs the
/// GED's `_EVT` as Linux's GED driver does on an interrupt: with the GSI it
/// is registered for, the power button is notified (0x80); with another, nothing.
#[test]
fn acpiexec_runs_the_ged_event_method_and_notifies_the_power_button() {
    if Command::new("acpiexec").arg("-v").output().is_err() {
        eprintln!("note: acpiexec not installed, skipping the ACPICA interpreter check");
        return;
    }
    let dir = scratch_dir("acpiexec");
    let aml_path = dir.join("dsdt.aml");
    std::fs::write(&aml_path, dom0_like_dsdt()).unwrap();
    let run = |gsi: u32| {
        let output = Command::new("acpiexec")
            .arg("-b")
            .arg(format!("Execute \\_SB.GED0._EVT {gsi:#x}"))
            .arg(&aml_path)
            .output()
            .unwrap();
        assert!(output.status.success(), "acpiexec failed: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
    };
    let pressed = run(PowerButtonConfig::KEEL_DEFAULT.gsi);
    let notifies = |log: &str| log.lines().filter(|line| line.contains("Notify on [PWRB]")).count();
    assert_eq!(notifies(&pressed), 1, "{pressed}");
    assert!(pressed.contains("Value 0x80"), "{pressed}");
    let lower = pressed.to_lowercase();
    assert!(!lower.contains("error") && !lower.contains("exception"), "{pressed}");
    let other = run(PowerButtonConfig::KEEL_DEFAULT.gsi - 1);
    assert_eq!(notifies(&other), 0, "{other}");
    assert!(other.contains("Evaluating \\_SB.GED0._EVT"), "{other}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The ASL without `/* */` and `//` comments (iasl annotates names and fields).
fn strip_comments(asl: &str) -> String {
    let mut out = String::new();
    let mut rest = asl;
    while !rest.is_empty() {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                rest = rest[b..].find("*/").map_or("", |end| &rest[b + end + 2..]);
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = rest[l..].find('\n').map_or("", |end| &rest[l + end..]);
            }
            _ => {
                out.push_str(rest);
                rest = "";
            }
        }
    }
    out
}
