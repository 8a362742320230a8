//! The command line: clap definitions, project discovery, and the commands.
//!
//! Commands return an [`Exit`]; nothing below `main` calls
//! `std::process::exit`, so tests can drive commands in-process.

mod airflow;
mod diagnostics;
mod infer;
mod k8s;
mod lock;
mod plan;
mod preview;
mod report;
mod run;
mod schedule;
mod secrets;
mod status;
mod test;
mod validate;
mod verify;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use clap::{Parser, Subcommand, ValueEnum};

use crate::exit::Exit;
use crate::spec::{self, Diagnostic, Loaded, ProjectSpec, SpecKind};
use crate::template::{EnvMode, RedactedSecrets, Templates};

/// How counts print: with thousands separators for a person at a terminal
/// (`1,234,567`), plain for pipes, files and scripts (`1234567`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Thousands separators.
    pub human: bool,
}

impl Counts {
    /// Separators when stdout is a terminal.
    pub(crate) fn for_stdout() -> Self {
        use std::io::IsTerminal;
        Self {
            human: std::io::stdout().is_terminal(),
        }
    }

    /// `n` as this prints it.
    pub(crate) fn show(self, n: u64) -> String {
        if self.human {
            indicatif::HumanCount(n).to_string()
        } else {
            n.to_string()
        }
    }

    /// `n`, or `-` when unknown.
    pub(crate) fn maybe(self, n: Option<u64>) -> String {
        n.map_or_else(|| "-".to_owned(), |n| self.show(n))
    }

    /// A column width that fits what `plain` digits print as.
    pub(crate) fn width(self, plain: usize) -> usize {
        if self.human {
            plain + plain.saturating_sub(1) / 3
        } else {
            plain
        }
    }
}

/// Declarative ETL from MongoDB into a data lake and a warehouse.
#[derive(Debug, Parser)]
#[command(name = "etl", version, about, max_term_width = 100)]
pub struct Cli {
    /// The project file. Default: the nearest `etl.yaml` from the current
    /// folder upwards.
    #[arg(long, global = true, env = "ETL_PROJECT", value_name = "FILE")]
    pub project: Option<PathBuf>,

    /// The profile whose connections are used. Default: the project file's
    /// `default_profile`.
    #[arg(long, global = true, env = "ETL_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,

    /// Pins "today" (for tests and replays); default: the clock, in each
    /// pipeline's timezone.
    #[arg(
        long,
        global = true,
        env = "ETL_TODAY",
        value_name = "YYYY-MM-DD",
        hide = true
    )]
    pub today: Option<NaiveDate>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check specs and report every error with its location.
    Validate(validate::Args),
    /// Print the JSON Schemas of the spec files, or check the committed ones.
    Schema(SchemaArgs),
    /// Show what a run would do for each day, without touching any server.
    Plan(plan::Args),
    /// Run the specs' flatten test cases offline and show what differs.
    Test(test::Args),
    /// Draft a pipeline spec and its schema lock from a collection's documents.
    Infer(infer::Args),
    /// Extract, archive, flatten and load each day (catch-up by default).
    Run(run::RunArgs),
    /// Rebuild warehouse partitions from the lake's raw objects, each
    /// checked against its manifest, without reading MongoDB.
    Replay(run::ReplayArgs),
    /// Follow each collection's change stream until stopped, marking the
    /// days its changes touch dirty for `etl run` to redo.
    Watch(watch::Args),
    /// Show the ledger per day, with failures and missing days.
    Status(status::Args),
    /// Count each day on MongoDB against what was loaded, and the
    /// documents no day selects; `--mark` has the next run redo the days
    /// that differ.
    Verify(verify::Args),
    /// Show a day's rows as the warehouse holds them (a BigQuery query, or
    /// the day's Parquet files), in key order.
    Preview(preview::Args),
    /// Write an HTML page of each pipeline's days, from the ledger and the
    /// schema locks: self-contained, no server, no script.
    Report(report::Args),
    /// Run each pipeline's days as its cron schedule makes them due, until
    /// stopped: a daemon for machines with no orchestrator.
    Schedule(schedule::Args),
    /// Write Kubernetes manifests: daily CronJobs, a backfill Indexed Job, a
    /// ConfigMap of the specs.
    K8s(k8s::Args),
    /// Write an Airflow 3 DAG file: each pipeline's cron as its schedule,
    /// one task per pipeline running `etl run SPEC --date DAY`.
    Airflow(airflow::Args),
    /// Fill MongoDB with deterministic demo data (users, orders, products).
    Demo(DemoArgs),
    /// Manage age-encrypted secrets.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
}

/// `etl schema`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SchemaArgs {
    /// `etl schema lock`.
    #[command(subcommand)]
    pub command: Option<SchemaCommand>,

    /// Which schema to print.
    #[arg(value_enum, default_value_t = SchemaWhich::Pipeline)]
    pub which: SchemaWhich,

    /// Write both schemas into this folder instead of printing.
    #[arg(long, value_name = "DIR", conflicts_with = "check")]
    pub write: Option<PathBuf>,

    /// Fail (exit 1) when the schemas in this folder differ from the
    /// generated ones.
    #[arg(long, value_name = "DIR")]
    pub check: Option<PathBuf>,

    /// Print the Markdown field reference (`docs/spec.md`) instead.
    #[arg(long, conflicts_with_all = ["write", "check"])]
    pub docs: bool,
}

/// `etl schema` subcommands.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Refresh the schema lock files (`schemas/tables/<pipeline>.json`) or,
    /// with `--check`, fail when they are out of date.
    Lock(lock::Args),
}

/// Which schema.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaWhich {
    /// `pipelines/*.yaml`
    Pipeline,
    /// `etl.yaml`
    Project,
}

/// `etl demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The `mongodb` connection of the active profile to fill.
    #[arg(long, default_value = "mongo")]
    pub connection: String,
    /// Database to fill.
    #[arg(long, default_value = "shop")]
    pub database: String,
    /// Random seed: the same seed gives the same documents.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of users.
    #[arg(long, default_value_t = 3000)]
    pub users: usize,
    /// Number of orders.
    #[arg(long, default_value_t = 5000)]
    pub orders: usize,
    /// Number of products.
    #[arg(long, default_value_t = 1000)]
    pub products: usize,
    /// First day of `created_at` values.
    #[arg(long, default_value = "2020-06-01")]
    pub start: NaiveDate,
    /// Last day of `created_at` values (inclusive).
    #[arg(long, default_value = "2020-06-10")]
    pub end: NaiveDate,
    /// Fill a server that is not on this machine. `etl demo` drops the
    /// demo collections first, so by default it only touches a MongoDB
    /// on loopback.
    #[arg(long)]
    pub force: bool,
}

/// Runs the CLI and maps the outcome to an exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::RunFailed
        }
    };
    code.into()
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let ctx = Context {
        project: cli.project.clone(),
        profile: cli.profile.clone(),
        today: cli.today,
    };
    match cli.command {
        Command::Validate(args) => Ok(validate::run(&ctx, args)),
        Command::Schema(SchemaArgs {
            command: Some(SchemaCommand::Lock(args)),
            ..
        }) => lock::run(&ctx, args),
        Command::Schema(args) => schema(args),
        Command::Plan(args) => Ok(plan::run(&ctx, args)),
        Command::Test(args) => Ok(test::run(&ctx, args)),
        Command::Infer(args) => infer::run(&ctx, args),
        Command::Run(args) => run::run(&ctx, args),
        Command::Replay(args) => run::replay(&ctx, args),
        Command::Watch(args) => watch::run(&ctx, args),
        Command::Status(args) => status::run(&ctx, args),
        Command::Verify(args) => verify::run(&ctx, args),
        Command::Preview(args) => preview::run(&ctx, args),
        Command::Report(args) => report::run(&ctx, args),
        Command::Schedule(args) => schedule::run(&ctx, args),
        Command::K8s(args) => k8s::run(&ctx, args),
        Command::Airflow(args) => airflow::run(&ctx, args),
        Command::Demo(args) => demo(&ctx, args),
        Command::Secrets(cmd) => secrets::run(&ctx, cmd),
    }
}

/// The days a command covers.
///
/// Parsed through [`RangeFlags`] so that a `--day-index` past the range's
/// end is a usage error at parse time (exit 2), for every command that
/// takes a range.
#[derive(Debug, Clone)]
pub struct RangeArgs {
    /// `--start`.
    pub start: Option<NaiveDate>,
    /// `--end`.
    pub end: Option<NaiveDate>,
    /// `--date`.
    pub date: Option<NaiveDate>,
    /// `--day-index`, and the day it picks in `--start..=--end`.
    pub day_index: Option<(u32, NaiveDate)>,
}

/// The flags of [`RangeArgs`], as clap parses them.
#[derive(Debug, clap::Args)]
struct RangeFlags {
    /// First day, inclusive. Default: the spec's `start_date`.
    #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "date")]
    start: Option<NaiveDate>,

    /// Last day, inclusive. Default: yesterday.
    #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "date")]
    end: Option<NaiveDate>,

    /// One day: the same as `--start D --end D`.
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<NaiveDate>,

    /// With `--start` and `--end`, only the N-th day (0-based) of that
    /// range. For a Kubernetes Indexed Job: `--day-index
    /// $(JOB_COMPLETION_INDEX)` (see docs/kubernetes.md).
    #[arg(long, value_name = "N", requires_all = ["start", "end"])]
    day_index: Option<u32>,
}

impl clap::FromArgMatches for RangeArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let f = RangeFlags::from_arg_matches(m)?;
        let day_index = match (f.day_index, f.start, f.end) {
            (Some(i), Some(start), Some(end)) => {
                let day = crate::plan::nth_day(start, end, i).map_err(|e| {
                    let hint = if e.days > 0 {
                        format!(
                            "an Indexed Job over this range has `completions: {}`, one per day",
                            e.days
                        )
                    } else {
                        "`--start` is after `--end`".to_owned()
                    };
                    clap::Error::raw(
                        clap::error::ErrorKind::ValueValidation,
                        format!("{e}\n\nhint: {hint}\n"),
                    )
                })?;
                Some((i, day))
            }
            _ => None,
        };
        Ok(Self {
            start: f.start,
            end: f.end,
            date: f.date,
            day_index,
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for RangeArgs {
    fn group_id() -> Option<clap::Id> {
        RangeFlags::group_id()
    }

    fn augment_args(cmd: clap::Command) -> clap::Command {
        RangeFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        RangeFlags::augment_args_for_update(cmd)
    }
}

impl RangeArgs {
    /// The request, before clamping to yesterday: `--day-index`'s one day
    /// when it is given.
    pub fn request(&self) -> crate::plan::RangeRequest {
        if let Some((_, day)) = self.day_index {
            return crate::plan::RangeRequest {
                start: Some(day),
                end: Some(day),
            };
        }
        crate::plan::RangeRequest {
            start: self.date.or(self.start),
            end: self.date.or(self.end),
        }
    }
}

/// The project and the pipelines a command was given, checked against the
/// active profile.
pub(crate) struct LoadedPlans {
    pub project: crate::plan::ProjectPlan,
    /// The profile in use.
    pub profile: String,
    pub plans: Vec<crate::plan::PipelinePlan>,
    pub templates: Templates,
}

/// What a writer of files for an orchestrator (`etl k8s`, `etl airflow`)
/// starts from: the project, its checked file, and the pipelines in name
/// order, so that the files do not depend on the order of the arguments.
pub(crate) fn load_for_generator(
    ctx: &Context,
    files: &[PathBuf],
) -> Result<
    (
        crate::plan::ProjectPlan,
        Vec<crate::plan::PipelinePlan>,
        CheckedProject,
    ),
    Exit,
> {
    let LoadedPlans {
        project, mut plans, ..
    } = load_plans(ctx, files, "written")?;
    let checked = ctx.checked_project()?;
    plans.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((project, plans, checked))
}

/// Loads and checks the project and `files`; prints every problem and
/// returns the usage exit code when there is one. `verb` ends the hint:
/// "nothing was {verb}".
pub(crate) fn load_plans(
    ctx: &Context,
    files: &[PathBuf],
    verb: &str,
) -> Result<LoadedPlans, Exit> {
    let CheckedProject {
        plan,
        spec: pspec,
        profile,
        ..
    } = ctx.checked_project()?;
    let templates = templates_for(&pspec, EnvMode::Strict);
    let mut plans = Vec::new();
    let mut diags = Vec::new();
    for file in files {
        let loaded: Loaded<crate::spec::PipelineSpec> = spec::load(file, SpecKind::Pipeline);
        diags.extend(loaded.diagnostics.iter().cloned());
        if let Some(spec) = &loaded.spec {
            match crate::plan::check_pipeline(spec, file, &plan, &profile, &templates) {
                Ok(mut p) => {
                    let path = crate::lock::SchemaLock::path(&plan.root, &p.name);
                    match crate::lock::SchemaLock::read(&path) {
                        Ok(lock) => p.lock = lock.map(Arc::new),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return Err(Exit::Usage);
                        }
                    }
                    plans.push(p)
                }
                Err(problems) => diags.extend(problems.into_iter().map(|p| loaded.place(p))),
            }
        }
    }
    if !diags.is_empty() {
        diagnostics::print_human(&diags);
        eprintln!("hint: `etl validate` lists every problem; nothing was {verb}");
        return Err(Exit::Usage);
    }
    let mut names = std::collections::BTreeSet::new();
    for p in &plans {
        if !names.insert(p.name.clone()) {
            eprintln!("error: two specs name the pipeline `{}`; each needs its own name, or the ledger would mix them", p.name);
            return Err(Exit::Usage);
        }
    }
    Ok(LoadedPlans {
        project: plan,
        profile,
        plans,
        templates,
    })
}

/// Global options every command may use.
pub struct Context {
    project: Option<PathBuf>,
    profile: Option<String>,
    today: Option<NaiveDate>,
}

impl Context {
    /// The context of a command given `--project file --profile profile`
    /// and nothing else.
    #[cfg(test)]
    pub(crate) fn for_project(file: PathBuf, profile: &str) -> Self {
        Self {
            project: Some(file),
            profile: Some(profile.to_owned()),
            today: None,
        }
    }

    /// The project file: `--project`, else the nearest `etl.yaml` upwards.
    fn project_file(&self) -> Result<PathBuf, String> {
        if let Some(p) = &self.project {
            return Ok(p.clone());
        }
        let cwd =
            std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?;
        cwd.ancestors()
            .map(|d| d.join("etl.yaml"))
            .find(|p| p.is_file())
            .map(|p| relative_to(&p, &cwd))
            .ok_or_else(|| "no `etl.yaml` found in this folder or above it".to_owned())
    }

    /// The project file, or a printed error and the usage exit code.
    fn project_file_or_usage(&self) -> Result<PathBuf, Exit> {
        self.project_file().map_err(|m| {
            eprintln!("error: {m}\n\nhint: run from the repository root, or pass `--project path/to/etl.yaml`");
            Exit::Usage
        })
    }

    /// The clock: the system's, with "today" pinned by `--today`.
    pub(crate) fn clock(&self) -> std::sync::Arc<dyn crate::engine::Clock> {
        match self.today {
            Some(day) => std::sync::Arc::new(crate::engine::PinnedToday(day)),
            None => std::sync::Arc::new(crate::engine::SystemClock),
        }
    }

    /// The project file, loaded and checked, and the profile in use; its
    /// problems printed and the usage exit code when it has any.
    fn checked_project(&self) -> Result<CheckedProject, Exit> {
        let file = self.project_file_or_usage()?;
        let project = load_project(&file, EnvMode::Strict);
        let (Some(plan), Some(spec)) = (project.plan, project.loaded.spec) else {
            diagnostics::print_human(&project.diagnostics);
            return Err(Exit::Usage);
        };
        let profile = self
            .profile
            .clone()
            .unwrap_or_else(|| plan.default_profile.clone());
        Ok(CheckedProject {
            file,
            plan,
            spec,
            profile,
        })
    }

    /// Today in `tz`, by [`Self::clock`].
    fn today(&self, tz: Tz) -> NaiveDate {
        self.clock().today(tz)
    }
}

fn relative_to(p: &Path, base: &Path) -> PathBuf {
    p.strip_prefix(base)
        .map(Path::to_owned)
        .unwrap_or_else(|_| p.to_owned())
}

/// A project file without problems ([`Context::checked_project`]).
pub(crate) struct CheckedProject {
    pub file: PathBuf,
    pub plan: crate::plan::ProjectPlan,
    pub spec: ProjectSpec,
    pub profile: String,
}

/// The project file, loaded and checked, with its diagnostics placed.
pub(crate) struct LoadedProject {
    pub loaded: Loaded<ProjectSpec>,
    pub plan: Option<crate::plan::ProjectPlan>,
    pub diagnostics: Vec<Diagnostic>,
}

pub(crate) fn load_project(file: &Path, env_mode: EnvMode) -> LoadedProject {
    let loaded: Loaded<ProjectSpec> = spec::load(file, SpecKind::Project);
    let mut diagnostics = loaded.diagnostics.clone();
    let mut plan = None;
    if let Some(spec) = &loaded.spec {
        let root = file.parent().map(Path::to_owned).unwrap_or_default();
        let root = if root.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            root
        };
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let templates = templates_for(spec, env_mode);
        match crate::plan::check_project(spec, &root, &templates) {
            Ok(p) => plan = Some(p),
            Err(problems) => diagnostics.extend(problems.into_iter().map(|p| loaded.place(p))),
        }
    }
    LoadedProject {
        loaded,
        plan,
        diagnostics,
    }
}

/// Templates that check secret names without decrypting anything.
pub(crate) fn templates_for(spec: &ProjectSpec, env_mode: EnvMode) -> Templates {
    let names = spec.secrets.keys().cloned().collect();
    Templates::from_process(Arc::new(RedactedSecrets(names)), env_mode)
}

fn schema(args: SchemaArgs) -> anyhow::Result<Exit> {
    if args.docs {
        print!("{}", spec::reference::markdown());
        return Ok(Exit::Success);
    }
    let kinds = [SpecKind::Pipeline, SpecKind::Project];
    let render = |k: SpecKind| serde_json::to_string_pretty(&k.schema()).expect("JSON") + "\n";
    if let Some(dir) = args.write {
        std::fs::create_dir_all(&dir)?;
        for k in kinds {
            let path = dir.join(k.schema_file());
            std::fs::write(&path, render(k))?;
            eprintln!("wrote {}", path.display());
        }
        return Ok(Exit::Success);
    }
    if let Some(dir) = args.check {
        let mut stale = false;
        for k in kinds {
            let path = dir.join(k.schema_file());
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            if committed != render(k) {
                eprintln!(
                    "error: {} is stale or missing\n\nhint: run `etl schema --write {}`",
                    path.display(),
                    dir.display()
                );
                stale = true;
            }
        }
        return Ok(if stale {
            Exit::RunFailed
        } else {
            Exit::Success
        });
    }
    let kind = match args.which {
        SchemaWhich::Pipeline => SpecKind::Pipeline,
        SchemaWhich::Project => SpecKind::Project,
    };
    print!("{}", render(kind));
    Ok(Exit::Success)
}

fn demo(ctx: &Context, args: DemoArgs) -> anyhow::Result<Exit> {
    let CheckedProject {
        file,
        plan,
        spec: pspec,
        profile,
    } = match ctx.checked_project() {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let conn = plan
        .profiles
        .get(&profile)
        .and_then(|c| c.get(&args.connection));
    let Some(crate::plan::MongoConnection {
        uri_template,
        uri_display,
        ..
    }) = conn.and_then(|c| c.mongodb())
    else {
        eprintln!(
            "error: {}: profile `{profile}` has no `mongodb` connection named `{}`\n\nhint: pass `--connection NAME` or `--profile NAME`",
            file.display(),
            args.connection
        );
        return Ok(Exit::Usage);
    };
    let spec = &pspec;
    if uri_template.contains("secret(") {
        eprintln!(
            "error: connection `{}` reads a secret, and `etl demo` only fills local, secret-free servers\n\nhint: use `--profile local`",
            args.connection
        );
        return Ok(Exit::Usage);
    }
    let uri = templates_for(spec, EnvMode::Strict)
        .render(uri_template, &Default::default())
        .map_err(anyhow::Error::msg)?;
    let opts = crate::demo::DemoOptions {
        seed: args.seed,
        users: args.users,
        orders: args.orders,
        products: args.products,
        start: args.start,
        end: args.end,
        // The "today" boundary document must not move with the clock, or the
        // same seed would give different data on different days.
        today: ctx.today.unwrap_or(args.end.succ_opt().unwrap_or(args.end)),
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new()?;
    // The demo drops its collections before filling them: a URI that
    // reaches another machine (a colleague's server, production) needs
    // `--force`, whatever its secrets (issue 29).
    let hosts: Vec<String> = rt
        .block_on(std::future::IntoFuture::into_future(
            mongodb::options::ClientOptions::parse(&uri),
        ))
        .map(|o| o.hosts.iter().map(|h| h.to_string()).collect())
        .unwrap_or_default();
    let remote: Vec<&String> = hosts
        .iter()
        .filter(|h| {
            let host = h.rsplit_once(':').map_or(h.as_str(), |(host, _)| host);
            !crate::notify::is_loopback(host)
        })
        .collect();
    if (hosts.is_empty() || !remote.is_empty()) && !args.force {
        eprintln!(
            "error: connection `{}` reaches {}, not this machine, and `etl demo` drops the demo collections of `{}` before filling them\n\nhint: pass `--force` to fill it anyway, or use the local stack (`--profile local`)",
            args.connection,
            if remote.is_empty() {
                uri_display.clone()
            } else {
                remote.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
            },
            args.database
        );
        return Ok(Exit::Usage);
    }
    let summary = rt.block_on(async {
        let client = mongodb::Client::with_uri_str(&uri).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to {uri_display}: {}",
                crate::redact::redact_uri(&e.to_string())
            )
        })?;
        let db = client.database(&args.database);
        crate::demo::seed(&db, &opts, |coll, n| {
            eprintln!("  {coll}: {n} documents inserted")
        })
        .await
    })?;
    println!(
        "demo data in {uri_display}, database `{}` (seed {}):",
        summary.database, args.seed
    );
    for c in &summary.collections {
        println!("  {:<9} {:>6} documents", c.collection, c.inserted);
    }
    println!("took {:.1}s", summary.elapsed.as_secs_f64());
    Ok(Exit::Success)
}
