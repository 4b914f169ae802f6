//! Bochs: configuration and command line for a headless run.

use std::path::Path;
use std::process::Command;

use super::SerialPort;
use crate::machine::BochsMachine;

pub const BIOS_IMAGE: &str = "/usr/share/bochs/BIOS-bochs-latest";
pub const VGA_BIOS_IMAGE: &str = "/usr/share/vgabios/vgabios.bin";
/// Bochs refuses more host memory than this.
const MAX_HOST_MEMORY_MIB: u32 = 2048;

pub const BOCHSRC: &str = "bochsrc";
pub const DEBUGGER_RC: &str = "debugger.rc";
pub const LOG: &str = "bochs.log";
/// Bochs' own stdout and stderr.
pub const CONSOLE: &str = "bochs.out";

/// The bochsrc for one run; every file it names lives in `run_dir`.
pub fn bochsrc(machine: &BochsMachine, iso: &Path, run_dir: &Path, serial: SerialPort<'_>) -> String {
    let host_memory = machine.memory_mib.min(MAX_HOST_MEMORY_MIB);
    let log = run_dir.join(LOG);
    format!(
        "\
memory: guest={guest_memory}, host={host_memory}
cpu: model={model}, count={count}, ips=10000000
# Guest time runs as fast as Bochs can emulate, decoupled from wall time.
clock: sync=none, time0=1
romimage: file={BIOS_IMAGE}
vgaromimage: file={VGA_BIOS_IMAGE}
ata0-master: type=cdrom, path={iso}, status=inserted
boot: cdrom
{com1}
port_e9_hack: enabled=1
# No nogui library in Debian's Bochs: rfb needs no client (timeout=0), and
# instances running side by side take the next free port from 5900 upwards.
display_library: rfb, options=\"timeout=0\"
speaker: enabled=0
# Without a sound card ALSA fails and Bochs' mixer thread aborts at start-up.
sound: driver=dummy
mouse: enabled=0
log: {log}
panic: action=fatal
# Bochs logs failed VM-entry checks (\"VMENTER FAIL: ...\") as errors.
error: action=report
info: action=ignore
debug: action=ignore
",
        guest_memory = machine.memory_mib,
        model = machine.cpu_model,
        count = machine.cpu_count,
        iso = iso.display(),
        com1 = com1_line(serial),
        log = log.display(),
    )
}

/// `mode=term` opens the device and switches it to raw mode.
fn com1_line(serial: SerialPort<'_>) -> String {
    let (mode, device) = match serial {
        SerialPort::LogFile(path) => ("file", path),
        SerialPort::Terminal(path) => ("term", path),
    };
    format!("com1: enabled=1, mode={mode}, dev={}", device.display())
}

/// The debugger script: Debian's Bochs has its debugger built in and would
/// otherwise stop at a prompt before the first instruction.
pub const DEBUGGER_SCRIPT: &str = "c\n";

pub fn command(run_dir: &Path) -> Command {
    let mut command = Command::new("bochs");
    command
        .arg("-q")
        .arg("-f")
        .arg(run_dir.join(BOCHSRC))
        .arg("-rc")
        .arg(run_dir.join(DEBUGGER_RC))
        .current_dir(run_dir);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_starting<'a>(config: &'a str, key: &str) -> &'a str {
        config
            .lines()
            .find(|line| line.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in:\n{config}"))
    }

    #[test]
    fn machine_parameters_reach_the_config() {
        let machine = BochsMachine {
            memory_mib: 1024,
            cpu_model: "tigerlake",
            cpu_count: 2,
        };
        let config = bochsrc(
            &machine,
            Path::new("/t/keel/x.iso"),
            Path::new("/t/run"),
            SerialPort::LogFile(Path::new("/t/run/serial.log")),
        );
        assert_eq!(line_starting(&config, "memory:"), "memory: guest=1024, host=1024");
        assert_eq!(
            line_starting(&config, "cpu:"),
            "cpu: model=tigerlake, count=2, ips=10000000"
        );
        assert_eq!(
            line_starting(&config, "ata0-master:"),
            "ata0-master: type=cdrom, path=/t/keel/x.iso, status=inserted"
        );
        assert_eq!(
            line_starting(&config, "com1:"),
            "com1: enabled=1, mode=file, dev=/t/run/serial.log"
        );
        assert_eq!(line_starting(&config, "log:"), "log: /t/run/bochs.log");
    }

    #[test]
    fn a_terminal_serial_port_is_opened_in_term_mode() {
        let config = bochsrc(
            &BochsMachine::default(),
            Path::new("/i"),
            Path::new("/r"),
            SerialPort::Terminal(Path::new("/dev/pts/7")),
        );
        assert_eq!(
            line_starting(&config, "com1:"),
            "com1: enabled=1, mode=term, dev=/dev/pts/7"
        );
    }

    #[test]
    fn host_memory_is_capped_where_bochs_refuses_more() {
        let machine = BochsMachine {
            memory_mib: 4096,
            ..BochsMachine::default()
        };
        let config = bochsrc(
            &machine,
            Path::new("/i"),
            Path::new("/r"),
            SerialPort::LogFile(Path::new("/r/s")),
        );
        assert_eq!(line_starting(&config, "memory:"), "memory: guest=4096, host=2048");
    }
}
