//! Smoke tests of the local stack with the crates the engine uses: the
//! `mongodb` driver against FerretDB, bigquery-emulator's REST API (the
//! one `sink::bigquery` speaks), and a GCS JSON-API upload read back through
//! `object_store`. They fail, never skip, when the stack is down.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bson::{doc, RawDocumentBuf};
use common::stack;
use futures::TryStreamExt;
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;

#[tokio::test]
async fn date_range_find_pages_through_several_get_mores() {
    let get_mores = Arc::new(AtomicUsize::new(0));
    let counter = get_mores.clone();
    let mut opts = ClientOptions::parse(stack::mongo_uri()).await.unwrap();
    opts.command_event_handler = Some(EventHandler::callback(move |ev: CommandEvent| {
        if let CommandEvent::Started(s) = ev {
            if s.command_name == "getMore" {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    }));
    let client = mongodb::Client::with_options(opts).unwrap();
    stack::require_mongo(&client).await;

    let coll = client
        .database("etl_smoke")
        .collection::<bson::Document>(&format!("find_range_{}", std::process::id()));
    // The name is the process's own: nothing to drop on a first run, and
    // mongo-java-server answers "ns not found" without the code the
    // driver needs to take it for success.
    let _ = coll.drop().await;
    // 1000 documents, one every 259.2 s over three days from 2020-06-01.
    let start = 1_590_969_600_000i64; // 2020-06-01T00:00:00Z
    let docs: Vec<_> = (0..1000i64)
        .map(|i| doc! { "n": i, "created_at": bson::DateTime::from_millis(start + i * 259_200) })
        .collect();
    coll.insert_many(docs).await.unwrap();

    let day2 = doc! { "created_at": {
        "$gte": bson::DateTime::from_millis(start + 86_400_000),
        "$lt": bson::DateTime::from_millis(start + 2 * 86_400_000),
    }};
    let expected = (0..1000i64)
        .filter(|i| (86_400_000..172_800_000).contains(&(i * 259_200)))
        .count();

    let raw = coll.clone_with_type::<RawDocumentBuf>();
    let mut cursor = raw.find(day2.clone()).batch_size(7).await.unwrap();
    let mut seen = 0usize;
    while cursor.advance().await.unwrap() {
        let d = cursor.current();
        assert!(d.get_datetime("created_at").is_ok());
        seen += 1;
    }
    let counted = coll.count_documents(day2).await.unwrap() as usize;
    coll.drop().await.unwrap();

    assert_eq!(expected, 333);
    assert_eq!((seen, counted), (expected, expected));
    assert!(
        get_mores.load(Ordering::SeqCst) >= expected / 7 - 1,
        "getMore round trips: {}",
        get_mores.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn bigquery_emulator_creates_inserts_and_queries() {
    use serde_json::json;
    let emu = stack::Emulator::require().await;
    let table = format!("smoke_{}", std::process::id());
    let (status, answer) = emu
        .send(
            reqwest::Method::POST,
            &format!("datasets/{}/tables", stack::BQ_DATASET),
            Some(json!({
                "tableReference": {"projectId": stack::BQ_PROJECT, "datasetId": stack::BQ_DATASET, "tableId": table},
                "schema": {"fields": [
                    {"name": "id", "type": "INTEGER"},
                    {"name": "name", "type": "STRING"},
                    {"name": "ts", "type": "TIMESTAMP"},
                ]},
            })),
        )
        .await;
    assert_eq!(status, 200, "{answer}\n{}", stack::HINT);
    let rows: Vec<_> = [(1, "Zoë"), (2, "李雷"), (3, "José")]
        .iter()
        .map(|(id, name)| json!({"json": {"id": id, "name": name, "ts": "2020-06-01T00:00:00Z"}}))
        .collect();
    let (status, answer) = emu
        .send(
            reqwest::Method::POST,
            &format!("datasets/{}/tables/{table}/insertAll", stack::BQ_DATASET),
            Some(json!({ "rows": rows })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    let sql = format!(
        "SELECT COUNT(*) AS n, SUM(id) AS s, MAX(name) AS m FROM `{}.{}.{table}`",
        stack::BQ_PROJECT,
        stack::BQ_DATASET
    );
    assert_eq!(stack::bq_rows(&sql).await, [["3", "6", "李雷"]]);
    emu.drop_table(stack::BQ_DATASET, &table).await;
}

#[tokio::test]
async fn gcs_json_api_upload_reads_back_through_object_store() {
    use object_store::ObjectStore;
    let name = format!("smoke/{}/hello.jsonl", std::process::id());
    let body = "{\"a\":1}\n{\"a\":\"ü\"}\n";
    let url = format!(
        "{}/upload/storage/v1/b/{}/o?uploadType=media&name={}",
        stack::gcs_endpoint(),
        stack::GCS_BUCKET,
        name
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "gcs-front (fake-gcs-server) is not reachable: {e}\n{}",
                stack::HINT
            )
        });
    assert!(resp.status().is_success(), "upload: {}", resp.status());

    // object_store's GCS client reads through the JSON API, so reads work
    // against the emulator (its writes use the XML API, which it rejects).
    let key = serde_json::json!({
        "gcs_base_url": stack::gcs_endpoint(), "disable_oauth": true,
        "client_email": "", "private_key": "", "private_key_id": ""
    });
    let store = object_store::gcp::GoogleCloudStorageBuilder::new()
        .with_bucket_name(stack::GCS_BUCKET)
        .with_service_account_key(key.to_string())
        .build()
        .unwrap();
    let got = store
        .get(&object_store::path::Path::from(name.as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(std::str::from_utf8(&got).unwrap(), body);
    let listed: Vec<_> = store
        .list(Some(&object_store::path::Path::from(format!(
            "smoke/{}",
            std::process::id()
        ))))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, body.len() as u64);
}
