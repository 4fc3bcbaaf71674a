//! Per namespace, the addresses, routes, sysctls and bridge-port flags the
//! lab must have, and by implication which ones it must not: a pure value
//! computed from the plan, that `kernel::apply` builds from (the sysctls)
//! and `observe` holds every namespace's kernel objects against, planned or
//! not.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Plan, ETH0, NODE_BRIDGE, POD_BRIDGE};

/// Sysctls of every node namespace.
pub const NODE_SYSCTLS: [(&str, &str); 6] = [
    ("net.ipv4.ip_forward", "1"),
    // Replies from another node's pods come back on another path than the
    // one a strict reverse-path check expects; the effective value of an
    // interface is the larger of `all` and its own, so each counts.
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.eth0.rp_filter", "0"),
    ("net.ipv4.conf.cni0.rp_filter", "0"),
    // Bridged replies between pods of one node must pass conntrack, or a
    // reply to a Service's DNAT is not translated back.
    ("net.bridge.bridge-nf-call-iptables", "1"),
];

/// Sysctls of every pod namespace: a pod announces its address as eth0
/// comes up (neighbours that held another MAC for it learn at once).
pub const POD_SYSCTLS: [(&str, &str); 1] = [("net.ipv4.conf.all.arp_notify", "1")];

/// The cloud load balancer forwards to the nodes.
pub const LB_SYSCTLS: [(&str, &str); 1] = [("net.ipv4.ip_forward", "1")];

/// The sysctls the node network namespace sets when made: the ones of
/// links made later (`eth0`, `cni0`) follow from `default`.
pub fn node_sysctls_at_creation() -> Vec<(&'static str, &'static str)> {
    NODE_SYSCTLS
        .iter()
        .copied()
        .filter(|(k, _)| !k.contains(".eth0.") && !k.contains(".cni0."))
        .collect()
}

/// A route the plan makes (not one the kernel derives from an address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Net,
    pub via: Ipv4Addr,
}

/// What one namespace must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    /// `(link, address/prefix)`, besides `lo`'s 127.0.0.1/8.
    pub addresses: Vec<(String, Ipv4Net)>,
    /// Main-table routes with a gateway; connected routes follow from the
    /// addresses.
    pub routes: Vec<Route>,
    pub sysctls: Vec<(&'static str, &'static str)>,
    /// Bridge ports that must have hairpin mode on.
    pub hairpin: Vec<String>,
}

impl Namespace {
    /// Whether a main-table route the kernel derives from an address (a
    /// connected route, `proto kernel`) belongs to one of ours.
    pub fn connected(&self, dst: Ipv4Addr, prefix: u8, dev: Option<&str>) -> bool {
        self.addresses.iter().any(|(link, a)| {
            a.prefix_len() < 32
                && a.network() == dst
                && a.prefix_len() == prefix
                && dev.is_none_or(|d| d == link)
        })
    }

    pub fn planned_route(&self, dst: Ipv4Addr, prefix: u8, via: Option<Ipv4Addr>) -> bool {
        self.routes
            .iter()
            .any(|r| r.dst.network() == dst && r.dst.prefix_len() == prefix && Some(r.via) == via)
    }

    pub fn has_address(&self, link: &str, ip: Ipv4Addr, prefix: u8) -> bool {
        (link == "lo" && ip == Ipv4Addr::LOCALHOST && prefix == 8)
            || self
                .addresses
                .iter()
                .any(|(l, a)| l == link && a.addr() == ip && a.prefix_len() == prefix)
    }
}

fn net(ip: Ipv4Addr, prefix: u8) -> Ipv4Net {
    // Prefixes come from validated CIDRs; a bad one is a /32 of the address.
    Ipv4Net::new(ip, prefix).unwrap_or_else(|_| Ipv4Net::from(ip))
}

/// Every namespace of the lab, by name.
pub fn namespaces(plan: &Plan) -> BTreeMap<String, Namespace> {
    let mut out = BTreeMap::new();
    let prefix = plan.net.cidr.prefix_len();
    out.insert(
        plan.net.netns.clone(),
        Namespace {
            addresses: vec![(NODE_BRIDGE.to_string(), net(plan.net.gateway, prefix))],
            ..Default::default()
        },
    );
    for n in &plan.nodes {
        let mut routes = vec![Route {
            dst: Ipv4Net::default(),
            via: plan.net.gateway,
        }];
        routes.extend(n.routes.iter().map(|r| Route {
            dst: r.dst,
            via: r.via,
        }));
        out.insert(
            n.netns.clone(),
            Namespace {
                addresses: vec![
                    (ETH0.to_string(), net(n.ip, prefix)),
                    (
                        POD_BRIDGE.to_string(),
                        net(n.pod_gateway, n.pod_cidr.prefix_len()),
                    ),
                ],
                routes,
                sysctls: NODE_SYSCTLS.to_vec(),
                hairpin: plan
                    .pods
                    .iter()
                    .filter(|p| p.node == n.name)
                    .map(|p| p.host_veth.clone())
                    .collect(),
            },
        );
    }
    for c in &plan.clients {
        let mut addresses = vec![(ETH0.to_string(), net(c.ip, prefix))];
        let mut sysctls = Vec::new();
        if c.name == "lb" {
            addresses.extend(
                plan.services
                    .iter()
                    .filter_map(|s| s.load_balancer_ip)
                    .map(|ip| (ETH0.to_string(), Ipv4Net::from(ip))),
            );
            sysctls = LB_SYSCTLS.to_vec();
        }
        out.insert(
            c.netns.clone(),
            Namespace {
                addresses,
                sysctls,
                ..Default::default()
            },
        );
    }
    for p in &plan.pods {
        out.insert(
            p.netns.clone(),
            Namespace {
                addresses: vec![(ETH0.to_string(), net(p.ip, p.prefix))],
                routes: vec![Route {
                    dst: Ipv4Net::default(),
                    via: p.gateway,
                }],
                sysctls: POD_SYSCTLS.to_vec(),
                hairpin: Vec::new(),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Plan {
        let lab = crate::lab::parse(crate::lab::DEMO_SOURCE, crate::lab::DEMO).expect("demo lab");
        crate::plan::build(&lab).expect("demo plan")
    }

    #[test]
    fn every_namespace_of_the_plan_is_described() {
        let plan = demo();
        let ns = namespaces(&plan);
        let names: Vec<&str> = plan.netns_names();
        assert_eq!(ns.len(), names.len());
        for n in names {
            assert!(ns.contains_key(n), "{n}");
        }
    }

    #[test]
    fn a_node_holds_its_addresses_routes_and_hairpin_ports() {
        let plan = demo();
        let node = &plan.nodes[0];
        let ns = &namespaces(&plan)[&node.netns];
        assert!(ns.has_address(ETH0, node.ip, plan.net.cidr.prefix_len()));
        assert!(ns.has_address("lo", Ipv4Addr::LOCALHOST, 8));
        assert!(!ns.has_address(ETH0, Ipv4Addr::new(10, 9, 9, 9), 24));
        assert!(ns.planned_route(Ipv4Addr::UNSPECIFIED, 0, Some(plan.net.gateway)));
        let other = &plan.nodes[1];
        assert!(ns.planned_route(other.pod_cidr.network(), 24, Some(other.ip)));
        assert!(
            !ns.planned_route(other.pod_cidr.network(), 24, None),
            "a blackhole is not ours"
        );
        assert!(ns.connected(node.pod_cidr.network(), 24, Some(POD_BRIDGE)));
        assert!(!ns.connected(node.pod_cidr.network(), 24, Some(ETH0)));
        let pods_here = plan.pods.iter().filter(|p| p.node == node.name).count();
        assert_eq!(ns.hairpin.len(), pods_here);
        assert!(ns.sysctls.contains(&("net.ipv4.conf.all.rp_filter", "0")));
    }
}
