//! Read a running lab back from the kernel and compare it with its plan.
//! Every difference is a typed finding naming the object, what the plan
//! says and what the kernel has.

pub mod diagnose;
pub mod rules;
pub mod target;
pub mod trace;

use std::fmt;

use serde::Serialize;

use ipnet::Ipv4Net;

use crate::kernel::change::Route;
use crate::kernel::inspect::{self, NetnsView};
use crate::kernel::netns::Netns;
use crate::kernel::objects::Object;
use std::collections::{BTreeMap, HashMap};

use crate::plan::{desired, Plan};
use crate::runtime::DaemonStatus;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Finding {
    MissingNamespace {
        netns: String,
    },
    Unreadable {
        netns: String,
        error: String,
    },
    MissingLink {
        netns: String,
        link: String,
    },
    LinkDown {
        netns: String,
        link: String,
    },
    WrongAddress {
        netns: String,
        link: String,
        want: Ipv4Net,
        have: Vec<Ipv4Net>,
    },
    MissingRoute {
        netns: String,
        route: Route,
    },
    WrongMtu {
        netns: String,
        link: String,
        want: u32,
        have: u32,
    },
    /// A veth that should be a port of the bridge is not.
    NotOnBridge {
        netns: String,
        link: String,
        bridge: String,
    },
    Sysctl {
        netns: String,
        key: String,
        want: String,
        have: String,
    },
    /// A table's shape differs from the plan's rules (`rules`).
    Rules {
        netns: String,
        family: String,
        table: String,
        differences: Vec<String>,
    },
    /// A pod's `/etc/hosts` or `resolv.conf` is not what the plan writes.
    File {
        netns: String,
        path: String,
    },
    /// The daemon reports a pod not running (stopped, crashed, gone).
    PodDown {
        pod: String,
        status: String,
    },
    /// The cluster DNS pod runs but its responder does not answer.
    DnsUnhealthy {
        pod: String,
        detail: String,
    },
    /// A queueing discipline the lab did not make (`tbf`, `netem`, ...):
    /// every link podlab makes sends without a queue (`noqueue`).
    Qdisc {
        netns: String,
        link: String,
        qdisc: String,
    },
    /// An address the lab did not give (on any link, `lo` included).
    ExtraAddress {
        netns: String,
        link: String,
        address: Ipv4Net,
    },
    /// A route, policy rule or static neighbour entry the lab did not make,
    /// as the kernel listed it (`text`: as `ip` writes it).
    Extra {
        netns: String,
        #[serde(flatten)]
        object: Object,
    },
    /// A planned link's name on a link of another kind (a bridge where a
    /// veth should be).
    WrongKind {
        netns: String,
        link: String,
        want: String,
        have: String,
    },
    /// A link the lab did not make (a bridge, a veth, a tunnel).
    ExtraLink {
        netns: String,
        link: String,
    },
    /// A pod's bridge port without hairpin mode: the pod cannot reach
    /// itself through its own Service.
    HairpinOff {
        netns: String,
        link: String,
    },
}

impl Finding {
    /// The namespace and, where there is one, the link a finding is about.
    pub fn location(&self) -> Option<(&str, Option<&str>)> {
        match self {
            Finding::MissingNamespace { netns }
            | Finding::Unreadable { netns, .. }
            | Finding::MissingRoute { netns, .. }
            | Finding::Sysctl { netns, .. }
            | Finding::Rules { netns, .. }
            | Finding::Extra { netns, .. }
            | Finding::File { netns, .. } => Some((netns, None)),
            Finding::MissingLink { netns, link }
            | Finding::LinkDown { netns, link }
            | Finding::WrongAddress { netns, link, .. }
            | Finding::WrongMtu { netns, link, .. }
            | Finding::NotOnBridge { netns, link, .. }
            | Finding::ExtraAddress { netns, link, .. }
            | Finding::HairpinOff { netns, link }
            | Finding::ExtraLink { netns, link }
            | Finding::WrongKind { netns, link, .. }
            | Finding::Qdisc { netns, link, .. } => Some((netns, Some(link))),
            Finding::PodDown { .. } | Finding::DnsUnhealthy { .. } => None,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::MissingNamespace { netns } => write!(f, "namespace {netns} is missing"),
            Finding::Unreadable { netns, error } => {
                write!(f, "namespace {netns} cannot be read: {error}")
            }
            Finding::MissingLink { netns, link } => write!(f, "{netns}: link {link} is missing"),
            Finding::LinkDown { netns, link } => write!(f, "{netns}: link {link} is down"),
            Finding::WrongAddress {
                netns,
                link,
                want,
                have,
            } => write!(
                f,
                "{netns}: {link} should have {want}, has {}",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            Finding::MissingRoute { netns, route } => {
                write!(f, "{netns}: route {route} is missing")
            }
            Finding::WrongMtu {
                netns,
                link,
                want,
                have,
            } => write!(f, "{netns}: {link} has MTU {have}, the plan has {want}"),
            Finding::NotOnBridge {
                netns,
                link,
                bridge,
            } => write!(f, "{netns}: {link} is not attached to {bridge}"),
            Finding::Sysctl {
                netns,
                key,
                want,
                have,
            } => write!(f, "{netns}: {key} is {have}, the plan needs {want}"),
            Finding::Rules {
                netns,
                family,
                table,
                differences,
            } => write!(
                f,
                "{netns}: nftables table {family} {table}: {}",
                differences.join("; ")
            ),
            Finding::File { netns, path } => {
                write!(f, "{netns}: {path} is not the one podlab wrote")
            }
            Finding::PodDown { pod, status } => write!(f, "pod {pod} is {status}"),
            Finding::DnsUnhealthy { pod, detail } => {
                write!(
                    f,
                    "the DNS responder of pod {pod} does not answer: {detail}"
                )
            }
            Finding::Qdisc { netns, link, qdisc } => {
                write!(
                    f,
                    "{netns}: {link} has a {qdisc} qdisc the lab did not make"
                )
            }
            Finding::ExtraAddress {
                netns,
                link,
                address,
            } => write!(
                f,
                "{netns}: {link} has {address}, which the lab did not give"
            ),
            Finding::Extra { netns, object } => write!(
                f,
                "{netns}: {} `{}` is not the lab's",
                object.kind(),
                object.text()
            ),
            Finding::HairpinOff { netns, link } => {
                write!(f, "{netns}: bridge port {link} has hairpin mode off")
            }
            Finding::ExtraLink { netns, link } => {
                write!(f, "{netns}: link {link} is not in the plan")
            }
            Finding::WrongKind {
                netns,
                link,
                want,
                have,
            } => write!(
                f,
                "{netns}: link {link} is a {have} link, the plan makes a {want}"
            ),
        }
    }
}

/// `ip/prefix` as a value; a prefix the kernel gave is never over 32.
fn net(ip: std::net::Ipv4Addr, prefix: u8) -> Ipv4Net {
    Ipv4Net::new(ip, prefix).unwrap_or_else(|_| Ipv4Net::from(ip))
}

/// A namespace's links, addresses, routes and qdiscs, or why not.
fn read(netns: &str) -> Result<NetnsView, Box<Finding>> {
    if !Netns::exists(netns) {
        return Err(Box::new(Finding::MissingNamespace {
            netns: netns.into(),
        }));
    }
    inspect::view(netns).map_err(|e| {
        Box::new(Finding::Unreadable {
            netns: netns.into(),
            error: e.to_string(),
        })
    })
}

/// Pods the daemon does not report ready: kube-proxy's rules and DNS leave
/// them out, so the expected rules do too. Without a daemon, none.
pub fn not_ready(plan: &Plan, status: Option<&DaemonStatus>) -> std::collections::HashSet<String> {
    let Some(status) = status else {
        return Default::default();
    };
    plan.pods
        .iter()
        .filter(|p| {
            !status
                .pod(&p.namespace, &p.name)
                .is_some_and(crate::runtime::status::PodStatus::is_ready)
        })
        .map(|p| p.key())
        .collect()
}

/// Read many namespaces at once: one netlink dump each, a few threads.
fn read_all(names: &[&str]) -> Vec<(String, Result<NetnsView, Box<Finding>>)> {
    let threads = 4.min(names.len().max(1));
    let chunk = names.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|n| (n.to_string(), read(n)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Compare the whole lab with its plan: namespaces, links (state, MTU,
/// bridge ports), addresses, routes, forwarding, nftables, pod files, and,
/// with the daemon's status, whether every pod runs.
pub fn compare_with(plan: &Plan, status: Option<&DaemonStatus>) -> Vec<Finding> {
    compare_names(plan, status, plan.netns_names())
}

/// `compare_with`, reading only the namespaces named in `only` (a path's):
/// what is in the others is not looked at, their nftables and the pods'
/// status aside (few reads, lab-wide).
pub fn compare_in(plan: &Plan, status: Option<&DaemonStatus>, only: &[&str]) -> Vec<Finding> {
    let names = plan
        .netns_names()
        .into_iter()
        .filter(|n| only.contains(n))
        .collect();
    compare_names(plan, status, names)
}

fn compare_names(plan: &Plan, status: Option<&DaemonStatus>, names: Vec<&str>) -> Vec<Finding> {
    let t = std::time::Instant::now();
    let read = read_views(&names);
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "observe: namespaces read"
    );
    compare_views(plan, status, &names, &read)
}

/// The namespaces `names` as the kernel has them now, read once (a few
/// threads, one netlink dump each), for `compare_views` and for whoever
/// also wants the views themselves (`graph`).
pub struct Views {
    pub views: std::collections::HashMap<String, NetnsView>,
    /// A namespace that could not be read, as a finding.
    pub unreadable: Vec<Finding>,
}

pub fn read_views(names: &[&str]) -> Views {
    let mut out = Views {
        views: Default::default(),
        unreadable: Vec::new(),
    };
    for (name, v) in read_all(names) {
        match v {
            Ok(v) => {
                out.views.insert(name, v);
            }
            Err(f) => out.unreadable.push(*f),
        }
    }
    out
}

/// The diff of the plan against views already read (`read_views` of
/// `names`): what is missing, different or extra.
pub fn compare_views(
    plan: &Plan,
    status: Option<&DaemonStatus>,
    names: &[&str],
    read: &Views,
) -> Vec<Finding> {
    let t = std::time::Instant::now();
    let views = &read.views;
    let mut findings = read.unreadable.clone();
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let all = desired::namespaces(plan, &host_resolv);
    let want: BTreeMap<String, desired::Namespace> = all
        .into_iter()
        .filter(|(n, _)| names.contains(&n.as_str()))
        .collect();
    for (ns, w) in &want {
        let Some(v) = views.get(ns) else { continue };
        compare_links(ns, w, v, views, &mut findings);
        compare_addresses(ns, w, v, &mut findings);
        compare_routes(ns, w, v, &mut findings);
        compare_files(ns, w, &mut findings);
    }
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "observe: links, files compared"
    );
    findings.extend(compare_rules(plan, status));
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "observe: podlab's tables compared"
    );
    findings.extend(compare_foreign_tables(&want, views));
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "observe: rules compared"
    );
    findings.extend(compare_qdiscs(names, views));
    findings.extend(compare_extras(&want, views));
    findings.extend(compare_sysctls(&want, views));
    if let Some(st) = status {
        findings.extend(compare_processes(plan, &want, st));
    }
    if let Some(f) = dns_health(plan, status) {
        findings.push(f);
    }
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert(f.to_string()));
    findings
}

/// Each link `want` names: there, up, its MTU, on its bridge. A veth end
/// whose other namespace is gone is reported as that namespace missing.
fn compare_links(
    ns: &str,
    want: &desired::Namespace,
    v: &NetnsView,
    views: &HashMap<String, NetnsView>,
    findings: &mut Vec<Finding>,
) {
    let at = |link: &str| (ns.to_string(), link.to_string());
    for l in &want.links {
        let Some(have) = v.link(&l.name) else {
            if l.peer_netns().is_none_or(|p| views.contains_key(p)) {
                let (netns, link) = at(&l.name);
                findings.push(Finding::MissingLink { netns, link });
            }
            continue;
        };
        let kind = l.kind.word();
        if have.kind.as_deref() != kind {
            let (netns, link) = at(&l.name);
            findings.push(Finding::WrongKind {
                netns,
                link,
                want: kind.unwrap_or("loopback").into(),
                have: have.kind.clone().unwrap_or_else(|| "none".into()),
            });
            continue;
        }
        if l.up && !have.up {
            let (netns, link) = at(&l.name);
            findings.push(Finding::LinkDown { netns, link });
        }
        if let Some(mtu) = l.mtu.filter(|m| *m != have.mtu) {
            let (netns, link) = at(&l.name);
            findings.push(Finding::WrongMtu {
                netns,
                link,
                want: mtu,
                have: have.mtu,
            });
        }
        if let Some(bridge) = &l.master {
            let index = v.link(bridge).map(|b| b.index);
            if index.is_some() && have.master != index {
                let (netns, link) = at(&l.name);
                findings.push(Finding::NotOnBridge {
                    netns,
                    link,
                    bridge: bridge.clone(),
                });
            }
        }
    }
    for have in &v.links {
        if want.link(&have.name).is_none() && !fallback_tunnel(have) {
            let (netns, link) = at(&have.name);
            findings.push(Finding::ExtraLink { netns, link });
        }
    }
}

/// A tunnel module (`ipip`, `gre`, `sit`...) loaded on the host puts its
/// fallback device, down, in every namespace: the kernel's, not extra.
fn fallback_tunnel(l: &inspect::Link) -> bool {
    const FALLBACK: [&str; 10] = [
        "tunl0",
        "sit0",
        "gre0",
        "gretap0",
        "erspan0",
        "ip_vti0",
        "ip6_vti0",
        "ip6tnl0",
        "ip6gre0",
        "ip6erspan0",
    ];
    !l.up && FALLBACK.contains(&l.name.as_str())
}

/// Each address `want` gives a link that exists (a missing link is one
/// finding, not one per address).
fn compare_addresses(
    ns: &str,
    want: &desired::Namespace,
    v: &NetnsView,
    findings: &mut Vec<Finding>,
) {
    for (link, a) in &want.addresses {
        if v.link(link).is_none() {
            continue;
        }
        let have: Vec<Ipv4Net> = v
            .addresses_of(link)
            .iter()
            .filter_map(|x| Ipv4Net::new(x.ip, x.prefix).ok())
            .collect();
        if !have.contains(a) {
            findings.push(Finding::WrongAddress {
                netns: ns.into(),
                link: link.clone(),
                want: *a,
                have,
            });
        }
    }
}

fn compare_routes(ns: &str, want: &desired::Namespace, v: &NetnsView, findings: &mut Vec<Finding>) {
    for r in &want.routes {
        let present = v.routes.iter().any(|h| {
            h.dst == r.dst.network() && h.prefix == r.dst.prefix_len() && h.gateway == Some(r.via)
        });
        if !present {
            findings.push(Finding::MissingRoute {
                netns: ns.into(),
                route: Route::via(r.dst, r.via),
            });
        }
    }
}

/// The lab's files, as read now, against their planned text (or absence).
fn compare_files(ns: &str, want: &desired::Namespace, findings: &mut Vec<Finding>) {
    for f in &want.files {
        if std::fs::read_to_string(&f.path).ok() != f.content {
            findings.push(Finding::File {
                netns: ns.into(),
                path: f.path.display().to_string(),
            });
        }
    }
}

/// Each pod's containers, as the daemon reports them.
fn compare_processes(
    plan: &Plan,
    want: &BTreeMap<String, desired::Namespace>,
    st: &DaemonStatus,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in &plan.pods {
        let Some(w) = want.get(&p.netns) else {
            continue;
        };
        for proc in &w.processes {
            // The DNS responder's answers are `dns_health`'s to check.
            let desired::Process::Pod { pod } = proc else {
                continue;
            };
            match st.pod(&p.namespace, &p.name) {
                Some(s) if s.status == "Running" => {}
                live => out.push(Finding::PodDown {
                    pod: pod.clone(),
                    status: live.map_or("not run by the daemon".to_string(), |s| s.status.clone()),
                }),
            }
        }
    }
    out
}

/// nftables in a namespace where podlab loads none (pods, `external`, the
/// node network): a committed transaction there (its generation moved past
/// the first) is listed, and every table in it is foreign.
fn compare_foreign_tables(
    want: &BTreeMap<String, desired::Namespace>,
    views: &HashMap<String, NetnsView>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (ns, _) in want.iter().filter(|(_, w)| w.tables.is_empty()) {
        let Some(now) = views.get(ns).and_then(|v| v.nft_generation) else {
            continue;
        };
        // Untouched, or as empty as when last listed (the record is read
        // only past a fresh generation: a thousand pods, a thousand reads).
        if now <= FRESH_NFT_GENERATION
            || matches!(
                crate::state::recorded_generation(ns),
                crate::state::Generation::Clean(g) if g == now
            )
        {
            continue;
        }
        match crate::kernel::nft::list_ruleset(ns) {
            Ok(listing) => {
                let have = rules::of_listing(&listing);
                let differences = rules::differences(&Default::default(), &have);
                if differences.is_empty() {
                    crate::state::record_generation(ns, Some(now));
                }
                for ((family, table), differences) in differences {
                    out.push(Finding::Rules {
                        netns: ns.clone(),
                        family: family.to_string(),
                        table: table.to_string(),
                        differences,
                    });
                }
            }
            Err(e) => out.push(Finding::Unreadable {
                netns: ns.clone(),
                error: e.to_string(),
            }),
        }
    }
    out
}

/// The nftables generation of a namespace no transaction has touched.
const FRESH_NFT_GENERATION: u32 = 1;

/// The NetworkPolicy drop counters read now, to compare with later
/// (`policy_drops_since`); empty when they cannot be read.
pub fn policy_counters(plan: &Plan) -> std::collections::BTreeMap<String, u64> {
    crate::kernel::counters::read(plan, crate::plan::netpol::TABLE)
        .map(|c| c.into_iter().map(|(k, v)| (k, v.packets)).collect())
        .unwrap_or_default()
}

/// Which of these pods' policy isolations dropped packets since `before`
/// was read: for each, `the egress isolation of ns/pod (policies: ...)`.
pub fn policy_drops_since(
    plan: &Plan,
    before: &std::collections::BTreeMap<String, u64>,
    who: &[(crate::lab::PolicyType, &crate::plan::PodPlan)],
) -> Vec<String> {
    use crate::plan::netpol;
    let now = policy_counters(plan);
    who.iter()
        .filter(|(t, p)| {
            let name = netpol::drop_counter(*t, &p.namespace, &p.name);
            now.get(&name).copied().unwrap_or(0) > before.get(&name).copied().unwrap_or(0)
        })
        .map(|(t, p)| {
            let policies: Vec<String> = netpol::selecting(plan, p, *t)
                .iter()
                .map(|x| x.key())
                .collect();
            let word = match t {
                crate::lab::PolicyType::Ingress => "ingress",
                crate::lab::PolicyType::Egress => "egress",
            };
            format!(
                "the {word} isolation of {} (policies: {})",
                p.key(),
                policies.join(", ")
            )
        })
        .collect()
}

/// Ask the running coredns pod itself (from its node, no Service in the
/// way) for kube-dns's own name: the responder answers, and right.
fn dns_health(plan: &Plan, status: Option<&DaemonStatus>) -> Option<Finding> {
    let pod = plan
        .pods
        .iter()
        .find(|p| p.role == crate::plan::PodRole::Dns)?;
    let running = status?
        .pod(&pod.namespace, &pod.name)
        .is_some_and(|s| s.status == "Running");
    let node = plan.node(&pod.node)?;
    if !running || !Netns::exists(&node.netns) {
        return None;
    }
    let name = format!("kube-dns.kube-system.svc.{}", plan.cluster_domain);
    let unhealthy = |detail: String| Finding::DnsUnhealthy {
        pod: pod.key(),
        detail,
    };
    match crate::runtime::dns::ask_from(
        &node.netns,
        std::net::IpAddr::V4(pod.ip),
        &name,
        crate::plan::dns::Qtype::A,
        false,
        std::time::Duration::from_millis(500),
    ) {
        Err(e) => Some(unhealthy(format!("{name}: {e}"))),
        Ok(r)
            if !r
                .records
                .iter()
                .any(|rec| rec.data == crate::plan::dns::Data::A(plan.dns_ip)) =>
        {
            Some(unhealthy(format!(
                "{name}: rcode {} without {}",
                r.rcode, plan.dns_ip
            )))
        }
        Ok(_) => None,
    }
}

/// What the plan does not name: every address, route (of any table),
/// policy rule and static neighbour entry of the lab's namespaces that the
/// lab did not make, and pods' bridge ports without hairpin mode.
fn compare_extras(
    desired: &BTreeMap<String, desired::Namespace>,
    views: &HashMap<String, NetnsView>,
) -> Vec<Finding> {
    use crate::kernel::change::RouteKind;
    use crate::kernel::objects::{self, LOCAL_TABLE, MAIN_TABLE};
    let mut out = Vec::new();
    for (ns, want) in desired {
        let Some(v) = views.get(ns) else { continue };
        let link_name = |i: u32| {
            v.links
                .iter()
                .find(|l| l.index == i)
                .map_or_else(|| format!("if{i}"), |l| l.name.clone())
        };
        for a in &v.addresses {
            let link = link_name(a.index);
            if !want.has_address(&link, a.ip, a.prefix) {
                out.push(Finding::ExtraAddress {
                    netns: ns.clone(),
                    link,
                    address: net(a.ip, a.prefix),
                });
            }
        }
        let extra = |object: Object| Finding::Extra {
            netns: ns.clone(),
            object,
        };
        for r in &v.objects.routes {
            let ours = match r.table {
                // What the kernel derives from the addresses.
                LOCAL_TABLE => matches!(r.kind, RouteKind::Local | RouteKind::Broadcast),
                // A connected route goes with its address: one of ours, or
                // an extra one (reported, and its route goes with it).
                MAIN_TABLE => {
                    r.kind == RouteKind::Unicast
                        && (r.gateway.is_none()
                            && r.proto == "kernel"
                            && (want.connected(r.dst, r.prefix, r.dev.as_deref()) || derived(v, r))
                            || want.planned_route(r.dst, r.prefix, r.gateway))
                }
                _ => false,
            };
            if !ours {
                out.push(extra(Object::Route(r.clone())));
            }
        }
        for r in v.objects.rules.iter().filter(|r| !objects::default_rule(r)) {
            out.push(extra(Object::Rule(r.clone())));
        }
        for n in &v.objects.neighbours {
            out.push(extra(Object::Neighbour(n.clone())));
        }
        for port in want.hairpin() {
            if v.link(port).and_then(|l| l.hairpin) == Some(false) {
                out.push(Finding::HairpinOff {
                    netns: ns.clone(),
                    link: port.to_string(),
                });
            }
        }
    }
    out
}

/// Whether a connected route is the kernel's for an address its link has.
fn derived(v: &NetnsView, r: &crate::kernel::objects::RouteEntry) -> bool {
    v.addresses.iter().any(|a| {
        Some(a.index) == r.oif
            && a.prefix == r.prefix
            && ipnet::Ipv4Net::new(a.ip, a.prefix).is_ok_and(|n| n.network() == r.dst)
    })
}

/// The sysctls the plan sets, in every namespace it sets them in: node
/// forwarding, rp_filter, bridged traffic through conntrack, the pods'
/// arp_notify, the balancer's forwarding. A key the kernel lacks (no
/// br_netfilter module, a link that is gone) was warned about, or is
/// reported, elsewhere.
fn compare_sysctls(
    desired: &BTreeMap<String, desired::Namespace>,
    views: &HashMap<String, NetnsView>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (ns, want) in desired {
        if want.sysctls.is_empty() || !views.contains_key(ns) {
            continue;
        }
        let read = crate::kernel::netns::run_in(ns, || {
            want.sysctls
                .iter()
                .map(|(k, v)| (*k, *v, crate::kernel::sysctl::get(ns, k)))
                .collect::<Vec<_>>()
        });
        let Ok(read) = read else { continue };
        for (key, value, have) in read {
            match have {
                Ok(have) if have != value => out.push(Finding::Sysctl {
                    netns: ns.clone(),
                    key: key.into(),
                    want: value.into(),
                    have,
                }),
                _ => {}
            }
        }
    }
    out
}

/// Traffic control on any link of the lab: podlab makes every veth and
/// bridge without a queue, so any other root or ingress qdisc (a rate
/// limit, a delay) was added afterwards.
fn compare_qdiscs(
    names: &[&str],
    views: &std::collections::HashMap<String, NetnsView>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for ns in names {
        let Some(v) = views.get(*ns) else { continue };
        for q in v.qdiscs.iter().filter(|q| q.kind != "noqueue") {
            let link = v
                .links
                .iter()
                .find(|l| l.index == q.index)
                .map_or_else(|| format!("link {}", q.index), |l| l.name.clone());
            out.push(Finding::Qdisc {
                netns: ns.to_string(),
                link,
                qdisc: q.kind.clone(),
            });
        }
    }
    out
}

/// Each namespace's nftables against the rules the plan loads for the
/// pods that are ready.
pub fn compare_rules(plan: &Plan, status: Option<&DaemonStatus>) -> Vec<Finding> {
    let mut netns: Vec<&str> = plan.nodes.iter().map(|n| n.netns.as_str()).collect();
    netns.extend(plan.clients.iter().map(|c| c.netns.as_str()));
    // A namespace whose nftables generation is the one podlab's last load
    // made has exactly those rules: nothing to list or compare.
    let mut generations = std::collections::HashMap::new();
    netns.retain(|n| {
        if !Netns::exists(n) {
            return false;
        }
        let now = crate::kernel::rules::generation(n).ok();
        if let Some(g) = now {
            generations.insert(n.to_string(), g);
        }
        match crate::state::recorded_generation(n) {
            crate::state::Generation::Clean(g) => Some(g) != now,
            _ => true,
        }
    });
    if netns.is_empty() {
        return Vec::new();
    }
    let view = crate::kernel::services::ready_view(plan, &not_ready(plan, status));
    let wanted = crate::kernel::apply::rulesets(&view);
    let results: Vec<(String, Result<serde_json::Value, crate::kernel::Error>)> =
        std::thread::scope(|s| {
            let handles: Vec<_> = netns
                .iter()
                .map(|n| {
                    (
                        n.to_string(),
                        s.spawn(move || crate::kernel::nft::list_ruleset(n)),
                    )
                })
                .collect();
            handles
                .into_iter()
                .map(|(n, h)| {
                    let r = h.join().unwrap_or_else(|_| {
                        Err(crate::kernel::Error::Nft {
                            netns: n.clone(),
                            message: "nft thread panicked".into(),
                        })
                    });
                    (n, r)
                })
                .collect()
        });
    let mut findings = Vec::new();
    for (ns, listing) in results {
        let want = wanted
            .iter()
            .find(|(n, _)| *n == ns)
            .and_then(|(_, json)| serde_json::from_str(json).ok())
            .map(|v| rules::of_commands(&v))
            .unwrap_or_default();
        let have = match listing {
            Ok(v) => rules::of_listing(&v),
            Err(e) => {
                findings.push(Finding::Unreadable {
                    netns: ns,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let differences = rules::differences(&want, &have);
        if differences.is_empty() {
            // As the plan has it: the next look need not list it again.
            if let Some(g) = generations.get(&ns) {
                crate::state::record_generation(&ns, Some(*g));
            }
        }
        for ((family, table), differences) in differences {
            findings.push(Finding::Rules {
                netns: ns.clone(),
                family: family.to_string(),
                table: table.to_string(),
                differences,
            });
        }
    }
    findings
}

#[cfg(test)]
#[path = "extras_tests.rs"]
mod extras_tests;
