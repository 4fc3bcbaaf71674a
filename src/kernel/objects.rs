//! Every route (of every table), policy rule and static neighbour entry of
//! a namespace, planned or not, written the way `ip` writes them, so that
//! `observe` can say which ones the lab did not make and `apply` can delete
//! exactly those.
//!
//! Each is a typed value (its text is what `ip` prints, for people): the
//! deletion (`change::Change`) lists the namespace again and removes the
//! message that reads back as the same value, so an object that changed in
//! between is left alone.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::AddressFamily;
use rtnetlink::IpVersion;
use serde::{Deserialize, Serialize};

use super::change::{Route, RouteKind};
use super::inspect;
use super::Error;

/// The main routing table; the local one (255) holds what the kernel
/// derives from addresses.
pub const MAIN_TABLE: u32 = 254;
pub const LOCAL_TABLE: u32 = 255;

/// What kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Route,
    Rule,
    Neighbour,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Route => "route",
            Kind::Rule => "rule",
            Kind::Neighbour => "neighbour",
        })
    }
}

/// One object of a kind, as the kernel listed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "object", rename_all = "lowercase")]
pub enum Object {
    Route(RouteEntry),
    Rule(RuleEntry),
    Neighbour(NeighbourEntry),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Route(_) => Kind::Route,
            Object::Rule(_) => Kind::Rule,
            Object::Neighbour(_) => Kind::Neighbour,
        }
    }

    /// As `ip` writes it.
    pub fn text(&self) -> &str {
        match self {
            Object::Route(r) => &r.text,
            Object::Rule(r) => &r.text,
            Object::Neighbour(n) => &n.text,
        }
    }
}

/// A route as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteEntry {
    pub table: u32,
    pub kind: RouteKind,
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub dev: Option<String>,
    /// `kernel` for a route the kernel made for an address.
    pub proto: String,
    pub text: String,
}

impl RouteEntry {
    /// The route as a change names it.
    pub fn route(&self) -> Route {
        Route {
            dst: Ipv4Net::new(self.dst, self.prefix).unwrap_or_else(|_| Ipv4Net::from(self.dst)),
            via: self.gateway,
            dev: self.dev.clone(),
            kind: self.kind,
            table: self.table,
        }
    }
}

/// A policy routing rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEntry {
    pub priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// The table a `lookup` action looks in.
    pub table: u32,
    /// `lookup main`, `prohibit`, ...
    pub action: String,
    pub text: String,
}

impl RuleEntry {
    /// A rule from its parts, its text as `ip rule` writes it.
    pub fn new(priority: u32, from: Option<Ipv4Net>, to: Option<Ipv4Net>, action: &str) -> Self {
        let mut r = RuleEntry {
            priority,
            from,
            to,
            iif: None,
            oif: None,
            fwmark: None,
            table: 0,
            action: action.into(),
            text: String::new(),
        };
        r.text = format!("{priority}: {} {action}", r.selectors());
        r
    }

    /// What it selects, as `ip rule` writes it: `from all to 10.0.0.0/8`.
    pub fn selectors(&self) -> String {
        let mut out = match self.from {
            Some(f) => format!("from {f}"),
            None => "from all".to_string(),
        };
        if let Some(t) = self.to {
            out.push_str(&format!(" to {t}"));
        }
        if let Some(i) = &self.iif {
            out.push_str(&format!(" iif {i}"));
        }
        if let Some(o) = &self.oif {
            out.push_str(&format!(" oif {o}"));
        }
        if let Some(m) = self.fwmark {
            out.push_str(&format!(" fwmark {m:#x}"));
        }
        out
    }
}

/// A neighbour entry someone set by hand (`PERMANENT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighbourEntry {
    pub ip: Ipv4Addr,
    pub dev: String,
    pub mac: String,
    pub text: String,
}

/// The routes, rules and static neighbours of one namespace.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Objects {
    pub routes: Vec<RouteEntry>,
    pub rules: Vec<RuleEntry>,
    pub neighbours: Vec<NeighbourEntry>,
}

/// The three rules every namespace starts with.
pub fn default_rule(r: &RuleEntry) -> bool {
    matches!(
        (r.priority, r.action.as_str(), r.text.as_str()),
        (0, "lookup local", "0: from all lookup local")
            | (32766, "lookup main", "32766: from all lookup main")
            | (32767, "lookup default", "32767: from all lookup default")
    )
}

/// Read them all on a connection open in `netns`, naming links from
/// `links` (read on the same connection).
pub(super) async fn read_with(
    nl: &rtnetlink::Handle,
    netns: &str,
    links: &[inspect::Link],
) -> Result<Objects, Error> {
    let names: HashMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
    let routes = route_messages(nl, netns).await?;
    let rules = rule_messages(nl, netns).await?;
    let neighbours = neighbour_messages(nl, netns).await?;
    Ok(Objects {
        // A cached exception (RTM_F_CLONED: a path MTU learnt from
        // "fragmentation needed", a redirect) is the kernel's cache, not a
        // route anyone configured: `ip route` hides it too.
        routes: routes
            .iter()
            .filter(|m| !m.header.flags.contains(RouteFlags::Cloned))
            .map(|m| route_entry(m, &names))
            .collect(),
        rules: rules.iter().map(rule_entry).collect(),
        neighbours: neighbours
            .iter()
            .filter_map(|m| neighbour_entry(m, &names))
            .collect(),
    })
}

/// Delete the rule that reads back as `rule`; one not there (any more)
/// is an ESRCH error (`Change::already_done`).
pub(super) async fn delete_rule(
    nl: &rtnetlink::Handle,
    netns: &str,
    rule: &RuleEntry,
) -> Result<(), Error> {
    let what = format!("ip rule del {}", rule.text);
    let Some(m) = rule_messages(nl, netns)
        .await?
        .into_iter()
        .find(|m| rule_entry(m) == *rule)
    else {
        return Err(gone(netns, &what));
    };
    nl.rule()
        .del(m)
        .execute()
        .await
        .map_err(inspect::fail(netns, &what))
}

/// Delete the static neighbour entry that reads back as `n`.
pub(super) async fn delete_neighbour(
    nl: &rtnetlink::Handle,
    netns: &str,
    n: &NeighbourEntry,
) -> Result<(), Error> {
    let what = format!("ip neigh del {}", n.text);
    let names = link_names(nl, netns).await?;
    let Some(m) = neighbour_messages(nl, netns)
        .await?
        .into_iter()
        .find(|m| neighbour_entry(m, &names).as_ref() == Some(n))
    else {
        return Err(gone(netns, &what));
    };
    nl.neighbours()
        .del(m)
        .execute()
        .await
        .map_err(inspect::fail(netns, &what))
}

fn gone(netns: &str, what: &str) -> Error {
    Error::Io {
        what: format!("{what} in {netns}"),
        source: std::io::Error::from_raw_os_error(nix::errno::Errno::ESRCH as i32),
    }
}

pub(super) async fn link_names(
    nl: &rtnetlink::Handle,
    netns: &str,
) -> Result<HashMap<u32, String>, Error> {
    Ok(inspect::links(nl, netns)
        .await?
        .into_iter()
        .map(|l| (l.index, l.name))
        .collect())
}

pub(super) async fn route_messages(
    nl: &rtnetlink::Handle,
    netns: &str,
) -> Result<Vec<RouteMessage>, Error> {
    nl.route()
        .get(rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(inspect::fail(netns, "list routes"))
}

async fn rule_messages(nl: &rtnetlink::Handle, netns: &str) -> Result<Vec<RuleMessage>, Error> {
    nl.rule()
        .get(IpVersion::V4)
        .execute()
        .try_collect()
        .await
        .map_err(inspect::fail(netns, "list rules"))
}

async fn neighbour_messages(
    nl: &rtnetlink::Handle,
    netns: &str,
) -> Result<Vec<NeighbourMessage>, Error> {
    nl.neighbours()
        .get()
        .set_address_family(AddressFamily::Inet)
        .execute()
        .try_filter(|m| futures::future::ready(m.header.state == NeighbourState::Permanent))
        .try_collect()
        .await
        .map_err(inspect::fail(netns, "list neighbours"))
}

pub(super) fn route_entry(m: &RouteMessage, names: &HashMap<u32, String>) -> RouteEntry {
    let mut table = u32::from(m.header.table);
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut dev = None;
    let mut oif = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
            RouteAttribute::Oif(i) => {
                oif = Some(*i);
                dev = Some(names.get(i).cloned().unwrap_or_else(|| format!("if{i}")));
            }
            _ => {}
        }
    }
    let prefix = m.header.destination_prefix_length;
    let kind = RouteKind::of_netlink(m.header.kind);
    let proto = match m.header.protocol {
        RouteProtocol::Kernel => "kernel".to_string(),
        p => p.to_string(),
    };
    let mut entry = RouteEntry {
        table,
        kind,
        dst,
        prefix,
        gateway,
        oif,
        dev,
        proto,
        text: String::new(),
    };
    entry.text = entry.route().to_string();
    entry
}

fn rule_entry(m: &RuleMessage) -> RuleEntry {
    let net = |ip: &std::net::IpAddr, len: u8| match ip {
        std::net::IpAddr::V4(v) => Ipv4Net::new(*v, len).ok(),
        std::net::IpAddr::V6(_) => None,
    };
    let mut r = RuleEntry::new(0, None, None, "");
    r.table = u32::from(m.header.table);
    for a in &m.attributes {
        match a {
            RuleAttribute::Priority(p) => r.priority = *p,
            RuleAttribute::Table(t) => r.table = *t,
            RuleAttribute::Source(ip) => r.from = net(ip, m.header.src_len),
            RuleAttribute::Destination(ip) => r.to = net(ip, m.header.dst_len),
            RuleAttribute::Iifname(n) => r.iif = Some(n.clone()),
            RuleAttribute::Oifname(n) => r.oif = Some(n.clone()),
            RuleAttribute::FwMark(v) => r.fwmark = Some(*v),
            _ => {}
        }
    }
    r.action = match m.header.action {
        RuleAction::ToTable => format!(
            "lookup {}",
            match r.table {
                LOCAL_TABLE => "local".to_string(),
                MAIN_TABLE => "main".to_string(),
                253 => "default".to_string(),
                t => t.to_string(),
            }
        ),
        RuleAction::Blackhole => "blackhole".into(),
        RuleAction::Unreachable => "unreachable".into(),
        RuleAction::Prohibit => "prohibit".into(),
        RuleAction::Goto => "goto".into(),
        RuleAction::Nop => "nop".into(),
        other => format!("action {}", u8::from(other)),
    };
    r.text = format!("{}: {} {}", r.priority, r.selectors(), r.action);
    r
}

fn neighbour_entry(m: &NeighbourMessage, names: &HashMap<u32, String>) -> Option<NeighbourEntry> {
    let mut ip = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => ip = Some(*v),
            NeighbourAttribute::LinkLayerAddress(b) => mac = Some(inspect::mac_text(b)),
            _ => {}
        }
    }
    let ip = ip?;
    let mac = mac.unwrap_or_default();
    let dev = names
        .get(&m.header.ifindex)
        .cloned()
        .unwrap_or_else(|| format!("if{}", m.header.ifindex));
    let text = format!("{ip} dev {dev} lladdr {mac} PERMANENT");
    Some(NeighbourEntry { ip, dev, mac, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(priority: u32, action: &str, text: &str) -> RuleEntry {
        let mut r = RuleEntry::new(priority, None, None, action);
        r.text = text.into();
        r
    }

    #[test]
    fn only_the_three_rules_of_a_new_namespace_are_default() {
        assert!(default_rule(&rule(
            0,
            "lookup local",
            "0: from all lookup local"
        )));
        assert!(default_rule(&rule(
            32766,
            "lookup main",
            "32766: from all lookup main"
        )));
        assert!(!default_rule(&rule(
            100,
            "prohibit",
            "100: from all to 10.244.2.0/24 prohibit"
        )));
        assert!(!default_rule(&rule(
            32766,
            "lookup main",
            "32766: from 10.0.0.0/8 lookup main"
        )));
    }
}
