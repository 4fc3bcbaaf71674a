//! The catalogue: every fault as data, and the pure function that plans
//! it on a lab. Undo steps restore what the plan says, not what happened
//! to be there: a learner's half-fix is undone too, and "undone" means
//! "as `up` made it".

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{
    pick, Change, Context, Entry, FaultError, FaultPlan, Level, Param, Section, Step, TargetKind,
};
use crate::kernel::change::{Route, RouteOp};
use crate::lab::{LabFile, NetworkPolicy, PolicySpec, PolicyType, TargetPortSpec};
use crate::plan::{
    dns, kubeproxy, EndpointPlan, NodePlan, Plan, PodPlan, PodRole, ServicePlan, TargetPort, ETH0,
    POD_BRIDGE,
};

/// The nftables table the packet-loss fault adds in a node.
pub const LOSS_TABLE: &str = "podlab-fault-loss";

const NO_PARAMS: &[Param] = &[];

pub const CATALOGUE: &[Entry] = &[
    Entry {
        name: "pod-down",
        breaks: "a pod's servers and processes stop (its namespace and address stay): connections to it are refused, and it leaves its services' endpoints",
        section: Section::Pods,
        level: Level::Daemon,
        target: TargetKind::Pod,
        params: NO_PARAMS,
        shows: "podlab get pods -o wide",
    },
    Entry {
        name: "pod-interface-down",
        breaks: "a pod's eth0 is down, and its default route went with it: the pod reaches nothing and nothing reaches it",
        section: Section::Pods,
        level: Level::Kernel,
        target: TargetKind::Pod,
        params: NO_PARAMS,
        shows: "podlab exec POD -- ip link; podlab exec POD -- ip route",
    },
    Entry {
        name: "node-link-down",
        breaks: "a node's eth0 (its link to the node network) is down, and its routes went with it: its pods reach no other node",
        section: Section::Pods,
        level: Level::Kernel,
        target: TargetKind::Node,
        params: NO_PARAMS,
        shows: "podlab exec node/NODE -- ip link; podlab exec node/NODE -- ip route",
    },
    Entry {
        name: "route-missing",
        breaks: "a node has no route to another node's pod CIDR: its pods cannot reach that node's pods",
        section: Section::Pods,
        level: Level::Kernel,
        target: TargetKind::Node,
        params: &[Param {
            name: "to",
            default: "the next node",
            help: "the node whose pod CIDR loses its route",
        }],
        shows: "podlab exec node/NODE -- ip route",
    },
    Entry {
        name: "forwarding-off",
        breaks: "a node stops forwarding packets (net.ipv4.ip_forward=0): its pods reach only each other",
        section: Section::Pods,
        level: Level::Kernel,
        target: TargetKind::Node,
        params: NO_PARAMS,
        shows: "podlab exec node/NODE -- sysctl net.ipv4.ip_forward",
    },
    Entry {
        name: "bridge-down",
        breaks: "a node's pod bridge cni0 is down: its pods reach nothing, not even each other",
        section: Section::Pods,
        level: Level::Kernel,
        target: TargetKind::Node,
        params: NO_PARAMS,
        shows: "podlab exec node/NODE -- ip -br link",
    },
    Entry {
        name: "mtu-mismatch",
        breaks: "a node's eth0 has a smaller MTU than the rest of the node network: large packets towards it are dropped",
        section: Section::Pods,
        level: Level::Kernel,
        target: TargetKind::Node,
        params: &[Param {
            name: "mtu",
            default: "the lab's MTU - 100",
            help: "the node's new eth0 MTU (576-9000)",
        }],
        shows: "podlab exec node/NODE -- ip link show eth0",
    },
    Entry {
        name: "rate-limit",
        breaks: "a node's eth0 sends through a token bucket (tbf qdisc): everything its pods send to other nodes is slow",
        section: Section::Pods,
        level: Level::Kernel,
        target: TargetKind::Node,
        params: &[
            Param {
                name: "rate",
                default: "1mbit",
                help: "the bucket's rate, as tc writes it",
            },
            Param {
                name: "burst",
                default: "32kbit",
                help: "the bucket's size",
            },
            Param {
                name: "latency",
                default: "400ms",
                help: "how long a packet may wait before it is dropped",
            },
        ],
        shows: "podlab exec node/NODE -- tc qdisc show dev eth0",
    },
    Entry {
        name: "packet-loss",
        breaks: "a node drops a share of the packets crossing its eth0 at random (an nftables table with numgen: works without netem)",
        section: Section::Pods,
        level: Level::Kernel,
        target: TargetKind::Node,
        params: &[Param {
            name: "percent",
            default: "20",
            help: "the share of packets dropped each way, 1-100",
        }],
        shows: "podlab exec node/NODE -- nft list ruleset",
    },
    Entry {
        name: "latency",
        breaks: "a node's eth0 delays every packet it sends (netem qdisc); where the kernel has no sch_netem, injecting it fails and says so",
        section: Section::Pods,
        level: Level::Kernel,
        target: TargetKind::Node,
        params: &[
            Param {
                name: "delay",
                default: "100ms",
                help: "the added delay",
            },
            Param {
                name: "jitter",
                default: "none",
                help: "variation of the delay",
            },
        ],
        shows: "podlab exec node/NODE -- tc qdisc show dev eth0",
    },
    Entry {
        name: "deny-all-policy",
        breaks: "a NetworkPolicy selects every pod of a namespace and allows no ingress: everything to them is dropped",
        section: Section::Pods,
        level: Level::Plan,
        target: TargetKind::Namespace,
        params: &[Param {
            name: "name",
            default: "deny-all",
            help: "the policy's name",
        }],
        shows: "podlab get netpol -A",
    },
    Entry {
        name: "policy-label-typo",
        breaks: "a NetworkPolicy's allow rule selects a label value with a typo: the traffic it should allow is dropped",
        section: Section::Pods,
        level: Level::Plan,
        target: TargetKind::Policy,
        params: NO_PARAMS,
        shows: "podlab get netpol -o yaml; podlab get pods --show-labels",
    },
    Entry {
        name: "kube-proxy-flushed",
        breaks: "a node's kube-proxy rules are flushed: from that node, Service IPs lead nowhere",
        section: Section::Services,
        level: Level::Kernel,
        target: TargetKind::Node,
        params: NO_PARAMS,
        shows: "podlab exec node/NODE -- nft list table ip kube-proxy",
    },
    Entry {
        name: "stale-endpoints",
        breaks: "kube-proxy's rules for a service still send some connections to a pod that was removed: they time out",
        section: Section::Services,
        level: Level::Kernel,
        target: TargetKind::Service,
        params: &[Param {
            name: "node",
            default: "the node of the service's first endpoint",
            help: "the node the removed pod ran on",
        }],
        shows: "podlab get endpoints; podlab exec node/NODE -- nft list table ip kube-proxy",
    },
    Entry {
        name: "service-selector-typo",
        breaks: "a Service's selector has a typo: it selects no pod, so it has no endpoints and connections are refused",
        section: Section::Services,
        level: Level::Plan,
        target: TargetKind::Service,
        params: NO_PARAMS,
        shows: "podlab get endpoints; podlab get svc -o wide",
    },
    Entry {
        name: "wrong-target-port",
        breaks: "a Service's targetPort is a port its pods do not listen on: connections are refused",
        section: Section::Services,
        level: Level::Plan,
        target: TargetKind::Service,
        params: &[Param {
            name: "port",
            default: "the next port no endpoint declares",
            help: "the wrong targetPort, 1-65535",
        }],
        shows: "podlab get svc -o yaml; podlab get endpoints",
    },
    Entry {
        name: "dns-stopped",
        breaks: "the DNS server in the coredns pod stops: kube-dns has no ready endpoint, and every lookup is refused",
        section: Section::Dns,
        level: Level::Daemon,
        target: TargetKind::Lab,
        params: NO_PARAMS,
        shows: "podlab get pods -n kube-system; podlab get endpoints -n kube-system",
    },
    Entry {
        name: "coredns-scaled-to-zero",
        breaks: "the coredns Deployment has no pods: kube-dns has no endpoints, and every lookup is refused",
        section: Section::Dns,
        level: Level::Plan,
        target: TargetKind::Lab,
        params: NO_PARAMS,
        shows: "podlab get pods -n kube-system; podlab get endpoints -n kube-system",
    },
    Entry {
        name: "wrong-nameserver",
        breaks: "a pod's /etc/resolv.conf names a nameserver nobody answers on: its lookups time out",
        section: Section::Dns,
        level: Level::Kernel,
        target: TargetKind::Pod,
        params: &[Param {
            name: "ip",
            default: "the first service address after dnsIP that no service has",
            help: "the wrong nameserver",
        }],
        shows: "podlab exec POD -- cat /etc/resolv.conf",
    },
];

/// `podlab exec`'s target for a pod.
pub(crate) fn pod_at(p: &PodPlan) -> String {
    if p.namespace == "default" {
        format!("pod/{}", p.name)
    } else {
        format!("-n {} {}", p.namespace, p.name)
    }
}

/// A root qdisc `spec` on node `n`'s eth0, and its removal as the undo.
fn shape_eth0(fp: &mut FaultPlan, n: &NodePlan, spec: Vec<String>) {
    let step = |spec| {
        Step::at(
            node_at(n),
            Change::Qdisc {
                netns: n.netns.clone(),
                link: ETH0.into(),
                spec,
            },
        )
    };
    fp.inject.push(step(Some(spec)));
    fp.undo.push(step(None));
}

/// `ip link set LINK up|down`.
fn link_state(netns: &str, link: &str, up: bool) -> Change {
    Change::Link {
        netns: netns.into(),
        link: link.into(),
        up: Some(up),
        mtu: None,
    }
}

/// `ip route add|del DST via VIA`, as podlab's own routes are.
fn route(netns: &str, op: RouteOp, dst: Ipv4Net, via: Ipv4Addr) -> Change {
    Change::Route {
        netns: netns.into(),
        op,
        route: Route::via(dst, via),
    }
}

fn node_at(n: &NodePlan) -> String {
    format!("node/{}", n.name)
}

/// Choose among candidates: the one named, else the first (no seed) or one
/// picked by the seed.
fn choose<'a, T>(
    e: &Entry,
    lab: &str,
    candidates: Vec<&'a T>,
    target: Option<&str>,
    seed: Option<u64>,
    name_of: impl Fn(&T) -> Vec<String>,
    why_none: &str,
) -> Result<&'a T, FaultError> {
    let Some(t) = target else {
        if candidates.is_empty() {
            return Err(FaultError::NothingToTarget {
                fault: e.name.into(),
                kind: e.target,
                lab: lab.into(),
                why: why_none.into(),
            });
        }
        let i = seed.map_or(0, |s| pick(s, e.name, candidates.len()));
        return Ok(candidates[i]);
    };
    candidates
        .iter()
        .find(|c| name_of(c).iter().any(|n| n == t))
        .copied()
        .ok_or_else(|| FaultError::NoSuchTarget {
            fault: e.name.into(),
            kind: e.target,
            target: t.into(),
            lab: lab.into(),
            known: candidates
                .iter()
                .filter_map(|c| name_of(c).into_iter().next())
                .collect(),
        })
}

fn node<'a>(
    e: &Entry,
    plan: &'a Plan,
    target: Option<&str>,
    seed: Option<u64>,
) -> Result<&'a NodePlan, FaultError> {
    let t = target.map(|t| named(t, Kind::Node));
    let t = t.as_deref();
    choose(
        e,
        &plan.lab,
        plan.nodes.iter().collect(),
        t,
        seed,
        |n| vec![n.name.clone()],
        "",
    )
}

enum Kind {
    Node,
    Pod,
    Service,
}

/// A fault's target read in the grammar of `crate::target`, as the first
/// of `ns_names` (`NS/NAME`) or a node's name: a bare name, `pod/NAME`,
/// `NS/NAME`, `svc/NAME`, `svc/NS/NAME`, `node/NAME`. A word of another
/// kind is left as written, for `choose` to report as no such target.
fn named(t: &str, kind: Kind) -> String {
    use crate::target::{parse, Role, Spec};
    let key =
        |ns: Option<String>, name: String| format!("{}/{name}", ns.as_deref().unwrap_or("default"));
    match (kind, parse(t.trim(), Role::Destination).map(|t| t.spec)) {
        (Kind::Node, Ok(Spec::Node(n) | Spec::Name(n))) => n,
        (Kind::Pod, Ok(Spec::Name(name))) | (Kind::Service, Ok(Spec::Name(name))) => {
            key(None, name)
        }
        (Kind::Pod, Ok(Spec::Pod { namespace, name }))
        | (Kind::Service, Ok(Spec::Service { namespace, name })) => key(namespace, name),
        _ => t.to_string(),
    }
}

/// Every way to write a namespaced object's name; the first is how it is
/// shown.
fn ns_names(ns: &str, name: &str) -> Vec<String> {
    let mut v = vec![format!("{ns}/{name}")];
    if ns == "default" {
        v.push(name.to_string());
    }
    v
}

fn pod<'a>(
    e: &Entry,
    plan: &'a Plan,
    target: Option<&str>,
    seed: Option<u64>,
) -> Result<&'a PodPlan, FaultError> {
    let t = target.map(|t| named(t, Kind::Pod));
    let t = t.as_deref();
    // Picked without a name: the lab's own pods, not cluster DNS.
    let candidates: Vec<&PodPlan> = match t {
        Some(_) => plan.pods.iter().collect(),
        None => plan
            .pods
            .iter()
            .filter(|p| p.role == PodRole::Echo)
            .collect(),
    };
    choose(
        e,
        &plan.lab,
        candidates,
        t,
        seed,
        |p| ns_names(&p.namespace, &p.name),
        "",
    )
}

fn service<'a>(
    e: &Entry,
    plan: &'a Plan,
    target: Option<&str>,
    seed: Option<u64>,
    usable: impl Fn(&ServicePlan) -> bool,
    why_none: &str,
) -> Result<&'a ServicePlan, FaultError> {
    let t = target.map(|t| named(t, Kind::Service));
    let t = t.as_deref();
    let candidates: Vec<&ServicePlan> = plan
        .services
        .iter()
        .filter(|s| t.is_some() || s.namespace != dns::KUBE_SYSTEM)
        .filter(|s| usable(s))
        .collect();
    if let Some(t) = t {
        // Named, but not usable: say why rather than "not found".
        if let Some(s) = plan
            .services
            .iter()
            .find(|s| ns_names(&s.namespace, &s.name).iter().any(|n| n == t))
        {
            if !usable(s) {
                return Err(FaultError::NotApplicable {
                    fault: e.name.into(),
                    target: s.key(),
                    why: why_none.trim_start_matches(": ").into(),
                });
            }
        }
    }
    choose(
        e,
        &plan.lab,
        candidates,
        t,
        seed,
        |s| ns_names(&s.namespace, &s.name),
        why_none,
    )
}

fn int_param(
    e: &Entry,
    params: &BTreeMap<String, String>,
    name: &str,
    lo: u32,
    hi: u32,
) -> Result<Option<u32>, FaultError> {
    let Some(v) = params.get(name) else {
        return Ok(None);
    };
    match v.parse::<u32>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
        _ => Err(FaultError::BadParam {
            fault: e.name.into(),
            param: name.into(),
            value: v.clone(),
            expected: format!("an integer {lo}-{hi}"),
        }),
    }
}

/// A `tc` quantity: digits with an optional unit (`1mbit`, `32kbit`,
/// `400ms`); checked here so that tc's own message never has to be read.
fn tc_param(
    e: &Entry,
    params: &BTreeMap<String, String>,
    name: &str,
    default: &str,
    units: &[&str],
) -> Result<String, FaultError> {
    let v = params.get(name).map_or(default, String::as_str);
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    let ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.parse::<f64>().is_ok_and(|f| f > 0.0)
        && units.contains(&unit);
    if ok {
        Ok(v.to_string())
    } else {
        Err(FaultError::BadParam {
            fault: e.name.into(),
            param: name.into(),
            value: v.into(),
            expected: format!(
                "a positive number with a unit ({})",
                units
                    .iter()
                    .filter(|u| !u.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

fn fault_plan(e: &Entry, target: String, summary: String) -> FaultPlan {
    FaultPlan {
        fault: e.name.into(),
        target,
        params: BTreeMap::new(),
        summary,
        section: e.section,
        level: e.level,
        inject: Vec::new(),
        undo: Vec::new(),
    }
}

/// A value with one typo: the last two different neighbouring letters
/// swapped (`frontend` → `frontedn`), else a letter doubled.
pub fn typo(v: &str) -> String {
    let mut chars: Vec<char> = v.chars().collect();
    if let Some(i) = (1..chars.len()).rev().find(|&i| chars[i] != chars[i - 1]) {
        chars.swap(i, i - 1);
        return chars.into_iter().collect();
    }
    match chars.last() {
        Some(c) => format!("{v}{c}"),
        None => "x".into(),
    }
}

pub(super) fn plan(
    e: &Entry,
    ctx: &Context,
    target: Option<&str>,
    params: &BTreeMap<String, String>,
    seed: Option<u64>,
) -> Result<FaultPlan, FaultError> {
    let plan = ctx.plan;
    if e.target == TargetKind::Lab {
        if let Some(t) = target {
            return Err(FaultError::NoTargetTaken {
                fault: e.name.into(),
                target: t.into(),
            });
        }
    }
    let mut fp = match e.name {
        "pod-down" => {
            let p = pod(e, plan, target, seed)?;
            let mut fp = fault_plan(
                e,
                p.key(),
                format!("pod {}'s servers and processes are stopped", p.key()),
            );
            fp.inject.push(Step::StopPod {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
            });
            fp.undo.push(Step::StartPods);
            fp
        }
        "pod-interface-down" => {
            let p = pod(e, plan, target, seed)?;
            let mut fp = fault_plan(e, p.key(), format!("pod {}'s eth0 is down", p.key()));
            let at = pod_at(p);
            fp.inject
                .push(Step::at(&at, link_state(&p.netns, ETH0, false)));
            fp.undo
                .push(Step::at(&at, link_state(&p.netns, ETH0, true)));
            // A link going down takes its routes with it; up brings back
            // only the connected one.
            fp.undo.push(Step::at(
                at,
                route(&p.netns, RouteOp::Add, Ipv4Net::default(), p.gateway),
            ));
            fp
        }
        "node-link-down" => {
            let n = node(e, plan, target, seed)?;
            let mut fp = fault_plan(e, n.name.clone(), format!("node {}'s eth0 is down", n.name));
            let at = node_at(n);
            fp.inject
                .push(Step::at(&at, link_state(&n.netns, ETH0, false)));
            fp.undo
                .push(Step::at(&at, link_state(&n.netns, ETH0, true)));
            let add = |dst, via| Step::at(&at, route(&n.netns, RouteOp::Add, dst, via));
            fp.undo.push(add(Ipv4Net::default(), plan.net.gateway));
            for r in &n.routes {
                fp.undo.push(add(r.dst, r.via));
            }
            fp
        }
        "route-missing" => {
            let n = node(e, plan, target, seed)?;
            let others: Vec<&NodePlan> = plan.nodes.iter().filter(|o| o.name != n.name).collect();
            if others.is_empty() {
                return Err(FaultError::NotApplicable {
                    fault: e.name.into(),
                    target: n.name.clone(),
                    why: "the lab has one node: there is no route to another node".into(),
                });
            }
            let to = match params.get("to") {
                Some(t) => {
                    let t = named(t, Kind::Node);
                    *others
                        .iter()
                        .find(|o| o.name == t)
                        .ok_or_else(|| FaultError::BadParam {
                            fault: e.name.into(),
                            param: "to".into(),
                            value: t.clone(),
                            expected: format!(
                                "another node of the lab: {}",
                                others
                                    .iter()
                                    .map(|o| o.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        })?
                }
                // The node after it, so that every node has a default.
                None => {
                    let i = plan
                        .nodes
                        .iter()
                        .position(|o| o.name == n.name)
                        .unwrap_or(0);
                    &plan.nodes[(i + 1) % plan.nodes.len()]
                }
            };
            let Some(route) = n.routes.iter().find(|r| r.dst == to.pod_cidr) else {
                return Err(FaultError::NotApplicable {
                    fault: e.name.into(),
                    target: n.name.clone(),
                    why: format!("its plan has no route to {}", to.pod_cidr),
                });
            };
            let mut fp = fault_plan(
                e,
                n.name.clone(),
                format!(
                    "node {} has no route to node {}'s pods ({} via {})",
                    n.name, to.name, route.dst, route.via
                ),
            );
            fp.params.insert("to".into(), to.name.clone());
            let step = |op| Step::at(node_at(n), self::route(&n.netns, op, route.dst, route.via));
            fp.inject.push(step(RouteOp::Del));
            fp.undo.push(step(RouteOp::Add));
            fp
        }
        "forwarding-off" => {
            let n = node(e, plan, target, seed)?;
            let mut fp = fault_plan(
                e,
                n.name.clone(),
                format!("node {} does not forward packets", n.name),
            );
            let step = |v: &str| {
                Step::at(
                    node_at(n),
                    Change::Sysctl {
                        netns: n.netns.clone(),
                        key: "net.ipv4.ip_forward".into(),
                        value: v.into(),
                    },
                )
            };
            fp.inject.push(step("0"));
            fp.undo.push(step("1"));
            fp
        }
        "bridge-down" => {
            let n = node(e, plan, target, seed)?;
            let mut fp = fault_plan(
                e,
                n.name.clone(),
                format!("node {}'s pod bridge {POD_BRIDGE} is down", n.name),
            );
            let step = |up| Step::at(node_at(n), link_state(&n.netns, POD_BRIDGE, up));
            fp.inject.push(step(false));
            fp.undo.push(step(true));
            fp
        }
        "mtu-mismatch" => {
            let n = node(e, plan, target, seed)?;
            let mtu = int_param(e, params, "mtu", 576, 9000)?
                .unwrap_or_else(|| plan.mtu.saturating_sub(100).max(576));
            if mtu == plan.mtu {
                return Err(FaultError::BadParam {
                    fault: e.name.into(),
                    param: "mtu".into(),
                    value: mtu.to_string(),
                    expected: format!("an MTU other than the lab's own ({})", plan.mtu),
                });
            }
            let mut fp = fault_plan(
                e,
                n.name.clone(),
                format!(
                    "node {}'s eth0 has MTU {mtu}, the node network {}",
                    n.name, plan.mtu
                ),
            );
            fp.params.insert("mtu".into(), mtu.to_string());
            let step = |m| {
                Step::at(
                    node_at(n),
                    Change::Link {
                        netns: n.netns.clone(),
                        link: ETH0.into(),
                        up: None,
                        mtu: Some(m),
                    },
                )
            };
            fp.inject.push(step(mtu));
            fp.undo.push(step(plan.mtu));
            fp
        }
        "rate-limit" => {
            let n = node(e, plan, target, seed)?;
            let rate = tc_param(
                e,
                params,
                "rate",
                "1mbit",
                &["bit", "kbit", "mbit", "gbit", "bps", "kbps", "mbps"],
            )?;
            let burst = tc_param(
                e,
                params,
                "burst",
                "32kbit",
                &["", "b", "kb", "mb", "kbit", "mbit"],
            )?;
            let latency = tc_param(e, params, "latency", "400ms", &["ms", "s", "us"])?;
            let mut fp = fault_plan(
                e,
                n.name.clone(),
                format!("node {}'s eth0 sends at most {rate}", n.name),
            );
            fp.params.insert("rate".into(), rate.clone());
            fp.params.insert("burst".into(), burst.clone());
            fp.params.insert("latency".into(), latency.clone());
            let spec = ["tbf", "rate", &rate, "burst", &burst, "latency", &latency]
                .iter()
                .map(|s| s.to_string())
                .collect();
            shape_eth0(&mut fp, n, spec);
            fp
        }
        "latency" => {
            let n = node(e, plan, target, seed)?;
            let delay = tc_param(e, params, "delay", "100ms", &["ms", "s", "us"])?;
            let mut spec: Vec<String> = vec!["netem".into(), "delay".into(), delay.clone()];
            let mut fp = fault_plan(
                e,
                n.name.clone(),
                format!("node {}'s eth0 delays every packet by {delay}", n.name),
            );
            fp.params.insert("delay".into(), delay);
            if params.contains_key("jitter") {
                let jitter = tc_param(e, params, "jitter", "10ms", &["ms", "s", "us"])?;
                spec.push(jitter.clone());
                fp.params.insert("jitter".into(), jitter);
            }
            shape_eth0(&mut fp, n, spec);
            fp
        }
        "packet-loss" => {
            let n = node(e, plan, target, seed)?;
            let percent = int_param(e, params, "percent", 1, 100)?.unwrap_or(20);
            let mut fp = fault_plan(
                e,
                n.name.clone(),
                format!(
                    "node {} drops {percent}% of the packets crossing its eth0",
                    n.name
                ),
            );
            fp.params.insert("percent".into(), percent.to_string());
            fp.inject.push(Step::at(
                node_at(n),
                Change::Nft {
                    netns: n.netns.clone(),
                    script: loss_script(percent),
                },
            ));
            fp.undo.push(Step::at(
                node_at(n),
                Change::DropTable {
                    netns: n.netns.clone(),
                    family: "ip".into(),
                    table: LOSS_TABLE.into(),
                },
            ));
            fp
        }
        "kube-proxy-flushed" => {
            let n = node(e, plan, target, seed)?;
            let mut fp = fault_plan(
                e,
                n.name.clone(),
                format!("node {}'s kube-proxy rules are flushed", n.name),
            );
            fp.inject.push(Step::at(
                node_at(n),
                Change::Nft {
                    netns: n.netns.clone(),
                    script: format!("flush table ip {}\n", kubeproxy::TABLE),
                },
            ));
            fp.undo.push(Step::ReloadRules {
                netns: Some(n.netns.clone()),
            });
            fp
        }
        "stale-endpoints" => stale_endpoints(e, plan, target, params, seed)?,
        "wrong-nameserver" => wrong_nameserver(e, plan, target, params, seed)?,
        "dns-stopped" => {
            let c = coredns(e, plan)?;
            let mut fp = fault_plan(
                e,
                String::new(),
                format!("the DNS server of {} is stopped", c.key()),
            );
            fp.inject.push(Step::StopPod {
                namespace: c.namespace.clone(),
                name: c.name.clone(),
            });
            fp.undo.push(Step::StartPods);
            fp
        }
        "coredns-scaled-to-zero" => {
            coredns(e, plan)?;
            let mut desired = plan.clone();
            desired.pods.retain(|p| p.role != PodRole::Dns);
            for s in &mut desired.services {
                if s.namespace == dns::KUBE_SYSTEM && s.name == dns::KUBE_DNS {
                    s.endpoints.clear();
                }
            }
            let mut fp = fault_plan(
                e,
                String::new(),
                "the coredns Deployment is scaled to zero: no DNS pod".into(),
            );
            apply_pair(&mut fp, plan, desired, "coredns scaled to zero");
            fp
        }
        "deny-all-policy" => {
            let file = lab_file(e, ctx)?;
            let ns = target
                .map(|t| t.strip_prefix("ns/").unwrap_or(t))
                .unwrap_or("default");
            let known: Vec<String> = {
                let mut v: Vec<String> = plan.pods.iter().map(|p| p.namespace.clone()).collect();
                v.extend(file.namespaces.iter().map(|n| n.name.clone()));
                v.push("default".into());
                v.sort();
                v.dedup();
                v
            };
            if !known.iter().any(|k| k == ns) {
                return Err(FaultError::NoSuchTarget {
                    fault: e.name.into(),
                    kind: TargetKind::Namespace,
                    target: ns.into(),
                    lab: plan.lab.clone(),
                    known,
                });
            }
            let name = params.get("name").map_or("deny-all", String::as_str);
            if !crate::lab::is_dns1123_subdomain(name) {
                return Err(FaultError::BadParam {
                    fault: e.name.into(),
                    param: "name".into(),
                    value: name.into(),
                    expected: "a DNS-1123 name (lowercase letters, digits, '-')".into(),
                });
            }
            if file
                .policies
                .iter()
                .any(|p| p.namespace == ns && p.name == name)
            {
                return Err(FaultError::NotApplicable {
                    fault: e.name.into(),
                    target: ns.into(),
                    why: format!("a policy {ns}/{name} exists already"),
                });
            }
            let mut changed = file.clone();
            changed.policies.push(NetworkPolicy {
                namespace: ns.into(),
                name: name.into(),
                pos: Default::default(),
                raw: serde_json::json!({
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []},
                }),
                spec: PolicySpec {
                    pod_selector: Default::default(),
                    policy_types: Some(vec![PolicyType::Ingress]),
                    ingress: Some(Vec::new()),
                    egress: None,
                },
            });
            let mut fp = fault_plan(
                e,
                ns.into(),
                format!("NetworkPolicy {ns}/{name} denies all ingress to namespace {ns}"),
            );
            fp.params.insert("name".into(), name.into());
            let desired = replan(e, &changed, plan)?;
            apply_pair(&mut fp, plan, desired, &format!("policy {ns}/{name} added"));
            fp
        }
        "policy-label-typo" => policy_label_typo(e, ctx, target, seed)?,
        "service-selector-typo" => {
            let file = lab_file(e, ctx)?;
            let s = service(
                e,
                plan,
                target,
                seed,
                |s| !s.selector.is_empty(),
                ": no service with a selector",
            )?;
            let mut changed = file.clone();
            let Some(fs) = changed
                .services
                .iter_mut()
                .find(|x| x.namespace == s.namespace && x.name == s.name)
            else {
                return Err(not_in_file(e, &s.key()));
            };
            let Some(sel) = fs.spec.selector.as_mut() else {
                return Err(not_in_file(e, &s.key()));
            };
            let Some((key, value)) = sel.iter().next().map(|(k, v)| (k.clone(), v.clone())) else {
                return Err(not_in_file(e, &s.key()));
            };
            let wrong = typo(&value);
            sel.insert(key.clone(), wrong.clone());
            if let Some(v) = fs
                .raw
                .pointer_mut(&format!("/spec/selector/{}", json_key(&key)))
            {
                *v = serde_json::Value::String(wrong.clone());
            }
            let mut fp = fault_plan(
                e,
                s.key(),
                format!(
                    "service {}'s selector is {key}={wrong}, not {key}={value}",
                    s.key()
                ),
            );
            let desired = replan(e, &changed, plan)?;
            apply_pair(
                &mut fp,
                plan,
                desired,
                &format!("service {} selecting {key}={wrong}", s.key()),
            );
            fp
        }
        "wrong-target-port" => wrong_target_port(e, ctx, target, params, seed)?,
        _ => {
            return Err(FaultError::UnknownFault {
                name: e.name.into(),
                suggestion: None,
            })
        }
    };
    // Parameters left at their defaults are shown resolved.
    for p in e.params {
        if let Some(v) = params.get(p.name) {
            fp.params.entry(p.name.into()).or_insert_with(|| v.clone());
        }
    }
    Ok(fp)
}

/// JSON pointer escaping of one key.
fn json_key(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn not_in_file(e: &Entry, what: &str) -> FaultError {
    FaultError::NotApplicable {
        fault: e.name.into(),
        target: what.into(),
        why: "it is not written in the lab file".into(),
    }
}

fn lab_file<'a>(e: &Entry, ctx: &Context<'a>) -> Result<&'a LabFile, FaultError> {
    ctx.file.ok_or_else(|| FaultError::NeedsLabFile {
        fault: e.name.into(),
        why: format!("{} could not be read", ctx.plan.source),
    })
}

fn replan(e: &Entry, file: &LabFile, current: &Plan) -> Result<Plan, FaultError> {
    crate::plan::build_with(file, Some(current)).map_err(|err| FaultError::Replan {
        fault: e.name.into(),
        message: err.to_string(),
    })
}

fn apply_pair(fp: &mut FaultPlan, current: &Plan, desired: Plan, change: &str) {
    fp.inject.push(Step::ApplyPlan {
        change: change.into(),
        plan: Box::new(desired),
    });
    fp.undo.push(Step::ApplyPlan {
        change: "the plan it had before the fault".into(),
        plan: Box::new(current.clone()),
    });
}

fn coredns<'a>(e: &Entry, plan: &'a Plan) -> Result<&'a PodPlan, FaultError> {
    plan.pods
        .iter()
        .find(|p| p.role == PodRole::Dns)
        .ok_or_else(|| FaultError::NothingToTarget {
            fault: e.name.into(),
            kind: TargetKind::Pod,
            lab: plan.lab.clone(),
            why: ": it has no coredns pod (is coredns scaled to zero?)".into(),
        })
}

/// The loss table: a packet crossing eth0 either way is dropped with the
/// given probability, before conntrack sees it.
pub fn loss_script(percent: u32) -> String {
    format!(
        "table ip {LOSS_TABLE} {{\n\
         \tchain ingress {{\n\
         \t\ttype filter hook prerouting priority -300; policy accept;\n\
         \t\tiifname \"{ETH0}\" numgen random mod 100 < {percent} counter drop comment \"podlab fault packet-loss: {percent}% of packets arriving on {ETH0}\"\n\
         \t}}\n\
         \tchain egress {{\n\
         \t\ttype filter hook postrouting priority 300; policy accept;\n\
         \t\toifname \"{ETH0}\" numgen random mod 100 < {percent} counter drop comment \"podlab fault packet-loss: {percent}% of packets leaving on {ETH0}\"\n\
         \t}}\n\
         }}\n"
    )
}

fn stale_endpoints(
    e: &Entry,
    plan: &Plan,
    target: Option<&str>,
    params: &BTreeMap<String, String>,
    seed: Option<u64>,
) -> Result<FaultPlan, FaultError> {
    let s = service(
        e,
        plan,
        target,
        seed,
        |s| s.cluster_ip.is_some() && !s.ports.is_empty(),
        ": no service with a cluster IP and ports",
    )?;
    let n = match params.get("node") {
        Some(t) => {
            let t = named(t, Kind::Node);
            plan.node(&t).ok_or_else(|| FaultError::BadParam {
                fault: e.name.into(),
                param: "node".into(),
                value: t.clone(),
                expected: format!(
                    "a node of the lab: {}",
                    plan.nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?
        }
        None => s
            .endpoints
            .first()
            .and_then(|ep| plan.node(&ep.node))
            .or_else(|| plan.nodes.first())
            .ok_or_else(|| FaultError::NothingToTarget {
                fault: e.name.into(),
                kind: TargetKind::Node,
                lab: plan.lab.clone(),
                why: String::new(),
            })?,
    };
    // An address of that node's pod range that no pod has: where the
    // removed pod was.
    let used: Vec<Ipv4Addr> = plan.pods.iter().map(|p| p.ip).collect();
    let Some(ip) = n
        .pod_cidr
        .hosts()
        .rev()
        .find(|ip| !used.contains(ip) && *ip != n.pod_gateway)
    else {
        return Err(FaultError::NotApplicable {
            fault: e.name.into(),
            target: s.key(),
            why: format!("node {}'s pod range has no free address", n.name),
        });
    };
    let ports: Vec<Option<u16>> = s
        .ports
        .iter()
        .enumerate()
        .map(|(i, sp)| match &sp.target_port {
            TargetPort::Number(p) => Some(*p),
            TargetPort::Name(_) => s
                .endpoints
                .iter()
                .find_map(|ep| ep.ports.get(i).copied().flatten()),
        })
        .collect();
    if ports.iter().all(Option::is_none) {
        return Err(FaultError::NotApplicable {
            fault: e.name.into(),
            target: s.key(),
            why: "its named target ports resolve on no pod".into(),
        });
    }
    let endpoint = EndpointPlan {
        pod: format!("{}-removed", s.name),
        namespace: s.namespace.clone(),
        ip,
        node: n.name.clone(),
        ports,
    };
    Ok(FaultPlan {
        fault: e.name.into(),
        target: s.key(),
        params: BTreeMap::from([("node".to_string(), n.name.clone())]),
        summary: format!(
            "kube-proxy still sends connections to service {} to {ip}, a pod removed from node {}",
            s.key(),
            n.name
        ),
        section: e.section,
        level: e.level,
        inject: vec![Step::StaleEndpoint {
            service: s.key(),
            endpoint,
        }],
        undo: vec![Step::ReloadRules { netns: None }],
    })
}

fn wrong_nameserver(
    e: &Entry,
    plan: &Plan,
    target: Option<&str>,
    params: &BTreeMap<String, String>,
    seed: Option<u64>,
) -> Result<FaultPlan, FaultError> {
    let p = pod(e, plan, target, seed)?;
    // The host's resolver is not the lab's to break.
    let Some(good) = dns::resolv_conf(p, &plan.cluster_domain, plan.dns_ip, "")
        .filter(|_| p.dns.policy != crate::lab::DnsPolicy::Default)
    else {
        return Err(FaultError::NotApplicable {
            fault: e.name.into(),
            target: p.key(),
            why: "it uses its node's resolver (dnsPolicy: Default), not a resolv.conf of its own"
                .into(),
        });
    };
    let bad: Ipv4Addr = match params.get("ip") {
        Some(v) => v.parse().map_err(|_| FaultError::BadParam {
            fault: e.name.into(),
            param: "ip".into(),
            value: v.clone(),
            expected: "an IPv4 address".into(),
        })?,
        None => {
            let taken: Vec<Ipv4Addr> = plan.services.iter().filter_map(|s| s.cluster_ip).collect();
            plan.service_cidr
                .hosts()
                .skip_while(|ip| *ip <= plan.dns_ip)
                .find(|ip| !taken.contains(ip))
                .unwrap_or(Ipv4Addr::new(192, 0, 2, 53))
        }
    };
    let mut broken = String::new();
    let mut replaced = false;
    for line in good.lines() {
        if line.trim_start().starts_with("nameserver") {
            if !replaced {
                broken.push_str(&format!("nameserver {bad}\n"));
                replaced = true;
            }
        } else {
            broken.push_str(line);
            broken.push('\n');
        }
    }
    if !replaced {
        broken.push_str(&format!("nameserver {bad}\n"));
    }
    let path = crate::kernel::apply::etc_dir(&p.netns)
        .join("resolv.conf")
        .display()
        .to_string();
    let file = |content: String| {
        Step::at(
            pod_at(p),
            Change::File {
                path: path.clone(),
                shown: "/etc/resolv.conf".into(),
                content: Some(content),
            },
        )
    };
    Ok(FaultPlan {
        fault: e.name.into(),
        target: p.key(),
        params: BTreeMap::from([("ip".to_string(), bad.to_string())]),
        summary: format!(
            "pod {}'s resolv.conf says nameserver {bad}, not kube-dns ({})",
            p.key(),
            plan.dns_ip
        ),
        section: e.section,
        level: e.level,
        inject: vec![file(broken)],
        undo: vec![file(good)],
    })
}

fn policy_label_typo(
    e: &Entry,
    ctx: &Context,
    target: Option<&str>,
    seed: Option<u64>,
) -> Result<FaultPlan, FaultError> {
    let plan = ctx.plan;
    let file = lab_file(e, ctx)?;
    let t = target.map(|t| t.strip_prefix("netpol/").unwrap_or(t));
    // A policy with a label in an allow rule's podSelector: the typo then
    // drops what that rule allowed.
    let label_of = |p: &NetworkPolicy| -> Option<(bool, usize, usize, String)> {
        for (ingress, rules) in [(true, &p.spec.ingress), (false, &p.spec.egress)] {
            for (ri, r) in rules.iter().flatten().enumerate() {
                for (pi, peer) in r.peers.iter().enumerate() {
                    if let crate::lab::PolicyPeer::Pods {
                        pod_selector: Some(sel),
                        ..
                    } = peer
                    {
                        if let Some(k) = sel.match_labels.keys().next() {
                            return Some((ingress, ri, pi, k.clone()));
                        }
                    }
                }
            }
        }
        None
    };
    let candidates: Vec<&NetworkPolicy> = file
        .policies
        .iter()
        .filter(|p| label_of(p).is_some())
        .collect();
    if let Some(t) = t {
        if let Some(p) = file
            .policies
            .iter()
            .find(|p| ns_names(&p.namespace, &p.name).iter().any(|n| n == t))
        {
            if label_of(p).is_none() {
                return Err(FaultError::NotApplicable {
                    fault: e.name.into(),
                    target: format!("{}/{}", p.namespace, p.name),
                    why: "none of its allow rules selects pods by label".into(),
                });
            }
        }
    }
    let chosen = choose(
        e,
        &plan.lab,
        candidates,
        t,
        seed,
        |p| ns_names(&p.namespace, &p.name),
        ": no policy whose allow rules select pods by label",
    )?;
    let key = format!("{}/{}", chosen.namespace, chosen.name);
    let Some((ingress, ri, pi, label)) = label_of(chosen) else {
        return Err(not_in_file(e, &key));
    };
    let mut changed = file.clone();
    let Some(cp) = changed
        .policies
        .iter_mut()
        .find(|p| p.namespace == chosen.namespace && p.name == chosen.name)
    else {
        return Err(not_in_file(e, &key));
    };
    let rules = if ingress {
        &mut cp.spec.ingress
    } else {
        &mut cp.spec.egress
    };
    let Some(crate::lab::PolicyPeer::Pods {
        pod_selector: Some(sel),
        ..
    }) = rules
        .as_mut()
        .and_then(|r| r.get_mut(ri))
        .and_then(|r| r.peers.get_mut(pi))
    else {
        return Err(not_in_file(e, &key));
    };
    let Some(value) = sel.match_labels.get(&label).cloned() else {
        return Err(not_in_file(e, &key));
    };
    let wrong = typo(&value);
    sel.match_labels.insert(label.clone(), wrong.clone());
    let (dir, peers) = if ingress {
        ("ingress", "from")
    } else {
        ("egress", "to")
    };
    let pointer = format!(
        "/spec/{dir}/{ri}/{peers}/{pi}/podSelector/matchLabels/{}",
        json_key(&label)
    );
    if let Some(v) = cp.raw.pointer_mut(&pointer) {
        *v = serde_json::Value::String(wrong.clone());
    }
    let mut fp = FaultPlan {
        fault: e.name.into(),
        target: key.clone(),
        params: BTreeMap::new(),
        summary: format!(
            "NetworkPolicy {key}'s {dir} rule selects {label}={wrong}, not {label}={value}"
        ),
        section: e.section,
        level: e.level,
        inject: Vec::new(),
        undo: Vec::new(),
    };
    let desired = replan(e, &changed, plan)?;
    apply_pair(
        &mut fp,
        plan,
        desired,
        &format!("policy {key} selecting {label}={wrong}"),
    );
    Ok(fp)
}

fn wrong_target_port(
    e: &Entry,
    ctx: &Context,
    target: Option<&str>,
    params: &BTreeMap<String, String>,
    seed: Option<u64>,
) -> Result<FaultPlan, FaultError> {
    let plan = ctx.plan;
    let file = lab_file(e, ctx)?;
    let s = service(
        e,
        plan,
        target,
        seed,
        |s| s.cluster_ip.is_some() && !s.ports.is_empty() && !s.selector.is_empty(),
        ": no service with a selector and ports",
    )?;
    // Every port some endpoint pod declares: the wrong port is none of them.
    let declared: Vec<u16> = s
        .endpoints
        .iter()
        .filter_map(|ep| plan.pod(&ep.namespace, &ep.pod))
        .flat_map(|p| p.ports.iter().map(|pp| pp.port))
        .collect();
    let current = s
        .endpoints
        .first()
        .and_then(|ep| ep.ports.first().copied().flatten())
        .or(match &s.ports[0].target_port {
            TargetPort::Number(n) => Some(*n),
            TargetPort::Name(_) => None,
        })
        .unwrap_or(s.ports[0].port);
    let wrong = match int_param(e, params, "port", 1, 65535)? {
        Some(p) => {
            let p = p as u16;
            if declared.contains(&p) {
                return Err(FaultError::BadParam {
                    fault: e.name.into(),
                    param: "port".into(),
                    value: p.to_string(),
                    expected: "a port the service's pods do not declare".into(),
                });
            }
            p
        }
        None => {
            let mut p = current;
            loop {
                p = if p == u16::MAX { 1 } else { p + 1 };
                if !declared.contains(&p) || p == current {
                    break p;
                }
            }
        }
    };
    let mut changed = file.clone();
    let Some(fs) = changed
        .services
        .iter_mut()
        .find(|x| x.namespace == s.namespace && x.name == s.name)
    else {
        return Err(not_in_file(e, &s.key()));
    };
    let Some(port) = fs.spec.ports.first_mut() else {
        return Err(not_in_file(e, &s.key()));
    };
    port.target_port = Some(TargetPortSpec::Number(wrong));
    if let Some(obj) = fs
        .raw
        .pointer_mut("/spec/ports/0")
        .and_then(|v| v.as_object_mut())
    {
        obj.insert("targetPort".into(), serde_json::Value::from(wrong));
    }
    let mut fp = FaultPlan {
        fault: e.name.into(),
        target: s.key(),
        params: BTreeMap::from([("port".to_string(), wrong.to_string())]),
        summary: format!(
            "service {} sends port {} to targetPort {wrong}; its pods listen on {current}",
            s.key(),
            s.ports[0].port
        ),
        section: e.section,
        level: e.level,
        inject: Vec::new(),
        undo: Vec::new(),
    };
    let desired = replan(e, &changed, plan)?;
    apply_pair(
        &mut fp,
        plan,
        desired,
        &format!("service {} with targetPort {wrong}", s.key()),
    );
    Ok(fp)
}
