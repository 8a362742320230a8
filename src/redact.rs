//! Keeping secrets out of messages.
//!
//! A connection string may carry a password. Everything that can reach a
//! terminal, a log or a file shows it through [`RedactedUri`], so a leak needs
//! a deliberate act rather than a forgotten `{}`.

use std::fmt;

/// What a hidden value prints as.
pub const MASK: &str = "***";

/// A URI that displays with its password (and any `password=`-like query
/// parameter) replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUri<'a>(pub &'a str);

impl fmt::Display for RedactedUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_uri(self.0))
    }
}

impl fmt::Debug for RedactedUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_uri(self.0))
    }
}

/// Replaces the password of `scheme://user:password@host` and the values of
/// secret-looking query parameters. MongoDB URIs list several hosts after
/// the `@`, which `url::Url` rejects, so this works on the text itself.
pub fn redact_uri(uri: &str) -> String {
    let mut out = uri.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let rest = &out[auth_start..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                let from = auth_start + colon + 1;
                let to = auth_start + at;
                out.replace_range(from..to, MASK);
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_param(k) => format!("{k}={MASK}"),
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{head}{}", params.join("&"));
    }
    out
}

/// Hides the password of every `scheme://user:password@` in free text, such
/// as a driver's error message that quotes the connection string.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn is_secret_param(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "sig", "key"]
        .iter()
        .any(|s| k.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_password_but_keeps_the_rest() {
        assert_eq!(
            redact_uri("mongodb://etl:s3cr3t@db1:27017,db2:27017/shop?replicaSet=rs0"),
            "mongodb://etl:***@db1:27017,db2:27017/shop?replicaSet=rs0"
        );
        assert_eq!(
            redact_uri("mongodb+srv://etl:p%40ss@cluster0.example.net/?authSource=admin"),
            "mongodb+srv://etl:***@cluster0.example.net/?authSource=admin"
        );
    }

    #[test]
    fn leaves_uris_without_secrets_alone() {
        let u = "mongodb://127.0.0.1:27017/?directConnection=true";
        assert_eq!(redact_uri(u), u);
        assert_eq!(redact_uri("mongodb://user@host/"), "mongodb://user@host/");
    }

    #[test]
    fn hides_every_password_in_free_text() {
        assert_eq!(
            redact_text(
                r#"Unable to recognise URL "ftp://etl:hunter2@files.example/x", nor mongodb://a:b@h1,h2/db"#
            ),
            r#"Unable to recognise URL "ftp://etl:***@files.example/x", nor mongodb://a:***@h1,h2/db"#
        );
        assert_eq!(redact_text("no urls here: a:b@c"), "no urls here: a:b@c");
    }

    #[test]
    fn hides_secret_query_parameters() {
        assert_eq!(
            redact_uri("https://h/x?sig=abc&x=1&AccessKey=zz"),
            "https://h/x?sig=***&x=1&AccessKey=***"
        );
    }
}
