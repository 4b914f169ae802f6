//! Calendar arithmetic for reading the host's RTC: pure, host-tested.

/// Seconds since 1970-01-01T00:00:00Z for a UTC calendar time, or `None`
/// for a date before 1970 or a field out of range.
pub fn unix_seconds(year: u32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<u64> {
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), shifted so March is month 0.
    let (y, m) = if month <= 2 {
        (i64::from(year) - 1, month + 9)
    } else {
        (i64::from(year), month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * i64::from(m) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    u64::try_from(seconds).ok()
}

/// Decodes a CMOS RTC field, which is BCD unless register B says binary.
pub fn rtc_field(raw: u8, binary: bool) -> u32 {
    if binary {
        u32::from(raw)
    } else {
        u32::from(raw >> 4) * 10 + u32::from(raw & 0x0f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(unix_seconds(2023, 11, 14, 22, 13, 20), Some(1_700_000_000));
        assert_eq!(unix_seconds(2026, 1, 1, 0, 0, 0), Some(1_767_225_600));
        assert_eq!(unix_seconds(2000, 2, 29, 12, 0, 0), Some(951_825_600));
    }

    #[test]
    fn out_of_range_fields_are_rejected() {
        assert_eq!(unix_seconds(1969, 12, 31, 23, 59, 59), None);
        assert_eq!(unix_seconds(2024, 13, 1, 0, 0, 0), None);
        assert_eq!(unix_seconds(2024, 1, 1, 24, 0, 0), None);
    }

    #[test]
    fn bcd_and_binary_fields() {
        assert_eq!(rtc_field(0x59, false), 59);
        assert_eq!(rtc_field(59, true), 59);
    }
}
