//! End-to-end: `podlab trace` against the kernel's own answers: `ip route
//! get` in every namespace on the path, the plan's veth and node names,
//! the conntrack entry of the traced flow.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-trace}
spec: {nodes: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-1
  containers: [{name: c, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: web, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, labels: {app: web}}
spec:
  nodeName: node-2
  containers: [{name: web, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
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
metadata: {name: web-bad}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 9999}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Namespace
metadata: {name: locked}
---
apiVersion: v1
kind: Pod
metadata: {name: safe, namespace: locked}
spec:
  nodeName: node-2
  containers: [{name: s, ports: [{containerPort: 80}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: locked}
spec:
  podSelector: {}
"#;

const NAME: &str = "t-trace";

fn trace_json(args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["trace", "--lab", NAME, "--json"];
    all.extend_from_slice(args);
    let o = run(&all);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code(), v, text(&o))
}

/// `ip -j route get DST` inside a namespace: the kernel's own answer.
fn route_get(netns: &str, dst: &str) -> Value {
    let o = Command::new("ip")
        .args(["netns", "exec", netns, "ip", "-j", "route", "get", dst])
        .output()
        .expect("ip route get");
    let v: Value = serde_json::from_slice(&o.stdout).expect("ip -j prints JSON");
    v[0].clone()
}

fn link_mac(netns: &str, dev: &str) -> String {
    let o = Command::new("ip")
        .args(["netns", "exec", netns, "ip", "-j", "link", "show", dev])
        .output()
        .expect("ip link");
    let v: Value = serde_json::from_slice(&o.stdout).expect("ip -j prints JSON");
    v[0]["address"].as_str().unwrap_or_default().to_string()
}

fn plan() -> Value {
    let text =
        std::fs::read_to_string(format!("/run/podlab/{NAME}/plan.json")).expect("plan saved");
    serde_json::from_str(&text).expect("plan is JSON")
}

fn pod<'a>(plan: &'a Value, ns: &str, name: &str) -> &'a Value {
    plan["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .find(|p| p["namespace"] == ns && p["name"] == name)
        .unwrap_or_else(|| panic!("no pod {ns}/{name}"))
}

fn node<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn netnses(v: &Value) -> Vec<String> {
    v["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .map(|h| h["netns"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every routing decision of the trace is the one `ip route get` gives in
/// that namespace for the packet's destination there.
fn routes_agree_with_ip_route_get(v: &Value, dst_at: impl Fn(usize) -> String) {
    for (i, h) in v["hops"].as_array().expect("hops").iter().enumerate() {
        let Some(r) = h.get("route") else { continue };
        let netns = h["netns"].as_str().expect("netns");
        let k = route_get(netns, &dst_at(i));
        assert_eq!(r["dev"], k["dev"], "hop {} dev: {r} vs {k}", i + 1);
        assert_eq!(
            r.get("gateway"),
            k.get("gateway"),
            "hop {} gateway: {r} vs {k}",
            i + 1
        );
        assert_eq!(r["src"], k["prefsrc"], "hop {} src: {r} vs {k}", i + 1);
        let local = k["type"] == "local";
        assert_eq!(r["kind"] == "local", local, "hop {}: {r} vs {k}", i + 1);
    }
}

#[test]
fn trace_follows_the_kernel_across_nodes_through_services_and_policies() {
    if !root_or_skip("trace") {
        return;
    }
    let host = host_snapshot();
    let file = lab_file(LAB);
    let lab = Up::new(NAME, &file);
    let plan = plan();
    let client = pod(&plan, "default", "client");
    let web2 = pod(&plan, "default", "web-2");
    let (n1, n2) = (node(&plan, "node-1"), node(&plan, "node-2"));

    // Pod to pod across nodes.
    let (code, v, out) = trace_json(&["client", "web-2:8080"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(v["verdict"]["kind"], "delivered", "{out}");
    assert_eq!(
        netnses(&v),
        [
            "t-trace-default-client",
            "t-trace-node-1",
            "t-trace-net",
            "t-trace-node-2",
            "t-trace-default-web-2"
        ],
        "{out}"
    );
    let dst = web2["ip"].as_str().expect("ip").to_string();
    routes_agree_with_ip_route_get(&v, |_| dst.clone());
    let h = v["hops"].as_array().expect("hops");
    // The veths and bridge ports are the plan's, the next hop node-2's IP.
    assert_eq!(h[0]["out"]["name"], "eth0");
    assert_eq!(h[1]["in"]["name"], client["host_veth"], "{out}");
    assert_eq!(h[1]["in"]["bridge"], "cni0");
    assert_eq!(h[1]["route"]["gateway"], n2["ip"]);
    assert_eq!(h[1]["out"]["name"], "eth0");
    assert_eq!(h[2]["in"]["name"], n1["uplink"]);
    assert_eq!(h[2]["bridged"]["bridge"], "br0");
    assert_eq!(h[2]["bridged"]["port"], n2["uplink"]);
    assert_eq!(
        h[2]["bridged"]["mac"],
        link_mac("t-trace-node-2", "eth0").as_str()
    );
    assert_eq!(h[3]["in"]["name"], "eth0");
    assert_eq!(h[3]["bridged"]["port"], web2["host_veth"]);
    assert_eq!(h[4]["in"]["name"], "eth0");
    assert_eq!(h[4]["route"]["kind"], "local");
    assert_eq!(v["answeredBy"], "default/web-2");
    assert_eq!(v["clientSeen"], client["ip"]);
    // The same path, readable.
    let o = run(&["trace", "--lab", NAME, "client", "web-2:8080"]);
    let s = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for want in [
        " 1  pod default/client  [netns t-trace-default-client]",
        "route  default via 10.244.1.1 dev eth0 src",
        "bridge br0:",
        " 5  pod default/web-2",
        "delivered: pod default/web-2",
    ] {
        assert!(s.contains(want), "no {want:?} in\n{s}");
    }

    // Pod to ClusterIP: the endpoint is the one conntrack shows for that
    // very flow, and the path goes on to that endpoint's node.
    let mut nodes_seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let (code, v, out) = trace_json(&["client", "svc/web"]);
        assert_eq!(code, Some(0), "{out}");
        let ep = &v["endpoint"];
        let sport = v["flow"]["sport"].as_u64().expect("sport").to_string();
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                "t-trace-node-1",
                "conntrack",
                "-L",
                "-p",
                "tcp",
                "--orig-src",
                client["ip"].as_str().expect("ip"),
                "--sport",
                &sport,
            ])
            .output()
            .expect("conntrack");
        let line = String::from_utf8_lossy(&o.stdout).to_string();
        let reply_src = line
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("src="))
            .nth(1)
            .unwrap_or_else(|| panic!("no conntrack entry for sport {sport}: {line}"));
        let reply_sport = line
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("sport="))
            .nth(1)
            .expect("reply sport");
        assert_eq!(ep["ip"], reply_src, "{out}\n{line}");
        assert_eq!(ep["port"].to_string(), reply_sport, "{out}\n{line}");
        let ep_node = ep["node"].as_str().expect("endpoint node").to_string();
        let ep_pod = ep["pod"].as_str().expect("endpoint pod");
        let (ns, name) = ep_pod.split_once('/').expect("ns/name");
        let hops = netnses(&v);
        assert_eq!(
            hops.last(),
            pod(&plan, ns, name)["netns"]
                .as_str()
                .map(String::from)
                .as_ref(),
            "{out}"
        );
        assert_eq!(
            hops[hops.len() - 2],
            format!("t-trace-{ep_node}"),
            "the hop before the endpoint is its node: {out}"
        );
        assert_eq!(
            hops.contains(&"t-trace-net".to_string()),
            ep_node == "node-2"
        );
        let nat = &v["hops"][1]["nat"];
        assert_eq!(nat["dnat"]["to"], format!("{reply_src}:{reply_sport}"));
        assert_eq!(nat["service"], "svc/default/web");
        assert!(
            nat["chain"]
                .as_str()
                .is_some_and(|c| c.starts_with("service-") && c.ends_with("default/web/tcp/")),
            "{out}"
        );
        assert_eq!(v["answeredBy"], ep_pod);
        // Before the DNAT, the ClusterIP; after it, the endpoint.
        let cip = v["flow"]["dst"].as_str().expect("dst").to_string();
        routes_agree_with_ip_route_get(&v, |i| {
            if i == 0 {
                cip.clone()
            } else {
                reply_src.to_string()
            }
        });
        nodes_seen.insert(ep_node);
    }
    assert!(!nodes_seen.is_empty());

    // An endpoint that refuses: a reset deletes the flow from conntrack at
    // once, yet the trace still names the endpoint (from conntrack's
    // new-flow event) and ends at that pod.
    let (code, v, out) = trace_json(&["client", "svc/web-bad"]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(v["verdict"]["kind"], "refused", "{out}");
    assert_eq!(v["endpoint"]["port"], 9999, "{out}");
    let ep_pod = v["endpoint"]["pod"].as_str().expect("endpoint pod");
    let (ns, name) = ep_pod.split_once('/').expect("ns/name");
    assert_eq!(
        netnses(&v).last().map(String::as_str),
        pod(&plan, ns, name)["netns"].as_str(),
        "{out}"
    );
    assert!(
        v["hops"][1]["conntrack"]
            .as_str()
            .is_some_and(|s| s.contains("removed since")),
        "{out}"
    );

    // From outside to a NodePort: DNAT and masquerade on the node.
    let (code, v, out) = trace_json(&["external", "172.18.0.2:30080"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        netnses(&v)[..3],
        ["t-trace-external", "t-trace-net", "t-trace-node-1"]
    );
    let nat = &v["hops"][2]["nat"];
    assert!(nat["dnat"].is_object() && nat["snat"].is_object(), "{out}");
    assert_eq!(nat["service"], "svc/default/web-np");

    // A NetworkPolicy drop names the isolated pod and its policy.
    let (code, v, out) = trace_json(&["client", "locked/safe", "--timeout", "500"]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(v["verdict"]["kind"], "dropped", "{out}");
    assert_eq!(
        v["verdict"]["policies"],
        serde_json::json!(["locked/deny-all"])
    );
    assert_eq!(
        netnses(&v).last().map(String::as_str),
        Some("t-trace-node-2")
    );
    let o = run(&[
        "trace",
        "--lab",
        NAME,
        "client",
        "locked/safe",
        "--timeout",
        "500",
    ]);
    assert!(
        stdout(&o).contains(
            "dropped: by the ingress isolation of locked/safe (policies: locked/deny-all)"
        ),
        "{}",
        text(&o)
    );

    // A service without endpoints is refused where kube-proxy runs.
    let o = run(&["trace", "--lab", NAME, "client", "svc/empty"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains("refused: svc/default/empty has no endpoints"),
        "{}",
        text(&o)
    );
    let (_, v, out) = trace_json(&["client", "svc/empty"]);
    assert_eq!(v["verdict"]["kind"], "refused", "{out}");
    assert_eq!(
        netnses(&v).last().map(String::as_str),
        Some("t-trace-node-1")
    );

    // Usage errors.
    let o = run(&["trace", "--lab", NAME, "nobody", "svc/web"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = run(&["trace", "--lab", NAME, "client", "svc/web:81"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    drop(lab);
    assert_eq!(host_snapshot(), host, "the host's network changed");
}
