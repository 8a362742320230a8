//! `etl replay` on the local stack: warehouse partitions rebuilt from the
//! lake's raw objects alone, with MongoDB's database dropped first, on
//! both warehouses (BigQuery for `users`, Parquet for `products`); and the
//! days whose manifest is missing or whose object does not match it
//! refused, with nothing loaded.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use common::{stack, text};

const DAYS: [&str; 3] = ["2020-06-01", "2020-06-02", "2020-06-03"];

/// What a person compares in BigQuery: per day, the rows, the distinct
/// keys, and sums and extremes over a few columns.
async fn bq_fingerprint(dataset: &str) -> Vec<Vec<String>> {
    stack::bq_rows(&format!(
        "SELECT CAST(_ds AS STRING), COUNT(*), COUNT(DISTINCT user_key), SUM(loyalty_points), \
         MIN(email), MAX(email), CAST(SUM(balance) AS STRING) \
         FROM `{}.{dataset}.users` GROUP BY _ds ORDER BY _ds",
        stack::BQ_PROJECT
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_rebuilds_both_warehouses_from_the_lake_alone_and_refuses_what_does_not_match() {
    let mongo = stack::mongo().await;
    let database = format!("it_replay_{}", std::process::id());
    let mut p = common::Project::with(&[
        "etl.yaml",
        "pipelines/users.yaml",
        "pipelines/products.yaml",
        "schemas/tables",
    ]);
    p.edit(
        "etl.yaml",
        "?directConnection=true",
        "?directConnection=true&serverSelectionTimeoutMS=2000",
    );
    for spec in ["pipelines/users.yaml", "pipelines/products.yaml"] {
        p.edit(spec, "database: shop", &format!("database: {database}"));
    }
    p.edit(
        "pipelines/users.yaml",
        "dataset: etl_demo",
        &format!("dataset: {database}"),
    );
    p.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
    p.set_env("ETL_BQ_ENDPOINT", &stack::bq_endpoint());
    p.ok(&[
        "demo",
        "--database",
        &database,
        "--users",
        "400",
        "--orders",
        "1",
        "--products",
        "400",
    ]);
    let pipelines = ["pipelines/users.yaml", "pipelines/products.yaml"];
    let range = ["--start", DAYS[0], "--end", DAYS[2]];
    let run: Vec<&str> = ["run"]
        .iter()
        .chain(&pipelines)
        .chain(&range)
        .copied()
        .collect();
    p.ok(&run);

    let lake = common::files_under(&p.path().join(".etl/lake"));
    let parquet = common::files_under(&p.path().join(".etl/warehouse/products"));
    let bigquery = bq_fingerprint(&database).await;
    assert_eq!(bigquery.len(), 3, "{bigquery:?}");
    assert!(
        parquet.keys().filter(|f| f.ends_with(".parquet")).count() >= 3,
        "{:?}",
        parquet.keys()
    );

    // The source is gone, and so are both warehouses' copies.
    mongo.database(&database).drop().await.unwrap();
    std::fs::remove_dir_all(p.path().join(".etl/warehouse/products")).unwrap();
    let emulator = stack::Emulator::require().await;
    emulator.drop_table(&database, "users").await;

    let replay: Vec<&str> = ["replay"]
        .iter()
        .chain(&pipelines)
        .chain(&range)
        .copied()
        .collect();
    let out = p.etl(&replay);
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(summary.contains("6 done, 0 skipped"), "{summary}");

    // The lake is as it was (raw objects, manifests, rejects), the Parquet
    // files are byte for byte those of the direct run, and BigQuery holds
    // the same rows.
    assert!(
        common::files_under(&p.path().join(".etl/lake")) == lake,
        "a replay changed the lake"
    );
    let replayed = common::files_under(&p.path().join(".etl/warehouse/products"));
    assert_eq!(
        replayed.keys().collect::<Vec<_>>(),
        parquet.keys().collect::<Vec<_>>()
    );
    for (file, bytes) in &parquet {
        assert!(&replayed[file] == bytes, "{file} differs after the replay");
    }
    assert_eq!(bq_fingerprint(&database).await, bigquery);

    // Refused: a raw object that no longer matches its manifest (a line
    // dropped, then compressed again: it decodes well), and a day whose
    // manifest is gone. Neither loads anything.
    let object = |day: &str| {
        p.path().join(format!(
            ".etl/lake/raw/products/dt={day}/products-{}.jsonl.gz",
            day.replace('-', "")
        ))
    };
    let changed = object(DAYS[1]);
    let mut text_lines = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&changed).unwrap())
        .read_to_string(&mut text_lines)
        .unwrap();
    let kept: Vec<&str> = text_lines.lines().skip(1).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all((kept.join("\n") + "\n").as_bytes()).unwrap();
    std::fs::write(&changed, gz.finish().unwrap()).unwrap();
    std::fs::remove_file(p.path().join(format!(
        ".etl/lake/raw/products/dt={}/_manifest.json",
        DAYS[2]
    )))
    .unwrap();
    let before: BTreeMap<String, Vec<u8>> =
        common::files_under(&p.path().join(".etl/warehouse/products"));
    let out = p.etl(&[
        "replay",
        "pipelines/products.yaml",
        "--start",
        DAYS[1],
        "--end",
        DAYS[2],
        "--retries",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let mismatch = common::ledger_record(p.path(), "products", DAYS[1]);
    assert_eq!(mismatch["status"], "failed");
    let error = mismatch["error"].as_str().unwrap();
    assert!(
        error.contains("does not match its manifest: its sha256 is ")
            && error.contains("refusing to replay a changed or damaged object"),
        "{error}"
    );
    let missing = common::ledger_record(p.path(), "products", DAYS[2]);
    let error = missing["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "dt={}/_manifest.json: the day was never archived there",
            DAYS[2]
        )) && error.contains(&format!(
            "hint: run it from MongoDB with `etl run --date {}`",
            DAYS[2]
        )),
        "{error}"
    );
    assert!(
        common::files_under(&p.path().join(".etl/warehouse/products")) == before,
        "a refused day loaded something"
    );

    // A replay names its days.
    let out = p.etl(&["replay", "pipelines/products.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("hint: add `--date D` or `--start D --end D`"),
        "{}",
        text(&out)
    );
}

/// Rows of `products`' Parquet files of `day`, from their footers.
fn parquet_rows(dir: &std::path::Path, day: &str) -> u64 {
    use parquet::file::reader::FileReader;
    let dir = dir.join(format!(".etl/warehouse/products/dt={day}"));
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let f = std::fs::File::open(e.unwrap().path()).unwrap();
            parquet::file::serialized_reader::SerializedFileReader::new(f)
                .unwrap()
                .metadata()
                .file_metadata()
                .num_rows() as u64
        })
        .sum()
}

/// `etl replay --rejects`: the demo's products with a price or a weight
/// stored as text are rejected; once the spec declares those columns'
/// types (which converts such text), the days with rejects, and only
/// they, are rebuilt from the lake with every document loaded, MongoDB
/// untouched (its database is dropped first).
#[tokio::test(flavor = "multi_thread")]
async fn replay_rejects_reloads_the_days_with_rejects_once_the_spec_accepts_them() {
    let mongo = stack::mongo().await;
    let database = format!("it_rejects_{}", std::process::id());
    let mut p = common::Project::with(&["etl.yaml", "pipelines/products.yaml", "schemas/tables"]);
    p.edit(
        "etl.yaml",
        "?directConnection=true",
        "?directConnection=true&serverSelectionTimeoutMS=2000",
    );
    let spec = "pipelines/products.yaml";
    p.edit(spec, "database: shop", &format!("database: {database}"));
    p.set_env("ETL_MONGO_PORT", &stack::mongo_port().to_string());
    p.set_env("ETL_TODAY", "2020-06-11");
    p.ok(&[
        "demo",
        "--database",
        &database,
        "--users",
        "1",
        "--orders",
        "1",
        "--products",
        "600",
    ]);
    let range = ["--start", "2020-06-01", "--end", "2020-06-10"];
    let mut run = vec!["run", spec];
    run.extend(range);
    p.ok(&run);

    let days: Vec<String> = (1..=10).map(|d| format!("2020-06-{d:02}")).collect();
    let before: BTreeMap<&str, serde_json::Value> = days
        .iter()
        .map(|d| (d.as_str(), common::ledger_record(p.path(), "products", d)))
        .collect();
    let with_rejects: Vec<&str> = days
        .iter()
        .map(String::as_str)
        .filter(|d| before[d]["rejected"].as_u64().unwrap_or(0) > 0)
        .collect();
    let rejected: u64 = before
        .values()
        .map(|r| r["rejected"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        !with_rejects.is_empty() && with_rejects.len() < days.len(),
        "the demo rejects some products on some days: {with_rejects:?}"
    );
    for d in &with_rejects {
        let r = &before[d];
        assert_eq!(
            r["warehouse_rows"].as_u64().unwrap() + r["rejected"].as_u64().unwrap(),
            r["raw_lines"].as_u64().unwrap(),
            "{r}"
        );
    }

    // The fix: declared types convert "12.50" and "250".
    p.edit(
        spec,
        "  columns:\n",
        "  columns:
    - name: price
      path: $.price
      type: float64
    - name: attributes__weight_grams
      path: $.attributes.weight_grams
      type: int64
",
    );
    mongo.database(&database).drop().await.unwrap();
    let mut replay = vec!["replay", spec, "--rejects"];
    replay.extend(range);
    let out = p.etl(&replay);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let listed: Vec<String> = with_rejects
        .iter()
        .map(|d| format!("{d} ({})", before[d]["rejected"]))
        .collect();
    assert!(
        shown.contains(&format!(
            "products: replaying the days with rejected documents: {}",
            listed.join(", ")
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("{} done, 0 skipped", with_rejects.len())),
        "{shown}"
    );
    for d in &days {
        let r = common::ledger_record(p.path(), "products", d);
        let source = before[d.as_str()]["raw_lines"].as_u64().unwrap();
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["rejected"].as_u64().unwrap_or(0), 0, "{d}: {r}");
        assert_eq!(r["warehouse_rows"].as_u64(), Some(source), "{d}: {r}");
        assert_eq!(parquet_rows(p.path(), d), source, "{d}");
        let rejects = p
            .path()
            .join(format!(".etl/lake/raw/products/dt={d}/_rejects.jsonl"));
        assert!(
            !rejects.exists(),
            "{d}: the rejects object is gone once none is left"
        );
        if !with_rejects.contains(&d.as_str()) {
            assert_eq!(
                r["finished_at"],
                before[d.as_str()]["finished_at"],
                "{d} was not replayed"
            );
        }
    }
    eprintln!(
        "replay --rejects: {rejected} rejected documents on {} of 10 days loaded",
        with_rejects.len()
    );

    // Nothing is left to do.
    let out = p.etl(&replay);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out)
            .contains("nothing to replay: no day of the range is done with rejected documents"),
        "{}",
        text(&out)
    );
}
