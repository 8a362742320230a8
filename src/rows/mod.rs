//! The typed row path (issue 31): a day's documents straight into Arrow
//! record batches and Parquet files, with no NDJSON text in between. Both
//! warehouses load what it writes: the Parquet datasets publish the file,
//! BigQuery loads it (`sourceFormat: PARQUET`).
//!
//! In the order a document flows:
//! 1. the rules, compiled once: [`crate::flatten::Tables`], each table's
//!    schema resolved once by its [`RowWriter`]; the walk is the one that
//!    writes NDJSON, through another [`crate::flatten`] row format;
//! 2. `staged`: one document's rows as typed values, kept until the whole
//!    document has flattened, so a rejected document leaves no row in any
//!    table;
//! 3. `columns`: each table's Arrow builders, one per column (REPEATED as
//!    `ListBuilder`, REPEATED RECORD as a `ListBuilder` of a
//!    `StructBuilder`), cut into record batches of [`BATCH_ROWS`] rows, so
//!    memory does not grow with the day;
//! 4. `encode`: the batches into each table's Parquet file
//!    ([`ParquetFile`]), on a thread of their own ([`Encoder`]), so the
//!    walk and the builders use one core and Parquet's encoder another.
//!
//! Values are the ones the NDJSON path gives once arrow-json has read it
//! back (the `rows_differential` test holds the two paths to it, column
//! by column), and the same documents give the same bytes.

mod columns;
mod encode;
mod staged;

use std::path::PathBuf;

use bson::raw::RawDocument;
use chrono::NaiveDate;

use crate::flatten::{FlattenError, Ridden, RowError, RowWriter, SchemaBuilder, Tables};
use crate::sink::parquet::ParquetError;
use crate::table::TableSchema;

pub use encode::{Encoder, ParquetFile};

use columns::TableColumns;
use staged::Staged;

/// Rows per record batch and per row group: bounds memory.
pub const BATCH_ROWS: usize = 8192;

#[cfg(test)]
mod tests;

/// Why a document's rows were not written.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// The document did not flatten; nothing of it was written.
    #[error(transparent)]
    Flatten(#[from] RowError),
    /// Writing a Parquet file failed.
    #[error(transparent)]
    Parquet(#[from] ParquetError),
}

/// A day's tables written as Parquet files, a document at a time.
pub struct ParquetTables<'a> {
    tables: &'a Tables,
    writers: Vec<RowWriter<'a>>,
    staged: Vec<Staged>,
    columns: Vec<TableColumns>,
    files: Encoder,
    full: Vec<arrow_array::RecordBatch>,
    rows: Vec<u64>,
    day: NaiveDate,
}

impl<'a> ParquetTables<'a> {
    /// Starts table `i`'s file at `paths[i]`, for rows of `schemas[i]`.
    pub fn create(
        tables: &'a Tables,
        schemas: &[TableSchema],
        paths: &[PathBuf],
        day: NaiveDate,
    ) -> Result<Self, RowsError> {
        let writers = tables.row_writers(schemas)?;
        let mut columns = Vec::with_capacity(schemas.len());
        let mut files = Vec::with_capacity(schemas.len());
        for (schema, path) in schemas.iter().zip(paths) {
            let arrow = columns::schema_ref(schema);
            files.push(ParquetFile::create(arrow.clone(), path, day)?);
            columns.push(TableColumns::new(arrow));
        }
        Ok(Self {
            tables,
            writers,
            staged: (0..schemas.len()).map(|_| Staged::default()).collect(),
            columns,
            files: Encoder::start(files, day),
            full: Vec::new(),
            rows: vec![0; schemas.len()],
            day,
        })
    }

    /// One document's rows, in every table; on a [`RowsError::Flatten`]
    /// nothing of the document is written.
    pub fn document(&mut self, doc: &RawDocument) -> Result<(), RowsError> {
        for staged in &mut self.staged {
            staged.clear();
        }
        self.tables
            .write_rows_into(doc, self.day, &mut self.writers, &mut self.staged)?;
        self.append_staged()
    }

    /// [`Self::document`], with pass 1 of the day riding along: `builders`
    /// end as [`Tables::infer`] over `doc` leaves them, in the same walk
    /// (see [`Tables::write_rows_inferring`]). Returns the rows' result,
    /// then pass 1's.
    pub(crate) fn document_inferring(
        &mut self,
        doc: &RawDocument,
        builders: &mut [SchemaBuilder],
        ridden: &mut Ridden,
    ) -> (Result<(), RowsError>, Result<(), FlattenError>) {
        for staged in &mut self.staged {
            staged.clear();
        }
        let (written, inferred) = self.tables.write_rows_inferring(
            doc,
            self.day,
            &mut self.writers,
            &mut self.staged,
            builders,
            ridden,
        );
        let written = match written {
            Ok(()) => self.append_staged(),
            Err(e) => Err(e.into()),
        };
        (written, inferred)
    }

    /// Appends the rows staged for one document to their tables' builders,
    /// and hands each full batch to the encoder.
    fn append_staged(&mut self) -> Result<(), RowsError> {
        let day = self.day;
        let convert = |message: String| ParquetError::Convert { day, message };
        for (t, staged) in self.staged.iter().enumerate() {
            if staged.events.is_empty() {
                continue;
            }
            self.rows[t] += staged.rows() as u64;
            self.columns[t]
                .append(staged, &mut self.full)
                .map_err(convert)?;
            for batch in self.full.drain(..) {
                self.files.write(t, batch)?;
            }
        }
        Ok(())
    }

    /// Each table's writer: what its last row left unconverted.
    pub fn writers(&self) -> &[RowWriter<'a>] {
        &self.writers
    }

    /// Rows written so far, per table.
    pub fn rows(&self) -> &[u64] {
        &self.rows
    }

    /// Ends every file; returns each one's rows.
    pub fn finish(mut self) -> Result<Vec<u64>, ParquetError> {
        let day = self.day;
        for (t, columns) in self.columns.iter_mut().enumerate() {
            if let Some(batch) = columns
                .finish()
                .map_err(|message| ParquetError::Convert { day, message })?
            {
                self.files.write(t, batch)?;
            }
        }
        self.files.finish()
    }
}
