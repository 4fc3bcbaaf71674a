//! Services: cluster IPs, node ports and load-balancer IPs allocated, and
//! endpoints computed from selectors.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use super::names::fnv1a;
use super::{EndpointPlan, PodPlan, ServicePlan, ServicePortPlan, ServiceType, TargetPort};
use crate::lab::{ClusterIpSpec, LabFile, Protocol, Service, ServiceKind, TargetPortSpec};

/// Every service of the lab, with addresses. Validation has already
/// rejected fixed addresses that clash, so allocation only has to avoid
/// them.
///
/// With `previous` (the services of a running lab), a service that is in
/// both keeps the addresses and ports it was given, where the file still
/// leaves them to allocation.
pub fn plan_services(
    file: &LabFile,
    pods: &[PodPlan],
    previous: Option<&[ServicePlan]>,
) -> Vec<ServicePlan> {
    let previous: std::collections::HashMap<String, &ServicePlan> = previous
        .unwrap_or_default()
        .iter()
        .map(|p| (p.key(), p))
        .collect();
    let old = |key: &str| previous.get(key).copied();
    let net = &file.lab.network;
    let cidr = net.service_cidr;
    let first = u32::from(cidr.network()) + 1;
    let last = u32::from(cidr.broadcast()).saturating_sub(1);

    // Fixed addresses first, so that allocation steps around them; .1 is
    // where Kubernetes puts the `kubernetes` service, dnsIP is kube-dns's.
    let mut taken_ips: HashSet<u32> = [first, u32::from(net.dns_ip)].into();
    for s in &file.services {
        if let ClusterIpSpec::Fixed(ip, _) = s.spec.cluster_ip {
            taken_ips.insert(u32::from(ip));
        }
    }
    let (np_lo, np_hi) = net.node_port_range;
    let mut taken_ports: HashSet<(u16, Protocol)> = file
        .services
        .iter()
        .flat_map(|s| s.spec.ports.iter())
        .filter_map(|p| p.node_port.map(|(n, _)| (n, p.protocol)))
        .collect();
    let (pool_lo, pool_hi) = (
        u32::from(net.load_balancer_pool.0),
        u32::from(net.load_balancer_pool.1),
    );
    let mut ip_skips = Skips::default();
    let mut port_skips: HashMap<Protocol, Skips> = HashMap::new();
    let mut lb_skips = Skips::default();
    let mut taken_lb: HashSet<u32> = file
        .services
        .iter()
        .filter_map(|s| s.spec.load_balancer_ip.map(|(ip, _)| u32::from(ip)))
        .collect();

    // What running services were given stays theirs.
    let kept_ip = |s: &Service| -> Option<Ipv4Addr> {
        let o = old(&format!("{}/{}", s.namespace, s.name))?;
        let ip = o.cluster_ip?;
        (matches!(s.spec.cluster_ip, ClusterIpSpec::Auto)
            && s.spec.kind != ServiceKind::ExternalName
            && (first..=last).contains(&u32::from(ip)))
        .then_some(ip)
    };
    let kept_node_port = |s: &Service, port: u16, protocol: Protocol| -> Option<u16> {
        let o = old(&format!("{}/{}", s.namespace, s.name))?;
        o.ports
            .iter()
            .find(|p| p.port == port && p.protocol == protocol)?
            .node_port
            .filter(|n| (np_lo..=np_hi).contains(n))
    };
    let kept_lb = |s: &Service| -> Option<Ipv4Addr> {
        let o = old(&format!("{}/{}", s.namespace, s.name))?;
        let ip = o.load_balancer_ip?;
        (s.spec.load_balancer_ip.is_none() && (pool_lo..=pool_hi).contains(&u32::from(ip)))
            .then_some(ip)
    };
    for s in &file.services {
        if let Some(ip) = kept_ip(s) {
            taken_ips.insert(u32::from(ip));
        }
        for p in s.spec.ports.iter().filter(|p| p.node_port.is_none()) {
            if let Some(n) = kept_node_port(s, p.port, p.protocol) {
                taken_ports.insert((n, p.protocol));
            }
        }
        if let Some(ip) = kept_lb(s) {
            taken_lb.insert(u32::from(ip));
        }
    }

    file.services
        .iter()
        .map(|s| {
            let key = format!("{}/{}", s.namespace, s.name);
            let kind = match s.spec.kind {
                ServiceKind::ClusterIP => ServiceType::ClusterIP,
                ServiceKind::NodePort => ServiceType::NodePort,
                ServiceKind::LoadBalancer => ServiceType::LoadBalancer,
                ServiceKind::ExternalName => ServiceType::ExternalName,
            };
            let cluster_ip = match (&s.spec.cluster_ip, kind) {
                (_, ServiceType::ExternalName) | (ClusterIpSpec::Headless, _) => None,
                (ClusterIpSpec::Fixed(ip, _), _) => Some(*ip),
                (ClusterIpSpec::Auto, _) if kept_ip(s).is_some() => kept_ip(s),
                (ClusterIpSpec::Auto, _) => {
                    // Stable per service (a hash, probing on collision), like
                    // the random allocation of Kubernetes but repeatable, so
                    // that adding a service never moves another one.
                    probe(fnv1a(&[&key]), first, last, &mut ip_skips, |v| {
                        taken_ips.insert(v)
                    })
                    .map(Ipv4Addr::from)
                }
            };
            let wants_node_port = matches!(kind, ServiceType::NodePort | ServiceType::LoadBalancer);
            let ports = s
                .spec
                .ports
                .iter()
                .map(|p| ServicePortPlan {
                    name: p.name.clone(),
                    protocol: p.protocol,
                    port: p.port,
                    target_port: match &p.target_port {
                        None => TargetPort::Number(p.port),
                        Some(TargetPortSpec::Number(n)) => TargetPort::Number(*n),
                        Some(TargetPortSpec::Name(n)) => TargetPort::Name(n.clone()),
                    },
                    node_port: match (wants_node_port, p.node_port) {
                        (false, _) => None,
                        (true, Some((n, _))) => Some(n),
                        (true, None) if kept_node_port(s, p.port, p.protocol).is_some() => {
                            kept_node_port(s, p.port, p.protocol)
                        }
                        (true, None) => {
                            let seed = fnv1a(&[&key, &p.port.to_string(), &p.protocol.to_string()]);
                            let skips = port_skips.entry(p.protocol).or_default();
                            probe(seed, u32::from(np_lo), u32::from(np_hi), skips, |v| {
                                taken_ports.insert((v as u16, p.protocol))
                            })
                            .map(|v| v as u16)
                        }
                    },
                })
                .collect();
            let load_balancer_ip = match kind {
                ServiceType::LoadBalancer => match s.spec.load_balancer_ip {
                    Some((ip, _)) => Some(ip),
                    None if kept_lb(s).is_some() => kept_lb(s),
                    // Sequential, as MetalLB hands out its pool: probing
                    // from the pool's first address.
                    None => probe(0, pool_lo, pool_hi, &mut lb_skips, |v| taken_lb.insert(v))
                        .map(Ipv4Addr::from),
                },
                _ => None,
            };
            let mut plan = ServicePlan {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                kind,
                cluster_ip,
                load_balancer_ip,
                external_name: s.spec.external_name.clone(),
                selector: s.spec.selector.clone().unwrap_or_default(),
                ports,
                affinity_timeout: s.spec.affinity_timeout,
                external_local: s.spec.external_local,
                internal_local: s.spec.internal_local,
                publish_not_ready: s.spec.publish_not_ready,
                endpoints: Vec::new(),
            };
            plan.endpoints = match s.spec.selector {
                Some(_) => endpoints(s, &plan.ports, pods),
                None => hand_endpoints(s, &plan.ports, pods, &file.endpoints),
            };
            plan
        })
        .collect()
}

/// Pointers over values found taken, to the first value after them not
/// known to be taken, so that probing past a run of taken values is one
/// step rather than one per value: with plain linear probing, filling a
/// nearly full range (65,535 node ports) was quadratic, seconds long.
/// Values are only ever taken while a plan is made, never freed, so a
/// pointer stays true; one `Skips` per set of values claimed.
#[derive(Debug, Default)]
struct Skips {
    next: HashMap<u32, u32>,
    /// Every value was found taken: nothing will be free again.
    full: bool,
}

/// Find a free value in `[lo, hi]` starting from `seed`, walking up (and
/// around): the same value plain linear probing finds.
fn probe(
    seed: u64,
    lo: u32,
    hi: u32,
    skips: &mut Skips,
    mut claim: impl FnMut(u32) -> bool,
) -> Option<u32> {
    if hi < lo || skips.full {
        return None;
    }
    let size = u64::from(hi - lo) + 1;
    let mut off = seed % size;
    let mut walked = 0u64;
    let mut passed: Vec<u32> = Vec::new();
    while walked < size {
        let v = lo + off as u32;
        if let Some(&to) = skips.next.get(&v) {
            passed.push(v);
            let to_off = u64::from(to - lo);
            walked += match (to_off + size - off) % size {
                0 => size,
                d => d,
            };
            off = to_off;
            continue;
        }
        if claim(v) {
            let after = lo + ((off + 1) % size) as u32;
            for p in passed {
                skips.next.insert(p, after);
            }
            skips.next.insert(v, after);
            return Some(v);
        }
        passed.push(v);
        walked += 1;
        off = (off + 1) % size;
    }
    skips.full = true;
    None
}

/// Whether a pod's labels satisfy a selector (every pair present).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pods behind a service, with each service port's target resolved on
/// each pod. A service without a selector has no managed endpoints.
pub fn endpoints(s: &Service, ports: &[ServicePortPlan], pods: &[PodPlan]) -> Vec<EndpointPlan> {
    let Some(selector) = &s.spec.selector else {
        return Vec::new();
    };
    if s.spec.kind == ServiceKind::ExternalName {
        return Vec::new();
    }
    pods.iter()
        .filter(|p| p.namespace == s.namespace && selects(selector, &p.labels))
        .map(|p| EndpointPlan {
            pod: p.name.clone(),
            namespace: p.namespace.clone(),
            ip: p.ip,
            node: p.node.clone(),
            ports: ports.iter().map(|sp| resolve_target(sp, p)).collect(),
        })
        .collect()
}

/// The ready addresses of the Endpoints and EndpointSlices written for a
/// Service without a selector, as kube-proxy reads them: each address
/// with the port of each Service port (matched by name, or the one port
/// of an unnamed pair), once per address and port set. An address that is
/// a pod of the lab carries that pod's name and node; any other address
/// (outside the pod network) has neither.
pub fn hand_endpoints(
    s: &Service,
    ports: &[ServicePortPlan],
    pods: &[PodPlan],
    hand: &[crate::lab::HandEndpoints],
) -> Vec<EndpointPlan> {
    if s.spec.kind == ServiceKind::ExternalName {
        return Vec::new();
    }
    let mut out: Vec<EndpointPlan> = Vec::new();
    for h in hand
        .iter()
        .filter(|h| h.namespace == s.namespace && h.service == s.name)
    {
        for subset in &h.subsets {
            let resolved: Vec<Option<u16>> = ports
                .iter()
                .map(|sp| hand_port(sp, ports.len(), &subset.ports))
                .collect();
            for ip in &subset.ready {
                let pod = pods.iter().find(|p| p.ip == *ip);
                let ep = EndpointPlan {
                    pod: pod.map(|p| p.name.clone()).unwrap_or_default(),
                    namespace: pod.map_or_else(|| s.namespace.clone(), |p| p.namespace.clone()),
                    ip: *ip,
                    node: pod.map(|p| p.node.clone()).unwrap_or_default(),
                    ports: resolved.clone(),
                };
                if !out.contains(&ep) {
                    out.push(ep);
                }
            }
        }
    }
    out
}

/// The port a hand-written subset gives a Service port: the one of the
/// same name and protocol; for a Service of one unnamed port, the
/// subset's one port of that protocol.
fn hand_port(
    sp: &ServicePortPlan,
    service_ports: usize,
    given: &[crate::lab::HandPort],
) -> Option<u16> {
    let same_proto = || given.iter().filter(|p| p.protocol == sp.protocol);
    match &sp.name {
        Some(name) => same_proto()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.port),
        None if service_ports == 1 => {
            let mut it = same_proto();
            match (it.next(), it.next()) {
                (Some(p), None) => Some(p.port),
                _ => None,
            }
        }
        None => None,
    }
}

fn resolve_target(sp: &ServicePortPlan, pod: &PodPlan) -> Option<u16> {
    match &sp.target_port {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Name(name) => pod
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name) && p.protocol == sp.protocol)
            .map(|p| p.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The skips change the cost, never the answer: the same values as
    /// plain linear probing, on ranges filled to the last value.
    #[test]
    fn probing_with_skips_finds_what_linear_probing_finds() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for (lo, hi, prefilled) in [(10, 10, 0), (0, 7, 3), (30000, 30099, 20), (5, 1004, 300)] {
            let mut naive: HashSet<u32> = HashSet::new();
            for _ in 0..prefilled {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                naive.insert(lo + (x % u64::from(hi - lo + 1)) as u32);
            }
            let mut fast = naive.clone();
            let mut skips = Skips::default();
            for _ in 0..=(hi - lo + 2) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let size = u64::from(hi - lo) + 1;
                let want = (0..size)
                    .map(|i| lo + ((x % size + i) % size) as u32)
                    .find(|v| naive.insert(*v));
                let got = probe(x, lo, hi, &mut skips, |v| fast.insert(v));
                assert_eq!(got, want, "range {lo}-{hi}");
            }
            assert!(skips.full);
        }
    }
}
