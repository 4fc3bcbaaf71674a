//! Every diagnostic the lab module can give, on inline fixtures, with the
//! line:column and field it points at.

use super::*;

/// The seed chapter's two manifests, verbatim.
const SEED: &str = "# pod1.yaml
apiVersion: v1
kind: Pod
metadata:
  name: pod-1
  labels:
    app: frontend
spec:
  containers:
  - name: nginx
    image: nginx
    ports:
    - containerPort: 80

---
# pod2.yaml
apiVersion: v1
kind: Pod
metadata:
  name: pod-2
  labels:
    app: backend
spec:
  containers:
  - name: busybox
    image: busybox
    command: ['sh', '-c', 'sleep 3600']
";

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

/// Exactly one diagnostic, as (line, col, field, message), and its hint.
fn one(text: &str) -> ((usize, usize, String, String), Option<String>) {
    let e = match parse("lab.yaml", text) {
        Ok(_) => panic!("expected an error in:\n{text}"),
        Err(e) => e,
    };
    assert_eq!(e.diagnostics.len(), 1, "{e}");
    let d = e.diagnostics[0].clone();
    ((d.pos.line, d.pos.col, d.field, d.message), d.hint)
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

/// A pod with one container whose fields are `extra` (indented 4).
fn pod_with(extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n{extra}"
    )
}

// ---- whole files that must load ----

#[test]
fn seed_manifests_load_unchanged() {
    let f = ok(SEED);
    assert_eq!(f.lab.name, "lab");
    assert_eq!(f.pods.len(), 2);
    let p1 = &f.pods[0];
    assert_eq!(
        (p1.name.as_str(), p1.namespace.as_str()),
        ("pod-1", "default")
    );
    assert_eq!(p1.labels.get("app").map(String::as_str), Some("frontend"));
    assert_eq!(p1.pos, Pos { line: 5, col: 9 });
    let c = &p1.spec.containers[0];
    assert_eq!(c.image.as_deref(), Some("nginx"));
    assert_eq!(
        c.ports,
        vec![ContainerPort {
            name: None,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_port: None,
            pos: Pos { line: 13, col: 22 }
        }]
    );
    assert_eq!(
        f.pods[1].spec.containers[0].command,
        ["sh", "-c", "sleep 3600"]
    );
    assert_eq!(f.pods[1].spec.restart_policy, RestartPolicy::Always);
    assert!(f.ignored.is_empty());
}

#[test]
fn demo_parses() {
    let f = match parse("demo", DEMO) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(f.lab.name, "demo");
    let nodes: Vec<&str> = f.lab.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(nodes, ["node-1", "node-2"]);
    assert_eq!(f.pods.len(), 2);
    assert_eq!(f.pods[0].spec.node_name.as_deref(), Some("node-1"));
    assert_eq!(f.pods[1].spec.node_name.as_deref(), Some("node-2"));
    // The seed's manifests are in it, only nodeName added.
    let without_node_name: String = DEMO
        .lines()
        .filter(|l| !l.contains("nodeName"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(without_node_name.contains(SEED.split("---").next().unwrap_or_default()));
    assert!(without_node_name.contains(SEED.split("---").nth(1).unwrap_or_default()));
}

#[test]
fn defaults_are_applied() {
    let f = ok("apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata:\n  name: basics\n");
    assert_eq!(f.lab.name, "basics");
    assert_eq!(f.lab.pos, Pos { line: 4, col: 9 });
    assert_eq!(f.lab.nodes.len(), 2);
    assert_eq!(f.lab.nodes[1].name, "node-2");
    let n = &f.lab.network;
    let d = Network::default();
    assert_eq!(n.node_cidr, d.node_cidr);
    assert_eq!(n.pod_cidr, d.pod_cidr);
    assert_eq!(n.node_pod_prefix, 24);
    assert_eq!(n.node_port_range, (30000, 32767));
    assert_eq!(n.mtu, 1500);
    assert!(f.lab.expect.is_empty());
}

#[test]
fn network_is_read() {
    let f = ok("apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: net}
spec:
  nodes: 3
  network:
    nodeCIDR: 192.168.50.0/24
    podCIDR: 10.100.0.0/16
    podCIDRMask: 26
    serviceCIDR: 10.200.0.0/16
    clusterDomain: lab.example
    dnsIP: 10.200.0.53
    nodePortRange: 31000-31999
    loadBalancerPool: 192.168.50.100-192.168.50.120
    mtu: 1400
  expect:
  - {from: node/node-1, to: node/node-2, port: 22, expect: refused}
");
    let n = &f.lab.network;
    assert_eq!(n.node_cidr.to_string(), "192.168.50.0/24");
    assert_eq!(n.pod_cidr.to_string(), "10.100.0.0/16");
    assert_eq!(n.node_pod_prefix, 26);
    assert_eq!(n.service_cidr.to_string(), "10.200.0.0/16");
    assert_eq!(n.cluster_domain, "lab.example");
    assert_eq!(n.dns_ip.to_string(), "10.200.0.53");
    assert_eq!(n.node_port_range, (31000, 31999));
    assert_eq!(n.load_balancer_pool.1.to_string(), "192.168.50.120");
    assert_eq!(n.mtu, 1400);
    let nodes: Vec<&str> = f.lab.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(nodes, ["node-1", "node-2", "node-3"]);
    assert_eq!(
        f.lab.expect[0].title(),
        "node/node-1 -> node/node-2:22/TCP refused"
    );
}

#[test]
fn nodes_as_a_list() {
    let f = ok("apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: l}
spec:
  nodes:
  - name: alpha
    labels: {zone: a}
  - {name: beta}
");
    assert_eq!(f.lab.nodes[0].name, "alpha");
    assert_eq!(f.lab.nodes[0].pos, Pos { line: 6, col: 11 });
    assert_eq!(
        f.lab.nodes[0].labels.get("zone").map(String::as_str),
        Some("a")
    );
    assert_eq!(f.lab.nodes[1].name, "beta");
}

#[test]
fn default_lab_name_comes_from_the_file() {
    assert_eq!(default_lab_name("labs/My_Lab.v2.yaml"), "my-lab-v2");
    assert_eq!(default_lab_name("/tmp/pod1.yaml"), "pod1");
    assert_eq!(default_lab_name("-"), "lab");
    assert_eq!(default_lab_name("___.yaml"), "lab");
    assert_eq!(
        default_lab_name("a-very-long-name-for-a-lab-file.yaml"),
        "a-very-long-name-for"
    );
    assert_eq!(
        default_lab_name("abcdefghijklmnopqrs-tuv.yaml"),
        "abcdefghijklmnopqrs"
    );
    let f = match parse("exercises/Pod1.yaml", SEED) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(f.lab.name, "pod1");
}

#[test]
fn ignored_fields_are_listed() {
    let f = ok("apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations: {a: b}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    resources: {limits: {cpu: 1}}
    lifecycle: {preStop: {exec: {command: [sleep, '1']}}}
    ports:
    - {containerPort: 80, hostIP: 0.0.0.0}
    env:
    - {name: A, value: x}
    - name: B
      valueFrom: {secretKeyRef: {name: s, key: k}}
status: {phase: Running}
");
    let ignored: Vec<(usize, usize, &str)> = f
        .ignored
        .iter()
        .map(|i| (i.pos.line, i.pos.col, i.field.as_str()))
        .collect();
    assert_eq!(
        ignored,
        [
            (5, 3, "metadata.annotations"),
            (7, 3, "spec.terminationGracePeriodSeconds"),
            (10, 5, "spec.containers[0].resources"),
            (11, 5, "spec.containers[0].lifecycle"),
            (13, 27, "spec.containers[0].ports[0].hostIP"),
            (17, 7, "spec.containers[0].env[1].valueFrom"),
            (18, 1, "status"),
        ]
    );
    // A variable whose value comes from elsewhere is left unset.
    let env = &f.pods[0].spec.containers[0].env;
    assert_eq!(
        env,
        &[EnvVar {
            name: "A".into(),
            value: "x".into()
        }]
    );
}

#[test]
fn deployment_is_decoded() {
    let f = ok("apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 3
  strategy: {type: RollingUpdate}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, tier: front}
    spec:
      containers:
      - name: nginx
        ports: [{containerPort: 8080, name: http, protocol: TCP}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
");
    let d = &f.deployments[0];
    assert_eq!(
        (d.name.as_str(), d.namespace.as_str(), d.replicas),
        ("web", "shop", 3)
    );
    assert_eq!(d.selector.len(), 1);
    assert_eq!(d.template_labels.len(), 2);
    assert_eq!(
        d.template.containers[0].ports[0].name.as_deref(),
        Some("http")
    );
    assert_eq!(f.namespaces[0].name, "shop");
    assert_eq!(f.ignored[0].field, "spec.strategy");
}

#[test]
fn deployment_replicas_default_to_one() {
    let f = ok("apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c}]}
");
    assert_eq!(f.deployments[0].replicas, 1);
}

#[test]
fn services_and_policies_are_kept_raw() {
    let f = ok("apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: kube-system}
spec: {podSelector: {}}
");
    assert_eq!(f.services[0].name, "web");
    assert_eq!(
        f.services[0].raw["spec"]["ports"][0]["port"],
        serde_json::json!(80)
    );
    assert_eq!(
        f.services[0].raw["spec"]["ports"][0]["targetPort"],
        serde_json::json!("http")
    );
    assert_eq!(f.policies[0].namespace, "kube-system");
    assert_eq!(
        f.policies[0].raw["spec"]["podSelector"],
        serde_json::json!({})
    );
}

#[test]
fn names_and_did_you_mean() {
    assert!(is_dns1123_label("pod-1"));
    assert!(!is_dns1123_label("Pod-1"));
    assert!(!is_dns1123_label("-a"));
    assert!(!is_dns1123_label("a-"));
    assert!(!is_dns1123_label(""));
    assert!(!is_dns1123_label(&"a".repeat(64)));
    assert!(is_dns1123_label(&"a".repeat(63)));
    assert!(is_dns1123_subdomain("web.shop"));
    assert!(!is_dns1123_subdomain("web..shop"));
    assert!(!is_dns1123_subdomain(".web"));
    assert!(is_iana_svc_name("http"));
    assert!(is_iana_svc_name("h2c-80"));
    assert!(!is_iana_svc_name("8080"));
    assert!(!is_iana_svc_name("a--b"));
    assert!(!is_iana_svc_name("http-web-frontend"));
    assert_eq!(
        did_you_mean("contaners", &["containers", "command"]),
        Some("containers")
    );
    assert_eq!(
        did_you_mean("contanerPort", &["containerPort", "name"]),
        Some("containerPort")
    );
    assert_eq!(did_you_mean("pod", &["Pod", "Service"]), Some("Pod"));
    assert_eq!(did_you_mean("imgae", &["image", "name"]), Some("image"));
    assert_eq!(did_you_mean("banana", &["containers", "image"]), None);
    assert_eq!(did_you_mean("x", &["y"]), Some("y"));
    assert_eq!(did_you_mean("node-3", &["node-1", "node-2"]), None);
    assert_eq!(did_you_mean("", &["image"]), None);
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        "",
        "\n\n",
        "[",
        "]",
        "{",
        "}",
        ":",
        "- - -",
        "just a scalar",
        "---\n42\n",
        "\tkind: Pod\n",
        "kind:\tPod\n",
        "kind: Pod\n\tmetadata: {}\n",
        "*alias",
        "&a [*a]",
        "a: &a\n  b: *a\n",
        "? [a, b]\n: c\n",
        "kind: [Pod]",
        "kind: Pod\napiVersion: {}\nmetadata: []\nspec: 3\n",
        "kind: Pod\napiVersion: v1\nmetadata: {name: [x]}\nspec: {containers: [[], 3, {}]}\n",
        "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: d}\nspec: {selector: 3, template: []}\n",
        "kind: Lab\napiVersion: podlab/v1alpha1\nmetadata: {name: x}\nspec: {nodes: {}, network: [], expect: 1}\n",
        "kind: Lab\napiVersion: podlab/v1alpha1\nspec: {network: {podCIDR: 10.0.0.0/8, podCIDRMask: 32, nodeCIDR: 10.0.0.0/32}}\n",
        "kind: Pod\napiVersion: v1\nmetadata: {name: p}\nspec: {containers: [{name: c, ports: [{containerPort: 99999999999999999999999}]}]}\n",
        "kind: Pod\napiVersion: v1\nmetadata: {name: p}\nspec: {containers: [{name: c, ports: [{containerPort: -1.5e400}]}]}\n",
        "\u{feff}kind: Pod\n",
        "kind: \"\\uD800\"\n",
        "%YAML 1.2\n---\nkind: Pod\n",
        "!!binary aGVsbG8=",
        "... \n---\n...\n",
        "'unterminated",
        "a: |\n  b\n c\n",
    ];
    for input in inputs {
        let _ = parse("garbage.yaml", input);
    }
    let deep = "a:\n".to_string() + &" ".repeat(2) + &"- ".repeat(10_000) + "x\n";
    let _ = parse("deep.yaml", &deep);
    let deep_map: String = (0..1000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    let _ = parse("deep.yaml", &deep_map);
    let flow = "[".repeat(100_000);
    let _ = parse("flow.yaml", &flow);
    let _ = parse("long.yaml", &format!("kind: {}\n", "P".repeat(100_000)));
}

#[test]
fn empty_or_comment_only_file_is_no_documents() {
    for text in [
        "",
        "\n\n",
        "# nothing here\n---\n---\n",
        "\u{feff}# a comment\n",
    ] {
        let (at_, hint) = one(text);
        assert_eq!(
            at_,
            at(
                1,
                1,
                "file",
                "no documents: the file is empty or holds only comments, so it describes no lab"
            ),
            "{text:?}"
        );
        assert!(hint.unwrap().contains("kind: Lab"));
    }
}

#[test]
fn load_reports_unreadable_files() {
    let e = match load(std::path::Path::new("/nonexistent/podlab/lab.yaml")) {
        Ok(_) => panic!("loaded a missing file"),
        Err(e) => e,
    };
    let d = &e.diagnostics[0];
    assert_eq!((d.pos.line, d.pos.col, d.field.as_str()), (1, 1, "file"));
    assert!(
        d.message.starts_with("cannot read the lab file: "),
        "{}",
        d.message
    );
    assert_eq!(d.source, "/nonexistent/podlab/lab.yaml");
}

#[test]
fn diagnostics_are_all_reported_and_sorted() {
    let e = errors(
        "apiVersion: v1
kind: Pod
metadata:
  name: Pod_1
spec:
  contaners: []
---
apiVersion: v1
kind: Pod
metadata:
  name: p2
spec:
  containers:
  - name: c
    ports: [{containerPort: 0}]
",
    );
    let lines: Vec<usize> = e.iter().map(|d| d.0).collect();
    assert_eq!(lines, [4, 6, 15]);
}

#[test]
fn display_has_file_line_column_field_and_hint() {
    let e = match parse("lab.yaml", &pod_with("    imgae: nginx\n")) {
        Ok(_) => panic!("no error"),
        Err(e) => e,
    };
    assert_eq!(
        e.to_string(),
        "lab.yaml:8:5: spec.containers[0].imgae: pod `p`: unknown field `imgae`\n  hint: did you mean `image`?"
    );
}

// ---- YAML ----

#[test]
fn yaml_syntax_error() {
    let (d, _) = one("apiVersion: v1\nkind: [Pod\n");
    assert_eq!((d.0, d.1, d.2.as_str()), (3, 1, "yaml"));
    assert!(d.3.starts_with("invalid YAML: "), "{}", d.3);
}

#[test]
fn yaml_duplicate_key() {
    let (d, h) = one("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n");
    assert_eq!(
        d,
        at(
            5,
            3,
            "metadata.name",
            "duplicate key `name` (first at line 4)"
        )
    );
    assert!(h.is_some());
}

#[test]
fn yaml_alias_to_nothing() {
    let e = errors("a: *nowhere\n");
    assert_eq!((e[0].0, e[0].2.as_str()), (1, "yaml"));
}

#[test]
fn yaml_aliases_are_followed() {
    let f = ok("apiVersion: v1
kind: Pod
metadata: {name: p, labels: &l {app: web}}
spec:
  containers:
  - name: c
    ports: &ports [{containerPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: q, labels: *l}
spec:
  containers:
  - name: c
    ports: *ports
");
    assert_eq!(f.pods[1].labels, f.pods[0].labels);
    assert_eq!(f.pods[1].spec.containers[0].ports[0].container_port, 80);
    // Inside a copied subtree, positions are those of the anchor's text.
    assert_eq!(f.pods[1].spec.containers[0].ports[0].pos.line, 7);
}

// ---- documents ----

#[test]
fn document_not_a_mapping() {
    let (d, _) = one("just text\n");
    assert_eq!(
        d,
        at(
            1,
            1,
            "",
            "document 1: expected a Kubernetes object (a mapping with apiVersion and kind), found `just text`"
        )
    );
}

#[test]
fn document_without_kind() {
    let (d, h) = one("apiVersion: v1\nmetadata: {name: x}\n");
    assert_eq!(d, at(1, 1, "kind", "document 1 has no `kind`"));
    assert_eq!(h.as_deref(), Some(KINDS_HINT));
}

const KINDS_HINT: &str = "podlab supports Lab, Namespace, Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Service, Endpoints, EndpointSlice, NetworkPolicy; it stores, for kubectl and without effect on the network, ServiceAccount, ConfigMap, Secret, ResourceQuota, LimitRange, Role, RoleBinding, ClusterRole, ClusterRoleBinding, PodDisruptionBudget, HorizontalPodAutoscaler, PriorityClass, Ingress, IngressClass, CustomResourceDefinition and the kinds of the file's CustomResourceDefinitions";

#[test]
fn unsupported_kind() {
    let (d, h) = one("apiVersion: apps/v1\nkind: Widget\nmetadata: {name: x}\n");
    assert_eq!(
        d,
        at(2, 7, "kind", "document 1: kind `Widget` is not supported")
    );
    assert_eq!(h.as_deref(), Some(KINDS_HINT));
    let (d, h) = one("apiVersion: v1\nkind: pod\nmetadata: {name: x}\n");
    assert_eq!(
        d,
        at(2, 7, "kind", "document 1: kind `pod` is not supported")
    );
    assert!(h.unwrap_or_default().starts_with("did you mean `Pod`?"));
}

#[test]
fn missing_api_version() {
    let (d, h) = one("kind: Namespace\nmetadata: {name: x}\n");
    assert_eq!(
        d,
        at(
            1,
            1,
            "apiVersion",
            "document 1 (Namespace) has no `apiVersion`"
        )
    );
    assert_eq!(h.as_deref(), Some("add `apiVersion: v1`"));
}

#[test]
fn wrong_api_version_per_kind() {
    let cases = [
        ("Pod", "apps/v1", "v1"),
        ("Namespace", "v2", "v1"),
        ("Service", "apps/v1", "v1"),
        ("Deployment", "v1", "apps/v1"),
        ("NetworkPolicy", "v1", "networking.k8s.io/v1"),
        ("Lab", "v1", "podlab/v1alpha1"),
    ];
    for (kind, wrong, right) in cases {
        let text = format!("apiVersion: {wrong}\nkind: {kind}\nmetadata: {{name: x}}\n");
        let e = match parse("lab.yaml", &text) {
            Ok(_) => panic!("{kind} accepted {wrong}"),
            Err(e) => e,
        };
        let Some(d) = e.diagnostics.iter().find(|d| d.field == "apiVersion") else {
            panic!("{kind}: {e}")
        };
        assert_eq!((d.pos.line, d.pos.col), (1, 13));
        assert_eq!(
            d.message,
            format!("document 1: apiVersion `{wrong}` is not valid for kind {kind}")
        );
        assert_eq!(d.hint, Some(format!("use `apiVersion: {right}`")));
    }
}

#[test]
fn lab_not_first() {
    let text =
        format!("{SEED}---\napiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {{name: x}}\n");
    let (d, _) = one(&text);
    assert_eq!(
        d,
        at(
            30,
            7,
            "kind",
            "document 3: the Lab document must be the first in the file"
        )
    );
}

// ---- fields ----

#[test]
fn unknown_fields_report_and_suggest() {
    // The misspelt field is reported once, not again as a missing one.
    let (d, h) =
        one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  contaners:\n  - name: c\n");
    assert_eq!(
        d,
        at(5, 3, "spec.contaners", "pod `p`: unknown field `contaners`")
    );
    assert_eq!(h.as_deref(), Some("did you mean `containers`?"));

    let (d, h) = one(&pod_with(
        "    ports:\n    - contanerPort: 80\n      containerPort: 81\n",
    ));
    assert_eq!(
        d,
        at(
            9,
            7,
            "spec.containers[0].ports[0].contanerPort",
            "pod `p`: unknown field `contanerPort`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `containerPort`?"));

    let (d, h) = one(&pod_with("    flavour: vanilla\n"));
    assert_eq!(
        d,
        at(
            8,
            5,
            "spec.containers[0].flavour",
            "pod `p`: unknown field `flavour`"
        )
    );
    assert_eq!(h, None);
}

#[test]
fn unknown_top_level_and_metadata_fields() {
    let e = errors(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  lables: {a: b}\nspce: {}\n",
    );
    assert_eq!(
        e,
        [
            at(5, 3, "metadata.lables", "unknown field `lables`"),
            at(6, 1, "spce", "unknown field `spce`"),
        ]
    );
}

#[test]
fn unsupported_fields() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n  containers: [{name: c}]\n";
    let (d, h) = one(text);
    assert_eq!(
        d,
        at(
            5,
            3,
            "spec.hostNetwork",
            "pod `p`: field `hostNetwork` is not supported by podlab"
        )
    );
    assert!(h.is_some());

    let (d, h) = one("apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector:
    matchLabels: {app: web}
    matchExpressions: [{key: tier, operator: In, values: [a]}]
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c}]}
");
    assert_eq!(
        d,
        at(
            7,
            5,
            "spec.selector.matchExpressions",
            "deployment `web`: field `matchExpressions` is not supported by podlab"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("only matchLabels is supported; write the selector as matchLabels")
    );
}

#[test]
fn expected_a_mapping() {
    let (d, _) = one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: [a]\n");
    assert_eq!(
        d,
        at(4, 7, "spec", "pod `p`: expected a mapping, found a list")
    );
}

#[test]
fn field_name_not_a_scalar() {
    let (d, _) = one("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  ? [a]\n  : b\n");
    assert_eq!(
        d,
        at(5, 5, "metadata", "expected a field name, found a list")
    );
}

#[test]
fn expected_a_string() {
    let (d, h) = one("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: 123\n");
    assert_eq!(
        d,
        at(
            4,
            9,
            "metadata.name",
            "expected a string, found the number 123"
        )
    );
    assert_eq!(h.as_deref(), Some("quote it: \"123\""));
    let (d, _) = one(&pod_with("    image: [nginx]\n"));
    assert_eq!(
        d,
        at(
            8,
            12,
            "spec.containers[0].image",
            "pod `p`: expected a string, found a list"
        )
    );
    let (d, h) = one(&pod_with("    image: true\n"));
    assert_eq!(
        d,
        at(
            8,
            12,
            "spec.containers[0].image",
            "pod `p`: expected a string, found the boolean true"
        )
    );
    assert_eq!(h.as_deref(), Some("quote it: \"true\""));
}

#[test]
fn expected_a_list_of_strings() {
    let (d, _) = one(&pod_with("    command: sleep 3600\n"));
    assert_eq!(
        d,
        at(
            8,
            14,
            "spec.containers[0].command",
            "pod `p`: expected a list of strings, found `sleep 3600`"
        )
    );
    let (d, _) = one(&pod_with("    args: [sleep, 3600]\n"));
    assert_eq!(
        d,
        at(
            8,
            19,
            "spec.containers[0].args[1]",
            "pod `p`: expected a string, found the number 3600"
        )
    );
}

#[test]
fn containers_must_be_a_list() {
    let e = errors("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: nginx\n");
    assert_eq!(
        e,
        [
            at(
                5,
                15,
                "spec.containers",
                "pod `p`: expected a list of containers, found `nginx`"
            ),
            at(
                5,
                15,
                "spec.containers",
                "pod `p`: a pod needs at least one container"
            ),
        ]
    );
    let (d, _) = one(&pod_with("    ports: 80\n"));
    assert_eq!(
        d,
        at(
            8,
            12,
            "spec.containers[0].ports",
            "pod `p`: expected a list of ports, found the number 80"
        )
    );
    let (d, _) = one(&pod_with("    env: {A: b}\n"));
    assert_eq!(
        d,
        at(
            8,
            10,
            "spec.containers[0].env",
            "pod `p`: expected a list of variables, found a mapping"
        )
    );
}

#[test]
fn labels_are_checked() {
    let (d, h) =
        one("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels:\n    version: 1.0\n");
    assert_eq!(
        d,
        at(
            6,
            14,
            "metadata.labels.version",
            "expected a string, found the number 1.0"
        )
    );
    assert_eq!(h.as_deref(), Some("quote it: \"1.0\""));
    let (d, _) =
        one("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels:\n    app: -web\n");
    assert!(
        d.3.starts_with("label value `-web` is not valid"),
        "{}",
        d.3
    );
    assert_eq!((d.0, d.1, d.2.as_str()), (6, 5, "metadata.labels.app"));
    let (d, _) =
        one("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels:\n    bad key: x\n");
    assert!(
        d.3.starts_with("label key `bad key` is not valid"),
        "{}",
        d.3
    );
    let (d, _) = one("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels: [a]\n");
    assert_eq!(
        d,
        at(
            5,
            11,
            "metadata.labels",
            "expected a mapping of labels, found a list"
        )
    );
    let f = ok("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels:\n    example.com/tier: \"1\"\n    empty:\n");
    assert_eq!(
        f.namespaces[0].labels.get("empty").map(String::as_str),
        Some("")
    );
}

// ---- integers ----

#[test]
fn container_port_range_and_type() {
    let cases = [
        (
            "0",
            "pod `p`: expected an integer 1-65535, found the number 0",
            None,
        ),
        (
            "65536",
            "pod `p`: expected an integer 1-65535, found the number 65536",
            None,
        ),
        (
            "99999999999999999999",
            "pod `p`: expected an integer 1-65535, found the number 99999999999999999999",
            None,
        ),
        (
            "8.5",
            "pod `p`: expected an integer 1-65535, found the number 8.5",
            None,
        ),
        (
            "http",
            "pod `p`: expected an integer 1-65535, found `http`",
            None,
        ),
        (
            "\"80\"",
            "pod `p`: expected an integer 1-65535, found the string \"80\"",
            Some("remove the quotes: a number in quotes is a string"),
        ),
    ];
    for (value, message, hint) in cases {
        let (d, h) = one(&pod_with(&format!(
            "    ports:\n    - containerPort: {value}\n"
        )));
        assert_eq!(
            d,
            at(9, 22, "spec.containers[0].ports[0].containerPort", message)
        );
        assert_eq!(h.as_deref(), hint);
    }
}

#[test]
fn port_without_container_port() {
    let (d, _) = one(&pod_with("    ports:\n    - name: http\n"));
    assert_eq!(
        d,
        at(
            9,
            7,
            "spec.containers[0].ports[0].containerPort",
            "pod `p`: port has no containerPort"
        )
    );
}

#[test]
fn port_name_must_be_iana_svc_name() {
    for bad in ["HTTP", "8080", "web-frontend-port", "a--b", "-a"] {
        let (d, h) = one(&pod_with(&format!(
            "    ports:\n    - containerPort: 80\n      name: \"{bad}\"\n"
        )));
        assert_eq!(
            d,
            at(
                10,
                13,
                "spec.containers[0].ports[0].name",
                &format!("pod `p`: port name `{bad}` is not valid")
            )
        );
        assert!(h.unwrap_or_default().contains("IANA_SVC_NAME"));
    }
}

#[test]
fn protocol_must_be_known() {
    let (d, h) = one(&pod_with(
        "    ports:\n    - containerPort: 53\n      protocol: udp\n",
    ));
    assert_eq!(
        d,
        at(
            10,
            17,
            "spec.containers[0].ports[0].protocol",
            "pod `p`: expected TCP, UDP or SCTP, found `udp`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `UDP`?"));
    let f = ok(&pod_with(
        "    ports:\n    - containerPort: 53\n      protocol: UDP\n",
    ));
    assert_eq!(
        f.pods[0].spec.containers[0].ports[0].protocol,
        Protocol::Udp
    );
}

#[test]
fn env_without_name() {
    let (d, _) = one(&pod_with("    env:\n    - value: x\n"));
    assert_eq!(
        d,
        at(
            9,
            7,
            "spec.containers[0].env[0].name",
            "pod `p`: environment variable has no name"
        )
    );
}

// ---- names ----

#[test]
fn object_names_must_be_labels() {
    let (d, h) = one(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web.shop}\nspec: {containers: [{name: c}]}\n",
    );
    assert_eq!(
        d,
        at(
            3,
            18,
            "metadata.name",
            "pod name `web.shop` is not a DNS-1123 label"
        )
    );
    assert!(h.unwrap_or_default().starts_with(
        "Kubernetes accepts dotted pod names, but podlab uses the name as a hostname"
    ));

    let (d, h) = one("apiVersion: v1\nkind: Namespace\nmetadata: {name: My_Shop}\n");
    assert_eq!(
        d,
        at(
            3,
            18,
            "metadata.name",
            "namespace name `My_Shop` is not a DNS-1123 label"
        )
    );
    assert!(h.unwrap_or_default().ends_with("e.g. `my-shop`"));

    let (d, _) = one(&pod_with("  - name: Sidecar\n"));
    assert_eq!(
        d,
        at(
            8,
            11,
            "spec.containers[1].name",
            "pod `p`: container name `Sidecar` is not a DNS-1123 label"
        )
    );
}

#[test]
fn namespace_field_must_be_a_label() {
    let e = errors("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: Shop}\nspec: {containers: [{name: c}]}\n");
    assert_eq!(
        e,
        [
            at(
                3,
                32,
                "metadata.namespace",
                "namespace name `Shop` is not a DNS-1123 label"
            ),
            at(
                3,
                32,
                "metadata.namespace",
                "pod `p`: namespace `Shop` does not exist"
            ),
        ]
    );
}

#[test]
fn hostname_and_subdomain_must_be_labels() {
    let e = errors("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostname: Web\n  subdomain: a.b\n  containers: [{name: c}]\n");
    assert_eq!(
        e,
        [
            at(
                5,
                13,
                "spec.hostname",
                "pod `p`: hostname `Web` is not a DNS-1123 label"
            ),
            at(
                6,
                14,
                "spec.subdomain",
                "pod `p`: subdomain `a.b` is not a DNS-1123 label"
            ),
        ]
    );
}

#[test]
fn missing_names() {
    let e = errors(
        "apiVersion: v1\nkind: Pod\nmetadata: {labels: {a: b}}\nspec: {containers: [{image: x}]}\n",
    );
    assert_eq!(
        e,
        [
            at(3, 11, "metadata.name", "pod has no name"),
            at(4, 21, "spec.containers[0].name", "container has no name"),
        ]
    );
    let (d, _) = one("apiVersion: v1\nkind: Namespace\n");
    assert_eq!(d, at(1, 1, "metadata.name", "namespace has no name"));
    let (d, _) = one("apiVersion: podlab/v1alpha1\nkind: Lab\nspec: {nodes: 1}\n");
    assert_eq!(d, at(1, 1, "metadata.name", "lab has no name"));
}

#[test]
fn lab_name_rules() {
    let (d, h) =
        one("apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: a-lab-with-a-long-name}\n");
    assert_eq!(
        d,
        at(3, 18, "metadata.name", "lab `a-lab-with-a-long-name`: lab name `a-lab-with-a-long-name` is 22 characters, at most 20 are allowed")
    );
    assert!(h
        .unwrap_or_default()
        .contains("prefixes the name of every kernel object"));
    let (d, _) = one("apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: Basics}\n");
    assert_eq!(
        d,
        at(
            3,
            18,
            "metadata.name",
            "lab name `Basics` is not a DNS-1123 label"
        )
    );
}

// ---- the Lab document ----

const LAB: &str = "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: l}\nspec:\n";

#[test]
fn node_counts() {
    let (d, _) = one(&format!("{LAB}  nodes: 0\n"));
    assert_eq!(
        d,
        at(5, 10, "spec.nodes", "lab `l`: a lab needs at least 1 node")
    );
    let (d, _) = one(&format!("{LAB}  nodes: 251\n"));
    assert_eq!(
        d,
        at(
            5,
            10,
            "spec.nodes",
            "lab `l`: 251 nodes is too many: at most 250"
        )
    );
    let (d, _) = one(&format!("{LAB}  nodes: []\n"));
    assert_eq!(
        d,
        at(5, 10, "spec.nodes", "lab `l`: a lab needs at least 1 node")
    );
    let (d, _) = one(&format!("{LAB}  nodes: two\n"));
    assert_eq!(
        d,
        at(
            5,
            10,
            "spec.nodes",
            "lab `l`: expected an integer 1-250 or a list of nodes, found `two`"
        )
    );
    let many = format!("{LAB}  nodes: [{}]\n", vec!["{name: n}"; 251].join(", "));
    let (d, _) = one(&many);
    assert_eq!(
        d,
        at(
            5,
            10,
            "spec.nodes",
            "lab `l`: 251 nodes is too many: at most 250"
        )
    );
    let f = ok(&format!(
        "{LAB}  nodes: 250\n  network: {{loadBalancerPool: 172.18.0.252-172.18.0.252}}\n"
    ));
    assert_eq!(f.lab.nodes.len(), 250);
    assert_eq!(f.lab.nodes[249].name, "node-250");
}

#[test]
fn node_entries() {
    let e = errors(&format!(
        "{LAB}  nodes:\n  - labels: {{a: b}}\n  - Node_2\n  - name: Node_3\n"
    ));
    assert_eq!(
        e,
        [
            at(6, 5, "spec.nodes[0].name", "lab `l`: node has no name"),
            at(
                7,
                5,
                "spec.nodes[1]",
                "lab `l`: expected a mapping, found `Node_2`"
            ),
            at(
                8,
                11,
                "spec.nodes[2].name",
                "lab `l`: node name `Node_3` is not a DNS-1123 label"
            ),
        ]
    );
}

#[test]
fn duplicate_node_names() {
    let (d, _) = one(&format!("{LAB}  nodes:\n  - name: a\n  - name: a\n"));
    assert_eq!(
        d,
        at(
            7,
            11,
            "spec.nodes[1].name",
            "lab `l`: node `a` is defined twice (first at line 6)"
        )
    );
}

#[test]
fn network_field_syntax() {
    let e = errors(&format!(
        "{LAB}  network:
    nodeCIDR: 10.244.0.0/33
    podCIDR: 10.244.0.0
    serviceCIDR: cluster
    podCIDRMask: 33
    clusterDomain: Cluster_Local
    dnsIP: 10.96.0.300
    nodePortRange: 30000
    loadBalancerPool: 172.18.0.200
    mtu: 100
    speed: fast
"
    ));
    assert_eq!(
        e,
        [
            at(6, 15, "spec.network.nodeCIDR", "lab `l`: expected an IPv4 CIDR like 10.244.0.0/16, found `10.244.0.0/33`"),
            at(7, 14, "spec.network.podCIDR", "lab `l`: expected an IPv4 CIDR like 10.244.0.0/16, found `10.244.0.0`"),
            at(8, 18, "spec.network.serviceCIDR", "lab `l`: expected an IPv4 CIDR like 10.244.0.0/16, found `cluster`"),
            at(9, 18, "spec.network.podCIDRMask", "lab `l`: expected an integer 1-32 (a prefix length), found the number 33"),
            at(10, 20, "spec.network.clusterDomain", "lab `l`: clusterDomain `Cluster_Local` is not a DNS domain"),
            at(11, 12, "spec.network.dnsIP", "lab `l`: expected an IPv4 address like 10.96.0.10, found `10.96.0.300`"),
            at(12, 20, "spec.network.nodePortRange", "lab `l`: expected a string, found the number 30000"),
            at(13, 23, "spec.network.loadBalancerPool", "lab `l`: expected an address range like 172.18.0.200-172.18.0.250, found `172.18.0.200`"),
            at(14, 10, "spec.network.mtu", "lab `l`: expected an integer 576-9000, found the number 100"),
            at(15, 5, "spec.network.speed", "lab `l`: unknown field `speed`"),
        ]
    );
    let e = match parse(
        "lab.yaml",
        &format!("{LAB}  network:\n    nodeCIDR: 10.244.0.0/33\n    podCIDR: 10.244.0.0\n"),
    ) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    };
    assert_eq!(
        e.diagnostics[0].hint.as_deref(),
        Some("an IPv4 prefix length is 0-32")
    );
    assert_eq!(
        e.diagnostics[1].hint.as_deref(),
        Some("add a prefix length, e.g. 10.244.0.0/24")
    );
}

#[test]
fn node_port_range_syntax() {
    let (d, _) = one(&format!(
        "{LAB}  network:\n    nodePortRange: 30000-70000\n"
    ));
    assert_eq!(
        d,
        at(
            6,
            20,
            "spec.network.nodePortRange",
            "lab `l`: nodePortRange 30000-70000 is outside the port numbers 1-65535"
        )
    );
    let (d, _) = one(&format!("{LAB}  network:\n    nodePortRange: 0-100\n"));
    assert_eq!(
        d.3,
        "lab `l`: nodePortRange 0-100 is outside the port numbers 1-65535"
    );
    let (d, _) = one(&format!("{LAB}  network:\n    nodePortRange: low-high\n"));
    assert_eq!(
        d.3,
        "lab `l`: expected a port range like 30000-32767, found `low-high`"
    );
}

#[test]
fn expect_must_be_a_list() {
    let (d, _) = one(&format!("{LAB}  expect: {{from: a}}\n"));
    assert_eq!(
        d,
        at(
            5,
            11,
            "spec.expect",
            "lab `l`: expected a list of expectations, found a mapping"
        )
    );
}

#[test]
fn cidr_with_host_bits() {
    let (d, h) = one(&format!("{LAB}  network:\n    podCIDR: 10.244.1.0/16\n"));
    assert_eq!(
        d,
        at(
            6,
            14,
            "spec.network.podCIDR",
            "lab `l`: podCIDR `10.244.1.0/16` has host bits set"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean 10.244.0.0/16?"));
}

#[test]
fn overlapping_ranges() {
    let (d, _) = one(&format!("{LAB}  network:\n    podCIDR: 10.96.0.0/16\n"));
    assert_eq!(
        d,
        at(
            6,
            14,
            "spec.network.podCIDR",
            "lab `l`: podCIDR 10.96.0.0/16 overlaps serviceCIDR 10.96.0.0/12"
        )
    );
    let (d, _) = one(&format!(
        "{LAB}  network:\n    serviceCIDR: 172.16.0.0/12\n    dnsIP: 172.16.0.10\n    loadBalancerPool: 172.18.0.200-172.18.0.250\n"
    ));
    assert_eq!(
        d,
        at(
            6,
            18,
            "spec.network.serviceCIDR",
            "lab `l`: nodeCIDR 172.18.0.0/24 overlaps serviceCIDR 172.16.0.0/12"
        )
    );
}

#[test]
fn dns_ip_outside_service_cidr() {
    let (d, h) = one(&format!("{LAB}  network:\n    dnsIP: 10.244.0.10\n"));
    assert_eq!(
        d,
        at(
            6,
            12,
            "spec.network.dnsIP",
            "lab `l`: dnsIP 10.244.0.10 is outside serviceCIDR 10.96.0.0/12"
        )
    );
    assert!(h.unwrap_or_default().ends_with("e.g. 10.96.0.10"));
}

#[test]
fn load_balancer_pool() {
    let (d, h) = one(&format!(
        "{LAB}  network:\n    loadBalancerPool: 172.18.0.250-172.18.0.200\n"
    ));
    assert_eq!(
        d,
        at(
            6,
            23,
            "spec.network.loadBalancerPool",
            "lab `l`: loadBalancerPool 172.18.0.250-172.18.0.200 is reversed"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("write the lower address first: 172.18.0.200-172.18.0.250")
    );
    let (d, _) = one(&format!(
        "{LAB}  network:\n    loadBalancerPool: 192.168.0.1-192.168.0.9\n"
    ));
    assert_eq!(
        d,
        at(
            6,
            23,
            "spec.network.loadBalancerPool",
            "lab `l`: loadBalancerPool 192.168.0.1-192.168.0.9 is outside nodeCIDR 172.18.0.0/24"
        )
    );
}

#[test]
fn load_balancer_pool_overlaps_used_addresses() {
    let (d, h) = one(&format!(
        "{LAB}  nodes: 3\n  network:\n    loadBalancerPool: 172.18.0.1-172.18.0.3\n"
    ));
    assert_eq!(
        d,
        at(7, 23, "spec.network.loadBalancerPool", "lab `l`: loadBalancerPool 172.18.0.1-172.18.0.3 overlaps the gateway 172.18.0.1 and the node addresses 172.18.0.2-172.18.0.4")
    );
    assert!(h.is_some());
    let (d, _) = one(&format!(
        "{LAB}  network:\n    loadBalancerPool: 172.18.0.250-172.18.0.254\n"
    ));
    assert_eq!(
        d.3,
        "lab `l`: loadBalancerPool 172.18.0.250-172.18.0.254 overlaps the client addresses 172.18.0.253-172.18.0.254 (external and lb)"
    );
}

#[test]
fn node_port_range_reversed() {
    let (d, _) = one(&format!(
        "{LAB}  network:\n    nodePortRange: 32767-30000\n"
    ));
    assert_eq!(
        d,
        at(
            6,
            20,
            "spec.network.nodePortRange",
            "lab `l`: nodePortRange 32767-30000 is reversed"
        )
    );
}

#[test]
fn pod_cidr_mask() {
    let (d, h) = one(&format!("{LAB}  network:\n    podCIDRMask: 16\n"));
    assert_eq!(
        d,
        at(
            6,
            18,
            "spec.network.podCIDRMask",
            "lab `l`: podCIDRMask /16 must be longer than podCIDR's /16 and at most /30"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("each node gets one /podCIDRMask slice of podCIDR 10.244.0.0/16, so podCIDRMask must be 17-30")
    );
    let (d, _) = one(&format!("{LAB}  network:\n    podCIDRMask: 31\n"));
    assert_eq!(
        d.3,
        "lab `l`: podCIDRMask /31 must be longer than podCIDR's /16 and at most /30"
    );
}

#[test]
fn pod_cidr_too_small() {
    let (d, _) = one(&format!(
        "{LAB}  nodes: 4\n  network:\n    podCIDR: 10.244.0.0/22\n"
    ));
    assert_eq!(
        d,
        at(7, 14, "spec.network.podCIDR", "lab `l`: podCIDR 10.244.0.0/22 has room for 3 nodes of /24 (node i gets subnet i, from 1), but the lab has 4 nodes")
    );
    // Three nodes fit: subnets 1..3 of four.
    ok(&format!(
        "{LAB}  nodes: 3\n  network:\n    podCIDR: 10.244.0.0/22\n"
    ));
}

#[test]
fn node_cidr_too_small() {
    let (d, _) = one(&format!(
        "{LAB}  nodes: 4\n  network:\n    nodeCIDR: 172.18.0.0/29\n    loadBalancerPool: 172.18.0.5-172.18.0.6\n"
    ));
    assert_eq!(
        d,
        at(7, 15, "spec.network.nodeCIDR", "lab `l`: nodeCIDR 172.18.0.0/29 has 6 usable addresses, but 4 nodes need 7 (the gateway, one per node, and two client addresses)")
    );
    // Two nodes fit, with one address left for the pool.
    ok(&format!(
        "{LAB}  nodes: 2\n  network:\n    nodeCIDR: 172.18.0.0/29\n    loadBalancerPool: 172.18.0.4-172.18.0.4\n"
    ));
}

// ---- pods and deployments ----

#[test]
fn pod_without_spec_or_containers() {
    let (d, _) = one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n");
    assert_eq!(d, at(1, 1, "spec", "pod `p`: pod has no `spec`"));
    let (d, _) = one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: []\n");
    assert_eq!(
        d,
        at(
            5,
            15,
            "spec.containers",
            "pod `p`: a pod needs at least one container"
        )
    );
}

#[test]
fn restart_policy() {
    let (d, h) = one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: never\n  containers: [{name: c}]\n");
    assert_eq!(
        d,
        at(
            5,
            18,
            "spec.restartPolicy",
            "pod `p`: expected Always, OnFailure or Never, found `never`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `Never`?"));
    let f = ok("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: OnFailure\n  containers: [{name: c}]\n");
    assert_eq!(f.pods[0].spec.restart_policy, RestartPolicy::OnFailure);
}

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";

#[test]
fn deployment_template_restart_policy() {
    let (d, _) = one(&format!(
        "{DEPLOY}spec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c}}]\n"
    ));
    assert_eq!(
        d,
        at(
            9,
            22,
            "spec.template.spec.restartPolicy",
            "deployment `web`: a deployment's pods must have restartPolicy Always, found `Never`"
        )
    );
}

#[test]
fn deployment_structure() {
    let (d, _) = one(DEPLOY);
    assert_eq!(
        d,
        at(1, 1, "spec", "deployment `web`: deployment has no `spec`")
    );
    let e = errors(&format!("{DEPLOY}spec:\n  replicas: -1\n"));
    assert_eq!(
        e,
        [
            at(
                5,
                3,
                "spec.selector",
                "deployment `web`: deployment has no `spec.selector`"
            ),
            at(
                5,
                3,
                "spec.template",
                "deployment `web`: deployment has no `spec.template`"
            ),
            at(
                5,
                13,
                "spec.replicas",
                "deployment `web`: expected an integer 0-10000, found the number -1"
            ),
        ]
    );
    let e = errors(&format!(
        "{DEPLOY}spec:\n  selector: {{}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n"
    ));
    assert_eq!(
        e,
        [
            at(
                5,
                13,
                "spec.selector.matchLabels",
                "deployment `web`: selector has no matchLabels"
            ),
            at(
                7,
                5,
                "spec.template.spec",
                "deployment `web`: pod template has no `spec`"
            ),
        ]
    );
    let (d, _) = one(&format!(
        "{DEPLOY}spec:\n  selector: {{matchLabels: {{}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c}}]}}\n"
    ));
    assert_eq!(
        d,
        at(
            5,
            27,
            "spec.selector.matchLabels",
            "deployment `web`: selector matches every pod: matchLabels is empty"
        )
    );
}

#[test]
fn deployment_selector_must_match_template() {
    let (d, h) = one(&format!(
        "{DEPLOY}spec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata: {{labels: {{app: api}}}}\n    spec: {{containers: [{{name: c}}]}}\n"
    ));
    assert_eq!(
        d,
        at(
            6,
            18,
            "spec.selector.matchLabels",
            "deployment `web`: selector does not match template labels"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("spec.template.metadata.labels lacks app: web")
    );
}

#[test]
fn deployment_template_ignores_name() {
    let f = ok(&format!(
        "{DEPLOY}spec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{name: x, labels: {{app: web}}}}\n    spec: {{containers: [{{name: c}}]}}\n"
    ));
    assert_eq!(f.ignored[0].field, "spec.template.metadata.name");
}

// ---- cross-object checks ----

#[test]
fn duplicate_object_names() {
    let text = format!(
        "{SEED}---\n{}",
        SEED.split("---").next().unwrap_or_default()
    );
    let (d, _) = one(&text);
    assert_eq!(
        d,
        at(
            33,
            9,
            "metadata.name",
            "pod `pod-1` in namespace `default` is defined twice (first at line 5)"
        )
    );
    // The same name in another namespace is another pod.
    let other = text.replacen(
        "  name: pod-1\n  labels",
        "  name: pod-1\n  namespace: kube-system\n  labels",
        1,
    );
    ok(&other);

    let e = errors(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n",
    );
    assert_eq!(
        e,
        [
            at(
                7,
                18,
                "metadata.name",
                "namespace `a` is defined twice (first at line 3)"
            ),
            at(
                16,
                18,
                "metadata.name",
                "service `s` in namespace `default` is defined twice (first at line 11)"
            ),
        ]
    );
    let dep = format!(
        "{DEPLOY}spec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: c}}]}}\n"
    );
    let (d, _) = one(&format!("{dep}---\n{dep}"));
    assert_eq!(
        d,
        at(
            12,
            18,
            "metadata.name",
            "deployment `web` in namespace `default` is defined twice (first at line 3)"
        )
    );
}

#[test]
fn undeclared_namespace() {
    let (d, h) = one("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: shop\nspec: {containers: [{name: c}]}\n");
    assert_eq!(
        d,
        at(
            5,
            14,
            "metadata.namespace",
            "pod `p`: namespace `shop` does not exist"
        )
    );
    assert!(h
        .unwrap_or_default()
        .starts_with("add a Namespace document:"));
    let (d, _) = one(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c}]}\n",
    );
    assert_eq!(
        d,
        at(
            3,
            34,
            "metadata.namespace",
            "deployment `web`: namespace `shop` does not exist"
        )
    );
    ok("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: kube-system}\nspec: {containers: [{name: c}]}\n");
}

#[test]
fn node_name_must_exist() {
    let (d, h) = one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeName: node-3\n  containers: [{name: c}]\n");
    assert_eq!(
        d,
        at(
            5,
            13,
            "spec.nodeName",
            "pod `p`: node `node-3` does not exist"
        )
    );
    assert_eq!(
        h.as_deref(),
        // node-1 and node-2 are equally close: no guess.
        Some("the lab's nodes are node-1, node-2")
    );
    let (_, h) = one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  nodeName: nod-2\n  containers: [{name: c}]\n");
    assert_eq!(
        h.as_deref(),
        Some("the lab's nodes are node-1, node-2; did you mean `node-2`?")
    );
}

#[test]
fn duplicates_within_a_pod() {
    let e = errors(
        "apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: web
    ports:
    - {containerPort: 80, name: http}
    - {containerPort: 80, protocol: UDP}
  - name: web
    ports:
    - {containerPort: 80, name: http}
",
    );
    assert_eq!(
        e,
        [
            at(
                10,
                11,
                "spec.containers[1].name",
                "pod `p`: two containers are named `web` (first at line 6)"
            ),
            at(
                12,
                23,
                "spec.containers[1].ports[0].containerPort",
                "pod `p`: containerPort 80/TCP is declared twice (first at line 8)"
            ),
            at(
                12,
                33,
                "spec.containers[1].ports[0].name",
                "pod `p`: port name `http` is used twice (first at line 8)"
            ),
        ]
    );
}
