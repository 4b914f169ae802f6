//! The two legacy ways a PC guest resets the machine: the chipset's Reset
//! Control Register at port 0xCF9 (also what Keel's FADT RESET_REG names) and
//! the keyboard controller's "pulse reset line" command at port 0x64.

use crate::bus::{read_bytewise, write_bytewise};
use crate::{all_ones, Device, Offset, Platform, PowerAction};

/// Port of the Reset Control Register. It lies inside the PCI configuration
/// ports 0xCF8-0xCFF, so [`crate::pci_host::PciHost`] forwards byte accesses
/// to it; register a standalone [`ResetControl`] only on a bus without one.
pub const RESET_CONTROL_PORT: u64 = 0xCF9;
/// First i8042 port (data, 0x60); the command/status port is 0x64.
pub const KEYBOARD_CONTROLLER_BASE_PORT: u64 = 0x60;
/// Ports 0x60-0x64. Note this range also covers 0x61 (NMI status / port B);
/// a future model of that port needs the two i8042 ports mapped separately
/// (see `DeviceBus::map_additional_range`).
pub const KEYBOARD_CONTROLLER_PORT_COUNT: u64 = 5;

/// RST_CNT bit 1: make the next reset a hard (system) reset.
const SYS_RST: u8 = 1 << 1;
/// RST_CNT bit 2: writing 1 performs the reset.
const RST_CPU: u8 = 1 << 2;
/// RST_CNT bit 3: power-cycle during the reset.
const FULL_RST: u8 = 1 << 3;
/// RST_CPU is a trigger, not state: it reads back as 0, so Linux's
/// read-modify-write sequence (`cf9 = inb(0xcf9) & ~code; outb(cf9 | 2)`)
/// does not reset early.
const RESET_CONTROL_READABLE: u8 = SYS_RST | FULL_RST;

/// The PCI Reset Control Register (Intel ICH/PCH RST_CNT).
#[derive(Default)]
pub struct ResetControl {
    configuration: u8,
}

impl ResetControl {
    pub const fn new() -> Self {
        Self { configuration: 0 }
    }

    /// The register's value as the guest reads it.
    pub fn read_register(&self) -> u8 {
        self.configuration
    }

    /// Every reset is the same full domain reset, so SYS_RST/FULL_RST only
    /// read back; RST_CPU requests the reset.
    pub fn write_register(&mut self, value: u8, platform: &mut dyn Platform) {
        self.configuration = value & RESET_CONTROL_READABLE;
        if value & RST_CPU != 0 {
            platform.power(PowerAction::Reset);
        }
    }
}

impl Device for ResetControl {
    fn name(&self) -> &'static str {
        "reset-control"
    }

    fn read(&mut self, offset: Offset, size: u8, _platform: &mut dyn Platform) -> u64 {
        read_bytewise(offset, size, |port| match port {
            0 => self.read_register(),
            _ => 0xff,
        })
    }

    fn write(&mut self, offset: Offset, size: u8, value: u64, platform: &mut dyn Platform) {
        write_bytewise(offset, size, value, |port, byte| {
            if port == 0 {
                self.write_register(byte, platform);
            }
        });
    }
}

/// Offset of the i8042 command/status port (0x64) from the data port (0x60).
const COMMAND_PORT: Offset = 4;
/// Commands 0xF0-0xFF pulse the controller's output-port bits whose command
/// bit is 0; output bit 0 is wired to the CPU reset line. Linux (and every
/// other OS) sends 0xFE.
const PULSE_OUTPUT_COMMANDS: u8 = 0xF0;
const PULSE_SKIPS_RESET_LINE: u8 = 1 << 0;

/// An i8042 keyboard controller that is absent except for its reset line.
///
/// Keel has no PS/2 devices, so both ports read 0xFF: a floating bus. That
/// is what Linux's `i8042_controller_check` recognises as "no controller"
/// (its flush loop sees OBF stuck set, gives up after 16 reads and reports
/// "No controller found") within a millisecond; a plausible status such as
/// 0x1C would instead make Linux wait 0.5 s for a reply to "read CTR". The
/// cost is borne by the keyboard reset path, whose `kb_wait` polls for IBF
/// (bit 1) to clear for about 130 ms before sending 0xFE anyway.
#[derive(Default)]
pub struct KeyboardControllerReset;

impl KeyboardControllerReset {
    pub const fn new() -> Self {
        Self
    }
}

impl Device for KeyboardControllerReset {
    fn name(&self) -> &'static str {
        "i8042-reset"
    }

    fn read(&mut self, _offset: Offset, size: u8, _platform: &mut dyn Platform) -> u64 {
        all_ones(size)
    }

    fn write(&mut self, offset: Offset, size: u8, value: u64, platform: &mut dyn Platform) {
        write_bytewise(offset, size, value, |port, command| {
            if port == COMMAND_PORT && command >= PULSE_OUTPUT_COMMANDS && command & PULSE_SKIPS_RESET_LINE == 0 {
                platform.power(PowerAction::Reset);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RecordingPlatform;

    #[test]
    fn rst_cpu_resets_and_configuration_bits_read_back() {
        let mut register = ResetControl::new();
        let mut platform = RecordingPlatform::default();
        assert_eq!(register.read(0, 1, &mut platform), 0);
        // Linux's BOOT_CF9_FORCE: request a hard reset, then trigger it.
        register.write(0, 1, 0x02, &mut platform);
        assert!(platform.power.is_empty());
        assert_eq!(register.read(0, 1, &mut platform), 0x02);
        register.write(0, 1, 0x06, &mut platform);
        assert_eq!(platform.power, vec![PowerAction::Reset]);
        assert_eq!(register.read(0, 1, &mut platform), 0x02, "RST_CPU reads 0");
        register.write(0, 1, 0xFF, &mut platform);
        assert_eq!(register.read(0, 1, &mut platform), 0x0A);
        assert_eq!(platform.power.len(), 2);
    }

    #[test]
    fn reset_control_ignores_other_offsets() {
        let mut register = ResetControl::new();
        let mut platform = RecordingPlatform::default();
        register.write(1, 1, 0x04, &mut platform);
        assert!(platform.power.is_empty());
        assert_eq!(register.read(0, 2, &mut platform), 0xFF00);
        // A word write hits the register with its low byte only.
        register.write(0, 2, 0x0400, &mut platform);
        assert!(platform.power.is_empty());
    }

    #[test]
    fn keyboard_controller_pulse_reset_command_resets() {
        let mut controller = KeyboardControllerReset::new();
        let mut platform = RecordingPlatform::default();
        controller.write(COMMAND_PORT, 1, 0xFE, &mut platform);
        assert_eq!(platform.power, vec![PowerAction::Reset]);
        // 0xF0 pulses all four low output bits, the reset line among them.
        controller.write(COMMAND_PORT, 1, 0xF0, &mut platform);
        assert_eq!(platform.power.len(), 2);
    }

    #[test]
    fn keyboard_controller_ignores_other_commands_and_data() {
        let mut controller = KeyboardControllerReset::new();
        let mut platform = RecordingPlatform::default();
        for command in [0x20, 0x60, 0xAA, 0xAD, 0xD1, 0xFF, 0xEF] {
            controller.write(COMMAND_PORT, 1, command, &mut platform);
        }
        controller.write(0, 1, 0xFE, &mut platform);
        controller.write(2, 1, 0xFE, &mut platform);
        assert!(platform.power.is_empty());
    }

    #[test]
    fn keyboard_controller_reads_as_absent() {
        let mut controller = KeyboardControllerReset::new();
        let mut platform = RecordingPlatform::default();
        assert_eq!(controller.read(0, 1, &mut platform), 0xFF);
        assert_eq!(controller.read(COMMAND_PORT, 1, &mut platform), 0xFF);
        assert_eq!(controller.read(0, 4, &mut platform), 0xFFFF_FFFF);
    }

    #[test]
    fn survive_any_offset_size_and_value() {
        let mut platform = RecordingPlatform::default();
        let mut devices: [Box<dyn Device>; 2] =
            [Box::new(ResetControl::new()), Box::new(KeyboardControllerReset::new())];
        for device in &mut devices {
            for offset in (0..8).chain([u64::MAX - 2, u64::MAX]) {
                for size in [0, 1, 2, 3, 4, 8, 255] {
                    device.write(offset, size, 0x0101_0101_0101_0101, &mut platform);
                    device.read(offset, size, &mut platform);
                }
            }
        }
        assert!(platform.power.is_empty());
    }
}
