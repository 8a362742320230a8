//! One test per rule, on inline documents; then the invariants as
//! properties.

use bson::{doc, Bson, Document, RawDocumentBuf};
use chrono::NaiveDate;
use indoc::indoc;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::spec::ColumnType;
use crate::table::Column;

fn spec(yaml: &str) -> FlattenSpec {
    serde_yaml::from_str(yaml).expect("a valid flatten spec")
}

fn raw(doc: &Document) -> RawDocumentBuf {
    RawDocumentBuf::from_document(doc).unwrap()
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 6, 1).unwrap()
}

/// Both passes over `docs`: the schema as `(name, type)` pairs, and the
/// rows parsed back.
struct Run {
    schema: TableSchema,
    renames: Vec<(String, String)>,
    rows: Vec<Value>,
    text: String,
}

fn run(spec: &FlattenSpec, docs: &[Document]) -> Run {
    let f = Flattener::new(spec).unwrap();
    let raws: Vec<_> = docs.iter().map(raw).collect();
    let mut builder = SchemaBuilder::new();
    for d in &raws {
        f.infer(d, &mut builder).unwrap();
    }
    let renames = builder.renames().to_vec();
    let schema = builder.finish();
    let mut out = Vec::new();
    for d in &raws {
        f.write_row(d, day(), &schema, &mut out).unwrap();
    }
    let text = String::from_utf8(out).unwrap();
    let rows = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Run {
        schema,
        renames,
        rows,
        text,
    }
}

fn columns(schema: &TableSchema) -> Vec<(&str, &str)> {
    schema
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.kind.bigquery_name()))
        .collect()
}

/// Name, type and REPEATED of each column.
fn repeated_columns(schema: &TableSchema) -> Vec<(&str, &str, bool)> {
    schema
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.kind.bigquery_name(), c.repeated))
        .collect()
}

#[test]
fn nested_objects_join_their_keys() {
    let r = run(
        &FlattenSpec::default(),
        &[doc! { "a": { "b": 1, "c": { "d": "x" } }, "e": true }],
    );
    assert_eq!(
        columns(&r.schema),
        [
            ("_ds", "DATE"),
            ("a__b", "INT64"),
            ("a__c__d", "STRING"),
            ("e", "BOOL")
        ]
    );
    assert_eq!(
        r.text,
        "{\"_ds\":\"2020-06-01\",\"a__b\":1,\"a__c__d\":\"x\",\"e\":true}\n"
    );
}

#[test]
fn the_separator_is_configurable() {
    let r = run(&spec("separator: _"), &[doc! { "a": { "b": 1 } }]);
    assert_eq!(r.rows[0], json!({ "_ds": "2020-06-01", "a_b": 1 }));
}

#[test]
fn objects_at_max_depth_become_json() {
    let r = run(
        &spec("max_depth: 2"),
        &[doc! { "a": { "b": { "c": 1, "when": bson::DateTime::from_millis(0) }, "x": 2 } }],
    );
    assert_eq!(
        columns(&r.schema)[1..],
        [("a__b", "JSON"), ("a__x", "INT64")]
    );
    assert_eq!(
        r.rows[0]["a__b"],
        json!(r#"{"c":1,"when":{"$date":"1970-01-01T00:00:00Z"}}"#)
    );
}

#[test]
fn depth_one_keeps_only_top_level_keys() {
    let r = run(&spec("max_depth: 1"), &[doc! { "a": { "b": 1 }, "c": 2 }]);
    assert_eq!(columns(&r.schema)[1..], [("a", "JSON"), ("c", "INT64")]);
}

#[test]
fn empty_objects_make_no_column_and_empty_arrays_are_json() {
    let r = run(
        &FlattenSpec::default(),
        &[doc! { "o": {}, "deep": { "o": {} }, "a": [], "n": 1 }],
    );
    assert_eq!(columns(&r.schema)[1..], [("a", "JSON"), ("n", "INT64")]);
    assert_eq!(r.rows[0]["a"], json!("[]"));
}

#[test]
fn arrays_are_relaxed_json_text() {
    let r = run(
        &FlattenSpec::default(),
        &[doc! {
            "tags": ["a", "b"],
            "items": [{ "sku": "A", "qty": 2, "at": bson::DateTime::from_millis(1_590_969_600_000) }],
            "mixed": [1, "two", 3.5, null, [4]],
        }],
    );
    assert_eq!(r.rows[0]["tags"], json!(r#"["a","b"]"#));
    assert_eq!(
        r.rows[0]["items"],
        json!(r#"[{"sku":"A","qty":2,"at":{"$date":"2020-06-01T00:00:00Z"}}]"#)
    );
    assert_eq!(r.rows[0]["mixed"], json!(r#"[1,"two",3.5,null,[4]]"#));
}

#[test]
fn repeated_arrays_are_repeated_columns_and_exploded_arrays_leave_the_parent() {
    let s = spec(indoc! {"
        arrays:
          default: repeated
          rules:
            - path: $.items
              policy: explode
    "});
    let r = run(
        &s,
        &[
            doc! { "items": [1], "tags": ["x", null, "y"], "n": [1, 2.5] },
            doc! { "tags": [], "n": 3 },
            doc! { "tags": "lone", "objs": [{"a": 1}] },
        ],
    );
    let cols = repeated_columns(&r.schema);
    assert_eq!(
        cols[1..],
        [
            ("tags", "STRING", true),
            ("n", "FLOAT64", true),
            ("objs", "RECORD", true)
        ]
    );
    assert_eq!(
        r.rows,
        [
            json!({"_ds": "2020-06-01", "tags": ["x", "y"], "n": [1.0, 2.5]}),
            json!({"_ds": "2020-06-01", "n": [3.0]}),
            json!({"_ds": "2020-06-01", "tags": ["lone"], "objs": [{"a": 1}]}),
        ]
    );
}

#[test]
fn explicit_columns_convert_to_their_type() {
    let s = spec(indoc! {r#"
        columns:
          - { name: points, path: $.loyalty_points, type: int64 }
          - { name: city, path: "$['address']['city']", type: string }
          - { name: day, path: $.created_at, type: date }
          - { name: missing, path: $.nope.nothing, type: int64, default: 0 }
          - { name: bad, path: $.name, type: int64 }
          - { name: ts, path: $.created_at, type: timestamp, default: { $date: "2020-01-01T00:00:00Z" } }
    "#});
    let docs = [
        doc! {
            "loyalty_points": "120",
            "address": { "city": "Berlin" },
            "created_at": bson::DateTime::from_millis(1_591_012_800_123),
            "name": "Ada",
        },
        doc! { "loyalty_points": 7 },
    ];
    let r = run(&s, &docs);
    assert_eq!(
        columns(&r.schema)[1..7],
        [
            ("points", "INT64"),
            ("city", "STRING"),
            ("day", "DATE"),
            ("missing", "INT64"),
            ("bad", "INT64"),
            ("ts", "TIMESTAMP"),
        ]
    );
    let first = &r.rows[0];
    assert_eq!(first["points"], json!(120));
    assert_eq!(first["city"], json!("Berlin"));
    assert_eq!(first["day"], json!("2020-06-01"));
    assert_eq!(first["missing"], json!(0));
    assert!(first.get("bad").is_none(), "`Ada` is not an INT64: NULL");
    assert_eq!(first["ts"], json!("2020-06-01T12:00:00.123000Z"));
    assert_eq!(r.rows[1]["points"], json!(7));
    assert_eq!(r.rows[1]["ts"], json!("2020-01-01T00:00:00.000000Z"));
}

/// Each of `docs` written against the schema of the first `schema_of`,
/// as its NDJSON row and the values it left unconverted.
fn written(
    s: &FlattenSpec,
    docs: &[Document],
    schema_of: usize,
) -> Vec<Result<(Value, Vec<String>), FlattenError>> {
    let f = Flattener::new(s).unwrap();
    let raws: Vec<_> = docs.iter().map(raw).collect();
    let mut builder = SchemaBuilder::new();
    for d in &raws[..schema_of] {
        f.infer(d, &mut builder).unwrap();
    }
    let schema = builder.finish();
    let mut w = f.row_writer(&schema).unwrap();
    raws.iter()
        .map(|d| {
            let mut out = Vec::new();
            w.write_row(d, day(), &mut out).map(|()| {
                let row: Value = serde_json::from_slice(&out).unwrap();
                let lost: Vec<String> = w
                    .unconverted()
                    .iter()
                    .map(|u| format!("{}: {} for {}", u.column, u.found, u.expected))
                    .collect();
                (row, lost)
            })
        })
        .collect()
}

/// A value that does not convert to its column's type is NULL in the row,
/// and never silently: the writer lists it ([`super::Unconverted`]), the
/// engine counts and records it; under `reject` the document is rejected.
#[test]
fn values_that_do_not_convert_are_listed_or_rejected() {
    let yaml = |policy: &str| {
        spec(&format!(
            "on_type_conflict: {policy}
columns:
  - {{ name: points, path: $.points, type: int64 }}
  - {{ name: price, path: $.price, type: numeric }}
  - {{ name: note, path: $.note, type: int64 }}
arrays: {{ default: repeated }}
"
        ))
    };
    let docs = [
        doc! { "points": "120", "price": "1.5", "note": Bson::Null },
        doc! {
            "points": "many",
            // 30 integer digits: more than NUMERIC's 29.
            "price": "123456789012345678901234567890",
            "tags": [1, 2],
        },
        doc! { "tags": [3, "x", Bson::Null] },
    ];
    // The schema of the first two, as a lock or an earlier day gives it:
    // the third's `tags` hold a string an INT64 cannot.
    let found = |policy: &str| written(&yaml(policy), &docs, 2);
    let coerced = found("coerce");
    let (row, lost) = coerced[0].as_ref().unwrap();
    assert_eq!(
        (&row["points"], &row["price"]),
        (&json!(120), &json!("1.5"))
    );
    assert!(lost.is_empty(), "a null is missing, not lost: {lost:?}");
    let (row, lost) = coerced[1].as_ref().unwrap();
    assert!(row.get("points").is_none() && row.get("price").is_none());
    assert_eq!(
        lost,
        &[
            "points: a STRING value for INT64",
            "price: a number with more digits than NUMERIC holds for NUMERIC",
        ]
    );
    // The `tags` column is INT64: "x" is listed, the null left out.
    let (row, lost) = coerced[2].as_ref().unwrap();
    assert_eq!(row["tags"], json!([3]));
    assert_eq!(lost, &["tags: a STRING value for INT64"]);
    // `variant` keeps them in the declared columns' variant columns.
    let variant = found("variant");
    let (row, lost) = variant[1].as_ref().unwrap();
    assert!(lost.is_empty(), "{lost:?}");
    assert!(row.get("points").is_none() && row.get("price").is_none());
    assert_eq!(
        (&row["points__v_string"], &row["price__v_string"]),
        (&json!("many"), &json!("123456789012345678901234567890"))
    );
    assert_eq!(variant[0].as_ref().unwrap().0["points"], json!(120));
    let rejected = found("reject");
    assert!(rejected[0].is_ok());
    let e = rejected[1].as_ref().unwrap_err().to_string();
    assert!(e.contains("points") && e.contains("STRING"), "{e}");
}

#[test]
fn explicit_jsonpath_columns_collect_every_match() {
    let s = spec(indoc! {r#"
        columns:
          - { name: skus, path: "$.items[*].sku", type: json }
          - { name: first_qty, path: "$.items[0].qty", type: int64 }
          - { name: skus_text, path: "$.items[*].sku", type: string }
          - { name: cheap, path: "$.items[?@.price < 10].sku", type: string }
          - { name: none, path: "$.items[9].sku", type: string, default: "n/a" }
          - { name: when, path: "$.events[0].at", type: timestamp }
    "#});
    let r = run(
        &s,
        &[doc! {
            "items": [{ "sku": "A", "qty": 2, "price": 5.0 }, { "sku": "B", "qty": 1, "price": 50 }],
            "events": [{ "at": bson::DateTime::from_millis(1_590_969_600_000) }],
        }],
    );
    let row = &r.rows[0];
    assert_eq!(row["skus"], json!(r#"["A","B"]"#));
    assert_eq!(row["first_qty"], json!(2));
    assert_eq!(row["skus_text"], json!(r#"["A","B"]"#));
    assert_eq!(row["cheap"], json!("A"));
    assert_eq!(row["none"], json!("n/a"));
    assert_eq!(row["when"], json!("2020-06-01T00:00:00.000000Z"));
}

/// A JSONPath column whose match does not convert is NULL and counted,
/// as a simple path's is; under `reject` the document is rejected. A
/// JSONPath that matches nothing, or null, is missing, not lost.
#[test]
fn a_jsonpath_match_that_does_not_convert_is_counted_not_dropped() {
    let yaml = |policy: &str| {
        spec(&format!(
            r#"on_type_conflict: {policy}
columns:
  - {{ name: first_qty, path: "$.items[0].qty", type: int64 }}
  - {{ name: when, path: "$.events[0].at", type: timestamp }}
"#
        ))
    };
    let docs = [
        doc! { "items": [{ "qty": "two" }], "events": [{ "at": "soon" }] },
        doc! { "items": [{ "qty": 3 }], "events": [{ "at": Bson::Null }] },
        doc! { "items": [] },
    ];
    let found = |policy: &str| written(&yaml(policy), &docs, docs.len());
    let coerced = found("coerce");
    let (row, lost) = coerced[0].as_ref().unwrap();
    assert!(
        row.get("first_qty").is_none() && row.get("when").is_none(),
        "{row}"
    );
    assert_eq!(
        lost,
        &[
            "first_qty: a STRING value for INT64",
            "when: a STRING value for TIMESTAMP"
        ]
    );
    let (row, lost) = coerced[1].as_ref().unwrap();
    assert_eq!(row["first_qty"], json!(3));
    assert!(
        lost.is_empty(),
        "a null match is missing, not lost: {lost:?}"
    );
    assert!(coerced[2].as_ref().unwrap().1.is_empty());
    let rejected = found("reject");
    let e = rejected[0].as_ref().unwrap_err().to_string();
    assert!(e.contains("first_qty") && e.contains("STRING"), "{e}");
    assert!(rejected[1].is_ok() && rejected[2].is_ok());
}

#[test]
fn an_explicit_column_named_like_its_path_replaces_the_automatic_one() {
    let s = spec(indoc! {"
        columns:
          - { name: created_at, path: $.created_at, type: date }
          - { name: user_key, path: $._id, type: string }
    "});
    let oid = bson::oid::ObjectId::parse_str("5ed445006564676500000000").unwrap();
    let r = run(
        &s,
        &[doc! { "_id": oid, "created_at": bson::DateTime::from_millis(1_590_969_600_000) }],
    );
    assert_eq!(
        columns(&r.schema),
        [
            ("_ds", "DATE"),
            ("created_at", "DATE"),
            ("user_key", "STRING"),
            ("_id", "STRING")
        ]
    );
    assert_eq!(r.rows[0]["created_at"], json!("2020-06-01"));
    assert_eq!(r.rows[0]["_id"], json!("5ed445006564676500000000"));
    assert!(r.renames.is_empty());
}

#[test]
fn an_automatic_column_never_takes_an_explicit_name() {
    let s = spec("columns: [{ name: created, path: $.meta.created, type: string }]");
    let r = run(&s, &[doc! { "meta": { "created": "x" }, "created": 1 }]);
    let renamed = &r.renames[0];
    assert_eq!(renamed.0, "$.created");
    assert!(renamed.1.starts_with("created__"), "{renamed:?}");
    assert_eq!(r.rows[0][&renamed.1], json!(1));
    assert_eq!(r.rows[0]["created"], json!("x"));
    assert_eq!(r.rows[0]["meta__created"], json!("x"));
}

/// Issue 28: an object used as a map (ids as keys) is one JSON column
/// under `objects: [{policy: json}]`, however many keys it has, at any
/// depth; an empty map is `{}`, a missing one NULL; excludes below it
/// prune its text; the objects around it still make columns.
#[test]
fn an_object_rule_keeps_a_map_as_one_json_column() {
    let s = spec(indoc! {"
        objects:
          - { path: $.tiers, policy: json }
          - { path: $.meta.by_day, policy: json }
        exclude: [$.tiers.secret]
    "});
    let docs = [
        doc! {
            "tiers": { "5cb8aa01": { "benefits": ["a"] }, "5cb8aa02": { "benefits": [] }, "secret": 1 },
            "meta": { "by_day": { "2020-06-01": 3 }, "source": "web" },
        },
        doc! { "tiers": {}, "meta": { "source": "app" } },
        doc! { "tiers": { "77": { "benefits": ["b"] } } },
    ];
    let r = run(&s, &docs);
    assert_eq!(
        columns(&r.schema)[1..],
        [
            ("tiers", "JSON"),
            ("meta__by_day", "JSON"),
            ("meta__source", "STRING")
        ]
    );
    assert_eq!(
        r.rows[0]["tiers"],
        json!(r#"{"5cb8aa01":{"benefits":["a"]},"5cb8aa02":{"benefits":[]}}"#)
    );
    assert_eq!(r.rows[0]["meta__by_day"], json!(r#"{"2020-06-01":3}"#));
    assert_eq!(r.rows[1]["tiers"], json!("{}"));
    assert_eq!(r.rows[1].get("meta__by_day"), None);
    assert_eq!(r.rows[2]["tiers"], json!(r#"{"77":{"benefits":["b"]}}"#));

    // The same documents without the rule: a column per key.
    let wide = run(&FlattenSpec::default(), &docs);
    assert!(columns(&wide.schema).len() > columns(&r.schema).len());
}

#[test]
fn excludes_drop_subtrees_and_prune_json() {
    let s = spec(indoc! {"
        exclude: [$.secret, $.address.geo, $.items.price]
        columns: [{ name: geo_lat, path: $.address.geo.lat, type: float64 }]
    "});
    let r = run(
        &s,
        &[doc! {
            "secret": { "token": "t" },
            "address": { "city": "Paris", "geo": { "lat": 48.8 } },
            "items": [{ "sku": "A", "price": 1 }, [{ "price": 2, "q": 1 }]],
        }],
    );
    assert_eq!(
        columns(&r.schema)[1..],
        [
            ("geo_lat", "FLOAT64"),
            ("address__city", "STRING"),
            ("items", "JSON")
        ]
    );
    assert_eq!(r.rows[0]["items"], json!(r#"[{"sku":"A"},[{"q":1}]]"#));
    assert_eq!(r.rows[0]["geo_lat"], json!(48.8));
    assert!(!r.text.contains("token"));
}

#[test]
fn excludes_prune_objects_cut_at_max_depth() {
    let s = spec("{ max_depth: 1, exclude: [$.a.b.secret] }");
    let r = run(&s, &[doc! { "a": { "b": { "secret": 1, "kept": 2 } } }]);
    assert_eq!(r.rows[0]["a"], json!(r#"{"b":{"kept":2}}"#));
}

#[test]
fn without_auto_columns_only_explicit_ones_exist() {
    let s = spec(indoc! {"
        auto_columns: false
        columns: [{ name: n, path: $.a.n, type: int64 }]
    "});
    let r = run(&s, &[doc! { "a": { "n": 3, "m": 4 }, "b": "x" }]);
    assert_eq!(columns(&r.schema), [("_ds", "DATE"), ("n", "INT64")]);
    assert_eq!(r.text, "{\"_ds\":\"2020-06-01\",\"n\":3}\n");
}

#[test]
fn type_drift_is_coerced() {
    let r = run(
        &FlattenSpec::default(),
        &[
            doc! { "points": 5, "score": 1, "flag": true },
            doc! { "points": "120", "score": 2.5, "flag": "yes" },
            doc! { "points": 7.5, "score": 3_i64, "flag": Bson::Null },
        ],
    );
    assert_eq!(
        columns(&r.schema)[1..],
        [
            ("points", "STRING"),
            ("score", "FLOAT64"),
            ("flag", "STRING")
        ]
    );
    let pick = |k: &str| {
        r.rows
            .iter()
            .map(|row| row.get(k).cloned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pick("points"),
        [Some(json!("5")), Some(json!("120")), Some(json!("7.5"))]
    );
    assert_eq!(
        pick("score"),
        [Some(json!(1.0)), Some(json!(2.5)), Some(json!(3.0))]
    );
    assert_eq!(
        pick("flag"),
        [Some(json!("true")), Some(json!("yes")), None]
    );
}

#[test]
fn nulls_register_a_column_without_typing_it() {
    let mut b = SchemaBuilder::new();
    let f = Flattener::new(&FlattenSpec::default()).unwrap();
    f.infer(&raw(&doc! { "a": Bson::Null, "b": Bson::Null }), &mut b)
        .unwrap();
    f.infer(&raw(&doc! { "b": 1 }), &mut b).unwrap();
    assert_eq!(b.null_only().collect::<Vec<_>>(), ["a"]);
    assert_eq!(columns(&b.finish())[1..], [("a", "STRING"), ("b", "INT64")]);
}

#[test]
fn every_bson_type_has_a_column_type() {
    let uuid = bson::Binary {
        subtype: bson::spec::BinarySubtype::Uuid,
        bytes: hex::decode("550e8400e29b41d4a716446655440000").unwrap(),
    };
    let r = run(
        &FlattenSpec::default(),
        &[doc! {
            "oid": bson::oid::ObjectId::parse_str("5ed445006564676500000000").unwrap(),
            "date": bson::DateTime::from_millis(1_591_012_800_123),
            "far": bson::DateTime::from_millis(253_402_300_800_000),
            "i32": 1,
            "i64": 1_i64 << 40,
            "f": 0.5,
            "nan": f64::NAN,
            "dec": "19.99".parse::<bson::Decimal128>().unwrap(),
            "dec_big": "1E-10".parse::<bson::Decimal128>().unwrap(),
            "bool": false,
            "s": "x",
            "uuid": uuid,
            "bin": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2, 3] },
            "ts": bson::Timestamp { time: 1_590_969_600, increment: 1 },
            "re": bson::Regex { pattern: "^a".into(), options: "i".into() },
            "js": Bson::JavaScriptCode("f()".into()),
            "sym": Bson::Symbol("s".into()),
            "min": Bson::MinKey,
            "max": Bson::MaxKey,
            "undef": Bson::Undefined,
        }],
    );
    assert_eq!(
        columns(&r.schema)[1..],
        [
            ("oid", "STRING"),
            ("date", "TIMESTAMP"),
            ("far", "STRING"),
            ("i32", "INT64"),
            ("i64", "INT64"),
            ("f", "FLOAT64"),
            ("nan", "STRING"),
            ("dec", "NUMERIC"),
            ("dec_big", "BIGNUMERIC"),
            ("bool", "BOOL"),
            ("s", "STRING"),
            ("uuid", "STRING"),
            ("bin", "BYTES"),
            ("ts", "TIMESTAMP"),
            ("re", "STRING"),
            ("js", "STRING"),
            ("sym", "STRING"),
            ("min", "STRING"),
            ("max", "STRING"),
            ("undef", "STRING"),
        ]
    );
    assert_eq!(
        r.rows[0],
        json!({
            "_ds": "2020-06-01",
            "oid": "5ed445006564676500000000",
            "date": "2020-06-01T12:00:00.123000Z",
            // Past 9999-12-31 and NaN fit no other type: their text.
            "far": r#"{"$date":{"$numberLong":"253402300800000"}}"#,
            "i32": 1,
            "i64": 1_i64 << 40,
            "f": 0.5,
            "nan": "NaN",
            "dec": "19.99",
            "dec_big": "0.0000000001",
            "bool": false,
            "s": "x",
            "uuid": "550e8400-e29b-41d4-a716-446655440000",
            "bin": "AQID",
            "ts": "2020-06-01T00:00:00.000000Z",
            "re": r#"{"$regularExpression":{"pattern":"^a","options":"i"}}"#,
            "js": r#"{"$code":"f()"}"#,
            "sym": r#"{"$symbol":"s"}"#,
            "min": r#"{"$minKey":1}"#,
            "max": r#"{"$maxKey":1}"#,
            "undef": r#"{"$undefined":true}"#,
        })
    );
}

#[test]
fn colliding_names_get_a_suffix_that_ignores_document_order() {
    let nested = doc! { "a": { "b": 1 } };
    let literal = doc! { "a__b": "x" };
    let forward = run(&FlattenSpec::default(), &[nested.clone(), literal.clone()]);
    let backward = run(&FlattenSpec::default(), &[literal, nested]);
    for r in [&forward, &backward] {
        assert_eq!(r.renames.len(), 1, "{:?}", r.renames);
        let (path, column) = &r.renames[0];
        assert_eq!(path, "$.a__b");
        assert!(column.starts_with("a__b__") && column.len() == "a__b__".len() + 8);
        assert_eq!(r.schema.get("a__b").unwrap().kind, ColumnType::Int64);
        assert_eq!(r.schema.get(column).unwrap().kind, ColumnType::String);
    }
    assert_eq!(forward.renames, backward.renames);
}

#[test]
fn names_that_differ_only_in_case_collide() {
    let r = run(
        &FlattenSpec::default(),
        &[doc! { "CamelCase": 1, "camelcase": 2, "Other-Name": 3, "other name": 4 }],
    );
    let names: Vec<_> = r.schema.columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names[2], "camelcase", "the canonical path keeps its name");
    assert!(names[1].starts_with("CamelCase__"));
    assert!(names[3].starts_with("Other_Name__") && names[4].starts_with("other_name__"));
    assert_eq!(r.renames.len(), 3);
    let lower: std::collections::BTreeSet<_> = names.iter().map(|n| n.to_lowercase()).collect();
    assert_eq!(lower.len(), names.len());
}

#[test]
fn a_lone_unusual_key_keeps_its_plain_name() {
    let r = run(
        &FlattenSpec::default(),
        &[doc! { "with space": 1, "1st": 2, "ключ": 3, "_ds": 4 }],
    );
    let names: Vec<_> = r.schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names[..4], ["_ds", "with_space", "_1st", "____"]);
    assert!(names[4].starts_with("_ds__"), "`_ds` is taken: {names:?}");
    assert_eq!(r.rows[0][names[4]], json!(4));
}

#[test]
fn duplicate_keys_read_like_bson_document() {
    let mut d = RawDocumentBuf::new();
    d.append("a", 1);
    d.append("b", "x");
    d.append("a", "two");
    let f = Flattener::new(&FlattenSpec::default()).unwrap();
    let mut b = SchemaBuilder::new();
    f.infer(&d, &mut b).unwrap();
    let schema = b.finish();
    let mut out = Vec::new();
    f.write_row(&d, day(), &schema, &mut out).unwrap();
    assert_eq!(out, b"{\"_ds\":\"2020-06-01\",\"a\":\"two\",\"b\":\"x\"}\n");
}

#[test]
fn a_flattener_is_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Flattener>();
    send_sync::<SchemaBuilder>();
}

#[test]
fn explicit_columns_read_the_last_of_repeated_keys() {
    let mut d = RawDocumentBuf::new();
    d.append("a", 1);
    d.append("b", "x");
    d.append("a", 2);
    let s = spec("{ auto_columns: false, columns: [{ name: a, path: $.a, type: int64 }] }");
    let f = Flattener::new(&s).unwrap();
    let mut out = Vec::new();
    f.write_row(&d, day(), &f.schema_builder().finish(), &mut out)
        .unwrap();
    assert_eq!(out, b"{\"_ds\":\"2020-06-01\",\"a\":2}\n");
    // With automatic columns the walk finds the repeat too, and the row is
    // written again from the deduplicated document: the same value.
    let s = spec("{ columns: [{ name: a, path: $.a, type: int64 }] }");
    let f = Flattener::new(&s).unwrap();
    let mut schema = f.schema_builder();
    f.infer(&d, &mut schema).unwrap();
    out.clear();
    f.write_row(&d, day(), &schema.finish(), &mut out).unwrap();
    let row: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(row, json!({ "_ds": "2020-06-01", "a": 2, "b": "x" }));
}

#[test]
fn rows_conform_to_a_widened_schema() {
    let f = Flattener::new(&FlattenSpec::default()).unwrap();
    let d =
        raw(&doc! { "n": 5, "f": 1, "when": bson::DateTime::from_millis(0), "o": { "k": true } });
    let column = |name: &str, kind| Column {
        name: name.into(),
        kind,
        repeated: false,
        fields: Vec::new(),
    };
    let schema = TableSchema {
        columns: vec![
            column("extra", ColumnType::Bool),
            column("_ds", ColumnType::Date),
            column("n", ColumnType::String),
            column("f", ColumnType::Float64),
            column("when", ColumnType::String),
            column("o__k", ColumnType::String),
        ],
    };
    let mut out = Vec::new();
    f.write_row(&d, day(), &schema, &mut out).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "{\"_ds\":\"2020-06-01\",\"n\":\"5\",\"f\":1.0,\"when\":\"1970-01-01T00:00:00.000000Z\",\"o__k\":\"true\"}\n"
    );
}

#[test]
fn a_path_missing_from_the_schema_is_an_error() {
    let f = Flattener::new(&FlattenSpec::default()).unwrap();
    let schema = TableSchema {
        columns: vec![Column {
            name: "_ds".into(),
            kind: ColumnType::Date,
            repeated: false,
            fields: Vec::new(),
        }],
    };
    let mut out = b"kept".to_vec();
    let err = f
        .write_row(&raw(&doc! { "a": { "b c": 1 } }), day(), &schema, &mut out)
        .unwrap_err();
    assert_eq!(out, b"kept");
    assert_eq!(
        err.to_string(),
        "`$.a['b c']` belongs in column `a__b_c`, which the schema lacks: pass 2 must read the documents pass 1 inferred the schema from"
    );
}

#[test]
fn bad_rules_are_reported() {
    let cases = [
        ("separator: '-'", "invalid separator `-`"),
        ("max_depth: 0", "invalid `max_depth` 0"),
        ("exclude: ['$.a[0]']", "invalid `exclude` path `$.a[0]`"),
        (
            "columns: [{ name: x, path: '$[', type: int64 }]",
            "column `x`: invalid JSONPath `$[`",
        ),
        (
            "columns: [{ name: x, path: $.a, type: int64, default: abc }]",
            "column `x`: default \"abc\" is not a valid INT64",
        ),
        (
            "columns: [{ name: _ds, path: $.a, type: date }]",
            "invalid column name `_ds`",
        ),
    ];
    for (yaml, message) in cases {
        let err = Flattener::new(&spec(yaml)).unwrap_err().to_string();
        assert!(err.starts_with(message), "{yaml}: {err}");
    }
}

#[test]
fn nesting_beyond_the_limit_is_an_error_with_a_path() {
    let mut d = doc! { "leaf": 1 };
    for _ in 0..crate::extjson::MAX_NESTING + 1 {
        d = doc! { "d": d };
    }
    let f = Flattener::new(&spec("max_depth: 1000")).unwrap();
    let err = f.infer(&raw(&d), &mut SchemaBuilder::new()).unwrap_err();
    assert!(matches!(err, FlattenError::TooDeep { .. }), "{err}");
    assert!(err.to_string().contains("`$.d.d.d."), "{err}");
}

#[test]
fn a_row_writer_writes_what_write_row_writes() {
    let opts = crate::demo::DemoOptions {
        users: 50,
        orders: 50,
        products: 0,
        ..Default::default()
    };
    let docs: Vec<_> = crate::demo::orders(&opts)
        .chain(crate::demo::users(&opts))
        .map(|d| raw(&d))
        .collect();
    let f = Flattener::new(&spec("max_depth: 3")).unwrap();
    let mut b = f.schema_builder();
    for d in &docs {
        f.infer(d, &mut b).unwrap();
    }
    let schema = b.finish();
    let (mut a, mut c) = (Vec::new(), Vec::new());
    let mut w = f.row_writer(&schema).unwrap();
    for d in &docs {
        f.write_row(d, day(), &schema, &mut a).unwrap();
        w.write_row(d, day(), &mut c).unwrap();
    }
    assert_eq!(a, c);
    for line in a.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let row: serde_json::Map<String, Value> = serde_json::from_slice(line).unwrap();
        assert_eq!(row.keys().next().map(String::as_str), Some("_ds"));
        for (k, v) in &row {
            let kind = schema
                .get(k)
                .unwrap_or_else(|| panic!("{k} not in schema"))
                .kind;
            let ok = match kind {
                ColumnType::Int64 => v.is_i64(),
                ColumnType::Float64 => v.is_number(),
                ColumnType::Bool => v.is_boolean(),
                _ => v.is_string(),
            };
            assert!(ok, "{k}: {v} is not a valid {}", kind.bigquery_name());
        }
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-c_]{1,3}",
        1 => "[A-Ca-c]{1,2}",
        1 => "[a-c]{0,2}[ .\\-é1$]{1,2}",
        1 => Just("a__b".to_owned()),
        1 => Just("_ds".to_owned()),
    ]
}

fn arb_value() -> impl Strategy<Value = Bson> {
    let leaf = prop_oneof![
        "[a-z\"\\\\\n]{0,4}".prop_map(Bson::String),
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<bool>().prop_map(Bson::Boolean),
        (-1e6f64..1e6).prop_map(Bson::Double),
        Just(Bson::Null),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            proptest::collection::vec((arb_key(), inner), 0..4)
                .prop_map(|kv| Bson::Document(kv.into_iter().collect())),
        ]
    })
}

fn arb_doc() -> impl Strategy<Value = Document> {
    proptest::collection::vec((arb_key(), arb_value()), 0..8)
        .prop_map(|kv| kv.into_iter().collect())
}

/// Every non-null scalar of a JSON value: numbers apart, as `f64`.
fn scalars(v: &Value, numbers: &mut Vec<f64>, others: &mut Vec<String>) {
    match v {
        Value::Null => {}
        Value::Array(a) => a.iter().for_each(|v| scalars(v, numbers, others)),
        Value::Object(o) => o.values().for_each(|v| scalars(v, numbers, others)),
        Value::Number(n) => numbers.push(n.as_f64().unwrap()),
        other => others.push(other.to_string()),
    }
}

/// serde_json's default parser may miss the last digit of a double, and
/// JSON columns are parsed twice: numbers match within a relative 1e-12.
fn same_numbers(mut a: Vec<f64>, mut b: Vec<f64>) -> bool {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| (x - y).abs() <= 1e-12 * x.abs().max(1.0))
}

proptest! {
    // Failures print their minimal case; nothing is written to the tree.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_same_document_gives_the_same_bytes(doc in arb_doc(), depth in 1u32..4) {
        let s = FlattenSpec { max_depth: depth, ..FlattenSpec::default() };
        let first = run(&s, std::slice::from_ref(&doc));
        let again = run(&s, &[doc]);
        prop_assert_eq!(first.text, again.text);
    }

    #[test]
    fn column_names_are_unique_and_valid(docs in proptest::collection::vec(arb_doc(), 1..4)) {
        let r = run(&FlattenSpec::default(), &docs);
        let mut seen = std::collections::BTreeSet::new();
        for c in &r.schema.columns {
            prop_assert!(crate::spec::names::is_column_name(&c.name), "{}", c.name);
            prop_assert!(seen.insert(c.name.to_ascii_lowercase()), "{} twice", c.name);
        }
    }

    #[test]
    fn no_scalar_is_lost(doc in arb_doc(), depth in 1u32..4) {
        let s = FlattenSpec { max_depth: depth, ..FlattenSpec::default() };
        let r = run(&s, std::slice::from_ref(&doc));
        let (mut numbers, mut others) = (Vec::new(), Vec::new());
        scalars(&Bson::Document(doc).into_relaxed_extjson(), &mut numbers, &mut others);
        let (mut found_numbers, mut found_others) = (Vec::new(), Vec::new());
        for (k, v) in r.rows[0].as_object().unwrap() {
            if k == "_ds" {
                continue;
            }
            let v = match r.schema.get(k).unwrap().kind {
                ColumnType::Json => serde_json::from_str(v.as_str().unwrap()).unwrap(),
                _ => v.clone(),
            };
            scalars(&v, &mut found_numbers, &mut found_others);
        }
        others.sort();
        found_others.sort();
        prop_assert_eq!(found_others, others);
        prop_assert!(same_numbers(found_numbers.clone(), numbers.clone()), "{:?} vs {:?}", found_numbers, numbers);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// With `items` exploded: one child row per element, every table's
    /// names valid and unique, the same bytes every time, and every scalar
    /// of the document in some table's row.
    #[test]
    fn exploding_loses_nothing_and_is_deterministic(
        mut doc in arb_doc(),
        items in proptest::collection::vec(arb_value(), 0..5),
    ) {
        doc.insert("items", Bson::Array(items.clone()));
        let t = Tables::new(&spec("arrays: { rules: [{ path: $.items, policy: explode }] }")).unwrap();
        let raws = [raw(&doc)];
        let out = t.flatten_all(&raws, day()).unwrap();
        let again = t.flatten_all(&raws, day()).unwrap();
        for (a, b) in out.iter().zip(&again) {
            prop_assert_eq!(&a.rows, &b.rows);
        }
        let child_rows = String::from_utf8_lossy(&out[1].rows).lines().count();
        prop_assert_eq!(child_rows, items.len());
        let (mut numbers, mut others) = (Vec::new(), Vec::new());
        scalars(&Bson::Document(doc).into_relaxed_extjson(), &mut numbers, &mut others);
        let (mut found_numbers, mut found_others) = (Vec::new(), Vec::new());
        for table in &out {
            let mut seen = std::collections::BTreeSet::new();
            for c in &table.schema.columns {
                prop_assert!(crate::spec::names::is_column_name(&c.name), "{}", c.name);
                prop_assert!(seen.insert(c.name.to_ascii_lowercase()), "{} twice", c.name);
            }
            for line in String::from_utf8_lossy(&table.rows).lines() {
                let row: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
                for (k, v) in &row {
                    if ["_ds", "_root_id", "_idx", "_parent_key"].contains(&k.as_str()) {
                        continue;
                    }
                    // A `value` column that mixes elements is STRING: it
                    // holds numbers and booleans as their text, objects and
                    // arrays as JSON text (generated strings never start
                    // with a digit, `-` or a bracket).
                    let v = match (table.schema.get(k).unwrap().kind, v.as_str()) {
                        (ColumnType::Json, Some(text)) => serde_json::from_str(text).unwrap(),
                        (ColumnType::String, Some(text))
                            if text.starts_with(|c: char| c.is_ascii_digit() || "-[{".contains(c)) =>
                        {
                            serde_json::from_str(text).unwrap()
                        }
                        _ => v.clone(),
                    };
                    scalars(&v, &mut found_numbers, &mut found_others);
                }
            }
        }
        // Booleans coerced to STRING read `true`: compare texts.
        let text = |v: Vec<String>| {
            let mut v: Vec<String> = v
                .into_iter()
                .map(|s| serde_json::from_str::<String>(&s).unwrap_or(s))
                .collect();
            v.sort();
            v
        };
        prop_assert_eq!(text(found_others), text(others));
        prop_assert!(same_numbers(found_numbers.clone(), numbers.clone()), "{:?} vs {:?}", found_numbers, numbers);
    }
}

mod explode {
    use super::*;

    fn tables(yaml: &str, docs: &[Document]) -> Vec<(String, Vec<String>, Vec<Value>)> {
        let t = Tables::new(&spec(yaml)).unwrap();
        let raws: Vec<_> = docs.iter().map(raw).collect();
        let names = t.names("orders");
        t.flatten_all(&raws, day())
            .unwrap()
            .into_iter()
            .zip(names)
            .map(|(f, name)| {
                let cols = f
                    .schema
                    .columns
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.kind.bigquery_name()))
                    .collect();
                let rows = String::from_utf8(f.rows)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect();
                (name, cols, rows)
            })
            .collect()
    }

    #[test]
    fn arrays_become_child_tables_keyed_to_their_root_and_parent() {
        let out = tables(
            indoc! {"
                arrays:
                  rules:
                    - path: $.items
                      policy: explode
                      flatten:
                        arrays:
                          rules: [{ path: $.discounts, policy: explode }]
                    - path: $.tags
                      policy: explode
            "},
            &[
                doc! {"_id": 7, "items": [
                    {"sku": "a", "discounts": [5, 10]},
                    {"sku": "b", "_idx": "theirs"},
                ], "tags": ["x"], "n": 1},
                doc! {"_id": 8, "items": "drifted"},
            ],
        );
        let names: Vec<_> = out.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "orders",
                "orders__items",
                "orders__items__discounts",
                "orders__tags"
            ]
        );
        assert_eq!(
            out[0].1,
            ["_ds DATE", "_id INT64", "n INT64", "items STRING"]
        );
        assert_eq!(
            out[0].2,
            [
                json!({"_ds": "2020-06-01", "_id": 7, "n": 1}),
                json!({"_ds": "2020-06-01", "_id": 8, "items": "drifted"})
            ]
        );
        assert_eq!(
            out[1].1,
            ["_ds DATE", "_root_id STRING", "_idx INT64", "sku STRING"]
        );
        assert_eq!(
            out[1].2,
            [
                json!({"_ds": "2020-06-01", "_root_id": "7", "_idx": 0, "sku": "a"}),
                json!({"_ds": "2020-06-01", "_root_id": "7", "_idx": 1, "sku": "b"})
            ]
        );
        assert_eq!(
            out[2].1,
            [
                "_ds DATE",
                "_root_id STRING",
                "_parent_key STRING",
                "_idx INT64",
                "value INT64"
            ]
        );
        assert_eq!(
            out[2].2,
            [
                json!({"_ds": "2020-06-01", "_root_id": "7", "_parent_key": "0", "_idx": 0, "value": 5}),
                json!({"_ds": "2020-06-01", "_root_id": "7", "_parent_key": "0", "_idx": 1, "value": 10})
            ]
        );
        assert_eq!(out[3].2.len(), 1);
    }

    #[test]
    fn rules_inside_an_exploded_array_are_refused() {
        let err = Tables::new(&spec(indoc! {"
            exclude: [$.items.price]
            arrays: { rules: [{ path: $.items, policy: explode }] }
        "}))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`$.items.price` lies inside the exploded array `$.items`: rules for its elements go in that rule's `flatten`, with paths relative to the element"
        );
        let err = Tables::new(&spec(indoc! {"
            arrays:
              rules:
                - { path: $.a.b, policy: explode }
                - { path: $.a__b, policy: explode }
        "}))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`$.a.b` and `$.a__b` both explode into table `t__a__b`: give one a `table:` name of its own"
        );
        let err = Tables::new(&spec("arrays: { default: explode }")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`arrays.default: explode` at `$`"),
            "{err}"
        );
    }
}

mod conflicts {
    use super::*;

    fn docs() -> Vec<Document> {
        vec![
            doc! {"_id": 1, "n": 1, "x": 1.5},
            doc! {"_id": 2, "n": "two", "x": 2},
            doc! {"_id": 3, "n": 3, "x": f64::NAN},
        ]
    }

    #[test]
    fn variant_keeps_the_majority_type_and_moves_the_rest_aside() {
        let r = run(&spec("on_type_conflict: variant"), &docs());
        assert_eq!(
            columns(&r.schema)[1..],
            [
                ("_id", "INT64"),
                ("n", "INT64"),
                ("n__v_string", "STRING"),
                ("x", "FLOAT64"),
                ("x__v_string", "STRING")
            ]
        );
        assert_eq!(
            r.rows[0],
            json!({"_ds": "2020-06-01", "_id": 1, "n": 1, "x": 1.5})
        );
        // An integer fits a FLOAT64 column; NaN does not, and moves aside
        // as text instead of a silent NULL (issue 10).
        assert_eq!(
            r.rows[1],
            json!({"_ds": "2020-06-01", "_id": 2, "n__v_string": "two", "x": 2.0})
        );
        assert_eq!(
            r.rows[2],
            json!({"_ds": "2020-06-01", "_id": 3, "n": 3, "x__v_string": "NaN"})
        );
    }

    #[test]
    fn variant_follows_the_baseline_type_over_the_majority() {
        let f = Flattener::new(&spec("on_type_conflict: variant")).unwrap();
        let mut b = f.schema_builder();
        for d in docs() {
            f.infer(&raw(&d), &mut b).unwrap();
        }
        let baseline = TableSchema {
            columns: vec![Column {
                name: "n".into(),
                kind: ColumnType::String,
                repeated: false,
                fields: Vec::new(),
            }],
        };
        let schema = b.finish_against(Some(&baseline));
        assert_eq!(
            columns(&schema)[2..4],
            [("n", "STRING"), ("n__v_int64", "INT64")]
        );
        let mut out = Vec::new();
        f.write_row(&raw(&docs()[0]), day(), &schema, &mut out)
            .unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains(r#""n__v_int64":1"#));
    }

    #[test]
    fn reject_fails_the_document_naming_the_path_and_both_types() {
        let f = Flattener::new(&spec("on_type_conflict: reject")).unwrap();
        let mut b = f.schema_builder();
        let raws: Vec<_> = docs().iter().map(raw).collect();
        for d in &raws {
            f.infer(d, &mut b).unwrap();
        }
        let schema = b.finish();
        assert_eq!(
            columns(&schema)[1..],
            [("_id", "INT64"), ("n", "INT64"), ("x", "FLOAT64")]
        );
        let mut out = b"kept".to_vec();
        f.write_row(&raws[0], day(), &schema, &mut out).unwrap();
        let mark = out.len();
        let err = f.write_row(&raws[1], day(), &schema, &mut out).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`$.n` is a STRING value, but column `n` is INT64"
        );
        assert_eq!(out.len(), mark, "a rejected document writes nothing");
        let err = f.write_row(&raws[2], day(), &schema, &mut out).unwrap_err();
        assert_eq!(err.to_string(), "`$.x` is NaN, but column `x` is FLOAT64");
    }

    #[test]
    fn reject_covers_explicit_columns_that_do_not_convert() {
        let s = spec(indoc! {"
            on_type_conflict: reject
            auto_columns: false
            columns: [{ name: qty, path: $.q, type: int64 }]
        "});
        let f = Flattener::new(&s).unwrap();
        let schema = f.schema_builder().finish();
        let mut out = Vec::new();
        f.write_row(&raw(&doc! {"q": "3"}), day(), &schema, &mut out)
            .unwrap();
        let err = f
            .write_row(&raw(&doc! {"q": "three"}), day(), &schema, &mut out)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`$.q` is a STRING value, but column `qty` is INT64"
        );
    }

    #[test]
    fn ignore_skips_fields_the_schema_lacks() {
        let f = Flattener::new(&spec("on_new_field: ignore")).unwrap();
        let schema = TableSchema {
            columns: vec![
                Column {
                    name: "_ds".into(),
                    kind: ColumnType::Date,
                    repeated: false,
                    fields: Vec::new(),
                },
                Column {
                    name: "a".into(),
                    kind: ColumnType::Int64,
                    repeated: false,
                    fields: Vec::new(),
                },
            ],
        };
        let mut out = Vec::new();
        f.write_row(&raw(&doc! {"a": 1, "new": 2}), day(), &schema, &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"_ds\":\"2020-06-01\",\"a\":1}\n"
        );
    }
}

mod records {
    use super::*;

    #[test]
    fn arrays_of_objects_become_repeated_records_with_typed_fields() {
        let s = spec("arrays: { default: repeated }");
        let r = run(
            &s,
            &[
                doc! { "lines": [
                    {"sku": "a", "qty": 2, "at": bson::DateTime::from_millis(0)},
                    null,
                    {"sku": "b", "qty": 2.5, "odd key": {"x": 1}},
                ]},
                doc! { "lines": [] },
            ],
        );
        let lines = &r.schema.columns[1];
        assert_eq!(
            (lines.name.as_str(), lines.kind, lines.repeated),
            ("lines", ColumnType::Record, true)
        );
        let fields: Vec<_> = lines
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.kind.bigquery_name()))
            .collect();
        assert_eq!(
            fields,
            [
                ("sku", "STRING"),
                ("qty", "FLOAT64"),
                ("at", "TIMESTAMP"),
                ("odd_key", "JSON")
            ]
        );
        assert_eq!(
            r.rows[0]["lines"],
            json!([
                {"sku": "a", "qty": 2.0, "at": "1970-01-01T00:00:00.000000Z"},
                {"sku": "b", "qty": 2.5, "odd_key": "{\"x\":1}"}
            ])
        );
        assert_eq!(r.rows[1], json!({"_ds": "2020-06-01"}));
    }

    #[test]
    fn arrays_of_only_empty_objects_stay_json_text() {
        // Found by the typed path's differential test (issue 31): such a
        // RECORD had no field, and the day's Parquet file failed.
        let s = spec("arrays: { default: repeated }");
        let r = run(
            &s,
            &[
                doc! { "tags": [{}, {}] },
                doc! { "tags": [] },
                doc! { "n": 1 },
            ],
        );
        let cols = repeated_columns(&r.schema);
        assert_eq!(cols[1..], [("tags", "JSON", true), ("n", "INT64", false)]);
        assert_eq!(r.rows[0]["tags"], json!(["{}", "{}"]));
        // An empty array has no element, as any REPEATED column's.
        assert_eq!(r.rows[1]["tags"], json!(null));
    }

    #[test]
    fn objects_mixed_with_scalars_or_colliding_keys_stay_json_text() {
        let s = spec("arrays: { default: repeated }");
        let r = run(
            &s,
            &[doc! { "mixed": [{"a": 1}, 2], "clash": [{"A b": 1, "a_b": 2}] }],
        );
        let cols = repeated_columns(&r.schema);
        assert_eq!(
            cols[1..],
            [("mixed", "STRING", true), ("clash", "JSON", true)]
        );
        assert_eq!(r.rows[0]["mixed"], json!(["{\"a\":1}", "2"]));
        assert_eq!(r.rows[0]["clash"], json!(["{\"A b\":1,\"a_b\":2}"]));
    }
}

// ---------------------------------------------------------------------------
// Hostile documents (issue 14): 10,000 generated documents of every BSON
// type, nested up to MongoDB's 100 levels, with empty, dotted, `$`,
// unicode and very long keys, strings of up to 4 MiB, and some strings'
// bytes made invalid UTF-8, which MongoDB can hold.
// ---------------------------------------------------------------------------

fn hostile_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_]{1,6}",
        1 => Just(String::new()),
        1 => "[a-z]{0,3}\\.[a-z]{0,3}",
        1 => "\\$[a-z]{0,5}",
        1 => "[\u{e9}\u{4e2d}\u{1f600}\u{200b}a]{1,4}",
        1 => "[a-z]{300,1000}",
    ]
}

fn hostile_leaf() -> impl Strategy<Value = Bson> {
    // Weights in hundredths, so that the large strings stay rare.
    prop_oneof![
        400 => "\\PC{0,12}".prop_map(Bson::String),
        // About one document in 40 has a string of up to 4 MiB.
        1 => (1usize..4 << 20).prop_map(|n| Bson::String("x".repeat(n))),
        200 => any::<i32>().prop_map(Bson::Int32),
        200 => any::<i64>().prop_map(Bson::Int64),
        200 => any::<f64>().prop_map(Bson::Double),
        100 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0)].prop_map(Bson::Double),
        100 => any::<bool>().prop_map(Bson::Boolean),
        100 => Just(Bson::Null),
        100 => any::<i64>().prop_map(|ms| Bson::DateTime(bson::DateTime::from_millis(ms))),
        100 => any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(bson::oid::ObjectId::from_bytes(b))),
        100 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(|bytes| Bson::Binary(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes })),
        100 => prop_oneof![Just("1.5"), Just("-0"), Just("NaN"), Just("Infinity"), Just("1E+6144"), Just("12345678901234567890123456789012.34")]
            .prop_map(|s| Bson::Decimal128(s.parse().unwrap())),
        100 => (any::<u32>(), any::<u32>()).prop_map(|(time, increment)| Bson::Timestamp(bson::Timestamp { time, increment })),
        100 => Just(Bson::MinKey),
        100 => Just(Bson::MaxKey),
        100 => Just(Bson::Undefined),
        100 => "[a-z]{0,5}".prop_map(|p| Bson::RegularExpression(bson::Regex { pattern: p, options: "im".into() })),
        100 => "[a-z()]{0,8}".prop_map(Bson::JavaScriptCode),
        100 => "[a-z]{0,5}".prop_map(Bson::Symbol),
    ]
}

fn hostile_value() -> impl Strategy<Value = Bson> {
    hostile_leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Bson::Array),
            proptest::collection::vec((hostile_key(), inner), 0..5)
                .prop_map(|kv| Bson::Document(kv.into_iter().collect())),
        ]
    })
}

/// A document, sometimes wrapped `depth` levels deep, and, when `corrupt`
/// is set, with a string `"\u{7}bad"` whose first byte is made 0xFF: the
/// document stays well-formed BSON, with invalid UTF-8 inside.
pub(crate) fn hostile_doc() -> impl Strategy<Value = (Vec<u8>, bool)> {
    (
        proptest::collection::vec((hostile_key(), hostile_value()), 0..8),
        prop_oneof![4 => Just(0usize), 1 => 1usize..99],
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(kv, depth, corrupt)| {
            let mut doc: Document = kv.into_iter().collect();
            doc.insert("_id", bson::oid::ObjectId::from_bytes([1; 12]));
            if corrupt {
                doc.insert("broken", "\u{7}bad");
            }
            for _ in 0..depth {
                doc = doc! { "_id": 1, "d": doc };
            }
            let mut bytes = RawDocumentBuf::from_document(&doc).unwrap().into_bytes();
            if corrupt {
                let at = bytes.windows(4).position(|w| w == b"\x07bad").unwrap();
                bytes[at] = 0xff;
            }
            (bytes, corrupt)
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Flattening never panics: each document is a row of each table, a
    /// reject with the path of its conflict, or an error that names the
    /// path of the bad value (which the engine sends to the rejects). Its
    /// raw archive line parses back to the same BSON bytes.
    #[test]
    fn hostile_documents_are_rows_or_located((bytes, broken) in hostile_doc()) {
        let doc = RawDocumentBuf::from_bytes(bytes.clone()).unwrap();
        let tables = Tables::new(&spec("arrays: { default: json }\non_type_conflict: reject")).unwrap();
        match tables.flatten_all_rejecting(std::slice::from_ref(&doc), day()) {
            Ok((out, rejected)) => {
                prop_assert!(!broken, "invalid UTF-8 flattened");
                let rows = String::from_utf8_lossy(&out[0].rows).lines().count();
                prop_assert_eq!(rows + rejected.len(), 1);
                for r in &rejected {
                    prop_assert!(r.source.to_string().contains("`$"), "{}", r.source);
                }
            }
            Err(e) => {
                prop_assert!(broken, "a valid document failed: {e}");
                prop_assert!(e.to_string().contains("`$"), "not located: {e}");
            }
        }
        // The raw archive's line gives back the same bytes, whatever the
        // document holds; invalid UTF-8 is kept as the bytes themselves.
        let mut line = Vec::new();
        let kind = crate::extjson::write_archive_line(&doc, &mut line);
        if broken {
            prop_assert!(matches!(kind, crate::extjson::ArchiveLine::Bytes(_)), "{kind:?}");
        }
        let back = crate::extjson::read_archive_line(&line).map_err(TestCaseError::fail)?;
        prop_assert!(back.as_bytes() == &bytes[..], "the line does not give the same bytes back: {}", String::from_utf8_lossy(&line));
    }
}
