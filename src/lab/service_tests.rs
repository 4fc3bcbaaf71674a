//! Every diagnostic about a `v1/Service`, errors and warnings, on inline
//! fixtures, with the line:column and field it points at.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::*;

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

/// A diagnostic as (line, col, field, message).
type Found = (usize, usize, String, String);

/// The warnings of a valid file, and their hints.
fn warnings(text: &str) -> (Vec<Found>, Vec<Option<String>>) {
    let f = ok(text);
    (
        f.warnings
            .iter()
            .map(|d| (d.pos.line, d.pos.col, d.field.clone(), d.message.clone()))
            .collect(),
        f.warnings.iter().map(|d| d.hint.clone()).collect(),
    )
}

/// A service `web` whose spec is `spec` (indented 2); the spec starts on
/// line 5.
fn svc(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n{spec}")
}

/// The spec of the only service of a valid file.
fn spec_of(spec: &str) -> ServiceSpec {
    let f = ok(&svc(spec));
    f.services[0].spec.clone()
}

const LAB: &str = "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: l}\nspec:\n";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- whole files that must load ----

#[test]
fn services_are_decoded() {
    let f = ok("apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        ports:
        - {containerPort: 8080, name: http}
        - {containerPort: 5353, name: metrics, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  clusterIP: 10.96.0.50
  clusterIPs: [10.96.0.50]
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: http
    nodePort: 30080
    appProtocol: http
  - name: metrics
    protocol: UDP
    port: 9100
    targetPort: metrics
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: shop}
spec:
  type: LoadBalancer
  loadBalancerIP: 172.18.0.210
  selector: {app: web}
  ports: [{port: 443, targetPort: 8443, nodePort: 31443}]
  allocateLoadBalancerNodePorts: true
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  type: ExternalName
  externalName: db.example.com.
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: peers, namespace: shop}
spec:
  clusterIP: None
  selector: {app: web}
status: {loadBalancer: {}}
");
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    let names: Vec<&str> = f.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web", "front", "db", "peers"]);
    assert_eq!(
        f.services[0].spec,
        ServiceSpec {
            kind: ServiceKind::NodePort,
            cluster_ip: ClusterIpSpec::Fixed(
                Ipv4Addr::new(10, 96, 0, 50),
                Pos { line: 29, col: 14 }
            ),
            selector: Some(labels(&[("app", "web")])),
            ports: vec![
                ServicePort {
                    name: Some("http".into()),
                    protocol: Protocol::Tcp,
                    port: 80,
                    target_port: Some(TargetPortSpec::Name("http".into())),
                    target_port_pos: Pos { line: 35, col: 17 },
                    node_port: Some((30080, Pos { line: 36, col: 15 })),
                    pos: Pos { line: 34, col: 11 },
                },
                ServicePort {
                    name: Some("metrics".into()),
                    protocol: Protocol::Udp,
                    port: 9100,
                    target_port: Some(TargetPortSpec::Name("metrics".into())),
                    target_port_pos: Pos { line: 41, col: 17 },
                    node_port: None,
                    pos: Pos { line: 40, col: 11 },
                },
            ],
            affinity_timeout: Some(60),
            external_local: true,
            internal_local: true,
            publish_not_ready: false,
            external_name: None,
            load_balancer_ip: None,
        }
    );
    let front = &f.services[1].spec;
    assert_eq!(front.kind, ServiceKind::LoadBalancer);
    assert_eq!(front.cluster_ip, ClusterIpSpec::Auto);
    assert_eq!(
        front.load_balancer_ip,
        Some((Ipv4Addr::new(172, 18, 0, 210), Pos { line: 54, col: 19 }))
    );
    assert_eq!(
        front.ports[0].target_port,
        Some(TargetPortSpec::Number(8443))
    );
    assert_eq!(front.ports[0].node_port.map(|(p, _)| p), Some(31443));
    assert_eq!(front.ports[0].name, None);
    let db = &f.services[2].spec;
    assert_eq!(db.kind, ServiceKind::ExternalName);
    assert_eq!(db.external_name.as_deref(), Some("db.example.com."));
    assert_eq!(db.ports.len(), 1);
    let peers = &f.services[3].spec;
    assert_eq!(peers.cluster_ip, ClusterIpSpec::Headless);
    assert!(peers.ports.is_empty());
    let ignored: Vec<(usize, &str)> = f
        .ignored
        .iter()
        .map(|i| (i.pos.line, i.field.as_str()))
        .collect();
    assert_eq!(
        ignored,
        [
            (37, "spec.ports[0].appProtocol"),
            (46, "spec.ipFamilies"),
            (47, "spec.ipFamilyPolicy"),
            (57, "spec.allocateLoadBalancerNodePorts"),
            (73, "status"),
        ]
    );
    // The manifest is kept as written, too.
    assert_eq!(
        f.services[0].raw["spec"]["ports"][0]["targetPort"],
        serde_json::json!("http")
    );
}

#[test]
fn defaults() {
    let s = spec_of("  ports: [{port: 80}]\n");
    assert_eq!(
        s,
        ServiceSpec {
            ports: vec![ServicePort {
                name: None,
                protocol: Protocol::Tcp,
                port: 80,
                target_port: None,
                // No targetPort: it points at the port.
                target_port_pos: Pos { line: 5, col: 18 },
                node_port: None,
                pos: Pos { line: 5, col: 18 },
            }],
            ..ServiceSpec::default()
        }
    );
    assert_eq!(s.kind, ServiceKind::ClusterIP);
    assert_eq!(s.cluster_ip, ClusterIpSpec::Auto);
    assert_eq!(s.selector, None);
    assert_eq!(s.affinity_timeout, None);
    assert!(!s.external_local && !s.internal_local);
    // ClientIP affinity without a config: Kubernetes' three hours.
    let s = spec_of("  sessionAffinity: ClientIP\n  ports: [{port: 80}]\n");
    assert_eq!(s.affinity_timeout, Some(10800));
    let s = spec_of("  sessionAffinity: None\n  ports: [{port: 80}]\n");
    assert_eq!(s.affinity_timeout, None);
    // An explicit empty clusterIP and nodePort 0 ask for allocation.
    let s = spec_of("  type: NodePort\n  clusterIP: \"\"\n  clusterIPs: [\"\"]\n  ports: [{port: 80, nodePort: 0}]\n");
    assert_eq!(s.cluster_ip, ClusterIpSpec::Auto);
    assert_eq!(s.ports[0].node_port, None);
    // Kubernetes stores an empty selector as none.
    let s = spec_of("  selector: {}\n  ports: [{port: 80}]\n");
    assert_eq!(s.selector, None);
    // Only clusterIPs: clusterIP is taken from it.
    let s = spec_of("  clusterIPs: [10.96.0.7]\n  ports: [{port: 80}]\n");
    assert_eq!(
        s.cluster_ip,
        ClusterIpSpec::Fixed(Ipv4Addr::new(10, 96, 0, 7), Pos { line: 5, col: 16 })
    );
    // The same port number over two protocols is two ports.
    let s = spec_of("  ports:\n  - {name: a, port: 53}\n  - {name: b, port: 53, protocol: UDP}\n");
    assert_eq!(s.ports.len(), 2);
}

#[test]
fn headless_and_external_name_need_no_ports() {
    let f = ok(&svc("  clusterIP: None\n"));
    assert_eq!(f.services[0].spec.cluster_ip, ClusterIpSpec::Headless);
    let f = ok(&svc(
        "  type: ExternalName\n  externalName: db.example.com\n  selector: {app: db}\n",
    ));
    assert_eq!(
        f.services[0].spec.external_name.as_deref(),
        Some("db.example.com")
    );
    // An ExternalName service has no endpoints: no warning for its selector.
    assert!(f.warnings.is_empty());
}

// ---- decoding: the type and addresses ----

#[test]
fn unknown_type() {
    let (d, h) = one(&svc(
        "  type: NodePrt\n  ports: [{port: 80, nodePort: 30080}]\n",
    ));
    // The nodePort is not reported as well: the type is what is wrong.
    assert_eq!(
        d,
        at(
            5,
            9,
            "spec.type",
            "service `web`: expected ClusterIP, NodePort, LoadBalancer or ExternalName, found `NodePrt`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `NodePort`?"));
    let (_, h) = one(&svc("  type: loadbalancer\n  ports: [{port: 80}]\n"));
    assert_eq!(h.as_deref(), Some("did you mean `LoadBalancer`?"));
}

#[test]
fn cluster_ip_syntax() {
    let (d, h) = one(&svc("  clusterIP: 10.96.0\n  ports: [{port: 80}]\n"));
    assert_eq!(
        d,
        at(
            5,
            14,
            "spec.clusterIP",
            "service `web`: expected an IPv4 address, `None` (headless) or \"\", found `10.96.0`"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("leave clusterIP out to have one allocated from serviceCIDR")
    );
    let (d, h) = one(&svc("  clusterIP: none\n  ports: [{port: 80}]\n"));
    assert_eq!((d.0, d.1, d.2.as_str()), (5, 14, "spec.clusterIP"));
    assert!(h
        .unwrap_or_default()
        .starts_with("did you mean `None` (headless)?"),);
    let (d, h) = one(&svc("  clusterIP: \"fd00::10\"\n  ports: [{port: 80}]\n"));
    assert_eq!(
        d.3,
        "service `web`: expected an IPv4 address, `None` (headless) or \"\", found `fd00::10`"
    );
    assert_eq!(h.as_deref(), Some("podlab is single-stack IPv4"));
}

#[test]
fn cluster_ips_are_single_stack() {
    let (d, h) = one(&svc(
        "  clusterIP: 10.96.0.5\n  clusterIPs: [10.96.0.5, \"fd00::5\"]\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            27,
            "spec.clusterIPs[1]",
            "service `web`: podlab is single-stack IPv4: a service has one cluster IP"
        )
    );
    assert!(h.is_some());
    let (d, h) = one(&svc(
        "  clusterIP: 10.96.0.5\n  clusterIPs: [10.96.0.6]\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            16,
            "spec.clusterIPs[0]",
            "service `web`: clusterIPs [10.96.0.6] is not [clusterIP], which is `10.96.0.5`"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("podlab is single-stack IPv4, so clusterIPs can only repeat clusterIP; remove clusterIPs")
    );
    let (d, _) = one(&svc("  clusterIPs: 10.96.0.5\n  ports: [{port: 80}]\n"));
    assert_eq!(
        d,
        at(
            5,
            15,
            "spec.clusterIPs",
            "service `web`: expected a list of addresses, found `10.96.0.5`"
        )
    );
}

#[test]
fn cluster_ip_and_type() {
    let (d, h) = one(&svc(
        "  type: ExternalName\n  externalName: db.example.com\n  clusterIP: 10.96.0.5\n",
    ));
    assert_eq!(
        d,
        at(
            7,
            14,
            "spec.clusterIP",
            "service `web`: clusterIP `10.96.0.5` is not allowed for an ExternalName service"
        )
    );
    assert!(h.is_some());
    let (d, h) = one(&svc(
        "  type: NodePort\n  clusterIP: None\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            14,
            "spec.clusterIP",
            "service `web`: a NodePort service cannot be headless (`clusterIP: None`)"
        )
    );
    assert!(h.is_some());
}

#[test]
fn load_balancer_ip_syntax_and_type() {
    let (d, h) = one(&svc(
        "  type: LoadBalancer\n  loadBalancerIP: 172.18.0\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            19,
            "spec.loadBalancerIP",
            "service `web`: expected an IPv4 address like 172.18.0.200, found `172.18.0`"
        )
    );
    assert_eq!(h, None);
    let (d, h) = one(&svc(
        "  type: LoadBalancer\n  loadBalancerIP: \"fd00::1\"\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d.3,
        "service `web`: expected an IPv4 address like 172.18.0.200, found `fd00::1`"
    );
    assert_eq!(h.as_deref(), Some("podlab is single-stack IPv4"));
    let (d, h) = one(&svc(
        "  type: NodePort\n  loadBalancerIP: 172.18.0.200\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            19,
            "spec.loadBalancerIP",
            "service `web`: loadBalancerIP is only allowed for LoadBalancer services, this one is NodePort"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("set `type: LoadBalancer`, or remove loadBalancerIP")
    );
}

#[test]
fn external_name() {
    let (d, h) = one(&svc("  type: ExternalName\n"));
    assert_eq!(
        d,
        at(
            5,
            3,
            "spec.externalName",
            "service `web`: an ExternalName service needs `externalName`"
        )
    );
    assert!(h.is_some());
    let (d, h) = one(&svc(
        "  type: ExternalName\n  externalName: Db_Server.example.com\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            17,
            "spec.externalName",
            "service `web`: externalName `Db_Server.example.com` is not a DNS name"
        )
    );
    assert!(h.is_some());
    let (d, h) = one(&svc(
        "  externalName: db.example.com\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            5,
            17,
            "spec.externalName",
            "service `web`: externalName is only allowed for ExternalName services, this one is ClusterIP"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("set `type: ExternalName`, or remove externalName")
    );
    // A misspelt externalName is reported once, as unknown.
    let (d, h) = one(&svc(
        "  type: ExternalName\n  externalname: db.example.com\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            3,
            "spec.externalname",
            "service `web`: unknown field `externalname`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `externalName`?"));
}

// ---- decoding: selector and ports ----

#[test]
fn selector_labels_are_checked() {
    let (d, _) = one(&svc("  selector: {app: -web}\n  ports: [{port: 80}]\n"));
    assert_eq!((d.0, d.1, d.2.as_str()), (5, 14, "spec.selector.app"));
    assert!(
        d.3.starts_with("service `web`: label value `-web` is not valid"),
        "{}",
        d.3
    );
    let (d, _) = one(&svc("  selector: [app]\n  ports: [{port: 80}]\n"));
    assert_eq!(
        d,
        at(
            5,
            13,
            "spec.selector",
            "service `web`: expected a mapping of labels, found a list"
        )
    );
}

#[test]
fn service_needs_a_port() {
    let (d, h) = one(&svc("  selector: {app: web}\n"));
    assert_eq!(
        d,
        at(
            5,
            3,
            "spec.ports",
            "service `web`: a service needs at least one port"
        )
    );
    assert!(h.unwrap_or_default().starts_with("add `ports:`"));
    let (d, _) = one(&svc("  ports: []\n"));
    assert_eq!(
        d,
        at(
            5,
            10,
            "spec.ports",
            "service `web`: a service needs at least one port"
        )
    );
    // A misspelt `ports` is reported once, as unknown.
    let (d, h) = one(&svc("  prots: [{port: 80}]\n"));
    assert_eq!(
        d,
        at(5, 3, "spec.prots", "service `web`: unknown field `prots`")
    );
    assert_eq!(h.as_deref(), Some("did you mean `ports`?"));
    let (d, _) = one(&svc("  ports: {port: 80}\n"));
    assert_eq!(
        d,
        at(
            5,
            10,
            "spec.ports",
            "service `web`: expected a list of ports, found a mapping"
        )
    );
}

#[test]
fn service_without_spec() {
    let (d, h) = one("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n");
    assert_eq!(d, at(1, 1, "spec", "service `web`: service has no `spec`"));
    assert!(h.is_some());
}

#[test]
fn port_numbers() {
    let (d, h) = one(&svc("  ports:\n  - targetPort: 8080\n"));
    assert_eq!(
        d,
        at(
            6,
            5,
            "spec.ports[0].port",
            "service `web`: service port has no `port`"
        )
    );
    assert!(h.is_some());
    let (d, _) = one(&svc("  ports: [{port: 0}]\n"));
    assert_eq!(
        d,
        at(
            5,
            18,
            "spec.ports[0].port",
            "service `web`: expected an integer 1-65535, found the number 0"
        )
    );
    let (d, h) = one(&svc("  ports: [{port: \"80\"}]\n"));
    assert_eq!(
        d,
        at(
            5,
            18,
            "spec.ports[0].port",
            "service `web`: expected an integer 1-65535, found the string \"80\""
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("remove the quotes: a number in quotes is a string")
    );
    let (d, _) = one(&svc("  ports: [{porrt: 80}]\n"));
    // Misspelt: reported as unknown, not again as missing.
    assert_eq!(
        d,
        at(
            5,
            12,
            "spec.ports[0].porrt",
            "service `web`: unknown field `porrt`"
        )
    );
}

#[test]
fn port_names() {
    let e = errors(&svc("  ports:\n  - port: 80\n  - port: 443\n"));
    assert_eq!(
        e,
        [
            at(
                6,
                5,
                "spec.ports[0].name",
                "service `web`: port has no name: a service with more than one port must name each"
            ),
            at(
                7,
                5,
                "spec.ports[1].name",
                "service `web`: port has no name: a service with more than one port must name each"
            ),
        ]
    );
    let (d, h) = one(&svc("  ports: [{name: HTTP, port: 80}]\n"));
    assert_eq!(
        d,
        at(
            5,
            18,
            "spec.ports[0].name",
            "service `web`: port name `HTTP` is not a DNS-1123 label"
        )
    );
    assert!(h.unwrap_or_default().contains("e.g. `http`"));
    let (d, h) = one(&svc(
        "  ports:\n  - {name: http, port: 80}\n  - {name: http, port: 8080}\n",
    ));
    assert_eq!(
        d,
        at(
            7,
            12,
            "spec.ports[1].name",
            "service `web`: port name `http` is used twice (first at line 6)"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("the ports of a service need distinct names")
    );
}

#[test]
fn duplicate_port_and_protocol() {
    let (d, h) = one(&svc(
        "  ports:\n  - {name: a, port: 80}\n  - {name: b, port: 80, protocol: TCP}\n",
    ));
    assert_eq!(
        d,
        at(
            7,
            21,
            "spec.ports[1].port",
            "service `web`: port 80/TCP is declared twice (first at line 6)"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("a service serves each port and protocol once")
    );
}

#[test]
fn port_protocol() {
    let (d, h) = one(&svc("  ports: [{port: 80, protocol: SCTP}]\n"));
    assert_eq!(
        d,
        at(
            5,
            32,
            "spec.ports[0].protocol",
            "service `web`: protocol SCTP is not supported by podlab's kube-proxy"
        )
    );
    assert_eq!(h.as_deref(), Some("use TCP or UDP"));
    let (d, h) = one(&svc("  ports: [{port: 80, protocol: udp}]\n"));
    assert_eq!(
        d,
        at(
            5,
            32,
            "spec.ports[0].protocol",
            "service `web`: expected TCP or UDP, found `udp`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `UDP`?"));
}

#[test]
fn target_port() {
    let (d, _) = one(&svc("  ports: [{port: 80, targetPort: 70000}]\n"));
    assert_eq!(
        d,
        at(
            5,
            34,
            "spec.ports[0].targetPort",
            "service `web`: expected an integer 1-65535 or a port name, found the number 70000"
        )
    );
    // Kubernetes reads a quoted number as a port name, and rejects it.
    let (d, h) = one(&svc("  ports: [{port: 80, targetPort: \"8080\"}]\n"));
    assert_eq!(
        d,
        at(
            5,
            34,
            "spec.ports[0].targetPort",
            "service `web`: expected an integer 1-65535 or a port name, found the string \"8080\""
        )
    );
    assert!(h.unwrap_or_default().starts_with("remove the quotes"));
    let (d, h) = one(&svc("  ports: [{port: 80, targetPort: http_alt}]\n"));
    assert_eq!(
        d,
        at(
            5,
            34,
            "spec.ports[0].targetPort",
            "service `web`: targetPort `http_alt` is not a valid port name"
        )
    );
    assert!(h.unwrap_or_default().contains("IANA_SVC_NAME"));
    let (d, h) = one(&svc("  ports: [{port: 80, targetPort: true}]\n"));
    assert_eq!(
        d,
        at(
            5,
            34,
            "spec.ports[0].targetPort",
            "service `web`: expected an integer 1-65535 or a port name, found the boolean true"
        )
    );
    assert_eq!(h, None);
}

#[test]
fn node_port_needs_an_external_type() {
    let (d, h) = one(&svc("  ports: [{port: 80, nodePort: 30080}]\n"));
    assert_eq!(
        d,
        at(
            5,
            32,
            "spec.ports[0].nodePort",
            "service `web`: nodePort is only allowed for NodePort and LoadBalancer services, this one is ClusterIP"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("set `type: NodePort`, or remove nodePort")
    );
    let (d, _) = one(&svc(
        "  type: NodePort\n  ports: [{port: 80, nodePort: 70000}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            32,
            "spec.ports[0].nodePort",
            "service `web`: expected an integer 1-65535, found the number 70000"
        )
    );
}

// ---- decoding: affinity and policies ----

#[test]
fn session_affinity() {
    let (d, h) = one(&svc("  sessionAffinity: ClientIp\n  ports: [{port: 80}]\n"));
    assert_eq!(
        d,
        at(
            5,
            20,
            "spec.sessionAffinity",
            "service `web`: expected None or ClientIP, found `ClientIp`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `ClientIP`?"));
    let (d, h) = one(&svc(
        "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            5,
            26,
            "spec.sessionAffinityConfig",
            "service `web`: sessionAffinityConfig is only allowed with `sessionAffinity: ClientIP`"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("set `sessionAffinity: ClientIP`, or remove sessionAffinityConfig")
    );
    for bad in ["0", "86401"] {
        let (d, _) = one(&svc(&format!(
            "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: {bad}\n  ports: [{{port: 80}}]\n"
        )));
        assert_eq!(
            d,
            at(
                8,
                23,
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                &format!(
                    "service `web`: expected an integer 1-86400 (seconds), found the number {bad}"
                )
            )
        );
    }
    let (d, h) = one(&svc(
        "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIp: {timeoutSeconds: 60}}\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            27,
            "spec.sessionAffinityConfig.clientIp",
            "service `web`: unknown field `clientIp`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `clientIP`?"));
}

#[test]
fn traffic_policies() {
    let (d, h) = one(&svc(
        "  type: NodePort\n  externalTrafficPolicy: Global\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            26,
            "spec.externalTrafficPolicy",
            "service `web`: expected Cluster or Local, found `Global`"
        )
    );
    assert!(h.unwrap_or_default().starts_with("did you mean `Cluster`?"));
    let (d, h) = one(&svc(
        "  type: LoadBalancer\n  externalTrafficPolicy: local\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            26,
            "spec.externalTrafficPolicy",
            "service `web`: expected Cluster or Local, found `local`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `Local`?"));
    let (d, h) = one(&svc(
        "  externalTrafficPolicy: Local\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            5,
            26,
            "spec.externalTrafficPolicy",
            "service `web`: externalTrafficPolicy is only allowed for NodePort and LoadBalancer services, this one is ClusterIP"
        )
    );
    assert!(h.is_some());
    let (d, h) = one(&svc(
        "  internalTrafficPolicy: Locale\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            5,
            26,
            "spec.internalTrafficPolicy",
            "service `web`: expected Cluster or Local, found `Locale`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `Local`?"));
}

#[test]
fn publish_not_ready_addresses() {
    assert!(!spec_of("  ports: [{port: 80}]\n").publish_not_ready);
    let s = spec_of("  publishNotReadyAddresses: true\n  ports: [{port: 80}]\n");
    assert!(s.publish_not_ready);
    let s = spec_of("  publishNotReadyAddresses: false\n  ports: [{port: 80}]\n");
    assert!(!s.publish_not_ready);
    let (d, _) = one(&svc(
        "  publishNotReadyAddresses: \"yes\"\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            5,
            29,
            "spec.publishNotReadyAddresses",
            "service `web`: expected true or false, found the string \"yes\""
        )
    );
}

// ---- decoding: fields podlab ignores or cannot honour ----

#[test]
fn ignored_service_fields_are_listed() {
    let f = ok(&svc("  ports: [{port: 80, appProtocol: http}]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  allocateLoadBalancerNodePorts: false
  loadBalancerClass: example.com/lb
  healthCheckNodePort: 32000
  trafficDistribution: PreferClose
status: {loadBalancer: {}}
"));
    let ignored: Vec<(usize, usize, &str)> = f
        .ignored
        .iter()
        .map(|i| (i.pos.line, i.pos.col, i.field.as_str()))
        .collect();
    assert_eq!(
        ignored,
        [
            (5, 22, "spec.ports[0].appProtocol"),
            (6, 3, "spec.ipFamilies"),
            (7, 3, "spec.ipFamilyPolicy"),
            (8, 3, "spec.allocateLoadBalancerNodePorts"),
            (9, 3, "spec.loadBalancerClass"),
            (10, 3, "spec.healthCheckNodePort"),
            (11, 3, "spec.trafficDistribution"),
            (12, 1, "status"),
        ]
    );
}

#[test]
fn unsupported_service_fields() {
    let e = errors(&svc(
        "  ports: [{port: 80}]\n  externalIPs: [192.0.2.10]\n  loadBalancerSourceRanges: [10.0.0.0/8]\n",
    ));
    assert_eq!(
        e,
        [
            at(
                6,
                3,
                "spec.externalIPs",
                "service `web`: field `externalIPs` is not supported by podlab"
            ),
            at(
                7,
                3,
                "spec.loadBalancerSourceRanges",
                "service `web`: field `loadBalancerSourceRanges` is not supported by podlab"
            ),
        ]
    );
    let (_, h) = one(&svc("  ports: [{port: 80}]\n  externalIPs: [192.0.2.10]\n"));
    assert!(h.unwrap_or_default().contains("type: LoadBalancer"));
}

#[test]
fn unknown_service_fields() {
    let (d, h) = one(&svc("  ports: [{port: 80}]\n  selectr: {app: web}\n"));
    assert_eq!(
        d,
        at(
            6,
            3,
            "spec.selectr",
            "service `web`: unknown field `selectr`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `selector`?"));
    let (d, h) = one(&svc("  ports: [{port: 80, tragetPort: 8080}]\n"));
    assert_eq!(
        d,
        at(
            5,
            22,
            "spec.ports[0].tragetPort",
            "service `web`: unknown field `tragetPort`"
        )
    );
    assert_eq!(h.as_deref(), Some("did you mean `targetPort`?"));
}

// ---- validation against the network ----

#[test]
fn cluster_ip_outside_service_cidr() {
    let (d, h) = one(&svc("  clusterIP: 10.244.0.5\n  ports: [{port: 80}]\n"));
    assert_eq!(
        d,
        at(
            5,
            14,
            "spec.clusterIP",
            "service `web`: clusterIP 10.244.0.5 is outside serviceCIDR 10.96.0.0/12"
        )
    );
    assert!(h.unwrap_or_default().contains("e.g. 10.96.0.100"));
    // Read from clusterIPs: the error points there.
    let (d, _) = one(&svc("  clusterIPs: [10.244.0.5]\n  ports: [{port: 80}]\n"));
    assert_eq!(
        d,
        at(
            5,
            16,
            "spec.clusterIPs[0]",
            "service `web`: clusterIP 10.244.0.5 is outside serviceCIDR 10.96.0.0/12"
        )
    );
}

#[test]
fn cluster_ip_network_and_broadcast() {
    let (d, h) = one(&svc("  clusterIP: 10.96.0.0\n  ports: [{port: 80}]\n"));
    assert_eq!(
        d,
        at(
            5,
            14,
            "spec.clusterIP",
            "service `web`: clusterIP 10.96.0.0 is the network address of serviceCIDR 10.96.0.0/12"
        )
    );
    assert!(h.is_some());
    let (d, _) = one(&svc("  clusterIP: 10.111.255.255\n  ports: [{port: 80}]\n"));
    assert_eq!(
        d,
        at(
            5,
            14,
            "spec.clusterIP",
            "service `web`: clusterIP 10.111.255.255 is the broadcast address of serviceCIDR 10.96.0.0/12"
        )
    );
}

#[test]
fn cluster_ip_is_dns_ip() {
    let (d, h) = one(&svc("  clusterIP: 10.96.0.10\n  ports: [{port: 80}]\n"));
    assert_eq!(
        d,
        at(
            5,
            14,
            "spec.clusterIP",
            "service `web`: clusterIP 10.96.0.10 is the lab's dnsIP"
        )
    );
    assert!(h
        .unwrap_or_default()
        .starts_with("dnsIP is reserved for the kube-dns service"));
    // The lab's own dnsIP counts.
    let (d, _) = one(&format!(
        "{LAB}  network: {{dnsIP: 10.96.0.53}}\n---\n{}",
        svc("  clusterIP: 10.96.0.53\n  ports: [{port: 80}]\n")
    ));
    assert_eq!(
        d,
        at(
            11,
            14,
            "spec.clusterIP",
            "service `web`: clusterIP 10.96.0.53 is the lab's dnsIP"
        )
    );
}

#[test]
fn cluster_ip_taken_twice() {
    let (d, h) = one("apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  clusterIP: 10.96.0.20
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: kube-system}
spec:
  clusterIP: 10.96.0.20
  ports: [{port: 80}]
");
    assert_eq!(
        d,
        at(
            12,
            14,
            "spec.clusterIP",
            "service `b`: clusterIP 10.96.0.20 is already taken by service `a` (first at line 5)"
        )
    );
    assert!(h
        .unwrap_or_default()
        .starts_with("every service needs its own cluster IP"));
}

#[test]
fn node_port_outside_range() {
    let (d, h) = one(&svc(
        "  type: NodePort\n  ports: [{port: 80, nodePort: 8080}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            32,
            "spec.ports[0].nodePort",
            "service `web`: nodePort 8080 is outside nodePortRange 30000-32767"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("choose a port in 30000-32767, or leave nodePort out to have one allocated")
    );
    // The lab's own range counts; the index is the one written.
    let (d, _) = one(&format!(
        "{LAB}  network: {{nodePortRange: 31000-31999}}\n---\n{}",
        svc("  type: LoadBalancer\n  ports:\n  - {name: a, port: 80, nodePort: 31000}\n  - {name: b, port: 81, nodePort: 30080}\n")
    ));
    assert_eq!(
        d,
        at(
            14,
            35,
            "spec.ports[1].nodePort",
            "service `web`: nodePort 30080 is outside nodePortRange 31000-31999"
        )
    );
}

#[test]
fn node_port_taken_twice() {
    let text = "apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  type: NodePort
  ports: [{port: 80, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  type: LoadBalancer
  ports:
  - {name: dns, port: 53, protocol: UDP, nodePort: 30080}
  - {name: web, port: 80, nodePort: 30080}
";
    let (d, h) = one(text);
    // 30080/UDP is another port than 30080/TCP.
    assert_eq!(
        d,
        at(
            15,
            37,
            "spec.ports[1].nodePort",
            "service `b`: nodePort 30080/TCP is already taken by service `a` (first at line 6)"
        )
    );
    assert!(h.is_some());
}

#[test]
fn load_balancer_ip_outside_pool_or_taken() {
    let (d, h) = one(&svc(
        "  type: LoadBalancer\n  loadBalancerIP: 172.18.0.100\n  ports: [{port: 80}]\n",
    ));
    assert_eq!(
        d,
        at(
            6,
            19,
            "spec.loadBalancerIP",
            "service `web`: loadBalancerIP 172.18.0.100 is outside loadBalancerPool 172.18.0.200-172.18.0.250"
        )
    );
    assert_eq!(
        h.as_deref(),
        Some("choose an address in 172.18.0.200-172.18.0.250, or leave loadBalancerIP out to have one allocated")
    );
    let (d, h) = one("apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  type: LoadBalancer
  loadBalancerIP: 172.18.0.201
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  type: LoadBalancer
  loadBalancerIP: 172.18.0.201
  ports: [{port: 443}]
");
    assert_eq!(
        d,
        at(
            14,
            19,
            "spec.loadBalancerIP",
            "service `b`: loadBalancerIP 172.18.0.201 is already taken by service `a` (first at line 6)"
        )
    );
    assert!(h.is_some());
}

#[test]
fn service_in_undeclared_namespace() {
    let (d, h) = one("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  ports: [{port: 80}]\n");
    assert_eq!(
        d,
        at(
            3,
            34,
            "metadata.namespace",
            "service `web`: namespace `shop` does not exist"
        )
    );
    assert!(h
        .unwrap_or_default()
        .starts_with("add a Namespace document:"));
    ok("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: kube-system}\nspec:\n  ports: [{port: 80}]\n");
}

// ---- warnings: what the selector selects ----

/// Pod `p` (labels app=web) in `default`, with a TCP port `http` and a UDP
/// port `dns`; 11 lines, then a service document.
const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: p
  labels: {app: web, tier: front}
spec:
  containers:
  - name: c
    ports:
    - {containerPort: 8080, name: http}
    - {containerPort: 53, name: dns, protocol: UDP}
---
";

#[test]
fn selector_selects_no_pod() {
    let (w, h) = warnings(&format!(
        "{POD}{}",
        svc("  selector: {app: api}\n  ports: [{port: 80, targetPort: http}]\n")
    ));
    assert_eq!(
        w,
        [at(
            17,
            13,
            "spec.selector",
            "service `web` selects no pod: it will have no endpoints"
        )]
    );
    assert_eq!(
        h,
        [Some(
            "no pod or deployment (with replicas) in namespace `default` has the labels app=api"
                .into()
        )]
    );
    // Every label must match.
    let (w, _) = warnings(&format!(
        "{POD}{}",
        svc("  selector: {app: web, tier: back}\n  ports: [{port: 80}]\n")
    ));
    assert_eq!(w.len(), 1);
    // A pod of another namespace is not selected.
    let (w, _) = warnings(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: kube-system, labels: {app: web}}\nspec: {containers: [{name: c}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
    );
    assert_eq!(
        w,
        [at(
            10,
            13,
            "spec.selector",
            "service `web` selects no pod: it will have no endpoints"
        )]
    );
    // A deployment scaled to zero has no pods.
    let (w, _) = warnings(
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
",
    );
    assert_eq!(
        w,
        [at(
            15,
            13,
            "spec.selector",
            "service `web` selects no pod: it will have no endpoints"
        )]
    );
    // No selector: endpoints are not managed, nothing to warn about.
    let (w, _) = warnings(&svc("  ports: [{port: 80}]\n"));
    assert!(w.is_empty());
}

#[test]
fn selected_pods_and_deployments_give_no_warning() {
    let (w, _) = warnings(&format!(
        "{POD}{}",
        svc("  selector: {app: web}\n  ports:\n  - {name: web, port: 80, targetPort: http}\n  - {name: dns, port: 53, targetPort: dns, protocol: UDP}\n  - {name: raw, port: 9000, targetPort: 9000}\n")
    ));
    assert!(w.is_empty(), "{w:?}");
    // A deployment's template labels count; its pods need not be declared
    // in the file.
    let (w, _) = warnings(
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, tier: back}}
    spec:
      containers:
      - name: c
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {tier: back}
  ports: [{port: 80, targetPort: http}]
",
    );
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn target_port_name_no_pod_declares() {
    let (w, h) = warnings(&format!(
        "{POD}{}",
        svc("  selector: {app: web}\n  ports:\n  - {name: a, port: 80, targetPort: http}\n  - {name: b, port: 81, targetPort: https}\n")
    ));
    assert_eq!(
        w,
        [at(
            20,
            37,
            "spec.ports[1].targetPort",
            "service `web`: no pod it selects has a TCP port named `https`"
        )]
    );
    assert!(h[0]
        .clone()
        .unwrap_or_default()
        .starts_with("name a containerPort `https` in the pods it selects"));
}

#[test]
fn target_port_name_with_another_protocol() {
    let (w, h) = warnings(&format!(
        "{POD}{}",
        svc("  selector: {app: web}\n  ports: [{port: 53, targetPort: dns}]\n")
    ));
    assert_eq!(
        w,
        [at(
            18,
            34,
            "spec.ports[0].targetPort",
            "service `web`: no pod it selects has a TCP port named `dns`"
        )]
    );
    assert_eq!(
        h,
        [Some(
            "pod `p` names a port `dns`, but not a TCP one; match the service port's protocol"
                .into()
        )]
    );
}

#[test]
fn warnings_do_not_hide_errors() {
    // A file with an error gives the error; warnings are for valid files.
    let e = errors(&format!(
        "{POD}{}",
        svc("  selector: {app: api}\n  ports: [{port: 80, protocol: SCTP}]\n")
    ));
    assert_eq!(
        e,
        [at(
            18,
            32,
            "spec.ports[0].protocol",
            "service `web`: protocol SCTP is not supported by podlab's kube-proxy"
        )]
    );
    // Warnings are sorted by position, across services.
    let (w, _) = warnings(&format!(
        "{POD}{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: two}}\nspec:\n  selector: {{app: x}}\n  ports: [{{port: 80}}]\n",
        svc("  selector: {app: web}\n  ports: [{port: 80, targetPort: nope}]\n")
    ));
    let lines: Vec<usize> = w.iter().map(|d| d.0).collect();
    assert_eq!(lines, [18, 24]);
}
