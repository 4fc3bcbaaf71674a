//! Requests of the lab's API: authentication, routing, content
//! negotiation (JSON, Table, aggregated discovery) and errors as
//! `metav1.Status`, which kubectl prints as `Error from server (Reason):
//! message`.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::objects::{self, Host, Resource, View};
use super::select::{FieldSelector, LabelSelector};
use super::store::Snapshot;
use super::tables::{self, Include};
use super::{discovery, tls, StatusFn};
use crate::plan::Plan;

/// Boxed: most answers are one buffer, a watch or a log is a stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub struct Api {
    pub state_dir: PathBuf,
    token: String,
    pub port: u16,
    status: StatusFn,
    changes: watch::Receiver<u64>,
    host: Host,
    /// When the daemon came up: the lab's creation time, which no later
    /// `apply` moves (the plan's mtime does).
    started: SystemTime,
    /// The plan on disk, parsed once per change (`apply` rewrites it):
    /// a thousand pods' plan takes milliseconds to parse.
    plan: Mutex<Option<(FileStamp, Arc<Plan>)>>,
    /// The last built objects per resource, with their history.
    store: super::store::Store,
}

pub type FileStamp = (Option<SystemTime>, u64);

impl Api {
    pub fn new(
        state_dir: PathBuf,
        token: String,
        port: u16,
        status: StatusFn,
        changes: watch::Receiver<u64>,
    ) -> Api {
        Api {
            state_dir,
            token,
            port,
            status,
            changes,
            host: Host::probe(),
            started: SystemTime::now(),
            plan: Mutex::new(None),
            store: super::store::Store::new(),
        }
    }

    /// Changes whenever the daemon's table does.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// When the plan on disk was last written, and its size.
    pub fn plan_stamp(&self) -> Result<FileStamp, String> {
        let path = self.state_dir.join(crate::runtime::PLAN_FILE);
        std::fs::metadata(&path)
            .map(|m| (m.modified().ok(), m.len()))
            .map_err(|e| format!("read {}: {e}", path.display()))
    }

    /// The objects of one resource in the lab, by the plan on disk and the
    /// daemon's table now. Errors are the message of a 500 InternalError.
    pub fn objects(&self, r: &Resource) -> Result<Vec<Value>, String> {
        objects_now(self, r)
    }

    /// The objects of `r` with their list resourceVersion, built again
    /// only when the plan, the daemon's table or (for nodes) the node
    /// namespaces changed since the last build.
    pub fn snapshot(&self, r: &Resource) -> Result<(u64, Snapshot), String> {
        let epoch = *self.changes.borrow();
        let nodes = if r.plural == "nodes" {
            self.plan()?
                .nodes
                .iter()
                .filter(|n| crate::kernel::netns::Netns::exists(&n.netns))
                .count() as u64
        } else {
            0
        };
        let inputs = (self.plan_stamp()?, epoch, nodes);
        self.store
            .current(&store_kind(r), inputs, || objects_now(self, r))
    }

    /// Where a watch from `rv` starts; after `snapshot`.
    pub fn snapshot_at(&self, r: &Resource, rv: &str) -> super::store::From {
        self.store.at(&store_kind(r), rv)
    }

    pub fn plan(&self) -> Result<Arc<Plan>, String> {
        let stamp = self.plan_stamp()?;
        let mut cache = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, plan)) = cache.as_ref() {
            if *s == stamp {
                return Ok(plan.clone());
            }
        }
        let plan = Arc::new(crate::runtime::load_plan(&self.state_dir).map_err(|e| e.to_string())?);
        *cache = Some((stamp, plan.clone()));
        Ok(plan)
    }
}

fn store_kind(r: &Resource) -> String {
    format!("{}/{}", r.group, r.plural)
}

/// Serve one TLS connection: HTTP/1.1 with upgrades (exec).
pub async fn serve_connection<S>(api: Arc<Api>, io: S, mut shutdown: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: Request<Incoming>| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(handle(api, req).await) }
    });
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::select! {
        r = conn => if let Err(e) = r { tracing::debug!("API connection: {e}") },
        _ = crate::runtime::stopped(&mut shutdown) => {}
    }
}

async fn handle(api: Arc<Api>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let auth = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut resp = if !tls::authorized(auth, &api.token) {
        status_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized",
            None,
        )
    } else {
        route(&api, req).await
    };
    // A big answer's objects are freed by now; without giving their pages
    // back, the allocator keeps the daemon at its largest answer's size.
    if resp
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n > TRIM_AFTER)
    {
        // SAFETY: malloc_trim only releases free memory of the heap.
        unsafe {
            libc::malloc_trim(0);
        }
    }
    let took = started.elapsed();
    // The server's own time, so a benchmark can tell it from the client's.
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}ms", took.as_secs_f64() * 1000.0)) {
        resp.headers_mut().insert("x-podlab-server-time", v);
    }
    tracing::debug!(%method, %uri, status = resp.status().as_u16(), took_us = took.as_micros() as u64, "API request");
    resp
}

/// Answers larger than this give the allocator's free memory back.
const TRIM_AFTER: u64 = 256 * 1024;

/// A parsed query string: every `key=value`, decoded, in order.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            q.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// Percent-decoding, with `+` as a space (form encoding, which Go's
/// `url.Values` writes).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a request points in the API.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    Version,
    /// `/api` (core: true) or `/apis`.
    Root {
        core: bool,
    },
    /// `/api/v1`, `/apis/<group>/<version>`.
    GroupVersion {
        group: &'a str,
        version: &'a str,
    },
    Collection {
        resource: &'static Resource,
        namespace: Option<&'a str>,
    },
    Object {
        resource: &'static Resource,
        namespace: Option<&'a str>,
        name: &'a str,
        sub: Option<&'a str>,
    },
    /// A path under a served group-version naming no served resource.
    Unknown {
        plural: &'a str,
    },
    NotFound,
}

pub fn parse_path(path: &str) -> Target<'_> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["version"] => return Target::Version,
        ["api"] => return Target::Root { core: true },
        ["apis"] => return Target::Root { core: false },
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Target::NotFound,
    };
    let known = objects::RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version);
    if !known {
        return Target::NotFound;
    }
    let res = |plural: &str| objects::resource(group, version, plural);
    let core_ns = objects::resource("", "v1", "namespaces");
    match rest {
        [] => Target::GroupVersion { group, version },
        // `namespaces/NAME` is a namespace object, not a scope.
        ["namespaces", name] if group.is_empty() => match core_ns {
            Some(r) => Target::Object {
                resource: r,
                namespace: None,
                name,
                sub: None,
            },
            None => Target::NotFound,
        },
        ["namespaces", ns, plural, tail @ ..] => match (res(plural), tail) {
            (Some(r), []) if r.namespaced => Target::Collection {
                resource: r,
                namespace: Some(ns),
            },
            (Some(r), [name]) if r.namespaced => Target::Object {
                resource: r,
                namespace: Some(ns),
                name,
                sub: None,
            },
            (Some(r), [name, sub]) if r.namespaced => Target::Object {
                resource: r,
                namespace: Some(ns),
                name,
                sub: Some(sub),
            },
            (None, _) => Target::Unknown { plural },
            _ => Target::NotFound,
        },
        [plural] => match res(plural) {
            Some(r) => Target::Collection {
                resource: r,
                namespace: None,
            },
            None => Target::Unknown { plural },
        },
        [plural, name] => match res(plural) {
            Some(r) if !r.namespaced => Target::Object {
                resource: r,
                namespace: None,
                name,
                sub: None,
            },
            Some(_) => Target::NotFound,
            None => Target::Unknown { plural },
        },
        _ => Target::NotFound,
    }
}

async fn route(api: &Arc<Api>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = Query::parse(req.uri().query());
    let accept = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // The stored kinds (ServiceAccounts, ConfigMaps, CRDs...) and the
    // discovery documents that list them: `api::stored`.
    if let Some(resp) = super::stored::route(api, req.method(), &path, &query, &accept) {
        return resp;
    }
    let target = parse_path(&path);
    if let Target::Object {
        resource,
        namespace: Some(ns),
        name,
        sub: Some("exec"),
    } = target
    {
        if resource.plural == "pods" && matches!(*req.method(), Method::GET | Method::POST) {
            let (ns, name) = (ns.to_string(), name.to_string());
            return super::exec::serve(api.clone(), req, &ns, &name, &query).await;
        }
    }
    if let Target::Object {
        resource,
        namespace: Some(ns),
        name,
        sub: Some("log"),
    } = target
    {
        if resource.plural == "pods" && *req.method() == Method::GET {
            return super::logs::serve(api.clone(), ns, name, &query);
        }
    }
    if let Target::Object {
        resource,
        namespace: Some(ns),
        name,
        sub: Some("scale"),
    } = target
    {
        if resource.plural == "deployments" && *req.method() == Method::GET {
            return super::write::get_scale(api, ns, name);
        }
    }
    if req.method() != Method::GET {
        return super::write::route(api, req, &path).await;
    }
    if let Some(doc) = super::openapi::document(&path) {
        return json_ok(&doc);
    }
    if query.flag("watch") {
        return match target {
            Target::Collection {
                resource,
                namespace,
            } => watch(api, resource, namespace, None, &query, &accept),
            Target::Object {
                resource,
                namespace,
                name,
                sub: None,
            } => watch(api, resource, namespace, Some(name), &query, &accept),
            _ => not_found_path(),
        };
    }
    match target {
        Target::Version => json_ok(&discovery::version()),
        Target::Root { core } => match discovery::aggregated_version(&accept) {
            Some(v) => respond(
                StatusCode::OK,
                &discovery::aggregated(core, v),
                &discovery::aggregated_content_type(v),
            ),
            None if core => json_ok(&discovery::legacy_api(&format!("127.0.0.1:{}", api.port))),
            None => json_ok(&discovery::legacy_apis()),
        },
        Target::GroupVersion { group, version } => match discovery::resource_list(group, version) {
            Some(v) => json_ok(&v),
            None => not_found_path(),
        },
        Target::Collection {
            resource,
            namespace,
        } => list(api, resource, namespace, &query, &accept),
        Target::Object {
            resource,
            namespace,
            name,
            sub: None,
        } => get(api, resource, namespace, name, &query, &accept),
        Target::Object { .. } | Target::NotFound => not_found_path(),
        Target::Unknown { plural } => status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({"kind": plural})),
        ),
    }
}

/// `?watch=1` on a collection, or on one object (the old form
/// `/pods/NAME?watch=1`, a field selector on its name).
fn watch(
    api: &Arc<Api>,
    resource: &'static Resource,
    namespace: Option<&str>,
    name: Option<&str>,
    q: &Query,
    accept: &str,
) -> Response<Body> {
    let (labels, mut fields) = match selectors(resource, q) {
        Ok(s) => s,
        Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e, None),
    };
    if let Some(n) = name {
        match FieldSelector::parse(&format!("metadata.name={n}"), resource.plural) {
            Ok(f) => fields = fields.and(f),
            Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e, None),
        }
    }
    let include = match Include::parse(q.get("includeObject")) {
        Ok(i) => i,
        Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e, None),
    };
    let spec = super::watches::Spec {
        resource,
        namespace: namespace.map(str::to_string),
        labels,
        fields,
        table: table_version(accept),
        include,
        start: super::watches::Start::parse(q.get("resourceVersion")),
        bookmarks: q.flag("allowWatchBookmarks"),
        timeout: super::watches::Spec::timeout_from(q.get("timeoutSeconds")),
    };
    match super::watches::serve(api.clone(), spec) {
        Ok(r) => r,
        Err(e) => internal(&e),
    }
}

/// The objects of one resource in the lab, by the plan on disk and the
/// daemon's table now.
/// Errors are the message of a 500 InternalError.
fn objects_now(api: &Api, r: &Resource) -> Result<Vec<Value>, String> {
    with_view(api, r, |view| view.objects(r))
}

/// The one object `ns/name` of `r`, built alone where it can be (a pod).
pub(super) fn object_now(
    api: &Api,
    r: &Resource,
    ns: Option<&str>,
    name: &str,
) -> Result<Option<Value>, String> {
    with_view(api, r, |view| view.object(r, ns, name))
}

pub(super) fn with_view<T>(
    api: &Api,
    r: &Resource,
    f: impl FnOnce(&View) -> T,
) -> Result<T, String> {
    let plan = api.plan()?;
    let status = if [
        "pods",
        "endpoints",
        "endpointslices",
        "events",
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
    ]
    .contains(&r.plural)
    {
        Some((api.status)())
    } else {
        None
    };
    let nodes_up: BTreeSet<String> = plan
        .nodes
        .iter()
        .filter(|n| crate::kernel::netns::Netns::exists(&n.netns))
        .map(|n| n.netns.clone())
        .collect();
    let view = View {
        plan: &plan,
        status: status.as_ref(),
        created: Some(api.started),
        host: &api.host,
        nodes_up: &nodes_up,
    };
    Ok(f(&view))
}

fn in_namespace(o: &Value, ns: Option<&str>) -> bool {
    ns.is_none_or(|ns| o["metadata"]["namespace"] == ns)
}

/// What the Accept header asks for: a Table (`v1` or `v1beta1`), or JSON.
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

/// Errors are the message of a 400 BadRequest.
fn selectors(r: &Resource, q: &Query) -> Result<(LabelSelector, FieldSelector), String> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), r.plural)?;
    Ok((labels, fields))
}

fn list(
    api: &Api,
    r: &'static Resource,
    ns: Option<&str>,
    q: &Query,
    accept: &str,
) -> Response<Body> {
    let (labels, fields) = match selectors(r, q) {
        Ok(s) => s,
        Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e, None),
    };
    // A list's resourceVersion is the store's, which a watch starts from.
    let (rv, all) = match api.snapshot(r) {
        Ok(s) => s,
        Err(e) => return internal(&e),
    };
    // References: a copy of a thousand pods is tens of MiB at the peak.
    let items: Vec<&Value> = all
        .values()
        .map(|o| &**o)
        .filter(|o| in_namespace(o, ns))
        .filter(|o| labels.matches(&o["metadata"]["labels"]))
        .filter(|o| fields.matches(o))
        .collect();
    let rv = rv.to_string();
    if let Some(v) = table_version(accept) {
        let owned: Vec<Value> = items.into_iter().cloned().collect();
        return table_response(r, &owned, q, v, Some(&rv));
    }
    json_ok(&json!({
        "kind": r.list_kind(),
        "apiVersion": r.api_version(),
        "metadata": {"resourceVersion": rv},
        "items": items,
    }))
}

fn table_response(
    r: &Resource,
    items: &[Value],
    q: &Query,
    version: &str,
    list_rv: Option<&str>,
) -> Response<Body> {
    let include = match Include::parse(q.get("includeObject")) {
        Ok(i) => i,
        Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e, None),
    };
    let mut t = tables::table(r, items, include, SystemTime::now());
    t["apiVersion"] = json!(format!("meta.k8s.io/{version}"));
    if let Some(rv) = list_rv {
        t["metadata"]["resourceVersion"] = json!(rv);
    }
    respond(
        StatusCode::OK,
        &t,
        &format!("application/json;as=Table;v={version};g=meta.k8s.io"),
    )
}

fn get(
    api: &Api,
    r: &'static Resource,
    ns: Option<&str>,
    name: &str,
    q: &Query,
    accept: &str,
) -> Response<Body> {
    let found = match object_now(api, r, ns, name) {
        Ok(o) => o,
        Err(e) => return internal(&e),
    };
    match found {
        Some(o) => match table_version(accept) {
            Some(v) => table_response(r, std::slice::from_ref(&o), q, v, None),
            None => json_ok(&o),
        },
        None => not_found(r, name),
    }
}

pub fn not_found(r: &Resource, name: &str) -> Response<Body> {
    let plural = if r.group.is_empty() {
        r.plural.to_string()
    } else {
        format!("{}.{}", r.plural, r.group)
    };
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{plural} \"{name}\" not found"),
        Some(json!({"name": name, "kind": r.plural, "group": r.group})),
    )
}

fn not_found_path() -> Response<Body> {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
        None,
    )
}

pub fn internal(msg: &str) -> Response<Body> {
    status_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        &format!("Internal error occurred: {msg}"),
        None,
    )
}

/// A `metav1.Status` failure.
pub fn status_body(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(d) = details {
        // Kubernetes leaves out empty fields of the details too.
        let d: serde_json::Map<String, Value> = d
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.as_str() != Some(""))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v["details"] = Value::Object(d);
    }
    v
}

pub fn status_error(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    respond(
        code,
        &status_body(code, reason, message, details),
        "application/json",
    )
}

fn json_ok(v: &Value) -> Response<Body> {
    respond(StatusCode::OK, v, "application/json")
}

pub(super) fn respond(code: StatusCode, v: &Value, content_type: &str) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *r.status_mut() = code;
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, ct);
    }
    r
}
