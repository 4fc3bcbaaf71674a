//! What one namespace would do with a packet, as its kernel says: the
//! route lookup of `ip route get` (and of `ip route get ... fibmatch`, for
//! the route that matched), its links with their veth peers and bridge
//! masters, its neighbour (ARP) table and its bridges' forwarding
//! databases. `podlab trace` follows a packet with these, namespace by
//! namespace.

use std::net::Ipv4Addr;

use futures::TryStreamExt;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteType,
};
use netlink_packet_route::AddressFamily;
use nix::errno::Errno;
use serde::Serialize;

use super::inspect::{self, Address, Link};
use super::Error;

/// What kind of route the lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteKind {
    /// Forwarded out of an interface, directly or via a gateway.
    Unicast,
    /// An address of this namespace: delivered here.
    Local,
    Broadcast,
    /// No route at all (`ENETUNREACH`), or an `unreachable` route.
    Unreachable,
    Prohibit,
    Blackhole,
    Other,
}

impl RouteKind {
    /// As `ip route` writes the type.
    pub fn word(self) -> &'static str {
        match self {
            RouteKind::Unicast => "unicast",
            RouteKind::Local => "local",
            RouteKind::Broadcast => "broadcast",
            RouteKind::Unreachable => "unreachable",
            RouteKind::Prohibit => "prohibit",
            RouteKind::Blackhole => "blackhole",
            RouteKind::Other => "other",
        }
    }
}

/// One route lookup: `ip route get DST`, with the route that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lookup {
    pub kind: RouteKind,
    /// The matching route's destination and prefix (`default` is
    /// 0.0.0.0/0); the address itself when the kernel did not say.
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    /// The source address the kernel would pick.
    pub prefsrc: Option<Ipv4Addr>,
    pub table: u32,
}

/// An IPv4 neighbour (ARP) entry that resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    pub ifindex: u32,
    pub ip: Ipv4Addr,
    pub mac: String,
}

/// A bridge forwarding database entry: frames to `mac` leave by `port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FdbEntry {
    pub port: u32,
    pub bridge: Option<u32>,
    pub mac: String,
    /// An entry for a port's own address (not learned from traffic).
    pub permanent: bool,
}

/// Everything `trace` asks of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub neighbours: Vec<Neighbour>,
    pub fdb: Vec<FdbEntry>,
    /// The lookup for the destination asked; `None` never happens from
    /// the kernel (no route is `Unreachable`) but fakes may leave it out.
    pub route: Option<Lookup>,
}

impl Facts {
    pub fn link(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    pub fn link_named(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The MAC address `ip` resolved to on interface `ifindex`.
    pub fn neighbour(&self, ifindex: u32, ip: Ipv4Addr) -> Option<&str> {
        self.neighbours
            .iter()
            .find(|n| n.ifindex == ifindex && n.ip == ip)
            .map(|n| n.mac.as_str())
    }

    /// The port of `bridge` that frames to `mac` leave by.
    pub fn fdb_port(&self, bridge: u32, mac: &str) -> Option<u32> {
        let on_bridge = |e: &&FdbEntry| {
            e.mac == mac
                && (e.bridge == Some(bridge)
                    || self.link(e.port).and_then(|l| l.master) == Some(bridge))
        };
        // A learned entry is where the station is; a permanent one is a
        // port's own address (the bridge's own, when it borrowed it).
        self.fdb
            .iter()
            .filter(on_bridge)
            .min_by_key(|e| e.permanent)
            .map(|e| e.port)
    }

    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.addresses.iter().any(|a| a.ip == ip)
    }
}

/// Read the facts of namespace `netns` and look `dst` up in it.
pub fn facts(netns: &str, dst: Ipv4Addr) -> Result<Facts, Error> {
    inspect::in_netns(netns, |nl| async move {
        let links = inspect::links(&nl, netns).await?;
        let addresses = inspect::addresses(&nl, netns).await?;
        let neighbours = neighbours(&nl, netns).await?;
        let fdb = fdb(&nl, netns).await?;
        let route = lookup(&nl, netns, dst).await?;
        Ok(Facts {
            links,
            addresses,
            neighbours,
            fdb,
            route: Some(route),
        })
    })
}

fn get_message(dst: Ipv4Addr, flags: RouteFlags) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.destination_prefix_length = 32;
    m.header.flags = flags;
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
    m
}

/// `ip route get DST` (for the source address and the route's type) and
/// `ip route get DST fibmatch` (for the prefix that matched).
async fn lookup(nl: &rtnetlink::Handle, netns: &str, dst: Ipv4Addr) -> Result<Lookup, Error> {
    let unreachable = Lookup {
        kind: RouteKind::Unreachable,
        dst,
        prefix: 32,
        gateway: None,
        oif: None,
        prefsrc: None,
        table: 0,
    };
    let get = |flags| async move {
        let r: Result<Vec<RouteMessage>, rtnetlink::Error> = nl
            .route()
            .get(get_message(dst, flags))
            .execute()
            .try_collect()
            .await;
        // "No route to host" is an answer, not a failure; so are a
        // blackhole (EINVAL) and a prohibit (EACCES) route or rule: the
        // kernel names no route for them, only the errno.
        let refused = |e: &rtnetlink::Error| match e {
            rtnetlink::Error::NetlinkError(m) => {
                m.code.and_then(|c| match Errno::from_raw(-c.get()) {
                    Errno::ENETUNREACH | Errno::EHOSTUNREACH => Some(RouteKind::Unreachable),
                    Errno::EINVAL => Some(RouteKind::Blackhole),
                    Errno::EACCES => Some(RouteKind::Prohibit),
                    _ => None,
                })
            }
            _ => None,
        };
        match r {
            Ok(v) => Ok(Ok(v.into_iter().next())),
            Err(e) => match refused(&e) {
                Some(kind) => Ok(Err(kind)),
                None => Err(inspect::fail(netns, &format!("route get {dst}"))(e)),
            },
        }
    };
    let resolved = match get(RouteFlags::empty()).await? {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(unreachable),
        Err(kind) => {
            return Ok(Lookup {
                kind,
                ..unreachable
            })
        }
    };
    let mut l = from_message(&resolved, dst);
    if let Ok(Some(matched)) = get(RouteFlags::FibMatch).await? {
        let m = from_message(&matched, Ipv4Addr::UNSPECIFIED);
        l.dst = m.dst;
        l.prefix = m.prefix;
    }
    Ok(l)
}

fn from_message(m: &RouteMessage, default_dst: Ipv4Addr) -> Lookup {
    let mut l = Lookup {
        kind: match m.header.kind {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::Local => RouteKind::Local,
            RouteType::Broadcast => RouteKind::Broadcast,
            RouteType::Unreachable => RouteKind::Unreachable,
            RouteType::Prohibit => RouteKind::Prohibit,
            RouteType::BlackHole => RouteKind::Blackhole,
            _ => RouteKind::Other,
        },
        dst: default_dst,
        prefix: m.header.destination_prefix_length,
        gateway: None,
        oif: None,
        prefsrc: None,
        table: u32::from(m.header.table),
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => l.dst = *ip,
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => l.gateway = Some(*ip),
            RouteAttribute::PrefSource(RouteAddress::Inet(ip)) => l.prefsrc = Some(*ip),
            RouteAttribute::Oif(i) => l.oif = Some(*i),
            RouteAttribute::Table(t) => l.table = *t,
            _ => {}
        }
    }
    l
}

/// Delete the neighbour entries of `netns` that failed to resolve
/// (`FAILED`) or are still trying (`INCOMPLETE`, with packets queued that
/// will fail with it): while one is cached, packets to that address get
/// "no route to host", so a pod whose link was just repaired would stay
/// unreachable for a moment. Returns how many were deleted.
pub fn forget_failed_neighbours(netns: &str) -> Result<usize, Error> {
    inspect::in_netns(netns, |nl| async move {
        let failed: Vec<_> = nl
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute()
            .try_filter(|m| {
                futures::future::ready(matches!(
                    m.header.state,
                    NeighbourState::Failed | NeighbourState::Incomplete
                ))
            })
            .try_collect()
            .await
            .map_err(inspect::fail(netns, "list neighbours"))?;
        let n = failed.len();
        for m in failed {
            // Gone already (resolved, or expired) is as good as deleted.
            let _ = nl.neighbours().del(m).execute().await;
        }
        Ok(n)
    })
}

/// Delete the learnt neighbour entries of `netns` for `ips` (a static one
/// is left: it is an extra, and `apply` names it). A pod made anew has a
/// new MAC for an address its node and the pods beside it may still hold
/// the old MAC for; its gratuitous ARP (`arp_notify`) is lost when it goes
/// out before the bridge port forwards, which under load it does, and the
/// stale entry then sends packets to nobody until the kernel probes it
/// again (seconds). Forgotten, the next packet asks anew.
pub fn forget_neighbours(netns: &str, ips: &[Ipv4Addr]) -> Result<usize, Error> {
    let ips = ips.to_vec();
    inspect::in_netns(netns, |nl| async move {
        let stale: Vec<_> = nl
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute()
            .try_filter(|m| {
                let ours = m.attributes.iter().any(|a| {
                    matches!(a, NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) if ips.contains(ip))
                });
                futures::future::ready(ours && m.header.state != NeighbourState::Permanent)
            })
            .try_collect()
            .await
            .map_err(inspect::fail(netns, "list neighbours"))?;
        let n = stale.len();
        for m in stale {
            // Gone already is as good as deleted.
            let _ = nl.neighbours().del(m).execute().await;
        }
        Ok(n)
    })
}

async fn neighbours(nl: &rtnetlink::Handle, netns: &str) -> Result<Vec<Neighbour>, Error> {
    nl.neighbours()
        .get()
        .set_address_family(AddressFamily::Inet)
        .execute()
        .try_filter_map(|m| async move {
            if matches!(
                m.header.state,
                NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
            ) {
                return Ok(None);
            }
            let mut ip = None;
            let mut mac = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => ip = Some(*v),
                    NeighbourAttribute::LinkLayerAddress(b) => mac = Some(inspect::mac_text(b)),
                    _ => {}
                }
            }
            Ok(ip.zip(mac).map(|(ip, mac)| Neighbour {
                ifindex: m.header.ifindex,
                ip,
                mac,
            }))
        })
        .try_collect()
        .await
        .map_err(inspect::fail(netns, "list neighbours"))
}

/// `bridge fdb show`: the forwarding entries of every bridge port.
async fn fdb(nl: &rtnetlink::Handle, netns: &str) -> Result<Vec<FdbEntry>, Error> {
    nl.neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_filter_map(|m| async move {
            // Entries the port itself holds (multicast, its own address
            // for the hardware) say nothing about where frames go.
            if m.header.flags.contains(NeighbourFlags::Own) {
                return Ok(None);
            }
            let mut mac = None;
            let mut bridge = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(b) => mac = Some(inspect::mac_text(b)),
                    NeighbourAttribute::Controller(i) => bridge = Some(*i),
                    _ => {}
                }
            }
            Ok(mac.map(|mac| FdbEntry {
                port: m.header.ifindex,
                bridge,
                mac,
                permanent: m.header.state == NeighbourState::Permanent,
            }))
        })
        .try_collect()
        .await
        .map_err(inspect::fail(netns, "list the bridge forwarding database"))
}
