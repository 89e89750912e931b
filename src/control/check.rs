//! Health checks, keepalived's checkers in uvs: TCP connect and HTTP GET,
//! each with an interval, a timeout, rise and fall counts and a random
//! warm-up so that hundreds of checks do not fire together. Checks go out
//! through the kernel's own TCP stack from the director's own address
//! (the kernel picks it by route; the VIP is not local, so it can never
//! be the source), never from the VIP or a translated address: see
//! docs/health.md for why that matters (PAWS on servers that check TCP
//! timestamps).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connection is accepted.
    Tcp,
    /// An HTTP/1.0 GET answers with an expected status (and body).
    Http {
        path: String,
        /// Inclusive ranges of accepted status codes.
        status: Vec<(u16, u16)>,
        body_contains: Option<String>,
        host: Option<String>,
    },
}

/// One real server's check, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// Default: the real server's port.
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Successes in a row before a down server is up again.
    pub rise: u32,
    /// Failures in a row before an up server is down.
    pub fall: u32,
    /// The first check waits a random time up to this.
    pub warmup: Duration,
}

impl CheckSpec {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            CheckKind::Tcp => "TCP",
            CheckKind::Http { .. } => "HTTP",
        }
    }
}

/// Most of an HTTP answer read: enough for a status line, headers and a
/// body to search.
const HTTP_READ: usize = 64 * 1024;

/// Runs one check of the server at `to`; the reason when it fails.
pub async fn run_once(spec: &CheckSpec, to: SocketAddrV4) -> Result<(), String> {
    match tokio::time::timeout(spec.timeout, attempt(spec, to)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "{} timed out after {}",
            spec.kind_name(),
            secs(spec.timeout)
        )),
    }
}

async fn attempt(spec: &CheckSpec, to: SocketAddrV4) -> Result<(), String> {
    let mut s = TcpStream::connect(to)
        .await
        .map_err(|e| format!("TCP connect to {to}: {e}"))?;
    let CheckKind::Http {
        path,
        status,
        body_contains,
        host,
    } = &spec.kind
    else {
        return Ok(());
    };
    let host = host.clone().unwrap_or_else(|| to.ip().to_string());
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: uvs-check\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("HTTP request to {to}: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while buf.len() < HTTP_READ {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("HTTP answer from {to}: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    check_http(&buf, status, body_contains.as_deref())
}

/// Judges an HTTP answer: its status against the accepted ranges, its
/// body for the substring.
pub fn check_http(answer: &[u8], status: &[(u16, u16)], body: Option<&str>) -> Result<(), String> {
    let text = String::from_utf8_lossy(answer);
    let line = text.lines().next().unwrap_or("");
    let code: u16 = line
        .strip_prefix("HTTP/")
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                line.chars().take(40).collect::<String>()
            )
        })?;
    if !status.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code)) {
        return Err(format!("HTTP {code}"));
    }
    if let Some(want) = body {
        let rest = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if !rest.contains(want) {
            return Err(format!("HTTP {code} but the body lacks {want:?}"));
        }
    }
    Ok(())
}

pub fn secs(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{} s", d.as_secs()),
        _ => format!("{} ms", d.as_millis()),
    }
}

/// Where a check of real server `addr:port` connects.
pub fn target(spec: &CheckSpec, addr: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(addr, spec.port.unwrap_or(port))
}

/// Rise and fall: the state machine every check kind shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub up: bool,
    ok_run: u32,
    fail_run: u32,
}

impl Counter {
    pub fn new(up: bool) -> Counter {
        Counter {
            up,
            ok_run: 0,
            fail_run: 0,
        }
    }

    /// Counts one result; `Some(new state)` when it changes.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok {
            self.ok_run += 1;
            self.fail_run = 0;
            if !self.up && self.ok_run >= rise.max(1) {
                self.up = true;
                return Some(true);
            }
        } else {
            self.fail_run += 1;
            self.ok_run = 0;
            if self.up && self.fail_run >= fall.max(1) {
                self.up = false;
                return Some(false);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_need_runs_in_a_row() {
        let mut c = Counter::new(true);
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!(c.record(true, 2, 3), None);
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!(c.record(false, 2, 3), Some(false));
        assert_eq!(c.record(false, 2, 3), None);
        assert_eq!(c.record(true, 2, 3), None);
        assert_eq!(c.record(true, 2, 3), Some(true));
    }

    #[test]
    fn http_answers_are_judged_by_status_and_body() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nrs1 ok";
        assert_eq!(check_http(ok, &[(200, 299)], Some("ok")), Ok(()));
        assert_eq!(
            check_http(ok, &[(200, 299)], Some("healthy")),
            Err("HTTP 200 but the body lacks \"healthy\"".into())
        );
        let down = b"HTTP/1.0 503 Service Unavailable\r\n\r\n";
        assert_eq!(
            check_http(down, &[(200, 299)], None),
            Err("HTTP 503".into())
        );
        assert_eq!(check_http(down, &[(200, 200), (500, 503)], None), Ok(()));
        for junk in [
            &b""[..],
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 abc",
            b"\xff\xfe",
        ] {
            assert!(check_http(junk, &[(200, 299)], None).is_err());
        }
    }
}
