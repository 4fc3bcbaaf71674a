//! Read a namespace's links, addresses and routes back through netlink.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{
    InfoBridgePort, InfoPortData, LinkAttribute, LinkFlags, LinkInfo,
};
use serde::Serialize;

use super::netns::Netns;
use super::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub up: bool,
    pub master: Option<u32>,
    pub mtu: u32,
    /// `veth`, `bridge`, ... (`None` for a link without a kind, as `lo`).
    pub kind: Option<String>,
    /// The link it is tied to (`IFLA_LINK`): for a veth, its peer's index,
    /// in the peer's namespace.
    pub peer: Option<u32>,
    pub mac: Option<String>,
    /// For a bridge port: whether it sends frames back out of the port
    /// they came in on (a pod reaching itself through its Service).
    pub hairpin: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub index: u32,
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
}

/// What one namespace holds, as the kernel says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetnsView {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
    /// Queueing disciplines, on the same netlink connection.
    #[serde(skip)]
    pub qdiscs: Vec<super::change::Qdisc>,
    /// Every route of every table, the policy rules and static neighbour
    /// entries: what the plan's checks do not name, too.
    pub objects: super::objects::Objects,
    /// The nftables generation (`rules::generation`): past the first, some
    /// transaction was committed here.
    #[serde(skip)]
    pub nft_generation: Option<u32>,
}

impl NetnsView {
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn addresses_of(&self, name: &str) -> Vec<&Address> {
        match self.link(name) {
            Some(l) => self
                .addresses
                .iter()
                .filter(|a| a.index == l.index)
                .collect(),
            None => Vec::new(),
        }
    }
}

/// Read links, IPv4 addresses and main-table IPv4 routes of a namespace.
pub fn view(name: &str) -> Result<NetnsView, Error> {
    // The generation is read while inside, on the way to the socket.
    let inside = || super::rules::generation_here().ok();
    in_netns_then(name, inside, |nl, nft_generation| async move {
        let links = links(&nl, name).await?;
        let addresses = addresses(&nl, name).await?;
        let objects = super::objects::read_with(&nl, name, &links).await?;
        // The main table as the checks of the plan's routes read it.
        let routes = objects
            .routes
            .iter()
            .filter(|r| r.table == super::objects::MAIN_TABLE)
            .map(|r| Route {
                dst: r.dst,
                prefix: r.prefix,
                gateway: r.gateway,
                oif: r.oif,
            })
            .collect();
        let qdiscs = super::change::qdiscs_with(&nl, name).await?;
        Ok(NetnsView {
            links,
            addresses,
            routes,
            qdiscs,
            objects,
            nft_generation,
        })
    })
}

/// Run netlink requests against the namespace `name`: the socket is opened
/// inside it (a socket stays in the namespace it was made in), the requests
/// run on a runtime of the calling thread, which never moves.
pub(super) fn in_netns<'a, T, F, Fut>(name: &'a str, f: F) -> Result<T, Error>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>> + 'a,
{
    in_netns_then(name, || (), |nl, ()| f(nl))
}

/// `in_netns`, also running `inside` in the namespace as the socket is
/// made (one entry, not two) and handing its value on.
fn in_netns_then<'a, T, G, I, F, Fut>(name: &'a str, inside: I, f: F) -> Result<T, Error>
where
    I: FnOnce() -> G,
    F: FnOnce(rtnetlink::Handle, G) -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>> + 'a,
{
    let ns = Netns::open(name)?;
    let (sock, got) =
        {
            let _inside = ns.enter()?;
            let sock = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)
                .map_err(|e| Error::Io {
                    what: format!("netlink socket in {name}"),
                    source: e,
                })?;
            (sock, inside())
        };
    // One runtime per thread, kept: reading a thousand pods' namespaces
    // would otherwise build a thousand runtimes.
    thread_local! {
        static RUNTIME: std::cell::OnceCell<Option<tokio::runtime::Runtime>> =
            const { std::cell::OnceCell::new() };
    }
    RUNTIME.with(|cell| {
        let rt = cell
            .get_or_init(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()
            })
            .as_ref()
            .ok_or_else(|| Error::Io {
                what: "tokio runtime".into(),
                source: std::io::Error::other("cannot build a runtime"),
            })?;
        rt.block_on(async move {
            use std::os::fd::{FromRawFd, IntoRawFd};
            // SAFETY: the descriptor comes straight out of an owned socket.
            let sock = unsafe { rtnetlink::sys::TokioSocket::from_raw_fd(sock.into_raw_fd()) };
            let (conn, nl, _) = rtnetlink::from_socket(sock);
            let conn = tokio::spawn(conn);
            let r = f(nl, got).await;
            // The connection ends once its handle is gone; aborting it
            // closes the socket now rather than at the next use.
            conn.abort();
            r
        })
    })
}

/// How a failed request of `what` in namespace `netns` reads.
pub(super) fn fail(netns: &str, what: &str) -> impl FnOnce(rtnetlink::Error) -> Error {
    let (netns, what) = (netns.to_string(), what.to_string());
    move |source| Error::Netlink {
        netns,
        what,
        source,
    }
}

/// A MAC address as `ip link` writes it.
pub(super) fn mac_text(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(super) async fn links(nl: &rtnetlink::Handle, name: &str) -> Result<Vec<Link>, Error> {
    nl.link()
        .get()
        .execute()
        .map_ok(|m| {
            let mut l = Link {
                index: m.header.index,
                up: m.header.flags.contains(LinkFlags::Up),
                name: String::new(),
                master: None,
                mtu: 0,
                kind: None,
                peer: None,
                mac: None,
                hairpin: None,
            };
            for a in &m.attributes {
                match a {
                    LinkAttribute::IfName(n) => l.name = n.clone(),
                    LinkAttribute::Controller(i) => l.master = Some(*i),
                    LinkAttribute::Mtu(v) => l.mtu = *v,
                    LinkAttribute::Link(i) => l.peer = Some(*i),
                    LinkAttribute::Address(b) => l.mac = Some(mac_text(b)),
                    LinkAttribute::LinkInfo(infos) => {
                        l.kind = infos.iter().find_map(|i| match i {
                            LinkInfo::Kind(k) => Some(k.to_string()),
                            _ => None,
                        });
                        l.hairpin = infos.iter().find_map(|i| match i {
                            LinkInfo::PortData(InfoPortData::BridgePort(opts)) => {
                                opts.iter().find_map(|o| match o {
                                    InfoBridgePort::HairpinMode(on) => Some(*on),
                                    _ => None,
                                })
                            }
                            _ => None,
                        });
                    }
                    _ => {}
                }
            }
            l
        })
        .try_collect()
        .await
        .map_err(fail(name, "list links"))
}

pub(super) async fn addresses(nl: &rtnetlink::Handle, name: &str) -> Result<Vec<Address>, Error> {
    nl.address()
        .get()
        .execute()
        .try_filter_map(|m| async move {
            Ok(m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(Address {
                    index: m.header.index,
                    ip: *ip,
                    prefix: m.header.prefix_len,
                }),
                _ => None,
            }))
        })
        .try_collect()
        .await
        .map_err(fail(name, "list addresses"))
}

/// A socket waiting for connections (TCP `LISTEN`) or datagrams (an
/// unconnected UDP socket), as `ss -ltnu` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub udp: bool,
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl Listener {
    /// Whether a packet to `port` on any of the namespace's addresses
    /// reaches it (a wildcard or non-loopback bind).
    pub fn takes(&self, udp: bool, port: u16) -> bool {
        self.udp == udp && self.port == port && !self.ip.is_loopback()
    }
}

/// The IPv4 listeners of a namespace, from its `/proc/net/tcp` and
/// `/proc/net/udp` (which show the reading thread's namespace): whatever
/// process made them, podlab's echo or anyone else's.
pub fn listening(name: &str) -> Result<Vec<Listener>, Error> {
    let read = |file: &str| {
        std::fs::read_to_string(format!("/proc/thread-self/net/{file}")).map_err(|source| {
            Error::Io {
                what: format!("read /proc/net/{file} in {name}"),
                source,
            }
        })
    };
    let (tcp, udp) = super::netns::run_in(name, || (read("tcp"), read("udp")))?;
    let mut out = parse_proc_net(&tcp?, false);
    out.extend(parse_proc_net(&udp?, true));
    Ok(out)
}

/// Lines of `/proc/net/tcp|udp`: `sl local_address rem_address st ...`,
/// addresses as little-endian hex `0100007F:0050`. TCP counts in state
/// `0A` (LISTEN), UDP in `07` (unconnected).
pub fn parse_proc_net(text: &str, udp: bool) -> Vec<Listener> {
    let want = if udp { "07" } else { "0A" };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            if state != want {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            let ip = u32::from_str_radix(ip, 16).ok()?;
            Some(Listener {
                udp,
                ip: Ipv4Addr::from(u32::from_be(ip)),
                port: u16::from_str_radix(port, 16).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod listening_tests {
    use super::*;

    #[test]
    fn proc_net_lines_become_listeners() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n   2: 0201F40A:0050 0301F40A:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n";
        let l = parse_proc_net(tcp, false);
        assert_eq!(
            l,
            vec![
                Listener {
                    udp: false,
                    ip: Ipv4Addr::UNSPECIFIED,
                    port: 80
                },
                Listener {
                    udp: false,
                    ip: Ipv4Addr::LOCALHOST,
                    port: 8080
                },
            ]
        );
        assert!(l[0].takes(false, 80));
        assert!(!l[1].takes(false, 8080), "loopback only");
        assert!(!l[0].takes(true, 80), "TCP is not UDP");
        let udp = "  sl  local_address rem_address   st\n 1: 0301F40A:0035 00000000:0000 07 0\n";
        assert_eq!(
            parse_proc_net(udp, true),
            vec![Listener {
                udp: true,
                ip: Ipv4Addr::new(10, 244, 1, 3),
                port: 53
            }]
        );
    }
}
