//! The MongoDB reader.
//!
//! Documents stream as `RawDocumentBuf` through `cursor.advance()` and
//! `cursor.current()`: the engine sees each document as borrowed bytes and
//! never materialises a `bson::Document`, which is several times slower.
//! Every message that can carry the connection string goes through
//! [`crate::redact`].

use std::time::Duration;

use bson::{doc, Document, RawDocumentBuf};
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Cursor};

use crate::redact::redact_uri;

/// Why reading failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The connection string does not parse.
    #[error("invalid MongoDB connection string `{uri}`: {message}")]
    BadUri {
        /// The URI, redacted.
        uri: String,
        /// The driver's words, redacted.
        message: String,
    },
    /// A server operation failed.
    #[error("{operation} on `{namespace}` at `{uri}` failed: {message}")]
    Server {
        /// `count`, `find` or `getMore`.
        operation: &'static str,
        /// `db.collection`.
        namespace: String,
        /// The URI, redacted.
        uri: String,
        /// The driver's words, redacted.
        message: String,
        /// Whether retrying may help: network faults, a lost cursor.
        transient: bool,
    },
}

impl SourceError {
    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::Server {
                transient: true,
                ..
            }
        )
    }
}

/// Server error codes worth a retry: cursor not found, and the network and
/// shutdown codes of the MongoDB retryable-reads specification.
const TRANSIENT_CODES: [i32; 12] = [43, 6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435];

fn is_transient(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. } => true,
        ErrorKind::Command(c) => TRANSIENT_CODES.contains(&c.code),
        _ => e.contains_label("RetryableReadError") || e.contains_label("NetworkError"),
    }
}

/// One collection of one server.
pub struct MongoSource {
    collection: Collection<RawDocumentBuf>,
    uri_display: String,
    namespace: String,
}

/// How to read a partition.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Documents per batch.
    pub batch_size: u32,
    /// Server-side limit per batch.
    pub max_time: Option<Duration>,
    /// Projection.
    pub projection: Option<Document>,
}

impl MongoSource {
    /// Connects lazily: the first operation reaches the server. `uri` is the
    /// rendered connection string, secrets included; it is never printed.
    pub async fn connect(
        uri: &str,
        app_name: &str,
        database: &str,
        collection: &str,
    ) -> Result<Self, SourceError> {
        let uri_display = redact_uri(uri);
        let mut opts = ClientOptions::parse(uri)
            .await
            .map_err(|e| SourceError::BadUri {
                uri: uri_display.clone(),
                message: redact_in(&e.to_string(), uri),
            })?;
        opts.app_name = Some(app_name.to_owned());
        opts.server_selection_timeout = opts
            .server_selection_timeout
            .or(Some(Duration::from_secs(10)));
        opts.connect_timeout = opts.connect_timeout.or(Some(Duration::from_secs(10)));
        let client = Client::with_options(opts).map_err(|e| SourceError::BadUri {
            uri: uri_display.clone(),
            message: redact_in(&e.to_string(), uri),
        })?;
        Ok(Self {
            collection: client.database(database).collection(collection),
            namespace: format!("{database}.{collection}"),
            uri_display,
        })
    }

    fn error(&self, operation: &'static str, e: mongodb::error::Error) -> SourceError {
        SourceError::Server {
            operation,
            namespace: self.namespace.clone(),
            uri: self.uri_display.clone(),
            transient: is_transient(&e),
            message: crate::redact::redact_text(&e.to_string()),
        }
    }

    /// Counts the documents matching `filter` (`countDocuments`).
    pub async fn count(&self, filter: Document) -> Result<u64, SourceError> {
        self.collection
            .count_documents(filter)
            .await
            .map_err(|e| self.error("count", e))
    }

    /// Opens a cursor over `filter`, sorted by `_id` so that the same data
    /// always gives the same bytes.
    pub async fn find(
        &self,
        filter: Document,
        opts: &ReadOptions,
    ) -> Result<PartitionCursor<'_>, SourceError> {
        let mut find = self
            .collection
            .find(filter)
            .sort(doc! { "_id": 1 })
            .batch_size(opts.batch_size);
        if let Some(t) = opts.max_time {
            find = find.max_time(t);
        }
        if let Some(p) = &opts.projection {
            find = find.projection(p.clone());
        }
        let cursor = find.await.map_err(|e| self.error("find", e))?;
        Ok(PartitionCursor {
            cursor,
            source: self,
        })
    }
}

/// A cursor over one partition.
pub struct PartitionCursor<'a> {
    cursor: Cursor<RawDocumentBuf>,
    source: &'a MongoSource,
}

impl PartitionCursor<'_> {
    /// Moves to the next document; false at the end.
    pub async fn advance(&mut self) -> Result<bool, SourceError> {
        self.cursor
            .advance()
            .await
            .map_err(|e| self.source.error("getMore", e))
    }

    /// The current document, borrowed from the cursor's batch.
    pub fn current(&self) -> &bson::RawDocument {
        self.cursor.current()
    }
}

/// The driver sometimes quotes the connection string; hide its password.
fn redact_in(message: &str, uri: &str) -> String {
    message.replace(uri, &redact_uri(uri))
}
