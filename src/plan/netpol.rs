//! NetworkPolicy: which pods each policy selects and allows, computed from
//! the lab, and the `ip network-policy` table that enforces it on a node.
//!
//! Semantics are Kubernetes' (networking.k8s.io/v1):
//! - a pod selected by no policy of a direction is open in that direction;
//!   once selected by one, only what some selecting policy allows passes
//!   (policies are a union of allows);
//! - `policyTypes` defaults to Ingress, plus Egress when `egress` has rules;
//! - a peer with podSelector and namespaceSelector needs both, separate
//!   peers are alternatives; a missing namespaceSelector is the policy's own
//!   namespace; empty `from`/`to` is everyone, empty `ports` every port;
//! - a named port is resolved on each destination pod;
//! - replies to allowed connections pass (conntrack).
//!
//! Enforcement is in each node's forward hook, at priority 0: after
//! kube-proxy's DNAT (so a policy sees the backend pod, as in Kubernetes)
//! and for bridged same-node traffic too (br_netfilter). A pod's egress is
//! checked on its own node, its ingress on its own node; traffic between a
//! pod and its own node's addresses never crosses the forward hook, so a
//! pod's own node always reaches it (as Calico and Cilium allow).
//!
//! Pure: `node_ruleset` builds a value; `kernel::apply` loads it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Range, SetItem, Verdict, CT};
use nftables::schema::{
    Chain, Counter, Map, NfListObject, Nftables, Rule, SetType, SetTypeValue, Table,
};
use nftables::stmt::{self, JumpTarget, Operator, Statement, VerdictMap};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde::{Deserialize, Serialize};

use super::kubeproxy::{cmp, field, prefix, proto_word, s, Expr, Stmt};
use super::names::fnv1a;
use super::{NodePlan, Plan, PodPlan};
use crate::lab::{
    LabFile, LabelSelector, PolicyPeer, PolicyPort, PolicyPortNumber, PolicyType, Protocol,
};

pub const TABLE: &str = "network-policy";
/// The label every namespace carries (Kubernetes 1.21+).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// nft object names are limited (256 bytes on current kernels; older ones
/// had 32): longer counter names are shortened with a hash.
const MAX_COUNTER_NAME: usize = 200;

/// A NetworkPolicy with its selectors resolved against the lab's pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyPlan {
    pub namespace: String,
    pub name: String,
    pub pod_selector: LabelSelector,
    /// Defaulted as Kubernetes defaults it.
    pub policy_types: Vec<PolicyType>,
    /// Keys (`ns/name`) of the pods it selects.
    pub selected: Vec<String>,
    pub ingress: Vec<RulePlan>,
    pub egress: Vec<RulePlan>,
    /// The manifest's spec (policyTypes defaulted), for `-o json`.
    pub spec: serde_json::Value,
    /// The manifest's labels and annotations, for the API: kubectl's
    /// `last-applied-configuration` is among them.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub meta: serde_json::Value,
}

impl PolicyPlan {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn isolates(&self, t: PolicyType) -> bool {
        self.policy_types.contains(&t)
    }

    fn rules(&self, t: PolicyType) -> &[RulePlan] {
        match t {
            PolicyType::Ingress => &self.ingress,
            PolicyType::Egress => &self.egress,
        }
    }
}

/// One ingress or egress rule, its peers resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulePlan {
    /// `None`: from/to everyone (no `from`/`to`, or an empty one).
    pub peers: Option<Vec<PeerPlan>>,
    /// Empty: every port.
    pub ports: Vec<PolicyPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerPlan {
    /// The pods a podSelector/namespaceSelector peer picks, by key.
    Pods(Vec<String>),
    Block {
        cidr: Ipv4Net,
        except: Vec<Ipv4Net>,
    },
}

/// Kubernetes' defaulting: Ingress always, Egress when there are egress
/// rules (`egress: []` is no rule).
/// `metadata.labels` and `metadata.annotations` of a manifest, `null`
/// when it has neither.
pub fn user_meta(raw: &serde_json::Value) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for k in ["labels", "annotations"] {
        if let Some(v) = raw["metadata"].get(k).filter(|v| v.is_object()) {
            m.insert(k.into(), v.clone());
        }
    }
    if m.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::Object(m)
    }
}

pub fn default_types(spec: &crate::lab::PolicySpec) -> Vec<PolicyType> {
    match &spec.policy_types {
        Some(t) if !t.is_empty() => t.clone(),
        _ => {
            let mut t = vec![PolicyType::Ingress];
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                t.push(PolicyType::Egress);
            }
            t
        }
    }
}

/// Every namespace's labels, `kubernetes.io/metadata.name` included;
/// `default` and `kube-system` exist without being declared.
pub fn namespace_labels(file: &LabFile) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for ns in ["default", "kube-system"] {
        out.insert(ns.to_string(), BTreeMap::new());
    }
    for ns in &file.namespaces {
        out.insert(ns.name.clone(), ns.labels.clone());
    }
    for (name, labels) in &mut out {
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.clone());
    }
    out
}

/// Every policy of the lab, resolved against `pods` (the plan's, so that
/// Deployments' replicas and the cluster DNS pod are included).
pub fn plan_policies(file: &LabFile, pods: &[PodPlan]) -> Vec<PolicyPlan> {
    let namespaces = namespace_labels(file);
    file.policies
        .iter()
        .map(|p| {
            let types = default_types(&p.spec);
            let selected = pods
                .iter()
                .filter(|x| x.namespace == p.namespace && p.spec.pod_selector.matches(&x.labels))
                .map(PodPlan::key)
                .collect();
            let resolve = |rules: &Option<Vec<crate::lab::PolicyRule>>| -> Vec<RulePlan> {
                rules
                    .iter()
                    .flatten()
                    .map(|r| RulePlan {
                        peers: (!r.peers.is_empty()).then(|| {
                            r.peers
                                .iter()
                                .map(|peer| resolve_peer(peer, &p.namespace, &namespaces, pods))
                                .collect()
                        }),
                        ports: r.ports.clone(),
                    })
                    .collect()
            };
            let mut spec = p
                .raw
                .get("spec")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            if let Some(obj) = spec.as_object_mut() {
                obj.insert(
                    "policyTypes".into(),
                    serde_json::to_value(&types).unwrap_or_default(),
                );
            }
            PolicyPlan {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                pod_selector: p.spec.pod_selector.clone(),
                ingress: resolve(&p.spec.ingress),
                egress: resolve(&p.spec.egress),
                policy_types: types,
                selected,
                spec,
                meta: user_meta(&p.raw),
            }
        })
        .collect()
}

fn resolve_peer(
    peer: &PolicyPeer,
    policy_ns: &str,
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    pods: &[PodPlan],
) -> PeerPlan {
    match peer {
        PolicyPeer::IpBlock { cidr, except } => PeerPlan::Block {
            cidr: *cidr,
            except: except.clone(),
        },
        PolicyPeer::Pods {
            pod_selector,
            namespace_selector,
        } => PeerPlan::Pods(
            pods.iter()
                .filter(|p| match namespace_selector {
                    None => p.namespace == policy_ns,
                    Some(sel) => namespaces.get(&p.namespace).is_some_and(|l| sel.matches(l)),
                })
                .filter(|p| pod_selector.as_ref().is_none_or(|s| s.matches(&p.labels)))
                .map(PodPlan::key)
                .collect(),
        ),
    }
}

// ---- what a pod allows ----

/// The other end of an allowed connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Any,
    Ips(Vec<Ipv4Addr>),
    Block { cidr: Ipv4Net, except: Vec<Ipv4Net> },
}

impl Peer {
    pub fn covers(&self, ip: Ipv4Addr) -> bool {
        match self {
            Peer::Any => true,
            Peer::Ips(v) => v.contains(&ip),
            Peer::Block { cidr, except } => {
                cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
            }
        }
    }
}

/// One allow of a pod's chain: a peer, and a protocol and port range
/// (`None`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// `namespace/name` of the policy it comes from.
    pub policy: String,
    /// Index of the rule in the policy's ingress or egress list.
    pub rule: usize,
    pub peer: Peer,
    pub protocol: Option<Protocol>,
    pub ports: Option<(u16, u16)>,
}

impl Allow {
    pub fn permits(&self, other: Ipv4Addr, protocol: Protocol, port: u16) -> bool {
        self.peer.covers(other)
            && self.protocol.is_none_or(|p| p == protocol)
            && self.ports.is_none_or(|(lo, hi)| (lo..=hi).contains(&port))
    }
}

fn named_port(pod: &PodPlan, name: &str, protocol: Protocol) -> Option<u16> {
    pod.ports
        .iter()
        .find(|p| p.name.as_deref() == Some(name) && p.protocol == protocol)
        .map(|p| p.port)
}

/// The policies that select `pod` for direction `t`.
pub fn selecting<'a>(plan: &'a Plan, pod: &PodPlan, t: PolicyType) -> Vec<&'a PolicyPlan> {
    let key = pod.key();
    plan.policies
        .iter()
        .filter(|p| p.isolates(t) && p.selected.contains(&key))
        .collect()
}

/// What `pod` allows in direction `t`: `None` when no policy isolates it
/// there (everything passes), else the union of its policies' allows.
pub fn allows(plan: &Plan, pod: &PodPlan, t: PolicyType) -> Option<Vec<Allow>> {
    let policies = selecting(plan, pod, t);
    if policies.is_empty() {
        return None;
    }
    let ips: HashMap<String, Ipv4Addr> = plan.pods.iter().map(|p| (p.key(), p.ip)).collect();
    let mut out = Vec::new();
    for policy in policies {
        for (i, rule) in policy.rules(t).iter().enumerate() {
            let peers: Vec<Peer> = match &rule.peers {
                None => vec![Peer::Any],
                Some(peers) => peers
                    .iter()
                    .map(|p| match p {
                        PeerPlan::Pods(keys) => {
                            Peer::Ips(keys.iter().filter_map(|k| ips.get(k).copied()).collect())
                        }
                        PeerPlan::Block { cidr, except } => Peer::Block {
                            cidr: *cidr,
                            except: except.clone(),
                        },
                    })
                    // A selector that picks no pod allows nothing.
                    .filter(|p| !matches!(p, Peer::Ips(v) if v.is_empty()))
                    .collect(),
            };
            let allow = |peer: Peer, protocol, ports| Allow {
                policy: policy.key(),
                rule: i,
                peer,
                protocol,
                ports,
            };
            for peer in peers {
                if rule.ports.is_empty() {
                    out.push(allow(peer.clone(), None, None));
                    continue;
                }
                for port in &rule.ports {
                    let proto = Some(port.protocol);
                    match &port.port {
                        None => out.push(allow(peer.clone(), proto, None)),
                        Some(PolicyPortNumber::Number(n)) => out.push(allow(
                            peer.clone(),
                            proto,
                            Some((*n, port.end_port.unwrap_or(*n))),
                        )),
                        // Ingress: the destination is this pod.
                        Some(PolicyPortNumber::Name(name)) if t == PolicyType::Ingress => {
                            if let Some(n) = named_port(pod, name, port.protocol) {
                                out.push(allow(peer.clone(), proto, Some((n, n))));
                            }
                        }
                        // Egress: each destination pod the peer covers that
                        // has a port of that name, grouped by number.
                        Some(PolicyPortNumber::Name(name)) => {
                            let mut by_port: BTreeMap<u16, Vec<Ipv4Addr>> = BTreeMap::new();
                            for dst in &plan.pods {
                                if let Some(n) = named_port(dst, name, port.protocol) {
                                    if peer.covers(dst.ip) {
                                        by_port.entry(n).or_default().push(dst.ip);
                                    }
                                }
                            }
                            for (n, ips) in by_port {
                                out.push(allow(Peer::Ips(ips), proto, Some((n, n))));
                            }
                        }
                    }
                }
            }
        }
    }
    Some(out)
}

/// Whether the policies let a new connection from `src` to `dst` pass:
/// the source pod's egress and the destination pod's ingress must both
/// allow it. What the node's rules decide, as a pure function (for tests
/// and `diagnose`).
pub fn permitted(plan: &Plan, src: Ipv4Addr, dst: Ipv4Addr, protocol: Protocol, port: u16) -> bool {
    // A pod reaching its own IP stays inside its namespace (loopback).
    if src == dst {
        return true;
    }
    let pod = |ip| plan.pods.iter().find(|p| p.ip == ip);
    if let Some(s) = pod(src) {
        if let Some(a) = allows(plan, s, PolicyType::Egress) {
            if !a.iter().any(|a| a.permits(dst, protocol, port)) {
                return false;
            }
        }
    }
    if let Some(d) = pod(dst) {
        if let Some(a) = allows(plan, d, PolicyType::Ingress) {
            if !a.iter().any(|a| a.permits(src, protocol, port)) {
                return false;
            }
        }
    }
    true
}

// ---- counters ----

fn bounded(name: String) -> String {
    if name.len() <= MAX_COUNTER_NAME {
        return name;
    }
    let mut cut = MAX_COUNTER_NAME - 17;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{:016x}", &name[..cut], fnv1a(&[&name]))
}

/// The counter of the packets a policy allowed (on every node: `get
/// netpol` sums them).
pub fn allow_counter(namespace: &str, policy: &str) -> String {
    bounded(format!("allow-{namespace}-{policy}"))
}

/// The counter of the packets dropped for a pod in one direction. A drop
/// is the pod's, not a policy's: it is what none of the policies
/// isolating the pod allowed (`get netpol` shows it per pod).
pub fn drop_counter(t: PolicyType, namespace: &str, pod: &str) -> String {
    let dir = match t {
        PolicyType::Ingress => "ingress",
        PolicyType::Egress => "egress",
    };
    bounded(format!("drop-{dir}-{namespace}-{pod}"))
}

/// The drop counters of the pods a policy isolates, in the directions it
/// isolates; each is shared with the other policies isolating that pod,
/// so their sum is not what this policy decided.
pub fn drop_counters(plan: &Plan, policy: &PolicyPlan) -> Vec<String> {
    let mut v = Vec::new();
    for key in &policy.selected {
        let Some(pod) = plan.pods.iter().find(|p| &p.key() == key) else {
            continue;
        };
        for t in &policy.policy_types {
            v.push(drop_counter(*t, &pod.namespace, &pod.name));
        }
    }
    v
}

// ---- the nftables table ----

fn dir_word(t: PolicyType) -> &'static str {
    match t {
        PolicyType::Ingress => "ingress",
        PolicyType::Egress => "egress",
    }
}

/// The chain holding a pod's rules for one direction.
pub fn pod_chain(t: PolicyType, pod: &PodPlan) -> String {
    format!("{}-{}/{}", dir_word(t), pod.namespace, pod.name)
}

/// The matches of one allow: the peer's address (`ip saddr` for ingress,
/// `ip daddr` for egress), protocol and ports.
fn allow_matches(a: &Allow, t: PolicyType) -> Vec<Stmt> {
    let addr = || match t {
        PolicyType::Ingress => field("ip", "saddr"),
        PolicyType::Egress => field("ip", "daddr"),
    };
    let mut m = Vec::new();
    match &a.peer {
        Peer::Any => {}
        Peer::Ips(ips) if ips.len() == 1 => {
            m.push(cmp(addr(), Operator::EQ, s(ips[0].to_string())))
        }
        Peer::Ips(ips) => m.push(cmp(
            addr(),
            Operator::EQ,
            Expression::Named(NamedExpression::Set(
                ips.iter()
                    .map(|ip| SetItem::Element(s(ip.to_string())))
                    .collect(),
            )),
        )),
        Peer::Block { cidr, except } => {
            if cidr.prefix_len() > 0 {
                m.push(cmp(addr(), Operator::EQ, prefix(*cidr)));
            }
            for e in except {
                m.push(cmp(addr(), Operator::NEQ, prefix(*e)));
            }
        }
    }
    if let Some(p) = a.protocol {
        m.push(cmp(
            Expression::Named(NamedExpression::Meta(Meta {
                key: MetaKey::L4proto,
            })),
            Operator::EQ,
            s(proto_word(p)),
        ));
    }
    if let Some((lo, hi)) = a.ports {
        let right = if lo == hi {
            Expression::Number(u32::from(lo))
        } else {
            Expression::Range(Box::new(Range {
                range: [
                    Expression::Number(u32::from(lo)),
                    Expression::Number(u32::from(hi)),
                ],
            }))
        };
        m.push(cmp(field("th", "dport"), Operator::EQ, right));
    }
    m
}

fn describe_allow(a: &Allow, t: PolicyType) -> String {
    let who = match &a.peer {
        Peer::Any => "anyone".to_string(),
        Peer::Ips(v) if v.len() <= 3 => v
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
        Peer::Ips(v) => format!("{} pods", v.len()),
        Peer::Block { cidr, except } if except.is_empty() => cidr.to_string(),
        Peer::Block { cidr, except } => format!("{cidr} except {}", except.len()),
    };
    let what = match (a.protocol, a.ports) {
        (None, _) => "any port".to_string(),
        (Some(p), None) => format!("any {p} port"),
        (Some(p), Some((lo, hi))) if lo == hi => format!("{p}/{lo}"),
        (Some(p), Some((lo, hi))) => format!("{p}/{lo}-{hi}"),
    };
    let dir = match t {
        PolicyType::Ingress => "from",
        PolicyType::Egress => "to",
    };
    format!(
        "{}: {} rule {}, {dir} {who}, {what}",
        a.policy,
        dir_word(t),
        a.rule
    )
}

struct Objects {
    chains: Vec<NfListObject<'static>>,
    others: Vec<NfListObject<'static>>,
    rules: Vec<NfListObject<'static>>,
}

impl Objects {
    fn chain(&mut self, name: &str) {
        self.chains.push(NfListObject::Chain(Chain {
            family: NfFamily::IP,
            table: TABLE.into(),
            name: Cow::Owned(name.to_string()),
            ..Chain::default()
        }));
    }

    fn counter(&mut self, name: &str) {
        self.others.push(NfListObject::Counter(Counter {
            family: NfFamily::IP,
            table: TABLE.into(),
            name: Cow::Owned(name.to_string()),
            handle: None,
            packets: None,
            bytes: None,
        }));
    }

    fn rule(&mut self, chain: &str, expr: Vec<Stmt>, comment: String) {
        let mut comment = comment;
        if comment.len() > 128 {
            let mut end = 128;
            while !comment.is_char_boundary(end) {
                end -= 1;
            }
            comment.truncate(end);
        }
        self.rules.push(NfListObject::Rule(Rule {
            family: NfFamily::IP,
            table: TABLE.into(),
            chain: Cow::Owned(chain.to_string()),
            expr: Cow::Owned(expr),
            comment: (!comment.is_empty()).then_some(Cow::Owned(comment)),
            ..Rule::default()
        }));
    }

    fn verdict_map(&mut self, name: &str, elems: Vec<Expr>, comment: &str) {
        self.others.push(NfListObject::Map(Box::new(Map {
            family: NfFamily::IP,
            table: TABLE.into(),
            name: Cow::Owned(name.to_string()),
            set_type: SetTypeValue::Single(SetType::Ipv4Addr),
            // A placeholder: `kubeproxy::to_json` writes `verdict`.
            map: SetTypeValue::Single(SetType::Mark),
            elem: (!elems.is_empty()).then_some(Cow::Owned(elems)),
            comment: Some(Cow::Owned(comment.to_string())),
            ..Map::default()
        })));
    }
}

/// The node's `ip network-policy` table, replaced whole in one transaction
/// (load it with `kubeproxy::to_json`, which types its verdict maps).
///
/// ```text
/// chain forward (filter, forward, priority 0, policy accept)
///   ct state established,related accept
///   ip saddr vmap @egress-pods      local pods isolated for egress
///   ip daddr vmap @ingress-pods     local pods isolated for ingress
/// chain egress-NS/POD:  each allow -> counter allow-NS-POLICY return; else counter, drop
/// chain ingress-NS/POD: each allow -> counter allow-NS-POLICY accept; else counter, drop
/// ```
pub fn node_ruleset(plan: &Plan, node: &NodePlan) -> Nftables<'static> {
    let mut o = Objects {
        chains: Vec::new(),
        others: Vec::new(),
        rules: Vec::new(),
    };
    o.chains.push(NfListObject::Chain(Chain {
        family: NfFamily::IP,
        table: TABLE.into(),
        name: "forward".into(),
        _type: Some(NfChainType::Filter),
        hook: Some(NfHook::Forward),
        // After kube-proxy's DNAT (prerouting, -100) and its own filter
        // chains (-110): a policy sees the backend pod.
        prio: Some(0),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }));
    o.rule(
        "forward",
        vec![
            cmp(
                Expression::Named(NamedExpression::CT(CT {
                    key: "state".into(),
                    family: None,
                    dir: None,
                })),
                Operator::IN,
                Expression::List(vec![s("established"), s("related")]),
            ),
            Statement::Accept(None),
        ],
        "replies to allowed connections pass, as every NetworkPolicy implementation lets them"
            .into(),
    );
    let jump_map = |name: &str, key: Expr| {
        Statement::VerdictMap(VerdictMap {
            key,
            data: s(format!("@{name}")),
        })
    };
    o.rule(
        "forward",
        vec![jump_map("egress-pods", field("ip", "saddr"))],
        "from a pod of this node isolated for egress: its egress chain".into(),
    );
    o.rule(
        "forward",
        vec![jump_map("ingress-pods", field("ip", "daddr"))],
        "to a pod of this node isolated for ingress: its ingress chain".into(),
    );
    for p in &plan.policies {
        o.counter(&allow_counter(&p.namespace, &p.name));
    }
    let mut maps: [(PolicyType, Vec<Expr>); 2] = [
        (PolicyType::Egress, Vec::new()),
        (PolicyType::Ingress, Vec::new()),
    ];
    for pod in plan.pods.iter().filter(|p| p.node == node.name) {
        for (t, elems) in &mut maps {
            let t = *t;
            let Some(allows) = allows(plan, pod, t) else {
                continue;
            };
            let chain = pod_chain(t, pod);
            o.chain(&chain);
            elems.push(Expression::List(vec![
                s(pod.ip.to_string()),
                Expression::Verdict(Verdict::Jump(JumpTarget {
                    target: Cow::Owned(chain.clone()),
                })),
            ]));
            for a in &allows {
                let (ns, name) = a.policy.split_once('/').unwrap_or(("", &a.policy));
                let mut expr = allow_matches(a, t);
                expr.push(Statement::Counter(stmt::Counter::Named(Cow::Owned(
                    allow_counter(ns, name),
                ))));
                expr.push(match t {
                    // Egress allowed: on to the destination's ingress check.
                    PolicyType::Egress => Statement::Return(None),
                    PolicyType::Ingress => Statement::Accept(None),
                });
                o.rule(&chain, expr, describe_allow(a, t));
            }
            let drop = drop_counter(t, &pod.namespace, &pod.name);
            o.counter(&drop);
            let by: Vec<String> = selecting(plan, pod, t).iter().map(|p| p.key()).collect();
            o.rule(
                &chain,
                vec![
                    Statement::Counter(stmt::Counter::Named(Cow::Owned(drop))),
                    Statement::Drop(None),
                ],
                format!(
                    "{}: isolated for {} by {}; nothing allowed it",
                    pod.key(),
                    dir_word(t),
                    by.join(",")
                ),
            );
        }
    }
    let [(_, egress), (_, ingress)] = maps;
    o.verdict_map("egress-pods", egress, "pod IP -> its egress chain");
    o.verdict_map("ingress-pods", ingress, "pod IP -> its ingress chain");

    let table = || {
        NfListObject::Table(Table {
            family: NfFamily::IP,
            name: TABLE.into(),
            handle: None,
        })
    };
    let mut batch = Batch::new();
    batch.add(table());
    batch.delete(table());
    batch.add(table());
    // Chains, then counters and maps (which rules name), then rules.
    for obj in o.chains.into_iter().chain(o.others).chain(o.rules) {
        batch.add(obj);
    }
    batch.to_nftables()
}
