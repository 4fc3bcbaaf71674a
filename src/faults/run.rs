//! Carrying faults out, and remembering them: every injected fault is
//! recorded with its undo steps in the lab's state directory
//! (`faults.json`), so that `fault clear` and `exercise reset` work from
//! any process, and `down` takes the record away with the lab.

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{settle, Change, FaultPlan, Level, Step};
use crate::kernel::{self, apply, change, nft, services};
use crate::plan::Plan;
use crate::{runtime, state};

pub const FAULTS_FILE: &str = "faults.json";

/// How long the daemon may take to stop or start pods.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kernel(#[from] kernel::Error),
    #[error("the lab's daemon: {0}")]
    Runtime(#[from] runtime::Error),
    #[error("{what}: {source}")]
    State {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the kernel has no netem qdisc (sch_netem): latency cannot be emulated on this machine\n  hint: where the module exists, `modprobe sch_netem` (Debian/Ubuntu: linux-modules-extra-$(uname -r)); `packet-loss` and `rate-limit` work without it")]
    NetemMissing,
    #[error("{step}: {message}")]
    Step { step: String, message: String },
    #[error("applying the changed plan: {0}")]
    Apply(String),
}

/// One fault in a lab, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injected {
    /// Counts up from 1 within the lab.
    pub id: u32,
    #[serde(flatten)]
    pub plan: FaultPlan,
    /// Unix seconds.
    pub injected_at: u64,
    /// `fault inject`, or the exercise that injected it.
    pub by: String,
}

/// Every fault of a lab that has not been cleared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub faults: Vec<Injected>,
}

fn path(lab: &str) -> PathBuf {
    state::dir_of(lab).join(FAULTS_FILE)
}

/// The lab's record; none yet is an empty one.
pub fn load(lab: &str) -> Result<Record, Error> {
    match std::fs::read(path(lab)) {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::State {
            what: format!("read {}", path(lab).display()),
            source: std::io::Error::other(e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
        Err(e) => Err(Error::State {
            what: format!("read {}", path(lab).display()),
            source: e,
        }),
    }
}

fn save(lab: &str, record: &Record) -> Result<(), Error> {
    let p = path(lab);
    if record.faults.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::State {
                what: format!("remove {}", p.display()),
                source: e,
            }),
            _ => Ok(()),
        };
    }
    let json = serde_json::to_vec_pretty(record).map_err(|e| Error::State {
        what: "encode the fault record".into(),
        source: std::io::Error::other(e),
    })?;
    state::write_atomic(&p, &json).map_err(|e| Error::State {
        what: format!("write {}", p.display()),
        source: e,
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Inject a planned fault and record it. When a step fails, whatever was
/// done is undone (the undo steps restore the plan's state, so running
/// them all is safe) and nothing is recorded.
pub fn inject(lab: &str, fp: FaultPlan, by: &str) -> Result<Injected, Error> {
    let mut record = load(lab)?;
    if let Some(e) = run_steps(lab, &fp.inject, true).into_iter().next() {
        for ue in run_steps(lab, &fp.undo, false) {
            tracing::warn!("undoing a failed injection: {ue}");
        }
        return Err(e);
    }
    let id = record.faults.iter().map(|f| f.id).max().unwrap_or(0) + 1;
    let injected = Injected {
        id,
        plan: fp,
        injected_at: now(),
        by: by.into(),
    };
    record.faults.push(injected.clone());
    save(lab, &record)?;
    Ok(injected)
}

/// What `clear` did to one fault.
#[derive(Debug, Clone, Serialize)]
pub struct Cleared {
    pub id: u32,
    pub fault: String,
    pub target: String,
    /// Empty when every undo step worked; the fault then leaves the record.
    pub errors: Vec<String>,
    /// What the diff after the undo found still different and repaired.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repaired: Vec<String>,
    /// What still differs from the plan in the fault's namespaces after
    /// the undo and the repair: `clear` failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differs: Vec<String>,
}

impl Cleared {
    /// Undone, and the lab as planned where the fault acted.
    pub fn done(&self) -> bool {
        self.errors.is_empty() && self.differs.is_empty()
    }
}

/// Which faults `clear` takes: all of them, those of one name, or one id.
pub fn select(record: &Record, which: Option<&str>) -> Vec<u32> {
    record
        .faults
        .iter()
        .filter(|f| match which {
            None => true,
            Some(w) => f.plan.fault == w || f.id.to_string() == w,
        })
        .map(|f| f.id)
        .collect()
}

/// Undo the faults `ids` (newest first), every step tried even when one
/// fails, then diff the namespaces each touched against the plan and
/// repair what still differs (`settle`). A plan-level fault's undo applies the plan saved when it was
/// injected, which would drop the plan-level faults injected after it:
/// those are undone first, and said so.
pub fn clear(lab: &str, ids: &[u32]) -> Result<Vec<Cleared>, Error> {
    let mut record = load(lab)?;
    let mut wanted: HashSet<u32> = ids.iter().copied().collect();
    if let Some(oldest_plan) = record
        .faults
        .iter()
        .filter(|f| wanted.contains(&f.id) && f.plan.level == Level::Plan)
        .map(|f| f.id)
        .min()
    {
        wanted.extend(
            record
                .faults
                .iter()
                .filter(|f| f.plan.level == Level::Plan && f.id > oldest_plan)
                .map(|f| f.id),
        );
    }
    let mut out = Vec::new();
    let mut order: Vec<Injected> = record
        .faults
        .iter()
        .filter(|f| wanted.contains(&f.id))
        .cloned()
        .collect();
    order.sort_by_key(|f| std::cmp::Reverse(f.id));
    for f in order {
        let errors: Vec<String> = run_steps(lab, &f.plan.undo, false)
            .iter()
            .map(|e| crate::error_chain(e))
            .collect();
        if errors.is_empty() {
            record.faults.retain(|r| r.id != f.id);
        }
        // What the faults still injected change is theirs to undo.
        let plan = current_plan(lab)?;
        let others = record
            .faults
            .iter()
            .filter(|o| o.id != f.id)
            .flat_map(|o| settle::keys(&plan, &o.plan))
            .collect();
        let settled = settle::settle(lab, &f.plan, &others);
        out.push(Cleared {
            id: f.id,
            fault: f.plan.fault.clone(),
            target: f.plan.target.clone(),
            errors,
            repaired: settled.repaired,
            differs: settled.differs,
        });
    }
    save(lab, &record)?;
    Ok(out)
}

/// Pods whose endpoints the daemon has taken out of service, as `ns/name`:
/// what kube-proxy's rules leave out. Without a daemon, none.
pub fn not_ready(lab: &str, plan: &Plan) -> HashSet<String> {
    let status = runtime::query_status(&state::dir_of(lab), Duration::from_secs(2)).ok();
    crate::observe::not_ready(plan, status.as_ref())
}

fn step_error(step: &Step, message: impl Into<String>) -> Error {
    Error::Step {
        step: step.command(),
        message: message.into(),
    }
}

fn current_plan(lab: &str) -> Result<Plan, Error> {
    state::load(lab).map_err(|e| Error::State {
        what: format!("read the plan of lab {lab}"),
        source: e,
    })
}

/// Carry out steps in order, every one tried; consecutive changes go to
/// the kernel's executor together (one connection per namespace).
/// `strict` (injecting): the lab must be as planned for a step to make
/// sense. Otherwise (undoing), a change whose effect is already there
/// counts as done: a learner may have fixed it first. Returns each step's
/// error, in order.
pub fn run_steps(lab: &str, steps: &[Step], strict: bool) -> Vec<Error> {
    let mut errors = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        let batch: Vec<Change> = steps[i..]
            .iter()
            .map_while(|s| match s {
                Step::Change { change, .. } => Some(change.clone()),
                _ => None,
            })
            .collect();
        if batch.is_empty() {
            if let Err(e) = run_step(lab, &steps[i], strict) {
                errors.push(e);
            }
            i += 1;
            continue;
        }
        for (step, (change, r)) in steps[i..].iter().zip(change::run(&batch)) {
            match r {
                Err(e) if strict || !change.already_done(&e) => {
                    errors.push(change_error(step, &change, e))
                }
                _ => {}
            }
        }
        i += batch.len();
    }
    errors
}

/// A change's failure as the fault's step: what was typed, and why.
fn change_error(step: &Step, change: &Change, e: kernel::Error) -> Error {
    let netem = matches!(change, Change::Qdisc { spec: Some(s), .. }
        if s.first().is_some_and(|k| k == "netem"));
    let text = crate::error_chain(&e);
    if netem && (text.contains("qdisc kind is unknown") || text.contains("No such file")) {
        return Error::NetemMissing;
    }
    step_error(step, text)
}

/// Carry out one step that is not a change of a kernel object (those go
/// through `run_steps`).
fn run_step(lab: &str, step: &Step, strict: bool) -> Result<(), Error> {
    match step {
        Step::Change { .. } => run_steps(lab, std::slice::from_ref(step), strict)
            .into_iter()
            .next()
            .map_or(Ok(()), Err),
        Step::ReloadRules { netns } => {
            let plan = current_plan(lab)?;
            let view = services::ready_view(&plan, &not_ready(lab, &plan));
            let rulesets: Vec<(String, String)> = apply::rulesets(&view)
                .into_iter()
                .filter(|(ns, _)| netns.as_ref().is_none_or(|n| n == ns))
                .collect();
            Ok(nft::load_all(&rulesets)?)
        }
        Step::StaleEndpoint { service, endpoint } => {
            let plan = current_plan(lab)?;
            let mut view = services::ready_view(&plan, &not_ready(lab, &plan));
            let Some(svc) = view.services.iter_mut().find(|s| &s.key() == service) else {
                return Err(step_error(
                    step,
                    format!("no service {service} in the plan"),
                ));
            };
            svc.endpoints.push(endpoint.clone());
            let rulesets: Vec<(String, String)> = apply::rulesets(&view)
                .into_iter()
                .filter(|(ns, _)| plan.nodes.iter().any(|n| &n.netns == ns))
                .collect();
            Ok(nft::load_all(&rulesets)?)
        }
        Step::Exec { at, argv } => {
            let plan = current_plan(lab)?;
            let out = exec(&plan, at, argv, None).map_err(|e| step_error(step, e))?;
            if out.status.success() {
                Ok(())
            } else if !strict {
                // An exercise's own undo command fails when the learner
                // has undone it already (`nft delete table` of a table
                // they deleted); whoever undoes compares the lab with its
                // plan afterwards, which is what counts.
                tracing::info!(
                    "{}: {} (taken as already undone)",
                    step.command(),
                    stderr(&out)
                );
                Ok(())
            } else {
                Err(step_error(
                    step,
                    format!("exited with {}: {}", out.status, stderr(&out)),
                ))
            }
        }
        Step::StopPod { namespace, name } => Ok(runtime::control::stop_pod(
            &state::dir_of(lab),
            namespace,
            name,
            DAEMON_TIMEOUT,
        )?),
        Step::StartPods => {
            runtime::control::reconcile(&state::dir_of(lab), &[], DAEMON_TIMEOUT)?;
            Ok(())
        }
        Step::ApplyPlan { plan, .. } => crate::reconcile::apply(lab, plan)
            .map(drop)
            .map_err(|e| Error::Apply(crate::error_chain(&e))),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// A `podlab exec` target in the grammar of `crate::target` (`POD`,
/// `NS/POD`, `pod/POD`, `node/NODE`, `external`, `lb`; names without a
/// namespace are in `default`), or `-n NS POD`.
pub fn exec_setup(plan: &Plan, at: &str) -> Result<runtime::PreparedExec, String> {
    use crate::observe::target::{source_of, From};
    let at = at.trim();
    let (ns, word) = match at.strip_prefix("-n ") {
        Some(rest) => match rest.trim().split_once(' ') {
            Some((ns, name)) => (ns.trim(), name.trim()),
            None => return Err(format!("`{at}`: expected `-n NAMESPACE POD`")),
        },
        None => ("default", at),
    };
    let from = source_of(plan, word, ns).map_err(|e| format!("{e} ({})", e.hint))?;
    Ok(match from {
        From::Node(n) => runtime::node_exec_setup(n),
        From::Client(c) => runtime::netns_exec_setup(&c.netns, &c.name),
        From::Pod(p) => runtime::pod_exec_setup(p),
    })
}

/// Run a command inside a pod, node or client, as `podlab exec` would (the
/// pod's `/etc` files and hostname included), and wait for it.
/// `stdin`, if given, is fed to the command.
pub fn exec(
    plan: &Plan,
    at: &str,
    argv: &[String],
    stdin: Option<&[u8]>,
) -> Result<Output, String> {
    let prepared = exec_setup(plan, at)?;
    let Some((program, rest)) = argv.split_first() else {
        return Err("no command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(rest)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("HOSTNAME", prepared.hostname_str());
    // SAFETY: `pre_exec` only makes raw syscalls on strings prepared before
    // the fork (no allocation, no locks), as the daemon does for pods.
    unsafe {
        cmd.pre_exec(move || prepared.pre_exec());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program} in {at}: {e}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(data)
            .map_err(|e| format!("cannot feed {program} in {at}: {e}"))?;
    }
    child
        .wait_with_output()
        .map_err(|e| format!("{program} in {at}: {e}"))
}

/// The lab file a running lab was made from, decoded: plan-level faults
/// change it and plan again.
pub fn lab_file_of(plan: &Plan) -> Result<crate::lab::LabFile, crate::lab::LabError> {
    if plan.source == crate::lab::DEMO_SOURCE {
        return crate::lab::parse(&plan.source, crate::lab::DEMO);
    }
    // Under the running lab's name: `exercise start --as` runs a lab
    // file under another name than its own.
    let mut file = crate::lab::load(std::path::Path::new(&plan.source))?;
    file.lab.name = plan.lab.clone();
    Ok(file)
}
