//! A container's `readinessProbe`, `livenessProbe` and `startupProbe`:
//! decoded as strictly as the rest, with Kubernetes' defaults and its
//! validation (one handler; a liveness or startup probe succeeds once).

use super::{join, Decoder, Fields, PortOrName};
use crate::lab::types::{HttpScheme, Probe, ProbeHandler, ProbeKind as Kind, ProbePort};
use crate::lab::yaml::Node;

const PROBE: &[&str] = &[
    "tcpSocket",
    "httpGet",
    "grpc",
    "exec",
    "initialDelaySeconds",
    "periodSeconds",
    "timeoutSeconds",
    "successThreshold",
    "failureThreshold",
];
const PROBE_IGNORED: &[&str] = &["terminationGracePeriodSeconds"];
const TCP: &[&str] = &["port"];
const TCP_IGNORED: &[&str] = &["host"];
const HTTP: &[&str] = &["port", "path", "scheme", "httpHeaders"];
const HTTP_IGNORED: &[&str] = &["host"];
const HEADER: &[&str] = &["name", "value"];
const GRPC: &[&str] = &["port", "service"];
const EXEC: &[&str] = &["command"];
const HANDLERS: &[&str] = &["tcpSocket", "httpGet", "grpc", "exec"];

/// `None` after reporting what is wrong.
pub(crate) fn probe(d: &mut Decoder, node: &Node, path: &str, kind: Kind) -> Option<Probe> {
    let f = d.fields(node, path, PROBE, PROBE_IGNORED)?;
    let given: Vec<&str> = HANDLERS
        .iter()
        .copied()
        .filter(|h| f.get(h).is_some())
        .collect();
    let handler = match given.as_slice() {
        [one] => handler(d, &f, path, one)?,
        [] => {
            d.err(
                f.pos,
                path.to_string(),
                "probe has no handler".into(),
                Some("give one of tcpSocket, httpGet, grpc or exec".into()),
            );
            return None;
        }
        [_, second, ..] => {
            let n = f.get(second).map_or(f.pos, |n| n.pos);
            d.err(
                n,
                join(path, second),
                format!(
                    "a probe has one handler, this one has {}",
                    given.join(" and ")
                ),
                Some(format!("keep one of {}", given.join(", "))),
            );
            return None;
        }
    };
    let mut seconds = |key: &str, lo: i64, default: u32| -> u32 {
        f.get(key)
            .and_then(|n| {
                d.int(
                    n,
                    &join(path, key),
                    lo,
                    i64::from(u16::MAX),
                    &format!("an integer {lo}-65535"),
                )
            })
            .map_or(default, |v| v as u32)
    };
    let probe = Probe {
        handler,
        initial_delay_seconds: seconds("initialDelaySeconds", 0, 0),
        period_seconds: seconds("periodSeconds", 1, 10),
        timeout_seconds: seconds("timeoutSeconds", 1, 1),
        success_threshold: seconds("successThreshold", 1, 1),
        failure_threshold: seconds("failureThreshold", 1, 3),
        pos: f.pos,
    };
    if kind != Kind::Readiness && probe.success_threshold != 1 {
        let pos = f.get("successThreshold").map_or(f.pos, |n| n.pos);
        d.err(
            pos,
            join(path, "successThreshold"),
            format!(
                "successThreshold must be 1 for a {} probe, not {}",
                if kind == Kind::Liveness {
                    "liveness"
                } else {
                    "startup"
                },
                probe.success_threshold
            ),
            Some("set it to 1, or remove it".into()),
        );
        return None;
    }
    Some(probe)
}

fn handler(d: &mut Decoder, f: &Fields<'_>, path: &str, which: &str) -> Option<ProbeHandler> {
    let node = f.get(which)?;
    let path = join(path, which);
    match which {
        "tcpSocket" => {
            let h = d.fields(node, &path, TCP, TCP_IGNORED)?;
            Some(ProbeHandler::TcpSocket {
                port: required_port(d, &h, &path)?,
            })
        }
        "httpGet" => http(d, node, &path),
        "grpc" => {
            let h = d.fields(node, &path, GRPC, &[])?;
            let port = match required_port(d, &h, &path)? {
                ProbePort::Number(p) => p,
                ProbePort::Name(name) => {
                    let pos = h.get("port").map_or(h.pos, |n| n.pos);
                    d.err(
                        pos,
                        join(&path, "port"),
                        format!("a gRPC probe's port is a number, not the name `{name}`"),
                        Some("give the containerPort's number".into()),
                    );
                    return None;
                }
            };
            let service = h
                .get("service")
                .and_then(|n| d.string(n, &join(&path, "service")));
            Some(ProbeHandler::Grpc { port, service })
        }
        _ => {
            let h = d.fields(node, &path, EXEC, &[])?;
            let command = h
                .get("command")
                .map(|n| d.string_list(n, &join(&path, "command")))
                .unwrap_or_default();
            if command.is_empty() {
                d.err(
                    h.pos,
                    join(&path, "command"),
                    "an exec probe needs a command".into(),
                    Some("e.g. `command: [cat, /tmp/healthy]`".into()),
                );
                return None;
            }
            Some(ProbeHandler::Exec { command })
        }
    }
}

fn http(d: &mut Decoder, node: &Node, path: &str) -> Option<ProbeHandler> {
    let h = d.fields(node, path, HTTP, HTTP_IGNORED)?;
    let port = required_port(d, &h, path)?;
    let probe_path = match h.get("path") {
        Some(n) => {
            let p = d.string(n, &join(path, "path"))?;
            if !p.starts_with('/') || p.len() > 2048 || p.chars().any(char::is_control) {
                d.err(
                    n.pos,
                    join(path, "path"),
                    format!(
                        "an HTTP path starts with `/` and has no control characters: `{}`",
                        p.escape_debug()
                    ),
                    Some("e.g. `path: /healthz`".into()),
                );
                return None;
            }
            p
        }
        None => "/".to_string(),
    };
    let scheme = match h.get("scheme") {
        Some(n) => match d.string(n, &join(path, "scheme"))?.as_str() {
            "HTTP" => HttpScheme::Http,
            "HTTPS" => HttpScheme::Https,
            other => {
                d.err(
                    n.pos,
                    join(path, "scheme"),
                    format!("expected HTTP or HTTPS, found `{other}`"),
                    None,
                );
                return None;
            }
        },
        None => HttpScheme::Http,
    };
    let mut headers = Vec::new();
    if let Some(n) = h.get("httpHeaders") {
        let hpath = join(path, "httpHeaders");
        for (i, item) in d.list(n, &hpath, "a list of headers").iter().enumerate() {
            let ipath = format!("{hpath}[{i}]");
            let Some(hf) = d.fields(item, &ipath, HEADER, &[]) else {
                continue;
            };
            let name = hf
                .get("name")
                .and_then(|n| d.string(n, &join(&ipath, "name")));
            let value = hf
                .get("value")
                .and_then(|n| d.string(n, &join(&ipath, "value")))
                .unwrap_or_default();
            if let Some(name) = name {
                headers.push((name, value));
            }
        }
    }
    Some(ProbeHandler::HttpGet {
        port,
        path: probe_path,
        scheme,
        headers,
    })
}

fn required_port(d: &mut Decoder, h: &Fields<'_>, path: &str) -> Option<ProbePort> {
    let Some(n) = h.get("port") else {
        d.err(
            h.pos,
            join(path, "port"),
            "the probe has no port".into(),
            Some("add `port:`, a number or a containerPort's name".into()),
        );
        return None;
    };
    match d.port_or_name(n, &join(path, "port"))? {
        PortOrName::Number(p) => Some(ProbePort::Number(p)),
        PortOrName::Name(s) => Some(ProbePort::Name(s.clone())),
    }
}

/// A probe's named port must be one of its container's: kubelet would fail
/// the probe for ever, so the file is wrong.
pub(crate) fn check_named_port(
    d: &mut Decoder,
    probe: &Probe,
    ports: &[crate::lab::types::ContainerPort],
    path: &str,
) {
    let port = match &probe.handler {
        ProbeHandler::TcpSocket { port } | ProbeHandler::HttpGet { port, .. } => port,
        _ => return,
    };
    if let ProbePort::Name(name) = port {
        if !ports.iter().any(|p| p.name.as_deref() == Some(name)) {
            let names: Vec<&str> = ports.iter().filter_map(|p| p.name.as_deref()).collect();
            let hint = match names.as_slice() {
                [] => {
                    "name the containerPort (`name: http`), or give the port's number".to_string()
                }
                _ => format!("the container's ports are named {}", names.join(", ")),
            };
            d.err(
                probe.pos,
                path.to_string(),
                format!("the probe's port `{name}` is not a port of its container"),
                Some(hint),
            );
        }
    }
}
