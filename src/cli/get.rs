//! `podlab get nodes|pods [NAME] [-o wide|json|yaml] [-n NS | -A]`
//!
//! Tables with kubectl's columns; `-o json|yaml` prints Kubernetes-shaped
//! objects in a `List`, so that a user's `jq` carries over from a cluster.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{exit, load_plan, pick_lab, table, CliError, Output, Result};
use crate::kernel::netns::Netns;
use crate::plan::{NodePlan, Plan, PodPlan};
use crate::runtime::{self, DaemonStatus};
use crate::state;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Resource {
    #[value(alias = "node", alias = "no")]
    Nodes,
    #[value(alias = "pod", alias = "po")]
    Pods,
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
}

pub fn run(args: Args) -> Result<u8> {
    let lab = pick_lab(args.lab.as_deref())?;
    let plan = load_plan(&lab)?;
    let created = state::created(&lab);
    let items: Vec<Value> = match args.resource {
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
                        node_table(&nodes, created, wide == Some(Output::Wide))
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
                        eprintln!("No resources found in {ns} namespace.");
                    } else {
                        print!(
                            "{}",
                            pod_table(
                                &pods,
                                status.as_ref(),
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
            status: s.status.clone(),
            phase: s.phase.to_string(),
            restarts: s.restarts,
            started: s.started.map(|t| UNIX_EPOCH + Duration::from_secs(t)),
        },
        _ => PodRow {
            ready: format!("0/{total}"),
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
) -> String {
    let mut header = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if all_ns {
        header.insert(0, "NAMESPACE");
    }
    if wide {
        header.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
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
            row
        })
        .collect();
    table::render(&header, &rows)
}

fn node_table(nodes: &[&NodePlan], created: Option<SystemTime>, wide: bool) -> String {
    let mut header = vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"];
    if wide {
        header.extend(["INTERNAL-IP", "POD-CIDR"]);
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
    let owner = p.owner.as_ref().map(|d| {
        json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": p.name.rsplit_once('-').map_or(d.as_str(), |(rs, _)| rs), "controller": true}])
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
            "conditions": [{"type": "Ready", "status": if r.ready.split('/').next() == r.ready.split('/').nth(1) { "True" } else { "False" }}],
            "containerStatuses": status
                .and_then(|s| s.pods.iter().find(|x| x.namespace == p.namespace && x.name == p.name))
                .map(|s| serde_json::to_value(&s.containers).unwrap_or(Value::Null)),
        },
    })
}
