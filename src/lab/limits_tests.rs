//! The bounds on input (docs/limits.md): what is refused, where it points,
//! and that what is refused is refused before it costs memory or time.

use std::io::Write;

use super::*;

fn lab_errors(text: &str) -> Vec<Diagnostic> {
    match parse("lab.yaml", text) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e.diagnostics,
    }
}

fn load_error(path: &Path) -> Diagnostic {
    match load(path) {
        Ok(_) => panic!("loaded {}", path.display()),
        Err(e) => {
            assert_eq!(e.diagnostics.len(), 1, "{e}");
            e.diagnostics[0].clone()
        }
    }
}

fn lab_with_network(network: &str) -> String {
    format!("apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {{name: x}}\nspec:\n  network: {{{network}}}\n")
}

#[test]
fn non_regular_files_are_refused_before_reading() {
    let d = load_error(Path::new("/dev/zero"));
    assert_eq!((d.pos.line, d.pos.col, d.field.as_str()), (1, 1, "file"));
    assert_eq!(
        d.message,
        "/dev/zero is a character device, not a regular file"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = load_error(dir.path());
    assert!(
        d.message.ends_with("is a directory, not a regular file"),
        "{d}"
    );
    // A FIFO with no writer would block a plain open(2) for ever.
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let d = load_error(&fifo);
    assert!(
        d.message
            .ends_with("is a FIFO (named pipe), not a regular file"),
        "{d}"
    );
    let d = exercise::load(Path::new("/dev/zero")).unwrap_err();
    assert!(d.diagnostics[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("exercise file"));
}

#[test]
fn files_over_the_size_limit_are_refused_with_their_size() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let line = format!("# {}\n", "x".repeat(1021));
    for _ in 0..(MAX_FILE_BYTES / 1024) {
        f.write_all(line.as_bytes()).unwrap();
    }
    // Exactly the limit is read (and is only comments).
    assert_eq!(f.as_file().metadata().unwrap().len(), MAX_FILE_BYTES);
    assert!(load_error(f.path()).message.starts_with("no documents"));
    f.write_all(b"a").unwrap();
    let d = load_error(f.path());
    assert_eq!(
        d.message,
        "the lab file is 4.0 MiB (4194305 bytes); podlab reads at most 4.0 MiB (4194304 bytes)"
    );
}

#[test]
fn invalid_utf8_points_at_the_byte() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"apiVersion: v1\nkind: P\xc3\xa9\xffd\n")
        .unwrap();
    let d = load_error(f.path());
    assert_eq!((d.pos.line, d.pos.col), (2, 9));
    assert!(d.message.contains("not UTF-8"), "{d}");
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_key() {
    let text = "\u{feff}apiVersion: v1\nkind: Pods\nmetadata: {name: p}\n";
    let e = lab_errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].pos.line, e[0].pos.col, e[0].field.as_str()),
        (2, 7, "kind")
    );
    let f =
        parse("lab.yaml", &format!("\u{feff}{}", crate::lab::DEMO)).expect("the demo with a BOM");
    assert_eq!(f.lab.name, "demo");
}

#[test]
fn control_characters_from_the_file_are_escaped() {
    let e = match parse("lab.yaml", "kind: \"Po\\ad\\e[31m\\u202e\"\n") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("parsed"),
    };
    assert!(
        e.contains("kind `Po\\u{7}d\\u{1b}[31m\\u{202e}` is not supported"),
        "{e}"
    );
    assert!(!e.chars().any(|c| c.is_control() && c != '\n'), "{e:?}");
    assert_eq!(escape("a\tb\nc\r"), "a\\tb\\nc\\r");
    assert!(matches!(escape("plain é"), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn address_ranges_are_bounded_before_they_are_used() {
    for (network, field, message) in [
        (
            "nodeCIDR: 128.0.0.0/2",
            "spec.network.nodeCIDR",
            "lab `x`: nodeCIDR 128.0.0.0/2 is too large: a /2 holds 1073741824 addresses, and a lab's nodeCIDR may be at most a /16",
        ),
        (
            "podCIDR: 10.0.0.0/7",
            "spec.network.podCIDR",
            "lab `x`: podCIDR 10.0.0.0/7 is too large: a /7 holds 33554432 addresses, and a lab's podCIDR may be at most a /8",
        ),
        (
            "serviceCIDR: 0.0.0.0/0",
            "spec.network.serviceCIDR",
            "lab `x`: serviceCIDR 0.0.0.0/0 is too large: a /0 holds 4294967296 addresses, and a lab's serviceCIDR may be at most a /12",
        ),
    ] {
        let e = lab_errors(&lab_with_network(network));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].pos.line, e[0].field.as_str()), (5, field));
        assert_eq!(e[0].message, message);
    }
    // The bounds themselves are allowed.
    parse(
        "lab.yaml",
        &lab_with_network("nodeCIDR: 172.18.0.0/16, podCIDR: 10.0.0.0/8, serviceCIDR: 192.160.0.0/12, dnsIP: 192.160.0.10"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_lab_has_at_most_ten_thousand_pods() {
    let deployment = |name: &str, replicas: u32| {
        format!("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec: {{replicas: {replicas}, selector: {{matchLabels: {{a: {name}}}}}, template: {{metadata: {{labels: {{a: {name}}}}}, spec: {{containers: [{{name: c}}]}}}}}}\n")
    };
    let head = "apiVersion: podlab/v1alpha1\nkind: Lab\nmetadata: {name: x}\nspec: {nodes: 50}\n";
    let e = lab_errors(&format!(
        "{head}{}{}",
        deployment("a", 6000),
        deployment("b", 5000)
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].pos.line, e[0].pos.col, e[0].field.as_str()),
        (14, 18, "spec.replicas")
    );
    assert_eq!(
        e[0].message,
        "deployment `b` brings the lab to 11000 pods, more than the 10000 a lab may have"
    );
    parse(
        "lab.yaml",
        &format!("{head}{}{}", deployment("a", 6000), deployment("b", 4000)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// `kind: Pods` used to come after one "names no pod" error per `expect`
/// that named the pods: the cause first, and nothing that follows from it.
#[test]
fn a_rejected_document_is_reported_without_its_consequences() {
    let text = "apiVersion: podlab/v1alpha1
kind: Lab
metadata: {name: x}
spec:
  expect:
  - {from: pod-1, to: pod-2, port: 80, expect: connected}
---
apiVersion: v1
kind: Pods
metadata: {name: pod-1}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: pod-2}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
";
    let e = lab_errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].pos.line, e[0].pos.col, e[0].field.as_str()),
        (9, 7, "kind")
    );
    assert_eq!(e[0].message, "document 2: kind `Pods` is not supported");
    // Once it decodes, the checks across objects run again.
    let e = lab_errors(
        &text
            .replace("Pods", "Pod")
            .replace("to: pod-2", "to: pod-3"),
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].field, "spec.expect[0].to");
}

#[test]
fn an_alias_of_a_long_string_counts_its_bytes() {
    // 101 values: a count of values would let this through, at 6.4 MB.
    let text = format!(
        "a: &a \"{}\"\nb: [{}]\n",
        "x".repeat(64 << 10),
        vec!["*a"; 100].join(", ")
    );
    let e = lab_errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].pos.line, e[0].field.as_str()), (2, "yaml"));
    assert!(
        e[0].message
            .starts_with("aliases expand this file beyond 4.0 MiB, the limit for a file of 64."),
        "{}",
        e[0].message
    );
}

#[test]
fn duplicate_keys_of_every_kind_are_found() {
    let e = lab_errors("a: 1\n~: 2\n\"a\": 3\nnull: 4\n'null': 5\n");
    let found: Vec<(usize, &str)> = e.iter().map(|d| (d.pos.line, d.message.as_str())).collect();
    assert_eq!(
        found,
        [
            (3, "duplicate key `a` (first at line 1)"),
            (4, "duplicate key `null` (first at line 2)")
        ]
    );
}

#[test]
fn a_service_has_at_most_a_hundred_ports() {
    let service = |n: usize| {
        let ports: Vec<String> = (1..=n)
            .map(|i| format!("{{name: p{i}, port: {i}}}"))
            .collect();
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec:\n  selector: {{a: b}}\n  ports: [{}]\n",
            ports.join(", ")
        )
    };
    let e = lab_errors(&service(101));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].pos.line, e[0].pos.col, e[0].field.as_str()),
        (6, 10, "spec.ports")
    );
    assert_eq!(
        e[0].message,
        "service `s`: the service has 101 ports; a service may have at most 100"
    );
    parse("lab.yaml", &service(100)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_json_kept_of_services_is_bounded() {
    // A valid Service whose ignored `status` holds 70,000 one-key maps:
    // 560 KB of YAML, about 50 MB as JSON objects.
    let service = |maps: usize| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{ports: [{{port: 80}}]}}\nstatus: [{}]\n",
            vec!["{a: b}"; maps].join(", ")
        )
    };
    let e = lab_errors(&service(70_000));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].pos.line, e[0].pos.col), (1, 1));
    assert_eq!(
        e[0].message,
        "service `s`: too large to keep: as JSON it would take about 48.7 MiB, more than is left of the 48.0 MiB a lab's services, network policies and stored objects may take together"
    );
    parse("lab.yaml", &service(10)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_diagnostic_without_a_field_names_none() {
    let d = Diagnostic {
        source: "a.yaml".into(),
        pos: Pos { line: 2, col: 1 },
        field: String::new(),
        message: "document 2: m".into(),
        hint: None,
    };
    assert_eq!(d.to_string(), "a.yaml:2:1: document 2: m");
}
