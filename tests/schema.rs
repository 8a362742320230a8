//! The committed JSON Schemas: fresh, documented, and agreeing with the
//! parser on shipped and malformed specs.

mod common;

use etl::spec::SpecKind;
use serde_json::Value;

const REFRESH: &str = "cargo run -- schema --write schemas";

fn committed(kind: SpecKind) -> Value {
    let path = common::root().join("schemas").join(kind.schema_file());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `{REFRESH}`", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn yaml_file(rel: &str) -> Value {
    let text = std::fs::read_to_string(common::root().join(rel)).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    serde_json::to_value(v).unwrap()
}

#[test]
fn committed_schemas_equal_generated() {
    for kind in [SpecKind::Pipeline, SpecKind::Project] {
        assert!(
            committed(kind) == kind.schema(),
            "schemas/{} is stale: run `{REFRESH}` and commit the result",
            kind.schema_file()
        );
    }
}

/// Every property of every object in the schema has a description, so
/// editors explain every key.
#[test]
fn every_property_has_a_description() {
    fn walk(v: &Value, at: &str, defs: &Value, missing: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::Object(props)) = o.get("properties") {
                    for (name, p) in props {
                        // A tagged enum's `type: <const>` names the variant; the
                        // variant's own description explains it.
                        let described = p.get("description").is_some()
                            || p.get("const").is_some()
                            || p.get("$ref")
                                .and_then(Value::as_str)
                                .and_then(|r| defs.pointer(r.trim_start_matches('#')))
                                .is_some_and(|d| d.get("description").is_some());
                        if !described {
                            missing.push(format!("{at}.{name}"));
                        }
                    }
                }
                for (k, child) in o {
                    walk(child, &format!("{at}/{k}"), defs, missing);
                }
            }
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, c)| walk(c, &format!("{at}[{i}]"), defs, missing)),
            _ => {}
        }
    }
    for kind in [SpecKind::Pipeline, SpecKind::Project] {
        let schema = kind.schema();
        let mut missing = Vec::new();
        walk(&schema, "", &schema, &mut missing);
        assert!(
            missing.is_empty(),
            "{}: properties without a description: {missing:#?}",
            kind.schema_file()
        );
    }
}

#[test]
fn shipped_specs_pass_the_committed_schema() {
    let pipeline = jsonschema::validator_for(&committed(SpecKind::Pipeline)).unwrap();
    for f in [
        "pipelines/users.yaml",
        "pipelines/orders.yaml",
        "pipelines/products.yaml",
    ] {
        let errors: Vec<String> = pipeline
            .iter_errors(&yaml_file(f))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{f}: {errors:?}");
    }
    let project = jsonschema::validator_for(&committed(SpecKind::Project)).unwrap();
    let errors: Vec<String> = project
        .iter_errors(&yaml_file("etl.yaml"))
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "etl.yaml: {errors:?}");
}

/// What an editor would flag: the schema alone rejects these fixtures.
#[test]
fn malformed_fixtures_fail_the_committed_schema() {
    let pipeline = jsonschema::validator_for(&committed(SpecKind::Pipeline)).unwrap();
    for (f, pointer) in [
        ("unknown_key", "/source"),
        ("wrong_type", "/source/batch_size"),
        ("bad_enum", "/partition/kind"),
        ("missing_field", "/partition"),
        ("bad_warehouse_field", "/sinks/warehouse"),
    ] {
        let doc = yaml_file(&format!("tests/fixtures/invalid/{f}.yaml"));
        let at: Vec<String> = pipeline
            .iter_errors(&doc)
            .map(|e| e.instance_path.to_string())
            .collect();
        assert!(
            at.iter().any(|p| p == pointer),
            "{f}: expected an error at {pointer}, got {at:?}"
        );
    }
}

/// Every YAML file starts with the modeline that editors read.
#[test]
fn yaml_files_carry_the_schema_modeline() {
    let mut files = vec!["etl.yaml".to_owned()];
    for e in std::fs::read_dir(common::root().join("pipelines")).unwrap() {
        files.push(format!(
            "pipelines/{}",
            e.unwrap().file_name().to_string_lossy()
        ));
    }
    for f in files {
        let text = std::fs::read_to_string(common::root().join(&f)).unwrap();
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# yaml-language-server: $schema="),
            "{f}: first line is `{first}`"
        );
        let target = first.split('=').nth(1).unwrap();
        let resolved = common::root().join(&f).parent().unwrap().join(target);
        assert!(
            resolved.is_file(),
            "{f}: modeline points at missing {}",
            resolved.display()
        );
    }
}

#[test]
fn spec_reference_doc_is_fresh() {
    let committed =
        std::fs::read_to_string(common::root().join("docs/spec.md")).unwrap_or_default();
    assert!(
        committed == etl::spec::reference::markdown(),
        "docs/spec.md is stale: run `cargo run -- schema --docs > docs/spec.md` and commit the result"
    );
}

/// docs/types.md names every column type etl writes, and every policy.
#[test]
fn the_types_page_covers_every_type_and_policy() {
    use etl::spec::ColumnType::*;
    let page = std::fs::read_to_string(common::root().join("docs/types.md")).unwrap();
    for t in [
        String, Int64, Float64, Numeric, Bignumeric, Bool, Timestamp, Date, Bytes, Json, Record,
    ] {
        assert!(
            page.contains(&format!("`{}", t.bigquery_name()))
                || page.contains(&format!(" {}`", t.bigquery_name())),
            "docs/types.md does not mention {}",
            t.bigquery_name()
        );
    }
    for word in [
        "`coerce`",
        "`variant`",
        "`reject`",
        "object_id_timestamps",
        "decimal: bignumeric",
    ] {
        assert!(page.contains(word), "docs/types.md does not mention {word}");
    }
}
