//! `podlab ui` in a real browser: Debian's chromium, driven through
//! chromedriver's WebDriver HTTP API (a few JSON requests over a socket:
//! nothing else to install). The seed lab's page loads and draws every node
//! and pod with its address, a click on a pod shows what its namespace
//! holds, a trace draws its path on the picture; the server refuses a
//! request without the token. The page follows the lab while it is open (a
//! link taken down is marked, the repair clears it, through server-sent
//! events), and shows a running exercise's story, hints and checks.
//! Screenshots go to target/ui-screenshots/.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const LAB: &str = "ue-uit";
const LIVE_LAB: &str = "ue-uilive";
const EXERCISE_LAB: &str = "ue-uiex";

/// A child process killed (and reaped) however the test ends.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.1 request; the status and the body. The body is read to its
/// Content-Length (chromedriver keeps the connection open whatever the
/// request says) or to the end of a chunked one.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let data = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{data}",
        data.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    let mut raw = Vec::new();
    match length {
        Some(n) => {
            raw.resize(n, 0);
            let _ = r.read_exact(&mut raw);
        }
        None if lower.contains("transfer-encoding: chunked") => loop {
            let mut size = String::new();
            let _ = r.read_line(&mut size);
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            if r.read_exact(&mut chunk).is_err() {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
        },
        None => {
            let _ = r.read_to_end(&mut raw);
        }
    }
    (status, String::from_utf8_lossy(&raw).into_owned())
}

struct Driver {
    port: u16,
    session: String,
    _process: Kill,
}

impl Driver {
    fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let process = Kill(child);
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "timeouts": {"pageLoad": 20000, "script": 10000},
            "goog:chromeOptions": {"args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,1000"
            ]}
        }}});
        let (code, body) = http(port, "POST", "/session", Some(&caps));
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session ({code}): {body}"))
            .to_string();
        Driver {
            port,
            session,
            _process: process,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (code, text) = http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        );
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(code == 200, "WebDriver {method} {path}: {code} {text}");
        v["value"].clone()
    }

    fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_in(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Wait until `js` returns true, at most `limit`.
    fn wait(&self, js: &str, limit: Duration, what: &str) {
        let t = Instant::now();
        loop {
            if self.script(js) == Value::Bool(true) {
                return;
            }
            if t.elapsed() > limit {
                let page = self.script("return document.body.innerText");
                panic!("{what}: not within {limit:?}; the page says:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str) {
        let png = self.call("GET", "/screenshot", None);
        let data = data_encoding::BASE64
            .decode(png.as_str().unwrap_or("").as_bytes())
            .expect("base64 screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(name), data).expect("write screenshot");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
    }
}

/// The seed lab under another name.
fn seed_lab(name: &str) -> LabFile {
    lab_file(
        &include_str!("../src/lab/demo.yaml")
            .replace("  name: demo\n", &format!("  name: {name}\n")),
    )
}

/// A browser on the page of `url`, once the picture is drawn.
fn open_page(url: &str) -> Driver {
    let d = Driver::start();
    d.call("POST", "/url", Some(json!({ "url": url })));
    d.wait(
        "return document.body.dataset.drawn === '1'",
        Duration::from_secs(15),
        "the picture is drawn",
    );
    d
}

fn browser_or_skip() -> bool {
    let found = Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "chromedriver missing: scripts/provision.sh installs chromium and chromium-driver"
            );
        }
        eprintln!("skipping: no chromedriver (apt-get install chromium chromium-driver)");
    }
    found
}

/// `podlab ui`, and the URL it printed.
fn start_ui(lab: &str) -> (Kill, String) {
    let mut child = podlab()
        .args(["ui", lab])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start podlab ui");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the URL");
    let url = line.trim().to_string();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/?token="),
        "no URL: {line:?}"
    );
    (Kill(child), url)
}

#[test]
fn the_page_draws_the_seed_lab_shows_details_and_a_trace() {
    if !root_or_skip("ui") || !browser_or_skip() {
        return;
    }
    let file = seed_lab(LAB);
    let _up = Up::new(LAB, &file);
    let (_ui, url) = start_ui(LAB);
    let port: u16 = url["http://127.0.0.1:".len()..]
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    // No token, a wrong one: refused before anything is read.
    assert_eq!(http(port, "GET", "/api/state", None).0, 401);
    assert_eq!(http(port, "GET", "/api/state?token=0000", None).0, 403);

    let d = open_page(&url);
    // Every node and pod of the seed lab, with its address.
    let shown = |part: &str| {
        d.script(&format!(
            "const g = document.querySelector('#pic [data-part=\"{part}\"]'); return g ? g.textContent : null"
        ))
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{part} is not drawn"))
    };
    for (part, address) in [
        ("node/node-1", "172.18.0.2/24"),
        ("node/node-2", "172.18.0.3/24"),
        ("pod/default/pod-1", "10.244.1.2/24"),
        ("pod/default/pod-2", "10.244.2.2/24"),
        ("svc/kube-system/kube-dns", "10.96.0.10"),
    ] {
        assert!(shown(part).contains(address), "{part} without {address}");
    }
    let pods = d.script("return [...document.querySelectorAll('#pic [data-part^=\"pod/\"]')].map(g => g.dataset.part)");
    let pods: Vec<&str> = pods
        .as_array()
        .expect("pods")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(pods.len(), 3, "pod-1, pod-2 and coredns: {pods:?}");
    assert!(pods
        .iter()
        .any(|p| p.starts_with("pod/kube-system/coredns-")));
    d.screenshot("01-loaded.png");

    // A click on pod-1: its namespace as the kernel has it.
    d.click("#pic [data-part=\"pod/default/pod-1\"]");
    d.wait(
        "const x = document.querySelector('#details-of'); return !!x && x.dataset.part === 'pod/default/pod-1' && x.textContent.includes('default via 10.244.1.1 dev eth0')",
        Duration::from_secs(10),
        "the details of pod-1",
    );
    d.screenshot("02-details.png");

    // A click on the kube-dns Service: its chains whole, down to the DNAT
    // to the coredns pod, not only the map line that leads there.
    d.click("#pic [data-part=\"svc/kube-system/kube-dns\"]");
    d.wait(
        "const x = document.querySelector('#details-of'); return !!x && x.dataset.part === 'svc/kube-system/kube-dns' && /chain service-\\S+-kube-system\\/kube-dns\\/tcp\\/dns-tcp \\{/.test(x.textContent) && x.textContent.includes('dnat to 10.244.1.3:53')",
        Duration::from_secs(10),
        "the kube-dns Service's chains",
    );

    // A trace from pod-2 to pod-1, drawn through both nodes and the bridge.
    d.type_in("#trace-from", "pod-2");
    d.type_in("#trace-to", "pod-1:80");
    d.click("#trace-go");
    d.wait(
        "const r = document.querySelector('#trace-result'); return !!r && r.textContent.includes('delivered')",
        Duration::from_secs(15),
        "the trace's answer",
    );
    let points = d.script(
        "const l = document.querySelector('#trace-overlay polyline'); return l ? l.getAttribute('points').split(' ').length : 0",
    );
    assert_eq!(points, json!(5), "pod-2, node-2, br0, node-1, pod-1");
    d.screenshot("03-trace.png");
}

/// The page is opened once and never reloaded: what changes on it came as
/// server-sent events (the page reads `/api/state` only when it loads).
#[test]
fn the_page_follows_the_lab_while_it_is_open() {
    if !root_or_skip("ui") || !browser_or_skip() {
        return;
    }
    let file = seed_lab(LIVE_LAB);
    let up = Up::new(LIVE_LAB, &file);
    let (_ui, url) = start_ui(LIVE_LAB);
    let d = open_page(&url);
    let pod_1 = "#pic [data-part=\"pod/default/pod-1\"]";
    let marks_of_pod_1 = format!(
        "const g = document.querySelector('{pod_1}'); return !!g && [...g.querySelectorAll('text')].some(t => t.textContent.includes('link eth0 is down'))"
    );
    assert_eq!(
        d.script(&marks_of_pod_1),
        json!(false),
        "pod-1 is marked before anything broke"
    );
    let events_before = d.script("return window.podlabEvents || 0");

    // pod-1's interface goes down behind the page's back.
    let o = up.exec("pod-1", &["ip", "link", "set", "eth0", "down"]);
    assert!(o.status.success(), "link down:\n{}", text(&o));
    d.wait(
        &format!("{marks_of_pod_1} && [...document.querySelectorAll('#marks li')].some(l => l.textContent.includes('link eth0 is down'))"),
        Duration::from_secs(5),
        "pod-1 marked with its link down, and listed",
    );
    let events_after = d.script("return window.podlabEvents || 0");
    assert!(
        events_after.as_u64() > events_before.as_u64(),
        "the mark came without an event ({events_before} then {events_after})"
    );
    d.screenshot("04-live-link-down.png");

    // The repair: the mark goes, the list says nothing differs.
    let o = run(&["apply", "--lab", LIVE_LAB]);
    assert!(o.status.success(), "apply:\n{}", text(&o));
    d.wait(
        &format!("const g = document.querySelector('{pod_1}'); return !!g && !g.textContent.includes('!') && document.querySelector('#marks').textContent.trim() === 'nothing'"),
        Duration::from_secs(5),
        "pod-1's mark gone after apply",
    );
    d.screenshot("05-live-repaired.png");
}

#[test]
fn the_page_shows_a_running_exercise_with_hints_and_checks() {
    if !root_or_skip("ui") || !browser_or_skip() {
        return;
    }
    let results = tempfile::tempdir().expect("tempdir");
    let _ = run(&["down", EXERCISE_LAB]);
    // Brought down however the test ends (the exercise's own lab).
    let _up = Up {
        lab: EXERCISE_LAB.to_string(),
    };
    let o = run(&[
        "exercise",
        "start",
        "labs/exercises/01-pod-interface-down.yaml",
        "--as",
        EXERCISE_LAB,
        "--results",
        results.path().to_str().expect("utf-8 path"),
    ]);
    assert!(o.status.success(), "exercise start:\n{}", text(&o));
    let (_ui, url) = start_ui(EXERCISE_LAB);
    let d = open_page(&url);
    d.wait(
        "const x = document.querySelector('#exercise'); return !!x && !x.hidden && document.querySelector('#ex-body').textContent.length > 40",
        Duration::from_secs(5),
        "the exercise's story",
    );
    d.click("#ex-hint");
    d.wait(
        "return document.querySelector('#ex-result').textContent.startsWith('hint 1: ')",
        Duration::from_secs(10),
        "the first hint",
    );
    // The hint is counted as `exercise hint` counts it: the next state says so.
    d.wait(
        "return document.querySelector('#ex-body').textContent.includes('hint 1: ')",
        Duration::from_secs(5),
        "the hint in the exercise's view",
    );
    d.click("#ex-check");
    d.wait(
        "const r = document.querySelector('#ex-result'); return / passed, [1-9][0-9]* failed/.test(r.textContent) && r.textContent.includes('FAIL ')",
        Duration::from_secs(20),
        "the checks fail while the fault is in place",
    );
    d.screenshot("06-exercise.png");
}
