//! Printing diagnostics: `error: file:line:col: path: message` (or
//! `warning: ...`), then a hint.
//!
//! No colour: the output reads the same in a terminal, a CI log or a file,
//! and `NO_COLOR` has nothing to turn off.

use std::fmt::Write;

use crate::spec::Diagnostic;

/// The human form of a list of diagnostics.
pub fn human(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let _ = writeln!(
            out,
            "{}: {}:{}:{}: {}: {}",
            d.severity,
            d.file.display(),
            d.line,
            d.column,
            d.path,
            d.message
        );
        if let Some(h) = &d.hint {
            let _ = writeln!(out, "\nhint: {h}");
        }
        out.push('\n');
    }
    out
}

/// Prints diagnostics to stderr.
pub fn print_human(diags: &[Diagnostic]) {
    eprint!("{}", human(diags));
}

/// The JSON form: one array, for CI and editors.
pub fn json(diags: &[Diagnostic]) -> String {
    serde_json::to_string_pretty(diags).expect("diagnostics serialize") + "\n"
}
