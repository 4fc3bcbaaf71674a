//! `pods/NAME/log`: a container's output, as kubelet serves it (`kubectl
//! logs POD [-c C] [-f] [--tail N] [--previous]`), and the same reads for
//! `podlab logs`.
//!
//! The daemon appends a container's stdout and stderr to
//! `logs/<ns>_<pod>_<container>.log` under the lab's state directory, the
//! echo servers their access log to the file of the container that
//! declared the port; a restart moves the ended run's log to
//! `.previous.log` (`runtime::process`).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

use super::http::{not_found, status_error, Api, Body, Query};
use super::objects::{self, PODS};
use crate::plan::PodPlan;

/// How often a followed log is looked at for more.
pub const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// What to read of a pod's log.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub container: Option<String>,
    pub tail: Option<usize>,
    pub previous: bool,
    pub limit_bytes: Option<usize>,
}

/// The log file of `container` in `pod`, checked as kubelet checks the
/// request. Errors are the message of a 400, as Kubernetes words it.
pub fn file(state_dir: &Path, pod: &PodPlan, o: &Options) -> Result<PathBuf, String> {
    let names = objects::container_names(pod);
    let container = match (&o.container, names.as_slice()) {
        (Some(c), _) if names.contains(&c.as_str()) => c.clone(),
        (Some(c), _) => return Err(format!("container {c} is not valid for pod {}", pod.name)),
        (None, [one]) => one.to_string(),
        (None, _) => {
            return Err(format!(
                "a container name must be specified for pod {}, choose one of: [{}]",
                pod.name,
                names.join(" ")
            ))
        }
    };
    let logs = state_dir.join(crate::runtime::LOG_DIR);
    let path = crate::runtime::process::log_path(&logs, pod, &container);
    if !o.previous {
        return Ok(path);
    }
    let previous = crate::runtime::process::previous_log(&path);
    if previous.exists() {
        Ok(previous)
    } else {
        Err(format!(
            "previous terminated container \"{container}\" in pod \"{}\" not found",
            pod.name
        ))
    }
}

/// The last `tail` lines of `text` (all without a tail).
pub fn tail(text: &[u8], tail: Option<usize>) -> &[u8] {
    let Some(n) = tail else { return text };
    if n == 0 {
        return &text[text.len()..];
    }
    // A final newline ends the last line; it does not start another.
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

/// What the log holds now, per the options, and where it ends (for a
/// follow). A missing file is an empty log: the container wrote nothing.
pub fn read(path: &Path, o: &Options) -> std::io::Result<(Vec<u8>, u64)> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let end = text.len() as u64;
    let mut out = tail(&text, o.tail).to_vec();
    if let Some(limit) = o.limit_bytes {
        out.truncate(limit);
    }
    Ok((out, end))
}

/// What was appended to `path` since `from`; a file that shrank or was
/// replaced (a restart) is read from its start.
pub fn more(path: &Path, from: &mut u64) -> std::io::Result<Vec<u8>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len < *from {
        *from = 0;
    }
    if len == *from {
        return Ok(Vec::new());
    }
    f.seek(SeekFrom::Start(*from))?;
    let mut out = Vec::new();
    f.take(len - *from).read_to_end(&mut out)?;
    *from += out.len() as u64;
    Ok(out)
}

impl Options {
    fn from_query(q: &Query) -> Result<Options, String> {
        let number = |key: &str| -> Result<Option<usize>, String> {
            q.get(key)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("{key}: \"{v}\" is not a number"))
                        .map(|n| usize::try_from(n).ok())
                })
                .transpose()
                .map(Option::flatten)
        };
        Ok(Options {
            container: q
                .get("container")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            // kubectl sends -1 for "all", which is no tail.
            tail: number("tailLines")?,
            previous: q.flag("previous"),
            limit_bytes: number("limitBytes")?,
        })
    }
}

fn bad(msg: &str) -> Response<Body> {
    status_error(StatusCode::BAD_REQUEST, "BadRequest", msg, None)
}

/// `GET /api/v1/namespaces/NS/pods/NAME/log`.
pub fn serve(api: Arc<Api>, ns: &str, name: &str, q: &Query) -> Response<Body> {
    let plan = match api.plan() {
        Ok(p) => p,
        Err(e) => return super::http::internal(&e),
    };
    let Some(pod) = plan
        .pods
        .iter()
        .find(|p| p.namespace == ns && p.name == name)
    else {
        return not_found(&PODS, name);
    };
    let options = match Options::from_query(q) {
        Ok(o) => o,
        Err(e) => return bad(&e),
    };
    let path = match file(&api.state_dir, pod, &options) {
        Ok(p) => p,
        Err(e) => return bad(&e),
    };
    let (text, mut end) = match read(&path, &options) {
        Ok(r) => r,
        Err(e) => return super::http::internal(&format!("read {}: {e}", path.display())),
    };
    let body = if q.flag("follow") && !options.previous {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let key = (ns.to_string(), name.to_string());
        tokio::spawn(async move {
            if !text.is_empty() && tx.send(Bytes::from(text)).await.is_err() {
                return;
            }
            // Until the client leaves or the pod does.
            while !tx.is_closed() {
                tokio::time::sleep(FOLLOW_POLL).await;
                let gone = api.plan().map_or(true, |p| {
                    !p.pods
                        .iter()
                        .any(|p| p.namespace == key.0 && p.name == key.1)
                });
                match more(&path, &mut end) {
                    Ok(b) if !b.is_empty() => {
                        if tx.send(Bytes::from(b)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) if gone => return,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!("follow {}: {e}", path.display());
                        return;
                    }
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
        });
        StreamBody::new(stream).boxed_unsync()
    } else {
        http_body_util::Full::new(Bytes::from(text)).boxed_unsync()
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_counts_lines_from_the_end() {
        let t = b"a\nb\nc\n";
        assert_eq!(tail(t, None), t);
        assert_eq!(tail(t, Some(1)), b"c\n");
        assert_eq!(tail(t, Some(2)), b"b\nc\n");
        assert_eq!(tail(t, Some(9)), t);
        assert_eq!(tail(t, Some(0)), b"");
        assert_eq!(tail(b"a\nb", Some(1)), b"b");
    }

    #[test]
    fn more_reads_what_was_appended_and_restarts_on_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        std::fs::write(&p, "one\n").unwrap();
        let mut end = 4;
        assert!(more(&p, &mut end).unwrap().is_empty());
        std::fs::write(&p, "one\ntwo\n").unwrap();
        assert_eq!(more(&p, &mut end).unwrap(), b"two\n");
        std::fs::write(&p, "3\n").unwrap();
        assert_eq!(more(&p, &mut end).unwrap(), b"3\n");
        std::fs::remove_file(&p).unwrap();
        assert!(more(&p, &mut end).unwrap().is_empty());
    }
}
