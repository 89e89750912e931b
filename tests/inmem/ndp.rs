//! Neighbour discovery for an IPv6 VIP, on a table published directly
//! (the model refuses IPv6 services until the data plane forwards them):
//! the director answers a solicitation for the VIP with the frame the
//! kernel itself would send, announces the VIP when it appears, counts a
//! claim by another host, stays silent for other addresses, and drops a
//! frame to the VIP whose extension headers run too long.

use arc_swap::ArcSwap;
use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;
use uvs::dataplane::{Dataplane, LinkParams};
use uvs::io::memory::MemoryIo;
use uvs::io::{PacketType, RxMeta};
use uvs::lvs::service::{Protocol, SchedulerKind, ServiceKey, Timeouts};
use uvs::lvs::stats::DataplaneCounters;
use uvs::lvs::table::{ServiceEntry, Table};
use uvs::rig::{CL_MAC, DIR_ADDR, DIR_MAC};
use uvs::wire::{MacAddr, ndp};

const VIP6: &str = "2001:2::100";
const CLIENT6: &str = "2001:2::10";

fn v6(a: &str) -> Ipv6Addr {
    a.parse().unwrap()
}

fn table(generation: u64, vip: Option<Ipv6Addr>) -> Table {
    let services = vip
        .map(|v| ServiceEntry {
            id: 1,
            key: ServiceKey::addr(Protocol::Tcp, v, 80),
            scheduler: SchedulerKind::Rr,
            flags: Default::default(),
            ops: false,
            persistence: None,
            epoch: 0,
            log: Arc::default(),
            dests: Vec::new(),
            stats: Arc::default(),
        })
        .into_iter()
        .collect();
    Table::new(generation, services, Timeouts::default())
}

struct Dp {
    shared: Arc<ArcSwap<Table>>,
    dp: Dataplane,
    io: MemoryIo,
    counters: Arc<DataplaneCounters>,
}

impl Dp {
    fn new(vip: Option<Ipv6Addr>) -> Dp {
        let shared = Arc::new(ArcSwap::from_pointee(table(1, vip)));
        let counters = Arc::new(DataplaneCounters::default());
        let link = LinkParams {
            mac: MacAddr(DIR_MAC),
            mtu: 1500,
            addr: DIR_ADDR,
            addr6: uvs::rig::DIR_ADDR6,
        };
        let dp = Dataplane::new(shared.clone(), link, counters.clone(), None);
        Dp {
            shared,
            dp,
            io: MemoryIo::new(),
            counters,
        }
    }

    /// Feeds one frame (multicast, as a solicitation is); what was sent.
    fn feed(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        let meta = RxMeta {
            pkt_type: PacketType::Multicast,
            ..RxMeta::default()
        };
        self.io.push_with(frame.to_vec(), meta);
        let mut buf = vec![0u8; 65536];
        assert!(self.dp.poll_once(&mut self.io, &mut buf, Duration::ZERO));
        self.io.take_sent()
    }

    fn counter(&self, name: &str) -> u64 {
        let pairs = self.counters.pairs();
        pairs.iter().find(|(n, _)| *n == name).unwrap().1
    }
}

fn solicit(target: Ipv6Addr) -> Vec<u8> {
    let mut f = vec![0u8; ndp::FRAME_LEN];
    let n = ndp::solicit(&mut f, MacAddr(CL_MAC), v6(CLIENT6), target).unwrap();
    f.truncate(n);
    f
}

#[test]
fn a_solicitation_for_the_vip_is_answered_as_the_kernel_answers() {
    let mut d = Dp::new(Some(v6(VIP6)));
    let sent = d.feed(&solicit(v6(VIP6)));
    let mut want = vec![0u8; ndp::FRAME_LEN];
    let n = ndp::solicited_advert(
        &mut want,
        MacAddr(DIR_MAC),
        v6(VIP6),
        v6(CLIENT6),
        MacAddr(CL_MAC),
    )
    .unwrap();
    assert_eq!(sent, vec![want[..n].to_vec()]);
    assert_eq!(d.counter("nd_replies"), 1);
    // Not a VIP: the kernel's to answer (or not).
    assert!(d.feed(&solicit(v6("2001:2::2"))).is_empty());
    assert_eq!(d.counter("nd_replies"), 1);
}

#[test]
fn a_new_vip_is_announced_and_another_hosts_claim_is_counted() {
    let mut d = Dp::new(None);
    d.shared.store(Arc::new(table(2, Some(v6(VIP6)))));
    // Any frame makes the data plane pick the new table up.
    let sent = d.feed(&solicit(v6("2001:2::2")));
    let mut want = vec![0u8; ndp::FRAME_LEN];
    let n = ndp::unsolicited_advert(&mut want, MacAddr(DIR_MAC), v6(VIP6)).unwrap();
    assert_eq!(sent, vec![want[..n].to_vec()]);
    // A real server that announces the VIP (its lo, proxy NDP on).
    let mut claim = vec![0u8; ndp::FRAME_LEN];
    let n = ndp::unsolicited_advert(&mut claim, MacAddr([2, 0, 0, 0, 1, 11]), v6(VIP6)).unwrap();
    assert!(d.feed(&claim[..n]).is_empty());
    assert_eq!(d.counter("vip_conflicts"), 1);
}

#[test]
fn a_routed_vip_is_neither_answered_nor_announced() {
    let mut d = Dp::new(None);
    d.dp.set_routed(true);
    d.shared.store(Arc::new(table(2, Some(v6(VIP6)))));
    assert!(d.feed(&solicit(v6(VIP6))).is_empty());
    assert_eq!(d.counter("nd_replies"), 0);
}

#[test]
fn a_frame_to_the_vip_with_too_many_extension_headers_is_dropped_and_counted() {
    let mut d = Dp::new(Some(v6(VIP6)));
    // Thirteen Destination Options headers (8 bytes each), then TCP.
    let mut ext = Vec::new();
    for i in 0..13 {
        let next = if i == 12 { 6 } else { 60 };
        ext.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    let mut f = Vec::new();
    f.extend_from_slice(&DIR_MAC);
    f.extend_from_slice(&CL_MAC);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&((ext.len() + 20) as u16).to_be_bytes());
    f.extend_from_slice(&[60, 64]);
    f.extend_from_slice(&v6(CLIENT6).octets());
    f.extend_from_slice(&v6(VIP6).octets());
    f.extend_from_slice(&ext);
    f.extend_from_slice(&[0u8; 20]);
    assert!(d.feed(&f).is_empty());
    assert_eq!(d.counter("ext_headers_dropped"), 1);
}
