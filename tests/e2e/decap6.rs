//! `uvs decap` unwraps every encapsulation IPVS sends for TUN: the three
//! with IPv6 (IPv6-in-IPv6, IPv4-in-IPv6, IPv6-in-IPv4) and IPv4-in-IPv4.
//! The data plane does not tunnel IPv6 yet, so the director's side is a
//! stand-in: in the lab's director namespace the VIPs are routed into a
//! TUN device, and a thread of this test wraps each packet read from it in
//! the outer header of the mix under test and sends it to rs1 from a raw
//! socket (the kernel writes the outer header). rs1 has both VIPs on lo and
//! answers the client straight from them, as DR and TUN real servers do.

use crate::support::{CL6, Lab, RS1, RS1_6, VIP, VIP6, finding, tally, wait_until};
use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use uvs::decap::{ENCAPSULATIONS, IPV6_INSIDE, Outer, encapsulation};
use uvs::host::sys;
use uvs::wire::{Ipv4Packet, Ipv6Packet, ip_proto};

const CL: &str = "198.18.0.10";

/// What the stand-in director did: packets wrapped, per encapsulation (in
/// `ENCAPSULATIONS` order), and packets from a VIP that came its way
/// (replies, which must not: they go straight to the client).
#[derive(Default)]
struct Seen {
    wrapped: [AtomicU64; 4],
    replies: AtomicU64,
}

/// The stand-in director, a thread in the lab's director namespace. It
/// stops, closing its TUN device and sockets, when dropped (before the
/// lab: see `Rig`).
struct Encapsulator {
    outer_v6: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    thread: Option<JoinHandle<()>>,
}

impl Encapsulator {
    /// Starts it in `l`'s director namespace, with the TUN device `enc0`.
    fn start(l: &Lab) -> Encapsulator {
        let (outer_v6, stop, seen) = (Arc::<AtomicBool>::default(), Arc::default(), Arc::default());
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn({
            let (ns, outer_v6, stop, seen) = (
                l.ns("dir"),
                outer_v6.clone(),
                Arc::clone(&stop),
                Arc::clone(&seen),
            );
            move || match Sockets::open(&ns) {
                Ok(s) => {
                    let _ = tx.send(Ok(()));
                    s.forward(&outer_v6, &stop, &seen);
                }
                Err(why) => {
                    let _ = tx.send(Err(why));
                }
            }
        });
        let mut e = Encapsulator {
            outer_v6,
            stop,
            seen,
            thread: Some(thread),
        };
        if let Err(why) = rx.recv().unwrap_or_else(|_| Err("thread died".into())) {
            e.stop();
            panic!("stand-in director: {why}");
        }
        e
    }

    /// Wrap in an IPv6 (true) or IPv4 (false) outer header from now on.
    fn outer(&self, v6: bool) {
        self.outer_v6.store(v6, Ordering::SeqCst);
    }

    fn wrapped(&self, i: usize) -> u64 {
        self.seen.wrapped[i].load(Ordering::SeqCst)
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Encapsulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The stand-in's TUN device and one raw sending socket an encapsulation.
struct Sockets {
    tun: OwnedFd,
    raw: Vec<OwnedFd>,
}

impl Sockets {
    /// Enters network namespace `ns` (this thread only) and opens them
    /// there; nothing is opened if entering fails.
    fn open(ns: &str) -> Result<Sockets, String> {
        let f = File::open(format!("/var/run/netns/{ns}")).map_err(|e| format!("{ns}: {e}"))?;
        // SAFETY: f is an open network namespace file; setns moves this
        // thread alone into it.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
        }
        let tun = sys::open_tun("enc0").map_err(|e| e.to_string())?;
        let raw = ENCAPSULATIONS
            .iter()
            .map(|&(outer, proto)| {
                let family = match outer {
                    Outer::V4 => libc::AF_INET,
                    Outer::V6 => libc::AF_INET6,
                };
                sys::socket(family, libc::SOCK_RAW, proto.into()).map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(Sockets { tun, raw })
    }

    /// Wraps every packet routed into the TUN device and sends it to rs1,
    /// until `stop`.
    fn forward(&self, outer_v6: &AtomicBool, stop: &AtomicBool, seen: &Seen) {
        let mut fds = sys::pollin([self.tun.as_raw_fd()].into_iter());
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            if sys::poll(&mut fds, Duration::from_millis(50)).unwrap_or(0) == 0 {
                continue;
            }
            let Ok(n) = rustix::io::read(&self.tun, &mut buf) else {
                continue;
            };
            let p = &buf[..n];
            let (src, proto): (IpAddr, u8) = match p.first().map(|b| b >> 4) {
                Some(4) => match Ipv4Packet::new_checked(p) {
                    Ok(h) => (h.src_addr().into(), ip_proto::IPIP),
                    Err(_) => continue,
                },
                Some(6) => match Ipv6Packet::new_checked(p) {
                    Ok(h) => (h.src_addr().into(), IPV6_INSIDE),
                    Err(_) => continue,
                },
                _ => continue,
            };
            if src.to_string() == VIP || src.to_string() == VIP6 {
                seen.replies.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            let outer = if outer_v6.load(Ordering::SeqCst) {
                Outer::V6
            } else {
                Outer::V4
            };
            let i = ENCAPSULATIONS
                .iter()
                .position(|&e| e == (outer, proto))
                .unwrap();
            let to: SocketAddr = match outer {
                Outer::V4 => format!("{RS1}:0"),
                Outer::V6 => format!("[{RS1_6}]:0"),
            }
            .parse()
            .unwrap();
            let flags = rustix::net::SendFlags::empty();
            if rustix::net::sendto(&self.raw[i], p, flags, &to).is_ok() {
                seen.wrapped[i].fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// The lab and its stand-in director, which goes first (it holds a TUN
/// device in the lab's namespace).
struct Rig {
    e: Encapsulator,
    l: Lab,
}

/// The lab with the stand-in director: the client reaches both VIPs
/// through it; rs1 answers on TCP 80 and UDP 53 of both.
fn lab() -> Option<Rig> {
    let mut l = Lab::up(1)?;
    let udp6 = format!("[{VIP6}]:53");
    l.start_server_on(
        "rs1",
        &["--tcp", "80", "--udp", &format!("{VIP}:53"), "--udp", &udp6],
    );
    let e = Encapsulator::start(&l);
    for (node, script) in [
        (
            "dir",
            format!(
                "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 && \
                 ip route add {VIP}/32 dev enc0 && ip -6 route add {VIP6}/128 dev enc0"
            ),
        ),
        (
            "cl",
            format!(
                "ip route add {VIP}/32 via 198.18.0.2 && ip -6 route add {VIP6}/128 via 2001:2::2"
            ),
        ),
    ] {
        let o = l.sh(node, &script);
        assert!(
            o.status.success(),
            "{node}: {script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let listening = || {
        let s = String::from_utf8_lossy(&l.sh("rs1", "ss -Hln").stdout).into_owned();
        s.contains("[::]:80") && s.contains(&udp6)
    };
    wait_until(Duration::from_secs(5), listening, || "no listeners".into());
    Some(Rig { e, l })
}

/// The ICMP errors rs1 sent (ICMPv6 parameter problems for an IPv6
/// outer header, destination unreachable for an IPv4 one).
fn icmp_errors(l: &Lab) -> (u64, u64) {
    let s: HashMap<_, _> = l.nstat("rs1");
    let get = |k: &str| s.get(k).copied().unwrap_or(0);
    (get("Icmp6OutParmProblems"), get("IcmpOutDestUnreachs"))
}

/// The mixes: (outer header IPv6, target VIP), named by encapsulation.
fn mixes() -> Vec<(bool, &'static str, &'static str)> {
    ENCAPSULATIONS
        .iter()
        .map(|&(outer, proto)| {
            let vip = if proto == ip_proto::IPIP { VIP } else { VIP6 };
            (outer == Outer::V6, vip, encapsulation(outer, proto))
        })
        .collect()
}

fn target(vip: &str, port: u16) -> String {
    SocketAddr::new(vip.parse().unwrap(), port).to_string()
}

#[test]
fn every_ipvs_encapsulation_reaches_the_vip_and_the_reply_goes_straight_back() {
    let Some(mut rig) = lab() else { return };
    let (e, l) = (&rig.e, &mut rig.l);

    // Without a decapsulator the kernel refuses each IPv6 mix, with an
    // ICMP error to the stand-in director, and the client gets nothing.
    for (i, (outer_v6, vip, name)) in mixes().into_iter().enumerate() {
        if !outer_v6 && vip == VIP {
            continue; // IPv4-in-IPv4: tests/e2e/tun.rs has its control
        }
        e.outer(outer_v6);
        let before = icmp_errors(l);
        let t = l.client(&["tcp-names", "--target", &target(vip, 80), "--count", "1"]);
        assert_eq!(t["errors"].as_u64(), Some(1), "{name}: {t}");
        assert!(e.wrapped(i) > 0, "{name}: nothing was sent");
        let after = icmp_errors(l);
        let errors = if outer_v6 {
            after.0 - before.0
        } else {
            after.1 - before.1
        };
        assert!(errors > 0, "{name}: no ICMP error without a decapsulator");
    }

    l.start_decap("rs1");
    l.assert_log(
        "decap-rs1.log",
        "IPv4-in-IPv4, IPv6-in-IPv4, IPv4-in-IPv6, IPv6-in-IPv6 packets are delivered through uvs-decap0",
    );
    let before = icmp_errors(l);
    for (i, (outer_v6, vip, name)) in mixes().into_iter().enumerate() {
        e.outer(outer_v6);
        let sent = e.wrapped(i);
        let t = l.client(&["tcp-names", "--target", &target(vip, 80), "--count", "3"]);
        assert_eq!(tally(&t, "rs1"), (3, Some(0)), "{name}: {t}");
        let u = l.client(&["udp-names", "--target", &target(vip, 53), "--count", "3"]);
        assert_eq!(tally(&u, "rs1"), (3, Some(0)), "{name}: {u}");
        // The server saw the client's own address: the inner packet as
        // the client sent it.
        let who = l.client(&["who", "--target", &target(vip, 80)]);
        let client = if vip == VIP {
            format!("{CL}:")
        } else {
            format!("[{CL6}]:")
        };
        assert!(
            who["peer_seen"]
                .as_str()
                .is_some_and(|p| p.starts_with(&client)),
            "{name}: {who}"
        );
        assert!(
            e.wrapped(i) > sent,
            "{name}: nothing went through the tunnel"
        );
    }
    // No reply came back through the stand-in director, rs1 refused
    // nothing, and uvs decap dropped nothing.
    assert_eq!(e.seen.replies.load(Ordering::SeqCst), 0);
    assert_eq!(icmp_errors(l), before);
    assert!(!l.log("decap-rs1.log").contains("dropped"));

    // And the audit's IPv6 decapsulator finding passes with it.
    let o = l.exec(
        "rs1",
        env!("CARGO_BIN_EXE_uvs"),
        &["audit", "--json", "--mode", "tun", "--vip", VIP6],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("audit JSON");
    let d = finding(&v, "decapsulator ipv6");
    assert_eq!(
        (d["status"].as_str(), d["value"].as_str()),
        (Some("ok"), Some("uvs decap is running")),
        "{v}"
    );
}
