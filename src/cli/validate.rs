//! `etl validate`: every problem in every file, in one pass.

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
}

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Lines for people.
    Human,
    /// A JSON array of diagnostics.
    Json,
}

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
    for file in &files {
        diags.extend(check_pipeline_file(file, &project));
    }
    let checked = files.len() + 1;
    match args.format {
        Format::Json => print!("{}", diagnostics::json(&diags)),
        Format::Human => {
            diagnostics::print_human(&diags);
            if diags.is_empty() {
                println!("ok: {checked} files valid");
            } else {
                let files_with: std::collections::BTreeSet<_> =
                    diags.iter().map(|d| &d.file).collect();
                eprintln!(
                    "{} {} in {} of {checked} files",
                    diags.len(),
                    if diags.len() == 1 { "error" } else { "errors" },
                    files_with.len()
                );
            }
        }
    }
    if diags.is_empty() {
        Exit::Success
    } else {
        Exit::Usage
    }
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

#[cfg(test)]
mod props;
