//! `compare_extras` on recorded kernel views: a node as `up` leaves it has
//! nothing extra; each thing the lab did not make is one finding.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::*;
use crate::kernel::change::RouteKind;
use crate::kernel::inspect::{Address, Link};
use crate::kernel::objects::{NeighbourEntry, Object, Objects, RouteEntry, RuleEntry};

fn demo() -> Plan {
    let lab = crate::lab::parse(crate::lab::DEMO_SOURCE, crate::lab::DEMO).expect("demo lab");
    crate::plan::build(&lab).expect("demo plan")
}

fn link(index: u32, name: &str, master: Option<u32>, hairpin: Option<bool>) -> Link {
    Link {
        index,
        name: name.into(),
        up: true,
        master,
        mtu: 1500,
        kind: None,
        peer: None,
        mac: None,
        hairpin,
    }
}

fn route(
    table: u32,
    kind: RouteKind,
    dst: Ipv4Addr,
    prefix: u8,
    via: Option<Ipv4Addr>,
    dev: Option<(u32, &str)>,
    proto: &str,
) -> RouteEntry {
    let mut r = RouteEntry {
        table,
        kind,
        dst,
        prefix,
        gateway: via,
        oif: dev.map(|d| d.0),
        dev: dev.map(|d| d.1.to_string()),
        proto: proto.into(),
        text: String::new(),
    };
    r.text = r.route().to_string();
    r
}

fn rule(priority: u32, table: u32, action: &str) -> RuleEntry {
    let mut r = RuleEntry::new(priority, None, None, &format!("lookup {action}"));
    r.table = table;
    r
}

/// node-1 as `up` makes it: lo, eth0, cni0 and its pods' ports with
/// hairpin, their addresses, the kernel's connected and local routes, the
/// plan's routes, the three default rules.
fn node_view(plan: &Plan) -> (String, NetnsView) {
    let n = &plan.nodes[0];
    let other = &plan.nodes[1];
    let mut links = vec![
        link(1, "lo", None, None),
        link(2, "eth0", None, None),
        link(3, "cni0", None, None),
    ];
    for (i, p) in plan.pods.iter().filter(|p| p.node == n.name).enumerate() {
        links.push(link(10 + i as u32, &p.host_veth, Some(3), Some(true)));
    }
    let prefix = plan.net.cidr.prefix_len();
    let addresses = vec![
        Address {
            index: 1,
            ip: Ipv4Addr::LOCALHOST,
            prefix: 8,
        },
        Address {
            index: 2,
            ip: n.ip,
            prefix,
        },
        Address {
            index: 3,
            ip: n.pod_gateway,
            prefix: n.pod_cidr.prefix_len(),
        },
    ];
    let main = crate::kernel::objects::MAIN_TABLE;
    let local = crate::kernel::objects::LOCAL_TABLE;
    let routes = vec![
        route(
            main,
            RouteKind::Unicast,
            Ipv4Addr::UNSPECIFIED,
            0,
            Some(plan.net.gateway),
            Some((2, "eth0")),
            "static",
        ),
        route(
            main,
            RouteKind::Unicast,
            plan.net.cidr.network(),
            prefix,
            None,
            Some((2, "eth0")),
            "kernel",
        ),
        route(
            main,
            RouteKind::Unicast,
            n.pod_cidr.network(),
            n.pod_cidr.prefix_len(),
            None,
            Some((3, "cni0")),
            "kernel",
        ),
        route(
            main,
            RouteKind::Unicast,
            other.pod_cidr.network(),
            other.pod_cidr.prefix_len(),
            Some(other.ip),
            Some((2, "eth0")),
            "static",
        ),
        route(
            local,
            RouteKind::Local,
            n.ip,
            32,
            None,
            Some((2, "eth0")),
            "kernel",
        ),
        route(
            local,
            RouteKind::Broadcast,
            plan.net.cidr.broadcast(),
            32,
            None,
            Some((2, "eth0")),
            "kernel",
        ),
    ];
    let objects = Objects {
        routes,
        rules: vec![
            rule(0, 255, "local"),
            rule(32766, 254, "main"),
            rule(32767, 253, "default"),
        ],
        neighbours: Vec::new(),
    };
    let view = NetnsView {
        links,
        addresses,
        routes: Vec::new(),
        qdiscs: Vec::new(),
        objects,
        nft_generation: None,
    };
    (n.netns.clone(), view)
}

fn extras(plan: &Plan, ns: &str, v: NetnsView) -> Vec<Finding> {
    let views: HashMap<String, NetnsView> = [(ns.to_string(), v)].into_iter().collect();
    compare_extras(&crate::plan::desired::namespaces(plan, ""), &views)
}

#[test]
fn a_node_as_up_makes_it_has_nothing_extra() {
    let plan = demo();
    let (ns, v) = node_view(&plan);
    assert_eq!(extras(&plan, &ns, v), Vec::new());
}

#[test]
fn each_thing_the_lab_did_not_make_is_a_finding() {
    let plan = demo();
    let (ns, mut v) = node_view(&plan);
    let other = &plan.nodes[1];
    // A blackhole in place of the route to node-2's pods, a rule, a
    // static neighbour, an address, a port with hairpin off.
    let r = v
        .objects
        .routes
        .iter_mut()
        .find(|r| r.gateway == Some(other.ip))
        .expect("route");
    r.kind = RouteKind::Blackhole;
    r.gateway = None;
    r.dev = None;
    r.oif = None;
    r.text = r.route().to_string();
    assert_eq!(r.text, "blackhole 10.244.2.0/24");
    let blackhole = r.clone();
    let prohibit = RuleEntry::new(
        100,
        None,
        Some("10.244.1.0/24".parse().unwrap()),
        "prohibit",
    );
    assert_eq!(prohibit.text, "100: from all to 10.244.1.0/24 prohibit");
    v.objects.rules.push(prohibit);
    v.objects.neighbours.push(NeighbourEntry {
        ip: Ipv4Addr::new(10, 244, 1, 2),
        dev: "cni0".into(),
        mac: "02:00:00:00:00:01".into(),
        text: "10.244.1.2 dev cni0 lladdr 02:00:00:00:00:01 PERMANENT".into(),
    });
    v.addresses.push(Address {
        index: 2,
        ip: Ipv4Addr::new(10, 9, 9, 9),
        prefix: 24,
    });
    // Its connected route goes with the address: not a finding of its own.
    v.objects.routes.push(route(
        crate::kernel::objects::MAIN_TABLE,
        RouteKind::Unicast,
        Ipv4Addr::new(10, 9, 9, 0),
        24,
        None,
        Some((2, "eth0")),
        "kernel",
    ));
    let port = v
        .links
        .iter_mut()
        .find(|l| l.master == Some(3))
        .expect("a pod's port");
    port.hairpin = Some(false);
    let port = port.name.clone();
    let found = extras(&plan, &ns, v);
    let kinds: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        found.contains(&Finding::Extra {
            netns: ns.clone(),
            object: Object::Route(blackhole)
        }),
        "{kinds:?}"
    );
    assert!(
        found.iter().any(|f| matches!(
            f,
            Finding::Extra {
                object: Object::Rule(_),
                ..
            }
        )),
        "{kinds:?}"
    );
    assert!(
        found.iter().any(|f| matches!(
            f,
            Finding::Extra {
                object: Object::Neighbour(_),
                ..
            }
        )),
        "{kinds:?}"
    );
    assert!(
        found.contains(&Finding::ExtraAddress {
            netns: ns.clone(),
            link: "eth0".into(),
            address: "10.9.9.9/24".parse().unwrap()
        }),
        "{kinds:?}"
    );
    assert!(
        found.contains(&Finding::HairpinOff {
            netns: ns.clone(),
            link: port
        }),
        "{kinds:?}"
    );
    assert_eq!(found.len(), 5, "one finding each, no more: {kinds:?}");
}

#[test]
fn a_route_in_another_table_is_not_the_labs() {
    let plan = demo();
    let (ns, mut v) = node_view(&plan);
    v.objects.routes.push(route(
        100,
        RouteKind::Unicast,
        Ipv4Addr::UNSPECIFIED,
        0,
        Some(Ipv4Addr::new(172, 18, 0, 9)),
        Some((2, "eth0")),
        "static",
    ));
    let found = extras(&plan, &ns, v);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(matches!(
        &found[0],
        Finding::Extra {
            object: Object::Route(_),
            ..
        }
    ));
}

/// The link, address and route checks of `compare_views` on one node.
fn drift(plan: &Plan, ns: &str, v: &NetnsView, pods_present: bool) -> Vec<Finding> {
    let want = crate::plan::desired::namespaces(plan, "");
    let mut views: HashMap<String, NetnsView> = HashMap::new();
    if pods_present {
        for p in &plan.pods {
            views.insert(p.netns.clone(), NetnsView::default());
        }
    }
    views.insert(ns.to_string(), v.clone());
    let mut out = Vec::new();
    compare_links(ns, &want[ns], v, &views, &mut out);
    compare_addresses(ns, &want[ns], v, &mut out);
    compare_routes(ns, &want[ns], v, &mut out);
    out
}

/// `node_view` with its main table as the route checks read it.
fn node_view_with_routes(plan: &Plan) -> (String, NetnsView) {
    let (ns, mut v) = node_view(plan);
    v.routes = v
        .objects
        .routes
        .iter()
        .filter(|r| r.table == crate::kernel::objects::MAIN_TABLE)
        .map(|r| crate::kernel::inspect::Route {
            dst: r.dst,
            prefix: r.prefix,
            gateway: r.gateway,
            oif: r.oif,
        })
        .collect();
    for l in &mut v.links {
        l.mtu = plan.mtu;
        l.kind = match l.name.as_str() {
            "lo" => None,
            "cni0" => Some("bridge".into()),
            _ => Some("veth".into()),
        };
    }
    (ns, v)
}

/// The bridge port of node-1's first pod.
fn first_port(plan: &Plan) -> String {
    plan.pods
        .iter()
        .find(|p| p.node == plan.nodes[0].name)
        .map(|p| p.host_veth.clone())
        .expect("a pod on node-1")
}

#[test]
fn a_node_as_up_makes_it_holds_every_planned_link_address_and_route() {
    let plan = demo();
    let (ns, v) = node_view_with_routes(&plan);
    assert_eq!(drift(&plan, &ns, &v, true), Vec::new());
}

#[test]
fn each_link_difference_is_one_typed_finding() {
    let plan = demo();
    let (ns, mut v) = node_view_with_routes(&plan);
    let port = first_port(&plan);
    let l = v.links.iter_mut().find(|l| l.name == port).expect("port");
    l.master = None;
    l.mtu = 1400;
    let eth0 = v.links.iter_mut().find(|l| l.name == "eth0").expect("eth0");
    eth0.up = false;
    // A learner's bridge, and a tunnel module's fallback device (ignored).
    v.links.push(link(90, "br-extra", None, None));
    // cni0 made anew by hand as a veth: its kind is what is wrong.
    let cni0 = v.links.iter_mut().find(|l| l.name == "cni0").expect("cni0");
    cni0.kind = Some("veth".into());
    let mut tunl = link(91, "tunl0", None, None);
    tunl.up = false;
    v.links.push(tunl);
    // cni0 lost its address; the default route is gone.
    v.addresses.retain(|a| a.index != 3);
    v.routes.retain(|r| r.prefix != 0);
    let found = drift(&plan, &ns, &v, true);
    let want = [
        Finding::LinkDown {
            netns: ns.clone(),
            link: "eth0".into(),
        },
        Finding::WrongMtu {
            netns: ns.clone(),
            link: port.clone(),
            want: plan.mtu,
            have: 1400,
        },
        Finding::NotOnBridge {
            netns: ns.clone(),
            link: port.clone(),
            bridge: "cni0".into(),
        },
        Finding::ExtraLink {
            netns: ns.clone(),
            link: "br-extra".into(),
        },
        Finding::WrongKind {
            netns: ns.clone(),
            link: "cni0".into(),
            want: "bridge".into(),
            have: "veth".into(),
        },
        Finding::WrongAddress {
            netns: ns.clone(),
            link: "cni0".into(),
            want: Ipv4Net::new(plan.nodes[0].pod_gateway, 24).expect("net"),
            have: Vec::new(),
        },
        Finding::MissingRoute {
            netns: ns.clone(),
            route: Route::via(Ipv4Net::default(), plan.net.gateway),
        },
    ];
    for w in &want {
        assert!(found.contains(w), "{w} not in {found:?}");
    }
    assert_eq!(found.len(), want.len(), "{found:?}");
}

#[test]
fn a_missing_port_is_reported_on_the_side_whose_namespace_is_there() {
    let plan = demo();
    let (ns, mut v) = node_view_with_routes(&plan);
    let port = first_port(&plan);
    v.links.retain(|l| l.name != port);
    let missing = Finding::MissingLink {
        netns: ns.clone(),
        link: port,
    };
    assert_eq!(drift(&plan, &ns, &v, true), vec![missing]);
    // With the pod's namespace gone, that is the finding (elsewhere).
    assert_eq!(drift(&plan, &ns, &v, false), Vec::new());
}
