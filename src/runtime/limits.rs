//! What a client can make the daemon hold, and how it is given back.
//!
//! One daemon serves every pod of a lab, so one pod's connections must not
//! use up what the others need. As nginx and haproxy do, every TCP server
//! of the daemon (the echo's HTTP, kube-dns over TCP) counts its
//! connections at accept against three caps: per client address (all the
//! daemon's listeners together), per listener, and in all, the last sized
//! from the descriptor limit so that descriptors always remain for the
//! control socket, DNS over UDP, process supervision and new listeners.
//! A connection past a cap is closed at once (the echo first says why with
//! a 503, as nginx's `limit_conn` does): that fails the client at fault,
//! while not accepting would leave the backlog full and stall everyone
//! behind it. Each refusal costs a descriptor for microseconds.
//!
//! The servers also bound time (a deadline for the request headers, an
//! idle timeout) and keep an idle connection small. When many connections
//! end, the housekeeping task hands the freed heap back to the kernel
//! (glibc keeps it otherwise), and logs what the caps refused, at most once
//! per client and listener every 10 s.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// Time a client has to send a request's headers, from the connection's
/// start or the previous answer: hyper's default, and long enough for a
/// learner typing a request into `nc`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection that moves no byte either way for this long is closed,
/// whatever state it is in (a request body that stalls, among others).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most connections of all the daemon's servers together, whatever the
/// descriptor limit: an idle one costs about 2 KiB, a busy one 20.
pub const MAX_TOTAL: usize = 32_768;
pub const MAX_PER_LISTENER: usize = 2_048;
pub const MAX_PER_CLIENT: usize = 1_024;
/// Descriptors kept out of the connections' reach: at least this many...
const MIN_RESERVE: usize = 256;
/// ...an eighth of the limit, and at most this many.
const MAX_RESERVE: usize = 4_096;

/// How often refusals of one client on one listener are logged.
const LOG_WINDOW: Duration = Duration::from_secs(10);
/// Refusal windows remembered at once; past this, refusals are only counted.
const MAX_WINDOWS: usize = 4_096;
/// How far the connection count must fall before freed memory is returned.
const TRIM_DROP: usize = 256;
/// Connections accepted or refused since the last trim that make one worth
/// it when the count has at least halved.
const TRIM_CHURN: u64 = 1_024;

/// The caps, derived from the descriptor limit (`for_nofile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Descriptors connections and listening sockets may use together: the
    /// limit less the reserve.
    pub descriptors: usize,
    /// Connections of every listener together.
    pub total: usize,
    pub per_listener: usize,
    /// Connections from one address to all of the daemon's servers.
    pub per_client: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Caps {
    /// The caps for a process that may open `nofile` descriptors.
    pub fn for_nofile(nofile: u64) -> Caps {
        let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
        let reserve = (nofile / 8).clamp(MIN_RESERVE, MAX_RESERVE).min(nofile / 2);
        let descriptors = nofile - reserve;
        let total = descriptors.min(MAX_TOTAL);
        Caps {
            descriptors,
            total,
            per_listener: (total / 2).clamp(1, MAX_PER_LISTENER),
            per_client: (total / 4).clamp(1, MAX_PER_CLIENT),
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Client(usize),
    Listener(usize),
    Total(usize),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Client(n) => write!(f, "{n} connections per client"),
            Refused::Listener(n) => write!(f, "{n} connections per listener"),
            Refused::Total(n) => write!(f, "{n} connections in all"),
        }
    }
}

/// The daemon's connection counts. One per daemon (`global`); tests make
/// their own with small caps.
#[derive(Debug)]
pub struct Limits {
    caps: Caps,
    open: AtomicUsize,
    /// Listening and UDP sockets of the servers: descriptors too.
    sockets: AtomicUsize,
    clients: Mutex<HashMap<IpAddr, usize>>,
    refusals: Mutex<Refusals>,
    /// The most connections open at once since memory was last trimmed.
    peak: AtomicUsize,
    churn: AtomicU64,
}

#[derive(Debug, Default)]
struct Refusals {
    windows: HashMap<(Arc<str>, Option<IpAddr>), Window>,
    /// Refusals that found no free window (more clients than `MAX_WINDOWS`).
    unlogged: u64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    more: u64,
    why: String,
}

static GLOBAL: OnceLock<Arc<Limits>> = OnceLock::new();

/// Set the daemon's caps from its descriptor limit, once, before the
/// first server starts. Later calls keep the first caps.
pub fn init(nofile: u64) -> Arc<Limits> {
    GLOBAL
        .get_or_init(|| Arc::new(Limits::new(Caps::for_nofile(nofile))))
        .clone()
}

/// The daemon's limits; sized from the current descriptor limit when
/// nothing called `init`.
pub fn global() -> Arc<Limits> {
    GLOBAL
        .get_or_init(|| Arc::new(Limits::new(Caps::for_nofile(current_nofile()))))
        .clone()
}

/// The soft limit on open files.
pub fn current_nofile() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return 1024;
    }
    l.rlim_cur
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Limits {
    pub fn new(caps: Caps) -> Limits {
        Limits {
            caps,
            open: AtomicUsize::new(0),
            sockets: AtomicUsize::new(0),
            clients: Mutex::new(HashMap::new()),
            refusals: Mutex::new(Refusals::default()),
            peak: AtomicUsize::new(0),
            churn: AtomicU64::new(0),
        }
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// Connections open now, all servers together.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A listening (or UDP) socket of `name` (`namespace/pod:port`), which
    /// counts against the descriptors until dropped.
    pub fn listener(self: &Arc<Self>, name: String) -> Listener {
        self.sockets.fetch_add(1, Ordering::Relaxed);
        Listener {
            limits: self.clone(),
            gauge: Arc::new(Gauge {
                name: name.into(),
                open: AtomicUsize::new(0),
            }),
        }
    }

    /// Count a connection from `client` on `gauge`, or say which cap it
    /// would break. The client's cap is checked first: it names the one at
    /// fault.
    fn admit(self: &Arc<Self>, gauge: &Arc<Gauge>, client: IpAddr) -> Result<Permit, Refused> {
        self.churn.fetch_add(1, Ordering::Relaxed);
        {
            let mut clients = lock(&self.clients);
            let n = clients.entry(client).or_insert(0);
            if *n >= self.caps.per_client {
                return Err(Refused::Client(self.caps.per_client));
            }
            *n += 1;
        }
        if gauge.open.fetch_add(1, Ordering::Relaxed) >= self.caps.per_listener {
            gauge.open.fetch_sub(1, Ordering::Relaxed);
            self.release_client(client);
            return Err(Refused::Listener(self.caps.per_listener));
        }
        let open = self.open.fetch_add(1, Ordering::Relaxed);
        let sockets = self.sockets.load(Ordering::Relaxed);
        if open >= self.caps.total || open + sockets >= self.caps.descriptors {
            self.open.fetch_sub(1, Ordering::Relaxed);
            gauge.open.fetch_sub(1, Ordering::Relaxed);
            self.release_client(client);
            let cap = self
                .caps
                .total
                .min(self.caps.descriptors.saturating_sub(sockets));
            return Err(Refused::Total(cap));
        }
        self.peak.fetch_max(open + 1, Ordering::Relaxed);
        Ok(Permit {
            limits: self.clone(),
            gauge: gauge.clone(),
            client,
        })
    }

    fn release_client(&self, client: IpAddr) {
        let mut clients = lock(&self.clients);
        if let Some(n) = clients.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                clients.remove(&client);
            }
        }
    }

    /// Log a refusal now if it is the first of its client on its listener
    /// in `LOG_WINDOW`; otherwise count it for the window's summary.
    fn note(&self, listener: &Arc<str>, client: Option<IpAddr>, why: String) {
        let mut r = lock(&self.refusals);
        let key = (listener.clone(), client);
        if let Some(w) = r.windows.get_mut(&key) {
            w.more += 1;
            return;
        }
        if r.windows.len() >= MAX_WINDOWS {
            r.unlogged += 1;
            return;
        }
        match client {
            Some(ip) => tracing::warn!(
                listener = %listener,
                client = %ip,
                "refusing connections from {ip} to {listener}: over the cap of {why}"
            ),
            None => tracing::warn!(listener = %listener, "accept on {listener} failed: {why}"),
        }
        r.windows.insert(
            key,
            Window {
                started: Instant::now(),
                more: 0,
                why,
            },
        );
    }

    /// Summarise the windows that ended: a window with refusals after its
    /// first goes on for another `LOG_WINDOW`, a quiet one is forgotten.
    fn flush_refusals(&self, now: Instant) {
        let mut r = lock(&self.refusals);
        let unlogged = std::mem::take(&mut r.unlogged);
        r.windows.retain(|(listener, client), w| {
            if now.duration_since(w.started) < LOG_WINDOW {
                return true;
            }
            if w.more == 0 {
                return false;
            }
            let secs = now.duration_since(w.started).as_secs();
            match client {
                Some(ip) => tracing::warn!(
                    listener = %listener,
                    client = %ip,
                    refused = w.more,
                    "refused {} more connections from {ip} to {listener} in {secs}s: over the cap of {}",
                    w.more,
                    w.why
                ),
                None => tracing::warn!(
                    listener = %listener,
                    "accept on {listener} failed {} more times in {secs}s: {}",
                    w.more,
                    w.why
                ),
            }
            w.started = now;
            w.more = 0;
            true
        });
        if unlogged > 0 {
            tracing::warn!(
                refused = unlogged,
                "refused {unlogged} more connections from clients past the log's limit"
            );
        }
    }

    /// Whether the connections fell far enough for a trim to give memory
    /// back; resets the count it compares with when it says yes.
    fn should_trim(&self) -> Option<usize> {
        let open = self.open();
        let peak = self.peak.load(Ordering::Relaxed);
        let churn = self.churn.load(Ordering::Relaxed);
        let fell = peak >= open + TRIM_DROP;
        let receded = churn >= TRIM_CHURN && open * 2 <= peak;
        if !(fell || receded) {
            return None;
        }
        self.peak.store(open, Ordering::Relaxed);
        self.churn.store(0, Ordering::Relaxed);
        Some(peak)
    }
}

/// One listener's count, shared by its connections' permits.
#[derive(Debug)]
struct Gauge {
    name: Arc<str>,
    open: AtomicUsize,
}

/// A listening socket's place in the limits. Dropped with the socket.
#[derive(Debug)]
pub struct Listener {
    limits: Arc<Limits>,
    gauge: Arc<Gauge>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.limits.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Listener {
    pub fn name(&self) -> &str {
        &self.gauge.name
    }

    pub fn caps(&self) -> Caps {
        self.limits.caps
    }

    /// The next connection, and whether it may be served. Errors of
    /// accept(2) are waited out here: EMFILE and its kin persist, so the
    /// loop backs off rather than spin, and says so at most every 10 s.
    /// Cancel-safe.
    pub async fn accept(
        &self,
        listener: &TcpListener,
    ) -> (TcpStream, SocketAddr, Result<Permit, Refused>) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let admitted = self.limits.admit(&self.gauge, peer.ip());
                    if let Err(why) = &admitted {
                        self.limits
                            .note(&self.gauge.name, Some(peer.ip()), why.to_string());
                    }
                    return (stream, peer, admitted);
                }
                // The connection was gone before it was accepted: the
                // next one is there already.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    self.limits.note(&self.gauge.name, None, e.to_string());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// A counted connection: dropping it gives its place back.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<Limits>,
    gauge: Arc<Gauge>,
    client: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
        self.gauge.open.fetch_sub(1, Ordering::Relaxed);
        self.limits.release_client(self.client);
    }
}

/// A clock that fits an atomic: milliseconds since its first use.
pub fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(Instant::now().duration_since(base).as_millis()).unwrap_or(u64::MAX)
}

/// Hand freed heap back to the kernel. glibc keeps what it freed for reuse
/// in each thread's arena, so after a flood the daemon would keep its peak
/// size for good.
pub fn trim_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Log refusal summaries and return memory after floods, until shutdown.
pub async fn housekeeping(limits: Arc<Limits>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = super::stopped(&mut shutdown) => return,
        }
        limits.flush_refusals(Instant::now());
        if let Some(peak) = limits.should_trim() {
            let before = super::control::rss_bytes();
            trim_memory();
            tracing::info!(
                peak,
                open = limits.open(),
                rss_before = before,
                rss_after = super::control::rss_bytes(),
                "connections fell: freed memory returned"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(per_client: usize, per_listener: usize, total: usize) -> Caps {
        Caps {
            descriptors: total + 10,
            total,
            per_listener,
            per_client,
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }

    #[test]
    fn caps_follow_the_descriptor_limit() {
        let c = Caps::for_nofile(20_000);
        assert_eq!(
            (c.descriptors, c.total, c.per_listener, c.per_client),
            (17_500, 17_500, 2_048, 1_024)
        );
        let c = Caps::for_nofile(16_384);
        assert_eq!((c.descriptors, c.per_client), (14_336, 1_024));
        let c = Caps::for_nofile(1_024);
        assert_eq!(
            (c.descriptors, c.total, c.per_listener, c.per_client),
            (768, 768, 384, 192)
        );
        // A huge limit: the reserve and the caps stop growing.
        let c = Caps::for_nofile(1 << 20);
        assert_eq!(
            (c.descriptors, c.total, c.per_listener, c.per_client),
            ((1 << 20) - 4_096, 32_768, 2_048, 1_024)
        );
        // A tiny one still leaves half to connections.
        let c = Caps::for_nofile(64);
        assert_eq!((c.descriptors, c.per_client), (32, 8));
    }

    #[test]
    fn caps_refuse_in_order_and_permits_give_back() {
        let l = Arc::new(Limits::new(caps(2, 3, 4)));
        let a = l.listener("default/a:80".into());
        let b = l.listener("default/b:80".into());
        let one: IpAddr = "10.244.1.2".parse().unwrap();
        let two: IpAddr = "10.244.1.3".parse().unwrap();
        let three: IpAddr = "10.244.1.4".parse().unwrap();
        let p1 = l.admit(&a.gauge, one).unwrap();
        let _p2 = l.admit(&b.gauge, one).unwrap();
        // The client's cap covers every listener.
        assert_eq!(l.admit(&a.gauge, one).unwrap_err(), Refused::Client(2));
        let _p3 = l.admit(&a.gauge, two).unwrap();
        let _p4 = l.admit(&a.gauge, two).unwrap();
        // a has three: full, whoever asks.
        assert_eq!(l.admit(&a.gauge, three).unwrap_err(), Refused::Listener(3));
        assert_eq!(l.open(), 4);
        assert_eq!(l.admit(&b.gauge, three).unwrap_err(), Refused::Total(4));
        // A refusal counted nothing; a permit dropped gives its place back.
        assert_eq!(lock(&l.clients).get(&three), None);
        drop(p1);
        assert_eq!(l.open(), 3);
        let _p5 = l.admit(&a.gauge, one).unwrap();
        assert_eq!(lock(&l.clients).get(&one), Some(&2));
    }

    #[test]
    fn listening_sockets_use_descriptors_too() {
        let mut c = caps(100, 100, 100);
        c.descriptors = 5;
        let l = Arc::new(Limits::new(c));
        let ls: Vec<Listener> = (0..3).map(|i| l.listener(format!("p:{i}"))).collect();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let _a = l.admit(&ls[0].gauge, ip).unwrap();
        let _b = l.admit(&ls[0].gauge, ip).unwrap();
        assert_eq!(l.admit(&ls[0].gauge, ip).unwrap_err(), Refused::Total(2));
        drop(ls);
        assert_eq!(l.sockets.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn refusals_are_logged_once_a_window() {
        let l = Limits::new(caps(1, 1, 1));
        let name: Arc<str> = "default/a:80".into();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..5 {
            l.note(&name, Some(ip), "x".into());
        }
        let key = (name.clone(), Some(ip));
        assert_eq!(lock(&l.refusals).windows[&key].more, 4);
        // Within the window nothing changes; after it, the summary resets
        // the window, and a quiet window is forgotten.
        let start = Instant::now();
        l.flush_refusals(start);
        assert_eq!(lock(&l.refusals).windows[&key].more, 4);
        l.flush_refusals(start + LOG_WINDOW);
        assert_eq!(lock(&l.refusals).windows[&key].more, 0);
        l.flush_refusals(start + LOG_WINDOW * 2);
        assert!(lock(&l.refusals).windows.is_empty());
    }

    #[test]
    fn windows_are_bounded() {
        let l = Limits::new(caps(1, 1, 1));
        let name: Arc<str> = "default/a:80".into();
        for i in 0..(MAX_WINDOWS as u32 + 10) {
            l.note(&name, Some(IpAddr::from(i.to_be_bytes())), "x".into());
        }
        let r = lock(&l.refusals);
        assert_eq!((r.windows.len(), r.unlogged), (MAX_WINDOWS, 10));
    }

    #[test]
    fn trims_when_the_count_falls() {
        let l = Arc::new(Limits::new(caps(10_000, 10_000, 10_000)));
        let g = l.listener("p:1".into());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let permits: Vec<Permit> = (0..300).map(|_| l.admit(&g.gauge, ip).unwrap()).collect();
        assert_eq!(l.should_trim(), None, "at the peak");
        drop(permits);
        assert_eq!(l.should_trim(), Some(300));
        assert_eq!(l.should_trim(), None, "once per fall");
    }
}
