//! Build a lab's namespaces, links, addresses, routes and files from its
//! desired state (`plan::desired`).
//!
//! Everything goes through netlink from this one process: a socket is opened
//! inside each namespace (on a thread that is inside it) and requests are
//! pipelined on it, so the cost per pod is the kernel's own, not a process
//! start per object as with `ip`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::time::Instant;

use futures::stream::{self, TryStreamExt};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::netns::{self, Netns};
use super::{sysctl, Error};
use nftables::schema::Nftables;

use crate::plan::desired::{self, Link, LinkKind, Namespace};
use crate::plan::{kubeproxy, Plan, PodPlan};
/// Pods are made in batches so that open descriptors (a namespace and a
/// netlink socket per pod) stay far below the process's limit.
const POD_BATCH: usize = 256;
/// Requests in flight at once: enough to keep the kernel busy, not so many
/// that a failure leaves thousands of half-made pods to report.
const IN_FLIGHT: usize = 64;

/// What `build` reports as it goes, for the progress line of `up`.
pub enum Progress {
    Step(&'static str),
    Pods { done: usize, total: usize },
}

/// A namespace with a netlink connection opened inside it.
struct Ns {
    ns: Netns,
    nl: Handle,
}

impl Ns {
    fn name(&self) -> &str {
        self.ns.name()
    }

    fn fail(&self, what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
        let netns = self.name().to_string();
        let what = what.into();
        move |source| Error::Netlink {
            netns,
            what,
            source,
        }
    }
}

/// Create a namespace and, from inside it, a netlink socket. Blocking: runs
/// on a thread of its own because it moves that thread between namespaces.
/// A stable, locally administered unicast MAC for a bridge.
fn bridge_mac(netns: &str, link: &str) -> Vec<u8> {
    let h = crate::plan::names::fnv1a(&[netns, link]).to_be_bytes();
    vec![0x02, h[0], h[1], h[2], h[3], h[4]]
}

fn create_with_socket(name: &str, sysctls: &[(&str, &str)]) -> Result<(Netns, Socket), Error> {
    let ns = netns::create(name)?;
    let _inside = ns.enter()?;
    let sock = Socket::new(NETLINK_ROUTE).map_err(|e| Error::Io {
        what: format!("netlink socket in {name}"),
        source: e,
    })?;
    for (key, value) in sysctls {
        match sysctl::set(name, key, value) {
            // Without br_netfilter, same-node Service replies bypass
            // conntrack; say so, but a lab without Services still works.
            Err(e)
                if key.starts_with("net.bridge.")
                    && e.errno() == Some(nix::errno::Errno::ENOENT) =>
            {
                tracing::warn!(netns = name, "br_netfilter is missing: same-node Service traffic will fail (modprobe br_netfilter)");
            }
            r => r?,
        }
    }
    Ok((ns, sock))
}

/// Hand a socket made on another thread to the runtime.
fn connect(ns: Netns, sock: Socket) -> Ns {
    // SAFETY: the descriptor was just taken out of an owned socket and is
    // owned by nothing else.
    let sock = unsafe { TokioSocket::from_raw_fd(sock.into_raw_fd()) };
    let (conn, nl, _) = rtnetlink::from_socket(sock);
    tokio::spawn(conn);
    Ns { ns, nl }
}

/// Create many namespaces with sockets on a few threads at once.
fn create_many(
    names: Vec<(String, Vec<(&'static str, &'static str)>)>,
) -> Result<Vec<(Netns, Socket)>, Error> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4);
    let chunk = names.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(n, sysctls)| create_with_socket(n, sysctls))
                        .collect::<Result<Vec<_>, Error>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(names.len());
        let mut first_err = None;
        for w in workers {
            match w.join() {
                Ok(Ok(v)) => all.extend(v),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(Error::Io {
                        what: "namespace worker".into(),
                        source: std::io::Error::other("thread panicked"),
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(all),
        }
    })
}

async fn create_many_async(
    names: Vec<(String, Vec<(&'static str, &'static str)>)>,
) -> Result<Vec<Ns>, Error> {
    let made = tokio::task::spawn_blocking(move || create_many(names))
        .await
        .map_err(|e| Error::Io {
            what: "namespace worker".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    Ok(made
        .into_iter()
        .map(|(ns, sock)| connect(ns, sock))
        .collect())
}

/// Build everything in the plan. On error the caller tears the lab down by
/// its names: nothing here tries to undo half of a step.
pub fn build(plan: &Plan, progress: &mut dyn FnMut(Progress)) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            what: "tokio runtime".into(),
            source: e,
        })?;
    rt.block_on(build_async(plan, progress))
}

async fn build_async(plan: &Plan, progress: &mut dyn FnMut(Progress)) -> Result<(), Error> {
    netns::prepare_run_dir()?;
    progress(Progress::Step("node network"));
    let started = Instant::now();
    // `dnsPolicy: Default` starts from the host's resolver, as on a node.
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let want = desired::namespaces(plan, &host_resolv);
    let wanted = |name: &str| {
        want.get(name).ok_or_else(|| Error::Io {
            what: format!("namespace {name}"),
            source: std::io::Error::other("not in the desired state"),
        })
    };

    // The lab's own namespaces: the node network, the nodes, the clients;
    // their links first (bridges, then the veths made from the outer
    // side), then addresses, links up, routes.
    let mut infra_names = vec![plan.net.netns.as_str()];
    infra_names.extend(plan.nodes.iter().map(|n| n.netns.as_str()));
    infra_names.extend(plan.clients.iter().map(|c| c.netns.as_str()));
    let mut names = Vec::with_capacity(infra_names.len());
    for n in &infra_names {
        names.push((n.to_string(), wanted(n)?.sysctls_at_creation()));
    }
    let infra = create_many_async(names).await?;
    let by_name = |name: &str| infra.iter().find(|ns| ns.name() == name);
    for ns in &infra {
        let w = wanted(ns.name())?;
        for link in &w.links {
            let peer = link.peer_netns().and_then(by_name);
            if !link.is_outer_veth() || peer.is_some() {
                add_link(ns, w, link, peer.map(|p| (p, &want))).await?;
            }
        }
    }
    progress(Progress::Step("pod bridges and routes"));
    for ns in &infra {
        configure(ns, wanted(ns.name())?).await?;
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "node network built"
    );

    // Pods, a batch at a time.
    let nodes: Vec<(&str, &Ns)> = plan
        .nodes
        .iter()
        .filter_map(|n| by_name(&n.netns).map(|ns| (n.name.as_str(), ns)))
        .collect();
    wire_pods(
        plan,
        &plan.pods.iter().collect::<Vec<_>>(),
        &nodes,
        &want,
        progress,
    )
    .await?;
    for w in want.values() {
        write_files(&w.files)?;
    }

    progress(Progress::Step("kube-proxy rules"));
    let rulesets = rulesets(plan);
    tokio::task::spawn_blocking(move || super::nft::load_all_planned(&rulesets))
        .await
        .map_err(|e| Error::Io {
            what: "nft loader".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    Ok(())
}

/// Make `pods`' namespaces in batches and wire each to its node (`nodes`:
/// node name and its open namespace), as `want` describes them.
async fn wire_pods(
    plan: &Plan,
    pods: &[&PodPlan],
    nodes: &[(&str, &Ns)],
    want: &BTreeMap<String, Namespace>,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), Error> {
    let total = pods.len();
    let mut done = 0;
    progress(Progress::Pods { done, total });
    let missing = |what: String, why: String| Error::Io {
        what,
        source: std::io::Error::other(why),
    };
    for batch in pods.chunks(POD_BATCH) {
        let mut names = Vec::with_capacity(batch.len());
        for p in batch {
            let w = want
                .get(&p.netns)
                .ok_or_else(|| missing(format!("pod {}", p.key()), "not in the plan".into()))?;
            names.push((p.netns.clone(), w.sysctls_at_creation()));
        }
        let made = create_many_async(names).await?;
        stream::iter(batch.iter().zip(&made).map(Ok))
            .try_for_each_concurrent(IN_FLIGHT, |(pod, ns)| {
                let node = nodes
                    .iter()
                    .find(|(n, _)| *n == pod.node)
                    .map(|(_, ns)| *ns);
                let node_netns = plan.node(&pod.node).map(|n| n.netns.as_str());
                async move {
                    let what = || format!("pod {}", pod.key());
                    let node =
                        node.ok_or_else(|| missing(what(), format!("no node {}", pod.node)))?;
                    let node_want = node_netns
                        .and_then(|n| want.get(n))
                        .ok_or_else(|| missing(what(), format!("no node {}", pod.node)))?;
                    let port = node_want
                        .link(&pod.host_veth)
                        .ok_or_else(|| missing(what(), "no port on its node".into()))?;
                    add_link(node, node_want, port, Some((ns, want))).await?;
                    let pod_want = want
                        .get(&pod.netns)
                        .ok_or_else(|| missing(what(), "not in the plan".into()))?;
                    // Address first, then up: with `arp_notify` the pod
                    // announces its address as eth0 comes up, so that
                    // neighbours still holding the MAC of a pod that had the
                    // address before (`apply` made it anew) learn the new
                    // one at once, not after their entry goes stale.
                    configure(ns, pod_want).await
                }
            })
            .await?;
        done += batch.len();
        progress(Progress::Pods { done, total });
    }
    Ok(())
}

/// Make `pods` in a running lab (whose nodes exist): namespaces, veths,
/// addresses, routes and `/etc/netns` files, as `build` makes them.
pub fn add_pods(plan: &Plan, pods: &[&PodPlan]) -> Result<(), Error> {
    if pods.is_empty() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            what: "tokio runtime".into(),
            source: e,
        })?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    // Only what these pods and their nodes must hold.
    let mut want = BTreeMap::new();
    for p in pods {
        want.insert(
            p.netns.clone(),
            desired::pod_namespace(plan, p, &host_resolv),
        );
        if let Some(n) = plan.node(&p.node) {
            want.entry(n.netns.clone())
                .or_insert_with(|| desired::node_namespace(plan, n));
        }
    }
    rt.block_on(add_pods_async(plan, pods, &want))?;
    for p in pods {
        if let Some(w) = want.get(&p.netns) {
            write_files(&w.files)?;
        }
    }
    Ok(())
}

/// Open an existing namespace with a netlink socket made inside it.
fn open_with_socket(name: &str) -> Result<(Netns, Socket), Error> {
    let ns = Netns::open(name)?;
    let sock = {
        let _inside = ns.enter()?;
        Socket::new(NETLINK_ROUTE).map_err(|e| Error::Io {
            what: format!("netlink socket in {name}"),
            source: e,
        })?
    };
    Ok((ns, sock))
}

async fn add_pods_async(
    plan: &Plan,
    pods: &[&PodPlan],
    want: &BTreeMap<String, Namespace>,
) -> Result<(), Error> {
    let mut node_names: Vec<&str> = pods.iter().map(|p| p.node.as_str()).collect();
    node_names.sort_unstable();
    node_names.dedup();
    let mut opened = Vec::new();
    for name in node_names {
        let node = plan.node(name).ok_or_else(|| Error::Io {
            what: format!("node {name}"),
            source: std::io::Error::other("not in the plan"),
        })?;
        let netns = node.netns.clone();
        let (ns, sock) = tokio::task::spawn_blocking(move || open_with_socket(&netns))
            .await
            .map_err(|e| Error::Io {
                what: "namespace worker".into(),
                source: std::io::Error::other(e.to_string()),
            })??;
        opened.push((name, connect(ns, sock)));
    }
    let nodes: Vec<(&str, &Ns)> = opened.iter().map(|(n, ns)| (*n, ns)).collect();
    wire_pods(plan, pods, &nodes, want, &mut |_| {}).await
}

/// Rewrite a pod's `/etc/hosts` and `resolv.conf` as the plan has them.
pub fn write_pod_files(plan: &Plan, pod: &PodPlan) -> Result<(), Error> {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    write_files(&desired::pod_files(plan, pod, &host_resolv))
}

/// Every namespace's nftables ruleset, as values (`nftdiff::diff` compares
/// two of them): each replaces podlab's tables in its namespace whole.
pub fn ruleset_objects(plan: &Plan) -> Vec<(String, Nftables<'static>)> {
    // Nodes on every core: with thousands of services a node's rules take
    // a tenth of a second to build, and a change builds two plans' worth.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(plan.nodes.len().max(1));
    let mut built: Vec<(usize, Nftables<'static>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(node) = plan.nodes.get(i) else {
                            return mine;
                        };
                        mine.push((i, kubeproxy::node_rules(plan, node)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    if built.len() != plan.nodes.len() {
        // A builder thread died: build again here, where a panic is seen.
        return kubeproxy::namespace_rulesets(plan);
    }
    built.sort_by_key(|(i, _)| *i);
    let mut v: Vec<(String, Nftables<'static>)> = built
        .into_iter()
        .filter_map(|(i, r)| plan.nodes.get(i).map(|n| (n.netns.clone(), r)))
        .collect();
    if let Some(lb) = plan.clients.iter().find(|c| c.name == "lb") {
        v.push((lb.netns.clone(), kubeproxy::lb_ruleset(plan)));
    }
    v
}

/// Every namespace's nftables ruleset, as `nft -j` input.
pub fn rulesets(plan: &Plan) -> Vec<(String, String)> {
    ruleset_objects(plan)
        .into_iter()
        .map(|(ns, rules)| (ns, kubeproxy::to_json(&rules)))
        .collect()
}

/// Make one link of `want` in `ns`: a bridge, or a veth from its outer
/// end with the other end moved into `peer` (whose desired state names
/// its index) as it is made. The inner end is brought up from inside
/// (`configure`): asking for it up in the same request fails with
/// ENOTCONN on current kernels.
async fn add_link(
    ns: &Ns,
    want: &Namespace,
    link: &Link,
    peer: Option<(&Ns, &BTreeMap<String, Namespace>)>,
) -> Result<(), Error> {
    let master = match &link.master {
        Some(m) => Some(
            want.link(m)
                .and_then(|l| l.index)
                .ok_or_else(|| Error::Io {
                    what: format!("link {} in {}", link.name, ns.name()),
                    source: std::io::Error::other(format!("bridge {m} has no fixed index")),
                })?,
        ),
        None => None,
    };
    let mtu = link.mtu.unwrap_or(1500);
    let msg = match &link.kind {
        LinkKind::Loopback | LinkKind::Veth { outer: false, .. } => return Ok(()),
        LinkKind::Bridge => {
            // A fixed address: a bridge without one takes its lowest port's
            // MAC, so adding or removing a pod (a replaced pod is both)
            // could change it under its neighbours' ARP caches, and their
            // frames to the gateway would be flooded and lost.
            let mut b = LinkBridge::new(&link.name)
                .mtu(mtu)
                .address(bridge_mac(ns.name(), &link.name))
                .up();
            if let Some(i) = link.index {
                b = b.index(i);
            }
            b.build()
        }
        LinkKind::Veth {
            peer: peer_name,
            peer_netns,
            outer: true,
        } => {
            let (inner, all) = peer.ok_or_else(|| Error::Io {
                what: format!("veth {} in {}", link.name, ns.name()),
                source: std::io::Error::other(format!("{peer_netns} is not open")),
            })?;
            let mut p = LinkMessageBuilder::<LinkUnspec>::new()
                .name(peer_name)
                .mtu(mtu)
                .setns_by_fd(inner.ns.fd().as_raw_fd());
            if let Some(i) = all
                .get(peer_netns)
                .and_then(|w| w.link(peer_name))
                .and_then(|l| l.index)
            {
                p = p.index(i);
            }
            let mut m = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
                .name(&link.name)
                .mtu(mtu);
            if let Some(i) = master {
                m = m.controller(i);
            }
            m.up()
                .set_info_data(InfoData::Veth(InfoVeth::Peer(p.build())))
                .build()
        }
    };
    ns.nl
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(ns.fail(format!("create link {}", link.name)))?;
    if link.hairpin {
        super::change::set_hairpin_with(&ns.nl, ns.name(), &link.name).await?;
    }
    Ok(())
}

/// A namespace's addresses, then its links up (those not made up: `lo`,
/// veths' inner ends), then its routes.
async fn configure(ns: &Ns, want: &Namespace) -> Result<(), Error> {
    let index_of = |name: &str| {
        want.link(name)
            .and_then(|l| l.index)
            .ok_or_else(|| Error::Io {
                what: format!("link {name} in {}", ns.name()),
                source: std::io::Error::other("no fixed index"),
            })
    };
    for (link, a) in &want.addresses {
        add_addr(ns, index_of(link)?, a.addr(), a.prefix_len()).await?;
    }
    for l in want.links.iter().filter(|l| {
        l.up && matches!(
            l.kind,
            LinkKind::Loopback | LinkKind::Veth { outer: false, .. }
        )
    }) {
        set_up(ns, index_of(&l.name)?, &l.name).await?;
    }
    for r in &want.routes {
        add_route(ns, r.dst.network(), r.dst.prefix_len(), r.via).await?;
    }
    Ok(())
}

async fn set_up(ns: &Ns, index: u32, name: &str) -> Result<(), Error> {
    ns.nl
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(ns.fail(format!("set {name} up")))
}

async fn add_addr(ns: &Ns, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), Error> {
    ns.nl
        .address()
        .add(index, IpAddr::V4(ip), prefix)
        .execute()
        .await
        .map_err(ns.fail(format!("add address {ip}/{prefix}")))
}

async fn add_route(ns: &Ns, dst: Ipv4Addr, prefix: u8, via: Ipv4Addr) -> Result<(), Error> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst, prefix)
        .gateway(via)
        .build();
    ns.nl
        .route()
        .add(route)
        .execute()
        .await
        .map_err(ns.fail(format!("add route {dst}/{prefix} via {via}")))
}

pub use crate::plan::desired::etc_dir;

/// Write the lab's files (a pod's `/etc/hosts`, `resolv.conf`) as
/// `desired` has them; a file it wants absent is removed (the pod then
/// sees the host's, as under `ip netns exec`).
fn write_files(files: &[desired::File]) -> Result<(), Error> {
    for f in files {
        let io = |what: &str| {
            let what = format!("{what} {}", f.path.display());
            move |source| Error::Io { what, source }
        };
        match &f.content {
            Some(text) => {
                if let Some(dir) = f.path.parent() {
                    std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
                }
                std::fs::write(&f.path, text).map_err(io("write"))?;
            }
            None => match std::fs::remove_file(&f.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove")(e)),
                _ => {}
            },
        }
    }
    Ok(())
}

/// Names of pods whose namespace exists, for tests and `observe`.
pub fn existing(plan: &Plan) -> Vec<&str> {
    plan.netns_names()
        .into_iter()
        .filter(|n| Netns::exists(n))
        .collect()
}
