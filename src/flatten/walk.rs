//! The one walk over a document that both passes share, so they can never
//! disagree on which paths make columns.
//!
//! For each key, in document order: excluded paths are skipped; non-empty
//! objects above `max_depth` are entered; objects at `max_depth`, objects
//! an `objects` rule stores as `json`, and arrays become one JSON value; everything else is a scalar value. Paths that an
//! explicit column took over are skipped as values (objects below them are
//! still entered). The [`Visitor`] decides what a value means: pass 1
//! records its type, pass 2 writes it.

use bson::raw::RawDocument;

use crate::extjson::{elements, has_key_before, KeyFilter, Value, MAX_NESTING};
use crate::spec::ArrayPolicy;

use super::rules::RuleNode;
use super::value::Leaf;
use super::{FlattenError, Flattener};

/// What a pass does at each path of documents that live for `'d`.
pub(crate) trait Visitor<'d> {
    /// Where a path is: a [`PathTrie`] id, or one per pass when two passes
    /// share a walk.
    ///
    /// [`PathTrie`]: super::schema::PathTrie
    type Node: Copy;
    /// Where the next key of an object is expected among its node's
    /// children (see [`PathTrie::find`](super::schema::PathTrie::find)).
    type Guess: Default;
    /// The node of `parent`'s child `key`.
    fn enter(&mut self, parent: Self::Node, key: &str, guess: &mut Self::Guess) -> Self::Node;
    /// A value at `node`. Errors carry a path relative to the value.
    fn leaf(&mut self, node: Self::Node, leaf: Leaf<'d>) -> Result<(), FlattenError>;
    /// An array under the `repeated` policy at `node`: its elements, in
    /// order, make one REPEATED value.
    fn repeated(&mut self, node: Self::Node, array: &'d RawDocument) -> Result<(), FlattenError>;
}

/// Why a walk stopped early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The document repeats a key: start again on its deduplicated form.
    Duplicate,
    Failed(FlattenError),
}

impl From<FlattenError> for Stop {
    fn from(e: FlattenError) -> Self {
        Stop::Failed(e)
    }
}

/// How the walk stores an array.
enum ArrayStorage {
    /// One JSON column.
    Json,
    /// One REPEATED column of the elements.
    Repeated,
    /// A child table's rows: no column here (see the `tables` submodule).
    Child,
}

impl Flattener {
    fn array_storage(&self, rule: Option<&RuleNode>) -> ArrayStorage {
        match rule.and_then(|r| r.array).unwrap_or(self.default_array) {
            ArrayPolicy::Json => ArrayStorage::Json,
            ArrayPolicy::Repeated => ArrayStorage::Repeated,
            ArrayPolicy::Explode => ArrayStorage::Child,
        }
    }

    /// An array at `key`, as its policy stores it. Kept out of the
    /// recursive walk's frame, which must stay small.
    #[inline(never)]
    fn array<'d, V: Visitor<'d>>(
        &'d self,
        array: &'d RawDocument,
        key: &str,
        rule: Option<&'d RuleNode>,
        node: V::Node,
        guess: &mut V::Guess,
        v: &mut V,
    ) -> Result<(), FlattenError> {
        match self.array_storage(rule) {
            ArrayStorage::Json => {
                let child = v.enter(node, key, guess);
                let prune = rule.filter(|r| r.prunes);
                v.leaf(
                    child,
                    Leaf {
                        value: Value::Array(array),
                        prune,
                    },
                )
            }
            ArrayStorage::Repeated => {
                let child = v.enter(node, key, guess);
                v.repeated(child, array)
            }
            ArrayStorage::Child => Ok(()),
        }
    }

    pub(crate) fn walk<'d, V: Visitor<'d>>(
        &'d self,
        doc: &'d RawDocument,
        depth: u32,
        rule: Option<&'d RuleNode>,
        node: V::Node,
        v: &mut V,
    ) -> Result<(), Stop> {
        if depth as usize > MAX_NESTING {
            return Err(Stop::Failed(FlattenError::TooDeep {
                path: "$".to_owned(),
                limit: MAX_NESTING,
            }));
        }
        let mut keys = KeyFilter::default();
        let mut guess = V::Guess::default();
        for (i, item) in elements(doc).enumerate() {
            let (key, value) = item.map_err(FlattenError::from)?;
            if keys.insert(key) && has_key_before(doc, key, i) {
                return Err(Stop::Duplicate);
            }
            let rule = rule.and_then(|r| r.child(key));
            let (excluded, claimed) = rule.map_or((false, false), |r| (r.excluded, r.claimed));
            if excluded {
                continue;
            }
            let at = |e: FlattenError| Stop::Failed(e.under_key(key));
            let as_json = rule.is_some_and(|r| r.object_json);
            match value {
                Value::Document(_) if as_json && !claimed => {
                    // `objects` rule `policy: json`: one JSON column, even
                    // when empty, so that a map's absence (NULL) and its
                    // emptiness (`{}`) stay apart.
                    let child = v.enter(node, key, &mut guess);
                    let prune = rule.filter(|r| r.prunes);
                    v.leaf(child, Leaf { value, prune }).map_err(at)?;
                }
                Value::Document(sub) if sub.is_empty() => {}
                Value::Document(sub) if depth < self.max_depth => {
                    let child = v.enter(node, key, &mut guess);
                    match self.walk(sub, depth + 1, rule, child, v) {
                        Err(Stop::Failed(e)) => return Err(at(e)),
                        other => other?,
                    }
                }
                Value::Document(_) | Value::Array(_) if claimed => {}
                Value::Document(_) => {
                    // An object at `max_depth`: one JSON column.
                    let child = v.enter(node, key, &mut guess);
                    let prune = rule.filter(|r| r.prunes);
                    v.leaf(child, Leaf { value, prune }).map_err(at)?;
                }
                Value::Array(array) => self
                    .array(array, key, rule, node, &mut guess, v)
                    .map_err(at)?,
                _ if claimed => {}
                _ => {
                    let child = v.enter(node, key, &mut guess);
                    v.leaf(child, Leaf::new(value)).map_err(at)?;
                }
            }
        }
        Ok(())
    }
}
