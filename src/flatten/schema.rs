//! Pass 1's memory: which columns a partition's documents produce, and
//! their types.
//!
//! Paths live in a trie of keys ([`PathTrie`]), walked alongside each
//! document, so a value finds its column with one key comparison per level
//! and no path string is ever built: documents of one collection mostly
//! list their keys in the same order, so each level first tries the child
//! after the one it matched last.

use std::collections::HashMap;

use crate::spec::{ColumnType, TypeConflictPolicy};
use crate::table::{Column, TableSchema, DS_COLUMN};

use super::naming::{jsonpath, BaseName, Naming};
use super::value::{merge_kinds, Leaf};
use super::walk::Visitor;
use super::{FlattenError, Flattener};
use crate::extjson::{same_key, Value};
use bson::raw::RawDocument;

/// The suffix of an ObjectId column's derived TIMESTAMP column.
pub(crate) const TS_SUFFIX: &str = "__ts";

/// "No column yet" in a trie slot.
pub(crate) const NONE: u32 = u32::MAX;

/// Above this many children, a node also gets a hash index.
const INDEX_AT: usize = 16;

/// A trie of document paths; every node carries one `u32` slot.
#[derive(Debug, Clone)]
pub(crate) struct PathTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Clone)]
struct TrieNode {
    parent: u32,
    key: Box<str>,
    children: Vec<(Box<str>, u32)>,
    index: Option<HashMap<Box<str>, u32>>,
    slot: u32,
}

impl PathTrie {
    pub const ROOT: u32 = 0;

    pub fn new() -> Self {
        PathTrie {
            nodes: vec![TrieNode {
                parent: NONE,
                key: "".into(),
                children: Vec::new(),
                index: None,
                slot: NONE,
            }],
        }
    }

    /// The child `key` of `parent`, added when missing; leaves `*guess`
    /// just after it. The child at `*guess` is tried here, inlined into the
    /// walks that call this at every key of every document in both passes,
    /// where it almost always is the one; the search and the insert are out
    /// of line, so that a hit costs no call.
    #[inline]
    pub fn find_or_insert(&mut self, parent: u32, key: &str, guess: &mut usize) -> u32 {
        if let Some((k, child)) = self.nodes[parent as usize].children.get(*guess) {
            if same_key(k, key) {
                *guess += 1;
                return *child;
            }
        }
        self.find_or_insert_missed(parent, key, guess)
    }

    #[inline(never)]
    fn find_or_insert_missed(&mut self, parent: u32, key: &str, guess: &mut usize) -> u32 {
        let node = &self.nodes[parent as usize];
        let found = match &node.index {
            Some(index) => index.get(key).map(|&at| at as usize),
            None => node.children.iter().position(|(k, _)| same_key(k, key)),
        };
        if let Some(at) = found {
            *guess = at + 1;
            return node.children[at].1;
        }
        let child = self.nodes.len() as u32;
        self.nodes.push(TrieNode {
            parent,
            key: key.into(),
            children: Vec::new(),
            index: None,
            slot: NONE,
        });
        let node = &mut self.nodes[parent as usize];
        node.children.push((key.into(), child));
        let at = node.children.len() - 1;
        *guess = at + 1;
        if let Some(index) = &mut node.index {
            index.insert(key.into(), at as u32);
        } else if node.children.len() > INDEX_AT {
            node.index = Some(
                node.children
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i as u32))
                    .collect(),
            );
        }
        child
    }

    #[inline]
    pub fn slot(&self, node: u32) -> u32 {
        self.nodes[node as usize].slot
    }

    pub fn set_slot(&mut self, node: u32, slot: u32) {
        self.nodes[node as usize].slot = slot;
    }

    /// The keys from the root down to `node`.
    pub fn keys(&self, mut node: u32) -> Vec<&str> {
        let mut keys = Vec::new();
        while node != Self::ROOT {
            let n = &self.nodes[node as usize];
            keys.push(&*n.key);
            node = n.parent;
        }
        keys.reverse();
        keys
    }
}

/// Pass 1: collects the columns of a partition, fed one document at a time
/// by [`Flattener::infer`].
///
/// One builder serves one flattener: the first `infer` records the
/// flattener's explicit columns and naming rules.
#[derive(Debug, Clone)]
pub struct SchemaBuilder {
    seeded: bool,
    conflict: TypeConflictPolicy,
    bignumeric: bool,
    object_id_timestamps: bool,
    naming: Naming,
    explicit: Vec<Column>,
    /// Under `variant`: the variant columns of declared columns, for the
    /// values that did not convert to the declared type.
    explicit_variants: Vec<Column>,
    trie: PathTrie,
    columns: Vec<AutoColumn>,
    /// Columns by lowercase base name: BigQuery compares names without case.
    groups: HashMap<String, Vec<u32>>,
    renames: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct AutoColumn {
    path: String,
    base: BaseName,
    name: String,
    /// The `coerce` type of every value seen.
    kind: Option<ColumnType>,
    /// Each type seen, with its count, in the order first seen.
    kinds: Vec<(ColumnType, u64)>,
    /// A `repeated` array was seen here: the column is REPEATED, of its
    /// elements' type.
    repeated: bool,
    /// Objects seen as elements of a `repeated` array: their fields.
    record: Option<RecordStats>,
    /// ObjectIds seen, for `object_id_timestamps`.
    object_ids: u64,
}

/// The fields of the objects in a `repeated` array.
#[derive(Debug, Clone, Default)]
struct RecordStats {
    /// `(key, field name, coerce type)`, in the order first seen.
    fields: Vec<(String, String, Option<ColumnType>)>,
    /// Two keys make one field name: the column falls back to JSON.
    collision: bool,
}

impl AutoColumn {
    /// The column of a `repeated` array that held objects: REPEATED RECORD
    /// when every element was an object and the keys make distinct field
    /// names; otherwise REPEATED JSON (or STRING, with scalars), each
    /// object as its JSON text, so nothing is lost. Objects that were all
    /// empty make JSON too: a RECORD needs a field (BigQuery refuses one
    /// without, and Parquet cannot write an empty struct).
    fn record_column(&self, record: &RecordStats) -> Column {
        if record.collision || self.kind.is_some() || record.fields.is_empty() {
            return Column {
                name: self.name.clone(),
                kind: self
                    .kind
                    .map_or(ColumnType::Json, |k| merge_kinds(k, ColumnType::Json)),
                repeated: true,
                fields: Vec::new(),
            };
        }
        Column {
            name: self.name.clone(),
            kind: ColumnType::Record,
            repeated: true,
            fields: record
                .fields
                .iter()
                .map(|(_, name, kind)| {
                    Column::new(name.clone(), kind.unwrap_or(ColumnType::String))
                })
                .collect(),
        }
    }
}

impl Default for SchemaBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SchemaBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        SchemaBuilder {
            seeded: false,
            conflict: TypeConflictPolicy::Coerce,
            bignumeric: false,
            object_id_timestamps: false,
            naming: Naming::new("__", []),
            explicit: Vec::new(),
            explicit_variants: Vec::new(),
            trie: PathTrie::new(),
            columns: Vec::new(),
            groups: HashMap::new(),
            renames: Vec::new(),
        }
    }

    pub(crate) fn seed(&mut self, flattener: &Flattener) {
        if self.seeded {
            return;
        }
        self.seeded = true;
        self.conflict = flattener.conflict;
        self.bignumeric = flattener.bignumeric;
        self.object_id_timestamps = flattener.object_id_timestamps;
        self.naming = flattener.rules.naming.clone();
        self.explicit = flattener
            .rules
            .explicit
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                kind: c.kind,
                repeated: false,
                fields: Vec::new(),
            })
            .collect();
    }

    /// Under `variant`: declared column `column` met a value of type `kind`
    /// that does not convert to its type; the table gets
    /// `<column>__v_<type>`, right after it.
    pub(crate) fn explicit_variant(&mut self, column: &str, kind: ColumnType) {
        let name = super::conflict::variant_name(column, kind);
        if !self.explicit_variants.iter().any(|c| c.name == name) {
            self.explicit_variants.push(Column::new(name, kind));
        }
    }

    /// Everything recorded, for the tests that compare two ways of running
    /// pass 1: the columns with each type and count seen, the explicit
    /// ones and their variants, the renames. (Not the trie of paths: a walk
    /// that stopped may have entered paths it recorded nothing under.)
    #[cfg(test)]
    pub(crate) fn recorded(&self) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}",
            self.explicit, self.explicit_variants, self.columns, self.renames
        )
    }

    /// The table: `_ds` DATE first, then the explicit columns in spec
    /// order, then the automatic ones in the order they were first seen. A
    /// column that only ever held null is STRING.
    pub fn finish(self) -> TableSchema {
        self.finish_against(None)
    }

    /// [`finish`](SchemaBuilder::finish), with the types a column must keep
    /// under `variant` and `reject`: a column `baseline` has keeps its type
    /// there; any other keeps the type most of its values have (the first
    /// seen on a tie). Under `variant`, each type that does not fit it gets
    /// its variant column, right after. Under `coerce`, `baseline` is not
    /// used: the engine widens against the table afterwards.
    pub fn finish_against(mut self, baseline: Option<&TableSchema>) -> TableSchema {
        let mut columns = Vec::with_capacity(1 + self.explicit.len() + self.columns.len());
        columns.push(Column {
            name: DS_COLUMN.to_owned(),
            kind: ColumnType::Date,
            repeated: false,
            fields: Vec::new(),
        });
        let variants = std::mem::take(&mut self.explicit_variants);
        for c in std::mem::take(&mut self.explicit) {
            let prefix = format!("{}__v_", c.name);
            columns.push(c);
            columns.extend(
                variants
                    .iter()
                    .filter(|v| {
                        v.name
                            .strip_prefix(&prefix)
                            .is_some_and(|k| !k.contains("__"))
                    })
                    .cloned(),
            );
        }
        let autos = std::mem::take(&mut self.columns);
        for c in autos {
            let derived = (self.object_id_timestamps && c.object_ids > 0)
                .then(|| Column::new(format!("{}{TS_SUFFIX}", c.name), ColumnType::Timestamp));
            let first = columns.len();
            self.finish_column(c, baseline, &mut columns);
            if let Some(ts) = derived {
                // Right after its column (before any variants).
                columns.insert(first + 1, ts);
            }
        }
        TableSchema { columns }
    }

    /// One automatic column, with its variants, as `finish_against`
    /// describes.
    fn finish_column(
        &self,
        c: AutoColumn,
        baseline: Option<&TableSchema>,
        columns: &mut Vec<Column>,
    ) {
        {
            if let Some(record) = &c.record {
                columns.push(c.record_column(record));
                return;
            }
            // A REPEATED column cannot have variants: under `variant` it
            // widens like under `coerce`, so no element is lost.
            if self.conflict == TypeConflictPolicy::Coerce
                || (c.repeated && self.conflict == TypeConflictPolicy::Variant)
            {
                columns.push(Column {
                    name: c.name,
                    kind: c.kind.unwrap_or(ColumnType::String),
                    repeated: c.repeated,
                    fields: Vec::new(),
                });
                return;
            }
            let base = baseline
                .and_then(|b| b.get(&c.name))
                .map(|col| col.kind)
                .or_else(|| {
                    // The first of the most frequent: max_by_key keeps the
                    // last of equals, so look from the end.
                    c.kinds
                        .iter()
                        .rev()
                        .max_by_key(|(_, n)| *n)
                        .map(|(k, _)| *k)
                })
                .unwrap_or(ColumnType::String);
            let variant_columns: Vec<Column> = c
                .kinds
                .iter()
                .filter(|(k, _)| {
                    self.conflict == TypeConflictPolicy::Variant && !super::conflict::fits(*k, base)
                })
                .map(|(k, _)| Column {
                    name: super::conflict::variant_name(&c.name, *k),
                    kind: *k,
                    repeated: false,
                    fields: Vec::new(),
                })
                .collect();
            columns.push(Column {
                name: c.name,
                kind: base,
                repeated: c.repeated,
                fields: Vec::new(),
            });
            columns.extend(variant_columns);
        }
    }

    /// Paths whose column name is not their plain name because another
    /// path has it too: `(JSONPath, column)`, in the order they were
    /// renamed.
    pub fn renames(&self) -> &[(String, String)] {
        &self.renames
    }

    /// Automatic columns that held only nulls so far. [`finish`] makes them
    /// STRING; a caller merging with an existing table may prefer the
    /// table's type for them, since their rows are all NULL.
    ///
    /// [`finish`]: SchemaBuilder::finish
    pub fn null_only(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter(|c| c.kind.is_none())
            .map(|c| c.name.as_str())
    }

    fn add_column(&mut self, node: u32) -> u32 {
        let keys = self.trie.keys(node);
        let base = self.naming.base(&keys);
        let path = jsonpath(&keys);
        let id = self.columns.len() as u32;
        let name = if self.naming.is_reserved(&base.name) {
            let name = self.naming.suffixed(&base);
            self.renames.push((path.clone(), name.clone()));
            name
        } else {
            let group = self
                .groups
                .entry(base.name.to_ascii_lowercase())
                .or_default();
            let mut rename_now = Vec::new();
            if let [only] = group.as_slice() {
                // A lone non-canonical column kept its base name; now it
                // has company, it takes the suffix.
                let other = &self.columns[*only as usize];
                if !other.base.canonical {
                    rename_now.push(*only);
                }
            }
            let name = if group.is_empty() || base.canonical {
                base.name.clone()
            } else {
                let name = self.naming.suffixed(&base);
                rename_now.push(id);
                name
            };
            group.push(id);
            for other in rename_now.into_iter().filter(|&o| o != id) {
                let other = &mut self.columns[other as usize];
                other.name = self.naming.suffixed(&other.base);
                self.renames.push((other.path.clone(), other.name.clone()));
            }
            if name != base.name {
                self.renames.push((path.clone(), name.clone()));
            }
            name
        };
        self.columns.push(AutoColumn {
            path,
            base,
            name,
            kind: None,
            kinds: Vec::new(),
            repeated: false,
            record: None,
            object_ids: 0,
        });
        self.trie.set_slot(node, id);
        id
    }
}

impl<'d> Visitor<'d> for SchemaBuilder {
    type Node = u32;
    type Guess = usize;

    #[inline]
    fn enter(&mut self, parent: u32, key: &str, guess: &mut usize) -> u32 {
        self.trie.find_or_insert(parent, key, guess)
    }

    #[inline]
    fn leaf(&mut self, node: u32, leaf: Leaf<'d>) -> Result<(), FlattenError> {
        let mut id = self.trie.slot(node);
        if id == NONE {
            id = self.add_column(node);
        }
        self.record(id, leaf);
        Ok(())
    }

    // Kept out of the recursive walk's frame, which must stay small.
    #[inline(never)]
    fn repeated(&mut self, node: u32, array: &'d RawDocument) -> Result<(), FlattenError> {
        let mut id = self.trie.slot(node);
        if id == NONE {
            id = self.add_column(node);
        }
        self.columns[id as usize].repeated = true;
        for item in crate::extjson::elements(array) {
            match item? {
                (_, Value::Document(d)) => self.record_fields(id, d)?,
                (_, value) => self.record(id, Leaf::new(value)),
            }
        }
        Ok(())
    }
}

impl SchemaBuilder {
    /// Records the fields of an object element of a `repeated` array.
    fn record_fields(&mut self, id: u32, doc: &RawDocument) -> Result<(), FlattenError> {
        let naming = &self.naming;
        let record = self.columns[id as usize]
            .record
            .get_or_insert_with(RecordStats::default);
        for item in crate::extjson::elements(doc) {
            let (key, value) = item?;
            let kind = super::kind_of(self.bignumeric, value);
            match record.fields.iter_mut().find(|(k, _, _)| k == key) {
                Some((_, _, have)) => {
                    if let Some(kind) = kind {
                        *have = Some(have.map_or(kind, |h| merge_kinds(h, kind)));
                    }
                }
                None => {
                    let name = naming.base(&[key]).name;
                    if record
                        .fields
                        .iter()
                        .any(|(_, n, _)| n.eq_ignore_ascii_case(&name))
                    {
                        record.collision = true;
                    }
                    record.fields.push((key.to_owned(), name, kind));
                }
            }
        }
        Ok(())
    }

    /// Counts a value's type in column `id`.
    #[inline(always)]
    fn record(&mut self, id: u32, leaf: Leaf<'_>) {
        if let Some(kind) = super::kind_of(self.bignumeric, leaf.value) {
            let column = &mut self.columns[id as usize];
            if matches!(leaf.value, Value::ObjectId(_)) {
                column.object_ids += 1;
            }
            column.kind = Some(match column.kind {
                None => kind,
                Some(have) => merge_kinds(have, kind),
            });
            match column.kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => column.kinds.push((kind, 1)),
            }
        }
    }
}

/// Lays a schema lock's reviewed types over the schema a day's documents
/// gave: a column whose values fit its locked (wider) type, or that held
/// only nulls today, takes the locked type, so every day loads into the
/// same table whatever subset of values it saw. Under `coerce` too.
/// Columns the lock lacks are left as found: `on_new_field` decides them.
///
/// The columns are put in the lock's order too, the lock's first and then
/// the others as found, so a table's column order does not depend on which
/// document of the day came first (and a day's schema can be told before
/// its documents are read: see the engine's `Speculation`).
pub fn adopt_locked_types(found: &mut TableSchema, locked: &TableSchema, null_only: &[String]) {
    let position = |name: &str| {
        locked
            .columns
            .iter()
            .position(|l| l.name == name)
            .unwrap_or(usize::MAX)
    };
    found.columns.sort_by_key(|c| position(&c.name));
    for c in &mut found.columns {
        if let Some(l) = locked.get(&c.name) {
            if null_only.contains(&c.name)
                || (l.repeated == c.repeated
                    && c.kind != ColumnType::Record
                    && super::widen(c.kind, l.kind) == l.kind)
            {
                c.kind = l.kind;
                c.repeated = l.repeated;
                c.fields = l.fields.clone();
            }
        }
    }
}
