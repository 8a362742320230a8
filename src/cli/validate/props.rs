//! Hostile specs (issue 14): 10,000 generated mutations of the shipped
//! pipeline specs. `etl validate` never panics, every problem it reports
//! has a place in the file, and a spec it accepts plans: its days'
//! targets (filters, lake paths, warehouse partitions) render without a
//! panic or an error.
//!
//! A case is a shipped spec plus up to four edits at nodes picked among
//! all of its nodes: a value replaced by a random YAML value, a key
//! removed, a key of the JSON Schema (or a random one) added somewhere;
//! and sometimes the text cut short, for YAML that does not parse.
//! Failures shrink to the fewest, simplest edits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use serde_yaml::Value;

use super::check_pipeline_loaded;
use crate::spec::{self, Loaded, PipelineSpec, SpecKind};
use crate::template::EnvMode;

const SHIPPED: [&str; 3] = ["users", "orders", "products"];

/// Cases so far, for the figure `--nocapture` prints: a property that
/// only ever saw refused specs would prove little about `plan`.
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every property name of the pipeline schema: keys a user could mean.
fn schema_keys() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Object(props)) = m.get("properties") {
                    out.extend(props.keys().cloned());
                }
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(root().join("schemas/pipeline.schema.json")).unwrap();
    let mut keys = std::collections::BTreeSet::new();
    walk(&serde_json::from_str(&text).unwrap(), &mut keys);
    keys.into_iter().collect()
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        (-5i64..100).prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Value::Number(f.into())),
        prop_oneof![
            Just(String::new()),
            Just("{{ ds }}".to_owned()),
            Just("{{ ds ".to_owned()),
            Just("{{ nope() }}".to_owned()),
            Just("{{ secret(\"missing\") }}".to_owned()),
            Just("$".to_owned()),
            Just("$.a[".to_owned()),
            Just("$.items[*]".to_owned()),
            Just("$..x".to_owned()),
            Just("2020-02-30".to_owned()),
            Just("0000-01-01".to_owned()),
            Just("9999-12-31".to_owned()),
            Just("Mars/Olympus".to_owned()),
            Just("explode".to_owned()),
            Just("string".to_owned()),
            Just("mongo".to_owned()),
            Just("a.b".to_owned()),
            "\\PC{0,12}",
            "[a-z_]{1,70}",
        ]
        .prop_map(Value::String),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
            proptest::collection::vec(("[a-z_]{1,8}", inner), 0..4).prop_map(|kv| {
                Value::Mapping(kv.into_iter().map(|(k, v)| (Value::String(k), v)).collect())
            }),
        ]
    })
}

#[derive(Debug, Clone)]
enum Edit {
    /// The node becomes this value.
    Replace(Value),
    /// The node goes (a key of a mapping, an element of a list).
    Remove,
    /// A mapping node gains this key (a schema key when the index says so).
    Add(prop::sample::Index, String, Value),
}

fn arb_edit() -> impl Strategy<Value = (prop::sample::Index, Edit)> {
    (
        any::<prop::sample::Index>(),
        prop_oneof![
            3 => arb_value().prop_map(Edit::Replace),
            1 => Just(Edit::Remove),
            2 => (any::<prop::sample::Index>(), "[a-z_]{1,10}", arb_value())
                .prop_map(|(i, k, v)| Edit::Add(i, k, v)),
        ],
    )
}

/// The paths of every node under `v`, itself first: mapping keys and list
/// indexes.
fn nodes(v: &Value, at: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(at.clone());
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                at.push(k.clone());
                nodes(child, at, out);
                at.pop();
            }
        }
        Value::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                at.push(Value::Number(i.into()));
                nodes(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(v: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, step| match (v, step) {
        (Value::Mapping(m), k) => m.get_mut(k),
        (Value::Sequence(s), Value::Number(i)) => s.get_mut(i.as_u64()? as usize),
        _ => None,
    })
}

fn apply(doc: &mut Value, (at, edit): &(prop::sample::Index, Edit), keys: &[String]) {
    let mut all = Vec::new();
    nodes(doc, &mut Vec::new(), &mut all);
    let path = at.get(&all).clone();
    match edit {
        Edit::Replace(v) => {
            if let Some(n) = node_mut(doc, &path) {
                *n = v.clone();
            }
        }
        Edit::Remove => {
            let Some((last, parent)) = path.split_last() else {
                return;
            };
            match (node_mut(doc, parent), last) {
                (Some(Value::Mapping(m)), k) => {
                    m.remove(k);
                }
                (Some(Value::Sequence(s)), Value::Number(i)) => {
                    let i = i.as_u64().unwrap() as usize;
                    if i < s.len() {
                        s.remove(i);
                    }
                }
                _ => {}
            }
        }
        Edit::Add(which, random, v) => {
            if let Some(Value::Mapping(m)) = node_mut(doc, &path) {
                // Half the time a key the schema knows, at whatever level.
                let key = if which.index(2) == 0 {
                    which.get(keys).clone()
                } else {
                    random.clone()
                };
                m.insert(Value::String(key), v.clone());
            }
        }
    }
}

struct Fixture {
    specs: Vec<Value>,
    keys: Vec<String>,
    project: crate::cli::LoadedProject,
}

fn fixture() -> &'static Fixture {
    static F: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let project = crate::cli::load_project(&root().join("etl.yaml"), EnvMode::Lenient);
        assert!(project.diagnostics.is_empty(), "{:?}", project.diagnostics);
        Fixture {
            specs: SHIPPED
                .iter()
                .map(|p| {
                    let text = std::fs::read_to_string(root().join(format!("pipelines/{p}.yaml")))
                        .unwrap();
                    serde_yaml::from_str(&text).unwrap()
                })
                .collect(),
            keys: schema_keys(),
            project,
        }
    })
}

/// Validates `text` as `etl validate` does; when it is accepted, plans its
/// first days as `etl plan` and `etl run` do. Panics are the failures.
fn check(name: &str, text: &str) -> Result<(), TestCaseError> {
    let f = fixture();
    // The shipped file's own name: a pipeline is named after its file.
    let file = PathBuf::from(format!("pipelines/{name}.yaml"));
    let file = file.as_path();
    let loaded: Loaded<PipelineSpec> = spec::load_str(file, text, SpecKind::Pipeline);
    let diags = check_pipeline_loaded(&loaded, &f.project);
    let lines = text.lines().count().max(1);
    for d in &diags {
        prop_assert!(
            d.line >= 1 && d.line <= lines + 1 && d.column >= 1,
            "no place in the file: {d:?}\n{text}"
        );
        prop_assert!(!d.message.trim().is_empty(), "no message: {d:?}");
    }
    if !diags.is_empty() {
        REFUSED.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    ACCEPTED.fetch_add(1, Ordering::Relaxed);
    let spec = loaded.spec.as_ref().expect("accepted, so parsed");
    let plan = f.project.plan.as_ref().unwrap();
    let templates =
        crate::cli::templates_for(f.project.loaded.spec.as_ref().unwrap(), EnvMode::Lenient);
    let p = crate::plan::check_pipeline(spec, file, plan, &plan.default_profile, &templates)
        .map_err(|e| {
            TestCaseError::fail(format!("accepted, then refused by plan: {e:?}\n{text}"))
        })?;
    for day in p.partition.start_date.iter_days().take(3) {
        if let Err(e) = p.target(day, &templates) {
            return Err(TestCaseError::fail(format!(
                "accepted, but day {day} does not plan: {e}\n{text}"
            )));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_specs_are_located_or_plan(
        which in 0..SHIPPED.len(),
        edits in proptest::collection::vec(arb_edit(), 0..4),
        cut in proptest::option::weighted(0.1, any::<prop::sample::Index>()),
    ) {
        let f = fixture();
        let mut doc = f.specs[which].clone();
        for e in &edits {
            apply(&mut doc, e, &f.keys);
        }
        let mut text = serde_yaml::to_string(&doc).unwrap();
        if let Some(cut) = cut {
            let mut at = cut.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.truncate(at);
        }
        check(SHIPPED[which], &text)?;
        let (a, r) = (ACCEPTED.load(Ordering::Relaxed), REFUSED.load(Ordering::Relaxed));
        if (a + r) % 2500 == 0 {
            eprintln!("generated specs: {} cases, {a} accepted and planned, {r} refused with located errors", a + r);
        }
    }
}

/// The shipped specs themselves pass `check`: the property starts from
/// specs that plan.
#[test]
fn the_shipped_specs_plan() {
    for p in SHIPPED {
        let text = std::fs::read_to_string(root().join(format!("pipelines/{p}.yaml"))).unwrap();
        check(p, &text).unwrap();
    }
}
