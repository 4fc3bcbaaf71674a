//! `spec.expect`: the assertions `podlab test` runs, each a line a learner
//! can read.
//!
//! Three shapes, told apart by their keys:
//!
//! - connectivity (`from`, `to`, `port`, `protocol`, `expect`, and what the
//!   server saw: `sourceIP`, `status`, `bodyContains`);
//! - `matrix:` (lists of sources and destinations and a truth table of
//!   `.` connected, `X` blocked, `R` refused, as the upstream NetworkPolicy
//!   e2e tests print them);
//! - `dns:` (`from`, `name`, `type`, and the `answers` or the `rcode`).
//!
//! Decoding checks each field where it is written; `check` relates the
//! names to the lab's pods, nodes and services once the whole file is read.
//! Nothing is resolved to addresses here: that needs the plan (`probe`).

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;

use super::decode::{describe, Decoder, Fields};
use super::types::{LabFile, Pos, Protocol};
use super::validate::{did_you_mean, is_dns1123_label};
use super::yaml::{Node, Value};
use super::Diagnostic;

/// One entry of `spec.expect`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assertion {
    /// The `name` written in the file, if any (see `title`).
    pub name: Option<String>,
    pub pos: Pos,
    pub check: Check,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// Boxed: much larger than the other two.
    Connect(Box<Connect>),
    Matrix(Matrix),
    Dns(DnsCheck),
    /// What a single connection cannot see: MTU, loss, latency, rate.
    Path(PathCheck),
    /// The kernel's state against the plan.
    Kernel(KernelCheck),
}

/// The path checks, measured with ICMP echoes from the source's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// A packet of `size` bytes with DF set crosses and comes back.
    Mtu,
    /// Of `probes` echoes, at most `max_percent` go unanswered.
    Loss,
    /// The median round trip is at most `max_ms`.
    Latency,
    /// A burst of `probes` full-size echoes comes back at `min_mbit` or more.
    Rate,
}

impl PathKind {
    pub const ALL: &'static [(&'static str, PathKind)] = &[
        ("mtu", PathKind::Mtu),
        ("loss", PathKind::Loss),
        ("latency", PathKind::Latency),
        ("rate", PathKind::Rate),
    ];

    pub fn word(self) -> &'static str {
        PathKind::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("path", |(w, _)| w)
    }

    /// The fields of each kind, beyond `from` and `to`, with the default
    /// of each (`None`: required).
    fn fields(self) -> &'static [(&'static str, Option<i64>, i64, i64)] {
        match self {
            PathKind::Mtu => &[("size", None, 68, 65_535)],
            PathKind::Loss => &[
                ("probes", Some(100), 10, 1000),
                ("maxPercent", Some(2), 0, 99),
            ],
            PathKind::Latency => &[("probes", Some(20), 1, 1000), ("maxMs", None, 1, 60_000)],
            PathKind::Rate => &[
                ("probes", Some(200), 20, 2000),
                ("minMbit", None, 1, 100_000),
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathCheck {
    pub kind: PathKind,
    pub from: Spanned<Source>,
    pub to: Spanned<Target>,
    /// `size` (mtu), `probes`, `maxPercent`, `maxMs`, `minMbit`: as written
    /// or defaulted, by name.
    pub params: Vec<(String, i64)>,
}

impl PathCheck {
    pub fn param(&self, name: &str) -> i64 {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// What is expected, in words.
    pub fn expected(&self) -> String {
        match self.kind {
            PathKind::Mtu => format!(
                "{}-byte packets with DF set cross both ways",
                self.param("size")
            ),
            PathKind::Loss => format!(
                "at most {}% of {} echoes lost",
                self.param("maxPercent"),
                self.param("probes")
            ),
            PathKind::Latency => format!("median round trip at most {} ms", self.param("maxMs")),
            PathKind::Rate => format!("at least {} Mbit/s", self.param("minMbit")),
        }
    }
}

/// Where the kernel must hold exactly what the plan says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum KernelScope {
    /// Everything about one node's namespace (links, routes, sysctls,
    /// tables, queueing disciplines, extra objects).
    Node(String),
    /// Every pod of one Kubernetes namespace: their namespaces, files,
    /// and whether they run.
    Namespace(String),
    /// kube-proxy's table on one node, or on every node (`None`).
    KubeProxy(Option<String>),
    /// The whole lab: `podlab diagnose` with no findings.
    Lab,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelCheck {
    pub scope: KernelScope,
    pub text: String,
    pub pos: Pos,
}

/// What a connection attempt ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The handshake completed (TCP) or a datagram came back (UDP).
    Connected,
    /// Reachable, nothing listening: a reset, or ICMP port unreachable.
    Refused,
    /// No answer within the probe timeout (or no route to the address).
    Blocked,
}

impl Outcome {
    pub const WORDS: &'static [&'static str] = &["connected", "refused", "blocked"];

    /// The truth-table symbol of a matrix.
    pub fn symbol(self) -> char {
        match self {
            Outcome::Connected => '.',
            Outcome::Refused => 'R',
            Outcome::Blocked => 'X',
        }
    }

    fn from_word(s: &str) -> Option<Outcome> {
        match s {
            "connected" => Some(Outcome::Connected),
            "refused" => Some(Outcome::Refused),
            "blocked" => Some(Outcome::Blocked),
            _ => None,
        }
    }

    fn from_symbol(s: &str) -> Option<Outcome> {
        match s {
            "." => Some(Outcome::Connected),
            "R" => Some(Outcome::Refused),
            "X" => Some(Outcome::Blocked),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Connected => "connected",
            Outcome::Refused => "refused",
            Outcome::Blocked => "blocked",
        })
    }
}

/// Where a probe starts: a namespace of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Source {
    /// A pod, or a Deployment (its first replica), by namespace and name.
    Pod {
        namespace: String,
        name: String,
    },
    Node(String),
    /// The client on the node network.
    External,
    /// The cloud load balancer's namespace.
    Lb,
}

/// Where a probe goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Target {
    Ip(Ipv4Addr),
    Node(String),
    External,
    Lb,
    /// `pod/NAME` or `NS/NAME`: a pod (or a Deployment's first replica).
    Pod {
        namespace: String,
        name: String,
    },
    /// A bare word: what `curl NAME` from the source reaches, the Service
    /// of that name in the source's namespace, else the pod (or Deployment)
    /// of that name in `default` (`crate::target::bare_name`).
    Name(String),
    /// `svc/NAME` (namespace `default`) or `svc/NS/NAME`: the cluster IP.
    Service {
        namespace: String,
        name: String,
    },
    /// `lb/NAME` or `lb/NS/NAME`: the Service's LoadBalancer IP.
    LoadBalancer {
        namespace: String,
        name: String,
    },
    /// `NAME.NS`, `NAME.NS.svc`, `NAME.NS.svc.<clusterDomain>`: a Service.
    Dns(String),
}

/// `sourceIP`: the address the server saw the connection come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum SourceIp {
    /// The source's own address: no SNAT on the way.
    Client,
    Pod {
        namespace: String,
        name: String,
    },
    /// Any address of the node (its node IP, or its `cni0` gateway).
    Node(String),
    Ip(Ipv4Addr),
}

/// `refusedBy`: who answered the connection with a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Refuser {
    /// kube-proxy's reject rule, on whichever node: a Service (or a node
    /// port) without endpoints.
    KubeProxy,
    /// A pod's own kernel: nothing listens on that port. A Deployment's
    /// name means any of its replicas.
    Pod {
        namespace: String,
        name: String,
    },
    /// A node's own kernel: nothing listens on that port of the node.
    Node(String),
    External,
    Lb,
}

impl fmt::Display for Refuser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refuser::KubeProxy => f.write_str("kube-proxy"),
            Refuser::Pod { namespace, name } if namespace == "default" => write!(f, "{name}"),
            Refuser::Pod { namespace, name } => write!(f, "{namespace}/{name}"),
            Refuser::Node(n) => write!(f, "node/{n}"),
            Refuser::External => f.write_str("external"),
            Refuser::Lb => f.write_str("lb"),
        }
    }
}

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spanned<T> {
    pub text: String,
    pub pos: Pos,
    #[serde(skip)]
    pub field: String,
    pub value: T,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connect {
    pub from: Spanned<Source>,
    pub to: Spanned<Target>,
    pub port: u16,
    pub protocol: Protocol,
    pub expect: Outcome,
    pub source_ip: Option<Spanned<SourceIp>>,
    pub status: Option<u16>,
    pub body_contains: Option<String>,
    /// Who must have refused it (`expect: refused` only).
    pub refused_by: Option<Spanned<Refuser>>,
}

impl Connect {
    /// Whether the answer's content matters, not only the handshake.
    pub fn needs_server(&self) -> bool {
        self.source_ip.is_some() || self.status.is_some() || self.body_contains.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    pub from: Vec<Spanned<Source>>,
    pub to: Vec<Spanned<Target>>,
    pub port: u16,
    pub protocol: Protocol,
    /// `expect[i][j]`: from `from[i]` to `to[j]`.
    pub expect: Vec<Vec<Outcome>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsCheck {
    pub from: Spanned<Source>,
    pub query: String,
    pub rtype: RecordType,
    /// Exactly these answers (any order); implies NOERROR.
    pub answers: Option<Vec<String>>,
    /// Without `answers` or `rcode`: NOERROR with at least one answer.
    pub rcode: Option<Rcode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RecordType {
    A,
    #[allow(clippy::upper_case_acronyms)]
    AAAA,
    #[allow(clippy::upper_case_acronyms)]
    CNAME,
    #[allow(clippy::upper_case_acronyms)]
    SRV,
    #[allow(clippy::upper_case_acronyms)]
    PTR,
    #[allow(clippy::upper_case_acronyms)]
    TXT,
}

impl RecordType {
    pub const ALL: &'static [(&'static str, RecordType)] = &[
        ("A", RecordType::A),
        ("AAAA", RecordType::AAAA),
        ("CNAME", RecordType::CNAME),
        ("SRV", RecordType::SRV),
        ("PTR", RecordType::PTR),
        ("TXT", RecordType::TXT),
    ];

    /// The type's number on the wire.
    pub fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::CNAME => 5,
            RecordType::PTR => 12,
            RecordType::TXT => 16,
            RecordType::AAAA => 28,
            RecordType::SRV => 33,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = RecordType::ALL
            .iter()
            .find(|(_, t)| t == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum Rcode {
    NOERROR,
    FORMERR,
    SERVFAIL,
    NXDOMAIN,
    NOTIMP,
    REFUSED,
}

impl Rcode {
    pub const ALL: &'static [(&'static str, Rcode)] = &[
        ("NOERROR", Rcode::NOERROR),
        ("FORMERR", Rcode::FORMERR),
        ("SERVFAIL", Rcode::SERVFAIL),
        ("NXDOMAIN", Rcode::NXDOMAIN),
        ("NOTIMP", Rcode::NOTIMP),
        ("REFUSED", Rcode::REFUSED),
    ];

    pub fn code(self) -> u8 {
        match self {
            Rcode::NOERROR => 0,
            Rcode::FORMERR => 1,
            Rcode::SERVFAIL => 2,
            Rcode::NXDOMAIN => 3,
            Rcode::NOTIMP => 4,
            Rcode::REFUSED => 5,
        }
    }

    pub fn from_code(c: u8) -> Option<Rcode> {
        Rcode::ALL
            .iter()
            .find(|(_, r)| r.code() == c)
            .map(|(_, r)| *r)
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Rcode::ALL
            .iter()
            .find(|(_, r)| r == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

impl Assertion {
    /// The name a learner reads: the one written, or one made from the
    /// assertion itself, like `pod-1 -> pod-2:80/TCP connected`.
    pub fn title(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match &self.check {
            Check::Connect(c) => {
                let mut s = format!(
                    "{} -> {}:{}/{} {}",
                    c.from.text, c.to.text, c.port, c.protocol, c.expect
                );
                if let Some(ip) = &c.source_ip {
                    s.push_str(&format!(", sourceIP {}", ip.text));
                }
                if let Some(st) = c.status {
                    s.push_str(&format!(", status {st}"));
                }
                if let Some(b) = &c.body_contains {
                    s.push_str(&format!(", body contains {b:?}"));
                }
                if let Some(r) = &c.refused_by {
                    s.push_str(&format!(" by {}", r.text));
                }
                s
            }
            Check::Matrix(m) => {
                let list = |v: Vec<&str>| v.join(", ");
                format!(
                    "matrix [{}] -> [{}]:{}/{}",
                    list(m.from.iter().map(|f| f.text.as_str()).collect()),
                    list(m.to.iter().map(|t| t.text.as_str()).collect()),
                    m.port,
                    m.protocol
                )
            }
            Check::Dns(d) => format!(
                "{} resolves {} {} -> {}",
                d.from.text,
                d.query,
                d.rtype,
                d.expected()
            ),
            Check::Path(p) => format!(
                "{} {} -> {}: {}",
                p.kind.word(),
                p.from.text,
                p.to.text,
                p.expected()
            ),
            Check::Kernel(k) => format!("the kernel holds the plan for {}", k.text),
        }
    }
}

impl DnsCheck {
    /// What is expected, in words.
    pub fn expected(&self) -> String {
        match (&self.answers, self.rcode) {
            (Some(a), _) if a.is_empty() => "NOERROR, no answers".into(),
            (Some(a), _) => a.join(", "),
            (None, Some(r)) => r.to_string(),
            (None, None) => "NOERROR, at least one answer".into(),
        }
    }
}

// ---- decoding ----

const CONNECT: &[&str] = &[
    "name",
    "from",
    "to",
    "port",
    "protocol",
    "expect",
    "sourceIP",
    "status",
    "bodyContains",
    "refusedBy",
];
const MATRIX_WRAPPER: &[&str] = &["name", "matrix"];
const MATRIX: &[&str] = &["from", "to", "port", "protocol", "expect"];
const DNS_WRAPPER: &[&str] = &["name", "dns"];
const DNS: &[&str] = &["from", "name", "type", "answers", "rcode"];
const KERNEL_WRAPPER: &[&str] = &["name", "kernel"];
const KERNEL: &[&str] = &["node", "namespace", "kubeProxy", "lab"];

const SOURCE_FORMS: &str =
    "a pod (`NAME`, `NS/NAME` or `pod/NAME`), `node/NAME`, `external` or `lb`";
const TARGET_FORMS: &str = "a pod (`NAME`, `NS/NAME`, `pod/NAME`), an IPv4 address, \
     `node/NAME`, `svc/NAME`, `svc/NS/NAME`, `lb/NAME`, a Service's DNS name \
     (`NAME.NS`, `NAME.NS.svc`, ...), `external` or `lb`";

fn join(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

/// `spec.expect`, decoded; what cannot be decoded is reported and left out.
pub(crate) fn decode(d: &mut Decoder, node: &Node) -> Vec<Assertion> {
    decode_at(d, node, "spec.expect")
}

/// A list of assertions at `path` (an exercise's `spec.checks`).
pub(crate) fn decode_at(d: &mut Decoder, node: &Node, path: &str) -> Vec<Assertion> {
    let items = d.list(node, path, "a list of expectations");
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| assertion(d, item, &format!("{path}[{i}]")))
        .collect()
}

fn has_key(node: &Node, key: &str) -> bool {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .any(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key)),
        _ => false,
    }
}

fn assertion(d: &mut Decoder, node: &Node, path: &str) -> Option<Assertion> {
    if !matches!(node.value, Value::Map(_)) {
        d.err(
            node.pos,
            path,
            format!(
                "expected an assertion (a mapping), found {}",
                describe(node)
            ),
            Some("e.g. `- {from: pod-1, to: pod-2, port: 80, expect: connected}`".into()),
        );
        return None;
    }
    let path_kind = PathKind::ALL
        .iter()
        .find(|(w, _)| has_key(node, w))
        .map(|(w, k)| (*w, *k));
    let path_wrapper: [&str; 2];
    let (known, inner_key) = if has_key(node, "matrix") {
        (MATRIX_WRAPPER, Some("matrix"))
    } else if has_key(node, "dns") {
        (DNS_WRAPPER, Some("dns"))
    } else if has_key(node, "kernel") {
        (KERNEL_WRAPPER, Some("kernel"))
    } else if let Some((w, _)) = path_kind {
        path_wrapper = ["name", w];
        (&path_wrapper[..], Some(w))
    } else {
        (CONNECT, None)
    };
    let f = d.fields(node, path, known, &[])?;
    let name = f.get("name").and_then(|n| d.string(n, &join(path, "name")));
    let check = match inner_key {
        Some("matrix") => {
            let n = f.get("matrix")?;
            Check::Matrix(matrix(d, n, &join(path, "matrix"))?)
        }
        Some("dns") => {
            let n = f.get("dns")?;
            Check::Dns(dns(d, n, &join(path, "dns"))?)
        }
        Some("kernel") => {
            let n = f.get("kernel")?;
            Check::Kernel(kernel(d, n, &join(path, "kernel"))?)
        }
        Some(w) => {
            let n = f.get(w)?;
            let kind = path_kind?.1;
            Check::Path(path_check(d, n, &join(path, w), kind)?)
        }
        None => Check::Connect(Box::new(connect(d, &f, path)?)),
    };
    Some(Assertion {
        name,
        pos: node.pos,
        check,
    })
}

/// A field the assertion cannot do without; a misspelling of it was
/// already reported with a did-you-mean, so it is not reported twice.
fn required<'n>(
    d: &mut Decoder,
    f: &Fields<'n>,
    path: &str,
    key: &str,
    hint: &str,
) -> Option<&'n Node> {
    let n = f.get(key);
    if n.is_none() && !f.suggested.iter().any(|s| s == key) {
        d.err(
            f.pos,
            join(path, key),
            format!("assertion has no `{key}`"),
            Some(hint.into()),
        );
    }
    n
}

fn port(d: &mut Decoder, f: &Fields, path: &str) -> Option<u16> {
    let n = required(d, f, path, "port", "add `port:`, e.g. `port: 80`")?;
    d.int(n, &join(path, "port"), 1, 65535, "an integer 1-65535")
        .map(|p| p as u16)
}

fn protocol(d: &mut Decoder, f: &Fields, path: &str) -> Option<Protocol> {
    let Some(n) = f.get("protocol") else {
        return Some(Protocol::Tcp);
    };
    let field = join(path, "protocol");
    let s = d.string(n, &field)?;
    match s.as_str() {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => {
            d.err(
                n.pos,
                field,
                "SCTP cannot be probed: expected TCP or UDP".into(),
                None,
            );
            None
        }
        _ => {
            let hint = did_you_mean(&s, &["TCP", "UDP"]).map(|m| format!("did you mean `{m}`?"));
            d.err(
                n.pos,
                field,
                format!("expected TCP or UDP, found `{s}`"),
                hint,
            );
            None
        }
    }
}

fn outcome(d: &mut Decoder, n: &Node, field: &str) -> Option<Outcome> {
    let s = d.string(n, field)?;
    if let Some(o) = Outcome::from_word(&s) {
        return Some(o);
    }
    let hint = did_you_mean(&s, Outcome::WORDS)
        .map(|m| format!("did you mean `{m}`?"))
        .unwrap_or_else(|| {
            "connected: the connection is made; refused: reachable, nothing listening; \
             blocked: no answer within the probe timeout"
                .into()
        });
    d.err(
        n.pos,
        field,
        format!("expected connected, refused or blocked, found `{s}`"),
        Some(hint),
    );
    None
}

/// A source in the grammar of `crate::target`; a name without a namespace
/// is in `default`.
pub fn parse_source(s: &str) -> Option<Source> {
    use crate::target::{parse, Role, Spec};
    let pod = |namespace: Option<String>, name: String| Source::Pod {
        namespace: namespace.unwrap_or_else(|| "default".into()),
        name,
    };
    Some(match parse(s, Role::Source).ok()?.spec {
        Spec::External => Source::External,
        Spec::Lb => Source::Lb,
        Spec::Node(n) => Source::Node(n),
        Spec::Name(name) => pod(None, name),
        Spec::Pod { namespace, name } => pod(namespace, name),
        _ => return None,
    })
}

/// A destination in the grammar of `crate::target`, without a port (the
/// assertion has its own `port:`); a name without a namespace is in
/// `default`, a DNS name is kept without its trailing dot.
pub fn parse_target(s: &str) -> Option<Target> {
    use crate::target::{parse, Role, Spec};
    let t = parse(s, Role::Destination).ok()?;
    if t.port.is_some() {
        return None;
    }
    let ns = |n: Option<String>| n.unwrap_or_else(|| "default".into());
    Some(match t.spec {
        Spec::Ip(ip) => Target::Ip(ip),
        Spec::External => Target::External,
        Spec::Lb => Target::Lb,
        Spec::Node(n) => Target::Node(n),
        Spec::Name(n) => Target::Name(n),
        Spec::Pod { namespace, name } => Target::Pod {
            namespace: ns(namespace),
            name,
        },
        Spec::Service { namespace, name } => Target::Service {
            namespace: ns(namespace),
            name,
        },
        Spec::LoadBalancer { namespace, name } => Target::LoadBalancer {
            namespace: ns(namespace),
            name,
        },
        Spec::Dns(n) => Target::Dns(n.trim_end_matches('.').into()),
    })
}

pub fn parse_refuser(s: &str) -> Option<Refuser> {
    if s == "kube-proxy" {
        return Some(Refuser::KubeProxy);
    }
    Some(match parse_source(s)? {
        Source::Pod { namespace, name } => Refuser::Pod { namespace, name },
        Source::Node(n) => Refuser::Node(n),
        Source::External => Refuser::External,
        Source::Lb => Refuser::Lb,
    })
}

pub fn parse_source_ip(s: &str) -> Option<SourceIp> {
    if s == "client" {
        return Some(SourceIp::Client);
    }
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Some(SourceIp::Ip(ip));
    }
    match parse_source(s)? {
        Source::Pod { namespace, name } => Some(SourceIp::Pod { namespace, name }),
        Source::Node(n) => Some(SourceIp::Node(n)),
        Source::External | Source::Lb => None,
    }
}

fn spanned<T>(
    d: &mut Decoder,
    n: &Node,
    field: &str,
    parse: fn(&str) -> Option<T>,
    forms: &str,
) -> Option<Spanned<T>> {
    let text = d.string(n, field)?;
    match parse(&text) {
        Some(value) => Some(Spanned {
            text,
            pos: n.pos,
            field: field.to_string(),
            value,
        }),
        None => {
            d.err(
                n.pos,
                field,
                format!("expected {forms}, found `{text}`"),
                None,
            );
            None
        }
    }
}

fn connect(d: &mut Decoder, f: &Fields, path: &str) -> Option<Connect> {
    let from = required(d, f, path, "from", "add `from:`, e.g. `from: pod-1`")
        .and_then(|n| spanned(d, n, &join(path, "from"), parse_source, SOURCE_FORMS));
    let to = required(d, f, path, "to", "add `to:`, e.g. `to: pod-2`")
        .and_then(|n| spanned(d, n, &join(path, "to"), parse_target, TARGET_FORMS));
    let port = port(d, f, path);
    let protocol = protocol(d, f, path);
    let expect = required(
        d,
        f,
        path,
        "expect",
        "add `expect: connected` (or `refused`, or `blocked`)",
    )
    .and_then(|n| outcome(d, n, &join(path, "expect")));
    let source_ip = f.get("sourceIP").map(|n| {
        spanned(
            d,
            n,
            &join(path, "sourceIP"),
            parse_source_ip,
            "`client` (the source's own address: no SNAT), a pod, `node/NAME` or an IPv4 address",
        )
    });
    let status = f.get("status").map(|n| {
        d.int(n, &join(path, "status"), 100, 599, "an HTTP status 100-599")
            .map(|s| s as u16)
    });
    let body_contains = f
        .get("bodyContains")
        .map(|n| d.string(n, &join(path, "bodyContains")));
    let refused_by = f.get("refusedBy").map(|n| {
        spanned(
            d,
            n,
            &join(path, "refusedBy"),
            parse_refuser,
            "`kube-proxy` (a Service without endpoints), a pod (`NAME`, `NS/NAME` or `pod/NAME`), \
             `node/NAME`, `external` or `lb`",
        )
    });

    // What the server saw is only known when there was a server.
    let expect = expect?;
    let mut ok = true;
    if expect != Outcome::Connected {
        for key in ["sourceIP", "status", "bodyContains"] {
            if let Some(n) = f.get(key) {
                d.err(
                    n.pos,
                    join(path, key),
                    format!("`{key}` needs `expect: connected`: there is no server to ask when the connection is {expect}"),
                    None,
                );
                ok = false;
            }
        }
    }
    if expect != Outcome::Refused {
        if let Some(n) = f.get("refusedBy") {
            d.err(
                n.pos,
                join(path, "refusedBy"),
                format!("`refusedBy` needs `expect: refused`: nothing refuses a connection that is {expect}"),
                None,
            );
            ok = false;
        }
    }
    if protocol == Some(Protocol::Udp) {
        for key in ["status", "bodyContains"] {
            if let Some(n) = f.get(key) {
                d.err(
                    n.pos,
                    join(path, key),
                    format!("`{key}` is about an HTTP answer, and this probe is UDP"),
                    None,
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    Some(Connect {
        from: from?,
        to: to?,
        port: port?,
        protocol: protocol?,
        expect,
        source_ip: source_ip.map_or(Some(None), |s| s.map(Some))?,
        status: status.map_or(Some(None), |s| s.map(Some))?,
        body_contains: body_contains.map_or(Some(None), |s| s.map(Some))?,
        refused_by: refused_by.map_or(Some(None), |s| s.map(Some))?,
    })
}

fn spanned_list<T>(
    d: &mut Decoder,
    n: &Node,
    field: &str,
    parse: fn(&str) -> Option<T>,
    forms: &str,
) -> Option<Vec<Spanned<T>>> {
    let items = d.list(n, field, "a list");
    if items.is_empty() && matches!(n.value, Value::Seq(_)) {
        d.err(n.pos, field, "the list is empty".into(), None);
        return None;
    }
    let out: Vec<Spanned<T>> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| spanned(d, item, &format!("{field}[{i}]"), parse, forms))
        .collect();
    (out.len() == items.len() && !items.is_empty()).then_some(out)
}

fn matrix(d: &mut Decoder, node: &Node, path: &str) -> Option<Matrix> {
    let f = d.fields(node, path, MATRIX, &[])?;
    let from = required(d, &f, path, "from", "add `from: [pod-a, pod-b]`")
        .and_then(|n| spanned_list(d, n, &join(path, "from"), parse_source, SOURCE_FORMS));
    let to = required(d, &f, path, "to", "add `to: [pod-a, pod-b]`")
        .and_then(|n| spanned_list(d, n, &join(path, "to"), parse_target, TARGET_FORMS));
    let port = port(d, &f, path);
    let protocol = protocol(d, &f, path);
    let table = required(
        d,
        &f,
        path,
        "expect",
        "add `expect: |` and one row per source: `.` connected, `X` blocked, `R` refused",
    );
    let (from, to) = (from?, to?);
    let expect = table_of(d, table?, &join(path, "expect"), from.len(), to.len())?;
    Some(Matrix {
        from,
        to,
        port: port?,
        protocol: protocol?,
        expect,
    })
}

/// The truth table: a block of rows, or a list of row strings; `.`, `X`
/// and `R` separated by blanks, one row per source, one column per
/// destination.
fn table_of(
    d: &mut Decoder,
    n: &Node,
    field: &str,
    rows: usize,
    cols: usize,
) -> Option<Vec<Vec<Outcome>>> {
    // (text of the row, where to point at it)
    let lines: Vec<(String, Pos, String)> = match &n.value {
        Value::Seq(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let f = format!("{field}[{i}]");
                out.push((d.string(item, &f)?, item.pos, f));
            }
            out
        }
        _ => {
            let text = d.string(n, field)?;
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| (l.to_string(), n.pos, field.to_string()))
                .collect()
        }
    };
    let shape = format!("{rows} rows (one per source) of {cols} entries (one per destination)");
    if lines.len() != rows {
        d.err(
            n.pos,
            field,
            format!("the table has {} rows, expected {shape}", lines.len()),
            Some("`.` connected, `X` blocked, `R` refused".into()),
        );
        return None;
    }
    let mut table = Vec::new();
    let mut ok = true;
    for (i, (line, pos, f)) in lines.iter().enumerate() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.len() != cols {
            d.err(
                *pos,
                f.clone(),
                format!(
                    "row {} has {} entries, expected {shape}",
                    i + 1,
                    cells.len()
                ),
                Some("separate the entries with spaces: `. X .`".into()),
            );
            ok = false;
            continue;
        }
        let mut row = Vec::new();
        for c in cells {
            match Outcome::from_symbol(c) {
                Some(o) => row.push(o),
                None => {
                    d.err(
                        *pos,
                        f.clone(),
                        format!("row {}: `{c}` is not `.`, `X` or `R`", i + 1),
                        Some("`.` connected, `X` blocked, `R` refused".into()),
                    );
                    ok = false;
                }
            }
        }
        table.push(row);
    }
    ok.then_some(table)
}

fn dns(d: &mut Decoder, node: &Node, path: &str) -> Option<DnsCheck> {
    let f = d.fields(node, path, DNS, &[])?;
    let from = required(d, &f, path, "from", "add `from:`, e.g. `from: pod-1`")
        .and_then(|n| spanned(d, n, &join(path, "from"), parse_source, SOURCE_FORMS));
    let query = required(d, &f, path, "name", "add the name to resolve: `name: web`")
        .and_then(|n| d.string(n, &join(path, "name")));
    let mut rtype = Some(RecordType::A);
    if let Some(n) = f.get("type") {
        let field = join(path, "type");
        rtype = d.string(n, &field).and_then(|s| {
            let found = RecordType::ALL
                .iter()
                .find(|(w, _)| *w == s)
                .map(|(_, t)| *t);
            if found.is_none() {
                let words: Vec<&str> = RecordType::ALL.iter().map(|(w, _)| *w).collect();
                d.err(
                    n.pos,
                    field,
                    format!("expected one of {}, found `{s}`", words.join(", ")),
                    did_you_mean(&s, &words).map(|m| format!("did you mean `{m}`?")),
                );
            }
            found
        });
    }
    let mut rcode = Some(None);
    if let Some(n) = f.get("rcode") {
        let field = join(path, "rcode");
        rcode = d.string(n, &field).and_then(|s| {
            let found = Rcode::ALL.iter().find(|(w, _)| *w == s).map(|(_, r)| *r);
            if found.is_none() {
                let words: Vec<&str> = Rcode::ALL.iter().map(|(w, _)| *w).collect();
                d.err(
                    n.pos,
                    field,
                    format!("expected one of {}, found `{s}`", words.join(", ")),
                    did_you_mean(&s, &words).map(|m| format!("did you mean `{m}`?")),
                );
            }
            found.map(Some)
        });
    }
    let mut answers = Some(None);
    if let Some(n) = f.get("answers") {
        let field = join(path, "answers");
        let items = d.list(n, &field, "a list of answers");
        let list: Vec<(String, Pos)> = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                d.string(item, &format!("{field}[{i}]"))
                    .map(|s| (s, item.pos))
            })
            .collect();
        answers = if list.len() == items.len() && matches!(n.value, Value::Seq(_)) {
            if rtype == Some(RecordType::A) {
                for (i, (s, pos)) in list.iter().enumerate() {
                    if s.parse::<Ipv4Addr>().is_err() {
                        d.err(
                            *pos,
                            format!("{field}[{i}]"),
                            format!("an A record is an IPv4 address, found `{s}`"),
                            None,
                        );
                    }
                }
            }
            Some(Some(list.into_iter().map(|(s, _)| s).collect()))
        } else {
            None
        };
        if let (Some(Some(_)), Some(Some(r))) = (&answers, rcode) {
            if r != Rcode::NOERROR {
                d.err(
                    n.pos,
                    field,
                    format!("answers come with NOERROR, but `rcode` is {r}"),
                    Some("keep `answers` or `rcode`, not both".into()),
                );
                return None;
            }
        }
    }
    Some(DnsCheck {
        from: from?,
        query: query?,
        rtype: rtype?,
        answers: answers?,
        rcode: rcode?,
    })
}

fn path_check(d: &mut Decoder, node: &Node, path: &str, kind: PathKind) -> Option<PathCheck> {
    let mut known = vec!["from", "to"];
    known.extend(kind.fields().iter().map(|(n, ..)| *n));
    let f = d.fields(node, path, &known, &[])?;
    let from = required(d, &f, path, "from", "add `from:`, e.g. `from: pod-1`")
        .and_then(|n| spanned(d, n, &join(path, "from"), parse_source, SOURCE_FORMS));
    let to = required(d, &f, path, "to", "add `to:`, e.g. `to: pod-2`")
        .and_then(|n| spanned(d, n, &join(path, "to"), parse_target, TARGET_FORMS));
    let mut params = Vec::new();
    let mut ok = true;
    for &(name, default, lo, hi) in kind.fields() {
        let value = match (f.get(name), default) {
            (Some(n), _) => d.int(
                n,
                &join(path, name),
                lo,
                hi,
                &format!("an integer {lo}-{hi}"),
            ),
            (None, Some(v)) => Some(v),
            (None, None) => {
                required(d, &f, path, name, &format!("add `{name}:` ({lo}-{hi})"));
                None
            }
        };
        match value {
            Some(v) => params.push((name.to_string(), v)),
            None => ok = false,
        }
    }
    let (from, to) = (from?, to?);
    // An echo is answered by a host: a Service's address is only rewritten
    // for its ports, and answers no ping.
    if matches!(
        to.value,
        Target::Service { .. } | Target::LoadBalancer { .. } | Target::Dns(_)
    ) {
        d.err(
            to.pos,
            to.field.clone(),
            format!(
                "`{}` is a Service: a path is measured to a pod or a node (ICMP echoes), and a Service's address answers none",
                to.text
            ),
            Some("name one of its pods, e.g. `to: web-1`".into()),
        );
        return None;
    }
    ok.then_some(PathCheck {
        kind,
        from,
        to,
        params,
    })
}

fn kernel(d: &mut Decoder, node: &Node, path: &str) -> Option<KernelCheck> {
    let f = d.fields(node, path, KERNEL, &[])?;
    let given: Vec<&str> = KERNEL
        .iter()
        .copied()
        .filter(|k| f.get(k).is_some())
        .collect();
    if given.len() != 1 {
        d.err(
            node.pos,
            path,
            format!(
                "expected one of `node`, `namespace`, `kubeProxy` or `lab`, found {}",
                if given.is_empty() {
                    "none".to_string()
                } else {
                    given.join(" and ")
                }
            ),
            Some("e.g. `kernel: {node: node-1}`, `kernel: {kubeProxy: all}`".into()),
        );
        return None;
    }
    let key = given[0];
    let n = f.get(key)?;
    let field = join(path, key);
    let label = |d: &mut Decoder, what: &str| {
        let s = d.string(n, &field)?;
        if is_dns1123_label(&s) {
            Some(s)
        } else {
            d.err(
                n.pos,
                field.clone(),
                format!("expected a {what} name, found `{s}`"),
                None,
            );
            None
        }
    };
    let (scope, text) = match key {
        "node" => {
            let s = label(d, "node")?;
            (KernelScope::Node(s.clone()), format!("node/{s}"))
        }
        "namespace" => {
            let s = label(d, "namespace")?;
            (KernelScope::Namespace(s.clone()), format!("namespace {s}"))
        }
        "kubeProxy" => {
            let s = label(d, "node")?;
            if s == "all" {
                (
                    KernelScope::KubeProxy(None),
                    "kube-proxy on every node".into(),
                )
            } else {
                (
                    KernelScope::KubeProxy(Some(s.clone())),
                    format!("kube-proxy on node/{s}"),
                )
            }
        }
        _ => {
            if !matches!(&n.value, Value::Scalar { text, quoted: false } if text == "true") {
                d.err(
                    n.pos,
                    field,
                    format!("expected `true`, found {}", describe(n)),
                    None,
                );
                return None;
            }
            (KernelScope::Lab, "the whole lab".into())
        }
    };
    Some(KernelCheck {
        scope,
        text,
        pos: n.pos,
    })
}

// ---- relating names to the lab ----

struct Known<'a> {
    file: &'a LabFile,
    /// (namespace, name) of pods, Deployments and the other workloads,
    /// and of a StatefulSet's pods: their names are known before they
    /// run (`web-0`), and a learner writes them.
    pods: HashSet<(&'a str, String)>,
    nodes: Vec<&'a str>,
}

impl Known<'_> {
    fn pod(&self, ns: &str, name: &str) -> bool {
        self.pods.contains(&(ns, name.to_string()))
    }

    fn service(&self, ns: &str, name: &str) -> Option<&crate::lab::Service> {
        self.file
            .services
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
    }

    fn pod_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .pods
            .iter()
            .map(|(ns, n)| {
                if *ns == "default" {
                    n.to_string()
                } else {
                    format!("{ns}/{n}")
                }
            })
            .collect();
        v.sort();
        v
    }

    fn no_pod(&self, what: &str, ns: &str, name: &str) -> (String, Option<String>) {
        let names = self.pod_names();
        let written = if ns == "default" {
            name.to_string()
        } else {
            format!("{ns}/{name}")
        };
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let hint = match did_you_mean(&written, &refs) {
            Some(m) => Some(format!("did you mean `{m}`?")),
            None if names.is_empty() => Some("the lab has no pods".into()),
            None => Some(format!("the lab's pods: {}", names.join(", "))),
        };
        (format!("{what} `{written}` names no pod of this lab"), hint)
    }

    fn no_node(&self, name: &str) -> (String, Option<String>) {
        let hint = did_you_mean(name, &self.nodes)
            .map(|m| format!("did you mean `node/{m}`?"))
            .or_else(|| Some(format!("the lab's nodes: {}", self.nodes.join(", "))));
        (format!("`node/{name}` names no node of this lab"), hint)
    }

    fn no_service(&self, ns: &str, name: &str) -> (String, Option<String>) {
        let names: Vec<String> = self
            .file
            .services
            .iter()
            .map(|s| format!("{}/{}", s.namespace, s.name))
            .collect();
        let hint = if names.is_empty() {
            "the lab has no Services".to_string()
        } else {
            format!("the lab's Services: {}", names.join(", "))
        };
        (
            format!("no Service `{name}` in namespace `{ns}` in this lab"),
            Some(hint),
        )
    }

    fn source(&self, s: &Source) -> Result<(), (String, Option<String>)> {
        match s {
            Source::Pod { namespace, name } if !self.pod(namespace, name) => {
                Err(self.no_pod("source", namespace, name))
            }
            Source::Node(n) if !self.nodes.contains(&n.as_str()) => Err(self.no_node(n)),
            _ => Ok(()),
        }
    }

    /// The namespace whose search path a source resolves names in.
    fn search_ns(s: &Source) -> &str {
        match s {
            Source::Pod { namespace, .. } => namespace,
            _ => "default",
        }
    }

    fn target(&self, t: &Target, from: &Source) -> Result<(), (String, Option<String>)> {
        match t {
            Target::Node(n) if !self.nodes.contains(&n.as_str()) => Err(self.no_node(n)),
            Target::Pod { namespace, name } if !self.pod(namespace, name) => {
                Err(self.no_pod("destination", namespace, name))
            }
            Target::Service { namespace, name } if self.service(namespace, name).is_none() => {
                Err(self.no_service(namespace, name))
            }
            Target::LoadBalancer { namespace, name } => match self.service(namespace, name) {
                None => Err(self.no_service(namespace, name)),
                Some(s) if s.raw["spec"]["type"] != "LoadBalancer" => Err((
                    format!("Service `{namespace}/{name}` is not of type LoadBalancer"),
                    Some(
                        "`lb/NAME` is the LoadBalancer IP of a `type: LoadBalancer` Service".into(),
                    ),
                )),
                Some(_) => Ok(()),
            },
            Target::Name(name) => {
                let ns = Self::search_ns(from);
                if self.pod("default", name) || self.service(ns, name).is_some() {
                    Ok(())
                } else {
                    let (_, hint) = self.no_pod("", "default", name);
                    Err((
                        format!(
                            "`{name}` names no pod in `default` and no Service in `{ns}` of this lab"
                        ),
                        hint,
                    ))
                }
            }
            Target::Dns(name) => {
                let domain = &self.file.lab.network.cluster_domain;
                match service_of_dns(name, domain) {
                    Some((svc, ns)) if self.service(ns, svc).is_some() => Ok(()),
                    Some((svc, ns)) => Err(self.no_service(ns, svc)),
                    None => Err((
                        format!("`{name}` is not a Service name of this lab"),
                        Some(format!(
                            "a Service is NAME, NAME.NS, NAME.NS.svc or NAME.NS.svc.{domain}"
                        )),
                    )),
                }
            }
            _ => Ok(()),
        }
    }

    fn refuser(&self, r: &Refuser) -> Result<(), (String, Option<String>)> {
        match r {
            Refuser::Pod { namespace, name } if !self.pod(namespace, name) => {
                Err(self.no_pod("refusedBy", namespace, name))
            }
            Refuser::Node(n) if !self.nodes.contains(&n.as_str()) => Err(self.no_node(n)),
            _ => Ok(()),
        }
    }

    fn source_ip(&self, s: &SourceIp) -> Result<(), (String, Option<String>)> {
        match s {
            SourceIp::Pod { namespace, name } if !self.pod(namespace, name) => {
                Err(self.no_pod("sourceIP", namespace, name))
            }
            SourceIp::Node(n) if !self.nodes.contains(&n.as_str()) => Err(self.no_node(n)),
            _ => Ok(()),
        }
    }
}

/// `NAME.NS[.svc[.DOMAIN]]` → (NAME, NS).
pub fn service_of_dns<'a>(name: &'a str, domain: &str) -> Option<(&'a str, &'a str)> {
    let parts: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    let suffix_ok = match parts.len() {
        2 => true,
        3 => parts[2] == "svc",
        n if n > 3 => parts[2] == "svc" && parts[3..].join(".") == domain,
        _ => false,
    };
    suffix_ok.then(|| (parts[0], parts[1]))
}

/// A StatefulSet's pods, `<name>-<ordinal>` as the plan names them
/// (`plan::workloads::statefulset_pod_name`).
fn statefulset_pods(file: &LabFile) -> impl Iterator<Item = (&str, String)> {
    file.workloads
        .iter()
        .filter(|w| w.kind == super::types::WorkloadKind::StatefulSet)
        .flat_map(|w| {
            (0..w.replicas).map(move |i| {
                let ordinal = w.ordinals_start.saturating_add(i);
                (w.namespace.as_str(), format!("{}-{ordinal}", w.name))
            })
        })
}

/// Every name in `spec.expect` must be one of the lab's pods, nodes or
/// Services: a typo would otherwise only show when the test runs.
pub(crate) fn check(file: &LabFile, out: &mut Vec<Diagnostic>) {
    let known = Known {
        file,
        pods: file
            .pods
            .iter()
            .map(|p| (p.namespace.as_str(), p.name.clone()))
            .chain(
                file.deployments
                    .iter()
                    .map(|d| (d.namespace.as_str(), d.name.clone())),
            )
            .chain(
                file.workloads
                    .iter()
                    .map(|w| (w.namespace.as_str(), w.name.clone())),
            )
            .chain(statefulset_pods(file))
            .collect(),
        nodes: file.lab.nodes.iter().map(|n| n.name.as_str()).collect(),
    };
    let mut report = |pos: Pos, field: &str, (message, hint): (String, Option<String>)| {
        out.push(Diagnostic {
            source: file.source.clone(),
            pos,
            field: field.to_string(),
            message: format!("lab `{}`: {message}", file.lab.name),
            hint,
        });
    };
    for a in &file.lab.expect {
        match &a.check {
            Check::Connect(c) => {
                if let Err(e) = known.source(&c.from.value) {
                    report(c.from.pos, &c.from.field, e);
                }
                if let Err(e) = known.target(&c.to.value, &c.from.value) {
                    report(c.to.pos, &c.to.field, e);
                }
                if let Some(ip) = &c.source_ip {
                    if let Err(e) = known.source_ip(&ip.value) {
                        report(ip.pos, &ip.field, e);
                    }
                }
                if let Some(r) = &c.refused_by {
                    if let Err(e) = known.refuser(&r.value) {
                        report(r.pos, &r.field, e);
                    }
                }
            }
            Check::Matrix(m) => {
                for f in &m.from {
                    if let Err(e) = known.source(&f.value) {
                        report(f.pos, &f.field, e);
                    }
                }
                for t in &m.to {
                    // Reported once, for the first source it fails from.
                    if let Some(e) = m
                        .from
                        .iter()
                        .find_map(|f| known.target(&t.value, &f.value).err())
                    {
                        report(t.pos, &t.field, e);
                    }
                }
            }
            Check::Dns(d) => {
                if let Err(e) = known.source(&d.from.value) {
                    report(d.from.pos, &d.from.field, e);
                }
            }
            Check::Path(p) => {
                if let Err(e) = known.source(&p.from.value) {
                    report(p.from.pos, &p.from.field, e);
                }
                if let Err(e) = known.target(&p.to.value, &p.from.value) {
                    report(p.to.pos, &p.to.field, e);
                }
            }
            Check::Kernel(k) => {
                let node = match &k.scope {
                    KernelScope::Node(n) | KernelScope::KubeProxy(Some(n)) => Some(n),
                    _ => None,
                };
                if let Some(n) = node {
                    if !known.nodes.contains(&n.as_str()) {
                        report(k.pos, "kernel", known.no_node(n));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, LabFile};
    use super::*;

    /// The lab: lines 1-5, then the assertions from line 6.
    const HEAD: &str = "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: l}
spec:
  expect:
";
    const PODS: &str = "---
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: Pod
metadata: {name: pod-1}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: pod-2}
spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: pod-c, namespace: x}
spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
";

    fn file(expect: &str) -> String {
        format!("{HEAD}{expect}{PODS}")
    }

    fn ok(expect: &str) -> LabFile {
        match parse("lab.yaml", &file(expect)) {
            Ok(f) => f,
            Err(e) => panic!("unexpected errors:\n{e}"),
        }
    }

    /// Every diagnostic as (line, col, field, message, hint).
    fn errs(expect: &str) -> Vec<(usize, usize, String, String, Option<String>)> {
        match parse("lab.yaml", &file(expect)) {
            Ok(_) => panic!("expected errors in:\n{expect}"),
            Err(e) => e
                .diagnostics
                .into_iter()
                .map(|d| (d.pos.line, d.pos.col, d.field, d.message, d.hint))
                .collect(),
        }
    }

    fn one(expect: &str) -> (usize, usize, String, String, Option<String>) {
        let mut e = errs(expect);
        assert_eq!(e.len(), 1, "{e:#?}");
        e.remove(0)
    }

    #[test]
    fn every_shape_decodes_with_a_readable_name() {
        let f = ok("  - {from: pod-2, to: pod-1, port: 80, expect: connected, sourceIP: client}
  - {name: mine, from: x/pod-c, to: svc/web, port: 53, protocol: UDP, expect: blocked}
  - {from: node/node-1, to: 10.244.2.2, port: 80, expect: refused}
  - {from: external, to: web.default.svc.cluster.local, port: 80, expect: connected, status: 200, bodyContains: pod}
  - matrix:
      from: [pod-1, pod-2, x/pod-c]
      to: [pod-1, pod-2, x/pod-c]
      port: 80
      expect: |
        .  X  .
        .  .  R
        .  .  .
  - dns: {from: pod-1, name: web, answers: [10.96.0.5]}
  - dns: {from: pod-1, name: nope, rcode: NXDOMAIN}
");
        let titles: Vec<String> = f.lab.expect.iter().map(|a| a.title()).collect();
        assert_eq!(
            titles,
            [
                "pod-2 -> pod-1:80/TCP connected, sourceIP client",
                "mine",
                "node/node-1 -> 10.244.2.2:80/TCP refused",
                "external -> web.default.svc.cluster.local:80/TCP connected, status 200, body contains \"pod\"",
                "matrix [pod-1, pod-2, x/pod-c] -> [pod-1, pod-2, x/pod-c]:80/TCP",
                "pod-1 resolves web A -> 10.96.0.5",
                "pod-1 resolves nope A -> NXDOMAIN",
            ]
        );
        let Check::Matrix(m) = &f.lab.expect[4].check else {
            panic!("not a matrix")
        };
        use Outcome::*;
        assert_eq!(
            m.expect,
            [
                [Connected, Blocked, Connected],
                [Connected, Connected, Refused],
                [Connected, Connected, Connected]
            ]
        );
        assert_eq!(
            m.from[2].value,
            Source::Pod {
                namespace: "x".into(),
                name: "pod-c".into()
            }
        );
        let Check::Connect(c) = &f.lab.expect[1].check else {
            panic!("not a connect")
        };
        assert_eq!(
            c.to.value,
            Target::Service {
                namespace: "default".into(),
                name: "web".into()
            }
        );
    }

    #[test]
    fn a_matrix_table_may_be_a_list_of_rows() {
        let f =
            ok("  - matrix: {from: [pod-1, pod-2], to: [pod-1], port: 80, expect: ['.', 'X']}\n");
        let Check::Matrix(m) = &f.lab.expect[0].check else {
            panic!("not a matrix")
        };
        assert_eq!(m.expect, [[Outcome::Connected], [Outcome::Blocked]]);
    }

    #[test]
    fn unknown_field_has_a_did_you_mean() {
        let e =
            one("  - {from: pod-2, to: pod-1, port: 80, expect: connected, sourceIp: client}\n");
        assert_eq!(
            (e.0, e.1, e.2.as_str(), e.3.as_str()),
            (
                6,
                59,
                "spec.expect[0].sourceIp",
                "lab `l`: unknown field `sourceIp`"
            )
        );
        assert_eq!(e.4.as_deref(), Some("did you mean `sourceIP`?"));
    }

    #[test]
    fn misspelt_required_field_is_reported_once() {
        let e = one("  - {from: pod-2, too: pod-1, port: 80, expect: connected}\n");
        assert_eq!(e.3, "lab `l`: unknown field `too`");
        assert_eq!(e.4.as_deref(), Some("did you mean `to`?"));
    }

    #[test]
    fn missing_fields() {
        let e = one("  - {from: pod-2, to: pod-1, port: 80}\n");
        assert_eq!(
            (e.0, e.1, e.2.as_str(), e.3.as_str()),
            (
                6,
                5,
                "spec.expect[0].expect",
                "lab `l`: assertion has no `expect`"
            )
        );
        let e = one("  - {from: pod-2, port: 80, expect: connected}\n");
        assert_eq!(e.3, "lab `l`: assertion has no `to`");
    }

    #[test]
    fn wrong_types() {
        let e = one("  - {from: pod-2, to: pod-1, port: \"80\", expect: connected}\n");
        assert_eq!(
            (e.0, e.1, e.2.as_str(), e.3.as_str()),
            (
                6,
                36,
                "spec.expect[0].port",
                "lab `l`: expected an integer 1-65535, found the string \"80\""
            )
        );
        assert_eq!(
            e.4.as_deref(),
            Some("remove the quotes: a number in quotes is a string")
        );
        let e = one("  - {from: [pod-2], to: pod-1, port: 80, expect: connected}\n");
        assert_eq!(e.3, "lab `l`: expected a string, found a list");
        let e = one("  - just-a-word\n");
        assert_eq!(
            (e.0, e.2.as_str(), e.3.as_str()),
            (
                6,
                "spec.expect[0]",
                "lab `l`: expected an assertion (a mapping), found `just-a-word`"
            )
        );
        let e = one("  - {from: pod-2, to: pod-1, port: 80, expect: connected, status: 700}\n");
        assert_eq!(
            e.3,
            "lab `l`: expected an HTTP status 100-599, found the number 700"
        );
    }

    #[test]
    fn bad_outcome_words() {
        let e = one("  - {from: pod-2, to: pod-1, port: 80, expect: conected}\n");
        assert_eq!(
            (e.0, e.1, e.2.as_str(), e.3.as_str()),
            (
                6,
                48,
                "spec.expect[0].expect",
                "lab `l`: expected connected, refused or blocked, found `conected`"
            )
        );
        assert_eq!(e.4.as_deref(), Some("did you mean `connected`?"));
        let e = one("  - {from: pod-2, to: pod-1, port: 80, expect: reachable}\n");
        assert!(e
            .4
            .unwrap()
            .starts_with("connected: the connection is made"));
        let e = one("  - {from: pod-2, to: pod-1, port: 80, protocol: SCTP, expect: connected}\n");
        assert_eq!(e.3, "lab `l`: SCTP cannot be probed: expected TCP or UDP");
        let e = one("  - {from: pod-2, to: pod-1, port: 80, protocol: udp, expect: connected}\n");
        assert_eq!(e.4.as_deref(), Some("did you mean `UDP`?"));
    }

    #[test]
    fn refused_by_names_who_refused() {
        let f = ok(
            "  - {from: pod-2, to: svc/web, port: 80, expect: refused, refusedBy: kube-proxy}
  - {from: pod-2, to: pod-1, port: 81, expect: refused, refusedBy: pod-1}
  - {from: pod-2, to: x/pod-c, port: 81, expect: refused, refusedBy: x/pod-c}
  - {from: pod-2, to: node/node-1, port: 22, expect: refused, refusedBy: node/node-1}
  - {from: pod-2, to: lb, port: 22, expect: refused, refusedBy: lb}
  - {from: pod-2, to: pod-1, port: 80, expect: refused}
",
        );
        let by: Vec<Option<Refuser>> = f
            .lab
            .expect
            .iter()
            .map(|a| match &a.check {
                Check::Connect(c) => c.refused_by.as_ref().map(|r| r.value.clone()),
                _ => panic!("a connection"),
            })
            .collect();
        let pod = |ns: &str, n: &str| Refuser::Pod {
            namespace: ns.into(),
            name: n.into(),
        };
        assert_eq!(
            by,
            [
                Some(Refuser::KubeProxy),
                Some(pod("default", "pod-1")),
                Some(pod("x", "pod-c")),
                Some(Refuser::Node("node-1".into())),
                Some(Refuser::Lb),
                None,
            ]
        );
        assert_eq!(
            f.lab.expect[0].title(),
            "pod-2 -> svc/web:80/TCP refused by kube-proxy"
        );
    }

    #[test]
    fn refused_by_needs_refused_and_a_name_of_the_lab() {
        let e =
            one("  - {from: pod-2, to: pod-1, port: 80, expect: connected, refusedBy: pod-1}\n");
        assert_eq!(e.2, "spec.expect[0].refusedBy");
        assert!(
            e.3.contains("`refusedBy` needs `expect: refused`"),
            "{}",
            e.3
        );
        let e = one("  - {from: pod-2, to: pod-1, port: 80, expect: refused, refusedBy: pod-9}\n");
        assert_eq!(e.3, "lab `l`: refusedBy `pod-9` names no pod of this lab");
        let e = one(
            "  - {from: pod-2, to: pod-1, port: 80, expect: refused, refusedBy: node/node-9}\n",
        );
        assert_eq!(e.2, "spec.expect[0].refusedBy");
        let e =
            one("  - {from: pod-2, to: pod-1, port: 80, expect: refused, refusedBy: Kube_Proxy}\n");
        assert!(e.3.contains("expected `kube-proxy`"), "{}", e.3);
        let e = one("  - {from: pod-2, to: pod-1, port: 80, expect: refused, refusedby: pod-1}\n");
        assert_eq!(e.4.as_deref(), Some("did you mean `refusedBy`?"));
    }

    #[test]
    fn server_facts_need_a_connection() {
        let e = one("  - {from: pod-2, to: pod-1, port: 80, expect: blocked, sourceIP: client}\n");
        assert_eq!(e.2, "spec.expect[0].sourceIP");
        assert!(
            e.3.contains("`sourceIP` needs `expect: connected`"),
            "{}",
            e.3
        );
        let e = one("  - {from: pod-2, to: pod-1, port: 80, protocol: UDP, expect: connected, status: 200}\n");
        assert!(e.3.contains("this probe is UDP"), "{}", e.3);
    }

    #[test]
    fn a_matrix_must_be_n_by_m() {
        let e = one("  - matrix:
      from: [pod-1, pod-2]
      to: [pod-1, pod-2, x/pod-c]
      port: 80
      expect: |
        .  .  .
");
        assert_eq!(
            (e.0, e.2.as_str(), e.3.as_str()),
            (
                11,
                "spec.expect[0].matrix.expect",
                "lab `l`: the table has 1 rows, expected 2 rows (one per source) of 3 entries (one per destination)"
            )
        );
        let e = one("  - matrix:
      from: [pod-1, pod-2]
      to: [pod-1, pod-2]
      port: 80
      expect: ['. .', '. . X']
");
        assert_eq!(
            (e.0, e.1, e.2.as_str(), e.3.as_str()),
            (
                10,
                23,
                "spec.expect[0].matrix.expect[1]",
                "lab `l`: row 2 has 3 entries, expected 2 rows (one per source) of 2 entries (one per destination)"
            )
        );
        let e = one("  - matrix: {from: [pod-1], to: [pod-1, pod-2], port: 80, expect: '. O'}\n");
        assert_eq!(e.3, "lab `l`: row 1: `O` is not `.`, `X` or `R`");
        let e = one("  - matrix: {from: [pod-1], to: [pod-1], port: 80, expect: '.', from2: 1}\n");
        assert_eq!(e.3, "lab `l`: unknown field `from2`");
    }

    #[test]
    fn a_statefulsets_pods_are_names_of_the_lab() {
        let sts = "---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  ordinals: {start: 1}
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, ports: [{containerPort: 5432}]}]}
";
        let text = |expect: &str| format!("{HEAD}{expect}{PODS}{sts}");
        let good = text(
            "  - {from: db-1, to: db-2, port: 5432, expect: connected}
  - {from: pod-1, to: pod/db-2, port: 80, expect: refused, refusedBy: db-2}
",
        );
        if let Err(e) = parse("lab.yaml", &good) {
            panic!("db-1 and db-2 are the StatefulSet's pods:\n{e}");
        }
        // Ordinals start at 1 here: there is no db-0, nor a db-3.
        for ghost in ["db-0", "db-3"] {
            let bad = text(&format!(
                "  - {{from: pod-1, to: {ghost}, port: 5432, expect: connected}}\n"
            ));
            let e = parse("lab.yaml", &bad).expect_err(ghost);
            assert_eq!(e.diagnostics.len(), 1, "{e}");
            assert!(
                e.diagnostics[0]
                    .message
                    .contains(&format!("`{ghost}` names no pod")),
                "{e}"
            );
        }
    }

    #[test]
    fn names_must_be_of_the_lab() {
        let e = one("  - {from: pod-3, to: pod-1, port: 80, expect: connected}\n");
        assert_eq!(
            (e.0, e.1, e.2.as_str(), e.3.as_str()),
            (
                6,
                12,
                "spec.expect[0].from",
                "lab `l`: source `pod-3` names no pod of this lab"
            )
        );
        assert!(e.4.is_some());
        let e = one("  - {from: pod-1, to: node/node-9, port: 22, expect: refused}\n");
        assert_eq!(e.3, "lab `l`: `node/node-9` names no node of this lab");
        let e = one("  - {from: pod-1, to: y/pod-c, port: 22, expect: refused}\n");
        assert_eq!(
            e.3,
            "lab `l`: destination `y/pod-c` names no pod of this lab"
        );
        assert_eq!(e.4.as_deref(), Some("did you mean `x/pod-c`?"));
        let e = one("  - {from: pod-1, to: svc/db, port: 22, expect: refused}\n");
        assert_eq!(
            e.3,
            "lab `l`: no Service `db` in namespace `default` in this lab"
        );
        let e = one("  - {from: pod-1, to: lb/web, port: 80, expect: connected}\n");
        assert_eq!(
            e.3,
            "lab `l`: Service `default/web` is not of type LoadBalancer"
        );
        // A bare name from a pod in `x` is looked up in `x`'s search path.
        let e = one("  - {from: x/pod-c, to: web, port: 80, expect: connected}\n");
        assert_eq!(
            e.3,
            "lab `l`: `web` names no pod in `default` and no Service in `x` of this lab"
        );
        let e = one("  - {from: pod-1, to: example.com, port: 80, expect: connected}\n");
        assert_eq!(
            e.3,
            "lab `l`: no Service `example` in namespace `com` in this lab"
        );
        let e = one("  - {from: pod-1, to: www.example.com, port: 80, expect: connected}\n");
        assert_eq!(
            e.3,
            "lab `l`: `www.example.com` is not a Service name of this lab"
        );
        let e =
            one("  - {from: pod-1, to: pod-2, port: 80, expect: connected, sourceIP: node/n1}\n");
        assert_eq!(e.2, "spec.expect[0].sourceIP");
        let e =
            one("  - matrix: {from: [pod-1, ghost], to: [pod-1], port: 80, expect: \".\\n.\"}\n");
        assert_eq!(
            (e.2.as_str(), e.3.as_str()),
            (
                "spec.expect[0].matrix.from[1]",
                "lab `l`: source `ghost` names no pod of this lab"
            )
        );
        let e = one("  - {from: 'pod 1', to: pod-1, port: 80, expect: connected}\n");
        assert!(
            e.3.starts_with("lab `l`: expected a pod (`NAME`"),
            "{}",
            e.3
        );
    }

    #[test]
    fn dns_errors() {
        let e = one("  - dns: {from: pod-1, name: web, type: AA}\n");
        assert_eq!(
            e.3,
            "lab `l`: expected one of A, AAAA, CNAME, SRV, PTR, TXT, found `AA`"
        );
        let e = one("  - dns: {from: pod-1, name: web, answers: [web-pod]}\n");
        assert_eq!(
            e.3,
            "lab `l`: an A record is an IPv4 address, found `web-pod`"
        );
        let e = one("  - dns: {from: pod-1, name: web, rcode: NXDOMIAN}\n");
        assert_eq!(e.4.as_deref(), Some("did you mean `NXDOMAIN`?"));
        let e = one("  - dns: {from: pod-1, name: web, answers: [10.0.0.1], rcode: NXDOMAIN}\n");
        assert!(e.3.contains("answers come with NOERROR"), "{}", e.3);
        let e = one("  - {name: x, dns: {from: pod-1}}\n");
        assert_eq!(e.3, "lab `l`: assertion has no `name`");
    }

    #[test]
    fn path_and_kernel_checks_decode_with_defaults() {
        let f = ok("  - mtu: {from: pod-1, to: pod-2, size: 1500}
  - loss: {from: pod-1, to: node/node-1}
  - {name: fast, rate: {from: pod-1, to: 10.244.2.2, minMbit: 5, probes: 100}}
  - latency: {from: pod-1, to: pod-2, maxMs: 20}
  - kernel: {node: node-1}
  - kernel: {kubeProxy: all}
  - kernel: {namespace: x}
  - kernel: {lab: true}
");
        let titles: Vec<String> = f.lab.expect.iter().map(|a| a.title()).collect();
        assert_eq!(
            titles,
            [
                "mtu pod-1 -> pod-2: 1500-byte packets with DF set cross both ways",
                "loss pod-1 -> node/node-1: at most 2% of 100 echoes lost",
                "fast",
                "latency pod-1 -> pod-2: median round trip at most 20 ms",
                "the kernel holds the plan for node/node-1",
                "the kernel holds the plan for kube-proxy on every node",
                "the kernel holds the plan for namespace x",
                "the kernel holds the plan for the whole lab",
            ]
        );
        let Check::Path(r) = &f.lab.expect[2].check else {
            panic!("not a path check")
        };
        assert_eq!(
            (r.kind, r.param("minMbit"), r.param("probes")),
            (PathKind::Rate, 5, 100)
        );
    }

    #[test]
    fn path_and_kernel_errors() {
        let e = one("  - mtu: {from: pod-1, to: pod-2}\n");
        assert_eq!(e.3, "lab `l`: assertion has no `size`");
        let e = one("  - mtu: {from: pod-1, to: svc/web, size: 1500}\n");
        assert!(
            e.3.contains("is a Service: a path is measured to a pod or a node"),
            "{}",
            e.3
        );
        let e = one("  - loss: {from: pod-1, to: pod-2, maxPercent: 100}\n");
        assert_eq!(
            e.3,
            "lab `l`: expected an integer 0-99, found the number 100"
        );
        let e = one("  - rate: {from: pod-1, to: pod-2, minMbits: 5}\n");
        assert_eq!(e.4.as_deref(), Some("did you mean `minMbit`?"));
        let e = one("  - kernel: {node: node-1, namespace: x}\n");
        assert!(e.3.contains("found node and namespace"), "{}", e.3);
        let e = one("  - kernel: {node: node-9}\n");
        assert_eq!(e.3, "lab `l`: `node/node-9` names no node of this lab");
        let e = one("  - latency: {from: pod-9, to: pod-2, maxMs: 5}\n");
        assert_eq!(e.3, "lab `l`: source `pod-9` names no pod of this lab");
    }

    #[test]
    fn service_dns_names() {
        assert_eq!(service_of_dns("web.x", "cluster.local"), Some(("web", "x")));
        assert_eq!(
            service_of_dns("web.x.svc", "cluster.local"),
            Some(("web", "x"))
        );
        assert_eq!(
            service_of_dns("web.x.svc.cluster.local", "cluster.local"),
            Some(("web", "x"))
        );
        assert_eq!(service_of_dns("web.x.pod", "cluster.local"), None);
        assert_eq!(service_of_dns("web.x.svc.other", "cluster.local"), None);
    }
}
