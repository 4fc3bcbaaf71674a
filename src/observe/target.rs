//! `FROM` and `TO[:PORT]` of `diagnose` and `trace`, resolved against the
//! plan of the running lab. Pure: a name the plan does not know is left for
//! the caller to resolve (by DNS, as a pod would).

use std::net::Ipv4Addr;

use crate::plan::{ClientPlan, NodePlan, Plan, PodPlan, ServicePlan};
use crate::target::{self, Found, Role, Scope, Spec, TargetError};

/// What `TO` names.
pub enum To<'a> {
    Pod(&'a PodPlan, Option<u16>),
    Service(&'a ServicePlan, Option<u16>),
    /// An address the plan gives no pod or ClusterIP: a node's (a
    /// NodePort), a LoadBalancer IP, `external`, `lb`, or one the lab does
    /// not know. Never resolved as a name.
    Address(Ipv4Addr, Option<u16>),
    /// Anything else: a DNS name, resolved as the source's resolver would.
    Name(String),
}

/// Where traffic starts.
#[derive(Debug, Clone, Copy)]
pub enum From<'a> {
    Pod(&'a PodPlan),
    Node(&'a NodePlan),
    /// `external` (the client on the node network) or `lb`.
    Client(&'a ClientPlan),
}

impl From<'_> {
    pub fn netns(&self) -> &str {
        match self {
            From::Pod(p) => &p.netns,
            From::Node(n) => &n.netns,
            From::Client(c) => &c.netns,
        }
    }

    /// How messages name it: `default/pod-1`, `node/node-1`, `external`.
    pub fn label(&self) -> String {
        match self {
            From::Pod(p) => p.key(),
            From::Node(n) => format!("node/{}", n.name),
            From::Client(c) => c.name.clone(),
        }
    }
}

impl<'a> From<'a> {
    /// Where a bare destination name is looked up first: the pod's own
    /// namespace (its resolver's search path), else `namespace`.
    pub fn search_ns(&self, namespace: &'a str) -> &'a str {
        match self {
            From::Pod(p) => &p.namespace,
            _ => namespace,
        }
    }
}

/// `FROM` as a pod, in the grammar of `crate::target` (names without a
/// namespace are in `namespace`).
pub fn pod_source<'a>(plan: &'a Plan, spec: &str, namespace: &str) -> Result<&'a PodPlan, String> {
    match target::source(plan, spec, namespace).map_err(|e| e.to_string())? {
        Found::Pod(p) => Ok(p),
        _ => Err(format!("`{spec}` is not a pod")),
    }
}

/// `FROM` as anything that can send: a pod, `node/NAME`, `external` or
/// `lb` (a pod named like those is `pod/NAME`).
pub fn source<'a>(plan: &'a Plan, spec: &str, namespace: &str) -> Result<From<'a>, String> {
    source_of(plan, spec, namespace).map_err(|e| e.to_string())
}

/// `source`, with the error's hint.
pub fn source_of<'a>(plan: &'a Plan, spec: &str, namespace: &str) -> Result<From<'a>, TargetError> {
    Ok(match target::source(plan, spec, namespace)? {
        Found::Pod(p) => From::Pod(p),
        Found::Node(n) => From::Node(n),
        Found::Client(c) => From::Client(c),
        // `target::source` yields only what sends.
        _ => {
            return Err(TargetError {
                message: format!("`{spec}` does not send"),
                hint: format!("a source is {}", target::SOURCE_FORMS),
            })
        }
    })
}

/// Resolve `TO[:PORT]` as seen from `from`, or say what is wrong with it:
/// the check a command makes before it sends anything. A bare name is what
/// `curl NAME` from the source reaches (`target::bare_name`); a Service
/// reached so is left as a name, for the source's resolver to resolve.
pub fn destination<'a>(
    plan: &'a Plan,
    spec: &str,
    from: &From,
    namespace: &str,
) -> Result<To<'a>, TargetError> {
    let scope = Scope {
        namespace,
        search: from.search_ns(namespace),
    };
    to_in(plan, spec, &scope)
}

fn to_in<'a>(plan: &'a Plan, spec: &str, scope: &Scope) -> Result<To<'a>, TargetError> {
    let t = target::parse(spec, Role::Destination)?;
    let port = t.port;
    Ok(match (&t.spec, target::resolve(plan, &t.spec, scope)?) {
        (Spec::Name(n) | Spec::Dns(n), None) | (Spec::Name(n), Some(Found::Service(_))) => {
            To::Name(n.clone())
        }
        (_, None) => To::Name(spec.to_string()),
        (_, Some(found)) => match found {
            Found::Pod(p) => To::Pod(p, port),
            Found::Service(s) => To::Service(s, port),
            Found::LoadBalancer(s) => match s.load_balancer_ip {
                Some(ip) => To::Address(ip, port),
                None => To::Service(s, port),
            },
            Found::Node(n) => To::Address(n.ip, port),
            Found::Client(c) => To::Address(c.ip, port),
            Found::Address(ip) => To::Address(ip, port),
        },
    })
}

/// `destination` from a source in `namespace`, for callers that have
/// checked the word already: a word that names nothing is left as a name
/// (its resolver then says it does not resolve).
pub fn parse_target<'a>(plan: &'a Plan, spec: &str, namespace: &str) -> To<'a> {
    or_name(to_in(plan, spec, &Scope::of(namespace)), spec)
}

/// `parse_target` as seen from `from`: a bare name is looked up in its
/// namespace first.
pub fn parse_target_from<'a>(plan: &'a Plan, spec: &str, from: &From, namespace: &str) -> To<'a> {
    or_name(destination(plan, spec, from, namespace), spec)
}

fn or_name<'a>(to: Result<To<'a>, TargetError>, spec: &str) -> To<'a> {
    to.unwrap_or_else(|_| To::Name(split_port(spec).0.to_string()))
}

/// `NAME:PORT` → (`NAME`, `PORT`); a colon not followed by a port number is
/// part of the name.
pub fn split_port(spec: &str) -> (&str, Option<u16>) {
    match spec.rsplit_once(':') {
        Some((n, p)) => match p.parse::<u16>() {
            Ok(port) => (n, Some(port)),
            Err(_) => (spec, None),
        },
        None => (spec, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_split_off_only_when_it_is_one() {
        assert_eq!(split_port("svc/web:80"), ("svc/web", Some(80)));
        assert_eq!(split_port("10.96.0.10"), ("10.96.0.10", None));
        assert_eq!(split_port("a:b"), ("a:b", None));
        assert_eq!(split_port("a:70000"), ("a:70000", None));
    }

    fn shown(to: &To) -> String {
        match to {
            To::Pod(p, port) => format!("pod {} {port:?}", p.key()),
            To::Service(s, port) => format!("svc {} {port:?}", s.key()),
            To::Address(ip, port) => format!("address {ip} {port:?}"),
            To::Name(n) => format!("name {n}"),
        }
    }

    #[test]
    fn a_destination_is_what_curl_from_the_source_reaches() {
        let plan = crate::target::tests::plan();
        let client = plan.pod("team-b", "client").unwrap();
        let web = plan.pod("default", "web").unwrap();
        let svc = plan.services.iter().find(|s| s.name == "web").unwrap();
        let node = plan.node("node-2").unwrap();
        let (b, d) = (From::Pod(client), From::Pod(web));
        let cluster_ip = format!("{}:8080", svc.cluster_ip.unwrap());
        let pod_ip = web.ip.to_string();
        let table: Vec<(&str, &From, String)> = vec![
            // A Service reached by a bare name is left for the resolver.
            ("web:80", &d, "name web".into()),
            ("web.default:80", &d, "name web.default".into()),
            ("example.com.", &d, "name example.com.".into()),
            ("nobody", &d, "name nobody".into()),
            // From team-b there is no Service `web`: default's pod.
            ("web:80", &b, "pod default/web Some(80)".into()),
            ("db", &b, "name db".into()),
            ("db:5432", &d, "pod default/db Some(5432)".into()),
            ("pod/web", &d, "pod default/web None".into()),
            ("svc/web:80", &b, "svc default/web Some(80)".into()),
            ("team-b/client", &d, "pod team-b/client None".into()),
            (
                "lb/web:80",
                &b,
                format!("address {} Some(80)", svc.load_balancer_ip.unwrap()),
            ),
            (
                "node/node-2:30080",
                &b,
                format!("address {} Some(30080)", node.ip),
            ),
            (&cluster_ip, &b, "svc default/web Some(8080)".into()),
            (&pod_ip, &b, "pod default/web None".into()),
        ];
        for (word, from, want) in table {
            let got = destination(&plan, word, from, "default").map(|t| shown(&t));
            assert_eq!(got, Ok(want), "{word}");
        }
        let e = destination(&plan, "svc/nope", &d, "default").err().unwrap();
        assert_eq!(
            e.message,
            "Service nope not found in namespace default of lab tg"
        );
        let e = destination(&plan, "web:http", &d, "default").err().unwrap();
        assert_eq!(
            e.message,
            "`web:http` is not a destination: `:http` is not a port (1-65535)"
        );
        // The unchecked form leaves a bad word as a name, never panics.
        assert_eq!(
            shown(&parse_target(&plan, "svc/nope:80", "default")),
            "name svc/nope"
        );
    }
}
