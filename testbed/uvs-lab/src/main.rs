//! `uvs-lab`: the traffic ends of the namespace testbed. `server` runs on a
//! real server and answers with its own name (TCP and UDP), the client
//! address it sees, a byte count and hash of uploads, downloads of any size,
//! and HTTP for load generators; the `client` modes generate the traffic the
//! demo and the end-to-end tests measure, and print JSON.

mod client;
mod content;
mod hostile6;
mod raw;
mod server;

use clap::{Parser, Subcommand};
use client::{
    any_for, download, stick, tally, tcp_name, tcp_name_from, timeline, udp_blast, udp_name,
    upload, who,
};
use raw::{conn_rate, udp_capture, udp_df};
use serde_json::json;
use server::{serve_dns, serve_http, serve_tcp, serve_udp};
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

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
        /// Send from this local address (bound with the port).
        #[arg(long)]
        source: Option<std::net::IpAddr>,
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
    /// the path MTU the kernel learned (from ICMP "fragmentation needed"
    /// or ICMPv6 "packet too big").
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
        /// Wait this long between datagrams (one flow that lasts a while).
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
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
    /// Send ROUNDS of a catalogue of malformed and hostile IPv6 frames
    /// from a packet socket on INTERFACE to DST_MAC, addressed to DST from
    /// SRC (a flood the director must survive).
    Hostile6 {
        #[arg(long, default_value = "eth0")]
        interface: String,
        #[arg(long, value_parser = parse_mac)]
        dst_mac: [u8; 6],
        #[arg(long)]
        src: std::net::Ipv6Addr,
        #[arg(long)]
        dst: std::net::Ipv6Addr,
        #[arg(long, default_value_t = 1000)]
        rounds: u32,
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
            source,
        } => {
            let base = sport_base.unwrap_or(20000 + (std::process::id() * 397 % 20000) as u16);
            let from = source.unwrap_or_else(|| any_for(target));
            tally((0..count).map(|i| udp_name(target, (from, base.wrapping_add(i as u16)))))
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
            interval_ms,
        } => udp_blast(
            target,
            count,
            (pause_after, Duration::from_millis(pause_ms)),
            Duration::from_millis(interval_ms),
        ),
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
        Cmd::Hostile6 {
            interface,
            dst_mac,
            src,
            dst,
            rounds,
        } => hostile6::flood(
            &hostile6::Target {
                interface,
                dst_mac,
                src,
                dst,
            },
            rounds,
        ),
        Cmd::Who { target, udp } => who(target, udp).unwrap_or_else(|e| json!({ "error": e })),
    };
    println!("{out}");
    ExitCode::SUCCESS
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    hostile6::parse_mac(s).ok_or_else(|| format!("not a MAC address: {s}"))
}
