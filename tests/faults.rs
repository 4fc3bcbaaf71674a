//! End-to-end: every fault of the catalogue, injected into a running lab,
//! is pointed at by `podlab diagnose`, and `podlab fault clear` undoes it
//! exactly: afterwards the lab is as its plan says (whole-lab `diagnose`
//! finds nothing). Two small labs take half the catalogue each, in
//! parallel.

mod common;

use std::time::Duration;

use common::*;

fn lab(name: &str) -> String {
    format!(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {{name: {name}}}
spec: {{nodes: 2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  nodeName: node-2
  containers: [{{name: web, ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, labels: {{app: client}}}}
spec:
  nodeName: node-1
  containers: [{{name: c, ports: [{{containerPort: 80}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web-from-client}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]
"#
    )
}

/// A fault, where to inject it, the `diagnose FROM TO` that shows it, the
/// words of the broken step, and whether whole-lab `diagnose` sees it too
/// (plan-level faults change the plan itself: the kernel matches it).
struct Case {
    fault: &'static str,
    target: Option<&'static str>,
    params: &'static [&'static str],
    from: &'static str,
    to: &'static str,
    broken: &'static str,
    whole_lab: bool,
}

const CASES: &[Case] = &[
    Case {
        fault: "pod-down",
        target: Some("web"),
        params: &[],
        from: "client",
        to: "pod/web:8080",
        broken: "pod default/web is running",
        whole_lab: true,
    },
    Case {
        fault: "pod-interface-down",
        target: Some("web"),
        params: &[],
        from: "client",
        to: "pod/web:8080",
        broken: "pod default/web: eth0 is up",
        whole_lab: true,
    },
    Case {
        fault: "node-link-down",
        target: Some("node-2"),
        params: &[],
        from: "client",
        to: "pod/web:8080",
        broken: "node node-2's cni0 and eth0 are up",
        whole_lab: true,
    },
    Case {
        fault: "route-missing",
        target: Some("node-1"),
        params: &["to=node-2"],
        from: "client",
        to: "pod/web:8080",
        broken: "node node-1 routes node-2's pod CIDR",
        whole_lab: true,
    },
    Case {
        fault: "forwarding-off",
        target: Some("node-2"),
        params: &[],
        from: "client",
        to: "pod/web:8080",
        broken: "node node-2 forwards packets",
        whole_lab: true,
    },
    Case {
        fault: "bridge-down",
        target: Some("node-2"),
        params: &[],
        from: "client",
        to: "pod/web:8080",
        broken: "node node-2's cni0 and eth0 are up",
        whole_lab: true,
    },
    Case {
        fault: "mtu-mismatch",
        target: Some("node-2"),
        params: &["mtu=1300"],
        from: "client",
        to: "pod/web:8080",
        broken: "node node-2's links have the lab's MTU",
        whole_lab: true,
    },
    Case {
        fault: "rate-limit",
        target: Some("node-2"),
        params: &["rate=2mbit"],
        from: "client",
        to: "pod/web:8080",
        broken: "node node-2 does not shape traffic",
        whole_lab: true,
    },
    Case {
        fault: "packet-loss",
        target: Some("node-2"),
        params: &["percent=30"],
        from: "client",
        to: "pod/web:8080",
        broken: "node node-2's nftables hold only the cluster's tables",
        whole_lab: true,
    },
    Case {
        fault: "deny-all-policy",
        target: Some("default"),
        params: &[],
        from: "web",
        to: "client:80",
        broken: "network policies allow default/web -> default/client:80",
        whole_lab: false,
    },
    Case {
        fault: "policy-label-typo",
        target: Some("web-from-client"),
        params: &[],
        from: "client",
        to: "pod/web:8080",
        broken: "network policies allow default/client -> default/web:8080",
        whole_lab: false,
    },
    Case {
        fault: "kube-proxy-flushed",
        target: Some("node-1"),
        params: &[],
        from: "client",
        to: "svc/web",
        broken: "kube-proxy on node node-1 has default/web's rules",
        whole_lab: true,
    },
    Case {
        fault: "stale-endpoints",
        target: Some("web"),
        params: &[],
        from: "client",
        to: "svc/web",
        broken: "kube-proxy on node node-1 sends default/web only to its ready endpoints",
        whole_lab: true,
    },
    Case {
        fault: "service-selector-typo",
        target: Some("web"),
        params: &[],
        from: "client",
        to: "svc/web",
        broken: "service default/web has ready endpoints",
        whole_lab: false,
    },
    Case {
        fault: "wrong-target-port",
        target: Some("web"),
        params: &[],
        from: "client",
        to: "svc/web",
        broken: "pod default/web listens on 8081/tcp",
        whole_lab: false,
    },
    Case {
        fault: "dns-stopped",
        target: None,
        params: &[],
        from: "client",
        to: "web.default",
        broken: "CoreDNS pod kube-system/coredns-wflqbxtswj-xslb5 is running",
        whole_lab: true,
    },
    Case {
        fault: "coredns-scaled-to-zero",
        target: None,
        params: &[],
        from: "client",
        to: "web.default",
        broken: "a CoreDNS pod exists",
        whole_lab: false,
    },
    Case {
        fault: "wrong-nameserver",
        target: Some("client"),
        params: &[],
        from: "client",
        to: "web.default",
        broken: "pod default/client's resolv.conf points at kube-dns",
        whole_lab: true,
    },
];

/// Whole-lab `diagnose`, again for a moment while it reports something:
/// the daemon resyncs rules and restarts pods a little after a clear.
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

fn broken_checks(lab: &str, from: &str, to: &str) -> (Vec<String>, String) {
    let mut last = String::new();
    // A pod that stops is reported by the daemon within a moment.
    for _ in 0..20 {
        let o = run(&["diagnose", "--lab", lab, from, to, "--json"]);
        last = text(&o);
        if o.status.code() == Some(1) {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("diagnose --json");
            let broken = v["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .filter(|s| s["ok"] == false)
                .map(|s| {
                    format!(
                        "{} ({})",
                        s["check"].as_str().unwrap_or_default(),
                        s["evidence"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            return (broken, last);
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    (Vec::new(), last)
}

/// `diagnose FROM TO` passes (again for a moment while it does not).
fn path_healthy(lab: &str, from: &str, to: &str) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..20 {
        let o = run(&["diagnose", "--lab", lab, from, to]);
        if o.status.code() == Some(0) {
            return Ok(());
        }
        last = text(&o);
        std::thread::sleep(Duration::from_millis(150));
    }
    Err(last)
}

fn run_cases(lab: &str, cases: &[&Case]) {
    let file = lab_file(&self::lab(lab));
    let _up = Up::new(lab, &file);
    healthy(lab).unwrap_or_else(|e| panic!("{lab} is not healthy after up:\n{e}"));
    for c in cases {
        let mut args = vec!["fault", "inject", c.fault, "--lab", lab];
        if let Some(t) = c.target {
            args.push(t);
        }
        for p in c.params {
            args.extend(["--param", p]);
        }
        let o = run(&args);
        assert!(o.status.success(), "{}: inject:\n{}", c.fault, text(&o));

        let (broken, out) = broken_checks(lab, c.from, c.to);
        assert!(
            broken.iter().any(|b| b.contains(c.broken)),
            "{}: diagnose {} {} should name `{}`; broken steps: {broken:#?}\n{out}",
            c.fault,
            c.from,
            c.to,
            c.broken
        );
        if c.whole_lab {
            let o = run(&["diagnose", "--lab", lab]);
            assert_eq!(
                o.status.code(),
                Some(1),
                "{}: whole-lab diagnose:\n{}",
                c.fault,
                text(&o)
            );
        }

        let o = run(&["fault", "clear", "--lab", lab]);
        assert!(o.status.success(), "{}: clear:\n{}", c.fault, text(&o));
        assert!(
            stdout(&o).contains(&format!("cleared {}", c.fault)),
            "{}",
            text(&o)
        );
        healthy(lab).unwrap_or_else(|e| panic!("{}: not undone exactly:\n{e}", c.fault));
        path_healthy(lab, c.from, c.to)
            .unwrap_or_else(|e| panic!("{}: still broken after clear:\n{e}", c.fault));
        let o = run(&["fault", "list", "--injected", "--json", "--lab", lab]);
        assert_eq!(stdout(&o).trim(), "[]", "{}", text(&o));
    }
}

#[test]
fn every_fault_is_diagnosed_and_cleared_exactly() {
    if !root_or_skip("faults") {
        return;
    }
    let host = host_snapshot();
    let a: Vec<&Case> = CASES.iter().step_by(2).collect();
    let b: Vec<&Case> = CASES.iter().skip(1).step_by(2).collect();
    std::thread::scope(|s| {
        let ha = s.spawn(|| run_cases("t-flt1", &a));
        let hb = s.spawn(|| run_cases("t-flt2", &b));
        let ra = ha.join();
        let rb = hb.join();
        if let Err(e) = ra {
            std::panic::resume_unwind(e);
        }
        if let Err(e) = rb {
            std::panic::resume_unwind(e);
        }
    });
    assert_eq!(host, host_snapshot(), "the host's own network changed");
}

#[test]
fn latency_needs_netem_and_says_so_where_it_is_missing() {
    if !root_or_skip("faults") {
        return;
    }
    let file = lab_file(&lab("t-fltnet"));
    let _up = Up::new("t-fltnet", &file);
    let o = run(&[
        "fault",
        "inject",
        "latency",
        "node-1",
        "--lab",
        "t-fltnet",
        "--param",
        "delay=20ms",
    ]);
    if o.status.success() {
        // A kernel with sch_netem: the delay is a qdisc like any other.
        let d = run(&["diagnose", "--lab", "t-fltnet"]);
        assert!(stdout(&d).contains("netem qdisc"), "{}", text(&d));
        let c = run(&["fault", "clear", "latency", "--lab", "t-fltnet"]);
        assert!(c.status.success(), "{}", text(&c));
    } else {
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("no netem qdisc"), "{}", text(&o));
        assert!(err.contains("hint:"), "{}", text(&o));
        let l = run(&["fault", "list", "--injected", "--json", "--lab", "t-fltnet"]);
        assert_eq!(stdout(&l).trim(), "[]", "nothing recorded:\n{}", text(&l));
    }
    healthy("t-fltnet").unwrap_or_else(|e| panic!("left changed:\n{e}"));
}

#[test]
fn bad_fault_commands_are_usage_errors_with_hints() {
    // No root needed to be told about a typo.
    let o = run(&["fault", "inject", "route-mising"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("did you mean `route-missing`?"),
        "{}",
        text(&o)
    );
    let o = run(&["fault", "inject", "packet-loss", "--param", "percent"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("expected NAME=VALUE"),
        "{}",
        text(&o)
    );
    let o = run(&["fault", "list", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(v.as_array().expect("array").len() >= 19);
}
