//! End-to-end: Services through the kube-proxy emulation, as root.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-svc}
spec: {nodes: 3}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        ports: [{containerPort: 8080, name: http}, {containerPort: 5353, protocol: UDP, name: echo}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, labels: {app: solo}}
spec:
  nodeName: node-1
  containers: [{name: solo, ports: [{containerPort: 9090}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-1
  containers: [{name: c, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: echo, port: 53, protocol: UDP, targetPort: echo}
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: solo-local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: solo}
  ports: [{port: 90, targetPort: 9090, nodePort: 30090}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: nothing}
spec:
  selector: {app: nope}
  ports: [{port: 80}]
"#;

fn svc_field(lab: &Up, name: &str, pointer: &str) -> String {
    let svcs = lab.get_json("svc");
    let svc = svcs["items"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["metadata"]["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no service {name}: {svcs}"));
    match svc.pointer(pointer) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => panic!("{name}: no {pointer} in {svc}"),
    }
}

/// (pod, client) as the echo reports them.
fn echo(lab: &Up, from: &str, url: &str) -> (String, String) {
    let o = lab.exec(from, &["curl", "-sS", "--max-time", "3", url]);
    assert!(o.status.success(), "{from} -> {url}:\n{}", text(&o));
    let body = stdout(&o);
    let field = |k: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    (
        field("pod:"),
        field("client:")
            .rsplit_once(':')
            .map(|(ip, _)| ip.to_string())
            .unwrap_or_default(),
    )
}

#[test]
fn services_balance_nat_and_reject_like_kube_proxy() {
    if !root_or_skip("services") {
        return;
    }
    let file = lab_file(LAB);
    let lab = Up::new("t-svc", &file);
    let client_ip = lab.pod_ip("client");
    let web_ip = svc_field(&lab, "web", "/spec/clusterIP");

    // ClusterIP: spread over the endpoints, the pod sees the client's own IP.
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let (pod, client) = echo(&lab, "client", &format!("http://{web_ip}/"));
        assert_eq!(client, client_ip, "pod-to-ClusterIP keeps the source");
        seen.insert(pod);
    }
    assert!(
        seen.len() >= 2,
        "random endpoint choice should reach several pods: {seen:?}"
    );

    // UDP through the same service.
    let o = lab.exec(
        "client",
        &["bash", "-c", &format!("exec 3<>/dev/udp/{web_ip}/53; echo ping >&3; timeout 2 dd bs=2048 count=1 status=none <&3")],
    );
    assert!(stdout(&o).contains("data=ping"), "{}", text(&o));

    // Session affinity: one client, one pod.
    let sticky = svc_field(&lab, "sticky", "/spec/clusterIP");
    let pods: BTreeSet<String> = (0..8)
        .map(|_| echo(&lab, "client", &format!("http://{sticky}/")).0)
        .collect();
    assert_eq!(pods.len(), 1, "sessionAffinity: ClientIP: {pods:?}");

    // No endpoints: refused at once, not a timeout.
    let nothing = svc_field(&lab, "nothing", "/spec/clusterIP");
    let t = Instant::now();
    let o = lab.exec(
        "client",
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://{nothing}/"),
        ],
    );
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "rejected, not timed out"
    );

    // A node reaches ClusterIPs too.
    let (pod, _) = echo(&lab, "node/node-2", &format!("http://{web_ip}/"));
    assert!(pod.starts_with("web-"), "{pod}");

    // Hairpin: solo reaching itself through its own service.
    let solo = svc_field(&lab, "solo-local", "/spec/clusterIP");
    let (pod, _) = echo(&lab, "solo", &format!("http://{solo}:90/"));
    assert_eq!(pod, "solo");

    // NodePort, Cluster: every node answers, the pod sees a node address.
    let external_ip = "172.18.0.254";
    for node_ip in ["172.18.0.2", "172.18.0.3", "172.18.0.4"] {
        let (pod, client) = echo(&lab, "external", &format!("http://{node_ip}:30080/"));
        assert!(pod.starts_with("web-"), "{pod}");
        assert_ne!(client, external_ip, "Cluster policy masquerades");
    }
    // NodePort, Local: only node-1 (where solo runs) answers, with the
    // client's own address; the others drop.
    let (pod, client) = echo(&lab, "external", "http://172.18.0.2:30090/");
    assert_eq!((pod.as_str(), client.as_str()), ("solo", external_ip));
    let o = lab.exec(
        "external",
        &["curl", "-sS", "--max-time", "1", "http://172.18.0.3:30090/"],
    );
    assert_eq!(
        o.status.code(),
        Some(28),
        "a node without a local endpoint drops:\n{}",
        text(&o)
    );

    // LoadBalancer: an IP from the pool, shown in get svc, answering.
    let lb_ip = svc_field(&lab, "web-lb", "/status/loadBalancer/ingress/0/ip");
    assert!(lb_ip.starts_with("172.18.0.2"), "{lb_ip}");
    let (pod, _) = echo(&lab, "external", &format!("http://{lb_ip}/"));
    assert!(pod.starts_with("web-"), "{pod}");

    // The rules are readable: the service's name is in the node's ruleset.
    let o = lab.exec("node/node-1", &["nft", "list", "table", "ip", "kube-proxy"]);
    let rules = stdout(&o);
    assert!(rules.contains("default/web/tcp/http"), "{rules}");
    assert!(rules.contains("comment"), "{rules}");
}

#[test]
fn endpoints_follow_readiness_and_deleted_pods() {
    if !root_or_skip("endpoints_follow") {
        return;
    }
    let file = lab_file(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-svc2}
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
      containers: [{name: web, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: broken, labels: {app: web}}
spec:
  restartPolicy: Never
  containers: [{name: b, command: [sh, -c, "exit 1"], ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#,
    );
    let lab = Up::new("t-svc2", &file);
    let addresses = |lab: &Up| -> Vec<String> {
        let eps = lab.get_json("endpoints");
        eps["items"][0]["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["targetRef"]["name"].as_str().map(String::from))
            .collect()
    };
    // The broken pod never becomes ready: it is not an endpoint.
    let deadline = Instant::now() + Duration::from_secs(5);
    while addresses(&lab).contains(&"broken".to_string()) {
        assert!(Instant::now() < deadline, "broken pod still an endpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The rules follow within moments (as kube-proxy follows EndpointSlices).
    let web_ip = svc_field(&lab, "web", "/spec/clusterIP");
    let url = format!("http://{web_ip}/");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut streak = 0;
    while streak < 10 {
        let o = lab.exec("client", &["curl", "-sS", "--max-time", "3", &url]);
        streak = if o.status.success() { streak + 1 } else { 0 };
        assert!(
            Instant::now() < deadline,
            "the broken pod is still behind the service:\n{}",
            text(&o)
        );
    }
    // Delete one web pod: its Deployment replaces it at once with a new
    // pod, and from then on the deleted one never answers.
    let left = addresses(&lab);
    assert_eq!(left.len(), 2, "{left:?}");
    let o = run(&["delete", "pod", &left[0], "--lab", "t-svc2"]);
    assert!(o.status.success(), "{}", text(&o));
    let now = addresses(&lab);
    assert_eq!(now.len(), 2, "replaced: {now:?}");
    assert!(
        !now.contains(&left[0]) && now.contains(&left[1]),
        "{left:?} -> {now:?}"
    );
    // The apply behind the replacement also restarts the crashed pod,
    // which is ready (running, no probe) until it exits again, as on a
    // cluster: wait until it has left the rules once more.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut streak = 0;
    while streak < 10 {
        let o = lab.exec("client", &["curl", "-sS", "--max-time", "3", &url]);
        streak = if o.status.success() { streak + 1 } else { 0 };
        assert!(
            Instant::now() < deadline,
            "the service never settled:\n{}",
            text(&o)
        );
    }
    for _ in 0..10 {
        let (pod, _) = echo(&lab, "client", &format!("http://{web_ip}/"));
        assert!(now.contains(&pod), "{pod} answered, not one of {now:?}");
    }
    assert!(
        !namespaces_of("t-svc2")
            .iter()
            .any(|n| n.ends_with(&left[0])),
        "its namespace is gone"
    );
}
