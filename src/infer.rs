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

/// Partition-field candidates, and every date in the documents seen.
#[derive(Debug, Default)]
pub struct Candidates {
    /// Documents seen.
    pub seen: u64,
    /// `(field, kind)` with the number of documents where it qualifies.
    /// Fields are dotted paths outside arrays (`created_at`, `meta.at`):
    /// what a day's filter can select on.
    pub found: BTreeMap<(String, Kind), u64>,
    /// `(field, kind)` with the UTC day of each value and its count.
    days: BTreeMap<(String, Kind), BTreeMap<NaiveDate, u64>>,
    /// BSON dates at any depth, inside arrays too (`grades[].date`): what
    /// the hint names when no field can partition the collection.
    pub dates: BTreeMap<String, DatesSeen>,
}

/// The BSON dates found at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatesSeen {
    /// Documents holding at least one.
    pub documents: u64,
    /// The earliest, in milliseconds since the epoch.
    pub min: i64,
    /// The latest.
    pub max: i64,
}

impl DatesSeen {
    /// How long they span.
    pub fn span(&self) -> chrono::Duration {
        chrono::Duration::milliseconds(self.max.saturating_sub(self.min))
    }
}

/// Deepest level looked at for candidates and dates.
const CANDIDATE_DEPTH: usize = 8;

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
        self.spec().name()
    }

    /// The UTC day of `value` read as this kind, when it is one.
    pub fn day(self, value: RawBsonRef<'_>) -> Option<NaiveDate> {
        let ms = match (self, value) {
            (Kind::Date, RawBsonRef::DateTime(d)) => d.timestamp_millis(),
            (Kind::ObjectId, RawBsonRef::ObjectId(o)) => o.timestamp().timestamp_millis(),
            // The forms a day accepts; a date alone is that day.
            (Kind::IsoString, RawBsonRef::String(s)) => match crate::plan::iso_time(s)? {
                crate::plan::IsoTime::Instant(t) => t.timestamp_millis(),
                crate::plan::IsoTime::Date(d) => return Some(d),
            },
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
    /// Looks at one document: its fields outside arrays as candidates,
    /// and its dates wherever they are.
    pub fn observe(&mut self, doc: &RawDocument) {
        self.seen += 1;
        let mut dated = std::collections::BTreeSet::new();
        self.walk(doc, "", false, 0, &mut dated);
    }

    fn walk(
        &mut self,
        doc: &RawDocument,
        prefix: &str,
        in_array: bool,
        depth: usize,
        dated: &mut std::collections::BTreeSet<String>,
    ) {
        if depth > CANDIDATE_DEPTH {
            return;
        }
        for item in doc {
            let Ok((key, value)) = item else { continue };
            let path = if prefix.is_empty() {
                key.to_owned()
            } else {
                format!("{prefix}.{key}")
            };
            if !in_array {
                self.candidate(&path, value);
            }
            match value {
                RawBsonRef::DateTime(d) => self.date(&path, d.timestamp_millis(), dated),
                RawBsonRef::Document(sub) => self.walk(sub, &path, in_array, depth + 1, dated),
                RawBsonRef::Array(items) => {
                    let path = format!("{path}[]");
                    for item in items.into_iter().flatten() {
                        match item {
                            RawBsonRef::DateTime(d) => {
                                self.date(&path, d.timestamp_millis(), dated)
                            }
                            RawBsonRef::Document(sub) => {
                                self.walk(sub, &path, true, depth + 1, dated)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn candidate(&mut self, path: &str, value: RawBsonRef<'_>) {
        let kind = match value {
            RawBsonRef::DateTime(_) => Some(Kind::Date),
            RawBsonRef::ObjectId(_) if path == "_id" => Some(Kind::ObjectId),
            RawBsonRef::String(s) if crate::plan::iso_time(s).is_some() => Some(Kind::IsoString),
            RawBsonRef::Int64(n) => epoch_kind(n as f64),
            RawBsonRef::Int32(n) => epoch_kind(f64::from(n)),
            RawBsonRef::Double(f) => epoch_kind(f),
            _ => None,
        };
        if let Some(kind) = kind {
            let k = (path.to_owned(), kind);
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

    fn date(&mut self, path: &str, ms: i64, dated: &mut std::collections::BTreeSet<String>) {
        let first = dated.insert(path.to_owned());
        let seen = self.dates.entry(path.to_owned()).or_insert(DatesSeen {
            documents: 0,
            min: ms,
            max: ms,
        });
        seen.documents += u64::from(first);
        seen.min = seen.min.min(ms);
        seen.max = seen.max.max(ms);
    }

    /// Sampled values of `(field, kind)` whose day is in `days` (inclusive).
    pub fn in_range(&self, field: &str, kind: Kind, days: (NaiveDate, NaiveDate)) -> u64 {
        self.days
            .get(&(field.to_owned(), kind))
            .map_or(0, |d| d.range(days.0..=days.1).map(|(_, n)| n).sum())
    }

    /// The best candidate: `field` when given (with its most common kind).
    /// Otherwise, with requested `days`, only fields with sampled values in
    /// them, the most such values first, so that a field which would
    /// select nothing is never chosen; then a real time field before
    /// `_id` (whose time is the insert's, not the business date), the kind
    /// first in [`Kind`]'s order, the most documents, a top-level field
    /// before a nested one, a name with `created` in it, then the name.
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
                    c.field.matches('.').count(),
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

/// What one field holds across a sample: whether a day's filter on it
/// can select each document.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldShape {
    /// Documents looked at.
    pub sampled: u64,
    /// Documents whose value is of the kind, so that some day selects them.
    pub qualifies: u64,
    /// The others, by reason: `missing`, `null`, a BSON type's name, or
    /// `string that is not a date`.
    pub other: BTreeMap<&'static str, u64>,
}

impl FieldShape {
    /// `field` (dotted) read as `kind` in each of `docs`.
    pub fn of<'a>(
        docs: impl IntoIterator<Item = &'a RawDocument>,
        field: &str,
        kind: Kind,
    ) -> Self {
        let mut shape = Self::default();
        for doc in docs {
            shape.sampled += 1;
            let reason = match crate::extjson::lookup(doc, field) {
                None => "missing",
                Some(RawBsonRef::Null) => "null",
                Some(v) if kind.day(v).is_some() => {
                    shape.qualifies += 1;
                    continue;
                }
                Some(RawBsonRef::String(_)) => "string that is not a date",
                Some(v) => type_name(v),
            };
            *shape.other.entry(reason).or_default() += 1;
        }
        shape
    }

    /// `missing 12, string 3`, by count.
    pub fn reasons(&self) -> String {
        let mut by: Vec<_> = self.other.iter().collect();
        by.sort_by_key(|(r, n)| (std::cmp::Reverse(**n), **r));
        by.iter()
            .map(|(r, n)| format!("{r} {}", thousands(**n)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why `_id` must not partition a collection: its ObjectIds tell when
/// documents were inserted, and that says nothing of their own dates when
/// all were inserted at once (a bulk load, a migration), or when dates
/// inside the documents span far longer. `ids` is the earliest and latest
/// ObjectId time in milliseconds; `dates` what [`Candidates`] found.
/// None when `_id` may partition it.
pub fn insert_time_only(ids: (i64, i64), dates: &BTreeMap<String, DatesSeen>) -> Option<String> {
    let span = chrono::Duration::milliseconds(ids.1.saturating_sub(ids.0));
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms).map_or_else(
            || ms.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
    };
    if span < chrono::Duration::hours(1) {
        return Some(format!(
            "its ObjectIds were all created within {} ({} to {} UTC): a bulk load, not the documents' own dates",
            duration(span),
            at(ids.0),
            at(ids.1)
        ));
    }
    let (path, wider) = dates
        .iter()
        .map(|(p, d)| (p, d.span()))
        .max_by_key(|(_, s)| *s)?;
    (wider > span + chrono::Duration::days(1)).then(|| {
        format!(
            "its ObjectIds span {} ({} to {} UTC), while `{path}` spans {}: the ObjectIds tell when documents were inserted, not their dates",
            duration(span),
            at(ids.0),
            at(ids.1),
            duration(wider)
        )
    })
}

/// `3 s`, `5 min`, `2 h`, `12 days`, `4.2 years`.
fn duration(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3_600),
        s if s < 730 * 86_400 => format!("{} days", s / 86_400),
        s => format!("{:.1} years", s as f64 / (365.25 * 86_400.0)),
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many documents `etl infer` reads, and from which days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamplePlan {
    /// Every document of the span, in one query.
    All,
    /// Up to `per_window` documents from each window of days, so that the
    /// draft sees the whole span, its first years as well as its last day.
    Windows {
        /// The first and last day of each window, in order.
        windows: Vec<(NaiveDate, NaiveDate)>,
        /// Documents read from each window at most.
        per_window: u64,
    },
}

/// At most this many windows: each is one query.
pub const MAX_WINDOWS: u64 = 20;

impl SamplePlan {
    /// Every document when the span's `documents` are at most `limit`,
    /// else up to [`MAX_WINDOWS`] windows of whole days, as equal as days
    /// allow, sharing `limit`.
    pub fn new(first: NaiveDate, last: NaiveDate, documents: u64, limit: u64) -> Self {
        if documents <= limit {
            return Self::All;
        }
        let days = u64::try_from((last - first).num_days() + 1)
            .unwrap_or(1)
            .max(1);
        let n = days.min(MAX_WINDOWS);
        let mut windows = Vec::with_capacity(n as usize);
        let mut from = first;
        for i in 0..n {
            // Window i ends where day (i + 1) * days / n starts.
            let end = (i + 1) * days / n;
            let to = first + chrono::Days::new(end - 1);
            windows.push((from, to));
            from = to.succ_opt().unwrap_or(to);
        }
        Self::Windows {
            windows,
            per_window: (limit / n).max(1),
        }
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
    /// Keys, when objects were seen.
    pub objects: Option<ObjectStats>,
}

/// The objects at one path: their keys, to tell a record (the same few
/// names in every document) from a map (keys that are data).
#[derive(Debug, Default, Clone)]
pub struct ObjectStats {
    /// Objects seen.
    pub count: u64,
    /// Keys summed over every object.
    pub key_total: u64,
    /// Each distinct key with the objects holding it, up to
    /// [`MAX_KEYS_TRACKED`] keys.
    pub keys: BTreeMap<String, u64>,
    /// Occurrences of keys first seen once [`MAX_KEYS_TRACKED`] keys were
    /// tracked: more distinct keys than that.
    pub untracked: u64,
}

/// Distinct keys tracked per object path: a map has a few hundred in a
/// sample, a record a few dozen at most.
pub const MAX_KEYS_TRACKED: usize = 10_000;

/// Fewest distinct keys for an object to be taken as a map.
pub const MAP_MIN_KEYS: usize = 20;

/// Why an object path is taken as a map.
#[derive(Debug, Clone, PartialEq)]
pub struct MapVerdict {
    /// Distinct keys.
    pub keys: u64,
    /// Objects seen.
    pub objects: u64,
    /// Mean keys per object.
    pub per_object: f64,
    /// Share of keys that look like ids, numbers or dates.
    pub id_like: f64,
    /// Share of keys that are not valid column names.
    pub not_names: f64,
    /// Share of objects the median key is in.
    pub median_share: f64,
}

impl ObjectStats {
    /// A map when it has at least [`MAP_MIN_KEYS`] distinct keys and
    /// either most keys (80%) look like ids, numbers or dates, or are not
    /// valid column names, or each key is in few of the objects (the median
    /// key in at most 2% of them). A record with many optional fields has
    /// keys that are names, each in a fair share of documents.
    pub fn map_verdict(&self) -> Option<MapVerdict> {
        let tracked = self.keys.len() as u64;
        let keys = tracked;
        if keys < MAP_MIN_KEYS as u64 || self.count == 0 {
            return None;
        }
        let share = |n: usize| n as f64 / tracked.max(1) as f64;
        let id_like = share(self.keys.keys().filter(|k| id_like(k)).count());
        let not_names = share(
            self.keys
                .keys()
                .filter(|k| !crate::spec::names::is_column_name(k))
                .count(),
        );
        let mut counts: Vec<u64> = self.keys.values().copied().collect();
        counts.sort_unstable();
        let median = counts.get(counts.len() / 2).copied().unwrap_or(0);
        let median_share = median as f64 / self.count as f64;
        let verdict = MapVerdict {
            keys,
            objects: self.count,
            per_object: self.key_total as f64 / self.count as f64,
            id_like,
            not_names,
            median_share,
        };
        (id_like >= 0.8 || not_names >= 0.8 || median_share <= 0.02).then_some(verdict)
    }
}

impl MapVerdict {
    /// `456 distinct keys in 500 objects, 1.0 per object, each key in 0.2%
    /// of them (median), 100% id-like`.
    pub fn why(&self) -> String {
        let mut why = format!(
            "{} distinct keys in {} objects, {:.1} per object, the median key in {} of them",
            thousands(self.keys),
            thousands(self.objects),
            self.per_object,
            percent(self.median_share)
        );
        if self.id_like >= 0.5 {
            let _ = write!(why, ", {} id-like", percent(self.id_like));
        } else if self.not_names >= 0.5 {
            let _ = write!(why, ", {} not column names", percent(self.not_names));
        }
        why
    }
}

/// `0.2%`, `37%`, `100%`.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p > 0.0 && p < 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

/// A key that is data rather than a name: digits, hex of 8 or more
/// (ObjectIds, hashes), a UUID, or a date.
fn id_like(key: &str) -> bool {
    let b = key.as_bytes();
    let digits = !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    let hex =
        b.len() >= 8 && b.iter().all(u8::is_ascii_hexdigit) && b.iter().any(u8::is_ascii_digit);
    let uuid = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let date = b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && matches!(b[4], b'-' | b'/' | b'.' | b'0'..=b'9');
    digits || hex || uuid || date
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
        // Objects at a path of their own; the elements of an array of
        // objects (`items[]`) are rows of a child table, not a path.
        if self.index.contains_key(prefix) {
            let mut keys = 0u64;
            let mut names = Vec::new();
            for (key, _) in doc.into_iter().flatten() {
                keys += 1;
                names.push(key);
            }
            let o = self
                .stats(prefix)
                .objects
                .get_or_insert_with(Default::default);
            o.count += 1;
            o.key_total += keys;
            for key in names {
                let room = o.keys.len() < MAX_KEYS_TRACKED;
                match o.keys.get_mut(key) {
                    Some(n) => *n += 1,
                    None if room => {
                        o.keys.insert(key.to_owned(), 1);
                    }
                    None => o.untracked += 1,
                }
            }
        }
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

    /// The object paths taken as maps, outermost only (a map inside a map
    /// is part of it), with why.
    pub fn maps(&self) -> Vec<(String, MapVerdict)> {
        let mut maps: Vec<(String, MapVerdict)> = Vec::new();
        for (path, s) in &self.paths {
            if maps.iter().any(|(m, _)| below(path, m)) {
                continue;
            }
            if let Some(v) = s.objects.as_ref().and_then(ObjectStats::map_verdict) {
                maps.push((path.clone(), v));
            }
        }
        maps
    }

    /// Paths inside the maps of [`Self::maps`]: read, but not listed.
    pub fn inside_maps(&self) -> usize {
        let maps = self.maps();
        self.paths
            .iter()
            .filter(|(p, _)| maps.iter().any(|(m, _)| below(p, m)))
            .count()
    }

    /// The policy proposed for each array path outside other arrays and
    /// maps, with why: `explode` for arrays of objects, `repeated` for
    /// arrays of one scalar type, `json` for the rest.
    pub fn array_policies(&self) -> Vec<Policy> {
        let maps = self.maps();
        self.paths
            .iter()
            .filter(|(p, _)| !p.contains("[]"))
            .filter(|(p, _)| !maps.iter().any(|(m, _)| below(p, m)))
            .filter_map(|(p, s)| {
                let a = s.arrays.as_ref()?;
                let (policy, what) = if a.objects > 0 && a.arrays == 0 && a.scalars.is_empty() {
                    ("explode", "array of objects".to_owned())
                } else if a.objects == 0 && a.arrays == 0 && a.scalars.len() <= 1 {
                    let of = a.scalars.keys().next().map_or("nulls or nothing", |t| t);
                    ("repeated", format!("array of {of}"))
                } else {
                    let mut kinds: Vec<&str> = a.scalars.keys().copied().collect();
                    if a.objects > 0 {
                        kinds.push("object");
                    }
                    if a.arrays > 0 {
                        kinds.push("array");
                    }
                    (
                        "json",
                        format!("array of mixed elements ({})", kinds.join(", ")),
                    )
                };
                let why = format!(
                    "{what} in {} of documents, {}-{} elements, mean {:.1}",
                    percent(a.count as f64 / self.documents.max(1) as f64),
                    if a.min == u64::MAX { 0 } else { a.min },
                    a.max,
                    a.total as f64 / a.count.max(1) as f64
                );
                Some(Policy {
                    path: p.clone(),
                    policy,
                    why,
                })
            })
            .collect()
    }

    /// Paths holding more than one type (nulls aside), for the report;
    /// those inside maps left out.
    pub fn conflicts(&self) -> Vec<&(String, PathStats)> {
        let maps = self.maps();
        self.paths
            .iter()
            .filter(|(p, _)| !maps.iter().any(|(m, _)| below(p, m)))
            .filter(|(_, s)| s.types.iter().filter(|(t, _)| *t != "null").count() > 1)
            .collect()
    }

    /// The report: every path with its types and counts and array sizes
    /// (a map's inside counted, not listed), then each policy proposed
    /// with why.
    pub fn report(&self) -> String {
        let mut o = String::new();
        let maps = self.maps();
        let policies = self.array_policies();
        let shown: Vec<&(String, PathStats)> = self
            .paths
            .iter()
            .filter(|(p, _)| !maps.iter().any(|(m, _)| below(p, m)))
            .collect();
        let width = shown
            .iter()
            .map(|(p, _)| p.len())
            .max()
            .unwrap_or(0)
            .min(40);
        for (path, s) in &shown {
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
            if let Some(p) = policies.iter().find(|p| &p.path == path) {
                let _ = write!(o, "  -> {}", p.policy);
            }
            if maps.iter().any(|(m, _)| m == path) {
                let inside = self.paths.iter().filter(|(p, _)| below(p, path)).count();
                let _ = write!(
                    o,
                    "  -> map ({} paths inside, not listed)",
                    thousands(inside as u64)
                );
            }
            if s.types.iter().filter(|(t, _)| *t != "null").count() > 1 {
                let _ = write!(o, "  -> type conflict: coerce widens the column");
            }
            o.push('\n');
        }
        if !policies.is_empty() || !maps.is_empty() {
            o.push_str("policies:\n");
            for p in &policies {
                let _ = writeln!(o, "  {}: {} -> {}", p.path, p.why, p.policy);
            }
            for (path, v) in &maps {
                let _ = writeln!(
                    o,
                    "  {path}: object used as a map: {} -> json (one JSON column, not a column per key)",
                    v.why()
                );
            }
        }
        o
    }
}

/// An array policy proposed by [`Profile::array_policies`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The array's dotted path.
    pub path: String,
    /// `explode`, `repeated` or `json`.
    pub policy: &'static str,
    /// What the documents held there, in a line.
    pub why: String,
}

/// Among a day's `new` column names (keys joined with `separator`), the
/// objects that look like maps: at least [`MAP_MIN_KEYS`] new columns under
/// one parent whose next key is id-like, as [`ObjectStats::map_verdict`]
/// judges a draft's objects. Each with its new columns' count and a few of
/// their keys, outermost parent first. A run warns with it under
/// `on_new_field: add`, so that a map never widens a table unseen.
pub fn map_like_columns(new: &[String], separator: &str) -> Vec<(String, usize, Vec<String>)> {
    let mut under: BTreeMap<String, std::collections::BTreeSet<&str>> = BTreeMap::new();
    let mut columns: BTreeMap<String, usize> = BTreeMap::new();
    for name in new {
        let parts: Vec<&str> = name.split(separator).collect();
        for k in 1..parts.len() {
            let parent = parts[..k].join(separator);
            under.entry(parent.clone()).or_default().insert(parts[k]);
            *columns.entry(parent).or_default() += 1;
        }
    }
    let mut found: Vec<(String, usize, Vec<String>)> = Vec::new();
    for (parent, keys) in &under {
        if keys.len() < MAP_MIN_KEYS
            || found
                .iter()
                .any(|(p, ..)| parent.starts_with(&format!("{p}{separator}")))
        {
            continue;
        }
        // Column names put `_` before a leading digit.
        let ids = keys
            .iter()
            .filter(|k| id_like(k.strip_prefix('_').unwrap_or(k)))
            .count();
        if ids as f64 >= 0.8 * keys.len() as f64 {
            let examples = keys.iter().take(3).map(|k| (*k).to_owned()).collect();
            found.push((parent.clone(), columns[parent], examples));
        }
    }
    found
}

/// Whether `path` lies inside `outer` (`a.b` and `a[].b` inside `a`).
fn below(path: &str, outer: &str) -> bool {
    path.strip_prefix(outer)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("[]"))
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
    /// Which documents it was drafted from, for its header.
    pub provenance: &'a str,
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
         # Drafted by `etl infer` from {}; review before use.\n\
         version: 1\n\
         name: {}\n\
         \n\
         source:\n  connection: {}\n  database: {}\n  collection: {}\n\
         \n\
         partition:\n  field: {}\n  kind: {}\n  start_date: \"{}\"\n",
        d.provenance,
        d.name,
        d.connection,
        yaml_str(d.database),
        yaml_str(d.collection),
        yaml_str(d.field),
        d.kind.name(),
        d.start_date,
    );
    let policies = profile.array_policies();
    let maps = profile.maps();
    o.push_str("flatten:\n  arrays:\n    default: json\n");
    if policies.is_empty() {
        o.push_str("    rules: []\n");
    } else {
        o.push_str("    rules:\n");
        for p in &policies {
            let _ = writeln!(
                o,
                "      - path: {}\n        policy: {}",
                yaml_str(&jsonpath(&p.path)),
                p.policy
            );
            // Maps inside the elements of an exploded array: the child
            // table's own rules, with paths from the element.
            let inner: Vec<&str> = maps
                .iter()
                .filter_map(|(m, _)| m.strip_prefix(&format!("{}[].", p.path)))
                .filter(|rest| !rest.contains("[]"))
                .collect();
            if p.policy == "explode" && !inner.is_empty() {
                o.push_str("        flatten:\n          objects:\n");
                for rest in inner {
                    let _ = writeln!(
                        o,
                        "            - path: {}\n              policy: json",
                        yaml_str(&jsonpath(rest))
                    );
                }
            }
        }
    }
    let top: Vec<&String> = maps
        .iter()
        .map(|(m, _)| m)
        .filter(|m| !m.contains("[]"))
        .collect();
    if !top.is_empty() {
        o.push_str(
            "  # Objects whose keys are data (ids, dates): one JSON column each.\n  objects:\n",
        );
        for m in top {
            let _ = writeln!(
                o,
                "    - path: {}\n      policy: json",
                yaml_str(&jsonpath(m))
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
        let policies: Vec<(String, &str)> = p
            .array_policies()
            .into_iter()
            .map(|x| (x.path, x.policy))
            .collect();
        assert_eq!(
            policies,
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
             \x20 mixed        array 1; sizes 2..2 (mean 2.0)  -> json\n\
             policies:\n\
             \x20 items: array of objects in 100% of documents, 0-2 elements, mean 1.0 -> explode\n\
             \x20 tags: array of string in 100% of documents, 0-1 elements, mean 0.5 -> repeated\n\
             \x20 mixed: array of mixed elements (int, string) in 50% of documents, 2-2 elements, mean 2.0 -> json\n"
        );
        assert_eq!(p.conflicts().len(), 1, "n");
    }

    /// Issue 28: `tier_and_details` of a bank's customers, an object keyed
    /// by 32-hex-digit ids, one or two keys a customer. It is one map, its
    /// inside neither listed nor given array rules; `address`, a record
    /// with 25 optional fields each in many documents, is not a map.
    #[test]
    fn objects_keyed_by_data_are_maps_and_records_are_not() {
        let mut p = Profile::default();
        for i in 0..300u64 {
            let id = format!(
                "{:032x}",
                0x5cb8_0000_0000_0000_0000u128 + u128::from(i) * 7919
            );
            let mut address = bson::Document::new();
            for f in 0..25u64 {
                if (i + f) % 3 != 0 {
                    address.insert(format!("field_{f}"), f as i64);
                }
            }
            p.observe(&raw(doc! {
                "_id": i as i64,
                "tier_and_details": { id: { "tier": "gold", "benefits": ["a", "b"], "active": true } },
                "address": address,
            }));
        }
        let maps = p.maps();
        assert_eq!(maps.len(), 1, "{maps:?}");
        let (path, v) = &maps[0];
        assert_eq!(path, "tier_and_details");
        assert_eq!((v.keys, v.objects), (300, 300));
        assert_eq!(v.id_like, 1.0);
        assert_eq!(
            v.why(),
            "300 distinct keys in 300 objects, 1.0 per object, the median key in 0.3% of them, 100% id-like"
        );
        // No array rule for `tier_and_details['5cb8…'].benefits`.
        assert!(p.array_policies().is_empty(), "{:?}", p.array_policies());
        let report = p.report();
        assert!(
            report.contains(
                "  tier_and_details  object 300  -> map (1,200 paths inside, not listed)\n"
            ),
            "{report}"
        );
        assert!(
            report.contains(
                "  tier_and_details: object used as a map: 300 distinct keys in 300 objects"
            ),
            "{report}"
        );
        assert!(!report.contains("benefits"), "{report}");
        assert!(report.contains("  address.field_1 "), "{report}");

        let text = draft(&test_draft(), &p);
        assert!(
            text.contains("  objects:\n    - path: \"$.tier_and_details\"\n      policy: json\n"),
            "{text}"
        );
        let spec: crate::spec::PipelineSpec = serde_yaml::from_str(&text).unwrap();
        let tables = crate::flatten::Tables::new(&spec.flatten).unwrap();
        let mut builders = tables.schema_builders();
        tables
            .infer(
                &raw(doc! { "_id": 1, "tier_and_details": { "5cb8aa": { "tier": "x" } } }),
                &mut builders,
            )
            .unwrap();
        let schema = builders.into_iter().next().unwrap().finish();
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_ds", "_id", "tier_and_details"]);
    }

    /// A map inside the elements of an exploded array is a rule of the
    /// child table, with its path from the element.
    #[test]
    fn a_map_inside_exploded_elements_is_a_rule_of_the_child_table() {
        let mut p = Profile::default();
        for i in 0..40u64 {
            p.observe(&raw(doc! {
                "_id": i as i64,
                "items": [{ "sku": "a", "by_store": { format!("{}", 1000 + i): 2 } }],
            }));
        }
        let text = draft(&test_draft(), &p);
        assert!(
            text.contains(
                "      - path: \"$.items\"\n        policy: explode\n        flatten:\n          objects:\n            - path: \"$.by_store\"\n              policy: json\n"
            ),
            "{text}"
        );
        let spec: crate::spec::PipelineSpec = serde_yaml::from_str(&text).unwrap();
        crate::flatten::Tables::new(&spec.flatten).unwrap();
    }

    fn test_draft() -> Draft<'static> {
        Draft {
            name: "customers",
            connection: "mongo",
            database: "bank",
            collection: "customers",
            field: "birthdate",
            kind: Kind::Date,
            start_date: NaiveDate::from_ymd_opt(1966, 7, 29).unwrap(),
            provenance: "a test",
            lake: "lake",
            warehouse: ("parquet", "warehouse_files"),
        }
    }

    #[test]
    fn ids_dates_and_non_names_are_data() {
        for key in [
            "5cb8aa0112ab",
            "123",
            "2020-06-01",
            "20200601",
            "6f1c2a3e-0b1d-4c7e-9a55-1f2e3d4c5b6a",
        ] {
            assert!(id_like(key), "{key}");
        }
        for key in ["name", "created_at", "deadbeef", "abc123", "v2"] {
            assert!(!id_like(key), "{key}");
        }
    }

    #[test]
    fn a_span_is_read_whole_when_small_and_in_windows_when_not() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(
            SamplePlan::new(d(2013, 1, 1), d(2017, 12, 29), 5_000, 10_000),
            SamplePlan::All
        );
        let SamplePlan::Windows {
            windows,
            per_window,
        } = SamplePlan::new(d(2023, 1, 1), d(2025, 12, 31), 1_000_000, 10_000)
        else {
            panic!("a sample")
        };
        assert_eq!(per_window, 500);
        assert_eq!(windows.len(), 20);
        assert_eq!(windows[0].0, d(2023, 1, 1));
        assert_eq!(windows[19].1, d(2025, 12, 31));
        // Contiguous, each day in exactly one window.
        for w in windows.windows(2) {
            assert_eq!(w[0].1.succ_opt().unwrap(), w[1].0);
        }
        let lens: Vec<i64> = windows
            .iter()
            .map(|(a, b)| (*b - *a).num_days() + 1)
            .collect();
        assert!(lens.iter().all(|l| (54..=55).contains(l)), "{lens:?}");
        // Fewer days than windows: a window a day.
        let SamplePlan::Windows {
            windows,
            per_window,
        } = SamplePlan::new(d(2020, 6, 1), d(2020, 6, 3), 50_000, 10_000)
        else {
            panic!("a sample")
        };
        assert_eq!(
            windows,
            [
                (d(2020, 6, 1), d(2020, 6, 1)),
                (d(2020, 6, 2), d(2020, 6, 2)),
                (d(2020, 6, 3), d(2020, 6, 3))
            ]
        );
        assert_eq!(per_window, 3_333);
    }

    /// Restaurants: every ObjectId made within 3 s of a bulk load, the
    /// only dates inside `grades`. `_id` must not partition them.
    #[test]
    fn object_ids_of_a_bulk_load_cannot_partition() {
        let t0 = 1_588_846_502_000i64;
        let mut c = Candidates::default();
        for i in 0..100i64 {
            let mut b = [0u8; 12];
            b[..4].copy_from_slice(&(((t0 + (i % 4) * 1000) / 1000) as u32).to_be_bytes());
            b[11] = i as u8;
            c.observe(&raw(doc! {
                "_id": bson::oid::ObjectId::from_bytes(b),
                "name": "x",
                "grades": [{ "date": bson::DateTime::from_millis(1_300_000_000_000 + i * 86_400_000), "score": 3 }],
            }));
        }
        let chosen = c.choose(None, None).unwrap();
        assert_eq!(
            (chosen.field.as_str(), chosen.kind),
            ("_id", Kind::ObjectId)
        );
        assert_eq!(c.dates["grades[].date"].documents, 100);
        let why = insert_time_only((t0, t0 + 3000), &c.dates).unwrap();
        assert!(why.contains("all created within 3 s"), "{why}");
        // Ids over two years, dates inside over 99 days: `_id` may do.
        assert_eq!(
            insert_time_only((t0, t0 + 730 * 86_400_000), &c.dates),
            None
        );
        // Ids over 10 days, dates over 99: the ids are insert times.
        let why = insert_time_only((t0, t0 + 10 * 86_400_000), &c.dates).unwrap();
        assert!(why.contains("while `grades[].date` spans 99 days"), "{why}");
    }

    #[test]
    fn a_field_shape_counts_what_no_day_selects() {
        let docs: Vec<RawDocumentBuf> = [
            doc! { "at": bson::DateTime::from_millis(0) },
            doc! { "at": bson::DateTime::from_millis(-86_400_000 * 365 * 10) },
            doc! {},
            doc! { "at": bson::Bson::Null },
            doc! { "at": "2020-06-01 10:00" },
            doc! { "at": "soon" },
            doc! { "at": 5 },
        ]
        .into_iter()
        .map(raw)
        .collect();
        let shape = FieldShape::of(docs.iter().map(|d| d.as_ref()), "at", Kind::Date);
        assert_eq!((shape.sampled, shape.qualifies), (7, 2));
        assert_eq!(
            shape.reasons(),
            "string that is not a date 2, int 1, missing 1, null 1"
        );
    }

    #[test]
    fn nested_dates_are_candidates_outside_arrays_only() {
        let mut c = Candidates::default();
        c.observe(&raw(doc! {
            "_id": 1,
            "meta": { "created": bson::DateTime::from_millis(0) },
            "grades": [{ "date": bson::DateTime::from_millis(5) }, { "date": bson::DateTime::from_millis(9) }],
        }));
        let fields: Vec<&str> = c.found.keys().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["meta.created"]);
        assert_eq!(
            c.dates["grades[].date"],
            DatesSeen {
                documents: 1,
                min: 5,
                max: 9
            }
        );
        assert_eq!(c.dates["meta.created"].documents, 1);
    }

    #[test]
    fn new_columns_under_id_keys_are_a_map() {
        let mut new: Vec<String> = (0..30)
            .flat_map(|i| {
                [
                    format!("tier_and_details___5cb8{i:04x}aa__tier"),
                    format!("tier_and_details___5cb8{i:04x}aa__active"),
                ]
            })
            .collect();
        new.extend((0..30).map(|i| format!("address__line_{i}")));
        let found = map_like_columns(&new, "__");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "tier_and_details");
        assert_eq!(found[0].1, 60);
        assert_eq!(found[0].2[0], "_5cb80000aa");
    }
}
