//! Checks that need the whole lab: names unique per namespace, namespaces
//! declared, nodes that exist, address ranges that fit together; and the
//! small syntax rules (DNS names, port names, labels) the decoder applies
//! field by field.
//!
//! Everything here is pure, so that `podlab validate` needs no root and
//! every error is found before the first kernel object is touched.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::decode::{ObjSpans, Spans};
use super::types::*;
use super::Diagnostic;

pub const LABEL_RULE: &str = "a DNS-1123 label is at most 63 lowercase letters, digits or '-', \
     starting and ending with a letter or digit";

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters: a hostname part.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Labels joined by dots, at most 253 characters: what Kubernetes accepts
/// for most object names.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// A port name (IANA_SVC_NAME): at most 15 lowercase letters, digits or
/// '-', at least one letter, no leading, trailing or doubled '-'.
pub fn is_iana_svc_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(|c| c.is_ascii_lowercase())
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63: a label value,
/// and the name part of a label key.
fn is_label_name(s: &str, allow_empty: bool) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return allow_empty;
    }
    b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Why a label key/value pair is one Kubernetes would reject, if it is.
pub fn label_problem(key: &str, value: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if prefix.is_some_and(|p| !is_dns1123_subdomain(p)) || !is_label_name(name, false) {
        return Some(format!(
            "label key `{key}` is not valid: expected an optional DNS subdomain prefix and '/', \
             then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    if !is_label_name(value, true) {
        return Some(format!(
            "label value `{value}` is not valid: expected at most 63 letters, digits, '-', '_' \
             or '.', starting and ending with a letter or digit"
        ));
    }
    None
}

/// Optimal string alignment distance (Levenshtein plus transpositions,
/// since swapped letters are the commonest typo).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a typo:
/// same letters ignoring case, or about one edit in three characters.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // Long inputs are never typos of a field name, and the distance table is
    // quadratic in their length.
    if word.len() > 64 {
        return None;
    }
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    // Two candidates equally close (node-3 against node-1 and node-2) is a
    // guess, not a suggestion.
    let mut tied = false;
    for &c in candidates {
        if c == word {
            continue;
        }
        let d = distance(&lower, &c.to_lowercase());
        let limit = (word.chars().count().min(c.chars().count()) / 3).max(1);
        if d > limit {
            continue;
        }
        match best {
            Some((bd, _)) if d > bd => {}
            Some((bd, _)) if d == bd => tied = true,
            _ => {
                best = Some((d, c));
                tied = false;
            }
        }
    }
    if tied {
        return None;
    }
    best.map(|(_, c)| c)
}

/// The message and hint for a name podlab will use as a hostname or as
/// part of a kernel object's name. `kind` is how the message names it.
pub fn name_problem(kind: &str, name: &str) -> Option<(String, String)> {
    if is_dns1123_label(name) {
        return None;
    }
    let hint = if is_dns1123_subdomain(name) && matches!(kind, "pod" | "deployment") {
        format!(
            "Kubernetes accepts dotted {kind} names, but podlab uses the name as a hostname, \
             which must be a DNS-1123 label; {LABEL_RULE}"
        )
    } else {
        let suggestion = suggest_label(name);
        if suggestion.is_empty() || suggestion == name {
            LABEL_RULE.to_string()
        } else {
            format!("{LABEL_RULE}, e.g. `{suggestion}`")
        }
    };
    let what = match kind {
        "hostname" | "subdomain" => format!("{kind} `{name}`"),
        _ => format!("{kind} name `{name}`"),
    };
    Some((format!("{what} is not a DNS-1123 label"), hint))
}

/// Lowercase, anything else than [a-z0-9-] replaced by '-', trimmed: the
/// closest label to `s` (may be empty).
pub fn suggest_label(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut out: String = mapped.trim_matches('-').chars().take(63).collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

struct Check<'a> {
    source: &'a str,
    out: &'a mut Vec<Diagnostic>,
}

impl Check<'_> {
    fn err(&mut self, pos: Pos, field: impl Into<String>, message: String, hint: Option<String>) {
        self.out.push(Diagnostic {
            source: self.source.to_string(),
            pos,
            field: field.into(),
            message,
            hint,
        });
    }
}

/// Cross-object checks on a decoded lab. Errors go to `out`; the warnings
/// (allowed, but probably not meant) are returned, sorted by position.
pub(crate) fn check(file: &LabFile, spans: &Spans, out: &mut Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut c = Check {
        source: &file.source,
        out,
    };
    check_nodes(&mut c, &file.lab);
    check_pod_count(&mut c, file, spans);
    check_network(&mut c, &file.lab, spans);
    check_names(&mut c, file, spans);
    let nodes: Vec<&str> = file.lab.nodes.iter().map(|n| n.name.as_str()).collect();
    for (pod, s) in file.pods.iter().zip(&spans.pods) {
        let what = format!("pod `{}`", pod.name);
        check_pod_spec(&mut c, &what, &pod.spec, s, &nodes);
    }
    for (d, s) in file.deployments.iter().zip(&spans.deployments) {
        let what = format!("deployment `{}`", d.name);
        check_pod_spec(&mut c, &what, &d.template, s, &nodes);
    }
    for (w, s) in file.workloads.iter().zip(&spans.workloads) {
        let what = format!("{} `{}`", w.kind.word(), w.name);
        check_pod_spec(&mut c, &what, &w.template, s, &nodes);
    }
    let mut warnings = check_services(&mut c, file, spans);
    warnings.extend(check_policies(c.source, file));
    warnings.extend(check_workloads(c.source, file));
    warnings.extend(check_hand_endpoints(c.source, file));
    warnings.sort_by_key(|d: &Diagnostic| (d.pos.line, d.pos.col));
    warnings
}

/// The most pods a lab may have, its own and its Deployments' replicas
/// together. Each pod is a network namespace, a veth pair and a plan entry;
/// without a total, a file of many Deployments of 10,000 replicas each
/// would make a plan of millions of pods.
pub const MAX_PODS: u64 = 10_000;

fn check_pod_count(c: &mut Check, file: &LabFile, spans: &Spans) {
    let mut total = file.pods.len() as u64;
    if total > MAX_PODS {
        let p = &file.pods[MAX_PODS as usize];
        c.err(
            p.pos,
            "",
            format!(
                "pod `{}` is pod {} of this lab, more than the {MAX_PODS} a lab may have",
                p.name,
                MAX_PODS + 1
            ),
            Some("split the lab, or use fewer pods (docs/limits.md)".into()),
        );
        return;
    }
    for (d, s) in file.deployments.iter().zip(&spans.deployments) {
        total += u64::from(d.replicas);
        if total > MAX_PODS {
            c.err(
                s.replicas.unwrap_or(d.pos),
                "spec.replicas",
                format!(
                    "deployment `{}` brings the lab to {total} pods, more than the {MAX_PODS} a lab may have",
                    d.name
                ),
                Some("lower the replicas, or split the lab (docs/limits.md)".into()),
            );
            return;
        }
    }
    for (w, s) in file.workloads.iter().zip(&spans.workloads) {
        total += u64::from(w.pod_count(&file.lab.nodes));
        if total > MAX_PODS {
            c.err(
                s.replicas.unwrap_or(w.pos),
                "spec.replicas",
                format!(
                    "{} `{}` brings the lab to {total} pods, more than the {MAX_PODS} a lab may have",
                    w.kind.word(),
                    w.name
                ),
                Some("lower the replicas, or split the lab (docs/limits.md)".into()),
            );
            return;
        }
    }
}

fn check_nodes(c: &mut Check, lab: &Lab) {
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    for (i, n) in lab.nodes.iter().enumerate() {
        if let Some(first) = seen.get(n.name.as_str()) {
            c.err(
                n.pos,
                format!("spec.nodes[{i}].name"),
                format!(
                    "lab `{}`: node `{}` is defined twice (first at line {})",
                    lab.name, n.name, first.line
                ),
                Some("give every node its own name".into()),
            );
        } else {
            seen.insert(&n.name, n.pos);
        }
    }
}

fn net_field(spans: &Spans, key: &str) -> (Pos, String) {
    let pos = spans.network.get(key).copied().unwrap_or(spans.lab_pos);
    (pos, format!("spec.network.{key}"))
}

fn check_network(c: &mut Check, lab: &Lab, spans: &Spans) {
    let net = &lab.network;
    let what = format!("lab `{}`", lab.name);
    let cidrs = [
        ("nodeCIDR", net.node_cidr),
        ("podCIDR", net.pod_cidr),
        ("serviceCIDR", net.service_cidr),
    ];
    let mut host_bits = false;
    for (key, cidr) in cidrs {
        if cidr.trunc() != cidr {
            host_bits = true;
            let (pos, field) = net_field(spans, key);
            c.err(
                pos,
                field,
                format!("{what}: {key} `{cidr}` has host bits set"),
                Some(format!("did you mean {}?", cidr.trunc())),
            );
        }
    }
    // Further range arithmetic on a CIDR with host bits set would only repeat
    // the same mistake in other words.
    if host_bits {
        return;
    }
    for i in 0..cidrs.len() {
        for j in i + 1..cidrs.len() {
            let (ka, a) = cidrs[i];
            let (kb, b) = cidrs[j];
            if a.contains(&b.network()) || b.contains(&a.network()) {
                // Point at whichever of the two the learner wrote last.
                let pa = spans.network.get(ka).copied();
                let pb = spans.network.get(kb).copied();
                let key = match (pa, pb) {
                    (Some(x), Some(y)) if (x.line, x.col) > (y.line, y.col) => ka,
                    (Some(_), None) => ka,
                    _ => kb,
                };
                let (pos, field) = net_field(spans, key);
                c.err(
                    pos,
                    field,
                    format!("{what}: {ka} {a} overlaps {kb} {b}"),
                    Some("nodes, pods and services each need their own address range".into()),
                );
            }
        }
    }
    if !net.service_cidr.contains(&net.dns_ip) {
        let (pos, field) = net_field(spans, "dnsIP");
        c.err(
            pos,
            field,
            format!(
                "{what}: dnsIP {} is outside serviceCIDR {}",
                net.dns_ip, net.service_cidr
            ),
            Some(format!(
                "cluster DNS is a Service, so its address comes from serviceCIDR, e.g. {}",
                nth(net.service_cidr, 10)
            )),
        );
    }
    let (lo, hi) = net.load_balancer_pool;
    if lo > hi {
        let (pos, field) = net_field(spans, "loadBalancerPool");
        c.err(
            pos,
            field,
            format!("{what}: loadBalancerPool {lo}-{hi} is reversed"),
            Some(format!("write the lower address first: {hi}-{lo}")),
        );
    } else if !net.node_cidr.contains(&lo) || !net.node_cidr.contains(&hi) {
        let (pos, field) = net_field(spans, "loadBalancerPool");
        c.err(
            pos,
            field,
            format!(
                "{what}: loadBalancerPool {lo}-{hi} is outside nodeCIDR {}",
                net.node_cidr
            ),
            Some("load balancer addresses are reached over the node network, so they must lie in nodeCIDR".into()),
        );
    } else {
        check_pool_addresses(c, &what, lab, spans);
    }
    let (a, b) = net.node_port_range;
    if a > b {
        let (pos, field) = net_field(spans, "nodePortRange");
        c.err(
            pos,
            field,
            format!("{what}: nodePortRange {a}-{b} is reversed"),
            Some(format!("write the lower port first: {b}-{a}")),
        );
    }
    let mask = net.node_pod_prefix;
    let pod_prefix = net.pod_cidr.prefix_len();
    if mask <= pod_prefix || mask > 30 {
        let (pos, field) = net_field(spans, "podCIDRMask");
        c.err(
            pos,
            field,
            format!(
                "{what}: podCIDRMask /{mask} must be longer than podCIDR's /{pod_prefix} and at most /30"
            ),
            Some(format!(
                "each node gets one /podCIDRMask slice of podCIDR {}, so podCIDRMask must be {}-30",
                net.pod_cidr,
                pod_prefix + 1
            )),
        );
    } else {
        // Node i gets subnet i (subnet 0 is left unused, as kind does), so
        // N nodes need N + 1 subnets.
        let subnets: u64 = 1u64 << (mask - pod_prefix);
        let n = lab.nodes.len() as u64;
        if subnets < n + 1 {
            let (pos, field) = net_field(spans, "podCIDR");
            c.err(
                pos,
                field,
                format!(
                    "{what}: podCIDR {} has room for {} nodes of /{mask} (node i gets subnet i, from 1), but the lab has {n} nodes",
                    net.pod_cidr,
                    subnets - 1
                ),
                Some("use a larger podCIDR or a longer podCIDRMask".into()),
            );
        }
    }
    // The node network holds the gateway (.1), one address per node, and
    // the last two usable addresses for the external and lb clients.
    let host_bits = 32 - u32::from(net.node_cidr.prefix_len());
    let usable: u64 = if host_bits < 2 {
        0
    } else {
        (1u64 << host_bits) - 2
    };
    let needed = lab.nodes.len() as u64 + 3;
    if usable < needed {
        let (pos, field) = net_field(spans, "nodeCIDR");
        c.err(
            pos,
            field,
            format!(
                "{what}: nodeCIDR {} has {usable} usable addresses, but {} nodes need {needed} (the gateway, one per node, and two client addresses)",
                net.node_cidr,
                lab.nodes.len()
            ),
            Some("use a shorter prefix, e.g. /24".into()),
        );
    }
}

/// The pool shares the node network with the gateway (.1), the nodes (.2
/// up, as kind numbers them) and the two clients (the last two usable
/// addresses); an address handed out twice would break both users.
fn check_pool_addresses(c: &mut Check, what: &str, lab: &Lab, spans: &Spans) {
    let net = &lab.network;
    let (lo, hi) = (
        u32::from(net.load_balancer_pool.0),
        u32::from(net.load_balancer_pool.1),
    );
    let base = u32::from(net.node_cidr.network());
    let broadcast = u32::from(net.node_cidr.broadcast());
    let nodes = lab.nodes.len() as u32;
    // A node network too small for its nodes is reported on its own; every
    // pool would overlap something then.
    if u64::from(broadcast - base) < u64::from(nodes) + 4 {
        return;
    }
    let overlaps = |a: u32, b: u32| a <= hi && lo <= b;
    let mut taken = Vec::new();
    if overlaps(base + 1, base + 1) {
        taken.push(format!("the gateway {}", Ipv4Addr::from(base + 1)));
    }
    if nodes > 0 && overlaps(base + 2, base + 1 + nodes) {
        taken.push(format!(
            "the node addresses {}-{}",
            Ipv4Addr::from(base + 2),
            Ipv4Addr::from(base + 1 + nodes)
        ));
    }
    if broadcast >= base + 3 && overlaps(broadcast - 2, broadcast - 1) {
        taken.push(format!(
            "the client addresses {}-{} (external and lb)",
            Ipv4Addr::from(broadcast - 2),
            Ipv4Addr::from(broadcast - 1)
        ));
    }
    if !taken.is_empty() {
        let (pos, field) = net_field(spans, "loadBalancerPool");
        c.err(
            pos,
            field,
            format!(
                "{what}: loadBalancerPool {}-{} overlaps {}",
                net.load_balancer_pool.0,
                net.load_balancer_pool.1,
                taken.join(" and ")
            ),
            Some("choose addresses of nodeCIDR that no node or client uses".into()),
        );
    }
}

fn nth(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(n))
}

fn check_names(c: &mut Check, file: &LabFile, spans: &Spans) {
    let mut namespaces: HashMap<&str, Pos> = HashMap::new();
    for ns in &file.namespaces {
        if let Some(first) = namespaces.get(ns.name.as_str()) {
            c.err(
                ns.pos,
                "metadata.name",
                format!(
                    "namespace `{}` is defined twice (first at line {})",
                    ns.name, first.line
                ),
                None,
            );
        } else {
            namespaces.insert(&ns.name, ns.pos);
        }
    }
    let declared = |ns: &str| ns == "default" || ns == "kube-system" || namespaces.contains_key(ns);
    // (namespace, name, position of the name, position of the namespace)
    type Row<'a> = (&'a str, &'a str, Pos, Option<Pos>);
    let objects: Vec<(&str, Vec<Row>)> = vec![
        (
            "pod",
            file.pods
                .iter()
                .zip(&spans.pods)
                .map(|(p, s)| (p.namespace.as_str(), p.name.as_str(), p.pos, s.namespace))
                .collect(),
        ),
        (
            "deployment",
            file.deployments
                .iter()
                .zip(&spans.deployments)
                .map(|(d, s)| (d.namespace.as_str(), d.name.as_str(), d.pos, s.namespace))
                .collect(),
        ),
        (
            "statefulset",
            workload_rows(file, spans, WorkloadKind::StatefulSet),
        ),
        (
            "daemonset",
            workload_rows(file, spans, WorkloadKind::DaemonSet),
        ),
        (
            "replicaset",
            workload_rows(file, spans, WorkloadKind::ReplicaSet),
        ),
        (
            "service",
            file.services
                .iter()
                .zip(&spans.services)
                .map(|(d, s)| (d.namespace.as_str(), d.name.as_str(), d.pos, *s))
                .collect(),
        ),
        (
            "network policy",
            file.policies
                .iter()
                .zip(&spans.policies)
                .map(|(d, s)| (d.namespace.as_str(), d.name.as_str(), d.pos, *s))
                .collect(),
        ),
    ];
    check_stored_names(c, file, &declared);
    for (kind, list) in objects {
        let mut seen: BTreeMap<(&str, &str), Pos> = BTreeMap::new();
        for (ns, name, pos, ns_pos) in list {
            if let Some(first) = seen.get(&(ns, name)) {
                c.err(
                    pos,
                    "metadata.name",
                    format!(
                        "{kind} `{name}` in namespace `{ns}` is defined twice (first at line {})",
                        first.line
                    ),
                    Some(format!("give each {kind} in a namespace its own name")),
                );
            } else {
                seen.insert((ns, name), pos);
            }
            if !declared(ns) {
                c.err(
                    ns_pos.unwrap_or(pos),
                    "metadata.namespace",
                    format!("{kind} `{name}`: namespace `{ns}` does not exist"),
                    Some(format!(
                        "add a Namespace document:\n    ---\n    apiVersion: v1\n    kind: Namespace\n    metadata:\n      name: {ns}"
                    )),
                );
            }
        }
    }
}

/// Stored objects (`lab::stored`): one name per kind and namespace (per
/// API group too: a CRD's `Certificate` is not cert-manager's), and a
/// namespace that exists, as for every other object.
fn check_stored_names(c: &mut Check, file: &LabFile, declared: &dyn Fn(&str) -> bool) {
    let mut seen: BTreeMap<(&str, &str, &str, &str), Pos> = BTreeMap::new();
    for o in &file.stored {
        let group = o.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let ns = o.namespace.as_deref().unwrap_or("");
        let key = (group, o.kind.as_str(), ns, o.name.as_str());
        if let Some(first) = seen.get(&key) {
            let place = if ns.is_empty() {
                String::new()
            } else {
                format!(" in namespace `{ns}`")
            };
            c.err(
                o.pos,
                "metadata.name",
                format!(
                    "{} `{}`{place} is defined twice (first at line {})",
                    o.kind, o.name, first.line
                ),
                Some(format!("give each {} its own name", o.kind)),
            );
        } else {
            seen.insert(key, o.pos);
        }
        if !ns.is_empty() && !declared(ns) {
            c.err(
                o.ns_pos.unwrap_or(o.pos),
                "metadata.namespace",
                format!("{} `{}`: namespace `{ns}` does not exist", o.kind, o.name),
                Some(format!(
                    "add a Namespace document:\n    ---\n    apiVersion: v1\n    kind: Namespace\n    metadata:\n      name: {ns}"
                )),
            );
        }
    }
}

fn check_pod_spec(c: &mut Check, what: &str, spec: &PodSpec, s: &ObjSpans, nodes: &[&str]) {
    let prefix = s.prefix;
    if let Some(node) = &spec.node_name {
        if !nodes.contains(&node.as_str()) {
            let mut hint = format!("the lab's nodes are {}", nodes.join(", "));
            if let Some(m) = did_you_mean(node, nodes) {
                hint.push_str(&format!("; did you mean `{m}`?"));
            }
            c.err(
                spec.node_name_pos,
                format!("{prefix}.nodeName"),
                format!("{what}: node `{node}` does not exist"),
                Some(hint),
            );
        }
    }
    let mut names: HashMap<&str, Pos> = HashMap::new();
    let mut ports: HashMap<(u16, Protocol), Pos> = HashMap::new();
    let mut port_names: HashMap<&str, Pos> = HashMap::new();
    for (ci, container) in spec.containers.iter().enumerate() {
        let name_pos = s.containers.get(ci).copied().unwrap_or_default();
        if let Some(first) = names.get(container.name.as_str()) {
            c.err(
                name_pos,
                format!("{prefix}.containers[{ci}].name"),
                format!(
                    "{what}: two containers are named `{}` (first at line {})",
                    container.name, first.line
                ),
                Some("container names must be unique within a pod".into()),
            );
        } else {
            names.insert(&container.name, name_pos);
        }
        for (pi, port) in container.ports.iter().enumerate() {
            let key = (port.container_port, port.protocol);
            if let Some(first) = ports.get(&key) {
                c.err(
                    port.pos,
                    format!("{prefix}.containers[{ci}].ports[{pi}].containerPort"),
                    format!(
                        "{what}: containerPort {}/{} is declared twice (first at line {})",
                        port.container_port, port.protocol, first.line
                    ),
                    Some("containers of a pod share one network namespace, so a port can be declared only once".into()),
                );
            } else {
                ports.insert(key, port.pos);
            }
            if let Some(pname) = &port.name {
                let pos = s
                    .port_names
                    .get(ci)
                    .and_then(|v| v.get(pi))
                    .copied()
                    .flatten()
                    .unwrap_or(port.pos);
                if let Some(first) = port_names.get(pname.as_str()) {
                    c.err(
                        pos,
                        format!("{prefix}.containers[{ci}].ports[{pi}].name"),
                        format!(
                            "{what}: port name `{pname}` is used twice (first at line {})",
                            first.line
                        ),
                        Some(
                            "Services refer to ports by name, so names must be unique within a pod"
                                .into(),
                        ),
                    );
                } else {
                    port_names.insert(pname, pos);
                }
            }
        }
    }
}

// ---- services ----
//
// Addresses and ports a service asks for, against the lab's network and
// each other; and what its selector selects (warnings: a service without
// endpoints is allowed, as in Kubernetes, but rarely meant).

/// Where an address or port was first taken, for "first at line N".
struct Taken<'a> {
    service: &'a str,
    pos: Pos,
}

fn taken_twice(what: &str, first: &Taken) -> String {
    format!(
        "{what} is already taken by service `{}` (first at line {})",
        first.service, first.pos.line
    )
}

fn check_services(c: &mut Check, file: &LabFile, spans: &Spans) -> Vec<Diagnostic> {
    let net = &file.lab.network;
    let cidr = net.service_cidr;
    let (port_lo, port_hi) = net.node_port_range;
    let (pool_lo, pool_hi) = net.load_balancer_pool;
    let mut cluster_ips: HashMap<Ipv4Addr, Taken> = HashMap::new();
    let mut node_ports: HashMap<(u16, Protocol), Taken> = HashMap::new();
    let mut lb_ips: HashMap<Ipv4Addr, Taken> = HashMap::new();
    let mut warnings = Vec::new();
    // One per service; the decoder always pushes both.
    for (svc, s) in file.services.iter().zip(&spans.service_specs) {
        let what = format!("service `{}`", svc.name);
        let spec = &svc.spec;
        if let ClusterIpSpec::Fixed(ip, pos) = &spec.cluster_ip {
            let field = s.cluster_ip_field;
            let other = nth(cidr, 100);
            let leave_out = format!("choose another address of serviceCIDR {cidr}, e.g. {other}, or leave clusterIP out to have one allocated");
            if !cidr.contains(ip) {
                c.err(
                    *pos,
                    field,
                    format!("{what}: clusterIP {ip} is outside serviceCIDR {cidr}"),
                    Some(format!("cluster IPs come from serviceCIDR: use an address of {cidr}, e.g. {other}, or leave clusterIP out to have one allocated")),
                );
            } else if *ip == cidr.network() || *ip == cidr.broadcast() {
                let which = if *ip == cidr.network() {
                    "network"
                } else {
                    "broadcast"
                };
                c.err(
                    *pos,
                    field,
                    format!("{what}: clusterIP {ip} is the {which} address of serviceCIDR {cidr}"),
                    Some(leave_out),
                );
            } else if *ip == net.dns_ip {
                c.err(
                    *pos,
                    field,
                    format!("{what}: clusterIP {ip} is the lab's dnsIP"),
                    Some(format!("dnsIP is reserved for the kube-dns service that podlab makes in kube-system; {leave_out}")),
                );
            } else if let Some(first) = cluster_ips.get(ip) {
                c.err(
                    *pos,
                    field,
                    format!("{what}: {}", taken_twice(&format!("clusterIP {ip}"), first)),
                    Some(format!(
                        "every service needs its own cluster IP; {leave_out}"
                    )),
                );
            } else {
                cluster_ips.insert(
                    *ip,
                    Taken {
                        service: &svc.name,
                        pos: *pos,
                    },
                );
            }
        }
        for (j, port) in spec.ports.iter().enumerate() {
            let Some((np, pos)) = port.node_port else {
                continue;
            };
            let index = s.ports.get(j).copied().unwrap_or(j);
            let field = format!("spec.ports[{index}].nodePort");
            if !(port_lo..=port_hi).contains(&np) {
                c.err(
                    pos,
                    field,
                    format!("{what}: nodePort {np} is outside nodePortRange {port_lo}-{port_hi}"),
                    Some(format!("choose a port in {port_lo}-{port_hi}, or leave nodePort out to have one allocated")),
                );
            } else if let Some(first) = node_ports.get(&(np, port.protocol)) {
                c.err(
                    pos,
                    field,
                    format!(
                        "{what}: {}",
                        taken_twice(&format!("nodePort {np}/{}", port.protocol), first)
                    ),
                    Some("a node port opens on every node, so each can serve one service; choose another, or leave nodePort out to have one allocated".into()),
                );
            } else {
                node_ports.insert(
                    (np, port.protocol),
                    Taken {
                        service: &svc.name,
                        pos,
                    },
                );
            }
        }
        if let Some((ip, pos)) = spec.load_balancer_ip {
            let field = "spec.loadBalancerIP";
            if !(pool_lo..=pool_hi).contains(&ip) {
                c.err(
                    pos,
                    field,
                    format!("{what}: loadBalancerIP {ip} is outside loadBalancerPool {pool_lo}-{pool_hi}"),
                    Some(format!("choose an address in {pool_lo}-{pool_hi}, or leave loadBalancerIP out to have one allocated")),
                );
            } else if let Some(first) = lb_ips.get(&ip) {
                c.err(
                    pos,
                    field,
                    format!("{what}: {}", taken_twice(&format!("loadBalancerIP {ip}"), first)),
                    Some("every LoadBalancer service needs its own address; choose another, or leave loadBalancerIP out to have one allocated".into()),
                );
            } else {
                lb_ips.insert(
                    ip,
                    Taken {
                        service: &svc.name,
                        pos,
                    },
                );
            }
        }
        if spec.kind != ServiceKind::ExternalName {
            if let Some(selector) = &spec.selector {
                check_selected(
                    c.source,
                    file,
                    svc,
                    s.selector,
                    &s.ports,
                    selector,
                    &mut warnings,
                );
            }
        }
    }
    warnings.sort_by_key(|d: &Diagnostic| (d.pos.line, d.pos.col));
    warnings
}

/// Warnings about the pods a service's selector selects: none at all, or
/// none that has a port of the name a `targetPort` gives.
fn check_selected(
    source: &str,
    file: &LabFile,
    svc: &Service,
    selector_pos: Option<Pos>,
    port_index: &[usize],
    selector: &BTreeMap<String, String>,
    warnings: &mut Vec<Diagnostic>,
) {
    let selects =
        |labels: &BTreeMap<String, String>| selector.iter().all(|(k, v)| labels.get(k) == Some(v));
    // The pods it selects, as (what, spec); a deployment scaled to zero
    // has no pods.
    let mut selected: Vec<(String, &PodSpec)> = file
        .pods
        .iter()
        .filter(|p| p.namespace == svc.namespace && selects(&p.labels))
        .map(|p| (format!("pod `{}`", p.name), &p.spec))
        .collect();
    selected.extend(
        file.deployments
            .iter()
            .filter(|d| {
                d.namespace == svc.namespace && d.replicas > 0 && selects(&d.template_labels)
            })
            .map(|d| (format!("deployment `{}`", d.name), &d.template)),
    );
    selected.extend(
        file.workloads
            .iter()
            .filter(|w| {
                w.namespace == svc.namespace
                    && w.pod_count(&file.lab.nodes) > 0
                    && selects(&w.template_labels)
            })
            .map(|w| (format!("{} `{}`", w.kind.word(), w.name), &w.template)),
    );
    let warn = |pos: Pos, field: String, message: String, hint: String| Diagnostic {
        source: source.to_string(),
        pos,
        field,
        message,
        hint: Some(hint),
    };
    if selected.is_empty() {
        let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        warnings.push(warn(
            selector_pos.unwrap_or(svc.pos),
            "spec.selector".into(),
            format!(
                "service `{}` selects no pod: it will have no endpoints",
                svc.name
            ),
            format!(
                "no pod or deployment (with replicas) in namespace `{}` has the labels {}",
                svc.namespace,
                labels.join(", ")
            ),
        ));
        return;
    }
    for (j, port) in svc.spec.ports.iter().enumerate() {
        let Some(TargetPortSpec::Name(name)) = &port.target_port else {
            continue;
        };
        let named = |proto: Option<Protocol>| {
            selected.iter().find(|(_, spec)| {
                spec.containers.iter().any(|c| {
                    c.ports.iter().any(|p| {
                        p.name.as_deref() == Some(name.as_str())
                            && proto.is_none_or(|proto| p.protocol == proto)
                    })
                })
            })
        };
        if named(Some(port.protocol)).is_some() {
            continue;
        }
        let index = port_index.get(j).copied().unwrap_or(j);
        let hint = match named(None) {
            Some((who, _)) => format!(
                "{who} names a port `{name}`, but not a {} one; match the service port's protocol",
                port.protocol
            ),
            None => format!(
                "name a containerPort `{name}` in the pods it selects, or give targetPort as a number; endpoints are made only for pods that have the port"
            ),
        };
        warnings.push(warn(
            port.target_port_pos,
            format!("spec.ports[{index}].targetPort"),
            format!(
                "service `{}`: no pod it selects has a {} port named `{name}`",
                svc.name, port.protocol
            ),
            hint,
        ));
    }
}

// ---- network policies ----
//
// A policy in a namespace that does not exist is reported by `check_names`
// with the other objects; a selector's syntax, ipBlocks and ports by the
// decoder. What is left is a warning: a policy that selects no pod is
// allowed, as in Kubernetes, but does nothing.

// ---- hand-written endpoints ----
//
// Allowed wherever Kubernetes allows them; what they do depends on their
// Service, which is a warning when it cannot be what was meant.

fn check_hand_endpoints(source: &str, file: &LabFile) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for h in &file.endpoints {
        let svc = file
            .services
            .iter()
            .find(|s| s.namespace == h.namespace && s.name == h.service);
        let (message, hint) = match svc {
            None => (
                format!(
                    "{} `{}` is for Service `{}`, which the file does not have: it serves nothing",
                    h.kind, h.name, h.service
                ),
                format!(
                    "add a Service `{}` without a selector in namespace `{}`",
                    h.service, h.namespace
                ),
            ),
            Some(s) if s.spec.selector.is_some() => (
                format!(
                    "{} `{}` is ignored: Service `{}` has a selector, so its endpoints are the pods it selects",
                    h.kind, h.name, h.service
                ),
                "remove the Service's selector to use these addresses, as a cluster's endpoints controller would replace them".into(),
            ),
            Some(_) => continue,
        };
        warnings.push(Diagnostic {
            source: source.to_string(),
            pos: h.pos,
            field: "metadata.name".into(),
            message,
            hint: Some(hint),
        });
    }
    warnings
}

fn check_policies(source: &str, file: &LabFile) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for p in &file.policies {
        // kube-system holds podlab's own coredns pod, which the file does
        // not list.
        if p.namespace == "kube-system" {
            continue;
        }
        let sel = &p.spec.pod_selector;
        let any = file
            .pods
            .iter()
            .any(|x| x.namespace == p.namespace && sel.matches(&x.labels))
            || file.deployments.iter().any(|d| {
                d.namespace == p.namespace && d.replicas > 0 && sel.matches(&d.template_labels)
            })
            || file.workloads.iter().any(|w| {
                w.namespace == p.namespace
                    && w.pod_count(&file.lab.nodes) > 0
                    && sel.matches(&w.template_labels)
            });
        if !any {
            warnings.push(Diagnostic {
                source: source.to_string(),
                pos: p.pos,
                field: "spec.podSelector".into(),
                message: format!(
                    "network policy `{}` selects no pod: it isolates nothing",
                    p.name
                ),
                hint: Some(format!(
                    "no pod or deployment (with replicas) in namespace `{}` matches `{sel}`",
                    p.namespace
                )),
            });
        }
    }
    warnings
}

/// `check_names` rows of the workloads of one kind.
fn workload_rows<'a>(
    file: &'a LabFile,
    spans: &Spans,
    kind: WorkloadKind,
) -> Vec<(&'a str, &'a str, Pos, Option<Pos>)> {
    file.workloads
        .iter()
        .zip(&spans.workloads)
        .filter(|(w, _)| w.kind == kind)
        .map(|(w, s)| (w.namespace.as_str(), w.name.as_str(), w.pos, s.namespace))
        .collect()
}

/// A StatefulSet whose `serviceName` names no Service of its namespace is
/// allowed, as in Kubernetes, but its pods' stable names
/// (`web-0.nginx.<ns>.svc...`) then resolve to nothing.
fn check_workloads(source: &str, file: &LabFile) -> Vec<Diagnostic> {
    file.workloads
        .iter()
        .filter_map(|w| {
            let svc = w.service_name.as_deref()?;
            let found = file
                .services
                .iter()
                .any(|s| s.namespace == w.namespace && s.name == svc);
            (!found).then(|| Diagnostic {
                source: source.to_string(),
                pos: w.pos,
                field: "spec.serviceName".into(),
                message: format!(
                    "statefulset `{}`: serviceName `{svc}` names no Service in namespace `{}`: its pods get no DNS names",
                    w.name, w.namespace
                ),
                hint: Some(format!(
                    "add a headless Service `{svc}` (`clusterIP: None`) that selects the pods"
                )),
            })
        })
        .collect()
}
