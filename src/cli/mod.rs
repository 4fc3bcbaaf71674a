//! Command-line edge: argument parsing, dispatch, and how errors are shown.
//! One file per command; each only parses, calls, and prints.

mod api_write;
mod apply;
mod capture;
mod completion;
mod delete;
mod diagnose;
mod dns;
mod down;
mod exec;
mod exercise;
mod fault;
mod graph;

mod get;
mod get_netpol;
mod habits;
#[cfg(test)]
mod hints_tests;
mod kubeconfig;
mod kubectl;
mod logs;
mod ls;
mod scale;
pub(crate) mod table;
mod test;
mod trace;
mod ui;
mod up;
mod validate;

use std::fmt;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand, ValueEnum};

use crate::kernel::procs::DAEMON_ARG;

/// Build a Kubernetes-shaped network on this host from a YAML lab file:
/// nodes and pods are network namespaces, the rest is the kernel's own.
#[derive(Debug, Parser)]
#[command(name = "podlab", version, about, long_about = None, after_help = LAB_HELP)]
pub struct Cli {
    /// More log output (-v info, -vv debug) on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a lab (no FILE: the built-in `demo` lab of the seed's example).
    Up(up::Args),
    /// Remove a lab, whatever state it is in.
    Down(down::Args),
    /// List running labs.
    Ls(ls::Args),
    /// Show nodes, pods, services or endpoints, as kubectl would.
    #[command(after_help = LAB_HELP)]
    Get(get::Args),
    /// Run a command inside a pod, a node, `external` or `lb`.
    #[command(after_help = LAB_HELP)]
    Exec(exec::Args),
    /// Delete a pod, service or network policy from a running lab
    #[command(after_help = LAB_HELP)]
    Delete(delete::Args),
    /// Change a running lab to match its (edited) file, and repair drift
    #[command(after_help = LAB_HELP)]
    Apply(apply::Args),
    /// Set a Deployment's replicas in a running lab
    #[command(after_help = LAB_HELP)]
    Scale(scale::Args),
    /// Walk the troubleshooting checklist from a pod to a pod, service or name.
    #[command(after_help = LAB_HELP)]
    Diagnose(diagnose::Args),
    /// Resolve a name as a pod would: its resolv.conf, its path to kube-dns.
    #[command(after_help = LAB_HELP)]
    Dns(dns::Args),
    /// Send one packet and show its path hop by hop, from the kernel.
    #[command(after_help = LAB_HELP)]
    Trace(trace::Args),
    /// A picture of the running lab as the kernel has it (ascii, svg, dot, mermaid).
    #[command(after_help = LAB_HELP)]
    Graph(graph::Args),
    /// Capture packets in a pod, node, `external`, `lb` or `net`, as pcap or lines.
    #[command(after_help = LAB_HELP)]
    Capture(capture::Args),
    /// A live page of the lab on 127.0.0.1: picture, details, traces, captures.
    #[command(after_help = LAB_HELP)]
    Ui(ui::Args),
    /// Check a lab file without building it (no root needed).
    Validate(validate::Args),
    /// Run the lab's `expect` assertions (bringing it up and down if needed).
    Test(test::Args),
    /// Break a running lab on purpose, and undo it exactly.
    #[command(after_help = LAB_HELP)]
    Fault(fault::Args),
    /// Break-fix exercises: start one, get hints, check your fix.
    #[command(after_help = LAB_HELP)]
    Exercise(exercise::Args),
    /// Print a container's output (its process's, or its echo's access log).
    #[command(after_help = LAB_HELP)]
    Logs(logs::Args),
    /// Print the kubeconfig of a lab's Kubernetes API (for the real kubectl).
    #[command(after_help = LAB_HELP)]
    Kubeconfig(kubeconfig::Args),
    /// Run the real kubectl against a lab: `podlab kubectl [--lab LAB] get pods -o wide`.
    #[command(after_help = LAB_HELP)]
    Kubectl(kubectl::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(completion::Args),
    /// Print podlab's man page (roff), or write one page per command.
    Man(completion::ManArgs),
    /// One write of a lab's Kubernetes API, run by its daemon.
    #[command(hide = true)]
    ApiWrite(api_write::Args),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Wide,
    Json,
    Yaml,
}

/// The exit codes scripts rely on (DESIGN.md, "the stable interface").
pub mod exit {
    pub const OK: u8 = 0;
    pub const CHECK_FAILED: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
}

/// An error as the user sees it: one line, a hint where the fix is known,
/// and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            code: exit::BAD_INPUT,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<crate::target::TargetError> for CliError {
    fn from(e: crate::target::TargetError) -> Self {
        CliError::new(e.message).hint(e.hint)
    }
}

impl From<crate::lab::LabError> for CliError {
    fn from(e: crate::lab::LabError) -> Self {
        // Diagnostics carry their own file:line:column and hints.
        CliError::new(e.to_string())
    }
}

impl From<crate::ops::Error> for CliError {
    fn from(e: crate::ops::Error) -> Self {
        use crate::ops::Error as E;
        match &e {
            E::NoSource { .. } => {
                CliError::new(error_chain(&e)).hint("apply its file once: sudo podlab apply FILE")
            }
            E::Lab(l) => CliError::new(l.to_string()),
            E::Incompatible { lab, .. } => CliError::new(e.to_string()).hint(format!(
                "bring it down and up again: sudo podlab down {lab} && sudo podlab up FILE"
            )),
            E::NotFound {
                kind, name, known, ..
            } => {
                let known: Vec<&str> = known.iter().map(String::as_str).collect();
                let c = CliError::new(e.to_string());
                match (crate::lab::did_you_mean(name, &known), kind.as_str()) {
                    (Some(m), _) => c.hint(format!("did you mean {m}?")),
                    (None, "pod") => c.hint("`podlab get pods -A` lists the pods"),
                    (None, _) => c.hint("`podlab kubectl get all -A` lists the lab's objects"),
                }
            }
            _ => CliError::new(error_chain(&e)),
        }
    }
}

impl From<crate::kernel::Error> for CliError {
    fn from(e: crate::kernel::Error) -> Self {
        CliError::new(error_chain(&e))
    }
}

pub use crate::error_chain;
pub use crate::lab::DEMO_SOURCE;

pub type Result<T> = std::result::Result<T, CliError>;

pub fn main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The daemon is podlab's own process, not a command: it stays out of
    // the help, the completions and the man page.
    if raw.get(1).is_some_and(|a| a == DAEMON_ARG) {
        return daemon(&raw[2..]);
    }
    let cli = match Cli::try_parse_from(&raw) {
        Ok(c) => c,
        Err(e) => return parse_error(&raw, &e),
    };
    match cli.command {
        // `test` brings its lab down on every path, and `apply`, `scale`
        // and `delete` save the lab's file and edits after reporting the
        // change: they survive a closed stdout (`outln!`) instead of
        // being killed half-way.
        // `capture` flushes its pcap file and reports its counts when the
        // reader of stdout goes.
        Command::Test(_)
        | Command::Apply(_)
        | Command::Scale(_)
        | Command::Delete(_)
        | Command::ApiWrite(_)
        | Command::Capture(_) => {}
        // Every other command only prints after its work is done: a reader
        // that stops early (`| head`) ends it as it ends coreutils.
        _ => restore_sigpipe(),
    }
    init_logging(cli.verbose);
    // While an exercise runs on the lab, its rules and journal see first.
    let result = exercise::gate(&raw).and_then(|()| match cli.command {
        Command::Up(a) => up::run(a),
        Command::Down(a) => down::run(a),
        Command::Ls(a) => ls::run(a),
        Command::Get(a) => get::run(a),
        Command::Exec(a) => exec::run(a),
        Command::Dns(a) => dns::run(a),
        Command::Delete(a) => delete::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Scale(a) => scale::run(a),
        Command::Diagnose(a) => diagnose::run(a),

        Command::Trace(a) => trace::run(a),
        Command::Graph(a) => graph::run(a),
        Command::Capture(a) => capture::run(a),
        Command::Ui(a) => ui::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Test(a) => test::run(a),
        Command::Fault(a) => fault::run(a),
        Command::Exercise(a) => exercise::run(a),
        Command::Kubeconfig(a) => kubeconfig::run(a),
        Command::Logs(a) => logs::run(a),
        Command::Kubectl(a) => kubectl::run(a),
        Command::ApiWrite(a) => api_write::run(a),
        Command::Completion(a) => completion::run(a),
        Command::Man(a) => completion::man(a),
    });
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            errln!("{}: {}", paint_err("error", "1;31"), visible(&e.message));
            if let Some(h) = &e.hint {
                errln!("  {}: {}", paint_err("hint", "1;36"), visible(h));
            }
            e.code
        }
    };
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        // What the reader missed is gone; end as a command killed by
        // SIGPIPE does, now that the work (and its cleanup) is done.
        restore_sigpipe();
        // SAFETY: raising a signal whose action is the default.
        unsafe { libc::raise(libc::SIGPIPE) };
    }
    ExitCode::from(code)
}

/// `podlab __daemon LAB`, as `up` starts it. SIGPIPE stays ignored: its
/// output is a log file, and it must never die of a reader going away.
fn daemon(args: &[std::ffi::OsString]) -> ExitCode {
    init_logging(0);
    // `__daemon -- LAB` as a parser would take it, too.
    let args = match args {
        [dashes, rest @ ..] if dashes == "--" => rest,
        all => all,
    };
    let lab = match args {
        [lab] => lab.to_string_lossy().into_owned(),
        _ => {
            eprintln!("error: usage: podlab {DAEMON_ARG} LAB (started by `podlab up`)");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let lab = match crate::state::LabName::parse(&lab) {
        Ok(l) => l,
        Err(e) => {
            errln!("error: {}", visible(&e.to_string()));
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    match crate::runtime::run_daemon(&crate::state::dir(&lab)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(exit::BAD_INPUT)
        }
    }
}

/// `text` with its control characters (but newlines and tabs) written as
/// escapes: an error quotes what the user typed or a file held, and an
/// escape sequence in a lab name must not repaint the user's terminal.
pub fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A parse error: a kubectl habit gets what podlab offers instead, the
/// rest clap's own message; help and version go to stdout with status 0.
fn parse_error(raw: &[std::ffi::OsString], e: &clap::Error) -> ExitCode {
    if !e.use_stderr() {
        restore_sigpipe();
        let _ = e.print();
        return ExitCode::from(exit::OK);
    }
    let words: Vec<String> = raw
        .iter()
        .skip(1)
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    if let Some(h) = habits::answer(&words) {
        errln!("{}: {}", paint_err("error", "1;31"), visible(h.message));
        errln!("  {}: {}", paint_err("hint", "1;36"), visible(h.hint));
        return ExitCode::from(exit::BAD_INPUT);
    }
    let _ = e.print();
    ExitCode::from(exit::BAD_INPUT)
}

/// Rust starts with SIGPIPE ignored, which turns a closed stdout into a
/// `println!` panic; the default action ends the process quietly.
fn restore_sigpipe() {
    // SAFETY: setting a signal's action to the default, before threads
    // that could rely on it exist.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Set once stdout turned out closed (`out!`): later output is dropped
/// and the command ends by SIGPIPE after its cleanup.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Write to stdout for a command that must finish its work even when the
/// reader has gone (`podlab test ... | head`): a closed pipe is noted,
/// not a panic.
pub fn write_out(args: fmt::Arguments) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// Generated text (a script, a man page) on stdout.
pub fn write_bytes(data: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(data)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::new(format!("cannot write to stdout: {e}")))
}

/// `eprintln!` that survives a closed stderr (`2>&1 | head` under
/// `test`, which ignores SIGPIPE): the message is lost, not a panic.
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}
pub(crate) use errln;

/// `println!` through `write_out`.
macro_rules! outln {
    () => { $crate::cli::write_out(format_args!("\n")) };
    ($($t:tt)*) => { $crate::cli::write_out(format_args!("{}\n", format_args!($($t)*))) };
}
pub(crate) use outln;

/// `print!` through `write_out`.
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::write_out(format_args!($($t)*)) };
}
pub(crate) use out;

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PODLAB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("podlab={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(Stream::Stderr))
        .try_init();
}

/// Which stream a piece of text is bound for: colour is decided by the
/// stream it is printed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether escape sequences may go to `stream`: a terminal that is not
/// `TERM=dumb`. Cursor control (`up`'s progress line) needs this much.
pub fn terminal(stream: Stream) -> bool {
    let tty = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    tty && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Whether `stream` gets colour: a capable terminal, and no NO_COLOR
/// (set to anything non-empty, as no-color.org says).
pub fn colour(stream: Stream) -> bool {
    terminal(stream) && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in colour for stdout, where commands print their data.
pub fn paint(text: &str, sgr: &str) -> String {
    paint_on(Stream::Stdout, text, sgr)
}

/// `text` in colour for stderr (errors, hints, warnings).
pub fn paint_err(text: &str, sgr: &str) -> String {
    paint_on(Stream::Stderr, text, sgr)
}

fn paint_on(stream: Stream, text: &str, sgr: &str) -> String {
    if colour(stream) {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Everything that changes the kernel needs root; say so in one line.
pub fn require_root(what: &str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(CliError::new(format!(
            "podlab {what} needs root: it makes network namespaces"
        ))
        .hint(format!("run it with sudo: sudo podlab {what} ...")))
    }
}

/// What every command that takes a lab has in common, for `--help`.
const LAB_HELP: &str = "\
Choosing a lab: commands about a running lab take --lab LAB; without it they use \
PODLAB_LAB if it is set, else the only lab that is up (with several up, they refuse \
and name them). `export PODLAB_LAB=NAME` picks one lab for a whole shell.
A lab name (LAB, metadata.name) is a DNS-1123 label of 1 to 20 characters: lowercase \
a-z, 0-9 and '-', starting and ending with a letter or digit.";

/// The environment variable that names the lab when `--lab` is not given.
pub const LAB_ENV: &str = "PODLAB_LAB";

/// A lab name from the command line (or `PODLAB_LAB`), checked before it
/// becomes a path: exit 2 with the rule otherwise.
pub fn lab_name(word: &str) -> Result<crate::state::LabName> {
    crate::state::LabName::parse(word)
        .map_err(|e| CliError::new(e.to_string()).hint(crate::state::LAB_NAME_RULE))
}

/// The lab a command is about: the one named (`--lab`, else `PODLAB_LAB`),
/// or the only one running.
pub fn pick_lab(named: Option<&str>) -> Result<crate::state::LabName> {
    let from_env = std::env::var(LAB_ENV).ok().filter(|v| !v.is_empty());
    let (word, source) = match (named, &from_env) {
        (Some(w), _) => (Some(w), None),
        (None, Some(w)) => (Some(w.as_str()), Some(LAB_ENV)),
        (None, None) => (None, None),
    };
    if let Some(word) = word {
        let lab = lab_name(word).map_err(|e| match source {
            Some(var) => CliError {
                message: format!("{var}: {}", e.message),
                ..e
            },
            None => e,
        })?;
        if crate::state::dir(&lab).exists() {
            return Ok(lab);
        }
        let from = source.map_or(String::new(), |v| format!(" (from {v})"));
        return Err(CliError::new(format!("no lab named {lab} is up{from}"))
            .hint("`podlab ls` lists the running labs"));
    }
    let labs = crate::state::labs();
    match labs.as_slice() {
        [] => Err(CliError::new("no lab is up")
            .hint("start one with `sudo podlab up` (the demo lab) or `sudo podlab up FILE`")),
        [one] => Ok(one.clone()),
        many => {
            let names: Vec<&str> = many.iter().map(|l| l.as_str()).collect();
            Err(CliError::new(format!(
                "{} labs are up ({}): say which one",
                many.len(),
                names.join(", ")
            ))
            .hint(format!(
                "add --lab {0}, or set {LAB_ENV}={0} for every command",
                many[0]
            )))
        }
    }
}

/// Take the lab's lock for a command that changes it (see `lock`): exit 1
/// when another command holds it for longer than `lock::WAIT`.
pub fn lock_lab(lab: &str, command: &str) -> Result<crate::lock::LabLock> {
    let name = lab_name(lab)?;
    let was_up = crate::state::dir(&name).exists();
    let lock = crate::lock::acquire(&name, command).map_err(|e| {
        CliError::new(error_chain(&e))
            .hint(format!(
                "wait for it to finish, or `sudo podlab down {lab}` (which cancels an `up`)"
            ))
            .code(exit::CHECK_FAILED)
    })?;
    // The command it waited for may have been a `down`.
    if was_up && !crate::state::dir(&name).exists() {
        if !crate::lifecycle::is_up(&name) {
            lock.remove_file();
        }
        return Err(
            CliError::new(format!("lab {lab} was brought down while {command} waited"))
                .hint("`podlab ls` lists the running labs"),
        );
    }
    Ok(lock)
}

/// Load the plan of a running lab.
pub fn load_plan(lab: &str) -> Result<crate::plan::Plan> {
    let lab = lab_name(lab)?;
    crate::state::load(&lab).map_err(|e| {
        CliError::new(format!("cannot read the state of lab {lab}: {e}")).hint(format!(
            "`sudo podlab down {lab}` removes whatever is left of it"
        ))
    })
}
