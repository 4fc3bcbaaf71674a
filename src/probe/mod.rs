//! `podlab test`'s engine: every assertion of `spec.expect` run against a
//! running lab, in-process and all at once, each compared with what was
//! expected.
//!
//! A probe creates its socket inside the source's namespace (`net`), then
//! connects from the tokio runtime: no process per probe, no curl. Names
//! are resolved against the lab's plan (`resolve`); DNS assertions send a
//! real query to the pod's nameserver (`dns`).

pub mod dns;
pub mod genuine;
pub mod identity;
pub mod kernel_state;
pub mod net;
pub mod path;
pub mod refused;
pub mod resolve;

use std::collections::{BTreeSet, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use crate::lab::expect::{Assertion, Check, Connect, DnsCheck, Matrix, Outcome, Spanned, Target};
use crate::lab::Protocol;
use crate::plan::Plan;

pub use net::{Seen, Server};

use identity::Identity;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long a probe waits for an answer before it counts as `blocked`.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_millis(1000),
        }
    }
}

/// The result of one assertion.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub name: String,
    /// `connectivity`, `matrix` or `dns`.
    pub kind: &'static str,
    /// Line of the assertion in the lab file.
    pub line: usize,
    pub passed: bool,
    /// What was expected and what was seen, in words; for a matrix, the
    /// whole tables (one row per line, with the names as headers).
    pub expected: String,
    pub observed: String,
    #[serde(rename = "timeMs")]
    pub time_ms: u64,
}

/// What every check of one run shares.
pub struct Ctx {
    /// The lab's identity, to tell its genuine servers from stand-ins; why
    /// not, when the key cannot be read (then no answer counts as genuine).
    pub id: Result<Identity, String>,
    /// Pods the daemon has taken out of service: not endpoints a Service
    /// check must reach.
    pub not_ready: HashSet<String>,
    /// Every pod of the lab, to name a genuine answer from the wrong pod.
    pub pods: Vec<String>,
}

impl Ctx {
    pub async fn of(plan: &Plan) -> Ctx {
        let lab = plan.lab.clone();
        let dir = crate::state::dir_of(&lab);
        let id = Identity::load(&dir, &lab);
        let p = plan.clone();
        let not_ready = tokio::task::spawn_blocking(move || {
            let status = crate::runtime::query_status(&dir, Duration::from_secs(2)).ok();
            crate::observe::not_ready(&p, status.as_ref())
        })
        .await
        .unwrap_or_default();
        Ctx {
            id,
            not_ready,
            pods: plan.pods.iter().map(|p| p.key()).collect(),
        }
    }
}

/// Run every assertion at once; the reports come back in the same order.
pub async fn run(plan: &Plan, assertions: &[&Assertion], opts: Options) -> Vec<Report> {
    let ctx = Ctx::of(plan).await;
    join_all(assertions.iter().map(|a| run_one(plan, &ctx, a, opts))).await
}

async fn run_one(plan: &Plan, ctx: &Ctx, a: &Assertion, opts: Options) -> Report {
    let started = Instant::now();
    let (kind, passed, expected, observed) = match &a.check {
        Check::Connect(c) => {
            let (p, e, o) = connect(plan, ctx, c, opts).await;
            ("connectivity", p, e, o)
        }
        Check::Matrix(m) => {
            let (p, e, o) = matrix(plan, ctx, m, opts).await;
            ("matrix", p, e, o)
        }
        Check::Dns(d) => {
            let (p, e, o) = dns_check(plan, ctx, d, opts).await;
            ("dns", p, e, o)
        }
        Check::Path(x) => {
            let (p, e, o) = path::check(plan, x, opts).await;
            (x.kind.word(), p, e, o)
        }
        Check::Kernel(k) => {
            let (p, e, o) = kernel_state::check(plan, ctx, k).await;
            ("kernel", p, e, o)
        }
    };
    Report {
        name: a.title(),
        kind,
        line: a.pos.line,
        passed,
        expected,
        observed,
        time_ms: started.elapsed().as_millis() as u64,
    }
}

/// One probe from a source to a destination; `ask` asks the server who it
/// is and whom it saw, waiting at most that long.
async fn probe(
    from: &resolve::From,
    to: SocketAddrV4,
    protocol: Protocol,
    opts: Options,
    ask: Option<Duration>,
) -> Seen {
    match protocol {
        Protocol::Udp => net::udp(&from.netns, to, opts.timeout).await,
        _ => net::tcp(&from.netns, to, opts.timeout, ask).await,
    }
}

fn seen_outcome(seen: &Seen) -> Option<Outcome> {
    match seen {
        Seen::Connected(_) => Some(Outcome::Connected),
        Seen::Refused => Some(Outcome::Refused),
        Seen::Blocked(_) => Some(Outcome::Blocked),
        Seen::Failed(_) => None,
    }
}

fn named(plan: &Plan, ip: Ipv4Addr) -> String {
    match resolve::name_of(plan, ip) {
        Some(n) => format!("{ip} ({n})"),
        None => ip.to_string(),
    }
}

fn short_pod(key: &str) -> &str {
    key.strip_prefix("default/").unwrap_or(key)
}

fn describe_seen(plan: &Plan, seen: &Seen, to: SocketAddrV4, opts: Options) -> String {
    match seen {
        Seen::Connected(None) => "connected".into(),
        Seen::Connected(Some(s)) => match &s.pod {
            Some(p) => format!("connected to {}", short_pod(p)),
            None => "connected".into(),
        },
        Seen::Refused => format!("refused: nothing listens on {to}"),
        Seen::Blocked(None) => format!(
            "blocked: no answer from {} in {} ms",
            named(plan, *to.ip()),
            opts.timeout.as_millis()
        ),
        Seen::Blocked(Some(why)) => format!("blocked: {why} ({})", named(plan, *to.ip())),
        Seen::Failed(e) => format!("the probe failed: {e}"),
    }
}

async fn connect(plan: &Plan, ctx: &Ctx, c: &Connect, opts: Options) -> (bool, String, String) {
    let mut expected = c.expect.to_string();
    if let Some(ip) = &c.source_ip {
        expected.push_str(&format!(", sourceIP {}", ip.text));
    }
    if let Some(s) = c.status {
        expected.push_str(&format!(", status {s}"));
    }
    if let Some(b) = &c.body_contains {
        expected.push_str(&format!(", body contains {b:?}"));
    }
    if let Some(r) = &c.refused_by {
        expected.push_str(&format!(" by {}", r.value));
    }
    let resolved = resolve::source(plan, &c.from.value).and_then(|from| {
        let to = resolve::target(plan, &c.to.value, &from, c.port, c.protocol)?;
        Ok((from, to))
    });
    let (from, to) = match resolved {
        Ok(r) => r,
        Err(e) => return (false, expected, format!("cannot probe: {e}")),
    };
    let addr = SocketAddrV4::new(to.ip, c.port);
    // "Connected" to a pod or a Service means its genuine server answered.
    let genuine = (c.expect == Outcome::Connected)
        .then(|| {
            genuine::expected(
                plan,
                &c.to.value,
                &from.search_ns,
                c.port,
                c.protocol,
                &ctx.not_ready,
            )
        })
        .flatten();
    // Ask the server only when the assertion is about its answer, or when
    // podlab's echo answers and can say who it is (for the reader).
    let ask = if c.needs_server() || genuine.is_some() {
        Some(opts.timeout)
    } else if to.echo {
        Some(opts.timeout.min(Duration::from_millis(250)))
    } else {
        None
    };
    // Who refuses is only known by following the flow, whose NAT entries
    // a reset removes at once: watched from before the probe.
    let watch = refused::watch(plan).await;
    let (local, seen) = match c.protocol {
        Protocol::Udp => net::udp_traced(&from.netns, addr, opts.timeout).await,
        _ => net::tcp_traced(&from.netns, addr, opts.timeout, ask).await,
    };
    let mut observed = describe_seen(plan, &seen, addr, opts);
    let mut passed = seen_outcome(&seen) == Some(c.expect);
    if seen == Seen::Refused {
        let refusal =
            refused::refuser(plan, &from, local, addr, c.protocol, watch, opts.timeout).await;
        match (&refusal, &c.refused_by) {
            (Ok((who, detail)), want) => {
                observed = format!("refused by {who}: {detail}");
                if let Some(want) = want {
                    passed &= who.is(&want.value);
                }
            }
            (Err(why), Some(_)) => {
                passed = false;
                observed.push_str(&format!(", and who refused is not known: {why}"));
            }
            (Err(_), None) => {}
        }
    }
    if let (Some(g), Seen::Connected(server)) = (&genuine, &seen) {
        match genuine::verify(&ctx.id, g, server.as_ref(), c.protocol, &ctx.pods) {
            Err(why) => {
                passed = false;
                observed = why;
            }
            Ok(pod) if g.every => {
                observed = format!("connected to {}", short_pod(&pod));
                if let Err(why) =
                    reach_every(plan, ctx, &from, addr, c.protocol, opts, g, pod).await
                {
                    passed = false;
                    observed.push_str(&format!(", but {why}"));
                } else {
                    observed = format!("connected to every endpoint of {}", g.what);
                }
            }
            Ok(pod) => observed = format!("connected to {}", short_pod(&pod)),
        }
    }
    if let Seen::Connected(server) = &seen {
        let none = Server::default();
        let server = server.as_ref().unwrap_or(&none);
        if let Some(want) = &c.source_ip {
            match (
                resolve::source_ips(plan, &want.value, &from),
                server.client_ip,
            ) {
                (Err(e), _) => {
                    passed = false;
                    observed.push_str(&format!(", cannot check sourceIP: {e}"));
                }
                (Ok(_), None) => {
                    passed = false;
                    observed.push_str(
                        ", the server did not say which address it saw (not podlab's echo?)",
                    );
                }
                (Ok(ok), Some(ip)) => {
                    let mut what = format!(", sourceIP {}", named(plan, ip));
                    if from.ips.contains(&ip) {
                        what.push_str(" = the client's own: no SNAT");
                    }
                    observed.push_str(&what);
                    passed &= ok.contains(&ip);
                }
            }
        }
        if let Some(want) = c.status {
            match server.status {
                Some(s) => observed.push_str(&format!(", status {s}")),
                None => observed.push_str(", no HTTP answer"),
            }
            passed &= server.status == Some(want);
        }
        if let Some(want) = &c.body_contains {
            if server.body.contains(want.as_str()) {
                observed.push_str(&format!(", body contains {want:?}"));
            } else {
                passed = false;
                let mut body: String = server.body.trim().chars().take(120).collect();
                if body.is_empty() {
                    body = "nothing".into();
                }
                observed.push_str(&format!(", body is {body:?}"));
            }
        }
    }
    (passed, expected, observed)
}

/// Probe a Service again until every ready endpoint has answered, each
/// answer genuine: in batches of concurrent probes, at least `MIN_ROUNDS`
/// and at most `ROUNDS` of them. A rule that sends one connection in three
/// elsewhere would miss one batch of 16 once in 650 runs (a test of ten
/// checks saw it); it misses three, 48 probes, about once in 300 million.
/// A correct Service costs three quick batches.
#[allow(clippy::too_many_arguments)]
async fn reach_every(
    plan: &Plan,
    ctx: &Ctx,
    from: &resolve::From,
    addr: SocketAddrV4,
    protocol: Protocol,
    opts: Options,
    g: &genuine::Genuine,
    first: String,
) -> Result<(), String> {
    const MIN_ROUNDS: usize = 3;
    const ROUNDS: usize = 4;
    let batch = (4 * g.pods.len()).clamp(16, 64);
    let mut seen = BTreeSet::from([first]);
    let mut sent = 1;
    for round in 1..=ROUNDS {
        let answers =
            join_all((0..batch).map(|_| probe(from, addr, protocol, opts, Some(opts.timeout))))
                .await;
        sent += batch;
        let mut bad = Vec::new();
        for s in &answers {
            match s {
                Seen::Connected(server) => {
                    match genuine::verify(&ctx.id, g, server.as_ref(), protocol, &ctx.pods) {
                        Ok(p) => {
                            seen.insert(p);
                        }
                        Err(why) => bad.push(why),
                    }
                }
                other => bad.push(describe_seen(plan, other, addr, opts)),
            }
        }
        if let Some(why) = bad.first() {
            return Err(format!(
                "{} of {sent} probes did not reach an endpoint ({why}): kube-proxy sends some connections elsewhere",
                bad.len()
            ));
        }
        if seen.len() >= g.pods.len() && round >= MIN_ROUNDS {
            return Ok(());
        }
    }
    Err(format!(
        "{} never answered in {sent} probes",
        genuine::missing(g, &seen).join(", ")
    ))
}

/// Whether the DNS answer came from the lab's own DNS server behind the
/// nameserver `server`: signed by one of its ready pods.
fn dns_genuine(
    plan: &Plan,
    ctx: &Ctx,
    server: Ipv4Addr,
    name: &str,
    d: &DnsCheck,
    answer: &dns::Answer,
) -> Result<(), String> {
    let pods: Vec<String> = plan
        .services
        .iter()
        .filter(|s| s.cluster_ip == Some(server))
        .flat_map(|s| s.endpoints.iter())
        .map(|e| format!("{}/{}", e.namespace, e.pod))
        .filter(|k| !ctx.not_ready.contains(k))
        .collect();
    let who = if pods.is_empty() {
        format!("no ready pod serves {server}")
    } else {
        pods.iter()
            .map(|p| short_pod(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let id = ctx.id.as_ref().map_err(|e| e.clone())?;
    let (Some(c), Some(p)) = (&answer.challenge, &answer.proof) else {
        return Err(format!(
            "but not by the cluster DNS server ({who}): the answer carries no podlab identity"
        ));
    };
    let asked = name.trim_end_matches('.').to_ascii_lowercase();
    let signed = crate::runtime::dns::dns_challenge(c, &asked, d.rtype.code());
    match id.which(
        identity::Kind::Dns,
        pods.iter().map(String::as_str),
        &signed,
        p,
    ) {
        Some(_) => Ok(()),
        None => Err(format!(
            "but not by the cluster DNS server ({who}): its proof does not match"
        )),
    }
}

/// The truth table with the names as headers, as the upstream e2e tests
/// print it.
fn render_table(
    from: &[Spanned<crate::lab::expect::Source>],
    to: &[Spanned<Target>],
    cells: &[Vec<char>],
) -> String {
    let w = from.iter().map(|f| f.text.len()).max().unwrap_or(0);
    let mut s = format!("{:w$}", "");
    for t in to {
        s.push_str(&format!("  {}", t.text));
    }
    s.push('\n');
    for (f, row) in from.iter().zip(cells) {
        s.push_str(&format!("{:w$}", f.text));
        for (t, c) in to.iter().zip(row) {
            s.push_str(&format!("  {c:<tw$}", tw = t.text.len()));
        }
        let trimmed = s.trim_end().len();
        s.truncate(trimmed);
        s.push('\n');
    }
    s.pop();
    s
}

async fn matrix(plan: &Plan, ctx: &Ctx, m: &Matrix, opts: Options) -> (bool, String, String) {
    let cells = m.from.iter().flat_map(|f| m.to.iter().map(move |t| (f, t)));
    let seen: Vec<(Option<Outcome>, Option<String>)> = join_all(cells.map(|(f, t)| async move {
        let resolved = resolve::source(plan, &f.value).and_then(|from| {
            let to = resolve::target(plan, &t.value, &from, m.port, m.protocol)?;
            Ok((from, to))
        });
        match resolved {
            Err(e) => (None, Some(format!("{} -> {}: {e}", f.text, t.text))),
            Ok((from, to)) => {
                let addr = SocketAddrV4::new(to.ip, m.port);
                let g = genuine::expected(
                    plan,
                    &t.value,
                    &from.search_ns,
                    m.port,
                    m.protocol,
                    &ctx.not_ready,
                );
                let ask = g.as_ref().map(|_| opts.timeout);
                let s = probe(&from, addr, m.protocol, opts, ask).await;
                let why = match (&s, &g) {
                    (Seen::Failed(e), _) => Some(format!("{} -> {}: {e}", f.text, t.text)),
                    (Seen::Connected(server), Some(g)) => {
                        match genuine::verify(&ctx.id, g, server.as_ref(), m.protocol, &ctx.pods) {
                            Ok(_) => None,
                            Err(why) => {
                                return (None, Some(format!("{} -> {}: {why}", f.text, t.text)))
                            }
                        }
                    }
                    _ => None,
                };
                (seen_outcome(&s), why)
            }
        }
    }))
    .await;
    let cols = m.to.len();
    let want: Vec<Vec<char>> = m
        .expect
        .iter()
        .map(|r| r.iter().map(|o| o.symbol()).collect())
        .collect();
    let got: Vec<Vec<char>> = seen
        .chunks(cols)
        .map(|r| {
            r.iter()
                .map(|(o, _)| o.map_or('?', |o| o.symbol()))
                .collect()
        })
        .collect();
    let passed = want == got;
    let mut observed = render_table(&m.from, &m.to, &got);
    let mut differ = Vec::new();
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        for (j, (a, b)) in w.iter().zip(g).enumerate() {
            if a != b {
                differ.push(format!(
                    "{} -> {} ({a} expected, {b} observed)",
                    m.from[i].text, m.to[j].text
                ));
            }
        }
    }
    if !differ.is_empty() {
        observed.push_str(&format!("\ndiffers at: {}", differ.join(", ")));
    }
    let problems: Vec<&String> = seen.iter().filter_map(|(_, w)| w.as_ref()).collect();
    if !problems.is_empty() {
        observed.push_str("\n? no outcome, or not the genuine server:");
        for p in problems {
            observed.push_str(&format!("\n  {p}"));
        }
    }
    (passed, render_table(&m.from, &m.to, &want), observed)
}

async fn dns_check(plan: &Plan, ctx: &Ctx, d: &DnsCheck, opts: Options) -> (bool, String, String) {
    let expected = d.expected();
    let from = match resolve::source(plan, &d.from.value) {
        Ok(f) => f,
        Err(e) => return (false, expected, format!("cannot probe: {e}")),
    };
    let server = dns::nameserver(&from.netns).unwrap_or(plan.dns_ip);
    // Nothing answers at the cluster DNS address until the lab runs a DNS
    // server behind it: say so rather than time out.
    let served = plan
        .services
        .iter()
        .any(|s| s.cluster_ip == Some(server) && !s.endpoints.is_empty());
    if !served {
        return (
            false,
            expected,
            format!("no DNS server in this lab: nothing serves the nameserver {server}"),
        );
    }
    let names = dns::candidates(&d.query, &from.search_ns, &plan.cluster_domain);
    match dns::resolve(&from.netns, server, &names, d.rtype, opts.timeout).await {
        Err(e) => (false, expected, e),
        Ok((name, answer)) => {
            let rcode = dns::rcode_name(answer.rcode);
            let observed = if answer.records.is_empty() {
                format!("{rcode}, no answers (last asked {name})")
            } else {
                format!("{} (as {name})", answer.records.join(", "))
            };
            let genuine = dns_genuine(plan, ctx, server, &name, d, &answer);
            let passed = match (&d.answers, d.rcode) {
                (Some(want), _) => {
                    let mut a = answer.records.clone();
                    let mut b = want.clone();
                    a.sort();
                    b.sort();
                    answer.rcode == 0 && a == b
                }
                (None, Some(r)) => answer.rcode == r.code(),
                (None, None) => answer.rcode == 0 && !answer.records.is_empty(),
            };
            match genuine {
                Ok(()) => (passed, expected, observed),
                Err(why) => (false, expected, format!("{observed}, {why}")),
            }
        }
    }
}
