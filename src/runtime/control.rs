//! The daemon's control socket: `state_dir/control.sock`, one JSON object
//! per line each way.
//!
//! ```text
//! {"op":"ping"}      -> {"ok":true}
//! {"op":"status"}    -> {"ok":true,"status":{...DaemonStatus...}}
//! {"op":"shutdown"}  -> {"ok":true}, then the connection stays open until
//!                       the daemon has stopped every process and exits
//! {"op":"forget","namespace":..,"name":..}    a pod left the plan on disk
//! {"op":"stoppod","namespace":..,"name":..}   stop a pod's servers and
//!                       processes (a crash); its namespace stays
//! {"op":"reconcile","restart":[..]}  -> {"ok":true,"reconciled":{..}}: run
//!                       what the plan on disk has, restart the pods listed
//! anything else      -> {"ok":false,"error":"..."}
//! ```
//!
//! The client half is blocking std code with timeouts: the CLI calls it
//! without an async runtime.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use super::pods::{Pods, Reconciled};
use super::state::Shared;
use super::status::DaemonStatus;
use super::Error;

pub const SOCKET_NAME: &str = "control.sock";

/// A request never needs more than this; a longer line is not ours.
const MAX_LINE: u64 = 64 * 1024;

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Ping,
    Status,
    Shutdown,
    /// A pod was deleted from the lab (the plan on disk no longer has it):
    /// stop serving it and resync the endpoints.
    Forget {
        namespace: String,
        name: String,
    },
    /// Stop a pod's servers and processes, as if its containers crashed.
    StopPod {
        namespace: String,
        name: String,
    },
    /// The plan on disk changed (`podlab apply`): start, stop and restart
    /// pods to match it, and resync DNS and the rules. `restart`: pods
    /// (`ns/name`) whose namespace was made anew.
    Reconcile {
        #[serde(default)]
        restart: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DaemonStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled: Option<Reconciled>,
}

impl Response {
    fn ok() -> Response {
        Response {
            ok: true,
            error: None,
            status: None,
            reconciled: None,
        }
    }

    fn error(msg: String) -> Response {
        Response {
            ok: false,
            error: Some(msg),
            status: None,
            reconciled: None,
        }
    }
}

/// One JSON line, newline included.
pub fn encode<T: Serialize>(msg: &T) -> String {
    // Serialising these plain structs cannot fail: no maps with non-string
    // keys, no custom serialisers.
    let mut line = serde_json::to_string(msg)
        .unwrap_or_else(|e| format!(r#"{{"ok":false,"error":{:?}}}"#, e.to_string()));
    line.push('\n');
    line
}

pub fn decode_request(line: &str) -> Result<Request, String> {
    serde_json::from_str(line.trim()).map_err(|e| format!("bad request: {e}"))
}

/// Bind the control socket, replacing a stale one from a daemon that died.
/// Only root may talk to it: it can stop the lab.
pub fn bind(state_dir: &Path) -> Result<UnixListener, Error> {
    let path = socket_path(state_dir);
    let io_err = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| Error::Io { what, source }
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove stale")(e)),
    }
    let listener = UnixListener::bind(&path).map_err(io_err("bind"))?;
    // Between bind and chmod the socket carries the umask's mode; the state
    // directory is 0700, so nobody else can reach it meanwhile.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod"))?;
    Ok(listener)
}

/// What a connection handler needs from the daemon.
#[derive(Clone)]
pub(crate) struct Control {
    pub shared: Shared,
    pub pods: std::sync::Arc<Pods>,
    pub stop: watch::Sender<bool>,
    pub state_dir: std::path::PathBuf,
}

/// Serve the control socket until shutdown.
pub(crate) async fn serve(listener: UnixListener, ctl: Control) {
    let mut shutdown = ctl.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = super::stopped(&mut shutdown) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream, ctl.clone()));
            }
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(stream: UnixStream, ctl: Control) {
    let (read, mut write) = stream.into_split();
    let mut lines = AsyncBufReader::new(read.take(MAX_LINE));
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) => return,
            Ok(_) if !line.ends_with('\n') && line.len() as u64 >= MAX_LINE => {
                let reply = Response::error("request too long".into());
                let _ = write.write_all(encode(&reply).as_bytes()).await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("control connection: {e}");
                return;
            }
        }
        // Each request gets a fresh allowance, so a long-lived client can
        // keep asking.
        lines.get_mut().set_limit(MAX_LINE);
        let request = match decode_request(&line) {
            Ok(r) => r,
            Err(msg) => {
                if write
                    .write_all(encode(&Response::error(msg)).as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let reply = match &request {
            Request::Ping | Request::Shutdown => Response::ok(),
            Request::Forget { namespace, name } => {
                if !ctl.pods.forget(namespace, name) {
                    Response::error(format!("no pod {namespace}/{name} in this lab"))
                } else {
                    // Answer once the rules no longer send traffic there.
                    match super::resync(&ctl.state_dir, &ctl.shared).await {
                        Ok(()) => Response::ok(),
                        Err(e) => Response::error(e),
                    }
                }
            }
            Request::StopPod { namespace, name } => {
                if !ctl.pods.stop(namespace, name) {
                    Response::error(format!("no running pod {namespace}/{name} in this lab"))
                } else {
                    match super::resync(&ctl.state_dir, &ctl.shared).await {
                        Ok(()) => Response::ok(),
                        Err(e) => Response::error(e),
                    }
                }
            }
            Request::Reconcile { restart } => serve_reconcile(&ctl, restart).await,
            Request::Status => Response {
                status: Some(ctl.shared.snapshot(std::process::id(), rss_bytes())),
                ..Response::ok()
            },
        };
        if write.write_all(encode(&reply).as_bytes()).await.is_err() {
            return;
        }
        if request == Request::Shutdown {
            tracing::info!("shutdown requested over the control socket");
            ctl.stop.send_replace(true);
            // Held open on purpose: the client reads until EOF, which comes
            // when the daemon exits, after every process has stopped.
            std::future::pending::<()>().await;
        }
    }
}

async fn serve_reconcile(ctl: &Control, restart: &[String]) -> Response {
    let plan = match super::load_plan(&ctl.state_dir) {
        Ok(p) => p,
        Err(e) => return Response::error(e.to_string()),
    };
    let restart = restart.iter().cloned().collect();
    let done = match ctl.pods.reconcile(&plan, &restart).await {
        Ok(d) => d,
        Err(e) => return Response::error(e.to_string()),
    };
    // Answer once DNS and the rules follow the new plan.
    match super::resync(&ctl.state_dir, &ctl.shared).await {
        Ok(()) => Response {
            reconciled: Some(done),
            ..Response::ok()
        },
        Err(e) => Response::error(e),
    }
}

/// Resident memory of this process.
pub fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// Client: connect, send one request, read one answer line.
fn call(
    state_dir: &Path,
    request: Request,
    deadline: Instant,
) -> Result<(Response, BufReader<StdUnixStream>), Error> {
    let path = socket_path(state_dir);
    let ctl_err = |source: std::io::Error| Error::Control {
        path: path.clone(),
        source,
    };
    let stream = StdUnixStream::connect(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            Error::NotRunning { path: path.clone() }
        }
        _ => ctl_err(e),
    })?;
    let left = remaining(deadline, &path)?;
    stream.set_write_timeout(Some(left)).map_err(ctl_err)?;
    stream.set_read_timeout(Some(left)).map_err(ctl_err)?;
    (&stream)
        .write_all(encode(&request).as_bytes())
        .map_err(|e| timeout_or(e, &path))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .map_err(|e| timeout_or(e, &path))?;
    if n == 0 {
        return Err(Error::Control {
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "daemon closed the connection without answering",
            ),
        });
    }
    let reply: Response = serde_json::from_str(line.trim()).map_err(Error::Protocol)?;
    if !reply.ok {
        return Err(Error::Daemon(
            reply.error.unwrap_or_else(|| "request refused".into()),
        ));
    }
    Ok((reply, reader))
}

fn remaining(deadline: Instant, path: &Path) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    // A zero timeout means "block forever" to the socket API.
    if left.is_zero() {
        return Err(Error::Timeout {
            path: path.to_path_buf(),
        });
    }
    Ok(left)
}

fn timeout_or(e: std::io::Error, path: &Path) -> Error {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Error::Timeout {
            path: path.to_path_buf(),
        },
        _ => Error::Control {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// Is the daemon there and answering?
pub fn ping(state_dir: &Path, timeout: Duration) -> Result<(), Error> {
    call(state_dir, Request::Ping, Instant::now() + timeout).map(|_| ())
}

/// The daemon's view of every pod. `Error::NotRunning` when no daemon
/// listens (the lab is down, or its daemon died).
pub fn query_status(state_dir: &Path, timeout: Duration) -> Result<DaemonStatus, Error> {
    let (reply, _) = call(state_dir, Request::Status, Instant::now() + timeout)?;
    reply
        .status
        .ok_or_else(|| Error::Daemon("status answer without a status".into()))
}

/// Ask the daemon to stop, and wait until it has: every process stopped,
/// every listener closed. `Error::NotRunning` when there was no daemon,
/// which `down` may treat as done. The timeout should exceed the daemon's
/// 2 s termination grace.
/// Tell the daemon a pod was deleted.
pub fn forget(
    state_dir: &Path,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let req = Request::Forget {
        namespace: namespace.into(),
        name: name.into(),
    };
    let (reply, _) = call(state_dir, req, Instant::now() + timeout)?;
    match reply.error {
        Some(e) if !reply.ok => Err(Error::Daemon(e)),
        _ => Ok(()),
    }
}

/// Stop a pod's servers and processes (its namespace stays): a crashed
/// pod, for faults and exercises. `reconcile` starts it again.
pub fn stop_pod(
    state_dir: &Path,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let req = Request::StopPod {
        namespace: namespace.into(),
        name: name.into(),
    };
    call(state_dir, req, Instant::now() + timeout).map(drop)
}

/// Make the daemon run what the plan on disk has: pods started, stopped
/// and restarted (`restart`: `ns/name` of pods whose namespace was made
/// anew), DNS and rules resynced. Answers when all that is done.
pub fn reconcile(
    state_dir: &Path,
    restart: &[String],
    timeout: Duration,
) -> Result<Reconciled, Error> {
    let req = Request::Reconcile {
        restart: restart.to_vec(),
    };
    let (reply, _) = call(state_dir, req, Instant::now() + timeout)?;
    Ok(reply.reconciled.unwrap_or_default())
}

pub fn request_shutdown(state_dir: &Path, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let (_, mut reader) = call(state_dir, Request::Shutdown, deadline)?;
    let path = socket_path(state_dir);
    let left = remaining(deadline, &path)?;
    reader
        .get_ref()
        .set_read_timeout(Some(left))
        .map_err(|e| timeout_or(e, &path))?;
    let mut rest = Vec::new();
    match reader.read_to_end(&mut rest) {
        Ok(_) => Ok(()),
        // The daemon's exit may reset rather than close the connection.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(timeout_or(e, &path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_op() {
        assert_eq!(encode(&Request::Status), "{\"op\":\"status\"}\n");
        assert_eq!(decode_request(r#"{"op":"ping"}"#), Ok(Request::Ping));
        assert_eq!(
            decode_request(" {\"op\":\"shutdown\"}\n"),
            Ok(Request::Shutdown)
        );
        assert!(decode_request(r#"{"op":"reboot"}"#).is_err());
        assert!(decode_request("GET / HTTP/1.1").is_err());
    }

    #[test]
    fn responses_omit_what_they_lack() {
        assert_eq!(encode(&Response::ok()), "{\"ok\":true}\n");
        let e = encode(&Response::error("no".into()));
        assert_eq!(e, "{\"ok\":false,\"error\":\"no\"}\n");
        let back: Response = serde_json::from_str(&e).unwrap();
        assert_eq!(back, Response::error("no".into()));
    }

    #[test]
    fn rss_is_read() {
        assert!(rss_bytes() > 0);
    }
}
