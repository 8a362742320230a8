//! Crash trials on the local stack: a backfill of the three demo
//! pipelines (BigQuery for `users` and `orders`, Parquet for `products`)
//! is killed, then a plain catch-up run must leave exactly what a clean run
//! leaves:
//! - lake objects byte-identical to the clean run's;
//! - per day and per table, the clean run's warehouse counts (the main
//!   end-to-end test checks those against MongoDB), with no duplicate key;
//! - no staging files, and `etl status` clean.
//!
//! Each trial kills the run either at a crash point (`ETL_CRASH_AT`, see
//! `src/engine/crash.rs`: during the extract, after the lake upload, during
//! a BigQuery staging script, between the load and the ledger write) or
//! with SIGKILL after a random delay. Trials are drawn from a seed, printed
//! first, so that a failure can be replayed:
//!
//! ```sh
//! ETL_CRASH_SEED=1234 ETL_CRASH_TRIALS=20 cargo test --release --features test-hooks --test stack_crash -- --nocapture
//! ```
//!
//! The project runs in the shipped `local` profile: the lake, the Parquet
//! dataset and the ledger are `gs://` prefixes in its buckets on the
//! stack's GCS server (gcs-front), as production keeps them; or with
//! `ETL_CRASH_LAKE=files`, local folders. `stack/test.sh` runs the trials
//! on both.
//!
//! The backfill is `ETL_CRASH_DAYS` days (3 unless set: the smallest that
//! reaches every point more than once, each pipeline's days running beside
//! the others'); the arrival drawn for each point scales with it.
//! `stack/crash-trials.sh` runs the long version: 20 trials of 10 days.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{stack, text};
use rand::{Rng, SeedableRng};

const PIPELINES: [&str; 3] = [
    "pipelines/users.yaml",
    "pipelines/orders.yaml",
    "pipelines/products.yaml",
];
/// The BigQuery tables, with the key that must be unique per day.
const BQ_TABLES: [(&str, &str); 3] = [
    ("users", "_id"),
    ("orders", "_id"),
    (
        "orders__items",
        "CONCAT(_root_id, ':', CAST(_idx AS STRING))",
    ),
];
/// The first day of the backfill, the demo's first.
const FIRST_DAY: &str = "2020-06-01";
/// The demo's documents per day, as in `stack/demo.sh` (300 users, 400
/// orders and 200 products over 10 days).
const PER_DAY: [(&str, u64); 3] = [("users", 30), ("orders", 40), ("products", 20)];

/// How a trial stops the run.
#[derive(Debug, Clone)]
enum Kill {
    /// `ETL_CRASH_AT=point:n`.
    At(&'static str, u64),
    /// SIGKILL after this long.
    After(Duration),
}

/// What a run left, as the checks compare it.
#[derive(Debug, PartialEq, Eq)]
struct Landed {
    lake: BTreeMap<String, Vec<u8>>,
    /// (table, day) to (rows, distinct keys).
    warehouse: BTreeMap<(String, String), (u64, u64)>,
}

struct Trials {
    project: common::Project,
    dataset: String,
    /// The `local` profile's buckets, when the lake, the Parquet dataset
    /// and the ledger are on GCS (else folders under `.etl/`).
    buckets: Option<common::Buckets>,
    /// The day after the backfill's last: "today", so that a catch-up
    /// covers exactly the backfill.
    today: String,
}

impl Trials {
    fn etl(&self, args: &[&str]) -> std::process::Command {
        let mut c = self.project.command(args);
        c.env("ETL_TODAY", &self.today);
        c
    }

    fn run_args() -> Vec<&'static str> {
        let mut args = vec!["run"];
        args.extend(PIPELINES);
        args.extend(["--parallel", "3", "--retries", "0"]);
        args
    }

    /// Everything a run leaves, gone: lake, warehouses, ledger, staging.
    async fn reset(&self) {
        for dir in ["lake", "warehouse", "state", "staging"] {
            let _ = std::fs::remove_dir_all(self.project.path().join(".etl").join(dir));
        }
        if let Some(b) = &self.buckets {
            for store in [&b.lake, &b.warehouse, &b.state] {
                for rel in store.list("").await.unwrap() {
                    store.delete(&rel).await.unwrap();
                }
            }
        }
        let emulator = stack::Emulator::require().await;
        for (table, _) in BQ_TABLES {
            emulator.drop_table(&self.dataset, table).await;
        }
    }

    async fn landed(&self) -> Landed {
        let root = self.project.path().join(".etl");
        let mut warehouse = BTreeMap::new();
        for (table, key) in BQ_TABLES {
            let rows = stack::bq_rows(&format!(
                "SELECT CAST(_ds AS STRING), COUNT(*), COUNT(DISTINCT {key}) FROM `{}.{}.{table}` GROUP BY _ds ORDER BY _ds",
                stack::BQ_PROJECT, self.dataset
            ))
            .await;
            for r in rows {
                warehouse.insert(
                    (table.to_owned(), r[0].clone()),
                    (r[1].parse().unwrap(), r[2].parse().unwrap()),
                );
            }
        }
        let parquet = match &self.buckets {
            Some(b) => b.objects(&b.warehouse, "products").await,
            None => common::files_under(&root.join("warehouse/products")),
        };
        for (day, ids) in parquet_ids(parquet) {
            let distinct = ids.iter().collect::<BTreeSet<_>>().len() as u64;
            warehouse.insert(("products".to_owned(), day), (ids.len() as u64, distinct));
        }
        let lake = match &self.buckets {
            Some(b) => b.lake_objects().await,
            None => common::files_under(&root.join("lake")),
        };
        Landed { lake, warehouse }
    }
}

/// Per day (`dt=` folder), the `_id` of every row of the Parquet files
/// (paths below the dataset, with their bytes).
fn parquet_ids(files: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<String>> {
    use arrow_array::{Array, StringArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (file, bytes) in files {
        if !file.ends_with(".parquet") {
            continue;
        }
        let day = file
            .split('/')
            .next()
            .unwrap()
            .trim_start_matches("dt=")
            .to_owned();
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
        let mask = ProjectionMask::columns(builder.parquet_schema(), ["_id"]);
        let ids = out.entry(day).or_default();
        for batch in builder.with_projection(mask).build().unwrap() {
            let batch = batch.unwrap();
            let col = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            ids.extend((0..col.len()).map(|i| col.value(i).to_owned()));
        }
    }
    out
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

/// The trials of `seed`: each crash point once (at a drawn arrival), then
/// random-time kills, `count` in all. A backfill of `days` days reads
/// 90 documents a day and reaches each other point at least 3 times a
/// day (a day of each pipeline; `orders` has two BigQuery tables), so the
/// arrivals stay below what a run reaches.
fn draw(seed: u64, count: usize, days: u64, clean: Duration) -> Vec<Kill> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let documents = 60 * days;
    let arrivals = (5 * days / 2).max(1);
    let mut kills = Vec::new();
    for i in 0..count {
        let kill = match i % 6 {
            0 => Kill::At("extract", rng.gen_range(1..=documents)),
            1 => Kill::At("lake_uploaded", rng.gen_range(1..=arrivals)),
            2 => Kill::At("bigquery_script", rng.gen_range(1..=arrivals)),
            3 => Kill::At("loaded", rng.gen_range(1..=arrivals)),
            _ => Kill::After(Duration::from_millis(
                rng.gen_range(200..clean.as_millis().max(400) as u64),
            )),
        };
        kills.push(kill);
    }
    kills
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_backfill_then_a_catch_up_equals_a_clean_run() {
    stack::mongo().await;
    let database = format!("it_crash_{}", std::process::id());
    let mut project = common::Project::with(&["etl.yaml", "pipelines", "schemas/tables"]);
    project.edit(
        "etl.yaml",
        "?directConnection=true",
        "?directConnection=true&serverSelectionTimeoutMS=2000",
    );
    for spec in PIPELINES {
        project.edit(spec, "database: shop", &format!("database: {database}"));
        if spec != "pipelines/products.yaml" {
            project.edit(spec, "dataset: etl_demo", &format!("dataset: {database}"));
        }
    }
    project.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
    project.set_env("ETL_BQ_ENDPOINT", &stack::bq_endpoint());
    let days = env_number("ETL_CRASH_DAYS").unwrap_or(3);
    assert!(
        (1..=30).contains(&days),
        "ETL_CRASH_DAYS is 1 to 30, not {days}"
    );
    let first = chrono::NaiveDate::parse_from_str(FIRST_DAY, "%Y-%m-%d").unwrap();
    let last = first + chrono::Days::new(days - 1);
    let buckets = match std::env::var("ETL_CRASH_LAKE").as_deref() {
        Ok("gcs") | Err(_) => Some(project.on_gcs(&format!("it_crash/{database}"))),
        Ok("files") => None,
        Ok(other) => panic!("ETL_CRASH_LAKE is `gcs` or `files`, not `{other}`"),
    };
    let trials = Trials {
        project,
        dataset: database.clone(),
        buckets,
        today: (last + chrono::Days::new(1)).to_string(),
    };
    let mut demo = vec![
        "demo".to_owned(),
        "--database".to_owned(),
        database.clone(),
        "--start".to_owned(),
        FIRST_DAY.to_owned(),
        "--end".to_owned(),
        last.to_string(),
    ];
    for (collection, per_day) in PER_DAY {
        demo.push(format!("--{collection}"));
        demo.push((per_day * days).to_string());
    }
    let demo: Vec<&str> = demo.iter().map(String::as_str).collect();
    let seed_out = trials.etl(&demo).output().unwrap();
    assert!(seed_out.status.success(), "{}", text(&seed_out));

    // The clean run: what every trial must end with.
    trials.reset().await;
    let started = Instant::now();
    let clean = trials.etl(&Trials::run_args()).output().unwrap();
    let clean_time = started.elapsed();
    assert!(clean.status.success(), "{}", text(&clean));
    let reference = trials.landed().await;
    assert_eq!(
        reference
            .warehouse
            .keys()
            .filter(|(t, _)| t == "users")
            .count(),
        days as usize,
        "the clean run loads {days} days of users: {:?}",
        reference.warehouse.keys()
    );
    let raw = reference
        .lake
        .keys()
        .filter(|k| k.starts_with("raw/"))
        .count();
    assert!(
        raw >= 3 * days as usize,
        "the clean run archives each pipeline's days in the lake: {:?}",
        reference.lake.keys()
    );
    for ((table, day), (rows, distinct)) in &reference.warehouse {
        assert!(
            *rows > 0 && rows == distinct,
            "{table} {day}: {rows} rows, {distinct} keys"
        );
    }

    let seed = env_number("ETL_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    });
    let count = env_number("ETL_CRASH_TRIALS").unwrap_or(5) as usize;
    let kills = draw(seed, count, days, clean_time);
    eprintln!(
        "crash trials: seed {seed}, {count} trials of a {days}-day backfill, the lake {lake} (replay with ETL_CRASH_SEED={seed} ETL_CRASH_TRIALS={count} ETL_CRASH_DAYS={days} ETL_CRASH_LAKE={kind}); the clean run took {:.1}s",
        clean_time.as_secs_f64(),
        lake = match &trials.buckets {
            Some(b) => format!("{}, the Parquet dataset and the ledger in buckets", b.lake.display("")),
            None => ".etl/lake".to_owned(),
        },
        kind = if trials.buckets.is_some() { "gcs" } else { "files" },
    );

    for (i, kill) in kills.iter().enumerate() {
        let label = format!("trial {}/{count} (seed {seed}): {kill:?}", i + 1);
        trials.reset().await;
        let mut cmd = trials.etl(&Trials::run_args());
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let outcome = match kill {
            Kill::At(point, n) => {
                let out = cmd
                    .env("ETL_CRASH_AT", format!("{point}:{n}"))
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    stderr.contains(&format!("crash point `{point}` reached"))
                        && !out.status.success(),
                    "{label}: the run did not crash at its point ({:?}):\n{stderr}",
                    out.status
                );
                "crashed at its point".to_owned()
            }
            Kill::After(delay) => {
                let mut child = cmd.spawn().unwrap();
                std::thread::sleep(*delay);
                match child.try_wait().unwrap() {
                    Some(status) => format!("had ended ({status}) before the kill"),
                    None => {
                        child.kill().unwrap();
                        child.wait().unwrap();
                        "killed".to_owned()
                    }
                }
            }
        };

        let mut catch_up = vec!["run"];
        catch_up.extend(PIPELINES);
        let healed = trials.etl(&catch_up).output().unwrap();
        assert!(
            healed.status.success(),
            "{label}: the catch-up failed:\n{}",
            text(&healed)
        );
        let landed = trials.landed().await;
        if landed.lake != reference.lake {
            let differ: Vec<&String> = reference
                .lake
                .keys()
                .chain(landed.lake.keys())
                .filter(|k| reference.lake.get(*k) != landed.lake.get(*k))
                .collect();
            panic!("{label}: the lake differs from the clean run's: {differ:?}");
        }
        assert_eq!(
            landed.warehouse, reference.warehouse,
            "{label}: the warehouse differs"
        );
        let staged = common::files_under(&trials.project.path().join(".etl/staging"));
        assert!(
            staged.is_empty(),
            "{label}: staging left behind: {:?}",
            staged.keys()
        );
        let mut status_args = vec!["status"];
        status_args.extend(PIPELINES);
        let status = trials.etl(&status_args).output().unwrap();
        assert!(
            status.status.success(),
            "{label}: `etl status` is not clean:\n{}",
            text(&status)
        );
        eprintln!("{label}: {outcome}; the catch-up left what a clean run leaves");
    }
    trials.reset().await;
}
