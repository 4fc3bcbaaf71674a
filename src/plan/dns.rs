//! Cluster DNS as pure data: the `coredns` pod and `kube-dns` service a lab
//! gets, every pod's resolv.conf, and the record table the responder answers
//! from, following the Kubernetes DNS-Based Service Discovery specification
//! (kubernetes/dns `docs/specification.md`, schema 1.1.0).
//!
//! Like aardvark-dns's backend, the table is computed from the plan and
//! looked up without any I/O, so every record and every response code is
//! unit-tested on fixtures; `runtime::dns` only adds the wire format.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use super::names::{deployment_pod_name, fnv1a, host_veth_name};
use super::{
    EndpointPlan, NodePlan, Plan, PodDns, PodPlan, PodRole, PortPlan, ServicePlan, ServicePortPlan,
    ServiceType, TargetPort,
};
use crate::lab::{
    DnsConfig, DnsPolicy, LabFile, Pos, Protocol, RestartPolicy, UpstreamAnswer, UpstreamEntry,
};

pub const KUBE_SYSTEM: &str = "kube-system";
/// The Deployment whose pod answers DNS, as kubeadm names it.
pub const COREDNS: &str = "coredns";
/// The Service in front of it, as kubeadm names it (not `coredns`).
pub const KUBE_DNS: &str = "kube-dns";
/// The label kubeadm's coredns pods carry and kube-dns selects.
pub const DNS_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
/// Version of the specification these records follow, served as TXT at
/// `dns-version.<domain>`.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// CoreDNS's default TTL for cluster records: short, so that answers follow
/// the lab quickly.
pub const TTL: u32 = 5;
/// kubelet's limits: at most 3 nameservers, 32 search domains.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// The name of the coredns pod: a Deployment's pod name, stable per lab
/// file format (the "template" is podlab's own, not the user's).
pub fn coredns_pod_name() -> String {
    deployment_pod_name(COREDNS, fnv1a(&["podlab", KUBE_SYSTEM, COREDNS]), 0)
}

/// The coredns pod, on `node` at `ip`. It serves DNS (not the echo) on its
/// ports, and uses the node's resolver (`dnsPolicy: Default`), as kubeadm's
/// coredns Deployment does.
pub fn coredns_pod(lab: &str, node: &NodePlan, ip: Ipv4Addr) -> PodPlan {
    let name = coredns_pod_name();
    let port = |port_name: &str, protocol| PortPlan {
        container: COREDNS.into(),
        name: Some(port_name.into()),
        port: 53,
        protocol,
        host_port: None,
    };
    PodPlan {
        namespace: KUBE_SYSTEM.into(),
        netns: format!("{lab}-{KUBE_SYSTEM}-{name}"),
        host_veth: host_veth_name(KUBE_SYSTEM, &name, 0),
        hostname: name.clone(),
        name,
        node: node.name.clone(),
        ip,
        prefix: node.pod_cidr.prefix_len(),
        gateway: node.pod_gateway,
        subdomain: None,
        labels: BTreeMap::from([(DNS_LABEL.0.to_string(), DNS_LABEL.1.to_string())]),
        owner: Some(COREDNS.into()),
        owner_kind: Some("ReplicaSet".into()),
        restart_policy: RestartPolicy::Always,
        containers: vec![COREDNS.into()],
        ports: vec![port("dns", Protocol::Udp), port("dns-tcp", Protocol::Tcp)],
        processes: Vec::new(),
        probes: Vec::new(),
        dns: PodDns {
            policy: DnsPolicy::Default,
            config: None,
        },
        service_links: true,
        role: PodRole::Dns,
    }
}

/// The `kube-dns` service at `dns_ip`, with the coredns pod as endpoint.
pub fn kube_dns_service(pods: &[PodPlan], dns_ip: Ipv4Addr) -> Option<ServicePlan> {
    let pod = pods.iter().find(|p| p.role == PodRole::Dns)?;
    let port = |name: &str, protocol| ServicePortPlan {
        name: Some(name.into()),
        protocol,
        port: 53,
        target_port: TargetPort::Number(53),
        node_port: None,
    };
    Some(ServicePlan {
        namespace: KUBE_SYSTEM.into(),
        name: KUBE_DNS.into(),
        kind: ServiceType::ClusterIP,
        cluster_ip: Some(dns_ip),
        load_balancer_ip: None,
        external_name: None,
        selector: BTreeMap::from([(DNS_LABEL.0.to_string(), DNS_LABEL.1.to_string())]),
        ports: vec![port("dns", Protocol::Udp), port("dns-tcp", Protocol::Tcp)],
        affinity_timeout: None,
        external_local: false,
        internal_local: false,
        publish_not_ready: false,
        endpoints: vec![EndpointPlan {
            pod: pod.name.clone(),
            namespace: pod.namespace.clone(),
            ip: pod.ip,
            node: pod.node.clone(),
            ports: vec![Some(53), Some(53)],
        }],
    })
}

/// One of the lab's static answers for a name outside the cluster domain
/// (`spec.dns.upstream`), as the plan keeps it: `a` or `cname`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Upstream {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub a: Vec<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cname: Option<String>,
}

/// The plan's form of the Lab's `spec.dns.upstream`.
pub fn upstream_plan(entries: &[UpstreamEntry]) -> Vec<Upstream> {
    entries
        .iter()
        .map(|e| match &e.answer {
            UpstreamAnswer::A(ips) => Upstream {
                name: e.name.clone(),
                a: ips.clone(),
                cname: None,
            },
            UpstreamAnswer::Cname(t) => Upstream {
                name: e.name.clone(),
                a: Vec::new(),
                cname: Some(t.clone()),
            },
        })
        .collect()
}

/// Objects of the lab file that take a name podlab reserves for cluster
/// DNS in kube-system: `(kind, position, name)`.
pub fn reserved_clashes(file: &LabFile) -> Vec<(&'static str, Pos, String)> {
    let dns_pod = coredns_pod_name();
    let mut out = Vec::new();
    for p in file.pods.iter().filter(|p| p.namespace == KUBE_SYSTEM) {
        if p.name == dns_pod || p.name == COREDNS {
            out.push(("pod", p.pos, p.name.clone()));
        }
    }
    for d in file
        .deployments
        .iter()
        .filter(|d| d.namespace == KUBE_SYSTEM)
    {
        if d.name == COREDNS {
            out.push(("deployment", d.pos, d.name.clone()));
        }
    }
    for s in file.services.iter().filter(|s| s.namespace == KUBE_SYSTEM) {
        if s.name == KUBE_DNS {
            out.push(("service", s.pos, s.name.clone()));
        }
    }
    out
}

/// The pod's `/etc/resolv.conf` as kubelet (through the container runtime)
/// writes it, or `None` when the pod uses the host's file unchanged
/// (`dnsPolicy: Default` without `dnsConfig`). `host` is the text of the
/// host's `/etc/resolv.conf`, which `Default` starts from.
///
/// Unlike kubelet, ClusterFirst does not append the host's search domains:
/// a lab has no route to them, and each would cost a lookup on every name.
pub fn resolv_conf(
    pod: &PodPlan,
    cluster_domain: &str,
    dns_ip: Ipv4Addr,
    host: &str,
) -> Option<String> {
    let (mut nameservers, mut searches, mut options) = match pod.dns.policy {
        DnsPolicy::ClusterFirst | DnsPolicy::ClusterFirstWithHostNet => (
            vec![dns_ip.to_string()],
            vec![
                format!("{}.svc.{cluster_domain}", pod.namespace),
                format!("svc.{cluster_domain}"),
                cluster_domain.to_string(),
            ],
            vec![("ndots".to_string(), Some("5".to_string()))],
        ),
        DnsPolicy::Default => {
            pod.dns.config.as_ref()?;
            parse_resolv_conf(host)
        }
        DnsPolicy::None => (Vec::new(), Vec::new(), Vec::new()),
    };
    if let Some(DnsConfig {
        nameservers: ns,
        searches: se,
        options: op,
    }) = &pod.dns.config
    {
        for n in ns {
            if !nameservers.contains(n) {
                nameservers.push(n.clone());
            }
        }
        for s in se {
            if !searches.contains(s) {
                searches.push(s.clone());
            }
        }
        // A later option replaces an earlier one of the same name.
        for (name, value) in op {
            match options.iter_mut().find(|(n, _)| n == name) {
                Some(o) => o.1 = value.clone(),
                None => options.push((name.clone(), value.clone())),
            }
        }
    }
    nameservers.truncate(MAX_NAMESERVERS);
    searches.truncate(MAX_SEARCHES);
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for n in &nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !options.is_empty() {
        let opts: Vec<String> = options
            .iter()
            .map(|(n, v)| match v {
                Some(v) => format!("{n}:{v}"),
                None => n.clone(),
            })
            .collect();
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    Some(out)
}

type ResolvParts = (Vec<String>, Vec<String>, Vec<(String, Option<String>)>);

/// nameservers, searches and options of a resolv.conf, as kubelet reads
/// the host's (the last `search` line wins, as in glibc).
fn parse_resolv_conf(text: &str) -> ResolvParts {
    let (mut ns, mut search, mut opts) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => ns.extend(w.next().map(str::to_string)),
            Some("search") | Some("domain") => search = w.map(str::to_string).collect(),
            Some("options") => {
                for o in w {
                    let (n, v) = match o.split_once(':') {
                        Some((n, v)) => (n.to_string(), Some(v.to_string())),
                        None => (o.to_string(), None),
                    };
                    opts.push((n, v));
                }
            }
            _ => {}
        }
    }
    (ns, search, opts)
}

/// What a stub resolver takes from a resolv.conf: where to ask, and how to
/// expand a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub ndots: usize,
}

impl Resolver {
    pub fn parse(text: &str) -> Resolver {
        let (nameservers, searches, options) = parse_resolv_conf(text);
        let ndots = options
            .iter()
            .rev()
            .find(|(n, _)| n == "ndots")
            .and_then(|(_, v)| v.as_deref()?.parse().ok())
            .unwrap_or(1)
            .min(15);
        Resolver {
            nameservers,
            searches,
            ndots,
        }
    }

    /// The names glibc's resolver tries for `name`, in order: an absolute
    /// name (trailing dot) alone; a name with at least `ndots` dots as it
    /// is first, then with each search domain; any other name with each
    /// search domain first, then as it is.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(abs) = name.strip_suffix('.') {
            return vec![abs.to_string()];
        }
        let searched = self
            .searches
            .iter()
            .map(|s| format!("{name}.{}", s.trim_end_matches('.')));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_string())).collect()
        }
    }
}

/// Record types the table knows, by their wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qtype {
    A,
    Ns,
    Cname,
    Soa,
    Ptr,
    Txt,
    Aaaa,
    Srv,
    Any,
    Other(u16),
}

impl Qtype {
    pub fn from_code(code: u16) -> Qtype {
        match code {
            1 => Qtype::A,
            2 => Qtype::Ns,
            5 => Qtype::Cname,
            6 => Qtype::Soa,
            12 => Qtype::Ptr,
            16 => Qtype::Txt,
            28 => Qtype::Aaaa,
            33 => Qtype::Srv,
            255 => Qtype::Any,
            n => Qtype::Other(n),
        }
    }

    /// `A`, `SRV`, ... as dig spells it; `None` for a name podlab does not
    /// know.
    pub fn parse(s: &str) -> Option<Qtype> {
        Some(match s.to_ascii_uppercase().as_str() {
            "A" => Qtype::A,
            "NS" => Qtype::Ns,
            "CNAME" => Qtype::Cname,
            "SOA" => Qtype::Soa,
            "PTR" => Qtype::Ptr,
            "TXT" => Qtype::Txt,
            "AAAA" => Qtype::Aaaa,
            "SRV" => Qtype::Srv,
            "ANY" => Qtype::Any,
            _ => return None,
        })
    }

    pub fn code(self) -> u16 {
        match self {
            Qtype::A => 1,
            Qtype::Ns => 2,
            Qtype::Cname => 5,
            Qtype::Soa => 6,
            Qtype::Ptr => 12,
            Qtype::Txt => 16,
            Qtype::Aaaa => 28,
            Qtype::Srv => 33,
            Qtype::Any => 255,
            Qtype::Other(n) => n,
        }
    }
}

/// Record data. Names are lowercase, without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    A(Ipv4Addr),
    Ns(String),
    Cname(String),
    Soa {
        mname: String,
        rname: String,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
    Ptr(String),
    Txt(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
}

impl Data {
    pub fn qtype(&self) -> Qtype {
        match self {
            Data::A(_) => Qtype::A,
            Data::Ns(_) => Qtype::Ns,
            Data::Cname(_) => Qtype::Cname,
            Data::Soa { .. } => Qtype::Soa,
            Data::Ptr(_) => Qtype::Ptr,
            Data::Txt(_) => Qtype::Txt,
            Data::Srv { .. } => Qtype::Srv,
        }
    }
}

impl std::fmt::Display for Data {
    /// As dig's `+short` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Data::A(ip) => write!(f, "{ip}"),
            Data::Ns(n) | Data::Cname(n) | Data::Ptr(n) => write!(f, "{n}."),
            Data::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => write!(
                f,
                "{mname}. {rname}. {serial} {refresh} {retry} {expire} {minimum}"
            ),
            Data::Txt(t) => write!(f, "\"{t}\""),
            Data::Srv {
                priority,
                weight,
                port,
                target,
            } => write!(f, "{priority} {weight} {port} {target}."),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, without the trailing dot.
    pub name: String,
    pub ttl: u32,
    pub data: Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
}

impl Rcode {
    pub fn code(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
        }
    }

    pub fn from_code(code: u16) -> Option<Rcode> {
        Some(match code {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Rcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
        })
    }
}

/// The response to one question: the answer section, an SOA in authority
/// on negative answers of the cluster domain (for negative caching), and
/// the addresses of SRV targets in additional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: Rcode,
    /// Whether podlab is the authority for the name (the cluster domain and
    /// reverse zones): the AA bit.
    pub authoritative: bool,
    pub records: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
}

impl Answer {
    fn empty(rcode: Rcode, authoritative: bool) -> Answer {
        Answer {
            rcode,
            authoritative,
            records: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }
}

/// Every record of a lab, by owner name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    /// The cluster domain, lowercase, without dots at either end.
    pub domain: String,
    names: HashMap<String, Vec<Data>>,
    /// Names that own nothing but have descendants that do (`svc.<domain>`,
    /// `_tcp.web.default.svc.<domain>`): NOERROR with no answer, not
    /// NXDOMAIN (RFC 8020).
    nonterminals: HashSet<String>,
    /// Static A records for names outside the cluster domain.
    upstream: HashMap<String, Vec<Ipv4Addr>>,
    /// Static CNAMEs for names outside the cluster domain, followed through
    /// `upstream`.
    upstream_cnames: HashMap<String, String>,
}

/// Normalised form of a name: lowercase, no trailing dot.
pub fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `a.b.c.d.in-addr.arpa` of an address, without the trailing dot.
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// `a-b-c-d`, how Kubernetes DNS writes an address inside a name.
pub fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn proto_label(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "_tcp",
        Protocol::Udp => "_udp",
        Protocol::Sctp => "_sctp",
    }
}

impl Zone {
    fn add(&mut self, name: String, data: Data) {
        let v = self.names.entry(name).or_default();
        if !v.contains(&data) {
            v.push(data);
        }
    }

    /// Static answers for names outside the cluster domain
    /// (`spec.dns.upstream`); replaces earlier ones.
    pub fn set_upstream(&mut self, entries: impl IntoIterator<Item = (String, Ipv4Addr)>) {
        self.upstream.clear();
        for (name, ip) in entries {
            self.upstream.entry(normalise(&name)).or_default().push(ip);
        }
    }

    /// Static aliases for names outside the cluster domain
    /// (`spec.dns.upstream` entries with `cname`); replaces earlier ones.
    pub fn set_upstream_cnames(&mut self, entries: impl IntoIterator<Item = (String, String)>) {
        self.upstream_cnames = entries
            .into_iter()
            .map(|(name, target)| (normalise(&name), normalise(&target)))
            .collect();
    }

    /// The number of owner names, for logs.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn soa(&self) -> Record {
        Record {
            name: self.domain.clone(),
            ttl: TTL,
            data: self.names[&self.domain]
                .iter()
                .find(|d| d.qtype() == Qtype::Soa)
                .cloned()
                .unwrap_or(Data::Txt(String::new())),
        }
    }

    /// Whether podlab answers for the name with authority: the cluster
    /// domain and the reverse zones (a PTR that is not the lab's is
    /// NXDOMAIN: the lab has no upstream to ask).
    fn authoritative_for(&self, name: &str) -> bool {
        in_zone(name, &self.domain) || in_zone(name, "in-addr.arpa") || in_zone(name, "ip6.arpa")
    }
}

/// The record table of a plan.
pub fn records(plan: &Plan) -> Zone {
    let domain = normalise(&plan.cluster_domain);
    let mut z = Zone {
        domain: domain.clone(),
        ..Zone::default()
    };
    let ns_name = format!("ns.dns.{domain}");
    z.add(
        domain.clone(),
        Data::Soa {
            mname: ns_name.clone(),
            rname: format!("hostmaster.{domain}"),
            // Fixed: no secondary ever transfers this zone.
            serial: 1,
            refresh: 7200,
            retry: 1800,
            expire: 86400,
            minimum: TTL,
        },
    );
    z.add(domain.clone(), Data::Ns(ns_name.clone()));
    z.add(ns_name, Data::A(plan.dns_ip));
    z.add(
        format!("dns-version.{domain}"),
        Data::Txt(SCHEMA_VERSION.into()),
    );

    // Pod IPs that got a PTR from a service's endpoint name.
    let mut named: HashSet<Ipv4Addr> = HashSet::new();
    for s in &plan.services {
        let base = format!("{}.{}.svc.{domain}", s.name, s.namespace);
        if s.kind == ServiceType::ExternalName {
            if let Some(target) = &s.external_name {
                z.add(base, Data::Cname(normalise(target)));
            }
            continue;
        }
        let headless = s.cluster_ip.is_none();
        if let Some(ip) = s.cluster_ip {
            z.add(base.clone(), Data::A(ip));
            z.add(reverse_name(ip), Data::Ptr(base.clone()));
            for p in &s.ports {
                if let Some(name) = &p.name {
                    z.add(
                        format!("_{name}.{}.{base}", proto_label(p.protocol)),
                        Data::Srv {
                            priority: 0,
                            weight: 100,
                            port: p.port,
                            target: base.clone(),
                        },
                    );
                }
            }
        }
        // Every endpoint has a name under the service: the pod's hostname
        // when its subdomain is this service, else its dashed address
        // (CoreDNS's default), so that each SRV target and PTR resolves.
        let weight = (100 / s.endpoints.len().max(1)).max(1) as u16;
        for ep in &s.endpoints {
            let host = endpoint_hostname(plan, s, ep);
            let ep_name = format!("{host}.{base}");
            z.add(ep_name.clone(), Data::A(ep.ip));
            z.add(reverse_name(ep.ip), Data::Ptr(ep_name.clone()));
            named.insert(ep.ip);
            if !headless {
                continue;
            }
            z.add(base.clone(), Data::A(ep.ip));
            for (p, target) in s.ports.iter().zip(&ep.ports) {
                if let (Some(name), Some(port)) = (&p.name, target) {
                    z.add(
                        format!("_{name}.{}.{base}", proto_label(p.protocol)),
                        Data::Srv {
                            priority: 0,
                            weight,
                            port: *port,
                            target: ep_name.clone(),
                        },
                    );
                }
            }
        }
    }
    for p in &plan.pods {
        let name = format!("{}.{}.pod.{domain}", dashed(p.ip), p.namespace);
        if !named.contains(&p.ip) {
            z.add(reverse_name(p.ip), Data::Ptr(name.clone()));
        }
        z.add(name, Data::A(p.ip));
    }

    // Empty non-terminals: every ancestor of an owner name, up to the zone
    // it belongs to.
    let tops = [domain.as_str(), "in-addr.arpa"];
    let mut nonterminals = HashSet::new();
    for name in z.names.keys() {
        let mut cur = name.as_str();
        while let Some((_, parent)) = cur.split_once('.') {
            if !tops.iter().any(|t| in_zone(parent, t)) {
                break;
            }
            nonterminals.insert(parent.to_string());
            cur = parent;
        }
    }
    z.nonterminals = nonterminals;
    z.set_upstream(
        plan.dns_upstream
            .iter()
            .flat_map(|u| u.a.iter().map(|ip| (u.name.clone(), *ip))),
    );
    z.set_upstream_cnames(
        plan.dns_upstream
            .iter()
            .filter_map(|u| Some((u.name.clone(), u.cname.clone()?))),
    );
    z
}

/// The endpoint's hostname under service `s`: its pod's `hostname` when
/// the pod's `subdomain` names the service (a pod without `hostname` uses
/// its name, as its /etc/hosts does), else the dashed address.
fn endpoint_hostname(plan: &Plan, s: &ServicePlan, ep: &EndpointPlan) -> String {
    match plan.pod(&ep.namespace, &ep.pod) {
        Some(p) if p.subdomain.as_deref() == Some(s.name.as_str()) => p.hostname.clone(),
        _ => dashed(ep.ip),
    }
}

/// CNAME chains longer than this are answered as far as they go.
const MAX_CHASE: usize = 8;

/// Answer one question from the table.
///
/// - In the cluster domain and the reverse zones: the records of that type;
///   NOERROR with no answer when the name exists without that type (or only
///   has descendants); NXDOMAIN when it does not exist. A CNAME answers
///   every type and is followed inside the table.
/// - Elsewhere: the lab's static upstream entries, else REFUSED at once
///   (the lab has no internet to forward to; a timeout would teach nothing).
pub fn answer(zone: &Zone, qname: &str, qtype: Qtype) -> Answer {
    let name = normalise(qname);
    let owner = qname.trim_end_matches('.').to_string();
    if !zone.authoritative_for(&name) {
        return upstream(zone, &name, owner, qtype);
    }
    let mut ans = Answer::empty(Rcode::NoError, true);
    let mut cur = name;
    let mut cur_owner = owner;
    for _ in 0..MAX_CHASE {
        let Some(datas) = zone.names.get(&cur) else {
            if !zone.nonterminals.contains(&cur) {
                ans.rcode = Rcode::NxDomain;
            }
            negative(zone, &cur, &mut ans);
            return ans;
        };
        if qtype != Qtype::Cname && qtype != Qtype::Any {
            if let Some(Data::Cname(target)) = datas.iter().find(|d| d.qtype() == Qtype::Cname) {
                ans.records.push(Record {
                    name: cur_owner,
                    ttl: TTL,
                    data: Data::Cname(target.clone()),
                });
                if !zone.authoritative_for(target) {
                    // Outside: what the lab knows of it, never a refusal
                    // of the whole answer.
                    let up = upstream(zone, target, target.clone(), qtype);
                    if up.rcode == Rcode::NoError {
                        ans.records.extend(up.records);
                    }
                    return ans;
                }
                cur = target.clone();
                cur_owner = target.clone();
                continue;
            }
        }
        let matching: Vec<&Data> = datas
            .iter()
            .filter(|d| qtype == Qtype::Any || d.qtype() == qtype)
            .collect();
        if matching.is_empty() {
            negative(zone, &cur, &mut ans);
            return ans;
        }
        for d in matching {
            if let Data::Srv { target, .. } = d {
                for a in zone.names.get(target).into_iter().flatten() {
                    if let Data::A(_) = a {
                        ans.additional.push(Record {
                            name: target.clone(),
                            ttl: TTL,
                            data: a.clone(),
                        });
                    }
                }
            }
            ans.records.push(Record {
                name: cur_owner.clone(),
                ttl: TTL,
                data: d.clone(),
            });
        }
        return ans;
    }
    ans
}

/// The SOA of the cluster domain in authority, for negative answers there.
fn negative(zone: &Zone, name: &str, ans: &mut Answer) {
    if in_zone(name, &zone.domain) && zone.names.contains_key(&zone.domain) {
        ans.authority.push(zone.soa());
    }
}

/// A name outside the cluster domain, from the lab's static entries:
/// CNAMEs followed through them (a CNAME or ANY question gets the first
/// alias alone, as inside the domain), then the addresses; REFUSED when
/// the lab knows nothing of the name. A chain to a name without an entry
/// is answered as far as it goes.
fn upstream(zone: &Zone, name: &str, owner: String, qtype: Qtype) -> Answer {
    let mut ans = Answer::empty(Rcode::NoError, false);
    let mut cur = name.to_string();
    let mut cur_owner = owner;
    for _ in 0..=MAX_CHASE {
        if let Some(target) = zone.upstream_cnames.get(&cur) {
            ans.records.push(Record {
                name: cur_owner,
                ttl: TTL,
                data: Data::Cname(target.clone()),
            });
            if matches!(qtype, Qtype::Cname | Qtype::Any) {
                return ans;
            }
            cur = target.clone();
            cur_owner = target.clone();
            continue;
        }
        let Some(ips) = zone.upstream.get(&cur) else {
            if ans.records.is_empty() {
                return Answer::empty(Rcode::Refused, false);
            }
            return ans;
        };
        if matches!(qtype, Qtype::A | Qtype::Any) {
            ans.records.extend(ips.iter().map(|ip| Record {
                name: cur_owner.clone(),
                ttl: TTL,
                data: Data::A(*ip),
            }));
        }
        return ans;
    }
    ans
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = r#"
apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: dnst}
spec:
  nodes: 2
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  containers: [{name: c, image: busybox}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  containers:
  - name: pg
    image: postgres
    ports: [{containerPort: 5432, name: pg}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, labels: {app: db}}
spec:
  containers:
  - name: pg
    image: postgres
    ports: [{containerPort: 5432, name: pg}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  clusterIP: None
  selector: {app: nothing}
  ports: [{port: 1}]
---
apiVersion: v1
kind: Service
metadata: {name: lonely}
spec:
  selector: {app: nothing}
  ports: [{port: 1, name: one, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: search}
spec:
  type: ExternalName
  externalName: www.example.com
---
apiVersion: v1
kind: Service
metadata: {name: alias}
spec:
  type: ExternalName
  externalName: web.default.svc.cluster.local
"#;

    fn plan() -> Plan {
        let file = match crate::lab::parse("dns.yaml", LAB) {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        super::super::build(&file).expect("plans")
    }

    fn svc<'a>(p: &'a Plan, ns: &str, name: &str) -> &'a ServicePlan {
        p.services
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
            .unwrap_or_else(|| panic!("no service {ns}/{name}"))
    }

    fn pod<'a>(p: &'a Plan, name: &str) -> &'a PodPlan {
        p.pods.iter().find(|x| x.name == name).expect("pod")
    }

    fn data(a: &Answer) -> Vec<String> {
        a.records.iter().map(|r| r.data.to_string()).collect()
    }

    fn ask(z: &Zone, name: &str, t: Qtype) -> Answer {
        answer(z, name, t)
    }

    #[test]
    fn the_plan_gets_coredns_and_kube_dns() {
        let p = plan();
        let dns = p
            .pods
            .iter()
            .find(|x| x.role == PodRole::Dns)
            .expect("dns pod");
        assert_eq!(dns.namespace, "kube-system");
        assert!(dns.name.starts_with("coredns-"), "{}", dns.name);
        assert_eq!(dns.node, "node-1");
        assert_eq!(
            dns.labels.get("k8s-app").map(String::as_str),
            Some("kube-dns")
        );
        assert_eq!(dns.ports.len(), 2);
        // After the lab's pods: their addresses do not move.
        assert_eq!(p.pods.last().map(|x| x.role), Some(PodRole::Dns));
        assert_eq!(pod(&p, "client").ip, Ipv4Addr::new(10, 244, 1, 2));
        let kd = svc(&p, "kube-system", "kube-dns");
        assert_eq!(kd.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 10)));
        let ports: Vec<_> = kd
            .ports
            .iter()
            .map(|x| (x.name.clone().unwrap(), x.protocol))
            .collect();
        assert_eq!(
            ports,
            [
                ("dns".to_string(), Protocol::Udp),
                ("dns-tcp".to_string(), Protocol::Tcp)
            ]
        );
        assert_eq!(kd.endpoints.len(), 1);
        assert_eq!(kd.endpoints[0].ip, dns.ip);
        assert_eq!(coredns_pod_name(), dns.name, "stable");
    }

    #[test]
    fn reserved_names_in_kube_system_are_errors() {
        let text = format!(
            "{LAB}---\napiVersion: v1\nkind: Service\nmetadata: {{name: kube-dns, namespace: kube-system}}\nspec:\n  ports: [{{port: 53}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: coredns, namespace: kube-system}}\nspec:\n  containers: [{{name: c, image: x}}]\n"
        );
        let err = match crate::lab::parse("dns.yaml", &text) {
            Ok(file) => super::super::build(&file).expect_err("clash"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(
            msg.contains("service kube-system/kube-dns is reserved"),
            "{msg}"
        );
        assert!(msg.contains("pod kube-system/coredns is reserved"), "{msg}");
    }

    #[test]
    fn cluster_ip_services_have_a_srv_and_ptr() {
        let p = plan();
        let z = records(&p);
        let ip = svc(&p, "default", "web").cluster_ip.unwrap();
        let a = ask(&z, "web.default.svc.cluster.local.", Qtype::A);
        assert_eq!((a.rcode, a.authoritative), (Rcode::NoError, true));
        assert_eq!(data(&a), [ip.to_string()]);
        // Case-insensitive, owner as asked.
        let a = ask(&z, "WEB.Default.svc.cluster.local", Qtype::A);
        assert_eq!(data(&a), [ip.to_string()]);
        assert_eq!(a.records[0].name, "WEB.Default.svc.cluster.local");

        let srv = ask(&z, "_http._tcp.web.default.svc.cluster.local", Qtype::Srv);
        assert_eq!(data(&srv), ["0 100 80 web.default.svc.cluster.local."]);
        assert_eq!(srv.additional.len(), 1, "the target's address");

        let ptr = ask(&z, &reverse_name(ip), Qtype::Ptr);
        assert_eq!(data(&ptr), ["web.default.svc.cluster.local."]);

        // kube-dns itself, as on a cluster.
        let a = ask(&z, "kube-dns.kube-system.svc.cluster.local", Qtype::A);
        assert_eq!(data(&a), ["10.96.0.10"]);
        let srv = ask(
            &z,
            "_dns._udp.kube-dns.kube-system.svc.cluster.local",
            Qtype::Srv,
        );
        assert_eq!(
            data(&srv),
            ["0 100 53 kube-dns.kube-system.svc.cluster.local."]
        );
    }

    #[test]
    fn a_cluster_ip_service_without_endpoints_still_resolves() {
        let p = plan();
        let z = records(&p);
        let ip = svc(&p, "default", "lonely").cluster_ip.unwrap();
        assert_eq!(
            data(&ask(&z, "lonely.default.svc.cluster.local", Qtype::A)),
            [ip.to_string()]
        );
        let srv = ask(&z, "_one._udp.lonely.default.svc.cluster.local", Qtype::Srv);
        assert_eq!(data(&srv), ["0 100 1 lonely.default.svc.cluster.local."]);
    }

    #[test]
    fn headless_services_answer_with_their_endpoints() {
        let p = plan();
        let z = records(&p);
        let (db0, db1) = (pod(&p, "db-0").ip, pod(&p, "db-1").ip);
        let mut a = data(&ask(&z, "db.default.svc.cluster.local", Qtype::A));
        a.sort();
        let mut want = vec![db0.to_string(), db1.to_string()];
        want.sort();
        assert_eq!(a, want);

        // hostname + subdomain: a name per endpoint.
        assert_eq!(
            data(&ask(&z, "db-0.db.default.svc.cluster.local", Qtype::A)),
            [db0.to_string()]
        );
        // Without: the dashed address, as CoreDNS names it.
        let d1 = format!("{}.db.default.svc.cluster.local", dashed(db1));
        assert_eq!(data(&ask(&z, &d1, Qtype::A)), [db1.to_string()]);

        // One SRV per endpoint, to the endpoint's port and name.
        let mut srv = data(&ask(
            &z,
            "_pg._tcp.db.default.svc.cluster.local",
            Qtype::Srv,
        ));
        srv.sort();
        let mut want = vec![
            "0 50 5432 db-0.db.default.svc.cluster.local.".to_string(),
            format!("0 50 5432 {d1}."),
        ];
        want.sort();
        assert_eq!(srv, want);

        // PTR of an endpoint: its name under the service.
        assert_eq!(
            data(&ask(&z, &reverse_name(db0), Qtype::Ptr)),
            ["db-0.db.default.svc.cluster.local."]
        );
    }

    #[test]
    fn a_headless_service_without_endpoints_is_nxdomain() {
        let z = records(&plan());
        let a = ask(&z, "nobody.default.svc.cluster.local", Qtype::A);
        assert_eq!(a.rcode, Rcode::NxDomain);
        assert!(a.records.is_empty());
        assert_eq!(a.authority.len(), 1, "SOA for negative caching");
    }

    #[test]
    fn endpoints_of_cluster_ip_services_have_names_and_ptr() {
        let p = plan();
        let z = records(&p);
        let ep = &svc(&p, "default", "web").endpoints[0];
        let name = format!("{}.web.default.svc.cluster.local", dashed(ep.ip));
        assert_eq!(data(&ask(&z, &name, Qtype::A)), [ep.ip.to_string()]);
        assert_eq!(
            data(&ask(&z, &reverse_name(ep.ip), Qtype::Ptr)),
            [format!("{name}.")]
        );
    }

    #[test]
    fn pods_have_a_records_and_ptr() {
        let p = plan();
        let z = records(&p);
        let ip = pod(&p, "client").ip;
        let name = format!("{}.default.pod.cluster.local", dashed(ip));
        assert_eq!(data(&ask(&z, &name, Qtype::A)), [ip.to_string()]);
        // A pod behind no service: its pod name.
        assert_eq!(
            data(&ask(&z, &reverse_name(ip), Qtype::Ptr)),
            [format!("{name}.")]
        );
        // Only pods that exist, in their namespace ("pods verified").
        let wrong = format!("{}.other.pod.cluster.local", dashed(ip));
        assert_eq!(ask(&z, &wrong, Qtype::A).rcode, Rcode::NxDomain);
        assert_eq!(
            ask(&z, "10-1-2-3.default.pod.cluster.local", Qtype::A).rcode,
            Rcode::NxDomain
        );
    }

    #[test]
    fn external_name_is_a_cname() {
        let z = records(&plan());
        let a = ask(&z, "search.default.svc.cluster.local", Qtype::A);
        assert_eq!(a.rcode, Rcode::NoError);
        assert_eq!(data(&a), ["www.example.com."]);
        assert_eq!(a.records[0].data.qtype(), Qtype::Cname);
        // Into the cluster: followed.
        let a = ask(&z, "alias.default.svc.cluster.local", Qtype::A);
        assert_eq!(a.records.len(), 2);
        assert_eq!(a.records[1].name, "web.default.svc.cluster.local");
        assert_eq!(a.records[1].data.qtype(), Qtype::A);
        // Asked for the CNAME itself.
        let c = ask(&z, "search.default.svc.cluster.local", Qtype::Cname);
        assert_eq!(data(&c), ["www.example.com."]);
    }

    #[test]
    fn dns_version_txt() {
        let z = records(&plan());
        let t = ask(&z, "dns-version.cluster.local", Qtype::Txt);
        assert_eq!(data(&t), ["\"1.1.0\""]);
    }

    #[test]
    fn nodata_versus_nxdomain() {
        let z = records(&plan());
        // The name exists, not with that type.
        for (name, t) in [
            ("web.default.svc.cluster.local", Qtype::Aaaa),
            ("web.default.svc.cluster.local", Qtype::Txt),
            ("dns-version.cluster.local", Qtype::A),
            // Empty non-terminals.
            ("svc.cluster.local", Qtype::A),
            ("default.svc.cluster.local", Qtype::A),
            ("_tcp.web.default.svc.cluster.local", Qtype::Srv),
            ("in-addr.arpa", Qtype::Ptr),
        ] {
            let a = ask(&z, name, t);
            assert_eq!(a.rcode, Rcode::NoError, "{name} {t:?}");
            assert!(a.records.is_empty(), "{name} {t:?}");
        }
        // Search-list expansions of a name that exists elsewhere.
        for name in [
            "web.default.default.svc.cluster.local",
            "web.svc.cluster.local",
            "web.cluster.local",
            "nope.default.svc.cluster.local",
            "_http._udp.web.default.svc.cluster.local",
            "example.com.default.svc.cluster.local",
            "nosuchns.svc.cluster.local",
            "9.9.9.9.in-addr.arpa",
        ] {
            let a = ask(&z, name, Qtype::A);
            assert_eq!(a.rcode, Rcode::NxDomain, "{name}");
        }
        // The apex answers SOA and NS, and its NS resolves.
        let soa = ask(&z, "cluster.local", Qtype::Soa);
        assert_eq!(soa.records.len(), 1);
        assert_eq!(
            data(&ask(&z, "cluster.local", Qtype::Ns)),
            ["ns.dns.cluster.local."]
        );
        assert_eq!(
            data(&ask(&z, "ns.dns.cluster.local", Qtype::A)),
            ["10.96.0.10"]
        );
    }

    #[test]
    fn outside_the_domain_is_refused_unless_static() {
        let mut z = records(&plan());
        let a = ask(&z, "www.example.com", Qtype::A);
        assert_eq!((a.rcode, a.authoritative), (Rcode::Refused, false));
        assert_eq!(ask(&z, "local", Qtype::A).rcode, Rcode::Refused);
        assert_eq!(ask(&z, "xcluster.local", Qtype::A).rcode, Rcode::Refused);

        z.set_upstream([("WWW.example.com.".to_string(), Ipv4Addr::new(192, 0, 2, 7))]);
        let a = ask(&z, "www.example.com", Qtype::A);
        assert_eq!(a.rcode, Rcode::NoError);
        assert_eq!(data(&a), ["192.0.2.7"]);
        let a = ask(&z, "www.example.com", Qtype::Aaaa);
        assert_eq!((a.rcode, a.records.len()), (Rcode::NoError, 0));
        // And the ExternalName to it now reaches an address.
        let a = ask(&z, "search.default.svc.cluster.local", Qtype::A);
        assert_eq!(data(&a), ["www.example.com.", "192.0.2.7"]);
    }

    #[test]
    fn upstream_entries_from_the_lab_file() {
        let text = LAB.replace(
            "spec:\n  nodes: 2\n",
            "spec:\n  nodes: 2\n  dns:\n    upstream:\n    \
             - {name: www.example.com, cname: edge.example.com}\n    \
             - {name: edge.example.com, cname: Edge.CDN.example.}\n    \
             - {name: edge.cdn.example, a: [192.0.2.8, 192.0.2.9]}\n    \
             - {name: dangling.example, cname: nowhere.example}\n",
        );
        assert_ne!(text, LAB);
        let file = crate::lab::parse("lab.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
        let p = crate::plan::build(&file).unwrap();
        assert_eq!(p.dns_upstream.len(), 4);
        let z = records(&p);
        // A chain of aliases, followed to the addresses.
        let a = ask(&z, "WWW.example.com.", Qtype::A);
        assert_eq!((a.rcode, a.authoritative), (Rcode::NoError, false));
        assert_eq!(
            data(&a),
            [
                "edge.example.com.",
                "edge.cdn.example.",
                "192.0.2.8",
                "192.0.2.9"
            ]
        );
        assert_eq!(a.records[0].name, "WWW.example.com");
        assert_eq!(a.records[2].name, "edge.cdn.example");
        // The alias alone for CNAME; no addresses for AAAA.
        assert_eq!(
            data(&ask(&z, "www.example.com", Qtype::Cname)),
            ["edge.example.com."]
        );
        assert_eq!(
            data(&ask(&z, "www.example.com", Qtype::Aaaa)),
            ["edge.example.com.", "edge.cdn.example."]
        );
        // As far as the chain goes; other names still refused.
        let a = ask(&z, "dangling.example", Qtype::A);
        assert_eq!(
            (a.rcode, data(&a)),
            (Rcode::NoError, vec!["nowhere.example.".to_string()])
        );
        assert_eq!(ask(&z, "nowhere.example", Qtype::A).rcode, Rcode::Refused);
        // The ExternalName service `search` (to www.example.com) follows it.
        assert_eq!(
            data(&ask(&z, "search.default.svc.cluster.local", Qtype::A)),
            [
                "www.example.com.",
                "edge.example.com.",
                "edge.cdn.example.",
                "192.0.2.8",
                "192.0.2.9"
            ]
        );
        // Kept when the zone follows readiness (a copy of the plan).
        let view = crate::kernel::services::ready_view(&p, &HashSet::new());
        assert_eq!(records(&view), z);
        // And a plan saved before upstream entries existed still loads.
        let mut json = serde_json::to_value(&p).unwrap();
        json.as_object_mut().unwrap().remove("dns_upstream");
        let old: Plan = serde_json::from_value(json).unwrap();
        assert!(old.dns_upstream.is_empty());
    }

    #[test]
    fn another_cluster_domain() {
        let mut p = plan();
        p.cluster_domain = "lab.example.".into();
        let z = records(&p);
        assert_eq!(
            ask(&z, "web.default.svc.lab.example", Qtype::A).rcode,
            Rcode::NoError
        );
        assert_eq!(
            ask(&z, "web.default.svc.cluster.local", Qtype::A).rcode,
            Rcode::Refused
        );
        assert_eq!(
            data(&ask(&z, "dns-version.lab.example", Qtype::Txt)),
            ["\"1.1.0\""]
        );
    }

    #[test]
    fn resolv_conf_cluster_first() {
        let p = plan();
        let c = pod(&p, "client");
        let text = resolv_conf(c, &p.cluster_domain, p.dns_ip, "nameserver 1.1.1.1\n").unwrap();
        assert_eq!(
            text,
            "search default.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\n\
             options ndots:5\n"
        );
    }

    #[test]
    fn resolv_conf_policies_and_config() {
        let p = plan();
        let mut c = pod(&p, "client").clone();
        let host = "# host\nsearch corp.example\nnameserver 192.0.2.53\noptions edns0\n";
        c.dns.policy = DnsPolicy::Default;
        assert_eq!(
            resolv_conf(&c, "cluster.local", p.dns_ip, host),
            None,
            "host's file"
        );
        // The coredns pod is such a pod.
        let dns = p.pods.iter().find(|x| x.role == PodRole::Dns).unwrap();
        assert_eq!(resolv_conf(dns, "cluster.local", p.dns_ip, host), None);

        c.dns.config = Some(DnsConfig {
            nameservers: vec!["192.0.2.54".into()],
            searches: vec!["corp.example".into(), "more.example".into()],
            options: vec![("ndots".into(), Some("2".into()))],
        });
        assert_eq!(
            resolv_conf(&c, "cluster.local", p.dns_ip, host).unwrap(),
            "search corp.example more.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions edns0 ndots:2\n"
        );

        c.dns.policy = DnsPolicy::ClusterFirst;
        c.dns.config = Some(DnsConfig {
            nameservers: vec![
                "10.96.0.10".into(),
                "1.1.1.1".into(),
                "8.8.8.8".into(),
                "9.9.9.9".into(),
            ],
            searches: vec!["x.example".into()],
            options: vec![
                ("ndots".into(), Some("1".into())),
                ("single-request".into(), None),
            ],
        });
        assert_eq!(
            resolv_conf(&c, "cluster.local", p.dns_ip, host).unwrap(),
            "search default.svc.cluster.local svc.cluster.local cluster.local x.example\n\
             nameserver 10.96.0.10\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n\
             options ndots:1 single-request\n"
        );

        c.dns.policy = DnsPolicy::None;
        c.dns.config = Some(DnsConfig {
            nameservers: vec!["192.0.2.1".into()],
            ..DnsConfig::default()
        });
        assert_eq!(
            resolv_conf(&c, "cluster.local", p.dns_ip, host).unwrap(),
            "nameserver 192.0.2.1\n"
        );
    }

    #[test]
    fn search_list_and_ndots() {
        let r = Resolver::parse(
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n",
        );
        assert_eq!(r.nameservers, ["10.96.0.10"]);
        assert_eq!(r.ndots, 5);
        assert_eq!(
            r.candidates("web"),
            [
                "web.default.svc.cluster.local",
                "web.svc.cluster.local",
                "web.cluster.local",
                "web"
            ]
        );
        assert_eq!(r.candidates("web.default.svc.cluster.local.").len(), 1);
        let long = "a.b.c.d.e.f";
        assert_eq!(r.candidates(long)[0], long, "ndots reached: as is first");
        let plain = Resolver::parse("nameserver 192.0.2.1\n");
        assert_eq!(
            (plain.ndots, plain.candidates("x.y")),
            (1, vec!["x.y".to_string()])
        );
    }

    #[test]
    fn dns_fields_are_decoded() {
        let text = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  dnsPolicy: None
  enableServiceLinks: false
  dnsConfig:
    nameservers: [192.0.2.1]
    searches: [a.example]
    options: [{name: ndots, value: "2"}, {name: edns0}]
  containers: [{name: c, image: x}]
"#;
        let file = crate::lab::parse("p.yaml", text).expect("parses");
        let spec = &file.pods[0].spec;
        assert_eq!(spec.dns_policy, DnsPolicy::None);
        assert!(!spec.enable_service_links);
        let c = spec.dns_config.as_ref().unwrap();
        assert_eq!(c.nameservers, ["192.0.2.1"]);
        assert_eq!(c.searches, ["a.example"]);
        assert_eq!(
            c.options,
            [("ndots".into(), Some("2".into())), ("edns0".into(), None)]
        );
        assert!(!file.ignored.iter().any(|i| i.field.contains("dns")));

        let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  dnsPolicy: ClusterFirts\n  containers: [{name: c, image: x}]\n";
        let msg = crate::lab::parse("p.yaml", bad)
            .expect_err("typo")
            .to_string();
        assert!(msg.contains("did you mean `ClusterFirst`"), "{msg}");
        let none = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  dnsPolicy: None\n  containers: [{name: c, image: x}]\n";
        let msg = crate::lab::parse("p.yaml", none)
            .expect_err("no nameserver")
            .to_string();
        assert!(msg.contains("needs at least one nameserver"), "{msg}");
    }
}
