//! The only module that touches the kernel: namespaces, links, addresses and
//! routes through rtnetlink, sysctls, and the processes that hold a lab's
//! namespaces.

pub mod apply;
pub mod change;
pub mod conntrack;
pub mod counters;
pub mod inspect;
pub mod netns;
pub mod nft;
pub mod objects;
pub mod packet;
pub mod procs;
pub mod route;
pub mod rules;
pub mod services;
pub mod sysctl;
pub mod teardown;

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network namespace {name}: cannot {op}: {source}")]
    Netns {
        name: String,
        op: &'static str,
        #[source]
        source: Errno,
    },
    #[error("{what} in {netns}: {source}")]
    Netlink {
        netns: String,
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nftables in {netns}: {message}")]
    Nft { netns: String, message: String },
    #[error(
        "`{tool}` is not installed: install the `{package}` package (apt-get install {package})"
    )]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("sysctl {key} in {netns}: {source}")]
    Sysctl {
        netns: String,
        key: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The errno the kernel answered, where there is one: "exists" can mean
    /// adopt and "missing" can mean done.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Netns { source, .. } => Some(*source),
            Error::Netlink {
                source: rtnetlink::Error::NetlinkError(m),
                ..
            } => m.code.map(|c| Errno::from_raw(-c.get())),
            Error::Io { source, .. } | Error::Sysctl { source, .. } => {
                source.raw_os_error().map(Errno::from_raw)
            }
            _ => None,
        }
    }
}
