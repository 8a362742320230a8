//! `etl schedule`: the daemon of [`crate::schedule`], with the engine as
//! its runner and SIGTERM as its stop.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::run::{init_logging, open_secrets, shutdown_on_signal, LogFormat};
use super::{load_plans, Context};
use crate::engine::{Engine, PipelineRuntime, RunOptions, RunReport, Shutdown};
use crate::exit::Exit;
use crate::plan::{resolve_range, RangeRequest};
use crate::schedule::{Daemon, Entry, Retries, Runner, ScaledTimeline, SystemTimeline, Timeline};

/// `etl schedule`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs. Each runs on its own `schedule` (cron).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Partitions to run at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    /// Extra attempts, within a run, for a partition that fails with a
    /// transient error. (A run with failed days is tried again later:
    /// the project's `defaults.retries` times, `retry_delay_seconds`
    /// apart.)
    #[arg(long, default_value_t = 3)]
    pub retries: u32,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Starts the daemon's clock at this instant instead of now (tests).
    #[arg(long, value_name = "RFC3339", hide = true)]
    pub clock_start: Option<DateTime<Utc>>,

    /// How much faster than the wall clock the daemon's clock runs, with
    /// `--clock-start`: 86400 makes a day pass in a second (tests).
    #[arg(long, default_value_t = 1.0, requires = "clock_start", hide = true)]
    pub clock_speed: f64,
}

/// `etl schedule`.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    init_logging(args.log_format, false);
    if ctx.today.is_some() {
        eprintln!("error: `etl schedule` follows the clock, so `--today` (ETL_TODAY) cannot pin it\n\nhint: unset ETL_TODAY");
        return Ok(Exit::Usage);
    }
    if !(args.clock_speed.is_finite() && args.clock_speed > 0.0) {
        eprintln!(
            "error: --clock-speed must be a positive number, not {}",
            args.clock_speed
        );
        return Ok(Exit::Usage);
    }
    let loaded = match load_plans(ctx, &args.files, "scheduled") {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let templates = match open_secrets(
        &loaded.project,
        &loaded.profile,
        loaded.plans.iter(),
        "scheduled",
    ) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let mut entries = Vec::new();
    for p in &loaded.plans {
        match Entry::new(&p.name, &p.schedule, p.partition.timezone) {
            Ok(e) => entries.push(e),
            Err(m) => {
                eprintln!("error: {m}\n\nhint: `etl validate` checks every schedule");
                return Ok(Exit::Usage);
            }
        }
    }
    let defaults = &loaded.project.defaults;
    let retries = Retries {
        times: defaults.task_retries(),
        delay: chrono::Duration::seconds(defaults.task_retry_delay_seconds().into()),
    };

    let rt = tokio::runtime::Runtime::new()?;
    // Inside the runtime: the scaled timeline reads tokio's clock.
    let timeline: Arc<dyn Timeline> = rt.block_on(async {
        match args.clock_start {
            Some(origin) => {
                Arc::new(ScaledTimeline::new(origin, args.clock_speed)) as Arc<dyn Timeline>
            }
            None => Arc::new(SystemTimeline),
        }
    });
    let engine = match Engine::new(
        loaded.project.clone(),
        &loaded.profile,
        templates.clone(),
        Arc::new(crate::schedule::TodayOf(timeline.clone())),
        Arc::new(crate::engine::progress::LogProgress),
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::RunFailed);
        }
    };
    let runner = EngineRunner {
        notify: loaded.project.notify.clone(),
        rerun: loaded
            .plans
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    super::report::rerun_command(&loaded.project, p),
                )
            })
            .collect(),
        templates: templates.clone(),
        runtimes: loaded
            .plans
            .into_iter()
            .map(|p| Arc::new(PipelineRuntime::new(p, templates.clone())))
            .collect(),
        engine,
        opts: RunOptions {
            parallel: args.parallel as usize,
            retries: args.retries,
            // Each due run is a catch-up: the specs' lookback applies.
            lookback: true,
            ..Default::default()
        },
    };
    let daemon = Daemon::new(entries, timeline, retries);
    let shutdown = shutdown_on_signal(&rt, || {
        tracing::info!("schedule: stopping on a signal; a running day stops and is recorded `interrupted` (a second signal exits at once)");
    });
    rt.block_on(daemon.run(&runner, &shutdown, &mut |event| tracing::info!("{event}")));
    // A stop on request is how a daemon ends: systemd and Kubernetes send
    // SIGTERM and expect 0.
    Ok(Exit::Success)
}

/// Runs the due pipelines' catch-ups with the engine, and says how each
/// went through `notify:`.
struct EngineRunner {
    engine: Engine,
    runtimes: Vec<Arc<PipelineRuntime>>,
    opts: RunOptions,
    notify: Vec<crate::spec::NotifySpec>,
    rerun: crate::notify::RerunCommands,
    templates: Arc<crate::template::Templates>,
}

impl Runner for EngineRunner {
    fn run<'a>(
        &'a self,
        due: &'a [usize],
        _now: DateTime<Utc>,
        shutdown: &'a Shutdown,
    ) -> BoxFuture<'a, Result<RunReport, String>> {
        Box::pin(async move {
            let clock = self.engine.clock();
            let jobs = due
                .iter()
                .map(|&i| {
                    let rt = self.runtimes[i].clone();
                    let p = &rt.plan.partition;
                    let range = resolve_range(
                        RangeRequest::default(),
                        p.start_date,
                        clock.today(p.timezone),
                    );
                    (rt, range)
                })
                .collect();
            let report = self
                .engine
                .run_runtimes(jobs, &self.opts, shutdown)
                .await
                .map_err(|e| e.to_string())?;
            if !self.notify.is_empty() {
                let message = crate::notify::Message::of(&report, &self.rerun, None, clock.now());
                for sent in crate::notify::send(&self.notify, &self.templates, &message).await {
                    match sent.error {
                        None => tracing::info!(channel = %sent.channel, "notification sent"),
                        Some(e) => {
                            tracing::warn!(channel = %sent.channel, error = %e, "notification not sent")
                        }
                    }
                }
            }
            Ok(report)
        })
    }
}
