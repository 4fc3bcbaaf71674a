//! Small changes to a running lab's namespaces: the fixes `podlab apply`
//! makes when the kernel has drifted from the plan (a link set down, a
//! route deleted, an address changed, a sysctl turned off), and removing a
//! pod's veth before its namespace is made anew.
//!
//! A `Fix` is a plain value: `reconcile` decides them from the findings of
//! `observe`, this module only carries them out, one netlink connection per
//! namespace, every fix tried even when another fails.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use serde::Serialize;

use super::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "fix", rename_all = "camelCase")]
pub enum Fix {
    /// `ip link set LINK up`.
    LinkUp { netns: String, link: String },
    /// `ip link set LINK mtu N`.
    Mtu {
        netns: String,
        link: String,
        mtu: u32,
    },
    /// Make `link`'s IPv4 addresses exactly `want`.
    Address {
        netns: String,
        link: String,
        want: Vec<(Ipv4Addr, u8)>,
    },
    /// `ip route replace DST via VIA` (`0.0.0.0/0` for the default route).
    Route {
        netns: String,
        dst: ipnet::Ipv4Net,
        via: Ipv4Addr,
    },
    /// `sysctl -w KEY=VALUE` inside the namespace.
    Sysctl {
        netns: String,
        key: String,
        value: String,
    },
    /// `ip link del LINK`: a veth goes with its peer.
    DeleteLink { netns: String, link: String },
    /// `tc qdisc del dev LINK root`: back to the link's default (`noqueue`).
    DeleteQdisc { netns: String, link: String },
    /// `ip route del ...`, `ip rule del ...`, `ip neigh del ...` of an
    /// object the lab did not make, named as `observe` wrote it.
    DeleteObject {
        netns: String,
        what: super::objects::Kind,
        object: String,
    },
    /// `ip link set LINK type bridge_slave hairpin on`.
    Hairpin { netns: String, link: String },
}

impl Fix {
    pub fn netns(&self) -> &str {
        match self {
            Fix::LinkUp { netns, .. }
            | Fix::Mtu { netns, .. }
            | Fix::Address { netns, .. }
            | Fix::Route { netns, .. }
            | Fix::Sysctl { netns, .. }
            | Fix::DeleteLink { netns, .. }
            | Fix::DeleteObject { netns, .. }
            | Fix::Hairpin { netns, .. }
            | Fix::DeleteQdisc { netns, .. } => netns,
        }
    }
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fix::LinkUp { netns, link } => write!(f, "{netns}: ip link set {link} up"),
            Fix::Mtu { netns, link, mtu } => write!(f, "{netns}: ip link set {link} mtu {mtu}"),
            Fix::Address { netns, link, want } => {
                let want: Vec<String> = want.iter().map(|(ip, p)| format!("{ip}/{p}")).collect();
                write!(f, "{netns}: addresses of {link} set to {}", want.join(", "))
            }
            Fix::Route { netns, dst, via } => {
                write!(f, "{netns}: ip route replace {dst} via {via}")
            }
            Fix::Sysctl { netns, key, value } => write!(f, "{netns}: sysctl {key}={value}"),
            Fix::DeleteLink { netns, link } => write!(f, "{netns}: ip link del {link}"),
            Fix::DeleteQdisc { netns, link } => write!(f, "{netns}: tc qdisc del dev {link} root"),
            Fix::DeleteObject {
                netns,
                what,
                object,
            } => {
                match what {
                    super::objects::Kind::Route => write!(f, "{netns}: ip route del {object}"),
                    super::objects::Kind::Neighbour => {
                        let spec = object.trim_end_matches(" PERMANENT");
                        write!(f, "{netns}: ip neigh del {spec}")
                    }
                    // `100: from all to X prohibit` as `ip rule del` takes it.
                    super::objects::Kind::Rule => match object.split_once(": ") {
                        Some((pref, rest)) => write!(f, "{netns}: ip rule del pref {pref} {rest}"),
                        None => write!(f, "{netns}: ip rule del {object}"),
                    },
                }
            }
            Fix::Hairpin { netns, link } => {
                write!(
                    f,
                    "{netns}: ip link set {link} type bridge_slave hairpin on"
                )
            }
        }
    }
}

/// Carry out `fixes`, grouped by namespace (in parallel across them, in
/// order within one). Returns each fix with its outcome.
pub fn run(fixes: &[Fix]) -> Vec<(Fix, Result<(), Error>)> {
    let mut by_ns: BTreeMap<&str, Vec<&Fix>> = BTreeMap::new();
    for f in fixes {
        by_ns.entry(f.netns()).or_default().push(f);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = by_ns
            .into_iter()
            .map(|(ns, fixes)| (fixes.clone(), s.spawn(move || run_in(ns, &fixes))))
            .collect();
        let mut out = Vec::new();
        for (fixes, h) in handles {
            match h.join() {
                Ok(results) => out.extend(results),
                Err(_) => out.extend(fixes.into_iter().map(|f| {
                    (
                        f.clone(),
                        Err(Error::Io {
                            what: f.to_string(),
                            source: std::io::Error::other("repair thread panicked"),
                        }),
                    )
                })),
            }
        }
        out
    })
}

fn run_in(netns: &str, fixes: &[&Fix]) -> Vec<(Fix, Result<(), Error>)> {
    let mut results: Vec<(Fix, Result<(), Error>)> = Vec::new();
    let mut netlink_fixes = Vec::new();
    for f in fixes {
        match f {
            Fix::Sysctl { key, value, .. } => {
                results.push(((*f).clone(), super::change::set_sysctl(netns, key, value)));
            }
            _ => netlink_fixes.push((*f).clone()),
        }
    }
    if netlink_fixes.is_empty() {
        return results;
    }
    // One connection for the namespace's fixes, each tried in turn.
    let done = super::change::netlink(netns, |nl| {
        let fixes = netlink_fixes.clone();
        async move {
            let mut out = Vec::new();
            for f in fixes {
                let r = apply_one(&nl, netns, &f).await;
                out.push((f, r));
            }
            Ok(out)
        }
    });
    match done {
        Ok(out) => results.extend(out),
        Err(e) => {
            let why = e.to_string();
            results.extend(netlink_fixes.into_iter().map(|f| {
                let what = f.to_string();
                (
                    f,
                    Err(Error::Io {
                        what,
                        source: std::io::Error::other(why.clone()),
                    }),
                )
            }))
        }
    }
    results
}

async fn link_index(nl: &rtnetlink::Handle, netns: &str, link: &str) -> Result<u32, Error> {
    let mut links = nl.link().get().match_name(link.to_string()).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) => Err(Error::Io {
            what: format!("link {link} in {netns}"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }),
        Err(source) => Err(Error::Netlink {
            netns: netns.into(),
            what: format!("find link {link}"),
            source,
        }),
    }
}

async fn apply_one(nl: &rtnetlink::Handle, netns: &str, fix: &Fix) -> Result<(), Error> {
    use rtnetlink::RouteMessageBuilder;
    let fail = |what: String| {
        let netns = netns.to_string();
        move |source| Error::Netlink {
            netns,
            what,
            source,
        }
    };
    match fix {
        Fix::DeleteQdisc { link, .. } => {
            let index = link_index(nl, netns, link).await?;
            let mut req = nl
                .clone()
                .qdisc()
                .del(i32::try_from(index).unwrap_or_default());
            req.message_mut().header.parent = netlink_packet_route::tc::TcHandle::ROOT;
            req.execute()
                .await
                .map_err(fail(format!("delete the root qdisc of {link}")))
        }
        Fix::LinkUp { link, .. } => {
            super::change::set_link_with(nl, netns, link, Some(true), None).await
        }
        Fix::Mtu { link, mtu, .. } => {
            super::change::set_link_with(nl, netns, link, None, Some(*mtu)).await
        }
        Fix::Address { link, want, .. } => {
            let index = link_index(nl, netns, link).await?;
            let have: Vec<_> = nl
                .address()
                .get()
                .set_link_index_filter(index)
                .execute()
                .try_collect()
                .await
                .map_err(fail(format!("list addresses of {link}")))?;
            let mut present = Vec::new();
            for m in have {
                let ip = m.attributes.iter().find_map(|a| match a {
                    netlink_packet_route::address::AddressAttribute::Local(IpAddr::V4(ip)) => {
                        Some(*ip)
                    }
                    _ => None,
                });
                let Some(ip) = ip else { continue };
                if want.contains(&(ip, m.header.prefix_len)) {
                    present.push((ip, m.header.prefix_len));
                    continue;
                }
                nl.address()
                    .del(m)
                    .execute()
                    .await
                    .map_err(fail(format!("remove {ip} from {link}")))?;
            }
            for (ip, prefix) in want.iter().filter(|w| !present.contains(w)) {
                nl.address()
                    .add(index, IpAddr::V4(*ip), *prefix)
                    .execute()
                    .await
                    .map_err(fail(format!("add {ip}/{prefix} to {link}")))?;
            }
            Ok(())
        }
        Fix::Route { dst, via, .. } => {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(dst.network(), dst.prefix_len())
                .gateway(*via)
                .build();
            nl.route()
                .add(route)
                .replace()
                .execute()
                .await
                .map_err(fail(format!("replace route {dst} via {via}")))
        }
        Fix::DeleteLink { link, .. } => {
            let index = match link_index(nl, netns, link).await {
                Ok(i) => i,
                // Already gone: what was wanted.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(())
                }
                Err(e) => return Err(e),
            };
            nl.link()
                .del(index)
                .execute()
                .await
                .map_err(fail(format!("delete {link}")))
        }
        Fix::Sysctl { .. } => Ok(()),
        Fix::DeleteObject { what, object, .. } => {
            super::objects::delete_with(nl, netns, *what, object).await
        }
        Fix::Hairpin { link, .. } => super::change::set_hairpin_with(nl, netns, link).await,
    }
}
