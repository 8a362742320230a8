//! `etl validate`: every problem in every file, in one pass; with
//! `--connect`, each pipeline also checked against the servers of the
//! active profile ([`connect`]).

use std::path::PathBuf;

use clap::ValueEnum;

use super::{diagnostics, load_project, Context};
use crate::exit::Exit;
use crate::spec::{self, Diagnostic, Loaded, PipelineSpec, SpecKind};
use crate::template::EnvMode;

/// `etl validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs to check. Default: `pipelines/*.yaml` next to the
    /// project file. The project file is always checked too.
    pub files: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Also decrypt every secret the profile uses, in memory, to prove the
    /// configured age key opens it (and that `credentials` secrets are
    /// service-account keys). Without it, secrets are only checked to be
    /// age files.
    #[arg(long)]
    pub decrypt: bool,

    /// Also check each pipeline against its connections in the active
    /// profile (`--profile`): the collection, its partition field in the
    /// newest documents, an index on it, the warehouse tables against the
    /// schema lock, and that the lake and the state store can be written
    /// (probe objects under `_etl_validate/`, deleted at once). Errors
    /// exit 1, warnings 0; a spec with problems is not checked.
    #[arg(long)]
    pub connect: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Lines for people.
    Human,
    /// A JSON array of diagnostics.
    Json,
}

/// `etl validate`: exit 0 when nothing is wrong (warnings aside), 2 for
/// a spec with problems, 1 when a `--connect` check failed.
pub fn run(ctx: &Context, args: Args) -> Exit {
    let project_file = match ctx.project_file_or_usage() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut files: Vec<PathBuf> = args
        .files
        .into_iter()
        .filter(|f| !same_file(f, &project_file))
        .collect();
    if files.is_empty() {
        files = default_pipelines(&project_file);
    }

    let project = load_project(&project_file, EnvMode::Lenient);
    let mut diags = project.diagnostics.clone();
    if let Some(plan) = &project.plan {
        let profile = ctx.profile.as_deref().unwrap_or(&plan.default_profile);
        diags.extend(super::secrets::check_used(&project, profile, args.decrypt));
    }
    let loaded: Vec<Loaded<PipelineSpec>> = files
        .iter()
        .map(|f| spec::load(f, SpecKind::Pipeline))
        .collect();
    // Which specs have no problem: only those are checked against servers.
    let (mut clean, mut skipped) = (Vec::new(), Vec::new());
    for l in &loaded {
        let found = check_pipeline_loaded(l, &project);
        if found.is_empty() {
            clean.push(l);
        } else {
            skipped.push(l.file.display().to_string());
        }
        diags.extend(found);
    }
    let spec_errors = diags.iter().any(Diagnostic::is_error);
    let mut summaries = Vec::new();
    // The connection checks need a usable project file; a pipeline with
    // problems is left out, the others are still checked.
    if args.connect && project.diagnostics.is_empty() && project.plan.is_some() {
        match connect::run(ctx, &project, &clean) {
            Ok(report) => {
                diags.extend(report.diagnostics);
                summaries = report.summaries;
                summaries.extend(
                    skipped
                        .iter()
                        .map(|f| format!("{f}: not checked, its spec has problems")),
                );
            }
            Err(code) => {
                diagnostics::print_human(&diags);
                return code;
            }
        }
    }
    let checked = files.len() + 1;
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    match args.format {
        Format::Json => print!("{}", diagnostics::json(&diags)),
        Format::Human => {
            diagnostics::print_human(&diags);
            if !summaries.is_empty() {
                println!(
                    "checked against the connections of profile `{}`:",
                    active_profile(ctx, &project)
                );
                for s in &summaries {
                    println!("  {s}");
                }
            }
            let warned = match warnings {
                0 => String::new(),
                1 => ", 1 warning".to_owned(),
                n => format!(", {n} warnings"),
            };
            if errors == 0 {
                let connected = if args.connect {
                    ", connections checked"
                } else {
                    ""
                };
                println!("ok: {checked} files valid{connected}{warned}");
            } else {
                let files_with: std::collections::BTreeSet<_> = diags
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| &d.file)
                    .collect();
                eprintln!(
                    "{errors} {} in {} of {checked} files{warned}",
                    if errors == 1 { "error" } else { "errors" },
                    files_with.len()
                );
            }
        }
    }
    if spec_errors {
        Exit::Usage
    } else if errors > 0 {
        Exit::RunFailed
    } else {
        Exit::Success
    }
}

/// The profile whose connections are checked: `--profile`, else the
/// project's default.
fn active_profile(ctx: &Context, project: &super::LoadedProject) -> String {
    ctx.profile
        .clone()
        .or_else(|| project.plan.as_ref().map(|p| p.default_profile.clone()))
        .unwrap_or_default()
}

/// Checks one pipeline against every profile, so a connection missing from
/// `prod` is caught on a laptop that only runs `local`.
pub(super) fn check_pipeline_file(
    file: &std::path::Path,
    project: &super::LoadedProject,
) -> Vec<Diagnostic> {
    check_pipeline_loaded(&spec::load(file, SpecKind::Pipeline), project)
}

/// [`check_pipeline_file`] of a spec already read.
fn check_pipeline_loaded(
    loaded: &Loaded<PipelineSpec>,
    project: &super::LoadedProject,
) -> Vec<Diagnostic> {
    let file = loaded.file.as_path();
    let mut diags = loaded.diagnostics.clone();
    let (Some(spec), Some(plan), Some(pspec)) = (&loaded.spec, &project.plan, &project.loaded.spec)
    else {
        return diags;
    };
    let templates = super::templates_for(pspec, EnvMode::Lenient);
    let mut seen = std::collections::BTreeSet::new();
    // The default profile first: a mistake found in every profile is
    // reported once, in the profile people run.
    let profiles = std::iter::once(&plan.default_profile)
        .chain(plan.profiles.keys().filter(|p| **p != plan.default_profile));
    for profile in profiles {
        if let Err(problems) = crate::plan::check_pipeline(spec, file, plan, profile, &templates) {
            for p in problems {
                // One report per place: the same unknown connection in every
                // profile is one mistake.
                let key = (p.path.to_string(), p.key.clone());
                if seen.insert(key) {
                    diags.push(loaded.place(p));
                }
            }
        }
    }
    diags
}

pub(super) fn default_pipelines(project_file: &std::path::Path) -> Vec<PathBuf> {
    let dir = project_file
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .join("pipelines");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

mod connect;
#[cfg(test)]
mod props;
