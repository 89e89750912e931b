//! The metrics page over HTTP/1.x: one request per connection, `GET` or
//! `HEAD /metrics`, answered and closed. Written by hand because that is
//! all a scraper needs (no HTTP library and its dependency tree). A
//! request head is read within [`READ_TIMEOUT`] and [`MAX_HEAD`] bytes,
//! so a slow or garbage client can neither hold a task nor grow memory;
//! anything else gets its status (400, 404, 405, 408, 431) and nothing
//! in a request can panic here.

use super::Format;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// A client must have sent its whole request head within this time.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A client must have taken the answer within this time.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The page in this format; `head`: without its body (`HEAD`).
    Page { format: Format, head: bool },
    /// An error status and its reason phrase.
    Status(u16, &'static str),
}

const BAD_REQUEST: Route = Route::Status(400, "Bad Request");
const TOO_LARGE: Route = Route::Status(431, "Request Header Fields Too Large");
const TIMEOUT: Route = Route::Status(408, "Request Timeout");

/// What the request head `head` (up to its blank line) asks for.
pub fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else {
        return BAD_REQUEST;
    };
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return BAD_REQUEST;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return BAD_REQUEST;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Route::Status(404, "Not Found");
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::Status(405, "Method Not Allowed"),
    };
    // Prometheus asks for OpenMetrics first; everything else (curl, a
    // browser) gets the classic text format.
    let open_metrics = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("accept") && v.contains("application/openmetrics-text")
        })
    });
    let format = match open_metrics {
        true => Format::OpenMetrics,
        false => Format::Text,
    };
    Route::Page { format, head }
}

/// The end of a request head in `buf`: after its blank line.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads a request head: `Ok(route)`, or `Err(())` when the client went
/// away before saying anything (nothing to answer).
async fn read_head(r: &mut (impl AsyncRead + Unpin)) -> Result<Route, ()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = r.read(&mut chunk).await.map_err(|_| ())?;
        if n == 0 {
            return match buf.is_empty() {
                true => Err(()),
                false => Ok(BAD_REQUEST),
            };
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&buf[from..]).map(|e| from + e) {
            return Ok(route(&buf[..end]));
        }
        if buf.len() >= MAX_HEAD {
            return Ok(TOO_LARGE);
        }
    }
}

/// The response's head for a body of `len` bytes.
fn response_head(status: u16, reason: &str, content_type: &str, len: usize) -> String {
    let allow = match status {
        405 => "Allow: GET, HEAD\r\n",
        _ => "",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         {allow}Connection: close\r\n\r\n"
    )
}

/// Answers one connection: reads its request and writes the page that
/// `page` makes in the format asked for, or an error status; then closes.
pub async fn answer<S, F, P>(stream: S, page: P)
where
    S: AsyncRead + AsyncWrite + Unpin,
    P: FnOnce(Format) -> F,
    F: Future<Output = String>,
{
    answer_within(stream, page, READ_TIMEOUT).await
}

/// [`answer`], the request head read within `limit`.
pub async fn answer_within<S, F, P>(mut stream: S, page: P, limit: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
    P: FnOnce(Format) -> F,
    F: Future<Output = String>,
{
    let route = match tokio::time::timeout(limit, read_head(&mut stream)).await {
        Err(_) => TIMEOUT,
        Ok(Err(())) => return,
        Ok(Ok(r)) => r,
    };
    let out = match route {
        Route::Page { format, head } => {
            let body = page(format).await;
            let mut out = response_head(200, "OK", format.content_type(), body.len());
            if !head {
                out.push_str(&body);
            }
            out
        }
        Route::Status(code, reason) => {
            let body = format!("{code} {reason}\n");
            let type_ = "text/plain; charset=utf-8";
            response_head(code, reason, type_, body.len()) + &body
        }
    };
    let write = async {
        stream.write_all(out.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write).await;
}
