//! NetworkPolicy: decoding and validation errors, and the pure compilation
//! (`plan::netpol`): selectors, policy types, peers, ipBlocks, named ports,
//! endPort, and the node table. No root needed (except the one test that
//! loads the table into a throwaway namespace).

use std::net::Ipv4Addr;

use crate::lab::{
    parse, LabError, LabelSelector, PolicyType, Protocol, SelectorOp, SelectorRequirement,
};
use crate::plan::netpol::{self, PolicyPlan};
use crate::plan::{build, kubeproxy, Plan};

/// Namespaces x, y, z (labelled `ns`), pods a, b, c in each (labelled
/// `pod`), each serving TCP and UDP 80 and 81 with upstream's port names;
/// `x/b` also names its TCP 81 `web`, `y/b` its TCP 80 `web`.
pub(crate) fn lab(policies: &str) -> String {
    let mut s = String::from(
        "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: t-np}\nspec: {nodes: 2}\n",
    );
    for ns in ["x", "y", "z"] {
        s.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{ns: {ns}}}}}\n"
        ));
    }
    for ns in ["x", "y", "z"] {
        for pod in ["a", "b", "c"] {
            let web = match (ns, pod) {
                ("x", "b") => "    - {containerPort: 8081, name: web}\n",
                ("y", "b") => "    - {containerPort: 8080, name: web}\n",
                _ => "",
            };
            s.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}, labels: {{pod: {pod}}}}}\nspec:\n  containers:\n  - name: c\n    ports:\n    - {{containerPort: 80, name: serve-80-tcp}}\n    - {{containerPort: 81, name: serve-81-tcp}}\n    - {{containerPort: 80, protocol: UDP, name: serve-80-udp}}\n    - {{containerPort: 81, protocol: UDP, name: serve-81-udp}}\n{web}"
            ));
        }
    }
    s.push_str(policies);
    s
}

fn plan(policies: &str) -> Plan {
    let file = match parse("np.yaml", &lab(policies)) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    build(&file).expect("plans")
}

fn errors(policies: &str) -> LabError {
    match parse("np.yaml", &lab(policies)) {
        Ok(_) => panic!("expected errors for:\n{policies}"),
        Err(e) => e,
    }
}

fn ip(p: &Plan, key: &str) -> Ipv4Addr {
    let (ns, name) = key.split_once('/').expect("ns/name");
    p.pod(ns, name).unwrap_or_else(|| panic!("no pod {key}")).ip
}

fn ok(p: &Plan, from: &str, to: &str, proto: Protocol, port: u16) -> bool {
    netpol::permitted(p, ip(p, from), ip(p, to), proto, port)
}

fn tcp(p: &Plan, from: &str, to: &str, port: u16) -> bool {
    ok(p, from, to, Protocol::Tcp, port)
}

fn policy<'a>(p: &'a Plan, name: &str) -> &'a PolicyPlan {
    p.policies.iter().find(|x| x.name == name).expect("policy")
}

const ALL: [&str; 9] = [
    "x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c",
];

// ---- selectors ----

#[test]
fn selector_operators_follow_kubernetes() {
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let expr = |key: &str, operator, values: &[&str]| LabelSelector {
        match_labels: Default::default(),
        match_expressions: vec![SelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }],
    };
    let web = labels(&[("app", "web")]);
    let none = labels(&[]);
    assert!(LabelSelector::default().matches(&none), "empty selects all");
    assert!(expr("app", SelectorOp::In, &["web", "db"]).matches(&web));
    assert!(!expr("app", SelectorOp::In, &["db"]).matches(&web));
    assert!(!expr("app", SelectorOp::In, &["web"]).matches(&none));
    assert!(!expr("app", SelectorOp::NotIn, &["web"]).matches(&web));
    assert!(
        expr("app", SelectorOp::NotIn, &["web"]).matches(&none),
        "NotIn holds without the key"
    );
    assert!(expr("app", SelectorOp::Exists, &[]).matches(&web));
    assert!(!expr("app", SelectorOp::Exists, &[]).matches(&none));
    assert!(expr("app", SelectorOp::DoesNotExist, &[]).matches(&none));
    assert!(!expr("app", SelectorOp::DoesNotExist, &[]).matches(&web));
    let mut both = expr("app", SelectorOp::Exists, &[]);
    both.match_labels = labels(&[("tier", "front")]);
    assert!(
        !both.matches(&web),
        "matchLabels and expressions must all hold"
    );
    assert_eq!(both.to_string(), "tier=front,app");
    assert_eq!(LabelSelector::default().to_string(), "<none>");
}

#[test]
fn match_expressions_select_pods() {
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: not-a, namespace: x}
spec:
  podSelector:
    matchExpressions: [{key: pod, operator: NotIn, values: [a]}]
",
    );
    assert_eq!(policy(&p, "not-a").selected, vec!["x/b", "x/c"]);
    assert_eq!(
        policy(&p, "not-a").pod_selector.to_string(),
        "pod notin (a)"
    );
}

#[test]
fn namespaces_carry_their_name_label() {
    let file = parse("np.yaml", &lab("")).expect("parses");
    let ns = netpol::namespace_labels(&file);
    assert_eq!(ns["x"]["kubernetes.io/metadata.name"], "x");
    assert_eq!(ns["x"]["ns"], "x");
    assert_eq!(ns["default"]["kubernetes.io/metadata.name"], "default");
    assert_eq!(
        ns["kube-system"]["kubernetes.io/metadata.name"],
        "kube-system"
    );
}

// ---- policy types ----

#[test]
fn policy_types_default_as_kubernetes() {
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: in-only, namespace: x}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: with-egress, namespace: x}
spec:
  podSelector: {}
  egress: [{to: [{podSelector: {}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: empty-egress, namespace: x}
spec: {podSelector: {}, egress: []}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-only, namespace: y}
spec: {podSelector: {}, policyTypes: [Egress]}
",
    );
    use PolicyType::*;
    assert_eq!(policy(&p, "in-only").policy_types, vec![Ingress]);
    assert_eq!(
        policy(&p, "with-egress").policy_types,
        vec![Ingress, Egress]
    );
    assert_eq!(
        policy(&p, "empty-egress").policy_types,
        vec![Ingress],
        "egress: [] is no egress rule"
    );
    assert_eq!(policy(&p, "egress-only").policy_types, vec![Egress]);
    assert_eq!(
        policy(&p, "egress-only").spec["policyTypes"],
        serde_json::json!(["Egress"])
    );
    // y is egress-isolated with no rule: nothing leaves, everything enters.
    assert!(!tcp(&p, "y/a", "z/a", 80));
    assert!(tcp(&p, "z/a", "y/a", 80));
}

#[test]
fn unselected_pods_are_open_and_deny_all_isolates() {
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec: {podSelector: {}, ingress: []}
",
    );
    for from in ALL {
        for to in ALL {
            let expect = from == to || !to.starts_with("x/");
            assert_eq!(tcp(&p, from, to, 80), expect, "{from} -> {to}");
        }
    }
    assert!(netpol::allows(&p, p.pod("y", "a").expect("pod"), PolicyType::Ingress).is_none());
    assert_eq!(
        netpol::allows(&p, p.pod("x", "a").expect("pod"), PolicyType::Ingress),
        Some(vec![])
    );
}

// ---- peers ----

#[test]
fn peers_in_one_item_and_separate_items() {
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: y}}
      podSelector: {matchLabels: {pod: b}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: or, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: y}}
    - podSelector: {matchLabels: {pod: c}}
",
    );
    // AND: only y/b reaches x/a.
    for from in ALL {
        assert_eq!(
            tcp(&p, from, "x/a", 80),
            from == "y/b" || from == "x/a",
            "{from} -> x/a"
        );
    }
    // OR: every pod of y, and x/c (a bare podSelector is the policy's namespace).
    for from in ALL {
        let expect = from.starts_with("y/") || from == "x/c" || from == "x/b";
        assert_eq!(tcp(&p, from, "x/b", 80), expect, "{from} -> x/b");
    }
}

#[test]
fn namespace_selector_by_metadata_name_and_empty() {
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-z, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: z}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-all-pods, namespace: y}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}]}]
",
    );
    assert!(tcp(&p, "z/c", "x/a", 80));
    assert!(!tcp(&p, "y/c", "x/a", 80));
    assert!(!tcp(&p, "x/b", "x/a", 80), "own namespace not selected");
    assert!(
        tcp(&p, "x/b", "y/a", 80),
        "namespaceSelector {{}}: every pod"
    );
}

#[test]
fn ip_block_with_except() {
    let p = plan("");
    let xa = ip(&p, "x/a");
    let policies = format!(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: block, namespace: y}}
spec:
  podSelector: {{}}
  ingress:
  - from: [{{ipBlock: {{cidr: 10.244.0.0/16, except: [{xa}/32]}}}}]
"
    );
    let p = plan(&policies);
    for from in ALL {
        for to in ["y/a", "y/b", "y/c"] {
            assert_eq!(tcp(&p, from, to, 80), from != "x/a", "{from} -> {to}");
        }
    }
    // Outside the block (a node, say): dropped.
    assert!(!netpol::permitted(
        &p,
        "172.18.0.3".parse().expect("ip"),
        ip(&p, "y/a"),
        Protocol::Tcp,
        80
    ));
}

// ---- ports ----

#[test]
fn ports_protocols_and_end_port() {
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ports, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports:
    - {port: 80}
    - {protocol: UDP, port: 81}
    - {protocol: TCP, port: 8000, endPort: 8100}
    - {protocol: SCTP}
",
    );
    assert!(tcp(&p, "y/a", "x/a", 80));
    assert!(!tcp(&p, "y/a", "x/a", 81));
    assert!(!ok(&p, "y/a", "x/a", Protocol::Udp, 80));
    assert!(ok(&p, "y/a", "x/a", Protocol::Udp, 81));
    assert!(
        tcp(&p, "y/a", "x/a", 8000) && tcp(&p, "y/a", "x/a", 8100) && tcp(&p, "y/a", "x/a", 8050)
    );
    assert!(!tcp(&p, "y/a", "x/a", 8101) && !tcp(&p, "y/a", "x/a", 7999));
    assert!(
        ok(&p, "y/a", "x/a", Protocol::Sctp, 9999),
        "a protocol without a port: every port"
    );
}

#[test]
fn named_ports_resolve_per_destination_pod() {
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{port: web}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-out, namespace: z}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{ports: [{port: web}, {port: serve-80-udp, protocol: UDP}]}]
",
    );
    // Ingress: x/b names 8081 `web`; x/a and x/c have no `web`: closed.
    assert!(tcp(&p, "y/a", "x/b", 8081));
    assert!(!tcp(&p, "y/a", "x/b", 80));
    assert!(!tcp(&p, "y/a", "x/a", 8081));
    // Egress: to each destination on its own `web`.
    assert!(tcp(&p, "z/a", "y/b", 8080));
    assert!(!tcp(&p, "z/a", "y/b", 8081), "y/b's web is 8080");
    assert!(!tcp(&p, "z/a", "y/a", 8080), "y/a has no port named web");
    assert!(ok(&p, "z/a", "y/a", Protocol::Udp, 80));
    assert!(!ok(&p, "z/a", "y/a", Protocol::Udp, 81));
}

#[test]
fn policies_are_additive() {
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: 80}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-z, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}], ports: [{port: 81}]}]
",
    );
    assert!(tcp(&p, "y/a", "x/a", 80) && !tcp(&p, "y/a", "x/a", 81));
    assert!(tcp(&p, "z/a", "x/a", 81) && !tcp(&p, "z/a", "x/a", 80));
    assert!(!tcp(&p, "x/b", "x/a", 80));
    assert_eq!(
        netpol::selecting(&p, p.pod("x", "a").expect("pod"), PolicyType::Ingress).len(),
        2
    );
}

#[test]
fn egress_and_ingress_must_both_allow() {
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: out-to-yb, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: yb-only-80, namespace: y}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress: [{ports: [{port: 80}]}]
",
    );
    assert!(tcp(&p, "x/a", "y/b", 80));
    assert!(
        !tcp(&p, "x/a", "y/b", 81),
        "egress allows, ingress does not"
    );
    assert!(
        !tcp(&p, "x/a", "y/a", 80),
        "ingress open, egress does not allow"
    );
}

// ---- the node table ----

#[test]
fn node_table_names_policies_and_counts() {
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-y, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: 80, endPort: 81}]}]
",
    );
    let node = &p.nodes[0];
    let json = kubeproxy::to_json(&netpol::node_ruleset(&p, node));
    assert!(json.contains("\"hook\":\"forward\""), "{json}");
    assert!(
        json.contains("x/allow-y: ingress rule 0"),
        "comments name ns/policy: {json}"
    );
    assert!(json.contains("\"counter\":\"allow-x-allow-y\""), "{json}");
    assert!(json.contains("drop-ingress-x-"), "{json}");
    assert!(json.contains("\"map\":\"verdict\""), "{json}");
    assert!(
        json.contains(r#"["established","related"]"#) && json.contains(r#"{"accept":null}"#),
        "replies are accepted: {json}"
    );
    // Only this node's pods get chains.
    for pod in p.pods.iter().filter(|x| x.namespace == "x") {
        let chain = netpol::pod_chain(PolicyType::Ingress, pod);
        assert_eq!(
            json.contains(&format!("\"{chain}\"")),
            pod.node == node.name,
            "{chain}"
        );
    }
    let pol = policy(&p, "allow-y");
    assert_eq!(netpol::drop_counters(&p, pol).len(), 3);
    assert_eq!(netpol::allow_counter("x", &"p".repeat(300)).len(), 200);
}

/// Loads each node's table with the real `nft`, in a throwaway namespace.
#[test]
fn the_kernel_accepts_the_table() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "needs root in CI"
        );
        eprintln!("skipping: needs root (a network namespace and nft)");
        return;
    }
    let p = plan(
        "---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: everything, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - {namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchExpressions: [{key: pod, operator: In, values: [a, b]}]}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.244.1.0/24, 10.244.2.5/32]}
    ports: [{port: web}, {protocol: UDP, port: 80, endPort: 81}, {protocol: SCTP, port: 9}]
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0}}]
    ports: [{port: serve-80-tcp}]
",
    );
    for node in &p.nodes {
        use std::io::Write;
        let json = kubeproxy::to_json(&netpol::node_ruleset(&p, node));
        let mut child = std::process::Command::new("unshare")
            .args(["-n", "nft", "-j", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("unshare nft");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(json.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft refused:\n{}\n{json}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---- validation ----

/// The single error of `policies`, as `line:col field: message`.
fn one_error(policies: &str) -> String {
    let e = errors(policies);
    assert_eq!(e.diagnostics.len(), 1, "{e}");
    let d = &e.diagnostics[0];
    format!("{}:{} {}: {}", d.pos.line, d.pos.col, d.field, d.message)
}

/// Line of the first policy document in `lab("")` + `policies`.
fn base_line() -> usize {
    lab("").lines().count()
}

fn policy_doc(spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: x}}\nspec:\n{spec}"
    )
}

#[test]
fn bad_selector_operator() {
    let e = one_error(&policy_doc(
        "  podSelector:\n    matchExpressions: [{key: pod, operator: Equals, values: [a]}]\n",
    ));
    let line = base_line() + 7;
    assert!(e.starts_with(&format!("{line}:")), "{e}");
    assert!(
        e.contains("spec.podSelector.matchExpressions[0].operator"),
        "{e}"
    );
    assert!(
        e.contains("expected In, NotIn, Exists or DoesNotExist, found `Equals`"),
        "{e}"
    );
    let e = errors(&policy_doc(
        "  podSelector:\n    matchExpressions: [{key: pod, operator: notin, values: [a]}]\n",
    ));
    assert_eq!(
        e.diagnostics[0].hint.as_deref(),
        Some("did you mean `NotIn`?")
    );
}

#[test]
fn selector_values_must_fit_the_operator() {
    let e = one_error(&policy_doc(
        "  podSelector:\n    matchExpressions: [{key: pod, operator: In}]\n",
    ));
    assert!(e.contains("operator In needs at least one value"), "{e}");
    let e = one_error(&policy_doc(
        "  podSelector:\n    matchExpressions: [{key: pod, operator: Exists, values: [a]}]\n",
    ));
    assert!(e.contains("operator Exists takes no values"), "{e}");
}

#[test]
fn except_outside_cidr() {
    let e = one_error(&policy_doc(
        "  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: 10.0.0.0/16\n        except: [10.1.0.0/24]\n",
    ));
    let line = base_line() + 11;
    assert!(e.starts_with(&format!("{line}:18 ")), "{e}");
    assert!(
        e.contains("spec.ingress[0].from[0].ipBlock.except[0]"),
        "{e}"
    );
    assert!(
        e.contains("except 10.1.0.0/24 is not inside the ipBlock's cidr 10.0.0.0/16"),
        "{e}"
    );
    let e = one_error(&policy_doc(
        "  podSelector: {}\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.1/16}}]\n",
    ));
    assert!(e.contains("has host bits set"), "{e}");
}

#[test]
fn port_name_not_iana() {
    let e = one_error(&policy_doc(
        "  podSelector: {}\n  ingress:\n  - ports: [{port: Web_Port}]\n",
    ));
    assert!(
        e.contains(
            "spec.ingress[0].ports[0].port: network policy `p`: port name `Web_Port` is not valid"
        ),
        "{e}"
    );
    let e = one_error(&policy_doc(
        "  podSelector: {}\n  ingress:\n  - ports: [{port: \"8080\"}]\n",
    ));
    assert!(e.contains("port name `8080` is not valid"), "{e}");
}

#[test]
fn end_port_without_port_or_below_it() {
    let e = one_error(&policy_doc(
        "  podSelector: {}\n  ingress:\n  - ports: [{endPort: 90}]\n",
    ));
    assert!(e.contains("endPort needs a `port`"), "{e}");
    let e = one_error(&policy_doc(
        "  podSelector: {}\n  ingress:\n  - ports: [{port: 90, endPort: 80}]\n",
    ));
    assert!(e.contains("endPort 80 is lower than port 90"), "{e}");
    let e = one_error(&policy_doc(
        "  podSelector: {}\n  ingress:\n  - ports: [{port: web, endPort: 80}]\n",
    ));
    assert!(e.contains("endPort needs a numeric port"), "{e}");
}

#[test]
fn policy_in_a_namespace_that_does_not_exist() {
    let e = one_error(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: nowhere}\nspec: {podSelector: {}}\n",
    );
    assert!(
        e.contains("metadata.namespace: network policy `p`: namespace `nowhere` does not exist"),
        "{e}"
    );
}

#[test]
fn peers_must_say_something_and_ip_block_stands_alone() {
    let e = one_error(&policy_doc(
        "  podSelector: {}\n  ingress:\n  - from: [{}]\n",
    ));
    assert!(
        e.contains("a peer needs podSelector, namespaceSelector or ipBlock"),
        "{e}"
    );
    let e = one_error(&policy_doc(
        "  podSelector: {}\n  ingress:\n  - from: [{podSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}]\n",
    ));
    assert!(
        e.contains("a peer with ipBlock can have no podSelector"),
        "{e}"
    );
    let e = one_error(&policy_doc("  podSelector: {}\n  policyTypes: [Ingres]\n"));
    assert!(
        e.contains("expected Ingress or Egress, found `Ingres`"),
        "{e}"
    );
}

#[test]
fn a_policy_that_selects_nothing_is_a_warning() {
    let file = parse(
        "np.yaml",
        &lab(&policy_doc("  podSelector: {matchLabels: {pod: nobody}}\n")),
    )
    .expect("valid");
    assert_eq!(file.warnings.len(), 1, "{:?}", file.warnings);
    assert!(file.warnings[0].message.contains("selects no pod"));
}
