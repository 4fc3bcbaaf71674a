//! Running an exercise: start (bring the lab up, break it, keep the
//! learner's progress in the lab's state directory), hints, grading
//! against the network as it really is, the solution, reset, and an
//! instructor's proof that an exercise works (`verify`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::journal::{self, RunId};
use super::{choose_vars, instantiate, rules, sha256, Fix, Instance};
use crate::faults::{self, run as faults_run};
use crate::lab::exercise::{self as file, Exercise};
use crate::lab::{self, LabError, LabFile};
use crate::observe::{self, Finding};
use crate::plan::{self, Plan};
use crate::probe::{self, Report};
use crate::{lifecycle, state};

pub const PROGRESS_FILE: &str = "exercise.json";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    File(#[from] LabError),
    /// Boxed: a fault's error is large, and every `Result` here would
    /// carry its size.
    #[error("{0}")]
    Exercise(Box<super::Error>),
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error("lab {lab} could not be built, and what was made has been removed: {message}")]
    Up { lab: String, message: String },
    #[error("fault {fault} could not be injected: {message}")]
    Inject { fault: String, message: String },
    #[error("{what}: {source}")]
    State {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Faults(#[from] faults_run::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<super::Error> for Error {
    fn from(e: super::Error) -> Self {
        Error::Exercise(Box::new(e))
    }
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. } => hint.clone(),
            Error::Exercise(e) => e.hint(),
            _ => None,
        }
    }

    fn usage(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

/// A learner's exercise, as kept in `/run/podlab/<lab>/exercise.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub exercise: String,
    pub title: String,
    /// The exercise file, absolute.
    pub file: PathBuf,
    /// The lab file, absolute.
    pub lab_file: PathBuf,
    pub lab: String,
    pub difficulty: String,
    pub section: String,
    pub seed: Option<u64>,
    /// Unix seconds.
    pub started: u64,
    /// `start` brought the lab up (rather than finding it up).
    pub brought_up: bool,
    /// The ids of the faults it injected (`faults.json`).
    pub fault_ids: Vec<u32>,
    pub hints_shown: usize,
    pub solution_shown: bool,
    pub checks_run: u32,
    /// When the passing checks that stand now began, unix seconds; none
    /// while the latest check failed (`checks` keeps every result).
    pub solved_at: Option<u64>,
    #[serde(default)]
    pub checks: Vec<CheckRun>,
    pub instance: Instance,
    /// The exercise file as it was at start: what `check` grades with.
    #[serde(default)]
    pub snapshot: String,
    #[serde(default)]
    pub snapshot_sha256: String,
    /// The run's journal (`journal`), outside the lab's state.
    pub run: RunId,
}

/// One `check`, as the progress keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRun {
    /// Unix seconds.
    pub at: u64,
    pub passed: usize,
    pub failed: usize,
}

/// What `status --json` shows of a run: its progress, never its solution
/// (the faults, the explanation, the steps) nor its variables.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub exercise: String,
    pub title: String,
    pub file: PathBuf,
    pub lab_file: PathBuf,
    pub lab: String,
    pub difficulty: String,
    pub section: String,
    pub seed: Option<u64>,
    pub started: u64,
    pub hints_shown: usize,
    pub hints: usize,
    pub solution_shown: bool,
    pub checks_run: u32,
    pub solved: bool,
    pub solved_at: Option<u64>,
    pub checks: Vec<CheckRun>,
    pub faults: usize,
    pub snapshot_sha256: String,
    pub journal: PathBuf,
    pub allowed: Vec<&'static str>,
}

impl Progress {
    pub fn summary(&self) -> Summary {
        let allow = parse_snapshot(self).ok().and_then(|e| e.allow);
        Summary {
            exercise: self.exercise.clone(),
            title: self.title.clone(),
            file: self.file.clone(),
            lab_file: self.lab_file.clone(),
            lab: self.lab.clone(),
            difficulty: self.difficulty.clone(),
            section: self.section.clone(),
            seed: self.seed,
            started: self.started,
            hints_shown: self.hints_shown,
            hints: self.instance.hints.len(),
            solution_shown: self.solution_shown,
            checks_run: self.checks_run,
            solved: self.solved_at.is_some(),
            solved_at: self.solved_at,
            checks: self.checks.clone(),
            faults: self.fault_ids.len(),
            snapshot_sha256: self.snapshot_sha256.clone(),
            journal: self.run.journal.clone(),
            allowed: rules::allowed_list(allow.as_deref()),
        }
    }

    /// Append to the run's journal.
    pub fn journal(&self, event: &str, detail: serde_json::Value) -> Result<(), Error> {
        journal::append(
            &self.run,
            Some(&head_path(&self.lab)),
            event,
            None,
            &[],
            detail,
        )
        .map(drop)
        .map_err(|e| Error::State {
            what: "journal the exercise".into(),
            source: std::io::Error::other(e),
        })
    }
}

/// The exercise as it was at start, decoded again.
pub fn parse_snapshot(p: &Progress) -> Result<Exercise, Error> {
    if sha256::hex(p.snapshot.as_bytes()) != p.snapshot_sha256 {
        return Err(Error::usage(
            format!(
                "the copy of exercise {} kept in lab {}'s state was changed after start: it is not graded",
                p.exercise, p.lab
            ),
            "the attempt is in the exercise's journal; `podlab exercise reset` ends the exercise",
        ));
    }
    Ok(file::parse(&p.file.display().to_string(), &p.snapshot)?)
}

/// The lab's `journal.head`.
pub fn head_path(lab: &str) -> PathBuf {
    state::dir_of(lab).join(journal::HEAD_FILE)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn progress_path(lab: &str) -> PathBuf {
    state::dir_of(lab).join(PROGRESS_FILE)
}

pub fn load_progress(lab: &str) -> Result<Option<Progress>, Error> {
    let path = progress_path(lab);
    match std::fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|e| Error::State {
                what: format!("read {}", path.display()),
                source: std::io::Error::other(e),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::State {
            what: format!("read {}", path.display()),
            source: e,
        }),
    }
}

fn save_progress(p: &Progress) -> Result<(), Error> {
    let path = progress_path(&p.lab);
    let json = serde_json::to_vec_pretty(p).map_err(|e| Error::State {
        what: "encode the exercise's progress".into(),
        source: std::io::Error::other(e),
    })?;
    state::write_atomic(&path, &json).map_err(|source| Error::State {
        what: format!("write {}", path.display()),
        source,
    })
}

/// The lab an exercise command is about: the one named (which must have
/// an exercise), or the only one that has one.
pub fn find_lab(named: Option<&str>) -> Result<String, Error> {
    let with: Vec<String> = state::labs()
        .into_iter()
        .map(String::from)
        .filter(|l| progress_path(l).exists())
        .collect();
    match (named, with.as_slice()) {
        (Some(l), _) if with.iter().any(|w| w == l) => Ok(l.to_string()),
        (Some(l), _) => Err(Error::usage(
            format!("no exercise is running in lab {l}"),
            "start one with `sudo podlab exercise start FILE`",
        )),
        (None, []) => Err(Error::usage(
            "no exercise is running",
            "start one with `sudo podlab exercise start FILE` (labs/exercises/ has some)",
        )),
        (None, [one]) => Ok(one.clone()),
        (None, many) => Err(Error::usage(
            format!(
                "exercises run in {} labs ({}): say which one",
                many.len(),
                many.join(", ")
            ),
            format!("add --lab {}", many[0]),
        )),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    })
}

/// An exercise file, with its lab file decoded and planned.
pub struct Loaded {
    pub exercise: Exercise,
    pub file: PathBuf,
    pub lab_file: PathBuf,
    pub lab: LabFile,
    pub plan: Plan,
    /// The exercise file's text, as decoded: the snapshot `start` keeps.
    pub text: String,
}

/// Read an exercise and its lab (no root needed), with every check that
/// needs no kernel: `validate` lists what is wrong.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    load_as(path, None)
}

/// `load`, the lab renamed `as_name` (`start --as`: a second instance of
/// the same exercise beside the first).
pub fn load_as(path: &Path, as_name: Option<&str>) -> Result<Loaded, Error> {
    let file = absolute(path);
    let source = path.display().to_string();
    let text = lab::read_source(path, "exercise").map_err(|d| LabError {
        diagnostics: vec![d],
    })?;
    let exercise = file::parse(&source, &text)?;
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let lab_file = absolute(&dir.join(&exercise.lab));
    if !lab_file.is_file() {
        return Err(Error::File(LabError {
            diagnostics: vec![lab::Diagnostic {
                source: exercise.source.clone(),
                pos: exercise.lab_pos,
                field: "spec.lab".into(),
                message: format!("lab file {} does not exist", lab_file.display()),
                hint: Some("spec.lab is relative to the exercise file".into()),
            }],
        }));
    }
    // Loaded by its absolute path: the plan's source then finds the file
    // from any directory (plan-level faults and `apply` read it again).
    let mut lab = lab::load(&lab_file)?;
    if let Some(name) = as_name {
        let name = state::LabName::parse(name).map_err(|e| {
            Error::usage(
                format!("--as {name}: {e}"),
                crate::state::LAB_NAME_RULE.to_string(),
            )
        })?;
        lab.lab.name = name.to_string();
    }
    file::check(&exercise, &lab)?;
    let plan = plan::build(&lab)?;
    Ok(Loaded {
        exercise,
        file,
        lab_file,
        lab,
        plan,
        text,
    })
}

/// What `start` did.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub progress: Progress,
    pub hints: usize,
}

/// How `start` runs an exercise.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub seed: Option<u64>,
    /// How long the lab may take to come up.
    pub timeout: Duration,
    /// The lab's name instead of the lab file's (`--as`).
    pub as_name: Option<String>,
    /// Where the journal goes (default `journal::DEFAULT_RESULTS`).
    pub results: Option<PathBuf>,
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Bring the exercise's lab up (or take it as it is, when it is up,
/// healthy and has nothing injected), inject its faults, and record the
/// learner's progress. On failure, a lab this brought up is brought down.
pub fn start(path: &Path, opts: &StartOptions) -> Result<Started, Error> {
    let seed = opts.seed;
    let timeout = opts.timeout;
    let loaded = load_as(path, opts.as_name.as_deref())?;
    let ex = &loaded.exercise;
    let lab_name = loaded.plan.lab.clone();
    let brought_up = if lifecycle::is_up(&lab_name) {
        if let Some(p) = load_progress(&lab_name)? {
            return Err(Error::usage(
                format!(
                    "exercise {} is already running in lab {lab_name}",
                    p.exercise
                ),
                format!(
                    "`sudo podlab exercise reset --lab {lab_name}` ends it (or `sudo podlab down {lab_name}`)"
                ),
            ));
        }
        if !faults_run::load(&lab_name)?.faults.is_empty() {
            return Err(Error::usage(
                format!("lab {lab_name} is up with faults injected"),
                format!("`sudo podlab fault clear --lab {lab_name}` first, or `sudo podlab down {lab_name}`"),
            ));
        }
        // An exercise starts from a lab exactly as its plan says: anything
        // else (a route someone added, a rule) would be graded as theirs.
        let (drift, _) = healthy_now(&lab_name)?;
        if let Some(first) = drift.first() {
            return Err(Error::usage(
                format!(
                    "lab {lab_name} is up but differs from its plan ({} difference{}, first: {first})",
                    drift.len(),
                    if drift.len() == 1 { "" } else { "s" }
                ),
                format!("`sudo podlab apply --lab {lab_name}` puts it back, or `sudo podlab down {lab_name}`"),
            ));
        }
        false
    } else {
        lifecycle::up(&loaded.plan, &mut |_| {}, timeout).map_err(|e| Error::Up {
            lab: lab_name.clone(),
            message: crate::error_chain(&e),
        })?;
        true
    };
    let result = (|| {
        let plan = state::load(&lab_name).map_err(|source| Error::State {
            what: format!("read the plan of lab {lab_name}"),
            source,
        })?;
        let vars = choose_vars(ex, seed)?;
        let instance = instantiate(ex, &plan, Some(&loaded.lab), vars)?;
        let by = format!("exercise {}", ex.name);
        let mut ids = Vec::new();
        for fp in &instance.faults {
            match faults_run::inject(&lab_name, fp.clone(), &by) {
                Ok(i) => ids.push(i.id),
                Err(e) => {
                    // Undo the faults already injected before reporting.
                    let _ = faults_run::clear(&lab_name, &ids);
                    return Err(Error::Inject {
                        fault: fp.fault.clone(),
                        message: crate::error_chain(&e),
                    });
                }
            }
        }
        let started_ms = journal::now_ms();
        let results = opts
            .results
            .clone()
            .unwrap_or_else(|| PathBuf::from(journal::DEFAULT_RESULTS));
        let run = RunId {
            run: format!("{lab_name}-{started_ms}"),
            lab: lab_name.clone(),
            exercise: ex.name.clone(),
            journal: absolute(&results).join(journal::file_name(started_ms, &lab_name, &ex.name)),
        };
        let progress = Progress {
            exercise: ex.name.clone(),
            title: ex.title.clone(),
            file: loaded.file.clone(),
            lab_file: loaded.lab_file.clone(),
            lab: lab_name.clone(),
            difficulty: ex.difficulty.word().into(),
            section: ex.section.title().into(),
            seed,
            started: now(),
            brought_up,
            fault_ids: ids,
            hints_shown: 0,
            solution_shown: false,
            checks_run: 0,
            solved_at: None,
            checks: Vec::new(),
            instance,
            snapshot: loaded.text.clone(),
            snapshot_sha256: sha256::hex(loaded.text.as_bytes()),
            run,
        };
        // A stale head from an earlier run on this lab is not this one's.
        let _ = std::fs::remove_file(head_path(&lab_name));
        let journaled = progress.journal(
            "start",
            serde_json::json!({
                "file": progress.file,
                "sha256": progress.snapshot_sha256,
                "title": progress.title,
                "seed": seed,
                "vars": progress.instance.vars,
                "host": hostname(),
                "broughtUp": brought_up,
                "faults": progress.fault_ids.len(),
                "hints": progress.instance.hints.len(),
                "allowed": rules::allowed_list(ex.allow.as_deref()),
            }),
        );
        if let Err(e) = journaled {
            // An exercise that cannot be journaled is not run.
            let _ = faults_run::clear(&lab_name, &progress.fault_ids);
            return Err(e);
        }
        save_progress(&progress)?;
        Ok(Started {
            hints: progress.instance.hints.len(),
            progress,
        })
    })();
    if result.is_err() && brought_up {
        let _ = lifecycle::down(&lab_name);
    }
    result
}

/// The grade: every check, run against the lab as it is now.
#[derive(Debug, Clone, Serialize)]
pub struct Graded {
    pub exercise: String,
    pub lab: String,
    pub passed: usize,
    pub failed: usize,
    pub solved: bool,
    pub checks: Vec<Report>,
}

/// Run the exercise's checks on the running lab, as `podlab test` runs a
/// lab's assertions: what a learner typed does not matter, only what the
/// network does.
pub fn check(lab: &str, timeout: Duration) -> Result<Graded, Error> {
    let Some(mut p) = load_progress(lab)? else {
        return Err(find_lab(Some(lab)).err().unwrap_or_else(|| {
            Error::usage("no exercise is running", "`podlab exercise start FILE`")
        }));
    };
    // The copy taken at start, not the file as it is now: checks edited
    // after start do not grade.
    let ex = match parse_snapshot(&p) {
        Ok(ex) => ex,
        Err(e) => {
            p.journal(
                "check",
                serde_json::json!({"graded": false, "why": e.to_string()}),
            )?;
            return Err(e);
        }
    };
    let file_changed = std::fs::read(&p.file)
        .map(|t| sha256::hex(&t) != p.snapshot_sha256)
        .unwrap_or(true);
    let plan = state::load(lab).map_err(|source| Error::State {
        what: format!("read the plan of lab {lab}"),
        source,
    })?;
    let checks = checks_for(&ex, &p.instance.vars, &plan)?;
    let reports = run_checks(&plan, &checks, timeout)?;
    let failed = reports.iter().filter(|r| !r.passed).count();
    let at = now();
    p.checks_run += 1;
    p.checks.push(CheckRun {
        at,
        passed: reports.len() - failed,
        failed,
    });
    p.solved_at = match (failed, p.solved_at) {
        (0, None) => Some(at),
        (0, kept) => kept,
        _ => None,
    };
    // Journaled before it counts: a grade that is not recorded is none.
    p.journal(
        "check",
        serde_json::json!({
            "graded": true,
            "passed": reports.len() - failed,
            "failed": failed,
            "solved": failed == 0,
            "failedChecks": reports.iter().filter(|r| !r.passed).map(|r| &r.name).collect::<Vec<_>>(),
            "sha256": p.snapshot_sha256,
            "fileChangedSinceStart": file_changed,
        }),
    )?;
    save_progress(&p)?;
    Ok(Graded {
        exercise: p.exercise,
        lab: lab.into(),
        passed: reports.len() - failed,
        failed,
        solved: failed == 0,
        checks: reports,
    })
}

/// The exercise's checks with the run's variables filled in.
pub fn checks_for(
    ex: &Exercise,
    vars: &std::collections::BTreeMap<String, String>,
    plan: &Plan,
) -> Result<Vec<lab::expect::Assertion>, Error> {
    Ok(file::checks_with(ex, &mut |t| {
        super::substitute(t, vars, plan)
    })?)
}

fn run_checks(
    plan: &Plan,
    checks: &[lab::expect::Assertion],
    timeout: Duration,
) -> Result<Vec<Report>, Error> {
    let refs: Vec<&lab::expect::Assertion> = checks.iter().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let reports = rt.block_on(probe::run(plan, &refs, probe::Options { timeout }));
    rt.shutdown_background();
    Ok(reports)
}

/// The next hint: (its number from 1, how many there are, the text), or
/// `None` when every hint has been shown.
pub fn hint(lab: &str) -> Result<(Progress, Option<(usize, String)>), Error> {
    let mut p = progress_of(lab)?;
    let hints = &p.instance.hints;
    if p.hints_shown >= hints.len() {
        return Ok((p, None));
    }
    let text = hints[p.hints_shown].clone();
    p.hints_shown += 1;
    p.journal(
        "hint",
        serde_json::json!({"number": p.hints_shown, "of": hints.len()}),
    )?;
    save_progress(&p)?;
    let n = p.hints_shown;
    Ok((p, Some((n, text))))
}

fn progress_of(lab: &str) -> Result<Progress, Error> {
    load_progress(lab)?.ok_or_else(|| {
        Error::usage(
            format!("no exercise is running in lab {lab}"),
            "start one with `sudo podlab exercise start FILE`",
        )
    })
}

/// The solution, and a note in the progress that it was asked for.
pub fn solution(lab: &str) -> Result<Progress, Error> {
    let mut p = progress_of(lab)?;
    p.journal("solution", serde_json::json!({"first": !p.solution_shown}))?;
    if !p.solution_shown {
        p.solution_shown = true;
        save_progress(&p)?;
    }
    Ok(p)
}

pub fn status(lab: &str) -> Result<(Progress, Vec<faults_run::Injected>), Error> {
    let p = progress_of(lab)?;
    p.journal("status", serde_json::Value::Null)?;
    let record = faults_run::load(lab)?;
    let active = record
        .faults
        .into_iter()
        .filter(|f| p.fault_ids.contains(&f.id))
        .collect();
    Ok((p, active))
}

/// What `reset` did.
#[derive(Debug, Clone, Serialize)]
pub struct Reset {
    pub exercise: String,
    pub lab: String,
    pub cleared: Vec<faults_run::Cleared>,
    /// What still differs from the plan (a learner's own changes).
    pub findings: Vec<Finding>,
    /// What whole-lab diagnose would say besides: the daemon not answering.
    pub down: Vec<String>,
    /// What an exercise's own undo left behind, which `fault clear`'s diff
    /// then repaired: the lab is healthy, but the undo is wrong, and
    /// `verify` says so to the author.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub undo_left: Vec<String>,
}

impl Reset {
    pub fn healthy(&self) -> bool {
        self.findings.is_empty()
            && self.down.is_empty()
            && self.cleared.iter().all(|c| c.errors.is_empty())
    }
}

/// Undo the exercise's faults exactly, end the exercise, and compare the
/// lab with its plan: the lab stays up, as its file made it.
pub fn reset(lab: &str) -> Result<Reset, Error> {
    let p = progress_of(lab)?;
    let record = faults_run::load(lab)?;
    let mut cleared = Vec::new();
    let mut ids = Vec::new();
    let mut custom = Vec::new();
    for f in record.faults.iter().filter(|f| p.fault_ids.contains(&f.id)) {
        if f.plan
            .undo
            .iter()
            .any(|s| matches!(s, faults::Step::Exec { .. }))
        {
            custom.push(f.id);
        }
        // An exercise's own undo command must succeed, whether or not the
        // learner fixed the lab first (`fault clear` takes a failing one
        // as already undone): one that fails leaves its fault in place.
        let errors: Vec<String> = f
            .plan
            .undo
            .iter()
            .filter(|s| matches!(s, faults::Step::Exec { .. }))
            .flat_map(|s| faults_run::run_steps(lab, std::slice::from_ref(s), true))
            .map(|e| crate::error_chain(&e))
            .collect();
        if errors.is_empty() {
            ids.push(f.id);
        } else {
            cleared.push(faults_run::Cleared {
                id: f.id,
                fault: f.plan.fault.clone(),
                target: f.plan.target.clone(),
                errors,
                repaired: Vec::new(),
                differs: Vec::new(),
            });
        }
    }
    cleared.extend(faults_run::clear(lab, &ids)?);
    let undo_left: Vec<String> = cleared
        .iter()
        .filter(|c| custom.contains(&c.id))
        .flat_map(|c| {
            c.repaired
                .iter()
                .map(move |r| format!("the undo of {} left {r} (the diff repaired it)", c.fault))
        })
        .collect();
    let (findings, down) = healthy_now(lab)?;
    let ended = cleared.iter().all(|c| c.errors.is_empty());
    p.journal(
        "reset",
        serde_json::json!({
            "ended": ended,
            "undoErrors": cleared.iter().flat_map(|c| c.errors.clone()).collect::<Vec<_>>(),
            "findings": findings.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            "daemon": down,
        }),
    )?;
    if ended {
        let _ = std::fs::remove_file(head_path(lab));
        let path = progress_path(lab);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::State {
                    what: format!("remove {}", path.display()),
                    source: e,
                })
            }
            _ => {}
        }
    }
    Ok(Reset {
        exercise: p.exercise,
        lab: lab.into(),
        cleared,
        findings,
        down,
        undo_left,
    })
}

/// What whole-lab `diagnose` reports: what differs between the running
/// lab and its plan (extra objects included), and a daemon that does not
/// answer. The daemon resyncs rules a moment after a pod comes back, so a
/// difference is looked at again before it is believed.
fn healthy_now(lab: &str) -> Result<(Vec<Finding>, Vec<String>), Error> {
    let plan = state::load(lab).map_err(|source| Error::State {
        what: format!("read the plan of lab {lab}"),
        source,
    })?;
    let mut findings = Vec::new();
    let mut down = Vec::new();
    for attempt in 0..10 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let status = crate::runtime::query_status(&state::dir_of(lab), Duration::from_secs(2)).ok();
        findings = observe::compare_with(&plan, status.as_ref());
        down = if status.is_none() {
            vec!["the lab's daemon does not answer: no pod is served".to_string()]
        } else {
            Vec::new()
        };
        if findings.is_empty() && down.is_empty() {
            break;
        }
    }
    Ok((findings, down))
}

/// Carry out one step of a solution, as a learner would type it.
pub fn apply_fix(lab: &str, fix: &Fix) -> Result<(), String> {
    let plan = state::load(lab).map_err(|e| format!("cannot read the plan of lab {lab}: {e}"))?;
    match fix {
        Fix::Run { at, argv } => {
            let out = faults_run::exec(&plan, at, argv, None)?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`{}` exited with {}: {}",
                    faults::shell_words(argv),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
        Fix::Host { command } => {
            // As a learner's shell runs it, with this podlab first in PATH.
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let mut path = exe
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            if let Some(p) = std::env::var_os("PATH") {
                path.push(':');
                path.push_str(&p.to_string_lossy());
            }
            // bash for `pipefail`: a failing `nft list` on the left of a
            // pipe must fail the step, not feed nothing to the right.
            let (shell, args): (&str, &[&str]) = if Path::new("/bin/bash").exists() {
                ("/bin/bash", &["-o", "pipefail", "-c"])
            } else {
                ("sh", &["-c"])
            };
            let out = std::process::Command::new(shell)
                .args(args)
                .arg(command)
                .env("PATH", path)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| format!("cannot run sh: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`{command}` exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
        Fix::Write { at, path, content } => {
            let argv: Vec<String> = vec!["sh".into(), "-c".into(), format!("cat > {path}")];
            let out = faults_run::exec(&plan, at, &argv, Some(content.as_bytes()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "writing {path} in {at} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
        Fix::Apply => {
            // What `podlab apply LABFILE` does: the file as it is now,
            // planned against the running lab, made the lab.
            let file = faults_run::lab_file_of(&plan).map_err(|e| e.to_string())?;
            let desired = plan::build_with(&file, Some(&plan)).map_err(|e| e.to_string())?;
            crate::reconcile::apply(lab, &desired)
                .map(drop)
                .map_err(|e| crate::error_chain(&e))
        }
    }
}

/// The phases of `verify`, in order; a verified exercise passes them all.
pub const VERIFY_PHASES: &[&str] = &[
    "validate", "start", "broken", "solution", "fixed", "reset", "down", "journal",
];

/// One phase of `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub phase: String,
    pub ok: bool,
    pub detail: String,
}

/// An instructor's proof: start, the checks fail, the solution is
/// applied, the checks pass, reset leaves the lab as planned, down leaves
/// nothing behind.
pub fn verify(
    path: &Path,
    seed: Option<u64>,
    as_name: Option<&str>,
    timeout: Duration,
) -> Result<Vec<Phase>, Error> {
    // The journal of a proof is the proof's own, removed after it.
    let results = std::env::temp_dir().join(format!(
        "podlab-verify-{}-{}",
        std::process::id(),
        journal::now_ms()
    ));
    let phases = verify_in(path, seed, as_name, timeout, &results);
    let _ = std::fs::remove_dir_all(&results);
    phases
}

fn verify_in(
    path: &Path,
    seed: Option<u64>,
    as_name: Option<&str>,
    timeout: Duration,
    results: &Path,
) -> Result<Vec<Phase>, Error> {
    let loaded = load_as(path, as_name)?;
    let lab = loaded.plan.lab.clone();
    if lifecycle::is_up(&lab) {
        return Err(Error::usage(
            format!("lab {lab} is up: verify brings it up and down itself"),
            format!("`sudo podlab down {lab}` first"),
        ));
    }
    let mut phases = Vec::new();
    let mut phase = |name: &str, ok: bool, detail: String| {
        phases.push(Phase {
            phase: name.into(),
            ok,
            detail,
        });
        ok
    };
    let problems = super::validate(&loaded.exercise, &loaded.lab, &loaded.plan);
    if !phase(
        "validate",
        problems.is_empty(),
        if problems.is_empty() {
            "the checks name the lab's objects; every fault and step plans for every choice of variables".into()
        } else {
            problems.join("\n")
        },
    ) {
        return Ok(phases);
    }
    /// Brings the lab down on every path.
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = lifecycle::down(&self.0);
        }
    }
    let started = start(
        path,
        &StartOptions {
            seed,
            timeout: Duration::from_secs(60),
            as_name: as_name.map(String::from),
            results: Some(results.to_path_buf()),
        },
    )?;
    let guard = Down(lab.clone());
    phase(
        "start",
        true,
        format!(
            "{} fault(s) injected: {}",
            started.progress.instance.faults.len(),
            started
                .progress
                .instance
                .faults
                .iter()
                .map(|f| f.summary.clone())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    );
    let before = check(&lab, timeout)?;
    let ok = phase(
        "broken",
        before.failed > 0,
        if before.failed > 0 {
            format!(
                "{} of {} checks fail, as they should",
                before.failed,
                before.checks.len()
            )
        } else {
            "every check passes with the faults in: they break nothing the checks look at".into()
        },
    );
    if !ok {
        drop(guard);
        return Ok(phases);
    }
    let mut failed_fix = None;
    for fix in &started.progress.instance.fixes {
        if let Err(e) = apply_fix(&lab, fix) {
            failed_fix = Some(format!(
                "{}: {e}",
                fix.command(&started.progress.lab_file.display().to_string())
            ));
            break;
        }
    }
    let n = started.progress.instance.fixes.len();
    if !phase(
        "solution",
        failed_fix.is_none(),
        failed_fix.unwrap_or_else(|| format!("{n} step(s) applied")),
    ) {
        drop(guard);
        return Ok(phases);
    }
    let after = wait_solved(&lab, timeout)?;
    let ok = phase(
        "fixed",
        after.failed == 0,
        if after.failed == 0 {
            format!("all {} checks pass", after.checks.len())
        } else {
            after
                .checks
                .iter()
                .filter(|r| !r.passed)
                .map(|r| {
                    format!(
                        "{}: expected {}, observed {}",
                        r.name, r.expected, r.observed
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    if !ok {
        drop(guard);
        return Ok(phases);
    }
    let r = reset(&lab)?;
    let undone = r.healthy() && r.undo_left.is_empty();
    let ok = phase(
        "reset",
        undone,
        if undone {
            "every fault undone; the lab is exactly as planned".into()
        } else {
            r.findings
                .iter()
                .map(|f| f.to_string())
                .chain(r.undo_left.iter().cloned())
                .chain(r.down.iter().cloned())
                .chain(r.cleared.iter().flat_map(|c| {
                    c.errors
                        .iter()
                        .map(move |e| format!("undo of {}: {e}", c.fault))
                }))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    drop(guard);
    if !ok {
        return Ok(phases);
    }
    let left = leftovers(&lab);
    if !phase(
        "down",
        left.is_empty(),
        if left.is_empty() {
            "nothing of the lab is left".into()
        } else {
            format!("left behind: {}", left.join(", "))
        },
    ) {
        return Ok(phases);
    }
    let (ok, detail) = journal_proves(&started.progress.run.journal);
    phase("journal", ok, detail);
    Ok(phases)
}

/// The run's journal is intact and holds what verify did: a start,
/// checks that failed then passed, and the reset.
fn journal_proves(path: &Path) -> (bool, String) {
    let read = match journal::read(path) {
        Ok(r) => r,
        Err(e) => return (false, e),
    };
    if let Some(b) = read.broken {
        return (false, b);
    }
    let events: Vec<&str> = read.entries.iter().map(|e| e.event.as_str()).collect();
    let graded: Vec<bool> = read
        .entries
        .iter()
        .filter(|e| e.event == "check")
        .filter_map(|e| e.detail["solved"].as_bool())
        .collect();
    let ok = events.first() == Some(&"start")
        && events.last() == Some(&"reset")
        && graded.first() == Some(&false)
        && graded.last() == Some(&true);
    (
        ok,
        format!(
            "{} line(s), chain intact: {}",
            events.len(),
            events.join(", ")
        ),
    )
}

/// The checks again until they pass (kube-proxy's resync after a pod
/// comes back takes a moment), at most a few seconds.
fn wait_solved(lab: &str, timeout: Duration) -> Result<Graded, Error> {
    let mut g = check(lab, timeout)?;
    for _ in 0..5 {
        if g.solved {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        g = check(lab, timeout)?;
    }
    Ok(g)
}

/// What of a lab is still on the host after `down`.
pub fn leftovers(lab: &str) -> Vec<String> {
    let mut left: Vec<String> = crate::kernel::netns::list(&format!("{lab}-"))
        .into_iter()
        .map(|n| format!("namespace {n}"))
        .collect();
    if state::dir_of(lab).exists() {
        left.push(format!("state {}", state::dir_of(lab).display()));
    }
    if let Ok(rd) = std::fs::read_dir("/etc/netns") {
        for e in rd.filter_map(|e| e.ok()) {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!("{lab}-")) {
                left.push(format!("/etc/netns/{n}"));
            }
        }
    }
    if !crate::kernel::procs::daemon_pids(lab).is_empty() {
        left.push("its daemon".into());
    }
    left
}
