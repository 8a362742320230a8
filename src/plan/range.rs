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

/// `--day-index` past the last day of its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayIndexError {
    /// The index asked for.
    pub index: u32,
    /// First day of the range.
    pub start: NaiveDate,
    /// Last day of the range (inclusive).
    pub end: NaiveDate,
    /// How many days the range has.
    pub days: i64,
}

impl std::fmt::Display for DayIndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            index, start, end, ..
        } = self;
        match self.days {
            ..=0 => write!(f, "`--day-index {index}` cannot pick a day of the range {start} to {end}: it is empty"),
            1 => write!(f, "`--day-index {index}` is past the end of the range {start} to {end}: its one day has index 0"),
            n => write!(f, "`--day-index {index}` is past the end of the range {start} to {end}: its {n} days have indexes 0 to {}", n - 1),
        }
    }
}

impl std::error::Error for DayIndexError {}

/// The `index`-th day (0-based) of `start..=end`: the day a Kubernetes
/// Indexed Job's pod `index` runs, so that indexes `0..days` cover the
/// range once each.
pub fn nth_day(start: NaiveDate, end: NaiveDate, index: u32) -> Result<NaiveDate, DayIndexError> {
    let days = (end - start).num_days() + 1;
    if i64::from(index) < days {
        // Within `start..=end`, so the day exists.
        Ok(start + chrono::Days::new(u64::from(index)))
    } else {
        Err(DayIndexError {
            index,
            start,
            end,
            days: days.max(0),
        })
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
    fn day_indexes_cover_a_range_across_a_month_end_once_each() {
        let (start, end) = (d("2020-06-25"), d("2020-07-04"));
        let days: Vec<NaiveDate> = (0..10).map(|i| nth_day(start, end, i).unwrap()).collect();
        let expected: Vec<NaiveDate> = start.iter_days().take(10).collect();
        assert_eq!(days, expected);
        assert_eq!(days.last(), Some(&end));
        assert_eq!(days[6], d("2020-07-01"));
    }

    #[test]
    fn a_day_index_past_the_end_names_the_range() {
        let e = nth_day(d("2020-06-25"), d("2020-07-04"), 10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`--day-index 10` is past the end of the range 2020-06-25 to 2020-07-04: its 10 days have indexes 0 to 9"
        );
        assert!(nth_day(d("2020-06-25"), d("2020-06-25"), 0).is_ok());
        assert_eq!(
            nth_day(d("2020-06-25"), d("2020-06-25"), 1).unwrap_err().to_string(),
            "`--day-index 1` is past the end of the range 2020-06-25 to 2020-06-25: its one day has index 0"
        );
        // Far past the calendar's end: an error, not a panic.
        assert!(nth_day(d("2020-06-25"), d("2020-07-04"), u32::MAX).is_err());
        let empty = nth_day(d("2020-06-25"), d("2020-06-24"), 0).unwrap_err();
        assert!(empty.to_string().ends_with("it is empty"), "{empty}");
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
