//! `etl schema lock`: refresh or check the schema lock files.

use std::path::PathBuf;
use std::sync::Arc;

use super::{load_plans, Context, RangeArgs};
use crate::engine::PipelineRuntime;
use crate::exit::Exit;
use crate::lock::SchemaLock;
use crate::plan::resolve_range;
use crate::spec::{self, Loaded, PipelineSpec, SpecKind};

/// `etl schema lock`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs whose locks to refresh. Default: `pipelines/*.yaml`
    /// next to the project file.
    pub files: Vec<PathBuf>,

    /// Also read these days' documents in MongoDB (every document, streamed)
    /// and add the columns they show. Without a range the refresh is
    /// offline: the spec's own columns and its `tests` documents.
    #[command(flatten)]
    pub range: RangeArgs,

    /// Write nothing; exit 1 when a lock is missing or would change, with
    /// the difference (offline, for CI).
    #[arg(long, conflicts_with_all = ["start", "end", "date"])]
    pub check: bool,
}

pub fn run(ctx: &Context, mut args: Args) -> anyhow::Result<Exit> {
    if args.files.is_empty() {
        let project_file = match ctx.project_file_or_usage() {
            Ok(f) => f,
            Err(code) => return Ok(code),
        };
        args.files = super::validate::default_pipelines(&project_file);
    }
    let loaded = match load_plans(ctx, &args.files, "locked") {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let online =
        args.range.start.is_some() || args.range.end.is_some() || args.range.date.is_some();
    let templates = Arc::new(loaded.templates);
    let rt = tokio::runtime::Runtime::new()?;
    let mut stale = 0;
    for (plan, file) in loaded.plans.into_iter().zip(&args.files) {
        let spec_file: Loaded<PipelineSpec> = spec::load(file, SpecKind::Pipeline);
        let spec = spec_file.spec.expect("load_plans checked it");
        let path = SchemaLock::path(&loaded.project.root, &plan.name);
        let shown = path
            .strip_prefix(&loaded.project.root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let existing = plan.lock.clone();
        let mut lock = SchemaLock::offline(&spec, &plan.name, existing.as_deref())
            .map_err(anyhow::Error::msg)?;
        if online {
            let range = resolve_range(
                args.range.request(),
                plan.partition.start_date,
                ctx.today(plan.partition.timezone),
            );
            for n in &range.notices {
                eprintln!("note: {}: {n}", plan.name);
            }
            let name = plan.name.clone();
            let runtime = PipelineRuntime::new(plan, templates.clone());
            let documents = rt.block_on(async {
                let tables = runtime.flatten_tables().await?;
                let mut builders = tables.schema_builders();
                let mut documents = 0;
                for day in range.days() {
                    let n = runtime.infer_day(day, &mut builders).await?;
                    eprintln!("  {name} {day}: {n} documents read");
                    documents += n;
                }
                lock.absorb_builders(&tables, &tables.names(&name), builders);
                Ok::<u64, crate::engine::PartitionError>(documents)
            });
            let documents = documents.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            eprintln!(
                "{name}: {documents} documents read in {} days",
                range.days().count()
            );
        }
        let changes = match &existing {
            Some(old) => old.diff(&lock),
            None => Vec::new(),
        };
        if args.check {
            match &existing {
                None => {
                    stale += 1;
                    println!("{}: no schema lock ({shown} is missing)", lock.pipeline);
                }
                Some(old) if old.to_bytes() != lock.to_bytes() => {
                    stale += 1;
                    println!("{}: {shown} is out of date:", lock.pipeline);
                    for c in &changes {
                        println!("  {c}");
                    }
                    if changes.is_empty() {
                        println!("  (same columns, written differently)");
                    }
                }
                Some(_) => println!("{}: {shown} is up to date", lock.pipeline),
            }
            continue;
        }
        lock.write(&path)?;
        match (&existing, changes.is_empty()) {
            (None, _) => println!(
                "{}: wrote {shown} ({} tables)",
                lock.pipeline,
                lock.tables.len()
            ),
            (Some(_), true) => println!("{}: {shown} is up to date", lock.pipeline),
            (Some(_), false) => {
                println!("{}: updated {shown}:", lock.pipeline);
                for c in &changes {
                    println!("  {c}");
                }
            }
        }
    }
    if stale > 0 {
        println!("hint: review the changes, then run `etl schema lock` (add `--start`/`--end` to learn columns from data) and commit the files");
        return Ok(Exit::RunFailed);
    }
    Ok(Exit::Success)
}
