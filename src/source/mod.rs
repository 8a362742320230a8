//! Sources: where a day's documents come from.
//!
//! The engine reads a day through [`Source`] only: the documents of one
//! partition, in `_id` order, as borrowed raw BSON, and their count. An
//! implementation is opened from the plan in `engine::runtime`.
//!
//! - [`mongo`]: a MongoDB collection (the first source).
//! - [`lake`]: a day's raw object in the lake read back, checked against
//!   its manifest, for `etl replay`.

pub mod lake;
pub mod mongo;

use futures::future::BoxFuture;

pub use lake::LakeSource;
pub use mongo::{MongoSource, ReadOptions, WatchFrom};

use crate::plan::PartitionTarget;

/// One day's documents, one at a time.
#[async_trait::async_trait]
pub trait Documents: Send {
    /// Moves to the next document; false at the end.
    async fn advance(&mut self) -> Result<bool, SourceError>;

    /// The current document, valid until the next [`Self::advance`].
    fn current(&self) -> &bson::RawDocument;
}

/// Where documents come from.
///
/// # Contract
///
/// [`Self::documents`] yields each of the day's documents once, in `_id`
/// order, so that the same data gives the same lake bytes; [`Self::count`]
/// counts the same documents independently, so that a day whose documents
/// changed while it was read is caught by reconciliation; every error says
/// by [`SourceError::is_transient`] whether a retry may help.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// The documents of day `target`, in `_id` order, so that the same
    /// data always gives the same bytes.
    async fn documents<'a>(
        &'a self,
        target: &PartitionTarget,
    ) -> Result<Box<dyn Documents + 'a>, SourceError>;

    /// Counts day `target`'s documents on their own: a future that owns
    /// what it needs, so that it can run as a task beside the read.
    fn count(&self, target: &PartitionTarget) -> BoxFuture<'static, Result<u64, SourceError>>;
}

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
    #[error("{operation} on `{namespace}` at `{uri}` failed: {message}{}", hint.map(|h| format!("; hint: {h}")).unwrap_or_default())]
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
        /// What to do about a permanent failure.
        hint: Option<&'static str>,
    },
    /// A raw object or its manifest cannot be used (`etl replay`).
    #[error("{message}")]
    Lake {
        /// The object, as the store shows it.
        object: String,
        /// What is wrong, naming the object.
        message: String,
        /// Whether retrying may help: the store's network, not a mismatch.
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
            } | SourceError::Lake {
                transient: true,
                ..
            }
        )
    }
}
