//! `podlab dns NAME --from POD [-t TYPE]`: resolve a name as that pod
//! would, through its own resolv.conf (search list, `ndots`, nameservers)
//! and its own network path to kube-dns, and print the answer as `dig
//! +short` does. `--explain` shows every name the search list made it try.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::{exit, load_plan, pick_lab, CliError, Result};
use crate::plan::dns::{reverse_name, Qtype, Rcode, Resolver};
use crate::runtime::dns::{ask_from, Transport};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The name, as a program in the pod would write it (`web`,
    /// `web.default`, `web.default.svc.cluster.local.`); an IPv4 address
    /// with `-t PTR` is looked up in reverse, as `dig -x`.
    name: String,
    /// The pod that asks: `POD` (with `-n NS`), `NS/POD` or `pod/POD`.
    #[arg(long, value_name = "POD")]
    from: String,
    /// The pod's namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Record type: A, AAAA, SRV, PTR, TXT, CNAME, NS, SOA, ANY.
    #[arg(short = 't', long = "type", default_value = "A", value_name = "TYPE")]
    qtype: String,
    /// Ask over TCP rather than UDP.
    #[arg(long)]
    tcp: bool,
    /// Show every name tried, in order, with its answer code.
    #[arg(long)]
    explain: bool,
    /// The lab (default: the only one up).
    #[arg(long)]
    lab: Option<String>,
}

/// How long to wait for one nameserver, as glibc's default `timeout:5`
/// would be far too patient for a lab where nothing is far away.
const TIMEOUT: Duration = Duration::from_secs(2);

pub fn run(args: Args) -> Result<u8> {
    // The word first: a misspelt one is the same error with or without a lab.
    crate::target::parse(&args.from, crate::target::Role::Source)?;
    super::require_root("dns")?;
    let qtype = Qtype::parse(&args.qtype).ok_or_else(|| {
        CliError::new(format!("unknown record type {}", args.qtype))
            .hint("use A, AAAA, SRV, PTR, TXT, CNAME, NS, SOA or ANY")
    })?;
    let lab = pick_lab(args.lab.as_deref())?;
    let plan = load_plan(&lab)?;
    let pod = match crate::observe::target::source_of(&plan, &args.from, &args.namespace)? {
        crate::observe::target::From::Pod(p) => p,
        other => {
            return Err(CliError::new(format!(
                "dns asks from a pod, and {} is not one",
                other.label()
            ))
            .hint("its resolver is the pod's: name a pod (`podlab get pods -A` lists them)"))
        }
    };

    // The pod's own file, or the host's when it has none (dnsPolicy
    // Default): exactly what its processes read.
    let own = format!("/etc/netns/{}/resolv.conf", pod.netns);
    let (path, text) = match std::fs::read_to_string(&own) {
        Ok(t) => (own, t),
        Err(_) => {
            let host = "/etc/resolv.conf".to_string();
            let t = std::fs::read_to_string(&host)
                .map_err(|e| CliError::new(format!("cannot read {host}: {e}")))?;
            (host, t)
        }
    };
    let resolver = Resolver::parse(&text);
    let servers: Vec<IpAddr> = resolver
        .nameservers
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    if servers.is_empty() {
        return Err(CliError::new(format!("{path} names no nameserver")));
    }

    let names = match (qtype, args.name.parse::<Ipv4Addr>()) {
        (Qtype::Ptr, Ok(ip)) => vec![reverse_name(ip)],
        _ => resolver.candidates(&args.name),
    };
    if args.explain {
        println!(
            ";; {} asks {} (from {path}: ndots:{}, search {})",
            pod.key(),
            servers
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            resolver.ndots,
            if resolver.searches.is_empty() {
                "-".to_string()
            } else {
                resolver.searches.join(" ")
            },
        );
    }

    // Each name tried and its answer code (NOERROR: no record of the type).
    let mut tried: Vec<String> = Vec::new();
    let counters = crate::observe::policy_counters(&plan);
    for name in &names {
        let mut reply = None;
        let mut errors = Vec::new();
        // The next nameserver only when one does not answer, as glibc.
        for server in &servers {
            match ask_from(&pod.netns, *server, name, qtype, args.tcp, TIMEOUT) {
                Ok(r) => {
                    reply = Some(r);
                    break;
                }
                Err(e) => errors.push(format!("{server}: {e}")),
            }
        }
        let Some(reply) = reply else {
            // The kernel's word first: a policy counter that moved while
            // the query went unanswered names who dropped it.
            let mut who = vec![(crate::lab::PolicyType::Egress, pod)];
            who.extend(
                plan.pods
                    .iter()
                    .filter(|p| p.role == crate::plan::PodRole::Dns)
                    .map(|p| (crate::lab::PolicyType::Ingress, p)),
            );
            let dropped = crate::observe::policy_drops_since(&plan, &counters, &who);
            let mut e = CliError::new(format!(
                "no answer for {name} from {}{}",
                errors.join("; "),
                if dropped.is_empty() {
                    String::new()
                } else {
                    format!(": dropped by {}", dropped.join(" and "))
                }
            ))
            .code(exit::CHECK_FAILED);
            e = if dropped.is_empty() {
                e.hint(format!(
                    "is kube-dns up? `podlab get pods -n kube-system`, `podlab get endpoints -n kube-system --lab {lab}`"
                ))
            } else {
                e.hint(format!(
                    "a policy must allow DNS (UDP and TCP 53 to kube-dns): `podlab get netpol -n {} --lab {lab}`",
                    pod.namespace
                ))
            };
            return Err(e);
        };
        let rcode = Rcode::from_code(reply.rcode)
            .map(|r| r.to_string())
            .unwrap_or_else(|| format!("RCODE{}", reply.rcode));
        if args.explain {
            let via = match reply.transport {
                Transport::Udp => "udp",
                Transport::Tcp => "tcp",
            };
            println!(
                ";; {name} {} ({via}): {rcode}, {} answer(s)",
                args.qtype.to_ascii_uppercase(),
                reply.records.len()
            );
        }
        let nxdomain = reply.rcode == Rcode::NxDomain.code();
        let nodata = reply.rcode == 0 && reply.records.is_empty();
        if reply.rcode == 0 && !reply.records.is_empty() {
            for r in &reply.records {
                println!("{}", r.data);
            }
            return Ok(exit::OK);
        }
        tried.push(format!("{name} {rcode}"));
        // glibc walks on past "no such name" and "no such type" only.
        if !(nxdomain || nodata) {
            break;
        }
    }
    let qtype_name = args.qtype.to_ascii_uppercase();
    Err(CliError::new(format!(
        "{}: no {qtype_name} record found: {}",
        args.name,
        tried.join(", ")
    ))
    .hint("`--explain` shows each name tried; `podlab get svc -A` lists services")
    .code(exit::CHECK_FAILED))
}
