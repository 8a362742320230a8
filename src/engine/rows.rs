//! Stage 3, flatten: pass 2 of the day, each document's rows written to
//! its tables' files, against the schemas the day resolved to.
//!
//! It runs during the extract, against the schemas the day is expected to
//! end with ([`Speculation`]), and is kept when the day's schemas turn out
//! to be those; otherwise it runs again after the extract, over the spool
//! or the local raw archive ([`flatten_staged`]).
//! Either way [`RowsOut`] writes: NDJSON files, or under a warehouse that
//! [wants Parquet](crate::sink::warehouse::Warehouse::wants_parquet)
//! Parquet files, the rows built as typed Arrow columns as they come
//! ([`crate::rows`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;

use super::day::{io, PartitionError};
use super::extract::{doc_id, CHUNKS_IN_FLIGHT};
use crate::flatten::{FlattenError, RowError, Tables};
use crate::rows::{ParquetTables, RowsError};
use crate::sink::lake::records::{reject_record, unconverted_record};
use crate::spec::Compression;
use crate::table::TableSchema;

/// Where pass 2 writes.
pub(super) struct SpoolOutput {
    /// One rows file per table.
    pub rows: Vec<PathBuf>,
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
    /// Per table, the rows of its local Parquet file when the rows were
    /// encoded as they were written; empty otherwise.
    pub encoded: Vec<u64>,
}

/// Where pass 2 reads the day's documents after the extract.
pub(super) enum Staged {
    /// The BSON spool.
    Spool(PathBuf),
    /// The local raw archive, when the extract wrote no spool.
    Archive(PathBuf, Compression),
}

/// Pass 2 after the extract: the staged documents to rows, one file per
/// table; see [`RowsOut`]. `parquet`: each table's Parquet file, written
/// instead of its NDJSON file.
pub(super) fn flatten_staged(
    tables: &Tables,
    staged: &Staged,
    output: &SpoolOutput,
    schemas: &[TableSchema],
    parquet: Option<&[PathBuf]>,
    day: NaiveDate,
) -> Result<Flattening, PartitionError> {
    let mut out = RowsOut::create(tables, output, schemas, day, parquet)?;
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
/// files. A document with a type conflict under `on_type_conflict:
/// reject` goes whole, as canonical Extended JSON, to the rejects file with
/// the reason, and none of its rows are written.
pub(super) struct RowsOut<'a> {
    tables: &'a Tables,
    output: &'a SpoolOutput,
    day: NaiveDate,
    out: Out<'a>,
    rejects: Option<BufWriter<std::fs::File>>,
    unconverted_out: Option<BufWriter<std::fs::File>>,
    rejected: u64,
    unconverted: BTreeMap<String, u64>,
}

/// The tables' files.
enum Out<'a> {
    /// NDJSON, for BigQuery.
    Ndjson {
        writers: Vec<crate::flatten::RowWriter<'a>>,
        files: Vec<BufWriter<std::fs::File>>,
        /// One document's rows per table.
        bufs: Vec<Vec<u8>>,
        rows: Vec<u64>,
    },
    /// Parquet, under a Parquet warehouse: typed Arrow columns, no text.
    Parquet(ParquetTables<'a>),
}

impl<'a> RowsOut<'a> {
    /// `parquet`: each table's rows go into that Parquet file instead of
    /// its NDJSON file (the Parquet file is all a Parquet warehouse loads:
    /// the day's NDJSON would be a gigabyte of writes per million orders
    /// for nothing).
    fn create(
        tables: &'a Tables,
        output: &'a SpoolOutput,
        schemas: &[TableSchema],
        day: NaiveDate,
        parquet: Option<&[PathBuf]>,
    ) -> Result<Self, PartitionError> {
        let writer_error = |e: RowError| {
            PartitionError::fatal(format!("table `{}`: {}", output.names[e.table], e.source))
        };
        let out = match parquet {
            None => Out::Ndjson {
                writers: tables.row_writers(schemas).map_err(writer_error)?,
                files: output
                    .rows
                    .iter()
                    .map(|path| {
                        std::fs::File::create(path)
                            .map(|f| BufWriter::with_capacity(1 << 20, f))
                            .map_err(|e| io("cannot create", path, e))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                bufs: vec![Vec::with_capacity(16 * 1024); output.rows.len()],
                rows: vec![0; output.rows.len()],
            },
            Some(parquet) => {
                for path in parquet {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir).map_err(|e| io("cannot create", dir, e))?;
                    }
                }
                Out::Parquet(
                    ParquetTables::create(tables, schemas, parquet, day).map_err(|e| match e {
                        RowsError::Flatten(e) => writer_error(e),
                        RowsError::Parquet(e) => PartitionError::fatal(e.to_string()),
                    })?,
                )
            }
        };
        Ok(Self {
            tables,
            output,
            day,
            out,
            rejects: None,
            unconverted_out: None,
            rejected: 0,
            unconverted: BTreeMap::new(),
        })
    }

    /// One document's rows, or its reject record.
    fn document(&mut self, raw: &bson::RawDocument) -> Result<(), PartitionError> {
        let output = self.output;
        let written = match &mut self.out {
            Out::Ndjson { writers, bufs, .. } => {
                self.tables.write_rows_with(raw, self.day, writers, bufs)
            }
            Out::Parquet(tables) => match tables.document(raw) {
                Ok(()) => Ok(()),
                Err(RowsError::Flatten(e)) => Err(e),
                Err(RowsError::Parquet(e)) => return Err(PartitionError::fatal(e.to_string())),
            },
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
        let writers = match &self.out {
            Out::Ndjson { writers, .. } => &writers[..],
            Out::Parquet(tables) => tables.writers(),
        };
        for (t, writer) in writers.iter().enumerate() {
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
        if let Out::Ndjson {
            files, bufs, rows, ..
        } = &mut self.out
        {
            for (buf, count) in bufs.iter().zip(rows.iter_mut()) {
                // Rows end in a newline and hold none inside.
                *count += memchr::memchr_iter(b'\n', buf).count() as u64;
            }
            for ((buf, file), path) in bufs.iter().zip(files.iter_mut()).zip(&output.rows) {
                if !buf.is_empty() {
                    file.write_all(buf)
                        .map_err(|e| io("cannot write", path, e))?;
                }
            }
            for buf in bufs.iter_mut() {
                buf.clear();
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Flattening, PartitionError> {
        let (rows, encoded) = match self.out {
            Out::Ndjson {
                mut files, rows, ..
            } => {
                for (file, path) in files.iter_mut().zip(&self.output.rows) {
                    file.flush().map_err(|e| io("cannot write", path, e))?;
                }
                (rows, Vec::new())
            }
            Out::Parquet(tables) => {
                let rows = tables.rows().to_vec();
                let encoded = tables
                    .finish()
                    .map_err(|e| PartitionError::fatal(e.to_string()))?;
                (rows, encoded)
            }
        };
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
            encoded,
        })
    }
}

/// Pass 2 during the extract, on a thread of its own, against the schemas
/// the day is expected to end with ([`PipelineRuntime::expected_schemas`]),
/// so that a day is not read back from local disk after its extract.
///
/// Pass 2's output is a function of the documents and of the schemas' set
/// of columns, so the rows are kept only when the day's schemas, known
/// after the extract, have exactly the expected columns ([`same_columns`]);
/// otherwise they are dropped and pass 2 runs again over the local raw
/// archive (the extract writes no spool beside a speculation). Under a
/// Parquet warehouse it encodes each table's Parquet file instead, whose
/// bytes also depend on the columns' order, so there the schemas must be
/// exactly the ones expected (the lock's order: see
/// [`crate::flatten::adopt_locked_types`]). It never fails
/// the partition: an error stops it, and pass 2 over the raw archive meets
/// the error again and reports it.
pub(super) struct Speculation {
    expected: Vec<TableSchema>,
    /// Whether it writes Parquet files rather than NDJSON.
    parquet: bool,
    chunks: Option<tokio::sync::mpsc::Sender<Arc<Vec<u8>>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: tokio::task::JoinHandle<Option<Flattening>>,
}

impl Speculation {
    /// `parquet`: under a Parquet warehouse, each table's local Parquet
    /// file, encoded as the rows are written.
    pub(super) fn start(
        tables: &Arc<Tables>,
        output: &Arc<SpoolOutput>,
        expected: Vec<TableSchema>,
        parquet: Option<Vec<PathBuf>>,
        day: NaiveDate,
    ) -> Self {
        let (chunks, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<u8>>>(CHUNKS_IN_FLIGHT);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let is_parquet = parquet.is_some();
        let thread = tokio::task::spawn_blocking({
            let (tables, output, schemas, stop) = (
                tables.clone(),
                output.clone(),
                expected.clone(),
                stop.clone(),
            );
            move || {
                let mut out =
                    RowsOut::create(&tables, &output, &schemas, day, parquet.as_deref()).ok()?;
                while let Some(chunk) = rx.blocking_recv() {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return None;
                    }
                    for doc in crate::extjson::concatenated(&chunk) {
                        out.document(doc.ok()?).ok()?;
                    }
                }
                out.finish().ok()
            }
        });
        Self {
            expected,
            parquet: is_parquet,
            chunks: Some(chunks),
            stop,
            thread,
        }
    }

    /// Hands a chunk of the extract over; waits while the thread is
    /// [`CHUNKS_IN_FLIGHT`] chunks behind. Once the thread has stopped, the
    /// chunks go nowhere.
    pub(super) async fn send(&mut self, chunk: Arc<Vec<u8>>) {
        if let Some(tx) = &self.chunks {
            if tx.send(chunk).await.is_err() {
                self.chunks = None;
            }
        }
    }

    /// The rows written, if the day's `schemas` are the ones expected and
    /// the thread got through every document. Parquet files (`encoded`
    /// Some for each table) are kept only if every schema is exactly the
    /// one expected, column order included: the order is the file's.
    pub(super) async fn finish(
        mut self,
        schemas: &[TableSchema],
    ) -> Option<(Flattening, Vec<Option<u64>>)> {
        self.chunks = None;
        let keep = self.expected.len() == schemas.len()
            && self.expected.iter().zip(schemas).all(|(a, b)| {
                if self.parquet {
                    a == b
                } else {
                    same_columns(a, b)
                }
            });
        if !keep {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let written = self.thread.await.ok().flatten().filter(|_| keep)?;
        let encoded = (0..schemas.len())
            .map(|i| written.encoded.get(i).copied())
            .collect();
        Some((written, encoded))
    }
}

/// Whether pass 2 writes the same rows against `a` as against `b`: the same
/// columns, in any order. Pass 2 finds a column by its name, and by its
/// name without case when that fails; with two names equal without case,
/// which one that finds depends on the order, so then only the same order
/// will do.
fn same_columns(a: &TableSchema, b: &TableSchema) -> bool {
    if a.columns.len() != b.columns.len() {
        return false;
    }
    let lowercase: std::collections::HashSet<String> = a
        .columns
        .iter()
        .map(|c| c.name.to_ascii_lowercase())
        .collect();
    if lowercase.len() != a.columns.len() {
        return a == b;
    }
    sorted_columns(a) == sorted_columns(b)
}

fn sorted_columns(s: &TableSchema) -> Vec<&crate::table::Column> {
    let mut columns: Vec<&crate::table::Column> = s.columns.iter().collect();
    columns.sort_by(|x, y| x.name.cmp(&y.name));
    columns
}

/// Table `table`'s local Parquet file in staging folder `dir`.
pub(super) fn parquet_file(dir: &Path, table: &str) -> PathBuf {
    dir.join(format!("parquet-{table}"))
        .join("part-00000.parquet")
}
