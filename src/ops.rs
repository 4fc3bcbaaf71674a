//! Changes to a running lab, shared by the CLI (`apply`, `scale`,
//! `delete`) and the lab's Kubernetes API (`kubectl apply`, `scale`,
//! `delete`, `label`): one path, so that both ways change the lab alike.
//!
//! A running lab is its saved file (`state::load_source`) with the edits
//! made since (`state::Edits`): replica counts, deletions, the manifests
//! written through the API, and how often each Deployment replica's pod
//! was replaced. Every change edits that, plans it against the running
//! plan, and reconciles the kernel and the daemon with the result
//! (`reconcile::apply`); the edits are saved only once that worked.

use serde_json::Value;

use crate::lab::{self, LabError, LabFile};
use crate::{plan, reconcile, state};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lab {lab} has no saved lab file: {source}")]
    NoSource {
        lab: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Lab(#[from] LabError),
    #[error("lab {lab}: {what} cannot change while the lab runs")]
    Incompatible { lab: String, what: String },
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
    #[error(transparent)]
    Kernel(#[from] crate::kernel::Error),
    #[error("{kind} {name} not found in namespace {namespace}")]
    NotFound {
        kind: String,
        namespace: String,
        name: String,
        /// The names of that kind in that namespace, for "did you mean".
        known: Vec<String>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("lab {lab}: {what}: {source}")]
    State {
        lab: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// The running lab's file as last applied, with the edits made since.
pub fn running_file(lab: &str) -> Result<(LabFile, state::Edits)> {
    let (origin, text) = state::load_source(lab).map_err(|source| Error::NoSource {
        lab: lab.to_string(),
        source,
    })?;
    let edits = state::load_edits(lab).map_err(|source| Error::State {
        lab: lab.to_string(),
        what: "cannot read its edits",
        source,
    })?;
    let file = file_with(lab, &origin, &text, &edits)?;
    Ok((file, edits))
}

fn file_with(lab: &str, origin: &str, text: &str, edits: &state::Edits) -> Result<LabFile> {
    let mut file = lab::parse_with(origin, text, &edits.objects)?;
    // The lab's own name, which `exercise start --as` may have changed.
    file.lab.name = lab.to_string();
    edit(&mut file, edits);
    Ok(file)
}

/// Lay `scale`, `delete` and replacement edits over a decoded lab file
/// (the API's manifests are laid over it when it is parsed).
pub fn edit(file: &mut LabFile, edits: &state::Edits) {
    for d in &mut file.deployments {
        let key = format!("{}/{}", d.namespace, d.name);
        if let Some(n) = edits.replicas.get(&key) {
            d.replicas = *n;
        }
        let prefix = format!("{key}/");
        d.replaced = edits
            .generations
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, g)| Some((k[prefix.len()..].parse().ok()?, *g)))
            .collect();
    }
    file.services.retain(|s| {
        !edits
            .deleted_services
            .contains(&format!("{}/{}", s.namespace, s.name))
    });
    file.policies.retain(|p| {
        !edits
            .deleted_policies
            .contains(&format!("{}/{}", p.namespace, p.name))
    });
}

/// Plan `file` against the running lab: the plan to apply.
pub fn plan(lab: &str, file: &LabFile) -> Result<plan::Plan> {
    let current = state::load(lab).map_err(|source| Error::State {
        lab: lab.to_string(),
        what: "cannot read its plan",
        source,
    })?;
    let desired = plan::build_with(file, Some(&current))?;
    if let Some(what) = reconcile::incompatible(&current, &desired) {
        return Err(Error::Incompatible {
            lab: lab.to_string(),
            what,
        });
    }
    Ok(desired)
}

/// Plan and apply `file`.
pub fn apply(lab: &str, file: &LabFile) -> Result<reconcile::Report> {
    let desired = plan(lab, file)?;
    Ok(reconcile::apply(lab, &desired)?)
}

/// Apply the running file with `edits` instead of the saved ones, and
/// save them once the lab runs them.
pub fn apply_edits(lab: &str, edits: &state::Edits) -> Result<reconcile::Report> {
    let (origin, text) = state::load_source(lab).map_err(|source| Error::NoSource {
        lab: lab.to_string(),
        source,
    })?;
    let file = file_with(lab, &origin, &text, edits)?;
    let report = apply(lab, &file)?;
    save(lab, edits)?;
    Ok(report)
}

fn save(lab: &str, edits: &state::Edits) -> Result<()> {
    state::save_edits(lab, edits).map_err(|source| Error::State {
        lab: lab.to_string(),
        what: "cannot save its edits",
        source,
    })
}

/// `scale deployment NAME --replicas N`.
pub fn scale(lab: &str, namespace: &str, name: &str, replicas: u32) -> Result<reconcile::Report> {
    let (file, mut edits) = running_file(lab)?;
    if !file
        .deployments
        .iter()
        .any(|d| d.namespace == namespace && d.name == name)
    {
        return Err(not_found(
            "deployment",
            namespace,
            name,
            file.deployments
                .iter()
                .filter(|d| d.namespace == namespace)
                .map(|d| d.name.clone()),
        ));
    }
    edits
        .replicas
        .insert(format!("{namespace}/{name}"), replicas);
    apply_edits(lab, &edits)
}

fn not_found(
    kind: &str,
    namespace: &str,
    name: &str,
    known: impl Iterator<Item = String>,
) -> Error {
    Error::NotFound {
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        known: known.collect(),
    }
}

/// What became of a deleted pod.
#[derive(Debug)]
pub struct Replaced {
    /// The pod made in its place by its Deployment, with its address.
    pub by: Option<(String, std::net::Ipv4Addr)>,
    pub report: reconcile::Report,
}

/// Delete a controller's pod as its controller sees it: a Deployment's
/// replica comes back at once as a new pod, with a new name and a new
/// address; a StatefulSet's (or DaemonSet's, ReplicaSet's) under its own
/// name, with a new address. `None` when no controller owns the pod (the
/// caller deletes it for good).
pub fn replace_pod(lab: &str, namespace: &str, name: &str) -> Result<Option<Replaced>> {
    let current = state::load(lab).map_err(|source| Error::State {
        lab: lab.to_string(),
        what: "cannot read its plan",
        source,
    })?;
    let Some(pod) = current
        .pods
        .iter()
        .find(|p| p.namespace == namespace && p.name == name)
    else {
        return Err(not_found(
            "pod",
            namespace,
            name,
            current
                .pods
                .iter()
                .filter(|p| p.namespace == namespace)
                .map(|p| p.name.clone()),
        ));
    };
    // The cluster DNS pod is podlab's, not a Deployment of the file:
    // deleting it takes DNS away until `apply` (lab 06 breaks DNS so).
    let Some(owner) = pod.owner.clone().filter(|_| pod.role != plan::PodRole::Dns) else {
        return Ok(None);
    };
    let (file, mut edits) = running_file(lab)?;
    let deployment = file
        .deployments
        .iter()
        .find(|d| d.namespace == namespace && d.name == owner)
        .filter(|_| pod.owner_kind.as_deref().is_none_or(|k| k == "ReplicaSet"));
    let Some(index) = deployment.and_then(|d| replica_index(d, name)) else {
        // A StatefulSet's, DaemonSet's or ReplicaSet's pod: it goes, and
        // its controller makes it again under its own name.
        return recreate_pod(lab, namespace, name).map(Some);
    };
    *edits
        .generations
        .entry(format!("{namespace}/{owner}/{index}"))
        .or_default() += 1;
    let before: std::collections::HashSet<&str> =
        current.pods.iter().map(|p| p.name.as_str()).collect();
    let (origin, text) = state::load_source(lab).map_err(|source| Error::NoSource {
        lab: lab.to_string(),
        source,
    })?;
    let file = file_with(lab, &origin, &text, &edits)?;
    let desired = plan(lab, &file)?;
    let by = desired
        .pods
        .iter()
        .find(|p| {
            p.namespace == namespace
                && p.owner.as_deref() == Some(owner.as_str())
                && !before.contains(p.name.as_str())
        })
        .map(|p| (p.name.clone(), p.ip));
    let report = reconcile::apply(lab, &desired)?;
    save(lab, &edits)?;
    Ok(Some(Replaced { by, report }))
}

fn recreate_pod(lab: &str, namespace: &str, name: &str) -> Result<Replaced> {
    delete_lone_pod(lab, namespace, name)?;
    let (file, _) = running_file(lab)?;
    let desired = plan(lab, &file)?;
    let by = desired
        .pods
        .iter()
        .find(|p| p.namespace == namespace && p.name == name)
        .map(|p| (p.name.clone(), p.ip));
    let report = reconcile::apply(lab, &desired)?;
    Ok(Replaced { by, report })
}

/// Which replica of `d` the pod `name` is, under the names it has now.
fn replica_index(d: &lab::Deployment, name: &str) -> Option<u32> {
    let template = serde_json::to_string(&(&d.template_labels, &d.template)).unwrap_or_default();
    let hash = plan::names::fnv1a(&[&template]);
    (0..d.replicas).find(|i| {
        let generation = d.replaced.get(i).copied().unwrap_or(0);
        plan::names::replacement_pod_name(&d.name, hash, *i, generation) == name
    })
}

/// Write one manifest through the API (create, replace, patch): it
/// replaces the file's object of the same kind, namespace and name, or
/// joins the lab. Checked as the file is; a bad one changes nothing.
pub fn put_object(lab: &str, manifest: Value) -> Result<reconcile::Report> {
    let key = manifest_key(&manifest)?;
    let (_, mut edits) = running_file(lab)?;
    edits.objects.insert(key, Some(manifest));
    apply_edits(lab, &edits)
}

/// Delete one object by kind, namespace and name.
pub fn delete_object(
    lab: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<reconcile::Report> {
    let key = lab::object_key(kind, namespace, name);
    let (_, mut edits) = running_file(lab)?;
    edits.objects.insert(key, None);
    apply_edits(lab, &edits)
}

/// `Kind/namespace/name` of a manifest, or why it has none.
pub fn manifest_key(m: &Value) -> Result<String> {
    let kind = m
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Invalid("the object has no kind".into()))?;
    let meta = m.get("metadata");
    let name = meta
        .and_then(|x| x.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::Invalid(format!("the {kind} has no metadata.name")))?;
    let ns = meta
        .and_then(|x| x.get("namespace"))
        .and_then(Value::as_str);
    Ok(lab::object_key(kind, ns, name))
}

/// A write the lab's API asks for. The daemon does not change the
/// kernel itself: it runs `podlab api-write` with one of these on stdin,
/// so that a write takes the lab's lock, passes an exercise's rules and
/// reconciles exactly as `podlab apply` does.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    Put {
        manifest: Value,
    },
    Delete {
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    DeletePod {
        namespace: String,
        name: String,
    },
    Scale {
        namespace: String,
        name: String,
        replicas: u32,
    },
}

/// What a write did, as the API answers it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// A Kubernetes `Status` reason when it failed: `NotFound`, `Invalid`,
    /// `Conflict`, `InternalError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: String,
    /// The pod made in place of a deleted one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// Run one API write on `lab`.
pub fn run(lab: &str, op: Op) -> Outcome {
    let done = |report: reconcile::Report| Outcome {
        reason: (!report.failed.is_empty()).then(|| "InternalError".to_string()),
        message: reconcile::describe(&report),
        replaced_by: None,
    };
    let result = match op {
        Op::Put { manifest } => put_object(lab, manifest).map(done),
        Op::Delete {
            kind,
            namespace,
            name,
        } => delete_object(lab, &kind, namespace.as_deref(), &name).map(done),
        Op::Scale {
            namespace,
            name,
            replicas,
        } => scale(lab, &namespace, &name, replicas).map(done),
        Op::DeletePod { namespace, name } => match replace_pod(lab, &namespace, &name) {
            Ok(Some(r)) => Ok(Outcome {
                replaced_by: r.by.map(|(n, _)| n),
                ..done(r.report)
            }),
            Ok(None) => delete_lone_pod(lab, &namespace, &name).map(|()| Outcome {
                reason: None,
                message: format!("pod {namespace}/{name} deleted"),
                replaced_by: None,
            }),
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(|e| Outcome {
        reason: Some(
            match &e {
                Error::NotFound { .. } => "NotFound",
                Error::Lab(_) | Error::Invalid(_) | Error::Incompatible { .. } => "Invalid",
                _ => "InternalError",
            }
            .to_string(),
        ),
        message: crate::error_chain(&e),
        replaced_by: None,
    })
}

/// A pod no controller owns goes for good, as the kubelet removes one:
/// its endpoints leave every service at once, its processes stop, its
/// namespace goes. It stays gone until the lab file is applied again.
pub fn delete_lone_pod(lab: &str, namespace: &str, name: &str) -> Result<()> {
    use crate::kernel::{services, teardown};
    let mut plan = state::load(lab).map_err(|source| Error::State {
        lab: lab.to_string(),
        what: "cannot read its plan",
        source,
    })?;
    let Some(i) = plan
        .pods
        .iter()
        .position(|p| p.namespace == namespace && p.name == name)
    else {
        return Err(not_found(
            "pod",
            namespace,
            name,
            plan.pods
                .iter()
                .filter(|p| p.namespace == namespace)
                .map(|p| p.name.clone()),
        ));
    };
    let pod = plan.pods.remove(i);
    for svc in &mut plan.services {
        svc.endpoints
            .retain(|e| !(e.namespace == pod.namespace && e.pod == pod.name));
    }
    let json = serde_json::to_vec_pretty(&plan).map_err(|e| Error::Invalid(e.to_string()))?;
    state::write_atomic(&state::plan_path_of(lab), &json).map_err(|source| Error::State {
        lab: lab.to_string(),
        what: "cannot save its plan",
        source,
    })?;
    // The daemon stops serving the pod and resyncs every node's rules with
    // what it knows of readiness; without a daemon, every pod left counts
    // as ready.
    let dir = state::dir_of(lab);
    let wait = std::time::Duration::from_secs(5);
    if crate::runtime::forget(&dir, &pod.namespace, &pod.name, wait).is_err() {
        services::sync(&plan, &std::collections::HashSet::new(), &[])?;
    }
    services::flush_udp(&plan, &[pod.ip]);
    if let Some(e) = teardown::remove_namespaces(std::slice::from_ref(&pod.netns))
        .into_iter()
        .next()
    {
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t}
spec:
  nodes: [{name: node-1}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, ports: [{containerPort: 80}]}]}
";

    fn parsed(edits: &state::Edits) -> LabFile {
        file_with("t", "t.yaml", LAB, edits).expect("lab")
    }

    #[test]
    fn a_replaced_replica_gets_a_new_name_and_a_new_address() {
        let first = plan::build(&parsed(&state::Edits::default())).expect("plan");
        let mut edits = state::Edits::default();
        edits.generations.insert("default/web/0".into(), 1);
        let file = parsed(&edits);
        assert_eq!(file.deployments[0].replaced.get(&0), Some(&1));
        let second = plan::build_with(&file, Some(&first)).expect("plan");
        let names = |p: &plan::Plan| -> Vec<String> {
            p.pods
                .iter()
                .filter(|x| x.owner.is_some())
                .map(|x| x.name.clone())
                .collect()
        };
        let (a, b) = (names(&first), names(&second));
        assert_ne!(a[0], b[0], "replica 0 is a new pod");
        assert_eq!(a[1], b[1], "replica 1 is untouched");
        let ip = |p: &plan::Plan, n: &str| p.pods.iter().find(|x| x.name == n).map(|x| x.ip);
        let old = ip(&first, &a[0]).expect("old ip");
        let new = ip(&second, &b[0]).expect("new ip");
        assert_ne!(
            old, new,
            "the new pod does not take its predecessor's address"
        );
        assert!(second.pods.iter().all(|p| p.ip != old));
        assert_eq!(replica_index(&file.deployments[0], &b[0]), Some(0));
        assert_eq!(replica_index(&file.deployments[0], &a[0]), None);
    }

    #[test]
    fn api_manifests_replace_and_delete_the_files_objects() {
        let mut edits = state::Edits::default();
        let policy = serde_json::json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
        });
        edits
            .objects
            .insert(manifest_key(&policy).expect("key"), Some(policy));
        edits.objects.insert("Deployment/default/web".into(), None);
        let file = parsed(&edits);
        assert_eq!(file.policies.len(), 1);
        assert!(file.deployments.is_empty());
    }

    #[test]
    fn a_bad_manifest_is_refused_with_the_decoders_message() {
        let mut edits = state::Edits::default();
        let bad = serde_json::json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny"},
            "spec": {"podSelectr": {}}
        });
        edits
            .objects
            .insert(manifest_key(&bad).expect("key"), Some(bad));
        let e = file_with("t", "t.yaml", LAB, &edits).expect_err("refused");
        assert!(e.to_string().contains("podSelectr"), "{e}");
    }

    #[test]
    fn keys_follow_scope() {
        assert_eq!(lab::object_key("Namespace", Some("x"), "a"), "Namespace//a");
        assert_eq!(lab::object_key("Pod", None, "a"), "Pod/default/a");
        assert!(manifest_key(&serde_json::json!({"kind": "Pod"})).is_err());
    }
}
