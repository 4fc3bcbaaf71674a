//! Bringing a lab up and down: the order of the steps and what happens when
//! one fails. `cli/up.rs` and `cli/down.rs` only parse and print.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::kernel::{self, apply::Progress, netns, procs, teardown};
use crate::lock;
use crate::plan::Plan;
use crate::state::{self, LabName};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    BadName(#[from] state::BadLabName),
    #[error(transparent)]
    Lock(#[from] lock::Error),
    #[error("lab {0} is already up")]
    AlreadyUp(String),
    /// Another lab's name extends this one's, or this one extends it:
    /// `a-b-net` would be both lab `a-b`'s node network and a namespace of
    /// lab `a`, so neither `down` could tell whose it is.
    #[error("lab {lab} cannot run beside lab {other}: one name is the other's followed by '-', so their namespace names can collide")]
    PrefixConflict { lab: String, other: String },
    /// Names this lab would create that exist already (someone else's).
    #[error("lab {lab} would create {} that already {}: {}", plural(names.len()), if names.len() == 1 { "exists" } else { "exist" }, names.join(", "))]
    Exists { lab: String, names: Vec<String> },
    #[error("cannot save the state of lab {lab}: {source}")]
    State {
        lab: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Kernel(#[from] kernel::Error),
    #[error("the lab daemon did not start: {0}")]
    Daemon(String),
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// The fix, where it is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::BadName(_) => Some(state::LAB_NAME_RULE.to_string()),
            Error::Lock(_) => Some("wait for it to finish, or `sudo podlab down LAB`".into()),
            Error::PrefixConflict { lab, other } => Some(format!(
                "name this lab differently in metadata.name, or `sudo podlab down {other}` before bringing {lab} up"
            )),
            Error::Exists { lab, names } => {
                let first = names[0].split(' ').next().unwrap_or_default();
                Some(match state::lab_of_netns(first) {
                    Some(owner) => format!(
                        "{first} is lab {owner}'s: `sudo podlab down {owner}` first, or name this lab differently"
                    ),
                    None if names.iter().all(|n| n.contains("/etc/netns")) => format!(
                        "leftovers of an earlier lab {lab}: `sudo podlab down {lab}` removes them"
                    ),
                    None => format!(
                        "they are not lab {lab}'s and were left alone: if {first} is yours, remove it (`sudo ip netns del {first}`) or name this lab differently in metadata.name; `sudo podlab down {lab}` removes an earlier lab {lab}'s leftovers"
                    ),
                })
            }
            _ => None,
        }
    }
}

fn plural(n: usize) -> String {
    if n == 1 {
        "a namespace".into()
    } else {
        format!("{n} namespaces")
    }
}

/// Set by SIGINT/SIGTERM while `up` runs: it stops at the next step and
/// removes what it made, instead of dying half-way.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn catch_interrupts() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

fn interrupted() -> Result<(), Error> {
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Bring a planned lab up: state, kernel objects, daemon. Refused before
/// anything is made when the lab is up, when another lab's name could share
/// its namespace names, or when a namespace it would make exists. On any
/// later failure what this run made, and only that, is removed before the
/// error is returned.
pub fn up(plan: &Plan, progress: &mut dyn FnMut(Progress), timeout: Duration) -> Result<(), Error> {
    let lab = LabName::parse(&plan.lab)?;
    let lock = lock::acquire(&lab, "up")?;
    if is_up(&lab) {
        return Err(Error::AlreadyUp(plan.lab.clone()));
    }
    let result = make(&lab, plan, progress, timeout);
    if result.is_err() && !is_up(&lab) {
        // Nothing of the lab is left: neither is its lock file.
        lock.remove_file();
    }
    result
}

fn make(
    lab: &LabName,
    plan: &Plan,
    progress: &mut dyn FnMut(Progress),
    timeout: Duration,
) -> Result<(), Error> {
    check_collisions(lab, plan)?;
    kernel::nft::require()?;
    catch_interrupts();
    state::create(plan).map_err(|source| Error::State {
        lab: plan.lab.clone(),
        source,
    })?;
    if let Some(text) = source_text(plan) {
        // Best effort: only `scale` and `delete svc|netpol` need it, and
        // they say so when it is missing.
        if let Err(e) = state::save_source(&plan.lab, &plan.source, &text) {
            tracing::warn!("cannot save the lab file in the state: {e}");
        }
    }
    let result = kernel::apply::build(plan, progress)
        .map_err(Error::from)
        .and_then(|()| interrupted())
        .and_then(|()| {
            progress(Progress::Step("pods' servers and processes"));
            start_daemon(lab, timeout)
        })
        .and_then(|()| interrupted());
    if let Err(e) = result {
        for err in roll_back(lab, plan).errors {
            tracing::warn!("rolling back lab {lab}: {err}");
        }
        return Err(e);
    }
    Ok(())
}

/// Refuse a lab whose namespaces could be another's: a running lab whose
/// name extends this one's or is extended by it, or any namespace (or
/// `/etc/netns` entry) of the plan that exists already.
fn check_collisions(lab: &LabName, plan: &Plan) -> Result<(), Error> {
    for other in all_labs() {
        if other != *lab && (lab.prefixes(&other) || other.prefixes(lab)) {
            return Err(Error::PrefixConflict {
                lab: lab.to_string(),
                other: other.to_string(),
            });
        }
    }
    let mut names: Vec<String> = Vec::new();
    for n in plan.netns_names() {
        netns::check_name(n)?;
        if !lab.prefixes(n) {
            return Err(Error::Exists {
                lab: lab.to_string(),
                names: vec![format!("{n} (not named {lab}-...)")],
            });
        }
        if netns::Netns::path(n).exists() {
            names.push(n.to_string());
        } else if kernel::apply::etc_dir(n).exists() {
            names.push(format!("{n} (its /etc/netns/{n} entry is left)"));
        }
    }
    if names.is_empty() {
        Ok(())
    } else {
        Err(Error::Exists {
            lab: lab.to_string(),
            names,
        })
    }
}

/// Undo a failed `up`: its daemon, the namespaces this process created
/// (with their `/etc/netns` files), the state. A namespace of the plan that
/// this run did not create is someone else's, and stays.
fn roll_back(lab: &LabName, plan: &Plan) -> DownReport {
    let mut report = DownReport::default();
    let _ = crate::runtime::request_shutdown(&state::dir(lab), Duration::from_secs(3));
    teardown::stop_daemon(lab, Duration::from_secs(2));
    let planned = plan.netns_names();
    let mine: Vec<String> = netns::created_here()
        .into_iter()
        .filter(|n| planned.contains(&n.as_str()))
        .collect();
    report.namespaces = mine.len();
    report.errors.extend(
        teardown::remove_namespaces(&mine)
            .iter()
            .map(|e| crate::error_chain(e)),
    );
    if let Err(e) = state::remove(lab) {
        report
            .errors
            .push(format!("remove {}: {e}", state::dir(lab).display()));
    }
    report
}

/// The text of the lab file a plan was made from, where it can be read.
fn source_text(plan: &Plan) -> Option<String> {
    if plan.source == crate::lab::DEMO_SOURCE {
        return Some(crate::lab::DEMO.to_string());
    }
    std::fs::read_to_string(&plan.source).ok()
}

/// A lab counts as up when any trace of it is left: state, daemon, or its
/// node network namespace. `up` refuses then, and `down` cleans it.
pub fn is_up(lab: &str) -> bool {
    let Ok(lab) = LabName::parse(lab) else {
        return false;
    };
    state::dir(&lab).exists()
        || netns::Netns::exists(&format!("{lab}-net"))
        || !procs::daemon_pids(&lab).is_empty()
}

fn start_daemon(lab: &LabName, timeout: Duration) -> Result<(), Error> {
    let dir = state::dir(lab);
    let log = |name: &str| -> Result<File, Error> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .map_err(|source| Error::State {
                lab: lab.to_string(),
                source,
            })
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::Daemon(format!("cannot find podlab itself: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg(procs::DAEMON_ARG)
        .arg(lab.as_str())
        .stdin(Stdio::null())
        .stdout(log("daemon.log")?)
        .stderr(log("daemon.log")?)
        .env(
            "PODLAB_LOG",
            std::env::var("PODLAB_LOG").unwrap_or_else(|_| "podlab=info".into()),
        );
    // SAFETY: setsid is async-signal-safe; the daemon leaves the terminal's
    // session so that a Ctrl-C in the shell that ran `up` does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Daemon(format!("cannot start it: {e}")))?;

    let start = Instant::now();
    loop {
        if dir.join("ready").exists() {
            return Ok(());
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("failed")) {
            return Err(Error::Daemon(text.trim().to_string()));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Daemon(format!(
                "it exited ({status}); its log: {}",
                dir.join("daemon.log").display()
            )));
        }
        if interrupted().is_err() {
            return Err(Error::Interrupted);
        }
        if start.elapsed() > timeout {
            return Err(Error::Daemon(format!(
                "not ready after {}s; its log: {}",
                timeout.as_secs(),
                dir.join("daemon.log").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What `down` did.
#[derive(Debug, Default)]
pub struct DownReport {
    pub namespaces: usize,
    pub errors: Vec<String>,
    /// Namespaces named like the lab's that podlab did not make, found
    /// when the lab had no plan: not removed.
    pub left_alone: Vec<String>,
}

/// Remove a lab completely, from its state if there is one and from its
/// names when there is not. Never stops at the first error. Waits for the
/// command that holds the lab's lock, and cancels an `up` (which then
/// removes what it made) rather than wait for it to finish.
pub fn down(lab: &str) -> DownReport {
    let mut report = DownReport::default();
    let lab = match LabName::parse(lab) {
        Ok(l) => l,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    let lock = match lock_for_down(&lab) {
        Ok(l) => l,
        Err(e) => {
            report.errors.push(crate::error_chain(&e));
            return report;
        }
    };
    let plan = state::load(&lab).ok();
    if plan.is_some() {
        // A clean shutdown first, so that processes get SIGTERM.
        let _ = crate::runtime::request_shutdown(&state::dir(&lab), Duration::from_secs(3));
    }
    teardown::stop_daemon(&lab, Duration::from_secs(2));

    // With a plan, only its names are touched: a user's own
    // `<lab>-something` namespace is not the lab's. Without one (lost
    // state), the lab's namespaces and `/etc/netns` entries are found by
    // name, minus those another lab claims.
    let mut names: Vec<String> = match &plan {
        Some(p) => p.netns_names().into_iter().map(String::from).collect(),
        None => {
            report.left_alone = teardown::not_ours(&lab);
            teardown::orphans(&lab, &claimed_by_others(&lab))
        }
    };
    names.retain(|n| netns::Netns::exists(n) || crate::kernel::apply::etc_dir(n).exists());
    report.namespaces = names.iter().filter(|n| netns::Netns::exists(n)).count();
    report.errors.extend(
        teardown::remove_namespaces(&names)
            .iter()
            .map(|e| crate::error_chain(e)),
    );
    if let Err(e) = state::remove(&lab) {
        report
            .errors
            .push(format!("remove {}: {e}", state::dir(&lab).display()));
    }
    if report.errors.is_empty() {
        lock.remove_file();
    }
    report
}

/// Whether anything of the lab is left for `down` to remove: state, a
/// daemon, its node network, a command changing it, or namespaces and
/// `/etc/netns` entries by its name that no other lab claims.
pub fn has_trace(lab: &LabName) -> bool {
    is_up(lab)
        || lock::holder(lab).is_some()
        || !teardown::orphans(lab, &claimed_by_others(lab)).is_empty()
}

/// The lab's lock for `down`: an `up` that holds it is told to stop (it
/// rolls back on SIGTERM), anything else is waited for.
fn lock_for_down(lab: &LabName) -> Result<lock::LabLock, lock::Error> {
    lock::acquire_with(lab, "down", lock::WAIT, &mut |holder| {
        let cancel = holder.command == "up" && holder.pid.is_some_and(is_podlab_up);
        match holder.pid {
            Some(pid) if cancel => {
                eprintln!("cancelling {holder} of lab {lab}: it removes what it made first");
                procs::signal(pid, nix::sys::signal::Signal::SIGTERM);
            }
            _ => eprintln!(
                "waiting for {holder}, which is changing lab {lab} (at most {}s)",
                lock::WAIT.as_secs()
            ),
        }
    })
}

/// Whether `pid` is a podlab `up` (a pid read from a lock file may have
/// been reused by now).
fn is_podlab_up(pid: i32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
        return false;
    };
    let ours = std::env::current_exe().ok();
    let same_binary =
        ours.as_deref() == Some(exe.as_path()) || exe.file_name().is_some_and(|n| n == "podlab");
    same_binary && cmdline.split(|b| *b == 0).any(|a| a == b"up")
}

/// Whether a namespace name belongs to another lab: named in another lab's
/// saved plan, or carrying the prefix of a longer lab name with a trace on
/// this host (`a-b-net` is lab `a-b`'s, not lab `a`'s).
fn claimed_by_others(lab: &LabName) -> impl Fn(&str) -> bool {
    let others: Vec<LabName> = all_labs().into_iter().filter(|l| l != lab).collect();
    let plans: Vec<Plan> = others.iter().filter_map(|l| state::load(l).ok()).collect();
    let longer: Vec<LabName> = others.into_iter().filter(|l| lab.prefixes(l)).collect();
    move |n: &str| {
        plans.iter().any(|p| p.netns_names().contains(&n)) || longer.iter().any(|l| l.prefixes(n))
    }
}

/// `/etc/netns` entries podlab wrote whose namespace is gone and that no
/// running lab's plan names: what `down --all` removes after the labs,
/// since a lab whose state and namespaces are gone has no name left to
/// find them by. Returns how many were removed, and the errors.
pub fn remove_stray_etc() -> (usize, Vec<String>) {
    let plans: Vec<Plan> = state::labs()
        .iter()
        .filter_map(|l| state::load(l).ok())
        .collect();
    let strays: Vec<String> = teardown::stray_etc_dirs()
        .into_iter()
        .filter(|n| !plans.iter().any(|p| p.netns_names().contains(&n.as_str())))
        .collect();
    let errors = teardown::remove_etc_dirs(&strays)
        .iter()
        .map(|e| crate::error_chain(e))
        .collect();
    (strays.len(), errors)
}

/// Every lab with a trace on this host: state, a daemon, or a `<lab>-net`
/// namespace (every lab has one, made first and removed last).
pub fn all_labs() -> Vec<LabName> {
    let mut labs = state::labs();
    labs.extend(
        procs::running_daemons()
            .into_iter()
            .filter_map(|(l, _)| LabName::parse(&l).ok()),
    );
    labs.extend(
        netns::list("")
            .into_iter()
            .filter_map(|n| n.strip_suffix("-net").map(String::from))
            .filter_map(|l| LabName::parse(&l).ok())
            .filter(|l| looks_like_node_network(&format!("{l}-net"))),
    );
    labs.sort();
    labs.dedup();
    labs
}

/// Whether a namespace holds podlab's node network (`br0` and node uplinks
/// `nd-*`): `--all` must not take someone else's `foo-net` for a lab.
fn looks_like_node_network(name: &str) -> bool {
    let dev = netns::run_in(name, || {
        std::fs::read_to_string("/proc/thread-self/net/dev")
    });
    let Ok(Ok(dev)) = dev else { return false };
    let names: Vec<&str> = dev
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim()))
        .collect();
    names.contains(&crate::plan::NODE_BRIDGE) && names.iter().any(|n| n.starts_with("nd-"))
}
