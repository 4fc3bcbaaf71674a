//! End-to-end: ten kinds of breakage done by hand inside a lab; for each,
//! `diagnose` names it as the first failed step, `apply` with the unchanged
//! lab file repairs it, and the connectivity comes back. And `apply` of an
//! edited file changes only what the edit changed.

mod common;

use common::*;

fn lab_text(name: &str) -> String {
    format!(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {{name: {name}}}
spec: {{nodes: 2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, labels: {{app: client}}}}
spec:
  nodeName: node-1
  containers: [{{name: c, ports: [{{containerPort: 80}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: server, labels: {{app: web}}}}
spec:
  nodeName: node-2
  containers: [{{name: s, ports: [{{containerPort: 80}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80}}]
"#
    )
}

const DENY_ALL: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"#;

fn curl_ok(lab: &Up, url: &str) -> bool {
    lab.exec("client", &["curl", "-s", "-m", "2", "-o", "/dev/null", url])
        .status
        .success()
}

fn dig_ok(lab: &Up) -> bool {
    let o = lab.exec(
        "client",
        &[
            "dig",
            "+short",
            "+time=1",
            "+tries=1",
            "web.default.svc.cluster.local",
        ],
    );
    o.status.success() && !stdout(&o).trim().is_empty()
}

#[derive(Clone, Copy)]
enum Path {
    Pod,
    Service,
    Dns,
}

impl Path {
    fn diagnose_to(self) -> &'static str {
        match self {
            Path::Pod => "server:80",
            Path::Service => "svc/web:80",
            Path::Dns => "web.default.svc.cluster.local",
        }
    }

    fn works(self, lab: &Up) -> bool {
        match self {
            Path::Pod => curl_ok(lab, &format!("http://{}:80", lab.pod_ip("server"))),
            Path::Service => curl_ok(lab, "http://web.default.svc.cluster.local:80"),
            Path::Dns => dig_ok(lab),
        }
    }
}

fn first_broken(lab: &Up, to: &str) -> (Option<i32>, String, String) {
    let (code, check, _, report) = first_broken_step(lab, to);
    (code, check, report)
}

/// Exit code, the first broken step's check and evidence, the report.
fn first_broken_step(lab: &Up, to: &str) -> (Option<i32>, String, String, String) {
    let o = run(&["diagnose", "--lab", &lab.lab, "client", to, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("diagnose --json: {e}\n{}", text(&o)));
    let broken = v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["ok"] == false);
    let field = |f: &str| {
        broken
            .map(|s| s[f].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    (
        o.status.code(),
        field("check"),
        field("evidence"),
        v.to_string(),
    )
}

/// Break a healthy lab with `breakage`, check that `diagnose` names the
/// step `expect_step` first, repair with `apply` of the same file, and
/// check that everything works again.
fn breakage(name: &str, path: Path, expect_step: &str, breakage: impl Fn(&Up, &LabFile)) {
    breakage_with(name, path, expect_step, "", breakage)
}

/// `breakage`, with what the failed step's evidence must say.
fn breakage_with(
    name: &str,
    path: Path,
    expect_step: &str,
    expect_evidence: &str,
    breakage: impl Fn(&Up, &LabFile),
) {
    if !root_or_skip(name) {
        return;
    }
    let file = lab_file(&lab_text(name));
    let lab = Up::new(name, &file);
    assert!(
        path.works(&lab),
        "{name}: the lab does not work before the breakage"
    );
    let (code, step, _) = first_broken(&lab, path.diagnose_to());
    assert_eq!(
        code,
        Some(0),
        "{name}: healthy lab diagnosed broken at {step}"
    );

    breakage(&lab, &file);
    assert!(
        !path.works(&lab),
        "{name}: the breakage did not break the path"
    );
    let (code, step, evidence, report) = first_broken_step(&lab, path.diagnose_to());
    assert_eq!(code, Some(1), "{name}: {report}");
    assert!(
        step.contains(expect_step),
        "{name}: first broken step is {step:?}, expected one about {expect_step:?}\n{report}"
    );
    assert!(
        evidence.contains(expect_evidence),
        "{name}: evidence {evidence:?} should say {expect_evidence:?}\n{report}"
    );

    let o = run(&["apply", file.path.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0), "{name}: apply\n{}", text(&o));
    assert!(
        stdout(&o).contains("repaired") || stdout(&o).contains("deleted"),
        "{name}: apply says nothing was repaired\n{}",
        text(&o)
    );
    let (code, step, report) = first_broken(&lab, path.diagnose_to());
    assert_eq!(
        code,
        Some(0),
        "{name}: still broken at {step:?} after apply\n{report}"
    );
    let o = run(&["diagnose", "--lab", name]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o));
    assert!(
        path.works(&lab),
        "{name}: the path does not work after apply"
    );
    // Nothing left to repair: a second apply changes nothing.
    let o = run(&["apply", file.path.to_str().expect("utf-8")]);
    assert!(
        stdout(&o).contains("unchanged"),
        "{name}: second apply\n{}",
        text(&o)
    );
}

fn sh(lab: &Up, target: &str, cmd: &[&str]) {
    let o = lab.exec(target, cmd);
    assert!(o.status.success(), "{target} {cmd:?}\n{}", text(&o));
}

#[test]
fn pod_interface_down() {
    breakage(
        "ap-if",
        Path::Pod,
        "pod default/server: eth0 is up",
        |lab, _| {
            sh(lab, "server", &["ip", "link", "set", "eth0", "down"]);
        },
    );
}

#[test]
fn route_to_another_node_deleted() {
    breakage(
        "ap-rt",
        Path::Pod,
        "node node-1 routes node-2's pod CIDR",
        |lab, _| {
            sh(lab, "node/node-1", &["ip", "route", "del", "10.244.2.0/24"]);
        },
    );
}

#[test]
fn forwarding_off_on_a_node() {
    breakage(
        "ap-fw",
        Path::Pod,
        "node node-2 forwards packets",
        |lab, _| {
            sh(
                lab,
                "node/node-2",
                &["sysctl", "-qw", "net.ipv4.ip_forward=0"],
            );
        },
    );
}

#[test]
fn pod_bridge_down() {
    breakage(
        "ap-br",
        Path::Pod,
        "node node-2's cni0 and eth0 are up",
        |lab, _| {
            sh(lab, "node/node-2", &["ip", "link", "set", "cni0", "down"]);
        },
    );
}

#[test]
fn wrong_node_address() {
    breakage(
        "ap-ad",
        Path::Pod,
        "node node-2 has its address",
        |lab, _| {
            sh(lab, "node/node-2", &["ip", "addr", "flush", "dev", "eth0"]);
            sh(
                lab,
                "node/node-2",
                &["ip", "addr", "add", "172.18.0.99/16", "dev", "eth0"],
            );
        },
    );
}

#[test]
fn kube_proxy_table_flushed() {
    breakage(
        "ap-kp",
        Path::Service,
        "kube-proxy on node node-1",
        |lab, _| {
            sh(
                lab,
                "node/node-1",
                &["nft", "flush", "table", "ip", "kube-proxy"],
            );
        },
    );
}

#[test]
fn service_endpoint_removed_from_the_rules() {
    breakage(
        "ap-ep",
        Path::Service,
        "kube-proxy on node node-1",
        |lab, _| {
            let o = lab.exec(
                "node/node-1",
                &["nft", "-a", "list", "table", "ip", "kube-proxy"],
            );
            let listing = stdout(&o);
            // The service's chain, and the handle of its one endpoint's rule.
            let chain = listing
                .lines()
                .filter_map(|l| l.trim().strip_prefix("chain "))
                .map(|l| l.split_whitespace().next().unwrap_or_default())
                .find(|c| c.starts_with("service-") && c.contains("default/web/"))
                .unwrap_or_else(|| panic!("no chain for default/web in\n{listing}"))
                .to_string();
            let o = lab.exec(
                "node/node-1",
                &["nft", "-a", "list", "chain", "ip", "kube-proxy", &chain],
            );
            let rules = stdout(&o);
            let handle = rules
                .lines()
                .find(|l| l.contains("dnat to"))
                .and_then(|l| l.rsplit("# handle ").next())
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|| panic!("no endpoint rule in\n{rules}"));
            sh(
                lab,
                "node/node-1",
                &[
                    "nft",
                    "delete",
                    "rule",
                    "ip",
                    "kube-proxy",
                    &chain,
                    "handle",
                    &handle,
                ],
            );
        },
    );
}

#[test]
fn dns_server_stopped() {
    breakage("ap-dns", Path::Dns, "CoreDNS pod", |lab, _| {
        let dir = podlab::state::dir_of(&lab.lab);
        podlab::runtime::stop_pod(
            &dir,
            "kube-system",
            &podlab::plan::dns::coredns_pod_name(),
            std::time::Duration::from_secs(5),
        )
        .expect("stop the coredns pod");
    });
}

#[test]
fn resolv_conf_points_elsewhere() {
    breakage(
        "ap-rc",
        Path::Dns,
        "resolv.conf points at kube-dns",
        |lab, _| {
            let path = format!("/etc/netns/{}-default-client/resolv.conf", lab.lab);
            std::fs::write(&path, "nameserver 10.96.0.99\n").expect("write resolv.conf");
        },
    );
}

#[test]
fn deny_all_policy() {
    // The evidence counts the drops the kernel made (the failed curl's).
    let evidence = "packets dropped so far, counter drop-ingress-default-server";
    breakage_with(
        "ap-np",
        Path::Pod,
        "network policies allow",
        evidence,
        |lab, file| {
            let denied = lab_file(&format!("{}{DENY_ALL}", lab_text(&lab.lab)));
            let o = run(&["apply", denied.path.to_str().expect("utf-8")]);
            assert!(o.status.success(), "apply deny-all\n{}", text(&o));
            assert!(
                stdout(&o).contains("networkpolicy default/deny-all created"),
                "{}",
                text(&o)
            );
            let _ = file;
        },
    );
}

fn netns_inode(name: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/run/netns/{name}"))
        .map(|m| m.ino())
        .unwrap_or(0)
}

#[test]
fn apply_changes_only_what_the_edit_changed() {
    let name = "ap-ch";
    if !root_or_skip(name) {
        return;
    }
    let base = lab_text(name);
    let file = lab_file(&base);
    let lab = Up::new(name, &file);
    let client_ns = format!("{name}-default-client");
    let server_ns = format!("{name}-default-server");
    let before = (netns_inode(&client_ns), netns_inode(&server_ns));
    let server_ip = lab.pod_ip("server");

    // Edited: two more web pods from a Deployment, a NodePort service, a
    // policy letting only the client in.
    let edited = lab_file(&format!(
        "{base}{}",
        r#"---
apiVersion: apps/v1
kind: Deployment
metadata: {name: more}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: m, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: extra}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 8080, targetPort: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-client}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
"#
    ));
    let edited_path = edited.path.to_str().expect("utf-8");
    let o = run(&["apply", "--dry-run", edited_path]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("service default/extra created"),
        "{}",
        text(&o)
    );
    assert_eq!(
        lab.get_json("pods")["items"].as_array().map(Vec::len),
        Some(3)
    );

    let o = run(&["apply", edited_path]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    for want in [
        "service default/extra created",
        "networkpolicy default/only-client created",
        "service default/web changed",
    ] {
        assert!(out.contains(want), "missing {want:?}\n{}", text(&o));
    }
    assert_eq!(out.matches("pod default/more-").count(), 2, "{}", text(&o));
    assert!(!out.contains("pod default/client"), "{}", text(&o));
    assert!(!out.contains("pod default/server"), "{}", text(&o));
    // Untouched pods keep their namespaces and addresses.
    assert_eq!((netns_inode(&client_ns), netns_inode(&server_ns)), before);
    assert_eq!(lab.pod_ip("server"), server_ip);
    let pods = lab.get_json("pods");
    let running = pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count();
    assert_eq!(running, 5, "{pods}");
    // The new service answers through DNS and its cluster IP, from every
    // endpoint in time; the policy lets the client in.
    assert!(curl_ok(&lab, "http://extra.default.svc.cluster.local:8080"));
    let eps = run(&["get", "endpoints", "extra", "--lab", name]);
    assert!(
        stdout(&eps).contains("+ 1 more") || stdout(&eps).matches(":80").count() == 3,
        "{}",
        text(&eps)
    );
    let o = run(&["get", "netpol", "--lab", name]);
    assert!(stdout(&o).contains("only-client"), "{}", text(&o));
    let o = run(&["diagnose", "--lab", name]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Small forms: scale and delete.
    let o = run(&[
        "scale",
        "deployment",
        "more",
        "--replicas",
        "1",
        "--lab",
        name,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).matches("deleted").count(), 1, "{}", text(&o));
    let o = run(&["delete", "svc", "extra", "--lab", name]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!curl_ok(
        &lab,
        "http://extra.default.svc.cluster.local:8080"
    ));
    let o = run(&["delete", "netpol", "nope", "--lab", name]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // Back to the first file: the additions go, namespaces included.
    let o = run(&["apply", file.path.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("networkpolicy default/only-client deleted"),
        "{}",
        text(&o)
    );
    assert_eq!(
        lab.get_json("pods")["items"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        namespaces_of(name)
            .iter()
            .filter(|n| n.contains("-default-more-"))
            .count(),
        0
    );
    assert_eq!((netns_inode(&client_ns), netns_inode(&server_ns)), before);
    assert!(curl_ok(&lab, "http://web.default.svc.cluster.local:80"));

    // What a running lab cannot change is refused, and nothing changes.
    let three = lab_file(&base.replace("nodes: 2", "nodes: 3"));
    let o = run(&["apply", three.path.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot change while the lab runs"),
        "{}",
        text(&o)
    );
    assert_eq!(run(&["diagnose", "--lab", name]).status.code(), Some(0));
}
