//! `podlab capture TARGET [-i IFACE] [-w FILE|-] [-c N] [--duration S]
//! [FILTER...]`: packets in a pod, a node, `external`, `lb` or `net` (the
//! node network's namespace), as pcap and/or one line each (`capture`).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{exit, load_plan, pick_lab, require_root, CliError, Result};
use crate::capture::{self, pcap, End, Options, PacketSocket, Sinks};
use crate::plan::Plan;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to capture: `POD`, `NS/POD`, `pod/POD`, `node/NODE`,
    /// `external`, `lb`, or `net` (the node network's bridge and uplinks).
    target: String,
    /// The filter: host A, net CIDR, port N, src/dst, tcp, udp, icmp, arp,
    /// syn/ack/fin/rst, and/or/not, ( ) — podlab's own small language,
    /// not full BPF syntax.
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    filter: Vec<String>,
    /// The pod's namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    #[arg(long)]
    lab: Option<String>,
    /// One interface of the target's namespace (default: all of them).
    #[arg(short, long, value_name = "IFACE")]
    interface: Option<String>,
    /// Write pcap to FILE (`-` is stdout: `| wireshark -k -i -`).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<String>,
    /// With -w FILE, print the lines too.
    #[arg(long)]
    print: bool,
    /// Stop after N packets that match the filter.
    #[arg(short = 'c', long, value_name = "N")]
    count: Option<u64>,
    /// Stop after S seconds (decimals allowed).
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Bytes kept of each packet (64 to 262144).
    #[arg(short = 's', long, default_value_t = capture::MAX_SNAPLEN, value_name = "BYTES")]
    snaplen: usize,
}

/// Set by SIGINT/SIGTERM: the loop ends at its next wake-up (100 ms).
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn catch_signals() {
    // SAFETY: the handler only stores to an atomic; no SA_RESTART, so a
    // blocked receive returns at once.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// The namespace of TARGET, and how messages name it.
fn namespace_of(plan: &Plan, target: &str, namespace: &str) -> Result<(String, String)> {
    use crate::observe::target;
    match target::source(plan, target, namespace) {
        Ok(from) => Ok((from.netns().to_string(), from.label())),
        Err(_) if target == "net" => Ok((plan.net.netns.clone(), "net".to_string())),
        Err(e) => Err(CliError::new(format!("{e} in lab {}", plan.lab)).hint(
            "targets are POD (-n NS), NS/POD, pod/POD, node/NODE, external, lb, net; \
             `podlab get pods -A` lists pods",
        )),
    }
}

fn options(args: &Args) -> Result<Options> {
    let filter = capture::filter::parse(&args.filter).map_err(|e| {
        CliError::new(format!("filter: {e}"))
            .hint("e.g. `tcp port 80`, `host 10.244.1.2 and not arp`, `dst port 53 and udp`")
    })?;
    if !(64..=capture::MAX_SNAPLEN).contains(&args.snaplen) {
        return Err(CliError::new(format!(
            "--snaplen {}: give 64 to {} bytes",
            args.snaplen,
            capture::MAX_SNAPLEN
        )));
    }
    let duration = match args.duration {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(CliError::new(format!(
                "--duration {s}: give seconds, more than 0 and at most 86400"
            )))
        }
    };
    if args.count == Some(0) {
        return Err(CliError::new("-c 0 would capture nothing: give 1 or more"));
    }
    Ok(Options {
        count: args.count,
        duration,
        snaplen: args.snaplen,
        filter,
    })
}

pub fn run(args: Args) -> Result<u8> {
    require_root("capture")?;
    let opts = options(&args)?;
    let lab = pick_lab(args.lab.as_deref())?;
    let plan = load_plan(&lab)?;
    let (netns, label) = namespace_of(&plan, &args.target, &args.namespace)?;
    let to_stdout = args.write.as_deref() == Some("-");
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(
            CliError::new("-w - writes binary pcap, and stdout is a terminal")
                .hint("pipe it (`| wireshark -k -i -`, `| tcpdump -r -`) or give a file: -w FILE"),
        );
    }
    let sock = PacketSocket::open(&netns, args.interface.as_deref()).map_err(|e| {
        let hint = match e {
            capture::OpenError::NoInterface { .. } => format!(
                "`podlab exec {} -- ip link` lists them; without -i every interface is captured",
                args.target
            ),
            _ => format!("is lab {lab} healthy? `podlab diagnose --lab {lab}`"),
        };
        CliError::new(crate::error_chain(&e)).hint(hint)
    })?;
    let pcap_out: Option<Box<dyn Write>> = match args.write.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(path) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| CliError::new(format!("cannot write {path}: {e}")))?,
        ))),
    };
    let pcap = match pcap_out {
        Some(w) => Some(
            pcap::Writer::new(w, opts.snaplen as u32)
                .map_err(|e| CliError::new(format!("cannot write the pcap header: {e}")))?,
        ),
        None => None,
    };
    let lines: Option<Box<dyn Write>> = if args.write.is_none() || (args.print && !to_stdout) {
        Some(Box::new(std::io::stdout()))
    } else {
        None
    };
    let mut sinks = Sinks { pcap, lines };
    catch_signals();
    let on = args.interface.as_deref().unwrap_or("every interface");
    eprintln!("podlab: capturing in {label} ({netns}), on {on}; Ctrl-C stops");
    let summary = capture::run(&sock, &opts, &mut sinks, &STOP)
        .map_err(|e| CliError::new(format!("capture in {label}: {e}")))?;
    let why = match summary.end {
        End::Count => "count reached",
        End::Duration => "time is up",
        End::Interrupted => "interrupted",
        End::Closed => "the reader of stdout went away",
    };
    let _ = writeln!(
        std::io::stderr(),
        "podlab: {} packets matched the filter ({} seen), {} dropped by the kernel; {why}",
        summary.matched,
        summary.seen,
        summary.dropped
    );
    Ok(exit::OK)
}
