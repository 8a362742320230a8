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
        let (start, end) = self.bounds(day);
        let (start, end) = (start.with_timezone(&Utc), end.with_timezone(&Utc));
        let (lo, hi): (Bson, Bson) = match self.kind {
            PartitionKind::Date => (
                bson::DateTime::from_millis(start.timestamp_millis()).into(),
                bson::DateTime::from_millis(end.timestamp_millis()).into(),
            ),
            // Bounds without a zone suffix compare correctly with any
            // fraction and with `Z`: `...T00:00:00` <= `...T00:00:00.000Z`.
            PartitionKind::IsoString => (
                start.format("%Y-%m-%dT%H:%M:%S").to_string().into(),
                end.format("%Y-%m-%dT%H:%M:%S").to_string().into(),
            ),
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
        assert_eq!(
            bounds(PartitionKind::IsoString, "UTC", "2020-06-01"),
            (
                Bson::String("2020-06-01T00:00:00".into()),
                Bson::String("2020-06-02T00:00:00".into())
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

    #[test]
    fn iso_bounds_include_fractions_and_zone_suffixes() {
        let (lo, hi) = bounds(PartitionKind::IsoString, "UTC", "2020-06-01");
        let (lo, hi) = (lo.as_str().unwrap(), hi.as_str().unwrap());
        for inside in [
            "2020-06-01T00:00:00Z",
            "2020-06-01T00:00:00.000Z",
            "2020-06-01T23:59:59.999Z",
        ] {
            assert!(lo <= inside && inside < hi, "{inside}");
        }
        for outside in [
            "2020-05-31T23:59:59.999Z",
            "2020-06-02T00:00:00Z",
            "2020-06-02T00:00:00.000Z",
        ] {
            assert!(!(lo <= outside && outside < hi), "{outside}");
        }
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
}
