//! Secrets kept in `age` files and decrypted in memory at the moment of use.
//!
//! The project file maps names to `.age` files; templates read them with
//! `secret("name")`. The key comes from the environment, never from a file
//! in the repository: an identity file (`ETL_AGE_IDENTITY_FILE`), an
//! identity string (`ETL_AGE_IDENTITY`, for CI secret stores), or a
//! passphrase (`ETL_AGE_PASSPHRASE`). Plaintext never touches the disk, and
//! [`Secret`] prints as `***`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;

use age::secrecy::{ExposeSecret, SecretString};

use crate::redact::MASK;
use crate::template::SecretSource;

/// A decrypted value. Debug and Display print `***`; only
/// [`Secret::expose`] gives the text.
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a plaintext value; it is zeroed when dropped.
    pub fn new(plaintext: String) -> Self {
        Secret(SecretString::from(plaintext))
    }

    /// The plaintext. Call it where the value is used, and nowhere else.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Why a secret could not be had. Every variant names the secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretError {
    /// The project file does not define the name.
    #[error("unknown secret `{name}` (known: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names defined, listed.
        known: String,
    },
    /// No key is configured.
    #[error("secret `{name}` cannot be decrypted: no age identity or passphrase is configured; set ETL_AGE_IDENTITY_FILE, ETL_AGE_IDENTITY or ETL_AGE_PASSPHRASE")]
    NoKey {
        /// The secret.
        name: String,
    },
    /// The configured key is not valid.
    #[error("the age key in {source_var} is not valid: {reason}")]
    BadKey {
        /// Where it came from.
        source_var: &'static str,
        /// Why.
        reason: String,
    },
    /// The key does not open the file.
    #[error("secret `{name}` ({file}) cannot be decrypted with the configured key: {reason}; was it encrypted to another recipient or passphrase?")]
    WrongKey {
        /// The secret.
        name: String,
        /// Its file.
        file: String,
        /// age's words.
        reason: String,
    },
    /// The file is not a whole age file.
    #[error("secret `{name}` ({file}) is not a valid age file: {reason}")]
    Corrupt {
        /// The secret.
        name: String,
        /// Its file.
        file: String,
        /// age's words.
        reason: String,
    },
    /// The file cannot be read.
    #[error("secret `{name}`: cannot read {file}: {reason}")]
    Io {
        /// The secret.
        name: String,
        /// Its file.
        file: String,
        /// Why.
        reason: String,
    },
}

impl SecretError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            SecretError::Unknown { .. } => "add it under `secrets:` in etl.yaml, or fix the name",
            SecretError::NoKey { .. } => "set ETL_AGE_IDENTITY_FILE to your identity file (`etl secrets keygen` makes one), ETL_AGE_IDENTITY to its text, or ETL_AGE_PASSPHRASE; see docs/security.md",
            SecretError::BadKey { .. } => "an identity is a line `AGE-SECRET-KEY-1…` as `etl secrets keygen` prints it",
            SecretError::WrongKey { .. } => "it was encrypted to other recipients or another passphrase; someone who can read it re-encrypts it to your recipient (`etl secrets encrypt --recipient age1…`)",
            SecretError::Corrupt { .. } => "the file is damaged or truncated; encrypt the plaintext again with `etl secrets encrypt`",
            SecretError::Io { .. } => "create it with `etl secrets encrypt --recipient age1… PLAINTEXT > FILE`, or fix `file:` under `secrets:` in etl.yaml",
        }
    }
}

/// The key that opens secrets.
pub enum Key {
    /// X25519 identities.
    Identities(Vec<age::x25519::Identity>),
    /// A passphrase (scrypt).
    Passphrase(SecretString),
}

impl Key {
    /// The key from the environment, if any: `ETL_AGE_IDENTITY_FILE`, then
    /// `ETL_AGE_IDENTITY`, then `ETL_AGE_PASSPHRASE`.
    pub fn from_env() -> Result<Option<Self>, SecretError> {
        if let Some(path) = std::env::var_os("ETL_AGE_IDENTITY_FILE") {
            let text = std::fs::read_to_string(&path).map_err(|e| SecretError::BadKey {
                source_var: "ETL_AGE_IDENTITY_FILE",
                reason: format!("cannot read {}: {e}", PathBuf::from(path).display()),
            })?;
            return parse_identities(&text, "ETL_AGE_IDENTITY_FILE").map(Some);
        }
        if let Ok(text) = std::env::var("ETL_AGE_IDENTITY") {
            return parse_identities(&text, "ETL_AGE_IDENTITY").map(Some);
        }
        Ok(std::env::var("ETL_AGE_PASSPHRASE")
            .ok()
            .map(|p| Key::Passphrase(SecretString::from(p))))
    }
}

/// Identities from text: one `AGE-SECRET-KEY-1…` per line; `#` comments.
pub fn parse_identities(text: &str, source_var: &'static str) -> Result<Key, SecretError> {
    let ids: Result<Vec<age::x25519::Identity>, _> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.parse::<age::x25519::Identity>())
        .collect();
    match ids {
        Ok(ids) if !ids.is_empty() => Ok(Key::Identities(ids)),
        Ok(_) => Err(SecretError::BadKey {
            source_var,
            reason: "it holds no AGE-SECRET-KEY-1 line".into(),
        }),
        // The parser's message may quote the key; say only what is wrong.
        Err(_) => Err(SecretError::BadKey {
            source_var,
            reason: "a line is not an AGE-SECRET-KEY-1 identity".into(),
        }),
    }
}

/// The project's secrets: names, files and the key.
pub struct SecretStore {
    files: BTreeMap<String, PathBuf>,
    key: Option<Key>,
}

impl SecretStore {
    /// Secrets `files` opened with `key`.
    pub fn new(files: BTreeMap<String, PathBuf>, key: Option<Key>) -> Self {
        Self { files, key }
    }

    /// Decrypts one secret, in memory.
    pub fn decrypt(&self, name: &str) -> Result<Secret, SecretError> {
        let Some(path) = self.files.get(name) else {
            let known = if self.files.is_empty() {
                "none are defined".to_owned()
            } else {
                self.files
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(SecretError::Unknown {
                name: name.to_owned(),
                known,
            });
        };
        let (file, bytes) = read_file(name, path)?;
        let Some(key) = &self.key else {
            return Err(SecretError::NoKey {
                name: name.to_owned(),
            });
        };
        decrypt_bytes(&bytes, key).map(Secret).map_err(|e| match e {
            DecryptFailure::WrongKey(reason) => SecretError::WrongKey {
                name: name.to_owned(),
                file,
                reason,
            },
            DecryptFailure::Corrupt(reason) => SecretError::Corrupt {
                name: name.to_owned(),
                file,
                reason,
            },
        })
    }
}

impl SecretSource for SecretStore {
    fn reveal(&self, name: &str) -> Result<String, String> {
        self.decrypt(name)
            .map(|s| s.expose().to_owned())
            .map_err(|e| e.to_string())
    }
}

/// How an age file is sealed, read from its header without decrypting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// With a passphrase (scrypt).
    Passphrase,
    /// To this many X25519 recipients (age does not store which).
    Recipients(usize),
}

impl fmt::Display for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sealed::Passphrase => f.write_str("age, passphrase (scrypt)"),
            Sealed::Recipients(1) => f.write_str("age, 1 X25519 recipient"),
            Sealed::Recipients(n) => write!(f, "age, {n} X25519 recipients"),
        }
    }
}

/// Reads an age file's header: is it one, and how is it sealed. Nothing is
/// decrypted; no key is needed.
pub fn inspect(bytes: &[u8]) -> Result<Sealed, String> {
    let decryptor = age::Decryptor::new_buffered(bytes).map_err(|e| e.to_string())?;
    if decryptor.is_scrypt() {
        return Ok(Sealed::Passphrase);
    }
    // The header is text up to its MAC line; each recipient is a stanza.
    let header = bytes
        .windows(4)
        .position(|w| w == b"\n---")
        .map_or(bytes, |end| &bytes[..end]);
    let stanzas = header
        .split(|b| *b == b'\n')
        .filter(|line| line.starts_with(b"-> X25519 "))
        .count();
    Ok(Sealed::Recipients(stanzas))
}

/// Checks that secret `name`'s file exists and is an age file, without
/// decrypting it.
pub fn check_file(name: &str, path: &std::path::Path) -> Result<Sealed, SecretError> {
    let (file, bytes) = read_file(name, path)?;
    inspect(&bytes).map_err(|reason| SecretError::Corrupt {
        name: name.to_owned(),
        file,
        reason,
    })
}

/// Secret `name`'s file: its name for messages, and its bytes.
fn read_file(name: &str, path: &std::path::Path) -> Result<(String, Vec<u8>), SecretError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| SecretError::Io {
        name: name.to_owned(),
        file: file.clone(),
        reason: e.to_string(),
    })?;
    Ok((file, bytes))
}

enum DecryptFailure {
    WrongKey(String),
    Corrupt(String),
}

fn decrypt_bytes(bytes: &[u8], key: &Key) -> Result<SecretString, DecryptFailure> {
    let corrupt = |e: &dyn fmt::Display| DecryptFailure::Corrupt(e.to_string());
    let decryptor = age::Decryptor::new_buffered(bytes).map_err(|e| corrupt(&e))?;
    let mut reader = match key {
        Key::Identities(ids) => decryptor.decrypt(ids.iter().map(|i| i as &dyn age::Identity)),
        Key::Passphrase(p) => {
            let id = age::scrypt::Identity::new(p.clone());
            decryptor.decrypt(std::iter::once(&id as &dyn age::Identity))
        }
    }
    .map_err(|e| match e {
        age::DecryptError::NoMatchingKeys
        | age::DecryptError::DecryptionFailed
        | age::DecryptError::KeyDecryptionFailed => DecryptFailure::WrongKey(e.to_string()),
        other => corrupt(&other),
    })?;
    let mut out = String::new();
    reader.read_to_string(&mut out).map_err(|e| corrupt(&e))?;
    Ok(SecretString::from(out))
}

/// Encrypts `plaintext` to X25519 recipients (`age1…`).
pub fn encrypt_to(
    plaintext: &[u8],
    recipients: &[age::x25519::Recipient],
) -> Result<Vec<u8>, String> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| e.to_string())?;
    write_all(encryptor, plaintext)
}

/// Encrypts `plaintext` with a passphrase (scrypt).
pub fn encrypt_with_passphrase(
    plaintext: &[u8],
    passphrase: SecretString,
) -> Result<Vec<u8>, String> {
    write_all(age::Encryptor::with_user_passphrase(passphrase), plaintext)
}

fn write_all(encryptor: age::Encryptor, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut w = encryptor.wrap_output(&mut out).map_err(|e| e.to_string())?;
    w.write_all(plaintext).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(dir: &std::path::Path, bytes: &[u8], key: Option<Key>) -> SecretStore {
        let f = dir.join("mongo_uri.age");
        std::fs::write(&f, bytes).unwrap();
        SecretStore::new(BTreeMap::from([("mongo_uri".to_owned(), f)]), key)
    }

    #[test]
    fn round_trip_with_an_identity() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let bytes = encrypt_to(b"mongodb://etl:MARKER@db/", &[id.to_public()]).unwrap();
        assert!(
            !bytes.windows(6).any(|w| w == b"MARKER"),
            "the file holds no plaintext"
        );
        let key = parse_identities(id.to_string().expose_secret(), "ETL_AGE_IDENTITY").unwrap();
        let s = store_with(dir.path(), &bytes, Some(key))
            .decrypt("mongo_uri")
            .unwrap();
        assert_eq!(s.expose(), "mongodb://etl:MARKER@db/");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }

    #[test]
    fn round_trip_with_a_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let bytes =
            encrypt_with_passphrase(b"s3cr3t", SecretString::from("correct horse".to_owned()))
                .unwrap();
        let ok = store_with(
            dir.path(),
            &bytes,
            Some(Key::Passphrase(SecretString::from(
                "correct horse".to_owned(),
            ))),
        );
        assert_eq!(ok.decrypt("mongo_uri").unwrap().expose(), "s3cr3t");
        let bad = store_with(
            dir.path(),
            &bytes,
            Some(Key::Passphrase(SecretString::from("wrong".to_owned()))),
        );
        let e = bad.decrypt("mongo_uri").unwrap_err().to_string();
        assert!(e.starts_with("secret `mongo_uri` ("), "{e}");
        assert!(
            e.contains("cannot be decrypted with the configured key"),
            "{e}"
        );
    }

    #[test]
    fn headers_tell_how_a_file_is_sealed_without_a_key() {
        let a = age::x25519::Identity::generate().to_public();
        let b = age::x25519::Identity::generate().to_public();
        assert_eq!(
            inspect(&encrypt_to(b"x", &[a.clone(), b]).unwrap()),
            Ok(Sealed::Recipients(2))
        );
        assert_eq!(
            inspect(&encrypt_to(b"x", &[a]).unwrap())
                .unwrap()
                .to_string(),
            "age, 1 X25519 recipient"
        );
        let p = encrypt_with_passphrase(b"x", SecretString::from("pw".to_owned())).unwrap();
        assert_eq!(inspect(&p), Ok(Sealed::Passphrase));
        assert!(inspect(b"age-encryption.org/v1\n-> X25519").is_err());
        let dir = tempfile::tempdir().unwrap();
        let e = check_file("gcp_sa", &dir.path().join("gcp_sa.age"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("secret `gcp_sa`: cannot read "), "{e}");
    }

    #[test]
    fn every_failure_names_the_secret_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let bytes = encrypt_to(b"x", &[id.to_public()]).unwrap();
        let key = |i: &age::x25519::Identity| {
            Some(parse_identities(i.to_string().expose_secret(), "ETL_AGE_IDENTITY").unwrap())
        };

        // Recipient does not match.
        let e = store_with(dir.path(), &bytes, key(&other))
            .decrypt("mongo_uri")
            .unwrap_err();
        assert!(matches!(e, SecretError::WrongKey { .. }), "{e}");
        // No key configured.
        let e = store_with(dir.path(), &bytes, None)
            .decrypt("mongo_uri")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("secret `mongo_uri` cannot be decrypted: no age identity"),
            "{e}"
        );
        // Truncated and corrupt files.
        let e = store_with(dir.path(), &bytes[..bytes.len() / 2], key(&id))
            .decrypt("mongo_uri")
            .unwrap_err();
        assert!(
            matches!(
                e,
                SecretError::Corrupt { .. } | SecretError::WrongKey { .. }
            ),
            "{e}"
        );
        let e = store_with(dir.path(), b"not an age file", key(&id))
            .decrypt("mongo_uri")
            .unwrap_err();
        assert!(matches!(e, SecretError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("is not a valid age file"), "{e}");
        // Unknown name.
        let e = store_with(dir.path(), &bytes, key(&id))
            .decrypt("gcp_sa")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "unknown secret `gcp_sa` (known: `mongo_uri`)");
        // A malformed identity, without echoing it.
        let e = parse_identities("AGE-SECRET-KEY-1NOTAKEY", "ETL_AGE_IDENTITY")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(e, "the age key in ETL_AGE_IDENTITY is not valid: a line is not an AGE-SECRET-KEY-1 identity");
    }
}
