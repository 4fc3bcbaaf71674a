//! Processes that belong to a lab: the daemon, found by its command line,
//! and anything running inside one of the lab's namespaces, found by the
//! namespace's inode. Neither needs the lab's state, so `down` still finds
//! them when the state directory is gone or the daemon was killed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The hidden subcommand the daemon runs as: `podlab __daemon <lab>`.
pub const DAEMON_ARG: &str = "__daemon";

fn pids() -> impl Iterator<Item = i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
}

/// Pids of the daemon of `lab` (normally one).
pub fn daemon_pids(lab: &str) -> Vec<i32> {
    pids()
        .filter(|pid| {
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.len() >= 3 && args[1] == DAEMON_ARG.as_bytes() && args[2] == lab.as_bytes()
        })
        .collect()
}

/// Labs whose daemon is running, by command line.
pub fn running_daemons() -> Vec<(String, i32)> {
    pids()
        .filter_map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            (args.len() >= 3 && args[1] == DAEMON_ARG.as_bytes())
                .then(|| (String::from_utf8_lossy(args[2]).into_owned(), pid))
        })
        .collect()
}

/// Pids of processes whose network namespace is one of `netns_paths`.
pub fn in_namespaces(netns_paths: &[&Path]) -> Vec<i32> {
    let inodes: Vec<(u64, u64)> = netns_paths
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let me = std::process::id() as i32;
    pids()
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| inodes.contains(&(m.dev(), m.ino())))
                .unwrap_or(false)
        })
        .collect()
}

/// Send `sig`; a process that is already gone is not an error.
pub fn signal(pid: i32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid), sig);
}

pub fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}
