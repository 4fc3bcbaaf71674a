//! `meta.k8s.io/v1` Table responses: the server-side printing kubectl asks
//! for (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with the
//! columns of Kubernetes' own printers (`pkg/printers/internalversion`).
//!
//! Every cell is computed from the object the API would return, so the
//! table and `-o json` cannot disagree.

use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use super::objects::Resource;

/// A column: name, type, priority (1: only with `-o wide`), description.
type Column = (&'static str, &'static str, u8, &'static str);

/// What every row's cells start from.
struct Common {
    name: String,
    age: String,
    now: SystemTime,
}

/// A printer's cells for one object, in its columns' order.
type Cells = fn(&Value, Common) -> Vec<String>;

/// Each resource's printer: its columns, in Kubernetes' order, and how
/// its cells are made.
const PRINTERS: &[(&str, &[Column], Cells)] = &[
    (
        "pods",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            ("Status", "string", 0, "The aggregate status of the containers in this pod."),
            ("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            ("Age", "string", 0, AGE_DOC),
            ("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            ("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node."),
            ("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."),
            ("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        pod_cells,
    ),
    (
        "nodes",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("Status", "string", 0, "The status of the node"),
            ("Roles", "string", 0, "The roles of the node"),
            ("Age", "string", 0, AGE_DOC),
            ("Version", "string", 0, "Kubelet Version reported by the node."),
            ("Internal-IP", "string", 1, "List of addresses reachable to the node."),
            ("External-IP", "string", 1, "List of addresses reachable to the node."),
            ("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            ("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            ("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        node_cells,
    ),
    (
        "namespaces",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("Status", "string", 0, "The status of the namespace"),
            ("Age", "string", 0, AGE_DOC),
        ],
        namespace_cells,
    ),
    (
        "services",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("Type", "string", 0, "type determines how the Service is exposed."),
            ("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),
            ("External-IP", "string", 0, "List of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            ("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
            ("Age", "string", 0, AGE_DOC),
            ("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
        ],
        service_cells,
    ),
    (
        "endpoints",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("Endpoints", "string", 0, "Endpoints of the service"),
            ("Age", "string", 0, AGE_DOC),
        ],
        endpoints_cells,
    ),
    (
        "endpointslices",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("AddressType", "string", 0, "addressType specifies the type of address carried by this EndpointSlice."),
            ("Ports", "string", 0, "ports specifies the list of network ports exposed by each endpoint in this slice."),
            ("Endpoints", "string", 0, "endpoints is a list of unique endpoints in this slice."),
            ("Age", "string", 0, AGE_DOC),
        ],
        slice_cells,
    ),
    (
        "networkpolicies",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("Pod-Selector", "string", 0, "Select which pods this network policy applies to."),
            ("Age", "string", 0, AGE_DOC),
        ],
        policy_cells,
    ),
    (
        "deployments",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("Ready", "string", 0, "Number of the pod with ready state"),
            ("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            ("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            ("Age", "string", 0, AGE_DOC),
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
            ("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
        ],
        deployment_cells,
    ),
    (
        "statefulsets",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("Ready", "string", 0, "Number of the pod with ready state"),
            ("Age", "string", 0, AGE_DOC),
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
        ],
        statefulset_cells,
    ),
    (
        "daemonsets",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
            ("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            ("Ready", "integer", 0, "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
            ("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
            ("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
            ("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node."),
            ("Age", "string", 0, AGE_DOC),
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
            ("Selector", "string", 1, "A label query over pods that are managed by the daemon set."),
        ],
        daemonset_cells,
    ),
    (
        "replicasets",
        &[
            ("Name", "string", 0, NAME_DOC),
            ("Desired", "integer", 0, "Replicas is the number of desired replicas."),
            ("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
            ("Ready", "integer", 0, "The number of ready replicas for this replica set."),
            ("Age", "string", 0, AGE_DOC),
            ("Containers", "string", 1, "Names of each container in the template."),
            ("Images", "string", 1, "Images referenced by each container in the template."),
            ("Selector", "string", 1, "Selector is a label query over pods that should match the replica count."),
        ],
        replicaset_cells,
    ),
    (
        "events",
        &[
            ("Last Seen", "string", 0, "Time of the last occurrence of the event."),
            ("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
            ("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            ("Object", "string", 0, "The object that this event is about."),
            ("Subobject", "string", 1, "The part of the object that this event is about."),
            ("Source", "string", 1, "The component reporting this event."),
            ("Message", "string", 0, "A human-readable description of the status of this operation."),
            ("First Seen", "string", 1, "The time at which the event was first recorded."),
            ("Count", "string", 1, "The number of times this event has occurred."),
            ("Name", "string", 1, NAME_DOC),
        ],
        event_cells,
    ),
];

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

pub fn columns(r: &Resource) -> &'static [Column] {
    PRINTERS
        .iter()
        .find(|(p, _, _)| *p == r.plural)
        .map_or(&[], |(_, c, _)| c)
}

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    /// The default: `PartialObjectMetadata`, which is where kubectl reads
    /// the NAMESPACE column of `-A` and `--show-labels` from.
    Metadata,
    Object,
}

impl Include {
    pub fn parse(v: Option<&str>) -> Result<Include, String> {
        match v {
            None | Some("") | Some("Metadata") => Ok(Include::Metadata),
            Some("None") => Ok(Include::None),
            Some("Object") => Ok(Include::Object),
            Some(other) => Err(format!(
                "includeObject: unsupported value \"{other}\": supported values: \"None\", \"Metadata\", \"Object\""
            )),
        }
    }
}

/// The Table of `objects` (all of `r`'s kind), at `now`.
pub fn table(r: &Resource, objects: &[Value], include: Include, now: SystemTime) -> Value {
    let defs: Vec<Value> = columns(r)
        .iter()
        .map(|(name, kind, priority, doc)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": kind, "format": format, "description": doc, "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells(r, o, now)));
            match include {
                Include::None => {}
                Include::Metadata => {
                    row.insert(
                        "object".into(),
                        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({}))}),
                    );
                }
                Include::Object => {
                    row.insert("object".into(), o.clone());
                }
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": super::objects::list_version(objects)},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn cells(r: &Resource, o: &Value, now: SystemTime) -> Vec<Value> {
    let common = Common {
        name: s(o, &["metadata", "name"]).to_string(),
        age: age_of(o, now),
        now,
    };
    let cells = match PRINTERS.iter().find(|(p, _, _)| *p == r.plural) {
        Some((_, _, make)) => make(o, common),
        // Not reached for a served resource: each has a printer.
        None => vec![common.name, common.age],
    };
    cells.into_iter().map(Value::String).collect()
}

/// A pod template's container names and images, comma-separated as
/// kubectl's `layoutContainerCells` joins them.
fn template_cells(o: &Value) -> (String, String) {
    let containers = list(o, &["spec", "template", "spec", "containers"]);
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let images: Vec<&str> = containers
        .iter()
        .map(|c| c["image"].as_str().unwrap_or(""))
        .collect();
    (names.join(","), images.join(","))
}

fn count_of(o: &Value, path: &[&str]) -> String {
    at(o, path).as_u64().unwrap_or(0).to_string()
}

fn deployment_cells(o: &Value, c: Common) -> Vec<String> {
    let (names, images) = template_cells(o);
    vec![
        c.name,
        format!(
            "{}/{}",
            count_of(o, &["status", "readyReplicas"]),
            count_of(o, &["spec", "replicas"])
        ),
        count_of(o, &["status", "updatedReplicas"]),
        count_of(o, &["status", "availableReplicas"]),
        c.age,
        names,
        images,
        label_selector(at(o, &["spec", "selector"])),
    ]
}

fn statefulset_cells(o: &Value, c: Common) -> Vec<String> {
    let (names, images) = template_cells(o);
    vec![
        c.name,
        format!(
            "{}/{}",
            count_of(o, &["status", "readyReplicas"]),
            count_of(o, &["spec", "replicas"])
        ),
        c.age,
        names,
        images,
    ]
}

fn daemonset_cells(o: &Value, c: Common) -> Vec<String> {
    let (names, images) = template_cells(o);
    let node_selector: Vec<String> = at(o, &["spec", "template", "spec", "nodeSelector"])
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    vec![
        c.name,
        count_of(o, &["status", "desiredNumberScheduled"]),
        count_of(o, &["status", "currentNumberScheduled"]),
        count_of(o, &["status", "numberReady"]),
        count_of(o, &["status", "updatedNumberScheduled"]),
        count_of(o, &["status", "numberAvailable"]),
        or_none(&node_selector.join(",")),
        c.age,
        names,
        images,
        label_selector(at(o, &["spec", "selector"])),
    ]
}

fn replicaset_cells(o: &Value, c: Common) -> Vec<String> {
    let (names, images) = template_cells(o);
    vec![
        c.name,
        count_of(o, &["spec", "replicas"]),
        count_of(o, &["status", "replicas"]),
        count_of(o, &["status", "readyReplicas"]),
        c.age,
        names,
        images,
        label_selector(at(o, &["spec", "selector"])),
    ]
}

fn policy_cells(o: &Value, c: Common) -> Vec<String> {
    vec![
        c.name,
        label_selector(at(o, &["spec", "podSelector"])),
        c.age,
    ]
}

/// `metav1.FormatLabelSelector`: `k=v,k in (a,b),!k`, `<none>` if empty.
pub fn label_selector(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn namespace_cells(o: &Value, c: Common) -> Vec<String> {
    vec![c.name, or_none(s(o, &["status", "phase"])), c.age]
}

fn endpoints_cells(o: &Value, c: Common) -> Vec<String> {
    vec![c.name, endpoints_cell(o), c.age]
}

fn at<'a>(o: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(o, |v, k| &v[*k])
}

fn s<'a>(o: &'a Value, path: &[&str]) -> &'a str {
    at(o, path).as_str().unwrap_or("")
}

fn list<'a>(o: &'a Value, path: &[&str]) -> &'a [Value] {
    at(o, path).as_array().map_or(&[], Vec::as_slice)
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.to_string()
    }
}

fn age_of(o: &Value, now: SystemTime) -> String {
    match parse_rfc3339(s(o, &["metadata", "creationTimestamp"])) {
        Some(t) => match now.duration_since(t) {
            Ok(d) => human_duration(d),
            // A clock a second or two behind the object: "almost now".
            Err(e) if e.duration() < Duration::from_secs(2) => "0s".into(),
            Err(_) => "<invalid>".into(),
        },
        None => "<unknown>".into(),
    }
}

/// printEvent's cells, from a `v1` or an `events.k8s.io/v1` Event.
fn event_cells(o: &Value, c: Common) -> Vec<String> {
    let Common { name, now, .. } = c;
    let either = |a: &str, b: &str| if o[a].is_null() { &o[b] } else { &o[a] };
    let since = |t: &Value| match t.as_str().and_then(parse_rfc3339) {
        Some(t) => human_duration(now.duration_since(t).unwrap_or_default()),
        None => "<unknown>".into(),
    };
    let involved = either("involvedObject", "regarding");
    let source = either("source", "deprecatedSource");
    let mut from = source["component"].as_str().unwrap_or("").to_string();
    if let Some(h) = source["host"].as_str().filter(|h| !h.is_empty()) {
        from = format!("{from}, {h}");
    }
    vec![
        since(either("lastTimestamp", "deprecatedLastTimestamp")),
        s(o, &["type"]).to_string(),
        s(o, &["reason"]).to_string(),
        format!(
            "{}/{}",
            involved["kind"].as_str().unwrap_or("").to_lowercase(),
            involved["name"].as_str().unwrap_or("")
        ),
        involved["fieldPath"].as_str().unwrap_or("").to_string(),
        from,
        either("message", "note").as_str().unwrap_or("").to_string(),
        since(either("firstTimestamp", "deprecatedFirstTimestamp")),
        either("count", "deprecatedCount")
            .as_u64()
            .unwrap_or(1)
            .to_string(),
        name,
    ]
}

/// kubectl's STATUS, READY and RESTARTS from a pod, as `printPod` derives
/// them: a container's waiting or terminated reason wins over the phase.
fn pod_cells(o: &Value, c: Common) -> Vec<String> {
    let Common { name, age, .. } = c;
    let statuses = list(o, &["status", "containerStatuses"]);
    let total = list(o, &["spec", "containers"]).len();
    let mut reason = s(o, &["status", "phase"]).to_string();
    if let Some(r) = at(o, &["status", "reason"]).as_str() {
        reason = r.to_string();
    }
    let mut restarts = 0u64;
    let mut ready = 0usize;
    let mut running = false;
    for c in statuses.iter().rev() {
        restarts += c["restartCount"].as_u64().unwrap_or(0);
        let state = &c["state"];
        if let Some(w) = state["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            reason = w.to_string();
        } else if let Some(t) = state["terminated"].as_object() {
            reason = match t.get("reason").and_then(Value::as_str) {
                Some(r) if !r.is_empty() => r.to_string(),
                _ => format!(
                    "ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                ),
            };
        } else if c["ready"].as_bool() == Some(true) && state.get("running").is_some() {
            running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && running {
        let ready_cond = list(o, &["status", "conditions"])
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        reason = if ready_cond { "Running" } else { "NotReady" }.into();
    }
    vec![
        name,
        format!("{ready}/{total}"),
        reason,
        restarts.to_string(),
        age,
        or_none(s(o, &["status", "podIP"])),
        or_none(s(o, &["spec", "nodeName"])),
        or_none(s(o, &["status", "nominatedNodeName"])),
        "<none>".into(),
    ]
}

fn node_cells(o: &Value, c: Common) -> Vec<String> {
    let Common { name, age, .. } = c;
    let ready = list(o, &["status", "conditions"])
        .iter()
        .find(|c| c["type"] == "Ready");
    let status = match ready.map(|c| c["status"].as_str().unwrap_or("")) {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    };
    let mut roles: Vec<&str> = at(o, &["metadata", "labels"])
        .as_object()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let address = |kind: &str| {
        list(o, &["status", "addresses"])
            .iter()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["address"].as_str())
            .map_or("<none>".to_string(), str::to_string)
    };
    let info = |k: &str| or_none(s(o, &["status", "nodeInfo", k]));
    vec![
        name,
        status.into(),
        if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        },
        age,
        s(o, &["status", "nodeInfo", "kubeletVersion"]).to_string(),
        address("InternalIP"),
        address("ExternalIP"),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

fn service_cells(o: &Value, c: Common) -> Vec<String> {
    let Common { name, age, .. } = c;
    let kind = s(o, &["spec", "type"]);
    let external = match kind {
        "LoadBalancer" => {
            let ips: Vec<&str> = list(o, &["status", "loadBalancer", "ingress"])
                .iter()
                .filter_map(|i| i["ip"].as_str())
                .collect();
            if ips.is_empty() {
                "<pending>".to_string()
            } else {
                ips.join(",")
            }
        }
        "ExternalName" => s(o, &["spec", "externalName"]).to_string(),
        _ => "<none>".to_string(),
    };
    let ports: Vec<String> = list(o, &["spec", "ports"])
        .iter()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_u64() {
                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    let selector = at(o, &["spec", "selector"])
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    vec![
        name,
        kind.to_string(),
        or_none(s(o, &["spec", "clusterIP"])),
        external,
        if ports.is_empty() {
            "<none>".into()
        } else {
            ports.join(",")
        },
        age,
        or_none(&selector),
    ]
}

/// `formatEndpoints`: up to three `ip:port` of ready addresses, then
/// ` + N more...`.
pub fn endpoints_cell(o: &Value) -> String {
    let subsets = list(o, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut shown: Vec<String> = Vec::new();
    let mut count = 0usize;
    for ss in subsets {
        let addrs = ss["addresses"].as_array().map_or(&[][..], Vec::as_slice);
        let ports = ss["ports"].as_array().map_or(&[][..], Vec::as_slice);
        let ips = addrs.iter().filter_map(|a| a["ip"].as_str());
        if ports.is_empty() {
            count += addrs.len();
            shown.extend(ips.map(str::to_string));
            continue;
        }
        for p in ports {
            count += addrs.len();
            for ip in ips.clone() {
                shown.push(format!("{ip}:{}", p["port"]));
            }
        }
    }
    if count > MAX {
        shown.truncate(MAX);
        format!("{} + {} more...", shown.join(","), count - MAX)
    } else {
        shown.join(",")
    }
}

fn slice_cells(o: &Value, c: Common) -> Vec<String> {
    let Common { name, age, .. } = c;
    let ports: Vec<String> = list(o, &["ports"])
        .iter()
        .filter_map(|p| p["port"].as_u64().map(|n| n.to_string()))
        .collect();
    let addrs: Vec<&str> = list(o, &["endpoints"])
        .iter()
        .flat_map(|e| e["addresses"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let endpoints = match addrs.len() {
        0 => "<unset>".to_string(),
        n if n <= 3 => addrs.join(","),
        n => format!("{} + {} more...", addrs[..3].join(","), n - 3),
    };
    vec![
        name,
        s(o, &["addressType"]).to_string(),
        if ports.is_empty() {
            "<unset>".into()
        } else {
            ports.join(",")
        },
        endpoints,
        age,
    ]
}

/// apimachinery's `duration.HumanDuration`, which kubectl's AGE shows.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            dy => format!("{}y{dy}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `2026-11-26T01:02:03Z` (the only form this API writes) back to a time.
pub fn parse_rfc3339(t: &str) -> Option<SystemTime> {
    let b = t.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // days_from_civil (H. Hinnant), the inverse of what rfc3339 uses.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod selector_tests {
    use super::label_selector;
    use serde_json::json;

    #[test]
    fn selectors_print_as_kubectl_prints_them() {
        assert_eq!(label_selector(&json!({})), "<none>");
        assert_eq!(
            label_selector(&json!({"matchLabels": {"app": "web", "tier": "db"}})),
            "app=web,tier=db"
        );
        let e = json!({"matchExpressions": [
            {"key": "env", "operator": "In", "values": ["a", "b"]},
            {"key": "x", "operator": "DoesNotExist"},
            {"key": "y", "operator": "Exists"},
        ]});
        assert_eq!(label_selector(&e), "env in (a,b),!x,y");
    }
}

// ---- the stored kinds (`api::stored`) ----

/// The columns of a stored kind's printer, as kubectl prints them, and
/// how each row's cells are made; `custom` is a CRD's
/// `additionalPrinterColumns` (simple `.a.b` JSONPaths only).
fn stored_columns(plural: &str, custom: Option<&[(String, String)]>) -> Vec<String> {
    let fixed: &[&str] = match plural {
        "serviceaccounts" => &["Name", "Secrets", "Age"],
        "configmaps" => &["Name", "Data", "Age"],
        "secrets" => &["Name", "Type", "Data", "Age"],
        "ingresses" => &["Name", "Class", "Hosts", "Address", "Ports", "Age"],
        "rolebindings" | "clusterrolebindings" => &["Name", "Role", "Age"],
        "poddisruptionbudgets" => &[
            "Name",
            "Min Available",
            "Max Unavailable",
            "Allowed Disruptions",
            "Age",
        ],
        "horizontalpodautoscalers" => {
            &["Name", "Reference", "MinPods", "MaxPods", "Replicas", "Age"]
        }
        "priorityclasses" => &["Name", "Value", "Global-Default", "Age"],
        "ingressclasses" => &["Name", "Controller", "Age"],
        "customresourcedefinitions" => &["Name", "Created At"],
        _ => &[],
    };
    if !fixed.is_empty() {
        return fixed.iter().map(|c| c.to_string()).collect();
    }
    let mut cols = vec!["Name".to_string()];
    if let Some(custom) = custom {
        cols.extend(custom.iter().map(|(n, _)| n.clone()));
    }
    if !cols.iter().any(|c| c.eq_ignore_ascii_case("age")) {
        cols.push("Age".into());
    }
    cols
}

/// A value at a JSONPath of the simple form `.spec.size`, printed.
fn json_path(o: &Value, path: &str) -> String {
    let v = path
        .trim_start_matches('.')
        .split('.')
        .filter(|k| !k.is_empty())
        .fold(o, |v, k| &v[k]);
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn count(o: &Value, keys: &[&str]) -> usize {
    let mut names: std::collections::BTreeSet<&str> = Default::default();
    for k in keys {
        if let Some(m) = o[*k].as_object() {
            names.extend(m.keys().map(String::as_str));
        }
    }
    names.len()
}

fn stored_cells(
    plural: &str,
    custom: Option<&[(String, String)]>,
    o: &Value,
    c: Common,
) -> Vec<String> {
    let or = |v: &Value, none: &str| match v {
        Value::Null => none.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match plural {
        "serviceaccounts" => vec![c.name, list(o, &["secrets"]).len().to_string(), c.age],
        "configmaps" => vec![c.name, count(o, &["data", "binaryData"]).to_string(), c.age],
        // `stringData` is written into `data` by the API server.
        "secrets" => vec![
            c.name,
            or(&o["type"], "Opaque"),
            count(o, &["data", "stringData"]).to_string(),
            c.age,
        ],
        "ingresses" => {
            let hosts: Vec<&str> = list(o, &["spec", "rules"])
                .iter()
                .filter_map(|r| r["host"].as_str())
                .collect();
            let ports = if list(o, &["spec", "tls"]).is_empty() {
                "80"
            } else {
                "80, 443"
            };
            vec![
                c.name,
                or(&o["spec"]["ingressClassName"], "<none>"),
                if hosts.is_empty() {
                    "*".into()
                } else {
                    hosts.join(",")
                },
                // No ingress controller runs in a lab: no address, ever.
                String::new(),
                ports.into(),
                c.age,
            ]
        }
        "rolebindings" | "clusterrolebindings" => vec![
            c.name,
            format!(
                "{}/{}",
                s(o, &["roleRef", "kind"]),
                s(o, &["roleRef", "name"])
            ),
            c.age,
        ],
        "poddisruptionbudgets" => vec![
            c.name,
            or(&o["spec"]["minAvailable"], "N/A"),
            or(&o["spec"]["maxUnavailable"], "N/A"),
            // No eviction happens in a lab: nothing is counted.
            or(&o["status"]["disruptionsAllowed"], "0"),
            c.age,
        ],
        "horizontalpodautoscalers" => vec![
            c.name,
            format!(
                "{}/{}",
                s(o, &["spec", "scaleTargetRef", "kind"]),
                s(o, &["spec", "scaleTargetRef", "name"])
            ),
            or(&o["spec"]["minReplicas"], "1"),
            or(&o["spec"]["maxReplicas"], "<unset>"),
            or(&o["status"]["currentReplicas"], "0"),
            c.age,
        ],
        "priorityclasses" => vec![
            c.name,
            or(&o["value"], "0"),
            or(&o["globalDefault"], "false"),
            c.age,
        ],
        "ingressclasses" => vec![c.name, or(&o["spec"]["controller"], "<none>"), c.age],
        "customresourcedefinitions" => {
            vec![c.name, s(o, &["metadata", "creationTimestamp"]).to_string()]
        }
        _ => {
            let mut cells = vec![c.name];
            let custom = custom.unwrap_or(&[]);
            cells.extend(custom.iter().map(|(_, p)| json_path(o, p)));
            if !custom.iter().any(|(n, _)| n.eq_ignore_ascii_case("age")) {
                cells.push(c.age);
            }
            cells
        }
    }
}

/// The Table of stored objects of one kind (`plural`), at `now`.
pub fn stored_table(
    plural: &str,
    custom: Option<&[(String, String)]>,
    objects: &[Value],
    include: Include,
    now: SystemTime,
) -> Value {
    let defs: Vec<Value> = stored_columns(plural, custom)
        .iter()
        .map(|name| {
            let (format, doc) = match name.as_str() {
                "Name" => ("name", NAME_DOC),
                "Age" => ("", AGE_DOC),
                _ => ("", ""),
            };
            json!({"name": name, "type": "string", "format": format, "description": doc, "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let common = Common {
                name: s(o, &["metadata", "name"]).to_string(),
                age: age_of(o, now),
                now,
            };
            let cells: Vec<Value> = stored_cells(plural, custom, o, common)
                .into_iter()
                .map(Value::String)
                .collect();
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            match include {
                Include::None => {}
                Include::Metadata => {
                    row.insert(
                        "object".into(),
                        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": o.get("metadata").cloned().unwrap_or_else(|| json!({}))}),
                    );
                }
                Include::Object => {
                    row.insert("object".into(), o.clone());
                }
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": super::objects::list_version(objects)},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod stored_table_tests {
    use super::*;

    #[test]
    fn stored_tables_have_name_and_age() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(3600);
        let cm = json!({"metadata": {"name": "c", "creationTimestamp": "1970-01-01T00:00:00Z"},
                        "data": {"a": "1", "b": "2"}});
        let t = stored_table("configmaps", None, &[cm], Include::Metadata, now);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["Name", "Data", "Age"]);
        assert_eq!(t["rows"][0]["cells"], json!(["c", "2", "60m"]));
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "c");
        let w = json!({"metadata": {"name": "w", "creationTimestamp": "1970-01-01T00:00:00Z"},
                       "spec": {"size": 3}});
        let cols = [("Size".to_string(), ".spec.size".to_string())];
        let t = stored_table("widgets", Some(&cols), &[w], Include::None, now);
        assert_eq!(t["rows"][0]["cells"], json!(["w", "3", "60m"]));
        assert!(t["rows"][0].get("object").is_none());
    }
}
