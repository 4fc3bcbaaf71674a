//! The grammar, word by word, and what each word names in a lab where
//! names collide: a pod and a Service both called `web`, pods called
//! `pod`, `svc`, `node` and `external`, and a namespace called `pod`.

use super::*;

pub(crate) const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: tg}
spec: {nodes: 2}
---
apiVersion: v1
kind: Namespace
metadata: {name: pod}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b}
---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: web, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: plain}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: pod}
spec:
  nodeName: node-1
  containers: [{name: c}]
---
apiVersion: v1
kind: Pod
metadata: {name: svc}
spec:
  nodeName: node-2
  containers: [{name: c}]
---
apiVersion: v1
kind: Pod
metadata: {name: node}
spec:
  nodeName: node-2
  containers: [{name: c}]
---
apiVersion: v1
kind: Pod
metadata: {name: external}
spec:
  nodeName: node-2
  containers: [{name: c}]
---
apiVersion: v1
kind: Pod
metadata: {name: x, namespace: pod}
spec:
  nodeName: node-1
  containers: [{name: c}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: team-b}
spec:
  nodeName: node-2
  containers: [{name: c}]
---
apiVersion: v1
kind: Pod
metadata: {name: only-pod, namespace: team-b}
spec:
  nodeName: node-2
  containers: [{name: c}]
---
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {app: db}}
spec:
  nodeName: node-1
  containers: [{name: db, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: team-b}
spec:
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, ports: [{containerPort: 8080}]}]
"#;

pub(crate) fn plan() -> Plan {
    let file = crate::lab::parse("t.yaml", LAB).expect("lab parses");
    crate::plan::build(&file).expect("lab plans")
}

fn name(s: &str) -> Spec {
    Spec::Name(s.into())
}

fn pod_in(ns: Option<&str>, n: &str) -> Spec {
    Spec::Pod {
        namespace: ns.map(str::to_string),
        name: n.into(),
    }
}

fn svc_in(ns: Option<&str>, n: &str) -> Spec {
    Spec::Service {
        namespace: ns.map(str::to_string),
        name: n.into(),
    }
}

fn lb_in(ns: Option<&str>, n: &str) -> Spec {
    Spec::LoadBalancer {
        namespace: ns.map(str::to_string),
        name: n.into(),
    }
}

#[test]
fn every_form_parses_as_a_destination() {
    let ip = |s: &str| Spec::Ip(s.parse().unwrap());
    let table: Vec<(&str, Spec, Option<u16>)> = vec![
        ("web", name("web"), None),
        ("web:80", name("web"), Some(80)),
        ("team-a/web", pod_in(Some("team-a"), "web"), None),
        ("team-a/web:8080", pod_in(Some("team-a"), "web"), Some(8080)),
        ("pod/web", pod_in(None, "web"), None),
        ("pod/team-a/web:1", pod_in(Some("team-a"), "web"), Some(1)),
        ("svc/web", svc_in(None, "web"), None),
        (
            "svc/team-a/web:65535",
            svc_in(Some("team-a"), "web"),
            Some(65535),
        ),
        ("lb/web", lb_in(None, "web"), None),
        ("lb/team-a/web:80", lb_in(Some("team-a"), "web"), Some(80)),
        ("node/node-1", Spec::Node("node-1".into()), None),
        (
            "node/node-1:30080",
            Spec::Node("node-1".into()),
            Some(30080),
        ),
        ("external", Spec::External, None),
        ("external:8080", Spec::External, Some(8080)),
        ("lb", Spec::Lb, None),
        ("lb:80", Spec::Lb, Some(80)),
        ("10.244.1.2", ip("10.244.1.2"), None),
        ("172.18.0.254:8080", ip("172.18.0.254"), Some(8080)),
        ("web.team-a", Spec::Dns("web.team-a".into()), None),
        ("web.team-a:80", Spec::Dns("web.team-a".into()), Some(80)),
        (
            "web.default.svc.cluster.local.",
            Spec::Dns("web.default.svc.cluster.local.".into()),
            None,
        ),
        ("web.:53", Spec::Dns("web.".into()), Some(53)),
        ("Example.COM", Spec::Dns("Example.COM".into()), None),
        (
            "_http._tcp.web.default",
            Spec::Dns("_http._tcp.web.default".into()),
            None,
        ),
        // Names that are also prefixes or reserved words.
        ("pod", name("pod"), None),
        ("svc", name("svc"), None),
        ("node", name("node"), None),
        ("pod/pod", pod_in(None, "pod"), None),
        ("pod/svc", pod_in(None, "svc"), None),
        ("pod/node", pod_in(None, "node"), None),
        ("pod/external", pod_in(None, "external"), None),
        ("pod/lb", pod_in(None, "lb"), None),
        ("pod/pod/x", pod_in(Some("pod"), "x"), None),
        ("pod/svc/x", pod_in(Some("svc"), "x"), None),
        ("pod/node/x:80", pod_in(Some("node"), "x"), Some(80)),
        ("node/node", Spec::Node("node".into()), None),
        ("svc/svc", svc_in(None, "svc"), None),
        ("svc/pod/web", svc_in(Some("pod"), "web"), None),
        ("lb/lb", lb_in(None, "lb"), None),
        ("external/web", pod_in(Some("external"), "web"), None),
    ];
    for (word, spec, port) in table {
        assert_eq!(
            parse(word, Role::Destination),
            Ok(Target { spec, port }),
            "{word}"
        );
    }
}

#[test]
fn a_source_is_what_sends() {
    let ok: Vec<(&str, Spec)> = vec![
        ("pod-1", name("pod-1")),
        ("x/pod-c", pod_in(Some("x"), "pod-c")),
        ("pod/pod-1", pod_in(None, "pod-1")),
        ("pod/pod/x", pod_in(Some("pod"), "x")),
        ("node/node-1", Spec::Node("node-1".into())),
        ("external", Spec::External),
        ("lb", Spec::Lb),
        ("node", name("node")),
    ];
    for (word, spec) in ok {
        assert_eq!(
            parse(word, Role::Source),
            Ok(Target { spec, port: None }),
            "{word}"
        );
    }
    let refused: Vec<(&str, &str)> = vec![
        ("pod-1:80", "a source has no port"),
        ("svc/web", "a Service does not send"),
        ("lb/web", "a LoadBalancer IP does not send"),
        (
            "10.244.1.2",
            "an address does not send: name the pod or node",
        ),
        ("web.default", "a DNS name does not send: name the pod"),
    ];
    for (word, why) in refused {
        let e = parse(word, Role::Source).unwrap_err();
        assert_eq!(e.message, format!("`{word}` is not a source: {why}"));
        assert_eq!(e.hint, format!("a source is {SOURCE_FORMS}"));
    }
}

#[test]
fn a_bad_word_is_named_with_what_is_wrong() {
    let table: Vec<(&str, &str)> = vec![
        ("", "it is empty"),
        ("pod 1", "it has a space"),
        ("web:", "`:` is not a port (1-65535)"),
        ("web:http", "`:http` is not a port (1-65535)"),
        ("web:0", "`:0` is not a port (1-65535)"),
        ("web:70000", "`:70000` is not a port (1-65535)"),
        ("web:+80", "`:+80` is not a port (1-65535)"),
        ("::1", "it has more than one `:` (IPv6 is not supported)"),
        ("Web", "`Web` is not a name (lowercase letters, digits and `-`, at most 63)"),
        ("-web", "`-web` is not a name (lowercase letters, digits and `-`, at most 63)"),
        ("pod/", "the name is empty"),
        ("svc//web", "the namespace is empty"),
        ("/web", "the namespace is empty"),
        ("team_a/web", "`team_a` is not a namespace (lowercase letters, digits and `-`, at most 63)"),
        ("node/", "the node name is empty"),
        ("node/a/b", "a node has no namespace: write node/NAME"),
        (
            "a/b/c",
            "too many `/` (at most pod/NS/NAME, svc/NS/NAME or lb/NS/NAME; a pod in a namespace called `a` is pod/a/NAME)",
        ),
        (
            "pod/a/b/c",
            "too many `/` (at most pod/NS/NAME, svc/NS/NAME or lb/NS/NAME; a pod in a namespace called `pod` is pod/pod/NAME)",
        ),
        ("10.0.0.256", "`10.0.0.256` is not an IPv4 address"),
        ("web..default", "`web..default` is not a DNS name"),
        ("web.default..", "`web.default..` is not a DNS name"),
        ("we b.x", "it has a space"),
        ("web!.x", "`web!.x` is not a DNS name"),
    ];
    for (word, why) in table {
        let e = parse(word, Role::Destination).unwrap_err();
        assert_eq!(
            e.message,
            format!("`{word}` is not a destination: {why}"),
            "{word}"
        );
        assert_eq!(e.hint, format!("a destination is {DESTINATION_FORMS}"));
    }
}

/// What a word names, as a label the table can hold.
fn what(f: Option<Found>) -> String {
    match f {
        None => "resolver".into(),
        Some(Found::Pod(p)) => format!("pod {}", p.key()),
        Some(Found::Service(s)) => format!("svc {}", s.key()),
        Some(Found::LoadBalancer(s)) => format!("lb {}", s.key()),
        Some(Found::Node(n)) => format!("node {}", n.name),
        Some(Found::Client(c)) => format!("client {}", c.name),
        Some(Found::Address(ip)) => format!("address {ip}"),
    }
}

#[test]
fn each_word_names_one_thing_of_the_lab() {
    let plan = plan();
    let web = plan.services.iter().find(|s| s.name == "web").unwrap();
    let plain = plan.services.iter().find(|s| s.name == "plain").unwrap();
    let pod_ip = |n: &str| plan.pods.iter().find(|p| p.name == n).unwrap().ip;
    let n1 = plan.node("node-1").unwrap();
    let external = plan.clients.iter().find(|c| c.name == "external").unwrap();
    let dflt = Scope::of("default");
    let from_b = Scope {
        namespace: "default",
        search: "team-b",
    };
    let api = plan
        .pods
        .iter()
        .find(|p| p.owner.as_deref() == Some("api"))
        .map(|p| format!("pod {}", p.key()))
        .unwrap();
    let table: Vec<(String, Scope, &str)> = vec![
        // A bare name: the Service of the source's namespace first.
        ("web".into(), dflt, "svc default/web"),
        ("pod/web".into(), dflt, "pod default/web"),
        ("default/web".into(), dflt, "pod default/web"),
        ("svc/web".into(), dflt, "svc default/web"),
        ("lb/web".into(), dflt, "lb default/web"),
        // From team-b, `web` is no Service of team-b: the pod in default.
        ("web".into(), from_b, "pod default/web"),
        (
            "only-pod".into(),
            Scope::of("team-b"),
            "pod team-b/only-pod",
        ),
        ("pod".into(), dflt, "pod default/pod"),
        ("svc".into(), dflt, "pod default/svc"),
        ("node".into(), dflt, "pod default/node"),
        ("pod/external".into(), dflt, "pod default/external"),
        ("pod/pod/x".into(), dflt, "pod pod/x"),
        ("pod/x".into(), Scope::of("pod"), "pod pod/x"),
        ("external".into(), dflt, "client external"),
        ("lb".into(), dflt, "client lb"),
        ("node/node-1".into(), dflt, "node node-1"),
        // A Deployment's name: its first replica.
        ("api".into(), dflt, &api),
        ("nobody".into(), dflt, "resolver"),
        ("web.default".into(), dflt, "resolver"),
        // Addresses are addresses, whoever has them.
        (pod_ip("web").to_string(), dflt, "pod default/web"),
        (pod_ip("x").to_string(), dflt, "pod pod/x"),
        (web.cluster_ip.unwrap().to_string(), dflt, "svc default/web"),
        (
            plain.cluster_ip.unwrap().to_string(),
            dflt,
            "svc default/plain",
        ),
        (
            web.load_balancer_ip.unwrap().to_string(),
            dflt,
            "lb default/web",
        ),
        (n1.ip.to_string(), dflt, "node node-1"),
        (n1.pod_gateway.to_string(), dflt, "node node-1"),
        (external.ip.to_string(), dflt, "client external"),
        ("192.0.2.7:80".into(), dflt, "address 192.0.2.7"),
    ];
    for (word, scope, want) in table {
        let t = parse(&word, Role::Destination).unwrap();
        let got = resolve(&plan, &t.spec, &scope).map(what);
        assert_eq!(got.as_deref(), Ok(want), "{word}");
    }
}

#[test]
fn a_word_that_names_nothing_says_so() {
    let plan = plan();
    let dflt = Scope::of("default");
    let table: Vec<(&str, &str, &str)> = vec![
        (
            "pod/wbe",
            "pod wbe not found in namespace default of lab tg",
            "did you mean web?",
        ),
        (
            "only-pod",
            "pod only-pod not found in namespace default of lab tg",
            "it is in namespace team-b: write team-b/only-pod (or add -n team-b)",
        ),
        (
            "svc/nope",
            "Service nope not found in namespace default of lab tg",
            "`podlab get svc -A` lists the Services",
        ),
        (
            "lb/plain",
            "Service default/plain has no LoadBalancer IP",
            "lb/NAME is the IP of a `type: LoadBalancer` Service; svc/NAME is its ClusterIP",
        ),
        (
            "node/node-9",
            "node node-9 not found in lab tg",
            "the nodes are: node-1, node-2",
        ),
    ];
    for (word, message, hint) in table {
        let t = parse(word, Role::Destination).unwrap();
        let e = match t.spec {
            Spec::Name(_) => source(&plan, word, "default").unwrap_err(),
            spec => resolve(&plan, &spec, &dflt).unwrap_err(),
        };
        assert_eq!(
            (e.message.as_str(), e.hint.as_str()),
            (message, hint),
            "{word}"
        );
    }
}

#[test]
fn a_source_resolves_to_what_sends() {
    let plan = plan();
    let table: Vec<(&str, &str, &str)> = vec![
        // A bare source is a pod, never the Service of that name.
        ("web", "default", "pod default/web"),
        ("client", "team-b", "pod team-b/client"),
        ("team-b/client", "default", "pod team-b/client"),
        ("node", "default", "pod default/node"),
        ("node/node-2", "default", "node node-2"),
        ("external", "default", "client external"),
        ("pod/external", "default", "pod default/external"),
    ];
    for (word, ns, want) in table {
        assert_eq!(
            source(&plan, word, ns).map(|f| what(Some(f))).as_deref(),
            Ok(want),
            "{word}"
        );
    }
    let e = source(&plan, "node-1", "default").unwrap_err();
    assert_eq!(e.hint, "node-1 is a node: write node/node-1");
}
