//! Tokens: a fixed one for emulators, or Google's through `yup-oauth2`
//! (a service-account key held in memory, or application default
//! credentials).

use std::path::PathBuf;
use std::sync::Arc;

use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use serde_json::Value;

use super::BigQueryError;
use crate::credentials::ServiceAccount;

/// The OAuth scope for reading and writing BigQuery.
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

/// The token for an emulator, which wants a bearer token, not a valid one.
#[derive(Clone)]
pub(super) struct FixedToken;

#[async_trait::async_trait]
impl Authenticator for FixedToken {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok("emulator".to_owned())
    }
}

type YupAuthenticator = gcp_bigquery_client::yup_oauth2::authenticator::Authenticator<
    <gcp_bigquery_client::yup_oauth2::DefaultHyperClientBuilder as gcp_bigquery_client::yup_oauth2::HyperClientBuilder>::Connector,
>;

/// Application default credentials through `yup-oauth2`, which caches and
/// refreshes the token.
#[derive(Clone)]
struct DefaultCredentials(YupAuthenticator);

#[async_trait::async_trait]
impl Authenticator for DefaultCredentials {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok(self
            .0
            .token(&[SCOPE])
            .await?
            .token()
            .ok_or(BQError::NoToken)?
            .to_owned())
    }
}

const NEW_KEY_HINT: &str =
    "re-create the key with `gcloud iam service-accounts keys create` and encrypt it again";

/// Tokens for a service account whose key is held in memory.
pub(super) async fn service_account(
    a: &ServiceAccount,
) -> Result<Arc<dyn Authenticator>, BigQueryError> {
    use gcp_bigquery_client::yup_oauth2 as yup;
    // Neither message quotes the key: yup's parse error can hold its text.
    let fail = |what: &str| BigQueryError::Auth {
        message: format!(
            "service account {} (secret `{}`): {what}; {NEW_KEY_HINT}",
            a.client_email, a.secret
        ),
    };
    let key = yup::parse_service_account_key(a.json.expose().as_bytes())
        .map_err(|_| fail("the JSON is not a service-account key"))?;
    let auth = yup::ServiceAccountAuthenticator::builder(key)
        .build()
        .await
        .map_err(|_| fail("its private_key is not a PEM RSA key"))?;
    Ok(Arc::new(DefaultCredentials(auth)))
}

/// The authorized-user file of `gcloud auth application-default login`, a
/// service-account key, or the metadata server, in the order of Google's
/// client libraries.
pub(super) async fn default_credentials() -> Result<Arc<dyn Authenticator>, BigQueryError> {
    use gcp_bigquery_client::yup_oauth2 as yup;
    let fail = |e: &dyn std::fmt::Display| BigQueryError::Auth {
        message: format!("{e}; {ADC_HINT}"),
    };
    let path = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                PathBuf::from(h).join(".config/gcloud/application_default_credentials.json")
            })
        });
    if let Some(path) = path.filter(|p| p.is_file()) {
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| fail(&format!("cannot read `{}`: {e}", path.display())))?;
        let kind: Value = serde_json::from_str(&text)
            .map_err(|e| fail(&format!("`{}` is not JSON: {e}", path.display())))?;
        if kind["type"].as_str() == Some("authorized_user") {
            let secret: yup::authorized_user::AuthorizedUserSecret = serde_json::from_str(&text)
                .map_err(|e| fail(&format!("`{}`: {e}", path.display())))?;
            let auth = yup::AuthorizedUserAuthenticator::builder(secret)
                .build()
                .await
                .map_err(|e| fail(&e))?;
            return Ok(Arc::new(DefaultCredentials(auth)));
        }
    }
    let auth = match yup::ApplicationDefaultCredentialsAuthenticator::builder(
        yup::ApplicationDefaultCredentialsFlowOpts::default(),
    )
    .await
    {
        yup::authenticator::ApplicationDefaultCredentialsTypes::ServiceAccount(b) => {
            b.build().await
        }
        yup::authenticator::ApplicationDefaultCredentialsTypes::InstanceMetadata(b) => {
            b.build().await
        }
    }
    .map_err(|e| fail(&e))?;
    Ok(Arc::new(DefaultCredentials(auth)))
}

const ADC_HINT: &str = "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file";

pub(super) fn auth_message(e: &BQError) -> String {
    match e {
        BQError::YupAuthError(_) | BQError::AuthError(_) | BQError::NoToken => {
            format!("{e}; {ADC_HINT}")
        }
        _ => e.to_string(),
    }
}
