//! The YAML contract: spec types, JSON Schemas, and loading with located
//! diagnostics.
//!
//! Loading a file runs three passes and keeps every problem it finds:
//! the JSON Schema (generated from the same types) catches every structural
//! mistake at once, serde then builds the typed spec, and the semantic checks
//! in [`crate::plan`] report on the result. Each problem carries a YAML path;
//! [`yaml::Locator`] turns it into a line and column.

pub mod names;
pub mod reference;
pub mod types;
pub mod yaml;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use types::*;
use yaml::{Location, Locator};

/// One step in a YAML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path into a YAML document, shown as `sinks.warehouse.table` or
/// `flatten.columns[2].path`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YamlPath(Vec<Segment>);

impl YamlPath {
    /// The document itself.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Parses the dotted form that serde_yaml prints (`a.b[1].c`).
    pub fn parse(s: &str) -> Self {
        let mut out = Vec::new();
        for part in s.split('.') {
            let (key, rest) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                out.push(Segment::Key(key.to_owned()));
            }
            for idx in rest.split('[') {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    out.push(Segment::Index(i));
                }
            }
        }
        Self(out)
    }

    /// Builds a path from a JSON pointer (`/a/b/0`).
    pub fn from_pointer(p: &str) -> Self {
        Self(
            p.split('/')
                .skip(1)
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .map(|s| match s.parse() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => Segment::Key(s),
                })
                .collect(),
        )
    }

    /// This path with a key appended.
    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Key(k.into()));
        Self(v)
    }

    /// This path with an index appended.
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Segment::Index(i));
        Self(v)
    }

    /// The steps of the path.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

/// Builds a [`YamlPath`] from dotted keys: `ypath!("sinks", "lake", "path")`.
#[macro_export]
macro_rules! ypath {
    ($($k:expr),* $(,)?) => {{
        let p = $crate::spec::YamlPath::root();
        $(let p = p.key($k);)*
        p
    }};
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A problem found in a spec, before it is placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the document.
    pub path: YamlPath,
    /// For an unknown or misplaced key: the key itself, so the location
    /// points at it rather than at its parent.
    pub key: Option<String>,
    /// What is wrong, lowercase, saying what was expected.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: YamlPath, message: impl Into<String>) -> Self {
        Self {
            path,
            key: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something to look at; `etl validate` still exits 0.
    Warning,
    /// Something to fix before a run: a bad spec (exit 2) or, under
    /// `etl validate --connect`, a connection check that failed (exit 1).
    #[default]
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A problem placed in a file: what `etl validate` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    /// `error` or `warning`.
    pub severity: Severity,
    /// The file, as given on the command line.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The YAML path, such as `sinks.warehouse.table`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// The same diagnostic as a warning.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Whether it is an error rather than a warning.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A spec file read from disk, with what is needed to place problems in it.
pub struct Loaded<T> {
    /// The file, as given.
    pub file: PathBuf,
    /// The parsed spec, when parsing got that far.
    pub spec: Option<T>,
    /// Problems found while loading.
    pub diagnostics: Vec<Diagnostic>,
    locator: Locator,
}

impl<T> Loaded<T> {
    /// Places a problem in this file.
    pub fn place(&self, p: Problem) -> Diagnostic {
        let Location { line, column } = match &p.key {
            Some(k) => self.locator.key(&p.path, k),
            None => self.locator.value(&p.path),
        };
        Diagnostic {
            severity: Severity::Error,
            file: self.file.clone(),
            line,
            column,
            path: p.path.to_string(),
            message: p.message,
            hint: p.hint,
        }
    }
}

/// Which schema a file follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKind {
    /// `etl.yaml`
    Project,
    /// `pipelines/*.yaml`
    Pipeline,
}

impl SpecKind {
    /// The JSON Schema for this kind, generated from the spec types.
    pub fn schema(self) -> serde_json::Value {
        let schema = match self {
            SpecKind::Project => schemars::schema_for!(ProjectSpec),
            SpecKind::Pipeline => schemars::schema_for!(PipelineSpec),
        };
        serde_json::to_value(schema).expect("a schema is JSON")
    }

    /// The file name of the committed schema under `schemas/`.
    pub fn schema_file(self) -> &'static str {
        match self {
            SpecKind::Project => "project.schema.json",
            SpecKind::Pipeline => "pipeline.schema.json",
        }
    }

    fn validator(self) -> &'static jsonschema::Validator {
        static PROJECT: OnceLock<jsonschema::Validator> = OnceLock::new();
        static PIPELINE: OnceLock<jsonschema::Validator> = OnceLock::new();
        let cell = match self {
            SpecKind::Project => &PROJECT,
            SpecKind::Pipeline => &PIPELINE,
        };
        // Checked as draft 7, which means the same for these schemas (no
        // keyword beside a `$ref` but annotations, none of 2019-09 or
        // 2020-12's own; `schema_is_the_same_under_draft_7` checks both):
        // building a validator checks the schema against its draft's
        // meta-schema first, and 2020-12's, with its dynamic references,
        // took 0.1 s of CPU, most of a small command's.
        cell.get_or_init(|| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft7)
                .build(&self.schema())
                .expect("the generated schema is valid")
        })
    }
}

/// Reads and parses a spec file, collecting every structural problem.
pub fn load<T: DeserializeOwned>(file: &Path, kind: SpecKind) -> Loaded<T> {
    match std::fs::read_to_string(file) {
        Ok(text) => load_str(file, &text, kind),
        Err(e) => Loaded {
            file: file.to_owned(),
            spec: None,
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                file: file.to_owned(),
                line: 1,
                column: 1,
                path: YamlPath::root().to_string(),
                message: format!("cannot read the file: {e}"),
                hint: None,
            }],
            locator: Locator::new(""),
        },
    }
}

/// Parses spec text; `file` names it in diagnostics.
pub fn load_str<T: DeserializeOwned>(file: &Path, text: &str, kind: SpecKind) -> Loaded<T> {
    let mut loaded = Loaded {
        file: file.to_owned(),
        spec: None,
        diagnostics: Vec::new(),
        locator: Locator::new(text),
    };
    let json = match yaml::to_json(text) {
        Ok(j) => j,
        Err(e) => {
            loaded.diagnostics.push(parse_diagnostic(&loaded, e));
            return loaded;
        }
    };
    let problems = schema_problems(kind, &json);
    if !problems.is_empty() {
        loaded.diagnostics = problems.into_iter().map(|p| loaded.place(p)).collect();
        return loaded;
    }
    match yaml::from_str::<T>(text) {
        Ok(spec) => loaded.spec = Some(spec),
        Err(e) => loaded.diagnostics.push(parse_diagnostic(&loaded, e)),
    }
    loaded
}

fn parse_diagnostic<T>(loaded: &Loaded<T>, mut e: yaml::ParseError) -> Diagnostic {
    let mut located = e.location.unwrap_or_else(|| loaded.locator.value(&e.path));
    let unknown = e
        .message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
        .map(|(k, _)| k.to_owned());
    if let Some((path, at)) = unknown.and_then(|k| loaded.locator.find_key(&e.path, &k)) {
        e.path = path;
        located = at;
    }
    let hint = did_you_mean_from_serde(&e.message);
    Diagnostic {
        severity: Severity::Error,
        file: loaded.file.clone(),
        line: located.line,
        column: located.column,
        path: e.path.to_string(),
        message: e.message,
        hint,
    }
}

/// serde lists the expected fields in its message; use them for a hint.
fn did_you_mean_from_serde(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (got, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    did_you_mean(got, expected.iter().copied())
}

/// The closest name to `got` among `candidates`, as a hint.
pub fn did_you_mean<'a>(
    got: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(got, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Every structural problem the JSON Schema finds, as our own messages.
fn schema_problems(kind: SpecKind, json: &serde_json::Value) -> Vec<Problem> {
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};

    let schema = kind.schema();
    let mut out = Vec::new();
    for err in kind.validator().iter_errors(json) {
        let path = YamlPath::from_pointer(err.instance_path.as_str());
        let found = json_type_name(&err.instance);
        let problem = match &err.kind {
            // A tagged enum fails as a whole; serde explains which field is
            // wrong much better, so leave those to the serde pass.
            K::OneOfNotValid => match enum_values(&schema, err.schema_path.as_str()) {
                Some(names) => enum_problem(path, &err.instance, &names),
                None => continue,
            },
            K::AnyOf | K::OneOfMultipleValid => continue,
            K::AdditionalProperties { unexpected } => {
                let allowed = allowed_properties(&schema, err.schema_path.as_str());
                for key in unexpected {
                    let mut p = Problem::new(
                        path.clone(),
                        format!(
                            "unknown field `{key}`, expected one of {}",
                            backticked(&allowed)
                        ),
                    );
                    p.key = Some(key.clone());
                    p.hint = did_you_mean(key, allowed.iter().map(String::as_str));
                    out.push(p);
                }
                continue;
            }
            K::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                Problem::new(path, format!("missing field `{name}`"))
            }
            K::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(ts) => ts
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                Problem::new(path, format!("expected {expected}, found {found}"))
            }
            K::Enum { options } => {
                let names: Vec<String> = options
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.as_str().map(str::to_owned))
                    .collect();
                enum_problem(path, &err.instance, &names)
            }
            K::Minimum { limit } => Problem::new(
                path,
                format!("expected a number >= {limit}, found {}", err.instance),
            ),
            K::Maximum { limit } => Problem::new(
                path,
                format!("expected a number <= {limit}, found {}", err.instance),
            ),
            _ => Problem::new(path, err.to_string()),
        };
        out.push(problem);
    }
    out
}

fn enum_problem(path: YamlPath, got: &serde_json::Value, names: &[String]) -> Problem {
    let mut p = Problem::new(
        path,
        format!(
            "unknown value `{}`, expected one of {}",
            display_value(got),
            backticked(names)
        ),
    );
    p.hint = did_you_mean(
        got.as_str().unwrap_or_default(),
        names.iter().map(String::as_str),
    );
    p
}

/// Follows a schema path from the root, resolving `$ref`s on the way.
fn schema_at<'a>(root: &'a serde_json::Value, segments: &[&str]) -> &'a serde_json::Value {
    let mut node = root;
    for seg in segments {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        node = if seg == "$ref" {
            let target = node["$ref"].as_str().unwrap_or_default();
            root.pointer(target.trim_start_matches('#'))
                .unwrap_or(&serde_json::Value::Null)
        } else if let Ok(i) = seg.parse::<usize>() {
            &node[i]
        } else {
            &node[seg.as_str()]
        };
    }
    node
}

/// An enum with documented variants is a `oneOf` of `const`s: its values,
/// or None when the `oneOf` is something else (a tagged enum).
fn enum_values(root: &serde_json::Value, schema_path: &str) -> Option<Vec<String>> {
    let segments: Vec<&str> = schema_path.split('/').skip(1).collect();
    let node = schema_at(root, &segments);
    node.as_array()?
        .iter()
        .map(|branch| {
            let r = branch.get("$ref").map(|_| schema_at(root, &["$ref"]));
            let b = match r {
                Some(_) => root.pointer(branch["$ref"].as_str()?.trim_start_matches('#'))?,
                None => branch,
            };
            b.get("const")
                .or_else(|| b.get("enum").and_then(|e| e.get(0)))?
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// The properties a schema allows where `additionalProperties` failed,
/// following `$ref`s from the root.
fn allowed_properties(root: &serde_json::Value, schema_path: &str) -> Vec<String> {
    let segments: Vec<&str> = schema_path.split('/').skip(1).collect();
    let node = schema_at(root, &segments[..segments.len().saturating_sub(1)]);
    node["properties"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Names as a message lists them: `` `a`, `b`, `c` ``.
pub fn backticked<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn display_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn json_type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indoc::indoc;

    /// The specs' validators are built as draft 7 (see
    /// [`SpecKind::validator`]), though the schemas say 2020-12: sound only
    /// while no part of them means something else in draft 7.
    #[test]
    fn schema_is_the_same_under_draft_7() {
        // Keywords draft 7 does not know, and so would ignore.
        const NEWER: [&str; 12] = [
            "$dynamicRef",
            "$dynamicAnchor",
            "$recursiveRef",
            "$recursiveAnchor",
            "$anchor",
            "prefixItems",
            "unevaluatedProperties",
            "unevaluatedItems",
            "dependentRequired",
            "dependentSchemas",
            "minContains",
            "maxContains",
        ];
        // What draft 7 still reads beside a `$ref` (it ignores the rest).
        const ANNOTATIONS: [&str; 5] = ["$ref", "description", "title", "default", "examples"];
        fn walk(v: &serde_json::Value, at: &str, found: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for key in m.keys() {
                        if NEWER.contains(&key.as_str()) {
                            found.push(format!("{at}: `{key}`"));
                        }
                    }
                    if m.contains_key("$ref") {
                        for key in m.keys().filter(|k| !ANNOTATIONS.contains(&k.as_str())) {
                            found.push(format!("{at}: `{key}` beside `$ref`"));
                        }
                    }
                    // A list of `items` is a tuple in draft 7 only.
                    if m.get("items").is_some_and(|i| i.is_array()) {
                        found.push(format!("{at}: `items` is a list"));
                    }
                    for (k, x) in m {
                        // Property names are names, not keywords.
                        if k != "properties" {
                            walk(x, &format!("{at}/{k}"), found);
                        } else if let Some(props) = x.as_object() {
                            for (name, p) in props {
                                walk(p, &format!("{at}/properties/{name}"), found);
                            }
                        }
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, x) in items.iter().enumerate() {
                        walk(x, &format!("{at}/{i}"), found);
                    }
                }
                _ => {}
            }
        }
        for kind in [SpecKind::Project, SpecKind::Pipeline] {
            let mut found = Vec::new();
            walk(&kind.schema(), "", &mut found);
            assert!(found.is_empty(), "{}: {found:#?}", kind.schema_file());
        }
        // And the two drafts find the same errors, in the shipped specs
        // (none) and in broken ones.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cases = vec![(SpecKind::Project, "etl.yaml".to_owned())];
        for p in ["users", "orders", "products"] {
            cases.push((SpecKind::Pipeline, format!("pipelines/{p}.yaml")));
        }
        for (kind, file) in cases {
            let text = std::fs::read_to_string(root.join(&file)).unwrap();
            let good = yaml::to_json(&text).unwrap();
            let mut docs = vec![good.clone()];
            for (pointer, bad) in [
                ("", serde_json::json!({ "version": "one", "extra": null })),
                (
                    "/source",
                    serde_json::json!({ "connection": null, "batch_size": -1 }),
                ),
                ("/partition", serde_json::json!({ "kind": "weekly" })),
                (
                    "/flatten",
                    serde_json::json!({ "columns": [{ "name": 1 }], "max_depth": "x" }),
                ),
                (
                    "/profiles",
                    serde_json::json!({ "local": { "connections": 3 } }),
                ),
            ] {
                let mut doc = good.clone();
                if let Some(slot) = doc.pointer_mut(pointer) {
                    *slot = bad;
                    docs.push(doc);
                }
            }
            let newer = jsonschema::validator_for(&kind.schema()).unwrap();
            for (i, doc) in docs.iter().enumerate() {
                let errors = |v: &jsonschema::Validator| -> Vec<String> {
                    v.iter_errors(doc)
                        .map(|e| format!("{} {}: {e}", e.instance_path, e.schema_path))
                        .collect()
                };
                let ours = errors(kind.validator());
                assert_eq!(ours, errors(&newer), "{file}, case {i}");
                assert_eq!(ours.is_empty(), i == 0, "{file}, case {i}: {ours:#?}");
            }
        }
    }

    #[test]
    fn yaml_path_round_trips_serde_form() {
        let p = YamlPath::parse("flatten.columns[2].path");
        assert_eq!(p, ypath!("flatten", "columns").index(2).key("path"));
        assert_eq!(p.to_string(), "flatten.columns[2].path");
    }

    #[test]
    fn unknown_key_points_at_the_key_with_a_suggestion() {
        let text = indoc! {"
            version: 1
            source:
              connection: mongo
              database: shop
              colection: users
        "};
        let l: Loaded<PipelineSpec> = load_str(Path::new("p.yaml"), text, SpecKind::Pipeline);
        let d = l
            .diagnostics
            .iter()
            .find(|d| d.message.starts_with("unknown field `colection`"))
            .expect("unknown field reported");
        assert_eq!((d.line, d.column), (5, 3));
        assert_eq!(d.path, "source");
        assert_eq!(d.hint.as_deref(), Some("did you mean `collection`?"));
        // Every other structural problem is reported in the same pass.
        assert!(l
            .diagnostics
            .iter()
            .any(|d| d.message == "missing field `partition`"));
    }
}
