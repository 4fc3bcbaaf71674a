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
    // kube-proxy's rules follow the endpoints a moment later (the
    // daemon's sync, as kube-proxy's own): then every answer is web-a's.
    wait_until("the Service's traffic all to web-a", || {
        (0..6).all(|_| {
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
            o.status.success() && stdout(&o).contains("web-a")
        })
    });

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

const HEALTH_LAB: &str = "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: pr-health}
spec:
  nodes: 2
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: rpc}
spec:
  replicas: 2
  selector: {matchLabels: {app: rpc}}
  template:
    metadata: {labels: {app: rpc}}
    spec:
      containers:
      - name: server
        ports: [{containerPort: 50051}]
        readinessProbe: {grpc: {port: 50051}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: v1
kind: Service
metadata: {name: rpc}
spec: {selector: {app: rpc}, ports: [{port: 50051}]}
---
apiVersion: v1
kind: Pod
metadata: {name: phoenix}
spec:
  containers:
  - name: web
    ports: [{containerPort: 8080}]
    livenessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: boutique-style}
spec:
  containers:
  - name: server
    ports: [{containerPort: 7070}]
    readinessProbe:
      exec: {command: [/bin/grpc_health_probe, '-addr=:7070']}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c}]
";

fn curl(up: &Up, args: &[&str]) -> String {
    let mut argv = vec!["curl", "-s", "--max-time", "3"];
    argv.extend_from_slice(args);
    let o = up.exec("client", &argv);
    assert!(o.status.success(), "curl {args:?}: {}", text(&o));
    stdout(&o)
}

fn restarts(up: &Up, pod: &str) -> u64 {
    let pods = up.get_json("pods");
    let c = &pod_field(&pods, pod)["status"]["containerStatuses"][0];
    c["restartCount"]
        .as_u64()
        .or_else(|| c["restarts"].as_u64())
        .unwrap_or(0)
}

/// The echo answers gRPC health checks and can be told to fail them:
/// `POST /readyz/disable` takes a pod out of its Service, `/readyz/enable`
/// brings it back; a failed liveness probe restarts an echo healthy again.
/// Healthy pods are Ready the moment `up` returns.
#[test]
fn the_echo_can_be_made_to_fail_its_probes() {
    if !root_or_skip("the_echo_can_be_made_to_fail_its_probes") {
        return;
    }
    let file = lab_file(HEALTH_LAB);
    let up = Up::new("pr-health", &file);
    let pods = up.get_json("pods");
    let mut rpcs: Vec<(String, String)> = pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "rpc")
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
            (up.pod_ip(&name), name)
        })
        .collect();
    rpcs.sort();
    assert_eq!(rpcs.len(), 2, "{pods}");
    let both: Vec<String> = rpcs.iter().map(|(ip, _)| ip.clone()).collect();
    // No waiting: `up` returned after the first gRPC health checks passed.
    assert_eq!(ready_of(&up, "rpc"), both, "gRPC-probed pods Ready at once");
    let standin = pod_field(&pods, "boutique-style");
    assert_eq!(
        standin["status"]["containerStatuses"][0]["ready"], true,
        "an exec probe of the image's program is answered by the echo: {standin}"
    );

    let (ip_b, name_b) = &rpcs[1];
    let url = |path: &str| format!("http://{ip_b}:50051{path}");
    let said = curl(&up, &["-X", "POST", &url("/readyz/disable")]);
    assert!(said.contains("unhealthy"), "{said}");
    wait_until("the disabled pod out of the endpoints", || {
        ready_of(&up, "rpc") == [rpcs[0].0.clone()]
    });
    let code = curl(&up, &["-o", "/dev/null", "-w", "%{http_code}", &url("/")]);
    assert_eq!(code, "503", "an unhealthy echo answers 503");
    wait_until("the Service's traffic all to the other pod", || {
        (0..4).all(|_| {
            let via_svc = curl(&up, &["http://rpc.default.svc.cluster.local:50051/"]);
            !via_svc.contains(name_b.as_str())
        })
    });
    curl(&up, &["-X", "POST", &url("/readyz/enable")]);
    wait_until("the pod back in the endpoints", || {
        ready_of(&up, "rpc") == both
    });

    // A failing liveness probe: the echo is restarted, and healthy again.
    let phoenix = up.pod_ip("phoenix");
    let before = restarts(&up, "phoenix");
    curl(
        &up,
        &[
            "-X",
            "POST",
            &format!("http://{phoenix}:8080/readyz/disable"),
        ],
    );
    wait_until("phoenix restarted", || restarts(&up, "phoenix") > before);
    let code = curl(
        &up,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{phoenix}:8080/"),
        ],
    );
    assert_eq!(code, "200", "a restarted echo is healthy");
}
