//! From a validated lab to a plan: scheduling, IPAM and naming.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::names::{deployment_pod_name, fnv1a, host_veth_name, uplink_name};
use super::*;
use crate::lab::{Diagnostic, LabError, LabFile, PodSpec, Pos};

/// A pod before it has a node and an address.
struct Wanted<'a> {
    namespace: &'a str,
    name: String,
    pos: Pos,
    field: String,
    labels: &'a BTreeMap<String, String>,
    spec: &'a PodSpec,
    owner: Option<&'a str>,
}

/// Build the plan of a lab. Errors are the lab file's (a node out of
/// addresses, a name too long once generated), with positions.
pub fn build(file: &LabFile) -> Result<Plan, LabError> {
    let lab = &file.lab;
    let net = &lab.network;
    let mut diags = Vec::new();
    let diag = |pos: Pos, field: &str, message: String, hint: Option<String>| Diagnostic {
        source: file.source.clone(),
        pos,
        field: field.to_string(),
        message,
        hint,
    };

    // Node network: .1 is the gateway (the bridge), nodes from .2 like kind,
    // clients at the top of the range.
    let node_hosts: Vec<Ipv4Addr> = net.node_cidr.hosts().collect();
    let needed = lab.nodes.len() + 3;
    if node_hosts.len() < needed {
        diags.push(diag(
            lab.pos,
            "spec.network.nodeCIDR",
            format!(
                "{} holds {} addresses, the lab needs {needed} (gateway, {} nodes, external, lb)",
                net.node_cidr,
                node_hosts.len(),
                lab.nodes.len()
            ),
            Some("use a shorter prefix, e.g. /24".into()),
        ));
        return Err(LabError { diagnostics: diags });
    }
    let gateway = node_hosts[0];
    let node_pod_cidrs: Vec<Ipv4Net> = match net.pod_cidr.subnets(net.node_pod_prefix) {
        Ok(s) => s.skip(1).take(lab.nodes.len()).collect(),
        Err(_) => Vec::new(),
    };
    if node_pod_cidrs.len() < lab.nodes.len() {
        diags.push(diag(
            lab.pos,
            "spec.network.podCIDR",
            format!(
                "{} split into /{} gives fewer than {} node pod CIDRs",
                net.pod_cidr,
                net.node_pod_prefix,
                lab.nodes.len()
            ),
            Some("use a shorter podCIDR prefix or a longer podCIDRMask".into()),
        ));
        return Err(LabError { diagnostics: diags });
    }

    let mut nodes: Vec<NodePlan> = lab
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let pod_cidr = node_pod_cidrs[i];
            NodePlan {
                name: n.name.clone(),
                netns: format!("{}-{}", lab.name, n.name),
                ip: node_hosts[i + 1],
                uplink: uplink_name("nd", &n.name),
                pod_cidr,
                pod_gateway: first_host(pod_cidr),
                routes: Vec::new(),
                labels: n.labels.clone(),
            }
        })
        .collect();
    let others: Vec<(Ipv4Net, Ipv4Addr)> = nodes.iter().map(|n| (n.pod_cidr, n.ip)).collect();
    for node in &mut nodes {
        node.routes = others
            .iter()
            .filter(|(cidr, _)| *cidr != node.pod_cidr)
            .map(|&(dst, via)| RoutePlan { dst, via })
            .collect();
    }

    // Pods, then each Deployment's replicas, in file order.
    let mut wanted: Vec<Wanted> = file
        .pods
        .iter()
        .map(|p| Wanted {
            namespace: &p.namespace,
            name: p.name.clone(),
            pos: p.pos,
            field: "metadata.name".into(),
            labels: &p.labels,
            spec: &p.spec,
            owner: None,
        })
        .collect();
    for d in &file.deployments {
        let template =
            serde_json::to_string(&(&d.template_labels, &d.template)).unwrap_or_default();
        let hash = fnv1a(&[&template]);
        for i in 0..d.replicas {
            let name = deployment_pod_name(&d.name, hash, i);
            if name.len() > 63 {
                diags.push(diag(
                    d.pos,
                    "metadata.name",
                    format!(
                        "deployment {}: its pods would be named {name}, longer than 63 characters",
                        d.name
                    ),
                    Some("use a deployment name of at most 47 characters".into()),
                ));
                break;
            }
            wanted.push(Wanted {
                namespace: &d.namespace,
                name,
                pos: d.pos,
                field: "spec.replicas".into(),
                labels: &d.template_labels,
                spec: &d.template,
                owner: Some(&d.name),
            });
        }
    }

    // Scheduling: a pinned pod goes to its node; the others to the node with
    // the fewest pods so far, first in order on a tie — spreading as the
    // scheduler's default spreading does, deterministically.
    let node_index: BTreeMap<&str, usize> = lab
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut load = vec![0usize; nodes.len()];
    let mut placed: Vec<Option<usize>> = vec![None; wanted.len()];
    for (w, slot) in wanted.iter().zip(placed.iter_mut()) {
        if let Some(i) = w.spec.node_name.as_deref().and_then(|n| node_index.get(n)) {
            *slot = Some(*i);
            load[*i] += 1;
        }
    }
    for (w, slot) in wanted.iter().zip(placed.iter_mut()) {
        if slot.is_none() && w.spec.node_name.is_none() {
            let i = (0..nodes.len()).min_by_key(|&i| (load[i], i)).unwrap_or(0);
            *slot = Some(i);
            load[i] += 1;
        }
    }

    // IPAM: .1 of each node's pod CIDR is cni0, pods from .2 in file order.
    let mut next_host: Vec<Box<dyn Iterator<Item = Ipv4Addr>>> = nodes
        .iter()
        .map(|n| Box::new(n.pod_cidr.hosts().skip(1)) as Box<dyn Iterator<Item = Ipv4Addr>>)
        .collect();
    let mut veths: Vec<HashSet<String>> = vec![HashSet::new(); nodes.len()];
    let mut pods = Vec::with_capacity(wanted.len());
    let mut full_reported = vec![false; nodes.len()];
    for (w, slot) in wanted.iter().zip(placed) {
        // A pod pinned to a missing node was already reported by validation.
        let Some(ni) = slot else { continue };
        let node = &nodes[ni];
        let Some(ip) = next_host[ni].next() else {
            if !full_reported[ni] {
                full_reported[ni] = true;
                let holds = node.pod_cidr.hosts().count().saturating_sub(1);
                diags.push(diag(
                    w.pos,
                    &w.field,
                    format!(
                        "pod {}/{}: node {} has no pod address left: its pod CIDR {} holds {holds} pods, the lab puts {} there",
                        w.namespace, w.name, node.name, node.pod_cidr, load[ni]
                    ),
                    Some("add nodes, lower the replicas, or use a shorter spec.network.podCIDRMask".into()),
                ));
            }
            continue;
        };
        let mut salt = 0;
        let host_veth = loop {
            let v = host_veth_name(w.namespace, &w.name, salt);
            if veths[ni].insert(v.clone()) {
                break v;
            }
            salt += 1;
        };
        pods.push(PodPlan {
            namespace: w.namespace.to_string(),
            name: w.name.clone(),
            node: node.name.clone(),
            netns: format!("{}-{}-{}", lab.name, w.namespace, w.name),
            ip,
            prefix: node.pod_cidr.prefix_len(),
            gateway: node.pod_gateway,
            host_veth,
            hostname: w.spec.hostname.clone().unwrap_or_else(|| w.name.clone()),
            subdomain: w.spec.subdomain.clone(),
            labels: w.labels.clone(),
            owner: w.owner.map(str::to_string),
            restart_policy: w.spec.restart_policy,
            ports: w
                .spec
                .containers
                .iter()
                .flat_map(|c| {
                    c.ports.iter().map(|p| PortPlan {
                        container: c.name.clone(),
                        name: p.name.clone(),
                        port: p.container_port,
                        protocol: p.protocol,
                    })
                })
                .collect(),
            processes: w
                .spec
                .containers
                .iter()
                .filter(|c| !c.command.is_empty() || !c.args.is_empty())
                .map(|c| ProcessPlan {
                    container: c.name.clone(),
                    // Without an image there is no entrypoint: `args` alone
                    // are taken as the command line.
                    argv: c.command.iter().chain(&c.args).cloned().collect(),
                    env: c
                        .env
                        .iter()
                        .map(|e| (e.name.clone(), e.value.clone()))
                        .collect(),
                })
                .collect(),
            dns: PodDns {
                policy: w.spec.dns_policy,
                config: w.spec.dns_config.clone(),
            },
            service_links: w.spec.enable_service_links,
            role: PodRole::Echo,
        });
    }

    // Cluster DNS: the coredns pod on the first node, after the lab's own
    // pods so that their addresses do not depend on it.
    if let Some(node) = nodes.first() {
        match next_host[0].next() {
            Some(ip) => {
                let mut pod = super::dns::coredns_pod(&lab.name, node, ip);
                let mut salt = 0;
                while !veths[0].insert(pod.host_veth.clone()) {
                    salt += 1;
                    pod.host_veth = host_veth_name(&pod.namespace, &pod.name, salt);
                }
                pods.push(pod);
            }
            None => diags.push(diag(
                lab.pos,
                "spec.network.podCIDRMask",
                format!(
                    "node {}: no pod address left for the cluster DNS pod (kube-system/coredns)",
                    node.name
                ),
                Some(
                    "add nodes, lower the replicas, or use a shorter spec.network.podCIDRMask"
                        .into(),
                ),
            )),
        }
    }
    for (kind, pos, clash) in super::dns::reserved_clashes(file) {
        diags.push(diag(
            pos,
            "metadata.name",
            format!("{kind} kube-system/{clash} is reserved: podlab makes it for cluster DNS"),
            Some(format!(
                "name the {kind} differently, or put it in another namespace"
            )),
        ));
    }

    let top = node_hosts.len() - 1;
    let clients = [("external", node_hosts[top]), ("lb", node_hosts[top - 1])]
        .into_iter()
        .map(|(name, ip)| ClientPlan {
            name: name.into(),
            netns: format!("{}-{name}", lab.name),
            ip,
            uplink: uplink_name("cl", name),
        })
        .collect();

    let mut services = super::services::plan_services(file, &pods);
    services.extend(super::dns::kube_dns_service(&pods, net.dns_ip));
    let policies = super::netpol::plan_policies(file, &pods);
    let plan = Plan {
        version: PLAN_VERSION,
        lab: lab.name.clone(),
        source: file.source.clone(),
        net: NetPlan {
            netns: format!("{}-net", lab.name),
            bridge: NODE_BRIDGE.into(),
            gateway,
            cidr: net.node_cidr,
        },
        nodes,
        pods,
        clients,
        services,
        policies,
        cluster_domain: net.cluster_domain.clone(),
        service_cidr: net.service_cidr,
        dns_ip: net.dns_ip,
        mtu: net.mtu,
        dns_upstream: super::dns::upstream_plan(&lab.dns_upstream),
    };

    // Namespace names are `<lab>-<thing>`: two things must not collide (a
    // node called `default-web` and pod `web`, say).
    let mut seen = HashSet::new();
    for name in plan.netns_names() {
        if !seen.insert(name) {
            diags.push(diag(
                lab.pos,
                "metadata.name",
                format!("two objects of the lab would share the network namespace {name}"),
                Some("rename the node or the pod".into()),
            ));
        }
    }

    if diags.is_empty() {
        Ok(plan)
    } else {
        Err(LabError { diagnostics: diags })
    }
}

fn first_host(net: Ipv4Net) -> Ipv4Addr {
    net.hosts().next().unwrap_or(net.network())
}
