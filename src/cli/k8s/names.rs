//! Kubernetes name rules: pipeline names (letters, digits, `_`, `-`)
//! become DNS-1123 labels, and the names given on the command line are
//! checked before they reach a manifest the API server would refuse.

use sha2::{Digest, Sha256};

/// A DNS-1123 label: lowercase letters, digits and `-`, starting and
/// ending with a letter or digit, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_dns_part(s)
}

/// A DNS-1123 subdomain: labels joined by `.`, at most 253 characters
/// (Secret, ConfigMap and ServiceAccount names).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_part)
}

fn is_dns_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A label value: at most 63 letters, digits, `-`, `_` or `.`, starting
/// and ending with a letter or digit.
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// `name` as a DNS-1123 label of at most `max` characters: lowercase,
/// every other character `-`, runs of `-` folded, no `-` at either end.
/// A longer name keeps its first characters and ends in six hex digits of
/// its sha256, so two long names that share a beginning stay apart.
pub fn dns_label(name: &str, max: usize) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    if !out.is_empty() && out.len() <= max {
        return out.to_owned();
    }
    let hash = hex::encode(Sha256::digest(name.as_bytes()));
    let keep = max.saturating_sub(7);
    let head = out[..out.len().min(keep)].trim_end_matches('-');
    if head.is_empty() {
        hash[..max.min(6)].to_owned()
    } else {
        format!("{head}-{}", &hash[..6])
    }
}

/// A pipeline's label value: its name when Kubernetes takes it as one,
/// else its DNS form.
pub fn pipeline_label(name: &str) -> String {
    if is_label_value(name) {
        name.to_owned()
    } else {
        dns_label(name, 63)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_names_become_dns_labels() {
        assert_eq!(dns_label("users", 48), "users");
        assert_eq!(dns_label("user_events", 48), "user-events");
        assert_eq!(dns_label("Shop__Orders", 48), "shop-orders");
        assert_eq!(dns_label("_staging_", 48), "staging");
        for name in ["user_events", "Shop__Orders", "_staging_", "a-b_c", "x"] {
            assert!(is_dns_label(&dns_label(name, 48)), "{name}");
        }
    }

    #[test]
    fn long_names_are_cut_with_a_hash_and_stay_distinct() {
        let a = "a_very_long_collection_name_that_goes_on_and_on_and_on_one";
        let b = "a_very_long_collection_name_that_goes_on_and_on_and_on_two";
        let (la, lb) = (dns_label(a, 30), dns_label(b, 30));
        assert!(la.len() <= 30 && lb.len() <= 30, "{la} {lb}");
        assert_ne!(la, lb);
        assert!(is_dns_label(&la) && is_dns_label(&lb), "{la} {lb}");
        assert!(la.starts_with("a-very-long-collection"), "{la}");
        // Nothing left of the name but separators: the hash alone.
        let only = dns_label("___", 30);
        assert_eq!(only.len(), 6);
        assert!(is_dns_label(&only), "{only}");
    }

    #[test]
    fn label_values_keep_the_pipeline_name_when_they_can() {
        assert_eq!(pipeline_label("user_events"), "user_events");
        assert_eq!(pipeline_label("_x"), "x");
        assert!(!is_label_value("_x"));
        assert!(is_dns_subdomain("etl-age-identity"));
        assert!(!is_dns_subdomain("Etl"));
        assert!(!is_dns_label("a.b"));
    }
}
