//! The one vocabulary of changes to a running lab's namespaces, and the
//! one executor that carries them out: what `podlab apply` repairs from
//! observe's diff and what faults inject and undo are the same values.
//!
//! A `Change` names a kernel object (a link's state or MTU, a link's
//! addresses, a route of any kind and table, a policy rule, a static
//! neighbour, a sysctl, a bridge port's hairpin flag, a qdisc, nftables
//! tables) or a lab file, and prints as the command a learner would type.
//! `run` groups a list by namespace, opens one netlink connection per
//! namespace, tries every change in order and returns each outcome.
//!
//! The reads that check them live here too: the qdiscs of a namespace.
//! Each call does its work on a thread of its own that enters the
//! namespace, so callers never leave a thread in a lab's namespace.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Output, Stdio};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::route::RouteType;
use netlink_packet_route::tc::{TcAttribute, TcHandle};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use serde::{Deserialize, Serialize};

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

/// Set a link up or down and/or its MTU, on a handle open in `netns`.
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
    set_hairpin_to(h, netns, link, true).await
}

async fn set_hairpin_to(h: &Handle, netns: &str, link: &str, on: bool) -> Result<(), Error> {
    use netlink_packet_route::link::{InfoBridgePort, InfoPortData, InfoPortKind};
    h.link()
        .set_port(
            LinkUnspec::new_with_name(link)
                .set_port_kind(InfoPortKind::Bridge)
                .set_port_data(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                    on,
                )]))
                .build(),
        )
        .execute()
        .await
        .map_err(fail(
            netns,
            format!("set hairpin {} on {link}", if on { "on" } else { "off" }),
        ))
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

/// What kind of route, as `ip route` writes it before the destination
/// (nothing for `unicast`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    #[default]
    Unicast,
    Local,
    Broadcast,
    Anycast,
    Multicast,
    Blackhole,
    Unreachable,
    Prohibit,
    Throw,
    Nat,
    /// A type `ip` has no word for, by number.
    Other(u8),
}

/// The named kinds, with the words `ip` uses for them.
const ROUTE_KINDS: [(RouteKind, &str, RouteType); 10] = [
    (RouteKind::Unicast, "unicast", RouteType::Unicast),
    (RouteKind::Local, "local", RouteType::Local),
    (RouteKind::Broadcast, "broadcast", RouteType::Broadcast),
    (RouteKind::Anycast, "anycast", RouteType::Anycast),
    (RouteKind::Multicast, "multicast", RouteType::Multicast),
    (RouteKind::Blackhole, "blackhole", RouteType::BlackHole),
    (
        RouteKind::Unreachable,
        "unreachable",
        RouteType::Unreachable,
    ),
    (RouteKind::Prohibit, "prohibit", RouteType::Prohibit),
    (RouteKind::Throw, "throw", RouteType::Throw),
    (RouteKind::Nat, "nat", RouteType::Nat),
];

impl RouteKind {
    pub fn of_netlink(t: RouteType) -> RouteKind {
        ROUTE_KINDS
            .iter()
            .find(|(_, _, n)| *n == t)
            .map_or(RouteKind::Other(u8::from(t)), |(k, _, _)| *k)
    }

    pub fn netlink(self) -> RouteType {
        match self {
            RouteKind::Other(n) => RouteType::from(n),
            k => ROUTE_KINDS
                .iter()
                .find(|(x, _, _)| *x == k)
                .map_or(RouteType::Unicast, |(_, _, n)| *n),
        }
    }

    pub fn is_unicast(&self) -> bool {
        *self == RouteKind::Unicast
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteKind::Other(n) => write!(f, "type {n}"),
            k => f.write_str(
                ROUTE_KINDS
                    .iter()
                    .find(|(x, _, _)| x == k)
                    .map_or("unicast", |(_, w, _)| w),
            ),
        }
    }
}

impl Serialize for RouteKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RouteKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        if let Some((k, _, _)) = ROUTE_KINDS.iter().find(|(_, w, _)| *w == word) {
            return Ok(*k);
        }
        word.strip_prefix("type ")
            .and_then(|n| n.parse().ok())
            .map(RouteKind::Other)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown route kind `{word}`")))
    }
}

/// A route as `ip route` names it: what a change adds, replaces or
/// deletes. Deleting, `via` and `dev` left out match any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: Ipv4Net,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "RouteKind::is_unicast")]
    pub kind: RouteKind,
    #[serde(default = "main_table", skip_serializing_if = "is_main_table")]
    pub table: u32,
}

fn main_table() -> u32 {
    super::objects::MAIN_TABLE
}

fn is_main_table(t: &u32) -> bool {
    *t == super::objects::MAIN_TABLE
}

impl Route {
    /// `DST via VIA` in the main table, as podlab's own routes are.
    pub fn via(dst: Ipv4Net, via: Ipv4Addr) -> Route {
        Route {
            dst,
            via: Some(via),
            dev: None,
            kind: RouteKind::Unicast,
            table: main_table(),
        }
    }

    /// Whether the kernel's route `r` is this one (`via`, `dev` left out
    /// match any).
    pub fn matches(&self, r: &Route) -> bool {
        self.dst == r.dst
            && self.kind == r.kind
            && self.table == r.table
            && self.via.is_none_or(|v| r.via == Some(v))
            && self.dev.as_ref().is_none_or(|d| r.dev.as_ref() == Some(d))
    }
}

/// As `ip route` writes it: `blackhole 10.244.2.0/24`, `default via X`,
/// `10.1.0.0/16 via X dev eth0 table 100`.
impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.kind.is_unicast() {
            write!(f, "{} ", self.kind)?;
        }
        if self.dst.prefix_len() == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(v) = self.via {
            write!(f, " via {v}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        if !is_main_table(&self.table) {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

/// What a route change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteOp {
    Add,
    Replace,
    Del,
}

impl RouteOp {
    fn word(self) -> &'static str {
        match self {
            RouteOp::Add => "add",
            RouteOp::Replace => "replace",
            RouteOp::Del => "del",
        }
    }
}

/// One change to a lab's kernel objects or files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "camelCase")]
pub enum Change {
    /// `ip link set LINK [mtu N] [up|down]`.
    Link {
        netns: String,
        link: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        up: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtu: Option<u32>,
    },
    /// `ip link del LINK`: a veth goes with its peer; one already gone is
    /// done.
    DeleteLink { netns: String, link: String },
    /// Make `link`'s IPv4 addresses exactly `want`.
    Addresses {
        netns: String,
        link: String,
        want: Vec<Ipv4Net>,
    },
    /// `ip route add|replace|del ROUTE`.
    Route {
        netns: String,
        op: RouteOp,
        route: Route,
    },
    /// `ip rule del ...` of this rule, as the kernel listed it.
    DeleteRule {
        netns: String,
        rule: super::objects::RuleEntry,
    },
    /// `ip neigh del ...` of this static entry, as the kernel listed it.
    DeleteNeighbour {
        netns: String,
        neighbour: super::objects::NeighbourEntry,
    },
    /// `sysctl -w KEY=VALUE` inside the namespace.
    Sysctl {
        netns: String,
        key: String,
        value: String,
    },
    /// `ip link set LINK type bridge_slave hairpin on|off`.
    Hairpin {
        netns: String,
        link: String,
        on: bool,
    },
    /// `tc qdisc replace dev LINK root SPEC...`, or with no spec
    /// `tc qdisc del dev LINK root` (none is done).
    Qdisc {
        netns: String,
        link: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spec: Option<Vec<String>>,
    },
    /// `nft -f -` with this script.
    Nft { netns: String, script: String },
    /// `nft delete table FAMILY TABLE`; a missing table is done.
    DropTable {
        netns: String,
        family: String,
        table: String,
    },
    /// Write a file of the lab (a pod's `/etc/netns/<netns>/resolv.conf`)
    /// in place; `None` removes it (a missing one is done).
    File {
        path: String,
        /// The path the pod sees it at.
        shown: String,
        content: Option<String>,
    },
}

impl Change {
    /// The namespace it acts in; none for a file (written from the host).
    pub fn netns(&self) -> Option<&str> {
        match self {
            Change::Link { netns, .. }
            | Change::DeleteLink { netns, .. }
            | Change::Addresses { netns, .. }
            | Change::Route { netns, .. }
            | Change::DeleteRule { netns, .. }
            | Change::DeleteNeighbour { netns, .. }
            | Change::Sysctl { netns, .. }
            | Change::Hairpin { netns, .. }
            | Change::Qdisc { netns, .. }
            | Change::Nft { netns, .. }
            | Change::DropTable { netns, .. } => Some(netns),
            Change::File { .. } => None,
        }
    }

    /// The change as a learner would type it inside the namespace.
    pub fn command(&self) -> String {
        match self {
            Change::Link { link, up, mtu, .. } => {
                let mut cmd = format!("ip link set {link}");
                if let Some(m) = mtu {
                    cmd.push_str(&format!(" mtu {m}"));
                }
                match up {
                    Some(true) => cmd.push_str(" up"),
                    Some(false) => cmd.push_str(" down"),
                    None => {}
                }
                cmd
            }
            Change::DeleteLink { link, .. } => format!("ip link del {link}"),
            Change::Addresses { link, want, .. } => {
                let want: Vec<String> = want.iter().map(ToString::to_string).collect();
                format!("addresses of {link} set to {}", want.join(", "))
            }
            Change::Route { op, route, .. } => format!("ip route {} {route}", op.word()),
            Change::DeleteRule { rule, .. } => format!(
                "ip rule del pref {} {} {}",
                rule.priority,
                rule.selectors(),
                rule.action
            ),
            Change::DeleteNeighbour { neighbour: n, .. } => {
                format!("ip neigh del {} dev {} lladdr {}", n.ip, n.dev, n.mac)
            }
            Change::Sysctl { key, value, .. } => format!("sysctl -w {key}={value}"),
            Change::Hairpin { link, on, .. } => format!(
                "ip link set {link} type bridge_slave hairpin {}",
                if *on { "on" } else { "off" }
            ),
            Change::Qdisc { link, spec, .. } => match spec {
                Some(s) => format!("tc qdisc replace dev {link} root {}", s.join(" ")),
                None => format!("tc qdisc del dev {link} root"),
            },
            Change::Nft { script, .. } => match script.trim().lines().collect::<Vec<_>>()[..] {
                [one] => format!("nft {one}"),
                // A heredoc: `podlab exec` hands its stdin to the command.
                _ => format!("nft -f - <<'EOF'\n{script}EOF"),
            },
            Change::DropTable { family, table, .. } => {
                format!("nft delete table {family} {table}")
            }
            Change::File { shown, content, .. } => match content {
                Some(text) => format!(
                    "sh -c 'printf \"{}\" > {shown}'",
                    text.replace('\n', "\\n").replace('\'', "'\\''")
                ),
                None => format!("rm {shown}"),
            },
        }
    }

    /// Whether `e` means the change's effect is already there: the route
    /// being added exists, the object being deleted is gone. Undoing and
    /// repairing count that as done; injecting does not.
    pub fn already_done(&self, e: &Error) -> bool {
        use nix::errno::Errno;
        match self {
            Change::Route {
                op: RouteOp::Add, ..
            } => e.errno() == Some(Errno::EEXIST),
            Change::Route {
                op: RouteOp::Del, ..
            }
            | Change::DeleteRule { .. }
            | Change::DeleteNeighbour { .. } => {
                matches!(e.errno(), Some(Errno::ESRCH | Errno::ENOENT))
            }
            _ => false,
        }
    }
}

/// `NETNS: COMMAND`, as `apply` reports what it repaired.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::File { path, content, .. } => match content {
                Some(_) => write!(f, "{path} rewritten"),
                None => write!(f, "{path} removed"),
            },
            c => write!(f, "{}: {}", c.netns().unwrap_or_default(), c.command()),
        }
    }
}

/// What carrying out one change gave.
pub type Outcome = (Change, Result<(), Error>);

/// How many namespaces are changed at once.
const WORKERS: usize = 8;

/// Carry out `changes`: grouped by namespace, one netlink connection per
/// namespace, a few namespaces at once, in order within one, every change
/// tried even when another fails. Returns each with its outcome, in the
/// order given.
pub fn run(changes: &[Change]) -> Vec<Outcome> {
    let mut groups: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, c) in changes.iter().enumerate() {
        groups.entry(c.netns()).or_default().push(i);
    }
    let groups: Vec<(Option<&str>, Vec<usize>)> = groups.into_iter().collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<(), Error>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS.min(groups.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((netns, idx)) = groups.get(g) else {
                            break;
                        };
                        let list: Vec<&Change> = idx.iter().map(|&i| &changes[i]).collect();
                        let out = match netns {
                            Some(ns) => run_in(ns, &list),
                            None => list.iter().map(|c| write_file(c)).collect(),
                        };
                        done.extend(idx.iter().copied().zip(out));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let mut outcome: Vec<Option<Result<(), Error>>> = (0..changes.len()).map(|_| None).collect();
    for (i, r) in results {
        outcome[i] = Some(r);
    }
    changes
        .iter()
        .cloned()
        .zip(outcome)
        .map(|(c, r)| {
            let r = r.unwrap_or_else(|| {
                Err(Error::Io {
                    what: c.to_string(),
                    source: std::io::Error::other("the worker carrying it out panicked"),
                })
            });
            (c, r)
        })
        .collect()
}

/// The changes of one namespace, on one connection opened in it; the ones
/// made by a tool or through `/proc` from a thread inside it.
fn run_in(netns: &str, changes: &[&Change]) -> Vec<Result<(), Error>> {
    let done = super::inspect::in_netns(netns, |nl| async move {
        let mut out = Vec::new();
        for c in changes {
            out.push(one(&nl, netns, c).await);
        }
        Ok(out)
    });
    match done {
        Ok(out) => out,
        Err(e) => {
            let why = crate::error_chain(&e);
            changes
                .iter()
                .map(|c| {
                    Err(Error::Io {
                        what: c.to_string(),
                        source: std::io::Error::other(why.clone()),
                    })
                })
                .collect()
        }
    }
}

async fn one(nl: &Handle, netns: &str, c: &Change) -> Result<(), Error> {
    match c {
        Change::Link { link, up, mtu, .. } => set_link_with(nl, netns, link, *up, *mtu).await,
        Change::DeleteLink { link, .. } => delete_link(nl, netns, link).await,
        Change::Addresses { link, want, .. } => set_addresses(nl, netns, link, want).await,
        Change::Route { op, route, .. } => route_change(nl, netns, *op, route).await,
        Change::DeleteRule { rule, .. } => super::objects::delete_rule(nl, netns, rule).await,
        Change::DeleteNeighbour { neighbour, .. } => {
            super::objects::delete_neighbour(nl, netns, neighbour).await
        }
        Change::Sysctl { key, value, .. } => set_sysctl(netns, key, value),
        Change::Hairpin { link, on, .. } => set_hairpin_to(nl, netns, link, *on).await,
        Change::Qdisc {
            link, spec: None, ..
        } => delete_root_qdisc(nl, netns, link).await,
        Change::Qdisc {
            link,
            spec: Some(spec),
            ..
        } => {
            let mut args: Vec<String> = ["qdisc", "replace", "dev", link, "root"]
                .map(String::from)
                .to_vec();
            args.extend(spec.iter().cloned());
            tool(netns, "tc", &args, None, &c.command(), |_| false)
        }
        Change::Nft { script, .. } => tool(
            netns,
            "nft",
            &["-f".into(), "-".into()],
            Some(script),
            &c.command(),
            |_| false,
        ),
        Change::DropTable { family, table, .. } => {
            let args = ["delete", "table", family, table].map(String::from);
            tool(netns, "nft", &args, None, &c.command(), |err| {
                err.contains("No such file or directory")
            })
        }
        Change::File { .. } => write_file(c),
    }
}

/// Run a tool in `netns`; a failure whose message `done` accepts is the
/// effect already there.
fn tool(
    netns: &str,
    program: &str,
    args: &[String],
    stdin: Option<&str>,
    command: &str,
    done: impl Fn(&str) -> bool,
) -> Result<(), Error> {
    let out = run_tool(netns, program, args, stdin)?;
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.success() || done(&err) {
        return Ok(());
    }
    if program == "nft" {
        return Err(Error::Nft {
            netns: netns.into(),
            message: format!("{command}: {err}"),
        });
    }
    Err(Error::Io {
        what: format!("{command} in {netns}"),
        source: std::io::Error::other(err),
    })
}

fn write_file(c: &Change) -> Result<(), Error> {
    let Change::File { path, content, .. } = c else {
        return Ok(());
    };
    let io = |e: std::io::Error| Error::Io {
        what: format!("write {path}"),
        source: e,
    };
    match content {
        Some(text) => {
            if let Some(dir) = std::path::Path::new(path).parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            // In place, not by rename: a shell inside the pod has the file
            // bind-mounted, and sees a write to the same inode.
            std::fs::write(path, text).map_err(io)
        }
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        },
    }
}

pub(super) async fn link_index(nl: &Handle, netns: &str, link: &str) -> Result<u32, Error> {
    let mut links = nl.link().get().match_name(link.to_string()).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) => Err(Error::Io {
            what: format!("link {link} in {netns}"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }),
        // The kernel answers a name it does not know with ENODEV.
        Err(rtnetlink::Error::NetlinkError(m))
            if m.code.map(|c| -c.get()) == Some(nix::errno::Errno::ENODEV as i32) =>
        {
            Err(Error::Io {
                what: format!("link {link} in {netns}"),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
        }
        Err(source) => Err(Error::Netlink {
            netns: netns.into(),
            what: format!("find link {link}"),
            source,
        }),
    }
}

async fn delete_link(nl: &Handle, netns: &str, link: &str) -> Result<(), Error> {
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
        .map_err(fail(netns, format!("delete {link}")))
}

async fn delete_root_qdisc(nl: &Handle, netns: &str, link: &str) -> Result<(), Error> {
    let index = link_index(nl, netns, link).await?;
    let mut req = nl.qdisc().del(i32::try_from(index).unwrap_or_default());
    req.message_mut().header.parent = TcHandle::ROOT;
    match req.execute().await {
        Ok(()) => Ok(()),
        // None to delete (the link's default): done.
        Err(rtnetlink::Error::NetlinkError(m))
            if matches!(
                m.code.map(|c| -c.get()),
                Some(x) if x == nix::errno::Errno::ENOENT as i32
                    || x == nix::errno::Errno::EINVAL as i32
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(fail(netns, format!("delete the root qdisc of {link}"))(e)),
    }
}

async fn set_addresses(
    nl: &Handle,
    netns: &str,
    link: &str,
    want: &[Ipv4Net],
) -> Result<(), Error> {
    use netlink_packet_route::address::AddressAttribute;
    let index = link_index(nl, netns, link).await?;
    let have: Vec<_> = nl
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(fail(netns, format!("list addresses of {link}")))?;
    let mut present = Vec::new();
    for m in have {
        let ip = m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        let Some(ip) = ip else { continue };
        let a = Ipv4Net::new(ip, m.header.prefix_len).unwrap_or_else(|_| Ipv4Net::from(ip));
        if want.contains(&a) {
            present.push(a);
            continue;
        }
        nl.address()
            .del(m)
            .execute()
            .await
            .map_err(fail(netns, format!("remove {a} from {link}")))?;
    }
    for a in want.iter().filter(|w| !present.contains(w)) {
        nl.address()
            .add(index, IpAddr::V4(a.addr()), a.prefix_len())
            .execute()
            .await
            .map_err(fail(netns, format!("add {a} to {link}")))?;
    }
    Ok(())
}

async fn route_change(nl: &Handle, netns: &str, op: RouteOp, route: &Route) -> Result<(), Error> {
    let what = format!("ip route {} {route}", op.word());
    if op == RouteOp::Del {
        // The kernel's own routes, matched as the change names them:
        // whoever added it (`ip route add` says `proto boot`), and any
        // `via` or `dev` the change leaves out.
        let found = super::objects::route_messages(nl, netns).await?;
        let names = super::objects::link_names(nl, netns).await?;
        let mut deleted = false;
        for m in found {
            if route.matches(&super::objects::route_entry(&m, &names).route()) {
                nl.route()
                    .del(m)
                    .execute()
                    .await
                    .map_err(fail(netns, what.clone()))?;
                deleted = true;
            }
        }
        return if deleted {
            Ok(())
        } else {
            Err(Error::Io {
                what: format!("{what} in {netns}"),
                source: std::io::Error::from_raw_os_error(nix::errno::Errno::ESRCH as i32),
            })
        };
    }
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(route.dst.network(), route.dst.prefix_len())
        .table_id(route.table)
        .kind(route.kind.netlink());
    if let Some(v) = route.via {
        b = b.gateway(v);
    } else if route.kind.is_unicast() {
        // A route straight onto a link reaches only its own subnet.
        b = b.scope(netlink_packet_route::route::RouteScope::Link);
    }
    if let Some(d) = &route.dev {
        b = b.output_interface(link_index(nl, netns, d).await?);
    }
    let req = nl.route().add(b.build());
    let req = if op == RouteOp::Replace {
        req.replace()
    } else {
        req
    };
    req.execute().await.map_err(fail(netns, what))
}
