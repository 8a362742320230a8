//! `etl verify`: proves that what was loaded is what MongoDB holds, day by
//! day, and counts the documents no day selects ([`crate::engine::verify`]).
//!
//! Each day of the range is counted on the server with the day's own
//! filter and compared with the raw lines of its ledger record; the
//! documents in no day are counted by reason over the whole collection.
//! `--mark` marks the differing days dirty, as `etl watch` does, so that
//! the next `etl run` redoes them. The result is kept in the state store
//! for `etl status` and `etl report`. Exit 1 when anything is
//! unaccounted for.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::Serialize;

use super::run::open_secrets;
use super::{load_plans, Context, Counts, RangeArgs};
use crate::engine::dirty::{Dirty, Mark};
use crate::engine::verify::{
    self, plural, DayCheck, Reason, Unpartitioned, Verdict, Verifications, VerifyRecord,
};
use crate::engine::{Ledger, PipelineRuntime};
use crate::exit::Exit;
use crate::plan::{resolve_range, PipelinePlan, ProjectPlan};

/// Days counted before progress shows on stderr.
const LONG_RANGE: usize = 60;

/// `etl verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    #[command(flatten)]
    pub range: RangeArgs,

    /// Mark the days that differ dirty, so that the next `etl run`
    /// redoes them.
    #[arg(long)]
    pub mark: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// The days that differ and the documents in no day, per pipeline.
    Human,
    /// One JSON object: every pipeline, every day counted.
    Json,
}

/// One pipeline's verify, as `--format json` prints it.
#[derive(Debug, Serialize)]
struct PipelineVerify {
    pipeline: String,
    /// The first and the last day counted.
    start: NaiveDate,
    end: NaiveDate,
    verified_at: chrono::DateTime<chrono::Utc>,
    /// Documents no day selects.
    unpartitioned: u64,
    /// The same, by reason; every reason is present.
    unpartitioned_by_reason: BTreeMap<Reason, u64>,
    /// Up to five `_id`s per reason, as relaxed Extended JSON, newest
    /// first; every reason is present.
    samples: BTreeMap<Reason, Vec<serde_json::Value>>,
    /// Documents dated after yesterday: a later run takes them.
    after_cutoff: u64,
    /// Days whose status is not `ok`.
    days_differing: usize,
    /// Days marked dirty by `--mark`.
    marked: Vec<NaiveDate>,
    /// Every day counted.
    days: Vec<DayCheck>,
    /// The partition field and what it stores, for the human output.
    #[serde(skip)]
    plan: PipelinePlan,
    #[serde(skip)]
    orphans: Unpartitioned,
    #[serde(skip)]
    run_command: String,
    #[serde(skip)]
    file: String,
    /// The last day a run takes.
    #[serde(skip)]
    yesterday: NaiveDate,
}

impl PipelineVerify {
    fn differing(&self) -> impl Iterator<Item = &DayCheck> {
        self.days.iter().filter(|d| d.status != Verdict::Ok)
    }

    fn unaccounted(&self) -> bool {
        self.unpartitioned > 0 || self.days_differing > 0
    }
}

/// `etl verify`.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let (project, profile, plans) = match load_plans(ctx, &args.files, "verified") {
        Ok(l) => (l.project, l.profile, l.plans),
        Err(code) => return Ok(code),
    };
    let templates = match open_secrets(&project, &profile, plans.iter(), "verified") {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let (store, _) = crate::engine::open_store_connection(&templates, project.state(&profile))
        .map_err(|e| anyhow::anyhow!("the ledger's store: {e}"))?;
    let ledger = Ledger::new(store.clone());
    let dirty = Dirty::new(store.clone());
    let verifications = Verifications::new(store);
    let rt = tokio::runtime::Runtime::new()?;
    let clock = ctx.clock();
    let mut results = Vec::new();
    let mut failed = false;
    for plan in plans {
        let name = plan.name.clone();
        match rt.block_on(verify_one(
            ctx,
            &project,
            plan,
            &templates,
            &ledger,
            &dirty,
            args.mark,
            args.range.request(),
            clock.as_ref(),
        )) {
            Ok(r) => {
                let record = VerifyRecord {
                    pipeline: r.pipeline.clone(),
                    verified_at: r.verified_at,
                    ran_on: ctx.today(r.plan.partition.timezone),
                    start: r.start,
                    end: r.end,
                    days: r.days.len(),
                    unpartitioned: r.unpartitioned,
                    unpartitioned_by_reason: r.unpartitioned_by_reason.clone(),
                    after_cutoff: r.after_cutoff,
                    differing: r.differing().cloned().collect(),
                    marked: !r.marked.is_empty(),
                };
                if let Err(e) = rt.block_on(verifications.put(&record)) {
                    eprintln!("error: {name}: the result was not kept in the state store: {e}");
                    failed = true;
                }
                results.push(r);
            }
            Err(e) => {
                eprintln!("error: {name}: {e}");
                failed = true;
            }
        }
    }
    match args.format {
        Format::Human => print!("{}", human(&results, Counts::for_stdout())),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "pipelines": results }))?
        ),
    }
    Ok(
        if failed || results.iter().any(PipelineVerify::unaccounted) {
            Exit::RunFailed
        } else {
            Exit::Success
        },
    )
}

/// Counts one pipeline's days and orphans, and marks the differing days
/// dirty with `mark`. An error is a sentence to print.
#[allow(clippy::too_many_arguments)]
async fn verify_one(
    ctx: &Context,
    project: &ProjectPlan,
    plan: PipelinePlan,
    templates: &Arc<crate::template::Templates>,
    ledger: &Ledger,
    dirty: &Dirty,
    mark: bool,
    request: crate::plan::RangeRequest,
    clock: &dyn crate::engine::Clock,
) -> Result<PipelineVerify, String> {
    let today = ctx.today(plan.partition.timezone);
    let yesterday = today.pred_opt().expect("today is not the first day");
    let range = resolve_range(request, plan.partition.start_date, today);
    for n in &range.notices {
        eprintln!("notice: {}: {n}", plan.name);
    }
    let targets = range
        .days()
        .map(|d| plan.target(d, templates))
        .collect::<Result<Vec<_>, _>>()?;
    let records = ledger.list(&plan.name).await.map_err(|e| e.to_string())?;
    let runtime = PipelineRuntime::new(plan.clone(), templates.clone());
    let source = runtime.mongo().await.map_err(|e| e.to_string())?;
    let verified_at = clock.now();

    let total = targets.len();
    let bar = (total >= LONG_RANGE).then(|| {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} counting days {bar:30} {human_pos}/{human_len} {elapsed}",
                )
                .expect("the template parses"),
            );
            bar.set_prefix(plan.name.clone());
            bar
        } else {
            indicatif::ProgressBar::hidden()
        }
    });
    let logged = bar.as_ref().is_some_and(|b| b.is_hidden());
    let counts = verify::count_days(&source, &targets, |n| {
        if let Some(b) = &bar {
            b.set_position(n as u64);
        }
        // Off a terminal (CI logs), a line every tenth of a long range.
        if logged && (n % (total / 10).max(1) == 0 || n == total) {
            eprintln!("{}: {n} of {total} days counted", plan.name);
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let days: Vec<DayCheck> = counts
        .into_iter()
        .map(|(day, n)| DayCheck::judge(day, n, records.get(&day)))
        .collect();

    let orphans = verify::unpartitioned(
        &source,
        &plan.partition,
        plan.source.base_filter.as_ref(),
        yesterday,
        plan.source.batch_size,
    )
    .await
    .map_err(|e| e.to_string())?;

    let mut marked = Vec::new();
    if mark {
        let batch = format!("verify-{}", verified_at.format("%Y%m%dT%H%M%S%.6fZ"));
        for d in days.iter().filter(|d| d.status != Verdict::Ok) {
            let m = Mark {
                changes: [("verify".to_owned(), d.difference().unsigned_abs().max(1))].into(),
                first_change_at: None,
                marked_at: verified_at,
            };
            dirty
                .mark(&plan.name, d.day, &batch, &m)
                .await
                .map_err(|e| format!("could not mark {} dirty: {e}", d.day))?;
            marked.push(d.day);
        }
    }

    let file = plan
        .file
        .strip_prefix(&project.root)
        .unwrap_or(&plan.file)
        .display()
        .to_string();
    Ok(PipelineVerify {
        pipeline: plan.name.clone(),
        start: range.start,
        end: range.end,
        verified_at,
        unpartitioned: orphans.total(),
        unpartitioned_by_reason: orphans.by_reason.clone(),
        samples: Reason::ALL
            .iter()
            .map(|r| {
                let ids = orphans.samples.get(r).into_iter().flatten();
                (
                    *r,
                    ids.map(|id| id.clone().into_relaxed_extjson()).collect(),
                )
            })
            .collect(),
        after_cutoff: orphans.after_cutoff,
        days_differing: days.iter().filter(|d| d.status != Verdict::Ok).count(),
        marked,
        days,
        run_command: super::report::rerun_command(project, &plan),
        file,
        plan,
        orphans,
        yesterday,
    })
}

/// The result for people: per pipeline the differing days, a total line,
/// the documents in no day by reason with sample `_id`s, then hints.
fn human(results: &[PipelineVerify], counts: Counts) -> String {
    let n = counts.width(8);
    let mut o = String::new();
    for p in results {
        let _ = writeln!(o, "pipeline {} ({} to {}):", p.pipeline, p.start, p.end);
        if p.days_differing > 0 {
            let _ = writeln!(
                o,
                "  {:<10} {:>n$} {:>n$}  status",
                "day", "source", "loaded"
            );
            for d in p.differing() {
                let status = match d.status {
                    Verdict::Differs => format!("differs ({:+})", d.difference()),
                    Verdict::NotLoaded => "not loaded".to_owned(),
                    Verdict::Ok => "ok".to_owned(),
                };
                let _ = writeln!(
                    o,
                    "  {:<10} {:>n$} {:>n$}  {status}{}",
                    d.day.to_string(),
                    counts.show(d.source_now),
                    counts.maybe(d.loaded),
                    if p.marked.contains(&d.day) {
                        ", marked dirty"
                    } else {
                        ""
                    }
                );
            }
        }
        let days = p.days.len() as u64;
        let _ = writeln!(
            o,
            "  {} day{} counted: {} as loaded, {} differ{}",
            counts.show(days),
            plural(days),
            counts.show(days - p.days_differing as u64),
            counts.show(p.days_differing as u64),
            if p.days_differing == 1 { "s" } else { "" }
        );
        let _ = write!(
            o,
            "  {} document{} in no day",
            counts.show(p.unpartitioned),
            plural(p.unpartitioned)
        );
        let reasons: Vec<String> = Reason::ALL
            .iter()
            .filter_map(|r| {
                let k = *p.unpartitioned_by_reason.get(r)?;
                (k > 0).then(|| format!("{} {}", counts.show(k), r.describe(&p.plan.partition)))
            })
            .collect();
        if reasons.is_empty() {
            let _ = writeln!(o);
        } else {
            let _ = writeln!(o, ": {}", reasons.join(", "));
        }
        for (r, ids) in &p.orphans.samples {
            let shown: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            let _ = writeln!(
                o,
                "    {}: _id {}",
                r.describe(&p.plan.partition),
                shown.join(", ")
            );
        }
        if p.after_cutoff > 0 {
            let _ = writeln!(
                o,
                "  {} document{} dated after {}: not missing, a later run takes {}",
                counts.show(p.after_cutoff),
                plural(p.after_cutoff),
                p.yesterday,
                if p.after_cutoff == 1 { "it" } else { "them" }
            );
        }
    }
    let differing: Vec<&PipelineVerify> = results.iter().filter(|p| p.days_differing > 0).collect();
    if !differing.is_empty() {
        let runs: Vec<&str> = differing.iter().map(|p| p.run_command.as_str()).collect();
        if differing.iter().all(|p| !p.marked.is_empty()) {
            let _ = writeln!(
                o,
                "hint: the differing days are marked dirty: `{}` redoes them",
                runs.join("` and `")
            );
        } else {
            let files: Vec<&str> = differing.iter().map(|p| p.file.as_str()).collect();
            let _ = writeln!(
                o,
                "hint: `etl verify --mark {}` marks the differing days dirty, then `{}` redoes them",
                files.join(" "),
                runs.join("` and `")
            );
        }
    }
    for p in results.iter().filter(|p| p.unpartitioned > 0) {
        let f = &p.plan.partition.field;
        let _ = writeln!(
            o,
            "hint: no run reads the documents of `{}` in no day: fix their `{f}` (of kind `{}`, on or after {}), or change `partition` in {} to a field they all have; to leave them out on purpose, exclude them with `source.filter`",
            p.pipeline,
            kind_name(p.plan.partition.kind),
            p.plan.partition.start_date,
            p.file
        );
    }
    o
}

/// The kind as the spec spells it.
fn kind_name(kind: crate::spec::PartitionKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}
