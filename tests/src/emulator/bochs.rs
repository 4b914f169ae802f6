//! Bochs: configuration and command line for a headless run.

use std::path::Path;
use std::process::Command;

use super::SerialPort;
use crate::machine::{BochsDisk, BochsMachine};

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
{disk}{e1000}boot: cdrom
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
        disk = machine.disk.map(|disk| disk_lines(disk, run_dir)).unwrap_or_default(),
        e1000 = if machine.e1000 { E1000_LINE } else { "" },
        com1 = com1_line(serial),
        log = log.display(),
    )
}

/// An e1000 in the next free PCI slot, its network the null module (no
/// host network; frames sent go nowhere).
const E1000_LINE: &str = "e1000: enabled=1, mac=52:54:00:4b:45:4c, ethmod=null\n";

/// The secondary IDE channel at its ISA ports and IRQ (Bochs' default,
/// spelled out), with `disk` as its master, a flat image in `run_dir`.
fn disk_lines(disk: BochsDisk, run_dir: &Path) -> String {
    let geometry = disk.geometry();
    format!(
        "ata1: enabled=1, ioaddr1=0x170, ioaddr2=0x370, irq=15\n\
         ata1-master: type=disk, path={}, mode=flat, cylinders={}, heads={}, spt={}\n",
        run_dir.join(disk.file_name()).display(),
        geometry.cylinders,
        geometry.heads,
        geometry.sectors_per_track,
    )
}

/// Writes the image of the machine's disk, if it has one, into `run_dir`
/// (where [`bochsrc`] names it).
pub fn write_disk_image(machine: &BochsMachine, run_dir: &Path) -> std::io::Result<()> {
    match machine.disk {
        Some(disk) => std::fs::write(run_dir.join(disk.file_name()), disk.image()),
        None => Ok(()),
    }
}

pub const SECTOR_BYTES: usize = 512;

/// A hard disk's geometry. Bochs wants a flat image of exactly
/// cylinders x heads x sectors per track sectors, and reports that many
/// (LBA) sectors to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskGeometry {
    pub cylinders: u32,
    pub heads: u32,
    pub sectors_per_track: u32,
}

impl DiskGeometry {
    pub const fn sectors(self) -> u32 {
        self.cylinders * self.heads * self.sectors_per_track
    }

    pub const fn bytes(self) -> usize {
        self.sectors() as usize * SECTOR_BYTES
    }
}

/// The passthrough disk: two cylinders of the usual 16 heads and 63
/// sectors per track, 2016 sectors (1008 KiB).
pub const PASSTHROUGH_DISK_GEOMETRY: DiskGeometry = DiskGeometry {
    cylinders: 2,
    heads: 16,
    sectors_per_track: 63,
};

/// What sectors 0 and 1 of the passthrough disk start with, followed by the
/// sector's number and a space (`KEEL-PASSTHROUGH-SECTOR-0 `).
pub const PASSTHROUGH_SECTOR_MARKER: &str = "KEEL-PASSTHROUGH-SECTOR-";

/// The sectors of the passthrough disk that hold text; the others are zeros.
pub const PASSTHROUGH_TEXT_SECTORS: [u32; 2] = [0, 1];

const PATTERN_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The text of a sector of the passthrough disk (for sectors 0 and 1): the
/// marker, the sector's number, a space and letters and digits in an order
/// each sector shifts differently, 511 bytes in all; a newline ends the
/// sector. No partition table (no 0x55AA at its end) and nothing a shell
/// would change, so the DomU can print it as it reads it.
pub fn passthrough_sector_text(sector: u32) -> String {
    let mut text = format!("{PASSTHROUGH_SECTOR_MARKER}{sector} ");
    let shift = 31 * sector as usize;
    let mut index = 0;
    while text.len() < SECTOR_BYTES - 1 {
        text.push(char::from(PATTERN_ALPHABET[(index + shift) % PATTERN_ALPHABET.len()]));
        index += 1;
    }
    text
}

impl BochsDisk {
    /// The image's file name in the run directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Passthrough => "passthrough-disk.img",
        }
    }

    pub fn geometry(self) -> DiskGeometry {
        match self {
            Self::Passthrough => PASSTHROUGH_DISK_GEOMETRY,
        }
    }

    /// The flat image, exactly as large as the geometry says.
    pub fn image(self) -> Vec<u8> {
        let mut image = vec![0u8; self.geometry().bytes()];
        match self {
            Self::Passthrough => {
                for sector in PASSTHROUGH_TEXT_SECTORS {
                    let start = sector as usize * SECTOR_BYTES;
                    let text = passthrough_sector_text(sector);
                    image[start..start + text.len()].copy_from_slice(text.as_bytes());
                    image[start + SECTOR_BYTES - 1] = b'\n';
                }
            }
        }
        image
    }
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
            disk: None,
            e1000: false,
        };
        let config = bochsrc(
            &machine,
            Path::new("/t/keel/x.iso"),
            Path::new("/t/run"),
            SerialPort::LogFile(Path::new("/t/run/serial.log")),
        );
        assert_eq!(line_starting(&config, "memory:"), "memory: guest=1024, host=1024");
        assert!(!config.contains("e1000"), "no NIC unless asked for");
        let with_nic = bochsrc(
            &BochsMachine {
                e1000: true,
                ..machine.clone()
            },
            Path::new("/t/keel/x.iso"),
            Path::new("/t/run"),
            SerialPort::LogFile(Path::new("/t/run/serial.log")),
        );
        assert_eq!(
            line_starting(&with_nic, "e1000:"),
            "e1000: enabled=1, mac=52:54:00:4b:45:4c, ethmod=null"
        );
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
        assert!(
            !config.contains("ata1"),
            "no disk, no secondary channel line:\n{config}"
        );
    }

    #[test]
    fn a_disk_goes_on_the_secondary_channel_with_its_geometry() {
        let machine = BochsMachine {
            disk: Some(BochsDisk::Passthrough),
            ..BochsMachine::default()
        };
        let config = bochsrc(
            &machine,
            Path::new("/t/keel/x.iso"),
            Path::new("/t/run"),
            SerialPort::LogFile(Path::new("/t/run/serial.log")),
        );
        assert_eq!(
            line_starting(&config, "ata1:"),
            "ata1: enabled=1, ioaddr1=0x170, ioaddr2=0x370, irq=15"
        );
        assert_eq!(
            line_starting(&config, "ata1-master:"),
            "ata1-master: type=disk, path=/t/run/passthrough-disk.img, mode=flat, cylinders=2, heads=16, spt=63"
        );
        // The boot CD-ROM stays where it was, and is still what boots.
        assert_eq!(
            line_starting(&config, "ata0-master:"),
            "ata0-master: type=cdrom, path=/t/keel/x.iso, status=inserted"
        );
        assert_eq!(line_starting(&config, "boot:"), "boot: cdrom");
    }

    #[test]
    fn the_passthrough_image_matches_its_geometry_and_holds_the_markers() {
        let disk = BochsDisk::Passthrough;
        let image = disk.image();
        assert_eq!(disk.geometry().sectors(), 2016);
        assert_eq!(image.len(), 2016 * 512);
        assert_eq!(image.len(), disk.geometry().bytes());
        let sector = |n: usize| &image[n * SECTOR_BYTES..(n + 1) * SECTOR_BYTES];
        for n in PASSTHROUGH_TEXT_SECTORS {
            let text = passthrough_sector_text(n);
            assert_eq!(text.len(), 511);
            assert!(text.starts_with(&format!("KEEL-PASSTHROUGH-SECTOR-{n} ")), "{text}");
            assert!(text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"- ".contains(&byte)));
            assert_eq!(&sector(n as usize)[..511], text.as_bytes());
            assert_eq!(sector(n as usize)[511], b'\n');
        }
        // The two sectors differ beyond their numbers: a read of one cannot
        // pass for the other.
        assert_ne!(passthrough_sector_text(0)[26..], passthrough_sector_text(1)[26..]);
        assert_eq!(&passthrough_sector_text(0)[26..36], "0123456789");
        // No partition table: no boot signature where an MBR has it.
        assert_ne!(&sector(0)[510..], &[0x55, 0xaa]);
        assert!(image[2 * SECTOR_BYTES..].iter().all(|&byte| byte == 0));
    }

    #[test]
    fn the_disk_image_is_written_into_the_run_directory() {
        let dir = std::env::temp_dir().join(format!("keel-bochs-disk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write_disk_image(&BochsMachine::default(), &dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no disk, no file");
        let machine = BochsMachine {
            disk: Some(BochsDisk::Passthrough),
            ..BochsMachine::default()
        };
        write_disk_image(&machine, &dir).unwrap();
        let written = std::fs::read(dir.join("passthrough-disk.img")).unwrap();
        assert_eq!(written, BochsDisk::Passthrough.image());
        std::fs::remove_dir_all(&dir).unwrap();
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
