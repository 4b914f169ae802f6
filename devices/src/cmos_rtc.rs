//! The MC146818-compatible CMOS real-time clock at ports 0x70 (index) and
//! 0x71 (data); register it at 0x70 with length [`CMOS_RTC_PORT_COUNT`].
//!
//! The clock is derived, never stored: every read of a time register computes
//! wall-clock time as the start time plus the domain's uptime, so it cannot
//! drift and never shows an update in progress (register A's UIP bit is
//! always clear, which lets Linux's `mc146818_avoid_UIP` read without waiting).
//! Guest writes to the time registers are ignored: Dom0 cannot set the
//! hypervisor's clock (`hwclock --systohc` has no effect). No RTC interrupts
//! (periodic, alarm, update-ended) are generated; their enable bits in
//! register B are stored but inert, and register C always reads 0.

use crate::bus::{read_bytewise, write_bytewise};
use crate::{Device, Offset, Platform};

/// Ports 0x70 and 0x71.
pub const CMOS_RTC_PORT_COUNT: u64 = 2;
/// CMOS index of the century byte; the FADT CENTURY field must name it for
/// Linux to read it (otherwise Linux assumes years below 70 are 20xx).
pub const CENTURY_INDEX: u8 = 0x32;

const INDEX_PORT: Offset = 0;
const DATA_PORT: Offset = 1;
/// Bit 7 of the index port gates NMIs on a PC; it selects no register.
const INDEX_MASK: u8 = 0x7F;

const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const DAY_OF_WEEK: u8 = 0x06;
const DAY_OF_MONTH: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const REGISTER_A: u8 = 0x0A;
const REGISTER_B: u8 = 0x0B;
const REGISTER_C: u8 = 0x0C;
const REGISTER_D: u8 = 0x0D;

/// UIP (bit 7) is never set; 0x26 is the power-on value: 32.768 kHz time
/// base (DV = 010), 1024 Hz periodic rate (RS = 0110).
const REGISTER_A_DEFAULT: u8 = 0x26;
const REGISTER_A_UPDATE_IN_PROGRESS: u8 = 0x80;
/// Register B: binary (rather than BCD) data mode.
const B_DATA_MODE_BINARY: u8 = 1 << 2;
/// Register B: 24-hour (rather than 12-hour) clock.
const B_HOURS_24: u8 = 1 << 1;
/// 12-hour mode marks afternoon hours with bit 7.
const HOUR_PM: u8 = 0x80;
/// Register D: VRT, "RAM and time are valid" (the battery is fine).
const REGISTER_D_VALID: u8 = 0x80;

/// 9999-12-31 23:59:59 UTC: later times are shown as this, keeping every
/// field in range (and the arithmetic far from overflow).
const LAST_REPRESENTABLE_SECOND: u64 = 253_402_300_799;
const SECONDS_PER_DAY: u64 = 86_400;
const NANOSECONDS_PER_SECOND: u64 = 1_000_000_000;

/// A UTC calendar date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalendarTime {
    pub year: u64,
    /// 1-12.
    pub month: u8,
    /// 1-31.
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// 1 = Sunday … 7 = Saturday, the RTC's convention.
    pub day_of_week: u8,
}

impl CalendarTime {
    /// Converts seconds since 1970-01-01 00:00:00 UTC (no leap seconds, as in
    /// Unix time). Times after 9999-12-31 23:59:59 are clamped to it.
    pub fn from_unix_seconds(seconds: u64) -> Self {
        let seconds = seconds.min(LAST_REPRESENTABLE_SECOND);
        let days = seconds / SECONDS_PER_DAY;
        let second_of_day = seconds % SECONDS_PER_DAY;
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday (day 5 counting Sunday as 1).
        let day_of_week = ((days + 4) % 7) as u8 + 1;
        Self {
            year,
            month,
            day,
            hour: (second_of_day / 3600) as u8,
            minute: (second_of_day / 60 % 60) as u8,
            second: (second_of_day % 60) as u8,
            day_of_week,
        }
    }
}

/// Year, month (1-12) and day (1-31) of the day `days` after 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`, specialised to non-negative day
/// counts: it counts in 400-year eras (146 097 days each) of years that
/// start on March 1st, so the leap day is the last day of a year and the
/// Gregorian rules (every 4th year, not every 100th, every 400th) fall out of
/// integer division.
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    // Days from 0000-03-01 to 1970-01-01.
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March = 0; 153 days per 5 months.
    let march_based_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * march_based_month + 2) / 5 + 1) as u8;
    let month = if march_based_month < 10 {
        march_based_month + 3
    } else {
        march_based_month - 9
    } as u8;
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Two decimal digits in one byte; `value` is below 100 everywhere it is used.
const fn to_bcd(value: u8) -> u8 {
    ((value / 10) << 4) | (value % 10)
}

pub struct CmosRtc {
    epoch_seconds_at_start: u64,
    selected: u8,
    /// Battery-backed bytes. The clock registers' slots hold A and B; the
    /// time slots are unused because time is computed.
    ram: [u8; 128],
}

impl CmosRtc {
    /// An RTC that shows `epoch_seconds_at_start` (Unix time) when the
    /// domain's clock (`Platform::now_ns`) reads zero.
    pub fn new(epoch_seconds_at_start: u64) -> Self {
        let mut ram = [0; 128];
        ram[usize::from(REGISTER_A)] = REGISTER_A_DEFAULT;
        ram[usize::from(REGISTER_B)] = B_HOURS_24;
        Self {
            epoch_seconds_at_start,
            selected: 0,
            ram,
        }
    }

    fn now(&self, platform: &dyn Platform) -> CalendarTime {
        let uptime_seconds = platform.now_ns() / NANOSECONDS_PER_SECOND;
        CalendarTime::from_unix_seconds(self.epoch_seconds_at_start.saturating_add(uptime_seconds))
    }

    fn ram_byte(&self, index: u8) -> u8 {
        self.ram.get(usize::from(index)).copied().unwrap_or(0xff)
    }

    fn register_b(&self) -> u8 {
        self.ram_byte(REGISTER_B)
    }

    /// Encodes a time field the way register B asks for: BCD or binary.
    fn encode(&self, value: u8) -> u8 {
        if self.register_b() & B_DATA_MODE_BINARY != 0 {
            value
        } else {
            to_bcd(value)
        }
    }

    fn encode_hour(&self, hour: u8) -> u8 {
        if self.register_b() & B_HOURS_24 != 0 {
            return self.encode(hour);
        }
        let hour_on_dial = match hour % 12 {
            0 => 12,
            other => other,
        };
        let pm = if hour >= 12 { HOUR_PM } else { 0 };
        self.encode(hour_on_dial) | pm
    }

    fn read_selected(&self, platform: &dyn Platform) -> u8 {
        match self.selected {
            SECONDS | MINUTES | HOURS | DAY_OF_WEEK | DAY_OF_MONTH | MONTH | YEAR | CENTURY_INDEX => {
                let now = self.now(platform);
                match self.selected {
                    SECONDS => self.encode(now.second),
                    MINUTES => self.encode(now.minute),
                    HOURS => self.encode_hour(now.hour),
                    DAY_OF_WEEK => self.encode(now.day_of_week),
                    DAY_OF_MONTH => self.encode(now.day),
                    MONTH => self.encode(now.month),
                    YEAR => self.encode((now.year % 100) as u8),
                    _ => self.encode((now.year / 100 % 100) as u8),
                }
            }
            REGISTER_A => self.ram_byte(REGISTER_A) & !REGISTER_A_UPDATE_IN_PROGRESS,
            REGISTER_C => 0,
            REGISTER_D => REGISTER_D_VALID,
            index => self.ram_byte(index),
        }
    }

    fn write_selected(&mut self, value: u8) {
        let stored = match self.selected {
            // Time can't be set (see the module comment); C and D are read-only.
            SECONDS | MINUTES | HOURS | DAY_OF_WEEK | DAY_OF_MONTH | MONTH | YEAR | CENTURY_INDEX | REGISTER_C
            | REGISTER_D => return,
            REGISTER_A => value & !REGISTER_A_UPDATE_IN_PROGRESS,
            _ => value,
        };
        if let Some(byte) = self.ram.get_mut(usize::from(self.selected)) {
            *byte = stored;
        }
    }
}

impl Device for CmosRtc {
    fn name(&self) -> &'static str {
        "cmos-rtc"
    }

    fn read(&mut self, offset: Offset, size: u8, platform: &mut dyn Platform) -> u64 {
        read_bytewise(offset, size, |port| match port {
            // The index register is write-only.
            DATA_PORT => self.read_selected(platform),
            _ => 0xff,
        })
    }

    fn write(&mut self, offset: Offset, size: u8, value: u64, _platform: &mut dyn Platform) {
        write_bytewise(offset, size, value, |port, byte| match port {
            INDEX_PORT => self.selected = byte & INDEX_MASK,
            DATA_PORT => self.write_selected(byte),
            _ => {}
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RecordingPlatform;

    /// 2023-11-14 22:13:20 UTC, a Tuesday.
    const SAMPLE_TIME: u64 = 1_700_000_000;

    fn read_register(rtc: &mut CmosRtc, platform: &mut RecordingPlatform, index: u8) -> u8 {
        rtc.write(INDEX_PORT, 1, index.into(), platform);
        rtc.read(DATA_PORT, 1, platform) as u8
    }

    fn write_register(rtc: &mut CmosRtc, platform: &mut RecordingPlatform, index: u8, value: u8) {
        rtc.write(INDEX_PORT, 1, index.into(), platform);
        rtc.write(DATA_PORT, 1, value.into(), platform);
    }

    fn date(seconds: u64) -> (u64, u8, u8) {
        let time = CalendarTime::from_unix_seconds(seconds);
        (time.year, time.month, time.day)
    }

    #[test]
    fn converts_unix_time_to_calendar_time() {
        assert_eq!(
            CalendarTime::from_unix_seconds(0),
            CalendarTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                day_of_week: 5,
            }
        );
        assert_eq!(
            CalendarTime::from_unix_seconds(SAMPLE_TIME),
            CalendarTime {
                year: 2023,
                month: 11,
                day: 14,
                hour: 22,
                minute: 13,
                second: 20,
                day_of_week: 3,
            }
        );
    }

    #[test]
    fn follows_gregorian_leap_years() {
        assert_eq!(date(94_608_000), (1972, 12, 31), "1972 has 366 days");
        assert_eq!(date(951_782_400), (2000, 2, 29), "2000: divisible by 400");
        assert_eq!(date(1_709_164_800), (2024, 2, 29));
        assert_eq!(date(1_709_164_800 + SECONDS_PER_DAY), (2024, 3, 1));
        assert_eq!(date(4_107_456_000), (2100, 2, 28));
        assert_eq!(
            date(4_107_456_000 + SECONDS_PER_DAY),
            (2100, 3, 1),
            "2100: divisible by 100, not leap"
        );
        assert_eq!(date(1_704_067_199), (2023, 12, 31));
        assert_eq!(date(1_704_067_200), (2024, 1, 1));
    }

    #[test]
    fn clamps_far_future_times() {
        let last = CalendarTime::from_unix_seconds(u64::MAX);
        assert_eq!((last.year, last.month, last.day), (9999, 12, 31));
        assert_eq!((last.hour, last.minute, last.second), (23, 59, 59));
    }

    #[test]
    fn time_registers_read_bcd_24_hour_by_default() {
        let mut rtc = CmosRtc::new(SAMPLE_TIME);
        let mut platform = RecordingPlatform::default();
        let expected = [
            (SECONDS, 0x20),
            (MINUTES, 0x13),
            (HOURS, 0x22),
            (DAY_OF_WEEK, 0x03),
            (DAY_OF_MONTH, 0x14),
            (MONTH, 0x11),
            (YEAR, 0x23),
            (CENTURY_INDEX, 0x20),
        ];
        for (index, value) in expected {
            assert_eq!(read_register(&mut rtc, &mut platform, index), value, "{index:#x}");
        }
    }

    #[test]
    fn clock_advances_with_domain_time() {
        let mut rtc = CmosRtc::new(SAMPLE_TIME);
        let mut platform = RecordingPlatform {
            now_ns: 100 * NANOSECONDS_PER_SECOND + 999_999_999,
            ..Default::default()
        };
        // 22:13:20 + 100.99 s = 22:15:00
        assert_eq!(read_register(&mut rtc, &mut platform, SECONDS), 0x00);
        assert_eq!(read_register(&mut rtc, &mut platform, MINUTES), 0x15);
    }

    #[test]
    fn register_b_selects_binary_and_12_hour_modes() {
        let mut rtc = CmosRtc::new(SAMPLE_TIME);
        let mut platform = RecordingPlatform::default();
        write_register(&mut rtc, &mut platform, REGISTER_B, B_HOURS_24 | B_DATA_MODE_BINARY);
        assert_eq!(read_register(&mut rtc, &mut platform, REGISTER_B), 0x06);
        assert_eq!(read_register(&mut rtc, &mut platform, HOURS), 22);
        assert_eq!(read_register(&mut rtc, &mut platform, YEAR), 23);
        assert_eq!(read_register(&mut rtc, &mut platform, CENTURY_INDEX), 20);
        write_register(&mut rtc, &mut platform, REGISTER_B, B_DATA_MODE_BINARY);
        assert_eq!(read_register(&mut rtc, &mut platform, HOURS), HOUR_PM | 10);
        write_register(&mut rtc, &mut platform, REGISTER_B, 0);
        assert_eq!(read_register(&mut rtc, &mut platform, HOURS), HOUR_PM | 0x10);
        // Midnight and noon are both "12" on a 12-hour dial.
        let mut midnight = CmosRtc::new(0);
        write_register(&mut midnight, &mut platform, REGISTER_B, 0);
        assert_eq!(read_register(&mut midnight, &mut platform, HOURS), 0x12);
        let mut noon = CmosRtc::new(12 * 3600);
        write_register(&mut noon, &mut platform, REGISTER_B, 0);
        assert_eq!(read_register(&mut noon, &mut platform, HOURS), HOUR_PM | 0x12);
    }

    #[test]
    fn status_registers_report_a_healthy_idle_clock() {
        let mut rtc = CmosRtc::new(SAMPLE_TIME);
        let mut platform = RecordingPlatform::default();
        assert_eq!(read_register(&mut rtc, &mut platform, REGISTER_A), 0x26);
        assert_eq!(read_register(&mut rtc, &mut platform, REGISTER_B), B_HOURS_24);
        assert_eq!(read_register(&mut rtc, &mut platform, REGISTER_C), 0);
        assert_eq!(read_register(&mut rtc, &mut platform, REGISTER_D), 0x80);
        // UIP cannot be set; the rate bits can. C and D stay read-only.
        write_register(&mut rtc, &mut platform, REGISTER_A, 0xA6);
        assert_eq!(read_register(&mut rtc, &mut platform, REGISTER_A), 0x26);
        write_register(&mut rtc, &mut platform, REGISTER_C, 0xFF);
        write_register(&mut rtc, &mut platform, REGISTER_D, 0x00);
        assert_eq!(read_register(&mut rtc, &mut platform, REGISTER_C), 0);
        assert_eq!(read_register(&mut rtc, &mut platform, REGISTER_D), 0x80);
    }

    #[test]
    fn time_writes_are_ignored() {
        let mut rtc = CmosRtc::new(SAMPLE_TIME);
        let mut platform = RecordingPlatform::default();
        write_register(&mut rtc, &mut platform, REGISTER_B, 0x82);
        write_register(&mut rtc, &mut platform, YEAR, 0x99);
        write_register(&mut rtc, &mut platform, SECONDS, 0x59);
        write_register(&mut rtc, &mut platform, REGISTER_B, 0x02);
        assert_eq!(read_register(&mut rtc, &mut platform, YEAR), 0x23);
        assert_eq!(read_register(&mut rtc, &mut platform, SECONDS), 0x20);
    }

    #[test]
    fn other_bytes_are_ram_and_the_nmi_bit_is_not_part_of_the_index() {
        let mut rtc = CmosRtc::new(SAMPLE_TIME);
        let mut platform = RecordingPlatform::default();
        assert_eq!(read_register(&mut rtc, &mut platform, 0x40), 0);
        write_register(&mut rtc, &mut platform, 0x80 | 0x40, 0x5A);
        assert_eq!(read_register(&mut rtc, &mut platform, 0x40), 0x5A);
        write_register(&mut rtc, &mut platform, 0x7F, 0xA5);
        assert_eq!(read_register(&mut rtc, &mut platform, 0xFF), 0xA5);
        // Alarm registers are plain storage too.
        write_register(&mut rtc, &mut platform, 0x01, 0x30);
        assert_eq!(read_register(&mut rtc, &mut platform, 0x01), 0x30);
    }

    #[test]
    fn word_write_sets_index_then_data_like_an_isa_bus() {
        let mut rtc = CmosRtc::new(SAMPLE_TIME);
        let mut platform = RecordingPlatform::default();
        rtc.write(INDEX_PORT, 2, 0x7750, &mut platform);
        assert_eq!(read_register(&mut rtc, &mut platform, 0x50), 0x77);
        // Index port reads as nothing; data port follows.
        rtc.write(INDEX_PORT, 1, u64::from(MONTH), &mut platform);
        assert_eq!(rtc.read(INDEX_PORT, 2, &mut platform), 0x11FF);
    }

    #[test]
    fn survives_any_offset_size_and_value() {
        let mut rtc = CmosRtc::new(u64::MAX);
        let mut platform = RecordingPlatform {
            now_ns: u64::MAX,
            ..Default::default()
        };
        for offset in (0..6).chain([u64::MAX - 1, u64::MAX]) {
            for size in [0, 1, 2, 3, 4, 8, 255] {
                for value in [0, 0x7F, 0xFF, u64::MAX] {
                    rtc.write(offset, size, value, &mut platform);
                    rtc.read(offset, size, &mut platform);
                }
            }
        }
        for index in 0..=u8::MAX {
            let value = read_register(&mut rtc, &mut platform, index);
            write_register(&mut rtc, &mut platform, index, value);
        }
    }
}
