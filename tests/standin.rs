//! Stand-ins fail the grade: what a learner could put in place of the
//! fix so that a naive check passes, against the shipped exercises (run
//! under lab names of their own, `start --as`). Each test first shows
//! that the stand-in does what a naive check looks for (it answers), then
//! that `exercise check` does not pass, and why; then that the real fix
//! passes, so that the checks are not failing for some other reason.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

fn exercise(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("labs/exercises")
        .join(name)
}

/// An exercise started under `lab`, journaled in a directory of its own;
/// brought down however the test ends.
struct Started {
    lab: &'static str,
    plan: podlab::plan::Plan,
    results: tempfile::TempDir,
}

impl Started {
    fn new(file: &str, lab: &'static str) -> Started {
        let _ = run(&["down", lab]);
        let path = exercise(file);
        let plan = podlab::exercise::run::load_as(&path, Some(lab))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .plan;
        let results = tempfile::tempdir().expect("results");
        let o = run(&[
            "exercise",
            "start",
            path.to_str().expect("utf-8"),
            "--as",
            lab,
            "--results",
            results.path().to_str().expect("utf-8"),
        ]);
        let s = Started { lab, plan, results };
        assert!(o.status.success(), "start {file}:\n{}", text(&o));
        s
    }

    fn exec(&self, at: &str, cmd: &[&str]) -> std::process::Output {
        let mut args = vec!["exec", "--lab", self.lab, at, "--"];
        args.extend_from_slice(cmd);
        run(&args)
    }

    fn must(&self, at: &str, cmd: &[&str]) -> String {
        let o = self.exec(at, cmd);
        assert!(o.status.success(), "{at}: {cmd:?}:\n{}", text(&o));
        stdout(&o)
    }

    /// `exercise check --json`: the exit code and each check's result.
    fn check(&self) -> (Option<i32>, Vec<serde_json::Value>) {
        let o = run(&["exercise", "check", "--lab", self.lab, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("check --json: {e}\n{}", text(&o)));
        (
            o.status.code(),
            v["checks"].as_array().cloned().unwrap_or_default(),
        )
    }

    /// Checks until all pass (a repaired link takes a moment), or panics.
    fn passes(&self) {
        let mut last = self.check();
        for _ in 0..6 {
            if last.0 == Some(0) {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
            last = self.check();
        }
        panic!("the real fix must pass: {:#?}", last.1);
    }

    fn netns_of(&self, pod: &str) -> String {
        self.plan
            .pods
            .iter()
            .find(|p| p.name == pod)
            .unwrap_or_else(|| panic!("no pod {pod}"))
            .netns
            .clone()
    }

    fn node(&self, name: &str) -> &podlab::plan::NodePlan {
        self.plan
            .nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn solved(&self) -> bool {
        let o = run(&[
            "exercise",
            "report",
            "--json",
            self.results.path().to_str().expect("utf-8"),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("report --json: {e}\n{}", text(&o)));
        v[0]["solved"] == true
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let o = run(&["down", self.lab]);
        if !std::thread::panicking() {
            assert!(o.status.success(), "down:\n{}", text(&o));
            assert_nothing_left(self.lab);
        }
    }
}

/// The failing checks' observed lines.
fn failing(checks: &[serde_json::Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap_or_default(),
                c["observed"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// A server of the test's own, as a learner would run one, in a pod's
/// namespace; stopped when dropped.
struct StandIn {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    /// An HTTP server answering 200 to anything, on `ip:80` in `netns`.
    fn http(netns: &str, ip: Ipv4Addr) -> StandIn {
        let l =
            podlab::kernel::netns::run_in(netns, || TcpListener::bind(SocketAddrV4::new(ip, 80)))
                .expect("enter the pod")
                .expect("bind the stand-in HTTP server");
        l.set_nonblocking(true).expect("nonblocking");
        StandIn::serve(move |stop| {
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let body = "{\"pod\":\"web-1\",\"namespace\":\"default\"}";
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })
    }

    /// A DNS server answering every A query with `answer`, on `ip:53`.
    fn dns(netns: &str, ip: Ipv4Addr, answer: Ipv4Addr) -> StandIn {
        let s = podlab::kernel::netns::run_in(netns, || UdpSocket::bind(SocketAddrV4::new(ip, 53)))
            .expect("enter the pod")
            .expect("bind the stand-in DNS server");
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        StandIn::serve(move |stop| {
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = s.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = dns_answer(&buf[..n], answer) {
                    let _ = s.send_to(&reply, from);
                }
            }
        })
    }

    fn serve(f: impl FnOnce(Arc<AtomicBool>) + Send + 'static) -> StandIn {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        StandIn {
            stop,
            thread: Some(std::thread::spawn(move || f(s))),
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The answer to the first question of `query`: one A record, NOERROR,
/// whatever the name (and no EDNS: the stand-in knows nothing of it).
fn dns_answer(query: &[u8], answer: Ipv4Addr) -> Option<Vec<u8>> {
    let mut end = 12;
    loop {
        let len = *query.get(end)? as usize;
        end += 1 + len;
        if len == 0 {
            break;
        }
    }
    let question = query.get(12..end + 4)?;
    let mut r = Vec::new();
    r.extend_from_slice(query.get(..2)?);
    r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    r.extend_from_slice(question);
    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    r.extend_from_slice(&answer.octets());
    Some(r)
}

#[test]
fn a_server_of_the_learners_own_on_the_cluster_ip_is_not_the_service() {
    if !root_or_skip("stand-in HTTP server") {
        return;
    }
    // 05 without a seed: node-1's kube-proxy table is flushed.
    let ex = Started::new("05-kube-proxy-flushed.yaml", "gb-sa");
    let ip = ex
        .plan
        .services
        .iter()
        .find(|s| s.name == "web")
        .and_then(|s| s.cluster_ip)
        .expect("web's ClusterIP");
    ex.must(
        "client-1",
        &["ip", "addr", "add", &format!("{ip}/32"), "dev", "lo"],
    );
    let server = StandIn::http(&ex.netns_of("client-1"), ip);
    // What a learner's curl sees: an answer on the Service's address.
    let got = podlab::kernel::netns::run_in(&ex.netns_of("client-1"), || {
        let mut c = std::net::TcpStream::connect_timeout(
            &SocketAddrV4::new(ip, 80).into(),
            Duration::from_secs(2),
        )?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(c, "GET / HTTP/1.1\r\nHost: web\r\n\r\n")?;
        let mut got = String::new();
        c.read_to_string(&mut got)?;
        Ok::<_, std::io::Error>(got)
    })
    .expect("enter client-1")
    .expect("GET / from client-1");
    assert!(got.contains("web-1"), "the stand-in answers: {got}");
    let (code, checks) = ex.check();
    assert_eq!(code, Some(1), "{checks:#?}");
    let f = failing(&checks);
    assert!(
        f.iter().any(|l| l.starts_with("client-1")
            && l.contains("answered, but not by a pod of svc/default/web")),
        "{f:#?}"
    );
    assert!(!ex.solved());
    // The real fix, with the stand-in gone: graded solved.
    drop(server);
    ex.must(
        "client-1",
        &["ip", "addr", "del", &format!("{ip}/32"), "dev", "lo"],
    );
    let o = run(&[
        "exec",
        "--lab",
        ex.lab,
        "node/node-2",
        "--",
        "nft",
        "list",
        "table",
        "ip",
        "kube-proxy",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let load = podlab()
        .args([
            "exec",
            "--lab",
            ex.lab,
            "node/node-1",
            "--",
            "nft",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(&o.stdout)?;
            c.wait_with_output()
        })
        .expect("nft -f -");
    assert!(load.status.success(), "{}", text(&load));
    ex.passes();
    assert!(ex.solved());
}

#[test]
fn a_dns_server_answering_anything_is_not_cluster_dns() {
    if !root_or_skip("stand-in DNS server") {
        return;
    }
    // 09: the CoreDNS pod's interface is down; both clients get a DNS
    // server of the learner's own on kube-dns's address.
    let ex = Started::new("09-coredns-unreachable.yaml", "gb-sd");
    let dns = ex.plan.dns_ip;
    let web = ex
        .plan
        .services
        .iter()
        .find(|s| s.name == "web")
        .and_then(|s| s.cluster_ip)
        .expect("web's ClusterIP");
    let mut servers = Vec::new();
    for client in ["client-1", "client-2"] {
        ex.must(
            client,
            &["ip", "addr", "add", &format!("{dns}/32"), "dev", "lo"],
        );
        servers.push(StandIn::dns(&ex.netns_of(client), dns, web));
    }
    let got = ex.must(
        "client-1",
        &[
            "dig",
            "+short",
            "+time=1",
            "+tries=1",
            "anything.example.org",
        ],
    );
    assert_eq!(got.trim(), web.to_string(), "the stand-in answers anything");
    let (code, checks) = ex.check();
    assert_eq!(code, Some(1), "{checks:#?}");
    let f = failing(&checks);
    assert_eq!(
        f.iter()
            .filter(|l| l.contains("but not by the cluster DNS server"))
            .count(),
        2,
        "{f:#?}"
    );
    assert!(!ex.solved());
    drop(servers);
    for client in ["client-1", "client-2"] {
        ex.must(
            client,
            &["ip", "addr", "del", &format!("{dns}/32"), "dev", "lo"],
        );
    }
    let coredns = ex
        .plan
        .pods
        .iter()
        .find(|p| p.namespace == "kube-system")
        .expect("the CoreDNS pod");
    let at = format!("kube-system/{}", coredns.name);
    ex.must(&at, &["ip", "link", "set", "eth0", "up"]);
    let gw = ex.node(&coredns.node).pod_gateway.to_string();
    ex.must(&at, &["ip", "route", "add", "default", "via", &gw]);
    ex.passes();
    assert!(ex.solved());
}

#[test]
fn a_node_without_its_default_route_is_not_repaired() {
    if !root_or_skip("a route left out") {
        return;
    }
    // 04 without a seed: node-1's eth0 is down, node-2's cni0 is down.
    let ex = Started::new("04-node-cut-off.yaml", "gb-sn");
    let other = ex.node("node-2");
    let (cidr, via) = (other.pod_cidr.to_string(), other.ip.to_string());
    let gw = ex.plan.net.gateway.to_string();
    ex.must("node/node-1", &["ip", "link", "set", "eth0", "up"]);
    ex.must("node/node-1", &["ip", "route", "add", &cidr, "via", &via]);
    ex.must("node/node-2", &["ip", "link", "set", "cni0", "up"]);
    // Every pod reaches every web pod: the matrix alone would pass.
    let mut last = ex.check();
    for _ in 0..6 {
        if last
            .1
            .iter()
            .any(|c| c["kind"] == "matrix" && c["passed"] == true)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        last = ex.check();
    }
    let (code, checks) = last;
    assert_eq!(code, Some(1), "{checks:#?}");
    assert!(
        checks
            .iter()
            .any(|c| c["kind"] == "matrix" && c["passed"] == true),
        "{checks:#?}"
    );
    let f = failing(&checks);
    assert!(
        f.len() == 1 && f[0].starts_with("node-1's") && f[0].contains("default"),
        "only node-1's kernel check fails, on the default route: {f:#?}"
    );
    assert!(!ex.solved());
    ex.must(
        "node/node-1",
        &["ip", "route", "add", "default", "via", &gw],
    );
    ex.passes();
    assert!(ex.solved());
}

#[test]
fn a_stale_endpoint_fails_every_service_check() {
    if !root_or_skip("stale endpoint") {
        return;
    }
    let ex = Started::new("11-stale-endpoints.yaml", "gb-se");
    // One connection in three goes to the removed pod: a single probe
    // would pass two times in three. Every run fails both Service checks.
    for run in 0..5 {
        let (code, checks) = ex.check();
        assert_eq!(code, Some(1), "run {run}: {checks:#?}");
        let services = checks
            .iter()
            .filter(|c| c["name"].as_str().unwrap_or_default().contains("svc/web"))
            .collect::<Vec<_>>();
        assert_eq!(services.len(), 2, "{checks:#?}");
        assert!(
            services.iter().all(|c| c["passed"] == false),
            "run {run}: {services:#?}"
        );
    }
    // Deleting only the stale rule, on both nodes, leaves a third of the
    // connections with no rule at all: still failing.
    for node in ["node/node-1", "node/node-2"] {
        let table = ex.must(node, &["nft", "-a", "list", "table", "ip", "kube-proxy"]);
        let chain = table
            .lines()
            .find_map(|l| {
                let l = l.trim();
                l.strip_prefix("chain ")
                    .filter(|c| c.contains("default/web/tcp/"))
                    .and_then(|c| c.split_whitespace().next())
            })
            .expect("web's chain")
            .to_string();
        let handle = table
            .lines()
            .find(|l| l.contains("dnat to 10.244.1.254:"))
            .and_then(|l| l.rsplit("# handle ").next())
            .expect("the stale rule")
            .trim()
            .to_string();
        ex.must(
            node,
            &[
                "nft",
                "delete",
                "rule",
                "ip",
                "kube-proxy",
                &chain,
                "handle",
                &handle,
            ],
        );
    }
    let (code, checks) = ex.check();
    assert_eq!(code, Some(1), "{checks:#?}");
    assert!(
        checks
            .iter()
            .filter(|c| c["name"].as_str().unwrap_or_default().contains("svc/web"))
            .all(|c| c["passed"] == false),
        "{checks:#?}"
    );
    assert!(!ex.solved());
}

#[test]
fn an_undo_that_fails_fails_reset_and_verify() {
    if !root_or_skip("broken undo") {
        return;
    }
    // 06's firewall, with an undo that fails.
    let broken = std::fs::read_to_string(exercise("06-firewalled-backend.yaml"))
        .expect("06")
        .replace(
            "undo: \"! nft list table inet firewall >/dev/null 2>&1 || nft delete table inet firewall\"",
            "undo: \"exit 3\"",
        );
    assert!(broken.contains("undo: \"exit 3\""));
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir(dir.path().join("labs")).expect("labs");
    std::fs::copy(
        exercise("labs/services.yaml"),
        dir.path().join("labs/services.yaml"),
    )
    .expect("lab");
    let path = dir.path().join("06-broken-undo.yaml");
    std::fs::write(&path, broken).expect("exercise");
    let p = path.to_str().expect("utf-8");
    let o = run(&["exercise", "verify", p, "--as", "gb-su", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("verify --json");
    let reset = v["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["phase"] == "reset"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(reset["ok"], false, "{v}");
    assert_nothing_left("gb-su");

    // `exercise reset` by hand: fails, says so, and does not call the lab
    // healthy with the firewall in place.
    let _ = run(&["down", "gb-su"]);
    let results = tempfile::tempdir().expect("results");
    let o = run(&[
        "exercise",
        "start",
        p,
        "--as",
        "gb-su",
        "--results",
        results.path().to_str().expect("utf-8"),
    ]);
    struct Down;
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = run(&["down", "gb-su"]);
            if !std::thread::panicking() {
                assert_nothing_left("gb-su");
            }
        }
    }
    let _down = Down;
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["exercise", "reset", "--lab", "gb-su", "--json"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("\"healthy\":true"), "{}", text(&o));
    assert!(text(&o).contains("exit"), "{}", text(&o));
    let o = run(&["fault", "list", "--injected", "--lab", "gb-su"]);
    assert!(
        stdout(&o).contains("firewall"),
        "the fault stays recorded:\n{}",
        text(&o)
    );
}

#[test]
fn a_policy_flushed_by_hand_is_not_deleted() {
    if !root_or_skip("policy rules flushed") {
        return;
    }
    // 12: a deny-all NetworkPolicy. Flushing the nodes' policy rules lets
    // every packet through, with the policy still in the API.
    let ex = Started::new("12-deny-all-policy.yaml", "gb-sp");
    for node in ["node/node-1", "node/node-2"] {
        ex.must(node, &["nft", "flush", "table", "ip", "network-policy"]);
    }
    let (code, checks) = ex.check();
    assert_eq!(code, Some(1), "{checks:#?}");
    assert!(
        checks
            .iter()
            .any(|c| c["kind"] == "matrix" && c["passed"] == true),
        "the traffic passes: {checks:#?}"
    );
    let f = failing(&checks);
    assert!(
        f.len() == 2 && f.iter().all(|l| l.contains("network-policy")),
        "both nodes' kernel checks fail on the policy table: {f:#?}"
    );
    assert!(!ex.solved());
    // Deleting the policy writes the rules as the plan now has them.
    let o = run(&["delete", "--lab", ex.lab, "networkpolicy", "deny-all"]);
    assert!(o.status.success(), "{}", text(&o));
    ex.passes();
    assert!(ex.solved());
}
