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
    /// A command (`sh -c`): exit 0 up, 1 down; as keepalived's
    /// misc_dynamic, 2 to 255 up with weight = code - 2.
    Exec { command: String },
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

/// Runs one check of the server at `to`; the reason when it fails.
pub async fn run_once(spec: &CheckSpec, to: SocketAddrV4) -> Result<Passed, String> {
    match &spec.kind {
        CheckKind::Udp { payload, expect } => {
            return udp(spec, to, payload, expect.as_deref())
                .await
                .map(|_| None);
        }
        CheckKind::Dns { name } => return dns(spec, to, name).await.map(|_| None),
        CheckKind::Exec { command } => return exec(spec, command).await,
        _ => {}
    }
    match tokio::time::timeout(spec.timeout, attempt(spec, to))
        .await
        .map(|r| r.map(|_| None))
    {
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
    to: SocketAddrV4,
    path: &str,
    host: Option<&str>,
    want: &Expect<'_>,
) -> Result<(), String> {
    let host = host.map_or_else(|| to.ip().to_string(), str::to_string);
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
    check_http(&buf, want)
}

/// Sends `payload` to `to` from a connected socket (so an ICMP port
/// unreachable comes back as ECONNREFUSED) and waits up to `wait` for
/// the reply: its bytes, or `None` if none came and no error either.
/// `what` names the check in errors.
async fn udp_ask(
    what: &str,
    to: SocketAddrV4,
    payload: &[u8],
    wait: Duration,
) -> Result<Option<Vec<u8>>, String> {
    let s = tokio::net::UdpSocket::bind("0.0.0.0:0")
        .await
        .map_err(|e| format!("UDP socket: {e}"))?;
    s.connect(to)
        .await
        .map_err(|e| format!("{what} to {to}: {e}"))?;
    s.send(payload)
        .await
        .map_err(|e| format!("{what} send to {to}: {e}"))?;
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(wait, s.recv(&mut buf)).await {
        Ok(Ok(n)) => Ok(Some(buf[..n].to_vec())),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err(format!("{what} {to}: port unreachable (ICMP)"))
        }
        Ok(Err(e)) => Err(format!("{what} {to}: {e}")),
        Err(_) => Ok(None),
    }
}

/// A UDP check: ICMP port unreachable is down; with `expect`, a reply
/// containing it must come within the timeout, else silence is up.
async fn udp(
    spec: &CheckSpec,
    to: SocketAddrV4,
    payload: &[u8],
    expect: Option<&[u8]>,
) -> Result<(), String> {
    match (udp_ask("UDP", to, payload, spec.timeout).await?, expect) {
        (Some(reply), Some(want)) if !contains(&reply, want) => Err(format!(
            "UDP reply from {to} lacks {:?}",
            String::from_utf8_lossy(want)
        )),
        (None, Some(_)) => Err(format!("UDP {to}: no reply within {}", secs(spec.timeout))),
        _ => Ok(()),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A DNS check: one query of type A for `name`; the answer must have our
/// id, no error and at least one answer record.
async fn dns(spec: &CheckSpec, to: SocketAddrV4, name: &str) -> Result<(), String> {
    use std::hash::BuildHasher;
    let id = foldhash::fast::RandomState::default().hash_one(name) as u16;
    let q = dns_query(id, name).ok_or_else(|| format!("DNS name {name:?} cannot be queried"))?;
    match udp_ask("DNS", to, &q, spec.timeout).await? {
        Some(answer) => dns_verdict(&answer, id, name),
        None => Err(format!("DNS {to}: no answer within {}", secs(spec.timeout))),
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
pub fn dns_verdict(a: &[u8], id: u16, name: &str) -> Result<(), String> {
    if a.len() < 12 || a[0..2] != id.to_be_bytes() || a[2] & 0x80 == 0 {
        return Err(format!("DNS: not an answer to our query for {name}"));
    }
    let rcode = a[3] & 0x0f;
    if rcode != 0 {
        return Err(format!("DNS {name}: rcode {rcode}"));
    }
    if u16::from_be_bytes([a[6], a[7]]) == 0 {
        return Err(format!("DNS {name}: no answer records"));
    }
    Ok(())
}

/// An exec check (`sh -c`), killed at the timeout.
async fn exec(spec: &CheckSpec, command: &str) -> Result<Passed, String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(spec.timeout, child).await {
        Err(_) => Err(format!(
            "`{command}` timed out after {}",
            secs(spec.timeout)
        )),
        Ok(Err(e)) => Err(format!("`{command}` could not run: {e}")),
        Ok(Ok(st)) => exit_verdict(command, st.code()),
    }
}

/// keepalived's MISC_CHECK rule with misc_dynamic: 0 up, 1 down, 2-255
/// up with weight code - 2; killed by a signal is down.
pub fn exit_verdict(command: &str, code: Option<i32>) -> Result<Passed, String> {
    match code {
        Some(0) => Ok(None),
        Some(c @ 2..=255) => Ok(Some(c as u32 - 2)),
        Some(c) => Err(format!("`{command}` exited {c}")),
        None => Err(format!("`{command}` was killed by a signal")),
    }
}

/// Judges an HTTP answer: its status against the accepted ranges, its
/// body for the substring and the MD5 digest.
pub fn check_http(answer: &[u8], want: &Expect<'_>) -> Result<(), String> {
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
    if !want
        .status
        .iter()
        .any(|(lo, hi)| (*lo..=*hi).contains(&code))
    {
        return Err(format!("HTTP {code}"));
    }
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |i| &answer[i + 4..]);
    if let Some(part) = want.body
        && !String::from_utf8_lossy(body).contains(part)
    {
        return Err(format!("HTTP {code} but the body lacks {part:?}"));
    }
    if let Some(d) = want.digest {
        use md5::Digest;
        let got: String = md5::Md5::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !got.eq_ignore_ascii_case(d) {
            return Err(format!("HTTP {code} but the body's MD5 is {got}, not {d}"));
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
        assert_eq!(dns_verdict(&a, 0x1234, "www"), Ok(()));
        a[3] = 3;
        assert_eq!(
            dns_verdict(&a, 0x1234, "www"),
            Err("DNS www: rcode 3".into())
        );
        assert!(dns_verdict(&a, 0x9999, "www").is_err());
        assert!(dns_verdict(&a[..5], 0x1234, "www").is_err());
        a[3] = 0;
        a[7] = 0;
        assert!(
            dns_verdict(&a, 0x1234, "www")
                .unwrap_err()
                .contains("no answer")
        );
    }

    #[test]
    fn exit_codes_follow_misc_dynamic() {
        assert_eq!(exit_verdict("c", Some(0)), Ok(None));
        assert!(exit_verdict("c", Some(1)).is_err());
        assert_eq!(exit_verdict("c", Some(2)), Ok(Some(0)));
        assert_eq!(exit_verdict("c", Some(12)), Ok(Some(10)));
        assert!(exit_verdict("c", None).is_err());
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
