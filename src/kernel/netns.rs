//! Named network namespaces, pinned under `/run/netns` the way iproute2 pins
//! them, so that `ip netns exec` works beside podlab.
//!
//! A network namespace belongs to a thread, not a process: every function
//! that enters one does so on the calling thread and restores the thread's
//! own namespace on every path (the `Entered` guard), so callers run them on
//! dedicated or blocking threads, never across an `.await`.

use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::Error;

pub const NETNS_RUN_DIR: &str = "/run/netns";

/// An open handle on a named network namespace.
#[derive(Debug)]
pub struct Netns {
    name: String,
    fd: OwnedFd,
}

/// Whether a name can be a file in `/run/netns` (and `/etc/netns`): not
/// empty, not `.` or `..`, no `/` or NUL, at most 255 bytes. Every function
/// here that touches a path checks it; a plan's names are also checked
/// when it is loaded.
pub fn check_name(name: &str) -> Result<(), Error> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.bytes().any(|c| c == b'/' || c == 0);
    if bad {
        return Err(Error::Netns {
            name: format!("{name:?}"),
            op: "name",
            source: Errno::EINVAL,
        });
    }
    Ok(())
}

/// Where podlab marks the namespaces it made: one hidden file per namespace
/// (`/run/podlab/.<netns>.netns`), holding the namespace's inode, outside
/// any lab's state directory (and not a directory: nothing listing labs
/// takes it for one). Lab
/// state can be lost (removed by hand, unreadable); the mark says a
/// `<lab>-...` namespace is podlab's and not a user's `ip netns add` of the
/// same prefix. The inode makes a stale mark (its namespace removed with
/// `ip netns del`, another made under the name) claim nothing.
const MARKS_DIR: &str = crate::state::STATE_ROOT;

fn mark_path(name: &str) -> PathBuf {
    Path::new(MARKS_DIR).join(format!(".{name}.netns"))
}

fn inode_of(name: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(Netns::path(name)).ok()?;
    Some(format!("{}:{}", m.dev(), m.ino()))
}

fn mark(name: &str) {
    use std::os::unix::fs::DirBuilderExt;
    let Some(inode) = inode_of(name) else { return };
    let made = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(MARKS_DIR)
        .and_then(|()| fs::write(mark_path(name), inode));
    if let Err(e) = made {
        tracing::warn!(netns = name, "cannot mark the namespace as podlab's: {e}");
    }
}

fn unmark(name: &str) {
    let _ = fs::remove_file(mark_path(name));
    // The last of everything podlab keeps there leaves no empty directory.
    let _ = fs::remove_dir(MARKS_DIR);
}

/// Whether podlab made this namespace (its mark holds its inode).
pub fn made_by_podlab(name: &str) -> bool {
    check_name(name).is_ok()
        && fs::read_to_string(mark_path(name))
            .ok()
            .is_some_and(|m| Some(m.trim().to_string()) == inode_of(name))
}

/// Namespaces this process created, so that rolling back a failed `up`
/// removes those and nothing else (a name that already existed belongs to
/// someone else, even when the plan names it).
static CREATED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Names this process has created (and not removed since), in order.
pub fn created_here() -> Vec<String> {
    CREATED.lock().map(|v| v.clone()).unwrap_or_default()
}

impl Netns {
    /// The pin of a namespace. Callers pass names already checked (a
    /// loaded plan's, or through `check_name`).
    pub fn path(name: &str) -> PathBuf {
        Path::new(NETNS_RUN_DIR).join(name)
    }

    pub fn open(name: &str) -> Result<Netns, Error> {
        check_name(name)?;
        let file = File::open(Self::path(name)).map_err(|e| Error::Netns {
            name: name.to_string(),
            op: "open",
            source: io_errno(&e),
        })?;
        Ok(Netns {
            name: name.to_string(),
            fd: file.into(),
        })
    }

    pub fn exists(name: &str) -> bool {
        check_name(name).is_ok() && Self::path(name).exists()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Move the calling thread into this namespace until the guard drops.
    pub fn enter(&self) -> Result<Entered, Error> {
        let home = current_thread_netns()?;
        setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Netns {
            name: self.name.clone(),
            op: "enter",
            source: e,
        })?;
        Ok(Entered { home })
    }
}

/// The calling thread is inside a namespace; dropping this returns it home.
#[must_use = "the thread leaves the namespace when this is dropped"]
pub struct Entered {
    home: OwnedFd,
}

impl Drop for Entered {
    fn drop(&mut self) {
        // Failing to return would leave a pool thread in a lab namespace,
        // where later work would silently happen: better to stop here.
        if let Err(e) = setns(self.home.as_fd(), CloneFlags::CLONE_NEWNET) {
            panic!("cannot return thread to its network namespace: {e}");
        }
    }
}

fn current_thread_netns() -> Result<OwnedFd, Error> {
    let file = File::open("/proc/thread-self/ns/net").map_err(|e| Error::Netns {
        name: "self".into(),
        op: "open",
        source: io_errno(&e),
    })?;
    Ok(file.into())
}

/// Make `/run/netns` a shared mount point, as `ip netns add` does, so that a
/// namespace pinned there is visible to processes in other mount namespaces.
pub fn prepare_run_dir() -> Result<(), Error> {
    let dir = Path::new(NETNS_RUN_DIR);
    fs::create_dir_all(dir).map_err(|e| Error::Io {
        what: format!("create {NETNS_RUN_DIR}"),
        source: e,
    })?;
    let shared = |flags| mount(None::<&str>, dir, None::<&str>, flags, None::<&str>);
    match shared(MsFlags::MS_SHARED | MsFlags::MS_REC) {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it onto itself first, like iproute2.
        Err(Errno::EINVAL) => mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .and_then(|()| shared(MsFlags::MS_SHARED | MsFlags::MS_REC))
        .map_err(|e| Error::Netns {
            name: NETNS_RUN_DIR.into(),
            op: "make shared",
            source: e,
        }),
        Err(e) => Err(Error::Netns {
            name: NETNS_RUN_DIR.into(),
            op: "make shared",
            source: e,
        }),
    }
}

/// Create and pin a new namespace. The calling thread passes through it and
/// comes back to where it was.
pub fn create(name: &str) -> Result<Netns, Error> {
    check_name(name)?;
    let path = Netns::path(name);
    let err = |op: &'static str| {
        let name = name.to_string();
        move |source: Errno| Error::Netns { name, op, source }
    };
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)
        .map_err(|e| err("create")(io_errno(&e)))?;
    let pinned = (|| {
        let home = current_thread_netns()?;
        unshare(CloneFlags::CLONE_NEWNET).map_err(err("unshare"))?;
        let bound = mount(
            Some("/proc/thread-self/ns/net"),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(err("pin"));
        // The thread goes home even when pinning failed.
        setns(home.as_fd(), CloneFlags::CLONE_NEWNET).map_err(err("return from"))?;
        bound
    })();
    if let Err(e) = pinned {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    if let Ok(mut made) = CREATED.lock() {
        made.push(name.to_string());
    }
    mark(name);
    Netns::open(name)
}

/// Unpin a namespace. Missing is success: teardown must be idempotent.
pub fn remove(name: &str) -> Result<(), Error> {
    check_name(name)?;
    let path = Netns::path(name);
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::Netns {
                name: name.into(),
                op: "unpin",
                source: e,
            })
        }
    }
    if let Ok(mut made) = CREATED.lock() {
        made.retain(|n| n != name);
    }
    unmark(name);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Netns {
            name: name.into(),
            op: "remove",
            source: io_errno(&e),
        }),
    }
}

/// Names of pinned namespaces starting with `prefix`.
pub fn list(prefix: &str) -> Vec<String> {
    let Ok(dir) = fs::read_dir(NETNS_RUN_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// Run `f` with the calling thread inside the named namespace.
pub fn run_in<T>(name: &str, f: impl FnOnce() -> T) -> Result<T, Error> {
    let ns = Netns::open(name)?;
    let _entered = ns.enter()?;
    Ok(f())
}

pub(crate) fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}
