//! Load only what changed in the nftables rules of a running lab.
//!
//! The rules are diffed from the last plan's rulesets (`plan::nftdiff`),
//! not from the kernel read back: listing a table of 10,000 services takes
//! `nft` seconds, and podlab's plan is what was loaded. The kernel can still
//! have drifted (a learner flushing a table by hand, which keeps chains and
//! map elements but drops every rule, so the changes would load into a
//! table that no longer works): before loading, one small chain of each
//! table changed is read back through a netlink dump filtered to that chain
//! (`nft list chain` would fetch the whole table first), and a namespace
//! whose chain differs, or whose changes the kernel refuses, is reloaded
//! whole.

use std::fmt;

use nftables::schema::Nftables;
use nftables::types::NfFamily;
use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::netns::{self, Netns};
use super::{apply, nft, Error};
use crate::plan::kubeproxy::to_json;
use crate::plan::nftdiff::{self, Diff, Probe, Summary};
use crate::plan::Plan;

/// What happened to each namespace's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleChanges {
    pub namespaces: Vec<NamespaceRules>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRules {
    pub netns: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to load.
    Unchanged,
    /// Only the changes were loaded.
    Changed(Summary),
    /// The whole ruleset was loaded, for the reason given.
    Reloaded(String),
    /// In the old plan only, and the namespace no longer exists.
    Gone,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Unchanged => write!(f, "unchanged"),
            Outcome::Changed(s) => write!(f, "{} object(s) changed: {s}", s.objects()),
            Outcome::Reloaded(why) => write!(f, "reloaded whole: {why}"),
            Outcome::Gone => write!(f, "namespace gone"),
        }
    }
}

impl fmt::Display for RuleChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.namespaces {
            writeln!(f, "{}: {}", n.netns, n.outcome)?;
        }
        Ok(())
    }
}

impl RuleChanges {
    pub fn outcome(&self, netns: &str) -> Option<&Outcome> {
        self.namespaces
            .iter()
            .find(|n| n.netns == netns)
            .map(|n| &n.outcome)
    }

    /// Every namespace's outcome on one line, for a log.
    pub fn one_line(&self) -> String {
        self.namespaces
            .iter()
            .map(|n| format!("{}: {}", n.netns, n.outcome))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether any namespace was reloaded whole.
    pub fn any_reloaded(&self) -> bool {
        self.namespaces
            .iter()
            .any(|n| matches!(n.outcome, Outcome::Reloaded(_)))
    }
}

/// Change the rules of every namespace from what `old` loaded to what
/// `new` wants: only the changes, one transaction per namespace, all
/// namespaces at once; a namespace whose changes cannot be made in place,
/// or whose kernel no longer holds what `old` loaded, is reloaded whole.
/// Fails if a whole reload fails (every namespace is tried first).
pub fn sync_rules(old: &Plan, new: &Plan) -> Result<RuleChanges, Error> {
    sync_rulesets(&apply::ruleset_objects(old), &apply::ruleset_objects(new))
}

/// `sync_rules` on rulesets (`apply::ruleset_objects`).
pub fn sync_rulesets(
    old: &[(String, Nftables<'static>)],
    new: &[(String, Nftables<'static>)],
) -> Result<RuleChanges, Error> {
    let mut work: Vec<(&str, Option<&Nftables<'static>>, Option<&Nftables<'static>>)> = new
        .iter()
        .map(|(ns, n)| {
            let o = old.iter().find(|(x, _)| x == ns).map(|(_, o)| o);
            (ns.as_str(), o, Some(n))
        })
        .collect();
    for (ns, o) in old {
        if !new.iter().any(|(x, _)| x == ns) {
            work.push((ns.as_str(), Some(o), None));
        }
    }
    let results: Vec<Result<Outcome, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .iter()
            .map(|(ns, o, n)| s.spawn(move || sync_one(ns, *o, *n)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Nft {
                        netns: "?".into(),
                        message: "rule sync thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut namespaces = Vec::new();
    let mut first_error = None;
    for ((ns, _, _), r) in work.iter().zip(results) {
        match r {
            Ok(outcome) => namespaces.push(NamespaceRules {
                netns: ns.to_string(),
                outcome,
            }),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(RuleChanges { namespaces }),
    }
}

/// Load every namespace's whole ruleset, reporting it as `RuleChanges`
/// (the first load of a daemon, or after a failure).
pub fn load_whole(plan: &Plan, why: &str) -> Result<RuleChanges, Error> {
    let rulesets = apply::rulesets(plan);
    nft::load_all_planned(&rulesets)?;
    Ok(RuleChanges {
        namespaces: rulesets
            .into_iter()
            .map(|(netns, _)| NamespaceRules {
                netns,
                outcome: Outcome::Reloaded(why.to_string()),
            })
            .collect(),
    })
}

/// Runs on a thread of `sync_rulesets`'s own: it enters the namespace.
fn sync_one(
    netns: &str,
    old: Option<&Nftables<'static>>,
    new: Option<&Nftables<'static>>,
) -> Result<Outcome, Error> {
    let empty = Nftables {
        objects: Vec::new().into(),
    };
    let (old, new) = match (old, new) {
        (None, Some(new)) => return whole(netns, new, "not in the last load".into()),
        (None, None) => return Ok(Outcome::Unchanged),
        (Some(_), None) if !Netns::exists(netns) => return Ok(Outcome::Gone),
        (Some(old), new) => (old, new.unwrap_or(&empty)),
    };
    let tx = match nftdiff::diff(old, new) {
        Diff::Same => return Ok(Outcome::Unchanged),
        Diff::Replace(why) => return whole(netns, new, why),
        Diff::Changes(tx) => tx,
    };
    let probes = nftdiff::probes(old, &tx);
    let json = to_json(&tx);
    // A chain that cannot be read back counts as drift: reload whole.
    let loaded = netns::run_in(netns, || -> Result<(), String> {
        for p in &probes {
            let found = chain_comments(p).map_err(|e| {
                format!(
                    "cannot read chain {} of table {} back: {e}",
                    p.chain, p.table
                )
            })?;
            p.check(&found)
                .map_err(|drift| format!("the kernel drifted from the last load: {drift}"))?;
        }
        tracked(netns, || nft_apply(&json)).map_err(|e| {
            format!("the changes did not load (the kernel drifted from the last load?): {e}")
        })
    })?;
    match loaded {
        Ok(()) => Ok(Outcome::Changed(Summary::of(&tx))),
        // A namespace in the old plan only has nothing to reload.
        Err(why) if new.objects.is_empty() => Err(Error::Nft {
            netns: netns.to_string(),
            message: why,
        }),
        Err(why) => whole(netns, new, why),
    }
}

/// Runs on a thread of `sync_rulesets`'s own, which it may move.
fn whole(netns: &str, new: &Nftables<'static>, why: String) -> Result<Outcome, Error> {
    netns::run_in(netns, || load_here(netns, &to_json(new)))??;
    Ok(Outcome::Reloaded(why))
}

fn load_here(netns: &str, json: &str) -> Result<(), Error> {
    tracked(netns, || nft_apply(json)).map_err(|message| Error::Nft {
        netns: netns.to_string(),
        message,
    })
}

/// `nft -j -f -` in the calling thread's namespace. Unlike the nftables
/// crate's helper, keeps nft's complaint for the message (a refused change
/// is reported, not printed on the daemon's stderr).
fn nft_apply(json: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // nft reads it all before it answers; a failed write shows as
        // nft's own error below.
        let _ = stdin.write_all(json.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Err(if said.is_empty() {
        format!("nft failed ({})", out.status)
    } else {
        said.join("; ")
    })
}

// ---- the ruleset's generation ----

const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;

/// The nftables generation of the calling thread's namespace: the kernel
/// bumps it at every committed transaction, podlab's or a learner's `nft`.
/// A generation unchanged since podlab's last load means the rules are the
/// ones it loaded, without listing them (which takes half a second for a
/// thousand services).
pub fn generation_here() -> std::io::Result<u32> {
    let mut req = vec![0u8; 16];
    // nfgenmsg: AF_UNSPEC, version 0, resource id 0.
    req.extend_from_slice(&[0, 0, 0, 0]);
    let len = req.len() as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN).to_ne_bytes());
    req[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind_auto()?;
    sock.send_to(&req, &SocketAddr::new(0, 0), 0)?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    sock.recv(&mut buf, 0)?;
    parse_generation(&buf)
}

fn parse_generation(buf: &[u8]) -> std::io::Result<u32> {
    let bad = || std::io::Error::other("malformed netlink reply");
    let len = u32_at(buf, 0).ok_or_else(bad)? as usize;
    let kind = u16_at(buf, 4).ok_or_else(bad)?;
    let msg = buf.get(16..len.min(buf.len())).ok_or_else(bad)?;
    if kind == NLMSG_ERROR {
        let code = u32_at(msg, 0).ok_or_else(bad)? as i32;
        return Err(std::io::Error::from_raw_os_error(-code));
    }
    if kind != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN {
        return Err(bad());
    }
    let mut attrs = msg.get(4..).ok_or_else(bad)?;
    while attrs.len() >= 4 {
        let alen = u16_at(attrs, 0).ok_or_else(bad)? as usize;
        let akind = u16_at(attrs, 2).ok_or_else(bad)? & 0x3fff;
        if alen < 4 {
            return Err(bad());
        }
        if akind == NFTA_GEN_ID {
            let v = attrs.get(4..8).ok_or_else(bad)?;
            return Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        }
        attrs = attrs.get((alen + 3) & !3..).unwrap_or_default();
    }
    Err(bad())
}

/// `generation_here` in `netns`.
pub fn generation(netns: &str) -> Result<u32, Error> {
    netns::run_in(netns, generation_here)?.map_err(|source| Error::Io {
        what: format!("nftables generation in {netns}"),
        source,
    })
}

/// Run `load` (a transaction of podlab's in the calling thread's namespace
/// `netns`) and remember the generation it made, for `observe`: clean when
/// the kernel was as podlab left it before (or new), dirty when someone
/// else had changed it meanwhile (podlab's load may not have undone that).
pub fn tracked<T, E>(netns: &str, load: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    use crate::state::{record_generation, recorded_generation, Generation};
    let before = generation_here().ok();
    let r = load()?;
    match generation_here() {
        Ok(after) => {
            let clean = match recorded_generation(netns) {
                Generation::Unknown => true,
                Generation::Clean(g) => Some(g) == before,
                Generation::Dirty => false,
            };
            record_generation(netns, clean.then_some(after));
        }
        Err(e) => tracing::debug!(netns, "cannot read the nftables generation: {e}"),
    }
    Ok(r)
}

// ---- reading one chain's rules through netlink ----

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_USERDATA: u16 = 7;
/// libnftnl's user data type of a rule's comment.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;

fn nfproto(f: NfFamily) -> u8 {
    match f {
        NfFamily::INet => 1,
        NfFamily::IP => 2,
        NfFamily::ARP => 3,
        NfFamily::NetDev => 5,
        NfFamily::Bridge => 7,
        NfFamily::IP6 => 10,
    }
}

fn put_attr(buf: &mut Vec<u8>, kind: u16, value: &str) {
    let len = 4 + value.len() + 1;
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value.as_bytes());
    buf.push(0);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

/// The comments of the rules of the probe's chain, in order, as the
/// kernel of the calling thread's namespace has them (none: no such chain).
fn chain_comments(p: &Probe) -> std::io::Result<Vec<Option<String>>> {
    let mut req = vec![0u8; 16];
    req.extend_from_slice(&[nfproto(p.family), 0, 0, 0]);
    put_attr(&mut req, NFTA_RULE_TABLE, &p.table);
    put_attr(&mut req, NFTA_RULE_CHAIN, &p.chain);
    let len = req.len() as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE).to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());

    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind_auto()?;
    sock.send_to(&req, &SocketAddr::new(0, 0), 0)?;
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 17);
    loop {
        buf.clear();
        let n = sock.recv(&mut buf, 0)?;
        if n > buf.len() {
            return Err(std::io::Error::other("netlink reply truncated"));
        }
        if parse_dump(&buf, &mut out)? {
            return Ok(out);
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Read one datagram of a rule dump into `out`; true at its end.
fn parse_dump(buf: &[u8], out: &mut Vec<Option<String>>) -> std::io::Result<bool> {
    let bad = || std::io::Error::other("malformed netlink reply");
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32_at(buf, at).ok_or_else(bad)? as usize;
        let kind = u16_at(buf, at + 4).ok_or_else(bad)?;
        if len < 16 || at + len > buf.len() {
            return Err(bad());
        }
        let msg = &buf[at + 16..at + len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = u32_at(msg, 0).ok_or_else(bad)? as i32;
                if code != 0 {
                    return Err(std::io::Error::from_raw_os_error(-code));
                }
            }
            k if k == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE => {
                out.push(rule_comment(msg.get(4..).ok_or_else(bad)?));
            }
            _ => {}
        }
        at += (len + 3) & !3;
    }
    Ok(false)
}

/// The comment in a rule message's attributes (after its nfgenmsg).
fn rule_comment(mut attrs: &[u8]) -> Option<String> {
    while attrs.len() >= 4 {
        let len = u16_at(attrs, 0)? as usize;
        let kind = u16_at(attrs, 2)? & 0x3fff;
        if len < 4 {
            return None;
        }
        let value = attrs.get(4..len)?;
        if kind == NFTA_RULE_USERDATA {
            let mut ud = value;
            while ud.len() >= 2 {
                let (t, l) = (ud[0], ud[1] as usize);
                let v = ud.get(2..2 + l)?;
                if t == NFTNL_UDATA_RULE_COMMENT {
                    let text = v.split(|b| *b == 0).next().unwrap_or_default();
                    return Some(String::from_utf8_lossy(text).into_owned());
                }
                ud = &ud[2 + l..];
            }
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&[0; 10]);
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn reads_comments_from_a_rule_dump() {
        let rule = |comment: Option<&str>| {
            let mut p = vec![2, 0, 0, 0];
            p.extend(attr(NFTA_RULE_TABLE, b"kube-proxy\0"));
            if let Some(c) = comment {
                let mut ud = vec![NFTNL_UDATA_RULE_COMMENT, (c.len() + 1) as u8];
                ud.extend_from_slice(c.as_bytes());
                ud.push(0);
                p.extend(attr(NFTA_RULE_USERDATA | 0x8000, &ud));
            }
            message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE, &p)
        };
        let mut buf = rule(Some("drop it"));
        buf.extend(rule(None));
        let mut out = Vec::new();
        assert!(!parse_dump(&buf, &mut out).expect("parses"));
        assert_eq!(out, vec![Some("drop it".to_string()), None]);
        assert!(parse_dump(&message(NLMSG_DONE, &[0; 4]), &mut out).expect("done"));
        let err = message(NLMSG_ERROR, &(-2i32).to_ne_bytes());
        assert!(parse_dump(&err, &mut out).is_err());
        // Garbage never panics.
        for cut in 0..buf.len() {
            let _ = parse_dump(&buf[..cut], &mut out);
            let _ = rule_comment(&buf[..cut]);
        }
    }

    /// A namespace of the test's own, removed however the test ends.
    struct Scratch(String);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = netns::remove(&self.0);
        }
    }

    #[test]
    fn reads_a_chain_of_the_kernel() {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "needs root in CI"
            );
            eprintln!("skipping: needs root");
            return;
        }
        let scratch = Scratch(format!("pl-rules-{}", std::process::id()));
        netns::create(&scratch.0).expect("scratch namespace");
        let json = r#"{"nftables": [{"add": {"table": {"family": "ip", "name": "t"}}},
          {"add": {"chain": {"family": "ip", "table": "t", "name": "c"}}},
          {"add": {"chain": {"family": "ip", "table": "t", "name": "d"}}},
          {"add": {"rule": {"family": "ip", "table": "t", "chain": "d", "expr": [{"drop": null}]}}},
          {"add": {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"accept": null}], "comment": "first"}}},
          {"add": {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"drop": null}]}}},
          {"add": {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"drop": null}], "comment": "third, a longer comment"}}}]}"#;
        let probe = |table: &str, chain: &str| Probe {
            family: NfFamily::IP,
            table: table.into(),
            chain: chain.into(),
            comments: Vec::new(),
        };
        let read = |p: Probe| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    netns::run_in(&scratch.0, || {
                        load_here(&scratch.0, json).expect("loads");
                        chain_comments(&p).expect("reads")
                    })
                })
                .join()
                .expect("thread")
                .expect("enters")
            })
        };
        assert_eq!(
            read(probe("t", "c")),
            vec![
                Some("first".to_string()),
                None,
                Some("third, a longer comment".to_string())
            ]
        );
        assert_eq!(read(probe("t", "nope")), Vec::<Option<String>>::new());
        assert_eq!(read(probe("nope", "c")), Vec::<Option<String>>::new());
    }

    #[test]
    fn rulesets_built_in_parallel_are_the_plans() {
        let text = crate::lab::DEMO.replacen("nodes: 2", "nodes: 5", 1);
        let file = crate::lab::parse("t.yaml", &text).expect("parses");
        let plan = crate::plan::build(&file).expect("plans");
        assert_eq!(plan.nodes.len(), 5);
        assert_eq!(
            apply::ruleset_objects(&plan),
            crate::plan::kubeproxy::namespace_rulesets(&plan)
        );
    }

    #[test]
    fn outcomes_read_as_a_report() {
        let r = RuleChanges {
            namespaces: vec![
                NamespaceRules {
                    netns: "l-node-1".into(),
                    outcome: Outcome::Changed(Summary {
                        chains_added: 1,
                        elements_added: 2,
                        rules: 1,
                        ..Summary::default()
                    }),
                },
                NamespaceRules {
                    netns: "l-node-2".into(),
                    outcome: Outcome::Reloaded("chain x changed its hook".into()),
                },
                NamespaceRules {
                    netns: "l-lb".into(),
                    outcome: Outcome::Unchanged,
                },
            ],
        };
        assert_eq!(
            r.to_string(),
            "l-node-1: 3 object(s) changed: 1 chain added, 2 elements added (1 rule)\n\
             l-node-2: reloaded whole: chain x changed its hook\n\
             l-lb: unchanged\n"
        );
        assert!(r.any_reloaded());
        assert_eq!(
            r.one_line(),
            "l-node-1: 3 object(s) changed: 1 chain added, 2 elements added (1 rule); \
             l-node-2: reloaded whole: chain x changed its hook; l-lb: unchanged"
        );
    }

    #[test]
    fn generation_is_read_from_a_newgen_message() {
        let mut payload = vec![0, 0, 0, 0];
        payload.extend(attr(NFTA_GEN_ID, &77u32.to_be_bytes()));
        let msg = message((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN, &payload);
        assert_eq!(parse_generation(&msg).unwrap(), 77);
        let err = message(NLMSG_ERROR, &(-1i32).to_ne_bytes());
        assert!(parse_generation(&err).is_err());
        assert!(parse_generation(&[1, 2]).is_err());
    }

    #[test]
    fn generation_moves_with_every_transaction() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let name = format!("podlab-gen-{}", std::process::id());
        let ns = match crate::kernel::netns::create(&name) {
            Ok(ns) => ns,
            Err(_) => return,
        };
        let read = || {
            netns::run_in(&name, generation_here)
                .expect("enter")
                .expect("read")
        };
        let g0 = read();
        let _ = netns::run_in(&name, || {
            nft_apply(r#"{"nftables":[{"add":{"table":{"family":"ip","name":"t"}}}]}"#)
        });
        let g1 = read();
        drop(ns);
        let _ = crate::kernel::netns::remove(&name);
        assert!(g1 > g0, "{g0} -> {g1}");
    }
}
