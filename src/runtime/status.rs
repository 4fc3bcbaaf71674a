//! What the daemon reports over its control socket, and how a pod's kubectl
//! STATUS is derived from its containers.
//!
//! These types are the wire format between the daemon and the CLI: both
//! sides of `podlab get pods` agree on them through serde, so a field added
//! here must stay optional for an older daemon's answer to still decode.

use serde::{Deserialize, Serialize};

/// The whole answer to `{"op":"status"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub lab: String,
    pub pid: u32,
    /// Resident memory of the daemon, from `/proc/self/statm`.
    pub rss_bytes: u64,
    /// When the daemon started, unix seconds.
    pub started: u64,
    /// Every pod has had its sockets bound and its processes spawned.
    pub ready: bool,
    pub pods: Vec<PodStatus>,
}

impl DaemonStatus {
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodStatus> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodStatus {
    pub namespace: String,
    pub name: String,
    pub node: String,
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    /// Kubernetes' `status.phase`: what `-o json` prints.
    pub phase: Phase,
    /// kubectl's STATUS column: `Running`, `CrashLoopBackOff`, `Error`,
    /// `Completed`, `ContainerCreating`.
    pub status: String,
    /// `ready/total` containers, as kubectl's READY column.
    pub ready: String,
    pub restarts: u32,
    /// When the pod finished starting, unix seconds; `None` while pending.
    pub started: Option<u64>,
    pub containers: Vec<ContainerStatus>,
}

impl PodStatus {
    /// Kubernetes' Ready condition, the one rule for "ready" everywhere
    /// (endpoints, `get endpoints`, `diagnose`, faults): the pod is in
    /// phase Running and every container is ready.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Running && self.containers.iter().all(|c| c.ready)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    pub state: ContainerState,
    pub ready: bool,
    pub restarts: u32,
    /// Exit code of the last run (128 + signal when killed by one), as
    /// kubectl's `lastState.terminated.exitCode`.
    pub exit_code: Option<i32>,
    /// Pid of the running process, if the container has one running.
    pub pid: Option<u32>,
    /// The container's declared ports, e.g. `80/TCP`: served by podlab's
    /// echo servers unless the container runs a process of its own.
    pub ports: Vec<String>,
    /// The container runs a process (`command`/`args`) rather than only
    /// podlab's echo servers.
    pub process: bool,
    /// When the current run started, unix seconds.
    pub started: Option<u64>,
    /// Why the container is not running, where there is more to say than
    /// the state (e.g. the spawn error).
    pub message: Option<String>,
}

/// A container's state, named as kubectl names it in the STATUS column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Not set up yet: sockets not bound, process not spawned.
    ContainerCreating,
    Running,
    /// Exited 0 and will not be restarted.
    Completed,
    /// Exited non-zero (or failed to start) and will not be restarted.
    Error,
    /// Exited, and waiting out the back-off before the next restart.
    CrashLoopBackOff,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::ContainerCreating => "ContainerCreating",
            ContainerState::Running => "Running",
            ContainerState::Completed => "Completed",
            ContainerState::Error => "Error",
            ContainerState::CrashLoopBackOff => "CrashLoopBackOff",
        }
    }
}

/// The pod's phase and STATUS string from its containers.
///
/// Phase follows Kubernetes: Pending until every container has started,
/// Running while any runs or will be restarted, then Succeeded or Failed.
/// The string follows kubectl's printer, where a waiting or terminated
/// reason wins over the phase, and a completed container beside a running
/// one still reads `Running`. `set_up` is false until the daemon has finished
/// the pod; a pod whose containers have nothing to run (no ports, no
/// process) is Running from then on, as its image would be.
pub fn pod_phase(containers: &[ContainerStatus], set_up: bool) -> (Phase, String) {
    use ContainerState::*;
    let any = |s: ContainerState| containers.iter().any(|c| c.state == s);
    if !set_up || any(ContainerCreating) {
        let status = if set_up || !containers.is_empty() {
            "ContainerCreating"
        } else {
            "Pending"
        };
        return (Phase::Pending, status.to_string());
    }
    let phase = if containers.is_empty() || any(Running) || any(CrashLoopBackOff) {
        Phase::Running
    } else if containers.iter().all(|c| c.state == Completed) {
        Phase::Succeeded
    } else {
        Phase::Failed
    };
    let status = if any(CrashLoopBackOff) {
        "CrashLoopBackOff"
    } else if any(Error) {
        "Error"
    } else if phase == Phase::Succeeded {
        "Completed"
    } else {
        "Running"
    };
    (phase, status.to_string())
}

/// kubectl's READY column: `ready/total`.
pub fn ready_column(containers: &[ContainerStatus]) -> String {
    let ready = containers.iter().filter(|c| c.ready).count();
    format!("{ready}/{}", containers.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(state: ContainerState) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            state,
            ready: state == ContainerState::Running,
            restarts: 0,
            exit_code: None,
            pid: None,
            ports: vec![],
            process: true,
            started: None,
            message: None,
        }
    }

    fn phase(states: &[ContainerState], set_up: bool) -> (Phase, String) {
        let cs: Vec<_> = states.iter().map(|s| c(*s)).collect();
        pod_phase(&cs, set_up)
    }

    #[test]
    fn phases_follow_kubernetes() {
        use ContainerState::*;
        let p = |s: &[ContainerState]| phase(s, true);
        assert_eq!(
            phase(&[Running], false),
            (Phase::Pending, "ContainerCreating".into())
        );
        assert_eq!(phase(&[], false), (Phase::Pending, "Pending".into()));
        assert_eq!(p(&[]), (Phase::Running, "Running".into()));
        assert_eq!(p(&[Running]), (Phase::Running, "Running".into()));
        assert_eq!(p(&[Running, ContainerCreating]).0, Phase::Pending);
        assert_eq!(
            p(&[CrashLoopBackOff]),
            (Phase::Running, "CrashLoopBackOff".into())
        );
        assert_eq!(
            p(&[Running, CrashLoopBackOff]),
            (Phase::Running, "CrashLoopBackOff".into())
        );
        assert_eq!(p(&[Completed]), (Phase::Succeeded, "Completed".into()));
        assert_eq!(
            p(&[Completed, Completed]),
            (Phase::Succeeded, "Completed".into())
        );
        assert_eq!(p(&[Error]), (Phase::Failed, "Error".into()));
        assert_eq!(p(&[Completed, Error]), (Phase::Failed, "Error".into()));
        // A sidecar that finished beside a server that still runs.
        assert_eq!(p(&[Completed, Running]), (Phase::Running, "Running".into()));
        assert_eq!(p(&[Error, Running]), (Phase::Running, "Error".into()));
    }

    #[test]
    fn ready_counts_running_containers() {
        use ContainerState::*;
        let cs = vec![c(Running), c(CrashLoopBackOff), c(Completed)];
        assert_eq!(ready_column(&cs), "1/3");
        assert_eq!(ready_column(&[]), "0/0");
    }

    #[test]
    fn status_round_trips_through_json() {
        let s = DaemonStatus {
            lab: "demo".into(),
            pid: 42,
            rss_bytes: 1 << 20,
            started: 1_700_000_000,
            ready: true,
            pods: vec![PodStatus {
                namespace: "default".into(),
                name: "pod-1".into(),
                node: "node-1".into(),
                pod_ip: "10.244.1.2".into(),
                phase: Phase::Running,
                status: "Running".into(),
                ready: "1/1".into(),
                restarts: 0,
                started: Some(1_700_000_001),
                containers: vec![c(ContainerState::Running)],
            }],
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""podIP":"10.244.1.2""#), "{json}");
        assert!(json.contains(r#""phase":"Running""#), "{json}");
        let back: DaemonStatus = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(back.pod("default", "pod-1").is_some());
    }
}
