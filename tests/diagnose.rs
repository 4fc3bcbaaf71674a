//! End-to-end: `diagnose` finds what was broken, from the kernel.

mod common;

use common::*;

#[test]
fn diagnose_names_the_first_broken_step_and_the_command_that_shows_it() {
    if !root_or_skip("diagnose") {
        return;
    }
    let file = lab_file(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-diag}
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
metadata: {name: b, labels: {app: b}}
spec:
  nodeName: node-2
  containers: [{name: b, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  selector: {app: b}
  ports: [{port: 80}]
"#,
    );
    let lab = Up::new("t-diag", &file);
    let o = run(&["diagnose", "--lab", "t-diag"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["diagnose", "--lab", "t-diag", "a", "svc/b:80"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["diagnose", "--lab", "t-diag", "a", "b"]);
    assert_eq!(o.status.code(), Some(0), "DNS name path:\n{}", text(&o));

    // Break the CNI on node-1: the route to node-2's pods.
    let o = lab.exec("node/node-1", &["ip", "route", "del", "10.244.2.0/24"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["diagnose", "--lab", "t-diag", "a", "b:80", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let broken: Vec<&serde_json::Value> = v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["ok"] == false)
        .collect();
    assert_eq!(broken.len(), 1, "{v}");
    assert!(
        broken[0]["check"]
            .as_str()
            .unwrap_or_default()
            .contains("routes node-2's pod CIDR"),
        "{v}"
    );
    assert_eq!(broken[0]["show"], "podlab exec node/node-1 -- ip route");
    // The whole-lab view sees the missing route too.
    let o = run(&["diagnose", "--lab", "t-diag"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains("route 10.244.2.0/24 via 172.18.0.3 is missing"),
        "{}",
        text(&o)
    );
}
