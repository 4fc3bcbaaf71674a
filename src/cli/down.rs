//! `podlab down [LAB] [--all]`

use super::{exit, require_root, CliError, Result};
use crate::lifecycle;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab to remove (default: the only one up).
    lab: Option<String>,
    /// Remove every lab on this host.
    #[arg(long, conflicts_with = "lab")]
    all: bool,
}

pub fn run(args: Args) -> Result<u8> {
    require_root("down")?;
    let labs = if args.all {
        lifecycle::all_labs()
    } else if let Some(lab) = args.lab {
        // Named explicitly: removed even with no state left, from its names.
        if !lifecycle::is_up(&lab) && crate::kernel::netns::list(&format!("{lab}-")).is_empty() {
            return Err(CliError::new(format!("no lab named {lab} is up"))
                .hint("`podlab ls` lists the running labs"));
        }
        vec![lab]
    } else {
        let all = lifecycle::all_labs();
        match all.len() {
            0 => return Err(CliError::new("no lab is up")),
            1 => all,
            _ => {
                return Err(
                    CliError::new(format!("several labs are up ({})", all.join(", ")))
                        .hint("name one (`podlab down LAB`) or use --all"),
                )
            }
        }
    };
    let mut failed = false;
    for lab in labs {
        let report = lifecycle::down(&lab);
        for e in &report.errors {
            eprintln!("warning: lab {lab}: {e}");
        }
        failed |= !report.errors.is_empty();
        eprintln!(
            "lab {lab} is down ({} namespaces removed)",
            report.namespaces
        );
    }
    if failed {
        return Err(
            CliError::new("some objects could not be removed (see above)")
                .hint("run `podlab down` again; it only removes what is left"),
        );
    }
    Ok(exit::OK)
}
