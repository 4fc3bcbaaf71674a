//! Break-fix faults: a catalogue of things that go wrong in a cluster's
//! network, each a pure function from a running lab's plan (and lab file)
//! to the steps that break it and the exact steps that undo it.
//!
//! Planning (`plan_fault`, `catalogue`) is pure and unit-tested. `run`
//! executes the steps (kernel steps through `crate::kernel`, plan-level
//! ones through `crate::reconcile`, daemon ones through the lab's daemon)
//! and records what was injected in the lab's state directory
//! (`faults.json`), so that `fault clear` and `exercise reset` work from
//! another process.

mod catalogue;
pub mod run;
pub mod settle;
mod wire;

pub use catalogue::CATALOGUE;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub use crate::kernel::change::Change;

use crate::lab::LabFile;
use crate::plan::{EndpointPlan, Plan};

/// The seed's troubleshooting checklists, which every fault belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Pods,
    Services,
    Dns,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::Pods, Section::Services, Section::Dns];

    /// The heading in the seed (and in `diagnose`).
    pub fn title(self) -> &'static str {
        match self {
            Section::Pods => "Pods can't communicate",
            Section::Services => "Services not accessible",
            Section::Dns => "DNS resolution issues",
        }
    }

    /// The word written in exercise files.
    pub fn key(self) -> &'static str {
        match self {
            Section::Pods => "pods",
            Section::Services => "services",
            Section::Dns => "dns",
        }
    }

    pub fn from_key(s: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|x| x.key() == s)
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// Where a fault acts, which decides how `clear` undoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Links, routes, sysctls, qdiscs, nftables, files: undone by the
    /// exact inverse steps.
    Kernel,
    /// The lab's objects (pods, services, policies): undone by applying the
    /// plan saved at inject time.
    Plan,
    /// The lab's daemon (a pod's servers): undone by asking it to start
    /// what the plan has and is not running.
    Daemon,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Kernel => "kernel",
            Level::Plan => "plan",
            Level::Daemon => "daemon",
        })
    }
}

/// What a fault's TARGET names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Node,
    Pod,
    Service,
    Policy,
    Namespace,
    /// The lab as a whole: no target.
    Lab,
}

impl TargetKind {
    /// How a TARGET of this kind is written.
    pub fn forms(self) -> &'static str {
        match self {
            TargetKind::Node => "NODE or node/NODE",
            TargetKind::Pod => "POD, NS/POD or pod/POD",
            TargetKind::Service => "SERVICE, NS/SERVICE or svc/SERVICE",
            TargetKind::Policy => "POLICY, NS/POLICY or netpol/POLICY",
            TargetKind::Namespace => "NAMESPACE",
            TargetKind::Lab => "nothing (the fault acts on the whole lab)",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Node => "node",
            TargetKind::Pod => "pod",
            TargetKind::Service => "service",
            TargetKind::Policy => "policy",
            TargetKind::Namespace => "namespace",
            TargetKind::Lab => "lab",
        })
    }
}

/// A parameter a fault takes (`--param NAME=VALUE`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Param {
    pub name: &'static str,
    /// The default, in words.
    pub default: &'static str,
    pub help: &'static str,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Entry {
    pub name: &'static str,
    /// What it breaks, in a learner's words.
    pub breaks: &'static str,
    pub section: Section,
    pub level: Level,
    pub target: TargetKind,
    pub params: &'static [Param],
    /// Where a learner sees it.
    pub shows: &'static str,
}

/// Look a fault up by name.
pub fn entry(name: &str) -> Result<&'static Entry, FaultError> {
    CATALOGUE
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| FaultError::UnknownFault {
            name: name.to_string(),
            suggestion: crate::lab::did_you_mean(name, &names()).map(String::from),
        })
}

/// Every fault's name, in catalogue order.
pub fn names() -> Vec<&'static str> {
    CATALOGUE.iter().map(|e| e.name).collect()
}

/// One step of injecting or undoing a fault. Kernel objects and lab files
/// change through the kernel's one vocabulary (`Change`), with, for
/// people, the `podlab exec` target that is (`at`); what is not a kernel
/// object (the lab's rules as a whole, its daemon, its plan) is a step of
/// its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "wire::Step", into = "wire::Step")]
pub enum Step {
    /// A link, route, sysctl, qdisc, nftables script or table, file ...
    Change { at: String, change: Change },
    /// Reload podlab's own rules (kube-proxy, cni, network-policy; the
    /// load balancer's) from the plan on disk and the pods that are ready,
    /// as the daemon's endpoint sync does: in one namespace, or all.
    ReloadRules { netns: Option<String> },
    /// Reload every node's rules with one more endpoint for a service than
    /// the plan has: one that no pod answers on.
    StaleEndpoint {
        service: String,
        endpoint: EndpointPlan,
    },
    /// A command inside a pod, node or client, as `podlab exec` runs it
    /// (custom steps of exercises).
    Exec { at: String, argv: Vec<String> },
    /// Stop a pod's servers and processes; its namespace stays.
    StopPod { namespace: String, name: String },
    /// Ask the daemon to start whatever the plan has that is not running.
    StartPods,
    /// Change the running lab to this plan (and save it as the lab's plan).
    ApplyPlan {
        /// What the plan changes, in words.
        change: String,
        plan: Box<Plan>,
    },
}

impl Step {
    /// `change`, made from inside the `podlab exec` target `at`.
    pub fn at(at: impl Into<String>, change: Change) -> Step {
        Step::Change {
            at: at.into(),
            change,
        }
    }

    /// The step as a learner would do it by hand.
    pub fn command(&self) -> String {
        match self {
            Step::Change { at, change } => format!("podlab exec {at} -- {}", change.command()),
            Step::ReloadRules { netns } => match netns {
                Some(n) => format!("reload podlab's nftables rules in {n} from the lab's plan"),
                None => "reload podlab's nftables rules in every node from the lab's plan".into(),
            },
            Step::StaleEndpoint { service, endpoint } => format!(
                "load every node's kube-proxy rules with a stale endpoint {} for {service}",
                endpoint.ip
            ),
            Step::Exec { at, argv } => format!("podlab exec {at} -- {}", shell_words(argv)),
            Step::StopPod { namespace, name } => {
                format!("stop pod {namespace}/{name}'s servers and processes")
            }
            Step::StartPods => "start every pod of the plan that is not running".into(),
            Step::ApplyPlan { change, .. } => format!("apply the lab with {change}"),
        }
    }
}

/// A command line as a shell would need it typed.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What injecting a fault into a lab does, and how to undo it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    pub fault: String,
    /// The target as resolved (`node-2`, `default/web`), empty for the lab.
    pub target: String,
    /// Every parameter, defaults filled in.
    pub params: BTreeMap<String, String>,
    /// What is broken, in a sentence.
    pub summary: String,
    pub section: Section,
    pub level: Level,
    pub inject: Vec<Step>,
    /// The exact inverse, in the order to run it.
    pub undo: Vec<Step>,
}

/// What planning a fault may look at.
pub struct Context<'a> {
    pub plan: &'a Plan,
    /// The lab file, decoded: plan-level faults change it and plan again.
    pub file: Option<&'a LabFile>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("no fault named `{name}`")]
    UnknownFault {
        name: String,
        suggestion: Option<String>,
    },
    #[error("fault {fault}: {kind} {target} not found in lab {lab}")]
    NoSuchTarget {
        fault: String,
        kind: TargetKind,
        target: String,
        lab: String,
        known: Vec<String>,
    },
    #[error("fault {fault} takes no target (it acts on the whole lab), got `{target}`")]
    NoTargetTaken { fault: String, target: String },
    #[error("fault {fault}: lab {lab} has no {kind} it can act on{why}")]
    NothingToTarget {
        fault: String,
        kind: TargetKind,
        lab: String,
        why: String,
    },
    #[error("fault {fault} has no parameter `{param}`")]
    UnknownParam {
        fault: String,
        param: String,
        known: Vec<String>,
    },
    #[error("fault {fault}: parameter {param}={value}: expected {expected}")]
    BadParam {
        fault: String,
        param: String,
        value: String,
        expected: String,
    },
    #[error("fault {fault} cannot act on {target}: {why}")]
    NotApplicable {
        fault: String,
        target: String,
        why: String,
    },
    #[error("fault {fault} changes the lab's objects, and needs its lab file: {why}")]
    NeedsLabFile { fault: String, why: String },
    #[error("fault {fault}: the changed lab does not plan: {message}")]
    Replan { fault: String, message: String },
}

impl FaultError {
    /// What to do about it, where that is known.
    pub fn hint(&self) -> Option<String> {
        match self {
            FaultError::UnknownFault { suggestion, .. } => Some(match suggestion {
                Some(s) => format!("did you mean `{s}`? `podlab fault list` lists them all"),
                None => "`podlab fault list` lists the faults".into(),
            }),
            FaultError::NoSuchTarget { known, target, .. } => {
                // Compared by bare name (`wbe` and `default/web`), suggested
                // in full.
                let bare_of = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
                let bare: Vec<String> = known.iter().map(|k| bare_of(k)).collect();
                let refs: Vec<&str> = bare.iter().map(String::as_str).collect();
                let suggestion = crate::lab::did_you_mean(&bare_of(target), &refs)
                    .and_then(|m| refs.iter().position(|r| *r == m))
                    .map(|i| known[i].as_str());
                Some(match suggestion {
                    Some(m) => format!("did you mean {m}?"),
                    None if known.is_empty() => "the lab has none".into(),
                    None => format!("one of: {}", known.join(", ")),
                })
            }
            FaultError::NoTargetTaken { .. } => Some("leave TARGET out".into()),
            FaultError::UnknownParam { known, param, .. } => {
                let refs: Vec<&str> = known.iter().map(String::as_str).collect();
                Some(match crate::lab::did_you_mean(param, &refs) {
                    Some(m) => format!("did you mean `{m}`?"),
                    None if known.is_empty() => "this fault takes no parameters".into(),
                    None => format!("its parameters: {}", known.join(", ")),
                })
            }
            FaultError::NeedsLabFile { .. } => Some(
                "run it from the directory `podlab up` was run in, or bring the lab up with an absolute path"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// A small, stable pseudo-random choice: `seed` and `salt` pick one of `n`.
/// SplitMix64, so that a seed means the same choice on every machine.
pub fn pick(seed: u64, salt: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let mut x = seed
        ^ salt.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % n as u64) as usize
}

/// Plan fault `name` on `target` (or, without one, the fault's default
/// target, or one picked by `seed`) with `params` (`NAME=VALUE`).
pub fn plan_fault(
    ctx: &Context,
    name: &str,
    target: Option<&str>,
    params: &BTreeMap<String, String>,
    seed: Option<u64>,
) -> Result<FaultPlan, FaultError> {
    let e = entry(name)?;
    for k in params.keys() {
        if !e.params.iter().any(|p| p.name == k) {
            return Err(FaultError::UnknownParam {
                fault: name.into(),
                param: k.clone(),
                known: e.params.iter().map(|p| p.name.to_string()).collect(),
            });
        }
    }
    catalogue::plan(e, ctx, target, params, seed)
}

/// `NAME=VALUE` strings to a map; the first malformed one is returned.
pub fn parse_params(items: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => return Err(item.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
