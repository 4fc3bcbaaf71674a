//! The daemon end to end: without root over a tempdir (control socket,
//! readiness markers, supervision of a process that cannot start), and with
//! root inside real network namespaces.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::lab::{Protocol, RestartPolicy};
use crate::plan::{NetPlan, Plan, PodPlan, PortPlan, ProcessPlan, PLAN_VERSION};

use super::*;

fn plan(lab: &str, pods: Vec<PodPlan>) -> Plan {
    Plan {
        version: PLAN_VERSION,
        lab: lab.into(),
        source: "test".into(),
        net: NetPlan {
            netns: format!("{lab}-net"),
            bridge: "br0".into(),
            gateway: Ipv4Addr::new(172, 18, 0, 1),
            cidr: "172.18.0.0/24".parse().unwrap(),
        },
        nodes: vec![],
        pods,
        clients: vec![],
        services: vec![],
        policies: vec![],
        workloads: vec![],
        cluster_domain: "cluster.local".into(),
        service_cidr: "10.96.0.0/12".parse().unwrap(),
        dns_ip: Ipv4Addr::new(10, 96, 0, 10),
        mtu: 1500,
        dns_upstream: vec![],
        deployments: vec![],
        namespace_labels: Default::default(),
    }
}

fn pod(name: &str, netns: &str) -> PodPlan {
    PodPlan {
        namespace: "default".into(),
        name: name.into(),
        node: "node-1".into(),
        netns: netns.into(),
        ip: Ipv4Addr::new(10, 244, 1, 2),
        prefix: 24,
        gateway: Ipv4Addr::new(10, 244, 1, 1),
        host_veth: "veth0".into(),
        hostname: name.into(),
        subdomain: None,
        labels: BTreeMap::new(),
        owner: None,
        owner_kind: None,
        restart_policy: RestartPolicy::Always,
        containers: vec![],
        ports: vec![],
        processes: vec![],
        probes: Vec::new(),
        dns: Default::default(),
        service_links: true,
        role: Default::default(),
    }
}

fn port(container: &str, port: u16, protocol: Protocol) -> PortPlan {
    PortPlan {
        container: container.into(),
        name: None,
        port,
        protocol,
        host_port: None,
    }
}

fn process(container: &str, argv: &[&str]) -> ProcessPlan {
    ProcessPlan {
        container: container.into(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("GREETING".into(), "hello".into())],
    }
}

fn write_plan(dir: &Path, plan: &Plan) {
    std::fs::write(dir.join(PLAN_FILE), serde_json::to_string(plan).unwrap()).unwrap();
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start the daemon on a thread, without touching the test's signals.
fn start(dir: &Path) -> std::thread::JoinHandle<Result<(), Error>> {
    let d = dir.to_path_buf();
    let h = std::thread::spawn(move || run(&d, false));
    wait_for("ready or failed", Duration::from_secs(10), || {
        dir.join(READY_FILE).exists() || dir.join(FAILED_FILE).exists()
    });
    h
}

#[test]
fn control_socket_reports_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut broken = pod("broken", "podlab-test-no-such-netns");
    broken.restart_policy = RestartPolicy::Never;
    broken.processes = vec![process("main", &["true"])];
    let mut looping = pod("looping", "podlab-test-no-such-netns");
    looping.processes = vec![process("main", &["true"])];
    write_plan(
        dir.path(),
        &plan("t", vec![pod("idle", "x"), broken, looping]),
    );
    let daemon = start(dir.path());
    let ready = std::fs::read_to_string(dir.path().join(READY_FILE)).unwrap();
    assert_eq!(ready.trim(), std::process::id().to_string());
    let sock = dir.path().join(control::SOCKET_NAME);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );

    ping(dir.path(), Duration::from_secs(2)).unwrap();
    // The process cannot enter a namespace that does not exist: the spawn
    // fails, which supervision treats as an exit with 127.
    wait_for("broken pod to fail", Duration::from_secs(5), || {
        let s = query_status(dir.path(), Duration::from_secs(2)).unwrap();
        s.pod("default", "broken").unwrap().status == "Error"
    });
    let s = query_status(dir.path(), Duration::from_secs(2)).unwrap();
    assert_eq!(s.pid, std::process::id());
    assert!(s.ready);
    assert!(s.rss_bytes > 0);
    let idle = s.pod("default", "idle").unwrap();
    assert_eq!((idle.phase, idle.ready.as_str()), (Phase::Running, "0/0"));
    assert!(idle.started.is_some());
    let broken = s.pod("default", "broken").unwrap();
    assert_eq!(broken.phase, Phase::Failed);
    assert_eq!(broken.ready, "0/1");
    let c = &broken.containers[0];
    assert_eq!((c.state, c.exit_code), (ContainerState::Error, Some(127)));
    assert!(
        c.message.as_deref().unwrap_or("").contains("cannot start"),
        "{c:?}"
    );
    // Always restarts, after a back-off.
    let looping = s.pod("default", "looping").unwrap();
    assert_eq!(looping.status, "CrashLoopBackOff");
    assert_eq!(looping.phase, Phase::Running);

    // A raw client speaking the protocol by hand, including nonsense.
    {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(b"hello\n{\"op\":\"ping\"}\n").unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("{\"ok\":false,\"error\":\"bad request"),
            "{line}"
        );
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "{\"ok\":true}\n");
    }

    request_shutdown(dir.path(), Duration::from_secs(10)).unwrap();
    daemon.join().unwrap().unwrap();
    assert!(!sock.exists());
    assert!(!dir.path().join(READY_FILE).exists());
    assert!(matches!(
        query_status(dir.path(), Duration::from_secs(1)),
        Err(Error::NotRunning { .. })
    ));
    assert!(matches!(
        request_shutdown(dir.path(), Duration::from_secs(1)),
        Err(Error::NotRunning { .. })
    ));
}

#[test]
fn setup_failure_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pod("web", "podlab-test-no-such-netns");
    p.ports = vec![port("web", 80, Protocol::Tcp)];
    write_plan(dir.path(), &plan("t", vec![p]));
    let err = run(dir.path(), false).unwrap_err();
    assert!(matches!(err, Error::Netns { .. }), "{err}");
    let failed = std::fs::read_to_string(dir.path().join(FAILED_FILE)).unwrap();
    assert!(failed.contains("pod default/web"), "{failed}");
    assert!(!dir.path().join(READY_FILE).exists());
    assert!(!dir.path().join(control::SOCKET_NAME).exists());

    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        run(empty.path(), false),
        Err(Error::ReadPlan { .. })
    ));
    assert!(empty.path().join(FAILED_FILE).exists());
}

#[test]
fn newer_plan_is_refused_by_version() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(PLAN_FILE),
        format!("{{\"version\":{},\"whatever\":1}}", PLAN_VERSION + 1),
    )
    .unwrap();
    let err = load_plan(dir.path()).unwrap_err();
    assert!(matches!(err, Error::PlanVersion { .. }), "{err}");
    assert!(err.to_string().contains("hint:"));
}

#[test]
fn echo_ports_skip_sctp_duplicates_and_process_containers() {
    let mut p = pod("p", "n");
    p.ports = vec![
        port("web", 80, Protocol::Tcp),
        port("web", 53, Protocol::Udp),
        port("side", 80, Protocol::Tcp),
        port("web", 9, Protocol::Sctp),
        port("app", 8080, Protocol::Tcp),
    ];
    p.processes = vec![process("app", &["sleep", "1"])];
    let w = wanted_ports(&plan("t", vec![p]));
    assert_eq!(w[0].ports, vec![(80, Protocol::Tcp), (53, Protocol::Udp)]);
}

/// Root tests run only as root; elsewhere they say why they did not run.
/// In CI (where `CI` is set) a missing root is a failure, not a skip.
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: needs root, and CI is set"
    );
    eprintln!("skipping {test}: needs root (network namespaces)");
    false
}

/// An `ip netns` namespace with `lo` up, removed on drop.
struct TestNetns(String);

impl TestNetns {
    fn new(name: &str) -> TestNetns {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(std::process::Stdio::null())
            .status();
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip netns add {name}");
        let ok = Command::new("ip")
            .args(["-n", name, "link", "set", "lo", "up"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "lo up in {name}");
        TestNetns(name.into())
    }

    fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.0));
    }
}

#[test]
fn pod_in_a_real_namespace() {
    if !root_or_skip("pod_in_a_real_namespace") {
        return;
    }
    let ns = TestNetns::new(&format!("podlab-rt-{}", std::process::id()));
    let etc = Path::new("/etc/netns").join(&ns.0);
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("hosts"), "10.244.1.2 web-0.podlab.test\n").unwrap();
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    let host_name = nix::unistd::gethostname().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut p = pod("web-0", &ns.0);
    p.hostname = "web-0".into();
    p.ports = vec![
        port("web", 8080, Protocol::Tcp),
        port("web", 5353, Protocol::Udp),
        port("web", 9999, Protocol::Sctp),
    ];
    p.processes = vec![process(
        "probe",
        &[
            "sh",
            "-c",
            "echo host=$(hostname) env=$HOSTNAME/$GREETING; cat /etc/hosts; \
             ls /sys/class/net; exec sleep 60",
        ],
    )];
    write_plan(dir.path(), &plan("t", vec![p]));
    let daemon = start(dir.path());
    assert!(
        dir.path().join(READY_FILE).exists(),
        "{:?}",
        std::fs::read_to_string(dir.path().join(FAILED_FILE))
    );

    let body = ns.exec(&["curl", "-s", "http://127.0.0.1:8080/hi?x=1"]);
    assert!(body.contains("pod: web-0\n"), "{body}");
    assert!(body.contains("client: 127.0.0.1:"), "{body}");
    assert!(body.contains("path: /hi?x=1\n"), "{body}");
    let json = ns.exec(&[
        "curl",
        "-s",
        "-H",
        "Accept: application/json",
        "127.0.0.1:8080",
    ]);
    assert!(json.contains("\"podIP\":\"10.244.1.2\""), "{json}");
    // Not HTTP: it costs that connection only, not the listener.
    {
        use std::io::{Read, Write};
        let n = crate::kernel::netns::Netns::open(&ns.0).unwrap();
        let _in = n.enter().unwrap();
        let mut s = std::net::TcpStream::connect("127.0.0.1:8080").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"\x16\x03\x01junk\r\n\r\n").unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    let again = ns.exec(&["curl", "-s", "127.0.0.1:8080"]);
    assert!(again.contains("pod: web-0"), "{again}");

    let udp = {
        let n = crate::kernel::netns::Netns::open(&ns.0).unwrap();
        let _in = n.enter().unwrap();
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send_to(b" hi there \n", "127.0.0.1:5353").unwrap();
        let mut buf = [0u8; 1024];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(
        udp.starts_with(
            "pod=web-0 namespace=default node=node-1 podIP=10.244.1.2 client=127.0.0.1:"
        ),
        "{udp}"
    );
    assert!(udp.ends_with("data=hi there\n"), "{udp}");

    let log = dir.path().join(LOG_DIR).join("default_web-0_probe.log");
    wait_for("the probe's output", Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .map(|s| s.contains("eth0") || s.contains("lo"))
            .unwrap_or(false)
    });
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(out.contains("host=web-0 env=web-0/hello"), "{out}");
    assert!(out.contains("web-0.podlab.test"), "{out}");
    // The pod's namespace has only `lo`: sysfs was remounted for it.
    assert_eq!(out.lines().filter(|l| *l == "lo").count(), 1, "{out}");
    // Nothing leaked to the host.
    assert_eq!(std::fs::read_to_string("/etc/hosts").unwrap(), host_hosts);
    assert_eq!(nix::unistd::gethostname().unwrap(), host_name);

    let s = query_status(dir.path(), Duration::from_secs(2)).unwrap();
    let st = s.pod("default", "web-0").unwrap();
    assert_eq!((st.status.as_str(), st.ready.as_str()), ("Running", "2/2"));
    let probe = st.containers.iter().find(|c| c.name == "probe").unwrap();
    let pid = probe.pid.unwrap();

    request_shutdown(dir.path(), Duration::from_secs(10)).unwrap();
    daemon.join().unwrap().unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} survived"
    );
}

/// 1,000 pods with a port each: binding must take well under a second and
/// the daemon must stay small. Slow to set up (1,000 namespaces), so run it
/// on purpose: `cargo test -- --ignored thousand_pods`.
#[test]
#[ignore]
fn thousand_pods() {
    if !root_or_skip("thousand_pods") {
        return;
    }
    const N: usize = 1000;
    let prefix = format!("podlab-k{}-", std::process::id());
    let names: Vec<String> = (0..N).map(|i| format!("{prefix}{i}")).collect();
    let batch: String = names.iter().map(|n| format!("netns add {n}\n")).collect();
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(batch.as_bytes())
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    struct Cleanup(Vec<String>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let batch: String = self.0.iter().map(|n| format!("netns del {n}\n")).collect();
            if let Ok(mut c) = Command::new("ip")
                .args(["-force", "-batch", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
            {
                use std::io::Write;
                if let Some(mut i) = c.stdin.take() {
                    let _ = i.write_all(batch.as_bytes());
                }
                let _ = c.wait();
            }
        }
    }
    let _cleanup = Cleanup(names.clone());

    let pods = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut p = pod(&format!("pod-{i}"), n);
            p.ports = vec![port("web", 80, Protocol::Tcp)];
            p
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write_plan(dir.path(), &plan("k", pods));

    let t = Instant::now();
    let wanted = wanted_ports(&load_plan(dir.path()).unwrap());
    let bound = echo::bind_all(&wanted).unwrap();
    let bind_time = t.elapsed();
    eprintln!("bound {} pods in {:?}", bound.len(), bind_time);
    assert!(bind_time < Duration::from_millis(500), "{bind_time:?}");
    drop(bound);

    let t = Instant::now();
    let daemon = start(dir.path());
    eprintln!("daemon ready in {:?}", t.elapsed());
    let s = query_status(dir.path(), Duration::from_secs(5)).unwrap();
    assert!(s.pods.iter().all(|p| p.ready == "1/1"));
    eprintln!(
        "rss of the test process with the daemon in it: {} KiB",
        s.rss_bytes / 1024
    );
    assert!(s.rss_bytes < 100 << 20, "{}", s.rss_bytes);
    request_shutdown(dir.path(), Duration::from_secs(10)).unwrap();
    daemon.join().unwrap().unwrap();
}
