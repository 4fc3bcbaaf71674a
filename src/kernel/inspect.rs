//! Read a namespace's links, addresses and routes back through netlink.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo};
use netlink_packet_route::route::{RouteAddress, RouteAttribute};
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
    in_netns(name, |nl| async move {
        let links = links(&nl, name).await?;
        let addresses = addresses(&nl, name).await?;
        let routes = nl
            .route()
            .get(rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_filter_map(|m| async move {
                if m.header.table != 254 {
                    return Ok(None);
                }
                let mut r = Route {
                    dst: Ipv4Addr::UNSPECIFIED,
                    prefix: m.header.destination_prefix_length,
                    gateway: None,
                    oif: None,
                };
                for a in &m.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => r.dst = *ip,
                        RouteAttribute::Gateway(RouteAddress::Inet(ip)) => r.gateway = Some(*ip),
                        RouteAttribute::Oif(i) => r.oif = Some(*i),
                        _ => {}
                    }
                }
                Ok(Some(r))
            })
            .try_collect()
            .await
            .map_err(fail(name, "list routes"))?;
        let qdiscs = super::change::qdiscs_with(&nl, name).await?;
        Ok(NetnsView {
            links,
            addresses,
            routes,
            qdiscs,
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
    let ns = Netns::open(name)?;
    let sock = {
        let _inside = ns.enter()?;
        rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE).map_err(|e| {
            Error::Io {
                what: format!("netlink socket in {name}"),
                source: e,
            }
        })?
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
            let r = f(nl).await;
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
                        })
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
