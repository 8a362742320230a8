//! The only module that touches YAML.
//!
//! serde_yaml parses into the spec types; marked-yaml keeps a second,
//! span-carrying tree so that any YAML path (from the JSON Schema check, serde
//! or a semantic check) can be turned into a line and column. serde_yaml is
//! archived upstream: keeping it here makes a later switch a one-file change.

use marked_yaml::Node;
use serde::de::DeserializeOwned;

use super::YamlPath;

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// A YAML syntax or type error from serde_yaml.
#[derive(Debug)]
pub struct ParseError {
    /// Where serde_yaml stopped, if it knows.
    pub location: Option<Location>,
    /// The YAML path serde_yaml was in, when its message names one.
    pub path: YamlPath,
    /// The message without the path prefix.
    pub message: String,
}

/// Parses YAML text into a spec type.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    serde_yaml::from_str(text).map_err(parse_error)
}

/// Parses YAML text into a JSON value, for the JSON Schema check.
pub fn to_json(text: &str) -> Result<serde_json::Value, ParseError> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(parse_error)?;
    serde_json::to_value(value).map_err(|e| ParseError {
        location: None,
        path: YamlPath::root(),
        message: format!("the YAML cannot be read as JSON: {e}"),
    })
}

fn parse_error(e: serde_yaml::Error) -> ParseError {
    let location = e.location().map(|l| Location {
        line: l.line(),
        column: l.column(),
    });
    // serde_yaml writes `a.b[0].c: message at line L column C`; keep the path
    // apart so it is shown once, in our own format.
    let text = strip_positions(&e.to_string());
    let (path, message) = match text.split_once(": ") {
        Some((p, m)) if !p.contains(' ') && !p.is_empty() => (YamlPath::parse(p), m.to_owned()),
        _ => (YamlPath::root(), text),
    };
    ParseError {
        location,
        path,
        message,
    }
}

/// Removes every ` at line L column C`: the location is printed once, in
/// front.
fn strip_positions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let skip = after
            .find(" column ")
            .map(|c| c + " column ".len())
            .map(|c| {
                c + after[c..]
                    .find(|ch: char| !ch.is_ascii_digit())
                    .unwrap_or(after.len() - c)
            })
            .unwrap_or(0);
        rest = &after[skip..];
    }
    out.push_str(rest);
    out
}

/// Finds where a YAML path is written in a file.
pub struct Locator {
    root: Option<Node>,
}

impl Locator {
    /// Builds the span tree. A file that does not parse gives a locator that
    /// knows nothing, and every lookup falls back to line 1.
    pub fn new(text: &str) -> Self {
        Self {
            root: marked_yaml::parse_yaml(0, text).ok(),
        }
    }

    /// The location of the value at `path`, or of its deepest existing
    /// ancestor when the path goes further than the file (a missing field is
    /// reported where its parent is).
    pub fn value(&self, path: &YamlPath) -> Location {
        let Some(root) = &self.root else {
            return Location { line: 1, column: 1 };
        };
        let mut node = root;
        let mut at = None;
        for seg in path.segments() {
            let next = match (seg, node) {
                // A mapping or list is shown where its key is written; a
                // scalar where its value is.
                (Segment::Key(k), Node::Mapping(m)) => {
                    m.iter().find(|(key, _)| key.as_str() == k).map(|(key, v)| {
                        let here = match v {
                            Node::Scalar(_) => span_of(v),
                            _ => key.span().start().map(marker),
                        };
                        (v, here)
                    })
                }
                (Segment::Index(i), Node::Sequence(s)) => s.get_node(*i).map(|v| (v, span_of(v))),
                _ => None,
            };
            match next {
                Some((n, here)) => {
                    node = n;
                    at = here.or(at);
                }
                None => break,
            }
        }
        at.unwrap_or(Location { line: 1, column: 1 })
    }

    /// Finds the first mapping at or below `path` that has the key `key`:
    /// serde reports an unknown field inside a tagged enum at the enum's
    /// parent, so the exact place has to be searched for.
    pub fn find_key(&self, path: &YamlPath, key: &str) -> Option<(YamlPath, Location)> {
        fn walk(node: &Node, at: YamlPath, key: &str) -> Option<(YamlPath, Location)> {
            match node {
                Node::Mapping(m) => {
                    for (k, _) in m.iter() {
                        if k.as_str() == key {
                            return k.span().start().map(|s| (at.clone(), marker(s)));
                        }
                    }
                    m.iter().find_map(|(k, v)| walk(v, at.key(k.as_str()), key))
                }
                Node::Sequence(s) => s
                    .iter()
                    .enumerate()
                    .find_map(|(i, v)| walk(v, at.index(i), key)),
                Node::Scalar(_) => None,
            }
        }
        let mut node = self.root.as_ref()?;
        for seg in path.segments() {
            node = match (seg, node) {
                (Segment::Key(k), Node::Mapping(m)) => m.get_node(k)?,
                (Segment::Index(i), Node::Sequence(s)) => s.get_node(*i)?,
                _ => return None,
            };
        }
        walk(node, path.clone(), key)
    }

    /// The location of the key `key` inside the mapping at `path`: where an
    /// unknown field is written.
    pub fn key(&self, path: &YamlPath, key: &str) -> Location {
        let mut parent = self.root.as_ref();
        for seg in path.segments() {
            parent = match (seg, parent) {
                (Segment::Key(k), Some(Node::Mapping(m))) => m.get_node(k),
                (Segment::Index(i), Some(Node::Sequence(s))) => s.get_node(*i),
                _ => None,
            };
        }
        if let Some(Node::Mapping(m)) = parent {
            for (k, _) in m.iter() {
                if k.as_str() == key {
                    if let Some(l) = k.span().start() {
                        return Location {
                            line: l.line(),
                            column: l.column(),
                        };
                    }
                }
            }
        }
        self.value(path)
    }
}

fn span_of(node: &Node) -> Option<Location> {
    node.span().start().map(marker)
}

fn marker(m: &marked_yaml::Marker) -> Location {
    Location {
        line: m.line(),
        column: m.column(),
    }
}

pub use super::Segment;
