//! From the positioned YAML tree to the lab types.
//!
//! Each decoder lists the fields podlab uses and the Kubernetes fields a lab
//! accepts but ignores; anything else is a mistake, reported with a
//! did-you-mean. Single-field rules (names, port numbers, enum values) are
//! checked here, where the position is at hand; rules that relate objects
//! to each other are in `validate`.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use super::types::*;
use super::validate::{self, did_you_mean, name_problem};
use super::yaml::{resolve_plain, Node, Plain, Value};
use super::Diagnostic;

mod dns;
mod endpoints;
mod netpol;
mod probe;
mod service;
mod stored;
mod workloads;

/// Positions `validate` needs that the lab types do not keep.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    /// `spec.network` keys as written, to the position of their value.
    pub network: HashMap<&'static str, Pos>,
    /// Where a network error points when the field was left at its default.
    pub lab_pos: Pos,
    /// One per `LabFile::pods` entry, same order.
    pub pods: Vec<ObjSpans>,
    pub deployments: Vec<ObjSpans>,
    /// One per `LabFile::workloads` entry, same order.
    pub workloads: Vec<ObjSpans>,
    /// Position of `metadata.namespace`, per service / policy.
    pub services: Vec<Option<Pos>>,
    pub policies: Vec<Option<Pos>>,
    /// What `validate` needs of each service's spec, same order.
    pub service_specs: Vec<service::ServiceSpans>,
}

#[derive(Debug, Default)]
pub(crate) struct ObjSpans {
    pub namespace: Option<Pos>,
    /// Dotted path of the pod spec: `spec` or `spec.template.spec`.
    pub prefix: &'static str,
    /// Position of each container's name.
    pub containers: Vec<Pos>,
    /// Position of each port's name, per container.
    pub port_names: Vec<Vec<Option<Pos>>>,
    /// A Deployment's `spec.replicas`, where written.
    pub replicas: Option<Pos>,
}

pub const KINDS: &[&str] = &[
    "Lab",
    "Namespace",
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Service",
    "Endpoints",
    "EndpointSlice",
    "NetworkPolicy",
];

const MAX_NODES: i64 = 250;
const MAX_LAB_NAME: usize = 20;

const TOP: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const TOP_IGNORED: &[&str] = &["status"];

const META: &[&str] = &["name", "namespace", "labels"];
const META_IGNORED: &[&str] = &[
    "annotations",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
];

const POD_SPEC: &[&str] = &[
    "nodeName",
    "containers",
    "restartPolicy",
    "hostname",
    "subdomain",
    "dnsPolicy",
    "dnsConfig",
    "enableServiceLinks",
];
const POD_SPEC_IGNORED: &[&str] = &[
    "volumes",
    "initContainers",
    "ephemeralContainers",
    "terminationGracePeriodSeconds",
    "activeDeadlineSeconds",
    "nodeSelector",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "hostPID",
    "hostIPC",
    "hostUsers",
    "shareProcessNamespace",
    "securityContext",
    "imagePullSecrets",
    "affinity",
    "schedulerName",
    "tolerations",
    "hostAliases",
    "priorityClassName",
    "priority",
    "readinessGates",
    "runtimeClassName",
    "preemptionPolicy",
    "overhead",
    "topologySpreadConstraints",
    "setHostnameAsFQDN",
    "os",
    "schedulingGates",
    "resourceClaims",
    "resources",
];

const CONTAINER: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "ports",
    "env",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
];
const CONTAINER_IGNORED: &[&str] = &[
    "workingDir",
    "envFrom",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "volumeMounts",
    "volumeDevices",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
];

const PORT: &[&str] = &["containerPort", "name", "protocol", "hostPort"];
const PORT_IGNORED: &[&str] = &["hostIP"];

const ENV: &[&str] = &["name", "value"];
const ENV_IGNORED: &[&str] = &["valueFrom"];

const DEPLOY_SPEC: &[&str] = &["replicas", "selector", "template"];
const DEPLOY_SPEC_IGNORED: &[&str] = &[
    "strategy",
    "revisionHistoryLimit",
    "minReadySeconds",
    "progressDeadlineSeconds",
    "paused",
];

/// Kubernetes fields that change what the network looks like in a way
/// podlab cannot emulate: accepting them silently would mislead.
fn unsupported(key: &str) -> Option<&'static str> {
    match key {
        "hostNetwork" => Some(
            "a hostNetwork pod would share its node's network namespace, which podlab does not emulate; remove it",
        ),
        "matchExpressions" => {
            Some("only matchLabels is supported; write the selector as matchLabels")
        }
        _ => None,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A mapping's fields, known ones only, nulls treated as absent (as the
/// Kubernetes API does).
pub(crate) struct Fields<'n> {
    pub(crate) pos: Pos,
    entries: Vec<(&'n str, &'n Node)>,
    /// Known fields suggested for misspelt ones: a missing `containers`
    /// after "did you mean `containers`?" needs no second error.
    pub(crate) suggested: Vec<String>,
}

impl<'n> Fields<'n> {
    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, v)| *k == key && v.value != Value::Null)
            .map(|(_, v)| *v)
    }
}

/// How a value reads in "found ..." messages.
pub(crate) fn describe(node: &Node) -> String {
    match &node.value {
        Value::Null => "nothing".into(),
        Value::Seq(_) => "a list".into(),
        Value::Map(_) => "a mapping".into(),
        Value::Scalar { text, quoted: true } => format!("the string \"{text}\""),
        Value::Scalar {
            text,
            quoted: false,
        } => match resolve_plain(text) {
            Plain::Int(_) | Plain::BigInt => format!("the number {text}"),
            Plain::Float(_) => format!("the number {text}"),
            Plain::Bool(_) => format!("the boolean {text}"),
            Plain::Null => "nothing".into(),
            Plain::Str => format!("`{text}`"),
        },
    }
}

pub(crate) enum PortOrName<'n> {
    Number(u16),
    Name(&'n String),
}

pub(crate) struct Decoder {
    source: String,
    pub diags: Vec<Diagnostic>,
    pub ignored: Vec<Ignored>,
    /// Names the object being decoded, to start messages with.
    what: String,
    /// What the manifests kept as JSON (`Service::raw`...) may still take.
    json_left: usize,
    /// An item of a `kind: List` was rejected whole (see `Decoded::lost`).
    lost_item: bool,
}

/// The most memory the manifests kept whole as JSON may take together.
/// A JSON object costs far more than its YAML mapping (a B-tree node of
/// eleven slots, even for one key), so a file within the YAML budget could
/// still take hundreds of MB here; the cost is estimated before converting.
/// 10,000 services of one port (a 1 MB lab) take about 35 MiB.
pub const MAX_JSON_BYTES: usize = 48 << 20;

/// About what `to_json` allocates for a tree.
fn json_cost(node: &Node) -> usize {
    const VALUE: usize = 32;
    const OBJECT: usize = 640;
    match &node.value {
        Value::Null => VALUE,
        Value::Scalar { text, .. } => VALUE + text.len(),
        Value::Seq(items) => items
            .iter()
            .fold(VALUE + 8, |n, i| n.saturating_add(json_cost(i))),
        Value::Map(entries) => entries.iter().fold(OBJECT, |n, (k, v)| {
            n.saturating_add(24 + json_cost(k))
                .saturating_add(json_cost(v))
        }),
    }
}

impl Decoder {
    /// A decoder for another kind of file (an exercise) that reports
    /// against `source`.
    pub(crate) fn new(source: &str) -> Decoder {
        Decoder {
            source: source.to_string(),
            diags: Vec::new(),
            ignored: Vec::new(),
            what: String::new(),
            json_left: MAX_JSON_BYTES,
            lost_item: false,
        }
    }

    pub(crate) fn err(
        &mut self,
        pos: Pos,
        field: impl Into<String>,
        message: String,
        hint: Option<String>,
    ) {
        let message = if self.what.is_empty() {
            message
        } else {
            format!("{}: {message}", self.what)
        };
        self.diags.push(Diagnostic {
            source: self.source.clone(),
            pos,
            field: field.into(),
            message,
            hint,
        });
    }

    /// Every field of a mapping, unchecked: a stored kind keeps what it
    /// does not read. `None` (after reporting) when `node` is not a mapping.
    fn fields_any<'n>(&mut self, node: &'n Node) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.err(
                node.pos,
                "",
                format!("expected a mapping, found {}", describe(node)),
                None,
            );
            return None;
        };
        let entries = entries
            .iter()
            .filter_map(|(k, v)| match &k.value {
                Value::Scalar { text, .. } => Some((text.as_str(), v)),
                _ => None,
            })
            .collect();
        Some(Fields {
            pos: node.pos,
            entries,
            suggested: Vec::new(),
        })
    }

    /// Take `cost` (`json_cost(doc)`) from what the objects kept as JSON
    /// may still use; `false` after reporting when it is not left.
    fn take_json(&mut self, doc: &Node, cost: usize) -> bool {
        if cost > self.json_left {
            self.err(
                doc.pos,
                "",
                format!(
                    "too large to keep: as JSON it would take about {}, more than is left of the {} a lab's services, network policies and stored objects may take together",
                    super::yaml::human_bytes(cost),
                    super::yaml::human_bytes(MAX_JSON_BYTES)
                ),
                Some("remove what podlab ignores from it (`status`, annotations, ignored fields), or split the lab (docs/limits.md)".into()),
            );
            return false;
        }
        self.json_left -= cost;
        true
    }

    /// The fields of a mapping. Ignored fields are recorded, unknown ones
    /// reported; `None` (after reporting) when `node` is not a mapping.
    pub(crate) fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
        ignored: &[&str],
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.err(
                node.pos,
                path,
                format!("expected a mapping, found {}", describe(node)),
                None,
            );
            return None;
        };
        let mut out = Fields {
            pos: node.pos,
            entries: Vec::new(),
            suggested: Vec::new(),
        };
        for (k, v) in entries {
            let Value::Scalar { text: key, .. } = &k.value else {
                self.err(
                    k.pos,
                    path,
                    format!("expected a field name, found {}", describe(k)),
                    None,
                );
                continue;
            };
            let field = join(path, key);
            if known.contains(&key.as_str()) {
                out.entries.push((key, v));
            } else if ignored.contains(&key.as_str()) {
                self.ignored.push(Ignored { pos: k.pos, field });
            } else if let Some(hint) = unsupported(key) {
                self.err(
                    k.pos,
                    field,
                    format!("field `{key}` is not supported by podlab"),
                    Some(hint.into()),
                );
            } else {
                let all: Vec<&str> = known.iter().chain(ignored).copied().collect();
                let suggestion = did_you_mean(key, &all);
                if let Some(m) = suggestion {
                    out.suggested.push(m.to_string());
                }
                let hint = suggestion.map(|m| format!("did you mean `{m}`?"));
                self.err(k.pos, field, format!("unknown field `{key}`"), hint);
            }
        }
        Some(out)
    }

    /// A port given as a number or as a container port's name (a
    /// Service's `targetPort`, a policy's `port`): the number checked, the
    /// name returned as written for the caller's own rules. `None` after
    /// reporting anything else.
    pub(crate) fn port_or_name<'n>(&mut self, n: &'n Node, path: &str) -> Option<PortOrName<'n>> {
        const EXPECTED: &str = "an integer 1-65535 or a port name";
        let wrong = |d: &mut Self| {
            d.err(
                n.pos,
                path,
                format!("expected {EXPECTED}, found {}", describe(n)),
                None,
            );
            None
        };
        match &n.value {
            Value::Scalar {
                text,
                quoted: false,
            } => match resolve_plain(text) {
                Plain::Int(_) | Plain::BigInt => self
                    .int(n, path, 1, 65535, EXPECTED)
                    .map(|p| PortOrName::Number(p as u16)),
                Plain::Str => Some(PortOrName::Name(text)),
                _ => wrong(self),
            },
            Value::Scalar { text, quoted: true } => Some(PortOrName::Name(text)),
            _ => wrong(self),
        }
    }

    /// A YAML boolean; a quoted "true" is a string, as Kubernetes reads it.
    pub(crate) fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        if let Value::Scalar {
            text,
            quoted: false,
        } = &node.value
        {
            if let Plain::Bool(b) = resolve_plain(text) {
                return Some(b);
            }
        }
        self.err(
            node.pos,
            path,
            format!("expected true or false, found {}", describe(node)),
            None,
        );
        None
    }

    pub(crate) fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, quoted: true } => Some(text.clone()),
            Value::Scalar {
                text,
                quoted: false,
            } if resolve_plain(text) == Plain::Str => Some(text.clone()),
            Value::Scalar {
                text,
                quoted: false,
            } => {
                self.err(
                    node.pos,
                    path,
                    format!("expected a string, found {}", describe(node)),
                    Some(format!("quote it: \"{text}\"")),
                );
                None
            }
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!("expected a string, found {}", describe(node)),
                    None,
                );
                None
            }
        }
    }

    /// An integer in `lo..=hi`; `expected` says so in words.
    pub(crate) fn int(
        &mut self,
        node: &Node,
        path: &str,
        lo: i64,
        hi: i64,
        expected: &str,
    ) -> Option<i64> {
        if let Value::Scalar {
            text,
            quoted: false,
        } = &node.value
        {
            if let Plain::Int(i) = resolve_plain(text) {
                if (lo..=hi).contains(&i) {
                    return Some(i);
                }
            }
        }
        let hint = match &node.value {
            Value::Scalar { text, quoted: true } if text.trim().parse::<i64>().is_ok() => {
                Some("remove the quotes: a number in quotes is a string".to_string())
            }
            _ => None,
        };
        self.err(
            node.pos,
            path,
            format!("expected {expected}, found {}", describe(node)),
            hint,
        );
        None
    }

    pub(crate) fn string_list(&mut self, node: &Node, path: &str) -> Vec<String> {
        let Value::Seq(items) = &node.value else {
            self.err(
                node.pos,
                path,
                format!("expected a list of strings, found {}", describe(node)),
                None,
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.string(item, &format!("{path}[{i}]")))
            .collect()
    }

    fn labels(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Value::Map(entries) = &node.value else {
            self.err(
                node.pos,
                path,
                format!("expected a mapping of labels, found {}", describe(node)),
                None,
            );
            return out;
        };
        for (k, v) in entries {
            let Some(key) = self.string(k, path) else {
                continue;
            };
            let field = join(path, &key);
            // A label with no value is the empty string, as in Kubernetes.
            let value = if v.value == Value::Null {
                Some(String::new())
            } else {
                self.string(v, &field)
            };
            let Some(value) = value else { continue };
            if let Some(problem) = validate::label_problem(&key, &value) {
                self.err(k.pos, field, problem, None);
                continue;
            }
            out.insert(key, value);
        }
        out
    }

    /// A port's `protocol`: `None` after reporting anything but TCP, UDP
    /// or SCTP.
    pub(crate) fn protocol(&mut self, n: &Node, path: &str) -> Option<Protocol> {
        let s = self.string(n, path)?;
        match s.as_str() {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => {
                let hint = did_you_mean(&s, &["TCP", "UDP", "SCTP"])
                    .map(|m| format!("did you mean `{m}`?"));
                self.err(
                    n.pos,
                    path,
                    format!("expected TCP, UDP or SCTP, found `{s}`"),
                    hint,
                );
                None
            }
        }
    }

    pub(crate) fn list<'n>(&mut self, node: &'n Node, path: &str, expected: &str) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) => items,
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!("expected {expected}, found {}", describe(node)),
                    None,
                );
                &[]
            }
        }
    }

    /// A string field that must be a DNS-1123 label.
    fn label_field(&mut self, node: &Node, path: &str, kind: &str) -> Option<String> {
        let s = self.string(node, path)?;
        if let Some((msg, hint)) = name_problem(kind, &s) {
            self.err(node.pos, path, msg, Some(hint));
        }
        Some(s)
    }
}

/// `metadata`, decoded.
#[derive(Default)]
struct Meta {
    name: Option<(String, Pos)>,
    /// A name was written, even if it was not a string (already reported).
    name_given: bool,
    namespace: Option<(String, Pos)>,
    labels: BTreeMap<String, String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Scope {
    Namespaced,
    Cluster,
    /// A pod template: Kubernetes ignores its name and namespace.
    Template,
}

impl Decoder {
    fn meta(&mut self, node: Option<&Node>, path: &str, scope: Scope) -> Meta {
        let mut meta = Meta::default();
        let Some(node) = node else { return meta };
        let (known, ignored): (Vec<&str>, Vec<&str>) = match scope {
            Scope::Namespaced => (META.to_vec(), META_IGNORED.to_vec()),
            // Kubernetes ignores a namespace on cluster-scoped objects.
            Scope::Cluster => (
                vec!["name", "labels"],
                META_IGNORED.iter().chain(&["namespace"]).copied().collect(),
            ),
            Scope::Template => (
                vec!["labels"],
                META_IGNORED
                    .iter()
                    .chain(&["name", "namespace"])
                    .copied()
                    .collect(),
            ),
        };
        let Some(f) = self.fields(node, path, &known, &ignored) else {
            return meta;
        };
        if let Some(n) = f.get("name") {
            meta.name_given = true;
            meta.name = self.string(n, &join(path, "name")).map(|s| (s, n.pos));
        }
        if let Some(n) = f.get("namespace") {
            let field = join(path, "namespace");
            if let Some(s) = self.string(n, &field) {
                if let Some((msg, hint)) = name_problem("namespace", &s) {
                    self.err(n.pos, field, msg, Some(hint));
                }
                meta.namespace = Some((s, n.pos));
            }
        }
        if let Some(n) = f.get("labels") {
            meta.labels = self.labels(n, &join(path, "labels"));
        }
        meta
    }

    /// The name, required and checked; `kind` names the object in messages.
    fn required_name(&mut self, meta: &Meta, doc: &Fields, kind: &str) -> Option<(String, Pos)> {
        match &meta.name {
            Some((name, pos)) => {
                if let Some((msg, hint)) = name_problem(kind, name) {
                    self.err(*pos, "metadata.name", msg, Some(hint));
                }
                self.what = format!("{kind} `{name}`");
                Some((name.clone(), *pos))
            }
            None if meta.name_given => None,
            None => {
                let pos = doc.get("metadata").map_or(doc.pos, |m| m.pos);
                self.err(
                    pos,
                    "metadata.name",
                    format!("{kind} has no name"),
                    Some("add `metadata:` with `name:`".into()),
                );
                None
            }
        }
    }
}

/// What `decode` produces: the lab (possibly partial) and the spans.
pub(crate) struct Decoded {
    pub file: LabFile,
    pub spans: Spans,
    pub diags: Vec<Diagnostic>,
    /// Whether a document was rejected whole (an unknown kind, no name...),
    /// so that the lab lacks an object the file meant to have.
    pub lost: bool,
}

fn objects(file: &LabFile) -> usize {
    file.stored.len()
        + file.namespaces.len()
        + file.pods.len()
        + file.deployments.len()
        + file.workloads.len()
        + file.services.len()
        + file.endpoints.len()
        + file.policies.len()
}

fn is_lab_document(doc: &Node) -> bool {
    match &doc.value {
        Value::Map(entries) => entries.iter().any(|(k, v)| {
            matches!(&k.value, Value::Scalar { text, .. } if text == "kind")
                && matches!(&v.value, Value::Scalar { text, .. } if text == "Lab")
        }),
        _ => false,
    }
}

/// A lab name from the file name, for a file with no Lab document.
pub fn default_lab_name(source: &str) -> String {
    let stem = Path::new(source)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = validate::suggest_label(&stem)
        .chars()
        .take(MAX_LAB_NAME)
        .collect();
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() {
        "lab".into()
    } else {
        name
    }
}

fn default_nodes(n: usize, pos: Pos) -> Vec<NodeSpec> {
    (1..=n)
        .map(|i| NodeSpec {
            name: format!("node-{i}"),
            pos,
            labels: BTreeMap::new(),
        })
        .collect()
}

/// Takes the documents by value: each is dropped once decoded, so the YAML
/// tree and what is made of it (the JSON kept of services, above all) are
/// not both whole in memory at once.
pub(crate) fn decode(source: &str, docs: Vec<Node>) -> Decoded {
    let mut d = Decoder::new(source);
    let mut spans = Spans::default();
    let mut file = LabFile {
        source: source.to_string(),
        lab: Lab {
            name: default_lab_name(source),
            pos: Pos { line: 1, col: 1 },
            nodes: default_nodes(2, Pos { line: 1, col: 1 }),
            network: Network::default(),
            expect: Vec::new(),
            dns_upstream: Vec::new(),
        },
        namespaces: Vec::new(),
        pods: Vec::new(),
        deployments: Vec::new(),
        workloads: Vec::new(),
        services: Vec::new(),
        endpoints: Vec::new(),
        policies: Vec::new(),
        stored: Vec::new(),
        custom_kinds: stored::custom_kinds(&docs),
        ignored: Vec::new(),
        warnings: Vec::new(),
    };
    spans.lab_pos = file.lab.pos;
    let mut lost = false;
    for (i, doc) in docs.into_iter().enumerate() {
        d.what = String::new();
        let before = objects(&file);
        document(&mut d, &mut file, &mut spans, i, &doc);
        lost |= objects(&file) == before && !(i == 0 && is_lab_document(&doc));
    }
    lost |= d.lost_item;
    file.ignored = std::mem::take(&mut d.ignored);
    file.ignored.sort_by_key(|i| (i.pos.line, i.pos.col));
    Decoded {
        file,
        spans,
        diags: d.diags,
        lost,
    }
}

fn api_version_for(kind: &str) -> &'static str {
    match kind {
        "Lab" => "podlab/v1alpha1",
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps/v1",
        "NetworkPolicy" => "networking.k8s.io/v1",
        "EndpointSlice" => "discovery.k8s.io/v1",
        _ => "v1",
    }
}

fn document(d: &mut Decoder, file: &mut LabFile, spans: &mut Spans, index: usize, doc: &Node) {
    let label = format!("document {}", index + 1);
    object(d, file, spans, index, &label, doc, false);
}

/// A `kind: List` (what `kubectl get -o yaml` writes, and some tools):
/// each item is decoded as a document of its own.
fn list_items(
    d: &mut Decoder,
    file: &mut LabFile,
    spans: &mut Spans,
    index: usize,
    label: &str,
    doc: &Node,
) {
    let Some(items) = stored::field(doc, "items").filter(|n| n.value != Value::Null) else {
        return;
    };
    for (i, item) in d
        .list(items, "items", "a list of objects")
        .iter()
        .enumerate()
    {
        d.what = String::new();
        let before = objects(file);
        object(
            d,
            file,
            spans,
            index,
            &format!("{label}, items[{i}]"),
            item,
            true,
        );
        d.lost_item |= objects(file) == before;
    }
    d.what = String::new();
}

/// One object: a document, or an item of a List (`in_list`). `label`
/// names it in messages (`document 3`, `document 3, items[1]`).
fn object(
    d: &mut Decoder,
    file: &mut LabFile,
    spans: &mut Spans,
    index: usize,
    label: &str,
    doc: &Node,
    in_list: bool,
) {
    let Value::Map(_) = &doc.value else {
        d.err(
            doc.pos,
            "",
            format!(
                "{label}: expected a Kubernetes object (a mapping with apiVersion and kind), found {}",
                describe(doc)
            ),
            None,
        );
        return;
    };
    // Fields are checked once the kind is known; read these two first.
    let get = |key: &str| stored::field(doc, key).filter(|v| v.value != Value::Null);
    let Some(kind_node) = get("kind") else {
        d.err(
            doc.pos,
            "kind",
            format!("{label} has no `kind`"),
            Some(stored::kinds_hint(file, None)),
        );
        return;
    };
    let Some(kind) = d.string(kind_node, "kind") else {
        return;
    };
    // kubectl takes any `*List` with items as a list (`PodList` from
    // `kubectl get pods -o yaml` of old clients), not only `List`.
    let is_list = kind == "List" || (kind.ends_with("List") && get("items").is_some());
    if is_list {
        if in_list {
            d.err(
                kind_node.pos,
                "kind",
                format!("{label}: a List inside a List"),
                Some("put its items in the outer List's items".into()),
            );
        } else {
            list_items(d, file, spans, index, label, doc);
        }
        return;
    }
    let api_node = get("apiVersion");
    let api = match api_node {
        Some(v) => d.string(v, "apiVersion"),
        None => None,
    };
    let resolved = stored::resolve(file, &kind, api.as_deref());
    let expected: Vec<String> = match &resolved {
        stored::Resolved::Network => vec![api_version_for(&kind).to_string()],
        stored::Resolved::Builtin(sk) => sk
            .versions
            .iter()
            .map(|v| {
                if sk.group.is_empty() {
                    v.to_string()
                } else {
                    format!("{}/{v}", sk.group)
                }
            })
            .collect(),
        stored::Resolved::Custom(i) => file.custom_kinds[*i].api_versions().collect(),
        stored::Resolved::WrongVersion(v) => v.clone(),
        stored::Resolved::Unknown => {
            d.err(
                kind_node.pos,
                "kind",
                format!("{label}: kind `{kind}` is not supported"),
                Some(stored::kinds_hint(file, Some(&kind))),
            );
            return;
        }
    };
    match (api_node, &api) {
        (None, _) => d.err(
            doc.pos,
            "apiVersion",
            format!("{label} ({kind}) has no `apiVersion`"),
            Some(format!("add `apiVersion: {}`", expected[0])),
        ),
        (Some(v), Some(a)) if !expected.contains(a) => d.err(
            v.pos,
            "apiVersion",
            format!("{label}: apiVersion `{a}` is not valid for kind {kind}"),
            Some(format!("use `apiVersion: {}`", expected.join("` or `"))),
        ),
        _ => {}
    }
    if let Some(shape) = stored::Shape::of(file, &resolved) {
        if api_node.is_some() && api.as_ref().is_some_and(|a| expected.contains(a)) {
            stored::object(d, file, doc, &kind, shape);
        }
        return;
    }
    if in_list && kind == "Lab" {
        d.err(
            kind_node.pos,
            "kind",
            format!("{label}: a Lab cannot be an item of a List"),
            Some("make the Lab the first document of the file".into()),
        );
        return;
    }
    match kind.as_str() {
        "Lab" => {
            if index != 0 {
                d.err(
                    kind_node.pos,
                    "kind",
                    format!("{label}: the Lab document must be the first in the file"),
                    Some("move it to the top, before every manifest".into()),
                );
                return;
            }
            lab(d, file, spans, doc);
        }
        "Namespace" => {
            let Some(f) = d.fields(doc, "", TOP, &["status", "spec"]) else {
                return;
            };
            let meta = d.meta(f.get("metadata"), "metadata", Scope::Cluster);
            if let Some((name, pos)) = d.required_name(&meta, &f, "namespace") {
                file.namespaces.push(Namespace {
                    name,
                    pos,
                    labels: meta.labels,
                });
            }
        }
        "Pod" => pod(d, file, spans, doc),
        "Deployment" => deployment(d, file, spans, doc),
        "StatefulSet" => workloads::workload(d, file, spans, doc, WorkloadKind::StatefulSet),
        "DaemonSet" => workloads::workload(d, file, spans, doc, WorkloadKind::DaemonSet),
        "ReplicaSet" => workloads::workload(d, file, spans, doc, WorkloadKind::ReplicaSet),
        "Endpoints" => endpoints::endpoints(d, file, doc),
        "EndpointSlice" => endpoints::slice(d, file, doc),
        "Service" | "NetworkPolicy" => {
            let kind_word = if kind == "Service" {
                "service"
            } else {
                "network policy"
            };
            let Some(f) = d.fields(doc, "", TOP, TOP_IGNORED) else {
                return;
            };
            let meta = d.meta(f.get("metadata"), "metadata", Scope::Namespaced);
            let Some((name, pos)) = d.required_name(&meta, &f, kind_word) else {
                return;
            };
            let namespace = meta
                .namespace
                .as_ref()
                .map_or_else(|| "default".to_string(), |(s, _)| s.clone());
            let ns_pos = meta.namespace.as_ref().map(|(_, p)| *p);
            if !d.take_json(doc, json_cost(doc)) {
                return;
            }
            let raw = to_json(doc);
            if kind == "Service" {
                let (spec, s) = service::spec(d, f.get("spec"), f.pos);
                file.services.push(Service {
                    namespace,
                    name,
                    pos,
                    raw,
                    spec,
                });
                spans.services.push(ns_pos);
                spans.service_specs.push(s);
            } else {
                let spec = netpol::spec(d, f.get("spec"), f.pos);
                file.policies.push(NetworkPolicy {
                    namespace,
                    name,
                    pos,
                    raw,
                    spec,
                });
                spans.policies.push(ns_pos);
            }
        }
        _ => {}
    }
}

/// The YAML tree as JSON, with plain scalars typed as YAML would type them.
/// Whether objects of `kind` live outside namespaces (a CRD's own objects
/// count as namespaced: their scope is in a spec not seen here).
pub fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Lab" | "Namespace" | "Node" | "CustomResourceDefinition"
    ) || super::stored::stored_kind(kind).is_some_and(|k| !k.namespaced)
}

pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Null => J::Null,
        Value::Scalar { text, quoted: true } => J::String(text.clone()),
        Value::Scalar {
            text,
            quoted: false,
        } => match resolve_plain(text) {
            Plain::Null => J::Null,
            Plain::Bool(b) => J::Bool(b),
            Plain::Int(i) => J::from(i),
            Plain::Float(f) => {
                serde_json::Number::from_f64(f).map_or(J::String(text.clone()), J::Number)
            }
            Plain::BigInt | Plain::Str => J::String(text.clone()),
        },
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match &k.value {
                        Value::Scalar { text, .. } => text.clone(),
                        _ => to_json(k).to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

fn lab(d: &mut Decoder, file: &mut LabFile, spans: &mut Spans, doc: &Node) {
    let Some(f) = d.fields(doc, "", TOP, &[]) else {
        return;
    };
    let meta = d.meta(f.get("metadata"), "metadata", Scope::Cluster);
    if let Some((name, pos)) = d.required_name(&meta, &f, "lab") {
        if name.len() > MAX_LAB_NAME {
            d.err(
                pos,
                "metadata.name",
                format!(
                    "lab name `{name}` is {} characters, at most {MAX_LAB_NAME} are allowed",
                    name.len()
                ),
                Some("the lab name prefixes the name of every kernel object the lab makes (network namespaces, interfaces limited to 15 bytes), so it must be short".into()),
            );
        }
        file.lab.name = name;
        file.lab.pos = pos;
        spans.lab_pos = pos;
    }
    let nodes_pos = file.lab.pos;
    file.lab.nodes = default_nodes(2, nodes_pos);
    let Some(spec_node) = f.get("spec") else {
        return;
    };
    let Some(spec) = d.fields(
        spec_node,
        "spec",
        &["nodes", "network", "dns", "expect"],
        &[],
    ) else {
        return;
    };
    if let Some(n) = spec.get("nodes") {
        nodes(d, file, n);
    }
    if let Some(n) = spec.get("network") {
        network(d, file, spans, n);
    }
    // After `network`: names are checked against its cluster domain.
    if let Some(n) = spec.get("dns") {
        file.lab.dns_upstream = dns::lab_dns(d, n, &file.lab.network.cluster_domain);
    }
    if let Some(n) = spec.get("expect") {
        file.lab.expect = super::expect::decode(d, n);
    }
}

fn nodes(d: &mut Decoder, file: &mut LabFile, n: &Node) {
    let range = format!("an integer 1-{MAX_NODES} or a list of nodes");
    match &n.value {
        Value::Seq(items) => {
            if items.is_empty() {
                d.err(
                    n.pos,
                    "spec.nodes",
                    "a lab needs at least 1 node".into(),
                    None,
                );
                return;
            }
            if items.len() > MAX_NODES as usize {
                d.err(
                    n.pos,
                    "spec.nodes",
                    format!("{} nodes is too many: at most {MAX_NODES}", items.len()),
                    Some("node addresses must fit the node network and pod CIDR".into()),
                );
                return;
            }
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("spec.nodes[{i}]");
                let Some(f) = d.fields(item, &path, &["name", "labels"], &[]) else {
                    continue;
                };
                let labels = f
                    .get("labels")
                    .map(|l| d.labels(l, &join(&path, "labels")))
                    .unwrap_or_default();
                match f.get("name") {
                    Some(name_node) => {
                        if let Some(name) = d.label_field(name_node, &join(&path, "name"), "node") {
                            out.push(NodeSpec {
                                name,
                                pos: name_node.pos,
                                labels,
                            });
                        }
                    }
                    None => d.err(
                        item.pos,
                        join(&path, "name"),
                        "node has no name".into(),
                        Some("add `name:`, e.g. `name: node-1`".into()),
                    ),
                }
            }
            file.lab.nodes = out;
        }
        _ => {
            // Counting first, so that 0 and 1000 get a message about the
            // range rather than about the type.
            if let Value::Scalar {
                text,
                quoted: false,
            } = &n.value
            {
                if let Plain::Int(i) = resolve_plain(text) {
                    if i < 1 {
                        d.err(
                            n.pos,
                            "spec.nodes",
                            "a lab needs at least 1 node".into(),
                            None,
                        );
                        return;
                    }
                    if i > MAX_NODES {
                        d.err(
                            n.pos,
                            "spec.nodes",
                            format!("{i} nodes is too many: at most {MAX_NODES}"),
                            Some("node addresses must fit the node network and pod CIDR".into()),
                        );
                        return;
                    }
                }
            }
            if let Some(i) = d.int(n, "spec.nodes", 1, MAX_NODES, &range) {
                file.lab.nodes = default_nodes(i as usize, n.pos);
            }
        }
    }
}

const NETWORK: &[&str] = &[
    "nodeCIDR",
    "podCIDR",
    "podCIDRMask",
    "serviceCIDR",
    "clusterDomain",
    "dnsIP",
    "nodePortRange",
    "loadBalancerPool",
    "mtu",
];

fn network(d: &mut Decoder, file: &mut LabFile, spans: &mut Spans, n: &Node) {
    let Some(f) = d.fields(n, "spec.network", NETWORK, &[]) else {
        return;
    };
    let net = &mut file.lab.network;
    for &key in NETWORK {
        let Some(v) = f.get(key) else { continue };
        spans.network.insert(key, v.pos);
        let path = join("spec.network", key);
        match key {
            "nodeCIDR" | "podCIDR" | "serviceCIDR" => {
                if let Some(c) = cidr(d, v, &path).filter(|c| cidr_size_ok(d, v, &path, key, *c)) {
                    match key {
                        "nodeCIDR" => net.node_cidr = c,
                        "podCIDR" => net.pod_cidr = c,
                        _ => net.service_cidr = c,
                    }
                }
            }
            "podCIDRMask" => {
                if let Some(m) = d.int(v, &path, 1, 32, "an integer 1-32 (a prefix length)") {
                    net.node_pod_prefix = m as u8;
                }
            }
            "clusterDomain" => {
                if let Some(s) = d.string(v, &path) {
                    if validate::is_dns1123_subdomain(&s) {
                        net.cluster_domain = s;
                    } else {
                        d.err(
                            v.pos,
                            path,
                            format!("clusterDomain `{s}` is not a DNS domain"),
                            Some(
                                "use lowercase labels separated by dots, e.g. cluster.local".into(),
                            ),
                        );
                    }
                }
            }
            "dnsIP" => {
                if let Some(s) = d.string(v, &path) {
                    match s.parse::<Ipv4Addr>() {
                        Ok(ip) => net.dns_ip = ip,
                        Err(_) => d.err(
                            v.pos,
                            path,
                            format!("expected an IPv4 address like 10.96.0.10, found `{s}`"),
                            None,
                        ),
                    }
                }
            }
            "nodePortRange" => {
                if let Some(s) = d.string(v, &path) {
                    let parsed = s.split_once('-').and_then(|(a, b)| {
                        Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?))
                    });
                    match parsed {
                        Some((a, b)) if (1..=65535).contains(&a) && (1..=65535).contains(&b) => {
                            net.node_port_range = (a as u16, b as u16);
                        }
                        Some((a, b)) => d.err(
                            v.pos,
                            path,
                            format!("nodePortRange {a}-{b} is outside the port numbers 1-65535"),
                            Some("the usual range is 30000-32767".into()),
                        ),
                        None => d.err(
                            v.pos,
                            path,
                            format!("expected a port range like 30000-32767, found `{s}`"),
                            None,
                        ),
                    }
                }
            }
            "loadBalancerPool" => {
                if let Some(s) = d.string(v, &path) {
                    let parsed = s.split_once('-').and_then(|(a, b)| {
                        Some((
                            a.trim().parse::<Ipv4Addr>().ok()?,
                            b.trim().parse::<Ipv4Addr>().ok()?,
                        ))
                    });
                    match parsed {
                        Some(pool) => net.load_balancer_pool = pool,
                        None => d.err(
                            v.pos,
                            path,
                            format!(
                                "expected an address range like 172.18.0.200-172.18.0.250, found `{s}`"
                            ),
                            None,
                        ),
                    }
                }
            }
            "mtu" => {
                if let Some(m) = d.int(v, &path, 576, 9000, "an integer 576-9000") {
                    net.mtu = m as u32;
                }
            }
            _ => {}
        }
    }
}

/// The shortest prefix each range may have. A lab's node network is one
/// bridge of at most 250 nodes; a pod network larger than a /8 or a service
/// network larger than a /12 (kube-apiserver's own limit for
/// `--service-cluster-ip-range`) has no use in a lab, and a short prefix
/// would also shadow real routes of the host. Checked before anything
/// counts or enumerates the addresses of a range.
pub const MIN_PREFIX: &[(&str, u8, &str)] = &[
    ("nodeCIDR", 16, "172.18.0.0/24"),
    ("podCIDR", 8, "10.244.0.0/16"),
    ("serviceCIDR", 12, "10.96.0.0/12"),
];

fn cidr_size_ok(d: &mut Decoder, v: &Node, path: &str, key: &str, c: Ipv4Net) -> bool {
    let Some(&(_, min, example)) = MIN_PREFIX.iter().find(|(k, _, _)| *k == key) else {
        return true;
    };
    if c.prefix_len() >= min {
        return true;
    }
    d.err(
        v.pos,
        path,
        format!(
            "{key} {c} is too large: a /{} holds {} addresses, and a lab's {key} may be at most a /{min}",
            c.prefix_len(),
            1u64 << (32 - u32::from(c.prefix_len()))
        ),
        Some(format!("use a /{min} or a longer prefix, e.g. {example} (docs/limits.md)")),
    );
    false
}

fn cidr(d: &mut Decoder, v: &Node, path: &str) -> Option<Ipv4Net> {
    let s = d.string(v, path)?;
    match s.parse::<Ipv4Net>() {
        Ok(c) => Some(c),
        Err(_) => {
            let hint = match s.split_once('/') {
                Some((addr, len)) if addr.parse::<Ipv4Addr>().is_ok() => match len.parse::<u32>() {
                    Ok(l) if l > 32 => Some("an IPv4 prefix length is 0-32".to_string()),
                    _ => None,
                },
                None if s.parse::<Ipv4Addr>().is_ok() => {
                    Some(format!("add a prefix length, e.g. {s}/24"))
                }
                _ => None,
            };
            d.err(
                v.pos,
                path,
                format!("expected an IPv4 CIDR like 10.244.0.0/16, found `{s}`"),
                hint,
            );
            None
        }
    }
}

fn pod(d: &mut Decoder, file: &mut LabFile, spans: &mut Spans, doc: &Node) {
    let Some(f) = d.fields(doc, "", TOP, TOP_IGNORED) else {
        return;
    };
    let meta = d.meta(f.get("metadata"), "metadata", Scope::Namespaced);
    let name = d.required_name(&meta, &f, "pod");
    let mut s = ObjSpans {
        namespace: meta.namespace.as_ref().map(|(_, p)| *p),
        prefix: "spec",
        ..ObjSpans::default()
    };
    let spec = match f.get("spec") {
        Some(n) => pod_spec(d, n, "spec", None, &mut s),
        None => {
            d.err(
                f.pos,
                "spec",
                "pod has no `spec`".into(),
                Some("a pod needs `spec.containers`".into()),
            );
            None
        }
    };
    if let (Some((name, pos)), Some(spec)) = (name, spec) {
        file.pods.push(Pod {
            namespace: meta
                .namespace
                .map_or_else(|| "default".into(), |(ns, _)| ns),
            name,
            pos,
            labels: meta.labels,
            spec,
        });
        spans.pods.push(s);
    }
}

fn pod_spec(
    d: &mut Decoder,
    node: &Node,
    path: &'static str,
    // The kind whose template this is; `None` for a Pod.
    template: Option<&str>,
    s: &mut ObjSpans,
) -> Option<PodSpec> {
    let f = d.fields(node, path, POD_SPEC, POD_SPEC_IGNORED)?;
    let mut spec = PodSpec {
        node_name: None,
        node_name_pos: Pos::default(),
        containers: Vec::new(),
        restart_policy: RestartPolicy::Always,
        hostname: None,
        subdomain: None,
        dns_policy: DnsPolicy::ClusterFirst,
        dns_config: None,
        enable_service_links: true,
    };
    pod_dns(d, &f, path, &mut spec);
    if let Some(n) = f.get("nodeName") {
        spec.node_name = d.string(n, &join(path, "nodeName"));
        spec.node_name_pos = n.pos;
    }
    for key in ["hostname", "subdomain"] {
        if let Some(n) = f.get(key) {
            let v = d.label_field(n, &join(path, key), key);
            if key == "hostname" {
                spec.hostname = v;
            } else {
                spec.subdomain = v;
            }
        }
    }
    if let Some(n) = f.get("restartPolicy") {
        let field = join(path, "restartPolicy");
        if let Some(v) = d.string(n, &field) {
            const POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
            match v.as_str() {
                "Always" => spec.restart_policy = RestartPolicy::Always,
                "OnFailure" => spec.restart_policy = RestartPolicy::OnFailure,
                "Never" => spec.restart_policy = RestartPolicy::Never,
                _ => {
                    let hint = did_you_mean(&v, POLICIES).map(|m| format!("did you mean `{m}`?"));
                    d.err(
                        n.pos,
                        field.clone(),
                        format!("expected Always, OnFailure or Never, found `{v}`"),
                        hint,
                    );
                }
            }
            if let Some(kind) = template.filter(|_| spec.restart_policy != RestartPolicy::Always) {
                d.err(
                    n.pos,
                    field,
                    format!(
                        "a {}'s pods must have restartPolicy Always, found `{v}`",
                        kind.to_lowercase()
                    ),
                    Some(format!("Kubernetes only accepts Always in a {kind}'s template; use a Pod for OnFailure or Never")),
                );
            }
        }
    }
    let containers_path = join(path, "containers");
    let items = match f.get("containers") {
        Some(n) => d.list(n, &containers_path, "a list of containers"),
        None => &[],
    };
    let misspelt = f.suggested.iter().any(|s| s == "containers");
    if items.is_empty() && !misspelt {
        let at = f.get("containers").map_or(f.pos, |n| n.pos);
        d.err(
            at,
            containers_path.clone(),
            "a pod needs at least one container".into(),
            Some("add `containers:` with `- name: ...`".into()),
        );
    }
    for (i, item) in items.iter().enumerate() {
        let cpath = format!("{containers_path}[{i}]");
        if let Some((c, name_pos, port_names)) = container(d, item, &cpath) {
            spec.containers.push(c);
            s.containers.push(name_pos);
            s.port_names.push(port_names);
        }
    }
    Some(spec)
}

/// `dnsPolicy`, `dnsConfig` and `enableServiceLinks`: what kubelet needs
/// for the pod's resolv.conf and environment.
fn pod_dns(d: &mut Decoder, f: &Fields<'_>, path: &str, spec: &mut PodSpec) {
    if let Some(n) = f.get("enableServiceLinks") {
        if let Some(b) = d.boolean(n, &join(path, "enableServiceLinks")) {
            spec.enable_service_links = b;
        }
    }
    let mut policy_pos = f.pos;
    if let Some(n) = f.get("dnsPolicy") {
        let field = join(path, "dnsPolicy");
        policy_pos = n.pos;
        if let Some(v) = d.string(n, &field) {
            const POLICIES: &[&str] =
                &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
            spec.dns_policy = match v.as_str() {
                "ClusterFirst" => DnsPolicy::ClusterFirst,
                "ClusterFirstWithHostNet" => DnsPolicy::ClusterFirstWithHostNet,
                "Default" => DnsPolicy::Default,
                "None" => DnsPolicy::None,
                _ => {
                    let hint = did_you_mean(&v, POLICIES).map(|m| format!("did you mean `{m}`?"));
                    d.err(
                        n.pos,
                        field,
                        format!("expected ClusterFirst, ClusterFirstWithHostNet, Default or None, found `{v}`"),
                        hint,
                    );
                    DnsPolicy::ClusterFirst
                }
            };
        }
    }
    if let Some(n) = f.get("dnsConfig") {
        let cpath = join(path, "dnsConfig");
        if let Some(cf) = d.fields(n, &cpath, &["nameservers", "searches", "options"], &[]) {
            let mut config = DnsConfig::default();
            if let Some(v) = cf.get("nameservers") {
                let npath = join(&cpath, "nameservers");
                for (i, item) in d.list(v, &npath, "a list of addresses").iter().enumerate() {
                    let ipath = format!("{npath}[{i}]");
                    if let Some(s) = d.string(item, &ipath) {
                        if s.parse::<std::net::IpAddr>().is_err() {
                            d.err(item.pos, ipath, format!("`{s}` is not an IP address"), None);
                        } else {
                            config.nameservers.push(s);
                        }
                    }
                }
            }
            if let Some(v) = cf.get("searches") {
                config.searches = d.string_list(v, &join(&cpath, "searches"));
            }
            if let Some(v) = cf.get("options") {
                let opath = join(&cpath, "options");
                for (i, item) in d.list(v, &opath, "a list of options").iter().enumerate() {
                    let ipath = format!("{opath}[{i}]");
                    let Some(of) = d.fields(item, &ipath, &["name", "value"], &[]) else {
                        continue;
                    };
                    let Some(name) = of
                        .get("name")
                        .and_then(|n| d.string(n, &join(&ipath, "name")))
                    else {
                        d.err(
                            of.pos,
                            join(&ipath, "name"),
                            "option has no name".into(),
                            None,
                        );
                        continue;
                    };
                    let value = of
                        .get("value")
                        .and_then(|n| d.string(n, &join(&ipath, "value")));
                    config.options.push((name, value));
                }
            }
            spec.dns_config = Some(config);
        }
    }
    // As the API server: a pod with `dnsPolicy: None` must say where to ask.
    if spec.dns_policy == DnsPolicy::None
        && spec
            .dns_config
            .as_ref()
            .is_none_or(|c| c.nameservers.is_empty())
    {
        d.err(
            policy_pos,
            join(path, "dnsPolicy"),
            "dnsPolicy None needs at least one nameserver in dnsConfig".into(),
            Some(
                "add `dnsConfig: {nameservers: [10.96.0.10]}`, or use dnsPolicy ClusterFirst"
                    .into(),
            ),
        );
    }
}

fn container(
    d: &mut Decoder,
    node: &Node,
    path: &str,
) -> Option<(Container, Pos, Vec<Option<Pos>>)> {
    let f = d.fields(node, path, CONTAINER, CONTAINER_IGNORED)?;
    let name = match f.get("name") {
        Some(n) => d
            .label_field(n, &join(path, "name"), "container")
            .map(|s| (s, n.pos)),
        None => {
            d.err(
                f.pos,
                join(path, "name"),
                "container has no name".into(),
                Some("add `name:`, e.g. `name: web`".into()),
            );
            None
        }
    };
    let image = f
        .get("image")
        .and_then(|n| d.string(n, &join(path, "image")));
    let command = f
        .get("command")
        .map(|n| d.string_list(n, &join(path, "command")))
        .unwrap_or_default();
    let args = f
        .get("args")
        .map(|n| d.string_list(n, &join(path, "args")))
        .unwrap_or_default();
    let mut ports = Vec::new();
    let mut port_names = Vec::new();
    if let Some(n) = f.get("ports") {
        let ppath = join(path, "ports");
        for (i, item) in d.list(n, &ppath, "a list of ports").iter().enumerate() {
            if let Some((p, name_pos)) = port(d, item, &format!("{ppath}[{i}]")) {
                ports.push(p);
                port_names.push(name_pos);
            }
        }
    }
    let mut env = Vec::new();
    if let Some(n) = f.get("env") {
        let epath = join(path, "env");
        for (i, item) in d.list(n, &epath, "a list of variables").iter().enumerate() {
            let vpath = format!("{epath}[{i}]");
            let Some(ef) = d.fields(item, &vpath, ENV, ENV_IGNORED) else {
                continue;
            };
            let Some(name_node) = ef.get("name") else {
                d.err(
                    ef.pos,
                    join(&vpath, "name"),
                    "environment variable has no name".into(),
                    None,
                );
                continue;
            };
            let Some(var) = d.string(name_node, &join(&vpath, "name")) else {
                continue;
            };
            let value_from = matches!(&item.value, Value::Map(e)
                if e.iter().any(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == "valueFrom")));
            match ef.get("value") {
                Some(v) => {
                    if let Some(value) = d.string(v, &join(&vpath, "value")) {
                        env.push(EnvVar { name: var, value });
                    }
                }
                // A value taken from a Secret or ConfigMap cannot be known
                // here; the variable is left unset rather than set wrong.
                None if value_from => {}
                None => env.push(EnvVar {
                    name: var,
                    value: String::new(),
                }),
            }
        }
    }
    let mut probes = crate::lab::ProbeKind::ALL.map(|(kind, key)| {
        let p = f
            .get(key)
            .and_then(|n| probe::probe(d, n, &join(path, key), kind))?;
        probe::check_named_port(d, &p, &ports, &join(path, key));
        Some(p)
    });
    let (name, pos) = name?;
    Some((
        Container {
            name,
            image,
            command,
            args,
            ports,
            env,
            readiness_probe: probes[0].take(),
            liveness_probe: probes[1].take(),
            startup_probe: probes[2].take(),
        },
        pos,
        port_names,
    ))
}

fn port(d: &mut Decoder, node: &Node, path: &str) -> Option<(ContainerPort, Option<Pos>)> {
    let f = d.fields(node, path, PORT, PORT_IGNORED)?;
    let mut name = None;
    let mut name_pos = None;
    if let Some(n) = f.get("name") {
        let field = join(path, "name");
        if let Some(s) = d.string(n, &field) {
            if !validate::is_iana_svc_name(&s) {
                d.err(
                    n.pos,
                    field,
                    format!("port name `{s}` is not valid"),
                    Some("a port name (IANA_SVC_NAME) is at most 15 lowercase letters, digits or '-', with at least one letter, and no leading, trailing or doubled '-'".into()),
                );
            }
            name = Some(s);
            name_pos = Some(n.pos);
        }
    }
    let protocol = match f.get("protocol") {
        Some(n) => d.protocol(n, &join(path, "protocol")).unwrap_or_default(),
        None => Protocol::Tcp,
    };
    let Some(n) = f.get("containerPort") else {
        d.err(
            f.pos,
            join(path, "containerPort"),
            "port has no containerPort".into(),
            Some("add `containerPort:`, e.g. `containerPort: 80`".into()),
        );
        return None;
    };
    let number = d.int(
        n,
        &join(path, "containerPort"),
        1,
        65535,
        "an integer 1-65535",
    )?;
    let host_port = match f.get("hostPort") {
        Some(h) => Some(d.int(h, &join(path, "hostPort"), 1, 65535, "an integer 1-65535")? as u16),
        None => None,
    };
    Some((
        ContainerPort {
            name,
            container_port: number as u16,
            protocol,
            host_port,
            pos: n.pos,
        },
        name_pos,
    ))
}

fn deployment(d: &mut Decoder, file: &mut LabFile, spans: &mut Spans, doc: &Node) {
    let Some(f) = d.fields(doc, "", TOP, TOP_IGNORED) else {
        return;
    };
    let meta = d.meta(f.get("metadata"), "metadata", Scope::Namespaced);
    let name = d.required_name(&meta, &f, "deployment");
    let mut s = ObjSpans {
        namespace: meta.namespace.as_ref().map(|(_, p)| *p),
        prefix: "spec.template.spec",
        ..ObjSpans::default()
    };
    let Some(spec_node) = f.get("spec") else {
        d.err(
            f.pos,
            "spec",
            "deployment has no `spec`".into(),
            Some("a deployment needs `spec.selector` and `spec.template`".into()),
        );
        return;
    };
    let Some(sf) = d.fields(spec_node, "spec", DEPLOY_SPEC, DEPLOY_SPEC_IGNORED) else {
        return;
    };
    s.replicas = sf.get("replicas").map(|n| n.pos);
    let replicas = match sf.get("replicas") {
        Some(n) => d
            .int(n, "spec.replicas", 0, 10000, "an integer 0-10000")
            .unwrap_or(1) as u32,
        None => 1,
    };
    let mut selector = None;
    match sf.get("selector") {
        Some(n) => {
            if let Some(sel) = d.fields(n, "spec.selector", &["matchLabels"], &[]) {
                match sel.get("matchLabels") {
                    Some(m) => {
                        let labels = d.labels(m, "spec.selector.matchLabels");
                        if labels.is_empty() {
                            d.err(
                                m.pos,
                                "spec.selector.matchLabels",
                                "selector matches every pod: matchLabels is empty".into(),
                                Some("Kubernetes rejects an empty selector; select the template's labels, e.g. `app: web`".into()),
                            );
                        } else {
                            selector = Some((labels, m.pos));
                        }
                    }
                    None => d.err(
                        sel.pos,
                        "spec.selector.matchLabels",
                        "selector has no matchLabels".into(),
                        Some("select the template's labels, e.g. `matchLabels: {app: web}`".into()),
                    ),
                }
            }
        }
        None => d.err(
            sf.pos,
            "spec.selector",
            "deployment has no `spec.selector`".into(),
            Some("apps/v1 requires one: `selector: {matchLabels: {app: web}}`, matching the template's labels".into()),
        ),
    }
    let mut template_labels = BTreeMap::new();
    let mut template = None;
    match sf.get("template") {
        Some(t) => {
            if let Some(tf) = d.fields(t, "spec.template", &["metadata", "spec"], &[]) {
                let tmeta = d.meta(tf.get("metadata"), "spec.template.metadata", Scope::Template);
                template_labels = tmeta.labels;
                template = match tf.get("spec") {
                    Some(n) => pod_spec(d, n, "spec.template.spec", Some("Deployment"), &mut s),
                    None => {
                        d.err(
                            tf.pos,
                            "spec.template.spec",
                            "pod template has no `spec`".into(),
                            Some("a pod template needs `spec.containers`".into()),
                        );
                        None
                    }
                };
            }
        }
        None => d.err(
            sf.pos,
            "spec.template",
            "deployment has no `spec.template`".into(),
            Some("add the pod template: `template: {metadata: {labels: ...}, spec: {containers: ...}}`".into()),
        ),
    }
    if let Some((sel, pos)) = &selector {
        let missing: Vec<String> = sel
            .iter()
            .filter(|(k, v)| template_labels.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        if !missing.is_empty() && template.is_some() {
            d.err(
                *pos,
                "spec.selector.matchLabels",
                "selector does not match template labels".into(),
                Some(format!(
                    "spec.template.metadata.labels lacks {}",
                    missing.join(", ")
                )),
            );
        }
    }
    if let (Some((name, pos)), Some((selector, _)), Some(template)) = (name, selector, template) {
        file.deployments.push(Deployment {
            namespace: meta
                .namespace
                .map_or_else(|| "default".into(), |(ns, _)| ns),
            name,
            pos,
            labels: meta.labels,
            replicas,
            selector,
            template_labels,
            template,
            replaced: BTreeMap::new(),
        });
        spans.deployments.push(s);
    }
}
