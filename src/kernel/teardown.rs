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
use crate::state::LabName;

/// Where `ip netns exec` and podlab's pods find their `/etc` files.
const ETC_NETNS: &str = "/etc/netns";

/// The first line of every `hosts` file podlab writes (`PodPlan::hosts_file`):
/// how `down --all` knows an `/etc/netns` entry is podlab's.
const PODLAB_HOSTS: &str = "# Kubernetes-managed hosts file (written by podlab).";

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
    let mut errors = Vec::new();
    let names: Vec<&String> = names
        .iter()
        .filter(|n| match netns::check_name(n) {
            Ok(()) => true,
            Err(e) => {
                errors.push(e);
                false
            }
        })
        .collect();
    let paths: Vec<PathBuf> = names.iter().map(|n| Netns::path(n)).collect();
    let path_refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let pids = procs::in_namespaces(&path_refs);
    for &pid in &pids {
        procs::signal(pid, Signal::SIGKILL);
    }
    wait_gone(&pids, Duration::from_secs(2));

    // Pods first, the node network last: the reverse of the making.
    for name in names.iter().rev() {
        if let Err(e) = netns::remove(name) {
            errors.push(e);
        }
    }
    let names: Vec<String> = names.into_iter().cloned().collect();
    errors.extend(remove_etc_dirs(&names));
    errors
}

/// Remove `/etc/netns/<name>` for each name (checked first: a name is
/// never `..` or a path). Missing is success.
pub fn remove_etc_dirs(names: &[String]) -> Vec<Error> {
    let mut errors = Vec::new();
    for name in names {
        if let Err(e) = netns::check_name(name) {
            errors.push(e);
            continue;
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
    let _ = std::fs::remove_dir(ETC_NETNS);
    errors
}

/// The lab's namespaces, for when its plan is lost: every namespace named
/// `<lab>-...` that podlab marked as made (`netns::made_by_podlab`), and
/// every `/etc/netns/<lab>-...` entry podlab wrote (its `hosts` says so),
/// except those claimed by other labs. `/etc` outlives a reboot, so an
/// entry without its namespace is still the lab's to remove.
pub fn orphans(lab: &LabName, claimed_by_others: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = netns::list(&format!("{lab}-"))
        .into_iter()
        .filter(|n| netns::made_by_podlab(n))
        .collect();
    names.extend(
        etc_entries()
            .into_iter()
            .filter(|n| lab.prefixes(n) && written_by_podlab(n)),
    );
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| lab.prefixes(n) && !claimed_by_others(n))
        .collect()
}

/// Namespaces named like the lab's that podlab did not make: left alone
/// without a plan, and said so.
pub fn not_ours(lab: &LabName) -> Vec<String> {
    netns::list(&format!("{lab}-"))
        .into_iter()
        .filter(|n| lab.prefixes(n) && !netns::made_by_podlab(n))
        .collect()
}

fn written_by_podlab(name: &str) -> bool {
    std::fs::read_to_string(apply::etc_dir(name).join("hosts"))
        .is_ok_and(|t| t.starts_with(PODLAB_HOSTS))
}

/// Names under `/etc/netns` that can be namespace names.
fn etc_entries() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(ETC_NETNS) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| netns::check_name(n).is_ok())
        .collect()
}

/// `/etc/netns` entries that podlab wrote (their `hosts` file says so)
/// and whose namespace no longer exists: leftovers of a lab that nothing
/// else names any more. An entry beside a live namespace is never one.
pub fn stray_etc_dirs() -> Vec<String> {
    etc_entries()
        .into_iter()
        .filter(|n| !Netns::exists(n) && written_by_podlab(n))
        .collect()
}
