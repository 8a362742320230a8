//! Stage 3, flatten: pass 2 of the day, each document's rows written to
//! its tables' files, against the schemas the day resolved to.
//!
//! It runs during the extract, against the schemas the day is expected to
//! end with ([`Speculation`]), pass 1 riding along in its walk, and is kept
//! when the day's schemas turn out to be those; otherwise it runs again
//! after the extract, over the spool or the local raw archive
//! ([`flatten_staged`]).
//! Either way [`RowsOut`] writes one Parquet file per table, the rows built
//! as typed Arrow columns as they come ([`crate::rows`]): the file both
//! warehouses load.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;

use super::day::{io, PartitionError};
use super::extract::{doc_id, CHUNKS_IN_FLIGHT};
use crate::flatten::{FlattenError, Ridden, RowError, SchemaBuilder, Tables};
use crate::rows::{ParquetTables, RowsError};
use crate::sink::lake::records::{reject_record, unconverted_record};
use crate::spec::Compression;
use crate::table::TableSchema;

/// Where pass 2 writes.
pub(super) struct SpoolOutput {
    /// One Parquet file per table.
    pub parquet: Vec<PathBuf>,
    /// Rejected documents.
    pub rejects: PathBuf,
    /// Values that did not convert to their columns' types.
    pub unconverted: PathBuf,
    /// The tables' names, for reject records.
    pub names: Vec<String>,
}

/// What pass 2 wrote.
pub(super) struct Flattening {
    /// Rows per table.
    pub rows: Vec<u64>,
    /// Documents rejected.
    pub rejected: u64,
    /// Values that did not convert, by `table.column` (a root column by
    /// its name alone).
    pub unconverted: BTreeMap<String, u64>,
}

/// Where pass 2 reads the day's documents after the extract.
pub(super) enum Staged {
    /// The BSON spool.
    Spool(PathBuf),
    /// The local raw archive, when the extract wrote no spool.
    Archive(PathBuf, Compression),
}

/// Pass 2 after the extract: the staged documents to rows, one Parquet
/// file per table; see [`RowsOut`].
pub(super) fn flatten_staged(
    tables: &Tables,
    staged: &Staged,
    output: &SpoolOutput,
    schemas: &[TableSchema],
    day: NaiveDate,
) -> Result<Flattening, PartitionError> {
    let mut out = RowsOut::create(tables, output, schemas, day)?;
    match staged {
        Staged::Spool(spool) => {
            let mut input = BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(spool).map_err(|e| io("cannot open", spool, e))?,
            );
            let mut doc = Vec::with_capacity(16 * 1024);
            loop {
                if input
                    .fill_buf()
                    .map_err(|e| io("cannot read", spool, e))?
                    .is_empty()
                {
                    break;
                }
                let mut len = [0u8; 4];
                input
                    .read_exact(&mut len)
                    .map_err(|e| io("cannot read", spool, e))?;
                let size = i32::from_le_bytes(len) as usize;
                doc.clear();
                doc.extend_from_slice(&len);
                doc.resize(size, 0);
                input
                    .read_exact(&mut doc[4..])
                    .map_err(|e| io("cannot read", spool, e))?;
                let raw = bson::RawDocument::from_bytes(&doc)
                    .map_err(|e| io("corrupt spool", spool, e))?;
                out.document(raw)?;
            }
        }
        Staged::Archive(archive, compression) => {
            let file = std::fs::File::open(archive).map_err(|e| io("cannot open", archive, e))?;
            let mut lines = crate::sink::lake::archive::lines(file, *compression)
                .map_err(|e| io("cannot decompress", archive, e))?;
            let mut line = Vec::with_capacity(16 * 1024);
            for number in 1u64.. {
                line.clear();
                if lines
                    .read_until(b'\n', &mut line)
                    .map_err(|e| io("cannot read", archive, e))?
                    == 0
                {
                    break;
                }
                let doc = crate::extjson::read_archive_line(&line).map_err(|e| {
                    PartitionError::fatal(format!("{}, line {number}: {e}", archive.display()))
                })?;
                out.document(&doc)?;
            }
        }
    }
    out.finish()
}

/// Pass 2's output files: each document's rows appended to its tables'
/// Parquet files. A document with a type conflict under `on_type_conflict:
/// reject` goes whole, as canonical Extended JSON, to the rejects file with
/// the reason, and none of its rows are written.
pub(super) struct RowsOut<'a> {
    tables: &'a Tables,
    output: &'a SpoolOutput,
    out: ParquetTables<'a>,
    rejects: Option<BufWriter<std::fs::File>>,
    unconverted_out: Option<BufWriter<std::fs::File>>,
    rejected: u64,
    unconverted: BTreeMap<String, u64>,
}

impl<'a> RowsOut<'a> {
    fn create(
        tables: &'a Tables,
        output: &'a SpoolOutput,
        schemas: &[TableSchema],
        day: NaiveDate,
    ) -> Result<Self, PartitionError> {
        for path in &output.parquet {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
            }
        }
        let out =
            ParquetTables::create(tables, schemas, &output.parquet, day).map_err(|e| match e {
                RowsError::Flatten(e) => PartitionError::fatal(format!(
                    "table `{}`: {}",
                    output.names[e.table], e.source
                )),
                RowsError::Parquet(e) => PartitionError::fatal(e.to_string()),
            })?;
        Ok(Self {
            tables,
            output,
            out,
            rejects: None,
            unconverted_out: None,
            rejected: 0,
            unconverted: BTreeMap::new(),
        })
    }

    /// One document's rows, or its reject record.
    fn document(&mut self, raw: &bson::RawDocument) -> Result<(), PartitionError> {
        let written = self.out.document(raw);
        self.settle(raw, written)
    }

    /// [`Self::document`] with pass 1 riding along (see
    /// [`ParquetTables::document_inferring`]): the rows' result, then pass
    /// 1's.
    fn document_inferring(
        &mut self,
        raw: &bson::RawDocument,
        inferred: &mut [SchemaBuilder],
        ridden: &mut Ridden,
    ) -> (Result<(), PartitionError>, Result<(), FlattenError>) {
        let (written, pass1) = self.out.document_inferring(raw, inferred, ridden);
        (self.settle(raw, written), pass1)
    }

    /// What became of one document's rows: kept, or its reject record
    /// written, or the error that stops the day.
    fn settle(
        &mut self,
        raw: &bson::RawDocument,
        written: Result<(), RowsError>,
    ) -> Result<(), PartitionError> {
        let output = self.output;
        let written = match written {
            Ok(()) => Ok(()),
            Err(RowsError::Flatten(e)) => Err(e),
            Err(RowsError::Parquet(e)) => return Err(PartitionError::fatal(e.to_string())),
        };
        match written {
            Ok(()) => {}
            // A type conflict under `reject`, and a document that is not
            // valid inside (invalid UTF-8, too deep), which no policy can
            // load: each goes to the rejects, with the path of the value.
            Err(RowError {
                table,
                source:
                    source @ (FlattenError::Conflict { .. }
                    | FlattenError::Bson { .. }
                    | FlattenError::TooDeep { .. }),
            }) => {
                let (FlattenError::Conflict { path, .. }
                | FlattenError::Bson { path, .. }
                | FlattenError::TooDeep { path, .. }) = &source
                else {
                    unreachable!("matched above")
                };
                let out = match &mut self.rejects {
                    Some(out) => out,
                    None => self.rejects.insert(BufWriter::new(
                        std::fs::File::create(&output.rejects)
                            .map_err(|e| io("cannot create", &output.rejects, e))?,
                    )),
                };
                let line = reject_record(
                    &output.names[table],
                    &self.tables.tables()[table].path,
                    path,
                    &source.to_string(),
                    raw,
                );
                out.write_all(&line)
                    .map_err(|e| io("cannot write", &output.rejects, e))?;
                self.rejected += 1;
                return Ok(());
            }
            Err(e) => {
                return Err(PartitionError::fatal(format!(
                    "flattening document {}: table `{}`: {}",
                    doc_id(raw),
                    output.names[e.table],
                    e.source
                )))
            }
        }
        for (t, writer) in self.out.writers().iter().enumerate() {
            for lost in writer.unconverted() {
                let out = match &mut self.unconverted_out {
                    Some(out) => out,
                    None => self.unconverted_out.insert(BufWriter::new(
                        std::fs::File::create(&output.unconverted)
                            .map_err(|e| io("cannot create", &output.unconverted, e))?,
                    )),
                };
                let table = &output.names[t];
                let line = unconverted_record(table, &lost.column, &lost.found, lost.expected, raw);
                out.write_all(&line)
                    .map_err(|e| io("cannot write", &output.unconverted, e))?;
                let key = if t == 0 {
                    lost.column.to_string()
                } else {
                    format!("{table}.{}", lost.column)
                };
                *self.unconverted.entry(key).or_default() += 1;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Flattening, PartitionError> {
        let rows = self.out.rows().to_vec();
        let encoded = self
            .out
            .finish()
            .map_err(|e| PartitionError::fatal(e.to_string()))?;
        if encoded != rows {
            return Err(PartitionError::fatal(format!(
                "the Parquet files hold {encoded:?} rows, not the {rows:?} flattened"
            )));
        }
        if let Some(mut out) = self.rejects {
            out.flush()
                .map_err(|e| io("cannot write", &self.output.rejects, e))?;
        }
        if let Some(mut out) = self.unconverted_out {
            out.flush()
                .map_err(|e| io("cannot write", &self.output.unconverted, e))?;
        }
        Ok(Flattening {
            rows,
            rejected: self.rejected,
            unconverted: self.unconverted,
        })
    }
}

/// Pass 2 during the extract, on a thread of its own, against the schemas
/// the day is expected to end with ([`PipelineRuntime::expected_schemas`]),
/// so that a day is not read back from local disk after its extract. Pass
/// 1 rides along in the same walk (see [`Tables::write_rows_inferring`]),
/// so the reading loop only reads.
///
/// Pass 2's output is a function of the documents and of the schemas, so
/// the rows are kept only when the day's schemas, known after the
/// extract, are exactly the ones expected ([`Speculated::keep`]);
/// otherwise they are dropped and pass 2 runs again over the local raw
/// archive (the extract writes no spool beside a speculation). The
/// Parquet files' bytes depend on the columns' order too, so the schemas
/// must be exactly the ones expected (the lock's order: see
/// [`crate::flatten::adopt_locked_types`]). Pass 2 never fails the
/// partition here: an error stops it, pass 1 goes on alone, and pass 2
/// over the raw archive meets the error again and reports it. Pass 1's own
/// errors stop the day, as they do in the reading loop without a
/// speculation.
///
/// [`PipelineRuntime::expected_schemas`]: super::runtime::PipelineRuntime::expected_schemas
pub(super) struct Speculation {
    chunks: Option<tokio::sync::mpsc::Sender<Arc<Vec<u8>>>>,
    thread: tokio::task::JoinHandle<Result<(Vec<SchemaBuilder>, Speculated), PartitionError>>,
}

/// Pass 2's rows from a [`Speculation`], to keep or not.
pub(super) struct Speculated {
    expected: Vec<TableSchema>,
    /// Pass 2's rows, if it got through every document.
    flattening: Option<Flattening>,
}

impl Speculated {
    /// The rows written, if the day's `schemas` are exactly the ones
    /// expected (column order included: the order is the files').
    pub(super) fn keep(self, schemas: &[TableSchema]) -> Option<Flattening> {
        self.flattening.filter(|_| self.expected == schemas)
    }
}

impl Speculation {
    pub(super) fn start(
        tables: &Arc<Tables>,
        output: &Arc<SpoolOutput>,
        expected: Vec<TableSchema>,
        day: NaiveDate,
    ) -> Self {
        let (chunks, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<u8>>>(CHUNKS_IN_FLIGHT);
        let thread = tokio::task::spawn_blocking({
            let (tables, output) = (tables.clone(), output.clone());
            move || {
                let mut inferred = tables.schema_builders();
                let mut ridden = Ridden::default();
                // None once pass 2 has stopped: pass 1 goes on alone.
                let mut out = RowsOut::create(&tables, &output, &expected, day).ok();
                while let Some(chunk) = rx.blocking_recv() {
                    for doc in crate::extjson::concatenated(&chunk) {
                        let doc = doc.map_err(|e| {
                            PartitionError::fatal(format!("a chunk of the extract: {e}"))
                        })?;
                        let pass1 = match out.as_mut() {
                            Some(rows) => {
                                let (written, pass1) =
                                    rows.document_inferring(doc, &mut inferred, &mut ridden);
                                if written.is_err() {
                                    out = None;
                                }
                                pass1
                            }
                            None => tables.infer(doc, &mut inferred),
                        };
                        super::extract::after_pass_1(doc, pass1)?;
                    }
                }
                let flattening = out.and_then(|rows| rows.finish().ok());
                Ok((
                    inferred,
                    Speculated {
                        expected,
                        flattening,
                    },
                ))
            }
        });
        Self {
            chunks: Some(chunks),
            thread,
        }
    }

    /// Hands a chunk of the extract over; waits while the thread is
    /// [`CHUNKS_IN_FLIGHT`] chunks behind. The thread ends early only on
    /// pass 1's error, which this returns.
    pub(super) async fn send(&mut self, chunk: Arc<Vec<u8>>) -> Result<(), PartitionError> {
        let Some(tx) = &self.chunks else {
            return Ok(());
        };
        if tx.send(chunk).await.is_ok() {
            return Ok(());
        }
        self.chunks = None;
        match (&mut self.thread).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => Err(PartitionError::fatal(
                "pass 1 ended before the extract did".to_owned(),
            )),
            Err(e) => Err(PartitionError::fatal(e.to_string())),
        }
    }

    /// Waits for the thread to go through every document handed over:
    /// pass 1's schema builders, and pass 2's rows.
    pub(super) async fn finish(
        mut self,
    ) -> Result<(Vec<SchemaBuilder>, Speculated), PartitionError> {
        self.chunks = None;
        self.thread
            .await
            .map_err(|e| PartitionError::fatal(e.to_string()))?
    }
}

/// Table `table`'s local Parquet file in staging folder `dir`.
pub(super) fn parquet_file(dir: &std::path::Path, table: &str) -> PathBuf {
    dir.join(format!("parquet-{table}"))
        .join("part-00000.parquet")
}
