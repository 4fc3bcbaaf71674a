//! From the names of an assertion to namespaces and addresses, against the
//! plan of the running lab. Pure.

use std::net::Ipv4Addr;

use crate::lab::expect::{service_of_dns, Source, SourceIp, Target};
use crate::lab::Protocol;
use crate::plan::{Plan, PodPlan, ServicePlan};
use crate::target::{bare_name, by_ip, pod, Found, Scope};

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
        // An address is whoever has it: a pod's or a Service's is served
        // as theirs (their echo says who answered).
        Target::Ip(ip) => match by_ip(plan, *ip) {
            Found::Pod(p) => Ok(pod_target(p, port, protocol)),
            Found::Service(s) => svc(s),
            Found::LoadBalancer(s) => Ok(To {
                ip: *ip,
                echo: !s.endpoints.is_empty(),
            }),
            _ => Ok(plain(*ip)),
        },
        Target::Node(n) => plan
            .node(n)
            .map(|n| plain(n.ip))
            .ok_or_else(|| format!("no node {n} in the running lab")),
        Target::External => client(plan, "external").map(|c| plain(c.ip)),
        Target::Lb => client(plan, "lb").map(|c| plain(c.ip)),
        Target::Pod { namespace, name } => pod(plan, namespace, name)
            .map(|p| pod_target(p, port, protocol))
            .ok_or_else(|| format!("no pod {namespace}/{name} in the running lab")),
        Target::Name(name) => {
            let scope = Scope {
                namespace: "default",
                search: &from.search_ns,
            };
            match bare_name(plan, name, &scope) {
                Some(Found::Pod(p)) => Ok(pod_target(p, port, protocol)),
                Some(Found::Service(s)) => svc(s),
                _ => Err(format!(
                    "`{name}` names no Service in `{}` and no pod in `default` of the running lab",
                    from.search_ns
                )),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assertion_names_what_the_commands_name() {
        let plan = crate::target::tests::plan();
        let ip_of = |ns: &str, n: &str| plan.pod(ns, n).unwrap().ip;
        let svc = |n: &str| plan.services.iter().find(|s| s.name == n).unwrap();
        let pod_src = |ns: &str, n: &str| Source::Pod {
            namespace: ns.into(),
            name: n.into(),
        };
        let from_default = source(&plan, &pod_src("default", "pod")).unwrap();
        let from_b = source(&plan, &pod_src("team-b", "client")).unwrap();
        let parse = |s: &str| crate::lab::expect::parse_target(s).unwrap();
        let table: Vec<(&str, &From, u16, Ipv4Addr, bool)> = vec![
            // A bare name: the source namespace's Service first.
            (
                "web",
                &from_default,
                80,
                svc("web").cluster_ip.unwrap(),
                true,
            ),
            ("web", &from_b, 80, ip_of("default", "web"), true),
            // team-b's `db` selects no pod of team-b: no echo behind it.
            ("db", &from_b, 5432, svc("db").cluster_ip.unwrap(), false),
            ("db", &from_default, 5432, ip_of("default", "db"), true),
            ("pod/web", &from_default, 81, ip_of("default", "web"), false),
            // An address is whoever has it.
            (
                "10.96.0.10",
                &from_default,
                53,
                Ipv4Addr::new(10, 96, 0, 10),
                true,
            ),
            (
                "192.0.2.1",
                &from_default,
                80,
                Ipv4Addr::new(192, 0, 2, 1),
                false,
            ),
        ];
        for (word, from, port, ip, echo) in table {
            let got = target(&plan, &parse(word), from, port, Protocol::Tcp);
            assert_eq!(got, Ok(To { ip, echo }), "{word}");
        }
        let e = target(&plan, &parse("only-pod"), &from_default, 80, Protocol::Tcp);
        assert_eq!(
            e,
            Err(
                "`only-pod` names no Service in `default` and no pod in `default` of the running lab"
                    .into()
            )
        );
    }
}
