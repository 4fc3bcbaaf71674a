//! From the names of an assertion to namespaces and addresses, against the
//! plan of the running lab. Pure.

use std::net::Ipv4Addr;

use crate::lab::expect::{service_of_dns, Source, SourceIp, Target};
use crate::lab::Protocol;
use crate::plan::{Plan, PodPlan, ServicePlan};

/// Where a probe starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    pub netns: String,
    /// Every address the source may appear with: a node's own IP, and its
    /// `cni0` address for traffic it sends to its own pods.
    pub ips: Vec<Ipv4Addr>,
    /// The namespace whose DNS search path applies.
    pub search_ns: String,
}

/// Where a probe goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct To {
    pub ip: Ipv4Addr,
    /// Served by podlab's echo (or a Service, usually in front of one): an
    /// HTTP exchange tells who answered.
    pub echo: bool,
}

/// A pod by name, or a Deployment's first replica.
fn pod<'p>(plan: &'p Plan, namespace: &str, name: &str) -> Option<&'p PodPlan> {
    plan.pod(namespace, name).or_else(|| {
        plan.pods
            .iter()
            .find(|p| p.namespace == namespace && p.owner.as_deref() == Some(name))
    })
}

fn service<'p>(plan: &'p Plan, namespace: &str, name: &str) -> Result<&'p ServicePlan, String> {
    plan.services
        .iter()
        .find(|s| s.namespace == namespace && s.name == name)
        .ok_or_else(|| format!("no Service {namespace}/{name} in the running lab"))
}

fn cluster_ip(s: &ServicePlan) -> Result<Ipv4Addr, String> {
    s.cluster_ip.ok_or_else(|| {
        format!(
            "Service {} has no cluster IP (headless or ExternalName)",
            s.key()
        )
    })
}

fn client<'p>(plan: &'p Plan, name: &str) -> Result<&'p crate::plan::ClientPlan, String> {
    plan.clients
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("the running lab has no `{name}`"))
}

pub fn source(plan: &Plan, s: &Source) -> Result<From, String> {
    match s {
        Source::Pod { namespace, name } => {
            let p = pod(plan, namespace, name)
                .ok_or_else(|| format!("no pod {namespace}/{name} in the running lab"))?;
            Ok(From {
                netns: p.netns.clone(),
                ips: vec![p.ip],
                search_ns: p.namespace.clone(),
            })
        }
        Source::Node(n) => {
            let node = plan
                .node(n)
                .ok_or_else(|| format!("no node {n} in the running lab"))?;
            Ok(From {
                netns: node.netns.clone(),
                ips: vec![node.ip, node.pod_gateway],
                search_ns: "default".into(),
            })
        }
        Source::External | Source::Lb => {
            let name = if *s == Source::External {
                "external"
            } else {
                "lb"
            };
            let c = client(plan, name)?;
            Ok(From {
                netns: c.netns.clone(),
                ips: vec![c.ip],
                search_ns: "default".into(),
            })
        }
    }
}

fn pod_target(p: &PodPlan, port: u16, protocol: Protocol) -> To {
    To {
        ip: p.ip,
        echo: p
            .ports
            .iter()
            .any(|pp| pp.port == port && pp.protocol == protocol),
    }
}

pub fn target(
    plan: &Plan,
    t: &Target,
    from: &From,
    port: u16,
    protocol: Protocol,
) -> Result<To, String> {
    let plain = |ip| To { ip, echo: false };
    let svc = |s: &ServicePlan| {
        Ok(To {
            ip: cluster_ip(s)?,
            echo: !s.endpoints.is_empty(),
        })
    };
    match t {
        Target::Ip(ip) => Ok(match plan.pods.iter().find(|p| p.ip == *ip) {
            Some(p) => pod_target(p, port, protocol),
            None => plain(*ip),
        }),
        Target::Node(n) => plan
            .node(n)
            .map(|n| plain(n.ip))
            .ok_or_else(|| format!("no node {n} in the running lab")),
        Target::External => client(plan, "external").map(|c| plain(c.ip)),
        Target::Lb => client(plan, "lb").map(|c| plain(c.ip)),
        Target::Pod { namespace, name } => pod(plan, namespace, name)
            .map(|p| pod_target(p, port, protocol))
            .ok_or_else(|| format!("no pod {namespace}/{name} in the running lab")),
        Target::Name(name) => match pod(plan, "default", name) {
            Some(p) => Ok(pod_target(p, port, protocol)),
            None => svc(service(plan, &from.search_ns, name)?),
        },
        Target::Service { namespace, name } => svc(service(plan, namespace, name)?),
        Target::LoadBalancer { namespace, name } => {
            let s = service(plan, namespace, name)?;
            let ip = s
                .load_balancer_ip
                .ok_or_else(|| format!("Service {namespace}/{name} has no LoadBalancer IP"))?;
            Ok(To {
                ip,
                echo: !s.endpoints.is_empty(),
            })
        }
        Target::Dns(name) => {
            let (name, ns) = service_of_dns(name, &plan.cluster_domain)
                .ok_or_else(|| format!("`{name}` is not a Service name of this lab"))?;
            svc(service(plan, ns, name)?)
        }
    }
}

/// How messages name an address of the lab: `pod-2`, `x/pod-c`,
/// `node/node-1`, `external`, or the address itself.
pub fn name_of(plan: &Plan, ip: Ipv4Addr) -> Option<String> {
    if let Some(p) = plan.pods.iter().find(|p| p.ip == ip) {
        return Some(if p.namespace == "default" {
            p.name.clone()
        } else {
            p.key()
        });
    }
    if let Some(n) = plan
        .nodes
        .iter()
        .find(|n| n.ip == ip || n.pod_gateway == ip)
    {
        return Some(format!("node/{}", n.name));
    }
    if let Some(c) = plan.clients.iter().find(|c| c.ip == ip) {
        return Some(c.name.clone());
    }
    plan.services
        .iter()
        .find(|s| s.cluster_ip == Some(ip) || s.load_balancer_ip == Some(ip))
        .map(|s| format!("svc/{}", s.key()))
}

/// The addresses a `sourceIP` expectation accepts.
pub fn source_ips(plan: &Plan, want: &SourceIp, from: &From) -> Result<Vec<Ipv4Addr>, String> {
    match want {
        SourceIp::Client => Ok(from.ips.clone()),
        SourceIp::Ip(ip) => Ok(vec![*ip]),
        SourceIp::Pod { namespace, name } => pod(plan, namespace, name)
            .map(|p| vec![p.ip])
            .ok_or_else(|| format!("no pod {namespace}/{name} in the running lab")),
        SourceIp::Node(n) => plan
            .node(n)
            .map(|n| vec![n.ip, n.pod_gateway])
            .ok_or_else(|| format!("no node {n} in the running lab")),
    }
}
