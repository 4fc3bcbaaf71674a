//! The echo servers that stand in for a container's image: HTTP/1.1 on every
//! TCP port, a one-datagram echo on every UDP port.
//!
//! Each reply names the pod and the client address exactly as the socket
//! accepted it, so a learner sees where NAT rewrote the source.
//!
//! Sockets are bound inside each pod's network namespace by one dedicated
//! thread that moves from pod to pod (`bind_all`), then served by the one
//! tokio runtime from wherever its workers live: a socket stays in the
//! namespace it was created in.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::kernel::netns::Netns;
use crate::lab::Protocol;
use crate::probe::identity;

use super::grpc::{self, Answer, ServingStatus};
use super::health;
use super::limits::{self, Caps, Limits, Permit, Refused};
use super::Error;

/// Who answers: the pod behind a port.
///
/// Asked with a grader's challenge (`probe::identity`), an answer also
/// carries the proof that this pod's genuine server made it; without one,
/// it is exactly what a learner's `curl` has always shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoInfo {
    pub pod: String,
    pub namespace: String,
    pub node: String,
    pub pod_ip: Ipv4Addr,
}

impl EchoInfo {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }
}

/// The plain-text HTTP answer, one `key: value` per line.
pub fn http_text(info: &EchoInfo, client: SocketAddr, method: &str, path: &str) -> String {
    format!(
        "pod: {}\nnamespace: {}\nnode: {}\npodIP: {}\nclient: {}\nmethod: {}\npath: {}\n",
        info.pod, info.namespace, info.node, info.pod_ip, client, method, path
    )
}

/// The same answer for `Accept: application/json`.
pub fn http_json(info: &EchoInfo, client: SocketAddr, method: &str, path: &str) -> String {
    let v = serde_json::json!({
        "pod": info.pod,
        "namespace": info.namespace,
        "node": info.node,
        "podIP": info.pod_ip.to_string(),
        "clientIP": client.ip().to_string(),
        "clientPort": client.port(),
        "method": method,
        "path": path,
    });
    format!("{v}\n")
}

/// The UDP answer to one datagram. The trailing newline keeps `nc -u`
/// output on its own line; the datagram itself is trimmed so that the
/// newline `echo | nc -u` sends does not double up.
///
/// A grader's datagram (`podlab-probe challenge=HEX`) also gets
/// `proof=HEX` before `data=`.
pub fn udp_reply(info: &EchoInfo, client: SocketAddr, data: &[u8]) -> String {
    let data = String::from_utf8_lossy(data);
    let data = data.trim();
    let proof = data
        .strip_prefix(identity::UDP_PREFIX)
        .and_then(|c| identity::answer(identity::Kind::Udp, &info.key(), Some(c)))
        .map(|p| format!(" proof={p}"))
        .unwrap_or_default();
    format!(
        "pod={} namespace={} node={} podIP={} client={}{proof} data={data}\n",
        info.pod, info.namespace, info.node, info.pod_ip, client,
    )
}

/// Whether any `Accept` header asks for JSON.
pub fn wants_json<'a>(accept: impl IntoIterator<Item = &'a HeaderValue>) -> bool {
    accept.into_iter().any(|v| {
        v.to_str()
            .map(|s| s.contains("application/json"))
            .unwrap_or(false)
    })
}

fn respond(info: &EchoInfo, client: SocketAddr, req: &Request<Incoming>) -> Response<Answer> {
    let method = req.method().as_str();
    // The request target as sent, query included: what a learner typed.
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| req.uri().path());
    let key = info.key();
    if let Some(healthy) = health::toggle(method, req.uri().path()) {
        health::set(&key, healthy);
        let word = if healthy { "healthy" } else { "unhealthy" };
        let body = format!("pod {key} now reports itself {word}\n");
        return plain(info, StatusCode::OK, body);
    }
    let healthy = health::healthy(&key);
    if grpc::is_grpc(req) {
        let serving = if healthy {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        return grpc::answer(req.uri().path(), serving);
    }
    let challenge = req
        .headers()
        .get(identity::CHALLENGE_HEADER)
        .and_then(|v| v.to_str().ok());
    let proof = identity::answer(identity::Kind::Http, &info.key(), challenge);
    if !healthy {
        let body = format!(
            "pod {key} reports itself unhealthy (POST {} to any of its ports undoes it)\n",
            health::ENABLE_PATH
        );
        // Signed all the same: it is this pod's server that answers 503, and
        // `podlab test` should say so ("status 503"), not call the answer
        // someone else's.
        let mut resp = plain(info, StatusCode::SERVICE_UNAVAILABLE, body);
        if let Some(v) = proof.and_then(|p| HeaderValue::from_str(&p).ok()) {
            resp.headers_mut().insert(identity::PROOF_HEADER, v);
        }
        return resp;
    }
    let (mut body, ctype) = if wants_json(req.headers().get_all(ACCEPT)) {
        (http_json(info, client, method, path), "application/json")
    } else {
        (
            http_text(info, client, method, path),
            "text/plain; charset=utf-8",
        )
    };
    if let Some(p) = &proof {
        body = with_proof(&body, p);
    }
    let mut resp = answer(info, StatusCode::OK, body, ctype);
    if let Some(v) = proof.and_then(|p| HeaderValue::from_str(&p).ok()) {
        resp.headers_mut().insert(identity::PROOF_HEADER, v);
    }
    resp
}

fn answer(
    info: &EchoInfo,
    status: StatusCode,
    body: String,
    ctype: &'static str,
) -> Response<Answer> {
    let mut resp = Response::new(Answer::full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    // Names are DNS labels, so this only fails on a plan podlab did not make.
    if let Ok(v) = HeaderValue::from_str(&info.key()) {
        resp.headers_mut().insert("x-podlab-pod", v);
    }
    resp
}

fn plain(info: &EchoInfo, status: StatusCode, body: String) -> Response<Answer> {
    answer(info, status, body, "text/plain; charset=utf-8")
}

/// A body with the proof added: a `proof` field of the JSON answer, a
/// `proof:` line of the text one.
pub fn with_proof(body: &str, proof: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.insert("proof".into(), proof.into());
            format!("{}\n", serde_json::Value::Object(m))
        }
        _ => format!("{body}proof: {proof}\n"),
    }
}

/// What one pod wants bound: its namespace and its echo ports.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The pod's index in the plan.
    pub pod: usize,
    /// `namespace/name`, for messages.
    pub key: String,
    pub netns: String,
    pub ports: Vec<(u16, Protocol)>,
}

/// One pod's bound sockets, still std sockets: they become tokio sockets on
/// the runtime (`serve`).
#[derive(Debug)]
pub struct Bound {
    pub pod: usize,
    pub tcp: Vec<(u16, std::net::TcpListener)>,
    pub udp: Vec<(u16, std::net::UdpSocket)>,
}

/// Bind every pod's ports inside its namespace, on the calling thread.
///
/// Run this on a dedicated thread: it enters namespace after namespace, and
/// although the guard returns the thread home after each pod, a tokio worker
/// must never be seen half-way. One thread is enough: entering a namespace
/// costs a few microseconds, and binding 1,000 pods stays well under 100 ms.
pub fn bind_all(wanted: &[Wanted]) -> Result<Vec<Bound>, Error> {
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut bound = Bound {
            pod: w.pod,
            tcp: Vec::new(),
            udp: Vec::new(),
        };
        if w.ports.is_empty() {
            out.push(bound);
            continue;
        }
        let netns_err = |source| Error::Netns {
            pod: w.key.clone(),
            source: Box::new(source),
        };
        let ns = Netns::open(&w.netns).map_err(netns_err)?;
        let _inside = ns.enter().map_err(netns_err)?;
        let any = Ipv4Addr::UNSPECIFIED;
        for &(port, protocol) in &w.ports {
            let bind_err = |source| Error::Bind {
                pod: w.key.clone(),
                port,
                protocol,
                source,
            };
            match protocol {
                // std sets SO_REUSEADDR on listeners before binding on Unix,
                // so a restarted daemon rebinds past TIME_WAIT connections.
                Protocol::Tcp => {
                    let l = std::net::TcpListener::bind((any, port)).map_err(bind_err)?;
                    deepen_backlog(&l).map_err(bind_err)?;
                    bound.tcp.push((port, l));
                }
                Protocol::Udp => bound.udp.push((
                    port,
                    std::net::UdpSocket::bind((any, port)).map_err(bind_err)?,
                )),
                // Sorted out by the caller; never bound.
                Protocol::Sctp => {}
            }
        }
        out.push(bound);
    }
    Ok(out)
}

/// Connections the kernel completes before the daemon accepts them. std
/// listens with 128; a burst of connections (a flood the caps are about to
/// refuse, among others) would overflow that, and every client's SYN past
/// it waits a second for its retransmission. nginx listens with 511.
const LISTEN_BACKLOG: i32 = 1024;

fn deepen_backlog(l: &std::net::TcpListener) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: listen(2) on a socket this function borrows; listening again
    // only changes the backlog.
    if unsafe { libc::listen(l.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Make a bound std listener a tokio one. Must run inside the runtime.
pub fn tcp_to_tokio(l: std::net::TcpListener) -> std::io::Result<TcpListener> {
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

pub fn udp_to_tokio(s: std::net::UdpSocket) -> std::io::Result<UdpSocket> {
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Accept HTTP connections until shutdown; one task per connection, each
/// counted against the daemon's caps (`limits`).
pub async fn serve_tcp(
    listener: TcpListener,
    info: Arc<EchoInfo>,
    port: u16,
    shutdown: watch::Receiver<bool>,
) {
    serve_tcp_limited(listener, info, port, shutdown, limits::global()).await;
}

/// `serve_tcp` under the given limits.
pub async fn serve_tcp_limited(
    listener: TcpListener,
    info: Arc<EchoInfo>,
    port: u16,
    mut shutdown: watch::Receiver<bool>,
    limits: Arc<Limits>,
) {
    let gate = limits.listener(format!("{}:{port}", info.key()));
    let caps = gate.caps();
    loop {
        let (stream, peer, admitted) = tokio::select! {
            a = gate.accept(&listener) => a,
            _ = super::stopped(&mut shutdown) => return,
        };
        match admitted {
            Ok(permit) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_http(stream, peer, info.clone(), port, caps, permit));
            }
            Err(why) => refuse(stream, peer, why),
        }
    }
}

/// What the echo answers a connection past a cap, as nginx's `limit_conn`
/// does: 503, and why.
pub fn refusal_text(client: SocketAddr, why: Refused) -> String {
    let body = format!(
        "podlab: too many connections: {} is over the cap of {why}\n",
        client.ip()
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         connection: close\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Refuse without waiting: what the client sent already is read, so that
/// the close is a FIN rather than a reset that could destroy the answer;
/// the answer is written if the socket takes it at once; then the
/// connection closes.
fn refuse(stream: TcpStream, peer: SocketAddr, why: Refused) {
    use std::io::{Read, Write};
    // Out of the runtime's hands: a plain non-blocking socket, so that a
    // read or write that would wait returns at once.
    let Ok(mut s) = stream.into_std() else {
        return;
    };
    let mut sink = [0u8; 2048];
    let _ = s.read(&mut sink);
    let _ = s.write(refusal_text(peer, why).as_bytes());
    let _ = s.shutdown(std::net::Shutdown::Write);
}

/// Request headers beyond this are refused (431): nginx allows 8 KiB a
/// line, 32 KiB in all; hyper's minimum is 8 KiB.
const MAX_HEADERS_BUF: usize = 16 * 1024;

async fn serve_http(
    stream: TcpStream,
    peer: SocketAddr,
    info: Arc<EchoInfo>,
    port: u16,
    caps: Caps,
    permit: Permit,
) {
    let _permit = permit;
    // Until the first byte arrives the connection costs its socket and this
    // small task: hyper's 8 KiB read buffer comes with the request. A peek,
    // not `readable()`: a fresh tokio stream reports itself readable before
    // anything has come, and only a read that would block clears that.
    let mut first = [0u8; 1];
    match tokio::time::timeout(caps.header_timeout, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(Ok(_)) => return,
        _ => {
            tracing::debug!(port, client = %peer, "no request in time: closed");
            return;
        }
    }
    // HTTP/2 with prior knowledge (gRPC, `curl --http2-prior-knowledge`)
    // opens with its preface, whose first word no HTTP/1 method has.
    let mut word = [0u8; 4];
    let h2 = first[0] == b'P' && matches!(stream.peek(&mut word).await, Ok(4) if &word == b"PRI ");
    let last = Arc::new(AtomicU64::new(limits::now_ms()));
    let io = TokioIo::new(Watched {
        inner: stream,
        last: last.clone(),
    });
    let svc = service_fn(move |req: Request<Incoming>| {
        let resp = respond(&info, peer, &req);
        access_log(&info, port, peer, &req, &resp);
        async move { Ok::<_, Infallible>(resp) }
    });
    if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADERS_BUF as u32)
            .max_concurrent_streams(16);
        let conn = Box::pin(builder.serve_connection(io, svc));
        return drive(conn, &last, caps, port, peer).await;
    }
    // The header deadline runs from the connection's start and again from
    // each answer, so it is the keep-alive timeout too.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(caps.header_timeout)
        .max_buf_size(MAX_HEADERS_BUF);
    // Boxed: the task's future stays small while it waits above.
    let conn = Box::pin(builder.serve_connection(io, svc));
    drive(conn, &last, caps, port, peer).await
}

/// Serve one connection until it ends or moves nothing for the idle
/// timeout.
async fn drive<F, E>(
    mut conn: Pin<Box<F>>,
    last: &AtomicU64,
    caps: Caps,
    port: u16,
    peer: SocketAddr,
) where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    loop {
        let quiet = Duration::from_millis(limits::now_ms().saturating_sub(last.load(Relaxed)));
        if quiet >= caps.idle_timeout {
            tracing::debug!(port, client = %peer, "idle: closed");
            return;
        }
        tokio::select! {
            r = &mut conn => {
                // Anything that is not HTTP ends here as an error on this
                // connection only; it is the learner's `nc` session, not a
                // fault of the daemon.
                if let Err(e) = r {
                    tracing::debug!(port, client = %peer, "http connection ended: {e}");
                }
                return;
            }
            _ = tokio::time::sleep(caps.idle_timeout - quiet) => {}
        }
    }
}

/// The request in the access log of the container behind the port
/// (`super::access`).
fn access_log(
    info: &EchoInfo,
    port: u16,
    peer: SocketAddr,
    req: &Request<Incoming>,
    resp: &Response<Answer>,
) {
    use hyper::body::Body as _;
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let request = format!("{} {target} {:?}", req.method(), req.version());
    let agent = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let bytes = resp.body().size_hint().exact().unwrap_or(0);
    let line = super::access::line(
        peer,
        std::time::SystemTime::now(),
        &request,
        resp.status().as_u16(),
        bytes,
        agent,
    );
    super::access::record(&info.key(), port, &line);
}

/// A stream that notes when a byte last moved, for the idle timeout.
struct Watched {
    inner: TcpStream,
    last: Arc<AtomicU64>,
}

impl Watched {
    fn moved<T>(
        &self,
        r: Poll<std::io::Result<T>>,
        n: impl Fn(&T) -> bool,
    ) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Ok(v)) = &r {
            if n(v) {
                self.last.store(limits::now_ms(), Relaxed);
            }
        }
        r
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let after = buf.filled().len();
        self.moved(r, |_| after > before)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.moved(r, |n| *n > 0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.moved(r, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// Answer every datagram with one datagram until shutdown.
pub async fn serve_udp(
    socket: UdpSocket,
    info: Arc<EchoInfo>,
    port: u16,
    mut shutdown: watch::Receiver<bool>,
) {
    // A descriptor the connections' budget must leave room for.
    let _socket = limits::global().listener(format!("{}:{port}/udp", info.key()));
    loop {
        let readable = tokio::select! {
            r = socket.readable() => r,
            _ = super::stopped(&mut shutdown) => return,
        };
        if let Err(e) = readable {
            tracing::warn!(pod = %info.key(), port, "udp socket failed: {e}");
            return;
        }
        // Allocated per datagram rather than per socket: a thousand idle
        // pods must not hold a thousand 64 KiB buffers.
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let (n, peer) = match socket.try_recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            // An ICMP error from an earlier reply surfaces here; it concerns
            // that client only.
            Err(e) => {
                tracing::debug!(pod = %info.key(), port, "udp receive: {e}");
                continue;
            }
        };
        let reply = udp_reply(&info, peer, &buf[..n]);
        if let Err(e) = socket.send_to(reply.as_bytes(), peer).await {
            tracing::debug!(pod = %info.key(), port, client = %peer, "udp reply: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> EchoInfo {
        EchoInfo {
            pod: "pod-1".into(),
            namespace: "default".into(),
            node: "node-1".into(),
            pod_ip: Ipv4Addr::new(10, 244, 1, 2),
        }
    }

    fn client() -> SocketAddr {
        "10.244.2.2:41234".parse().unwrap()
    }

    #[test]
    fn text_body_lists_pod_and_client() {
        assert_eq!(
            http_text(&info(), client(), "GET", "/"),
            "pod: pod-1\nnamespace: default\nnode: node-1\npodIP: 10.244.1.2\n\
             client: 10.244.2.2:41234\nmethod: GET\npath: /\n"
        );
    }

    #[test]
    fn json_body_splits_client() {
        let body = http_json(&info(), client(), "POST", "/a?b=1");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "pod": "pod-1", "namespace": "default", "node": "node-1",
                "podIP": "10.244.1.2", "clientIP": "10.244.2.2",
                "clientPort": 41234, "method": "POST", "path": "/a?b=1",
            })
        );
    }

    #[test]
    fn udp_reply_trims_and_survives_binary() {
        assert_eq!(
            udp_reply(&info(), client(), b"hello\n"),
            "pod=pod-1 namespace=default node=node-1 podIP=10.244.1.2 \
             client=10.244.2.2:41234 data=hello\n"
        );
        let r = udp_reply(&info(), client(), &[0xff, b'a', b' ']);
        assert!(r.ends_with("data=\u{fffd}a\n"), "{r}");
    }

    #[test]
    fn json_is_chosen_by_accept() {
        let j = HeaderValue::from_static("text/html, application/json;q=0.9");
        let t = HeaderValue::from_static("*/*");
        assert!(wants_json([&j]));
        assert!(wants_json([&t, &j]));
        assert!(!wants_json([&t]));
        assert!(!wants_json(std::iter::empty::<&HeaderValue>()));
    }

    #[tokio::test]
    async fn http_and_udp_answer_on_loopback() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (_tx, rx) = watch::channel(false);
        let info = Arc::new(info());

        let l = tcp_to_tokio(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve_tcp(l, info.clone(), addr.port(), rx.clone()));

        // Garbage first: it must cost only its own connection.
        let mut junk = tokio::net::TcpStream::connect(addr).await.unwrap();
        junk.write_all(b"\x16\x03\x01 not http\r\n\r\n")
            .await
            .unwrap();
        let mut sink = Vec::new();
        let _ = junk.read_to_end(&mut sink).await;

        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let me = s.local_addr().unwrap();
        s.write_all(
            b"GET /x HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.contains("x-podlab-pod: default/pod-1"), "{out}");
        assert!(out.contains("content-type: application/json"), "{out}");
        assert!(
            out.contains(&format!("\"clientPort\":{}", me.port())),
            "{out}"
        );

        let u = udp_to_tokio(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        let uaddr = u.local_addr().unwrap();
        tokio::spawn(serve_udp(u, info.clone(), uaddr.port(), rx.clone()));
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.send_to(b"ping\n", uaddr).await.unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), c.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let reply = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(reply.ends_with("data=ping\n"), "{reply}");
        assert!(
            reply.contains(&format!("client={}", c.local_addr().unwrap())),
            "{reply}"
        );
    }

    #[tokio::test]
    async fn a_challenge_gets_a_proof_and_nothing_else_changes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let id = identity::install_for_tests("podlab-tests");
        let (_tx, rx) = watch::channel(false);
        let l = tcp_to_tokio(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve_tcp(l, Arc::new(info()), addr.port(), rx));
        let c = identity::challenge();
        let get = |req: String| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let out = get(format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}: {c}\r\nConnection: close\r\n\r\n",
            identity::CHALLENGE_HEADER
        ))
        .await;
        let proof = id.prove(identity::Kind::Http, "default/pod-1", &c);
        assert!(out.contains(&format!("x-podlab-proof: {proof}")), "{out}");
        assert!(
            out.ends_with(&format!("path: /\nproof: {proof}\n")),
            "{out}"
        );
        // What a learner's curl sends: the answer of old, no proof.
        let plain = get("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into()).await;
        assert!(!plain.contains("proof"), "{plain}");
        assert!(plain.ends_with("method: GET\npath: /\n"), "{plain}");
        // Not a challenge: nothing signed.
        let junk = get(format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}: sign this\r\nConnection: close\r\n\r\n",
            identity::CHALLENGE_HEADER
        ))
        .await;
        assert!(!junk.contains("proof"), "{junk}");
        let r = udp_reply(
            &info(),
            client(),
            format!("{}{c}", identity::UDP_PREFIX).as_bytes(),
        );
        let udp = id.prove(identity::Kind::Udp, "default/pod-1", &c);
        assert!(r.contains(&format!(" proof={udp} data=")), "{r}");
        assert_eq!(
            with_proof("{\"pod\":\"p\"}\n", "ab"),
            "{\"pod\":\"p\",\"proof\":\"ab\"}\n"
        );
    }

    #[tokio::test]
    async fn an_unhealthy_echo_signs_its_503() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let id = identity::install_for_tests("podlab-tests");
        // A pod of its own: the health state is global to the process.
        let sick = EchoInfo {
            pod: "sick-1".into(),
            ..info()
        };
        health::set("default/sick-1", false);
        let (_tx, rx) = watch::channel(false);
        let l = tcp_to_tokio(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve_tcp(l, Arc::new(sick), addr.port(), rx));
        let c = identity::challenge();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\n{}: {c}\r\nConnection: close\r\n\r\n",
                identity::CHALLENGE_HEADER
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        health::set("default/sick-1", true);
        assert!(out.starts_with("HTTP/1.1 503"), "{out}");
        let proof = id.prove(identity::Kind::Http, "default/sick-1", &c);
        assert!(out.contains(&format!("x-podlab-proof: {proof}")), "{out}");
    }

    fn caps(per_client: usize, header: Duration, idle: Duration) -> Caps {
        Caps {
            descriptors: 100,
            total: 100,
            per_listener: 100,
            per_client,
            header_timeout: header,
            idle_timeout: idle,
        }
    }

    /// An echo on loopback under `caps`.
    async fn server(caps: Caps) -> SocketAddr {
        server_with(caps).await.0
    }

    async fn server_with(caps: Caps) -> (SocketAddr, Arc<Limits>) {
        let (tx, rx) = watch::channel(false);
        // Kept for the runtime's life: dropping it would stop the server.
        std::mem::forget(tx);
        let l = tcp_to_tokio(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let limits = Arc::new(Limits::new(caps));
        tokio::spawn(serve_tcp_limited(
            l,
            Arc::new(info()),
            addr.port(),
            rx,
            limits.clone(),
        ));
        (addr, limits)
    }

    /// Everything the server sends until it closes, and how long that took.
    async fn until_closed(s: &mut TcpStream) -> (String, Duration) {
        use tokio::io::AsyncReadExt;
        let start = tokio::time::Instant::now();
        let mut out = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        assert!(r.is_ok(), "the server did not close the connection");
        (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
    }

    #[tokio::test]
    async fn past_the_client_cap_a_503_says_why() {
        use tokio::io::AsyncWriteExt;
        let addr = server(caps(1, Duration::from_secs(30), Duration::from_secs(60))).await;
        let held = TcpStream::connect(addr).await.unwrap();
        // Accepted and counted before the next one arrives.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut over = TcpStream::connect(addr).await.unwrap();
        over.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (text, took) = until_closed(&mut over).await;
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("127.0.0.1 is over the cap of 1 connections per client\n"),
            "{text}"
        );
        assert!(
            took < Duration::from_secs(2),
            "refused at once, not {took:?}"
        );
        // The place is given back with the connection.
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut again = TcpStream::connect(addr).await.unwrap();
        again
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (text, _) = until_closed(&mut again).await;
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    }

    #[tokio::test]
    async fn silent_and_kept_alive_connections_end_at_the_header_deadline() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let header = Duration::from_millis(300);
        let addr = server(caps(10, header, Duration::from_secs(60))).await;
        // Nothing sent at all.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let (text, took) = until_closed(&mut silent).await;
        assert_eq!(text, "");
        assert!(took >= header && took < Duration::from_secs(3), "{took:?}");
        // Half a request line.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HT").await.unwrap();
        let (_, took) = until_closed(&mut slow).await;
        assert!(took >= header && took < Duration::from_secs(3), "{took:?}");
        // One answer, then a keep-alive connection that asks nothing more.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = kept.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
        let (_, took) = until_closed(&mut kept).await;
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[tokio::test]
    async fn a_connection_that_moves_nothing_ends_at_the_idle_timeout() {
        use tokio::io::AsyncWriteExt;
        // A client that pipelines requests and never reads an answer: the
        // server's writes stall once the socket buffers are full, where no
        // header deadline runs. Only the idle timeout ends that.
        async fn stalled(idle: Duration) -> (TcpStream, Arc<Limits>) {
            let (addr, limits) = server_with(caps(10, Duration::from_secs(30), idle)).await;
            let mut s = TcpStream::connect(addr).await.unwrap();
            let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(1000);
            for _ in 0..400 {
                let w = tokio::time::timeout(Duration::from_millis(300), s.write_all(&req)).await;
                if !matches!(w, Ok(Ok(()))) {
                    break;
                }
            }
            (s, limits)
        }
        // The server's side ends when its permit is given back.
        async fn ends_within(limits: &Limits, d: Duration) -> bool {
            let start = tokio::time::Instant::now();
            while limits.open() > 0 {
                if start.elapsed() > d {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            true
        }
        let (_kept, limits) = stalled(Duration::from_secs(60)).await;
        assert_eq!(limits.open(), 1);
        assert!(
            !ends_within(&limits, Duration::from_secs(2)).await,
            "ended by itself"
        );
        let (_s, limits) = stalled(Duration::from_millis(500)).await;
        assert!(
            ends_within(&limits, Duration::from_secs(5)).await,
            "not ended"
        );
    }
}
