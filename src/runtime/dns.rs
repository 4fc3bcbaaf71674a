//! The cluster DNS responder: the `coredns` pod's ports 53/UDP and 53/TCP,
//! answered from `plan::dns`'s record table.
//!
//! The sockets are bound inside the pod's namespace by the same thread that
//! binds the echo servers (`echo::bind_all`); here they are only served.
//! hickory-proto does the wire format: parsing a request never trusts its
//! lengths or compression pointers, and a message that does not parse gets
//! FORMERR (when it has a header to answer) or nothing, never a crash.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record as WireRecord, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

use super::limits::{self, Limits, Permit};
use crate::plan::dns::{answer, Answer, Data, Qtype, Rcode, Record, Zone};
use crate::probe::identity;

/// The record table being served, replaced whole when the lab changes
/// (`replace`), so that a query sees one consistent table.
#[derive(Debug, Default)]
pub struct ZoneHandle(RwLock<Arc<Zone>>);

impl ZoneHandle {
    pub fn new(zone: Zone) -> ZoneHandle {
        ZoneHandle(RwLock::new(Arc::new(zone)))
    }

    pub fn get(&self) -> Arc<Zone> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, zone: Zone) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(zone);
    }
}

/// The table the daemon serves, set when the coredns pod's sockets are up.
static SERVED: std::sync::OnceLock<Arc<ZoneHandle>> = std::sync::OnceLock::new();

/// The table to serve, filled from `plan`: one for the daemon's life, so
/// that a restarted coredns pod serves the table `follow` keeps current.
pub(crate) fn served_zone(plan: &crate::plan::Plan) -> Arc<ZoneHandle> {
    let zone = SERVED.get_or_init(|| Arc::new(ZoneHandle::new(Zone::default())));
    zone.replace(crate::plan::dns::records(plan));
    zone.clone()
}

/// Make the served records follow the lab: rebuilt from `plan` (the plan on
/// disk, so a deleted pod has left it) without the endpoints of the pods in
/// `not_ready` (`namespace/name`), as CoreDNS follows EndpointSlices. A
/// headless service whose pods are all unready becomes NXDOMAIN.
pub fn follow(plan: &crate::plan::Plan, not_ready: &std::collections::HashSet<String>) {
    if let Some(zone) = SERVED.get() {
        let view = crate::kernel::services::ready_view(plan, not_ready);
        zone.replace(crate::plan::dns::records(&view));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The EDNS buffer size podlab advertises and caps answers at over UDP:
/// the DNS flag day 2020 value, safe from fragmentation.
pub const EDNS_PAYLOAD: u16 = 1232;
/// Without EDNS a UDP answer is at most 512 bytes (RFC 1035).
const CLASSIC_UDP: usize = 512;

/// What a query was and how it was answered, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub name: String,
    pub qtype: u16,
    pub rcode: Rcode,
    pub answers: usize,
    pub truncated: bool,
}

/// The answer to one request, as bytes; `None` when nothing should be sent
/// (not a DNS header at all, or a response rather than a query).
pub fn respond(zone: &Zone, request: &[u8], transport: Transport) -> Option<(Vec<u8>, Served)> {
    respond_as(zone, request, transport, None)
}

/// `respond`, from the server of `pod` (`namespace/name`): a query that
/// carries a grader's challenge in the EDNS option `identity::EDNS_OPTION`
/// gets the proof in the same option of the answer, so that a stand-in
/// DNS server does not pass for this one. `dig` sends no such option and
/// sees the answer of old.
pub fn respond_as(
    zone: &Zone,
    request: &[u8],
    transport: Transport,
    pod: Option<&str>,
) -> Option<(Vec<u8>, Served)> {
    let req = match Message::from_vec(request) {
        Ok(m) => m,
        Err(_) => return formerr(request),
    };
    if req.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    // As CoreDNS: clients (and dig) expect a resolver, not a bare authority.
    resp.metadata.recursion_available = true;
    resp.metadata.checking_disabled = req.metadata.checking_disabled;
    resp.add_queries(req.queries.iter().cloned());
    if let Some(asked) = &req.edns {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_PAYLOAD);
        if let (Some(pod), Some(q)) = (pod, req.queries.first()) {
            if let Some(p) = proof(asked, pod, q) {
                e.options_mut()
                    .insert(EdnsOption::Unknown(identity::EDNS_OPTION, p.into_bytes()));
            }
        }
        resp.set_edns(e);
    }
    let mut served = Served {
        name: String::new(),
        qtype: 0,
        rcode: Rcode::NoError,
        answers: 0,
        truncated: false,
    };
    let rcode = if req.metadata.op_code != OpCode::Query {
        Rcode::NotImp
    } else if req.queries.len() != 1 {
        Rcode::FormErr
    } else {
        let q = &req.queries[0];
        served.name = q.name().to_ascii();
        served.qtype = u16::from(q.query_type());
        if !matches!(q.query_class(), DNSClass::IN | DNSClass::ANY) {
            Rcode::Refused
        } else {
            let ans = answer(zone, &served.name, Qtype::from_code(served.qtype));
            fill(&mut resp, &ans);
            ans.rcode
        }
    };
    resp.metadata.response_code = wire_rcode(rcode);
    served.rcode = rcode;
    served.answers = resp.answers.len();
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => match &req.edns {
            Some(e) => usize::from(e.max_payload().clamp(512, EDNS_PAYLOAD)),
            None => CLASSIC_UDP,
        },
    };
    let bytes = resp.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some((bytes, served));
    }
    // Too big for the datagram: the question alone with TC set, so the
    // client retries over TCP (RFC 7766).
    let mut t = resp.truncate();
    t.metadata.truncation = true;
    served.truncated = true;
    served.answers = 0;
    Some((t.to_vec().ok()?, served))
}

/// The proof for a query whose EDNS carries a challenge: over the
/// challenge, the name (lower case, no final dot) and the type, so that
/// it is good for this question only.
fn proof(asked: &Edns, pod: &str, q: &Query) -> Option<String> {
    let Some(EdnsOption::Unknown(_, data)) = asked.option(EdnsCode::Unknown(identity::EDNS_OPTION))
    else {
        return None;
    };
    let challenge = std::str::from_utf8(data).ok()?;
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let signed = dns_challenge(challenge, &name, u16::from(q.query_type()));
    identity::answer(identity::Kind::Dns, pod, Some(challenge))?;
    Some(identity::served()?.prove(identity::Kind::Dns, pod, &signed))
}

/// What a DNS proof signs: the challenge bound to the question.
pub fn dns_challenge(challenge: &str, name: &str, qtype: u16) -> String {
    format!("{challenge}/{name}/{qtype}")
}

/// FORMERR for a request with at least a header that is a query; nothing
/// for anything shorter, or a response (answering those invites loops).
fn formerr(request: &[u8]) -> Option<(Vec<u8>, Served)> {
    if request.len() < 12 || request[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([request[0], request[1]]);
    let op_code = OpCode::from_u8((request[2] >> 3) & 0x0f);
    let mut m = Message::error_msg(id, op_code, ResponseCode::FormErr);
    m.metadata.recursion_desired = request[2] & 0x01 != 0;
    let served = Served {
        name: String::new(),
        qtype: 0,
        rcode: Rcode::FormErr,
        answers: 0,
        truncated: false,
    };
    Some((m.to_vec().ok()?, served))
}

fn wire_rcode(r: Rcode) -> ResponseCode {
    match r {
        Rcode::NoError => ResponseCode::NoError,
        Rcode::FormErr => ResponseCode::FormErr,
        Rcode::ServFail => ResponseCode::ServFail,
        Rcode::NxDomain => ResponseCode::NXDomain,
        Rcode::NotImp => ResponseCode::NotImp,
        Rcode::Refused => ResponseCode::Refused,
    }
}

fn fill(resp: &mut Message, ans: &Answer) {
    resp.metadata.authoritative = ans.authoritative;
    resp.add_answers(ans.records.iter().filter_map(wire_record));
    resp.add_authorities(ans.authority.iter().filter_map(wire_record));
    resp.add_additionals(ans.additional.iter().filter_map(wire_record));
}

fn fqdn(name: &str) -> Option<Name> {
    let mut n = Name::from_ascii(name).ok()?;
    n.set_fqdn(true);
    Some(n)
}

/// A table record on the wire; `None` for a name that is not one (an
/// ExternalName with characters DNS cannot carry).
fn wire_record(r: &Record) -> Option<WireRecord> {
    let data = match &r.data {
        Data::A(ip) => RData::A(A(*ip)),
        Data::Ns(n) => RData::NS(NS(fqdn(n)?)),
        Data::Cname(n) => RData::CNAME(CNAME(fqdn(n)?)),
        Data::Ptr(n) => RData::PTR(PTR(fqdn(n)?)),
        Data::Txt(t) => RData::TXT(TXT::new(vec![t.clone()])),
        Data::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, fqdn(target)?)),
        Data::Soa {
            mname,
            rname,
            serial,
            refresh,
            retry,
            expire,
            minimum,
        } => RData::SOA(SOA::new(
            fqdn(mname)?,
            fqdn(rname)?,
            *serial,
            *refresh as i32,
            *retry as i32,
            *expire as i32,
            *minimum,
        )),
    };
    Some(WireRecord::from_rdata(fqdn(&r.name)?, r.ttl, data))
}

/// A query for `name`/`qtype` with recursion desired, as a stub resolver
/// sends it (with EDNS, as glibc and dig do). For `podlab dns`.
pub fn query(id: u16, name: &str, qtype: Qtype) -> Option<Vec<u8>> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(fqdn(name)?, RecordType::from(qtype.code())));
    let mut e = Edns::new();
    e.set_max_payload(EDNS_PAYLOAD);
    m.set_edns(e);
    m.to_vec().ok()
}

/// A response decoded into the table's terms: rcode, TC, and the answer
/// section (records of types the table knows). For `podlab dns`.
pub fn parse_response(bytes: &[u8]) -> Option<(u16, bool, Vec<Record>)> {
    let m = Message::from_vec(bytes).ok()?;
    let rcode = u16::from(m.metadata.response_code);
    let records = m
        .answers
        .iter()
        .filter_map(|r| {
            let data = match &r.data {
                RData::A(a) => Data::A(a.0),
                RData::CNAME(n) => Data::Cname(n.0.to_ascii().trim_end_matches('.').into()),
                RData::PTR(n) => Data::Ptr(n.0.to_ascii().trim_end_matches('.').into()),
                RData::NS(n) => Data::Ns(n.0.to_ascii().trim_end_matches('.').into()),
                RData::TXT(t) => Data::Txt(
                    t.txt_data
                        .iter()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .collect(),
                ),
                RData::SRV(s) => Data::Srv {
                    priority: s.priority,
                    weight: s.weight,
                    port: s.port,
                    target: s.target.to_ascii().trim_end_matches('.').into(),
                },
                _ => return None,
            };
            Some(Record {
                name: r.name.to_ascii().trim_end_matches('.').into(),
                ttl: r.ttl,
                data,
            })
        })
        .collect();
    Some((rcode, m.metadata.truncation, records))
}

/// An answer as a client sees it: rcode (numeric, as on the wire), the
/// transport that gave it, and the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub rcode: u16,
    pub transport: Transport,
    pub records: Vec<Record>,
}

/// Ask `server` about `name` from inside the network namespace `netns`,
/// as a process of that pod would: over UDP, again over TCP when the answer
/// is truncated (or straight over TCP with `tcp`). Blocking; call it from a
/// thread that may enter namespaces (the CLI's main thread).
pub fn ask_from(
    netns: &str,
    server: std::net::IpAddr,
    name: &str,
    qtype: Qtype,
    tcp: bool,
    timeout: Duration,
) -> std::io::Result<Reply> {
    use std::io::{Error, ErrorKind, Read, Write};
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, what.to_string());
    let id = (std::process::id() as u16) ^ (name.len() as u16).rotate_left(7);
    let req = query(id, name, qtype).ok_or_else(|| bad("not a valid DNS name"))?;
    let addr = SocketAddr::new(server, 53);
    let kernel = |e: crate::kernel::Error| Error::other(e.to_string());
    let ns = crate::kernel::netns::Netns::open(netns).map_err(kernel)?;
    // Sockets belong to the namespace they are made in: made inside, used
    // inside, and the guard brings this thread home on every path.
    let _inside = ns.enter().map_err(kernel)?;
    let check = |bytes: &[u8], transport| -> std::io::Result<Option<Reply>> {
        if bytes.len() < 2 || u16::from_be_bytes([bytes[0], bytes[1]]) != id {
            return Err(bad("answer for another query"));
        }
        let (rcode, tc, records) = parse_response(bytes).ok_or_else(|| bad("malformed answer"))?;
        Ok((!tc || transport == Transport::Tcp).then_some(Reply {
            rcode,
            transport,
            records,
        }))
    };
    // A read timeout is EAGAIN ("Resource temporarily unavailable"):
    // said as what it is, a lookup that timed out.
    let timed_out = |e: Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::new(
            ErrorKind::TimedOut,
            format!(
                "the lookup timed out: no answer from {server} in {} ms",
                timeout.as_millis()
            ),
        ),
        _ => e,
    };
    if !tcp {
        let sock = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0))?;
        sock.set_read_timeout(Some(timeout))?;
        sock.connect(addr)?;
        sock.send(&req)?;
        let mut buf = vec![0u8; 65_535];
        let n = sock.recv(&mut buf).map_err(timed_out)?;
        if let Some(reply) = check(&buf[..n], Transport::Udp)? {
            return Ok(reply);
        }
    }
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut out = (req.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&req);
    s.write_all(&out)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(timed_out)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg).map_err(timed_out)?;
    check(&msg, Transport::Tcp)?.ok_or_else(|| bad("truncated over TCP"))
}

fn log(transport: Transport, client: SocketAddr, s: &Served) {
    tracing::debug!(
        ?transport,
        %client,
        name = %s.name,
        qtype = s.qtype,
        rcode = %s.rcode,
        answers = s.answers,
        truncated = s.truncated,
        "dns query"
    );
}

/// A request is at most this long: over UDP anything longer is cut and
/// answered FORMERR, over TCP the connection is closed.
const MAX_REQUEST: usize = 4096;
/// Tasks receiving on the one UDP socket: a query is answered on the
/// runtime's worker that received it, and the daemon has two.
const UDP_TASKS: usize = 2;

/// Answer datagrams until shutdown.
pub async fn serve_udp(
    socket: UdpSocket,
    zone: Arc<ZoneHandle>,
    pod: String,
    shutdown: watch::Receiver<bool>,
) {
    // A descriptor the connections' budget must leave room for.
    let _socket = limits::global().listener(format!("{pod}:53/udp"));
    let socket = Arc::new(socket);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..UDP_TASKS {
        let (socket, zone, pod, mut shutdown) =
            (socket.clone(), zone.clone(), pod.clone(), shutdown.clone());
        tasks.spawn(async move {
            let mut buf = vec![0u8; MAX_REQUEST];
            loop {
                let received = tokio::select! {
                    r = socket.recv_from(&mut buf) => r,
                    _ = super::stopped(&mut shutdown) => return,
                };
                let (n, peer) = match received {
                    Ok(r) => r,
                    // An ICMP error from an earlier reply: that client's.
                    Err(e) => {
                        tracing::debug!(pod = %pod, "dns udp receive: {e}");
                        continue;
                    }
                };
                let Some((reply, served)) =
                    respond_as(&zone.get(), &buf[..n], Transport::Udp, Some(&pod))
                else {
                    continue;
                };
                log(Transport::Udp, peer, &served);
                if let Err(e) = socket.send_to(&reply, peer).await {
                    tracing::debug!(pod = %pod, client = %peer, "dns udp reply: {e}");
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// How long a TCP connection may sit idle between queries, and the most a
/// query or its answer may take to cross (RFC 7766 suggests seconds, not
/// minutes).
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Accept DNS-over-TCP connections until shutdown, each counted against
/// the daemon's caps (`limits`).
pub async fn serve_tcp(
    listener: TcpListener,
    zone: Arc<ZoneHandle>,
    pod: String,
    shutdown: watch::Receiver<bool>,
) {
    serve_tcp_limited(listener, zone, pod, shutdown, limits::global()).await;
}

/// `serve_tcp` under the given limits.
pub async fn serve_tcp_limited(
    listener: TcpListener,
    zone: Arc<ZoneHandle>,
    pod: String,
    mut shutdown: watch::Receiver<bool>,
    limits: Arc<Limits>,
) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(53);
    let gate = limits.listener(format!("{pod}:{port}"));
    loop {
        let (stream, peer, admitted) = tokio::select! {
            a = gate.accept(&listener) => a,
            _ = super::stopped(&mut shutdown) => return,
        };
        // Past a cap the connection closes at once: a resolver takes that
        // as this server failing and tries the next.
        let Ok(permit) = admitted else {
            continue;
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            zone.clone(),
            pod.clone(),
            permit,
            shutdown.clone(),
        ));
    }
}

/// Length-prefixed messages, answered in order, until EOF, idleness, an
/// error, or shutdown.
async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    zone: Arc<ZoneHandle>,
    pod: String,
    permit: Permit,
    mut shutdown: watch::Receiver<bool>,
) {
    let _permit = permit;
    loop {
        let mut len = [0u8; 2];
        let read = tokio::select! {
            r = tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)) => r,
            _ = super::stopped(&mut shutdown) => return,
        };
        if !matches!(read, Ok(Ok(_))) {
            return;
        }
        let n = usize::from(u16::from_be_bytes(len));
        // A query is a header and one question: a longer message is not
        // one, and must not make the daemon hold 64 KiB for it.
        if n == 0 || n > MAX_REQUEST {
            tracing::debug!(client = %peer, len = n, "dns tcp: no query of that length: closed");
            return;
        }
        let mut msg = vec![0u8; n];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some((reply, served)) = respond_as(&zone.get(), &msg, Transport::Tcp, Some(&pod))
        else {
            return;
        };
        log(Transport::Tcp, peer, &served);
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        out.extend_from_slice(&reply);
        // A client that does not read its answer must not hold the task.
        if !matches!(
            tokio::time::timeout(TCP_IDLE, stream.write_all(&out)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn zone() -> Zone {
        let text = "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: wire}\nspec: {nodes: 1}\n---\n\
            apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: p}}\nspec:\n  containers: [{name: c, image: x, ports: [{containerPort: 80, name: http}]}]\n---\n\
            apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: 10.96.0.20\n  selector: {app: p}\n  ports: [{port: 80, name: http}]\n";
        let file = crate::lab::parse("w.yaml", text).expect("parses");
        let mut z = crate::plan::dns::records(&crate::plan::build(&file).expect("plans"));
        // Many addresses on one name, to overflow 512 bytes.
        z.set_upstream((1..=60).map(|i| ("big.example".to_string(), Ipv4Addr::new(192, 0, 2, i))));
        z
    }

    fn ask(z: &Zone, name: &str, q: Qtype, t: Transport) -> (u16, bool, Vec<Record>, Message) {
        let req = query(7, name, q).unwrap();
        let (bytes, _) = respond(z, &req, t).expect("answered");
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        let (rcode, tc, recs) = parse_response(&bytes).unwrap();
        (rcode, tc, recs, m)
    }

    #[test]
    fn answers_round_trip_through_the_wire() {
        let z = zone();
        let (rcode, tc, recs, m) = ask(
            &z,
            "web.default.svc.cluster.local",
            Qtype::A,
            Transport::Udp,
        );
        assert_eq!((rcode, tc), (0, false));
        assert_eq!(recs[0].data, Data::A(Ipv4Addr::new(10, 96, 0, 20)));
        assert!(m.metadata.authoritative);
        assert!(m.edns.is_some(), "EDNS answered with EDNS");

        let (_, _, recs, _) = ask(
            &z,
            "_http._tcp.web.default.svc.cluster.local",
            Qtype::Srv,
            Transport::Tcp,
        );
        assert_eq!(
            recs[0].data.to_string(),
            "0 100 80 web.default.svc.cluster.local."
        );
        let (_, _, recs, _) = ask(&z, "20.0.96.10.in-addr.arpa", Qtype::Ptr, Transport::Udp);
        assert_eq!(recs[0].data.to_string(), "web.default.svc.cluster.local.");
        let (_, _, recs, _) = ask(&z, "dns-version.cluster.local", Qtype::Txt, Transport::Udp);
        assert_eq!(recs[0].data, Data::Txt("1.1.0".into()));

        let (rcode, _, recs, m) = ask(
            &z,
            "nope.default.svc.cluster.local",
            Qtype::A,
            Transport::Udp,
        );
        assert_eq!((rcode, recs.len()), (3, 0));
        assert_eq!(m.authorities.len(), 1, "SOA");
        let (rcode, _, _, m) = ask(&z, "www.example.org", Qtype::A, Transport::Udp);
        assert_eq!(rcode, 5);
        assert!(!m.metadata.authoritative);
    }

    #[test]
    fn big_answers_are_truncated_over_udp_only() {
        let z = zone();
        // Without EDNS: 512 bytes.
        let mut m = Message::new(9, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(fqdn("big.example").unwrap(), RecordType::A));
        let (bytes, served) = respond(&z, &m.to_vec().unwrap(), Transport::Udp).unwrap();
        assert!(bytes.len() <= 512);
        assert!(served.truncated);
        let r = Message::from_vec(&bytes).unwrap();
        assert!(r.metadata.truncation);
        assert_eq!(r.queries.len(), 1);
        // With EDNS 1232: 60 A records fit.
        let (_, tc, recs, _) = ask(&z, "big.example", Qtype::A, Transport::Udp);
        assert_eq!((tc, recs.len()), (false, 60));
        // Over TCP, whatever the size.
        let (bytes, served) = respond(&z, &m.to_vec().unwrap(), Transport::Tcp).unwrap();
        assert!(!served.truncated);
        assert!(bytes.len() > 512);
    }

    #[test]
    fn garbage_gets_formerr_or_nothing() {
        let z = zone();
        assert!(respond(&z, &[], Transport::Udp).is_none());
        assert!(respond(&z, &[1, 2, 3], Transport::Udp).is_none());
        // A header claiming a question that is not there.
        let mut bad = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        let (bytes, _) = respond(&z, &bad, Transport::Udp).expect("FORMERR");
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        // A compression pointer to itself.
        bad[5] = 1;
        bad.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let (bytes, _) = respond(&z, &bad, Transport::Udp).expect("FORMERR");
        assert_eq!(
            Message::from_vec(&bytes).unwrap().metadata.response_code,
            ResponseCode::FormErr
        );
        // A response is never answered.
        let mut resp = query(1, "web.default.svc.cluster.local", Qtype::A).unwrap();
        resp[2] |= 0x80;
        assert!(respond(&z, &resp, Transport::Udp).is_none());
        // Random bytes never panic.
        let mut x: u32 = 12345;
        for len in 0..300 {
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = respond(&z, &v, Transport::Udp);
        }
    }

    #[test]
    fn other_opcodes_and_classes() {
        let z = zone();
        let mut m = Message::new(3, MessageType::Query, OpCode::Status);
        m.add_query(Query::query(
            fqdn("web.default.svc.cluster.local").unwrap(),
            RecordType::A,
        ));
        let (bytes, _) = respond(&z, &m.to_vec().unwrap(), Transport::Udp).unwrap();
        assert_eq!(
            Message::from_vec(&bytes).unwrap().metadata.response_code,
            ResponseCode::NotImp
        );

        let mut q = Query::query(fqdn("version.bind").unwrap(), RecordType::TXT);
        q.set_query_class(DNSClass::CH);
        let mut m = Message::new(4, MessageType::Query, OpCode::Query);
        m.add_query(q);
        let (bytes, _) = respond(&z, &m.to_vec().unwrap(), Transport::Udp).unwrap();
        assert_eq!(
            Message::from_vec(&bytes).unwrap().metadata.response_code,
            ResponseCode::Refused
        );
    }

    #[test]
    fn a_challenge_in_edns_gets_a_proof_bound_to_the_question() {
        use crate::lab::expect::RecordType as Rt;
        let id = identity::install_for_tests("podlab-tests");
        let z = zone();
        let c = identity::challenge();
        let name = "web.default.svc.cluster.local";
        let q = crate::probe::dns::query_challenged(9, name, Rt::A, &c);
        let pod = "kube-system/coredns";
        let (bytes, _) = respond_as(&z, &q, Transport::Udp, Some(pod)).unwrap();
        let a = crate::probe::dns::parse(&bytes, 9, Rt::A).unwrap();
        assert_eq!(a.records, ["10.96.0.20"]);
        let want = id.prove(identity::Kind::Dns, pod, &dns_challenge(&c, name, 1));
        assert_eq!(a.proof.as_deref(), Some(want.as_str()));
        // Another question, another proof: an answer cannot be reused.
        let other = id.prove(identity::Kind::Dns, pod, &dns_challenge(&c, "x", 1));
        assert_ne!(a.proof.as_deref(), Some(other.as_str()));
        // dig's query (no option) and a server without a pod: no proof.
        let (plain, _) = respond_as(
            &z,
            &query(9, name, Qtype::A).unwrap(),
            Transport::Udp,
            Some(pod),
        )
        .unwrap();
        assert_eq!(
            crate::probe::dns::parse(&plain, 9, Rt::A).unwrap().proof,
            None
        );
        let (anon, _) = respond(&z, &q, Transport::Udp).unwrap();
        assert_eq!(
            crate::probe::dns::parse(&anon, 9, Rt::A).unwrap().proof,
            None
        );
    }

    #[tokio::test]
    async fn serves_udp_and_tcp_on_loopback() {
        let (_tx, rx) = watch::channel(false);
        let zone = Arc::new(ZoneHandle::new(zone()));
        let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let uaddr = u.local_addr().unwrap();
        tokio::spawn(serve_udp(u, zone.clone(), "t".into(), rx.clone()));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taddr = l.local_addr().unwrap();
        tokio::spawn(serve_tcp(l, zone.clone(), "t".into(), rx.clone()));

        let q = query(11, "web.default.svc.cluster.local", Qtype::A).unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.send_to(&q, uaddr).await.unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), c.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let (rcode, _, recs) = parse_response(&buf[..n]).unwrap();
        assert_eq!((rcode, recs.len()), (0, 1));

        let mut s = TcpStream::connect(taddr).await.unwrap();
        for _ in 0..2 {
            s.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
            s.write_all(&q).await.unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.unwrap();
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut msg).await.unwrap();
            let (rcode, _, recs) = parse_response(&msg).unwrap();
            assert_eq!((rcode, recs.len()), (0, 1));
        }

        // The table follows the lab.
        zone.replace(Zone::default());
        c.send_to(&q, uaddr).await.unwrap();
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), c.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let (rcode, _, _) = parse_response(&buf[..n]).unwrap();
        assert_eq!(rcode, 5, "an empty table is authoritative for nothing");
    }

    #[tokio::test]
    async fn tcp_past_the_cap_or_too_long_is_closed() {
        let (_tx, rx) = watch::channel(false);
        let caps = limits::Caps {
            per_client: 1,
            ..limits::Caps::for_nofile(1024)
        };
        let limits = Arc::new(Limits::new(caps));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let zone = Arc::new(ZoneHandle::new(zone()));
        tokio::spawn(serve_tcp_limited(l, zone, "t".into(), rx, limits.clone()));
        let closed = |mut s: TcpStream| async move {
            let mut buf = Vec::new();
            let r = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
            matches!(r, Ok(Ok(0)) | Ok(Err(_)))
        };

        let mut held = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(limits.open(), 1);
        let over = TcpStream::connect(addr).await.unwrap();
        assert!(closed(over).await, "a second connection is over the cap");
        // A length no query has closes the connection, and gives its
        // place back.
        held.write_all(&60_000u16.to_be_bytes()).await.unwrap();
        assert!(closed(held).await, "a 60,000-byte query");
        assert_eq!(limits.open(), 0);
    }
}
