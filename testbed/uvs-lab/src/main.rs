//! `uvs-lab`: the traffic ends of the namespace testbed. `server` runs on a
//! real server and answers with its own name (TCP and UDP), the client
//! address it sees, a byte count and hash of uploads, downloads of any size,
//! and HTTP for load generators; the `client` modes generate the traffic the
//! demo and the end-to-end tests measure, and print JSON.

use clap::{Parser, Subcommand};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "uvs-lab", about = "Traffic ends for the uvs namespace testbed")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Answer TCP and UDP requests with this server's name.
    Server {
        #[arg(long)]
        name: String,
        /// TCP port to listen on (all addresses, VIP included).
        #[arg(long)]
        tcp: Vec<u16>,
        /// UDP ADDR:PORT to bind (bind the VIP so replies come from it).
        #[arg(long)]
        udp: Vec<SocketAddr>,
        /// TCP port for HTTP/1.1: every request is answered with the name.
        #[arg(long)]
        http: Vec<u16>,
        /// UDP ADDR:PORT for a toy DNS server: every A query gets one
        /// answer, except names under `nx.` (NXDOMAIN).
        #[arg(long)]
        dns: Vec<SocketAddr>,
    },
    /// N sequential TCP connections, one NAME request each.
    TcpNames {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Connect from this local address (bound before connecting).
        #[arg(long)]
        source: Option<std::net::IpAddr>,
    },
    /// N TCP connections, one every INTERVAL ms, each asking the server's
    /// name; prints each one's start time (ms since the Unix epoch) and
    /// outcome, for tests that compare them with a state change.
    TcpTimeline {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
    },
    /// N UDP requests, each from a new socket (a new connection for uvs).
    UdpNames {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// First source port; request i uses port+i. Sockets bound to port 0
        /// get kernel-chosen ports that repeat, and a repeated 5-tuple is
        /// the same UDP connection (for 300 s) to IPVS and uvs alike.
        #[arg(long)]
        sport_base: Option<u16>,
    },
    /// One TCP connection carrying N NAME requests.
    TcpStick {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        /// Pause between requests, to keep a connection open for a while.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
        /// How long an answer may take before the connection counts as
        /// broken (a failover's stall is longer than a request's).
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Send a UDP datagram of N payload bytes with DF set twice and report
    /// the path MTU the kernel learned (from ICMP "fragmentation needed").
    UdpDf {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 1472)]
        size: usize,
    },
    /// Send N small UDP datagrams as fast as possible, without waiting for
    /// answers (a burst to overflow a receive queue).
    UdpBlast {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        count: u32,
        /// After this many datagrams, wait --pause-ms before the rest (one
        /// flow that the director has time to act on mid-way).
        #[arg(long, default_value_t = 0)]
        pause_after: u32,
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
    /// One UDP datagram of hex bytes from BIND to TARGET (forged
    /// heartbeats for the HA tests).
    UdpSend {
        #[arg(long)]
        bind: SocketAddr,
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        hex: String,
    },
    /// Capture the payloads of incoming UDP datagrams to PORT (a packet
    /// socket, so a port another program listens on works), COUNT of them
    /// at least LEN bytes long, as hex: real messages to replay.
    UdpCapture {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        min_len: usize,
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Open and close TCP connections to TARGET for SECONDS, one after
    /// another on each of THREADS threads (closed with a reset, so no
    /// client port waits in TIME_WAIT): connections per second.
    ConnRate {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Upload N bytes over one TCP connection; the server reports its hash.
    Upload {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 5_000_000)]
        bytes: usize,
        /// Pause after each 64 KiB written, to keep the transfer going for
        /// a while (a failover in the middle of it, say).
        #[arg(long, default_value_t = 0)]
        pace_ms: u64,
    },
    /// Download N bytes over one TCP connection and check them against the
    /// hash the server announces.
    Download {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 5_000_000)]
        bytes: usize,
    },
    /// Ask which client address the server sees (TCP, or UDP with --udp)
    /// and report it beside this end's own address.
    Who {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        udp: bool,
    },
}

/// FNV-1a, 64 bit: enough to tell an intact upload from a damaged one.
fn fnv(h: &mut u64, data: &[u8]) {
    for b in data {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}
const FNV_INIT: u64 = 0xcbf2_9ce4_8422_2325;

/// Fills `buf` with xorshift output: incompressible, reproducible content.
fn fill(x: &mut u32, buf: &mut [u8]) {
    for b in buf {
        *x ^= *x << 13;
        *x ^= *x >> 17;
        *x ^= *x << 5;
        *b = *x as u8;
    }
}

/// The hash of `n` bytes of `fill` content from `seed`.
fn content_hash(seed: u32, n: usize) -> u64 {
    let (mut x, mut h, mut left) = (seed, FNV_INIT, n);
    let mut buf = vec![0u8; 65536];
    while left > 0 {
        let k = left.min(buf.len());
        fill(&mut x, &mut buf[..k]);
        fnv(&mut h, &buf[..k]);
        left -= k;
    }
    h
}

const SEED: u32 = 0x1234_5678;

fn serve_tcp(name: String, port: u16) -> std::io::Result<()> {
    let l = TcpListener::bind(("0.0.0.0", port))?;
    for s in l.incoming() {
        let Ok(s) = s else { continue };
        let name = name.clone();
        std::thread::spawn(move || {
            let _ = tcp_session(&name, s);
        });
    }
    Ok(())
}

fn tcp_session(name: &str, s: TcpStream) -> std::io::Result<()> {
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let l = line.trim();
        if l == "NAME" {
            w.write_all(format!("{name}\n").as_bytes())?;
        } else if l == "WHO" {
            let peer = w.peer_addr()?;
            w.write_all(format!("{name} {peer}\n").as_bytes())?;
        } else if let Some(n) = l.strip_prefix("DOWNLOAD ") {
            let n: usize = n.parse().unwrap_or(0);
            w.write_all(format!("{name} {n} {:016x}\n", content_hash(SEED, n)).as_bytes())?;
            let (mut x, mut left) = (SEED, n);
            let mut buf = vec![0u8; 65536];
            while left > 0 {
                let k = left.min(buf.len());
                fill(&mut x, &mut buf[..k]);
                w.write_all(&buf[..k])?;
                left -= k;
            }
        } else if let Some(n) = l.strip_prefix("UPLOAD ") {
            let n: usize = n.parse().unwrap_or(0);
            let mut h = FNV_INIT;
            let mut left = n;
            let mut buf = vec![0u8; 65536];
            while left > 0 {
                let k = r.read(&mut buf[..left.min(65536)])?;
                if k == 0 {
                    break;
                }
                fnv(&mut h, &buf[..k]);
                left -= k;
            }
            w.write_all(format!("{name} {} {h:016x}\n", n - left).as_bytes())?;
        } else {
            w.write_all(b"ERR\n")?;
        }
    }
}

fn serve_udp(name: String, addr: SocketAddr) -> std::io::Result<()> {
    let s = UdpSocket::bind(addr)?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = s.recv_from(&mut buf)?;
        if &buf[..n] == b"NAME" {
            let _ = s.send_to(name.as_bytes(), from);
        } else if &buf[..n] == b"WHO" {
            let _ = s.send_to(format!("{name} {from}").as_bytes(), from);
        }
    }
}

/// A toy DNS server for health-check tests: the query comes back as an
/// answer (QR set) with one A record, or NXDOMAIN for names under `nx.`.
fn serve_dns(addr: SocketAddr) -> std::io::Result<()> {
    let s = UdpSocket::bind(addr)?;
    let mut buf = [0u8; 512];
    loop {
        let (n, from) = s.recv_from(&mut buf)?;
        if n < 17 {
            continue;
        }
        let mut a = buf[..n].to_vec();
        a[2] |= 0x80;
        if a[12] == 2 && &a[13..15] == b"nx" {
            a[3] = (a[3] & 0xf0) | 3;
        } else {
            a[7] = 1;
            a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 0, 100]);
        }
        let _ = s.send_to(&a, from);
    }
}

/// HTTP/1.1 with keep-alive: each request (headers only) is answered with
/// the name; `Connection: close` closes after the answer.
fn serve_http(name: String, port: u16) -> std::io::Result<()> {
    let l = TcpListener::bind(("0.0.0.0", port))?;
    for s in l.incoming() {
        let Ok(s) = s else { continue };
        let name = name.clone();
        std::thread::spawn(move || {
            let _ = http_session(&name, s);
        });
    }
    Ok(())
}

fn http_session(name: &str, s: TcpStream) -> std::io::Result<()> {
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let body = format!("{name}\n");
    let mut line = String::new();
    loop {
        let mut close = false;
        let mut first = true;
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                if first {
                    continue;
                }
                break;
            }
            first = false;
            if let Some((k, v)) = l.split_once(':') {
                close |=
                    k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close");
            }
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            body.len(),
            if close { "close" } else { "keep-alive" }
        );
        w.write_all(format!("{head}{body}").as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

fn download(target: SocketAddr, bytes: usize) -> Result<serde_json::Value, String> {
    let s =
        TcpStream::connect_timeout(&target, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    w.write_all(format!("DOWNLOAD {bytes}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let parts: Vec<&str> = line.split_whitespace().collect();
    let [server, n, their] = parts.as_slice() else {
        return Err(format!("bad reply '{}'", line.trim()));
    };
    let n: usize = n
        .parse()
        .map_err(|_| format!("bad length in '{}'", line.trim()))?;
    let mut h = FNV_INIT;
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    while got < n {
        let k = r
            .read(&mut buf[..(n - got).min(65536)])
            .map_err(|e| e.to_string())?;
        if k == 0 {
            break;
        }
        fnv(&mut h, &buf[..k]);
        got += k;
    }
    let ours = format!("{h:016x}");
    Ok(json!({
        "server": server, "announced": n, "received": got,
        "client_hash": ours, "server_hash": their,
        "intact": got == bytes && n == bytes && ours == *their,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

fn who(target: SocketAddr, udp: bool) -> Result<serde_json::Value, String> {
    let (answer, local) = if udp {
        let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        s.connect(target).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(500))).ok();
        let mut buf = [0u8; 256];
        let mut answer = None;
        for _ in 0..6 {
            s.send(b"WHO").map_err(|e| e.to_string())?;
            match s.recv(&mut buf) {
                Ok(n) => {
                    answer = Some(String::from_utf8_lossy(&buf[..n]).to_string());
                    break;
                }
                // An ICMP port unreachable about this connected socket.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(e.to_string());
                }
                Err(_) => {}
            }
        }
        let local = s.local_addr().map_err(|e| e.to_string())?;
        (answer.ok_or("no answer")?, local)
    } else {
        let s = TcpStream::connect_timeout(&target, Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let local = s.local_addr().map_err(|e| e.to_string())?;
        let mut w = s.try_clone().map_err(|e| e.to_string())?;
        w.write_all(b"WHO\n").map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        (line.trim().to_string(), local)
    };
    let (server, peer) = answer
        .split_once(' ')
        .ok_or_else(|| format!("bad reply '{answer}'"))?;
    Ok(json!({ "server": server, "peer_seen": peer, "local": local.to_string() }))
}

fn tcp_name(target: SocketAddr) -> Result<String, String> {
    tcp_name_port(target, &mut 0)
}

/// As `tcp_name`, from the local address `src`.
fn tcp_name_from(target: SocketAddr, src: std::net::IpAddr) -> Result<String, String> {
    use socket2::{Domain, Socket, Type};
    let e = |x: std::io::Error| x.to_string();
    let s = Socket::new(Domain::for_address(target), Type::STREAM, None).map_err(e)?;
    s.bind(&SocketAddr::new(src, 0).into()).map_err(e)?;
    s.connect_timeout(&target.into(), Duration::from_secs(3))
        .map_err(e)?;
    ask_name(s.into(), &mut 0)
}

/// As `tcp_name`; `port` is set to the client port the kernel chose.
fn tcp_name_port(target: SocketAddr, port: &mut u16) -> Result<String, String> {
    let s =
        TcpStream::connect_timeout(&target, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    ask_name(s, port)
}

/// Asks a connected server its name; `port` is set to our port.
fn ask_name(s: TcpStream, port: &mut u16) -> Result<String, String> {
    *port = s.local_addr().map_or(0, |a| a.port());
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    w.write_all(b"NAME\n").map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let n = line.trim().to_string();
    if n.is_empty() {
        Err("empty answer".into())
    } else {
        Ok(n)
    }
}

fn udp_name(target: SocketAddr, sport: u16) -> Result<String, String> {
    let s = UdpSocket::bind(("0.0.0.0", sport)).map_err(|e| format!("bind port {sport}: {e}"))?;
    s.connect(target).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    let mut buf = [0u8; 256];
    // Retries reuse the socket, so the 5-tuple (and uvs's choice) is the same.
    for _ in 0..6 {
        s.send(b"NAME").map_err(|e| e.to_string())?;
        if let Ok(n) = s.recv(&mut buf) {
            return Ok(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    Err("no answer".into())
}

fn timeline(target: SocketAddr, count: usize, every: Duration) -> serde_json::Value {
    let start = Instant::now();
    let mut out = Vec::new();
    for i in 0..count {
        let due = start + every * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut port = 0;
        out.push(match tcp_name_port(target, &mut port) {
            Ok(n) => json!({ "t_ms": t_ms, "server": n, "port": port }),
            Err(e) => json!({ "t_ms": t_ms, "error": e }),
        });
    }
    json!({ "results": out })
}

fn tally(results: impl Iterator<Item = Result<String, String>>) -> serde_json::Value {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(n) => *counts.entry(n).or_default() += 1,
            Err(e) => errors.push(e),
        }
    }
    errors.truncate(5);
    json!({ "counts": counts, "errors": errors.len(), "first_errors": errors })
}

fn stick(
    target: SocketAddr,
    messages: usize,
    interval: Duration,
    timeout: Duration,
) -> serde_json::Value {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut error = None;
    let started = Instant::now();
    match TcpStream::connect_timeout(&target, Duration::from_secs(3)) {
        Err(e) => error = Some(e.to_string()),
        Ok(s) => {
            s.set_read_timeout(Some(timeout)).ok();
            let mut w = s.try_clone().expect("clone socket");
            let mut r = BufReader::new(s);
            let mut line = String::new();
            for _ in 0..messages {
                if let Err(e) = w.write_all(b"NAME\n") {
                    error = Some(e.to_string());
                    break;
                }
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) => {
                        error = Some("connection closed".into());
                        break;
                    }
                    Ok(_) => *counts.entry(line.trim().to_string()).or_default() += 1,
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
                if !interval.is_zero() {
                    std::thread::sleep(interval);
                }
            }
        }
    }
    json!({ "counts": counts, "error": error, "seconds": started.elapsed().as_secs_f64() })
}

fn upload(target: SocketAddr, bytes: usize, pace: Duration) -> Result<serde_json::Value, String> {
    let s =
        TcpStream::connect_timeout(&target, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    // The send MSS right after the handshake: the server's advertised MSS
    // (minus options), before any PMTU discovery could lower it.
    let mss_at_connect = tcp_maxseg(&s);
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    w.write_all(format!("UPLOAD {bytes}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut h = FNV_INIT;
    let mut x: u32 = SEED;
    let mut chunk = vec![0u8; 65536];
    let mut left = bytes;
    let started = Instant::now();
    while left > 0 {
        let k = left.min(chunk.len());
        fill(&mut x, &mut chunk[..k]);
        fnv(&mut h, &chunk[..k]);
        w.write_all(&chunk[..k]).map_err(|e| e.to_string())?;
        left -= k;
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
    }
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let parts: Vec<&str> = line.split_whitespace().collect();
    let (server, got, their) = match parts.as_slice() {
        [n, c, hh] => (
            n.to_string(),
            c.parse::<usize>().unwrap_or(0),
            hh.to_string(),
        ),
        _ => return Err(format!("bad reply '{}'", line.trim())),
    };
    let ours = format!("{h:016x}");
    Ok(json!({
        "server": server, "sent": bytes, "received": got,
        "client_hash": ours, "server_hash": their, "intact": got == bytes && ours == their,
        "seconds": started.elapsed().as_secs_f64(), "mss_at_connect": mss_at_connect,
    }))
}

fn tcp_maxseg(s: &TcpStream) -> i64 {
    use std::os::fd::AsRawFd;
    getsockopt_int(s.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_MAXSEG)
}

/// An integer socket option, or -1 when it cannot be read.
fn getsockopt_int(fd: libc::c_int, level: libc::c_int, opt: libc::c_int) -> i64 {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for getsockopt to write.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            opt,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if r == 0 { i64::from(v) } else { -1 }
}

fn udp_blast(
    target: SocketAddr,
    count: u32,
    pause_after: u32,
    pause: Duration,
) -> serde_json::Value {
    let s = match UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(target).map(|_| s)) {
        Ok(s) => s,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let mut sent = 0u32;
    for i in 0..count {
        if i == pause_after && i > 0 {
            std::thread::sleep(pause);
        }
        // A full queue on the way (ENOBUFS) is part of a burst: go on.
        if s.send(&i.to_be_bytes()).is_ok() {
            sent += 1;
        }
    }
    json!({ "sent": sent })
}

fn udp_df(target: SocketAddr, size: usize) -> serde_json::Value {
    use std::os::fd::AsRawFd;
    let s = match UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(target).map(|_| s)) {
        Ok(s) => s,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    setsockopt(
        s.as_raw_fd(),
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        &libc::IP_PMTUDISC_DO,
    );
    let data = vec![0x42u8; size];
    let first = s.send(&data).map_err(|e| e.to_string());
    std::thread::sleep(Duration::from_millis(300));
    let second = s.send(&data).map_err(|e| e.to_string());
    let path_mtu = getsockopt_int(s.as_raw_fd(), libc::IPPROTO_IP, libc::IP_MTU);
    json!({
        "first_send": first.map(|n| n as i64).unwrap_or(-1),
        "second_send_error": second.err(),
        "path_mtu": path_mtu,
    })
}

fn main() -> ExitCode {
    let out = match Cli::parse().cmd {
        Cmd::Server {
            name,
            tcp,
            udp,
            http,
            dns,
        } => {
            let mut hs = Vec::new();
            for a in dns {
                hs.push(std::thread::spawn(move || serve_dns(a)));
            }
            for p in http {
                let n = name.clone();
                hs.push(std::thread::spawn(move || serve_http(n, p)));
            }
            for p in tcp {
                let n = name.clone();
                hs.push(std::thread::spawn(move || serve_tcp(n, p)));
            }
            for a in udp {
                let n = name.clone();
                hs.push(std::thread::spawn(move || serve_udp(n, a)));
            }
            for h in hs {
                if let Ok(Err(e)) = h.join() {
                    eprintln!("uvs-lab server: {e}");
                    return ExitCode::FAILURE;
                }
            }
            return ExitCode::SUCCESS;
        }
        Cmd::TcpNames {
            target,
            count,
            source: None,
        } => tally((0..count).map(|_| tcp_name(target))),
        Cmd::TcpNames {
            target,
            count,
            source: Some(src),
        } => tally((0..count).map(|_| tcp_name_from(target, src))),
        Cmd::TcpTimeline {
            target,
            count,
            interval_ms,
        } => timeline(target, count, Duration::from_millis(interval_ms)),
        Cmd::UdpNames {
            target,
            count,
            sport_base,
        } => {
            let base = sport_base.unwrap_or(20000 + (std::process::id() * 397 % 20000) as u16);
            tally((0..count).map(|i| udp_name(target, base.wrapping_add(i as u16))))
        }
        Cmd::TcpStick {
            target,
            messages,
            interval_ms,
            timeout_ms,
        } => stick(
            target,
            messages,
            Duration::from_millis(interval_ms),
            Duration::from_millis(timeout_ms),
        ),
        Cmd::UdpDf { target, size } => udp_df(target, size),
        Cmd::UdpBlast {
            target,
            count,
            pause_after,
            pause_ms,
        } => udp_blast(target, count, pause_after, Duration::from_millis(pause_ms)),
        Cmd::UdpSend { bind, target, hex } => {
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .collect();
            match UdpSocket::bind(bind).and_then(|s| s.send_to(&bytes, target)) {
                Ok(n) => json!({ "sent": n }),
                Err(e) => json!({ "error": e.to_string() }),
            }
        }
        Cmd::ConnRate {
            target,
            seconds,
            threads,
        } => conn_rate(target, Duration::from_secs_f64(seconds), threads),
        Cmd::UdpCapture {
            port,
            count,
            min_len,
            timeout_ms,
        } => udp_capture(port, count, min_len, Duration::from_millis(timeout_ms)),
        Cmd::Upload {
            target,
            bytes,
            pace_ms,
        } => match upload(target, bytes, Duration::from_millis(pace_ms)) {
            Ok(v) => v,
            Err(e) => json!({ "error": e, "intact": false }),
        },
        Cmd::Download { target, bytes } => match download(target, bytes) {
            Ok(v) => v,
            Err(e) => json!({ "error": e, "intact": false }),
        },
        Cmd::Who { target, udp } => who(target, udp).unwrap_or_else(|e| json!({ "error": e })),
    };
    println!("{out}");
    ExitCode::SUCCESS
}

/// `udp-capture`: IPv4 packets from a packet socket (SOCK_DGRAM: no
/// Ethernet header), incoming only.
fn udp_capture(port: u16, count: usize, min_len: usize, timeout: Duration) -> serde_json::Value {
    let proto = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto)) };
    if fd < 0 {
        return json!({ "error": std::io::Error::last_os_error().to_string() });
    }
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while out.len() < count && started.elapsed() < timeout {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 50) } <= 0 {
            continue;
        }
        // SAFETY: an all-zero sockaddr_ll is valid.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut flen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and from are valid for the lengths given.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut flen,
            )
        };
        if n <= 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let p = &buf[..n as usize];
        if p.len() < 20 || p[0] >> 4 != 4 || p[9] != 17 {
            continue;
        }
        let ihl = usize::from(p[0] & 15) * 4;
        if p.len() < ihl + 8 || u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]) != port {
            continue;
        }
        let payload = &p[ihl + 8..];
        if payload.len() >= min_len {
            out.push(
                payload
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            );
        }
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    json!({ "payloads": out })
}

/// `conn-rate`: full handshakes, each followed by a reset (SO_LINGER 0).
/// Source ports are taken in turn from 20000..60000 (split among the
/// threads), so a 4-tuple comes back only after 40,000 connections: the
/// kernel's own choice reuses a port at once after a reset, and a server
/// that has not seen the reset yet answers its SYN with a challenge ACK.
fn conn_rate(target: SocketAddr, d: Duration, threads: usize) -> serde_json::Value {
    let SocketAddr::V4(t4) = target else {
        return json!({ "error": "IPv4 only" });
    };
    let started = Instant::now();
    let n = threads.max(1) as u16;
    let span = 40000 / n;
    let workers: Vec<_> = (0..n)
        .map(|i| {
            std::thread::spawn(move || {
                let (mut ok, mut failed, mut busy) = (0u64, 0u64, Duration::ZERO);
                let mut port = 20000 + i * span;
                while started.elapsed() < d {
                    port = if port + 1 >= 20000 + (i + 1) * span {
                        20000 + i * span
                    } else {
                        port + 1
                    };
                    let t = Instant::now();
                    match connect_reset(t4, port) {
                        true => {
                            ok += 1;
                            busy += t.elapsed();
                        }
                        false => failed += 1,
                    }
                }
                (ok, failed, busy)
            })
        })
        .collect();
    let (mut ok, mut failed, mut busy) = (0, 0, Duration::ZERO);
    for w in workers {
        let (o, f, b) = w.join().unwrap_or((0, 0, Duration::ZERO));
        ok += o;
        failed += f;
        busy += b;
    }
    let secs = started.elapsed().as_secs_f64();
    // The rate over the successful connections' own time: a SYN that the
    // server's full accept queue dropped costs a 1 s retransmit whatever
    // the path, which would measure the server, not the path.
    let per = busy.as_secs_f64() / f64::from(n);
    json!({
        "connections": ok, "failed": failed, "seconds": secs,
        "per_second": if per > 0.0 { ok as f64 / per } else { 0.0 },
        "handshake_us": if ok > 0 { busy.as_secs_f64() * 1e6 / ok as f64 } else { 0.0 },
    })
}

/// One connection from source port `sport` (1 s at most), closed with a
/// reset.
fn connect_reset(to: std::net::SocketAddrV4, sport: u16) -> bool {
    let sin = |a: std::net::Ipv4Addr, p: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: p.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on an fd this function owns; every
    // pointer is to a live value of the size given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return false;
        }
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &1 as &libc::c_int);
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv);
        let me = sin(std::net::Ipv4Addr::UNSPECIFIED, sport);
        let peer = sin(*to.ip(), to.port());
        let ok = libc::bind(fd, (&me as *const libc::sockaddr_in).cast(), len) == 0
            && libc::connect(fd, (&peer as *const libc::sockaddr_in).cast(), len) == 0;
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &l);
        libc::close(fd);
        ok
    }
}

/// setsockopt(2) with a value of any plain type, its size taken from it.
fn setsockopt<T>(fd: libc::c_int, level: libc::c_int, opt: libc::c_int, v: &T) -> libc::c_int {
    // SAFETY: v is a live value and its size is passed with it.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    }
}
