//! Discovery: what kubectl asks before every command (cached on disk by
//! kubectl for six hours, keyed by host and port: each lab has its own
//! port). Aggregated discovery (`apidiscovery.k8s.io/v2`, and v2beta1 for
//! older clients) when the Accept header asks for it, the legacy
//! documents otherwise; all generated from `objects::RESOURCES`.

use serde_json::{json, Value};

use super::objects::{groups, Resource, RESOURCES, VERSION};

pub const VERBS: &[&str] = &["get", "list", "watch"];

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
                json!({"subresource": sub,
                       "responseKind": {"group": "", "version": "v1", "kind": kind},
                       "verbs": ["create", "get"]})
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
            resources.push(json!({"name": format!("{}/{sub}", r.plural), "singularName": "",
                                  "namespaced": r.namespaced, "kind": kind, "verbs": ["create", "get"]}));
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
