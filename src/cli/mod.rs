//! Command-line edge: argument parsing, dispatch, and how errors are shown.
//! One file per command; each only parses, calls, and prints.

mod apply;
mod delete;
mod diagnose;
mod dns;
mod down;
mod exec;
mod exercise;
mod fault;

mod get;
mod get_netpol;
mod ls;
mod scale;
mod table;
mod test;
mod trace;
mod up;
mod validate;

use std::fmt;
use std::io::IsTerminal;
use std::process::ExitCode;

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
    /// The per-lab daemon (started by `up`).
    #[command(name = DAEMON_ARG, hide = true)]
    Daemon { lab: String },
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

impl From<crate::lab::LabError> for CliError {
    fn from(e: crate::lab::LabError) -> Self {
        // Diagnostics carry their own file:line:column and hints.
        CliError::new(e.to_string())
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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.verbose);
    let result = match cli.command {
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
        Command::Validate(a) => validate::run(a),
        Command::Test(a) => test::run(a),
        Command::Fault(a) => fault::run(a),
        Command::Exercise(a) => exercise::run(a),
        Command::Daemon { lab } => run_daemon(&lab),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}: {}", paint("error", "1;31"), e.message);
            if let Some(h) = &e.hint {
                eprintln!("  {}: {h}", paint("hint", "1;36"));
            }
            ExitCode::from(e.code)
        }
    }
}

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
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Colour only on a terminal, and never when NO_COLOR is set.
pub fn paint(text: &str, sgr: &str) -> String {
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
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

/// The hidden `__daemon LAB`: its name is checked like any other before it
/// names the state directory.
fn run_daemon(lab: &str) -> Result<u8> {
    let lab = lab_name(lab)?;
    crate::runtime::run_daemon(&crate::state::dir(&lab))
        .map(|()| exit::OK)
        .map_err(|e| CliError::new(error_chain(&e)))
}
