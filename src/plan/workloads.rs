//! The pods of StatefulSets, DaemonSets and ReplicaSets, as their
//! controllers would make them: names, and what each controller sets in
//! the pod it makes from the template (hostname, subdomain, node).
//!
//! Also what the lab's API serves of the workloads themselves
//! (`WorkloadPlan`): a workload with no pod (scaled to zero, a DaemonSet
//! that selects no node) still exists.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::names::fnv1a;
use crate::lab::{LabFile, PodSpec, Pos, WorkloadKind};

/// The alphabet of Kubernetes' generated suffixes (as `names`): no
/// vowels, no look-alikes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A 5-character suffix from a hash of `parts`, as the ReplicaSet and
/// DaemonSet controllers append (theirs is random; this one is stable, so
/// a lab brought up twice has the same pod names).
fn suffix(parts: &[&str]) -> String {
    let base = SAFE_ALPHABET.len() as u64;
    let mut v = fnv1a(parts);
    (0..5)
        .map(|_| {
            let c = SAFE_ALPHABET[(v % base) as usize] as char;
            v /= base;
            c
        })
        .collect()
}

/// A StatefulSet's pod: `<name>-<ordinal>`.
pub fn statefulset_pod_name(set: &str, ordinal: u32) -> String {
    format!("{set}-{ordinal}")
}

/// A DaemonSet's pod on `node`: `<name>-<suffix of the node>`; `salt`
/// tells apart two nodes whose suffixes collide.
pub fn daemonset_pod_name(set: &str, node: &str, salt: u32) -> String {
    format!("{set}-{}", suffix(&[set, node, &salt.to_string()]))
}

/// A bare ReplicaSet's pod `index`: `<name>-<suffix>`.
pub fn replicaset_pod_name(set: &str, index: u32, salt: u32) -> String {
    format!(
        "{set}-{}",
        suffix(&[set, &index.to_string(), &salt.to_string()])
    )
}

/// One pod a workload makes, before it has an address.
pub struct WorkloadPod<'a> {
    pub namespace: &'a str,
    pub name: String,
    pub pos: Pos,
    pub labels: &'a BTreeMap<String, String>,
    /// The template, with what the controller sets per pod.
    pub spec: PodSpec,
    pub owner: &'a str,
    pub owner_kind: &'static str,
}

/// A problem with the pods of a workload: (position, field, message, hint).
pub type Problem = (Pos, &'static str, String, Option<String>);

/// Every workload's pods, in file order, and the names that clash with
/// another pod of the lab (Kubernetes would not create the second).
pub fn pods(file: &LabFile) -> (Vec<WorkloadPod<'_>>, Vec<Problem>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut taken: HashSet<(&str, String)> = file
        .pods
        .iter()
        .map(|p| (p.namespace.as_str(), p.name.clone()))
        .collect();
    for w in &file.workloads {
        let pod = |name: String, spec: PodSpec| WorkloadPod {
            namespace: &w.namespace,
            name,
            pos: w.pos,
            labels: &w.template_labels,
            spec,
            owner: &w.name,
            owner_kind: w.kind.as_str(),
        };
        match w.kind {
            WorkloadKind::StatefulSet => {
                for i in 0..w.replicas {
                    let name = statefulset_pod_name(&w.name, w.ordinals_start.saturating_add(i));
                    if !taken.insert((&w.namespace, name.clone())) {
                        problems.push((
                            w.pos,
                            "metadata.name",
                            format!(
                                "statefulset {}: its pod {}/{name} has the name of another pod of the lab",
                                w.name, w.namespace
                            ),
                            Some("rename the statefulset or the other pod".into()),
                        ));
                        continue;
                    }
                    // The StatefulSet controller sets both, whatever the
                    // template says: that is what gives each pod its
                    // stable DNS name under the headless service.
                    let mut spec = w.template.clone();
                    spec.hostname = Some(name.clone());
                    spec.subdomain = w.service_name.clone();
                    out.push(pod(name, spec));
                }
            }
            WorkloadKind::DaemonSet => {
                for node in file.lab.nodes.iter().filter(|n| w.runs_on(n)) {
                    let name = (0..)
                        .map(|salt| daemonset_pod_name(&w.name, &node.name, salt))
                        .find(|n| !taken.contains(&(w.namespace.as_str(), n.clone())))
                        .unwrap_or_default();
                    taken.insert((&w.namespace, name.clone()));
                    let mut spec = w.template.clone();
                    // Pinned as the DaemonSet controller pins it (by node
                    // affinity there, by nodeName here: the same effect).
                    spec.node_name = Some(node.name.clone());
                    spec.node_name_pos = w.pos;
                    out.push(pod(name, spec));
                }
            }
            WorkloadKind::ReplicaSet => {
                for i in 0..w.replicas {
                    let name = (0..)
                        .map(|salt| replicaset_pod_name(&w.name, i, salt))
                        .find(|n| !taken.contains(&(w.namespace.as_str(), n.clone())))
                        .unwrap_or_default();
                    taken.insert((&w.namespace, name.clone()));
                    out.push(pod(name, w.template.clone()));
                }
            }
        }
    }
    (out, problems)
}

/// A workload as the lab's API serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadPlan {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub selector: BTreeMap<String, String>,
    /// The pods it should have: `spec.replicas`, or a DaemonSet's
    /// matching nodes.
    pub desired: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

pub fn plan_workloads(file: &LabFile) -> Vec<WorkloadPlan> {
    file.workloads
        .iter()
        .map(|w| WorkloadPlan {
            kind: w.kind,
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            labels: w.labels.clone(),
            selector: w.selector.clone(),
            desired: w.pod_count(&file.lab.nodes),
            service_name: w.service_name.clone(),
            node_selector: w.node_selector.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::dns::{answer, records, Data, Qtype};
    use crate::plan::{build, Plan, PodPlan};

    const LAB: &str = "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: h3unit}
spec:
  nodes:
  - {name: node-1, labels: {disk: ssd}}
  - {name: node-2, labels: {disk: ssd}}
  - {name: node-3}
---
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 3
  serviceName: nginx
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      hostname: ignored
      containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, ports: [{containerPort: 9100}]}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: cache}
spec:
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      nodeSelector: {disk: ssd}
      tolerations: [{operator: Exists}]
      containers: [{name: cache, ports: [{containerPort: 6379}]}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec:
      containers: [{name: front, ports: [{containerPort: 8080}]}]
";

    fn plan() -> Plan {
        let file = crate::lab::parse("lab.yaml", LAB).expect("parses");
        build(&file).expect("plans")
    }

    fn owned<'a>(p: &'a Plan, kind: &str, name: &str) -> Vec<&'a PodPlan> {
        p.pods
            .iter()
            .filter(|x| x.owner.as_deref() == Some(name) && x.owner_kind.as_deref() == Some(kind))
            .collect()
    }

    #[test]
    fn statefulset_pods_are_numbered_with_their_hostname_and_subdomain() {
        let p = plan();
        let pods = owned(&p, "StatefulSet", "web");
        let names: Vec<&str> = pods.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["web-0", "web-1", "web-2"]);
        for x in &pods {
            // The controller's hostname wins over the template's.
            assert_eq!(x.hostname, x.name);
            assert_eq!(x.subdomain.as_deref(), Some("nginx"));
            assert_eq!(x.owner_ref(), Some(("StatefulSet", "web")));
        }
    }

    #[test]
    fn a_statefulset_pod_resolves_under_its_headless_service() {
        let p = plan();
        let web0 = p.pods.iter().find(|x| x.name == "web-0").expect("web-0");
        let z = records(&p);
        let a = answer(&z, "web-0.nginx.default.svc.cluster.local", Qtype::A);
        let ips: Vec<Data> = a.records.into_iter().map(|r| r.data).collect();
        assert_eq!(ips, [Data::A(web0.ip)]);
        // The service name itself answers with every pod.
        let all = answer(&z, "nginx.default.svc.cluster.local", Qtype::A);
        assert_eq!(all.records.len(), 3);
    }

    #[test]
    fn a_daemonset_has_one_pod_per_matching_node() {
        let p = plan();
        let mut nodes: Vec<&str> = owned(&p, "DaemonSet", "agent")
            .iter()
            .map(|x| x.node.as_str())
            .collect();
        nodes.sort();
        assert_eq!(nodes, ["node-1", "node-2", "node-3"]);
        for x in owned(&p, "DaemonSet", "agent") {
            let (set, suffix) = x.name.rsplit_once('-').expect("suffix");
            assert_eq!(set, "agent");
            assert_eq!(suffix.len(), 5, "{}", x.name);
            assert!(suffix.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
            assert_eq!(x.owner_ref(), Some(("DaemonSet", "agent")));
        }
    }

    #[test]
    fn a_daemonset_node_selector_leaves_out_a_node() {
        let p = plan();
        let mut nodes: Vec<&str> = owned(&p, "DaemonSet", "cache")
            .iter()
            .map(|x| x.node.as_str())
            .collect();
        nodes.sort();
        assert_eq!(nodes, ["node-1", "node-2"]);
        let w = p
            .workloads
            .iter()
            .find(|w| w.name == "cache")
            .expect("cache");
        assert_eq!(w.desired, 2);
        // Read, so no longer listed as ignored; tolerations still are.
        let file = crate::lab::parse("lab.yaml", LAB).expect("parses");
        let ignored: Vec<&str> = file.ignored.iter().map(|i| i.field.as_str()).collect();
        assert!(
            !ignored.contains(&"spec.template.spec.nodeSelector"),
            "{ignored:?}"
        );
        assert!(
            ignored.contains(&"spec.template.spec.tolerations"),
            "{ignored:?}"
        );
    }

    #[test]
    fn replicaset_pods_have_a_five_character_suffix() {
        let p = plan();
        let pods = owned(&p, "ReplicaSet", "front");
        assert_eq!(pods.len(), 2);
        assert_ne!(pods[0].name, pods[1].name);
        for x in &pods {
            let (set, suffix) = x.name.rsplit_once('-').expect("suffix");
            assert_eq!((set, suffix.len()), ("front", 5));
            assert_eq!(x.owner_ref(), Some(("ReplicaSet", "front")));
        }
        // Stable: the same lab gives the same names.
        assert_eq!(plan().pods, p.pods);
    }

    #[test]
    fn a_deployments_pods_are_owned_by_its_replicaset() {
        let text = format!(
            "{LAB}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: dep}}\nspec:\n  selector: {{matchLabels: {{app: dep}}}}\n  template:\n    metadata: {{labels: {{app: dep}}}}\n    spec: {{containers: [{{name: c}}]}}\n"
        );
        let file = crate::lab::parse("lab.yaml", &text).expect("parses");
        let p = build(&file).expect("plans");
        let x = p
            .pods
            .iter()
            .find(|x| x.owner.as_deref() == Some("dep"))
            .expect("dep pod");
        assert_eq!(x.owner_kind.as_deref(), Some("ReplicaSet"));
        let (kind, rs) = x.owner_ref().expect("owner");
        assert_eq!(kind, "ReplicaSet");
        assert!(rs.starts_with("dep-") && x.name.starts_with(rs), "{rs}");
    }

    #[test]
    fn a_statefulset_pod_named_like_a_pod_is_an_error() {
        let text = format!(
            "{LAB}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: web-1}}\nspec: {{containers: [{{name: c}}]}}\n"
        );
        let file = crate::lab::parse("lab.yaml", &text).expect("parses");
        let e = build(&file).expect_err("clash");
        let d = &e.diagnostics[0];
        assert!(d.message.contains("web-1"), "{}", d.message);
        assert_eq!(d.field, "metadata.name");
        assert_eq!(d.pos.line, 20, "the statefulset's name");
    }

    #[test]
    fn old_plans_without_owner_kind_still_load() {
        let p = plan();
        let mut v = serde_json::to_value(&p).expect("json");
        for pod in v["pods"].as_array_mut().expect("pods") {
            pod.as_object_mut().expect("pod").remove("owner_kind");
        }
        v.as_object_mut().expect("plan").remove("workloads");
        let back: Plan = serde_json::from_value(v).expect("loads");
        assert!(back.workloads.is_empty());
        assert!(back.pods.iter().all(|x| x.owner_kind.is_none()));
    }
}
