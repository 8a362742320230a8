//! The Parquet warehouse: a Hive-style dataset in an object store,
//! `<path>/dt=2020-06-01/part-00000.parquet`, one folder per day.
//!
//! The rows file (see [`crate::table`]) streams through arrow-json into
//! record batches of bounded size, so memory does not grow with the
//! partition. A day is replaced by writing its file and then deleting any
//! other object in its folder.

use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::lake::{LakeError, Store};
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
    let err = |m: String| ParquetError::Convert { day, message: m };
    let arrow = Arc::new(arrow_schema(schema));
    let input =
        std::io::BufReader::new(std::fs::File::open(rows_file).map_err(|e| err(e.to_string()))?);
    let reader = arrow_json::ReaderBuilder::new(arrow.clone())
        .with_batch_size(BATCH_ROWS)
        .build(input)
        .map_err(|e| err(e.to_string()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_size(BATCH_ROWS)
        .set_created_by(format!("etl {}", env!("CARGO_PKG_VERSION")))
        .build();
    let file = std::fs::File::create(out).map_err(|e| err(e.to_string()))?;
    let mut writer =
        ArrowWriter::try_new(file, arrow, Some(props)).map_err(|e| err(e.to_string()))?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| err(e.to_string()))?;
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(|e| err(e.to_string()))?;
    }
    writer.close().map_err(|e| err(e.to_string()))?;
    Ok(rows)
}

/// Replaces day `day` of the dataset at `dataset` (relative to `store`)
/// with the rows file. Returns the rows written.
pub async fn replace_partition(
    store: &Store,
    dataset: &str,
    day: chrono::NaiveDate,
    rows_file: &Path,
    schema: &TableSchema,
    scratch: &Path,
) -> Result<u64, ParquetError> {
    let local = scratch.join("part-00000.parquet");
    let (rows_file_owned, schema_owned, local_owned) =
        (rows_file.to_owned(), schema.clone(), local.clone());
    let rows = tokio::task::spawn_blocking(move || {
        write_local(&rows_file_owned, &schema_owned, &local_owned, day)
    })
    .await
    .map_err(|e| ParquetError::Convert {
        day,
        message: e.to_string(),
    })??;
    let folder = format!("{}/dt={day}", dataset.trim_matches('/'));
    let target = format!("{folder}/part-00000.parquet");
    store.upload(&local, &target).await?;
    for stale in store.list(&folder).await? {
        if stale != target {
            store.delete(&stale).await?;
        }
    }
    Ok(rows)
}

/// Rows in a day's Parquet files, read from their footers.
pub async fn count_partition(
    store: &Store,
    dataset: &str,
    day: chrono::NaiveDate,
) -> Result<u64, ParquetError> {
    let folder = format!("{}/dt={day}", dataset.trim_matches('/'));
    let mut total = 0;
    for rel in store.list(&folder).await? {
        let Some(bytes) = store.get(&rel).await? else {
            continue;
        };
        let reader =
            parquet::file::serialized_reader::SerializedFileReader::new(bytes).map_err(|e| {
                ParquetError::Convert {
                    day,
                    message: e.to_string(),
                }
            })?;
        use parquet::file::reader::FileReader;
        total += reader.metadata().file_metadata().num_rows() as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;
    use object_store::memory::InMemory;

    fn schema() -> TableSchema {
        let col = |n: &str, k| Column {
            name: n.into(),
            kind: k,
            repeated: false,
            fields: Vec::new(),
        };
        TableSchema {
            columns: vec![
                col("_ds", ColumnType::Date),
                col("id", ColumnType::Int64),
                col("name", ColumnType::String),
                col("ts", ColumnType::Timestamp),
                col("price", ColumnType::Numeric),
                col("score", ColumnType::Float64),
                col("ok", ColumnType::Bool),
                Column {
                    name: "tags".into(),
                    kind: ColumnType::String,
                    repeated: true,
                    fields: Vec::new(),
                },
            ],
        }
    }

    #[tokio::test]
    async fn replaces_a_day_and_counts_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let rows = dir.path().join("rows.ndjson");
        std::fs::write(
            &rows,
            concat!(
                r#"{"_ds":"2020-06-01","id":9007199254740993,"name":"Zoë","ts":"2020-06-01T12:00:00.123000Z","price":"19.99","score":1.5,"ok":true,"tags":["a","b"]}"#, "\n",
                r#"{"_ds":"2020-06-01","id":2}"#, "\n",
            ),
        )
        .unwrap();
        let store = Store::from_parts(
            Arc::new(InMemory::new()),
            object_store::path::Path::from(""),
            "memory://".into(),
        );
        store
            .put("users/dt=2020-06-01/part-00001.parquet", b"stale".to_vec())
            .await
            .unwrap();
        let day = "2020-06-01".parse().unwrap();
        let n = replace_partition(&store, "users", day, &rows, &schema(), dir.path())
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            store.list("users").await.unwrap(),
            vec!["users/dt=2020-06-01/part-00000.parquet"]
        );
        assert_eq!(count_partition(&store, "users", day).await.unwrap(), 2);

        // The values arrive with their types.
        let bytes = store
            .get("users/dt=2020-06-01/part-00000.parquet")
            .await
            .unwrap()
            .unwrap();
        let batch = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let ids = batch
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        assert_eq!(ids.value(0), 9_007_199_254_740_993);
        let price = batch
            .column(4)
            .as_any()
            .downcast_ref::<arrow_array::Decimal128Array>()
            .unwrap();
        assert_eq!(price.value_as_string(0), "19.990000000");
        assert!(batch.column(2).is_null(1));
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
}
