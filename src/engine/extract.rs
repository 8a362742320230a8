//! Stage 1, extract: a day's documents off the source, written in one pass
//! to the raw archive (and, when pass 2 could not start beside the
//! extract, to a local BSON spool), their schema inferred on the way.
//! [`DayReader`] is the read both `etl run` and the commands that
//! only scan a day (`etl schema lock`, `etl infer`) share.
//!
//! The reading loop only copies each document's bytes into chunks (and,
//! without a speculation, infers the schema: beside one, pass 1 rides
//! along pass 2's walk on the speculation's thread); a writer thread spools
//! them, writes the canonical Extended JSON line, and compresses and hashes
//! it, so the work spreads over the cores.
//!
//! Without a spool, a pass 2 that must run again after the extract reads
//! the documents back from the local raw archive, whose lines read back to
//! the source's bytes ([`crate::extjson::read_archive_line`]). That is
//! slower than reading the spool, but it is needed only on a day whose
//! columns were not the ones expected, and it spares every other day a
//! second copy of its documents on disk (481 MB of writes per million
//! orders).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::day::{io, PartitionError};
use super::progress::Bar;
use super::rows::Speculation;
use crate::flatten::{FlattenError, SchemaBuilder, Tables};
use crate::plan::PartitionTarget;
use crate::sink::lake::archive::Archived;
use crate::sink::lake::RawArchive;
use crate::source::{Documents, Source, SourceError};
use crate::spec::Compression;

/// Bytes of BSON handed to the writer thread at a time: large enough that
/// the hand-over costs nothing, small enough that memory stays bounded
/// (at most [`KEPT_CHUNKS`] + 1 chunks whatever the partition size).
pub(super) const CHUNK_BYTES: usize = 1 << 20;
pub(super) const CHUNKS_IN_FLIGHT: usize = 4;

/// Chunks handed over that the reading loop keeps, to fill their buffers
/// again: as many as two readers (the writer thread and pass 2) can hold,
/// each with its channel full and one chunk in hand, and one more.
const KEPT_CHUNKS: usize = 2 * (CHUNKS_IN_FLIGHT + 1) + 1;

/// The buffers of the chunks handed over, filled again once every reader is
/// done with them. A fresh megabyte per chunk cost a page fault (the kernel
/// zeroing a page) every 4 KiB of documents.
#[derive(Default)]
struct ChunkBuffers {
    /// The chunks handed over, oldest first: the readers take them in order.
    sent: std::collections::VecDeque<Arc<Vec<u8>>>,
}

impl ChunkBuffers {
    /// An empty buffer for the next chunk: the oldest one handed over if
    /// every reader is done with it, else a new one.
    fn empty(&mut self) -> Vec<u8> {
        if let Some(oldest) = self.sent.front_mut() {
            if let Some(buffer) = Arc::get_mut(oldest) {
                let mut buffer = std::mem::take(buffer);
                self.sent.pop_front();
                buffer.clear();
                return buffer;
            }
        }
        Vec::with_capacity(CHUNK_BYTES + (16 << 10))
    }

    /// Keeps `chunk`, just handed over, to fill again.
    fn handed_over(&mut self, chunk: &Arc<Vec<u8>>) {
        if self.sent.len() == KEPT_CHUNKS {
            // Still in use: its last reader frees it.
            self.sent.pop_front();
        }
        self.sent.push_back(chunk.clone());
    }
}

/// A day's documents, with the source's count running beside them when
/// the spec asks for one (`source.count`).
pub(super) struct DayReader<'a> {
    documents: Box<dyn Documents + 'a>,
    counting: Option<tokio::task::JoinHandle<Result<u64, SourceError>>>,
    count: Option<u64>,
    read: u64,
}

impl<'a> DayReader<'a> {
    pub(super) async fn open(
        source: &'a dyn Source,
        target: &PartitionTarget,
        count: bool,
    ) -> Result<Self, PartitionError> {
        let counting = count.then(|| tokio::spawn(source.count(target)));
        Ok(Self {
            documents: source.documents(target).await?,
            counting,
            count: None,
            read: 0,
        })
    }

    /// The next document, or None at the end.
    pub(super) async fn next(&mut self) -> Result<Option<&bson::RawDocument>, PartitionError> {
        if !self.documents.advance().await? {
            return Ok(None);
        }
        self.read += 1;
        super::crash::point("extract");
        super::crash::hold("extract").await;
        if self.read % 1000 == 0 {
            if let Some(c) = self.counting.as_mut().filter(|c| c.is_finished()) {
                self.count = Some(join_count(c).await?);
                self.counting = None;
            }
        }
        Ok(Some(self.documents.current()))
    }

    /// Documents read so far, and the count when it is known.
    pub(super) fn progress(&self) -> (u64, Option<u64>) {
        (self.read, self.count)
    }

    /// The source's count: the one that ran beside the read, or without
    /// one, the documents read.
    pub(super) async fn finish(mut self) -> Result<(u64, u64), PartitionError> {
        let count = match (self.count, self.counting.as_mut()) {
            (Some(n), _) => n,
            (None, Some(c)) => join_count(c).await?,
            (None, None) => self.read,
        };
        Ok((self.read, count))
    }
}

async fn join_count(
    counting: &mut tokio::task::JoinHandle<Result<u64, SourceError>>,
) -> Result<u64, PartitionError> {
    match counting.await {
        Ok(n) => Ok(n?),
        Err(e) => Err(PartitionError::fatal(format!("the count: {e}"))),
    }
}

/// What the extract left in the day's staging folder.
pub(super) struct Extracted {
    /// The source's count.
    pub count: u64,
    /// Documents read, each one line of the raw archive.
    pub lines: u64,
    /// The raw archive's lines, as its writer counted them.
    pub archived_lines: u64,
    /// The raw archive, closed.
    pub archived: Archived,
    pub raw_path: PathBuf,
    /// Every document, as concatenated BSON, for pass 2; None when the
    /// extract wrote no spool (pass 2 then reads the raw archive).
    pub spool_path: Option<PathBuf>,
    /// Each table's schema as the day's data has it; None beside a
    /// speculation, whose walk infers it ([`Speculation::finish`]).
    pub inferred: Option<Vec<SchemaBuilder>>,
}

/// Reads day `target` into the staging folder `dir`, handing each chunk
/// to `speculation` too when there is one; the spool is written only
/// without one.
#[allow(clippy::too_many_arguments)]
pub(super) async fn extract(
    source: &dyn Source,
    count: bool,
    target: &PartitionTarget,
    tables: &Tables,
    dir: &Path,
    compression: Compression,
    mut speculation: Option<&mut Speculation>,
    bar: &dyn Bar,
) -> Result<Extracted, PartitionError> {
    let raw_name = target.lake_path.rsplit('/').next().unwrap_or("raw.jsonl");
    let raw_path = dir.join(raw_name);
    let spool_path = speculation.is_none().then(|| dir.join("spool.bson"));
    let mut writer = ExtractWriter::start(spool_path.as_deref(), &raw_path, compression)?;
    // The builders already hold the explicit columns, so an empty day
    // still has them.
    let mut inferred = speculation.is_none().then(|| tables.schema_builders());
    let mut reader = DayReader::open(source, target, count).await?;
    let mut buffers = ChunkBuffers::default();
    let mut chunk = buffers.empty();
    while let Some(doc) = reader.next().await? {
        if let Some(builders) = inferred.as_mut() {
            after_pass_1(doc, tables.infer(doc, builders))?;
        }
        chunk.extend_from_slice(doc.as_bytes());
        if chunk.len() >= CHUNK_BYTES {
            let full = Arc::new(std::mem::replace(&mut chunk, buffers.empty()));
            buffers.handed_over(&full);
            if let Some(s) = speculation.as_deref_mut() {
                s.send(full.clone()).await?;
            }
            writer.send(full).await?;
        }
        let (read, count) = reader.progress();
        if read % 1000 == 0 {
            bar.documents(read, count);
        }
    }
    let (lines, count) = reader.finish().await?;
    bar.documents(lines, Some(count));
    if !chunk.is_empty() {
        let last = Arc::new(chunk);
        if let Some(s) = speculation {
            s.send(last.clone()).await?;
        }
        writer.send(last).await?;
    }
    let (archived_lines, archived) = writer.finish().await?;
    Ok(Extracted {
        count,
        lines,
        archived_lines,
        archived,
        raw_path,
        spool_path,
        inferred,
    })
}

/// Pass 1's result for `doc`: a document that is not valid inside goes on
/// (pass 2 rejects it, naming the path); any other error stops the day.
pub(super) fn after_pass_1(
    doc: &bson::RawDocument,
    result: Result<(), FlattenError>,
) -> Result<(), PartitionError> {
    match result {
        Ok(()) | Err(FlattenError::Bson { .. } | FlattenError::TooDeep { .. }) => Ok(()),
        Err(e) => Err(PartitionError::fatal(format!(
            "flattening document {}: {e}",
            doc_id(doc)
        ))),
    }
}

/// The `_id` of a document, for messages.
pub fn doc_id(doc: &bson::RawDocument) -> String {
    match doc.get("_id") {
        Ok(Some(v)) => bson::Bson::try_from(v)
            .map(|b| b.to_string())
            .unwrap_or_else(|_| "?".into()),
        _ => "without _id".into(),
    }
}

/// The extract's writer thread: appends chunks of concatenated BSON
/// documents to the spool if there is one, and each document's canonical
/// Extended JSON line to the compressed, hashed raw archive.
struct ExtractWriter {
    chunks: Option<tokio::sync::mpsc::Sender<Arc<Vec<u8>>>>,
    thread: tokio::task::JoinHandle<Result<(u64, Archived), PartitionError>>,
}

impl ExtractWriter {
    fn start(
        spool_path: Option<&Path>,
        raw_path: &Path,
        compression: Compression,
    ) -> Result<Self, PartitionError> {
        let mut spool = match spool_path {
            Some(path) => Some((
                BufWriter::with_capacity(
                    1 << 20,
                    std::fs::File::create(path).map_err(|e| io("cannot create", path, e))?,
                ),
                path.to_owned(),
            )),
            None => None,
        };
        let mut raw = RawArchive::create(raw_path, compression)
            .map_err(|e| io("cannot create", raw_path, e))?;
        let (chunks, mut rx) = tokio::sync::mpsc::channel::<Arc<Vec<u8>>>(CHUNKS_IN_FLIGHT);
        let thread = tokio::task::spawn_blocking(move || {
            // A chunk's lines go to the compressor in one write: the
            // compressed bytes do not depend on how the lines are split
            // (see the archive's tests), and a write per line cost a
            // call into zstd each.
            let mut text = Vec::with_capacity(2 * CHUNK_BYTES);
            let mut lines = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                if let Some((spool, path)) = &mut spool {
                    spool
                        .write_all(&chunk)
                        .map_err(|e| io("cannot write", path, e))?;
                }
                text.clear();
                for doc in crate::extjson::concatenated(&chunk) {
                    let doc =
                        doc.map_err(|e| PartitionError::fatal(format!("document #{lines}: {e}")))?;
                    if let crate::extjson::ArchiveLine::Bytes(why) =
                        crate::extjson::write_archive_line(doc, &mut text)
                    {
                        tracing::warn!(
                            document = lines + 1,
                            %why,
                            "kept in the raw archive as BSON bytes (`$bson`): canonical Extended JSON cannot hold it"
                        );
                    }
                    text.push(b'\n');
                    lines += 1;
                }
                raw.write(&text)
                    .map_err(|e| io("cannot write", raw.path(), e))?;
            }
            if let Some((mut spool, path)) = spool {
                spool.flush().map_err(|e| io("cannot write", &path, e))?;
            }
            let path = raw.path().to_owned();
            let archived = raw.finish().map_err(|e| io("cannot write", &path, e))?;
            Ok((lines, archived))
        });
        Ok(Self {
            chunks: Some(chunks),
            thread,
        })
    }

    /// Hands a chunk over; waits while the thread is [`CHUNKS_IN_FLIGHT`]
    /// chunks behind. A thread that failed reports its error here.
    async fn send(&mut self, chunk: Arc<Vec<u8>>) -> Result<(), PartitionError> {
        let sent = match &self.chunks {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped early, which only an error does: report it.
        self.chunks = None;
        match (&mut self.thread).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(_)) => Err(PartitionError::fatal(
                "the extract's writer thread stopped early",
            )),
            Err(e) => Err(PartitionError::fatal(format!(
                "the extract's writer thread: {e}"
            ))),
        }
    }

    /// Waits for the thread: the lines written and the closed archive.
    async fn finish(mut self) -> Result<(u64, Archived), PartitionError> {
        self.chunks = None;
        self.thread
            .await
            .map_err(|e| PartitionError::fatal(format!("the extract's writer thread: {e}")))?
    }
}
