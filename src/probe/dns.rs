//! DNS assertions: one query over UDP from inside the source's namespace
//! to its nameserver, as its resolver would send it.
//!
//! The wire format is the few lines a query and the common answers need
//! (RFC 1035 §4); hickory-proto can replace this when the DNS server lands.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::timeout;

use super::identity;
use crate::kernel::netns::Netns;
use crate::lab::expect::{Rcode, RecordType};

/// An answer: the rcode and the records of the asked type, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: u8,
    pub records: Vec<String>,
    /// The challenge the query carried, and the proof in the answer's
    /// EDNS option `identity::EDNS_OPTION`: who really answered.
    pub challenge: Option<String>,
    pub proof: Option<String>,
}

/// The nameserver a namespace's resolver uses: the first `nameserver` of
/// `/etc/netns/<netns>/resolv.conf`, if podlab wrote one.
pub fn nameserver(netns: &str) -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string(format!("/etc/netns/{netns}/resolv.conf")).ok()?;
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next())
            .flatten()
            .and_then(|ip| ip.parse().ok())
    })
}

/// The names a resolver with `ndots:5` tries, in order: the search list
/// of a pod in `ns`, then the name itself.
pub fn candidates(name: &str, ns: &str, domain: &str) -> Vec<String> {
    if let Some(abs) = name.strip_suffix('.') {
        return vec![abs.to_string()];
    }
    let mut v: Vec<String> = if name.matches('.').count() < 5 {
        [
            format!("{ns}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.to_string(),
        ]
        .iter()
        .map(|s| format!("{name}.{s}"))
        .collect()
    } else {
        Vec::new()
    };
    v.push(name.to_string());
    v
}

/// `query`, with an OPT record carrying `challenge` for podlab's DNS
/// server to sign (RFC 6891: the option is ignored by any other server).
pub fn query_challenged(id: u16, name: &str, rtype: RecordType, challenge: &str) -> Vec<u8> {
    let mut q = query(id, name, rtype);
    q[11] = 1; // ARCOUNT: the OPT record
    q.push(0); // the root name
    q.extend_from_slice(&41u16.to_be_bytes()); // OPT
    q.extend_from_slice(&1232u16.to_be_bytes()); // the UDP payload size
    q.extend_from_slice(&[0, 0, 0, 0]); // extended rcode, version, flags
    let data = challenge.as_bytes();
    q.extend_from_slice(&((data.len() + 4) as u16).to_be_bytes());
    q.extend_from_slice(&identity::EDNS_OPTION.to_be_bytes());
    q.extend_from_slice(&(data.len() as u16).to_be_bytes());
    q.extend_from_slice(data);
    q
}

pub fn query(id: u16, name: &str, rtype: RecordType) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; 1 question
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.push(0);
    q.extend_from_slice(&rtype.code().to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    q
}

/// A possibly compressed name at `at`; returns it and the offset after it.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *msg.get(at)? as usize;
        if len == 0 {
            return Some((labels.join("."), end.unwrap_or(at + 1)));
        }
        if len & 0xC0 == 0xC0 {
            let ptr = ((len & 0x3F) << 8) | *msg.get(at + 1)? as usize;
            end.get_or_insert(at + 2);
            at = ptr;
            continue;
        }
        labels.push(String::from_utf8_lossy(msg.get(at + 1..at + 1 + len)?).into_owned());
        at += 1 + len;
    }
    None
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]))
}

pub fn parse(msg: &[u8], id: u16, rtype: RecordType) -> Option<Answer> {
    if u16_at(msg, 0)? != id {
        return None;
    }
    let rcode = msg.get(3)? & 0x0F;
    let qd = u16_at(msg, 4)?;
    let an = u16_at(msg, 6)?;
    let ns = u16_at(msg, 8)?;
    let ar = u16_at(msg, 10)?;
    let mut at = 12;
    for _ in 0..qd {
        at = read_name(msg, at)?.1 + 4;
    }
    let mut records = Vec::new();
    for _ in 0..an {
        at = read_name(msg, at)?.1;
        let t = u16_at(msg, at)?;
        let len = u16_at(msg, at + 8)? as usize;
        let data_at = at + 10;
        let data = msg.get(data_at..data_at + len)?;
        at = data_at + len;
        if t != rtype.code() {
            continue; // a CNAME on the way to an A record, say
        }
        records.push(match rtype {
            RecordType::A if len == 4 => {
                Ipv4Addr::new(data[0], data[1], data[2], data[3]).to_string()
            }
            RecordType::AAAA if len == 16 => {
                let b: [u8; 16] = data.try_into().ok()?;
                Ipv6Addr::from(b).to_string()
            }
            RecordType::CNAME | RecordType::PTR => read_name(msg, data_at)?.0,
            RecordType::SRV if len > 6 => format!(
                "{} {} {} {}",
                u16_at(data, 0)?,
                u16_at(data, 2)?,
                u16_at(data, 4)?,
                read_name(msg, data_at + 6)?.0
            ),
            RecordType::TXT => {
                let mut s = String::new();
                let mut i = 0;
                while i < data.len() {
                    let l = data[i] as usize;
                    s.push_str(&String::from_utf8_lossy(data.get(i + 1..i + 1 + l)?));
                    i += 1 + l;
                }
                s
            }
            _ => continue,
        });
    }
    let proof = proof_of(msg, at, ns, ar);
    Some(Answer {
        rcode,
        records,
        challenge: None,
        proof,
    })
}

/// The proof option of the OPT record in the additional section, which
/// starts after the `ns` authority records from `at`.
fn proof_of(msg: &[u8], mut at: usize, ns: u16, ar: u16) -> Option<String> {
    for _ in 0..ns {
        at = read_name(msg, at)?.1;
        at += 10 + u16_at(msg, at + 8)? as usize;
    }
    for _ in 0..ar {
        at = read_name(msg, at)?.1;
        let t = u16_at(msg, at)?;
        let len = u16_at(msg, at + 8)? as usize;
        let data = msg.get(at + 10..at + 10 + len)?;
        at += 10 + len;
        if t != 41 {
            continue;
        }
        let mut i = 0;
        while i + 4 <= data.len() {
            let code = u16_at(data, i)?;
            let l = u16_at(data, i + 2)? as usize;
            let v = data.get(i + 4..i + 4 + l)?;
            if code == identity::EDNS_OPTION {
                return String::from_utf8(v.to_vec()).ok();
            }
            i += 4 + l;
        }
    }
    None
}

pub fn rcode_name(code: u8) -> String {
    Rcode::from_code(code).map_or_else(|| format!("rcode {code}"), |r| r.to_string())
}

/// Ask `server` from inside `netns`; `Err` says why there is no answer.
pub async fn ask(
    netns: &str,
    server: Ipv4Addr,
    name: &str,
    rtype: RecordType,
    wait: Duration,
) -> Result<Answer, String> {
    let ns = netns.to_string();
    let sock = tokio::task::spawn_blocking(move || {
        let n = Netns::open(&ns).map_err(|e| crate::error_chain(&e))?;
        let _inside = n.enter().map_err(|e| crate::error_chain(&e))?;
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok::<_, String>(s)
    })
    .await
    .map_err(|e| e.to_string())??;
    let sock = UdpSocket::from_std(sock).map_err(|e| e.to_string())?;
    sock.connect(SocketAddr::V4(SocketAddrV4::new(server, 53)))
        .await
        .map_err(|e| e.to_string())?;
    let id = (std::process::id() as u16) ^ (name.len() as u16).rotate_left(8);
    let challenge = identity::challenge();
    sock.send(&query_challenged(id, name, rtype, &challenge))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => {
                return Err(format!(
                    "no answer from {server} in {} ms",
                    wait.as_millis()
                ))
            }
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                return Err(format!("{server} refused: nothing listens on port 53"))
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(n)) => n,
        };
        if let Some(a) = parse(&buf[..n], id, rtype) {
            return Ok(Answer {
                challenge: Some(challenge),
                ..a
            });
        }
    }
}

/// Resolve as the pod's resolver would: try each candidate until one has
/// answers; the last answer otherwise.
pub async fn resolve(
    netns: &str,
    server: Ipv4Addr,
    names: &[String],
    rtype: RecordType,
    wait: Duration,
) -> Result<(String, Answer), String> {
    let mut last = None;
    for name in names {
        let a = timeout(wait, ask(netns, server, name, rtype, wait))
            .await
            .map_err(|_| format!("no answer from {server} in {} ms", wait.as_millis()))??;
        if a.rcode == 0 && !a.records.is_empty() {
            return Ok((name.clone(), a));
        }
        last = Some((name.clone(), a));
    }
    last.ok_or_else(|| "nothing to resolve".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_and_its_answer() {
        let q = query(7, "web.default.svc.cluster.local", RecordType::A);
        assert_eq!(&q[..4], &[0, 7, 1, 0]);
        // The answer: the question echoed, one A record by pointer to it.
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 96, 0, 5]);
        let a = parse(&r, 7, RecordType::A).unwrap();
        assert_eq!(a.rcode, 0);
        assert_eq!(a.records, ["10.96.0.5"]);
        assert!(
            parse(&r, 8, RecordType::A).is_none(),
            "another query's answer"
        );
    }

    #[test]
    fn search_path_of_a_pod() {
        assert_eq!(
            candidates("web", "x", "cluster.local"),
            [
                "web.x.svc.cluster.local",
                "web.svc.cluster.local",
                "web.cluster.local",
                "web"
            ]
        );
        assert_eq!(
            candidates("web.x.svc.cluster.local.", "x", "c"),
            ["web.x.svc.cluster.local"]
        );
    }
}
