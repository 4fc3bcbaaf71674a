//! `podlab trace`: one real packet's path, hop by hop, as the kernel took
//! it.
//!
//! One probe (a TCP connect, or a UDP datagram) is sent from the source's
//! namespace. Then the path is walked from there with what each namespace's
//! kernel says: the route lookup (`ip route get`) for the packet's
//! destination, the neighbour entry of the next hop and, on a bridge, the
//! forwarding database entry of that MAC (which port, so which veth, so
//! which namespace next); in nodes and the load balancer, the conntrack
//! entry of exactly that flow, whose reply tuple is the NAT the kernel did
//! (the endpoint kube-proxy's rules chose, a masquerade), named by the
//! nftables rule that does that DNAT; and the NetworkPolicy counters that
//! moved during the probe (which policy let it through, whose isolation
//! dropped it). The plan only names things and says where a veth's peer
//! should be; the kernel has to agree.
//!
//! The walk (`walk`) asks its questions through the `Kernel` trait, so the
//! path assembly is tested on a simulated lab without root.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use serde::Serialize;

use super::target::{parse_target, split_port, From, To};
use crate::kernel::conntrack::{self, Tuple};
use crate::kernel::counters::{self, Counters};
use crate::kernel::inspect::Link;
use crate::kernel::nft;
use crate::kernel::route::{self, Facts, RouteKind};
use crate::lab::{PolicyType, Protocol};
use crate::plan::{kubeproxy, netpol, Plan, ETH0};
use crate::probe::Seen;

// ---- what a trace says ----

/// The whole answer of `podlab trace`.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    pub from: String,
    pub to: String,
    pub protocol: String,
    /// The probe as it left the source.
    pub flow: Tuple,
    /// What the probe saw: `connected`, `refused`, `no answer in 1000 ms`.
    pub probe: String,
    /// The pod whose echo answered, and the client address it saw.
    #[serde(rename = "answeredBy", skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    #[serde(rename = "clientSeen", skip_serializing_if = "Option::is_none")]
    pub client_seen: Option<Ipv4Addr>,
    pub hops: Vec<Hop>,
    /// The reply's way back, walked when no answer came to a packet that
    /// was delivered (and the path had no NAT).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reply: Vec<Hop>,
    /// Where the last DNAT on the path sent the packet: the endpoint the
    /// kernel chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    pub verdict: Verdict,
    /// What could not be read (the trace goes on without it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Trace {
    pub fn delivered(&self) -> bool {
        self.verdict.kind == VerdictKind::Delivered
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// `namespace/name` of the pod with that address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HopKind {
    Pod,
    Node,
    /// The node network's bridge namespace (`<lab>-net`).
    Network,
    /// `external` or `lb`.
    Client,
    Other,
}

/// One namespace the packet went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub netns: String,
    /// `pod default/a`, `node node-1`, `node network`, `external`.
    pub what: String,
    pub kind: HopKind,
    /// The interface it arrived on (none at the source).
    #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
    pub arrived_on: Option<Iface>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<Nat>,
    /// Conntrack's state of the flow here (`ESTABLISHED`, `TIME_WAIT`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<String>,
    /// A kube-proxy filter verdict here (a service without endpoints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// What NetworkPolicy did here: `egress of default/a allowed by
    /// default/p`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteStep>,
    /// Switched by a bridge: to which MAC, out of which port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridged: Option<Bridged>,
    /// The interface it left by.
    #[serde(rename = "out", skip_serializing_if = "Option::is_none")]
    pub leaves_by: Option<Iface>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    /// The bridge it is a port of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

/// The address translation conntrack recorded for the flow here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nat {
    /// `kube-proxy` (a node) or `cloud load balancer` (`lb`).
    pub by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnat: Option<Rewrite>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snat: Option<Rewrite>,
    /// `svc/ns/name` whose address was translated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The nftables chain and the comment of the rule doing the DNAT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    pub from: SocketAddrV4,
    pub to: SocketAddrV4,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStep {
    pub kind: RouteKind,
    /// `default`, `10.244.2.0/24`, or the address itself (`local`).
    pub dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<Ipv4Addr>,
}

impl std::fmt::Display for RouteStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            RouteKind::Unicast => f.write_str(&self.dst)?,
            k => write!(f, "{} {}", k.word(), self.dst)?,
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        if let Some(s) = self.src {
            write!(f, " src {s}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bridged {
    pub bridge: String,
    pub mac: String,
    pub port: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    Delivered,
    Refused,
    Dropped,
    NoRoute,
    NoAnswer,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    pub detail: String,
    /// The hop (1-based) where it was decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop: Option<usize>,
    /// The policies of a NetworkPolicy drop.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
}

// ---- what the walk asks the kernel ----

/// The kernel's answers the walk needs; `Live` asks the real one.
pub trait Kernel {
    /// Links, addresses, neighbours, bridge FDB of `netns`, and its route
    /// lookup for `dst`.
    fn facts(&mut self, netns: &str, dst: Ipv4Addr) -> Result<Facts, String>;
    /// The conntrack entry of the flow whose original tuple is `t`.
    fn conntrack(
        &mut self,
        netns: &str,
        protocol: &str,
        t: &Tuple,
    ) -> Result<Option<conntrack::Entry>, String>;
    /// The nftables table `ip TABLE` of `netns` (`None`: there is none).
    fn nat_table(&mut self, netns: &str, table: &str) -> Result<Option<NatTable>, String>;
    /// Whether `netns` forwards IPv4 (`net.ipv4.ip_forward`); `None`: not
    /// known (a simulated kernel that does not say).
    fn forwarding(&mut self, _netns: &str) -> Result<Option<bool>, String> {
        Ok(None)
    }
}

/// The running kernel, with the conntrack events seen during the probe.
#[derive(Default)]
pub struct Live {
    events: Vec<(String, Vec<conntrack::Entry>)>,
}

impl Live {
    /// With the conntrack events a watch collected during the probe.
    pub fn new(events: Vec<(String, Vec<conntrack::Entry>)>) -> Live {
        Live { events }
    }
}

impl Kernel for Live {
    fn facts(&mut self, netns: &str, dst: Ipv4Addr) -> Result<Facts, String> {
        route::facts(netns, dst).map_err(|e| crate::error_chain(&e))
    }

    fn conntrack(
        &mut self,
        netns: &str,
        protocol: &str,
        t: &Tuple,
    ) -> Result<Option<conntrack::Entry>, String> {
        let read = conntrack::get(netns, protocol, t);
        if let Ok(Some(e)) = read {
            return Ok(Some(e));
        }
        // Gone already (a reset removes an unanswered TCP flow at once):
        // as it was announced when it was made.
        let announced = self
            .events
            .iter()
            .filter(|(n, _)| n == netns)
            .flat_map(|(_, v)| v)
            .find(|e| e.protocol == protocol && e.original == *t)
            .map(|e| conntrack::Entry {
                state: Some(format!(
                    "{} when made, removed since",
                    e.state.as_deref().unwrap_or("new")
                )),
                ..e.clone()
            });
        match (announced, read) {
            (Some(e), _) => Ok(Some(e)),
            (None, Err(e)) => Err(crate::error_chain(&e)),
            (None, Ok(_)) => Ok(None),
        }
    }

    fn nat_table(&mut self, netns: &str, table: &str) -> Result<Option<NatTable>, String> {
        nft::list_json(netns, &["table", "ip", table])
            .map(|json| json.map(|j| NatTable::parse(&j)))
            .map_err(|e| crate::error_chain(&e))
    }

    fn forwarding(&mut self, netns: &str) -> Result<Option<bool>, String> {
        crate::kernel::netns::run_in(netns, || {
            crate::kernel::sysctl::get(netns, "net.ipv4.ip_forward")
        })
        .and_then(|r| r)
        .map(|v| Some(v.trim() == "1"))
        .map_err(|e| crate::error_chain(&e))
    }
}

// ---- nftables tables, as `nft -j list table` prints them ----

/// The verdict maps and rules of a table: enough to say which chain a
/// packet was sent to and which rule rewrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatTable {
    /// Map name → (key parts as text, the chain it jumps or goes to).
    pub maps: BTreeMap<String, Vec<(Vec<String>, String)>>,
    pub rules: Vec<NatRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatRule {
    pub chain: String,
    pub comment: Option<String>,
    /// Every address a `dnat` of the rule may pick (one, or a map's values)
    /// and its port.
    pub dnat: Option<(Vec<Ipv4Addr>, Option<u16>)>,
    /// Chains it jumps or goes to.
    pub targets: Vec<String>,
}

fn key_parts(v: &serde_json::Value) -> Vec<String> {
    let one = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v.get("concat").and_then(|c| c.as_array()) {
        Some(parts) => parts.iter().map(one).collect(),
        None => vec![one(v)],
    }
}

fn verdict_target(v: &serde_json::Value) -> Option<String> {
    ["goto", "jump"]
        .iter()
        .find_map(|k| v.get(k)?.get("target")?.as_str().map(str::to_string))
}

/// Every IPv4 address written anywhere in a JSON value.
fn addresses_in(v: &serde_json::Value, out: &mut Vec<Ipv4Addr>) {
    match v {
        serde_json::Value::String(s) => {
            if let Ok(ip) = s.parse() {
                out.push(ip);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| addresses_in(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| addresses_in(x, out)),
        _ => {}
    }
}

impl NatTable {
    pub fn parse(json: &str) -> NatTable {
        let mut t = NatTable::default();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
            return t;
        };
        for o in v["nftables"].as_array().into_iter().flatten() {
            if let Some(m) = o.get("map") {
                let Some(name) = m["name"].as_str() else {
                    continue;
                };
                let elems = m["elem"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| {
                        let pair = e.as_array()?;
                        Some((key_parts(pair.first()?), verdict_target(pair.get(1)?)?))
                    })
                    .collect();
                t.maps.insert(name.to_string(), elems);
            }
            if let Some(r) = o.get("rule") {
                let mut rule = NatRule {
                    chain: r["chain"].as_str().unwrap_or_default().to_string(),
                    comment: r["comment"].as_str().map(str::to_string),
                    ..NatRule::default()
                };
                for st in r["expr"].as_array().into_iter().flatten() {
                    if let Some(d) = st.get("dnat") {
                        let mut ips = Vec::new();
                        addresses_in(&d["addr"], &mut ips);
                        let port = d["port"].as_u64().and_then(|p| u16::try_from(p).ok());
                        rule.dnat = Some((ips, port));
                    }
                    if let Some(target) = verdict_target(st) {
                        rule.targets.push(target);
                    }
                }
                t.rules.push(rule);
            }
        }
        t
    }

    /// The chain map `map` sends `key` to.
    pub fn map_target(&self, map: &str, key: &[String]) -> Option<&str> {
        self.maps
            .get(map)?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, c)| c.as_str())
    }

    /// The rule that DNATs to `to`, preferring one in `chain` or in a
    /// chain `chain` jumps to (an endpoint chain, with session affinity).
    pub fn dnat_rule(&self, chain: Option<&str>, to: SocketAddrV4) -> Option<&NatRule> {
        let does = |r: &&NatRule| {
            r.dnat.as_ref().is_some_and(|(ips, port)| {
                ips.contains(to.ip()) && port.is_none_or(|p| p == to.port())
            })
        };
        let reached: Vec<&str> = match chain {
            Some(c) => std::iter::once(c)
                .chain(
                    self.rules
                        .iter()
                        .filter(|r| r.chain == c)
                        .flat_map(|r| r.targets.iter().map(String::as_str)),
                )
                .collect(),
            None => Vec::new(),
        };
        self.rules
            .iter()
            .filter(does)
            .find(|r| reached.contains(&r.chain.as_str()))
            .or_else(|| self.rules.iter().find(does))
    }
}

// ---- NetworkPolicy counters ----

/// Per node namespace, how much each named counter grew during the probe.
pub type Deltas = BTreeMap<String, BTreeMap<String, u64>>;

pub fn deltas(before: &[(String, Counters)], after: &[(String, Counters)]) -> Deltas {
    let mut out = Deltas::new();
    for (netns, now) in after {
        let then = before.iter().find(|(n, _)| n == netns).map(|(_, c)| c);
        for (name, c) in now {
            let was = then.and_then(|t| t.get(name)).map_or(0, |c| c.packets);
            // A reload restarts counters: a smaller number is a new count.
            let grew = if c.packets >= was {
                c.packets - was
            } else {
                c.packets
            };
            if grew > 0 {
                out.entry(netns.clone())
                    .or_default()
                    .insert(name.clone(), grew);
            }
        }
    }
    out
}

// ---- the walk ----

/// How a walk ended, at its last hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The last hop's kernel delivers the packet to itself.
    Local,
    /// A packet that came in here to be routed on, where forwarding is off.
    NotForwarded,
    NoRoute(Ipv4Addr),
    /// A NetworkPolicy drop counter moved here.
    Dropped {
        detail: String,
        policies: Vec<String>,
    },
    /// kube-proxy's no-endpoint maps sent it to `reject-chain` or
    /// `drop-chain`.
    Rejected {
        chain: String,
        service: Option<String>,
    },
    /// The kernel drops the packet here for a reason the walk saw (no
    /// neighbour answers, no bridge port has the MAC); `back` is 1 when
    /// the hop before this one could not send it on.
    Lost {
        why: String,
        back: usize,
    },
    /// The path cannot be followed further; why.
    Stuck(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked {
    pub hops: Vec<Hop>,
    pub end: End,
    /// The flow as the last hop saw it (after every NAT).
    pub flow: Tuple,
    /// The first hop (0-based, never the source) whose conntrack has no
    /// record of the flow: the packet never got through it, whatever the
    /// routes say further on.
    pub unconfirmed: Option<usize>,
}

impl Walked {
    /// The endpoint the last DNAT chose.
    pub fn endpoint(&self, plan: &Plan) -> Option<Endpoint> {
        let to = self
            .hops
            .iter()
            .rev()
            .find_map(|h| h.nat.as_ref()?.dnat.map(|d| d.to))?;
        let pod = plan.pods.iter().find(|p| p.ip == *to.ip());
        Some(Endpoint {
            ip: *to.ip(),
            port: to.port(),
            pod: pod.map(|p| p.key()),
            node: pod.map(|p| p.node.clone()),
        })
    }
}

const MAX_HOPS: usize = 16;

fn proto_word(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// What a namespace is, by the plan.
pub fn describe(plan: &Plan, netns: &str) -> (HopKind, String) {
    if netns == plan.net.netns {
        return (HopKind::Network, "node network".into());
    }
    if let Some(n) = plan.nodes.iter().find(|n| n.netns == netns) {
        return (HopKind::Node, format!("node {}", n.name));
    }
    if let Some(c) = plan.clients.iter().find(|c| c.netns == netns) {
        return (HopKind::Client, c.name.clone());
    }
    if let Some(p) = plan.pods.iter().find(|p| p.netns == netns) {
        return (HopKind::Pod, format!("pod {}", p.key()));
    }
    (HopKind::Other, format!("namespace {netns}"))
}

/// The NAT table of a namespace: kube-proxy's in nodes, the cloud load
/// balancer's in `lb`.
fn nat_table_of(plan: &Plan, netns: &str) -> Option<(&'static str, &'static str)> {
    if plan.nodes.iter().any(|n| n.netns == netns) {
        return Some((kubeproxy::TABLE, "kube-proxy"));
    }
    plan.clients
        .iter()
        .any(|c| c.netns == netns && c.name == "lb")
        .then_some((kubeproxy::LB_TABLE, "cloud load balancer"))
}

/// Where the plan puts the other end of the veth `ifname` of `netns`.
pub fn veth_peer(plan: &Plan, netns: &str, ifname: &str) -> Option<(String, String)> {
    // (namespace, interface) at both ends of every veth the plan makes.
    type End<'p> = (&'p str, &'p str);
    let mut pairs: Vec<(End, End)> = Vec::new();
    for pod in &plan.pods {
        if let Some(node) = plan.node(&pod.node) {
            pairs.push(((&pod.netns, ETH0), (&node.netns, &pod.host_veth)));
        }
    }
    for node in &plan.nodes {
        pairs.push(((&node.netns, ETH0), (&plan.net.netns, &node.uplink)));
    }
    for c in &plan.clients {
        pairs.push(((&c.netns, ETH0), (&plan.net.netns, &c.uplink)));
    }
    pairs.into_iter().find_map(|(a, b)| {
        let other = if a == (netns, ifname) {
            b
        } else if b == (netns, ifname) {
            a
        } else {
            return None;
        };
        Some((other.0.to_string(), other.1.to_string()))
    })
}

fn iface(facts: &Facts, l: &Link) -> Iface {
    Iface {
        name: l.name.clone(),
        index: l.index,
        bridge: l.master.and_then(|m| facts.link(m)).map(|b| b.name.clone()),
    }
}

fn is_bridge(l: &Link) -> bool {
    l.kind.as_deref() == Some("bridge")
}

/// How the packet arrives in the next namespace: by the peer of `link`.
struct Arrival {
    /// The previous hop's link it left by, and its peer's index.
    left_by: Iface,
    peer: u32,
    expect: String,
    /// The destination MAC of the frame (the next hop's), and the next
    /// hop's address, when known.
    mac: Option<String>,
    next_hop: Ipv4Addr,
}

enum Step {
    Next(String, Arrival),
    End(End),
}

struct Walker<'a> {
    plan: &'a Plan,
    kernel: &'a mut dyn Kernel,
    deltas: &'a Deltas,
    proto: &'static str,
    flow: Tuple,
    unconfirmed: Option<usize>,
    at: usize,
}

/// Follow the packet `flow` from `start`, asking `kernel` at every hop.
pub fn walk(
    plan: &Plan,
    kernel: &mut dyn Kernel,
    start: &str,
    protocol: Protocol,
    flow: Tuple,
    deltas: &Deltas,
) -> Walked {
    let mut w = Walker {
        plan,
        kernel,
        deltas,
        proto: proto_word(protocol),
        flow,
        unconfirmed: None,
        at: 0,
    };
    let mut hops: Vec<Hop> = Vec::new();
    let mut netns = start.to_string();
    let mut arrival: Option<Arrival> = None;
    let mut end = End::Stuck(format!(
        "more than {MAX_HOPS} hops: the packet goes round in a loop"
    ));
    for _ in 0..MAX_HOPS {
        let (kind, what) = describe(plan, &netns);
        let mut hop = Hop {
            netns: netns.clone(),
            what,
            kind,
            arrived_on: None,
            nat: None,
            conntrack: None,
            filter: None,
            policy: Vec::new(),
            route: None,
            bridged: None,
            leaves_by: None,
        };
        w.at = hops.len();
        let step = w.hop(&mut hop, arrival.take());
        hops.push(hop);
        match step {
            Step::Next(next, a) => {
                netns = next;
                arrival = Some(a);
            }
            Step::End(e) => {
                end = e;
                break;
            }
        }
    }
    Walked {
        hops,
        end,
        flow: w.flow,
        unconfirmed: w.unconfirmed,
    }
}

impl Walker<'_> {
    fn hop(&mut self, hop: &mut Hop, arrival: Option<Arrival>) -> Step {
        let netns = hop.netns.clone();
        let nat_table = nat_table_of(self.plan, &netns);
        let mut table = None;
        // Prerouting (or output, at the source): the NAT conntrack recorded.
        if let Some((name, by)) = nat_table {
            table = self.kernel.nat_table(&netns, name).ok().flatten();
            match self.kernel.conntrack(&netns, self.proto, &self.flow) {
                Ok(Some(e)) => {
                    hop.conntrack = e.state.clone();
                    hop.nat = self.nat(&e, by, table.as_ref());
                }
                // An entry is confirmed when the packet leaves the
                // namespace: none means it did not get through.
                Ok(None) if arrival.is_some() && self.unconfirmed.is_none() => {
                    self.unconfirmed = Some(self.at);
                }
                Ok(None) => {}
                Err(e) => return Step::End(End::Stuck(format!("conntrack in {netns}: {e}"))),
            }
        }
        let facts = match self.kernel.facts(&netns, self.flow.dst) {
            Ok(f) => f,
            Err(e) => return Step::End(End::Stuck(e)),
        };
        let mut bridge = None;
        if let Some(a) = &arrival {
            match facts.link(a.peer) {
                Some(l) if l.peer == Some(a.left_by.index) => {
                    hop.arrived_on = Some(iface(&facts, l));
                    bridge = l
                        .master
                        .and_then(|m| facts.link(m))
                        .filter(|b| is_bridge(b));
                }
                _ => {
                    return Step::End(End::Stuck(format!(
                        "the peer of {} (ifindex {}) is not in {netns}, where the plan puts {}",
                        a.left_by.name, a.peer, a.expect
                    )))
                }
            }
        }
        // A frame to another station on a bridge is switched; one to the
        // bridge's own address goes up to this namespace's IP stack.
        let switched = match (bridge, &arrival) {
            (Some(b), Some(a)) => match &a.mac {
                Some(mac) => b.mac.as_deref() != Some(mac.as_str()),
                None => !facts.is_local(a.next_hop),
            },
            _ => false,
        };
        if hop.nat.as_ref().is_none_or(|n| n.dnat.is_none()) && !switched {
            if let Some(end) = self.no_endpoint(hop, &facts, table.as_ref()) {
                return Step::End(end);
            }
        }
        if let Some(end) = self.policy(hop) {
            return Step::End(end);
        }
        if let (true, Some(b), Some(a)) = (switched, bridge, &arrival) {
            let Some(mac) = a.mac.clone() else {
                return Step::End(End::Lost {
                    why: format!(
                        "it has no neighbour entry for {} on {}: nobody answers its ARP, so it cannot send the packet on",
                        a.next_hop, a.left_by.name
                    ),
                    back: 1,
                });
            };
            return self.switch(hop, &facts, b, mac, a.next_hop, false);
        }
        // A packet that arrived to be routed out again needs forwarding on.
        let routed_on = facts
            .route
            .as_ref()
            .is_some_and(|r| r.kind == RouteKind::Unicast);
        if arrival.is_some() && routed_on && self.kernel.forwarding(&netns) == Ok(Some(false)) {
            hop.filter = Some("net.ipv4.ip_forward = 0: this namespace does not route".into());
            return Step::End(End::NotForwarded);
        }
        self.route(hop, &facts)
    }

    /// The NAT of a conntrack entry, and the rule that did the DNAT.
    fn nat(&mut self, e: &conntrack::Entry, by: &str, table: Option<&NatTable>) -> Option<Nat> {
        let before = self.flow;
        let dnat = e.dnat().map(|(ip, port)| Rewrite {
            from: SocketAddrV4::new(before.dst, before.dport),
            to: SocketAddrV4::new(ip, port),
        });
        let snat = e.snat().map(|(ip, port)| Rewrite {
            from: SocketAddrV4::new(before.src, before.sport),
            to: SocketAddrV4::new(ip, port),
        });
        if dnat.is_none() && snat.is_none() {
            return None;
        }
        if let Some(d) = dnat {
            self.flow.dst = *d.to.ip();
            self.flow.dport = d.to.port();
        }
        if let Some(s) = snat {
            self.flow.src = *s.to.ip();
            self.flow.sport = s.to.port();
        }
        let mut nat = Nat {
            by: by.to_string(),
            dnat,
            snat,
            service: None,
            chain: None,
            rule: None,
        };
        if let Some(d) = dnat {
            nat.service = service_at(self.plan, before.dst, before.dport, self.proto);
            if let Some(t) = table {
                let key = [
                    before.dst.to_string(),
                    self.proto.to_string(),
                    before.dport.to_string(),
                ];
                let entry = t
                    .map_target("service-ips", &key)
                    .or_else(|| t.map_target("service-nodeports", &key[1..]));
                if let Some(r) = t.dnat_rule(entry, d.to) {
                    nat.chain = Some(r.chain.clone());
                    nat.rule = r.comment.clone();
                }
            }
        }
        Some(nat)
    }

    /// kube-proxy's maps of services and node ports without endpoints.
    fn no_endpoint(&self, hop: &mut Hop, facts: &Facts, table: Option<&NatTable>) -> Option<End> {
        let t = table?;
        let f = self.flow;
        let key = [
            f.dst.to_string(),
            self.proto.to_string(),
            f.dport.to_string(),
        ];
        let (map, chain) = match t.map_target("no-endpoint-services", &key) {
            Some(c) => ("no-endpoint-services", c),
            None if facts.is_local(f.dst) => (
                "no-endpoint-nodeports",
                t.map_target("no-endpoint-nodeports", &key[1..])?,
            ),
            None => return None,
        };
        hop.filter = Some(format!(
            "kube-proxy: {map} has {} → {chain}",
            key.join(" . ")
        ));
        Some(End::Rejected {
            chain: chain.to_string(),
            service: service_at(self.plan, f.dst, f.dport, self.proto),
        })
    }

    /// The NetworkPolicy counters that moved on this node: allows are
    /// noted, a drop ends the walk.
    fn policy(&self, hop: &mut Hop) -> Option<End> {
        let d = self.deltas.get(&hop.netns)?;
        let grew = |name: &str| d.get(name).copied().unwrap_or(0) > 0;
        let plan = self.plan;
        let by_ip = |ip: Ipv4Addr| plan.pods.iter().find(|p| p.ip == ip);
        // A packet dropped after this node's DNAT never has its conntrack
        // entry confirmed, so the walk still sees the Service's address:
        // the endpoints of that Service on this node are the candidates,
        // and the drop counter that moved names the one it went to.
        let ingress: Vec<(&crate::plan::PodPlan, bool)> = match by_ip(self.flow.dst) {
            Some(p) => vec![(p, false)],
            None => self
                .service_endpoints(self.flow.dst, self.flow.dport)
                .into_iter()
                .map(|p| (p, true))
                .collect(),
        };
        let candidates = by_ip(self.flow.src)
            .map(|p| (PolicyType::Egress, "egress", p, false))
            .into_iter()
            .chain(
                ingress
                    .into_iter()
                    .map(|(p, dnat)| (PolicyType::Ingress, "ingress", p, dnat)),
            );
        for (t, word, pod, after_dnat) in candidates {
            let policies = netpol::selecting(plan, pod, t);
            for p in &policies {
                if grew(&netpol::allow_counter(&p.namespace, &p.name)) {
                    hop.policy
                        .push(format!("{word} of {} allowed by {}", pod.key(), p.key()));
                }
            }
            if grew(&netpol::drop_counter(t, &pod.namespace, &pod.name)) {
                let keys: Vec<String> = policies.iter().map(|p| p.key()).collect();
                let mut detail = format!(
                    "by the {word} isolation of {} (policies: {}): no rule allows it",
                    pod.key(),
                    keys.join(", ")
                );
                if after_dnat {
                    detail.push_str(&format!(
                        ", after kube-proxy's DNAT to {} on this node",
                        pod.ip
                    ));
                }
                hop.policy.push(format!("dropped {detail}"));
                return Some(End::Dropped {
                    detail,
                    policies: keys,
                });
            }
        }
        None
    }

    /// The pods behind the Service at `ip:port` (a ClusterIP, a
    /// LoadBalancer IP or a NodePort).
    fn service_endpoints(&self, ip: Ipv4Addr, port: u16) -> Vec<&crate::plan::PodPlan> {
        service_plan_at(self.plan, ip, port, self.proto).map_or_else(Vec::new, |svc| {
            svc.endpoints
                .iter()
                .filter_map(|e| self.plan.pod(&e.namespace, &e.pod))
                .collect()
        })
    }

    /// A bridge forwards the frame to `mac` out of one of its ports.
    fn switch(
        &mut self,
        hop: &mut Hop,
        facts: &Facts,
        bridge: &Link,
        mac: String,
        next_hop: Ipv4Addr,
        own_neighbour: bool,
    ) -> Step {
        let Some(port) = facts
            .fdb_port(bridge.index, &mac)
            .and_then(|i| facts.link(i))
        else {
            let whose = if own_neighbour {
                format!("its neighbour entry gives {next_hop} the MAC {mac}")
            } else {
                format!("the frame is for {mac} ({next_hop})")
            };
            return Step::End(End::Lost {
                why: format!(
                    "{whose}, and no port of bridge {} has that MAC: the frame is flooded and nobody takes it (bridge {} has no forwarding entry for {mac})",
                    bridge.name, bridge.name
                ),
                back: 0,
            });
        };
        hop.bridged = Some(Bridged {
            bridge: bridge.name.clone(),
            mac: mac.clone(),
            port: port.name.clone(),
        });
        self.leave(hop, facts, port, Some(mac), next_hop)
    }

    /// A routing decision, then out of the interface it names (through
    /// its bridge's port, when it is a bridge).
    fn route(&mut self, hop: &mut Hop, facts: &Facts) -> Step {
        let Some(r) = &facts.route else {
            return Step::End(End::NoRoute(self.flow.dst));
        };
        let dev = r.oif.and_then(|i| facts.link(i));
        hop.route = Some(RouteStep {
            kind: r.kind,
            dst: match (r.kind, r.prefix) {
                (RouteKind::Unicast, 0) => "default".into(),
                (_, 32) => r.dst.to_string(),
                (_, p) => format!("{}/{p}", r.dst),
            },
            gateway: r.gateway,
            dev: dev.map(|l| l.name.clone()),
            src: r.prefsrc,
        });
        match r.kind {
            RouteKind::Local => return Step::End(End::Local),
            RouteKind::Unicast => {}
            _ => return Step::End(End::NoRoute(self.flow.dst)),
        }
        let Some(dev) = dev else {
            return Step::End(End::Stuck(format!(
                "the route to {} names interface {:?}, which {} does not have",
                self.flow.dst, r.oif, hop.netns
            )));
        };
        let next_hop = r.gateway.unwrap_or(self.flow.dst);
        let mac = facts.neighbour(dev.index, next_hop).map(str::to_string);
        if is_bridge(dev) {
            let Some(mac) = mac else {
                return Step::End(End::Lost {
                    why: format!(
                        "it has no neighbour entry for {next_hop} on {}: nobody answers its ARP (is the interface there down?), so the packet did not leave here",
                        dev.name
                    ),
                    back: 0,
                });
            };
            return self.switch(hop, facts, dev, mac, next_hop, true);
        }
        self.leave(hop, facts, dev, mac, next_hop)
    }

    /// Out of a veth: the next namespace is where its peer is.
    fn leave(
        &mut self,
        hop: &mut Hop,
        facts: &Facts,
        link: &Link,
        mac: Option<String>,
        next_hop: Ipv4Addr,
    ) -> Step {
        let out = iface(facts, link);
        hop.leaves_by = Some(out.clone());
        let (Some(peer), Some((next, expect))) = (
            link.peer.filter(|_| link.kind.as_deref() == Some("veth")),
            veth_peer(self.plan, &hop.netns, &link.name),
        ) else {
            return Step::End(End::Stuck(format!(
                "{} leaves {} by {}, which leads out of the lab",
                self.flow.dst, hop.what, link.name
            )));
        };
        Step::Next(
            next,
            Arrival {
                left_by: out,
                peer,
                expect,
                mac,
                next_hop,
            },
        )
    }
}

/// `svc/ns/name` whose ClusterIP, LoadBalancer IP or node port is
/// `ip:port`.
fn service_at(plan: &Plan, ip: Ipv4Addr, port: u16, proto: &str) -> Option<String> {
    service_plan_at(plan, ip, port, proto).map(|s| format!("svc/{}", s.key()))
}

fn service_plan_at<'a>(
    plan: &'a Plan,
    ip: Ipv4Addr,
    port: u16,
    proto: &str,
) -> Option<&'a crate::plan::ServicePlan> {
    let node_ip = plan.nodes.iter().any(|n| n.ip == ip);
    plan.services.iter().find(|s| {
        s.ports.iter().any(|p| {
            proto_word(p.protocol) == proto
                && ((s.cluster_ip == Some(ip) || s.load_balancer_ip == Some(ip)) && p.port == port
                    || node_ip && p.node_port == Some(port))
        })
    })
}

// ---- the verdict ----

/// What the walk and the probe say together.
pub fn verdict(walked: &Walked, seen: &Seen, timeout: Duration) -> Verdict {
    let hop = walked.hops.len();
    let at = walked.hops.last();
    let what = at.map_or_else(String::new, |h| h.what.clone());
    let v = |kind, detail: String| Verdict {
        kind,
        detail,
        hop: Some(hop),
        policies: Vec::new(),
    };
    let target = SocketAddrV4::new(walked.flow.dst, walked.flow.dport);
    match &walked.end {
        End::Local => match seen {
            Seen::Connected(server) => {
                let mut d = format!("{what} at {target}");
                match server.as_ref().and_then(|s| s.pod.as_ref()) {
                    Some(p) if what.ends_with(p.as_str()) => d.push_str(" answered"),
                    Some(p) => d.push_str(&format!(" reached; {p} answered")),
                    None => d.push_str(" reached; the connection was accepted"),
                }
                if let Some(c) = server.as_ref().and_then(|s| s.client_ip) {
                    d.push_str(&format!(
                        ", seeing the client as {c}{}",
                        if c == walked.original_source() {
                            " (no SNAT)"
                        } else {
                            ""
                        }
                    ));
                }
                v(VerdictKind::Delivered, d)
            }
            Seen::Refused => v(
                VerdictKind::Refused,
                format!("{what} at {target}: nothing listens there"),
            ),
            Seen::Blocked(why) => v(
                VerdictKind::NoAnswer,
                format!(
                    "the packet reached {what} ({target}), but no answer came back{}",
                    why.as_ref()
                        .map_or(format!(" in {} ms", timeout.as_millis()), |w| format!(
                            ": {w}"
                        ))
                ),
            ),
            Seen::Failed(e) => v(VerdictKind::Unknown, format!("the probe failed: {e}")),
        },
        End::NotForwarded => v(
            VerdictKind::Dropped,
            format!(
                "{what} does not forward packets (net.ipv4.ip_forward = 0): the packet to {} stops here",
                walked.flow.dst
            ),
        ),
        End::NoRoute(dst) => v(VerdictKind::NoRoute, no_route(walked, *dst)),
        End::Lost { why, back } => {
            let at = hop.saturating_sub(*back).max(1);
            let what = walked
                .hops
                .get(at - 1)
                .map_or_else(String::new, |h| h.what.clone());
            Verdict {
                hop: Some(at),
                ..v(VerdictKind::Dropped, format!("{what} drops the packet: {why}"))
            }
        }
        End::Dropped { detail, policies } => Verdict {
            policies: policies.clone(),
            ..v(VerdictKind::Dropped, format!("{detail}, on {what}"))
        },
        End::Rejected { chain, service } => {
            let svc = service.clone().unwrap_or_else(|| target.to_string());
            if chain == "drop-chain" {
                v(
                    VerdictKind::Dropped,
                    format!("by kube-proxy on {what}: {svc} has no endpoint on this node (traffic policy Local)"),
                )
            } else {
                v(
                    VerdictKind::Refused,
                    format!("{svc} has no endpoints: kube-proxy on {what} rejects it ({chain})"),
                )
            }
        }
        End::Stuck(why) => v(
            VerdictKind::Unknown,
            format!("{why} (the probe: {})", describe_seen(seen, timeout)),
        ),
    }
}

/// Why the last hop has no route, in the kernel's words for the route
/// type it found, and how the packet got there when a default route sent
/// it (the hop before had no route of its own).
fn no_route(walked: &Walked, dst: Ipv4Addr) -> String {
    let n = walked.hops.len();
    let at = walked.hops.last();
    let what = at.map_or("", |h| h.what.as_str());
    let netns = at.map_or("", |h| h.netns.as_str());
    let mut d = match at.and_then(|h| h.route.as_ref()).map(|r| r.kind) {
        Some(RouteKind::Blackhole) => format!(
            "{what} ({netns}) has a blackhole route or rule for {dst}: the kernel discards the packet without a word"
        ),
        Some(RouteKind::Prohibit) => format!(
            "{what} ({netns}) has a prohibit route or rule for {dst}: the kernel refuses the packet (ICMP administratively prohibited)"
        ),
        _ => format!("{what} ({netns}) has no route to {dst}"),
    };
    let before = n.checked_sub(2).and_then(|i| walked.hops.get(i));
    if let Some(b) = before.filter(|b| b.route.as_ref().is_some_and(|r| r.dst == "default")) {
        d.push_str(&format!(
            "; {} sent it there by its default route: it has no route of its own to {dst}",
            b.what
        ));
    }
    d
}

impl Walked {
    /// The source address the packet was sent with, before any SNAT.
    fn original_source(&self) -> Ipv4Addr {
        self.hops
            .iter()
            .find_map(|h| h.nat.as_ref()?.snat.map(|s| *s.from.ip()))
            .unwrap_or(self.flow.src)
    }
}

pub fn describe_seen(seen: &Seen, timeout: Duration) -> String {
    match seen {
        Seen::Connected(_) => "connected".into(),
        Seen::Refused => "refused".into(),
        Seen::Blocked(None) => format!("no answer in {} ms", timeout.as_millis()),
        Seen::Blocked(Some(why)) => why.clone(),
        Seen::Failed(e) => format!("failed: {e}"),
    }
}

// ---- the destination ----

/// Where the probe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
    /// `svc/default/web:80 (10.96.0.20:80/TCP)`.
    pub label: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("service {0} has no cluster IP (headless or ExternalName)")]
    NoClusterIp(String),
    #[error("service {service} has no port {port}")]
    NoPort { service: String, port: String },
    #[error("cannot resolve {name} from {from}: {why}")]
    Resolve {
        name: String,
        from: String,
        why: String,
    },
    #[error("trace sends TCP or UDP probes, not {0}")]
    Protocol(Protocol),
    #[error("the probe could not be sent from {netns}: {why}")]
    Probe { netns: String, why: String },
    #[error(transparent)]
    Kernel(#[from] crate::kernel::Error),
}

/// `TO[:PORT]` as an address, port and protocol to probe, resolved as
/// `diagnose` resolves it (`target::parse_target`). A name the plan does
/// not know is resolved as the source would: from a pod, by asking its
/// nameserver with its search path; from elsewhere, as a Service name.
pub fn destination(
    plan: &Plan,
    from: &From,
    spec: &str,
    namespace: &str,
    protocol: Option<Protocol>,
    timeout: Duration,
) -> Result<Destination, TraceError> {
    let (_, port) = split_port(spec);
    match super::target::parse_target_from(plan, spec, from, namespace) {
        To::Address(ip, _) => Ok(address(plan, ip, port, protocol)),
        To::Name(name) => {
            let ip = resolve_name(plan, from, &name, namespace, timeout)?;
            let known = match parse_target(plan, &ip.to_string(), namespace) {
                To::Name(_) | To::Address(..) => return Ok(address(plan, ip, port, protocol)),
                To::Pod(p, _) => Known::Pod(p),
                To::Service(s, _) => Known::Service(s),
            };
            let mut d = known_target(known, port, protocol)?;
            d.label = format!("{name} → {}", d.label);
            Ok(d)
        }
        To::Pod(p, _) => known_target(Known::Pod(p), port, protocol),
        To::Service(s, _) => known_target(Known::Service(s), port, protocol),
    }
}

enum Known<'a> {
    Pod(&'a crate::plan::PodPlan),
    Service(&'a crate::plan::ServicePlan),
}

/// A pod or a Service: its port (the one given, else its first, else 80)
/// and that port's protocol.
fn known_target(
    to: Known,
    port: Option<u16>,
    protocol: Option<Protocol>,
) -> Result<Destination, TraceError> {
    let proto_ok = |p: Protocol| protocol.is_none_or(|want| want == p);
    match to {
        Known::Pod(p) => {
            let declared = p
                .ports
                .iter()
                .find(|pp| port.is_none_or(|x| pp.port == x) && proto_ok(pp.protocol));
            let port = port.or(declared.map(|d| d.port)).unwrap_or(80);
            let protocol = protocol
                .or(declared.map(|d| d.protocol))
                .unwrap_or(Protocol::Tcp);
            Ok(Destination {
                ip: p.ip,
                port,
                protocol,
                label: format!("pod {} ({}:{port}/{protocol})", p.key(), p.ip),
            })
        }
        Known::Service(s) => {
            let ip = s
                .cluster_ip
                .ok_or_else(|| TraceError::NoClusterIp(s.key()))?;
            let sp = s
                .ports
                .iter()
                .find(|sp| port.is_none_or(|x| sp.port == x) && proto_ok(sp.protocol))
                .ok_or_else(|| TraceError::NoPort {
                    service: s.key(),
                    port: port.map_or("at all".into(), |p| p.to_string()),
                })?;
            let port = sp.port;
            let protocol = protocol.unwrap_or(sp.protocol);
            Ok(Destination {
                ip,
                port,
                protocol,
                label: format!("svc/{}:{port} ({ip}:{port}/{protocol})", s.key()),
            })
        }
    }
}

/// The Service port behind a NodePort on a node's address or a
/// LoadBalancer address (`port`: the NodePort or the LoadBalancer port;
/// `None`: the first there is).
pub fn service_port_at(
    plan: &Plan,
    ip: Ipv4Addr,
    port: Option<u16>,
    protocol: Option<Protocol>,
) -> Option<(&crate::plan::ServicePlan, &crate::plan::ServicePortPlan)> {
    let node = plan.nodes.iter().any(|n| n.ip == ip);
    plan.services.iter().find_map(|s| {
        s.ports
            .iter()
            .find(|p| {
                protocol.is_none_or(|want| want == p.protocol)
                    && if node {
                        p.node_port.is_some() && port.is_none_or(|x| p.node_port == Some(x))
                    } else {
                        s.load_balancer_ip == Some(ip) && port.is_none_or(|x| p.port == x)
                    }
            })
            .map(|p| (s, p))
    })
}

/// An address the plan has no pod or ClusterIP for: a node (a NodePort),
/// a LoadBalancer IP, `external`, or anything else.
pub fn address(
    plan: &Plan,
    ip: Ipv4Addr,
    port: Option<u16>,
    protocol: Option<Protocol>,
) -> Destination {
    let node = plan.nodes.iter().any(|n| n.ip == ip);
    let svc_port = service_port_at(plan, ip, port, protocol);
    let (port, proto, what) = match svc_port {
        Some((s, p)) => (
            if node {
                p.node_port.unwrap_or(p.port)
            } else {
                p.port
            },
            protocol.unwrap_or(p.protocol),
            format!(
                " ({} of svc/{})",
                if node { "NodePort" } else { "LoadBalancer" },
                s.key()
            ),
        ),
        None => (
            port.unwrap_or(80),
            protocol.unwrap_or(Protocol::Tcp),
            String::new(),
        ),
    };
    let name = crate::probe::resolve::name_of(plan, ip)
        .map(|n| format!("{n} "))
        .unwrap_or_default();
    Destination {
        ip,
        port,
        protocol: proto,
        label: format!("{name}{ip}:{port}/{proto}{what}"),
    }
}

fn resolve_name(
    plan: &Plan,
    from: &From,
    name: &str,
    namespace: &str,
    timeout: Duration,
) -> Result<Ipv4Addr, TraceError> {
    let fail = |why: String| TraceError::Resolve {
        name: name.to_string(),
        from: from.label(),
        why,
    };
    if let From::Pod(pod) = from {
        let server = crate::probe::dns::nameserver(&pod.netns).unwrap_or(plan.dns_ip);
        let names = crate::probe::dns::candidates(name, &pod.namespace, &plan.cluster_domain);
        let rt = runtime()?;
        let (_, answer) = rt
            .block_on(crate::probe::dns::resolve(
                &pod.netns,
                server,
                &names,
                crate::lab::expect::RecordType::A,
                timeout,
            ))
            .map_err(fail)?;
        return answer
            .records
            .iter()
            .find_map(|r| r.parse().ok())
            .ok_or_else(|| {
                fail(format!(
                    "{} from {server}",
                    crate::probe::dns::rcode_name(answer.rcode)
                ))
            });
    }
    let (svc, ns) =
        crate::lab::expect::service_of_dns(name, &plan.cluster_domain).unwrap_or((name, namespace));
    plan.services
        .iter()
        .find(|s| s.namespace == ns && s.name == svc)
        .and_then(|s| s.cluster_ip)
        .ok_or_else(|| fail(format!("no Service {ns}/{svc} with a cluster IP")))
}

fn runtime() -> Result<tokio::runtime::Runtime, TraceError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            TraceError::Kernel(crate::kernel::Error::Io {
                what: "tokio runtime".into(),
                source: e,
            })
        })
}

// ---- the whole trace ----

/// Send the probe from `from` to `to`, then walk its path.
pub fn trace(
    plan: &Plan,
    from: &From,
    to: &Destination,
    timeout: Duration,
) -> Result<Trace, TraceError> {
    if !matches!(to.protocol, Protocol::Tcp | Protocol::Udp) {
        return Err(TraceError::Protocol(to.protocol));
    }
    let mut notes = Vec::new();
    let before = counters::read_each(plan, netpol::TABLE);
    let target = SocketAddrV4::new(to.ip, to.port);
    let rt = runtime()?;
    let watched: Vec<&str> = plan
        .netns_names()
        .into_iter()
        .filter(|n| nat_table_of(plan, n).is_some())
        .collect();
    let watch = conntrack::watch(&watched);
    let netns = from.netns().to_string();
    let (local, seen) = rt.block_on(async {
        match to.protocol {
            Protocol::Tcp => {
                // Ask podlab's echo who it is and whom it saw, briefly.
                let ask = timeout.min(Duration::from_millis(500));
                crate::probe::net::tcp_traced(&netns, target, timeout, Some(ask)).await
            }
            _ => crate::probe::net::udp_traced(&netns, target, timeout).await,
        }
    });
    let events = watch.drain();
    let after = counters::read_each(plan, netpol::TABLE);
    let deltas = match (before, after) {
        (Ok(b), Ok(a)) => deltas(&b, &a),
        (Err(e), _) | (_, Err(e)) => {
            notes.push(format!(
                "NetworkPolicy counters unreadable: {}",
                crate::error_chain(&e)
            ));
            Deltas::new()
        }
    };
    let Some(local) = local else {
        return Err(TraceError::Probe {
            netns,
            why: describe_seen(&seen, timeout),
        });
    };
    let mut kernel = Live { events };
    let src = if local.ip().is_unspecified() {
        // A TCP connect that failed never had an address bound: the one
        // the kernel would pick.
        source_ip(from).unwrap_or_else(|| {
            kernel
                .facts(&netns, to.ip)
                .ok()
                .and_then(|f| f.route?.prefsrc)
                .unwrap_or(*local.ip())
        })
    } else {
        *local.ip()
    };
    let flow = Tuple {
        src,
        sport: local.port(),
        dst: to.ip,
        dport: to.port,
    };
    let walked = walk(plan, &mut kernel, &netns, to.protocol, flow, &deltas);
    let mut verdict = verdict(&walked, &seen, timeout);
    let mut reply = Vec::new();
    if verdict.kind == VerdictKind::NoAnswer && walked.end == End::Local {
        if let Some(back) = reply_walk(plan, &mut kernel, to.protocol, &walked, &netns) {
            if back.end != End::Local || back.hops.last().map(|h| h.netns.as_str()) != Some(&netns)
            {
                let why = verdict_of_reply(&back, timeout);
                verdict.detail = format!(
                    "the packet reached {} ({}:{}), but the reply does not get back: {why}",
                    walked.hops.last().map_or("", |h| h.what.as_str()),
                    walked.flow.dst,
                    walked.flow.dport
                );
                verdict.kind = why_kind(&back);
                verdict.hop = None;
            }
            reply = back.hops;
        }
    }
    not_through(&walked, &mut verdict);
    if verdict.kind == VerdictKind::NoAnswer {
        suspect_foreign_tables(&walked, &mut verdict);
    }
    if verdict.kind == VerdictKind::NoRoute {
        name_what_refuses(&walked, &mut verdict);
    }
    let server = match &seen {
        Seen::Connected(Some(s)) => Some(s),
        _ => None,
    };
    Ok(Trace {
        from: from.label(),
        to: to.label.clone(),
        protocol: proto_word(to.protocol).into(),
        flow,
        probe: describe_seen(&seen, timeout),
        answered_by: server.and_then(|s| s.pod.clone()),
        client_seen: server.and_then(|s| s.client_ip),
        endpoint: walked.endpoint(plan),
        hops: walked.hops,
        reply,
        verdict,
        notes,
    })
}

/// The reply's way back from where the packet was delivered, when the
/// forward path had no NAT (with NAT, the reply is translated back by
/// conntrack hop by hop, which this walk does not follow: `None`).
fn reply_walk(
    plan: &Plan,
    kernel: &mut dyn Kernel,
    protocol: Protocol,
    walked: &Walked,
    source: &str,
) -> Option<Walked> {
    if walked.hops.iter().any(|h| h.nat.is_some()) {
        return None;
    }
    let end = walked.hops.last()?;
    if end.netns == source {
        return None;
    }
    let f = walked.flow;
    let back = Tuple {
        src: f.dst,
        sport: f.dport,
        dst: f.src,
        dport: f.sport,
    };
    Some(walk(
        plan,
        kernel,
        &end.netns,
        protocol,
        back,
        &Deltas::new(),
    ))
}

/// Why the reply's walk stopped, in words.
fn verdict_of_reply(back: &Walked, timeout: Duration) -> String {
    let v = verdict(back, &Seen::Blocked(None), timeout);
    match back.end {
        End::Local => format!(
            "it is delivered to {} instead",
            back.hops.last().map_or("", |h| h.what.as_str())
        ),
        _ => v.detail,
    }
}

fn why_kind(back: &Walked) -> VerdictKind {
    match back.end {
        End::NoRoute(_) => VerdictKind::NoRoute,
        End::Dropped { .. } | End::NotForwarded => VerdictKind::Dropped,
        _ => VerdictKind::NoAnswer,
    }
}

/// A packet that got no answer, or that the routes say went further than
/// a hop whose conntrack never confirmed it: the kernel dropped it at that
/// hop (or on the link into it). What there could drop it is named: a
/// table the lab did not make, a queue on the way in, hairpin off on the
/// port it came in by.
fn not_through(walked: &Walked, verdict: &mut Verdict) {
    let Some(i) = walked.unconfirmed else { return };
    let later = verdict.hop.is_none_or(|h| h > i + 1);
    let overrule = match verdict.kind {
        VerdictKind::NoAnswer | VerdictKind::Unknown => true,
        VerdictKind::NoRoute | VerdictKind::Dropped => later && verdict.policies.is_empty(),
        _ => false,
    };
    let Some(hop) = walked.hops.get(i).filter(|_| overrule) else {
        return;
    };
    let prev = i.checked_sub(1).and_then(|p| walked.hops.get(p));
    let mut suspects = foreign_tables(&hop.netns);
    // The packet may not have left the hop before (its own output hook).
    let before: Vec<String> = prev
        .map(|p| {
            foreign_tables(&p.netns)
                .into_iter()
                .map(|t| format!("in {}: {t}", p.what))
                .collect()
        })
        .unwrap_or_default();
    let blame_prev = suspects.is_empty() && !before.is_empty();
    suspects.extend(before);
    for (h, link) in [
        (prev, prev.and_then(|p| p.leaves_by.as_ref())),
        (Some(hop), hop.arrived_on.as_ref()),
    ] {
        let (Some(h), Some(link)) = (h, link) else {
            continue;
        };
        let Ok(view) = crate::kernel::inspect::view(&h.netns) else {
            continue;
        };
        for q in view
            .qdiscs
            .iter()
            .filter(|q| q.index == link.index && q.kind != "noqueue")
        {
            suspects.push(format!("a {} qdisc on {}'s {}", q.kind, h.what, link.name));
        }
        let port = view.link(&link.name).filter(|_| h.netns == hop.netns);
        if port.and_then(|l| l.hairpin) == Some(false) {
            suspects.push(format!(
                "hairpin mode off on bridge port {}: a packet sent back to the pod it came from cannot leave by the port it came in by",
                link.name
            ));
        }
    }
    let mut detail = format!(
        "conntrack in {} ({}) has no record of the flow: the packet did not get through {}{}",
        hop.what,
        hop.netns,
        hop.what,
        prev.map_or(String::new(), |p| format!(
            " (dropped there, or on its way from {})",
            p.what
        ))
    );
    if suspects.is_empty() {
        detail.push_str("; nothing there the lab did not make names the cause");
    } else {
        detail.push_str(&format!(
            "; there: {} (inferred: the kernel keeps no record of which rule dropped a packet)",
            suspects.join(", ")
        ));
    }
    verdict.kind = VerdictKind::Dropped;
    verdict.detail = detail;
    verdict.hop = Some(if blame_prev { i } else { i + 1 });
    verdict.policies.clear();
}

/// The nftables tables of a namespace that the lab did not make.
fn foreign_tables(netns: &str) -> Vec<String> {
    let ours = [
        kubeproxy::TABLE,
        kubeproxy::CNI_TABLE,
        kubeproxy::LB_TABLE,
        netpol::TABLE,
    ];
    let Ok(listing) = nft::list_ruleset(netns) else {
        return Vec::new();
    };
    crate::observe::rules::of_listing(&listing)
        .into_keys()
        .filter(|k| k.2 == "table" && !(k.0 == "ip" && ours.contains(&k.1.as_str())))
        .map(|k| format!("nftables table {} {}, which the lab did not make", k.0, k.1))
        .collect()
}

/// A blackhole or prohibit answer names no route: the routes and rules
/// of that kind in the namespace are what refused it.
fn name_what_refuses(walked: &Walked, verdict: &mut Verdict) {
    let Some(hop) = walked.hops.last() else {
        return;
    };
    let Some(kind) = hop.route.as_ref().map(|r| r.kind) else {
        return;
    };
    if !matches!(kind, RouteKind::Blackhole | RouteKind::Prohibit) {
        return;
    }
    let Ok(view) = crate::kernel::inspect::view(&hop.netns) else {
        return;
    };
    let word = kind.word();
    let dst = walked.flow.dst;
    let mut found: Vec<String> = view
        .objects
        .rules
        .iter()
        .filter(|r| r.action == word)
        .map(|r| format!("rule `{}`", r.text))
        .collect();
    found.extend(
        view.objects
            .routes
            .iter()
            .filter(|r| {
                r.kind.to_string() == word
                    && ipnet::Ipv4Net::new(r.dst, r.prefix).is_ok_and(|n| n.contains(&dst))
            })
            .map(|r| format!("route `{}`", r.text)),
    );
    if !found.is_empty() {
        verdict.detail.push_str(&format!(" ({})", found.join(", ")));
    }
}

/// A packet that got no answer where the walk found no reason: a table
/// on its path that the lab did not make is the first suspect, named with
/// the hop (nftables has no per-packet record to say for sure).
fn suspect_foreign_tables(walked: &Walked, verdict: &mut Verdict) {
    let ours = [
        kubeproxy::TABLE,
        kubeproxy::CNI_TABLE,
        kubeproxy::LB_TABLE,
        netpol::TABLE,
    ];
    for (i, hop) in walked.hops.iter().enumerate() {
        let Ok(listing) = nft::list_ruleset(&hop.netns) else {
            continue;
        };
        let foreign: Vec<String> = crate::observe::rules::of_listing(&listing)
            .into_keys()
            .filter(|k| k.2 == "table" && !(k.0 == "ip" && ours.contains(&k.1.as_str())))
            .map(|k| format!("{} {}", k.0, k.1))
            .collect();
        if !foreign.is_empty() {
            verdict.detail.push_str(&format!(
                "; {} has nftables table {}, which the lab did not make: it may have dropped the packet (inferred: nftables keeps no record of which rule dropped a packet)",
                hop.what,
                foreign.join(", table ")
            ));
            verdict.hop = Some(i + 1);
            return;
        }
    }
}

/// The one address a pod or client sends from (a node has several).
fn source_ip(from: &From) -> Option<Ipv4Addr> {
    match from {
        From::Pod(p) => Some(p.ip),
        From::Client(c) => Some(c.ip),
        From::Node(_) => None,
    }
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
