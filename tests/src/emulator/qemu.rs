//! QEMU: command line for a headless run.

use std::path::Path;
use std::process::Command;

use keel_abi::emulator::QEMU_DEBUG_EXIT_PORT;

use crate::machine::{QemuAccel, QemuMachine};

pub const BINARY: &str = "qemu-system-x86_64";
/// QEMU's own stdout and stderr.
pub const CONSOLE: &str = "qemu.out";

pub fn arguments(machine: &QemuMachine, iso: &Path, serial_log: &Path) -> Vec<String> {
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
        "-serial".to_string(),
        format!("file:{}", serial_log.display()),
        "-no-reboot".to_string(),
        // Lets Keel end the run with an exit status (keel_abi::emulator).
        "-device".to_string(),
        format!("isa-debug-exit,iobase={QEMU_DEBUG_EXIT_PORT:#x},iosize=0x04"),
        "-monitor".to_string(),
        "none".to_string(),
    ]);
    arguments
}

pub fn command(machine: &QemuMachine, iso: &Path, serial_log: &Path, run_dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(arguments(machine, iso, serial_log))
        .current_dir(run_dir);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcg_run_has_debug_exit_device_and_file_serial() {
        let machine = QemuMachine {
            accel: QemuAccel::Tcg,
            memory_mib: 512,
        };
        let arguments = arguments(&machine, Path::new("/k.iso"), Path::new("/r/serial.log"));
        let joined = arguments.join(" ");
        assert_eq!(
            joined,
            "-cdrom /k.iso -m 512 -display none -serial file:/r/serial.log -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04 -monitor none"
        );
    }

    #[test]
    fn kvm_run_uses_the_host_cpu() {
        let machine = QemuMachine {
            accel: QemuAccel::Kvm,
            memory_mib: 256,
        };
        let arguments = arguments(&machine, Path::new("/k.iso"), Path::new("/s"));
        assert_eq!(arguments[..3], ["-enable-kvm", "-cpu", "host"]);
        assert!(arguments.windows(2).any(|pair| pair == ["-m", "256"]));
    }
}
