//! `podlab graph`: a picture of a lab as the kernel has it.
//!
//! A [`Graph`] is built from the plan (what each part is, and what it is
//! for) and an [`Observed`] view (the addresses and links each namespace
//! holds now, observe's findings, the daemon's pod states); the renderers
//! turn it into SVG, DOT, Mermaid or ASCII. Building and rendering are pure:
//! the command reads the kernel, then calls these.
//!
//! What the kernel cannot show as a thing of its own (a Service is only
//! nftables rules, a NetworkPolicy only a chain) is drawn from the plan, and
//! its rules are held against the kernel by observe: a difference there is
//! marked on the node whose rules differ.

mod ascii;
mod dot;
mod mermaid;
mod read;
mod svg;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use crate::kernel::inspect::NetnsView;
use crate::lab::{PolicyPortNumber, PolicyType, Protocol};
use crate::observe::Finding;
use crate::plan::netpol::{PeerPlan, PolicyPlan, RulePlan};
use crate::plan::{Plan, ServicePlan, ServiceType, TargetPort, ETH0, POD_BRIDGE};

pub use ascii::render as ascii;
pub use dot::render as dot;
pub use mermaid::render as mermaid;
pub use read::observe;
pub use svg::render as svg;

/// Pods a node shows one by one in the SVG and ASCII pictures; beyond it the
/// rest are counted (a marked pod is always shown).
pub const COLLAPSE_AT: usize = 12;

/// What was read from the running lab.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Each namespace's links and addresses, by namespace name; a namespace
    /// missing here could not be read (a finding says why).
    pub views: HashMap<String, NetnsView>,
    /// observe's comparison of the kernel with the plan.
    pub findings: Vec<Finding>,
    /// Each pod's STATUS as the daemon reports it, by `ns/name`; empty
    /// without a daemon.
    pub pods: BTreeMap<String, PodState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub status: String,
    pub ready: bool,
}

/// An address as it was found: read from the kernel, or (its namespace
/// unreadable) the plan's, which the picture says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub text: String,
    pub seen: bool,
}

impl Addr {
    /// The address, with `(plan)` when the kernel did not give it.
    pub fn show(&self) -> String {
        if self.seen {
            self.text.clone()
        } else {
            format!("{} (plan)", self.text)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Graph {
    pub lab: String,
    /// The node network's bridge (`br0` in the `net` namespace).
    pub bridge: Part,
    pub clients: Vec<Client>,
    pub nodes: Vec<Node>,
    pub services: Vec<Service>,
    pub policies: Vec<Policy>,
    /// Findings that name no part of the picture.
    pub other: Vec<String>,
}

/// A box of the picture: its name, address, and what differs from the plan.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub address: Addr,
    pub marks: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub part: Part,
    /// Other addresses on its eth0: the LoadBalancer IPs `lb` answers for.
    pub extra: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Node {
    /// eth0's address.
    pub part: Part,
    pub cni0: Addr,
    pub pod_cidr: String,
    pub pods: Vec<Pod>,
}

impl Node {
    /// The pods a collapsed picture shows, and how many it leaves out:
    /// the first ones up to the limit, and every marked one.
    pub fn shown(&self, all: bool) -> (Vec<&Pod>, usize) {
        if all || self.pods.len() <= COLLAPSE_AT {
            return (self.pods.iter().collect(), 0);
        }
        let keep = COLLAPSE_AT - 2;
        let shown: Vec<&Pod> = self
            .pods
            .iter()
            .enumerate()
            .filter(|(i, p)| *i < keep || !p.part.marks.is_empty())
            .map(|(_, p)| p)
            .collect();
        let hidden = self.pods.len() - shown.len();
        (shown, hidden)
    }
}

#[derive(Debug, Clone)]
pub struct Pod {
    /// Named `ns/name`; the address is eth0's.
    pub part: Part,
    pub labels: String,
    /// The daemon's STATUS, `None` without a daemon.
    pub status: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub key: String,
    pub kind: &'static str,
    /// ClusterIP (or `None` for headless), NodePorts, LoadBalancer IP,
    /// ports: one line each.
    pub lines: Vec<String>,
    /// Endpoints: pod key, and whether the pod is ready (a pod that is not
    /// is left out of kube-proxy's rules).
    pub endpoints: Vec<(String, bool)>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub key: String,
    pub selects: Vec<String>,
    /// What it lets through, one line per rule (`ingress: from ... on ...`).
    pub allows: Vec<String>,
}

/// Build the picture of `plan` as `seen` found it.
pub fn build(plan: &Plan, seen: &Observed) -> Graph {
    let mut marks = Marks::new(plan, &seen.findings);
    let prefix = plan.net.cidr.prefix_len();
    let bridge = Part {
        name: plan.net.bridge.clone(),
        address: address(
            seen,
            &plan.net.netns,
            &plan.net.bridge,
            format!("{}/{prefix}", plan.net.gateway),
        ),
        marks: marks.take(&plan.net.netns),
    };
    let clients = plan
        .clients
        .iter()
        .map(|c| {
            let planned = format!("{}/{prefix}", c.ip);
            let extra = seen.views.get(&c.netns).map_or_else(Vec::new, |v| {
                v.addresses_of(ETH0)
                    .iter()
                    .map(|a| format!("{}/{}", a.ip, a.prefix))
                    .filter(|a| *a != planned)
                    .collect()
            });
            Client {
                part: Part {
                    name: c.name.clone(),
                    address: address(seen, &c.netns, ETH0, planned),
                    marks: marks.take(&c.netns),
                },
                extra,
            }
        })
        .collect();
    let nodes = plan
        .nodes
        .iter()
        .map(|n| {
            let pods = plan
                .pods
                .iter()
                .filter(|p| p.node == n.name)
                .map(|p| Pod {
                    part: Part {
                        name: p.key(),
                        address: address(seen, &p.netns, ETH0, format!("{}/{}", p.ip, p.prefix)),
                        marks: marks.take_pod(p),
                    },
                    labels: p
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    status: seen.pods.get(&p.key()).map(|s| s.status.clone()),
                })
                .collect();
            Node {
                part: Part {
                    name: n.name.clone(),
                    address: address(seen, &n.netns, ETH0, format!("{}/{prefix}", n.ip)),
                    marks: marks.take(&n.netns),
                },
                cni0: address(
                    seen,
                    &n.netns,
                    POD_BRIDGE,
                    format!("{}/{}", n.pod_gateway, n.pod_cidr.prefix_len()),
                ),
                pod_cidr: n.pod_cidr.to_string(),
                pods,
            }
        })
        .collect();
    let services = plan.services.iter().map(|s| service(s, seen)).collect();
    let policies = plan.policies.iter().map(policy).collect();
    Graph {
        lab: plan.lab.clone(),
        bridge,
        clients,
        nodes,
        services,
        policies,
        other: marks.rest(),
    }
}

/// The addresses `link` has in `netns`, or the plan's when the namespace
/// was not read. A link read without the planned address shows what it
/// has (a finding says what it should have).
fn address(seen: &Observed, netns: &str, link: &str, planned: String) -> Addr {
    let Some(view) = seen.views.get(netns) else {
        return Addr {
            text: planned,
            seen: false,
        };
    };
    let have: Vec<String> = view
        .addresses_of(link)
        .iter()
        .map(|a| format!("{}/{}", a.ip, a.prefix))
        .collect();
    let text = if have.contains(&planned) {
        planned
    } else if have.is_empty() {
        "no address".to_string()
    } else {
        have.join(" ")
    };
    Addr { text, seen: true }
}

fn service(s: &ServicePlan, seen: &Observed) -> Service {
    let kind = match s.kind {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
        ServiceType::ExternalName => "ExternalName",
    };
    let mut lines = Vec::new();
    match (&s.external_name, s.cluster_ip) {
        (Some(name), _) => lines.push(format!("CNAME {name}")),
        (None, Some(ip)) => lines.push(format!("ClusterIP {ip}")),
        (None, None) => lines.push("headless (pod IPs in DNS)".to_string()),
    }
    let ports: Vec<String> = s
        .ports
        .iter()
        .map(|p| {
            let target = match &p.target_port {
                TargetPort::Number(n) => n.to_string(),
                TargetPort::Name(n) => n.clone(),
            };
            format!("{}->{target}/{}", p.port, protocol(p.protocol))
        })
        .collect();
    if !ports.is_empty() {
        lines.push(ports.join(" "));
    }
    let node_ports: Vec<String> = s
        .ports
        .iter()
        .filter_map(|p| p.node_port)
        .map(|n| n.to_string())
        .collect();
    if !node_ports.is_empty() {
        lines.push(format!("NodePort {}", node_ports.join(" ")));
    }
    if let Some(ip) = s.load_balancer_ip {
        lines.push(format!("LB {ip}"));
    }
    let endpoints = s
        .endpoints
        .iter()
        .map(|e| {
            let key = format!("{}/{}", e.namespace, e.pod);
            // Without a daemon nothing says otherwise: as the plan has it.
            let ready = seen.pods.is_empty() || seen.pods.get(&key).is_some_and(|p| p.ready);
            (key, ready)
        })
        .collect();
    Service {
        key: s.key(),
        kind,
        lines,
        endpoints,
    }
}

fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn policy(p: &PolicyPlan) -> Policy {
    let mut allows = Vec::new();
    for (t, rules) in [
        (PolicyType::Ingress, &p.ingress),
        (PolicyType::Egress, &p.egress),
    ] {
        if !p.isolates(t) {
            continue;
        }
        let (word, dir) = match t {
            PolicyType::Ingress => ("ingress", "from"),
            PolicyType::Egress => ("egress", "to"),
        };
        if rules.is_empty() {
            allows.push(format!("{word}: nothing (all denied)"));
        }
        for r in rules {
            allows.push(format!("{word}: {dir} {}", rule_text(r)));
        }
    }
    Policy {
        key: p.key(),
        selects: p.selected.clone(),
        allows,
    }
}

/// How many pod names a policy line lists before counting the rest.
const PEERS_LISTED: usize = 3;

fn rule_text(r: &RulePlan) -> String {
    let peers = match &r.peers {
        None => "anyone".to_string(),
        Some(peers) => {
            let words: Vec<String> = peers
                .iter()
                .map(|p| match p {
                    PeerPlan::Pods(keys) if keys.is_empty() => "no pod".to_string(),
                    PeerPlan::Pods(keys) if keys.len() > PEERS_LISTED => format!(
                        "{} and {} more pods",
                        keys[..PEERS_LISTED].join(", "),
                        keys.len() - PEERS_LISTED
                    ),
                    PeerPlan::Pods(keys) => keys.join(", "),
                    PeerPlan::Block { cidr, except } if except.is_empty() => cidr.to_string(),
                    PeerPlan::Block { cidr, except } => {
                        let ex: Vec<String> = except.iter().map(|e| e.to_string()).collect();
                        format!("{cidr} except {}", ex.join(", "))
                    }
                })
                .collect();
            if words.is_empty() {
                "no one".to_string()
            } else {
                words.join("; ")
            }
        }
    };
    let ports: Vec<String> = r
        .ports
        .iter()
        .map(|p| {
            let n = match (&p.port, p.end_port) {
                (None, _) => "all".to_string(),
                (Some(PolicyPortNumber::Number(a)), Some(b)) => format!("{a}-{b}"),
                (Some(PolicyPortNumber::Number(a)), None) => a.to_string(),
                (Some(PolicyPortNumber::Name(n)), _) => n.clone(),
            };
            format!("{} {n}", protocol(p.protocol))
        })
        .collect();
    if ports.is_empty() {
        format!("{peers}, every port")
    } else {
        format!("{peers} on {}", ports.join(", "))
    }
}

/// observe's findings handed out to the parts they are about, each once.
struct Marks {
    by_netns: HashMap<String, Vec<(Option<String>, String)>>,
    by_pod: HashMap<String, Vec<String>>,
    /// A pod's host-side veth, in its node's namespace: a finding about it
    /// is the pod's.
    veth_of: HashMap<(String, String), String>,
    other: Vec<String>,
}

impl Marks {
    fn new(plan: &Plan, findings: &[Finding]) -> Marks {
        let mut m = Marks {
            by_netns: HashMap::new(),
            by_pod: HashMap::new(),
            veth_of: HashMap::new(),
            other: Vec::new(),
        };
        for p in &plan.pods {
            if let Some(n) = plan.node(&p.node) {
                m.veth_of
                    .insert((n.netns.clone(), p.host_veth.clone()), p.key());
            }
        }
        for f in findings {
            let text = f.to_string();
            match f {
                Finding::PodDown { pod, .. } | Finding::DnsUnhealthy { pod, .. } => {
                    m.by_pod.entry(pod.clone()).or_default().push(text);
                }
                _ => match f.location() {
                    Some((netns, link)) => {
                        let owner = link.and_then(|l| {
                            m.veth_of.get(&(netns.to_string(), l.to_string())).cloned()
                        });
                        match owner {
                            Some(pod) => m.by_pod.entry(pod).or_default().push(text),
                            None => m
                                .by_netns
                                .entry(netns.to_string())
                                .or_default()
                                .push((link.map(str::to_string), text)),
                        }
                    }
                    None => m.other.push(text),
                },
            }
        }
        m
    }

    fn take(&mut self, netns: &str) -> Vec<String> {
        self.by_netns
            .remove(netns)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    fn take_pod(&mut self, pod: &crate::plan::PodPlan) -> Vec<String> {
        let mut v = self.take(&pod.netns);
        v.extend(self.by_pod.remove(&pod.key()).unwrap_or_default());
        v
    }

    /// What no part took, in a stable order.
    fn rest(mut self) -> Vec<String> {
        let mut v = std::mem::take(&mut self.other);
        let mut left: Vec<_> = self
            .by_netns
            .into_values()
            .flatten()
            .map(|(_, t)| t)
            .collect();
        left.extend(self.by_pod.into_values().flatten());
        left.sort();
        v.extend(left);
        v
    }
}

/// Every mark of the picture, one line each (the renderers list
/// them under the picture, so none is lost to a collapsed group).
pub fn all_marks(g: &Graph) -> Vec<String> {
    // A finding's text names its namespace or pod already.
    let mut out: Vec<String> = g.bridge.marks.clone();
    for c in &g.clients {
        out.extend(c.part.marks.iter().cloned());
    }
    for n in &g.nodes {
        out.extend(n.part.marks.iter().cloned());
        for p in &n.pods {
            out.extend(p.part.marks.iter().cloned());
        }
    }
    out.extend(g.other.iter().cloned());
    out
}

/// What every picture says of where its parts come from.
pub const LEGEND: &str = "addresses and links read from the kernel now; \
Services and NetworkPolicies as the lab defines them, their rules compared \
with each node's nftables (a difference is marked on the node); \
! marks what differs from the plan";
