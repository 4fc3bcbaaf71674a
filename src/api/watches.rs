//! `?watch=1`: a chunked stream of `{"type":..,"object":..}` lines, one
//! per change, as the API server sends them (`kubectl get -w`, informers).
//!
//! Every watch follows the shared store (`store.rs`): on a change of the
//! lab (the daemon's change counter moved, or the plan on disk was
//! rewritten) the first watch to look builds the next snapshot once and
//! each watch sends the difference between the snapshot it last sent and
//! the new one, filtered by its selectors: ADDED, MODIFIED (the object's
//! content digest differs), DELETED (the object as last seen). A watch
//! from resourceVersion "0" or none starts with an ADDED per object; one
//! from a list's resourceVersion starts from that list's snapshot, so what
//! changed in between is sent first; one from a version the store no
//! longer has gets an ERROR event with a 410 Expired Status, as
//! kube-apiserver sends, and the client lists again.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::http::{status_body, Api, Body};
use super::objects::Resource;
use super::select::{FieldSelector, LabelSelector};
use super::store::{self, Snapshot};
use super::tables::{self, Include};

/// How often the plan on disk is looked at (one `stat`): the bound on how
/// late an `apply` or `scale` that does not touch the daemon's table is
/// seen. `delete` and pod changes wake watches at once through the
/// daemon's change counter.
const PLAN_POLL: Duration = Duration::from_millis(10);
/// Kubernetes ends a watch after a random 30 to 60 minutes unless the
/// client asks for less; clients then watch again.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// kube-apiserver sends a bookmark about once a minute to a watch that
/// asked for them (`allowWatchBookmarks`).
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// Where the watch starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// resourceVersion "0" or none: an ADDED per object first.
    All,
    /// A list's resourceVersion: what changed since it, then live.
    At(String),
}

impl Start {
    pub fn parse(rv: Option<&str>) -> Start {
        match rv {
            None | Some("" | "0") => Start::All,
            Some(v) => Start::At(v.to_string()),
        }
    }
}

/// What one watch sends: which objects, in which form.
pub struct Spec {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `Some(version)`: each event's object is a one-row Table.
    pub table: Option<&'static str>,
    pub include: Include,
    pub start: Start,
    pub bookmarks: bool,
    pub timeout: Duration,
}

type Objects = BTreeMap<String, Arc<Value>>;

impl Spec {
    pub fn timeout_from(q: Option<&str>) -> Duration {
        q.and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
    }

    fn wanted(&self, snapshot: &Snapshot) -> Objects {
        snapshot
            .iter()
            .filter(|(_, o)| {
                self.namespace
                    .as_deref()
                    .is_none_or(|ns| o["metadata"]["namespace"] == ns)
            })
            .filter(|(_, o)| self.labels.matches(&o["metadata"]["labels"]))
            .filter(|(_, o)| self.fields.matches(o))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect()
    }

    fn event(&self, kind: &str, o: &Value) -> Bytes {
        let object = match self.table {
            Some(v) => {
                let mut t = tables::table(
                    self.resource,
                    std::slice::from_ref(o),
                    self.include,
                    SystemTime::now(),
                );
                t["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
                t
            }
            None => o.clone(),
        };
        line(kind, &object)
    }
}

/// One event line, `type` first as the API server writes it (a JSON map
/// here is sorted), so that a reader of the raw stream sees it at once.
fn line(kind: &str, object: &Value) -> Bytes {
    let object = serde_json::to_string(object).unwrap_or_default();
    Bytes::from(format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n"))
}

/// A BOOKMARK: only the kind and the resourceVersion, as the API server
/// sends it; a client watches again from there instead of relisting.
pub fn bookmark(r: &Resource, rv: u64) -> Bytes {
    line(
        "BOOKMARK",
        &json!({
            "kind": r.kind,
            "apiVersion": r.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
        }),
    )
}

/// The ERROR event for a version the store no longer has, with
/// kube-apiserver's words and a 410 Expired Status.
pub fn gone(asked: &str, oldest: u64) -> Bytes {
    let msg = format!("too old resource version: {asked} ({oldest})");
    line(
        "ERROR",
        &status_body(StatusCode::GONE, "Expired", &msg, None),
    )
}

/// The events that turn `old` into `new`, in key order: changes first,
/// then deletions.
/// An object made again under the same name (another uid: a
/// StatefulSet's pod brought back) is the old one DELETED, then the new
/// one ADDED, as kube-apiserver reports two objects.
pub fn diff<'a>(old: &'a Objects, new: &'a Objects) -> Vec<(&'static str, &'a Value)> {
    let uid = |o: &Value| o["metadata"]["uid"].as_str().map(str::to_string);
    let mut events = Vec::new();
    for (k, o) in new.iter() {
        match old.get(k) {
            None => events.push(("ADDED", &**o)),
            Some(was) if uid(was) != uid(o) => {
                events.push(("DELETED", &**was));
                events.push(("ADDED", &**o));
            }
            Some(was) if store::version(was) != store::version(o) => {
                events.push(("MODIFIED", &**o))
            }
            Some(_) => {}
        }
    }
    events.extend(
        old.iter()
            .filter(|(k, _)| !new.contains_key(*k))
            .map(|(_, o)| ("DELETED", &**o)),
    );
    events
}

/// Start the watch: the response streams until the client leaves, the
/// timeout, or the daemon stops.
pub fn serve(api: Arc<Api>, spec: Spec) -> Result<Response<Body>, String> {
    let (rv, now) = api.snapshot(spec.resource)?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let start = match &spec.start {
        Start::All => Some(Objects::new()),
        Start::At(v) => match api.snapshot_at(spec.resource, v) {
            store::From::Snapshot(s) => Some(spec.wanted(&s)),
            store::From::Gone { oldest } => {
                // The stream is one ERROR event: the channel holds it.
                let _ = tx.try_send(gone(v, oldest));
                None
            }
        },
    };
    if let Some(last) = start {
        tokio::spawn(run(api, spec, last, (rv, now), tx));
    } else {
        drop(tx);
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// Send what turns `last` into `now`; false when the client left.
async fn send(spec: &Spec, last: &Objects, now: &Objects, tx: &mpsc::Sender<Bytes>) -> bool {
    let events: Vec<Bytes> = diff(last, now)
        .into_iter()
        .map(|(kind, o)| spec.event(kind, o))
        .collect();
    for b in events {
        if tx.send(b).await.is_err() {
            return false;
        }
    }
    true
}

async fn run(
    api: Arc<Api>,
    spec: Spec,
    mut last: Objects,
    (mut rv, first): (u64, Snapshot),
    tx: mpsc::Sender<Bytes>,
) {
    // The initial ADDED events, or the gap since the list's version.
    let now = spec.wanted(&first);
    if !send(&spec, &last, &now, &tx).await {
        return;
    }
    last = now;
    let deadline = Instant::now() + spec.timeout;
    let mut next_bookmark = Instant::now() + BOOKMARK_EVERY;
    let mut changes = api.changes();
    let mut stamp = api.plan_stamp();
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(PLAN_POLL) => {
                if spec.bookmarks && Instant::now() >= next_bookmark {
                    next_bookmark = Instant::now() + BOOKMARK_EVERY;
                    if tx.send(bookmark(spec.resource, rv)).await.is_err() {
                        return;
                    }
                }
                let now = api.plan_stamp();
                if now == stamp {
                    if tx.is_closed() || Instant::now() >= deadline {
                        return;
                    }
                    continue;
                }
                stamp = now;
            }
        }
        let (v, snapshot) = match api.snapshot(spec.resource) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("watch {}: {e}", spec.resource.plural);
                continue;
            }
        };
        if v == rv {
            continue;
        }
        rv = v;
        let now = spec.wanted(&snapshot);
        if !send(&spec, &last, &now, &tx).await {
            return;
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, rv: &str) -> (String, Arc<Value>) {
        let o = json!({"metadata": {"namespace": "default", "name": name, "resourceVersion": rv}});
        (store::key(&o), Arc::new(o))
    }

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn a_pod_made_again_under_its_name_is_deleted_then_added() {
        let mut was = json!({"metadata": {"namespace": "default", "name": "web-0", "uid": "u1", "resourceVersion": "1"}});
        let old: Objects = [(store::key(&was), Arc::new(was.clone()))].into();
        was["metadata"]["uid"] = json!("u2");
        let new: Objects = [(store::key(&was), Arc::new(was))].into();
        let got: Vec<(&str, &str)> = diff(&old, &new)
            .into_iter()
            .map(|(k, o)| (k, o["metadata"]["uid"].as_str().unwrap()))
            .collect();
        assert_eq!(got, [("DELETED", "u1"), ("ADDED", "u2")]);
    }

    #[test]
    fn diff_names_each_change_once() {
        let old: Objects = [obj("a", "1"), obj("b", "1"), obj("c", "1")].into();
        let new: Objects = [obj("a", "1"), obj("b", "2"), obj("d", "1")].into();
        let got: Vec<(&str, &str)> = diff(&old, &new)
            .into_iter()
            .map(|(k, o)| (k, o["metadata"]["name"].as_str().unwrap()))
            .collect();
        assert_eq!(got, [("MODIFIED", "b"), ("ADDED", "d"), ("DELETED", "c")]);
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn timeout_is_the_clients_or_half_an_hour() {
        assert_eq!(Spec::timeout_from(Some("5")), Duration::from_secs(5));
        assert_eq!(Spec::timeout_from(Some("x")), DEFAULT_TIMEOUT);
        assert_eq!(Spec::timeout_from(None), DEFAULT_TIMEOUT);
    }

    #[test]
    fn start_from_zero_or_none_is_all_else_the_version() {
        assert_eq!(Start::parse(None), Start::All);
        assert_eq!(Start::parse(Some("0")), Start::All);
        assert_eq!(Start::parse(Some("17")), Start::At("17".into()));
    }

    #[test]
    fn an_expired_version_is_an_error_event_with_a_410_status() {
        let e = parse(&gone("5", 9));
        assert_eq!(e["type"], "ERROR");
        assert_eq!(e["object"]["kind"], "Status");
        assert_eq!(e["object"]["code"], 410);
        assert_eq!(e["object"]["reason"], "Expired");
        assert_eq!(e["object"]["message"], "too old resource version: 5 (9)");
    }

    #[test]
    fn a_bookmark_carries_only_kind_and_version() {
        let b = parse(&bookmark(&super::super::objects::PODS, 42));
        assert_eq!(b["type"], "BOOKMARK");
        assert_eq!(b["object"]["kind"], "Pod");
        assert_eq!(b["object"]["apiVersion"], "v1");
        assert_eq!(b["object"]["metadata"], json!({"resourceVersion": "42"}));
    }
}
