//! Kinds a lab accepts and keeps for its Kubernetes API, but that shape
//! nothing in the network: RBAC, ConfigMaps, Secrets, autoscaling,
//! quotas, Ingress (stored, not served: podlab runs no ingress
//! controller), CustomResourceDefinitions and the objects of the CRDs the
//! file defines.
//!
//! A stored object is kept as written (its JSON value) with its metadata
//! checked; its spec is not read, so a field podlab does not know inside
//! it is no error. The kinds that shape the network (Pod, Deployment,
//! Service, NetworkPolicy, Namespace) stay strict in `decode`.

use serde::Serialize;

use super::types::Pos;

/// One stored kind: what the file writes and what the API serves it as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredKind {
    pub kind: &'static str,
    /// `""` for the core group.
    pub group: &'static str,
    /// The versions a file may write; the first is the one served.
    pub versions: &'static [&'static str],
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    /// As kube-apiserver gives them, so `kubectl get sa` works.
    pub short_names: &'static [&'static str],
    /// How the name is checked.
    pub names: NameRule,
}

/// Kubernetes' own name validation per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain: most kinds.
    Subdomain,
    /// A path segment (not `.` or `..`, no `/` or `%`): RBAC kinds, whose
    /// names are often `system:aggregate-to-edit`.
    PathSegment,
    /// `<spec.names.plural>.<spec.group>`: checked against the spec.
    Crd,
}

// A constructor so that the table below reads one kind a line.
#[allow(clippy::too_many_arguments)]
const fn k(
    kind: &'static str,
    group: &'static str,
    versions: &'static [&'static str],
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    names: NameRule,
) -> StoredKind {
    StoredKind {
        kind,
        group,
        versions,
        plural,
        singular,
        namespaced,
        short_names,
        names,
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";
use NameRule::{PathSegment, Subdomain};

#[rustfmt::skip]
pub const STORED_KINDS: &[StoredKind] = &[
    k("ServiceAccount", "", &["v1"], "serviceaccounts", "serviceaccount", true, &["sa"], Subdomain),
    k("ConfigMap", "", &["v1"], "configmaps", "configmap", true, &["cm"], Subdomain),
    k("Secret", "", &["v1"], "secrets", "secret", true, &[], Subdomain),
    k("ResourceQuota", "", &["v1"], "resourcequotas", "resourcequota", true, &["quota"], Subdomain),
    k("LimitRange", "", &["v1"], "limitranges", "limitrange", true, &["limits"], Subdomain),
    k("Role", RBAC, &["v1"], "roles", "role", true, &[], PathSegment),
    k("RoleBinding", RBAC, &["v1"], "rolebindings", "rolebinding", true, &[], PathSegment),
    k("ClusterRole", RBAC, &["v1"], "clusterroles", "clusterrole", false, &[], PathSegment),
    k("ClusterRoleBinding", RBAC, &["v1"], "clusterrolebindings", "clusterrolebinding", false, &[], PathSegment),
    k("PodDisruptionBudget", "policy", &["v1"], "poddisruptionbudgets", "poddisruptionbudget", true, &["pdb"], Subdomain),
    // v1 is still written by many charts; both are kept as written and
    // served under v2 (see docs/notes-h2.md).
    k("HorizontalPodAutoscaler", "autoscaling", &["v2", "v1"], "horizontalpodautoscalers", "horizontalpodautoscaler", true, &["hpa"], Subdomain),
    k("PriorityClass", "scheduling.k8s.io", &["v1"], "priorityclasses", "priorityclass", false, &["pc"], Subdomain),
    k("Ingress", "networking.k8s.io", &["v1"], "ingresses", "ingress", true, &["ing"], Subdomain),
    k("IngressClass", "networking.k8s.io", &["v1"], "ingressclasses", "ingressclass", false, &[], Subdomain),
    k("CustomResourceDefinition", "apiextensions.k8s.io", &["v1"], "customresourcedefinitions", "customresourcedefinition", false, &["crd", "crds"], NameRule::Crd),
];

pub fn stored_kind(kind: &str) -> Option<&'static StoredKind> {
    STORED_KINDS.iter().find(|k| k.kind == kind)
}

/// A kind defined by a CustomResourceDefinition of the lab file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomKind {
    pub group: String,
    /// Every version the CRD serves, in the CRD's order; the served one
    /// is the one marked `storage` (else the first).
    pub versions: Vec<String>,
    pub storage_version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// `additionalPrinterColumns` of the served version: (name, JSONPath).
    pub columns: Vec<(String, String)>,
}

impl CustomKind {
    /// From a CRD's JSON value; `None` when it lacks what a kind needs
    /// (the decoder reports that with the position).
    pub fn from_crd(crd: &serde_json::Value) -> Option<CustomKind> {
        let spec = &crd["spec"];
        let names = &spec["names"];
        let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let group = s(&spec["group"])?;
        let kind = s(&names["kind"])?;
        let plural = s(&names["plural"])?;
        let singular = s(&names["singular"]).unwrap_or_else(|| kind.to_lowercase());
        let versions_json = spec["versions"].as_array()?;
        let versions: Vec<String> = versions_json
            .iter()
            .filter(|v| v["served"].as_bool() != Some(false))
            .filter_map(|v| s(&v["name"]))
            .collect();
        let storage = versions_json
            .iter()
            .find(|v| v["storage"].as_bool() == Some(true))
            .or_else(|| versions_json.first())?;
        let storage_version = s(&storage["name"])?;
        let columns = storage["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((s(&c["name"])?, s(&c["jsonPath"])?)))
            .collect();
        let short_names = names["shortNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(s)
            .collect();
        Some(CustomKind {
            group,
            versions,
            storage_version,
            kind,
            plural,
            singular,
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names,
            columns,
        })
    }

    pub fn api_versions(&self) -> impl Iterator<Item = String> + '_ {
        self.versions.iter().map(|v| format!("{}/{v}", self.group))
    }
}

/// An object kept for the API only.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    /// As written (`rbac.authorization.k8s.io/v1`).
    pub api_version: String,
    pub kind: String,
    /// `None` for a cluster-scoped kind; `default` when a namespaced
    /// object names none, as kubectl would apply it.
    pub namespace: Option<String>,
    pub name: String,
    pub pos: Pos,
    #[serde(skip)]
    pub ns_pos: Option<Pos>,
    /// The object as written, `metadata.namespace` filled in.
    pub raw: serde_json::Value,
}

/// A path segment name, as apimachinery's `ValidatePathSegmentName`.
pub fn path_segment_problem(name: &str) -> Option<String> {
    if name == "." || name == ".." {
        return Some(format!("may not be `{name}`"));
    }
    if let Some(c) = name.chars().find(|c| *c == '/' || *c == '%') {
        return Some(format!("may not contain `{c}`"));
    }
    if name.len() > 253 {
        return Some(format!(
            "is {} characters, at most 253 are allowed",
            name.len()
        ));
    }
    None
}
