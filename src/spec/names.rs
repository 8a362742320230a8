//! Name and path rules shared by the checks in [`crate::plan`], the
//! flattener and the BigQuery sink: pipeline names, BigQuery column, dataset
//! and table names, and the plain JSONPaths that name one position in a
//! document. They sit here, below both, so that `flatten` depends only on
//! `spec` and `table`, never on `plan`.

/// A pipeline name: letters, digits, `_` and `-`, not empty.
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A BigQuery column name: letters, digits, `_`; not starting with a digit.
pub fn is_column_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 300
}

/// A BigQuery dataset name (letters, digits and `_`), or a table name when
/// `table` (`-` allowed too); at most 1024 characters.
pub fn is_bq_name(s: &str, table: bool) -> bool {
    !s.is_empty()
        && s.len() <= 1024
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (table && c == '-'))
}

/// Parses a JSONPath; the error says what was expected, and where, in one
/// line.
pub fn compile_jsonpath(p: &str) -> Result<(), String> {
    jsonpath_rust::parser::parse_json_path(p)
        .map(|_| ())
        .map_err(|e| {
            // The parser prints a multi-line pest report; keep its last line
            // (`= expected ...`) and the column it points at.
            let text = e.to_string();
            let expected = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("= "))
                .unwrap_or(text.as_str());
            let col = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("--> "))
                .and_then(|pos| pos.split(':').nth(1));
            match col {
                Some(c) => format!("invalid JSONPath `{p}`: {expected} at character {c}"),
                None => format!("invalid JSONPath `{p}`: {expected}"),
            }
        })
}

/// The keys of a JSONPath made only of names (`$.a.b`, `$['a b'].c`), or
/// None when it has wildcards, indexes or filters.
pub fn simple_path(p: &str) -> Option<Vec<String>> {
    compile_jsonpath(p).ok()?;
    let mut rest = p.strip_prefix('$')?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            let quote = if rest.starts_with("['") { "']" } else { "\"]" };
            let end = r.find(quote)?;
            out.push(r[..end].to_owned());
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() || key == "*" {
                return None;
            }
            out.push(key.to_owned());
            rest = &r[end..];
        } else {
            return None;
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_give_their_keys_and_others_none() {
        assert_eq!(
            simple_path("$.a['b c'][\"it's\"]"),
            Some(vec!["a".to_owned(), "b c".to_owned(), "it's".to_owned()])
        );
        for p in ["$", "$.a[0]", "$.*", "$..a", "a.b", "$.a[?(@.b)]"] {
            assert_eq!(simple_path(p), None, "{p}");
        }
    }

    #[test]
    fn bigquery_names_follow_bigquery_rules() {
        assert!(is_column_name("_ds") && is_column_name("a1"));
        assert!(!is_column_name("1a") && !is_column_name("a-b") && !is_column_name(""));
        assert!(!is_column_name(&"a".repeat(301)));
        assert!(is_bq_name("orders-2020", true) && !is_bq_name("orders-2020", false));
        assert!(is_identifier("users-v2") && !is_identifier("users v2"));
    }
}
