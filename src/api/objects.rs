//! The lab's objects in Kubernetes' shape, built from the plan and the
//! daemon's live pod status: what the API serves.
//!
//! Read-only for now: every request builds the objects of one resource
//! afresh from the plan on disk (which `apply`, `scale` and `delete`
//! rewrite) and the daemon's table, so the API can never disagree with
//! `podlab get`. Fields Kubernetes would leave out are left out, never
//! `null`: clients that walk the JSON (`jq`, kubectl's jsonpath) see what
//! a cluster gives them.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::lab::WorkloadKind;
use crate::plan::workloads::WorkloadPlan;
use crate::plan::{NodePlan, Plan, PodPlan, ServicePlan, ServiceType, TargetPort};
use crate::runtime::{ContainerState, ContainerStatus, DaemonStatus, PodStatus};

/// The kubelet version nodes report, and the API's `gitVersion`.
pub const VERSION: &str = concat!("v1.32.0-podlab.", env!("CARGO_PKG_VERSION"));

/// One resource the API serves: the row of every table that discovery,
/// routing and printing are generated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// The plural, as in the URL: `pods`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    /// `""` for the core group (served under `/api/v1`).
    pub group: &'static str,
    pub version: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// `all` puts a resource in `kubectl get all`.
    pub categories: &'static [&'static str],
    /// Subresources served, with the kind each answers.
    pub subresources: &'static [(&'static str, &'static str)],
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

pub const PODS: Resource = Resource {
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    group: "",
    version: "v1",
    namespaced: true,
    short_names: &["po"],
    categories: &["all"],
    subresources: &[("exec", "PodExecOptions"), ("log", "Pod")],
};

pub const DEPLOYMENTS: Resource = Resource {
    plural: "deployments",
    singular: "deployment",
    kind: "Deployment",
    group: "apps",
    version: "v1",
    namespaced: true,
    short_names: &["deploy"],
    categories: &["all"],
    subresources: &[("scale", "Scale")],
};

pub const RESOURCES: &[Resource] = &[
    PODS,
    Resource {
        plural: "nodes",
        singular: "node",
        kind: "Node",
        group: "",
        version: "v1",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &[],
    },
    Resource {
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        group: "",
        version: "v1",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &[],
    },
    Resource {
        plural: "services",
        singular: "service",
        kind: "Service",
        group: "",
        version: "v1",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[],
    },
    Resource {
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        group: "",
        version: "v1",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
    },
    Resource {
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        group: "discovery.k8s.io",
        version: "v1",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
    },
    Resource {
        plural: "networkpolicies",
        singular: "networkpolicy",
        kind: "NetworkPolicy",
        group: "networking.k8s.io",
        version: "v1",
        namespaced: true,
        short_names: &["netpol"],
        categories: &[],
        subresources: &[],
    },
    DEPLOYMENTS,
    Resource {
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        group: "apps",
        version: "v1",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        subresources: &[],
    },
    Resource {
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        group: "apps",
        version: "v1",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        subresources: &[],
    },
    Resource {
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        group: "apps",
        version: "v1",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &[],
    },
    Resource {
        plural: "events",
        singular: "event",
        kind: "Event",
        group: "",
        version: "v1",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
    },
    Resource {
        plural: "events",
        singular: "event",
        kind: "Event",
        group: "events.k8s.io",
        version: "v1",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
    },
];

/// The resource at `group`/`version`/`plural`, if served.
pub fn resource(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The groups served under `/apis`, in discovery order.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// Facts about the host that nodes report (the lab's nodes share it).
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub os_image: String,
    pub kernel: String,
    pub cpus: usize,
    /// `MemTotal` of /proc/meminfo, in KiB.
    pub memory_kib: u64,
}

impl Host {
    /// Read from `/etc/os-release` and `uname`; empty where unreadable.
    pub fn probe() -> Host {
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_default();
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0);
        Host {
            os_image,
            kernel,
            cpus,
            memory_kib,
        }
    }

    /// A node's `capacity`, as kubelet reports it (110 pods is its default).
    pub fn capacity(&self) -> Value {
        json!({
            "cpu": self.cpus.to_string(),
            "memory": format!("{}Ki", self.memory_kib),
            "pods": "110",
        })
    }
}

/// Everything the objects are built from, read once per request.
pub struct View<'a> {
    pub plan: &'a Plan,
    /// The daemon's table; `None` if it could not be read (pods are then
    /// `Unknown`, as kubectl shows pods of a node that stopped reporting).
    pub status: Option<&'a DaemonStatus>,
    /// When the lab came up: the creation time of what has no other.
    pub created: Option<SystemTime>,
    pub host: &'a Host,
    /// Node namespaces that exist (a kernel probe): the others are
    /// NotReady.
    pub nodes_up: &'a BTreeSet<String>,
}

impl View<'_> {
    fn pod_status(&self, p: &PodPlan) -> Option<&PodStatus> {
        self.status?.pod(&p.namespace, &p.name)
    }

    fn created(&self) -> Option<String> {
        self.created.map(rfc3339)
    }

    /// Every object of a resource (all namespaces), in the plan's order.
    pub fn objects(&self, r: &Resource) -> Vec<Value> {
        match r.plural {
            "pods" => self.plan.pods.iter().map(|p| self.pod(p)).collect(),
            "nodes" => self.plan.nodes.iter().map(|n| self.node(n)).collect(),
            "namespaces" => self
                .namespaces()
                .iter()
                .map(|n| self.namespace(n))
                .collect(),
            "services" => self.plan.services.iter().map(|s| self.service(s)).collect(),
            "endpoints" => self
                .plan
                .services
                .iter()
                .filter(|s| s.kind != ServiceType::ExternalName)
                .map(|s| self.endpoints(s))
                .collect(),
            "endpointslices" => self
                .plan
                .services
                .iter()
                .filter(|s| s.kind != ServiceType::ExternalName)
                .map(|s| self.endpoint_slice(s))
                .collect(),
            "networkpolicies" => self
                .plan
                .policies
                .iter()
                .map(|p| self.network_policy(p))
                .collect(),
            "deployments" => self
                .plan
                .deployments
                .iter()
                .map(|d| self.deployment(d))
                .collect(),
            "statefulsets" => self.workloads(WorkloadKind::StatefulSet),
            "daemonsets" => self.workloads(WorkloadKind::DaemonSet),
            "replicasets" => self.replicasets(),
            "events" => {
                let events = super::events::from_pods(&self.objects(&PODS));
                if r.group.is_empty() {
                    events
                } else {
                    events.iter().map(super::events::to_events_v1).collect()
                }
            }
            _ => Vec::new(),
        }
    }

    /// The object `ns/name` of `r`: a pod is built alone, the rest from
    /// the whole list (they are few).
    pub fn object(&self, r: &Resource, ns: Option<&str>, name: &str) -> Option<Value> {
        let here = |n: Option<&str>| ns.is_none_or(|want| n == Some(want));
        if r.plural == "pods" {
            return self
                .plan
                .pods
                .iter()
                .find(|p| p.name == name && here(Some(&p.namespace)))
                .map(|p| self.pod(p));
        }
        self.objects(r)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name && here(o["metadata"]["namespace"].as_str()))
    }

    /// The namespaces of the lab: those its objects live in, and the ones
    /// every cluster has.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all: BTreeSet<String> =
            ["default", "kube-node-lease", "kube-public", "kube-system"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        all.extend(self.plan.pods.iter().map(|p| p.namespace.clone()));
        all.extend(self.plan.services.iter().map(|s| s.namespace.clone()));
        all.extend(self.plan.policies.iter().map(|p| p.namespace.clone()));
        all.extend(self.plan.workloads.iter().map(|w| w.namespace.clone()));
        all.into_iter().collect()
    }

    fn metadata(&self, kind: &str, namespace: Option<&str>, name: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(name));
        if let Some(ns) = namespace {
            m.insert("namespace".into(), json!(ns));
        }
        m.insert(
            "uid".into(),
            json!(uid(&self.plan.lab, self.created, kind, namespace, name)),
        );
        if let Some(t) = self.created() {
            m.insert("creationTimestamp".into(), json!(t));
        }
        m
    }

    fn pod_uid(&self, namespace: &str, name: &str, ip: std::net::Ipv4Addr) -> String {
        let instance = format!("{name}@{ip}");
        uid(
            &self.plan.lab,
            self.created,
            "Pod",
            Some(namespace),
            &instance,
        )
    }

    pub fn pod(&self, p: &PodPlan) -> Value {
        let live = self.pod_status(p);
        let mut meta = self.metadata("Pod", Some(&p.namespace), &p.name);
        // A pod made again under its name (a StatefulSet's, a deleted pod
        // brought back) is another object: kubectl's `delete --wait`
        // tells it from the one it deleted by its uid. The address is the
        // pod's for its life, and a new pod gets a new one.
        meta.insert(
            "uid".into(),
            json!(self.pod_uid(&p.namespace, &p.name, p.ip)),
        );
        // A pod started after the lab (apply, scale) is younger than it.
        if let Some(t) = live.and_then(|s| s.started) {
            meta.insert("creationTimestamp".into(), json!(rfc3339(unix(t))));
        }
        labels_into(&mut meta, &p.labels);
        if let Some((kind, owner)) = p.owner_ref() {
            meta.insert(
                "ownerReferences".into(),
                json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner,
                        "uid": uid(&self.plan.lab, self.created, kind, Some(&p.namespace), owner),
                        "controller": true, "blockOwnerDeletion": true}]),
            );
        }
        let mut spec = Map::new();
        spec.insert("containers".into(), Value::Array(containers(p)));
        spec.insert("nodeName".into(), json!(p.node));
        spec.insert("hostname".into(), json!(p.hostname));
        if let Some(sub) = &p.subdomain {
            spec.insert("subdomain".into(), json!(sub));
        }
        spec.insert(
            "restartPolicy".into(),
            json!(format!("{:?}", p.restart_policy)),
        );
        spec.insert("dnsPolicy".into(), json!(format!("{:?}", p.dns.policy)));
        spec.insert("enableServiceLinks".into(), json!(p.service_links));
        let status = self.pod_status_json(p, live);
        finish("v1", "Pod", meta, vec![("spec", spec), ("status", status)])
    }

    fn pod_status_json(&self, p: &PodPlan, live: Option<&PodStatus>) -> Map<String, Value> {
        let mut st = Map::new();
        let host_ip = self.plan.node(&p.node).map(|n| n.ip.to_string());
        let Some(s) = live else {
            st.insert("phase".into(), json!("Unknown"));
            st.insert(
                "reason".into(),
                json!("the lab's daemon did not answer: podlab cannot say"),
            );
            return st;
        };
        st.insert("phase".into(), json!(s.phase.to_string()));
        let started = s.started.map(|t| rfc3339(unix(t)));
        let ready = s.is_ready();
        let scheduled_at = started.clone().or_else(|| self.created());
        let cond = |kind: &str, ok: bool| {
            let mut c = Map::new();
            c.insert("type".into(), json!(kind));
            c.insert("status".into(), json!(if ok { "True" } else { "False" }));
            if let Some(t) = &scheduled_at {
                c.insert("lastTransitionTime".into(), json!(t));
            }
            Value::Object(c)
        };
        let all_ready = s.containers.iter().all(|c| c.ready) && s.started.is_some();
        st.insert(
            "conditions".into(),
            json!([
                cond("PodReadyToStartContainers", s.started.is_some()),
                cond("Initialized", true),
                cond("Ready", ready),
                cond("ContainersReady", all_ready),
                cond("PodScheduled", true),
            ]),
        );
        if let Some(ip) = &host_ip {
            st.insert("hostIP".into(), json!(ip));
            st.insert("hostIPs".into(), json!([{ "ip": ip }]));
        }
        st.insert("podIP".into(), json!(p.ip.to_string()));
        st.insert("podIPs".into(), json!([{"ip": p.ip.to_string()}]));
        if let Some(t) = started {
            st.insert("startTime".into(), json!(t));
        }
        let statuses: Vec<Value> = s.containers.iter().map(container_status).collect();
        st.insert("containerStatuses".into(), Value::Array(statuses));
        st.insert("qosClass".into(), json!("BestEffort"));
        st
    }

    /// The pods `kind`/`name` in `namespace` owns, in the plan's order.
    fn owned<'p>(&'p self, kind: &str, namespace: &str, name: &str) -> Vec<&'p PodPlan> {
        self.plan
            .pods
            .iter()
            .filter(|p| p.namespace == namespace && p.owner_ref() == Some((kind, name)))
            .collect()
    }

    fn ready(&self, pods: &[&PodPlan]) -> usize {
        pods.iter()
            .filter(|p| self.pod_status(p).is_some_and(|s| s.is_ready()))
            .count()
    }

    /// The StatefulSets or DaemonSets of the plan.
    fn workloads(&self, kind: WorkloadKind) -> Vec<Value> {
        self.plan
            .workloads
            .iter()
            .filter(|w| w.kind == kind)
            .map(|w| self.workload(w))
            .collect()
    }

    /// A StatefulSet, DaemonSet or ReplicaSet of the lab file, with the
    /// status its controller would report from its pods.
    pub fn workload(&self, w: &WorkloadPlan) -> Value {
        let kind = w.kind.as_str();
        let pods = self.owned(kind, &w.namespace, &w.name);
        let (have, ready) = (pods.len(), self.ready(&pods));
        let mut meta = self.metadata(kind, Some(&w.namespace), &w.name);
        labels_into(&mut meta, &w.labels);
        let mut template_spec = Map::new();
        template_spec.insert(
            "containers".into(),
            Value::Array(pods.first().map(|p| containers(p)).unwrap_or_default()),
        );
        if !w.node_selector.is_empty() {
            template_spec.insert("nodeSelector".into(), json!(w.node_selector));
        }
        let mut spec = Map::new();
        if w.kind != WorkloadKind::DaemonSet {
            spec.insert("replicas".into(), json!(w.desired));
        }
        spec.insert("selector".into(), json!({"matchLabels": w.selector}));
        if let Some(svc) = &w.service_name {
            spec.insert("serviceName".into(), json!(svc));
        }
        spec.insert(
            "template".into(),
            json!({"metadata": {"labels": pods.first().map_or(&w.selector, |p| &p.labels)},
                   "spec": template_spec}),
        );
        let status = match w.kind {
            WorkloadKind::DaemonSet => json!({
                "desiredNumberScheduled": w.desired,
                "currentNumberScheduled": have,
                "numberReady": ready,
                "updatedNumberScheduled": have,
                "numberAvailable": ready,
                "numberMisscheduled": 0,
            }),
            _ => json!({
                "replicas": have,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "currentReplicas": have,
                "updatedReplicas": have,
            }),
        };
        finish_value(
            "apps/v1",
            kind,
            meta,
            vec![("spec", Value::Object(spec)), ("status", status)],
        )
    }

    /// The bare ReplicaSets of the lab file, then those of its Deployments
    /// (coredns's too): a Deployment's are known by its pods, so one
    /// scaled to zero shows none.
    fn replicasets(&self) -> Vec<Value> {
        let mut out = self.workloads(WorkloadKind::ReplicaSet);
        let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
        for p in &self.plan.pods {
            let (Some(("ReplicaSet", rs)), Some(deploy)) = (p.owner_ref(), p.owner.as_deref())
            else {
                continue;
            };
            // A bare ReplicaSet's pods name the ReplicaSet as their owner.
            if rs == deploy || !seen.insert((&p.namespace, rs)) {
                continue;
            }
            let pods = self.owned("ReplicaSet", &p.namespace, rs);
            let (have, ready) = (pods.len(), self.ready(&pods));
            let mut meta = self.metadata("ReplicaSet", Some(&p.namespace), rs);
            labels_into(&mut meta, &p.labels);
            meta.insert(
                "ownerReferences".into(),
                json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": deploy,
                        "uid": uid(&self.plan.lab, self.created, "Deployment", Some(&p.namespace), deploy),
                        "controller": true, "blockOwnerDeletion": true}]),
            );
            let spec = json!({
                "replicas": have,
                "selector": {"matchLabels": p.labels},
                "template": {"metadata": {"labels": p.labels},
                             "spec": {"containers": containers(p)}},
            });
            let status = json!({
                "replicas": have,
                "fullyLabeledReplicas": have,
                "readyReplicas": ready,
                "availableReplicas": ready,
            });
            out.push(finish_value(
                "apps/v1",
                "ReplicaSet",
                meta,
                vec![("spec", spec), ("status", status)],
            ));
        }
        out
    }

    pub fn node(&self, n: &NodePlan) -> Value {
        let mut meta = self.metadata("Node", None, &n.name);
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), n.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
        ]);
        labels.extend(n.labels.clone());
        labels_into(&mut meta, &labels);
        let ready = self.nodes_up.contains(&n.netns);
        let mut cond = Map::new();
        cond.insert("type".into(), json!("Ready"));
        cond.insert("status".into(), json!(if ready { "True" } else { "False" }));
        cond.insert(
            "reason".into(),
            json!(if ready {
                "KubeletReady"
            } else {
                "NodeNetnsMissing"
            }),
        );
        cond.insert(
            "message".into(),
            json!(if ready {
                "the node's network namespace exists".to_string()
            } else {
                format!("network namespace {} is missing", n.netns)
            }),
        );
        if let Some(t) = self.created() {
            cond.insert("lastTransitionTime".into(), json!(t));
        }
        let spec =
            obj(json!({"podCIDR": n.pod_cidr.to_string(), "podCIDRs": [n.pod_cidr.to_string()]}));
        let status = obj(json!({
            "addresses": [
                {"type": "InternalIP", "address": n.ip.to_string()},
                {"type": "Hostname", "address": n.name},
            ],
            "conditions": [Value::Object(cond)],
            // The nodes share the host: each reports the host's (what
            // `describe node` computes its percentages from).
            "capacity": self.host.capacity(),
            "allocatable": self.host.capacity(),
            "nodeInfo": {
                "kubeletVersion": VERSION,
                "kubeProxyVersion": VERSION,
                "containerRuntimeVersion": concat!("podlab://", env!("CARGO_PKG_VERSION")),
                "osImage": self.host.os_image,
                "kernelVersion": self.host.kernel,
                "operatingSystem": "linux",
                "architecture": std::env::consts::ARCH,
            },
        }));
        finish("v1", "Node", meta, vec![("spec", spec), ("status", status)])
    }

    /// A NetworkPolicy: its manifest's spec, as the plan kept it.
    pub fn network_policy(&self, p: &crate::plan::netpol::PolicyPlan) -> Value {
        let mut meta = self.metadata("NetworkPolicy", Some(&p.namespace), &p.name);
        if let Some(user) = p.meta.as_object() {
            meta.extend(user.clone());
        }
        let spec = p.spec.as_object().cloned().unwrap_or_default();
        finish(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            meta,
            vec![("spec", spec)],
        )
    }

    /// A Deployment, its status counted from its pods in the plan and
    /// their readiness in the daemon's table.
    pub fn deployment(&self, d: &crate::plan::DeploymentPlan) -> Value {
        let mut meta = self.metadata("Deployment", Some(&d.namespace), &d.name);
        labels_into(&mut meta, &d.labels);
        meta.insert("generation".into(), json!(1));
        let pods: Vec<&PodPlan> = self
            .plan
            .pods
            .iter()
            .filter(|p| p.namespace == d.namespace && p.owner.as_deref() == Some(&d.name))
            .collect();
        let ready = pods
            .iter()
            .filter(|p| self.endpoint_ready(&p.namespace, &p.name))
            .count();
        let containers: Vec<Value> = d
            .containers
            .iter()
            .map(|(name, image)| match image {
                Some(i) => json!({"name": name, "image": i}),
                None => json!({"name": name}),
            })
            .collect();
        let spec = obj(json!({
            "replicas": d.replicas,
            "selector": {"matchLabels": d.selector},
            "template": {"metadata": {"labels": d.template_labels}, "spec": {"containers": containers}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        }));
        let mut status = obj(json!({"observedGeneration": 1}));
        if !pods.is_empty() {
            status.insert("replicas".into(), json!(pods.len()));
            status.insert("updatedReplicas".into(), json!(pods.len()));
        }
        if ready > 0 {
            status.insert("readyReplicas".into(), json!(ready));
            status.insert("availableReplicas".into(), json!(ready));
        }
        let unavailable = (d.replicas as usize).saturating_sub(ready);
        if unavailable > 0 {
            status.insert("unavailableReplicas".into(), json!(unavailable));
        }
        let available = if ready >= d.replicas as usize {
            "True"
        } else {
            "False"
        };
        status.insert(
            "conditions".into(),
            json!([{"type": "Available", "status": available,
                    "reason": if available == "True" { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    "message": if available == "True" { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." }},
                   {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                    "message": "ReplicaSet has successfully progressed."}]),
        );
        finish(
            "apps/v1",
            "Deployment",
            meta,
            vec![("spec", spec), ("status", status)],
        )
    }

    /// A Deployment's `scale` subresource (autoscaling/v1 Scale).
    pub fn scale(&self, d: &crate::plan::DeploymentPlan) -> Value {
        let full = self.deployment(d);
        let pods = full["status"]["replicas"].as_u64().unwrap_or(0);
        let selector = d
            .selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": full["metadata"],
            "spec": {"replicas": d.replicas},
            "status": {"replicas": pods, "selector": selector},
        })
    }

    pub fn namespace(&self, name: &str) -> Value {
        let mut meta = self.metadata("Namespace", None, name);
        let mut labels = self
            .plan
            .namespace_labels
            .get(name)
            .cloned()
            .unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".into(), name.into());
        labels_into(&mut meta, &labels);
        let spec = obj(json!({"finalizers": ["kubernetes"]}));
        let status = obj(json!({"phase": "Active"}));
        finish(
            "v1",
            "Namespace",
            meta,
            vec![("spec", spec), ("status", status)],
        )
    }

    pub fn service(&self, s: &ServicePlan) -> Value {
        let meta = self.metadata("Service", Some(&s.namespace), &s.name);
        let mut spec = Map::new();
        spec.insert("type".into(), json!(service_type(s.kind)));
        match (s.kind, s.cluster_ip) {
            (ServiceType::ExternalName, _) => {}
            (_, Some(ip)) => {
                spec.insert("clusterIP".into(), json!(ip.to_string()));
                spec.insert("clusterIPs".into(), json!([ip.to_string()]));
            }
            (_, None) => {
                spec.insert("clusterIP".into(), json!("None"));
                spec.insert("clusterIPs".into(), json!(["None"]));
            }
        }
        if s.kind != ServiceType::ExternalName {
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
            spec.insert("ipFamilyPolicy".into(), json!("SingleStack"));
        }
        if let Some(name) = &s.external_name {
            spec.insert("externalName".into(), json!(name));
        }
        let ports: Vec<Value> = s
            .ports
            .iter()
            .map(|p| {
                let mut m = Map::new();
                if let Some(n) = &p.name {
                    m.insert("name".into(), json!(n));
                }
                m.insert("protocol".into(), json!(p.protocol.to_string()));
                m.insert("port".into(), json!(p.port));
                m.insert(
                    "targetPort".into(),
                    match &p.target_port {
                        TargetPort::Number(n) => json!(n),
                        TargetPort::Name(n) => json!(n),
                    },
                );
                if let Some(np) = p.node_port {
                    m.insert("nodePort".into(), json!(np));
                }
                Value::Object(m)
            })
            .collect();
        if !ports.is_empty() {
            spec.insert("ports".into(), Value::Array(ports));
        }
        if !s.selector.is_empty() {
            spec.insert("selector".into(), json!(s.selector));
        }
        match s.affinity_timeout {
            Some(t) => {
                spec.insert("sessionAffinity".into(), json!("ClientIP"));
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": t}}),
                );
            }
            None => {
                spec.insert("sessionAffinity".into(), json!("None"));
            }
        }
        if matches!(s.kind, ServiceType::NodePort | ServiceType::LoadBalancer) {
            let policy = if s.external_local { "Local" } else { "Cluster" };
            spec.insert("externalTrafficPolicy".into(), json!(policy));
        }
        if s.kind != ServiceType::ExternalName {
            let policy = if s.internal_local { "Local" } else { "Cluster" };
            spec.insert("internalTrafficPolicy".into(), json!(policy));
        }
        if s.publish_not_ready {
            spec.insert("publishNotReadyAddresses".into(), json!(true));
        }
        let status = obj(json!({"loadBalancer": match s.load_balancer_ip {
            Some(ip) if s.kind == ServiceType::LoadBalancer => json!({"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}),
            _ => json!({}),
        }}));
        finish(
            "v1",
            "Service",
            meta,
            vec![("spec", spec), ("status", status)],
        )
    }

    /// Whether a selected pod is ready, by the daemon's table: the one rule
    /// kube-proxy follows here too. Without the daemon's answer, nothing is.
    /// A hand-written address that is no pod's has nothing to report: the
    /// file says it is ready.
    fn endpoint_ready(&self, namespace: &str, pod: &str) -> bool {
        if pod.is_empty() {
            return true;
        }
        self.status
            .and_then(|s| s.pod(namespace, pod))
            .is_some_and(PodStatus::is_ready)
    }

    /// `nodeName` and `targetRef` of an address that is a pod's; a
    /// hand-written address outside the lab's pods has neither.
    fn pod_ref(&self, e: &crate::plan::EndpointPlan, m: &mut Map<String, Value>) {
        if e.pod.is_empty() {
            return;
        }
        m.insert("nodeName".into(), json!(e.node));
        m.insert(
            "targetRef".into(),
            json!({"kind": "Pod", "name": e.pod, "namespace": e.namespace,
                   "uid": self.pod_uid(&e.namespace, &e.pod, e.ip)}),
        );
    }

    pub fn endpoints(&self, s: &ServicePlan) -> Value {
        let mut meta = self.metadata("Endpoints", Some(&s.namespace), &s.name);
        if !s.selector.is_empty() {
            labels_into(&mut meta, &s.selector);
        }
        // One subset per distinct set of resolved ports, as the endpoints
        // controller groups them.
        type Subset = (Vec<Option<u16>>, Vec<Value>, Vec<Value>);
        let mut subsets: Vec<Subset> = Vec::new();
        for e in &s.endpoints {
            if e.ports.iter().all(Option::is_none) && !s.ports.is_empty() {
                continue;
            }
            let mut addr = Map::new();
            addr.insert("ip".into(), json!(e.ip.to_string()));
            self.pod_ref(e, &mut addr);
            let addr = Value::Object(addr);
            let i = match subsets.iter().position(|(p, _, _)| *p == e.ports) {
                Some(i) => i,
                None => {
                    subsets.push((e.ports.clone(), Vec::new(), Vec::new()));
                    subsets.len() - 1
                }
            };
            // The endpoints controller lists every pod of such a service
            // among its ready addresses.
            if s.publish_not_ready || self.endpoint_ready(&e.namespace, &e.pod) {
                subsets[i].1.push(addr);
            } else {
                subsets[i].2.push(addr);
            }
        }
        let subsets: Vec<Value> = subsets
            .into_iter()
            .map(|(ports, ready, not_ready)| {
                let mut m = Map::new();
                if !ready.is_empty() {
                    m.insert("addresses".into(), Value::Array(ready));
                }
                if !not_ready.is_empty() {
                    m.insert("notReadyAddresses".into(), Value::Array(not_ready));
                }
                let ports: Vec<Value> = s
                    .ports
                    .iter()
                    .zip(ports)
                    .filter_map(|(sp, tp)| {
                        let tp = tp?;
                        let mut p = Map::new();
                        if let Some(n) = &sp.name {
                            p.insert("name".into(), json!(n));
                        }
                        p.insert("port".into(), json!(tp));
                        p.insert("protocol".into(), json!(sp.protocol.to_string()));
                        Some(Value::Object(p))
                    })
                    .collect();
                if !ports.is_empty() {
                    m.insert("ports".into(), Value::Array(ports));
                }
                Value::Object(m)
            })
            .collect();
        let mut rest = Vec::new();
        if !subsets.is_empty() {
            rest.push(("subsets", obj_array(subsets)));
        }
        finish_value("v1", "Endpoints", meta, rest)
    }

    pub fn endpoint_slice(&self, s: &ServicePlan) -> Value {
        // One slice per service, named as the controller names its first.
        let name = format!("{}-{}", s.name, short_hash(&s.key()));
        let mut meta = self.metadata("EndpointSlice", Some(&s.namespace), &name);
        labels_into(
            &mut meta,
            &BTreeMap::from([
                ("kubernetes.io/service-name".to_string(), s.name.clone()),
                (
                    "endpointslice.kubernetes.io/managed-by".to_string(),
                    "endpointslice-controller.k8s.io".to_string(),
                ),
            ]),
        );
        let endpoints: Vec<Value> = s
            .endpoints
            .iter()
            .map(|e| {
                let serving = self.endpoint_ready(&e.namespace, &e.pod);
                // As the EndpointSlice controller does: `ready` says whether
                // to route to it, `serving` what the pod itself reports.
                let ready = serving || s.publish_not_ready;
                let mut m = Map::new();
                m.insert("addresses".into(), json!([e.ip.to_string()]));
                m.insert(
                    "conditions".into(),
                    json!({"ready": ready, "serving": serving, "terminating": false}),
                );
                self.pod_ref(e, &mut m);
                Value::Object(m)
            })
            .collect();
        // A slice carries one port list; a named target port that resolves
        // differently per pod would need several slices (left out for now).
        let first = s.endpoints.first().map(|e| e.ports.clone());
        let ports: Vec<Value> = s
            .ports
            .iter()
            .enumerate()
            .filter_map(|(i, sp)| {
                let tp = first.as_ref()?.get(i).copied().flatten()?;
                let mut p = Map::new();
                // The controller writes "" for an unnamed port, and
                // `kubectl describe svc` reads the name without a check.
                p.insert("name".into(), json!(sp.name.as_deref().unwrap_or("")));
                p.insert("port".into(), json!(tp));
                p.insert("protocol".into(), json!(sp.protocol.to_string()));
                Some(Value::Object(p))
            })
            .collect();
        let mut v = finish_value(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            meta,
            vec![("addressType", json!("IPv4"))],
        );
        if let Some(m) = v.as_object_mut() {
            // Kubernetes sends `endpoints: null` for an empty slice; an
            // empty list reads the same to every client and is no null.
            m.insert("endpoints".into(), Value::Array(endpoints));
            if !ports.is_empty() {
                m.insert("ports".into(), Value::Array(ports));
            }
        }
        stamp_version(v)
    }
}

/// The names of a pod's containers, in the order the spec lists them.
pub fn container_names(p: &PodPlan) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for c in p
        .containers
        .iter()
        .map(String::as_str)
        .chain(p.ports.iter().map(|x| x.container.as_str()))
        .chain(p.processes.iter().map(|x| x.container.as_str()))
    {
        if !names.contains(&c) {
            names.push(c);
        }
    }
    names
}

/// The containers of a pod spec: the plan knows them by their ports and
/// processes. Images are not run (the host's binaries are), so none is
/// claimed.
fn containers(p: &PodPlan) -> Vec<Value> {
    container_names(p)
        .into_iter()
        .map(|c| {
            let mut m = Map::new();
            m.insert("name".into(), json!(c));
            if let Some(proc) = p.processes.iter().find(|x| x.container == c) {
                m.insert("command".into(), json!(proc.argv));
                if !proc.env.is_empty() {
                    let env: Vec<Value> = proc
                        .env
                        .iter()
                        .map(|(k, v)| json!({"name": k, "value": v}))
                        .collect();
                    m.insert("env".into(), Value::Array(env));
                }
            }
            let ports: Vec<Value> = p
                .ports
                .iter()
                .filter(|x| x.container == c)
                .map(|x| {
                    let mut port = Map::new();
                    if let Some(n) = &x.name {
                        port.insert("name".into(), json!(n));
                    }
                    port.insert("containerPort".into(), json!(x.port));
                    if let Some(h) = x.host_port {
                        port.insert("hostPort".into(), json!(h));
                    }
                    port.insert("protocol".into(), json!(x.protocol.to_string()));
                    Value::Object(port)
                })
                .collect();
            if !ports.is_empty() {
                m.insert("ports".into(), Value::Array(ports));
            }
            Value::Object(m)
        })
        .collect()
}

/// One entry of `status.containerStatuses`, as kubelet reports it.
pub fn container_status(c: &ContainerStatus) -> Value {
    let mut state = Map::new();
    match c.state {
        ContainerState::Running => {
            let mut running = Map::new();
            if let Some(t) = c.started {
                running.insert("startedAt".into(), json!(rfc3339(unix(t))));
            }
            state.insert("running".into(), Value::Object(running));
        }
        ContainerState::ContainerCreating | ContainerState::CrashLoopBackOff => {
            let mut waiting = Map::new();
            waiting.insert("reason".into(), json!(c.state.as_str()));
            if let Some(m) = &c.message {
                waiting.insert("message".into(), json!(m));
            }
            state.insert("waiting".into(), Value::Object(waiting));
        }
        ContainerState::Completed | ContainerState::Error => {
            let mut t = Map::new();
            t.insert("exitCode".into(), json!(c.exit_code.unwrap_or(0)));
            t.insert("reason".into(), json!(c.state.as_str()));
            if let Some(m) = &c.message {
                t.insert("message".into(), json!(m));
            }
            state.insert("terminated".into(), Value::Object(t));
        }
    }
    let mut last = Map::new();
    // The previous run's end, when there was one and the current state
    // is not that end already.
    if c.restarts > 0 && matches!(c.state, ContainerState::Running) {
        if let Some(code) = c.exit_code {
            let reason = if code == 0 { "Completed" } else { "Error" };
            last.insert(
                "terminated".into(),
                json!({"exitCode": code, "reason": reason}),
            );
        }
    }
    let mut m = Map::new();
    m.insert("name".into(), json!(c.name));
    m.insert("ready".into(), json!(c.ready));
    m.insert("restartCount".into(), json!(c.restarts));
    m.insert("started".into(), json!(c.state == ContainerState::Running));
    m.insert("state".into(), Value::Object(state));
    m.insert("lastState".into(), Value::Object(last));
    if let Some(pid) = c.pid {
        // Not a container runtime's id: the process, which is what there is.
        m.insert("containerID".into(), json!(format!("podlab://{pid}")));
    }
    Value::Object(m)
}

fn service_type(t: ServiceType) -> &'static str {
    match t {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
        ServiceType::ExternalName => "ExternalName",
    }
}

fn labels_into(meta: &mut Map<String, Value>, labels: &BTreeMap<String, String>) {
    if !labels.is_empty() {
        meta.insert("labels".into(), json!(labels));
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn obj_array(v: Vec<Value>) -> Value {
    Value::Array(v)
}

fn finish(
    api_version: &str,
    kind: &str,
    meta: Map<String, Value>,
    parts: Vec<(&str, Map<String, Value>)>,
) -> Value {
    let parts = parts
        .into_iter()
        .map(|(k, m)| (k, Value::Object(m)))
        .collect();
    finish_value(api_version, kind, meta, parts)
}

fn finish_value(
    api_version: &str,
    kind: &str,
    meta: Map<String, Value>,
    parts: Vec<(&str, Value)>,
) -> Value {
    let mut m = Map::new();
    m.insert("apiVersion".into(), json!(api_version));
    m.insert("kind".into(), json!(kind));
    m.insert("metadata".into(), Value::Object(meta));
    for (k, v) in parts {
        m.insert(k.into(), v);
    }
    stamp_version(Value::Object(m))
}

/// `metadata.resourceVersion`: a digest of the object's content, so it
/// changes exactly when the object does (there is no write path yet to
/// count versions from). Decimal, as Kubernetes' are, so clients that
/// compare them as numbers are not confused.
fn stamp_version(mut v: Value) -> Value {
    let rv = content_version(&v);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rv));
    }
    v
}

/// A list's resourceVersion: a digest of its items' names and versions,
/// which changes exactly when an item does, without serializing them
/// all again.
pub fn list_version(items: &[Value]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for o in items {
        let m = &o["metadata"];
        (
            m["namespace"].as_str(),
            m["name"].as_str(),
            m["resourceVersion"].as_str(),
        )
            .hash(&mut h);
    }
    (h.finish() % 1_000_000_000_000_000).to_string()
}

pub fn content_version(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    // 15 digits: within a JavaScript number, in case a client parses it.
    (h.finish() % 1_000_000_000_000_000).to_string()
}

/// A stable UUID-shaped uid: the same object of the same lab run has the
/// same uid in every answer; a lab brought up again gets new ones.
pub fn uid(
    lab: &str,
    created: Option<SystemTime>,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> String {
    let stamp = created
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let half = |salt: u8| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, lab, stamp, kind, namespace, name).hash(&mut h);
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn short_hash(s: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = h.finish();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

pub fn unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// RFC 3339 in UTC, as Kubernetes writes timestamps.
pub fn rfc3339(t: SystemTime) -> String {
    crate::cli::table::rfc3339(t)
}

#[cfg(test)]
mod version_tests {
    use super::content_version;
    use serde_json::json;

    #[test]
    fn the_version_follows_the_content() {
        let a = json!({"metadata": {"name": "a"}, "spec": {"n": 1, "l": ["x"]}});
        assert_eq!(content_version(&a), content_version(&a.clone()));
        for changed in [
            json!({"metadata": {"name": "b"}, "spec": {"n": 1, "l": ["x"]}}),
            json!({"metadata": {"name": "a"}, "spec": {"n": 2, "l": ["x"]}}),
            json!({"metadata": {"name": "a"}, "spec": {"n": 1, "l": ["x", "y"]}}),
            json!({"metadata": {"name": "a"}, "spec": {"n": "1", "l": ["x"]}}),
        ] {
            assert_ne!(content_version(&a), content_version(&changed), "{changed}");
        }
    }
}
