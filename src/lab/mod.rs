//! The lab file: its types, decoding with positions, and validation.
//!
//! Nothing here touches the kernel or needs root.

mod decode;
pub mod exercise;
pub mod expect;
#[cfg(test)]
mod hand_endpoints_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod netpol_tests;
#[cfg(test)]
mod probe_tests;
#[cfg(test)]
mod service_tests;
pub mod stored;
#[cfg(test)]
mod stored_tests;
#[cfg(test)]
mod tests;
mod types;
mod validate;
#[cfg(test)]
mod workloads_tests;
mod yaml;

pub use decode::{default_lab_name, KINDS};
pub use types::*;
pub use validate::{did_you_mean, is_dns1123_label, is_dns1123_subdomain, is_iana_svc_name};

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

/// The largest lab or exercise file podlab reads. The largest lab of the
/// curriculum is 6 KB and a generated lab of 10,000 services about 2 MB;
/// the limit keeps a wrong path (a log, an image, a device) from being read
/// into memory.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The built-in lab: two nodes and the seed's two pods, one per node.
pub const DEMO: &str = include_str!("demo.yaml");

/// What a lab decoded from `DEMO` gives as its source.
pub const DEMO_SOURCE: &str = "built-in demo lab";

/// Decode and validate a lab file. `source` names it in messages.
///
/// Every problem is reported, sorted by position, not just the first.
pub fn parse(source: &str, text: &str) -> Result<LabFile, LabError> {
    parse_with(source, text, &BTreeMap::new())
}

/// The identity of a manifest in [`parse_with`]'s overrides:
/// `Kind/namespace/name`, the namespace empty for a cluster-scoped kind
/// and `default` when a namespaced one names none.
pub fn object_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    let ns = match (namespace, decode::cluster_scoped(kind)) {
        (_, true) => "",
        (Some(ns), false) if !ns.is_empty() => ns,
        _ => "default",
    };
    format!("{kind}/{ns}/{name}")
}

/// The key of a decoded document, if it has a kind and a name.
fn doc_key(doc: &yaml::Node) -> Option<String> {
    let v = decode::to_json(doc);
    let kind = v.get("kind")?.as_str()?;
    let meta = v.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    Some(object_key(
        kind,
        meta.get("namespace").and_then(|n| n.as_str()),
        name,
    ))
}

/// [`parse`], with the lab's API writes laid over the file: a document
/// whose key is in `overrides` is left out, and every `Some` manifest is
/// added after the file's, so that kubectl's writes change the lab as
/// they would a cluster and are checked as strictly as the file is.
pub fn parse_with(
    source: &str,
    text: &str,
    overrides: &BTreeMap<String, Option<serde_json::Value>>,
) -> Result<LabFile, LabError> {
    let docs = match yaml::parse_documents(text) {
        Ok(docs) if docs.is_empty() => {
            return Err(no_documents(
                source,
                "lab",
                "a lab file starts with `apiVersion: podlab/v1alpha1` and `kind: Lab` (or is a Kubernetes manifest); labs/ has examples",
            ))
        }
        Ok(docs) => docs,
        Err(errors) => return Err(yaml_errors(source, errors)),
    };
    let docs = if overrides.is_empty() {
        docs
    } else {
        with_overrides(source, docs, overrides)?
    };
    let mut decoded = decode::decode(source, docs);
    let mut diagnostics = decoded.diags;
    // A document rejected whole (`kind: Pods`) leaves out objects that the
    // rest of the file refers to: every `expect` naming its pod, every
    // selector meant to find it would fail too. Those errors only follow
    // from the one that matters, so the checks across objects wait until
    // every document decodes.
    if !decoded.lost || diagnostics.is_empty() {
        decoded.file.warnings = validate::check(&decoded.file, &decoded.spans, &mut diagnostics);
        expect::check(&decoded.file, &mut diagnostics);
    }
    if diagnostics.is_empty() {
        Ok(decoded.file)
    } else {
        Err(sorted(diagnostics))
    }
}

fn yaml_errors(source: &str, errors: Vec<yaml::YamlError>) -> LabError {
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
    sorted(diagnostics)
}

fn with_overrides(
    source: &str,
    mut docs: Vec<yaml::Node>,
    overrides: &BTreeMap<String, Option<serde_json::Value>>,
) -> Result<Vec<yaml::Node>, LabError> {
    docs.retain(|d| doc_key(d).is_none_or(|k| !overrides.contains_key(&k)));
    for (key, manifest) in overrides {
        let Some(m) = manifest else { continue };
        // JSON is YAML; serde_yaml's text keeps the decoder's positions
        // meaningful within the object, which is what a message can show.
        let text = serde_yaml::to_string(m).map_err(|e| LabError {
            diagnostics: vec![Diagnostic {
                source: source.to_string(),
                pos: Pos { line: 1, col: 1 },
                field: key.clone(),
                message: format!("{key}: cannot be written as YAML: {e}"),
                hint: None,
            }],
        })?;
        let origin = format!("{source} (written through the API: {key})");
        docs.extend(yaml::parse_documents(&text).map_err(|e| yaml_errors(&origin, e))?);
    }
    Ok(docs)
}

/// Read and parse a lab file.
pub fn load(path: &Path) -> Result<LabFile, LabError> {
    let source = path.display().to_string();
    let text = read_source(path, "lab").map_err(|d| LabError {
        diagnostics: vec![d],
    })?;
    parse(&source, &text)
}

/// The error for a file with nothing in it but comments and blank lines,
/// which is a mistake (a wrong path, an unsaved editor), not a lab.
pub(crate) fn no_documents(source: &str, what: &str, hint: &str) -> LabError {
    LabError {
        diagnostics: vec![Diagnostic {
            source: source.to_string(),
            pos: Pos { line: 1, col: 1 },
            field: "file".into(),
            message: format!(
                "no documents: the file is empty or holds only comments, so it describes no {what}"
            ),
            hint: Some(hint.to_string()),
        }],
    }
}

/// Read a lab or exercise file (`what` names it in messages), refusing
/// what is not a regular file (a device such as `/dev/zero`, a FIFO, a
/// directory: each could block or never end) and anything larger than
/// [`MAX_FILE_BYTES`], before reading it. The read itself stops one byte
/// past the limit, so a file that grows while it is read is bounded too.
pub fn read_source(path: &Path, what: &str) -> Result<String, Diagnostic> {
    let source = path.display().to_string();
    let fail = |message: String, hint: Option<String>| Diagnostic {
        source: source.clone(),
        pos: Pos { line: 1, col: 1 },
        field: "file".into(),
        message,
        hint,
    };
    let too_big = |size: u64| {
        fail(
            format!(
                "the {what} file is {} ({size} bytes); podlab reads at most {} ({MAX_FILE_BYTES} bytes)",
                yaml::human_bytes(size as usize),
                yaml::human_bytes(MAX_FILE_BYTES as usize)
            ),
            Some(format!("is this the {what} file you meant? no lab comes near this size; docs/limits.md lists the limits")),
        )
    };
    let cannot = |e: std::io::Error| fail(format!("cannot read the {what} file: {e}"), None);
    // Opened without blocking, so that a FIFO with no writer is refused
    // rather than waited on; the kind is then read from the open file, so
    // it cannot change between the check and the read.
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(cannot)?
    };
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        let kind = file_kind(&meta.file_type());
        return Err(fail(
            format!("{source} is {kind}, not a regular file"),
            Some(format!(
                "give the path of the {what} file itself (a .yaml file)"
            )),
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let valid = &e.as_bytes()[..at];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        Diagnostic {
            source: source.clone(),
            pos: Pos { line, col },
            field: "file".into(),
            message: format!("the {what} file is not UTF-8 text (byte {at} is not valid UTF-8)"),
            hint: Some("save the file as UTF-8".into()),
        }
    })
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Text from a file made safe to print: control characters (which could
/// move the cursor, change colours or ring the bell in the user's
/// terminal) and the invisible bidirectional-override characters are shown
/// escaped, as `\u{7}`; `\n`, `\t` and `\r` as themselves escaped.
pub fn escape(s: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    }
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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
        // Every part may quote the file (a key, a value, the path itself).
        write!(
            f,
            "{}:{}:{}: ",
            escape(&self.source),
            self.pos.line,
            self.pos.col
        )?;
        // A message about a whole document has no field to name.
        if !self.field.is_empty() {
            write!(f, "{}: ", escape(&self.field))?;
        }
        write!(f, "{}", escape(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {}", escape(hint))?;
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
