//! The MongoDB source.
//!
//! A day's documents come through the driver's raw batch cursor: each
//! batch is the server's reply as it arrived, and the engine sees each
//! document as bytes borrowed from it. It never materialises a
//! `bson::Document`, which is several times slower, nor a copy of each
//! document (the driver's `Cursor` copies each one out of its batch).
//! The next batch is asked for while the engine reads the current one
//! ([`PartitionCursor`]), so the server and `etl` work at the same time.
//! Every message that can carry the connection string goes through
//! [`crate::redact`].

use std::future::IntoFuture;
use std::time::Duration;

use bson::{doc, Document, RawDocumentBuf};
use chrono::NaiveDate;
use futures::future::BoxFuture;
use mongodb::error::ErrorKind;
use mongodb::options::ClientOptions;
use mongodb::raw_batch_cursor::{RawBatch, RawBatchCursor};
use mongodb::{Client, Collection};

use super::{Documents, Source, SourceError};
use crate::plan::{PartitionPlan, PartitionTarget};
use crate::redact::redact_uri;

/// Server error codes worth a retry: cursor not found, and the network and
/// shutdown codes of the MongoDB retryable-reads specification.
const TRANSIENT_CODES: [i32; 12] = [43, 6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435];

const HINT_WIRE_VERSION: &str = "the server speaks an older protocol than the driver needs (wire version 9, MongoDB 4.4, or newer): upgrade it, or point the connection's `uri` in etl.yaml at another server";
const HINT_AUTH: &str =
    "check the user, the password, `authSource` and `authMechanism` of the connection's `uri` in etl.yaml";
const HINT_UNSUPPORTED: &str =
    "the server does not implement a command `etl` needs (`find`, `count`, `aggregate`); use a MongoDB-compatible server that does";
const HINT_QUERY: &str = "the server refused the query: check `source.filter` and `source.projection` in the spec, and the partition field's `kind`";
const HINT_MAX_TIME: &str = "the server gave up after `source.max_time_ms`: raise it, or add an index on the partition field";
const HINT_STALLED: &str = "the server or the network stopped answering: check the server; if its batches are slow by design, raise `source.max_time_ms`";

/// How long `etl` waits for a batch when the spec sets no
/// `source.max_time_ms`: long enough for a first batch that scans a large
/// collection, short enough that a stalled connection ends.
const DEFAULT_STALL: Duration = Duration::from_secs(600);

/// How long `etl` waits for one answer (a cursor's first batch, a
/// `getMore`, a count) before it calls the source stalled: twice the
/// server's own limit plus 5 s for the network, since a server may ignore
/// `maxTimeMS` and a half-open connection never answers at all.
pub fn stall_limit(max_time: Option<Duration>) -> Duration {
    max_time.map_or(DEFAULT_STALL, |t| t * 2 + Duration::from_secs(5))
}

/// What went wrong, as far as retrying goes.
#[derive(Debug)]
enum Fault<'a> {
    /// The network, or a connection pool a fault cleared.
    Network,
    /// No server could be selected; the driver's words.
    Selection(&'a str),
    /// A server the driver does not speak to.
    Incompatible,
    /// A refused login.
    Authentication,
    /// The server answered with this error code.
    Command(i32),
    /// Anything else, and whether the driver labels it retryable.
    Other { retryable: bool },
}

impl<'a> Fault<'a> {
    fn of(e: &'a mongodb::error::Error) -> Self {
        match e.kind.as_ref() {
            ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => Fault::Network,
            ErrorKind::ServerSelection { message, .. } => Fault::Selection(message),
            ErrorKind::IncompatibleServer { .. } => Fault::Incompatible,
            ErrorKind::Authentication { .. } => Fault::Authentication,
            ErrorKind::Command(c) => Fault::Command(c.code),
            _ => Fault::Other {
                retryable: e.contains_label("RetryableReadError")
                    || e.contains_label("NetworkError"),
            },
        }
    }
}

/// Whether a retry may help, and if not, what would.
///
/// Transient: the network, a pool cleared by a fault, a server that cannot
/// be selected yet, and the retryable codes. Everything else fails the
/// partition at once: a retry of a refused query or a refused login only
/// repeats it.
fn classify(e: &mongodb::error::Error) -> (bool, Option<&'static str>) {
    decide(Fault::of(e))
}

fn decide(fault: Fault<'_>) -> (bool, Option<&'static str>) {
    match fault {
        // The driver reports an incompatible server as a selection failure.
        Fault::Selection(m) if m.contains("wire version") => (false, Some(HINT_WIRE_VERSION)),
        Fault::Incompatible => (false, Some(HINT_WIRE_VERSION)),
        Fault::Network | Fault::Selection(_) => (true, None),
        Fault::Authentication => (false, Some(HINT_AUTH)),
        Fault::Command(code) => match code {
            c if TRANSIENT_CODES.contains(&c) => (true, None),
            // Unauthorized, AuthenticationFailed.
            13 | 18 => (false, Some(HINT_AUTH)),
            // CommandNotFound, CommandNotSupported, NotImplemented.
            59 | 115 | 238 => (false, Some(HINT_UNSUPPORTED)),
            // BadValue, FailedToParse, TypeMismatch, InvalidOptions.
            2 | 9 | 14 | 72 => (false, Some(HINT_QUERY)),
            // MaxTimeMSExpired.
            50 => (false, Some(HINT_MAX_TIME)),
            _ => (false, None),
        },
        Fault::Other { retryable } => (retryable, None),
    }
}

/// A request that got no answer within [`stall_limit`]: transient, since a
/// server that comes back may answer a retry.
fn stalled(
    operation: &'static str,
    namespace: String,
    uri: String,
    limit: Duration,
) -> SourceError {
    SourceError::Server {
        operation,
        namespace,
        uri,
        transient: true,
        hint: Some(HINT_STALLED),
        message: format!("no answer within {}s", limit.as_secs_f64()),
    }
}

fn server_error(
    operation: &'static str,
    namespace: String,
    uri: String,
    e: &mongodb::error::Error,
) -> SourceError {
    let (transient, hint) = classify(e);
    SourceError::Server {
        operation,
        namespace,
        uri,
        transient,
        hint,
        message: crate::redact::redact_text(&e.to_string()),
    }
}

/// One collection of one server.
pub struct MongoSource {
    collection: Collection<RawDocumentBuf>,
    uri_display: String,
    namespace: String,
    read: ReadOptions,
}

/// How to read a partition.
#[derive(Debug, Clone, Default)]
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
            read: ReadOptions::default(),
        })
    }

    /// Reads days with `read` ([`Source::documents`]).
    pub fn with_read_options(mut self, read: ReadOptions) -> Self {
        self.read = read;
        self
    }

    fn error(&self, operation: &'static str, e: mongodb::error::Error) -> SourceError {
        server_error(
            operation,
            self.namespace.clone(),
            self.uri_display.clone(),
            &e,
        )
    }

    /// A reply that is not what the protocol says.
    fn malformed(&self, operation: &'static str, message: &str) -> SourceError {
        SourceError::Server {
            operation,
            namespace: self.namespace.clone(),
            uri: self.uri_display.clone(),
            message: message.to_owned(),
            transient: false,
            hint: None,
        }
    }

    /// `request`, given up as stalled after [`stall_limit`].
    async fn answer<T>(
        &self,
        operation: &'static str,
        request: impl std::future::Future<Output = mongodb::error::Result<T>>,
    ) -> Result<T, SourceError> {
        let limit = stall_limit(self.read.max_time);
        match tokio::time::timeout(limit, request).await {
            Ok(answer) => answer.map_err(|e| self.error(operation, e)),
            Err(_) => Err(stalled(
                operation,
                self.namespace.clone(),
                self.uri_display.clone(),
                limit,
            )),
        }
    }

    /// Counts the documents matching `filter` (`countDocuments`).
    pub async fn count(&self, filter: Document) -> Result<u64, SourceError> {
        self.answer(
            "count",
            self.collection.count_documents(filter).into_future(),
        )
        .await
    }

    /// Up to `limit` documents matching `filter`, in `sort` order: the
    /// ends of a field's range, or one slice of a sample (`etl infer`).
    /// Held in memory, so `limit` bounds what a call costs.
    pub async fn first(
        &self,
        filter: Document,
        sort: Document,
        limit: u32,
    ) -> Result<Vec<RawDocumentBuf>, SourceError> {
        // An explicit batch size: mongo-java-server answers a `find`
        // without one with every match in one reply, and fails a `getMore`
        // without one.
        let find = self
            .collection
            .find(filter)
            .sort(sort)
            .limit(i64::from(limit))
            .batch_size(limit.clamp(1, 1000));
        let mut cursor = self.answer("find", find.into_future()).await?;
        let mut docs = Vec::new();
        while self.answer("getMore", cursor.advance()).await? {
            docs.push(cursor.current().to_raw_document_buf());
        }
        Ok(docs)
    }

    /// The connection string as it may be printed (password redacted).
    pub fn uri_display(&self) -> &str {
        &self.uri_display
    }

    /// `database.collection`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The names of the database's collections (`listCollections`), sorted.
    /// Existence is checked against this list rather than with a filtered
    /// `listCollections`, since mongo-java-server ignores the filter.
    pub async fn collection_names(&self) -> Result<Vec<String>, SourceError> {
        let db = self
            .collection
            .client()
            .database(&self.collection.namespace().db);
        let mut names = self
            .answer("listCollections", db.list_collection_names().into_future())
            .await?;
        names.sort();
        Ok(names)
    }

    /// The collection's document count from its metadata
    /// (`estimatedDocumentCount`): cheap, without reading documents.
    pub async fn estimated_count(&self) -> Result<u64, SourceError> {
        self.answer(
            "count",
            self.collection.estimated_document_count().into_future(),
        )
        .await
    }

    /// Up to `limit` documents matching `filter`, the newest first by
    /// `_id`, with `projection`: a sample of what recent days hold.
    pub async fn newest(
        &self,
        filter: Document,
        projection: Option<Document>,
        limit: i64,
    ) -> Result<Vec<Document>, SourceError> {
        use futures::TryStreamExt;
        let collection = self.collection.clone_with_type::<Document>();
        let mut find = collection
            .find(filter)
            .sort(doc! { "_id": -1 })
            .limit(limit)
            .batch_size(u32::try_from(limit).unwrap_or(u32::MAX).max(1));
        if let Some(t) = self.read.max_time {
            find = find.max_time(t);
        }
        if let Some(p) = projection {
            find = find.projection(p);
        }
        let cursor = self.answer("find", find.into_future()).await?;
        self.answer("getMore", cursor.try_collect()).await
    }

    /// The collection's indexes (`listIndexes`): each one's keys, in order,
    /// and its name.
    pub async fn indexes(&self) -> Result<Vec<(String, Document)>, SourceError> {
        use futures::TryStreamExt;
        let cursor = self
            .answer("listIndexes", self.collection.list_indexes().into_future())
            .await?;
        let models: Vec<mongodb::IndexModel> =
            self.answer("listIndexes", cursor.try_collect()).await?;
        Ok(models
            .into_iter()
            .map(|m| {
                let name = m
                    .options
                    .and_then(|o| o.name)
                    .unwrap_or_else(|| "(unnamed)".to_owned());
                (name, m.keys)
            })
            .collect())
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
        let cursor = self.answer("find", find.batch()).await?;
        Ok(PartitionCursor {
            batches: ReadAhead::start(
                cursor,
                self.namespace.clone(),
                self.uri_display.clone(),
                stall_limit(self.read.max_time),
            ),
            batch: None,
            docs: Vec::new(),
            next: 0,
            source: self,
            select: None,
        })
    }
}

/// Where a change stream starts.
#[derive(Debug, Clone)]
pub enum WatchFrom {
    /// The server's present.
    Now,
    /// After this resume token.
    Token(mongodb::change_stream::event::ResumeToken),
    /// At this server time, in seconds since the epoch.
    Time(u32),
}

/// A collection's change stream, as `etl watch` reads it.
pub type Changes = mongodb::change_stream::ChangeStream<
    mongodb::change_stream::event::ChangeStreamEvent<Document>,
>;

impl MongoSource {
    /// Opens the collection's change stream after `resume`, or from now.
    /// Each update carries the document as it is now (`updateLookup`),
    /// and with `pre_images` as it was before, where the server keeps it.
    pub async fn watch(&self, from: WatchFrom, pre_images: bool) -> Result<Changes, SourceError> {
        use mongodb::options::{FullDocumentBeforeChangeType, FullDocumentType};
        let collection = self.collection.clone_with_type::<Document>();
        let mut watch = collection
            .watch()
            .full_document(FullDocumentType::UpdateLookup)
            .batch_size(self.read.batch_size.max(1));
        if pre_images {
            watch = watch.full_document_before_change(FullDocumentBeforeChangeType::WhenAvailable);
        }
        match from {
            WatchFrom::Now => {}
            WatchFrom::Token(token) => watch = watch.resume_after(token),
            WatchFrom::Time(seconds) => {
                watch = watch.start_at_operation_time(bson::Timestamp {
                    time: seconds,
                    increment: 0,
                })
            }
        }
        self.answer("watch", watch.into_future()).await
    }

    /// The next change of `changes`, None when the server has none now.
    pub async fn next_change(
        &self,
        changes: &mut Changes,
    ) -> Result<Option<mongodb::change_stream::event::ChangeStreamEvent<Document>>, SourceError>
    {
        self.answer("getMore", changes.next_if_any()).await
    }
}

/// The batches of a cursor, each asked for while the one before is read:
/// a task of its own sends the `getMore` as soon as the channel has room,
/// so at most two batches are held (the one being read, and the next,
/// waiting or on its way). Without it the server sat idle while `etl`
/// read each batch, and `etl` while the server made the next.
struct ReadAhead {
    /// Each batch, then None at the end (a channel closed without it is a
    /// read that stopped, not the end of the day).
    batches: tokio::sync::mpsc::Receiver<Result<Option<RawBatch>, SourceError>>,
    /// Aborted on drop, which drops the cursor (the driver then kills it
    /// on the server).
    task: tokio::task::JoinHandle<()>,
    ended: bool,
}

impl ReadAhead {
    fn start(mut cursor: RawBatchCursor, namespace: String, uri: String, limit: Duration) -> Self {
        use futures::StreamExt;
        let (tx, batches) = tokio::sync::mpsc::channel(1);
        let task = tokio::spawn(async move {
            // Room first, then the request: never a third batch in memory.
            while let Ok(room) = tx.reserve().await {
                let next = match tokio::time::timeout(limit, cursor.next()).await {
                    Ok(None) => Ok(None),
                    Ok(Some(Ok(batch))) => Ok(Some(batch)),
                    Ok(Some(Err(e))) => {
                        Err(server_error("getMore", namespace.clone(), uri.clone(), &e))
                    }
                    Err(_) => Err(stalled("getMore", namespace.clone(), uri.clone(), limit)),
                };
                let last = !matches!(next, Ok(Some(_)));
                room.send(next);
                if last {
                    return;
                }
            }
        });
        Self {
            batches,
            task,
            ended: false,
        }
    }

    /// The next batch of `source`'s cursor; None at the end.
    async fn next(&mut self, source: &MongoSource) -> Result<Option<RawBatch>, SourceError> {
        if self.ended {
            return Ok(None);
        }
        match self.batches.recv().await {
            Some(next) => {
                self.ended = matches!(next, Ok(None));
                next
            }
            None => Err(SourceError::Server {
                operation: "getMore",
                namespace: source.namespace.clone(),
                uri: source.uri_display.clone(),
                message: "the task reading batches ahead stopped before the cursor's end"
                    .to_owned(),
                transient: true,
                hint: None,
            }),
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A cursor over one partition, a batch at a time: its documents are
/// borrowed from the server's reply, not copied out of it one by one.
pub struct PartitionCursor<'a> {
    batches: ReadAhead,
    /// The batch being read.
    batch: Option<RawBatch>,
    /// Where each of its documents lies in its reply's bytes.
    docs: Vec<std::ops::Range<usize>>,
    /// The position in `docs` of the next document.
    next: usize,
    source: &'a MongoSource,
    /// The day whose documents it keeps of those the filter selected
    /// ([`PartitionTarget::select`]).
    select: Option<(PartitionPlan, NaiveDate)>,
}

impl PartitionCursor<'_> {
    /// Moves to the next document; false at the end.
    pub async fn advance(&mut self) -> Result<bool, SourceError> {
        loop {
            while self.next == self.docs.len() {
                if !self.next_batch().await? {
                    return Ok(false);
                }
            }
            self.next += 1;
            match &self.select {
                Some((plan, day)) if !plan.selects(self.current(), *day) => continue,
                _ => return Ok(true),
            }
        }
    }

    /// Reads the next batch and finds its documents; false at the end.
    async fn next_batch(&mut self) -> Result<bool, SourceError> {
        self.docs.clear();
        self.next = 0;
        // The batch read before is dropped first: it leaves room for the
        // one after this.
        self.batch = None;
        let Some(batch) = self.batches.next(self.source).await? else {
            self.batch = None;
            return Ok(false);
        };
        let reply = batch.as_raw_document().as_bytes().as_ptr() as usize;
        let array = batch
            .doc_slices()
            .map_err(|e| self.source.error("getMore", e))?;
        for item in array {
            let doc = item
                .map_err(|e| self.source.error("getMore", e.into()))?
                .as_document()
                .ok_or_else(|| {
                    self.source
                        .malformed("getMore", "a batch holds a value that is not a document")
                })?;
            // The document's bytes are a slice of the reply's.
            let start = doc.as_bytes().as_ptr() as usize - reply;
            self.docs.push(start..start + doc.as_bytes().len());
        }
        self.batch = Some(batch);
        Ok(true)
    }

    /// The current document, borrowed from the cursor's batch.
    pub fn current(&self) -> &bson::RawDocument {
        let batch = self.batch.as_ref().expect("advance returned true");
        let bytes = &batch.as_raw_document().as_bytes()[self.docs[self.next - 1].clone()];
        bson::RawDocument::from_bytes(bytes).expect("checked when the batch was read")
    }
}

#[async_trait::async_trait]
impl Source for MongoSource {
    async fn documents<'a>(
        &'a self,
        target: &PartitionTarget,
    ) -> Result<Box<dyn Documents + 'a>, SourceError> {
        let read = self.read.clone();
        let mut cursor = self.find(target.filter.clone(), &read).await?;
        cursor.select = target.select.clone().map(|plan| (plan, target.day));
        Ok(Box::new(cursor))
    }

    /// `countDocuments` of the day's filter; for a day whose reader keeps
    /// only some of what the filter selects (`iso_string`), the kept ones
    /// of a scan of the partition field alone.
    fn count(&self, target: &PartitionTarget) -> BoxFuture<'static, Result<u64, SourceError>> {
        let collection = self.collection.clone();
        let (namespace, uri) = (self.namespace.clone(), self.uri_display.clone());
        let filter = target.filter.clone();
        let select = target.select.clone();
        let (day, batch) = (target.day, self.read.batch_size.max(1000));
        let limit = stall_limit(self.read.max_time);
        Box::pin(async move {
            // Each request within the stall limit, as a read's are.
            let Some(plan) = select else {
                let count = collection.count_documents(filter).into_future();
                return within(
                    tokio::time::timeout(limit, count).await,
                    &namespace,
                    &uri,
                    limit,
                );
            };
            let find = collection
                .find(filter)
                .projection(doc! { plan.field.as_str(): 1 })
                .batch_size(batch)
                .into_future();
            let mut cursor = within(
                tokio::time::timeout(limit, find).await,
                &namespace,
                &uri,
                limit,
            )?;
            let mut n = 0u64;
            while within(
                tokio::time::timeout(limit, cursor.advance()).await,
                &namespace,
                &uri,
                limit,
            )? {
                n += u64::from(plan.selects(cursor.current(), day));
            }
            Ok(n)
        })
    }
}

#[async_trait::async_trait]
impl Documents for PartitionCursor<'_> {
    async fn advance(&mut self) -> Result<bool, SourceError> {
        PartitionCursor::advance(self).await
    }

    fn current(&self) -> &bson::RawDocument {
        PartitionCursor::current(self)
    }
}

/// A count's request, answered or given up as stalled after `limit`.
fn within<T>(
    answer: Result<mongodb::error::Result<T>, tokio::time::error::Elapsed>,
    namespace: &str,
    uri: &str,
    limit: Duration,
) -> Result<T, SourceError> {
    match answer {
        Ok(n) => n.map_err(|e| server_error("count", namespace.to_owned(), uri.to_owned(), &e)),
        Err(_) => Err(stalled(
            "count",
            namespace.to_owned(),
            uri.to_owned(),
            limit,
        )),
    }
}

/// The driver sometimes quotes the connection string; hide its password.
fn redact_in(message: &str, uri: &str) -> String {
    message.replace(uri, &redact_uri(uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server the driver refuses, as mongo-java-server is without our
    /// wrapper, fails at once: retrying it three times only waits.
    #[test]
    fn an_incompatible_server_is_permanent_with_a_hint() {
        let message = "Server at 127.0.0.1:27018 reports wire version 8, but this version of the MongoDB Rust driver requires at least 9 (MongoDB 4.4).";
        assert_eq!(
            decide(Fault::Selection(message)),
            (false, Some(HINT_WIRE_VERSION))
        );
        assert_eq!(
            decide(Fault::Incompatible),
            (false, Some(HINT_WIRE_VERSION))
        );
    }

    #[test]
    fn an_unreachable_server_and_network_codes_are_transient() {
        let message = "Server selection timeout: No available servers";
        assert_eq!(decide(Fault::Selection(message)), (true, None));
        assert_eq!(decide(Fault::Network), (true, None));
        // CursorNotFound, InterruptedAtShutdown.
        assert_eq!(decide(Fault::Command(43)), (true, None));
        assert_eq!(decide(Fault::Command(11600)), (true, None));
        assert_eq!(decide(Fault::Other { retryable: true }), (true, None));
    }

    #[test]
    fn refused_logins_queries_and_commands_are_permanent() {
        assert_eq!(decide(Fault::Authentication), (false, Some(HINT_AUTH)));
        assert_eq!(decide(Fault::Command(18)), (false, Some(HINT_AUTH)));
        assert_eq!(decide(Fault::Command(2)), (false, Some(HINT_QUERY)));
        assert_eq!(decide(Fault::Command(59)), (false, Some(HINT_UNSUPPORTED)));
        assert_eq!(decide(Fault::Command(50)), (false, Some(HINT_MAX_TIME)));
        assert_eq!(decide(Fault::Other { retryable: false }), (false, None));
    }

    /// The driver's own error, read as a fault: a command error.
    #[test]
    fn a_driver_error_is_read_by_its_code() {
        let c: mongodb::error::CommandError =
            bson::from_document(doc! { "code": 2, "codeName": "BadValue", "errmsg": "refused" })
                .unwrap();
        let e = mongodb::error::Error::from(ErrorKind::Command(c));
        assert_eq!(classify(&e), (false, Some(HINT_QUERY)));
    }

    #[test]
    fn a_stall_is_given_up_after_twice_the_server_limit_and_5_seconds() {
        assert_eq!(
            stall_limit(Some(Duration::from_millis(1500))),
            Duration::from_secs(8)
        );
        assert_eq!(stall_limit(None), DEFAULT_STALL);
        let e = stalled(
            "getMore",
            "shop.users".into(),
            "mongodb://h/".into(),
            Duration::from_secs(8),
        );
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            format!("getMore on `shop.users` at `mongodb://h/` failed: no answer within 8s; hint: {HINT_STALLED}")
        );
    }

    #[test]
    fn the_hint_follows_the_message() {
        let e = SourceError::Server {
            operation: "find",
            namespace: "shop.users".into(),
            uri: "mongodb://127.0.0.1:27018/".into(),
            message: "unknown top level operator: $foo".into(),
            transient: false,
            hint: Some(HINT_QUERY),
        };
        assert_eq!(
            e.to_string(),
            format!("find on `shop.users` at `mongodb://127.0.0.1:27018/` failed: unknown top level operator: $foo; hint: {HINT_QUERY}")
        );
    }
}
