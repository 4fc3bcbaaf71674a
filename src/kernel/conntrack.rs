//! One connection-tracking entry, looked up by its original tuple inside a
//! namespace (`conntrack -G`): the reply tuple says what NAT the kernel did
//! to that flow (DNAT: the reply comes from somewhere else than the
//! original destination; SNAT: it goes back to somewhere else than the
//! original source).

use std::net::Ipv4Addr;
use std::process::Command;

use serde::Serialize;

use super::netns::Netns;
use super::Error;

/// One direction of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tuple {
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// A conntrack entry: the flow as it was sent, and as replies come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub protocol: String,
    /// TCP state (`SYN_SENT`, `ESTABLISHED`, `TIME_WAIT`, ...), if any.
    pub state: Option<String>,
    pub original: Tuple,
    pub reply: Tuple,
}

impl Entry {
    /// Where the packets of this flow really go: the reply's source.
    pub fn dnat(&self) -> Option<(Ipv4Addr, u16)> {
        let to = (self.reply.src, self.reply.sport);
        (to != (self.original.dst, self.original.dport)).then_some(to)
    }

    /// The source the packets leave with: the reply's destination.
    pub fn snat(&self) -> Option<(Ipv4Addr, u16)> {
        let to = (self.reply.dst, self.reply.dport);
        (to != (self.original.src, self.original.sport)).then_some(to)
    }
}

/// `conntrack -G -p PROTO -s SRC -d DST --sport N --dport M` in `netns`.
/// `None`: the kernel tracks no such flow there.
pub fn get(netns: &str, protocol: &str, t: &Tuple) -> Result<Option<Entry>, Error> {
    let ns = Netns::open(netns)?;
    let args = [
        "-G".to_string(),
        "-p".into(),
        protocol.into(),
        "-s".into(),
        t.src.to_string(),
        "-d".into(),
        t.dst.to_string(),
        "--sport".into(),
        t.sport.to_string(),
        "--dport".into(),
        t.dport.to_string(),
    ];
    // A child starts in the namespace of the thread that forks it.
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let _inside = ns.enter()?;
            Command::new("conntrack")
                .args(&args)
                .output()
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Error::MissingTool {
                        tool: "conntrack",
                        package: "conntrack",
                    },
                    _ => Error::Io {
                        what: format!("run conntrack in {netns}"),
                        source: e,
                    },
                })
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Io {
                what: format!("conntrack in {netns}"),
                source: std::io::Error::other("the conntrack thread panicked"),
            })
        })
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if let Some(e) = stdout.lines().find_map(parse) {
        return Ok(Some(e));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // "such conntrack doesn't exist", "0 flow entries": nothing tracked.
    if out.status.success()
        || ["doesn't exist", "No such file", "0 flow entries"]
            .iter()
            .any(|m| stderr.contains(m))
    {
        Ok(None)
    } else {
        Err(Error::Io {
            what: format!("conntrack -G in {netns}"),
            source: std::io::Error::other(stderr.trim().to_string()),
        })
    }
}

/// One line of `conntrack -L`/`-G` output:
/// `tcp 6 119 TIME_WAIT src=A dst=B sport=1 dport=2 [ASSURED] src=C dst=D
/// sport=3 dport=4 mark=0 use=1` (the first four keys are the original
/// direction, the next four the reply).
pub fn parse(line: &str) -> Option<Entry> {
    let mut words = line.split_whitespace();
    let mut protocol = words.next()?;
    // `-o extended` starts with the layer 3 protocol.
    if protocol == "ipv4" {
        words.next();
        protocol = words.next()?;
    }
    let mut state = None;
    let mut ips = Vec::new();
    let mut ports = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some(("src" | "dst", v)) => ips.push(v.parse::<Ipv4Addr>().ok()?),
            Some(("sport" | "dport", v)) => ports.push(v.parse::<u16>().ok()?),
            Some(_) => {}
            None if w.chars().all(|c| c.is_ascii_uppercase() || c == '_') && ips.is_empty() => {
                state = Some(w.to_string());
            }
            None => {}
        }
    }
    if ips.len() < 4 || ports.len() < 4 {
        return None;
    }
    Some(Entry {
        protocol: protocol.to_string(),
        state,
        original: Tuple {
            src: ips[0],
            dst: ips[1],
            sport: ports[0],
            dport: ports[1],
        },
        reply: Tuple {
            src: ips[2],
            dst: ips[3],
            sport: ports[2],
            dport: ports[3],
        },
    })
}

/// Subscriptions to conntrack's "new flow" events in several namespaces.
///
/// A TCP flow whose only answer is a reset (a refused connection) is
/// deleted from the table at once, NAT and all; its creation was still
/// announced, so a watch started before a probe sees every flow the probe
/// made, with its NAT, in every namespace it crossed.
pub struct Watch {
    sockets: Vec<(String, rtnetlink::sys::Socket)>,
}

/// `NFNLGRP_CONNTRACK_NEW` as a group bit.
const GROUP_NEW: u32 = 1;

/// Subscribe to new-flow events in each of `namespaces`. A namespace that
/// cannot be watched is skipped: the table is still read afterwards.
pub fn watch(namespaces: &[&str]) -> Watch {
    let mut sockets = Vec::new();
    for name in namespaces {
        let opened = (|| {
            let ns = Netns::open(name).ok()?;
            let _inside = ns.enter().ok()?;
            let mut s =
                rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_NETFILTER).ok()?;
            // Bound to the group: subscribed from here on, before the probe.
            s.bind(&rtnetlink::sys::SocketAddr::new(0, GROUP_NEW))
                .ok()?;
            s.set_non_blocking(true).ok()?;
            Some(s)
        })();
        match opened {
            Some(s) => sockets.push((name.to_string(), s)),
            None => tracing::debug!(netns = name, "cannot watch conntrack events"),
        }
    }
    Watch { sockets }
}

impl Watch {
    /// The flows announced so far, by namespace.
    pub fn drain(self) -> Vec<(String, Vec<Entry>)> {
        let mut out = Vec::new();
        for (name, sock) in self.sockets {
            let mut entries = Vec::new();
            loop {
                let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
                match sock.recv(&mut buf, 0) {
                    Ok(0) => break,
                    Ok(_) => entries.extend(parse_events(&buf)),
                    // Would block (nothing more), or events were lost
                    // (ENOBUFS): what was read is what there is.
                    Err(_) => break,
                }
            }
            out.push((name, entries));
        }
        out
    }
}

// ctnetlink attributes (linux/netfilter/nfnetlink_conntrack.h).
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_PROTOINFO: u16 = 4;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// The netlink attributes in `buf`: (type without flags, payload).
fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut v = Vec::new();
    while buf.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            break;
        }
        v.push((kind, &buf[4..len]));
        let next = (len + 3) & !3;
        buf = buf.get(next..).unwrap_or(&[]);
    }
    v
}

fn tuple(payload: &[u8]) -> Option<(Tuple, u8)> {
    let attrs = attributes(payload);
    let ip = attributes(attrs.iter().find(|(k, _)| *k == CTA_TUPLE_IP)?.1);
    let proto = attributes(attrs.iter().find(|(k, _)| *k == CTA_TUPLE_PROTO)?.1);
    let addr = |kind| -> Option<Ipv4Addr> {
        let b: [u8; 4] = ip
            .iter()
            .find(|(k, _)| *k == kind)?
            .1
            .get(..4)?
            .try_into()
            .ok()?;
        Some(Ipv4Addr::from(b))
    };
    let port = |kind| -> Option<u16> {
        let b: [u8; 2] = proto
            .iter()
            .find(|(k, _)| *k == kind)?
            .1
            .get(..2)?
            .try_into()
            .ok()?;
        Some(u16::from_be_bytes(b))
    };
    let num = *proto.iter().find(|(k, _)| *k == CTA_PROTO_NUM)?.1.first()?;
    Some((
        Tuple {
            src: addr(CTA_IP_V4_SRC)?,
            dst: addr(CTA_IP_V4_DST)?,
            sport: port(CTA_PROTO_SRC_PORT)?,
            dport: port(CTA_PROTO_DST_PORT)?,
        },
        num,
    ))
}

const TCP_STATES: [&str; 10] = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];

/// The IPv4 flows announced in one read of a ctnetlink event socket.
pub fn parse_events(mut buf: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let body = &buf[NLMSG_HDRLEN..len];
        if kind == (NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW)
            && body.first() == Some(&(libc::AF_INET as u8))
        {
            if let Some(e) = event(body.get(NFGENMSG_LEN..).unwrap_or(&[])) {
                out.push(e);
            }
        }
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
    }
    out
}

fn event(payload: &[u8]) -> Option<Entry> {
    let attrs = attributes(payload);
    let get = |kind| attrs.iter().find(|(k, _)| *k == kind).map(|(_, p)| *p);
    let (original, num) = tuple(get(CTA_TUPLE_ORIG)?)?;
    let (reply, _) = tuple(get(CTA_TUPLE_REPLY)?)?;
    let state = get(CTA_PROTOINFO).and_then(|p| {
        let tcp = attributes(p);
        let tcp = attributes(tcp.iter().find(|(k, _)| *k == CTA_PROTOINFO_TCP)?.1);
        let s = *tcp
            .iter()
            .find(|(k, _)| *k == CTA_PROTOINFO_TCP_STATE)?
            .1
            .first()?;
        TCP_STATES.get(usize::from(s)).map(|s| s.to_string())
    });
    Some(Entry {
        protocol: match num {
            6 => "tcp".into(),
            17 => "udp".into(),
            132 => "sctp".into(),
            n => n.to_string(),
        },
        state,
        original,
        reply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dnat_entry_names_the_endpoint() {
        let e = parse("tcp      6 119 TIME_WAIT src=10.244.1.2 dst=10.99.229.212 sport=41000 dport=80 src=10.244.1.3 dst=10.244.1.2 sport=8080 dport=41000 [ASSURED] mark=0 use=2").expect("parses");
        assert_eq!(e.protocol, "tcp");
        assert_eq!(e.state.as_deref(), Some("TIME_WAIT"));
        assert_eq!(e.dnat(), Some((Ipv4Addr::new(10, 244, 1, 3), 8080)));
        assert_eq!(e.snat(), None);
    }

    #[test]
    fn masquerade_shows_in_the_reply_destination() {
        let e = parse("ipv4     2 tcp      6 118 SYN_SENT src=10.244.1.2 dst=10.96.0.0 sport=53372 dport=80 [UNREPLIED] src=10.96.0.0 dst=172.18.0.2 sport=80 dport=53372 mark=0 use=1").expect("parses");
        assert_eq!(e.state.as_deref(), Some("SYN_SENT"));
        assert_eq!(e.dnat(), None);
        assert_eq!(e.snat(), Some((Ipv4Addr::new(172, 18, 0, 2), 53372)));
    }

    #[test]
    fn udp_has_no_state_and_garbage_is_none() {
        let e = parse("udp      17 29 src=10.244.1.2 dst=10.96.0.10 sport=4000 dport=53 src=10.244.1.4 dst=10.244.1.2 sport=53 dport=4000 mark=0 use=1").expect("parses");
        assert_eq!(e.state, None);
        assert_eq!(e.dnat(), Some((Ipv4Addr::new(10, 244, 1, 4), 53)));
        assert_eq!(
            parse("conntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown."),
            None
        );
        assert_eq!(parse(""), None);
        assert_eq!(parse("tcp 6 1 src=x dst=y"), None);
    }

    fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn nested(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        nla(kind | 0x8000, &parts.concat())
    }

    fn tuple_attr(kind: u16, t: &Tuple) -> Vec<u8> {
        nested(
            kind,
            &[
                nested(
                    CTA_TUPLE_IP,
                    &[
                        nla(CTA_IP_V4_SRC, &t.src.octets()),
                        nla(CTA_IP_V4_DST, &t.dst.octets()),
                    ],
                ),
                nested(
                    CTA_TUPLE_PROTO,
                    &[
                        nla(CTA_PROTO_NUM, &[6]),
                        nla(CTA_PROTO_SRC_PORT, &t.sport.to_be_bytes()),
                        nla(CTA_PROTO_DST_PORT, &t.dport.to_be_bytes()),
                    ],
                ),
            ],
        )
    }

    #[test]
    fn a_new_flow_event_is_read_with_its_nat_and_state() {
        let original = Tuple {
            src: Ipv4Addr::new(10, 244, 1, 2),
            sport: 40000,
            dst: Ipv4Addr::new(10, 96, 0, 20),
            dport: 80,
        };
        let reply = Tuple {
            src: Ipv4Addr::new(10, 244, 2, 2),
            sport: 8080,
            dst: original.src,
            dport: original.sport,
        };
        let mut body = vec![libc::AF_INET as u8, 0, 0, 0];
        body.extend(tuple_attr(CTA_TUPLE_ORIG, &original));
        body.extend(tuple_attr(CTA_TUPLE_REPLY, &reply));
        body.extend(nested(
            CTA_PROTOINFO,
            &[nested(
                CTA_PROTOINFO_TCP,
                &[nla(CTA_PROTOINFO_TCP_STATE, &[1])],
            )],
        ));
        let mut msg = Vec::new();
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&(NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW).to_ne_bytes());
        msg.extend_from_slice(&[0u8; 10]);
        msg.extend(body);
        // Two messages in one read, then a truncated one: two entries.
        let mut buf = msg.clone();
        buf.extend(&msg);
        buf.extend(&msg[..20]);
        let v = parse_events(&buf);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].original, original);
        assert_eq!(v[0].dnat(), Some((reply.src, 8080)));
        assert_eq!(v[0].state.as_deref(), Some("SYN_SENT"));
        assert_eq!(v[0].protocol, "tcp");
        assert!(parse_events(&[1, 2, 3]).is_empty());
    }
}
