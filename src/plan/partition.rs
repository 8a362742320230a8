//! [`PartitionPlan`]: how documents map to days, and the MongoDB filter
//! that selects one day.

use bson::{doc, Bson, Document};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::spec::PartitionKind;

/// How documents map to days.
#[derive(Debug, Clone)]
pub struct PartitionPlan {
    /// The field, dotted.
    pub field: String,
    /// How it stores time.
    pub kind: PartitionKind,
    /// The timezone of day boundaries.
    pub timezone: Tz,
    /// First day with data.
    pub start_date: NaiveDate,
    /// Days before the last one that a catch-up run redoes as well.
    pub lookback: u32,
}

impl PartitionPlan {
    /// The half-open interval `[D 00:00, D+1 00:00)` in the partition
    /// timezone. On a DST change the day starts at the first instant that
    /// exists locally.
    pub fn bounds(&self, day: NaiveDate) -> (DateTime<Tz>, DateTime<Tz>) {
        (
            self.midnight(day),
            self.midnight(day.succ_opt().expect("a day before year 262143")),
        )
    }

    fn midnight(&self, day: NaiveDate) -> DateTime<Tz> {
        let naive = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        match self.timezone.from_local_datetime(&naive).earliest() {
            Some(t) => t,
            // Midnight skipped by a DST jump: the day starts an hour later.
            None => self
                .timezone
                .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
                .expect("an hour after a skipped midnight exists"),
        }
    }

    /// The MongoDB filter selecting `day`, for the field's kind, combined
    /// with the spec's base filter.
    pub fn filter(&self, day: NaiveDate, base: Option<&Document>) -> Document {
        self.range_filter(day, day, base)
    }

    /// The MongoDB filter selecting the days `first` to `last` (inclusive)
    /// at once, as the union of their [`Self::filter`]s would: `etl infer`
    /// counts and samples a span with it in one query, not one per day.
    pub fn range_filter(
        &self,
        first: NaiveDate,
        last: NaiveDate,
        base: Option<&Document>,
    ) -> Document {
        let (start, end) = (self.bounds(first).0, self.bounds(last).1);
        let (start, end) = (start.with_timezone(&Utc), end.with_timezone(&Utc));
        let (lo, hi): (Bson, Bson) = match self.kind {
            PartitionKind::Date => (
                bson::DateTime::from_millis(start.timestamp_millis()).into(),
                bson::DateTime::from_millis(end.timestamp_millis()).into(),
            ),
            // Strings compare as strings on the server, not as instants: a
            // window of whole dates, a day wider on each side than any
            // offset reaches, holds every string of these days whatever
            // its form. The reader keeps those whose instant is in them
            // ([`Self::selects`]).
            PartitionKind::IsoString => {
                let date = |t: DateTime<Utc>| t.date_naive();
                let lo = date(start) - chrono::Days::new(1);
                let hi = date(end - chrono::Duration::milliseconds(1)) + chrono::Days::new(2);
                (
                    lo.format("%Y-%m-%d").to_string().into(),
                    hi.format("%Y-%m-%d").to_string().into(),
                )
            }
            PartitionKind::EpochSeconds => (start.timestamp().into(), end.timestamp().into()),
            PartitionKind::EpochMillis => (
                start.timestamp_millis().into(),
                end.timestamp_millis().into(),
            ),
            PartitionKind::ObjectId => (object_id_at(start).into(), object_id_at(end).into()),
        };
        let range = doc! { self.field.as_str(): { "$gte": lo, "$lt": hi } };
        match base {
            Some(b) if !b.is_empty() => doc! { "$and": [b.clone(), range] },
            _ => range,
        }
    }
}

impl PartitionPlan {
    /// The day `doc` belongs to: the one whose [`Self::filter`] selects it
    /// (base filter aside), and for `iso_string`, whose reader keeps it
    /// ([`Self::selects`]). None when the field is missing, not of the
    /// kind's type, or a string in no accepted form ([`iso_time`]), so
    /// that no day selects the document.
    pub fn day_of(&self, doc: &Document) -> Option<NaiveDate> {
        let mut parts = self.field.split('.');
        let mut value = doc.get(parts.next()?)?;
        for part in parts {
            value = value.as_document()?.get(part)?;
        }
        self.day_of_value(value)
    }

    /// Whether day `day`'s reader keeps `doc`, which its filter selected.
    /// Always for every kind but `iso_string`, whose filter selects a
    /// window of whole dates around the day: a string's instant decides.
    pub fn selects(&self, doc: &bson::RawDocument, day: NaiveDate) -> bool {
        if self.kind != PartitionKind::IsoString {
            return true;
        }
        match crate::extjson::lookup(doc, &self.field) {
            Some(bson::RawBsonRef::String(s)) => self.iso_day(s) == Some(day),
            _ => false,
        }
    }

    /// The day of an `iso_string` value: its instant's day in the
    /// partition timezone, or the date itself when it has no time.
    fn iso_day(&self, s: &str) -> Option<NaiveDate> {
        match iso_time(s)? {
            IsoTime::Date(d) => Some(d),
            IsoTime::Instant(at) => Some(at.with_timezone(&self.timezone).date_naive()),
        }
    }

    /// The day of the partition field's value, as [`Self::day_of`].
    pub fn day_of_value(&self, value: &Bson) -> Option<NaiveDate> {
        let at: DateTime<Utc> = match (self.kind, value) {
            (PartitionKind::Date, Bson::DateTime(d)) => {
                DateTime::from_timestamp_millis(d.timestamp_millis())?
            }
            (PartitionKind::IsoString, Bson::String(s)) => return self.iso_day(s),
            (PartitionKind::EpochSeconds, v) => {
                DateTime::from_timestamp_millis((number(v)? * 1000.0).floor() as i64)?
            }
            (PartitionKind::EpochMillis, v) => {
                DateTime::from_timestamp_millis(number(v)?.floor() as i64)?
            }
            (PartitionKind::ObjectId, Bson::ObjectId(o)) => {
                DateTime::from_timestamp(o.timestamp().timestamp_millis() / 1000, 0)?
            }
            _ => return None,
        };
        Some(at.with_timezone(&self.timezone).date_naive())
    }
}

/// What an `iso_string` value says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsoTime {
    /// A time: in UTC when the string has no offset.
    Instant(DateTime<Utc>),
    /// A date alone: that day, in the partition timezone.
    Date(NaiveDate),
}

/// An `iso_string` value read, in one of the forms a day accepts:
/// - a date alone, `2020-06-01`;
/// - a date and a time, separated by `T` or a space, with minutes or
///   seconds, and any fraction of a second: `2020-06-01T12:30`,
///   `2020-06-01 12:30:05.123456`;
/// - either of the latter with a zone: `Z`, or an offset `+02:00`,
///   `+0200` or `+02`. Without one, the time is UTC.
///
/// None for anything else: such a document is in no day, and `etl
/// verify` counts it (`unparseable_string`).
pub fn iso_time(s: &str) -> Option<IsoTime> {
    use chrono::NaiveDateTime;
    const LOCAL: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    if s.len() == 10 {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(IsoTime::Date);
    }
    let utc = s.strip_suffix('Z').or_else(|| s.strip_suffix('z'));
    let naive = utc.unwrap_or(s);
    if let Some(t) = LOCAL
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(naive, f).ok())
    {
        return Some(IsoTime::Instant(t.and_utc()));
    }
    if utc.is_some() {
        return None;
    }
    LOCAL.iter().find_map(|f| {
        DateTime::parse_from_str(s, &format!("{f}%#z"))
            .ok()
            .map(|t| IsoTime::Instant(t.with_timezone(&Utc)))
    })
}

/// A number of any BSON numeric type, as the server compares them.
fn number(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) if n.is_finite() => Some(*n),
        _ => None,
    }
}

/// The smallest ObjectId created at `t`: its 4-byte seconds, then zeros.
fn object_id_at(t: DateTime<Utc>) -> bson::oid::ObjectId {
    let mut bytes = [0u8; 12];
    let secs = u32::try_from(t.timestamp()).unwrap_or(if t.timestamp() < 0 { 0 } else { u32::MAX });
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bson::oid::ObjectId::from_bytes(bytes)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: PartitionKind, tz: &str) -> PartitionPlan {
        PartitionPlan {
            field: "ts".into(),
            kind,
            timezone: tz.parse().unwrap(),
            start_date: "2020-06-01".parse().unwrap(),
            lookback: 0,
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn bounds(kind: PartitionKind, tz: &str, d: &str) -> (Bson, Bson) {
        let f = plan(kind, tz).filter(day(d), None);
        let r = f.get_document("ts").unwrap();
        (
            r.get("$gte").unwrap().clone(),
            r.get("$lt").unwrap().clone(),
        )
    }

    #[test]
    fn each_kind_gets_bounds_of_its_own_type() {
        let midnight = 1_590_969_600i64; // 2020-06-01T00:00:00Z
        assert_eq!(
            bounds(PartitionKind::Date, "UTC", "2020-06-01"),
            (
                Bson::DateTime(bson::DateTime::from_millis(midnight * 1000)),
                Bson::DateTime(bson::DateTime::from_millis((midnight + 86_400) * 1000))
            )
        );
        assert_eq!(
            bounds(PartitionKind::EpochSeconds, "UTC", "2020-06-01"),
            (Bson::Int64(midnight), Bson::Int64(midnight + 86_400))
        );
        assert_eq!(
            bounds(PartitionKind::EpochMillis, "UTC", "2020-06-01"),
            (
                Bson::Int64(midnight * 1000),
                Bson::Int64((midnight + 86_400) * 1000)
            )
        );
        // A window of whole dates, a day wider on each side.
        assert_eq!(
            bounds(PartitionKind::IsoString, "UTC", "2020-06-01"),
            (
                Bson::String("2020-05-31".into()),
                Bson::String("2020-06-03".into())
            )
        );
        let (lo, hi) = bounds(PartitionKind::ObjectId, "UTC", "2020-06-01");
        assert_eq!(
            lo.as_object_id().unwrap().to_hex(),
            "5ed445000000000000000000"
        );
        assert_eq!(
            hi.as_object_id().unwrap().timestamp().timestamp_millis(),
            (midnight + 86_400) * 1000
        );
    }

    /// Whether day `d`'s filter and reader select `value`, in UTC or `tz`.
    fn iso_selects(tz: &str, d: &str, value: &str) -> bool {
        let p = plan(PartitionKind::IsoString, tz);
        let (lo, hi) = bounds(PartitionKind::IsoString, tz, d);
        let in_window = order(&lo, &value.into()) && !order(&hi, &value.into());
        let raw = bson::rawdoc! { "ts": value };
        let kept = p.selects(&raw, day(d));
        assert!(
            !kept || in_window,
            "{value} kept but outside the window of {d}"
        );
        kept
    }

    #[test]
    fn iso_days_are_the_instants_days_in_every_accepted_form() {
        for inside in [
            "2020-06-01",
            "2020-06-01T00:00:00Z",
            "2020-06-01T00:00:00.000Z",
            "2020-06-01T23:59:59.999Z",
            "2020-06-01T23:59:59.999999999",
            "2020-06-01 12:00",
            "2020-06-01 12:00:05",
            "2020-06-01T12:00z",
            // 23:30 at +02:00 is 21:30 UTC; 22:00 on 05-31 at -04 is 02:00.
            "2020-06-01T23:30:00+02:00",
            "2020-05-31T22:00:00-04",
            "2020-06-02T01:00:00+0200",
            "2020-06-02 05:00:00.5+14:00",
        ] {
            assert!(iso_selects("UTC", "2020-06-01", inside), "{inside}");
        }
        for outside in [
            "2020-05-31T23:59:59.999Z",
            "2020-06-02T00:00:00Z",
            "2020-06-02",
            "2020-06-01T23:30:00-02:00",
            "2020-06-01T00:30:00+01:00",
            // Not accepted: no day ever selects them.
            "2020-06-01T12",
            "2020-06-01T25:00:00Z",
            "2020-06-01 12:00 UTC",
            "2020-6-1",
            "20200601",
            "June 1, 2020",
            "2020-06-01Z",
        ] {
            assert!(!iso_selects("UTC", "2020-06-01", outside), "{outside}");
        }
        // In Paris (UTC+2), 2020-06-01 starts at 05-31 22:00 UTC; a date
        // alone is that day there.
        assert!(iso_selects(
            "Europe/Paris",
            "2020-06-01",
            "2020-05-31T22:00:00Z"
        ));
        assert!(iso_selects("Europe/Paris", "2020-06-01", "2020-06-01"));
        assert!(!iso_selects(
            "Europe/Paris",
            "2020-06-01",
            "2020-06-01T22:00:00Z"
        ));
    }

    #[test]
    fn iso_time_reads_offsets_and_leaves_strings_without_a_zone_in_utc() {
        let at = |s: &str| match iso_time(s) {
            Some(IsoTime::Instant(t)) => t.to_rfc3339(),
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(at("2020-06-01T12:00:00+02:00"), "2020-06-01T10:00:00+00:00");
        assert_eq!(
            at("2020-06-01 12:00:00.25-0130"),
            "2020-06-01T13:30:00.250+00:00"
        );
        assert_eq!(at("2020-06-01T12:00"), "2020-06-01T12:00:00+00:00");
        assert_eq!(iso_time("2020-02-30"), None);
        assert_eq!(
            iso_time("2020-06-01"),
            Some(IsoTime::Date(day("2020-06-01")))
        );
    }

    #[test]
    fn days_follow_the_timezone_including_dst_changes() {
        // Paris is UTC+2 in summer: its 2020-06-01 starts at 05-31 22:00 UTC.
        let (lo, _) = bounds(PartitionKind::EpochSeconds, "Europe/Paris", "2020-06-01");
        assert_eq!(lo, Bson::Int64(1_590_969_600 - 7_200));
        // The spring-forward day is 23 hours long, the fall-back day 25.
        let p = plan(PartitionKind::Date, "Europe/Paris");
        let (s, e) = p.bounds(day("2020-03-29"));
        assert_eq!((e - s).num_hours(), 23);
        let (s, e) = p.bounds(day("2020-10-25"));
        assert_eq!((e - s).num_hours(), 25);
    }

    #[test]
    fn a_base_filter_is_combined_with_and() {
        let f = plan(PartitionKind::Date, "UTC")
            .filter(day("2020-06-01"), Some(&doc! {"status": {"$ne": "test"}}));
        let parts = f.get_array("$and").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].as_document().unwrap(),
            &doc! {"status": {"$ne": "test"}}
        );
    }

    #[test]
    fn day_of_is_the_day_whose_filter_selects_the_document() {
        let cases: [(PartitionKind, Bson); 5] = [
            (
                PartitionKind::Date,
                bson::DateTime::parse_rfc3339_str("2020-06-02T21:30:00Z")
                    .unwrap()
                    .into(),
            ),
            (PartitionKind::IsoString, "2020-06-02T21:30:00.250Z".into()),
            (PartitionKind::EpochSeconds, Bson::Int64(1_591_133_400)),
            (
                PartitionKind::EpochMillis,
                Bson::Double(1_591_133_400_000.0),
            ),
            (
                PartitionKind::ObjectId,
                bson::oid::ObjectId::from_bytes([0x5e, 0xd6, 0xc4, 0xd8, 1, 2, 3, 4, 5, 6, 7, 8])
                    .into(),
            ),
        ];
        for (kind, value) in cases {
            let d = doc! { "meta": { "ts": value.clone() } };
            let mut p = plan(kind, "UTC");
            p.field = "meta.ts".into();
            assert_eq!(p.day_of(&d), Some(day("2020-06-02")), "{kind:?} {value}");
            // 21:30 UTC is already the next day in Tokyo.
            p.timezone = "Asia/Tokyo".parse().unwrap();
            assert_eq!(p.day_of(&d), Some(day("2020-06-03")), "{kind:?} in Tokyo");
            // And the filter of that day selects it, in the server's terms.
            let f = p.filter(day("2020-06-03"), None);
            let r = f.get_document("meta.ts").unwrap();
            let (lo, hi) = (r.get("$gte").unwrap(), r.get("$lt").unwrap());
            assert!(
                order(lo, &value) && !order(hi, &value),
                "{kind:?}: {lo} <= {value} < {hi}"
            );
        }
        let p = plan(PartitionKind::Date, "UTC");
        assert_eq!(p.day_of(&doc! { "ts": "2020-06-02" }), None);
        assert_eq!(p.day_of(&doc! { "other": 1 }), None);
    }

    /// `a <= b` for the values of one kind.
    fn order(a: &Bson, b: &Bson) -> bool {
        match (a, b) {
            (Bson::DateTime(a), Bson::DateTime(b)) => a <= b,
            (Bson::String(a), Bson::String(b)) => a <= b,
            (Bson::Int64(a), Bson::Int64(b)) => a <= b,
            (Bson::Int64(a), Bson::Double(b)) => (*a as f64) <= *b,
            (Bson::ObjectId(a), Bson::ObjectId(b)) => a.bytes() <= b.bytes(),
            _ => panic!("{a} and {b} differ in type"),
        }
    }
}
