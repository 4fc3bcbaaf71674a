//! `podlab ls`

use super::{exit, table, Result};
use crate::{lifecycle, state};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `json` for scripts.
    #[arg(short, long)]
    output: Option<super::Output>,
}

pub fn run(args: Args) -> Result<u8> {
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for lab in lifecycle::all_labs() {
        let plan = state::load(&lab).ok();
        let daemon = crate::kernel::procs::daemon_pids(&lab).first().copied();
        let status = match (&plan, daemon) {
            (Some(_), Some(_)) => "Running",
            (Some(_), None) => "Degraded (daemon not running)",
            (None, _) => "Orphaned (no state: podlab down it)",
        };
        let (nodes, pods, source) = plan
            .as_ref()
            .map(|p| (p.nodes.len(), p.pods.len(), p.source.clone()))
            .unwrap_or((0, 0, "-".into()));
        items.push(serde_json::json!({
            "name": lab, "status": status, "nodes": nodes, "pods": pods,
            "source": source, "daemonPid": daemon,
        }));
        rows.push(vec![
            lab.to_string(),
            status.into(),
            nodes.to_string(),
            pods.to_string(),
            table::age(state::created(&lab)),
            source,
        ]);
    }
    if matches!(args.output, Some(super::Output::Json)) {
        println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
    } else if rows.is_empty() {
        eprintln!("no lab is up");
    } else {
        print!(
            "{}",
            table::render(&["NAME", "STATUS", "NODES", "PODS", "AGE", "SOURCE"], &rows)
        );
    }
    Ok(exit::OK)
}
