//! The daemon's running pods: each pod's sockets, servers and processes,
//! started and stopped one pod at a time so that a running lab can change
//! (`podlab apply`, `delete pod`, the faults that stop a pod).
//!
//! Like aardvark-dns's listeners, the running set is reconciled against the
//! wanted one (the plan on disk): what the plan has and is not running
//! starts, what runs and the plan no longer has stops.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::echo::{self, EchoInfo};
use super::probes;
use super::process::{self, Container};
use super::state::Shared;
use super::{dns, wanted_ports, Error};
use crate::lab::Protocol;
use crate::plan::{Plan, PodPlan, PodRole};

/// What a reconcile did, for the CLI to print.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
}

struct Running {
    /// The pod's row in the status table.
    slot: usize,
    stop: watch::Sender<bool>,
    /// The pod as it was started: a change to what the daemon serves in it
    /// restarts it.
    pod: PodPlan,
    /// Stopped on request (`stop`), kept so that status shows it down.
    stopped: bool,
}

pub(crate) struct Pods {
    shared: Shared,
    logs: PathBuf,
    nofile: Option<libc::rlimit>,
    shutdown: watch::Receiver<bool>,
    running: Mutex<HashMap<String, Running>>,
    supervisors: Mutex<Vec<JoinHandle<()>>>,
}

/// Whether the daemon's servers or processes in a pod depend on what
/// changed: labels, for one, do not.
fn serves_differently(a: &PodPlan, b: &PodPlan) -> bool {
    a.netns != b.netns
        || a.ip != b.ip
        || a.ports != b.ports
        || a.processes != b.processes
        || a.probes != b.probes
        || a.role != b.role
        || a.restart_policy != b.restart_policy
        || a.hostname != b.hostname
}

impl Pods {
    pub fn new(
        shared: Shared,
        logs: PathBuf,
        nofile: Option<libc::rlimit>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Pods> {
        Arc::new(Pods {
            shared,
            logs,
            nofile,
            shutdown,
            running: Mutex::new(HashMap::new()),
            supervisors: Mutex::new(Vec::new()),
        })
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn supervisors(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.supervisors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start the pods of `plan` at the given plan indices, each with its
    /// row in the status table: bind every socket first (from a thread
    /// that visits each pod's namespace), then serve, then start processes.
    pub async fn start(&self, plan: &Plan, which: &[(usize, usize)]) -> Result<(), Error> {
        if *self.shutdown.borrow() {
            return Err(Error::Interrupted);
        }
        let slots: HashMap<usize, usize> = which.iter().copied().collect();
        let all = wanted_ports(plan);
        let wanted: Vec<echo::Wanted> = which
            .iter()
            .filter_map(|(i, _)| all.get(*i).cloned())
            .collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("podlab-netns".into())
            .spawn(move || {
                let _ = tx.send(echo::bind_all(&wanted));
            })
            .map_err(|source| Error::Io {
                what: "start the socket-binding thread".into(),
                source,
            })?;
        let bound = rx.await.map_err(|_| Error::BindThread)??;

        let mut stops = HashMap::new();
        {
            let mut running = self.running();
            for &(i, slot) in which {
                let Some(pod) = plan.pods.get(i) else {
                    continue;
                };
                let (stop, _) = watch::channel(false);
                stops.insert(i, stop.subscribe());
                running.insert(
                    pod.key(),
                    Running {
                        slot,
                        stop,
                        pod: pod.clone(),
                        stopped: false,
                    },
                );
            }
        }

        for b in bound {
            let (Some(pod), Some(&slot), Some(stop)) =
                (plan.pods.get(b.pod), slots.get(&b.pod), stops.get(&b.pod))
            else {
                continue;
            };
            let info = Arc::new(EchoInfo {
                pod: pod.name.clone(),
                namespace: pod.namespace.clone(),
                node: pod.node.clone(),
                pod_ip: pod.ip,
            });
            let register = |port: u16, protocol: Protocol| {
                let pod = pod.key();
                move |source| Error::Bind {
                    pod,
                    port,
                    protocol,
                    source,
                }
            };
            // The coredns pod answers DNS on its ports instead of the echo.
            let zone = (pod.role == PodRole::Dns).then(|| {
                tracing::info!(pod = %pod.key(), "serving cluster DNS");
                dns::served_zone(plan)
            });
            for (port, l) in b.tcp {
                let l = echo::tcp_to_tokio(l).map_err(register(port, Protocol::Tcp))?;
                match &zone {
                    Some(zone) => {
                        tokio::spawn(dns::serve_tcp(l, zone.clone(), pod.key(), stop.clone()))
                    }
                    None => {
                        if let Some(c) = pod.ports.iter().find(|x| x.port == port) {
                            let log = process::log_path(&self.logs, pod, &c.container);
                            super::access::register(pod.key(), port, log);
                        }
                        tokio::spawn(echo::serve_tcp(l, info.clone(), port, stop.clone()))
                    }
                };
            }
            for (port, s) in b.udp {
                let s = echo::udp_to_tokio(s).map_err(register(port, Protocol::Udp))?;
                match &zone {
                    Some(zone) => {
                        tokio::spawn(dns::serve_udp(s, zone.clone(), pod.key(), stop.clone()))
                    }
                    None => tokio::spawn(echo::serve_udp(s, info.clone(), port, stop.clone())),
                };
            }
            // A started echo is a fresh application: healthy.
            super::health::set(&pod.key(), true);
            self.shared.ports_bound(slot);
        }

        for &(i, slot) in which {
            let (Some(pod), Some(stop)) = (plan.pods.get(i), stops.get(&i)) else {
                continue;
            };
            let prep = Arc::new(process::pod_exec_setup(pod));
            if !pod.processes.is_empty() {
                for p in &pod.processes {
                    let Some(cslot) = self.shared.slot(slot, &p.container) else {
                        continue;
                    };
                    let c =
                        Container::new(plan, pod, p, &self.logs, prep.clone(), cslot, self.nofile);
                    let first = c.spawn();
                    process::record_start(&self.shared, &c, &first);
                    let task = tokio::spawn(process::supervise(
                        c,
                        self.shared.clone(),
                        first,
                        stop.clone(),
                    ));
                    self.supervisors().push(task);
                }
            }
            self.start_probes(pod, slot, &prep, stop);
            self.shared.pod_set_up(slot);
        }
        Ok(())
    }

    fn start_probes(
        &self,
        pod: &PodPlan,
        slot: usize,
        prep: &Arc<process::PreparedExec>,
        stop: &watch::Receiver<bool>,
    ) {
        if pod.probes.is_empty() {
            return;
        }
        let target = Arc::new(probes::Target {
            key: pod.key(),
            netns: pod.netns.clone(),
            ip: pod.ip,
            exec: prep.clone(),
        });
        for p in &pod.probes {
            let Some(cslot) = self.shared.slot(slot, &p.container) else {
                continue;
            };
            tokio::spawn(probes::run(
                p.clone(),
                target.clone(),
                cslot,
                self.shared.clone(),
                stop.clone(),
            ));
        }
    }

    /// Stop a pod's servers and processes and keep it, down, in the table:
    /// a crashed pod. Its namespace stays. Returns whether it was running.
    pub fn stop(&self, namespace: &str, name: &str) -> bool {
        let key = format!("{namespace}/{name}");
        let mut running = self.running();
        let Some(r) = running.get_mut(&key) else {
            return false;
        };
        if r.stopped {
            return true;
        }
        r.stopped = true;
        r.stop.send_replace(true);
        self.shared.pod_stopped(r.slot);
        true
    }

    /// Stop serving a pod deleted from the lab: its sockets close, its
    /// processes get SIGTERM, it leaves the table.
    pub fn forget(&self, namespace: &str, name: &str) -> bool {
        let key = format!("{namespace}/{name}");
        let removed = self.running().remove(&key);
        if let Some(r) = &removed {
            r.stop.send_replace(true);
        }
        self.shared.forget(namespace, name).is_some() || removed.is_some()
    }

    pub fn stop_all(&self) {
        for r in self.running().values() {
            r.stop.send_replace(true);
        }
    }

    /// Make the running pods those of `plan`: start the missing ones, stop
    /// the ones it no longer has, restart the stopped ones, the ones whose
    /// servers would differ and those in `restart` (their namespace was
    /// made anew).
    pub async fn reconcile(
        &self,
        plan: &Plan,
        restart: &HashSet<String>,
    ) -> Result<Reconciled, Error> {
        let mut done = Reconciled::default();
        let wanted: HashMap<String, &PodPlan> = plan.pods.iter().map(|p| (p.key(), p)).collect();
        let mut to_stop = Vec::new();
        {
            let running = self.running();
            for (key, r) in running.iter() {
                match wanted.get(key) {
                    None => {
                        to_stop.push((r.pod.namespace.clone(), r.pod.name.clone()));
                        done.stopped.push(key.clone());
                    }
                    Some(p)
                        if r.stopped || restart.contains(key) || serves_differently(&r.pod, p) =>
                    {
                        to_stop.push((r.pod.namespace.clone(), r.pod.name.clone()));
                        done.restarted.push(key.clone());
                    }
                    Some(_) => {}
                }
            }
        }
        for (ns, name) in &to_stop {
            self.forget(ns, name);
        }
        // A restarted pod's old sockets must be closed before its new ones
        // bind the same ports.
        if !done.restarted.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let start: Vec<(usize, usize)> = {
            let running = self.running();
            plan.pods
                .iter()
                .enumerate()
                .filter(|(_, p)| !running.contains_key(&p.key()))
                .map(|(i, p)| (i, self.shared.add(p)))
                .collect()
        };
        for (i, _) in &start {
            let key = plan.pods[*i].key();
            if !done.restarted.contains(&key) {
                done.started.push(key);
            }
        }
        self.start(plan, &start).await?;
        done.started.sort();
        done.stopped.sort();
        done.restarted.sort();
        Ok(done)
    }

    /// Wait for every process to stop after `stop_all`, at most `grace`.
    pub async fn join_supervisors(&self, grace: Duration) {
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.supervisors());
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        if tokio::time::timeout(grace, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            tracing::warn!("some processes did not stop in time");
            for a in aborts {
                a.abort();
            }
        }
    }
}
