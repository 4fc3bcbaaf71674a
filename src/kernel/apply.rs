//! Build a lab's namespaces, links, addresses and routes from its plan.
//!
//! Everything goes through netlink from this one process: a socket is opened
//! inside each namespace (on a thread that is inside it) and requests are
//! pipelined on it, so the cost per pod is the kernel's own, not a process
//! start per object as with `ip`.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::path::Path;
use std::time::Instant;

use futures::stream::{self, TryStreamExt};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::netns::{self, Netns};
use super::{sysctl, Error};
use nftables::schema::Nftables;

use crate::plan::{kubeproxy, Plan, PodPlan, ETH0, ETH0_INDEX, POD_BRIDGE};

// Set in every pod's namespace before its eth0 comes up: a gratuitous ARP
// when it does (see `wire_pod`).
use crate::plan::desired::POD_SYSCTLS;

/// `cni0`'s interface index in each node namespace (lo is 1, eth0 is 2).
const POD_BRIDGE_INDEX: u32 = 3;
/// The node network bridge's index in the `net` namespace.
const NODE_BRIDGE_INDEX: u32 = 2;
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

    // The lab's own namespaces: the node network, the nodes, the clients.
    let node_sysctls = crate::plan::desired::node_sysctls_at_creation();
    let mut names = vec![(plan.net.netns.clone(), Vec::new())];
    names.extend(
        plan.nodes
            .iter()
            .map(|n| (n.netns.clone(), node_sysctls.clone())),
    );
    // The cloud load balancer forwards to the nodes.
    names.extend(plan.clients.iter().map(|c| {
        let forward = if c.name == "lb" {
            crate::plan::desired::LB_SYSCTLS.to_vec()
        } else {
            Vec::new()
        };
        (c.netns.clone(), forward)
    }));
    let mut infra = create_many_async(names).await?.into_iter();
    let net = infra.next().ok_or_else(|| Error::Io {
        what: "node network namespace".into(),
        source: std::io::Error::other("not created"),
    })?;
    let nodes: Vec<Ns> = infra.by_ref().take(plan.nodes.len()).collect();
    let clients: Vec<Ns> = infra.collect();

    let prefix = plan.net.cidr.prefix_len();
    set_up(&net, 1, "lo").await?;
    net.nl
        .link()
        .add(
            LinkBridge::new(&plan.net.bridge)
                .index(NODE_BRIDGE_INDEX)
                .mtu(plan.mtu)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(net.fail(format!("create bridge {}", plan.net.bridge)))?;
    add_addr(&net, NODE_BRIDGE_INDEX, plan.net.gateway, prefix).await?;

    // Uplinks: one veth per node and client, `eth0` inside, on br0 outside.
    let uplinks = plan
        .nodes
        .iter()
        .zip(&nodes)
        .map(|(n, ns)| (n.uplink.as_str(), n.ip, ns))
        .chain(
            plan.clients
                .iter()
                .zip(&clients)
                .map(|(c, ns)| (c.uplink.as_str(), c.ip, ns)),
        );
    for (uplink, ip, inner) in uplinks {
        add_veth(&net, uplink, NODE_BRIDGE_INDEX, inner, plan.mtu).await?;
        bring_up(inner).await?;
        add_addr(inner, ETH0_INDEX, ip, prefix).await?;
    }

    progress(Progress::Step("pod bridges and routes"));
    for (node, ns) in plan.nodes.iter().zip(&nodes) {
        add_route(ns, Ipv4Addr::UNSPECIFIED, 0, plan.net.gateway).await?;
        ns.nl
            .link()
            .add(
                LinkBridge::new(POD_BRIDGE)
                    .index(POD_BRIDGE_INDEX)
                    .mtu(plan.mtu)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(ns.fail(format!("create bridge {POD_BRIDGE}")))?;
        add_addr(
            ns,
            POD_BRIDGE_INDEX,
            node.pod_gateway,
            node.pod_cidr.prefix_len(),
        )
        .await?;
        for r in &node.routes {
            add_route(ns, r.dst.network(), r.dst.prefix_len(), r.via).await?;
        }
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "node network built"
    );

    // Pods, a batch at a time.
    let total = plan.pods.len();
    let mut done = 0;
    progress(Progress::Pods { done, total });
    for batch in plan.pods.chunks(POD_BATCH) {
        let names = batch
            .iter()
            .map(|p| (p.netns.clone(), POD_SYSCTLS.to_vec()))
            .collect();
        let made = create_many_async(names).await?;
        stream::iter(batch.iter().zip(&made).map(Ok))
            .try_for_each_concurrent(IN_FLIGHT, |(pod, ns)| {
                let node = plan
                    .nodes
                    .iter()
                    .position(|n| n.name == pod.node)
                    .map(|i| &nodes[i]);
                async move {
                    let node = node.ok_or_else(|| Error::Io {
                        what: format!("pod {}", pod.key()),
                        source: std::io::Error::other(format!("no node {}", pod.node)),
                    })?;
                    wire_pod(pod, node, ns, plan.mtu).await
                }
            })
            .await?;
        done += batch.len();
        progress(Progress::Pods { done, total });
    }
    // `dnsPolicy: Default` starts from the host's resolver, as on a node.
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for pod in &plan.pods {
        write_pod_files(plan, pod, &host_resolv)?;
    }

    progress(Progress::Step("kube-proxy rules"));
    // The cloud load balancer answers on every LoadBalancer IP.
    if let Some((_, ns)) = plan
        .clients
        .iter()
        .zip(&clients)
        .find(|(c, _)| c.name == "lb")
    {
        for ip in plan.services.iter().filter_map(|s| s.load_balancer_ip) {
            add_addr(ns, ETH0_INDEX, ip, 32).await?;
        }
    }
    let rulesets = rulesets(plan);
    tokio::task::spawn_blocking(move || super::nft::load_all_planned(&rulesets))
        .await
        .map_err(|e| Error::Io {
            what: "nft loader".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
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
    rt.block_on(add_pods_async(plan, pods))?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    for pod in pods {
        write_pod_files(plan, pod, &host_resolv)?;
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

async fn add_pods_async(plan: &Plan, pods: &[&PodPlan]) -> Result<(), Error> {
    let mut node_names: Vec<&str> = pods.iter().map(|p| p.node.as_str()).collect();
    node_names.sort_unstable();
    node_names.dedup();
    let mut nodes = Vec::new();
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
        nodes.push((name, connect(ns, sock)));
    }
    for batch in pods.chunks(POD_BATCH) {
        let names = batch
            .iter()
            .map(|p| (p.netns.clone(), POD_SYSCTLS.to_vec()))
            .collect();
        let made = create_many_async(names).await?;
        stream::iter(batch.iter().zip(&made).map(Ok))
            .try_for_each_concurrent(IN_FLIGHT, |(pod, ns)| {
                let node = nodes.iter().find(|(n, _)| *n == pod.node).map(|(_, ns)| ns);
                async move {
                    let node = node.ok_or_else(|| Error::Io {
                        what: format!("pod {}", pod.key()),
                        source: std::io::Error::other(format!("no node {}", pod.node)),
                    })?;
                    wire_pod(pod, node, ns, plan.mtu).await
                }
            })
            .await?;
    }
    Ok(())
}

/// Rewrite a pod's `/etc/hosts` and `resolv.conf` as the plan has them.
pub fn write_files(plan: &Plan, pod: &PodPlan) -> Result<(), Error> {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    write_pod_files(plan, pod, &host_resolv)
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

async fn wire_pod(pod: &PodPlan, node: &Ns, ns: &Ns, mtu: u32) -> Result<(), Error> {
    add_veth(node, &pod.host_veth, POD_BRIDGE_INDEX, ns, mtu).await?;
    // Hairpin: a pod reaching itself through its Service gets its own
    // packets back through the port they came in on.
    super::change::set_hairpin_with(&node.nl, node.name(), &pod.host_veth).await?;
    // Address first, then up: with `arp_notify` the pod announces its
    // address as eth0 comes up, so that neighbours still holding the MAC of
    // a pod that had the address before (`apply` made it anew) learn the
    // new one at once, not after their entry goes stale.
    add_addr(ns, ETH0_INDEX, pod.ip, pod.prefix).await?;
    bring_up(ns).await?;
    add_route(ns, Ipv4Addr::UNSPECIFIED, 0, pod.gateway).await
}

/// A veth pair made in one request from the outer side: `name` on the
/// bridge `master` in `outer` and up, `eth0` (index 2) in `inner`. The inner
/// end is brought up from inside: asking for it up in the same request
/// fails with ENOTCONN on current kernels.
async fn add_veth(outer: &Ns, name: &str, master: u32, inner: &Ns, mtu: u32) -> Result<(), Error> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(ETH0)
        .index(ETH0_INDEX)
        .mtu(mtu)
        .setns_by_fd(inner.ns.fd().as_raw_fd())
        .build();
    let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(name)
        .mtu(mtu)
        .controller(master)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    outer
        .nl
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(outer.fail(format!(
            "create veth {name} (peer eth0 in {})",
            inner.name()
        )))
}

/// `lo` (index 1) and `eth0` (index 2) up.
async fn bring_up(ns: &Ns) -> Result<(), Error> {
    set_up(ns, 1, "lo").await?;
    set_up(ns, ETH0_INDEX, ETH0).await
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

/// Directory of the files `ip netns exec` and `podlab exec` bind over
/// `/etc` for a namespace.
pub fn etc_dir(netns: &str) -> std::path::PathBuf {
    Path::new("/etc/netns").join(netns)
}

/// The pod's `/etc/hosts` as kubelet writes it, through `/etc/netns` so
/// that `ip netns exec` sees it too.
fn write_pod_files(plan: &Plan, pod: &PodPlan, host_resolv: &str) -> Result<(), Error> {
    let dir = etc_dir(&pod.netns);
    let io = |what: &str| {
        let what = format!("{what} {}", dir.display());
        move |source| Error::Io { what, source }
    };
    std::fs::create_dir_all(&dir).map_err(io("create"))?;
    std::fs::write(dir.join("hosts"), pod.hosts_file(&plan.cluster_domain))
        .map_err(io("write hosts in"))?;
    let resolv = dir.join("resolv.conf");
    match crate::plan::dns::resolv_conf(pod, &plan.cluster_domain, plan.dns_ip, host_resolv) {
        Some(text) => std::fs::write(&resolv, text).map_err(io("write resolv.conf in"))?,
        // No file: the pod sees the host's, as under `ip netns exec`.
        None => match std::fs::remove_file(&resolv) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove resolv.conf in")(e))
            }
            _ => {}
        },
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
