//! Which records a sweep has to look at.
//!
//! A record's expiry is at least its first code's issue plus the cap window
//! (`AddressRecord::expires_at`), and ids grow in the order records are
//! created. So each sweep notes the next id at its start, and a later sweep
//! only reads the records below the id noted a cap window before it: those
//! above are too young to have expired. The sweep reads each record about
//! once when it has expired, plus the older records that are still in use,
//! instead of every record every time. The bound only saves reading: every
//! record read is checked against its own expiry, so a record skipped once
//! (a clock that jumped) is swept by a later sweep.

use std::collections::VecDeque;

use otpd_core::policy::CAP_WINDOW;

/// Sweeps' start times (ms) and the next record id at each, oldest first.
#[derive(Debug, Default)]
pub struct Marks(VecDeque<(i64, i64)>);

impl Marks {
    /// Notes a sweep starting at `now` with `next_id`; returns the id below
    /// which records may have expired.
    pub fn scan_below(&mut self, now: i64, next_id: i64) -> i64 {
        self.0.push_back((now, next_id));
        let horizon = now.saturating_sub(CAP_WINDOW.as_millis() as i64);
        // Keeps the last mark at or before the horizon, and those after it;
        // before any is that old, the first (records older than the process).
        while self.0.get(1).is_some_and(|&(at, _)| at <= horizon) {
            self.0.pop_front();
        }
        self.0.front().map_or(next_id, |&(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;

    #[test]
    fn a_sweep_reads_below_the_id_noted_a_cap_window_before_it() {
        let mut marks = Marks::default();
        // The first sweep knows nothing of the records' ages: all of them.
        assert_eq!(marks.scan_below(0, 100), 100);
        // Within the first hour, records created since are too young.
        assert_eq!(marks.scan_below(30 * MINUTE, 500), 100);
        assert_eq!(marks.scan_below(HOUR, 900), 100);
        assert_eq!(marks.scan_below(HOUR + 31 * MINUTE, 1_000), 500);
        // A sweep every minute for a day keeps about an hour of marks.
        for minute in 92..(24 * 60) {
            marks.scan_below(minute * MINUTE, minute * 10);
        }
        assert!(marks.0.len() <= 62, "{} marks", marks.0.len());
        let day = 24 * HOUR;
        assert_eq!(marks.scan_below(day, 99_999), (day - HOUR) / MINUTE * 10);
    }
}
