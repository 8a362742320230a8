//! [`check_pipeline`]: a pipeline spec resolved against one profile.
//!
//! One check per section of the spec, each reporting its own problems into
//! the shared list and returning what it resolved, as Vector's
//! `config::validation` does; `check_pipeline` only composes them, so every
//! problem of every section is reported in one go.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bson::{Bson, Document};
use chrono::NaiveDate;
use chrono_tz::Tz;

use super::flatten::{check_flatten, compile_flatten};
use super::{
    bad_timezone, check_cron, check_version, legacy_spec_hash, rows_hash, ChangesPlan,
    ConnectionPlan, LakePlan, MongoConnection, PartitionPlan, PipelinePlan, ProjectPlan,
    SourcePlan, StoreConnection, WarehousePlan, COLUMN_HINT,
};
use crate::spec::names::{is_bq_name, is_column_name, is_identifier};
use crate::spec::*;
use crate::template::{Templates, Vars};
use crate::ypath;

/// Checks a pipeline against one profile of the project.
pub fn check_pipeline(
    spec: &PipelineSpec,
    file: &Path,
    project: &ProjectPlan,
    profile: &str,
    templates: &Templates,
) -> Result<PipelinePlan, Vec<Problem>> {
    let mut problems = Vec::new();
    let name = spec.name.clone().unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    check_version(&mut problems, spec.version, "pipeline specs");
    check_name(&mut problems, &name);
    let Some(conns) = project.profiles.get(profile) else {
        let names: Vec<&str> = project.profiles.keys().map(String::as_str).collect();
        return Err(vec![Problem::new(
            YamlPath::root(),
            format!(
                "unknown profile `{profile}`, expected one of {}",
                backticked(&names)
            ),
        )]);
    };
    let connections = Connections { conns, profile };
    let source_conn = connections
        .get(
            &mut problems,
            ypath!("source", "connection"),
            &spec.source.connection,
            ConnectionKind::Mongodb,
            "the source",
        )
        .and_then(|c| c.mongodb().cloned());
    let lake_conn = connections
        .get(
            &mut problems,
            ypath!("sinks", "lake", "connection"),
            &spec.sinks.lake.connection,
            ConnectionKind::ObjectStore,
            "the lake sink",
        )
        .and_then(|c| c.object_store().cloned());
    let warehouse_conn = match &spec.sinks.warehouse {
        WarehouseSinkSpec::Bigquery(b) => connections.get(
            &mut problems,
            ypath!("sinks", "warehouse", "connection"),
            &b.connection,
            ConnectionKind::Bigquery,
            "a `bigquery` warehouse",
        ),
        WarehouseSinkSpec::Parquet(p) => connections.get(
            &mut problems,
            ypath!("sinks", "warehouse", "connection"),
            &p.connection,
            ConnectionKind::ObjectStore,
            "a `parquet` warehouse",
        ),
    };

    let source = check_source(&mut problems, &spec.source, &project.defaults, source_conn);
    let partition = check_partition(&mut problems, &spec.partition, &project.defaults);
    check_flatten(
        &mut problems,
        &ypath!("flatten"),
        &spec.flatten,
        &partition.field,
    );
    // Compiling the rules repeats what `check_flatten` reports, so it runs
    // only on rules (and a spec) without problems so far.
    let tables = if problems.is_empty() {
        compile_flatten(&mut problems, spec, &name)
    } else {
        None
    };
    let sample = Sample::new(templates, &name, &spec.source.collection, &partition);
    let lake = check_lake(
        &mut problems,
        &spec.sinks.lake,
        &project.defaults,
        &sample,
        lake_conn,
    );
    let warehouse = check_warehouse(
        &mut problems,
        &spec.sinks.warehouse,
        &sample,
        warehouse_conn,
        lake.as_ref().map(|l| l.connection.url.as_str()),
    );
    let schedule = check_schedule(&mut problems, spec, &project.defaults);
    let changes = check_changes(&mut problems, spec.changes.as_ref());

    // A part is missing only where a problem says why.
    let (Some(source), Some(lake), Some(warehouse), Some(tables), true) =
        (source, lake, warehouse, tables, problems.is_empty())
    else {
        return Err(problems);
    };
    Ok(PipelinePlan {
        spec_hash: rows_hash(spec),
        legacy_spec_hash: legacy_spec_hash(spec),
        file: file.to_owned(),
        profile: profile.to_owned(),
        source,
        partition,
        flatten: spec.flatten.clone(),
        tables: Arc::new(tables),
        lake,
        warehouse,
        schedule,
        changes,
        lock: None,
        name,
    })
}

/// `name`, or the file's stem, which names the root table too.
fn check_name(problems: &mut Vec<Problem>, name: &str) {
    if !is_identifier(name) {
        problems.push(Problem::new(
            ypath!("name"),
            format!("invalid pipeline name `{name}`, expected letters, digits, `_` or `-`"),
        ));
    }
}

/// The connections of the profile a pipeline runs in.
struct Connections<'a> {
    conns: &'a BTreeMap<String, ConnectionPlan>,
    profile: &'a str,
}

impl Connections<'_> {
    /// The connection `name`, which `role` needs to be of type `want`.
    fn get(
        &self,
        problems: &mut Vec<Problem>,
        at: YamlPath,
        name: &str,
        want: ConnectionKind,
        role: &str,
    ) -> Option<ConnectionPlan> {
        let profile = self.profile;
        match self.conns.get(name) {
            Some(c) if c.kind() == want => Some(c.clone()),
            Some(c) => {
                problems.push(
                    Problem::new(
                        at,
                        format!(
                            "connection `{name}` is of type `{}`, but {role} needs type `{want}`",
                            c.kind()
                        ),
                    )
                    .hint(format!(
                        "name a connection of type `{want}` from profile `{profile}` in etl.yaml"
                    )),
                );
                None
            }
            None => {
                let names: Vec<&str> = self.conns.keys().map(String::as_str).collect();
                let mut p = Problem::new(
                    at,
                    format!(
                        "unknown connection `{name}` in profile `{profile}`, expected one of {}",
                        backticked(&names)
                    ),
                );
                p.hint = did_you_mean(name, names.iter().copied()).or_else(|| {
                    Some(format!(
                        "add `{name}` under `profiles.{profile}.connections` in etl.yaml"
                    ))
                });
                problems.push(p);
                None
            }
        }
    }
}

/// `source`: names, filter, projection and batch size. None without a
/// connection.
fn check_source(
    problems: &mut Vec<Problem>,
    source: &SourceSpec,
    defaults: &DefaultsSpec,
    connection: Option<MongoConnection>,
) -> Option<SourcePlan> {
    for (key, value) in [
        ("database", &source.database),
        ("collection", &source.collection),
    ] {
        if value.is_empty()
            || value.contains('\0')
            || (key == "database" && value.contains(['/', '\\', '.', ' ', '"', '$']))
        {
            problems.push(Problem::new(
                ypath!("source", key),
                format!("invalid {key} name `{value}`"),
            ));
        }
    }
    if source.collection.starts_with("system.") || source.collection.contains('$') {
        problems.push(Problem::new(
            ypath!("source", "collection"),
            format!(
                "invalid collection name `{}`: system collections and `$` are not allowed",
                source.collection
            ),
        ));
    }
    let base_filter = extjson_doc(problems, ypath!("source", "filter"), source.filter.as_ref());
    let projection = extjson_doc(
        problems,
        ypath!("source", "projection"),
        source.projection.as_ref(),
    );
    let batch_size = source.batch_size.or(defaults.batch_size).unwrap_or(1000);
    if batch_size == 0 {
        problems.push(Problem::new(
            ypath!("source", "batch_size"),
            "expected a batch size of at least 1, found 0",
        ));
    }
    Some(SourcePlan {
        connection_name: source.connection.clone(),
        connection: connection?,
        database: source.database.clone(),
        collection: source.collection.clone(),
        base_filter,
        projection,
        batch_size,
        max_time_ms: source.max_time_ms,
        count: source.count,
    })
}

/// A `filter` or `projection` in Extended JSON, as a BSON document.
fn extjson_doc(
    problems: &mut Vec<Problem>,
    at: YamlPath,
    v: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<Document> {
    let map = v?;
    match Bson::try_from(serde_json::Value::Object(map.clone())) {
        Ok(Bson::Document(d)) => Some(d),
        Ok(_) => None,
        Err(e) => {
            problems.push(
                Problem::new(at, format!("invalid Extended JSON: {e}"))
                    .hint("write MongoDB Extended JSON, such as `{status: {$in: [paid, shipped]}}` or `{ts: {$date: \"2020-06-01T00:00:00Z\"}}`"),
            );
            None
        }
    }
}

/// `partition`: timezone, first day and field. A bad timezone reads as UTC
/// and a bad date as [`NaiveDate::MIN`], so the later checks still run.
fn check_partition(
    problems: &mut Vec<Problem>,
    partition: &PartitionSpec,
    defaults: &DefaultsSpec,
) -> PartitionPlan {
    let tz_name = partition
        .timezone
        .as_deref()
        .or(defaults.timezone.as_deref())
        .unwrap_or("UTC");
    let timezone = tz_name.parse::<Tz>().unwrap_or_else(|_| {
        problems.push(bad_timezone(ypath!("partition", "timezone"), tz_name));
        Tz::UTC
    });
    let start_date =
        NaiveDate::parse_from_str(&partition.start_date, "%Y-%m-%d").unwrap_or_else(|e| {
            problems.push(
                Problem::new(
                    ypath!("partition", "start_date"),
                    format!(
                        "invalid date `{}`: {e}, expected `YYYY-MM-DD`",
                        partition.start_date
                    ),
                )
                .hint("write the first day with data, such as `2020-06-01`"),
            );
            NaiveDate::MIN
        });
    let field = &partition.field;
    if field.is_empty() || field.starts_with('$') || field.split('.').any(str::is_empty) {
        problems.push(Problem::new(
            ypath!("partition", "field"),
            format!("invalid field `{field}`, expected a dotted field name such as `created_at`"),
        ));
    }
    if partition.lookback > MAX_LOOKBACK {
        problems.push(
            Problem::new(
                ypath!("partition", "lookback"),
                format!(
                    "lookback of {} days is more than {MAX_LOOKBACK}",
                    partition.lookback
                ),
            )
            .hint("each daily run redoes this many days; for a full reload use `etl run --rerun --start D`"),
        );
    }
    PartitionPlan {
        field: field.clone(),
        kind: partition.kind,
        timezone,
        start_date,
        lookback: partition.lookback,
    }
}

/// The most days `partition.lookback` and `changes.recent_days` take: a
/// year, beyond which a daily redo costs more than a reload.
const MAX_LOOKBACK: u32 = 366;

/// `changes`, with its defaults.
fn check_changes(problems: &mut Vec<Problem>, changes: Option<&ChangesSpec>) -> ChangesPlan {
    let spec = changes.cloned().unwrap_or_default();
    let recent_days = match (spec.unknown_day, spec.recent_days) {
        (UnknownDay::MarkRecent, Some(n)) if n == 0 || n > MAX_LOOKBACK => {
            problems.push(
                Problem::new(
                    ypath!("changes", "recent_days"),
                    format!("recent_days must be 1 to {MAX_LOOKBACK}, not {n}"),
                )
                .hint("the days before today that a change of unknown day marks dirty"),
            );
            7
        }
        (UnknownDay::Record, Some(_)) => {
            problems.push(
                Problem::new(
                    ypath!("changes", "recent_days"),
                    "recent_days is only read with `unknown_day: mark_recent`",
                )
                .hint("add `unknown_day: mark_recent`, or remove `recent_days`"),
            );
            7
        }
        (_, n) => n.unwrap_or(7),
    };
    ChangesPlan {
        unknown_day: spec.unknown_day,
        recent_days,
        pre_images: spec.pre_images,
    }
}

/// Templates rendered for a sample day (the first day, or 2020-06-01 when
/// that is invalid) and for the day after it.
struct Sample<'a> {
    templates: &'a Templates,
    day: Vars,
    next: Vars,
}

impl<'a> Sample<'a> {
    fn new(
        templates: &'a Templates,
        name: &str,
        collection: &str,
        partition: &PartitionPlan,
    ) -> Self {
        let day = if partition.start_date == NaiveDate::MIN {
            NaiveDate::from_ymd_opt(2020, 6, 1).expect("valid")
        } else {
            partition.start_date
        };
        let vars = |day: NaiveDate| {
            let (s, e) = partition.bounds(day);
            Vars::partition(name, collection, day, s.fixed_offset(), e.fixed_offset())
        };
        Sample {
            templates,
            day: vars(day),
            next: vars(day.succ_opt().expect("valid")),
        }
    }

    /// `t` rendered for the sample day; a failure is a problem at `at`.
    fn render(&self, problems: &mut Vec<Problem>, at: YamlPath, t: &str) -> Option<String> {
        match self.templates.render(t, &self.day) {
            Ok(s) => Some(s),
            Err(m) => {
                problems.push(Problem::new(at, m));
                None
            }
        }
    }
}

/// `sinks.lake`: the path must render, differ from day to day, and be a
/// clean relative object path. None without a connection.
fn check_lake(
    problems: &mut Vec<Problem>,
    lake: &LakeSinkSpec,
    defaults: &DefaultsSpec,
    sample: &Sample,
    connection: Option<StoreConnection>,
) -> Option<LakePlan> {
    let at = ypath!("sinks", "lake", "path");
    if let Some(p) = sample.render(problems, at.clone(), &lake.path) {
        if sample
            .templates
            .render(&lake.path, &sample.next)
            .ok()
            .as_deref()
            == Some(p.as_str())
        {
            problems.push(
                Problem::new(at.clone(), "the lake path is the same for every day, so days would overwrite each other")
                    .hint("put the day in the path, such as `raw/{{ collection }}/dt={{ ds }}/part-0.jsonl.gz`"),
            );
        }
        if p.starts_with('/') || p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            problems.push(Problem::new(
                at,
                format!("invalid object path `{p}`: expected relative segments without empty parts, `.` or `..`"),
            ));
        }
    }
    Some(LakePlan {
        connection_name: lake.connection.clone(),
        connection: connection?,
        path: lake.path.clone(),
        format: lake.format,
        compression: lake
            .compression
            .or(defaults.lake_compression)
            .unwrap_or_default(),
    })
}

/// `sinks.warehouse`: rendered names, the partition column and clustering,
/// and a lake in a `gs://` bucket for `load_from: bucket` (`lake_url`, the
/// lake connection's URL when it has one). None without a connection.
fn check_warehouse(
    problems: &mut Vec<Problem>,
    warehouse: &WarehouseSinkSpec,
    sample: &Sample,
    connection: Option<ConnectionPlan>,
    lake_url: Option<&str>,
) -> Option<WarehousePlan> {
    let at = ypath!("sinks", "warehouse");
    match warehouse {
        WarehouseSinkSpec::Bigquery(b) => {
            for (key, t) in [("dataset", &b.dataset), ("table", &b.table)] {
                if let Some(v) = sample.render(problems, at.key(key), t) {
                    if !is_bq_name(&v, key == "table") {
                        problems.push(
                            Problem::new(at.key(key), format!("invalid BigQuery {key} name `{v}`"))
                                .hint("use letters, digits and `_` (tables may also use `-`), at most 1024 characters"),
                        );
                    }
                }
            }
            let partition_column = b
                .partition_column
                .clone()
                .unwrap_or_else(|| crate::table::DS_COLUMN.to_owned());
            check_column_name(problems, at.key("partition_column"), &partition_column);
            if b.clustering.len() > 4 {
                problems.push(Problem::new(
                    at.key("clustering"),
                    format!(
                        "expected at most 4 clustering columns, found {}",
                        b.clustering.len()
                    ),
                ));
            }
            for (i, c) in b.clustering.iter().enumerate() {
                check_column_name(problems, at.key("clustering").index(i), c);
            }
            // BigQuery reads staged rows from Cloud Storage only.
            if let Some(url) =
                lake_url.filter(|u| b.load_from == LoadFrom::Bucket && !u.starts_with("gs://"))
            {
                problems.push(
                    Problem::new(
                        at.key("load_from"),
                        format!(
                            "`load_from: bucket` needs the lake in a `gs://` bucket, found `{}`",
                            crate::redact::redact_uri(url)
                        ),
                    )
                    .hint("point the lake's connection at a `gs://` URL, where BigQuery can read the staged rows, or drop `load_from` to send the rows in the load request"),
                );
            }
            Some(WarehousePlan::Bigquery {
                connection_name: b.connection.clone(),
                connection: connection?.bigquery()?.clone(),
                dataset: b.dataset.clone(),
                table: b.table.clone(),
                partition_column,
                clustering: b.clustering.clone(),
                replace: b.replace,
                load_from: b.load_from,
            })
        }
        WarehouseSinkSpec::Parquet(p) => {
            sample.render(problems, at.key("path"), &p.path);
            Some(WarehousePlan::Parquet {
                connection_name: p.connection.clone(),
                connection: connection?.object_store()?.clone(),
                path: p.path.clone(),
            })
        }
    }
}

fn check_column_name(problems: &mut Vec<Problem>, at: YamlPath, name: &str) {
    if !is_column_name(name) {
        problems.push(Problem::new(at, format!("invalid column name `{name}`")).hint(COLUMN_HINT));
    }
}

/// `schedule`, or the project's default, or daily at midnight.
fn check_schedule(
    problems: &mut Vec<Problem>,
    spec: &PipelineSpec,
    defaults: &DefaultsSpec,
) -> String {
    let schedule = spec
        .schedule
        .clone()
        .or_else(|| defaults.schedule.clone())
        .unwrap_or_else(|| "0 0 * * *".to_owned());
    if let Err(p) = check_cron(ypath!("schedule"), &schedule) {
        problems.push(p);
    }
    schedule
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use indoc::indoc;

    use super::*;
    use crate::spec::{load_str, Loaded, SpecKind};
    use crate::template::{EnvMode, RedactedSecrets};

    /// `pipeline` checked against a project whose lake is at `lake_url`:
    /// its problems, as `path: message` then `hint`.
    fn problems(lake_url: &str, pipeline: &str) -> Vec<(String, String, Option<String>)> {
        let project = format!(
            indoc! {"
                version: 1
                profiles:
                  local:
                    connections:
                      mongo: {{ type: mongodb, uri: mongodb://127.0.0.1/ }}
                      lake: {{ type: object_store, url: {} }}
                      warehouse: {{ type: bigquery, project: etl-local }}
            "},
            lake_url
        );
        let templates =
            Templates::from_process(Arc::new(RedactedSecrets(BTreeSet::new())), EnvMode::Lenient);
        let project: Loaded<ProjectSpec> =
            load_str(Path::new("etl.yaml"), &project, SpecKind::Project);
        assert!(project.diagnostics.is_empty(), "{:?}", project.diagnostics);
        let project =
            crate::plan::check_project(project.spec.as_ref().unwrap(), Path::new("/p"), &templates)
                .unwrap_or_else(|p| panic!("{p:?}"));
        let spec: Loaded<PipelineSpec> = load_str(
            Path::new("pipelines/events.yaml"),
            pipeline,
            SpecKind::Pipeline,
        );
        assert!(spec.diagnostics.is_empty(), "{:?}", spec.diagnostics);
        match check_pipeline(
            spec.spec.as_ref().unwrap(),
            Path::new("pipelines/events.yaml"),
            &project,
            "local",
            &templates,
        ) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .into_iter()
                .map(|p| (p.path.to_string(), p.message, p.hint))
                .collect(),
        }
    }

    const LOAD_FROM_BUCKET: &str = indoc! {r#"
        version: 1
        source: { connection: mongo, database: shop, collection: events }
        partition: { field: created_at, kind: date, start_date: "2020-06-01" }
        sinks:
          lake: { connection: lake, path: "raw/events/dt={{ ds }}/events.jsonl.gz" }
          warehouse: { type: bigquery, connection: warehouse, dataset: shop, table: events, load_from: bucket }
    "#};

    /// Issue 32, part 4: BigQuery reads staged rows from a bucket, so
    /// `load_from: bucket` needs the lake in one.
    #[test]
    fn load_from_bucket_needs_a_gs_lake() {
        assert_eq!(
            problems(".etl/lake", LOAD_FROM_BUCKET),
            [(
                "sinks.warehouse.load_from".to_owned(),
                "`load_from: bucket` needs the lake in a `gs://` bucket, found `file:///p/.etl/lake`".to_owned(),
                Some("point the lake's connection at a `gs://` URL, where BigQuery can read the staged rows, or drop `load_from` to send the rows in the load request".to_owned()),
            )]
        );
        assert_eq!(problems("gs://acme-lake/prefix", LOAD_FROM_BUCKET), []);
        let by_request = LOAD_FROM_BUCKET.replace(", load_from: bucket", "");
        assert_eq!(problems(".etl/lake", &by_request), []);
    }

    /// Where a load reads its rows from does not change them: switching
    /// `load_from` leaves the rows hash, and so every loaded day, as it was.
    #[test]
    fn load_from_leaves_the_spec_hashes_as_they_were() {
        let parse = |text: &str| {
            load_str::<PipelineSpec>(Path::new("p.yaml"), text, SpecKind::Pipeline)
                .spec
                .unwrap()
        };
        let bucket = parse(LOAD_FROM_BUCKET);
        let request = parse(&LOAD_FROM_BUCKET.replace(", load_from: bucket", ""));
        assert_eq!(rows_hash(&bucket), rows_hash(&request));
        assert!(!serde_json::to_string(&request)
            .unwrap()
            .contains("load_from"));
    }
}
