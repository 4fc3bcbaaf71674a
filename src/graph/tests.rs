//! The picture built from recorded kernel views: a lab as `up` leaves it
//! shows every part with its address and nothing marked; a link down, a
//! missing route and an extra route are marked on the part they are about;
//! each renderer's output has the structure its readers need.

use std::net::Ipv4Addr;

use super::*;
use crate::kernel::inspect::{Address, Link};

const LAB: &str = r#"
apiVersion: podlab/v1alpha1
kind: Lab
metadata:
  name: gv
spec:
  nodes: 2
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: c, image: nginx, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, labels: {app: web}}
spec:
  nodeName: node-2
  containers: [{name: c, image: nginx, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  nodeName: node-1
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-client}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 8080, protocol: TCP}]
"#;

fn plan_of(text: &str) -> Plan {
    let lab = crate::lab::parse("test", text).expect("lab parses");
    crate::plan::build(&lab).expect("plan builds")
}

fn link(index: u32, name: &str) -> Link {
    Link {
        index,
        name: name.into(),
        up: true,
        master: None,
        mtu: 1500,
        kind: None,
        peer: None,
        mac: None,
        hairpin: None,
    }
}

fn addr(index: u32, ip: Ipv4Addr, prefix: u8) -> Address {
    Address { index, ip, prefix }
}

/// Every namespace as `up` leaves it: the planned addresses on their links.
fn healthy(plan: &Plan) -> Observed {
    let mut seen = Observed::default();
    let p = plan.net.cidr.prefix_len();
    seen.views.insert(
        plan.net.netns.clone(),
        NetnsView {
            links: vec![link(1, "lo"), link(2, &plan.net.bridge)],
            addresses: vec![addr(2, plan.net.gateway, p)],
            ..Default::default()
        },
    );
    for n in &plan.nodes {
        seen.views.insert(
            n.netns.clone(),
            NetnsView {
                links: vec![link(1, "lo"), link(2, ETH0), link(3, POD_BRIDGE)],
                addresses: vec![
                    addr(2, n.ip, p),
                    addr(3, n.pod_gateway, n.pod_cidr.prefix_len()),
                ],
                ..Default::default()
            },
        );
    }
    for c in &plan.clients {
        let mut addresses = vec![addr(2, c.ip, p)];
        if c.name == "lb" {
            addresses.extend(
                plan.services
                    .iter()
                    .filter_map(|s| s.load_balancer_ip)
                    .map(|ip| addr(2, ip, 32)),
            );
        }
        seen.views.insert(
            c.netns.clone(),
            NetnsView {
                links: vec![link(1, "lo"), link(2, ETH0)],
                addresses,
                ..Default::default()
            },
        );
    }
    for pod in &plan.pods {
        seen.views.insert(
            pod.netns.clone(),
            NetnsView {
                links: vec![link(1, "lo"), link(2, ETH0)],
                addresses: vec![addr(2, pod.ip, pod.prefix)],
                ..Default::default()
            },
        );
        seen.pods.insert(
            pod.key(),
            PodState {
                status: "Running".into(),
                ready: true,
            },
        );
    }
    seen
}

fn pod<'a>(g: &'a Graph, key: &str) -> &'a Pod {
    g.nodes
        .iter()
        .flat_map(|n| &n.pods)
        .find(|p| p.part.name == key)
        .unwrap_or_else(|| panic!("no pod {key}"))
}

#[test]
fn a_healthy_lab_shows_every_part_with_its_address_and_no_mark() {
    let plan = plan_of(LAB);
    let g = build(&plan, &healthy(&plan));
    assert_eq!(g.nodes.len(), 2);
    assert_eq!(g.nodes[0].part.address.show(), "172.18.0.2/24");
    assert_eq!(g.nodes[0].cni0.show(), "10.244.1.1/24");
    assert_eq!(g.nodes[0].pod_cidr, "10.244.1.0/24");
    let web1 = pod(&g, "default/web-1");
    assert!(web1.part.address.seen);
    assert_eq!(web1.labels, "app=web");
    assert_eq!(web1.status.as_deref(), Some("Running"));
    let svc = g
        .services
        .iter()
        .find(|s| s.key == "default/web")
        .expect("svc");
    assert_eq!(svc.kind, "NodePort");
    assert!(
        svc.lines.iter().any(|l| l == "NodePort 30080"),
        "{:?}",
        svc.lines
    );
    assert!(svc.lines.iter().any(|l| l.starts_with("ClusterIP 10.")));
    let eps: Vec<&str> = svc.endpoints.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(eps, ["default/web-1", "default/web-2"]);
    let pol = &g.policies[0];
    assert_eq!(pol.selects, ["default/web-1", "default/web-2"]);
    assert_eq!(pol.allows, ["ingress: from default/client on TCP 8080"]);
    assert!(all_marks(&g).is_empty(), "{:?}", all_marks(&g));
    assert!(ascii(&g, false).contains("nothing differs"));
}

#[test]
fn findings_are_marked_on_the_part_they_are_about() {
    let plan = plan_of(LAB);
    let mut seen = healthy(&plan);
    let n1 = &plan.nodes[0];
    let web1 = plan.pod("default", "web-1").expect("web-1");
    seen.findings = vec![
        Finding::LinkDown {
            netns: n1.netns.clone(),
            link: web1.host_veth.clone(),
        },
        Finding::MissingRoute {
            netns: n1.netns.clone(),
            route: crate::kernel::change::Route::via(
                "10.244.2.0/24".parse().expect("net"),
                "172.18.0.3".parse().expect("ip"),
            ),
        },
        Finding::Extra {
            netns: plan.nodes[1].netns.clone(),
            object: crate::kernel::objects::Object::Route(crate::kernel::objects::RouteEntry {
                table: crate::kernel::objects::MAIN_TABLE,
                kind: crate::kernel::change::RouteKind::Blackhole,
                dst: "10.244.1.0".parse().expect("ip"),
                prefix: 24,
                gateway: None,
                oif: None,
                dev: None,
                proto: "boot".into(),
                text: "blackhole 10.244.1.0/24".into(),
            }),
        },
    ];
    seen.pods.get_mut("default/web-2").expect("web-2").ready = false;
    let g = build(&plan, &seen);
    // The pod's veth is on the node, but it is the pod's link that is down.
    assert_eq!(pod(&g, "default/web-1").part.marks.len(), 1);
    assert!(g.nodes[0].part.marks[0].contains("route 10.244.2.0/24"));
    assert!(g.nodes[1].part.marks[0].contains("blackhole"));
    assert!(g.other.is_empty());
    assert_eq!(all_marks(&g).len(), 3);
    let svc = &g.services[0];
    assert_eq!(svc.endpoints[1], ("default/web-2".to_string(), false));
    let text = ascii(&g, false);
    assert!(text.contains("default/web-2 (not ready)"), "{text}");
    assert!(text.contains("! "), "{text}");
    assert!(dot(&g).contains("color=red"));
    assert!(mermaid(&g).contains("class "));
    assert!(svg(&g, false).contains("#c00000"));
}

#[test]
fn an_unreadable_namespace_shows_the_plan_address_and_says_so() {
    let plan = plan_of(LAB);
    let mut seen = healthy(&plan);
    let web2 = plan.pod("default", "web-2").expect("web-2");
    seen.views.remove(&web2.netns);
    seen.findings.push(Finding::MissingNamespace {
        netns: web2.netns.clone(),
    });
    let g = build(&plan, &seen);
    let p = pod(&g, "default/web-2");
    assert!(!p.part.address.seen);
    assert_eq!(
        p.part.address.show(),
        format!("{}/{} (plan)", web2.ip, web2.prefix)
    );
    assert!(p.part.marks[0].contains("missing"));
}

#[test]
fn an_address_other_than_the_planned_one_is_shown_as_the_kernel_has_it() {
    let plan = plan_of(LAB);
    let mut seen = healthy(&plan);
    let n2 = &plan.nodes[1];
    let v = seen.views.get_mut(&n2.netns).expect("node-2 view");
    v.addresses[0] = addr(2, Ipv4Addr::new(172, 18, 0, 99), 24);
    let g = build(&plan, &seen);
    assert_eq!(g.nodes[1].part.address.show(), "172.18.0.99/24");
}

/// Every DOT statement's quotes and braces balance, and each part appears
/// with its address: what graphviz needs to read it, checked without it.
#[test]
fn dot_lists_every_part_with_its_address_and_balances() {
    let plan = plan_of(LAB);
    let text = dot(&build(&plan, &healthy(&plan)));
    assert!(text.starts_with("digraph \"lab gv\" {"));
    assert!(text.trim_end().ends_with('}'));
    for n in &plan.nodes {
        assert!(text.contains(&format!("\"node/{}\"", n.name)));
        assert!(text.contains(&n.ip.to_string()));
    }
    for p in &plan.pods {
        assert!(text.contains(&format!("\"pod/{}\"", p.key())));
        assert!(text.contains(&p.ip.to_string()));
    }
    let ip = plan.services[0].cluster_ip.expect("cluster ip");
    assert!(text.contains(&format!("ClusterIP {ip}")));
    assert!(text.contains("\"svc/default/web\" -> \"pod/default/web-1\""));
    let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
    for c in text.chars() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '{') => depth += 1,
            (false, _, '}') => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0);
    }
    assert_eq!((depth, quoted), (0, false));
}

#[test]
fn dot_and_xml_escape_what_a_finding_may_quote() {
    assert_eq!(dot::quote("a \"b\" \\ c\nd"), r#""a \"b\" \\ c\nd""#);
    assert_eq!(svg::esc("<a & 'b'>\x1b"), "&lt;a &amp; &apos;b&apos;&gt;");
}

#[test]
fn mermaid_has_a_subgraph_per_node_and_an_edge_per_endpoint() {
    let plan = plan_of(LAB);
    let text = mermaid(&build(&plan, &healthy(&plan)));
    assert!(text.starts_with("flowchart TB\n"));
    assert_eq!(text.matches("  subgraph ").count(), 2);
    assert_eq!(text.matches("  end\n").count(), 2);
    assert_eq!(text.matches("s0 --> p").count(), 2, "{text}");
    // `->` in a port is an entity, not an arrow.
    assert!(text.contains("80-#gt;8080/TCP"));
}

/// A well-formedness check of our own SVG: every tag closes in order and
/// attribute values are quoted.
fn balanced_xml(text: &str) -> Result<usize, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut count = 0;
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if tag.starts_with('?') {
            continue;
        }
        if tag.matches('"').count() % 2 != 0 {
            return Err(format!("odd quotes in <{tag}>"));
        }
        count += 1;
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(top) if top == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            stack.push(name);
        }
    }
    if stack.is_empty() {
        Ok(count)
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

#[test]
fn svg_is_well_formed_and_draws_a_line_per_endpoint() {
    let plan = plan_of(LAB);
    let text = svg(&build(&plan, &healthy(&plan)), false);
    assert!(balanced_xml(&text).is_ok(), "{:?}", balanced_xml(&text));
    assert!(text.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    for p in &plan.pods {
        assert!(text.contains(&p.key()));
    }
    // Two endpoint curves of web, one of kube-dns, two policy curves.
    assert_eq!(text.matches("<path ").count(), 5);
}

fn crowded(pods: usize, nodes: usize) -> String {
    let mut s = format!(
        "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {{name: big}}\nspec:\n  nodes: {nodes}\n  network: {{podCIDR: 10.128.0.0/12, podCIDRMask: 20}}\n"
    );
    s.push_str("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n");
    s.push_str(&format!(
        "  replicas: {pods}\n  selector: {{matchLabels: {{app: web}}}}\n"
    ));
    s.push_str("  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]\n");
    s.push_str("---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n");
    s
}

#[test]
fn a_crowded_node_is_collapsed_with_a_count_and_keeps_its_marked_pods() {
    let plan = plan_of(&crowded(100, 4));
    let mut seen = healthy(&plan);
    let last = plan
        .pods
        .iter()
        .rev()
        .find(|p| p.node == "node-1")
        .expect("pod");
    seen.findings.push(Finding::PodDown {
        pod: last.key(),
        status: "Error".into(),
    });
    let g = build(&plan, &seen);
    let n1 = &g.nodes[0];
    let (shown, hidden) = n1.shown(false);
    assert_eq!(shown.len() + hidden, n1.pods.len());
    assert_eq!(
        shown.len(),
        COLLAPSE_AT - 1,
        "the first ones and the marked one"
    );
    assert!(shown.iter().any(|p| p.part.name == last.key()));
    let text = ascii(&g, false);
    assert!(text.contains(&format!("{hidden} more pods")), "{text}");
    assert!(ascii(&g, true).lines().count() > text.lines().count() + 50);
    let picture = svg(&g, false);
    assert!(balanced_xml(&picture).is_ok());
    assert!(picture.contains("more pods"));
    // One line per node group, not one per pod.
    assert!(picture.matches("<path ").count() <= 4 * COLLAPSE_AT);
}

/// The benchmark's figure (scripts/bench-graph.sh): build and render a
/// 1,000-pod lab in every format. Ignored by default: a timing, not a check.
#[test]
#[ignore]
fn bench_graph_1000_pods() {
    let plan = plan_of(&crowded(1000, 10));
    let seen = healthy(&plan);
    let t = std::time::Instant::now();
    let g = build(&plan, &seen);
    let sizes = [
        ascii(&g, false).len(),
        dot(&g).len(),
        mermaid(&g).len(),
        svg(&g, false).len(),
        svg(&g, true).len(),
    ];
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "graph of {} pods on {} nodes, built and rendered as ascii, dot, mermaid, svg, svg --all: {ms:.1} ms (bytes {sizes:?})",
        plan.pods.len(),
        plan.nodes.len()
    );
    assert!(ms < 1000.0, "{ms} ms");
}

#[test]
fn every_part_of_the_svg_is_a_group_the_page_can_click() {
    let plan = plan_of(LAB);
    let text = svg(&build(&plan, &healthy(&plan)), false);
    let mut want = vec![
        "net".to_string(),
        "external".to_string(),
        "lb".to_string(),
        "svc/default/web".to_string(),
        "netpol/default/web-from-client".to_string(),
    ];
    want.extend(plan.nodes.iter().map(|n| format!("node/{}", n.name)));
    want.extend(plan.pods.iter().map(|p| format!("pod/{}", p.key())));
    for part in &want {
        assert!(
            text.contains(&format!(r#"<g class="part" data-part="{part}">"#)),
            "no group for {part}"
        );
    }
    assert_eq!(text.matches("<g ").count(), text.matches("</g>").count());
}
