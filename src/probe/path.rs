//! Path checks: what one connection cannot see, measured with ICMP echoes
//! from inside the source's namespace, as `ping` would.
//!
//! - `mtu`: echoes of the given size with DF set (`ping -M do -s N`); a
//!   node whose link is smaller drops them, or answers "fragmentation
//!   needed", and a handshake of small packets never notices.
//! - `loss`: N paced echoes, the share unanswered against a threshold.
//! - `latency`: the median round trip of N echoes.
//! - `rate`: a burst of full-size echoes and how fast they come back: a
//!   token bucket passes its burst, then its rate, and drops the rest.
//!
//! One raw socket per check, made inside the namespace on a blocking
//! thread (which is home again before it is used); echoes carry an id of
//! their own, so that checks in one namespace at once do not mix.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::kernel::netns::Netns;
use crate::lab::expect::{PathCheck, PathKind};
use crate::plan::Plan;

use super::{resolve, Options};

const IP_HEADER: usize = 20;
const ICMP_HEADER: usize = 8;

/// What a session of echoes saw.
#[derive(Debug, Default)]
pub struct Session {
    pub sent: usize,
    /// Round trip of each answered echo, by sequence number.
    pub rtt: HashMap<u16, Duration>,
    /// ICMP errors that came back for our echoes, in words.
    pub errors: Vec<String>,
    /// From the first echo sent to the last answer.
    pub span: Duration,
    /// Why echoes could not be sent (EMSGSIZE: the source's own link).
    pub send_error: Option<String>,
}

/// How a session sends.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Whole IP packet size.
    pub size: usize,
    pub count: usize,
    /// Between echoes; zero for a burst.
    pub gap: Duration,
    /// Set DF and ignore the path MTU the kernel has learnt.
    pub df: bool,
    /// How long to wait for answers after the last echo.
    pub wait: Duration,
}

fn raw_socket(df: bool) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mode: libc::c_int = if df {
        libc::IP_PMTUDISC_PROBE
    } else {
        libc::IP_PMTUDISC_DONT
    };
    setsockopt(&fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode)?;
    // Room for a burst's answers: they arrive faster than they are read.
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20)?;
    Ok(fd)
}

fn setsockopt(fd: &OwnedFd, level: i32, name: i32, v: libc::c_int) -> std::io::Result<()> {
    // SAFETY: setsockopt(2) with a pointer to a live c_int and its size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request of `size` bytes of IP packet.
pub fn echo_request(id: u16, seq: u16, size: usize) -> Vec<u8> {
    let len = size.saturating_sub(IP_HEADER).max(ICMP_HEADER);
    let mut p = vec![0u8; len];
    p[0] = 8;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(ICMP_HEADER) {
        *b = (i % 251) as u8;
    }
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// What one received packet (IP header included) means for session `id`.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    Reply(u16),
    /// An error about one of our echoes, in words.
    Error(String),
    Other,
}

pub fn heard(pkt: &[u8], id: u16) -> Heard {
    let ihl = match pkt.first() {
        Some(b) => usize::from(b & 0x0f) * 4,
        None => return Heard::Other,
    };
    let Some(icmp) = pkt.get(ihl..) else {
        return Heard::Other;
    };
    let src = match pkt.get(12..16) {
        Some(s) => Ipv4Addr::new(s[0], s[1], s[2], s[3]),
        None => return Heard::Other,
    };
    let word = |at: usize| {
        icmp.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    match icmp.first() {
        Some(0) if word(4) == Some(id) => word(6).map_or(Heard::Other, Heard::Reply),
        Some(t @ (3 | 11)) => {
            // The offending packet's header and first 8 bytes follow.
            let inner = &icmp[ICMP_HEADER.min(icmp.len())..];
            let iihl = inner.first().map_or(20, |b| usize::from(b & 0x0f) * 4);
            let echo = inner.get(iihl..iihl + 8);
            if echo.is_none_or(|e| e[0] != 8 || u16::from_be_bytes([e[4], e[5]]) != id) {
                return Heard::Other;
            }
            let code = icmp.get(1).copied().unwrap_or(0);
            Heard::Error(match (t, code) {
                (3, 4) => format!(
                    "{src} answered \"fragmentation needed\": next-hop MTU {}",
                    word(6).unwrap_or(0)
                ),
                (3, c) => format!("{src} answered \"destination unreachable\" (code {c})"),
                _ => format!("{src} answered \"time exceeded\""),
            })
        }
        _ => Heard::Other,
    }
}

/// Send echoes from inside `netns` to `to` as `pace` says, and listen.
/// Blocking: run it on a blocking thread.
pub fn session(netns: &str, to: Ipv4Addr, pace: Pace) -> Result<Session, String> {
    let fd = {
        let ns = Netns::open(netns).map_err(|e| crate::error_chain(&e))?;
        let _inside = ns.enter().map_err(|e| crate::error_chain(&e))?;
        raw_socket(pace.df).map_err(|e| format!("cannot open an ICMP socket in {netns}: {e}"))?
    };
    let id = (u16::from_be_bytes(
        super::identity::unhex(&super::identity::challenge()[..4])
            .and_then(|b| b.try_into().ok())
            .unwrap_or([0x50, 0x4c]),
    ))
    .max(1);
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(to).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut s = Session::default();
    let mut sent_at: HashMap<u16, Instant> = HashMap::new();
    // Made before the clock starts: a burst is measured, not its making.
    let packets: Vec<Vec<u8>> = (0..pace.count as u16)
        .map(|seq| echo_request(id, seq, pace.size))
        .collect();
    let start = Instant::now();
    let mut last_answer = start;
    let mut buf = vec![0u8; 65_536];
    let mut listen = |until: Instant, s: &mut Session, sent_at: &HashMap<u16, Instant>| loop {
        let now = Instant::now();
        if now >= until {
            return;
        }
        let ms = (until - now).as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one live pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            continue;
        }
        // SAFETY: recv(2) into a buffer this closure owns, within its length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            continue;
        }
        match heard(&buf[..n as usize], id) {
            Heard::Reply(seq) => {
                if let Some(t) = sent_at.get(&seq) {
                    s.rtt.entry(seq).or_insert_with(|| t.elapsed());
                    last_answer = Instant::now();
                }
            }
            Heard::Error(e) => {
                if !s.errors.contains(&e) {
                    s.errors.push(e);
                }
            }
            Heard::Other => {}
        }
        if s.rtt.len() == s.sent && s.sent == pace.count {
            return;
        }
    };
    for (seq, p) in packets.iter().enumerate() {
        let seq = seq as u16;
        // SAFETY: sendto(2) of a live buffer to a sockaddr_in of its size.
        let r = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                p.as_ptr().cast(),
                p.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            // A full queue in a burst is the shaping being measured.
            if e.raw_os_error() != Some(libc::ENOBUFS) {
                s.send_error = Some(match e.raw_os_error() {
                    Some(libc::EMSGSIZE) => {
                        format!("the source's own link is smaller than {} bytes", pace.size)
                    }
                    _ => format!("cannot send an echo to {to}: {e}"),
                });
                break;
            }
        }
        sent_at.insert(seq, Instant::now());
        s.sent += 1;
        if !pace.gap.is_zero() {
            listen(Instant::now() + pace.gap, &mut s, &sent_at);
        }
    }
    listen(Instant::now() + pace.wait, &mut s, &sent_at);
    s.span = last_answer.saturating_duration_since(start);
    Ok(s)
}

/// Run one path check.
pub async fn check(plan: &Plan, x: &PathCheck, opts: Options) -> (bool, String, String) {
    let expected = x.expected();
    let resolved = resolve::source(plan, &x.from.value).and_then(|from| {
        let to = resolve::target(plan, &x.to.value, &from, 0, crate::lab::Protocol::Tcp)?;
        Ok((from, to))
    });
    let (from, to) = match resolved {
        Ok(r) => r,
        Err(e) => return (false, expected, format!("cannot probe: {e}")),
    };
    let wait = opts.timeout;
    let pace = match x.kind {
        PathKind::Mtu => Pace {
            size: x.param("size") as usize,
            count: 3,
            gap: Duration::from_millis(20),
            df: true,
            wait,
        },
        PathKind::Loss => Pace {
            size: 84,
            count: x.param("probes") as usize,
            gap: Duration::from_millis(2),
            df: false,
            wait,
        },
        PathKind::Latency => Pace {
            size: 84,
            count: x.param("probes") as usize,
            gap: Duration::from_millis(10),
            df: false,
            wait,
        },
        PathKind::Rate => Pace {
            size: 1400.min(plan.mtu as usize),
            count: x.param("probes") as usize,
            gap: Duration::ZERO,
            df: false,
            wait,
        },
    };
    let netns = from.netns.clone();
    let ip = to.ip;
    let run = move |pace: Pace| {
        let netns = netns.clone();
        async move {
            tokio::task::spawn_blocking(move || session(&netns, ip, pace))
                .await
                .map_err(|e| format!("probe thread failed: {e}"))?
        }
    };
    let s = match run(pace).await {
        Ok(s) => s,
        Err(e) => return (false, expected, format!("cannot probe: {e}")),
    };
    let target = super::named(plan, ip);
    let (passed, mut observed) = judge(x, &pace, &s, &target);
    if !passed && x.kind == PathKind::Mtu && s.send_error.is_none() {
        // Whether small packets pass says which of the two is wrong: the
        // size, or the path as a whole.
        let small = Pace {
            size: 84,
            count: 3,
            ..pace
        };
        if let Ok(t) = run(small).await {
            observed.push_str(if t.rtt.is_empty() {
                "; small echoes go unanswered too: the path is down, not only too small"
            } else {
                "; small echoes pass: the path is smaller than its links say"
            });
        }
    }
    (passed, expected, observed)
}

fn judge(x: &PathCheck, pace: &Pace, s: &Session, target: &str) -> (bool, String) {
    if let Some(e) = &s.send_error {
        return (false, e.clone());
    }
    let got = s.rtt.len();
    let errors = if s.errors.is_empty() {
        String::new()
    } else {
        format!(" ({})", s.errors.join("; "))
    };
    match x.kind {
        PathKind::Mtu => {
            let ok = got > 0 && s.errors.is_empty();
            (
                ok,
                format!(
                    "{got} of {} echoes of {} bytes with DF set answered by {target}{errors}",
                    s.sent, pace.size
                ),
            )
        }
        PathKind::Loss => {
            let lost = s.sent - got.min(s.sent);
            let pct = 100.0 * lost as f64 / s.sent.max(1) as f64;
            (
                pct <= x.param("maxPercent") as f64 && s.sent > 0,
                format!(
                    "{lost} of {} echoes to {target} lost ({pct:.0}%){errors}",
                    s.sent
                ),
            )
        }
        PathKind::Latency => {
            let mut v: Vec<Duration> = s.rtt.values().copied().collect();
            v.sort();
            let Some(median) = v.get(v.len() / 2) else {
                return (false, format!("no echo answered by {target}{errors}"));
            };
            let ms = median.as_secs_f64() * 1000.0;
            (
                ms <= x.param("maxMs") as f64,
                format!(
                    "median round trip {ms:.2} ms over {got} of {} echoes to {target}",
                    s.sent
                ),
            )
        }
        PathKind::Rate => {
            let secs = s.span.as_secs_f64().max(1e-6);
            let mbit = (got * pace.size * 8) as f64 / secs / 1e6;
            (
                mbit >= x.param("minMbit") as f64,
                format!(
                    "{mbit:.1} Mbit/s: {got} of {} echoes of {} bytes back from {target} in {:.0} ms",
                    s.sent,
                    pace.size,
                    secs * 1000.0
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_and_its_answers_are_told_apart() {
        let req = echo_request(0x1234, 7, 100);
        assert_eq!(req.len(), 80);
        assert_eq!(checksum(&req), 0, "a packet with its checksum sums to zero");
        let ip = |body: &[u8]| {
            let mut p = vec![
                0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
            ];
            p.extend_from_slice(body);
            p
        };
        let mut reply = req.clone();
        reply[0] = 0;
        assert_eq!(heard(&ip(&reply), 0x1234), Heard::Reply(7));
        assert_eq!(heard(&ip(&reply), 0x1235), Heard::Other, "another session");
        // Fragmentation needed, MTU 1400, quoting our echo.
        let mut err = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
        err.extend_from_slice(&ip(&req)[..28]);
        assert_eq!(
            heard(&ip(&err), 0x1234),
            Heard::Error("10.0.0.2 answered \"fragmentation needed\": next-hop MTU 1400".into())
        );
        assert_eq!(heard(&[], 1), Heard::Other);
        assert_eq!(heard(&[0x4f], 1), Heard::Other);
    }
}
