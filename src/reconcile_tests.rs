//! Finding → repair on the demo plan: every kind of drift maps to the
//! change a learner would type, from the finding's typed objects.

use super::*;
use crate::kernel::change::{Route, RouteKind};
use crate::kernel::objects::{NeighbourEntry, RouteEntry, RuleEntry};

fn demo() -> Plan {
    let lab = crate::lab::parse(crate::lab::DEMO_SOURCE, crate::lab::DEMO).expect("demo lab");
    crate::plan::build(&lab).expect("demo plan")
}

fn change_of(plan: &Plan, f: Finding) -> Change {
    match repair_for(plan, &f) {
        Repair::Change(c) => c,
        other => panic!("{f}: {other:?}"),
    }
}

#[test]
fn a_missing_route_is_replaced_from_its_typed_value() {
    let plan = demo();
    let n = &plan.nodes[0];
    let r = &n.routes[0];
    let c = change_of(
        &plan,
        Finding::MissingRoute {
            netns: n.netns.clone(),
            route: Route::via(r.dst, r.via),
        },
    );
    assert_eq!(
        c,
        Change::Route {
            netns: n.netns.clone(),
            op: RouteOp::Replace,
            route: Route::via(r.dst, r.via),
        }
    );
    assert_eq!(
        c.to_string(),
        format!("{}: ip route replace {} via {}", n.netns, r.dst, r.via)
    );
    let c = change_of(
        &plan,
        Finding::MissingRoute {
            netns: n.netns.clone(),
            route: Route::via(Ipv4Net::default(), plan.net.gateway),
        },
    );
    assert!(
        c.command()
            .ends_with(&format!("default via {}", plan.net.gateway)),
        "{c}"
    );
}

#[test]
fn what_the_lab_did_not_make_is_deleted_as_listed() {
    let plan = demo();
    let ns = plan.nodes[0].netns.clone();
    let mut blackhole = RouteEntry {
        table: crate::kernel::objects::MAIN_TABLE,
        kind: RouteKind::Blackhole,
        dst: "10.244.2.0".parse().unwrap(),
        prefix: 24,
        gateway: None,
        oif: None,
        dev: None,
        proto: "boot".into(),
        text: String::new(),
    };
    blackhole.text = blackhole.route().to_string();
    let c = change_of(
        &plan,
        Finding::Extra {
            netns: ns.clone(),
            object: Object::Route(blackhole),
        },
    );
    match &c {
        Change::Route {
            op: RouteOp::Del,
            route,
            ..
        } => {
            assert_eq!(route.kind, RouteKind::Blackhole);
            assert_eq!(route.dst.to_string(), "10.244.2.0/24");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.command(), "ip route del blackhole 10.244.2.0/24");

    let rule = RuleEntry::new(
        100,
        None,
        Some("10.244.1.0/24".parse().unwrap()),
        "prohibit",
    );
    let c = change_of(
        &plan,
        Finding::Extra {
            netns: ns.clone(),
            object: Object::Rule(rule.clone()),
        },
    );
    assert_eq!(
        c,
        Change::DeleteRule {
            netns: ns.clone(),
            rule
        }
    );
    assert_eq!(
        c.command(),
        "ip rule del pref 100 from all to 10.244.1.0/24 prohibit"
    );

    let neighbour = NeighbourEntry {
        ip: "10.244.1.2".parse().unwrap(),
        dev: "cni0".into(),
        mac: "02:00:00:00:00:01".into(),
        text: "10.244.1.2 dev cni0 lladdr 02:00:00:00:00:01 PERMANENT".into(),
    };
    let c = change_of(
        &plan,
        Finding::Extra {
            netns: ns,
            object: Object::Neighbour(neighbour),
        },
    );
    assert_eq!(
        c.command(),
        "ip neigh del 10.244.1.2 dev cni0 lladdr 02:00:00:00:00:01"
    );
}

#[test]
fn links_addresses_sysctls_qdiscs_and_hairpin_map_to_one_change_each() {
    let plan = demo();
    let n = &plan.nodes[0];
    let ns = || n.netns.clone();
    let cases: Vec<(Finding, &str)> = vec![
        (
            Finding::LinkDown {
                netns: ns(),
                link: ETH0.into(),
            },
            "ip link set eth0 up",
        ),
        (
            Finding::WrongMtu {
                netns: ns(),
                link: ETH0.into(),
                want: 1500,
                have: 1400,
            },
            "ip link set eth0 mtu 1500",
        ),
        (
            Finding::Sysctl {
                netns: ns(),
                key: "net.ipv4.ip_forward".into(),
                want: "1".into(),
                have: "0".into(),
            },
            "sysctl -w net.ipv4.ip_forward=1",
        ),
        (
            Finding::Qdisc {
                netns: ns(),
                link: ETH0.into(),
                qdisc: "tbf".into(),
            },
            "tc qdisc del dev eth0 root",
        ),
        (
            Finding::HairpinOff {
                netns: ns(),
                link: "veth1".into(),
            },
            "ip link set veth1 type bridge_slave hairpin on",
        ),
        (
            Finding::Rules {
                netns: ns(),
                family: "inet".into(),
                table: "someone".into(),
                differences: vec![observe::rules::FOREIGN_TABLE.into()],
            },
            "nft delete table inet someone",
        ),
    ];
    for (f, want) in cases {
        assert_eq!(change_of(&plan, f).command(), want);
    }
    // An extra address: back to exactly the plan's.
    let c = change_of(
        &plan,
        Finding::ExtraAddress {
            netns: ns(),
            link: ETH0.into(),
            address: "10.9.9.9/24".parse().unwrap(),
        },
    );
    let want = Ipv4Net::new(n.ip, plan.net.cidr.prefix_len()).unwrap();
    assert_eq!(
        c,
        Change::Addresses {
            netns: ns(),
            link: ETH0.into(),
            want: vec![want],
        }
    );
    let c = change_of(
        &plan,
        Finding::ExtraAddress {
            netns: ns(),
            link: "lo".into(),
            address: "127.0.0.2/8".parse().unwrap(),
        },
    );
    assert!(c.command().ends_with("set to 127.0.0.1/8"), "{c}");
}

#[test]
fn what_no_change_puts_back_is_said() {
    let plan = demo();
    let p = &plan.pods[0];
    let node = plan.node(&p.node).unwrap();
    assert_eq!(
        repair_for(
            &plan,
            &Finding::MissingNamespace {
                netns: p.netns.clone()
            }
        ),
        Repair::Recreate(p.key())
    );
    assert_eq!(
        repair_for(
            &plan,
            &Finding::MissingLink {
                netns: node.netns.clone(),
                link: p.host_veth.clone()
            }
        ),
        Repair::Recreate(p.key())
    );
    assert_eq!(
        repair_for(
            &plan,
            &Finding::Rules {
                netns: node.netns.clone(),
                family: "ip".into(),
                table: "kube-proxy".into(),
                differences: vec!["chain services: 1 rule missing".into()],
            }
        ),
        Repair::Reload(node.netns.clone())
    );
    assert_eq!(
        repair_for(
            &plan,
            &Finding::PodDown {
                pod: p.key(),
                status: "Stopped".into()
            }
        ),
        Repair::Restart(p.key())
    );
    assert!(matches!(
        repair_for(
            &plan,
            &Finding::MissingNamespace {
                netns: node.netns.clone()
            }
        ),
        Repair::Cannot(_)
    ));
}

#[test]
fn deletions_come_before_what_they_were_in_the_way_of() {
    let plan = demo();
    let n = &plan.nodes[0];
    let r = &n.routes[0];
    let mut blackhole = RouteEntry {
        table: crate::kernel::objects::MAIN_TABLE,
        kind: RouteKind::Blackhole,
        dst: r.dst.network(),
        prefix: r.dst.prefix_len(),
        gateway: None,
        oif: None,
        dev: None,
        proto: "boot".into(),
        text: String::new(),
    };
    blackhole.text = blackhole.route().to_string();
    let findings = vec![
        Finding::MissingRoute {
            netns: n.netns.clone(),
            route: Route::via(r.dst, r.via),
        },
        Finding::LinkDown {
            netns: n.netns.clone(),
            link: ETH0.into(),
        },
        Finding::Extra {
            netns: n.netns.clone(),
            object: Object::Route(blackhole),
        },
        // A wrong and an extra address of one link: one change.
        Finding::WrongAddress {
            netns: n.netns.clone(),
            link: ETH0.into(),
            want: Ipv4Net::new(n.ip, 24).unwrap(),
            have: vec![],
        },
        Finding::ExtraAddress {
            netns: n.netns.clone(),
            link: ETH0.into(),
            address: "10.9.9.9/24".parse().unwrap(),
        },
    ];
    let r = repairs(&plan, &findings);
    let commands: Vec<String> = r.changes.iter().map(Change::command).collect();
    assert_eq!(commands.len(), 4, "{commands:?}");
    assert!(
        commands[0].starts_with("ip route del blackhole"),
        "{commands:?}"
    );
    assert_eq!(commands[1], "ip link set eth0 up");
    assert!(commands[2].starts_with("addresses of eth0"), "{commands:?}");
    assert!(commands[3].starts_with("ip route replace"), "{commands:?}");
}
