//! The demo generator's tests: determinism, counts, boundaries and the
//! shapes the pipelines rely on.

use std::collections::HashSet;

use bson::spec::{BinarySubtype, ElementType};
use bson::Bson;

use super::*;

type Generate = fn(&DemoOptions) -> Box<dyn Iterator<Item = Document>>;

const COLLECTIONS: [(&str, Generate); 3] = [
    ("users", |o| Box::new(users(o))),
    ("orders", |o| Box::new(orders(o))),
    ("products", |o| Box::new(products(o))),
];

fn bytes(documents: impl Iterator<Item = Document>) -> Vec<Vec<u8>> {
    documents
        .map(|document| {
            let mut out = Vec::new();
            document
                .to_writer(&mut out)
                .expect("generated documents serialize");
            out
        })
        .collect()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[test]
fn same_seed_gives_identical_bytes() {
    let opts = DemoOptions::default();
    for (name, generate) in COLLECTIONS {
        assert_eq!(bytes(generate(&opts)), bytes(generate(&opts)), "{name}");
    }
}

#[test]
fn different_seed_gives_different_documents() {
    let a = DemoOptions::default();
    let b = DemoOptions { seed: 43, ..a };
    for (name, generate) in COLLECTIONS {
        let (a, b) = (bytes(generate(&a)), bytes(generate(&b)));
        let same = a.iter().zip(&b).filter(|(a, b)| a == b).count();
        assert_eq!(same, 0, "{name}: {same} documents unchanged by the seed");
    }
}

#[test]
fn counts_equal_the_options() {
    let opts = DemoOptions {
        users: 17,
        orders: 3,
        products: 0,
        ..DemoOptions::default()
    };
    assert_eq!(users(&opts).count(), 17);
    assert_eq!(orders(&opts).count(), 3);
    assert_eq!(products(&opts).count(), 0);
    let opts = DemoOptions::default();
    assert_eq!(users(&opts).count(), 3000);
    assert_eq!(orders(&opts).count(), 5000);
    assert_eq!(products(&opts).count(), 1000);
}

#[test]
fn empty_referenced_collections_do_not_panic() {
    let opts = DemoOptions {
        users: 0,
        products: 0,
        orders: 50,
        ..DemoOptions::default()
    };
    assert_eq!(orders(&opts).count(), 50);
    let opts = DemoOptions { users: 1, ..opts };
    let user = users(&opts).next().unwrap();
    assert_eq!(user.get("referrer_id"), Some(&Bson::Null));
}

/// `(path, allowed types)`; `[]` steps into every array element and
/// `None` allows the field to be absent.
type Shape = Vec<(String, Vec<Option<ElementType>>)>;

fn shape(rules: &[(&str, &[Option<ElementType>])]) -> Shape {
    rules
        .iter()
        .map(|(path, allowed)| (path.to_string(), allowed.to_vec()))
        .collect()
}

fn with_address(mut rules: Shape, prefix: &str) -> Shape {
    use ElementType::{Double as F, EmbeddedDocument as D, String as S};
    rules.push((prefix.to_string(), vec![Some(D)]));
    for (field, ty) in [
        ("street", S),
        ("city", S),
        ("country", S),
        ("zip", S),
        ("geo", D),
        ("geo.lat", F),
        ("geo.lon", F),
    ] {
        rules.push((format!("{prefix}.{field}"), vec![Some(ty)]));
    }
    rules
}

fn user_shape() -> Shape {
    use ElementType::*;
    let rules = shape(&[
        ("_id", &[Some(ObjectId)]),
        ("user_id", &[Some(Int64)]),
        ("email", &[Some(String)]),
        ("name", &[Some(String)]),
        ("created_at", &[Some(DateTime)]),
        ("created_at_iso", &[Some(String)]),
        ("updated_at", &[Some(DateTime)]),
        ("tags", &[Some(Array)]),
        ("tags.[]", &[Some(String)]),
        ("preferences", &[Some(EmbeddedDocument)]),
        ("preferences.newsletter", &[Some(Boolean)]),
        ("preferences.language", &[Some(String)]),
        ("loyalty_points", &[Some(Int32)]),
        ("balance", &[Some(Double)]),
        ("referrer_id", &[Some(Null), Some(ObjectId)]),
        ("api_key_uuid", &[Some(Binary)]),
        ("signup_source", &[Some(String)]),
    ]);
    with_address(rules, "address")
}

fn order_shape() -> Shape {
    use ElementType::*;
    let rules = shape(&[
        ("_id", &[Some(ObjectId)]),
        ("order_id", &[Some(Int64)]),
        ("created_at", &[Some(DateTime)]),
        ("status", &[Some(String)]),
        ("customer", &[Some(EmbeddedDocument)]),
        ("customer.user_id", &[Some(Int64)]),
        ("customer.email", &[Some(String)]),
        ("customer.name", &[Some(String)]),
        ("items", &[Some(Array)]),
        ("items.[]", &[Some(EmbeddedDocument)]),
        ("items.[].sku", &[Some(String)]),
        ("items.[].product_id", &[Some(Int64)]),
        ("items.[].name", &[Some(String)]),
        ("items.[].quantity", &[Some(Int32)]),
        ("items.[].unit_price", &[Some(Double)]),
        ("items.[].discounts", &[Some(Array)]),
        ("items.[].discounts.[]", &[Some(String)]),
        ("payment", &[Some(EmbeddedDocument)]),
        ("payment.method", &[Some(String)]),
        ("payment.card", &[Some(Null), Some(EmbeddedDocument)]),
        ("payment.card.brand", &[Some(String)]),
        ("payment.card.last4", &[Some(String)]),
        ("payment.amount", &[Some(Double)]),
        ("payment.currency", &[Some(String)]),
        ("payment.paid_at", &[Some(Null), Some(DateTime)]),
        ("shipping", &[Some(EmbeddedDocument)]),
        ("shipping.carrier", &[Some(String)]),
        ("shipping.tracking", &[Some(Binary)]),
        ("notes", &[None, Some(String)]),
        ("total", &[Some(Double)]),
    ]);
    with_address(with_address(rules, "customer.address"), "shipping.address")
}

fn product_shape() -> Shape {
    use ElementType::*;
    shape(&[
        ("_id", &[Some(ObjectId)]),
        ("product_id", &[Some(Int64)]),
        ("sku", &[Some(String)]),
        ("name", &[Some(String)]),
        ("created_at", &[Some(DateTime)]),
        ("category", &[Some(String)]),
        ("attributes", &[Some(EmbeddedDocument)]),
        ("attributes.color", &[Some(String)]),
        ("attributes.size", &[Some(String)]),
        ("attributes.material", &[Some(String)]),
        ("attributes.weight_grams", &[Some(Int32)]),
        ("attributes.dimensions", &[Some(EmbeddedDocument)]),
        ("attributes.dimensions.w", &[Some(Double)]),
        ("attributes.dimensions.h", &[Some(Double)]),
        ("attributes.dimensions.d", &[Some(Double)]),
        ("price", &[Some(Double)]),
        ("price_history", &[Some(Array)]),
        ("price_history.[]", &[Some(EmbeddedDocument)]),
        ("price_history.[].at", &[Some(DateTime)]),
        ("price_history.[].price", &[Some(Double)]),
        ("tags", &[Some(Array)]),
        ("tags.[]", &[Some(String)]),
        ("in_stock", &[Some(Boolean)]),
        ("stock", &[Some(Int32), Some(Int64)]),
        ("supplier", &[Some(Null), Some(EmbeddedDocument)]),
        ("supplier.name", &[Some(String)]),
        ("supplier.country", &[Some(String)]),
        ("supplier.contact_email", &[Some(String)]),
        ("image_digest", &[Some(Binary)]),
    ])
}

/// Types found at `path`: `None` where absent, `Undefined` where the
/// path runs into the wrong kind of container (never allowed). Under a
/// null parent nothing is reported: the parent's own rule decides.
fn types_at(document: &Document, path: &str) -> Vec<Option<ElementType>> {
    fn walk(value: Option<&Bson>, path: &[&str], out: &mut Vec<Option<ElementType>>) {
        let Some((head, rest)) = path.split_first() else {
            out.push(value.map(Bson::element_type));
            return;
        };
        match (value, *head) {
            (None, _) => out.push(None),
            (Some(Bson::Null), _) => {}
            (Some(Bson::Array(items)), "[]") => {
                items.iter().for_each(|item| walk(Some(item), rest, out))
            }
            (Some(Bson::Document(inner)), key) if key != "[]" => walk(inner.get(key), rest, out),
            _ => out.push(Some(ElementType::Undefined)),
        }
    }
    let segments: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk(document.get(segments[0]), &segments[1..], &mut out);
    out
}

fn conforms(document: &Document, shape: &Shape) -> bool {
    let known: HashSet<&str> = shape
        .iter()
        .filter(|(p, _)| !p.contains('.'))
        .map(|(p, _)| p.as_str())
        .collect();
    document.keys().all(|key| known.contains(key.as_str()))
        && shape.iter().all(|(path, allowed)| {
            types_at(document, path)
                .iter()
                .all(|found| allowed.contains(found))
        })
}

#[test]
fn two_to_five_percent_of_documents_drift() {
    let opts = DemoOptions::default();
    let shapes = [user_shape(), order_shape(), product_shape()];
    for ((name, generate), shape) in COLLECTIONS.into_iter().zip(&shapes) {
        let documents: Vec<Document> = generate(&opts).collect();
        let drifted: Vec<usize> = (0..documents.len())
            .filter(|&i| !conforms(&documents[i], shape))
            .collect();
        let share = drifted.len() as f64 / documents.len() as f64;
        assert!(
            (0.02..=0.05).contains(&share),
            "{name}: {} drifted ({share:.4})",
            drifted.len()
        );
        assert!(
            drifted.iter().all(|&i| i >= BOUNDARY_DOCS),
            "{name}: a boundary document drifted"
        );
    }
}

#[test]
fn drift_includes_numbers_stored_as_strings_and_missing_fields() {
    let opts = DemoOptions::default();
    let users: Vec<Document> = users(&opts).collect();
    assert!(users.iter().any(
        |u| matches!(u.get("loyalty_points"), Some(Bson::String(s)) if s.parse::<i32>().is_ok())
    ));
    assert!(users.iter().any(|u| !u.contains_key("address")));
    let orders: Vec<Document> = orders(&opts).collect();
    assert!(orders
        .iter()
        .any(|o| types_at(o, "items.[].quantity").contains(&Some(ElementType::String))));
    assert!(orders
        .iter()
        .any(|o| types_at(o, "payment.card").contains(&None)));
    let products: Vec<Document> = products(&opts).collect();
    assert!(products
        .iter()
        .any(|p| matches!(p.get("price"), Some(Bson::String(s)) if s.parse::<f64>().is_ok())));
    assert!(products
        .iter()
        .any(|p| matches!(p.get("stock"), Some(Bson::Int64(_)))));
}

#[test]
fn boundary_documents_have_exact_timestamps() {
    let opts = DemoOptions::default();
    let expected = [
        ("2020-06-01T00:00:00.000Z", date(2020, 6, 1)),
        ("2020-06-05T00:00:00.000Z", date(2020, 6, 5)),
        ("2020-06-10T23:59:59.999Z", date(2020, 6, 10)),
        ("2020-05-31T23:59:59.999Z", date(2020, 5, 31)),
        ("2020-06-11T00:00:01.000Z", date(2020, 6, 11)),
    ];
    let bounds = boundaries(&opts);
    for (boundary, (iso, day)) in bounds.iter().zip(expected) {
        assert_eq!(
            boundary
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            iso,
            "{}",
            boundary.label
        );
        assert_eq!(boundary.at.date_naive(), day, "{}", boundary.label);
    }
    for (name, generate) in COLLECTIONS {
        let documents: Vec<Document> = generate(&opts).collect();
        for (i, boundary) in bounds.iter().enumerate() {
            let at = documents[i].get_datetime("created_at").unwrap();
            assert_eq!(
                at.timestamp_millis(),
                boundary.at.timestamp_millis(),
                "{name} {}",
                boundary.label
            );
            assert_eq!(utc_day(*at), Some(boundary.at.date_naive()));
        }
        let (start, end) = (midnight_ms(opts.start), midnight_ms(opts.end) + 86_400_000);
        for document in &documents[BOUNDARY_DOCS..] {
            let at = document
                .get_datetime("created_at")
                .unwrap()
                .timestamp_millis();
            assert!((start..end).contains(&at), "{name}: {at} outside the range");
        }
        // Every day of the range gets documents, not just a few.
        let days: HashSet<NaiveDate> = documents
            .iter()
            .filter_map(|d| utc_day(*d.get_datetime("created_at").unwrap()))
            .collect();
        assert_eq!(
            days.len(),
            12,
            "{name}: 10 days in range + the day before + today"
        );
    }
}

#[test]
fn object_ids_carry_created_at_and_are_unique() {
    let opts = DemoOptions::default();
    for (name, generate) in COLLECTIONS {
        let mut seen = HashSet::new();
        for document in generate(&opts) {
            let id = document.get_object_id("_id").unwrap();
            let at = document.get_datetime("created_at").unwrap();
            assert_eq!(
                id.timestamp().timestamp_millis(),
                at.timestamp_millis().div_euclid(1000) * 1000
            );
            assert!(seen.insert(id), "{name}: duplicate _id {id}");
        }
    }
    for user in users(&opts) {
        let ms = user.get_datetime("created_at").unwrap().timestamp_millis();
        let at = chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let iso = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert_eq!(user.get_str("created_at_iso").unwrap(), iso);
        assert!(iso.ends_with('Z') && iso.len() == "2020-06-01T00:00:00.000Z".len());
        assert!(
            user.get_datetime("updated_at").unwrap() >= user.get_datetime("created_at").unwrap()
        );
    }
    assert_eq!(
        users(&opts)
            .next()
            .unwrap()
            .get_str("created_at_iso")
            .unwrap(),
        "2020-06-01T00:00:00.000Z"
    );
}

#[test]
fn binaries_have_the_documented_subtypes() {
    let opts = DemoOptions::default();
    let check = |document: &Document, path: &str, subtype: BinarySubtype, len: usize| {
        let mut value = Some(&Bson::Document(document.clone())).cloned();
        for key in path.split('.') {
            value = value.and_then(|v| v.as_document().and_then(|d| d.get(key).cloned()));
        }
        match value {
            Some(Bson::Binary(binary)) => assert!(
                binary.subtype == subtype && binary.bytes.len() == len,
                "{path}"
            ),
            other => panic!("{path}: {other:?}"),
        }
    };
    let user = users(&opts).next().unwrap();
    check(&user, "api_key_uuid", BinarySubtype::Uuid, 16);
    let order = orders(&opts).next().unwrap();
    check(&order, "shipping.tracking", BinarySubtype::Uuid, 16);
    let product = products(&opts).next().unwrap();
    check(&product, "image_digest", BinarySubtype::Generic, 32);
}

#[test]
fn orders_reference_real_users_and_products() {
    let opts = DemoOptions::default();
    let users: Vec<Document> = users(&opts).collect();
    let products: Vec<Document> = products(&opts).collect();
    let user_ids: HashSet<_> = users
        .iter()
        .map(|u| u.get_object_id("_id").unwrap())
        .collect();
    for user in &users {
        if let Ok(referrer) = user.get_object_id("referrer_id") {
            assert!(
                user_ids.contains(&referrer),
                "dangling referrer_id {referrer}"
            );
            assert_ne!(referrer, user.get_object_id("_id").unwrap());
            assert_eq!(user.get_str("signup_source").unwrap(), "referral");
        }
    }
    for order in orders(&opts) {
        let customer = order.get_document("customer").unwrap();
        let user = &users[customer.get_i64("user_id").unwrap() as usize - 1];
        assert_eq!(customer.get_str("email"), user.get_str("email"));
        assert_eq!(customer.get_str("name"), user.get_str("name"));
        for item in order.get_array("items").unwrap() {
            let item = item.as_document().unwrap();
            let product = &products[item.get_i64("product_id").unwrap() as usize - 1];
            assert_eq!(item.get_str("sku"), product.get_str("sku"));
            assert_eq!(item.get_str("name"), product.get_str("name"));
            // A product whose price drifted to a string still sells at
            // the same number.
            let price = match product.get("price").unwrap() {
                Bson::Double(price) => *price,
                Bson::String(price) => price.parse().unwrap(),
                other => panic!("price {other:?}"),
            };
            assert_eq!(item.get_f64("unit_price").unwrap(), price);
        }
    }
}

/// Fails on anything FerretDB refuses to store (LOCAL-STACK.md).
fn assert_ferretdb_safe(value: &Bson, path: &str, in_array: bool) {
    match value {
        Bson::Decimal128(_) => panic!("{path}: Decimal128"),
        Bson::Double(x) => assert!(x.is_finite(), "{path}: {x}"),
        Bson::Array(items) => {
            assert!(!in_array, "{path}: array inside an array");
            for (i, item) in items.iter().enumerate() {
                assert_ferretdb_safe(item, &format!("{path}.{i}"), true);
            }
        }
        Bson::Document(document) => {
            for (key, value) in document {
                assert!(
                    !key.contains('.') && !key.starts_with('$'),
                    "{path}: key {key:?}"
                );
                assert_ferretdb_safe(value, &format!("{path}.{key}"), false);
            }
        }
        _ => {}
    }
}

#[test]
fn nothing_ferretdb_rejects() {
    let opts = DemoOptions::default();
    for (name, generate) in COLLECTIONS {
        for document in generate(&opts) {
            assert_ferretdb_safe(&Bson::Document(document), name, false);
        }
    }
}

#[test]
fn names_are_unicode() {
    let opts = DemoOptions::default();
    let names: HashSet<String> = users(&opts)
        .map(|u| u.get_str("name").unwrap().to_string())
        .collect();
    assert!(names.iter().any(|n| !n.is_ascii()));
    assert!(
        names
            .iter()
            .any(|n| n.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))),
        "no CJK name"
    );
    assert!(users(&opts).all(|u| u.get_str("email").unwrap().is_ascii()));
}

#[test]
fn validate_rejects_unusable_options() {
    let ok = DemoOptions::default();
    assert!(ok.validate().is_ok());
    assert!(matches!(
        DemoOptions {
            batch_size: 0,
            ..ok
        }
        .validate(),
        Err(DemoError::ZeroBatchSize)
    ));
    let reversed = DemoOptions {
        start: date(2020, 6, 10),
        end: date(2020, 6, 1),
        ..ok
    };
    assert!(matches!(
        reversed.validate(),
        Err(DemoError::StartAfterEnd { .. })
    ));
    let early = DemoOptions {
        start: date(1970, 1, 1),
        ..ok
    };
    assert!(matches!(
        early.validate(),
        Err(DemoError::DateOutOfRange { field: "start", .. })
    ));
}

#[test]
fn single_day_range_still_has_every_boundary() {
    let day = date(2021, 3, 1);
    let opts = DemoOptions {
        start: day,
        end: day,
        today: date(2021, 3, 2),
        ..DemoOptions::default()
    };
    let days: Vec<NaiveDate> = boundaries(&opts)
        .iter()
        .map(|b| b.at.date_naive())
        .collect();
    assert_eq!(days, [day, day, day, date(2021, 2, 28), date(2021, 3, 2)]);
}
