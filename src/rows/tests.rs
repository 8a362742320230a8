//! The differential test of issue 31: the typed row path against the
//! NDJSON path it replaces for Parquet (rows written as NDJSON, read back
//! by arrow-json). Over the flatten fixtures, the shipped pipelines' rules
//! on the demo data, and 10,000 hostile generated documents, both paths
//! must reject the same documents for the same reasons and write Parquet
//! files holding the same values, column by column and row by row.

use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch};
use bson::RawDocumentBuf;
use chrono::NaiveDate;

use super::ParquetTables;
use crate::flatten::Tables;
use crate::spec::FlattenSpec;
use crate::table::TableSchema;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 6, 1).expect("a date")
}

/// What one path made of a partition.
#[derive(Debug, PartialEq)]
struct Made {
    /// Rejected documents: (position, table, reason).
    rejected: Vec<(usize, usize, String)>,
    /// Rows per table.
    rows: Vec<u64>,
}

/// What the comparison of both paths over a partition found.
#[derive(Debug, Default)]
struct Compared {
    documents: usize,
    rejected: usize,
    /// Rows per table, summed.
    rows: u64,
    /// Values compared (rows × columns).
    values: u64,
    /// Files whose bytes are identical, of those compared.
    identical: (usize, usize),
    /// Column types met, as Arrow shows them.
    types: std::collections::BTreeSet<String>,
    /// Partitions neither path could write, with the error both gave.
    failed: Vec<String>,
}

/// Both passes over `docs` as a run makes them (pass 1 over every document,
/// the schemas against the lock, pass 2 with rejects set aside), then pass
/// 2 both ways into Parquet files under `dir`. Panics on any difference.
fn compare(
    what: &str,
    spec: &FlattenSpec,
    docs: &[RawDocumentBuf],
    locked: &[Option<&TableSchema>],
    dir: &Path,
    seen: &mut Compared,
) {
    let tables = Tables::new(spec).unwrap_or_else(|e| panic!("{what}: rules: {e}"));
    // Pass 1 over every document, for the ride below.
    let mut alone = tables.schema_builders();
    let pass1: Vec<String> = docs
        .iter()
        .map(|d| format!("{:?}", tables.infer(d, &mut alone)))
        .collect();
    // Pass 1, shared by both paths; a document it fails on is left out of
    // both.
    let mut builders = tables.schema_builders();
    let all = docs;
    let docs: Vec<&RawDocumentBuf> = docs
        .iter()
        .filter(|d| tables.infer(d, &mut builders).is_ok())
        .collect();
    let schemas: Vec<TableSchema> = builders
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let lock = locked.get(i).copied().flatten();
            let null_only: Vec<String> = b.null_only().map(str::to_owned).collect();
            let mut schema = b.finish_against(lock);
            if let Some(lock) = lock {
                crate::flatten::adopt_locked_types(&mut schema, lock, &null_only);
            }
            schema
        })
        .collect();
    let n = schemas.len();

    // The NDJSON path: rows as text, then arrow-json, then Parquet.
    let mut outs = vec![Vec::new(); n];
    let mut old = Made {
        rejected: Vec::new(),
        rows: vec![0; n],
    };
    for (i, doc) in docs.iter().enumerate() {
        if let Err(e) = tables.write_rows(doc, day(), &schemas, &mut outs) {
            old.rejected.push((i, e.table, e.source.to_string()));
        }
    }
    let old_files: Result<Vec<PathBuf>, String> = (0..n)
        .map(|t| {
            let rows = dir.join(format!("old-{t}.ndjson"));
            std::fs::write(&rows, &outs[t]).unwrap();
            let file = dir.join(format!("old-{t}.parquet"));
            old.rows[t] = crate::sink::parquet::write_local(&rows, &schemas[t], &file, day())
                .map_err(|e| e.to_string())?;
            Ok(file)
        })
        .collect();
    drop(outs);

    // The typed path.
    let new_files: Vec<PathBuf> = (0..n)
        .map(|t| dir.join(format!("new-{t}.parquet")))
        .collect();
    let mut new = Made {
        rejected: Vec::new(),
        rows: Vec::new(),
    };
    let mut parquet = match ParquetTables::create(&tables, &schemas, &new_files, day()) {
        Ok(p) => p,
        Err(e) => {
            // A schema Parquet cannot hold fails both paths alike.
            assert_eq!(old_files, Err(e.to_string()), "{what}");
            seen.failed.push(e.to_string());
            return;
        }
    };
    for (i, doc) in docs.iter().enumerate() {
        match parquet.document(doc) {
            Ok(()) => {}
            Err(super::RowsError::Flatten(e)) => {
                new.rejected.push((i, e.table, e.source.to_string()))
            }
            Err(e) => panic!("{what}: document {i}: {e}"),
        }
    }
    let counted = parquet.rows().to_vec();
    new.rows = parquet.finish().unwrap();
    assert_eq!(counted, new.rows, "{what}: rows counted and written");
    ride(what, &tables, all, &schemas, dir, (&pass1, &alone));
    let old_files =
        old_files.unwrap_or_else(|e| panic!("{what}: only the NDJSON path failed: {e}"));
    assert_eq!(old, new, "{what}: rejects and rows");

    seen.documents += docs.len();
    seen.rejected += new.rejected.len();
    for t in 0..n {
        let what = format!("{what}, table {t}");
        let (a, b) = (read(&old_files[t]), read(&new_files[t]));
        assert_eq!(a.len(), b.len(), "{what}: batches");
        for (batch, (a, b)) in a.iter().zip(&b).enumerate() {
            assert_eq!(a.schema(), b.schema(), "{what}: schema");
            assert_eq!(a.num_rows(), b.num_rows(), "{what}: rows of batch {batch}");
            for (c, field) in a.schema().fields().iter().enumerate() {
                let (x, y) = (a.column(c), b.column(c));
                seen.types.insert(field.data_type().to_string());
                if x.to_data() == y.to_data() {
                    continue;
                }
                let row = (0..x.len())
                    .find(|&r| x.slice(r, 1).to_data() != y.slice(r, 1).to_data())
                    .unwrap_or(0);
                panic!(
                    "{what}: column `{}` ({}), batch {batch}, row {row}: NDJSON path {}, typed path {}",
                    field.name(),
                    field.data_type(),
                    show(x, row),
                    show(y, row)
                );
            }
            seen.values += (a.num_rows() * a.num_columns()) as u64;
            seen.rows += a.num_rows() as u64;
        }
        seen.identical.1 += 1;
        if std::fs::read(&old_files[t]).unwrap() == std::fs::read(&new_files[t]).unwrap() {
            seen.identical.0 += 1;
        }
    }
}

/// Pass 1 riding along the typed path (a run beside its speculation),
/// over every document, pass 1's failures included: each document's pass 1
/// ends as alone (`pass1`), the builders end the same (`alone`), and the
/// rows, rejects and Parquet bytes are those of the typed path alone.
fn ride(
    what: &str,
    tables: &Tables,
    all: &[RawDocumentBuf],
    schemas: &[TableSchema],
    dir: &Path,
    (pass1, alone): (&[String], &[crate::flatten::SchemaBuilder]),
) {
    let n = schemas.len();
    let (rows_files, ride_files): (Vec<PathBuf>, Vec<PathBuf>) = (0..n)
        .map(|t| {
            (
                dir.join(format!("rows-{t}.parquet")),
                dir.join(format!("ride-{t}.parquet")),
            )
        })
        .unzip();
    let made = |written: Result<(), super::RowsError>, i: usize, made: &mut Made| match written {
        Ok(()) => {}
        Err(super::RowsError::Flatten(e)) => made.rejected.push((i, e.table, e.source.to_string())),
        Err(e) => panic!("{what}: document {i}: {e}"),
    };
    let mut rows = ParquetTables::create(tables, schemas, &rows_files, day()).unwrap();
    let mut riding = ParquetTables::create(tables, schemas, &ride_files, day()).unwrap();
    let mut builders = tables.schema_builders();
    let mut ridden = crate::flatten::Ridden::default();
    let (mut made_rows, mut made_riding) = (
        Made {
            rejected: Vec::new(),
            rows: Vec::new(),
        },
        Made {
            rejected: Vec::new(),
            rows: Vec::new(),
        },
    );
    for (i, doc) in all.iter().enumerate() {
        made(rows.document(doc), i, &mut made_rows);
        let (written, inferred) = riding.document_inferring(doc, &mut builders, &mut ridden);
        assert_eq!(
            format!("{inferred:?}"),
            pass1[i],
            "{what}: document {i}: pass 1 riding and alone"
        );
        made(written, i, &mut made_riding);
    }
    for (t, (a, b)) in alone.iter().zip(&builders).enumerate() {
        assert_eq!(
            a.recorded(),
            b.recorded(),
            "{what}: table {t}: pass 1 riding and alone"
        );
        assert_eq!(a.clone().finish(), b.clone().finish(), "{what}: table {t}");
    }
    made_rows.rows = rows.finish().unwrap();
    made_riding.rows = riding.finish().unwrap();
    assert_eq!(made_rows, made_riding, "{what}: rejects and rows, riding");
    for (a, b) in rows_files.iter().zip(&ride_files) {
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "{what}: {}",
            b.display()
        );
    }
}

fn read(file: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(file).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .with_batch_size(super::BATCH_ROWS)
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn show(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "NULL".to_owned();
    }
    arrow_cast::display::array_value_to_string(array, row).unwrap_or_else(|e| e.to_string())
}

fn raw_docs(docs: &[bson::Document]) -> Vec<RawDocumentBuf> {
    docs.iter()
        .map(|d| RawDocumentBuf::from_document(d).unwrap())
        .collect()
}

/// The schemas `docs` give, as pass 1 infers them.
fn inferred(tables: &Tables, docs: &[RawDocumentBuf]) -> Vec<TableSchema> {
    let mut builders = tables.schema_builders();
    for d in docs {
        tables.infer(d, &mut builders).unwrap();
    }
    builders.into_iter().map(|b| b.finish()).collect()
}

fn spec(yaml: &str) -> FlattenSpec {
    crate::spec::yaml::from_str(yaml).unwrap()
}

/// Every flatten fixture's rules and documents.
#[test]
fn the_typed_path_writes_the_fixtures_values() {
    #[derive(serde::Deserialize)]
    struct Fixture {
        flatten: FlattenSpec,
        documents: Vec<serde_json::Value>,
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flatten");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let scratch = tempfile::tempdir().unwrap();
    let mut seen = Compared::default();
    for path in &files {
        let fixture: Fixture =
            crate::spec::yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let docs: Vec<RawDocumentBuf> = fixture
            .documents
            .into_iter()
            .map(|json| match bson::Bson::try_from(json).unwrap() {
                bson::Bson::Document(d) => RawDocumentBuf::from_document(&d).unwrap(),
                other => panic!("{}: not a document: {other}", path.display()),
            })
            .collect();
        let name = path.file_name().unwrap().to_string_lossy();
        compare(
            &name,
            &fixture.flatten,
            &docs,
            &[],
            scratch.path(),
            &mut seen,
        );
    }
    assert!(files.len() >= 40, "{} fixtures", files.len());
    assert!(seen.documents >= 75, "{seen:?}");
    assert!(seen.rejected >= 3, "the rejects are compared too: {seen:?}");
    for t in [
        "Utf8",
        "Int64",
        "Float64",
        "Boolean",
        "Date32",
        "Decimal128(38, 9)",
        "Decimal256(76, 38)",
        "Timestamp(Microsecond, Some(\"+00:00\"))",
    ] {
        assert!(seen.types.contains(t), "no {t} column in {:?}", seen.types);
    }
    assert!(
        seen.types
            .iter()
            .any(|t| t.starts_with("List(Field { name: \"item\", data_type: Struct")),
        "no REPEATED RECORD column in {:?}",
        seen.types
    );
}

/// The shipped pipelines' rules and locks over a demo day.
#[test]
fn the_typed_path_writes_a_demo_days_values() {
    let opts = crate::demo::DemoOptions::default();
    let collections: [(&str, Vec<bson::Document>); 3] = [
        ("users", crate::demo::users(&opts).collect()),
        ("orders", crate::demo::orders(&opts).collect()),
        ("products", crate::demo::products(&opts).collect()),
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = tempfile::tempdir().unwrap();
    let mut seen = Compared::default();
    for (name, docs) in collections {
        let text = std::fs::read_to_string(root.join(format!("pipelines/{name}.yaml"))).unwrap();
        let pipeline: crate::spec::PipelineSpec = crate::spec::yaml::from_str(&text).unwrap();
        let lock = crate::lock::SchemaLock::read(&crate::lock::SchemaLock::path(root, name))
            .unwrap()
            .unwrap();
        let tables = Tables::new(&pipeline.flatten).unwrap();
        let locked: Vec<_> = tables.names(name).iter().map(|t| lock.table(t)).collect();
        let raws: Vec<RawDocumentBuf> = docs
            .iter()
            .map(|d| RawDocumentBuf::from_document(d).unwrap())
            .collect();
        compare(
            name,
            &pipeline.flatten,
            &raws,
            &locked,
            scratch.path(),
            &mut seen,
        );
    }
    // More than a batch in some table, so that batches are cut too.
    assert!(seen.rows > super::BATCH_ROWS as u64, "{seen:?}");
    assert!(seen.rejected > 0, "products' drift is rejected: {seen:?}");
    assert_eq!(seen.identical.0, seen.identical.1, "{seen:?}");
}

/// 10,000 hostile documents (issue 14's generator) under `json` arrays
/// with `reject`, 500 to a partition, and under `repeated` arrays with
/// `variant`, 25 to a partition (an array of empty objects once made a
/// RECORD without fields, which failed the whole partition on both paths;
/// it is JSON now, and no partition fails).
#[test]
fn the_typed_path_writes_hostile_documents_values() {
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let scratch = tempfile::tempdir().unwrap();
    let json = spec("arrays: { default: json }\non_type_conflict: reject");
    let repeated = spec("arrays: { default: repeated }\non_type_conflict: variant\nmax_depth: 3");
    let (mut whole, mut small) = (Compared::default(), Compared::default());
    for chunk in 0..20 {
        let docs: Vec<RawDocumentBuf> = (0..500)
            .map(|_| {
                let (bytes, _) = crate::flatten::tests::hostile_doc()
                    .new_tree(&mut runner)
                    .unwrap()
                    .current();
                RawDocumentBuf::from_bytes(bytes).unwrap()
            })
            .collect();
        let what = format!("hostile chunk {chunk}, json arrays");
        compare(&what, &json, &docs, &[], scratch.path(), &mut whole);
        for (part, docs) in docs.chunks(25).enumerate() {
            let what = format!("hostile chunk {chunk}.{part}, repeated arrays");
            compare(&what, &repeated, docs, &[], scratch.path(), &mut small);
        }
    }
    for (name, seen) in [("json", &whole), ("repeated", &small)] {
        eprintln!(
            "hostile, {name} arrays: {} documents, {} rejected, {} rows, {} values, files identical {:?}, partitions failed on both paths {}",
            seen.documents, seen.rejected, seen.rows, seen.values, seen.identical, seen.failed.len()
        );
        assert!(seen.failed.is_empty(), "{name}: {:?}", seen.failed);
    }
    // Invalid UTF-8 (a document in five) fails pass 1 and is left out.
    assert!(whole.documents > 7_000, "{whole:?}");
    assert!(whole.rejected > 1_000, "{whole:?}");
    assert!(small.documents > 3_000, "{small:?}");
    assert!(
        small
            .types
            .iter()
            .any(|t| t.starts_with("List(Field { name: \"item\", data_type: Struct")),
        "no REPEATED RECORD column"
    );
}

/// Pass 1 riding along pass 2 (see `crate::flatten::Tables::
/// write_rows_inferring`) where its log cannot simply be applied: rows with
/// a repeated key (pass 2 walks them twice), a child row rejected after its
/// root row was logged, a declared column's variant, and a document pass 1
/// stops on (invalid UTF-8 in an array pass 2 skips) while pass 2 goes on.
/// `compare` checks every document's pass 1 result, the builders, and the
/// rows against pass 1 and pass 2 alone.
#[test]
fn pass_1_riding_along_ends_as_pass_1_alone() {
    use bson::{rawdoc, RawArrayBuf};
    let mut dup_root = rawdoc! { "_id": 1, "a": 1, "b": "x" };
    dup_root.append("a", 2);
    dup_root.append("items", {
        let mut items = RawArrayBuf::new();
        items.push(rawdoc! { "q": 1 });
        items
    });
    let mut inner = rawdoc! { "k": 1 };
    inner.append("k", 2);
    let dup_nested = rawdoc! { "_id": 2, "o": inner.clone(), "a": 3 };
    let dup_child = rawdoc! { "_id": 3, "items": [{ "q": 2 }, inner.clone()] };
    let rejected_child = rawdoc! { "_id": 4, "a": 4, "items": [{ "q": 3 }, { "q": "three" }] };
    let fine = rawdoc! { "_id": 5, "a": 5, "o": { "k": 7 }, "items": [{ "q": 4, "r": true }] };
    let docs = vec![dup_root, dup_nested, dup_child, rejected_child, fine];
    let scratch = tempfile::tempdir().unwrap();
    let mut seen = Compared::default();
    let explode = spec(indoc::indoc! {"
        on_type_conflict: reject
        arrays:
          rules: [{ path: $.items, policy: explode }]
    "});
    compare(
        "explode, reject",
        &explode,
        &docs,
        &[],
        scratch.path(),
        &mut seen,
    );
    assert_eq!(seen.rejected, 1, "{seen:?}");

    // Invalid UTF-8 in `tags`, a path no other document has: pass 1 stops
    // there, pass 2 (new fields ignored) writes the rest of the row.
    let mut broken = rawdoc! { "_id": 6, "n": "six", "tags": ["\u{7}bad"], "z": 1 }.into_bytes();
    let at = broken.windows(4).position(|w| w == b"\x07bad").unwrap();
    broken[at] = 0xff;
    let broken = RawDocumentBuf::from_bytes(broken).unwrap();
    let mut dup_variant = rawdoc! { "_id": 7, "n": 1 };
    dup_variant.append("n", "seven");
    let docs = vec![
        rawdoc! { "_id": 8, "n": 8, "items": [{ "q": 1 }, { "q": "x" }] },
        broken,
        dup_variant,
        rawdoc! { "_id": 9, "n": true, "z": 2 },
    ];
    let variant = spec(indoc::indoc! {"
        on_type_conflict: variant
        on_new_field: ignore
        arrays: { default: repeated }
        columns:
          - { name: n, path: $.n, type: int64 }
    "});
    let mut seen = Compared::default();
    compare(
        "repeated, variant",
        &variant,
        &docs,
        &[],
        scratch.path(),
        &mut seen,
    );
    assert_eq!(seen.documents, 3, "the broken one is left out: {seen:?}");
}

/// A document whose child row conflicts under `reject` leaves no row in
/// any table, the root row written before it included; the next document
/// is written whole.
#[test]
fn a_rejected_document_leaves_no_row_in_any_table() {
    let spec = spec(indoc::indoc! {"
        on_type_conflict: reject
        arrays:
          rules: [{ path: $.items, policy: explode }]
    "});
    let tables = Tables::new(&spec).unwrap();
    let docs = raw_docs(&[
        bson::doc! { "_id": 1, "items": [{ "q": 1 }, { "q": 2 }] },
        bson::doc! { "_id": 2, "items": [{ "q": 3 }, { "q": "three" }] },
        bson::doc! { "_id": 3, "items": [{ "q": 4 }] },
    ]);
    let schemas = inferred(&tables, &docs);
    let dir = tempfile::tempdir().unwrap();
    let files = [
        dir.path().join("root.parquet"),
        dir.path().join("items.parquet"),
    ];
    let mut out = ParquetTables::create(&tables, &schemas, &files, day()).unwrap();
    out.document(&docs[0]).unwrap();
    match out.document(&docs[1]) {
        Err(super::RowsError::Flatten(e)) => {
            assert_eq!(e.table, 1);
            assert_eq!(
                e.source.to_string(),
                "`$.q` is a STRING value, but column `q` is INT64"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    out.document(&docs[2]).unwrap();
    assert_eq!(out.rows(), [2, 3]);
    assert_eq!(out.finish().unwrap(), [2, 3]);
    let root = read(&files[0]);
    let ids = root[0]
        .column_by_name("_id")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap();
    assert_eq!(ids.values().to_vec(), [1, 3]);
    let items = read(&files[1]);
    let q = items[0]
        .column_by_name("q")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap();
    assert_eq!(q.values().to_vec(), [1, 2, 4]);
}

/// BYTES are binary in the file, the bytes themselves (Parquet's
/// BYTE_ARRAY without UTF8, which BigQuery loads into BYTES), alone, in
/// an array and in a record of an array; a UUID is text, as its STRING
/// column wants. (A string beside binaries makes the column STRING.)
#[test]
fn bytes_are_binary_in_the_file_not_base64_text() {
    use arrow_array::cast::AsArray;
    use bson::spec::BinarySubtype;
    let bin = |bytes: &[u8]| bson::Binary {
        subtype: BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    };
    let spec = spec("arrays: { default: repeated }");
    let tables = Tables::new(&spec).unwrap();
    let docs = raw_docs(&[
        bson::doc! {
            "_id": 1,
            "blob": bin(&[0, 255, b'a']),
            "blobs": [bin(b"x"), bin(&[])],
            "parts": [{ "data": bin(&[7, 8]) }],
            "uuid": bson::Binary { subtype: BinarySubtype::Uuid, bytes: vec![0x11; 16] },
        },
        bson::doc! { "_id": 2, "blob": bin(b"text"), "blobs": [], "parts": [] },
        bson::doc! { "_id": 3 },
    ]);
    let schemas = inferred(&tables, &docs);
    let dir = tempfile::tempdir().unwrap();
    let files = [dir.path().join("root.parquet")];
    let mut out = ParquetTables::create(&tables, &schemas, &files, day()).unwrap();
    for d in &docs {
        out.document(d).unwrap();
    }
    assert_eq!(out.finish().unwrap(), [3]);
    let batch = &read(&files[0])[0];
    let blob = batch.column_by_name("blob").unwrap().as_binary::<i32>();
    assert_eq!(blob.value(0), [0, 255, b'a']);
    assert_eq!(blob.value(1), b"text");
    assert!(blob.is_null(2));
    let blobs = batch.column_by_name("blobs").unwrap().as_list::<i32>();
    let first = blobs.value(0);
    assert_eq!(
        first.as_binary::<i32>().iter().collect::<Vec<_>>(),
        [Some(&b"x"[..]), Some(&[][..])]
    );
    let parts = batch
        .column_by_name("parts")
        .unwrap()
        .as_list::<i32>()
        .value(0);
    let data = parts
        .as_struct()
        .column_by_name("data")
        .unwrap()
        .as_binary::<i32>();
    assert_eq!(data.value(0), [7, 8]);
    let uuid = batch.column_by_name("uuid").unwrap().as_string::<i32>();
    assert_eq!(uuid.value(0), "11111111-1111-1111-1111-111111111111");
}
