//! ACPI fixed-hardware power management registers in one block of I/O
//! ports, serving both ACPI profiles Keel may declare:
//!
//! * full ACPI: the PM1a event block (PM1_STS, PM1_EN), the PM1a control
//!   block (SLP_TYP/SLP_EN) and the PM timer;
//! * hardware-reduced ACPI: SLEEP_CONTROL_REG and SLEEP_STATUS_REG.
//!
//! Only S5 (soft-off) exists: the DSDT Keel generates declares nothing but
//! `\_S5_`, with SLP_TYP [`S5_SLP_TYP`]. A sleep request for any other type
//! "wakes" at once (WAK_STS set) so a guest waiting for WAK_STS carries on.
//!
//! Nothing here raises an SCI: the FADT declares no fixed power or sleep
//! button, no status bit but WAK_STS is ever set, and the PM timer's
//! overflow status (TMR_STS) is not emulated — Linux reads the counter only.

use crate::bus::{read_bytewise, write_bytewise};
use crate::{Device, Offset, Platform, PowerAction};

/// Where the block lives. The ACPI table generator puts the port constants
/// below in the FADT; the hypervisor registers [`AcpiPm`] at this base with
/// length [`ACPI_PM_PORT_COUNT`].
pub const ACPI_PM_BASE_PORT: u16 = 0x600;
pub const ACPI_PM_PORT_COUNT: u64 = 0x10;

/// Layout within the block: PM1a_EVT_BLK (4 bytes: PM1_STS, PM1_EN).
pub const PM1A_EVENT_OFFSET: u16 = 0x0;
/// PM1a_CNT_BLK (2 bytes).
pub const PM1A_CONTROL_OFFSET: u16 = 0x4;
/// PM_TMR_BLK (4 bytes, dword access).
pub const PM_TIMER_OFFSET: u16 = 0x8;
/// Hardware-reduced SLEEP_CONTROL_REG (1 byte).
pub const SLEEP_CONTROL_OFFSET: u16 = 0xC;
/// Hardware-reduced SLEEP_STATUS_REG (1 byte).
pub const SLEEP_STATUS_OFFSET: u16 = 0xD;

pub const PM1A_EVENT_PORT: u16 = ACPI_PM_BASE_PORT + PM1A_EVENT_OFFSET;
pub const PM1A_CONTROL_PORT: u16 = ACPI_PM_BASE_PORT + PM1A_CONTROL_OFFSET;
pub const PM_TIMER_PORT: u16 = ACPI_PM_BASE_PORT + PM_TIMER_OFFSET;
pub const SLEEP_CONTROL_PORT: u16 = ACPI_PM_BASE_PORT + SLEEP_CONTROL_OFFSET;
pub const SLEEP_STATUS_PORT: u16 = ACPI_PM_BASE_PORT + SLEEP_STATUS_OFFSET;

/// The SLP_TYP of S5 in the `\_S5_` package Keel's DSDT declares
/// (`acpi_tables::S5_SLEEP_TYPE` must stay equal to it).
pub const S5_SLP_TYP: u8 = 5;
/// The PM timer's fixed frequency (ACPI spec: 3.579545 MHz).
pub const PM_TIMER_FREQUENCY_HZ: u64 = 3_579_545;
/// The counter is 24 bits wide: the FADT leaves TMR_VAL_EXT clear.
pub const PM_TIMER_MASK: u32 = 0x00FF_FFFF;

const PM1_STATUS: Offset = PM1A_EVENT_OFFSET as Offset;
const PM1_ENABLE: Offset = PM1_STATUS + 2;
const PM1_CONTROL: Offset = PM1A_CONTROL_OFFSET as Offset;
const PM_TIMER: Offset = PM_TIMER_OFFSET as Offset;
const SLEEP_CONTROL: Offset = SLEEP_CONTROL_OFFSET as Offset;
const SLEEP_STATUS: Offset = SLEEP_STATUS_OFFSET as Offset;

/// PM1_STS/SLEEP_STATUS_REG: the system woke from a sleep state.
const PM1_WAKE_STATUS: u16 = 1 << 15;
const SLEEP_WAKE_STATUS: u8 = 1 << 7;
/// PM1_EN bits that exist: TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN,
/// PCIEXP_WAKE_DIS. Stored for read-back; none can fire.
const PM1_ENABLE_IMPLEMENTED: u16 = 0x4721;

/// PM1_CNT.SCI_EN: always set, as Keel's FADT has no SMI command port and
/// the platform is therefore permanently in ACPI mode.
const PM1_SCI_ENABLE: u16 = 1 << 0;
/// PM1_CNT bits that read back: BM_RLD and SLP_TYP. GBL_RLS and SLP_EN are
/// write-only triggers.
const PM1_CONTROL_STORED: u16 = (1 << 1) | PM1_SLEEP_TYPE_MASK;
const PM1_SLEEP_TYPE_SHIFT: u32 = 10;
const PM1_SLEEP_TYPE_MASK: u16 = 0x7 << PM1_SLEEP_TYPE_SHIFT;
const PM1_SLEEP_ENABLE: u16 = 1 << 13;

const SLEEP_TYPE_SHIFT: u32 = 2;
const SLEEP_TYPE_MASK: u8 = 0x7 << SLEEP_TYPE_SHIFT;
const SLEEP_ENABLE: u8 = 1 << 5;

const NANOSECONDS_PER_SECOND: u128 = 1_000_000_000;

/// The PM timer's counter after `now_ns` of domain time.
fn pm_timer_ticks(now_ns: u64) -> u32 {
    let ticks = u128::from(now_ns) * u128::from(PM_TIMER_FREQUENCY_HZ) / NANOSECONDS_PER_SECOND;
    (ticks as u32) & PM_TIMER_MASK
}

#[derive(Default)]
pub struct AcpiPm {
    pm1_status: u16,
    pm1_enable: u16,
    pm1_control: u16,
    sleep_control: u8,
    sleep_status: u8,
}

impl AcpiPm {
    pub const fn new() -> Self {
        Self {
            pm1_status: 0,
            pm1_enable: 0,
            pm1_control: 0,
            sleep_control: 0,
            sleep_status: 0,
        }
    }

    /// Powers off for S5; other sleep types are unsupported and return at
    /// once as if woken, which `wake` records in the right status register.
    fn enter_sleep_state(sleep_type: u8, platform: &mut dyn Platform, wake: impl FnOnce()) {
        if sleep_type == S5_SLP_TYP {
            platform.power(PowerAction::PowerOff);
        } else {
            wake();
        }
    }

    /// One byte of the register block; `timer` is sampled once per access
    /// so a multi-byte read sees one consistent count.
    fn read_byte(&self, offset: Offset, timer: u32) -> u8 {
        let [status_low, status_high] = self.pm1_status.to_le_bytes();
        let [enable_low, enable_high] = self.pm1_enable.to_le_bytes();
        let [control_low, control_high] = (self.pm1_control | PM1_SCI_ENABLE).to_le_bytes();
        let timer = timer.to_le_bytes();
        match offset {
            PM1_STATUS => status_low,
            0x1 => status_high,
            PM1_ENABLE => enable_low,
            0x3 => enable_high,
            PM1_CONTROL => control_low,
            0x5 => control_high,
            PM_TIMER..=0xB => timer.get((offset - PM_TIMER) as usize).copied().unwrap_or(0xff),
            SLEEP_CONTROL => self.sleep_control,
            SLEEP_STATUS => self.sleep_status,
            _ => 0xff,
        }
    }

    fn write_byte(&mut self, offset: Offset, value: u8, platform: &mut dyn Platform) {
        let low = u16::from(value);
        let high = u16::from(value) << 8;
        match offset {
            // Status bits are write-1-to-clear.
            PM1_STATUS => self.pm1_status &= !low,
            0x1 => self.pm1_status &= !high,
            PM1_ENABLE => self.pm1_enable = (self.pm1_enable & 0xFF00) | low,
            0x3 => self.pm1_enable = (self.pm1_enable & 0x00FF) | high,
            PM1_CONTROL => self.pm1_control = (self.pm1_control & 0xFF00) | low,
            0x5 => {
                self.pm1_control = (self.pm1_control & 0x00FF) | high;
                if high & PM1_SLEEP_ENABLE != 0 {
                    let sleep_type = ((high & PM1_SLEEP_TYPE_MASK) >> PM1_SLEEP_TYPE_SHIFT) as u8;
                    let status = &mut self.pm1_status;
                    Self::enter_sleep_state(sleep_type, platform, || *status |= PM1_WAKE_STATUS);
                }
            }
            SLEEP_CONTROL => {
                self.sleep_control = value & SLEEP_TYPE_MASK;
                if value & SLEEP_ENABLE != 0 {
                    let sleep_type = (value & SLEEP_TYPE_MASK) >> SLEEP_TYPE_SHIFT;
                    let status = &mut self.sleep_status;
                    Self::enter_sleep_state(sleep_type, platform, || *status |= SLEEP_WAKE_STATUS);
                }
            }
            SLEEP_STATUS => self.sleep_status &= !value,
            // The PM timer is read-only; the gaps hold nothing.
            _ => {}
        }
        self.pm1_enable &= PM1_ENABLE_IMPLEMENTED;
        self.pm1_control &= PM1_CONTROL_STORED;
    }
}

impl Device for AcpiPm {
    fn name(&self) -> &'static str {
        "acpi-pm"
    }

    fn read(&mut self, offset: Offset, size: u8, platform: &mut dyn Platform) -> u64 {
        let timer = pm_timer_ticks(platform.now_ns());
        read_bytewise(offset, size, |byte_offset| self.read_byte(byte_offset, timer))
    }

    fn write(&mut self, offset: Offset, size: u8, value: u64, platform: &mut dyn Platform) {
        write_bytewise(offset, size, value, |byte_offset, byte| {
            self.write_byte(byte_offset, byte, platform)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RecordingPlatform;

    fn pm1_control_value(sleep_type: u8, enable: bool) -> u64 {
        let enable = if enable { PM1_SLEEP_ENABLE } else { 0 };
        u64::from((u16::from(sleep_type) << PM1_SLEEP_TYPE_SHIFT) | enable)
    }

    #[test]
    fn layout_fits_the_block_without_overlap() {
        let mut registers = [
            (PM1A_EVENT_OFFSET, 4),
            (PM1A_CONTROL_OFFSET, 2),
            (PM_TIMER_OFFSET, 4),
            (SLEEP_CONTROL_OFFSET, 1),
            (SLEEP_STATUS_OFFSET, 1),
        ];
        registers.sort();
        for pair in registers.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{pair:?}");
        }
        let (last_offset, last_len) = registers[registers.len() - 1];
        assert!(u64::from(last_offset + last_len) <= ACPI_PM_PORT_COUNT);
        assert_eq!(PM_TIMER_OFFSET % 4, 0, "PM timer is dword-aligned");
        assert_eq!(PM1A_CONTROL_PORT, 0x604);
    }

    #[test]
    fn linux_legacy_s5_sequence_powers_off() {
        let mut pm = AcpiPm::new();
        let mut platform = RecordingPlatform::default();
        // acpi_hw_legacy_sleep: clear WAK_STS, write SLP_TYP, then add SLP_EN.
        pm.write(PM1_STATUS, 2, u64::from(PM1_WAKE_STATUS), &mut platform);
        pm.write(PM1_CONTROL, 2, pm1_control_value(S5_SLP_TYP, false), &mut platform);
        assert!(platform.power.is_empty());
        assert_eq!(
            pm.read(PM1_CONTROL, 2, &mut platform),
            pm1_control_value(S5_SLP_TYP, false) | u64::from(PM1_SCI_ENABLE)
        );
        pm.write(PM1_CONTROL, 2, pm1_control_value(S5_SLP_TYP, true), &mut platform);
        assert_eq!(platform.power, vec![PowerAction::PowerOff]);
        // SLP_EN is a trigger and reads back 0.
        assert_eq!(pm.read(PM1_CONTROL, 2, &mut platform) & u64::from(PM1_SLEEP_ENABLE), 0);
    }

    #[test]
    fn byte_write_of_the_control_high_byte_also_powers_off() {
        let mut pm = AcpiPm::new();
        let mut platform = RecordingPlatform::default();
        pm.write(PM1_CONTROL + 1, 1, 0x34, &mut platform);
        assert_eq!(platform.power, vec![PowerAction::PowerOff]);
    }

    #[test]
    fn reduced_hardware_s5_sequence_powers_off() {
        let mut pm = AcpiPm::new();
        let mut platform = RecordingPlatform::default();
        // acpi_hw_extended_sleep: clear WAK_STS, then SLP_TYP | SLP_EN.
        pm.write(SLEEP_STATUS, 1, u64::from(SLEEP_WAKE_STATUS), &mut platform);
        pm.write(SLEEP_CONTROL, 1, 0x14, &mut platform);
        assert!(platform.power.is_empty(), "no SLP_EN, no sleep");
        assert_eq!(pm.read(SLEEP_CONTROL, 1, &mut platform), 0x14);
        pm.write(SLEEP_CONTROL, 1, 0x34, &mut platform);
        assert_eq!(platform.power, vec![PowerAction::PowerOff]);
    }

    #[test]
    fn unsupported_sleep_states_wake_immediately() {
        let mut pm = AcpiPm::new();
        let mut platform = RecordingPlatform::default();
        pm.write(PM1_CONTROL, 2, pm1_control_value(3, true), &mut platform);
        assert!(platform.power.is_empty());
        assert_eq!(pm.read(PM1_STATUS, 2, &mut platform), u64::from(PM1_WAKE_STATUS));
        pm.write(PM1_STATUS, 2, u64::from(PM1_WAKE_STATUS), &mut platform);
        assert_eq!(pm.read(PM1_STATUS, 2, &mut platform), 0);

        pm.write(SLEEP_CONTROL, 1, 0x20 | (1 << SLEEP_TYPE_SHIFT), &mut platform);
        assert!(platform.power.is_empty());
        assert_eq!(pm.read(SLEEP_STATUS, 1, &mut platform), 0x80);
        pm.write(SLEEP_STATUS, 1, 0x80, &mut platform);
        assert_eq!(pm.read(SLEEP_STATUS, 1, &mut platform), 0);
    }

    #[test]
    fn status_is_write_one_to_clear_and_writing_zero_keeps_it() {
        let mut pm = AcpiPm::new();
        let mut platform = RecordingPlatform::default();
        pm.write(PM1_CONTROL, 2, pm1_control_value(1, true), &mut platform);
        pm.write(PM1_STATUS, 2, 0x7FFF, &mut platform);
        assert_eq!(pm.read(PM1_STATUS, 2, &mut platform), u64::from(PM1_WAKE_STATUS));
        pm.write(PM1_STATUS + 1, 1, 0x80, &mut platform);
        assert_eq!(pm.read(PM1_STATUS, 2, &mut platform), 0);
    }

    #[test]
    fn enable_and_control_keep_only_defined_bits_and_sci_en_stays_set() {
        let mut pm = AcpiPm::new();
        let mut platform = RecordingPlatform::default();
        pm.write(PM1_ENABLE, 2, 0xFFFF, &mut platform);
        assert_eq!(pm.read(PM1_ENABLE, 2, &mut platform), 0x4721);
        // A dword write covers PM1_STS and PM1_EN together.
        pm.write(PM1_STATUS, 4, 0x0100_0000, &mut platform);
        assert_eq!(pm.read(PM1_STATUS, 4, &mut platform), 0x0100_0000);
        pm.write(PM1_CONTROL, 1, 0xFE, &mut platform);
        assert_eq!(pm.read(PM1_CONTROL, 2, &mut platform), 0x0003);
        pm.write(PM1_CONTROL, 1, 0x00, &mut platform);
        assert_eq!(pm.read(PM1_CONTROL, 2, &mut platform), u64::from(PM1_SCI_ENABLE));
        assert!(platform.power.is_empty());
    }

    #[test]
    fn pm_timer_counts_at_3_58_mhz_and_wraps_at_24_bits() {
        let mut pm = AcpiPm::new();
        let mut platform = RecordingPlatform::default();
        assert_eq!(pm.read(PM_TIMER, 4, &mut platform), 0);
        platform.now_ns = 1_000_000_000;
        assert_eq!(pm.read(PM_TIMER, 4, &mut platform), 3_579_545);
        platform.now_ns = 5_000_000_000;
        // 17_897_725 ticks modulo 2^24.
        assert_eq!(pm.read(PM_TIMER, 4, &mut platform), 1_120_509);
        assert_eq!(pm.read(PM_TIMER + 2, 1, &mut platform), 0x11);
        pm.write(PM_TIMER, 4, 0, &mut platform);
        assert_eq!(pm.read(PM_TIMER, 4, &mut platform), 1_120_509, "read-only");
        platform.now_ns = u64::MAX;
        assert!(pm.read(PM_TIMER, 4, &mut platform) <= u64::from(PM_TIMER_MASK));
    }

    #[test]
    fn gaps_read_as_nothing() {
        let mut pm = AcpiPm::new();
        let mut platform = RecordingPlatform::default();
        assert_eq!(pm.read(0x6, 2, &mut platform), 0xFFFF);
        assert_eq!(pm.read(0xE, 2, &mut platform), 0xFFFF);
    }

    #[test]
    fn survives_any_offset_size_and_value() {
        let mut pm = AcpiPm::new();
        let mut platform = RecordingPlatform {
            now_ns: u64::MAX,
            ..Default::default()
        };
        for offset in (0..0x14).chain([u64::MAX - 3, u64::MAX]) {
            for size in [0, 1, 2, 3, 4, 8, 255] {
                for value in [0, 0x1F1F, u64::MAX] {
                    pm.write(offset, size, value, &mut platform);
                    pm.read(offset, size, &mut platform);
                }
            }
        }
    }
}
