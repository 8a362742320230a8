//! The `flatten` and `tests` sections of a pipeline: the rules checked one
//! by one, with a located problem each, then compiled by
//! [`crate::flatten::Tables`] for what only compiling finds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::COLUMN_HINT;
use crate::flatten::Tables;
use crate::spec::names::{compile_jsonpath, is_bq_name, is_column_name, simple_path};
use crate::spec::*;
use crate::ypath;

/// The rules compiled, or None with a problem that says where they fail:
/// tables, and rules inside exploded arrays. The `tests` are checked
/// against the tables the rules make.
pub(super) fn compile_flatten(
    problems: &mut Vec<Problem>,
    spec: &PipelineSpec,
    name: &str,
) -> Option<Tables> {
    match Tables::new(&spec.flatten) {
        Ok(tables) => {
            let names = tables.names(name);
            // Child tables named from their paths: a key such as `a b` or
            // `../x` must not reach a warehouse table or a staging file
            // name (issue 29). An explicit `table:` was checked already.
            for (table, child) in names.iter().zip(tables.tables()).skip(1) {
                if !is_bq_name(table, true) {
                    problems.push(
                        Problem::new(
                            ypath!("flatten").key("arrays").key("rules"),
                            format!(
                                "the child table of `{}` would be named `{table}`, which is not a valid table name (letters, digits, `_` and `-`)",
                                child.path
                            ),
                        )
                        .hint("set `table:` on the array's rule to a name of letters, digits and `_`"),
                    );
                }
            }
            check_tests(problems, spec, &names);
            Some(tables)
        }
        Err(e) => {
            use crate::flatten::FlattenError as E;
            let (at, hint) = match &e {
                E::ExplodeDefault { .. } => (ypath!("flatten").key("arrays").key("default"), "use `json` or `repeated` as the default and add a rule with `policy: explode` for each array"),
                E::InsideExplode { .. } => (ypath!("flatten"), "move the rule into the explode rule's `flatten`, with the path relative to the element (`$.items.price` becomes `$.price`)"),
                E::DuplicateTable { .. } => (ypath!("flatten").key("arrays").key("rules"), "set `table:` on one of the rules"),
                E::ReservedColumn { .. } => (ypath!("flatten").key("arrays").key("rules"), "rename the column"),
                _ => (ypath!("flatten"), "check the flatten rules against docs/spec.md"),
            };
            problems.push(Problem::new(at, e.to_string()).hint(hint));
            None
        }
    }
}

/// `tests`: days, documents and table names, so `etl test` only fails on
/// rows.
fn check_tests(problems: &mut Vec<Problem>, spec: &PipelineSpec, tables: &[String]) {
    for (i, case) in spec.tests.iter().enumerate() {
        let at = ypath!("tests").index(i);
        if let Some(ds) = &case.ds {
            if NaiveDate::parse_from_str(ds, "%Y-%m-%d").is_err() {
                problems.push(
                    Problem::new(at.key("ds"), format!("invalid date `{ds}`"))
                        .hint("expected `YYYY-MM-DD`"),
                );
            }
        }
        for (j, doc) in case.documents.iter().enumerate() {
            if let Err(e) = crate::extjson::parse_documents(std::slice::from_ref(doc)) {
                problems.push(
                    Problem::new(
                        at.key("documents").index(j),
                        e.replacen("documents[0]", "the document", 1),
                    )
                    .hint("documents are objects in MongoDB Extended JSON, such as `{ _id: 1, at: { $date: \"2020-06-01T00:00:00Z\" } }`"),
                );
            }
        }
        for r in &case.rejected {
            if *r >= case.documents.len() {
                problems.push(Problem::new(
                    at.key("rejected"),
                    format!(
                        "no document at position {r}: the case has {}",
                        case.documents.len()
                    ),
                ));
            }
        }
        for table in case.expect.keys() {
            if !tables.contains(table) {
                problems.push(
                    Problem::new(
                        at.key("expect").key(table),
                        format!("no table `{table}` in this pipeline"),
                    )
                    .hint(format!("its tables are {}", backticked(tables))),
                );
            }
        }
    }
}
/// Columns the engine adds to child tables; specs may not claim them.
const RESERVED_COLUMNS: [&str; 4] = [
    crate::flatten::ROOT_ID_COLUMN,
    crate::flatten::PARENT_KEY_COLUMN,
    crate::flatten::INDEX_COLUMN,
    crate::table::DS_COLUMN,
];

pub(super) fn check_flatten(
    problems: &mut Vec<Problem>,
    at: &YamlPath,
    f: &FlattenSpec,
    partition_field: &str,
) {
    if f.separator.is_empty()
        || !f
            .separator
            .chars()
            .all(|c| c == '_' || c.is_ascii_alphanumeric())
    {
        problems.push(
            Problem::new(
                at.key("separator"),
                format!("invalid separator `{}`", f.separator),
            )
            .hint("column names allow only letters, digits and `_`; the usual separator is `__`"),
        );
    }
    if f.max_depth == 0 {
        problems.push(Problem::new(
            at.key("max_depth"),
            "expected a depth of at least 1, found 0",
        ));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in f.columns.iter().enumerate() {
        let here = at.key("columns").index(i);
        if !is_column_name(&c.name) {
            problems.push(
                Problem::new(
                    here.key("name"),
                    format!("invalid column name `{}`", c.name),
                )
                .hint(COLUMN_HINT),
            );
        } else if RESERVED_COLUMNS.contains(&c.name.as_str()) {
            problems.push(Problem::new(
                here.key("name"),
                format!("column name `{}` is reserved for child tables", c.name),
            ));
        }
        if let Some(first) = seen.insert(&c.name, i) {
            problems.push(
                Problem::new(
                    here.key("name"),
                    format!(
                        "column `{}` is produced twice (also by `flatten.columns[{first}]`)",
                        c.name
                    ),
                )
                .hint("give each explicit column its own name"),
            );
        }
        if let Err(m) = compile_jsonpath(&c.path) {
            problems.push(Problem::new(here.key("path"), m).hint(JSONPATH_HINT));
        }
    }
    // Auto columns named like an explicit column collide, but only when the
    // explicit column reads another path: `a.b` and `a__b` both become `a__b`.
    if f.auto_columns {
        for (i, c) in f.columns.iter().enumerate() {
            for (j, other) in f.columns.iter().enumerate() {
                if let Some(segs) = simple_path(&other.path) {
                    let auto = segs.join(&f.separator);
                    if i != j && auto == c.name && simple_path(&c.path) != Some(segs) {
                        problems.push(
                            Problem::new(
                                at.key("columns").index(i).key("name"),
                                format!(
                                    "column `{}` collides with the automatic column for `{}`",
                                    c.name, other.path
                                ),
                            )
                            .hint("rename one of them, or exclude the other path"),
                        );
                    }
                }
            }
        }
    }
    for (i, p) in f.exclude.iter().enumerate() {
        let here = at.key("exclude").index(i);
        match simple_path(p) {
            Some(segs) => {
                let field: Vec<&str> = partition_field.split('.').collect();
                if field.starts_with(&segs.iter().map(String::as_str).collect::<Vec<_>>()) {
                    problems.push(
                        Problem::new(here, format!("`{p}` excludes the partition field `{partition_field}`"))
                            .hint("the partition column is needed to load each day into its partition; remove this exclude"),
                    );
                }
            }
            None => problems.push(
                Problem::new(here, format!("invalid exclude path `{p}`: expected a plain path such as `$.a.b` or `$['odd key']`"))
                    .hint("excludes name one position in the document; filters and wildcards are for `columns`"),
            ),
        }
    }
    let mut array_paths = BTreeSet::new();
    for (i, r) in f.arrays.rules.iter().enumerate() {
        let here = at.key("arrays").key("rules").index(i);
        if simple_path(&r.path).is_none() {
            problems.push(
                Problem::new(
                    here.key("path"),
                    format!(
                        "invalid array path `{}`: expected a plain path such as `$.items`",
                        r.path
                    ),
                )
                .hint(JSONPATH_HINT),
            );
        }
        if !array_paths.insert(r.path.as_str()) {
            problems.push(Problem::new(
                here.key("path"),
                format!("array path `{}` has two rules", r.path),
            ));
        }
        if r.policy != ArrayPolicy::Explode && (r.table.is_some() || r.flatten.is_some()) {
            problems.push(
                Problem::new(
                    here.key(if r.table.is_some() {
                        "table"
                    } else {
                        "flatten"
                    }),
                    "`table` and `flatten` apply only to `policy: explode`",
                )
                .hint("set `policy: explode`, or remove them"),
            );
        }
        if let Some(t) = &r.table {
            if !is_bq_name(t, true) {
                problems.push(Problem::new(
                    here.key("table"),
                    format!("invalid table name `{t}`"),
                ));
            }
        }
        if let Some(child) = &r.flatten {
            check_flatten(problems, &here.key("flatten"), child, "");
        }
    }
    let mut object_paths = BTreeSet::new();
    for (i, r) in f.objects.iter().enumerate() {
        let here = at.key("objects").index(i);
        if simple_path(&r.path).is_none() {
            problems.push(
                Problem::new(
                    here.key("path"),
                    format!(
                        "invalid object path `{}`: expected a plain path such as `$.scores_by_user`",
                        r.path
                    ),
                )
                .hint(JSONPATH_HINT),
            );
        } else if array_paths.contains(r.path.as_str()) {
            problems.push(
                Problem::new(
                    here.key("path"),
                    format!("`{}` has both an array rule and an object rule", r.path),
                )
                .hint("a path holds one or the other: keep the rule for what the documents hold there"),
            );
        }
        if !object_paths.insert(r.path.as_str()) {
            problems.push(Problem::new(
                here.key("path"),
                format!("object path `{}` has two rules", r.path),
            ));
        }
    }
}
const JSONPATH_HINT: &str =
    "JSONPath starts at `$`: `$.address.city`, `$.items[0].sku`, `$['key with spaces']`";
