//! The engine's run logic with its time and its source injected: a
//! [`Source`] of documents held in memory (a second source, as a replay
//! from the lake would be, not a fake of MongoDB's protocol), the real
//! lake and Parquet warehouse in a temporary folder, and a stopped clock.
//! What only a real server shows (a signal sent to `etl run`, a cursor on
//! FerretDB) is in `tests/stack_engine.rs`.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, RawDocumentBuf};
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use tokio::sync::Notify;

use super::*;
use crate::plan::{PartitionTarget, RangeRequest};
use crate::source::{Documents, Source, SourceError};

/// Documents in memory, partitioned by `created_at` like MongoDB's filter
/// would. `stall_after`: each read stops for good after that many
/// documents, telling `stalled`. `fail_first`: that many reads fail with a
/// transient error before any succeeds.
struct MemorySource {
    docs: Vec<RawDocumentBuf>,
    stall_after: Option<usize>,
    stalled: Arc<Notify>,
    fail_first: u32,
    reads: AtomicU32,
}

impl MemorySource {
    fn new(docs: Vec<RawDocumentBuf>) -> Self {
        Self {
            docs,
            stall_after: None,
            stalled: Arc::new(Notify::new()),
            fail_first: 0,
            reads: AtomicU32::new(0),
        }
    }

    fn of_day(&self, target: &PartitionTarget) -> Vec<RawDocumentBuf> {
        let (start, end) = (
            target.start.timestamp_millis(),
            target.end.timestamp_millis(),
        );
        self.docs
            .iter()
            .filter(|d| {
                let at = d.get_datetime("created_at").unwrap().timestamp_millis();
                (start..end).contains(&at)
            })
            .cloned()
            .collect()
    }
}

struct MemoryDocuments {
    docs: Vec<RawDocumentBuf>,
    at: Option<usize>,
    stall_after: Option<usize>,
    stalled: Arc<Notify>,
}

#[async_trait::async_trait]
impl Documents for MemoryDocuments {
    async fn advance(&mut self) -> Result<bool, SourceError> {
        let next = self.at.map_or(0, |i| i + 1);
        if Some(next) == self.stall_after {
            self.stalled.notify_one();
            std::future::pending::<()>().await;
        }
        self.at = Some(next);
        Ok(next < self.docs.len())
    }

    fn current(&self) -> &bson::RawDocument {
        &self.docs[self.at.expect("advanced")]
    }
}

#[async_trait::async_trait]
impl Source for MemorySource {
    async fn documents<'a>(
        &'a self,
        target: &PartitionTarget,
    ) -> Result<Box<dyn Documents + 'a>, SourceError> {
        if self.reads.fetch_add(1, Ordering::SeqCst) < self.fail_first {
            return Err(SourceError::Server {
                operation: "find",
                namespace: "memory.events".into(),
                uri: "memory://".into(),
                message: "connection reset".into(),
                transient: true,
                hint: None,
            });
        }
        Ok(Box::new(MemoryDocuments {
            docs: self.of_day(target),
            at: None,
            stall_after: self.stall_after,
            stalled: self.stalled.clone(),
        }))
    }

    fn count(&self, target: &PartitionTarget) -> BoxFuture<'static, Result<u64, SourceError>> {
        let n = self.of_day(target).len() as u64;
        Box::pin(async move { Ok(n) })
    }
}

/// The repository's `etl.yaml` in `dir`, with one pipeline, `events`,
/// into the lake and a Parquet dataset under `dir/.etl`.
fn project(dir: &Path) -> (ProjectPlan, PipelinePlan, Arc<crate::template::Templates>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("etl.yaml"), dir.join("etl.yaml")).unwrap();
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    std::fs::write(
        dir.join("pipelines/events.yaml"),
        r#"version: 1
name: events
source: { connection: mongo, database: memory, collection: events }
partition: { field: created_at, kind: date, start_date: "2020-06-01" }
sinks:
  lake: { connection: lake, path: "raw/events/dt={{ ds }}/events.jsonl.gz" }
  warehouse: { type: parquet, connection: warehouse_files, path: "{{ pipeline }}" }
"#,
    )
    .unwrap();
    load(dir)
}

/// The project in `dir`, planned.
fn load(dir: &Path) -> (ProjectPlan, PipelinePlan, Arc<crate::template::Templates>) {
    // The shipped `local` profile's with its lake, warehouse and ledger in
    // folders.
    let ctx = crate::cli::Context::for_project(dir.join("etl.yaml"), "files");
    let loaded = crate::cli::load_plans(&ctx, &[dir.join("pipelines/events.yaml")], "run")
        .unwrap_or_else(|_| panic!("the test project does not load"));
    let plan = loaded.plans.into_iter().next().unwrap();
    (loaded.project, plan, Arc::new(loaded.templates))
}

fn events(days: &[(&str, usize)]) -> Vec<RawDocumentBuf> {
    let mut out = Vec::new();
    for (day, n) in days {
        let start: DateTime<Utc> = format!("{day}T00:00:00Z").parse().unwrap();
        for i in 0..*n {
            let at = start + chrono::Duration::seconds(60 * i as i64);
            out.push(
                RawDocumentBuf::from_document(&doc! {
                    "_id": format!("{day}-{i:04}"),
                    "created_at": bson::DateTime::from_millis(at.timestamp_millis()),
                    "n": i as i64,
                })
                .unwrap(),
            );
        }
    }
    out
}

fn range(start: &str, end: &str) -> DayRange {
    crate::plan::resolve_range(
        RangeRequest {
            start: Some(start.parse().unwrap()),
            end: Some(end.parse().unwrap()),
        },
        "2020-06-01".parse().unwrap(),
        "2026-11-23".parse().unwrap(),
    )
}

struct Run {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    engine: Engine,
    clock: Arc<FixedClock>,
    plan: PipelinePlan,
    templates: Arc<crate::template::Templates>,
}

impl Run {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (project, plan, templates) = self::project(&root);
        let clock = Arc::new(FixedClock::at("2026-11-23T00:00:05Z".parse().unwrap()));
        let engine = Engine::new(
            project,
            "files",
            templates.clone(),
            clock.clone(),
            Arc::new(progress::LogProgress),
        )
        .unwrap();
        Self {
            _dir: dir,
            root,
            engine,
            clock,
            plan,
            templates,
        }
    }

    fn runtime(&self, source: MemorySource) -> Arc<PipelineRuntime> {
        Arc::new(PipelineRuntime::with_source(
            self.plan.clone(),
            self.templates.clone(),
            Box::new(source),
        ))
    }

    /// Runs days `start` to `end` of `source`, never shut down.
    async fn days(
        &self,
        source: MemorySource,
        start: &str,
        end: &str,
        opts: &RunOptions,
    ) -> RunReport {
        let jobs = vec![(self.runtime(source), range(start, end))];
        self.engine
            .run_runtimes(jobs, opts, &Shutdown::never())
            .await
            .unwrap()
    }

    /// The staging folders of `pipeline`'s `day`, in every run's folder.
    fn staged(&self, pipeline: &str, day: &str) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(self.root.join(".etl/staging"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|run| run.path().join(pipeline).join(day))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// Another worker on the same project: its own engine, ledger reader
    /// and leases, as a second `etl run` would have.
    fn second_worker(&self) -> Engine {
        let (project, _, templates) = self::project(&self.root);
        Engine::new(
            project,
            "files",
            templates,
            self.clock.clone(),
            Arc::new(progress::LogProgress),
        )
        .unwrap()
    }

    /// Edits the pipeline's spec file, replacing `from` with `to`, and
    /// plans it again, as the next `etl run` would read it.
    fn edit_spec(&mut self, from: &str, to: &str) {
        let file = self.root.join("pipelines/events.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(from), "{from} in {text}");
        std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
        let (_, plan, _) = self::load(&self.root);
        self.plan = plan;
    }

    async fn record(&self, day: &str) -> Option<PartitionRecord> {
        let day: NaiveDate = day.parse().unwrap();
        self.engine.ledger().get("events", day).await.unwrap()
    }
}

fn quick() -> RunOptions {
    RunOptions {
        backoff: Duration::from_millis(1),
        ..Default::default()
    }
}

#[tokio::test]
async fn days_are_timed_by_the_injected_clock_and_reconciled() {
    let run = Run::new();
    let report = run
        .days(
            MemorySource::new(events(&[("2020-06-01", 30), ("2020-06-02", 5)])),
            "2020-06-01",
            "2020-06-03",
            &quick(),
        )
        .await;
    assert!(report.ok(), "{:?}", report.outcomes);
    let at: DateTime<Utc> = "2026-11-23T00:00:05Z".parse().unwrap();
    for (day, n) in [("2020-06-01", 30), ("2020-06-02", 5), ("2020-06-03", 0)] {
        let r = run.record(day).await.expect("recorded");
        assert_eq!(r.status, Status::Done, "{day}");
        assert_eq!(
            (r.source_count, r.raw_lines, r.warehouse_rows),
            // No `source.count`: the documents read, and no count.
            (None, Some(n), Some(n)),
            "{day}"
        );
        assert_eq!((r.started_at, r.finished_at, r.attempts), (at, at, 1));
    }
    // The clock moved on: a rerun's records say so, and only they.
    run.clock.advance(chrono::Duration::hours(1));
    let opts = RunOptions {
        rerun: true,
        ..quick()
    };
    run.days(
        MemorySource::new(events(&[("2020-06-01", 30)])),
        "2020-06-01",
        "2020-06-01",
        &opts,
    )
    .await;
    let r = run.record("2020-06-01").await.unwrap();
    assert_eq!(r.started_at, at + chrono::Duration::hours(1));
    assert_eq!(
        run.record("2020-06-02").await.unwrap().started_at,
        at,
        "a day not rerun keeps its record"
    );
}

#[tokio::test]
async fn a_shutdown_stops_the_running_day_records_it_and_starts_no_other() {
    let run = Run::new();
    let mut source = MemorySource::new(events(&[("2020-06-01", 50), ("2020-06-02", 5)]));
    source.stall_after = Some(20);
    let stalled = source.stalled.clone();
    let rt = run.runtime(source);
    let (trigger, shutdown) = Shutdown::new();
    let opts = quick();
    let running = run.engine.run_runtimes(
        vec![(rt, range("2020-06-01", "2020-06-03"))],
        &opts,
        &shutdown,
    );
    let stop = async {
        // Mid-day: 20 documents read, the extract waiting on the 21st.
        stalled.notified().await;
        assert_eq!(run.staged("events", "2020-06-01").len(), 1);
        trigger.request();
    };
    let (report, ()) = tokio::join!(running, stop);
    let report = report.unwrap();
    assert!(report.interrupted && !report.ok());
    let kinds: Vec<String> = report
        .outcomes
        .iter()
        .map(|o| match o {
            DayOutcome::Interrupted(r) => format!("{} interrupted", r.day),
            DayOutcome::NotStarted { day, .. } => format!("{day} not started"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "2020-06-01 interrupted",
            "2020-06-02 not started",
            "2020-06-03 not started"
        ]
    );
    let r = run.record("2020-06-01").await.unwrap();
    assert_eq!(r.status, Status::Interrupted);
    assert!(r
        .error
        .as_deref()
        .unwrap()
        .starts_with("interrupted by a shutdown request"));
    assert!(run.record("2020-06-02").await.is_none());
    assert_eq!(
        std::fs::read_dir(run.root.join(".etl/staging"))
            .unwrap()
            .count(),
        0,
        "the stopped day's staging folder is removed, and the run's with it"
    );
    assert!(!run
        .root
        .join(".etl/warehouse/events/dt=2020-06-01")
        .exists());

    // The next run heals it.
    let report = run
        .days(
            MemorySource::new(events(&[("2020-06-01", 50), ("2020-06-02", 5)])),
            "2020-06-01",
            "2020-06-03",
            &quick(),
        )
        .await;
    assert!(report.ok(), "{:?}", report.outcomes);
    let r = run.record("2020-06-01").await.unwrap();
    assert_eq!((r.status, r.warehouse_rows), (Status::Done, Some(50)));
}

#[tokio::test]
async fn a_transient_source_failure_is_retried_and_the_attempts_recorded() {
    let run = Run::new();
    let mut source = MemorySource::new(events(&[("2020-06-01", 3)]));
    source.fail_first = 2;
    let report = run.days(source, "2020-06-01", "2020-06-01", &quick()).await;
    assert!(report.ok(), "{:?}", report.outcomes);
    let r = run.record("2020-06-01").await.unwrap();
    assert_eq!((r.attempts, r.warehouse_rows), (3, Some(3)));
}

#[tokio::test]
async fn a_day_another_worker_holds_is_left_to_it() {
    let run = Run::new();
    let mut source = MemorySource::new(events(&[("2020-06-01", 50), ("2020-06-02", 5)]));
    source.stall_after = Some(10);
    let stalled = source.stalled.clone();
    let (trigger, shutdown) = Shutdown::new();
    let opts = quick();
    let first = run.engine.run_runtimes(
        vec![(run.runtime(source), range("2020-06-01", "2020-06-01"))],
        &opts,
        &shutdown,
    );
    let second = async {
        stalled.notified().await;
        let other = run.second_worker();
        let rt = run.runtime(MemorySource::new(events(&[
            ("2020-06-01", 50),
            ("2020-06-02", 5),
        ])));
        let report = other
            .run_runtimes(
                vec![(rt, range("2020-06-01", "2020-06-02"))],
                &opts,
                &Shutdown::never(),
            )
            .await
            .unwrap();
        trigger.request();
        report
    };
    let (first, second) = tokio::join!(first, second);
    assert!(first.unwrap().interrupted);
    assert!(second.ok(), "a day left to another worker is no failure");
    match &second.outcomes[..] {
        [DayOutcome::Elsewhere { day, note, .. }, DayOutcome::Done(r)] => {
            assert_eq!(day.to_string(), "2020-06-01");
            assert!(
                note.starts_with(&format!("run by {}", run.engine.leases.owner())),
                "{note}"
            );
            assert_eq!(
                (r.day.to_string(), r.warehouse_rows),
                ("2020-06-02".into(), Some(5))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run.record("2020-06-01").await.unwrap().status,
        Status::Interrupted,
        "recorded by the worker that held it"
    );
}

/// Hostile documents (issue 14) through a whole day: one holds a string
/// that is not UTF-8, which MongoDB can store; one has a key starting with
/// `$`. The day is done, not failed: the first is rejected with the path
/// of the bad value, the second loads; the raw archive keeps both as
/// their BSON bytes, and every line reads back to the source's bytes,
/// which is what `etl replay` reads.
#[tokio::test]
async fn a_document_that_is_not_valid_inside_is_rejected_and_archived_whole() {
    let run = Run::new();
    let mut docs = events(&[("2020-06-01", 4)]);
    let at = bson::DateTime::from_millis(
        docs[0]
            .get_datetime("created_at")
            .unwrap()
            .timestamp_millis(),
    );
    let mut bad = RawDocumentBuf::from_document(&doc! {
        "_id": "bad", "created_at": at, "n": 9_i64, "note": { "text": "qqqq" },
    })
    .unwrap()
    .into_bytes();
    let q = bad.windows(4).position(|w| w == b"qqqq").unwrap();
    bad[q] = 0xff;
    docs.push(RawDocumentBuf::from_bytes(bad).unwrap());
    docs.push(
        RawDocumentBuf::from_document(&doc! {
            "_id": "dollar", "created_at": at, "n": 10_i64, "m": { "$oid": "not one" },
        })
        .unwrap(),
    );
    let report = run
        .days(
            MemorySource::new(docs.clone()),
            "2020-06-01",
            "2020-06-01",
            &quick(),
        )
        .await;
    assert!(report.ok(), "{:?}", report.outcomes);
    let r = run.record("2020-06-01").await.unwrap();
    assert_eq!(r.status, Status::Done);
    assert_eq!(
        (r.source_count, r.raw_lines, r.warehouse_rows, r.rejected),
        (None, Some(6), Some(5), Some(1))
    );

    let lake = run.root.join(".etl/lake/raw/events/dt=2020-06-01");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(
            std::fs::File::open(lake.join("events.jsonl.gz")).unwrap(),
        ),
        &mut text,
    )
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    for (line, doc) in lines.iter().zip(&docs) {
        let back = crate::extjson::read_archive_line(line.as_bytes()).unwrap();
        assert_eq!(back.as_bytes(), doc.as_bytes(), "{line}");
    }
    assert!(lines[4].starts_with("{\"$bson\":\""), "{}", lines[4]);
    assert!(lines[5].starts_with("{\"$bson\":\""), "{}", lines[5]);
    assert!(
        lines[0].starts_with("{\"_id\":\"2020-06-01-0000\""),
        "{}",
        lines[0]
    );

    let rejects = std::fs::read_to_string(lake.join("_rejects.jsonl")).unwrap();
    let reject: serde_json::Value = serde_json::from_str(rejects.trim()).unwrap();
    assert_eq!(reject["path"], "$.note");
    assert!(
        reject["reason"]
            .as_str()
            .unwrap()
            .starts_with("malformed BSON at `$.note`: utf-8"),
        "{reject}"
    );
    let kept =
        crate::extjson::read_archive_line(reject["document"].to_string().as_bytes()).unwrap();
    assert_eq!(kept.as_bytes(), docs[4].as_bytes());
}

fn outcome_kinds(report: &RunReport) -> Vec<(String, &'static str)> {
    report
        .outcomes
        .iter()
        .map(|o| {
            let kind = match o {
                DayOutcome::Done(_) => "done",
                DayOutcome::Skipped(_) => "skipped",
                DayOutcome::Failed(_) => "failed",
                DayOutcome::Interrupted(_) => "interrupted",
                DayOutcome::Elsewhere { .. } => "elsewhere",
                DayOutcome::NotStarted { .. } => "not started",
            };
            (o.key().1.to_string(), kind)
        })
        .collect()
}

fn mark(n: u64) -> dirty::Mark {
    dirty::Mark {
        changes: [("update".to_owned(), n)].into(),
        first_change_at: None,
        marked_at: "2026-11-22T10:00:00Z".parse().unwrap(),
    }
}

#[tokio::test]
async fn a_dirty_day_is_redone_with_its_new_documents_and_its_marks_cleared() {
    let run = Run::new();
    let three = [("2020-06-01", 3), ("2020-06-02", 4), ("2020-06-03", 5)];
    run.days(
        MemorySource::new(events(&three)),
        "2020-06-01",
        "2020-06-03",
        &quick(),
    )
    .await;
    let day2: NaiveDate = "2020-06-02".parse().unwrap();
    let dirty = run.engine.dirty();
    dirty.mark("events", day2, "b1", &mark(2)).await.unwrap();
    dirty.mark("events", day2, "b2", &mark(1)).await.unwrap();
    // Day 2 gained two documents since it was loaded.
    let changed = [("2020-06-01", 3), ("2020-06-02", 6), ("2020-06-03", 5)];
    let report = run
        .days(
            MemorySource::new(events(&changed)),
            "2020-06-01",
            "2020-06-03",
            &quick(),
        )
        .await;
    assert_eq!(
        outcome_kinds(&report),
        [
            ("2020-06-01".into(), "skipped"),
            ("2020-06-02".into(), "done"),
            ("2020-06-03".into(), "skipped")
        ]
    );
    assert_eq!(
        report.notices,
        ["events: 2020-06-02 runs again: `etl watch` saw 3 changes since it was loaded"]
    );
    assert_eq!(
        run.record("2020-06-02").await.unwrap().warehouse_rows,
        Some(6)
    );
    assert!(dirty.days("events").await.unwrap().is_empty());

    // `--dirty`: only marked days, and nothing else is even listed.
    dirty.mark("events", day2, "b3", &mark(1)).await.unwrap();
    let only = RunOptions {
        dirty_only: true,
        ..quick()
    };
    let report = run
        .days(
            MemorySource::new(events(&changed)),
            "2020-06-01",
            "2020-06-03",
            &only,
        )
        .await;
    assert_eq!(outcome_kinds(&report), [("2020-06-02".into(), "done")]);
    let report = run
        .days(
            MemorySource::new(events(&changed)),
            "2020-06-01",
            "2020-06-03",
            &only,
        )
        .await;
    assert!(report.outcomes.is_empty());

    // A replay reads the lake, which the change has not reached: it leaves
    // the mark for a run.
    dirty.mark("events", day2, "b4", &mark(1)).await.unwrap();
    let jobs = vec![(
        Arc::new(PipelineRuntime::replay(
            run.plan.clone(),
            run.templates.clone(),
        )),
        range("2020-06-02", "2020-06-02"),
    )];
    let opts = RunOptions {
        rerun: true,
        ..quick()
    };
    let report = run
        .engine
        .run_runtimes(jobs, &opts, &Shutdown::never())
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.outcomes);
    assert_eq!(dirty.days("events").await.unwrap().len(), 1);
}

#[tokio::test]
async fn lookback_redoes_the_days_before_the_last_in_catch_ups_only() {
    let mut run = Run::new();
    run.plan.partition.lookback = 2;
    let five: Vec<(String, usize)> = (1..=5).map(|d| (format!("2020-06-0{d}"), d)).collect();
    let five: Vec<(&str, usize)> = five.iter().map(|(d, n)| (d.as_str(), *n)).collect();
    run.days(
        MemorySource::new(events(&five)),
        "2020-06-01",
        "2020-06-05",
        &quick(),
    )
    .await;
    // A named range runs as named: everything is done already.
    let report = run
        .days(
            MemorySource::new(events(&five)),
            "2020-06-01",
            "2020-06-05",
            &quick(),
        )
        .await;
    assert!(outcome_kinds(&report).iter().all(|(_, k)| *k == "skipped"));
    let catch_up = RunOptions {
        lookback: true,
        ..quick()
    };
    let report = run
        .days(
            MemorySource::new(events(&five)),
            "2020-06-01",
            "2020-06-05",
            &catch_up,
        )
        .await;
    let kinds: Vec<&str> = outcome_kinds(&report).iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, ["skipped", "skipped", "done", "done", "skipped"]);
    assert_eq!(
        report.notices,
        [
            "events: 2020-06-03 runs again: it is within the spec's lookback of 2 days",
            "events: 2020-06-04 runs again: it is within the spec's lookback of 2 days"
        ]
    );
}

/// Issue 29: an edit that changes no row (here `description`) redoes no
/// day: every done day is skipped, nothing is extracted, and the records
/// keep their timestamps.
#[tokio::test]
async fn an_edit_of_the_description_redoes_no_day() {
    let mut run = Run::new();
    let three = [("2020-06-01", 3), ("2020-06-02", 4), ("2020-06-03", 5)];
    run.days(
        MemorySource::new(events(&three)),
        "2020-06-01",
        "2020-06-03",
        &quick(),
    )
    .await;
    let loaded_at = run.record("2020-06-01").await.unwrap().started_at;
    run.clock.advance(chrono::Duration::hours(1));
    run.edit_spec(
        "name: events\n",
        "name: events\ndescription: the events, daily\n",
    );
    run.edit_spec("kind: date,", "kind: date, lookback: 0,");
    let mut source = MemorySource::new(events(&three));
    // Any read would fail the day: nothing may be extracted.
    source.fail_first = u32::MAX;
    let report = run.days(source, "2020-06-01", "2020-06-03", &quick()).await;
    assert!(report.ok(), "{:?}", report.outcomes);
    let kinds: Vec<&str> = outcome_kinds(&report).iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, ["skipped", "skipped", "skipped"]);
    assert!(report.notices.is_empty(), "{:?}", report.notices);
    assert!(report.stale.is_empty());
    for day in ["2020-06-01", "2020-06-02", "2020-06-03"] {
        let r = run.record(day).await.unwrap();
        assert_eq!((r.status, r.started_at), (Status::Done, loaded_at), "{day}");
        assert!(run.plan.lands_as_recorded(&r.spec_hash), "{day}");
    }
}

/// Issue 29: an edit that changes rows (a flatten rule) makes the done days
/// stale. A catch-up leaves them and says how many there are and how to
/// redo them; `--stale` (`RunOptions::stale`) redoes them.
#[tokio::test]
async fn an_edit_of_a_flatten_rule_marks_days_stale_and_only_stale_redoes_them() {
    let mut run = Run::new();
    let three = [("2020-06-01", 3), ("2020-06-02", 4), ("2020-06-03", 5)];
    run.days(
        MemorySource::new(events(&three)),
        "2020-06-01",
        "2020-06-03",
        &quick(),
    )
    .await;
    let loaded_at = run.record("2020-06-01").await.unwrap().started_at;
    let before = run.plan.spec_hash.clone();
    run.clock.advance(chrono::Duration::hours(1));
    run.edit_spec("sinks:\n", "flatten:\n  exclude: [$.n]\nsinks:\n");
    assert_ne!(run.plan.spec_hash, before);

    let mut source = MemorySource::new(events(&three));
    source.fail_first = u32::MAX;
    let report = run.days(source, "2020-06-01", "2020-06-03", &quick()).await;
    assert!(
        report.ok(),
        "a stale day is no failure: {:?}",
        report.outcomes
    );
    let kinds: Vec<&str> = outcome_kinds(&report).iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, ["skipped", "skipped", "skipped"]);
    assert_eq!(report.stale.len(), 3);
    let file = run.plan.file.display().to_string();
    assert_eq!(
        report.notices,
        [format!("events: 3 done days are stale (2020-06-01 to 2020-06-03): the spec changed what they land since they were loaded, and a catch-up does not redo them; redo them with `etl run --stale {file}` (from MongoDB) or `etl replay --start 2020-06-01 --end 2020-06-03 {file}` (from the lake)")]
    );
    for day in ["2020-06-01", "2020-06-02", "2020-06-03"] {
        let r = run.record(day).await.unwrap();
        assert_eq!(r.started_at, loaded_at, "{day} is left as it was");
        assert!(!run.plan.lands_as_recorded(&r.spec_hash), "{day}");
    }

    let stale = RunOptions {
        stale: true,
        ..quick()
    };
    let report = run
        .days(
            MemorySource::new(events(&three)),
            "2020-06-01",
            "2020-06-03",
            &stale,
        )
        .await;
    let kinds: Vec<&str> = outcome_kinds(&report).iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, ["done", "done", "done"]);
    assert!(report.notices[0].starts_with("events: 2020-06-01 runs again: it is stale, the spec changed what it lands since it was loaded (hash "), "{:?}", report.notices);
    for day in ["2020-06-01", "2020-06-02", "2020-06-03"] {
        let r = run.record(day).await.unwrap();
        assert_eq!(
            r.started_at,
            loaded_at + chrono::Duration::hours(1),
            "{day}"
        );
        assert_eq!(r.spec_hash, run.plan.spec_hash, "{day}");
    }
}

/// Issue 29: a record written before the rows hash (a bare sha256 of the
/// whole spec) is done while the spec is the same, and gets the rows hash;
/// with another spec it is stale. No upgrade redoes a day.
#[tokio::test]
async fn a_record_from_before_the_rows_hash_is_done_not_redone() {
    let mut run = Run::new();
    run.days(
        MemorySource::new(events(&[("2020-06-01", 3), ("2020-06-02", 2)])),
        "2020-06-01",
        "2020-06-02",
        &quick(),
    )
    .await;
    for day in ["2020-06-01", "2020-06-02"] {
        let mut r = run.record(day).await.unwrap();
        r.spec_hash = run.plan.legacy_spec_hash.clone();
        run.engine.ledger().put(&r).await.unwrap();
    }
    let mut source = MemorySource::new(vec![]);
    source.fail_first = u32::MAX;
    let report = run.days(source, "2020-06-01", "2020-06-02", &quick()).await;
    let kinds: Vec<&str> = outcome_kinds(&report).iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, ["skipped", "skipped"]);
    assert!(report.stale.is_empty() && report.notices.is_empty());
    assert_eq!(
        run.record("2020-06-01").await.unwrap().spec_hash,
        run.plan.spec_hash,
        "the record now carries the rows hash"
    );
    // An old record of another spec: stale, not redone.
    let mut r = run.record("2020-06-02").await.unwrap();
    r.spec_hash = "0".repeat(64);
    run.engine.ledger().put(&r).await.unwrap();
    run.edit_spec("name: events\n", "name: events\ndescription: edited\n");
    let mut source = MemorySource::new(vec![]);
    source.fail_first = u32::MAX;
    let report = run.days(source, "2020-06-01", "2020-06-02", &quick()).await;
    let kinds: Vec<&str> = outcome_kinds(&report).iter().map(|(_, k)| *k).collect();
    assert_eq!(kinds, ["skipped", "skipped"]);
    assert_eq!(report.stale.len(), 1);
}
