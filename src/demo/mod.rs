//! The deterministic demo data behind `etl demo`.
//!
//! Every pipeline feature (daily partitions, flattening of nested objects and
//! arrays, type drift, unicode) needs realistic data in the local
//! MongoDB-protocol server, and tests need the *same* data every run, so
//! that a row count or a checksum can be asserted. Hence: the documents are a
//! pure function of [`DemoOptions`] (no clock, no global RNG), and [`seed`]
//! only drops, recreates and bulk-inserts them.
//!
//! Three collections, cross-referenced like a shop: `users`, `orders` (whose
//! `customer` and `items` carry the real name, e-mail, SKU and price of
//! existing users and products) and `products`. About 3% of documents carry
//! missing fields or type drift (a number stored as a string). The first
//! [`BOUNDARY_DOCS`] documents of each collection sit on the instants of
//! [`boundaries`], where off-by-one-millisecond partition bugs show.
//!
//! The data stays inside what FerretDB can store (see
//! `/work/shared/LOCAL-STACK.md`): no Decimal128, no arrays inside arrays,
//! no NaN/Inf, no keys with `.` or a leading `$`. Those cases live in the
//! BSON fixtures under `tests/fixtures/bson/`, which need no server.

mod generate;
mod words;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bson::Document;
use chrono::{Datelike, Days, NaiveDate, NaiveTime, Utc};

use generate::Generator;

/// What to generate. Everything that shapes the data is here, so the same
/// options always give the same documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOptions {
    /// Key of every random choice.
    pub seed: u64,
    /// Number of `users` documents (boundary documents included).
    pub users: usize,
    /// Number of `orders` documents (boundary documents included).
    pub orders: usize,
    /// Number of `products` documents (boundary documents included).
    pub products: usize,
    /// First UTC day of `created_at`.
    pub start: NaiveDate,
    /// Last UTC day of `created_at`, inclusive.
    pub end: NaiveDate,
    /// The pinned "today": one document per collection is created at
    /// `today 00:00:01`, which a daily run for yesterday must never extract.
    /// Passed in, never read from the clock, to keep the data reproducible.
    pub today: NaiveDate,
    /// Documents per `insert_many` call in [`seed`].
    pub batch_size: usize,
}

impl Default for DemoOptions {
    /// 3000 users, 5000 orders and 1000 products created 2020-06-01 to
    /// 2020-06-10, with "today" the day after the range.
    fn default() -> Self {
        let start = NaiveDate::from_ymd_opt(2020, 6, 1).expect("2020-06-01 is a date");
        let end = NaiveDate::from_ymd_opt(2020, 6, 10).expect("2020-06-10 is a date");
        Self {
            seed: 42,
            users: 3000,
            orders: 5000,
            products: 1000,
            start,
            end,
            today: end + Days::new(1),
            batch_size: 1000,
        }
    }
}

/// Options that cannot be generated, or a failed server call in [`seed`].
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("`batch_size` must be at least 1")]
    ZeroBatchSize,
    #[error("`start` ({start}) is after `end` ({end})")]
    StartAfterEnd { start: NaiveDate, end: NaiveDate },
    /// ObjectIds hold seconds since 1970 in 32 bits, and one boundary
    /// document sits the day before `start`.
    #[error(
        "`{field}` ({date}) is outside 1970-01-02..=2106-01-01, which ObjectId timestamps can hold"
    )]
    DateOutOfRange {
        field: &'static str,
        date: NaiveDate,
    },
    // The driver error is boxed: it is large, and every `Result` of this
    // module would pay for its size.
    #[error("could not drop collection `{collection}` in database `{database}`")]
    Drop {
        database: String,
        collection: &'static str,
        #[source]
        source: Box<mongodb::error::Error>,
    },
    #[error("could not create collection `{collection}` in database `{database}`")]
    Create {
        database: String,
        collection: &'static str,
        #[source]
        source: Box<mongodb::error::Error>,
    },
    #[error("could not insert documents {first}..{end} into `{database}.{collection}`")]
    Insert {
        database: String,
        collection: &'static str,
        first: u64,
        end: u64,
        #[source]
        source: Box<mongodb::error::Error>,
    },
}

impl DemoOptions {
    /// Checks what the generators would otherwise clamp silently.
    pub fn validate(&self) -> Result<(), DemoError> {
        if self.batch_size == 0 {
            return Err(DemoError::ZeroBatchSize);
        }
        if self.start > self.end {
            return Err(DemoError::StartAfterEnd {
                start: self.start,
                end: self.end,
            });
        }
        for (field, date) in [
            ("start", self.start),
            ("end", self.end),
            ("today", self.today),
        ] {
            let ok = (date.year(), date.ordinal()) >= (1970, 2) && date.year() <= 2105;
            if !ok {
                return Err(DemoError::DateOutOfRange { field, date });
            }
        }
        Ok(())
    }
}

/// Inserted documents of one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSummary {
    pub collection: String,
    pub inserted: u64,
    /// Documents by the UTC day of `created_at`, boundary documents
    /// outside the range included (the day before `start`, and `today`).
    pub per_day: BTreeMap<NaiveDate, u64>,
}

/// What [`seed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    pub database: String,
    /// `users`, `orders`, `products`, in that order.
    pub collections: Vec<CollectionSummary>,
    pub elapsed: Duration,
}

/// Number of boundary documents at the head of every collection.
pub const BOUNDARY_DOCS: usize = 5;

/// A `created_at` instant chosen to sit on a partition edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    /// Stable name, for test messages.
    pub label: &'static str,
    pub at: chrono::DateTime<Utc>,
}

/// The boundary instants. Document `i < BOUNDARY_DOCS` of every collection
/// (so `user_id`, `order_id`, `product_id` `i + 1`) is created at
/// `boundaries(opts)[i].at`:
///
/// 0. `start` 00:00:00.000, the first instant of the range;
/// 1. the middle day 00:00:00.000;
/// 2. `end` 23:59:59.999, the last instant of the range;
/// 3. the day before `start` 23:59:59.999, one millisecond outside;
/// 4. `today` 00:00:01.000, which a daily run must never extract.
///
/// If a collection has fewer documents, only the first ones exist.
pub fn boundaries(opts: &DemoOptions) -> [Boundary; BOUNDARY_DOCS] {
    let end = opts.end.max(opts.start);
    let middle = opts.start + Days::new(((end - opts.start).num_days() / 2) as u64);
    let before = opts
        .start
        .checked_sub_days(Days::new(1))
        .unwrap_or(opts.start);
    let at = |day: NaiveDate, ms_into_day: i64| {
        chrono::DateTime::from_timestamp_millis(midnight_ms(day) + ms_into_day)
            .expect("a NaiveDate midnight plus less than a day is representable")
    };
    const LAST_MS: i64 = 86_400_000 - 1;
    [
        Boundary {
            label: "start_midnight",
            at: at(opts.start, 0),
        },
        Boundary {
            label: "middle_midnight",
            at: at(middle, 0),
        },
        Boundary {
            label: "end_last_millisecond",
            at: at(end, LAST_MS),
        },
        Boundary {
            label: "before_start",
            at: at(before, LAST_MS),
        },
        Boundary {
            label: "today",
            at: at(opts.today, 1000),
        },
    ]
}

/// `users` documents, `user_id` 1..=`opts.users`.
///
/// Pure and deterministic: the same options give the same documents, byte
/// for byte.
pub fn users(opts: &DemoOptions) -> impl Iterator<Item = Document> {
    let generator = Generator::new(opts);
    (0..opts.users).map(move |i| generator.user(i))
}

/// `orders` documents, `order_id` 1..=`opts.orders`; `customer.user_id` and
/// `items[].product_id` point at documents of [`users`] and [`products`]
/// with the same options.
///
/// Pure and deterministic: the same options give the same documents, byte
/// for byte.
pub fn orders(opts: &DemoOptions) -> impl Iterator<Item = Document> {
    let generator = Generator::new(opts);
    (0..opts.orders).map(move |i| generator.order(i))
}

/// `products` documents, `product_id` 1..=`opts.products`.
///
/// Pure and deterministic: the same options give the same documents, byte
/// for byte.
pub fn products(opts: &DemoOptions) -> impl Iterator<Item = Document> {
    let generator = Generator::new(opts);
    (0..opts.products).map(move |i| generator.product(i))
}

/// Drops and recreates `users`, `orders` and `products` in `db`, then
/// inserts the generated documents with unordered `insert_many` batches of
/// `opts.batch_size`. `progress(collection, inserted_so_far)` runs after
/// every batch.
///
/// Running it twice leaves the same data. The database is whatever the
/// caller passes; nothing here names one.
pub async fn seed(
    db: &mongodb::Database,
    opts: &DemoOptions,
    progress: impl Fn(&str, u64),
) -> anyhow::Result<DemoSummary> {
    opts.validate()?;
    let started = Instant::now();
    let collections = vec![
        seed_collection(db, "users", users(opts), opts.batch_size, &progress).await?,
        seed_collection(db, "orders", orders(opts), opts.batch_size, &progress).await?,
        seed_collection(db, "products", products(opts), opts.batch_size, &progress).await?,
    ];
    Ok(DemoSummary {
        database: db.name().to_string(),
        collections,
        elapsed: started.elapsed(),
    })
}

async fn seed_collection(
    db: &mongodb::Database,
    collection: &'static str,
    documents: impl Iterator<Item = Document>,
    batch_size: usize,
    progress: &impl Fn(&str, u64),
) -> Result<CollectionSummary, DemoError> {
    let database = db.name();
    let handle = db.collection::<Document>(collection);
    // Only an existing collection is dropped: the driver takes MongoDB's
    // "ns not found" for success, but mongo-java-server sends it without
    // the error code the driver needs to tell, and fails a first run.
    let drop_error = |source| DemoError::Drop {
        database: database.to_string(),
        collection,
        source: Box::new(source),
    };
    let existing = db.list_collection_names().await.map_err(drop_error)?;
    if existing.iter().any(|c| c == collection) {
        handle.drop().await.map_err(drop_error)?;
    }
    // Explicitly, so an empty collection still exists after a run with a
    // count of zero.
    db.create_collection(collection)
        .await
        .map_err(|source| DemoError::Create {
            database: database.to_string(),
            collection,
            source: Box::new(source),
        })?;

    let mut per_day = BTreeMap::new();
    let mut inserted = 0u64;
    let mut batch = Vec::with_capacity(batch_size);
    let mut documents = documents.peekable();
    while documents.peek().is_some() {
        batch.clear();
        batch.extend(documents.by_ref().take(batch_size));
        for document in &batch {
            if let Some(day) = document
                .get_datetime("created_at")
                .ok()
                .and_then(|at| utc_day(*at))
            {
                *per_day.entry(day).or_insert(0) += 1;
            }
        }
        let end = inserted + batch.len() as u64;
        handle
            .insert_many(&batch)
            .ordered(false)
            .await
            .map_err(|source| DemoError::Insert {
                database: database.to_string(),
                collection,
                first: inserted,
                end,
                source: Box::new(source),
            })?;
        inserted = end;
        tracing::debug!(database, collection, inserted, "demo batch inserted");
        progress(collection, inserted);
    }
    tracing::info!(database, collection, inserted, "demo collection seeded");
    Ok(CollectionSummary {
        collection: collection.to_string(),
        inserted,
        per_day,
    })
}

/// The UTC calendar day of a BSON date, the day a daily partition puts it in.
fn utc_day(at: bson::DateTime) -> Option<NaiveDate> {
    chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).map(|at| at.date_naive())
}

fn midnight_ms(day: NaiveDate) -> i64 {
    day.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

#[cfg(test)]
mod tests;
