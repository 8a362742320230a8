//! Which credentials a Google connection (a `gs://` store, BigQuery) uses,
//! and what the run summary says of every connection.
//!
//! For Google the choice is made once per connection, in this order:
//! 1. the connection's `credentials` secret: a service-account JSON,
//!    decrypted and kept in memory, never written to a file;
//! 2. an emulator `endpoint` on a BigQuery connection: a fixed token;
//! 3. application default credentials, as Google's client libraries find
//!    them: `GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's
//!    `application_default_credentials.json`, then the metadata server.
//!
//! [`Source`] says which one was used; the run summary prints it.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::secrets::Secret;

/// A service-account key held in memory, with the secret it came from.
pub struct ServiceAccount {
    /// The secret's name.
    pub secret: String,
    /// The account, `name@project.iam.gserviceaccount.com`.
    pub client_email: String,
    /// The whole JSON key.
    pub json: Secret,
    /// The key says `"disable_oauth": true`, as one made for an emulator
    /// (`gcs_base_url` pointing at it) does: `object_store` then sends no
    /// token at all.
    pub disable_oauth: bool,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ServiceAccount({} from `{}`)",
            self.client_email, self.secret
        )
    }
}

/// A secret that is not a usable service-account key. The message never
/// quotes the secret's text.
#[derive(Debug, thiserror::Error)]
#[error("secret `{secret}` is not a GCP service-account key: {reason}")]
pub struct KeyError {
    /// The secret's name.
    pub secret: String,
    /// What is wrong, without values.
    pub reason: String,
}

impl KeyError {
    /// What to do about it.
    pub const HINT: &'static str = "the secret should hold the JSON key file of `gcloud iam service-accounts keys create`, encrypted with `etl secrets encrypt`";
}

impl ServiceAccount {
    /// Checks that `json`, the value of secret `secret`, is a service-account
    /// key: JSON with `"type": "service_account"`, a `client_email` and a
    /// `private_key`.
    pub fn from_secret(secret: &str, json: Secret) -> Result<Self, KeyError> {
        let fail = |reason: String| KeyError {
            secret: secret.to_owned(),
            reason,
        };
        // serde_json quotes values in type errors; report only positions.
        let v: serde_json::Value = serde_json::from_str(json.expose()).map_err(|e| {
            fail(format!(
                "not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let field = |name: &str| v.get(name).and_then(|x| x.as_str()).unwrap_or("");
        if field("type") != "service_account" {
            return Err(fail(
                "its `type` is not `service_account` (an authorized-user file belongs in GOOGLE_APPLICATION_CREDENTIALS)".into(),
            ));
        }
        for required in ["client_email", "private_key"] {
            if field(required).is_empty() {
                return Err(fail(format!("`{required}` is missing or empty")));
            }
        }
        Ok(Self {
            secret: secret.to_owned(),
            client_email: field("client_email").to_owned(),
            disable_oauth: v.get("disable_oauth").and_then(|x| x.as_bool()) == Some(true),
            json,
        })
    }
}

/// Where application default credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adc {
    /// The file named by `GOOGLE_APPLICATION_CREDENTIALS`.
    EnvFile(PathBuf),
    /// gcloud's file, from `gcloud auth application-default login`.
    Gcloud(PathBuf),
    /// The metadata server (GCE, GKE, Cloud Run).
    MetadataServer,
}

impl Adc {
    /// Finds them the way Google's libraries do. `env` reads a variable and
    /// `is_file` checks a path: the process's, or a test's.
    pub fn find(
        env: impl Fn(&str) -> Option<OsString>,
        is_file: impl Fn(&PathBuf) -> bool,
    ) -> Self {
        if let Some(p) = env("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()) {
            return Adc::EnvFile(PathBuf::from(p));
        }
        if let Some(home) = env("HOME") {
            let p = PathBuf::from(home).join(".config/gcloud/application_default_credentials.json");
            if is_file(&p) {
                return Adc::Gcloud(p);
            }
        }
        Adc::MetadataServer
    }

    /// [`Adc::find`] in this process.
    pub fn from_process() -> Self {
        Self::find(|k| std::env::var_os(k), |p| p.is_file())
    }
}

/// The credentials a connection used, for the run summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A service-account key from a secret.
    ServiceAccount {
        /// The secret.
        secret: String,
        /// The account.
        client_email: String,
        /// The key is held but not sent: the endpoint is an emulator.
        emulator: bool,
    },
    /// Application default credentials.
    ApplicationDefault(Adc),
    /// An emulator endpoint, which takes a fixed token.
    Emulator,
    /// Local files or memory: nothing to authenticate.
    NotNeeded,
    /// `s3://` or `az://`: object_store's own environment chain.
    StoreEnvironment(&'static str),
    /// A MongoDB URI, which carries its own credentials, and the secrets
    /// its template reads.
    MongoUri(Vec<String>),
}

impl Source {
    /// The source for a BigQuery connection.
    pub fn bigquery(
        account: Option<&ServiceAccount>,
        endpoint: Option<&str>,
        adc: impl FnOnce() -> Adc,
    ) -> Self {
        match (account, endpoint) {
            (Some(a), e) => Source::ServiceAccount {
                secret: a.secret.clone(),
                client_email: a.client_email.clone(),
                emulator: e.is_some(),
            },
            (None, Some(_)) => Source::Emulator,
            (None, None) => Source::ApplicationDefault(adc()),
        }
    }

    /// The source for an object store at `url`.
    pub fn object_store(
        account: Option<&ServiceAccount>,
        url: &str,
        adc: impl FnOnce() -> Adc,
    ) -> Self {
        let scheme = url.split_once("://").map_or("file", |(s, _)| s);
        match (scheme, account) {
            ("gs", Some(a)) => Source::ServiceAccount {
                secret: a.secret.clone(),
                client_email: a.client_email.clone(),
                emulator: a.disable_oauth,
            },
            ("gs", None) => Source::ApplicationDefault(adc()),
            ("s3" | "s3a", _) => Source::StoreEnvironment("AWS"),
            ("az" | "abfs" | "abfss" | "azure", _) => Source::StoreEnvironment("Azure"),
            ("http" | "https", _) => Source::StoreEnvironment("HTTP"),
            _ => Source::NotNeeded,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::ServiceAccount {
                secret,
                client_email,
                emulator,
            } => {
                write!(f, "service account {client_email} (secret `{secret}`)")?;
                if *emulator {
                    f.write_str(", not sent: the endpoint is an emulator")?;
                }
                Ok(())
            }
            Source::ApplicationDefault(Adc::EnvFile(p)) => write!(
                f,
                "application default credentials: GOOGLE_APPLICATION_CREDENTIALS ({})",
                p.display()
            ),
            Source::ApplicationDefault(Adc::Gcloud(p)) => {
                write!(
                    f,
                    "application default credentials: gcloud ({})",
                    p.display()
                )
            }
            Source::ApplicationDefault(Adc::MetadataServer) => {
                f.write_str("application default credentials: the metadata server")
            }
            Source::Emulator => f.write_str("none: the endpoint is an emulator"),
            Source::NotNeeded => f.write_str("none needed: local files"),
            Source::StoreEnvironment(cloud) => {
                write!(f, "{cloud} credentials from the environment (object_store)")
            }
            Source::MongoUri(secrets) if secrets.is_empty() => {
                f.write_str("the URI as written in the project file")
            }
            Source::MongoUri(secrets) => {
                let names: Vec<String> = secrets.iter().map(|s| format!("`{s}`")).collect();
                write!(f, "the URI, with secret {}", names.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::new(text.to_owned())
    }

    fn account() -> ServiceAccount {
        ServiceAccount::from_secret(
            "gcp_sa",
            secret(r#"{"type":"service_account","client_email":"etl@acme.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----MARKER"}"#),
        )
        .unwrap()
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn a_secret_service_account_wins_everywhere() {
        let a = account();
        let adc = || panic!("application default credentials are not looked up");
        assert_eq!(
            Source::bigquery(Some(&a), None, adc).to_string(),
            "service account etl@acme.iam.gserviceaccount.com (secret `gcp_sa`)"
        );
        assert_eq!(
            Source::object_store(Some(&a), "gs://lake/raw", adc).to_string(),
            "service account etl@acme.iam.gserviceaccount.com (secret `gcp_sa`)"
        );
        assert_eq!(
            Source::bigquery(Some(&a), Some("http://127.0.0.1:9050"), adc).to_string(),
            "service account etl@acme.iam.gserviceaccount.com (secret `gcp_sa`), not sent: the endpoint is an emulator"
        );
        assert_eq!(
            format!("{a:?}"),
            "ServiceAccount(etl@acme.iam.gserviceaccount.com from `gcp_sa`)",
            "Debug shows the account, never the key"
        );
    }

    #[test]
    fn a_key_made_for_an_emulator_says_it_sends_no_token() {
        let key = r#"{"type":"service_account","client_email":"etl-local@etl-local.iam.gserviceaccount.com","private_key":"unused","gcs_base_url":"http://127.0.0.1:4443","disable_oauth":true}"#;
        let a = ServiceAccount::from_secret("gcs_local", secret(key)).unwrap();
        assert!(a.disable_oauth);
        assert_eq!(
            Source::object_store(Some(&a), "gs://etl-local-lake", || unreachable!()).to_string(),
            "service account etl-local@etl-local.iam.gserviceaccount.com (secret `gcs_local`), not sent: the endpoint is an emulator"
        );
        assert!(!account().disable_oauth, "a production key sends its token");
    }

    #[test]
    fn without_a_secret_application_default_credentials_are_found_in_order() {
        let env_file = |k: &str| match k {
            "GOOGLE_APPLICATION_CREDENTIALS" => Some("/keys/sa.json".into()),
            "HOME" => Some("/home/u".into()),
            _ => None,
        };
        let home = |k: &str| (k == "HOME").then(|| OsString::from("/home/u"));
        let gcloud = PathBuf::from("/home/u/.config/gcloud/application_default_credentials.json");
        assert_eq!(
            Adc::find(env_file, |_| true),
            Adc::EnvFile("/keys/sa.json".into())
        );
        assert_eq!(
            Adc::find(home, |p| *p == gcloud),
            Adc::Gcloud(gcloud.clone())
        );
        assert_eq!(Adc::find(home, |_| false), Adc::MetadataServer);
        assert_eq!(Adc::find(no_env, |_| true), Adc::MetadataServer);
        assert_eq!(
            Source::bigquery(None, None, || Adc::find(home, |_| false)).to_string(),
            "application default credentials: the metadata server"
        );
        assert_eq!(
            Source::object_store(None, "gs://lake", || Adc::find(env_file, |_| true)).to_string(),
            "application default credentials: GOOGLE_APPLICATION_CREDENTIALS (/keys/sa.json)"
        );
    }

    #[test]
    fn emulators_and_local_files_need_none() {
        let adc = || panic!("not looked up");
        assert_eq!(
            Source::bigquery(None, Some("http://127.0.0.1:9050"), adc),
            Source::Emulator
        );
        assert_eq!(
            Source::object_store(None, "file:///tmp/lake", adc),
            Source::NotNeeded
        );
        assert_eq!(
            Source::object_store(None, "memory://", adc),
            Source::NotNeeded
        );
        // A service account is for Google only; S3 keeps its own chain.
        assert_eq!(
            Source::object_store(Some(&account()), "s3://bucket", adc).to_string(),
            "AWS credentials from the environment (object_store)"
        );
    }

    #[test]
    fn mongo_uris_say_which_secrets_they_read() {
        assert_eq!(
            Source::MongoUri(vec!["mongo_uri".into()]).to_string(),
            "the URI, with secret `mongo_uri`"
        );
        assert_eq!(
            Source::MongoUri(vec![]).to_string(),
            "the URI as written in the project file"
        );
    }

    #[test]
    fn a_bad_key_is_described_without_its_text() {
        let cases = [
            ("{not json MARKER", "not JSON (line 1, column 2)"),
            (
                r#"{"type":"authorized_user","refresh_token":"MARKER"}"#,
                "its `type` is not `service_account`",
            ),
            (
                r#"{"type":"service_account","private_key":"MARKER"}"#,
                "`client_email` is missing or empty",
            ),
            (
                r#"{"type":"service_account","client_email":"a@b","private_key":""}"#,
                "`private_key` is missing or empty",
            ),
        ];
        for (text, reason) in cases {
            let e = ServiceAccount::from_secret("gcp_sa", secret(text))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!(
                    "secret `gcp_sa` is not a GCP service-account key: {reason}"
                )),
                "{e}"
            );
            assert!(!e.contains("MARKER"), "{e}");
        }
    }
}
