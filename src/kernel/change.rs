//! Small changes to a running lab's namespaces, and the reads that check
//! them: a link up or down or its MTU, a route, a sysctl, a tool (`tc`,
//! `nft`) run inside a namespace, the queueing disciplines it holds.
//!
//! What faults inject and undo (`crate::faults`) and what `observe` reads
//! back. Each call does its work on a thread of its own that enters the
//! namespace, so callers never leave a thread in a lab's namespace.

use std::future::Future;
use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::tc::{TcAttribute, TcHandle};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::netns::Netns;
use super::{sysctl, Error};

/// Run `f` with a netlink handle opened inside `netns`, on a thread of its
/// own (callers may be inside another runtime), with that thread's
/// runtime (`inspect::in_netns`).
pub(super) fn netlink<T, F, Fut>(netns: &str, f: F) -> Result<T, Error>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<T, Error>>,
{
    std::thread::scope(|s| {
        s.spawn(move || super::inspect::in_netns(netns, f))
            .join()
            .unwrap_or_else(|_| {
                Err(Error::Io {
                    what: format!("netlink thread in {netns}"),
                    source: std::io::Error::other("thread panicked"),
                })
            })
    })
}

fn fail(netns: &str, what: String) -> impl FnOnce(rtnetlink::Error) -> Error {
    let netns = netns.to_string();
    move |source| Error::Netlink {
        netns,
        what,
        source,
    }
}

/// Set a link up or down and/or its MTU.
pub fn set_link(netns: &str, link: &str, up: Option<bool>, mtu: Option<u32>) -> Result<(), Error> {
    netlink(netns, |h| async move {
        set_link_with(&h, netns, link, up, mtu).await
    })
}

/// `set_link` on a handle already open in `netns`.
pub(super) async fn set_link_with(
    h: &Handle,
    netns: &str,
    link: &str,
    up: Option<bool>,
    mtu: Option<u32>,
) -> Result<(), Error> {
    let what = match (up, mtu) {
        (Some(true), _) => format!("set {link} up"),
        (Some(false), _) => format!("set {link} down"),
        (None, Some(m)) => format!("set {link} mtu {m}"),
        (None, None) => return Ok(()),
    };
    let mut msg = LinkUnspec::new_with_name(link);
    msg = match up {
        Some(true) => msg.up(),
        Some(false) => msg.down(),
        None => msg,
    };
    if let Some(m) = mtu {
        msg = msg.mtu(m);
    }
    h.link()
        .set(msg.build())
        .execute()
        .await
        .map_err(fail(netns, what))
}

/// Turn hairpin mode on for the bridge port `link`, as `up` makes pods'
/// ports (a fault may turn it off).
pub(super) async fn set_hairpin_with(h: &Handle, netns: &str, link: &str) -> Result<(), Error> {
    use netlink_packet_route::link::{InfoBridgePort, InfoPortData, InfoPortKind};
    h.link()
        .set_port(
            LinkUnspec::new_with_name(link)
                .set_port_kind(InfoPortKind::Bridge)
                .set_port_data(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                    true,
                )]))
                .build(),
        )
        .execute()
        .await
        .map_err(fail(netns, format!("set hairpin on {link}")))
}

/// Add or delete the route `dst via via`, as podlab's own routes are made
/// (`proto static`, main table).
pub fn route(netns: &str, add: bool, dst: Ipv4Net, via: Ipv4Addr) -> Result<(), Error> {
    let what = format!(
        "{} route {dst} via {via}",
        if add { "add" } else { "delete" }
    );
    netlink(netns, |h| async move {
        let mut msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst.network(), dst.prefix_len())
            .gateway(via)
            .build();
        if !add {
            // Whoever added it (`ip route add` says `proto boot`), the
            // route to `dst` via `via` is the one to delete.
            msg.header.protocol = netlink_packet_route::route::RouteProtocol::Unspec;
        }
        let r = if add {
            h.route().add(msg).execute().await
        } else {
            h.route().del(msg).execute().await
        };
        r.map_err(fail(netns, what))
    })
}

/// Set a sysctl inside `netns` (`/proc/sys/net` is per namespace).
pub fn set_sysctl(netns: &str, key: &str, value: &str) -> Result<(), Error> {
    in_thread(netns, || sysctl::set(netns, key, value))
}

/// Run `f` on a thread of its own inside `netns`.
fn in_thread<T: Send>(
    netns: &str,
    f: impl FnOnce() -> Result<T, Error> + Send,
) -> Result<T, Error> {
    let ns = Netns::open(netns)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            let _inside = ns.enter()?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Io {
                what: format!("worker thread in {netns}"),
                source: std::io::Error::other("thread panicked"),
            })
        })
    })
}

/// Run `program args` inside `netns` (only its network namespace: the
/// tools used here read nothing from `/etc`), feeding `stdin` if given.
/// A child starts in the namespace of the thread that forks it.
pub fn run_tool(
    netns: &str,
    program: &str,
    args: &[String],
    stdin: Option<&str>,
) -> Result<Output, Error> {
    in_thread(netns, || {
        let io = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                missing_tool(program)
            } else {
                Error::Io {
                    what: format!("run {program} in {netns}"),
                    source: e,
                }
            }
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes()).map_err(io)?;
        }
        child.wait_with_output().map_err(io)
    })
}

fn missing_tool(program: &str) -> Error {
    match program {
        "tc" => Error::MissingTool {
            tool: "tc",
            package: "iproute2",
        },
        "nft" => Error::MissingTool {
            tool: "nft",
            package: "nftables",
        },
        _ => Error::Io {
            what: format!("run {program}"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        },
    }
}

/// A queueing discipline attached to a link, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    /// Interface index of the link.
    pub index: u32,
    /// `tbf`, `netem`, `noqueue`, ...
    pub kind: String,
    /// Attached at the root (egress), not at ingress or under a class.
    pub root: bool,
}

/// Every qdisc of every link in `netns`.
pub fn qdiscs(netns: &str) -> Result<Vec<Qdisc>, Error> {
    netlink(netns, |h| async move { qdiscs_with(&h, netns).await })
}

/// The qdiscs of the namespace a netlink handle was opened in.
pub(super) async fn qdiscs_with(h: &rtnetlink::Handle, netns: &str) -> Result<Vec<Qdisc>, Error> {
    h.qdisc()
        .get()
        .execute()
        .map_ok(|m| Qdisc {
            index: u32::try_from(m.header.index).unwrap_or(0),
            kind: m
                .attributes
                .iter()
                .find_map(|a| match a {
                    TcAttribute::Kind(k) => Some(k.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
            root: m.header.parent == TcHandle::ROOT,
        })
        .try_collect()
        .await
        .map_err(fail(netns, "list qdiscs".into()))
}
