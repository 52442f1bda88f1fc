//! Which bandwidth limits a schedule puts in force at a local time, and until when: a pure
//! function, tested over days and hours like `plan.rs`. The local time itself comes from
//! `local_now` (the machine's time zone) or from `Config::local_clock` in tests.

use crate::config::{BandwidthSchedule, LocalTime, Window};

const MINUTES_PER_DAY: u16 = 24 * 60;
const MINUTES_PER_WEEK: u32 = 7 * MINUTES_PER_DAY as u32;

/// Whether `window` covers minute `t` of the week (0: Sunday 00:00).
fn covers(window: &Window, t: u32) -> bool {
    let (day, minute) = (
        (t / MINUTES_PER_DAY as u32) as u8,
        (t % MINUTES_PER_DAY as u32) as u16,
    );
    let starts_on = |d: u8| window.days & (1 << d) != 0;
    let yesterday = (day + 6) % 7;
    let (start, end) = (window.start_minute, window.end_minute);
    if start == end {
        starts_on(day)
    } else if start < end {
        starts_on(day) && (start..end).contains(&minute)
    } else {
        // Past midnight: the evening of a start day, or the early hours after one.
        (starts_on(day) && minute >= start) || (starts_on(yesterday) && minute < end)
    }
}

/// The limits (HIGH, NORMAL, LOW) in force at minute `t` of the week.
fn limits_at_minute(s: &BandwidthSchedule, t: u32) -> [u64; 3] {
    match &s.maintenance {
        Some(m) if covers(m, t) => m.limits,
        _ if covers(&s.work, t) => s.work.limits,
        _ => s.other_limits,
    }
}

/// The limits in force at `now`, and how many minutes from the start of `now`'s minute they stay
/// in force (None: for ever, the schedule never changes them).
pub(crate) fn limits_at(s: &BandwidthSchedule, now: LocalTime) -> ([u64; 3], Option<u32>) {
    let t = (now.weekday as u32 % 7) * MINUTES_PER_DAY as u32 + now.minute as u32;
    let limits = limits_at_minute(s, t);
    let change =
        (1..=MINUTES_PER_WEEK).find(|d| limits_at_minute(s, (t + d) % MINUTES_PER_WEEK) != limits);
    (limits, change)
}

/// The local time of `unix_secs` in a zone `utc_offset_secs` east of UTC.
pub(crate) fn local_time(unix_secs: i64, utc_offset_secs: i64) -> LocalTime {
    let local = unix_secs + utc_offset_secs;
    let days = local.div_euclid(86_400);
    let minute = (local.rem_euclid(86_400) / 60) as u16;
    // 1970-01-01 was a Thursday (4).
    let weekday = (days + 4).rem_euclid(7) as u8;
    LocalTime { weekday, minute }
}

/// The machine's local time: its clock, and its time zone's offset now (localtime_r's
/// tm_gmtoff, daylight saving time included); UTC if the zone cannot be read.
pub(crate) fn local_now() -> LocalTime {
    // SAFETY: time(NULL) and localtime_r write only into `tm`, which we own.
    let (now, offset) = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        let offset = if libc::localtime_r(&now, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff
        };
        (now, offset)
    };
    local_time(now, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BANDWIDTH_BLOCKED;

    const WEEKDAYS: u8 = 0b011_1110; // Monday to Friday
    const WORK: [u64; 3] = [3_000, 2_000, 1_000];
    const OTHER: [u64; 3] = [0, 0, 500];

    fn at(weekday: u8, h: u16, m: u16) -> LocalTime {
        LocalTime {
            weekday,
            minute: h * 60 + m,
        }
    }

    fn office() -> BandwidthSchedule {
        BandwidthSchedule {
            work: Window {
                days: WEEKDAYS,
                start_minute: 8 * 60,
                end_minute: 17 * 60,
                limits: WORK,
            },
            other_limits: OTHER,
            maintenance: None,
        }
    }

    #[test]
    fn work_hours_on_work_days_only() {
        let s = office();
        assert_eq!(limits_at(&s, at(1, 8, 0)), (WORK, Some(9 * 60)));
        assert_eq!(limits_at(&s, at(1, 16, 59)).0, WORK);
        // 17:00 is outside (the window is [start, end)); the next change is Tuesday 08:00.
        assert_eq!(limits_at(&s, at(1, 17, 0)), (OTHER, Some(15 * 60)));
        assert_eq!(limits_at(&s, at(1, 7, 59)), (OTHER, Some(1)));
        // Saturday and Sunday are outside all day; Friday evening lasts until Monday 08:00.
        assert_eq!(limits_at(&s, at(6, 12, 0)).0, OTHER);
        assert_eq!(
            limits_at(&s, at(5, 17, 0)),
            (OTHER, Some((7 + 48 + 8) * 60))
        );
        // Sunday 23:59 -> Monday 08:00 wraps the week.
        assert_eq!(limits_at(&s, at(0, 23, 59)), (OTHER, Some(8 * 60 + 1)));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let mut s = office();
        s.work = Window {
            days: 1 << 5, // Friday night shift
            start_minute: 22 * 60,
            end_minute: 6 * 60,
            limits: WORK,
        };
        assert_eq!(limits_at(&s, at(5, 21, 59)).0, OTHER);
        assert_eq!(limits_at(&s, at(5, 22, 0)), (WORK, Some(8 * 60)));
        assert_eq!(limits_at(&s, at(6, 5, 59)), (WORK, Some(1)));
        assert_eq!(limits_at(&s, at(6, 6, 0)).0, OTHER);
        // Thursday's early hours are not Friday's night.
        assert_eq!(limits_at(&s, at(4, 3, 0)).0, OTHER);
    }

    #[test]
    fn the_maintenance_window_overrides_both_and_an_equal_start_and_end_is_all_day() {
        let mut s = office();
        let blocked = [BANDWIDTH_BLOCKED; 3];
        s.maintenance = Some(Window {
            days: 1 << 3, // Wednesday
            start_minute: 12 * 60,
            end_minute: 13 * 60,
            limits: blocked,
        });
        assert_eq!(limits_at(&s, at(3, 12, 30)), (blocked, Some(30)));
        assert_eq!(limits_at(&s, at(3, 13, 0)).0, WORK);
        assert_eq!(limits_at(&s, at(4, 12, 30)).0, WORK);
        s.maintenance = Some(Window {
            days: 1 << 0, // all of Sunday
            start_minute: 0,
            end_minute: 0,
            limits: blocked,
        });
        assert_eq!(limits_at(&s, at(0, 0, 0)), (blocked, Some(24 * 60)));
        assert_eq!(limits_at(&s, at(6, 23, 59)), (OTHER, Some(1)));
    }

    #[test]
    fn a_schedule_that_never_changes_says_so() {
        let s = BandwidthSchedule {
            work: Window {
                days: 0x7F,
                start_minute: 0,
                end_minute: 0,
                limits: WORK,
            },
            other_limits: OTHER,
            maintenance: None,
        };
        assert_eq!(limits_at(&s, at(2, 10, 0)), (WORK, None));
    }

    #[test]
    fn local_time_in_time_zones() {
        // 2026-12-03 (a Thursday) 23:30 UTC.
        let t = 1_796_340_600;
        assert_eq!(local_time(t, 0), at(4, 23, 30));
        // UTC+1 is already Friday 00:30; UTC-8 is Thursday 15:30; UTC+5:45 Friday 05:15.
        assert_eq!(local_time(t, 3600), at(5, 0, 30));
        assert_eq!(local_time(t, -8 * 3600), at(4, 15, 30));
        assert_eq!(local_time(t, 5 * 3600 + 45 * 60), at(5, 5, 15));
        // Before the epoch, and across the week's end: 1969-12-28 was a Sunday.
        assert_eq!(local_time(-4 * 86_400 + 60, 0), at(0, 0, 1));
        assert_eq!(local_time(-4 * 86_400 - 60, 0), at(6, 23, 59));
    }

    #[test]
    fn local_now_is_a_valid_time() {
        let t = local_now();
        assert!(t.weekday < 7 && t.minute < MINUTES_PER_DAY);
    }
}
