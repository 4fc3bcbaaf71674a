//! A fault's undo is "diff, then repair": after its recorded undo steps
//! ran, the namespaces the fault touched are held against the plan, and
//! whatever still differs is put back the way `apply` would (a learner's
//! change after the injection may have left the exact undo incomplete).
//! What another fault still injected accounts for is left to that fault.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::{Change, FaultPlan, Step};
use crate::kernel::objects::Object;
use crate::observe::{self, Finding};
use crate::plan::Plan;
use crate::{runtime, state};

/// Where a fault acted: what its diff looks at.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// The whole lab (a plan-level fault).
    pub lab: bool,
    pub netns: BTreeSet<String>,
    /// Pods (`ns/name`) whose running the fault changed.
    pub pods: BTreeSet<String>,
}

/// One object a fault changes, to leave alone while it stays injected.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// Anything in the namespace (a custom command's effects are unknown).
    Netns(String),
    Link(String, String),
    Route(String, ipnet::Ipv4Net),
    Sysctl(String, String),
    /// Every nftables table of a namespace; `None`: of every namespace.
    Rules(Option<String>),
    Table(String, String, String),
    File(String),
    Pod(String),
}

/// The namespace a `podlab exec` target names (`-n NS WORD` or a word of
/// the one target grammar), where the plan has it.
fn netns_of_at(plan: &Plan, at: &str) -> Option<String> {
    use crate::target::Found;
    let at = at.trim();
    let (ns, word) = match at.strip_prefix("-n ") {
        Some(rest) => rest.trim().split_once(' ')?,
        None => ("default", at),
    };
    match crate::target::source(plan, word.trim(), ns.trim()).ok()? {
        Found::Pod(p) => Some(p.netns.clone()),
        Found::Node(n) => Some(n.netns.clone()),
        Found::Client(c) => Some(c.netns.clone()),
        Found::Service(_) | Found::LoadBalancer(_) | Found::Address(_) => None,
    }
}

/// The pod whose `/etc/netns` file `path` is.
fn pod_of_file<'a>(plan: &'a Plan, path: &str) -> Option<&'a crate::plan::PodPlan> {
    plan.pods
        .iter()
        .find(|p| std::path::Path::new(path).starts_with(crate::kernel::apply::etc_dir(&p.netns)))
}

fn every_steps(fp: &FaultPlan) -> impl Iterator<Item = &Step> {
    fp.inject.iter().chain(&fp.undo)
}

/// What a fault's diff looks at. Pure.
pub fn scope(plan: &Plan, fp: &FaultPlan) -> Scope {
    let mut s = Scope::default();
    let rule_namespaces = || {
        plan.nodes
            .iter()
            .map(|n| n.netns.clone())
            .chain(plan.clients.iter().map(|c| c.netns.clone()))
    };
    for step in every_steps(fp) {
        match step {
            Step::Change {
                change: Change::File { path, .. },
                ..
            } => {
                if let Some(p) = pod_of_file(plan, path) {
                    s.netns.insert(p.netns.clone());
                }
            }
            Step::Change { change, .. } => {
                s.netns.extend(change.netns().map(String::from));
            }
            Step::ReloadRules { netns: Some(n) } => {
                s.netns.insert(n.clone());
            }
            Step::ReloadRules { netns: None } | Step::StaleEndpoint { .. } => {
                s.netns.extend(rule_namespaces())
            }
            Step::Exec { at, .. } => s.netns.extend(netns_of_at(plan, at)),
            Step::StopPod { namespace, name } => {
                let key = format!("{namespace}/{name}");
                if let Some(p) = plan.pod(namespace, name) {
                    s.netns.insert(p.netns.clone());
                }
                s.pods.insert(key);
            }
            Step::StartPods => {}
            Step::ApplyPlan { .. } => s.lab = true,
        }
    }
    s
}

/// The objects a fault changes. Pure.
pub fn keys(plan: &Plan, fp: &FaultPlan) -> BTreeSet<Key> {
    let mut out = BTreeSet::new();
    for step in every_steps(fp) {
        let key = match step {
            Step::Change { change, .. } => change_key(change),
            Step::ReloadRules { netns } => Some(Key::Rules(netns.clone())),
            Step::StaleEndpoint { .. } => Some(Key::Rules(None)),
            Step::Exec { at, .. } => netns_of_at(plan, at).map(Key::Netns),
            Step::StopPod { namespace, name } => Some(Key::Pod(format!("{namespace}/{name}"))),
            // Plan-level faults are in the plan the diff holds the lab to.
            Step::StartPods | Step::ApplyPlan { .. } => None,
        };
        out.extend(key);
    }
    out
}

fn change_key(c: &Change) -> Option<Key> {
    let ns = c.netns().unwrap_or_default().to_string();
    Some(match c {
        Change::Link { link, .. }
        | Change::DeleteLink { link, .. }
        | Change::Addresses { link, .. }
        | Change::Hairpin { link, .. }
        | Change::Qdisc { link, .. } => Key::Link(ns, link.clone()),
        Change::Route { route, .. } => Key::Route(ns, route.dst),
        Change::Sysctl { key, .. } => Key::Sysctl(ns, key.clone()),
        Change::Nft { .. } => Key::Rules(Some(ns)),
        Change::DropTable { family, table, .. } => Key::Table(ns, family.clone(), table.clone()),
        Change::DeleteRule { .. } | Change::DeleteNeighbour { .. } => Key::Netns(ns),
        Change::File { path, .. } => Key::File(path.clone()),
    })
}

/// Whether `f` is about what `k` names.
fn about(k: &Key, f: &Finding) -> bool {
    let loc = f.location();
    match (k, f) {
        (Key::Netns(n), _) => loc.is_some_and(|(ns, _)| ns == n),
        (Key::Link(n, l), _) => loc == Some((n.as_str(), Some(l.as_str()))),
        (Key::Route(n, dst), Finding::MissingRoute { netns, route }) => {
            netns == n && route.dst == *dst
        }
        (
            Key::Route(n, dst),
            Finding::Extra {
                netns,
                object: Object::Route(r),
            },
        ) => netns == n && r.route().dst == *dst,
        (Key::Sysctl(n, k), Finding::Sysctl { netns, key, .. }) => netns == n && key == k,
        (Key::Rules(n), Finding::Rules { netns, .. }) => n.as_ref().is_none_or(|n| n == netns),
        (
            Key::Table(n, fam, t),
            Finding::Rules {
                netns,
                family,
                table,
                ..
            },
        ) => netns == n && family == fam && table == t,
        (Key::File(p), Finding::File { path, .. }) => path == p,
        (Key::Pod(p), Finding::PodDown { pod, .. } | Finding::DnsUnhealthy { pod, .. }) => pod == p,
        _ => false,
    }
}

/// Whether `f` is in a fault's scope.
fn within(s: &Scope, f: &Finding) -> bool {
    if s.lab {
        return true;
    }
    match (f.location(), f) {
        (Some((ns, _)), _) => s.netns.contains(ns),
        (None, Finding::PodDown { pod, .. } | Finding::DnsUnhealthy { pod, .. }) => {
            s.pods.contains(pod)
        }
        _ => false,
    }
}

/// The findings a cleared fault's diff holds: in its scope, and not about
/// what another fault still injected changes. Pure.
pub fn relevant(findings: Vec<Finding>, s: &Scope, others: &BTreeSet<Key>) -> Vec<Finding> {
    findings
        .into_iter()
        .filter(|f| within(s, f) && !others.iter().any(|k| about(k, f)))
        .collect()
}

/// What the diff after an undo found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Settled {
    /// What the diff repaired after the undo, one line each.
    pub repaired: Vec<String>,
    /// What still differs from the plan afterwards (or could not be
    /// repaired).
    pub differs: Vec<String>,
}

/// How many times the diff is looked at (a fifth of a second apart): the
/// daemon restarts pods and resyncs rules a moment after an undo.
const LOOKS: u32 = 12;
/// From which look on a difference that may be the daemon's lag (a pod
/// coming back, its rules following) is repaired too.
const LAG: u32 = 5;

/// Diff the fault's namespaces against the plan and repair what still
/// differs; `others`: what faults still injected change.
pub fn settle(lab: &str, fp: &FaultPlan, others: &BTreeSet<Key>) -> Settled {
    let mut out = Settled::default();
    let Ok(plan) = state::load(lab) else {
        out.differs
            .push(format!("the plan of lab {lab} cannot be read"));
        return out;
    };
    let s = scope(&plan, fp);
    let mut left = Vec::new();
    for look in 0..LOOKS {
        if look > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        let status = runtime::query_status(&state::dir_of(lab), Duration::from_secs(2)).ok();
        let findings = relevant(observe::compare_with(&plan, status.as_ref()), &s, others);
        if findings.is_empty() {
            out.differs.clear();
            return out;
        }
        // Kernel objects and files do not come back by themselves: put
        // back at once. Pods and rules, only once they stay different.
        let now: Vec<Finding> = findings
            .iter()
            .filter(|f| {
                look == LAG
                    || (look == 0
                        && !matches!(
                            f,
                            Finding::PodDown { .. }
                                | Finding::DnsUnhealthy { .. }
                                | Finding::Rules { .. }
                        ))
            })
            .cloned()
            .collect();
        if !now.is_empty() {
            let r = crate::reconcile::repair_in_place(lab, &plan, &now, status.as_ref());
            out.repaired.extend(r.repaired);
            left = r.failed;
        }
        out.differs = findings.iter().map(ToString::to_string).collect();
    }
    out.differs.extend(left);
    out
}
