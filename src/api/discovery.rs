//! Discovery: what kubectl asks before every command (cached on disk by
//! kubectl for six hours, keyed by host and port: each lab has its own
//! port). Aggregated discovery (`apidiscovery.k8s.io/v2`, and v2beta1 for
//! older clients) when the Accept header asks for it, the legacy
//! documents otherwise; all generated from `objects::RESOURCES`.

use serde_json::{json, Value};

use super::objects::{groups, Resource, RESOURCES, VERSION};
use super::stored::Res;

pub const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// The aggregated form the client accepts, if any: `v2` or `v2beta1`.
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    let asks = |v: &str| {
        accept.split(',').any(|part| {
            let params: Vec<&str> = part.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"as=APIGroupDiscoveryList")
                && params.contains(&format!("v={v}").as_str())
        })
    };
    ["v2", "v2beta1"].into_iter().find(|v| asks(v))
}

pub fn aggregated_content_type(v: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList")
}

fn discovery_resource(r: &Resource) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "singularResource": r.singular,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        let subs: Vec<Value> = r
            .subresources
            .iter()
            .map(|(sub, kind)| {
                let (group, verbs) = match *sub {
                    "scale" => ("autoscaling", json!(["get", "patch", "update"])),
                    _ => ("", json!(["create", "get"])),
                };
                json!({"subresource": sub,
                       "responseKind": {"group": group, "version": "v1", "kind": kind},
                       "verbs": verbs})
            })
            .collect();
        v["subresources"] = Value::Array(subs);
    }
    v
}

fn group_discovery(group: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group)
        .map(discovery_resource)
        .collect();
    let metadata = if group.is_empty() {
        json!({})
    } else {
        json!({"name": group})
    };
    json!({"metadata": metadata,
           "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
}

/// `/api` (core) or `/apis` (named groups) as an `APIGroupDiscoveryList`.
pub fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![group_discovery("")]
    } else {
        groups().into_iter().map(group_discovery).collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"),
           "metadata": {}, "items": items})
}

pub fn legacy_api(server: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}]})
}

pub fn legacy_apis() -> Value {
    let groups: Vec<Value> = groups()
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` or `/apis/<group>/v1`; `None` for a group not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let mut v = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                           "kind": r.kind, "verbs": VERBS});
        if !r.short_names.is_empty() {
            v["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            v["categories"] = json!(r.categories);
        }
        resources.push(v);
        for (sub, kind) in r.subresources {
            let (group, verbs) = match *sub {
                "scale" => ("autoscaling", json!(["get", "patch", "update"])),
                _ => ("", json!(["create", "get"])),
            };
            let mut v = json!({"name": format!("{}/{sub}", r.plural), "singularName": "",
                               "namespaced": r.namespaced, "kind": kind, "verbs": verbs});
            if !group.is_empty() {
                v["group"] = json!(group);
                v["version"] = json!("v1");
            }
            resources.push(v);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/version`, which `kubectl version` prints.
pub fn version() -> Value {
    let minor = VERSION
        .trim_start_matches("v1.")
        .split('.')
        .next()
        .unwrap_or("0");
    json!({"major": "1", "minor": minor, "gitVersion": VERSION, "gitCommit": "",
           "gitTreeState": "clean", "buildDate": "", "goVersion": "",
           "compiler": "rustc", "platform": format!("linux/{}", go_arch())})
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

// ---- the stored kinds (`api::stored`), merged into the documents above ----

/// What the stored kinds answer: get and list, no watch (they change only
/// with `apply`, and a watch would wait forever).
pub const STORED_VERBS: &[&str] = &["get", "list"];

fn stored_entry(r: &Res, version: &str) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "singularResource": r.singular,
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "responseKind": {"group": r.group, "version": version, "kind": r.kind},
        "verbs": STORED_VERBS,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    v
}

/// Add the stored resources to an `APIGroupDiscoveryList` of `/api`
/// (`core`) or `/apis`: into the group and version entries that exist,
/// new ones after them (the preferred version of a group first).
pub fn merge_aggregated(doc: &mut Value, core: bool, res: &[Res]) {
    for r in res.iter().filter(|r| r.group.is_empty() == core) {
        let Some(items) = doc["items"].as_array_mut() else {
            return;
        };
        let name_of = |g: &Value| g["metadata"]["name"].as_str().unwrap_or("").to_string();
        let gi = match items.iter().position(|g| name_of(g) == r.group) {
            Some(i) => i,
            None => {
                let metadata = if r.group.is_empty() {
                    json!({})
                } else {
                    json!({"name": r.group})
                };
                items.push(json!({"metadata": metadata, "versions": []}));
                items.len() - 1
            }
        };
        let Some(versions) = items[gi]["versions"].as_array_mut() else {
            continue;
        };
        for version in &r.versions {
            let vi = match versions.iter().position(|v| v["version"] == *version) {
                Some(i) => i,
                None => {
                    versions
                        .push(json!({"version": version, "resources": [], "freshness": "Current"}));
                    versions.len() - 1
                }
            };
            if let Some(list) = versions[vi]["resources"].as_array_mut() {
                list.push(stored_entry(r, version));
            }
        }
    }
}

/// Add the stored resources' groups to the legacy `APIGroupList`.
pub fn merge_legacy_apis(doc: &mut Value, res: &[Res]) {
    let Some(groups) = doc["groups"].as_array_mut() else {
        return;
    };
    for r in res.iter().filter(|r| !r.group.is_empty()) {
        let gi = match groups.iter().position(|g| g["name"] == r.group.as_str()) {
            Some(i) => i,
            None => {
                let gv = json!({"groupVersion": format!("{}/{}", r.group, r.versions[0]), "version": r.versions[0]});
                groups.push(json!({"name": r.group, "versions": [], "preferredVersion": gv}));
                groups.len() - 1
            }
        };
        let Some(versions) = groups[gi]["versions"].as_array_mut() else {
            continue;
        };
        for version in &r.versions {
            if !versions.iter().any(|v| v["version"] == *version) {
                versions.push(
                    json!({"groupVersion": format!("{}/{version}", r.group), "version": version}),
                );
            }
        }
    }
}

/// `/api/v1` or `/apis/<group>/<version>` with the stored resources of
/// that group-version added; `None` when neither serves anything there.
pub fn merge_resource_list(
    base: Option<Value>,
    group: &str,
    version: &str,
    res: &[Res],
) -> Option<Value> {
    let here: Vec<&Res> = res
        .iter()
        .filter(|r| r.group == group && r.versions.iter().any(|v| v == version))
        .collect();
    if here.is_empty() {
        return base;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut doc = base.unwrap_or_else(|| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": []})
    });
    if let Some(list) = doc["resources"].as_array_mut() {
        for r in here {
            let mut v = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                               "kind": r.kind, "verbs": STORED_VERBS});
            if !r.short_names.is_empty() {
                v["shortNames"] = json!(r.short_names);
            }
            list.push(v);
        }
    }
    Some(doc)
}

#[cfg(test)]
mod stored_tests {
    use super::*;
    use crate::api::stored::resources;

    fn crd() -> crate::lab::stored::CustomKind {
        let v: Value = serde_json::from_str(
            r#"{"spec": {"group": "example.com", "names": {"kind": "Widget", "plural": "widgets"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}}"#,
        )
        .unwrap();
        crate::lab::stored::CustomKind::from_crd(&v).unwrap()
    }

    fn resources_of(doc: &Value, group: &str, version: &str) -> Vec<String> {
        doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["metadata"]["name"].as_str().unwrap_or("") == group)
            .flat_map(|g| g["versions"].as_array().unwrap().clone())
            .filter(|v| v["version"] == version)
            .flat_map(|v| v["resources"].as_array().unwrap().clone())
            .map(|r| r["resource"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn aggregated_discovery_lists_the_stored_kinds() {
        let res = resources(&[crd()]);
        let mut core = aggregated(true, "v2");
        merge_aggregated(&mut core, true, &res);
        let core_res = resources_of(&core, "", "v1");
        for plural in [
            "pods",
            "serviceaccounts",
            "configmaps",
            "secrets",
            "resourcequotas",
            "limitranges",
        ] {
            assert!(
                core_res.contains(&plural.to_string()),
                "{plural}: {core_res:?}"
            );
        }
        let mut apis = aggregated(false, "v2");
        merge_aggregated(&mut apis, false, &res);
        let net = resources_of(&apis, "networking.k8s.io", "v1");
        assert!(
            net.contains(&"networkpolicies".into()) && net.contains(&"ingresses".into()),
            "{net:?}"
        );
        // One networking.k8s.io group, not two.
        let groups: Vec<&str> = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["metadata"]["name"].as_str())
            .collect();
        assert_eq!(
            groups.iter().filter(|g| **g == "networking.k8s.io").count(),
            1
        );
        assert_eq!(
            resources_of(&apis, "autoscaling", "v2"),
            ["horizontalpodautoscalers"]
        );
        assert_eq!(resources_of(&apis, "example.com", "v1"), ["widgets"]);
        assert_eq!(
            resources_of(&apis, "apiextensions.k8s.io", "v1"),
            ["customresourcedefinitions"]
        );
    }

    #[test]
    fn short_names_kubectl_uses() {
        let res = resources(&[]);
        let short = |plural: &str| {
            res.iter()
                .find(|r| r.plural == plural)
                .unwrap()
                .short_names
                .clone()
        };
        for (plural, s) in [
            ("serviceaccounts", "sa"),
            ("configmaps", "cm"),
            ("poddisruptionbudgets", "pdb"),
            ("horizontalpodautoscalers", "hpa"),
            ("resourcequotas", "quota"),
            ("limitranges", "limits"),
            ("priorityclasses", "pc"),
            ("ingresses", "ing"),
            ("customresourcedefinitions", "crd"),
        ] {
            assert!(short(plural).contains(&s.to_string()), "{plural}");
        }
    }

    #[test]
    fn legacy_documents_list_the_stored_groups() {
        let res = resources(&[crd()]);
        let mut apis = legacy_apis();
        merge_legacy_apis(&mut apis, &res);
        let names: Vec<&str> = apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["name"].as_str())
            .collect();
        for g in [
            "rbac.authorization.k8s.io",
            "policy",
            "autoscaling",
            "scheduling.k8s.io",
            "apiextensions.k8s.io",
            "example.com",
        ] {
            assert!(names.contains(&g), "{g}: {names:?}");
        }
        let v1 = merge_resource_list(resource_list("", "v1"), "", "v1", &res).unwrap();
        let names: Vec<&str> = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(names.contains(&"pods") && names.contains(&"serviceaccounts"));
        let rbac = merge_resource_list(None, "rbac.authorization.k8s.io", "v1", &res).unwrap();
        assert_eq!(rbac["groupVersion"], "rbac.authorization.k8s.io/v1");
        assert!(merge_resource_list(None, "nothing.example", "v1", &res).is_none());
    }
}
