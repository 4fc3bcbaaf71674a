//! `podlab exec TARGET -- CMD...`: run a command inside a pod (`POD` with
//! `-n NS`, `NS/POD` or `pod/POD`), a node (`node/NAME`), `external` or
//! `lb`.
//!
//! The command replaces podlab (no child to wait for): the terminal, the
//! exit code and signals are the command's own, so it is interactive when a
//! terminal is attached.

use std::os::unix::process::CommandExt;
use std::process::Command;

use super::{load_plan, pick_lab, CliError, Result};
use crate::plan::Plan;
use crate::runtime::{self, PreparedExec};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `POD`, `NS/POD`, `pod/POD`, `pod/NS/POD`, `node/NODE`, `external`
    /// or `lb`.
    target: String,
    /// The pod's namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The lab (default: the only one up).
    #[arg(long)]
    lab: Option<String>,
    /// Accepted for kubectl muscle memory: the terminal decides.
    #[arg(short = 'i', long, hide = true)]
    stdin: bool,
    #[arg(short = 't', long, hide = true)]
    tty: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Resolve a target into what entering it needs, with the grammar every
/// command shares (`crate::target`): POD, NS/POD, pod/NAME, pod/NS/NAME,
/// node/NODE, external, lb.
fn resolve(plan: &Plan, target: &str, namespace: &str) -> Result<PreparedExec> {
    use crate::observe::target::{self, From};
    let from = match target::source_of(plan, target, namespace) {
        Ok(from) => from,
        // A bare name that can only mean a node: run there, and show the
        // spelling that stays unambiguous if a pod of that name appears.
        Err(e) => match plan.node(target) {
            Some(node) if !plan.pods.iter().any(|p| p.name == target) => {
                eprintln!("podlab: {target} is a node: running on node/{target}");
                From::Node(node)
            }
            _ => return Err(e.into()),
        },
    };
    Ok(match from {
        From::Node(n) => runtime::node_exec_setup(n),
        From::Client(c) => runtime::netns_exec_setup(&c.netns, &c.name),
        From::Pod(p) => runtime::pod_exec_setup(p),
    })
}

pub fn run(args: Args) -> Result<u8> {
    // The word first: a misspelt one is the same error with or without a lab.
    crate::target::parse(&args.target, crate::target::Role::Source)?;
    super::require_root("exec")?;
    let lab = pick_lab(args.lab.as_deref())?;
    let plan = load_plan(&lab)?;
    let prepared = resolve(&plan, &args.target, &args.namespace)?;
    let service_env = pod_service_env(&plan, &args.target, &args.namespace);
    // Namespaces are entered by this very thread, which then becomes the
    // command: no threads exist yet, which unsharing a mount namespace needs.
    prepared.pre_exec().map_err(|e| {
        CliError::new(format!("cannot enter {}: {e}", args.target)).hint(format!(
            "is lab {lab} healthy? `podlab get pods --lab {lab}`"
        ))
    })?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::new("no command given after --"))?;
    let err = Command::new(program)
        .args(rest)
        .envs(service_env)
        .env("HOSTNAME", prepared.hostname_str())
        .exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    Err(
        CliError::new(format!("cannot run {program} in {}: {err}", args.target))
            .hint("the command runs from the host's filesystem: is it installed on this machine?")
            .code(code),
    )
}

/// The services' variables kubelet gives a pod's containers (`kubectl exec`
/// sees them), for a pod target; none for nodes and clients.
fn pod_service_env(plan: &Plan, target: &str, namespace: &str) -> Vec<(String, String)> {
    match crate::observe::target::source(plan, target, namespace) {
        Ok(crate::observe::target::From::Pod(p)) => crate::plan::env::service_env(plan, p),
        _ => Vec::new(),
    }
}
