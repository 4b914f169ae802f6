//! What Keel learns about the machine it boots on from answers it reads:
//! whether COM1 is a real UART, and whether the firmware is an emulator's
//! (only then does `exit=emulator` write the emulators' exit ports, which
//! on real hardware could be anything).

/// Whether COM1 answered like a 16550: its scratch register kept both
/// patterns written to it (0x5A, then 0xA5), and its line status is not
/// the all-ones of an empty bus.
pub fn looks_like_uart(scratch_answers: [u8; 2], line_status: u8) -> bool {
    scratch_answers == [0x5A, 0xA5] && line_status != 0xFF
}

/// The ACPI OEM IDs of the emulators Keel's tests run on: Bochs' BIOS and
/// QEMU's SeaBIOS both say "BOCHS ".
const EMULATOR_OEM_IDS: &[&str] = &["BOCHS "];

/// Whether the RSDP's OEM ID (`None` without ACPI) names an emulator.
pub fn is_emulator_firmware(oem_id: Option<&str>) -> bool {
    oem_id.is_some_and(|oem| EMULATOR_OEM_IDS.contains(&oem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uart_keeps_its_scratch_value() {
        assert!(looks_like_uart([0x5A, 0xA5], 0x60));
        assert!(!looks_like_uart([0xFF, 0xFF], 0xFF), "empty bus");
        assert!(!looks_like_uart([0x5A, 0xA5], 0xFF));
        assert!(!looks_like_uart([0x00, 0x00], 0x00), "something else at 0x3F8");
    }

    #[test]
    fn only_emulator_firmware_gets_the_exit_ports() {
        assert!(is_emulator_firmware(Some("BOCHS ")));
        assert!(!is_emulator_firmware(Some("DELL  ")));
        assert!(!is_emulator_firmware(Some("BOCHS")));
        assert!(!is_emulator_firmware(None));
    }
}
