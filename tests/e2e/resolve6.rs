//! IPv6 real servers' next hops, resolved as IPv4 ones are: through the
//! kernel's routing and neighbour tables (`uvs::control::resolve`). The
//! daemon does not take IPv6 real servers yet, so the resolver runs here,
//! on a thread that entered the lab's director namespace. Each IPv6 case
//! stands beside its IPv4 twin, whose answer it must give but for the
//! addresses (and neighbour discovery's words for ARP's).

use crate::support::{DIR6, Lab, RS1, RS1_6};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread::JoinHandle;
use uvs::control::resolve::{self, Hop};
use uvs::host::netlink::Netlink;
use uvs::host::sys;
use uvs::lvs::service::Forward::{self, Masq, Route, Tunnel};
use uvs::lvs::table::NextHop;
use uvs::wire::MacAddr;

const DIR: &str = "198.18.0.2";
/// The router (its eth0, on the director's segment) and the real server
/// behind it (--routed).
const RT: &str = "198.18.0.1";
const RT6: &str = "2001:2::1";
const RR1: &str = "198.18.1.11";
const RR1_6: &str = "2001:2:0:1::11";
/// A NAT real server, on the director's eth1 (--nat).
const NAT1: &str = "198.18.2.11";
const NAT1_6: &str = "2001:2:0:2::11";
/// On the director's segment, but nobody has it (yet).
const ABSENT: &str = "198.18.0.77";
const ABSENT6: &str = "2001:2::77";
/// No route to it at all.
const NOWHERE: &str = "198.18.9.9";
const NOWHERE6: &str = "2001:2:9::9";

type Reply<T> = mpsc::Sender<T>;

/// A question for the resolver thread, with the links (by name) the
/// director would send on, and where to answer.
enum Ask {
    Hop(
        IpAddr,
        Forward,
        Vec<&'static str>,
        Reply<Result<Hop, String>>,
    ),
    Mac(
        IpAddr,
        Forward,
        u8,
        Vec<&'static str>,
        Reply<Option<MacAddr>>,
    ),
}

/// `uvs::control::resolve` in the lab's director namespace: a thread that
/// entered it and answers on its own runtime, until dropped.
struct Resolver {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Ask>>,
    thread: Option<JoinHandle<()>>,
}

/// Moves this thread alone into network namespace `ns`.
fn enter(ns: &str) -> Result<(), String> {
    let f = File::open(format!("/var/run/netns/{ns}")).map_err(|e| format!("{ns}: {e}"))?;
    // SAFETY: f is an open network namespace file; setns moves this
    // thread alone into it.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The director's links as `resolve` takes them, looked up in the
/// namespace this thread is in.
fn links(names: &[&str]) -> Vec<(u32, String)> {
    let index = |n: &str| sys::ifindex(n).unwrap_or_else(|e| panic!("{n}: {e}")) as u32;
    names.iter().map(|n| (index(n), n.to_string())).collect()
}

async fn answer(nl: &Netlink, ask: Ask) {
    match ask {
        Ask::Hop(ip, fwd, names, reply) => {
            let hop = resolve::next_hop(nl, ip, fwd, &links(&names)).await;
            let _ = reply.send(hop.map_err(|e| e.to_string()));
        }
        Ask::Mac(ip, fwd, link, names, reply) => {
            let mac = resolve::current_mac(nl, ip, fwd, link, &links(&names)).await;
            let _ = reply.send(mac);
        }
    }
}

impl Resolver {
    fn start(l: &Lab) -> Resolver {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready, started) = mpsc::channel();
        let ns = l.ns("dir");
        let thread = std::thread::spawn(move || {
            if let Err(why) = enter(&ns) {
                let _ = ready.send(Err(why));
                return;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                // Opened after setns: the socket belongs to the lab.
                let nl = match Netlink::new() {
                    Ok(nl) => nl,
                    Err(e) => return drop(ready.send(Err(e.to_string()))),
                };
                let _ = ready.send(Ok(()));
                while let Some(ask) = rx.recv().await {
                    answer(&nl, ask).await;
                }
            });
        });
        let mut r = Resolver {
            tx: Some(tx),
            thread: Some(thread),
        };
        if let Err(why) = started.recv().unwrap_or_else(|_| Err("thread died".into())) {
            r.stop();
            panic!("resolver in the director namespace: {why}");
        }
        r
    }

    fn ask<T>(&self, ask: impl FnOnce(Reply<T>) -> Ask) -> T {
        let (reply, answer) = mpsc::channel();
        let tx = self.tx.as_ref().expect("running");
        tx.send(ask(reply)).expect("the resolver thread runs");
        answer.recv().expect("the resolver thread answers")
    }

    /// `resolve::next_hop` of `ip` sent through `links`; an error as
    /// the operator reads it.
    fn hop(&self, ip: &str, fwd: Forward, links: &[&'static str]) -> Result<Hop, String> {
        let ip = ip.parse().unwrap();
        self.ask(|r| Ask::Hop(ip, fwd, links.to_vec(), r))
    }

    /// `resolve::current_mac` of `ip` on `link` of `links`.
    fn mac(&self, ip: &str, fwd: Forward, link: u8, links: &[&'static str]) -> Option<MacAddr> {
        let ip = ip.parse().unwrap();
        self.ask(|r| Ask::Mac(ip, fwd, link, links.to_vec(), r))
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn resolved(link: u8, mac: &str) -> Result<Hop, String> {
    let mac = mac.parse().unwrap();
    Ok(Hop::Resolved(NextHop { link, mac }))
}

/// `m`, an IPv4 case's error or reason, as its IPv6 twin must say it:
/// each (IPv4, IPv6) pair of `addrs` swapped, longest first where one
/// starts another.
fn as_v6(m: &str, addrs: &[(&str, &str)]) -> String {
    let m = addrs
        .iter()
        .fold(m.to_string(), |m, (a, b)| m.replace(a, b));
    m.replace("no ARP reply", "no neighbour advertisement")
}

const ETH0: &[&str] = &["eth0"];
const BOTH: &[&str] = &["eth0", "eth1"];

#[test]
fn ipv6_real_servers_resolve_as_their_ipv4_twins() {
    let Some(l) = Lab::up_with(1, &["--routed", "--nat"]) else {
        return;
    };
    let (rs1, rt, nat1) = (l.mac("rs1"), l.mac("rt"), l.mac("nat1"));
    let r = Resolver::start(&l);
    let twins = |v4: &str, v6: &str, fwd, links: &[&'static str]| {
        (r.hop(v4, fwd, links), r.hop(v6, fwd, links))
    };

    // On-link: the server itself, whatever the method, and the refresh
    // finds the same MAC.
    for fwd in [Route, Tunnel, Masq] {
        let (a, b) = twins(RS1, RS1_6, fwd, ETH0);
        assert_eq!((a, b), (resolved(0, &rs1), resolved(0, &rs1)), "{fwd:?}");
        let now = r.mac(RS1_6, fwd, 0, ETH0).map(|m| m.to_string());
        assert_eq!(now.as_deref(), Some(rs1.as_str()), "{fwd:?}");
    }

    // Behind the router: its MAC for TUN and NAT, refused for DR.
    for fwd in [Tunnel, Masq] {
        let (a, b) = twins(RR1, RR1_6, fwd, ETH0);
        assert_eq!((a, b), (resolved(0, &rt), resolved(0, &rt)), "{fwd:?}");
        let now = r.mac(RR1_6, fwd, 0, ETH0).map(|m| m.to_string());
        assert_eq!(now.as_deref(), Some(rt.as_str()), "{fwd:?}");
    }
    let (a, b) = twins(RR1, RR1_6, Route, ETH0);
    let (a, b) = (a.unwrap_err(), b.unwrap_err());
    assert!(
        b.contains(&format!(
            "{RR1_6} is not on-link on eth0: the route goes via {RT6}"
        )),
        "{b}"
    );
    assert_eq!(b, as_v6(&a, &[(RR1, RR1_6), (RT, RT6)]));

    // The director's own address, for every method.
    for fwd in [Route, Tunnel, Masq] {
        let (a, b) = twins(DIR, DIR6, fwd, ETH0);
        let (a, b) = (a.unwrap_err(), b.unwrap_err());
        assert!(b.contains("is an address of the director itself"), "{b}");
        assert_eq!(b, as_v6(&a, &[(DIR, DIR6)]));
    }

    // Routed out of a link uvs does not send on; then on it (eth1).
    let (a, b) = twins(NAT1, NAT1_6, Masq, ETH0);
    let (a, b) = (a.unwrap_err(), b.unwrap_err());
    assert!(
        b.contains("is reached through eth1, not through eth0"),
        "{b}"
    );
    assert_eq!(b, as_v6(&a, &[(NAT1, NAT1_6)]));
    let (a, b) = twins(NAT1, NAT1_6, Masq, BOTH);
    assert_eq!((a, b), (resolved(1, &nat1), resolved(1, &nat1)));

    // No route at all: DR refuses it, TUN keeps it pending.
    let (a, b) = twins(NOWHERE, NOWHERE6, Route, ETH0);
    let (a, b) = (a.unwrap_err(), b.unwrap_err());
    assert!(b.starts_with(&format!("no route to {NOWHERE6}: ")), "{b}");
    assert_eq!(b, as_v6(&a, &[(NOWHERE, NOWHERE6)]));
    let (a, b) = twins(NOWHERE, NOWHERE6, Tunnel, ETH0);
    assert!(matches!(a, Ok(Hop::Pending { link: 0, .. })), "{a:?}");
    assert!(matches!(b, Ok(Hop::Pending { link: 0, .. })), "{b:?}");

    // An IPv4 route through an IPv6 next hop: the router, found by
    // neighbour discovery; DR names it as the gateway.
    let o = l.sh(
        "dir",
        &format!("ip route add 198.18.8.0/24 via inet6 {RT6}"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(r.hop("198.18.8.8", Tunnel, ETH0), resolved(0, &rt));
    let e = r.hop("198.18.8.8", Route, ETH0).unwrap_err();
    assert!(e.contains(&format!("the route goes via {RT6}")), "{e}");
}

#[test]
fn an_absent_ipv6_server_is_pending_until_it_answers_solicitations() {
    let Some(l) = Lab::up(1) else { return };
    let r = Resolver::start(&l);

    // Nobody answers: pending on eth0, as the IPv4 twin is, and the
    // kernel did solicit it (its entry failed).
    let (a, b) = (r.hop(ABSENT, Route, ETH0), r.hop(ABSENT6, Route, ETH0));
    let why = |h: Result<Hop, String>| match h {
        Ok(Hop::Pending { link: 0, why }) => why,
        h => panic!("not pending on eth0: {h:?}"),
    };
    let (a, b) = (why(a), why(b));
    assert!(b.contains("no neighbour advertisement"), "{b}");
    assert_eq!(b, as_v6(&a, &[(ABSENT, ABSENT6)]));
    let n = l.sh("dir", &format!("ip -6 neigh show {ABSENT6} dev eth0"));
    let n = String::from_utf8_lossy(&n.stdout).into_owned();
    assert!(n.contains("FAILED") || n.contains("INCOMPLETE"), "{n:?}");
    assert_eq!(r.mac(ABSENT6, Route, 0, ETH0), None);

    // It comes up on rs1: resolved at the next try, and refreshed.
    let o = l.sh(
        "rs1",
        &format!("ip -6 addr add {ABSENT6}/64 dev eth0 nodad"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rs1 = l.mac("rs1");
    assert_eq!(r.hop(ABSENT6, Route, ETH0), resolved(0, &rs1));
    let now = r.mac(ABSENT6, Route, 0, ETH0).map(|m| m.to_string());
    assert_eq!(now, Some(rs1));
}
