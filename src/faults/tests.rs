//! The catalogue planned on a fixture lab: every fault's steps and their
//! exact inverse, target and parameter checking, seeded picks.

use std::collections::BTreeMap;

use super::*;
use crate::kernel::change::RouteOp;
use crate::lab::{self, LabFile};
use crate::plan;

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: f}
spec: {nodes: 3}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: node-2
  containers: [{name: web, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  nodeName: node-1
  containers: [{name: c, command: [sleep, "60"]}]
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
metadata: {name: web-from-client}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
"#;

fn fixture() -> (LabFile, Plan) {
    let file = lab::parse("f.yaml", LAB).expect("fixture parses");
    let plan = plan::build(&file).expect("fixture plans");
    (file, plan)
}

fn planned(
    name: &str,
    target: Option<&str>,
    params: &[(&str, &str)],
) -> Result<FaultPlan, FaultError> {
    let (file, plan) = fixture();
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    plan_fault(
        &Context {
            plan: &plan,
            file: Some(&file),
        },
        name,
        target,
        &params,
        None,
    )
}

#[test]
fn the_catalogue_covers_the_issue_and_every_section() {
    let names = names();
    for want in [
        "pod-down",
        "pod-interface-down",
        "node-link-down",
        "route-missing",
        "forwarding-off",
        "bridge-down",
        "kube-proxy-flushed",
        "stale-endpoints",
        "dns-stopped",
        "coredns-scaled-to-zero",
        "wrong-nameserver",
        "deny-all-policy",
        "policy-label-typo",
        "service-selector-typo",
        "wrong-target-port",
        "mtu-mismatch",
        "rate-limit",
        "packet-loss",
        "latency",
    ] {
        assert!(names.contains(&want), "{want} missing");
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate names");
    for s in Section::ALL {
        assert!(CATALOGUE.iter().any(|e| e.section == s), "{s:?}");
    }
}

#[test]
fn every_fault_plans_on_the_fixture_with_an_undo() {
    for e in CATALOGUE {
        let fp = planned(e.name, None, &[]).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        assert!(!fp.inject.is_empty() && !fp.undo.is_empty(), "{}", e.name);
        assert_eq!(fp.level, e.level, "{}", e.name);
        assert!(!fp.summary.is_empty());
        for s in fp.inject.iter().chain(&fp.undo) {
            assert!(!s.command().is_empty());
        }
    }
}

#[test]
fn kernel_undo_is_the_exact_inverse() {
    let fp = planned("route-missing", Some("node-1"), &[("to", "node-3")]).unwrap();
    assert_eq!(fp.params["to"], "node-3");
    match (&fp.inject[..], &fp.undo[..]) {
        (
            [Step::Change {
                change:
                    Change::Route {
                        op: RouteOp::Del,
                        route,
                        netns,
                    },
                ..
            }],
            [Step::Change {
                change:
                    Change::Route {
                        op: RouteOp::Add,
                        route: r2,
                        netns: n2,
                    },
                ..
            }],
        ) => {
            assert_eq!((route, netns), (r2, n2));
            assert_eq!(route.dst.to_string(), "10.244.3.0/24");
            assert_eq!(route.via, Some("172.18.0.4".parse().unwrap()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fp.inject[0].command(),
        "podlab exec node/node-1 -- ip route del 10.244.3.0/24 via 172.18.0.4"
    );
    // A link going down takes its routes: the undo puts them all back.
    let fp = planned("node-link-down", Some("node/node-2"), &[]).unwrap();
    let routes: Vec<String> = fp
        .undo
        .iter()
        .filter_map(|s| match s {
            Step::Change {
                change: Change::Route { route, .. },
                ..
            } => Some(route.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        routes,
        vec![
            "default via 172.18.0.1",
            "10.244.1.0/24 via 172.18.0.2",
            "10.244.3.0/24 via 172.18.0.4"
        ]
    );
    let fp = planned("pod-interface-down", Some("web"), &[]).unwrap();
    assert!(fp
        .undo
        .iter()
        .any(|s| s.command() == "podlab exec pod/web -- ip route add default via 10.244.2.1"));
    let fp = planned("mtu-mismatch", Some("node-3"), &[]).unwrap();
    assert!(matches!(
        fp.inject[0],
        Step::Change {
            change: Change::Link {
                mtu: Some(1400),
                ..
            },
            ..
        }
    ));
    assert!(matches!(
        fp.undo[0],
        Step::Change {
            change: Change::Link {
                mtu: Some(1500),
                ..
            },
            ..
        }
    ));
    let fp = planned("forwarding-off", Some("node-1"), &[]).unwrap();
    assert!(matches!(&fp.undo[0], Step::Change {
        change: Change::Sysctl { value, .. }, ..
    } if value == "1"));
}

#[test]
fn default_targets_and_seeded_picks_are_stable() {
    let (file, plan) = fixture();
    let ctx = Context {
        plan: &plan,
        file: Some(&file),
    };
    let none = BTreeMap::new();
    let first = plan_fault(&ctx, "bridge-down", None, &none, None).unwrap();
    assert_eq!(first.target, "node-1");
    let mut picked = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let a = plan_fault(&ctx, "bridge-down", None, &none, Some(seed)).unwrap();
        let b = plan_fault(&ctx, "bridge-down", None, &none, Some(seed)).unwrap();
        assert_eq!(a.target, b.target, "same seed, same node");
        picked.insert(a.target);
    }
    assert_eq!(picked.len(), 3, "seeds spread over the nodes: {picked:?}");
    // A pod picked without a name is one of the lab's, never cluster DNS.
    for seed in 0..16 {
        let fp = plan_fault(&ctx, "pod-down", None, &none, Some(seed)).unwrap();
        assert!(fp.target.starts_with("default/"), "{}", fp.target);
    }
}

#[test]
fn bad_names_targets_and_params_say_what_to_do() {
    let e = planned("route-mising", None, &[]).unwrap_err();
    assert_eq!(e.to_string(), "no fault named `route-mising`");
    assert!(e.hint().unwrap().contains("did you mean `route-missing`?"));
    let e = planned("bridge-down", Some("node-9"), &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "fault bridge-down: node node-9 not found in lab f"
    );
    assert!(e.hint().unwrap().contains("node-1"), "{e:?}");
    let e = planned("pod-down", Some("wbe"), &[]).unwrap_err();
    assert_eq!(e.hint().unwrap(), "did you mean default/web?");
    let e = planned("packet-loss", None, &[("percnt", "5")]).unwrap_err();
    assert_eq!(e.to_string(), "fault packet-loss has no parameter `percnt`");
    assert_eq!(e.hint().unwrap(), "did you mean `percent`?");
    let e = planned("packet-loss", None, &[("percent", "150")]).unwrap_err();
    assert!(e.to_string().contains("expected an integer 1-100"), "{e}");
    let e = planned("rate-limit", None, &[("rate", "fast")]).unwrap_err();
    assert!(e.to_string().contains("parameter rate=fast"), "{e}");
    let e = planned("dns-stopped", Some("node-1"), &[]).unwrap_err();
    assert!(matches!(e, FaultError::NoTargetTaken { .. }));
    let e = planned("route-missing", Some("node-1"), &[("to", "node-1")]).unwrap_err();
    assert!(e.to_string().contains("another node"), "{e}");
    let e = planned("mtu-mismatch", None, &[("mtu", "1500")]).unwrap_err();
    assert!(e.to_string().contains("other than the lab's own"), "{e}");
    let e = planned("service-selector-typo", Some("kube-system/kube-dns"), &[]);
    assert!(e.is_err(), "kube-dns is not in the lab file");
    let e = planned(
        "wrong-nameserver",
        Some("kube-system/coredns-wflqbxtswj-xslb5"),
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("dnsPolicy: Default"), "{e}");
}

#[test]
fn plan_level_faults_change_a_replanned_lab_and_undo_to_the_plan_before() {
    let (_, current) = fixture();
    let desired = |fp: &FaultPlan| match (&fp.inject[..], &fp.undo[..]) {
        ([Step::ApplyPlan { plan, .. }], [Step::ApplyPlan { plan: undo, .. }]) => {
            assert_eq!(**undo, current, "{}: undo restores the plan", fp.fault);
            (**plan).clone()
        }
        other => panic!("{other:?}"),
    };
    let fp = planned("service-selector-typo", Some("web"), &[]).unwrap();
    let p = desired(&fp);
    let svc = p.services.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(svc.selector["app"], "wbe");
    assert!(svc.endpoints.is_empty());
    // The running pods keep their addresses.
    assert_eq!(p.pods, current.pods);

    let fp = planned("wrong-target-port", Some("web"), &[]).unwrap();
    let p = desired(&fp);
    let svc = p.services.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(svc.endpoints[0].ports, vec![Some(8081)]);

    let fp = planned("deny-all-policy", None, &[]).unwrap();
    let p = desired(&fp);
    let deny = p.policies.iter().find(|x| x.name == "deny-all").unwrap();
    assert_eq!(deny.namespace, "default");
    let web = p.pod("default", "web").unwrap();
    let client = p.pod("default", "client").unwrap();
    let tcp = crate::lab::Protocol::Tcp;
    // Policies add up: web's own allow still lets the client in, but
    // nothing reaches the client any more.
    assert!(crate::plan::netpol::permitted(
        &p, client.ip, web.ip, tcp, 8080
    ));
    assert!(!crate::plan::netpol::permitted(
        &p, web.ip, client.ip, tcp, 80
    ));
    assert!(crate::plan::netpol::permitted(
        &current, web.ip, client.ip, tcp, 80
    ));

    let fp = planned("policy-label-typo", None, &[]).unwrap();
    assert_eq!(fp.target, "default/web-from-client");
    let p = desired(&fp);
    assert!(!crate::plan::netpol::permitted(
        &p, client.ip, web.ip, tcp, 8080
    ));
    assert!(crate::plan::netpol::permitted(
        &current, client.ip, web.ip, tcp, 8080
    ));

    let fp = planned("coredns-scaled-to-zero", None, &[]).unwrap();
    let p = desired(&fp);
    assert!(p.pods.iter().all(|x| x.role != crate::plan::PodRole::Dns));
    let kube_dns = p.services.iter().find(|s| s.name == "kube-dns").unwrap();
    assert!(kube_dns.endpoints.is_empty());
}

#[test]
fn plan_level_faults_need_the_lab_file() {
    let (_, plan) = fixture();
    let e = plan_fault(
        &Context {
            plan: &plan,
            file: None,
        },
        "deny-all-policy",
        None,
        &BTreeMap::new(),
        None,
    )
    .unwrap_err();
    assert!(matches!(e, FaultError::NeedsLabFile { .. }));
    assert!(e.hint().is_some());
}

#[test]
fn stale_endpoint_is_a_free_address_of_the_pods_node() {
    let fp = planned("stale-endpoints", Some("web"), &[]).unwrap();
    match &fp.inject[..] {
        [Step::StaleEndpoint { service, endpoint }] => {
            assert_eq!(service, "default/web");
            assert_eq!(endpoint.node, "node-2");
            assert_eq!(endpoint.ip.to_string(), "10.244.2.254");
            assert_eq!(endpoint.ports, vec![Some(8080)]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fp.undo, vec![Step::ReloadRules { netns: None }]);
}

#[test]
fn wrong_nameserver_rewrites_only_the_nameserver() {
    let fp = planned("wrong-nameserver", Some("client"), &[("ip", "10.96.0.99")]).unwrap();
    let (
        Step::Change {
            change:
                Change::File {
                    content: Some(bad),
                    path,
                    ..
                },
            ..
        },
        Step::Change {
            change:
                Change::File {
                    content: Some(good),
                    ..
                },
            ..
        },
    ) = (&fp.inject[0], &fp.undo[0])
    else {
        panic!("{fp:?}");
    };
    assert_eq!(path, "/etc/netns/f-default-client/resolv.conf");
    assert_eq!(bad.replace("10.96.0.99", "10.96.0.10"), *good);
    assert!(good.contains("nameserver 10.96.0.10"));
    // The default: the first address after dnsIP no service has.
    let fp = planned("wrong-nameserver", Some("client"), &[]).unwrap();
    assert_eq!(fp.params["ip"], "10.96.0.11");
}

#[test]
fn loss_and_shaping_are_written_for_nft_and_tc() {
    let s = catalogue::loss_script(30);
    assert!(s.contains("numgen random mod 100 < 30"));
    assert!(s.contains("table ip podlab-fault-loss"));
    let fp = planned("rate-limit", None, &[("rate", "512kbit")]).unwrap();
    assert_eq!(
        fp.inject[0].command(),
        "podlab exec node/node-1 -- tc qdisc replace dev eth0 root tbf rate 512kbit burst 32kbit latency 400ms"
    );
    assert_eq!(
        fp.undo[0].command(),
        "podlab exec node/node-1 -- tc qdisc del dev eth0 root"
    );
    let fp = planned("latency", None, &[("delay", "50ms"), ("jitter", "5ms")]).unwrap();
    assert!(fp.inject[0].command().ends_with("netem delay 50ms 5ms"));
}

#[test]
fn typos_are_one_swap_away() {
    assert_eq!(catalogue::typo("frontend"), "frontedn");
    assert_eq!(catalogue::typo("web"), "wbe");
    assert_eq!(catalogue::typo("aa"), "aaa");
    assert_eq!(catalogue::typo("b"), "bb");
}

#[test]
fn params_parse_as_name_value() {
    let p = parse_params(&["to=node-2".into(), " percent = 30 ".into()]).unwrap();
    assert_eq!(p["to"], "node-2");
    assert_eq!(p["percent"], "30");
    assert_eq!(parse_params(&["oops".into()]), Err("oops".to_string()));
    assert_eq!(parse_params(&["=x".into()]), Err("=x".to_string()));
}

#[test]
fn shell_words_quote_what_a_shell_would_split() {
    let argv: Vec<String> = ["ip", "route", "add", "10.0.0.0/8", "it's here"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        shell_words(&argv),
        "ip route add 10.0.0.0/8 'it'\\''s here'"
    );
}

/// A record written by the podlab before the one vocabulary: every kind of
/// step it wrote still reads, and is written back the same.
const OLD_RECORD_STEPS: &str = r#"[
  {"op": "link", "netns": "f-node-1", "at": "node/node-1", "link": "eth0", "up": false},
  {"op": "link", "netns": "f-node-1", "at": "node/node-1", "link": "eth0", "mtu": 1400},
  {"op": "route", "netns": "f-node-1", "at": "node/node-1", "add": false, "dst": "10.244.3.0/24", "via": "172.18.0.4"},
  {"op": "sysctl", "netns": "f-node-1", "at": "node/node-1", "key": "net.ipv4.ip_forward", "value": "0"},
  {"op": "file", "at": "pod/web", "path": "/etc/netns/f-default-web/resolv.conf", "shown": "/etc/resolv.conf", "content": "nameserver 10.96.0.99\n"},
  {"op": "nft", "netns": "f-node-1", "at": "node/node-1", "script": "flush table ip kube-proxy\n"},
  {"op": "dropTable", "netns": "f-node-1", "at": "node/node-1", "family": "ip", "table": "podlab-fault-loss"},
  {"op": "reloadRules"},
  {"op": "qdisc", "netns": "f-node-1", "at": "node/node-1", "link": "eth0", "spec": ["tbf", "rate", "1mbit"]},
  {"op": "qdisc", "netns": "f-node-1", "at": "node/node-1", "link": "eth0"},
  {"op": "exec", "at": "node/node-1", "argv": ["ip", "route"]},
  {"op": "stopPod", "namespace": "default", "name": "web"},
  {"op": "startPods"}
]"#;

#[test]
fn an_old_record_still_reads_and_is_written_back_the_same() {
    let old: serde_json::Value = serde_json::from_str(OLD_RECORD_STEPS).unwrap();
    let steps: Vec<Step> = serde_json::from_value(old.clone()).expect("old steps read");
    assert!(matches!(
        &steps[2],
        Step::Change {
            change: Change::Route {
                op: RouteOp::Del,
                ..
            },
            ..
        }
    ));
    assert_eq!(
        steps[2].command(),
        "podlab exec node/node-1 -- ip route del 10.244.3.0/24 via 172.18.0.4"
    );
    assert_eq!(serde_json::to_value(&steps).unwrap(), old);
}

#[test]
fn a_change_the_old_record_has_no_word_for_is_written_whole() {
    let s = Step::at(
        "node/node-1",
        Change::Hairpin {
            netns: "f-node-1".into(),
            link: "veth1".into(),
            on: true,
        },
    );
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["op"], "change");
    assert_eq!(v["change"]["change"], "hairpin");
    assert_eq!(serde_json::from_value::<Step>(v).unwrap(), s);
    assert_eq!(
        s.command(),
        "podlab exec node/node-1 -- ip link set veth1 type bridge_slave hairpin on"
    );
}

#[test]
fn every_planned_fault_round_trips_through_its_record() {
    for e in CATALOGUE {
        let fp = planned(e.name, None, &[]).unwrap();
        let json = serde_json::to_string(&fp).unwrap();
        let back: FaultPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, fp, "{}", e.name);
    }
}

#[test]
fn a_cleared_faults_diff_looks_where_it_acted_and_leaves_other_faults_alone() {
    use crate::kernel::change::Route;
    use crate::observe::Finding;
    let (_, plan) = fixture();
    let fp = planned("route-missing", Some("node-1"), &[("to", "node-3")]).unwrap();
    let s = settle::scope(&plan, &fp);
    let n1 = plan.node("node-1").unwrap().netns.clone();
    let n2 = plan.node("node-2").unwrap().netns.clone();
    assert_eq!(
        s.netns.iter().cloned().collect::<Vec<_>>(),
        vec![n1.clone()]
    );
    assert!(!s.lab);
    let missing = |ns: &str| Finding::MissingRoute {
        netns: ns.into(),
        route: Route::via(
            "10.244.3.0/24".parse().unwrap(),
            "172.18.0.4".parse().unwrap(),
        ),
    };
    let down = |ns: &str| Finding::LinkDown {
        netns: ns.into(),
        link: "eth0".into(),
    };
    let findings = vec![missing(&n1), down(&n1), down(&n2)];
    // Nothing else injected: both of node-1's, none of node-2's.
    let kept = settle::relevant(findings.clone(), &s, &Default::default());
    assert_eq!(kept, vec![missing(&n1), down(&n1)]);
    // node-link-down still injected on node-1: its eth0 is left to it.
    let other = planned("node-link-down", Some("node-1"), &[]).unwrap();
    let keys = settle::keys(&plan, &other);
    let kept = settle::relevant(findings, &s, &keys);
    assert!(kept.is_empty(), "{kept:?}");
    // A plan-level fault's diff is the whole lab; a daemon one's, its pod.
    let fp = planned("pod-down", Some("web"), &[]).unwrap();
    let s = settle::scope(&plan, &fp);
    assert!(s.pods.contains("default/web"));
    let stopped = Finding::PodDown {
        pod: "default/web".into(),
        status: "Stopped".into(),
    };
    assert_eq!(
        settle::relevant(vec![stopped.clone()], &s, &Default::default()),
        vec![stopped]
    );
}
