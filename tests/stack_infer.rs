//! `etl infer` on collections shaped like real ones that nobody here
//! designed (issue 28), on the stack's MongoDB: FerretDB, then
//! mongo-java-server in the test command's second pass. Years of sparse
//! history, an object used as a map with pre-1970 dates beside it, `_id`
//! as the only date with the real ones inside an array, and a partition
//! field that is sometimes missing or a string. Each test seeds a database
//! of its own and drops it; drafts load into a Parquet dataset, since the
//! subject is the draft, not BigQuery.

mod common;

use std::process::Output;

use bson::{doc, Document};
use chrono::NaiveDate;
use common::stack;

/// A project with the local stack's MongoDB, a lake and a Parquet
/// warehouse, and no BigQuery: `infer` drafts for Parquet.
const PROJECT: &str = r#"version: 1
default_profile: local
state:
  url: .etl/state
  staging_dir: .etl/staging
profiles:
  local:
    connections:
      mongo:
        type: mongodb
        uri: mongodb://127.0.0.1:{{ env("ETL_MONGO_PORT", "27017") }}/?directConnection=true&serverSelectionTimeoutMS=2000
      lake:
        type: object_store
        url: .etl/lake
      warehouse_files:
        type: object_store
        url: .etl/warehouse
"#;

struct Infer {
    project: common::Project,
    database: String,
    client: mongodb::Client,
}

impl Infer {
    async fn new(tag: &str) -> Self {
        let client = stack::mongo().await;
        let database = format!("it_infer_{tag}_{}", std::process::id());
        client.database(&database).drop().await.unwrap();
        let mut project = common::Project::empty();
        project.write("etl.yaml", PROJECT);
        project.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
        Self {
            project,
            database,
            client,
        }
    }

    async fn insert(&self, collection: &str, docs: Vec<Document>) {
        let c = self
            .client
            .database(&self.database)
            .collection::<Document>(collection);
        for chunk in docs.chunks(500) {
            c.insert_many(chunk.to_vec()).await.unwrap();
        }
    }

    fn infer(&self, collection: &str, more: &[&str]) -> Output {
        let mut args = vec![
            "infer",
            "--database",
            &self.database,
            "--collection",
            collection,
        ];
        args.extend_from_slice(more);
        self.project.etl(&args)
    }

    /// Exit code and output, with the names that differ from run to run
    /// (database, port) replaced.
    fn transcript(&self, out: &Output) -> String {
        mask_seconds(&common::transcript(out))
            .replace(&self.database, "[DB]")
            .replace(
                &format!("127.0.0.1:{}", stack::mongo_port()),
                "127.0.0.1:[PORT]",
            )
    }

    /// The draft `infer` wrote.
    fn draft(&self, name: &str) -> String {
        self.project.read(&format!("pipelines/{name}.yaml"))
    }

    async fn drop(self) {
        self.client.database(&self.database).drop().await.unwrap();
    }
}

/// `took 3.1 s: span 0.2 s, ...` with each `N.N s` as `[T] s`: times
/// differ from run to run.
fn mask_seconds(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" s") {
        let (head, tail) = rest.split_at(at);
        let number = head
            .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map_or(head, |i| &head[i + 1..]);
        let timed = number.contains('.') && number.len() >= 3;
        out.push_str(&head[..head.len() - if timed { number.len() } else { 0 }]);
        if timed {
            out.push_str("[T]");
        }
        out.push_str(" s");
        rest = &tail[2..];
    }
    out.push_str(rest);
    out
}

/// The server the test runs on, for snapshots whose numbers differ by
/// server (Decimal128 exists only on mongo-java-server).
fn server() -> &'static str {
    if stack::on_fast_server() {
        "mongo-java-server"
    } else {
        "ferretdb"
    }
}

fn at(day: NaiveDate, hour: u32) -> bson::DateTime {
    bson::DateTime::from_millis(
        day.and_hms_opt(hour, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis(),
    )
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// Store sales over three years, two a day every third day, inserted
/// today (so `_id` says nothing of their dates). A catch-up from the
/// draft's `start_date` must cover all three years: the first day with
/// data, found in two sorted queries, not the newest day.
#[tokio::test(flavor = "multi_thread")]
async fn years_of_sparse_history_draft_from_the_first_day_with_data() {
    let t = Infer::new("sales").await;
    let mut docs = Vec::new();
    let mut day = d(2013, 1, 1);
    let mut i = 0i64;
    while day <= d(2015, 12, 31) {
        for hour in [10, 15] {
            let items: Vec<Document> = (0..1 + i % 3)
                .map(|k| {
                    doc! {
                        "sku": format!("s{}", (i + k) % 17),
                        "quantity": (1 + k) as i32,
                        "tags": (["office", "school"][..(1 + (k % 2)) as usize]).to_vec(),
                    }
                })
                .collect();
            let mut sale = doc! {
                "_id": bson::oid::ObjectId::new(),
                "saleDate": at(day, hour),
                "storeLocation": (["Denver", "Seattle", "London"][(i % 3) as usize]),
                "items": items,
                "customer": { "age": (20 + i % 50) as i32, "email": format!("c{i}@example.com") },
                "couponUsed": i % 4 == 0,
            };
            if stack::on_fast_server() {
                // FerretDB cannot store Decimal128.
                sale.insert(
                    "total",
                    format!("{}.{:02}", 10 + i % 90, i % 100)
                        .parse::<bson::Decimal128>()
                        .unwrap(),
                );
            }
            docs.push(sale);
            i += 1;
        }
        day = day + chrono::Days::new(3);
    }
    let total = docs.len();
    assert_eq!(total, 730);
    t.insert("sales", docs).await;

    let out = t.infer("sales", &[]);
    insta::with_settings!({ snapshot_suffix => server() }, {
        insta::assert_snapshot!(t.transcript(&out));
    });
    let draft = t.draft("sales");
    assert!(draft.contains("start_date: \"2013-01-01\""), "{draft}");
    assert!(
        draft.contains("path: \"$.items\"\n        policy: explode"),
        "{draft}"
    );
    assert!(
        draft.contains("# Drafted by `etl infer` from all 730 documents of"),
        "{draft}"
    );
    if stack::on_fast_server() {
        // Decimal128 prices lock as NUMERIC, exact.
        let lock: serde_json::Value =
            serde_json::from_str(&t.project.read("schemas/tables/sales.json")).unwrap();
        let total = lock["tables"]["sales"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "total")
            .unwrap_or_else(|| panic!("{lock}"));
        assert_eq!(total["type"], "numeric", "{lock}");
    }

    // A smaller sample reads windows over the whole span, not its end.
    let out = t.infer("sales", &["--sample", "100", "--force"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", t.transcript(&out));
    assert!(
        stdout.contains("read a sample of 100 of 730 documents: up to 5 from each of 20 windows of about 55 days, 2013-01-01 to 2015-12-29"),
        "{stdout}"
    );
    let draft = t.draft("sales");
    assert!(draft.contains("start_date: \"2013-01-01\""), "{draft}");
    assert!(
        draft.contains("from a sample of 100 of the 730 documents"),
        "{draft}"
    );

    // The draft loads the first week as it is: 3 days with data, 6 sales.
    let run = t.project.ok(&[
        "run",
        "pipelines/sales.yaml",
        "--start",
        "2013-01-01",
        "--end",
        "2013-01-07",
    ]);
    assert!(run.contains("7 done"), "{run}");
    let loaded: u64 = (1..=7)
        .map(|n| {
            let rec = common::ledger_record(t.project.path(), "sales", &format!("2013-01-0{n}"));
            rec["warehouse_rows"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(loaded, 6);

    // With a range, the range limits what is read and where it starts.
    let out = t.infer(
        "sales",
        &["--start", "2014-01-01", "--end", "2014-12-31", "--force"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", t.transcript(&out));
    assert!(
        stdout.contains("data from 2014-01-02 to 2014-12-31 (364 days): 244 documents"),
        "{stdout}"
    );
    assert!(t.draft("sales").contains("start_date: \"2014-01-01\""));

    t.drop().await;
}

/// Bank customers: `tier_and_details` is keyed by 32-hex-digit ids, about
/// one per customer, and birth dates start in 1966. The draft keeps the
/// map to one JSON column (not a column per key), starts before 1970, and
/// loads a pre-1970 day.
#[tokio::test(flavor = "multi_thread")]
async fn an_object_used_as_a_map_is_one_json_column() {
    let t = Infer::new("customers").await;
    let docs: Vec<Document> = (0..300i64)
        .map(|i| {
            let id = format!("{:032x}", 0x5cb8_7a3e_0000_0000_0000u128 + (i as u128) * 104_729);
            doc! {
                "_id": bson::oid::ObjectId::new(),
                "username": format!("user{i}"),
                "birthdate": at(d(1966, 7, 29) + chrono::Days::new((i * 37) as u64), 6),
                "accounts": (0..1 + i % 3).map(|a| (100_000 + i * 10 + a) as i32).collect::<Vec<_>>(),
                "address": { "street": format!("{i} Main St"), "city": "Springfield" },
                "tier_and_details": {
                    id.clone(): { "tier": (["Bronze", "Silver", "Gold"][(i % 3) as usize]), "id": id, "active": i % 5 != 0, "benefits": ["airline lounge access"] }
                },
            }
        })
        .collect();
    t.insert("customers", docs).await;

    let out = t.infer("customers", &[]);
    insta::assert_snapshot!(t.transcript(&out));
    let draft = t.draft("customers");
    assert!(
        draft.contains("  objects:\n    - path: \"$.tier_and_details\"\n      policy: json\n"),
        "{draft}"
    );
    assert!(draft.contains("start_date: \"1966-07-29\""), "{draft}");
    let lock: serde_json::Value =
        serde_json::from_str(&t.project.read("schemas/tables/customers.json")).unwrap();
    let columns: Vec<&str> = lock["tables"]["customers"]["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("{lock}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "_ds",
            "_id",
            "username",
            "birthdate",
            "accounts",
            "address__street",
            "address__city",
            "tier_and_details"
        ]
    );

    // The first customer's day, before 1970, loads with its map as JSON.
    t.project
        .ok(&["run", "pipelines/customers.yaml", "--date", "1966-07-29"]);
    let rec = common::ledger_record(t.project.path(), "customers", "1966-07-29");
    assert_eq!(rec["warehouse_rows"], 1, "{rec}");
    assert_eq!(rec["status"], "done", "{rec}");

    t.drop().await;
}

/// Restaurants bulk-loaded in seconds: every ObjectId is from the load,
/// and the only dates are inside `grades`. `_id` would put the whole
/// collection in one day, so infer refuses, naming `grades[].date`;
/// `--partition-field _id` drafts anyway.
#[tokio::test(flavor = "multi_thread")]
async fn object_ids_of_a_bulk_load_are_refused_with_the_dates_inside_arrays() {
    let t = Infer::new("restaurants").await;
    let docs: Vec<Document> = (0..200i64)
        .map(|i| {
            doc! {
                "_id": bson::oid::ObjectId::new(),
                "name": format!("Restaurant {i}"),
                "cuisine": (["Bakery", "Irish", "Thai"][(i % 3) as usize]),
                "address": { "building": format!("{}", 100 + i), "street": "Morris Park Ave", "zipcode": "10462" },
                "grades": (0..1 + i % 4).map(|g| doc! {
                    "date": at(d(2011, 3, 1) + chrono::Days::new((i * 7 + g * 200) as u64), 0),
                    "grade": "A",
                    "score": (g + i % 10) as i32,
                }).collect::<Vec<_>>(),
            }
        })
        .collect();
    t.insert("restaurants", docs).await;

    let out = t.infer("restaurants", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", t.transcript(&out));
    assert!(!t.project.path().join("pipelines/restaurants.yaml").exists());
    insta::with_settings!({
        filters => vec![
            (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", "[TIME]"),
            (r"within \d+ s", "within [N] s"),
        ],
    }, {
        insta::assert_snapshot!(t.transcript(&out));
    });

    let out = t.infer("restaurants", &["--partition-field", "_id"]);
    assert!(out.status.success(), "{}", t.transcript(&out));
    assert!(t
        .draft("restaurants")
        .contains("field: _id\n  kind: object_id"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(1 day): 200 documents"), "{stdout}");

    t.drop().await;
}

/// Events whose `created_at` is a date in most documents, missing in some
/// and a string in others: the draft says how many no day can select,
/// and why, from exact counts.
#[tokio::test(flavor = "multi_thread")]
async fn a_partition_field_sometimes_missing_or_a_string_is_counted() {
    let t = Infer::new("events").await;
    let mut docs: Vec<Document> = (0..100i64)
        .map(|i| {
            doc! {
                "_id": bson::oid::ObjectId::new(),
                "created_at": at(d(2020, 6, 1) + chrono::Days::new((i % 10) as u64), (i % 24) as u32),
                "kind": "click",
            }
        })
        .collect();
    docs.extend((0..12).map(|_| doc! { "_id": bson::oid::ObjectId::new(), "kind": "view" }));
    docs.extend((0..8i64).map(|i| {
        doc! { "_id": bson::oid::ObjectId::new(), "created_at": format!("2020-06-0{} 10:00", 1 + i % 9), "kind": "legacy" }
    }));
    t.insert("events", docs).await;

    let out = t.infer("events", &[]);
    assert!(out.status.success(), "{}", t.transcript(&out));
    insta::assert_snapshot!(t.transcript(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("warning: 20 of 120 documents have no `created_at` date that a day can select, so no run loads them; of the 120 documents: 100 of kind date, missing 12, string that is not a date 8"),
        "{stdout}"
    );

    t.drop().await;
}

/// A spec written without `flatten.objects` meets a map: the run still
/// adds a column per key (`on_new_field: add` says so), but warns with the
/// rule to add; with the rule, the map is one column and nothing warns.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_warns_when_a_map_adds_a_column_per_key() {
    let t = Infer::new("map_run").await;
    let docs: Vec<Document> = (0..30i64)
        .map(|i| {
            let key = format!("{:024x}", 0x6f1c_0000_0000u128 + (i as u128) * 7_919);
            doc! {
                "_id": i,
                "at": at(d(2020, 6, 1), (i % 24) as u32),
                "scores_by_user": { key: { "score": i as i32, "seen": true } },
            }
        })
        .collect();
    t.insert("profiles", docs).await;
    let spec = |objects: &str| {
        format!(
            "version: 1
name: profiles
source: {{ connection: mongo, database: {db}, collection: profiles }}
partition: {{ field: at, kind: date, start_date: \"2020-06-01\" }}
flatten:{objects}
sinks:
  lake: {{ connection: lake, path: \"raw/profiles/dt={{{{ ds }}}}/profiles.jsonl.gz\" }}
  warehouse: {{ type: parquet, connection: warehouse_files, path: \"{{{{ pipeline }}}}\" }}
",
            db = t.database
        )
    };
    t.project.write("pipelines/profiles.yaml", &spec(" {}"));
    let out = t
        .project
        .etl(&["run", "pipelines/profiles.yaml", "--date", "2020-06-01"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", t.transcript(&out));
    assert!(
        stderr.contains("60 new columns under `scores_by_user`, whose keys look like ids (0000000000006f1c00000000, "),
        "{stderr}"
    );
    assert!(
        stderr.contains("keep it as one JSON column with `flatten.objects: [{path: \"$.scores_by_user\", policy: json}]`"),
        "{stderr}"
    );

    t.project.write(
        "pipelines/profiles.yaml",
        &spec("\n  objects: [{ path: $.scores_by_user, policy: json }]"),
    );
    let out = t.project.etl(&[
        "run",
        "pipelines/profiles.yaml",
        "--date",
        "2020-06-01",
        "--rerun",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", t.transcript(&out));
    assert!(!stderr.contains("new columns under"), "{stderr}");
    let rec = common::ledger_record(t.project.path(), "profiles", "2020-06-01");
    assert_eq!(rec["warehouse_rows"], 30, "{rec}");

    t.drop().await;
}
