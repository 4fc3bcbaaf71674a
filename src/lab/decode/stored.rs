//! Decoding of the kinds a lab keeps for its API only (`lab::stored`):
//! the kind and apiVersion resolved, the metadata checked (name by the
//! kind's own rule, namespace, labels), the rest kept as written.

use super::super::stored::{
    path_segment_problem, stored_kind, CustomKind, NameRule, Stored, StoredKind,
};
use super::super::types::*;
use super::super::validate::{did_you_mean, is_dns1123_subdomain};
use super::super::yaml::{Node, Value};
use super::{json_cost, to_json, Decoder, Fields, Scope, KINDS};

/// What a kind written in the file is to podlab.
pub(super) enum Resolved {
    /// Shapes the network: decoded strictly by `decode`.
    Network,
    Builtin(&'static StoredKind),
    /// Index into `LabFile::custom_kinds`.
    Custom(usize),
    /// A stored kind, but not under the apiVersion written: the versions
    /// that would do, for the error.
    WrongVersion(Vec<String>),
    Unknown,
}

pub(super) fn resolve(file: &LabFile, kind: &str, api: Option<&str>) -> Resolved {
    if KINDS.contains(&kind) {
        return Resolved::Network;
    }
    let mut wanted: Vec<String> = Vec::new();
    if let Some(sk) = stored_kind(kind) {
        let versions: Vec<String> = sk
            .versions
            .iter()
            .map(|v| api_version(sk.group, v))
            .collect();
        if api.is_none_or(|a| versions.iter().any(|v| v == a)) {
            return Resolved::Builtin(sk);
        }
        wanted.extend(versions);
    }
    for (i, ck) in file.custom_kinds.iter().enumerate() {
        if ck.kind != kind {
            continue;
        }
        let versions: Vec<String> = ck.api_versions().collect();
        if api.is_none_or(|a| versions.iter().any(|v| v == a)) {
            return Resolved::Custom(i);
        }
        wanted.extend(versions);
    }
    if wanted.is_empty() {
        Resolved::Unknown
    } else {
        Resolved::WrongVersion(wanted)
    }
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// The hint for a kind podlab does not know.
pub(super) fn kinds_hint(file: &LabFile, kind: Option<&str>) -> String {
    let stored: Vec<&str> = super::super::stored::STORED_KINDS
        .iter()
        .map(|k| k.kind)
        .collect();
    let mut hint = format!(
        "podlab supports {}; it stores, for kubectl and without effect on the network, {} and the kinds of the file's CustomResourceDefinitions",
        KINDS.join(", "),
        stored.join(", ")
    );
    if let Some(kind) = kind {
        let mut all: Vec<&str> = KINDS.iter().chain(&stored).copied().collect();
        all.extend(file.custom_kinds.iter().map(|c| c.kind.as_str()));
        if let Some(m) = did_you_mean(kind, &all) {
            hint = format!("did you mean `{m}`? {hint}");
        }
    }
    hint
}

/// The kinds the file's CustomResourceDefinitions define, read before any
/// object is decoded: an object may come before its CRD in the file (Helm
/// puts CRDs first, hand-written files do not always). A CRD lacking what
/// a kind needs defines none; `object` reports it where it is decoded.
pub(super) fn custom_kinds(docs: &[Node]) -> Vec<CustomKind> {
    let mut out: Vec<CustomKind> = Vec::new();
    let mut visit = |doc: &Node| {
        if scalar_field(doc, "kind") == Some("CustomResourceDefinition") {
            if let Some(ck) = CustomKind::from_crd(&to_json(doc)) {
                if !out.iter().any(|c| c.group == ck.group && c.kind == ck.kind) {
                    out.push(ck);
                }
            }
        }
    };
    for doc in docs {
        if scalar_field(doc, "kind") == Some("List") {
            if let Some(Value::Seq(items)) = field(doc, "items").map(|n| &n.value) {
                items.iter().for_each(&mut visit);
            }
        } else {
            visit(doc);
        }
    }
    out
}

pub(super) fn field<'n>(doc: &'n Node, key: &str) -> Option<&'n Node> {
    match &doc.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn scalar_field<'n>(doc: &'n Node, key: &str) -> Option<&'n str> {
    match field(doc, key).map(|n| &n.value) {
        Some(Value::Scalar { text, .. }) => Some(text),
        _ => None,
    }
}

/// What a stored object is an instance of, for its checks.
pub(super) struct Shape {
    pub namespaced: bool,
    pub names: NameRule,
}

impl Shape {
    pub(super) fn of(file: &LabFile, r: &Resolved) -> Option<Shape> {
        match r {
            Resolved::Builtin(sk) => Some(Shape {
                namespaced: sk.namespaced,
                names: sk.names,
            }),
            // Kubernetes checks a custom object's name as a subdomain.
            Resolved::Custom(i) => Some(Shape {
                namespaced: file.custom_kinds[*i].namespaced,
                names: NameRule::Subdomain,
            }),
            _ => None,
        }
    }
}

/// Keep a stored object: metadata checked, the rest as written.
pub(super) fn object(d: &mut Decoder, file: &mut LabFile, doc: &Node, kind: &str, shape: Shape) {
    let Some(f) = d.fields_any(doc) else {
        return;
    };
    // Metadata fields podlab "ignores" elsewhere (annotations...) are kept
    // here, in the stored value: not listed as ignored.
    let mark = d.ignored.len();
    let scope = if shape.namespaced {
        Scope::Namespaced
    } else {
        Scope::Cluster
    };
    let meta = d.meta(f.get("metadata"), "metadata", scope);
    d.ignored.truncate(mark);
    let Some((name, pos)) = named(d, &meta, &f, kind) else {
        return;
    };
    name_rule(d, doc, &name, pos, kind, shape.names);
    let cost = json_cost(doc);
    if !d.take_json(doc, cost) {
        return;
    }
    let mut raw = to_json(doc);
    let namespace = shape.namespaced.then(|| {
        meta.namespace
            .as_ref()
            .map_or_else(|| "default".to_string(), |(s, _)| s.clone())
    });
    match &namespace {
        // As the API server stores it: the namespace is always written.
        Some(ns) => raw["metadata"]["namespace"] = serde_json::json!(ns),
        None => {
            if let Some(m) = raw["metadata"].as_object_mut() {
                m.remove("namespace");
            }
        }
    }
    let api_version = raw["apiVersion"].as_str().unwrap_or_default().to_string();
    file.stored.push(Stored {
        api_version,
        kind: kind.to_string(),
        namespace,
        name,
        pos,
        ns_pos: meta.namespace.as_ref().map(|(_, p)| *p),
        raw,
    });
}

fn named(d: &mut Decoder, meta: &super::Meta, f: &Fields, kind: &str) -> Option<(String, Pos)> {
    match &meta.name {
        Some((name, pos)) => {
            d.what = format!("{kind} `{name}`");
            Some((name.clone(), *pos))
        }
        None if meta.name_given => None,
        None => {
            let pos = f.get("metadata").map_or(f.pos, |m| m.pos);
            d.err(
                pos,
                "metadata.name",
                format!("{kind} has no name"),
                Some("add `metadata:` with `name:`".into()),
            );
            None
        }
    }
}

fn name_rule(d: &mut Decoder, doc: &Node, name: &str, pos: Pos, kind: &str, rule: NameRule) {
    match rule {
        NameRule::Subdomain => {
            if !is_dns1123_subdomain(name) {
                d.err(
                    pos,
                    "metadata.name",
                    format!("`{name}` is not a valid {kind} name"),
                    Some("a name is a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters".into()),
                );
            }
        }
        NameRule::PathSegment => {
            if let Some(problem) = path_segment_problem(name) {
                d.err(
                    pos,
                    "metadata.name",
                    format!("{kind} name {problem}"),
                    None,
                );
            }
        }
        NameRule::Crd => match CustomKind::from_crd(&to_json(doc)) {
            None => d.err(
                field(doc, "spec").map_or(doc.pos, |s| s.pos),
                "spec",
                "a CustomResourceDefinition needs spec.group, spec.names.kind, spec.names.plural and spec.versions (each with a name)".into(),
                Some("see https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/".into()),
            ),
            Some(ck) => {
                let want = format!("{}.{}", ck.plural, ck.group);
                if name != want {
                    d.err(
                        pos,
                        "metadata.name",
                        format!("must be spec.names.plural + \".\" + spec.group: `{want}`"),
                        Some(format!("name it `{want}`")),
                    );
                }
            }
        },
    }
}
