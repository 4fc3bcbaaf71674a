//! `podlab down [LAB] [--all]`

use super::{exit, lab_name, require_root, CliError, Result, LAB_ENV};
use crate::lifecycle;
use crate::state::LabName;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
LAB is a DNS-1123 label of 1 to 20 characters (a-z, 0-9, '-'; starting and ending \
with a letter or digit); anything else is refused before a path is made of it.
Without LAB: the lab named by PODLAB_LAB, else the only lab up; with several up and \
no PODLAB_LAB, down refuses and names them.
A running `up` of the lab is cancelled (it removes what it made); any other command \
changing the lab is waited for.")]
pub struct Args {
    /// The lab to remove (default: PODLAB_LAB, else the only one up).
    lab: Option<String>,
    /// Remove every lab on this host, and podlab's /etc/netns leftovers.
    #[arg(long, conflicts_with = "lab")]
    all: bool,
}

pub fn run(args: Args) -> Result<u8> {
    // The name is checked before anything else, root included: a word
    // that is not a lab name is exit 2 whoever runs it.
    let from_env = std::env::var(LAB_ENV).ok().filter(|v| !v.is_empty());
    let named = match (&args.lab, &from_env, args.all) {
        (Some(w), _, _) => Some(lab_name(w)?),
        (None, Some(w), false) => Some(lab_name(w).map_err(|e| CliError {
            message: format!("{LAB_ENV}: {}", e.message),
            ..e
        })?),
        _ => None,
    };
    require_root("down")?;
    let labs = if args.all {
        lifecycle::all_labs()
    } else if let Some(lab) = named {
        // Named: removed even with no state left, from its names.
        if !lifecycle::has_trace(&lab) {
            let from = if args.lab.is_none() {
                format!(" (from {LAB_ENV})")
            } else {
                String::new()
            };
            let theirs = crate::kernel::teardown::not_ours(&lab);
            let hint = if theirs.is_empty() {
                "`podlab ls` lists the running labs".to_string()
            } else {
                format!(
                    "{} {} named like the lab's but not made by podlab, and left alone",
                    theirs.join(", "),
                    if theirs.len() == 1 { "is" } else { "are" }
                )
            };
            return Err(CliError::new(format!("no lab named {lab} is up{from}")).hint(hint));
        }
        vec![lab]
    } else {
        let all = lifecycle::all_labs();
        match all.len() {
            0 => return Err(CliError::new("no lab is up")),
            1 => all,
            _ => {
                let names: Vec<&str> = all.iter().map(LabName::as_str).collect();
                return Err(
                    CliError::new(format!("several labs are up ({})", names.join(", ")))
                        .hint("name one (`podlab down LAB`) or use --all"),
                );
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
        if !report.left_alone.is_empty() {
            eprintln!(
                "note: lab {lab}: left alone {}, named like the lab's but not made by podlab",
                report.left_alone.join(", ")
            );
        }
        eprintln!(
            "lab {lab} is down ({} namespaces removed)",
            report.namespaces
        );
    }
    if args.all {
        let (removed, errors) = lifecycle::remove_stray_etc();
        for e in &errors {
            eprintln!("warning: {e}");
        }
        failed |= !errors.is_empty();
        if removed > 0 {
            eprintln!("removed {removed} /etc/netns entries left by labs that are gone");
        }
    }
    if failed {
        return Err(
            CliError::new("some objects could not be removed (see above)")
                .hint("run `podlab down` again; it only removes what is left"),
        );
    }
    Ok(exit::OK)
}
