//! `podlab apply`: change a running lab to a new plan without tearing it
//! down, and put back what drifted from the plan (a deleted route, a
//! flushed table, a downed link) on the way.
//!
//! The order keeps traffic flowing to what stays: new pods are wired before
//! the daemon serves them and before the rules point at them; removed pods
//! leave the rules (the daemon's resync) before their namespaces go, as
//! Kubernetes takes an endpoint out before it kills the pod.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::kernel::change::{self, Change, RouteOp};
use crate::kernel::objects::Object;
use crate::kernel::{self, apply, nft, services, teardown};
use crate::observe::{self, Finding};
use crate::plan::{Plan, PodPlan, ETH0};
use crate::{runtime, state};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lab {0} is not up")]
    NotUp(String),
    #[error("lab {lab}: {what} cannot change while the lab runs\n  hint: bring it down and up again: podlab down {lab} && podlab up FILE")]
    Incompatible { lab: String, what: String },
    #[error("cannot save the state of lab {lab}: {source}")]
    State {
        lab: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Kernel(#[from] kernel::Error),
    #[error("the lab's daemon: {0}")]
    Daemon(#[from] runtime::Error),
}

/// What changed between two plans of one lab, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub pods_added: Vec<String>,
    pub pods_removed: Vec<String>,
    /// In both, but on another node, address or veth: made anew.
    pub pods_recreated: Vec<String>,
    /// In both, changed in what runs in them or in their labels.
    pub pods_changed: Vec<String>,
    pub services_added: Vec<String>,
    pub services_removed: Vec<String>,
    pub services_changed: Vec<String>,
    pub policies_added: Vec<String>,
    pub policies_removed: Vec<String>,
    pub policies_changed: Vec<String>,
    pub dns_changed: bool,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        *self == Diff::default()
    }
}

/// Whether a pod must be made anew: its namespace, veth or address differ.
fn rewired(a: &PodPlan, b: &PodPlan) -> bool {
    a.netns != b.netns
        || a.node != b.node
        || a.ip != b.ip
        || a.prefix != b.prefix
        || a.gateway != b.gateway
        || a.host_veth != b.host_veth
}

fn keyed_diff<'a, T: PartialEq + 'a>(
    old: impl Iterator<Item = (String, &'a T)>,
    new: impl Iterator<Item = (String, &'a T)>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let old: std::collections::BTreeMap<String, &T> = old.collect();
    let new: std::collections::BTreeMap<String, &T> = new.collect();
    let added = new
        .keys()
        .filter(|k| !old.contains_key(*k))
        .cloned()
        .collect();
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k.clone())
        .collect();
    (added, removed, changed)
}

/// What `desired` changes in `current`. Pure.
pub fn diff(current: &Plan, desired: &Plan) -> Diff {
    let mut d = Diff::default();
    let index = |plan: &Plan| -> std::collections::HashMap<String, usize> {
        plan.pods
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key(), i))
            .collect()
    };
    let (old_pods, new_pods) = (index(current), index(desired));
    for p in &desired.pods {
        match old_pods.get(&p.key()).map(|&i| &current.pods[i]) {
            None => d.pods_added.push(p.key()),
            Some(old) if rewired(old, p) => d.pods_recreated.push(p.key()),
            Some(old) if old != p => d.pods_changed.push(p.key()),
            Some(_) => {}
        }
    }
    for p in &current.pods {
        if !new_pods.contains_key(&p.key()) {
            d.pods_removed.push(p.key());
        }
    }
    (d.services_added, d.services_removed, d.services_changed) = keyed_diff(
        current.services.iter().map(|s| (s.key(), s)),
        desired.services.iter().map(|s| (s.key(), s)),
    );
    (d.policies_added, d.policies_removed, d.policies_changed) = keyed_diff(
        current.policies.iter().map(|p| (p.key(), p)),
        desired.policies.iter().map(|p| (p.key(), p)),
    );
    d.dns_changed = current.dns_upstream != desired.dns_upstream;
    for v in [
        &mut d.pods_added,
        &mut d.pods_removed,
        &mut d.pods_recreated,
        &mut d.pods_changed,
    ] {
        v.sort();
    }
    d
}

/// What a running lab cannot change: its network, its nodes, its name.
/// `None` when `desired` can be applied. Pure.
pub fn incompatible(current: &Plan, desired: &Plan) -> Option<String> {
    if current.lab != desired.lab {
        return Some(format!(
            "the lab's name (running: {}, file: {})",
            current.lab, desired.lab
        ));
    }
    let nodes = |p: &Plan| -> Vec<(String, String, String)> {
        p.nodes
            .iter()
            .map(|n| (n.name.clone(), n.ip.to_string(), n.pod_cidr.to_string()))
            .collect()
    };
    if nodes(current) != nodes(desired) {
        return Some("the nodes (their number, names or addresses)".into());
    }
    let checks: [(&str, bool); 5] = [
        ("spec.network.nodeCIDR", current.net != desired.net),
        (
            "spec.network.serviceCIDR",
            current.service_cidr != desired.service_cidr,
        ),
        ("spec.network.dnsIP", current.dns_ip != desired.dns_ip),
        (
            "spec.network.clusterDomain",
            current.cluster_domain != desired.cluster_domain,
        ),
        ("spec.network.mtu", current.mtu != desired.mtu),
    ];
    checks
        .iter()
        .find(|(_, differs)| *differs)
        .map(|(what, _)| what.to_string())
}

/// What putting one finding back takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// One change to a kernel object or a file.
    Change(Change),
    /// The pod (`ns/name`) made anew: its namespace or veth is broken
    /// beyond a change.
    Recreate(String),
    /// The pod's `/etc/netns` files written again.
    Files(String),
    /// The pod's servers and processes started again by the daemon.
    Restart(String),
    /// The namespace's podlab rules loaded again whole.
    Reload(String),
    /// Cannot be put back without `down` and `up`: the finding, in words.
    Cannot(String),
}

/// The repair of one finding against `plan`, from its typed objects: no
/// text observe wrote is read back. Pure.
pub fn repair_for(plan: &Plan, f: &Finding) -> Repair {
    let change = Repair::Change;
    match f {
        Finding::MissingNamespace { netns } | Finding::Unreadable { netns, .. } => {
            match pod_of_netns(plan, netns) {
                Some(p) => Repair::Recreate(p.key()),
                None => Repair::Cannot(f.to_string()),
            }
        }
        Finding::MissingLink { netns, link }
        | Finding::NotOnBridge { netns, link, .. }
        | Finding::WrongKind { netns, link, .. } => {
            match pod_of_netns(plan, netns).or_else(|| pod_of_veth(plan, netns, link)) {
                Some(p) => Repair::Recreate(p.key()),
                None => Repair::Cannot(f.to_string()),
            }
        }
        Finding::LinkDown { netns, link } => change(Change::Link {
            netns: netns.clone(),
            link: link.clone(),
            up: Some(true),
            mtu: None,
        }),
        Finding::WrongMtu {
            netns, link, want, ..
        } => change(Change::Link {
            netns: netns.clone(),
            link: link.clone(),
            up: None,
            mtu: Some(*want),
        }),
        Finding::WrongAddress { netns, link, .. } => match wanted_addresses(plan, netns, link) {
            Some(want) => change(Change::Addresses {
                netns: netns.clone(),
                link: link.clone(),
                want,
            }),
            None => Repair::Cannot(f.to_string()),
        },
        // Back to exactly the plan's addresses: none on a link the plan
        // gives none, 127.0.0.1/8 on `lo`.
        Finding::ExtraAddress { netns, link, .. } => change(Change::Addresses {
            netns: netns.clone(),
            link: link.clone(),
            want: wanted_addresses(plan, netns, link).unwrap_or_else(|| {
                if link == "lo" {
                    vec![Ipv4Net::new(Ipv4Addr::LOCALHOST, 8).unwrap_or_default()]
                } else {
                    Vec::new()
                }
            }),
        }),
        Finding::MissingRoute { netns, route } => change(Change::Route {
            netns: netns.clone(),
            op: RouteOp::Replace,
            route: route.clone(),
        }),
        Finding::Sysctl {
            netns, key, want, ..
        } => change(Change::Sysctl {
            netns: netns.clone(),
            key: key.clone(),
            value: want.clone(),
        }),
        Finding::Qdisc { netns, link, .. } => change(Change::Qdisc {
            netns: netns.clone(),
            link: link.clone(),
            spec: None,
        }),
        Finding::ExtraLink { netns, link } => change(Change::DeleteLink {
            netns: netns.clone(),
            link: link.clone(),
        }),
        Finding::HairpinOff { netns, link } => change(Change::Hairpin {
            netns: netns.clone(),
            link: link.clone(),
            on: true,
        }),
        Finding::Extra { netns, object } => change(match object {
            Object::Route(r) => Change::Route {
                netns: netns.clone(),
                op: RouteOp::Del,
                route: r.route(),
            },
            Object::Rule(r) => Change::DeleteRule {
                netns: netns.clone(),
                rule: r.clone(),
            },
            Object::Neighbour(n) => Change::DeleteNeighbour {
                netns: netns.clone(),
                neighbour: n.clone(),
            },
        }),
        // A table the lab did not make is deleted whole: in a lab's node,
        // a foreign table is someone's drop.
        Finding::Rules {
            netns,
            family,
            table,
            differences,
        } if differences
            .iter()
            .any(|d| d == observe::rules::FOREIGN_TABLE) =>
        {
            change(Change::DropTable {
                netns: netns.clone(),
                family: family.clone(),
                table: table.clone(),
            })
        }
        Finding::Rules { netns, .. } => Repair::Reload(netns.clone()),
        Finding::File { netns, .. } => match pod_of_netns(plan, netns) {
            Some(p) => Repair::Files(p.key()),
            None => Repair::Cannot(f.to_string()),
        },
        Finding::PodDown { pod, .. } | Finding::DnsUnhealthy { pod, .. } => {
            Repair::Restart(pod.clone())
        }
    }
}

/// How drift found by `observe` is put back.
#[derive(Debug, Default)]
struct Repairs {
    changes: Vec<Change>,
    /// Pods (`ns/name`) whose namespace or veth is broken beyond a change:
    /// made anew.
    recreate: BTreeSet<String>,
    /// Pods whose `/etc/netns` files are rewritten.
    files: BTreeSet<String>,
    /// Pods the daemon must start again.
    restart: BTreeSet<String>,
    /// Namespaces whose podlab rules are reloaded whole.
    reload: BTreeSet<String>,
    /// What cannot be put back without `down` and `up`.
    cannot: Vec<String>,
}

fn pod_of_netns<'a>(plan: &'a Plan, netns: &str) -> Option<&'a PodPlan> {
    plan.pods.iter().find(|p| p.netns == netns)
}

fn pod_of_veth<'a>(plan: &'a Plan, netns: &str, link: &str) -> Option<&'a PodPlan> {
    let node = plan.nodes.iter().find(|n| n.netns == netns)?;
    plan.pods
        .iter()
        .find(|p| p.node == node.name && p.host_veth == link)
}

/// The addresses a link should have, from the desired state; `None` for
/// a link it gives none.
fn wanted_addresses(plan: &Plan, netns: &str, link: &str) -> Option<Vec<Ipv4Net>> {
    let want: Vec<Ipv4Net> = crate::plan::desired::namespace(plan, netns, "")?
        .addresses_of(link)
        .collect();
    (!want.is_empty()).then_some(want)
}

/// Within a namespace: what the lab did not make goes first (a blackhole
/// route in the way of a planned one is deleted before the planned one is
/// put back), then links up and MTUs, then addresses, then routes (a route
/// needs its gateway's subnet on an up link), then the rest.
fn rank(c: &Change) -> u8 {
    match c {
        Change::DeleteLink { .. }
        | Change::DeleteRule { .. }
        | Change::DeleteNeighbour { .. }
        | Change::DropTable { .. }
        | Change::Route {
            op: RouteOp::Del, ..
        } => 0,
        Change::Link { .. } => 1,
        Change::Addresses { .. } => 2,
        Change::Route { .. } => 3,
        _ => 4,
    }
}

/// The node of each pod made, and the pods already beside it, forget
/// what they learnt for its address: it may be another MAC's (a pod that
/// had the address before).
fn forget_old_macs(plan: &Plan, made: &[&PodPlan]) {
    let made_keys: BTreeSet<String> = made.iter().map(|p| p.key()).collect();
    for n in &plan.nodes {
        let ips: Vec<std::net::Ipv4Addr> = made
            .iter()
            .filter(|p| p.node == n.name)
            .map(|p| p.ip)
            .collect();
        if ips.is_empty() {
            continue;
        }
        let beside = plan
            .pods
            .iter()
            .filter(|p| p.node == n.name && !made_keys.contains(&p.key()))
            .map(|p| &p.netns);
        for netns in std::iter::once(&n.netns).chain(beside) {
            if let Err(e) = crate::kernel::route::forget_neighbours(netns, &ips) {
                tracing::warn!("{netns}: {}", crate::error_chain(&e));
            }
        }
    }
}

/// Decide the repairs for `findings` against `plan`. Pure.
fn repairs(plan: &Plan, findings: &[Finding]) -> Repairs {
    let mut r = Repairs::default();
    for f in findings {
        match repair_for(plan, f) {
            Repair::Change(c) => r.changes.push(c),
            Repair::Recreate(p) => {
                r.recreate.insert(p);
            }
            Repair::Files(p) => {
                r.files.insert(p);
            }
            Repair::Restart(p) => {
                r.restart.insert(p);
            }
            Repair::Reload(ns) => {
                r.reload.insert(ns);
            }
            Repair::Cannot(what) => r.cannot.push(what),
        }
    }
    // A link with a wrong and an extra address needs one change.
    let mut seen = BTreeSet::new();
    r.changes.retain(|c| seen.insert(c.to_string()));
    r.changes.sort_by_key(rank);
    r
}

/// Carry `changes` out; each one's line for the report, repaired or not.
/// An effect already there (a route added meanwhile, an object gone)
/// counts as repaired.
fn run_changes(changes: &[Change]) -> (Vec<String>, Vec<String>) {
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for (c, r) in change::run(changes) {
        match r {
            Err(e) if !c.already_done(&e) => {
                failed.push(format!("{c}: {}", crate::error_chain(&e)))
            }
            _ => ok.push(c.to_string()),
        }
    }
    (ok, failed)
}

/// What `apply` did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub diff: Diff,
    /// Drift put back, one line each.
    pub repaired: Vec<String>,
    /// Drift that could not be put back.
    pub failed: Vec<String>,
    /// Namespaces whose nftables rules were reloaded whole.
    pub rules_reloaded: Vec<String>,
    pub daemon: Option<runtime::Reconciled>,
    pub elapsed_ms: u64,
}

impl Report {
    pub fn changed_nothing(&self) -> bool {
        self.diff.is_empty() && self.repaired.is_empty() && self.rules_reloaded.is_empty()
    }
}

const DAEMON_TIMEOUT: Duration = Duration::from_secs(30);

/// Make the running lab `desired`'s: see the module's comment for the
/// order. The plan is saved before the daemon is told, so that the daemon
/// and every later command read the new one.
pub fn apply(lab: &str, desired: &Plan) -> Result<Report, Error> {
    let started = Instant::now();
    let current = state::load(lab).map_err(|_| Error::NotUp(lab.into()))?;
    if let Some(what) = incompatible(&current, desired) {
        return Err(Error::Incompatible {
            lab: lab.into(),
            what,
        });
    }
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "apply: before loaded"
    );
    let mut report = Report {
        diff: diff(&current, desired),
        ..Report::default()
    };
    let dir = state::dir_of(lab);
    let status = runtime::query_status(&dir, Duration::from_secs(5)).ok();

    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "apply: before status"
    );
    // Drift of what stays, read before anything changes.
    let leaving: HashSet<&str> = report
        .diff
        .pods_removed
        .iter()
        .chain(&report.diff.pods_recreated)
        .map(String::as_str)
        .collect();
    let findings: Vec<Finding> = observe::compare_with(&current, status.as_ref())
        .into_iter()
        .filter(|f| match f {
            Finding::PodDown { pod, .. } => !leaving.contains(pod.as_str()),
            other => current
                .pods
                .iter()
                .filter(|p| leaving.contains(p.key().as_str()))
                .all(|p| !finding_is_about(&current, other, p)),
        })
        .collect();
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "apply: before observed"
    );
    let any_rules_drift = findings.iter().any(|f| matches!(f, Finding::Rules { .. }));
    // A foreign table is deleted, not reloaded: said when it is.
    let rules_drift: Vec<String> = findings
        .iter()
        .filter(|f| match f {
            Finding::Rules { differences, .. } => !differences
                .iter()
                .all(|d| d == observe::rules::FOREIGN_TABLE),
            _ => false,
        })
        .map(|f| format!("{f}: reloaded"))
        .collect();
    // Rules are compared again once the daemon has resynced.
    let not_rules: Vec<Finding> = findings
        .iter()
        .filter(|f| !matches!(f, Finding::Rules { .. }))
        .cloned()
        .collect();
    let mut fix = repairs(desired, &not_rules);
    report.failed.extend(fix.cannot.iter().cloned());

    // Pods made anew: the ones the plan moved, and the ones broken beyond
    // a fix. Their veths go first (with their peers), then their
    // namespaces, so that the names are free again.
    let mut recreate: BTreeSet<String> = report.diff.pods_recreated.iter().cloned().collect();
    recreate.extend(fix.recreate.iter().cloned());
    let old_of = |key: &str| current.pods.iter().find(|p| p.key() == key);
    let remove_pods = |pods: &[&PodPlan]| -> Vec<String> {
        let veths: Vec<Change> = pods
            .iter()
            .filter_map(|p| {
                current.node(&p.node).map(|n| Change::DeleteLink {
                    netns: n.netns.clone(),
                    link: p.host_veth.clone(),
                })
            })
            .collect();
        let (_, mut errors) = run_changes(&veths);
        let names: Vec<String> = pods.iter().map(|p| p.netns.clone()).collect();
        errors.extend(
            teardown::remove_namespaces(&names)
                .iter()
                .map(|e| crate::error_chain(e)),
        );
        errors
    };
    let old_recreated: Vec<&PodPlan> = recreate.iter().filter_map(|k| old_of(k)).collect();
    report.failed.extend(remove_pods(&old_recreated));

    let new_pods: Vec<&PodPlan> = desired
        .pods
        .iter()
        .filter(|p| {
            let k = p.key();
            recreate.contains(&k) || report.diff.pods_added.contains(&k)
        })
        .collect();
    apply::add_pods(desired, &new_pods)?;
    forget_old_macs(desired, &new_pods);
    for k in &fix.recreate {
        report
            .repaired
            .push(format!("pod {k} made anew (namespace or veth was broken)"));
    }

    // Links, MTUs, addresses (the load balancer's follow the services),
    // routes, sysctls.
    if let Some(lb) = desired.clients.iter().find(|c| c.name == "lb") {
        let ips = |p: &Plan| -> BTreeSet<std::net::Ipv4Addr> {
            p.services
                .iter()
                .filter_map(|s| s.load_balancer_ip)
                .collect()
        };
        let already = fix
            .changes
            .iter()
            .any(|c| matches!(c, Change::Addresses { netns, .. } if *netns == lb.netns));
        if ips(&current) != ips(desired) && !already {
            if let Some(want) = wanted_addresses(desired, &lb.netns, ETH0) {
                fix.changes.push(Change::Addresses {
                    netns: lb.netns.clone(),
                    link: ETH0.into(),
                    want,
                });
            }
        }
    }
    let (ok, failed) = run_changes(&fix.changes);
    report.repaired.extend(ok);
    report.failed.extend(failed);
    if !fix.changes.is_empty() {
        // What was unreachable while broken is cached as FAILED on the
        // nodes; forgotten, the next packet resolves it anew.
        for n in &desired.nodes {
            if let Err(e) = crate::kernel::route::forget_failed_neighbours(&n.netns) {
                tracing::warn!("{}: {}", n.netns, crate::error_chain(&e));
            }
        }
    }

    // Files: those that drifted, and those of pods whose plan changed.
    let rewrite: BTreeSet<&String> = fix
        .files
        .iter()
        .chain(&report.diff.pods_changed)
        .filter(|k| !recreate.contains(*k))
        .collect();
    for p in desired.pods.iter().filter(|p| rewrite.contains(&p.key())) {
        apply::write_pod_files(desired, p)?;
        if fix.files.contains(&p.key()) {
            report.repaired.push(format!(
                "pod {}: /etc/hosts and resolv.conf rewritten",
                p.key()
            ));
        }
    }

    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "apply: before kernel changes"
    );
    // The new plan, then the daemon: it serves new pods, stops removed
    // ones, restarts the recreated and stopped ones, and resyncs DNS and
    // the rules for the pods that are ready.
    let json = serde_json::to_vec_pretty(desired).map_err(|e| Error::State {
        lab: lab.into(),
        source: std::io::Error::other(e),
    })?;
    state::write_atomic(&state::plan_path_of(lab), &json).map_err(|source| Error::State {
        lab: lab.into(),
        source,
    })?;
    let mut restart: BTreeSet<String> = recreate.clone();
    restart.extend(fix.restart.iter().cloned());
    let restart: Vec<String> = restart.into_iter().collect();
    match runtime::reconcile(&dir, &restart, DAEMON_TIMEOUT) {
        Ok(done) => {
            for k in fix.restart.iter().filter(|k| done.restarted.contains(*k)) {
                report.repaired.push(format!(
                    "pod {k} was down: its servers and processes restarted"
                ));
            }
            report.daemon = Some(done);
        }
        Err(runtime::Error::NotRunning { .. }) => {
            report.failed.push(
                "the lab's daemon is not running: no pod is served (podlab down, then up)".into(),
            );
            services::sync(desired, &HashSet::new(), &[])?;
        }
        Err(e) => return Err(e.into()),
    }

    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "apply: before daemon reconciled"
    );
    // Removed pods: out of the rules now, so their namespaces can go.
    let removed: Vec<&PodPlan> = report
        .diff
        .pods_removed
        .iter()
        .filter_map(|k| old_of(k))
        .collect();
    report.failed.extend(remove_pods(&removed));
    let gone: Vec<std::net::Ipv4Addr> =
        removed.iter().chain(&old_recreated).map(|p| p.ip).collect();
    services::flush_udp(desired, &gone);

    // Rules changed by hand may survive the daemon's resync, which loads
    // only what the plan changed: those namespaces are checked again and
    // reloaded whole if they still differ. Without a daemon, every one.
    let status = runtime::query_status(&dir, Duration::from_secs(5)).ok();
    let mut rule_findings = if !any_rules_drift && report.daemon.is_some() {
        Vec::new()
    } else {
        observe::compare_rules(desired, status.as_ref())
    };
    // A foreign table where podlab loads none (a pod's namespace) is not
    // listed again by `compare_rules`, and no resync touches it.
    for f in &findings {
        let foreign = matches!(f, Finding::Rules { differences, .. }
            if differences.iter().all(|d| d == observe::rules::FOREIGN_TABLE));
        if foreign && !rule_findings.contains(f) {
            rule_findings.push(f.clone());
        }
    }
    let (done, reloaded) = repair_rules(desired, &rule_findings, status.as_ref())?;
    report.repaired.extend(done.repaired);
    report.failed.extend(done.failed);
    report.rules_reloaded = reloaded;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "apply: before rules checked"
    );
    report.repaired.extend(rules_drift.iter().cloned());
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// What repairing drift in place did, one line each.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Repaired {
    pub repaired: Vec<String>,
    pub failed: Vec<String>,
}

/// Put back in place what `findings` say differs from `plan`, without
/// changing the plan: kernel objects by the kernel's changes, pod files
/// rewritten, stopped pods started by the daemon, rules reloaded. What
/// needs a pod made anew is left to `apply` (said so). What `fault clear`
/// does after a fault's undo.
pub fn repair_in_place(
    lab: &str,
    plan: &Plan,
    findings: &[Finding],
    status: Option<&runtime::DaemonStatus>,
) -> Repaired {
    let mut out = Repaired::default();
    let r = repairs(plan, findings);
    out.failed.extend(r.cannot);
    for k in &r.recreate {
        out.failed.push(format!(
            "pod {k} needs to be made anew: sudo podlab apply --lab {lab}"
        ));
    }
    let (ok, failed) = run_changes(&r.changes);
    out.repaired.extend(ok);
    out.failed.extend(failed);
    if !r.changes.is_empty() {
        for n in &plan.nodes {
            if let Err(e) = crate::kernel::route::forget_failed_neighbours(&n.netns) {
                tracing::warn!("{}: {}", n.netns, crate::error_chain(&e));
            }
        }
    }
    for p in plan.pods.iter().filter(|p| r.files.contains(&p.key())) {
        match apply::write_pod_files(plan, p) {
            Ok(()) => out.repaired.push(format!(
                "pod {}: /etc/hosts and resolv.conf rewritten",
                p.key()
            )),
            Err(e) => out
                .failed
                .push(format!("pod {}: {}", p.key(), crate::error_chain(&e))),
        }
    }
    if !r.restart.is_empty() {
        let restart: Vec<String> = r.restart.iter().cloned().collect();
        match runtime::reconcile(&state::dir_of(lab), &restart, DAEMON_TIMEOUT) {
            Ok(done) => out.repaired.extend(
                restart
                    .iter()
                    .filter(|k| done.restarted.contains(*k))
                    .map(|k| format!("pod {k} was down: its servers and processes restarted")),
            ),
            Err(e) => out.failed.push(format!(
                "restart {}: {}",
                restart.join(", "),
                crate::error_chain(&e)
            )),
        }
    }
    let rules: Vec<Finding> = findings
        .iter()
        .filter(|f| matches!(f, Finding::Rules { .. }))
        .cloned()
        .collect();
    match repair_rules(plan, &rules, status) {
        Ok((done, reloaded)) => {
            out.repaired.extend(done.repaired);
            out.failed.extend(done.failed);
            out.repaired.extend(
                reloaded
                    .iter()
                    .map(|n| format!("{n}: nftables rules reloaded (they differed from the plan)")),
            );
        }
        Err(e) => out.failed.push(crate::error_chain(&e)),
    }
    out
}

/// Put rules back from `findings`: tables the lab did not make deleted,
/// podlab's own reloaded whole in the namespaces where they differ (for
/// the pods that are ready). Returns what was repaired, what failed, and
/// the namespaces reloaded.
fn repair_rules(
    plan: &Plan,
    findings: &[Finding],
    status: Option<&runtime::DaemonStatus>,
) -> Result<(Repaired, Vec<String>), Error> {
    let mut drops = Vec::new();
    let mut drifted: BTreeSet<String> = BTreeSet::new();
    for f in findings
        .iter()
        .filter(|f| matches!(f, Finding::Rules { .. }))
    {
        match repair_for(plan, f) {
            Repair::Change(c) => drops.push(c),
            Repair::Reload(ns) => {
                drifted.insert(ns);
            }
            _ => {}
        }
    }
    let (repaired, failed) = run_changes(&drops);
    let done = Repaired { repaired, failed };
    if !drifted.is_empty() {
        let view = services::ready_view(plan, &observe::not_ready(plan, status));
        let sets: Vec<(String, String)> = apply::rulesets(&view)
            .into_iter()
            .filter(|(n, _)| drifted.contains(n))
            .collect();
        nft::load_all_planned(&sets)?;
    }
    Ok((done, drifted.into_iter().collect()))
}

/// Whether a finding is about a pod's own objects (its namespace, its veth
/// on the node): those of a pod being removed or made anew are moot.
fn finding_is_about(plan: &Plan, f: &Finding, p: &PodPlan) -> bool {
    match f.location() {
        Some((netns, _)) if netns == p.netns => true,
        Some((netns, Some(link))) => {
            link == p.host_veth && plan.node(&p.node).is_some_and(|n| n.netns == netns)
        }
        _ => false,
    }
}

/// The report in words, one line per change, for `apply` to print.
pub fn describe(r: &Report) -> String {
    let mut out = String::new();
    let d = &r.diff;
    let mut line = |verb: &str, what: &str, names: &[String]| {
        for n in names {
            let _ = writeln!(out, "{what} {n} {verb}");
        }
    };
    line("created", "pod", &d.pods_added);
    line("made anew (moved or readdressed)", "pod", &d.pods_recreated);
    line("changed", "pod", &d.pods_changed);
    line("deleted", "pod", &d.pods_removed);
    line("created", "service", &d.services_added);
    line("changed", "service", &d.services_changed);
    line("deleted", "service", &d.services_removed);
    line("created", "networkpolicy", &d.policies_added);
    line("changed", "networkpolicy", &d.policies_changed);
    line("deleted", "networkpolicy", &d.policies_removed);
    if d.dns_changed {
        let _ = writeln!(out, "cluster DNS upstream changed");
    }
    for x in &r.repaired {
        let _ = writeln!(out, "repaired: {x}");
    }
    for n in &r.rules_reloaded {
        let _ = writeln!(
            out,
            "repaired: {n}: nftables rules reloaded (they differed from the plan)"
        );
    }
    for x in &r.failed {
        let _ = writeln!(out, "NOT repaired: {x}");
    }
    out
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
