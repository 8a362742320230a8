//! `etl airflow`: an Airflow 3 DAG file that runs the pipelines.
//!
//! One DAG for the project (every pipeline a task of it), or with
//! `--per-pipeline` one DAG per pipeline. Each DAG has the pipelines' cron
//! and timezone as a `CronDataIntervalTimetable`, starts on the spec's
//! `start_date` with catchup on, and retries as the project's `defaults`
//! say. Each task is a `BashOperator` that runs `etl run SPEC --date DAY`,
//! where DAY is the partition day that the run's data interval closes: the
//! day before the cron fire, in the pipeline's timezone, as `etl schedule`
//! has it. (Airflow's `{{ ds }}` is the UTC date of the interval's start,
//! which is another day for a pipeline outside UTC, and for any cron on a
//! 2.x-style `CronTriggerTimetable`.) The `etl` binary, the project folder
//! and the profile are DAG params, so a run can point them elsewhere.
//! `docs/airflow.md` is the guide.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::Datelike;

use super::{CheckedProject, Context};
use crate::exit::Exit;
use crate::plan::{PipelinePlan, ProjectPlan};

/// `etl airflow`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs: each becomes a task.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// One DAG per pipeline, named `etl_<pipeline>`, instead of one for the
    /// project; needed when the pipelines' crons or timezones differ.
    #[arg(long)]
    pub per_pipeline: bool,

    /// The project DAG's id.
    #[arg(
        long,
        value_name = "ID",
        default_value = "etl",
        conflicts_with = "per_pipeline"
    )]
    pub dag_id: String,

    /// The `etl` binary the workers run, fixed in the DAG.
    #[arg(long, value_name = "PATH", default_value = "etl")]
    pub etl_bin: String,

    /// The project folder (where the project file is) on the workers,
    /// fixed in the DAG. Default: this project's folder.
    #[arg(long, value_name = "DIR")]
    pub project_dir: Option<String>,

    /// Write each DAG to `DIR/<dag_id>.py` (the Airflow dags folder).
    /// Default: stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Airflow's rule for DAG and task ids.
fn is_airflow_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 250
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A DAG to write: its id and its pipelines, sharing cron and timezone.
struct Dag<'a> {
    id: String,
    pipelines: Vec<&'a PipelinePlan>,
}

/// `etl airflow`.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let (project, plans, checked) = match super::load_for_generator(ctx, &args.files) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };

    let mut refusals: Vec<(String, String)> = Vec::new();
    let dags: Vec<Dag> = if args.per_pipeline {
        plans
            .iter()
            .map(|p| Dag {
                id: format!("etl_{}", p.name),
                pipelines: vec![p],
            })
            .collect()
    } else {
        let shapes: BTreeSet<(&str, &str)> = plans
            .iter()
            .map(|p| (p.schedule.as_str(), p.partition.timezone.name()))
            .collect();
        if shapes.len() > 1 {
            let list = plans
                .iter()
                .map(|p| {
                    format!(
                        "  {}: `{}` in {}",
                        p.name,
                        p.schedule,
                        p.partition.timezone.name()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            refusals.push((
                format!("one DAG has one schedule, and these pipelines have different ones:\n{list}"),
                "pass --per-pipeline for one DAG per pipeline, or give the pipelines the same `schedule` and `partition.timezone`".into(),
            ));
        }
        vec![Dag {
            id: args.dag_id.clone(),
            pipelines: plans.iter().collect(),
        }]
    };
    for d in &dags {
        if !is_airflow_id(&d.id) {
            refusals.push((
                format!("`{}` is not a valid Airflow DAG id", d.id),
                "use letters, digits, `-`, `_` and `.` (`--dag-id`)".into(),
            ));
        }
    }
    for p in &plans {
        if !is_airflow_id(&p.name) {
            refusals.push((
                format!("pipeline `{}` cannot be an Airflow task id", p.name),
                "rename it with letters, digits, `-`, `_` and `.`".into(),
            ));
        }
    }
    let project_dir = args
        .project_dir
        .clone()
        .unwrap_or_else(|| project.root.display().to_string());
    // The binary, project folder and profile are fixed here, not DAG
    // params: a manual trigger must not choose what the workers execute.
    for (what, value) in [
        ("--etl-bin", args.etl_bin.as_str()),
        ("--project-dir", project_dir.as_str()),
        ("the profile", checked.profile.as_str()),
    ] {
        if has_jinja(value) || value.contains('\n') {
            refusals.push((
                format!("{what} `{}` holds a Jinja delimiter or a newline, which Airflow would render as a template", value.escape_default()),
                "use a path and profile name without `{{`, `{%`, `{#` or newlines".into(),
            ));
        }
    }
    if !refusals.is_empty() {
        for (message, hint) in &refusals {
            eprintln!("error: {message}\n\nhint: {hint}\n");
        }
        eprintln!("no DAG was written");
        return Ok(Exit::Usage);
    }

    let setting = Setting {
        checked: &checked,
        project: &project,
        etl_bin: &args.etl_bin,
        project_dir: &project_dir,
    };
    match &args.out {
        None => {
            for d in &dags {
                print!("{}", setting.dag_file(d));
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            for d in &dags {
                let path = dir.join(format!("{}.py", d.id));
                std::fs::write(&path, setting.dag_file(d))
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(Exit::Success)
}

/// What every DAG of one invocation shares.
struct Setting<'a> {
    checked: &'a CheckedProject,
    project: &'a ProjectPlan,
    etl_bin: &'a str,
    project_dir: &'a str,
}

/// A Python string literal: JSON's escapes are Python's too.
fn py(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// `s` inside the module's `"""` docstring: backslashes and quotes
/// escaped, so that no name ends the string early.
fn doc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Whether `s` holds a Jinja delimiter: Airflow renders `bash_command`,
/// `env` and `cwd` as templates, so such a value would run as one.
fn has_jinja(s: &str) -> bool {
    ["{{", "{%", "{#"].iter().any(|d| s.contains(d))
}

impl Setting<'_> {
    /// The spec's path as the workers see it: relative to the project
    /// folder when it is inside it.
    fn spec_path(&self, p: &PipelinePlan) -> String {
        let file = std::fs::canonicalize(&p.file).unwrap_or_else(|_| p.file.clone());
        match file.strip_prefix(&self.project.root) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => file.display().to_string(),
        }
    }

    /// The project file's path relative to the project folder.
    fn project_file(&self) -> String {
        let file =
            std::fs::canonicalize(&self.checked.file).unwrap_or_else(|_| self.checked.file.clone());
        file.strip_prefix(&self.project.root)
            .map(Path::to_path_buf)
            .unwrap_or(file)
            .display()
            .to_string()
    }

    fn dag_file(&self, dag: &Dag) -> String {
        let first = dag.pipelines[0];
        let tz = first.partition.timezone.name();
        let start = dag
            .pipelines
            .iter()
            .map(|p| p.partition.start_date)
            .min()
            .expect("a DAG has a pipeline");
        let defaults = &self.project.defaults;
        let mut s = String::new();
        let names: Vec<&str> = dag.pipelines.iter().map(|p| p.name.as_str()).collect();
        let _ = write!(
            s,
            r#""""The `etl` pipelines {names} as an Airflow DAG.

Written by `etl airflow` from {project} (profile `{profile}`): change the
specs, then write it again rather than editing it.

Each task runs `etl run SPEC --date DAY`, where DAY is the partition day the
run's data interval closes: the day before the cron fire, in the pipeline's
timezone. Runs are safe to repeat or overlap: a day already done is skipped,
and a day another worker holds is left to it (leases on the shared state
store, see docs/operations.md).
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable


def etl_day(data_interval_end, timezone):
    """The partition day a run loads: the day before its cron fire, in `timezone`."""
    # Date arithmetic, not datetime: pendulum subtracts in UTC when the
    # zone is a ZoneInfo, which gave the day before.
    end = data_interval_end.astimezone(ZoneInfo(timezone))
    return (end.date() - timedelta(days=1)).isoformat()


with DAG(
    dag_id={dag_id},
    schedule=CronDataIntervalTimetable({cron}, timezone={tz}),
    start_date=pendulum.datetime({y}, {m}, {d}, tz={tz}),
    catchup=True,
    default_args={{
        "retries": {retries},
        "retry_delay": timedelta(seconds={delay}),
    }},
    user_defined_macros={{"etl_day": etl_day}},
    tags=["etl"],
    doc_md=__doc__,
) as dag:
"#,
            names = doc(&names.join(", ")),
            project = doc(&self.checked.file.display().to_string()),
            profile = doc(&self.checked.profile),
            dag_id = py(&dag.id),
            cron = py(&first.schedule),
            tz = py(tz),
            y = start.year(),
            m = start.month(),
            d = start.day(),
            retries = defaults.task_retries(),
            delay = defaults.task_retry_delay_seconds(),
        );
        for p in &dag.pipelines {
            let guard = if p.partition.start_date > start {
                // A run of the shared DAG before this pipeline's first day:
                // skipped (BashOperator's skip exit code) rather than
                // extracting a day the spec does not cover.
                format!(
                    r#"if [[ "$PARTITION_DAY" < "{first}" ]]; then echo "{name} starts on {first}: nothing to do for $PARTITION_DAY"; exit 99; fi; "#,
                    first = p.partition.start_date,
                    name = p.name,
                )
            } else {
                String::new()
            };
            let command =
                format!(r#"{guard}exec "$ETL_BIN" run "$PIPELINE_SPEC" --date "$PARTITION_DAY""#);
            let day = format!(
                "{{{{ etl_day(data_interval_end, {}) }}}}",
                py(p.partition.timezone.name())
            );
            let project_env = format!("{}/{}", self.project_dir, self.project_file());
            let _ = write!(
                s,
                r#"    BashOperator(
        task_id={task},
        bash_command={command},
        env={{
            "ETL_BIN": {etl},
            "ETL_PROJECT": {project_env},
            "ETL_PROFILE": {profile},
            "PIPELINE_SPEC": {spec},
            "PARTITION_DAY": {day},
        }},
        append_env=True,
        cwd={dir},
    )
"#,
                task = py(&p.name),
                command = py(&command),
                etl = py(self.etl_bin),
                profile = py(&self.checked.profile),
                dir = py(self.project_dir),
                project_env = py(&project_env),
                spec = py(&self.spec_path(p)),
                day = py(&day),
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn airflow_ids() {
        assert!(is_airflow_id("etl_users"));
        assert!(is_airflow_id("a.b-c"));
        assert!(!is_airflow_id(""));
        assert!(!is_airflow_id("with space"));
        assert!(!is_airflow_id("é"));
    }

    #[test]
    fn python_literals_escape_quotes_and_backslashes() {
        assert_eq!(py(r#"a "b" \c"#), r#""a \"b\" \\c""#);
    }
}
