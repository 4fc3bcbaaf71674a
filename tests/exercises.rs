//! End-to-end: every exercise of labs/exercises/. For each: start it, the
//! checks fail; apply its documented solution the way a learner would
//! (plain `podlab exec ... -- ip/nft/...`, file writes, host pipelines),
//! the checks pass; reset, the lab is as planned. Then again without the
//! fix: start, reset, the lab is healthy. Exercises on one lab run one
//! after the other; the labs run in parallel.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn exercises() -> BTreeMap<String, Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/exercises");
    let mut by_lab: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("labs/exercises")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let loaded = podlab::exercise::run::load(&f).unwrap_or_err_panic(&f);
        by_lab.entry(loaded.plan.lab.clone()).or_default().push(f);
    }
    by_lab
}

trait OrPanic<T> {
    fn unwrap_or_err_panic(self, f: &Path) -> T;
}

impl<T, E: std::fmt::Display> OrPanic<T> for Result<T, E> {
    fn unwrap_or_err_panic(self, f: &Path) -> T {
        self.unwrap_or_else(|e| panic!("{}: {e}", f.display()))
    }
}

/// `podlab exec` arguments for a target as exercises write it.
fn exec_args(lab: &str, at: &str) -> Vec<String> {
    let mut v = vec!["exec".to_string(), "--lab".into(), lab.into()];
    if let Some(rest) = at.strip_prefix("-n ") {
        let (ns, pod) = rest.split_once(' ').expect("-n NS POD");
        v.extend(["-n".into(), ns.into(), pod.into()]);
    } else if !at.starts_with("node/") && !at.starts_with("pod/") && at.contains('/') {
        let (ns, pod) = at.split_once('/').expect("NS/POD");
        v.extend(["-n".into(), ns.into(), pod.into()]);
    } else {
        v.push(at.into());
    }
    v.push("--".into());
    v
}

/// One solution step, typed as a learner types it.
fn apply(lab: &str, step: &serde_json::Value) {
    let kind = step["kind"].as_str().unwrap_or_default();
    let o = match kind {
        "run" => {
            let mut args = exec_args(lab, step["at"].as_str().expect("at"));
            args.extend(
                step["argv"]
                    .as_array()
                    .expect("argv")
                    .iter()
                    .map(|a| a.as_str().unwrap_or_default().to_string()),
            );
            podlab().args(&args).output().expect("podlab exec")
        }
        "write" => {
            let mut args = exec_args(lab, step["at"].as_str().expect("at"));
            let path = step["path"].as_str().expect("path");
            args.extend(["sh".into(), "-c".into(), format!("cat > {path}")]);
            let mut child = podlab()
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("podlab exec");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(step["content"].as_str().unwrap_or_default().as_bytes())
                .expect("write");
            child.wait_with_output().expect("wait")
        }
        "host" => {
            let bin = Path::new(env!("CARGO_BIN_EXE_podlab"));
            let path = format!(
                "{}:{}",
                bin.parent().expect("bin dir").display(),
                std::env::var("PATH").unwrap_or_default()
            );
            Command::new("bash")
                .args([
                    "-o",
                    "pipefail",
                    "-c",
                    step["command"].as_str().expect("command"),
                ])
                .env("PATH", path)
                .env("NO_COLOR", "1")
                .output()
                .expect("bash")
        }
        // `podlab apply` of the running lab's own file, as the learner of
        // an instance (`start --as`) types it: the lab file names another
        // lab. Refused unless the exercise allows it.
        "apply" => podlab()
            .args(["apply", "--lab", lab])
            .output()
            .expect("podlab apply"),
        other => panic!("a solution step this test does not know: {other}"),
    };
    assert!(o.status.success(), "solution step {step}:\n{}", text(&o));
}

fn check(lab: &str) -> (Option<i32>, String) {
    let o = run(&["exercise", "check", "--lab", lab]);
    (o.status.code(), text(&o))
}

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

/// Brings a lab down however the test ends, and checks nothing is left.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let o = run(&["down", &self.0]);
        if !std::thread::panicking() {
            assert!(o.status.success(), "down:\n{}", text(&o));
            assert_nothing_left(&self.0);
        }
    }
}

/// Each exercise of one lab file, run under the instance name `lab`
/// (`start --as`), journaled in a directory of the test's own.
fn run_lab(lab: &str, files: &[PathBuf], seed: u64) {
    let results = tempfile::tempdir().expect("results");
    let results = results.path().display().to_string();
    let _ = run(&["down", lab]);
    let _down = Down(lab.to_string());
    for f in files {
        let name = f.display().to_string();
        let seed = seed.to_string();
        // Fixed by hand: the checks go from failing to passing.
        let o = run(&[
            "exercise",
            "start",
            &name,
            "--seed",
            &seed,
            "--as",
            lab,
            "--results",
            &results,
        ]);
        assert!(o.status.success(), "{name}: start:\n{}", text(&o));
        let (code, out) = check(lab);
        assert_eq!(
            code,
            Some(1),
            "{name}: the checks must fail while broken:\n{out}"
        );
        let o = run(&["exercise", "solution", "--lab", lab, "--json"]);
        assert!(o.status.success(), "{name}: solution:\n{}", text(&o));
        let sol: serde_json::Value = serde_json::from_slice(&o.stdout).expect("solution --json");
        assert!(!sol["broken"].as_array().expect("broken").is_empty());
        for step in sol["steps"].as_array().expect("steps") {
            apply(lab, step);
        }
        let mut last = check(lab);
        for _ in 0..5 {
            if last.0 == Some(0) {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            last = check(lab);
        }
        assert_eq!(
            last.0,
            Some(0),
            "{name}: the solution must fix it:\n{}",
            last.1
        );
        let o = run(&["exercise", "status", "--lab", lab, "--json"]);
        let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status --json");
        assert_eq!(st["progress"]["solutionShown"], true, "{st}");
        assert!(st["progress"]["solvedAt"].is_u64(), "{st}");
        let o = run(&["exercise", "reset", "--lab", lab]);
        assert!(
            o.status.success(),
            "{name}: reset after the fix:\n{}",
            text(&o)
        );
        healthy(lab)
            .unwrap_or_else(|e| panic!("{name}: not healthy after the fix and reset:\n{e}"));

        // Not fixed: reset alone returns the lab to healthy.
        let o = run(&[
            "exercise",
            "start",
            &name,
            "--seed",
            &seed,
            "--as",
            lab,
            "--results",
            &results,
        ]);
        assert!(
            o.status.success(),
            "{name}: start again on the running lab:\n{}",
            text(&o)
        );
        let (code, out) = check(lab);
        assert_eq!(code, Some(1), "{name}: broken again:\n{out}");
        let o = run(&["exercise", "hint", "--lab", lab, "--json"]);
        let h: serde_json::Value = serde_json::from_slice(&o.stdout).expect("hint --json");
        assert_eq!(h["number"], 1, "{h}");
        let o = run(&["exercise", "reset", "--lab", lab, "--json"]);
        assert!(o.status.success(), "{name}: reset:\n{}", text(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("reset --json");
        assert_eq!(r["healthy"], true, "{r}");
        healthy(lab).unwrap_or_else(|e| panic!("{name}: not healthy after reset:\n{e}"));
        let o = run(&["exercise", "status", "--lab", lab]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "the exercise ended:\n{}",
            text(&o)
        );
    }
}

#[test]
fn every_exercise_is_fixed_by_its_solution_and_reset_by_reset() {
    if !root_or_skip("exercises") {
        return;
    }
    let by_lab = exercises();
    assert!(by_lab.values().map(Vec::len).sum::<usize>() >= 14);
    let host = host_snapshot();
    std::thread::scope(|s| {
        let handles: Vec<_> = by_lab
            .iter()
            .enumerate()
            .map(|(i, (lab, files))| {
                s.spawn(move || run_lab(&format!("gb-{lab}"), files, 3 + i as u64))
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        for r in results {
            if let Err(e) = r {
                std::panic::resume_unwind(e);
            }
        }
    });
    assert_eq!(host, host_snapshot(), "the host's own network changed");
}

/// The catalogue's families (the issue's "one exercise per family"),
/// each with the faults that belong to it.
const FAMILIES: &[(&str, &[&str])] = &[
    (
        "routes and links",
        &[
            "route-missing",
            "node-link-down",
            "pod-interface-down",
            "bridge-down",
        ],
    ),
    ("forwarding", &["forwarding-off"]),
    ("kube-proxy", &["kube-proxy-flushed"]),
    (
        "endpoints",
        &[
            "stale-endpoints",
            "service-selector-typo",
            "wrong-target-port",
        ],
    ),
    ("policy", &["deny-all-policy", "policy-label-typo"]),
    (
        "DNS",
        &["wrong-nameserver", "dns-stopped", "coredns-scaled-to-zero"],
    ),
    (
        "MTU, loss and shaping",
        &["mtu-mismatch", "packet-loss", "rate-limit", "latency"],
    ),
];

#[test]
fn every_fault_family_has_an_exercise() {
    let used: Vec<String> = exercises()
        .values()
        .flatten()
        .flat_map(|f| {
            podlab::exercise::run::load(f)
                .unwrap_or_err_panic(f)
                .exercise
                .faults
        })
        .filter_map(|spec| match spec {
            podlab::lab::exercise::FaultSpec::Catalogue { fault, .. } => Some(fault),
            podlab::lab::exercise::FaultSpec::Custom { .. } => None,
        })
        .collect();
    for (family, faults) in FAMILIES {
        assert!(
            faults.iter().any(|f| used.iter().any(|u| u == f)),
            "no exercise of labs/exercises/ breaks {family} ({faults:?}); used: {used:?}"
        );
    }
    // Every family named is the catalogue's, so a renamed fault shows.
    let o = run(&["fault", "list", "--json"]);
    let catalogue = stdout(&o);
    for f in FAMILIES.iter().flat_map(|(_, f)| f.iter()) {
        assert!(
            catalogue.contains(&format!("\"{f}\"")),
            "{f} is not in `fault list`"
        );
    }
}

#[test]
fn every_exercise_validates_without_root() {
    for files in exercises().values() {
        for f in files {
            let o = run(&["exercise", "validate", &f.display().to_string()]);
            assert!(o.status.success(), "{}:\n{}", f.display(), text(&o));
        }
    }
}

#[test]
fn verify_proves_an_exercise_and_leaves_nothing() {
    if !root_or_skip("exercises") {
        return;
    }
    // Its own copy, on a lab of its own, so that it runs beside the others.
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = dir.path().join("lab.yaml");
    std::fs::write(
        &lab,
        "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: gb-exv}\nspec: {nodes: 2}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {nodeName: node-1, containers: [{name: a, ports: [{containerPort: 80}]}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {nodeName: node-2, containers: [{name: b, ports: [{containerPort: 80}]}]}\n",
    )
    .expect("lab");
    let ex = dir.path().join("ex.yaml");
    let good = r#"apiVersion: podlab/v1alpha1
kind: Exercise
metadata: {name: v}
spec:
  title: t
  difficulty: easy
  section: pods
  lab: lab.yaml
  story: s
  faults: [{fault: forwarding-off, target: node-2}]
  checks: [{from: a, to: b, port: 80, expect: connected}]
  solution:
    explanation: e
    steps: [{in: node/node-2, run: "echo 1 > /proc/sys/net/ipv4/ip_forward"}]
"#;
    std::fs::write(&ex, good).expect("exercise");
    let o = run(&["exercise", "verify", &ex.display().to_string(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["phases"].as_array().expect("phases").len(),
        podlab::exercise::run::VERIFY_PHASES.len()
    );
    assert_nothing_left("gb-exv");

    // A plan-level fault, fixed the other way a learner can: `podlab
    // apply` of the (unchanged) lab file.
    let svc_lab = dir.path().join("svc.yaml");
    std::fs::write(
        &svc_lab,
        std::fs::read_to_string(&lab).expect("lab").replace("gb-exv", "gb-exa")
            .replace("metadata: {name: b}", "metadata: {name: b, labels: {app: b}}")
            + "---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\nspec: {selector: {app: b}, ports: [{port: 80}]}\n",
    )
    .expect("lab");
    let applied = dir.path().join("applied.yaml");
    std::fs::write(
        &applied,
        good.replace("lab: lab.yaml", "lab: svc.yaml")
            .replace(
                "{fault: forwarding-off, target: node-2}",
                "{fault: service-selector-typo, target: b}",
            )
            .replace("to: b, port: 80", "to: svc/b, port: 80")
            .replace(
                r#"[{in: node/node-2, run: "echo 1 > /proc/sys/net/ipv4/ip_forward"}]"#,
                "[{apply: true}]",
            )
            .replace("  faults:", "  allow: [apply]\n  faults:"),
    )
    .expect("exercise");
    let o = run(&["exercise", "verify", &applied.display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_nothing_left("gb-exa");

    // A solution that fixes nothing is caught.
    std::fs::write(&ex, good.replace("echo 1 >", "echo 0 >")).expect("exercise");
    let o = run(&["exercise", "verify", &ex.display().to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).contains("✘ fixed"), "{}", text(&o));
    assert_nothing_left("gb-exv");
}

#[test]
fn start_refuses_a_running_lab_that_differs_from_its_plan() {
    if !root_or_skip("exercise start on a drifted lab") {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/exercises");
    let exercise = dir.join("01-pod-interface-down.yaml");
    let lab_path = dir.join("labs/pods.yaml");
    let own = podlab::exercise::run::load(&exercise)
        .unwrap_or_err_panic(&exercise)
        .plan
        .lab;
    // The exercise's lab under a name of the test's own (`start --as`).
    let lab = "gb-drift".to_string();
    let file = lab_file(
        &std::fs::read_to_string(&lab_path)
            .expect("the exercise's lab")
            .replace(&format!("name: {own}"), &format!("name: {lab}")),
    );
    let up = Up::new(&lab, &file);
    // Something the plan does not name: a policy rule on a node.
    let o = up.exec(
        "node/node-1",
        &[
            "ip",
            "rule",
            "add",
            "to",
            "10.9.0.0/16",
            "prohibit",
            "pref",
            "200",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let ex = exercise.to_str().expect("utf-8");
    let results = tempfile::tempdir().expect("results");
    let results = results.path().to_str().expect("utf-8").to_string();
    let start = ["exercise", "start", ex, "--as", &lab, "--results", &results];
    let o = run(&start);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("differs from its plan"), "{}", text(&o));
    assert!(text(&o).contains("prohibit"), "{}", text(&o));
    // Put back, it starts; reset ends it with the lab as planned.
    let o = run(&["apply", "--lab", &lab]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let results = tempfile::tempdir().expect("results");
    let results = results.path().to_str().expect("utf-8").to_string();
    let start = ["exercise", "start", ex, "--as", &lab, "--results", &results];
    let o = run(&start);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["exercise", "reset", "--lab", &lab]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
