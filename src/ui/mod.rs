//! `podlab ui`: a page on 127.0.0.1 that shows a running lab as `graph`
//! draws it, the details of a part on a click, a trace drawn on the
//! picture, a capture, and a running exercise's checks and hints.
//!
//! Everything comes from the same library calls as the commands (`graph`,
//! `trace`, `capture`, `exercise`); this module only serves them. The page
//! is one file embedded in the binary (no CDN, nothing to install). Every
//! request needs the random token of the URL printed at start (a page of
//! another site cannot guess it) and a Host of 127.0.0.1 or localhost (a
//! rebound DNS name is refused).
//!
//! The kernel is read on plain threads, never on the runtime's: a
//! namespace is entered per thread, and `trace` and `exercise check` run
//! runtimes of their own.

mod data;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::state::LabName;

/// The page: HTML, CSS and script in one file.
const PAGE: &str = include_str!("page.html");

/// How often the lab is read again for the live picture.
pub const REFRESH: Duration = Duration::from_secs(1);

type Body = BoxBody<Bytes, Infallible>;

struct Ui {
    lab: LabName,
    token: String,
    port: u16,
    /// The latest picture and exercise, as the events send them.
    latest: watch::Receiver<Arc<String>>,
}

/// 128 random bits from the kernel, in hex.
pub fn token() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Serve the page of `lab` on 127.0.0.1:`port` (0: any free port) until
/// Ctrl-C; `announce` gets the URL once the socket listens.
pub fn serve(lab: LabName, port: u16, announce: impl FnOnce(&str)) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let port = listener.local_addr()?.port();
        let token = token()?;
        // The first state before the URL is given: the page's first
        // request is answered at once.
        let first = data::blocking({
            let lab = lab.clone();
            move || data::state(&lab)
        })
        .await;
        let (tx, rx) = watch::channel(Arc::new(first));
        tokio::spawn(watch_lab(lab.clone(), tx));
        let ui = Arc::new(Ui {
            lab,
            token,
            port,
            latest: rx,
        });
        announce(&format!("http://127.0.0.1:{port}/?token={}", ui.token));
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => r?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            let ui = ui.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let ui = ui.clone();
                    async move { Ok::<_, Infallible>(handle(ui, req).await) }
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!("ui connection: {e}");
                }
            });
        }
    })
}

/// Read the lab again every `REFRESH`; a change is sent to every page.
async fn watch_lab(lab: LabName, tx: watch::Sender<Arc<String>>) {
    loop {
        tokio::time::sleep(REFRESH).await;
        let lab = lab.clone();
        let now = data::blocking(move || data::state(&lab)).await;
        if **tx.borrow() != now {
            // No page listening is no reason to stop.
            let _ = tx.send(Arc::new(now));
        }
    }
}

fn respond(status: StatusCode, kind: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_response(v: &Value) -> Response<Body> {
    let status = if v.get("error").is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    respond(status, "application/json", v.to_string())
}

/// `a=b&c=d`, percent-decoded (`+` is a space).
pub fn query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = match (b[i], b.get(i + 1), b.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (escaped, b[i]) {
            (Some(x), _) => {
                out.push(x);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, c) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Same length and bytes, in a time that does not depend on where they
/// differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether the request may be answered: the page's own host and the token.
fn allowed(
    ui: &Ui,
    req: &Request<Incoming>,
    q: &HashMap<String, String>,
) -> Result<(), &'static str> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let ours = [
        format!("127.0.0.1:{}", ui.port),
        format!("localhost:{}", ui.port),
    ];
    if !ours.iter().any(|h| h == host) {
        return Err("this page answers only at 127.0.0.1 (Host header)");
    }
    match q.get("token") {
        Some(t) if same(t, &ui.token) => Ok(()),
        Some(_) => Err("wrong token: use the URL `podlab ui` printed"),
        None => Err("no token: use the URL `podlab ui` printed (it ends in ?token=...)"),
    }
}

async fn handle(ui: Arc<Ui>, req: Request<Incoming>) -> Response<Body> {
    let q = query(req.uri().query());
    if let Err(why) = allowed(&ui, &req, &q) {
        let status = if q.contains_key("token") {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        return respond(status, "text/plain; charset=utf-8", format!("{why}\n"));
    }
    let path = req.uri().path().to_string();
    let lab = ui.lab.clone();
    let get = |q: &HashMap<String, String>, k: &str| q.get(k).cloned().unwrap_or_default();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/") => respond(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        (&Method::GET, "/api/state") => respond(
            StatusCode::OK,
            "application/json",
            ui.latest.borrow().as_str().to_string(),
        ),
        (&Method::GET, "/api/events") => events(ui.latest.clone()),
        (&Method::GET, "/api/details") => {
            let part = get(&q, "part");
            json_response(&data::blocking(move || data::details(&lab, &part)).await)
        }
        (&Method::GET, "/api/trace") => {
            let (from, to) = (get(&q, "from"), get(&q, "to"));
            json_response(&data::blocking(move || data::trace(&lab, &from, &to)).await)
        }
        (&Method::GET, "/api/capture") => {
            let ask = data::CaptureAsk {
                target: get(&q, "target"),
                interface: q.get("interface").filter(|s| !s.is_empty()).cloned(),
                seconds: get(&q, "seconds").parse().unwrap_or(2.0),
                count: get(&q, "count").parse().unwrap_or(50),
                filter: get(&q, "filter"),
            };
            json_response(&data::blocking(move || data::capture(&lab, &ask)).await)
        }
        (&Method::POST, "/api/exercise/hint") => {
            json_response(&data::blocking(move || data::next_hint(&lab)).await)
        }
        (&Method::POST, "/api/exercise/check") => {
            json_response(&data::blocking(move || data::check(&lab)).await)
        }
        (_, p) => {
            let mut r = json_response(&json!({"error": format!("no such page: {p}")}));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

/// Server-sent events: the latest state at once, then each change.
fn events(rx: watch::Receiver<Arc<String>>) -> Response<Body> {
    let stream = futures::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let now = rx.borrow_and_update().clone();
        let chunk = Bytes::from(format!("event: state\ndata: {now}\n\n"));
        Some((chunk, (rx, false)))
    })
    .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_split_and_decoded() {
        let q = query(Some(
            "from=default%2Fpod-1&to=svc/kube-dns:53&filter=tcp+port+80&x",
        ));
        assert_eq!(q["from"], "default/pod-1");
        assert_eq!(q["to"], "svc/kube-dns:53");
        assert_eq!(q["filter"], "tcp port 80");
        assert_eq!(q["x"], "");
        // A cut escape is kept as it is, not read past the end.
        assert_eq!(query(Some("a=%4"))["a"], "%4");
        assert_eq!(query(Some("a=%zz"))["a"], "%zz");
    }

    #[test]
    fn tokens_are_compared_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        let t = token().expect("urandom");
        assert_eq!(t.len(), 32);
        assert_ne!(t, token().expect("urandom"));
    }
}
