//! `etl run`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use clap::ValueEnum;

use super::{load_plans, Context, RangeArgs};
use chrono::NaiveDate;

use crate::engine::{DayOutcome, Engine, RunOptions, Shutdown, Status};
use crate::exit::Exit;
use crate::plan::{resolve_range, DayRange, PipelinePlan};
use crate::template::{EnvMode, Templates};

/// `etl run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Pipeline specs.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub range: RangeArgs,

    /// Run days the ledger already has as done.
    #[arg(long)]
    pub rerun: bool,

    /// Only the days `etl watch` marked dirty (in the range: by default
    /// from the spec's `start_date` to yesterday). A catch-up run redoes
    /// them too, beside the days not done.
    #[arg(long, conflicts_with = "rerun")]
    pub dirty: bool,

    /// Also redo the done days that are stale: loaded before an edit of
    /// the spec that changes what they land. A catch-up leaves them
    /// otherwise, and says how many there are.
    #[arg(long)]
    pub stale: bool,

    /// Stop starting new partitions after the first failure.
    #[arg(long)]
    pub fail_fast: bool,

    #[command(flatten)]
    pub flags: RunFlags,
}

/// The flags `etl run` and `etl replay` share.
#[derive(Debug, clap::Args)]
pub struct RunFlags {
    /// Partitions to run at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    /// Extra attempts for a partition that fails with a transient error.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Also write `etl report`'s page of these pipelines to FILE once the
    /// run ends, whatever its outcome.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// `etl replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Pipeline specs.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// The days to rebuild: `--date D`, or `--start`/`--end` (required:
    /// a replay replaces warehouse partitions, so it names them).
    #[command(flatten)]
    pub range: RangeArgs,

    /// Only the days whose ledger record has rejected documents, once the
    /// spec accepts them: each is rebuilt from the lake, all of its
    /// documents, so its partition is replaced whole and reconciled again.
    #[arg(long)]
    pub rejects: bool,

    #[command(flatten)]
    pub flags: RunFlags,
}

/// What [`execute`] does with the days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `etl run`: from MongoDB.
    Run,
    /// `etl replay`: from the lake.
    Replay,
    /// `etl replay --rejects`: from the lake, the days with rejects.
    ReplayRejects,
}

/// `etl replay`: `etl run` of days read back from the lake.
pub fn replay(ctx: &Context, args: ReplayArgs) -> anyhow::Result<Exit> {
    if args.range.start.is_none() && args.range.end.is_none() && args.range.date.is_none() {
        eprintln!("error: `etl replay` needs the days to rebuild\n\nhint: add `--date D` or `--start D --end D`; a replay replaces those warehouse partitions");
        return Ok(Exit::Usage);
    }
    execute(
        ctx,
        RunArgs {
            files: args.files,
            range: args.range,
            rerun: true,
            dirty: false,
            stale: false,
            fail_fast: false,
            flags: args.flags,
        },
        if args.rejects {
            Mode::ReplayRejects
        } else {
            Mode::Replay
        },
    )
}

/// Each day of `jobs` that the ledger has `done` with rejected documents,
/// as a one-day job, and a line saying which.
async fn days_with_rejects(
    engine: &Engine,
    jobs: Vec<(PipelinePlan, DayRange)>,
) -> anyhow::Result<Vec<(PipelinePlan, DayRange)>> {
    let mut out = Vec::new();
    for (plan, range) in jobs {
        let records = engine.ledger().list(&plan.name).await?;
        let days: Vec<(NaiveDate, u64)> = range
            .days()
            .filter_map(|day| {
                let r = records.get(&day)?;
                let rejected = r.rejected.unwrap_or(0);
                (r.status == Status::Done && rejected > 0).then_some((day, rejected))
            })
            .collect();
        if !days.is_empty() {
            let listed: Vec<String> = days.iter().map(|(d, n)| format!("{d} ({n})")).collect();
            println!(
                "{}: replaying the days with rejected documents: {}",
                plan.name,
                listed.join(", ")
            );
        }
        out.extend(days.into_iter().map(|(day, _)| {
            (
                plan.clone(),
                DayRange {
                    start: day,
                    end: day,
                    notices: Vec::new(),
                },
            )
        }));
    }
    Ok(out)
}

/// Log formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs go to stderr. Under progress bars only warnings print: info lines
/// would tear the bars, and the bars already say what they would.
pub(super) fn init_logging(format: LogFormat, bars: bool) {
    let default = if bars { "warn" } else { "etl=info,warn" };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("ETL_LOG").unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// `etl run`.
pub fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<Exit> {
    execute(ctx, args, Mode::Run)
}

/// A run, or a replay from the lake.
fn execute(ctx: &Context, args: RunArgs, mode: Mode) -> anyhow::Result<Exit> {
    let bars = std::io::stderr().is_terminal() && matches!(args.flags.log_format, LogFormat::Text);
    init_logging(args.flags.log_format, bars);
    let (project, profile, plans) = match load_plans(ctx, &args.files, "run") {
        Ok(l) => (l.project, l.profile, l.plans),
        Err(code) => return Ok(code),
    };
    let req = args.range.request();
    // The report and the notifications read them once the run is over.
    let (after_project, after_plans) = (project.clone(), plans.clone());
    let jobs: Vec<_> = plans
        .into_iter()
        .map(|p| {
            let range = resolve_range(req, p.partition.start_date, ctx.today(p.partition.timezone));
            (p, range)
        })
        .collect();
    let templates = match open_secrets(&project, &profile, jobs.iter().map(|(p, _)| p), "run") {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let progress: Arc<dyn crate::engine::progress::Progress> = if bars {
        Arc::new(crate::engine::progress::TerminalProgress::new())
    } else {
        Arc::new(crate::engine::progress::LogProgress)
    };
    let opts = RunOptions {
        rerun: args.rerun,
        dirty_only: args.dirty,
        stale: args.stale,
        // A daily catch-up run looks back; a named range is run as named.
        lookback: mode == Mode::Run && req.end.is_none(),
        parallel: args.flags.parallel as usize,
        fail_fast: args.fail_fast,
        retries: args.flags.retries,
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new()?;
    let engine = match Engine::new(project, &profile, templates.clone(), ctx.clock(), progress) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::RunFailed);
        }
    };
    let shutdown = shutdown_on_signal(&rt, || {
        eprintln!("interrupted: no new day starts; running days stop and are recorded `interrupted` (a second signal exits at once)");
    });
    let jobs = if mode == Mode::ReplayRejects {
        let jobs = rt.block_on(days_with_rejects(&engine, jobs))?;
        if jobs.is_empty() {
            println!("nothing to replay: no day of the range is done with rejected documents");
            return Ok(Exit::Success);
        }
        jobs
    } else {
        jobs
    };
    let ran = if mode != Mode::Run {
        rt.block_on(engine.replay(jobs, &opts, &shutdown))
    } else {
        rt.block_on(engine.run(jobs, &opts, &shutdown))
    };
    let report = match ran {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::RunFailed);
        }
    };
    if opts.dirty_only && report.outcomes.is_empty() {
        println!("nothing to redo: `etl watch` marked no day of the range dirty");
    }
    print!("{}", summary(&report, super::Counts::for_stdout()));
    // The page and the notifications are by-products: failing to make
    // one is said, and the run's exit code stays the run's.
    let mut page = None;
    if let Some(path) = &args.flags.report {
        match super::report::write(ctx, &after_project, &profile, &after_plans, path) {
            Ok(Ok(())) => {
                println!("report: {}", path.display());
                page = Some(path.display().to_string());
            }
            Ok(Err(_)) => {}
            Err(e) => eprintln!("warning: the report was not written: {e}"),
        }
    }
    let rerun = after_plans
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                super::report::rerun_command(&after_project, p),
            )
        })
        .collect();
    let message = crate::notify::Message::of(&report, &rerun, page.as_deref(), ctx.clock().now());
    for sent in rt.block_on(crate::notify::send(
        &after_project.notify,
        &templates,
        &message,
    )) {
        match sent.error {
            None => println!("notified: {}", sent.channel),
            Some(e) => eprintln!("warning: notification not sent: {}: {e}", sent.channel),
        }
    }
    Ok(if report.interrupted {
        Exit::Interrupted
    } else if report.ok() {
        Exit::Success
    } else {
        Exit::RunFailed
    })
}

/// Templates that decrypt the project's secrets in memory when first used,
/// once every secret `plans` need has been opened: a wrong key is a usage
/// error before anything starts, not ten failed partitions. `verb` ends
/// the message: "nothing was {verb}".
pub(super) fn open_secrets<'a>(
    project: &crate::plan::ProjectPlan,
    profile: &str,
    plans: impl Iterator<Item = &'a crate::plan::PipelinePlan>,
    verb: &str,
) -> Result<Arc<Templates>, Exit> {
    let key = match crate::secrets::Key::from_env() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}\n\nhint: see docs/security.md for how etl finds its age key");
            return Err(Exit::Usage);
        }
    };
    let store = crate::secrets::SecretStore::new(project.secrets.clone(), key);
    let needed: std::collections::BTreeSet<String> = plans
        .flat_map(|p| p.secret_names())
        .chain(crate::plan::Secrets::secret_names(project.state(profile)))
        .collect();
    let mut unusable = 0;
    for name in &needed {
        if let Err(e) = store.decrypt(name) {
            eprintln!("error: {e}\n\nhint: {}\n", e.hint());
            unusable += 1;
        }
    }
    if unusable > 0 {
        eprintln!(
            "nothing was {verb}: {unusable} of the {} secrets its pipelines need cannot be decrypted",
            needed.len()
        );
        return Err(Exit::Usage);
    }
    Ok(Arc::new(Templates::from_process(
        Arc::new(store),
        EnvMode::Strict,
    )))
}

/// A shutdown that the first Ctrl-C or SIGTERM requests, after `announce`
/// says what stops; the second signal exits at once.
pub(super) fn shutdown_on_signal(
    rt: &tokio::runtime::Runtime,
    announce: impl FnOnce() + Send + 'static,
) -> Shutdown {
    let (trigger, shutdown) = Shutdown::new();
    rt.spawn(async move {
        on_signal().await;
        announce();
        trigger.request();
        on_signal().await;
        std::process::exit(Exit::Interrupted as i32);
    });
    shutdown
}

/// Resolves at the next Ctrl-C or SIGTERM (what Kubernetes and Airflow
/// send to stop a task).
pub(super) async fn on_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops a run cleanly");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The closing table: one line per day, then the failures in full.
pub fn summary(report: &crate::engine::RunReport, counts: super::Counts) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    for n in &report.notices {
        let _ = writeln!(o, "notice: {n}");
    }
    // Eight digits of documents and ten of bytes line up; separators widen
    // the columns on a terminal.
    let (n, b) = (counts.width(8), counts.width(10));
    let _ = writeln!(
        o,
        "{:<10} {:<10} {:<8} {:>n$} {:>n$} {:>b$} {:>7}  lake / warehouse",
        "pipeline", "day", "status", "read", "rows", "raw bytes", "time"
    );
    let (mut done, mut skipped, mut failed, mut interrupted, mut elsewhere) = (0, 0, 0, 0, 0);
    let mut stale = 0;
    for out in &report.outcomes {
        let (r, status) = match out {
            DayOutcome::Done(r) => {
                done += 1;
                (r, "done")
            }
            DayOutcome::Skipped(r) if report.stale.contains(&(r.pipeline.clone(), r.day)) => {
                stale += 1;
                (r, "stale")
            }
            DayOutcome::Skipped(r) => {
                skipped += 1;
                (r, "skipped")
            }
            DayOutcome::Failed(r) => {
                failed += 1;
                (r, "FAILED")
            }
            DayOutcome::Interrupted(r) => {
                interrupted += 1;
                (r, "STOPPED")
            }
            DayOutcome::Elsewhere {
                pipeline,
                day,
                note,
            } => {
                elsewhere += 1;
                let _ = writeln!(o, "{pipeline:<10} {day:<10} {:<8} {note}", "elsewhere");
                continue;
            }
            DayOutcome::NotStarted { pipeline, day } => {
                if !report.interrupted {
                    failed += 1;
                }
                let _ = writeln!(o, "{pipeline:<10} {day:<10} {:<8}", "not run");
                continue;
            }
        };
        let num = |v: Option<u64>| counts.maybe(v);
        let secs = if matches!(out, DayOutcome::Skipped(_)) {
            "-".to_owned()
        } else {
            format!("{:.1}s", r.duration().num_milliseconds() as f64 / 1000.0)
        };
        let _ = writeln!(
            o,
            "{:<10} {:<10} {:<8} {:>n$} {:>n$} {:>b$} {:>7}  {} / {}",
            r.pipeline,
            r.day.to_string(),
            status,
            num(r.raw_lines.or(r.source_count)),
            num(r.warehouse_rows),
            num(r.raw_bytes),
            secs,
            r.lake_object,
            r.warehouse_target
        );
        for (table, rows) in &r.child_rows {
            let _ = writeln!(
                o,
                "{:<30} {:>n$}  child table {table}",
                "",
                counts.show(*rows),
            );
        }
        if let Some(rejected) = r.rejected {
            let _ = writeln!(
                o,
                "{:<30} {:>n$}  rejected (type conflicts), kept whole in {}",
                "",
                counts.show(rejected),
                r.lake_object
                    .rsplit_once('/')
                    .map_or("_rejects.jsonl".to_owned(), |(dir, _)| format!(
                        "{dir}/_rejects.jsonl"
                    ))
            );
        }
        if !r.unconverted.is_empty() {
            let _ = writeln!(
                o,
                "{:<30} {:>n$}  values did not convert to their column's type, NULL in their rows ({}); listed in {}",
                "",
                counts.show(r.unconverted.values().sum()),
                r.unconverted
                    .iter()
                    .map(|(c, k)| format!("{c}: {}", counts.show(*k)))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.lake_object
                    .rsplit_once('/')
                    .map_or("_unconverted.jsonl".to_owned(), |(dir, _)| format!(
                        "{dir}/_unconverted.jsonl"
                    ))
            );
        }
    }
    for (name, source) in &report.credentials {
        let _ = writeln!(o, "credentials  {name:<16} {source}");
    }
    let _ = write!(
        o,
        "{done} done, {skipped} skipped (already done), {failed} failed"
    );
    if stale > 0 {
        let _ = write!(o, ", {stale} stale (not redone: `--stale`)");
    }
    if elsewhere > 0 {
        let _ = write!(o, ", {elsewhere} left to other workers");
    }
    let _ = writeln!(o);
    if report.interrupted {
        let not_run = report
            .outcomes
            .iter()
            .filter(|o| matches!(o, DayOutcome::NotStarted { .. }))
            .count();
        let _ = writeln!(
            o,
            "interrupted: {interrupted} day(s) stopped and recorded `interrupted`, {not_run} not started; run the same command again to finish"
        );
    }
    for out in &report.outcomes {
        if let DayOutcome::Failed(r) = out {
            let _ = writeln!(
                o,
                "failed: {} {}: {}",
                r.pipeline,
                r.day,
                r.error.as_deref().unwrap_or("unknown error")
            );
        }
    }
    o
}
