//! `etl report`: one self-contained HTML page of what the ledger and the
//! schema locks say about each pipeline: a calendar strip of its days, a
//! table per day, a chart of documents and duration, the failures with the
//! command that reruns each, and the locked columns.
//!
//! The page has no script and loads nothing: styles are inline and the
//! chart is an SVG drawn here, so it opens from a file, a CI artifact or
//! an email attachment alike. Colour is never the only signal: every cell
//! and row also carries a symbol and a word.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::status::{collect, DayStatus, PipelineStatus};
use super::{load_plans, Context};
use crate::exit::Exit;
use crate::plan::{PipelinePlan, ProjectPlan};

/// `etl report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Where to write the page. Default: `.etl/report.html` beside the
    /// project file.
    #[arg(long, short)]
    pub output: Option<PathBuf>,

    /// Open the page in a browser once written (`$BROWSER` when set).
    #[arg(long)]
    pub open: bool,
}

/// `etl report`: exit 0 once the page is written, whatever it shows.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let loaded = match load_plans(ctx, &args.files, "reported") {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let path = args
        .output
        .unwrap_or_else(|| loaded.project.root.join(".etl").join("report.html"));
    if let Err(code) = write(ctx, &loaded.project, &loaded.profile, &loaded.plans, &path)? {
        return Ok(code);
    }
    println!("wrote {}", path.display());
    if args.open {
        if let Err(e) = opener::open_browser(&path) {
            eprintln!(
                "error: cannot open {} in a browser: {e}\n\nhint: set BROWSER to the browser's command, or open the file yourself",
                path.display()
            );
            return Ok(Exit::RunFailed);
        }
    }
    Ok(Exit::Success)
}

/// Reads the ledger and writes the page to `path` (its folder is made).
/// The inner `Err` is a usage error already printed.
pub(super) fn write(
    ctx: &Context,
    project: &ProjectPlan,
    profile: &str,
    plans: &[PipelinePlan],
    path: &Path,
) -> anyhow::Result<Result<(), Exit>> {
    let statuses = match collect(ctx, project, profile, plans)? {
        Ok(s) => s,
        Err(code) => return Ok(Err(code)),
    };
    let html = page(project, plans, &statuses, ctx.clock().now());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, html)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(Ok(()))
}

/// `etl run` of `plan`'s spec, from the project folder, with its profile
/// when it is not the default one; a day's rerun adds `--date D`.
pub(super) fn rerun_command(project: &ProjectPlan, plan: &PipelinePlan) -> String {
    let file = plan.file.strip_prefix(&project.root).unwrap_or(&plan.file);
    if plan.profile == project.default_profile {
        format!("etl run {}", file.display())
    } else {
        format!("etl --profile {} run {}", plan.profile, file.display())
    }
}

/// The page. Pure: the same ledger, locks and instant give the same bytes.
pub(super) fn page(
    project: &ProjectPlan,
    plans: &[PipelinePlan],
    statuses: &[PipelineStatus],
    now: DateTime<Utc>,
) -> String {
    let pipelines: Vec<PipelineView> = plans
        .iter()
        .zip(statuses)
        .map(|(plan, status)| PipelineView::of(project, plan, status))
        .collect();
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", include_str!("report.html"))
        .expect("the report template parses");
    env.get_template("report.html")
        .expect("added above")
        .render(minijinja::context! {
            generated_at => now.format("%Y-%m-%d %H:%M UTC").to_string(),
            version => env!("CARGO_PKG_VERSION"),
            profile => plans.first().map(|p| p.profile.as_str()).unwrap_or(""),
            pipelines,
        })
        .expect("the report template renders its own model")
}

/// What the template shows of one pipeline; numbers already formatted.
#[derive(Debug, Serialize)]
struct PipelineView {
    name: String,
    /// Its id in the page, for the table of contents.
    anchor: String,
    file: String,
    source: String,
    start: NaiveDate,
    end: NaiveDate,
    counts: Vec<(&'static str, usize)>,
    totals: Totals,
    strip: Vec<Cell>,
    rows: Vec<Row>,
    chart: Option<Chart>,
    failures: Vec<Failure>,
    tables: Vec<TableView>,
    lock_file: String,
    /// The last `etl verify`, in a line, and `ok`, `unaccounted` or
    /// `never` for its badge.
    verify: String,
    verify_kind: &'static str,
}

#[derive(Debug, Serialize)]
struct Totals {
    documents: String,
    rows: String,
    rejected: String,
    raw_bytes: String,
}

/// One day of the calendar strip.
#[derive(Debug, Serialize)]
struct Cell {
    day: NaiveDate,
    /// A CSS class and the word a screen reader says.
    kind: &'static str,
    symbol: &'static str,
}

/// One row of the per-day table: a day, or a run of missing days.
#[derive(Debug, Serialize)]
struct Row {
    /// Its failure is listed under Failures, with an id of the day.
    failure: bool,
    day: String,
    kind: &'static str,
    symbol: &'static str,
    source: String,
    rows: String,
    child_rows: Vec<String>,
    rejected: String,
    raw_bytes: String,
    seconds: String,
    attempts: String,
    note: String,
}

#[derive(Debug, Serialize)]
struct Failure {
    day: NaiveDate,
    kind: &'static str,
    error: String,
    attempts: u32,
    command: String,
}

#[derive(Debug, Serialize)]
struct TableView {
    name: String,
    columns: Vec<(String, String)>,
}

/// The SVG chart: a bar of documents per day, a line of duration.
#[derive(Debug, Serialize)]
struct Chart {
    width: u32,
    height: u32,
    /// The chart's own box, inside the axes' labels.
    left: u32,
    top: u32,
    inner_width: u32,
    inner_height: u32,
    bars: Vec<Bar>,
    line: String,
    points: Vec<(String, String)>,
    max_documents: String,
    max_seconds: String,
    first_day: NaiveDate,
    last_day: NaiveDate,
    /// Days left out on the left, when the range is longer than the chart.
    omitted: usize,
}

#[derive(Debug, Serialize)]
struct Bar {
    /// `bar`, or `bar bar-failed` for a day that did not end done.
    class: &'static str,
    x: String,
    y: String,
    width: String,
    height: String,
    title: String,
}

/// The days a chart shows at most; older ones are counted in a caption.
const CHART_DAYS: usize = 92;

fn number(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

fn bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

/// The class, word and symbol a day shows.
fn kind_of(d: &DayStatus) -> (&'static str, &'static str) {
    match (d.status, &d.record) {
        ("done", Some(r)) if r.rejected > 0 => ("rejects", "!"),
        ("done", _) => ("done", "✓"),
        ("stale", _) => ("stale", "~"),
        ("corrupt", _) => ("corrupt", "?"),
        ("failed", _) => ("failed", "✗"),
        ("interrupted", _) => ("stopped", "‖"),
        _ => ("missing", "·"),
    }
}

impl PipelineView {
    fn of(project: &ProjectPlan, plan: &PipelinePlan, status: &PipelineStatus) -> Self {
        let shown = |p: &Path| {
            p.strip_prefix(&project.root)
                .unwrap_or(p)
                .display()
                .to_string()
        };
        let file = shown(&plan.file);
        let rerun = rerun_command(project, plan);
        let strip = status
            .days
            .iter()
            .map(|d| {
                let (kind, symbol) = kind_of(d);
                Cell {
                    day: d.day,
                    kind,
                    symbol,
                }
            })
            .collect();
        let mut counts = vec![
            ("done", 0),
            ("stale", 0),
            ("rejects", 0),
            ("failed", 0),
            ("stopped", 0),
            ("missing", 0),
            ("corrupt", 0),
        ];
        let mut failures = Vec::new();
        let (mut documents, mut rows_total, mut rejected, mut raw) = (0u64, 0u64, 0u64, 0u64);
        for d in &status.days {
            let (kind, _) = kind_of(d);
            if let Some(c) = counts.iter_mut().find(|(k, _)| *k == kind) {
                c.1 += 1;
            }
            let Some(r) = &d.record else { continue };
            if matches!(d.status, "done" | "stale") {
                documents += r.read.unwrap_or(0);
                rows_total += r.warehouse_rows.unwrap_or(0);
                rejected += r.rejected;
                raw += r.raw_bytes.unwrap_or(0);
            }
            if matches!(kind, "failed" | "stopped") {
                failures.push(Failure {
                    day: d.day,
                    kind,
                    error: r
                        .error
                        .clone()
                        .unwrap_or_else(|| "stopped before it ended".to_owned()),
                    attempts: r.attempts,
                    command: format!("{rerun} --date {}", d.day),
                });
            }
        }
        let tables = plan
            .lock
            .as_ref()
            .map(|lock| {
                lock.tables
                    .iter()
                    .map(|(name, t)| TableView {
                        name: name.clone(),
                        columns: t
                            .columns
                            .iter()
                            .map(|c| (c.name.clone(), c.type_label()))
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            anchor: format!("pipeline-{}", plan.name),
            name: plan.name.clone(),
            file,
            source: format!("{}.{}", plan.source.database, plan.source.collection),
            start: status.start,
            end: status.end,
            counts,
            totals: Totals {
                documents: number(documents),
                rows: number(rows_total),
                rejected: number(rejected),
                raw_bytes: bytes(raw),
            },
            strip,
            rows: rows(&status.days),
            chart: chart(&status.days),
            failures,
            tables,
            lock_file: shown(&crate::lock::SchemaLock::path(&project.root, &plan.name)),
            verify: super::status::verify_line(status),
            verify_kind: match &status.verify {
                Some(v) if v.unaccounted() => "unaccounted",
                Some(_) => "ok",
                None => "never",
            },
        }
    }
}

/// The table's rows: one per day with a record, one per run of missing
/// days, so a backlog of years stays one line.
fn rows(days: &[DayStatus]) -> Vec<Row> {
    let mut out = Vec::new();
    let mut gap: Option<(NaiveDate, NaiveDate)> = None;
    let flush = |out: &mut Vec<Row>, gap: &mut Option<(NaiveDate, NaiveDate)>| {
        if let Some((from, to)) = gap.take() {
            let n = (to - from).num_days() + 1;
            let day = if n == 1 {
                from.to_string()
            } else {
                format!("{from} to {to}")
            };
            out.push(Row {
                failure: false,
                day,
                kind: "missing",
                symbol: "·",
                source: String::new(),
                rows: String::new(),
                child_rows: Vec::new(),
                rejected: String::new(),
                raw_bytes: String::new(),
                seconds: String::new(),
                attempts: String::new(),
                note: if n == 1 {
                    "not run yet".to_owned()
                } else {
                    format!("{n} days not run yet")
                },
            });
        }
    };
    for d in days {
        if let Some(e) = &d.corrupt {
            flush(&mut out, &mut gap);
            out.push(Row {
                failure: true,
                day: d.day.to_string(),
                kind: "corrupt",
                symbol: "?",
                source: String::new(),
                rows: String::new(),
                child_rows: Vec::new(),
                rejected: String::new(),
                raw_bytes: String::new(),
                seconds: String::new(),
                attempts: String::new(),
                note: e.replace("\n\n", " "),
            });
            continue;
        }
        let Some(r) = &d.record else {
            gap = Some(gap.map_or((d.day, d.day), |(from, _)| (from, d.day)));
            continue;
        };
        flush(&mut out, &mut gap);
        let (kind, symbol) = kind_of(d);
        let maybe = |v: Option<u64>| v.map_or_else(|| "–".to_owned(), number);
        // A failure's error is in full under Failures; the row links to it.
        let failure = matches!(kind, "failed" | "stopped");
        let note = if failure {
            "see its error and rerun command above".to_owned()
        } else if r.stale {
            "stale: the spec changed what it lands since; `etl run --stale` redoes it".to_owned()
        } else if !r.unconverted.is_empty() {
            format!(
                "{} values did not convert, NULL in their rows ({}); listed in _unconverted.jsonl",
                number(r.unconverted.values().sum()),
                r.unconverted
                    .iter()
                    .map(|(c, n)| format!("{c}: {}", number(*n)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        out.push(Row {
            failure,
            day: d.day.to_string(),
            kind,
            symbol,
            source: maybe(r.read),
            rows: maybe(r.warehouse_rows),
            child_rows: r
                .child_rows
                .iter()
                .map(|(t, n)| format!("{t}: {}", number(*n)))
                .collect(),
            rejected: number(r.rejected),
            raw_bytes: r.raw_bytes.map_or_else(|| "–".to_owned(), bytes),
            seconds: format!("{:.1} s", r.seconds),
            attempts: r.attempts.to_string(),
            note,
        });
    }
    flush(&mut out, &mut gap);
    out
}

/// Bars of documents and a line of seconds over the last [`CHART_DAYS`]
/// days; None when no day has run.
fn chart(days: &[DayStatus]) -> Option<Chart> {
    let omitted = days.len().saturating_sub(CHART_DAYS);
    let shown = &days[omitted..];
    if shown.iter().all(|d| d.record.is_none()) {
        return None;
    }
    let (width, height, left, top, right, bottom) = (760u32, 220u32, 64u32, 16u32, 56u32, 28u32);
    let (inner_width, inner_height) = (width - left - right, height - top - bottom);
    let documents = |d: &DayStatus| d.record.as_ref().and_then(|r| r.read.or(r.warehouse_rows));
    let max_documents = shown.iter().filter_map(documents).max().unwrap_or(0).max(1);
    let max_seconds = shown
        .iter()
        .filter_map(|d| d.record.as_ref().map(|r| r.seconds))
        .fold(0.0f64, f64::max)
        .max(0.1);
    let slot = f64::from(inner_width) / shown.len() as f64;
    let fmt = |v: f64| format!("{v:.1}");
    let mut bars = Vec::new();
    let mut points = Vec::new();
    for (i, d) in shown.iter().enumerate() {
        let Some(r) = &d.record else { continue };
        let x = f64::from(left) + slot * i as f64;
        if let Some(n) = documents(d) {
            let h = f64::from(inner_height) * n as f64 / max_documents as f64;
            let done = d.status == "done";
            bars.push(Bar {
                class: if done { "bar" } else { "bar bar-failed" },
                x: fmt(x + slot * 0.1),
                y: fmt(f64::from(top + inner_height) - h),
                width: fmt((slot * 0.8).max(0.5)),
                height: fmt(h),
                title: format!(
                    "{}: {} documents, {:.1} s{}",
                    d.day,
                    number(n),
                    r.seconds,
                    if done { "" } else { ", not done" }
                ),
            });
        }
        let y = f64::from(top + inner_height) - f64::from(inner_height) * r.seconds / max_seconds;
        points.push((fmt(x + slot / 2.0), fmt(y)));
    }
    let line = points
        .iter()
        .map(|(x, y)| format!("{x},{y}"))
        .collect::<Vec<_>>()
        .join(" ");
    Some(Chart {
        width,
        height,
        left,
        top,
        inner_width,
        inner_height,
        bars,
        line,
        points,
        max_documents: number(max_documents),
        max_seconds: format!("{max_seconds:.1} s"),
        first_day: shown[0].day,
        last_day: shown[shown.len() - 1].day,
        omitted,
    })
}
