//! The modes that need socket options, packet sockets or raw socket
//! calls: the path MTU a DF datagram learns (`udp-df`), captured UDP
//! payloads (`udp-capture`), handshakes closed by a reset (`conn-rate`).

use serde_json::json;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

pub fn udp_df(target: SocketAddr, size: usize) -> serde_json::Value {
    use std::os::fd::AsRawFd;
    // IPv6 has no DF bit: a socket that never fragments (PMTUDISC_DO)
    // learns the path MTU from "packet too big" the same way.
    let (any, level, discover, do_, mtu) = match target {
        SocketAddr::V4(_) => (
            "0.0.0.0:0",
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
            libc::IP_MTU,
        ),
        SocketAddr::V6(_) => (
            "[::]:0",
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DO,
            libc::IPV6_MTU,
        ),
    };
    let s = match UdpSocket::bind(any).and_then(|s| s.connect(target).map(|_| s)) {
        Ok(s) => s,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    setsockopt(s.as_raw_fd(), level, discover, &do_);
    let data = vec![0x42u8; size];
    let first = s.send(&data).map_err(|e| e.to_string());
    std::thread::sleep(Duration::from_millis(300));
    let second = s.send(&data).map_err(|e| e.to_string());
    let path_mtu = getsockopt_int(s.as_raw_fd(), level, mtu);
    json!({
        "first_send": first.map(|n| n as i64).unwrap_or(-1),
        "second_send_error": second.err(),
        "path_mtu": path_mtu,
    })
}

/// `udp-capture`: IPv4 packets from a packet socket (SOCK_DGRAM: no
/// Ethernet header), incoming only.
pub fn udp_capture(
    port: u16,
    count: usize,
    min_len: usize,
    timeout: Duration,
) -> serde_json::Value {
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
pub fn conn_rate(target: SocketAddr, d: Duration, threads: usize) -> serde_json::Value {
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

pub fn tcp_maxseg(s: &TcpStream) -> i64 {
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
