//! StatefulSets, DaemonSets and ReplicaSets as the API serves them: their
//! objects, kubectl's columns, discovery's short names, and the pods'
//! ownerReferences.

use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use super::discovery;
use super::objects::{self, Host, View, PODS};
use super::tables::{self, Include};
use crate::runtime::{ContainerState, ContainerStatus, DaemonStatus, Phase, PodStatus};

const LAB: &str = "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: h3api}
spec:
  nodes:
  - {name: node-1, labels: {disk: ssd}}
  - {name: node-2}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web, labels: {tier: db}}
spec:
  replicas: 2
  serviceName: nginx
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, ports: [{containerPort: 80}]}]
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
      containers: [{name: cache, ports: [{containerPort: 6379}]}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: front}
spec:
  replicas: 3
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec:
      containers: [{name: front, ports: [{containerPort: 8080}]}]
";

const STARTED: u64 = 1_800_000_000;

/// Every pod running and ready, but `front`'s first, which is not ready.
fn status_of(plan: &crate::plan::Plan) -> DaemonStatus {
    let mut not_ready_done = false;
    let pods = plan
        .pods
        .iter()
        .map(|p| {
            let ready = p.owner.as_deref() != Some("front") || not_ready_done;
            if !ready {
                not_ready_done = true;
            }
            PodStatus {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                node: p.node.clone(),
                pod_ip: p.ip.to_string(),
                phase: Phase::Running,
                status: "Running".into(),
                ready: "1/1".into(),
                restarts: 0,
                started: Some(STARTED),
                containers: vec![ContainerStatus {
                    name: p
                        .ports
                        .first()
                        .map(|x| x.container.clone())
                        .unwrap_or_default(),
                    state: ContainerState::Running,
                    ready,
                    restarts: 0,
                    exit_code: None,
                    pid: Some(42),
                    ports: vec![],
                    process: false,
                    started: Some(STARTED),
                    message: None,
                }],
            }
        })
        .collect();
    DaemonStatus {
        lab: plan.lab.clone(),
        pid: 1,
        rss_bytes: 1,
        started: STARTED,
        ready: true,
        pods,
    }
}

fn with_view<T>(f: impl FnOnce(&View) -> T) -> T {
    let file = crate::lab::parse("lab.yaml", LAB).expect("parses");
    let plan = crate::plan::build(&file).expect("plans");
    let status = status_of(&plan);
    let host = Host::default();
    let nodes_up: BTreeSet<String> = plan.nodes.iter().map(|n| n.netns.clone()).collect();
    let view = View {
        plan: &plan,
        status: Some(&status),
        created: Some(UNIX_EPOCH + Duration::from_secs(STARTED)),
        host: &host,
        nodes_up: &nodes_up,
    };
    f(&view)
}

fn resource(plural: &str) -> &'static objects::Resource {
    objects::resource("apps", "v1", plural).expect("served")
}

/// Column names, and the cells of the row named `name`.
fn table(v: &View, plural: &str, name: &str) -> (Vec<String>, Vec<String>) {
    let r = resource(plural);
    let items = v.objects(r);
    let now = UNIX_EPOCH + Duration::from_secs(STARTED + 90);
    let t = tables::table(r, &items, Include::Metadata, now);
    let cols = t["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect();
    let row = t["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["cells"][0] == name)
        .unwrap_or_else(|| panic!("no row {name} in {t}"));
    let cells = row["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| c.as_str().unwrap_or("").to_string())
        .collect();
    (cols, cells)
}

#[test]
fn statefulsets_print_as_kubectl_prints_them() {
    with_view(|v| {
        let (cols, cells) = table(v, "statefulsets", "web");
        assert_eq!(cols, ["Name", "Ready", "Age", "Containers", "Images"]);
        assert_eq!(cells, ["web", "2/2", "90s", "nginx", ""]);
        let sts = v
            .object(resource("statefulsets"), Some("default"), "web")
            .expect("web");
        assert_eq!(sts["apiVersion"], "apps/v1");
        assert_eq!(sts["kind"], "StatefulSet");
        assert_eq!(sts["spec"]["serviceName"], "nginx");
        assert_eq!(sts["metadata"]["labels"]["tier"], "db");
    });
}

#[test]
fn daemonsets_print_as_kubectl_prints_them() {
    with_view(|v| {
        let (cols, cells) = table(v, "daemonsets", "cache");
        assert_eq!(
            cols,
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            cells,
            [
                "cache",
                "1",
                "1",
                "1",
                "1",
                "1",
                "disk=ssd",
                "90s",
                "cache",
                "",
                "app=cache"
            ]
        );
    });
}

#[test]
fn replicasets_print_as_kubectl_prints_them() {
    with_view(|v| {
        let (cols, cells) = table(v, "replicasets", "front");
        assert_eq!(
            cols,
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            cells,
            ["front", "3", "3", "2", "90s", "front", "", "app=front"]
        );
        // coredns's ReplicaSet is served too, owned by its Deployment.
        let all = v.objects(resource("replicasets"));
        let dns = all
            .iter()
            .find(|o| o["metadata"]["namespace"] == "kube-system")
            .expect("coredns replicaset");
        assert_eq!(dns["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!(dns["metadata"]["ownerReferences"][0]["name"], "coredns");
    });
}

#[test]
fn pods_name_their_controller() {
    with_view(|v| {
        let pods = v.objects(&PODS);
        let owner = |name: &str| -> Value {
            pods.iter()
                .find(|p| p["metadata"]["name"] == name)
                .map(|p| p["metadata"]["ownerReferences"][0].clone())
                .unwrap_or_else(|| panic!("no pod {name}"))
        };
        let web0 = owner("web-0");
        assert_eq!(
            (&web0["kind"], &web0["name"], &web0["controller"]),
            (
                &Value::from("StatefulSet"),
                &Value::from("web"),
                &Value::from(true)
            )
        );
        let cache = pods
            .iter()
            .find(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("cache-"))
            })
            .expect("cache pod");
        assert_eq!(cache["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
        assert_eq!(cache["spec"]["nodeName"], "node-1");
        let front = pods
            .iter()
            .find(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("front-"))
            })
            .expect("front pod");
        assert_eq!(
            front["metadata"]["ownerReferences"][0]["kind"],
            "ReplicaSet"
        );
        assert_eq!(front["metadata"]["ownerReferences"][0]["name"], "front");
    });
}

#[test]
fn discovery_gives_the_short_names() {
    let apis = discovery::aggregated(false, "v2");
    let apps = apis["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .expect("apps group");
    let short = |plural: &str| -> Value {
        apps["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource"] == plural)
            .map(|r| r["shortNames"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(short("statefulsets"), serde_json::json!(["sts"]));
    assert_eq!(short("daemonsets"), serde_json::json!(["ds"]));
    assert_eq!(short("replicasets"), serde_json::json!(["rs"]));
}
