//! Read a running lab back from the kernel and compare it with its plan.
//! Every difference is a typed finding naming the object, what the plan
//! says and what the kernel has.

pub mod diagnose;
pub mod target;
pub mod trace;

use std::fmt;

use serde::Serialize;

use crate::kernel::inspect::{self, NetnsView};
use crate::kernel::netns::Netns;
use crate::plan::{Plan, ETH0, POD_BRIDGE};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Finding {
    MissingNamespace {
        netns: String,
    },
    Unreadable {
        netns: String,
        error: String,
    },
    MissingLink {
        netns: String,
        link: String,
    },
    LinkDown {
        netns: String,
        link: String,
    },
    WrongAddress {
        netns: String,
        link: String,
        want: String,
        have: Vec<String>,
    },
    MissingRoute {
        netns: String,
        route: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::MissingNamespace { netns } => write!(f, "namespace {netns} is missing"),
            Finding::Unreadable { netns, error } => {
                write!(f, "namespace {netns} cannot be read: {error}")
            }
            Finding::MissingLink { netns, link } => write!(f, "{netns}: link {link} is missing"),
            Finding::LinkDown { netns, link } => write!(f, "{netns}: link {link} is down"),
            Finding::WrongAddress {
                netns,
                link,
                want,
                have,
            } => write!(
                f,
                "{netns}: {link} should have {want}, has {}",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ),
            Finding::MissingRoute { netns, route } => {
                write!(f, "{netns}: route {route} is missing")
            }
        }
    }
}

fn read(netns: &str, findings: &mut Vec<Finding>) -> Option<NetnsView> {
    if !Netns::exists(netns) {
        findings.push(Finding::MissingNamespace {
            netns: netns.into(),
        });
        return None;
    }
    match inspect::view(netns) {
        Ok(v) => Some(v),
        Err(e) => {
            findings.push(Finding::Unreadable {
                netns: netns.into(),
                error: e.to_string(),
            });
            None
        }
    }
}

fn check_link(
    view: &NetnsView,
    netns: &str,
    link: &str,
    want: Option<String>,
    findings: &mut Vec<Finding>,
) {
    let Some(l) = view.link(link) else {
        findings.push(Finding::MissingLink {
            netns: netns.into(),
            link: link.into(),
        });
        return;
    };
    if !l.up {
        findings.push(Finding::LinkDown {
            netns: netns.into(),
            link: link.into(),
        });
    }
    if let Some(want) = want {
        let have: Vec<String> = view
            .addresses_of(link)
            .iter()
            .map(|a| format!("{}/{}", a.ip, a.prefix))
            .collect();
        if !have.contains(&want) {
            findings.push(Finding::WrongAddress {
                netns: netns.into(),
                link: link.into(),
                want,
                have,
            });
        }
    }
}

fn check_route(
    view: &NetnsView,
    netns: &str,
    dst: ipnet::Ipv4Net,
    via: std::net::Ipv4Addr,
    findings: &mut Vec<Finding>,
) {
    let present = view
        .routes
        .iter()
        .any(|r| r.dst == dst.network() && r.prefix == dst.prefix_len() && r.gateway == Some(via));
    if !present {
        findings.push(Finding::MissingRoute {
            netns: netns.into(),
            route: format!("{dst} via {via}"),
        });
    }
}

/// Compare the node network, nodes and pods with the plan.
pub fn compare(plan: &Plan) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(v) = read(&plan.net.netns, &mut findings) {
        let want = format!("{}/{}", plan.net.gateway, plan.net.cidr.prefix_len());
        check_link(
            &v,
            &plan.net.netns,
            &plan.net.bridge,
            Some(want),
            &mut findings,
        );
    }
    let node_prefix = plan.net.cidr.prefix_len();
    for n in &plan.nodes {
        let Some(v) = read(&n.netns, &mut findings) else {
            continue;
        };
        check_link(
            &v,
            &n.netns,
            ETH0,
            Some(format!("{}/{node_prefix}", n.ip)),
            &mut findings,
        );
        check_link(
            &v,
            &n.netns,
            POD_BRIDGE,
            Some(format!("{}/{}", n.pod_gateway, n.pod_cidr.prefix_len())),
            &mut findings,
        );
        for r in &n.routes {
            check_route(&v, &n.netns, r.dst, r.via, &mut findings);
        }
    }
    for p in &plan.pods {
        let Some(v) = read(&p.netns, &mut findings) else {
            continue;
        };
        check_link(
            &v,
            &p.netns,
            ETH0,
            Some(format!("{}/{}", p.ip, p.prefix)),
            &mut findings,
        );
        check_link(&v, &p.netns, "lo", None, &mut findings);
        check_route(
            &v,
            &p.netns,
            ipnet::Ipv4Net::default(),
            p.gateway,
            &mut findings,
        );
    }
    findings
}
