//! The resolved form of the specs: what will run.
//!
//! [`check_project`] and [`check_pipeline`] turn `*Spec` values into `*Plan`
//! values, or into the full list of [`Problem`]s. They are pure: no network,
//! no clock, no decryption (secrets render as `***`). The engine builds
//! clients only from plans; `etl validate` and `etl plan` stop here.

mod range;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bson::{doc, Bson, Document};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

pub use range::{resolve_range, DayRange, RangeRequest};

use crate::redact::redact_uri;
use crate::spec::*;
use crate::template::{Templates, Vars};
use crate::ypath;

/// The project file, resolved: every profile's connections.
#[derive(Debug, Clone)]
pub struct ProjectPlan {
    /// The folder holding `etl.yaml`; relative paths start here.
    pub root: PathBuf,
    /// The profile used when none is named.
    pub default_profile: String,
    /// Connections by profile, then by name.
    pub profiles: BTreeMap<String, BTreeMap<String, ConnectionPlan>>,
    /// Secret names and their files.
    pub secrets: BTreeMap<String, PathBuf>,
    /// Where the ledger lives (URL or absolute path).
    pub state_url: String,
    /// Local staging folder (absolute).
    pub staging_dir: PathBuf,
    /// Keep a done day's staging folder.
    pub keep_staging: bool,
    /// Inherited defaults.
    pub defaults: DefaultsSpec,
}

/// The secrets profile `profile` would decrypt, each with the first place
/// that uses it (see [`ConnectionPlan::secrets`]).
pub fn secrets_used(plan: &ProjectPlan, profile: &str) -> BTreeMap<String, (YamlPath, String)> {
    let mut used = BTreeMap::new();
    for (cname, conn) in plan.profiles.get(profile).into_iter().flatten() {
        let at = ypath!("profiles", profile, "connections", cname.as_str());
        for (field, name) in conn.secrets() {
            used.entry(name).or_insert_with(|| (at.key(&field), field));
        }
    }
    used
}

/// A connection, with its templates kept for the engine and a display form
/// (secrets masked, passwords redacted) for people.
#[derive(Debug, Clone)]
pub enum ConnectionPlan {
    /// MongoDB.
    Mongodb {
        /// The `uri` template, rendered with real secrets only by the engine.
        uri_template: String,
        /// The URI with secrets and passwords masked.
        uri_display: String,
        /// Application name.
        app_name: String,
    },
    /// An object store.
    ObjectStore {
        /// Root URL, resolved: relative paths become `file://` URLs.
        url: String,
        /// `object_store` options, as templates.
        options: BTreeMap<String, String>,
        /// Secret with credentials.
        credentials: Option<String>,
    },
    /// BigQuery.
    Bigquery {
        /// Project id.
        project: String,
        /// Dataset location.
        location: Option<String>,
        /// API base URL (emulators).
        endpoint: Option<String>,
        /// Secret with a service-account JSON.
        credentials: Option<String>,
    },
}

impl ConnectionPlan {
    /// The secrets this connection decrypts when it is opened, each with
    /// the field that names it: `secret("name")` in `uri` or an `options`
    /// value, or `credentials`.
    pub fn secrets(&self) -> Vec<(String, String)> {
        let in_template = |field: String, t: &str| {
            crate::template::secret_names(t)
                .into_iter()
                .map(move |name| (field.clone(), name))
        };
        match self {
            ConnectionPlan::Mongodb { uri_template, .. } => {
                in_template("uri".into(), uri_template).collect()
            }
            ConnectionPlan::ObjectStore {
                options,
                credentials,
                ..
            } => options
                .iter()
                .flat_map(|(k, v)| in_template(format!("options.{k}"), v))
                .chain(
                    credentials
                        .iter()
                        .map(|c| ("credentials".into(), c.clone())),
                )
                .collect(),
            ConnectionPlan::Bigquery { credentials, .. } => credentials
                .iter()
                .map(|c| ("credentials".into(), c.clone()))
                .collect(),
        }
    }

    /// The names alone of [`ConnectionPlan::secrets`].
    pub fn secret_names(&self) -> Vec<String> {
        self.secrets().into_iter().map(|(_, name)| name).collect()
    }

    /// The kind, for type checks.
    pub fn kind(&self) -> ConnectionKind {
        match self {
            ConnectionPlan::Mongodb { .. } => ConnectionKind::Mongodb,
            ConnectionPlan::ObjectStore { .. } => ConnectionKind::ObjectStore,
            ConnectionPlan::Bigquery { .. } => ConnectionKind::Bigquery,
        }
    }

    /// A one-line description that is safe to print.
    pub fn display(&self) -> String {
        match self {
            ConnectionPlan::Mongodb { uri_display, .. } => uri_display.clone(),
            ConnectionPlan::ObjectStore { url, .. } => redact_uri(url),
            ConnectionPlan::Bigquery {
                project, endpoint, ..
            } => match endpoint {
                Some(e) => format!("project {project} at {e}"),
                None => format!("project {project}"),
            },
        }
    }
}

/// Checks the project file. Connection templates are rendered with masked
/// secrets, so a bad template or an unknown secret fails here.
pub fn check_project(
    spec: &ProjectSpec,
    root: &Path,
    templates: &Templates,
) -> Result<ProjectPlan, Vec<Problem>> {
    let mut problems = Vec::new();
    if spec.version != 1 {
        problems.push(
            Problem::new(
                ypath!("version"),
                format!("unsupported version `{}`, expected `1`", spec.version),
            )
            .hint("this build of etl reads version 1 project files"),
        );
    }
    if !spec.profiles.contains_key(&spec.default_profile) {
        let names: Vec<&str> = spec.profiles.keys().map(String::as_str).collect();
        let mut p = Problem::new(
            ypath!("default_profile"),
            format!(
                "unknown profile `{}`, expected one of {}",
                spec.default_profile,
                backticked(&names)
            ),
        );
        p.hint = did_you_mean(&spec.default_profile, names.iter().copied());
        problems.push(p);
    }
    if let Some(tz) = &spec.defaults.timezone {
        if tz.parse::<Tz>().is_err() {
            problems.push(bad_timezone(ypath!("defaults", "timezone"), tz));
        }
    }
    if let Some(cron) = &spec.defaults.schedule {
        if let Err(p) = check_cron(ypath!("defaults", "schedule"), cron) {
            problems.push(p);
        }
    }

    let vars = Vars::default();
    let mut profiles = BTreeMap::new();
    for (pname, profile) in &spec.profiles {
        let mut conns = BTreeMap::new();
        for (cname, conn) in &profile.connections {
            let at = ypath!("profiles", pname.as_str(), "connections", cname.as_str());
            let mut render = |field: &str, t: &str| -> String {
                templates.render(t, &vars).unwrap_or_else(|m| {
                    problems.push(Problem::new(at.key(field), m));
                    String::new()
                })
            };
            let plan = match conn {
                ConnectionSpec::Mongodb(m) => {
                    let shown = render("uri", &m.uri);
                    ConnectionPlan::Mongodb {
                        uri_template: m.uri.clone(),
                        uri_display: redact_uri(&shown),
                        app_name: m.app_name.clone(),
                    }
                }
                ConnectionSpec::ObjectStore(o) => {
                    let url = render("url", &o.url);
                    for (k, v) in &o.options {
                        render(&format!("options.{k}"), v);
                    }
                    ConnectionPlan::ObjectStore {
                        url: resolve_store_url(&url, root),
                        options: o.options.clone(),
                        credentials: o.credentials.clone(),
                    }
                }
                ConnectionSpec::Bigquery(b) => ConnectionPlan::Bigquery {
                    project: render("project", &b.project),
                    location: b.location.clone(),
                    endpoint: b.endpoint.as_ref().map(|e| render("endpoint", e)),
                    credentials: b.credentials.clone(),
                },
            };
            if let ConnectionPlan::ObjectStore { url, .. } = &plan {
                if let Err(m) = check_store_url(url) {
                    problems.push(Problem::new(at.key("url"), m).hint(STORE_URL_HINT));
                }
            }
            let creds = match conn {
                ConnectionSpec::ObjectStore(o) => o.credentials.as_ref(),
                ConnectionSpec::Bigquery(b) => b.credentials.as_ref(),
                ConnectionSpec::Mongodb(_) => None,
            };
            if let (ConnectionPlan::ObjectStore { url, .. }, Some(_)) = (&plan, creds) {
                if !url.starts_with("gs://") {
                    problems.push(
                        Problem::new(at.key("credentials"), "`credentials` is a GCP service-account key, used by `gs://` stores only")
                            .hint("for s3:// or az:// set the keys in `options` with `{{ secret(\"name\") }}`"),
                    );
                }
            }
            if let Some(name) = creds {
                if !spec.secrets.contains_key(name) {
                    let known: BTreeSet<String> = spec.secrets.keys().cloned().collect();
                    problems.push(
                        Problem::new(at.key("credentials"), crate::template::unknown_secret(name, &known))
                            .hint("add it under `secrets:` in etl.yaml, or remove `credentials` to use default credentials"),
                    );
                }
            }
            conns.insert(cname.clone(), plan);
        }
        profiles.insert(pname.clone(), conns);
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ProjectPlan {
        root: root.to_owned(),
        default_profile: spec.default_profile.clone(),
        profiles,
        secrets: spec
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), root.join(&v.file)))
            .collect(),
        state_url: resolve_store_url(&spec.state.url, root),
        staging_dir: root.join(&spec.state.staging_dir),
        keep_staging: spec.state.keep_staging,
        defaults: spec.defaults.clone(),
    })
}

const STORE_URL_HINT: &str =
    "use gs://bucket/prefix, s3://bucket, az://container, file:///abs/dir, memory:// or a path relative to etl.yaml";

/// A plain path (no scheme) is a folder relative to the project root.
fn resolve_store_url(url: &str, root: &Path) -> String {
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("file://{}", root.join(url).display())
    }
}

fn check_store_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    const KNOWN: [&str; 9] = [
        "file", "memory", "gs", "s3", "s3a", "az", "abfs", "abfss", "azure",
    ];
    if KNOWN.contains(&scheme) {
        Ok(())
    } else {
        Err(format!(
            "unsupported object store URL `{}`",
            redact_uri(url)
        ))
    }
}

/// A pipeline, resolved against one profile.
#[derive(Debug, Clone)]
pub struct PipelinePlan {
    /// Pipeline name.
    pub name: String,
    /// The spec file.
    pub file: PathBuf,
    /// sha256 of the spec's canonical JSON: a changed spec reruns done days.
    pub spec_hash: String,
    /// The profile the connections come from.
    pub profile: String,
    /// What to read.
    pub source: SourcePlan,
    /// How documents map to days.
    pub partition: PartitionPlan,
    /// Flatten rules (compiled by the flatten module).
    pub flatten: FlattenSpec,
    /// The raw archive.
    pub lake: LakePlan,
    /// The rows' destination.
    pub warehouse: WarehousePlan,
    /// Cron schedule.
    pub schedule: String,
    /// The schema lock, read by the caller (checks read no files): None
    /// when the pipeline has none.
    pub lock: Option<std::sync::Arc<crate::lock::SchemaLock>>,
}

/// What to read.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// Connection name.
    pub connection_name: String,
    /// The MongoDB connection.
    pub connection: ConnectionPlan,
    /// Database.
    pub database: String,
    /// Collection.
    pub collection: String,
    /// Extra filter.
    pub base_filter: Option<Document>,
    /// Projection.
    pub projection: Option<Document>,
    /// Cursor batch size.
    pub batch_size: u32,
    /// Server-side time limit per batch.
    pub max_time_ms: Option<u64>,
    /// Count the day beside the cursor (`source.count`).
    pub count: bool,
}

/// How documents map to days.
#[derive(Debug, Clone)]
pub struct PartitionPlan {
    /// The field, dotted.
    pub field: String,
    /// How it stores time.
    pub kind: PartitionKind,
    /// The timezone of day boundaries.
    pub timezone: Tz,
    /// First day with data.
    pub start_date: NaiveDate,
}

impl PartitionPlan {
    /// The half-open interval `[D 00:00, D+1 00:00)` in the partition
    /// timezone. On a DST change the day starts at the first instant that
    /// exists locally.
    pub fn bounds(&self, day: NaiveDate) -> (DateTime<Tz>, DateTime<Tz>) {
        (
            self.midnight(day),
            self.midnight(day.succ_opt().expect("a day before year 262143")),
        )
    }

    fn midnight(&self, day: NaiveDate) -> DateTime<Tz> {
        let naive = day.and_hms_opt(0, 0, 0).expect("midnight exists");
        match self.timezone.from_local_datetime(&naive).earliest() {
            Some(t) => t,
            // Midnight skipped by a DST jump: the day starts an hour later.
            None => self
                .timezone
                .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
                .expect("an hour after a skipped midnight exists"),
        }
    }

    /// The MongoDB filter selecting `day`, for the field's kind, combined
    /// with the spec's base filter.
    pub fn filter(&self, day: NaiveDate, base: Option<&Document>) -> Document {
        let (start, end) = self.bounds(day);
        let (start, end) = (start.with_timezone(&Utc), end.with_timezone(&Utc));
        let (lo, hi): (Bson, Bson) = match self.kind {
            PartitionKind::Date => (
                bson::DateTime::from_millis(start.timestamp_millis()).into(),
                bson::DateTime::from_millis(end.timestamp_millis()).into(),
            ),
            // Bounds without a zone suffix compare correctly with any
            // fraction and with `Z`: `...T00:00:00` <= `...T00:00:00.000Z`.
            PartitionKind::IsoString => (
                start.format("%Y-%m-%dT%H:%M:%S").to_string().into(),
                end.format("%Y-%m-%dT%H:%M:%S").to_string().into(),
            ),
            PartitionKind::EpochSeconds => (start.timestamp().into(), end.timestamp().into()),
            PartitionKind::EpochMillis => (
                start.timestamp_millis().into(),
                end.timestamp_millis().into(),
            ),
            PartitionKind::ObjectId => (object_id_at(start).into(), object_id_at(end).into()),
        };
        let range = doc! { self.field.as_str(): { "$gte": lo, "$lt": hi } };
        match base {
            Some(b) if !b.is_empty() => doc! { "$and": [b.clone(), range] },
            _ => range,
        }
    }
}

/// The smallest ObjectId created at `t`: its 4-byte seconds, then zeros.
fn object_id_at(t: DateTime<Utc>) -> bson::oid::ObjectId {
    let mut bytes = [0u8; 12];
    let secs = u32::try_from(t.timestamp()).unwrap_or(if t.timestamp() < 0 { 0 } else { u32::MAX });
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bson::oid::ObjectId::from_bytes(bytes)
}

/// The raw archive.
#[derive(Debug, Clone)]
pub struct LakePlan {
    /// Connection name.
    pub connection_name: String,
    /// The object store.
    pub connection: ConnectionPlan,
    /// Object path template.
    pub path: String,
    /// Format.
    pub format: LakeFormat,
    /// Compression.
    pub compression: Compression,
}

/// Where rows go.
#[derive(Debug, Clone)]
pub enum WarehousePlan {
    /// BigQuery.
    Bigquery {
        /// Connection name.
        connection_name: String,
        /// The project.
        connection: ConnectionPlan,
        /// Dataset template.
        dataset: String,
        /// Table template.
        table: String,
        /// The DAY partitioning column.
        partition_column: String,
        /// Clustering columns.
        clustering: Vec<String>,
        /// Replace mode.
        replace: ReplaceMode,
    },
    /// Parquet files.
    Parquet {
        /// Connection name.
        connection_name: String,
        /// The object store.
        connection: ConnectionPlan,
        /// Dataset folder template.
        path: String,
    },
}

/// One partition, with every name rendered.
#[derive(Debug, Clone)]
pub struct PartitionTarget {
    /// The day.
    pub day: NaiveDate,
    /// Start, inclusive.
    pub start: DateTime<Tz>,
    /// End, exclusive.
    pub end: DateTime<Tz>,
    /// The MongoDB filter.
    pub filter: Document,
    /// Raw object path under the lake URL.
    pub lake_path: String,
    /// Manifest path under the lake URL.
    pub manifest_path: String,
    /// Where documents rejected under `on_type_conflict: reject` go, next
    /// to the raw object; absent when none were.
    pub rejects_path: String,
    /// The warehouse target, for people: `project.dataset.table$20200601`
    /// or a Parquet folder URL.
    pub warehouse: String,
}

impl PipelinePlan {
    /// The connections a run opens: source, lake, warehouse.
    pub fn connections(&self) -> [&ConnectionPlan; 3] {
        let warehouse = match &self.warehouse {
            WarehousePlan::Bigquery { connection, .. }
            | WarehousePlan::Parquet { connection, .. } => connection,
        };
        [&self.source.connection, &self.lake.connection, warehouse]
    }

    /// Renders everything one partition needs.
    pub fn target(&self, day: NaiveDate, templates: &Templates) -> Result<PartitionTarget, String> {
        let (start, end) = self.partition.bounds(day);
        let vars = Vars::partition(
            &self.name,
            &self.source.collection,
            day,
            start.fixed_offset(),
            end.fixed_offset(),
        );
        let lake_path = templates.render(&self.lake.path, &vars)?;
        let manifest_path = manifest_path(&lake_path);
        let rejects_path = sibling(&lake_path, "_rejects.jsonl");
        let warehouse = match &self.warehouse {
            WarehousePlan::Bigquery {
                connection,
                dataset,
                table,
                replace,
                ..
            } => {
                let project = match connection {
                    ConnectionPlan::Bigquery { project, .. } => project.as_str(),
                    _ => "?",
                };
                let ds = templates.render(dataset, &vars)?;
                let t = templates.render(table, &vars)?;
                let how = match replace {
                    ReplaceMode::Decorator => "load WRITE_TRUNCATE",
                    ReplaceMode::Staging => "staging table, then delete + insert",
                };
                format!(
                    "bigquery {project}.{ds}.{t}${} ({how})",
                    day.format("%Y%m%d")
                )
            }
            WarehousePlan::Parquet {
                connection, path, ..
            } => {
                let base = match connection {
                    ConnectionPlan::ObjectStore { url, .. } => url.trim_end_matches('/').to_owned(),
                    _ => String::new(),
                };
                let p = templates.render(path, &vars)?;
                format!("parquet {}/{}/dt={}/", base, p.trim_matches('/'), day)
            }
        };
        Ok(PartitionTarget {
            day,
            filter: self.partition.filter(day, self.source.base_filter.as_ref()),
            start,
            end,
            lake_path,
            manifest_path,
            rejects_path,
            warehouse,
        })
    }
}

/// The manifest sits next to the raw object.
pub fn manifest_path(lake_path: &str) -> String {
    sibling(lake_path, "_manifest.json")
}

/// `name` in the raw object's folder.
fn sibling(lake_path: &str, name: &str) -> String {
    match lake_path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_owned(),
    }
}

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
    if spec.version != 1 {
        problems.push(
            Problem::new(
                ypath!("version"),
                format!("unsupported version `{}`, expected `1`", spec.version),
            )
            .hint("this build of etl reads version 1 pipeline specs"),
        );
    }
    if !is_identifier(&name) {
        problems.push(Problem::new(
            ypath!("name"),
            format!("invalid pipeline name `{name}`, expected letters, digits, `_` or `-`"),
        ));
    }
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
    let mut connection =
        |at: YamlPath, name: &str, want: ConnectionKind, role: &str| -> Option<ConnectionPlan> {
            match conns.get(name) {
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
                    let names: Vec<&str> = conns.keys().map(String::as_str).collect();
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
        };

    let source_conn = connection(
        ypath!("source", "connection"),
        &spec.source.connection,
        ConnectionKind::Mongodb,
        "the source",
    );
    let lake_conn = connection(
        ypath!("sinks", "lake", "connection"),
        &spec.sinks.lake.connection,
        ConnectionKind::ObjectStore,
        "the lake sink",
    );
    let warehouse_conn = match &spec.sinks.warehouse {
        WarehouseSinkSpec::Bigquery(b) => connection(
            ypath!("sinks", "warehouse", "connection"),
            &b.connection,
            ConnectionKind::Bigquery,
            "a `bigquery` warehouse",
        ),
        WarehouseSinkSpec::Parquet(p) => connection(
            ypath!("sinks", "warehouse", "connection"),
            &p.connection,
            ConnectionKind::ObjectStore,
            "a `parquet` warehouse",
        ),
    };

    // Source.
    for (key, value) in [
        ("database", &spec.source.database),
        ("collection", &spec.source.collection),
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
    if spec.source.collection.starts_with("system.") || spec.source.collection.contains('$') {
        problems.push(Problem::new(
            ypath!("source", "collection"),
            format!(
                "invalid collection name `{}`: system collections and `$` are not allowed",
                spec.source.collection
            ),
        ));
    }
    let base_filter = extjson_doc(
        &mut problems,
        ypath!("source", "filter"),
        spec.source.filter.as_ref(),
    );
    let projection = extjson_doc(
        &mut problems,
        ypath!("source", "projection"),
        spec.source.projection.as_ref(),
    );
    let batch_size = spec
        .source
        .batch_size
        .or(project.defaults.batch_size)
        .unwrap_or(1000);
    if batch_size == 0 {
        problems.push(Problem::new(
            ypath!("source", "batch_size"),
            "expected a batch size of at least 1, found 0",
        ));
    }

    // Partition.
    let tz_name = spec
        .partition
        .timezone
        .as_deref()
        .or(project.defaults.timezone.as_deref())
        .unwrap_or("UTC");
    let timezone = tz_name.parse::<Tz>().unwrap_or_else(|_| {
        problems.push(bad_timezone(ypath!("partition", "timezone"), tz_name));
        Tz::UTC
    });
    let start_date = NaiveDate::parse_from_str(&spec.partition.start_date, "%Y-%m-%d")
        .unwrap_or_else(|e| {
            problems.push(
                Problem::new(
                    ypath!("partition", "start_date"),
                    format!(
                        "invalid date `{}`: {e}, expected `YYYY-MM-DD`",
                        spec.partition.start_date
                    ),
                )
                .hint("write the first day with data, such as `2020-06-01`"),
            );
            NaiveDate::MIN
        });
    let field = &spec.partition.field;
    if field.is_empty() || field.starts_with('$') || field.split('.').any(str::is_empty) {
        problems.push(Problem::new(
            ypath!("partition", "field"),
            format!("invalid field `{field}`, expected a dotted field name such as `created_at`"),
        ));
    }
    if spec.partition.kind == PartitionKind::ObjectId && field != "_id" {
        // Allowed (any ObjectId field works), but worth saying why _id is usual.
    }

    // Flatten.
    check_flatten(&mut problems, &ypath!("flatten"), &spec.flatten, field);
    if problems.is_empty() {
        // What only compiling the rules finds: tables, and rules inside
        // exploded arrays.
        match crate::flatten::Tables::new(&spec.flatten) {
            Ok(tables) => check_tests(&mut problems, spec, &tables.names(&name)),
            Err(e) => {
                use crate::flatten::FlattenError as E;
                let (at, hint) = match &e {
                E::ExplodeDefault { .. } => (ypath!("flatten").key("arrays").key("default"), "use `json` or `repeated` as the default and add a rule with `policy: explode` for each array"),
                E::InsideExplode { .. } => (ypath!("flatten"), "move the rule into the explode rule's `flatten`, with the path relative to the element (`$.items.price` becomes `$.price`)"),
                E::DuplicateTable { .. } => (ypath!("flatten").key("arrays").key("rules"), "set `table:` on one of the rules"),
                E::ReservedColumn { .. } => (ypath!("flatten").key("arrays").key("rules"), "rename the column"),
                _ => (ypath!("flatten"), "check the flatten rules against docs/spec.md"),
            };
                problems.push(Problem::new(at, e.to_string()).hint(hint));
            }
        }
    }

    // Lake.
    let sample_day = if start_date == NaiveDate::MIN {
        NaiveDate::from_ymd_opt(2020, 6, 1).expect("valid")
    } else {
        start_date
    };
    let sample = {
        let (s, e) = PartitionPlan {
            field: field.clone(),
            kind: spec.partition.kind,
            timezone,
            start_date: sample_day,
        }
        .bounds(sample_day);
        Vars::partition(
            &name,
            &spec.source.collection,
            sample_day,
            s.fixed_offset(),
            e.fixed_offset(),
        )
    };
    let render = |problems: &mut Vec<Problem>, at: YamlPath, t: &str| -> Option<String> {
        match templates.render(t, &sample) {
            Ok(s) => Some(s),
            Err(m) => {
                problems.push(Problem::new(at, m));
                None
            }
        }
    };
    if let Some(p) = render(
        &mut problems,
        ypath!("sinks", "lake", "path"),
        &spec.sinks.lake.path,
    ) {
        let next = sample_day.succ_opt().expect("valid");
        let (s, e) = PartitionPlan {
            field: field.clone(),
            kind: spec.partition.kind,
            timezone,
            start_date: next,
        }
        .bounds(next);
        let other = Vars::partition(
            &name,
            &spec.source.collection,
            next,
            s.fixed_offset(),
            e.fixed_offset(),
        );
        if templates
            .render(&spec.sinks.lake.path, &other)
            .ok()
            .as_deref()
            == Some(p.as_str())
        {
            problems.push(
                Problem::new(ypath!("sinks", "lake", "path"), "the lake path is the same for every day, so days would overwrite each other")
                    .hint("put the day in the path, such as `raw/{{ collection }}/dt={{ ds }}/part-0.jsonl.gz`"),
            );
        }
        if p.starts_with('/') || p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            problems.push(Problem::new(
                ypath!("sinks", "lake", "path"),
                format!("invalid object path `{p}`: expected relative segments without empty parts, `.` or `..`"),
            ));
        }
    }
    let (warehouse_plan_parts, partition_column) = match &spec.sinks.warehouse {
        WarehouseSinkSpec::Bigquery(b) => {
            let at = ypath!("sinks", "warehouse");
            for (key, t) in [("dataset", &b.dataset), ("table", &b.table)] {
                if let Some(v) = render(&mut problems, at.key(key), t) {
                    if !is_bq_name(&v, key == "table") {
                        problems.push(
                            Problem::new(at.key(key), format!("invalid BigQuery {key} name `{v}`"))
                                .hint("use letters, digits and `_` (tables may also use `-`), at most 1024 characters"),
                        );
                    }
                }
            }
            let pc = b
                .partition_column
                .clone()
                .unwrap_or_else(|| crate::table::DS_COLUMN.to_owned());
            if !is_column_name(&pc) {
                problems.push(
                    Problem::new(
                        at.key("partition_column"),
                        format!("invalid column name `{pc}`"),
                    )
                    .hint(COLUMN_HINT),
                );
            }
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
                if !is_column_name(c) {
                    problems.push(
                        Problem::new(
                            at.key("clustering").index(i),
                            format!("invalid column name `{c}`"),
                        )
                        .hint(COLUMN_HINT),
                    );
                }
            }
            (None, pc)
        }
        WarehouseSinkSpec::Parquet(p) => {
            render(&mut problems, ypath!("sinks", "warehouse", "path"), &p.path);
            (Some(()), crate::table::DS_COLUMN.to_owned())
        }
    };
    let _ = warehouse_plan_parts;

    // Schedule.
    let schedule = spec
        .schedule
        .clone()
        .or_else(|| project.defaults.schedule.clone())
        .unwrap_or_else(|| "0 0 * * *".to_owned());
    if let Err(p) = check_cron(ypath!("schedule"), &schedule) {
        problems.push(p);
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    let (Some(source_conn), Some(lake_conn), Some(warehouse_conn)) =
        (source_conn, lake_conn, warehouse_conn)
    else {
        unreachable!("a missing connection was reported as a problem")
    };
    let warehouse = match &spec.sinks.warehouse {
        WarehouseSinkSpec::Bigquery(b) => WarehousePlan::Bigquery {
            connection_name: b.connection.clone(),
            connection: warehouse_conn,
            dataset: b.dataset.clone(),
            table: b.table.clone(),
            partition_column,
            clustering: b.clustering.clone(),
            replace: b.replace,
        },
        WarehouseSinkSpec::Parquet(p) => WarehousePlan::Parquet {
            connection_name: p.connection.clone(),
            connection: warehouse_conn,
            path: p.path.clone(),
        },
    };
    Ok(PipelinePlan {
        spec_hash: spec_hash(spec),
        file: file.to_owned(),
        profile: profile.to_owned(),
        source: SourcePlan {
            connection_name: spec.source.connection.clone(),
            connection: source_conn,
            database: spec.source.database.clone(),
            collection: spec.source.collection.clone(),
            base_filter,
            projection,
            batch_size,
            max_time_ms: spec.source.max_time_ms,
            count: spec.source.count,
        },
        partition: PartitionPlan {
            field: field.clone(),
            kind: spec.partition.kind,
            timezone,
            start_date,
        },
        flatten: spec.flatten.clone(),
        lake: LakePlan {
            connection_name: spec.sinks.lake.connection.clone(),
            connection: lake_conn,
            path: spec.sinks.lake.path.clone(),
            format: spec.sinks.lake.format,
            compression: spec
                .sinks
                .lake
                .compression
                .or(project.defaults.lake_compression)
                .unwrap_or_default(),
        },
        warehouse,
        schedule,
        lock: None,
        name,
    })
}

/// `tests`: days, documents and table names, so `etl test` only fails on
/// rows.
fn check_tests(problems: &mut Vec<Problem>, spec: &PipelineSpec, tables: &[String]) {
    for (i, case) in spec.tests.iter().enumerate() {
        let at = ypath!("tests").index(i);
        if let Some(ds) = &case.ds {
            if NaiveDate::parse_from_str(ds, "%Y-%m-%d").is_err() {
                problems.push(
                    Problem::new(at.key("ds"), format!("invalid date `{ds}`"))
                        .hint("expected `YYYY-MM-DD`"),
                );
            }
        }
        for (j, doc) in case.documents.iter().enumerate() {
            if let Err(e) = crate::extjson::parse_documents(std::slice::from_ref(doc)) {
                problems.push(
                    Problem::new(
                        at.key("documents").index(j),
                        e.replacen("documents[0]", "the document", 1),
                    )
                    .hint("documents are objects in MongoDB Extended JSON, such as `{ _id: 1, at: { $date: \"2020-06-01T00:00:00Z\" } }`"),
                );
            }
        }
        for r in &case.rejected {
            if *r >= case.documents.len() {
                problems.push(Problem::new(
                    at.key("rejected"),
                    format!(
                        "no document at position {r}: the case has {}",
                        case.documents.len()
                    ),
                ));
            }
        }
        for table in case.expect.keys() {
            if !tables.contains(table) {
                problems.push(
                    Problem::new(
                        at.key("expect").key(table),
                        format!("no table `{table}` in this pipeline"),
                    )
                    .hint(format!(
                        "its tables are {}",
                        tables
                            .iter()
                            .map(|t| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
            }
        }
    }
}

const COLUMN_HINT: &str = "BigQuery column names use letters, digits and `_`, do not start with a digit, and have at most 300 characters";

/// Columns the engine adds to child tables; specs may not claim them.
const RESERVED_COLUMNS: [&str; 4] = [
    crate::flatten::ROOT_ID_COLUMN,
    crate::flatten::PARENT_KEY_COLUMN,
    crate::flatten::INDEX_COLUMN,
    crate::table::DS_COLUMN,
];

fn check_flatten(
    problems: &mut Vec<Problem>,
    at: &YamlPath,
    f: &FlattenSpec,
    partition_field: &str,
) {
    if f.separator.is_empty()
        || !f
            .separator
            .chars()
            .all(|c| c == '_' || c.is_ascii_alphanumeric())
    {
        problems.push(
            Problem::new(
                at.key("separator"),
                format!("invalid separator `{}`", f.separator),
            )
            .hint("column names allow only letters, digits and `_`; the usual separator is `__`"),
        );
    }
    if f.max_depth == 0 {
        problems.push(Problem::new(
            at.key("max_depth"),
            "expected a depth of at least 1, found 0",
        ));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in f.columns.iter().enumerate() {
        let here = at.key("columns").index(i);
        if !is_column_name(&c.name) {
            problems.push(
                Problem::new(
                    here.key("name"),
                    format!("invalid column name `{}`", c.name),
                )
                .hint(COLUMN_HINT),
            );
        } else if RESERVED_COLUMNS.contains(&c.name.as_str()) {
            problems.push(Problem::new(
                here.key("name"),
                format!("column name `{}` is reserved for child tables", c.name),
            ));
        }
        if let Some(first) = seen.insert(&c.name, i) {
            problems.push(
                Problem::new(
                    here.key("name"),
                    format!(
                        "column `{}` is produced twice (also by `flatten.columns[{first}]`)",
                        c.name
                    ),
                )
                .hint("give each explicit column its own name"),
            );
        }
        if let Err(m) = compile_jsonpath(&c.path) {
            problems.push(Problem::new(here.key("path"), m).hint(JSONPATH_HINT));
        }
    }
    // Auto columns named like an explicit column collide, but only when the
    // explicit column reads another path: `a.b` and `a__b` both become `a__b`.
    if f.auto_columns {
        for (i, c) in f.columns.iter().enumerate() {
            for (j, other) in f.columns.iter().enumerate() {
                if let Some(segs) = simple_path(&other.path) {
                    let auto = segs.join(&f.separator);
                    if i != j && auto == c.name && simple_path(&c.path) != Some(segs) {
                        problems.push(
                            Problem::new(
                                at.key("columns").index(i).key("name"),
                                format!(
                                    "column `{}` collides with the automatic column for `{}`",
                                    c.name, other.path
                                ),
                            )
                            .hint("rename one of them, or exclude the other path"),
                        );
                    }
                }
            }
        }
    }
    for (i, p) in f.exclude.iter().enumerate() {
        let here = at.key("exclude").index(i);
        match simple_path(p) {
            Some(segs) => {
                let field: Vec<&str> = partition_field.split('.').collect();
                if field.starts_with(&segs.iter().map(String::as_str).collect::<Vec<_>>()) {
                    problems.push(
                        Problem::new(here, format!("`{p}` excludes the partition field `{partition_field}`"))
                            .hint("the partition column is needed to load each day into its partition; remove this exclude"),
                    );
                }
            }
            None => problems.push(
                Problem::new(here, format!("invalid exclude path `{p}`: expected a plain path such as `$.a.b` or `$['odd key']`"))
                    .hint("excludes name one position in the document; filters and wildcards are for `columns`"),
            ),
        }
    }
    let mut array_paths = BTreeSet::new();
    for (i, r) in f.arrays.rules.iter().enumerate() {
        let here = at.key("arrays").key("rules").index(i);
        if simple_path(&r.path).is_none() {
            problems.push(
                Problem::new(
                    here.key("path"),
                    format!(
                        "invalid array path `{}`: expected a plain path such as `$.items`",
                        r.path
                    ),
                )
                .hint(JSONPATH_HINT),
            );
        }
        if !array_paths.insert(r.path.as_str()) {
            problems.push(Problem::new(
                here.key("path"),
                format!("array path `{}` has two rules", r.path),
            ));
        }
        if r.policy != ArrayPolicy::Explode && (r.table.is_some() || r.flatten.is_some()) {
            problems.push(
                Problem::new(
                    here.key(if r.table.is_some() {
                        "table"
                    } else {
                        "flatten"
                    }),
                    "`table` and `flatten` apply only to `policy: explode`",
                )
                .hint("set `policy: explode`, or remove them"),
            );
        }
        if let Some(t) = &r.table {
            if !is_bq_name(t, true) {
                problems.push(Problem::new(
                    here.key("table"),
                    format!("invalid table name `{t}`"),
                ));
            }
        }
        if let Some(child) = &r.flatten {
            check_flatten(problems, &here.key("flatten"), child, "");
        }
    }
}

const JSONPATH_HINT: &str =
    "JSONPath starts at `$`: `$.address.city`, `$.items[0].sku`, `$['key with spaces']`";

fn compile_jsonpath(p: &str) -> Result<(), String> {
    jsonpath_rust::parser::parse_json_path(p)
        .map(|_| ())
        .map_err(|e| {
            // The parser prints a multi-line pest report; keep its last line
            // (`= expected ...`) and the column it points at.
            let text = e.to_string();
            let expected = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("= "))
                .unwrap_or(text.as_str());
            let col = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("--> "))
                .and_then(|pos| pos.split(':').nth(1));
            match col {
                Some(c) => format!("invalid JSONPath `{p}`: {expected} at character {c}"),
                None => format!("invalid JSONPath `{p}`: {expected}"),
            }
        })
}

/// The keys of a JSONPath made only of names (`$.a.b`, `$['a b'].c`), or
/// None when it has wildcards, indexes or filters.
pub fn simple_path(p: &str) -> Option<Vec<String>> {
    compile_jsonpath(p).ok()?;
    let mut rest = p.strip_prefix('$')?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            let quote = if rest.starts_with("['") { "']" } else { "\"]" };
            let end = r.find(quote)?;
            out.push(r[..end].to_owned());
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() || key == "*" {
                return None;
            }
            out.push(key.to_owned());
            rest = &r[end..];
        } else {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

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

fn check_cron(at: YamlPath, expr: &str) -> Result<(), Problem> {
    croner::Cron::new(expr).parse().map(|_| ()).map_err(|e| {
        let why = e.to_string();
        let why = why
            .strip_prefix("Invalid pattern: ")
            .unwrap_or(&why)
            .trim_end_matches('.')
            .to_lowercase();
        Problem::new(at, format!("invalid cron expression `{expr}`: {why}"))
            .hint("five fields: minute hour day-of-month month day-of-week, such as `0 0 * * *`")
    })
}

fn bad_timezone(at: YamlPath, tz: &str) -> Problem {
    let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
    let mut p = Problem::new(
        at,
        format!("unknown timezone `{tz}`, expected an IANA name such as `UTC` or `Europe/Paris`"),
    );
    p.hint = did_you_mean(tz, names);
    p
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A BigQuery column name: letters, digits, `_`; not starting with a digit.
pub fn is_column_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 300
}

fn is_bq_name(s: &str, table: bool) -> bool {
    !s.is_empty()
        && s.len() <= 1024
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (table && c == '-'))
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// sha256 of the spec's JSON form. Struct fields serialize in declaration
/// order and maps are sorted, so equal specs hash equally whatever the YAML's
/// formatting or comments.
pub fn spec_hash(spec: &PipelineSpec) -> String {
    let json = serde_json::to_vec(spec).expect("a spec serializes");
    hex::encode(Sha256::digest(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: PartitionKind, tz: &str) -> PartitionPlan {
        PartitionPlan {
            field: "ts".into(),
            kind,
            timezone: tz.parse().unwrap(),
            start_date: "2020-06-01".parse().unwrap(),
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn bounds(kind: PartitionKind, tz: &str, d: &str) -> (Bson, Bson) {
        let f = plan(kind, tz).filter(day(d), None);
        let r = f.get_document("ts").unwrap();
        (
            r.get("$gte").unwrap().clone(),
            r.get("$lt").unwrap().clone(),
        )
    }

    #[test]
    fn each_kind_gets_bounds_of_its_own_type() {
        let midnight = 1_590_969_600i64; // 2020-06-01T00:00:00Z
        assert_eq!(
            bounds(PartitionKind::Date, "UTC", "2020-06-01"),
            (
                Bson::DateTime(bson::DateTime::from_millis(midnight * 1000)),
                Bson::DateTime(bson::DateTime::from_millis((midnight + 86_400) * 1000))
            )
        );
        assert_eq!(
            bounds(PartitionKind::EpochSeconds, "UTC", "2020-06-01"),
            (Bson::Int64(midnight), Bson::Int64(midnight + 86_400))
        );
        assert_eq!(
            bounds(PartitionKind::EpochMillis, "UTC", "2020-06-01"),
            (
                Bson::Int64(midnight * 1000),
                Bson::Int64((midnight + 86_400) * 1000)
            )
        );
        assert_eq!(
            bounds(PartitionKind::IsoString, "UTC", "2020-06-01"),
            (
                Bson::String("2020-06-01T00:00:00".into()),
                Bson::String("2020-06-02T00:00:00".into())
            )
        );
        let (lo, hi) = bounds(PartitionKind::ObjectId, "UTC", "2020-06-01");
        assert_eq!(
            lo.as_object_id().unwrap().to_hex(),
            "5ed445000000000000000000"
        );
        assert_eq!(
            hi.as_object_id().unwrap().timestamp().timestamp_millis(),
            (midnight + 86_400) * 1000
        );
    }

    #[test]
    fn iso_bounds_include_fractions_and_zone_suffixes() {
        let (lo, hi) = bounds(PartitionKind::IsoString, "UTC", "2020-06-01");
        let (lo, hi) = (lo.as_str().unwrap(), hi.as_str().unwrap());
        for inside in [
            "2020-06-01T00:00:00Z",
            "2020-06-01T00:00:00.000Z",
            "2020-06-01T23:59:59.999Z",
        ] {
            assert!(lo <= inside && inside < hi, "{inside}");
        }
        for outside in [
            "2020-05-31T23:59:59.999Z",
            "2020-06-02T00:00:00Z",
            "2020-06-02T00:00:00.000Z",
        ] {
            assert!(!(lo <= outside && outside < hi), "{outside}");
        }
    }

    #[test]
    fn days_follow_the_timezone_including_dst_changes() {
        // Paris is UTC+2 in summer: its 2020-06-01 starts at 05-31 22:00 UTC.
        let (lo, _) = bounds(PartitionKind::EpochSeconds, "Europe/Paris", "2020-06-01");
        assert_eq!(lo, Bson::Int64(1_590_969_600 - 7_200));
        // The spring-forward day is 23 hours long, the fall-back day 25.
        let p = plan(PartitionKind::Date, "Europe/Paris");
        let (s, e) = p.bounds(day("2020-03-29"));
        assert_eq!((e - s).num_hours(), 23);
        let (s, e) = p.bounds(day("2020-10-25"));
        assert_eq!((e - s).num_hours(), 25);
    }

    #[test]
    fn a_base_filter_is_combined_with_and() {
        let f = plan(PartitionKind::Date, "UTC")
            .filter(day("2020-06-01"), Some(&doc! {"status": {"$ne": "test"}}));
        let parts = f.get_array("$and").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].as_document().unwrap(),
            &doc! {"status": {"$ne": "test"}}
        );
    }
}
