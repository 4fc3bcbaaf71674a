//! Every route (of every table), policy rule and static neighbour entry of
//! a namespace, planned or not, written the way `ip` writes them, so that
//! `observe` can say which ones the lab did not make and `apply` can delete
//! exactly those.
//!
//! An object is named by its text: `observe` reports the text, and the
//! deletion lists the namespace again and removes the message whose text
//! is the same. Nothing else is needed to find it again, and an object
//! that changed in between is left alone.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use futures::TryStreamExt;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::AddressFamily;
use rtnetlink::IpVersion;
use serde::Serialize;

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

/// A route as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteEntry {
    pub table: u32,
    /// `unicast`, `blackhole`, `prohibit`, `unreachable`, `local`, ...
    pub kind: String,
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub dev: Option<String>,
    /// `kernel` for a route the kernel made for an address.
    pub proto: String,
    pub text: String,
}

/// A policy routing rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleEntry {
    pub priority: u32,
    /// `lookup main`, `prohibit`, ...
    pub action: String,
    pub text: String,
}

/// A neighbour entry someone set by hand (`PERMANENT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
        routes: routes.iter().map(|m| route_entry(m, &names)).collect(),
        rules: rules.iter().map(rule_entry).collect(),
        neighbours: neighbours
            .iter()
            .filter_map(|m| neighbour_entry(m, &names))
            .collect(),
    })
}

/// Delete the object of `kind` whose text is `text`; one that is not
/// there (any more) is as good as deleted.
pub fn delete(netns: &str, kind: Kind, text: &str) -> Result<(), Error> {
    inspect::in_netns(netns, |nl| async move {
        delete_with(&nl, netns, kind, text).await
    })
}

/// `delete` on a connection already open in `netns`.
pub async fn delete_with(
    nl: &rtnetlink::Handle,
    netns: &str,
    kind: Kind,
    text: &str,
) -> Result<(), Error> {
    {
        let names = link_names(nl, netns).await?;
        let what = format!("delete {kind} {text}");
        match kind {
            Kind::Route => {
                let Some(m) = route_messages(nl, netns)
                    .await?
                    .into_iter()
                    .find(|m| route_entry(m, &names).text == text)
                else {
                    return Ok(());
                };
                nl.route()
                    .del(m)
                    .execute()
                    .await
                    .map_err(inspect::fail(netns, &what))
            }
            Kind::Rule => {
                let Some(m) = rule_messages(nl, netns)
                    .await?
                    .into_iter()
                    .find(|m| rule_entry(m).text == text)
                else {
                    return Ok(());
                };
                nl.rule()
                    .del(m)
                    .execute()
                    .await
                    .map_err(inspect::fail(netns, &what))
            }
            Kind::Neighbour => {
                let Some(m) = neighbour_messages(nl, netns)
                    .await?
                    .into_iter()
                    .find(|m| neighbour_entry(m, &names).is_some_and(|e| e.text == text))
                else {
                    return Ok(());
                };
                nl.neighbours()
                    .del(m)
                    .execute()
                    .await
                    .map_err(inspect::fail(netns, &what))
            }
        }
    }
}

async fn link_names(nl: &rtnetlink::Handle, netns: &str) -> Result<HashMap<u32, String>, Error> {
    Ok(inspect::links(nl, netns)
        .await?
        .into_iter()
        .map(|l| (l.index, l.name))
        .collect())
}

async fn route_messages(nl: &rtnetlink::Handle, netns: &str) -> Result<Vec<RouteMessage>, Error> {
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

fn route_kind(k: RouteType) -> String {
    match k {
        RouteType::Unicast => "unicast".into(),
        RouteType::Local => "local".into(),
        RouteType::Broadcast => "broadcast".into(),
        RouteType::Anycast => "anycast".into(),
        RouteType::Multicast => "multicast".into(),
        RouteType::BlackHole => "blackhole".into(),
        RouteType::Unreachable => "unreachable".into(),
        RouteType::Prohibit => "prohibit".into(),
        RouteType::Throw => "throw".into(),
        RouteType::Nat => "nat".into(),
        other => format!("type {}", u8::from(other)),
    }
}

fn route_entry(m: &RouteMessage, names: &HashMap<u32, String>) -> RouteEntry {
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
    let kind = route_kind(m.header.kind);
    let proto = match m.header.protocol {
        RouteProtocol::Kernel => "kernel".to_string(),
        p => p.to_string(),
    };
    let mut text = String::new();
    if kind != "unicast" {
        text.push_str(&kind);
        text.push(' ');
    }
    if prefix == 0 {
        text.push_str("default");
    } else {
        text.push_str(&format!("{dst}/{prefix}"));
    }
    if let Some(g) = gateway {
        text.push_str(&format!(" via {g}"));
    }
    if let Some(d) = &dev {
        text.push_str(&format!(" dev {d}"));
    }
    if table != MAIN_TABLE {
        text.push_str(&format!(" table {table}"));
    }
    RouteEntry {
        table,
        kind,
        dst,
        prefix,
        gateway,
        oif,
        dev,
        proto,
        text,
    }
}

fn rule_entry(m: &RuleMessage) -> RuleEntry {
    let mut priority = 0;
    let mut table = u32::from(m.header.table);
    let mut selectors = Vec::new();
    for a in &m.attributes {
        match a {
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Source(ip) => selectors.push(format!("from {ip}/{}", m.header.src_len)),
            RuleAttribute::Destination(ip) => {
                selectors.push(format!("to {ip}/{}", m.header.dst_len))
            }
            RuleAttribute::Iifname(n) => selectors.push(format!("iif {n}")),
            RuleAttribute::Oifname(n) => selectors.push(format!("oif {n}")),
            RuleAttribute::FwMark(v) => selectors.push(format!("fwmark {v:#x}")),
            _ => {}
        }
    }
    if !selectors.iter().any(|s| s.starts_with("from ")) {
        selectors.insert(0, "from all".into());
    }
    let action = match m.header.action {
        RuleAction::ToTable => format!(
            "lookup {}",
            match table {
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
    let text = format!("{priority}: {} {action}", selectors.join(" "));
    RuleEntry {
        priority,
        action,
        text,
    }
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
        RuleEntry {
            priority,
            action: action.into(),
            text: text.into(),
        }
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
