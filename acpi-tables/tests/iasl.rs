//! Decompiles the DSDT with ACPICA's iasl, the reference AML toolchain, when
//! it is installed (package `acpica-tools`); skipped otherwise.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{typical_config, u32_at, u64_at, GuestView};
use keel_acpi_tables::build_guest_acpi;

const BASE: u64 = 0xE_0000;

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-acpi-iasl-{}", std::process::id()));
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

    let dir = scratch_dir();
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
