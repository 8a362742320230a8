//! `etl watch`: [`crate::engine::watch`] for the given pipelines, until
//! Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::run::{init_logging, open_secrets, shutdown_on_signal, LogFormat};
use super::{load_plans, Context};
use crate::engine::watch::{watch_all, WatchOptions};
use crate::engine::Engine;
use crate::exit::Exit;

/// `etl watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs: one change stream per collection.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Most changes in one batch of marks.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,

    /// Longest a change waits, in milliseconds, before its day is marked.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub batch_wait_ms: u64,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `etl watch`.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    init_logging(args.log_format, false);
    let loaded = match load_plans(ctx, &args.files, "watched") {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let templates = match open_secrets(
        &loaded.project,
        &loaded.profile,
        loaded.plans.iter(),
        "watched",
    ) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let rt = tokio::runtime::Runtime::new()?;
    let engine = match Engine::new(
        loaded.project,
        &loaded.profile,
        templates,
        ctx.clock(),
        Arc::new(crate::engine::progress::LogProgress),
    ) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::RunFailed);
        }
    };
    let shutdown = shutdown_on_signal(&rt, || {
        tracing::info!("watch: stopping on a signal; the changes read so far are marked and the position saved (a second signal exits at once)");
    });
    let opts = WatchOptions {
        batch_max: args.batch as usize,
        batch_wait: Duration::from_millis(args.batch_wait_ms),
        ..Default::default()
    };
    let reports = rt.block_on(watch_all(engine, loaded.plans, opts, shutdown));
    let mut failed = false;
    for report in reports {
        match report {
            Ok(r) => {
                let days = r.marked.len();
                println!(
                    "{}: {} change{} read, {} day{} marked dirty, {} ignored (no day, before start_date, or today), {} of unknown day",
                    r.pipeline,
                    r.changes,
                    if r.changes == 1 { "" } else { "s" },
                    days,
                    if days == 1 { "" } else { "s" },
                    r.ignored,
                    r.unknown
                );
            }
            Err(e) => {
                failed = true;
                eprintln!("error: {}", e.message);
            }
        }
    }
    Ok(if failed {
        Exit::RunFailed
    } else {
        Exit::Success
    })
}
