//! The last built objects of each resource, shared by every list and
//! watch, with a short history of snapshots by resourceVersion.
//!
//! Before this, every watch rebuilt all objects of its resource on every
//! change and kept its own copy; a list's resourceVersion was a digest no
//! watch could start from. Now one build per change of the lab (the plan's
//! stamp or the daemon's change counter moved) makes a snapshot with the
//! next resourceVersion; an object whose content digest did not change
//! keeps its `Arc`, so a snapshot costs its map, not its objects. A watch
//! from a list's resourceVersion diffs that snapshot against the current
//! one (the gap is replayed, selectors included); one older than the
//! history is `410 Gone`, as kube-apiserver answers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::http::FileStamp;

/// Objects by `namespace/name`.
pub type Snapshot = Arc<BTreeMap<String, Arc<Value>>>;

/// Snapshots kept per resource: a watch opened within this many changes
/// of its list replays the gap; kubectl opens it milliseconds after.
const HISTORY: usize = 32;

/// What a snapshot was built from: the plan on disk and the daemon's
/// change counter (and, for nodes, how many node namespaces exist).
pub type Inputs = (FileStamp, u64, u64);

struct Kind {
    inputs: Inputs,
    history: VecDeque<(u64, Snapshot)>,
}

pub struct Store {
    kinds: Mutex<HashMap<String, Kind>>,
    /// The first resourceVersion of this daemon run: milliseconds since
    /// the epoch at start, so a version from an earlier run is older than
    /// any snapshot here and answers 410 (a client relists).
    base: u64,
}

/// Where a watch may start from.
#[derive(Debug, PartialEq)]
pub enum From {
    Snapshot(Snapshot),
    /// Older than the history, from another daemon run, or not a number.
    Gone {
        oldest: u64,
    },
}

impl Store {
    pub fn new() -> Store {
        let base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        Store {
            kinds: Mutex::new(HashMap::new()),
            base,
        }
    }

    /// The current snapshot of `kind`, built with `build` when `inputs`
    /// moved since the last one. Builds are serialized per store: the
    /// second caller after a change waits and takes the first's result.
    pub fn current(
        &self,
        kind: &str,
        inputs: Inputs,
        build: impl FnOnce() -> Result<Vec<Value>, String>,
    ) -> Result<(u64, Snapshot), String> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = kinds.get(kind) {
            if k.inputs == inputs {
                if let Some((rv, s)) = k.history.back() {
                    return Ok((*rv, s.clone()));
                }
            }
        }
        let objects = build()?;
        let k = kinds.entry(kind.to_string()).or_insert_with(|| Kind {
            inputs,
            history: VecDeque::new(),
        });
        k.inputs = inputs;
        let next = match k.history.back() {
            Some((rv, last)) => match reuse(last, objects) {
                None => return Ok((*rv, last.clone())),
                Some(s) => (rv + 1, s),
            },
            None => (
                self.base,
                Arc::new(objects.into_iter().map(keyed).collect()),
            ),
        };
        k.history.push_back(next.clone());
        while k.history.len() > HISTORY {
            k.history.pop_front();
        }
        Ok(next)
    }

    /// The snapshot a watch from `rv` starts from. Call after `current`.
    pub fn at(&self, kind: &str, rv: &str) -> From {
        let kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let history = kinds.get(kind).map(|k| &k.history);
        let oldest = history
            .and_then(|h| h.front())
            .map_or(self.base, |(v, _)| *v);
        let found = rv.parse::<u64>().ok().and_then(|want| {
            history?
                .iter()
                .find(|(v, _)| *v == want)
                .map(|(_, s)| s.clone())
        });
        match found {
            Some(s) => From::Snapshot(s),
            None => From::Gone { oldest },
        }
    }
}

pub fn key(o: &Value) -> String {
    format!(
        "{}/{}",
        o["metadata"]["namespace"].as_str().unwrap_or(""),
        o["metadata"]["name"].as_str().unwrap_or("")
    )
}

pub fn version(o: &Value) -> &str {
    o["metadata"]["resourceVersion"].as_str().unwrap_or("")
}

fn keyed(o: Value) -> (String, Arc<Value>) {
    (key(&o), Arc::new(o))
}

/// The new snapshot, sharing every unchanged object with `last`; `None`
/// when nothing changed (the same keys, the same versions).
fn reuse(last: &BTreeMap<String, Arc<Value>>, objects: Vec<Value>) -> Option<Snapshot> {
    let mut same = objects.len() == last.len();
    let next: BTreeMap<String, Arc<Value>> = objects
        .into_iter()
        .map(|o| {
            let k = key(&o);
            match last.get(&k) {
                Some(was) if version(was) == version(&o) => (k, was.clone()),
                _ => {
                    same = false;
                    (k, Arc::new(o))
                }
            }
        })
        .collect();
    (!same).then(|| Arc::new(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, rv: &str) -> Value {
        json!({"metadata": {"namespace": "default", "name": name, "resourceVersion": rv}})
    }

    fn stamp(n: u64) -> Inputs {
        ((None, 0), n, 0)
    }

    #[test]
    fn a_change_is_the_next_version_and_no_change_is_the_same() {
        let s = Store::new();
        let (v1, a) = s
            .current("pods", stamp(1), || Ok(vec![obj("a", "1")]))
            .unwrap();
        // Inputs unchanged: no build at all.
        let (again, _) = s
            .current("pods", stamp(1), || Err("built again".into()))
            .unwrap();
        assert_eq!(again, v1);
        // Inputs moved, content did not: the same version.
        let (same, _) = s
            .current("pods", stamp(2), || Ok(vec![obj("a", "1")]))
            .unwrap();
        assert_eq!(same, v1);
        let (v2, b) = s
            .current("pods", stamp(3), || Ok(vec![obj("a", "1"), obj("b", "1")]))
            .unwrap();
        assert_eq!(v2, v1 + 1);
        assert!(
            Arc::ptr_eq(&a["default/a"], &b["default/a"]),
            "unchanged object shared"
        );
        assert_eq!(s.at("pods", &v1.to_string()), From::Snapshot(a));
    }

    #[test]
    fn a_version_out_of_the_history_is_gone() {
        let s = Store::new();
        let (first, _) = s
            .current("pods", stamp(0), || Ok(vec![obj("a", "0")]))
            .unwrap();
        for i in 1..=HISTORY as u64 + 1 {
            s.current("pods", stamp(i), || Ok(vec![obj("a", &i.to_string())]))
                .unwrap();
        }
        assert!(
            matches!(s.at("pods", &first.to_string()), From::Gone { oldest } if oldest > first)
        );
        assert!(matches!(s.at("pods", "123abc"), From::Gone { .. }));
        assert!(matches!(s.at("pods", "1"), From::Gone { .. }));
        assert!(matches!(
            s.at("services", &first.to_string()),
            From::Gone { .. }
        ));
    }
}
