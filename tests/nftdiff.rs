//! Incremental rule loads on a running lab, as root: after each edit of the
//! plan, `kernel::rules::sync_rules` loads only the changes, and every
//! node's tables must then be what a fresh whole load of the new plan
//! gives (compared in a scratch namespace), counters must survive, and a
//! table flushed by hand must make it fall back to a whole reload.

mod common;

use std::collections::HashSet;
use std::process::Command;

use common::*;
use podlab::kernel::rules::{sync_rules, Outcome, RuleChanges};
use podlab::kernel::{apply, counters, nft};
use podlab::plan::nftdiff::normalized;
use podlab::plan::{kubeproxy, Plan};

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-nftd}
spec: {nodes: 2}
---
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
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  nodeName: node-1
  containers: [{name: c, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: other, labels: {app: other}}
spec:
  nodeName: node-2
  containers: [{name: o, ports: [{containerPort: 9090}]}]
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
    ports: [{port: 8080}]
"#;

const OTHER_POLICY: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: other-closed}
spec:
  podSelector: {matchLabels: {app: other}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
"#;

const SCRATCH: &str = "tnftd-scratch";

/// The scratch namespace of fresh loads, removed however the test ends.
struct Scratch;

impl Scratch {
    fn new() -> Scratch {
        // A previous crashed run must not make this one fail.
        let _ = Command::new("ip")
            .args(["netns", "del", SCRATCH])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", SCRATCH])
            .status()
            .expect("ip netns add");
        assert!(ok.success(), "cannot make {SCRATCH}");
        Scratch
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", SCRATCH]).status();
    }
}

fn list(netns: &str, table: &str) -> serde_json::Value {
    let o = Command::new("ip")
        .args([
            "netns", "exec", netns, "nft", "-j", "list", "table", "ip", table,
        ])
        .output()
        .expect("nft list");
    assert!(o.status.success(), "list {table} in {netns}: {o:?}");
    normalized(&String::from_utf8_lossy(&o.stdout)).expect("nft JSON")
}

/// Every node's kube-proxy and network-policy tables are what a fresh
/// load of `plan`'s rules makes.
fn assert_kernel_is(plan: &Plan, what: &str) {
    for (netns, rules) in apply::ruleset_objects(plan) {
        if !plan.nodes.iter().any(|n| n.netns == netns) {
            continue;
        }
        nft::load(SCRATCH, &kubeproxy::to_json(&rules)).expect("fresh load");
        for table in ["kube-proxy", "network-policy"] {
            assert_eq!(
                list(&netns, table),
                list(SCRATCH, table),
                "{what}: {table} in {netns} differs from a fresh load"
            );
        }
    }
}

fn node_outcomes<'a>(plan: &Plan, changes: &'a RuleChanges) -> Vec<(String, &'a Outcome)> {
    plan.nodes
        .iter()
        .map(|n| {
            let o = changes
                .outcome(&n.netns)
                .unwrap_or_else(|| panic!("no outcome for {}: {changes}", n.netns));
            (n.name.clone(), o)
        })
        .collect()
}

/// Sync from `cur` to `next`; every node must change in place.
fn step(cur: &Plan, next: &Plan, what: &str) -> RuleChanges {
    let changes = sync_rules(cur, next).unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{what}:\n{changes}");
    assert!(!changes.any_reloaded(), "{what}: reloaded\n{changes}");
    assert_kernel_is(next, what);
    changes
}

fn allowed(plan: &Plan) -> u64 {
    counters::read(plan, "network-policy")
        .expect("counters")
        .get("allow-default-web-from-client")
        .map_or(0, |c| c.packets)
}

#[test]
fn only_changes_are_loaded_and_the_kernel_ends_as_a_fresh_load() {
    if !root_or_skip("nftdiff") {
        return;
    }
    let file = lab_file(LAB);
    let lab = Up::new("t-nftd", &file);
    let _scratch = Scratch::new();
    let start = podlab::state::load("t-nftd").expect("the lab's plan");
    assert_kernel_is(&start, "after up");

    // Traffic the policy allows, counted (on node-1, where the web pod is:
    // node-2 is reloaded whole below).
    let web = start
        .pods
        .iter()
        .find(|p| p.name.starts_with("web-") && p.node == "node-1")
        .expect("a web pod on node-1");
    let o = lab.exec(
        "client",
        &[
            "curl",
            "-sS",
            "--max-time",
            "3",
            &format!("http://{}:8080/", web.ip),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let counted = allowed(&start);
    assert!(counted > 0, "the allow counter counted nothing");

    // A service with endpoints added: nothing else moves, the counter stays.
    let mut next = start.clone();
    let mut extra = next
        .services
        .iter()
        .find(|s| s.name == "web")
        .cloned()
        .expect("web");
    extra.name = "extra".into();
    extra.cluster_ip = Some([10, 96, 222, 1].into());
    next.services.push(extra);
    let changes = step(&start, &next, "service added");
    for (node, o) in node_outcomes(&next, &changes) {
        assert!(
            matches!(o, Outcome::Changed(s) if s.chains_added == 1 && s.chains_removed == 0),
            "{node}: {o}"
        );
    }
    assert_eq!(allowed(&next), counted, "the counter survives a diff");
    let cur = next;

    // Endpoints changed.
    let mut next = cur.clone();
    for svc in next.services.iter_mut().filter(|s| s.name == "web") {
        svc.endpoints.pop();
    }
    step(&cur, &next, "endpoint removed");
    let cur = next;

    // A service removed, after its map entry was deleted by hand on
    // node-2: the kernel refuses to delete it again, and node-2 is
    // reloaded whole.
    let node2 = cur
        .nodes
        .iter()
        .find(|n| n.name == "node-2")
        .cloned()
        .expect("node-2");
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node2.netns,
            "nft",
            "delete",
            "element",
            "ip",
            "kube-proxy",
        ])
        .args(["service-ips", "{ 10.96.222.1 . tcp . 80 }"])
        .status()
        .expect("nft delete element");
    assert!(o.success());
    let mut next = cur.clone();
    next.services.retain(|s| s.name != "extra");
    let changes = sync_rules(&cur, &next).expect("service removed");
    eprintln!("service removed, one element gone by hand:\n{changes}");
    assert!(
        matches!(changes.outcome(&node2.netns), Some(Outcome::Reloaded(why)) if why.contains("did not load")),
        "{changes}"
    );
    assert!(
        changes
            .namespaces
            .iter()
            .filter(|n| n.netns != node2.netns)
            .all(|n| !matches!(n.outcome, Outcome::Reloaded(_))),
        "{changes}"
    );
    assert_kernel_is(&next, "service removed");
    let cur = next;

    // A NetworkPolicy added (resolved against the same pods).
    let with_policy = {
        let f = podlab::lab::parse("p.yaml", &format!("{LAB}{OTHER_POLICY}")).expect("parses");
        podlab::plan::build(&f).expect("plans")
    };
    let mut next = cur.clone();
    next.policies.extend(
        with_policy
            .policies
            .iter()
            .filter(|p| p.name == "other-closed")
            .cloned(),
    );
    let changes = step(&cur, &next, "policy added");
    assert!(
        matches!(changes.outcome(&node2.netns), Some(Outcome::Changed(s)) if s.counters_added == 2),
        "{changes}"
    );
    assert_eq!(
        allowed(&next),
        counted,
        "the counter survives a policy added"
    );
    let cur = next;

    // Nothing changed: nothing loaded.
    let changes = sync_rules(&cur, &cur).expect("same");
    assert!(
        changes
            .namespaces
            .iter()
            .all(|n| n.outcome == Outcome::Unchanged),
        "{changes}"
    );

    // A table flushed by hand keeps its chains and maps, and would take
    // the changes: the read-back sees it, and the node is reloaded whole.
    let node1 = cur
        .nodes
        .iter()
        .find(|n| n.name == "node-1")
        .cloned()
        .expect("node-1");
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node1.netns,
            "nft",
            "flush",
            "table",
            "ip",
            "kube-proxy",
        ])
        .status()
        .expect("nft flush");
    assert!(o.success());
    let mut next = cur.clone();
    for svc in next.services.iter_mut().filter(|s| s.name == "web") {
        svc.endpoints = start
            .services
            .iter()
            .find(|s| s.name == "web")
            .map(|s| s.endpoints.clone())
            .unwrap_or_default();
    }
    let changes = sync_rules(&cur, &next).expect("sync after a hand flush");
    eprintln!("after a hand flush:\n{changes}");
    assert!(
        matches!(changes.outcome(&node1.netns), Some(Outcome::Reloaded(why)) if why.contains("drifted")),
        "{changes}"
    );
    assert!(
        matches!(changes.outcome(&node2.netns), Some(Outcome::Changed(_))),
        "{changes}"
    );
    assert_kernel_is(&next, "after a hand flush");

    // The daemon's way: the first sync reloads whole, the next only what
    // readiness changed.
    let loaded = podlab::kernel::services::Loaded::new();
    let first = loaded
        .sync(&next, &HashSet::new(), &[])
        .expect("first sync");
    assert!(first
        .namespaces
        .iter()
        .all(|n| matches!(n.outcome, Outcome::Reloaded(_))));
    let unready: HashSet<String> = [format!("default/{}", web.name)].into();
    let second = loaded.sync(&next, &unready, &[]).expect("second sync");
    eprintln!("{} not ready:\n{second}", web.name);
    assert!(!second.any_reloaded(), "{second}");
    assert_kernel_is(
        &podlab::kernel::services::ready_view(&next, &unready),
        "a pod not ready",
    );
}
