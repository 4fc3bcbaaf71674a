//! `podlab diagnose [FROM TO[:PORT]]`: walk the seed's troubleshooting
//! checklists on the kernel's real state.

use std::time::Duration;

use super::{exit, load_plan, paint, pick_lab, require_root, CliError, Result};
use crate::observe::{self, diagnose};
use crate::{runtime, state};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod the traffic starts from (`NAME`, `NS/NAME`).
    from: Option<String>,
    /// Where it goes: a pod (`NAME`, `NS/NAME`, `pod/NAME`), `svc/NAME`,
    /// `node/NODE`, `external`, `lb`, an IP (a pod's, a ClusterIP, a
    /// node's with a NodePort, a LoadBalancer's), or a DNS name; `:PORT`
    /// optional (default: the pod's first containerPort or the Service's
    /// first port).
    to: Option<String>,
    /// Namespace of names given without one.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    #[arg(long)]
    lab: Option<String>,
    /// How long the probe waits for an answer, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    timeout: u64,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<u8> {
    // The words first: a misspelt one is the same error with or without a lab.
    for (word, role) in [
        (&args.from, crate::target::Role::Source),
        (&args.to, crate::target::Role::Destination),
    ] {
        if let Some(w) = word {
            crate::target::parse(w, role)?;
        }
    }
    require_root("diagnose")?;
    let lab = pick_lab(args.lab.as_deref())?;
    let plan = load_plan(&lab)?;
    let status = runtime::query_status(&state::dir(&lab), Duration::from_secs(2)).ok();
    let (Some(from), Some(to)) = (&args.from, &args.to) else {
        if args.from.is_some() {
            return Err(CliError::new(
                "diagnose needs both FROM and TO, or neither (the whole lab)",
            ));
        }
        return whole_lab(&plan, status.as_ref(), args.json);
    };
    let src = match observe::target::source_of(&plan, from, &args.namespace)? {
        observe::target::From::Pod(p) => p,
        other => {
            return Err(CliError::new(format!(
                "diagnose starts from a pod, and {} is not one",
                other.label()
            ))
            .hint(format!(
                "`podlab trace {from} {to}` follows a packet from anywhere"
            )))
        }
    };
    observe::target::destination(&plan, to, &observe::target::From::Pod(src), &args.namespace)?;
    let timeout = Duration::from_millis(args.timeout.clamp(50, 60_000));
    let report = diagnose::diagnose(&plan, status.as_ref(), src, to, &args.namespace, timeout)
        .map_err(|e| {
            let hint = match &e {
                diagnose::Error::NoPort { .. } => {
                    format!("give the port: `podlab diagnose {from} {to}:PORT`")
                }
                diagnose::Error::NoServicePort { .. } => {
                    "`podlab get svc -A` lists the services' ports".to_string()
                }
            };
            CliError::new(e.to_string()).hint(hint)
        })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_report(&report);
    }
    Ok(if report.healthy() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

fn mark(ok: bool) -> String {
    if ok {
        paint("✔", "32")
    } else {
        paint("✘", "31")
    }
}

fn print_report(r: &diagnose::Report) {
    println!("diagnosing {} -> {}", r.from, r.to);
    for n in &r.notes {
        println!("note: {n}");
    }
    if let Some(p) = &r.probe {
        println!(
            "\nprobe: {}: {} {}{}",
            p.flow,
            mark(p.delivered),
            p.detail,
            p.hop
                .as_ref()
                .filter(|h| !p.detail.contains(h.as_str()))
                .map(|h| format!(" (at {h})"))
                .unwrap_or_default()
        );
    }
    let mut section = "";
    for s in &r.steps {
        if s.section != section {
            section = s.section;
            println!("\n{section}");
        }
        let inferred = if s.inferred {
            " [inferred from the plan]"
        } else {
            ""
        };
        println!("  {} {}  ({}){inferred}", mark(s.ok), s.check, s.evidence);
    }
    let probe_failed = r.probe.as_ref().filter(|p| !p.delivered);
    match (r.first_broken(), probe_failed) {
        (None, None) if r.probe.is_some() => {
            println!("\nthe path is healthy: the probe got through and every step holds")
        }
        (None, None) => println!("\nevery step holds, but no probe was sent (see the note)"),
        (Some(s), _) => {
            println!("\nfirst broken step: {}", s.check);
            println!("  see it: {}", s.show);
        }
        (None, Some(p)) => {
            println!("\nthe probe failed, and no step of the checklist explains it");
            println!("  follow the packet: {}", p.show);
        }
    }
}

/// No arguments: compare the whole lab with its plan, and every pod's state.
fn whole_lab(
    plan: &crate::plan::Plan,
    status: Option<&runtime::DaemonStatus>,
    json: bool,
) -> Result<u8> {
    let findings = observe::compare_with(plan, status);
    let pods_down: Vec<String> = if status.is_none() {
        vec!["the lab's daemon does not answer: no pod is served (podlab down, then up)".into()]
    } else {
        Vec::new()
    };
    if json {
        let v = serde_json::json!({"findings": findings, "pods": pods_down, "healthy": findings.is_empty() && pods_down.is_empty()});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "lab {}: {} namespaces, {} pods checked",
            plan.lab,
            plan.netns_names().len(),
            plan.pods.len()
        );
        for f in &findings {
            println!("  {} {f}", mark(false));
        }
        for d in &pods_down {
            println!("  {} {d}", mark(false));
        }
        if findings.is_empty() && pods_down.is_empty() {
            println!(
                "  {} every namespace, link, address, route, rule and sysctl is as planned, nothing the lab did not make is there, and every pod is running",
                mark(true)
            );
        }
    }
    Ok(if findings.is_empty() && pods_down.is_empty() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}
