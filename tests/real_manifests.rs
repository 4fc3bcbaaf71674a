//! Real-application-shaped manifests, unmodified (tests/fixtures/real, see
//! SOURCES.md there): podlab's own files in the shape of Istio's Bookinfo
//! and Google's Online Boutique, plus every `*.yaml` in the directory named
//! by `PODLAB_REAL_MANIFESTS` when it is set (the published files, which
//! are not committed here). Each validates (its ServiceAccounts listed as stored, not served),
//! comes up, every Service answers by its DNS name from a pod of the lab,
//! and the real kubectl lists the ServiceAccounts through the lab's
//! kubeconfig. Needs root; every lab is brought down however the test
//! ends.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_nothing_left, root_or_skip, run, stdout, text};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/real");
const KUBECTL: &str = "/usr/bin/kubectl";

/// The file copied byte for byte to `<dir>/<lab>.yaml`: a lab file
/// without a Lab document is named after its file, so the copy gives the
/// lab this test's name while podlab reads the published bytes.
fn copy_fixture(dir: &Path, source: &Path, lab: &str) -> PathBuf {
    let original =
        std::fs::read(source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    let path = dir.join(format!("{lab}.yaml"));
    std::fs::write(&path, &original).expect("copy fixture");
    assert_eq!(std::fs::read(&path).expect("read copy"), original);
    path
}

/// Brings the lab down when dropped, even after a panic, and (when the
/// test did not fail already) checks that nothing of it is left.
struct Lab(String);

impl Drop for Lab {
    fn drop(&mut self) {
        let o = run(&["down", &self.0]);
        if !std::thread::panicking() {
            assert!(o.status.success(), "down failed:\n{}", text(&o));
            assert_nothing_left(&self.0);
        }
    }
}

fn get_json(lab: &str, what: &str) -> serde_json::Value {
    let o = run(&["get", what, "-o", "json", "-A", "--lab", lab]);
    assert!(o.status.success(), "get {what}:\n{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("get -o json prints JSON")
}

fn items(v: &serde_json::Value) -> &[serde_json::Value] {
    v["items"].as_array().map_or(&[], Vec::as_slice)
}

/// Every Service of the lab answers on each of its ports by its DNS name,
/// from a pod of the lab. The echo servers answer HTTP on every port a
/// container declares (gRPC and Redis ports included: podlab runs no
/// image), so a completed HTTP exchange is the proof.
fn every_service_answers(lab: &str) {
    let pods = get_json(lab, "pods");
    let client = items(&pods)
        .first()
        .and_then(|p| p["metadata"]["name"].as_str())
        .expect("the lab has pods")
        .to_string();
    let services = get_json(lab, "services");
    assert!(!items(&services).is_empty(), "no services in {lab}");
    let mut failed = Vec::new();
    for s in items(&services) {
        let name = s["metadata"]["name"].as_str().unwrap_or_default();
        let ns = s["metadata"]["namespace"].as_str().unwrap_or("default");
        // The lab's own kube-dns answers DNS, not HTTP (tests/dns.rs).
        if ns == "kube-system" {
            continue;
        }
        for p in s["spec"]["ports"].as_array().into_iter().flatten() {
            let port = p["port"].as_u64().unwrap_or_default();
            let url = format!("http://{name}.{ns}.svc.cluster.local:{port}/");
            let o = run(&[
                "exec",
                "--lab",
                lab,
                &client,
                "--",
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                &url,
            ]);
            if !o.status.success() {
                failed.push(format!("{url} from {client}:\n{}", text(&o)));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "services that did not answer:\n{}",
        failed.join("\n")
    );
}

/// `kubectl get sa -A` through the lab's kubeconfig lists every
/// ServiceAccount of the file, and `-o json` gives them whole.
fn kubectl_lists_service_accounts(lab: &str, expected: &[&str]) {
    let home = tempfile::tempdir().expect("tempdir");
    let kubectl = |args: &[&str]| {
        Command::new(KUBECTL)
            .args(args)
            .env("KUBECONFIG", format!("/run/podlab/{lab}/kubeconfig"))
            // kubectl's discovery cache, for this run only.
            .env("HOME", home.path())
            .output()
            .expect("run kubectl")
    };
    let o = kubectl(&["get", "sa", "-A"]);
    assert!(o.status.success(), "kubectl get sa -A:\n{}", text(&o));
    let table = stdout(&o);
    assert!(table.starts_with("NAMESPACE"), "{table}");
    for name in expected {
        assert!(
            table
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(name)),
            "{name} missing from kubectl get sa -A:\n{table}"
        );
    }
    let o = kubectl(&["get", "serviceaccounts", "-n", "default", "-o", "json"]);
    assert!(
        o.status.success(),
        "kubectl get serviceaccounts -o json:\n{}",
        text(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let mut names: Vec<&str> = items(&v)
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    names.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(names, want);
}

/// `service_accounts`: the ServiceAccounts the file must hold, or None for
/// a file this test did not write (its accounts are not known here).
fn real_application(source: &Path, lab: &str, service_accounts: Option<&[&str]>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = copy_fixture(dir.path(), source, lab);
    let path = file.to_str().expect("utf-8 path");

    let o = run(&["validate", path]);
    assert!(
        o.status.success(),
        "validate {}:\n{}",
        source.display(),
        text(&o)
    );
    let out = stdout(&o);
    if let Some(accounts) = service_accounts {
        let line = format!(
            "stored, not served: {} ServiceAccount (v1): ",
            accounts.len()
        );
        assert!(out.contains(&line), "{out}");
        for sa in accounts {
            assert!(out.contains(&format!("default/{sa}")), "{sa}: {out}");
        }
    }

    // A crashed earlier run must not make this one fail.
    let _ = run(&["down", lab]);
    let guard = Lab(lab.to_string());
    let o = run(&["up", "-q", "--timeout", "120", path]);
    assert!(o.status.success(), "up {lab}:\n{}", text(&o));
    every_service_answers(lab);
    if let Some(accounts) = service_accounts {
        kubectl_lists_service_accounts(lab, accounts);
    }
    drop(guard);
}

#[test]
fn bookinfo_shaped_unmodified() {
    if !root_or_skip("bookinfo_shaped_unmodified") {
        return;
    }
    real_application(
        &Path::new(FIXTURES).join("bookinfo-like.yaml"),
        "hr-bookinfo",
        Some(&[
            "shelf-catalog",
            "shelf-ratings",
            "shelf-reviews",
            "shelf-front",
        ]),
    );
}

#[test]
fn boutique_shaped_unmodified() {
    if !root_or_skip("boutique_shaped_unmodified") {
        return;
    }
    // Its shipping service's exec probes name a program of the image.
    let fixture = Path::new(FIXTURES).join("boutique-like.yaml");
    let o = run(&["validate", fixture.to_str().expect("utf-8 path")]);
    let out = stdout(&o);
    assert!(
        out.contains("exec probe answered by the echo (podlab runs no images): readiness probe `/bin/true` of container server, by the echo on port 50052: default/shipping-"),
        "{out}"
    );
    real_application(
        &Path::new(FIXTURES).join("boutique-like.yaml"),
        "hr-boutique",
        Some(&[
            "frontend", "cart", "checkout", "catalog", "currency", "payment", "shipping", "email",
            "loadgen",
        ]),
    );
}

/// The published manifests themselves (e.g. Bookinfo's
/// platform/kube/bookinfo.yaml, Online Boutique's
/// release/kubernetes-manifests.yaml), from a directory the caller names:
/// they are not committed here (SOURCES.md).
#[test]
fn published_manifests_from_env() {
    let Some(dir) = std::env::var_os("PODLAB_REAL_MANIFESTS") else {
        eprintln!("skipped: set PODLAB_REAL_MANIFESTS to a directory of published *.yaml files");
        return;
    };
    if !root_or_skip("published_manifests_from_env") {
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("PODLAB_REAL_MANIFESTS={}: {e}", dir.to_string_lossy()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "PODLAB_REAL_MANIFESTS={}: no *.yaml files there",
        dir.to_string_lossy()
    );
    for (i, file) in files.iter().enumerate() {
        eprintln!("published manifest {}", file.display());
        real_application(file, &format!("hr-pub{i}"), None);
    }
}

/// A List with a CRD and its objects, Helm-style documents, an Ingress, a
/// Secret, a ConfigMap and a ClusterRole: the real kubectl lists each.
#[test]
fn stored_kinds_through_kubectl() {
    if !root_or_skip("stored_kinds_through_kubectl") {
        return;
    }
    let lab = "hr-stored";
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stored/hr-stored.yaml"
    );
    let _ = run(&["down", lab]);
    let guard = Lab(lab.to_string());
    let o = run(&["up", "-q", path]);
    assert!(o.status.success(), "up {lab}:\n{}", text(&o));
    let home = tempfile::tempdir().expect("tempdir");
    let kubectl = |args: &[&str]| {
        let o = Command::new(KUBECTL)
            .args(args)
            .env("KUBECONFIG", format!("/run/podlab/{lab}/kubeconfig"))
            .env("HOME", home.path())
            .output()
            .expect("run kubectl");
        assert!(o.status.success(), "kubectl {args:?}:\n{}", text(&o));
        stdout(&o)
    };
    assert!(kubectl(&["get", "crd"]).contains("widgets.example.com"));
    let widgets = kubectl(&["get", "wd"]);
    assert!(widgets.starts_with("NAME    SIZE   AGE"), "{widgets}");
    assert!(
        widgets.contains("big     9") && widgets.contains("small   1"),
        "{widgets}"
    );
    let ing = kubectl(&["get", "ing"]);
    assert!(ing.contains("shop.example"), "{ing}");
    let pw = kubectl(&["get", "secret", "creds", "-o", "jsonpath={.data.password}"]);
    assert_eq!(pw, "cGFzcw==");
    let top = kubectl(&["get", "cm,widgets", "-l", "tier=top", "-o", "name"]);
    let mut names: Vec<&str> = top.lines().collect();
    names.sort();
    assert_eq!(names, ["configmap/settings", "widget.example.com/big"]);
    assert!(kubectl(&["get", "clusterroles"]).contains("system:widget-reader"));
    drop(guard);
}
