//! The stored-only kinds of the lab file (`lab::stored`) served for
//! get and list: ServiceAccounts, ConfigMaps, Secrets, RBAC, PDBs, HPAs,
//! quotas, PriorityClasses, Ingresses, CRDs and the objects of the CRDs the
//! file defines. They shape nothing in the network, so the plan does not
//! carry them: they are read from the running lab file, `lab.yaml` in the
//! state directory (written by `up` and `apply` beside plan.json), parsed
//! once per change of its mtime or size.
//!
//! `route` answers before the rest of the API's routing: discovery (the
//! documents of `discovery` with these resources merged in) and the
//! collections and objects of these kinds. Everything else is left to
//! `http::route`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::http::{self, Api, Body, FileStamp, Query};
use super::select::{FieldSelector, LabelSelector};
use super::tables::Include;
use crate::lab::stored::{CustomKind, STORED_KINDS};

/// The running lab file in the state directory (`state::save_source`).
pub const LAB_FILE: &str = "lab.yaml";
const ORIGIN_FILE: &str = "lab.origin";

/// A served resource of a stored kind, built-in or from a CRD.
#[derive(Debug, Clone, PartialEq)]
pub struct Res {
    pub group: String,
    /// Every version it is served under, the preferred first.
    pub versions: Vec<String>,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// A CRD's `additionalPrinterColumns` (name, JSONPath).
    pub columns: Vec<(String, String)>,
    /// An object of a CRD: served under each version with its apiVersion
    /// set to the one asked for, as kube-apiserver does without a
    /// conversion webhook.
    pub custom: bool,
}

impl Res {
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }
}

/// The built-in stored kinds, then those of the file's CRDs.
pub fn resources(custom: &[CustomKind]) -> Vec<Res> {
    let mut out: Vec<Res> = STORED_KINDS
        .iter()
        .map(|k| Res {
            group: k.group.into(),
            // Served under the first version only: a v1 HPA is not
            // converted to v2 (docs/notes-h2.md).
            versions: vec![k.versions[0].into()],
            kind: k.kind.into(),
            plural: k.plural.into(),
            singular: k.singular.into(),
            namespaced: k.namespaced,
            short_names: k.short_names.iter().map(|s| s.to_string()).collect(),
            columns: Vec::new(),
            custom: false,
        })
        .collect();
    for c in custom {
        let mut versions = vec![c.storage_version.clone()];
        versions.extend(
            c.versions
                .iter()
                .filter(|v| **v != c.storage_version)
                .cloned(),
        );
        out.push(Res {
            group: c.group.clone(),
            versions,
            kind: c.kind.clone(),
            plural: c.plural.clone(),
            singular: c.singular.clone(),
            namespaced: c.namespaced,
            short_names: c.short_names.clone(),
            columns: c.columns.clone(),
            custom: true,
        });
    }
    out
}

/// What the running lab file holds for the API.
pub struct Loaded {
    pub resources: Vec<Res>,
    /// Per (group, kind): the served objects, metadata filled in.
    pub objects: BTreeMap<(String, String), Vec<Value>>,
    /// The lab file could not be read back (it was valid at `up`): the
    /// stored kinds answer 500 with this, discovery still lists them.
    pub error: Option<String>,
}

type Cache = Mutex<BTreeMap<PathBuf, (Option<FileStamp>, Arc<Loaded>)>>;
static CACHE: Cache = Mutex::new(BTreeMap::new());

/// The stored objects of the lab whose state is in `state_dir`, parsed
/// again only when its lab file changed.
pub fn load(state_dir: &Path, lab: &str) -> Arc<Loaded> {
    let path = state_dir.join(LAB_FILE);
    let stamp = std::fs::metadata(&path)
        .ok()
        .map(|m| (m.modified().ok(), m.len()));
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((s, loaded)) = cache.get(state_dir) {
        if *s == stamp {
            return loaded.clone();
        }
    }
    let loaded = Arc::new(read(state_dir, &path, lab, stamp.is_some()));
    cache.insert(state_dir.to_path_buf(), (stamp, loaded.clone()));
    loaded
}

fn read(state_dir: &Path, path: &Path, lab: &str, exists: bool) -> Loaded {
    let empty = |error: Option<String>| Loaded {
        resources: resources(&[]),
        objects: BTreeMap::new(),
        error,
    };
    if !exists {
        // A lab from before lab.yaml was saved, or one whose file could
        // not be saved (`up` warned): nothing stored to serve.
        return empty(None);
    }
    let origin = std::fs::read_to_string(state_dir.join(ORIGIN_FILE))
        .unwrap_or_else(|_| LAB_FILE.to_string());
    let file = match crate::lab::read_source(path, "lab")
        .map_err(|d| d.to_string())
        .and_then(|text| crate::lab::parse(&origin, &text).map_err(|e| e.to_string()))
    {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("API: the lab file {} does not parse: {e}", path.display());
            return empty(Some(format!(
                "the running lab file {} does not parse: {e}",
                path.display()
            )));
        }
    };
    // The daemon's start, as the rest of the API's objects (the API
    // writes its port file once, when it binds).
    let created = std::fs::metadata(state_dir.join(super::PORT_FILE))
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    let mut objects: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for o in file.stored {
        let group = o.api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let key = (group.to_string(), o.kind.clone());
        objects
            .entry(key)
            .or_default()
            .push(served(lab, created, o));
    }
    Loaded {
        resources: resources(&file.custom_kinds),
        objects,
        error: None,
    }
}

/// The object as the API server would return it: what was written, with
/// the metadata the server sets.
fn served(lab: &str, created: SystemTime, o: crate::lab::stored::Stored) -> Value {
    let mut v = o.raw;
    let uid = super::objects::uid(lab, Some(created), &o.kind, o.namespace.as_deref(), &o.name);
    if let Some(m) = v["metadata"].as_object_mut() {
        m.insert("uid".into(), json!(uid));
        m.entry("creationTimestamp")
            .or_insert_with(|| json!(super::objects::rfc3339(created)));
        // Whatever a file says of server-set fields is not the lab's.
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    let rv = super::objects::content_version(&v);
    v["metadata"]["resourceVersion"] = json!(rv);
    v
}

/// Where a request points among the stored kinds.
#[derive(Debug, PartialEq)]
enum At<'a> {
    /// `/api`, `/apis`: the root discovery documents.
    Root {
        core: bool,
    },
    GroupVersion {
        group: &'a str,
        version: &'a str,
    },
    Collection {
        res: usize,
        version: &'a str,
        ns: Option<&'a str>,
    },
    Object {
        res: usize,
        version: &'a str,
        ns: Option<&'a str>,
        name: &'a str,
    },
}

fn parse<'a>(path: &'a str, res: &[Res]) -> Option<At<'a>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Some(At::Root { core: true }),
        ["apis"] => return Some(At::Root { core: false }),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let find = |plural: &str| {
        res.iter().position(|r| {
            r.group == group && r.plural == plural && r.versions.iter().any(|v| v == version)
        })
    };
    let served = res
        .iter()
        .any(|r| r.group == group && r.versions.iter().any(|v| v == version));
    match rest {
        [] if served => Some(At::GroupVersion { group, version }),
        ["namespaces", ns, plural] => {
            find(plural)
                .filter(|i| res[*i].namespaced)
                .map(|res| At::Collection {
                    res,
                    version,
                    ns: Some(ns),
                })
        }
        ["namespaces", ns, plural, name] => {
            find(plural)
                .filter(|i| res[*i].namespaced)
                .map(|res| At::Object {
                    res,
                    version,
                    ns: Some(ns),
                    name,
                })
        }
        [plural] => find(plural).map(|res| At::Collection {
            res,
            version,
            ns: None,
        }),
        [plural, name] => find(plural)
            .filter(|i| !res[*i].namespaced)
            .map(|res| At::Object {
                res,
                version,
                ns: None,
                name,
            }),
        _ => None,
    }
}

/// The answer when `path` is discovery or a stored kind; `None` leaves
/// the request to the rest of the API.
pub fn route(
    api: &Api,
    method: &Method,
    path: &str,
    query: &Query,
    accept: &str,
) -> Option<Response<Body>> {
    if method != Method::GET {
        return None;
    }
    let lab = lab_of(&api.state_dir);
    let loaded = load(&api.state_dir, &lab);
    let at = parse(path, &loaded.resources)?;
    if query.flag("watch") && !matches!(at, At::Root { .. } | At::GroupVersion { .. }) {
        return Some(http::status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "watch is not served for stored kinds (they change only with `podlab apply`); list them again",
            None,
        ));
    }
    Some(match at {
        At::Root { core } => root(api, core, accept, &loaded.resources),
        At::GroupVersion { group, version } => {
            let base = super::discovery::resource_list(group, version);
            match super::discovery::merge_resource_list(base, group, version, &loaded.resources) {
                Some(v) => json(StatusCode::OK, &v, "application/json"),
                None => return None,
            }
        }
        At::Collection { res, version, ns } => {
            if let Some(e) = &loaded.error {
                return Some(http::internal(e));
            }
            list(&loaded, &loaded.resources[res], version, ns, query, accept)
        }
        At::Object {
            res,
            version,
            ns,
            name,
        } => {
            if let Some(e) = &loaded.error {
                return Some(http::internal(e));
            }
            get(
                &loaded,
                &loaded.resources[res],
                version,
                ns,
                name,
                query,
                accept,
            )
        }
    })
}

/// The lab's name: the state directory's.
fn lab_of(state_dir: &Path) -> String {
    state_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn root(api: &Api, core: bool, accept: &str, res: &[Res]) -> Response<Body> {
    use super::discovery as d;
    match d::aggregated_version(accept) {
        Some(v) => {
            let mut doc = d::aggregated(core, v);
            d::merge_aggregated(&mut doc, core, res);
            json(StatusCode::OK, &doc, &d::aggregated_content_type(v))
        }
        None if core => json(
            StatusCode::OK,
            &d::legacy_api(&format!("127.0.0.1:{}", api.port)),
            "application/json",
        ),
        None => {
            let mut doc = d::legacy_apis();
            d::merge_legacy_apis(&mut doc, res);
            json(StatusCode::OK, &doc, "application/json")
        }
    }
}

/// The objects of `r` as served under `version`.
fn objects_of(loaded: &Loaded, r: &Res, version: &str) -> Vec<Value> {
    let mut items = loaded
        .objects
        .get(&(r.group.clone(), r.kind.clone()))
        .cloned()
        .unwrap_or_default();
    if r.custom {
        for o in &mut items {
            o["apiVersion"] = json!(r.api_version(version));
        }
    }
    items
}

fn selectors(q: &Query) -> Result<(LabelSelector, FieldSelector), String> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
    // The fields every kind takes: metadata.name and metadata.namespace.
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), "")?;
    Ok((labels, fields))
}

fn list(
    loaded: &Loaded,
    r: &Res,
    version: &str,
    ns: Option<&str>,
    q: &Query,
    accept: &str,
) -> Response<Body> {
    let (labels, fields) = match selectors(q) {
        Ok(s) => s,
        Err(e) => return http::status_error(StatusCode::BAD_REQUEST, "BadRequest", &e, None),
    };
    let items: Vec<Value> = objects_of(loaded, r, version)
        .into_iter()
        .filter(|o| ns.is_none_or(|ns| o["metadata"]["namespace"] == ns))
        .filter(|o| labels.matches(&o["metadata"]["labels"]))
        .filter(|o| fields.matches(o))
        .collect();
    let rv = super::objects::list_version(&items);
    if let Some(tv) = table_version(accept) {
        return table(r, &items, q, tv, Some(&rv));
    }
    json(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", r.kind),
            "apiVersion": r.api_version(version),
            "metadata": {"resourceVersion": rv},
            "items": items,
        }),
        "application/json",
    )
}

fn get(
    loaded: &Loaded,
    r: &Res,
    version: &str,
    ns: Option<&str>,
    name: &str,
    q: &Query,
    accept: &str,
) -> Response<Body> {
    let found = objects_of(loaded, r, version).into_iter().find(|o| {
        o["metadata"]["name"] == name && ns.is_none_or(|ns| o["metadata"]["namespace"] == ns)
    });
    let Some(o) = found else {
        let plural = if r.group.is_empty() {
            r.plural.clone()
        } else {
            format!("{}.{}", r.plural, r.group)
        };
        return http::status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{plural} \"{name}\" not found"),
            Some(json!({"name": name, "kind": r.plural, "group": r.group})),
        );
    };
    match table_version(accept) {
        Some(tv) => table(r, std::slice::from_ref(&o), q, tv, None),
        None => json(StatusCode::OK, &o, "application/json"),
    }
}

fn table(r: &Res, items: &[Value], q: &Query, version: &str, rv: Option<&str>) -> Response<Body> {
    let include = match Include::parse(q.get("includeObject")) {
        Ok(i) => i,
        Err(e) => return http::status_error(StatusCode::BAD_REQUEST, "BadRequest", &e, None),
    };
    let mut t = super::tables::stored_table(
        &r.plural,
        r.custom.then_some(r.columns.as_slice()),
        items,
        include,
        SystemTime::now(),
    );
    t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
    if let Some(rv) = rv {
        t["metadata"]["resourceVersion"] = json!(rv);
    }
    json(
        StatusCode::OK,
        &t,
        &format!("application/json;as=Table;v={version};g=meta.k8s.io"),
    )
}

/// What the Accept header asks for: a Table (`v1` or `v1beta1`), or JSON
/// (as `http`'s own, which is private to it).
fn table_version(accept: &str) -> Option<&'static str> {
    let asks = |v: &str| {
        accept.split(',').any(|part| {
            let params: Vec<&str> = part.split(';').map(str::trim).collect();
            params.contains(&"as=Table")
                && params.contains(&"g=meta.k8s.io")
                && params.contains(&format!("v={v}").as_str())
        })
    };
    ["v1", "v1beta1"].into_iter().find(|v| asks(v))
}

fn json(code: StatusCode, v: &Value, content_type: &str) -> Response<Body> {
    use http_body_util::{BodyExt, Full};
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Full::new(hyper::body::Bytes::from(body)).boxed_unsync());
    *r.status_mut() = code;
    if let Ok(ct) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res() -> Vec<Res> {
        let crd: Value = serde_json::from_str(
            r#"{"spec": {"group": "example.com", "scope": "Cluster",
                "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
                "versions": [{"name": "v1beta1", "served": true},
                             {"name": "v1", "served": true, "storage": true}]}}"#,
        )
        .unwrap();
        resources(&[CustomKind::from_crd(&crd).unwrap()])
    }

    #[test]
    fn paths_of_stored_kinds() {
        let r = res();
        let idx = |plural: &str| r.iter().position(|x| x.plural == plural).unwrap();
        assert_eq!(
            parse("/api/v1/namespaces/default/serviceaccounts", &r),
            Some(At::Collection {
                res: idx("serviceaccounts"),
                version: "v1",
                ns: Some("default")
            })
        );
        assert_eq!(
            parse("/api/v1/serviceaccounts", &r),
            Some(At::Collection {
                res: idx("serviceaccounts"),
                version: "v1",
                ns: None
            })
        );
        assert_eq!(
            parse("/apis/networking.k8s.io/v1/namespaces/a/ingresses/web", &r),
            Some(At::Object {
                res: idx("ingresses"),
                version: "v1",
                ns: Some("a"),
                name: "web"
            })
        );
        // Cluster-scoped: by name at the top, never under a namespace.
        assert_eq!(
            parse("/apis/example.com/v1beta1/widgets/w", &r),
            Some(At::Object {
                res: idx("widgets"),
                version: "v1beta1",
                ns: None,
                name: "w"
            })
        );
        assert_eq!(
            parse("/apis/example.com/v1beta1/namespaces/a/widgets", &r),
            None
        );
        // What the rest of the API serves is left to it.
        assert_eq!(parse("/api/v1/pods", &r), None);
        assert_eq!(parse("/api/v1/namespaces/a", &r), None);
        assert_eq!(
            parse("/apis/networking.k8s.io/v1/networkpolicies", &r),
            None
        );
        assert_eq!(
            parse("/apis/rbac.authorization.k8s.io/v1", &r),
            Some(At::GroupVersion {
                group: "rbac.authorization.k8s.io",
                version: "v1"
            })
        );
        assert_eq!(parse("/apis/autoscaling/v1", &r), None);
        assert_eq!(parse("/api", &r), Some(At::Root { core: true }));
    }

    #[test]
    fn the_storage_version_is_preferred() {
        let r = res();
        let w = r.iter().find(|x| x.kind == "Widget").unwrap();
        assert_eq!(w.versions, ["v1", "v1beta1"]);
        assert!(w.custom && !w.namespaced);
    }

    #[test]
    fn served_objects_carry_server_metadata() {
        let o = crate::lab::stored::Stored {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("default".into()),
            name: "c".into(),
            pos: Default::default(),
            ns_pos: None,
            raw: json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "namespace": "default", "resourceVersion": "7"},
                        "data": {"k": "v"}}),
        };
        let v = served("hr-x", SystemTime::UNIX_EPOCH, o);
        assert_eq!(v["metadata"]["creationTimestamp"], "1970-01-01T00:00:00Z");
        assert_ne!(v["metadata"]["resourceVersion"], "7");
        assert_eq!(v["metadata"]["uid"].as_str().map(str::len), Some(36));
        assert_eq!(v["data"]["k"], "v");
    }
}
