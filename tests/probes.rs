//! End-to-end: probes run for real, as root. A pod failing its readiness
//! probe leaves its Service's endpoints (kube-proxy and DNS follow) and
//! comes back when the probe passes; a tcpSocket probe of a port nobody
//! serves keeps a pod unready; a failing liveness probe restarts the
//! container. The exec probes test for files of a directory the test owns:
//! an exec probe runs in the pod, which sees the host's `/tmp`.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn lab(dir: &str) -> String {
    let gate = |name: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: web}}}}
spec:
  containers:
  - name: web
    ports: [{{containerPort: 80}}]
    readinessProbe: {{httpGet: {{path: /ready, port: 80}}, periodSeconds: 1}}
  - name: gate
    command: [sleep, '100000']
    readinessProbe:
      exec: {{command: [test, -e, {dir}/{name}]}}
      periodSeconds: 1
      failureThreshold: 1
---
"
        )
    };
    format!(
        "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {{name: pr-e2e}}
spec:
  nodes: 1
---
{}{}apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{selector: {{app: web}}, ports: [{{port: 80}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: deaf, labels: {{app: deaf}}}}
spec:
  containers:
  - name: c
    ports: [{{containerPort: 80}}]
    readinessProbe: {{tcpSocket: {{port: 81}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Pod
metadata: {{name: mortal}}
spec:
  containers:
  - name: c
    command: [sleep, '100000']
    livenessProbe:
      exec: {{command: [test, -e, {dir}/alive]}}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  containers: [{{name: c}}]
",
        gate("web-a"),
        gate("web-b")
    )
}

/// The ready addresses of Service `web`, sorted.
fn ready_of(up: &Up, name: &str) -> Vec<String> {
    let eps = up.get_json("endpoints");
    let mut ips: Vec<String> = eps["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["metadata"]["name"] == name)
        .flat_map(|e| e["subsets"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_string))
        .collect();
    ips.sort();
    ips
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pod_field<'a>(pods: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no pod {name} in {pods}"))
}

#[test]
fn probes_drive_endpoints_and_restarts() {
    if !root_or_skip("probes_drive_endpoints_and_restarts") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8").to_string();
    for f in ["web-a", "web-b", "alive"] {
        std::fs::write(dir.path().join(f), "").expect("write a probe file");
    }
    let file = lab_file(&lab(&d));
    let up = Up::new("pr-e2e", &file);
    let (a, b) = (up.pod_ip("web-a"), up.pod_ip("web-b"));
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    wait_until("both web pods ready", || ready_of(&up, "web") == both);

    // web-b fails its readiness probe: it leaves the endpoints, and the
    // Service's traffic all goes to web-a.
    std::fs::remove_file(dir.path().join("web-b")).expect("remove");
    wait_until("web-b out of the endpoints", || {
        ready_of(&up, "web") == [a.clone()]
    });
    let pods = up.get_json("pods");
    let web_b = pod_field(&pods, "web-b");
    let ready = web_b["status"]["containerStatuses"]
        .as_array()
        .expect("containerStatuses")
        .iter()
        .map(|c| (c["name"].as_str().unwrap_or(""), c["ready"].as_bool()))
        .collect::<Vec<_>>();
    assert!(ready.contains(&("gate", Some(false))), "{web_b}");
    assert!(ready.contains(&("web", Some(true))), "{web_b}");
    for _ in 0..6 {
        let o = up.exec(
            "client",
            &[
                "curl",
                "-s",
                "--max-time",
                "3",
                "http://web.default.svc.cluster.local/",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        assert!(stdout(&o).contains("web-a"), "{}", text(&o));
    }

    // It passes again: back in.
    std::fs::write(dir.path().join("web-b"), "").expect("write");
    wait_until("web-b back in the endpoints", || {
        ready_of(&up, "web") == both
    });

    // Nobody listens on the port of deaf's probe: never ready.
    let pods = up.get_json("pods");
    let deaf = pod_field(&pods, "deaf");
    assert_eq!(
        deaf["status"]["containerStatuses"][0]["ready"], false,
        "{deaf}"
    );

    // mortal fails its liveness probe: its process is killed and started
    // again, as often as the probe fails.
    std::fs::remove_file(dir.path().join("alive")).expect("remove");
    wait_until("mortal restarted", || {
        let pods = up.get_json("pods");
        // podlab's own JSON still says `restarts` (issue 15 point 5).
        let c = &pod_field(&pods, "mortal")["status"]["containerStatuses"][0];
        c["restartCount"]
            .as_u64()
            .or_else(|| c["restarts"].as_u64())
            .is_some_and(|n| n >= 1)
    });
}
