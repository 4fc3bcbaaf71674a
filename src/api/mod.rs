//! The lab's Kubernetes API: HTTPS on 127.0.0.1, served by the lab's
//! daemon, so that the real kubectl works against a lab (DESIGN.md 3a).
//!
//! This first landing is read-only: discovery, `get`/`list` of pods,
//! nodes, namespaces, services, endpoints and endpointslices (JSON and
//! server-side Tables, label and field selectors), and `exec` over
//! WebSocket. The objects are built from the plan and the daemon's pod
//! table on each request (`objects`), so kubectl and `podlab get` agree.
//!
//! At start the daemon makes a CA, a certificate for 127.0.0.1 and a
//! token (`tls`), binds a free port and writes `kubeconfig` (0600) and
//! `api-port` into the state directory before it reports ready.

pub mod discovery;
mod events;
pub(crate) mod exec;
mod http;
pub mod logs;
pub mod objects;
mod openapi;
pub mod select;
mod store;
pub mod stored;
pub mod tables;
pub mod tls;
mod watches;
mod write;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::runtime::DaemonStatus;

/// The kubeconfig of a running lab, in its state directory.
pub const KUBECONFIG_FILE: &str = "kubeconfig";
/// The API's port, alone on a line.
pub const PORT_FILE: &str = "api-port";

/// Where a lab's kubeconfig is.
pub fn kubeconfig_path(state_dir: &Path) -> PathBuf {
    state_dir.join(KUBECONFIG_FILE)
}

/// The daemon's pod table, as the control socket reports it.
pub type StatusFn = Arc<dyn Fn() -> DaemonStatus + Send + Sync>;

/// Connections served at once; kubectl opens one or two per command.
const MAX_CONNECTIONS: usize = 128;
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, not yet serving, API.
pub struct Bound {
    listener: TcpListener,
    api: Arc<http::Api>,
    acceptor: tokio_rustls::TlsAcceptor,
}

/// Make the credentials, bind 127.0.0.1 on a free port and write the
/// kubeconfig: everything before serving, so that `up` can print the
/// `export KUBECONFIG=` line as soon as the lab is ready.
pub async fn bind(
    state_dir: &Path,
    lab: &str,
    status: StatusFn,
    changes: watch::Receiver<u64>,
) -> Result<Bound, String> {
    let creds = tls::make(lab)?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .map_err(|e| format!("bind 127.0.0.1 for the API: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("the API's port: {e}"))?
        .port();
    let config = tls::kubeconfig(lab, port, &creds.ca_pem, &creds.token);
    write_private(&kubeconfig_path(state_dir), &config)?;
    write_private(&state_dir.join(PORT_FILE), &format!("{port}\n"))?;
    let api = Arc::new(http::Api::new(
        state_dir.to_path_buf(),
        creds.token,
        port,
        status,
        changes,
    ));
    Ok(Bound {
        listener,
        api,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(creds.server)),
    })
}

/// Written 0600 before anything is in it: the kubeconfig holds the token.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    r.map_err(|e| format!("write {}: {e}", path.display()))
}

impl Bound {
    pub fn port(&self) -> u16 {
        self.api.port
    }

    /// Serve until shutdown.
    pub async fn serve(self, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = crate::runtime::stopped(&mut shutdown) => return,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("API accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "API: {MAX_CONNECTIONS} connections open, refusing one");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let api = self.api.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "API TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => return,
                };
                http::serve_connection(api, tls, shutdown).await;
            });
        }
    }
}
#[cfg(test)]
mod tests;
#[cfg(test)]
mod workloads_tests;
