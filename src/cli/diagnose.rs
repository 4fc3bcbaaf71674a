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
    /// Where it goes: a pod, `svc/NAME`, an IP, or a DNS name; `:PORT`
    /// optional.
    to: Option<String>,
    /// Namespace of names given without one.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    #[arg(long)]
    lab: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<u8> {
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
    let src = observe::target::pod_source(&plan, from, &args.namespace)
        .map_err(|e| CliError::new(e).hint("FROM is a pod: `podlab get pods -A` lists them"))?;
    let target = diagnose::parse_target(&plan, to, &args.namespace);
    let report = diagnose::diagnose(&plan, status.as_ref(), src, &target);
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
    let mut section = "";
    for s in &r.steps {
        if s.section != section {
            section = s.section;
            println!("\n{section}");
        }
        println!("  {} {}  ({})", mark(s.ok), s.check, s.evidence);
    }
    match r.first_broken() {
        None => println!("\nthe path is healthy"),
        Some(s) => {
            println!("\nfirst broken step: {}", s.check);
            println!("  see it: {}", s.show);
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
                "  {} every namespace, link, address and route is as planned; every pod is running",
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
