//! `gs://` through `object_store`'s GCS client against the stack's GCS
//! server (`stack/gcs-front`: fake-gcs-server behind the XML API the client
//! writes with, issue 32): the behaviours the lake, the Parquet warehouse
//! and the ledger's leases rely on, then the four-worker lease test with
//! the ledger in a bucket. Each test works under a prefix of its own in the
//! stack's bucket, through the crate's `Store` where it has the operation
//! and through `object_store` where it does not (range, head, copy,
//! conditional update, paged listing).

mod common;
#[path = "common/leases.rs"]
mod leases;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::stack;
use etl::sink::lake::{Created, Store};
use futures::{StreamExt, TryStreamExt};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

/// Fails the test with a hint unless the stack's GCS server answers.
fn require_gcs() {
    let endpoint = stack::gcs_endpoint();
    let url = url::Url::parse(&endpoint).unwrap();
    let addr = format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    );
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    if let Err(e) = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)) {
        panic!(
            "the stack's GCS server at {endpoint} does not answer: {e}\n{}",
            stack::HINT
        );
    }
}

/// A prefix no other test or run uses.
fn prefix(test: &str) -> String {
    format!("it_gcs/{test}_{}", std::process::id())
}

/// The crate's store on `gs://<bucket>/<prefix>`, opened as a spec's
/// connection is.
fn store(test: &str) -> Store {
    require_gcs();
    let options = BTreeMap::from([(
        "google_service_account_key".to_owned(),
        stack::gcs_service_account_key(),
    )]);
    Store::open(
        &format!("gs://{}/{}", stack::GCS_BUCKET, prefix(test)),
        &options,
    )
    .unwrap()
}

/// Deletes what a test left under its prefix: the bucket outlives the
/// test, and the server walks all of it for every listing.
async fn wipe(s: &Store) {
    futures::stream::iter(s.list("").await.unwrap())
        .map(|rel| async move { s.delete(&rel).await })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    assert!(s.list("").await.unwrap().is_empty());
}

/// The `object_store` client alone, on the whole bucket.
fn gcs() -> object_store::gcp::GoogleCloudStorage {
    require_gcs();
    object_store::gcp::GoogleCloudStorageBuilder::new()
        .with_bucket_name(stack::GCS_BUCKET)
        .with_service_account_key(stack::gcs_service_account_key())
        .build()
        .unwrap()
}

#[tokio::test]
async fn put_get_head_and_a_range_read_back_what_was_written() {
    let s = store("put_get");
    let os = s.object_store();
    s.put("raw/users/dt=2020-06-01/part.json", b"0123456789".to_vec())
        .await
        .unwrap();
    let path = s.path("raw/users/dt=2020-06-01/part.json");
    assert_eq!(
        &s.get("raw/users/dt=2020-06-01/part.json")
            .await
            .unwrap()
            .unwrap()[..],
        b"0123456789"
    );
    assert_eq!(s.get("raw/missing.json").await.unwrap(), None);

    let meta = os.head(&path).await.unwrap();
    assert_eq!(meta.location, path);
    assert_eq!(meta.size, 10);
    let etag = meta.e_tag.clone().expect("an ETag");
    let generation: u64 = meta
        .version
        .as_deref()
        .expect("a generation")
        .parse()
        .unwrap();
    assert!(generation > 0);
    let age = chrono::Utc::now() - meta.last_modified;
    assert!(age < chrono::Duration::minutes(5), "{meta:?}");

    assert_eq!(&os.get_range(&path, 2..5).await.unwrap()[..], b"234");
    let tail = os
        .get_opts(
            &path,
            GetOptions {
                range: Some((7..10).into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail.range, 7..10);
    assert_eq!(&tail.bytes().await.unwrap()[..], b"789");

    // Conditional reads: a matching If-None-Match is NotModified, a stale
    // If-Match a Precondition, a matching If-Match reads.
    let err = os
        .get_opts(
            &path,
            GetOptions {
                if_none_match: Some(etag.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::NotModified { .. }),
        "{err}"
    );
    let err = os
        .get_opts(
            &path,
            GetOptions {
                if_match: Some("\"not-the-etag\"".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::Precondition { .. }),
        "{err}"
    );
    let same = os
        .get_opts(
            &path,
            GetOptions {
                if_match: Some(etag),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(&same.bytes().await.unwrap()[..], b"0123456789");

    // An overwrite is a new generation.
    s.put("raw/users/dt=2020-06-01/part.json", b"new".to_vec())
        .await
        .unwrap();
    let after = os.head(&path).await.unwrap();
    assert_eq!(after.size, 3);
    let next: u64 = after.version.unwrap().parse().unwrap();
    assert!(next > generation, "{next} after {generation}");
    wipe(&s).await;
}

#[tokio::test]
async fn a_listing_groups_by_delimiter_and_pages() {
    let s = store("list");
    let os = gcs();
    let names = ["a/1", "a/2", "b/x/1", "b/x/2", "b/y", "c", "d"];
    for n in names {
        s.put(n, n.as_bytes().to_vec()).await.unwrap();
    }
    assert_eq!(s.list("").await.unwrap(), names);
    assert_eq!(s.list("b").await.unwrap(), ["b/x/1", "b/x/2", "b/y"]);
    assert!(s.list("nothing").await.unwrap().is_empty());

    let root = Path::from(prefix("list"));
    let top = os.list_with_delimiter(Some(&root)).await.unwrap();
    let rel = |p: &Path| p.as_ref()[root.as_ref().len() + 1..].to_owned();
    assert_eq!(
        top.common_prefixes.iter().map(rel).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(
        top.objects
            .iter()
            .map(|m| rel(&m.location))
            .collect::<Vec<_>>(),
        ["c", "d"]
    );
    assert_eq!(top.objects[0].size, 1);
    assert!(top.objects[0].e_tag.is_some());

    // Pages of two entries, a common prefix counting as one, as GCS
    // counts: a, b / c, d, then nothing left.
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = os
            .list_paginated(
                Some(&format!("{root}/")),
                PaginatedListOptions {
                    delimiter: Some("/".into()),
                    max_keys: Some(2),
                    page_token: token.take(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut entries: Vec<String> = page.result.common_prefixes.iter().map(rel).collect();
        entries.extend(page.result.objects.iter().map(|m| rel(&m.location)));
        pages.push(entries);
        match page.page_token {
            Some(t) => token = Some(t),
            None => break,
        }
        assert!(pages.len() < 10, "the pages do not end: {pages:?}");
    }
    assert_eq!(pages, [vec!["a", "b"], vec!["c", "d"]]);

    // Without a delimiter: every object, three a page, in order.
    let mut all = Vec::new();
    let mut token = None;
    let mut n_pages = 0;
    loop {
        let page = os
            .list_paginated(
                Some(&format!("{root}/")),
                PaginatedListOptions {
                    max_keys: Some(3),
                    page_token: token.take(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        n_pages += 1;
        assert!(page.result.objects.len() <= 3);
        all.extend(page.result.objects.iter().map(|m| rel(&m.location)));
        match page.page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(all, names);
    assert_eq!(n_pages, 3);

    // start-after.
    let after: Vec<String> = os
        .list_with_offset(Some(&root), &root.child("b").child("x").child("2"))
        .map_ok(|m| rel(&m.location))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(after, ["b/y", "c", "d"]);
    wipe(&s).await;
}

#[tokio::test]
async fn a_listing_longer_than_a_page_is_followed_to_the_end() {
    // More than the 1,000 keys one response carries: object_store follows
    // the continuation token.
    let s = store("long_list");
    let n = 1005;
    futures::stream::iter(0..n)
        .map(|i| {
            let s = s.clone();
            async move { s.put(&format!("k/{i:05}"), vec![b'x']).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let listed = s.list("k").await.unwrap();
    assert_eq!(listed.len(), n);
    assert_eq!(listed[0], "k/00000");
    assert_eq!(listed[n - 1], format!("k/{:05}", n - 1));
    wipe(&s).await;
}

#[tokio::test]
async fn copy_overwrites_and_copy_if_not_exists_refuses_an_existing_target() {
    let s = store("copy");
    let os = s.object_store();
    s.put("src.json", b"source".to_vec()).await.unwrap();
    s.put("dst.json", b"old".to_vec()).await.unwrap();
    os.copy(&s.path("src.json"), &s.path("dst.json"))
        .await
        .unwrap();
    assert_eq!(&s.get("dst.json").await.unwrap().unwrap()[..], b"source");

    s.put("src.json", b"changed".to_vec()).await.unwrap();
    let err = os
        .copy_if_not_exists(&s.path("src.json"), &s.path("dst.json"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{err}"
    );
    assert_eq!(&s.get("dst.json").await.unwrap().unwrap()[..], b"source");

    os.copy_if_not_exists(&s.path("src.json"), &s.path("new.json"))
        .await
        .unwrap();
    assert_eq!(&s.get("new.json").await.unwrap().unwrap()[..], b"changed");

    let err = os
        .copy(&s.path("missing.json"), &s.path("x.json"))
        .await
        .unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    wipe(&s).await;
}

#[tokio::test]
async fn delete_removes_and_a_missing_object_is_not_found() {
    let s = store("delete");
    let os = s.object_store();
    s.put("gone.json", b"x".to_vec()).await.unwrap();
    s.delete("gone.json").await.unwrap();
    assert_eq!(s.get("gone.json").await.unwrap(), None);
    assert!(s.list("").await.unwrap().is_empty());
    // The crate's delete takes a missing object as done; the client says
    // NotFound, as GCS does.
    s.delete("gone.json").await.unwrap();
    let err = os.delete(&s.path("gone.json")).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn a_large_upload_goes_up_in_parts_and_arrives_whole() {
    let s = store("multipart");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big");
    // Over the 5 MiB part size of `Store::upload`: three parts.
    let data: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&f, &data).unwrap();
    assert_eq!(
        s.upload(&f, "raw/big.bin").await.unwrap(),
        data.len() as u64
    );
    let back = s.get("raw/big.bin").await.unwrap().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the bytes differ");
    let meta = s.object_store().head(&s.path("raw/big.bin")).await.unwrap();
    assert_eq!(meta.size, data.len() as u64);

    // An upload that is aborted leaves nothing.
    let os = s.object_store();
    let mut upload = os.put_multipart(&s.path("raw/aborted.bin")).await.unwrap();
    upload
        .put_part(PutPayload::from(vec![1u8; 5 << 20]))
        .await
        .unwrap();
    upload.abort().await.unwrap();
    assert_eq!(s.get("raw/aborted.bin").await.unwrap(), None);

    // WriteMultipart, parts written as they fill.
    let upload = os.put_multipart(&s.path("raw/written.bin")).await.unwrap();
    let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, 5 << 20);
    w.write(&data[..7 << 20]);
    w.write(&data[7 << 20..]);
    let put = w.finish().await.unwrap();
    assert!(put.version.is_some(), "a generation: {put:?}");
    assert!(s.get("raw/written.bin").await.unwrap().unwrap() == data);
    wipe(&s).await;
}

#[tokio::test]
async fn a_conditional_create_is_refused_the_second_time() {
    let s = store("create");
    assert_eq!(
        s.create("leases/a.json", b"first".to_vec()).await.unwrap(),
        Created::Yes
    );
    assert_eq!(
        s.create("leases/a.json", b"second".to_vec()).await.unwrap(),
        Created::AlreadyExists
    );
    assert!(!s
        .put_if_absent("leases/a.json", b"third".to_vec())
        .await
        .unwrap());
    assert_eq!(
        &s.get("leases/a.json").await.unwrap().unwrap()[..],
        b"first"
    );

    let err = s
        .object_store()
        .put_opts(
            &s.path("leases/a.json"),
            PutPayload::from_static(b"x"),
            PutMode::Create.into(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{err}"
    );
    wipe(&s).await;
}

#[tokio::test]
async fn a_conditional_update_with_a_stale_version_is_refused() {
    let s = store("update");
    let os = s.object_store();
    let path = s.path("ledger/day.json");
    let v1 = os
        .put(&path, PutPayload::from_static(b"one"))
        .await
        .unwrap();
    let update = |v: &object_store::PutResult| PutOptions {
        mode: PutMode::Update(UpdateVersion {
            e_tag: v.e_tag.clone(),
            version: v.version.clone(),
        }),
        ..Default::default()
    };
    let v2 = os
        .put_opts(&path, PutPayload::from_static(b"two"), update(&v1))
        .await
        .unwrap();
    assert_ne!(v1.version, v2.version, "each write is a new generation");
    let err = os
        .put_opts(&path, PutPayload::from_static(b"stale"), update(&v1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::Precondition { .. }),
        "{err}"
    );
    assert_eq!(
        &s.get("ledger/day.json").await.unwrap().unwrap()[..],
        b"two"
    );
    let head = os.head(&path).await.unwrap();
    assert_eq!(head.version, v2.version);
    wipe(&s).await;
}

#[tokio::test]
async fn an_object_written_through_xml_is_the_one_the_json_api_reads() {
    // The BigQuery emulator reads load sources through the JSON API.
    let s = store("json_api");
    s.put("a/b.json", b"{\"x\":1}".to_vec()).await.unwrap();
    let name = format!("{}/a/b.json", prefix("json_api"));
    let url = format!(
        "{}/storage/v1/b/{}/o/{}?alt=media",
        stack::gcs_endpoint(),
        stack::GCS_BUCKET,
        url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    );
    let body = reqwest::get(&url).await.unwrap();
    assert_eq!(body.status(), 200, "{url}");
    assert_eq!(&body.bytes().await.unwrap()[..], b"{\"x\":1}");
    wipe(&s).await;
}

/// `four_workers_share_one_backfill_through_leases` (in `stack_engine`)
/// with the ledger and the leases in a `gs://` bucket, as production
/// keeps them: the leases' conditional creates are GCS's
/// `x-goog-if-generation-match: 0`.
#[tokio::test(flavor = "multi_thread")]
async fn four_workers_share_one_backfill_through_leases_on_gcs() {
    stack::mongo().await;
    require_gcs();
    let database = format!("it_workers_gcs_{}", std::process::id());
    let mut project = common::Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
    project.edit(
        "etl.yaml",
        "?directConnection=true",
        "?directConnection=true&serverSelectionTimeoutMS=2000",
    );
    for p in ["users", "products"] {
        let spec = format!("pipelines/{p}.yaml");
        project.edit(&spec, "database: shop", &format!("database: {database}"));
    }
    project.edit(
        "pipelines/users.yaml",
        "dataset: etl_demo",
        &format!("dataset: {database}"),
    );
    let state_prefix = prefix("workers");
    project.edit(
        "etl.yaml",
        "  url: .etl/state\n",
        &format!(
            "  url: gs://{bucket}/{state_prefix}
  options:
    google_service_account_key: '{{{{ env(\"ETL_GCS_KEY\") }}}}'
",
            bucket = stack::GCS_BUCKET,
        ),
    );
    project.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
    project.set_env("ETL_BQ_ENDPOINT", &stack::bq_endpoint());
    project.set_env("ETL_GCS_KEY", &stack::gcs_service_account_key());
    let state = leases::StateStore::on(
        Arc::new(gcs()),
        &state_prefix,
        &format!("the stack's GCS server at {}", stack::gcs_endpoint()),
    )
    .await;
    project.ok(&[
        "demo",
        "--database",
        &database,
        "--users",
        "1000",
        "--orders",
        "10",
        "--products",
        "1000",
    ]);

    let uri = format!(
        "mongodb://127.0.0.1:{}/?directConnection=true",
        stack::mongo_port()
    );
    leases::four_workers_share_a_backfill(&project, &database, &uri, &state).await;
    assert!(
        !project.path().join(".etl/state").exists(),
        "nothing of the ledger is written locally"
    );
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    client.database(&database).drop().await.unwrap();
    wipe(&store("workers")).await;
}
