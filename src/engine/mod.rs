//! A run: many days of many pipelines, each day run under a [`lease`] so
//! that workers share a backfill, retried, recorded in the [`ledger`], and
//! stopped cleanly on a shutdown request.
//!
//! One day is one partition of one pipeline, run as stages, each a module
//! with typed inputs and outputs, called in order by [`day`]:
//! 1. [`extract`]: the day's documents, read in `_id` order, written in one
//!    pass to the raw archive (canonical Extended JSON lines, compressed,
//!    hashed) and, when step 3 cannot run beside it, a local BSON spool,
//!    the schema inferred on the way;
//! 2. [`schemas`]: each table's schema, from the data, the warehouse table
//!    and the schema lock;
//! 3. [`rows`]: the documents flattened into a local rows file per table
//!    (during the extract when the day's schemas can be told beforehand,
//!    kept if they turn out to be those; else from the spool, or without
//!    one from the local raw archive);
//! 4. the load: concurrently, the raw archive and its manifest to the lake,
//!    and the rows to the warehouse, replacing the day;
//! 5. [`reconcile`]: the source count, the raw lines and the warehouse
//!    rows checked against each other, purely;
//!
//! then [`Engine`] records the outcome in the [`ledger`]. The clients a
//! pipeline's days share are opened by [`runtime`].
//!
//! Memory stays bounded: documents stream from the cursor to files, and
//! every later step streams from those files. The clock is injected, and no
//! lake object depends on it, so reruns give byte-identical objects.

pub mod crash;
mod day;
pub mod dirty;
mod extract;
pub mod lease;
pub mod ledger;
pub mod progress;
mod reconcile;
mod rows;
mod runtime;
mod schemas;
pub mod shutdown;
#[cfg(test)]
mod tests_run;
pub mod verify;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;

pub use day::{PartitionError, Stats};
pub use extract::doc_id;
pub use ledger::{Ledger, PartitionRecord, Status};
pub use runtime::{open_store_connection, PipelineRuntime, Preview};
pub use shutdown::{Shutdown, Trigger};

use crate::plan::{DayRange, PipelinePlan, ProjectPlan};
use crate::template::Templates;

/// Where "now" comes from: ledger timings, and which day is today. No
/// lake object depends on it.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Today in `tz`: the day after the last one a catch-up runs.
    fn today(&self, tz: chrono_tz::Tz) -> NaiveDate {
        self.now().with_timezone(&tz).date_naive()
    }
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock with "today" pinned, in every timezone: `--today`
/// (`ETL_TODAY`), for tests and replays.
pub struct PinnedToday(pub NaiveDate);

impl Clock for PinnedToday {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn today(&self, _tz: chrono_tz::Tz) -> NaiveDate {
        self.0
    }
}

/// A clock that reads `at` until told otherwise: tests.
pub struct FixedClock(pub std::sync::Mutex<DateTime<Utc>>);

impl FixedClock {
    /// Stopped at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(at))
    }

    /// Moves it on by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().expect("not poisoned") += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("not poisoned")
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
    /// Only the days `etl watch` marked dirty (`etl run --dirty`).
    pub dirty_only: bool,
    /// Whether the specs' `partition.lookback` applies: a catch-up run's.
    pub lookback: bool,
    /// Redo the done days that are stale: loaded with a spec whose rows
    /// hash differs from the current one (`etl run --stale`). Without it
    /// a catch-up leaves them, and says how many there are.
    pub stale: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            rerun: false,
            parallel: 1,
            fail_fast: false,
            retries: 3,
            backoff: Duration::from_secs(1),
            dirty_only: false,
            lookback: false,
            stale: false,
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
    /// Stopped by a shutdown request; the record says so.
    Interrupted(PartitionRecord),
    /// Another worker holds the day's lease, or took it over: not run or
    /// not recorded here.
    Elsewhere {
        /// Pipeline.
        pipeline: String,
        /// Day.
        day: NaiveDate,
        /// Which worker, or what happened.
        note: String,
    },
    /// Not started because of `--fail-fast` or a shutdown request.
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
            DayOutcome::Done(r)
            | DayOutcome::Skipped(r)
            | DayOutcome::Failed(r)
            | DayOutcome::Interrupted(r) => (&r.pipeline, r.day),
            DayOutcome::NotStarted { pipeline, day }
            | DayOutcome::Elsewhere { pipeline, day, .. } => (pipeline, *day),
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
    /// Whether a shutdown request stopped the run.
    pub interrupted: bool,
    /// Done days left as they are although the spec changed what they
    /// land (stale), by pipeline and day: `etl run --stale` redoes them.
    pub stale: Vec<(String, NaiveDate)>,
}

impl RunReport {
    /// True when every day is done.
    pub fn ok(&self) -> bool {
        !self.interrupted
            && !self.outcomes.iter().any(|o| {
                matches!(
                    o,
                    DayOutcome::Failed(_)
                        | DayOutcome::Interrupted(_)
                        | DayOutcome::NotStarted { .. }
                )
            })
    }
}

/// Everything a run needs, built once.
pub struct Engine {
    templates: Arc<Templates>,
    clock: Arc<dyn Clock>,
    ledger: Ledger,
    dirty: dirty::Dirty,
    leases: lease::Leases,
    progress: Arc<dyn progress::Progress>,
    /// This run's staging folder: `<staging_dir>/<run>/`, so that two runs
    /// on one machine never share a file.
    staging: PathBuf,
    keep_staging: bool,
}

/// The file that marks a run's staging folder as in use.
const RUNNING: &str = ".running";

/// How long a day's lease lasts unless renewed; it is renewed every third
/// of that while the day runs.
const LEASE_TTL: chrono::Duration = chrono::Duration::seconds(120);

impl Engine {
    /// An engine for `project`. `templates` render connection fields and
    /// paths with real secrets.
    pub fn new(
        project: ProjectPlan,
        profile: &str,
        templates: Arc<Templates>,
        clock: Arc<dyn Clock>,
        progress: Arc<dyn progress::Progress>,
    ) -> Result<Self, PartitionError> {
        let (store, _) = runtime::open_store_connection(&templates, project.state(profile))
            .map_err(|e| PartitionError::fatal(format!("the ledger's store: {e}")))?;
        let worker = lease::worker_name(clock.now());
        // The worker's name without the host, as a folder name.
        let run = worker
            .split_once(':')
            .map_or(worker.as_str(), |(_, rest)| rest)
            .replace(':', "-");
        Ok(Self {
            staging: project.staging_dir.join(format!("run-{run}")),
            keep_staging: project.keep_staging,
            leases: lease::Leases::new(store.clone(), worker, LEASE_TTL, clock.clone()),
            dirty: dirty::Dirty::new(store.clone()),
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

    /// The dirty marks of `etl watch`.
    pub fn dirty(&self) -> &dirty::Dirty {
        &self.dirty
    }

    /// The clock the engine tells "today" by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Runs every day of every pipeline in its range. Once `shutdown` is
    /// requested no day starts, and the running ones stop and are
    /// recorded `interrupted`, their staging folders removed.
    pub async fn run(
        &self,
        jobs: Vec<(PipelinePlan, DayRange)>,
        opts: &RunOptions,
        shutdown: &Shutdown,
    ) -> Result<RunReport, PartitionError> {
        let runtimes = self.runtimes(jobs, PipelineRuntime::new);
        self.run_runtimes(runtimes, opts, shutdown).await
    }

    /// Each job's runtime, made by `make` (read MongoDB, or replay).
    fn runtimes(
        &self,
        jobs: Vec<(PipelinePlan, DayRange)>,
        make: fn(PipelinePlan, Arc<Templates>) -> PipelineRuntime,
    ) -> Vec<(Arc<PipelineRuntime>, DayRange)> {
        jobs.into_iter()
            .map(|(plan, range)| (Arc::new(make(plan, self.templates.clone())), range))
            .collect()
    }

    /// [`Self::run`], reading each day back from the lake's raw object
    /// instead of MongoDB (`etl replay`): the raw objects and manifests
    /// are left as they are, and the warehouse partitions replaced.
    pub async fn replay(
        &self,
        jobs: Vec<(PipelinePlan, DayRange)>,
        opts: &RunOptions,
        shutdown: &Shutdown,
    ) -> Result<RunReport, PartitionError> {
        let runtimes = self.runtimes(jobs, PipelineRuntime::replay);
        self.run_runtimes(runtimes, opts, shutdown).await
    }

    /// [`Self::run`] with the pipelines' runtimes built: tests give theirs
    /// clients of their own ([`PipelineRuntime::with_source`]).
    pub(crate) async fn run_runtimes(
        &self,
        jobs: Vec<(Arc<PipelineRuntime>, DayRange)>,
        opts: &RunOptions,
        shutdown: &Shutdown,
    ) -> Result<RunReport, PartitionError> {
        self.begin_staging();
        let report = self.run_jobs(jobs, opts, shutdown).await;
        self.end_staging();
        report
    }

    /// Marks this run's staging folder as in use (`.running`, removed when
    /// the run ends, even with failed days kept for inspection), and
    /// removes the folders of runs of this machine that were killed: still
    /// marked, and their process gone.
    fn begin_staging(&self) {
        if let Some(root) = self.staging.parent() {
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
                let dir = entry.path();
                if dir == self.staging || !dir.join(RUNNING).exists() {
                    continue;
                }
                let name = entry.file_name();
                if lease::staging_run_is_gone(&name.to_string_lossy()) {
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => {
                            tracing::info!(dir = %dir.display(), "removed the staging folder of a run that was killed")
                        }
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the staging folder of a run that was killed")
                        }
                    }
                }
            }
        }
        if let Err(e) = std::fs::create_dir_all(&self.staging)
            .and_then(|()| std::fs::write(self.staging.join(RUNNING), b""))
        {
            tracing::warn!(dir = %self.staging.display(), error = %e, "cannot mark the staging folder in use");
        }
    }

    /// Unmarks this run's staging folder, and removes it when empty.
    fn end_staging(&self) {
        let _ = std::fs::remove_file(self.staging.join(RUNNING));
        let _ = std::fs::remove_dir(&self.staging);
    }

    async fn run_jobs(
        &self,
        jobs: Vec<(Arc<PipelineRuntime>, DayRange)>,
        opts: &RunOptions,
        shutdown: &Shutdown,
    ) -> Result<RunReport, PartitionError> {
        let mut report = RunReport::default();
        let mut work = Vec::new();
        let mut runtimes = Vec::new();
        for (i, (rt, range)) in jobs.iter().enumerate() {
            let plan = &rt.plan;
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
            // A replay reads the lake, which a change has not reached yet:
            // it neither redoes nor clears dirty days.
            let dirty = if rt.replay {
                BTreeMap::new()
            } else {
                self.dirty.days(&plan.name).await.map_err(|e| {
                    PartitionError::fatal(format!("the dirty marks of `etl watch`: {e}"))
                })?
            };
            let lookback = plan.partition.lookback;
            let looks_back = |day: NaiveDate| {
                opts.lookback
                    && day < range.end
                    && (range.end - day).num_days() <= i64::from(lookback)
            };
            // Done days recorded before the rows hash, with the same whole
            // spec: their records get the rows hash, so that a later edit
            // of a field it leaves out does not make them stale.
            let mut upgraded = Vec::new();
            let stale_before = report.stale.len();
            for day in range.days() {
                let marks = dirty.get(&day);
                if opts.dirty_only && marks.is_none() {
                    continue;
                }
                let force = marks.is_some() || looks_back(day);
                match done.remove(&day) {
                    Some(r) if r.status == Status::Done && !opts.rerun => {
                        let fresh = plan.lands_as_recorded(&r.spec_hash);
                        if fresh && !force {
                            if !r.spec_hash.starts_with(crate::plan::ROWS_HASH_PREFIX) {
                                upgraded.push(r.clone());
                            }
                            report.outcomes.push(DayOutcome::Skipped(r));
                            continue;
                        }
                        if !fresh && !force && !opts.stale {
                            // A spec edit that changes rows does not redo
                            // history unasked (issue 29): the day is stale.
                            report.stale.push((plan.name.clone(), day));
                            report.outcomes.push(DayOutcome::Skipped(r));
                            continue;
                        }
                        report.notices.push(match marks {
                            _ if !fresh => format!(
                                "{}: {day} runs again: it is stale, the spec changed what it lands since it was loaded (hash {} -> {})",
                                plan.name,
                                short_hash(&r.spec_hash),
                                short_hash(&plan.spec_hash)
                            ),
                            Some(m) => format!(
                                "{}: {day} runs again: `etl watch` saw {} change{} since it was loaded",
                                plan.name,
                                m.changes,
                                if m.changes == 1 { "" } else { "s" }
                            ),
                            None => format!(
                                "{}: {day} runs again: it is within the spec's lookback of {lookback} day{}",
                                plan.name,
                                if lookback == 1 { "" } else { "s" }
                            ),
                        });
                    }
                    _ => {}
                }
                work.push((i, day, force));
            }
            let stale = report.stale.len() - stale_before;
            if stale > 0 {
                report
                    .notices
                    .push(stale_notice(rt, stale, &report.stale[stale_before..]));
            }
            for mut r in upgraded {
                r.spec_hash = plan.spec_hash.clone();
                if let Err(e) = self.ledger.put(&r).await {
                    tracing::warn!(pipeline = %plan.name, partition = %r.day, error = %e, "could not add the rows hash to a done day's record; it is tried again next run");
                }
            }
            runtimes.push(rt.clone());
        }

        let stop = Arc::new(AtomicBool::new(false));
        let outcomes: Vec<DayOutcome> = futures::stream::iter(work)
            .map(|(i, day, force)| {
                let rt = runtimes[i].clone();
                let stop = stop.clone();
                async move {
                    if stop.load(Ordering::SeqCst) || shutdown.is_requested() {
                        return DayOutcome::NotStarted {
                            pipeline: rt.plan.name.clone(),
                            day,
                        };
                    }
                    let outcome = self.run_day(&rt, day, opts, shutdown, force).await;
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
        report.interrupted = shutdown.is_requested();
        report.outcomes.sort_by(|a, b| a.key().cmp(&b.key()));
        for rt in &runtimes {
            report.credentials.extend(rt.credentials());
        }
        Ok(report)
    }

    /// Removes a day's staging folder, and its pipeline's and this run's
    /// folders once empty. A failure is only logged: the day is recorded.
    fn remove_staging(&self, pipeline: &str, dir: &std::path::Path) {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(pipeline, dir = %dir.display(), error = %e, "could not remove the staging folder of a done day");
            }
        }
        // Each fails while another day still has its folder.
        let _ = std::fs::remove_dir(self.staging.join(pipeline));
        let _ = std::fs::remove_dir(&self.staging);
    }

    /// One day, run under its lease: skipped when another worker holds
    /// the day or has finished it since this run read the ledger, unless
    /// `force` (dirty, or within the lookback). Once it is done, the dirty
    /// marks listed before it started are removed.
    async fn run_day(
        &self,
        rt: &PipelineRuntime,
        day: NaiveDate,
        opts: &RunOptions,
        shutdown: &Shutdown,
        force: bool,
    ) -> DayOutcome {
        let pipeline = rt.plan.name.clone();
        let acquired = with_retries(
            opts,
            || async {
                self.leases
                    .acquire(&pipeline, day)
                    .await
                    .map_err(|e| state_error("take the day's lease", &e))
            },
            |attempt, e, wait| {
                tracing::warn!(%pipeline, partition = %day, attempt, error = %e, "the state store failed, retrying in {wait:?}");
            },
        )
        .await;
        let mut lease = match acquired {
            Ok(lease::Acquired::Held(l)) => l,
            Ok(lease::Acquired::Busy(holder)) => {
                tracing::info!(%pipeline, partition = %day, owner = %holder.owner, until = %holder.expires_at, "another worker runs this day: skipped");
                return DayOutcome::Elsewhere {
                    pipeline,
                    day,
                    note: format!(
                        "run by {} (its lease lasts until {})",
                        holder.owner,
                        holder.expires_at.to_rfc3339()
                    ),
                };
            }
            Err(e) => {
                let now = self.clock.now();
                let mut record =
                    self.record(rt, day, Status::Failed, Stats::default(), (now, now, 0));
                record.error = Some(format!("{}; the day did not start", e.message));
                return self.record_failure(record).await;
            }
        };
        // Listed before the extract: a change after this point may be
        // missed by it, and its mark stays for the next run.
        let marks = if rt.replay {
            dirty::DayMarks::default()
        } else {
            match self.dirty.day(&pipeline, day).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(%pipeline, partition = %day, error = %e, "could not list the day's dirty marks; they stay for the next run");
                    dirty::DayMarks::default()
                }
            }
        };
        if !opts.rerun && !force && marks.is_empty() {
            // Done by another worker since this run listed the ledger.
            if let Ok(Some(r)) = self.ledger.get(&pipeline, day).await {
                if r.status == Status::Done && rt.plan.lands_as_recorded(&r.spec_hash) {
                    let _ = self.leases.release(lease).await;
                    return DayOutcome::Skipped(r);
                }
            }
        }
        let outcome = self.run_leased(rt, day, opts, shutdown, &mut lease).await;
        if matches!(outcome, DayOutcome::Done(_)) && !marks.is_empty() {
            if let Err(e) = self.dirty.clear(&marks).await {
                tracing::warn!(%pipeline, partition = %day, error = %e, "the day is done, but its dirty marks could not be removed: the next run redoes it");
            }
        }
        if let Err(e) = self.leases.release(lease).await {
            tracing::warn!(%pipeline, partition = %day, error = %e, "could not release the day's lease; it expires by itself");
        }
        outcome
    }

    /// Renews `lease` while the day runs; returns why it was lost.
    async fn keep_lease(&self, lease: &mut lease::Lease) -> LeaseLost {
        let every = (self.leases.ttl() / 3)
            .to_std()
            .unwrap_or(Duration::from_secs(40));
        loop {
            tokio::time::sleep(every).await;
            match self.leases.renew(lease).await {
                Ok(true) => {}
                Ok(false) => return LeaseLost::Taken,
                Err(e) if self.clock.now() >= lease.expires_at => {
                    return LeaseLost::Unrenewable(format!(
                        "the day's lease could not be renewed in the state store before it expired: {e}; the day was stopped, and the next run does it again"
                    ))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew a day's lease; trying again");
                }
            }
        }
    }

    /// The ledger record of a day.
    fn record(
        &self,
        rt: &PipelineRuntime,
        day: NaiveDate,
        status: Status,
        stats: Stats,
        (started_at, finished_at, attempts): (DateTime<Utc>, DateTime<Utc>, u32),
    ) -> PartitionRecord {
        PartitionRecord {
            pipeline: rt.plan.name.clone(),
            day,
            status,
            spec_hash: rt.plan.spec_hash.clone(),
            engine_version: env!("CARGO_PKG_VERSION").to_owned(),
            source_count: stats.source_count,
            raw_lines: stats.raw_lines,
            raw_bytes: stats.raw_bytes,
            raw_sha256: stats.raw_sha256,
            warehouse_rows: stats.warehouse_rows,
            child_rows: stats.child_rows,
            rejected: stats.rejected.filter(|&n| n > 0),
            unconverted: stats.unconverted,
            lake_object: stats.lake_object,
            warehouse_target: stats.warehouse_target,
            started_at,
            finished_at,
            attempts,
            error: None,
        }
    }

    /// A day that failed on the state store: its `failed` record is
    /// written if the store takes it now (once, without retries: the
    /// store just failed them), and the outcome says when it did not.
    async fn record_failure(&self, mut record: PartitionRecord) -> DayOutcome {
        if let Err(e) = self.ledger.put(&record).await {
            let error = record.error.get_or_insert_with(String::new);
            error.push_str(&format!(
                " (its `failed` ledger record could not be written either: {e})"
            ));
        }
        tracing::error!(pipeline = %record.pipeline, partition = %record.day, error = record.error.as_deref().unwrap_or(""), "partition failed");
        DayOutcome::Failed(record)
    }

    /// One day with retries, recorded in the ledger whatever happens,
    /// unless the day's lease was lost to another worker meanwhile.
    async fn run_leased(
        &self,
        rt: &PipelineRuntime,
        day: NaiveDate,
        opts: &RunOptions,
        shutdown: &Shutdown,
        lease: &mut lease::Lease,
    ) -> DayOutcome {
        let started_at = self.clock.now();
        let bar = self.progress.start(&rt.plan.name, day);
        let dir = self.staging.join(&rt.plan.name).join(day.to_string());
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let (counter, staging, shown) = (&attempts, dir.as_path(), bar.as_ref());
        let tries = with_retries(
            opts,
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
                rt.run(day, staging, shown)
            },
            |attempt, e, wait| {
                tracing::warn!(pipeline = %rt.plan.name, partition = %day, attempt, error = %e, "transient failure, retrying in {wait:?}");
            },
        );
        let result = tokio::select! {
            r = tries => Some(r),
            () = shutdown.requested() => None,
            lost = self.keep_lease(lease) => {
                self.remove_staging(&rt.plan.name, &dir);
                let why = match lost {
                    LeaseLost::Taken => {
                        return DayOutcome::Elsewhere {
                            pipeline: rt.plan.name.clone(),
                            day,
                            note: "stopped: another worker took the day over".to_owned(),
                        };
                    }
                    LeaseLost::Unrenewable(why) => why,
                };
                let attempts = attempts.load(Ordering::SeqCst);
                let mut record = self.record(rt, day, Status::Failed, Stats::default(), (started_at, self.clock.now(), attempts));
                record.error = Some(why);
                bar.finish(&record);
                return self.record_failure(record).await;
            }
        };
        let attempts = attempts.load(Ordering::SeqCst);
        let finished_at = self.clock.now();
        let (status, error, stats) = match result {
            Some(Ok(stats)) => (Status::Done, None, stats),
            None => {
                // What the stopped day left is of no use to its rerun.
                self.remove_staging(&rt.plan.name, &dir);
                (
                    Status::Interrupted,
                    Some("interrupted by a shutdown request (Ctrl-C or SIGTERM) before it finished; the next run does it again".to_owned()),
                    Stats::default(),
                )
            }
            Some(Err(e)) => {
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
        let mut record = self.record(rt, day, status, stats, (started_at, finished_at, attempts));
        record.error = error;
        bar.finish(&record);
        // Only a lease that another worker holds now leaves the day to it:
        // a state store that cannot tell is a failure of this day, never
        // taken for another worker (issue 29).
        let held = with_retries(
            opts,
            || async {
                self.leases
                    .holds(lease)
                    .await
                    .map_err(|e| state_error("check the day's lease", &e))
            },
            |attempt, e, wait| {
                tracing::warn!(pipeline = %rt.plan.name, partition = %day, attempt, error = %e, "the state store failed, retrying in {wait:?}");
            },
        )
        .await;
        match held {
            Ok(true) => {}
            Ok(false) => {
                // The worker that took the day over records it.
                return DayOutcome::Elsewhere {
                    pipeline: rt.plan.name.clone(),
                    day,
                    note: "not recorded: another worker took the day over before it ended"
                        .to_owned(),
                };
            }
            Err(e) => {
                let mut failed = record;
                failed.status = Status::Failed;
                failed.error = Some(format!(
                    "the day ran, but {}; whether another worker took it over is not known, so it is not recorded done, and the next run does it again",
                    e.message
                ));
                return self.record_failure(failed).await;
            }
        }
        let put = with_retries(
            opts,
            || async {
                self.ledger
                    .put(&record)
                    .await
                    .map_err(|e| state_error("write the day's ledger record", &e))
            },
            |attempt, e, wait| {
                tracing::warn!(pipeline = %rt.plan.name, partition = %day, attempt, error = %e, "the state store failed, retrying in {wait:?}");
            },
        )
        .await;
        if let Err(e) = put {
            let mut failed = record;
            failed.status = Status::Failed;
            failed.error = Some(format!(
                "the day ran, but {}; the next run does it again",
                e.message
            ));
            tracing::error!(pipeline = %failed.pipeline, partition = %day, error = failed.error.as_deref().unwrap_or(""), "partition failed");
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
            Status::Interrupted => {
                tracing::warn!(pipeline = %record.pipeline, partition = %day, "partition interrupted");
                DayOutcome::Interrupted(record)
            }
        }
    }
}

/// The first 12 hex digits of a hash, after its version prefix.
fn short_hash(hash: &str) -> &str {
    let hex = hash.rsplit(':').next().unwrap_or(hash);
    &hex[..12.min(hex.len())]
}

/// What a catch-up says of the `count` stale days `days` (all of one
/// pipeline, in order) it left: how many, and the two commands that redo
/// them.
fn stale_notice(rt: &PipelineRuntime, count: usize, days: &[(String, NaiveDate)]) -> String {
    let (first, last) = (days[0].1, days[days.len() - 1].1);
    let file = rt.plan.file.display();
    let span = if first == last {
        format!("{first}")
    } else {
        format!("{first} to {last}")
    };
    format!(
        "{}: {count} done day{} stale ({span}): the spec changed what they land since they were loaded, and a catch-up does not redo them; redo them with `etl run --stale {file}` (from MongoDB) or `etl replay --start {first} --end {last} {file}` (from the lake)",
        rt.plan.name,
        if count == 1 { " is" } else { "s are" },
    )
}

/// Why a day's lease was lost while the day ran.
enum LeaseLost {
    /// Another worker holds it now: the day is its.
    Taken,
    /// The state store failed until the lease expired: the day failed.
    Unrenewable(String),
}

/// A state store failure on a day's lease or ledger record: transient,
/// with the store's own error (which names the object and the store).
fn state_error(what: &str, e: &crate::sink::lake::LakeError) -> PartitionError {
    PartitionError {
        message: format!("could not {what} in the state store: {e}"),
        transient: true,
        stats: Box::default(),
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `opts.retries`
/// retries are spent. After a transient failure it waits `opts.backoff`,
/// doubled on each retry, telling `on_retry` first.
async fn with_retries<T, F, Fut>(
    opts: &RunOptions,
    mut attempt: F,
    mut on_retry: impl FnMut(u32, &PartitionError, Duration),
) -> Result<T, PartitionError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PartitionError>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match attempt().await {
            Err(e) if e.transient && attempts <= opts.retries => {
                let wait = opts.backoff * 2u32.pow(attempts - 1);
                on_retry(attempts, &e, wait);
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(transient: bool) -> PartitionError {
        let mut e = PartitionError::fatal("the server went away");
        e.transient = transient;
        e
    }

    /// Transient failures wait 1 s, 2 s, 4 s (virtual time) and stop once
    /// the retries are spent; the last error is the one returned.
    #[tokio::test(start_paused = true)]
    async fn transient_failures_back_off_doubling_until_retries_run_out() {
        let opts = RunOptions {
            retries: 3,
            backoff: Duration::from_secs(1),
            ..Default::default()
        };
        let started = tokio::time::Instant::now();
        let mut waits = Vec::new();
        let mut calls = 0;
        let r: Result<(), _> = with_retries(
            &opts,
            || {
                calls += 1;
                async { Err(failing(true)) }
            },
            |_, _, wait| waits.push(wait),
        )
        .await;
        assert_eq!(r.unwrap_err().message, "the server went away");
        assert_eq!(calls, 4, "one attempt and three retries");
        assert_eq!(waits, [1, 2, 4].map(Duration::from_secs));
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried_and_success_stops_retrying() {
        let opts = RunOptions::default();
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let r: Result<(), _> = with_retries(
            &opts,
            || {
                calls += 1;
                async { Err(failing(false)) }
            },
            |_, _, _| {},
        )
        .await;
        assert!(r.is_err());
        assert_eq!((calls, started.elapsed()), (1, Duration::ZERO));

        let mut calls = 0;
        let r = with_retries(
            &opts,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(failing(true))
                    } else {
                        Ok(n)
                    }
                }
            },
            |_, _, _| {},
        )
        .await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(3),
            "waited 1 s then 2 s"
        );
    }

    #[test]
    fn a_pinned_today_holds_in_every_timezone() {
        let day: NaiveDate = "2026-11-23".parse().unwrap();
        let clock = PinnedToday(day);
        for tz in [
            chrono_tz::UTC,
            chrono_tz::Pacific::Kiritimati,
            chrono_tz::Pacific::Pago_Pago,
        ] {
            assert_eq!(clock.today(tz), day);
        }
        let fixed = FixedClock::at("2026-11-23T23:30:00Z".parse().unwrap());
        assert_eq!(fixed.today(chrono_tz::UTC), day);
        assert_eq!(
            fixed.today(chrono_tz::Europe::Paris).to_string(),
            "2026-11-24",
            "half past midnight in Paris"
        );
        fixed.advance(chrono::Duration::hours(1));
        assert_eq!(fixed.today(chrono_tz::UTC).to_string(), "2026-11-24");
    }
}
