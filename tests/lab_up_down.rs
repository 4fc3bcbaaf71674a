//! End-to-end: the built binary brings real labs up and down, as root.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// The seed's two manifests, unchanged but for the node each is pinned to,
/// so that the seed's `curl` crosses nodes.
fn seed_lab(name: &str) -> LabFile {
    lab_file(&format!(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {{name: {name}}}
spec: {{nodes: 2}}
---
apiVersion: v1
kind: Pod
metadata:
  name: pod-1
  labels:
    app: frontend
spec:
  nodeName: node-1
  containers:
  - name: nginx
    image: nginx
    ports:
    - containerPort: 80
---
apiVersion: v1
kind: Pod
metadata:
  name: pod-2
  labels:
    app: backend
spec:
  nodeName: node-2
  containers:
  - name: busybox
    image: busybox
    command: ['sh', '-c', 'sleep 3600']
"#
    ))
}

#[test]
fn seed_check_pod1_reaches_pod2_which_refuses_and_pod2_sees_no_nat() {
    if !root_or_skip("seed_check") {
        return;
    }
    let file = seed_lab("t-seed");
    let lab = Up::new("t-seed", &file);
    let pod1 = lab.pod_ip("pod-1");
    let pod2 = lab.pod_ip("pod-2");

    // The seed's check: pod-2 has nothing listening, so the kernel answers
    // with a reset: "connection refused", which proves the path works.
    let o = lab.exec(
        "pod-1",
        &["curl", "-sS", "--max-time", "5", &format!("http://{pod2}/")],
    );
    assert_eq!(
        o.status.code(),
        Some(7),
        "curl exit 7 = could not connect:\n{}",
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(
        err.contains("refused") || err.contains("failed to connect"),
        "{}",
        text(&o)
    );
    assert!(
        !err.contains("timed out"),
        "a refusal, not a timeout:\n{}",
        text(&o)
    );

    // pod-1's echo shows the client as it arrived: pod-2's own IP, no NAT.
    let o = lab.exec("pod-2", &["wget", "-qO-", &format!("http://{pod1}/")]);
    assert!(o.status.success(), "{}", text(&o));
    let body = stdout(&o);
    assert!(body.contains("pod: pod-1"), "{body}");
    assert!(body.contains("node: node-1"), "{body}");
    assert!(
        body.contains(&format!("client: {pod2}:")),
        "pod-2's IP must arrive unchanged:\n{body}"
    );
}

#[test]
fn cross_node_pods_talk_without_nat_and_same_node_too() {
    if !root_or_skip("cross_node") {
        return;
    }
    let file = lab_file(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-xnode}
spec: {nodes: 3}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: echo
        ports: [{containerPort: 8080}, {containerPort: 5353, protocol: UDP}]
"#,
    );
    let lab = Up::new("t-xnode", &file);
    let pods = lab.get_json("pods");
    // Only the deployment's pods (cluster DNS runs in kube-system too).
    let items: Vec<serde_json::Value> = pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["metadata"]["namespace"] == "default")
        .cloned()
        .collect();
    assert_eq!(items.len(), 6, "{pods}");
    let mut per_node = std::collections::BTreeMap::new();
    for p in &items {
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            name.starts_with("web-") && name.split('-').count() == 3,
            "ReplicaSet-style name: {name}"
        );
        *per_node
            .entry(
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_node.values().collect::<Vec<_>>(),
        vec![&2, &2, &2],
        "spread over nodes: {per_node:?}"
    );

    // Every pod reaches every other pod's port with its own source IP.
    let names: Vec<(String, String, String)> = items
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["status"]["podIP"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    for (from, from_ip, _) in &names[..2] {
        for (to, to_ip, _) in &names {
            if from == to {
                continue;
            }
            let o = lab.exec(
                from,
                &[
                    "curl",
                    "-sS",
                    "--max-time",
                    "5",
                    &format!("http://{to_ip}:8080/"),
                ],
            );
            assert!(o.status.success(), "{from} -> {to}:\n{}", text(&o));
            let body = stdout(&o);
            assert!(body.contains(&format!("pod: {to}")), "{body}");
            assert!(
                body.contains(&format!("client: {from_ip}:")),
                "no NAT from {from} to {to}:\n{body}"
            );
        }
    }
    // UDP echo answers too.
    let (_, ip, _) = &names[3];
    let o = lab.exec(&names[0].0, &["bash", "-c", &format!("exec 3<>/dev/udp/{ip}/5353; echo hello >&3; timeout 2 dd bs=2048 count=1 status=none <&3")]);
    assert!(stdout(&o).contains("data=hello"), "{}", text(&o));
}

#[test]
fn get_pods_wide_matches_the_kernel_and_exec_sees_the_pod() {
    if !root_or_skip("get_pods_wide") {
        return;
    }
    let file = seed_lab("t-wide");
    let lab = Up::new("t-wide", &file);
    let o = run(&["get", "pods", "-o", "wide", "--lab", "t-wide"]);
    assert!(o.status.success(), "{}", text(&o));
    let table = stdout(&o);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    for row in rows {
        let (name, ready, status, ip, node) = (row[0], row[1], row[2], row[5], row[6]);
        assert_eq!(ready, "1/1", "{table}");
        assert_eq!(status, "Running", "{table}");
        // The kernel's own view of the pod's eth0.
        let o = Command::new("ip")
            .args([
                "-n",
                &format!("t-wide-default-{name}"),
                "-j",
                "-4",
                "addr",
                "show",
                "dev",
                "eth0",
            ])
            .output()
            .expect("ip");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("ip -j");
        assert_eq!(
            v[0]["addr_info"][0]["local"], ip,
            "{name}: table says {ip}, kernel says {v}"
        );
        // ... and the pod's default route via its node's cni0.
        let o = lab.exec(name, &["ip", "route"]);
        assert!(stdout(&o).contains("default via 10.244."), "{}", text(&o));
        let o = lab.exec(
            &format!("node/{node}"),
            &["ip", "-4", "addr", "show", "cni0"],
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    // The pod sees its own hostname and /etc/hosts.
    let o = lab.exec("pod-1", &["hostname"]);
    assert_eq!(stdout(&o).trim(), "pod-1", "{}", text(&o));
    let o = lab.exec("pod-1", &["cat", "/etc/hosts"]);
    assert!(
        stdout(&o).contains(&format!("{}\tpod-1", lab.pod_ip("pod-1"))),
        "{}",
        text(&o)
    );
    // The host's /etc/hosts is untouched by that.
    assert!(!std::fs::read_to_string("/etc/hosts")
        .unwrap_or_default()
        .contains("Kubernetes-managed"));
    // exec's exit code is the command's.
    let o = lab.exec("pod-1", &["sh", "-c", "exit 42"]);
    assert_eq!(o.status.code(), Some(42));
    // Nodes answer on the node network; external reaches a node.
    let o = lab.exec("external", &["busybox", "ping", "-c1", "-W2", "172.18.0.2"]);
    assert!(o.status.success(), "external -> node-1:\n{}", text(&o));
}

#[test]
fn down_leaves_nothing_after_sigkill_of_the_daemon_and_lost_state() {
    if !root_or_skip("down_after_sigkill") {
        return;
    }
    let file = seed_lab("t-kill");
    {
        let _ = run(&["down", "t-kill"]);
        let o = run(&["up", "-q", file.path.to_str().unwrap_or_default()]);
        assert!(o.status.success(), "{}", text(&o));
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", "__daemon t-kill$"])
            .status();
        let o = run(&["down", "t-kill"]);
        assert!(o.status.success(), "{}", text(&o));
        assert_nothing_left("t-kill");
    }
    {
        // State directory gone too: down works from the names alone, and
        // kills the pod processes that kept running.
        let o = run(&["up", "-q", file.path.to_str().unwrap_or_default()]);
        assert!(o.status.success(), "{}", text(&o));
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", "__daemon t-kill$"])
            .status();
        // The pod's process, running on after its daemon died.
        let pids = Command::new("ip")
            .args(["netns", "pids", "t-kill-default-pod-2"])
            .output()
            .expect("ip netns pids");
        let pids: Vec<String> = String::from_utf8_lossy(&pids.stdout)
            .lines()
            .map(String::from)
            .collect();
        assert!(!pids.is_empty(), "pod-2's sleep should still run");
        std::fs::remove_dir_all("/run/podlab/t-kill").expect("remove state");
        let o = run(&["down", "t-kill"]);
        assert!(o.status.success(), "{}", text(&o));
        assert_nothing_left("t-kill");
        // Killed processes may linger as zombies until init reaps them.
        let alive = |p: &String| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| {
                    !s.rsplit(')')
                        .next()
                        .unwrap_or_default()
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false)
        };
        let survivors: Vec<&String> = pids.iter().filter(|p| alive(p)).collect();
        assert!(
            survivors.is_empty(),
            "pod processes survived down: {survivors:?}"
        );
    }
}

#[test]
fn a_failed_up_removes_what_it_made_and_says_what_failed() {
    if !root_or_skip("failed_up") {
        return;
    }
    let file = seed_lab("t-fail");
    let _ = run(&["down", "t-fail"]);
    // Something in the way of pod-2's namespace: up checks every name it
    // would create before making anything, so it fails before the nodes
    // and pod-1 exist (a failure half-way is tests/safety.rs's
    // a_failed_up_removes_what_it_made_and_nothing_else).
    std::fs::create_dir_all("/run/netns").expect("mkdir");
    std::fs::write("/run/netns/t-fail-default-pod-2", "").expect("block pod-2");
    let o = run(&["up", "-q", file.path.to_str().unwrap_or_default()]);
    let _ = std::fs::remove_file("/run/netns/t-fail-default-pod-2");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("t-fail-default-pod-2"),
        "names what failed:\n{err}"
    );
    assert!(
        err.contains("nothing was changed"),
        "says it left the host alone:\n{err}"
    );
    assert_nothing_left("t-fail");
}

#[test]
fn up_twice_is_a_clear_error_and_the_host_is_untouched() {
    if !root_or_skip("host_untouched") {
        return;
    }
    let before = host_snapshot();
    {
        let file = seed_lab("t-host");
        let lab = Up::new("t-host", &file);
        assert_eq!(
            host_snapshot(),
            before,
            "the host changed while the lab is up"
        );
        let o = run(&["up", "-q", file.path.to_str().unwrap_or_default()]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("already up"),
            "{}",
            text(&o)
        );
        drop(lab);
    }
    assert_eq!(
        host_snapshot(),
        before,
        "the host changed after up and down"
    );
}

#[test]
fn processes_restart_per_policy_and_restarts_are_counted() {
    if !root_or_skip("restarts") {
        return;
    }
    let file = lab_file(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-restart}
spec: {nodes: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - {name: c, command: [sh, -c, "exit 3"]}
---
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers:
  - {name: c, command: [sh, -c, "exit 0"]}
"#,
    );
    let lab = Up::new("t-restart", &file);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pods = lab.get_json("pods");
        let get = |n: &str| {
            pods["items"]
                .as_array()
                .and_then(|a| a.iter().find(|p| p["metadata"]["name"] == n).cloned())
                .unwrap_or_default()
        };
        let restarts = get("crasher")["status"]["containerStatuses"][0]["restarts"]
            .as_u64()
            .unwrap_or(0);
        let once = get("once")["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if restarts >= 1 && once == "Succeeded" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no restart counted or wrong phase: {pods}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = run(&["get", "pods", "--lab", "t-restart"]);
    let table = stdout(&o);
    assert!(table.contains("Completed"), "{table}");
    assert!(
        table.contains("CrashLoopBackOff") || table.contains("Error"),
        "{table}"
    );
}

#[test]
fn without_root_one_clear_line() {
    if !root_or_skip("not_root") {
        return;
    }
    // Drop to nobody for this one command.
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_podlab"),
            "up",
        ])
        .env("NO_COLOR", "1")
        .output();
    let Ok(o) = o else {
        eprintln!("setpriv missing: not-root check skipped");
        return;
    };
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .next()
            .unwrap_or_default()
            .contains("needs root"),
        "{err}"
    );
}

#[test]
fn ctrl_c_during_up_removes_what_was_made() {
    if !root_or_skip("ctrl_c") {
        return;
    }
    let file = lab_file(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-intr}
spec: {nodes: 4}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 400
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, ports: [{containerPort: 80}]}]
"#,
    );
    let _ = run(&["down", "t-intr"]);
    let child = podlab()
        .args(["up", "-q", file.path.to_str().unwrap_or_default()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn up");
    // Wait until it has started making namespaces, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(10);
    while namespaces_of("t-intr").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let out = child.wait_with_output().expect("wait up");
    if out.status.success() {
        // It finished before the signal arrived: nothing to check but down.
        let _ = run(&["down", "t-intr"]);
    } else {
        assert_eq!(
            out.status.code(),
            Some(130),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_nothing_left("t-intr");
}
