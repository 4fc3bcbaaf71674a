//! The one grammar for naming a place in a lab, shared by `exec`, `trace`,
//! `diagnose`, `dns`, `test` (a lab's `expect`), faults and exercises:
//!
//! ```text
//! POD            a bare name: as a source, the pod; as a destination, what
//!                `curl POD` from the source reaches (see `resolve`)
//! NS/POD         pod/NAME   pod/NS/NAME
//! svc/NAME       svc/NS/NAME         (the ClusterIP)
//! lb/NAME        lb/NS/NAME          (a LoadBalancer Service's IP)
//! node/NAME      external   lb
//! IP             a DNS name (it has a dot; a trailing dot is kept)
//! ...[:PORT]     destinations only
//! ```
//!
//! `parse` is syntax only; `resolve` finds what a parsed word names in a
//! plan. Both are pure.

use std::fmt;
use std::net::Ipv4Addr;

use crate::lab::is_dns1123_label;
use crate::plan::{ClientPlan, NodePlan, Plan, PodPlan, ServicePlan};

/// A parsed word. A namespace of `None` is the caller's default (`-n NS`
/// on the command line, `default` in a lab file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A bare name.
    Name(String),
    Pod {
        namespace: Option<String>,
        name: String,
    },
    Service {
        namespace: Option<String>,
        name: String,
    },
    LoadBalancer {
        namespace: Option<String>,
        name: String,
    },
    Node(String),
    External,
    Lb,
    Ip(Ipv4Addr),
    /// A name with a dot, as written (`web.default`, `example.com.`).
    Dns(String),
}

/// A parsed word and its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub spec: Spec,
    pub port: Option<u16>,
}

/// Which forms a word may take: a source sends (a pod, a node, `external`,
/// `lb`); a destination may be anything, with a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Destination,
}

pub const SOURCE_FORMS: &str = "POD, NS/POD, pod/NAME, pod/NS/NAME, node/NAME, external or lb";
pub const DESTINATION_FORMS: &str = "POD, NS/POD, pod/NAME, pod/NS/NAME, svc/NAME, \
     svc/NS/NAME, lb/NAME, lb/NS/NAME, node/NAME, external, lb, an IPv4 address or a DNS \
     name, each with an optional :PORT";

impl Role {
    fn noun(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Destination => "destination",
        }
    }

    pub fn forms(self) -> &'static str {
        match self {
            Role::Source => SOURCE_FORMS,
            Role::Destination => DESTINATION_FORMS,
        }
    }
}

/// A word that names nothing: what is wrong with it, and how to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TargetError {}

fn bad(word: &str, role: Role, why: &str) -> TargetError {
    TargetError {
        message: format!("`{word}` is not a {}: {why}", role.noun()),
        hint: format!("a {} is {}", role.noun(), role.forms()),
    }
}

/// Parse one word.
pub fn parse(word: &str, role: Role) -> Result<Target, TargetError> {
    let err = |why: &str| bad(word, role, why);
    if word.is_empty() {
        return Err(err("it is empty"));
    }
    if word.chars().any(char::is_whitespace) {
        return Err(err("it has a space"));
    }
    let (rest, port) = split_port(word).map_err(|why| err(&why))?;
    if port.is_some() && role == Role::Source {
        return Err(err("a source has no port"));
    }
    let spec = spec(rest).map_err(|why| err(&why))?;
    if role == Role::Source {
        let what = match &spec {
            Spec::Service { .. } => Some("a Service does not send"),
            Spec::LoadBalancer { .. } => Some("a LoadBalancer IP does not send"),
            Spec::Ip(_) => Some("an address does not send: name the pod or node"),
            Spec::Dns(_) => Some("a DNS name does not send: name the pod"),
            _ => None,
        };
        if let Some(why) = what {
            return Err(err(why));
        }
    }
    Ok(Target { spec, port })
}

/// `WORD:PORT` → (`WORD`, `PORT`). A colon must be followed by a port.
fn split_port(word: &str) -> Result<(&str, Option<u16>), String> {
    let Some((rest, p)) = word.rsplit_once(':') else {
        return Ok((word, None));
    };
    if rest.contains(':') {
        return Err("it has more than one `:` (IPv6 is not supported)".into());
    }
    match p.parse::<u16>() {
        Ok(port) if port > 0 && !p.starts_with('+') => Ok((rest, Some(port))),
        _ => Err(format!("`:{p}` is not a port (1-65535)")),
    }
}

fn label(s: &str, what: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if is_dns1123_label(s) {
        return Ok(s.to_string());
    }
    Err(format!(
        "`{s}` is not a {what} (lowercase letters, digits and `-`, at most 63)"
    ))
}

fn namespaced(ns: Option<&str>, name: &str) -> Result<(Option<String>, String), String> {
    let namespace = ns.map(|n| label(n, "namespace")).transpose()?;
    Ok((namespace, label(name, "name")?))
}

/// The word without its port.
fn spec(s: &str) -> Result<Spec, String> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        ["external"] => Ok(Spec::External),
        ["lb"] => Ok(Spec::Lb),
        [one] => single(one),
        ["node", n] => label(n, "node name").map(Spec::Node),
        ["node", _, _] => Err("a node has no namespace: write node/NAME".into()),
        [kind @ ("pod" | "svc" | "lb"), rest @ ..] if rest.len() <= 2 => {
            let (ns, name) = match rest {
                [n] => (None, *n),
                [ns, n] => (Some(*ns), *n),
                _ => return Err("a name is missing".into()),
            };
            let (namespace, name) = namespaced(ns, name)?;
            Ok(match *kind {
                "pod" => Spec::Pod { namespace, name },
                "svc" => Spec::Service { namespace, name },
                _ => Spec::LoadBalancer { namespace, name },
            })
        }
        [ns, n] => {
            let (namespace, name) = namespaced(Some(ns), n)?;
            Ok(Spec::Pod { namespace, name })
        }
        _ => Err(format!(
            "too many `/` (at most pod/NS/NAME, svc/NS/NAME or lb/NS/NAME; a pod in a \
             namespace called `{}` is pod/{}/NAME)",
            parts[0], parts[0]
        )),
    }
}

/// A word without `/`: an address, a DNS name or a bare name.
fn single(s: &str) -> Result<Spec, String> {
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Ok(Spec::Ip(ip));
    }
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    if !s.contains('.') {
        return label(s, "name").map(Spec::Name);
    }
    let labels: Vec<&str> = trimmed.split('.').collect();
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) && labels.len() == 4 {
        return Err(format!("`{s}` is not an IPv4 address"));
    }
    let dns_label = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if trimmed.len() > 253 || !labels.iter().all(dns_label) {
        return Err(format!("`{s}` is not a DNS name"));
    }
    Ok(Spec::Dns(s.to_string()))
}

// ---- resolution against a plan ----

/// What a word names in a plan.
#[derive(Debug, Clone, Copy)]
pub enum Found<'p> {
    Pod(&'p PodPlan),
    /// A Service by its ClusterIP.
    Service(&'p ServicePlan),
    /// A Service by its LoadBalancer IP.
    LoadBalancer(&'p ServicePlan),
    Node(&'p NodePlan),
    /// `external` or `lb`.
    Client(&'p ClientPlan),
    /// An address the lab gives to nothing.
    Address(Ipv4Addr),
}

/// The namespaces a word is read in.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Of names written without one (`-n NS`; `default` in a lab file).
    pub namespace: &'a str,
    /// The source's own namespace: where its resolver's search path looks
    /// a bare name up first.
    pub search: &'a str,
}

impl<'a> Scope<'a> {
    /// Both the same: for a source, or when the source is not a pod.
    pub fn of(namespace: &'a str) -> Scope<'a> {
        Scope {
            namespace,
            search: namespace,
        }
    }
}

/// A pod by name, or a Deployment's first replica.
pub fn pod<'p>(plan: &'p Plan, namespace: &str, name: &str) -> Option<&'p PodPlan> {
    plan.pod(namespace, name).or_else(|| {
        plan.pods
            .iter()
            .find(|p| p.namespace == namespace && p.owner.as_deref() == Some(name))
    })
}

/// The one rule for a bare name as a destination: what `curl NAME` from
/// the source reaches. Its resolver's search path tries
/// `NAME.<source's namespace>.svc...` first, so a Service of that name in
/// the source's namespace wins; else the pod (or Deployment) of that name
/// in the scope's namespace (podlab's own shorthand: no resolver knows pod
/// names). `None`: neither.
pub fn bare_name<'p>(plan: &'p Plan, name: &str, scope: &Scope) -> Option<Found<'p>> {
    plan.services
        .iter()
        .find(|s| s.namespace == scope.search && s.name == name)
        .map(Found::Service)
        .or_else(|| pod(plan, scope.namespace, name).map(Found::Pod))
}

/// Who has an address: a pod, a ClusterIP, a LoadBalancer IP, a node (its
/// own IP or its `cni0` gateway), `external` or `lb`, else nobody. An
/// address is never looked up as a name.
pub fn by_ip(plan: &Plan, ip: Ipv4Addr) -> Found<'_> {
    if let Some(p) = plan.pods.iter().find(|p| p.ip == ip) {
        return Found::Pod(p);
    }
    if let Some(s) = plan.services.iter().find(|s| s.cluster_ip == Some(ip)) {
        return Found::Service(s);
    }
    if let Some(s) = plan
        .services
        .iter()
        .find(|s| s.load_balancer_ip == Some(ip))
    {
        return Found::LoadBalancer(s);
    }
    if let Some(n) = plan
        .nodes
        .iter()
        .find(|n| n.ip == ip || n.pod_gateway == ip)
    {
        return Found::Node(n);
    }
    if let Some(c) = plan.clients.iter().find(|c| c.ip == ip) {
        return Found::Client(c);
    }
    Found::Address(ip)
}

/// Resolve a parsed word. `Ok(None)`: a DNS name, or a bare name the plan
/// does not know, left for the source's resolver.
pub fn resolve<'p>(
    plan: &'p Plan,
    spec: &Spec,
    scope: &Scope,
) -> Result<Option<Found<'p>>, TargetError> {
    let ns = |n: &Option<String>| n.clone().unwrap_or_else(|| scope.namespace.to_string());
    let found = match spec {
        Spec::Name(n) => return Ok(bare_name(plan, n, scope)),
        Spec::Dns(_) => return Ok(None),
        Spec::Ip(ip) => by_ip(plan, *ip),
        Spec::Pod { namespace, name } => {
            let ns = ns(namespace);
            pod(plan, &ns, name)
                .map(Found::Pod)
                .ok_or_else(|| no_pod(plan, &ns, name))?
        }
        Spec::Service { namespace, name } => Found::Service(service(plan, &ns(namespace), name)?),
        Spec::LoadBalancer { namespace, name } => {
            let s = service(plan, &ns(namespace), name)?;
            if s.load_balancer_ip.is_none() {
                return Err(TargetError {
                    message: format!("Service {} has no LoadBalancer IP", s.key()),
                    hint: "lb/NAME is the IP of a `type: LoadBalancer` Service; svc/NAME is its \
                           ClusterIP"
                        .into(),
                });
            }
            Found::LoadBalancer(s)
        }
        Spec::Node(n) => Found::Node(node(plan, n)?),
        Spec::External => Found::Client(client(plan, "external")?),
        Spec::Lb => Found::Client(client(plan, "lb")?),
    };
    Ok(Some(found))
}

/// Resolve a word that sends: a pod, a node, `external` or `lb`.
pub fn source<'p>(plan: &'p Plan, word: &str, namespace: &str) -> Result<Found<'p>, TargetError> {
    let t = parse(word, Role::Source)?;
    match &t.spec {
        Spec::Name(n) => pod(plan, namespace, n).map(Found::Pod).ok_or_else(|| {
            let mut e = no_pod(plan, namespace, n);
            if plan.node(n).is_some() {
                e.hint = format!("{n} is a node: write node/{n}");
            }
            e
        }),
        spec => resolve(plan, spec, &Scope::of(namespace))?
            .ok_or_else(|| bad(word, Role::Source, "it names nothing of the lab")),
    }
}

fn no_pod(plan: &Plan, ns: &str, name: &str) -> TargetError {
    let in_ns: Vec<&str> = plan
        .pods
        .iter()
        .filter(|p| p.namespace == ns)
        .map(|p| p.name.as_str())
        .collect();
    let hint = if let Some(m) = crate::lab::did_you_mean(name, &in_ns) {
        format!("did you mean {m}?")
    } else if let Some(other) = plan.pods.iter().find(|p| p.name == name) {
        format!(
            "it is in namespace {0}: write {0}/{name} (or add -n {0})",
            other.namespace
        )
    } else {
        "`podlab get pods -A` lists the pods".into()
    };
    TargetError {
        message: format!("pod {name} not found in namespace {ns} of lab {}", plan.lab),
        hint,
    }
}

fn service<'p>(plan: &'p Plan, ns: &str, name: &str) -> Result<&'p ServicePlan, TargetError> {
    plan.services
        .iter()
        .find(|s| s.namespace == ns && s.name == name)
        .ok_or_else(|| TargetError {
            message: format!(
                "Service {name} not found in namespace {ns} of lab {}",
                plan.lab
            ),
            hint: "`podlab get svc -A` lists the Services".into(),
        })
}

fn node<'p>(plan: &'p Plan, name: &str) -> Result<&'p NodePlan, TargetError> {
    plan.node(name).ok_or_else(|| {
        let names: Vec<&str> = plan.nodes.iter().map(|n| n.name.as_str()).collect();
        TargetError {
            message: format!("node {name} not found in lab {}", plan.lab),
            hint: match crate::lab::did_you_mean(name, &names) {
                Some(m) => format!("did you mean node/{m}?"),
                None => format!("the nodes are: {}", names.join(", ")),
            },
        }
    })
}

fn client<'p>(plan: &'p Plan, name: &str) -> Result<&'p ClientPlan, TargetError> {
    plan.clients
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| TargetError {
            message: format!("lab {} has no `{name}`", plan.lab),
            hint: "every lab has `external` and `lb`: `podlab get nodes` shows this one".into(),
        })
}

#[cfg(test)]
#[path = "target_tests.rs"]
pub(crate) mod tests;
