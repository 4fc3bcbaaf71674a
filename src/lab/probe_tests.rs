//! Containers' probes: Kubernetes' defaults, its validation, and podlab's
//! own check that a named port is the container's.

use super::*;

/// A pod whose only container has ports `http: 8080` and `grpc: 9090`
/// and `probes` (indented 4, starting on line 10).
fn pod(probes: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    ports:\n    - {{name: http, containerPort: 8080}}\n    - {{name: grpc, containerPort: 9090}}\n{probes}"
    )
}

fn container(probes: &str) -> Container {
    match parse("lab.yaml", &pod(probes)) {
        Ok(f) => f.pods[0].spec.containers[0].clone(),
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

/// The file's diagnostics as (line, col, field, message), and the hints.
fn errors(probes: &str) -> Vec<(usize, usize, String, String, Option<String>)> {
    match parse("lab.yaml", &pod(probes)) {
        Ok(_) => panic!("expected errors in:\n{probes}"),
        Err(e) => e
            .diagnostics
            .into_iter()
            .map(|d| (d.pos.line, d.pos.col, d.field, d.message, d.hint))
            .collect(),
    }
}

#[test]
fn defaults_are_kubernetes_ones() {
    let c = container("    readinessProbe: {tcpSocket: {port: 8080}}\n");
    assert_eq!(
        c.readiness_probe,
        Some(Probe {
            handler: ProbeHandler::TcpSocket {
                port: ProbePort::Number(8080)
            },
            initial_delay_seconds: 0,
            period_seconds: 10,
            timeout_seconds: 1,
            success_threshold: 1,
            failure_threshold: 3,
            pos: Pos { line: 10, col: 21 },
        })
    );
    assert_eq!(c.liveness_probe, None);
    assert_eq!(c.startup_probe, None);
}

#[test]
fn every_handler_and_timing() {
    let c = container(
        "    readinessProbe:
      httpGet:
        path: /healthz
        port: http
        httpHeaders: [{name: X-Probe, value: 'yes'}]
      periodSeconds: 2
      successThreshold: 2
    livenessProbe:
      grpc: {port: 9090, service: shop}
      initialDelaySeconds: 5
      failureThreshold: 1
      timeoutSeconds: 3
    startupProbe:
      exec: {command: [cat, /tmp/ready]}
",
    );
    let r = c.readiness_probe.expect("readiness");
    assert_eq!(
        r.handler,
        ProbeHandler::HttpGet {
            port: ProbePort::Name("http".into()),
            path: "/healthz".into(),
            scheme: HttpScheme::Http,
            headers: vec![("X-Probe".into(), "yes".into())],
        }
    );
    assert_eq!((r.period_seconds, r.success_threshold), (2, 2));
    let l = c.liveness_probe.expect("liveness");
    assert_eq!(
        l.handler,
        ProbeHandler::Grpc {
            port: 9090,
            service: Some("shop".into())
        }
    );
    assert_eq!(
        (
            l.initial_delay_seconds,
            l.failure_threshold,
            l.timeout_seconds
        ),
        (5, 1, 3)
    );
    assert_eq!(
        c.startup_probe.expect("startup").handler,
        ProbeHandler::Exec {
            command: vec!["cat".into(), "/tmp/ready".into()]
        }
    );
}

#[test]
fn a_probe_has_exactly_one_handler() {
    let e = errors("    readinessProbe: {periodSeconds: 5}\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].0, e[0].1, e[0].2.as_str()),
        (10, 21, "spec.containers[0].readinessProbe")
    );
    assert!(e[0].3.contains("probe has no handler"), "{e:?}");
    let e = errors("    readinessProbe: {tcpSocket: {port: 80}, exec: {command: [true]}}\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].2, "spec.containers[0].readinessProbe.exec");
    assert!(e[0].3.contains("tcpSocket and exec"), "{e:?}");
}

#[test]
fn liveness_and_startup_succeed_once() {
    let e = errors("    livenessProbe: {tcpSocket: {port: 80}, successThreshold: 2}\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].2, "spec.containers[0].livenessProbe.successThreshold");
    assert!(e[0].3.contains("must be 1 for a liveness probe"), "{e:?}");
    let e = errors("    startupProbe: {tcpSocket: {port: 80}, successThreshold: 3}\n");
    assert!(e[0].3.contains("must be 1 for a startup probe"), "{e:?}");
}

#[test]
fn bad_fields_point_at_themselves() {
    let e = errors("    readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 0}\n");
    assert_eq!(e[0].2, "spec.containers[0].readinessProbe.periodSeconds");
    assert!(e[0].3.contains("expected an integer 1-65535"), "{e:?}");
    let e = errors("    readinessProbe: {httpGet: {port: 80, path: healthz}}\n");
    assert_eq!(e[0].2, "spec.containers[0].readinessProbe.httpGet.path");
    let e = errors("    readinessProbe: {httpGet: {port: 80, scheme: http}}\n");
    assert!(e[0].3.contains("expected HTTP or HTTPS"), "{e:?}");
    let e = errors("    readinessProbe: {tcpSocket: {}}\n");
    assert!(e[0].3.contains("the probe has no port"), "{e:?}");
    let e = errors("    readinessProbe: {grpc: {port: grpc}}\n");
    assert!(e[0].3.contains("a gRPC probe's port is a number"), "{e:?}");
    let e = errors("    readinessProbe: {exec: {command: []}}\n");
    assert!(e[0].3.contains("an exec probe needs a command"), "{e:?}");
    let e = errors("    readinessProbe: {tcpSoket: {port: 80}}\n");
    assert!(
        e.iter()
            .any(|d| d.4.as_deref() == Some("did you mean `tcpSocket`?")),
        "{e:?}"
    );
}

#[test]
fn a_named_port_is_the_containers() {
    let e = errors("    readinessProbe: {httpGet: {port: metrics}}\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].2, "spec.containers[0].readinessProbe");
    assert!(
        e[0].3
            .contains("the probe's port `metrics` is not a port of its container"),
        "{e:?}"
    );
    assert_eq!(
        e[0].4.as_deref(),
        Some("the container's ports are named http, grpc")
    );
}
