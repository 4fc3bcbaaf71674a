//! `v1/Service`: the spec, decoded field by field.
//!
//! Rules of a single service (a field allowed only for some types, port
//! names unique, a timeout in range) are checked here; rules that relate a
//! service to the lab's network or to other objects (addresses taken twice,
//! a nodePort outside nodePortRange, a selector that selects nothing) are in
//! `validate`.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::super::types::*;
use super::super::validate::{did_you_mean, is_dns1123_subdomain, is_iana_svc_name};
use super::super::yaml::{Node, Value};
use super::{describe, join, Decoder, PortOrName};

const SPEC: &[&str] = &[
    "type",
    "clusterIP",
    "clusterIPs",
    "selector",
    "ports",
    "sessionAffinity",
    "sessionAffinityConfig",
    "externalTrafficPolicy",
    "internalTrafficPolicy",
    "externalName",
    "loadBalancerIP",
    "publishNotReadyAddresses",
    // Not supported: known here so that the error names the field rather
    // than calling it unknown (see `UNSUPPORTED`).
    "externalIPs",
    "loadBalancerSourceRanges",
];
const SPEC_IGNORED: &[&str] = &[
    "ipFamilies",
    "ipFamilyPolicy",
    "allocateLoadBalancerNodePorts",
    "loadBalancerClass",
    "healthCheckNodePort",
    "trafficDistribution",
];

/// Service fields Kubernetes has that podlab's kube-proxy cannot honour,
/// with the hint given.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "externalIPs",
        "podlab routes no external IPs to services; use `type: LoadBalancer` (its address comes from loadBalancerPool) or `type: NodePort`",
    ),
    (
        "loadBalancerSourceRanges",
        "podlab's load balancer does not filter clients by address; remove it, or restrict clients with a NetworkPolicy",
    ),
];

const PORT: &[&str] = &["name", "protocol", "port", "targetPort", "nodePort"];
const PORT_IGNORED: &[&str] = &["appProtocol"];

const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const AFFINITIES: &[&str] = &["None", "ClientIP"];
const POLICIES: &[&str] = &["Cluster", "Local"];

/// Kubernetes' default for `sessionAffinityConfig.clientIP.timeoutSeconds`.
const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;
const MAX_AFFINITY_TIMEOUT: i64 = 86400;

/// The most ports a service may have: what one EndpointSlice holds, so
/// what kube-proxy is ever given for one service. Each port is a chain and
/// a rule per endpoint in the plan, so the count is bounded here.
pub const MAX_PORTS: usize = 100;

/// Positions of a service that `validate` needs and `ServiceSpec` does not
/// keep. One per `LabFile::services` entry, same order.
#[derive(Debug, Default)]
pub(crate) struct ServiceSpans {
    /// The field a fixed cluster IP was read from: `spec.clusterIP`, or
    /// `spec.clusterIPs[0]` when only that was written.
    pub cluster_ip_field: &'static str,
    /// Position of `spec.selector`, where "selects no pod" points.
    pub selector: Option<Pos>,
    /// Index in `spec.ports` of each decoded port, same order as
    /// `ServiceSpec::ports` (a port with an error is left out).
    pub ports: Vec<usize>,
}

fn kind_name(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::ClusterIP => "ClusterIP",
        ServiceKind::NodePort => "NodePort",
        ServiceKind::LoadBalancer => "LoadBalancer",
        ServiceKind::ExternalName => "ExternalName",
    }
}

/// "A, B or C".
fn either(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Where `key` is written in a mapping, for errors about the field itself.
fn key_pos(node: &Node, key: &str) -> Option<Pos> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))
        .map(|(k, _)| k.pos)
}

impl Decoder {
    /// One of `choices`, with a did-you-mean for a typo.
    fn choice(
        &mut self,
        node: &Node,
        path: &str,
        choices: &[&'static str],
    ) -> Option<&'static str> {
        let s = self.string(node, path)?;
        if let Some(c) = choices.iter().find(|c| **c == s) {
            return Some(c);
        }
        let hint = did_you_mean(&s, choices).map(|m| format!("did you mean `{m}`?"));
        self.err(
            node.pos,
            path,
            format!("expected {}, found `{s}`", either(choices)),
            hint,
        );
        None
    }

    fn ipv4(&mut self, node: &Node, path: &str, example: &str) -> Option<Ipv4Addr> {
        let s = self.string(node, path)?;
        match s.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                let hint = s
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok()
                    .then(|| "podlab is single-stack IPv4".to_string());
                self.err(
                    node.pos,
                    path,
                    format!("expected an IPv4 address like {example}, found `{s}`"),
                    hint,
                );
                None
            }
        }
    }
}

/// A service's `spec`; `doc` is the document's position, for a missing spec.
pub(crate) fn spec(d: &mut Decoder, node: Option<&Node>, doc: Pos) -> (ServiceSpec, ServiceSpans) {
    let mut spec = ServiceSpec::default();
    let mut spans = ServiceSpans {
        cluster_ip_field: "spec.clusterIP",
        ..ServiceSpans::default()
    };
    let Some(node) = node else {
        d.err(
            doc,
            "spec",
            "service has no `spec`".into(),
            Some("a service needs `spec.ports`, e.g. `ports: [{port: 80}]`".into()),
        );
        return (spec, spans);
    };
    let Some(f) = d.fields(node, "spec", SPEC, SPEC_IGNORED) else {
        return (spec, spans);
    };
    for (key, hint) in UNSUPPORTED {
        if f.get(key).is_some() {
            let pos = key_pos(node, key).unwrap_or(f.pos);
            d.err(
                pos,
                join("spec", key),
                format!("field `{key}` is not supported by podlab"),
                Some(hint.to_string()),
            );
        }
    }

    // The type first: which other fields are allowed depends on it. After
    // a wrong type, rules that depend on it are not checked (they would
    // only repeat the mistake).
    let mut typed = true;
    if let Some(n) = f.get("type") {
        match d.choice(n, "spec.type", TYPES) {
            Some("NodePort") => spec.kind = ServiceKind::NodePort,
            Some("LoadBalancer") => spec.kind = ServiceKind::LoadBalancer,
            Some("ExternalName") => spec.kind = ServiceKind::ExternalName,
            Some(_) => {}
            None => typed = false,
        }
    }
    let kind = spec.kind;
    let external = matches!(kind, ServiceKind::NodePort | ServiceKind::LoadBalancer);
    let type_word = kind_name(kind);

    cluster_ip(d, &f, kind, typed, &mut spec, &mut spans);

    if let Some(n) = f.get("selector") {
        spans.selector = Some(n.pos);
        let labels = d.labels(n, "spec.selector");
        // An empty selector is no selector: Kubernetes stores `{}` as
        // absent, and manages no endpoints for it.
        if !labels.is_empty() {
            spec.selector = Some(labels);
        }
    }

    let mut items = match f.get("ports") {
        Some(n) => d.list(n, "spec.ports", "a list of ports"),
        None => &[],
    };
    let too_many = items.len() > MAX_PORTS;
    if too_many {
        let at = f.get("ports").map_or(f.pos, |n| n.pos);
        d.err(
            at,
            "spec.ports",
            format!(
                "the service has {} ports; a service may have at most {MAX_PORTS}",
                items.len()
            ),
            Some(
                "an EndpointSlice holds at most 100 ports; split the ports over several services"
                    .into(),
            ),
        );
        items = &[];
    }
    let mut names: HashMap<String, Pos> = HashMap::new();
    let mut numbers: HashMap<(u16, Protocol), Pos> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let Some(p) = port(d, item, &path, items.len() > 1, typed, kind) else {
            continue;
        };
        if let Some(name) = &p.name {
            let pos = item_name_pos(item).unwrap_or(p.pos);
            if let Some(first) = names.get(name) {
                d.err(
                    pos,
                    join(&path, "name"),
                    format!(
                        "port name `{name}` is used twice (first at line {})",
                        first.line
                    ),
                    Some("the ports of a service need distinct names".into()),
                );
            } else {
                names.insert(name.clone(), pos);
            }
        }
        if let Some(first) = numbers.get(&(p.port, p.protocol)) {
            d.err(
                p.pos,
                join(&path, "port"),
                format!(
                    "port {}/{} is declared twice (first at line {})",
                    p.port, p.protocol, first.line
                ),
                Some("a service serves each port and protocol once".into()),
            );
        } else {
            numbers.insert((p.port, p.protocol), p.pos);
        }
        spec.ports.push(p);
        spans.ports.push(i);
    }
    // A misspelt `ports`, or one that is not a list, is reported already.
    let misspelt = f.suggested.iter().any(|s| s == "ports");
    let not_a_list = f
        .get("ports")
        .is_some_and(|n| !matches!(n.value, Value::Seq(_)));
    if items.is_empty()
        && !too_many
        && !misspelt
        && !not_a_list
        && kind != ServiceKind::ExternalName
        && spec.cluster_ip != ClusterIpSpec::Headless
    {
        let at = f.get("ports").map_or(f.pos, |n| n.pos);
        d.err(
            at,
            "spec.ports",
            "a service needs at least one port".into(),
            Some("add `ports:` with `- port: 80`; only a headless (`clusterIP: None`) or ExternalName service may have none".into()),
        );
    }

    affinity(d, &f, &mut spec);

    if let Some(n) = f.get("externalTrafficPolicy") {
        let path = "spec.externalTrafficPolicy";
        let policy = match d.string(n, path) {
            // The name before Kubernetes 1.14: no longer accepted.
            Some(s) if s == "Global" => {
                d.err(
                    n.pos,
                    path,
                    "expected Cluster or Local, found `Global`".into(),
                    Some(
                        "did you mean `Cluster`? (`Global` is its name before Kubernetes 1.14)"
                            .into(),
                    ),
                );
                None
            }
            Some(_) => d.choice(n, path, POLICIES),
            None => None,
        };
        if typed && !external {
            d.err(
                n.pos,
                path,
                format!("externalTrafficPolicy is only allowed for NodePort and LoadBalancer services, this one is {type_word}"),
                Some("only traffic from outside the cluster has an external policy; remove it, or set `type: NodePort`".into()),
            );
        } else {
            spec.external_local = policy == Some("Local");
        }
    }
    if let Some(n) = f.get("internalTrafficPolicy") {
        spec.internal_local = d.choice(n, "spec.internalTrafficPolicy", POLICIES) == Some("Local");
    }
    if let Some(n) = f.get("publishNotReadyAddresses") {
        spec.publish_not_ready = d
            .boolean(n, "spec.publishNotReadyAddresses")
            .unwrap_or(false);
    }

    match f.get("externalName") {
        Some(n) => {
            let path = "spec.externalName";
            if let Some(s) = d.string(n, path) {
                if typed && kind != ServiceKind::ExternalName {
                    d.err(
                        n.pos,
                        path,
                        format!("externalName is only allowed for ExternalName services, this one is {type_word}"),
                        Some("set `type: ExternalName`, or remove externalName".into()),
                    );
                } else if !is_dns1123_subdomain(s.strip_suffix('.').unwrap_or(&s)) {
                    d.err(
                        n.pos,
                        path,
                        format!("externalName `{s}` is not a DNS name"),
                        Some("a DNS-1123 subdomain: lowercase labels of letters, digits or '-', separated by dots, e.g. db.example.com".into()),
                    );
                } else {
                    spec.external_name = Some(s);
                }
            }
        }
        None if kind == ServiceKind::ExternalName
            && !f.suggested.iter().any(|s| s == "externalName") =>
        {
            d.err(
                f.pos,
                "spec.externalName",
                "an ExternalName service needs `externalName`".into(),
                Some("add the DNS name it stands for, e.g. `externalName: db.example.com`".into()),
            )
        }
        None => {}
    }

    if let Some(n) = f.get("loadBalancerIP") {
        let path = "spec.loadBalancerIP";
        if let Some(ip) = d.ipv4(n, path, "172.18.0.200") {
            if typed && kind != ServiceKind::LoadBalancer {
                d.err(
                    n.pos,
                    path,
                    format!("loadBalancerIP is only allowed for LoadBalancer services, this one is {type_word}"),
                    Some("set `type: LoadBalancer`, or remove loadBalancerIP".into()),
                );
            } else {
                spec.load_balancer_ip = Some((ip, n.pos));
            }
        }
    }
    (spec, spans)
}

/// `clusterIP` and `clusterIPs`.
fn cluster_ip(
    d: &mut Decoder,
    f: &super::Fields,
    kind: ServiceKind,
    typed: bool,
    spec: &mut ServiceSpec,
    spans: &mut ServiceSpans,
) {
    let single = f.get("clusterIP");
    let written = single.and_then(|n| d.string(n, "spec.clusterIP"));
    let mut from: Option<(&Node, String)> = single.zip(written.clone());
    if let Some(n) = f.get("clusterIPs") {
        let items = d.list(n, "spec.clusterIPs", "a list of addresses");
        if items.len() > 1 {
            d.err(
                items[1].pos,
                "spec.clusterIPs[1]",
                "podlab is single-stack IPv4: a service has one cluster IP".into(),
                Some("remove clusterIPs, or leave only `[clusterIP]` in it".into()),
            );
        } else if let Some(first) = items.first() {
            if let Some(s) = d.string(first, "spec.clusterIPs[0]") {
                match &written {
                    // Kubernetes takes clusterIP from clusterIPs when only
                    // the list is written.
                    None if single.is_none() => {
                        spans.cluster_ip_field = "spec.clusterIPs[0]";
                        from = Some((first, s));
                    }
                    Some(w) if *w != s => d.err(
                        first.pos,
                        "spec.clusterIPs[0]",
                        format!("clusterIPs [{s}] is not [clusterIP], which is `{w}`"),
                        Some("podlab is single-stack IPv4, so clusterIPs can only repeat clusterIP; remove clusterIPs".into()),
                    ),
                    _ => {}
                }
            }
        }
    }
    let Some((n, s)) = from else { return };
    let path = spans.cluster_ip_field;
    let headless = s == "None";
    if s.is_empty() {
        return;
    }
    if typed && kind == ServiceKind::ExternalName {
        d.err(
            n.pos,
            path,
            format!("clusterIP `{s}` is not allowed for an ExternalName service"),
            Some("an ExternalName service is only a DNS alias, it has no cluster IP; remove clusterIP".into()),
        );
        return;
    }
    if headless {
        if typed && kind != ServiceKind::ClusterIP {
            d.err(
                n.pos,
                path,
                format!(
                    "a {} service cannot be headless (`clusterIP: None`)",
                    kind_name(kind)
                ),
                Some("a node port forwards to the cluster IP, so it needs one; remove `clusterIP: None`".into()),
            );
            return;
        }
        spec.cluster_ip = ClusterIpSpec::Headless;
        return;
    }
    match s.parse::<Ipv4Addr>() {
        Ok(ip) => spec.cluster_ip = ClusterIpSpec::Fixed(ip, n.pos),
        Err(_) => {
            let hint = if s.parse::<std::net::Ipv6Addr>().is_ok() {
                "podlab is single-stack IPv4".to_string()
            } else {
                let mut h =
                    "leave clusterIP out to have one allocated from serviceCIDR".to_string();
                if did_you_mean(&s, &["None"]).is_some() {
                    h = format!("did you mean `None` (headless)? or {h}");
                }
                h
            };
            d.err(
                n.pos,
                path,
                format!("expected an IPv4 address, `None` (headless) or \"\", found `{s}`"),
                Some(hint),
            );
        }
    }
}

fn item_name_pos(item: &Node) -> Option<Pos> {
    let Value::Map(entries) = &item.value else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == "name"))
        .map(|(_, v)| v.pos)
}

/// One entry of `spec.ports`; `many` when the service has more than one
/// (then each needs a name).
fn port(
    d: &mut Decoder,
    node: &Node,
    path: &str,
    many: bool,
    typed: bool,
    kind: ServiceKind,
) -> Option<ServicePort> {
    let f = d.fields(node, path, PORT, PORT_IGNORED)?;
    let mut name = None;
    match f.get("name") {
        Some(n) => name = d.label_field(n, &join(path, "name"), "port"),
        None if many && !f.suggested.iter().any(|s| s == "name") => d.err(
            f.pos,
            join(path, "name"),
            "port has no name: a service with more than one port must name each".into(),
            Some("add `name:`, e.g. `name: http`".into()),
        ),
        None => {}
    }
    let mut protocol = Protocol::Tcp;
    if let Some(n) = f.get("protocol") {
        let field = join(path, "protocol");
        if let Some(s) = d.string(n, &field) {
            match s.as_str() {
                "TCP" => protocol = Protocol::Tcp,
                "UDP" => protocol = Protocol::Udp,
                "SCTP" => {
                    d.err(
                        n.pos,
                        field,
                        "protocol SCTP is not supported by podlab's kube-proxy".into(),
                        Some("use TCP or UDP".into()),
                    );
                    return None;
                }
                _ => {
                    let hint =
                        did_you_mean(&s, &["TCP", "UDP"]).map(|m| format!("did you mean `{m}`?"));
                    d.err(
                        n.pos,
                        field,
                        format!("expected TCP or UDP, found `{s}`"),
                        hint,
                    );
                }
            }
        }
    }
    let mut target_port = None;
    let mut target_port_pos = None;
    if let Some(n) = f.get("targetPort") {
        target_port_pos = Some(n.pos);
        target_port = target(d, n, &join(path, "targetPort"));
    }
    let mut node_port = None;
    if let Some(n) = f.get("nodePort") {
        let field = join(path, "nodePort");
        // 0 asks for one to be allocated, as if nodePort were not written.
        if let Some(np) = d.int(n, &field, 0, 65535, "an integer 1-65535") {
            if np != 0 {
                if typed && !matches!(kind, ServiceKind::NodePort | ServiceKind::LoadBalancer) {
                    d.err(
                        n.pos,
                        field,
                        format!(
                            "nodePort is only allowed for NodePort and LoadBalancer services, this one is {}",
                            kind_name(kind)
                        ),
                        Some("set `type: NodePort`, or remove nodePort".into()),
                    );
                } else {
                    node_port = Some((np as u16, n.pos));
                }
            }
        }
    }
    let Some(n) = f.get("port") else {
        if !f.suggested.iter().any(|s| s == "port") {
            d.err(
                f.pos,
                join(path, "port"),
                "service port has no `port`".into(),
                Some("add the port the service listens on, e.g. `port: 80`".into()),
            );
        }
        return None;
    };
    let number = d.int(n, &join(path, "port"), 1, 65535, "an integer 1-65535")?;
    Some(ServicePort {
        name,
        protocol,
        port: number as u16,
        target_port,
        target_port_pos: target_port_pos.unwrap_or(n.pos),
        node_port,
        pos: n.pos,
    })
}

/// `targetPort`: a number, or the name of a container port.
fn target(d: &mut Decoder, n: &Node, path: &str) -> Option<TargetPortSpec> {
    let text = match d.port_or_name(n, path)? {
        PortOrName::Number(p) => return Some(TargetPortSpec::Number(p)),
        PortOrName::Name(text) => text,
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Kubernetes reads "8080" as a name, and rejects it: a name needs a
        // letter.
        d.err(
            n.pos,
            path,
            format!("expected an integer 1-65535 or a port name, found {}", describe(n)),
            Some("remove the quotes: a number in quotes is a port name, and a port name needs a letter".into()),
        );
        return None;
    }
    if !is_iana_svc_name(text) {
        d.err(
            n.pos,
            path,
            format!("targetPort `{text}` is not a valid port name"),
            Some("a port name (IANA_SVC_NAME) is at most 15 lowercase letters, digits or '-', with at least one letter, and no leading, trailing or doubled '-'".into()),
        );
        return None;
    }
    Some(TargetPortSpec::Name(text.clone()))
}

/// `sessionAffinity` and `sessionAffinityConfig`.
fn affinity(d: &mut Decoder, f: &super::Fields, spec: &mut ServiceSpec) {
    // `None` when the value was wrong (already reported).
    let affinity = match f.get("sessionAffinity") {
        Some(n) => d.choice(n, "spec.sessionAffinity", AFFINITIES),
        None => Some("None"),
    };
    let mut timeout = None;
    if let Some(n) = f.get("sessionAffinityConfig") {
        let path = "spec.sessionAffinityConfig";
        if affinity == Some("None") {
            d.err(
                n.pos,
                path,
                "sessionAffinityConfig is only allowed with `sessionAffinity: ClientIP`".into(),
                Some("set `sessionAffinity: ClientIP`, or remove sessionAffinityConfig".into()),
            );
        } else if let Some(cf) = d.fields(n, path, &["clientIP"], &[]) {
            if let Some(c) = cf.get("clientIP") {
                let cpath = join(path, "clientIP");
                if let Some(tf) = d.fields(c, &cpath, &["timeoutSeconds"], &[]) {
                    if let Some(t) = tf.get("timeoutSeconds") {
                        timeout = d
                            .int(
                                t,
                                &join(&cpath, "timeoutSeconds"),
                                1,
                                MAX_AFFINITY_TIMEOUT,
                                "an integer 1-86400 (seconds)",
                            )
                            .map(|t| t as u32);
                    }
                }
            }
        }
    }
    if affinity == Some("ClientIP") {
        spec.affinity_timeout = Some(timeout.unwrap_or(DEFAULT_AFFINITY_TIMEOUT));
    }
}
