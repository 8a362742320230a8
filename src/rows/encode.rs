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

/// Batches waiting for the encoder thread: with the one it encodes and
/// the one being built, three batches of a table at most.
const BATCHES_IN_FLIGHT: usize = 1;

/// The Parquet files of a day's tables, encoded on a thread of their own:
/// the thread that flattens hands each full batch over and goes on, so
/// flattening and Parquet's encoding and compression use two cores.
/// Each file gets its batches in the order they were sent, so the bytes
/// are the ones one thread would write.
pub struct Encoder {
    batches: Option<std::sync::mpsc::SyncSender<(usize, RecordBatch)>>,
    thread: Option<std::thread::JoinHandle<Result<Vec<u64>, ParquetError>>>,
    day: chrono::NaiveDate,
}

impl Encoder {
    /// Starts `files`' thread.
    pub fn start(mut files: Vec<ParquetFile>, day: chrono::NaiveDate) -> Self {
        let (batches, received) =
            std::sync::mpsc::sync_channel::<(usize, RecordBatch)>(BATCHES_IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("etl-parquet".to_owned())
            .spawn(move || {
                for (table, batch) in received {
                    files[table].write(&batch)?;
                }
                files.into_iter().map(ParquetFile::finish).collect()
            })
            .expect("the OS starts a thread");
        Self {
            batches: Some(batches),
            thread: Some(thread),
            day,
        }
    }

    /// Hands table `table`'s `batch` over; waits while the thread is
    /// [`BATCHES_IN_FLIGHT`] behind.
    pub fn write(&mut self, table: usize, batch: RecordBatch) -> Result<(), ParquetError> {
        let sent = match &self.batches {
            Some(batches) => batches.send((table, batch)).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.join().map(|_| ())
    }

    /// Ends every file; returns each one's rows.
    pub fn finish(mut self) -> Result<Vec<u64>, ParquetError> {
        self.join()
    }

    fn join(&mut self) -> Result<Vec<u64>, ParquetError> {
        self.batches = None;
        let day = self.day;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(rows)) => rows,
            Some(Err(_)) => Err(ParquetError::Convert {
                day,
                message: "the thread encoding Parquet panicked".to_owned(),
            }),
            None => Err(ParquetError::Convert {
                day,
                message: "the thread encoding Parquet has already stopped".to_owned(),
            }),
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // A day given up: the thread ends with the channel, after the
        // batch in hand and the footers of files nobody reads (the day's
        // staging folder is cleared).
        self.batches = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
