//! `etl infer`: what a collection's documents look like, and the draft
//! pipeline spec that follows from it. Pure: the CLI feeds documents in.
//!
//! [`Candidates`] looks at a sample for the partition field; [`Profile`]
//! reads every document of the chosen partitions and records each path's
//! types with their counts and each array's sizes; [`draft`] writes the
//! spec: the partition, one rule per array (`explode` for arrays of
//! objects, `repeated` for arrays of one scalar type, `json` otherwise),
//! and the project's connections.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bson::raw::{RawBsonRef, RawDocument};
use chrono::NaiveDate;

use crate::spec::PartitionKind;

/// Partition-field candidates among top-level fields.
#[derive(Debug, Default)]
pub struct Candidates {
    /// Documents seen.
    pub seen: u64,
    /// `(field, kind)` with the number of documents where it qualifies.
    pub found: BTreeMap<(String, Kind), u64>,
    /// `(field, kind)` with the UTC day of each value and its count.
    days: BTreeMap<(String, Kind), BTreeMap<NaiveDate, u64>>,
}

/// The chosen partition field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The top-level field.
    pub field: String,
    /// How its values are read.
    pub kind: Kind,
    /// Sampled documents that have it.
    pub present: u64,
    /// Sampled documents whose value falls in the requested days (all of
    /// `present` when no days were requested).
    pub in_range: u64,
}

/// A partition kind, ordered by preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A BSON Date.
    Date,
    /// An RFC 3339 string.
    IsoString,
    /// Milliseconds since the epoch.
    EpochMillis,
    /// Seconds since the epoch.
    EpochSeconds,
    /// The ObjectId's time: when the document was inserted, which for
    /// imported or migrated data is not its business date. Last.
    ObjectId,
}

impl Kind {
    /// The spec's kind.
    pub fn spec(self) -> PartitionKind {
        match self {
            Kind::Date => PartitionKind::Date,
            Kind::ObjectId => PartitionKind::ObjectId,
            Kind::IsoString => PartitionKind::IsoString,
            Kind::EpochMillis => PartitionKind::EpochMillis,
            Kind::EpochSeconds => PartitionKind::EpochSeconds,
        }
    }

    /// The spec's YAML name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Date => "date",
            Kind::ObjectId => "object_id",
            Kind::IsoString => "iso_string",
            Kind::EpochMillis => "epoch_millis",
            Kind::EpochSeconds => "epoch_seconds",
        }
    }

    /// The UTC day of `value` read as this kind, when it is one.
    pub fn day(self, value: RawBsonRef<'_>) -> Option<NaiveDate> {
        let ms = match (self, value) {
            (Kind::Date, RawBsonRef::DateTime(d)) => d.timestamp_millis(),
            (Kind::ObjectId, RawBsonRef::ObjectId(o)) => o.timestamp().timestamp_millis(),
            (Kind::IsoString, RawBsonRef::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
                .ok()?
                .timestamp_millis(),
            (Kind::EpochMillis | Kind::EpochSeconds, v) => {
                let n = match v {
                    RawBsonRef::Int64(n) => n as f64,
                    RawBsonRef::Int32(n) => f64::from(n),
                    RawBsonRef::Double(f) => f,
                    _ => return None,
                };
                if self == Kind::EpochSeconds {
                    (n * 1000.0) as i64
                } else {
                    n as i64
                }
            }
            _ => return None,
        };
        Some(chrono::DateTime::from_timestamp_millis(ms)?.date_naive())
    }
}

impl Candidates {
    /// Looks at one document's top-level fields.
    pub fn observe(&mut self, doc: &RawDocument) {
        self.seen += 1;
        for item in doc {
            let Ok((key, value)) = item else { continue };
            let kind = match value {
                RawBsonRef::DateTime(_) => Some(Kind::Date),
                RawBsonRef::ObjectId(_) if key == "_id" => Some(Kind::ObjectId),
                RawBsonRef::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
                    Some(Kind::IsoString)
                }
                RawBsonRef::Int64(n) => epoch_kind(n as f64),
                RawBsonRef::Int32(n) => epoch_kind(f64::from(n)),
                RawBsonRef::Double(f) => epoch_kind(f),
                _ => None,
            };
            if let Some(kind) = kind {
                let k = (key.to_owned(), kind);
                if let Some(day) = kind.day(value) {
                    *self
                        .days
                        .entry(k.clone())
                        .or_default()
                        .entry(day)
                        .or_default() += 1;
                }
                *self.found.entry(k).or_default() += 1;
            }
        }
    }

    /// Sampled values of `(field, kind)` whose day is in `days` (inclusive).
    pub fn in_range(&self, field: &str, kind: Kind, days: (NaiveDate, NaiveDate)) -> u64 {
        self.days
            .get(&(field.to_owned(), kind))
            .map_or(0, |d| d.range(days.0..=days.1).map(|(_, n)| n).sum())
    }

    /// The newest day a sampled value of `(field, kind)` falls on.
    pub fn newest_day(&self, field: &str, kind: Kind) -> Option<NaiveDate> {
        self.days
            .get(&(field.to_owned(), kind))
            .and_then(|d| d.keys().next_back().copied())
    }

    /// The best candidate: `field` when given (with its most common kind).
    /// Otherwise, with requested `days`, only fields with sampled values in
    /// them, the most such values first, so that a field which would
    /// select nothing is never chosen; then a real time field before
    /// `_id` (whose time is the insert's, not the business date), the kind
    /// first in [`Kind`]'s order, the most documents, a name with
    /// `created` in it, then the name.
    pub fn choose(
        &self,
        field: Option<&str>,
        days: Option<(NaiveDate, NaiveDate)>,
    ) -> Option<Choice> {
        let mut all: Vec<Choice> = self
            .found
            .iter()
            .filter(|((f, _), _)| field.is_none_or(|want| want == f))
            .map(|((f, k), n)| Choice {
                field: f.clone(),
                kind: *k,
                present: *n,
                in_range: days.map_or(*n, |d| self.in_range(f, *k, d)),
            })
            .collect();
        if field.is_some() {
            all.sort_by_key(|c| (std::cmp::Reverse(c.present), c.kind));
            return all.into_iter().next();
        }
        if days.is_some() {
            all.retain(|c| c.in_range > 0);
        }
        all.sort_by(|a, b| {
            let key = |c: &Choice| {
                (
                    std::cmp::Reverse(if days.is_some() { c.in_range } else { 0 }),
                    c.kind,
                    std::cmp::Reverse(c.present),
                    !c.field.contains("created"),
                    c.field.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        all.into_iter().next()
    }
}

/// Seconds or milliseconds since the epoch, judged by magnitude (2001 to
/// 2286 either way).
fn epoch_kind(n: f64) -> Option<Kind> {
    if (1e9..1e10).contains(&n) {
        Some(Kind::EpochSeconds)
    } else if (1e12..1e13).contains(&n) {
        Some(Kind::EpochMillis)
    } else {
        None
    }
}

/// Every path of the documents read, with what was found there.
#[derive(Debug, Default)]
pub struct Profile {
    /// Documents read.
    pub documents: u64,
    /// Paths (`a.b`, `items[].sku`) in the order first seen.
    pub paths: Vec<(String, PathStats)>,
    index: BTreeMap<String, usize>,
}

/// What one path held.
#[derive(Debug, Default, Clone)]
pub struct PathStats {
    /// BSON type names with their counts, in the order first seen.
    pub types: Vec<(&'static str, u64)>,
    /// Sizes, when arrays were seen.
    pub arrays: Option<ArrayStats>,
}

/// The arrays at one path.
#[derive(Debug, Default, Clone)]
pub struct ArrayStats {
    /// Arrays seen.
    pub count: u64,
    /// Fewest elements.
    pub min: u64,
    /// Most elements.
    pub max: u64,
    /// All elements.
    pub total: u64,
    /// Elements that were objects.
    pub objects: u64,
    /// Elements that were arrays.
    pub arrays: u64,
    /// Scalar element types with their counts (nulls left out).
    pub scalars: BTreeMap<&'static str, u64>,
}

impl Profile {
    /// Records one document.
    pub fn observe(&mut self, doc: &RawDocument) {
        self.documents += 1;
        self.walk(doc, "");
    }

    fn stats(&mut self, path: &str) -> &mut PathStats {
        let at = match self.index.get(path) {
            Some(&at) => at,
            None => {
                self.paths.push((path.to_owned(), PathStats::default()));
                self.index.insert(path.to_owned(), self.paths.len() - 1);
                self.paths.len() - 1
            }
        };
        &mut self.paths[at].1
    }

    fn walk(&mut self, doc: &RawDocument, prefix: &str) {
        for item in doc {
            let Ok((key, value)) = item else { continue };
            let path = if prefix.is_empty() {
                key.to_owned()
            } else {
                format!("{prefix}.{key}")
            };
            self.value(&path, value);
        }
    }

    fn value(&mut self, path: &str, value: RawBsonRef<'_>) {
        let name = type_name(value);
        let stats = self.stats(path);
        match stats.types.iter_mut().find(|(t, _)| *t == name) {
            Some((_, n)) => *n += 1,
            None => stats.types.push((name, 1)),
        }
        match value {
            RawBsonRef::Document(d) => self.walk(d, path),
            RawBsonRef::Array(a) => {
                let element_path = format!("{path}[]");
                let mut len = 0u64;
                let (mut objects, mut arrays) = (0, 0);
                let mut scalars: BTreeMap<&'static str, u64> = BTreeMap::new();
                for element in a.into_iter().flatten() {
                    len += 1;
                    match element {
                        RawBsonRef::Document(d) => {
                            objects += 1;
                            self.walk(d, &element_path);
                        }
                        RawBsonRef::Array(_) => {
                            arrays += 1;
                            self.value(&element_path, element);
                        }
                        RawBsonRef::Null => {}
                        other => *scalars.entry(type_name(other)).or_default() += 1,
                    }
                }
                let a = self.stats(path).arrays.get_or_insert_with(|| ArrayStats {
                    min: u64::MAX,
                    ..Default::default()
                });
                a.count += 1;
                a.min = a.min.min(len);
                a.max = a.max.max(len);
                a.total += len;
                a.objects += objects;
                a.arrays += arrays;
                for (t, n) in scalars {
                    *a.scalars.entry(t).or_default() += n;
                }
            }
            _ => {}
        }
    }

    /// The policy proposed for each top-level-reachable array path (not
    /// inside another array): `explode` for arrays of objects, `repeated`
    /// for arrays of one scalar type, `json` for the rest.
    pub fn array_policies(&self) -> Vec<(String, &'static str)> {
        self.paths
            .iter()
            .filter(|(p, _)| !p.contains("[]"))
            .filter_map(|(p, s)| {
                let a = s.arrays.as_ref()?;
                let policy = if a.objects > 0 && a.arrays == 0 && a.scalars.is_empty() {
                    "explode"
                } else if a.objects == 0 && a.arrays == 0 && a.scalars.len() <= 1 {
                    "repeated"
                } else {
                    "json"
                };
                Some((p.clone(), policy))
            })
            .collect()
    }

    /// Paths holding more than one type (nulls aside), for the report.
    pub fn conflicts(&self) -> Vec<&(String, PathStats)> {
        self.paths
            .iter()
            .filter(|(_, s)| s.types.iter().filter(|(t, _)| *t != "null").count() > 1)
            .collect()
    }

    /// The report: every path with its types and counts, array sizes, and
    /// the policies proposed.
    pub fn report(&self) -> String {
        let mut o = String::new();
        let policies: BTreeMap<String, &str> = self.array_policies().into_iter().collect();
        let width = self
            .paths
            .iter()
            .map(|(p, _)| p.len())
            .max()
            .unwrap_or(0)
            .min(40);
        for (path, s) in &self.paths {
            let types: Vec<String> = s.types.iter().map(|(t, n)| format!("{t} {n}")).collect();
            let _ = write!(o, "  {path:<width$}  {}", types.join(", "));
            if let Some(a) = &s.arrays {
                let mean = a.total as f64 / a.count.max(1) as f64;
                let _ = write!(
                    o,
                    "; sizes {}..{} (mean {mean:.1})",
                    if a.min == u64::MAX { 0 } else { a.min },
                    a.max
                );
            }
            if let Some(p) = policies.get(path) {
                let _ = write!(o, "  -> {p}");
            }
            if s.types.iter().filter(|(t, _)| *t != "null").count() > 1 {
                let _ = write!(o, "  -> type conflict: coerce widens the column");
            }
            o.push('\n');
        }
        o
    }
}

/// The BSON type's name, as MongoDB's `$type` spells it.
fn type_name(v: RawBsonRef<'_>) -> &'static str {
    match v {
        RawBsonRef::Double(_) => "double",
        RawBsonRef::String(_) => "string",
        RawBsonRef::Document(_) => "object",
        RawBsonRef::Array(_) => "array",
        RawBsonRef::Binary(_) => "binData",
        RawBsonRef::Undefined => "undefined",
        RawBsonRef::ObjectId(_) => "objectId",
        RawBsonRef::Boolean(_) => "bool",
        RawBsonRef::DateTime(_) => "date",
        RawBsonRef::Null => "null",
        RawBsonRef::RegularExpression(_) => "regex",
        RawBsonRef::DbPointer(_) => "dbPointer",
        RawBsonRef::JavaScriptCode(_) => "javascript",
        RawBsonRef::Symbol(_) => "symbol",
        RawBsonRef::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        RawBsonRef::Int32(_) => "int",
        RawBsonRef::Timestamp(_) => "timestamp",
        RawBsonRef::Int64(_) => "long",
        RawBsonRef::Decimal128(_) => "decimal",
        RawBsonRef::MaxKey => "maxKey",
        RawBsonRef::MinKey => "minKey",
    }
}

/// What [`draft`] needs besides the profile.
pub struct Draft<'a> {
    /// The pipeline's name.
    pub name: &'a str,
    /// The MongoDB connection.
    pub connection: &'a str,
    /// The database.
    pub database: &'a str,
    /// The collection.
    pub collection: &'a str,
    /// The partition field and kind.
    pub field: &'a str,
    /// Its kind.
    pub kind: Kind,
    /// The first day.
    pub start_date: chrono::NaiveDate,
    /// The lake's object-store connection.
    pub lake: &'a str,
    /// The warehouse: `("bigquery", connection)` or `("parquet", connection)`.
    pub warehouse: (&'a str, &'a str),
}

/// The draft spec's YAML.
pub fn draft(d: &Draft<'_>, profile: &Profile) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# yaml-language-server: $schema=../schemas/pipeline.schema.json\n\
         # Drafted by `etl infer` from {} documents of {}.{}; review before use.\n\
         version: 1\n\
         name: {}\n\
         \n\
         source:\n  connection: {}\n  database: {}\n  collection: {}\n\
         \n\
         partition:\n  field: {}\n  kind: {}\n  start_date: \"{}\"\n",
        profile.documents,
        d.database,
        d.collection,
        d.name,
        d.connection,
        yaml_str(d.database),
        yaml_str(d.collection),
        yaml_str(d.field),
        d.kind.name(),
        d.start_date,
    );
    let policies = profile.array_policies();
    o.push_str("flatten:\n  arrays:\n    default: json\n");
    if policies.is_empty() {
        o.push_str("    rules: []\n");
    } else {
        o.push_str("    rules:\n");
        for (path, policy) in &policies {
            let _ = writeln!(
                o,
                "      - path: {}\n        policy: {policy}",
                yaml_str(&jsonpath(path))
            );
        }
    }
    let _ = writeln!(
        o,
        "\nsinks:\n  lake:\n    connection: {}\n    path: \"raw/{{{{ collection }}}}/dt={{{{ ds }}}}/{{{{ collection }}}}-{{{{ ds_nodash }}}}.jsonl.gz\"",
        d.lake
    );
    match d.warehouse {
        ("bigquery", conn) => {
            let _ = writeln!(
                o,
                "  warehouse:\n    type: bigquery\n    connection: {conn}\n    dataset: {}\n    table: \"{{{{ pipeline }}}}\"\n    replace: staging",
                dataset_name(d.database)
            );
        }
        (_, conn) => {
            let _ = writeln!(
                o,
                "  warehouse:\n    type: parquet\n    connection: {conn}\n    path: \"{{{{ pipeline }}}}\""
            );
        }
    }
    o
}

/// `a.b` as a JSONPath, quoting keys that are not plain names.
fn jsonpath(dotted: &str) -> String {
    let mut out = String::from("$");
    for key in dotted.split('.') {
        if !key.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit())
        {
            out.push('.');
            out.push_str(key);
        } else {
            let _ = write!(out, "['{}']", key.replace('\'', "\\'"));
        }
    }
    out
}

/// A YAML scalar, quoted when it needs to be.
fn yaml_str(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
        && !s.starts_with(['$', '-'])
    {
        s.to_owned()
    } else {
        serde_json::to_string(s).expect("a string serializes")
    }
}

/// A BigQuery dataset name from a database name.
fn dataset_name(database: &str) -> String {
    let mut name: String = database
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() {
        name.push('_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, RawDocumentBuf};

    fn raw(d: bson::Document) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&d).unwrap()
    }

    fn pick(
        c: &Candidates,
        field: Option<&str>,
        days: Option<(NaiveDate, NaiveDate)>,
    ) -> Option<(String, Kind, u64)> {
        c.choose(field, days).map(|c| (c.field, c.kind, c.present))
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 6, d).unwrap()
    }

    #[test]
    fn candidates_prefer_dates_present_everywhere() {
        let mut c = Candidates::default();
        for i in 0..3 {
            c.observe(&raw(doc! {
                "_id": bson::oid::ObjectId::new(),
                "created_at": bson::DateTime::from_millis(1_591_000_000_000 + i),
                "seen_ms": 1_591_000_000_000i64,
                "at": "2020-06-01T00:00:00Z",
            }));
        }
        c.observe(&raw(doc! { "_id": bson::oid::ObjectId::new() }));
        assert_eq!(
            pick(&c, None, None),
            Some(("created_at".into(), Kind::Date, 3))
        );
        assert_eq!(
            pick(&c, Some("seen_ms"), None),
            Some(("seen_ms".into(), Kind::EpochMillis, 3))
        );
        assert_eq!(
            pick(&c, Some("at"), None),
            Some(("at".into(), Kind::IsoString, 3))
        );
        assert_eq!(pick(&c, Some("nope"), None), None);
    }

    /// Imported data: every document was inserted today, so its ObjectId
    /// is today's, while its business date `created_ms` lies in June 2020
    /// (issue 10: `infer` chose `_id` and read 0 documents).
    #[test]
    fn object_ids_younger_than_the_date_field_lose_to_it() {
        let mut c = Candidates::default();
        for i in 0..200i64 {
            c.observe(&raw(doc! {
                "_id": bson::oid::ObjectId::new(),
                "created_ms": 1_590_969_600_000i64 + i * 2_000_000,
                "stars": 4,
            }));
        }
        let june = Some((day(1), day(5)));
        let chosen = c.choose(None, june).unwrap();
        assert_eq!(
            (chosen.field.as_str(), chosen.kind),
            ("created_ms", Kind::EpochMillis)
        );
        assert_eq!((chosen.present, chosen.in_range), (200, 200));
        assert_eq!(c.in_range("_id", Kind::ObjectId, (day(1), day(5))), 0);
        // Without days, a time field still comes before `_id`.
        assert_eq!(pick(&c, None, None).unwrap().0, "created_ms");
        assert_eq!(c.newest_day("created_ms", Kind::EpochMillis), Some(day(5)));
        // No field has values in 2019: nothing is chosen, rather than a
        // field that would select no document.
        let y2019 = Some((
            NaiveDate::from_ymd_opt(2019, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2019, 1, 5).unwrap(),
        ));
        assert_eq!(c.choose(None, y2019), None);
    }

    #[test]
    fn the_profile_counts_types_and_sizes_and_proposes_policies() {
        let mut p = Profile::default();
        p.observe(&raw(doc! { "n": 1, "items": [{"sku": "a"}, {"sku": "b"}], "tags": ["x"], "mixed": [1, "a"] }));
        p.observe(&raw(doc! { "n": "two", "items": [], "tags": [] }));
        assert_eq!(
            p.array_policies(),
            [
                ("items".to_owned(), "explode"),
                ("tags".to_owned(), "repeated"),
                ("mixed".to_owned(), "json")
            ]
        );
        assert_eq!(
            p.report(),
            "  n            int 1, string 1  -> type conflict: coerce widens the column\n\
             \x20 items        array 2; sizes 0..2 (mean 1.0)  -> explode\n\
             \x20 items[].sku  string 2\n\
             \x20 tags         array 2; sizes 0..1 (mean 0.5)  -> repeated\n\
             \x20 mixed        array 1; sizes 2..2 (mean 2.0)  -> json\n"
        );
        assert_eq!(p.conflicts().len(), 1, "n");
    }
}
