//! `exercise report`: one row per exercise run, read from the journals
//! of a results directory (or a tree of them, one per machine), and
//! whether each journal's chain holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::journal::{self, Entry};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub journal: PathBuf,
    pub run: String,
    pub host: String,
    pub lab: String,
    pub exercise: String,
    pub seed: Option<u64>,
    pub started: String,
    /// `reset`, `down` or none (still running, or the journal ends early).
    pub ended: Option<String>,
    /// The latest graded check passed.
    pub solved: bool,
    /// When the passing checks that stand began.
    pub solved_at: Option<String>,
    pub seconds_to_solve: Option<u64>,
    pub checks: usize,
    pub hints: u64,
    pub solution_viewed: bool,
    /// Allowed uses of each podlab tool (`exec` included).
    pub tools: BTreeMap<String, usize>,
    /// Refused uses of each tool.
    pub refused: BTreeMap<String, usize>,
    pub intact: bool,
    /// The first break of the chain, or a check that could not grade.
    pub problem: Option<String>,
}

/// Every `*.jsonl` under `dir`, at any depth, sorted.
pub fn journals(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The rows of every journal under `dir`.
pub fn collect(dir: &Path) -> Result<Vec<Row>, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    journals(dir)
        .iter()
        .map(|p| journal::read(p).map(|r| row(p, &r)))
        .collect()
}

/// One run's row, from its journal.
pub fn row(path: &Path, read: &journal::Chain) -> Row {
    let e = &read.entries;
    let start = e.iter().find(|x| x.event == "start");
    let started_ms = start.or(e.first()).map_or(0, |x| x.at_ms);
    // A check graded with another text than the one started (the copy
    // in the lab's state rewritten, hash and all) grades another
    // exercise: it does not count, and says so.
    let sha = start.map(|x| x.detail["sha256"].clone());
    let (graded, foreign): (Vec<&Entry>, Vec<&Entry>) = e
        .iter()
        .filter(|x| x.event == "check" && x.detail["graded"] == true)
        .partition(|x| Some(&x.detail["sha256"]) == sha.as_ref());
    let solved = graded.last().is_some_and(|x| x.detail["solved"] == true);
    // The passing streak that ends the run.
    let solved_at = solved
        .then(|| {
            graded
                .iter()
                .rev()
                .take_while(|x| x.detail["solved"] == true)
                .last()
                .map(|x| x.at_ms)
        })
        .flatten();
    let mut tools = BTreeMap::new();
    let mut refused = BTreeMap::new();
    for x in e {
        match x.verdict.as_deref() {
            Some("allowed") => *tools.entry(x.event.clone()).or_insert(0) += 1,
            Some("refused") => *refused.entry(x.event.clone()).or_insert(0) += 1,
            _ => {}
        }
    }
    let ungraded = e
        .iter()
        .find(|x| x.event == "check" && x.detail["graded"] == false)
        .and_then(|x| x.detail["why"].as_str().map(String::from));
    Row {
        journal: path.to_path_buf(),
        run: e.first().map(|x| x.run.clone()).unwrap_or_default(),
        host: start
            .and_then(|x| x.detail["host"].as_str())
            .unwrap_or_default()
            .into(),
        lab: e.first().map(|x| x.lab.clone()).unwrap_or_default(),
        exercise: e.first().map(|x| x.exercise.clone()).unwrap_or_default(),
        seed: start.and_then(|x| x.detail["seed"].as_u64()),
        started: journal::iso(started_ms),
        ended: e
            .iter()
            .rev()
            .find(|x| (x.event == "reset" && x.detail["ended"] == true) || x.event == "down")
            .map(|x| x.event.clone()),
        solved,
        solved_at: solved_at.map(journal::iso),
        seconds_to_solve: solved_at.map(|t| t.saturating_sub(started_ms) / 1000),
        checks: graded.len(),
        hints: e
            .iter()
            .filter(|x| x.event == "hint")
            .filter_map(|x| x.detail["number"].as_u64())
            .max()
            .unwrap_or(0),
        solution_viewed: e.iter().any(|x| x.event == "solution"),
        tools,
        refused,
        intact: read.broken.is_none() && start.is_some(),
        problem: {
            let all: Vec<String> = [
                read.broken.clone(),
                start
                    .is_none()
                    .then(|| "the journal has no start".to_string()),
                foreign.first().map(|x| {
                    format!(
                        "line {}: a check graded with an exercise text other than the one started (not counted)",
                        x.seq + 1
                    )
                }),
                ungraded,
            ]
            .into_iter()
            .flatten()
            .collect();
            (!all.is_empty()).then(|| all.join("; "))
        },
    }
}

fn counts(m: &BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// RFC 4180: a field with a comma, quote or newline is quoted.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub const CSV_HEADER: &str = "host,lab,exercise,seed,started,ended,solved,solved_at,seconds_to_solve,checks,hints,solution_viewed,tools,refused,intact,problem,journal";

pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in rows {
        let cols = [
            r.host.clone(),
            r.lab.clone(),
            r.exercise.clone(),
            r.seed.map(|s| s.to_string()).unwrap_or_default(),
            r.started.clone(),
            r.ended.clone().unwrap_or_default(),
            r.solved.to_string(),
            r.solved_at.clone().unwrap_or_default(),
            r.seconds_to_solve
                .map(|s| s.to_string())
                .unwrap_or_default(),
            r.checks.to_string(),
            r.hints.to_string(),
            r.solution_viewed.to_string(),
            counts(&r.tools),
            counts(&r.refused),
            r.intact.to_string(),
            r.problem.clone().unwrap_or_default(),
            r.journal.display().to_string(),
        ];
        out.push_str(&cols.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// The text table: one line a run, and its problem under it.
pub fn text(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<22} {:<12} {:<24} {:<7} {:>6} {:>5} {:<8} {:<7} {}\n",
        "STARTED",
        "LAB",
        "EXERCISE",
        "SOLVED",
        "TIME",
        "HINTS",
        "SOLUTION",
        "JOURNAL",
        "TOOLS (REFUSED)"
    );
    for r in rows {
        let time = r
            .seconds_to_solve
            .map_or("-".to_string(), |s| format!("{}m{:02}", s / 60, s % 60));
        let mut tools = counts(&r.tools);
        if !r.refused.is_empty() {
            tools.push_str(&format!(" (refused {})", counts(&r.refused)));
        }
        out.push_str(&format!(
            "{:<22} {:<12} {:<24} {:<7} {:>6} {:>5} {:<8} {:<7} {}\n",
            r.started.get(..19).unwrap_or(&r.started),
            r.lab,
            r.exercise,
            if r.solved { "yes" } else { "no" },
            time,
            r.hints,
            if r.solution_viewed { "viewed" } else { "-" },
            if r.intact { "intact" } else { "BROKEN" },
            tools
        ));
        if let Some(p) = &r.problem {
            out.push_str(&format!("    {}: {p}\n", r.journal.display()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exercise::journal::{append, RunId};

    #[test]
    fn a_row_says_solved_only_while_the_latest_check_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = RunId {
            run: "r".into(),
            lab: "gr-r".into(),
            exercise: "ex".into(),
            journal: dir.path().join("a.jsonl"),
        };
        let check = |solved: bool| serde_json::json!({"graded": true, "solved": solved, "passed": 1, "failed": u8::from(!solved), "sha256": "s1"});
        let add = |event: &str, verdict: Option<&str>, d: serde_json::Value| {
            append(&id, None, event, verdict, &[], d).expect("append");
        };
        add(
            "start",
            None,
            serde_json::json!({"host": "h1", "seed": 4, "sha256": "s1"}),
        );
        add("check", None, check(false));
        add("hint", None, serde_json::json!({"number": 1}));
        add("apply", Some("refused"), serde_json::Value::Null);
        add("exec", Some("allowed"), serde_json::Value::Null);
        add("check", None, check(true));
        add("check", None, check(false));
        let rows = collect(dir.path()).expect("rows");
        let r = &rows[0];
        assert!(!r.solved, "a later failing check unsolves: {r:?}");
        assert_eq!(r.solved_at, None);
        assert_eq!((r.hints, r.checks, r.seed), (1, 3, Some(4)));
        assert_eq!(r.refused.get("apply"), Some(&1));
        assert_eq!(r.tools.get("exec"), Some(&1));
        assert!(r.intact);
        add("check", None, check(true));
        let r = &collect(dir.path()).expect("rows")[0];
        assert!(r.solved && r.solved_at.is_some());
        add("check", None, check(false));
        add(
            "check",
            None,
            serde_json::json!({"graded": true, "solved": true, "sha256": "forged"}),
        );
        let r = &collect(dir.path()).expect("rows")[0];
        assert!(!r.solved, "a check of another text does not count: {r:?}");
        assert!(r
            .problem
            .as_deref()
            .unwrap_or_default()
            .contains("other than the one started"));
        let csv = csv(&collect(dir.path()).expect("rows"));
        assert!(csv.starts_with(CSV_HEADER));
        assert!(
            csv.lines()
                .nth(1)
                .expect("row")
                .starts_with("h1,gr-r,ex,4,"),
            "{csv}"
        );
    }
}
