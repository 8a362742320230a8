//! The Kubernetes objects of `etl k8s`, as JSON values in a fixed key
//! order: the project's ConfigMap, a CronJob per pipeline, and a backfill
//! Indexed Job per pipeline. Every pod is built by [`pod_template`], so a
//! CronJob's pod and a backfill pod differ only in their `etl` arguments.

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

/// The project folder in the pods: a writable emptyDir with the
/// ConfigMap's files mounted read-only into it one by one. The staging
/// folder resolves against the project root, so the root must be
/// writable, and a read-only ConfigMap volume cannot hold a mount inside it.
pub const ROOT: &str = "/etl";
/// Where the identity Secret is mounted.
pub const IDENTITY_DIR: &str = "/etc/etl/age";
/// The age identity's key in the Secret, and its file name in
/// [`IDENTITY_DIR`].
pub const IDENTITY_KEY: &str = "identity";
/// The ConfigMap's name.
pub const CONFIG_MAP: &str = "etl-project";
/// The container's name, which the pod failure policy names too.
const CONTAINER: &str = "etl";
/// A non-root user and group (distroless' `nonroot`): the pods meet the
/// `restricted` Pod Security Standard whatever user the image declares.
const USER: u32 = 65532;
/// The label that names a pipeline.
pub const PIPELINE_LABEL: &str = "etl/pipeline";
/// Exit code of `etl run` for bad usage, a bad spec or an unusable key:
/// the same on every retry, so it fails the Job at once.
const USAGE_EXIT: u32 = 2;

/// One file of the project, as the ConfigMap holds it.
pub struct ProjectFile {
    /// Its path under the project root, `/`-separated.
    pub path: String,
    /// Its ConfigMap key: the path with `/` replaced by `.`.
    pub key: String,
    /// Its bytes: `data` when they are UTF-8, else `binaryData`.
    pub bytes: Vec<u8>,
}

/// An extra writable folder outside [`ROOT`]: an emptyDir.
pub struct Scratch {
    /// The volume's name.
    pub volume: String,
    /// Its absolute path in the container.
    pub path: String,
}

/// What every object shares.
pub struct Deployment {
    /// The container image.
    pub image: String,
    /// `metadata.namespace`, when given.
    pub namespace: Option<String>,
    /// The pods' service account, when given.
    pub service_account: Option<String>,
    /// The profile the pods run with (`ETL_PROFILE`).
    pub profile: String,
    /// The project file's path under the root.
    pub project_file: String,
    /// The ConfigMap's files, sorted by path.
    pub files: Vec<ProjectFile>,
    /// The identity Secret's name, when the pods decrypt secrets.
    pub identity_secret: Option<String>,
    /// Writable folders outside [`ROOT`].
    pub scratch: Vec<Scratch>,
    /// Times a failed pod is started again (`defaults.retries`).
    pub retries: u32,
}

/// One object: its kind, its name and the whole object.
pub struct Manifest {
    /// `kind`.
    pub kind: &'static str,
    /// `metadata.name`.
    pub name: String,
    /// The object.
    pub body: Value,
}

/// A pipeline as its objects need it.
pub struct PipelineRef {
    /// Its label value.
    pub label: String,
    /// Its spec's path in the container.
    pub spec: String,
}

impl Deployment {
    fn metadata(&self, name: &str, labels: Value, annotations: Option<Value>) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        if let Some(ns) = &self.namespace {
            m.insert("namespace".into(), ns.as_str().into());
        }
        m.insert("labels".into(), labels);
        if let Some(a) = annotations {
            m.insert("annotations".into(), a);
        }
        Value::Object(m)
    }

    /// The project's files, keyed without `/`.
    pub fn config_map(&self) -> Manifest {
        let (mut data, mut binary) = (Map::new(), Map::new());
        for f in &self.files {
            match std::str::from_utf8(&f.bytes) {
                Ok(text) => data.insert(f.key.clone(), text.into()),
                Err(_) => {
                    use base64::Engine;
                    let b64 = base64::engine::general_purpose::STANDARD.encode(&f.bytes);
                    binary.insert(f.key.clone(), b64.into())
                }
            };
        }
        let mut body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self.metadata(CONFIG_MAP, labels("project", None), None),
            "data": data,
        });
        if !binary.is_empty() {
            body["binaryData"] = Value::Object(binary);
        }
        Manifest {
            kind: "ConfigMap",
            name: CONFIG_MAP.into(),
            body,
        }
    }

    /// The daily CronJob: the pipeline's catch-up on its schedule.
    pub fn cron_job(&self, p: &PipelineRef, name: &str, schedule: &str, tz: &str) -> Manifest {
        let labels = labels("daily", Some(&p.label));
        // No range: the catch-up, `start_date` (or the first day not done)
        // to yesterday.
        let args = vec!["run".into(), p.spec.clone(), "--log-format=json".into()];
        let body = json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": self.metadata(name, labels.clone(), None),
            "spec": {
                "schedule": schedule,
                "timeZone": tz,
                // Leases make two runs at once safe: a run still busy with a
                // backlog shares it with the next one, which is not held up.
                "concurrencyPolicy": "Allow",
                // A start missed by more than an hour is left to the next
                // run, whose catch-up does the same days.
                "startingDeadlineSeconds": 3600,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "metadata": {"labels": labels.clone()},
                    "spec": {
                        "backoffLimit": self.retries,
                        // A run stuck for a day is stopped (SIGTERM: its day
                        // is recorded `interrupted`); the next run redoes it.
                        "activeDeadlineSeconds": 86400,
                        "podFailurePolicy": pod_failure_policy(),
                        "template": self.pod_template(labels, args),
                    },
                },
            },
        });
        Manifest {
            kind: "CronJob",
            name: name.into(),
            body,
        }
    }

    /// The backfill Indexed Job: pod `i` runs day `i` of `start..=end`.
    pub fn backfill_job(
        &self,
        p: &PipelineRef,
        name: &str,
        (start, end): (NaiveDate, NaiveDate),
        days: u32,
        parallel: u32,
    ) -> Manifest {
        let labels = labels("backfill", Some(&p.label));
        // `--flag=value`, so that YAML 1.1 readers (PyYAML, go-yaml v2)
        // cannot take a bare day for a timestamp.
        let args = vec![
            "run".into(),
            p.spec.clone(),
            format!("--start={start}"),
            format!("--end={end}"),
            // Kubernetes expands the variable it sets in every pod of an
            // Indexed Job; `etl` needs no shell to pick its day.
            "--day-index=$(JOB_COMPLETION_INDEX)".into(),
            "--log-format=json".into(),
        ];
        let annotations = json!({"etl/days": format!("{start} to {end}")});
        let body = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": self.metadata(name, labels.clone(), Some(annotations)),
            "spec": {
                "completionMode": "Indexed",
                "completions": days,
                "parallelism": parallel.min(days),
                // Each day has its own retries: one bad day does not use up
                // the others'.
                "backoffLimitPerIndex": self.retries,
                "podFailurePolicy": pod_failure_policy(),
                "template": self.pod_template(labels, args),
            },
        });
        Manifest {
            kind: "Job",
            name: name.into(),
            body,
        }
    }

    /// The pod every Job runs: `etl args`, the project mounted read-only in
    /// a writable root, the identity from its Secret.
    fn pod_template(&self, labels: Value, args: Vec<String>) -> Value {
        let root_file = |path: &str| format!("{ROOT}/{path}");
        let mut env = vec![
            json!({"name": "ETL_PROJECT", "value": root_file(&self.project_file)}),
            json!({"name": "ETL_PROFILE", "value": self.profile}),
        ];
        let mut mounts = vec![json!({"name": "work", "mountPath": ROOT})];
        mounts.extend(self.files.iter().map(|f| {
            json!({
                "name": "project",
                "mountPath": root_file(&f.path),
                "subPath": f.path,
                "readOnly": true,
            })
        }));
        mounts.push(json!({"name": "tmp", "mountPath": "/tmp"}));
        let items: Vec<Value> = self
            .files
            .iter()
            .map(|f| json!({"key": f.key, "path": f.path}))
            .collect();
        let mut volumes = vec![
            json!({"name": "project", "configMap": {"name": CONFIG_MAP, "items": items}}),
            json!({"name": "work", "emptyDir": {}}),
            json!({"name": "tmp", "emptyDir": {}}),
        ];
        if let Some(secret) = &self.identity_secret {
            env.push(json!({
                "name": "ETL_AGE_IDENTITY_FILE",
                "value": format!("{IDENTITY_DIR}/{IDENTITY_KEY}"),
            }));
            mounts
                .push(json!({"name": "age-identity", "mountPath": IDENTITY_DIR, "readOnly": true}));
            volumes.push(json!({
                "name": "age-identity",
                "secret": {
                    "secretName": secret,
                    "items": [{"key": IDENTITY_KEY, "path": IDENTITY_KEY}],
                    // 0440: the owner and `fsGroup` read it, nobody else.
                    "defaultMode": 0o440,
                },
            }));
        }
        for s in &self.scratch {
            mounts.push(json!({"name": s.volume, "mountPath": s.path}));
            volumes.push(json!({"name": s.volume, "emptyDir": {}}));
        }
        let mut spec = Map::new();
        spec.insert("restartPolicy".into(), "Never".into());
        if let Some(sa) = &self.service_account {
            spec.insert("serviceAccountName".into(), sa.as_str().into());
        }
        // `etl` never calls the Kubernetes API.
        spec.insert("automountServiceAccountToken".into(), false.into());
        // Time for a stopped day to be recorded `interrupted` and its lease
        // given back.
        spec.insert("terminationGracePeriodSeconds".into(), 60.into());
        spec.insert(
            "securityContext".into(),
            json!({
                "runAsNonRoot": true,
                "runAsUser": USER,
                "runAsGroup": USER,
                "fsGroup": USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            }),
        );
        spec.insert(
            "containers".into(),
            json!([{
                "name": CONTAINER,
                "image": self.image,
                "command": ["etl"],
                "args": args,
                "workingDir": ROOT,
                "env": env,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": mounts,
            }]),
        );
        spec.insert("volumes".into(), volumes.into());
        json!({"metadata": {"labels": labels}, "spec": spec})
    }
}

/// A usage error fails the Job at once (retrying cannot fix a bad spec or
/// key); a pod evicted or preempted is replaced without using a retry.
fn pod_failure_policy() -> Value {
    json!({
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [USAGE_EXIT]},
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ],
    })
}

/// The recommended labels, and the pipeline's.
fn labels(component: &str, pipeline: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("app.kubernetes.io/name".into(), "etl".into());
    m.insert("app.kubernetes.io/component".into(), component.into());
    if let Some(p) = pipeline {
        m.insert(PIPELINE_LABEL.into(), p.into());
    }
    Value::Object(m)
}
