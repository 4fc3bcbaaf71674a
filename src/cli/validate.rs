//! `podlab validate FILE`: every check `up` makes before touching the
//! kernel, without root.

use std::path::PathBuf;

use super::{exit, Result};
use crate::{lab, plan};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file to check.
    file: PathBuf,
}

pub fn run(args: Args) -> Result<u8> {
    let parsed = lab::load(&args.file)?;
    let plan = plan::build(&parsed)?;
    for w in &parsed.warnings {
        eprintln!("warning: {w}");
    }
    for ig in &parsed.ignored {
        // The field's name is the file's text: escaped as in every error.
        eprintln!(
            "{}:{}:{}: {}: accepted and ignored (a lab has no use for it)",
            lab::escape(&parsed.source),
            ig.pos.line,
            ig.pos.col,
            lab::escape(&ig.field)
        );
    }
    println!(
        "{}: lab {} is valid: {} nodes, {} pods, {} services, {} network policies",
        lab::escape(&parsed.source),
        plan.lab,
        plan.nodes.len(),
        plan.pods.len(),
        parsed.services.len(),
        parsed.policies.len()
    );
    Ok(exit::OK)
}
