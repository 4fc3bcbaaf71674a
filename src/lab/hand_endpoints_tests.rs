//! Endpoints and EndpointSlices written by hand: decoded, checked, and the
//! endpoints of a Service without a selector in the plan.

use std::net::Ipv4Addr;

use super::*;

const HEAD: &str = "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: ep}
spec: {nodes: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: db-a, labels: {app: db}}
spec: {containers: [{name: pg, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {ports: [{name: pg, port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: one}
spec: {ports: [{port: 80}]}
";

const HAND: &str = "---
apiVersion: v1
kind: Endpoints
metadata: {name: db}
subsets:
- addresses: [{ip: 10.244.1.2, nodeName: node-1}, {ip: 192.0.2.7}]
  notReadyAddresses: [{ip: 10.244.1.9}]
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: one-abc12
  labels: {kubernetes.io/service-name: one}
addressType: IPv4
endpoints:
- addresses: [10.244.1.2]
- addresses: [10.244.1.8]
  conditions: {ready: false}
ports: [{port: 8080}]
";

#[test]
fn selectorless_services_take_their_hand_written_endpoints() {
    let file = parse("lab.yaml", &format!("{HEAD}{HAND}")).expect("parses");
    assert_eq!(file.endpoints.len(), 2);
    assert_eq!(file.endpoints[0].kind, HandEndpointsKind::Endpoints);
    assert_eq!(file.endpoints[1].service, "one");
    assert_eq!(
        file.endpoints[1].subsets[0].not_ready,
        [Ipv4Addr::new(10, 244, 1, 8)]
    );
    let plan = crate::plan::build(&file).expect("plans");
    let db = plan.services.iter().find(|s| s.name == "db").unwrap();
    let got: Vec<(String, Ipv4Addr, String, Vec<Option<u16>>)> = db
        .endpoints
        .iter()
        .map(|e| (e.pod.clone(), e.ip, e.node.clone(), e.ports.clone()))
        .collect();
    assert_eq!(
        got,
        [
            // An address of a lab pod is that pod; another is no pod's.
            (
                "db-a".into(),
                Ipv4Addr::new(10, 244, 1, 2),
                "node-1".into(),
                vec![Some(5432)]
            ),
            (
                String::new(),
                Ipv4Addr::new(192, 0, 2, 7),
                String::new(),
                vec![Some(5432)]
            ),
        ]
    );
    // An unnamed Service port takes the slice's one port; unready
    // addresses are not endpoints.
    let one = plan.services.iter().find(|s| s.name == "one").unwrap();
    let ips: Vec<(Ipv4Addr, Vec<Option<u16>>)> = one
        .endpoints
        .iter()
        .map(|e| (e.ip, e.ports.clone()))
        .collect();
    assert_eq!(ips, [(Ipv4Addr::new(10, 244, 1, 2), vec![Some(8080)])]);
    assert!(file.warnings.is_empty(), "{:?}", file.warnings);
}

#[test]
fn hand_written_endpoints_that_serve_nothing_are_warned_of() {
    let text = format!(
        "{HEAD}---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{selector: {{app: db}}, ports: [{{port: 80}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: web}}
subsets: [{{addresses: [{{ip: 10.0.0.1}}], ports: [{{port: 80}}]}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: nobody}}
subsets: [{{addresses: [{{ip: 10.0.0.1}}], ports: [{{port: 80}}]}}]
"
    );
    let file = parse("lab.yaml", &text).expect("parses");
    let warnings: Vec<(usize, String)> = file
        .warnings
        .iter()
        .map(|w| (w.pos.line, w.message.clone()))
        .collect();
    assert_eq!(
        warnings,
        [
            (28, "Endpoints `web` is ignored: Service `web` has a selector, so its endpoints are the pods it selects".to_string()),
            (33, "Endpoints `nobody` is for Service `nobody`, which the file does not have: it serves nothing".to_string()),
        ]
    );
    let plan = crate::plan::build(&file).expect("plans");
    let web = plan.services.iter().find(|s| s.name == "web").unwrap();
    assert_eq!(web.endpoints.len(), 1);
    assert_eq!(web.endpoints[0].pod, "db-a");
}

#[test]
fn bad_hand_written_endpoints_are_errors_at_their_place() {
    let bad = |doc: &str| -> Vec<(usize, usize, String, String)> {
        match parse("lab.yaml", &format!("{HEAD}---\n{doc}")) {
            Ok(_) => panic!("expected errors in:\n{doc}"),
            Err(e) => e
                .diagnostics
                .into_iter()
                .map(|d| (d.pos.line, d.pos.col, d.field, d.message))
                .collect(),
        }
    };
    assert_eq!(
        bad("apiVersion: v1
kind: Endpoints
metadata: {name: db}
subsets: [{addresses: [{ip: 10.244.1.300}], ports: [{port: 5432}]}]
"),
        [(
            24,
            29,
            "subsets[0].addresses[0].ip".to_string(),
            "endpoints `db`: `10.244.1.300` is not an IPv4 address".to_string()
        )]
    );
    assert_eq!(
        bad("apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-x, labels: {kubernetes.io/service-name: db}}
addressType: IPv6
endpoints: [{addresses: ['2001:db8::1']}]
"),
        [(
            24,
            14,
            "addressType".to_string(),
            "endpoint slice `db-x`: addressType `IPv6` is not served: a lab's network is IPv4 only"
                .to_string()
        )]
    );
    let e = bad("apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-x}
addressType: IPv4
endpoints: [{addresses: [10.244.1.2]}]
");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        e[0].3,
        "endpoint slice `db-x`: no label `kubernetes.io/service-name` says which Service `db-x` serves"
    );
}
