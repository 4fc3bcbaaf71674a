//! The stored-only kinds (`lab::stored`): each decoded and kept, List,
//! Helm-rendered output, empty documents, CRDs and their objects, and the
//! errors (with line:column) that remain.

use super::stored::STORED_KINDS;
use super::*;

fn ok(text: &str) -> LabFile {
    match parse("lab.yaml", text) {
        Ok(f) => f,
        Err(e) => panic!("unexpected errors:\n{e}\nin:\n{text}"),
    }
}

/// Every diagnostic as it prints: `file:line:col: field: message`.
fn errors(text: &str) -> Vec<String> {
    match parse("lab.yaml", text) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e
            .diagnostics
            .iter()
            .map(|d| d.to_string().lines().next().unwrap_or("").to_string())
            .collect(),
    }
}

fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

#[test]
fn every_stored_kind_is_kept_with_its_metadata() {
    let mut text = String::new();
    for k in STORED_KINDS {
        let name = match k.kind {
            "CustomResourceDefinition" => "widgets.example.com".to_string(),
            "ClusterRole" => "system:aggregate-to-view".to_string(),
            _ => format!("x-{}", k.singular),
        };
        text.push_str(&format!(
            "---\napiVersion: {}\nkind: {}\nmetadata:\n  name: {name}\n  labels: {{app: a}}\n  annotations: {{note: kept}}\n",
            api_version(k.group, k.versions[0]),
            k.kind
        ));
        // A spec with a field no podlab decoder knows: not an error here.
        match k.kind {
            "CustomResourceDefinition" => text.push_str(
                "spec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Widget, plural: widgets}\n  versions: [{name: v1, served: true, storage: true}]\n",
            ),
            _ => text.push_str("spec:\n  anythingAtAll: [1, {two: 3}]\n"),
        }
    }
    let f = ok(&text);
    assert_eq!(f.stored.len(), STORED_KINDS.len());
    for (o, k) in f.stored.iter().zip(STORED_KINDS) {
        assert_eq!(o.kind, k.kind);
        assert_eq!(o.api_version, api_version(k.group, k.versions[0]));
        let ns = k.namespaced.then(|| "default".to_string());
        assert_eq!(o.namespace, ns, "{}", k.kind);
        assert_eq!(o.raw["metadata"]["namespace"].as_str(), ns.as_deref());
        assert_eq!(o.raw["metadata"]["annotations"]["note"], "kept");
    }
    // Nothing of a stored object is listed as ignored: it is all kept.
    assert!(f.ignored.is_empty(), "{:?}", f.ignored);
    assert_eq!(f.custom_kinds.len(), 1);
    assert_eq!(f.custom_kinds[0].kind, "Widget");
}

#[test]
fn older_hpa_version_is_accepted() {
    let f = ok("apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\nspec: {maxReplicas: 3}\n");
    assert_eq!(f.stored[0].api_version, "autoscaling/v1");
}

#[test]
fn secret_data_is_kept_as_given() {
    let f = ok("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: default}\ntype: Opaque\ndata:\n  password: cGFzcw==\nstringData:\n  user: admin\n");
    let raw = &f.stored[0].raw;
    assert_eq!(raw["data"]["password"], "cGFzcw==");
    assert_eq!(raw["stringData"]["user"], "admin");
    assert_eq!(raw["type"], "Opaque");
}

#[test]
fn network_kinds_stay_strict() {
    let e = errors("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: a}\n  ports: [{port: 80}]\n  sessionAfinity: None\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "lab.yaml:7:3: spec.sessionAfinity: service `s`: unknown field `sessionAfinity`"
        ),
        "{e:?}"
    );
}

#[test]
fn a_list_is_decoded_item_by_item() {
    let text = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: web}
- apiVersion: v1
  kind: Pod
  metadata: {name: web, labels: {app: web}}
  spec:
    containers: [{name: c, ports: [{containerPort: 80}]}]
- apiVersion: v1
  kind: Service
  metadata: {name: web}
  spec: {selector: {app: web}, ports: [{port: 80}]}
";
    let f = ok(text);
    assert_eq!(f.stored.len(), 1);
    assert_eq!(f.pods.len(), 1);
    assert_eq!(f.services.len(), 1);
}

#[test]
fn errors_in_a_list_point_at_the_item() {
    let text = "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: Bad_Name}
- apiVersion: v1
  kind: Pods
  metadata: {name: p}
- apiVersion: v1
  kind: List
  items: []
";
    let e = errors(text);
    assert_eq!(
        e,
        vec![
            "lab.yaml:6:20: metadata.name: ConfigMap `Bad_Name`: `Bad_Name` is not a valid ConfigMap name",
            "lab.yaml:8:9: kind: document 1, items[1]: kind `Pods` is not supported",
            "lab.yaml:11:9: kind: document 1, items[2]: a List inside a List",
        ]
    );
}

#[test]
fn helm_rendered_output_loads() {
    // What `helm template` writes: a leading `---`, `# Source:` comments,
    // documents left empty by a disabled template.
    let text = "---
# Source: app/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
  labels:
    helm.sh/chart: app-0.1.0
    app.kubernetes.io/managed-by: Helm
---
# Source: app/templates/hpa.yaml
---
# Source: app/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  type: ClusterIP
  ports:
    - port: 80
      targetPort: http
      protocol: TCP
      name: http
  selector:
    app.kubernetes.io/name: app
---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: app
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app
    spec:
      serviceAccountName: app
      containers:
        - name: app
          image: \"nginx:1.16.0\"
          ports:
            - name: http
              containerPort: 80
              protocol: TCP
---
";
    let f = ok(text);
    assert_eq!(f.stored.len(), 1);
    assert_eq!(
        f.stored[0].raw["metadata"]["labels"]["helm.sh/chart"],
        "app-0.1.0"
    );
    assert_eq!(f.services.len(), 1);
    assert_eq!(f.deployments.len(), 1);
}

#[test]
fn empty_documents_are_skipped() {
    let f = ok("---\n---\n# nothing\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n---\n---\n");
    assert_eq!(f.stored.len(), 1);
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    kind: Widget
    plural: widgets
    shortNames: [wd]
  versions:
  - name: v1beta1
    served: true
    storage: false
  - name: v1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
";

#[test]
fn objects_of_a_crd_of_the_file_are_stored_before_or_after_it() {
    let obj = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, free: form}\n";
    let old = "apiVersion: example.com/v1beta1\nkind: Widget\nmetadata: {name: w0}\n";
    let f = ok(&format!("{obj}---\n{CRD}---\n{old}"));
    assert_eq!(f.stored.len(), 3);
    let ck = &f.custom_kinds[0];
    assert_eq!(ck.storage_version, "v1");
    assert_eq!(ck.versions, ["v1beta1", "v1"]);
    assert_eq!(ck.short_names, ["wd"]);
    assert_eq!(ck.columns, [("Size".to_string(), ".spec.size".to_string())]);
    assert_eq!(f.stored[0].namespace.as_deref(), Some("default"));
}

#[test]
fn custom_kind_errors() {
    // No CRD defines Widget: unknown, with the CRD idea in the hint.
    let e = parse(
        "lab.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
    )
    .unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!(
        d.to_string().lines().next().unwrap(),
        "lab.yaml:2:7: kind: document 1: kind `Widget` is not supported"
    );
    assert!(d
        .hint
        .as_deref()
        .unwrap()
        .contains("the kinds of the file's CustomResourceDefinitions"));
    // A version the CRD does not serve.
    let e = errors(&format!(
        "{CRD}---\napiVersion: example.com/v2\nkind: Widget\nmetadata: {{name: w}}\n"
    ));
    assert_eq!(
        e,
        ["lab.yaml:22:13: apiVersion: document 2: apiVersion `example.com/v2` is not valid for kind Widget"]
    );
    // The CRD's name must be plural.group.
    let e = errors(&CRD.replace("name: widgets.example.com", "name: widget"));
    assert_eq!(
        e,
        ["lab.yaml:4:9: metadata.name: CustomResourceDefinition `widget`: must be spec.names.plural + \".\" + spec.group: `widgets.example.com`"]
    );
}

#[test]
fn stored_metadata_errors() {
    assert_eq!(
        errors("apiVersion: v1\nkind: ServiceAccount\nmetadata: {labels: {a: b}}\n"),
        ["lab.yaml:3:11: metadata.name: ServiceAccount has no name"]
    );
    assert_eq!(
        errors("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namspace: x}\n"),
        ["lab.yaml:3:21: metadata.namspace: unknown field `namspace`"]
    );
    assert_eq!(
        errors("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n"),
        ["lab.yaml:3:32: metadata.namespace: ConfigMap `c`: namespace `shop` does not exist"]
    );
    assert_eq!(
        errors("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: a/b}\n"),
        ["lab.yaml:3:18: metadata.name: Role `a/b`: Role name may not contain `/`"]
    );
    assert_eq!(
        errors("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n"),
        ["lab.yaml:7:18: metadata.name: ServiceAccount `a` in namespace `default` is defined twice (first at line 3)"]
    );
    assert_eq!(
        errors("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: a}\n"),
        ["lab.yaml:1:13: apiVersion: document 1: apiVersion `policy/v1beta1` is not valid for kind PodDisruptionBudget"]
    );
    // A namespace on a cluster-scoped kind is ignored, as Kubernetes does.
    let f = ok("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r, namespace: nowhere}\nrules: []\n");
    assert_eq!(f.stored[0].namespace, None);
    assert!(f.stored[0].raw["metadata"].get("namespace").is_none());
}

#[test]
fn the_app_shaped_fixtures_decode() {
    let f = ok(include_str!("../../tests/fixtures/real/bookinfo-like.yaml"));
    assert_eq!(f.stored.len(), 4);
    assert!(f.stored.iter().all(|o| o.kind == "ServiceAccount"));
    assert_eq!((f.services.len(), f.deployments.len()), (4, 6));
    let f = ok(include_str!("../../tests/fixtures/real/boutique-like.yaml"));
    assert_eq!(f.stored.len(), 9);
    assert_eq!((f.services.len(), f.deployments.len()), (10, 10));
}
