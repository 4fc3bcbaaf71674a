//! Containers' probes, run as kubelet runs them: from outside the
//! container, every `periodSeconds`, each attempt bounded by
//! `timeoutSeconds`; `successThreshold` passes in a row make a container
//! ready, `failureThreshold` failures in a row make it unready (readiness)
//! or get it restarted (liveness, startup). Readiness feeds the same table
//! kube-proxy's rules and DNS follow, so a failing pod leaves its Services.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::grpc::{self, ServingStatus};
use super::process::PreparedExec;
use super::state::{Shared, Slot};
use super::status::ContainerState;
use crate::plan::{ProbeAction, ProbeKind, ProbePlan};

/// What one probe needs of its pod.
pub(crate) struct Target {
    /// `ns/name`: whose echo's health a restart resets.
    pub key: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub exec: Arc<PreparedExec>,
}

/// How often a probe looks again while its container is not running yet
/// or waits for its startup probe: kubelet would wait a whole period, but
/// a lab is expected to be ready the moment its servers are.
const POLL: Duration = Duration::from_millis(20);

/// Probe until the pod stops.
pub(crate) async fn run(
    probe: ProbePlan,
    target: Arc<Target>,
    slot: Slot,
    shared: Shared,
    mut stop: watch::Receiver<bool>,
) {
    let period = Duration::from_secs(u64::from(probe.period_s.max(1)));
    let initial_delay = Duration::from_secs(u64::from(probe.initial_delay_s));
    let mut this_run = None;
    let (mut passes, mut fails, mut attempts) = (0u32, 0u32, 0u32);
    let mut next = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let Some(c) = shared.container(slot) else {
            return;
        };
        if c.state != ContainerState::Running {
            next = POLL;
            continue;
        }
        // A new run of the container is probed afresh, after its initial
        // delay, as kubelet does.
        let run = Some((c.started, c.restarts));
        if this_run != run {
            if this_run.is_some() {
                reset(&probe, &shared, slot);
            }
            this_run = run;
            (passes, fails, attempts) = (0, 0, 0);
            if !initial_delay.is_zero() {
                next = initial_delay;
                continue;
            }
        }
        // Liveness and readiness wait for a startup probe to pass; a
        // startup probe is done once it has.
        let started = shared.started(slot);
        if probe.kind != ProbeKind::Startup && !started {
            next = POLL;
            continue;
        }
        next = period;
        if probe.kind == ProbeKind::Startup && started {
            continue;
        }
        if attempt(&probe, &target).await {
            (passes, fails) = (passes + 1, 0);
        } else {
            (passes, fails) = (0, fails + 1);
        }
        let first = attempts == 0;
        attempts += 1;
        verdict(&probe, &target, &shared, slot, &c, (passes, fails), first);
    }
}

fn reset(probe: &ProbePlan, shared: &Shared, slot: Slot) {
    match probe.kind {
        ProbeKind::Readiness => shared.probe_passed(slot, true, false),
        ProbeKind::Startup => shared.probe_passed(slot, false, false),
        ProbeKind::Liveness => {}
    }
}

fn verdict(
    probe: &ProbePlan,
    target: &Target,
    shared: &Shared,
    slot: Slot,
    c: &super::status::ContainerStatus,
    (passes, fails): (u32, u32),
    first: bool,
) {
    match probe.kind {
        ProbeKind::Readiness => {
            if passes >= probe.success_threshold {
                shared.probe_passed(slot, true, true);
            } else if fails >= probe.failure_threshold || first {
                // A container is unready until its probe first passes;
                // the first attempt's verdict is what `up` waits for.
                shared.probe_passed(slot, true, false);
            }
        }
        ProbeKind::Startup if passes >= 1 => shared.probe_passed(slot, false, true),
        ProbeKind::Startup | ProbeKind::Liveness if fails >= probe.failure_threshold => {
            restart(probe, target, shared, slot, c);
        }
        _ => {}
    }
}

/// Kubelet kills a container that fails its liveness (or startup) probe
/// and starts it again. A process is killed and its supervisor restarts
/// it; podlab's echo stands in for an image and restarts at once, healthy
/// again (`health`), which the restart count shows.
fn restart(
    probe: &ProbePlan,
    target: &Target,
    shared: &Shared,
    slot: Slot,
    c: &super::status::ContainerStatus,
) {
    tracing::info!(pod = %target.key, container = %probe.container, kind = ?probe.kind, "probe failed: restarting the container");
    match c.pid {
        Some(pid) => {
            // SAFETY: a signal to the pid the supervisor recorded for this
            // container, which it reaps.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        None => {
            super::health::set(&target.key, true);
            shared.update(slot, |c| {
                c.restarts += 1;
                c.exit_code = Some(137);
                c.started = Some(super::state::unix_now());
            });
        }
    }
}

/// One attempt, within the probe's timeout.
async fn attempt(probe: &ProbePlan, target: &Arc<Target>) -> bool {
    let timeout = Duration::from_secs(u64::from(probe.timeout_s.max(1)));
    match &probe.action {
        ProbeAction::Exec { argv } => exec(argv, &target.exec, timeout).await,
        ProbeAction::Grpc { port, service } => {
            let Some(s) = connect_async(target, *port, timeout).await else {
                return false;
            };
            let authority = format!("{}:{port}", target.ip);
            let service = service.as_deref().unwrap_or("");
            match grpc::check(s, &authority, service, timeout).await {
                Ok(ServingStatus::Serving) => true,
                Ok(other) => {
                    tracing::debug!(pod = %target.key, port, "gRPC health: {other:?}");
                    false
                }
                Err(e) => {
                    tracing::debug!(pod = %target.key, port, "gRPC health: {e}");
                    false
                }
            }
        }
        action => {
            let action = action.clone();
            let target = target.clone();
            let work = tokio::task::spawn_blocking(move || blocking(&action, &target, timeout));
            matches!(tokio::time::timeout(timeout * 2, work).await, Ok(Ok(true)))
        }
    }
}

/// A connection from the pod's own namespace to its address (so a
/// NetworkPolicy does not stand between kubelet and its pod, as on most
/// clusters).
fn connect(target: &Target, port: u16, timeout: Duration) -> Option<TcpStream> {
    let addr = SocketAddr::from((target.ip, port));
    crate::kernel::netns::run_in(&target.netns, || TcpStream::connect_timeout(&addr, timeout))
        .ok()?
        .ok()
}

/// The same, for async use: a socket stays in the namespace it was made in.
async fn connect_async(
    target: &Arc<Target>,
    port: u16,
    timeout: Duration,
) -> Option<tokio::net::TcpStream> {
    let t = target.clone();
    let s = tokio::task::spawn_blocking(move || connect(&t, port, timeout))
        .await
        .ok()??;
    s.set_nonblocking(true).ok()?;
    tokio::net::TcpStream::from_std(s).ok()
}

fn blocking(action: &ProbeAction, target: &Target, timeout: Duration) -> bool {
    let get = |port: u16, path: &str, headers: &[(String, String)]| {
        connect(target, port, timeout)
            .is_some_and(|s| http_ok(s, target.ip, port, path, headers, timeout))
    };
    match action {
        ProbeAction::Tcp { port } => connect(target, *port, timeout).is_some(),
        // What `grpc_health_probe` or `wget` in the image would have asked
        // of the application, asked of its echo.
        ProbeAction::EchoStandIn { ports, .. } => match ports.split_first() {
            Some((first, rest)) => {
                get(*first, "/", &[]) && rest.iter().all(|p| connect(target, *p, timeout).is_some())
            }
            None => true,
        },
        ProbeAction::Http {
            port,
            path,
            headers,
            https: false,
        } => get(*port, path, headers),
        // The echo speaks no TLS: an HTTPS probe checks the connection.
        ProbeAction::Http { port, .. } => connect(target, *port, timeout).is_some(),
        ProbeAction::Grpc { .. } | ProbeAction::Exec { .. } => false,
    }
}

/// Kubernetes' rule: a status from 200 to 399 passes.
fn http_ok(
    mut s: TcpStream,
    ip: Ipv4Addr,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> bool {
    use std::io::{Read, Write};
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.30\r\nAccept: */*\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    status_passes(&head[..n])
}

fn status_passes(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut words = text.split_whitespace();
    let proto_ok = words.next().is_some_and(|p| p.starts_with("HTTP/1."));
    let code: Option<u16> = words.next().and_then(|c| c.parse().ok());
    proto_ok && code.is_some_and(|c| (200..400).contains(&c))
}

/// An exec probe runs in the pod as its processes do; exit 0 passes.
async fn exec(argv: &[String], prep: &Arc<PreparedExec>, timeout: Duration) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let prep = prep.clone();
    // SAFETY: `pre_exec` only makes raw syscalls on prepared strings.
    unsafe {
        cmd.pre_exec(move || prep.pre_exec());
    }
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::status_passes;

    #[test]
    fn http_statuses_as_kubelet_reads_them() {
        assert!(status_passes(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_passes(b"HTTP/1.0 302 Found\r\n"));
        assert!(!status_passes(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!status_passes(b"HTTP/1.1 503 Service Unavailable"));
        assert!(!status_passes(b"SSH-2.0-OpenSSH"));
        assert!(!status_passes(b""));
    }
}
