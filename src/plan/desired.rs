//! Per namespace, everything the lab must have: links (kind, index, MTU,
//! bridge, hairpin, up), addresses, routes, sysctls, nftables tables, pod
//! files and processes, and by implication what it must not: a pure value
//! computed from the plan. `kernel::apply` builds from it and `observe`
//! holds every namespace's kernel objects against it, planned or not.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

use super::POD_BRIDGE;
use super::{kubeproxy, netpol, ClientPlan, NodePlan, Plan, PodPlan, PodRole, ETH0, ETH0_INDEX};

/// `lo`'s index in every namespace.
pub const LO_INDEX: u32 = 1;
/// `cni0`'s interface index in each node namespace (lo is 1, eth0 is 2).
pub const POD_BRIDGE_INDEX: u32 = 3;
/// The node network bridge's index in the `net` namespace.
pub const NODE_BRIDGE_INDEX: u32 = 2;

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

/// A route the plan makes (not one the kernel derives from an address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Net,
    pub via: Ipv4Addr,
}

/// What a link is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Loopback,
    Bridge,
    /// One end of a veth pair. The outer end (on a bridge) is the one the
    /// pair is made from, its peer moved into `peer_netns` as it is made.
    Veth {
        peer: String,
        peer_netns: String,
        outer: bool,
    },
}

impl LinkKind {
    /// The kind as the kernel names it (`IFLA_INFO_KIND`); `lo` has none.
    pub fn word(&self) -> Option<&'static str> {
        match self {
            LinkKind::Loopback => None,
            LinkKind::Bridge => Some("bridge"),
            LinkKind::Veth { .. } => Some("veth"),
        }
    }
}

/// A link that must exist, with its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// The index it is made with, where something refers to it by index
    /// (`lo` 1, `eth0` 2, `cni0` 3, `br0` 2); `None`: the kernel's choice.
    pub index: Option<u32>,
    pub kind: LinkKind,
    /// `None`: the kernel's default (`lo`'s 65536), not checked.
    pub mtu: Option<u32>,
    /// The bridge it is a port of.
    pub master: Option<String>,
    /// As a bridge port: hairpin mode on.
    pub hairpin: bool,
    pub up: bool,
}

impl Link {
    fn loopback() -> Self {
        Link {
            name: "lo".into(),
            index: Some(LO_INDEX),
            kind: LinkKind::Loopback,
            mtu: None,
            master: None,
            hairpin: false,
            up: true,
        }
    }

    fn bridge(name: &str, index: u32, mtu: u32) -> Self {
        Link {
            name: name.into(),
            index: Some(index),
            kind: LinkKind::Bridge,
            mtu: Some(mtu),
            master: None,
            hairpin: false,
            up: true,
        }
    }

    /// The two ends of a veth: `outer` in `outer_netns` on `bridge`, `eth0`
    /// (index 2) in `inner_netns`.
    fn veth_pair(
        outer: &str,
        outer_netns: &str,
        bridge: &str,
        inner_netns: &str,
        mtu: u32,
    ) -> (Self, Self) {
        let out = Link {
            name: outer.into(),
            index: None,
            kind: LinkKind::Veth {
                peer: ETH0.into(),
                peer_netns: inner_netns.into(),
                outer: true,
            },
            mtu: Some(mtu),
            master: Some(bridge.into()),
            hairpin: false,
            up: true,
        };
        let inner = Link {
            name: ETH0.into(),
            index: Some(ETH0_INDEX),
            kind: LinkKind::Veth {
                peer: outer.into(),
                peer_netns: outer_netns.into(),
                outer: false,
            },
            mtu: Some(mtu),
            master: None,
            hairpin: false,
            up: true,
        };
        (out, inner)
    }

    /// The namespace of the other end, for a veth.
    pub fn peer_netns(&self) -> Option<&str> {
        match &self.kind {
            LinkKind::Veth { peer_netns, .. } => Some(peer_netns),
            _ => None,
        }
    }

    /// An end the pair is made from (the other end is made with it).
    pub fn is_outer_veth(&self) -> bool {
        matches!(self.kind, LinkKind::Veth { outer: true, .. })
    }
}

/// A file the lab writes for a namespace (`ip netns exec` and `podlab
/// exec` bind `/etc/netns/NS/*` over `/etc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: PathBuf,
    /// `None`: the file must not exist (the pod sees the host's).
    pub content: Option<String>,
}

/// What runs for a namespace, as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Process {
    /// The pod's containers (echo servers, commands), all running.
    Pod { pod: String },
    /// The cluster DNS responder of this pod, answering.
    Dns { pod: String },
}

/// What one namespace must hold. What it does not name must not exist:
/// no other link, address, route of any table, policy rule (besides the
/// kernel's three), static neighbour entry, qdisc (every link is made
/// `noqueue`) or nftables table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    /// In the order they are made: bridges before the ports on them.
    pub links: Vec<Link>,
    /// `(link, address/prefix)`, besides `lo`'s 127.0.0.1/8.
    pub addresses: Vec<(String, Ipv4Net)>,
    /// Main-table routes with a gateway; connected routes follow from the
    /// addresses.
    pub routes: Vec<Route>,
    pub sysctls: Vec<(&'static str, &'static str)>,
    /// `(family, table)` of the nftables tables podlab loads here; their
    /// rules are what `plan::kubeproxy` and `plan::netpol` render.
    pub tables: Vec<(&'static str, &'static str)>,
    pub files: Vec<File>,
    pub processes: Vec<Process>,
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

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The addresses `link` must have.
    pub fn addresses_of<'a>(&'a self, link: &'a str) -> impl Iterator<Item = Ipv4Net> + 'a {
        self.addresses
            .iter()
            .filter(move |(l, _)| l == link)
            .map(|(_, a)| *a)
    }

    /// Bridge ports that must have hairpin mode on.
    pub fn hairpin(&self) -> impl Iterator<Item = &str> {
        self.links
            .iter()
            .filter(|l| l.hairpin)
            .map(|l| l.name.as_str())
    }

    /// The sysctls that can be set as the namespace is made: a link's own
    /// keys wait for the link, which takes the `default` ones meanwhile.
    pub fn sysctls_at_creation(&self) -> Vec<(&'static str, &'static str)> {
        self.sysctls
            .iter()
            .copied()
            .filter(|(k, _)| {
                !self
                    .links
                    .iter()
                    .any(|l| l.name != "lo" && k.contains(&format!(".conf.{}.", l.name)))
            })
            .collect()
    }
}

fn net(ip: Ipv4Addr, prefix: u8) -> Ipv4Net {
    // Prefixes come from validated CIDRs; a bad one is a /32 of the address.
    Ipv4Net::new(ip, prefix).unwrap_or_else(|_| Ipv4Net::from(ip))
}

/// Directory of the files `ip netns exec` and `podlab exec` bind over
/// `/etc` for a namespace.
pub fn etc_dir(netns: &str) -> PathBuf {
    Path::new("/etc/netns").join(netns)
}

/// The node network namespace: `br0` with the gateway's address, one
/// uplink port per node and client.
pub fn net_namespace(plan: &Plan) -> Namespace {
    let mut links = vec![
        Link::loopback(),
        Link::bridge(&plan.net.bridge, NODE_BRIDGE_INDEX, plan.mtu),
    ];
    let uplinks = plan
        .nodes
        .iter()
        .map(|n| (&n.uplink, &n.netns))
        .chain(plan.clients.iter().map(|c| (&c.uplink, &c.netns)));
    for (uplink, inner) in uplinks {
        let (outer, _) =
            Link::veth_pair(uplink, &plan.net.netns, &plan.net.bridge, inner, plan.mtu);
        links.push(outer);
    }
    Namespace {
        links,
        addresses: vec![(
            plan.net.bridge.clone(),
            net(plan.net.gateway, plan.net.cidr.prefix_len()),
        )],
        ..Default::default()
    }
}

/// A pod's veth end on its node, on `cni0` with hairpin on: a pod reaching
/// itself through its Service gets its own packets back on that port.
pub fn host_veth(plan: &Plan, pod: &PodPlan, node: &NodePlan) -> Link {
    let (mut outer, _) = Link::veth_pair(
        &pod.host_veth,
        &node.netns,
        POD_BRIDGE,
        &pod.netns,
        plan.mtu,
    );
    outer.hairpin = true;
    outer
}

/// A node: its uplink's `eth0`, `cni0` with a port per pod of the node,
/// the default route and the routes to the other nodes' pods, forwarding,
/// and podlab's nftables tables.
pub fn node_namespace(plan: &Plan, node: &NodePlan) -> Namespace {
    let (_, eth0) = Link::veth_pair(
        &node.uplink,
        &plan.net.netns,
        &plan.net.bridge,
        &node.netns,
        plan.mtu,
    );
    let mut links = vec![
        Link::loopback(),
        eth0,
        Link::bridge(POD_BRIDGE, POD_BRIDGE_INDEX, plan.mtu),
    ];
    links.extend(
        plan.pods
            .iter()
            .filter(|p| p.node == node.name)
            .map(|p| host_veth(plan, p, node)),
    );
    let mut routes = vec![Route {
        dst: Ipv4Net::default(),
        via: plan.net.gateway,
    }];
    routes.extend(node.routes.iter().map(|r| Route {
        dst: r.dst,
        via: r.via,
    }));
    Namespace {
        links,
        addresses: vec![
            (ETH0.to_string(), net(node.ip, plan.net.cidr.prefix_len())),
            (
                POD_BRIDGE.to_string(),
                net(node.pod_gateway, node.pod_cidr.prefix_len()),
            ),
        ],
        routes,
        sysctls: NODE_SYSCTLS.to_vec(),
        tables: vec![
            ("ip", kubeproxy::TABLE),
            ("ip", kubeproxy::CNI_TABLE),
            ("ip", netpol::TABLE),
        ],
        ..Default::default()
    }
}

/// `external` or `lb`: an `eth0` on the node network; the balancer also
/// holds every LoadBalancer IP, forwards, and has its own table.
pub fn client_namespace(plan: &Plan, c: &ClientPlan) -> Namespace {
    let (_, eth0) = Link::veth_pair(
        &c.uplink,
        &plan.net.netns,
        &plan.net.bridge,
        &c.netns,
        plan.mtu,
    );
    let mut ns = Namespace {
        links: vec![Link::loopback(), eth0],
        addresses: vec![(ETH0.to_string(), net(c.ip, plan.net.cidr.prefix_len()))],
        ..Default::default()
    };
    if c.name == "lb" {
        ns.addresses.extend(
            plan.services
                .iter()
                .filter_map(|s| s.load_balancer_ip)
                .map(|ip| (ETH0.to_string(), Ipv4Net::from(ip))),
        );
        ns.sysctls = LB_SYSCTLS.to_vec();
        ns.tables = vec![("ip", kubeproxy::LB_TABLE)];
    }
    ns
}

/// A pod's `/etc/hosts` and `resolv.conf`. `host_resolv` is the text of
/// the host's `/etc/resolv.conf` (`dnsPolicy: Default` starts from it).
pub fn pod_files(plan: &Plan, pod: &PodPlan, host_resolv: &str) -> Vec<File> {
    let dir = etc_dir(&pod.netns);
    vec![
        File {
            path: dir.join("hosts"),
            content: Some(pod.hosts_file(&plan.cluster_domain)),
        },
        File {
            path: dir.join("resolv.conf"),
            content: super::dns::resolv_conf(pod, &plan.cluster_domain, plan.dns_ip, host_resolv),
        },
    ]
}

/// A pod: `eth0` (its veth's inner end) with the pod's address, the default
/// route through `cni0`, `arp_notify`, its files and containers.
pub fn pod_namespace(plan: &Plan, pod: &PodPlan, host_resolv: &str) -> Namespace {
    let node_netns = plan.node(&pod.node).map_or("", |n| n.netns.as_str());
    let (_, eth0) = Link::veth_pair(&pod.host_veth, node_netns, POD_BRIDGE, &pod.netns, plan.mtu);
    let mut processes = vec![Process::Pod { pod: pod.key() }];
    if pod.role == PodRole::Dns {
        processes.push(Process::Dns { pod: pod.key() });
    }
    Namespace {
        links: vec![Link::loopback(), eth0],
        addresses: vec![(ETH0.to_string(), net(pod.ip, pod.prefix))],
        routes: vec![Route {
            dst: Ipv4Net::default(),
            via: pod.gateway,
        }],
        sysctls: POD_SYSCTLS.to_vec(),
        files: pod_files(plan, pod, host_resolv),
        processes,
        ..Default::default()
    }
}

/// One namespace of the lab by name, without building the others.
pub fn namespace(plan: &Plan, netns: &str, host_resolv: &str) -> Option<Namespace> {
    if netns == plan.net.netns {
        return Some(net_namespace(plan));
    }
    if let Some(n) = plan.nodes.iter().find(|n| n.netns == netns) {
        return Some(node_namespace(plan, n));
    }
    if let Some(c) = plan.clients.iter().find(|c| c.netns == netns) {
        return Some(client_namespace(plan, c));
    }
    let p = plan.pods.iter().find(|p| p.netns == netns)?;
    Some(pod_namespace(plan, p, host_resolv))
}

/// Every namespace of the lab, by name. `host_resolv`: see `pod_files`.
pub fn namespaces(plan: &Plan, host_resolv: &str) -> BTreeMap<String, Namespace> {
    let mut out = BTreeMap::new();
    out.insert(plan.net.netns.clone(), net_namespace(plan));
    for n in &plan.nodes {
        out.insert(n.netns.clone(), node_namespace(plan, n));
    }
    for c in &plan.clients {
        out.insert(c.netns.clone(), client_namespace(plan, c));
    }
    for p in &plan.pods {
        out.insert(p.netns.clone(), pod_namespace(plan, p, host_resolv));
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
        let ns = namespaces(&plan, "");
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
        let ns = &namespaces(&plan, "")[&node.netns];
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
        assert_eq!(ns.hairpin().count(), pods_here);
        assert!(ns.sysctls.contains(&("net.ipv4.conf.all.rp_filter", "0")));
    }

    #[test]
    fn links_are_listed_with_their_indexes_bridges_before_their_ports() {
        let plan = demo();
        let all = namespaces(&plan, "");
        let node = &plan.nodes[0];
        let ns = &all[&node.netns];
        let names: Vec<&str> = ns.links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names[..3], ["lo", ETH0, POD_BRIDGE]);
        assert_eq!(
            ns.link(POD_BRIDGE).and_then(|l| l.index),
            Some(POD_BRIDGE_INDEX)
        );
        let pod = plan
            .pods
            .iter()
            .find(|p| p.node == node.name)
            .expect("a pod");
        let port = ns.link(&pod.host_veth).expect("the pod's port");
        assert!(port.is_outer_veth() && port.hairpin);
        assert_eq!(port.master.as_deref(), Some(POD_BRIDGE));
        assert_eq!(port.peer_netns(), Some(pod.netns.as_str()));
        assert_eq!(port.mtu, Some(plan.mtu));
        // The inner end points back, and is not made from its side.
        let inner = all[&pod.netns].link(ETH0).expect("pod eth0");
        assert!(!inner.is_outer_veth());
        assert_eq!(inner.index, Some(ETH0_INDEX));
        assert_eq!(inner.peer_netns(), Some(node.netns.as_str()));
        // Every uplink is a port of br0 in the node network.
        let net = &all[&plan.net.netns];
        for n in &plan.nodes {
            let up = net.link(&n.uplink).expect("uplink");
            assert_eq!(up.master.as_deref(), Some(plan.net.bridge.as_str()));
            assert!(!up.hairpin);
        }
        assert_eq!(
            net.link(&plan.net.bridge).and_then(|l| l.index),
            Some(NODE_BRIDGE_INDEX)
        );
    }

    #[test]
    fn tables_files_and_processes_are_where_they_belong() {
        let plan = demo();
        let host = "nameserver 192.0.2.53\n";
        let all = namespaces(&plan, host);
        let node = &all[&plan.nodes[0].netns];
        assert!(node.tables.contains(&("ip", netpol::TABLE)));
        assert!(node.tables.contains(&("ip", kubeproxy::TABLE)));
        let pod = &plan.pods[0];
        let ns = &all[&pod.netns];
        assert!(ns.tables.is_empty(), "a pod has no tables of podlab's");
        let hosts = ns
            .files
            .iter()
            .find(|f| f.path.ends_with("hosts"))
            .expect("hosts");
        assert_eq!(hosts.path, etc_dir(&pod.netns).join("hosts"));
        assert!(hosts
            .content
            .as_deref()
            .is_some_and(|t| t.contains(&pod.ip.to_string())));
        assert!(ns.processes.contains(&Process::Pod { pod: pod.key() }));
        let dns = plan
            .pods
            .iter()
            .find(|p| p.role == PodRole::Dns)
            .expect("dns pod");
        assert!(all[&dns.netns]
            .processes
            .contains(&Process::Dns { pod: dns.key() }));
        if let Some(lb) = plan.clients.iter().find(|c| c.name == "lb") {
            assert_eq!(all[&lb.netns].tables, [("ip", kubeproxy::LB_TABLE)]);
        }
    }

    #[test]
    fn a_links_own_sysctls_wait_for_the_link() {
        let plan = demo();
        let ns = node_namespace(&plan, &plan.nodes[0]);
        let early = ns.sysctls_at_creation();
        assert!(early.contains(&("net.ipv4.conf.all.rp_filter", "0")));
        assert!(!early
            .iter()
            .any(|(k, _)| k.contains(".eth0.") || k.contains(".cni0.")));
    }
}
