//! Health checks, keepalived's checkers in uvs: TCP connect and HTTP GET,
//! each with an interval, a timeout, rise and fall counts and a random
//! warm-up so that hundreds of checks do not fire together. Checks go out
//! through the kernel's own TCP stack from the director's own address
//! (the kernel picks it by route; the VIP is not local, so it can never
//! be the source), never from the VIP or a translated address: see
//! docs/health.md for why that matters (PAWS on servers that check TCP
//! timestamps).

mod exec;
mod retry;
pub mod via_vip;
pub use exec::exit_verdict;
pub use retry::run_retrying;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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
        /// The body's MD5, in hex (keepalived's `digest`).
        digest: Option<String>,
        host: Option<String>,
    },
    /// A UDP datagram is sent: ICMP port unreachable means down; with
    /// `expect`, a reply containing it must come within the timeout.
    Udp {
        payload: Vec<u8>,
        expect: Option<Vec<u8>>,
    },
    /// A DNS query for `name` (type A) must get an answer.
    Dns { name: String },
    /// A command (`sh -c`): exit 0 up, any other down, as keepalived's
    /// MISC_CHECK; with `dynamic` (its misc_dynamic) 2 to 255 are up
    /// with weight = code - 2.
    Exec { command: String, dynamic: bool },
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
    /// A failed check of a server that is up is tried again this many
    /// times, `retry_delay` apart, before it counts as one failure
    /// (keepalived's `retry` and `delay_before_retry`).
    pub retry: u32,
    pub retry_delay: Duration,
    /// TCP only: the SYN goes to the VIP through the data path
    /// ([`via_vip`]), not to the server's own address.
    pub via_vip: bool,
}

impl CheckSpec {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            CheckKind::Tcp => "TCP",
            CheckKind::Http { .. } => "HTTP",
            CheckKind::Udp { .. } => "UDP",
            CheckKind::Dns { .. } => "DNS",
            CheckKind::Exec { .. } => "exec",
        }
    }
}

/// Most of an HTTP answer read: enough for a status line, headers and a
/// body to search.
const HTTP_READ: usize = 64 * 1024;

/// A passed check: `Some(weight)` when it also sets the weight (exec's
/// misc_dynamic).
pub type Passed = Option<u32>;

/// Why a check failed: what `uvs health` and the log say of it.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A TCP or HTTP check took longer than its timeout (`kind`: "TCP", "HTTP").
    #[error("{kind} timed out after {}", secs(*after))]
    TimedOut { kind: &'static str, after: Duration },
    #[error("TCP connect to {to}: {source}")]
    Connect {
        to: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP request to {to}: {source}")]
    HttpRequest {
        to: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP answer from {to}: {source}")]
    HttpAnswer {
        to: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The answer's first line is not an HTTP status line (its start).
    #[error("not an HTTP answer: {0:?}")]
    NotHttp(String),
    /// A status outside the accepted ranges.
    #[error("HTTP {0}")]
    Status(u16),
    #[error("HTTP {code} but the body lacks {part:?}")]
    BodyLacks { code: u16, part: String },
    #[error("HTTP {code} but the body's MD5 is {got}, not {want}")]
    Digest {
        code: u16,
        got: String,
        want: String,
    },
    /// No UDP socket to send from.
    #[error("UDP socket: {0}")]
    Socket(#[source] std::io::Error),
    /// Connecting or sending a UDP datagram (`what`: "UDP", "DNS"; `step`:
    /// "to" or "send to").
    #[error("{what} {step} {to}: {source}")]
    Send {
        what: &'static str,
        step: &'static str,
        to: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// An ICMP port unreachable came back.
    #[error("{what} {to}: port unreachable (ICMP)")]
    Unreachable { what: &'static str, to: SocketAddr },
    #[error("{what} {to}: {source}")]
    Receive {
        what: &'static str,
        to: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A UDP reply without what it must contain.
    #[error("UDP reply from {to} lacks {want:?}")]
    ReplyLacks { to: SocketAddr, want: String },
    /// Nothing came back in time (`what`: "UDP reply", "DNS answer").
    #[error("{} {to}: no {} within {}", what.0, what.1, secs(*after))]
    Silent {
        what: (&'static str, &'static str),
        to: SocketAddr,
        after: Duration,
    },
    #[error("DNS name {0:?} cannot be queried")]
    DnsName(String),
    #[error("DNS: not an answer to our query for {0}")]
    DnsNotOurs(String),
    #[error("DNS {name}: rcode {rcode}")]
    DnsRcode { name: String, rcode: u8 },
    #[error("DNS {0}: no answer records")]
    DnsEmpty(String),
    #[error("`{command}` timed out after {}", secs(*after))]
    ExecTimedOut { command: String, after: Duration },
    #[error("`{command}` could not run: {source}")]
    ExecFailed {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` exited {code}")]
    Exited { command: String, code: i32 },
    #[error("`{command}` was killed by a signal")]
    Killed { command: String },
    #[error(transparent)]
    ViaVip(#[from] via_vip::ViaVipError),
}

/// Runs one check of the server at `to`; the reason when it fails.
pub async fn run_once(spec: &CheckSpec, to: SocketAddr) -> Result<Passed, CheckError> {
    run_via(spec, to, None).await
}

/// As [`run_once`], through the VIP by `via` if given.
pub async fn run_via(
    spec: &CheckSpec,
    to: SocketAddr,
    via: Option<&via_vip::Route>,
) -> Result<Passed, CheckError> {
    if let Some(r) = via {
        return via_vip::run(spec, to, r).await.map(|_| None);
    }
    match &spec.kind {
        CheckKind::Udp { payload, expect } => {
            return udp(spec, to, payload, expect.as_deref())
                .await
                .map(|_| None);
        }
        CheckKind::Dns { name } => return dns(spec, to, name).await.map(|_| None),
        CheckKind::Exec { command, dynamic } => return exec::run(spec, command, *dynamic).await,
        _ => {}
    }
    match tokio::time::timeout(spec.timeout, attempt(spec, to))
        .await
        .map(|r| r.map(|_| None))
    {
        Ok(r) => r,
        Err(_) => Err(CheckError::TimedOut {
            kind: spec.kind_name(),
            after: spec.timeout,
        }),
    }
}

pub(super) async fn attempt(spec: &CheckSpec, to: SocketAddr) -> Result<(), CheckError> {
    let mut s = TcpStream::connect(to)
        .await
        .map_err(|source| CheckError::Connect { to, source })?;
    let CheckKind::Http {
        path,
        status,
        body_contains,
        digest,
        host,
    } = &spec.kind
    else {
        return Ok(());
    };
    let want = Expect {
        status,
        body: body_contains.as_deref(),
        digest: digest.as_deref(),
    };
    http_get(&mut s, to, path, host.as_deref(), &want).await
}

/// What an HTTP answer must have.
pub struct Expect<'a> {
    pub status: &'a [(u16, u16)],
    pub body: Option<&'a str>,
    /// MD5 of the body, hex.
    pub digest: Option<&'a str>,
}

async fn http_get(
    s: &mut TcpStream,
    to: SocketAddr,
    path: &str,
    host: Option<&str>,
    want: &Expect<'_>,
) -> Result<(), CheckError> {
    // An IPv6 literal goes in brackets in a Host header (RFC 9110 7.2).
    let literal = match to.ip() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let host = host.map_or(literal, str::to_string);
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: uvs-check\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|source| CheckError::HttpRequest { to, source })?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while buf.len() < HTTP_READ {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|source| CheckError::HttpAnswer { to, source })?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    check_http(&buf, want)
}

/// Sends `payload` to `to` from a connected socket (so an ICMP port
/// unreachable comes back as ECONNREFUSED) and waits up to `wait` for
/// the reply: its bytes, or `None` if none came and no error either.
/// `what` names the check in errors.
async fn udp_ask(
    what: &'static str,
    to: SocketAddr,
    payload: &[u8],
    wait: Duration,
) -> Result<Option<Vec<u8>>, CheckError> {
    let any: IpAddr = match to {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let s = tokio::net::UdpSocket::bind((any, 0))
        .await
        .map_err(CheckError::Socket)?;
    let send = |step| {
        move |source| CheckError::Send {
            what,
            step,
            to,
            source,
        }
    };
    s.connect(to).await.map_err(send("to"))?;
    s.send(payload).await.map_err(send("send to"))?;
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(wait, s.recv(&mut buf)).await {
        Ok(Ok(n)) => Ok(Some(buf[..n].to_vec())),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(CheckError::Unreachable { what, to })
        }
        Ok(Err(source)) => Err(CheckError::Receive { what, to, source }),
        Err(_) => Ok(None),
    }
}

/// A UDP check: ICMP port unreachable is down; with `expect`, a reply
/// containing it must come within the timeout, else silence is up.
async fn udp(
    spec: &CheckSpec,
    to: SocketAddr,
    payload: &[u8],
    expect: Option<&[u8]>,
) -> Result<(), CheckError> {
    match (udp_ask("UDP", to, payload, spec.timeout).await?, expect) {
        (Some(reply), Some(want)) if !contains(&reply, want) => Err(CheckError::ReplyLacks {
            to,
            want: String::from_utf8_lossy(want).into_owned(),
        }),
        (None, Some(_)) => Err(CheckError::Silent {
            what: ("UDP", "reply"),
            to,
            after: spec.timeout,
        }),
        _ => Ok(()),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A DNS check: one query of type A for `name`; the answer must have our
/// id, no error and at least one answer record.
async fn dns(spec: &CheckSpec, to: SocketAddr, name: &str) -> Result<(), CheckError> {
    use std::hash::BuildHasher;
    let id = foldhash::fast::RandomState::default().hash_one(name) as u16;
    let q = dns_query(id, name).ok_or_else(|| CheckError::DnsName(name.to_string()))?;
    match udp_ask("DNS", to, &q, spec.timeout).await? {
        Some(answer) => dns_verdict(&answer, id, name),
        None => Err(CheckError::Silent {
            what: ("DNS", "answer"),
            to,
            after: spec.timeout,
        }),
    }
}

/// A DNS query (RFC 1035 4.1): header with RD, one question, type A,
/// class IN. `None` for a name with an empty or over-long label.
pub fn dns_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    (q.len() <= 512).then_some(q)
}

/// Judges a DNS answer by its header only (id, QR, RCODE, ANCOUNT): all a
/// health check needs, so no DNS library is pulled in for it.
pub fn dns_verdict(a: &[u8], id: u16, name: &str) -> Result<(), CheckError> {
    if a.len() < 12 || a[0..2] != id.to_be_bytes() || a[2] & 0x80 == 0 {
        return Err(CheckError::DnsNotOurs(name.to_string()));
    }
    let rcode = a[3] & 0x0f;
    if rcode != 0 {
        return Err(CheckError::DnsRcode {
            name: name.to_string(),
            rcode,
        });
    }
    if u16::from_be_bytes([a[6], a[7]]) == 0 {
        return Err(CheckError::DnsEmpty(name.to_string()));
    }
    Ok(())
}

/// Judges an HTTP answer: its status against the accepted ranges, its
/// body for the substring and the MD5 digest.
pub fn check_http(answer: &[u8], want: &Expect<'_>) -> Result<(), CheckError> {
    let text = String::from_utf8_lossy(answer);
    let line = text.lines().next().unwrap_or("");
    let code: u16 = line
        .strip_prefix("HTTP/")
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| CheckError::NotHttp(line.chars().take(40).collect()))?;
    if !want
        .status
        .iter()
        .any(|(lo, hi)| (*lo..=*hi).contains(&code))
    {
        return Err(CheckError::Status(code));
    }
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |i| &answer[i + 4..]);
    if let Some(part) = want.body
        && !String::from_utf8_lossy(body).contains(part)
    {
        return Err(CheckError::BodyLacks {
            code,
            part: part.to_string(),
        });
    }
    if let Some(d) = want.digest {
        use md5::Digest;
        let got: String = md5::Md5::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !got.eq_ignore_ascii_case(d) {
            return Err(CheckError::Digest {
                code,
                got,
                want: d.to_string(),
            });
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
pub fn target(spec: &CheckSpec, addr: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(addr, spec.port.unwrap_or(port))
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
    fn dns_queries_and_answers() {
        let q = dns_query(0x1234, "www.example.com.").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..17], &[3, b'w', b'w', b'w', 7]);
        assert_eq!(&q[q.len() - 4..], &[0, 1, 0, 1]);
        assert!(dns_query(1, "a..b").is_none());
        assert!(dns_query(1, &"x".repeat(64)).is_none());
        let mut a = q.clone();
        a[2] |= 0x80;
        a[7] = 1;
        let verdict = |a: &[u8]| dns_verdict(a, 0x1234, "www").map_err(|e| e.to_string());
        assert_eq!(verdict(&a), Ok(()));
        a[3] = 3;
        assert_eq!(verdict(&a), Err("DNS www: rcode 3".into()));
        assert!(dns_verdict(&a, 0x9999, "www").is_err());
        assert!(dns_verdict(&a[..5], 0x1234, "www").is_err());
        a[3] = 0;
        a[7] = 0;
        assert!(verdict(&a).unwrap_err().contains("no answer"));
    }

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
        let want = |status: &'static [(u16, u16)], body, digest| Expect {
            status,
            body,
            digest,
        };
        let check_http = |a: &[u8], w: &Expect<'_>| check_http(a, w).map_err(|e| e.to_string());
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nrs1 ok";
        assert_eq!(
            check_http(ok, &want(&[(200, 299)], Some("ok"), None)),
            Ok(())
        );
        assert_eq!(
            check_http(ok, &want(&[(200, 299)], Some("healthy"), None)),
            Err("HTTP 200 but the body lacks \"healthy\"".into())
        );
        // MD5 of the body "rs1 ok" (md5sum prints the same).
        let md5 = "d3443126605cede356447a49e197f243";
        assert_eq!(
            check_http(ok, &want(&[(200, 299)], None, Some(md5))),
            Ok(())
        );
        let e = check_http(ok, &want(&[(200, 299)], None, Some("00"))).unwrap_err();
        assert!(e.contains(md5), "{e}");
        let down = b"HTTP/1.0 503 Service Unavailable\r\n\r\n";
        assert_eq!(
            check_http(down, &want(&[(200, 299)], None, None)),
            Err("HTTP 503".into())
        );
        assert_eq!(
            check_http(down, &want(&[(200, 200), (500, 503)], None, None)),
            Ok(())
        );
        for junk in [
            &b""[..],
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 abc",
            b"\xff\xfe",
        ] {
            assert!(check_http(junk, &want(&[(200, 299)], None, None)).is_err());
        }
    }
}
