//! `podlab validate FILE`: every check `up` makes before touching the
//! kernel, without root.

use std::path::PathBuf;

use super::{exit, Result};
use crate::{lab, plan};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file to check.
    file: PathBuf,
}

pub fn run(args: Args) -> Result<u8> {
    let parsed = lab::load(&args.file)?;
    let plan = plan::build(&parsed)?;
    for w in &parsed.warnings {
        eprintln!("warning: {w}");
    }
    for ig in &parsed.ignored {
        // The field's name is the file's text: escaped as in every error.
        eprintln!(
            "{}:{}:{}: {}: accepted and ignored (a lab has no use for it)",
            lab::escape(&parsed.source),
            ig.pos.line,
            ig.pos.col,
            lab::escape(&ig.field)
        );
    }
    for line in stored_lines(&parsed.stored) {
        println!("{}", lab::escape(&line));
    }
    for line in stand_in_lines(&plan) {
        println!("{}", lab::escape(&line));
    }
    let stored = if parsed.stored.is_empty() {
        String::new()
    } else {
        format!(", {} stored objects", parsed.stored.len())
    };
    println!(
        "{}: lab {} is valid: {} nodes, {} pods, {} services, {} network policies{stored}",
        lab::escape(&parsed.source),
        plan.lab,
        plan.nodes.len(),
        plan.pods.len(),
        parsed.services.len(),
        parsed.policies.len()
    );
    Ok(exit::OK)
}

/// Names listed per kind before "and N more": a chart's hundred
/// ConfigMaps would make a line no one reads.
const NAMES_PER_KIND: usize = 20;

/// The first `NAMES_PER_KIND` names, then how many more.
fn first_names(names: &[String]) -> String {
    let more = names.len().saturating_sub(NAMES_PER_KIND);
    let mut shown = names[..names.len() - more].join(", ");
    if more > 0 {
        shown.push_str(&format!(" and {more} more"));
    }
    shown
}

/// What the file holds that has no effect on the network: one line per
/// kind, with its count and names (`namespace/name`, or the name of a
/// cluster-scoped object), in the order kinds first appear.
pub fn stored_lines(stored: &[lab::stored::Stored]) -> Vec<String> {
    let mut kinds: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for o in stored {
        let name = match &o.namespace {
            Some(ns) => format!("{ns}/{}", o.name),
            None => o.name.clone(),
        };
        match kinds
            .iter_mut()
            .find(|(k, a, _)| *k == o.kind && *a == o.api_version)
        {
            Some((_, _, names)) => names.push(name),
            None => kinds.push((&o.kind, &o.api_version, vec![name])),
        }
    }
    kinds
        .into_iter()
        .map(|(kind, api, names)| {
            let shown = first_names(&names);
            let what = if kind == "Ingress" || kind == "IngressClass" {
                " (no ingress controller runs in a lab)"
            } else {
                ""
            };
            format!(
                "stored, not served: {} {kind} ({api}){what}: {shown}",
                names.len()
            )
        })
        .collect()
}

/// Exec probes of a program that belongs to the image, which a lab does
/// not run: one line per container and command, naming the pods, saying
/// what answers instead (`plan::ProbeAction::EchoStandIn`).
pub fn stand_in_lines(plan: &plan::Plan) -> Vec<String> {
    let mut seen: Vec<(String, String, Vec<String>)> = Vec::new();
    for pod in &plan.pods {
        for p in &pod.probes {
            let plan::ProbeAction::EchoStandIn { command, ports } = &p.action else {
                continue;
            };
            let cmd = command.join(" ");
            let ports = match &ports[..] {
                [] => "nothing to check (no TCP port), so it passes".to_string(),
                ps => {
                    let ps: Vec<String> = ps.iter().map(u16::to_string).collect();
                    format!("the echo on port {}", ps.join(", "))
                }
            };
            let kind = match p.kind {
                plan::ProbeKind::Readiness => "readiness",
                plan::ProbeKind::Liveness => "liveness",
                plan::ProbeKind::Startup => "startup",
            };
            let what = format!("{kind} probe `{cmd}` of container {}", p.container);
            match seen.iter_mut().find(|(w, _, _)| *w == what) {
                Some((_, _, pods)) => pods.push(pod.key()),
                None => seen.push((what, ports, vec![pod.key()])),
            }
        }
    }
    seen.into_iter()
        .map(|(what, answered, pods)| {
            let shown = first_names(&pods);
            format!("exec probe answered by the echo (podlab runs no images): {what}, by {answered}: {shown}")
        })
        .collect()
}
