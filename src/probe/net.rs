//! One connection attempt from inside a namespace.
//!
//! A socket belongs to the namespace it was created in, whichever thread
//! uses it later. So each probe creates its socket on a blocking thread
//! that enters the source's namespace (and is back home before the socket
//! is returned), then connects from the runtime with one timeout: a
//! `blocked` probe costs exactly one timeout, and every probe runs at once.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::time::timeout;

use super::identity;
use crate::kernel::netns::Netns;

/// What the server said about itself and the connection, when it said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Server {
    /// `namespace/name` of the pod whose echo answered.
    pub pod: Option<String>,
    /// The client address as the server saw it.
    pub client_ip: Option<Ipv4Addr>,
    /// HTTP status, when the answer was HTTP.
    pub status: Option<u16>,
    pub body: String,
    /// The challenge this probe sent, and the proof that came back
    /// (`identity`): who really answered.
    pub challenge: Option<String>,
    pub proof: Option<String>,
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Connected; the server's answer if one was asked for and came.
    Connected(Option<Server>),
    Refused,
    /// No answer in time (`None`), or why not ("no route to host").
    Blocked(Option<String>),
    /// The probe itself could not run (a namespace gone, ...).
    Failed(String),
}

/// Create a socket inside `netns`, on the calling (blocking) thread.
fn in_netns<T>(netns: &str, make: impl FnOnce() -> io::Result<T>) -> Result<T, String> {
    let ns = Netns::open(netns).map_err(|e| crate::error_chain(&e))?;
    let _inside = ns.enter().map_err(|e| crate::error_chain(&e))?;
    make().map_err(|e| format!("cannot create a socket in {netns}: {e}"))
}

async fn socket_in<T: Send + 'static>(
    netns: &str,
    make: fn() -> io::Result<T>,
) -> Result<T, String> {
    let netns = netns.to_string();
    tokio::task::spawn_blocking(move || in_netns(&netns, make))
        .await
        .map_err(|e| format!("probe thread failed: {e}"))?
}

fn from_error(e: &io::Error) -> Seen {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => Seen::Refused,
        Some(libc::EHOSTUNREACH) => Seen::Blocked(Some("no route to host".into())),
        Some(libc::ENETUNREACH) => Seen::Blocked(Some("network unreachable".into())),
        Some(libc::ETIMEDOUT) => Seen::Blocked(None),
        _ => Seen::Failed(e.to_string()),
    }
}

/// The probe's request, with a fresh challenge for podlab's echo to sign.
fn request(challenge: &str) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: podlab-probe\r\nAccept: application/json\r\n\
         User-Agent: podlab-test\r\n{}: {challenge}\r\nConnection: close\r\n\r\n",
        identity::CHALLENGE_HEADER
    )
}

/// Connect over TCP; with `ask`, also send an HTTP request and read the
/// answer, waiting at most `ask` for it.
pub async fn tcp(netns: &str, to: SocketAddrV4, wait: Duration, ask: Option<Duration>) -> Seen {
    tcp_traced(netns, to, wait, ask).await.1
}

fn tcp_socket() -> io::Result<TcpSocket> {
    let s = TcpSocket::new_v4()?;
    // Bound before connecting, so the flow's source port is known (and
    // can be looked up in conntrack) whatever becomes of the connection.
    s.bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))?;
    Ok(s)
}

/// `tcp`, also saying which local address the probe was sent from.
pub async fn tcp_traced(
    netns: &str,
    to: SocketAddrV4,
    wait: Duration,
    ask: Option<Duration>,
) -> (Option<SocketAddrV4>, Seen) {
    let sock = match socket_in(netns, tcp_socket).await {
        Ok(s) => s,
        Err(e) => return (None, Seen::Failed(e)),
    };
    let local = v4(sock.local_addr().ok());
    let mut stream = match timeout(wait, sock.connect(SocketAddr::V4(to))).await {
        Err(_) => return (local, Seen::Blocked(None)),
        Ok(Err(e)) => return (local, from_error(&e)),
        Ok(Ok(s)) => s,
    };
    // The source address is chosen at connect time.
    let local = v4(stream.local_addr().ok()).or(local);
    let Some(ask) = ask else {
        return (local, Seen::Connected(None));
    };
    let challenge = identity::challenge();
    let exchange = async {
        stream.write_all(request(&challenge).as_bytes()).await?;
        let mut buf = Vec::new();
        (&mut stream).take(64 * 1024).read_to_end(&mut buf).await?;
        Ok::<_, io::Error>(buf)
    };
    let seen = match timeout(ask, exchange).await {
        Ok(Ok(buf)) if !buf.is_empty() => Seen::Connected(Some(Server {
            challenge: Some(challenge),
            ..parse_http(&buf)
        })),
        // A server that is not HTTP, or slow: connected is all we know.
        _ => Seen::Connected(None),
    };
    (local, seen)
}

fn v4(a: Option<SocketAddr>) -> Option<SocketAddrV4> {
    match a {
        Some(SocketAddr::V4(a)) => Some(a),
        _ => None,
    }
}

fn udp_socket() -> io::Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Send one datagram and wait for one back. An ICMP port unreachable
/// surfaces as ECONNREFUSED on a connected UDP socket: `refused`.
pub async fn udp(netns: &str, to: SocketAddrV4, wait: Duration) -> Seen {
    udp_traced(netns, to, wait).await.1
}

/// `udp`, also saying which local address the datagram was sent from.
pub async fn udp_traced(
    netns: &str,
    to: SocketAddrV4,
    wait: Duration,
) -> (Option<SocketAddrV4>, Seen) {
    let std_sock = match socket_in(netns, udp_socket).await {
        Ok(s) => s,
        Err(e) => return (None, Seen::Failed(e)),
    };
    let sock = match UdpSocket::from_std(std_sock) {
        Ok(s) => s,
        Err(e) => return (None, Seen::Failed(e.to_string())),
    };
    if let Err(e) = sock.connect(SocketAddr::V4(to)).await {
        return (None, from_error(&e));
    }
    let local = v4(sock.local_addr().ok());
    let challenge = identity::challenge();
    let datagram = format!("{}{challenge}", identity::UDP_PREFIX);
    if let Err(e) = sock.send(datagram.as_bytes()).await {
        return (local, from_error(&e));
    }
    let mut buf = vec![0u8; 4096];
    let seen = match timeout(wait, sock.recv(&mut buf)).await {
        Err(_) => Seen::Blocked(None),
        Ok(Err(e)) => from_error(&e),
        Ok(Ok(n)) => Seen::Connected(Some(Server {
            challenge: Some(challenge),
            ..parse_udp(&buf[..n])
        })),
    };
    (local, seen)
}

/// An HTTP answer; podlab's echo's JSON body names the pod and the client.
pub fn parse_http(buf: &[u8]) -> Server {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok());
    let proof = head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(identity::PROOF_HEADER)
            .then(|| v.trim().to_string())
    });
    let mut server = Server {
        status,
        body: body.to_string(),
        proof,
        ..Server::default()
    };
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body.trim()) {
        if let (Some(ns), Some(pod)) = (v["namespace"].as_str(), v["pod"].as_str()) {
            server.pod = Some(format!("{ns}/{pod}"));
        }
        server.client_ip = v["clientIP"].as_str().and_then(|s| s.parse().ok());
    }
    server
}

/// podlab's UDP echo: `pod=P namespace=N ... client=IP:PORT data=...`.
pub fn parse_udp(buf: &[u8]) -> Server {
    let text = String::from_utf8_lossy(buf).into_owned();
    let field = |key: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
    };
    let pod = match (field("namespace="), field("pod=")) {
        (Some(ns), Some(p)) => Some(format!("{ns}/{p}")),
        _ => None,
    };
    let client_ip = field("client=")
        .and_then(|c| c.parse::<SocketAddrV4>().ok())
        .map(|a| *a.ip());
    let proof = field("proof=");
    Server {
        pod,
        client_ip,
        status: None,
        proof,
        challenge: None,
        body: text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_http_answer_is_read() {
        let s = parse_http(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n\
{\"pod\":\"pod-1\",\"namespace\":\"default\",\"clientIP\":\"10.244.2.2\",\"clientPort\":4}\n",
        );
        assert_eq!(s.status, Some(200));
        assert_eq!(s.pod.as_deref(), Some("default/pod-1"));
        assert_eq!(s.client_ip, Some(Ipv4Addr::new(10, 244, 2, 2)));
        assert_eq!(s.proof, None);
        let s = parse_http(b"HTTP/1.1 200 OK\r\nX-Podlab-Proof: ab12\r\n\r\n{}");
        assert_eq!(s.proof.as_deref(), Some("ab12"));
    }

    #[test]
    fn other_http_answer_has_a_status_only() {
        let s = parse_http(b"HTTP/1.0 404 Not Found\r\n\r\nnope");
        assert_eq!(s.status, Some(404));
        assert_eq!(s.pod, None);
        assert_eq!(s.body, "nope");
    }

    #[test]
    fn echo_udp_answer_is_read() {
        let s = parse_udp(b"pod=p namespace=x node=node-1 podIP=10.244.1.2 client=10.244.2.2:5353 data=podlab-probe\n");
        assert_eq!(s.pod.as_deref(), Some("x/p"));
        assert_eq!(s.client_ip, Some(Ipv4Addr::new(10, 244, 2, 2)));
    }
}
