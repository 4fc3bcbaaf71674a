//! Bringing a lab up and down: the order of the steps and what happens when
//! one fails. `cli/up.rs` and `cli/down.rs` only parse and print.

use std::fs::{File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::kernel::{self, apply::Progress, netns, procs, teardown};
use crate::plan::Plan;
use crate::state;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lab {0} is already up")]
    AlreadyUp(String),
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

/// Bring a planned lab up: state, kernel objects, daemon. On any failure
/// everything made so far is removed before the error is returned.
pub fn up(plan: &Plan, progress: &mut dyn FnMut(Progress), timeout: Duration) -> Result<(), Error> {
    if is_up(&plan.lab) {
        return Err(Error::AlreadyUp(plan.lab.clone()));
    }
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
            start_daemon(&plan.lab, timeout)
        })
        .and_then(|()| interrupted());
    if let Err(e) = result {
        let _ = down(&plan.lab);
        return Err(e);
    }
    Ok(())
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
    state::dir(lab).exists()
        || netns::Netns::exists(&format!("{lab}-net"))
        || !procs::daemon_pids(lab).is_empty()
}

fn start_daemon(lab: &str, timeout: Duration) -> Result<(), Error> {
    let dir = state::dir(lab);
    let log = |name: &str| -> Result<File, Error> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .map_err(|source| Error::State {
                lab: lab.into(),
                source,
            })
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::Daemon(format!("cannot find podlab itself: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg(procs::DAEMON_ARG)
        .arg(lab)
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
}

/// Remove a lab completely, from its state if there is one and from its
/// names when there is not. Never stops at the first error.
pub fn down(lab: &str) -> DownReport {
    let mut report = DownReport::default();
    let plan = state::load(lab).ok();
    if plan.is_some() {
        // A clean shutdown first, so that processes get SIGTERM.
        let _ = crate::runtime::request_shutdown(&state::dir(lab), Duration::from_secs(3));
    }
    teardown::stop_daemon(lab, Duration::from_secs(2));

    let mut names: Vec<String> = plan
        .as_ref()
        .map(|p| p.netns_names().into_iter().map(String::from).collect())
        .unwrap_or_default();
    // Without a plan (lost state), the lab's namespaces are found by name;
    // other labs' are left alone. With one, only its names are touched: a
    // user's own `<lab>-something` namespace is not the lab's.
    if plan.is_none() {
        let others: Vec<Plan> = state::labs()
            .iter()
            .filter(|l| l.as_str() != lab)
            .filter_map(|l| state::load(l).ok())
            .collect();
        let claimed = |n: &str| others.iter().any(|p| p.netns_names().contains(&n));
        for orphan in teardown::orphans(lab, &claimed) {
            if !names.contains(&orphan) {
                names.push(orphan);
            }
        }
    }
    names.retain(|n| netns::Netns::exists(n) || crate::kernel::apply::etc_dir(n).exists());
    report.namespaces = names.iter().filter(|n| netns::Netns::exists(n)).count();
    report.errors.extend(
        teardown::remove_namespaces(&names)
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

/// Every lab with a trace on this host: state, a daemon, or a `<lab>-net`
/// namespace (every lab has one, made first and removed last).
pub fn all_labs() -> Vec<String> {
    let mut labs = state::labs();
    labs.extend(procs::running_daemons().into_iter().map(|(l, _)| l));
    labs.extend(
        netns::list("")
            .into_iter()
            .filter_map(|n| n.strip_suffix("-net").map(String::from))
            .filter(|l| {
                crate::lab::is_dns1123_label(l) && looks_like_node_network(&format!("{l}-net"))
            }),
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
