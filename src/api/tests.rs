//! The API's shapes without root: objects from a planned lab and a
//! recorded daemon table, Tables, selectors, discovery and routing.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::http::{parse_path, Target};
use super::objects::{self, Host, View, PODS};
use super::select::{FieldSelector, LabelSelector};
use super::tables::{self, human_duration, parse_rfc3339, Include};
use super::{discovery, tls};
use crate::runtime::{ContainerState, ContainerStatus, DaemonStatus, Phase, PodStatus};

fn demo_plan() -> crate::plan::Plan {
    let parsed = crate::lab::parse(crate::lab::DEMO_SOURCE, crate::lab::DEMO).expect("demo parses");
    crate::plan::build(&parsed).expect("demo plans")
}

fn status_of(plan: &crate::plan::Plan, started: u64) -> DaemonStatus {
    let pods = plan
        .pods
        .iter()
        .map(|p| PodStatus {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            node: p.node.clone(),
            pod_ip: p.ip.to_string(),
            phase: Phase::Running,
            status: "Running".into(),
            ready: "1/1".into(),
            restarts: 2,
            started: Some(started),
            containers: vec![ContainerStatus {
                name: p
                    .ports
                    .first()
                    .map(|x| x.container.clone())
                    .or_else(|| p.processes.first().map(|x| x.container.clone()))
                    .unwrap_or_default(),
                state: ContainerState::Running,
                ready: true,
                restarts: 2,
                exit_code: Some(1),
                pid: Some(42),
                ports: vec![],
                process: false,
                started: Some(started),
                message: None,
            }],
        })
        .collect();
    DaemonStatus {
        lab: plan.lab.clone(),
        pid: 1,
        rss_bytes: 1,
        started,
        ready: true,
        pods,
    }
}

fn no_nulls(v: &Value, path: &str) {
    match v {
        Value::Null => panic!("null at {path}"),
        Value::Array(a) => a.iter().for_each(|x| no_nulls(x, path)),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| no_nulls(x, &format!("{path}.{k}"))),
        _ => {}
    }
}

fn with_view<T>(f: impl FnOnce(&View) -> T) -> T {
    let plan = demo_plan();
    let started = 1_800_000_000;
    let status = status_of(&plan, started);
    let host = Host::default();
    let nodes_up: BTreeSet<String> = plan.nodes.iter().map(|n| n.netns.clone()).collect();
    let view = View {
        plan: &plan,
        status: Some(&status),
        created: Some(UNIX_EPOCH + Duration::from_secs(started)),
        host: &host,
        nodes_up: &nodes_up,
    };
    f(&view)
}

#[test]
fn pods_have_kubernetes_shape_and_no_nulls() {
    with_view(|v| {
        for r in objects::RESOURCES {
            for o in v.objects(r) {
                no_nulls(&o, r.plural);
                assert!(o["metadata"]["uid"].is_string(), "{o}");
                assert!(o["metadata"]["resourceVersion"].is_string(), "{o}");
            }
        }
        let pods = v.objects(&PODS);
        let p = pods
            .iter()
            .find(|p| p["metadata"]["name"] == "pod-1")
            .expect("pod-1");
        assert_eq!(p["spec"]["nodeName"], "node-1");
        assert_eq!(p["status"]["phase"], "Running");
        assert_eq!(p["status"]["podIPs"][0]["ip"], p["status"]["podIP"]);
        assert_eq!(p["metadata"]["creationTimestamp"], "2027-01-15T08:00:00Z");
        let c = &p["status"]["containerStatuses"][0];
        assert_eq!(c["restartCount"], 2);
        assert_eq!(c["started"], true);
        assert_eq!(c["state"]["running"]["startedAt"], "2027-01-15T08:00:00Z");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        // The same object twice: the same uid and resourceVersion.
        assert_eq!(pods, v.objects(&PODS));
    });
}

#[test]
fn pod_table_has_kubectls_columns_and_cells() {
    with_view(|v| {
        let pods = v.objects(&PODS);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 300);
        let t = tables::table(&PODS, &pods, Include::Metadata, now);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        let cols: Vec<(&str, u64)> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            cols,
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
        );
        let row = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["cells"][0] == "pod-1")
            .unwrap();
        let cells: Vec<&str> = row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(
            cells,
            [
                "pod-1",
                "1/1",
                "Running",
                "2",
                "5m",
                "10.244.1.2",
                "node-1",
                "<none>",
                "<none>"
            ]
        );
        assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(row["object"]["metadata"]["namespace"], "default");
        let none = tables::table(&PODS, &pods, Include::None, now);
        assert!(none["rows"][0].get("object").is_none());
    });
}

#[test]
fn a_waiting_container_is_the_pods_status() {
    let pod = serde_json::json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 1, "state": {"running": {}}},
            {"name": "b", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
    let t = tables::table(&PODS, &[pod], Include::None, SystemTime::now());
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[1], "1/2");
    assert_eq!(cells[2], "CrashLoopBackOff");
    assert_eq!(cells[3], "5");
    assert_eq!(cells[4], "<unknown>");
}

#[test]
fn ages_read_as_kubectl_reads_them() {
    let cases = [
        (5, "5s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (9 * 3600, "9h"),
        (50 * 3600, "2d2h"),
        (10 * 86400, "10d"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
    }
    let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(parse_rfc3339(&objects::rfc3339(t)), Some(t));
    assert_eq!(parse_rfc3339("yesterday"), None);
}

#[test]
fn label_and_field_selectors() {
    let labels = serde_json::json!({"app": "web", "tier": "front"});
    let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&labels);
    assert!(m("app=web"));
    assert!(m("app==web,tier"));
    assert!(m("app in (db,web),!missing"));
    assert!(m("tier notin (back)"));
    assert!(!m("app!=web"));
    assert!(!m("missing"));
    assert!(m(""));
    assert!(LabelSelector::parse("app=(").is_err());
    let pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"nodeName": "node-2"}});
    assert!(FieldSelector::parse("spec.nodeName=node-2", "pods")
        .unwrap()
        .matches(&pod));
    assert!(!FieldSelector::parse("metadata.name!=p", "pods")
        .unwrap()
        .matches(&pod));
    let e = FieldSelector::parse("foo=bar", "pods").unwrap_err();
    assert_eq!(e, "field label not supported: foo");
}

#[test]
fn discovery_lists_short_names_and_kinds() {
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    assert_eq!(discovery::aggregated_version(accept), Some("v2"));
    assert_eq!(discovery::aggregated_version("application/json, */*"), None);
    let core = discovery::aggregated(true, "v2");
    let res = core["items"][0]["versions"][0]["resources"]
        .as_array()
        .unwrap();
    let short: Vec<String> = res
        .iter()
        .flat_map(|r| r["shortNames"].as_array().cloned().unwrap_or_default())
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    for s in ["po", "svc", "ep", "no", "ns"] {
        assert!(short.iter().any(|x| x == s), "{s} in {short:?}");
    }
    assert!(res.iter().all(|r| r["responseKind"]["kind"].is_string()));
    let legacy = discovery::resource_list("", "v1").unwrap();
    assert!(legacy["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "pods/exec"));
    let apps = discovery::resource_list("apps", "v1").unwrap();
    let names: Vec<&str> = apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&"deployments") && names.contains(&"deployments/scale"));
}

#[test]
fn paths_route_to_resources() {
    assert_eq!(parse_path("/api"), Target::Root { core: true });
    assert!(matches!(parse_path("/api/v1/namespaces/default/pods"),
        Target::Collection { resource, namespace: Some("default") } if resource.plural == "pods"));
    assert!(matches!(
        parse_path("/api/v1/namespaces/default/pods/pod-1/exec"),
        Target::Object {
            name: "pod-1",
            sub: Some("exec"),
            ..
        }
    ));
    assert!(matches!(parse_path("/api/v1/namespaces/kube-system"),
        Target::Object { resource, name: "kube-system", .. } if resource.plural == "namespaces"));
    assert!(matches!(
        parse_path("/api/v1/nodes/node-1"),
        Target::Object { name: "node-1", .. }
    ));
    assert!(matches!(
        parse_path("/apis/discovery.k8s.io/v1/endpointslices"),
        Target::Collection { .. }
    ));
    assert_eq!(
        parse_path("/api/v1/widgets"),
        Target::Unknown { plural: "widgets" }
    );
    assert!(
        matches!(parse_path("/apis/apps/v1/namespaces/default/deployments/web/scale"),
        Target::Object { resource, name: "web", sub: Some("scale"), .. } if resource.plural == "deployments")
    );
    assert_eq!(parse_path("/apis/batch/v1/jobs"), Target::NotFound);
}

#[test]
fn tokens_are_checked_whole() {
    assert!(tls::authorized(Some("Bearer abc"), "abc"));
    assert!(!tls::authorized(Some("Bearer abd"), "abc"));
    assert!(!tls::authorized(Some("Bearer ab"), "abc"));
    assert!(!tls::authorized(Some("abc"), "abc"));
    assert!(!tls::authorized(None, "abc"));
    let k = tls::kubeconfig("demo", 4321, "PEM", "tok");
    assert!(k.contains("server: https://127.0.0.1:4321"));
    assert!(k.contains("token: tok"));
    assert!(k.contains("current-context: podlab-demo"));
}

#[test]
fn exit_codes_travel_as_kubelet_sends_them() {
    assert_eq!(super::exec::exit_status(0)["status"], "Success");
    let s = super::exec::exit_status(3);
    assert_eq!(s["reason"], "NonZeroExitCode");
    assert_eq!(s["details"]["causes"][0]["message"], "3");
}
