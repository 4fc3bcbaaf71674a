//! A running lab's state on disk: `/run/podlab/<lab>/` (root only, 0700),
//! holding the plan as applied, the daemon's readiness and its logs.
//!
//! `/run` is a tmpfs: the state goes away with a reboot, as do the
//! namespaces it describes.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::plan::{Plan, PLAN_VERSION};

pub const STATE_ROOT: &str = "/run/podlab";

pub fn dir(lab: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(lab)
}

pub fn plan_path(lab: &str) -> PathBuf {
    dir(lab).join("plan.json")
}

/// Create the state directory and save the plan in it, before any kernel
/// object is made, so that `down` knows the lab even if `up` dies.
pub fn create(plan: &Plan) -> io::Result<PathBuf> {
    let root = Path::new(STATE_ROOT);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o700))?;
    let dir = dir(&plan.lab);
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    fs::create_dir_all(dir.join("logs"))?;
    let json = serde_json::to_vec_pretty(plan).map_err(io::Error::other)?;
    write_atomic(&plan_path(&plan.lab), &json)?;
    Ok(dir)
}

pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)
}

/// The saved plan of a lab, if its state exists and is readable.
pub fn load(lab: &str) -> io::Result<Plan> {
    let data = fs::read(plan_path(lab))?;
    let plan: Plan = serde_json::from_slice(&data).map_err(io::Error::other)?;
    if plan.version != PLAN_VERSION {
        return Err(io::Error::other(format!(
            "state of lab {lab} was written by another podlab version (plan format {})",
            plan.version
        )));
    }
    Ok(plan)
}

/// When the lab was brought up (the state directory's creation).
pub fn created(lab: &str) -> Option<SystemTime> {
    fs::metadata(plan_path(lab)).and_then(|m| m.modified()).ok()
}

/// Labs that have a state directory.
pub fn labs() -> Vec<String> {
    let Ok(rd) = fs::read_dir(STATE_ROOT) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

pub fn remove(lab: &str) -> io::Result<()> {
    match fs::remove_dir_all(dir(lab)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        r => r?,
    }
    // The last lab leaves no empty directory behind.
    let _ = fs::remove_dir(STATE_ROOT);
    Ok(())
}
