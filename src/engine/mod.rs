//! The partition loop: extract, archive, flatten, load, reconcile, record.
//!
//! One partition is one day of one pipeline. Its steps:
//! 1. extract the day's documents in `_id` order, writing three things in
//!    one pass: a local BSON spool, the raw archive (canonical Extended
//!    JSON lines, compressed, hashed), and the inferred table schema;
//! 2. flatten the spool into a local rows file per table, conforming to the
//!    schema merged with the warehouse's existing columns; when that schema
//!    can be told before the extract (a schema lock, the warehouse table),
//!    the rows are written during the extract instead and kept if the day's
//!    schema turned out to be the one expected;
//! 3. concurrently, upload the raw archive and its manifest to the lake,
//!    and replace the warehouse partition with the rows;
//! 4. reconcile the source count, the raw lines and the warehouse rows;
//! 5. record the outcome in the ledger.
//!
//! Memory stays bounded: documents stream from the cursor to files, and
//! every later step streams from those files. The clock is injected, and no
//! lake object depends on it, so reruns give byte-identical objects.

pub mod ledger;
mod partition;
pub mod progress;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;

pub use ledger::{Ledger, PartitionRecord, Status};
pub use partition::{PartitionError, PipelineRuntime};

use crate::plan::{DayRange, PipelinePlan, ProjectPlan};
use crate::template::Templates;

/// Where "now" comes from. Only ledger timings use it.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Redo days the ledger has as done.
    pub rerun: bool,
    /// Partitions running at once.
    pub parallel: usize,
    /// Stop starting partitions after the first failure.
    pub fail_fast: bool,
    /// Extra attempts for a partition that failed with a transient error.
    pub retries: u32,
    /// First backoff; it doubles on each retry.
    pub backoff: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            rerun: false,
            parallel: 1,
            fail_fast: false,
            retries: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

/// What happened to one day.
#[derive(Debug, Clone)]
pub enum DayOutcome {
    /// Ran and succeeded.
    Done(PartitionRecord),
    /// Already done with the same spec; not run again.
    Skipped(PartitionRecord),
    /// Ran and failed; the record carries the cause.
    Failed(PartitionRecord),
    /// Not started because of `--fail-fast`.
    NotStarted {
        /// Pipeline.
        pipeline: String,
        /// Day.
        day: NaiveDate,
    },
}

impl DayOutcome {
    /// The pipeline and day.
    pub fn key(&self) -> (&str, NaiveDate) {
        match self {
            DayOutcome::Done(r) | DayOutcome::Skipped(r) | DayOutcome::Failed(r) => {
                (&r.pipeline, r.day)
            }
            DayOutcome::NotStarted { pipeline, day } => (pipeline, *day),
        }
    }
}

/// A run's result: every day's outcome, and notices for people.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Outcomes, sorted by pipeline then day.
    pub outcomes: Vec<DayOutcome>,
    /// Things worth saying: reruns because the spec changed, clamped ranges.
    pub notices: Vec<String>,
    /// The credentials each opened connection used, by connection name.
    pub credentials: BTreeMap<String, crate::credentials::Source>,
}

impl RunReport {
    /// True when no day failed.
    pub fn ok(&self) -> bool {
        !self
            .outcomes
            .iter()
            .any(|o| matches!(o, DayOutcome::Failed(_) | DayOutcome::NotStarted { .. }))
    }
}

/// Everything a run needs, built once.
pub struct Engine {
    templates: Arc<Templates>,
    clock: Arc<dyn Clock>,
    ledger: Ledger,
    progress: Arc<dyn progress::Progress>,
    staging: PathBuf,
    keep_staging: bool,
}

impl Engine {
    /// An engine for `project`. `templates` render connection fields and
    /// paths with real secrets.
    pub fn new(
        project: ProjectPlan,
        templates: Arc<Templates>,
        clock: Arc<dyn Clock>,
        progress: Arc<dyn progress::Progress>,
    ) -> Result<Self, PartitionError> {
        let store = crate::sink::lake::Store::open(&project.state_url, &BTreeMap::new())
            .map_err(|e| PartitionError::fatal(format!("the ledger's store: {e}")))?;
        Ok(Self {
            staging: project.staging_dir.clone(),
            keep_staging: project.keep_staging,
            ledger: Ledger::new(store),
            templates,
            clock,
            progress,
        })
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Runs every day of every pipeline in its range.
    pub async fn run(
        &self,
        jobs: Vec<(PipelinePlan, DayRange)>,
        opts: &RunOptions,
    ) -> Result<RunReport, PartitionError> {
        let mut report = RunReport::default();
        let mut work = Vec::new();
        let mut runtimes = Vec::new();
        for (i, (plan, range)) in jobs.iter().enumerate() {
            report
                .notices
                .extend(range.notices.iter().map(|n| format!("{}: {n}", plan.name)));
            // One listing per pipeline: a catch-up over years of missing days
            // would otherwise ask the store once per day for nothing.
            let mut done = self
                .ledger
                .list(&plan.name)
                .await
                .map_err(|e| PartitionError::fatal(e.to_string()))?;
            for day in range.days() {
                match done.remove(&day) {
                    Some(r) if r.status == Status::Done && !opts.rerun && r.spec_hash == plan.spec_hash => {
                        report.outcomes.push(DayOutcome::Skipped(r));
                        continue;
                    }
                    Some(r) if r.status == Status::Done && !opts.rerun => report.notices.push(format!(
                        "{}: {day} runs again: the spec changed since it was loaded (hash {} -> {})",
                        plan.name,
                        &r.spec_hash[..12.min(r.spec_hash.len())],
                        &plan.spec_hash[..12]
                    )),
                    _ => {}
                }
                work.push((i, day));
            }
            runtimes.push(Arc::new(partition::PipelineRuntime::new(
                plan.clone(),
                self.templates.clone(),
            )));
        }

        let stop = Arc::new(AtomicBool::new(false));
        let outcomes: Vec<DayOutcome> = futures::stream::iter(work)
            .map(|(i, day)| {
                let rt = runtimes[i].clone();
                let stop = stop.clone();
                async move {
                    if stop.load(Ordering::SeqCst) {
                        return DayOutcome::NotStarted {
                            pipeline: rt.plan.name.clone(),
                            day,
                        };
                    }
                    let outcome = self.run_day(&rt, day, opts).await;
                    if opts.fail_fast && matches!(outcome, DayOutcome::Failed(_)) {
                        stop.store(true, Ordering::SeqCst);
                    }
                    outcome
                }
            })
            .buffer_unordered(opts.parallel.max(1))
            .collect()
            .await;
        report.outcomes.extend(outcomes);
        report.outcomes.sort_by(|a, b| a.key().cmp(&b.key()));
        for rt in &runtimes {
            report.credentials.extend(rt.credentials());
        }
        Ok(report)
    }

    /// Removes a done day's staging folder, and its pipeline's folder once
    /// empty. A failure is only logged: the day is done and recorded.
    fn remove_staging(&self, pipeline: &str, dir: &std::path::Path) {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(pipeline, dir = %dir.display(), error = %e, "could not remove the staging folder of a done day");
            }
        }
        // Fails while another day of the pipeline still has its folder.
        let _ = std::fs::remove_dir(self.staging.join(pipeline));
    }

    /// One day with retries, recorded in the ledger whatever happens.
    async fn run_day(
        &self,
        rt: &partition::PipelineRuntime,
        day: NaiveDate,
        opts: &RunOptions,
    ) -> DayOutcome {
        let started_at = self.clock.now();
        let bar = self.progress.start(&rt.plan.name, day);
        let mut attempts = 0;
        let dir = self.staging.join(&rt.plan.name).join(day.to_string());
        let result = loop {
            attempts += 1;
            let r = rt.run(day, &dir, bar.as_ref()).await;
            match r {
                Err(e) if e.transient && attempts <= opts.retries => {
                    let wait = opts.backoff * 2u32.pow(attempts - 1);
                    tracing::warn!(pipeline = %rt.plan.name, partition = %day, attempt = attempts, error = %e, "transient failure, retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        };
        let finished_at = self.clock.now();
        let (status, error, stats) = match result {
            Ok(stats) => (Status::Done, None, stats),
            Err(e) => {
                let mut message = e.message.clone();
                if dir.exists() {
                    message.push_str(&format!(
                        " (this day's staging files are kept in `{}`)",
                        dir.display()
                    ));
                }
                (Status::Failed, Some(message), *e.stats)
            }
        };
        let record = PartitionRecord {
            pipeline: rt.plan.name.clone(),
            day,
            status,
            spec_hash: rt.plan.spec_hash.clone(),
            engine_version: env!("CARGO_PKG_VERSION").to_owned(),
            source_count: stats.source_count,
            raw_lines: stats.raw_lines,
            raw_bytes: stats.raw_bytes,
            raw_sha256: stats.raw_sha256.clone(),
            warehouse_rows: stats.warehouse_rows,
            child_rows: stats.child_rows.clone(),
            rejected: stats.rejected.filter(|&n| n > 0),
            lake_object: stats.lake_object.clone(),
            warehouse_target: stats.warehouse_target.clone(),
            started_at,
            finished_at,
            attempts,
            error,
        };
        bar.finish(&record);
        if let Err(e) = self.ledger.put(&record).await {
            let mut failed = record;
            failed.status = Status::Failed;
            failed.error = Some(format!(
                "the partition ran, but its ledger record could not be written: {e}"
            ));
            return DayOutcome::Failed(failed);
        }
        match record.status {
            Status::Done => {
                if !self.keep_staging {
                    self.remove_staging(&rt.plan.name, &dir);
                }
                tracing::info!(pipeline = %record.pipeline, partition = %day, rows = record.warehouse_rows.unwrap_or(0), "partition loaded");
                DayOutcome::Done(record)
            }
            Status::Failed => {
                tracing::error!(pipeline = %record.pipeline, partition = %day, error = record.error.as_deref().unwrap_or(""), "partition failed");
                DayOutcome::Failed(record)
            }
        }
    }
}
