//! Parquet files: the format behind the Parquet warehouse
//! ([`crate::sink::warehouse::parquet`]).
//!
//! A run's rows reach both warehouses as the Parquet files the row path
//! ([`crate::rows`]) encodes from typed Arrow builders. Rows written by
//! hand in the NDJSON row format of [`crate::table`] (the warehouse
//! contract's suite, the tests, the benchmark of the old path) stream
//! through arrow-json into record batches of bounded size instead
//! ([`write_local`]); no run uses it. Either way memory does not grow with
//! the partition, and the same rows and schema give the same bytes.
//! [`read_rows`] turns them back into rows, for `etl preview`.

use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::lake::LakeError;
use crate::spec::ColumnType;
use crate::table::{Column, JsonRow, TableSchema};

use crate::rows::{ParquetFile, BATCH_ROWS};

/// NDJSON an [`Encoder`] gathers before decoding it.
const PENDING_BYTES: usize = 256 << 10;

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
    /// Reading a Parquet file back failed.
    #[error("reading Parquet file `{file}`: {message}")]
    Read {
        /// The file, as its store shows it.
        file: String,
        /// Why.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] LakeError),
}

/// The Arrow schema of a table. BYTES are binary (Parquet's BYTE_ARRAY
/// without the UTF8 annotation), which BigQuery loads into a BYTES column;
/// their NDJSON row form is base64 text.
pub fn arrow_schema(schema: &TableSchema) -> Schema {
    Schema::new(schema.columns.iter().map(arrow_field).collect::<Vec<_>>())
}

/// The Arrow schema arrow-json decodes a table's NDJSON rows into:
/// [`arrow_schema`] with BYTES as their row form, base64 text (arrow-json
/// has no base64), which [`write_local`] then decodes.
pub fn ndjson_schema(schema: &TableSchema) -> Schema {
    Schema::new(
        arrow_schema(schema)
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), as_text(f.data_type()), f.is_nullable()))
            .collect::<Vec<_>>(),
    )
}

/// `t` with every binary as text: see [`ndjson_schema`].
fn as_text(t: &DataType) -> DataType {
    let field = |f: &Field| Field::new(f.name(), as_text(f.data_type()), f.is_nullable());
    match t {
        DataType::Binary => DataType::Utf8,
        DataType::List(item) => DataType::List(Arc::new(field(item))),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| field(f)).collect::<Vec<_>>().into())
        }
        t => t.clone(),
    }
}

/// `array`, decoded by [`as_text`]'s schema, as `want`: each base64 text
/// where `want` has a binary decoded, in lists and records too.
fn from_base64(
    array: &arrow_array::ArrayRef,
    want: &DataType,
) -> Result<arrow_array::ArrayRef, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::{Array, BinaryArray, ListArray, StructArray};
    use base64::Engine;
    if array.data_type() == want {
        return Ok(array.clone());
    }
    Ok(match (array.data_type(), want) {
        (DataType::Utf8, DataType::Binary) => {
            let text = array.as_string::<i32>();
            let decoded = text
                .iter()
                .map(|v| {
                    v.map(|v| base64::engine::general_purpose::STANDARD.decode(v))
                        .transpose()
                        .map_err(|e| format!("a BYTES value is not base64 ({e}): {v:?}"))
                })
                .collect::<Result<BinaryArray, _>>()?;
            Arc::new(decoded)
        }
        (DataType::List(_), DataType::List(item)) => {
            let list = array.as_list::<i32>();
            Arc::new(ListArray::new(
                item.clone(),
                list.offsets().clone(),
                from_base64(list.values(), item.data_type())?,
                list.nulls().cloned(),
            ))
        }
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let record = array.as_struct();
            let columns = record
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(c, f)| from_base64(c, f.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StructArray::new(
                fields.clone(),
                columns,
                record.nulls().cloned(),
            ))
        }
        (have, want) => return Err(format!("a {have} column where {want} was expected")),
    })
}

/// One column as an Arrow field: REPEATED as a list, RECORD as a struct.
fn arrow_field(c: &Column) -> Field {
    let t = match c.kind {
        ColumnType::String | ColumnType::Json => DataType::Utf8,
        ColumnType::Bytes => DataType::Binary,
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
    /// The file's schema (the decoder's has text for binary).
    arrow: arrow_schema::SchemaRef,
    /// Rows not yet decoded: the decoder is handed [`PENDING_BYTES`] at a
    /// time, not a document's few rows per call.
    pending: Vec<u8>,
    file: ParquetFile,
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
        let decoder = arrow_json::ReaderBuilder::new(Arc::new(ndjson_schema(schema)))
            .with_batch_size(BATCH_ROWS)
            .build_decoder()
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            decoder,
            arrow: arrow.clone(),
            pending: Vec::with_capacity(PENDING_BYTES + (64 << 10)),
            file: ParquetFile::create(arrow, out, day)?,
            day,
        })
    }

    /// More NDJSON; a row may end in a later call.
    pub fn rows(&mut self, bytes: &[u8]) -> Result<(), ParquetError> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= PENDING_BYTES {
            self.decode_pending()?;
        }
        Ok(())
    }

    fn decode_pending(&mut self) -> Result<(), ParquetError> {
        let pending = std::mem::take(&mut self.pending);
        let mut bytes = &pending[..];
        while !bytes.is_empty() {
            let n = self.decoder.decode(bytes).map_err(|e| self.error(e))?;
            bytes = &bytes[n..];
            if !bytes.is_empty() {
                // The decoder holds a whole batch.
                self.flush()?;
            }
        }
        self.pending = pending;
        self.pending.clear();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ParquetError> {
        if let Some(batch) = self.decoder.flush().map_err(|e| self.error(e))? {
            let columns = batch
                .columns()
                .iter()
                .zip(self.arrow.fields())
                .map(|(c, f)| from_base64(c, f.data_type()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.error(e))?;
            let batch = arrow_array::RecordBatch::try_new(self.arrow.clone(), columns)
                .map_err(|e| self.error(e))?;
            self.file.write(&batch)?;
        }
        Ok(())
    }

    /// Ends the file; returns its rows.
    pub fn finish(mut self) -> Result<u64, ParquetError> {
        self.decode_pending()?;
        self.flush()?;
        self.file.finish()
    }

    fn error(&self, e: impl std::fmt::Display) -> ParquetError {
        ParquetError::Convert {
            day: self.day,
            message: e.to_string(),
        }
    }
}

/// The Parquet object `rel` of `store`, opened for reading: only its
/// footer is fetched so far.
async fn open(
    store: &super::lake::Store,
    rel: &str,
) -> Result<
    parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder<
        parquet::arrow::async_reader::ParquetObjectReader,
    >,
    ParquetError,
> {
    let reader = parquet::arrow::async_reader::ParquetObjectReader::new(
        store.object_store(),
        store.path(rel),
    );
    parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| read_error(store, rel, &e))
}

fn read_error(store: &super::lake::Store, rel: &str, e: &dyn std::fmt::Display) -> ParquetError {
    ParquetError::Read {
        file: store.display(rel),
        message: e.to_string(),
    }
}

/// The rows of the Parquet object `rel` in `store`, from its footer: only
/// the footer is fetched (a day's file may be tens of megabytes).
pub async fn row_count(store: &super::lake::Store, rel: &str) -> Result<u64, ParquetError> {
    let builder = open(store, rel).await?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as u64)
}

/// The Arrow schema of the local Parquet file `path`, from its footer.
pub fn local_schema(path: &Path) -> Result<arrow_schema::SchemaRef, ParquetError> {
    let err = |message: String| ParquetError::Read {
        file: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| err(e.to_string()))?;
    Ok(builder.schema().clone())
}

/// The Arrow schema of the Parquet object `rel` in `store`, from its
/// footer alone: what `etl validate --connect` compares with the lock.
pub async fn file_schema(
    store: &super::lake::Store,
    rel: &str,
) -> Result<arrow_schema::SchemaRef, ParquetError> {
    Ok(open(store, rel).await?.schema().clone())
}

/// Up to `limit` rows of the Parquet object `rel` in `store`, in the
/// file's order, in the row format of [`crate::table`] (a NULL column left
/// out); and the file's columns. Only the footer and the row groups needed
/// are fetched, by range requests.
pub async fn read_rows(
    store: &super::lake::Store,
    rel: &str,
    limit: usize,
) -> Result<(Vec<String>, Vec<JsonRow>), ParquetError> {
    use futures::TryStreamExt;
    let err = |e: &dyn std::fmt::Display| read_error(store, rel, e);
    let builder = open(store, rel).await?;
    let columns = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut batches = builder
        .with_limit(limit)
        .with_batch_size(limit.clamp(1, BATCH_ROWS))
        .build()
        .map_err(|e| err(&e))?;
    let mut rows = Vec::new();
    while let Some(batch) = batches.try_next().await.map_err(|e| err(&e))? {
        rows.extend(json_rows(&batch).map_err(|e| err(&e))?);
        if rows.len() >= limit {
            break;
        }
    }
    rows.truncate(limit);
    Ok((columns, rows))
}

/// The values of column `column` of the Parquet object `rel` that are in
/// `wanted`, compared as text (a string column as it is, an integer
/// column in decimal, a binary one in base64). Only that column is read,
/// batch by batch; a file without it, or with it of another type, matches
/// nothing.
pub async fn matching_values(
    store: &super::lake::Store,
    rel: &str,
    column: &str,
    wanted: &std::collections::BTreeSet<String>,
) -> Result<Vec<String>, ParquetError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::Array;
    use futures::TryStreamExt;
    use parquet::arrow::ProjectionMask;
    let err = |e: &dyn std::fmt::Display| read_error(store, rel, e);
    let builder = open(store, rel).await?;
    let Some(index) = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [column])
    else {
        return Ok(Vec::new());
    };
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [index]);
    let mut batches = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| err(&e))?;
    let mut out = Vec::new();
    while let Some(batch) = batches.try_next().await.map_err(|e| err(&e))? {
        let array = batch.column(0);
        for i in 0..array.len() {
            if array.is_null(i) {
                continue;
            }
            let text = match array.data_type() {
                DataType::Utf8 => array.as_string::<i32>().value(i).to_owned(),
                DataType::LargeUtf8 => array.as_string::<i64>().value(i).to_owned(),
                DataType::Int64 => array.as_primitive::<Int64Type>().value(i).to_string(),
                DataType::Binary => base64_text(array.as_binary::<i32>().value(i)),
                _ => return Ok(out),
            };
            if wanted.contains(&text) {
                out.push(text);
            }
        }
    }
    Ok(out)
}

/// The rows of a record batch, each value in its column type's row form.
fn json_rows(batch: &arrow_array::RecordBatch) -> Result<Vec<JsonRow>, String> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|i| {
            let mut row = JsonRow::new();
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let v = json_value(column.as_ref(), i)?;
                if !v.is_null() {
                    row.insert(field.name().clone(), v);
                }
            }
            Ok(row)
        })
        .collect()
}

/// Value `i` of `array`, the inverse of what [`Encoder`] decodes from rows.
fn json_value(array: &dyn arrow_array::Array, i: usize) -> Result<serde_json::Value, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{
        Date32Type, Decimal128Type, Decimal256Type, DecimalType, Float64Type, Int64Type,
        TimestampMicrosecondType,
    };
    use serde_json::Value;
    if array.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => {
            serde_json::Number::from_f64(array.as_primitive::<Float64Type>().value(i))
                .map_or(Value::Null, Value::Number)
        }
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_owned()),
        DataType::Binary => Value::String(base64_text(array.as_binary::<i32>().value(i))),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(i);
            let day = chrono::NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_CE_DAYS)
                .ok_or_else(|| format!("day {days} is out of range"))?;
            Value::String(day.to_string())
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let mut out = Vec::new();
            crate::flatten::write_timestamp_micros(
                array.as_primitive::<TimestampMicrosecondType>().value(i),
                &mut out,
            );
            Value::String(String::from_utf8(out).expect("a timestamp is ASCII"))
        }
        DataType::Decimal128(p, s) => Value::String(trim_decimal(Decimal128Type::format_decimal(
            array.as_primitive::<Decimal128Type>().value(i),
            *p,
            *s,
        ))),
        DataType::Decimal256(p, s) => Value::String(trim_decimal(Decimal256Type::format_decimal(
            array.as_primitive::<Decimal256Type>().value(i),
            *p,
            *s,
        ))),
        DataType::Struct(fields) => {
            let record = array.as_struct();
            let mut out = JsonRow::new();
            for (field, column) in fields.iter().zip(record.columns()) {
                let v = json_value(column.as_ref(), i)?;
                if !v.is_null() {
                    out.insert(field.name().clone(), v);
                }
            }
            Value::Object(out)
        }
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(i);
            Value::Array(
                (0..items.len())
                    .map(|j| json_value(items.as_ref(), j))
                    .collect::<Result<_, _>>()?,
            )
        }
        other => return Err(format!("no row form for Arrow type {other}")),
    })
}

/// BYTES in their row form: standard base64.
fn base64_text(bytes: &[u8]) -> String {
    let mut text = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    crate::extjson::write_base64(bytes, &mut text);
    String::from_utf8(text).expect("base64 is ASCII")
}

/// Days from 0001-01-01 to 1970-01-01, as chrono counts them.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

/// `1.250000000` as `1.25`, `2.000000000` as `2`: a decimal as BigQuery
/// shows it, whatever scale the file keeps.
fn trim_decimal(s: String) -> String {
    match s.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                int.to_owned()
            } else {
                format!("{int}.{frac}")
            }
        }
        None => s,
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

    /// Rows of every type, RECORDs and REPEATED columns among them, come
    /// back from a file as they went in: what `etl preview` shows is what
    /// was loaded. Reading stops at the limit, across row groups.
    #[tokio::test]
    async fn rows_read_back_are_the_rows_written() {
        let mut schema = schema();
        schema.columns.push(Column::new("blob", ColumnType::Bytes));
        schema
            .columns
            .push(Column::new("big", ColumnType::Bignumeric));
        let mut item = Column::new("items", ColumnType::Record).repeated(true);
        item.fields = vec![
            Column::new("sku", ColumnType::String),
            Column::new("qty", ColumnType::Int64),
        ];
        schema.columns.push(item);
        let rows = [
            r#"{"_ds":"2020-06-01","id":1,"name":"a","ts":"2020-06-01T12:00:00.123456Z","price":"1.25","score":0.5,"ok":true,"tags":["x","y"],"blob":"YWI=","big":"-12345678901234567890.5","items":[{"sku":"s1","qty":2},{"sku":"s2"}]}"#,
            r#"{"_ds":"2020-06-01","id":2,"tags":[],"items":[]}"#,
        ];
        let mut ndjson: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
        for i in 3..(BATCH_ROWS as i64 + 10) {
            ndjson.push(format!(
                r#"{{"_ds":"2020-06-01","id":{i},"tags":[],"items":[]}}"#
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let (rows_file, file) = (dir.path().join("rows.ndjson"), dir.path().join("a.parquet"));
        std::fs::write(&rows_file, ndjson.join("\n") + "\n").unwrap();
        let day = "2020-06-01".parse().unwrap();
        write_local(&rows_file, &schema, &file, day).unwrap();
        let store = super::super::lake::Store::from_parts(
            Arc::new(object_store::memory::InMemory::new()),
            object_store::path::Path::from("w"),
            "memory://w".into(),
        );
        store
            .upload(&file, "t/dt=2020-06-01/part-00000.parquet")
            .await
            .unwrap();

        let (columns, back) = read_rows(&store, "t/dt=2020-06-01/part-00000.parquet", 2)
            .await
            .unwrap();
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(columns, names);
        let want: Vec<JsonRow> = rows
            .iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect();
        assert_eq!(back, want);

        let (_, many) = read_rows(&store, "t/dt=2020-06-01/part-00000.parquet", BATCH_ROWS + 3)
            .await
            .unwrap();
        assert_eq!(many.len(), BATCH_ROWS + 3, "past the first row group");
        assert_eq!(many[BATCH_ROWS + 2]["id"], BATCH_ROWS as i64 + 3);

        let e = read_rows(&store, "t/none.parquet", 1).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("reading Parquet file `memory://w/t/none.parquet`"),
            "{e}"
        );
    }
}
