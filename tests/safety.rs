//! A lab touches only what it made, and no input can exhaust podlab: lab
//! names are checked before they become paths, a failed `up` removes only
//! what it made, `down` during `up` leaves nothing, and commands on one lab
//! do not lose each other's updates.
//!
//! Lab names here start with `sa-` (other labs may be up on this host).

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small lab: two nodes, one pod on each.
fn two_pods(name: &str, extra: &str) -> LabFile {
    lab_file(&format!(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {{name: {name}}}
spec: {{nodes: 2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: a}}
spec:
  nodeName: node-1
  containers: [{{name: c, ports: [{{containerPort: 80}}]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: b}}
spec:
  nodeName: node-2
  containers: [{{name: c, ports: [{{containerPort: 80}}]}}]
{extra}"#
    ))
}

fn all_netns() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Removes a namespace this test made with `ip netns add`, however it ends.
struct UserNetns(String);

impl UserNetns {
    fn add(name: &str) -> UserNetns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let o = Command::new("ip")
            .args(["netns", "add", name])
            .output()
            .expect("ip netns add");
        assert!(o.status.success(), "ip netns add {name}: {}", stderr(&o));
        UserNetns(name.to_string())
    }
}

impl Drop for UserNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A directory under `/etc/netns` this test made, removed however it ends.
struct EtcEntry(std::path::PathBuf);

impl EtcEntry {
    fn new(name: &str, hosts: &str) -> EtcEntry {
        let dir = Path::new("/etc/netns").join(name);
        std::fs::create_dir_all(&dir).expect("mkdir /etc/netns/...");
        std::fs::write(dir.join("hosts"), hosts).expect("write hosts");
        EtcEntry(dir)
    }
}

impl Drop for EtcEntry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_dir("/etc/netns");
    }
}

const PODLAB_HOSTS: &str =
    "# Kubernetes-managed hosts file (written by podlab).\n127.0.0.1\tlocalhost\n";

#[test]
fn down_refuses_words_that_are_not_lab_names_and_deletes_nothing() {
    if !root_or_skip("down_refuses_words_that_are_not_lab_names") {
        return;
    }
    let victim = tempfile::tempdir().expect("tempdir");
    std::fs::write(victim.path().join("keep"), "x").expect("write");
    let path_word = victim.path().to_str().expect("utf-8").to_string();

    // First the word whose damage is contained (a temporary directory): on
    // code that does not check names, the test stops here, before the
    // words that would name /run/podlab or /run.
    let o = run(&["down", &path_word]);
    assert!(
        victim.path().join("keep").exists(),
        "down {path_word} removed the directory:\n{}",
        text(&o)
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("is not a lab name"), "{}", text(&o));
    assert!(stderr(&o).contains("DNS-1123 label"), "{}", text(&o));

    let state_before: Vec<String> = podlab::state::labs()
        .into_iter()
        .map(String::from)
        .collect();
    let netns_before = all_netns();
    let long = "a".repeat(21);
    let words = [
        "", ".", "..", "../run", "a/../..", "SA-UPPER", &long, "sa-x/y", "-sa", "sa-",
    ];
    for word in words {
        let o = run(&["down", "--", word]);
        assert_eq!(o.status.code(), Some(2), "down {word:?}:\n{}", text(&o));
        assert!(stderr(&o).contains("is not a lab name"), "{}", text(&o));
        // Every other way a name reaches a path: --lab, PODLAB_LAB, the
        // daemon's own argument.
        let flag = format!("--lab={word}");
        for args in [
            vec!["get", "pods", &flag],
            vec!["exec", &flag, "a", "--", "true"],
            vec!["apply", &flag],
            vec!["scale", "deployment", "x", "--replicas", "1", &flag],
            vec!["delete", "pod", "x", &flag],
            vec!["fault", "clear", &flag],
            vec!["__daemon", "--", word],
        ] {
            let o = run(&args);
            assert_eq!(o.status.code(), Some(2), "{args:?}:\n{}", text(&o));
            assert!(
                stderr(&o).contains("is not a lab name"),
                "{args:?}:\n{}",
                text(&o)
            );
        }
        if !word.is_empty() {
            let o = podlab()
                .args(["get", "pods"])
                .env("PODLAB_LAB", word)
                .output()
                .expect("run");
            assert_eq!(
                o.status.code(),
                Some(2),
                "PODLAB_LAB={word:?}:\n{}",
                text(&o)
            );
            assert!(stderr(&o).contains("PODLAB_LAB"), "{}", text(&o));
        }
    }
    assert!(victim.path().join("keep").exists());
    assert!(Path::new("/run").exists());
    let state_after: Vec<String> = podlab::state::labs()
        .into_iter()
        .map(String::from)
        .collect();
    // Other labs may come and go meanwhile; none may vanish because of us.
    for lab in &state_before {
        assert!(
            state_after.contains(lab) || !Path::new("/run/podlab").join(lab).exists(),
            "state of {lab} removed"
        );
    }
    let netns_after = all_netns();
    // Another test's lab may go down meanwhile (its state goes with it).
    for n in netns_before.iter().filter(|n| n.starts_with("sa-")) {
        assert!(
            netns_after.contains(n) || podlab::state::lab_of_netns(n).is_none(),
            "{n} removed"
        );
    }
}

#[test]
fn a_lab_whose_namespaces_would_be_another_labs_is_refused_untouched() {
    if !root_or_skip("a_lab_whose_namespaces_would_be_another_labs") {
        return;
    }
    let first_file = two_pods("sa-relx-y", "");
    let first = Up::new("sa-relx-y", &first_file);
    let theirs = namespaces_of("sa-relx-y");
    assert!(theirs.contains(&"sa-relx-y-net".to_string()), "{theirs:?}");

    // Lab sa-relx, namespace y, pods net and node-1: sa-relx-y-net and
    // sa-relx-y-node-1, which are the running lab's.
    let second = lab_file(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: sa-relx}
spec: {nodes: 1}
---
apiVersion: v1
kind: Namespace
metadata: {name: y}
---
apiVersion: v1
kind: Pod
metadata: {name: net, namespace: y}
spec:
  containers: [{name: c, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: node-1, namespace: y}
spec:
  containers: [{name: c, ports: [{containerPort: 80}]}]
"#,
    );
    let o = run(&["up", "-q", second.path.to_str().unwrap()]);
    // Whatever happened, leave nothing of sa-relx.
    let _ = run(&["down", "sa-relx"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    assert!(err.contains("sa-relx-y"), "names the other lab:\n{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    assert_eq!(
        namespaces_of("sa-relx-y"),
        theirs,
        "the first lab's namespaces"
    );
    let ls = run(&["ls", "-o", "json"]);
    let ls = stdout(&ls);
    assert!(ls.contains("\"sa-relx-y\""), "{ls}");
    // Still healthy: a pod reaches the other pod across nodes.
    let b = first.pod_ip("b");
    let o = first.exec(
        "a",
        &["curl", "-sS", "--max-time", "5", &format!("http://{b}/")],
    );
    assert!(
        o.status.success(),
        "a -> b after the refused up:\n{}",
        text(&o)
    );

    // The other way round: with sa-relx up, sa-relx-y is refused too.
    drop(first);
    let lone = two_pods("sa-relx", "");
    let relx = Up::new("sa-relx", &lone);
    let o = run(&["up", "-q", first_file.path.to_str().unwrap()]);
    let _ = run(&["down", "sa-relx-y"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("sa-relx"), "{}", text(&o));
    assert!(!namespaces_of("sa-relx").is_empty());
    drop(relx);
}

#[test]
fn a_users_namespace_survives_a_failed_up_and_is_named() {
    if !root_or_skip("a_users_namespace_survives_a_failed_up") {
        return;
    }
    let _ = run(&["down", "sa-relz"]);
    let user = UserNetns::add("sa-relz-external");
    let file = two_pods("sa-relz", "");
    let o = run(&["up", "-q", file.path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    assert!(err.contains("sa-relz-external"), "names it:\n{err}");
    assert!(err.contains("already exists"), "{err}");
    assert!(err.contains("ip netns del sa-relz-external"), "{err}");
    assert!(
        Path::new("/run/netns/sa-relz-external").exists(),
        "the user's namespace was removed"
    );
    assert_eq!(
        namespaces_of("sa-relz"),
        vec!["sa-relz-external".to_string()],
        "nothing else was made"
    );
    assert!(!Path::new("/run/podlab/sa-relz").exists(), "no state left");
    // Without state, `down` finds the lab by its names: the user's
    // namespace is named like the lab's, but podlab did not make it.
    let o = run(&["down", "sa-relz"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("not made by podlab"), "{}", text(&o));
    assert!(Path::new("/run/netns/sa-relz-external").exists());
    drop(user);
    assert_nothing_left("sa-relz");
}

/// A failure after some namespaces were made removes those, not the one
/// that was there before: the rollback is by what this run created.
#[test]
fn a_failed_up_removes_what_it_made_and_nothing_else() {
    if !root_or_skip("a_failed_up_removes_what_it_made") {
        return;
    }
    let _ = run(&["down", "sa-relw"]);
    let file = two_pods("sa-relw", "");
    // Ask for a daemon timeout it cannot meet: everything is built, then
    // the rollback runs. A user's namespace with the lab's prefix but not
    // in its plan must survive it.
    let user = UserNetns::add("sa-relw-mine");
    let o = run(&["up", "-q", "--timeout", "0", file.path.to_str().unwrap()]);
    if o.status.success() {
        // The daemon was faster than the check: nothing to roll back.
        let _ = run(&["down", "sa-relw"]);
    }
    assert!(
        Path::new("/run/netns/sa-relw-mine").exists(),
        "{}",
        text(&o)
    );
    assert_eq!(
        namespaces_of("sa-relw"),
        vec!["sa-relw-mine".to_string()],
        "{}",
        text(&o)
    );
    // `down` with a plan never takes it either.
    let lab = Up::new("sa-relw", &file);
    let o = run(&["down", "sa-relw"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(Path::new("/run/netns/sa-relw-mine").exists());
    std::mem::forget(lab);
    drop(user);
    assert_nothing_left("sa-relw");
}

/// 150 pods: long enough an `up` to be caught half-way.
fn many_pods(name: &str) -> LabFile {
    lab_file(&format!(
        r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {{name: {name}}}
spec: {{nodes: 2}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 150
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, ports: [{{containerPort: 80}}]}}]
"#
    ))
}

#[test]
fn down_while_up_runs_leaves_nothing() {
    if !root_or_skip("down_while_up_runs_leaves_nothing") {
        return;
    }
    let lab = "sa-race";
    let file = many_pods(lab);
    let _ = run(&["down", lab]);
    for attempt in 0..4 {
        let mut up = podlab()
            .args(["up", "-q", file.path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn up");
        // Caught at a different point each time: once namespaces exist,
        // then a little later.
        let start = Instant::now();
        while namespaces_of(lab).len() < 10 + attempt * 30
            && start.elapsed() < Duration::from_secs(60)
        {
            if up.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let o = run(&["down", lab]);
        let status = up.wait().expect("wait up");
        let up_err = {
            use std::io::Read;
            let mut s = String::new();
            let _ = up.stderr.take().map(|mut e| e.read_to_string(&mut s));
            s
        };
        assert!(
            o.status.success(),
            "attempt {attempt}: down failed:\n{}\nup ({status}):\n{up_err}",
            text(&o)
        );
        // An up that finished before down came is taken down whole; one
        // that down cancelled removed its own. Either way: nothing.
        let left = run(&["down", lab]);
        assert_eq!(
            left.status.code(),
            Some(2),
            "attempt {attempt}: a second down found something:\n{}\nfirst:\n{}\nup ({status}):\n{up_err}",
            text(&left),
            text(&o)
        );
        assert_nothing_left(lab);
    }
}

#[test]
fn etc_netns_leftovers_without_state_are_removed() {
    if !root_or_skip("etc_netns_leftovers_without_state_are_removed") {
        return;
    }
    // What a lab killed half-way leaves after a reboot: /etc/netns only.
    let _ = run(&["down", "sa-etc"]);
    let a = EtcEntry::new("sa-etc-default-a", PODLAB_HOSTS);
    let b = EtcEntry::new("sa-etc-default-b", PODLAB_HOSTS);
    // Another lab's name that extends this one's is not this lab's.
    let other = EtcEntry::new("sa-etcx-default-a", PODLAB_HOSTS);
    // `up` of that lab refuses to write into them, and says how to clean.
    let file = two_pods("sa-etc", "");
    let o = run(&["up", "-q", file.path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("/etc/netns/sa-etc-default-a"),
        "{}",
        text(&o)
    );
    assert!(stderr(&o).contains("podlab down sa-etc"), "{}", text(&o));
    assert!(namespaces_of("sa-etc").is_empty(), "nothing made");
    let o = run(&["down", "sa-etc"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!a.0.exists() && !b.0.exists(), "{}", text(&o));
    assert!(other.0.exists());
    let o = run(&["down", "sa-etc"]);
    assert_eq!(o.status.code(), Some(2), "nothing left:\n{}", text(&o));
    drop(other);

    // `down --all`'s sweep, through the library function it calls (no
    // `down --all` here: other labs are up): podlab's entries without a
    // namespace go; a user's entry and one beside a live namespace stay.
    let stray = EtcEntry::new("sa-stray-default-p", PODLAB_HOSTS);
    let users = EtcEntry::new("sa-stray-user", "127.0.0.1 mine\n");
    let live_ns = UserNetns::add("sa-stray-live");
    let live = EtcEntry::new("sa-stray-live", PODLAB_HOSTS);
    let (removed, errors) = podlab::lifecycle::remove_stray_etc();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(removed >= 1);
    assert!(!stray.0.exists(), "podlab's stray entry");
    assert!(users.0.exists(), "a user's entry");
    assert!(live.0.exists(), "an entry beside a live namespace");
    drop(live);
    drop(live_ns);
}

/// A lab with two Deployments, to scale both at once.
fn two_deployments(name: &str) -> LabFile {
    let deploy = |d: &str| {
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {d}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {d}}}}}\n  template:\n    metadata: {{labels: {{app: {d}}}}}\n    spec:\n      containers: [{{name: c, ports: [{{containerPort: 80}}]}}]\n"
        )
    };
    lab_file(&format!(
        "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {{name: {name}}}\nspec: {{nodes: 2}}\n{}{}",
        deploy("left"),
        deploy("right")
    ))
}

fn pods_of(lab: &Up, app: &str) -> usize {
    lab.get_json("pods")["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .count()
}

#[test]
fn two_concurrent_scales_lose_no_update() {
    if !root_or_skip("two_concurrent_scales_lose_no_update") {
        return;
    }
    let file = two_deployments("sa-scale");
    let lab = Up::new("sa-scale", &file);
    for (l, r) in [(4, 3), (2, 5)] {
        let spawn = |name: &str, n: u32| {
            podlab()
                .args([
                    "scale",
                    "deployment",
                    name,
                    "--replicas",
                    &n.to_string(),
                    "--lab",
                    "sa-scale",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn scale")
        };
        let left = spawn("left", l);
        let right = spawn("right", r);
        let (left, right) = (
            left.wait_with_output().unwrap(),
            right.wait_with_output().unwrap(),
        );
        assert!(left.status.success(), "scale left:\n{}", text(&left));
        assert!(right.status.success(), "scale right:\n{}", text(&right));
        assert_eq!(pods_of(&lab, "left"), l as usize, "left's update");
        assert_eq!(pods_of(&lab, "right"), r as usize, "right's update");
        let edits: serde_json::Value = serde_json::from_slice(
            &std::fs::read("/run/podlab/sa-scale/edits.json").expect("edits.json"),
        )
        .expect("json");
        assert_eq!(edits["replicas"]["default/left"], l, "{edits}");
        assert_eq!(edits["replicas"]["default/right"], r, "{edits}");
    }
}

#[test]
fn podlab_lab_picks_the_lab_and_down_without_a_name_refuses_with_several_up() {
    if !root_or_skip("podlab_lab_picks_the_lab") {
        return;
    }
    let fa = two_pods("sa-pa", "");
    let fb = two_pods(
        "sa-pb",
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: only-in-b}\nspec:\n  containers: [{name: c}]\n",
    );
    let pa = Up::new("sa-pa", &fa);
    let pb = Up::new("sa-pb", &fb);

    let o = podlab()
        .args(["get", "pods"])
        .env_remove("PODLAB_LAB")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("PODLAB_LAB"),
        "the hint names it:\n{}",
        text(&o)
    );

    let o = podlab()
        .args(["get", "pods", "-o", "json"])
        .env("PODLAB_LAB", "sa-pb")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("only-in-b"),
        "sa-pb's pods:\n{}",
        text(&o)
    );
    // --lab wins over the variable.
    let o = podlab()
        .args(["get", "pods", "-o", "json", "--lab", "sa-pa"])
        .env("PODLAB_LAB", "sa-pb")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !stdout(&o).contains("only-in-b"),
        "sa-pa's pods:\n{}",
        text(&o)
    );
    // A lab that is not up, from the variable, says where the name came from.
    let o = podlab()
        .args(["get", "pods"])
        .env("PODLAB_LAB", "sa-nope")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("no lab named sa-nope is up (from PODLAB_LAB)"),
        "{}",
        text(&o)
    );

    // `down` without a name and with several labs up removes none of them.
    let o = podlab()
        .arg("down")
        .env_remove("PODLAB_LAB")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("sa-pa") && stderr(&o).contains("sa-pb"),
        "{}",
        text(&o)
    );
    assert!(!namespaces_of("sa-pa").is_empty() && !namespaces_of("sa-pb").is_empty());

    // With the variable, `down` takes that lab only.
    let o = podlab()
        .arg("down")
        .env("PODLAB_LAB", "sa-pb")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_nothing_left("sa-pb");
    std::mem::forget(pb);
    assert!(!namespaces_of("sa-pa").is_empty());
    drop(pa);

    // The help says so.
    let o = run(&["--help"]);
    assert!(stdout(&o).contains("PODLAB_LAB"), "{}", text(&o));
    assert!(stdout(&o).contains("1 to 20 characters"), "{}", text(&o));
    for cmd in ["get", "exec", "apply", "scale", "delete", "down"] {
        let o = run(&[cmd, "--help"]);
        assert!(
            stdout(&o).contains("PODLAB_LAB"),
            "{cmd} --help:\n{}",
            text(&o)
        );
    }
}
