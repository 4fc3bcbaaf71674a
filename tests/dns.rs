//! End-to-end: cluster DNS from inside pods, with the real `dig` and
//! `nslookup` (dnsutils), as root. Every query stays inside the lab: the
//! pods' resolv.conf points at kube-dns, and names outside the cluster
//! domain are answered from the lab's `spec.dns.upstream` or refused by
//! podlab's responder, never forwarded.

mod common;

use common::*;
use std::time::{Duration, Instant};

const LAB: &str = r#"apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: t-dns}
spec:
  nodes: 2
  dns:
    upstream:
    - {name: www.example.com, cname: example.com}
    - {name: example.com, a: [192.0.2.80, 192.0.2.81]}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: node-2
  containers:
  - name: c
    command: [sh, -c, 'env | sort; exec sleep 3600']
    env: [{name: WEB_SERVICE_PORT, value: overridden}]
---
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  nodeName: node-1
  enableServiceLinks: false
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: hostdns}
spec:
  dnsPolicy: Default
  containers: [{name: c, image: busybox}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  containers: [{name: pg, ports: [{containerPort: 5432, name: pg}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: www.example.com
"#;

fn dig(up: &Up, args: &[&str]) -> String {
    // Short timeouts: a lab answers in microseconds, and a hang is a bug.
    let mut cmd = vec!["dig", "+time=2", "+tries=1"];
    cmd.extend_from_slice(args);
    let o = up.exec("client", &cmd);
    assert!(o.status.success(), "dig {args:?}:\n{}", text(&o));
    stdout(&o)
}

fn short(up: &Up, args: &[&str]) -> Vec<String> {
    let mut a = vec!["+short"];
    a.extend_from_slice(args);
    let mut v: Vec<String> = dig(up, &a).lines().map(str::to_string).collect();
    v.sort();
    v
}

fn status(up: &Up, args: &[&str]) -> String {
    let mut a = vec!["+noall", "+comments"];
    a.extend_from_slice(args);
    let out = dig(up, &a);
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in dig output:\n{out}"))
        .to_string()
}

fn cluster_ip(up: &Up, ns: &str, name: &str) -> String {
    let svcs = up.get_json("svc");
    svcs["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["metadata"]["name"] == name && s["metadata"]["namespace"] == ns)
        .and_then(|s| s["spec"]["clusterIP"].as_str())
        .unwrap_or_else(|| panic!("no service {ns}/{name} in {svcs}"))
        .to_string()
}

#[test]
fn cluster_dns_from_pods() {
    if !root_or_skip("cluster_dns_from_pods") {
        return;
    }
    let file = lab_file(LAB);
    let up = Up::new("t-dns", &file);
    let lab = up.lab.clone();

    // The pieces a learner checks on a cluster.
    let o = run(&["get", "pods", "-A", "--lab", &lab]);
    assert!(o.status.success(), "{}", text(&o));
    let pods = stdout(&o);
    let coredns = pods
        .lines()
        .find(|l| l.starts_with("kube-system") && l.contains(" coredns-"))
        .unwrap_or_else(|| panic!("no coredns pod:\n{pods}"));
    assert!(coredns.contains("Running"), "{coredns}");
    let o = run(&["get", "svc", "-n", "kube-system", "--lab", &lab]);
    let svc = stdout(&o);
    assert!(
        svc.lines()
            .any(|l| l.starts_with("kube-dns") && l.contains("10.96.0.10")),
        "{}",
        text(&o)
    );
    let resolv = std::fs::read_to_string("/etc/netns/t-dns-default-client/resolv.conf").unwrap();
    assert_eq!(
        resolv,
        "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
    assert!(
        !std::path::Path::new("/etc/netns/t-dns-default-hostdns/resolv.conf").exists(),
        "dnsPolicy Default uses the host's file"
    );

    let web = cluster_ip(&up, "default", "web");
    let db0 = up.pod_ip("db-0");
    let client_ip = up.pod_ip("client");

    // A, over UDP and TCP.
    assert_eq!(
        short(&up, &["web.default.svc.cluster.local"]),
        [web.as_str()]
    );
    assert_eq!(
        short(&up, &["+tcp", "web.default.svc.cluster.local"]),
        [web.as_str()]
    );
    assert_eq!(
        short(&up, &["kube-dns.kube-system.svc.cluster.local"]),
        ["10.96.0.10"]
    );
    // SRV for a named port.
    assert_eq!(
        short(&up, &["SRV", "_http._tcp.web.default.svc.cluster.local"]),
        ["0 100 80 web.default.svc.cluster.local."]
    );
    assert_eq!(
        short(
            &up,
            &["+tcp", "SRV", "_pg._tcp.db.default.svc.cluster.local"]
        ),
        ["0 100 5432 db-0.db.default.svc.cluster.local."]
    );
    // PTR of a service and of a pod.
    assert_eq!(
        short(&up, &["-x", &web]),
        ["web.default.svc.cluster.local."]
    );
    assert_eq!(
        short(&up, &["-x", &client_ip]),
        [format!(
            "{}.default.pod.cluster.local.",
            client_ip.replace('.', "-")
        )]
    );
    // Headless: the endpoints, and the pod's own name under the service.
    assert_eq!(
        short(&up, &["db.default.svc.cluster.local"]),
        [db0.as_str()]
    );
    assert_eq!(
        short(&up, &["db-0.db.default.svc.cluster.local"]),
        [db0.as_str()]
    );
    // Pod A record.
    let pod_name = format!("{}.default.pod.cluster.local", db0.replace('.', "-"));
    assert_eq!(short(&up, &[&pod_name]), [db0.as_str()]);
    // ExternalName, followed through the lab's upstream entries.
    assert_eq!(
        short(&up, &["ext.default.svc.cluster.local"]),
        [
            "192.0.2.80",
            "192.0.2.81",
            "example.com.",
            "www.example.com."
        ]
    );
    // Upstream names (spec.dns.upstream): addresses, and an alias.
    assert_eq!(short(&up, &["example.com"]), ["192.0.2.80", "192.0.2.81"]);
    assert_eq!(
        short(&up, &["+tcp", "www.example.com"]),
        ["192.0.2.80", "192.0.2.81", "example.com."]
    );
    assert_eq!(status(&up, &["AAAA", "example.com"]), "NOERROR");
    // Through the search list: example.com has fewer than 5 dots, so the
    // cluster names are tried first (NXDOMAIN each), then the name itself.
    let o = up.exec("client", &["nslookup", "-timeout=2", "www.example.com"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("192.0.2.81"), "{}", text(&o));
    assert_eq!(
        short(&up, &["TXT", "dns-version.cluster.local"]),
        ["\"1.1.0\""]
    );

    // NXDOMAIN against NODATA, over both transports.
    assert_eq!(status(&up, &["nope.default.svc.cluster.local"]), "NXDOMAIN");
    assert_eq!(
        status(&up, &["+tcp", "nope.default.svc.cluster.local"]),
        "NXDOMAIN"
    );
    assert_eq!(
        status(&up, &["AAAA", "web.default.svc.cluster.local"]),
        "NOERROR"
    );
    assert!(short(&up, &["AAAA", "web.default.svc.cluster.local"]).is_empty());
    // Outside the cluster domain and not in upstream: refused at once,
    // never a timeout.
    let t = Instant::now();
    assert_eq!(status(&up, &["www.example.org"]), "REFUSED");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // The search path, as a program in the pod resolves.
    for name in ["web", "web.default", "web.default.svc"] {
        let o = up.exec("client", &["nslookup", "-timeout=2", name]);
        assert!(o.status.success(), "nslookup {name}:\n{}", text(&o));
        assert!(stdout(&o).contains(&web), "nslookup {name}:\n{}", text(&o));
    }
    // From the coredns pod's own node too (kube-proxy on the same node).
    let o = up.exec(
        "quiet",
        &[
            "dig",
            "+short",
            "+time=2",
            "+tries=1",
            "web.default.svc.cluster.local",
        ],
    );
    assert_eq!(stdout(&o).trim(), web, "{}", text(&o));

    // `podlab dns`.
    let o = run(&["dns", "web", "--from", "client", "--lab", &lab]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).trim(), web);
    let o = run(&[
        "dns",
        "_http._tcp.web",
        "--from",
        "client",
        "-t",
        "SRV",
        "--tcp",
        "--lab",
        &lab,
    ]);
    assert_eq!(
        stdout(&o).trim(),
        "0 100 80 web.default.svc.cluster.local.",
        "{}",
        text(&o)
    );
    let o = run(&["dns", "web", "--from", "client", "--explain", "--lab", &lab]);
    assert!(
        stdout(&o).contains(";; web.default.svc.cluster.local A (udp): NOERROR"),
        "{}",
        text(&o)
    );
    let o = run(&["dns", "nope", "--from", "client", "--lab", &lab]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("NXDOMAIN"), "{}", text(&o));

    // Service variables: in exec and in the container's process, with the
    // container's own `env` winning; none with enableServiceLinks: false.
    let o = up.exec("client", &["env"]);
    let env = stdout(&o);
    assert!(env.contains(&format!("WEB_SERVICE_HOST={web}\n")), "{env}");
    assert!(
        env.contains(&format!("WEB_PORT_80_TCP=tcp://{web}:80\n")),
        "{env}"
    );
    assert!(!env.contains("KUBERNETES_SERVICE_HOST"), "{env}");
    assert!(!env.contains("DB_SERVICE_HOST"), "headless: {env}");
    let o = up.exec("quiet", &["env"]);
    assert!(!stdout(&o).contains("WEB_SERVICE_HOST"), "{}", text(&o));
    let log = format!("/run/podlab/{lab}/logs/default_client_c.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    let logged = loop {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        if l.contains("WEB_SERVICE_HOST") || Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        logged.contains(&format!("WEB_SERVICE_HOST={web}\n")),
        "{logged}"
    );
    assert!(logged.contains("WEB_SERVICE_PORT=overridden\n"), "{logged}");
    assert!(logged.contains("WEB_SERVICE_PORT_HTTP=80\n"), "{logged}");

    // The answers follow the lab: the headless service's only pod deleted,
    // its name is gone (NXDOMAIN, not an empty answer).
    let o = run(&["delete", "pod", "db-0", "--lab", &lab]);
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = status(&up, &["db.default.svc.cluster.local"]);
        if s == "NXDOMAIN" {
            break;
        }
        assert!(Instant::now() < deadline, "still {s} after the delete");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        short(&up, &["web.default.svc.cluster.local"]),
        [web.as_str()]
    );
}
