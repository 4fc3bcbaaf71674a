//! The per-lab daemon: every pod's echo servers and processes, and the
//! control socket the CLI talks to.
//!
//! `podlab up` forks and detaches, then the child calls `run_daemon`, which
//! builds the one tokio runtime of the lab (after the fork: a runtime's
//! threads do not survive one). Setup binds every pod's sockets from a
//! dedicated thread that visits each pod's network namespace, spawns every
//! process, then writes `state_dir/ready` (or `state_dir/failed`), which the
//! CLI polls for.

pub mod access;
pub mod control;
pub mod dns;
pub mod echo;
mod grpc;
mod health;
pub mod limits;
pub mod pods;
mod probes;
pub mod process;
mod state;
pub mod status;

pub use control::{forget, ping, query_status, reconcile, request_shutdown, stop_pod};
pub use pods::Reconciled;
pub use process::{
    netns_exec_setup, node_exec_setup, node_pre_exec, pod_exec_setup, pod_pre_exec, PreparedExec,
};
pub use status::{ContainerState, ContainerStatus, DaemonStatus, Phase, PodStatus};

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::lab::Protocol;
use crate::plan::{Plan, PLAN_VERSION};

use echo::Wanted;
use state::Shared;

pub const PLAN_FILE: &str = "plan.json";
/// Written (atomically, holding the daemon's pid) once every pod is up.
pub const READY_FILE: &str = "ready";
/// Written (atomically, holding the error) when setup failed.
pub const FAILED_FILE: &str = "failed";
pub const LOG_DIR: &str = "logs";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read plan {path}: {source}")]
    ReadPlan {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode plan {path}: {source}")]
    DecodePlan {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("plan {path} has format version {found}, this podlab reads {PLAN_VERSION}\n  hint: bring the lab down and up again with this podlab")]
    PlanVersion { path: PathBuf, found: u32 },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pod {pod}: {source}")]
    Netns {
        pod: String,
        // Boxed: the kernel's error is large, and every `Result` of this
        // module would carry its size.
        #[source]
        source: Box<crate::kernel::Error>,
    },
    #[error("pod {pod}: cannot bind {port}/{protocol}: {source}")]
    Bind {
        pod: String,
        port: u16,
        protocol: Protocol,
        #[source]
        source: std::io::Error,
    },
    #[error("the socket-binding thread died")]
    BindThread,
    #[error("stopped by a signal before the lab was ready")]
    Interrupted,
    #[error("the lab's daemon is not running (nothing listens on {path})")]
    NotRunning { path: PathBuf },
    #[error("control socket {path}: {source}")]
    Control {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {path}: no answer in time")]
    Timeout { path: PathBuf },
    #[error("the daemon answered nonsense: {0}")]
    Protocol(#[source] serde_json::Error),
    #[error("the daemon refused: {0}")]
    Daemon(String),
}

/// Run the daemon of the lab whose state is in `state_dir`, until SIGTERM,
/// SIGINT or a `shutdown` request. Called in the detached child; returns
/// when everything it started has stopped.
pub fn run_daemon(state_dir: &Path) -> Result<(), Error> {
    run(state_dir, true)
}

fn run(state_dir: &Path, handle_signals: bool) -> Result<(), Error> {
    // A marker left by an earlier daemon of this lab would answer the CLI's
    // poll before this one has done anything.
    for f in [READY_FILE, FAILED_FILE] {
        let _ = std::fs::remove_file(state_dir.join(f));
    }
    let mut reached_ready = false;
    let result = load_plan(state_dir).and_then(|plan| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            // Blocking work is rare here (file writes); a small pool keeps
            // the daemon's footprint small.
            .max_blocking_threads(4)
            .thread_name("podlab-daemon")
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                what: "start the async runtime".into(),
                source,
            })?;
        let r = rt.block_on(daemon(state_dir, plan, handle_signals, &mut reached_ready));
        // Connections still open (a `shutdown` client waiting for EOF among
        // them) close here, after every process has stopped.
        rt.shutdown_timeout(Duration::from_secs(1));
        r
    });
    if let Err(e) = &result {
        tracing::error!("{e}");
        if !reached_ready {
            if let Err(w) = write_atomic(&state_dir.join(FAILED_FILE), &format!("{e}\n")) {
                tracing::error!("cannot record the failure: {w}");
            }
        }
    }
    result
}

pub fn load_plan(state_dir: &Path) -> Result<Plan, Error> {
    let path = state_dir.join(PLAN_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadPlan {
        path: path.clone(),
        source,
    })?;
    // Check the version before the shape, so that a newer plan reports
    // "version" rather than whichever field changed.
    #[derive(serde::Deserialize)]
    struct Version {
        version: u32,
    }
    if let Ok(v) = serde_json::from_str::<Version>(&text) {
        if v.version != PLAN_VERSION {
            return Err(Error::PlanVersion {
                path,
                found: v.version,
            });
        }
    }
    serde_json::from_str(&text).map_err(|source| Error::DecodePlan { path, source })
}

/// Write `path` so that a reader sees nothing or the whole content.
pub fn write_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

async fn daemon(
    state_dir: &Path,
    plan: Plan,
    handle_signals: bool,
    reached_ready: &mut bool,
) -> Result<(), Error> {
    let started = Instant::now();
    let (stop, shutdown) = watch::channel(false);
    if handle_signals {
        watch_signals(stop.clone())?;
    }
    // Before any server: every answer to a grader's challenge is signed.
    let id =
        crate::probe::identity::Identity::load_or_create(state_dir, &plan.lab).map_err(|e| {
            Error::Io {
                what: "make the lab's identity key".into(),
                source: std::io::Error::other(e),
            }
        })?;
    crate::probe::identity::install(id);
    let shared = Shared::new(&plan);
    let logs = state_dir.join(LOG_DIR);
    std::fs::create_dir_all(&logs).map_err(|source| Error::Io {
        what: format!("create {}", logs.display()),
        source,
    })?;
    let nofile = raise_nofile_limit();
    // Sized from the raised limit, before the first server counts on them.
    let limits = limits::init(limits::current_nofile());
    let caps = limits.caps();
    tracing::info!(
        nofile = limits::current_nofile(),
        descriptors = caps.descriptors,
        total = caps.total,
        per_listener = caps.per_listener,
        per_client = caps.per_client,
        header_timeout_s = caps.header_timeout.as_secs(),
        idle_timeout_s = caps.idle_timeout.as_secs(),
        "connection caps"
    );

    let pods = pods::Pods::new(shared.clone(), logs.clone(), nofile, shutdown.clone());

    // First, so that `get pods` can show pods as ContainerCreating while
    // the rest comes up.
    let control = control::bind(state_dir)?;
    let mut servers = JoinSet::new();
    servers.spawn(control::serve(
        control,
        control::Control {
            shared: shared.clone(),
            pods: pods.clone(),
            stop: stop.clone(),
            state_dir: state_dir.to_path_buf(),
        },
    ));
    servers.spawn(limits::housekeeping(limits, shutdown.clone()));
    start_api(state_dir, &plan.lab, &shared, &shutdown, &mut servers).await;
    // The daemon's stop reaches every pod, whenever it was started.
    {
        let pods = pods.clone();
        let mut shutdown = shutdown.clone();
        servers.spawn(async move {
            stopped(&mut shutdown).await;
            pods.stop_all();
        });
    }

    let all: Vec<(usize, usize)> = (0..plan.pods.len()).map(|i| (i, i)).collect();
    let setup = pods.start(&plan, &all).await;
    if setup.is_ok() {
        first_probes(&plan, &shared).await;
    }
    let setup = setup.and_then(|()| {
        if *shutdown.borrow() {
            return Err(Error::Interrupted);
        }
        shared.set_ready();
        Ok(())
    });
    // `up` loaded the whole plan's rules: with every pod ready, that is the
    // view to change from.
    if setup.is_ok() && shared.not_ready().is_empty() {
        LOADED.assume(&plan);
    }
    // A pod that failed at once must not be an endpoint when `up` returns.
    let setup = match setup {
        Ok(()) if !shared.not_ready().is_empty() => {
            resync(state_dir, &shared).await.map_err(|e| Error::Io {
                what: "sync endpoints".into(),
                source: std::io::Error::other(e),
            })
        }
        other => other,
    };
    let setup = setup.and_then(|()| {
        write_atomic(
            &state_dir.join(READY_FILE),
            &format!("{}\n", std::process::id()),
        )
        .map_err(|source| Error::Io {
            what: format!("write {}", state_dir.join(READY_FILE).display()),
            source,
        })
    });
    match &setup {
        Ok(()) => {
            *reached_ready = true;
            servers.spawn(sync_endpoints(
                state_dir.to_path_buf(),
                shared.clone(),
                shutdown.clone(),
            ));
            tracing::info!(
                pods = plan.pods.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                rss_bytes = control::rss_bytes(),
                "lab daemon ready"
            );
            stopped(&mut shutdown.clone()).await;
        }
        // Whatever did start must stop before the failure is reported.
        Err(_) => {
            stop.send_replace(true);
            pods.stop_all();
        }
    }

    tracing::info!("stopping");
    // Supervisors send SIGTERM, then SIGKILL after the grace; a little more
    // than that is all they can take.
    pods.join_supervisors(process::TERMINATION_GRACE + Duration::from_secs(2))
        .await;
    // Listeners return on the shutdown signal; dropping them closes them.
    if tokio::time::timeout(Duration::from_secs(1), async {
        while servers.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        servers.abort_all();
    }
    let _ = std::fs::remove_file(control::socket_path(state_dir));
    if *reached_ready {
        let _ = std::fs::remove_file(state_dir.join(READY_FILE));
    }
    tracing::info!("stopped");
    setup
}

/// The lab's Kubernetes API (`crate::api`), kubeconfig written before the
/// lab reports ready. A lab without it still works: the failure is
/// logged, and `podlab kubeconfig` says there is none.
async fn start_api(
    state_dir: &Path,
    lab: &str,
    shared: &Shared,
    shutdown: &watch::Receiver<bool>,
    servers: &mut JoinSet<()>,
) {
    let table = shared.clone();
    let status: crate::api::StatusFn =
        std::sync::Arc::new(move || table.snapshot(std::process::id(), control::rss_bytes()));
    match crate::api::bind(state_dir, lab, status, shared.epoch()).await {
        Ok(api) => {
            tracing::info!(port = api.port(), "Kubernetes API on 127.0.0.1");
            servers.spawn(api.serve(shutdown.clone()));
        }
        Err(e) => tracing::warn!("the lab's Kubernetes API did not start: {e}"),
    }
}

/// The view the nodes' rules were last loaded from, by `resync` or
/// `sync_endpoints`: both load through it, so each loads only what changed
/// since the other, and never at the same time.
static LOADED: crate::kernel::services::Loaded = crate::kernel::services::Loaded::new();

/// Bring every node's rules up to date now, for the plan on disk and the
/// pods that are ready.
pub(crate) async fn resync(state_dir: &Path, shared: &Shared) -> Result<(), String> {
    let plan = load_plan(state_dir).map_err(|e| e.to_string())?;
    let keys: HashSet<String> = shared.not_ready().into_iter().map(|(k, _)| k).collect();
    dns::follow(&plan, &keys);
    let changes = tokio::task::spawn_blocking(move || LOADED.sync(&plan, &keys, &[]))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    tracing::info!(rules = %changes.one_line(), "endpoints resynced");
    Ok(())
}

/// Follow readiness as kube-proxy follows EndpointSlices: when the set of
/// pods that are not ready changes, every node's rules are changed to leave
/// them out (only what changed is loaded; the first sync and the one after
/// a failure reload whole), and UDP flows to pods that left are flushed.
async fn sync_endpoints(state_dir: PathBuf, shared: Shared, mut shutdown: watch::Receiver<bool>) {
    let changed = shared.changed();
    let mut last: HashSet<String> = HashSet::new();
    let mut last_generation = shared.generation();
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = stopped(&mut shutdown) => return,
        }
        // Changes come in bursts (a restart is several updates).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = shared.not_ready();
        let keys: HashSet<String> = now.iter().map(|(k, _)| k.clone()).collect();
        let generation = shared.generation();
        if keys == last && generation == last_generation {
            continue;
        }
        last_generation = generation;
        // The plan on disk: a deleted pod has already left it.
        let Ok(plan) = load_plan(&state_dir) else {
            continue;
        };
        let gone: Vec<std::net::Ipv4Addr> = now
            .iter()
            .filter(|(k, _)| !last.contains(k))
            .filter_map(|(_, ip)| ip.parse().ok())
            .collect();
        last = keys.clone();
        // Cluster DNS follows the same ready endpoints as kube-proxy.
        dns::follow(&plan, &keys);
        // Only what changed since the last load: a whole reload of
        // thousands of services takes seconds and resets the counters.
        let r = tokio::task::spawn_blocking(move || LOADED.sync(&plan, &keys, &gone)).await;
        match r {
            Ok(Ok(changes)) => tracing::info!(
                not_ready = last.len(),
                rules = %changes.one_line(),
                "endpoints synced"
            ),
            Ok(Err(e)) => tracing::warn!("endpoint sync failed: {e}"),
            Err(e) => tracing::warn!("endpoint sync task failed: {e}"),
        }
    }
}

/// Resolves once shutdown is asked for (or nobody can ask any more).
/// `wait_for`'s guard is not `Send`; this drops it before the caller's next
/// `.await`.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The ports podlab's echo servers answer on, per pod. A container that
/// runs a process serves its own ports (that is what `containerPort` means
/// in Kubernetes); an echo server there would take the port from it.
pub(crate) fn wanted_ports(plan: &Plan) -> Vec<Wanted> {
    plan.pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let with_process: HashSet<&str> =
                pod.processes.iter().map(|p| p.container.as_str()).collect();
            let mut seen = HashSet::new();
            let ports = pod
                .ports
                .iter()
                .filter(|p| !with_process.contains(p.container.as_str()))
                .filter(|p| {
                    if p.protocol == Protocol::Sctp {
                        tracing::warn!(
                            pod = %pod.key(),
                            port = p.port,
                            "SCTP is not served: no echo on this port"
                        );
                        return false;
                    }
                    true
                })
                // Two containers declaring one port would fail to bind the
                // second; the pod has one socket either way.
                .filter(|p| seen.insert((p.port, p.protocol)))
                .map(|p| (p.port, p.protocol))
                .collect();
            Wanted {
                pod: i,
                key: pod.key(),
                netns: pod.netns.clone(),
                ports,
            }
        })
        .collect()
}

/// A thousand pods' listeners exceed the usual soft limit of 1024 open
/// files, and the connection caps are sized from what is raised here; the
/// hard limit is there to be used. Returns the old limit, which children
/// get back.
fn raise_nofile_limit() -> Option<libc::rlimit> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) != 0 {
            return None;
        }
        let raised = libc::rlimit {
            rlim_cur: old.rlim_max,
            rlim_max: old.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            tracing::warn!(
                "cannot raise the open-file limit above {}: {}",
                old.rlim_cur,
                std::io::Error::last_os_error()
            );
        }
    }
    Some(old)
}

/// SIGTERM and SIGINT stop the daemon as `shutdown` does. SIGHUP is caught
/// and ignored: the daemon is detached, and a hang-up from the terminal
/// that started `podlab up` must not take the lab down.
fn watch_signals(stop: watch::Sender<bool>) -> Result<(), Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|source| Error::Io {
            what: format!("handle {name}"),
            source,
        })
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = listen(SignalKind::hangup(), "SIGHUP")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = int.recv() => tracing::info!("SIGINT: stopping"),
                _ = hup.recv() => continue,
            }
            stop.send_replace(true);
        }
    });
    Ok(())
}

/// Wait, bounded by the probes' own timeouts, for every readiness probe
/// without an initial delay to have made its first attempt: a healthy pod
/// is then Ready (and an endpoint) when `up` returns, as `kubectl wait`
/// would have it, and an unhealthy one is known to be unready.
async fn first_probes(plan: &Plan, shared: &Shared) {
    let longest = plan
        .pods
        .iter()
        .flat_map(|p| &p.probes)
        .filter(|p| p.kind == crate::plan::ProbeKind::Readiness && p.initial_delay_s == 0)
        .map(|p| p.timeout_s.max(1))
        .max();
    let Some(longest) = longest else {
        return;
    };
    let bound = Duration::from_secs(u64::from(longest.min(10)) + 1);
    let deadline = Instant::now() + bound;
    loop {
        let waiting = shared.awaiting_first_probe();
        if waiting.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(pods = ?waiting, "readiness probes had no first verdict in {bound:?}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests;
