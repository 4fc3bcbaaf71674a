//! StatefulSet, DaemonSet and ReplicaSet in a lab file: what decodes, and
//! every error with the line:column and field it points at.

use super::*;

/// (line, col, field, message) of every diagnostic.
fn errors(text: &str) -> Vec<(usize, usize, String, String)> {
    match parse("lab.yaml", text) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e
            .diagnostics
            .into_iter()
            .map(|d| (d.pos.line, d.pos.col, d.field, d.message))
            .collect(),
    }
}

fn at(line: usize, col: usize, field: &str, message: &str) -> (usize, usize, String, String) {
    (line, col, field.to_string(), message.to_string())
}

fn ok(text: &str) -> LabFile {
    match parse("lab.yaml", text) {
        Ok(f) => f,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

/// A workload of `kind` named `name` whose spec starts with `spec` (each
/// line indented 2) and has the template below.
fn workload(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: {kind}
metadata: {{name: {name}}}
spec:
{spec}  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c}}]
"
    )
}

#[test]
fn the_three_kinds_decode() {
    let text = [
        workload("StatefulSet", "web", "  replicas: 2\n  serviceName: nginx\n  podManagementPolicy: OrderedReady\n  updateStrategy: {type: RollingUpdate}\n"),
        workload("DaemonSet", "agent", ""),
        workload("ReplicaSet", "front", "  replicas: 3\n"),
    ]
    .join("---\n");
    let f = ok(&text);
    let kinds: Vec<(WorkloadKind, &str, u32)> = f
        .workloads
        .iter()
        .map(|w| (w.kind, w.name.as_str(), w.replicas))
        .collect();
    assert_eq!(
        kinds,
        [
            (WorkloadKind::StatefulSet, "web", 2),
            (WorkloadKind::DaemonSet, "agent", 0),
            (WorkloadKind::ReplicaSet, "front", 3),
        ]
    );
    assert_eq!(f.workloads[0].service_name.as_deref(), Some("nginx"));
    assert_eq!(f.workloads[0].namespace, "default");
    let ignored: Vec<&str> = f.ignored.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(ignored, ["spec.updateStrategy"]);
}

#[test]
fn an_unknown_field_is_an_error_with_a_suggestion() {
    let text = workload("StatefulSet", "web", "  serviceNme: nginx\n");
    let e = parse("lab.yaml", &text).expect_err("typo");
    assert_eq!(e.diagnostics.len(), 1, "{e}");
    let d = &e.diagnostics[0];
    assert_eq!((d.pos.line, d.pos.col), (5, 3));
    assert_eq!(d.field, "spec.serviceNme");
    assert_eq!(d.message, "statefulset `web`: unknown field `serviceNme`");
    assert_eq!(d.hint.as_deref(), Some("did you mean `serviceName`?"));
}

#[test]
fn a_daemonset_has_no_replicas() {
    let text = workload("DaemonSet", "agent", "  replicas: 2\n");
    assert_eq!(
        errors(&text),
        [at(
            5,
            3,
            "spec.replicas",
            "daemonset `agent`: unknown field `replicas`"
        )]
    );
}

#[test]
fn the_selector_must_match_the_template() {
    let text = workload("ReplicaSet", "front", "").replace(
        "selector: {matchLabels: {app: web}}",
        "selector: {matchLabels: {app: other}}",
    );
    assert_eq!(
        errors(&text),
        [at(
            5,
            27,
            "spec.selector.matchLabels",
            "replicaset `front`: selector does not match template labels"
        )]
    );
}

#[test]
fn a_workload_without_selector_or_template_is_reported() {
    let text =
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: web}\nspec:\n  replicas: 1\n";
    assert_eq!(
        errors(text),
        [
            at(
                5,
                3,
                "spec.selector",
                "statefulset `web`: statefulset has no `spec.selector`"
            ),
            at(
                5,
                3,
                "spec.template",
                "statefulset `web`: statefulset has no `spec.template`"
            ),
        ]
    );
}

#[test]
fn a_pod_management_policy_is_checked() {
    let text = workload("StatefulSet", "web", "  podManagementPolicy: parallel\n");
    let e = parse("lab.yaml", &text).expect_err("bad policy");
    let d = &e.diagnostics[0];
    assert_eq!((d.pos.line, d.pos.col), (5, 24));
    assert_eq!(d.field, "spec.podManagementPolicy");
    assert_eq!(
        d.message,
        "statefulset `web`: expected OrderedReady or Parallel, found `parallel`"
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `Parallel`?"));
}

#[test]
fn a_service_name_must_be_a_label() {
    let text = workload("StatefulSet", "web", "  serviceName: Nginx_svc\n");
    let e = parse("lab.yaml", &text).expect_err("bad name");
    let d = &e.diagnostics[0];
    assert_eq!(
        (d.pos.line, d.pos.col, d.field.as_str()),
        (5, 16, "spec.serviceName")
    );
    assert!(d.message.contains("not a DNS-1123 label"), "{}", d.message);
}

#[test]
fn statefulset_pod_names_must_fit_a_hostname() {
    // 61 characters + `-10` is 64.
    let name = "a".repeat(61);
    let text = workload("StatefulSet", &name, "  replicas: 11\n");
    let e = parse("lab.yaml", &text).expect_err("too long");
    assert_eq!(e.diagnostics.len(), 1, "{e}");
    let d = &e.diagnostics[0];
    assert_eq!(
        (d.pos.line, d.pos.col, d.field.as_str()),
        (3, 18, "metadata.name")
    );
    assert!(d.message.contains(&format!("`{name}-10`")), "{}", d.message);
    assert_eq!(
        d.hint.as_deref(),
        Some("use a statefulset name of at most 60 characters")
    );
    // Ten replicas (`-9`) fit.
    ok(&workload("StatefulSet", &name, "  replicas: 10\n"));
}

#[test]
fn replicaset_and_daemonset_names_leave_room_for_the_suffix() {
    let name = "b".repeat(58);
    for kind in ["ReplicaSet", "DaemonSet"] {
        let e = parse("lab.yaml", &workload(kind, &name, "")).expect_err("too long");
        let d = &e.diagnostics[0];
        assert_eq!(
            (d.pos.line, d.field.as_str()),
            (3, "metadata.name"),
            "{kind}"
        );
        assert!(d
            .hint
            .as_deref()
            .is_some_and(|h| h.ends_with("at most 57 characters")));
    }
    ok(&workload("ReplicaSet", &"b".repeat(57), ""));
}

#[test]
fn a_daemonset_node_selector_must_be_labels() {
    let text = workload("DaemonSet", "agent", "").replace(
        "      containers",
        "      nodeSelector: [ssd]\n      containers",
    );
    assert_eq!(
        errors(&text),
        [at(
            9,
            21,
            "spec.template.spec.nodeSelector",
            "daemonset `agent`: expected a mapping of labels, found a list"
        )]
    );
}

#[test]
fn two_statefulsets_of_one_name_are_reported() {
    let one = workload("StatefulSet", "web", "");
    let text = format!("{one}---\n{one}");
    let e = parse("lab.yaml", &text).expect_err("twice");
    let d = &e.diagnostics[0];
    assert_eq!((d.pos.line, d.field.as_str()), (13, "metadata.name"));
    assert!(
        d.message
            .contains("statefulset `web` in namespace `default` is defined twice"),
        "{}",
        d.message
    );
}

#[test]
fn a_headless_service_selecting_a_statefulset_selects_pods() {
    let text = format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: nginx}}\nspec: {{clusterIP: None, selector: {{app: web}}, ports: [{{port: 80}}]}}\n",
        workload("StatefulSet", "web", "  serviceName: nginx\n")
    );
    let f = ok(&text);
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
}

#[test]
fn a_workload_in_a_missing_namespace_is_reported() {
    let text = workload("DaemonSet", "agent", "").replace(
        "metadata: {name: agent}",
        "metadata: {name: agent, namespace: shop}",
    );
    assert_eq!(
        errors(&text),
        [at(
            3,
            36,
            "metadata.namespace",
            "daemonset `agent`: namespace `shop` does not exist"
        )]
    );
}

#[test]
fn a_service_name_without_its_service_is_a_warning() {
    let f = ok(&workload("StatefulSet", "web", "  serviceName: nginx\n"));
    assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
    let w = &f.warnings[0];
    assert_eq!((w.pos.line, w.field.as_str()), (3, "spec.serviceName"));
    assert!(w.message.contains("names no Service"), "{}", w.message);
}

#[test]
fn a_template_restarts_always() {
    let text = workload("DaemonSet", "agent", "").replace(
        "      containers",
        "      restartPolicy: Never\n      containers",
    );
    let e = parse("lab.yaml", &text).expect_err("Never");
    let d = &e.diagnostics[0];
    assert_eq!(
        (d.pos.line, d.pos.col, d.field.as_str()),
        (9, 22, "spec.template.spec.restartPolicy")
    );
    assert_eq!(
        d.message,
        "daemonset `agent`: a daemonset's pods must have restartPolicy Always, found `Never`"
    );
}

#[test]
fn a_misspelt_selector_is_one_error() {
    let text = workload("StatefulSet", "web", "").replace("  selector:", "  selectr:");
    assert_eq!(
        errors(&text),
        [at(
            5,
            3,
            "spec.selectr",
            "statefulset `web`: unknown field `selectr`"
        )]
    );
}
