//! The flatten rules, compiled once per pipeline.
//!
//! Excludes, array rules and the paths that explicit columns take over are
//! merged into one small trie of keys ([`RuleNode`]), walked alongside each
//! document; a document's keys that no rule names cost one `None` check.
//! Explicit columns keep their JSONPath compiled, or their keys when the
//! path is simple, and their default already written as row JSON.

use bson::Bson;
use jsonpath_rust::parser::model::JpQuery;

use crate::spec::{ArrayPolicy, ColumnSpec, ColumnType, FlattenSpec, ObjectPolicy};

use super::naming::Naming;
use super::value::{write_as, Leaf};
use super::FlattenError;

/// Rules that apply at one path and below.
#[derive(Debug, Default)]
pub(crate) struct RuleNode {
    children: Vec<(String, RuleNode)>,
    /// `exclude` names this path: no automatic column reads it or below.
    pub excluded: bool,
    /// An explicit column reads this path under its automatic name, so the
    /// automatic column is not produced (it would be the same column).
    pub claimed: bool,
    /// `arrays.rules` names this path.
    pub array: Option<ArrayPolicy>,
    /// `objects` names this path with `policy: json`: an object here is
    /// one JSON value, whatever the depth.
    pub object_json: bool,
    /// An exclude lies below: JSON text of this value must be pruned.
    pub prunes: bool,
}

impl RuleNode {
    #[inline]
    pub fn child(&self, key: &str) -> Option<&RuleNode> {
        self.children
            .iter()
            .find(|(k, _)| crate::extjson::same_key(k, key))
            .map(|(_, n)| n)
    }

    fn descend(&mut self, keys: &[String]) -> &mut RuleNode {
        let mut node = self;
        for key in keys {
            let at = match node.children.iter().position(|(k, _)| k == key) {
                Some(at) => at,
                None => {
                    node.children.push((key.clone(), RuleNode::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
        }
        node
    }

    /// Sets `prunes` on every node with an exclude strictly below it.
    fn mark_prunes(&mut self) -> bool {
        let mut below = false;
        for (_, child) in &mut self.children {
            below |= child.mark_prunes() | child.excluded;
        }
        self.prunes = below;
        below
    }

    /// `value` without the excluded keys below this node. Arrays are
    /// transparent: `$.items.price` removes `price` from every element of
    /// `items`, as MongoDB's dotted paths would.
    pub fn prune(&self, value: Bson) -> Bson {
        match value {
            Bson::Document(doc) => Bson::Document(
                doc.into_iter()
                    .filter_map(|(k, v)| match self.child(&k) {
                        Some(c) if c.excluded => None,
                        Some(c) => Some((k, c.prune(v))),
                        None => Some((k, v)),
                    })
                    .collect(),
            ),
            Bson::Array(items) => Bson::Array(items.into_iter().map(|v| self.prune(v)).collect()),
            other => other,
        }
    }
}

/// Where an explicit column's value comes from.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A simple path, read straight from the raw document.
    Keys(Vec<String>),
    /// Any other JSONPath, run on the document's relaxed Extended JSON.
    Query(Box<JpQuery>),
}

/// One entry of `flatten.columns`.
#[derive(Debug)]
pub(crate) struct ExplicitColumn {
    pub name: String,
    pub kind: ColumnType,
    pub path: String,
    pub lookup: Lookup,
    /// The default, checked to convert to the declared type; written in
    /// whatever type the row's schema gives the column.
    pub default: Option<bson::RawBson>,
}

/// Every rule of a [`FlattenSpec`], checked and compiled.
#[derive(Debug)]
pub(crate) struct Rules {
    pub root: Option<RuleNode>,
    pub explicit: Vec<ExplicitColumn>,
    pub naming: Naming,
}

impl Rules {
    pub fn compile(spec: &FlattenSpec) -> Result<Self, FlattenError> {
        let sep = &spec.separator;
        if sep.is_empty() || !sep.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(FlattenError::InvalidSeparator(sep.clone()));
        }
        if spec.max_depth == 0 {
            return Err(FlattenError::ZeroDepth);
        }
        let mut explicit = Vec::with_capacity(spec.columns.len());
        for c in &spec.columns {
            if !crate::spec::names::is_column_name(&c.name)
                || c.name.eq_ignore_ascii_case(crate::table::DS_COLUMN)
            {
                return Err(FlattenError::InvalidColumnName {
                    column: c.name.clone(),
                });
            }
            if explicit
                .iter()
                .any(|e: &ExplicitColumn| e.name.eq_ignore_ascii_case(&c.name))
            {
                return Err(FlattenError::DuplicateColumn {
                    column: c.name.clone(),
                });
            }
            explicit.push(compile_column(c)?);
        }
        let naming = Naming::new(
            sep,
            std::iter::once(crate::table::DS_COLUMN.to_owned())
                .chain(explicit.iter().map(|c| c.name.clone())),
        );

        let mut root = RuleNode::default();
        let mut any = false;
        for path in &spec.exclude {
            let keys =
                crate::spec::names::simple_path(path).ok_or_else(|| FlattenError::InvalidPath {
                    field: "exclude",
                    path: path.clone(),
                })?;
            root.descend(&keys).excluded = true;
            any = true;
        }
        for rule in &spec.arrays.rules {
            let keys = crate::spec::names::simple_path(&rule.path).ok_or_else(|| {
                FlattenError::InvalidPath {
                    field: "arrays.rules",
                    path: rule.path.clone(),
                }
            })?;
            root.descend(&keys).array = Some(rule.policy);
            any = true;
        }
        for rule in &spec.objects {
            let keys = crate::spec::names::simple_path(&rule.path).ok_or_else(|| {
                FlattenError::InvalidPath {
                    field: "objects",
                    path: rule.path.clone(),
                }
            })?;
            root.descend(&keys).object_json = rule.policy == ObjectPolicy::Json;
            any = true;
        }
        if spec.auto_columns {
            for c in &explicit {
                if let Lookup::Keys(keys) = &c.lookup {
                    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                    if naming.base(&refs).name == c.name {
                        root.descend(keys).claimed = true;
                        any = true;
                    }
                }
            }
        }
        root.mark_prunes();
        Ok(Rules {
            root: any.then_some(root),
            explicit,
            naming,
        })
    }
}

fn compile_column(c: &ColumnSpec) -> Result<ExplicitColumn, FlattenError> {
    let lookup = match crate::spec::names::simple_path(&c.path) {
        Some(keys) => Lookup::Keys(keys),
        None => {
            let query = jsonpath_rust::parser::parse_json_path(&c.path).map_err(|e| {
                FlattenError::InvalidColumnPath {
                    column: c.name.clone(),
                    path: c.path.clone(),
                    message: e.to_string(),
                }
            })?;
            Lookup::Query(Box::new(query))
        }
    };
    let default = match &c.default {
        None | Some(serde_json::Value::Null) => None,
        Some(json) => Some(default_value(c, json)?),
    };
    Ok(ExplicitColumn {
        name: c.name.clone(),
        kind: c.kind,
        path: c.path.clone(),
        lookup,
        default,
    })
}

/// The default, read as Extended JSON (so `{$date: ...}` works), checked
/// to convert to the column's declared type.
fn default_value(c: &ColumnSpec, json: &serde_json::Value) -> Result<bson::RawBson, FlattenError> {
    let invalid = || FlattenError::InvalidDefault {
        column: c.name.clone(),
        default: json.to_string(),
        kind: c.kind.bigquery_name(),
    };
    let raw = Bson::try_from(json.clone())
        .ok()
        .and_then(|b| bson::RawBson::try_from(b).ok())
        .ok_or_else(invalid)?;
    match write_as(
        Leaf::new(raw.as_raw_bson_ref().into()),
        c.kind,
        &mut Vec::new(),
    ) {
        Ok(true) => Ok(raw),
        _ => Err(invalid()),
    }
}
