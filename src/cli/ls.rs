//! `podlab ls`

use super::{exit, table, CliError, Result};
use crate::{lifecycle, state};

/// `ls` has no wide table: its one table already shows everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Json,
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `json` or `yaml` for scripts.
    #[arg(short, long)]
    output: Option<Output>,
}

pub fn run(args: Args) -> Result<u8> {
    let mut rows = Vec::new();
    let mut items = Vec::new();
    // The state is root's (0700): without root a lab's files cannot be
    // read, which says nothing about the lab's health.
    let root = nix::unistd::geteuid().is_root();
    let mut unreadable = 0;
    for lab in lifecycle::all_labs() {
        let loaded = state::load(&lab);
        let daemon = crate::kernel::procs::daemon_pids(&lab).first().copied();
        let status = match (&loaded, daemon) {
            (Ok(_), Some(_)) => "Running",
            (Ok(_), None) => "Degraded (daemon not running)",
            (Err(e), _) if !root || e.kind() == std::io::ErrorKind::PermissionDenied => {
                unreadable += 1;
                if daemon.is_some() {
                    "Unknown (daemon running; only root can read the state)"
                } else {
                    "Unknown (only root can read the state)"
                }
            }
            (Err(_), _) => "Orphaned (no state: podlab down it)",
        };
        let plan = loaded.ok();
        let (nodes, pods, source) = plan
            .as_ref()
            .map(|p| {
                (
                    p.nodes.len().to_string(),
                    p.pods.len().to_string(),
                    p.source.clone(),
                )
            })
            .unwrap_or(("?".into(), "?".into(), "-".into()));
        items.push(serde_json::json!({
            "name": lab, "status": status,
            "nodes": plan.as_ref().map(|p| p.nodes.len()),
            "pods": plan.as_ref().map(|p| p.pods.len()),
            "source": source, "daemonPid": daemon,
        }));
        rows.push(vec![
            lab.to_string(),
            status.into(),
            nodes,
            pods,
            table::age(state::created(&lab)),
            source,
        ]);
    }
    match args.output {
        Some(Output::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        ),
        Some(Output::Yaml) => print!(
            "{}",
            serde_yaml::to_string(&items).map_err(|e| CliError::new(e.to_string()))?
        ),
        None if rows.is_empty() => eprintln!("no lab is up"),
        None => print!(
            "{}",
            table::render(&["NAME", "STATUS", "NODES", "PODS", "AGE", "SOURCE"], &rows)
        ),
    }
    if unreadable > 0 {
        eprintln!(
            "{}: the labs' state is root's: `sudo podlab ls` shows their health",
            super::paint_err("hint", "1;36")
        );
    } else if !root && rows.is_empty() {
        // A non-root user cannot see into the state directory or the
        // labs' namespaces: "no lab" may only mean "none it can see".
        eprintln!(
            "{}: as a user, only labs whose daemon runs are seen: `sudo podlab ls` sees all",
            super::paint_err("hint", "1;36")
        );
    }
    Ok(exit::OK)
}
