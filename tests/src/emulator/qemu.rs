//! QEMU: command line for a headless run.

use std::path::Path;
use std::process::Command;

use keel_abi::emulator::QEMU_DEBUG_EXIT_PORT;

use super::SerialPort;
use crate::machine::{QemuAccel, QemuMachine};

pub const BINARY: &str = "qemu-system-x86_64";
/// QEMU's own stdout and stderr.
pub const CONSOLE: &str = "qemu.out";

pub fn arguments(machine: &QemuMachine, iso: &Path, serial: SerialPort<'_>) -> Vec<String> {
    let mut arguments: Vec<String> = Vec::new();
    if machine.accel == QemuAccel::Kvm {
        arguments.extend(["-enable-kvm", "-cpu", "host"].map(String::from));
    }
    arguments.extend([
        "-cdrom".to_string(),
        iso.display().to_string(),
        "-m".to_string(),
        machine.memory_mib.to_string(),
        "-display".to_string(),
        "none".to_string(),
    ]);
    if machine.iommu {
        // The IOMMU must come before the devices it translates for.
        arguments.extend(["-machine", "q35", "-device", "intel-iommu,intremap=on"].map(String::from));
    }
    if machine.edu {
        arguments.extend(["-device", "edu"].map(String::from));
    }
    if let Some(table) = machine.extra_acpi_table {
        arguments.extend(["-acpitable".to_string(), format!("file={}", table.file().0)]);
    }
    arguments.extend(serial_arguments(serial));
    arguments.extend([
        "-no-reboot".to_string(),
        // Lets Keel end the run with an exit status (keel_abi::emulator).
        "-device".to_string(),
        format!("isa-debug-exit,iobase={QEMU_DEBUG_EXIT_PORT:#x},iosize=0x04"),
        "-monitor".to_string(),
        "none".to_string(),
    ]);
    arguments
}

/// A terminal device goes through QEMU's `serial` (tty) character device,
/// which switches it to raw mode.
fn serial_arguments(serial: SerialPort<'_>) -> Vec<String> {
    match serial {
        SerialPort::LogFile(path) => vec!["-serial".to_string(), format!("file:{}", path.display())],
        SerialPort::Terminal(path) => vec![
            "-chardev".to_string(),
            format!("serial,id=com1,path={}", path.display()),
            "-serial".to_string(),
            "chardev:com1".to_string(),
        ],
    }
}

/// The command to run in `run_dir`, after writing the files it names there.
pub fn command(machine: &QemuMachine, iso: &Path, serial: SerialPort<'_>, run_dir: &Path) -> std::io::Result<Command> {
    if let Some(table) = machine.extra_acpi_table {
        let (name, bytes) = table.file();
        std::fs::write(run_dir.join(name), bytes)?;
    }
    let mut command = Command::new(BINARY);
    command.args(arguments(machine, iso, serial)).current_dir(run_dir);
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcg_run_has_debug_exit_device_and_file_serial() {
        let machine = QemuMachine {
            accel: QemuAccel::Tcg,
            memory_mib: 512,
            iommu: false,
            edu: false,
            extra_acpi_table: None,
        };
        let arguments = arguments(
            &machine,
            Path::new("/k.iso"),
            SerialPort::LogFile(Path::new("/r/serial.log")),
        );
        let joined = arguments.join(" ");
        assert_eq!(
            joined,
            "-cdrom /k.iso -m 512 -display none -serial file:/r/serial.log -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -monitor none"
        );
    }

    #[test]
    fn a_terminal_serial_port_is_a_tty_character_device() {
        let machine = QemuMachine {
            accel: QemuAccel::Tcg,
            memory_mib: 512,
            iommu: false,
            edu: false,
            extra_acpi_table: None,
        };
        let arguments = arguments(
            &machine,
            Path::new("/k.iso"),
            SerialPort::Terminal(Path::new("/dev/pts/7")),
        );
        let joined = arguments.join(" ");
        assert!(
            joined.contains("-chardev serial,id=com1,path=/dev/pts/7 -serial chardev:com1 -no-reboot"),
            "{joined}"
        );
    }

    #[test]
    fn an_iommu_machine_has_q35_the_iommu_first_and_edu() {
        let crate::machine::Machine::Qemu(machine) = crate::machine::Machine::qemu_iommu() else {
            unreachable!()
        };
        let joined = arguments(&machine, Path::new("/k.iso"), SerialPort::LogFile(Path::new("/s"))).join(" ");
        assert!(
            joined.contains("-machine q35 -device intel-iommu,intremap=on -device edu"),
            "{joined}"
        );
        let with_table = QemuMachine {
            extra_acpi_table: Some(crate::machine::ExtraAcpiTable::MalformedDmar),
            ..machine
        };
        let joined = arguments(&with_table, Path::new("/k.iso"), SerialPort::LogFile(Path::new("/s"))).join(" ");
        assert!(joined.contains("-acpitable file=malformed-dmar.aml"), "{joined}");
    }

    #[test]
    fn the_malformed_dmar_is_refused_by_the_parser_for_its_scope() {
        let (_, bytes) = crate::machine::ExtraAcpiTable::MalformedDmar.file();
        assert!(keel_iommu::parse_dmar(&bytes).is_err());
        let sum = bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
        assert_eq!(sum, 0, "only the structure is wrong, not the checksum");
    }

    #[test]
    fn kvm_run_uses_the_host_cpu() {
        let machine = QemuMachine {
            accel: QemuAccel::Kvm,
            memory_mib: 256,
            iommu: false,
            edu: false,
            extra_acpi_table: None,
        };
        let arguments = arguments(&machine, Path::new("/k.iso"), SerialPort::LogFile(Path::new("/s")));
        assert_eq!(arguments[..3], ["-enable-kvm", "-cpu", "host"]);
        assert!(arguments.windows(2).any(|pair| pair == ["-m", "256"]));
    }
}
