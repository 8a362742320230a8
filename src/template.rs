//! Templates in paths, table names and connection fields.
//!
//! One strict minijinja environment: an undefined variable is an error, never
//! an empty string, because an empty path segment silently writes a day's
//! data to the wrong object. Variables: `ds`, `ds_nodash`, `start`, `end`,
//! `pipeline`, `collection`; functions `env("NAME")` (or `env("NAME", "default")`)
//! and `secret("name")`.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

/// The variables a template may use. Connection fields get no partition
/// variables: they are the same for every day.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Vars {
    /// The partition day, `2020-06-01`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ds: Option<String>,
    /// The partition day, `20200601`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ds_nodash: Option<String>,
    /// Partition start, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Partition end (exclusive), RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Pipeline name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// Source collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
}

impl Vars {
    /// Variables for one partition of a pipeline.
    pub fn partition(
        pipeline: &str,
        collection: &str,
        day: NaiveDate,
        start: DateTime<FixedOffset>,
        end: DateTime<FixedOffset>,
    ) -> Self {
        Self {
            ds: Some(day.format("%Y-%m-%d").to_string()),
            ds_nodash: Some(day.format("%Y%m%d").to_string()),
            start: Some(start.to_rfc3339()),
            end: Some(end.to_rfc3339()),
            pipeline: Some(pipeline.to_owned()),
            collection: Some(collection.to_owned()),
        }
    }
}

/// How `secret("name")` is answered.
pub trait SecretSource: Send + Sync {
    /// The secret's value, or an error message.
    fn reveal(&self, name: &str) -> Result<String, String>;
}

/// Answers `secret()` with `***` for every known name: enough to check and
/// display a spec without decrypting anything.
pub struct RedactedSecrets(pub BTreeSet<String>);

impl SecretSource for RedactedSecrets {
    fn reveal(&self, name: &str) -> Result<String, String> {
        if self.0.contains(name) {
            Ok(crate::redact::MASK.to_owned())
        } else {
            Err(unknown_secret(name, &self.0))
        }
    }
}

/// The names in `secret("name")` calls of a template, in order: what a
/// connection needs decrypted. Only literal names count, the only kind a
/// spec has reason to write.
pub fn secret_names(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find("secret(") {
        rest = rest[at + "secret(".len()..].trim_start();
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        if let Some(end) = rest[1..].find(quote) {
            names.push(rest[1..1 + end].to_owned());
            rest = &rest[1 + end..];
        }
    }
    names
}

/// The message for a secret name the project file does not define.
pub fn unknown_secret(name: &str, known: &BTreeSet<String>) -> String {
    let known = if known.is_empty() {
        "none are defined".to_owned()
    } else {
        known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("unknown secret `{name}` (known: {known})")
}

/// What `env("NAME")` does when NAME is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvMode {
    /// Fail: for plan and run, where the value is used.
    Strict,
    /// Render `<NAME>`: for validate, which may run where prod variables are
    /// not set.
    Lenient,
}

/// Looks up an environment variable; injected so tests need not touch the
/// process environment.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The template renderer.
pub struct Templates {
    env: Environment<'static>,
    secrets: Arc<dyn SecretSource>,
}

impl Templates {
    /// A strict environment reading variables through `lookup_env`.
    pub fn new(secrets: Arc<dyn SecretSource>, env_mode: EnvMode, lookup_env: EnvLookup) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_function(
            "env",
            move |name: String, default: Option<String>| match lookup_env(&name) {
                Some(v) => Ok(v),
                None if default.is_some() => Ok(default.unwrap_or_default()),
                None if env_mode == EnvMode::Lenient => Ok(format!("<{name}>")),
                None => Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("environment variable `{name}` is not set"),
                )),
            },
        );
        let source = secrets.clone();
        env.add_function("secret", move |name: String| {
            source
                .reveal(&name)
                .map_err(|m| minijinja::Error::new(ErrorKind::InvalidOperation, m))
        });
        Self { env, secrets }
    }

    /// Templates reading the process environment.
    pub fn from_process(secrets: Arc<dyn SecretSource>, env_mode: EnvMode) -> Self {
        Self::new(secrets, env_mode, Arc::new(|k| std::env::var(k).ok()))
    }

    /// A secret by name, outside any template: a connection's
    /// `credentials`.
    pub fn secret(&self, name: &str) -> Result<crate::secrets::Secret, String> {
        self.secrets.reveal(name).map(crate::secrets::Secret::new)
    }

    /// Renders one template.
    pub fn render(&self, template: &str, vars: &Vars) -> Result<String, String> {
        self.env.render_str(template, vars).map_err(describe)
    }
}

/// A minijinja error in our message style: what failed, without the
/// template-name noise.
fn describe(e: minijinja::Error) -> String {
    match e.kind() {
        ErrorKind::UndefinedError => {
            let known = "`ds`, `ds_nodash`, `start`, `end`, `pipeline`, `collection`";
            format!("undefined variable in template (available here: {known}; functions `env()`, `secret()`)")
        }
        ErrorKind::SyntaxError => format!(
            "template syntax error: {}",
            e.detail().unwrap_or("invalid syntax")
        ),
        _ => e
            .detail()
            .map(str::to_owned)
            .unwrap_or_else(|| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates(mode: EnvMode) -> Templates {
        let secrets = Arc::new(RedactedSecrets(["mongo_uri".to_owned()].into()));
        Templates::new(
            secrets,
            mode,
            Arc::new(|k| (k == "BUCKET").then(|| "b1".to_owned())),
        )
    }

    fn day_vars() -> Vars {
        let start = DateTime::parse_from_rfc3339("2020-06-01T00:00:00+00:00").unwrap();
        let end = DateTime::parse_from_rfc3339("2020-06-02T00:00:00+00:00").unwrap();
        Vars::partition(
            "users",
            "users",
            NaiveDate::from_ymd_opt(2020, 6, 1).unwrap(),
            start,
            end,
        )
    }

    #[test]
    fn renders_partition_variables() {
        let t = templates(EnvMode::Strict);
        let out = t
            .render(
                "raw/{{ collection }}/dt={{ ds }}/{{ ds_nodash }}-{{ env('BUCKET') }}",
                &day_vars(),
            )
            .unwrap();
        assert_eq!(out, "raw/users/dt=2020-06-01/20200601-b1");
    }

    #[test]
    fn undefined_variable_is_an_error() {
        let t = templates(EnvMode::Strict);
        let e = t.render("x/{{ dss }}", &day_vars()).unwrap_err();
        assert!(e.starts_with("undefined variable in template"), "{e}");
        // Connection fields have no partition variables.
        assert!(t.render("{{ ds }}", &Vars::default()).is_err());
    }

    #[test]
    fn env_is_strict_in_run_and_lenient_in_validate() {
        let e = templates(EnvMode::Strict)
            .render("{{ env('NOPE') }}", &Vars::default())
            .unwrap_err();
        assert_eq!(e, "environment variable `NOPE` is not set");
        let ok = templates(EnvMode::Lenient)
            .render("{{ env('NOPE') }}", &Vars::default())
            .unwrap();
        assert_eq!(ok, "<NOPE>");
        let fallback = templates(EnvMode::Strict)
            .render("{{ env('NOPE', '27017') }}", &Vars::default())
            .unwrap();
        assert_eq!(fallback, "27017");
    }

    #[test]
    fn secret_calls_are_found_by_name() {
        assert_eq!(
            secret_names(
                "mongodb://u:{{ secret('pw') }}@h/?x={{ secret(\"b\") }}&y={{ env('S') }}"
            ),
            ["pw", "b"]
        );
        assert!(secret_names("{{ secret(name) }} secret(").is_empty());
    }

    #[test]
    fn secret_names_are_checked_and_values_masked() {
        let t = templates(EnvMode::Strict);
        assert_eq!(
            t.render("{{ secret('mongo_uri') }}", &Vars::default())
                .unwrap(),
            "***"
        );
        let e = t
            .render("{{ secret('mongo') }}", &Vars::default())
            .unwrap_err();
        assert_eq!(e, "unknown secret `mongo` (known: `mongo_uri`)");
    }
}
