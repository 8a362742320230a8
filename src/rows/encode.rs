//! Record batches into a local Parquet file: one writer configuration for
//! every Parquet file `etl` writes (zstd, row groups of [`BATCH_ROWS`]
//! rows), so the same rows and schema give the same bytes.

use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::BATCH_ROWS;
use crate::sink::parquet::ParquetError;

/// A local Parquet file being written.
pub struct ParquetFile {
    writer: ArrowWriter<std::fs::File>,
    rows: u64,
    day: chrono::NaiveDate,
}

impl ParquetFile {
    /// Starts the file `out` for batches of `schema`.
    pub fn create(
        schema: SchemaRef,
        out: &Path,
        day: chrono::NaiveDate,
    ) -> Result<Self, ParquetError> {
        let err = |m: String| ParquetError::Convert { day, message: m };
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_size(BATCH_ROWS)
            .set_created_by(format!("etl {}", env!("CARGO_PKG_VERSION")))
            .build();
        let file = std::fs::File::create(out)
            .map_err(|e| err(format!("cannot create `{}`: {e}", out.display())))?;
        let writer =
            ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            writer,
            rows: 0,
            day,
        })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch).map_err(|e| self.error(e))
    }

    /// Ends the file; returns its rows.
    pub fn finish(self) -> Result<u64, ParquetError> {
        let (day, rows) = (self.day, self.rows);
        self.writer.close().map_err(|e| ParquetError::Convert {
            day,
            message: e.to_string(),
        })?;
        Ok(rows)
    }

    fn error(&self, e: impl std::fmt::Display) -> ParquetError {
        ParquetError::Convert {
            day: self.day,
            message: e.to_string(),
        }
    }
}
