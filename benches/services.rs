//! Services at scale: for 10, 1,000 and 10,000 services of 2 endpoints
//! each, the time to build a node's kube-proxy table and to load it with
//! `nft` (in a throwaway namespace), and the median TCP connect time
//! through a ClusterIP in a real lab.
//!
//!     sudo cargo bench --bench services            # all sizes
//!     sudo cargo bench --bench services -- 10000   # one size
//!
//! Needs root, `nft`, `python3`, and the release binary (built first).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

fn lab_text(name: &str, services: usize) -> String {
    let mut s = format!(
        "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {{name: {name}}}\nspec:\n  nodes: 2\n  network: {{serviceCIDR: 10.96.0.0/12}}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, ports: [{{containerPort: 80}}]}}]\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  nodeName: node-1\n  containers: [{{name: c, command: [sleep, '3600']}}]\n"
    );
    for i in 0..services {
        s.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80}}]\n"
        ));
    }
    s
}

fn load_in_scratch_netns(json: &str) -> f64 {
    let t = Instant::now();
    let mut child = Command::new("unshare")
        .args(["-n", "nft", "-j", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("unshare nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(json.as_bytes())
        .expect("write");
    let ok = child.wait().expect("nft").success();
    assert!(ok, "nft refused the table");
    t.elapsed().as_secs_f64()
}

/// Median connect time (µs) from `client` to `ip:80`, 300 connects.
fn connect_median_us(bin: &str, lab: &str, ip: &str) -> f64 {
    let script = format!(
        "import socket,time\nts=[]\nfor _ in range(300):\n s=socket.socket()\n t=time.perf_counter()\n s.connect(('{ip}',80))\n ts.append(time.perf_counter()-t)\n s.close()\nts.sort()\nprint(ts[len(ts)//2]*1e6)\n"
    );
    let out = Command::new(bin)
        .args([
            "exec", "--lab", lab, "client", "--", "python3", "-c", &script,
        ])
        .output()
        .expect("podlab exec");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 1_000, 10_000]
    } else {
        sizes
    };
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/podlab");
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "services", "plan_s", "rules_s", "load_s", "connect_us", "first/last"
    );
    let mut base = None;
    for n in sizes {
        let text = lab_text("bsvc", n);
        let t = Instant::now();
        let file = podlab::lab::parse("bench.yaml", &text).expect("valid lab");
        let plan = podlab::plan::build(&file).expect("plan");
        let plan_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let json = podlab::kernel::apply::rulesets(&plan)
            .into_iter()
            .next()
            .map(|(_, j)| j)
            .unwrap_or_default();
        let rules_s = t.elapsed().as_secs_f64();
        let load_s = load_in_scratch_netns(&json);

        // A real lab: connect latency through the first and the last service.
        let dir = std::env::temp_dir().join("podlab-bench-services.yaml");
        std::fs::write(&dir, &text).expect("write lab");
        let _ = Command::new(bin).args(["down", "bsvc"]).output();
        let up = Command::new(bin)
            .args(["up", "-q", dir.to_str().unwrap_or_default()])
            .status();
        let (mut first, mut last) = (f64::NAN, f64::NAN);
        if up.is_ok_and(|s| s.success()) {
            let ip = |i: usize| -> String {
                plan.services
                    .iter()
                    .find(|s| s.name == format!("s{i}"))
                    .and_then(|s| s.cluster_ip)
                    .map(|ip| ip.to_string())
                    .unwrap_or_default()
            };
            first = connect_median_us(bin, "bsvc", &ip(0));
            last = connect_median_us(bin, "bsvc", &ip(n - 1));
        }
        let _ = Command::new(bin).args(["down", "bsvc"]).output();
        let median = (first + last) / 2.0;
        let base_v = *base.get_or_insert(median);
        println!(
            "{n:>8} {plan_s:>10.3} {rules_s:>10.3} {load_s:>10.3} {median:>12.1} {:>12}",
            format!("{first:.0}/{last:.0} ({:.2}x)", median / base_v)
        );
    }
}
