//! Column names for document paths.
//!
//! A path's *base name* joins its keys with the separator, after turning
//! every character other than ASCII letters, digits and `_` into `_`,
//! prefixing `_` when the name would start with a digit or a prefix
//! BigQuery reserves (`_TABLE_`, `_PARTITION`, ...), and cutting it at 300
//! characters.
//!
//! Different paths can share a base name (`a.b` and a literal key `a__b`;
//! `a-b` and `a b`; `CamelCase` and `camelcase`, since BigQuery compares
//! names without case). The rule that picks who keeps it must be one that
//! pass 2 can apply *alone*: `write_row` only receives a
//! [`TableSchema`](crate::table::TableSchema) (the inferred one, possibly
//! merged with the warehouse table's), not the history of pass 1. So:
//!
//! - A path is *canonical* when its base name is exactly its keys joined,
//!   all in lowercase ASCII letters, digits and `_`, and splitting the name
//!   on the separator gives the keys back. At most one path per name is
//!   canonical, and it always keeps the base name.
//! - Any other path keeps the base name while no other path of the
//!   partition has it; otherwise it gets `<base><sep><8 hex digits>`, a
//!   hash of its keys, and is listed in `SchemaBuilder::renames`.
//! - Names reserved up front (`_ds`, explicit column names) always take
//!   the suffix.
//!
//! Pass 2 then resolves a path as: reserved → suffixed; canonical → base;
//! otherwise the suffixed name if the schema has it, else the base. The
//! suffix depends only on the path, so `a__b` maps to the same column every
//! day, whichever document came first; a counter (`a__b__2`) would follow
//! the order of each day's documents and swap columns between days.

use crate::extjson::push_key_segment;

/// BigQuery's longest column name.
pub(crate) const MAX_NAME: usize = 300;

/// Prefixes BigQuery reserves for its own columns, compared without case.
const RESERVED_PREFIXES: [&str; 6] = [
    "_table_",
    "_file_",
    "_partition",
    "_row_timestamp",
    "__root__",
    "_colidentifier",
];

/// The naming rules of one flattener.
#[derive(Debug, Clone)]
pub(crate) struct Naming {
    sep: String,
    /// Names taken before any document is read, lowercase.
    reserved: Vec<String>,
}

/// A path's base name and what decides whether it keeps it.
#[derive(Debug, Clone)]
pub(crate) struct BaseName {
    pub name: String,
    pub canonical: bool,
    pub hash: u32,
}

impl Naming {
    pub fn new(sep: &str, reserved: impl IntoIterator<Item = String>) -> Self {
        Naming {
            sep: sep.to_owned(),
            reserved: reserved
                .into_iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn base(&self, keys: &[&str]) -> BaseName {
        let mut name = String::new();
        let mut clean = true;
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                name.push_str(&self.sep);
            }
            clean &= !key.is_empty();
            for c in key.chars() {
                let keep = c.is_ascii_alphanumeric() || c == '_';
                clean &= c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
                name.push(if keep { c } else { '_' });
            }
        }
        let starts_badly = name.is_empty()
            || name.as_bytes()[0].is_ascii_digit()
            || RESERVED_PREFIXES
                .iter()
                .any(|p| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p));
        if starts_badly {
            name.insert(0, '_');
            clean = false;
        }
        if name.len() > MAX_NAME {
            name.truncate(MAX_NAME);
            clean = false;
        }
        let canonical = clean && name.split(self.sep.as_str()).eq(keys.iter().copied());
        BaseName {
            name,
            canonical,
            hash: path_hash(keys),
        }
    }

    /// `<base><sep><hash>`, the base cut to leave room.
    pub fn suffixed(&self, base: &BaseName) -> String {
        let keep = MAX_NAME - self.sep.len() - 8;
        let mut name = base.name[..base.name.len().min(keep)].to_owned();
        name.push_str(&self.sep);
        name.push_str(&format!("{:08x}", base.hash));
        name
    }

    pub fn is_reserved(&self, name: &str) -> bool {
        self.reserved.iter().any(|r| r.eq_ignore_ascii_case(name))
    }

    /// Pass 2's rule: the column of a path, given which names the schema
    /// has.
    pub fn resolve(&self, base: &BaseName, has: impl Fn(&str) -> bool) -> String {
        if self.is_reserved(&base.name) {
            return self.suffixed(base);
        }
        if !base.canonical {
            let suffixed = self.suffixed(base);
            if has(&suffixed) {
                return suffixed;
            }
        }
        base.name.clone()
    }
}

/// FNV-1a over the keys, each followed by a NUL (which no key contains),
/// folded to 32 bits. Fixed here, so names never change with a library.
fn path_hash(keys: &[&str]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for key in keys {
        for &b in key.as_bytes().iter().chain(&[0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    (h ^ (h >> 32)) as u32
}

/// The JSONPath of a key path: `$.a.b`, `$['with space']`.
pub(crate) fn jsonpath(keys: &[&str]) -> String {
    let mut p = String::from("$");
    for key in keys {
        push_key_segment(&mut p, key);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming() -> Naming {
        Naming::new("__", ["_ds".to_owned(), "user_key".to_owned()])
    }

    #[test]
    fn base_names_are_valid_bigquery_names() {
        let n = naming();
        let cases: &[(&[&str], &str, bool)] = &[
            (&["a", "b"], "a__b", true),
            (&["_id"], "_id", true),
            (&["customer", "_id"], "customer___id", true),
            (&["a__b"], "a__b", false),
            (&["with space"], "with_space", false),
            (&["1st_place"], "_1st_place", false),
            (&["ключ"], "____", false),
            (&["CamelCase"], "CamelCase", false),
            (&[""], "_", false),
            (&["_PARTITIONTIME"], "__PARTITIONTIME", false),
            (&["a_", "b"], "a___b", false),
        ];
        for (keys, name, canonical) in cases {
            let b = n.base(keys);
            assert_eq!(
                (b.name.as_str(), b.canonical),
                (*name, *canonical),
                "{keys:?}"
            );
            assert!(crate::spec::names::is_column_name(&b.name), "{}", b.name);
            assert!(crate::spec::names::is_column_name(&n.suffixed(&b)));
        }
    }

    #[test]
    fn long_names_are_cut_to_300_characters() {
        let n = naming();
        let key = "k".repeat(400);
        let b = n.base(&[&key]);
        assert_eq!(b.name.len(), MAX_NAME);
        assert!(!b.canonical);
        assert_eq!(n.suffixed(&b).len(), MAX_NAME);
    }

    #[test]
    fn pass_two_resolves_without_history() {
        let n = naming();
        let nested = n.base(&["a", "b"]);
        let literal = n.base(&["a__b"]);
        let suffixed = n.suffixed(&literal);
        assert_eq!(suffixed, format!("a__b__{:08x}", literal.hash));
        let both = |name: &str| name == "a__b" || name == suffixed;
        assert_eq!(n.resolve(&nested, both), "a__b");
        assert_eq!(n.resolve(&literal, both), suffixed);
        assert_eq!(n.resolve(&literal, |name| name == "a__b"), "a__b");
        let ds = n.base(&["_ds"]);
        assert_eq!(n.resolve(&ds, |_| false), n.suffixed(&ds));
    }

    #[test]
    fn jsonpaths_read_back() {
        let keys = ["a", "with space", "it's"];
        assert_eq!(
            crate::spec::names::simple_path(&jsonpath(&keys)),
            Some(keys.iter().map(|k| k.to_string()).collect())
        );
    }
}
