//! `FROM` and `TO[:PORT]` of `diagnose` and `trace`, resolved against the
//! plan of the running lab. Pure: a name the plan does not know is left for
//! the caller to resolve (by DNS, as a pod would).

use std::net::Ipv4Addr;

use crate::plan::{ClientPlan, NodePlan, Plan, PodPlan, ServicePlan};

/// What `TO` names.
pub enum To<'a> {
    Pod(&'a PodPlan, Option<u16>),
    Service(&'a ServicePlan, Option<u16>),
    /// An address the plan gives no pod or ClusterIP: a node's (a
    /// NodePort), a LoadBalancer IP, `external`, `lb`, or one the lab does
    /// not know. Never resolved as a name.
    Address(Ipv4Addr, Option<u16>),
    /// Anything else: a DNS name, resolved as the source's resolver would.
    Name(String),
}

/// Where traffic starts.
#[derive(Debug, Clone, Copy)]
pub enum From<'a> {
    Pod(&'a PodPlan),
    Node(&'a NodePlan),
    /// `external` (the client on the node network) or `lb`.
    Client(&'a ClientPlan),
}

impl From<'_> {
    pub fn netns(&self) -> &str {
        match self {
            From::Pod(p) => &p.netns,
            From::Node(n) => &n.netns,
            From::Client(c) => &c.netns,
        }
    }

    /// How messages name it: `default/pod-1`, `node/node-1`, `external`.
    pub fn label(&self) -> String {
        match self {
            From::Pod(p) => p.key(),
            From::Node(n) => format!("node/{}", n.name),
            From::Client(c) => c.name.clone(),
        }
    }
}

/// `FROM` as a pod: `NAME`, `pod/NAME` or `NS/NAME` (names without a
/// namespace are in `namespace`).
pub fn pod_source<'a>(plan: &'a Plan, spec: &str, namespace: &str) -> Result<&'a PodPlan, String> {
    let (ns, name) = spec.split_once('/').unwrap_or((namespace, spec));
    plan.pod(ns, name)
        .or_else(|| {
            // `pod/NAME`, unless a namespace is really called `pod`.
            spec.strip_prefix("pod/")
                .and_then(|rest| pod_source(plan, rest, namespace).ok())
        })
        .ok_or_else(|| format!("pod {ns}/{name} not found"))
}

/// `FROM` as anything that can send: a pod, `node/NAME`, `external` or
/// `lb` (a pod named like those is `pod/NAME`).
pub fn source<'a>(plan: &'a Plan, spec: &str, namespace: &str) -> Result<From<'a>, String> {
    if let Some(n) = spec.strip_prefix("node/") {
        return plan
            .node(n)
            .map(From::Node)
            .ok_or_else(|| format!("node {n} not found"));
    }
    if let Some(c) = plan.clients.iter().find(|c| c.name == spec) {
        return Ok(From::Client(c));
    }
    pod_source(plan, spec, namespace).map(From::Pod)
}

/// Resolve `TO[:PORT]` against the plan: a pod (`NAME`, `NS/NAME`,
/// `pod/NAME`), a service (`svc/NAME`, `svc/NS/NAME`), `node/NAME`,
/// `external`, `lb`, an IP, or else a name for the caller to resolve.
pub fn parse_target<'a>(plan: &'a Plan, spec: &str, namespace: &str) -> To<'a> {
    let (name, port) = split_port(spec);
    if let Some(n) = name.strip_prefix("node/").and_then(|n| plan.node(n)) {
        return To::Address(n.ip, port);
    }
    if let Some(c) = plan.clients.iter().find(|c| c.name == name) {
        return To::Address(c.ip, port);
    }
    if let Some(rest) = name.strip_prefix("svc/") {
        let (ns, n) = rest.split_once('/').unwrap_or((namespace, rest));
        if let Some(s) = plan
            .services
            .iter()
            .find(|s| s.namespace == ns && s.name == n)
        {
            return To::Service(s, port);
        }
    }
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        if let Some(p) = plan.pods.iter().find(|p| p.ip == ip) {
            return To::Pod(p, port);
        }
        if let Some(s) = plan.services.iter().find(|s| s.cluster_ip == Some(ip)) {
            return To::Service(s, port);
        }
        return To::Address(ip, port);
    }
    // A bare name is what `curl NAME` in the pod reaches: when a Service
    // has that name, the name as its resolver resolves it (DNS, then the
    // Service), else the pod; `pod/NAME` and `NS/NAME` are always pods.
    if !name.contains('/')
        && plan
            .services
            .iter()
            .any(|s| s.namespace == namespace && s.name == name)
    {
        return To::Name(name.to_string());
    }
    let bare = name.strip_prefix("pod/").unwrap_or(name);
    let (ns, n) = bare.split_once('/').unwrap_or((namespace, bare));
    if let Some(p) = plan.pod(ns, n) {
        return To::Pod(p, port);
    }
    To::Name(name.to_string())
}

/// `NAME:PORT` → (`NAME`, `PORT`); a colon not followed by a port number is
/// part of the name.
pub fn split_port(spec: &str) -> (&str, Option<u16>) {
    match spec.rsplit_once(':') {
        Some((n, p)) => match p.parse::<u16>() {
            Ok(port) => (n, Some(port)),
            Err(_) => (spec, None),
        },
        None => (spec, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_split_off_only_when_it_is_one() {
        assert_eq!(split_port("svc/web:80"), ("svc/web", Some(80)));
        assert_eq!(split_port("10.96.0.10"), ("10.96.0.10", None));
        assert_eq!(split_port("a:b"), ("a:b", None));
        assert_eq!(split_port("a:70000"), ("a:70000", None));
    }
}
