//! [`check_project`]: the project file resolved, each profile's
//! connections rendered with masked secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono_tz::Tz;

use super::{
    bad_timezone, check_cron, check_version, BigqueryConnection, ConnectionPlan, MongoConnection,
    ProjectPlan, Secrets, StoreConnection,
};
use crate::redact::redact_uri;
use crate::spec::*;
use crate::template::{Templates, Vars};
use crate::ypath;

/// The secrets profile `profile` would decrypt, each with the first place
/// that uses it (see [`ConnectionPlan::secrets`]).
pub fn secrets_used(plan: &ProjectPlan, profile: &str) -> BTreeMap<String, (YamlPath, String)> {
    let mut used = BTreeMap::new();
    for (cname, conn) in plan.profiles.get(profile).into_iter().flatten() {
        let at = ypath!("profiles", profile, "connections", cname.as_str());
        for (field, name) in conn.secrets() {
            used.entry(name).or_insert_with(|| (at.key(&field), field));
        }
    }
    let state_at = plan.state_at(profile);
    for (field, name) in plan.state(profile).secrets() {
        used.entry(name)
            .or_insert_with(|| (state_at.key(&field), field));
    }
    for (i, n) in plan.notify.iter().enumerate() {
        if let Some((field, name)) = n.secret() {
            used.entry(name.to_owned())
                .or_insert_with(|| (ypath!("notify").index(i).key(field), field.to_owned()));
        }
    }
    used
}

/// Checks the project file. Connection templates are rendered with masked
/// secrets, so a bad template or an unknown secret fails here.
pub fn check_project(
    spec: &ProjectSpec,
    root: &Path,
    templates: &Templates,
) -> Result<ProjectPlan, Vec<Problem>> {
    let mut problems = Vec::new();
    check_version(&mut problems, spec.version, "project files");
    check_default_profile(&mut problems, spec);
    check_defaults(&mut problems, &spec.defaults);
    let mut profiles = BTreeMap::new();
    for (pname, profile) in &spec.profiles {
        let mut conns = BTreeMap::new();
        for (cname, conn) in &profile.connections {
            let at = ypath!("profiles", pname.as_str(), "connections", cname.as_str());
            let plan = check_connection(&mut problems, spec, root, templates, &at, conn);
            conns.insert(cname.clone(), plan);
        }
        profiles.insert(pname.clone(), conns);
    }

    // The state stores are checked as connections would be, at `state`
    // and at each profile's own.
    let check_state =
        |problems: &mut Vec<Problem>, at: YamlPath, store: ObjectStoreConnectionSpec| {
            let ConnectionPlan::ObjectStore(state) = check_connection(
                problems,
                spec,
                root,
                templates,
                &at,
                &ConnectionSpec::ObjectStore(store),
            ) else {
                unreachable!("an object store spec plans as an object store")
            };
            check_state_leases(problems, &at, &state);
            state
        };
    let default_state = check_state(
        &mut problems,
        ypath!("state"),
        ObjectStoreConnectionSpec {
            url: spec.state.url.clone(),
            options: spec.state.options.clone(),
            credentials: spec.state.credentials.clone(),
        },
    );
    let mut profile_states = BTreeMap::new();
    for (pname, profile) in &spec.profiles {
        if let Some(store) = &profile.state {
            let at = ypath!("profiles", pname.as_str(), "state");
            let state = check_state(&mut problems, at, store.clone());
            profile_states.insert(pname.clone(), state);
        }
    }
    let notify = spec
        .notify
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let at = ypath!("notify").index(i);
            check_notify(&mut problems, spec, root, templates, &at, n)
        })
        .collect();

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ProjectPlan {
        root: root.to_owned(),
        default_profile: spec.default_profile.clone(),
        profiles,
        secrets: spec
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), root.join(&v.file)))
            .collect(),
        default_state,
        profile_states,
        staging_dir: root.join(&spec.state.staging_dir),
        keep_staging: spec.state.keep_staging,
        defaults: spec.defaults.clone(),
        notify,
    })
}

/// One `notify` entry: when, to whom, and that its secret is declared.
/// Returns it with its `ca_file` made absolute.
fn check_notify(
    problems: &mut Vec<Problem>,
    spec: &ProjectSpec,
    root: &Path,
    templates: &Templates,
    at: &YamlPath,
    n: &NotifySpec,
) -> NotifySpec {
    let mut resolved = n.clone();
    if let NotifySpec::Email(EmailNotifySpec {
        ca_file: Some(file),
        ..
    }) = &mut resolved
    {
        let path = root.join(&*file);
        match std::fs::read(&path) {
            Ok(pem) => {
                if let Err(e) = lettre::transport::smtp::client::Certificate::from_pem(&pem) {
                    problems.push(
                        Problem::new(
                            at.key("ca_file"),
                            format!("{} is not a PEM certificate: {e}", path.display()),
                        )
                        .hint("give the CA's certificate, `-----BEGIN CERTIFICATE-----` and all"),
                    );
                }
            }
            Err(e) => problems.push(Problem::new(
                at.key("ca_file"),
                format!("cannot read {}: {e}", path.display()),
            )),
        }
        *file = path.display().to_string();
    }
    if n.on().is_empty() {
        problems.push(
            Problem::new(
                at.key("on"),
                "`on` is empty: this notification would never be sent",
            )
            .hint("use [failure], [failure, success] or [always]"),
        );
    }
    if let NotifySpec::Email(e) = n {
        match templates.render(&e.host, &Vars::default()) {
            Err(m) => problems.push(Problem::new(at.key("host"), m)),
            // A login in clear text is for a relay on this machine only.
            Ok(host)
                if e.tls == crate::spec::SmtpTls::None
                    && e.password_secret.is_some()
                    && !crate::notify::is_loopback(&host) =>
            {
                problems.push(
                    Problem::new(
                        at.key("tls"),
                        format!("`tls: none` with a password would send it to `{host}` in clear text"),
                    )
                    .hint("use `tls: starttls` (or `tls: tls` for port 465); `tls: none` with a login is only for a relay on 127.0.0.1"),
                );
            }
            Ok(_) => {}
        }
        if let Some(u) = &e.username {
            if let Err(m) = templates.render(u, &Vars::default()) {
                problems.push(Problem::new(at.key("username"), m));
            }
        }
        let mailbox = |field: YamlPath, value: &str, problems: &mut Vec<Problem>| {
            if let Err(err) = value.parse::<lettre::message::Mailbox>() {
                problems.push(
                    Problem::new(field, format!("`{value}` is not an email address: {err}"))
                        .hint("write `name@example.com` or `Name <name@example.com>`"),
                );
            }
        };
        mailbox(at.key("from"), &e.from, problems);
        if e.to.is_empty() {
            problems.push(Problem::new(
                at.key("to"),
                "`to` is empty: nobody would get this email",
            ));
        }
        for (j, to) in e.to.iter().enumerate() {
            mailbox(at.key("to").index(j), to, problems);
        }
        match (&e.username, &e.password_secret) {
            (Some(_), None) => problems.push(
                Problem::new(at.key("username"), "`username` is set without `password_secret`")
                    .hint("name the secret that holds the password: `password_secret: smtp_password`, declared under `secrets:`"),
            ),
            (None, Some(_)) => problems.push(
                Problem::new(at.key("password_secret"), "`password_secret` is set without `username`")
                    .hint("add the user name to log in with"),
            ),
            _ => {}
        }
    }
    if let Some((field, name)) = n.secret() {
        if !spec.secrets.contains_key(name) {
            let known: BTreeSet<String> = spec.secrets.keys().cloned().collect();
            problems.push(
                Problem::new(at.key(field), crate::template::unknown_secret(name, &known))
                    .hint("add it under `secrets:` in etl.yaml, its file written by `etl secrets encrypt`"),
            );
        }
    }
    resolved
}

/// `default_profile` names a profile.
fn check_default_profile(problems: &mut Vec<Problem>, spec: &ProjectSpec) {
    if !spec.profiles.contains_key(&spec.default_profile) {
        let names: Vec<&str> = spec.profiles.keys().map(String::as_str).collect();
        let mut p = Problem::new(
            ypath!("default_profile"),
            format!(
                "unknown profile `{}`, expected one of {}",
                spec.default_profile,
                backticked(&names)
            ),
        );
        p.hint = did_you_mean(&spec.default_profile, names.iter().copied());
        problems.push(p);
    }
}

/// `defaults`: the timezone and schedule pipelines inherit.
fn check_defaults(problems: &mut Vec<Problem>, defaults: &DefaultsSpec) {
    if let Some(tz) = &defaults.timezone {
        if tz.parse::<Tz>().is_err() {
            problems.push(bad_timezone(ypath!("defaults", "timezone"), tz));
        }
    }
    if let Some(cron) = &defaults.schedule {
        if let Err(p) = check_cron(ypath!("defaults", "schedule"), cron) {
            problems.push(p);
        }
    }
}

/// One connection at `at`: its templates rendered, its store URL and its
/// `credentials` secret checked.
fn check_connection(
    problems: &mut Vec<Problem>,
    spec: &ProjectSpec,
    root: &Path,
    templates: &Templates,
    at: &YamlPath,
    conn: &ConnectionSpec,
) -> ConnectionPlan {
    let vars = Vars::default();
    let mut render = |field: &str, t: &str| -> String {
        templates.render(t, &vars).unwrap_or_else(|m| {
            problems.push(Problem::new(at.key(field), m));
            String::new()
        })
    };
    let (plan, creds) = match conn {
        ConnectionSpec::Mongodb(m) => {
            let shown = render("uri", &m.uri);
            let plan = ConnectionPlan::Mongodb(MongoConnection {
                uri_template: m.uri.clone(),
                uri_display: redact_uri(&shown),
                app_name: m.app_name.clone(),
            });
            (plan, None)
        }
        ConnectionSpec::ObjectStore(o) => {
            let url = render("url", &o.url);
            for (k, v) in &o.options {
                render(&format!("options.{k}"), v);
            }
            let url = resolve_store_url(&url, root);
            if let Err(m) = check_store_url(&url) {
                problems.push(Problem::new(at.key("url"), m).hint(STORE_URL_HINT));
            }
            if o.credentials.is_some() && !url.starts_with("gs://") {
                problems.push(
                    Problem::new(at.key("credentials"), "`credentials` is a GCP service-account key, used by `gs://` stores only")
                        .hint("for s3:// or az:// set the keys in `options` with `{{ secret(\"name\") }}`"),
                );
            }
            let plan = ConnectionPlan::ObjectStore(StoreConnection {
                url,
                options: o.options.clone(),
                credentials: o.credentials.clone(),
            });
            (plan, o.credentials.as_ref())
        }
        ConnectionSpec::Bigquery(b) => {
            let plan = ConnectionPlan::Bigquery(BigqueryConnection {
                project: render("project", &b.project),
                location: b.location.clone(),
                endpoint: b.endpoint.as_ref().map(|e| render("endpoint", e)),
                credentials: b.credentials.clone(),
            });
            (plan, b.credentials.as_ref())
        }
    };
    if let Some(name) = creds {
        if !spec.secrets.contains_key(name) {
            let known: BTreeSet<String> = spec.secrets.keys().cloned().collect();
            problems.push(
                Problem::new(at.key("credentials"), crate::template::unknown_secret(name, &known))
                    .hint("add it under `secrets:` in etl.yaml, or remove `credentials` to use default credentials"),
            );
        }
    }
    plan
}

/// Leases take conditional creates, which `object_store` gives on S3 only
/// when told which kind the store has: without it every day would fail
/// at run time, so say it here.
fn check_state_leases(problems: &mut Vec<Problem>, at: &YamlPath, state: &StoreConnection) {
    use object_store::aws::AmazonS3ConfigKey;
    let told = state.options.keys().any(|k| {
        k.parse::<AmazonS3ConfigKey>()
            .is_ok_and(|k| k == AmazonS3ConfigKey::ConditionalPut)
    });
    if state.url.starts_with("s3://") && !told {
        problems.push(
            Problem::new(
                at.key("url"),
                format!("an `s3://` state store needs conditional puts for the day leases, and `{at}.options` has no `aws_conditional_put`"),
            )
            .hint(format!("add `aws_conditional_put: etag` under `{at}.options` (AWS S3 and most S3-compatible stores give it; docs/operations.md)")),
        );
    }
}

const STORE_URL_HINT: &str =
    "use gs://bucket/prefix, s3://bucket, az://container, file:///abs/dir, memory:// or a path relative to etl.yaml";

/// A plain path (no scheme) is a folder relative to the project root.
fn resolve_store_url(url: &str, root: &Path) -> String {
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("file://{}", root.join(url).display())
    }
}

fn check_store_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    const KNOWN: [&str; 9] = [
        "file", "memory", "gs", "s3", "s3a", "az", "abfs", "abfss", "azure",
    ];
    if KNOWN.contains(&scheme) {
        Ok(())
    } else {
        Err(format!(
            "unsupported object store URL `{}`",
            redact_uri(url)
        ))
    }
}
