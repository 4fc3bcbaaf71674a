//! Grades instructors can trust: each way a learner could make `exercise
//! check` pass without fixing the lab is refused, or recorded in the run's
//! journal, and never graded as solved while hidden; two instances of one
//! exercise run side by side with grades of their own; an undo that fails
//! fails `reset` and `verify`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const LAB: &str = "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: gb-base}\nspec: {nodes: 2}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {nodeName: node-1, containers: [{name: a, ports: [{containerPort: 80}]}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {nodeName: node-2, containers: [{name: b, ports: [{containerPort: 80}]}]}\n";

const EXERCISE: &str = r#"apiVersion: podlab/v1alpha1
kind: Exercise
metadata: {name: grade}
spec:
  title: t
  difficulty: easy
  section: pods
  lab: lab.yaml
  story: s
  faults: [{fault: forwarding-off, target: node-2}]
  hints: ["`podlab exec node/node-2 -- sysctl net.ipv4.ip_forward`"]
  checks: [{from: a, to: b, port: 80, expect: connected}]
  solution:
    explanation: node-2 stopped forwarding
    steps: [{in: node/node-2, run: "echo 1 > /proc/sys/net/ipv4/ip_forward"}]
"#;

/// An exercise and its lab in a directory of their own, and a results
/// directory beside them.
struct Files {
    dir: tempfile::TempDir,
    exercise: PathBuf,
}

impl Files {
    fn new(exercise: &str) -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("lab.yaml"), LAB).expect("lab");
        let path = dir.path().join("ex.yaml");
        std::fs::write(&path, exercise).expect("exercise");
        Files {
            dir,
            exercise: path,
        }
    }

    fn results(&self) -> PathBuf {
        self.dir.path().join("results")
    }

    fn start(&self, lab: &str) {
        let o = run(&[
            "exercise",
            "start",
            &self.exercise.display().to_string(),
            "--as",
            lab,
            "--results",
            &self.results().display().to_string(),
        ]);
        assert!(o.status.success(), "start {lab}:\n{}", text(&o));
    }

    fn report(&self) -> (Option<i32>, Vec<serde_json::Value>) {
        report_of(&self.results())
    }
}

fn report_of(dir: &Path) -> (Option<i32>, Vec<serde_json::Value>) {
    let o = run(&["exercise", "report", "--json", &dir.display().to_string()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("report --json: {e}\n{}", text(&o)));
    (o.status.code(), v.as_array().cloned().unwrap_or_default())
}

/// Brings a lab down however the test ends, and checks nothing is left.
struct Down(&'static str);

impl Drop for Down {
    fn drop(&mut self) {
        // A lab the test brought down already is not up: only what is
        // left counts.
        let _ = run(&["down", self.0]);
        if !std::thread::panicking() {
            assert_nothing_left(self.0);
        }
    }
}

fn check(lab: &str) -> (Option<i32>, String) {
    let o = run(&["exercise", "check", "--lab", lab]);
    (o.status.code(), text(&o))
}

fn fix(lab: &str) {
    let o = run(&[
        "exec",
        "--lab",
        lab,
        "node/node-2",
        "--",
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
    ]);
    assert!(o.status.success(), "fix:\n{}", text(&o));
}

fn journal_events(path: &Path) -> Vec<(String, Option<String>)> {
    std::fs::read_to_string(path)
        .expect("journal")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a journal line");
            (
                v["event"].as_str().unwrap_or_default().to_string(),
                v["verdict"].as_str().map(String::from),
            )
        })
        .collect()
}

fn only_journal(dir: &Path) -> PathBuf {
    let mut j: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("results")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(j.len(), 1, "{j:?}");
    j.remove(0)
}

#[test]
fn every_cheat_is_refused_or_journaled_and_never_graded_as_solved() {
    if !root_or_skip("grading cheats") {
        return;
    }
    const LAB: &str = "gb-cheat";
    let _ = run(&["down", LAB]);
    let files = Files::new(EXERCISE);
    files.start(LAB);
    let _down = Down(LAB);
    let state = Path::new("/run/podlab").join(LAB);
    assert_eq!(check(LAB).0, Some(1), "broken at start");

    // The tools that do the work, or name the fault, are refused.
    for args in [
        vec!["apply", "--lab", LAB],
        vec!["fault", "clear", "--lab", LAB],
        vec!["diagnose", "--lab", LAB],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}:\n{}", text(&o));
        assert!(
            text(&o).contains("not allowed on lab gb-cheat while exercise grade runs"),
            "{}",
            text(&o)
        );
        assert_eq!(check(LAB).0, Some(1), "after a refused {args:?}");
    }
    // `apply FILE` of the lab file under the instance's name, too.
    let renamed = files.dir.path().join("renamed.yaml");
    std::fs::write(&renamed, super_lab(LAB)).expect("renamed lab");
    let o = run(&["apply", &renamed.display().to_string()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // faults.json emptied (and restored): the grade never read it.
    let faults = state.join("faults.json");
    let saved = std::fs::read(&faults).expect("faults.json");
    std::fs::write(&faults, "{\"faults\": []}").expect("empty faults.json");
    assert_eq!(check(LAB).0, Some(1), "faults.json emptied");
    std::fs::write(&faults, &saved).expect("restore faults.json");

    // The exercise file edited after start: graded by the copy.
    std::fs::write(
        &files.exercise,
        EXERCISE.replace("expect: connected", "expect: blocked"),
    )
    .expect("edit exercise");
    assert_eq!(check(LAB).0, Some(1), "checks edited after start");
    let noted = std::fs::read_to_string(only_journal(&files.results()))
        .expect("journal")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["event"] == "check")
        .map(|v| v.to_string())
        .unwrap_or_default();
    assert!(
        noted.contains("\"fileChangedSinceStart\":true"),
        "the journal notes the edit: {noted}"
    );

    // The copy in the lab's state edited: not graded at all.
    let record_path = state.join("exercise.json");
    let record = std::fs::read_to_string(&record_path).expect("exercise.json");
    let mut v: serde_json::Value = serde_json::from_str(&record).expect("record");
    v["snapshot"] = EXERCISE
        .replace("expect: connected", "expect: blocked")
        .into();
    std::fs::write(&record_path, v.to_string()).expect("edit record");
    let (code, out) = check(LAB);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("was changed after start"), "{out}");
    // ...and with its hash made to match: graded, but not as this exercise.
    let forged = EXERCISE.replace("expect: connected", "expect: blocked");
    v["snapshotSha256"] = sha256sum(&forged).into();
    std::fs::write(&record_path, v.to_string()).expect("forge record");
    assert_eq!(check(LAB).0, Some(0), "the forged checks pass");
    let (_, rows) = files.report();
    assert_eq!(rows[0]["solved"], false, "{rows:?}");
    assert!(
        rows[0]["problem"]
            .as_str()
            .unwrap_or_default()
            .contains("other than the one started"),
        "{rows:?}"
    );
    std::fs::write(&record_path, &record).expect("restore record");

    // status --json never shows the solution.
    let o = run(&["exercise", "status", "--lab", LAB, "--json"]);
    let status = stdout(&o);
    for word in [
        "explanation",
        "stopped forwarding",
        "forwarding-off",
        "ip_forward",
    ] {
        assert!(!status.contains(word), "status shows {word}:\n{status}");
    }

    // The honest fix, with the solution asked: solved, and all of it on
    // the record.
    let o = run(&["exercise", "solution", "--lab", LAB]);
    assert!(o.status.success(), "{}", text(&o));
    fix(LAB);
    let mut last = check(LAB);
    for _ in 0..5 {
        if last.0 == Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        last = check(LAB);
    }
    assert_eq!(last.0, Some(0), "{}", last.1);
    let (code, rows) = files.report();
    assert_eq!(code, Some(0), "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["solved"], true, "{r}");
    assert_eq!(r["solutionViewed"], true, "{r}");
    assert_eq!(r["intact"], true, "{r}");
    for t in ["apply", "fault clear", "diagnose (whole lab)"] {
        assert!(r["refused"][t].as_u64().unwrap_or(0) >= 1, "{t}: {r}");
    }
    assert_eq!(r["tools"]["exec"], 1, "{r}");

    // A later failing check unsolves: solvedAt does not stay.
    let o = run(&[
        "exec",
        "--lab",
        LAB,
        "node/node-2",
        "--",
        "sh",
        "-c",
        "echo 0 > /proc/sys/net/ipv4/ip_forward",
    ]);
    assert!(o.status.success());
    assert_eq!(check(LAB).0, Some(1));
    let o = run(&["exercise", "status", "--lab", LAB, "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status");
    assert!(st["progress"]["solvedAt"].is_null(), "{st}");
    let history = st["progress"]["checks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(history.len() >= 7, "every check is kept: {st}");
    assert_eq!(history.last().map(|c| c["failed"] == 1), Some(true), "{st}");
    let (_, rows) = files.report();
    assert_eq!(rows[0]["solved"], false);
    fix(LAB);

    // The journal edited: a failed check made to look passed, or a line
    // removed, breaks the chain (on copies: the original stays whole).
    let journal = only_journal(&files.results());
    let lines: Vec<String> = std::fs::read_to_string(&journal)
        .expect("journal")
        .lines()
        .map(String::from)
        .collect();
    let tampered = files.dir.path().join("tampered");
    std::fs::create_dir_all(&tampered).expect("dir");
    let edited: Vec<String> = lines
        .iter()
        .map(|l| l.replace("\"solved\":false", "\"solved\":true"))
        .collect();
    std::fs::write(tampered.join("edited.jsonl"), edited.join("\n") + "\n").expect("write");
    let mut cut = lines.clone();
    cut.retain(|l| !l.contains("\"event\":\"solution\""));
    std::fs::write(tampered.join("cut.jsonl"), cut.join("\n") + "\n").expect("write");
    let (code, rows) = report_of(&tampered);
    assert_eq!(code, Some(1), "a broken journal is exit 1: {rows:?}");
    assert!(rows.iter().all(|r| r["intact"] == false), "{rows:?}");

    // Reset and down are journaled, and the journal outlives the lab.
    let o = run(&["exercise", "reset", "--lab", LAB]);
    assert!(o.status.success(), "{}", text(&o));
    let events = journal_events(&journal);
    assert_eq!(events.first().map(|e| e.0.as_str()), Some("start"));
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("reset"));
    assert!(events.contains(&("apply".into(), Some("refused".into()))));
    assert!(events.contains(&("exec".into(), Some("allowed".into()))));
}

/// The test's lab file, named `name`.
fn super_lab(name: &str) -> String {
    LAB.replace("gb-base", name)
}

fn sha256sum(text: &str) -> String {
    podlab::exercise::sha256::hex(text.as_bytes())
}

#[test]
fn two_instances_of_one_exercise_are_graded_apart() {
    if !root_or_skip("two instances") {
        return;
    }
    const A: &str = "gb-twin-a";
    const B: &str = "gb-twin-b";
    let _ = run(&["down", A]);
    let _ = run(&["down", B]);
    let files = Files::new(EXERCISE);
    files.start(A);
    let _down_a = Down(A);
    files.start(B);
    let _down_b = Down(B);
    fix(A);
    let mut a = check(A);
    for _ in 0..5 {
        if a.0 == Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        a = check(A);
    }
    assert_eq!(a.0, Some(0), "{}", a.1);
    assert_eq!(check(B).0, Some(1), "B is still broken");
    // `down` of one is journaled in its own run only.
    let o = run(&["down", B]);
    assert!(o.status.success(), "{}", text(&o));
    let (_, rows) = files.report();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = |lab: &str| {
        rows.iter()
            .find(|r| r["lab"] == lab)
            .unwrap_or_else(|| panic!("no row for {lab}: {rows:?}"))
            .clone()
    };
    assert_eq!(row(A)["solved"], true);
    assert_eq!(row(B)["solved"], false);
    assert_eq!(row(B)["ended"], "down");
    assert_eq!(row(A)["ended"], serde_json::Value::Null);
}

#[test]
fn an_undo_that_fails_fails_verify_and_a_fault_left_is_settled_by_reset() {
    if !root_or_skip("broken undo") {
        return;
    }
    // A firewall the checks see; its undo fails.
    let broken = EXERCISE
        .replace(
            "faults: [{fault: forwarding-off, target: node-2}]",
            "faults:\n  - {in: node/node-2, run: \"nft add table inet grfw && nft add chain inet grfw f '{ type filter hook forward priority 0; }' && nft add rule inet grfw f tcp dport 80 drop\", undo: \"exit 3\"}",
        )
        .replace(
            r#"steps: [{in: node/node-2, run: "echo 1 > /proc/sys/net/ipv4/ip_forward"}]"#,
            "steps: [{in: node/node-2, run: \"nft flush chain inet grfw f\"}]",
        );
    let files = Files::new(&broken);
    let verify = |files: &Files| {
        let o = run(&[
            "exercise",
            "verify",
            &files.exercise.display().to_string(),
            "--as",
            "gb-undo",
            "--json",
        ]);
        assert_nothing_left("gb-undo");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("verify --json: {e}\n{}", text(&o)));
        (o.status.code(), v)
    };
    let (code, v) = verify(&files);
    assert_eq!(code, Some(1), "{v}");
    let reset = v["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["phase"] == "reset"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(reset["ok"], false, "{v}");
    assert!(
        reset["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("exit"),
        "{v}"
    );
    // An undo that "succeeds" but leaves the table: reset settles what
    // the fault touched (node-2) back to the plan, so the lab it calls
    // healthy has no table left.
    let files = Files::new(&broken.replace("undo: \"exit 3\"", "undo: \"true\""));
    let _ = run(&["down", "gb-undo"]);
    files.start("gb-undo");
    let down = Down("gb-undo");
    let o = run(&["exercise", "reset", "--lab", "gb-undo", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("reset --json");
    assert_eq!(r["healthy"], true, "{r}");
    let o = run(&[
        "exec",
        "--lab",
        "gb-undo",
        "node/node-2",
        "--",
        "nft",
        "list",
        "table",
        "inet",
        "grfw",
    ]);
    assert!(!o.status.success(), "the table is gone:\n{}", text(&o));
    drop(down);
    // ... but the author is told: verify fails on the undo that left it.
    let (code, v) = verify(&files);
    assert_eq!(code, Some(1), "{v}");
    let reset = v["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["phase"] == "reset"))
        .cloned()
        .unwrap_or_default();
    assert!(
        reset["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("the undo of"),
        "{v}"
    );
    // A real undo: verified, with the seed in the JSON.
    let files =
        Files::new(&broken.replace("undo: \"exit 3\"", "undo: \"nft delete table inet grfw\""));
    let (code, v) = verify(&files);
    assert_eq!(code, Some(0), "{v}");
    assert!(v.get("seed").is_some() && v["seeds"].is_array(), "{v}");
    assert_eq!(
        v["phases"].as_array().map(Vec::len),
        Some(8),
        "every phase, the journal's included: {v}"
    );
}
