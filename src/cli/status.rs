//! `etl status`: each pipeline's days from `start_date` to yesterday, as
//! the ledger has them, gaps included; as a table for people or as JSON
//! for scripts and dashboards.
//!
//! A done day loaded before an edit that changes what it lands is `stale`
//! (a catch-up leaves it; `etl run --stale` redoes it). A ledger record, a
//! watch position or an unknown-change record that does not parse is
//! `corrupt`, named with how to repair it, and fails the command: read as
//! nothing, it would show a day as missing or hide changes.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::ValueEnum;
use serde::Serialize;

use super::run::open_secrets;
use super::{load_plans, Context};
use crate::engine::{PartitionRecord, Status};
use crate::exit::Exit;
use crate::plan::{resolve_range, PipelinePlan, RangeRequest};
use crate::sink::lake::LakeError;

/// `etl status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A table per pipeline, a run of missing days on one line.
    Human,
    /// One JSON object: every pipeline, every day (missing ones too).
    Json,
}

/// One pipeline's days, as `--format json` prints them and `etl report`
/// draws them.
#[derive(Debug, Serialize)]
pub(super) struct PipelineStatus {
    pub pipeline: String,
    /// The first and the last day expected: `start_date` and yesterday.
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// Done days, stale ones apart.
    pub done: usize,
    /// Done days loaded before an edit of the spec that changes what they
    /// land: a catch-up leaves them, `etl run --stale` redoes them.
    pub stale: usize,
    /// Failed or interrupted days.
    pub failed: usize,
    /// Days without a ledger record.
    pub missing: usize,
    /// Days whose ledger record does not parse.
    pub corrupt: usize,
    /// The state objects of the pipeline other than ledger records (the
    /// watch position, unknown-change records) that do not parse: each
    /// error names the object and says how to repair it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub corrupt_state: Vec<String>,
    /// Days `etl watch` marked dirty, done or not.
    pub dirty: usize,
    /// Changes `etl watch` could not place on a day.
    pub unknown_changes: u64,
    /// Where `etl watch` stands, if it ever ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<crate::engine::dirty::WatchState>,
    /// The last `etl verify`; absent when it never ran (or its record does
    /// not parse: then it is in `corrupt_state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::engine::verify::VerifyRecord>,
    /// The last verify's record does not parse.
    #[serde(skip)]
    pub verify_corrupt: bool,
    pub days: Vec<DayStatus>,
}

/// One day: its ledger record, or `missing`.
#[derive(Debug, Serialize)]
pub(super) struct DayStatus {
    pub day: NaiveDate,
    /// `done`, `stale`, `failed`, `interrupted`, `missing` or `corrupt`.
    pub status: &'static str,
    /// Why a `corrupt` day's record cannot be read, and how to repair it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordSummary>,
    /// Changes `etl watch` saw since the day ran: the next run redoes it.
    #[serde(skip_serializing_if = "is_zero")]
    pub dirty_changes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a person or a dashboard reads of a ledger record.
#[derive(Debug, Serialize)]
pub(super) struct RecordSummary {
    /// The documents read: each loaded or rejected.
    pub read: Option<u64>,
    /// The source's own count, when the spec asked for one
    /// (`source.count`).
    pub source_count: Option<u64>,
    pub warehouse_rows: Option<u64>,
    pub rejected: u64,
    /// Values that did not convert to their columns' types (NULL in
    /// their rows), by column.
    pub unconverted: std::collections::BTreeMap<String, u64>,
    pub child_rows: std::collections::BTreeMap<String, u64>,
    pub raw_bytes: Option<u64>,
    pub seconds: f64,
    pub attempts: u32,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub lake_object: String,
    pub warehouse_target: String,
    pub error: Option<String>,
    /// The spec changed what the day lands since it ran.
    pub stale: bool,
}

impl DayStatus {
    fn of(day: NaiveDate, record: Option<&PartitionRecord>, plan: &PipelinePlan) -> Self {
        let Some(r) = record else {
            return Self {
                day,
                status: "missing",
                corrupt: None,
                record: None,
                dirty_changes: 0,
            };
        };
        let stale = !plan.lands_as_recorded(&r.spec_hash);
        let status = match r.status {
            Status::Done if stale => "stale",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        };
        Self {
            day,
            status,
            corrupt: None,
            record: Some(RecordSummary {
                read: r.raw_lines.or(r.source_count),
                source_count: r.source_count,
                warehouse_rows: r.warehouse_rows,
                rejected: r.rejected.unwrap_or(0),
                unconverted: r.unconverted.clone(),
                child_rows: r.child_rows.clone(),
                raw_bytes: r.raw_bytes,
                seconds: r.duration().num_milliseconds() as f64 / 1000.0,
                attempts: r.attempts,
                started_at: r.started_at,
                finished_at: r.finished_at,
                lake_object: r.lake_object.clone(),
                warehouse_target: r.warehouse_target.clone(),
                error: r.error.clone(),
                stale,
            }),
            dirty_changes: 0,
        }
    }
}

/// `etl status`: exit 1 when a day between `start_date` and yesterday
/// failed, was stopped, is missing or its record is corrupt, or another
/// state object of a pipeline is corrupt. Stale days are done: they do
/// not fail it.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let (project, profile, plans) = match load_plans(ctx, &args.files, "shown") {
        Ok(l) => (l.project, l.profile, l.plans),
        Err(code) => return Ok(code),
    };
    let pipelines = match collect(ctx, &project, &profile, &plans)? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    match args.format {
        Format::Human => print!("{}", human(&pipelines, super::Counts::for_stdout())),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "pipelines": pipelines }))?
        ),
    }
    Ok(
        if pipelines
            .iter()
            .any(|p| p.failed + p.missing + p.corrupt + p.corrupt_state.len() > 0)
        {
            Exit::RunFailed
        } else {
            Exit::Success
        },
    )
}

/// Every pipeline's days from `start_date` to yesterday, as the ledger
/// has them. The inner `Err` is a usage error already printed (a state
/// store secret that cannot be opened).
pub(super) fn collect(
    ctx: &Context,
    project: &crate::plan::ProjectPlan,
    profile: &str,
    plans: &[PipelinePlan],
) -> anyhow::Result<Result<Vec<PipelineStatus>, Exit>> {
    // Only the state store's own secrets, if any: status needs no other.
    let templates = match open_secrets(project, profile, std::iter::empty(), "shown") {
        Ok(t) => t,
        Err(code) => return Ok(Err(code)),
    };
    let (store, _) = crate::engine::open_store_connection(&templates, project.state(profile))
        .map_err(|e| anyhow::anyhow!("the ledger's store: {e}"))?;
    let dirty = crate::engine::dirty::Dirty::new(store.clone());
    let verifications = crate::engine::verify::Verifications::new(store.clone());
    let ledger = crate::engine::Ledger::new(store);
    let rt = tokio::runtime::Runtime::new()?;
    let mut pipelines = Vec::new();
    for p in plans {
        let today = ctx.today(p.partition.timezone);
        let range = resolve_range(RangeRequest::default(), p.partition.start_date, today);
        let (records, corrupt) = rt.block_on(ledger.scan(&p.name))?;
        let marked = rt.block_on(dirty.days(&p.name))?;
        let mut corrupt_state = Vec::new();
        let unknown =
            readable(rt.block_on(dirty.unknown(&p.name)), &mut corrupt_state)?.unwrap_or_default();
        let watch =
            readable(rt.block_on(dirty.watch_state(&p.name)), &mut corrupt_state)?.flatten();
        let verify = readable(rt.block_on(verifications.get(&p.name)), &mut corrupt_state)?;
        let verify_corrupt = verify.is_none();
        let verify = verify.flatten();
        let days: Vec<DayStatus> = range
            .days()
            .map(|day| {
                let mut d = DayStatus::of(day, records.get(&day), p);
                if let Some(e) = corrupt.get(&day) {
                    d.status = "corrupt";
                    d.corrupt = Some(e.to_string());
                }
                d.dirty_changes = marked.get(&day).map_or(0, |m| m.changes.max(1));
                d
            })
            .collect();
        let count = |s: &[&str]| days.iter().filter(|d| s.contains(&d.status)).count();
        pipelines.push(PipelineStatus {
            pipeline: p.name.clone(),
            start: range.start,
            end: range.end,
            done: count(&["done"]),
            stale: count(&["stale"]),
            failed: count(&["failed", "interrupted"]),
            missing: count(&["missing"]),
            corrupt: count(&["corrupt"]),
            corrupt_state,
            dirty: days.iter().filter(|d| d.dirty_changes > 0).count(),
            unknown_changes: unknown.iter().map(|u| u.count).sum(),
            watch,
            verify,
            verify_corrupt,
            days,
        });
    }
    Ok(Ok(pipelines))
}

/// The last `etl verify`, in a line: what it found and when.
pub(super) fn verify_line(p: &PipelineStatus) -> String {
    match &p.verify {
        Some(v) => v.summary(),
        None if p.verify_corrupt => "last verify unreadable (see the error below)".to_owned(),
        None => "never verified".to_owned(),
    }
}

/// `read`'s value; None when what it read is corrupt, its error kept in
/// `corrupt` for the table to show. Other errors (the store is down) stop
/// the command.
fn readable<T>(
    read: Result<T, LakeError>,
    corrupt: &mut Vec<String>,
) -> Result<Option<T>, LakeError> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(e @ LakeError::Corrupt { .. }) => {
            corrupt.push(e.to_string());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The tables for people. Consecutive missing days print as one line, so
/// a catch-up backlog of years stays readable.
fn human(pipelines: &[PipelineStatus], counts: super::Counts) -> String {
    let (n, b) = (counts.width(8), counts.width(10));
    let mut o = String::new();
    for p in pipelines {
        let _ = writeln!(o, "pipeline {} ({} to {}):", p.pipeline, p.start, p.end);
        let _ = writeln!(
            o,
            "  {:<10} {:<8} {:>n$} {:>n$} {:>b$} {:>7}  note",
            "day", "status", "read", "rows", "raw bytes", "time"
        );
        let mut gap: Option<(NaiveDate, NaiveDate)> = None;
        let flush_gap = |o: &mut String, gap: &mut Option<(NaiveDate, NaiveDate)>| {
            if let Some((from, to)) = gap.take() {
                if from == to {
                    let _ = writeln!(o, "  {:<10} {:<8}", from.to_string(), "missing");
                } else {
                    let days = (to - from).num_days() + 1;
                    let _ = writeln!(
                        o,
                        "  {:<10} {:<8} {:>n$} {:>n$} {:>b$} {:>7}  through {to} ({days} days)",
                        from.to_string(),
                        "missing",
                        "",
                        "",
                        "",
                        ""
                    );
                }
            }
        };
        for d in &p.days {
            if let Some(e) = &d.corrupt {
                flush_gap(&mut o, &mut gap);
                let what = e.split("\n\n").next().unwrap_or(e);
                let _ = writeln!(
                    o,
                    "  {:<10} {:<8} {:>n$} {:>n$} {:>b$} {:>7}  {}",
                    d.day.to_string(),
                    "corrupt",
                    "",
                    "",
                    "",
                    "",
                    what.split_once(" is corrupt: ")
                        .map_or(what, |(_, why)| why)
                );
                continue;
            }
            let Some(r) = &d.record else {
                gap = Some(gap.map_or((d.day, d.day), |(from, _)| (from, d.day)));
                continue;
            };
            flush_gap(&mut o, &mut gap);
            let num = |v: Option<u64>| counts.maybe(v);
            let note = match (&r.error, r.stale) {
                (Some(e), _) if !matches!(d.status, "done" | "stale") => e.clone(),
                (_, true) => {
                    "the spec changed what it lands since; `etl run --stale` redoes it".to_owned()
                }
                _ if d.dirty_changes > 0 => format!(
                    "dirty: {} change{} since; the next run redoes it",
                    d.dirty_changes,
                    if d.dirty_changes == 1 { "" } else { "s" }
                ),
                _ if r.rejected > 0 || !r.unconverted.is_empty() => {
                    let mut parts = Vec::new();
                    if r.rejected > 0 {
                        parts.push(format!("{} rejected", counts.show(r.rejected)));
                    }
                    let lost: u64 = r.unconverted.values().sum();
                    if lost > 0 {
                        parts.push(format!(
                            "{} values did not convert ({})",
                            counts.show(lost),
                            r.unconverted
                                .iter()
                                .map(|(c, n)| format!("{c}: {}", counts.show(*n)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    parts.join("; ")
                }
                _ => String::new(),
            };
            let status = if d.status == "interrupted" {
                "stopped"
            } else {
                d.status
            };
            let _ = writeln!(
                o,
                "  {:<10} {:<8} {:>n$} {:>n$} {:>b$} {:>7}  {note}",
                d.day.to_string(),
                status,
                num(r.read),
                num(r.warehouse_rows),
                num(r.raw_bytes),
                format!("{:.1}s", r.seconds)
            );
        }
        flush_gap(&mut o, &mut gap);
        let dirty = if p.dirty > 0 {
            format!(", {} dirty", p.dirty)
        } else {
            String::new()
        };
        let mut totals = format!("  {} done, ", p.done);
        if p.stale > 0 {
            let _ = write!(totals, "{} stale, ", p.stale);
        }
        let _ = write!(totals, "{} failed, {} missing", p.failed, p.missing);
        if p.corrupt > 0 {
            let _ = write!(totals, ", {} corrupt", p.corrupt);
        }
        let _ = writeln!(o, "{totals}{dirty}");
        let _ = writeln!(o, "  {}", verify_line(p));
        if p.stale > 0 {
            let _ = writeln!(
                o,
                "  {} stale day{} loaded before an edit of the spec that changes what {} land{}: a catch-up leaves {}; redo {} with `etl run --stale` (from MongoDB) or `etl replay --start D --end D` (from the lake)",
                p.stale,
                if p.stale == 1 { " was" } else { "s were" },
                if p.stale == 1 { "it" } else { "they" },
                if p.stale == 1 { "s" } else { "" },
                if p.stale == 1 { "it" } else { "them" },
                if p.stale == 1 { "it" } else { "them" },
            );
        }
        for e in p
            .days
            .iter()
            .filter_map(|d| d.corrupt.as_ref())
            .chain(&p.corrupt_state)
        {
            let _ = writeln!(o, "  error: {}", e.replace("\n\n", "\n  "));
        }
        if p.unknown_changes > 0 {
            let _ = writeln!(
                o,
                "  {} change{} of unknown day recorded by `etl watch` (changes/{}/unknown/ in the state store): the days they touched may be stale; redo them with `etl run --rerun --start D --end D`, then remove those files",
                p.unknown_changes,
                if p.unknown_changes == 1 { "" } else { "s" },
                p.pipeline
            );
        }
    }
    o
}
