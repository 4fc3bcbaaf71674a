//! kubectl's writes: `apply` (client- and server-side), `create`,
//! `replace`, `patch`, `delete`, `scale`, `label`, `annotate`.
//!
//! The daemon changes nothing itself. Each write becomes one `ops::Op`,
//! run by `podlab api-write` (the binary the daemon was started from),
//! which takes the lab's lock, passes an exercise's rules and plans and
//! reconciles as `podlab apply` does, so both ways change a lab alike and
//! a bad manifest is refused with the lab file's own checks. The answer is
//! built from the lab as it is afterwards.

// A refusal here is the HTTP answer itself, made once per request and
// returned at once: boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::http::{self, Api, Body, Query, Target};
use super::objects::Resource;
use crate::ops::{Op, Outcome};

/// Larger than any manifest a lab takes; kube-apiserver's limit is 3 MiB.
const MAX_BODY: usize = 3 << 20;
/// A write reconciles the lab: seconds at most for a thousand pods.
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// Kinds whose whole manifest podlab can rebuild from what it serves, so
/// that a PATCH of an object from the lab file has a base to patch.
const REBUILT: &[&str] = &["NetworkPolicy", "Namespace"];

pub async fn route(api: &Arc<Api>, req: Request<Incoming>, path: &str) -> Response<Body> {
    let method = req.method().clone();
    let query = Query::parse(req.uri().query());
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let w = Write {
        api,
        content_type: &content_type,
        body: &body,
        dry_run,
    };
    match http::parse_path(path) {
        Target::Collection {
            resource,
            namespace,
        } if method == Method::POST => w.create(resource, namespace).await,
        Target::Object {
            resource,
            namespace,
            name,
            sub: None,
        } => match method {
            Method::DELETE => w.delete(resource, namespace, name).await,
            Method::PUT => w.replace(resource, namespace, name).await,
            Method::PATCH => w.patch(resource, namespace, name).await,
            _ => not_allowed(&method, resource.plural),
        },
        Target::Object {
            resource,
            namespace: Some(ns),
            name,
            sub: Some("scale"),
        } if resource.plural == "deployments" && matches!(method, Method::PATCH | Method::PUT) => {
            w.scale(ns, name, method == Method::PUT).await
        }
        Target::Collection { resource, .. } | Target::Object { resource, .. } => {
            not_allowed(&method, resource.plural)
        }
        _ => http::status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
            None,
        ),
    }
}

/// A Deployment's `scale` subresource, read.
pub fn get_scale(api: &Api, ns: &str, name: &str) -> Response<Body> {
    match scale_of(api, ns, name) {
        Ok(Some(s)) => respond(StatusCode::OK, &s),
        Ok(None) => http::not_found(&super::objects::DEPLOYMENTS, name),
        Err(e) => http::internal(&e),
    }
}

fn scale_of(api: &Api, ns: &str, name: &str) -> Result<Option<Value>, String> {
    let plan = api.plan()?;
    let view_of = http::with_view(api, &super::objects::DEPLOYMENTS, |view| {
        plan.deployments
            .iter()
            .find(|d| d.namespace == ns && d.name == name)
            .map(|d| view.scale(d))
    })?;
    Ok(view_of)
}

async fn read_body(req: Request<Incoming>) -> Result<Vec<u8>, Response<Body>> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    match limited.collect().await {
        Ok(b) => Ok(b.to_bytes().to_vec()),
        Err(e) => Err(http::status_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("the request body could not be read (at most {MAX_BODY} bytes): {e}"),
            None,
        )),
    }
}

struct Write<'a> {
    api: &'a Arc<Api>,
    content_type: &'a str,
    body: &'a [u8],
    dry_run: bool,
}

impl Write<'_> {
    fn object(
        &self,
        r: &'static Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, Response<Body>> {
        http::object_now(self.api, r, ns, name).map_err(|e| http::internal(&e))
    }

    /// The body as one object of `r`, its namespace filled from the path.
    fn manifest(&self, r: &Resource, ns: Option<&str>) -> Result<Value, Response<Body>> {
        let v = decode_body(self.body, self.content_type)?;
        let mut v = match v {
            Value::Object(m) => m,
            _ => return Err(bad_request("the body is not a JSON object")),
        };
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or(r.kind);
        if kind != r.kind {
            return Err(bad_request(&format!(
                "the body is a {kind}, the path names {}",
                r.plural
            )));
        }
        v.insert("kind".into(), json!(r.kind));
        v.entry("apiVersion")
            .or_insert_with(|| json!(r.api_version()));
        let meta = v
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| bad_request("metadata is not an object"))?;
        if let Some(ns) = ns.filter(|_| r.namespaced) {
            match meta.get("namespace").and_then(Value::as_str) {
                Some(given) if given != ns => {
                    return Err(bad_request(&format!(
                        "the namespace of the provided object ({given}) does not match the namespace sent on the request ({ns})"
                    )))
                }
                _ => {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        }
        Ok(Value::Object(strip_server_fields(v)))
    }

    async fn create(&self, r: &'static Resource, ns: Option<&str>) -> Response<Body> {
        let m = match self.manifest(r, ns) {
            Ok(m) => m,
            Err(resp) => return resp,
        };
        let name = m["metadata"]["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            return invalid(r, "", "metadata.name: Required value: name is required");
        }
        match self.object(r, ns, &name) {
            Ok(Some(_)) => {
                return http::status_error(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    &format!("{} \"{name}\" already exists", plural_of(r)),
                    Some(json!({"name": name, "kind": r.plural, "group": r.group})),
                )
            }
            Ok(None) => {}
            Err(resp) => return resp,
        }
        self.put(r, ns, &name, m, StatusCode::CREATED).await
    }

    async fn replace(&self, r: &'static Resource, ns: Option<&str>, name: &str) -> Response<Body> {
        let m = match self.manifest(r, ns) {
            Ok(m) => m,
            Err(resp) => return resp,
        };
        let code = match self.object(r, ns, name) {
            Ok(Some(_)) => StatusCode::OK,
            Ok(None) => StatusCode::CREATED,
            Err(resp) => return resp,
        };
        self.put(r, ns, name, m, code).await
    }

    async fn put(
        &self,
        r: &'static Resource,
        ns: Option<&str>,
        name: &str,
        manifest: Value,
        code: StatusCode,
    ) -> Response<Body> {
        if r.plural == "deployments"
            || r.plural == "pods"
            || r.plural == "services"
            || REBUILT.contains(&r.kind)
        {
            if self.dry_run {
                return respond(code, &manifest);
            }
            return match run(self.api, Op::Put { manifest }).await {
                Ok(_) => self.answer(r, ns, name, code),
                Err(resp) => resp,
            };
        }
        not_allowed(&Method::PUT, r.plural)
    }

    /// The object as served after a write.
    fn answer(
        &self,
        r: &'static Resource,
        ns: Option<&str>,
        name: &str,
        code: StatusCode,
    ) -> Response<Body> {
        match self.object(r, ns, name) {
            Ok(Some(o)) => respond(code, &o),
            Ok(None) => http::not_found(r, name),
            Err(resp) => resp,
        }
    }

    async fn delete(&self, r: &'static Resource, ns: Option<&str>, name: &str) -> Response<Body> {
        let before = match self.object(r, ns, name) {
            Ok(Some(o)) => o,
            Ok(None) => return http::not_found(r, name),
            Err(resp) => return resp,
        };
        if self.dry_run {
            return respond(StatusCode::OK, &before);
        }
        let op = match r.plural {
            "pods" => Op::DeletePod {
                namespace: ns.unwrap_or("default").to_string(),
                name: name.to_string(),
            },
            "namespaces" | "nodes" | "endpoints" | "endpointslices" | "events" => {
                return not_allowed(&Method::DELETE, r.plural)
            }
            _ => Op::Delete {
                kind: r.kind.to_string(),
                namespace: ns.map(str::to_string),
                name: name.to_string(),
            },
        };
        match run(self.api, op).await {
            // kubectl reads the uid of what went from the answer.
            Ok(_) => respond(StatusCode::OK, &before),
            Err(resp) => resp,
        }
    }

    async fn patch(&self, r: &'static Resource, ns: Option<&str>, name: &str) -> Response<Body> {
        let current = match self.object(r, ns, name) {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        let apply = self.content_type.starts_with("application/apply-patch");
        let Some(current) = current else {
            // Server-side apply creates what does not exist.
            if apply {
                return match self.manifest(r, ns) {
                    Ok(m) => self.put(r, ns, name, m, StatusCode::CREATED).await,
                    Err(resp) => resp,
                };
            }
            return http::not_found(r, name);
        };
        let key = crate::lab::object_key(r.kind, ns, name);
        let written = written_manifest(self.api, &key);
        if r.plural == "deployments" && written.is_none() {
            return self.patch_replicas(r, ns, name, current).await;
        }
        let base = match written {
            Some(w) => w,
            None if REBUILT.contains(&r.kind) => manifest_of(current),
            None => {
                return http::status_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    &format!(
                        "{} \"{name}\" comes from the lab file, which is where it changes: edit the file and `podlab apply` it, or delete the object and create it with kubectl",
                        plural_of(r)
                    ),
                    None,
                )
            }
        };
        let patched = match patch_value(base, self.body, self.content_type) {
            Ok(p) => p,
            Err(resp) => return resp,
        };
        let m = match patched {
            Value::Object(m) => Value::Object(strip_server_fields(m)),
            _ => return bad_request("the patched object is not an object"),
        };
        self.put(r, ns, name, m, StatusCode::OK).await
    }

    /// A Deployment from the lab file: kubectl may change its replicas.
    async fn patch_replicas(
        &self,
        r: &'static Resource,
        ns: Option<&str>,
        name: &str,
        current: Value,
    ) -> Response<Body> {
        let before = current["spec"].clone();
        let patched = match patch_value(current, self.body, self.content_type) {
            Ok(p) => p,
            Err(resp) => return resp,
        };
        let mut after = patched["spec"].clone();
        let replicas = after["replicas"].as_u64();
        if let (Some(a), Some(b)) = (after.as_object_mut(), before.as_object()) {
            a.insert(
                "replicas".into(),
                b.get("replicas").cloned().unwrap_or(Value::Null),
            );
        }
        if after != before {
            return invalid(
                r,
                name,
                "spec: Forbidden: of a Deployment from the lab file only spec.replicas changes through the API (`kubectl scale`); edit the lab file and `podlab apply` it for the rest",
            );
        }
        let Some(replicas) = replicas.and_then(|n| u32::try_from(n).ok()) else {
            return invalid(
                r,
                name,
                "spec.replicas: Invalid value: must be a non-negative integer",
            );
        };
        let ns = ns.unwrap_or("default");
        if let Err(resp) = self.scale_to(ns, name, replicas).await {
            return resp;
        }
        self.answer(r, Some(ns), name, StatusCode::OK)
    }

    /// Run a scale, unless this is a dry run.
    async fn scale_to(&self, ns: &str, name: &str, replicas: u32) -> Result<(), Response<Body>> {
        if self.dry_run {
            return Ok(());
        }
        let op = Op::Scale {
            namespace: ns.into(),
            name: name.into(),
            replicas,
        };
        run(self.api, op).await.map(|_| ())
    }

    async fn scale(&self, ns: &str, name: &str, put: bool) -> Response<Body> {
        let current = match scale_of(self.api, ns, name) {
            Ok(Some(s)) => s,
            Ok(None) => return http::not_found(&super::objects::DEPLOYMENTS, name),
            Err(e) => return http::internal(&e),
        };
        let wanted = if put {
            decode_body(self.body, self.content_type)
        } else {
            patch_value(current, self.body, self.content_type)
        };
        let wanted = match wanted {
            Ok(w) => w,
            Err(resp) => return resp,
        };
        let Some(replicas) = wanted["spec"]["replicas"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
        else {
            return invalid(
                &super::objects::DEPLOYMENTS,
                name,
                "spec.replicas: Invalid value: must be a non-negative integer",
            );
        };
        if let Err(resp) = self.scale_to(ns, name, replicas).await {
            return resp;
        }
        get_scale(self.api, ns, name)
    }
}

/// The manifest kubectl wrote for `key`, if it was written through the API.
fn written_manifest(api: &Api, key: &str) -> Option<Value> {
    let lab = api.plan().ok()?.lab.clone();
    let edits = crate::state::load_edits(&lab).ok()?;
    edits.objects.get(key).cloned().flatten()
}

/// A served object as a manifest: what a user writes, without status and
/// the fields the server sets.
fn manifest_of(served: Value) -> Value {
    match served {
        Value::Object(mut m) => {
            m.remove("status");
            if let Some(labels) = m
                .get_mut("metadata")
                .and_then(|x| x.get_mut("labels"))
                .and_then(Value::as_object_mut)
            {
                // Set by the server on every namespace, never by a user.
                labels.remove("kubernetes.io/metadata.name");
            }
            if let Some(spec) = m.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
                if spec.is_empty() {
                    m.remove("spec");
                }
            }
            Value::Object(strip_server_fields(m))
        }
        v => v,
    }
}

fn strip_server_fields(mut m: Map<String, Value>) -> Map<String, Value> {
    if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
            "finalizers",
            "generateName",
        ] {
            meta.remove(k);
        }
        for k in ["labels", "annotations"] {
            if meta
                .get(k)
                .is_some_and(|v| v.as_object().is_some_and(|o| o.is_empty()) || v.is_null())
            {
                meta.remove(k);
            }
        }
    }
    m.remove("status");
    m
}

/// JSON, or YAML (server-side apply sends `application/apply-patch+yaml`).
/// Protobuf is refused with 415, on which client-go sends JSON again.
fn decode_body(body: &[u8], content_type: &str) -> Result<Value, Response<Body>> {
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(http::status_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (not {content_type})"),
            None,
        ));
    }
    let parsed = if content_type.contains("yaml") {
        serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| bad_request(&format!("the body could not be decoded: {e}")))
}

/// `base` with the patch applied, by its content type.
fn patch_value(mut base: Value, body: &[u8], content_type: &str) -> Result<Value, Response<Body>> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/json-patch+json" => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| bad_request(&format!("the JSON patch could not be decoded: {e}")))?;
            json_patch::patch(&mut base, &p).map_err(|e| {
                http::status_error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &format!("the JSON patch does not apply: {e}"), None)
            })?;
        }
        "application/merge-patch+json" | "application/apply-patch+yaml" => {
            let p = decode_body(body, ct)?;
            json_patch::merge(&mut base, &p);
        }
        "application/strategic-merge-patch+json" => {
            let p = decode_body(body, ct)?;
            strategic_merge(&mut base, &p);
        }
        other => {
            return Err(http::status_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (not {other})"),
                None,
            ))
        }
    }
    Ok(base)
}

/// Strategic merge patch, as far as the kinds a lab takes need it: maps
/// merge, `null` deletes, lists of objects merge by their merge key
/// (`name`, or `containerPort` / `port` for ports) and keep the order
/// `$setElementOrder` gives, other lists are replaced; `$patch: delete`
/// and `$patch: replace` are honoured, other directives dropped.
pub fn strategic_merge(base: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *base = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut m = p.clone();
        m.remove("$patch");
        *base = Value::Object(m);
        return;
    }
    if !base.is_object() {
        *base = json!({});
    }
    let Some(b) = base.as_object_mut() else {
        return;
    };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if let Some(list) = k.strip_prefix("$setElementOrder/") {
            let _ = list;
            continue;
        }
        match v {
            Value::Null => {
                b.remove(k);
            }
            Value::Array(items) => {
                let order = p
                    .get(&format!("$setElementOrder/{k}"))
                    .and_then(Value::as_array);
                let merged = merge_list(b.get(k), items, order);
                b.insert(k.clone(), merged);
            }
            Value::Object(_) => strategic_merge(b.entry(k.clone()).or_insert(Value::Null), v),
            _ => {
                b.insert(k.clone(), v.clone());
            }
        }
    }
}

fn merge_key(items: &[Value]) -> Option<&'static str> {
    ["name", "containerPort", "port", "ip"]
        .into_iter()
        .find(|k| !items.is_empty() && items.iter().all(|i| i.get(*k).is_some()))
}

fn merge_list(base: Option<&Value>, patch: &[Value], order: Option<&Vec<Value>>) -> Value {
    let base_items = base.and_then(Value::as_array).cloned().unwrap_or_default();
    let Some(key) = merge_key(patch).filter(|k| base_items.iter().all(|i| i.get(*k).is_some()))
    else {
        return Value::Array(patch.to_vec());
    };
    let mut out = base_items;
    for item in patch {
        let id = &item[key];
        let pos = out.iter().position(|o| &o[key] == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (Some(i), false) => strategic_merge(&mut out[i], item),
            (None, false) => {
                let mut fresh = Value::Null;
                strategic_merge(&mut fresh, item);
                out.push(fresh);
            }
            (None, true) => {}
        }
    }
    if let Some(order) = order {
        let rank = |o: &Value| {
            order
                .iter()
                .position(|x| x.get(key) == o.get(key))
                .unwrap_or(usize::MAX)
        };
        out.sort_by_key(rank);
    }
    Value::Array(out)
}

/// Run one write through `podlab api-write`; a failure is its Status.
async fn run(api: &Api, op: Op) -> Result<Outcome, Response<Body>> {
    let lab = api.plan().map_err(|e| http::internal(&e))?.lab.clone();
    let input = serde_json::to_vec(&op).map_err(|e| http::internal(&e.to_string()))?;
    let child = tokio::process::Command::new("/proc/self/exe")
        .args(["api-write", "--lab", &lab])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = child.map_err(|e| http::internal(&format!("start podlab api-write: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&input).await;
    }
    let out = tokio::time::timeout(WRITE_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            http::internal(&format!(
                "the write took more than {} s",
                WRITE_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| http::internal(&format!("podlab api-write: {e}")))?;
    let line = String::from_utf8_lossy(&out.stdout);
    let Ok(outcome) = serde_json::from_str::<Outcome>(line.trim()) else {
        let err = String::from_utf8_lossy(&out.stderr);
        let msg = err
            .lines()
            .find(|l| l.starts_with("error"))
            .unwrap_or(err.trim());
        // An exercise's rules refusing the write, the lab's lock, ...
        return Err(http::status_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            msg,
            None,
        ));
    };
    match outcome.reason.as_deref() {
        None => Ok(outcome),
        Some(reason) => {
            let code = match reason {
                "NotFound" => StatusCode::NOT_FOUND,
                "Invalid" => StatusCode::UNPROCESSABLE_ENTITY,
                "Conflict" => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Err(http::status_error(
                code,
                reason,
                outcome.message.trim(),
                None,
            ))
        }
    }
}

fn plural_of(r: &Resource) -> String {
    if r.group.is_empty() {
        r.plural.to_string()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

fn respond(code: StatusCode, v: &Value) -> Response<Body> {
    http::respond(code, v, "application/json")
}

fn bad_request(msg: &str) -> Response<Body> {
    http::status_error(StatusCode::BAD_REQUEST, "BadRequest", msg, None)
}

fn invalid(r: &Resource, name: &str, msg: &str) -> Response<Body> {
    http::status_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &format!("{} \"{name}\" is invalid: {msg}", r.kind),
        Some(json!({"name": name, "kind": r.kind, "group": r.group})),
    )
}

fn not_allowed(method: &Method, plural: &str) -> Response<Body> {
    http::status_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!("{method} is not served for {plural} in a lab; change the lab file and `podlab apply` it"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategic_merge_merges_containers_by_name_and_keeps_the_order() {
        let mut base = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "y"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "z"}]}});
        strategic_merge(&mut base, &patch);
        assert_eq!(
            base["spec"]["containers"][0]["ports"][0]["containerPort"],
            80
        );
        assert_eq!(base["spec"]["containers"][1]["image"], "z");
        assert!(base["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn strategic_merge_deletes_with_null_and_patch_delete() {
        let mut base = json!({"metadata": {"labels": {"a": "1", "b": "2"}},
                              "spec": {"ports": [{"port": 80}, {"port": 81}]}});
        let patch = json!({"metadata": {"labels": {"a": null}},
                           "spec": {"ports": [{"port": 81, "$patch": "delete"}]}});
        strategic_merge(&mut base, &patch);
        assert_eq!(base["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(base["spec"]["ports"], json!([{"port": 80}]));
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let mut base = json!({"spec": {"policyTypes": ["Ingress"], "ingress": [{"from": []}]}});
        let patch = json!({"spec": {"policyTypes": ["Ingress", "Egress"], "ingress": []}});
        strategic_merge(&mut base, &patch);
        assert_eq!(base["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(base["spec"]["ingress"], json!([]));
    }

    #[test]
    fn json_and_merge_patches_apply_by_content_type() {
        let base = json!({"metadata": {"name": "n", "labels": {"a": "1"}}});
        let merged = patch_value(
            base.clone(),
            br#"{"metadata":{"labels":{"b":"2"}}}"#,
            "application/merge-patch+json",
        )
        .expect("merge");
        assert_eq!(merged["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        let patched = patch_value(
            base.clone(),
            br#"[{"op":"remove","path":"/metadata/labels/a"}]"#,
            "application/json-patch+json",
        )
        .expect("json patch");
        assert_eq!(patched["metadata"]["labels"], json!({}));
        assert!(patch_value(base, b"{}", "text/plain").is_err());
    }

    #[test]
    fn a_served_namespace_becomes_the_manifest_a_user_writes() {
        let served = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "dev", "uid": "u", "resourceVersion": "1", "creationTimestamp": "t",
                         "labels": {"kubernetes.io/metadata.name": "dev", "team": "a"}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        assert_eq!(
            manifest_of(served),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev", "labels": {"team": "a"}}})
        );
    }
}
