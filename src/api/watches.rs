//! `?watch=1`: a chunked stream of `{"type":..,"object":..}` lines, one
//! per change, as the API server sends them (`kubectl get -w`, informers).
//!
//! There is no store with a history yet: each watch keeps the objects it
//! last sent and, on every change of the lab (the plan on disk rewritten,
//! or the daemon's table changed), recomputes them and sends the
//! difference: ADDED, MODIFIED (the resourceVersion, a digest of the
//! content, differs) and DELETED (with the object as last seen). A watch
//! from resourceVersion "0" or none starts with an ADDED per object, as
//! Kubernetes' does; one from a list's resourceVersion starts from now
//! (what changed between the list and the watch is not replayed: inferred
//! to be rare, kubectl opens the watch right after its list).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::http::{Api, Body};
use super::objects::Resource;
use super::select::{FieldSelector, LabelSelector};
use super::tables::{self, Include};

/// How often the plan on disk is looked at (one `stat`): the bound on how
/// late an `apply`, `delete` or `scale` is seen, besides the rebuild.
const PLAN_POLL: Duration = Duration::from_millis(10);
/// Kubernetes ends a watch after a random 30 to 60 minutes unless the
/// client asks for less; clients then watch again.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What one watch sends: which objects, in which form.
pub struct Spec {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `Some(version)`: each event's object is a one-row Table.
    pub table: Option<&'static str>,
    pub include: Include,
    /// Send an ADDED per object first.
    pub initial: bool,
    pub timeout: Duration,
}

impl Spec {
    pub fn timeout_from(q: Option<&str>) -> Duration {
        q.and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
    }

    fn wanted(&self, objects: Vec<Value>) -> BTreeMap<String, Value> {
        objects
            .into_iter()
            .filter(|o| {
                self.namespace
                    .as_deref()
                    .is_none_or(|ns| o["metadata"]["namespace"] == ns)
            })
            .filter(|o| self.labels.matches(&o["metadata"]["labels"]))
            .filter(|o| self.fields.matches(o))
            .map(|o| (key(&o), o))
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
        // `type` first, as the API server writes it (a JSON map here is
        // sorted), so that a reader of the raw stream sees it at once.
        let object = serde_json::to_string(&object).unwrap_or_default();
        Bytes::from(format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n"))
    }
}

fn key(o: &Value) -> String {
    format!(
        "{}/{}",
        o["metadata"]["namespace"].as_str().unwrap_or(""),
        o["metadata"]["name"].as_str().unwrap_or("")
    )
}

fn version(o: &Value) -> &str {
    o["metadata"]["resourceVersion"].as_str().unwrap_or("")
}

/// The events that turn `old` into `new`, in key order: changes first,
/// then deletions.
pub fn diff<'a>(
    old: &'a BTreeMap<String, Value>,
    new: &'a BTreeMap<String, Value>,
) -> Vec<(&'static str, &'a Value)> {
    let changed = new.iter().filter_map(|(k, o)| match old.get(k) {
        None => Some(("ADDED", o)),
        Some(was) if version(was) != version(o) => Some(("MODIFIED", o)),
        Some(_) => None,
    });
    let gone = old
        .iter()
        .filter(|(k, _)| !new.contains_key(*k))
        .map(|(_, o)| ("DELETED", o));
    changed.chain(gone).collect()
}

/// Start the watch: the response streams until the client leaves, the
/// timeout, or the daemon stops.
pub fn serve(api: Arc<Api>, spec: Spec) -> Result<Response<Body>, String> {
    let first = spec.wanted(api.objects(spec.resource)?);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let initial: Vec<Bytes> = if spec.initial {
        first.values().map(|o| spec.event("ADDED", o)).collect()
    } else {
        Vec::new()
    };
    tokio::spawn(run(api, spec, first, initial, tx));
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

async fn run(
    api: Arc<Api>,
    spec: Spec,
    mut last: BTreeMap<String, Value>,
    initial: Vec<Bytes>,
    tx: mpsc::Sender<Bytes>,
) {
    for b in initial {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    let deadline = Instant::now() + spec.timeout;
    let mut changes = api.changes();
    let mut stamp = api.plan_stamp();
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(PLAN_POLL) => {
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
        let now = match api.objects(spec.resource) {
            Ok(o) => spec.wanted(o),
            Err(e) => {
                tracing::warn!("watch {}: {e}", spec.resource.plural);
                continue;
            }
        };
        let events: Vec<Bytes> = diff(&last, &now)
            .into_iter()
            .map(|(kind, o)| spec.event(kind, o))
            .collect();
        for b in events {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, rv: &str) -> (String, Value) {
        let o = json!({"metadata": {"namespace": "default", "name": name, "resourceVersion": rv}});
        (key(&o), o)
    }

    #[test]
    fn diff_names_each_change_once() {
        let old: BTreeMap<_, _> = [obj("a", "1"), obj("b", "1"), obj("c", "1")].into();
        let new: BTreeMap<_, _> = [obj("a", "1"), obj("b", "2"), obj("d", "1")].into();
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
}
