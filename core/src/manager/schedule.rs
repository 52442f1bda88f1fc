//! The bandwidth schedule's checks and its form in the state folder's settings.

use crate::config::{BandwidthSchedule, Window};
use crate::error::{Error, Result};
use crate::hresult as hr;

/// BITS_E_INVALIDARG for a day mask beyond the week or a minute beyond the day.
pub(super) fn check(s: &BandwidthSchedule) -> Result<()> {
    for (name, w) in std::iter::once(("work hours", &s.work))
        .chain(s.maintenance.as_ref().map(|m| ("maintenance window", m)))
    {
        if w.days > 0x7F || w.start_minute >= 1440 || w.end_minute >= 1440 {
            return Err(Error::new(
                hr::E_INVALIDARG,
                format!(
                    "{name}: days {:#x} (bits 0-6, Sunday first), minutes {}-{} (0-1439 after \
                     local midnight)",
                    w.days, w.start_minute, w.end_minute
                ),
            ));
        }
    }
    Ok(())
}

fn window_fields(w: &Window) -> [u64; 6] {
    [
        w.days.into(),
        w.start_minute.into(),
        w.end_minute.into(),
        w.limits[0],
        w.limits[1],
        w.limits[2],
    ]
}

/// "v1" and the numbers: the work window, the other limits, and the maintenance window if any.
pub(super) fn encode(s: &BandwidthSchedule) -> String {
    let mut n: Vec<u64> = window_fields(&s.work).to_vec();
    n.extend(s.other_limits);
    if let Some(m) = &s.maintenance {
        n.extend(window_fields(m));
    }
    let numbers: Vec<String> = n.iter().map(u64::to_string).collect();
    format!("v1 {}", numbers.join(" "))
}

/// The inverse of `encode`; None for anything it did not write.
pub(super) fn decode(text: &str) -> Option<BandwidthSchedule> {
    let mut words = text.split(' ');
    if words.next()? != "v1" {
        return None;
    }
    let n: Vec<u64> = words.map(|w| w.parse().ok()).collect::<Option<_>>()?;
    let window = |f: &[u64]| -> Option<Window> {
        Some(Window {
            days: u8::try_from(f[0]).ok()?,
            start_minute: u16::try_from(f[1]).ok()?,
            end_minute: u16::try_from(f[2]).ok()?,
            limits: [f[3], f[4], f[5]],
        })
    };
    let s = match n.len() {
        9 | 15 => BandwidthSchedule {
            work: window(&n[0..6])?,
            other_limits: [n[6], n[7], n[8]],
            maintenance: if n.len() == 15 {
                Some(window(&n[9..15])?)
            } else {
                None
            },
        },
        _ => return None,
    };
    check(&s).ok()?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BANDWIDTH_BLOCKED;

    #[test]
    fn round_trip_and_refusals() {
        let mut s = BandwidthSchedule {
            work: Window {
                days: 0b011_1110,
                start_minute: 480,
                end_minute: 1020,
                limits: [1, 2, BANDWIDTH_BLOCKED],
            },
            other_limits: [0, 5, 6],
            maintenance: None,
        };
        assert_eq!(decode(&encode(&s)), Some(s));
        s.maintenance = Some(Window {
            days: 1,
            start_minute: 1380,
            end_minute: 60,
            limits: [BANDWIDTH_BLOCKED; 3],
        });
        assert_eq!(decode(&encode(&s)), Some(s));
        assert_eq!(decode("v2 1 2 3"), None);
        assert_eq!(decode("v1 1 2 3"), None);
        s.work.end_minute = 1440;
        assert_eq!(check(&s).unwrap_err().code, hr::E_INVALIDARG);
        s.work.end_minute = 0;
        s.work.days = 0x80;
        assert_eq!(check(&s).unwrap_err().code, hr::E_INVALIDARG);
    }
}
