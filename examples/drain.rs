//! The floor for `benches/scale.sh`: drain one day's cursor with the Rust
//! driver and do nothing else (no archive, no flattening, no files), the
//! same query `etl run` sends for a `date` partition.
//!
//!     cargo run --release --example drain -- URI DATABASE COLLECTION FIELD DAY [BATCH]
//!
//! Prints `documents bytes seconds` on one line.

use bson::{doc, DateTime, RawDocumentBuf};
use chrono::NaiveDate;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [uri, database, collection, field, day, rest @ ..] = &args[..] else {
        eprintln!("usage: drain URI DATABASE COLLECTION FIELD DAY [BATCH]");
        std::process::exit(2);
    };
    let batch: u32 = rest.first().map_or(Ok(1000), |b| b.parse())?;
    let day: NaiveDate = day.parse()?;
    let start = day
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    let end = start + 86_400_000;
    let client = mongodb::Client::with_uri_str(uri).await?;
    let coll = client
        .database(database)
        .collection::<RawDocumentBuf>(collection);
    let t0 = std::time::Instant::now();
    let mut cursor = coll
        .find(doc! { field.as_str(): { "$gte": DateTime::from_millis(start), "$lt": DateTime::from_millis(end) } })
        .sort(doc! { "_id": 1 })
        .batch_size(batch)
        .await?;
    let (mut docs, mut bytes) = (0u64, 0u64);
    while cursor.advance().await? {
        docs += 1;
        bytes += cursor.current().as_bytes().len() as u64;
    }
    println!("{docs} {bytes} {:.3}", t0.elapsed().as_secs_f64());
    Ok(())
}
