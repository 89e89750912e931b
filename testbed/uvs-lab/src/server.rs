//! `server`: the real server's end. TCP answers NAME, WHO, DOWNLOAD and
//! UPLOAD lines; UDP answers NAME and WHO; a toy DNS server and HTTP/1.1
//! for health checks and load generators.

use crate::content::{FNV_INIT, SEED, content_hash, fill, fnv};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};

pub fn serve_tcp(name: String, port: u16) -> std::io::Result<()> {
    serve_sessions(name, port, tcp_session)
}

/// Accepts TCP connections on `port` (all addresses of both families,
/// VIPs included), each served by `session` on a thread of its own. The
/// IPv6 listener is IPv6-only (IPv4 peers keep their plain addresses) and
/// left out where the host has no IPv6.
fn serve_sessions(
    name: String,
    port: u16,
    session: fn(&str, TcpStream) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let l = TcpListener::bind(("0.0.0.0", port))?;
    if let Ok(l6) = listen_v6_only(port) {
        let name = name.clone();
        std::thread::spawn(move || accept(&name, &l6, session));
    }
    accept(&name, &l, session);
    Ok(())
}

/// A TCP listener on [::]:port that takes IPv6 connections only.
fn listen_v6_only(port: u16) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV6, Type::STREAM, None)?;
    s.set_only_v6(true)?;
    s.set_reuse_address(true)?;
    let addr = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

fn accept(name: &str, l: &TcpListener, session: fn(&str, TcpStream) -> std::io::Result<()>) {
    for s in l.incoming() {
        let Ok(s) = s else { continue };
        let name = name.to_string();
        std::thread::spawn(move || {
            let _ = session(&name, s);
        });
    }
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

pub fn serve_udp(name: String, addr: SocketAddr) -> std::io::Result<()> {
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
pub fn serve_dns(addr: SocketAddr) -> std::io::Result<()> {
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
pub fn serve_http(name: String, port: u16) -> std::io::Result<()> {
    serve_sessions(name, port, http_session)
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
