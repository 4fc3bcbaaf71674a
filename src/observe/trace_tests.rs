//! The path assembly on a simulated kernel: a two-node lab's links, veth
//! peers, bridges, addresses, routes, neighbours and forwarding entries
//! made from its plan as podlab builds them, then broken in the ways a
//! learner breaks them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use ipnet::Ipv4Net;

use super::*;
use crate::kernel::counters::Count;
use crate::kernel::inspect::Address;
use crate::kernel::route::{FdbEntry, Lookup, Neighbour};
use crate::probe::Server;

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: tt}
spec: {nodes: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: a}}
spec:
  nodeName: node-1
  containers: [{name: a, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: web}}
spec:
  nodeName: node-2
  containers: [{name: b, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: c, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: c, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all}
spec:
  podSelector: {matchLabels: {app: web}}
"#;

fn plan() -> Plan {
    let file = crate::lab::parse("t.yaml", LAB).expect("lab parses");
    crate::plan::build(&file).expect("lab plans")
}

struct Route {
    net: Ipv4Net,
    via: Option<Ipv4Addr>,
    dev: u32,
}

#[derive(Default)]
struct Ns {
    facts: Facts,
    routes: Vec<Route>,
}

/// A kernel made from the plan, as `up` builds it.
#[derive(Default)]
struct Sim {
    ns: BTreeMap<String, Ns>,
    conntrack: Vec<(String, conntrack::Entry)>,
    tables: BTreeMap<String, NatTable>,
    macs: u32,
    asked: Vec<String>,
}

impl Sim {
    fn mac(&mut self) -> String {
        self.macs += 1;
        format!(
            "02:00:00:00:{:02x}:{:02x}",
            self.macs >> 8,
            self.macs & 0xff
        )
    }

    fn link(&mut self, netns: &str, name: &str, kind: &str, master: Option<&str>) -> u32 {
        let mac = self.mac();
        let ns = self.ns.entry(netns.to_string()).or_default();
        if ns.facts.links.is_empty() {
            ns.facts.links.push(Link {
                index: 1,
                name: "lo".into(),
                up: true,
                master: None,
                mtu: 65536,
                kind: None,
                peer: None,
                mac: Some("00:00:00:00:00:00".into()),
                hairpin: None,
            });
        }
        let index = ns.facts.links.len() as u32 + 1;
        let master = master.and_then(|m| ns.facts.link_named(m).map(|l| l.index));
        ns.facts.links.push(Link {
            index,
            name: name.into(),
            up: true,
            master,
            mtu: 1500,
            kind: Some(kind.into()),
            peer: None,
            mac: Some(mac),
            hairpin: master.map(|_| true),
        });
        index
    }

    fn veth(&mut self, a: (&str, &str, Option<&str>), b: (&str, &str, Option<&str>)) {
        let ia = self.link(a.0, a.1, "veth", a.2);
        let ib = self.link(b.0, b.1, "veth", b.2);
        self.get_link(a.0, ia).peer = Some(ib);
        self.get_link(b.0, ib).peer = Some(ia);
    }

    fn get_link(&mut self, netns: &str, index: u32) -> &mut Link {
        self.ns
            .get_mut(netns)
            .and_then(|n| n.facts.links.iter_mut().find(|l| l.index == index))
            .expect("link exists")
    }

    fn index(&self, netns: &str, name: &str) -> u32 {
        self.ns[netns].facts.link_named(name).expect(name).index
    }

    fn mac_of(&self, netns: &str, name: &str) -> String {
        self.ns[netns]
            .facts
            .link_named(name)
            .and_then(|l| l.mac.clone())
            .expect("mac")
    }

    fn addr(&mut self, netns: &str, dev: &str, ip: Ipv4Addr, prefix: u8) {
        let index = self.index(netns, dev);
        let ns = self.ns.get_mut(netns).expect("ns");
        ns.facts.addresses.push(Address { index, ip, prefix });
    }

    fn route(&mut self, netns: &str, net: &str, via: Option<Ipv4Addr>, dev: &str) {
        let dev = self.index(netns, dev);
        let net = net.parse().expect("cidr");
        self.ns
            .get_mut(netns)
            .expect("ns")
            .routes
            .push(Route { net, via, dev });
    }

    fn neigh(&mut self, netns: &str, dev: &str, ip: Ipv4Addr, mac: String) {
        let ifindex = self.index(netns, dev);
        let ns = self.ns.get_mut(netns).expect("ns");
        ns.facts.neighbours.push(Neighbour { ifindex, ip, mac });
    }

    fn fdb(&mut self, netns: &str, port: &str, mac: String) {
        let port = self.index(netns, port);
        let ns = self.ns.get_mut(netns).expect("ns");
        let bridge = ns.facts.link(port).and_then(|l| l.master);
        ns.facts.fdb.push(FdbEntry {
            port,
            bridge,
            mac,
            permanent: false,
        });
    }

    fn from_plan(plan: &Plan) -> Sim {
        let mut s = Sim::default();
        let net = plan.net.netns.as_str();
        let net_prefix = plan.net.cidr.prefix_len();
        s.link(net, "br0", "bridge", None);
        s.addr(net, "br0", plan.net.gateway, net_prefix);
        s.route(net, &plan.net.cidr.trunc().to_string(), None, "br0");
        for n in &plan.nodes {
            s.link(&n.netns, "cni0", "bridge", None);
            s.veth((&n.netns, ETH0, None), (net, &n.uplink, Some("br0")));
            s.addr(&n.netns, ETH0, n.ip, net_prefix);
            s.addr(&n.netns, "cni0", n.pod_gateway, n.pod_cidr.prefix_len());
            s.route(&n.netns, &plan.net.cidr.trunc().to_string(), None, ETH0);
            s.route(&n.netns, &n.pod_cidr.to_string(), None, "cni0");
            for r in &n.routes {
                s.route(&n.netns, &r.dst.to_string(), Some(r.via), ETH0);
            }
            s.route(&n.netns, "0.0.0.0/0", Some(plan.net.gateway), ETH0);
        }
        for c in &plan.clients {
            s.veth((&c.netns, ETH0, None), (net, &c.uplink, Some("br0")));
            s.addr(&c.netns, ETH0, c.ip, net_prefix);
            s.route(&c.netns, &plan.net.cidr.trunc().to_string(), None, ETH0);
        }
        for p in &plan.pods {
            let node = plan.node(&p.node).expect("node");
            s.veth(
                (&p.netns, ETH0, None),
                (&node.netns, &p.host_veth, Some("cni0")),
            );
            s.addr(&p.netns, ETH0, p.ip, p.prefix);
            s.route(&p.netns, &node.pod_cidr.to_string(), None, ETH0);
            s.route(&p.netns, "0.0.0.0/0", Some(p.gateway), ETH0);
        }
        // Neighbours and forwarding entries, as after traffic has flowed.
        let stations: Vec<(String, Ipv4Addr, String)> = plan
            .nodes
            .iter()
            .map(|n| (n.netns.clone(), n.ip, n.uplink.clone()))
            .chain(
                plan.clients
                    .iter()
                    .map(|c| (c.netns.clone(), c.ip, c.uplink.clone())),
            )
            .collect();
        for (netns, _, uplink) in &stations {
            let mac = s.mac_of(netns, ETH0);
            s.fdb(net, uplink, mac);
            for (other, ip, _) in &stations {
                if other != netns {
                    let mac = s.mac_of(other, ETH0);
                    s.neigh(netns, ETH0, *ip, mac);
                }
            }
        }
        for p in &plan.pods {
            let node = plan.node(&p.node).expect("node");
            let pod_mac = s.mac_of(&p.netns, ETH0);
            let cni_mac = s.mac_of(&node.netns, "cni0");
            s.fdb(&node.netns, &p.host_veth, pod_mac.clone());
            s.neigh(&node.netns, "cni0", p.ip, pod_mac);
            s.neigh(&p.netns, ETH0, p.gateway, cni_mac);
        }
        for p in &plan.pods {
            for q in plan
                .pods
                .iter()
                .filter(|q| q.node == p.node && q.ip != p.ip)
            {
                let mac = s.mac_of(&q.netns, ETH0);
                s.neigh(&p.netns, ETH0, q.ip, mac);
            }
        }
        s
    }
}

impl Kernel for Sim {
    fn facts(&mut self, netns: &str, dst: Ipv4Addr) -> Result<Facts, String> {
        self.asked.push(netns.to_string());
        let ns = self
            .ns
            .get(netns)
            .ok_or_else(|| format!("namespace {netns} does not exist"))?;
        let mut f = ns.facts.clone();
        f.route = Some(if f.is_local(dst) {
            Lookup {
                kind: RouteKind::Local,
                dst,
                prefix: 32,
                gateway: None,
                oif: Some(1),
                prefsrc: Some(dst),
                table: 255,
            }
        } else {
            match ns
                .routes
                .iter()
                .filter(|r| r.net.contains(&dst))
                .max_by_key(|r| r.net.prefix_len())
            {
                Some(r) => Lookup {
                    kind: RouteKind::Unicast,
                    dst: r.net.network(),
                    prefix: r.net.prefix_len(),
                    gateway: r.via,
                    oif: Some(r.dev),
                    prefsrc: f
                        .addresses
                        .iter()
                        .find(|a| a.index == r.dev)
                        .or(f.addresses.first())
                        .map(|a| a.ip),
                    table: 254,
                },
                None => Lookup {
                    kind: RouteKind::Unreachable,
                    dst,
                    prefix: 32,
                    gateway: None,
                    oif: None,
                    prefsrc: None,
                    table: 0,
                },
            }
        });
        Ok(f)
    }

    fn conntrack(
        &mut self,
        netns: &str,
        protocol: &str,
        t: &Tuple,
    ) -> Result<Option<conntrack::Entry>, String> {
        Ok(self
            .conntrack
            .iter()
            .find(|(n, e)| n == netns && e.protocol == protocol && e.original == *t)
            .map(|(_, e)| e.clone()))
    }

    fn nat_table(&mut self, netns: &str, _table: &str) -> Result<Option<NatTable>, String> {
        Ok(self.tables.get(netns).cloned())
    }
}

fn pod<'a>(plan: &'a Plan, name: &str) -> &'a crate::plan::PodPlan {
    plan.pod("default", name).expect("pod")
}

fn flow(src: Ipv4Addr, dst: Ipv4Addr, dport: u16) -> Tuple {
    Tuple {
        src,
        sport: 40000,
        dst,
        dport,
    }
}

fn names(w: &Walked) -> Vec<&str> {
    w.hops.iter().map(|h| h.netns.as_str()).collect()
}

fn connected(pod: &str, client: Ipv4Addr) -> Seen {
    Seen::Connected(Some(Server {
        pod: Some(pod.into()),
        client_ip: Some(client),
        status: Some(200),
        body: String::new(),
        ..Server::default()
    }))
}

const T: Duration = Duration::from_millis(1000);

#[test]
fn pod_to_pod_across_nodes_crosses_both_bridges_and_the_node_network() {
    let plan = plan();
    let mut sim = Sim::from_plan(&plan);
    let (a, b) = (pod(&plan, "a"), pod(&plan, "b"));
    let w = walk(
        &plan,
        &mut sim,
        &a.netns,
        Protocol::Tcp,
        flow(a.ip, b.ip, 8080),
        &Deltas::new(),
    );
    assert_eq!(w.end, End::Local, "{w:#?}");
    assert_eq!(
        names(&w),
        [
            "tt-default-a",
            "tt-node-1",
            "tt-net",
            "tt-node-2",
            "tt-default-b"
        ]
    );
    let h = &w.hops;
    assert_eq!(h[0].kind, HopKind::Pod);
    let r = h[0].route.as_ref().expect("route");
    assert_eq!(
        r.to_string(),
        "default via 10.244.1.1 dev eth0 src 10.244.1.2"
    );
    assert_eq!(h[0].leaves_by.as_ref().map(|i| i.name.as_str()), Some(ETH0));
    // Into node-1 by a's veth on cni0, up to its IP stack (the frame was
    // for cni0's own address), out towards node-2.
    let inn = h[1].arrived_on.as_ref().expect("in");
    assert_eq!(inn.name, a.host_veth);
    assert_eq!(inn.bridge.as_deref(), Some("cni0"));
    assert_eq!(h[1].bridged, None);
    assert_eq!(
        h[1].route.as_ref().map(|r| r.to_string()).as_deref(),
        Some("10.244.2.0/24 via 172.18.0.3 dev eth0 src 172.18.0.2")
    );
    // The node network only switches the frame, to node-2's uplink.
    assert_eq!(h[2].kind, HopKind::Network);
    assert_eq!(h[2].route, None);
    let sw = h[2].bridged.as_ref().expect("bridged");
    assert_eq!((sw.bridge.as_str(), sw.port.as_str()), ("br0", "nd-node-2"));
    assert_eq!(sw.mac, sim.mac_of("tt-node-2", ETH0));
    // node-2 routes to its cni0, whose forwarding entry names b's veth.
    assert_eq!(
        h[3].arrived_on.as_ref().map(|i| i.name.as_str()),
        Some(ETH0)
    );
    let sw = h[3].bridged.as_ref().expect("bridged");
    assert_eq!(
        (sw.bridge.as_str(), sw.port.as_str()),
        ("cni0", b.host_veth.as_str())
    );
    assert_eq!(h[4].route.as_ref().map(|r| r.kind), Some(RouteKind::Local));
    assert_eq!(w.endpoint(&plan), None);
    let v = verdict(&w, &connected("default/b", a.ip), T);
    assert_eq!(v.kind, VerdictKind::Delivered);
    assert_eq!(v.hop, Some(5));
    assert!(v.detail.contains("(no SNAT)"), "{}", v.detail);
}

#[test]
fn same_node_pods_are_switched_by_cni0_alone() {
    let plan = plan();
    let mut sim = Sim::from_plan(&plan);
    let (a, c) = (pod(&plan, "a"), pod(&plan, "c"));
    let w = walk(
        &plan,
        &mut sim,
        &a.netns,
        Protocol::Tcp,
        flow(a.ip, c.ip, 8080),
        &Deltas::new(),
    );
    assert_eq!(w.end, End::Local, "{w:#?}");
    assert_eq!(names(&w), ["tt-default-a", "tt-node-1", "tt-default-c"]);
    // The pod's own subnet is on-link: the frame goes to c's MAC, and
    // node-1's bridge switches it without routing.
    assert_eq!(w.hops[1].route, None);
    let sw = w.hops[1].bridged.as_ref().expect("bridged");
    assert_eq!(sw.port, c.host_veth);
}

fn web_dnat(plan: &Plan, sim: &mut Sim, client: &crate::plan::PodPlan, to: Ipv4Addr) -> Tuple {
    let svc = plan.services.iter().find(|s| s.name == "web").expect("web");
    let cip = svc.cluster_ip.expect("cluster ip");
    let f = flow(client.ip, cip, 80);
    sim.conntrack.push((
        "tt-node-1".into(),
        conntrack::Entry {
            protocol: "tcp".into(),
            state: Some("TIME_WAIT".into()),
            original: f,
            reply: Tuple {
                src: to,
                sport: 8080,
                dst: client.ip,
                dport: f.sport,
            },
        },
    ));
    f
}

fn kube_proxy_json(cip: Ipv4Addr, b: Ipv4Addr, c: Ipv4Addr, empty: Ipv4Addr) -> String {
    format!(
        r#"{{"nftables": [{{"metainfo": {{"version": "1.0.6"}}}},
  {{"map": {{"family": "ip", "name": "service-ips", "table": "kube-proxy", "type": ["ipv4_addr", "inet_proto", "inet_service"], "map": "verdict",
    "elem": [[{{"concat": ["{cip}", "tcp", 80]}}, {{"goto": {{"target": "service-AAAA-default/web/tcp/"}}}}]]}}}},
  {{"map": {{"family": "ip", "name": "no-endpoint-services", "table": "kube-proxy", "type": ["ipv4_addr", "inet_proto", "inet_service"], "map": "verdict",
    "elem": [[{{"concat": ["{empty}", "tcp", 80]}}, {{"goto": {{"target": "reject-chain"}}}}]]}}}},
  {{"rule": {{"family": "ip", "table": "kube-proxy", "chain": "service-AAAA-default/web/tcp/", "comment": "endpoint default/b {b}:8080 (1 in 2)",
    "expr": [{{"match": {{"op": "==", "left": {{"numgen": {{"mode": "random", "mod": 2, "offset": 0}}}}, "right": 0}}}}, {{"dnat": {{"addr": "{b}", "port": 8080}}}}]}}}},
  {{"rule": {{"family": "ip", "table": "kube-proxy", "chain": "service-AAAA-default/web/tcp/", "comment": "endpoint default/c {c}:8080",
    "expr": [{{"dnat": {{"addr": "{c}", "port": 8080}}}}]}}}}]}}"#
    )
}

#[test]
fn a_cluster_ip_continues_to_the_endpoint_conntrack_names() {
    let plan = plan();
    let mut sim = Sim::from_plan(&plan);
    let (a, b, c) = (pod(&plan, "a"), pod(&plan, "b"), pod(&plan, "c"));
    let f = web_dnat(&plan, &mut sim, a, b.ip);
    let empty = Ipv4Addr::new(10, 96, 9, 9);
    sim.tables.insert(
        "tt-node-1".into(),
        NatTable::parse(&kube_proxy_json(f.dst, b.ip, c.ip, empty)),
    );
    let w = walk(&plan, &mut sim, &a.netns, Protocol::Tcp, f, &Deltas::new());
    assert_eq!(w.end, End::Local, "{w:#?}");
    assert_eq!(names(&w).last(), Some(&"tt-default-b"));
    let nat = w.hops[1].nat.as_ref().expect("nat on node-1");
    assert_eq!(
        nat.dnat,
        Some(Rewrite {
            from: SocketAddrV4::new(f.dst, 80),
            to: SocketAddrV4::new(b.ip, 8080)
        })
    );
    assert_eq!(nat.snat, None);
    assert_eq!(nat.service.as_deref(), Some("svc/default/web"));
    assert_eq!(nat.chain.as_deref(), Some("service-AAAA-default/web/tcp/"));
    assert_eq!(
        nat.rule.as_deref(),
        Some(format!("endpoint default/b {}:8080 (1 in 2)", b.ip).as_str())
    );
    // Routed on node-1 towards node-2, where b lives.
    assert_eq!(
        w.hops[1].route.as_ref().and_then(|r| r.gateway),
        plan.node("node-2").map(|n| n.ip)
    );
    let e = w.endpoint(&plan).expect("endpoint");
    assert_eq!((e.ip, e.port), (b.ip, 8080));
    assert_eq!(e.pod.as_deref(), Some("default/b"));
    assert_eq!(e.node.as_deref(), Some("node-2"));
    assert_eq!(w.flow.dst, b.ip);
    // The other endpoint, on the same node: no node network at all.
    let mut sim = Sim::from_plan(&plan);
    let f = web_dnat(&plan, &mut sim, a, c.ip);
    let w = walk(&plan, &mut sim, &a.netns, Protocol::Tcp, f, &Deltas::new());
    assert_eq!(names(&w), ["tt-default-a", "tt-node-1", "tt-default-c"]);
}

#[test]
fn a_service_without_endpoints_is_rejected_where_kube_proxy_runs() {
    let plan = plan();
    let mut sim = Sim::from_plan(&plan);
    let (a, b, c) = (pod(&plan, "a"), pod(&plan, "b"), pod(&plan, "c"));
    let empty = Ipv4Addr::new(10, 96, 9, 9);
    sim.tables.insert(
        "tt-node-1".into(),
        NatTable::parse(&kube_proxy_json(
            Ipv4Addr::new(10, 96, 0, 1),
            b.ip,
            c.ip,
            empty,
        )),
    );
    let w = walk(
        &plan,
        &mut sim,
        &a.netns,
        Protocol::Tcp,
        flow(a.ip, empty, 80),
        &Deltas::new(),
    );
    assert_eq!(
        w.end,
        End::Rejected {
            chain: "reject-chain".into(),
            service: None
        }
    );
    assert_eq!(w.hops.len(), 2);
    assert!(w.hops[1]
        .filter
        .as_deref()
        .is_some_and(|f| f.contains("no-endpoint-services")));
    let v = verdict(&w, &Seen::Refused, T);
    assert_eq!(v.kind, VerdictKind::Refused);
    assert!(v.detail.contains("has no endpoints"), "{}", v.detail);
}

#[test]
fn a_policy_drop_names_the_isolated_pod_and_its_policies() {
    let plan = plan();
    let mut sim = Sim::from_plan(&plan);
    let (a, b) = (pod(&plan, "a"), pod(&plan, "b"));
    let mut deltas = Deltas::new();
    deltas
        .entry("tt-node-2".into())
        .or_default()
        .insert(netpol::drop_counter(PolicyType::Ingress, "default", "b"), 2);
    let w = walk(
        &plan,
        &mut sim,
        &a.netns,
        Protocol::Tcp,
        flow(a.ip, b.ip, 8080),
        &deltas,
    );
    assert_eq!(names(&w).last(), Some(&"tt-node-2"));
    let End::Dropped { policies, .. } = &w.end else {
        panic!("not dropped: {w:#?}");
    };
    assert_eq!(policies, &["default/deny-all"]);
    let v = verdict(&w, &Seen::Blocked(None), T);
    assert_eq!(v.kind, VerdictKind::Dropped);
    assert_eq!(v.policies, ["default/deny-all"]);
    assert!(
        v.detail.contains("ingress isolation of default/b"),
        "{}",
        v.detail
    );
    // An allow counter that moved is shown, and the walk goes on.
    let mut deltas = Deltas::new();
    deltas
        .entry("tt-node-2".into())
        .or_default()
        .insert(netpol::allow_counter("default", "deny-all"), 1);
    let w = walk(
        &plan,
        &mut sim,
        &a.netns,
        Protocol::Tcp,
        flow(a.ip, b.ip, 8080),
        &deltas,
    );
    assert_eq!(w.end, End::Local);
    assert_eq!(
        w.hops[3].policy,
        ["ingress of default/b allowed by default/deny-all"]
    );
}

#[test]
fn a_missing_route_ends_where_the_kernel_has_none() {
    let plan = plan();
    let mut sim = Sim::from_plan(&plan);
    let (a, b) = (pod(&plan, "a"), pod(&plan, "b"));
    // `ip route del 10.244.2.0/24` on node-1: the default route takes it
    // to the node network's bridge address, which routes nowhere.
    let node2 = plan.node("node-2").expect("node-2").pod_cidr;
    sim.ns
        .get_mut("tt-node-1")
        .expect("node-1")
        .routes
        .retain(|r| r.net != node2);
    let gw = plan.net.gateway;
    let br0 = sim.mac_of("tt-net", "br0");
    sim.neigh("tt-node-1", ETH0, gw, br0);
    let w = walk(
        &plan,
        &mut sim,
        &a.netns,
        Protocol::Tcp,
        flow(a.ip, b.ip, 8080),
        &Deltas::new(),
    );
    assert_eq!(w.end, End::NoRoute(b.ip), "{w:#?}");
    assert_eq!(names(&w), ["tt-default-a", "tt-node-1", "tt-net"]);
    assert_eq!(
        w.hops[1].route.as_ref().map(|r| r.to_string()).as_deref(),
        Some("default via 172.18.0.1 dev eth0 src 172.18.0.2")
    );
    let v = verdict(&w, &Seen::Blocked(None), T);
    assert_eq!(v.kind, VerdictKind::NoRoute);
    assert!(
        v.detail.contains("has no route to 10.244.2.2"),
        "{}",
        v.detail
    );
    // Node-1 had no route of its own: its default route sent it on.
    assert!(
        v.detail
            .contains("node node-1 sent it there by its default route"),
        "{}",
        v.detail
    );
}

#[test]
fn a_missing_neighbour_or_a_moved_peer_stops_the_walk_with_the_reason() {
    let plan = plan();
    let (a, b) = (pod(&plan, "a"), pod(&plan, "b"));
    let mut sim = Sim::from_plan(&plan);
    let n2 = plan.node("node-2").expect("node-2").ip;
    let eth0 = sim.index("tt-node-1", ETH0);
    sim.ns
        .get_mut("tt-node-1")
        .expect("node-1")
        .facts
        .neighbours
        .retain(|n| !(n.ifindex == eth0 && n.ip == n2));
    let w = walk(
        &plan,
        &mut sim,
        &a.netns,
        Protocol::Tcp,
        flow(a.ip, b.ip, 8080),
        &Deltas::new(),
    );
    // The node network is where the walk stops, but node-1 is where the
    // packet stayed: it could not resolve node-2's address.
    let End::Lost { why, back: 1 } = &w.end else {
        panic!("{w:#?}")
    };
    assert!(why.contains("no neighbour entry for 172.18.0.3"), "{why}");
    let v = verdict(&w, &Seen::Blocked(None), T);
    assert_eq!(v.kind, VerdictKind::Dropped);
    assert_eq!(v.hop, Some(2), "{v:#?}");
    assert!(
        v.detail.starts_with("node node-1 drops the packet"),
        "{}",
        v.detail
    );

    // A neighbour entry with a MAC no bridge port has: flooded, taken by
    // nobody, and the entry is named.
    let mut sim = Sim::from_plan(&plan);
    let cni0 = sim.index("tt-node-2", crate::plan::POD_BRIDGE);
    for n in &mut sim
        .ns
        .get_mut("tt-node-2")
        .expect("node-2")
        .facts
        .neighbours
    {
        if n.ifindex == cni0 && n.ip == b.ip {
            n.mac = "02:00:00:00:00:01".into();
        }
    }
    let w = walk(
        &plan,
        &mut sim,
        &a.netns,
        Protocol::Tcp,
        flow(a.ip, b.ip, 8080),
        &Deltas::new(),
    );
    let v = verdict(&w, &Seen::Blocked(None), T);
    assert_eq!(v.kind, VerdictKind::Dropped, "{w:#?}");
    assert_eq!(names(&w).last().copied(), Some("tt-node-2"));
    assert!(
        v.detail
            .contains("its neighbour entry gives 10.244.2.2 the MAC 02:00:00:00:00:01"),
        "{}",
        v.detail
    );

    // b's veth is not where the plan says: the kernel's peer is believed.
    let mut sim = Sim::from_plan(&plan);
    let idx = sim.index("tt-node-2", &b.host_veth);
    sim.get_link("tt-node-2", idx).peer = Some(99);
    let w = walk(
        &plan,
        &mut sim,
        &a.netns,
        Protocol::Tcp,
        flow(a.ip, b.ip, 8080),
        &Deltas::new(),
    );
    let End::Stuck(why) = &w.end else {
        panic!("{w:#?}")
    };
    assert!(why.contains("is not in tt-default-b"), "{why}");
}

#[test]
fn external_to_a_node_port_is_translated_twice_and_masqueraded() {
    let plan = plan();
    let mut sim = Sim::from_plan(&plan);
    let b = pod(&plan, "b");
    let ext = plan
        .clients
        .iter()
        .find(|c| c.name == "external")
        .expect("external");
    let n1 = plan.node("node-1").expect("node-1").ip;
    let f = flow(ext.ip, n1, 30080);
    sim.conntrack.push((
        "tt-node-1".into(),
        conntrack::Entry {
            protocol: "tcp".into(),
            state: Some("SYN_SENT when made, removed since".into()),
            original: f,
            reply: Tuple {
                src: b.ip,
                sport: 8080,
                dst: n1,
                dport: 5555,
            },
        },
    ));
    let w = walk(
        &plan,
        &mut sim,
        &ext.netns,
        Protocol::Tcp,
        f,
        &Deltas::new(),
    );
    assert_eq!(w.end, End::Local, "{w:#?}");
    assert_eq!(
        names(&w),
        [
            "tt-external",
            "tt-net",
            "tt-node-1",
            "tt-net",
            "tt-node-2",
            "tt-default-b"
        ]
    );
    let nat = w.hops[2].nat.as_ref().expect("nat");
    assert_eq!(nat.snat.map(|s| s.to), Some(SocketAddrV4::new(n1, 5555)));
    assert_eq!(w.original_source(), ext.ip);
    let v = verdict(&w, &connected("default/b", n1), T);
    assert_eq!(v.kind, VerdictKind::Delivered);
    assert!(!v.detail.contains("no SNAT"), "{}", v.detail);
}

#[test]
fn a_loop_is_cut_short() {
    let plan = plan();
    let mut sim = Sim::from_plan(&plan);
    let (a, b) = (pod(&plan, "a"), pod(&plan, "b"));
    // Each node sends the other's pods back to the other.
    let n1 = plan.node("node-1").expect("node-1");
    let n2 = plan.node("node-2").expect("node-2");
    let eth0 = sim.index(&n2.netns, ETH0);
    for r in &mut sim.ns.get_mut(&n2.netns).expect("node-2").routes {
        if r.net == n2.pod_cidr {
            r.via = Some(n1.ip);
            r.dev = eth0;
        }
    }
    let w = walk(
        &plan,
        &mut sim,
        &a.netns,
        Protocol::Tcp,
        flow(a.ip, b.ip, 8080),
        &Deltas::new(),
    );
    let End::Stuck(why) = &w.end else {
        panic!("{w:#?}")
    };
    assert!(why.contains("loop"), "{why}");
    assert_eq!(w.hops.len(), MAX_HOPS);
}

#[test]
fn counters_that_grew_are_the_only_deltas() {
    let c = |packets| Count { packets, bytes: 0 };
    let before = vec![(
        "n1".to_string(),
        BTreeMap::from([("allow-x".to_string(), c(3)), ("drop-y".to_string(), c(5))]),
    )];
    let after = vec![
        (
            "n1".to_string(),
            BTreeMap::from([
                ("allow-x".to_string(), c(4)),
                ("drop-y".to_string(), c(5)),
                ("new".to_string(), c(1)),
            ]),
        ),
        ("n2".to_string(), BTreeMap::from([("z".to_string(), c(0))])),
    ];
    let d = deltas(&before, &after);
    assert_eq!(
        d,
        Deltas::from([(
            "n1".to_string(),
            BTreeMap::from([("allow-x".to_string(), 1), ("new".to_string(), 1)])
        )])
    );
    // A reloaded table starts again from zero.
    let after = vec![(
        "n1".to_string(),
        BTreeMap::from([("allow-x".to_string(), c(1))]),
    )];
    assert_eq!(deltas(&before, &after)["n1"]["allow-x"], 1);
}

#[test]
fn the_load_balancers_dnat_through_a_map_is_found() {
    let json = r#"{"nftables": [{"rule": {"family": "ip", "table": "cloud-lb", "chain": "prerouting",
      "comment": "default/web-lb 172.18.0.200:80 -> nodePort 30469 on node-1,node-2",
      "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "172.18.0.200"}},
               {"dnat": {"family": "ip", "addr": {"map": {"key": {"numgen": {"mode": "random", "mod": 2, "offset": 0}},
                 "data": {"set": [[0, "172.18.0.2"], [1, "172.18.0.3"]]}}}, "port": 30469}}]}}]}"#;
    let t = NatTable::parse(json);
    let to = SocketAddrV4::new(Ipv4Addr::new(172, 18, 0, 3), 30469);
    let r = t.dnat_rule(None, to).expect("rule");
    assert_eq!(r.chain, "prerouting");
    assert!(t
        .dnat_rule(None, SocketAddrV4::new(Ipv4Addr::new(172, 18, 0, 3), 1))
        .is_none());
    assert!(NatTable::parse("not json").rules.is_empty());
}

#[test]
fn addresses_in_the_lab_are_labelled_with_what_they_are() {
    let file = crate::lab::parse(
        "t.yaml",
        &format!(
            "{LAB}---\napiVersion: v1\nkind: Service\nmetadata: {{name: np}}\nspec:\n  type: NodePort\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080, nodePort: 30080}}]\n"
        ),
    )
    .expect("parses");
    let plan = crate::plan::build(&file).expect("plans");
    let n1 = plan.node("node-1").expect("node").ip;
    let d = address(&plan, n1, None, None);
    assert_eq!(d.port, 30080);
    assert_eq!(d.protocol, Protocol::Tcp);
    assert_eq!(
        d.label,
        format!("node/node-1 {n1}:30080/TCP (NodePort of svc/default/np)")
    );
    let ext = plan.clients[0].ip;
    let d = address(&plan, ext, Some(8443), Some(Protocol::Udp));
    assert_eq!((d.port, d.protocol), (8443, Protocol::Udp));
    assert_eq!(d.label, format!("external {ext}:8443/UDP"));
}
