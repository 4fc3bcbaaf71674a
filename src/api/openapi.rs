//! A small OpenAPI v3, so that `kubectl apply` and `kubectl create -f`
//! pass their default validation (`--validate=strict`).
//!
//! kubectl reads `/openapi/v3` for the group-versions, then the document
//! of the object's group-version, and looks there for a PATCH operation
//! tagged with the object's group-version-kind that takes the
//! `fieldValidation` parameter. Finding it, kubectl leaves validation to
//! the server, which here is the lab file's own decoder: an unknown field
//! is refused with its name. Without these documents kubectl refuses to
//! apply at all ("failed to download openapi"). No schemas are given, so
//! kubectl computes strategic merge patches from its compiled-in types,
//! and `kubectl explain` is not served.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::objects::RESOURCES;
use crate::lab::stored::STORED_KINDS;

/// `(group, version, kind, plural, namespaced)` of every kind kubectl may
/// send a lab.
fn kinds() -> Vec<(&'static str, &'static str, &'static str, &'static str, bool)> {
    let served = RESOURCES
        .iter()
        .map(|r| (r.group, r.version, r.kind, r.plural, r.namespaced));
    let stored = STORED_KINDS.iter().filter_map(|k| {
        let v = *k.versions.first()?;
        Some((k.group, v, k.kind, k.plural, k.namespaced))
    });
    let mut all: Vec<_> = served.chain(stored).collect();
    all.sort();
    all.dedup();
    all
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The document at `path`, if it is one of the OpenAPI v3 paths.
pub fn document(path: &str) -> Option<Value> {
    let path = path.trim_end_matches('/');
    if path == "/openapi/v3" {
        return Some(root());
    }
    let gv = path.strip_prefix("/openapi/v3/")?;
    group_version(gv)
}

fn root() -> Value {
    let mut paths = BTreeMap::new();
    for (g, v, ..) in kinds() {
        let p = gv_path(g, v);
        // The hash only has to change when the document does: it is the
        // binary's version, as the documents are built into it.
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash())}),
        );
    }
    json!({ "paths": paths })
}

fn hash() -> String {
    format!(
        "{:016X}",
        crate::plan::names::fnv1a(&[env!("CARGO_PKG_VERSION"), "openapi"])
    )
}

fn group_version(gv: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for (g, v, kind, plural, namespaced) in
        kinds().into_iter().filter(|(g, v, ..)| gv_path(g, v) == gv)
    {
        let base = if namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{plural}/{{name}}")
        } else {
            format!("/{gv}/{plural}/{{name}}")
        };
        let gvk = json!({"group": g, "version": v, "kind": kind});
        // No requestBody: with one, kubectl would compute patches from the
        // (absent) schemas instead of its compiled-in types.
        paths.insert(
            base,
            json!({
                "patch": {
                    "operationId": format!("patch{kind}"),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    ],
                    "responses": {"200": {"description": "OK"}},
                },
            }),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::objects::VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_of_the_root_has_its_document() {
        let root = document("/openapi/v3").expect("root");
        let paths = root["paths"].as_object().expect("paths");
        assert!(paths.contains_key("api/v1"));
        assert!(paths.contains_key("apis/networking.k8s.io/v1"));
        for p in paths.keys() {
            let doc = document(&format!("/openapi/v3/{p}")).expect("document");
            assert!(!doc["paths"].as_object().expect("paths").is_empty());
        }
        assert!(document("/openapi/v3/apis/nope/v1").is_none());
    }

    #[test]
    fn kubectl_finds_field_validation_for_a_network_policy() {
        let doc = document("/openapi/v3/apis/networking.k8s.io/v1").expect("doc");
        let op = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .find_map(|p| {
                let patch = &p["patch"];
                (patch["x-kubernetes-group-version-kind"]["kind"] == "NetworkPolicy")
                    .then_some(patch)
            });
        let op = op.expect("a patch of NetworkPolicy");
        assert!(op["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        assert!(op.get("requestBody").is_none());
    }
}
