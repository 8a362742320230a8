//! `etl preview`: a day's rows read back from the warehouse (a BigQuery
//! query, or the day's Parquet files), in key order, as an aligned table
//! or as JSON: a look at what landed without a console or a notebook.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::ValueEnum;
use serde_json::Value;
use unicode_width::UnicodeWidthStr;

use super::run::open_secrets;
use super::{load_plans, Context};
use crate::engine::{PipelineRuntime, Preview};
use crate::exit::Exit;

/// `etl preview`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline spec.
    pub file: PathBuf,

    /// The day to read.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: NaiveDate,

    /// Rows to show, the day's first in key order.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,

    /// A child table (such as `orders__items`) instead of the root table.
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,

    /// Only these columns, in this order (comma-separated).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub columns: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// An aligned table (by display width, so wide characters line up);
    /// long values cut to 40 characters.
    Table,
    /// One JSON object: where the rows come from, and the rows whole.
    Json,
}

/// Cells longer than this are cut, with `…`, in the table format.
const CELL_CHARS: usize = 40;

/// `etl preview`.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let loaded = match load_plans(ctx, std::slice::from_ref(&args.file), "previewed") {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let plan = loaded.plans.into_iter().next().expect("one spec, one plan");
    let templates = match open_secrets(
        &loaded.project,
        &loaded.profile,
        std::iter::once(&plan),
        "previewed",
    ) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let pipeline = plan.name.clone();
    let runtime = PipelineRuntime::new(plan, templates);
    let names = runtime
        .table_names(args.date)
        .map_err(|e| anyhow::anyhow!("{pipeline}: {e}"))?;
    let index = match &args.table {
        None => 0,
        Some(name) => match names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                let hint = crate::spec::did_you_mean(name, names.iter().map(String::as_str))
                    .unwrap_or_else(|| format!("its tables: {}", crate::spec::backticked(&names)));
                eprintln!("error: pipeline `{pipeline}` has no table `{name}`\n\nhint: {hint}");
                return Ok(Exit::Usage);
            }
        },
    };
    let rt = tokio::runtime::Runtime::new()?;
    let preview = match rt.block_on(runtime.preview(args.date, index, args.limit as usize)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {pipeline} {}: {e}", args.date);
            return Ok(Exit::RunFailed);
        }
    };
    let columns = match pick_columns(&preview, &args.columns) {
        Ok(c) => c,
        Err((message, hint)) => {
            eprintln!("error: {message}\n\nhint: {hint}");
            return Ok(Exit::Usage);
        }
    };
    match args.format {
        Format::Table => print!("{}", table(&pipeline, args.date, &preview, &columns)),
        Format::Json => {
            let rows: Vec<Value> = preview
                .rows
                .rows
                .iter()
                .map(|r| {
                    Value::Object(
                        columns
                            .iter()
                            .map(|c| (c.clone(), r.get(c).cloned().unwrap_or(Value::Null)))
                            .collect(),
                    )
                })
                .collect();
            let out = serde_json::json!({
                "pipeline": pipeline,
                "day": args.date,
                "table": preview.table,
                "place": preview.place,
                "rows_in_day": preview.count,
                "order_by": preview.order_by,
                "columns": columns,
                "rows": rows,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(Exit::Success)
}

/// The columns to show: `wanted` (each checked), or every one.
fn pick_columns(preview: &Preview, wanted: &[String]) -> Result<Vec<String>, (String, String)> {
    let have = &preview.rows.columns;
    if wanted.is_empty() {
        return Ok(have.clone());
    }
    // A day with no rows may know no columns: nothing to check them by.
    if have.is_empty() {
        return Ok(wanted.to_vec());
    }
    for w in wanted {
        if !have.contains(w) {
            let hint = crate::spec::did_you_mean(w, have.iter().map(String::as_str))
                .unwrap_or_else(|| format!("its columns: {}", crate::spec::backticked(have)));
            return Err((
                format!("table `{}` has no column `{w}`", preview.table),
                hint,
            ));
        }
    }
    Ok(wanted.to_vec())
}

/// The aligned table, under a line that says what it shows.
fn table(pipeline: &str, day: NaiveDate, p: &Preview, columns: &[String]) -> String {
    let mut o = String::new();
    let shown = p.rows.rows.len();
    let order = crate::spec::backticked(&p.order_by);
    if shown == 0 {
        let _ = writeln!(o, "{pipeline} {day}: no rows in {}", p.place);
        return o;
    }
    let _ = writeln!(
        o,
        "{pipeline} {day}: {} of {} rows in {}, by {order}",
        if shown as u64 == p.count {
            "all".to_owned()
        } else {
            format!("the first {shown}")
        },
        p.count,
        p.place,
    );
    let cells: Vec<Vec<(String, bool)>> = p
        .rows
        .rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(r.get(c))).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|row| row[i].0.width())
                .chain([c.width()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |o: &mut String, items: Vec<(String, bool)>| {
        let mut text = String::new();
        for (i, (s, right)) in items.into_iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(s.width());
            if right {
                text.push_str(&" ".repeat(pad));
                text.push_str(&s);
            } else {
                text.push_str(&s);
                text.push_str(&" ".repeat(pad));
            }
        }
        let _ = writeln!(o, "{}", text.trim_end());
    };
    line(&mut o, columns.iter().map(|c| (c.clone(), false)).collect());
    line(
        &mut o,
        widths.iter().map(|w| ("-".repeat(*w), false)).collect(),
    );
    for row in cells {
        line(&mut o, row);
    }
    o
}

/// A value as a table cell, and whether it is aligned right (a number):
/// NULL as `NULL`, text as itself with control characters escaped, other
/// values as compact JSON; cut to [`CELL_CHARS`].
fn cell(v: Option<&Value>) -> (String, bool) {
    let (text, right) = match v {
        None | Some(Value::Null) => ("NULL".to_owned(), false),
        Some(Value::String(s)) => (escape_controls(s), false),
        Some(n @ Value::Number(_)) => (n.to_string(), true),
        Some(other) => (other.to_string(), false),
    };
    if text.chars().count() > CELL_CHARS {
        let cut: String = text.chars().take(CELL_CHARS - 1).collect();
        (format!("{cut}…"), right)
    } else {
        (text, right)
    }
}

/// Text on one line: control characters as escapes, the rest as is.
fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_show_nulls_escape_text_and_cut_long_values() {
        assert_eq!(cell(None), ("NULL".into(), false));
        assert_eq!(cell(Some(&json!(null))), ("NULL".into(), false));
        assert_eq!(cell(Some(&json!(-1.5))), ("-1.5".into(), true));
        assert_eq!(cell(Some(&json!("a\nb\t"))), ("a\\nb\\t".into(), false));
        assert_eq!(
            cell(Some(&json!([1, {"a": 2}]))),
            ("[1,{\"a\":2}]".into(), false)
        );
        let long = "é".repeat(50);
        let (cut, _) = cell(Some(&json!(long)));
        assert_eq!(cut.chars().count(), CELL_CHARS);
        assert!(cut.ends_with("é…"), "{cut}");
    }
}
