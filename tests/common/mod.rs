//! Shared helpers of the integration tests: run the built binary, skip
//! without root (never in CI), and a guard that brings a lab down however
//! the test ends.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

pub fn podlab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_podlab"));
    c.env("NO_COLOR", "1");
    c
}

pub fn run(args: &[&str]) -> Output {
    podlab().args(args).output().expect("run podlab")
}

pub fn text(o: &Output) -> String {
    format!(
        "exit: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether the kernel tests can run. Outside CI and without root they are
/// skipped with a reason; in CI a missing root is a failure, never a skip.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs root, and CI=true: kernel tests are never skipped in CI");
    }
    eprintln!(
        "skipping {test}: needs root (network namespaces); run scripts/test.sh or sudo cargo test"
    );
    false
}

/// A lab file in a temporary directory.
pub struct LabFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn lab_file(text: &str) -> LabFile {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lab.yaml");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write lab file");
    LabFile { _dir: dir, path }
}

/// Brings the lab down when dropped, even when the test panicked, and then
/// checks that nothing of it is left.
pub struct Up {
    pub lab: String,
}

impl Up {
    pub fn new(lab: &str, file: &LabFile) -> Up {
        // A previous crashed run must not make this one fail.
        let _ = run(&["down", lab]);
        let guard = Up {
            lab: lab.to_string(),
        };
        let o = run(&["up", "-q", file.path.to_str().expect("utf-8 path")]);
        assert!(o.status.success(), "up failed:\n{}", text(&o));
        guard
    }

    pub fn exec(&self, target: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", "--lab", &self.lab, target, "--"];
        args.extend_from_slice(cmd);
        run(&args)
    }

    pub fn get_json(&self, what: &str) -> serde_json::Value {
        let o = run(&["get", what, "-o", "json", "-A", "--lab", &self.lab]);
        assert!(o.status.success(), "get {what}:\n{}", text(&o));
        serde_json::from_slice(&o.stdout).expect("get -o json prints JSON")
    }

    pub fn pod_ip(&self, name: &str) -> String {
        let pods = self.get_json("pods");
        pods["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|p| p["metadata"]["name"] == name)
            .and_then(|p| p["status"]["podIP"].as_str())
            .unwrap_or_else(|| panic!("no pod {name} in {pods}"))
            .to_string()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let o = run(&["down", &self.lab]);
        if !std::thread::panicking() {
            assert!(o.status.success(), "down failed:\n{}", text(&o));
            assert_nothing_left(&self.lab);
        }
    }
}

/// Namespaces of the lab still pinned.
pub fn namespaces_of(lab: &str) -> Vec<String> {
    let prefix = format!("{lab}-");
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

pub fn assert_nothing_left(lab: &str) {
    assert_eq!(
        namespaces_of(lab),
        Vec::<String>::new(),
        "namespaces left by lab {lab}"
    );
    assert!(
        !std::path::Path::new("/run/podlab").join(lab).exists(),
        "state of lab {lab} left behind"
    );
    let etc: Vec<String> = std::fs::read_dir("/etc/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("{lab}-")))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        etc,
        Vec::<String>::new(),
        "/etc/netns entries left by lab {lab}"
    );
    let daemons = Command::new("pgrep")
        .args(["-f", &format!("__daemon {lab}$")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_eq!(daemons, "", "daemon of lab {lab} still running");
}

/// The host's own network state: what a lab must never change.
pub fn host_snapshot() -> String {
    let mut s = String::new();
    for args in [
        &["-j", "link", "show"][..],
        &["-j", "addr", "show"],
        &["-j", "route", "show", "table", "all"],
        &["-j", "neigh", "show", "permanent"],
        &["-j", "rule", "show"],
    ] {
        let o = Command::new("ip").args(args).output().expect("ip");
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        // Counters and timers move on their own.
        scrub(&mut v);
        s.push_str(&v.to_string());
        s.push('\n');
    }
    if let Ok(o) = Command::new("nft").args(["list", "ruleset"]).output() {
        s.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    for key in [
        "net/ipv4/ip_forward",
        "net/ipv4/conf/all/rp_filter",
        "net/ipv4/conf/default/rp_filter",
        "net/ipv4/conf/all/forwarding",
    ] {
        s.push_str(&format!(
            "{key}={}\n",
            std::fs::read_to_string(format!("/proc/sys/{key}"))
                .unwrap_or_default()
                .trim()
        ));
    }
    s
}

fn scrub(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for k in [
                "stats64",
                "stats",
                "valid_life_time",
                "preferred_life_time",
                "used",
                "confirmed",
                "updated",
            ] {
                m.remove(k);
            }
            m.values_mut().for_each(scrub);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
        _ => {}
    }
}
