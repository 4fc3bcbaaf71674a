//! `refusedBy`: a refused connection is followed to whoever refused it.
//! The client sees the same reset whether the load balancer, kube-proxy's
//! reject rule or a pod's kernel sent it; the test must tell them apart.

mod common;

use common::{lab_file, root_or_skip, run, stdout, text, Up};

const LAB: &str = "dc-refused";

fn file() -> common::LabFile {
    lab_file(&format!(
        "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {{name: {LAB}}}
spec:
  nodes: 2
  expect:
  - {{name: right lb empty, from: external, to: lb/empty, port: 80, expect: refused, refusedBy: kube-proxy}}
  - {{name: right svc empty, from: client, to: svc/empty, port: 80, expect: refused, refusedBy: kube-proxy}}
  - {{name: right pod port, from: client, to: web, port: 81, expect: refused, refusedBy: web}}
  - {{name: right node port, from: client, to: node/node-1, port: 10250, expect: refused, refusedBy: node/node-1}}
  - {{name: wrong pod port, from: client, to: web, port: 81, expect: refused, refusedBy: kube-proxy}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      nodeName: node-1
      containers: [{{name: web, image: nginx, ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: node-2
  containers: [{{name: c, image: busybox, command: ['sh', '-c', 'sleep 3600']}}]
---
apiVersion: v1
kind: Service
metadata: {{name: empty}}
spec:
  type: LoadBalancer
  selector: {{app: nothing}}
  ports: [{{port: 80}}]
"
    ))
}

#[test]
fn a_refusal_names_who_refused_and_refused_by_checks_it() {
    if !root_or_skip("a_refusal_names_who_refused") {
        return;
    }
    let f = file();
    let up = Up::new(LAB, &f);
    let path = f.path.to_str().unwrap();

    let o = run(&["test", path, "--filter", "right"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("4 passed, 0 failed"), "{}", text(&o));
    assert!(
        out.contains("PASS right lb empty: refused by kube-proxy on node/node-"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains(
            "PASS right svc empty: refused by kube-proxy on node/node-2: svc/default/empty has no endpoints"
        ),
        "{}",
        text(&o)
    );
    assert!(
        out.contains("PASS right pod port: refused by web-"),
        "{}",
        text(&o)
    );
    assert!(
        out.contains(
            "PASS right node port: refused by node/node-1: nothing listens on 172.18.0.2:10250"
        ),
        "{}",
        text(&o)
    );

    // The right outcome from the wrong refuser fails.
    let o = run(&["test", path, "--filter", "wrong"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains("expected: refused by kube-proxy\n    observed: refused by web-"),
        "{}",
        text(&o)
    );

    // The balancer stops forwarding: it refuses by itself, which is not
    // what the lab says (lab 05's "Break it").
    let o = up.exec(
        "lb",
        &["nft", "flush", "chain", "ip", "cloud-lb", "prerouting"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["test", path, "--filter", "lb empty"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains("observed: refused by lb: nothing listens on 172.18.0.200:80"),
        "{}",
        text(&o)
    );
}
