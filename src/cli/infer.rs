//! `etl infer`: onboard a collection without code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;

use super::{diagnostics, templates_for, Context, RangeArgs};
use crate::engine::doc_id;
use crate::exit::Exit;
use crate::infer::{
    insert_time_only, thousands, Candidates, Draft, FieldShape, Kind, Profile, SamplePlan,
};
use crate::lock::SchemaLock;
use crate::plan::{ConnectionPlan, PartitionPlan, ProjectPlan};
use crate::source::MongoSource;
use crate::spec::{self, Loaded, PipelineSpec, SpecKind};
use crate::template::EnvMode;

/// Documents looked at from each end of the collection (by `_id`) to
/// find the partition field.
const SAMPLE: u32 = 1000;

/// `etl infer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `mongodb` connection of the active profile.
    #[arg(long, default_value = "mongo")]
    pub connection: String,
    /// The database.
    #[arg(long)]
    pub database: String,
    /// The collection.
    #[arg(long)]
    pub collection: String,
    /// The partition field. Default: the best candidate among the newest
    /// documents' top-level dates, `_id`, ISO strings and epoch numbers.
    #[arg(long)]
    pub partition_field: Option<String>,
    /// Limits the days looked at. Default: the whole span of the
    /// partition field, from its first day with data to its last.
    #[command(flatten)]
    pub range: RangeArgs,
    /// Documents read at most: every document of the span when it holds
    /// no more, else a sample of this many spread over windows of the span.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub sample: u64,
    /// The pipeline's name. Default: the collection's.
    #[arg(long)]
    pub name: Option<String>,
    /// Where to write the draft. Default: `pipelines/<name>.yaml` next to
    /// the project file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite an existing draft and lock.
    #[arg(long)]
    pub force: bool,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let super::CheckedProject {
        plan,
        spec: pspec,
        profile,
        ..
    } = match ctx.checked_project() {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let usage = |m: String, hint: &str| {
        eprintln!("error: {m}\n\nhint: {hint}");
        Ok(Exit::Usage)
    };
    let Some(crate::plan::MongoConnection {
        uri_template,
        uri_display,
        ..
    }) = plan
        .profiles
        .get(&profile)
        .and_then(|c| c.get(&args.connection))
        .and_then(|c| c.mongodb())
    else {
        return usage(
            format!(
                "profile `{profile}` has no `mongodb` connection named `{}`",
                args.connection
            ),
            "pass `--connection NAME` or `--profile NAME`",
        );
    };
    let (Some(lake), Some(warehouse)) = (
        first_of(&plan, &profile, |c| {
            matches!(c, ConnectionPlan::ObjectStore { .. })
        }),
        first_of(&plan, &profile, |c| {
            matches!(c, ConnectionPlan::Bigquery { .. })
        })
        .map(|c| ("bigquery", c))
        .or_else(|| {
            first_of(&plan, &profile, |c| {
                matches!(c, ConnectionPlan::ObjectStore { .. })
            })
            .map(|c| ("parquet", c))
        }),
    ) else {
        return usage(
            format!("profile `{profile}` has no `object_store` connection for the lake"),
            "add one under `profiles.<name>.connections` in etl.yaml",
        );
    };
    let name = args.name.clone().unwrap_or_else(|| args.collection.clone());
    let root = plan.root.clone();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("pipelines").join(format!("{name}.yaml")));
    let lock_path = SchemaLock::path(&root, &name);
    if !args.force {
        for p in [&out, &lock_path] {
            if p.exists() {
                return usage(
                    format!("{} exists", p.display()),
                    "pass `--force` to overwrite it, or `--name` for another pipeline",
                );
            }
        }
    }
    let templates = templates_for(&pspec, EnvMode::Strict);
    let uri = templates
        .render(uri_template, &Default::default())
        .map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Runtime::new()?;
    let ns = format!("{}.{}", args.database, args.collection);
    let source = rt
        .block_on(MongoSource::connect(
            &uri,
            "etl-infer",
            &args.database,
            &args.collection,
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // 1. The partition field, from the newest and the oldest documents, so
    // that a field the collection stopped (or started) using is seen.
    let today = ctx.today(chrono_tz::UTC);
    let request = args.range.request();
    let wanted = request.start.map(|s| (s, request.end.unwrap_or(today)));
    // What the server is doing, on a terminal only: on a big collection
    // without an index each step is a scan of its own.
    let spinner =
        indicatif::ProgressBar::new_spinner().with_finish(indicatif::ProgressFinish::AndClear);
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner.set_message(format!("{ns}: reading the newest and oldest documents"));
    let mut timings: Vec<(&str, std::time::Instant)> = vec![("", std::time::Instant::now())];
    let sampled = rt
        .block_on(ends_by_id(&source))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut candidates = Candidates::default();
    for doc in &sampled {
        candidates.observe(doc);
    }
    let sampled_by = if sampled.len() as u64 >= 2 * SAMPLE as u64 {
        format!(
            "{} documents sampled by `_id`, the {1} newest and the {1} oldest",
            thousands(sampled.len() as u64),
            thousands(u64::from(SAMPLE))
        )
    } else {
        format!("the {} documents", thousands(sampled.len() as u64))
    };
    let listed = |skip: Option<(&str, Kind)>| -> Vec<String> {
        candidates
            .found
            .iter()
            .filter(|((f, k), _)| skip != Some((f.as_str(), *k)))
            .map(|((f, k), n)| match wanted {
                Some(d) => format!(
                    "`{f}` {} ({} documents, {} in the requested days)",
                    k.name(),
                    thousands(*n),
                    thousands(candidates.in_range(f, *k, d))
                ),
                None => format!("`{f}` {} {}", k.name(), thousands(*n)),
            })
            .collect()
    };
    let Some(choice) = candidates.choose(args.partition_field.as_deref(), wanted) else {
        let others = listed(None);
        return usage(
            format!(
                "no partition field found in {sampled_by} of {ns}{}",
                match (args.partition_field.as_deref(), wanted) {
                    (Some(f), _) => format!(
                        " (`{f}` is not a date, ObjectId, ISO string or epoch number there)"
                    ),
                    (None, Some((s, e))) => format!(" with values between {s} and {e}"),
                    (None, None) => String::new(),
                }
            ),
            &if others.is_empty() {
                format!(
                    "{}pass `--partition-field` with a field outside arrays holding dates",
                    dates_found(&candidates)
                )
            } else {
                format!(
                    "candidates seen: {}; pass `--partition-field NAME`, or days that hold documents with `--start`/`--end`",
                    others.join(", ")
                )
            },
        );
    };
    let (field, kind) = (choice.field.clone(), choice.kind);
    if kind == Kind::ObjectId && args.partition_field.is_none() {
        let ids: Vec<i64> = sampled
            .iter()
            .filter_map(|d| d.get_object_id("_id").ok())
            .map(|o| o.timestamp().timestamp_millis())
            .collect();
        let span = (
            ids.iter().copied().min().unwrap_or(0),
            ids.iter().copied().max().unwrap_or(0),
        );
        if let Some(why) = insert_time_only(span, &candidates.dates) {
            return usage(
                format!("{ns} has no date field to partition on: `_id` is the only candidate, and {why}"),
                &format!(
                    "{}a day's filter needs a field outside arrays: give the documents one, or pass `--partition-field NAME`, or `--partition-field _id` to partition by insert time anyway",
                    dates_found(&candidates)
                ),
            );
        }
    }
    spinner.suspend(|| {
        println!(
            "{ns} via `{}` ({uri_display}), profile `{profile}`",
            args.connection
        )
    });
    spinner.suspend(|| {
        println!(
            "partition field: `{field}` ({}; in {} of {sampled_by}{})",
            kind.name(),
            thousands(choice.present),
            wanted.map_or(String::new(), |_| format!(
                ", {} of them in the requested days",
                thousands(choice.in_range)
            )),
        )
    });
    let others = listed(Some((&field, kind)));
    if !others.is_empty() {
        spinner.suspend(|| println!("  other candidates: {}", others.join(", ")));
    }

    // 2. The span: the field's first and last day, two sorted queries.
    let partition = PartitionPlan {
        field: field.clone(),
        kind: kind.spec(),
        timezone: chrono_tz::UTC,
        start_date: today,
        lookback: 0,
    };
    let (lo, hi) = wanted.unwrap_or((EARLIEST, LATEST));
    spinner.set_message(format!("{ns}: the first and last day of `{field}`"));
    timings.push(("sample by `_id`", std::time::Instant::now()));
    let Some((first, last)) = rt
        .block_on(span(&source, &partition, kind, lo, hi))
        .map_err(|e| anyhow::anyhow!("{e}"))?
    else {
        let others = listed(Some((&field, kind)));
        return usage(
            format!(
                "no document of {ns} has `{field}` ({}){}: no draft written",
                kind.name(),
                wanted.map_or(String::new(), |(s, e)| format!(" in {s} to {e}"))
            ),
            &format!(
                "a draft needs documents to learn from; {}pass `--partition-field NAME` or days that hold documents with `--start`/`--end`",
                if others.is_empty() {
                    String::new()
                } else {
                    format!("other candidates: {}; ", others.join(", "))
                }
            ),
        );
    };
    let filter = |a: NaiveDate, b: NaiveDate| partition.range_filter(a, b, None);
    spinner.set_message(format!("{ns}: counting documents"));
    timings.push(("span", std::time::Instant::now()));
    let (in_span, total) = rt
        .block_on(async {
            let in_span = source.count(filter(first, last)).await?;
            let total = match wanted {
                Some(_) => None,
                None => Some(source.count(bson::doc! {}).await?),
            };
            Ok::<_, crate::source::SourceError>((in_span, total))
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let days = (last - first).num_days() + 1;
    spinner.suspend(|| {
        println!(
            "data from {first} to {last} ({} {}): {} documents",
            thousands(days as u64),
            if days == 1 { "day" } else { "days" },
            thousands(in_span)
        )
    });
    if let Some(total) = total.filter(|t| *t > in_span) {
        let shape = FieldShape::of(sampled.iter().map(|d| d.as_ref()), &field, kind);
        spinner.suspend(|| println!(
            "warning: {} of {} documents have no `{field}` {} that a day can select, so no run loads them{}",
            thousands(total - in_span),
            thousands(total),
            kind.name(),
            if shape.other.is_empty() {
                String::new()
            } else {
                format!(
                    "; of {sampled_by}: {} of kind {}, {}",
                    thousands(shape.qualifies),
                    kind.name(),
                    shape.reasons()
                )
            }
        ));
    }
    let yesterday = today.pred_opt().unwrap_or(today);
    if last > yesterday {
        spinner.suspend(|| println!(
            "note: documents dated up to {last} are after yesterday ({yesterday}): a day loads once it has passed"
        ));
    }

    // 3. The documents the draft learns from: all, or windows over the span.
    timings.push(("counts", std::time::Instant::now()));
    let plan_of_sample = SamplePlan::new(first, last, in_span, args.sample);
    let mut docs = Vec::new();
    let mut bytes = 0usize;
    let mut short = Vec::new();
    match &plan_of_sample {
        SamplePlan::All => {
            spinner.set_message(format!("{ns}: reading {} documents", thousands(in_span)));
            docs = rt
                .block_on(source.first(
                    filter(first, last),
                    bson::doc! { "_id": 1 },
                    u32::try_from(args.sample).unwrap_or(u32::MAX),
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            spinner.suspend(|| {
                println!(
                    "read all {} documents from {first} to {last}",
                    thousands(docs.len() as u64)
                )
            });
        }
        SamplePlan::Windows {
            windows,
            per_window,
        } => {
            for (k, (a, b)) in windows.iter().enumerate() {
                spinner.set_message(format!(
                    "{ns}: reading window {} of {} ({a} to {b})",
                    k + 1,
                    windows.len()
                ));
                if bytes > MAX_SAMPLE_BYTES {
                    short.push(format!(
                        "{a}..{b} (not read: {MAX_SAMPLE_BYTES} bytes read already)"
                    ));
                    continue;
                }
                // Sorted on the partition field: with the index that
                // `validate --connect` asks for, each window is a short
                // index scan that stops at the limit.
                let got = rt
                    .block_on(source.first(
                        filter(*a, *b),
                        bson::doc! { field.as_str(): 1 },
                        u32::try_from(*per_window).unwrap_or(u32::MAX),
                    ))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if (got.len() as u64) < *per_window {
                    short.push(format!("{a}..{b} ({})", got.len()));
                }
                bytes += got.iter().map(|d| d.as_bytes().len()).sum::<usize>();
                docs.extend(got);
            }
            let mean_days = days as f64 / windows.len() as f64;
            spinner.suspend(|| println!(
                "read a sample of {} of {} documents: up to {} from each of {} windows of {} days, {first} to {last}",
                thousands(docs.len() as u64),
                thousands(in_span),
                thousands(*per_window),
                windows.len(),
                if mean_days.fract() == 0.0 {
                    format!("{mean_days}")
                } else {
                    format!("about {}", mean_days.round())
                }
            ));
            if !short.is_empty() {
                spinner.suspend(|| println!("  windows with fewer: {}", short.join(", ")));
            }
        }
    }
    timings.push(("documents", std::time::Instant::now()));
    spinner.finish_and_clear();
    let mut profile_of = Profile::default();
    for doc in &docs {
        profile_of.observe(doc);
    }
    let inside_maps = profile_of.inside_maps();
    println!(
        "paths ({}{}), types with counts, array sizes:",
        profile_of.paths.len() - inside_maps,
        if inside_maps > 0 {
            format!(
                "; {} more inside maps, not listed",
                thousands(inside_maps as u64)
            )
        } else {
            String::new()
        }
    );
    print!("{}", profile_of.report());

    // 4. The draft, checked, and its lock from the same documents.
    let start_date = request.start.unwrap_or(first);
    let provenance = match &plan_of_sample {
        SamplePlan::All => format!(
            "all {} documents of {ns} from {first} to {last}",
            thousands(docs.len() as u64)
        ),
        SamplePlan::Windows { windows, .. } => format!(
            "a sample of {} of the {} documents of {ns} from {first} to {last}, in {} windows",
            thousands(docs.len() as u64),
            thousands(in_span),
            windows.len()
        ),
    };
    let text = crate::infer::draft(
        &Draft {
            name: &name,
            connection: &args.connection,
            database: &args.database,
            collection: &args.collection,
            field: &field,
            kind,
            start_date,
            provenance: &provenance,
            lake,
            warehouse,
        },
        &profile_of,
    );
    let templates = Arc::new(templates);
    let loaded: Loaded<PipelineSpec> = spec::load_str(&out, &text, SpecKind::Pipeline);
    let mut diags = loaded.diagnostics.clone();
    let checked = match &loaded.spec {
        Some(spec) => match crate::plan::check_pipeline(spec, &out, &plan, &profile, &templates) {
            Ok(p) => Some((spec.clone(), p)),
            Err(problems) => {
                diags.extend(problems.into_iter().map(|p| loaded.place(p)));
                None
            }
        },
        None => None,
    };
    let Some((spec, plan1)) = checked else {
        diagnostics::print_human(&diags);
        eprintln!("error: the draft does not validate; this is a bug in `etl infer`:\n{text}");
        return Ok(Exit::RunFailed);
    };
    let tables = plan1.tables.clone();
    let mut builders = tables.schema_builders();
    for doc in &docs {
        tables
            .infer(doc, &mut builders)
            .map_err(|e| anyhow::anyhow!("{name}: flattening document {}: {e}", doc_id(doc)))?;
    }
    let mut lock = SchemaLock::offline(&spec, &name, None).map_err(anyhow::Error::msg)?;
    lock.absorb_builders(&tables, &tables.names(&name), builders);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, &text)?;
    lock.write(&lock_path)?;
    let shown = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    println!(
        "start_date: {start_date}{}",
        if request.start.is_some() {
            ", as asked"
        } else {
            ", the first day with data"
        }
    );
    println!(
        "wrote {} and {} ({} {}: {})",
        shown(&out),
        shown(&lock_path),
        lock.tables.len(),
        if lock.tables.len() == 1 {
            "table"
        } else {
            "tables"
        },
        lock.tables.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    match request.start {
        Some(s) => println!(
            "next: etl validate --connect {0} && etl run {0} --start {s} --end {1}",
            shown(&out),
            request.end.unwrap_or(yesterday).min(yesterday)
        ),
        None => {
            let catch_up = (yesterday - start_date).num_days() + 1;
            println!(
                "next: etl validate --connect {0} && etl run {0}   (a catch-up of {1} {2}, {start_date} to yesterday)",
                shown(&out),
                thousands(catch_up.max(0) as u64),
                if catch_up == 1 { "day" } else { "days" }
            );
        }
    }
    timings.push(("profile, draft and lock", std::time::Instant::now()));
    println!("took {}", took(&timings));
    Ok(Exit::Success)
}

/// `12.3 s: sample by `_id` 1.0 s, span 2.1 s, ...`: each step's time,
/// from the instants at which each ended (the first is the start).
fn took(timings: &[(&str, std::time::Instant)]) -> String {
    let secs = |a: std::time::Instant, b: std::time::Instant| (b - a).as_secs_f64();
    let steps: Vec<String> = timings
        .windows(2)
        .map(|w| format!("{} {:.1} s", w[1].0, secs(w[0].1, w[1].1)))
        .collect();
    format!(
        "{:.1} s: {}",
        secs(timings[0].1, timings[timings.len() - 1].1),
        steps.join(", ")
    )
}

/// The earliest and latest days `etl infer` looks for data in, without a
/// range: wide enough for any business date.
const EARLIEST: NaiveDate = match NaiveDate::from_ymd_opt(1000, 1, 1) {
    Some(d) => d,
    None => unreachable!(),
};
const LATEST: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 30) {
    Some(d) => d,
    None => unreachable!(),
};

/// Bytes of sampled documents held at most: windows past it are not read.
const MAX_SAMPLE_BYTES: usize = 512 << 20;

/// The dates found inside the documents, for a hint: `dates inside the
/// documents: `grades[].date` (...); `.
fn dates_found(c: &Candidates) -> String {
    if c.dates.is_empty() {
        return String::new();
    }
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map_or_else(|| ms.to_string(), |t| t.date_naive().to_string())
    };
    let listed: Vec<String> = c
        .dates
        .iter()
        .map(|(p, d)| {
            format!(
                "`{p}` ({} of {} sampled documents, {} to {})",
                thousands(d.documents),
                thousands(c.seen),
                day(d.min),
                day(d.max)
            )
        })
        .collect();
    format!("dates found inside the documents: {}; ", listed.join(", "))
}

/// The first and last day with a value of the field's kind between `lo`
/// and `hi`: two queries sorted on the field, never one per day. ISO
/// strings are compared as text, so the ends are read until one parses.
async fn span(
    source: &MongoSource,
    partition: &PartitionPlan,
    kind: Kind,
    lo: NaiveDate,
    hi: NaiveDate,
) -> Result<Option<(NaiveDate, NaiveDate)>, crate::source::SourceError> {
    let filter = partition.range_filter(lo, hi, None);
    let take = if kind == Kind::IsoString { 50 } else { 1 };
    let mut ends = Vec::with_capacity(2);
    for order in [1, -1] {
        let docs = source
            .first(
                filter.clone(),
                bson::doc! { partition.field.as_str(): order },
                take,
            )
            .await?;
        let day = docs
            .iter()
            .find_map(|d| crate::extjson::lookup(d, &partition.field).and_then(|v| kind.day(v)));
        match day {
            Some(d) => ends.push(d),
            None => return Ok(None),
        }
    }
    Ok(Some((ends[0].max(lo), ends[1].min(hi))))
}

/// The [`SAMPLE`] newest and [`SAMPLE`] oldest documents by `_id` (all
/// of them in a smaller collection), without reading any twice.
async fn ends_by_id(
    source: &MongoSource,
) -> Result<Vec<bson::RawDocumentBuf>, crate::source::SourceError> {
    let mut docs = source
        .first(bson::doc! {}, bson::doc! { "_id": -1 }, SAMPLE)
        .await?;
    if docs.len() as u32 == SAMPLE {
        if let Some(oldest_read) = docs
            .last()
            .and_then(|d| d.get("_id").ok().flatten())
            .map(|v| v.to_raw_bson())
        {
            let filter = bson::doc! { "_id": { "$lt": bson::Bson::try_from(oldest_read).unwrap_or(bson::Bson::Null) } };
            docs.extend(
                source
                    .first(filter, bson::doc! { "_id": 1 }, SAMPLE)
                    .await?,
            );
        }
    }
    Ok(docs)
}

/// The first connection of `profile` that `want` accepts, by name.
fn first_of<'p>(
    plan: &'p ProjectPlan,
    profile: &str,
    want: impl Fn(&ConnectionPlan) -> bool,
) -> Option<&'p str> {
    plan.profiles
        .get(profile)?
        .iter()
        .find(|(_, c)| want(c))
        .map(|(n, _)| n.as_str())
}
