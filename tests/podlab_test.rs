//! End-to-end: `podlab test` runs a lab's `spec.expect` against real
//! namespaces, as root.

mod common;

use common::*;
use std::time::Instant;

/// A seed-like lab whose every assertion holds: cross-node connected with
/// no SNAT, refused, a UDP echo, and a 3x3 matrix.
fn passing_lab(name: &str) -> LabFile {
    lab_file(&format!(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {{name: {name}}}
spec:
  nodes: 2
  expect:
  - name: pod-2 reaches pod-1 across nodes without NAT
    from: pod-2
    to: pod-1
    port: 80
    expect: connected
    sourceIP: client
  - {{from: pod-1, to: pod-2, port: 80, expect: refused}}
  - {{from: pod-2, to: pod-1, port: 80, expect: connected, status: 200, bodyContains: pod-1}}
  - {{from: node/node-2, to: pod-1, port: 5353, protocol: UDP, expect: connected, sourceIP: node/node-2}}
  - {{from: pod-2, to: pod-1, port: 5354, protocol: UDP, expect: refused}}
  - matrix:
      from: [pod-1, pod-2, x/pod-3]
      to: [pod-1, pod-2, x/pod-3]
      port: 80
      expect: |
        .  R  .
        .  R  .
        .  R  .
---
apiVersion: v1
kind: Namespace
metadata: {{name: x}}
---
apiVersion: v1
kind: Pod
metadata: {{name: pod-1}}
spec:
  nodeName: node-1
  containers:
  - name: nginx
    image: nginx
    ports: [{{containerPort: 80}}, {{containerPort: 5353, protocol: UDP}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: pod-2}}
spec:
  nodeName: node-2
  containers:
  - {{name: busybox, image: busybox, command: ['sh', '-c', 'sleep 3600']}}
---
apiVersion: v1
kind: Pod
metadata: {{name: pod-3, namespace: x}}
spec:
  nodeName: node-2
  containers:
  - {{name: web, image: nginx, ports: [{{containerPort: 80}}]}}
"#
    ))
}

fn broken_fixture() -> String {
    format!(
        "{}/tests/fixtures/broken-seed.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// `podlab test` brings its lab up and down itself; this brings it down
/// however the test ends, and checks that nothing is left.
struct DownAfter(&'static str);

impl DownAfter {
    fn new(lab: &'static str) -> DownAfter {
        let _ = run(&["down", lab]);
        DownAfter(lab)
    }
}

impl Drop for DownAfter {
    fn drop(&mut self) {
        let _ = run(&["down", self.0]);
        if !std::thread::panicking() {
            assert_nothing_left(self.0);
        }
    }
}

#[test]
fn a_passing_lab_exits_0_and_leaves_nothing() {
    if !root_or_skip("a_passing_lab_exits_0") {
        return;
    }
    let _down = DownAfter::new("t-pt-pass");
    let file = passing_lab("t-pt-pass");
    let start = Instant::now();
    let o = run(&["test", file.path.to_str().unwrap()]);
    let took = start.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("PASS ").count(), 6, "{}", text(&o));
    assert!(out.contains("6 passed, 0 failed"), "{}", text(&o));
    assert!(
        out.contains("pod-2 reaches pod-1 across nodes without NAT: connected to pod-1"),
        "{}",
        text(&o)
    );
    // Up, 6 assertions (21 probes), down.
    assert!(took.as_secs_f64() < 5.0, "took {took:?}");
    assert_nothing_left("t-pt-pass");
}

#[test]
fn a_broken_lab_exits_1_and_says_what_differs() {
    if !root_or_skip("a_broken_lab_exits_1") {
        return;
    }
    let _down = DownAfter::new("t-pt-broken");
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let o = run(&[
        "test",
        &broken_fixture(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("1 passed, 3 failed"), "{}", text(&o));
    assert!(
        out.contains("PASS pod-2 reaches pod-1 without NAT"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains(
            "FAIL pod-1 reaches a server on pod-2  (line 17)\n    expected: connected\n    observed: refused by pod-2: nothing listens on 10.244.2.2:80\n"
        ),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("expected: connected, sourceIP node/node-2\n    observed: connected to pod-1, sourceIP 10.244.2.2 (pod-2)"),
        "{}",
        text(&o)
    );
    // A failing matrix prints both whole tables.
    assert!(
        out.contains("    expected:\n             pod-1  pod-2\n      pod-1  .      .\n      pod-2  .      R\n    observed:\n             pod-1  pod-2\n      pod-1  .      R\n      pod-2  .      R\n"),
        "{}",
        text(&o)
    );

    let xml = std::fs::read_to_string(&junit).expect("the junit file is written");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains("<testsuite name=\"t-pt-broken\" tests=\"4\" failures=\"3\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 4, "{xml}");
    assert!(
        xml.contains(
            "<testcase classname=\"t-pt-broken\" name=\"pod-1 reaches a server on pod-2\""
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"expected connected, observed refused by pod-2: nothing listens on 10.244.2.2:80\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<failure ").count(), 3, "{xml}");
    assert_eq!(xml.matches("</failure>").count(), 3, "{xml}");
    assert!(xml.trim_end().ends_with("</testsuites>"), "{xml}");
}

#[test]
fn json_parses_and_filter_runs_a_subset() {
    if !root_or_skip("json_parses_and_filter_runs_a_subset") {
        return;
    }
    let _down = DownAfter::new("t-pt-json");
    let file = passing_lab("t-pt-json");
    let o = run(&[
        "test",
        file.path.to_str().unwrap(),
        "--json",
        "--filter",
        "UDP",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json prints JSON");
    let items = v.as_array().expect("an array of results");
    assert_eq!(items.len(), 2, "{v:#}");
    for r in items {
        assert!(r["name"].as_str().unwrap().contains("UDP"), "{r}");
        assert_eq!(r["passed"], true, "{r}");
        assert_eq!(r["kind"], "connectivity", "{r}");
        assert!(
            r["expected"].is_string() && r["observed"].is_string(),
            "{r}"
        );
        assert!(r["line"].as_u64().unwrap() > 0, "{r}");
    }
}

#[test]
fn an_invalid_file_exits_2_without_touching_the_kernel() {
    // Validation comes first: this needs no root.
    let file = lab_file(
        "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-pt-bad}
spec:
  expect:
  - {from: pod-1, to: pod-1, port: 80, expect: conected}
  - {from: pod-1, to: pod-9, port: 80, expect: connected}
---
apiVersion: v1
kind: Pod
metadata: {name: pod-1}
spec: {containers: [{name: c}]}
",
    );
    let o = run(&["test", file.path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("lab.yaml:6:48: spec.expect[0].expect: lab `t-pt-bad`: expected connected, refused or blocked, found `conected`"),
        "{}",
        text(&o)
    );
    assert!(err.contains("did you mean `connected`?"), "{}", text(&o));
    assert!(
        err.contains("lab.yaml:7:23: spec.expect[1].to: lab `t-pt-bad`: `pod-9` names no pod in `default` and no Service in `default` of this lab"),
        "{}",
        text(&o)
    );
    assert!(!std::path::Path::new("/run/podlab/t-pt-bad").exists());
}

#[test]
fn a_lab_already_up_is_tested_as_it_is_and_left_up() {
    if !root_or_skip("a_lab_already_up_is_left_up") {
        return;
    }
    let file = passing_lab("t-pt-up");
    let lab = Up::new("t-pt-up", &file);
    let o = run(&["test", file.path.to_str().unwrap(), "--filter", "refused"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already up"),
        "{}",
        text(&o)
    );
    assert!(stdout(&o).contains("2 passed, 0 failed"), "{}", text(&o));
    assert!(
        std::path::Path::new("/run/podlab/t-pt-up").exists(),
        "the lab must still be up"
    );
    // Still serving: the exercise can go on.
    let o = lab.exec("pod-2", &["true"]);
    assert!(o.status.success(), "{}", text(&o));
}
