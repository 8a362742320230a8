//! One day of one pipeline, start to end: the stages in order, each in
//! a module of its own (see [`super`]), and what a failure records.

use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;

use super::extract::extract;
use super::progress::{Bar, Phase};
use super::reconcile;
use super::rows::{flatten_staged, parquet_file, Flattening, Speculation, SpoolOutput, Staged};
use super::runtime::PipelineRuntime;
use crate::plan::PartitionTarget;
use crate::sink::lake::records::{manifest, RawSummary};
use crate::sink::lake::{LakeError, Store};
use crate::sink::warehouse::{DayRows, WarehouseError};
use crate::source::SourceError;

/// What is known of a partition so far; kept on failure too, so the ledger
/// says how far it got.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// The source's own count of the day (`source.count`, or a replay's
    /// manifest); None when none was made: `raw_lines` are the documents
    /// read.
    pub source_count: Option<u64>,
    pub raw_lines: Option<u64>,
    pub raw_bytes: Option<u64>,
    pub raw_sha256: Option<String>,
    pub warehouse_rows: Option<u64>,
    /// Documents sent to the partition's `_rejects` object.
    pub rejected: Option<u64>,
    /// Values that did not convert to their columns' types, by column
    /// (`table.column` in a child table).
    pub unconverted: std::collections::BTreeMap<String, u64>,
    /// Rows loaded into each child table, by table name.
    pub child_rows: std::collections::BTreeMap<String, u64>,
    pub lake_object: String,
    pub warehouse_target: String,
}

/// Why a partition failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PartitionError {
    /// What failed, with context.
    pub message: String,
    /// Whether a retry may help.
    pub transient: bool,
    /// How far it got.
    pub stats: Box<Stats>,
}

impl PartitionError {
    /// A failure no retry will fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
            stats: Box::default(),
        }
    }

    /// A failure a retry may fix.
    pub(super) fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
            stats: Box::default(),
        }
    }
}

impl From<SourceError> for PartitionError {
    fn from(e: SourceError) -> Self {
        let transient = e.is_transient();
        Self {
            message: e.to_string(),
            transient,
            stats: Box::default(),
        }
    }
}

/// A local file operation that failed.
pub(super) fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> PartitionError {
    PartitionError::fatal(format!("{what} `{}`: {e}", path.display()))
}

impl From<LakeError> for PartitionError {
    fn from(e: LakeError) -> Self {
        Self {
            transient: e.is_transient(),
            message: e.to_string(),
            stats: Box::default(),
        }
    }
}

impl From<WarehouseError> for PartitionError {
    fn from(e: WarehouseError) -> Self {
        Self {
            transient: e.is_transient(),
            message: e.to_string(),
            stats: Box::default(),
        }
    }
}

impl PipelineRuntime {
    /// Runs the partition once. `dir` is its staging folder.
    pub async fn run(
        &self,
        day: NaiveDate,
        dir: &Path,
        bar: &dyn Bar,
    ) -> Result<Stats, PartitionError> {
        let mut stats = Stats::default();
        let fail = |stats: &Stats, mut e: PartitionError| {
            e.stats = Box::new(stats.clone());
            e
        };
        let target = self.target(day).map_err(|e| fail(&stats, e))?;
        let lake = self.lake().await.map_err(|e| fail(&stats, e))?;
        stats.lake_object = lake.display(&target.lake_path);
        stats.warehouse_target = target.warehouse.clone();
        match self.stages(dir, bar, &target, lake, &mut stats).await {
            Ok(()) => Ok(stats),
            Err(e) => Err(fail(&stats, e)),
        }
    }

    async fn stages(
        &self,
        dir: &Path,
        bar: &dyn Bar,
        target: &PartitionTarget,
        lake: &Store,
        stats: &mut Stats,
    ) -> Result<(), PartitionError> {
        let day = target.day;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io("cannot clear", dir, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
        let tables = self.tables().clone();
        let source = self.source().await?;
        let out_tables = self.warehouse_tables(target, &tables)?;
        let names: Vec<String> = out_tables.iter().map(|t| t.name.clone()).collect();
        let logical = tables.names(&self.plan.name);
        let output = Arc::new(SpoolOutput {
            parquet: names.iter().map(|n| parquet_file(dir, n)).collect(),
            rejects: dir.join("_rejects.jsonl"),
            unconverted: dir.join("_unconverted.jsonl"),
            names: names.clone(),
        });

        // Pass 2 starts beside the extract when the day's schemas can be
        // told before it.
        let mut speculation = match self.warehouse().await.ok() {
            Some(warehouse) => self
                .expected_schemas(warehouse, &out_tables, &logical)
                .await
                .map(|expected| Speculation::start(&tables, &output, expected, day)),
            None => None,
        };

        // 1. Extract.
        // A replay counts by the manifest: every line must be read.
        let counted = self.plan.source.count || self.replay;
        let extracted = extract(
            source,
            counted,
            target,
            &tables,
            dir,
            self.plan.lake.compression,
            speculation.as_mut(),
            bar,
        )
        .await?;
        let lines = extracted.lines;
        stats.source_count = counted.then_some(extracted.count);
        stats.raw_lines = Some(lines);
        stats.raw_bytes = Some(extracted.archived.bytes);
        stats.raw_sha256 = Some(extracted.archived.sha256.clone());
        // Pass 1 ran in the reading loop, or beside pass 2 in the
        // speculation's walk.
        let (inferred, speculated) = match speculation {
            Some(s) => {
                let (inferred, speculated) = s.finish().await?;
                (inferred, Some(speculated))
            }
            None => (
                extracted
                    .inferred
                    .expect("the extract infers when no speculation does"),
                None,
            ),
        };
        reconcile::extract(extracted.count, lines, extracted.archived_lines)?;

        // 2. Resolve the schemas.
        let warehouse = self.warehouse().await?;
        let schemas = self
            .resolve_schemas(day, warehouse, &tables, &out_tables, &logical, inferred)
            .await?;

        // 3. Flatten, unless the rows written during the extract already
        // are the day's.
        let kept = speculated.and_then(|s| s.keep(&schemas));
        let Flattening {
            rows,
            rejected,
            unconverted,
        } = match kept {
            Some(flattening) => {
                tracing::debug!(
                    pipeline = %self.plan.name, partition = %day,
                    "rows written during the extract kept: the day has the columns expected"
                );
                flattening
            }
            None => {
                bar.phase(Phase::Flatten {
                    documents: extracted.count,
                });
                for written in [&output.rejects, &output.unconverted] {
                    if written.exists() {
                        std::fs::remove_file(written)
                            .map_err(|e| io("cannot remove", written, e))?;
                    }
                }
                let staged = match &extracted.spool_path {
                    Some(spool) => Staged::Spool(spool.clone()),
                    None => Staged::Archive(extracted.raw_path.clone(), self.plan.lake.compression),
                };
                tracing::debug!(
                    pipeline = %self.plan.name, partition = %day,
                    from = if extracted.spool_path.is_some() { "the spool" } else { "the raw archive" },
                    "flattening the day after its extract"
                );
                let (schemas, tables, output) = (schemas.clone(), tables.clone(), output.clone());
                tokio::task::spawn_blocking(move || {
                    flatten_staged(&tables, &staged, &output, &schemas, day)
                })
                .await
                .map_err(|e| PartitionError::fatal(e.to_string()))??
            }
        };
        if let Some(spool) = &extracted.spool_path {
            let _ = std::fs::remove_file(spool);
        }
        stats.rejected = Some(rejected);
        stats.unconverted = unconverted.clone();

        // 4. Load: the lake and the warehouse, concurrently.
        let manifest = manifest(
            &self.plan,
            target,
            RawSummary {
                documents: lines,
                bytes: extracted.archived.bytes,
                sha256: &extracted.archived.sha256,
                compression: self.plan.lake.compression,
                rejected,
                unconverted: &unconverted,
            },
        );
        bar.phase(Phase::Load {
            bytes: extracted.archived.bytes,
            rows: rows.iter().sum(),
        });
        let upload = async {
            // A replay read the raw object: it stays as archived, and so
            // does the manifest that vouches for it.
            if !self.replay {
                lake.upload(&extracted.raw_path, &target.lake_path).await?;
            }
            if rejected > 0 {
                lake.upload(&output.rejects, &target.rejects_path).await?;
            } else {
                // A rerun after the data or the rules were fixed.
                lake.delete(&target.rejects_path).await?;
            }
            if unconverted.is_empty() {
                lake.delete(&target.unconverted_path).await?;
            } else {
                lake.upload(&output.unconverted, &target.unconverted_path)
                    .await?;
            }
            if !self.replay {
                lake.put(&target.manifest_path, manifest).await?;
            }
            super::crash::point("lake_uploaded");
            bar.uploaded();
            Ok::<(), LakeError>(())
        };
        let load = async {
            let mut loaded = Vec::with_capacity(names.len());
            for (i, table) in out_tables.iter().enumerate() {
                let day_rows = DayRows {
                    parquet: output.parquet[i].clone(),
                    rows: rows[i],
                };
                warehouse.prepare(table, &schemas[i]).await?;
                loaded.push(
                    warehouse
                        .replace_day(table, day, &day_rows, &schemas[i])
                        .await?,
                );
            }
            Ok::<Vec<u64>, WarehouseError>(loaded)
        };
        let (uploaded, loaded) = tokio::join!(upload, load);
        uploaded?;
        let loaded = loaded?;
        stats.warehouse_rows = Some(loaded[0]);
        stats.child_rows = names[1..]
            .iter()
            .cloned()
            .zip(loaded[1..].iter().copied())
            .collect();

        super::crash::point("loaded");

        // 5. Reconcile.
        let counted: Vec<(String, u64, u64)> = names
            .iter()
            .cloned()
            .zip(rows.iter().copied().zip(loaded.iter().copied()))
            .map(|(n, (w, l))| (n, w, l))
            .collect();
        reconcile::load(
            day,
            reconcile::Loaded {
                source_count: extracted.count,
                raw_lines: lines,
                rejected,
                tables: &counted,
            },
        )
    }
}
