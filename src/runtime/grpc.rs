//! The gRPC health protocol (grpc.health.v1), both ways: the echo answers
//! `Health/Check` over HTTP/2, as Online Boutique's services do, and the
//! prober asks it as kubelet's gRPC probe does. One unary call, hand
//! framed: a 5-byte prefix (compressed flag, big-endian length) and a
//! one-field protobuf message each way; `grpc-status` in the trailers.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `HealthCheckResponse.ServingStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingStatus {
    Unknown,
    Serving,
    NotServing,
    ServiceUnknown,
}

impl ServingStatus {
    fn code(self) -> u8 {
        match self {
            ServingStatus::Unknown => 0,
            ServingStatus::Serving => 1,
            ServingStatus::NotServing => 2,
            ServingStatus::ServiceUnknown => 3,
        }
    }

    fn from_code(c: u64) -> ServingStatus {
        match c {
            1 => ServingStatus::Serving,
            2 => ServingStatus::NotServing,
            3 => ServingStatus::ServiceUnknown,
            _ => ServingStatus::Unknown,
        }
    }
}

/// A response body of at most one chunk and, for gRPC, its trailers: what
/// every answer of the echo is, over HTTP/1.1 and HTTP/2 alike.
#[derive(Debug, Default)]
pub struct Answer {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Answer {
    pub fn full(data: impl Into<Bytes>) -> Answer {
        Answer {
            data: Some(data.into()),
            trailers: None,
        }
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// Whether a request is a gRPC call (by its content type, as gRPC says).
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/grpc"))
}

/// The echo's answer to a gRPC call: `Health/Check` says `serving`; any
/// other method is UNIMPLEMENTED (status 12), trailers-only.
pub fn answer(path: &str, serving: ServingStatus) -> Response<Answer> {
    let mut trailers = HeaderMap::new();
    let body = if path == CHECK_PATH {
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let msg: &[u8] = match serving.code() {
            0 => &[],
            c => &[0x08, c],
        };
        Some(frame(msg))
    } else {
        None
    };
    let mut resp = match body {
        Some(b) => Response::new(Answer {
            data: Some(b),
            trailers: Some(trailers),
        }),
        None => {
            let mut r = Response::new(Answer::default());
            r.headers_mut()
                .insert("grpc-status", HeaderValue::from_static("12"));
            r.headers_mut().insert(
                "grpc-message",
                HeaderValue::from_static("only grpc.health.v1.Health/Check is served"),
            );
            r
        }
    };
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    resp
}

/// A message with gRPC's length prefix, uncompressed.
fn frame(msg: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    Bytes::from(out)
}

/// `HealthCheckRequest { service }` as protobuf: field 1, length-delimited.
fn request_message(service: &str) -> Vec<u8> {
    if service.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0x0a];
    let mut n = service.len();
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(service.as_bytes());
    out
}

/// The status field of a `HealthCheckResponse` behind its prefix; a
/// message without it is UNKNOWN, as proto3 omits a zero.
fn parse_response(body: &[u8]) -> Result<ServingStatus, String> {
    let (head, msg) = body
        .split_at_checked(5)
        .ok_or("the answer has no gRPC message")?;
    if head[0] != 0 {
        return Err("the answer is compressed".into());
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let msg = msg.get(..len).ok_or("the gRPC message is cut short")?;
    let mut i = 0;
    let mut status = ServingStatus::Unknown;
    while i < msg.len() {
        let (tag, next) = varint(msg, i)?;
        i = next;
        match tag & 7 {
            0 => {
                let (v, next) = varint(msg, i)?;
                i = next;
                if tag >> 3 == 1 {
                    status = ServingStatus::from_code(v);
                }
            }
            2 => {
                let (len, next) = varint(msg, i)?;
                i = next.saturating_add(len as usize);
            }
            _ => return Err("the answer is not a HealthCheckResponse".into()),
        }
    }
    Ok(status)
}

fn varint(b: &[u8], mut i: usize) -> Result<(u64, usize), String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(i).ok_or("a protobuf varint is cut short")?;
        i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((v, i));
        }
    }
    Err("a protobuf varint is too long".into())
}

/// kubelet's gRPC probe: `Health/Check` over HTTP/2 without TLS on a
/// connected stream; `Ok` with what the server said, `Err` with why there
/// was no answer. The probe passes only on SERVING.
pub async fn check(
    stream: tokio::net::TcpStream,
    authority: &str,
    service: &str,
    timeout: Duration,
) -> Result<ServingStatus, String> {
    let call = async {
        let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        tokio::spawn(conn);
        let req = Request::post(format!("http://{authority}{CHECK_PATH}"))
            .header(CONTENT_TYPE, "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "kube-probe/1.30")
            .body(Full::new(frame(&request_message(service))))
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("Health/Check: {e}"))?;
        let (parts, body) = resp.into_parts();
        let got = body
            .collect()
            .await
            .map_err(|e| format!("Health/Check's answer: {e}"))?;
        let trailers = got.trailers().cloned().unwrap_or_default();
        let status = trailers
            .get("grpc-status")
            .or(parts.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if status != "0" {
            return Err(format!("grpc-status {status:?}"));
        }
        parse_response(&got.to_bytes())
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_as_protobuf_frames_them() {
        assert_eq!(request_message(""), Vec::<u8>::new());
        assert_eq!(request_message("cart"), b"\x0a\x04cart".to_vec());
        let long = "s".repeat(200);
        assert_eq!(&request_message(&long)[..3], &[0x0a, 0xc8, 0x01]);
        assert_eq!(
            parse_response(&frame(&[0x08, 1])),
            Ok(ServingStatus::Serving)
        );
        assert_eq!(
            parse_response(&frame(&[0x08, 2])),
            Ok(ServingStatus::NotServing)
        );
        assert_eq!(parse_response(&frame(&[])), Ok(ServingStatus::Unknown));
        assert!(parse_response(&[0, 0, 0]).is_err());
        assert!(parse_response(&frame(&[0x08])).is_err());
    }

    /// The echo's answer, read back by the prober, over a real HTTP/2
    /// connection on loopback.
    #[tokio::test]
    async fn the_prober_reads_the_echos_answer() {
        use hyper::server::conn::http2;
        use hyper::service::service_fn;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            for serving in [ServingStatus::Serving, ServingStatus::NotServing] {
                let (s, _) = l.accept().await.unwrap();
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    assert!(is_grpc(&req));
                    let r = answer(req.uri().path(), serving);
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            }
        });
        let t = Duration::from_secs(2);
        for want in [ServingStatus::Serving, ServingStatus::NotServing] {
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            assert_eq!(check(s, &addr.to_string(), "", t).await, Ok(want));
        }
    }
}
