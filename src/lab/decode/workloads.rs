//! `apps/v1` StatefulSet, DaemonSet and ReplicaSet: the kinds besides
//! Deployment that make pods, decoded as strictly as a Deployment.
//!
//! What each pod is named and where it runs is `plan`'s; here are the rules
//! of a single object: a selector that matches its template, names that
//! still fit a hostname once an ordinal or suffix is added.

use std::collections::BTreeMap;

use super::super::types::*;
use super::super::validate::did_you_mean;
use super::super::yaml::{Node, Value};
use super::{describe, pod_spec, Decoder, Fields, LabFile, ObjSpans, Scope, Spans};
use super::{TOP, TOP_IGNORED};

const STS_SPEC: &[&str] = &[
    "replicas",
    "selector",
    "serviceName",
    "template",
    "podManagementPolicy",
    "ordinals",
];
const STS_SPEC_IGNORED: &[&str] = &[
    "updateStrategy",
    "revisionHistoryLimit",
    "minReadySeconds",
    "volumeClaimTemplates",
    "persistentVolumeClaimRetentionPolicy",
];
const DS_SPEC: &[&str] = &["selector", "template"];
const DS_SPEC_IGNORED: &[&str] = &["updateStrategy", "minReadySeconds", "revisionHistoryLimit"];
const RS_SPEC: &[&str] = &["replicas", "selector", "template"];
const RS_SPEC_IGNORED: &[&str] = &["minReadySeconds"];

/// The longest a pod name may be: it is the pod's hostname.
const MAX_POD_NAME: usize = 63;
/// `-` and the 5-character suffix a ReplicaSet or DaemonSet adds.
const SUFFIX_LEN: usize = 6;

/// One StatefulSet, DaemonSet or ReplicaSet document.
pub(super) fn workload(
    d: &mut Decoder,
    file: &mut LabFile,
    spans: &mut Spans,
    doc: &Node,
    kind: WorkloadKind,
) {
    let word = kind.word();
    let Some(f) = d.fields(doc, "", TOP, TOP_IGNORED) else {
        return;
    };
    let meta = d.meta(f.get("metadata"), "metadata", Scope::Namespaced);
    let name = d.required_name(&meta, &f, word);
    let mut s = ObjSpans {
        namespace: meta.namespace.as_ref().map(|(_, p)| *p),
        prefix: "spec.template.spec",
        ..ObjSpans::default()
    };
    let Some(spec_node) = f.get("spec") else {
        d.err(
            f.pos,
            "spec",
            format!("{word} has no `spec`"),
            Some(format!(
                "a {word} needs `spec.selector` and `spec.template`"
            )),
        );
        return;
    };
    let (known, ignored) = match kind {
        WorkloadKind::StatefulSet => (STS_SPEC, STS_SPEC_IGNORED),
        WorkloadKind::DaemonSet => (DS_SPEC, DS_SPEC_IGNORED),
        WorkloadKind::ReplicaSet => (RS_SPEC, RS_SPEC_IGNORED),
    };
    let Some(sf) = d.fields(spec_node, "spec", known, ignored) else {
        return;
    };
    s.replicas = sf.get("replicas").map(|n| n.pos);
    let replicas = match sf.get("replicas") {
        Some(n) => d
            .int(n, "spec.replicas", 0, 10000, "an integer 0-10000")
            .unwrap_or(1) as u32,
        None => 1,
    };
    let service_name = sf
        .get("serviceName")
        .and_then(|n| d.label_field(n, "spec.serviceName", "service"));
    if let Some(n) = sf.get("podManagementPolicy") {
        // Pods come up together either way: podlab has no readiness to
        // wait for between ordinals, so the policy is checked, not used.
        const POLICIES: &[&str] = &["OrderedReady", "Parallel"];
        if let Some(v) = d.string(n, "spec.podManagementPolicy") {
            if !POLICIES.contains(&v.as_str()) {
                let hint = did_you_mean(&v, POLICIES).map(|m| format!("did you mean `{m}`?"));
                d.err(
                    n.pos,
                    "spec.podManagementPolicy",
                    format!("expected OrderedReady or Parallel, found `{v}`"),
                    hint,
                );
            }
        }
    }
    let start = sf.get("ordinals").and_then(|n| ordinals_start(d, n));
    let selector = selector(d, &sf, word);
    let (template_labels, template, node_selector) = template(d, &sf, word, kind, &mut s);
    if let (Some((sel, pos)), Some(_)) = (&selector, &template) {
        let missing: Vec<String> = sel
            .iter()
            .filter(|(k, v)| template_labels.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        if !missing.is_empty() {
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
    if let Some((name, pos)) = &name {
        name_fits(d, kind, name, *pos, replicas, start.unwrap_or(0));
    }
    let (Some((name, pos)), Some((selector, _)), Some(template)) = (name, selector, template)
    else {
        return;
    };
    file.workloads.push(Workload {
        kind,
        namespace: meta
            .namespace
            .map_or_else(|| "default".into(), |(ns, _)| ns),
        name,
        pos,
        labels: meta.labels,
        replicas: if kind == WorkloadKind::DaemonSet {
            0
        } else {
            replicas
        },
        selector,
        template_labels,
        template,
        service_name: if kind == WorkloadKind::StatefulSet {
            service_name
        } else {
            None
        },
        node_selector,
        ordinals_start: start.unwrap_or(0),
    });
    spans.workloads.push(s);
}

/// `ordinals: {start: N}`: the first ordinal of a StatefulSet's pods.
fn ordinals_start(d: &mut Decoder, n: &Node) -> Option<u32> {
    let f = d.fields(n, "spec.ordinals", &["start"], &[])?;
    let v = f.get("start")?;
    d.int(
        v,
        "spec.ordinals.start",
        0,
        1_000_000,
        "an integer 0-1000000",
    )
    .map(|v| v as u32)
}

/// A pod's name is its hostname: with the ordinal or the suffix added it
/// must still be a DNS-1123 label.
fn name_fits(d: &mut Decoder, kind: WorkloadKind, name: &str, pos: Pos, replicas: u32, start: u32) {
    let (longest, added) = match kind {
        WorkloadKind::StatefulSet => {
            let last = start.saturating_add(replicas.saturating_sub(1));
            let added = 1 + last.to_string().len();
            (format!("{name}-{last}"), added)
        }
        _ => (format!("{name}-xxxxx"), SUFFIX_LEN),
    };
    if longest.len() > MAX_POD_NAME {
        d.err(
            pos,
            "metadata.name",
            format!(
                "its pods would be named like `{longest}`, longer than {MAX_POD_NAME} characters"
            ),
            Some(format!(
                "use a {} name of at most {} characters",
                kind.word(),
                MAX_POD_NAME.saturating_sub(added)
            )),
        );
    }
}

/// `spec.selector.matchLabels`, required and not empty, with its position.
fn selector(
    d: &mut Decoder,
    sf: &Fields<'_>,
    word: &str,
) -> Option<(BTreeMap<String, String>, Pos)> {
    let Some(n) = sf.get("selector") else {
        // A misspelt `selector` was reported with its suggestion already.
        if sf.suggested.iter().any(|k| k == "selector") {
            return None;
        }
        d.err(
            sf.pos,
            "spec.selector",
            format!("{word} has no `spec.selector`"),
            Some("apps/v1 requires one: `selector: {matchLabels: {app: web}}`, matching the template's labels".into()),
        );
        return None;
    };
    let sel = d.fields(n, "spec.selector", &["matchLabels"], &[])?;
    let Some(m) = sel.get("matchLabels") else {
        d.err(
            sel.pos,
            "spec.selector.matchLabels",
            "selector has no matchLabels".into(),
            Some("select the template's labels, e.g. `matchLabels: {app: web}`".into()),
        );
        return None;
    };
    let labels = d.labels(m, "spec.selector.matchLabels");
    if labels.is_empty() {
        d.err(
            m.pos,
            "spec.selector.matchLabels",
            "selector matches every pod: matchLabels is empty".into(),
            Some("Kubernetes rejects an empty selector; select the template's labels, e.g. `app: web`".into()),
        );
        return None;
    }
    Some((labels, m.pos))
}

type Template = (
    BTreeMap<String, String>,
    Option<PodSpec>,
    BTreeMap<String, String>,
);

/// The template's labels, pod spec and (a DaemonSet's) nodeSelector.
fn template(
    d: &mut Decoder,
    sf: &Fields<'_>,
    word: &str,
    kind: WorkloadKind,
    s: &mut ObjSpans,
) -> Template {
    let mut out: Template = (BTreeMap::new(), None, BTreeMap::new());
    let Some(t) = sf.get("template") else {
        if sf.suggested.iter().any(|k| k == "template") {
            return out;
        }
        d.err(
            sf.pos,
            "spec.template",
            format!("{word} has no `spec.template`"),
            Some("add the pod template: `template: {metadata: {labels: ...}, spec: {containers: ...}}`".into()),
        );
        return out;
    };
    let Some(tf) = d.fields(t, "spec.template", &["metadata", "spec"], &[]) else {
        return out;
    };
    let tmeta = d.meta(
        tf.get("metadata"),
        "spec.template.metadata",
        Scope::Template,
    );
    out.0 = tmeta.labels;
    let Some(n) = tf.get("spec") else {
        d.err(
            tf.pos,
            "spec.template.spec",
            "pod template has no `spec`".into(),
            Some("a pod template needs `spec.containers`".into()),
        );
        return out;
    };
    out.1 = pod_spec(d, n, "spec.template.spec", Some(kind.as_str()), s);
    if kind == WorkloadKind::DaemonSet {
        // A Pod's or Deployment's nodeSelector is only listed as ignored
        // (podlab's scheduler spreads them); a DaemonSet's decides which
        // nodes get a pod, so it is read, and no longer listed.
        const FIELD: &str = "spec.template.spec.nodeSelector";
        if let Some(ns) = super::stored::field(n, "nodeSelector").filter(|v| v.value != Value::Null)
        {
            d.ignored.retain(|i| i.field != FIELD);
            if matches!(ns.value, Value::Map(_)) {
                out.2 = d.labels(ns, FIELD);
            } else {
                d.err(
                    ns.pos,
                    FIELD,
                    format!("expected a mapping of labels, found {}", describe(ns)),
                    None,
                );
            }
        }
    }
    out
}
