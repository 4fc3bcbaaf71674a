//! `podlab logs POD [-c C] [-f] [--tail N] [--previous]`: a container's
//! output, read from the same files as `kubectl logs` (`crate::api::logs`).

use std::io::Write;

use super::{exit, load_plan, pick_lab, CliError, Result};
use crate::api::logs::{self, Options};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `POD`, `NS/POD` or `pod/POD`.
    pod: String,
    /// The pod's namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// The container (needed when the pod has more than one).
    #[arg(short, long)]
    container: Option<String>,
    /// Keep printing what the container writes, until it is deleted or ^C.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    tail: Option<i64>,
    /// The output of the container's previous run (before its last restart).
    #[arg(short, long)]
    previous: bool,
    /// The lab (default: the only one up).
    #[arg(long)]
    lab: Option<String>,
}

pub fn run(args: Args) -> Result<u8> {
    let lab = pick_lab(args.lab.as_deref())?;
    let plan = load_plan(&lab)?;
    let word = args.pod.strip_prefix("pod/").unwrap_or(&args.pod);
    let (ns, name) = word
        .split_once('/')
        .unwrap_or((args.namespace.as_str(), word));
    let pod = plan
        .pods
        .iter()
        .find(|p| p.namespace == ns && p.name == name)
        .ok_or_else(|| {
            CliError::new(format!("pod {ns}/{name} not found in lab {lab}"))
                .hint(format!("`podlab get pods -A --lab {lab}` lists them"))
        })?;
    let options = Options {
        container: args.container.clone(),
        // Like kubectl: a negative tail is the whole log.
        tail: args.tail.and_then(|n| usize::try_from(n).ok()),
        previous: args.previous,
        limit_bytes: None,
    };
    let dir = crate::state::dir(&lab);
    let path = logs::file(&dir, pod, &options).map_err(|e| {
        CliError::new(e).hint(format!(
            "`podlab get pod {name} -o json --lab {lab}` lists its containers and restarts"
        ))
    })?;
    let (text, mut end) = logs::read(&path, &options)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    let mut out = std::io::stdout().lock();
    let written = out.write_all(&text).and_then(|()| out.flush());
    if written.is_err() || !args.follow || args.previous {
        return Ok(exit::OK);
    }
    let (ns, name) = (pod.namespace.clone(), pod.name.clone());
    for round in 1u64.. {
        std::thread::sleep(logs::FOLLOW_POLL);
        let more = logs::more(&path, &mut end)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
        // The plan is read about once a second: a big lab's takes a while.
        if more.is_empty() && round % 20 == 0 {
            let still = load_plan(&lab)
                .map(|p| p.pods.iter().any(|p| p.namespace == ns && p.name == name))
                .unwrap_or(false);
            if !still {
                return Ok(exit::OK);
            }
            continue;
        }
        if more.is_empty() {
            continue;
        }
        // A closed pipe (`| head`) ends the follow quietly.
        if out.write_all(&more).and_then(|()| out.flush()).is_err() {
            return Ok(exit::OK);
        }
    }
    Ok(exit::OK)
}
