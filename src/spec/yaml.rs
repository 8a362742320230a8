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
    let mut text = e.to_string();
    if let Some(i) = text.rfind(" at line ") {
        text.truncate(i);
    }
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
        let mut at = span_of(node);
        for seg in path.segments() {
            let next = match (seg, node) {
                (Segment::Key(k), Node::Mapping(m)) => m.get_node(k),
                (Segment::Index(i), Node::Sequence(s)) => s.get_node(*i),
                _ => None,
            };
            match next {
                Some(n) => {
                    node = n;
                    at = span_of(node).or(at);
                }
                None => break,
            }
        }
        at.unwrap_or(Location { line: 1, column: 1 })
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
    node.span().start().map(|m| Location {
        line: m.line(),
        column: m.column(),
    })
}

pub use super::Segment;
