//! Parquet files from rows: the format behind the Parquet warehouse
//! ([`crate::sink::warehouse::parquet`]).
//!
//! Rows (see [`crate::table`]) stream through arrow-json into record
//! batches of bounded size, so memory does not grow with the partition,
//! and the same rows and schema give the same bytes.

use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::lake::LakeError;
use crate::spec::ColumnType;
use crate::table::{Column, TableSchema};

/// Rows per record batch and per row group: bounds memory.
const BATCH_ROWS: usize = 8192;

/// Why writing Parquet failed.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// Converting rows failed.
    #[error("writing Parquet for {day}: {message}")]
    Convert {
        /// The day.
        day: chrono::NaiveDate,
        /// Why.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] LakeError),
}

/// The Arrow schema of a table. BYTES stay base64 text, as in the rows file:
/// arrow-json cannot decode base64 into binary.
pub fn arrow_schema(schema: &TableSchema) -> Schema {
    Schema::new(schema.columns.iter().map(arrow_field).collect::<Vec<_>>())
}

/// One column as an Arrow field: REPEATED as a list, RECORD as a struct.
fn arrow_field(c: &Column) -> Field {
    let t = match c.kind {
        ColumnType::String | ColumnType::Json | ColumnType::Bytes => DataType::Utf8,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Numeric => DataType::Decimal128(38, 9),
        ColumnType::Bignumeric => DataType::Decimal256(76, 38),
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        ColumnType::Date => DataType::Date32,
        ColumnType::Record => {
            DataType::Struct(c.fields.iter().map(arrow_field).collect::<Vec<_>>().into())
        }
    };
    let t = if c.repeated {
        DataType::List(Arc::new(Field::new("item", t, true)))
    } else {
        t
    };
    Field::new(&c.name, t, true)
}

/// Converts the rows file into a local Parquet file; returns its row count.
pub fn write_local(
    rows_file: &Path,
    schema: &TableSchema,
    out: &Path,
    day: chrono::NaiveDate,
) -> Result<u64, ParquetError> {
    let mut input = std::fs::File::open(rows_file).map_err(|e| ParquetError::Convert {
        day,
        message: format!("cannot open `{}`: {e}", rows_file.display()),
    })?;
    let mut encoder = Encoder::create(schema, out, day)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut input, &mut buf).map_err(|e| ParquetError::Convert {
            day,
            message: format!("cannot read `{}`: {e}", rows_file.display()),
        })?;
        if n == 0 {
            break;
        }
        encoder.rows(&buf[..n])?;
    }
    encoder.finish()
}

/// NDJSON rows into a local Parquet file as they come, in record batches
/// of [`BATCH_ROWS`] rows: the file depends only on the rows and the
/// schema, not on how the bytes were handed over.
pub struct Encoder {
    decoder: arrow_json::reader::Decoder,
    writer: ArrowWriter<std::fs::File>,
    rows: u64,
    day: chrono::NaiveDate,
}

impl Encoder {
    /// Starts the file `out` for rows of `schema`.
    pub fn create(
        schema: &TableSchema,
        out: &Path,
        day: chrono::NaiveDate,
    ) -> Result<Self, ParquetError> {
        let err = |m: String| ParquetError::Convert { day, message: m };
        let arrow = Arc::new(arrow_schema(schema));
        let decoder = arrow_json::ReaderBuilder::new(arrow.clone())
            .with_batch_size(BATCH_ROWS)
            .build_decoder()
            .map_err(|e| err(e.to_string()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_size(BATCH_ROWS)
            .set_created_by(format!("etl {}", env!("CARGO_PKG_VERSION")))
            .build();
        let file = std::fs::File::create(out)
            .map_err(|e| err(format!("cannot create `{}`: {e}", out.display())))?;
        let writer =
            ArrowWriter::try_new(file, arrow, Some(props)).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            decoder,
            writer,
            rows: 0,
            day,
        })
    }

    /// More NDJSON; a row may end in a later call.
    pub fn rows(&mut self, mut bytes: &[u8]) -> Result<(), ParquetError> {
        while !bytes.is_empty() {
            let n = self.decoder.decode(bytes).map_err(|e| self.error(e))?;
            bytes = &bytes[n..];
            if !bytes.is_empty() {
                // The decoder holds a whole batch.
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ParquetError> {
        if let Some(batch) = self.decoder.flush().map_err(|e| self.error(e))? {
            self.rows += batch.num_rows() as u64;
            self.writer.write(&batch).map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// Ends the file; returns its rows.
    pub fn finish(mut self) -> Result<u64, ParquetError> {
        self.flush()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> TableSchema {
        TableSchema::of(&[
            ("_ds", ColumnType::Date, false),
            ("id", ColumnType::Int64, false),
            ("name", ColumnType::String, false),
            ("ts", ColumnType::Timestamp, false),
            ("price", ColumnType::Numeric, false),
            ("score", ColumnType::Float64, false),
            ("ok", ColumnType::Bool, false),
            ("tags", ColumnType::String, true),
        ])
    }

    #[test]
    fn same_rows_give_identical_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let rows = dir.path().join("rows.ndjson");
        std::fs::write(&rows, "{\"_ds\":\"2020-06-01\",\"id\":1,\"name\":\"a\"}\n").unwrap();
        let day = "2020-06-01".parse().unwrap();
        write_local(&rows, &schema(), &dir.path().join("a.parquet"), day).unwrap();
        write_local(&rows, &schema(), &dir.path().join("b.parquet"), day).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("a.parquet")).unwrap(),
            std::fs::read(dir.path().join("b.parquet")).unwrap()
        );
    }

    /// Rows handed over in pieces of any size, rows split across pieces,
    /// give the same file as the rows file read whole: the engine encodes
    /// during the extract, one document's rows at a time, and must write
    /// what the same rows written afterwards give.
    #[test]
    fn rows_in_pieces_give_the_file_of_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let rows = dir.path().join("rows.ndjson");
        let mut ndjson = String::new();
        // More than two batches, so that batch boundaries are crossed.
        for i in 0..(2 * BATCH_ROWS + 123) {
            ndjson.push_str(&format!(
                "{{\"_ds\":\"2020-06-01\",\"id\":{i},\"name\":\"n{}\",\"tags\":[\"t{}\"]}}\n",
                i % 17,
                i % 5
            ));
        }
        std::fs::write(&rows, &ndjson).unwrap();
        let day = "2020-06-01".parse().unwrap();
        let whole = dir.path().join("whole.parquet");
        assert_eq!(
            write_local(&rows, &schema(), &whole, day).unwrap(),
            2 * BATCH_ROWS as u64 + 123
        );
        for piece in [1, 7, 4096, 1 << 20] {
            let out = dir.path().join(format!("pieces-{piece}.parquet"));
            let mut encoder = Encoder::create(&schema(), &out, day).unwrap();
            for chunk in ndjson.as_bytes().chunks(piece) {
                encoder.rows(chunk).unwrap();
            }
            assert_eq!(encoder.finish().unwrap(), 2 * BATCH_ROWS as u64 + 123);
            assert!(
                std::fs::read(&out).unwrap() == std::fs::read(&whole).unwrap(),
                "pieces of {piece} bytes"
            );
        }
    }
}
