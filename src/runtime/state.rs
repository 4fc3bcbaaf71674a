//! The daemon's live table of pods and containers: written by the setup,
//! the supervisors and the echo servers, read by the control socket.
//!
//! One `std::sync::Mutex` guards it: every critical section is a few field
//! writes or one snapshot, never an `.await`, so a blocking lock is cheaper
//! than an async one and cannot be held across a suspension point.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::plan::{Plan, PodPlan, ProbeKind};

use super::status::{
    pod_phase, ready_column, ContainerState, ContainerStatus, DaemonStatus, PodStatus,
};

#[derive(Debug)]
pub(crate) struct Table {
    lab: String,
    started: u64,
    ready: bool,
    pods: Vec<PodEntry>,
    /// Bumped when a pod is deleted: the endpoints change even if no
    /// readiness did.
    generation: u64,
}

#[derive(Debug)]
struct PodEntry {
    namespace: String,
    name: String,
    node: String,
    ip: String,
    set_up: bool,
    started: Option<u64>,
    containers: Vec<ContainerStatus>,
    /// Per container, what its probes say beyond its state.
    gates: Vec<Gates>,
    /// Deleted from the lab while the daemon runs: no longer reported.
    removed: bool,
}

/// A container with a readiness probe is ready only once it passes, and
/// one with a startup probe only once that passed (`None`: no such probe).
#[derive(Debug, Clone, Copy, Default)]
struct Gates {
    readiness: Option<bool>,
    started: Option<bool>,
    /// A readiness probe with no initial delay whose first attempt `up`
    /// waits for, so that a healthy lab is Ready when `up` returns.
    awaited: bool,
}

impl Gates {
    fn ready(&self, c: &ContainerStatus) -> bool {
        c.state == ContainerState::Running
            && self.readiness.unwrap_or(true)
            && self.started.unwrap_or(true)
    }
}

/// Where a container sits in the table, so that updates need no lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub pod: usize,
    pub container: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Shared(
    Arc<Mutex<Table>>,
    Arc<tokio::sync::Notify>,
    /// Bumped on every change of the table, for any number of watchers
    /// (the API's watches); the `Notify` wakes one.
    Arc<tokio::sync::watch::Sender<u64>>,
);

impl Shared {
    pub fn new(plan: &Plan) -> Shared {
        let pods = plan.pods.iter().map(pod_entry).collect();
        Shared(
            Arc::new(Mutex::new(Table {
                lab: plan.lab.clone(),
                started: unix_now(),
                ready: false,
                pods,
                generation: 0,
            })),
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::watch::channel(0).0),
        )
    }

    /// Woken whenever a container's readiness may have changed.
    pub fn changed(&self) -> Arc<tokio::sync::Notify> {
        self.1.clone()
    }

    /// Changes whenever the table does.
    pub fn epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.2.subscribe()
    }

    fn bump(&self) {
        self.2.send_modify(|n| *n += 1);
    }

    /// Keys (`ns/name`) and IPs of pods that are not ready: a container
    /// not running, or the pod not set up yet.
    pub fn not_ready(&self) -> Vec<(String, String)> {
        let t = self.lock();
        t.pods
            .iter()
            .filter(|p| !p.removed)
            .filter(|p| !p.set_up || p.containers.iter().any(|c| !c.ready))
            .map(|p| (format!("{}/{}", p.namespace, p.name), p.ip.clone()))
            .collect()
    }

    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Mark a pod deleted; its index in the plan, if it was there.
    pub fn forget(&self, namespace: &str, name: &str) -> Option<usize> {
        let mut t = self.lock();
        let i = t
            .pods
            .iter()
            .position(|p| !p.removed && p.namespace == namespace && p.name == name)?;
        t.pods[i].removed = true;
        t.generation += 1;
        drop(t);
        self.1.notify_one();
        self.bump();
        Some(i)
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves plain data behind, still
        // worth reporting; refusing every later status would be worse.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The slot of a pod's container, by the pod's index in the plan.
    pub fn slot(&self, pod: usize, container: &str) -> Option<Slot> {
        let t = self.lock();
        let p = t.pods.get(pod)?;
        let c = p.containers.iter().position(|c| c.name == container)?;
        Some(Slot { pod, container: c })
    }

    pub fn update(&self, slot: Slot, f: impl FnOnce(&mut ContainerStatus)) {
        let mut t = self.lock();
        if let Some(c) = t
            .pods
            .get_mut(slot.pod)
            .and_then(|p| p.containers.get_mut(slot.container))
        {
            f(c);
        }
        if let Some(p) = t.pods.get_mut(slot.pod) {
            p.refresh(slot.container);
        }
        drop(t);
        self.1.notify_one();
        self.bump();
    }

    /// The echo servers of a pod are listening: its containers without a
    /// process have nothing else to wait for.
    pub fn ports_bound(&self, pod: usize) {
        let mut t = self.lock();
        if let Some(p) = t.pods.get_mut(pod) {
            for i in 0..p.containers.len() {
                let c = &mut p.containers[i];
                if c.process {
                    continue;
                }
                c.state = ContainerState::Running;
                c.started = Some(unix_now());
                p.refresh(i);
            }
        }
        drop(t);
        self.bump();
    }

    pub fn pod_set_up(&self, pod: usize) {
        let mut t = self.lock();
        if let Some(p) = t.pods.get_mut(pod) {
            p.set_up = true;
            p.started = Some(unix_now());
        }
        drop(t);
        self.bump();
    }

    /// A row for a pod started after the daemon: its index.
    pub fn add(&self, pod: &PodPlan) -> usize {
        let mut t = self.lock();
        t.pods.push(pod_entry(pod));
        t.generation += 1;
        let slot = t.pods.len() - 1;
        drop(t);
        self.1.notify_one();
        self.bump();
        slot
    }

    /// The pod's servers and processes were stopped on request: it is down
    /// and not ready, as a pod whose containers crashed.
    pub fn pod_stopped(&self, pod: usize) {
        let mut t = self.lock();
        if let Some(p) = t.pods.get_mut(pod) {
            for c in &mut p.containers {
                c.state = ContainerState::Error;
                c.ready = false;
                c.pid = None;
                c.message = Some("stopped (podlab stop-pod)".into());
            }
        }
        t.generation += 1;
        drop(t);
        self.1.notify_one();
        self.bump();
    }

    /// A probe's verdict on a container: readiness, or a startup probe
    /// that passed. A container (re)started waits for its probes again.
    pub fn probe_passed(&self, slot: Slot, readiness: bool, passed: bool) {
        let mut t = self.lock();
        let Some(p) = t.pods.get_mut(slot.pod) else {
            return;
        };
        let Some(g) = p.gates.get_mut(slot.container) else {
            return;
        };
        if readiness {
            g.readiness = g.readiness.map(|_| passed);
            g.awaited = false;
        } else {
            g.started = g.started.map(|_| passed);
        }
        let before = p.containers[slot.container].ready;
        p.refresh(slot.container);
        let changed = before != p.containers[slot.container].ready;
        drop(t);
        if changed {
            self.1.notify_one();
            self.bump();
        }
    }

    /// Pods (`NS/NAME`) with a container whose readiness probe has not
    /// had its first attempt yet (those with an initial delay excepted).
    pub fn awaiting_first_probe(&self) -> Vec<String> {
        let t = self.lock();
        t.pods
            .iter()
            .filter(|p| !p.removed && p.gates.iter().any(|g| g.awaited))
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect()
    }

    /// Whether a container's startup probe has passed (true without one).
    pub fn started(&self, slot: Slot) -> bool {
        let t = self.lock();
        t.pods
            .get(slot.pod)
            .and_then(|p| p.gates.get(slot.container))
            .is_none_or(|g| g.started.unwrap_or(true))
    }

    /// The container's running state and pid, for a probe deciding what
    /// to do.
    pub fn container(&self, slot: Slot) -> Option<ContainerStatus> {
        let t = self.lock();
        t.pods
            .get(slot.pod)?
            .containers
            .get(slot.container)
            .cloned()
    }

    pub fn set_ready(&self) {
        self.lock().ready = true;
    }

    pub fn snapshot(&self, pid: u32, rss_bytes: u64) -> DaemonStatus {
        let t = self.lock();
        DaemonStatus {
            lab: t.lab.clone(),
            pid,
            rss_bytes,
            started: t.started,
            ready: t.ready,
            pods: t
                .pods
                .iter()
                .filter(|p| !p.removed)
                .map(|p| {
                    let (phase, status) = pod_phase(&p.containers, p.set_up);
                    PodStatus {
                        namespace: p.namespace.clone(),
                        name: p.name.clone(),
                        node: p.node.clone(),
                        pod_ip: p.ip.clone(),
                        phase,
                        status,
                        ready: ready_column(&p.containers),
                        restarts: p.containers.iter().map(|c| c.restarts).sum(),
                        started: p.started,
                        containers: p.containers.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// The plan names containers only through their ports and processes; a
/// container with neither has nothing for podlab to run and is not listed.
fn pod_entry(pod: &PodPlan) -> PodEntry {
    let mut containers: Vec<ContainerStatus> = Vec::new();
    let mut entry = |name: &str| -> usize {
        if let Some(i) = containers.iter().position(|c| c.name == name) {
            return i;
        }
        containers.push(ContainerStatus {
            name: name.to_string(),
            state: ContainerState::ContainerCreating,
            ready: false,
            restarts: 0,
            exit_code: None,
            pid: None,
            ports: Vec::new(),
            process: false,
            started: None,
            message: None,
        });
        containers.len() - 1
    };
    for c in &pod.containers {
        entry(c);
    }
    let mut marks = Vec::new();
    for port in &pod.ports {
        let i = entry(&port.container);
        marks.push((i, Some(format!("{}/{}", port.port, port.protocol))));
    }
    for proc in &pod.processes {
        let i = entry(&proc.container);
        marks.push((i, None));
    }
    for (i, port) in marks {
        match port {
            Some(p) => containers[i].ports.push(p),
            None => containers[i].process = true,
        }
    }
    let gates = containers
        .iter()
        .map(|c| {
            let of = |kind| {
                pod.probes
                    .iter()
                    .find(|p| p.container == c.name && p.kind == kind)
            };
            let readiness = of(ProbeKind::Readiness);
            Gates {
                readiness: readiness.map(|_| false),
                started: of(ProbeKind::Startup).map(|_| false),
                awaited: readiness.is_some_and(|p| p.initial_delay_s == 0),
            }
        })
        .collect();
    PodEntry {
        gates,
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        node: pod.node.clone(),
        ip: pod.ip.to_string(),
        set_up: false,
        started: None,
        containers,
        removed: false,
    }
}

impl PodEntry {
    fn refresh(&mut self, container: usize) {
        let g = self.gates.get(container).copied().unwrap_or_default();
        if let Some(c) = self.containers.get_mut(container) {
            c.ready = g.ready(c);
        }
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
