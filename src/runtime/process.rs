//! Containers' `command`/`args` as real processes inside their pod, and the
//! kubelet-like supervision that restarts them.
//!
//! "Inside the pod" means: the pod's network namespace, plus a private mount
//! namespace where the pod's `/etc/hosts` and `/etc/resolv.conf` (written by
//! `up` under `/etc/netns/<netns>/`, as `ip netns exec` expects them) are
//! bind-mounted over the host's, and a UTS namespace carrying the pod's
//! hostname. `pod_pre_exec` does exactly that between fork and exec, and is
//! shared with `podlab exec`, so a learner's shell and a container see the
//! same pod.

use std::ffi::{CStr, CString};
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::kernel::netns::Netns;
use crate::lab::RestartPolicy;
use crate::plan::{NodePlan, Plan, PodPlan, ProcessPlan};

use super::state::{unix_now, Shared, Slot};
use super::status::ContainerState;

/// Everything `pod_pre_exec` needs, prepared before the fork: the child may
/// not allocate (another thread of the parent could have held the allocator
/// lock at the moment of the fork).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedExec {
    /// `/run/netns/<netns>`.
    pub netns_path: CString,
    /// `(source, target)` bind mounts, only those whose files exist.
    pub binds: Vec<(CString, CString)>,
    pub hostname: CString,
}

impl PreparedExec {
    /// Enter the prepared namespaces. Async-signal-safe: callable between
    /// fork and exec, or in-process just before `execvp`.
    pub fn pre_exec(&self) -> io::Result<()> {
        pod_pre_exec(&self.netns_path, &self.binds, &self.hostname)
    }

    /// The hostname as a string, for `HOSTNAME=`.
    pub fn hostname_str(&self) -> String {
        self.hostname.to_string_lossy().into_owned()
    }
}

/// Files of `/etc/netns/<netns>/` that stand in for the host's in a pod.
const POD_ETC_FILES: [&str; 2] = ["hosts", "resolv.conf"];

/// Prepare entering a pod: its namespace, its `/etc` files, its hostname.
pub fn pod_exec_setup(pod: &PodPlan) -> PreparedExec {
    let dir = Path::new("/etc/netns").join(&pod.netns);
    let binds = POD_ETC_FILES
        .iter()
        .filter_map(|f| {
            let src = dir.join(f);
            let dst = Path::new("/etc").join(f);
            // A bind needs both ends; a pod without its own file simply
            // sees the host's, as under `ip netns exec`.
            (src.exists() && dst.exists()).then(|| (path_cstring(&src), path_cstring(&dst)))
        })
        .collect();
    PreparedExec {
        netns_path: path_cstring(&Netns::path(&pod.netns)),
        binds,
        hostname: cstring(&pod.hostname),
    }
}

/// Prepare entering a node: its namespace and its name as hostname.
pub fn node_exec_setup(node: &NodePlan) -> PreparedExec {
    netns_exec_setup(&node.netns, &node.name)
}

/// Prepare entering any lab namespace (the `external` and `lb` clients).
pub fn netns_exec_setup(netns: &str, hostname: &str) -> PreparedExec {
    PreparedExec {
        netns_path: path_cstring(&Netns::path(netns)),
        binds: Vec::new(),
        hostname: cstring(hostname),
    }
}

fn cstring(s: &str) -> CString {
    // Names come from a validated plan and hold no NUL; dropping one is
    // better than refusing to run.
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

fn path_cstring(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    let bytes: Vec<u8> = p
        .as_os_str()
        .as_bytes()
        .iter()
        .copied()
        .filter(|b| *b != 0)
        .collect();
    CString::new(bytes).unwrap_or_default()
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Move the calling thread into a pod: network namespace, then a private
/// mount namespace with the pod's `/etc` files bound in, then a UTS
/// namespace with the pod's hostname.
///
/// Only raw syscalls on prepared strings: no allocation, no locks, so it is
/// safe in a `pre_exec` hook of a multi-threaded parent. `io::Error` from an
/// errno does not allocate. In-process (for `podlab exec`), call it on the
/// thread that will `execvp`, since namespaces entered with setns/unshare
/// belong to that thread.
pub fn pod_pre_exec(
    netns_path: &CString,
    binds: &[(CString, CString)],
    hostname: &CString,
) -> io::Result<()> {
    enter_netns(netns_path)?;
    // SAFETY: plain syscalls; every pointer is a NUL-terminated string that
    // outlives the call.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS))?;
        // Without this, the bind mounts below would propagate back to the
        // host's (shared) mount namespace and replace its /etc/hosts.
        check(libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_SLAVE | libc::MS_REC,
            std::ptr::null(),
        ))?;
        remount_sys();
        for (src, dst) in binds {
            check(libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
        }
        check(libc::sethostname(
            hostname.as_ptr(),
            hostname.as_bytes().len(),
        ))?;
    }
    Ok(())
}

/// Enter a node (or client) namespace: the same as a pod without `/etc`
/// files, hostname = the node's name.
pub fn node_pre_exec(netns_path: &CString, hostname: &CString) -> io::Result<()> {
    pod_pre_exec(netns_path, &[], hostname)
}

fn enter_netns(path: &CStr) -> io::Result<()> {
    // SAFETY: open/setns/close on a NUL-terminated path and the fd just
    // opened; the fd is closed on every path.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let ret = libc::setns(fd, libc::CLONE_NEWNET);
        let err = io::Error::last_os_error();
        libc::close(fd);
        if ret < 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// Mount a fresh sysfs over `/sys`, as `ip netns exec` does, so that
/// `/sys/class/net` lists the pod's interfaces rather than the host's.
/// Best effort: where sysfs cannot be mounted (a read-only /sys in a
/// container host) the process still runs, seeing the host's /sys.
unsafe fn remount_sys() {
    let _ = libc::mount(
        c"sysfs".as_ptr(),
        c"/sys".as_ptr(),
        c"sysfs".as_ptr(),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        std::ptr::null(),
    );
}

/// CrashLoopBackOff, faster than kubelet's (10 s to 5 min, reset after
/// 10 min) because a lab is watched by a learner waiting for it.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// The delay before each restart: 1 s, doubling to 30 s, back to 1 s once a
/// run lasted 60 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_INITIAL,
        }
    }
}

impl Backoff {
    /// The delay before restarting a process that ran for `ran_for`.
    pub fn on_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= BACKOFF_RESET_AFTER {
            self.next = BACKOFF_INITIAL;
        }
        let delay = self.next;
        self.next = (delay * 2).min(BACKOFF_MAX);
        delay
    }
}

/// Whether a container that exited with `code` is started again.
pub fn should_restart(policy: RestartPolicy, code: i32) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => code != 0,
        RestartPolicy::Never => false,
    }
}

/// The exit code as Kubernetes reports it: 128 + signal when killed.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Exit code reported when the process could not be started at all, as a
/// shell reports "command not found".
const SPAWN_FAILED: i32 = 127;

/// Time a process gets between SIGTERM and SIGKILL on shutdown.
pub const TERMINATION_GRACE: Duration = Duration::from_secs(2);

/// One container's process, ready to be (re)started.
#[derive(Debug)]
pub(crate) struct Container {
    /// `namespace/name` of the pod.
    pub pod: String,
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub policy: RestartPolicy,
    pub prep: Arc<PreparedExec>,
    pub slot: Slot,
    /// The daemon's own RLIMIT_NOFILE before it raised it: children get
    /// the limit a process would normally start with.
    pub nofile: Option<libc::rlimit>,
}

impl Container {
    pub fn new(
        plan: &Plan,
        pod: &PodPlan,
        process: &ProcessPlan,
        logs: &Path,
        prep: Arc<PreparedExec>,
        slot: Slot,
        nofile: Option<libc::rlimit>,
    ) -> Container {
        Container {
            pod: pod.key(),
            name: process.container.clone(),
            argv: process.argv.clone(),
            // kubelet's order: the services' variables, then the
            // container's own `env`, which wins on a clash.
            env: crate::plan::env::service_env(plan, pod)
                .into_iter()
                .chain(process.env.iter().cloned())
                .collect(),
            log: log_path(logs, pod, &process.container),
            policy: pod.restart_policy,
            prep,
            slot,
            nofile,
        }
    }

    /// Start the process once.
    pub fn spawn(&self) -> io::Result<Child> {
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for key in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("HOSTNAME", self.prep.hostname_str());
        let prep = self.prep.clone();
        let nofile = self.nofile;
        // SAFETY: the hook only makes raw syscalls on data prepared above.
        unsafe {
            cmd.pre_exec(move || {
                // The daemon may die without a chance to clean up (SIGKILL
                // from `down`); its containers must not outlive it. The
                // signal follows the spawning thread, a runtime worker that
                // lives as long as the daemon.
                check(libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                ))?;
                if let Some(limit) = nofile {
                    let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                }
                prep.pre_exec()
            });
        }
        cmd.spawn()
    }
}

pub(crate) fn log_path(logs: &Path, pod: &PodPlan, container: &str) -> PathBuf {
    logs.join(format!("{}_{}_{}.log", pod.namespace, pod.name, container))
}

/// The log of a container's previous run: `X.log` → `X.previous.log`.
pub(crate) fn previous_log(log: &Path) -> PathBuf {
    log.with_extension("previous.log")
}

/// Record a start (or a failure to start) in the table.
pub(crate) fn record_start(shared: &Shared, c: &Container, started: &io::Result<Child>) {
    match started {
        Ok(child) => {
            let pid = child.id();
            tracing::info!(pod = %c.pod, container = %c.name, pid, "process started");
            shared.update(c.slot, |s| {
                s.state = ContainerState::Running;
                s.pid = pid;
                s.started = Some(unix_now());
                s.message = None;
            });
        }
        Err(e) => {
            tracing::warn!(pod = %c.pod, container = %c.name, "cannot start {:?}: {e}", c.argv);
            shared.update(c.slot, |s| {
                s.pid = None;
                s.message = Some(format!("cannot start {}: {e}", c.argv.join(" ")));
            });
        }
    }
}

/// Watch a container's process and restart it per its pod's policy, until
/// shutdown, when the process gets SIGTERM and, after the grace, SIGKILL.
pub(crate) async fn supervise(
    c: Container,
    shared: Shared,
    first: io::Result<Child>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    let mut current = first;
    loop {
        let began = Instant::now();
        let code = match &mut current {
            Ok(child) => {
                let status = tokio::select! {
                    s = child.wait() => s,
                    _ = super::stopped(&mut shutdown) => {
                        terminate(child, &c).await;
                        return;
                    }
                };
                match status {
                    Ok(s) => exit_code(s),
                    Err(e) => {
                        // The child can no longer be waited for; treat it as
                        // gone rather than loop on the error.
                        tracing::warn!(pod = %c.pod, container = %c.name, "wait failed: {e}");
                        -1
                    }
                }
            }
            Err(_) => SPAWN_FAILED,
        };
        let restart = should_restart(c.policy, code);
        tracing::info!(pod = %c.pod, container = %c.name, code, restart, "process exited");
        if !restart {
            shared.update(c.slot, |s| {
                s.pid = None;
                s.exit_code = Some(code);
                s.state = if code == 0 {
                    ContainerState::Completed
                } else {
                    ContainerState::Error
                };
            });
            return;
        }
        let delay = backoff.on_exit(began.elapsed());
        shared.update(c.slot, |s| {
            s.pid = None;
            s.exit_code = Some(code);
            s.state = ContainerState::CrashLoopBackOff;
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = super::stopped(&mut shutdown) => return,
        }
        shared.update(c.slot, |s| s.restarts += 1);
        // What the run that ended wrote is `logs --previous`, as kubelet
        // keeps the last instance's log.
        let _ = std::fs::rename(&c.log, previous_log(&c.log));
        current = c.spawn();
        record_start(&shared, &c, &current);
    }
}

async fn terminate(child: &mut Child, c: &Container) {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    let code = match tokio::time::timeout(TERMINATION_GRACE, child.wait()).await {
        Ok(s) => s.map(exit_code).ok(),
        Err(_) => {
            tracing::info!(pod = %c.pod, container = %c.name, "no exit after SIGTERM, killing");
            let _ = child.start_kill();
            child.wait().await.map(exit_code).ok()
        }
    };
    tracing::info!(pod = %c.pod, container = %c.name, code, "process stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(10);
        let delays: Vec<u64> = (0..8).map(|_| b.on_exit(quick).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.on_exit(Duration::from_secs(59)).as_secs(), 30);
        assert_eq!(b.on_exit(Duration::from_secs(60)).as_secs(), 1);
        assert_eq!(b.on_exit(quick).as_secs(), 2);
    }

    #[test]
    fn restart_policy() {
        use RestartPolicy::*;
        assert!(should_restart(Always, 0));
        assert!(should_restart(Always, 1));
        assert!(!should_restart(OnFailure, 0));
        assert!(should_restart(OnFailure, 137));
        assert!(!should_restart(Never, 1));
        assert!(!should_restart(Never, 0));
    }

    #[test]
    fn exit_codes_follow_kubernetes() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
    }

    #[test]
    fn node_setup_has_no_binds() {
        let p = netns_exec_setup("demo-external", "external");
        assert_eq!(p.netns_path.to_str().unwrap(), "/run/netns/demo-external");
        assert!(p.binds.is_empty());
        assert_eq!(p.hostname_str(), "external");
        assert_eq!(cstring("a\0b").to_str().unwrap(), "ab");
    }
}
