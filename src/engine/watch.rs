//! `etl watch`: a collection's change stream, turned into dirty days.
//!
//! The daily partition stays the unit of work. The watcher only finds
//! which days a change touched and marks them in the state store
//! ([`super::dirty`]); `etl run` redoes them whole, under the same leases
//! as any run. Per change:
//! - an insert, update or replace: the day of the document as it is now
//!   (`fullDocument: updateLookup`);
//! - the day a document left, when an update may have moved its partition
//!   field, and the day of a delete: from the pre-image where the server
//!   keeps one (`changes.pre_images`), from `_id` for `object_id`
//!   partitions, else looked up in the warehouse by `_id`;
//! - a change whose day none of these tells follows
//!   `changes.unknown_day`: recorded for `etl status`, or the recent days
//!   marked.
//!
//! Changes are handled in batches (at most [`WatchOptions::batch_max`]
//! changes, or [`WatchOptions::batch_wait`] after the first): the marks
//! of a batch are written, then the resume token after it is saved, so a
//! watcher killed at any point resumes from the last saved token, repeats
//! at most one batch, and loses no mark.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bson::{Bson, Document};
use chrono::{DateTime, NaiveDate, Utc};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};

use super::dirty::{Mark, UnknownChanges, WatchState};
use super::{Engine, PartitionError, PipelineRuntime, Shutdown};
use crate::plan::{PartitionPlan, PipelinePlan};
use crate::sink::lake::LakeError;
use crate::source::WatchFrom;
use crate::spec::{PartitionKind, UnknownDay};

/// How a watcher batches and polls.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Most changes in one batch.
    pub batch_max: usize,
    /// Longest the first change of a batch waits for its mark.
    pub batch_wait: Duration,
    /// Pause before asking a server that had no change again.
    pub poll: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            batch_max: 1000,
            batch_wait: Duration::from_secs(1),
            poll: Duration::from_millis(200),
        }
    }
}

/// What a watcher did until it stopped.
#[derive(Debug, Default, Clone)]
pub struct WatchReport {
    /// Pipeline.
    pub pipeline: String,
    /// Changes read.
    pub changes: u64,
    /// Days marked dirty, with the changes marked for each.
    pub marked: BTreeMap<NaiveDate, u64>,
    /// Changes of days before `start_date`, of today or later, or of
    /// documents no day selects: no day to redo.
    pub ignored: u64,
    /// Changes whose day could not be told.
    pub unknown: u64,
    /// Batches written.
    pub batches: u64,
}

/// What one change says about days.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Seen {
    /// Days it touched, with the kind of change.
    pub days: Vec<(NaiveDate, &'static str)>,
    /// A document whose day only the warehouse can tell: its `_id`, and
    /// the kind of change.
    pub lookup: Option<(Bson, &'static str)>,
    /// Why no day can be told, where no lookup can help either.
    pub unknown: Option<String>,
    /// A change that ends the stream (the collection dropped or renamed).
    pub end: Option<String>,
    /// A change of no document with a day (a document without a partition
    /// value, another namespace's event).
    pub ignored: bool,
}

/// Whether dotted path `a` and field `b` touch: equal, or one inside the
/// other.
fn touches(a: &str, b: &str) -> bool {
    a == b
        || a.strip_prefix(b).is_some_and(|r| r.starts_with('.'))
        || b.strip_prefix(a).is_some_and(|r| r.starts_with('.'))
}

/// Whether an update may have changed the partition field, by its
/// `updateDescription`; or, from servers that put the update itself in
/// `documentKey` (mongo-java-server: `{"$set": {...}}`), by the fields its
/// operators name. Unknown (a replacement, no description): true.
fn may_move(event: &ChangeStreamEvent<Document>, field: &str) -> bool {
    if let Some(u) = &event.update_description {
        return u.updated_fields.keys().any(|k| touches(k, field))
            || u.removed_fields.iter().any(|k| touches(k, field));
    }
    match &event.document_key {
        Some(key) if !key.is_empty() && key.keys().all(|k| k.starts_with('$')) => {
            key.values().any(|fields| match fields {
                Bson::Document(d) => d.keys().any(|k| touches(k, field)),
                _ => true,
            })
        }
        _ => true,
    }
}

/// The document's `_id`, from the change's key or its document.
fn id_of(event: &ChangeStreamEvent<Document>) -> Option<Bson> {
    event
        .document_key
        .as_ref()
        .and_then(|k| k.get("_id"))
        .or_else(|| event.full_document.as_ref().and_then(|d| d.get("_id")))
        .cloned()
}

/// The days one change touched, as far as the change itself tells.
pub(crate) fn classify(event: &ChangeStreamEvent<Document>, partition: &PartitionPlan) -> Seen {
    let mut seen = Seen::default();
    let by_id = partition.kind == PartitionKind::ObjectId && partition.field == "_id";
    let day_of_id = |id: &Bson| partition.day_of(&bson::doc! { "_id": id.clone() });
    let kind = match event.operation_type {
        OperationType::Insert => "insert",
        OperationType::Update => "update",
        OperationType::Replace => "replace",
        OperationType::Delete => "delete",
        OperationType::Drop | OperationType::Rename | OperationType::DropDatabase => {
            seen.end = Some(format!(
                "the collection was dropped or renamed ({:?})",
                event.operation_type
            ));
            return seen;
        }
        OperationType::Invalidate => {
            seen.end = Some("the server invalidated the change stream".to_owned());
            return seen;
        }
        _ => {
            seen.ignored = true;
            return seen;
        }
    };
    // The document as it is now.
    if kind != "delete" {
        if let Some(day) = event
            .full_document
            .as_ref()
            .and_then(|d| partition.day_of(d))
        {
            seen.days.push((day, kind));
        }
    }
    // The document as it was: the day it left, or the day it was deleted
    // from. An insert had no day before.
    if kind == "insert" || (kind == "update" && !by_id && !may_move(event, &partition.field)) {
        // Not moved: its day now is its day before.
    } else if let Some(day) = event
        .full_document_before_change
        .as_ref()
        .and_then(|d| partition.day_of(d))
    {
        push_once(
            &mut seen.days,
            day,
            if kind == "delete" { kind } else { "moved_from" },
        );
    } else {
        match id_of(event) {
            Some(id) if by_id => {
                if let Some(day) = day_of_id(&id) {
                    push_once(&mut seen.days, day, kind);
                }
            }
            Some(id) => seen.lookup = Some((id, kind)),
            None => {
                seen.unknown = Some(format!("a {kind} without a document key"));
            }
        }
    }
    seen.ignored = seen.days.is_empty() && seen.lookup.is_none() && seen.unknown.is_none();
    seen
}

fn push_once(days: &mut Vec<(NaiveDate, &'static str)>, day: NaiveDate, kind: &'static str) {
    if !days.iter().any(|(d, _)| *d == day) {
        days.push((day, kind));
    }
}

/// An `_id` as the flattener writes it in the `_id` column: ObjectIds in
/// hex, strings as they are, integers in decimal. None for other types,
/// which no lookup can find.
fn id_text(id: &Bson) -> Option<String> {
    match id {
        Bson::ObjectId(o) => Some(o.to_hex()),
        Bson::String(s) => Some(s.clone()),
        Bson::Int32(n) => Some(n.to_string()),
        Bson::Int64(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A resume token as canonical Extended JSON, and back.
fn token_json(token: &ResumeToken) -> serde_json::Value {
    bson::to_bson(token)
        .expect("a resume token is BSON")
        .into_canonical_extjson()
}

fn token_of(json: &serde_json::Value) -> Option<ResumeToken> {
    let bson = Bson::try_from(json.clone()).ok()?;
    bson::from_bson(bson).ok()
}

/// One batch of changes, on their way to marks.
#[derive(Default)]
struct Batch {
    changes: u64,
    days: BTreeMap<NaiveDate, Mark>,
    lookups: Vec<(Bson, &'static str, Option<DateTime<Utc>>)>,
    unknown: Vec<(Option<Bson>, String)>,
    ignored: u64,
    last_change_at: Option<DateTime<Utc>>,
}

impl Batch {
    fn add_day(
        &mut self,
        day: NaiveDate,
        kind: &str,
        at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        let mark = self.days.entry(day).or_insert_with(|| Mark {
            changes: BTreeMap::new(),
            first_change_at: at,
            marked_at: now,
        });
        *mark.changes.entry(kind.to_owned()).or_default() += 1;
    }
}

/// The server's time of a change: its wall time where the server says it,
/// else its cluster time (seconds).
fn change_time(event: &ChangeStreamEvent<Document>) -> Option<DateTime<Utc>> {
    event
        .wall_time
        .and_then(|t| DateTime::from_timestamp_millis(t.timestamp_millis()))
        .or_else(|| {
            event
                .cluster_time
                .and_then(|t| DateTime::from_timestamp(i64::from(t.time), 0))
        })
}

/// One pipeline's watcher.
struct Watcher<'a> {
    engine: &'a Engine,
    rt: PipelineRuntime,
    opts: &'a WatchOptions,
    report: WatchReport,
    /// Makes batch names unique between watchers and restarts.
    run: String,
}

impl Engine {
    /// Watches `plan`'s collection until `shutdown` is requested, marking
    /// the days its changes touch dirty. Each batch's marks are written
    /// before the resume token after it is saved.
    pub async fn watch(
        &self,
        plan: PipelinePlan,
        opts: &WatchOptions,
        shutdown: &Shutdown,
    ) -> Result<WatchReport, PartitionError> {
        let name = plan.name.clone();
        let mut watcher = Watcher {
            engine: self,
            rt: PipelineRuntime::new(plan, self.templates.clone()),
            opts,
            report: WatchReport {
                pipeline: name,
                ..Default::default()
            },
            run: format!(
                "{}-{}",
                self.clock.now().format("%Y%m%dT%H%M%S%.6fZ"),
                std::process::id()
            ),
        };
        watcher.run(shutdown).await?;
        Ok(watcher.report)
    }
}

impl Watcher<'_> {
    fn pipeline(&self) -> &str {
        &self.rt.plan.name
    }

    fn state_error(&self, what: &str, e: impl std::fmt::Display) -> PartitionError {
        PartitionError::transient(format!(
            "{}: could not {what} in the state store: {e}",
            self.pipeline()
        ))
    }

    async fn run(&mut self, shutdown: &Shutdown) -> Result<(), PartitionError> {
        let dirty = self.engine.dirty.clone();
        let saved = dirty
            .watch_state(self.pipeline())
            .await
            .map_err(|e| match e {
                // No retry mends it: a person must (issue 29).
                LakeError::Corrupt { .. } => PartitionError::fatal(e.to_string()),
                e => self.state_error("read the watch position", e),
            })?;
        let bad_token = || {
            PartitionError::fatal(format!(
                "{}: the saved resume token (changes/{}/watch.json in the state store) does not parse\n\nhint: remove that file to watch from now on; changes made while no watcher ran are then not marked: redo their days with `etl run --rerun --start D --end D`",
                self.pipeline(),
                self.pipeline()
            ))
        };
        let from = match &saved {
            Some(WatchState {
                resume_token: Some(t),
                ..
            }) => WatchFrom::Token(token_of(t).ok_or_else(bad_token)?),
            Some(WatchState {
                start_at: Some(t), ..
            }) => WatchFrom::Time(*t),
            _ => WatchFrom::Now,
        };
        let resuming = !matches!(from, WatchFrom::Now);
        let mut total = saved.as_ref().map_or(0, |s| s.changes);
        let source = self.rt.mongo().await?;
        let mut stream = source
            .watch(from, self.rt.plan.changes.pre_images)
            .await
            .map_err(|e| self.resume_error(e, resuming))?;
        if saved.is_none() {
            // The position now, so that a watcher stopped before its first
            // change still resumes here. MongoDB gives a token at once; a
            // server that does not (mongo-java-server) gets a time, a
            // second early: a change repeated costs a redone day, a change
            // skipped would cost a stale one.
            let start = self.engine.clock.now().timestamp() - 1;
            self.save(
                stream.resume_token().as_ref(),
                u32::try_from(start).ok(),
                total,
            )
            .await?;
        }
        tracing::info!(
            pipeline = %self.pipeline(),
            from = if resuming { "the saved position" } else { "now" },
            "watching changes"
        );
        let mut batch = Batch::default();
        let mut opened: Option<tokio::time::Instant> = None;
        // The token after the last change read. The driver's own is
        // cleared by an empty answer from a server that sends no
        // `postBatchResumeToken` (mongo-java-server), so it is kept here.
        let mut token = stream.resume_token();
        loop {
            let full = batch.changes as usize >= self.opts.batch_max;
            let due = opened.is_some_and(|t| t.elapsed() >= self.opts.batch_wait);
            if full || due || (shutdown.is_requested() && batch.changes > 0) {
                total += batch.changes;
                self.flush(std::mem::take(&mut batch), token.clone(), total)
                    .await?;
                opened = None;
                continue;
            }
            if shutdown.is_requested() {
                // Where it stands, even after a batch of nothing but
                // ignored changes.
                if let Some(token) = &token {
                    self.save(Some(token), None, total).await?;
                }
                return Ok(());
            }
            let next = tokio::select! {
                next = source.next_change(&mut stream) => next?,
                () = shutdown.requested() => continue,
            };
            if let Some(t) = stream.resume_token() {
                token = Some(t);
            }
            let Some(event) = next else {
                tokio::select! {
                    () = tokio::time::sleep(self.opts.poll) => {}
                    () = shutdown.requested() => {}
                }
                continue;
            };
            let seen = classify(&event, &self.rt.plan.partition);
            if let Some(end) = seen.end {
                if batch.changes > 0 {
                    total += batch.changes;
                    self.flush(std::mem::take(&mut batch), token.clone(), total)
                        .await?;
                }
                return Err(PartitionError::fatal(format!(
                    "{}: {end}: the change stream ended\n\nhint: when the collection is back, redo its days with `etl run --rerun`, then start `etl watch` again after removing changes/{}/watch.json from the state store",
                    self.pipeline(),
                    self.pipeline()
                )));
            }
            opened.get_or_insert_with(tokio::time::Instant::now);
            batch.changes += 1;
            let at = change_time(&event);
            batch.last_change_at = at.max(batch.last_change_at);
            let now = self.engine.clock.now();
            for (day, kind) in seen.days {
                batch.add_day(day, kind, at, now);
            }
            if let Some((id, kind)) = seen.lookup {
                batch.lookups.push((id, kind, at));
            }
            if let Some(why) = seen.unknown {
                batch.unknown.push((id_of(&event), why));
            }
            if seen.ignored {
                batch.ignored += 1;
            }
        }
    }

    fn resume_error(&self, e: crate::source::SourceError, resuming: bool) -> PartitionError {
        let mut err = PartitionError::from(e);
        if resuming && !err.transient {
            err.message.push_str(&format!(
                "\n\nhint: the saved resume token may have left the server's oplog (a watcher stopped for longer than the oplog keeps): remove changes/{}/watch.json from the state store to watch from now on, and redo the days changed meanwhile with `etl run --rerun --start D --end D`",
                self.pipeline()
            ));
        }
        err
    }

    /// The days of the batch's lookups, from the warehouse: by `_id`, in
    /// the pipeline's root table. Ids it does not hold stay unknown.
    async fn look_up(&self, batch: &mut Batch) {
        let lookups = std::mem::take(&mut batch.lookups);
        if lookups.is_empty() {
            return;
        }
        let texts: BTreeSet<String> = lookups.iter().filter_map(|(id, ..)| id_text(id)).collect();
        let found = match self.days_holding(&texts).await {
            Ok(found) => found,
            Err(why) => {
                for (id, kind, _) in lookups {
                    batch.unknown.push((Some(id), format!("a {kind}: {why}")));
                }
                return;
            }
        };
        let now = self.engine.clock.now();
        for (id, kind, at) in lookups {
            match id_text(&id).and_then(|t| found.get(&t)) {
                Some(days) => {
                    for day in days {
                        batch.add_day(*day, kind, at, now);
                    }
                }
                None => batch.unknown.push((
                    Some(id),
                    format!("a {kind} of a document the warehouse does not hold (never loaded, rejected, or of a day not run yet)"),
                )),
            }
        }
    }

    async fn days_holding(
        &self,
        ids: &BTreeSet<String>,
    ) -> Result<crate::sink::warehouse::DaysHolding, String> {
        let warehouse = self.rt.warehouse().await.map_err(|e| e.message)?;
        // The root table as yesterday's run names it.
        let day = self
            .engine
            .clock
            .today(self.rt.plan.partition.timezone)
            .pred_opt()
            .expect("a day before today");
        let target = self.rt.target(day).map_err(|e| e.message)?;
        let tables = self
            .rt
            .warehouse_tables(&target, self.rt.tables())
            .map_err(|e| e.message)?;
        let root = tables.first().ok_or("the pipeline has no table")?;
        match warehouse.days_holding(root, "_id", ids).await {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err("this warehouse cannot look up a document's day".to_owned()),
            Err(e) => Err(format!("the warehouse lookup failed: {e}")),
        }
    }

    /// Writes a batch's marks, then saves `token`.
    async fn flush(
        &mut self,
        mut batch: Batch,
        token: Option<ResumeToken>,
        total: u64,
    ) -> Result<(), PartitionError> {
        self.look_up(&mut batch).await;
        let plan = &self.rt.plan;
        let today = self.engine.clock.today(plan.partition.timezone);
        let now = self.engine.clock.now();
        self.report.batches += 1;
        let name = format!("{}-{:06}", self.run, self.report.batches);
        if !batch.unknown.is_empty() {
            match plan.changes.unknown_day {
                UnknownDay::Record => {
                    let ids = batch
                        .unknown
                        .iter()
                        .filter_map(|(id, _)| id.clone())
                        .take(20)
                        .map(|id| id.into_relaxed_extjson().to_string())
                        .collect();
                    let mut reasons: Vec<&str> =
                        batch.unknown.iter().map(|(_, r)| r.as_str()).collect();
                    reasons.dedup();
                    let record = UnknownChanges {
                        count: batch.unknown.len() as u64,
                        ids,
                        reason: reasons.join("; "),
                        recorded_at: now,
                    };
                    self.engine
                        .dirty
                        .record_unknown(&plan.name, &name, &record)
                        .await
                        .map_err(|e| self.state_error("record changes of unknown day", e))?;
                    tracing::warn!(pipeline = %plan.name, changes = record.count, reason = %record.reason, "changes whose day is unknown recorded; `etl status` lists them");
                }
                UnknownDay::MarkRecent => {
                    let n = batch.unknown.len() as u64;
                    let mut day = today;
                    for _ in 0..plan.changes.recent_days {
                        day = day.pred_opt().expect("a day before");
                        for _ in 0..n {
                            batch.add_day(day, "unknown_day", batch.last_change_at, now);
                        }
                    }
                }
            }
            self.report.unknown += batch.unknown.len() as u64;
        }
        let mut marked = 0;
        for (day, mark) in &batch.days {
            if *day < plan.partition.start_date || *day >= today {
                batch.ignored += mark.total();
                continue;
            }
            self.engine
                .dirty
                .mark(&plan.name, *day, &name, mark)
                .await
                .map_err(|e| self.state_error("write a dirty mark", e))?;
            *self.report.marked.entry(*day).or_default() += mark.total();
            marked += 1;
        }
        self.report.changes += batch.changes;
        self.report.ignored += batch.ignored;
        if let Some(token) = token {
            self.save(Some(&token), None, total).await?;
        }
        let lag = batch
            .last_change_at
            .map(|at| (self.engine.clock.now() - at).num_milliseconds() as f64 / 1000.0);
        tracing::info!(
            pipeline = %plan.name,
            changes = batch.changes,
            days_marked = marked,
            ignored = batch.ignored,
            lag_s = lag.unwrap_or(0.0),
            "changes marked"
        );
        Ok(())
    }

    /// Saves the position: a token, or else a server time.
    async fn save(
        &self,
        token: Option<&ResumeToken>,
        start_at: Option<u32>,
        total: u64,
    ) -> Result<(), PartitionError> {
        let state = WatchState {
            resume_token: token.map(token_json),
            start_at: if token.is_some() { None } else { start_at },
            saved_at: self.engine.clock.now(),
            changes: total,
        };
        self.engine
            .dirty
            .save_watch_state(self.pipeline(), &state)
            .await
            .map_err(|e| self.state_error("save the resume token", e))
    }
}

/// The watchers of many pipelines, one task each, until `shutdown`.
pub async fn watch_all(
    engine: Arc<Engine>,
    plans: Vec<PipelinePlan>,
    opts: WatchOptions,
    shutdown: Shutdown,
) -> Vec<Result<WatchReport, PartitionError>> {
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let (engine, opts, shutdown) = (engine.clone(), opts.clone(), shutdown.clone());
            tokio::spawn(async move { engine.watch(plan, &opts, &shutdown).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(
            t.await
                .unwrap_or_else(|e| Err(PartitionError::fatal(e.to_string()))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(kind: PartitionKind, field: &str) -> PartitionPlan {
        PartitionPlan {
            field: field.into(),
            kind,
            timezone: chrono_tz::UTC,
            start_date: "2020-06-01".parse().unwrap(),
            lookback: 0,
        }
    }

    fn at(day: &str) -> Bson {
        Bson::DateTime(bson::DateTime::parse_rfc3339_str(format!("{day}T12:00:00Z")).unwrap())
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// A change event as the server sends it.
    fn event(doc: Document) -> ChangeStreamEvent<Document> {
        let mut doc = doc;
        doc.insert("_id", bson::doc! { "_data": "00" });
        bson::from_document(doc).unwrap()
    }

    #[test]
    fn an_insert_marks_the_day_of_its_document() {
        let p = partition(PartitionKind::Date, "created_at");
        let seen = classify(
            &event(bson::doc! {
                "operationType": "insert",
                "documentKey": { "_id": 1 },
                "fullDocument": { "_id": 1, "created_at": at("2020-06-03") },
            }),
            &p,
        );
        assert_eq!(seen.days, vec![(d("2020-06-03"), "insert")]);
        assert_eq!(
            (seen.lookup, seen.unknown, seen.ignored),
            (None, None, false)
        );
    }

    #[test]
    fn an_update_that_leaves_the_partition_field_alone_marks_one_day() {
        let p = partition(PartitionKind::Date, "created_at");
        // MongoDB's form, and mongo-java-server's (the update in documentKey).
        let events = [
            bson::doc! {
                "operationType": "update",
                "documentKey": { "_id": 1 },
                "updateDescription": { "updatedFields": { "total": 5 }, "removedFields": [] },
                "fullDocument": { "_id": 1, "created_at": at("2020-06-03"), "total": 5 },
            },
            bson::doc! {
                "operationType": "update",
                "documentKey": { "$set": { "total": 5 } },
                "fullDocument": { "_id": 1, "created_at": at("2020-06-03"), "total": 5 },
            },
        ];
        for e in events {
            let seen = classify(&event(e), &p);
            assert_eq!(seen.days, vec![(d("2020-06-03"), "update")]);
            assert_eq!(seen.lookup, None);
        }
    }

    #[test]
    fn a_move_marks_the_new_day_and_finds_the_old_one_by_pre_image_or_lookup() {
        let p = partition(PartitionKind::Date, "created_at");
        let with_pre_image = classify(
            &event(bson::doc! {
                "operationType": "update",
                "documentKey": { "_id": 1 },
                "updateDescription": { "updatedFields": { "created_at": at("2020-06-05") }, "removedFields": [] },
                "fullDocument": { "_id": 1, "created_at": at("2020-06-05") },
                "fullDocumentBeforeChange": { "_id": 1, "created_at": at("2020-06-02") },
            }),
            &p,
        );
        assert_eq!(
            with_pre_image.days,
            vec![(d("2020-06-05"), "update"), (d("2020-06-02"), "moved_from")]
        );
        let without = classify(
            &event(bson::doc! {
                "operationType": "update",
                "documentKey": { "$set": { "created_at": at("2020-06-05") } },
                "fullDocument": { "_id": 7, "created_at": at("2020-06-05") },
            }),
            &p,
        );
        assert_eq!(without.days, vec![(d("2020-06-05"), "update")]);
        assert_eq!(without.lookup, Some((Bson::Int32(7), "update")));
    }

    #[test]
    fn a_delete_is_found_by_id_for_object_id_partitions_else_looked_up() {
        let oid = bson::oid::ObjectId::parse_str("5ed6c4d80102030405060708").unwrap();
        let delete = bson::doc! { "operationType": "delete", "documentKey": { "_id": oid } };
        let by_id = classify(
            &event(delete.clone()),
            &partition(PartitionKind::ObjectId, "_id"),
        );
        assert_eq!(by_id.days, vec![(d("2020-06-02"), "delete")]);
        let by_date = classify(
            &event(delete),
            &partition(PartitionKind::Date, "created_at"),
        );
        assert!(by_date.days.is_empty());
        assert_eq!(by_date.lookup, Some((Bson::ObjectId(oid), "delete")));
        assert!(!by_date.ignored);
    }

    #[test]
    fn a_drop_ends_the_stream_and_a_document_without_a_day_is_ignored() {
        let p = partition(PartitionKind::Date, "created_at");
        let drop = classify(&event(bson::doc! { "operationType": "drop" }), &p);
        assert!(drop.end.unwrap().contains("dropped or renamed"));
        let no_day = classify(
            &event(bson::doc! {
                "operationType": "insert",
                "documentKey": { "_id": 1 },
                "fullDocument": { "_id": 1, "created_at": "not a date" },
            }),
            &p,
        );
        assert!(no_day.ignored && no_day.days.is_empty());
    }

    #[test]
    fn a_resume_token_round_trips_through_its_saved_form() {
        let token: ResumeToken = bson::from_bson(Bson::Document(
            bson::doc! { "_data": "8263A1B2C3000000012B0229296E04" },
        ))
        .unwrap();
        let json = token_json(&token);
        assert_eq!(
            bson::to_bson(&token_of(&json).unwrap()).unwrap(),
            bson::to_bson(&token).unwrap()
        );
    }

    #[test]
    fn touches_is_equality_or_nesting_on_dots() {
        assert!(touches("created_at", "created_at"));
        assert!(touches("meta", "meta.ts"));
        assert!(touches("meta.ts.x", "meta.ts"));
        assert!(!touches("meta.tsx", "meta.ts"));
        assert!(!touches("created", "created_at"));
    }
}
