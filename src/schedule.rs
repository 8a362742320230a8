//! `etl schedule`: a daemon that runs each pipeline when its cron falls due.
//!
//! It keeps no state of its own. The ledger says which days are done, so a
//! due run is a catch-up: every day from the spec's `start_date` to
//! yesterday that the ledger does not have as done. That makes a daemon
//! that was down catch up when it starts, a missed fire harmless, and two
//! daemons on one ledger safe (the engine's leases split the days).
//!
//! Time comes from a [`Timeline`], so tests let days pass in milliseconds;
//! what runs the days is a [`Runner`], the engine in `etl schedule`.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use futures::future::BoxFuture;

use crate::engine::{DayOutcome, RunReport, Shutdown};

/// Where the daemon's "now" comes from, and how it waits.
pub trait Timeline: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Resolves once [`Self::now`] has reached `at`.
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()>;
}

/// The system clock.
pub struct SystemTimeline;

/// The longest single sleep: a wall clock that jumps (NTP, a suspended
/// machine) delays a due run by at most this.
const LONGEST_SLEEP: std::time::Duration = std::time::Duration::from_secs(60);

impl Timeline for SystemTimeline {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            while let Ok(left) = (at - Utc::now()).to_std() {
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(LONGEST_SLEEP)).await;
            }
        })
    }
}

/// Time that starts at `origin` and runs `speed` times faster than the
/// process's monotonic clock: `etl schedule --clock-start --clock-speed`,
/// so that a test sees days pass in seconds.
pub struct ScaledTimeline {
    origin: DateTime<Utc>,
    started: tokio::time::Instant,
    speed: f64,
}

impl ScaledTimeline {
    /// Starts now, at `origin`.
    pub fn new(origin: DateTime<Utc>, speed: f64) -> Self {
        assert!(speed > 0.0, "a timeline runs forwards");
        Self {
            origin,
            started: tokio::time::Instant::now(),
            speed,
        }
    }
}

impl Timeline for ScaledTimeline {
    fn now(&self) -> DateTime<Utc> {
        let real = self.started.elapsed().as_secs_f64();
        self.origin + chrono::Duration::microseconds((real * self.speed * 1e6) as i64)
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // The instant of the monotonic clock at which `now()` reaches
            // `at`, plus a microsecond against rounding down.
            let virtual_secs =
                (at - self.origin).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
            let real = std::time::Duration::from_secs_f64((virtual_secs / self.speed).max(0.0))
                + std::time::Duration::from_micros(1);
            tokio::time::sleep_until(self.started + real).await;
        })
    }
}

/// The engine's clock under a daemon: "today" follows the timeline, while
/// ledger timings and lease expiries stay on the system clock, which other
/// workers read too.
pub struct TodayOf(pub Arc<dyn Timeline>);

impl crate::engine::Clock for TodayOf {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn today(&self, tz: Tz) -> NaiveDate {
        self.0.now().with_timezone(&tz).date_naive()
    }
}

/// One pipeline's schedule.
pub struct Entry {
    /// The pipeline.
    pub pipeline: String,
    /// Its cron, as written.
    pub cron_text: String,
    cron: croner::Cron,
    /// The timezone its cron and days are in.
    pub tz: Tz,
}

impl Entry {
    /// `cron` in `tz`; the error is croner's, for a cron `etl validate`
    /// would have refused.
    pub fn new(pipeline: &str, cron: &str, tz: Tz) -> Result<Self, String> {
        let parsed = croner::Cron::new(cron)
            .parse()
            .map_err(|e| format!("{pipeline}: invalid cron `{cron}`: {e}"))?;
        Ok(Self {
            pipeline: pipeline.to_owned(),
            cron_text: cron.to_owned(),
            cron: parsed,
            tz,
        })
    }

    /// The first fire strictly after `after`.
    pub fn next_fire(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.tz), false)
            .map(|t| t.with_timezone(&Utc))
            // croner only fails past year 5000 or for a pattern that never
            // matches (such as 30 February); neither falls due.
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The last day a run at `at` loads: the day before `at`'s, in the
    /// pipeline's timezone (today's data is still arriving).
    pub fn day_loaded_at(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz)
            .date_naive()
            .pred_opt()
            .unwrap_or(NaiveDate::MIN)
    }
}

/// Runs the due pipelines' days: the engine, or a recording fake in tests.
pub trait Runner: Send + Sync {
    /// Runs a catch-up of the pipelines at `due` (indexes into the
    /// daemon's entries) as of `now`, stopping on `shutdown`.
    fn run<'a>(
        &'a self,
        due: &'a [usize],
        now: DateTime<Utc>,
        shutdown: &'a Shutdown,
    ) -> BoxFuture<'a, Result<RunReport, String>>;
}

/// Why a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The daemon started: the days missed while it was down.
    Start,
    /// The cron fell due.
    Cron,
    /// A retry of a run that failed.
    Retry,
}

/// Each decision the daemon takes, for its log.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Started with these pipelines.
    Started {
        /// How many pipelines.
        pipelines: usize,
        /// When.
        at: DateTime<Utc>,
    },
    /// A pipeline's next run.
    Next {
        /// Pipeline.
        pipeline: String,
        /// When it falls due.
        at: DateTime<Utc>,
        /// Its cron and timezone.
        cron: String,
        /// The last day it will load.
        loads: NaiveDate,
    },
    /// A run starts.
    Due {
        /// Pipeline.
        pipeline: String,
        /// Why.
        reason: Reason,
        /// When it fell due (for a cron), or now.
        at: DateTime<Utc>,
        /// Fires skipped because a run was still going when they fell due.
        missed: u32,
        /// The last day it loads.
        through: NaiveDate,
    },
    /// A run ended for a pipeline.
    Ran {
        /// Pipeline.
        pipeline: String,
        /// Days done by this run.
        done: Vec<NaiveDate>,
        /// Days already done.
        skipped: usize,
        /// Days that failed, with their errors.
        failed: Vec<(NaiveDate, String)>,
        /// Days another worker holds.
        elsewhere: usize,
    },
    /// A failed run is tried again at `at`.
    Retry {
        /// Pipeline.
        pipeline: String,
        /// When.
        at: DateTime<Utc>,
        /// Which retry, of how many.
        attempt: u32,
        /// Out of.
        of: u32,
    },
    /// The retries are spent; the next cron fire tries again.
    GaveUp {
        /// Pipeline.
        pipeline: String,
        /// The next fire.
        next: DateTime<Utc>,
    },
    /// A run could not start at all (the ledger's store, say).
    RunError {
        /// The error.
        error: String,
    },
    /// Stopped on request.
    Stopped {
        /// Whether a run was going and its days were recorded `interrupted`.
        interrupted: bool,
    },
}

fn days(days: &[NaiveDate]) -> String {
    match days {
        [] => "none".to_owned(),
        [d] => d.to_string(),
        [first, .., last] => format!("{} days, {first}..{last}", days.len()),
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Started { pipelines, at } => write!(
                f,
                "schedule: started at {} with {pipelines} pipeline(s); catching up the days missed so far",
                at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            Event::Next {
                pipeline,
                at,
                cron,
                loads,
            } => write!(
                f,
                "{pipeline}: next run at {at} ({cron}); it loads through {loads}"
            ),
            Event::Due {
                pipeline,
                reason,
                at,
                missed,
                through,
            } => {
                let why = match reason {
                    Reason::Start => "catch-up on start".to_owned(),
                    Reason::Cron => format!("due at {at}"),
                    Reason::Retry => "retry".to_owned(),
                };
                write!(f, "{pipeline}: {why}: running every day not done through {through}")?;
                if *missed > 0 {
                    write!(
                        f,
                        " ({missed} earlier fire(s) fell while a run was going; this run covers them)"
                    )?;
                }
                Ok(())
            }
            Event::Ran {
                pipeline,
                done,
                skipped,
                failed,
                elsewhere,
            } => {
                write!(
                    f,
                    "{pipeline}: done {}; {skipped} already done; {} failed",
                    days(done),
                    failed.len()
                )?;
                if *elsewhere > 0 {
                    write!(f, "; {elsewhere} left to other workers")?;
                }
                for (day, error) in failed {
                    write!(f, "\n  failed {day}: {error}")?;
                }
                Ok(())
            }
            Event::Retry {
                pipeline,
                at,
                attempt,
                of,
            } => write!(f, "{pipeline}: retry {attempt} of {of} at {at}"),
            Event::GaveUp { pipeline, next } => write!(
                f,
                "{pipeline}: retries spent; the failed days run again at the next fire, {next}"
            ),
            Event::RunError { error } => write!(f, "schedule: the run could not start: {error}"),
            Event::Stopped { interrupted } => {
                write!(f, "schedule: stopped")?;
                if *interrupted {
                    write!(
                        f,
                        "; the running days were recorded `interrupted` and run at the next start"
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// How failed runs are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// Retries after a failed run, before the next fire.
    pub times: u32,
    /// Wait before each.
    pub delay: chrono::Duration,
}

/// Per pipeline: its next fire and its pending retry.
struct State {
    next: DateTime<Utc>,
    retry: Option<(DateTime<Utc>, u32)>,
    /// The next fire last logged, so that each is logged once.
    announced: Option<DateTime<Utc>>,
}

/// The daemon: its pipelines, its time and its retries.
pub struct Daemon {
    entries: Vec<Entry>,
    timeline: Arc<dyn Timeline>,
    retries: Retries,
}

impl Daemon {
    /// A daemon over `entries`.
    pub fn new(entries: Vec<Entry>, timeline: Arc<dyn Timeline>, retries: Retries) -> Self {
        Self {
            entries,
            timeline,
            retries,
        }
    }

    /// Runs until `shutdown` is requested: a catch-up first, then each
    /// pipeline when its cron falls due. Every decision goes to `log`.
    pub async fn run(
        &self,
        runner: &dyn Runner,
        shutdown: &Shutdown,
        log: &mut (dyn FnMut(Event) + Send),
    ) {
        let now = self.timeline.now();
        log(Event::Started {
            pipelines: self.entries.len(),
            at: now,
        });
        let mut states: Vec<State> = self
            .entries
            .iter()
            .map(|e| State {
                next: e.next_fire(now),
                retry: None,
                announced: None,
            })
            .collect();
        let all: Vec<(usize, Reason, DateTime<Utc>, u32)> = (0..self.entries.len())
            .map(|i| (i, Reason::Start, now, 0))
            .collect();
        if self.run_due(runner, &all, &mut states, shutdown, log).await {
            return;
        }
        loop {
            for (e, s) in self.entries.iter().zip(states.iter_mut()) {
                if s.retry.is_none() && s.announced != Some(s.next) {
                    s.announced = Some(s.next);
                    log(Event::Next {
                        pipeline: e.pipeline.clone(),
                        at: s.next,
                        cron: format!("cron `{}`, {}", e.cron_text, e.tz),
                        loads: e.day_loaded_at(s.next),
                    });
                }
            }
            let wake = states
                .iter()
                .map(|s| s.retry.map_or(s.next, |(at, _)| at.min(s.next)))
                .min()
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            tokio::select! {
                _ = self.timeline.sleep_until(wake) => {}
                _ = shutdown.requested() => {
                    log(Event::Stopped { interrupted: false });
                    return;
                }
            }
            let now = self.timeline.now();
            let mut due = Vec::new();
            for (i, (e, s)) in self.entries.iter().zip(states.iter_mut()).enumerate() {
                if s.next <= now {
                    // Fires that fell while the last run was going are
                    // covered by this one: a run is a catch-up.
                    let mut fell = s.next;
                    let mut missed = 0;
                    let mut next = e.next_fire(fell);
                    while next <= now {
                        missed += 1;
                        fell = next;
                        next = e.next_fire(next);
                    }
                    s.next = next;
                    s.retry = None;
                    due.push((i, Reason::Cron, fell, missed));
                } else if s.retry.is_some_and(|(at, _)| at <= now) {
                    due.push((i, Reason::Retry, now, 0));
                }
            }
            if !due.is_empty() && self.run_due(runner, &due, &mut states, shutdown, log).await {
                return;
            }
        }
    }

    /// Runs `due`, logs each pipeline's outcome and sets its retries.
    /// True when a shutdown stopped it.
    async fn run_due(
        &self,
        runner: &dyn Runner,
        due: &[(usize, Reason, DateTime<Utc>, u32)],
        states: &mut [State],
        shutdown: &Shutdown,
        log: &mut (dyn FnMut(Event) + Send),
    ) -> bool {
        let now = self.timeline.now();
        for &(i, reason, at, missed) in due {
            let e = &self.entries[i];
            log(Event::Due {
                pipeline: e.pipeline.clone(),
                reason,
                at,
                missed,
                through: e.day_loaded_at(now),
            });
        }
        let indexes: Vec<usize> = due.iter().map(|d| d.0).collect();
        let report = runner.run(&indexes, now, shutdown).await;
        if shutdown.is_requested() {
            log(Event::Stopped {
                interrupted: report.as_ref().is_ok_and(|r| r.interrupted),
            });
            return true;
        }
        let report = match report {
            Ok(r) => r,
            Err(error) => {
                log(Event::RunError { error });
                RunReport::default()
            }
        };
        let failed_all = report.outcomes.is_empty();
        let now = self.timeline.now();
        for &(i, reason, _, _) in due {
            let e = &self.entries[i];
            let (mut done, mut skipped, mut failed, mut elsewhere) = (Vec::new(), 0, Vec::new(), 0);
            for o in report.outcomes.iter().filter(|o| o.key().0 == e.pipeline) {
                match o {
                    DayOutcome::Done(r) => done.push(r.day),
                    DayOutcome::Skipped(_) => skipped += 1,
                    DayOutcome::Failed(r) => failed.push((
                        r.day,
                        r.error.clone().unwrap_or_else(|| "unknown error".into()),
                    )),
                    DayOutcome::Interrupted(r) => failed.push((r.day, "interrupted".into())),
                    DayOutcome::NotStarted { day, .. } => failed.push((*day, "not started".into())),
                    DayOutcome::Elsewhere { .. } => elsewhere += 1,
                }
            }
            let failing = !failed.is_empty() || failed_all;
            if !failed_all {
                log(Event::Ran {
                    pipeline: e.pipeline.clone(),
                    done,
                    skipped,
                    failed,
                    elsewhere,
                });
            }
            let s = &mut states[i];
            if !failing {
                s.retry = None;
                continue;
            }
            let attempt = match (reason, s.retry) {
                (Reason::Retry, Some((_, n))) => n + 1,
                _ => 1,
            };
            if attempt <= self.retries.times {
                let at = now + self.retries.delay;
                s.retry = Some((at, attempt));
                log(Event::Retry {
                    pipeline: e.pipeline.clone(),
                    at,
                    attempt,
                    of: self.retries.times,
                });
            } else {
                s.retry = None;
                log(Event::GaveUp {
                    pipeline: e.pipeline.clone(),
                    next: s.next,
                });
            }
        }
        false
    }
}

#[cfg(test)]
mod tests;
