//! Whose genuine server must answer a probe, and whether it did.
//!
//! "Connected to pod-2" means pod-2's own echo answered, proved by its
//! signature over the probe's challenge (`identity`); "connected to
//! svc/web" means one of web's ready endpoints did, and for a Service the
//! check goes on until every ready endpoint has answered (`every`), so a
//! rule that sends some connections elsewhere fails every run.

use std::collections::{BTreeSet, HashSet};

use crate::lab::expect::{service_of_dns, Target};
use crate::lab::Protocol;
use crate::plan::{Plan, PodPlan, PodRole, ServicePlan};

use super::identity::{Identity, Kind};
use super::net::Server;

/// The pods one of which must have answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genuine {
    /// How messages name the destination: `pod web-1`, `svc/default/web`.
    pub what: String,
    /// Whose server must answer, in words: `pod web-1's server`, `a pod
    /// of svc/default/web`.
    pub whose: String,
    /// `namespace/name` of each pod whose server may answer.
    pub pods: Vec<String>,
    /// Whether every one of `pods` must answer (a Service that balances).
    pub every: bool,
}

/// Whether podlab's echo answers on this port of the pod: not a process's
/// port, not the DNS responder's.
fn echo_serves(plan: &Plan, pod: &PodPlan, port: u16, protocol: Protocol) -> bool {
    if pod.role != PodRole::Echo {
        return false;
    }
    crate::runtime::wanted_ports(plan)
        .into_iter()
        .find(|w| w.key == pod.key())
        .is_some_and(|w| w.ports.contains(&(port, protocol)))
}

fn pod_named<'p>(plan: &'p Plan, namespace: &str, name: &str) -> Option<&'p PodPlan> {
    plan.pod(namespace, name).or_else(|| {
        plan.pods
            .iter()
            .find(|p| p.namespace == namespace && p.owner.as_deref() == Some(name))
    })
}

/// `None`: the answer cannot be told genuine (not podlab's echo on that
/// port, or a target that is not a pod or a Service): the check stays a
/// plain connection, as before.
pub fn expected(
    plan: &Plan,
    target: &Target,
    search_ns: &str,
    port: u16,
    protocol: Protocol,
    not_ready: &HashSet<String>,
) -> Option<Genuine> {
    let pod_genuine = |p: &PodPlan| {
        echo_serves(plan, p, port, protocol).then(|| Genuine {
            what: format!("pod {}", short(&p.key())),
            whose: format!("pod {}'s server", short(&p.key())),
            pods: vec![p.key()],
            every: false,
        })
    };
    let service = |ns: &str, name: &str, lb: bool| {
        let s = plan
            .services
            .iter()
            .find(|s| s.namespace == ns && s.name == name)?;
        service_genuine(plan, s, port, protocol, not_ready, lb)
    };
    match target {
        Target::Ip(ip) => {
            if let Some(p) = plan.pods.iter().find(|p| p.ip == *ip) {
                return pod_genuine(p);
            }
            let s = plan
                .services
                .iter()
                .find(|s| s.cluster_ip == Some(*ip) || s.load_balancer_ip == Some(*ip))?;
            let lb = s.load_balancer_ip == Some(*ip);
            service_genuine(plan, s, port, protocol, not_ready, lb)
        }
        Target::Pod { namespace, name } => pod_genuine(pod_named(plan, namespace, name)?),
        Target::Name(name) => match pod_named(plan, "default", name) {
            Some(p) => pod_genuine(p),
            None => service(search_ns, name, false),
        },
        Target::Service { namespace, name } => service(namespace, name, false),
        Target::LoadBalancer { namespace, name } => service(namespace, name, true),
        Target::Dns(n) => {
            let (name, ns) = service_of_dns(n, &plan.cluster_domain)?;
            service(ns, name, false)
        }
        Target::Node(_) | Target::External | Target::Lb => None,
    }
}

fn service_genuine(
    plan: &Plan,
    s: &ServicePlan,
    port: u16,
    protocol: Protocol,
    not_ready: &HashSet<String>,
    lb: bool,
) -> Option<Genuine> {
    let at = s
        .ports
        .iter()
        .position(|p| p.port == port && p.protocol == protocol)?;
    let mut pods = Vec::new();
    for e in &s.endpoints {
        let key = format!("{}/{}", e.namespace, e.pod);
        if not_ready.contains(&key) {
            continue;
        }
        let target_port = e.ports.get(at).copied().flatten()?;
        let pod = plan.pod(&e.namespace, &e.pod)?;
        // One endpoint the echo does not serve (a process's port) and no
        // answer can be told genuine.
        if !echo_serves(plan, pod, target_port, protocol) {
            return None;
        }
        pods.push(key);
    }
    if pods.is_empty() {
        return None;
    }
    Some(Genuine {
        what: format!("svc/{}", s.key()),
        whose: format!("a pod of svc/{}", s.key()),
        pods,
        // Affinity keeps one client on one endpoint, and a Local traffic
        // policy leaves the source only the endpoints of its node: neither
        // reaches every endpoint, and neither should.
        every: s.affinity_timeout.is_none() && !s.internal_local && !(lb && s.external_local),
    })
}

fn short(key: &str) -> &str {
    key.strip_prefix("default/").unwrap_or(key)
}

/// Which of the genuine pods answered; `Err` says how the answer falls
/// short, for the check's message.
pub fn verify(
    id: &Result<Identity, String>,
    g: &Genuine,
    server: Option<&Server>,
    protocol: Protocol,
    all: &[String],
) -> Result<String, String> {
    let kind = match protocol {
        Protocol::Udp => Kind::Udp,
        _ => Kind::Http,
    };
    let id = id.as_ref().map_err(|e| e.clone())?;
    let Some(s) = server else {
        return Err(format!(
            "answered, but not by {}: no answer to podlab's challenge",
            g.whose
        ));
    };
    let (Some(c), Some(p)) = (&s.challenge, &s.proof) else {
        let claims = s
            .pod
            .as_deref()
            .map(|p| format!(" (it claims to be {}, unsigned)", short(p)))
            .unwrap_or_default();
        return Err(format!(
            "answered, but not by {}: the answer carries no podlab identity{claims}",
            g.whose
        ));
    };
    if let Some(pod) = id.which(kind, g.pods.iter().map(String::as_str), c, p) {
        return Ok(pod.to_string());
    }
    // Signed, but by a pod that should not be there: a genuine answer from
    // the wrong place (a rule sending the Service's traffic elsewhere).
    if let Some(pod) = id.which(kind, all.iter().map(String::as_str), c, p) {
        return Err(format!(
            "answered by pod {}, not by {}",
            short(pod),
            g.whose
        ));
    }
    Err(format!(
        "answered, but not by {}: the proof is not one of {}",
        g.whose,
        g.pods
            .iter()
            .map(|p| short(p))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Pods of `g` that no probe reached, for the message.
pub fn missing(g: &Genuine, seen: &BTreeSet<String>) -> Vec<String> {
    g.pods
        .iter()
        .filter(|p| !seen.contains(*p))
        .map(|p| short(p).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> Genuine {
        Genuine {
            what: "svc/default/web".into(),
            whose: "a pod of svc/default/web".into(),
            pods: vec!["default/web-1".into(), "default/web-2".into()],
            every: true,
        }
    }

    fn answer(proof: Option<String>, challenge: &str) -> Server {
        Server {
            pod: Some("default/web-1".into()),
            challenge: Some(challenge.into()),
            proof,
            ..Server::default()
        }
    }

    #[test]
    fn only_a_signed_answer_of_the_right_pod_counts() {
        let id = Identity::new("l", [3; 32]);
        let all: Vec<String> = ["default/web-1", "default/web-2", "default/db"]
            .map(String::from)
            .to_vec();
        let c = super::super::identity::challenge();
        let ok = Ok(id.clone());
        let good = answer(Some(id.prove(Kind::Http, "default/web-2", &c)), &c);
        assert_eq!(
            verify(&ok, &svc(), Some(&good), Protocol::Tcp, &all),
            Ok("default/web-2".into())
        );
        // A stand-in that copies the echo's body but cannot sign.
        let e = verify(&ok, &svc(), Some(&answer(None, &c)), Protocol::Tcp, &all).unwrap_err();
        assert_eq!(
            e,
            "answered, but not by a pod of svc/default/web: the answer carries no podlab identity (it claims to be web-1, unsigned)"
        );
        // Genuine, but the wrong pod: a rule sending traffic elsewhere.
        let db = answer(Some(id.prove(Kind::Http, "default/db", &c)), &c);
        let e = verify(&ok, &svc(), Some(&db), Protocol::Tcp, &all).unwrap_err();
        assert_eq!(e, "answered by pod db, not by a pod of svc/default/web");
        // A proof for another challenge (a recorded answer) or kind.
        let old = answer(Some(id.prove(Kind::Http, "default/web-1", "00")), &c);
        assert!(verify(&ok, &svc(), Some(&old), Protocol::Tcp, &all).is_err());
        assert!(verify(&ok, &svc(), Some(&good), Protocol::Udp, &all).is_err());
        // No key: nothing is genuine, and the message says why.
        let none: Result<Identity, String> = Err("no key".into());
        assert_eq!(
            verify(&none, &svc(), Some(&good), Protocol::Tcp, &all),
            Err("no key".into())
        );
        let seen = std::collections::BTreeSet::from(["default/web-1".to_string()]);
        assert_eq!(missing(&svc(), &seen), ["web-2"]);
    }
}
