//! `diagnose`: the seed's troubleshooting checklists ("Pods can't
//! communicate", "Services not accessible", "DNS resolution issues"),
//! walked in order against the kernel's real state, each step with its
//! evidence and the command that shows it to a learner.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use crate::kernel::inspect::{self, NetnsView};
use crate::kernel::netns::{self, Netns};
use crate::kernel::{nft, sysctl};
use crate::lab::PolicyType;
use crate::lab::Protocol;
use crate::plan::netpol;
use crate::plan::{kubeproxy, NodePlan, Plan, PodPlan, ServicePlan, ETH0, ETH0_INDEX, POD_BRIDGE};
use crate::runtime::DaemonStatus;

use super::trace::{self, Trace, VerdictKind};

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The seed's checklist this step belongs to.
    pub section: &'static str,
    pub check: String,
    pub ok: bool,
    pub evidence: String,
    /// The command that shows this to a learner.
    pub show: String,
    /// Judged from the plan, not seen in the kernel or by a probe: the
    /// output says so, and a probe that disagrees wins.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
}

/// What the real probe, sent before any step is judged, saw: the outcome
/// of `podlab trace` for the same flow.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// `tcp 10.244.2.2 → 10.244.1.2:80`.
    pub flow: String,
    /// `delivered`, `refused`, `dropped`, `no-route`, `no-answer`, `unknown`.
    pub outcome: String,
    pub delivered: bool,
    pub detail: String,
    /// The hop where the outcome was decided, as the trace names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop: Option<String>,
    /// The command that shows the packet's whole path.
    pub show: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    /// `None` only when no probe could be sent (said in `notes`).
    pub probe: Option<Probe>,
    pub steps: Vec<Step>,
    /// What the diagnosis could not do, or chose for the user (a port).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    /// Healthy when the probe got through and every step holds: a step
    /// that fails while the probe connects still deserves a look (an MTU,
    /// a shaping qdisc), and a probe that fails is never healthy.
    pub fn healthy(&self) -> bool {
        self.probe.as_ref().is_none_or(|p| p.delivered) && self.steps.iter().all(|s| s.ok)
    }

    pub fn first_broken(&self) -> Option<&Step> {
        self.steps.iter().find(|s| !s.ok)
    }
}

const PODS: &str = "Pods can't communicate";
const SERVICES: &str = "Services not accessible";
const DNS: &str = "DNS resolution issues";

pub use super::target::{parse_target, To};

/// Kernel views, read once per namespace.
struct Views {
    cache: HashMap<String, Result<NetnsView, String>>,
}

impl Views {
    fn get(&mut self, netns: &str) -> &Result<NetnsView, String> {
        self.cache.entry(netns.to_string()).or_insert_with(|| {
            if !Netns::exists(netns) {
                return Err(format!("namespace {netns} does not exist"));
            }
            inspect::view(netns).map_err(|e| e.to_string())
        })
    }
}

fn exec(target: &str, cmd: &str) -> String {
    format!("podlab exec {target} -- {cmd}")
}

fn pod_target(p: &PodPlan) -> String {
    if p.namespace == "default" {
        p.name.clone()
    } else {
        format!("-n {} {}", p.namespace, p.name)
    }
}

/// Why a path cannot be diagnosed at all (exit 2: the input is wrong).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("pod {pod} declares no port, and TO has none: which port should be diagnosed?")]
    NoPort { pod: String },
    #[error("service {service} has no port {port}")]
    NoServicePort { service: String, port: u16 },
}

/// Diagnose `from` → `spec` (`TO[:PORT]`): first one real probe (a
/// `podlab trace` of the same flow), then the seed's checklists, each
/// step judged from the kernel, to explain what the probe saw.
pub fn diagnose(
    plan: &Plan,
    status: Option<&DaemonStatus>,
    from: &PodPlan,
    spec: &str,
    namespace: &str,
    timeout: Duration,
) -> Result<Report, Error> {
    let to =
        super::target::parse_target_from(plan, spec, &super::target::From::Pod(from), namespace);
    let mut r = Report {
        from: from.key(),
        to: spec.to_string(),
        probe: None,
        steps: Vec::new(),
        notes: Vec::new(),
    };
    let mut d = Walk {
        plan,
        status,
        views: Views {
            cache: HashMap::new(),
        },
        trace: None,
    };
    pod_checks(&mut d, from, &mut r.steps);
    // A name is resolved as the pod's resolver would: the probe and the
    // checks then follow the address it gave.
    let to = match to {
        To::Name(name) => {
            let ip = dns_checks(&mut d, from, &name, &mut r.steps);
            match ip {
                None => {
                    r.notes.push(format!(
                        "{name} does not resolve from {}: no probe was sent",
                        from.key()
                    ));
                    return Ok(r);
                }
                Some(ip) => {
                    let (_, port) = super::target::split_port(spec);
                    let with_port = port.map_or(ip.to_string(), |p| format!("{ip}:{p}"));
                    r.to = format!("{spec} ({with_port})");
                    parse_target(plan, &with_port, namespace)
                }
            }
        }
        other => other,
    };
    let port = pick_port(plan, &to, &mut r.notes)?;
    let probe_spec = match &to {
        To::Pod(p, _) => format!("{}:{port}", p.ip),
        To::Service(s, _) => format!("svc/{}:{port}", s.key()),
        To::Address(ip, _) => format!("{ip}:{port}"),
        To::Name(n) => format!("{n}:{port}"),
    };
    let source = super::target::From::Pod(from);
    match trace::destination(plan, &source, &probe_spec, namespace, None, timeout)
        .and_then(|dest| trace::trace(plan, &source, &dest, timeout))
    {
        Ok(t) => {
            r.probe = Some(probe_of(&t, from, &probe_spec));
            d.trace = Some(t);
        }
        Err(e) => r.notes.push(format!(
            "no probe could be sent: {}",
            crate::error_chain(&e)
        )),
    }
    match to {
        To::Pod(dst, _) => {
            pod_checks(&mut d, dst, &mut r.steps);
            serves(&plan.lab, dst, port, PODS, &mut r.steps);
            path_checks(&mut d, from, dst, &mut r.steps);
            policy_checks(&mut d, from, dst, port, PODS, &mut r.steps);
        }
        To::Service(svc, _) => service_checks(&mut d, from, svc, port, &mut r.steps),
        To::Address(ip, _) => {
            // A NodePort or LoadBalancer address leads to its Service.
            match trace::service_port_at(plan, ip, Some(port), None) {
                Some((svc, sp)) => service_checks(&mut d, from, svc, sp.port, &mut r.steps),
                None => address_checks(plan, ip, port, &mut r.steps),
            }
        }
        To::Name(_) => {}
    }
    drift_checks(&d, from, &mut r.steps);
    Ok(r)
}

/// Last, what the checklist does not name: every namespace the probe went
/// through (its trace's hops, the reply's too) against the plan, as
/// whole-lab `diagnose` compares them: an extra route or rule, a static
/// neighbour, a qdisc, a sysctl, rules that differ from the plan's. A
/// finding the steps above already named is not repeated.
fn drift_checks(d: &Walk, from: &PodPlan, steps: &mut Vec<Step>) {
    let mut namespaces: Vec<&str> = Vec::new();
    match &d.trace {
        Some(t) => {
            for h in t.hops.iter().chain(&t.reply) {
                if !namespaces.contains(&h.netns.as_str()) {
                    namespaces.push(&h.netns);
                }
            }
        }
        None => {
            namespaces.push(&from.netns);
            if let Some(n) = d.plan.node(&from.node) {
                namespaces.push(&n.netns);
            }
        }
    }
    let findings = crate::observe::compare_in(d.plan, d.status, &namespaces);
    // What the checklists check (links, addresses, routes, MTU, pods,
    // files) is theirs to name: once one of their steps failed, the same
    // drift is not named twice in other words.
    let named = steps.iter().any(|s| !s.ok);
    let mut clean = Vec::new();
    for ns in namespaces {
        let here: Vec<String> = findings
            .iter()
            .filter(|f| f.location().is_some_and(|(n, _)| n == ns))
            .filter(|f| !(named && checklist_kind(f)))
            .map(|f| {
                let s = f.to_string();
                s.strip_prefix(&format!("{ns}: ")).unwrap_or(&s).to_string()
            })
            .filter(|f| {
                !steps
                    .iter()
                    .any(|s| !s.ok && s.evidence.contains(f.as_str()))
            })
            .collect();
        let (_, what) = trace::describe(d.plan, ns);
        if here.is_empty() {
            clean.push(what);
            continue;
        }
        step(
            steps,
            PODS,
            format!("{what} has what the lab made, and nothing else"),
            false,
            here.join("; "),
            "podlab diagnose".into(),
        );
    }
    if !clean.is_empty() {
        step(
            steps,
            PODS,
            "every namespace on the path has what the lab made, and nothing else".into(),
            true,
            format!("as planned: {}", clean.join(", ")),
            "podlab diagnose".into(),
        );
    }
}

/// A finding of a kind the path's checklists have a step for.
fn checklist_kind(f: &crate::observe::Finding) -> bool {
    use crate::observe::Finding as F;
    matches!(
        f,
        F::MissingNamespace { .. }
            | F::MissingLink { .. }
            | F::LinkDown { .. }
            | F::WrongAddress { .. }
            | F::MissingRoute { .. }
            | F::WrongMtu { .. }
            | F::NotOnBridge { .. }
            | F::PodDown { .. }
            | F::DnsUnhealthy { .. }
            | F::File { .. }
    )
}

/// The port to diagnose: the one given, else the pod's first declared
/// port or the Service's first port, said in a note; never a guess.
fn pick_port(plan: &Plan, to: &To, notes: &mut Vec<String>) -> Result<u16, Error> {
    match to {
        To::Pod(_, Some(p)) | To::Address(_, Some(p)) => Ok(*p),
        To::Service(s, Some(p)) => {
            if s.ports.iter().any(|sp| sp.port == *p) {
                Ok(*p)
            } else {
                Err(Error::NoServicePort {
                    service: s.key(),
                    port: *p,
                })
            }
        }
        To::Pod(p, None) => {
            let first = p.ports.first().ok_or(Error::NoPort { pod: p.key() })?;
            notes.push(format!(
                "no port given: diagnosing {}'s first containerPort, {}/{}",
                p.key(),
                first.port,
                first.protocol
            ));
            Ok(first.port)
        }
        To::Service(s, None) => {
            let first = s.ports.first().ok_or(Error::NoServicePort {
                service: s.key(),
                port: 0,
            })?;
            notes.push(format!(
                "no port given: diagnosing svc/{}'s first port, {}/{}",
                s.key(),
                first.port,
                first.protocol
            ));
            Ok(first.port)
        }
        To::Address(ip, None) => {
            let port = trace::service_port_at(plan, *ip, None, None)
                .map(|(_, p)| {
                    p.node_port
                        .filter(|_| plan.nodes.iter().any(|n| n.ip == *ip))
                        .unwrap_or(p.port)
                })
                .unwrap_or(80);
            notes.push(format!("no port given: diagnosing port {port}"));
            Ok(port)
        }
        // Names are resolved to an address before a port is picked.
        To::Name(_) => Ok(80),
    }
}

fn probe_of(t: &Trace, from: &PodPlan, spec: &str) -> Probe {
    let hop = t
        .verdict
        .hop
        .and_then(|i| t.hops.get(i.saturating_sub(1)))
        .map(|h| h.what.clone());
    let outcome = serde_json::to_value(t.verdict.kind)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    Probe {
        flow: format!(
            "{} {} → {}:{}",
            t.protocol, t.flow.src, t.flow.dst, t.flow.dport
        ),
        outcome,
        delivered: t.delivered(),
        detail: t.verdict.detail.clone(),
        hop,
        show: format!("podlab trace {} {spec}", from.key()),
    }
}

/// What the checks share: the plan, the daemon's word, the namespaces
/// read so far, and the probe's trace.
struct Walk<'a> {
    plan: &'a Plan,
    status: Option<&'a DaemonStatus>,
    views: Views,
    trace: Option<Trace>,
}

fn step(
    steps: &mut Vec<Step>,
    section: &'static str,
    check: String,
    ok: bool,
    evidence: String,
    show: String,
) {
    // Two pods on one node share its checks: each is said once.
    if steps.iter().any(|s| s.check == check) {
        return;
    }
    steps.push(Step {
        section,
        check,
        ok,
        evidence,
        show,
        inferred: false,
    });
}

fn pod_checks(d: &mut Walk, pod: &PodPlan, steps: &mut Vec<Step>) {
    let (plan, status, views) = (d.plan, d.status, &mut d.views);
    let live = status.and_then(|s| s.pod(&pod.namespace, &pod.name));
    let (ok, evidence) = match (Netns::exists(&pod.netns), live) {
        (false, _) => (false, format!("its namespace {} is gone", pod.netns)),
        (true, None) => (
            false,
            "the lab's daemon does not report it (is the daemon running?)".into(),
        ),
        (true, Some(s)) => (
            s.status == "Running",
            format!(
                "{} {} on {}, restarts {}",
                s.status, s.ready, s.node, s.restarts
            ),
        ),
    };
    step(
        steps,
        PODS,
        format!("pod {} is running", pod.key()),
        ok,
        evidence,
        "podlab get pods -A -o wide".into(),
    );
    let want = format!("{}/{}", pod.ip, pod.prefix);
    let (ok, evidence) = match views.get(&pod.netns) {
        Err(e) => (false, e.clone()),
        Ok(v) => match v.link(ETH0) {
            None => (false, "no eth0".into()),
            Some(l) if !l.up => (false, "eth0 is down".into()),
            Some(_) => {
                let have: Vec<String> = v
                    .addresses_of(ETH0)
                    .iter()
                    .map(|a| format!("{}/{}", a.ip, a.prefix))
                    .collect();
                (
                    have.contains(&want),
                    format!(
                        "eth0 up, {}",
                        if have.is_empty() {
                            "no address".into()
                        } else {
                            have.join(", ")
                        }
                    ),
                )
            }
        },
    };
    step(
        steps,
        PODS,
        format!("pod {}: eth0 is up with {want}", pod.key()),
        ok,
        evidence,
        exec(&pod_target(pod), "ip addr"),
    );
    let (ok, evidence) = match views.get(&pod.netns) {
        Err(e) => (false, e.clone()),
        Ok(v) => {
            let default = v.routes.iter().find(|r| r.prefix == 0);
            match default {
                Some(r) if r.gateway == Some(pod.gateway) => {
                    (true, format!("default via {}", pod.gateway))
                }
                Some(r) => (false, format!("default via {:?}", r.gateway)),
                None => (false, "no default route".into()),
            }
        }
    };
    step(
        steps,
        PODS,
        format!("pod {}: default route via {}", pod.key(), pod.gateway),
        ok,
        evidence,
        exec(&pod_target(pod), "ip route"),
    );
    let Some(node) = plan.node(&pod.node) else {
        return;
    };
    let (ok, evidence) = match views.get(&node.netns) {
        Err(e) => (false, e.clone()),
        Ok(v) => match v.link(&pod.host_veth) {
            None => (false, format!("no {} on node {}", pod.host_veth, node.name)),
            Some(l) if !l.up => (false, format!("{} is down", pod.host_veth)),
            Some(l) if l.master != v.link(POD_BRIDGE).map(|b| b.index) => (
                false,
                format!("{} is not attached to {POD_BRIDGE}", pod.host_veth),
            ),
            Some(_) => (true, format!("{} up on {POD_BRIDGE}", pod.host_veth)),
        },
    };
    step(
        steps,
        PODS,
        format!(
            "CNI: pod {}'s veth is attached on node {}",
            pod.key(),
            node.name
        ),
        ok,
        evidence,
        exec(&format!("node/{}", node.name), "ip -br link"),
    );
    node_checks(plan, node, views, steps);
}

fn node_checks(plan: &Plan, node: &NodePlan, views: &mut Views, steps: &mut Vec<Step>) {
    let target = format!("node/{}", node.name);
    let (ok, evidence) = match views.get(&node.netns) {
        Err(e) => (false, e.clone()),
        Ok(v) => {
            let bridge = v.link(POD_BRIDGE).map(|l| l.up);
            let eth0 = v.links.iter().find(|l| l.index == ETH0_INDEX).map(|l| l.up);
            match (bridge, eth0) {
                (Some(true), Some(true)) => (true, format!("{POD_BRIDGE} and eth0 up")),
                (b, e) => (
                    false,
                    format!("{POD_BRIDGE}: {}, eth0: {}", updown(b), updown(e)),
                ),
            }
        }
    };
    step(
        steps,
        PODS,
        format!("CNI: node {}'s {POD_BRIDGE} and eth0 are up", node.name),
        ok,
        evidence,
        exec(&target, "ip -br link"),
    );
    let want = format!("{}/{}", node.ip, plan.net.cidr.prefix_len());
    let (ok, evidence) = match views.get(&node.netns) {
        Err(e) => (false, e.clone()),
        Ok(v) => {
            let have: Vec<String> = v
                .addresses
                .iter()
                .filter(|a| a.index == ETH0_INDEX)
                .map(|a| format!("{}/{}", a.ip, a.prefix))
                .collect();
            (
                have.contains(&want),
                if have.is_empty() {
                    "eth0 has no address".into()
                } else {
                    format!("eth0 has {}", have.join(", "))
                },
            )
        }
    };
    step(
        steps,
        PODS,
        format!("CNI: node {} has its address {want} on eth0", node.name),
        ok,
        evidence,
        exec(&target, "ip -br addr show eth0"),
    );
    let forwarding = netns::run_in(&node.netns, || {
        sysctl::get(&node.netns, "net.ipv4.ip_forward")
    });
    let (ok, evidence) = match forwarding {
        Ok(Ok(v)) => (v == "1", format!("net.ipv4.ip_forward = {v}")),
        Ok(Err(e)) | Err(e) => (false, e.to_string()),
    };
    step(
        steps,
        PODS,
        format!("CNI: node {} forwards packets", node.name),
        ok,
        evidence,
        exec(&target, "sysctl net.ipv4.ip_forward"),
    );
    let (ok, evidence) = match views.get(&node.netns) {
        Err(e) => (false, e.clone()),
        Ok(v) => {
            let wrong: Vec<String> = [ETH0, POD_BRIDGE]
                .iter()
                .filter_map(|l| v.link(l))
                .filter(|l| l.mtu != plan.mtu)
                .map(|l| format!("{} has {}", l.name, l.mtu))
                .collect();
            if wrong.is_empty() {
                (true, format!("eth0 and {POD_BRIDGE}: {}", plan.mtu))
            } else {
                (
                    false,
                    format!(
                        "{}, the rest of the lab {}: packets larger than the smallest are dropped",
                        wrong.join(", "),
                        plan.mtu
                    ),
                )
            }
        }
    };
    step(
        steps,
        PODS,
        format!(
            "CNI: node {}'s links have the lab's MTU ({})",
            node.name, plan.mtu
        ),
        ok,
        evidence,
        exec(&target, "ip link show eth0"),
    );
    // The node's view holds its qdiscs, read on the same connection.
    let (ok, evidence) = match views.get(&node.netns) {
        Err(e) => (false, e.clone()),
        Ok(v) => {
            let names = |i: u32| {
                v.links
                    .iter()
                    .find(|l| l.index == i)
                    .map_or_else(|| i.to_string(), |l| l.name.clone())
            };
            let shaped: Vec<String> = v
                .qdiscs
                .iter()
                .filter(|q| q.kind != "noqueue")
                .map(|q| format!("{} on {}", q.kind, names(q.index)))
                .collect();
            if shaped.is_empty() {
                (true, "every link sends without a queue (noqueue)".into())
            } else {
                (
                    false,
                    format!(
                        "{}: traffic is shaped (slowed, delayed or dropped)",
                        shaped.join(", ")
                    ),
                )
            }
        }
    };
    step(
        steps,
        PODS,
        format!("node {} does not shape traffic", node.name),
        ok,
        evidence,
        exec(&target, "tc qdisc show"),
    );
    let (ok, evidence) = match nft::list_ruleset(&node.netns) {
        Err(e) => (false, e.to_string()),
        Ok(listing) => {
            let ours = [
                format!("ip {}", kubeproxy::TABLE),
                format!("ip {}", kubeproxy::CNI_TABLE),
                format!("ip {}", netpol::TABLE),
            ];
            let other: Vec<String> = crate::observe::rules::of_listing(&listing)
                .into_keys()
                .filter(|k| k.2 == "table")
                .map(|k| format!("{} {}", k.0, k.1))
                .filter(|t| !ours.contains(t))
                .collect();
            if other.is_empty() {
                (true, "only kube-proxy, cni and network-policy".into())
            } else {
                (
                    false,
                    format!("also table {}: it may drop traffic", other.join(", table ")),
                )
            }
        }
    };
    step(
        steps,
        PODS,
        format!(
            "node {}'s nftables hold only the cluster's tables",
            node.name
        ),
        ok,
        evidence,
        exec(&target, "nft list ruleset"),
    );
}

fn updown(v: Option<bool>) -> &'static str {
    match v {
        None => "missing",
        Some(true) => "up",
        Some(false) => "down",
    }
}

/// Whether anything in the pod's namespace listens on `port`, from the
/// kernel's socket table (podlab's echo, a process of the pod's, or
/// anyone's), for the protocol the pod declares on that port (else TCP);
/// then whose the listener is.
fn serves(lab: &str, pod: &PodPlan, port: u16, section: &'static str, steps: &mut Vec<Step>) {
    let udp = pod
        .ports
        .iter()
        .find(|p| p.port == port)
        .is_some_and(|p| p.protocol == Protocol::Udp);
    let label = format!("pod {}", pod.key());
    let declared = format!("; the pod declares {}", ports_of(pod));
    let show = exec(&pod_target(pod), "ss -ltnup");
    if listens(
        &pod.netns, &label, port, udp, &declared, section, &show, steps,
    ) {
        owner_check(lab, &pod.netns, &label, port, udp, section, &show, steps);
    }
}

/// `LABEL listens on PORT/PROTO`, from the namespace's socket table:
/// whether it does.
#[allow(clippy::too_many_arguments)]
fn listens(
    netns: &str,
    label: &str,
    port: u16,
    udp: bool,
    more: &str,
    section: &'static str,
    show: &str,
    steps: &mut Vec<Step>,
) -> bool {
    let proto = if udp { "udp" } else { "tcp" };
    let (ok, evidence) = match inspect::listening(netns) {
        Err(e) => (false, crate::error_chain(&e)),
        Ok(l) => {
            let all: Vec<String> = l
                .iter()
                .filter(|x| !x.ip.is_loopback())
                .map(|x| format!("{}/{}", x.port, if x.udp { "udp" } else { "tcp" }))
                .collect();
            let listed = if all.is_empty() {
                "nothing".to_string()
            } else {
                all.join(", ")
            };
            if l.iter().any(|x| x.takes(udp, port)) {
                (true, format!("listening: {listed}"))
            } else {
                (
                    false,
                    format!("nothing listens on {port}/{proto} (listening: {listed}{more})"),
                )
            }
        }
    };
    step(
        steps,
        section,
        format!("{label} listens on {port}/{proto}"),
        ok,
        evidence,
        show.to_string(),
    );
    ok
}

/// An address that is no pod's and no Service's: a node's, a client's
/// (`external`, `lb`), or one outside the lab. What listens there is
/// read from its namespace, as for a pod.
fn address_checks(plan: &Plan, ip: Ipv4Addr, port: u16, steps: &mut Vec<Step>) {
    let node = plan.nodes.iter().find(|n| n.ip == ip).map(|n| {
        (
            n.netns.as_str(),
            format!("node {}", n.name),
            format!("node/{}", n.name),
        )
    });
    let client = plan
        .clients
        .iter()
        .find(|c| c.ip == ip)
        .map(|c| (c.netns.as_str(), c.name.clone(), c.name.clone()));
    match node.or(client) {
        Some((netns, label, target)) => {
            let show = exec(&target, "ss -ltnu");
            listens(netns, &label, port, false, "", PODS, &show, steps);
        }
        None => step(
            steps,
            PODS,
            format!("{ip} is an address of the lab"),
            false,
            format!("no pod, node, client or Service of the lab has {ip}: the probe went to wherever the routes send it"),
            "podlab get pods,svc,nodes -A -o wide".into(),
        ),
    }
}

/// Whose listener takes `port`: the pod's when the process holding the
/// socket is the lab's daemon or one it started; anyone else's (a
/// learner's own server) answers in the pod's place, and the step says so.
#[allow(clippy::too_many_arguments)]
fn owner_check(
    lab: &str,
    netns: &str,
    label: &str,
    port: u16,
    udp: bool,
    section: &'static str,
    show: &str,
    steps: &mut Vec<Step>,
) {
    let proto = if udp { "udp" } else { "tcp" };
    let inodes = match socket_inodes(netns, port, udp) {
        Ok(i) if !i.is_empty() => i,
        _ => return,
    };
    let owners = socket_owners(&inodes);
    if owners.is_empty() {
        return;
    }
    let foreign: Vec<String> = owners
        .iter()
        .filter(|(pid, _)| !started_by_lab(*pid, lab))
        .map(|(pid, comm)| format!("{comm} (pid {pid})"))
        .collect();
    let evidence = if foreign.is_empty() {
        format!("held by the lab's daemon (pid {})", owners[0].0)
    } else {
        format!(
            "held by {}, which the lab did not start: it answers in the pod's place",
            foreign.join(", ")
        )
    };
    step(
        steps,
        section,
        format!("the listener on {port}/{proto} is {label}'s own"),
        foreign.is_empty(),
        evidence,
        show.to_string(),
    );
}

/// The inodes of the listening sockets on `port` in a namespace, from its
/// `/proc/net/tcp` (or udp): the tenth field of each line.
fn socket_inodes(netns: &str, port: u16, udp: bool) -> Result<Vec<u64>, String> {
    let file = if udp { "udp" } else { "tcp" };
    let text = netns::run_in(netns, || {
        std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
    })
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let state = if udp { "07" } else { "0A" };
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (_, p) = f.get(1)?.split_once(':')?;
            (u16::from_str_radix(p, 16).ok()? == port && *f.get(3)? == state)
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .collect())
}

/// The processes holding any of the sockets: pid and command name.
fn socket_owners(inodes: &[u64]) -> Vec<(u32, String)> {
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in procs.filter_map(|e| e.ok()) {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds.filter_map(|e| e.ok()).any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|l| wanted.iter().any(|w| l.as_os_str() == w.as_str()))
        });
        if holds {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            out.push((pid, comm.trim().to_string()));
        }
    }
    out
}

/// Whether `pid` is the lab's daemon (`podlab __daemon LAB`) or runs
/// under it.
fn started_by_lab(pid: u32, lab: &str) -> bool {
    let mut pid = pid;
    for _ in 0..64 {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args
            .windows(2)
            .any(|w| w[0] == b"__daemon" && w[1] == lab.as_bytes())
        {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The parent is the second field after the command's closing paren.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        match parent {
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

fn ports_of(pod: &PodPlan) -> String {
    if pod.ports.is_empty() {
        return "no ports".into();
    }
    pod.ports
        .iter()
        .map(|p| format!("{}/{}", p.port, p.protocol))
        .collect::<Vec<_>>()
        .join(", ")
}

fn path_checks(d: &mut Walk, from: &PodPlan, to: &PodPlan, steps: &mut Vec<Step>) {
    let (plan, views) = (d.plan, &mut d.views);
    if from.node == to.node {
        return;
    }
    for (a, b) in [(from, to), (to, from)] {
        let (Some(na), Some(nb)) = (plan.node(&a.node), plan.node(&b.node)) else {
            continue;
        };
        let (ok, evidence) = match views.get(&na.netns) {
            Err(e) => (false, e.clone()),
            Ok(v) => {
                let r = v.routes.iter().find(|r| {
                    r.dst == nb.pod_cidr.network() && r.prefix == nb.pod_cidr.prefix_len()
                });
                match r {
                    Some(r) if r.gateway == Some(nb.ip) => {
                        (true, format!("{} via {}", nb.pod_cidr, nb.ip))
                    }
                    Some(r) => {
                        // The route as `ip` writes it: its type says why
                        // it has no gateway (a blackhole, a prohibit).
                        let text = v
                            .objects
                            .routes
                            .iter()
                            .find(|o| {
                                o.table == crate::kernel::objects::MAIN_TABLE
                                    && o.dst == r.dst
                                    && o.prefix == r.prefix
                            })
                            .map_or_else(
                                || {
                                    r.gateway
                                        .map_or(format!("{} without a gateway", nb.pod_cidr), |g| {
                                            format!("{} via {g}", nb.pod_cidr)
                                        })
                                },
                                |o| o.text.clone(),
                            );
                        (false, format!("{text}, not via {}", nb.ip))
                    }
                    None => (false, format!("no route to {}", nb.pod_cidr)),
                }
            }
        };
        step(
            steps,
            PODS,
            format!(
                "CNI: node {} routes {}'s pod CIDR {} via {}",
                na.name, nb.name, nb.pod_cidr, nb.ip
            ),
            ok,
            evidence,
            exec(&format!("node/{}", na.name), "ip route"),
        );
    }
}

/// NetworkPolicy between two pods: from the probe when it decided the
/// matter (its trace names the policies whose counters moved), else
/// inferred from the plan, and said so.
fn policy_checks(
    d: &mut Walk,
    from: &PodPlan,
    to: &PodPlan,
    port: u16,
    section: &'static str,
    steps: &mut Vec<Step>,
) {
    let plan = d.plan;
    let limits = |pod: &PodPlan, t: PolicyType, word: &str| {
        let by: Vec<String> = netpol::selecting(plan, pod, t)
            .iter()
            .map(|p| p.key())
            .collect();
        if by.is_empty() {
            format!("no policy limits {}'s {word}", pod.key())
        } else {
            format!("{word} of {} limited by {}", pod.key(), by.join(", "))
        }
    };
    let context = format!(
        "{}; {}",
        limits(from, PolicyType::Egress, "egress"),
        limits(to, PolicyType::Ingress, "ingress")
    );
    let check = format!(
        "network policies allow {} -> {}:{port}",
        from.key(),
        to.key()
    );
    let show = "podlab get netpol -A".to_string();
    let isolated = if netpol::selecting(plan, to, PolicyType::Ingress).is_empty() {
        (PolicyType::Egress, from)
    } else {
        (PolicyType::Ingress, to)
    };
    let counter = netpol::drop_counter(isolated.0, &isolated.1.namespace, &isolated.1.name);
    let dropped_so_far = || {
        crate::kernel::counters::read(plan, netpol::TABLE)
            .ok()
            .and_then(|c| c.get(&counter).map(|c| c.packets))
            .map(|n| format!(" ({n} packets dropped so far, counter {counter})"))
            .unwrap_or_default()
    };
    let observed = d.trace.as_ref().and_then(|t| match t.verdict.kind {
        VerdictKind::Dropped if !t.verdict.policies.is_empty() => Some((
            false,
            format!(
                "the probe was dropped by {}{}; {context}",
                t.verdict.policies.join(", "),
                dropped_so_far()
            ),
        )),
        VerdictKind::Delivered => Some((
            true,
            format!("the probe got through every policy; {context}"),
        )),
        _ => None,
    });
    if let Some((ok, evidence)) = observed {
        step(steps, section, check, ok, evidence, show);
        return;
    }
    let ok = netpol::permitted(plan, from.ip, to.ip, Protocol::Tcp, port);
    let mut evidence = format!("{context}; by the plan, this flow is ");
    evidence.push_str(if ok { "allowed" } else { "dropped" });
    if !ok {
        evidence.push_str(&dropped_so_far());
    }
    steps.push(Step {
        section,
        check,
        ok,
        evidence,
        show,
        inferred: true,
    });
}

fn service_checks(
    d: &mut Walk,
    from: &PodPlan,
    svc: &ServicePlan,
    port: u16,
    steps: &mut Vec<Step>,
) {
    let (plan, status) = (d.plan, d.status);
    let sp = svc.ports.iter().position(|p| p.port == port);
    step(
        steps,
        SERVICES,
        format!("service {} has port {port}", svc.key()),
        sp.is_some(),
        format!(
            "ports: {}",
            svc.ports
                .iter()
                .map(|p| format!("{}/{}", p.port, p.protocol))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!("podlab get svc -n {} {}", svc.namespace, svc.name),
    );
    let ready: Vec<&crate::plan::EndpointPlan> = svc
        .endpoints
        .iter()
        .filter(|e| {
            status
                .and_then(|s| s.pod(&e.namespace, &e.pod))
                .is_some_and(crate::runtime::status::PodStatus::is_ready)
        })
        .collect();
    let evidence = if svc.endpoints.is_empty() {
        format!(
            "selector {} matches no pod",
            svc.selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    } else {
        format!(
            "{} of {} selected pods ready: {}",
            ready.len(),
            svc.endpoints.len(),
            ready
                .iter()
                .map(|e| e.pod.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    step(
        steps,
        SERVICES,
        format!("service {} has ready endpoints", svc.key()),
        !ready.is_empty(),
        evidence,
        format!("podlab get endpoints -n {} {}", svc.namespace, svc.name),
    );
    let id = format!("{}/{}/", svc.namespace, svc.name);
    let listing = match plan.node(&from.node) {
        Some(node) => nft::list_table(&node.netns, kubeproxy::TABLE),
        None => Err(crate::kernel::Error::Nft {
            netns: from.node.clone(),
            message: "no such node".into(),
        }),
    };
    if let Some(node) = plan.node(&from.node) {
        let (ok, evidence) = kube_proxy_rules(plan, status, node, &id, ready.len());
        step(
            steps,
            SERVICES,
            format!("kube-proxy on node {} has {}'s rules", node.name, svc.key()),
            ok,
            evidence,
            exec(
                &format!("node/{}", node.name),
                &format!("nft list table ip {}", kubeproxy::TABLE),
            ),
        );
    }
    if let (Some(node), Ok(text)) = (plan.node(&from.node), &listing) {
        let want: Vec<String> = ready.iter().map(|e| e.ip.to_string()).collect();
        let stale: Vec<String> = dnat_targets(text, &id)
            .into_iter()
            .filter(|ip| !want.contains(ip))
            .collect();
        step(
            steps,
            SERVICES,
            format!(
                "kube-proxy on node {} sends {} only to its ready endpoints",
                node.name,
                svc.key()
            ),
            stale.is_empty(),
            if stale.is_empty() {
                format!(
                    "DNAT to {}",
                    if want.is_empty() {
                        "nothing".into()
                    } else {
                        want.join(", ")
                    }
                )
            } else {
                format!(
                    "stale endpoint {}: no ready pod has it (connections sent there time out)",
                    stale.join(", ")
                )
            },
            exec(
                &format!("node/{}", node.name),
                &format!("nft list table ip {}", kubeproxy::TABLE),
            ),
        );
    }
    // Then the path to an endpoint, as to a pod: the one the probe's
    // DNAT chose when there was a probe, else the first ready one.
    let chosen = d
        .trace
        .as_ref()
        .and_then(|t| t.endpoint.as_ref())
        .and_then(|e| ready.iter().find(|r| r.ip == e.ip));
    if let (Some(e), Some(i)) = (chosen.or(ready.first()), sp) {
        if let Some(dst) = plan.pod(&e.namespace, &e.pod) {
            let tp = e.ports.get(i).copied().flatten();
            if let Some(tp) = tp {
                serves(&plan.lab, dst, tp, SERVICES, steps);
            }
            pod_checks(d, dst, steps);
            path_checks(d, from, dst, steps);
            policy_checks(d, from, dst, tp.unwrap_or(port), SERVICES, steps);
        }
    }
}

/// Whether the node's kube-proxy table has the shape the plan loads, in
/// what concerns this service (its chains) or every service (the maps).
fn kube_proxy_rules(
    plan: &Plan,
    status: Option<&DaemonStatus>,
    node: &NodePlan,
    id: &str,
    endpoints: usize,
) -> (bool, String) {
    use crate::observe::rules;
    let listing = match nft::list_ruleset(&node.netns) {
        Ok(v) => v,
        Err(e) => return (false, format!("cannot list the rules: {e}")),
    };
    let view = crate::kernel::services::ready_view(plan, &crate::observe::not_ready(plan, status));
    let want = crate::kernel::apply::rulesets(&view)
        .into_iter()
        .find(|(n, _)| *n == node.netns)
        .and_then(|(_, json)| serde_json::from_str(&json).ok())
        .map(|v| rules::of_commands(&v))
        .unwrap_or_default();
    let table = ("ip".to_string(), kubeproxy::TABLE.to_string());
    let diffs: Vec<String> = rules::differences(&want, &rules::of_listing(&listing))
        .remove(&table)
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.contains(id) || !d.starts_with("chain "))
        .collect();
    if diffs.is_empty() {
        (
            true,
            format!(
                "rules for {} present, {endpoints} endpoint(s)",
                id.trim_end_matches('/')
            ),
        )
    } else {
        (false, diffs.join("; "))
    }
}

/// The DNS checklist, then the name resolved as the pod's resolver would
/// (its resolv.conf, its search path): the address it got, if any.
fn dns_checks(d: &mut Walk, from: &PodPlan, name: &str, steps: &mut Vec<Step>) -> Option<Ipv4Addr> {
    let (plan, status) = (d.plan, d.status);
    let coredns = plan
        .pods
        .iter()
        .find(|p| p.namespace == "kube-system" && p.name.starts_with("coredns"));
    match coredns {
        Some(c) => {
            let live = status.and_then(|s| s.pod(&c.namespace, &c.name));
            step(
                steps,
                DNS,
                format!("CoreDNS pod {} is running", c.key()),
                live.is_some_and(|s| s.status == "Running") && Netns::exists(&c.netns),
                live.map_or("not reported by the daemon".into(), |s| {
                    format!("{} {}", s.status, s.ready)
                }),
                "podlab get pods -n kube-system".into(),
            );
        }
        None => step(
            steps,
            DNS,
            "a CoreDNS pod exists".into(),
            false,
            "the lab has no coredns pod".into(),
            "podlab get pods -A".into(),
        ),
    }
    if let Some(svc) = plan
        .services
        .iter()
        .find(|s| s.namespace == "kube-system" && s.name == "kube-dns")
    {
        service_checks(d, from, svc, 53, steps);
    }
    let path = crate::kernel::apply::etc_dir(&from.netns).join("resolv.conf");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let want = format!("nameserver {}", plan.dns_ip);
    step(
        steps,
        DNS,
        format!(
            "pod {}'s resolv.conf points at kube-dns ({})",
            from.key(),
            plan.dns_ip
        ),
        text.lines().any(|l| l.trim() == want),
        if text.is_empty() {
            format!("no {}", path.display())
        } else {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("; ")
        },
        exec(&pod_target(from), "cat /etc/resolv.conf"),
    );
    let server = crate::probe::dns::nameserver(&from.netns).unwrap_or(plan.dns_ip);
    let names = crate::probe::dns::candidates(name, &from.namespace, &plan.cluster_domain);
    let answer = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(crate::probe::dns::resolve(
                &from.netns,
                server,
                &names,
                crate::lab::expect::RecordType::A,
                std::time::Duration::from_secs(2),
            ))
        });
    let resolved = match &answer {
        Ok((_, a)) if a.rcode == 0 => a.records.iter().find_map(|r| r.parse().ok()),
        _ => None,
    };
    let (ok, evidence) = match answer {
        Ok((q, a)) if a.rcode == 0 && !a.records.is_empty() => {
            (true, format!("{q}: {}", a.records.join(", ")))
        }
        Ok((q, a)) => (
            false,
            format!("{q}: {}", crate::probe::dns::rcode_name(a.rcode)),
        ),
        Err(e) => (false, e),
    };
    step(
        steps,
        DNS,
        format!("{name} resolves from pod {}", from.key()),
        ok,
        evidence,
        exec(&pod_target(from), &format!("nslookup {name}")),
    );
    resolved
}

/// Where kube-proxy's chains for a service (`ns/name/` in their names)
/// send connections: every `dnat to ADDR` in them, as listed by nft.
fn dnat_targets(listing: &str, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in listing.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("chain ") {
            inside = name.contains(id);
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(rest) = t.split("dnat to ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            let ip = addr.split(':').next().unwrap_or_default().to_string();
            if !ip.is_empty() && !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dnat_targets_are_read_from_the_service_chains_only() {
        let listing = "table ip kube-proxy {
	chain service-AAA-default/web/tcp/http {
		numgen random mod 2 vmap { 0 : goto endpoint-X, 1 : goto endpoint-Y }
		meta l4proto tcp dnat to 10.244.1.2:8080 comment \"endpoint default/web-1 10.244.1.2:8080\"
	}
	chain endpoint-BBB-default/web/tcp/http__10.244.2.9/8080 {
		meta l4proto tcp dnat to 10.244.2.9:8080
	}
	chain service-CCC-default/other/tcp/ {
		meta l4proto tcp dnat to 10.244.1.7:80
	}
}";
        assert_eq!(
            super::dnat_targets(listing, "default/web/"),
            vec!["10.244.1.2", "10.244.2.9"]
        );
        assert_eq!(
            super::dnat_targets(listing, "default/other/"),
            vec!["10.244.1.7"]
        );
        assert!(super::dnat_targets(listing, "default/none/").is_empty());
    }
}
