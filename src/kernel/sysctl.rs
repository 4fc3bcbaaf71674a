//! Network sysctls of the namespace the calling thread is in.
//!
//! `/proc/sys/net` shows the namespace of the thread that opens it, so these
//! are called from a thread inside the lab namespace, never on the host.

use std::path::PathBuf;

use super::Error;

fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Set `key` (dotted, as `sysctl` names it). `netns` is for messages only.
pub fn set(netns: &str, key: &str, value: &str) -> Result<(), Error> {
    std::fs::write(path(key), value).map_err(|source| Error::Sysctl {
        netns: netns.into(),
        key: key.into(),
        source,
    })
}

/// Read `key`, trimmed.
pub fn get(netns: &str, key: &str) -> Result<String, Error> {
    std::fs::read_to_string(path(key))
        .map(|s| s.trim().to_string())
        .map_err(|source| Error::Sysctl {
            netns: netns.into(),
            key: key.into(),
            source,
        })
}
