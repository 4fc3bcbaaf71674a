//! NetworkPolicy end to end, as root: the reachability matrix of the
//! upstream Kubernetes network-policy e2e suite. Namespaces x, y, z with
//! pods a, b, c, each serving TCP and UDP 80 and 81; every pod probes every
//! pod on each, in-process and in parallel, and the result is compared cell
//! by cell with the expected truth table of each case.
//!
//! One lab stays up; between cases only the policies change, by loading
//! the node rulesets of a plan built from the lab text with other policies
//! (the pods, and so their addresses, are the same).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use podlab::kernel::netns::Netns;
use podlab::plan::Plan;

const LAB_NAME: &str = "t-np";
const NS: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];
const TIMEOUT: Duration = Duration::from_millis(400);

fn lab(policies: &str) -> String {
    let mut s = format!(
        "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {{name: {LAB_NAME}}}\nspec: {{nodes: 2}}\n"
    );
    for ns in NS {
        s.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}, labels: {{ns: {ns}}}}}\n"
        ));
    }
    for ns in NS {
        for pod in PODS {
            s.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}, labels: {{pod: {pod}}}}}\nspec:\n  containers:\n  - name: c\n    ports:\n    - {{containerPort: 80, name: serve-80-tcp}}\n    - {{containerPort: 81, name: serve-81-tcp}}\n    - {{containerPort: 80, protocol: UDP, name: serve-80-udp}}\n    - {{containerPort: 81, protocol: UDP, name: serve-81-udp}}\n"
            ));
        }
    }
    // A Service in front of x/a: a policy must see the backend pod.
    s.push_str("---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: x}\nspec:\n  selector: {pod: a}\n  ports: [{port: 8080, targetPort: 80}]\n");
    s.push_str(policies);
    s
}

fn plan_of(policies: &str) -> Plan {
    let file = podlab::lab::parse("netpol.yaml", &lab(policies)).unwrap_or_else(|e| panic!("{e}"));
    podlab::plan::build(&file).unwrap_or_else(|e| panic!("{e}"))
}

fn policy(ns: &str, name: &str, spec: &str) -> String {
    format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{spec}")
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Proto {
    Tcp,
    Udp,
}

/// The four columns probed: (protocol, port).
const PORTS: [(Proto, u16); 4] = [
    (Proto::Tcp, 80),
    (Proto::Tcp, 81),
    (Proto::Udp, 80),
    (Proto::Udp, 81),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Seen {
    Connected,
    Blocked,
    Refused,
}

impl Seen {
    fn mark(self) -> char {
        match self {
            Seen::Connected => '.',
            Seen::Blocked => 'X',
            Seen::Refused => 'R',
        }
    }
}

/// `ns/pod` of every pod, in matrix order.
fn pods() -> Vec<String> {
    NS.iter()
        .flat_map(|ns| PODS.iter().map(move |p| format!("{ns}/{p}")))
        .collect()
}

/// One probe from inside `from`'s network namespace. UDP binds `src_port`
/// so that no conntrack entry of an earlier case can carry its answer.
fn probe(netns: &str, to: Ipv4Addr, proto: Proto, port: u16, src_port: u16) -> Seen {
    let ns = Netns::open(netns).unwrap_or_else(|e| panic!("{e}"));
    let _inside = ns.enter().unwrap_or_else(|e| panic!("{e}"));
    let addr = SocketAddr::from((to, port));
    let refused_or = |e: std::io::Error| match e.kind() {
        ErrorKind::ConnectionRefused => Seen::Refused,
        _ => Seen::Blocked,
    };
    match proto {
        Proto::Tcp => match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(_) => Seen::Connected,
            Err(e) => refused_or(e),
        },
        Proto::Udp => {
            let sock = UdpSocket::bind(("0.0.0.0", src_port)).expect("bind udp");
            sock.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            sock.connect(addr).expect("connect udp");
            if let Err(e) = sock.send(b"ping") {
                return refused_or(e);
            }
            let mut buf = [0u8; 2048];
            match sock.recv(&mut buf) {
                Ok(_) => Seen::Connected,
                Err(e) => refused_or(e),
            }
        }
    }
}

type Matrix = BTreeMap<(String, String, Proto, u16), Seen>;

/// Every pod to every pod on every port, all at once.
fn probe_all(plan: &Plan, case: usize, cells: &[(String, String, Proto, u16)]) -> Matrix {
    std::thread::scope(|s| {
        let handles: Vec<_> = cells
            .iter()
            .enumerate()
            .map(|(i, (from, to, proto, port))| {
                let (fns, fpod) = from.split_once('/').expect("ns/pod");
                let (tns, tpod) = to.split_once('/').expect("ns/pod");
                let netns = plan.pod(fns, fpod).expect("pod").netns.clone();
                let ip = plan.pod(tns, tpod).expect("pod").ip;
                let src_port = 20000 + (case * 400 + i) as u16;
                let (proto, port) = (*proto, *port);
                s.spawn(move || probe(&netns, ip, proto, port, src_port))
            })
            .collect();
        cells
            .iter()
            .cloned()
            .zip(handles.into_iter().map(|h| h.join().expect("probe thread")))
            .collect()
    })
}

fn render(m: &Matrix) -> String {
    let pods = pods();
    let mut out = String::new();
    for (proto, port) in PORTS {
        out.push_str(&format!("{proto:?}/{port}\n     "));
        for to in &pods {
            out.push_str(&format!("{to:>4}"));
        }
        out.push('\n');
        for from in &pods {
            out.push_str(&format!("{from:>4} "));
            for to in &pods {
                let c = m
                    .get(&(from.clone(), to.clone(), proto, port))
                    .map_or('?', |s| s.mark());
                out.push_str(&format!("{c:>4}"));
            }
            out.push('\n');
        }
    }
    out
}

/// `expect(from, to, protocol, port)`: whether the connection should pass.
type Truth = dyn Fn(&str, &str, Proto, u16) -> bool;

/// A case: its policies and its truth table (`expect(from, to, proto,
/// port)`, pods as `ns/pod`; a pod always reaches itself).
struct Case {
    name: &'static str,
    policies: String,
    expect: Box<Truth>,
}

fn case(
    name: &'static str,
    policies: String,
    expect: impl Fn(&str, &str, Proto, u16) -> bool + 'static,
) -> Case {
    Case {
        name,
        policies,
        expect: Box::new(expect),
    }
}

fn ns_of(p: &str) -> &str {
    p.split_once('/').map_or(p, |(n, _)| n)
}
fn pod_of(p: &str) -> &str {
    p.split_once('/').map_or(p, |(_, n)| n)
}

fn cases(base: &Plan) -> Vec<Case> {
    let ya = base.pod("y", "a").expect("y/a").ip;
    let deny_x = policy("x", "deny-ingress", "  podSelector: {}\n");
    vec![
        case("no policy: everything connects", String::new(), |_, _, _, _| true),
        case("default deny ingress in x", deny_x.clone(), |_, to, _, _| ns_of(to) != "x"),
        case(
            "default deny egress in x",
            policy("x", "deny-egress", "  podSelector: {}\n  policyTypes: [Egress]\n"),
            |from, _, _, _| ns_of(from) != "x",
        ),
        case(
            "default deny both ways in x",
            policy("x", "deny-all", "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n"),
            |from, to, _, _| ns_of(from) != "x" && ns_of(to) != "x",
        ),
        case(
            "allow from the same namespace",
            policy("x", "same-ns", "  podSelector: {}\n  ingress: [{from: [{podSelector: {}}]}]\n"),
            |from, to, _, _| ns_of(to) != "x" || ns_of(from) == "x",
        ),
        case(
            "namespaceSelector: x/a from namespace y",
            policy(
                "x",
                "a-from-y",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]\n",
            ),
            |from, to, _, _| to != "x/a" || ns_of(from) == "y",
        ),
        case(
            "podSelector AND namespaceSelector: x/a from y/b only",
            policy(
                "x",
                "a-from-yb",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}\n      podSelector: {matchLabels: {pod: b}}\n",
            ),
            |from, to, _, _| to != "x/a" || from == "y/b",
        ),
        case(
            "podSelector OR namespaceSelector: x/a from namespace y or x/b",
            policy(
                "x",
                "a-from-y-or-b",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: y}}\n    - podSelector: {matchLabels: {pod: b}}\n",
            ),
            |from, to, _, _| to != "x/a" || ns_of(from) == "y" || from == "x/b",
        ),
        case(
            "matchExpressions: x/a from pods not named a in y or z",
            policy(
                "x",
                "a-expressions",
                "  podSelector: {matchExpressions: [{key: pod, operator: In, values: [a]}]}\n  ingress:\n  - from:\n    - namespaceSelector: {matchExpressions: [{key: ns, operator: NotIn, values: [x]}]}\n      podSelector: {matchExpressions: [{key: pod, operator: NotIn, values: [a]}, {key: pod, operator: Exists}]}\n",
            ),
            |from, to, _, _| to != "x/a" || (ns_of(from) != "x" && pod_of(from) != "a"),
        ),
        case(
            "ipBlock with except: x/a from the pod network but y/a",
            policy(
                "x",
                "a-ipblock",
                &format!("  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress: [{{from: [{{ipBlock: {{cidr: 10.244.0.0/16, except: [{ya}/32]}}}}]}}]\n"),
            ),
            |from, to, _, _| to != "x/a" || from != "y/a",
        ),
        case(
            "port number: x/a on TCP 81 only",
            policy("x", "a-tcp-81", "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{port: 81}]}]\n"),
            |_, to, proto, port| to != "x/a" || (proto == Proto::Tcp && port == 81),
        ),
        case(
            "named port: x/a on serve-81-udp only",
            policy(
                "x",
                "a-named",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{ports: [{port: serve-81-udp, protocol: UDP}]}]\n",
            ),
            |_, to, proto, port| to != "x/a" || (proto == Proto::Udp && port == 81),
        ),
        case(
            "endPort range: x on TCP 81-90 and UDP 70-80",
            policy(
                "x",
                "ranges",
                "  podSelector: {}\n  ingress: [{ports: [{port: 81, endPort: 90}, {protocol: UDP, port: 70, endPort: 80}]}]\n",
            ),
            |_, to, proto, port| ns_of(to) != "x" || (proto, port) == (Proto::Tcp, 81) || (proto, port) == (Proto::Udp, 80),
        ),
        case(
            "multiple policies are additive: x/a from y on 80, from z on 81",
            policy(
                "x",
                "a-y-80",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: 80}, {port: 80, protocol: UDP}]}]\n",
            ) + &policy(
                "x",
                "a-z-81",
                "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: z}}}], ports: [{port: 81}, {port: 81, protocol: UDP}]}]\n",
            ),
            |from, to, _, port| to != "x/a" || (ns_of(from) == "y" && port == 80) || (ns_of(from) == "z" && port == 81),
        ),
        case(
            "egress to one pod plus DNS: x/a to y/b and kube-dns",
            policy(
                "x",
                "a-egress",
                "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]\n  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]\n    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]\n",
            ),
            |from, to, _, _| from != "x/a" || to == "y/b",
        ),
        case(
            "egress and ingress both decide: x/a to y only, y/b from x on TCP 80 only",
            policy(
                "x",
                "a-to-y",
                "  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}]}]\n",
            ) + &policy(
                "y",
                "b-from-x-80",
                "  podSelector: {matchLabels: {pod: b}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}}], ports: [{port: 80}]}]\n",
            ),
            |from, to, proto, port| {
                let egress = from != "x/a" || ns_of(to) == "y";
                let ingress = to != "y/b" || (ns_of(from) == "x" && proto == Proto::Tcp && port == 80);
                egress && ingress
            },
        ),
        case(
            "empty from allows everyone again after a deny",
            deny_x.clone()
                + &policy("x", "a-open", "  podSelector: {matchLabels: {pod: a}}\n  ingress: [{}]\n"),
            |_, to, _, _| ns_of(to) != "x" || to == "x/a",
        ),
        case(
            "egress to every pod (namespaceSelector {}) on UDP only",
            policy(
                "z",
                "udp-out",
                "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {}}], ports: [{protocol: UDP}]}]\n",
            ),
            |from, _, proto, _| ns_of(from) != "z" || proto == Proto::Udp,
        ),
        case(
            "default deny ingress everywhere",
            policy("x", "deny", "  podSelector: {}\n  ingress: []\n")
                + &policy("y", "deny", "  podSelector: {}\n  ingress: []\n")
                + &policy("z", "deny", "  podSelector: {}\n  ingress: []\n"),
            |_, _, _, _| false,
        ),
        case(
            "SCTP only: TCP and UDP to x are dropped",
            policy("x", "sctp-only", "  podSelector: {}\n  ingress: [{ports: [{protocol: SCTP, port: 80}]}]\n"),
            |_, to, _, _| ns_of(to) != "x",
        ),
    ]
}

/// A DNS query for `kubernetes.default.svc.cluster.local` A from `netns`
/// to the cluster DNS: whether any answer comes back.
fn dns_answers(netns: &str, dns: Ipv4Addr, src_port: u16) -> bool {
    let ns = Netns::open(netns).unwrap_or_else(|e| panic!("{e}"));
    let _inside = ns.enter().unwrap_or_else(|e| panic!("{e}"));
    let sock = UdpSocket::bind(("0.0.0.0", src_port)).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(800)))
        .expect("timeout");
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["kubernetes", "default", "svc", "cluster", "local"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    sock.send_to(&q, (dns, 53)).expect("send");
    let mut buf = [0u8; 512];
    sock.recv(&mut buf)
        .is_ok_and(|n| n >= 12 && buf[0..2] == [0x12, 0x34])
}

fn tcp_to(netns: &str, addr: SocketAddr) -> bool {
    let ns = Netns::open(netns).unwrap_or_else(|e| panic!("{e}"));
    let _inside = ns.enter().unwrap_or_else(|e| panic!("{e}"));
    TcpStream::connect_timeout(&addr, TIMEOUT).is_ok()
}

#[test]
fn reachability_matrix_like_upstream_e2e() {
    if !root_or_skip("netpol") {
        return;
    }
    let base = plan_of("");
    let all_cases = cases(&base);
    // The lab comes up with the second case's policy, so that `get
    // netpol` has something to show from the lab's own state.
    let first = &all_cases[1];
    let file = lab_file(&lab(&first.policies));
    let up = Up::new(LAB_NAME, &file);

    let pods = pods();
    let cells: Vec<(String, String, Proto, u16)> = pods
        .iter()
        .flat_map(|f| pods.iter().map(move |t| (f.clone(), t.clone())))
        .flat_map(|(f, t)| {
            PORTS
                .iter()
                .map(move |(p, n)| (f.clone(), t.clone(), *p, *n))
        })
        .collect();
    let mut failures = Vec::new();
    let mut timings = Vec::new();
    // The initial case first (already loaded by `up`), then every case.
    let order: Vec<usize> = std::iter::once(1).chain(0..all_cases.len()).collect();
    for (round, &ci) in order.iter().enumerate() {
        let c = &all_cases[ci];
        let plan = plan_of(&c.policies);
        if round > 0 {
            podlab::kernel::nft::load_all(&podlab::kernel::apply::rulesets(&plan))
                .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        }
        let started = Instant::now();
        let mut observed = probe_all(&plan, round * 2, &cells);
        // A cell that should connect and did not gets one more try, as the
        // upstream suite retries: a lost first packet is not a policy.
        let retry: Vec<_> = observed
            .iter()
            .filter(|((f, t, p, n), s)| {
                **s != Seen::Connected && (f == t || (c.expect)(f, t, *p, *n))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !retry.is_empty() {
            observed.extend(probe_all(&plan, round * 2 + 1, &retry));
        }
        timings.push(started.elapsed());
        let expected: Matrix = cells
            .iter()
            .map(|(f, t, p, n)| {
                let ok = f == t || (c.expect)(f, t, *p, *n);
                (
                    (f.clone(), t.clone(), *p, *n),
                    if ok { Seen::Connected } else { Seen::Blocked },
                )
            })
            .collect();
        let wrong: Vec<String> = cells
            .iter()
            .filter(|k| expected[*k] != observed[*k])
            .map(|(f, t, p, n)| {
                format!(
                    "{f} -> {t} {p:?}/{n}: expected {:?}, saw {:?}",
                    expected[&(f.clone(), t.clone(), *p, *n)],
                    observed[&(f.clone(), t.clone(), *p, *n)]
                )
            })
            .collect();
        if !wrong.is_empty() {
            failures.push(format!(
                "case {:?}: {} wrong cells:\n  {}\nexpected:\n{}observed:\n{}",
                c.name,
                wrong.len(),
                wrong.join("\n  "),
                render(&expected),
                render(&observed)
            ));
        }
        eprintln!(
            "case {:<70} {:>6} ms{}",
            c.name,
            started.elapsed().as_millis(),
            if wrong.is_empty() { "" } else { "  FAILED" }
        );

        // Extra checks of some cases.
        let xa = plan.pod("x", "a").expect("x/a");
        let netns = |ns: &str, pod: &str| plan.pod(ns, pod).expect("pod").netns.clone();
        if c.name.starts_with("egress to one pod plus DNS") {
            assert!(
                dns_answers(&xa.netns, plan.dns_ip, 29001),
                "x/a's DNS is allowed by its egress policy"
            );
        }
        if c.name.starts_with("default deny egress in x") {
            assert!(
                !dns_answers(&xa.netns, plan.dns_ip, 29002),
                "egress deny blocks DNS too"
            );
            assert!(
                dns_answers(&netns("y", "a"), plan.dns_ip, 29003),
                "y/a is not isolated"
            );
        }
        if c.name
            .starts_with("namespaceSelector: x/a from namespace y")
        {
            // Through the Service: the policy sees the backend pod.
            let svc = plan.services.iter().find(|s| s.name == "web").expect("web");
            let addr = SocketAddr::from((svc.cluster_ip.expect("cluster ip"), 8080));
            assert!(
                tcp_to(&netns("y", "c"), addr),
                "y/c reaches x/a through its Service"
            );
            assert!(
                !tcp_to(&netns("z", "c"), addr),
                "z/c is dropped after DNAT to x/a"
            );
        }
        if round == 0 {
            // The lab's own state: `get netpol` shows the policy with the
            // pods it selects and what the nodes counted.
            let o = run(&["get", "netpol", "-A", "--lab", LAB_NAME]);
            assert!(o.status.success(), "{}", text(&o));
            let table = stdout(&o);
            eprintln!("{table}");
            let row: Vec<&str> = table
                .lines()
                .find(|l| l.contains("deny-ingress"))
                .unwrap_or_else(|| panic!("{table}"))
                .split_whitespace()
                .collect();
            // NAMESPACE NAME POD-SELECTOR PODS ALLOWED AGE
            assert_eq!(&row[..4], &["x", "deny-ingress", "<none>", "3"], "{table}");
            assert_eq!(row[4], "0", "a deny-all allows nothing: {table}");
            // The drops are the isolated pods': NAMESPACE ISOLATED-POD
            // DIRECTION BY DROPPED, one row per pod of x.
            let drops: Vec<u64> = table
                .lines()
                .skip_while(|l| !l.contains("ISOLATED POD"))
                .skip(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .filter(|r| r.first() == Some(&"x"))
                .map(|r| {
                    assert_eq!(r[2], "ingress", "{table}");
                    assert_eq!(r[3], "deny-ingress", "{table}");
                    r[4].parse::<u64>().expect("DROPPED")
                })
                .collect();
            assert_eq!(drops.len(), 3, "x/a, x/b, x/c: {table}");
            assert!(
                drops.iter().sum::<u64>() >= 24,
                "6 pods x 3 x 4 probes dropped: {table}"
            );
            let o = run(&[
                "get",
                "networkpolicies",
                "-n",
                "x",
                "-o",
                "json",
                "--lab",
                LAB_NAME,
            ]);
            assert!(o.status.success(), "{}", text(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
            assert_eq!(
                v["items"][0]["spec"]["policyTypes"],
                serde_json::json!(["Ingress"])
            );
            let rules = up.exec(
                "node/node-1",
                &["nft", "list", "table", "ip", "network-policy"],
            );
            assert!(
                stdout(&rules).contains("x/deny-ingress"),
                "{}",
                text(&rules)
            );
        }
    }
    let worst = timings.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} matrices of {} probes; slowest {} ms",
        timings.len(),
        cells.len(),
        worst.as_millis()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(worst < Duration::from_secs(10), "a matrix took {worst:?}");
}
