//! `etl infer`: onboard a collection without code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;

use super::{diagnostics, templates_for, Context, RangeArgs};
use crate::engine::{PartitionError, PipelineRuntime};
use crate::exit::Exit;
use crate::infer::{Candidates, Draft, Kind, Profile};
use crate::lock::SchemaLock;
use crate::plan::{resolve_range, ConnectionPlan, ProjectPlan};
use crate::spec::{self, Loaded, PipelineSpec, SpecKind};
use crate::template::EnvMode;

/// Documents looked at to find the partition field.
const SAMPLE: i64 = 1000;

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
    /// The days whose documents are all read. Default: the newest
    /// document's day.
    #[command(flatten)]
    pub range: RangeArgs,
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

    // 1. The partition field, from the newest documents: with requested
    // days, one whose sampled values fall in them.
    let tz = chrono_tz::UTC;
    let today = ctx.today(tz);
    let request = args.range.request();
    let wanted = request.start.map(|s| {
        (
            s,
            request
                .end
                .unwrap_or(today)
                .min(today.pred_opt().unwrap_or(today)),
        )
    });
    let candidates = rt.block_on(sample(&uri, &args.database, &args.collection))?;
    let listed = |skip: Option<(&str, Kind)>| -> Vec<String> {
        candidates
            .found
            .iter()
            .filter(|((f, k), _)| skip != Some((f.as_str(), *k)))
            .map(|((f, k), n)| match wanted {
                Some(d) => format!(
                    "`{f}` {} ({n} documents, {} in the requested days)",
                    k.name(),
                    candidates.in_range(f, *k, d)
                ),
                None => format!("`{f}` {} {n}", k.name()),
            })
            .collect()
    };
    let Some(choice) = candidates.choose(args.partition_field.as_deref(), wanted) else {
        let others = listed(None);
        return usage(
            format!(
                "no partition field found in the {} newest documents of {}.{}{}",
                candidates.seen,
                args.database,
                args.collection,
                match (args.partition_field.as_deref(), wanted) {
                    (Some(f), _) => format!(
                        " (`{f}` is not a date, ObjectId, ISO string or epoch number there)"
                    ),
                    (None, Some((s, e))) => format!(" with values between {s} and {e}"),
                    (None, None) => String::new(),
                }
            ),
            &if others.is_empty() {
                "pass `--partition-field` with a top-level field holding dates".to_owned()
            } else {
                format!(
                    "candidates seen: {}; pass `--partition-field NAME`, or days that hold documents with `--start`/`--end`",
                    others.join(", ")
                )
            },
        );
    };
    let (field, kind) = (choice.field.clone(), choice.kind);
    println!(
        "{}.{} via `{}` ({uri_display}), profile `{profile}`",
        args.database, args.collection, args.connection
    );
    println!(
        "partition field: `{field}` ({}; in {} of the {} newest documents{}, a sample used only to choose it)",
        kind.name(),
        choice.present,
        candidates.seen,
        wanted.map_or(String::new(), |_| format!(", {} of them in the requested days", choice.in_range)),
    );
    let others = listed(Some((&field, kind)));
    if !others.is_empty() {
        println!("  other candidates: {}", others.join(", "));
    }

    // 2. The days, and every document in them.
    let newest = candidates.newest_day(&field, kind).unwrap_or(today);
    let start = request.start.unwrap_or(newest);
    let range = resolve_range(
        crate::plan::RangeRequest {
            start: Some(start),
            end: request.end.or(Some(if request.start.is_some() {
                today
            } else {
                newest
            })),
        },
        start,
        today,
    );
    for n in &range.notices {
        println!("note: {n}");
    }
    let draft = |profile_of: &Profile| {
        crate::infer::draft(
            &Draft {
                name: &name,
                connection: &args.connection,
                database: &args.database,
                collection: &args.collection,
                field: &field,
                kind,
                start_date: range.start,
                lake,
                warehouse,
            },
            profile_of,
        )
    };
    let templates = Arc::new(templates);
    let check = |text: &str| -> Result<(PipelineSpec, crate::plan::PipelinePlan), Exit> {
        let loaded: Loaded<PipelineSpec> = spec::load_str(&out, text, SpecKind::Pipeline);
        let mut diags = loaded.diagnostics.clone();
        if let Some(spec) = &loaded.spec {
            match crate::plan::check_pipeline(spec, &out, &plan, &profile, &templates) {
                Ok(p) => return Ok((spec.clone(), p)),
                Err(problems) => diags.extend(problems.into_iter().map(|p| loaded.place(p))),
            }
        }
        diagnostics::print_human(&diags);
        eprintln!("error: the draft does not validate; this is a bug in `etl infer`:\n{text}");
        Err(Exit::RunFailed)
    };
    let (_, plan0) = match check(&draft(&Profile::default())) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let runtime = PipelineRuntime::new(plan0, templates.clone());
    let mut profile_of = Profile::default();
    let days: Vec<NaiveDate> = range.days().collect();
    rt.block_on(async {
        for day in &days {
            runtime
                .scan_day(*day, &mut |doc| {
                    profile_of.observe(doc);
                    Ok(())
                })
                .await?;
        }
        Ok::<(), PartitionError>(())
    })
    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    println!(
        "read all {} documents of {} {} ({} to {})",
        profile_of.documents,
        days.len(),
        if days.len() == 1 {
            "partition"
        } else {
            "partitions"
        },
        range.start,
        range.end
    );
    if profile_of.documents == 0 {
        let others = listed(Some((&field, kind)));
        return usage(
            format!(
                "no document of {}.{} has `{field}` ({}) in {} to {}: no draft written",
                args.database,
                args.collection,
                kind.name(),
                range.start,
                range.end
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
    }
    println!(
        "paths ({}), types with counts, array sizes:",
        profile_of.paths.len()
    );
    print!("{}", profile_of.report());

    // 3. The draft, checked, and its lock from the same documents.
    let text = draft(&profile_of);
    let (spec, plan1) = match check(&text) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let runtime = PipelineRuntime::new(plan1, templates);
    let lock = rt
        .block_on(async {
            let tables = runtime.flatten_tables().await?;
            let mut builders = tables.schema_builders();
            for day in &days {
                runtime.infer_day(*day, &mut builders).await?;
            }
            let mut lock =
                SchemaLock::offline(&spec, &name, None).map_err(PartitionError::fatal)?;
            lock.absorb_builders(&tables, &tables.names(&name), builders);
            Ok::<SchemaLock, PartitionError>(lock)
        })
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, &text)?;
    lock.write(&lock_path)?;
    let shown = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    println!(
        "wrote {} and {} ({} tables: {})",
        shown(&out),
        shown(&lock_path),
        lock.tables.len(),
        lock.tables.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    println!(
        "next: etl validate {0} && etl run {0} --start {1} --end {2}",
        shown(&out),
        range.start,
        range.end
    );
    Ok(Exit::Success)
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

/// The newest documents' candidates.
async fn sample(uri: &str, database: &str, collection: &str) -> anyhow::Result<Candidates> {
    use futures::TryStreamExt;
    let client = mongodb::Client::with_uri_str(uri).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot connect: {}",
            crate::redact::redact_text(&e.to_string())
        )
    })?;
    let coll = client
        .database(database)
        .collection::<bson::RawDocumentBuf>(collection);
    let mut cursor = coll
        .find(bson::doc! {})
        .sort(bson::doc! { "_id": -1 })
        .limit(SAMPLE)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "reading {database}.{collection}: {}",
                crate::redact::redact_text(&e.to_string())
            )
        })?;
    let mut candidates = Candidates::default();
    while let Some(doc) = cursor.try_next().await.map_err(|e| {
        anyhow::anyhow!(
            "reading {database}.{collection}: {}",
            crate::redact::redact_text(&e.to_string())
        )
    })? {
        candidates.observe(&doc);
    }
    Ok(candidates)
}
