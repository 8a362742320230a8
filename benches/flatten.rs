//! Throughput of the per-document work of a partition, on a fixed fixture:
//! the demo generator's 5000 orders and 3000 users, as raw BSON.
//!
//! - `raw_walk`: the baseline, every element visited and touched;
//! - `extjson_canonical`: the lake line, [`etl::extjson::write_canonical`];
//! - `infer`: pass 1, [`Flattener::infer`];
//! - `write_row`: pass 2, [`Flattener::write_row`];
//! - `row_writer`: pass 2 through a [`etl::flatten::RowWriter`], without the
//!   per-row schema check.
//!
//! Each runs twice: `bytes/*` reports MB/s of BSON, `docs/*` documents/s.
//!
//! The `tables/*` group runs both passes through [`etl::flatten::Tables`]
//! over the 5000 orders alone, as the engine does, under three rule sets:
//! `plain` (default rules, one table), `explode` (`items` as a child table,
//! its `discounts` repeated), and `all_policies` (that, plus a repeated
//! `tags`, explicit typed columns, excludes, `on_type_conflict: variant`
//! and `on_new_field: ignore`). Reported in documents/s.
//!
//! The `parquet/*` group runs pass 2 of the same orders under the same
//! rule sets into one Parquet file per table, both ways: `ndjson` (rows as
//! NDJSON text read back by arrow-json, the path before issue 31) and
//! `typed` (the typed Arrow builders of [`etl::rows`]).
//!
//! `cargo bench --bench flatten -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bson::raw::{RawArray, RawBsonRef, RawDocument, RawDocumentBuf};
use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etl::demo::DemoOptions;
use etl::flatten::{Flattener, SchemaBuilder};
use etl::spec::FlattenSpec;

fn fixture() -> Vec<RawDocumentBuf> {
    let opts = DemoOptions::default();
    etl::demo::orders(&opts)
        .chain(etl::demo::users(&opts))
        .map(|d| RawDocumentBuf::from_document(&d).expect("demo documents encode"))
        .collect()
}

fn walk_doc(doc: &RawDocument) -> u64 {
    let mut n = 0;
    for item in doc {
        let (key, value) = item.expect("valid BSON");
        n += key.len() as u64 + touch(value);
    }
    n
}

fn walk_array(array: &RawArray) -> u64 {
    array
        .into_iter()
        .map(|v| touch(v.expect("valid BSON")))
        .sum()
}

fn touch(value: RawBsonRef<'_>) -> u64 {
    match value {
        RawBsonRef::Document(d) => walk_doc(d),
        RawBsonRef::Array(a) => walk_array(a),
        RawBsonRef::String(s) => s.len() as u64,
        RawBsonRef::Int32(i) => i as u64,
        RawBsonRef::Int64(i) => i as u64,
        RawBsonRef::Double(f) => f.to_bits(),
        RawBsonRef::DateTime(d) => d.timestamp_millis() as u64,
        RawBsonRef::Binary(b) => b.bytes.len() as u64,
        RawBsonRef::ObjectId(o) => u64::from(o.bytes()[11]),
        RawBsonRef::Boolean(b) => u64::from(b),
        _ => 1,
    }
}

fn bench(c: &mut Criterion) {
    let docs = fixture();
    let bytes: u64 = docs.iter().map(|d| d.as_bytes().len() as u64).sum();
    let flattener = Flattener::new(&FlattenSpec::default()).expect("default rules compile");
    let mut builder = SchemaBuilder::new();
    for d in &docs {
        flattener
            .infer(d, &mut builder)
            .expect("demo documents flatten");
    }
    let schema = builder.finish();
    let day = NaiveDate::from_ymd_opt(2020, 6, 1).expect("a date");
    eprintln!(
        "fixture: {} documents, {bytes} bytes of BSON, {} columns",
        docs.len(),
        schema.columns.len()
    );

    for (unit, throughput) in [
        ("bytes", Throughput::Bytes(bytes)),
        ("docs", Throughput::Elements(docs.len() as u64)),
    ] {
        let mut group = c.benchmark_group(unit);
        group.throughput(throughput);
        group.bench_function("raw_walk", |b| {
            b.iter(|| docs.iter().map(|d| walk_doc(d)).sum::<u64>())
        });
        group.bench_function("extjson_canonical", |b| {
            let mut out = Vec::with_capacity(1 << 16);
            b.iter(|| {
                for d in &docs {
                    out.clear();
                    etl::extjson::write_canonical(d, &mut out).expect("valid BSON");
                    black_box(&out);
                }
            })
        });
        group.bench_function("infer", |b| {
            b.iter(|| {
                let mut builder = SchemaBuilder::new();
                for d in &docs {
                    flattener
                        .infer(d, &mut builder)
                        .expect("demo documents flatten");
                }
                builder
            })
        });
        group.bench_function("write_row", |b| {
            let mut out = Vec::with_capacity(1 << 16);
            b.iter(|| {
                for d in &docs {
                    out.clear();
                    flattener
                        .write_row(d, day, &schema, &mut out)
                        .expect("rows write");
                    black_box(&out);
                }
            })
        });
        group.bench_function("row_writer", |b| {
            let mut writer = flattener.row_writer(&schema).expect("the schema resolves");
            let mut out = Vec::with_capacity(1 << 16);
            b.iter(|| {
                for d in &docs {
                    out.clear();
                    writer.write_row(d, day, &mut out).expect("rows write");
                    black_box(&out);
                }
            })
        });
        group.finish();
    }
}

const EXPLODE: &str = "
arrays:
  rules:
    - path: $.items
      policy: explode
      flatten:
        arrays:
          rules: [{ path: $.discounts, policy: repeated }]
";

const ALL_POLICIES: &str = "
on_type_conflict: variant
on_new_field: ignore
exclude: [$.customer.email]
columns:
  - { name: total, path: $.total, type: float64 }
  - { name: country, path: $.customer.address.country, type: string, default: unknown }
arrays:
  default: repeated
  rules:
    - path: $.items
      policy: explode
      flatten:
        on_type_conflict: variant
        columns: [{ name: quantity, path: $.quantity, type: int64 }]
        arrays:
          rules: [{ path: $.discounts, policy: repeated }]
";

/// Both passes over `docs` for every table, as a partition runs them.
fn both_passes(tables: &etl::flatten::Tables, docs: &[RawDocumentBuf], day: NaiveDate) -> usize {
    let mut builders = tables.schema_builders();
    for d in docs {
        tables
            .infer(d, &mut builders)
            .expect("demo documents flatten");
    }
    let schemas: Vec<_> = builders.into_iter().map(|b| b.finish()).collect();
    let mut outs = vec![Vec::with_capacity(1 << 16); schemas.len()];
    let mut bytes = 0;
    for d in docs {
        tables
            .write_rows(d, day, &schemas, &mut outs)
            .expect("rows write");
        for out in &mut outs {
            bytes += out.len();
            out.clear();
        }
    }
    bytes
}

fn bench_tables(c: &mut Criterion) {
    let opts = DemoOptions::default();
    let orders: Vec<RawDocumentBuf> = etl::demo::orders(&opts)
        .map(|d| RawDocumentBuf::from_document(&d).expect("demo documents encode"))
        .collect();
    let day = NaiveDate::from_ymd_opt(2020, 6, 1).expect("a date");
    let mut group = c.benchmark_group("tables");
    group.throughput(Throughput::Elements(orders.len() as u64));
    for (name, yaml) in [
        ("plain", "{}"),
        ("explode", EXPLODE),
        ("all_policies", ALL_POLICIES),
    ] {
        let spec: FlattenSpec = serde_yaml::from_str(yaml).expect("a valid flatten spec");
        let tables = etl::flatten::Tables::new(&spec).expect("the rules compile");
        eprintln!(
            "tables/{name}: {} tables, {} bytes of rows",
            tables.len(),
            both_passes(&tables, &orders, day)
        );
        group.bench_function(name, |b| {
            b.iter(|| black_box(both_passes(&tables, &orders, day)))
        });
    }
    group.finish();
}

/// Pass 2 into one Parquet file per table, against schemas from pass 1:
/// the NDJSON path (rows as text, read back by arrow-json) or the typed
/// path ([`etl::rows`]).
fn to_parquet(
    tables: &etl::flatten::Tables,
    schemas: &[etl::table::TableSchema],
    docs: &[RawDocumentBuf],
    day: NaiveDate,
    dir: &std::path::Path,
    typed: bool,
) -> u64 {
    let files: Vec<_> = (0..schemas.len())
        .map(|t| dir.join(format!("{t}.parquet")))
        .collect();
    if typed {
        let mut out = etl::rows::ParquetTables::create(tables, schemas, &files, day)
            .expect("the files start");
        for d in docs {
            out.document(d).expect("rows write");
        }
        return out.finish().expect("the files end").iter().sum();
    }
    let mut encoders: Vec<_> = schemas
        .iter()
        .zip(&files)
        .map(|(s, f)| etl::sink::parquet::Encoder::create(s, f, day).expect("the files start"))
        .collect();
    let mut writers = tables.row_writers(schemas).expect("the schemas resolve");
    let mut outs = vec![Vec::with_capacity(1 << 16); schemas.len()];
    for d in docs {
        tables
            .write_rows_with(d, day, &mut writers, &mut outs)
            .expect("rows write");
        for (out, encoder) in outs.iter_mut().zip(&mut encoders) {
            encoder.rows(out).expect("rows encode");
            out.clear();
        }
    }
    encoders
        .into_iter()
        .map(|e| e.finish().expect("the files end"))
        .sum()
}

/// `parquet/{ndjson,typed}/{plain,explode,all_policies}`: pass 2 of the
/// 5000 orders into Parquet files both ways, in documents/s.
fn bench_parquet(c: &mut Criterion) {
    let opts = DemoOptions::default();
    let orders: Vec<RawDocumentBuf> = etl::demo::orders(&opts)
        .map(|d| RawDocumentBuf::from_document(&d).expect("demo documents encode"))
        .collect();
    let day = NaiveDate::from_ymd_opt(2020, 6, 1).expect("a date");
    let dir = tempfile::tempdir().expect("a scratch folder");
    let mut group = c.benchmark_group("parquet");
    group.throughput(Throughput::Elements(orders.len() as u64));
    for (name, yaml) in [
        ("plain", "{}"),
        ("explode", EXPLODE),
        ("all_policies", ALL_POLICIES),
    ] {
        let spec: FlattenSpec = serde_yaml::from_str(yaml).expect("a valid flatten spec");
        let tables = etl::flatten::Tables::new(&spec).expect("the rules compile");
        let mut builders = tables.schema_builders();
        for d in &orders {
            tables
                .infer(d, &mut builders)
                .expect("demo documents flatten");
        }
        let schemas: Vec<_> = builders.into_iter().map(|b| b.finish()).collect();
        for (path, typed) in [("ndjson", false), ("typed", true)] {
            group.bench_function(format!("{path}/{name}"), |b| {
                b.iter(|| {
                    black_box(to_parquet(
                        &tables,
                        &schemas,
                        &orders,
                        day,
                        dir.path(),
                        typed,
                    ))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench, bench_tables, bench_parquet);
criterion_main!(benches);
