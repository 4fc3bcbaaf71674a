//! Keep every node's kube-proxy rules in step with which endpoints are
//! ready, as kube-proxy follows EndpointSlices.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::netns::Netns;
use super::rules::{self, RuleChanges};
use super::{apply, nft, Error};
use crate::plan::Plan;

/// The plan with the endpoints of pods in `not_ready` (keys `ns/name`)
/// taken out of every service but those that publish unready addresses.
pub fn ready_view(plan: &Plan, not_ready: &HashSet<String>) -> Plan {
    let mut p = plan.clone();
    for svc in p.services.iter_mut().filter(|s| !s.publish_not_ready) {
        svc.endpoints
            .retain(|e| !not_ready.contains(&format!("{}/{}", e.namespace, e.pod)));
    }
    p
}

/// Reload every node's (and the load balancer's) rules for the endpoints
/// that are ready, then forget UDP flows to endpoints that went away:
/// conntrack would otherwise keep sending a UDP "connection" to a dead pod.
pub fn sync(plan: &Plan, not_ready: &HashSet<String>, gone: &[Ipv4Addr]) -> Result<(), Error> {
    let view = ready_view(plan, not_ready);
    nft::load_all_planned(&apply::rulesets(&view))?;
    flush_udp(plan, gone);
    Ok(())
}

/// The view of the plan last loaded into the lab's rules, so that the next
/// sync loads only what changed (`rules::sync_rules`) and keeps the
/// NetworkPolicy counters. Whoever loads the daemon's rules goes through one
/// `Loaded`: its lock also keeps two syncs from interleaving.
pub struct Loaded {
    view: Mutex<Option<Plan>>,
}

impl Default for Loaded {
    fn default() -> Self {
        Self::new()
    }
}

impl Loaded {
    /// Nothing loaded yet: the first sync reloads whole.
    pub const fn new() -> Loaded {
        Loaded {
            view: Mutex::new(None),
        }
    }

    /// The rules of `view` are loaded already (by `up`): the next sync
    /// loads only what differs from them.
    pub fn assume(&self, view: &Plan) {
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) = Some(view.clone());
    }

    /// `sync`, loading only what changed since the last successful sync.
    /// The first sync, and the one after a failure, reload whole.
    pub fn sync(
        &self,
        plan: &Plan,
        not_ready: &HashSet<String>,
        gone: &[Ipv4Addr],
    ) -> Result<RuleChanges, Error> {
        let view = ready_view(plan, not_ready);
        let mut last = self.view.lock().unwrap_or_else(|p| p.into_inner());
        // Taken: on failure nothing is known of the kernel any more.
        let r = match last.take() {
            Some(old) => rules::sync_rules(&old, &view),
            None => rules::load_whole(&view, "first load"),
        };
        if r.is_ok() {
            *last = Some(view);
        }
        drop(last);
        flush_udp(plan, gone);
        r
    }

    /// Something else loaded the rules: the next sync reloads whole.
    pub fn forget(&self) {
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Forget UDP flows to `gone` endpoints on every node.
pub fn flush_udp(plan: &Plan, gone: &[Ipv4Addr]) {
    for node in &plan.nodes {
        for ip in gone {
            flush_udp_to(&node.netns, *ip);
        }
    }
}

/// `conntrack -D -p udp --reply-src IP` inside a node, as kube-proxy does
/// for a removed UDP endpoint. Best effort: no entry is the common case.
fn flush_udp_to(netns: &str, ip: Ipv4Addr) {
    let Ok(ns) = Netns::open(netns) else { return };
    std::thread::scope(|s| {
        s.spawn(|| {
            let Ok(_inside) = ns.enter() else { return };
            let run = Command::new("conntrack")
                .args(["-D", "-p", "udp", "--reply-src", &ip.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if let Err(e) = run {
                tracing::warn!(
                    netns,
                    "cannot flush conntrack (is the conntrack package installed?): {e}"
                );
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: pnr}
spec:
  nodes: 1
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: peers}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: web}
  ports: [{port: 80}]
";

    #[test]
    fn unready_pods_leave_all_but_publishing_services() {
        let lab = crate::lab::parse("test", LAB).expect("lab parses");
        let plan = crate::plan::build(&lab).expect("plan builds");
        let first = &plan
            .services
            .iter()
            .find(|s| s.name == "web")
            .unwrap()
            .endpoints[0];
        let not_ready = HashSet::from([format!("{}/{}", first.namespace, first.pod)]);
        let view = ready_view(&plan, &not_ready);
        let count = |name: &str| {
            view.services
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.endpoints.len())
        };
        assert_eq!(count("web"), Some(1));
        assert_eq!(count("peers"), Some(2));
    }
}
