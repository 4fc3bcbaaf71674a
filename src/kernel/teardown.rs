//! Remove a lab's kernel objects, whatever state they are in.
//!
//! Works from names alone: the lab's processes are found by command line and
//! by namespace, its namespaces by their `<lab>-` prefix. Never stops at the
//! first error; "already gone" is success.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::netns::{self, Netns};
use super::{apply, procs, Error};

/// Stop the lab's daemon: SIGTERM, then SIGKILL after `grace`.
pub fn stop_daemon(lab: &str, grace: Duration) {
    let pids = procs::daemon_pids(lab);
    for &pid in &pids {
        procs::signal(pid, Signal::SIGTERM);
    }
    wait_gone(&pids, grace);
    for &pid in &pids {
        procs::signal(pid, Signal::SIGKILL);
    }
    wait_gone(&pids, Duration::from_millis(500));
}

fn wait_gone(pids: &[i32], limit: Duration) {
    let start = Instant::now();
    while pids.iter().any(|&p| procs::alive(p)) && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Remove the namespaces `names` (and their `/etc/netns` files), after
/// killing every process still inside them.
pub fn remove_namespaces(names: &[String]) -> Vec<Error> {
    let paths: Vec<PathBuf> = names.iter().map(|n| Netns::path(n)).collect();
    let path_refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let pids = procs::in_namespaces(&path_refs);
    for &pid in &pids {
        procs::signal(pid, Signal::SIGKILL);
    }
    wait_gone(&pids, Duration::from_secs(2));

    let mut errors = Vec::new();
    // Pods first, the node network last: the reverse of the making.
    for name in names.iter().rev() {
        if let Err(e) = netns::remove(name) {
            errors.push(e);
        }
        let etc = apply::etc_dir(name);
        match std::fs::remove_dir_all(&etc) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => errors.push(Error::Io {
                what: format!("remove {}", etc.display()),
                source,
            }),
        }
    }
    // Only when empty: another lab, or iproute2, may still use it.
    let _ = std::fs::remove_dir("/etc/netns");
    errors
}

/// Namespaces that look like the lab's, for when its plan is lost: every
/// pinned namespace named `<lab>-...`, except those claimed by other labs.
pub fn orphans(lab: &str, claimed_by_others: &dyn Fn(&str) -> bool) -> Vec<String> {
    netns::list(&format!("{lab}-"))
        .into_iter()
        .filter(|n| !claimed_by_others(n))
        .collect()
}
