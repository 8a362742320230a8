//! The lake as a source: a day's raw object read back, for `etl replay`.
//!
//! The day's manifest says what the raw object must be: its documents,
//! its compression and its sha256. The object is streamed (never held
//! whole), hashed as it arrives, decompressed, and each canonical Extended
//! JSON line parsed back into the BSON document it was written from. A
//! missing manifest, or an object whose bytes do not hash to the
//! manifest's sha256, is an error before the day's last document: the
//! engine loads nothing until the whole extract has ended, so a tampered
//! or truncated object never reaches the warehouse. [`Source::count`] is
//! the manifest's `documents`, which reconciliation compares with the
//! lines read.

use std::io::{BufRead, Read};

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::{Documents, Source, SourceError};
use crate::plan::PartitionTarget;
use crate::sink::lake::Store;
use crate::spec::Compression;

/// Documents in flight between the reading thread and the engine.
const CHANNEL: usize = 256;

/// A day's raw object in the lake, as a source.
pub struct LakeSource {
    store: Store,
}

/// What a manifest says about its raw object.
#[derive(Debug, Clone, serde::Deserialize)]
struct Manifest {
    object: String,
    compression: Compression,
    documents: u64,
    sha256: String,
}

fn fatal(object: String, message: String) -> SourceError {
    SourceError::Lake {
        object,
        message,
        transient: false,
    }
}

/// A store operation that failed, as a source error.
fn store_error(shown: &str, e: crate::sink::lake::LakeError) -> SourceError {
    SourceError::Lake {
        object: shown.to_owned(),
        transient: e.is_transient(),
        message: e.to_string(),
    }
}

impl LakeSource {
    /// Reads from `store`, the pipeline's lake.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn manifest(store: &Store, target: &PartitionTarget) -> Result<Manifest, SourceError> {
        let shown = store.display(&target.manifest_path);
        let bytes = store
            .get(&target.manifest_path)
            .await
            .map_err(|e| store_error(&shown, e))?
            .ok_or_else(|| {
                fatal(
                    shown.clone(),
                    format!(
                        "no manifest at {shown}: the day was never archived there, so it cannot be replayed; hint: run it from MongoDB with `etl run --date {}`",
                        target.day
                    ),
                )
            })?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            fatal(
                shown.clone(),
                format!("the manifest {shown} is not one: {e}"),
            )
        })?;
        if manifest.object != target.lake_path {
            return Err(fatal(
                shown.clone(),
                format!(
                    "the manifest {shown} describes `{}`, not `{}`: the spec's lake path changed since the day was archived",
                    manifest.object, target.lake_path
                ),
            ));
        }
        Ok(manifest)
    }
}

/// Reads what it hashes.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// The reading thread: every line of the object as a document, then the
/// sha256 check. Stops when the receiver is gone.
fn read_object(
    stream: futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
    manifest: &Manifest,
    shown: &str,
    out: &tokio::sync::mpsc::Sender<Result<bson::RawDocumentBuf, SourceError>>,
) -> Result<(), SourceError> {
    let io =
        |what: &str, e: std::io::Error| fatal(shown.to_owned(), format!("{what} {shown}: {e}"));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let mut hashing = Hashing {
        inner: reader,
        hash: Sha256::new(),
    };
    {
        let mut lines = crate::sink::lake::archive::lines(&mut hashing, manifest.compression)
            .map_err(|e| io("cannot decompress", e))?;
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let n = lines
                .read_until(b'\n', &mut line)
                .map_err(|e| io("cannot read", e))?;
            if n == 0 {
                break;
            }
            number += 1;
            let doc = crate::extjson::read_archive_line(&line)
                .map_err(|e| fatal(shown.to_owned(), format!("{shown}, line {number}: {e}")))?;
            if out.blocking_send(Ok(doc)).is_err() {
                return Ok(());
            }
        }
    }
    // The rest of the object (a gzip trailer) counts towards its hash.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| io("cannot read", e))?;
    let sha256 = hex::encode(hashing.hash.finalize());
    if sha256 != manifest.sha256 {
        return Err(fatal(
            shown.to_owned(),
            format!(
                "{shown} does not match its manifest: its sha256 is {sha256}, the manifest says {}; refusing to replay a changed or damaged object",
                manifest.sha256
            ),
        ));
    }
    Ok(())
}

/// The documents the reading thread sends.
struct LakeDocuments {
    rx: tokio::sync::mpsc::Receiver<Result<bson::RawDocumentBuf, SourceError>>,
    current: Option<bson::RawDocumentBuf>,
}

#[async_trait::async_trait]
impl Documents for LakeDocuments {
    async fn advance(&mut self) -> Result<bool, SourceError> {
        match self.rx.recv().await {
            Some(Ok(doc)) => {
                self.current = Some(doc);
                Ok(true)
            }
            Some(Err(e)) => Err(e),
            None => Ok(false),
        }
    }

    fn current(&self) -> &bson::RawDocument {
        self.current.as_deref().expect("advanced")
    }
}

#[async_trait::async_trait]
impl Source for LakeSource {
    async fn documents<'a>(
        &'a self,
        target: &PartitionTarget,
    ) -> Result<Box<dyn Documents + 'a>, SourceError> {
        let manifest = Self::manifest(&self.store, target).await?;
        let shown = self.store.display(&target.lake_path);
        let stream = self
            .store
            .read_stream(&target.lake_path)
            .await
            .map_err(|e| store_error(&shown, e))?
            .ok_or_else(|| {
                fatal(
                    shown.clone(),
                    format!("{shown} is missing, though its manifest is there"),
                )
            })?;
        let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = read_object(stream, &manifest, &shown, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(Box::new(LakeDocuments { rx, current: None }))
    }

    fn count(&self, target: &PartitionTarget) -> BoxFuture<'static, Result<u64, SourceError>> {
        let (store, target) = (self.store.clone(), target.clone());
        Box::pin(async move { Ok(Self::manifest(&store, &target).await?.documents) })
    }
}
