//! QEMU: command line for a headless run.

use std::path::Path;
use std::process::Command;

use keel_abi::emulator::QEMU_DEBUG_EXIT_PORT;

use super::bochs::{passthrough_sector_text, PASSTHROUGH_TEXT_SECTORS, SECTOR_BYTES};
use super::SerialPort;
use crate::machine::{QemuAccel, QemuMachine};

pub const BINARY: &str = "qemu-system-x86_64";
/// QEMU's own stdout and stderr.
pub const CONSOLE: &str = "qemu.out";

/// The NVMe controller's namespace: a raw image in the run directory.
pub const NVME_IMAGE: &str = "nvme.img";
/// Its size in 512-byte sectors (1 MiB).
pub const NVME_IMAGE_SECTORS: u32 = 2048;
/// The NVMe controller's serial number (QEMU requires one).
pub const NVME_SERIAL: &str = "keel0";
/// The bus-0 slot the NVMe controller is put in (`addr=`), so that its
/// host address and INTx input are known: 0000:00:03.0. q35 has its host
/// bridge in slot 0, the VGA in slot 1 and the default NIC (e1000e) in 2.
pub const NVME_SLOT: u8 = 3;
/// The bus-0 slot of the e1000e the IOMMU self-test's machine has: the
/// default NIC's, which `-nic none` leaves free.
pub const E1000E_SLOT: u8 = 2;
/// The bus-0 slot of the NVMe controller the IOMMU self-test resets (edu,
/// added without an address, takes slot 3 before it).
pub const FLR_NVME_SLOT: u8 = 4;
/// QEMU's nvme has one interrupt pin, INTA (hw/nvme/ctrl.c, `nvme_init_pci`:
/// `pci_conf[PCI_INTERRUPT_PIN] = 1`).
pub const NVME_INTX_PIN: u8 = 1;

/// The host GSI where INTx pin `pin` (1 = INTA ... 4 = INTD) of a function
/// in `slot` of bus 0 arrives on QEMU's q35 machine, by the chipset's fixed
/// routing (QEMU 7.2, hw/isa/lpc_ich9.c): `ich9_cc_init` wires slots 0-24
/// to PIRQ E-H, `irr[slot][intx] = (slot + intx) % 4 + 4` ("avoid pirq A-D
/// because they are used for pci express port"), and in APIC mode
/// `ich9_pirq_to_gsi` puts PIRQ A-H at I/O APIC inputs 16-23 (`pirq + 16`).
/// The firmware's Interrupt Line register holds the PIC IRQ that PIRQ is
/// steered to instead, which is why Dom0 names the GSI (`keel
/// pci-assignable-add --intx-gsi`). Slots 25-31 route through the
/// D25IR-D31IR registers: `None` there, as for a pin that does not exist.
pub fn q35_intx_gsi(slot: u8, pin: u8) -> Option<u32> {
    if slot > 24 || !(1..=4).contains(&pin) {
        return None;
    }
    let pirq = (u32::from(slot) + u32::from(pin - 1)) % 4 + 4;
    Some(16 + pirq)
}

/// The NVMe namespace's image: sectors 0 and 1 hold the passthrough disk's
/// known text (`bochs::passthrough_sector_text`, a newline ending each
/// sector), the rest is zeros.
pub fn nvme_image() -> Vec<u8> {
    let mut image = vec![0u8; NVME_IMAGE_SECTORS as usize * SECTOR_BYTES];
    for sector in PASSTHROUGH_TEXT_SECTORS {
        let start = sector as usize * SECTOR_BYTES;
        let text = passthrough_sector_text(sector);
        image[start..start + text.len()].copy_from_slice(text.as_bytes());
        image[start + SECTOR_BYTES - 1] = b'\n';
    }
    image
}

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
        // With KVM, QEMU refuses interrupt remapping while the I/O APIC is
        // in the kernel ("Intel Interrupt Remapping cannot work with
        // kernel-irqchip=on, please use 'split|off'"): split keeps the
        // local APICs in KVM and moves the I/O APIC into QEMU, where its
        // interrupts pass through the IOMMU.
        let q35 = match machine.accel {
            QemuAccel::Tcg => "q35",
            QemuAccel::Kvm => "q35,kernel-irqchip=split",
        };
        // The IOMMU must come before the devices it translates for.
        arguments.extend(["-machine", q35, "-device", "intel-iommu,intremap=on"].map(String::from));
    }
    if machine.e1000e {
        // Before edu, which then takes the next free slot (3, `EDU_SLOT`).
        arguments.extend(["-nic", "none", "-device", &format!("e1000e,addr={E1000E_SLOT:02x}.0")].map(String::from));
    }
    if machine.edu {
        arguments.extend(["-device", "edu"].map(String::from));
    }
    if machine.flr_nvme {
        arguments.extend([
            "-blockdev".to_string(),
            "driver=null-co,node-name=flr,size=1048576".to_string(),
            "-device".to_string(),
            format!("nvme,serial=keel-flr,drive=flr,addr={FLR_NVME_SLOT:02x}.0"),
        ]);
    }
    if machine.nvme {
        arguments.extend([
            "-drive".to_string(),
            format!("file={NVME_IMAGE},if=none,format=raw,id=nvm"),
            "-device".to_string(),
            format!("nvme,serial={NVME_SERIAL},drive=nvm,addr={NVME_SLOT:02x}.0"),
        ]);
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
    if machine.nvme {
        std::fs::write(run_dir.join(NVME_IMAGE), nvme_image())?;
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
            e1000e: false,
            flr_nvme: false,
            extra_acpi_table: None,
            nvme: false,
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
            e1000e: false,
            flr_nvme: false,
            extra_acpi_table: None,
            nvme: false,
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
    fn an_iommu_machine_has_q35_the_iommu_first_then_the_e1000e_in_slot_2_and_edu() {
        let crate::machine::Machine::Qemu(machine) = crate::machine::Machine::qemu_iommu() else {
            unreachable!()
        };
        let joined = arguments(&machine, Path::new("/k.iso"), SerialPort::LogFile(Path::new("/s"))).join(" ");
        assert!(
            joined.contains(
                "-machine q35 -device intel-iommu,intremap=on -nic none -device e1000e,addr=02.0 -device edu \
                 -blockdev driver=null-co,node-name=flr,size=1048576 -device nvme,serial=keel-flr,drive=flr,addr=04.0"
            ),
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
    fn the_kvm_passthrough_machine_splits_the_irqchip_and_adds_the_nvme_controller_after_the_iommu() {
        let crate::machine::Machine::Qemu(machine) = crate::machine::Machine::qemu_kvm_passthrough().with_memory(1024)
        else {
            unreachable!()
        };
        let joined = arguments(
            &machine,
            Path::new("/k.iso"),
            SerialPort::LogFile(Path::new("/r/serial.log")),
        )
        .join(" ");
        assert_eq!(
            joined,
            "-enable-kvm -cpu host -cdrom /k.iso -m 1024 -display none \
             -machine q35,kernel-irqchip=split -device intel-iommu,intremap=on \
             -drive file=nvme.img,if=none,format=raw,id=nvm -device nvme,serial=keel0,drive=nvm,addr=03.0 \
             -serial file:/r/serial.log -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 -monitor none"
        );
        // TCG keeps the plain q35 machine (qemu-iommu).
        let tcg = QemuMachine {
            accel: QemuAccel::Tcg,
            ..machine
        };
        let joined = arguments(&tcg, Path::new("/k.iso"), SerialPort::LogFile(Path::new("/s"))).join(" ");
        assert!(
            joined.contains("-machine q35 -device intel-iommu,intremap=on -drive "),
            "{joined}"
        );
        assert!(!joined.contains("kernel-irqchip"), "{joined}");
    }

    #[test]
    fn q35_routes_slots_to_pirq_e_to_h_at_gsis_20_to_23() {
        // Slot 3, INTA: PIRQ H, GSI 23; the pins of a slot rotate.
        assert_eq!(q35_intx_gsi(NVME_SLOT, NVME_INTX_PIN), Some(23));
        assert_eq!(q35_intx_gsi(0, 1), Some(20));
        assert_eq!(q35_intx_gsi(1, 1), Some(21));
        assert_eq!(q35_intx_gsi(2, 1), Some(22));
        assert_eq!(q35_intx_gsi(4, 1), Some(20));
        assert_eq!(q35_intx_gsi(3, 2), Some(20));
        assert_eq!(q35_intx_gsi(24, 4), Some(23));
        assert_eq!(q35_intx_gsi(25, 1), None, "D25IR-D31IR are programmable");
        assert_eq!(q35_intx_gsi(3, 0), None);
        assert_eq!(q35_intx_gsi(3, 5), None);
        // The default NIC (slot 2) has another input: no shared host INTx.
        assert_ne!(q35_intx_gsi(2, 1), q35_intx_gsi(NVME_SLOT, NVME_INTX_PIN));
    }

    #[test]
    fn the_nvme_image_holds_the_known_text_in_sectors_0_and_1() {
        let image = nvme_image();
        assert_eq!(image.len(), 2048 * 512);
        for sector in PASSTHROUGH_TEXT_SECTORS {
            let start = sector as usize * SECTOR_BYTES;
            let text = passthrough_sector_text(sector);
            assert_eq!(&image[start..start + 511], text.as_bytes());
            assert_eq!(image[start + 511], b'\n');
        }
        assert!(image[2 * SECTOR_BYTES..].iter().all(|&byte| byte == 0));
        // The Bochs disk's first sectors, the same text.
        let bochs = crate::machine::BochsDisk::Passthrough.image();
        assert_eq!(image[..2 * SECTOR_BYTES], bochs[..2 * SECTOR_BYTES]);
    }

    #[test]
    fn the_nvme_image_is_written_into_the_run_directory() {
        let dir = std::env::temp_dir().join(format!("keel-qemu-nvme-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let crate::machine::Machine::Qemu(plain) = crate::machine::Machine::qemu_kvm() else {
            unreachable!()
        };
        command(&plain, Path::new("/k.iso"), SerialPort::LogFile(Path::new("/s")), &dir).unwrap();
        assert!(!dir.join(NVME_IMAGE).exists(), "no controller, no image");
        let crate::machine::Machine::Qemu(machine) = crate::machine::Machine::qemu_kvm_passthrough() else {
            unreachable!()
        };
        let command = command(
            &machine,
            Path::new("/k.iso"),
            SerialPort::LogFile(Path::new("/s")),
            &dir,
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.join(NVME_IMAGE)).unwrap(), nvme_image());
        // `file=nvme.img` is relative: QEMU runs in the run directory.
        assert_eq!(command.get_current_dir(), Some(dir.as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kvm_run_uses_the_host_cpu() {
        let machine = QemuMachine {
            accel: QemuAccel::Kvm,
            memory_mib: 256,
            iommu: false,
            edu: false,
            e1000e: false,
            flr_nvme: false,
            extra_acpi_table: None,
            nvme: false,
        };
        let arguments = arguments(&machine, Path::new("/k.iso"), SerialPort::LogFile(Path::new("/s")));
        assert_eq!(arguments[..3], ["-enable-kvm", "-cpu", "host"]);
        assert!(arguments.windows(2).any(|pair| pair == ["-m", "256"]));
    }
}
