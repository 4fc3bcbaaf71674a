//! `networking.k8s.io/v1` NetworkPolicy: the spec, decoded field by field.
//!
//! Rules of a single policy (selector operators and their values, an
//! ipBlock's `except` inside its `cidr`, port names, `endPort`) are checked
//! here, where positions are at hand; a policy in a namespace that does not
//! exist, and what a policy selects, are `validate`'s.

use ipnet::Ipv4Net;

use super::super::types::*;
use super::super::validate::{did_you_mean, is_iana_svc_name};
use super::super::yaml::{Node, Value};
use super::{join, Decoder, PortOrName};

const SPEC: &[&str] = &["podSelector", "policyTypes", "ingress", "egress"];
const SELECTOR: &[&str] = &["matchLabels", "matchExpressions"];
const REQUIREMENT: &[&str] = &["key", "operator", "values"];
const PEER: &[&str] = &["podSelector", "namespaceSelector", "ipBlock"];
const IP_BLOCK: &[&str] = &["cidr", "except"];
const PORT: &[&str] = &["protocol", "port", "endPort"];
const OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];
const TYPES: &[&str] = &["Ingress", "Egress"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

const PORT_NAME_RULE: &str = "a port name (IANA_SVC_NAME) is at most 15 lowercase letters, digits or '-', with at least one letter, and no leading, trailing or doubled '-'";

/// A policy's `spec`; `doc` is the document's position, for a missing spec.
pub(crate) fn spec(d: &mut Decoder, node: Option<&Node>, doc: Pos) -> PolicySpec {
    let mut spec = PolicySpec::default();
    let Some(node) = node else {
        d.err(
            doc,
            "spec",
            "network policy has no `spec`".into(),
            Some(
                "a policy needs at least `spec: {podSelector: {}}` (every pod of its namespace)"
                    .into(),
            ),
        );
        return spec;
    };
    let Some(f) = d.fields(node, "spec", SPEC, &[]) else {
        return spec;
    };
    // Missing is the empty selector, as the API's Go types decode it.
    if let Some(n) = f.get("podSelector") {
        spec.pod_selector = selector(d, n, "spec.podSelector");
    }
    if let Some(n) = f.get("policyTypes") {
        let path = "spec.policyTypes";
        let mut types = Vec::new();
        for (i, item) in d
            .list(n, path, "a list of Ingress or Egress")
            .iter()
            .enumerate()
        {
            let ipath = format!("{path}[{i}]");
            match choice(d, item, &ipath, TYPES) {
                Some("Ingress") => types.push(PolicyType::Ingress),
                Some(_) => types.push(PolicyType::Egress),
                None => {}
            }
        }
        spec.policy_types = Some(types);
    }
    if let Some(n) = f.get("ingress") {
        spec.ingress = Some(rules(d, n, "spec.ingress", "from"));
    }
    if let Some(n) = f.get("egress") {
        spec.egress = Some(rules(d, n, "spec.egress", "to"));
    }
    spec
}

/// One of `choices`, with a did-you-mean for a typo.
fn choice(
    d: &mut Decoder,
    node: &Node,
    path: &str,
    choices: &[&'static str],
) -> Option<&'static str> {
    let s = d.string(node, path)?;
    if let Some(c) = choices.iter().find(|c| **c == s) {
        return Some(c);
    }
    let hint = did_you_mean(&s, choices).map(|m| format!("did you mean `{m}`?"));
    let expected = match choices {
        [init @ .., last] if !init.is_empty() => format!("{} or {last}", init.join(", ")),
        _ => choices.join(""),
    };
    d.err(
        node.pos,
        path,
        format!("expected {expected}, found `{s}`"),
        hint,
    );
    None
}

/// A `LabelSelector`: `matchLabels` and `matchExpressions`.
pub(crate) fn selector(d: &mut Decoder, node: &Node, path: &str) -> LabelSelector {
    let mut sel = LabelSelector::default();
    let Some(f) = d.fields(node, path, SELECTOR, &[]) else {
        return sel;
    };
    if let Some(n) = f.get("matchLabels") {
        sel.match_labels = d.labels(n, &join(path, "matchLabels"));
    }
    if let Some(n) = f.get("matchExpressions") {
        let epath = join(path, "matchExpressions");
        for (i, item) in d
            .list(n, &epath, "a list of expressions")
            .iter()
            .enumerate()
        {
            if let Some(r) = requirement(d, item, &format!("{epath}[{i}]")) {
                sel.match_expressions.push(r);
            }
        }
    }
    sel
}

fn requirement(d: &mut Decoder, node: &Node, path: &str) -> Option<SelectorRequirement> {
    let f = d.fields(node, path, REQUIREMENT, &[])?;
    let key = match f.get("key") {
        Some(n) => {
            let key = d.string(n, &join(path, "key"))?;
            if let Some(problem) = super::super::validate::label_problem(&key, "") {
                d.err(n.pos, join(path, "key"), problem, None);
                return None;
            }
            key
        }
        None => {
            d.err(
                f.pos,
                join(path, "key"),
                "expression has no `key`".into(),
                Some("add the label key it tests, e.g. `key: app`".into()),
            );
            return None;
        }
    };
    let Some(op_node) = f.get("operator") else {
        d.err(
            f.pos,
            join(path, "operator"),
            "expression has no `operator`".into(),
            Some("add one of In, NotIn, Exists, DoesNotExist".into()),
        );
        return None;
    };
    let operator = match choice(d, op_node, &join(path, "operator"), OPERATORS)? {
        "In" => SelectorOp::In,
        "NotIn" => SelectorOp::NotIn,
        "Exists" => SelectorOp::Exists,
        _ => SelectorOp::DoesNotExist,
    };
    let mut values = Vec::new();
    if let Some(n) = f.get("values") {
        let vpath = join(path, "values");
        for (i, item) in d
            .list(n, &vpath, "a list of label values")
            .iter()
            .enumerate()
        {
            let ipath = format!("{vpath}[{i}]");
            // Label values are strings; a bare number or boolean is one too
            // once quoted, which is what the API server would say.
            if let Some(v) = d.string(item, &ipath) {
                if let Some(problem) = super::super::validate::label_problem("k", &v) {
                    d.err(item.pos, ipath, problem, None);
                } else {
                    values.push(v);
                }
            }
        }
    }
    let given = f.get("values").map_or(op_node.pos, |n| n.pos);
    match operator {
        SelectorOp::In | SelectorOp::NotIn if values.is_empty() => {
            d.err(
                given,
                join(path, "values"),
                format!("operator {operator:?} needs at least one value"),
                Some("list the label values it tests, e.g. `values: [web]`".into()),
            );
            return None;
        }
        SelectorOp::Exists | SelectorOp::DoesNotExist if f.get("values").is_some() => {
            d.err(
                given,
                join(path, "values"),
                format!("operator {operator:?} takes no values"),
                Some("remove `values`, or use In / NotIn".into()),
            );
            return None;
        }
        _ => {}
    }
    Some(SelectorRequirement {
        key,
        operator,
        values,
    })
}

/// `spec.ingress` or `spec.egress`; `peers` is `from` or `to`.
fn rules(d: &mut Decoder, node: &Node, path: &str, peers: &'static str) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for (i, item) in d.list(node, path, "a list of rules").iter().enumerate() {
        let rpath = format!("{path}[{i}]");
        // `- {}` is a rule that allows everything; `- ` (null) too.
        if item.value == Value::Null {
            out.push(PolicyRule::default());
            continue;
        }
        let Some(f) = d.fields(item, &rpath, &[peers, "ports"], &[]) else {
            continue;
        };
        let mut rule = PolicyRule::default();
        if let Some(n) = f.get(peers) {
            let ppath = join(&rpath, peers);
            for (j, p) in d.list(n, &ppath, "a list of peers").iter().enumerate() {
                if let Some(peer) = peer(d, p, &format!("{ppath}[{j}]")) {
                    rule.peers.push(peer);
                }
            }
        }
        if let Some(n) = f.get("ports") {
            let ppath = join(&rpath, "ports");
            for (j, p) in d.list(n, &ppath, "a list of ports").iter().enumerate() {
                if let Some(port) = port(d, p, &format!("{ppath}[{j}]")) {
                    rule.ports.push(port);
                }
            }
        }
        out.push(rule);
    }
    out
}

fn peer(d: &mut Decoder, node: &Node, path: &str) -> Option<PolicyPeer> {
    let f = d.fields(node, path, PEER, &[])?;
    let pods = f.get("podSelector");
    let namespaces = f.get("namespaceSelector");
    if let Some(b) = f.get("ipBlock") {
        if pods.is_some() || namespaces.is_some() {
            d.err(
                b.pos,
                join(path, "ipBlock"),
                "a peer with ipBlock can have no podSelector or namespaceSelector".into(),
                Some(
                    "make them two peers (two `- ` items): peers in a list are alternatives".into(),
                ),
            );
            return None;
        }
        return ip_block(d, b, &join(path, "ipBlock"));
    }
    if pods.is_none() && namespaces.is_none() {
        if f.suggested.is_empty() {
            d.err(
                f.pos,
                path.to_string(),
                "a peer needs podSelector, namespaceSelector or ipBlock".into(),
                Some("to allow everyone, leave the whole `from`/`to` out; to allow every pod of the cluster, use `namespaceSelector: {}`".into()),
            );
        }
        return None;
    }
    Some(PolicyPeer::Pods {
        pod_selector: pods.map(|n| selector(d, n, &join(path, "podSelector"))),
        namespace_selector: namespaces.map(|n| selector(d, n, &join(path, "namespaceSelector"))),
    })
}

fn cidr(d: &mut Decoder, node: &Node, path: &str) -> Option<Ipv4Net> {
    let s = d.string(node, path)?;
    match s.parse::<Ipv4Net>() {
        Ok(net) if net.trunc() == net => Some(net),
        Ok(net) => {
            d.err(
                node.pos,
                path,
                format!("CIDR `{s}` has host bits set"),
                Some(format!("did you mean {}?", net.trunc())),
            );
            None
        }
        Err(_) => {
            let hint = if s.parse::<ipnet::Ipv6Net>().is_ok() {
                "podlab is single-stack IPv4".to_string()
            } else if s.parse::<std::net::Ipv4Addr>().is_ok() {
                format!("a CIDR has a prefix length: `{s}/32` for one address")
            } else {
                "an IPv4 CIDR like 10.0.0.0/16".to_string()
            };
            d.err(
                node.pos,
                path,
                format!("expected an IPv4 CIDR, found `{s}`"),
                Some(hint),
            );
            None
        }
    }
}

fn ip_block(d: &mut Decoder, node: &Node, path: &str) -> Option<PolicyPeer> {
    let f = d.fields(node, path, IP_BLOCK, &[])?;
    let Some(c) = f.get("cidr") else {
        d.err(
            f.pos,
            join(path, "cidr"),
            "ipBlock has no `cidr`".into(),
            Some("add the addresses it allows, e.g. `cidr: 10.0.0.0/8`".into()),
        );
        return None;
    };
    let net = cidr(d, c, &join(path, "cidr"))?;
    let mut except = Vec::new();
    if let Some(n) = f.get("except") {
        let epath = join(path, "except");
        for (i, item) in d.list(n, &epath, "a list of CIDRs").iter().enumerate() {
            let ipath = format!("{epath}[{i}]");
            let Some(e) = cidr(d, item, &ipath) else {
                continue;
            };
            // As the API server: an except must be strictly inside the cidr.
            if !net.contains(&e) || e.prefix_len() <= net.prefix_len() {
                d.err(
                    item.pos,
                    ipath,
                    format!("except {e} is not inside the ipBlock's cidr {net}"),
                    Some(format!(
                        "an except carves addresses out of the cidr: it must be a smaller block of {net}"
                    )),
                );
                continue;
            }
            except.push(e);
        }
    }
    Some(PolicyPeer::IpBlock { cidr: net, except })
}

fn port(d: &mut Decoder, node: &Node, path: &str) -> Option<PolicyPort> {
    let f = d.fields(node, path, PORT, &[])?;
    let mut protocol = Protocol::Tcp;
    if let Some(n) = f.get("protocol") {
        match choice(d, n, &join(path, "protocol"), PROTOCOLS)? {
            "UDP" => protocol = Protocol::Udp,
            "SCTP" => protocol = Protocol::Sctp,
            _ => {}
        }
    }
    let mut number = None;
    if let Some(n) = f.get("port") {
        number = Some(port_number(d, n, &join(path, "port"))?);
    }
    let mut end_port = None;
    if let Some(n) = f.get("endPort") {
        let epath = join(path, "endPort");
        let end = d.int(n, &epath, 1, 65535, "an integer 1-65535")? as u16;
        match &number {
            None => {
                d.err(
                    n.pos,
                    epath,
                    "endPort needs a `port`: the range is port-endPort".into(),
                    Some("add `port:` with the first port of the range".into()),
                );
                return None;
            }
            Some(PolicyPortNumber::Name(name)) => {
                d.err(
                    n.pos,
                    epath,
                    format!("endPort needs a numeric port, and port is the name `{name}`"),
                    Some(
                        "a range is between numbers: give port as a number, or remove endPort"
                            .into(),
                    ),
                );
                return None;
            }
            Some(PolicyPortNumber::Number(p)) if end < *p => {
                d.err(
                    n.pos,
                    epath,
                    format!("endPort {end} is lower than port {p}"),
                    Some(format!(
                        "the range is port-endPort: endPort must be at least {p}"
                    )),
                );
                return None;
            }
            Some(_) => end_port = Some(end),
        }
    }
    Some(PolicyPort {
        protocol,
        port: number,
        end_port,
    })
}

/// `port`: a number, or the name of a container port.
fn port_number(d: &mut Decoder, n: &Node, path: &str) -> Option<PolicyPortNumber> {
    let text = match d.port_or_name(n, path)? {
        PortOrName::Number(p) => return Some(PolicyPortNumber::Number(p)),
        PortOrName::Name(text) => text,
    };
    if !is_iana_svc_name(text) {
        let hint = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            "remove the quotes: a number in quotes is a port name, and a port name needs a letter"
                .to_string()
        } else {
            PORT_NAME_RULE.to_string()
        };
        d.err(
            n.pos,
            path,
            format!("port name `{text}` is not valid"),
            Some(hint),
        );
        return None;
    }
    Some(PolicyPortNumber::Name(text.clone()))
}
