//! `diff` on real plans: the demo lab with services and policies, edited
//! as `podlab apply` and readiness would edit it. Every transaction is
//! checked by following old-then-transaction and comparing with new, and,
//! as root, by loading it into a throwaway namespace and comparing the
//! kernel's tables with a fresh load of the new ruleset.

use super::*;
use crate::plan::kubeproxy::{namespace_rulesets, to_json};
use crate::plan::Plan;

const WEB: &str = "---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, ports: [{containerPort: 8080, name: http}]}]
";

const SVC_WEB: &str = "---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
";

const SVC_WEB_STICKY: &str = "---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
";

const SVC_FRONT: &str = "---
apiVersion: v1
kind: Service
metadata: {name: front}
spec:
  selector: {app: frontend}
  ports: [{port: 80}]
";

fn svc_np(node_port: u16) -> String {
    format!(
        "---
apiVersion: v1
kind: Service
metadata: {{name: np}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 81, targetPort: 8080, nodePort: {node_port}}}]
"
    )
}

fn policy(port: u16) -> String {
    format!(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web-from-front}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: frontend}}}}}}]
    ports: [{{port: {port}}}]
"
    )
}

const EXTRA_WEB_POD: &str = "---
apiVersion: v1
kind: Pod
metadata: {name: extra, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: web, ports: [{containerPort: 8080, name: http}]}]
";

fn plan(parts: &[&str]) -> Plan {
    let mut text = crate::lab::DEMO.to_string();
    for p in parts {
        text.push_str(p);
    }
    let file = crate::lab::parse("t.yaml", &text).expect("lab parses");
    crate::plan::build(&file).expect("lab plans")
}

fn base() -> Plan {
    plan(&[WEB, SVC_WEB, &svc_np(30080)])
}

/// Tables in a stable order, for comparing what two rulesets leave.
fn tables(r: Ruleset<'_>) -> Vec<TableState<'_>> {
    let mut t = r.tables;
    t.sort_by(|a, b| a.name.cmp(b.name));
    t
}

fn follow<'a>(n: &'a Nftables<'static>) -> Vec<TableState<'a>> {
    tables(Ruleset::follow(n).expect("podlab's rulesets are followed"))
}

/// The diff of every namespace between two plans, each checked: applied
/// after the old ruleset, it leaves exactly the new one.
fn diffs(old: &Plan, new: &Plan) -> Vec<(String, Diff)> {
    let o = namespace_rulesets(old);
    let n = namespace_rulesets(new);
    assert_eq!(
        o.iter().map(|x| &x.0).collect::<Vec<_>>(),
        n.iter().map(|x| &x.0).collect::<Vec<_>>()
    );
    o.iter()
        .zip(&n)
        .map(|((ns, a), (_, b))| {
            let d = diff(a, b);
            verify(ns, a, b, &d);
            (ns.clone(), d)
        })
        .collect()
}

fn verify(ns: &str, a: &Nftables<'static>, b: &Nftables<'static>, d: &Diff) {
    match d {
        Diff::Same => assert_eq!(follow(a), follow(b), "{ns}: Same, but they differ"),
        Diff::Changes(tx) => {
            let mut both = a.objects.to_vec();
            both.extend(tx.objects.iter().cloned());
            let both = Nftables {
                objects: Cow::Owned(both),
            };
            let after = Ruleset::follow(&both)
                .unwrap_or_else(|e| panic!("{ns}: the transaction does not apply: {e}"));
            assert_eq!(tables(after), follow(b), "{ns}: old + transaction != new");
            kernel_agrees(ns, a, b, tx);
        }
        Diff::Replace(why) => panic!("{ns}: Replace ({why}) where changes were expected"),
    }
}

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "needs root in CI"
    );
    false
}

/// `sh -c SCRIPT` in a new network namespace of its own; stdout.
fn in_fresh_netns(script: &str) -> String {
    let out = std::process::Command::new("unshare")
        .args(["-n", "sh", "-ec", script])
        .output()
        .expect("unshare");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// As root: old, then the transaction, in one namespace; the new ruleset
/// alone in another; the kernel's tables must be the same.
fn kernel_agrees(ns: &str, a: &Nftables<'static>, b: &Nftables<'static>, tx: &Nftables<'static>) {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, n: &Nftables<'static>| {
        let p = dir.path().join(name);
        std::fs::write(&p, to_json(n)).expect("write");
        p.display().to_string()
    };
    let (old, new, tx) = (file("old", a), file("new", b), file("tx", tx));
    let changed = in_fresh_netns(&format!(
        "nft -j -f {old}; nft -j -f {tx}; nft -j list ruleset"
    ));
    let fresh = in_fresh_netns(&format!("nft -j -f {new}; nft -j list ruleset"));
    assert_eq!(
        normalized(&changed).expect("nft JSON"),
        normalized(&fresh).expect("nft JSON"),
        "{ns}: the kernel after the transaction differs from a fresh load"
    );
}

fn summary(d: &Diff) -> Summary {
    match d {
        Diff::Changes(tx) => Summary::of(tx),
        other => panic!("expected changes, got {other:?}"),
    }
}

fn node_diffs(d: &[(String, Diff)]) -> Vec<&Diff> {
    d.iter()
        .filter(|(ns, _)| ns.contains("node-"))
        .map(|(_, d)| d)
        .collect()
}

#[test]
fn nothing_changed_is_same() {
    let p = base();
    for (ns, d) in diffs(&p, &p) {
        assert_eq!(d, Diff::Same, "{ns}");
    }
    // A plan built again is the same plan.
    for (ns, d) in diffs(&p, &base()) {
        assert_eq!(d, Diff::Same, "{ns}");
    }
}

#[test]
fn service_added_adds_its_chain_and_map_element() {
    let old = base();
    let new = plan(&[WEB, SVC_WEB, &svc_np(30080), SVC_FRONT]);
    let d = diffs(&old, &new);
    for d in node_diffs(&d) {
        let s = summary(d);
        assert_eq!(s.chains_added, 1, "{s}");
        assert_eq!(
            s.elements_added, 2,
            "the service-ips entry and a hairpin pair: {s}"
        );
        assert_eq!(
            (s.chains_removed, s.elements_removed, s.chains_rewritten),
            (0, 0, 0)
        );
    }
    // The load balancer has no LoadBalancer service either way.
    assert!(d
        .iter()
        .any(|(ns, d)| ns.ends_with("-lb") && *d == Diff::Same));
}

#[test]
fn service_removed_deletes_what_it_added() {
    let old = plan(&[WEB, SVC_WEB, &svc_np(30080), SVC_FRONT]);
    let new = base();
    for d in node_diffs(&diffs(&old, &new)) {
        let s = summary(d);
        assert_eq!((s.chains_removed, s.elements_removed), (1, 2), "{s}");
        assert_eq!(
            (s.chains_added, s.elements_added, s.chains_rewritten),
            (0, 0, 0)
        );
    }
}

#[test]
fn endpoint_gone_rewrites_only_the_service_chains() {
    let old = base();
    let mut new = old.clone();
    for svc in &mut new.services {
        if svc.name == "web" || svc.name == "np" {
            svc.endpoints.pop();
        }
    }
    for d in node_diffs(&diffs(&old, &new)) {
        let s = summary(d);
        // web's service chain, np's service and external chains.
        assert_eq!(s.chains_rewritten, 3, "{s}");
        assert_eq!(s.elements_removed, 1, "the endpoint's hairpin pair: {s}");
        assert_eq!(s.objects(), 4, "{s}");
    }
}

#[test]
fn last_endpoint_gone_moves_the_service_to_rejection() {
    let old = base();
    let mut new = old.clone();
    for svc in new.services.iter_mut().filter(|s| s.name == "web") {
        svc.endpoints.clear();
    }
    for d in node_diffs(&diffs(&old, &new)) {
        let s = summary(d);
        assert_eq!(s.chains_removed, 1, "{s}");
        // service-ips loses it, no-endpoint-services gains it.
        assert_eq!((s.elements_removed, s.elements_added), (1, 1), "{s}");
    }
}

#[test]
fn node_port_changed_replaces_the_map_element() {
    let old = base();
    let new = plan(&[WEB, SVC_WEB, &svc_np(30081)]);
    for d in node_diffs(&diffs(&old, &new)) {
        let s = summary(d);
        assert_eq!((s.elements_removed, s.elements_added), (1, 1), "{s}");
        assert_eq!(s.chains_added + s.chains_removed + s.chains_rewritten, 0);
    }
}

#[test]
fn session_affinity_adds_endpoint_chains_and_sets() {
    let old = base();
    let new = plan(&[WEB, SVC_WEB_STICKY, &svc_np(30080)]);
    for d in node_diffs(&diffs(&old, &new)) {
        let s = summary(d);
        assert_eq!(s.chains_added, 2, "an endpoint chain per endpoint: {s}");
        assert_eq!(s.sets_added, 2, "an affinity set per endpoint: {s}");
        assert_eq!(s.chains_rewritten, 1, "the service chain: {s}");
    }
    // And back.
    for d in node_diffs(&diffs(&new, &old)) {
        let s = summary(d);
        assert_eq!((s.chains_removed, s.sets_removed), (2, 2), "{s}");
    }
}

#[test]
fn policy_added_removed_and_changed() {
    let old = base();
    let with = plan(&[WEB, SVC_WEB, &svc_np(30080), &policy(8080)]);
    // Each node has one web pod, isolated for ingress.
    for d in node_diffs(&diffs(&old, &with)) {
        let s = summary(d);
        assert_eq!(s.chains_added, 1, "the pod's ingress chain: {s}");
        assert_eq!(s.counters_added, 2, "allow and drop counters: {s}");
        assert_eq!(s.elements_added, 1, "the ingress-pods entry: {s}");
    }
    for d in node_diffs(&diffs(&with, &old)) {
        let s = summary(d);
        assert_eq!(
            (s.chains_removed, s.counters_removed, s.elements_removed),
            (1, 2, 1),
            "{s}"
        );
    }
    // Another port: the pod's chain is rewritten, its counters stay.
    let changed = plan(&[WEB, SVC_WEB, &svc_np(30080), &policy(8081)]);
    for d in node_diffs(&diffs(&with, &changed)) {
        let s = summary(d);
        assert_eq!(s.chains_rewritten, 1, "{s}");
        assert_eq!(s.objects(), 1, "counters and maps untouched: {s}");
    }
}

#[test]
fn pod_added_to_a_policys_selection() {
    let old = plan(&[WEB, SVC_WEB, &svc_np(30080), &policy(8080)]);
    let new = plan(&[WEB, EXTRA_WEB_POD, SVC_WEB, &svc_np(30080), &policy(8080)]);
    let d = diffs(&old, &new);
    let node1 = d
        .iter()
        .find(|(ns, _)| ns.ends_with("node-1"))
        .map(|(_, d)| summary(d))
        .expect("node-1");
    // The new pod's ingress chain and drop counter, its ingress-pods entry;
    // it is also an endpoint of web and np (service chains rewritten).
    assert!(node1.chains_added >= 1, "{node1}");
    assert!(node1.counters_added >= 1, "{node1}");
}

fn node_rules(p: &Plan) -> Nftables<'static> {
    namespace_rulesets(p)
        .into_iter()
        .next()
        .map(|(_, r)| r)
        .expect("a node")
}

fn edit_objects(
    n: &Nftables<'static>,
    f: impl Fn(&mut NfListObject<'static>),
) -> Nftables<'static> {
    let mut objs = n.objects.to_vec();
    for o in &mut objs {
        if let NfObject::CmdObject(NfCmd::Add(x)) = o {
            f(x);
        }
    }
    Nftables {
        objects: Cow::Owned(objs),
    }
}

#[test]
fn what_cannot_change_in_place_is_replaced() {
    let a = node_rules(&base());
    let hook_moved = edit_objects(&a, |o| {
        if let NfListObject::Chain(c) = o {
            if c.name == "nat-prerouting" {
                c.prio = Some(-90);
            }
        }
    });
    assert!(
        matches!(diff(&a, &hook_moved), Diff::Replace(ref w) if w.contains("nat-prerouting")),
        "{:?}",
        diff(&a, &hook_moved)
    );
    let map_retyped = edit_objects(&a, |o| {
        if let NfListObject::Map(m) = o {
            if m.name == "service-nodeports" {
                m.set_type = SetTypeValue::Single(SetType::InetService);
            }
        }
    });
    assert!(
        matches!(diff(&a, &map_retyped), Diff::Replace(ref w) if w.contains("service-nodeports"))
    );
    // A command this module does not follow.
    let mut objs = a.objects.to_vec();
    objs.push(NfObject::CmdObject(NfCmd::Insert(NfListObject::Rule(
        Rule::default(),
    ))));
    let odd = Nftables {
        objects: Cow::Owned(objs),
    };
    assert!(matches!(diff(&a, &odd), Diff::Replace(ref w) if w.contains("insert")));
}

use nftables::schema::{SetType, SetTypeValue};

#[test]
fn tables_appear_and_disappear_whole() {
    let full = node_rules(&plan(&[WEB, SVC_WEB, &policy(8080)]));
    let without: Vec<NfObject<'static>> = full
        .objects
        .iter()
        .filter(|o| {
            let NfObject::CmdObject(NfCmd::Add(x) | NfCmd::Delete(x)) = o else {
                return true;
            };
            let table = match x {
                NfListObject::Table(t) => t.name.as_ref(),
                NfListObject::Chain(c) => c.table.as_ref(),
                NfListObject::Rule(r) => r.table.as_ref(),
                NfListObject::Map(m) => m.table.as_ref(),
                NfListObject::Set(s) => s.table.as_ref(),
                NfListObject::Counter(c) => c.table.as_ref(),
                _ => "",
            };
            table != crate::plan::netpol::TABLE
        })
        .cloned()
        .collect();
    let without = Nftables {
        objects: Cow::Owned(without),
    };
    let added = diff(&without, &full);
    verify("added", &without, &full, &added);
    let s = summary(&added);
    assert_eq!(s.tables_added, 1, "{s}");
    assert_eq!(s.chains_rewritten + s.chains_removed, 0, "{s}");
    let removed = diff(&full, &without);
    verify("removed", &full, &without, &removed);
    let s = summary(&removed);
    assert_eq!((s.tables_removed, s.objects()), (1, 1), "{s}");
}

#[test]
fn summary_reads_as_a_sentence() {
    let s = Summary {
        chains_added: 1,
        chains_rewritten: 2,
        elements_added: 1,
        rules: 5,
        ..Summary::default()
    };
    assert_eq!(
        s.to_string(),
        "1 chain added, 2 chains rewritten, 1 element added (5 rules)"
    );
    assert_eq!(s.objects(), 4);
    assert_eq!(Summary::default().to_string(), "nothing");
}

#[test]
fn probes_pick_a_small_chain_of_each_table_changed_in_place() {
    let old = base();
    let new = plan(&[WEB, SVC_WEB, &svc_np(30080), SVC_FRONT]);
    let (a, b) = (node_rules(&old), node_rules(&new));
    let Diff::Changes(tx) = diff(&a, &b) else {
        panic!("expected changes");
    };
    let p = probes(&a, &tx);
    assert_eq!(p.len(), 1, "only kube-proxy changed: {p:?}");
    assert_eq!(p[0].table, "kube-proxy");
    assert_eq!(p[0].comments.len(), 1, "{p:?}");
    let comment = p[0].comments[0].clone();
    assert_eq!(p[0].check(&[comment]), Ok(()));
    let flushed = p[0].check(&[]).expect_err("an empty chain is drift");
    assert!(
        flushed.contains("has 0 rule(s) where the last load put 1"),
        "{flushed}"
    );
    assert!(p[0].check(&[Some("other".into())]).is_err());
}

#[test]
fn normalized_ignores_handles_counts_and_order() {
    let a = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
      {"table": {"family": "ip", "name": "t", "handle": 1}},
      {"counter": {"family": "ip", "name": "c", "table": "t", "handle": 2, "packets": 5, "bytes": 300}},
      {"map": {"family": "ip", "name": "m", "table": "t", "type": "ipv4_addr", "map": "verdict", "handle": 3, "elem": [["10.0.0.2", {"goto": {"target": "y"}}], ["10.0.0.1", {"goto": {"target": "x"}}]]}},
      {"chain": {"family": "ip", "table": "t", "name": "x", "handle": 4}},
      {"chain": {"family": "ip", "table": "t", "name": "y", "handle": 5}},
      {"rule": {"family": "ip", "table": "t", "chain": "x", "handle": 6, "expr": [{"accept": null}]}},
      {"rule": {"family": "ip", "table": "t", "chain": "y", "handle": 7, "expr": [{"drop": null}]}}]}"#;
    let b = r#"{"nftables": [
      {"table": {"family": "ip", "name": "t", "handle": 1}},
      {"map": {"family": "ip", "name": "m", "table": "t", "type": "ipv4_addr", "map": "verdict", "handle": 9, "elem": [["10.0.0.1", {"goto": {"target": "x"}}], ["10.0.0.2", {"goto": {"target": "y"}}]]}},
      {"counter": {"family": "ip", "name": "c", "table": "t", "handle": 8, "packets": 0, "bytes": 0}},
      {"chain": {"family": "ip", "table": "t", "name": "y", "handle": 2}},
      {"chain": {"family": "ip", "table": "t", "name": "x", "handle": 3}},
      {"rule": {"family": "ip", "table": "t", "chain": "y", "handle": 4, "expr": [{"drop": null}]}},
      {"rule": {"family": "ip", "table": "t", "chain": "x", "handle": 5, "expr": [{"accept": null}]}}]}"#;
    assert_eq!(normalized(a), normalized(b));
    let c = b.replace(r#"{"drop": null}"#, r#"{"accept": null}"#);
    assert_ne!(normalized(a), normalized(&c));
}
