//! Services at scale: for 10, 1,000 and 10,000 services of 2 endpoints
//! each, the time to build a node's kube-proxy table and to load it with
//! `nft` (in a throwaway namespace), and the median TCP connect time
//! through a ClusterIP in a real lab.
//!
//! Then, on 10 nodes with 1,000 pods, a one-service change: the time to
//! build both plans' rules, to diff them, and to load only the changes
//! into 10 namespaces (`kernel::rules::sync_rulesets`: diff, read-back,
//! load, in parallel), next to the whole reload that a change cost before.
//!
//!     sudo cargo bench --bench services            # all sizes
//!     sudo cargo bench --bench services -- 10000   # one size
//!     sudo cargo bench --bench services -- diff 1000 10000   # the diff part only
//!
//! Needs root, `nft`, `python3`, and the release binary (built first).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use nftables::schema::Nftables;
use podlab::kernel::rules::{self, Outcome};
use podlab::kernel::{apply, netns, nft};
use podlab::plan::nftdiff::{self, Diff};
use podlab::plan::Plan;

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

/// 10 nodes, 1,000 pods (500 Deployments of 2), `services` services of
/// one port, each selecting one Deployment's 2 pods.
fn diff_lab_text(name: &str, services: usize) -> String {
    let mut s = format!(
        "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {{name: {name}}}\nspec:\n  nodes: 10\n  network: {{serviceCIDR: 10.96.0.0/12}}\n"
    );
    for d in 0..500 {
        s.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: w{d}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: w{d}}}}}\n  template:\n    metadata: {{labels: {{app: w{d}}}}}\n    spec:\n      containers: [{{name: web, ports: [{{containerPort: 80}}]}}]\n"
        ));
    }
    for i in 0..services {
        s.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}}}\nspec:\n  selector: {{app: w{}}}\n  ports: [{{port: 80}}]\n",
            i % 500
        ));
    }
    s
}

/// The plan with one more service, a copy of `s0` at a free IP.
fn one_more_service(plan: &Plan) -> Plan {
    let mut next = plan.clone();
    let Some(mut svc) = next.services.iter().find(|s| s.name == "s0").cloned() else {
        return next;
    };
    let used: std::collections::HashSet<_> =
        plan.services.iter().filter_map(|s| s.cluster_ip).collect();
    let mut ip = u32::from(std::net::Ipv4Addr::new(10, 100, 0, 1));
    while used.contains(&std::net::Ipv4Addr::from(ip)) {
        ip += 1;
    }
    svc.name = "added".into();
    svc.cluster_ip = Some(ip.into());
    next.services.push(svc);
    next
}

/// Namespaces of the bench's own, removed however it ends.
struct Scratch(Vec<String>);

impl Drop for Scratch {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = netns::remove(n);
        }
    }
}

/// The node rulesets of `plan`, moved to the scratch namespaces.
fn on_scratch(plan: &Plan, scratch: &Scratch) -> Vec<(String, Nftables<'static>)> {
    apply::ruleset_objects(plan)
        .into_iter()
        .filter(|(ns, _)| plan.nodes.iter().any(|n| &n.netns == ns))
        .zip(&scratch.0)
        .map(|((_, r), s)| (s.clone(), r))
        .collect()
}

fn diff_bench(sizes: &[usize]) {
    println!(
        "\none-service change, 10 nodes, 1,000 pods:\n{:>8} {:>9} {:>9} {:>9} {:>12} {:>12} {:>8}",
        "services", "plan_s", "rules_s", "diff_s", "changes_s", "whole_s", "objects"
    );
    let scratch = Scratch((1..=10).map(|i| format!("bdiff-node-{i}")).collect());
    for n in &scratch.0 {
        let _ = netns::remove(n);
        netns::create(n).expect("scratch namespace");
    }
    for &n in sizes {
        let t = Instant::now();
        let file = podlab::lab::parse("diff.yaml", &diff_lab_text("bdiff", n)).expect("valid lab");
        let plan = podlab::plan::build(&file).expect("plan");
        let next = one_more_service(&plan);
        let plan_s = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let old = on_scratch(&plan, &scratch);
        let new = on_scratch(&next, &scratch);
        let rules_s = t.elapsed().as_secs_f64();

        let t = Instant::now();
        let mut objects = 0;
        for ((_, o), (_, n)) in old.iter().zip(&new) {
            if let Diff::Changes(tx) = nftdiff::diff(o, n) {
                objects += nftdiff::Summary::of(&tx).objects();
            }
        }
        let diff_s = t.elapsed().as_secs_f64();

        let whole = |r: &[(String, Nftables<'static>)]| -> Vec<(String, String)> {
            r.iter()
                .map(|(ns, x)| (ns.clone(), podlab::plan::kubeproxy::to_json(x)))
                .collect()
        };
        nft::load_all(&whole(&old)).expect("old rules load");
        let t = Instant::now();
        let changes = rules::sync_rulesets(&old, &new).expect("changes load");
        let changes_s = t.elapsed().as_secs_f64();
        assert!(
            changes
                .namespaces
                .iter()
                .all(|x| matches!(x.outcome, Outcome::Changed(_))),
            "{changes}"
        );
        // What the change cost before: every node's tables reloaded whole.
        let new_json = whole(&new);
        let t = Instant::now();
        nft::load_all(&new_json).expect("new rules load");
        let whole_s = t.elapsed().as_secs_f64();
        println!(
            "{n:>8} {plan_s:>9.3} {rules_s:>9.3} {diff_s:>9.3} {changes_s:>12.3} {whole_s:>12.3} {:>8}",
            objects / 10
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only_diff = args.iter().any(|a| a == "diff");
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![10, 1_000, 10_000]
    } else {
        sizes
    };
    if only_diff {
        diff_bench(&sizes);
        return;
    }
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/podlab");
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "services", "plan_s", "rules_s", "load_s", "connect_us", "first/last"
    );
    let mut base = None;
    for &n in &sizes {
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
    diff_bench(&sizes);
}
