//! An exercise file (`kind: Exercise`): a break-fix exercise built on a
//! lab. What a learner reads (title, story, hints), what breaks the lab
//! (faults from the catalogue, or commands run in named namespaces), what
//! "fixed" means (checks: the assertions of `spec.expect`), and the
//! solution (commands and file edits, or applying the lab file).
//!
//! Decoded like a lab file, with positions: every problem is reported at
//! its `file:line:column`, with a did-you-mean for misspelt fields, fault
//! names and parameters, and `${variables}`. Checks are related to the
//! lab's pods, nodes and services by `check`, once the lab is read.
//!
//! ```yaml
//! apiVersion: podlab/v1alpha1
//! kind: Exercise
//! metadata: {name: missing-route}
//! spec:
//!   title: Pods on one node cannot reach the other node's pods
//!   difficulty: easy              # easy | medium | hard
//!   section: pods                 # pods | services | dns
//!   lab: ../01-pod-network.yaml   # relative to this file
//!   story: |
//!     ...
//!   vars: {node: [node-1, node-2]}  # a list: one is picked (--seed)
//!   faults:
//!   - {fault: route-missing, target: "${node}"}
//!   - {in: node/node-1, run: [ip, link, set, eth0, down], undo: [ip, link, set, eth0, up]}
//!   hints: [...]
//!   checks: [...]                 # as spec.expect
//!   solution:
//!     explanation: |
//!       ...
//!     steps:
//!     - {in: "node/${node}", run: "ip route add ${other.podCIDR} via ${other.ip}"}
//!     - {in: pod/client, write: /etc/resolv.conf, content: "nameserver 10.96.0.10\n"}
//!     - {apply: true}             # podlab apply of the lab file
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Serialize;

use super::decode::{describe, Decoder};
use super::expect::{self, Assertion};
use super::types::{LabFile, Pos};
use super::validate::{did_you_mean, is_dns1123_label};
use super::yaml::{self, Node, Value};
use super::{sorted, Diagnostic, LabError};
use crate::faults::{self, Section, TargetKind};

pub const API_VERSION: &str = "podlab/v1alpha1";
pub const KIND: &str = "Exercise";

/// What a `${NAME.ATTR}` may ask of a node or pod.
pub const ATTRIBUTES: &[&str] = &["ip", "podCIDR", "gateway", "node", "namespace"];
/// Variables every exercise has: `${lab}`, the lab's name (for host
/// commands: `podlab exec --lab ${lab} ...`).
pub const BUILTIN_VARS: &[&str] = &["lab"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

impl Difficulty {
    pub const WORDS: &'static [&'static str] = &["easy", "medium", "hard"];

    pub fn word(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
        }
    }
}

/// A whole exercise file.
#[derive(Debug, Clone, Serialize)]
pub struct Exercise {
    /// The file as named (for messages).
    pub source: String,
    pub name: String,
    pub title: String,
    pub difficulty: Difficulty,
    pub section: Section,
    /// The lab file, as written (relative to the exercise file).
    pub lab: String,
    pub lab_pos: Pos,
    pub story: String,
    pub vars: Vec<Var>,
    pub faults: Vec<FaultSpec>,
    pub hints: Vec<String>,
    pub checks: Vec<Assertion>,
    /// `spec.checks` as written, when it holds `${...}`: decoded again
    /// for each choice of variables (`checks_with`). `checks` is then
    /// empty.
    #[serde(skip)]
    pub checks_template: Option<Node>,
    /// `spec.allow`: the governed tools a learner may use while it runs
    /// (`exercise::rules`); `None`: each tool's default.
    pub allow: Option<Vec<String>>,
    pub solution: Solution,
    /// Where the free texts (`spec.story`, `spec.hints[i]`,
    /// `spec.solution.explanation`) are, by field, for messages about
    /// what is in them.
    #[serde(skip)]
    pub text_pos: BTreeMap<String, Pos>,
}

impl Exercise {
    /// The position of a field named in a message about the exercise
    /// (`spec.faults[1].in`, `spec.solution.steps[0]`, `spec.story`...):
    /// the item it belongs to, or the spec's `lab` when nothing closer
    /// is known, so that every message has a line and column.
    pub fn field_pos(&self, field: &str) -> Pos {
        let index = |prefix: &str| -> Option<usize> {
            field.strip_prefix(prefix)?.split(']').next()?.parse().ok()
        };
        if let Some(p) = self.text_pos.get(field) {
            return *p;
        }
        if let Some(f) = index("spec.faults[").and_then(|i| self.faults.get(i)) {
            return match f {
                FaultSpec::Catalogue { pos, .. } | FaultSpec::Custom { pos, .. } => *pos,
            };
        }
        if let Some(s) = index("spec.solution.steps[").and_then(|i| self.solution.steps.get(i)) {
            return match s {
                SolutionStep::Run { pos, .. }
                | SolutionStep::Write { pos, .. }
                | SolutionStep::Apply { pos } => *pos,
            };
        }
        if let Some(v) = field
            .strip_prefix("spec.vars.")
            .and_then(|name| self.vars.iter().find(|v| v.name == name))
        {
            return v.pos;
        }
        self.lab_pos
    }
}

/// `vars:` one entry: a fixed value, or values to pick one from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Var {
    pub name: String,
    pub values: Vec<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FaultSpec {
    /// A fault of the catalogue (`podlab fault list`).
    Catalogue {
        fault: String,
        target: Option<String>,
        params: BTreeMap<String, String>,
        pos: Pos,
    },
    /// Commands run inside a pod, node or client, and their inverse.
    Custom {
        name: Option<String>,
        /// What it breaks, in a sentence (shown with the solution).
        description: Option<String>,
        at: String,
        run: Vec<String>,
        undo: Vec<String>,
        pos: Pos,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Solution {
    pub explanation: String,
    pub steps: Vec<SolutionStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SolutionStep {
    /// A command inside a pod, node or client (`podlab exec`); without
    /// `in`, a shell command line on the host, as a learner types it (with
    /// `podlab exec --lab ${lab} ...` in it).
    Run {
        at: Option<String>,
        argv: Vec<String>,
        pos: Pos,
    },
    /// A file written from inside a pod, node or client.
    Write {
        at: String,
        path: String,
        content: String,
        pos: Pos,
    },
    /// The lab file applied as it is (`podlab apply`): undoes what a
    /// plan-level fault changed.
    Apply { pos: Pos },
}

const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const META: &[&str] = &["name"];
const META_IGNORED: &[&str] = &["labels", "annotations"];
const SPEC: &[&str] = &[
    "title",
    "difficulty",
    "section",
    "lab",
    "story",
    "vars",
    "faults",
    "hints",
    "checks",
    "allow",
    "solution",
];
const CATALOGUE_FAULT: &[&str] = &["fault", "target", "params"];
const CUSTOM_FAULT: &[&str] = &["name", "description", "in", "run", "undo"];
const SOLUTION: &[&str] = &["explanation", "steps"];
const RUN_STEP: &[&str] = &["in", "run"];
const WRITE_STEP: &[&str] = &["in", "write", "content"];
const APPLY_STEP: &[&str] = &["apply"];
const TARGET_FORMS: &str = "`POD`, `NS/POD`, `pod/POD`, `node/NODE`, `external` or `lb`";

/// Decode an exercise file. `source` names it in messages.
pub fn parse(source: &str, text: &str) -> Result<Exercise, LabError> {
    let docs = match yaml::parse_documents(text) {
        Ok(d) => d,
        Err(errors) => {
            return Err(sorted(
                errors
                    .into_iter()
                    .map(|e| Diagnostic {
                        source: source.into(),
                        pos: e.pos,
                        field: e.field,
                        message: e.message,
                        hint: e.hint,
                    })
                    .collect(),
            ))
        }
    };
    let mut d = Decoder::new(source);
    let ex = match docs.as_slice() {
        [doc] => decode(&mut d, source, doc),
        [] => return Err(super::no_documents(
            source,
            "exercise",
            "an exercise file is one `kind: Exercise` document; start from one in labs/exercises/",
        )),
        [_, second, ..] => {
            d.err(
                second.pos,
                "",
                "an exercise file holds one document; the lab is a file of its own".into(),
                Some("name the lab file in `spec.lab`".into()),
            );
            None
        }
    };
    match ex {
        Some(ex) if d.diags.is_empty() => Ok(ex),
        _ => Err(sorted(d.diags)),
    }
}

/// Read and decode an exercise file.
pub fn load(path: &Path) -> Result<Exercise, LabError> {
    let source = path.display().to_string();
    let text = super::read_source(path, "exercise").map_err(|d| LabError {
        diagnostics: vec![d],
    })?;
    parse(&source, &text)
}

/// Whether a file's first document is an Exercise (so that commands given
/// a lab file by mistake can say so).
pub fn is_exercise(text: &str) -> bool {
    yaml::parse_documents(text)
        .ok()
        .and_then(|docs| docs.into_iter().next())
        .is_some_and(|doc| matches!(map_get(&doc, "kind").map(|k| &k.value), Some(Value::Scalar { text, .. }) if text == KIND))
}

fn map_get<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn decode(d: &mut Decoder, source: &str, doc: &Node) -> Option<Exercise> {
    let f = d.fields(doc, "", TOP, &[])?;
    match f.get("kind") {
        None => d.err(
            doc.pos,
            "kind",
            "the document has no `kind`".into(),
            Some(format!("add `kind: {KIND}`")),
        ),
        Some(k) => {
            if let Some(kind) = d.string(k, "kind") {
                if kind != KIND {
                    let hint = if kind == "Lab" || super::KINDS.contains(&kind.as_str()) {
                        "this is a lab file: `podlab exercise` takes an exercise file, whose `spec.lab` names the lab".to_string()
                    } else {
                        format!("an exercise file has `kind: {KIND}`")
                    };
                    d.err(
                        k.pos,
                        "kind",
                        format!("kind `{kind}` is not an exercise"),
                        Some(hint),
                    );
                    return None;
                }
            }
        }
    }
    match f.get("apiVersion") {
        None => d.err(
            doc.pos,
            "apiVersion",
            "the exercise has no `apiVersion`".into(),
            Some(format!("add `apiVersion: {API_VERSION}`")),
        ),
        Some(v) => {
            if let Some(api) = d.string(v, "apiVersion") {
                if api != API_VERSION {
                    d.err(
                        v.pos,
                        "apiVersion",
                        format!("apiVersion `{api}` is not valid for kind {KIND}"),
                        Some(format!("use `apiVersion: {API_VERSION}`")),
                    );
                }
            }
        }
    }
    let name = match f.get("metadata") {
        None => {
            d.err(
                doc.pos,
                "metadata.name",
                "the exercise has no name".into(),
                Some("add `metadata: {name: ...}`".into()),
            );
            None
        }
        Some(m) => {
            let mf = d.fields(m, "metadata", META, META_IGNORED)?;
            match mf.get("name") {
                None => {
                    d.err(
                        m.pos,
                        "metadata.name",
                        "the exercise has no name".into(),
                        Some("add `name:` under metadata".into()),
                    );
                    None
                }
                Some(n) => {
                    let s = d.string(n, "metadata.name")?;
                    if !is_dns1123_label(&s) {
                        d.err(
                            n.pos,
                            "metadata.name",
                            format!("exercise name `{s}` is not a DNS-1123 label"),
                            Some(format!(
                                "use lowercase letters, digits and '-', e.g. `{}`",
                                super::validate::suggest_label(&s)
                            )),
                        );
                    }
                    Some(s)
                }
            }
        }
    };
    let Some(spec_node) = f.get("spec") else {
        d.err(
            doc.pos,
            "spec",
            "the exercise has no `spec`".into(),
            Some("add `spec:` with title, difficulty, section, lab, story, faults, checks and solution".into()),
        );
        return None;
    };
    let spec = d.fields(spec_node, "spec", SPEC, &[])?;
    let required = |d: &mut Decoder, key: &str, what: &str| -> Option<&Node> {
        let n = spec.get(key);
        if n.is_none() && !spec.suggested.iter().any(|s| s == key) {
            d.err(
                spec.pos,
                format!("spec.{key}"),
                format!("the exercise has no `{key}`"),
                Some(what.into()),
            );
        }
        n
    };
    let title = required(d, "title", "a one-line title, shown first")
        .and_then(|n| d.string(n, "spec.title"));
    let difficulty = required(d, "difficulty", "one of easy, medium, hard")
        .and_then(|n| word(d, n, "spec.difficulty", Difficulty::WORDS))
        .map(|w| match w.as_str() {
            "easy" => Difficulty::Easy,
            "medium" => Difficulty::Medium,
            _ => Difficulty::Hard,
        });
    let section_words: Vec<&str> = Section::ALL.iter().map(|s| s.key()).collect();
    let section = required(
        d,
        "section",
        "the seed's troubleshooting section: pods, services or dns",
    )
    .and_then(|n| word(d, n, "spec.section", &section_words))
    .and_then(|w| Section::from_key(&w));
    let lab_node = required(
        d,
        "lab",
        "the lab file it starts from, relative to this file",
    );
    let lab = lab_node.and_then(|n| d.string(n, "spec.lab"));
    let story = required(
        d,
        "story",
        "what the learner reads: the symptom, not the cause",
    )
    .and_then(|n| d.string(n, "spec.story"));
    let vars = spec.get("vars").map(|n| vars(d, n)).unwrap_or_default();
    let faults_node = required(
        d,
        "faults",
        "what breaks the lab: `- {fault: NAME, target: ...}`",
    );
    let faults: Vec<FaultSpec> = faults_node
        .map(|n| {
            let items = d.list(n, "spec.faults", "a list of faults");
            if items.is_empty() {
                d.err(
                    n.pos,
                    "spec.faults",
                    "an exercise needs at least one fault".into(),
                    Some("`podlab fault list` lists the catalogue".into()),
                );
            }
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| fault(d, item, &format!("spec.faults[{i}]")))
                .collect()
        })
        .unwrap_or_default();
    let hints: Vec<String> = spec
        .get("hints")
        .map(|n| d.string_list(n, "spec.hints"))
        .unwrap_or_default();
    let checks_node = required(
        d,
        "checks",
        "the assertions that pass once it is fixed, as in a lab's spec.expect",
    );
    let templated_checks = checks_node.filter(|n| has_reference(n)).cloned();
    let checks: Vec<Assertion> = checks_node
        .map(|n| {
            // With variables, each choice of them is decoded on its own
            // (`checks_with`); here only their shape is checked.
            let c = if templated_checks.is_some() {
                let mut probe = Decoder::new(source);
                expect::decode_at(&mut probe, &placeholders(n), "spec.checks");
                d.diags.extend(
                    probe
                        .diags
                        .into_iter()
                        .filter(|x| !x.message.contains(PLACEHOLDER)),
                );
                Vec::new()
            } else {
                expect::decode_at(d, n, "spec.checks")
            };
            if matches!(&n.value, Value::Seq(items) if items.is_empty()) {
                d.err(
                    n.pos,
                    "spec.checks",
                    "an exercise needs at least one check".into(),
                    Some("e.g. `- {from: pod-1, to: pod-2, port: 80, expect: connected}`".into()),
                );
            }
            c
        })
        .unwrap_or_default();
    let allow = spec.get("allow").map(|n| allow(d, n));
    let solution = required(
        d,
        "solution",
        "what fixes it: `explanation:` and `steps:` (commands, file writes, or `apply: true`)",
    )
    .and_then(|n| solution(d, n));

    let ex = Exercise {
        source: source.into(),
        name: name?,
        title: title?,
        difficulty: difficulty?,
        section: section?,
        lab: lab?,
        lab_pos: lab_node.map_or(spec.pos, |n| n.pos),
        story: story?,
        vars,
        faults,
        hints,
        checks,
        checks_template: templated_checks,
        allow,
        solution: solution?,
        text_pos: text_positions(spec_node),
    };
    check_templates(d, &ex, spec_node);
    Some(ex)
}

/// What a `${...}` of a check stands for while only its shape is
/// checked: a name no lab has, so that relating it to the lab is left to
/// `checks_with`.
const PLACEHOLDER: &str = "podlab-variable";

fn has_reference(n: &Node) -> bool {
    match &n.value {
        Value::Scalar { text, .. } => text.contains("${"),
        Value::Seq(items) => items.iter().any(has_reference),
        Value::Map(entries) => entries
            .iter()
            .any(|(k, v)| has_reference(k) || has_reference(v)),
        Value::Null => false,
    }
}

/// `n` with every scalar's text passed through `f`.
pub fn map_scalars(
    n: &Node,
    f: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Node, String> {
    let value = match &n.value {
        Value::Scalar { text, quoted } => Value::Scalar {
            text: if text.contains("${") {
                f(text)?
            } else {
                text.clone()
            },
            quoted: *quoted,
        },
        Value::Seq(items) => Value::Seq(
            items
                .iter()
                .map(|i| map_scalars(i, f))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((map_scalars(k, f)?, map_scalars(v, f)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Null => Value::Null,
    };
    Ok(Node { value, pos: n.pos })
}

fn placeholders(n: &Node) -> Node {
    let mut f = |text: &str| -> Result<String, String> {
        let mut out = text.to_string();
        for r in references(text).unwrap_or_default() {
            let pattern = match &r.attr {
                None => format!("${{{}}}", r.name),
                Some(a) => format!("${{{}.{a}}}", r.name),
            };
            out = out.replace(&pattern, PLACEHOLDER);
        }
        Ok(out)
    };
    map_scalars(n, &mut f).unwrap_or_else(|_| n.clone())
}

/// How many checks the exercise has, templated ones (whose `checks` are
/// only decoded per choice of variables) included.
pub fn check_count(ex: &Exercise) -> usize {
    match &ex.checks_template {
        Some(Node {
            value: Value::Seq(items),
            ..
        }) => items.len(),
        _ => ex.checks.len(),
    }
}

/// The checks for one choice of variables: `spec.checks` with `subst`
/// applied to every string, decoded. Diagnostics point into the file.
pub fn checks_with(
    ex: &Exercise,
    subst: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Vec<Assertion>, LabError> {
    let Some(template) = &ex.checks_template else {
        return Ok(ex.checks.clone());
    };
    let node = map_scalars(template, subst).map_err(|message| LabError {
        diagnostics: vec![Diagnostic {
            source: ex.source.clone(),
            pos: template.pos,
            field: "spec.checks".into(),
            message,
            hint: None,
        }],
    })?;
    let mut d = Decoder::new(&ex.source);
    let checks = expect::decode_at(&mut d, &node, "spec.checks");
    if d.diags.is_empty() {
        Ok(checks)
    } else {
        Err(sorted(d.diags))
    }
}

/// `spec.allow`: a list of tools `exercise::rules` governs.
fn allow(d: &mut Decoder, n: &Node) -> Vec<String> {
    let known = crate::exercise::rules::names();
    let mut out = Vec::new();
    let items = d.list(n, "spec.allow", "a list of tools");
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.allow[{i}]");
        let Some(name) = d.string(item, &path) else {
            continue;
        };
        if known.contains(&name.as_str()) {
            if !out.contains(&name) {
                out.push(name);
            }
            continue;
        }
        let hint = match did_you_mean(&name, &known) {
            Some(m) => format!("did you mean `{m}`?"),
            None if name == "exec" || name == "get" => {
                "exec and get are always allowed; list only governed tools".to_string()
            }
            None => format!("the tools an exercise governs: {}", known.join(", ")),
        };
        d.err(
            item.pos,
            &path,
            format!("`{name}` is not a tool an exercise governs"),
            Some(hint),
        );
    }
    out
}

fn text_positions(spec: &Node) -> BTreeMap<String, Pos> {
    let mut out = BTreeMap::new();
    if let Some(n) = map_get(spec, "story") {
        out.insert("spec.story".to_string(), n.pos);
    }
    if let Some(Value::Seq(items)) = map_get(spec, "hints").map(|n| &n.value) {
        for (i, n) in items.iter().enumerate() {
            out.insert(format!("spec.hints[{i}]"), n.pos);
        }
    }
    if let Some(n) = map_get(spec, "solution").and_then(|s| map_get(s, "explanation")) {
        out.insert("spec.solution.explanation".to_string(), n.pos);
    }
    out
}

/// A string that must be one of `words`.
fn word(d: &mut Decoder, n: &Node, path: &str, words: &[&str]) -> Option<String> {
    let s = d.string(n, path)?;
    if words.contains(&s.as_str()) {
        return Some(s);
    }
    let hint = match did_you_mean(&s, words) {
        Some(m) => format!("did you mean `{m}`?"),
        None => format!("one of: {}", words.join(", ")),
    };
    d.err(
        n.pos,
        path,
        format!("`{s}` is not one of {}", words.join(", ")),
        Some(hint),
    );
    None
}

fn vars(d: &mut Decoder, n: &Node) -> Vec<Var> {
    let Value::Map(entries) = &n.value else {
        d.err(
            n.pos,
            "spec.vars",
            format!(
                "expected a mapping of names to values, found {}",
                describe(n)
            ),
            Some("e.g. `vars: {node: [node-1, node-2]}`".into()),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let Some(name) = d.string(k, "spec.vars") else {
            continue;
        };
        let path = format!("spec.vars.{name}");
        if BUILTIN_VARS.contains(&name.as_str()) {
            d.err(
                k.pos,
                &path,
                format!("`{name}` is a variable every exercise has (the lab's name)"),
                Some("choose another name".into()),
            );
            continue;
        }
        if !is_var_name(&name) {
            d.err(
                k.pos,
                &path,
                format!("`{name}` is not a variable name"),
                Some("start with a letter; then letters, digits, '_' or '-'".into()),
            );
            continue;
        }
        let values = match &v.value {
            Value::Seq(_) => d.string_list(v, &path),
            _ => d.string(v, &path).into_iter().collect(),
        };
        if values.is_empty() {
            d.err(
                v.pos,
                &path,
                "a variable needs at least one value".into(),
                Some("a value, or a list to pick one from".into()),
            );
            continue;
        }
        out.push(Var {
            name,
            values,
            pos: k.pos,
        });
    }
    out
}

fn is_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A command: a list of arguments, or one string run by `sh -c`.
fn command(d: &mut Decoder, n: &Node, path: &str) -> Option<Vec<String>> {
    let argv = match &n.value {
        Value::Seq(_) => d.string_list(n, path),
        _ => vec!["sh".into(), "-c".into(), d.string(n, path)?],
    };
    if argv.is_empty() || argv[0].is_empty() {
        d.err(
            n.pos,
            path,
            "the command is empty".into(),
            Some("e.g. `[ip, link, set, eth0, up]` or `\"ip link set eth0 up\"`".into()),
        );
        return None;
    }
    Some(argv)
}

fn fault(d: &mut Decoder, n: &Node, path: &str) -> Option<FaultSpec> {
    if map_get(n, "fault").is_some() {
        let f = d.fields(n, path, CATALOGUE_FAULT, &[])?;
        let name_node = f.get("fault")?;
        let name = d.string(name_node, &format!("{path}.fault"))?;
        let entry = match faults::entry(&name) {
            Ok(e) => Some(e),
            Err(e) => {
                d.err(
                    name_node.pos,
                    format!("{path}.fault"),
                    e.to_string(),
                    e.hint(),
                );
                None
            }
        };
        let target = match f.get("target") {
            Some(t) => {
                let s = d.string(t, &format!("{path}.target"));
                if let (Some(e), Some(_)) = (entry, &s) {
                    if e.target == TargetKind::Lab {
                        d.err(
                            t.pos,
                            format!("{path}.target"),
                            format!("fault {name} acts on the whole lab and takes no target"),
                            Some("remove `target`".into()),
                        );
                    }
                }
                s
            }
            None => None,
        };
        let mut params = BTreeMap::new();
        if let Some(p) = f.get("params") {
            let ppath = format!("{path}.params");
            if let Value::Map(entries) = &p.value {
                for (k, v) in entries {
                    let Some(key) = d.string(k, &ppath) else {
                        continue;
                    };
                    let field = format!("{ppath}.{key}");
                    if let Some(e) = entry {
                        let known: Vec<&str> = e.params.iter().map(|p| p.name).collect();
                        if !known.contains(&key.as_str()) {
                            let hint = match did_you_mean(&key, &known) {
                                Some(m) => format!("did you mean `{m}`?"),
                                None if known.is_empty() => {
                                    format!("fault {name} takes no parameters")
                                }
                                None => format!("its parameters: {}", known.join(", ")),
                            };
                            d.err(
                                k.pos,
                                &field,
                                format!("fault {name} has no parameter `{key}`"),
                                Some(hint),
                            );
                            continue;
                        }
                    }
                    // Numbers are fine as parameters: `percent: 30`.
                    let value = match &v.value {
                        Value::Scalar { text, .. } => Some(text.clone()),
                        _ => {
                            d.err(
                                v.pos,
                                &field,
                                format!("expected a value, found {}", describe(v)),
                                None,
                            );
                            None
                        }
                    };
                    if let Some(value) = value {
                        params.insert(key, value);
                    }
                }
            } else {
                d.err(
                    p.pos,
                    ppath,
                    format!("expected a mapping of parameters, found {}", describe(p)),
                    Some("e.g. `params: {to: node-2}`".into()),
                );
            }
        }
        return Some(FaultSpec::Catalogue {
            fault: name,
            target,
            params,
            pos: n.pos,
        });
    }
    if !matches!(n.value, Value::Map(_)) {
        d.err(
            n.pos,
            path,
            format!("expected a fault (a mapping), found {}", describe(n)),
            Some("e.g. `- {fault: route-missing, target: node-1}`".into()),
        );
        return None;
    }
    let f = d.fields(n, path, CUSTOM_FAULT, &[])?;
    let name = f
        .get("name")
        .and_then(|x| d.string(x, &format!("{path}.name")));
    let description = f
        .get("description")
        .and_then(|x| d.string(x, &format!("{path}.description")));
    let need = |d: &mut Decoder, key: &str, hint: &str| {
        let x = f.get(key);
        if x.is_none() && !f.suggested.iter().any(|s| s == key) {
            d.err(
                n.pos,
                format!("{path}.{key}"),
                format!("a custom fault needs `{key}`"),
                Some(hint.into()),
            );
        }
        x
    };
    let at = need(
        d,
        "in",
        "where it runs: a pod, `node/NODE`, `external` or `lb` (or use `fault:` for one of the catalogue)",
    )
    .and_then(|x| d.string(x, &format!("{path}.in")));
    let run = need(d, "run", "the command that breaks the lab")
        .and_then(|x| command(d, x, &format!("{path}.run")));
    let undo = need(
        d,
        "undo",
        "the command that undoes it exactly: `exercise reset` runs it",
    )
    .and_then(|x| command(d, x, &format!("{path}.undo")));
    Some(FaultSpec::Custom {
        name,
        description,
        at: at?,
        run: run?,
        undo: undo?,
        pos: n.pos,
    })
}

fn solution(d: &mut Decoder, n: &Node) -> Option<Solution> {
    let f = d.fields(n, "spec.solution", SOLUTION, &[])?;
    let explanation = match f.get("explanation") {
        Some(x) => d.string(x, "spec.solution.explanation")?,
        None => {
            if !f.suggested.iter().any(|s| s == "explanation") {
                d.err(
                    n.pos,
                    "spec.solution.explanation",
                    "the solution has no `explanation`".into(),
                    Some("say what was broken and why the steps fix it".into()),
                );
            }
            return None;
        }
    };
    let Some(steps_node) = f.get("steps") else {
        if !f.suggested.iter().any(|s| s == "steps") {
            d.err(
                n.pos,
                "spec.solution.steps",
                "the solution has no `steps`".into(),
                Some("e.g. `- {in: node/node-1, run: \"ip route add ...\"}`".into()),
            );
        }
        return None;
    };
    let items = d.list(steps_node, "spec.solution.steps", "a list of steps");
    if items.is_empty() {
        d.err(
            steps_node.pos,
            "spec.solution.steps",
            "the solution needs at least one step".into(),
            None,
        );
    }
    let steps = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| step(d, item, &format!("spec.solution.steps[{i}]")))
        .collect();
    Some(Solution { explanation, steps })
}

fn step(d: &mut Decoder, n: &Node, path: &str) -> Option<SolutionStep> {
    let known = if map_get(n, "apply").is_some() {
        APPLY_STEP
    } else if map_get(n, "write").is_some() {
        WRITE_STEP
    } else {
        RUN_STEP
    };
    if !matches!(n.value, Value::Map(_)) {
        d.err(
            n.pos,
            path,
            format!("expected a step (a mapping), found {}", describe(n)),
            Some("`{in: TARGET, run: COMMAND}`, `{in: TARGET, write: PATH, content: TEXT}` or `{apply: true}`".into()),
        );
        return None;
    }
    let f = d.fields(n, path, known, &[])?;
    if known == APPLY_STEP {
        let a = f.get("apply")?;
        match &a.value {
            Value::Scalar {
                text,
                quoted: false,
            } if text == "true" => {}
            _ => {
                d.err(
                    a.pos,
                    format!("{path}.apply"),
                    format!("expected `true`, found {}", describe(a)),
                    Some("`{apply: true}` applies the lab file as it is".into()),
                );
                return None;
            }
        }
        return Some(SolutionStep::Apply { pos: n.pos });
    }
    let at = match f.get("in") {
        Some(x) => Some(d.string(x, &format!("{path}.in"))?),
        None => None,
    };
    if known == WRITE_STEP {
        let Some(at) = at else {
            if !f.suggested.iter().any(|s| s == "in") {
                d.err(
                    n.pos,
                    format!("{path}.in"),
                    "a write step has no `in`".into(),
                    Some(format!("where the file is written: {TARGET_FORMS}")),
                );
            }
            return None;
        };
        let file = d.string(f.get("write")?, &format!("{path}.write"))?;
        if !file.starts_with('/') {
            d.err(
                f.get("write").map_or(n.pos, |x| x.pos),
                format!("{path}.write"),
                format!("`{file}` is not an absolute path"),
                Some("e.g. `/etc/resolv.conf`".into()),
            );
            return None;
        }
        let content = match f.get("content") {
            Some(c) => d.string(c, &format!("{path}.content"))?,
            None => {
                d.err(
                    n.pos,
                    format!("{path}.content"),
                    "a write step needs `content`".into(),
                    Some("the whole new content of the file".into()),
                );
                return None;
            }
        };
        return Some(SolutionStep::Write {
            at,
            path: file,
            content,
            pos: n.pos,
        });
    }
    let Some(r) = f.get("run") else {
        if !f.suggested.iter().any(|s| s == "run") {
            d.err(
                n.pos,
                format!("{path}.run"),
                "the step has no `run`".into(),
                Some("the command, as a list or one string".into()),
            );
        }
        return None;
    };
    let argv = command(d, r, &format!("{path}.run"))?;
    if at.is_none() && !(argv.len() == 3 && argv[0] == "sh" && argv[1] == "-c") {
        d.err(
            r.pos,
            format!("{path}.run"),
            "a step without `in` runs on the host, and is one shell command line".into(),
            Some(format!(
                "write it as a string, or add `in:` ({TARGET_FORMS}) to run the list inside the lab"
            )),
        );
        return None;
    }
    Some(SolutionStep::Run {
        at,
        argv,
        pos: n.pos,
    })
}

/// One `${NAME}` or `${NAME.ATTR}` in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub attr: Option<String>,
}

/// The references in `text`, or the first malformed one (`${` without
/// `}`, an empty name).
pub fn references(text: &str) -> Result<Vec<Reference>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("`${{` without a closing `}}` in `{text}`"));
        };
        let inner = &after[..end];
        let (name, attr) = match inner.split_once('.') {
            Some((n, a)) => (n, Some(a.to_string())),
            None => (inner, None),
        };
        if !is_var_name(name) {
            return Err(format!("`${{{inner}}}` does not name a variable"));
        }
        out.push(Reference {
            name: name.into(),
            attr,
        });
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// Every string of the exercise that may hold `${...}`, with where it is.
pub fn templated(ex: &Exercise) -> Vec<(&str, String, Pos)> {
    let mut v: Vec<(&str, String, Pos)> = Vec::new();
    v.push((&ex.story, "spec.story".into(), ex.field_pos("spec.story")));
    for (i, h) in ex.hints.iter().enumerate() {
        let field = format!("spec.hints[{i}]");
        let pos = ex.field_pos(&field);
        v.push((h, field, pos));
    }
    v.push((
        &ex.solution.explanation,
        "spec.solution.explanation".into(),
        ex.field_pos("spec.solution.explanation"),
    ));
    for (i, f) in ex.faults.iter().enumerate() {
        match f {
            FaultSpec::Catalogue {
                target,
                params,
                pos,
                ..
            } => {
                if let Some(t) = target {
                    v.push((t, format!("spec.faults[{i}].target"), *pos));
                }
                for (k, p) in params {
                    v.push((p, format!("spec.faults[{i}].params.{k}"), *pos));
                }
            }
            FaultSpec::Custom {
                at,
                run,
                undo,
                description,
                pos,
                ..
            } => {
                v.push((at, format!("spec.faults[{i}].in"), *pos));
                for a in run.iter().chain(undo) {
                    v.push((a, format!("spec.faults[{i}]"), *pos));
                }
                if let Some(d) = description {
                    v.push((d, format!("spec.faults[{i}].description"), *pos));
                }
            }
        }
    }
    if let Some(t) = &ex.checks_template {
        scalars(t, &mut v);
    }
    for (i, s) in ex.solution.steps.iter().enumerate() {
        let field = format!("spec.solution.steps[{i}]");
        match s {
            SolutionStep::Run { at, argv, pos } => {
                if let Some(at) = at {
                    v.push((at, field.clone(), *pos));
                }
                for a in argv {
                    v.push((a, field.clone(), *pos));
                }
            }
            SolutionStep::Write {
                at,
                path,
                content,
                pos,
            } => {
                for t in [at, path, content] {
                    v.push((t, field.clone(), *pos));
                }
            }
            SolutionStep::Apply { .. } => {}
        }
    }
    v
}

/// The scalars of a check with `${...}` in them, at their own position.
fn scalars<'n>(n: &'n Node, out: &mut Vec<(&'n str, String, Pos)>) {
    match &n.value {
        Value::Scalar { text, .. } if text.contains("${") => {
            out.push((text, "spec.checks".into(), n.pos));
        }
        Value::Seq(items) => items.iter().for_each(|i| scalars(i, out)),
        Value::Map(entries) => entries.iter().for_each(|(_, v)| scalars(v, out)),
        _ => {}
    }
}

/// Every `${...}` names a declared variable, and an attribute podlab knows.
fn check_templates(d: &mut Decoder, ex: &Exercise, spec: &Node) {
    let declared: Vec<&str> = ex
        .vars
        .iter()
        .map(|v| v.name.as_str())
        .chain(BUILTIN_VARS.iter().copied())
        .collect();
    let mut reported = HashSet::new();
    for (text, field, pos) in templated(ex) {
        // Strings without their own position point at the spec's field.
        let pos = if pos == ex.lab_pos {
            map_get(spec, field.split(['.', '[']).nth(1).unwrap_or_default()).map_or(pos, |n| n.pos)
        } else {
            pos
        };
        let refs = match references(text) {
            Ok(r) => r,
            Err(e) => {
                d.err(
                    pos,
                    &field,
                    e,
                    Some("write `${NAME}` or `${NAME.ATTR}`".into()),
                );
                continue;
            }
        };
        for r in refs {
            if !declared.contains(&r.name.as_str()) {
                if reported.insert((field.clone(), r.name.clone())) {
                    let hint = match did_you_mean(&r.name, &declared) {
                        Some(m) => format!("did you mean `${{{m}}}`?"),
                        None => "declare it under `spec.vars`".into(),
                    };
                    d.err(
                        pos,
                        &field,
                        format!("`${{{}}}` is not a variable of the exercise", r.name),
                        Some(hint),
                    );
                }
                continue;
            }
            if let Some(a) = &r.attr {
                if !ATTRIBUTES.contains(&a.as_str()) {
                    let hint = match did_you_mean(a, ATTRIBUTES) {
                        Some(m) => format!("did you mean `${{{}.{m}}}`?", r.name),
                        None => format!("attributes: {}", ATTRIBUTES.join(", ")),
                    };
                    d.err(
                        pos,
                        &field,
                        format!("`{a}` is not an attribute podlab knows"),
                        Some(hint),
                    );
                }
            }
        }
    }
}

/// Relate the exercise's checks to its lab: every pod, node and service
/// they name must be the lab's. The diagnostics point into the exercise.
pub fn check(ex: &Exercise, lab: &LabFile) -> Result<(), LabError> {
    let mut as_lab = lab.clone();
    as_lab.source = ex.source.clone();
    as_lab.lab.expect = ex.checks.clone();
    let mut diags = Vec::new();
    expect::check(&as_lab, &mut diags);
    if diags.is_empty() {
        Ok(())
    } else {
        Err(sorted(diags))
    }
}

#[cfg(test)]
#[path = "exercise_tests.rs"]
mod tests;
