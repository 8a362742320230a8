//! `etl verify`'s checks: what the source holds now against what the
//! ledger recorded, and the documents that no day can select.
//!
//! A day is counted on the server with the engine's own
//! [`Source::count`] over the day's filter, and compared with the raw
//! archive's lines of its `done` record: every document a run reads is a
//! line there, then loaded or rejected. A document in no day (its
//! partition field missing, null, of another type than the partition kind
//! stores, a string that does not parse, or dated before `start_date`) is
//! read by no run at all, so no ledger record can show it missing: it is
//! counted here on its own, by reason.
//!
//! The last result of each pipeline is kept in the state store beside the
//! ledger (`verify/<pipeline>.json`) for `etl status` and `etl report`. A
//! result that does not parse is an error naming it
//! ([`LakeError::Corrupt`]), never "not verified".

use std::collections::{BTreeMap, VecDeque};

use bson::{doc, Bson, Document};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::ledger::{PartitionRecord, Status};
use crate::plan::{PartitionPlan, PartitionTarget};
use crate::sink::lake::{LakeError, Store};
use crate::source::{MongoSource, ReadOptions, Source, SourceError};
use crate::spec::PartitionKind;

/// `_id`s kept per reason, to show where to look.
pub const SAMPLES: usize = 5;

/// Day counts on the server at once: enough to overlap the round trips,
/// few enough not to load a production server.
pub const CONCURRENCY: usize = 4;

/// Why no day selects a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The partition field is missing.
    Missing,
    /// The partition field is null.
    Null,
    /// The partition field is of another BSON type than the kind stores.
    WrongType,
    /// An `iso_string` field holds a string that does not parse.
    UnparseableString,
    /// Dated before the spec's `start_date`: no catch-up reads it.
    BeforeStartDate,
}

impl Reason {
    /// Every reason, in the order they print.
    pub const ALL: [Reason; 5] = [
        Reason::Missing,
        Reason::Null,
        Reason::WrongType,
        Reason::UnparseableString,
        Reason::BeforeStartDate,
    ];

    /// The reason for people: `without `created_at``.
    pub fn describe(self, p: &PartitionPlan) -> String {
        let f = &p.field;
        match self {
            Reason::Missing => format!("without `{f}`"),
            Reason::Null => format!("with `{f}` null"),
            Reason::WrongType => format!(
                "with `{f}` of another BSON type than {}",
                bson_types(p.kind)
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Reason::UnparseableString => format!("with `{f}` a string that does not parse"),
            Reason::BeforeStartDate => format!("dated before start_date {}", p.start_date),
        }
    }
}

/// The BSON types (`$type` aliases) a partition kind selects: a day's
/// filter compares the field with bounds of these types only.
pub fn bson_types(kind: PartitionKind) -> &'static [&'static str] {
    match kind {
        PartitionKind::Date => &["date"],
        PartitionKind::IsoString => &["string"],
        // One alias each: FerretDB takes neither `number` lists nor
        // `decimal`, and `PartitionPlan::day_of` reads these three.
        PartitionKind::EpochSeconds | PartitionKind::EpochMillis => &["double", "int", "long"],
        PartitionKind::ObjectId => &["objectId"],
    }
}

/// How a day's source count compares with its ledger record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The count equals the raw lines of the day's `done` record, or the
    /// day has no document and no `done` record.
    Ok,
    /// The day is done, with another count of documents than it has now.
    Differs,
    /// The day has documents and no `done` record.
    NotLoaded,
}

/// One day: the source's count now, what was loaded, the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCheck {
    /// The day.
    pub day: NaiveDate,
    /// Documents the day's filter selects now.
    pub source_now: u64,
    /// The raw archive's lines of the day's `done` record; None without one.
    pub loaded: Option<u64>,
    /// `ok`, `differs` or `not_loaded`.
    pub status: Verdict,
}

impl DayCheck {
    /// `day` with `source_now` documents, against its ledger record.
    pub fn judge(day: NaiveDate, source_now: u64, record: Option<&PartitionRecord>) -> Self {
        // Records older than `raw_lines` have the documents read as their
        // source count.
        let loaded = record
            .filter(|r| r.status == Status::Done)
            .and_then(|r| r.raw_lines.or(r.source_count));
        let status = match loaded {
            Some(n) if n == source_now => Verdict::Ok,
            Some(_) => Verdict::Differs,
            None if source_now == 0 => Verdict::Ok,
            None => Verdict::NotLoaded,
        };
        Self {
            day,
            source_now,
            loaded,
            status,
        }
    }

    /// Documents the day gained (positive) or lost since it was loaded.
    pub fn difference(&self) -> i64 {
        self.source_now as i64 - self.loaded.unwrap_or(0) as i64
    }
}

/// The documents no day selects, and those a later run takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unpartitioned {
    /// Documents in no day, by reason; every reason is present.
    pub by_reason: BTreeMap<Reason, u64>,
    /// Up to [`SAMPLES`] `_id`s per reason with documents, newest first.
    pub samples: BTreeMap<Reason, Vec<Bson>>,
    /// Documents dated after yesterday: not missing, a later run takes them.
    pub after_cutoff: u64,
}

impl Unpartitioned {
    /// Documents in no day.
    pub fn total(&self) -> u64 {
        self.by_reason.values().sum()
    }
}

/// The server queries behind [`unpartitioned`], each within the base filter.
#[derive(Debug, Clone, PartialEq)]
pub struct OrphanQueries {
    /// Reasons counted on the server, with the filter that selects them.
    pub counted: Vec<(Reason, Document)>,
    /// Right-typed documents dated after yesterday (not for `iso_string`).
    pub after_cutoff: Option<Document>,
    /// `iso_string`: the strings, scanned and parsed here with
    /// [`PartitionPlan::day_of`], the one place that decides their day.
    pub strings: Option<Document>,
}

/// The queries that find the documents no day of `p` selects, with
/// `yesterday` the last day a run takes. Pure.
pub fn orphan_queries(
    p: &PartitionPlan,
    base: Option<&Document>,
    yesterday: NaiveDate,
) -> OrphanQueries {
    let f = p.field.as_str();
    let within = |q: Document| match base {
        Some(b) if !b.is_empty() => doc! { "$and": [b.clone(), q] },
        _ => q,
    };
    let types = bson_types(p.kind);
    let of_type = |t: &str| doc! { f: { "$type": t } };
    let right = match types {
        [t] => of_type(t),
        many => doc! { "$or": many.iter().map(|t| Bson::Document(of_type(t))).collect::<Vec<_>>() },
    };
    let missing = doc! { f: { "$exists": false } };
    let null = doc! { f: { "$type": "null" } };
    let mut not_wrong = vec![
        Bson::Document(missing.clone()),
        Bson::Document(null.clone()),
    ];
    not_wrong.extend(types.iter().map(|t| Bson::Document(of_type(t))));
    let mut counted = vec![
        (Reason::Missing, within(missing)),
        (Reason::Null, within(null)),
        (Reason::WrongType, within(doc! { "$nor": not_wrong })),
    ];
    if p.kind == PartitionKind::IsoString {
        return OrphanQueries {
            counted,
            after_cutoff: None,
            strings: Some(within(right)),
        };
    }
    let bound = |day: NaiveDate, op: &str| -> Bson {
        p.range_filter(day, day, None)
            .get_document(f)
            .ok()
            .and_then(|r| r.get(op).cloned())
            .expect("a range filter has both bounds")
    };
    let first = bound(p.start_date, "$gte");
    // A pipeline whose start_date is still to come: everything dated from
    // it on is after the cut-off.
    let cutoff = if yesterday < p.start_date {
        first.clone()
    } else {
        bound(yesterday, "$lt")
    };
    counted.push((
        Reason::BeforeStartDate,
        within(doc! { "$and": [right.clone(), { f: { "$lt": first } }] }),
    ));
    OrphanQueries {
        counted,
        after_cutoff: Some(within(doc! { "$and": [right, { f: { "$gte": cutoff } }] })),
        strings: None,
    }
}

/// Where a document of the right type falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A day a run takes.
    Day(NaiveDate),
    /// No day.
    Orphan(Reason),
    /// After yesterday: a later run takes it.
    AfterCutoff,
}

/// `doc`'s place, by [`PartitionPlan::day_of`]: for `iso_string` fields,
/// whose parsing only `day_of` decides.
pub fn place(p: &PartitionPlan, doc: &Document, yesterday: NaiveDate) -> Placement {
    match p.day_of(doc) {
        None => Placement::Orphan(Reason::UnparseableString),
        Some(d) if d < p.start_date => Placement::Orphan(Reason::BeforeStartDate),
        Some(d) if d > yesterday => Placement::AfterCutoff,
        Some(d) => Placement::Day(d),
    }
}

/// Counts each target's documents with the source's own count,
/// [`CONCURRENCY`] at once; `counted` is told how many are done.
pub async fn count_days(
    source: &dyn Source,
    targets: &[PartitionTarget],
    mut counted: impl FnMut(usize),
) -> Result<Vec<(NaiveDate, u64)>, SourceError> {
    let counts = targets.iter().map(|t| {
        let (day, count) = (t.day, source.count(t));
        async move { count.await.map(|n| (day, n)) }
    });
    let mut counts = futures::stream::iter(counts).buffered(CONCURRENCY);
    let mut out = Vec::with_capacity(targets.len());
    while let Some(n) = counts.next().await {
        out.push(n?);
        counted(out.len());
    }
    Ok(out)
}

/// The documents of `source` within `base` that no day of `p` selects,
/// `yesterday` being the last day a run takes.
pub async fn unpartitioned(
    source: &MongoSource,
    p: &PartitionPlan,
    base: Option<&Document>,
    yesterday: NaiveDate,
    batch_size: u32,
) -> Result<Unpartitioned, SourceError> {
    let q = orphan_queries(p, base, yesterday);
    let mut out = Unpartitioned {
        by_reason: Reason::ALL.iter().map(|r| (*r, 0)).collect(),
        ..Default::default()
    };
    for (reason, filter) in q.counted {
        let n = source.count(filter.clone()).await?;
        out.by_reason.insert(reason, n);
        if n > 0 {
            let newest = source
                .newest(filter, Some(doc! { "_id": 1 }), SAMPLES as i64)
                .await?;
            out.samples.insert(
                reason,
                newest
                    .into_iter()
                    .filter_map(|mut d| d.remove("_id"))
                    .collect(),
            );
        }
    }
    if let Some(filter) = q.after_cutoff {
        out.after_cutoff = source.count(filter).await?;
    }
    if let Some(filter) = q.strings {
        let read = ReadOptions {
            batch_size: batch_size.max(1),
            max_time: None,
            projection: Some(doc! { "_id": 1, p.field.as_str(): 1 }),
        };
        let mut samples: BTreeMap<Reason, VecDeque<Bson>> = BTreeMap::new();
        let mut cursor = source.find(filter, &read).await?;
        while cursor.advance().await? {
            let raw = cursor.current();
            // A document the driver cannot read has no day either.
            let placed = Document::try_from(raw)
                .map(|d| place(p, &d, yesterday))
                .unwrap_or(Placement::Orphan(Reason::UnparseableString));
            match placed {
                Placement::Day(_) => {}
                Placement::AfterCutoff => out.after_cutoff += 1,
                Placement::Orphan(reason) => {
                    *out.by_reason.entry(reason).or_default() += 1;
                    let kept = samples.entry(reason).or_default();
                    if let Ok(Some(id)) = raw.get("_id") {
                        kept.push_back(Bson::try_from(id).unwrap_or(Bson::Null));
                        if kept.len() > SAMPLES {
                            kept.pop_front();
                        }
                    }
                }
            }
        }
        // The scan is in `_id` order: the newest first, as the counted ones.
        for (reason, kept) in samples {
            out.samples
                .entry(reason)
                .or_default()
                .extend(kept.into_iter().rev());
        }
    }
    Ok(out)
}

/// The last `etl verify` of a pipeline, as the state store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyRecord {
    /// Pipeline name.
    pub pipeline: String,
    /// When it ran, by the command's clock.
    pub verified_at: DateTime<Utc>,
    /// "Today" when it ran, in the pipeline's timezone: the day after the
    /// last one it could count.
    pub ran_on: NaiveDate,
    /// The first and the last day counted.
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// Days counted.
    pub days: usize,
    /// Documents in no day.
    pub unpartitioned: u64,
    /// Documents in no day, by reason.
    pub unpartitioned_by_reason: BTreeMap<Reason, u64>,
    /// Documents dated after the cut-off, which a later run takes.
    pub after_cutoff: u64,
    /// The days whose count differs from what was loaded, or that have
    /// documents and were never loaded.
    pub differing: Vec<DayCheck>,
    /// Whether `--mark` marked the differing days dirty.
    pub marked: bool,
}

impl VerifyRecord {
    /// Whether anything is unaccounted for.
    pub fn unaccounted(&self) -> bool {
        self.unpartitioned > 0 || !self.differing.is_empty()
    }

    /// One line for `etl status`: `verified 2026-11-23 (2026-11-01 to
    /// 2026-11-22): 0 unaccounted`.
    pub fn summary(&self) -> String {
        let mut what = Vec::new();
        if self.unpartitioned > 0 {
            what.push(format!(
                "{} document{} in no day",
                self.unpartitioned,
                plural(self.unpartitioned)
            ));
        }
        let n = self.differing.len() as u64;
        if n > 0 {
            what.push(format!(
                "{n} day{} differ{}{}",
                plural(n),
                if n == 1 { "s" } else { "" },
                if self.marked { " (marked dirty)" } else { "" }
            ));
        }
        if what.is_empty() {
            what.push("0 unaccounted".to_owned());
        }
        format!(
            "verified {} ({} to {}): {}",
            self.ran_on,
            self.start,
            self.end,
            what.join(", ")
        )
    }
}

/// `s` unless `n` is 1.
pub fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The last verify of each pipeline, in the project's state store.
#[derive(Debug, Clone)]
pub struct Verifications {
    store: Store,
}

impl Verifications {
    /// Results kept in `store` (the project's state store).
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn key(pipeline: &str) -> String {
        format!("verify/{pipeline}.json")
    }

    /// The last result of `pipeline`, if it was ever verified.
    pub async fn get(&self, pipeline: &str) -> Result<Option<VerifyRecord>, LakeError> {
        self.store
            .get_json(&Self::key(pipeline), |e| {
                (
                    format!("the last `etl verify` of `{pipeline}` does not parse: {e}"),
                    format!(
                        "delete it, or run `etl verify` of `{pipeline}` again, which replaces it"
                    ),
                )
            })
            .await
    }

    /// Keeps `record` as its pipeline's last result.
    pub async fn put(&self, record: &VerifyRecord) -> Result<(), LakeError> {
        let bytes = serde_json::to_vec_pretty(record).expect("a record serializes");
        self.store.put(&Self::key(&record.pipeline), bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: PartitionKind) -> PartitionPlan {
        PartitionPlan {
            field: "ts".into(),
            kind,
            timezone: "UTC".parse().unwrap(),
            start_date: day("2026-11-01"),
            lookback: 0,
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// A record as the ledger stores it (read back, so that fields added
    /// to records later take their defaults).
    fn record(status: Status, raw_lines: Option<u64>) -> PartitionRecord {
        serde_json::from_value(serde_json::json!({
            "pipeline": "events",
            "day": "2026-11-05",
            "status": status,
            "spec_hash": "h",
            "engine_version": "0",
            "source_count": 9,
            "raw_lines": raw_lines,
            "raw_bytes": null,
            "raw_sha256": null,
            "warehouse_rows": null,
            "lake_object": "",
            "warehouse_target": "",
            "started_at": "2026-11-23T00:00:00Z",
            "finished_at": "2026-11-23T00:00:00Z",
            "attempts": 1,
        }))
        .unwrap()
    }

    #[test]
    fn a_day_is_judged_by_the_raw_lines_of_its_done_record() {
        let d = day("2026-11-05");
        let done = record(Status::Done, Some(3));
        assert_eq!(DayCheck::judge(d, 3, Some(&done)).status, Verdict::Ok);
        let more = DayCheck::judge(d, 4, Some(&done));
        assert_eq!(
            (more.status, more.loaded, more.difference()),
            (Verdict::Differs, Some(3), 1)
        );
        // Fewer documents now (deleted since) differ too.
        assert_eq!(DayCheck::judge(d, 2, Some(&done)).status, Verdict::Differs);
        // A failed day is not loaded, whatever it counted.
        let failed = record(Status::Failed, Some(3));
        let f = DayCheck::judge(d, 3, Some(&failed));
        assert_eq!((f.status, f.loaded), (Verdict::NotLoaded, None));
        assert_eq!(DayCheck::judge(d, 1, None).status, Verdict::NotLoaded);
        // Nothing to load and nothing loaded: accounted for.
        assert_eq!(DayCheck::judge(d, 0, None).status, Verdict::Ok);
        assert_eq!(DayCheck::judge(d, 0, Some(&failed)).status, Verdict::Ok);
    }

    #[test]
    fn orphans_of_a_date_field_are_counted_by_type_and_bounds_within_the_base_filter() {
        let p = plan(PartitionKind::Date);
        let base = doc! { "status": { "$ne": "test" } };
        let q = orphan_queries(&p, Some(&base), day("2026-11-22"));
        let by: BTreeMap<Reason, Document> = q.counted.iter().cloned().collect();
        let within = |d: Document| doc! { "$and": [base.clone(), d] };
        assert_eq!(
            by[&Reason::Missing],
            within(doc! { "ts": { "$exists": false } })
        );
        assert_eq!(
            by[&Reason::Null],
            within(doc! { "ts": { "$type": "null" } })
        );
        assert_eq!(
            by[&Reason::WrongType],
            within(doc! { "$nor": [
                { "ts": { "$exists": false } },
                { "ts": { "$type": "null" } },
                { "ts": { "$type": "date" } },
            ] })
        );
        let start = bson::DateTime::parse_rfc3339_str("2026-11-01T00:00:00Z").unwrap();
        let cutoff = bson::DateTime::parse_rfc3339_str("2026-11-23T00:00:00Z").unwrap();
        assert_eq!(
            by[&Reason::BeforeStartDate],
            within(doc! { "$and": [{ "ts": { "$type": "date" } }, { "ts": { "$lt": start } }] })
        );
        assert_eq!(
            q.after_cutoff,
            Some(within(
                doc! { "$and": [{ "ts": { "$type": "date" } }, { "ts": { "$gte": cutoff } }] }
            ))
        );
        assert_eq!(q.strings, None);
        assert!(!by.contains_key(&Reason::UnparseableString));
    }

    #[test]
    fn epoch_numbers_are_any_of_three_types_and_iso_strings_are_scanned() {
        let p = plan(PartitionKind::EpochSeconds);
        let q = orphan_queries(&p, None, day("2026-11-22"));
        let by: BTreeMap<Reason, Document> = q.counted.iter().cloned().collect();
        let nor = by[&Reason::WrongType].get_array("$nor").unwrap();
        assert_eq!(nor.len(), 5);
        let before = by[&Reason::BeforeStartDate].get_array("$and").unwrap();
        assert_eq!(
            before[0]
                .as_document()
                .unwrap()
                .get_array("$or")
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            before[1].as_document().unwrap(),
            &doc! { "ts": { "$lt": 1_793_491_200i64 } }
        );

        let p = plan(PartitionKind::IsoString);
        let q = orphan_queries(&p, None, day("2026-11-22"));
        assert_eq!(q.strings, Some(doc! { "ts": { "$type": "string" } }));
        assert_eq!(q.after_cutoff, None);
        assert_eq!(
            q.counted.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            [Reason::Missing, Reason::Null, Reason::WrongType]
        );
    }

    #[test]
    fn a_start_date_still_to_come_puts_every_dated_document_after_the_cutoff() {
        let p = plan(PartitionKind::EpochMillis);
        let q = orphan_queries(&p, None, day("2026-10-30"));
        let after = q.after_cutoff.unwrap();
        let parts = after.get_array("$and").unwrap();
        assert_eq!(
            parts[1].as_document().unwrap(),
            &doc! { "ts": { "$gte": 1_793_491_200_000i64 } }
        );
    }

    #[test]
    fn iso_strings_are_placed_by_day_of() {
        let p = plan(PartitionKind::IsoString);
        let y = day("2026-11-22");
        assert_eq!(
            place(&p, &doc! { "ts": "2026-11-05T10:00:00Z" }, y),
            Placement::Day(day("2026-11-05"))
        );
        assert_eq!(
            place(&p, &doc! { "ts": "not a date" }, y),
            Placement::Orphan(Reason::UnparseableString)
        );
        assert_eq!(
            place(&p, &doc! { "ts": "2026-10-31T23:59:59Z" }, y),
            Placement::Orphan(Reason::BeforeStartDate)
        );
        assert_eq!(
            place(&p, &doc! { "ts": "2026-11-23T00:00:00Z" }, y),
            Placement::AfterCutoff
        );
    }

    #[test]
    fn the_status_line_says_what_is_unaccounted() {
        let mut r = VerifyRecord {
            pipeline: "events".into(),
            verified_at: "2026-11-23T08:00:00Z".parse().unwrap(),
            ran_on: day("2026-11-23"),
            start: day("2026-11-01"),
            end: day("2026-11-22"),
            days: 22,
            unpartitioned: 0,
            unpartitioned_by_reason: Reason::ALL.iter().map(|r| (*r, 0)).collect(),
            after_cutoff: 1,
            differing: vec![],
            marked: false,
        };
        assert_eq!(
            r.summary(),
            "verified 2026-11-23 (2026-11-01 to 2026-11-22): 0 unaccounted"
        );
        assert!(!r.unaccounted());
        r.unpartitioned = 12;
        r.differing = vec![
            DayCheck::judge(day("2026-11-05"), 4, None),
            DayCheck::judge(day("2026-11-06"), 4, None),
        ];
        assert_eq!(
            r.summary(),
            "verified 2026-11-23 (2026-11-01 to 2026-11-22): 12 documents in no day, 2 days differ"
        );
        r.differing.pop();
        r.unpartitioned = 1;
        r.marked = true;
        assert!(r
            .summary()
            .ends_with(": 1 document in no day, 1 day differs (marked dirty)"));
        let back: VerifyRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    /// Issue 29: a result that does not parse is an error naming it, not
    /// "never verified".
    #[tokio::test]
    async fn a_corrupt_result_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let v = Verifications::new(Store::open(url.as_str(), &Default::default()).unwrap());
        assert_eq!(v.get("events").await.unwrap(), None);
        let file = dir.path().join("verify/events.json");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"{\"pipeline\": ").unwrap();
        let e = v.get("events").await.unwrap_err();
        let shown = e.to_string();
        assert!(matches!(e, LakeError::Corrupt { .. }), "{shown}");
        assert!(
            shown.contains(&format!("{}` is corrupt", file.display())),
            "{shown}"
        );
    }
}
