//! `v1/Endpoints` and `discovery.k8s.io/v1/EndpointSlice` written by hand:
//! the endpoints of a Service without a selector. Only what kube-proxy and
//! DNS read is kept (addresses, readiness, ports); the rest is listed as
//! ignored, as for every kind.

use std::net::Ipv4Addr;

use super::super::types::*;
use super::super::yaml::Node;
use super::{join, Decoder, Scope, TOP_IGNORED};

const ENDPOINTS: &[&str] = &["apiVersion", "kind", "metadata", "subsets"];
const SUBSET: &[&str] = &["addresses", "notReadyAddresses", "ports"];
const ADDRESS: &[&str] = &["ip"];
const ADDRESS_IGNORED: &[&str] = &["hostname", "nodeName", "targetRef"];
const PORT: &[&str] = &["name", "port", "protocol"];
const PORT_IGNORED: &[&str] = &["appProtocol"];

const SLICE: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "addressType",
    "endpoints",
    "ports",
];
const SLICE_ENDPOINT: &[&str] = &["addresses", "conditions"];
const SLICE_ENDPOINT_IGNORED: &[&str] = &[
    "hostname",
    "nodeName",
    "targetRef",
    "zone",
    "hints",
    "deprecatedTopology",
];
const CONDITIONS: &[&str] = &["ready"];
const CONDITIONS_IGNORED: &[&str] = &["serving", "terminating"];

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Addresses stand for many pods' worth of rules: bounded as replicas are.
const MAX_ADDRESSES: usize = 1000;

pub(super) fn endpoints(d: &mut Decoder, file: &mut LabFile, doc: &Node) {
    let Some(f) = d.fields(doc, "", ENDPOINTS, TOP_IGNORED) else {
        return;
    };
    let meta = d.meta(f.get("metadata"), "metadata", Scope::Namespaced);
    let Some((name, pos)) = d.required_name(&meta, &f, "endpoints") else {
        return;
    };
    let mut subsets = Vec::new();
    if let Some(list) = f.get("subsets") {
        for (i, s) in d
            .list(list, "subsets", "a list of subsets")
            .iter()
            .enumerate()
        {
            if let Some(s) = subset(d, s, &format!("subsets[{i}]")) {
                subsets.push(s);
            }
        }
    }
    push(
        d,
        file,
        &meta,
        name,
        name_as_service(&meta),
        pos,
        HandEndpointsKind::Endpoints,
        subsets,
    );
}

/// An Endpoints serves the Service of its own name.
fn name_as_service(meta: &super::Meta) -> Option<String> {
    meta.name.as_ref().map(|(n, _)| n.clone())
}

fn subset(d: &mut Decoder, node: &Node, path: &str) -> Option<HandSubset> {
    let f = d.fields(node, path, SUBSET, &[])?;
    let addresses = |d: &mut Decoder, key: &str| -> Vec<Ipv4Addr> {
        let Some(list) = f.get(key) else {
            return Vec::new();
        };
        let field = join(path, key);
        d.list(list, &field, "a list of addresses")
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let at = format!("{field}[{i}]");
                let af = d.fields(a, &at, ADDRESS, ADDRESS_IGNORED)?;
                let Some(ip) = af.get("ip") else {
                    d.err(
                        af.pos,
                        join(&at, "ip"),
                        "address has no ip".into(),
                        Some("add `ip:`, e.g. `ip: 10.244.1.5`".into()),
                    );
                    return None;
                };
                ipv4(d, ip, &join(&at, "ip"))
            })
            .collect()
    };
    let ready = addresses(d, "addresses");
    let not_ready = addresses(d, "notReadyAddresses");
    let ports = match f.get("ports") {
        Some(list) => ports(d, list, &join(path, "ports")),
        None => Vec::new(),
    };
    Some(HandSubset {
        ready,
        not_ready,
        ports,
    })
}

pub(super) fn slice(d: &mut Decoder, file: &mut LabFile, doc: &Node) {
    let Some(f) = d.fields(doc, "", SLICE, TOP_IGNORED) else {
        return;
    };
    let meta = d.meta(f.get("metadata"), "metadata", Scope::Namespaced);
    let Some((name, pos)) = d.required_name(&meta, &f, "endpoint slice") else {
        return;
    };
    match f.get("addressType") {
        None => d.err(
            f.pos,
            "addressType",
            "endpoint slice has no addressType".into(),
            Some("add `addressType: IPv4`".into()),
        ),
        Some(n) => {
            if let Some(t) = d.string(n, "addressType") {
                if t != "IPv4" {
                    d.err(
                        n.pos,
                        "addressType",
                        format!("addressType `{t}` is not served: a lab's network is IPv4 only"),
                        Some("use `addressType: IPv4`".into()),
                    );
                    return;
                }
            }
        }
    }
    let mut subset = HandSubset {
        ready: Vec::new(),
        not_ready: Vec::new(),
        ports: Vec::new(),
    };
    if let Some(list) = f.get("endpoints") {
        for (i, e) in d
            .list(list, "endpoints", "a list of endpoints")
            .iter()
            .enumerate()
        {
            let at = format!("endpoints[{i}]");
            let Some(ef) = d.fields(e, &at, SLICE_ENDPOINT, SLICE_ENDPOINT_IGNORED) else {
                continue;
            };
            // The API's rule: a missing `ready` counts as ready.
            let mut ready = true;
            if let Some(c) = ef.get("conditions") {
                let cpath = join(&at, "conditions");
                if let Some(cf) = d.fields(c, &cpath, CONDITIONS, CONDITIONS_IGNORED) {
                    if let Some(r) = cf.get("ready") {
                        ready = d.boolean(r, &join(&cpath, "ready")).unwrap_or(true);
                    }
                }
            }
            let Some(addrs) = ef.get("addresses") else {
                d.err(
                    ef.pos,
                    join(&at, "addresses"),
                    "endpoint has no addresses".into(),
                    Some("add `addresses: [10.244.1.5]`".into()),
                );
                continue;
            };
            let apath = join(&at, "addresses");
            for (j, a) in d
                .list(addrs, &apath, "a list of addresses")
                .iter()
                .enumerate()
            {
                if let Some(ip) = ipv4(d, a, &format!("{apath}[{j}]")) {
                    if ready {
                        subset.ready.push(ip);
                    } else {
                        subset.not_ready.push(ip);
                    }
                }
            }
        }
    }
    if let Some(list) = f.get("ports") {
        subset.ports = ports(d, list, "ports");
    }
    let service = meta.labels.get(SERVICE_NAME_LABEL).cloned();
    if service.is_none() {
        d.err(
            pos,
            "metadata.labels",
            format!("no label `{SERVICE_NAME_LABEL}` says which Service `{name}` serves"),
            Some(format!("add the label `{SERVICE_NAME_LABEL}: <service>`, as the API requires for kube-proxy to use it")),
        );
        return;
    }
    push(
        d,
        file,
        &meta,
        name,
        service,
        pos,
        HandEndpointsKind::EndpointSlice,
        vec![subset],
    );
}

#[allow(clippy::too_many_arguments)]
fn push(
    d: &mut Decoder,
    file: &mut LabFile,
    meta: &super::Meta,
    name: String,
    service: Option<String>,
    pos: Pos,
    kind: HandEndpointsKind,
    subsets: Vec<HandSubset>,
) {
    let Some(service) = service else { return };
    let count: usize = subsets
        .iter()
        .map(|s| s.ready.len() + s.not_ready.len())
        .sum();
    if count > MAX_ADDRESSES {
        d.err(
            pos,
            "metadata.name",
            format!("{kind} `{name}` lists {count} addresses, more than {MAX_ADDRESSES}"),
            Some("split them over Services, or select pods with a selector".into()),
        );
        return;
    }
    let namespace = meta
        .namespace
        .as_ref()
        .map_or_else(|| "default".to_string(), |(s, _)| s.clone());
    file.endpoints.push(HandEndpoints {
        namespace,
        name,
        service,
        kind,
        pos,
        subsets,
    });
}

fn ports(d: &mut Decoder, list: &Node, path: &str) -> Vec<HandPort> {
    d.list(list, path, "a list of ports")
        .iter()
        .enumerate()
        .filter_map(|(i, p)| port(d, p, &format!("{path}[{i}]")))
        .collect()
}

fn port(d: &mut Decoder, node: &Node, path: &str) -> Option<HandPort> {
    let f = d.fields(node, path, PORT, PORT_IGNORED)?;
    let name = match f.get("name") {
        Some(n) => d.string(n, &join(path, "name")).filter(|s| !s.is_empty()),
        None => None,
    };
    let Some(p) = f.get("port") else {
        d.err(
            f.pos,
            join(path, "port"),
            "port has no port number".into(),
            Some("add `port:`, e.g. `port: 5432`".into()),
        );
        return None;
    };
    let port = d.int(p, &join(path, "port"), 1, 65535, "an integer 1-65535")? as u16;
    let protocol = match f.get("protocol") {
        None => Protocol::Tcp,
        Some(n) => d.protocol(n, &join(path, "protocol"))?,
    };
    Some(HandPort {
        name,
        port,
        protocol,
    })
}

fn ipv4(d: &mut Decoder, node: &Node, path: &str) -> Option<Ipv4Addr> {
    let s = d.string(node, path)?;
    match s.parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            d.err(
                node.pos,
                path,
                format!("`{s}` is not an IPv4 address"),
                Some("a lab's network is IPv4 only: write an address like 10.244.1.5".into()),
            );
            None
        }
    }
}
