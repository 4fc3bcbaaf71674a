//! End-to-end: `diagnose` and `trace` say what the kernel and a real probe
//! say, in the cases where judging from the plan was confidently wrong.
//! Each case holds the tool's verdict against a probe (curl from the same
//! pod) made in the same state.

mod common;

use common::*;

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-truth}
spec: {nodes: 2}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: team-a, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: web, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: team-a, labels: {app: client}}
spec:
  nodeName: node-1
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: far, labels: {app: far}}
spec:
  nodeName: node-2
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: quiet, labels: {app: quiet}}
spec:
  nodeName: node-1
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: team-a}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"#;

const DENY_ALL: &str = r#"---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: team-a}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"#;

fn json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let o = run(args);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_default();
    (o.status.code(), v, text(&o))
}

fn diagnose(lab: &str, ns: &str, from: &str, to: &str) -> (Option<i32>, serde_json::Value, String) {
    json(&["diagnose", "--lab", lab, "-n", ns, from, to, "--json"])
}

fn first_broken(v: &serde_json::Value) -> String {
    v["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["ok"] == false))
        .map(|s| s["check"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn curl(lab: &Up, ns: &str, pod: &str, url: &str) -> bool {
    lab.exec(
        &format!("{ns}/{pod}"),
        &["curl", "-s", "-m", "2", "-o", "/dev/null", url],
    )
    .status
    .success()
}

#[test]
fn diagnose_and_trace_agree_with_the_probe() {
    if !root_or_skip("truth") {
        return;
    }
    let file = lab_file(&format!("{LAB}{DENY_ALL}"));
    let lab = Up::new("t-truth", &file);
    let name = lab.lab.as_str();

    // A DNS name with a port: resolved, then diagnosed to the Service's
    // endpoints and the policy on that port, not just DNS.
    assert!(!curl(&lab, "default", "far", "http://web.team-a:80"));
    let (code, v, t) = diagnose(name, "default", "far", "web.team-a:80");
    assert_eq!(code, Some(1), "deny-all blocks it:\n{t}");
    assert_eq!(v["probe"]["delivered"], false, "{t}");
    assert!(
        first_broken(&v).contains("network policies allow default/far -> team-a/web:80"),
        "{t}"
    );

    // A bare name is what `curl web` reaches: the Service, not the pod.
    let svc = lab.get_json("svc");
    let cluster_ip = svc["items"]
        .as_array()
        .and_then(|i| i.iter().find(|s| s["metadata"]["name"] == "web"))
        .and_then(|s| s["spec"]["clusterIP"].as_str())
        .expect("web's clusterIP")
        .to_string();
    let (_, v, t) = diagnose(name, "team-a", "client", "web:80");
    let flow = v["probe"]["flow"].as_str().unwrap_or_default();
    assert!(flow.ends_with(&format!("{cluster_ip}:80")), "{t}");

    // An address is an address: never "resolves from pod".
    let (code, v, t) = diagnose(name, "default", "far", "172.18.0.254:8080");
    assert_eq!(code, Some(1), "nothing listens on external:8080:\n{t}");
    assert_eq!(v["probe"]["outcome"], "refused", "{t}");
    assert!(!t.contains("resolves from pod"), "{t}");
    let (_, _, t) = diagnose(name, "default", "far", "node/node-1:22");
    assert!(!t.contains("resolves from pod"), "{t}");

    // No port and none declared: ask, do not assume 80.
    let (code, _, t) = diagnose(name, "default", "far", "quiet");
    assert_eq!(code, Some(2), "{t}");

    // A port nobody listens on, seen in the kernel's socket table.
    let web = lab.pod_ip("web");
    assert!(!curl(&lab, "default", "far", &format!("http://{web}:81")));
    let (code, v, t) = diagnose(name, "default", "far", "pod/team-a/web:81");
    assert_eq!(code, Some(1), "{t}");
    assert_eq!(v["probe"]["delivered"], false, "{t}");
    assert!(
        first_broken(&v).contains("team-a/web listens on 81/tcp"),
        "{t}"
    );

    // The same-node Service path that a policy drops: named as a policy
    // drop after the DNAT, not as "no route".
    let (code, v, t) = json(&[
        "trace", "--lab", name, "-n", "team-a", "client", "svc/web", "--json",
    ]);
    assert_eq!(code, Some(1), "{t}");
    assert_eq!(v["verdict"]["kind"], "dropped", "{t}");
    assert_eq!(v["verdict"]["policies"][0], "team-a/deny-all", "{t}");

    // The policy table flushed by hand: the plan says dropped, the kernel
    // lets it through; diagnose follows the probe.
    for node in ["node/node-1", "node/node-2"] {
        let o = lab.exec(node, &["nft", "flush", "table", "ip", "network-policy"]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = run(&[
        "exec",
        "--lab",
        name,
        "far",
        "--",
        "curl",
        "-sS",
        "-m",
        "5",
        "http://web.team-a:80",
    ]);
    assert!(
        o.status.success(),
        "with the policy table flushed:\n{}",
        text(&o)
    );
    let (_, v, t) = diagnose(name, "default", "far", "web.team-a:80");
    assert_eq!(v["probe"]["delivered"], true, "{t}");
    let policy = v["steps"]
        .as_array()
        .and_then(|s| {
            s.iter().find(|s| {
                s["check"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("network policies allow default/far -> team-a/web")
            })
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(policy["ok"], true, "the probe got through:\n{t}");
    assert!(policy.get("inferred").is_none(), "{t}");

    // Forwarding off on the source's node: the trace names it.
    let o = lab.exec("node/node-2", &["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    assert!(o.status.success(), "{}", text(&o));
    let (code, v, t) = json(&["trace", "--lab", name, "far", "pod/team-a/web:80", "--json"]);
    assert_eq!(code, Some(1), "{t}");
    assert!(
        v["verdict"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("ip_forward = 0"),
        "{t}"
    );
    let (code, v, t) = diagnose(name, "default", "far", "pod/team-a/web:80");
    assert_eq!(code, Some(1), "{t}");
    assert_eq!(first_broken(&v), "CNI: node node-2 forwards packets", "{t}");
}

const TWO_PODS: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-extra}
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
"#;

/// A change the plan does not name, what whole-lab `diagnose` must say of
/// it, and whether it breaks a→b.
struct Extra {
    what: &'static str,
    commands: &'static [(&'static str, &'static [&'static str])],
    finding: &'static str,
    breaks: bool,
}

const EXTRAS: &[Extra] = &[
    Extra {
        what: "a blackhole route in place of the route to node-2's pods",
        commands: &[
            ("node/node-1", &["ip", "route", "del", "10.244.2.0/24"]),
            (
                "node/node-1",
                &["ip", "route", "add", "blackhole", "10.244.2.0/24"],
            ),
        ],
        finding: "route `blackhole 10.244.2.0/24` is not the lab's",
        breaks: true,
    },
    Extra {
        what: "a policy rule that prohibits node-1's pods",
        commands: &[(
            "node/node-2",
            &[
                "ip",
                "rule",
                "add",
                "to",
                "10.244.1.0/24",
                "prohibit",
                "pref",
                "100",
            ],
        )],
        finding: "rule `100: from all to 10.244.1.0/24 prohibit` is not the lab's",
        breaks: true,
    },
    Extra {
        what: "a static neighbour entry with a wrong MAC",
        commands: &[(
            "node/node-2",
            &[
                "ip",
                "neigh",
                "replace",
                "10.244.2.2",
                "lladdr",
                "02:00:00:00:00:01",
                "dev",
                "cni0",
                "nud",
                "permanent",
            ],
        )],
        finding: "neighbour `10.244.2.2 dev cni0 lladdr 02:00:00:00:00:01 PERMANENT`",
        breaks: true,
    },
    Extra {
        what: "a foreign nftables table that drops",
        commands: &[
            ("node/node-2", &["nft", "add", "table", "ip", "evil"]),
            (
                "node/node-2",
                &[
                    "nft",
                    "add",
                    "chain",
                    "ip",
                    "evil",
                    "f",
                    "{ type filter hook forward priority -10; policy accept; }",
                ],
            ),
            (
                "node/node-2",
                &[
                    "nft",
                    "add",
                    "rule",
                    "ip",
                    "evil",
                    "f",
                    "ip",
                    "daddr",
                    "10.244.2.2",
                    "drop",
                ],
            ),
        ],
        finding: "table ip evil: table is not podlab's",
        breaks: true,
    },
    Extra {
        what: "an address the lab did not give",
        commands: &[("a", &["ip", "addr", "add", "10.9.9.9/24", "dev", "eth0"])],
        finding: "eth0 has 10.9.9.9/24, which the lab did not give",
        breaks: false,
    },
    Extra {
        what: "strict reverse-path filtering on a node's eth0",
        commands: &[(
            "node/node-2",
            &["sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=1"],
        )],
        finding: "net.ipv4.conf.eth0.rp_filter is 1, the plan needs 0",
        breaks: false,
    },
    Extra {
        what: "the balancer's forwarding off",
        commands: &[("lb", &["sysctl", "-qw", "net.ipv4.ip_forward=0"])],
        finding: "t-extra-lb: net.ipv4.ip_forward is 0",
        breaks: false,
    },
    Extra {
        what: "a pod's arp_notify off",
        commands: &[("a", &["sysctl", "-qw", "net.ipv4.conf.all.arp_notify=0"])],
        finding: "net.ipv4.conf.all.arp_notify is 0",
        breaks: false,
    },
];

fn a_reaches_b(lab: &Up, b: &str) -> bool {
    lab.exec(
        "a",
        &[
            "curl",
            "-s",
            "-m",
            "2",
            "-o",
            "/dev/null",
            &format!("http://{b}"),
        ],
    )
    .status
    .success()
}

#[test]
fn what_the_plan_does_not_name_is_found_and_removed() {
    if !root_or_skip("truth extras") {
        return;
    }
    let file = lab_file(TWO_PODS);
    let lab = Up::new("t-extra", &file);
    let b = lab.pod_ip("b");
    assert_eq!(b, "10.244.2.2", "the cases name b's address");
    assert!(a_reaches_b(&lab, &b));
    for e in EXTRAS {
        for (target, cmd) in e.commands {
            let o = lab.exec(target, cmd);
            assert!(
                o.status.success(),
                "{}: {target} {cmd:?}\n{}",
                e.what,
                text(&o)
            );
        }
        assert_eq!(
            a_reaches_b(&lab, &b),
            !e.breaks,
            "{}: does it break a→b?",
            e.what
        );
        let o = run(&["diagnose", "--lab", "t-extra"]);
        assert_eq!(o.status.code(), Some(1), "{}:\n{}", e.what, text(&o));
        assert!(stdout(&o).contains(e.finding), "{}:\n{}", e.what, text(&o));
        let o = run(&["apply", "--lab", "t-extra"]);
        assert_eq!(o.status.code(), Some(0), "{}: apply\n{}", e.what, text(&o));
        let o = run(&["diagnose", "--lab", "t-extra"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: after apply\n{}",
            e.what,
            text(&o)
        );
        assert!(a_reaches_b(&lab, &b), "{}: a→b after apply", e.what);
    }

    // The forward path works, the reply's does not: trace says where.
    let o = lab.exec("node/node-2", &["ip", "route", "del", "10.244.1.0/24"]);
    assert!(o.status.success(), "{}", text(&o));
    let (code, v, t) = json(&["trace", "--lab", "t-extra", "a", "b:80", "--json"]);
    assert_eq!(code, Some(1), "{t}");
    let detail = v["verdict"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("the reply does not get back"), "{t}");
    assert!(v["reply"].as_array().is_some_and(|r| !r.is_empty()), "{t}");
}

#[test]
fn dns_names_the_policy_that_drops_the_query() {
    if !root_or_skip("truth dns") {
        return;
    }
    let file = lab_file(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-dnsx}
spec: {nodes: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {app: db}}
spec:
  containers: [{name: c, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: backend}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-egress}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Egress]
"#,
    );
    let _lab = Up::new("t-dnsx", &file);
    let o = run(&[
        "dns",
        "--lab",
        "t-dnsx",
        "backend",
        "--from",
        "db",
        "--explain",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("dropped by the egress isolation of default/db (policies: default/db-egress)"),
        "{}",
        text(&o)
    );
    assert!(!err.contains("is kube-dns up?"), "{}", text(&o));
}
