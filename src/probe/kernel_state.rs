//! `kernel:` checks: the kernel's state against the plan, read the way
//! `podlab diagnose` reads it (`observe::compare_with`), for one node, one
//! Kubernetes namespace's pods, kube-proxy's table, or the whole lab.
//!
//! A connection can pass through a stand-in (a learner's own route, a
//! server on a Service's address); the kernel's tables cannot: an extra
//! route, a missing rule or a queueing discipline podlab did not make is a
//! finding here, whatever the probes saw.

use std::time::Duration;

use crate::lab::expect::{KernelCheck, KernelScope};
use crate::observe::{self, Finding};
use crate::plan::Plan;

use super::Ctx;

/// How many findings a failed check lists; the rest are counted.
const SHOWN: usize = 4;

pub async fn check(plan: &Plan, _ctx: &Ctx, k: &KernelCheck) -> (bool, String, String) {
    let expected = format!("no difference from the plan for {}", k.text);
    let p = plan.clone();
    let scope = k.scope.clone();
    let found = tokio::task::spawn_blocking(move || findings(&p, &scope)).await;
    let found = match found {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return (false, expected, format!("cannot read the kernel: {e}")),
        Err(e) => return (false, expected, format!("the reading thread failed: {e}")),
    };
    if found.is_empty() {
        return (true, expected, "no difference".into());
    }
    let mut observed = format!(
        "{} difference{}: ",
        found.len(),
        if found.len() == 1 { "" } else { "s" }
    );
    let shown: Vec<String> = found.iter().take(SHOWN).map(|f| f.to_string()).collect();
    observed.push_str(&shown.join("; "));
    if found.len() > SHOWN {
        observed.push_str(&format!(
            "; and {} more (`podlab diagnose`)",
            found.len() - SHOWN
        ));
    }
    (false, expected, observed)
}

/// The findings of the whole-lab comparison that fall in `scope`.
fn findings(plan: &Plan, scope: &KernelScope) -> Result<Vec<Finding>, String> {
    let dir = crate::state::dir_of(&plan.lab);
    let status = crate::runtime::query_status(&dir, Duration::from_secs(2)).ok();
    let all = match scope {
        KernelScope::KubeProxy(_) => observe::compare_rules(plan, status.as_ref()),
        _ => observe::compare_with(plan, status.as_ref()),
    };
    let node_netns = |n: &str| {
        plan.node(n)
            .map(|n| n.netns.clone())
            .ok_or_else(|| format!("no node {n} in the running lab"))
    };
    Ok(match scope {
        KernelScope::Lab => all,
        KernelScope::Node(n) => {
            let netns = node_netns(n)?;
            all.into_iter()
                .filter(|f| f.location().is_some_and(|(ns, _)| ns == netns))
                .collect()
        }
        KernelScope::Namespace(ns) => {
            let pods: Vec<&crate::plan::PodPlan> =
                plan.pods.iter().filter(|p| p.namespace == *ns).collect();
            all.into_iter()
                .filter(|f| match f {
                    Finding::PodDown { pod, .. } | Finding::DnsUnhealthy { pod, .. } => {
                        pod.starts_with(&format!("{ns}/"))
                    }
                    _ => f
                        .location()
                        .is_some_and(|(netns, _)| pods.iter().any(|p| p.netns == netns)),
                })
                .collect()
        }
        KernelScope::KubeProxy(node) => {
            let netns = node.as_deref().map(node_netns).transpose()?;
            all.into_iter()
                .filter(|f| match f {
                    Finding::Rules {
                        netns: n, table, ..
                    } => table.contains("kube-proxy") && netns.as_ref().is_none_or(|w| w == n),
                    _ => false,
                })
                .collect()
        }
    })
}
