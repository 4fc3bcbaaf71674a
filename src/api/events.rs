//! Events, for `kubectl describe` and `kubectl get events`: what the
//! daemon did to each pod, as the scheduler and kubelet record it
//! (Scheduled when a pod was placed on its node, Started when a
//! container's process or echo came up), in both `v1` and
//! `events.k8s.io/v1` shapes.
//!
//! Built from the pod objects of the same request, so an event's time is
//! the pod's creationTimestamp or the container's startedAt: podlab keeps
//! no event log, the state it reports is where these come from.

use serde_json::{json, Map, Value};

/// The `v1` Events of the lab's pods.
pub fn from_pods(pods: &[Value]) -> Vec<Value> {
    pods.iter().flat_map(pod_events).collect()
}

fn pod_events(pod: &Value) -> Vec<Value> {
    let meta = &pod["metadata"];
    let (ns, name) = (
        meta["namespace"].as_str().unwrap_or("default"),
        meta["name"].as_str().unwrap_or(""),
    );
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
    let involved = |field_path: Option<String>| {
        let mut o = Map::new();
        o.insert("kind".into(), json!("Pod"));
        o.insert("namespace".into(), json!(ns));
        o.insert("name".into(), json!(name));
        o.insert("uid".into(), meta["uid"].clone());
        o.insert("apiVersion".into(), json!("v1"));
        if let Some(f) = field_path {
            o.insert("fieldPath".into(), json!(f));
        }
        Value::Object(o)
    };
    let mut out = Vec::new();
    if let (false, Some(at)) = (node.is_empty(), meta["creationTimestamp"].as_str()) {
        out.push(event(
            ns,
            &format!("{name}.scheduled"),
            at,
            involved(None),
            (
                "Scheduled",
                &format!("Successfully assigned {ns}/{name} to {node}"),
            ),
            json!({"component": "default-scheduler"}),
        ));
    }
    for c in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let container = c["name"].as_str().unwrap_or("");
        let Some(at) = c["state"]["running"]["startedAt"].as_str() else {
            continue;
        };
        out.push(event(
            ns,
            &format!("{name}.started.{container}"),
            at,
            involved(Some(format!("spec.containers{{{container}}}"))),
            ("Started", &format!("Started container {container}")),
            json!({"component": "kubelet", "host": node}),
        ));
    }
    out
}

fn event(
    ns: &str,
    name: &str,
    at: &str,
    involved: Value,
    (reason, message): (&str, &str),
    source: Value,
) -> Value {
    let component = source["component"].clone();
    let mut e = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": ns,
            "creationTimestamp": at,
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": source,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
        "type": "Normal",
        "reportingComponent": component,
        "reportingInstance": "",
    });
    let rv = super::objects::content_version(&e);
    e["metadata"]["resourceVersion"] = json!(rv);
    e["metadata"]["uid"] = json!(uid_of(&rv, name));
    e
}

fn uid_of(rv: &str, name: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (rv, name).hash(&mut h);
    let a = h.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (a >> 4) & 0xfff,
        a & 0xffff_ffff_ffff
    )
}

/// The same Event as `events.k8s.io/v1` has it.
pub fn to_events_v1(e: &Value) -> Value {
    let meta = e["metadata"].clone();
    json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": meta,
        "eventTime": e["firstTimestamp"].as_str().unwrap_or("").replace('Z', ".000000Z"),
        "reason": e["reason"],
        "note": e["message"],
        "regarding": e["involvedObject"],
        "reportingController": e["reportingComponent"],
        "reportingInstance": e["source"]["host"].as_str().unwrap_or(""),
        "action": e["reason"],
        "type": e["type"],
        "deprecatedSource": e["source"],
        "deprecatedFirstTimestamp": e["firstTimestamp"],
        "deprecatedLastTimestamp": e["lastTimestamp"],
        "deprecatedCount": e["count"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_pod_was_scheduled_and_started() {
        let pod = json!({
            "metadata": {"namespace": "default", "name": "pod-1", "uid": "u1",
                          "creationTimestamp": "2026-12-02T15:00:00Z"},
            "spec": {"nodeName": "node-1"},
            "status": {"containerStatuses": [
                {"name": "nginx", "state": {"running": {"startedAt": "2026-12-02T15:00:01Z"}}},
                {"name": "side", "state": {"waiting": {"reason": "ContainerCreating"}}},
            ]},
        });
        let ev = from_pods(&[pod]);
        let reasons: Vec<&str> = ev.iter().map(|e| e["reason"].as_str().unwrap()).collect();
        assert_eq!(reasons, ["Scheduled", "Started"]);
        assert_eq!(
            ev[0]["message"],
            "Successfully assigned default/pod-1 to node-1"
        );
        assert_eq!(
            ev[1]["involvedObject"]["fieldPath"],
            "spec.containers{nginx}"
        );
        assert_eq!(ev[1]["source"]["host"], "node-1");
        assert_eq!(ev[0]["involvedObject"]["uid"], "u1");
        let v1 = to_events_v1(&ev[1]);
        assert_eq!(v1["note"], "Started container nginx");
        assert_eq!(v1["regarding"]["name"], "pod-1");
        assert_eq!(v1["eventTime"], "2026-12-02T15:00:01.000000Z");
    }
}
