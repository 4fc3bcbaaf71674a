//! `podlab trace FROM TO[:PORT]`: send one packet and show its path hop by
//! hop, as each namespace's kernel handled it.

use std::time::Duration;

use super::{exit, load_plan, paint, pick_lab, require_root, CliError, Result};
use crate::lab::Protocol;
use crate::observe::target;
use crate::observe::trace::{self, Hop, Trace, TraceError, VerdictKind};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the packet starts: a pod (`NAME`, `NS/NAME`, `pod/NAME`),
    /// `node/NODE`, `external` or `lb`.
    from: String,
    /// Where it goes: a pod, `svc/NAME`, a Service or DNS name, or an IP
    /// (a pod's, a ClusterIP, a node's with a NodePort, a LoadBalancer's);
    /// `:PORT` optional.
    to: String,
    /// Namespace of names given without one.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The probe's protocol (default: the port's, else TCP).
    #[arg(short, long, value_parser = ["tcp", "udp"])]
    protocol: Option<String>,
    /// How long the probe waits for an answer, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    timeout: u64,
    /// The lab (default: the only one up).
    #[arg(long)]
    lab: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Also capture in every namespace of the lab while the probe goes:
    /// the packet at each hop, with the addresses it had there (DNAT and
    /// masquerade seen as address changes).
    #[arg(long)]
    capture: bool,
}

pub fn run(args: Args) -> Result<u8> {
    // The words first: a misspelt one is the same error with or without a lab.
    crate::target::parse(&args.from, crate::target::Role::Source)?;
    crate::target::parse(&args.to, crate::target::Role::Destination)?;
    require_root("trace")?;
    let lab = pick_lab(args.lab.as_deref())?;
    let plan = load_plan(&lab)?;
    let from = target::source_of(&plan, &args.from, &args.namespace)?;
    target::destination(&plan, &args.to, &from, &args.namespace)?;
    let protocol = match args.protocol.as_deref() {
        Some("udp") => Some(Protocol::Udp),
        Some(_) => Some(Protocol::Tcp),
        None => None,
    };
    let timeout = Duration::from_millis(args.timeout.clamp(50, 60_000));
    let dest = trace::destination(&plan, &from, &args.to, &args.namespace, protocol, timeout)
        .map_err(error)?;
    let recorder = args.capture.then(|| {
        let prefix = format!("{}-", plan.lab);
        let spaces: Vec<(String, String)> = plan
            .netns_names()
            .into_iter()
            .map(|n| {
                (
                    n.to_string(),
                    n.strip_prefix(&prefix).unwrap_or(n).to_string(),
                )
            })
            .collect();
        crate::capture::hops::start(&spaces, timeout + Duration::from_secs(2))
    });
    let t = trace::trace(&plan, &from, &dest, timeout).map_err(error)?;
    let seen = recorder.map(|r| {
        let sport = t.flow.sport;
        r.finish(|l| crate::capture::hops::of_flow(l, sport))
    });
    if args.json {
        let mut v = serde_json::to_value(&t).unwrap_or_default();
        if let Some(lines) = &seen {
            v["capture"] = serde_json::json!(lines);
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print(&t);
        if let Some(lines) = &seen {
            println!("\nthe packets of the flow, captured in every namespace (the kernel's time stamps: a frame that crossed a veth may keep an earlier one):");
            for l in lines {
                println!("  {l}");
            }
            if lines.is_empty() {
                println!("  (none captured)");
            }
        }
    }
    Ok(if t.delivered() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

fn error(e: TraceError) -> CliError {
    let hint = match &e {
        TraceError::NoClusterIp(_) => Some("trace one of its pods: `podlab get endpoints -A`"),
        TraceError::NoPort { .. } => Some("`podlab get svc -A` lists the services' ports"),
        TraceError::Resolve { .. } => Some("a pod, svc/NAME or an IP needs no DNS"),
        TraceError::Probe { .. } => Some("`podlab diagnose` checks the lab against its plan"),
        _ => None,
    };
    let mut c = CliError::new(super::error_chain(&e));
    if let Some(h) = hint {
        c = c.hint(h);
    }
    c
}

fn print(t: &Trace) {
    println!("trace {} → {}", t.from, t.to);
    println!(
        "probe: {} {}:{} → {}:{}: {}",
        t.protocol, t.flow.src, t.flow.sport, t.flow.dst, t.flow.dport, t.probe
    );
    println!();
    for (i, h) in t.hops.iter().enumerate() {
        print_hop(i + 1, h);
    }
    if !t.reply.is_empty() {
        println!("\nthe reply, on its way back:");
        for (i, h) in t.reply.iter().enumerate() {
            print_hop(i + 1, h);
        }
    }
    println!();
    let mark = match t.verdict.kind {
        VerdictKind::Delivered => paint("delivered", "32"),
        VerdictKind::Refused => paint("refused", "31"),
        VerdictKind::Dropped => paint("dropped", "31"),
        VerdictKind::NoRoute => paint("no route", "31"),
        VerdictKind::NoAnswer => paint("no answer", "31"),
        VerdictKind::Unknown => paint("unknown", "33"),
    };
    println!("{mark}: {}", t.verdict.detail);
    if let Some(e) = &t.endpoint {
        println!(
            "endpoint chosen by the kernel: {}:{}{}",
            e.ip,
            e.port,
            match (&e.pod, &e.node) {
                (Some(p), Some(n)) => format!(" (pod {p} on {n})"),
                _ => String::new(),
            }
        );
    }
    for n in &t.notes {
        println!("note: {n}");
    }
}

fn print_hop(n: usize, h: &Hop) {
    println!("{n:>2}  {}  [netns {}]", paint(&h.what, "1"), h.netns);
    let line = |label: &str, text: String| println!("      {label:<7}{text}");
    if let Some(i) = &h.arrived_on {
        line("in", port(&i.name, i.bridge.as_deref()));
    }
    if let Some(nat) = &h.nat {
        let by = match &nat.service {
            Some(s) => format!("{} ({s})", nat.by),
            None => nat.by.clone(),
        };
        if let Some(d) = nat.dnat {
            line("nat", format!("{by}: DNAT {} → {}", d.from, d.to));
        }
        if let Some(c) = &nat.chain {
            let rule = nat
                .rule
                .as_ref()
                .map(|r| format!(", rule \"{r}\""))
                .unwrap_or_default();
            line("", format!("chain {c}{rule}"));
        }
        if let Some(s) = nat.snat {
            line("nat", format!("SNAT {} → {} (masquerade)", s.from, s.to));
        }
    }
    if let Some(c) = &h.conntrack {
        line("ct", c.clone());
    }
    if let Some(f) = &h.filter {
        line("filter", f.clone());
    }
    for p in &h.policy {
        line("policy", p.clone());
    }
    if let Some(r) = &h.route {
        line("route", r.to_string());
    }
    if let Some(b) = &h.bridged {
        line(
            "bridge",
            format!("{}: {} → port {}", b.bridge, b.mac, b.port),
        );
    }
    if let Some(o) = &h.leaves_by {
        line("out", port(&o.name, o.bridge.as_deref()));
    }
}

fn port(name: &str, bridge: Option<&str>) -> String {
    match bridge {
        Some(b) => format!("{name} (port of {b})"),
        None => name.to_string(),
    }
}
