//! The lab file: its types, decoding with positions, and validation.
//!
//! Nothing here touches the kernel or needs root.

mod decode;
pub mod exercise;
pub mod expect;
#[cfg(test)]
mod netpol_tests;
#[cfg(test)]
mod service_tests;
#[cfg(test)]
mod tests;
mod types;
mod validate;
mod yaml;

pub use decode::{default_lab_name, KINDS};
pub use types::*;
pub use validate::{did_you_mean, is_dns1123_label, is_dns1123_subdomain, is_iana_svc_name};

use std::fmt;
use std::path::Path;

/// The built-in lab: two nodes and the seed's two pods, one per node.
pub const DEMO: &str = include_str!("demo.yaml");

/// What a lab decoded from `DEMO` gives as its source.
pub const DEMO_SOURCE: &str = "built-in demo lab";

/// Decode and validate a lab file. `source` names it in messages.
///
/// Every problem is reported, sorted by position, not just the first.
pub fn parse(source: &str, text: &str) -> Result<LabFile, LabError> {
    let docs = match yaml::parse_documents(text) {
        Ok(docs) => docs,
        Err(errors) => {
            let diagnostics = errors
                .into_iter()
                .map(|e| Diagnostic {
                    source: source.to_string(),
                    pos: e.pos,
                    field: e.field,
                    message: e.message,
                    hint: e.hint,
                })
                .collect();
            return Err(sorted(diagnostics));
        }
    };
    let mut decoded = decode::decode(source, &docs);
    let mut diagnostics = decoded.diags;
    decoded.file.warnings = validate::check(&decoded.file, &decoded.spans, &mut diagnostics);
    expect::check(&decoded.file, &mut diagnostics);
    if diagnostics.is_empty() {
        Ok(decoded.file)
    } else {
        Err(sorted(diagnostics))
    }
}

/// Read and parse a lab file.
pub fn load(path: &Path) -> Result<LabFile, LabError> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&source, &text),
        Err(e) => Err(LabError {
            diagnostics: vec![Diagnostic {
                source,
                pos: Pos { line: 1, col: 1 },
                field: "file".into(),
                message: format!("cannot read the lab file: {e}"),
                hint: None,
            }],
        }),
    }
}

fn sorted(mut diagnostics: Vec<Diagnostic>) -> LabError {
    diagnostics.sort_by_key(|d| (d.pos.line, d.pos.col));
    LabError { diagnostics }
}

/// One problem found in a lab file, pointing at the line to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it.
    pub source: String,
    pub pos: Pos,
    /// Dotted path of the field, e.g. `spec.containers[0].ports[0].containerPort`.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.source, self.pos.line, self.pos.col, self.field, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a lab file (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LabError {}
