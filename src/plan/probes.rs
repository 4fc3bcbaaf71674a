//! Containers' probes as the daemon runs them: named ports resolved, and
//! an exec probe of a program podlab does not have (it runs no images)
//! turned into a check of the echo standing in for the container.

use crate::lab::{Container, HttpScheme, Probe, ProbeHandler, ProbePort};

use super::{ProbeAction, ProbeKind, ProbePlan};

/// Every probe of `containers`, in container order, readiness first.
pub fn of(containers: &[Container]) -> Vec<ProbePlan> {
    containers
        .iter()
        .flat_map(|c| {
            [
                (ProbeKind::Readiness, &c.readiness_probe),
                (ProbeKind::Liveness, &c.liveness_probe),
                (ProbeKind::Startup, &c.startup_probe),
            ]
            .into_iter()
            .filter_map(move |(kind, p)| p.as_ref().map(|p| plan(c, kind, p)))
        })
        .collect()
}

fn plan(c: &Container, kind: ProbeKind, p: &Probe) -> ProbePlan {
    let port = |port: &ProbePort| match port {
        ProbePort::Number(n) => *n,
        // Decoding checked that the name is one of the container's ports.
        ProbePort::Name(name) => c
            .ports
            .iter()
            .find(|x| x.name.as_deref() == Some(name))
            .map_or(0, |x| x.container_port),
    };
    let action = match &p.handler {
        ProbeHandler::TcpSocket { port: p } => ProbeAction::Tcp { port: port(p) },
        ProbeHandler::HttpGet {
            port: p,
            path,
            scheme,
            headers,
        } => ProbeAction::Http {
            port: port(p),
            path: path.clone(),
            https: *scheme == HttpScheme::Https,
            headers: headers.clone(),
        },
        ProbeHandler::Grpc { port, service } => ProbeAction::Grpc {
            port: *port,
            service: service.clone(),
        },
        ProbeHandler::Exec { command } if runs_process(c) => ProbeAction::Exec {
            argv: command.clone(),
        },
        ProbeHandler::Exec { command } => ProbeAction::EchoStandIn {
            command: command.clone(),
            ports: c
                .ports
                .iter()
                .filter(|x| x.protocol == crate::lab::Protocol::Tcp)
                .map(|x| x.container_port)
                .collect(),
        },
    };
    ProbePlan {
        container: c.name.clone(),
        kind,
        action,
        initial_delay_s: p.initial_delay_seconds,
        period_s: p.period_seconds,
        timeout_s: p.timeout_seconds,
        success_threshold: p.success_threshold,
        failure_threshold: p.failure_threshold,
    }
}

/// podlab runs a container's own process only when it has a command line.
fn runs_process(c: &Container) -> bool {
    !c.command.is_empty() || !c.args.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn containers(text: &str) -> Vec<Container> {
        let lab = crate::lab::parse("t", text).expect("parses");
        lab.pods[0].spec.containers.clone()
    }

    #[test]
    fn named_ports_resolve_and_exec_of_the_image_checks_the_echo() {
        let c = containers(
            "apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: shop
    ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]
    readinessProbe: {httpGet: {port: http, path: /ready}}
    livenessProbe: {exec: {command: [/bin/grpc_health_probe, -addr=:8080]}}
  - name: side
    command: [sleep, '1000']
    readinessProbe: {exec: {command: [test, -e, /tmp]}, periodSeconds: 2}
",
        );
        let p = of(&c);
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[0].kind, &p[0].action),
            (
                ProbeKind::Readiness,
                &ProbeAction::Http {
                    port: 8080,
                    path: "/ready".into(),
                    https: false,
                    headers: vec![]
                }
            )
        );
        assert_eq!(
            (p[1].kind, &p[1].action),
            (
                ProbeKind::Liveness,
                &ProbeAction::EchoStandIn {
                    command: vec!["/bin/grpc_health_probe".into(), "-addr=:8080".into()],
                    ports: vec![8080]
                }
            )
        );
        assert_eq!(p[2].container, "side");
        assert_eq!(
            p[2].action,
            ProbeAction::Exec {
                argv: vec!["test".into(), "-e".into(), "/tmp".into()]
            }
        );
        assert_eq!(p[2].period_s, 2);
    }
}
