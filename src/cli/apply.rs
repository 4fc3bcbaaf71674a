//! `podlab apply FILE`: change the running lab to match an edited lab
//! file, and put back whatever drifted from it.

use std::path::PathBuf;

use super::{exit, load_plan, require_root, CliError, Result};
use crate::lab::{self, LabFile};
use crate::{plan, reconcile, state};

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
    let desired = plan::build_with(file, Some(&current))?;
    tracing::debug!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "apply: planned"
    );
    if let Some(what) = reconcile::incompatible(&current, &desired) {
        return Err(CliError::new(format!(
            "lab {lab}: {what} cannot change while the lab runs"
        ))
        .hint(format!(
            "bring it down and up again: sudo podlab down {lab} && sudo podlab up FILE"
        )));
    }
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
    if json {
        super::outln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let text = reconcile::describe(&report);
        if report.changed_nothing() && report.failed.is_empty() {
            super::outln!("lab {lab} unchanged: it matches the file");
        } else {
            super::out!("{text}");
        }
        super::errln!("applied in {} ms", report.elapsed_ms);
    }
    Ok(if report.failed.is_empty() {
        exit::OK
    } else {
        exit::CHECK_FAILED
    })
}

/// The running lab's file as last applied, with the `scale` and `delete`
/// edits made since.
pub(super) fn running_file(lab: &str) -> Result<(LabFile, state::Edits)> {
    let (origin, text) = state::load_source(lab).map_err(|e| {
        CliError::new(format!("lab {lab} has no saved lab file: {e}"))
            .hint("apply its file once: sudo podlab apply FILE")
    })?;
    let mut file = lab::parse(&origin, &text)?;
    // The lab's own name, which `exercise start --as` may have changed.
    file.lab.name = lab.to_string();
    let edits = state::load_edits(lab)
        .map_err(|e| CliError::new(format!("cannot read the edits of lab {lab}: {e}")))?;
    edit(&mut file, &edits);
    Ok((file, edits))
}

/// Apply `scale`/`delete` edits to a decoded lab file.
pub(super) fn edit(file: &mut LabFile, edits: &state::Edits) {
    for d in &mut file.deployments {
        if let Some(n) = edits.replicas.get(&format!("{}/{}", d.namespace, d.name)) {
            d.replicas = *n;
        }
    }
    file.services.retain(|s| {
        !edits
            .deleted_services
            .contains(&format!("{}/{}", s.namespace, s.name))
    });
    file.policies.retain(|p| {
        !edits
            .deleted_policies
            .contains(&format!("{}/{}", p.namespace, p.name))
    });
}
