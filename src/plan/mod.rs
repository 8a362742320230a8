//! The resolved form of the specs: what will run.
//!
//! [`check_project`] and [`check_pipeline`] turn `*Spec` values into `*Plan`
//! values, or into the full list of [`Problem`]s. They are pure: no network,
//! no clock, no decryption (secrets render as `***`). The engine builds
//! clients only from plans; `etl validate` and `etl plan` stop here.
//!
//! Layout: the plan types are here; `project` checks the project file,
//! `pipeline` a pipeline spec, one function per section, with `flatten` for
//! the flatten rules and test cases; `partition` maps documents to days, and
//! `range` resolves the days a command covers. The name and path rules they
//! share with the flattener are in [`crate::spec::names`].

mod flatten;
mod partition;
mod pipeline;
mod project;
mod range;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bson::Document;
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

pub use crate::spec::names::{is_column_name, simple_path};
pub use partition::{iso_time, IsoTime, PartitionPlan};
pub use pipeline::check_pipeline;
pub use project::{check_project, secrets_used};
pub use range::{nth_day, resolve_range, DayIndexError, DayRange, RangeRequest};

use crate::redact::redact_uri;
use crate::spec::*;
use crate::template::{Templates, Vars};

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
    /// Where the ledger and the leases live when a profile does not say:
    /// `state.url` resolved (a plain path becomes a `file://` URL), with
    /// its options. [`ProjectPlan::state`] gives a profile's.
    pub default_state: StoreConnection,
    /// The profiles with a `state` of their own, resolved the same way.
    pub profile_states: BTreeMap<String, StoreConnection>,
    /// Local staging folder (absolute).
    pub staging_dir: PathBuf,
    /// Keep a done day's staging folder.
    pub keep_staging: bool,
    /// Inherited defaults.
    pub defaults: DefaultsSpec,
    /// Who to tell how a run went.
    pub notify: Vec<crate::spec::NotifySpec>,
}

impl ProjectPlan {
    /// Where profile `profile` keeps its ledger and leases: its own
    /// `state`, else the top-level one.
    pub fn state(&self, profile: &str) -> &StoreConnection {
        self.profile_states
            .get(profile)
            .unwrap_or(&self.default_state)
    }

    /// The YAML path of [`ProjectPlan::state`]'s spec.
    pub fn state_at(&self, profile: &str) -> YamlPath {
        if self.profile_states.contains_key(profile) {
            crate::ypath!("profiles", profile, "state")
        } else {
            crate::ypath!("state")
        }
    }
}

/// A connection, with its templates kept for the engine and a display form
/// (secrets masked, passwords redacted) for people.
#[derive(Debug, Clone)]
pub enum ConnectionPlan {
    /// MongoDB.
    Mongodb(MongoConnection),
    /// An object store.
    ObjectStore(StoreConnection),
    /// BigQuery.
    Bigquery(BigqueryConnection),
}

/// A MongoDB connection: what a source opens.
#[derive(Debug, Clone)]
pub struct MongoConnection {
    /// The `uri` template, rendered with real secrets only by the engine.
    pub uri_template: String,
    /// The URI with secrets and passwords masked.
    pub uri_display: String,
    /// Application name.
    pub app_name: String,
}

/// An object store connection: what the lake and a Parquet warehouse
/// open.
#[derive(Debug, Clone)]
pub struct StoreConnection {
    /// Root URL, resolved: relative paths become `file://` URLs.
    pub url: String,
    /// `object_store` options, as templates.
    pub options: BTreeMap<String, String>,
    /// Secret with credentials.
    pub credentials: Option<String>,
}

/// A BigQuery connection: what a BigQuery warehouse opens.
#[derive(Debug, Clone)]
pub struct BigqueryConnection {
    /// Project id.
    pub project: String,
    /// Dataset location.
    pub location: Option<String>,
    /// API base URL (emulators).
    pub endpoint: Option<String>,
    /// Secret with a service-account JSON.
    pub credentials: Option<String>,
}

/// The secrets a connection decrypts when it is opened, each with the
/// field that names it: `secret("name")` in `uri` or an `options` value,
/// or `credentials`.
pub trait Secrets {
    /// `(field, secret name)` pairs.
    fn secrets(&self) -> Vec<(String, String)>;

    /// The names alone.
    fn secret_names(&self) -> Vec<String> {
        self.secrets().into_iter().map(|(_, name)| name).collect()
    }
}

fn in_template(field: String, t: &str) -> impl Iterator<Item = (String, String)> + '_ {
    crate::template::secret_names(t)
        .into_iter()
        .map(move |name| (field.clone(), name))
}

fn in_credentials(credentials: &Option<String>) -> impl Iterator<Item = (String, String)> + '_ {
    credentials
        .iter()
        .map(|c| ("credentials".to_owned(), c.clone()))
}

impl Secrets for MongoConnection {
    fn secrets(&self) -> Vec<(String, String)> {
        in_template("uri".into(), &self.uri_template).collect()
    }
}

impl Secrets for StoreConnection {
    fn secrets(&self) -> Vec<(String, String)> {
        self.options
            .iter()
            .flat_map(|(k, v)| in_template(format!("options.{k}"), v))
            .chain(in_credentials(&self.credentials))
            .collect()
    }
}

impl Secrets for BigqueryConnection {
    fn secrets(&self) -> Vec<(String, String)> {
        in_credentials(&self.credentials).collect()
    }
}

impl Secrets for ConnectionPlan {
    fn secrets(&self) -> Vec<(String, String)> {
        match self {
            ConnectionPlan::Mongodb(c) => c.secrets(),
            ConnectionPlan::ObjectStore(c) => c.secrets(),
            ConnectionPlan::Bigquery(c) => c.secrets(),
        }
    }
}

impl MongoConnection {
    /// A one-line description that is safe to print.
    pub fn display(&self) -> String {
        self.uri_display.clone()
    }
}

impl StoreConnection {
    /// A one-line description that is safe to print.
    pub fn display(&self) -> String {
        redact_uri(&self.url)
    }
}

impl BigqueryConnection {
    /// A one-line description that is safe to print.
    pub fn display(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("project {} at {e}", self.project),
            None => format!("project {}", self.project),
        }
    }
}

impl ConnectionPlan {
    /// The kind, for type checks.
    pub fn kind(&self) -> ConnectionKind {
        match self {
            ConnectionPlan::Mongodb(_) => ConnectionKind::Mongodb,
            ConnectionPlan::ObjectStore(_) => ConnectionKind::ObjectStore,
            ConnectionPlan::Bigquery(_) => ConnectionKind::Bigquery,
        }
    }

    /// A one-line description that is safe to print.
    pub fn display(&self) -> String {
        match self {
            ConnectionPlan::Mongodb(c) => c.display(),
            ConnectionPlan::ObjectStore(c) => c.display(),
            ConnectionPlan::Bigquery(c) => c.display(),
        }
    }

    /// The MongoDB connection, if it is one.
    pub fn mongodb(&self) -> Option<&MongoConnection> {
        match self {
            ConnectionPlan::Mongodb(c) => Some(c),
            _ => None,
        }
    }

    /// The object store connection, if it is one.
    pub fn object_store(&self) -> Option<&StoreConnection> {
        match self {
            ConnectionPlan::ObjectStore(c) => Some(c),
            _ => None,
        }
    }

    /// The BigQuery connection, if it is one.
    pub fn bigquery(&self) -> Option<&BigqueryConnection> {
        match self {
            ConnectionPlan::Bigquery(c) => Some(c),
            _ => None,
        }
    }
}

/// A pipeline, resolved against one profile.
#[derive(Debug, Clone)]
pub struct PipelinePlan {
    /// Pipeline name.
    pub name: String,
    /// The spec file.
    pub file: PathBuf,
    /// The rows hash ([`rows_hash`], `rows-v1:<sha256>`): what the ledger
    /// records a day ran with. A done day recorded with another one is
    /// `stale`: what it landed is not what the spec lands now.
    pub spec_hash: String,
    /// The hash of the whole spec that etl before the rows hash recorded
    /// ([`legacy_spec_hash`]): a record that carries it is compared with
    /// this, so that an upgrade redoes no day.
    pub legacy_spec_hash: String,
    /// The profile the connections come from.
    pub profile: String,
    /// What to read.
    pub source: SourcePlan,
    /// How documents map to days.
    pub partition: PartitionPlan,
    /// Flatten rules (compiled by the flatten module).
    pub flatten: FlattenSpec,
    /// The flatten rules compiled while checking them, shared between the
    /// clones of the plan. The schema lock is not applied to them.
    pub tables: Arc<crate::flatten::Tables>,
    /// The raw archive.
    pub lake: LakePlan,
    /// The rows' destination.
    pub warehouse: WarehousePlan,
    /// Cron schedule.
    pub schedule: String,
    /// The schema lock, read by the caller (checks read no files): None
    /// when the pipeline has none.
    pub lock: Option<Arc<crate::lock::SchemaLock>>,
    /// What `etl watch` does with the change stream.
    pub changes: ChangesPlan,
}

/// `changes` of a spec, with its defaults.
#[derive(Debug, Clone)]
pub struct ChangesPlan {
    /// What to do with a change whose day cannot be told.
    pub unknown_day: crate::spec::UnknownDay,
    /// With [`crate::spec::UnknownDay::MarkRecent`], the days before
    /// today it marks.
    pub recent_days: u32,
    /// Whether to ask the server for pre-images.
    pub pre_images: bool,
}

/// What to read.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// Connection name.
    pub connection_name: String,
    /// The MongoDB connection.
    pub connection: MongoConnection,
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
/// The raw archive.
#[derive(Debug, Clone)]
pub struct LakePlan {
    /// Connection name.
    pub connection_name: String,
    /// The object store.
    pub connection: StoreConnection,
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
        connection: BigqueryConnection,
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
        /// Where load jobs read the rows from; `Bucket` only with a
        /// `gs://` lake, which holds the staged objects.
        load_from: LoadFrom,
    },
    /// Parquet files.
    Parquet {
        /// Connection name.
        connection_name: String,
        /// The object store.
        connection: StoreConnection,
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
    /// What a reader checks in each document [`Self::filter`] selected,
    /// when the server's comparison cannot decide alone: `iso_string`
    /// days, whose filter selects a window of whole dates
    /// ([`PartitionPlan::selects`]). None for every other kind.
    pub select: Option<PartitionPlan>,
    /// Raw object path under the lake URL.
    pub lake_path: String,
    /// Manifest path under the lake URL.
    pub manifest_path: String,
    /// Where documents rejected under `on_type_conflict: reject` go, next
    /// to the raw object; absent when none were.
    pub rejects_path: String,
    /// Where the values that did not convert to their columns' types are
    /// listed, next to the raw object; absent when there were none.
    pub unconverted_path: String,
    /// The warehouse target, for people: `project.dataset.table$20200601`
    /// or a Parquet folder URL.
    pub warehouse: String,
}

impl PipelinePlan {
    /// Whether a day recorded with `recorded` (a ledger record's
    /// `spec_hash`) landed what this spec lands: the same rows hash, or,
    /// for a record written before the rows hash existed (a bare sha256),
    /// the same whole spec.
    pub fn lands_as_recorded(&self, recorded: &str) -> bool {
        if recorded.starts_with(ROWS_HASH_PREFIX) {
            recorded == self.spec_hash
        } else {
            recorded == self.legacy_spec_hash
        }
    }

    /// The secrets a run decrypts: those of the source, the lake and the
    /// warehouse connections.
    pub fn secret_names(&self) -> Vec<String> {
        let warehouse = match &self.warehouse {
            WarehousePlan::Bigquery { connection, .. } => connection.secret_names(),
            WarehousePlan::Parquet { connection, .. } => connection.secret_names(),
        };
        let mut names = self.source.connection.secret_names();
        names.extend(self.lake.connection.secret_names());
        names.extend(warehouse);
        names
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
        let unconverted_path = sibling(&lake_path, "_unconverted.jsonl");
        let warehouse = match &self.warehouse {
            WarehousePlan::Bigquery {
                connection,
                dataset,
                table,
                replace,
                load_from,
                ..
            } => {
                let project = &connection.project;
                let ds = templates.render(dataset, &vars)?;
                let t = templates.render(table, &vars)?;
                let mut how = match replace {
                    ReplaceMode::Decorator => "load WRITE_TRUNCATE",
                    ReplaceMode::Staging => "staging table, then delete + insert",
                }
                .to_owned();
                if *load_from == LoadFrom::Bucket {
                    how.push_str(", from the lake bucket");
                }
                format!(
                    "bigquery {project}.{ds}.{t}${} ({how})",
                    day.format("%Y%m%d")
                )
            }
            WarehousePlan::Parquet {
                connection, path, ..
            } => {
                let base = connection.url.trim_end_matches('/');
                let p = templates.render(path, &vars)?;
                format!("parquet {}/{}/dt={}/", base, p.trim_matches('/'), day)
            }
        };
        Ok(PartitionTarget {
            day,
            filter: self.partition.filter(day, self.source.base_filter.as_ref()),
            select: (self.partition.kind == crate::spec::PartitionKind::IsoString)
                .then(|| self.partition.clone()),
            start,
            end,
            lake_path,
            manifest_path,
            rejects_path,
            unconverted_path,
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

/// Refuses a file of another version than 1; `what` names the files, such
/// as `pipeline specs`.
fn check_version(problems: &mut Vec<Problem>, version: u32, what: &str) {
    if version != 1 {
        problems.push(
            Problem::new(
                crate::ypath!("version"),
                format!("unsupported version `{version}`, expected `1`"),
            )
            .hint(format!("this build of etl reads version 1 {what}")),
        );
    }
}

const COLUMN_HINT: &str = "BigQuery column names use letters, digits and `_`, do not start with a digit, and have at most 300 characters";
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

/// What the rows hash starts with: the version of what it covers. A
/// record whose `spec_hash` lacks it was written by an etl before it, and
/// holds a [`legacy_spec_hash`].
pub const ROWS_HASH_PREFIX: &str = "rows-v1:";

/// The rows hash: sha256 of the spec's canonical JSON without the fields
/// that do not change what lands, prefixed with [`ROWS_HASH_PREFIX`].
///
/// Left out, because they change when or how a day is read but not its
/// rows: `description`, `schedule`, `tests`, `source.batch_size`,
/// `source.max_time_ms`, `source.count`, `partition.lookback`, `changes`,
/// `sinks.warehouse.load_from` (the same rows, sent another way),
/// and `partition.start_date` (it says which days exist, not what a day
/// holds; a day before it is simply not run), plus `name` and `version`
/// (a renamed pipeline has another ledger anyway). Everything else counts:
/// the source (connection, database, collection, filter, projection),
/// the partition's field, kind, granularity and timezone, every flatten
/// rule, and the sinks (connections, paths, formats, tables, types).
///
/// Nulls, empty lists and empty maps are dropped before hashing, so that a
/// field added to the spec types later with an empty default (`Option`,
/// `Vec`, map) leaves every hash as it was. A field added with another
/// default, or a change to what is covered, must bump the prefix and keep
/// accepting the old version's records (see docs/reliability.md).
pub fn rows_hash(spec: &PipelineSpec) -> String {
    let mut json = serde_json::to_value(spec).expect("a spec serializes");
    if let Some(top) = json.as_object_mut() {
        for key in [
            "description",
            "schedule",
            "tests",
            "changes",
            "name",
            "version",
        ] {
            top.remove(key);
        }
        for (parent, keys) in [
            ("source", &["batch_size", "max_time_ms", "count"][..]),
            ("partition", &["lookback", "start_date"][..]),
        ] {
            if let Some(o) = top.get_mut(parent).and_then(|v| v.as_object_mut()) {
                for key in keys {
                    o.remove(*key);
                }
            }
        }
        if let Some(o) = top
            .get_mut("sinks")
            .and_then(|s| s.get_mut("warehouse"))
            .and_then(|v| v.as_object_mut())
        {
            o.remove("load_from");
        }
    }
    prune_empty(&mut json);
    let bytes = serde_json::to_vec(&json).expect("a value serializes");
    format!("{ROWS_HASH_PREFIX}{}", hex::encode(Sha256::digest(bytes)))
}

/// Drops nulls, empty lists and empty maps from maps, depth first.
fn prune_empty(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for child in map.values_mut() {
                prune_empty(child);
            }
            map.retain(|_, child| {
                !(child.is_null()
                    || child.as_array().is_some_and(|a| a.is_empty())
                    || child.as_object().is_some_and(|o| o.is_empty()))
            });
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

/// The hash etl recorded before the rows hash: sha256 of the whole spec's
/// JSON form. Kept, unchanged, only to read the records it is in. Struct fields serialize in declaration
/// order and maps are sorted, so equal specs hash equally whatever the YAML's
/// formatting or comments.
///
/// What only says when or how often days run (`partition.lookback`,
/// `changes`) is left out: changing it redoes no day.
pub fn legacy_spec_hash(spec: &PipelineSpec) -> String {
    let mut spec = spec.clone();
    spec.partition.lookback = 0;
    spec.changes = None;
    let json = serde_json::to_vec(&spec).expect("a spec serializes");
    hex::encode(Sha256::digest(json))
}
