//! `etl plan`: what a run would do, day by day, with no network.

use std::path::PathBuf;

use super::{load_plans, Context, RangeArgs};
use crate::exit::Exit;
use crate::plan::{resolve_range, PipelinePlan, RangeRequest, WarehousePlan};

/// `etl plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub range: RangeArgs,
}

pub fn run(ctx: &Context, args: Args) -> Exit {
    let loaded = match load_plans(ctx, &args.files, "planned") {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (plans, templates) = (loaded.plans, loaded.templates);
    let req = args.range.request();

    let mut out = String::new();
    for (i, p) in plans.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match render(p, req, ctx, &templates) {
            Ok(s) => out.push_str(&s),
            Err(m) => {
                eprintln!("error: {}: {m}", p.file.display());
                return Exit::Usage;
            }
        }
    }
    print!("{out}");
    Exit::Success
}

fn render(
    p: &PipelinePlan,
    req: RangeRequest,
    ctx: &Context,
    templates: &crate::template::Templates,
) -> Result<String, String> {
    use std::fmt::Write;
    let today = ctx.today(p.partition.timezone);
    let range = resolve_range(req, p.partition.start_date, today);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "pipeline {} ({}), profile `{}`",
        p.name,
        p.file.display(),
        p.profile
    );
    let _ = writeln!(
        o,
        "  source     {} `{}`: {}.{}",
        p.source.connection_name,
        p.source.connection.display(),
        p.source.database,
        p.source.collection
    );
    let _ = writeln!(
        o,
        "  partition  `{}` ({}, daily, {}), first day {}",
        p.partition.field,
        serde_plain(&p.partition.kind),
        p.partition.timezone,
        p.partition.start_date
    );
    let _ = writeln!(
        o,
        "  lake       {} `{}` ({}, {})",
        p.lake.connection_name,
        p.lake.connection.display(),
        serde_plain(&p.lake.format),
        serde_plain(&p.lake.compression)
    );
    match &p.warehouse {
        WarehousePlan::Bigquery {
            connection_name,
            connection,
            partition_column,
            clustering,
            ..
        } => {
            let _ = writeln!(
                o,
                "  warehouse  {connection_name} `{}`, partitioned by `{partition_column}`{}",
                connection.display(),
                if clustering.is_empty() {
                    String::new()
                } else {
                    format!(", clustered by {}", clustering.join(", "))
                }
            );
        }
        WarehousePlan::Parquet {
            connection_name,
            connection,
            ..
        } => {
            let _ = writeln!(
                o,
                "  warehouse  {connection_name} `{}` (parquet)",
                connection.display()
            );
        }
    }
    let _ = writeln!(o, "  schedule   {}", p.schedule);
    for line in lock_lines(p) {
        let _ = writeln!(o, "  {line}");
    }
    for n in &range.notices {
        let _ = writeln!(o, "  notice: {n}");
    }
    let _ = writeln!(
        o,
        "  {} {} from {} to {} (today is {today}):",
        range.len(),
        if range.len() == 1 {
            "partition"
        } else {
            "partitions"
        },
        range.start,
        range.end
    );
    let lake_base = crate::redact::redact_uri(p.lake.connection.url.trim_end_matches('/'));
    for day in range.days() {
        let t = p.target(day, templates)?;
        let filter = bson::Bson::Document(t.filter.clone()).into_relaxed_extjson();
        let _ = writeln!(
            o,
            "\n  {day}  [{}, {})",
            t.start.to_rfc3339(),
            t.end.to_rfc3339()
        );
        let _ = writeln!(o, "    filter     {filter}");
        let _ = writeln!(o, "    raw        {lake_base}/{}", t.lake_path);
        let _ = writeln!(o, "    manifest   {lake_base}/{}", t.manifest_path);
        let _ = writeln!(o, "    warehouse  {}", t.warehouse);
    }
    Ok(o)
}

/// The YAML spelling of an enum value.
fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The schema lock against what the spec now makes, offline: the lines of
/// `etl plan`'s `schema lock` entry.
fn lock_lines(p: &crate::plan::PipelinePlan) -> Vec<String> {
    let loaded: crate::spec::Loaded<crate::spec::PipelineSpec> =
        crate::spec::load(&p.file, crate::spec::SpecKind::Pipeline);
    let Some(spec) = loaded.spec else {
        return Vec::new();
    };
    let Some(lock) = &p.lock else {
        return vec![
            "lock       none: run `etl schema lock` to record the tables' columns".to_owned(),
        ];
    };
    match crate::lock::SchemaLock::offline(&spec, &p.name, Some(lock)) {
        Err(e) => vec![format!("lock       cannot compare: {e}")],
        Ok(next) => {
            let changes = lock.diff(&next);
            if changes.is_empty() {
                let n = lock.tables.len();
                vec![format!(
                    "lock       up to date ({n} {}, {} columns)",
                    if n == 1 { "table" } else { "tables" },
                    lock.tables.values().map(|t| t.columns.len()).sum::<usize>()
                )]
            } else {
                let mut lines = vec![format!(
                    "lock       {} changes the spec makes, not in the lock yet (run `etl schema lock`):",
                    changes.len()
                )];
                lines.extend(changes.iter().map(|c| format!("  {c}")));
                lines
            }
        }
    }
}
