//! `podlab api-write --lab LAB`: one write of the lab's Kubernetes API
//! (`ops::Op` as JSON on stdin, `ops::Outcome` as JSON on stdout). The
//! daemon runs it for kubectl's writes; it is hidden from help.

use std::io::Read;

use super::{lock_lab, pick_lab, require_root, CliError, Result};
use crate::ops;

/// No manifest a lab takes comes near this.
const MAX_OP_BYTES: u64 = 4 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab.
    #[arg(long)]
    lab: Option<String>,
}

pub fn run(args: Args) -> Result<u8> {
    require_root("api-write")?;
    let lab = pick_lab(args.lab.as_deref())?;
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_OP_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| CliError::new(format!("read the write from stdin: {e}")))?;
    let op: ops::Op = serde_json::from_str(&text)
        .map_err(|e| CliError::new(format!("the write on stdin is not one podlab knows: {e}")))?;
    let _lock = lock_lab(&lab, "api-write")?;
    let outcome = ops::run(&lab, op);
    super::outln!(
        "{}",
        serde_json::to_string(&outcome).unwrap_or_else(|_| "{}".into())
    );
    Ok(super::exit::OK)
}
