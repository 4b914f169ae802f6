//! Reads the host's CMOS real-time clock once at boot, to give guests the
//! wall-clock time.

use keel_hypervisor::wallclock::{rtc_field, unix_seconds};

use super::instructions::{inb, outb};

const INDEX_PORT: u16 = 0x70;
const DATA_PORT: u16 = 0x71;
const STATUS_A_UPDATE_IN_PROGRESS: u8 = 0x80;
const STATUS_B_BINARY: u8 = 0x04;
const STATUS_B_24_HOUR: u8 = 0x02;
const HOUR_PM: u8 = 0x80;

fn read_register(index: u8) -> u8 {
    // SAFETY: the CMOS index/data ports are only used here, at boot, on
    // one CPU; bit 7 of the index (NMI disable) is kept clear.
    unsafe {
        outb(INDEX_PORT, index & 0x7f);
        inb(DATA_PORT)
    }
}

/// Seconds since the Unix epoch, assuming the RTC keeps UTC (as Linux
/// hosts set it), or `None` when the RTC reads nonsense.
pub fn read_unix_seconds() -> Option<u64> {
    for _ in 0..1_000_000 {
        if read_register(0x0a) & STATUS_A_UPDATE_IN_PROGRESS == 0 {
            break;
        }
    }
    let status_b = read_register(0x0b);
    let binary = status_b & STATUS_B_BINARY != 0;
    let field = |index| rtc_field(read_register(index), binary);
    let raw_hour = read_register(0x04);
    let mut hour = rtc_field(raw_hour & !HOUR_PM, binary);
    if status_b & STATUS_B_24_HOUR == 0 {
        hour %= 12;
        if raw_hour & HOUR_PM != 0 {
            hour += 12;
        }
    }
    let year = 2000 + field(0x09);
    unix_seconds(year, field(0x08), field(0x07), hour, field(0x02), field(0x00))
}
