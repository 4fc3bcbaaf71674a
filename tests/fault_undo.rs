//! A fault's undo is "diff, then repair": a learner's change after the
//! injection that leaves the recorded undo incomplete still ends as
//! planned, and `fault clear` says what the diff repaired; when the diff
//! cannot be emptied, `fault clear` fails and says what still differs.

mod common;

use std::time::Duration;

use common::*;

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: ex-undo}
spec: {nodes: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: a}
spec:
  nodeName: node-1
  containers: [{name: c, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec:
  nodeName: node-2
  containers: [{name: c, ports: [{containerPort: 80}]}]
"#;

/// Whole-lab `diagnose` passes (again for a moment while it does not: the
/// daemon resyncs a little after a change).
fn healthy(lab: &str) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..20 {
        let o = run(&["diagnose", "--lab", lab]);
        if o.status.code() == Some(0) {
            return Ok(());
        }
        last = text(&o);
        std::thread::sleep(Duration::from_millis(150));
    }
    Err(last)
}

fn a_reaches_b(lab: &Up, b: &str) -> bool {
    let url = format!("http://{b}");
    lab.exec("a", &["curl", "-s", "-m", "2", "-o", "/dev/null", &url])
        .status
        .success()
}

#[test]
fn clear_repairs_what_the_undo_left_and_fails_on_what_it_cannot() {
    if !root_or_skip("fault undo diff") {
        return;
    }
    let file = lab_file(LAB);
    let lab = Up::new("ex-undo", &file);
    healthy("ex-undo").unwrap_or_else(|e| panic!("not healthy after up:\n{e}"));
    let b = lab.pod_ip("b");
    assert!(a_reaches_b(&lab, &b));

    // The route to node-2's pods is deleted; the learner, trying things,
    // puts a blackhole in its place. The recorded undo (`ip route add ...
    // via`) finds the destination taken: only the diff puts it right.
    let o = run(&[
        "fault",
        "inject",
        "route-missing",
        "node-1",
        "--lab",
        "ex-undo",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = lab.exec(
        "node/node-1",
        &["ip", "route", "add", "blackhole", "10.244.2.0/24"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!a_reaches_b(&lab, &b));
    let o = run(&["fault", "clear", "--lab", "ex-undo"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.contains("cleared route-missing"), "{}", text(&o));
    assert!(
        out.contains("repaired: ex-undo-node-1: ip route del blackhole 10.244.2.0/24"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("repaired: ex-undo-node-1: ip route replace 10.244.2.0/24 via"),
        "{}",
        text(&o)
    );
    healthy("ex-undo").unwrap_or_else(|e| panic!("not as planned after clear:\n{e}"));
    assert!(a_reaches_b(&lab, &b));

    // Forwarding off on node-2; the learner also deletes b's veth there.
    // The undo works, but no change puts a pod's wiring back (`apply`
    // makes it anew): `fault clear` says what still differs, and fails.
    let o = run(&[
        "fault",
        "inject",
        "forwarding-off",
        "node-2",
        "--lab",
        "ex-undo",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // b is node-2's only pod: its veth is cni0's only port there.
    let o = lab.exec(
        "node/node-2",
        &["ip", "-o", "link", "show", "master", "cni0"],
    );
    let ports = stdout(&o);
    let veth = ports
        .lines()
        .next()
        .and_then(|l| l.split(": ").nth(1))
        .and_then(|n| n.split('@').next())
        .unwrap_or_else(|| panic!("b's veth on node-2: {}", text(&o)))
        .to_string();
    let o = lab.exec("node/node-2", &["ip", "link", "del", &veth]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["fault", "clear", "--lab", "ex-undo"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains("cleared forwarding-off"),
        "{}",
        text(&o)
    );
    assert!(
        stdout(&o).contains("still differs from the plan: pod default/b needs to be made anew"),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("still differs from its plan"),
        "{}",
        text(&o)
    );
    let o = run(&["apply", "--lab", "ex-undo"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    healthy("ex-undo").unwrap_or_else(|e| panic!("not as planned after apply:\n{e}"));
    assert!(a_reaches_b(&lab, &b));
}
