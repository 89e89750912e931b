//! The client modes over ordinary sockets: names over TCP and UDP (one
//! connection each, on a timeline, or many on one), who the server sees,
//! uploads and downloads checked by hash, UDP bursts.

use crate::content::{FNV_INIT, SEED, fill, fnv};
use crate::raw::tcp_maxseg;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

pub fn download(target: SocketAddr, bytes: usize) -> Result<serde_json::Value, String> {
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

/// The unspecified address of `target`'s family, to bind a client to.
pub fn any_for(target: SocketAddr) -> std::net::IpAddr {
    match target {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

pub fn who(target: SocketAddr, udp: bool) -> Result<serde_json::Value, String> {
    let (answer, local) = if udp {
        let s = UdpSocket::bind((any_for(target), 0)).map_err(|e| e.to_string())?;
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
        let local = s.local_addr().map_err(|e| e.to_string())?;
        (request(s, b"WHO\n")?, local)
    };
    let (server, peer) = answer
        .split_once(' ')
        .ok_or_else(|| format!("bad reply '{answer}'"))?;
    Ok(json!({ "server": server, "peer_seen": peer, "local": local.to_string() }))
}

pub fn tcp_name(target: SocketAddr) -> Result<String, String> {
    tcp_name_port(target, &mut 0)
}

/// As `tcp_name`, from the local address `src`.
pub fn tcp_name_from(target: SocketAddr, src: std::net::IpAddr) -> Result<String, String> {
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

/// One request line on a connected server (3 s to answer); its answer
/// line, trimmed.
fn request(s: TcpStream, req: &[u8]) -> Result<String, String> {
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    w.write_all(req).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(line.trim().to_string())
}

/// Asks a connected server its name; `port` is set to our port.
fn ask_name(s: TcpStream, port: &mut u16) -> Result<String, String> {
    *port = s.local_addr().map_or(0, |a| a.port());
    let n = request(s, b"NAME\n")?;
    if n.is_empty() {
        Err("empty answer".into())
    } else {
        Ok(n)
    }
}

/// One NAME request over UDP from `(addr, sport)` to `target`.
pub fn udp_name(target: SocketAddr, (addr, sport): (IpAddr, u16)) -> Result<String, String> {
    let s = UdpSocket::bind((addr, sport)).map_err(|e| format!("bind {addr} port {sport}: {e}"))?;
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

pub fn timeline(target: SocketAddr, count: usize, every: Duration) -> serde_json::Value {
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

pub fn tally(results: impl Iterator<Item = Result<String, String>>) -> serde_json::Value {
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

pub fn stick(
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

pub fn upload(
    target: SocketAddr,
    bytes: usize,
    pace: Duration,
) -> Result<serde_json::Value, String> {
    let s =
        TcpStream::connect_timeout(&target, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    // A stalled path fails the upload instead of hanging the test.
    s.set_write_timeout(Some(Duration::from_secs(30))).ok();
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

/// `count` datagrams to `target` from one socket, `interval` apart (as
/// fast as possible without one), waiting `pause` once after
/// `pause_after` of them.
pub fn udp_blast(
    target: SocketAddr,
    count: u32,
    (pause_after, pause): (u32, Duration),
    interval: Duration,
) -> serde_json::Value {
    let s = match UdpSocket::bind((any_for(target), 0)).and_then(|s| s.connect(target).map(|_| s)) {
        Ok(s) => s,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let mut sent = 0u32;
    for i in 0..count {
        if i == pause_after && i > 0 {
            std::thread::sleep(pause);
        } else if i > 0 && !interval.is_zero() {
            std::thread::sleep(interval);
        }
        // A full queue on the way (ENOBUFS) is part of a burst: go on.
        if s.send(&i.to_be_bytes()).is_ok() {
            sent += 1;
        }
    }
    json!({ "sent": sent })
}
