//! The director's two planes assembled in memory, for the tests and the
//! benchmarks: a model edited with table ops, published through the real
//! `Publisher`, and a `Dataplane` on one or more in-memory links
//! ([`crate::io::memory`]). Nothing here runs in `uvs director`.

use crate::control::model::Model;
use crate::control::proto::ServiceDef;
use crate::control::proto::{DestSpec, Op};
use crate::control::publish::Publisher;
use crate::dataplane::{Dataplane, LinkParams};
use crate::io::memory::MemoryIo;
use crate::io::{PacketIo, RxMeta};
use crate::lvs::conn::DEFAULT_MAX_CONNS;
use crate::lvs::service::{Forward, Protocol, ServiceKey};
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::table::{LinkRoute, NextHop};
use crate::wire::MacAddr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

pub const DIR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub const CL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 10];
pub const VIP: [u8; 4] = [198, 18, 0, 100];
/// The director's address on link 0 (and the outer source of TUN).
pub const DIR_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The IPv6 twins of `VIP` and `DIR_ADDR` in the namespace lab's plan
/// (testbed/README.md: 198.18.N.H is 2001:2:0:N::H); `DIR_ADDR6` is the
/// outer source of IPv6 tunnels.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);
pub const DIR_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// How the rig resolves a real server's next hop (what netlink does in
/// the daemon).
pub type HopFn = fn(IpAddr, Forward) -> NextHop;

/// A benchmark's size: `full` under `cargo bench` (which passes
/// `--bench`), `smoke` when `cargo test --all-targets` runs it as a quick
/// check that it still works; the environment variable `var` wins over
/// either. Also says which run this is.
pub fn bench_size<T: std::str::FromStr>(var: &str, full: T, smoke: T) -> (bool, T) {
    let is_full = std::env::args().any(|a| a == "--bench");
    let given = std::env::var(var).ok().and_then(|v| v.parse().ok());
    (is_full, given.unwrap_or(if is_full { full } else { smoke }))
}

/// The director's one link of the single-link tests.
pub fn one_link() -> Vec<LinkParams> {
    vec![LinkParams {
        mac: MacAddr(DIR_MAC),
        mtu: 1500,
        addr: DIR_ADDR,
        addr6: DIR_ADDR6,
    }]
}

/// An address's last byte: the rigs' real servers' MACs end in it.
pub fn last_octet(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    }
}

/// Every real server on link 0 with MAC 02:00:00:00:01:<last octet>.
pub fn hop_by_last_octet(ip: IpAddr, _: Forward) -> NextHop {
    NextHop {
        link: 0,
        mac: MacAddr([2, 0, 0, 0, 1, last_octet(ip)]),
    }
}

/// A model and its publisher driving one `Dataplane` over the packet I/O
/// `I` (the in-memory backend unless a test swaps it for another).
pub struct Rig<I: PacketIo = MemoryIo> {
    /// The table as the control plane holds it, edited with ops.
    pub model: Model,
    /// Publishes the model to the data plane, as `uvs director` does.
    pub publisher: Publisher,
    /// Routes towards clients, published with each table.
    pub routes: Vec<LinkRoute>,
    /// The data plane's counters (`counter` reads one by name).
    pub counters: Arc<DataplaneCounters>,
    /// The data plane under test.
    pub dp: Dataplane,
    /// Frames in and out.
    pub io: I,
    /// The receive buffer the data plane's loop uses.
    pub buf: Vec<u8>,
    hop: HopFn,
}

impl Rig<MemoryIo> {
    /// One link, real servers by last octet, `ops` applied.
    pub fn new(ops: &[Op]) -> Rig {
        Rig::build(one_link(), hop_by_last_octet, Vec::new(), ops)
    }

    /// A rig on `links` whose real servers resolve by `hop`, with
    /// `routes` towards clients, `ops` applied and the first table picked
    /// up (its gratuitous ARPs sent).
    pub fn build(links: Vec<LinkParams>, hop: HopFn, routes: Vec<LinkRoute>, ops: &[Op]) -> Rig {
        Rig::build_max(links, hop, routes, ops, DEFAULT_MAX_CONNS)
    }

    /// As `build`, with a connection table of at most `max_conns`.
    pub fn build_max(
        links: Vec<LinkParams>,
        hop: HopFn,
        routes: Vec<LinkRoute>,
        ops: &[Op],
        max_conns: usize,
    ) -> Rig {
        let publisher = Publisher::new();
        let counters = Arc::new(DataplaneCounters::default());
        let dp =
            Dataplane::with_links(publisher.shared(), links, counters.clone(), None, max_conns);
        let mut r = Rig {
            model: Model::with_tun_sources(Some(DIR_ADDR), Some(DIR_ADDR6)),
            publisher,
            routes,
            counters,
            dp,
            io: MemoryIo::new(),
            buf: vec![0; 70000],
            hop,
        };
        r.apply(ops);
        r
    }

    /// The same rig on another backend (a replaying one, say), once the
    /// first table is picked up.
    pub fn with_io<J: PacketIo>(self, io: J) -> Rig<J> {
        Rig {
            model: self.model,
            publisher: self.publisher,
            routes: self.routes,
            counters: self.counters,
            dp: self.dp,
            io,
            buf: self.buf,
            hop: self.hop,
        }
    }

    /// Feeds one frame; what was sent.
    pub fn feed(&mut self, frame: Vec<u8>) -> Vec<Vec<u8>> {
        self.feed_meta(frame, RxMeta::default())
    }

    /// Feeds one frame with metadata; what was sent.
    pub fn feed_meta(&mut self, frame: Vec<u8>, meta: RxMeta) -> Vec<Vec<u8>> {
        self.push(frame, meta);
        self.io.take_sent()
    }

    /// Feeds one frame on `link`; what was sent, with links.
    pub fn feed_on(&mut self, frame: Vec<u8>, link: u8, meta: RxMeta) -> Vec<(u8, Vec<u8>)> {
        self.push(frame, RxMeta { link, ..meta });
        self.io.take_sent_links()
    }

    fn push(&mut self, frame: Vec<u8>, meta: RxMeta) {
        self.io.take_sent();
        self.io.push_with(frame, meta);
        assert!(self.poll());
    }

    /// A data-plane counter by its `uvs status` name.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .pairs()
            .into_iter()
            .find(|(k, _)| *k == name)
            .unwrap()
            .1
    }
}

impl<I: PacketIo> Rig<I> {
    /// Applies `ops` as the control plane would, publishes, and lets the
    /// data plane pick the table up.
    pub fn apply(&mut self, ops: &[Op]) {
        let hop = self.hop;
        self.model = self
            .model
            .apply_all(ops, &mut |ip, f| Ok(hop(ip, f)), &mut |_, _| {})
            .expect("ops apply");
        self.publisher.publish(&self.model, &self.routes);
        self.poll();
    }

    /// One turn of the data plane's loop; whether a frame was handled.
    pub fn poll(&mut self) -> bool {
        self.dp
            .poll_once(&mut self.io, &mut self.buf, Duration::ZERO)
    }
}

pub fn svc(p: Protocol, port: u16) -> ServiceKey {
    ServiceKey::addr(p, Ipv4Addr::from(VIP), port)
}

pub fn dest(addr: impl Into<IpAddr>, port: u16, forward: Forward, weight: u32) -> DestSpec {
    DestSpec {
        addr: addr.into(),
        port,
        forward,
        weight,
        uthreshold: 0,
        lthreshold: 0,
        slow_start: 0,
    }
}

/// A service and its real servers as ops.
pub fn service(key: ServiceKey, scheduler: &str, dests: &[DestSpec]) -> Vec<Op> {
    let mut ops = vec![Op::AddService(ServiceDef {
        key,
        scheduler: scheduler.into(),
        flags: Default::default(),
        persistent: None,
        ops: false,
    })];
    ops.extend(dests.iter().map(|d| Op::AddDest {
        key,
        dest: d.clone(),
    }));
    ops
}
