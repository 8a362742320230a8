//! Which days a command covers.
//!
//! Today is never extracted: its partition is still being written. The cut-off
//! is the end of yesterday in the pipeline's timezone, so "today" is an input
//! here, never read from the clock.

use chrono::NaiveDate;

/// What the user asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeRequest {
    /// `--start`, inclusive.
    pub start: Option<NaiveDate>,
    /// `--end`, inclusive.
    pub end: Option<NaiveDate>,
}

/// The days to cover, inclusive, and what was changed from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRange {
    /// First day.
    pub start: NaiveDate,
    /// Last day (inclusive).
    pub end: NaiveDate,
    /// Notices for people: the range was clamped, or is empty.
    pub notices: Vec<String>,
}

impl DayRange {
    /// The days, in order. Empty when `start > end`.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.start.iter_days().take_while(move |d| *d <= self.end)
    }

    /// How many days.
    pub fn len(&self) -> usize {
        if self.start > self.end {
            0
        } else {
            (self.end - self.start).num_days() as usize + 1
        }
    }

    /// True when no day is covered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Resolves a request against the spec's first day and today (in the
/// pipeline's timezone).
pub fn resolve_range(req: RangeRequest, start_date: NaiveDate, today: NaiveDate) -> DayRange {
    let yesterday = today
        .pred_opt()
        .expect("today is after the first representable day");
    let start = req.start.unwrap_or(start_date);
    let mut end = req.end.unwrap_or(yesterday);
    let mut notices = Vec::new();
    if end > yesterday {
        notices.push(format!(
            "the range is clamped to end on {yesterday}: today ({today}) and later are never extracted, their data is still arriving"
        ));
        end = yesterday;
    }
    if start > end {
        notices.push(format!(
            "nothing to do: the range starts on {start}, after its last day {end}"
        ));
    }
    DayRange {
        start,
        end,
        notices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn default_range_is_start_date_to_yesterday() {
        let r = resolve_range(RangeRequest::default(), d("2020-06-01"), d("2020-06-11"));
        assert_eq!(
            (r.start, r.end, r.len()),
            (d("2020-06-01"), d("2020-06-10"), 10)
        );
        assert!(r.notices.is_empty());
    }

    #[test]
    fn today_is_never_included() {
        let req = RangeRequest {
            start: Some(d("2020-06-09")),
            end: Some(d("2020-06-20")),
        };
        let r = resolve_range(req, d("2020-06-01"), d("2020-06-11"));
        assert_eq!(r.end, d("2020-06-10"));
        assert_eq!(r.days().count(), 2);
        assert!(
            r.notices[0].contains("today (2020-06-11)"),
            "{:?}",
            r.notices
        );
    }

    #[test]
    fn asking_only_for_today_gives_nothing_with_a_notice() {
        let req = RangeRequest {
            start: Some(d("2020-06-11")),
            end: Some(d("2020-06-11")),
        };
        let r = resolve_range(req, d("2020-06-01"), d("2020-06-11"));
        assert!(r.is_empty());
        assert_eq!(r.notices.len(), 2);
    }
}
