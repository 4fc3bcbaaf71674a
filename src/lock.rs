//! One command at a time changes a lab: a per-lab `flock` on
//! `/run/podlab/.<lab>.lock`.
//!
//! Commands that change a lab (`up`, `down`, `apply`, `scale`, `delete`,
//! `fault`, `exercise`) hold it for as long as they change anything, so two
//! of them never interleave their read-modify-write of the plan, the edits
//! or the faults, and `down` never removes a lab under an `up` that is still
//! making it. The lock file lives outside the lab's state directory, which
//! `down` removes, as a hidden file beside it (a file, not a directory, so
//! that nothing listing labs takes it for one); `down` unlinks the lock file itself while holding it, and
//! every acquirer checks after locking that the file it locked is still the
//! one at the path (else it locked a removed file and tries again), so a
//! waiter is never left holding a lock nobody else can see.
//!
//! The holder writes its pid and command into the file: a waiter says who
//! it waits for, and `down` can cancel an `up`.
//!
//! Within one process the lock is re-entrant (`exercise start` and `test`
//! bring labs up and down through the same calls the commands use): a second
//! acquisition of a lab this process holds only counts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::state::{LabName, STATE_ROOT};

/// How long a command waits for another one on the same lab.
pub const WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lab {lab} is busy: {holder} has held it for more than {}s", waited.as_secs())]
    Busy {
        lab: LabName,
        holder: Holder,
        waited: Duration,
    },
    #[error("cannot lock lab {lab} ({path}): {source}")]
    Io {
        lab: LabName,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Who holds a lab's lock, as it wrote itself into the lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<i32>,
    /// The podlab command (`up`, `apply`, ...).
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let command = if self.command.is_empty() {
            "another podlab command"
        } else {
            &self.command
        };
        match self.pid {
            Some(pid) => write!(f, "\"podlab {command}\" (pid {pid})"),
            None => write!(f, "\"podlab {command}\""),
        }
    }
}

pub fn path(lab: &LabName) -> PathBuf {
    PathBuf::from(STATE_ROOT).join(format!(".{lab}.lock"))
}

/// A lock this process holds: how many guards share it, and the file
/// whose descriptor holds the flock.
struct Held {
    lab: LabName,
    count: usize,
    _file: File,
}

static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<Held>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// A held lab lock; dropping the last one of a process releases it.
#[derive(Debug)]
#[must_use = "the lab is unlocked when this is dropped"]
pub struct LabLock {
    lab: LabName,
}

impl LabLock {
    pub fn lab(&self) -> &LabName {
        &self.lab
    }

    /// Unlink the lock file while holding it (`down`, when the lab is
    /// gone): waiters notice and lock the next file instead.
    pub fn remove_file(&self) {
        let _ = fs::remove_file(path(&self.lab));
        let _ = fs::remove_dir(STATE_ROOT);
    }
}

impl Drop for LabLock {
    fn drop(&mut self) {
        let mut held = held();
        if let Some(h) = held.iter_mut().find(|h| h.lab == self.lab) {
            h.count -= 1;
        }
        // Closing the last descriptor releases the flock.
        held.retain(|h| h.count > 0);
    }
}

/// Lock `lab` for `command`, waiting up to [`WAIT`] for another holder and
/// saying once on stderr whom it waits for.
pub fn acquire(lab: &LabName, command: &str) -> Result<LabLock, Error> {
    acquire_with(lab, command, WAIT, &mut |holder| {
        eprintln!(
            "waiting for {holder}, which is changing lab {lab} (at most {}s)",
            WAIT.as_secs()
        );
    })
}

/// [`acquire`] with its own bound and its own notice (called once, when
/// the lock is found busy).
pub fn acquire_with(
    lab: &LabName,
    command: &str,
    wait: Duration,
    on_busy: &mut dyn FnMut(&Holder),
) -> Result<LabLock, Error> {
    if let Some(h) = held().iter_mut().find(|h| h.lab == *lab) {
        h.count += 1;
        return Ok(LabLock { lab: lab.clone() });
    }
    let io_err = |source| Error::Io {
        lab: lab.clone(),
        path: path(lab),
        source,
    };
    let start = Instant::now();
    let mut told = false;
    let file = loop {
        let file = open(lab).map_err(io_err)?;
        if try_lock(&file).map_err(io_err)? {
            if same_file(&file, lab) {
                break file;
            }
            // Locked a file `down` has just removed: take the new one.
            continue;
        }
        let holder = read_holder(&file);
        if !told {
            on_busy(&holder);
            told = true;
        }
        if start.elapsed() >= wait {
            return Err(Error::Busy {
                lab: lab.clone(),
                holder,
                waited: wait,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    write_holder(&file, command).map_err(io_err)?;
    held().push(Held {
        lab: lab.clone(),
        count: 1,
        _file: file,
    });
    Ok(LabLock { lab: lab.clone() })
}

/// Who holds `lab`'s lock now, if anyone (without waiting).
pub fn holder(lab: &LabName) -> Option<Holder> {
    let file = File::open(path(lab)).ok()?;
    if try_lock(&file).ok()? {
        // Free: our probe releases it when `file` closes.
        return None;
    }
    Some(read_holder(&file))
}

fn open(lab: &LabName) -> io::Result<File> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(STATE_ROOT)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path(lab))
}

fn try_lock(file: &File) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor this function borrows.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

fn same_file(file: &File, lab: &LabName) -> bool {
    match (file.metadata(), fs::metadata(path(lab))) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn write_holder(mut file: &File, command: &str) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}\n{command}", std::process::id())
}

fn read_holder(mut file: &File) -> Holder {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.take(256).read_to_string(&mut text);
    let mut lines = text.lines();
    Holder {
        pid: lines.next().and_then(|l| l.trim().parse().ok()),
        command: lines.next().unwrap_or("").trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn held_lock_names_its_holder_and_nests() {
        if !root() {
            eprintln!("skipping: /run/podlab needs root");
            return;
        }
        let lab = LabName::parse("sa-lock-unit").unwrap();
        let outer = acquire_with(&lab, "up", WAIT, &mut |_| panic!("free")).unwrap();
        let seen = holder(&lab).expect("held");
        assert_eq!(seen.pid, Some(std::process::id() as i32));
        assert_eq!(seen.command, "up");
        assert_eq!(
            seen.to_string(),
            format!("\"podlab up\" (pid {})", std::process::id())
        );
        // Re-entrant within the process: no wait, no second flock.
        let inner = acquire_with(&lab, "down", Duration::ZERO, &mut |_| panic!("nested")).unwrap();
        drop(inner);
        assert!(holder(&lab).is_some(), "still held by the outer guard");
        outer.remove_file();
        drop(outer);
        assert!(holder(&lab).is_none());
        assert!(!path(&lab).exists());
    }
}
