//! `etl airflow`: the DAG file a user drops into Airflow's dags folder,
//! snapshot-tested, compiled by Python, and its refusals. A real Airflow
//! imports and runs it in `tests/stack_engine.rs`. Issue 12, part 2.

mod common;

use common::{text, transcript, Project};

const PIPELINES: [&str; 3] = [
    "pipelines/orders.yaml",
    "pipelines/products.yaml",
    "pipelines/users.yaml",
];

fn project() -> Project {
    Project::with(&["etl.yaml", "pipelines", "schemas/tables"])
}

/// `etl airflow PIPELINES... extra` with the binary and folder the
/// workers see, which makes the file the same on every machine.
fn airflow(p: &Project, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "airflow",
        "--etl-bin",
        "/opt/etl/bin/etl",
        "--project-dir",
        "/srv/etl",
    ];
    args.extend(PIPELINES);
    args.extend(extra);
    p.etl(&args)
}

/// Python compiles `file`, or the test fails with its error.
fn assert_compiles(file: &std::path::Path) {
    let out = std::process::Command::new("python3")
        .args(["-m", "py_compile"])
        .arg(file)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}: {}", file.display(), text(&out));
}

#[test]
fn the_project_dag_has_a_task_per_pipeline_on_the_shared_schedule() {
    let p = project();
    let out = airflow(&p, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dag = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!(dag);
    p.write("dags/etl.py", &dag);
    assert_compiles(&p.path().join("dags/etl.py"));
}

#[test]
fn per_pipeline_writes_one_dag_file_each_and_a_later_start_is_skipped_not_run() {
    let p = project();
    p.edit(
        "pipelines/users.yaml",
        "start_date: \"2020-06-01\"",
        "start_date: \"2020-06-05\"",
    );
    // One DAG for all three starts on the earliest day; users' task skips
    // the days before its own.
    let out = airflow(&p, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dag = String::from_utf8(out.stdout).unwrap();
    assert!(
        dag.contains("start_date=pendulum.datetime(2020, 6, 1, tz=\"UTC\")"),
        "{dag}"
    );
    let guard = r#"if [[ \"$PARTITION_DAY\" < \"2020-06-05\" ]]; then echo \"users starts on 2020-06-05: nothing to do for $PARTITION_DAY\"; exit 99; fi; exec"#;
    assert_eq!(dag.matches(guard).count(), 1, "{dag}");

    let out = airflow(&p, &["--per-pipeline", "--out", "dags"]);
    insta::assert_snapshot!(transcript(&out).replace(&p.path().display().to_string(), "[PROJECT]"));
    let files: Vec<String> = common::files_under(&p.path().join("dags"))
        .into_keys()
        .collect();
    assert_eq!(files, ["etl_orders.py", "etl_products.py", "etl_users.py"]);
    let users = p.read("dags/etl_users.py");
    assert!(
        users.contains("start_date=pendulum.datetime(2020, 6, 5, tz=\"UTC\")"),
        "{users}"
    );
    assert!(
        !users.contains("exit 99"),
        "its own DAG starts on its day:\n{users}"
    );
    assert!(users.contains("dag_id=\"etl_users\""), "{users}");
    for f in &files {
        assert_compiles(&p.path().join("dags").join(f));
    }
}

#[test]
fn one_dag_refuses_pipelines_on_different_schedules() {
    let p = project();
    p.edit(
        "pipelines/orders.yaml",
        "partition:",
        "schedule: \"30 2 * * *\"\npartition:",
    );
    p.edit(
        "pipelines/users.yaml",
        "timezone: UTC",
        "timezone: Europe/Paris",
    );
    let out = airflow(&p, &["--out", "dags"]);
    insta::assert_snapshot!(transcript(&out));
    assert!(!p.path().join("dags").exists(), "nothing is written");
    // One DAG per pipeline takes each schedule as it is.
    let out = airflow(&p, &["--per-pipeline", "--out", "dags"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(p
        .read("dags/etl_orders.py")
        .contains("CronDataIntervalTimetable(\"30 2 * * *\", timezone=\"UTC\")"));
    assert!(p
        .read("dags/etl_users.py")
        .contains("CronDataIntervalTimetable(\"0 0 * * *\", timezone=\"Europe/Paris\")"));
}

#[test]
fn a_dag_id_airflow_would_refuse_is_refused_here() {
    let p = project();
    let out = airflow(&p, &["--dag-id", "daily load"]);
    insta::assert_snapshot!(transcript(&out));
}

/// The day each run loads, where a zone's clocks change: the generated
/// file, imported by the pinned Airflow 3, gives its own timetable's runs
/// over the end and the start of summer time to its own `etl_day` macro.
/// Each run, scheduled or triggered by hand at the same instant, loads the
/// day its interval closes, with no day loaded twice or skipped (the
/// macro's first version, a datetime subtraction, loaded the day before).
#[test]
fn each_run_loads_the_day_it_closes_across_summer_time_changes() {
    let p = project();
    for (zone, first_days) in [
        ("Europe/Paris", ["2020-03-27", "2020-10-23"]),
        ("America/Los_Angeles", ["2020-03-06", "2020-10-30"]),
    ] {
        p.edit(
            "pipelines/users.yaml",
            "timezone: UTC",
            &format!("timezone: {zone}"),
        );
        let out = airflow(&p, &["--per-pipeline", "--out", "dags"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let out = std::process::Command::new(airflow_python())
            .arg("-c")
            .arg(RUN_DAYS)
            .arg(p.path().join("dags/etl_users.py"))
            .arg(zone)
            .args(first_days)
            .env("AIRFLOW_HOME", p.path().join("airflow-home"))
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let days: Vec<[String; 2]> = serde_json::from_slice(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        let want: Vec<[String; 2]> = first_days
            .iter()
            .flat_map(|first| {
                let first: chrono::NaiveDate = first.parse().unwrap();
                first
                    .iter_days()
                    .take(5)
                    .map(|d| [d.to_string(), d.to_string()])
            })
            .collect();
        assert_eq!(days, want, "{zone}: [scheduled, manual] day of each run");
        p.edit(
            "pipelines/users.yaml",
            &format!("timezone: {zone}"),
            "timezone: UTC",
        );
    }
}

/// Imports the DAG file argv[1] and prints, as JSON, for five scheduled
/// runs from each first day argv[3:] in zone argv[2]: the day `etl_day`
/// gives the run's interval, and the day it gives a manual run triggered
/// at the scheduled run's instant.
const RUN_DAYS: &str = r#"
import importlib.util, json, sys
import pendulum
from airflow.timetables.base import TimeRestriction

spec = importlib.util.spec_from_file_location("etl_dag", sys.argv[1])
dag_file = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dag_file)
timetable, zone = dag_file.dag.timetable, sys.argv[2]
days = []
for first in sys.argv[3:]:
    start = pendulum.parse(first, tz=zone)
    restriction = TimeRestriction(earliest=start, latest=None, catchup=True)
    last = None
    for _ in range(5):
        run = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        last = run.data_interval
        manual = timetable.infer_manual_data_interval(run_after=run.run_after)
        days.append([dag_file.etl_day(last.end, zone), dag_file.etl_day(manual.end, zone)])
print(json.dumps(days))
"#;

/// The pinned Airflow's Python, or a failure that says how to get it.
fn airflow_python() -> std::path::PathBuf {
    let python = common::root().join("stack/venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `stack/python.sh` (it installs the pinned apache-airflow into stack/venv), or the tests through `stack/test.sh`",
        python.display()
    );
    python
}

/// Issue 29: quotes, backslashes and `"""` in the profile, the project
/// folder and the binary's path stay data. The file compiles, and each
/// task's environment holds exactly the values given, fixed at generation
/// (no DAG params a trigger could override); a Jinja delimiter, which
/// Airflow would render, is refused.
#[test]
fn odd_names_stay_literals_and_cannot_be_overridden() {
    let mut p = project();
    let profile = r#"we"ird\ """prof"#;
    // The project file's default, not the tests' `files`.
    p.unset_env("ETL_PROFILE");
    let yaml = p.read("etl.yaml").replace(
        "default_profile: local",
        &format!(
            "default_profile: {}",
            serde_json::to_string(profile).unwrap()
        ),
    );
    let yaml = yaml.replace(
        "\n  local:\n",
        &format!("\n  {}:\n", serde_json::to_string(profile).unwrap()),
    );
    p.write("etl.yaml", &yaml);
    let bin = r#"/opt/e"t\l/etl"#;
    let dir = r#"/srv/"""x\y"#;
    let mut args = vec!["airflow", "--etl-bin", bin, "--project-dir", dir];
    args.extend(PIPELINES);
    let out = p.etl(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dag = String::from_utf8(out.stdout).unwrap();
    assert!(!dag.contains("params"), "{dag}");
    p.write("dags/etl.py", &dag);
    assert_compiles(&p.path().join("dags/etl.py"));
    // Every task's env and cwd, read back by Python's own parser.
    let read = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import ast, json, sys
tree = ast.parse(open(sys.argv[1]).read())
out = []
for node in ast.walk(tree):
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "BashOperator":
        kw = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        out.append({"env": kw["env"], "cwd": kw["cwd"]})
print(json.dumps(out))
"#,
        )
        .arg(p.path().join("dags/etl.py"))
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", text(&read));
    let tasks: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(tasks.as_array().unwrap().len(), 3, "{tasks}");
    for t in tasks.as_array().unwrap() {
        assert_eq!(t["env"]["ETL_BIN"], bin, "{t}");
        assert_eq!(t["env"]["ETL_PROFILE"], profile, "{t}");
        assert_eq!(t["env"]["ETL_PROJECT"], format!("{dir}/etl.yaml"), "{t}");
        assert_eq!(t["cwd"], dir, "{t}");
    }

    let mut args = vec!["airflow", "--etl-bin", "/opt/{{ dag_run.conf.x }}/etl"];
    args.extend(PIPELINES);
    let out = p.etl(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: --etl-bin `/opt/{{ dag_run.conf.x }}/etl` holds a Jinja delimiter"),
        "{stderr}"
    );
}
