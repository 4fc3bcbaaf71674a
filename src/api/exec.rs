//! `kubectl exec` over WebSocket (`v5.channel.k8s.io`, and v4): the
//! command runs in the pod as `podlab exec` runs it (its network, mount
//! and UTS namespaces, the services' variables), with the streams as
//! kubelet frames them.
//!
//! Every binary message starts with its channel: 0 stdin, 1 stdout,
//! 2 stderr, 3 the final `Status` (exit code), 4 terminal resize, and in
//! v5 255 for "this channel is closed" (kubectl sends `255 0` at the end
//! of its stdin). With a TTY the command gets a pseudo-terminal, stderr
//! comes merged into stdout, and resizes apply to it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::http::{not_found, status_error, Api, Body, Query};
use super::objects::PODS;
use crate::runtime::PreparedExec;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The subprotocols served, best first. kubectl 1.30+ offers only v5.
const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Output still arriving after the command exited (a background child
/// holding the pipe) is waited for this long.
const DRAIN: Duration = Duration::from_secs(2);

/// What the request asks to run, and how.
#[derive(Debug, Clone)]
struct ExecRequest {
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

fn bad(msg: &str) -> Response<Body> {
    status_error(StatusCode::BAD_REQUEST, "BadRequest", msg, None)
}

pub async fn serve(
    api: Arc<Api>,
    req: Request<Incoming>,
    namespace: &str,
    name: &str,
    q: &Query,
) -> Response<Body> {
    let header = |h| {
        req.headers()
            .get(h)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if !header(UPGRADE).eq_ignore_ascii_case("websocket") {
        // kubectl falls back to SPDY when the WebSocket upgrade fails, and
        // prints this message when SPDY is refused too.
        return bad("podlab's API runs exec over WebSocket (v5.channel.k8s.io) only, as kubectl 1.30 and newer speak it; SPDY is not served");
    }
    let offered = header(SEC_WEBSOCKET_PROTOCOL);
    let Some(protocol) = PROTOCOLS
        .iter()
        .find(|p| offered.split(',').any(|o| o.trim() == **p))
    else {
        return bad(&format!(
            "no subprotocol podlab serves among \"{offered}\": it speaks {}",
            PROTOCOLS.join(", ")
        ));
    };
    let key = header(SEC_WEBSOCKET_KEY);
    if key.is_empty() {
        return bad("WebSocket upgrade without Sec-WebSocket-Key");
    }
    let exec = ExecRequest {
        command: q.all("command"),
        stdin: q.flag("stdin"),
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        tty: q.flag("tty"),
    };
    if exec.command.is_empty() {
        return bad("you must specify at least one command for the container");
    }
    let plan = match api.plan() {
        Ok(p) => p,
        Err(e) => {
            return status_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &e, None)
        }
    };
    let Some(pod) = plan.pod(namespace, name) else {
        return not_found(&PODS, name);
    };
    if let Some(c) = q.get("container").filter(|c| !c.is_empty()) {
        let known = pod
            .ports
            .iter()
            .map(|p| &p.container)
            .chain(pod.processes.iter().map(|p| &p.container))
            .any(|x| x == c);
        if !known {
            return bad(&format!("container {c} is not valid for pod {name}"));
        }
    }
    if !crate::kernel::netns::Netns::exists(&pod.netns) {
        return status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &format!(
                "pod {namespace}/{name}: its network namespace {} is gone; `podlab apply` puts it back",
                pod.netns
            ),
            None,
        );
    }
    let env = crate::plan::env::service_env(&plan, pod);
    let session = Session {
        exec,
        prep: Arc::new(crate::runtime::pod_exec_setup(pod)),
        env,
        pod: pod.key(),
        v5: *protocol == PROTOCOLS[0],
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(up) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                session.run(ws).await;
            }
            Err(e) => tracing::warn!("exec upgrade failed: {e}"),
        }
    });
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

struct Session {
    exec: ExecRequest,
    prep: Arc<PreparedExec>,
    env: Vec<(String, String)>,
    pod: String,
    v5: bool,
}

/// The command's side of the streams.
enum Io {
    Pipes {
        stdin: Option<tokio::process::ChildStdin>,
    },
    Pty {
        master: Arc<AsyncFd<OwnedFd>>,
    },
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

impl Session {
    async fn run(self, ws: Ws) {
        let (mut sink, mut incoming) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(64);
        let (mut child, mut io) = match self.start(out_tx) {
            Ok(s) => s,
            Err(e) => {
                let program = &self.exec.command[0];
                tracing::info!(pod = %self.pod, "exec {program}: {e}");
                let msg = format!("podlab: cannot run {program} in pod {}: {e}\n", self.pod);
                let channel = if self.exec.tty { STDOUT } else { STDERR };
                let _ = sink.send(frame(channel, msg.as_bytes())).await;
                // A shell's codes for "not found" and "cannot execute".
                let code = if e.kind() == io::ErrorKind::NotFound {
                    127
                } else {
                    126
                };
                finish(sink, incoming, code).await;
                return;
            }
        };
        let pid = child.id();
        tracing::info!(pod = %self.pod, ?pid, command = ?self.exec.command, tty = self.exec.tty, "exec started");
        let mut status = None;
        let mut drain_until = None;
        let mut client_gone = false;
        loop {
            tokio::select! {
                s = child.wait(), if status.is_none() => {
                    status = Some(s);
                    drain_until = Some(tokio::time::Instant::now() + DRAIN);
                }
                m = incoming.next(), if !client_gone => match m {
                    Some(Ok(Message::Binary(data))) => {
                        if let Some((&channel, payload)) = data.split_first() {
                            match channel {
                                STDIN => io.write(payload).await,
                                RESIZE => io.resize(payload),
                                CLOSE if self.v5 && payload.first() == Some(&STDIN) => io.close_stdin(),
                                _ => {}
                            }
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => client_gone = true,
                    Some(Ok(_)) => {}
                },
                o = out_rx.recv() => match o {
                    Some((channel, data)) => {
                        if sink.send(frame(channel, &data)).await.is_err() {
                            client_gone = true;
                        }
                    }
                    // Every output stream has ended.
                    None => break,
                },
                // Output held open by something the command left behind:
                // the exit is reported anyway.
                () = sleep_until(drain_until), if drain_until.is_some() => break,
            }
            if client_gone {
                break;
            }
        }
        if client_gone && status.is_none() {
            // The client left: the command goes too, as a closed terminal
            // hangs up its session.
            if let Some(pid) = pid {
                kill_group(pid);
            }
        }
        let status = match status {
            Some(s) => s,
            None => child.wait().await,
        };
        let code = status.map_or(1, crate::runtime::process::exit_code);
        tracing::info!(pod = %self.pod, code, "exec ended");
        if !client_gone {
            finish(sink, incoming, code).await;
        }
    }

    /// Spawn the command in the pod, its output feeding `out`.
    fn start(&self, out: mpsc::Sender<(u8, Vec<u8>)>) -> io::Result<(tokio::process::Child, Io)> {
        let (program, args) = self
            .exec
            .command
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).env_clear().current_dir("/");
        for key in ["PATH", "HOME"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("HOSTNAME", self.prep.hostname_str());
        let tty = self.exec.tty;
        if tty {
            cmd.env("TERM", "xterm");
            let (master, slave) = open_pty()?;
            cmd.stdin(Stdio::from(slave.try_clone()?))
                .stdout(Stdio::from(slave.try_clone()?))
                .stderr(Stdio::from(slave));
            pre_exec(&mut cmd, self.prep.clone(), true);
            let child = cmd.spawn()?;
            // The slave's copies in `cmd` must close here, or the master
            // never sees the end of the command's output.
            drop(cmd);
            // SAFETY: an OwnedFd keeps its descriptor open and the same for
            // as long as the AsyncFd owns it.
            let master = unsafe { AsyncFd::register(master) }.map_err(io::Error::from)?;
            let master = Arc::new(master);
            tokio::spawn(read_pty(master.clone(), out));
            return Ok((child, Io::Pty { master }));
        }
        cmd.stdin(if self.exec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if self.exec.stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(if self.exec.stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        pre_exec(&mut cmd, self.prep.clone(), false);
        let mut child = cmd.spawn()?;
        if let Some(o) = child.stdout.take() {
            tokio::spawn(read_pipe(o, STDOUT, out.clone()));
        }
        if let Some(e) = child.stderr.take() {
            tokio::spawn(read_pipe(e, STDERR, out));
        }
        let stdin = child.stdin.take();
        Ok((child, Io::Pipes { stdin }))
    }
}

impl Io {
    async fn write(&mut self, data: &[u8]) {
        match self {
            Io::Pipes { stdin } => {
                if let Some(s) = stdin {
                    if s.write_all(data).await.is_err() {
                        *stdin = None;
                    }
                }
            }
            Io::Pty { master } => {
                let _ = write_fd(master, data).await;
            }
        }
    }

    fn close_stdin(&mut self) {
        match self {
            Io::Pipes { stdin } => *stdin = None,
            // A terminal has no end of input but the one its user types.
            Io::Pty { .. } => {}
        }
    }

    fn resize(&mut self, payload: &[u8]) {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Size {
            width: u16,
            height: u16,
        }
        let Io::Pty { master } = self else {
            return;
        };
        // One JSON object per resize, maybe followed by a newline.
        let Ok(size) = serde_json::from_slice::<Size>(payload.trim_ascii()) else {
            return;
        };
        let ws = libc::winsize {
            ws_row: size.height,
            ws_col: size.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
        unsafe { libc::ioctl(master.get_ref().as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

/// Between fork and exec: die with the daemon, its own process group (a
/// session with the terminal as its controlling one, for a TTY), the
/// usual open-file limit, then the pod's namespaces.
fn pre_exec(cmd: &mut tokio::process::Command, prep: Arc<PreparedExec>, tty: bool) {
    // SAFETY: the hook makes raw syscalls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
                return Err(io::Error::last_os_error());
            }
            if tty {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::setpgid(0, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur = lim.rlim_cur.min(1024);
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            prep.pre_exec()
        });
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: a signal to the process group the command leads.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// A pseudo-terminal pair, both ends close-on-exec (other children the
/// daemon spawns must not inherit them), the master non-blocking.
fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    let pty = nix::pty::openpty(None, None).map_err(io::Error::from)?;
    for fd in [pty.master.as_raw_fd(), pty.slave.as_raw_fd()] {
        set_flags(fd)?;
    }
    // SAFETY: F_SETFL on a valid fd.
    unsafe {
        let fd = pty.master.as_raw_fd();
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((pty.master, pty.slave))
}

fn set_flags(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD on a valid fd.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

async fn read_pipe(mut r: impl AsyncRead + Unpin, channel: u8, out: mpsc::Sender<(u8, Vec<u8>)>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.send((channel, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The terminal's output, until the last holder of its slave side closes
/// it (EIO).
async fn read_pty(master: Arc<AsyncFd<OwnedFd>>, out: mpsc::Sender<(u8, Vec<u8>)>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let Ok(mut guard) = master.readable().await else {
            return;
        };
        let r = guard.try_io(|fd| {
            // SAFETY: read into a buffer of the given length.
            let n =
                unsafe { libc::read(fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                if out.send((STDOUT, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            Err(_would_block) => continue,
        }
    }
}

async fn write_fd(fd: &AsyncFd<OwnedFd>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|fd| {
            // SAFETY: write from a buffer of the given length.
            let n =
                unsafe { libc::write(fd.get_ref().as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

type Sink = futures::stream::SplitSink<Ws, Message>;
type Incoming_ = futures::stream::SplitStream<Ws>;

/// The exit status, then the close handshake: kubectl answers the close
/// and only then ends its output.
async fn finish(mut sink: Sink, mut incoming: Incoming_, code: i32) {
    let status = exit_status(code).to_string();
    if sink.send(frame(ERROR, status.as_bytes())).await.is_err() {
        return;
    }
    if sink.send(close()).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(m)) = incoming.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

fn close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// The Status kubelet sends on the error channel when the command ends:
/// kubectl exits with the code it carries.
pub fn exit_status(code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}
