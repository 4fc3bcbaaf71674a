//! From a validated lab to a plan: scheduling, IPAM and naming.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::names::{fnv1a, host_veth_name, replacement_pod_name, uplink_name};
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
    owner_kind: Option<&'static str>,
}

/// Build the plan of a lab. Errors are the lab file's (a node out of
/// addresses, a name too long once generated), with positions.
pub fn build(file: &LabFile) -> Result<Plan, LabError> {
    build_with(file, None)
}

/// Build the plan of an edited lab for a lab that runs `previous`: a pod
/// that is in both keeps its node, address and veth, and a service keeps
/// its allocated addresses and ports, so that `apply` changes only what the
/// edit changed (as Kubernetes never moves a running pod).
pub fn build_with(file: &LabFile, previous: Option<&Plan>) -> Result<Plan, LabError> {
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
    // Only the addresses used are taken: collecting every host of a large
    // network would cost memory in proportion to its size.
    let node_hosts: Vec<Ipv4Addr> = net.node_cidr.hosts().take(lab.nodes.len() + 3).collect();
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
                last_pod_ip: None,
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

    // Made before `wanted`, which borrows their specs.
    let (workload_pods, problems) = super::workloads::pods(file);
    for (pos, field, message, hint) in problems {
        diags.push(diag(pos, field, message, hint));
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
            owner_kind: None,
        })
        .collect();
    for d in &file.deployments {
        let template =
            serde_json::to_string(&(&d.template_labels, &d.template)).unwrap_or_default();
        let hash = fnv1a(&[&template]);
        for i in 0..d.replicas {
            let generation = d.replaced.get(&i).copied().unwrap_or(0);
            let name = replacement_pod_name(&d.name, hash, i, generation);
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
                owner_kind: Some("ReplicaSet"),
            });
        }
    }
    // Then the StatefulSets', DaemonSets' and ReplicaSets' pods.
    wanted.extend(workload_pods.iter().map(|p| Wanted {
        namespace: p.namespace,
        name: p.name.clone(),
        pos: p.pos,
        field: "metadata.name".into(),
        labels: p.labels,
        spec: &p.spec,
        owner: Some(p.owner),
        owner_kind: Some(p.owner_kind),
    }));

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
    // A running pod stays where it is, with its address and veth, unless it
    // is now pinned to another node (then it is a new pod, as a changed
    // pod spec makes one in Kubernetes).
    let previous_pods: std::collections::HashMap<(&str, &str), &PodPlan> = previous
        .map(|p| {
            p.pods
                .iter()
                .map(|x| ((x.namespace.as_str(), x.name.as_str()), x))
                .collect()
        })
        .unwrap_or_default();
    let kept: Vec<Option<&PodPlan>> = wanted
        .iter()
        .map(|w| {
            let old = *previous_pods.get(&(w.namespace, w.name.as_str()))?;
            let i = *node_index.get(old.node.as_str())?;
            let moved = w.spec.node_name.as_deref().is_some_and(|n| n != old.node);
            let same_net =
                nodes[i].pod_cidr.contains(&old.ip) && old.prefix == nodes[i].pod_cidr.prefix_len();
            (!moved && same_net).then_some(old)
        })
        .collect();
    let mut reserved: Vec<HashSet<Ipv4Addr>> = vec![HashSet::new(); nodes.len()];
    let mut veths: Vec<HashSet<String>> = vec![HashSet::new(); nodes.len()];
    // hostPorts taken on each node, and by which pod: two pods cannot
    // both have a node's port, so the scheduler puts them apart.
    let mut host_ports: Vec<BTreeMap<(Protocol, u16), String>> = vec![BTreeMap::new(); nodes.len()];
    for ((slot, old), w) in placed.iter_mut().zip(&kept).zip(&wanted) {
        if let Some(old) = old {
            if let Some(&i) = node_index.get(old.node.as_str()) {
                *slot = Some(i);
                load[i] += 1;
                take_host_ports(&mut host_ports[i], w);
                reserved[i].insert(old.ip);
                veths[i].insert(old.host_veth.clone());
            }
        }
    }
    let coredns_kept = previous
        .and_then(|p| {
            p.pods.iter().find(|x| {
                x.role == PodRole::Dns && Some(&x.node) == lab.nodes.first().map(|n| &n.name)
            })
        })
        .filter(|old| nodes.first().is_some_and(|n| n.pod_cidr.contains(&old.ip)));
    if let Some(old) = coredns_kept {
        reserved[0].insert(old.ip);
        veths[0].insert(old.host_veth.clone());
    }
    for (w, slot) in wanted.iter().zip(placed.iter_mut()) {
        if slot.is_some() {
            continue;
        }
        if let Some(i) = w.spec.node_name.as_deref().and_then(|n| node_index.get(n)) {
            if let Some((port, other)) = host_port_clash(&host_ports[*i], w) {
                diags.push(diag(
                    w.pos,
                    &w.field,
                    format!(
                        "pod {}/{}: hostPort {port} on node {} is already pod {other}'s",
                        w.namespace, w.name, nodes[*i].name
                    ),
                    Some("pin one of them to another node, or use another hostPort".into()),
                ));
                continue;
            }
            *slot = Some(*i);
            load[*i] += 1;
            take_host_ports(&mut host_ports[*i], w);
        }
    }
    for (w, slot) in wanted.iter().zip(placed.iter_mut()) {
        if slot.is_none() && w.spec.node_name.is_none() {
            let free = (0..nodes.len()).filter(|&i| host_port_clash(&host_ports[i], w).is_none());
            let Some(i) = free.min_by_key(|&i| (load[i], i)) else {
                diags.push(diag(
                    w.pos,
                    &w.field,
                    format!(
                        "pod {}/{}: no node has its hostPorts free (a cluster would leave it Pending)",
                        w.namespace, w.name
                    ),
                    Some("add nodes, lower the replicas, or drop the hostPort".into()),
                ));
                continue;
            };
            *slot = Some(i);
            load[i] += 1;
            take_host_ports(&mut host_ports[i], w);
        }
    }

    // IPAM: .1 of each node's pod CIDR is cni0, pods from .2 in file order.
    // Addresses of pods kept from a running lab are skipped, and a running
    // lab's new pods take the addresses after the last one handed out, as
    // host-local does: a replaced pod gets a new address, not its
    // predecessor's.
    let mut next_host: Vec<Ipam> = nodes
        .iter()
        .zip(&reserved)
        .map(|(n, taken)| {
            let after = previous
                .and_then(|p| p.nodes.iter().find(|o| o.name == n.name))
                .filter(|o| o.pod_cidr == n.pod_cidr)
                .and_then(|o| o.last_pod_ip);
            Ipam::new(n.pod_cidr, taken.clone(), after)
        })
        .collect();
    let mut pods = Vec::with_capacity(wanted.len());
    let mut full_reported = vec![false; nodes.len()];
    for ((w, slot), old) in wanted.iter().zip(placed).zip(&kept) {
        // A pod pinned to a missing node was already reported by validation.
        let Some(ni) = slot else { continue };
        let node = &nodes[ni];
        let ip = match old {
            Some(old) => Some(old.ip),
            None => next_host[ni].next(),
        };
        let Some(ip) = ip else {
            if !full_reported[ni] {
                full_reported[ni] = true;
                let holds = host_count(node.pod_cidr).saturating_sub(1);
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
        let host_veth = match old {
            Some(old) => old.host_veth.clone(),
            None => {
                let mut salt = 0;
                loop {
                    let v = host_veth_name(w.namespace, &w.name, salt);
                    if veths[ni].insert(v.clone()) {
                        break v;
                    }
                    salt += 1;
                }
            }
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
            owner_kind: w.owner_kind.map(str::to_string),
            restart_policy: w.spec.restart_policy,
            containers: w.spec.containers.iter().map(|c| c.name.clone()).collect(),
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
                        host_port: p.host_port,
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
            probes: super::probes::of(&w.spec.containers),
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
        match coredns_kept
            .map(|old| old.ip)
            .or_else(|| next_host[0].next())
        {
            Some(ip) => {
                let mut pod = super::dns::coredns_pod(&lab.name, node, ip);
                match coredns_kept {
                    Some(old) => pod.host_veth = old.host_veth.clone(),
                    None => {
                        let mut salt = 0;
                        while !veths[0].insert(pod.host_veth.clone()) {
                            salt += 1;
                            pod.host_veth = host_veth_name(&pod.namespace, &pod.name, salt);
                        }
                    }
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

    // The last two usable addresses; the network holds at least four (the
    // check above), so it is a /29 or larger and has a broadcast address.
    let last = u32::from(net.node_cidr.broadcast()) - 1;
    let clients = [
        ("external", Ipv4Addr::from(last)),
        ("lb", Ipv4Addr::from(last - 1)),
    ]
    .into_iter()
    .map(|(name, ip)| ClientPlan {
        name: name.into(),
        netns: format!("{}-{name}", lab.name),
        ip,
        uplink: uplink_name("cl", name),
    })
    .collect();

    let mut services =
        super::services::plan_services(file, &pods, previous.map(|p| p.services.as_slice()));
    services.extend(super::dns::kube_dns_service(&pods, net.dns_ip));
    let policies = super::netpol::plan_policies(file, &pods);
    for (node, ipam) in nodes.iter_mut().zip(&next_host) {
        node.last_pod_ip = ipam.last;
    }
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
        workloads: super::workloads::plan_workloads(file),
        cluster_domain: net.cluster_domain.clone(),
        service_cidr: net.service_cidr,
        dns_ip: net.dns_ip,
        mtu: net.mtu,
        dns_upstream: super::dns::upstream_plan(&lab.dns_upstream),
        deployments: file
            .deployments
            .iter()
            .map(|d| super::DeploymentPlan {
                namespace: d.namespace.clone(),
                name: d.name.clone(),
                labels: d.labels.clone(),
                replicas: d.replicas,
                selector: d.selector.clone(),
                template_labels: d.template_labels.clone(),
                containers: d
                    .template
                    .containers
                    .iter()
                    .map(|c| (c.name.clone(), c.image.clone()))
                    .collect(),
            })
            .collect(),
        namespace_labels: file
            .namespaces
            .iter()
            .filter(|n| !n.labels.is_empty())
            .map(|n| (n.name.clone(), n.labels.clone()))
            .collect(),
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

/// One node's pod addresses, handed out round-robin from after `last`
/// (host-local's `last_reserved_ip`), skipping `taken`.
struct Ipam {
    hosts: Box<dyn Iterator<Item = Ipv4Addr>>,
    /// The last address handed out, kept in the plan for the next build.
    last: Option<Ipv4Addr>,
}

impl Ipam {
    fn new(cidr: Ipv4Net, taken: HashSet<Ipv4Addr>, after: Option<Ipv4Addr>) -> Ipam {
        // .1 is cni0. Walking lazily: a /16 per node must not be collected.
        let start = after.filter(|a| cidr.contains(a)).map_or(0, |a| {
            u32::from(a).saturating_sub(u32::from(first_host(cidr)))
        });
        let pool = move || cidr.hosts().skip(1);
        let later = pool().skip(start as usize);
        let earlier = pool().take(start as usize);
        Ipam {
            hosts: Box::new(later.chain(earlier).filter(move |ip| !taken.contains(ip))),
            last: after,
        }
    }

    fn next(&mut self) -> Option<Ipv4Addr> {
        let ip = self.hosts.next()?;
        self.last = Some(ip);
        Some(ip)
    }
}

/// What `Ipv4Net::hosts()` yields, without walking it.
fn host_count(net: Ipv4Net) -> u64 {
    match net.prefix_len() {
        32 => 1,
        31 => 2,
        p => (1u64 << (32 - u32::from(p))) - 2,
    }
}

fn first_host(net: Ipv4Net) -> Ipv4Addr {
    net.hosts().next().unwrap_or(net.network())
}

fn wanted_host_ports<'a>(w: &'a Wanted) -> impl Iterator<Item = (Protocol, u16)> + 'a {
    w.spec
        .containers
        .iter()
        .flat_map(|c| &c.ports)
        .filter_map(|p| p.host_port.map(|h| (p.protocol, h)))
}

/// A hostPort of `w` another pod already has on the node: the port
/// (`8080/TCP`) and that pod.
fn host_port_clash(
    taken: &BTreeMap<(Protocol, u16), String>,
    w: &Wanted,
) -> Option<(String, String)> {
    wanted_host_ports(w).find_map(|k| {
        taken
            .get(&k)
            .map(|other| (format!("{}/{}", k.1, k.0), other.clone()))
    })
}

fn take_host_ports(taken: &mut BTreeMap<(Protocol, u16), String>, w: &Wanted) {
    for k in wanted_host_ports(w) {
        taken.insert(k, format!("{}/{}", w.namespace, w.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: carry}
spec: {nodes: 2}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80}]
";

    fn plan(text: &str, previous: Option<&Plan>) -> Plan {
        let file = crate::lab::parse("t.yaml", text).expect("test lab parses");
        build_with(&file, previous).expect("test lab plans")
    }

    fn lab(replicas: u32, extra: &str) -> String {
        format!("{}{extra}", LAB.replace("REPLICAS", &replicas.to_string()))
    }

    fn addr(p: &Plan, name: &str) -> (String, Ipv4Addr, String) {
        let pod = p.pods.iter().find(|x| x.name == name).expect("pod in plan");
        (pod.node.clone(), pod.ip, pod.host_veth.clone())
    }

    #[test]
    fn unchanged_lab_plans_the_same_with_its_previous_plan() {
        let first = plan(&lab(3, ""), None);
        assert_eq!(plan(&lab(3, ""), Some(&first)), first);
    }

    #[test]
    fn running_pods_keep_node_address_and_veth_when_pods_are_added_before_them() {
        let first = plan(&lab(3, ""), None);
        // A pod listed first would take the first addresses of a fresh plan.
        let first_pod = "---
apiVersion: v1
kind: Pod
metadata: {name: aaa}
spec: {containers: [{name: c, image: busybox}]}
";
        let text = format!("{}{first_pod}", lab(5, ""));
        let second = plan(&text, Some(&first));
        for p in first.pods.iter() {
            assert_eq!(
                addr(&second, &p.name),
                addr(&first, &p.name),
                "{} moved",
                p.name
            );
        }
        let ips: HashSet<Ipv4Addr> = second.pods.iter().map(|p| p.ip).collect();
        assert_eq!(ips.len(), second.pods.len(), "an address was given twice");
        let fresh = plan(&text, None);
        assert_eq!(fresh.pods.len(), second.pods.len());
    }

    #[test]
    fn scaling_down_frees_addresses_and_keeps_the_rest() {
        let first = plan(&lab(4, ""), None);
        let second = plan(&lab(2, ""), Some(&first));
        assert_eq!(second.pods.len(), first.pods.len() - 2);
        for p in &second.pods {
            assert_eq!(addr(&second, &p.name), addr(&first, &p.name));
        }
        let web = second
            .services
            .iter()
            .find(|s| s.name == "web")
            .expect("svc");
        assert_eq!(web.endpoints.len(), 2);
    }

    #[test]
    fn services_keep_cluster_ip_and_node_port_when_others_are_added() {
        let first = plan(&lab(1, ""), None);
        let more: String = (0..40)
            .map(|i| {
                format!(
                    "---
apiVersion: v1
kind: Service
metadata: {{name: s{i}}}
spec: {{type: LoadBalancer, selector: {{app: web}}, ports: [{{port: 80}}]}}
"
                )
            })
            .collect();
        let second = plan(&lab(1, &more), Some(&first));
        let a = first
            .services
            .iter()
            .find(|s| s.name == "web")
            .expect("svc");
        let b = second
            .services
            .iter()
            .find(|s| s.name == "web")
            .expect("svc");
        assert_eq!(a.cluster_ip, b.cluster_ip);
        assert_eq!(a.ports[0].node_port, b.ports[0].node_port);
        let ips: HashSet<_> = second
            .services
            .iter()
            .filter_map(|s| s.cluster_ip)
            .collect();
        assert_eq!(
            ips.len(),
            second.services.len(),
            "a cluster IP was given twice"
        );
        let ports: HashSet<_> = second
            .services
            .iter()
            .filter_map(|s| s.ports[0].node_port)
            .collect();
        assert_eq!(
            ports.len(),
            second.services.len() - 1,
            "a node port was given twice"
        );
    }

    const HOST_PORT_LAB: &str = "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: hp}
spec: {nodes: 2}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, ports: [{containerPort: 80, hostPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: light}
spec: {nodeName: node-1, containers: [{name: c}]}
";

    #[test]
    fn pods_with_the_same_host_port_go_to_different_nodes() {
        let text = HOST_PORT_LAB.replace("REPLICAS", "2");
        let p = plan(&text, None);
        let mut nodes: Vec<&str> = p
            .pods
            .iter()
            .filter(|x| x.name.starts_with("web-"))
            .map(|x| x.node.as_str())
            .collect();
        nodes.sort();
        assert_eq!(nodes, ["node-1", "node-2"]);
        let web = p.pods.iter().find(|x| x.name.starts_with("web-")).unwrap();
        assert_eq!(web.ports[0].host_port, Some(8080));
        let node = p.node(&web.node).unwrap();
        let rules =
            super::super::kubeproxy::to_json(&super::super::kubeproxy::node_rules(&p, node));
        assert!(
            rules.contains(&format!(
                "hostPort 8080/TCP -> default/{} {}:80",
                web.name, web.ip
            )),
            "{rules}"
        );
        // Nodes without a hostPort pod keep the table as it was.
        let other = HOST_PORT_LAB.replace("REPLICAS", "0");
        let p0 = plan(&other, None);
        let r0 = super::super::kubeproxy::to_json(&super::super::kubeproxy::node_rules(
            &p0,
            &p0.nodes[0],
        ));
        assert!(!r0.contains("hostport"), "{r0}");
    }

    #[test]
    fn more_pods_with_a_host_port_than_nodes_is_an_error() {
        let text = HOST_PORT_LAB.replace("REPLICAS", "3");
        let file = crate::lab::parse("t.yaml", &text).expect("parses");
        let e = build_with(&file, None).expect_err("a third replica has no node");
        let msg = e.to_string();
        assert!(msg.contains("no node has its hostPorts free"), "{msg}");
        assert!(msg.contains("t.yaml:8:18: spec.replicas"), "{msg}");
        // Pinned onto a taken port: named, with the pod that has it.
        let pinned = |name: &str| {
            format!(
                "---
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec: {{nodeName: node-1, containers: [{{name: c, ports: [{{containerPort: 81, hostPort: 9000}}]}}]}}
"
            )
        };
        let text = format!(
            "{}{}{}",
            HOST_PORT_LAB.replace("REPLICAS", "0"),
            pinned("first"),
            pinned("second")
        );
        let file = crate::lab::parse("t.yaml", &text).expect("parses");
        let msg = build_with(&file, None).expect_err("a clash").to_string();
        assert!(
            msg.contains("pod default/second: hostPort 9000/TCP on node node-1 is already pod default/first's"),
            "{msg}"
        );
    }
}
