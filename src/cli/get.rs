//! `podlab get nodes|pods|svc|ep|netpol [NAME] [-o wide|json|yaml] [-n NS | -A] [--show-labels]`
//!
//! Tables with kubectl's columns; `-o json|yaml` prints Kubernetes-shaped
//! objects in a `List`, so that a user's `jq` carries over from a cluster.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{exit, load_plan, pick_lab, table, CliError, Output, Result};
use crate::kernel::netns::Netns;
use crate::plan::{NodePlan, Plan, PodPlan, ServicePlan, ServiceType, TargetPort};
use crate::runtime::{self, DaemonStatus};
use crate::state;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Resource {
    #[value(alias = "node", alias = "no")]
    Nodes,
    #[value(alias = "pod", alias = "po")]
    Pods,
    #[value(name = "services", alias = "service", alias = "svc")]
    Services,
    #[value(alias = "endpoint", alias = "ep")]
    Endpoints,
    #[value(name = "netpol", alias = "networkpolicy", alias = "networkpolicies")]
    NetworkPolicies,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to show.
    resource: Resource,
    /// One object by name.
    name: Option<String>,
    #[arg(short, long)]
    output: Option<Output>,
    /// The namespace (default: `default`).
    #[arg(short, long, conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// The lab (default: the only one up).
    #[arg(long)]
    lab: Option<String>,
    /// A LABELS column (pods and nodes), as kubectl's.
    #[arg(long)]
    show_labels: bool,
}

pub fn run(args: Args) -> Result<u8> {
    if args.show_labels && !matches!(args.resource, Resource::Pods | Resource::Nodes) {
        return Err(
            CliError::new("--show-labels: only pods and nodes have labels here")
                .hint("`podlab get pods --show-labels`"),
        );
    }
    let lab = pick_lab(args.lab.as_deref())?;
    let plan = load_plan(&lab)?;
    let created = state::created(&lab);
    let items: Vec<Value> = match args.resource {
        Resource::NetworkPolicies => {
            return super::get_netpol::run(super::get_netpol::Query {
                plan: &plan,
                name: args.name.as_deref(),
                namespace: args.namespace.as_deref(),
                all_namespaces: args.all_namespaces,
                output: args.output,
                created,
            })
        }
        Resource::Nodes => {
            let nodes: Vec<&NodePlan> = plan
                .nodes
                .iter()
                .filter(|n| args.name.as_deref().is_none_or(|x| x == n.name))
                .collect();
            if let (Some(name), true) = (&args.name, nodes.is_empty()) {
                return Err(not_found(
                    "node",
                    name,
                    plan.nodes.iter().map(|n| n.name.as_str()),
                ));
            }
            match args.output {
                Some(Output::Json | Output::Yaml) => {
                    nodes.iter().map(|n| node_json(n, created)).collect()
                }
                wide => {
                    print!(
                        "{}",
                        node_table(
                            &nodes,
                            created,
                            wide == Some(Output::Wide),
                            args.show_labels
                        )
                    );
                    return Ok(exit::OK);
                }
            }
        }
        Resource::Pods => {
            let ns = args.namespace.as_deref().unwrap_or("default");
            let pods: Vec<&PodPlan> = plan
                .pods
                .iter()
                .filter(|p| args.all_namespaces || p.namespace == ns)
                .filter(|p| args.name.as_deref().is_none_or(|x| x == p.name))
                .collect();
            if let (Some(name), true) = (&args.name, pods.is_empty()) {
                return Err(not_found(
                    "pod",
                    name,
                    plan.pods
                        .iter()
                        .filter(|p| p.namespace == ns)
                        .map(|p| p.name.as_str()),
                )
                .hint(format!(
                    "pods are looked up in namespace {ns}; -n picks another, -A lists all"
                )));
            }
            let status = runtime::query_status(&state::dir(&lab), Duration::from_secs(2)).ok();
            match args.output {
                Some(Output::Json | Output::Yaml) => pods
                    .iter()
                    .map(|p| pod_json(&plan, p, status.as_ref(), created))
                    .collect(),
                wide => {
                    if pods.is_empty() {
                        eprintln!("{}", none_found(ns, args.all_namespaces));
                    } else {
                        print!(
                            "{}",
                            pod_table(
                                &pods,
                                status.as_ref(),
                                created,
                                wide == Some(Output::Wide),
                                args.all_namespaces,
                                args.show_labels,
                            )
                        );
                    }
                    return Ok(exit::OK);
                }
            }
        }
        Resource::Services | Resource::Endpoints => {
            let ns = args.namespace.as_deref().unwrap_or("default");
            // Endpoints are the ready pods, as the daemon sees them now.
            let not_ready: HashSet<String> =
                runtime::query_status(&state::dir(&lab), Duration::from_secs(2))
                    .map(|st| {
                        st.pods
                            .iter()
                            .filter(|p| !p.is_ready())
                            .map(|p| format!("{}/{}", p.namespace, p.name))
                            .collect()
                    })
                    .unwrap_or_default();
            let view = crate::kernel::services::ready_view(&plan, &not_ready);
            let svcs: Vec<&ServicePlan> = view
                .services
                .iter()
                .filter(|s| args.all_namespaces || s.namespace == ns)
                .filter(|s| args.name.as_deref().is_none_or(|x| x == s.name))
                .collect();
            if let (Some(name), true) = (&args.name, svcs.is_empty()) {
                return Err(not_found(
                    "service",
                    name,
                    plan.services
                        .iter()
                        .filter(|s| s.namespace == ns)
                        .map(|s| s.name.as_str()),
                ));
            }
            let eps = args.resource == Resource::Endpoints;
            match args.output {
                Some(Output::Json | Output::Yaml) => svcs
                    .iter()
                    .map(|s| {
                        if eps {
                            let all = plan
                                .services
                                .iter()
                                .find(|x| x.key() == s.key())
                                .unwrap_or(s);
                            endpoints_json(s, all, created)
                        } else {
                            service_json(s, created)
                        }
                    })
                    .collect(),
                wide => {
                    if svcs.is_empty() {
                        eprintln!("{}", none_found(ns, args.all_namespaces));
                    } else if eps {
                        print!("{}", endpoints_table(&svcs, created, args.all_namespaces));
                    } else {
                        print!(
                            "{}",
                            service_table(
                                &svcs,
                                created,
                                wide == Some(Output::Wide),
                                args.all_namespaces
                            )
                        );
                    }
                    return Ok(exit::OK);
                }
            }
        }
    };
    let doc = if args.name.is_some() && items.len() == 1 {
        items.into_iter().next().unwrap_or(Value::Null)
    } else {
        json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
    };
    let text = match args.output {
        Some(Output::Yaml) => {
            serde_yaml::to_string(&doc).map_err(|e| CliError::new(e.to_string()))?
        }
        _ => serde_json::to_string_pretty(&doc).map_err(|e| CliError::new(e.to_string()))? + "\n",
    };
    print!("{text}");
    Ok(exit::OK)
}

/// kubectl's words for an empty listing.
pub(super) fn none_found(ns: &str, all_namespaces: bool) -> String {
    if all_namespaces {
        "No resources found".into()
    } else {
        format!("No resources found in {ns} namespace.")
    }
}

fn not_found<'a>(kind: &str, name: &str, known: impl Iterator<Item = &'a str>) -> CliError {
    let known: Vec<&str> = known.collect();
    let e = CliError::new(format!("{kind} {name} not found"));
    match crate::lab::did_you_mean(name, &known) {
        Some(m) => e.hint(format!("did you mean {m}?")),
        None => e,
    }
}

struct PodRow {
    ready: String,
    /// Kubernetes' Ready condition (`PodStatus::is_ready`).
    is_ready: bool,
    status: String,
    phase: String,
    restarts: u32,
    started: Option<SystemTime>,
}

/// A pod's live status, from the daemon; `Unknown` when it cannot say,
/// as kubectl shows for a node that stopped reporting.
fn pod_row(p: &PodPlan, status: Option<&DaemonStatus>) -> PodRow {
    let containers = p
        .ports
        .iter()
        .map(|x| &x.container)
        .chain(p.processes.iter().map(|x| &x.container));
    let mut names: Vec<&String> = containers.collect();
    names.sort();
    names.dedup();
    let total = names.len().max(1);
    let live = status.and_then(|s| {
        s.pods
            .iter()
            .find(|x| x.namespace == p.namespace && x.name == p.name)
    });
    match live {
        Some(s) if Netns::exists(&p.netns) => PodRow {
            ready: s.ready.clone(),
            is_ready: s.is_ready(),
            status: s.status.clone(),
            phase: s.phase.to_string(),
            restarts: s.restarts,
            started: s.started.map(|t| UNIX_EPOCH + Duration::from_secs(t)),
        },
        _ => PodRow {
            ready: format!("0/{total}"),
            is_ready: false,
            status: "Unknown".into(),
            phase: "Unknown".into(),
            restarts: 0,
            started: None,
        },
    }
}

fn pod_table(
    pods: &[&PodPlan],
    status: Option<&DaemonStatus>,
    created: Option<SystemTime>,
    wide: bool,
    all_ns: bool,
    labels: bool,
) -> String {
    let mut header = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if all_ns {
        header.insert(0, "NAMESPACE");
    }
    if wide {
        header.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
    }
    if labels {
        header.push("LABELS");
    }
    let rows: Vec<Vec<String>> = pods
        .iter()
        .map(|p| {
            let r = pod_row(p, status);
            let mut row = vec![
                p.name.clone(),
                r.ready,
                r.status,
                r.restarts.to_string(),
                table::age(r.started.or(created)),
            ];
            if all_ns {
                row.insert(0, p.namespace.clone());
            }
            if wide {
                row.extend([
                    p.ip.to_string(),
                    p.node.clone(),
                    "<none>".into(),
                    "<none>".into(),
                ]);
            }
            if labels {
                row.push(labels_column(&p.labels));
            }
            row
        })
        .collect();
    table::render(&header, &rows)
}

/// kubectl's LABELS: `k=v,k=v`, or `<none>`.
fn labels_column(labels: &std::collections::BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn node_table(
    nodes: &[&NodePlan],
    created: Option<SystemTime>,
    wide: bool,
    labels: bool,
) -> String {
    let mut header = vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"];
    if wide {
        header.extend(["INTERNAL-IP", "POD-CIDR"]);
    }
    if labels {
        header.push("LABELS");
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let mut row = vec![
                n.name.clone(),
                node_status(n).into(),
                "<none>".into(),
                table::age(created),
                concat!("podlab-v", env!("CARGO_PKG_VERSION")).into(),
            ];
            if wide {
                row.extend([n.ip.to_string(), n.pod_cidr.to_string()]);
            }
            if labels {
                row.push(labels_column(&n.labels));
            }
            row
        })
        .collect();
    table::render(&header, &rows)
}

fn node_status(n: &NodePlan) -> &'static str {
    if Netns::exists(&n.netns) {
        "Ready"
    } else {
        "NotReady"
    }
}

fn timestamp(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(table::rfc3339(t)))
}

fn node_json(n: &NodePlan, created: Option<SystemTime>) -> Value {
    let ready = node_status(n) == "Ready";
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": n.name,
            "labels": n.labels,
            "creationTimestamp": timestamp(created),
        },
        "spec": {"podCIDR": n.pod_cidr.to_string(), "podCIDRs": [n.pod_cidr.to_string()]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": n.ip.to_string()},
                {"type": "Hostname", "address": n.name},
            ],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "nodeInfo": {"kubeletVersion": concat!("podlab-v", env!("CARGO_PKG_VERSION"))},
        },
    })
}

fn pod_json(
    plan: &Plan,
    p: &PodPlan,
    status: Option<&DaemonStatus>,
    created: Option<SystemTime>,
) -> Value {
    let r = pod_row(p, status);
    let host_ip = plan.node(&p.node).map(|n| n.ip.to_string());
    let mut containers: Vec<Value> = Vec::new();
    let mut names: Vec<&str> = p
        .ports
        .iter()
        .map(|x| x.container.as_str())
        .chain(p.processes.iter().map(|x| x.container.as_str()))
        .collect();
    names.dedup();
    let mut seen = std::collections::HashSet::new();
    for c in names.into_iter().filter(|c| seen.insert(*c)) {
        let ports: Vec<Value> = p
            .ports
            .iter()
            .filter(|x| x.container == c)
            .map(|x| json!({"containerPort": x.port, "protocol": x.protocol.to_string(), "name": x.name}))
            .collect();
        let command = p
            .processes
            .iter()
            .find(|x| x.container == c)
            .map(|x| x.argv.clone());
        containers.push(json!({"name": c, "ports": ports, "command": command}));
    }
    let phase = r.phase.as_str();
    let owner = p.owner_ref().map(|(kind, name)| {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": true}])
    });
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": p.name,
            "namespace": p.namespace,
            "labels": p.labels,
            "creationTimestamp": timestamp(r.started.or(created)),
            "ownerReferences": owner,
        },
        "spec": {
            "nodeName": p.node,
            "hostname": p.hostname,
            "restartPolicy": format!("{:?}", p.restart_policy),
            "containers": containers,
        },
        "status": {
            "phase": phase,
            "podIP": p.ip.to_string(),
            "podIPs": [{"ip": p.ip.to_string()}],
            "hostIP": host_ip,
            "conditions": [{"type": "Ready", "status": if r.is_ready { "True" } else { "False" }}],
            "containerStatuses": status
                .and_then(|s| s.pods.iter().find(|x| x.namespace == p.namespace && x.name == p.name))
                .map(|s| serde_json::to_value(&s.containers).unwrap_or(Value::Null)),
        },
    })
}

fn kind_name(t: ServiceType) -> &'static str {
    match t {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
        ServiceType::ExternalName => "ExternalName",
    }
}

/// kubectl's PORT(S): `80/TCP`, `80:30080/TCP`, comma-separated.
fn ports_column(s: &ServicePlan) -> String {
    if s.ports.is_empty() {
        return "<none>".into();
    }
    s.ports
        .iter()
        .map(|p| match p.node_port {
            Some(np) => format!("{}:{np}/{}", p.port, p.protocol),
            None => format!("{}/{}", p.port, p.protocol),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn service_table(
    svcs: &[&ServicePlan],
    created: Option<SystemTime>,
    wide: bool,
    all_ns: bool,
) -> String {
    let mut header = vec![
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ];
    if all_ns {
        header.insert(0, "NAMESPACE");
    }
    if wide {
        header.push("SELECTOR");
    }
    let rows: Vec<Vec<String>> = svcs
        .iter()
        .map(|s| {
            let cluster_ip = match (s.kind, s.cluster_ip) {
                (ServiceType::ExternalName, _) => "<none>".to_string(),
                (_, Some(ip)) => ip.to_string(),
                (_, None) => "None".to_string(),
            };
            let external = match s.kind {
                ServiceType::LoadBalancer => s
                    .load_balancer_ip
                    .map_or("<pending>".into(), |ip| ip.to_string()),
                ServiceType::ExternalName => s.external_name.clone().unwrap_or_default(),
                _ => "<none>".into(),
            };
            let mut row = vec![
                s.name.clone(),
                kind_name(s.kind).into(),
                cluster_ip,
                external,
                ports_column(s),
                table::age(created),
            ];
            if all_ns {
                row.insert(0, s.namespace.clone());
            }
            if wide {
                row.push(if s.selector.is_empty() {
                    "<none>".into()
                } else {
                    s.selector
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                });
            }
            row
        })
        .collect();
    table::render(&header, &rows)
}

/// kubectl's ENDPOINTS column: up to three `ip:port`, then `+ N more...`.
fn endpoints_column(s: &ServicePlan) -> String {
    let all: Vec<String> = s
        .endpoints
        .iter()
        .flat_map(|e| {
            e.ports
                .iter()
                .flatten()
                .map(move |p| format!("{}:{p}", e.ip))
        })
        .collect();
    match all.len() {
        0 => "<none>".into(),
        n if n <= 3 => all.join(","),
        n => format!("{} + {} more...", all[..3].join(","), n - 3),
    }
}

fn endpoints_table(svcs: &[&ServicePlan], created: Option<SystemTime>, all_ns: bool) -> String {
    let mut header = vec!["NAME", "ENDPOINTS", "AGE"];
    if all_ns {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = svcs
        .iter()
        .filter(|s| s.kind != ServiceType::ExternalName)
        .map(|s| {
            let mut row = vec![s.name.clone(), endpoints_column(s), table::age(created)];
            if all_ns {
                row.insert(0, s.namespace.clone());
            }
            row
        })
        .collect();
    table::render(&header, &rows)
}

fn service_json(s: &ServicePlan, created: Option<SystemTime>) -> Value {
    let ports: Vec<Value> = s
        .ports
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "protocol": p.protocol.to_string(),
                "port": p.port,
                "targetPort": match &p.target_port {
                    TargetPort::Number(n) => json!(n),
                    TargetPort::Name(n) => json!(n),
                },
                "nodePort": p.node_port,
            })
        })
        .collect();
    let cluster_ip = match (s.kind, s.cluster_ip) {
        (ServiceType::ExternalName, _) => Value::Null,
        (_, Some(ip)) => json!(ip.to_string()),
        (_, None) => json!("None"),
    };
    let external = matches!(s.kind, ServiceType::NodePort | ServiceType::LoadBalancer);
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": s.name, "namespace": s.namespace, "creationTimestamp": timestamp(created)},
        "spec": {
            "type": kind_name(s.kind),
            "clusterIP": cluster_ip,
            "clusterIPs": if cluster_ip.is_null() { Value::Null } else { json!([cluster_ip]) },
            "ports": ports,
            "selector": if s.selector.is_empty() { Value::Null } else { json!(s.selector) },
            "sessionAffinity": if s.affinity_timeout.is_some() { "ClientIP" } else { "None" },
            "sessionAffinityConfig": s.affinity_timeout.map(|t| json!({"clientIP": {"timeoutSeconds": t}})),
            "externalTrafficPolicy": external.then_some(if s.external_local { "Local" } else { "Cluster" }),
            "internalTrafficPolicy": if s.internal_local { "Local" } else { "Cluster" },
            "externalName": s.external_name,
        },
        "status": {"loadBalancer": match s.load_balancer_ip {
            Some(ip) => json!({"ingress": [{"ip": ip.to_string()}]}),
            None => json!({}),
        }},
    })
}

/// `ready` is the service with ready endpoints only, `all` with every
/// selected pod: the others are `notReadyAddresses`, as in Kubernetes.
/// An address; a hand-written one that is no pod's has no node or pod.
fn address_json(e: &crate::plan::EndpointPlan) -> Value {
    if e.pod.is_empty() {
        return json!({"ip": e.ip.to_string()});
    }
    json!({
        "ip": e.ip.to_string(),
        "nodeName": e.node,
        "targetRef": {"kind": "Pod", "name": e.pod, "namespace": e.namespace},
    })
}

fn endpoints_json(s: &ServicePlan, all: &ServicePlan, created: Option<SystemTime>) -> Value {
    // One subset per distinct set of resolved ports, as the endpoints
    // controller groups them.
    let mut subsets: Vec<(Vec<Option<u16>>, Vec<Value>)> = Vec::new();
    for e in &s.endpoints {
        let addr = address_json(e);
        match subsets.iter_mut().find(|(p, _)| *p == e.ports) {
            Some((_, addrs)) => addrs.push(addr),
            None => subsets.push((e.ports.clone(), vec![addr])),
        }
    }
    let subsets: Vec<Value> = subsets
        .into_iter()
        .map(|(ports, addrs)| {
            let ports: Vec<Value> = s
                .ports
                .iter()
                .zip(ports)
                .filter_map(|(sp, tp)| tp.map(|tp| json!({"name": sp.name, "port": tp, "protocol": sp.protocol.to_string()})))
                .collect();
            json!({"addresses": addrs, "ports": ports})
        })
        .collect();
    let not_ready: Vec<Value> = all
        .endpoints
        .iter()
        .filter(|e| !s.endpoints.contains(e))
        .map(address_json)
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": s.name, "namespace": s.namespace, "creationTimestamp": timestamp(created)},
        "subsets": subsets,
        "notReadyAddresses": not_ready,
    })
}
