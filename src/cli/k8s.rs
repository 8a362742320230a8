//! `etl k8s`: Kubernetes manifests that run the pipelines.
//!
//! A ConfigMap holds the project: the project file, the given specs, their
//! schema locks and the age files their connections decrypt (ciphertext).
//! Each pipeline gets a CronJob whose pod runs the catch-up `etl run SPEC`
//! on the spec's schedule and timezone; with `--start/--end`, an Indexed
//! Job too, one completion per day, whose pod `i` runs `etl run SPEC
//! --start S --end E --day-index i`. Pods share work through the leases of
//! the state store, which is why a `state.url` the pods cannot share is
//! refused. The age identity comes from a Kubernetes Secret that the user
//! creates: nothing here reads or writes it.
//!
//! Layout: this file checks the flags and the project and writes the
//! output; `manifests` builds the objects, `names` holds the Kubernetes
//! name rules. `docs/kubernetes.md` is the guide.

mod manifests;
mod names;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use chrono::NaiveDate;

use super::{CheckedProject, Context};
use crate::exit::Exit;
use crate::plan::{resolve_range, PipelinePlan, ProjectPlan, RangeRequest, WarehousePlan};
use crate::spec::ConnectionSpec;
use manifests::{Deployment, Manifest, PipelineRef, ProjectFile, Scratch, ROOT};

/// `etl k8s`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline specs: each gets a CronJob, and a backfill Job with
    /// `--start/--end`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// The container image of the pods; `etl` must be on its PATH.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,

    /// The namespace of every object. Default: none, so kubectl's current
    /// namespace.
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,

    /// The Kubernetes Secret that holds the age identity, under the key
    /// `identity`. `etl k8s` never writes it (see docs/kubernetes.md).
    #[arg(long, value_name = "NAME", default_value = "etl-age-identity")]
    pub identity_secret: String,

    /// The pods' service account, for a cloud identity (GKE Workload
    /// Identity). Default: the namespace's `default`.
    #[arg(long, value_name = "NAME")]
    pub service_account: Option<String>,

    /// First day of a backfill: write an Indexed Job per pipeline too, one
    /// pod per day.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "end")]
    pub start: Option<NaiveDate>,

    /// Last day of the backfill, inclusive; at most yesterday.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "start")]
    pub end: Option<NaiveDate>,

    /// Backfill pods running at once, per pipeline (the Job's
    /// `parallelism`).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "start",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub parallel: u32,

    /// Write one file per object into this folder (`kubectl apply -f
    /// DIR`). Default: one YAML stream on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Write the manifests even though `state.url` is not shared: each pod
    /// then has a ledger of its own, lost when it ends.
    #[arg(long)]
    pub allow_local_state: bool,
}

/// Kubernetes' limit on a ConfigMap's keys and values together.
const CONFIG_MAP_MAX_BYTES: usize = 1024 * 1024;
/// Kubernetes' limit on an Indexed Job's completions.
const MAX_COMPLETIONS: usize = 100_000;
/// A CronJob's name leaves 11 characters for the Jobs it starts.
const CRON_JOB_NAME_MAX: usize = 52;

/// A problem that stops the command, and what to do about it.
struct Refusal {
    message: String,
    hint: String,
}

fn refuse(message: impl Into<String>, hint: impl Into<String>) -> Refusal {
    Refusal {
        message: message.into(),
        hint: hint.into(),
    }
}

/// `etl k8s`.
pub fn run(ctx: &Context, args: Args) -> anyhow::Result<Exit> {
    let (project, plans, checked) = match super::load_for_generator(ctx, &args.files) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };

    let mut refusals = check_flags(&args);
    let mut scratch = Scratches::default();
    if let Some(r) = check_state(&checked, &project, args.allow_local_state, &mut scratch) {
        refusals.push(r);
    }
    warn_local_stores(&checked, &project, &plans, &mut scratch);
    scratch.add(
        "staging",
        &container_path(&project.root, &project.staging_dir),
    );
    let (project_file, files, secrets) =
        project_files(&project, &checked.file, &plans, &mut refusals);
    let names = pipeline_names(&plans, &mut refusals);
    let ranges = match (args.start, args.end) {
        (Some(start), Some(end)) => backfill_ranges(ctx, &plans, start, end, &mut refusals),
        _ => Vec::new(),
    };
    if !refusals.is_empty() {
        for r in &refusals {
            eprintln!("error: {}\n\nhint: {}\n", r.message, r.hint);
        }
        eprintln!("no manifest was written");
        return Ok(Exit::Usage);
    }

    let deployment = Deployment {
        image: args.image.clone(),
        namespace: args.namespace.clone(),
        service_account: args.service_account.clone(),
        profile: checked.profile.clone(),
        project_file,
        files,
        identity_secret: (!secrets.is_empty()).then(|| args.identity_secret.clone()),
        scratch: scratch.0,
        retries: project.defaults.task_retries(),
    };
    let mut out = vec![deployment.config_map()];
    for (p, name) in plans.iter().zip(&names) {
        let r = pipeline_ref(&project, p);
        let tz = p.partition.timezone.name();
        out.push(deployment.cron_job(&r, &format!("etl-{name}"), &p.schedule, tz));
    }
    for ((p, name), (start, end)) in plans.iter().zip(&names).zip(ranges) {
        let days = (end - start).num_days() as u32 + 1;
        let job = job_name(name, &p.name, start, end, days);
        let r = pipeline_ref(&project, p);
        out.push(deployment.backfill_job(&r, &job, (start, end), days, args.parallel));
    }
    write(&out, &checked, args.out.as_deref())?;
    if let Some(secret) = &deployment.identity_secret {
        let ns = args
            .namespace
            .as_ref()
            .map(|n| format!(" --namespace {n}"))
            .unwrap_or_default();
        eprintln!(
            "the pods read the age identity from the Secret `{secret}` (key `{}`), which `etl k8s` never writes; create it once with:\n  kubectl create secret generic {secret}{ns} --from-file={}=$HOME/.config/etl/identity.txt",
            manifests::IDENTITY_KEY,
            manifests::IDENTITY_KEY,
        );
    }
    Ok(Exit::Success)
}

/// The names given on the command line, as Kubernetes checks them.
fn check_flags(args: &Args) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    if args.image.trim().is_empty() || args.image.contains(char::is_whitespace) {
        refusals.push(refuse(
            format!("`--image {}` is not an image reference", args.image),
            "give the image that has `etl` on its PATH, such as `ghcr.io/acme/etl:1.4.0`",
        ));
    }
    let dns = [
        ("--namespace", args.namespace.as_deref(), true),
        (
            "--identity-secret",
            Some(args.identity_secret.as_str()),
            false,
        ),
        ("--service-account", args.service_account.as_deref(), false),
    ];
    for (flag, value, label) in dns {
        let Some(v) = value else { continue };
        let ok = if label {
            names::is_dns_label(v)
        } else {
            names::is_dns_subdomain(v)
        };
        if !ok {
            refusals.push(refuse(
                format!("`{flag} {v}` is not a valid Kubernetes name"),
                "use lowercase letters, digits and `-`, starting and ending with a letter or digit",
            ));
        }
    }
    refusals
}

/// A state store the pods cannot share: refused, or with
/// `--allow-local-state` a warning and a writable folder for it.
fn check_state(
    checked: &CheckedProject,
    project: &ProjectPlan,
    allow: bool,
    scratch: &mut Scratches,
) -> Option<Refusal> {
    let url = &project.state(&checked.profile).url;
    let place = if let Some(path) = url.strip_prefix("file://") {
        scratch.add("state", &container_path(&project.root, Path::new(path)));
        "a folder on the pod's own disk"
    } else if url.starts_with("memory://") {
        "in the memory of each `etl run`"
    } else {
        return None;
    };
    let file = checked.file.display();
    let at = project.state_at(&checked.profile).key("url");
    let raw = checked
        .spec
        .profiles
        .get(&checked.profile)
        .and_then(|p| p.state.as_ref())
        .map_or(&checked.spec.state.url, |s| &s.url);
    let message = format!(
        "{file}: `{at}` is `{raw}`, {place}: each pod would keep a ledger of its own that ends with it, so every CronJob run would redo every day since `start_date`, and leases could not keep the pods of a backfill apart"
    );
    if allow {
        eprintln!("warning: {message} (written anyway: --allow-local-state)\n");
        return None;
    }
    Some(refuse(
        message,
        format!("point `{at}` in {file} at a store every pod reaches, such as `gs://bucket/etl-state` (see docs/operations.md), or pass --allow-local-state to write the manifests anyway"),
    ))
}

/// Lake and Parquet connections on a pod's own disk lose their data when
/// the pod ends: said once per connection, then written to a writable
/// folder so that the run itself works.
fn warn_local_stores(
    checked: &CheckedProject,
    project: &ProjectPlan,
    plans: &[PipelinePlan],
    scratch: &mut Scratches,
) {
    let mut stores = BTreeMap::new();
    for p in plans {
        stores.insert(
            p.lake.connection_name.clone(),
            p.lake.connection.url.clone(),
        );
        if let WarehousePlan::Parquet {
            connection_name,
            connection,
            ..
        } = &p.warehouse
        {
            stores.insert(connection_name.clone(), connection.url.clone());
        }
    }
    let profile = &checked.profile;
    for (name, url) in stores {
        let Some(path) = url.strip_prefix("file://") else {
            continue;
        };
        let raw = match checked
            .spec
            .profiles
            .get(profile)
            .and_then(|p| p.connections.get(&name))
        {
            Some(ConnectionSpec::ObjectStore(o)) => o.url.clone(),
            _ => url.clone(),
        };
        eprintln!("warning: connection `{name}` of profile `{profile}` is a local folder (`{raw}`): in a pod that is the pod's own disk, and what is written there is lost when the pod ends\n\nhint: give it a `gs://`, `s3://` or `az://` URL in that profile, or use another profile (`--profile`)\n");
        let volume = format!("store-{}", names::dns_label(&name, 40));
        scratch.add(&volume, &container_path(&project.root, Path::new(path)));
    }
}

/// Writable folders outside the project root, one emptyDir each.
#[derive(Default)]
struct Scratches(Vec<Scratch>);

impl Scratches {
    /// An emptyDir named `volume` at `path`, unless the root or another
    /// one already holds `path`.
    fn add(&mut self, volume: &str, path: &str) {
        let within = |dir: &str| path == dir || path.starts_with(&format!("{dir}/"));
        if !within(ROOT) && !self.0.iter().any(|s| within(&s.path)) {
            self.0.push(Scratch {
                volume: volume.to_owned(),
                path: path.to_owned(),
            });
        }
    }
}

/// Where `path` (on this machine, resolved against the project root) is in
/// the pods: under [`ROOT`] when it is under the root, else the same path.
fn container_path(root: &Path, path: &Path) -> String {
    let base = match path.strip_prefix(root) {
        Ok(rel) => Path::new(ROOT).join(rel),
        Err(_) => path.to_owned(),
    };
    let mut parts: Vec<String> = Vec::new();
    for c in base.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// The spec's path in the pods.
fn pipeline_ref(project: &ProjectPlan, p: &PipelinePlan) -> PipelineRef {
    let rel = std::fs::canonicalize(&p.file)
        .ok()
        .and_then(|f| rel_path(&project.root, &f).ok())
        .unwrap_or_default();
    PipelineRef {
        label: names::pipeline_label(&p.name),
        spec: format!("{ROOT}/{rel}"),
    }
}

/// The ConfigMap's files, sorted by path: the project file's path, the
/// files, and the secrets the pods decrypt.
fn project_files(
    project: &ProjectPlan,
    project_file: &Path,
    plans: &[PipelinePlan],
    refusals: &mut Vec<Refusal>,
) -> (String, Vec<ProjectFile>, BTreeSet<String>) {
    let root = &project.root;
    let mut wanted: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut add = |what: &str, file: &Path, refusals: &mut Vec<Refusal>| -> Option<String> {
        let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
        match rel_path(root, &canonical) {
            Ok(rel) => {
                wanted.insert(rel.clone(), file.to_owned());
                Some(rel)
            }
            Err(m) => {
                refusals.push(refuse(
                    format!("{what} `{}` {m}", file.display()),
                    "the ConfigMap mirrors the project folder (where etl.yaml is): keep the file in it, under a path of letters, digits, `-`, `_` and `.`",
                ));
                None
            }
        }
    };
    let project_rel = add("the project file", project_file, refusals).unwrap_or_default();
    let mut secrets = BTreeSet::new();
    for p in plans {
        add(&format!("pipeline `{}`:", p.name), &p.file, refusals);
        let lock = crate::lock::SchemaLock::path(root, &p.name);
        if lock.is_file() {
            add(
                &format!("pipeline `{}`: the schema lock", p.name),
                &lock,
                refusals,
            );
        }
        secrets.extend(p.secret_names());
    }
    for name in &secrets {
        let Some(file) = project.secrets.get(name) else {
            continue;
        };
        if file.is_file() {
            add(&format!("secret `{name}`:"), file, refusals);
        } else {
            refusals.push(refuse(
                format!("secret `{name}`: `{}` does not exist, and the pods need it", file.strip_prefix(root).unwrap_or(file).display()),
                "encrypt it first: `etl secrets encrypt --recipient age1... FILE > PATH` (see docs/security.md); the ConfigMap carries the age file, never the plaintext",
            ));
        }
    }

    let mut files = Vec::new();
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for (rel, file) in wanted {
        let key = rel.replace('/', ".");
        if let Some(other) = keys.insert(key.clone(), rel.clone()) {
            refusals.push(refuse(
                format!("`{other}` and `{rel}` would have the same ConfigMap key `{key}`"),
                "rename one of them: a ConfigMap key is the path with `/` replaced by `.`",
            ));
        }
        match std::fs::read(&file) {
            Ok(bytes) => files.push(ProjectFile {
                path: rel,
                key,
                bytes,
            }),
            Err(e) => refusals.push(refuse(
                format!("cannot read `{}`: {e}", file.display()),
                "check the file's permissions",
            )),
        }
    }
    let size: usize = files.iter().map(|f| f.key.len() + f.bytes.len()).sum();
    if size > CONFIG_MAP_MAX_BYTES {
        refusals.push(refuse(
            format!("the project's files come to {size} bytes, over the {CONFIG_MAP_MAX_BYTES} bytes a ConfigMap holds"),
            "write the manifests for fewer pipelines at a time",
        ));
    }
    (project_rel, files, secrets)
}

/// `file`'s path under `root`, `/`-separated, when every part of it can be
/// part of a ConfigMap key.
fn rel_path(root: &Path, file: &Path) -> Result<String, String> {
    let rel = file
        .strip_prefix(root)
        .map_err(|_| "is outside the project folder".to_owned())?;
    let mut parts = Vec::new();
    for c in rel.components() {
        let part = match c {
            Component::Normal(s) => s.to_str().unwrap_or(""),
            _ => "",
        };
        let ok = !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(format!(
                "has a path a ConfigMap key cannot hold (`{}`)",
                rel.display()
            ));
        }
        parts.push(part);
    }
    Ok(parts.join("/"))
}

/// Each pipeline's name as a DNS label, short enough for a CronJob; two
/// pipelines may not share one.
fn pipeline_names(plans: &[PipelinePlan], refusals: &mut Vec<Refusal>) -> Vec<String> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for p in plans {
        let name = names::dns_label(&p.name, CRON_JOB_NAME_MAX - "etl-".len());
        if let Some(other) = seen.insert(name.clone(), &p.name) {
            refusals.push(refuse(
                format!("pipelines `{other}` and `{}` would both be named `etl-{name}` in Kubernetes", p.name),
                "give one of them another `name:` in its spec; Kubernetes names are lowercase, with `-` for `_`",
            ));
        }
        out.push(name);
    }
    out
}

/// The backfill's days per pipeline: `start..=end`, clamped to yesterday
/// in the pipeline's timezone like `etl run` would.
fn backfill_ranges(
    ctx: &Context,
    plans: &[PipelinePlan],
    start: NaiveDate,
    end: NaiveDate,
    refusals: &mut Vec<Refusal>,
) -> Vec<(NaiveDate, NaiveDate)> {
    let req = RangeRequest {
        start: Some(start),
        end: Some(end),
    };
    let mut out = Vec::new();
    for p in plans {
        let tz = p.partition.timezone;
        let today = ctx.today(tz);
        let range = resolve_range(req, p.partition.start_date, today);
        if range.is_empty() {
            refusals.push(refuse(
                format!(
                    "pipeline `{}`: the backfill from {start} to {end} has no day to run",
                    p.name
                ),
                format!(
                    "a backfill ends by yesterday ({}, in {tz}): today's data is still arriving",
                    today.pred_opt().unwrap_or(today)
                ),
            ));
        } else if range.len() > MAX_COMPLETIONS {
            refusals.push(refuse(
                format!("pipeline `{}`: the backfill has {} days, more than the {MAX_COMPLETIONS} completions of an Indexed Job", p.name, range.len()),
                "split the range into several backfills",
            ));
        } else {
            for n in &range.notices {
                eprintln!("notice: pipeline `{}`: {n}", p.name);
            }
        }
        out.push((range.start, range.end));
    }
    out
}

/// `etl-<pipeline>-backfill-<start>-<end>`: a Job name, and with `-<index>`
/// its pods' host names, within 63 characters.
fn job_name(dns: &str, pipeline: &str, start: NaiveDate, end: NaiveDate, days: u32) -> String {
    let suffix = format!(
        "-backfill-{}-{}",
        start.format("%Y%m%d"),
        end.format("%Y%m%d")
    );
    let index_digits = (days - 1).to_string().len() + 1;
    let budget = 63 - "etl-".len() - suffix.len() - index_digits;
    let head = if dns.len() <= budget {
        dns.to_owned()
    } else {
        names::dns_label(pipeline, budget)
    };
    format!("etl-{head}{suffix}")
}

/// The objects on stdout as one YAML stream, or into `dir`, one file each.
fn write(out: &[Manifest], checked: &CheckedProject, dir: Option<&Path>) -> anyhow::Result<()> {
    let header = format!(
        "# Written by `etl k8s` from {} (profile `{}`): change the specs, then write it again.\n",
        checked.file.display(),
        checked.profile
    );
    let yaml = |m: &Manifest| -> anyhow::Result<String> {
        Ok(format!("{header}{}", serde_yaml::to_string(&m.body)?))
    };
    let Some(dir) = dir else {
        let mut s = String::new();
        for m in out {
            s.push_str("---\n");
            s.push_str(&yaml(m)?);
        }
        print!("{s}");
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    for m in out {
        let path = dir.join(format!("{}-{}.yaml", m.kind.to_ascii_lowercase(), m.name));
        std::fs::write(&path, yaml(m)?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    eprintln!("apply them with: kubectl apply -f {}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_the_pods() {
        let root = Path::new("/home/me/project");
        assert_eq!(
            container_path(root, Path::new("/home/me/project/.etl/staging")),
            "/etl/.etl/staging"
        );
        assert_eq!(
            container_path(root, Path::new("/home/me/project/../scratch")),
            "/scratch"
        );
        assert_eq!(
            container_path(root, Path::new("/var/tmp/etl")),
            "/var/tmp/etl"
        );
    }

    #[test]
    fn job_names_fit_63_characters_with_the_pod_index() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let name = job_name("users", "users", d("2020-06-25"), d("2020-07-04"), 10);
        assert_eq!(name, "etl-users-backfill-20200625-20200704");
        let long = "a_collection_name_long_enough_to_need_cutting_down";
        let dns = names::dns_label(long, 48);
        let name = job_name(&dns, long, d("2020-06-25"), d("2024-07-04"), 1471);
        assert!(name.len() + "-1470".len() <= 63, "{name}");
        assert!(names::is_dns_label(&name), "{name}");
        assert!(name.ends_with("-backfill-20200625-20240704"), "{name}");
    }

    #[test]
    fn configmap_keys_come_from_paths_inside_the_project() {
        let root = Path::new("/p");
        assert_eq!(
            rel_path(root, Path::new("/p/schemas/tables/users.json")).unwrap(),
            "schemas/tables/users.json"
        );
        assert!(rel_path(root, Path::new("/q/users.yaml"))
            .unwrap_err()
            .contains("outside"));
        assert!(rel_path(root, Path::new("/p/my specs/users.yaml"))
            .unwrap_err()
            .contains("cannot hold"));
    }
}
