//! `etl validate --connect`: each pipeline checked against the servers of
//! the active profile, not only as text.
//!
//! A spec can be valid and still fail on its first night: the collection
//! is misspelt, the partition field is a string in half the documents, no
//! index starts with it so each day reads the whole collection, the
//! warehouse table was made by hand with other partitioning or column
//! types than the schema lock, a bucket is read-only, or the state store
//! does not refuse a second conditional create, so two workers could take
//! the same day. Each finding is a diagnostic placed on the YAML key it
//! concerns (an error, or a warning that does not fail the command); what
//! was checked and found prints as one summary line per pipeline.
//!
//! Connections open as a run opens them ([`PipelineRuntime`],
//! [`open_store_connection`]), so a check passes only where a run would
//! connect. Nothing in MongoDB or BigQuery is changed. In the lake, a
//! Parquet warehouse's store and the state store, probe objects are
//! written under `_etl_validate/` and deleted at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, Document};
use chrono::NaiveDate;

use super::super::{templates_for, Context, Counts, LoadedProject};
use crate::engine::{open_store_connection, PipelineRuntime};
use crate::exit::Exit;
use crate::lock::SchemaLock;
use crate::plan::{PartitionPlan, PipelinePlan, WarehousePlan};
use crate::sink::bigquery::{TableLayout, TableState};
use crate::sink::lake::{Created, Store};
use crate::sink::warehouse::Table;
use crate::source::{MongoSource, ReadOptions, SourceError};
use crate::spec::{
    backticked, did_you_mean, Diagnostic, Loaded, PartitionKind, PipelineSpec, Problem, YamlPath,
};
use crate::table::Column;
use crate::template::EnvMode;
use crate::ypath;

/// Documents sampled for the partition field: the newest by `_id`.
const SAMPLE: i64 = 1000;

/// The server-side time limit of each MongoDB request when the spec sets
/// no `source.max_time_ms`. The driver gives up on an unreachable server
/// after its own 10 s (server selection); a server that accepts
/// connections and never answers is given up after twice this plus 5 s.
const MONGO_MAX_TIME: Duration = Duration::from_secs(10);

/// How long a store or BigQuery check may take in all, retries included:
/// object stores retry for up to 30 s on their own.
const CHECK_TIMEOUT: Duration = Duration::from_secs(45);

/// Where probe objects are written, under a store's root.
const PROBE_PREFIX: &str = "_etl_validate";

/// What the checks found: diagnostics, and one summary line per
/// pipeline (and one for the state store), for people.
pub(super) struct Report {
    /// Errors and warnings, each on the YAML key concerned.
    pub diagnostics: Vec<Diagnostic>,
    /// What was checked and found.
    pub summaries: Vec<String>,
}

/// Checks the state store of the project and each of `pipelines` (specs
/// without problems) against the connections of the active profile.
/// `Err` carries the exit code when the checks could not start (the
/// project or a secret cannot be used); the problem is printed already.
pub(super) fn run(
    ctx: &Context,
    project: &LoadedProject,
    pipelines: &[&Loaded<PipelineSpec>],
) -> Result<Report, Exit> {
    let checked = ctx.checked_project()?;
    let templates = templates_for(&checked.spec, EnvMode::Strict);
    let counts = Counts::for_stdout();
    let mut diagnostics = Vec::new();
    let mut plans = Vec::new();
    for loaded in pipelines {
        let Some(spec) = &loaded.spec else { continue };
        match crate::plan::check_pipeline(
            spec,
            &loaded.file,
            &checked.plan,
            &checked.profile,
            &templates,
        ) {
            Ok(mut plan) => {
                let path = SchemaLock::path(&checked.plan.root, &plan.name);
                match SchemaLock::read(&path) {
                    Ok(lock) => plan.lock = lock.map(Arc::new),
                    Err(e) => diagnostics.push(loaded.place(Problem::new(
                        YamlPath::root(),
                        format!("the schema lock cannot be read: {e}"),
                    ))),
                }
                plans.push((*loaded, plan));
            }
            Err(problems) => diagnostics.extend(problems.into_iter().map(|p| loaded.place(p))),
        }
    }
    let templates = super::super::run::open_secrets(
        &checked.plan,
        &checked.profile,
        plans.iter().map(|(_, p)| p),
        "checked",
    )?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        Exit::RunFailed
    })?;
    let (state, checks) = rt.block_on(async {
        let state = check_state(&checked.plan, &checked.profile, &templates, project);
        let checks = futures::future::join_all(plans.into_iter().map(|(loaded, plan)| {
            let day = check_day(ctx, &plan);
            let runtime = PipelineRuntime::new(plan, templates.clone());
            async move {
                let mut check = PipelineCheck {
                    loaded,
                    counts,
                    diagnostics: Vec::new(),
                    found: Vec::new(),
                };
                check.run(&runtime, day).await;
                (runtime.plan.name.clone(), check)
            }
        }));
        futures::join!(state, checks)
    });
    let mut summaries = vec![state.summary];
    diagnostics.extend(state.diagnostics);
    for (name, check) in checks {
        summaries.push(format!("{name}: {}", check.found.join("; ")));
        diagnostics.extend(check.diagnostics);
    }
    Ok(Report {
        diagnostics,
        summaries,
    })
}

/// The day whose table names are checked (they may depend on it):
/// yesterday in the pipeline's timezone, the last day a run loads, but
/// not before the spec's `start_date`.
fn check_day(ctx: &Context, plan: &PipelinePlan) -> NaiveDate {
    let today = ctx.today(plan.partition.timezone);
    today
        .pred_opt()
        .unwrap_or(today)
        .max(plan.partition.start_date)
}

/// `f`, or a message saying it took longer than [`CHECK_TIMEOUT`].
async fn within<T, E: std::fmt::Display>(
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "{what}: no answer within {}s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

/// What the state store check found.
struct StateCheck {
    diagnostics: Vec<Diagnostic>,
    summary: String,
}

/// The state store (the ledger's and the leases' place): a probe object
/// written, read back and deleted; then a conditional create made twice
/// on one name, the second of which must be refused, as the leases need.
async fn check_state(
    plan: &crate::plan::ProjectPlan,
    profile: &str,
    templates: &crate::template::Templates,
    project: &LoadedProject,
) -> StateCheck {
    let state = plan.state(profile);
    let shown = state.display();
    let at = plan.state_at(profile).key("url");
    let place = |message: String, hint: Option<String>| {
        let mut p = Problem::new(at.clone(), message);
        p.hint = hint;
        project.loaded.place(p)
    };
    let failed = |e: String| StateCheck {
        diagnostics: vec![place(
            format!("the state store `{shown}` cannot be written: {e}"),
            Some(HINT_STATE.to_owned()),
        )],
        summary: format!("state store {shown}: not writable"),
    };
    let store = match open_store_connection(templates, state) {
        Ok((store, _)) => store,
        Err(e) => return failed(e.to_string()),
    };
    if let Err(e) = within("the probe object", probe(&store)).await {
        return failed(e);
    }
    let rel = format!("{PROBE_PREFIX}/{}-create.json", uuid::Uuid::new_v4());
    let twice = async {
        let first = store.create(&rel, probe_bytes()).await?;
        let second = store.create(&rel, probe_bytes()).await;
        store.delete(&rel).await?;
        Ok::<_, crate::sink::lake::LakeError>((first, second?))
    };
    let mut diagnostics = Vec::new();
    let outcome = match within("the conditional create", twice).await {
        Err(e) => {
            diagnostics.push(place(
                format!("a conditional create in the state store `{shown}` failed: {e}"),
                Some(HINT_CONDITIONAL.to_owned()),
            ));
            "its conditional create failed".to_owned()
        }
        Ok((Created::Yes, refused @ (Created::AlreadyExists | Created::Precondition))) => {
            format!("writable; a second conditional create of one name was refused (`{refused:?}`), as day leases need")
        }
        Ok((Created::Yes, Created::Yes)) => {
            diagnostics.push(place(
                format!("the state store `{shown}` accepted a second conditional create of the same object: two workers could take the same day"),
                Some(HINT_CONDITIONAL.to_owned()),
            ));
            "writable, but a second conditional create was accepted".to_owned()
        }
        Ok((first, _)) => {
            diagnostics.push(place(
                format!("the state store `{shown}` refused to create a new object ({first:?}) before it existed"),
                Some(HINT_CONDITIONAL.to_owned()),
            ));
            "writable, but a conditional create of a new object was refused".to_owned()
        }
    };
    StateCheck {
        diagnostics,
        summary: format!("state store {shown}: {outcome}"),
    }
}

const HINT_STATE: &str = "a run keeps its ledger and its day leases there: check `state.url` and `state.options` (credentials, permissions)";

const HINT_CONDITIONAL: &str = "day leases are conditional creates (`PutMode::Create`) that must fail when the object exists: local folders, GCS and Azure do it; for S3 set `aws_conditional_put: etag` under `state.options`, on a store that honours `If-None-Match` (docs/operations.md)";

/// The bytes of a probe object: what it is, for whoever finds one left
/// behind by a killed process.
fn probe_bytes() -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "written_by": "etl validate --connect",
        "at": chrono::Utc::now().to_rfc3339(),
        "note": "a write probe, deleted at once; safe to delete",
    }))
    .expect("JSON")
}

/// Writes a probe object under [`PROBE_PREFIX`], reads it back and deletes
/// it. Returns its name.
async fn probe(store: &Store) -> Result<String, crate::sink::lake::LakeError> {
    let rel = format!("{PROBE_PREFIX}/{}.json", uuid::Uuid::new_v4());
    let bytes = probe_bytes();
    store.put(&rel, bytes.clone()).await?;
    let back = store.get(&rel).await;
    store.delete(&rel).await?;
    match back? {
        Some(b) if b[..] == bytes[..] => Ok(rel),
        _ => Err(crate::sink::lake::LakeError::Io {
            operation: "read back",
            path: rel,
            url: store.display(""),
            message: "the probe object did not read back as written".to_owned(),
            transient: false,
        }),
    }
}

/// The checks of one pipeline, and what they found.
struct PipelineCheck<'a> {
    loaded: &'a Loaded<PipelineSpec>,
    counts: Counts,
    diagnostics: Vec<Diagnostic>,
    /// Summary fragments, in the order checked.
    found: Vec<String>,
}

impl PipelineCheck<'_> {
    fn error(&mut self, path: YamlPath, message: String, hint: Option<String>) {
        let mut p = Problem::new(path, message);
        p.hint = hint;
        self.diagnostics.push(self.loaded.place(p));
    }

    fn warn(&mut self, path: YamlPath, message: String, hint: Option<String>) {
        let mut p = Problem::new(path, message);
        p.hint = hint;
        self.diagnostics.push(self.loaded.place(p).warning());
    }

    fn n(&self, n: u64) -> String {
        self.counts.show(n)
    }

    async fn run(&mut self, rt: &PipelineRuntime, day: NaiveDate) {
        self.source(rt).await;
        self.lake(rt).await;
        self.warehouse(rt, day).await;
    }

    /// The collection, its count, the partition field in a sample, and an
    /// index for the day's range query.
    async fn source(&mut self, rt: &PipelineRuntime) {
        let plan = &rt.plan;
        let (db, coll) = (&plan.source.database, &plan.source.collection);
        let name = &plan.source.connection_name;
        let mongo = match rt.mongo().await {
            Ok(m) => m.with_read_options(ReadOptions {
                batch_size: plan.source.batch_size,
                max_time: Some(
                    plan.source
                        .max_time_ms
                        .map_or(MONGO_MAX_TIME, Duration::from_millis),
                ),
                projection: None,
            }),
            Err(e) => {
                self.error(
                    ypath!("source", "connection"),
                    format!("cannot open MongoDB connection `{name}`: {e}"),
                    None,
                );
                self.found.push(format!("{db}.{coll}: not reached"));
                return;
            }
        };
        let names = match mongo.collection_names().await {
            Ok(n) => n,
            Err(e) => {
                let (message, hint) = split_hint(&e);
                let profile = &plan.profile;
                let hint = hint.unwrap_or_else(|| {
                    format!("is the server up? check the connection's `uri` in etl.yaml (profile `{profile}`)")
                });
                self.error(
                    ypath!("source", "connection"),
                    format!(
                        "cannot reach MongoDB connection `{name}` at `{}`: {message}",
                        mongo.uri_display()
                    ),
                    Some(hint),
                );
                self.found.push(format!("{db}.{coll}: not reached"));
                return;
            }
        };
        if !names.iter().any(|n| n == coll) {
            let hint = collections_hint(coll, db, &names);
            self.error(
                ypath!("source", "collection"),
                format!(
                    "collection `{coll}` does not exist in database `{db}` at `{}`",
                    mongo.uri_display()
                ),
                Some(hint),
            );
            self.found.push(format!("{db}.{coll}: no such collection"));
            return;
        }
        let total = match mongo.estimated_count().await {
            Ok(n) => {
                self.found
                    .push(format!("{db}.{coll} {} documents (estimated)", self.n(n)));
                Some(n)
            }
            Err(e) => {
                let (message, _) = split_hint(&e);
                self.warn(
                    ypath!("source", "collection"),
                    format!("cannot count the documents of `{db}.{coll}`: {message}"),
                    None,
                );
                self.found.push(format!("{db}.{coll} (not counted)"));
                None
            }
        };
        self.partition_field(rt, &mongo).await;
        self.index(rt, &mongo, total).await;
    }

    /// The partition field in the newest documents: present and of the
    /// spec's kind, as a day's filter reads it ([`PartitionPlan::day_of`]).
    async fn partition_field(&mut self, rt: &PipelineRuntime, mongo: &MongoSource) {
        let partition = &rt.plan.partition;
        let field = &partition.field;
        let kind = PartitionKind::name(partition.kind);
        let filter = rt.plan.source.base_filter.clone().unwrap_or_default();
        let sample = match mongo
            .newest(filter.clone(), Some(doc! { field.as_str(): 1 }), SAMPLE)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let (message, hint) = split_hint(&e);
                self.error(
                    ypath!("partition", "field"),
                    format!("cannot read a sample of `{}`: {message}", mongo.namespace()),
                    hint,
                );
                self.found
                    .push(format!("partition field {field}: not sampled"));
                return;
            }
        };
        if sample.is_empty() {
            self.found
                .push(format!("partition field {field}: no documents to sample"));
            return;
        }
        let tally = Tally::of(partition, &sample);
        let n = sample.len() as u64;
        self.found.push(format!(
            "partition field {field}: {kind} in {} of {} sampled",
            self.n(tally.ok),
            self.n(n)
        ));
        if tally.ok == n {
            return;
        }
        let reasons = tally.reasons(self.counts, partition.kind);
        if tally.ok > 0 {
            self.warn(
                ypath!("partition", "field"),
                format!(
                    "`{field}` is not of kind `{kind}` in {} of the {} newest documents: {reasons}",
                    self.n(n - tally.ok),
                    self.n(n)
                ),
                Some(format!(
                    "a document whose `{field}` is not of kind `{kind}` is in no day's range, so no run extracts it; if that is intended, `source.filter` can say so"
                )),
            );
            return;
        }
        let hint = match tally.looks_like() {
            Some(k) if k != partition.kind => format!(
                "the sampled values look like `kind: {}`: check `partition.kind`",
                PartitionKind::name(k)
            ),
            _ if tally.missing == n => self.field_hint(mongo, field, filter).await,
            _ => "check `partition.field` and `partition.kind`: no day's filter selects these documents".to_owned(),
        };
        self.error(
            ypath!("partition", "field"),
            format!(
                "`{field}` is not of kind `{kind}` in any of the {} newest documents: {reasons}",
                self.n(n)
            ),
            Some(hint),
        );
    }

    /// A hint for a field no sampled document has: the nearest name among
    /// the fields of the newest document.
    async fn field_hint(&self, mongo: &MongoSource, field: &str, filter: Document) -> String {
        let (parent, last) = match field.rsplit_once('.') {
            Some((p, l)) => (Some(p), l),
            None => (None, field),
        };
        let newest = mongo.newest(filter, None, 1).await.ok();
        let keys: Vec<String> = newest
            .as_ref()
            .and_then(|d| d.first())
            .and_then(|d| match parent {
                None => Some(d),
                Some(p) => match field_value(d, p) {
                    Some(Bson::Document(inner)) => Some(inner),
                    _ => None,
                },
            })
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        match did_you_mean(last, keys.iter().map(String::as_str)) {
            Some(m) => format!("no sampled document has `{field}`: {m}"),
            None if keys.is_empty() => {
                format!("no sampled document has `{field}`: check `partition.field`")
            }
            None => format!(
                "no sampled document has `{field}`; the newest has {}",
                backticked(&keys)
            ),
        }
    }

    /// An index whose first key is the partition field: without one, the
    /// server reads every document for each day's range.
    async fn index(&mut self, rt: &PipelineRuntime, mongo: &MongoSource, total: Option<u64>) {
        let field = &rt.plan.partition.field;
        let indexes = match mongo.indexes().await {
            Ok(i) => i,
            Err(e) => {
                let (message, _) = split_hint(&e);
                self.warn(
                    ypath!("partition", "field"),
                    format!(
                        "cannot list the indexes of `{}`: {message}",
                        mongo.namespace()
                    ),
                    None,
                );
                self.found.push("indexes not listed".to_owned());
                return;
            }
        };
        if let Some((name, _)) = indexes
            .iter()
            .find(|(_, keys)| starts_range_index(keys, field))
        {
            self.found.push(format!("index {name}"));
            return;
        }
        let whole = match total {
            Some(n) => format!(" ({} documents)", self.n(n)),
            None => String::new(),
        };
        self.warn(
            ypath!("partition", "field"),
            format!(
                "no index of `{}` starts with `{field}`: each day's query reads the whole collection{whole}",
                mongo.namespace()
            ),
            Some(format!(
                "create one (mongosh, database `{}`): `{}`",
                rt.plan.source.database,
                create_index(&rt.plan.source.collection, field)
            )),
        );
        self.found.push(format!("no index on {field}"));
    }

    /// The lake: a probe object written, read back and deleted.
    async fn lake(&mut self, rt: &PipelineRuntime) {
        let name = rt.plan.lake.connection_name.clone();
        let shown = rt.plan.lake.connection.display();
        let result = match rt.lake_store().await {
            Ok(store) => within("the probe object", probe(&store)).await,
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(_) => self.found.push("lake writable".to_owned()),
            Err(e) => {
                self.error(
                    ypath!("sinks", "lake", "connection"),
                    format!("the lake `{shown}` (connection `{name}`) cannot be written: {e}"),
                    Some("check the connection's `url` and `options` in etl.yaml (credentials, permissions)".to_owned()),
                );
                self.found.push("lake not writable".to_owned());
            }
        }
    }

    async fn warehouse(&mut self, rt: &PipelineRuntime, day: NaiveDate) {
        let tables = match rt.tables_on(day) {
            Ok(t) => t,
            Err(e) => {
                self.error(
                    ypath!("sinks", "warehouse"),
                    format!("cannot name the warehouse tables: {e}"),
                    None,
                );
                return;
            }
        };
        match &rt.plan.warehouse {
            WarehousePlan::Bigquery { .. } => self.bigquery(rt, &tables).await,
            WarehousePlan::Parquet { .. } => self.parquet(rt, &tables).await,
        }
    }

    /// Each BigQuery table that exists: DAY partitioning on the partition
    /// column, the spec's clustering (root table), and the lock's column
    /// types.
    async fn bigquery(&mut self, rt: &PipelineRuntime, tables: &[Table]) {
        let WarehousePlan::Bigquery {
            connection,
            connection_name,
            partition_column,
            clustering,
            ..
        } = &rt.plan.warehouse
        else {
            return;
        };
        let sink = match within("BigQuery", async { rt.bigquery().await }).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                self.error(
                    ypath!("sinks", "warehouse", "connection"),
                    format!(
                        "cannot open BigQuery connection `{connection_name}` ({}): {e}",
                        connection.display()
                    ),
                    Some(bigquery_hint(connection_name, &rt.plan.profile)),
                );
                self.found.push("warehouse not reached".to_owned());
                return;
            }
        };
        let mut parts = Vec::new();
        for table in tables {
            let shown = format!("{}.{}", table.dataset, table.name);
            let state = within("BigQuery", sink.table_state(&table.dataset, &table.name)).await;
            let layout = match state {
                Err(e) => {
                    self.error(
                        ypath!("sinks", "warehouse", "connection"),
                        format!(
                            "cannot read table `{shown}` of BigQuery connection `{connection_name}` ({}): {e}",
                            connection.display()
                        ),
                        Some(bigquery_hint(connection_name, &rt.plan.profile)),
                    );
                    parts.push(format!("{shown} not read"));
                    break;
                }
                Ok(TableState::NoDataset) => {
                    parts.push(format!(
                        "dataset {} does not exist yet (a run creates it)",
                        table.dataset
                    ));
                    break;
                }
                Ok(TableState::NoTable) => {
                    parts.push(format!("{shown} does not exist yet (a run creates it)"));
                    continue;
                }
                Ok(TableState::Table(layout)) => layout,
            };
            if !layout.partitioned_on(partition_column) {
                self.error(
                    ypath!("sinks", "warehouse", "table"),
                    format!(
                        "table `{shown}` is partitioned {}, expected DAY partitioning on `{partition_column}`",
                        layout.partitioning()
                    ),
                    Some(format!(
                        "BigQuery cannot change a table's partitioning, and a run refuses this table: recreate it (a run creates it partitioned on `{partition_column}`), or name another in `sinks.warehouse.table`"
                    )),
                );
            }
            if table.root && layout.clustering != *clustering {
                let have = if layout.clustering.is_empty() {
                    "not clustered".to_owned()
                } else {
                    format!("clustered by {}", backticked(&layout.clustering))
                };
                let want = if clustering.is_empty() {
                    "none".to_owned()
                } else {
                    backticked(clustering)
                };
                self.warn(
                    ypath!("sinks", "warehouse", "clustering"),
                    format!("table `{shown}` is {have}; the spec's clustering is {want}"),
                    Some(format!(
                        "runs keep the table's clustering; to change it: `bq update --clustering_fields={} {}:{shown}`",
                        clustering.join(","),
                        sink.project()
                    )),
                );
            }
            parts.push(self.bigquery_columns(rt, table, &shown, &layout));
        }
        self.found.push(format!("warehouse {}", parts.join(", ")));
    }

    /// The lock's columns against the table's: a type that differs is an
    /// error (BigQuery cannot retype a column, so every run would fail); a
    /// column the table lacks is added by the next run.
    fn bigquery_columns(
        &mut self,
        rt: &PipelineRuntime,
        table: &Table,
        shown: &str,
        layout: &TableLayout,
    ) -> String {
        let mut partitioning = layout.partitioning();
        if table.root && !layout.clustering.is_empty() {
            partitioning.push_str(&format!(
                ", clustered by {}",
                backticked(&layout.clustering)
            ));
        }
        let Some(lock) = rt.plan.lock.as_ref().and_then(|l| l.table(&table.name)) else {
            return format!("{shown} partitioned {partitioning}, no schema lock to compare");
        };
        let mut retyped = Vec::new();
        let mut absent = 0;
        for want in &lock.columns {
            match layout.column(&want.name) {
                None => absent += 1,
                Some(have) => {
                    if !have.column.as_ref().is_some_and(|c| same_type(want, c)) {
                        retyped.push(format!(
                            "`{}` is {}, the lock says {}",
                            want.name,
                            have.label,
                            want.type_label()
                        ));
                    }
                }
            }
        }
        let extra = layout
            .columns
            .iter()
            .filter(|c| {
                !lock
                    .columns
                    .iter()
                    .any(|l| l.name.eq_ignore_ascii_case(&c.name))
            })
            .count();
        let lock_file = lock_file(rt);
        if !retyped.is_empty() {
            self.error(
                ypath!("sinks", "warehouse", "table"),
                format!(
                    "table `{shown}` has {} of another type than {lock_file}: {}",
                    plural(retyped.len() as u64, "column", "columns"),
                    retyped.join("; ")
                ),
                Some("BigQuery cannot change a column's type in place, so every run would fail on this table: recreate it, or change the column's type in the spec and refresh the lock with `etl schema lock`".to_owned()),
            );
        }
        let total = lock.columns.len() as u64;
        let mut out = format!(
            "{shown} partitioned {partitioning}, {} of {} lock columns match",
            self.n(total - retyped.len() as u64 - absent),
            self.n(total)
        );
        if absent > 0 {
            out.push_str(&format!(
                ", {} not in the table yet (a run adds them)",
                self.n(absent)
            ));
        }
        if extra > 0 {
            out.push_str(&format!(
                ", {} more in the table than in the lock",
                self.n(extra as u64)
            ));
        }
        out
    }

    /// A Parquet warehouse: its store writable, and the newest file of each
    /// dataset against the lock.
    async fn parquet(&mut self, rt: &PipelineRuntime, tables: &[Table]) {
        let WarehousePlan::Parquet {
            connection,
            connection_name,
            ..
        } = &rt.plan.warehouse
        else {
            return;
        };
        let shown = connection.display();
        let store = match rt.parquet_store() {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                self.error(
                    ypath!("sinks", "warehouse", "connection"),
                    format!("cannot open the Parquet warehouse `{shown}` (connection `{connection_name}`): {e}"),
                    None,
                );
                self.found.push("warehouse not reached".to_owned());
                return;
            }
        };
        if let Err(e) = within("the probe object", probe(&store)).await {
            self.error(
                ypath!("sinks", "warehouse", "connection"),
                format!("the Parquet warehouse `{shown}` (connection `{connection_name}`) cannot be written: {e}"),
                Some("check the connection's `url` and `options` in etl.yaml (credentials, permissions)".to_owned()),
            );
            self.found.push("warehouse not writable".to_owned());
            return;
        }
        let mut parts = vec![format!("warehouse {shown} writable")];
        for table in tables {
            parts.push(self.parquet_table(rt, &store, table).await);
        }
        self.found.push(parts.join(", "));
    }

    /// The newest Parquet file of `table`'s dataset against the lock: a
    /// column of another type is a warning. Files written before the
    /// dataset kept its schema (`_etl/schemas/`) may differ from it, and a
    /// reader of the whole dataset then meets two types until those days
    /// are rerun.
    async fn parquet_table(
        &mut self,
        rt: &PipelineRuntime,
        store: &Store,
        table: &Table,
    ) -> String {
        let dataset = format!("{}{}", table.dataset, table.name);
        let files = match within("listing", store.list(&dataset)).await {
            Ok(f) => f,
            Err(e) => {
                self.error(
                    ypath!("sinks", "warehouse", "path"),
                    format!("cannot list the Parquet dataset `{dataset}`: {e}"),
                    None,
                );
                return format!("{dataset} not listed");
            }
        };
        let Some(newest) = files.iter().filter(|f| f.ends_with(".parquet")).max() else {
            return format!("{dataset} has no files yet");
        };
        let Some(lock) = rt.plan.lock.as_ref().and_then(|l| l.table(&table.name)) else {
            return format!("{dataset}: no schema lock to compare");
        };
        let schema = match within(
            "reading a footer",
            crate::sink::parquet::file_schema(store, newest),
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                self.warn(
                    ypath!("sinks", "warehouse", "path"),
                    format!("cannot read the schema of `{newest}`: {e}"),
                    None,
                );
                return format!("{dataset} newest file not read");
            }
        };
        let mut retyped = Vec::new();
        let mut absent = 0u64;
        for want in &lock.columns {
            let expected = crate::sink::parquet::arrow_schema(&crate::table::TableSchema {
                columns: vec![want.clone()],
            });
            let expected = expected.field(0).data_type();
            match schema.field_with_name(&want.name) {
                Err(_) => absent += 1,
                Ok(f) if f.data_type().equals_datatype(expected) => {}
                Ok(f) => retyped.push(format!(
                    "`{}` is {}, the lock says {} ({expected})",
                    want.name,
                    f.data_type(),
                    want.type_label()
                )),
            }
        }
        if !retyped.is_empty() {
            self.warn(
                ypath!("sinks", "warehouse", "path"),
                format!(
                    "the newest file of `{dataset}` (`{newest}`) has {} of another type than {}: {}",
                    plural(retyped.len() as u64, "column", "columns"),
                    lock_file(rt),
                    retyped.join("; ")
                ),
                Some("the next days are written with the lock's types; a reader of the whole dataset meets both: rewrite the old days with `etl replay`".to_owned()),
            );
        }
        let total = lock.columns.len() as u64;
        let mut out = format!(
            "{newest}: {} of {} lock columns match",
            self.n(total - retyped.len() as u64 - absent),
            self.n(total)
        );
        if absent > 0 {
            out.push_str(&format!(", {} not in it", self.n(absent)));
        }
        out
    }
}

/// What to look at when BigQuery does not answer or refuses.
fn bigquery_hint(connection: &str, profile: &str) -> String {
    format!("check connection `{connection}` of profile `{profile}` in etl.yaml: its `project`, `endpoint` and `credentials`, and that the service answers")
}

/// The lock file of the plan, as people find it in the project.
fn lock_file(rt: &PipelineRuntime) -> String {
    format!("schemas/tables/{}.json", rt.plan.name)
}

/// `n thing`/`n things`.
fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whether a table column holds what the lock's column says: the same
/// type and mode, and for a RECORD the same fields where both have them
/// (fields the table lacks are added by a run).
fn same_type(lock: &Column, table: &Column) -> bool {
    lock.kind == table.kind
        && lock.repeated == table.repeated
        && lock.fields.iter().all(|f| {
            table
                .fields
                .iter()
                .find(|t| t.name.eq_ignore_ascii_case(&f.name))
                .is_none_or(|t| same_type(f, t))
        })
}

/// The message of a source error apart from its hint, so the hint prints
/// as the diagnostic's own.
fn split_hint(e: &SourceError) -> (String, Option<String>) {
    match e {
        SourceError::Server {
            operation,
            message,
            hint,
            ..
        } => (
            format!("`{operation}` failed: {message}"),
            hint.map(str::to_owned),
        ),
        other => (other.to_string(), None),
    }
}

/// The hint for a collection that does not exist: the database's
/// collections, nearest first.
fn collections_hint(coll: &str, db: &str, names: &[String]) -> String {
    let mut names: Vec<&String> = names.iter().filter(|n| !n.starts_with("system.")).collect();
    if names.is_empty() {
        return format!("database `{db}` holds no collection: check `source.database` (and the connection's server)");
    }
    names.sort_by(|a, b| {
        strsim::jaro_winkler(coll, b)
            .total_cmp(&strsim::jaro_winkler(coll, a))
            .then(a.cmp(b))
    });
    let shown: Vec<&String> = names.iter().take(10).copied().collect();
    let more = names.len() - shown.len();
    let listed = backticked(&shown);
    match more {
        0 => format!("database `{db}` holds {listed} (nearest first)"),
        n => format!("database `{db}` holds {listed} and {n} more (nearest first)"),
    }
}

/// Whether an index with `keys` starts with `field` in a way a range
/// query can use (ascending or descending, not hashed or text).
fn starts_range_index(keys: &Document, field: &str) -> bool {
    keys.iter().next().is_some_and(|(k, v)| {
        k == field && matches!(v, Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))
    })
}

/// The mongosh command that creates the index a day's query needs.
fn create_index(collection: &str, field: &str) -> String {
    let is_identifier = collection
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && collection
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    let coll = if is_identifier {
        format!("db.{collection}")
    } else {
        format!("db.getCollection({})", serde_json::json!(collection))
    };
    format!("{coll}.createIndex({{{}: 1}})", serde_json::json!(field))
}

/// The value at dotted `path` of `doc`.
fn field_value<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?)?;
    for part in parts {
        value = value.as_document()?.get(part)?;
    }
    Some(value)
}

/// A BSON type by its MongoDB alias (`$type`), as people search for it.
fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Symbol(_) => "symbol",
        Bson::Decimal128(_) => "decimal",
        Bson::Undefined => "undefined",
        Bson::MaxKey => "maxKey",
        Bson::MinKey => "minKey",
        Bson::DbPointer(_) => "dbPointer",
    }
}

/// Why one sampled document is in no day's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Miss {
    /// The field is not there.
    Missing,
    /// It is null.
    Null,
    /// A BSON type the kind does not read.
    Type(&'static str),
    /// A string (`iso_string`) that does not parse as a time.
    Unparsed,
    /// The right type, but a time out of range (a NaN, a year past 262143).
    OutOfRange,
}

/// The partition field over a sample.
#[derive(Debug, Default)]
struct Tally {
    /// Documents a day's filter selects.
    ok: u64,
    /// Documents without the field.
    missing: u64,
    /// The others, by reason.
    misses: BTreeMap<Miss, u64>,
    /// Per kind, the values of the documents that miss which it would
    /// read: the hint when no document qualifies.
    would_read: BTreeMap<&'static str, (PartitionKind, u64)>,
}

impl Tally {
    fn of(partition: &PartitionPlan, docs: &[Document]) -> Self {
        let mut t = Tally::default();
        for doc in docs {
            if partition.day_of(doc).is_some() {
                t.ok += 1;
                continue;
            }
            let miss = match field_value(doc, &partition.field) {
                None => Miss::Missing,
                Some(Bson::Null) => Miss::Null,
                Some(v) => {
                    if let Some(k) = looks_like(partition, doc, v) {
                        let e = t.would_read.entry(PartitionKind::name(k)).or_insert((k, 0));
                        e.1 += 1;
                    }
                    match (partition.kind, v) {
                        (PartitionKind::IsoString, Bson::String(_)) => Miss::Unparsed,
                        (PartitionKind::Date, Bson::DateTime(_))
                        | (PartitionKind::ObjectId, Bson::ObjectId(_))
                        | (
                            PartitionKind::EpochMillis | PartitionKind::EpochSeconds,
                            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_),
                        ) => Miss::OutOfRange,
                        _ => Miss::Type(type_name(v)),
                    }
                }
            };
            if miss == Miss::Missing {
                t.missing += 1;
            }
            *t.misses.entry(miss).or_default() += 1;
        }
        t
    }

    /// The reasons, most frequent first: `100 missing, 40 null, 10 of BSON
    /// type string`.
    fn reasons(&self, counts: Counts, kind: PartitionKind) -> String {
        let mut misses: Vec<(&Miss, &u64)> = self.misses.iter().collect();
        misses.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        misses
            .into_iter()
            .map(|(m, n)| {
                let n = counts.show(*n);
                match m {
                    Miss::Missing => format!("{n} missing"),
                    Miss::Null => format!("{n} null"),
                    Miss::Type(t) => format!("{n} of BSON type `{t}`"),
                    Miss::Unparsed if n == "1" => {
                        format!("{n} string that does not start with `YYYY-MM-DDTHH:MM:SS`")
                    }
                    Miss::Unparsed => {
                        format!("{n} strings that do not start with `YYYY-MM-DDTHH:MM:SS`")
                    }
                    Miss::OutOfRange => {
                        format!("{n} out of range for `{}`", PartitionKind::name(kind))
                    }
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The kind most of the missing documents' values would read as.
    fn looks_like(&self) -> Option<PartitionKind> {
        self.would_read
            .values()
            .max_by_key(|(_, n)| *n)
            .map(|(k, _)| *k)
    }
}

/// The kind a day's filter would read `value` (of `doc`) with: the
/// engine's own reading ([`PartitionPlan::day_of`]) under each kind; for a
/// number, milliseconds when it is past 1e11 (1973 in milliseconds, the
/// year 5138 in seconds).
fn looks_like(partition: &PartitionPlan, doc: &Document, value: &Bson) -> Option<PartitionKind> {
    let reads = |kind| {
        PartitionPlan {
            kind,
            ..partition.clone()
        }
        .day_of(doc)
        .is_some()
    };
    let number = match value {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    };
    if let Some(n) = number {
        let kind = if n.abs() >= 1e11 {
            PartitionKind::EpochMillis
        } else {
            PartitionKind::EpochSeconds
        };
        return reads(kind).then_some(kind);
    }
    [
        PartitionKind::Date,
        PartitionKind::ObjectId,
        PartitionKind::IsoString,
    ]
    .into_iter()
    .find(|k| reads(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(field: &str, kind: PartitionKind) -> PartitionPlan {
        PartitionPlan {
            field: field.into(),
            kind,
            timezone: chrono_tz::UTC,
            start_date: "2020-06-01".parse().unwrap(),
            lookback: 0,
        }
    }

    #[test]
    fn a_sample_is_tallied_by_reason() {
        let at = bson::DateTime::from_millis(1_591_000_000_000);
        let docs = vec![
            doc! {"created_at": at},
            doc! {"created_at": at},
            doc! {},
            doc! {"created_at": Bson::Null},
            doc! {"created_at": "2020-06-01T10:00:00Z"},
            doc! {"created_at": "2020-06-01T11:00:00Z"},
            doc! {"created_at": 7},
        ];
        let t = Tally::of(&partition("created_at", PartitionKind::Date), &docs);
        assert_eq!(t.ok, 2);
        assert_eq!(t.missing, 1);
        assert_eq!(
            t.reasons(Counts { human: false }, PartitionKind::Date),
            "2 of BSON type `string`, 1 missing, 1 null, 1 of BSON type `int`"
        );
        // Strings parse as ISO times; 7 reads as seconds.
        assert_eq!(t.looks_like(), Some(PartitionKind::IsoString));
    }

    #[test]
    fn strings_that_do_not_parse_and_numbers_by_magnitude() {
        let docs = vec![
            doc! {"ts": "yesterday"},
            doc! {"ts": "2020-06-01T10:00:00Z"},
            doc! {"a": {"b": 1_591_000_000_000i64}},
        ];
        let t = Tally::of(&partition("ts", PartitionKind::IsoString), &docs);
        assert_eq!(t.ok, 1);
        assert_eq!(
            t.reasons(Counts { human: false }, PartitionKind::IsoString),
            "1 missing, 1 string that does not start with `YYYY-MM-DDTHH:MM:SS`"
        );
        let t = Tally::of(&partition("a.b", PartitionKind::Date), &docs[2..]);
        assert_eq!(t.looks_like(), Some(PartitionKind::EpochMillis));
    }

    #[test]
    fn the_index_hint_is_a_mongosh_command() {
        assert_eq!(
            create_index("users", "created_at"),
            r#"db.users.createIndex({"created_at": 1})"#
        );
        assert_eq!(
            create_index("order-items", "meta.at"),
            r#"db.getCollection("order-items").createIndex({"meta.at": 1})"#
        );
        assert!(starts_range_index(
            &doc! {"created_at": 1, "x": 1},
            "created_at"
        ));
        assert!(!starts_range_index(
            &doc! {"x": 1, "created_at": 1},
            "created_at"
        ));
        assert!(!starts_range_index(
            &doc! {"created_at": "hashed"},
            "created_at"
        ));
    }

    #[test]
    fn missing_collections_are_hinted_nearest_first() {
        let names = ["orders", "products", "system.views", "users"].map(str::to_owned);
        let hint = collections_hint("user", "shop", &names);
        assert!(
            hint.starts_with("database `shop` holds `users`, ")
                && hint.ends_with("(nearest first)"),
            "{hint}"
        );
        assert!(!hint.contains("system."), "{hint}");
        let many: Vec<String> = (0..12).map(|i| format!("c{i:02}")).collect();
        assert!(collections_hint("c00", "shop", &many).contains(" and 2 more (nearest first)"));
        assert!(collections_hint("users", "shop2", &[]).contains("holds no collection"));
    }
}
