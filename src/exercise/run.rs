//! Running an exercise: start (bring the lab up, break it, keep the
//! learner's progress in the lab's state directory), hints, grading
//! against the network as it really is, the solution, reset, and an
//! instructor's proof that an exercise works (`verify`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{choose_vars, instantiate, Fix, Instance};
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
    /// When `check` first passed, unix seconds.
    pub solved_at: Option<u64>,
    pub instance: Instance,
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
}

/// Read an exercise and its lab (no root needed), with every check that
/// needs no kernel: `validate` lists what is wrong.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let file = absolute(path);
    let exercise = file::load(path)?;
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
    let lab = lab::load(&lab_file)?;
    file::check(&exercise, &lab)?;
    let plan = plan::build(&lab)?;
    Ok(Loaded {
        exercise,
        file,
        lab_file,
        lab,
        plan,
    })
}

/// What `start` did.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub progress: Progress,
    pub hints: usize,
}

/// Bring the exercise's lab up (or take it as it is, when it is up,
/// healthy and has nothing injected), inject its faults, and record the
/// learner's progress. On failure, a lab this brought up is brought down.
pub fn start(path: &Path, seed: Option<u64>, timeout: Duration) -> Result<Started, Error> {
    let loaded = load(path)?;
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
        let drift = healthy_now(&lab_name)?;
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
            instance,
        };
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
    let ex = file::load(&p.file)?;
    let plan = state::load(lab).map_err(|source| Error::State {
        what: format!("read the plan of lab {lab}"),
        source,
    })?;
    let reports = run_checks(&plan, &ex, timeout)?;
    let failed = reports.iter().filter(|r| !r.passed).count();
    p.checks_run += 1;
    if failed == 0 && p.solved_at.is_none() {
        p.solved_at = Some(now());
    }
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

fn run_checks(plan: &Plan, ex: &Exercise, timeout: Duration) -> Result<Vec<Report>, Error> {
    let refs: Vec<&lab::expect::Assertion> = ex.checks.iter().collect();
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
    if !p.solution_shown {
        p.solution_shown = true;
        save_progress(&p)?;
    }
    Ok(p)
}

pub fn status(lab: &str) -> Result<(Progress, Vec<faults_run::Injected>), Error> {
    let p = progress_of(lab)?;
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
}

impl Reset {
    pub fn healthy(&self) -> bool {
        self.findings.is_empty() && self.cleared.iter().all(|c| c.errors.is_empty())
    }
}

/// Undo the exercise's faults exactly, end the exercise, and compare the
/// lab with its plan: the lab stays up, as its file made it.
pub fn reset(lab: &str) -> Result<Reset, Error> {
    let p = progress_of(lab)?;
    let record = faults_run::load(lab)?;
    let ids: Vec<u32> = record
        .faults
        .iter()
        .filter(|f| p.fault_ids.contains(&f.id))
        .map(|f| f.id)
        .collect();
    let cleared = faults_run::clear(lab, &ids)?;
    if cleared.iter().all(|c| c.errors.is_empty()) {
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
    let findings = healthy_now(lab)?;
    Ok(Reset {
        exercise: p.exercise,
        lab: lab.into(),
        cleared,
        findings,
    })
}

/// What differs between the running lab and its plan. The daemon resyncs
/// rules a moment after a pod comes back, so a difference is looked at
/// again before it is believed.
fn healthy_now(lab: &str) -> Result<Vec<Finding>, Error> {
    let plan = state::load(lab).map_err(|source| Error::State {
        what: format!("read the plan of lab {lab}"),
        source,
    })?;
    let mut findings = Vec::new();
    for attempt in 0..10 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let status = crate::runtime::query_status(&state::dir_of(lab), Duration::from_secs(2)).ok();
        findings = observe::compare_with(&plan, status.as_ref());
        if findings.is_empty() {
            break;
        }
    }
    Ok(findings)
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
    "validate", "start", "broken", "solution", "fixed", "reset", "down",
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
pub fn verify(path: &Path, seed: Option<u64>, timeout: Duration) -> Result<Vec<Phase>, Error> {
    let loaded = load(path)?;
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
    let started = start(path, seed, Duration::from_secs(60))?;
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
    let ok = phase(
        "reset",
        r.healthy(),
        if r.healthy() {
            "every fault undone; the lab is exactly as planned".into()
        } else {
            r.findings
                .iter()
                .map(|f| f.to_string())
                .chain(r.cleared.iter().flat_map(|c| c.errors.clone()))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    drop(guard);
    if !ok {
        return Ok(phases);
    }
    let left = leftovers(&lab);
    phase(
        "down",
        left.is_empty(),
        if left.is_empty() {
            "nothing of the lab is left".into()
        } else {
            format!("left behind: {}", left.join(", "))
        },
    );
    Ok(phases)
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
