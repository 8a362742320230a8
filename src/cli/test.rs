//! `etl test`: every spec's flatten test cases, offline.

use std::path::PathBuf;

use chrono::NaiveDate;

use super::validate::{check_pipeline_file, default_pipelines};
use super::{diagnostics, load_project, Context};
use crate::exit::Exit;
use crate::spec::{self, Loaded, PipelineSpec, SpecKind};
use crate::template::EnvMode;

/// `etl test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs whose `tests` to run. Default: `pipelines/*.yaml`
    /// next to the project file.
    pub files: Vec<PathBuf>,
}

pub fn run(ctx: &Context, args: Args) -> Exit {
    let project_file = match ctx.project_file_or_usage() {
        Ok(f) => f,
        Err(code) => return code,
    };
    let files = if args.files.is_empty() {
        default_pipelines(&project_file)
    } else {
        args.files
    };
    // Cases only mean something for valid specs.
    let project = load_project(&project_file, EnvMode::Lenient);
    let mut diags = project.diagnostics.clone();
    for file in &files {
        diags.extend(check_pipeline_file(file, &project));
    }
    if !diags.is_empty() {
        diagnostics::print_human(&diags);
        eprintln!("no case ran: fix the specs first (`etl validate` shows the same errors)");
        return Exit::Usage;
    }

    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let loaded: Loaded<PipelineSpec> = spec::load(file, SpecKind::Pipeline);
        let spec = loaded.spec.expect("validated above");
        let name = spec.name.clone().unwrap_or_else(|| {
            file.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let tables = crate::flatten::Tables::new(&spec.flatten).expect("validated above");
        let start = NaiveDate::parse_from_str(&spec.partition.start_date, "%Y-%m-%d")
            .expect("validated above");
        if spec.tests.is_empty() {
            println!("{name}: no test cases ({})", file.display());
            continue;
        }
        println!("{name}: {} cases ({})", spec.tests.len(), file.display());
        for case in &spec.tests {
            let result = crate::testing::run_case(&tables, &name, case, start);
            if result.passed() {
                passed += 1;
                println!("  ok    {}", result.name);
            } else {
                failed += 1;
                println!("  FAIL  {}", result.name);
                for d in &result.differences {
                    println!("        {d}");
                }
            }
        }
    }
    println!(
        "{} cases, {passed} passed, {failed} failed",
        passed + failed
    );
    if failed > 0 {
        Exit::RunFailed
    } else {
        Exit::Success
    }
}
