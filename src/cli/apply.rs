//! `podlab apply FILE`: change the running lab to match an edited lab
//! file, and put back whatever drifted from it.

use std::path::PathBuf;

use super::{exit, load_plan, require_root, CliError, Result};
use crate::lab::{self, LabFile};
use crate::{ops, reconcile, state};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab file, edited (or as it was, to repair drift). Without it,
    /// the running lab's own file as last applied: puts the lab back.
    file: Option<PathBuf>,
    /// The lab, without FILE (default: the only one up).
    #[arg(long)]
    lab: Option<String>,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<u8> {
    let Some(path) = &args.file else {
        require_root("apply")?;
        let lab = super::pick_lab(args.lab.as_deref())?;
        let _lock = super::lock_lab(&lab, "apply")?;
        let (file, _) = running_file(&lab)?;
        return apply_file(&lab, &file, args.dry_run, args.json);
    };
    let t = std::time::Instant::now();
    let file = lab::load(path)?;
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "apply: file decoded"
    );
    for w in &file.warnings {
        super::errln!("warning: {w}");
    }
    require_root("apply")?;
    let lab = file.lab.name.clone();
    let _lock = super::lock_lab(&lab, "apply")?;
    if !state::dir_of(&lab).exists() {
        return Err(CliError::new(format!("lab {lab} is not up")).hint(format!(
            "bring it up first: sudo podlab up {}",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    let code = apply_file(&lab, &file, args.dry_run, args.json)?;
    if !args.dry_run {
        // The file is the running lab's from now on: `scale` and `delete`
        // edit from it.
        state::save_source(&lab, &path.display().to_string(), &text)
            .map_err(|e| CliError::new(format!("cannot save the lab file of {lab}: {e}")))?;
    }
    Ok(code)
}

/// Plan `file` against the running lab and apply it (or, with `dry_run`,
/// say what would change). Shared by `apply`, `scale` and `delete`.
pub(super) fn apply_file(lab: &str, file: &LabFile, dry_run: bool, json: bool) -> Result<u8> {
    let t = std::time::Instant::now();
    let current = load_plan(lab)?;
    let desired = ops::plan(lab, file)?;
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "apply: planned"
    );
    if dry_run {
        let d = reconcile::diff(&current, &desired);
        if json {
            super::outln!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
        } else {
            let report = reconcile::Report {
                diff: d,
                ..Default::default()
            };
            let text = reconcile::describe(&report);
            if text.is_empty() {
                super::outln!("no change to the plan (drift is only repaired without --dry-run)");
            } else {
                super::out!("{text}");
            }
        }
        return Ok(exit::OK);
    }
    let report =
        reconcile::apply(lab, &desired).map_err(|e| CliError::new(super::error_chain(&e)))?;
    Ok(print_report(lab, &report, json))
}

/// Say what an apply did; the exit code says whether all of it worked.
pub(super) fn print_report(lab: &str, report: &reconcile::Report, json: bool) -> u8 {
    if json {
        super::outln!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        let text = reconcile::describe(report);
        if report.changed_nothing() && report.failed.is_empty() {
            super::outln!("lab {lab} unchanged: it matches the file");
        } else {
            super::out!("{text}");
        }
        super::errln!("applied in {} ms", report.elapsed_ms);
    }
    if report.failed.is_empty() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    }
}

/// The running lab's file as last applied, with the `scale` and `delete`
/// edits made since.
pub(super) fn running_file(lab: &str) -> Result<(LabFile, state::Edits)> {
    Ok(ops::running_file(lab)?)
}
