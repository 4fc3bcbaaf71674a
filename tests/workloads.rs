//! End-to-end: a StatefulSet behind a headless Service and a DaemonSet,
//! as root. A pod's stable DNS name (`web-0.nginx.default.svc...`) must
//! resolve, from inside another pod, to that pod's own address, and the
//! DaemonSet must have exactly one pod on each node.

mod common;

use common::*;
use std::time::{Duration, Instant};

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: h3-wl}
spec:
  nodes: 2
---
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 2
  serviceName: nginx
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      tolerations: [{operator: Exists}]
      containers: [{name: agent, ports: [{containerPort: 9100}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: busybox}]
"#;

/// What `getent hosts` gives for `name` from the client pod, retried for a
/// few seconds: the DNS pod may still be starting.
fn resolve(up: &Up, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = up.exec("client", &["getent", "hosts", name]);
        let out = stdout(&o);
        if o.status.success() || Instant::now() > deadline {
            assert!(o.status.success(), "getent hosts {name}:\n{}", text(&o));
            return out.split_whitespace().next().unwrap_or("").to_string();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn statefulset_and_daemonset() {
    if !root_or_skip("statefulset_and_daemonset") {
        return;
    }
    let file = lab_file(LAB);
    let up = Up::new("h3-wl", &file);

    let pods = up.get_json("pods");
    let items = pods["items"].as_array().expect("items");
    let owned_by = |kind: &str| -> Vec<&serde_json::Value> {
        items
            .iter()
            .filter(|p| p["metadata"]["ownerReferences"][0]["kind"] == kind)
            .collect()
    };

    // StatefulSet: web-0, web-1, each with its stable name.
    let mut web: Vec<&str> = owned_by("StatefulSet")
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    web.sort();
    assert_eq!(web, ["web-0", "web-1"], "{pods}");
    for name in ["web-0", "web-1"] {
        let ip = up.pod_ip(name);
        assert_eq!(
            resolve(&up, &format!("{name}.nginx.default.svc.cluster.local")),
            ip,
            "{name}'s DNS name is its own address"
        );
    }

    // DaemonSet: one pod per node, named `agent-<suffix>`.
    let agents = owned_by("DaemonSet");
    let mut nodes: Vec<&str> = agents
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["node-1", "node-2"], "{pods}");
    for p in &agents {
        let name = p["metadata"]["name"].as_str().unwrap_or("");
        let suffix = name.strip_prefix("agent-").unwrap_or("");
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(p["metadata"]["ownerReferences"][0]["name"], "agent");
    }
    // Each DaemonSet pod answers on its port: the echo names the pod
    // and the node it runs on.
    for p in &agents {
        let ip = p["status"]["podIP"].as_str().unwrap_or("");
        let node = p["spec"]["nodeName"].as_str().unwrap_or("");
        let o = up.exec(
            "client",
            &[
                "curl",
                "-s",
                "--max-time",
                "5",
                &format!("http://{ip}:9100/"),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        assert!(stdout(&o).contains(node), "{}", text(&o));
    }

    // The real kubectl sees them with its own columns and short names.
    let have_kubectl = std::process::Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_kubectl {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("no kubectl, and CI=true: install it (scripts/provision.sh)");
        }
        eprintln!("statefulset_and_daemonset: no kubectl, its part is skipped");
        return;
    }
    // A discovery cache of its own: an earlier lab on the same port may
    // have left one without these resources.
    let cache = tempfile::tempdir().expect("tempdir");
    let cache_dir = cache.path().to_str().expect("utf-8 path");
    let o = run(&[
        "kubectl",
        "--lab",
        &up.lab,
        "--cache-dir",
        cache_dir,
        "get",
        "sts,ds",
        "-o",
        "wide",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("statefulset.apps/web")[1], "2/2", "{out}");
    assert_eq!(row("daemonset.apps/agent")[1..4], ["2", "2", "2"], "{out}");
}

const PEERS_LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: wl-pnr}
spec:
  nodes: 1
---
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: peers}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 2
  serviceName: nginx
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c}]
"#;

/// Every IPv4 address `name` resolves to from the client pod, sorted.
fn addresses(up: &Up, name: &str) -> Vec<String> {
    let o = up.exec("client", &["getent", "ahostsv4", name]);
    let mut ips: Vec<String> = stdout(&o)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Waits (a few seconds at most) until `name` resolves to `want`.
fn wait_for_addresses(up: &Up, name: &str, want: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = addresses(up, name);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: want {want:?}, DNS answers {got:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn publish_not_ready_addresses_keeps_unready_peers() {
    if !root_or_skip("publish_not_ready_addresses_keeps_unready_peers") {
        return;
    }
    let file = lab_file(PEERS_LAB);
    let up = Up::new("wl-pnr", &file);
    let mut both = vec![up.pod_ip("web-0"), up.pod_ip("web-1")];
    both.sort();
    wait_for_addresses(&up, "nginx.default.svc.cluster.local", &both);
    wait_for_addresses(&up, "peers.default.svc.cluster.local", &both);

    // web-1 is no longer ready: it leaves `nginx`, and stays in `peers`,
    // which publishes unready addresses as StatefulSet peers expect.
    podlab::runtime::stop_pod(
        &podlab::state::dir_of(&up.lab),
        "default",
        "web-1",
        Duration::from_secs(5),
    )
    .expect("stop web-1");
    wait_for_addresses(
        &up,
        "nginx.default.svc.cluster.local",
        std::slice::from_ref(&up.pod_ip("web-0")),
    );
    assert_eq!(addresses(&up, "peers.default.svc.cluster.local"), both);

    // Their Endpoints say the same.
    let eps = up.get_json("endpoints");
    let ready = |name: &str| -> Vec<String> {
        let e = eps["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|e| e["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no endpoints {name} in {eps}"));
        let mut ips: Vec<String> = e["subsets"][0]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["ip"].as_str().map(str::to_string))
            .collect();
        ips.sort();
        ips
    };
    assert_eq!(ready("nginx"), [up.pod_ip("web-0")], "{eps}");
    assert_eq!(ready("peers"), both, "{eps}");
}

const HOST_PORT_LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: wl-hp}
spec:
  nodes: 2
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: exporter}
spec:
  selector: {matchLabels: {app: exporter}}
  template:
    metadata: {labels: {app: exporter}}
    spec:
      containers: [{name: e, ports: [{containerPort: 9100, hostPort: 19100}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-1
  containers: [{name: c}]
"#;

/// A hostPort is the node's port: from outside the cluster, and from a
/// pod on another node, each node's IP on it reaches that node's pod (as
/// the portmap plugin's DNAT does), and the pod sees who connected.
#[test]
fn host_ports_reach_the_pod_on_that_node() {
    if !root_or_skip("host_ports_reach_the_pod_on_that_node") {
        return;
    }
    let file = lab_file(HOST_PORT_LAB);
    let up = Up::new("wl-hp", &file);
    let pods = up.get_json("pods");
    let nodes = up.get_json("nodes");
    let node_ip = |name: &str| -> String {
        nodes["items"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["metadata"]["name"] == name)
            .and_then(|n| n["status"]["addresses"].as_array())
            .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
            .and_then(|x| x["address"].as_str())
            .unwrap_or_else(|| panic!("no InternalIP of {name} in {nodes}"))
            .to_string()
    };
    for node in ["node-1", "node-2"] {
        let pod = pods["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|p| p["metadata"]["labels"]["app"] == "exporter" && p["spec"]["nodeName"] == node)
            .unwrap_or_else(|| panic!("no exporter on {node}: {pods}"));
        let name = pod["metadata"]["name"].as_str().expect("name");
        let url = format!("http://{}:19100/", node_ip(node));
        for from in ["external", "client"] {
            let o = up.exec(from, &["curl", "-s", "--max-time", "3", &url]);
            assert!(o.status.success(), "{from} -> {url}: {}", text(&o));
            let out = stdout(&o);
            assert!(
                out.contains(&format!("pod: {name}")),
                "{from} -> {url}: {out}"
            );
        }
    }
    // No hostPort of its own: the client's node port is closed.
    let o = up.exec(
        "external",
        &[
            "curl",
            "-s",
            "--max-time",
            "3",
            &format!("http://{}:19101/", node_ip("node-1")),
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
}

const HAND_ENDPOINTS_LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: wl-ep}
spec:
  nodes: 2
---
apiVersion: v1
kind: Pod
metadata: {name: db-a}
spec:
  nodeName: node-2
  containers: [{name: pg, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {ports: [{name: pg, port: 15432, targetPort: 5432}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: db}
subsets:
- addresses: [{ip: 10.244.2.2}]
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: sliced}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: sliced-1
  labels: {kubernetes.io/service-name: sliced}
addressType: IPv4
endpoints: [{addresses: [10.244.2.2]}]
ports: [{port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-1
  containers: [{name: c}]
"#;

/// A Service without a selector sends its traffic where its hand-written
/// Endpoints or EndpointSlice say, by its cluster IP and its DNS name, and
/// the endpoints the API serves are those addresses.
#[test]
fn hand_written_endpoints_are_served() {
    if !root_or_skip("hand_written_endpoints_are_served") {
        return;
    }
    let file = lab_file(HAND_ENDPOINTS_LAB);
    let up = Up::new("wl-ep", &file);
    assert_eq!(up.pod_ip("db-a"), "10.244.2.2", "the fixture's address");
    for url in [
        "http://db.default.svc.cluster.local:15432/",
        "http://sliced.default.svc.cluster.local/",
    ] {
        let o = up.exec("client", &["curl", "-s", "--max-time", "3", url]);
        assert!(o.status.success(), "{url}: {}", text(&o));
        assert!(stdout(&o).contains("pod: db-a"), "{url}: {}", text(&o));
    }
    let eps = up.get_json("endpoints");
    let db = eps["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["metadata"]["name"] == "db")
        .unwrap_or_else(|| panic!("no endpoints db in {eps}"));
    assert_eq!(db["subsets"][0]["addresses"][0]["ip"], "10.244.2.2", "{db}");
    assert_eq!(db["subsets"][0]["ports"][0]["port"], 5432, "{db}");
}
