//! `podlab get netpol [NAME] [-o wide|json|yaml] [-n NS | -A]`
//!
//! kubectl's columns (NAME, POD-SELECTOR, AGE) plus what the kernel saw:
//! PODS (selected) and ALLOWED (packets an allow rule of the policy let
//! through, summed over the nodes: new connections, since replies pass on
//! conntrack; a connection two policies allow is counted by the first
//! rule that matches it, in the order of the lab file).
//!
//! A drop is no policy's decision: it is what is left when none of the
//! policies isolating a pod allowed the packet. So drops are shown per
//! isolated pod and direction, in a second table (ISOLATED POD, BY,
//! DROPPED), not charged to each policy. The counters restart when the
//! nodes' rules are reloaded.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Value};

use super::{exit, table, CliError, Output, Result};
use crate::kernel::counters::{self, Count};
use crate::lab::PolicyType;
use crate::plan::netpol::{self, PolicyPlan};
use crate::plan::Plan;

/// What `get` passes on: the lab's plan and the command's options.
pub struct Query<'a> {
    pub plan: &'a Plan,
    pub name: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub all_namespaces: bool,
    pub output: Option<Output>,
    pub created: Option<SystemTime>,
}

pub fn run(q: Query) -> Result<u8> {
    let ns = q.namespace.unwrap_or("default");
    let policies: Vec<&PolicyPlan> = q
        .plan
        .policies
        .iter()
        .filter(|p| q.all_namespaces || p.namespace == ns)
        .filter(|p| q.name.is_none_or(|n| n == p.name))
        .collect();
    if let (Some(name), true) = (q.name, policies.is_empty()) {
        let known: Vec<&str> = q
            .plan
            .policies
            .iter()
            .filter(|p| p.namespace == ns)
            .map(|p| p.name.as_str())
            .collect();
        let mut e = CliError::new(format!("networkpolicy {name} not found")).code(exit::BAD_INPUT);
        e = match crate::lab::did_you_mean(name, &known) {
            Some(m) => e.hint(format!("did you mean {m}?")),
            None => e.hint(format!(
                "policies are looked up in namespace {ns}; -n picks another, -A lists all"
            )),
        };
        return Err(e);
    }
    let counts = match counters::read(q.plan, netpol::TABLE) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("warning: cannot read the nodes' counters: {e}");
            None
        }
    };
    let stats: Vec<Stats> = policies.iter().map(|p| stats(p, counts.as_ref())).collect();
    let isolated = isolation(q.plan, &policies, counts.as_ref());
    match q.output {
        Some(Output::Json | Output::Yaml) => {
            let items: Vec<Value> = policies
                .iter()
                .zip(&stats)
                .map(|(p, s)| policy_json(p, s, &isolated, q.created))
                .collect();
            let doc = if q.name.is_some() && items.len() == 1 {
                items.into_iter().next().unwrap_or(Value::Null)
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
            };
            let text = if q.output == Some(Output::Yaml) {
                serde_yaml::to_string(&doc).map_err(|e| CliError::new(e.to_string()))?
            } else {
                serde_json::to_string_pretty(&doc).map_err(|e| CliError::new(e.to_string()))? + "\n"
            };
            print!("{text}");
        }
        wide => {
            if policies.is_empty() {
                eprintln!("{}", super::get::none_found(ns, q.all_namespaces));
                return Ok(exit::OK);
            }
            print!(
                "{}",
                render(
                    &policies,
                    &stats,
                    q.created,
                    wide == Some(Output::Wide),
                    q.all_namespaces
                )
            );
            if !isolated.is_empty() {
                print!("\n{}", render_isolation(&isolated, q.all_namespaces));
            }
        }
    }
    Ok(exit::OK)
}

/// What the kernel counted for one policy (`None`: unreadable).
pub struct Stats {
    pub allowed: Option<u64>,
}

fn stats(p: &PolicyPlan, counts: Option<&BTreeMap<String, Count>>) -> Stats {
    Stats {
        allowed: counts.map(|c| {
            c.get(&netpol::allow_counter(&p.namespace, &p.name))
                .map_or(0, |c| c.packets)
        }),
    }
}

/// One pod isolated in one direction: the policies that isolate it, and
/// what its chain dropped (`None`: unreadable).
pub struct Isolation {
    pub namespace: String,
    pub pod: String,
    pub direction: PolicyType,
    pub by: Vec<String>,
    pub dropped: Option<u64>,
}

/// The pods the shown policies isolate, each direction once, in the
/// order of the plan's pods.
fn isolation(
    plan: &Plan,
    policies: &[&PolicyPlan],
    counts: Option<&BTreeMap<String, Count>>,
) -> Vec<Isolation> {
    let mut out = Vec::new();
    for pod in &plan.pods {
        let key = pod.key();
        for t in [PolicyType::Ingress, PolicyType::Egress] {
            if !policies
                .iter()
                .any(|p| p.isolates(t) && p.selected.contains(&key))
            {
                continue;
            }
            let by = netpol::selecting(plan, pod, t)
                .iter()
                .map(|p| p.name.clone())
                .collect();
            let counter = netpol::drop_counter(t, &pod.namespace, &pod.name);
            out.push(Isolation {
                namespace: pod.namespace.clone(),
                pod: pod.name.clone(),
                direction: t,
                by,
                dropped: counts.map(|c| c.get(&counter).map_or(0, |c| c.packets)),
            });
        }
    }
    out
}

fn direction(t: PolicyType) -> &'static str {
    match t {
        PolicyType::Ingress => "ingress",
        PolicyType::Egress => "egress",
    }
}

fn render_isolation(rows: &[Isolation], all_ns: bool) -> String {
    let mut header = vec!["ISOLATED POD", "DIRECTION", "BY", "DROPPED"];
    if all_ns {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|i| {
            let mut row = vec![
                i.pod.clone(),
                direction(i.direction).into(),
                i.by.join(","),
                number(i.dropped),
            ];
            if all_ns {
                row.insert(0, i.namespace.clone());
            }
            row
        })
        .collect();
    table::render(&header, &rows)
}

fn number(n: Option<u64>) -> String {
    n.map_or("?".into(), |n| n.to_string())
}

fn types(p: &PolicyPlan) -> String {
    p.policy_types
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn render(
    policies: &[&PolicyPlan],
    stats: &[Stats],
    created: Option<SystemTime>,
    wide: bool,
    all_ns: bool,
) -> String {
    let mut header = vec!["NAME", "POD-SELECTOR", "PODS", "ALLOWED", "AGE"];
    if all_ns {
        header.insert(0, "NAMESPACE");
    }
    if wide {
        header.extend(["POLICY-TYPES", "SELECTED"]);
    }
    let rows: Vec<Vec<String>> = policies
        .iter()
        .zip(stats)
        .map(|(p, s)| {
            let mut row = vec![
                p.name.clone(),
                p.pod_selector.to_string(),
                p.selected.len().to_string(),
                number(s.allowed),
                table::age(created),
            ];
            if all_ns {
                row.insert(0, p.namespace.clone());
            }
            if wide {
                let pods: Vec<&str> = p
                    .selected
                    .iter()
                    .map(|k| k.split_once('/').map_or(k.as_str(), |(_, n)| n))
                    .collect();
                row.push(types(p));
                row.push(if pods.is_empty() {
                    "<none>".into()
                } else {
                    pods.join(",")
                });
            }
            row
        })
        .collect();
    table::render(&header, &rows)
}

fn policy_json(
    p: &PolicyPlan,
    s: &Stats,
    isolated: &[Isolation],
    created: Option<SystemTime>,
) -> Value {
    // The drops of the pods this policy isolates: each the pod's, shared
    // with the other policies in `isolatedBy`.
    let pods: Vec<Value> = isolated
        .iter()
        .filter(|i| {
            p.isolates(i.direction) && p.selected.contains(&format!("{}/{}", i.namespace, i.pod))
        })
        .map(|i| {
            json!({
                "pod": format!("{}/{}", i.namespace, i.pod),
                "direction": format!("{:?}", i.direction),
                "isolatedBy": i.by,
                "droppedPackets": i.dropped,
            })
        })
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": p.name,
            "namespace": p.namespace,
            "creationTimestamp": created.map(table::rfc3339),
        },
        "spec": p.spec,
        // Not in Kubernetes' NetworkPolicy: what podlab's nodes counted.
        "status": {
            "selectedPods": p.selected,
            "allowedPackets": s.allowed,
            "isolatedPods": pods,
        },
    })
}
