//! Katran's split, on backends that can (AF_XDP's XDP program, the
//! AF_PACKET backends' tc program): once a DR flow is established, uvs
//! hands it to the kernel program, which forwards its frames itself (the
//! real server's MAC, TTL or hop limit - 1) without their reaching uvs.
//! IPv4 and IPv6 flows alike, by the same code over [`Family`].
//! uvs keeps the connection and stays in charge of it: SYN, FIN and RST
//! still come up (a FIN or RST takes the flow back), so does a frame four
//! times per timeout (its timer runs on), and everything of flows not handed
//! over; when the entry goes (timer, real server removed, a SYN that
//! reuses it) the flow is taken back first, and what the program
//! forwarded is added to the service's and real server's counters then,
//! also when the table no longer has that real server
//! (`books::Retired`). Only the link the flow arrived on can send it on,
//! so flows whose real server is on another link stay with uvs, as do NAT
//! (its rewrite is uvs's) and TUN but for an IPv4 flow to an IPv4 real
//! server, which the tc program wraps as uvs does (io/bpf/tunnel.h; the
//! XDP backend refuses those). A backup forwards nothing (the program's
//! `fast` switch follows the published table).

use super::books::{Books, count_in_many};
use super::conn::Conn;
use super::conn_table::{ConnTable, Entry, InsertError};
use super::{Dataplane, Family};
use crate::io::{FlowTuple, Handover, PacketIo, RxMeta};
use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, ConnState, TcpState};
use crate::lvs::service::{Forward, Protocol};
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::table::NextHop;
use crate::wire::MacAddr;
use crate::wire::ipip::IpipRepr;
use crate::wire::tcp::flags;
use std::net::IpAddr;

/// The kernel program's key for a connection.
pub(super) fn tuple<A: Addr>(k: &ConnKey<A>) -> FlowTuple<A> {
    FlowTuple {
        saddr: k.caddr,
        daddr: k.vaddr,
        sport: k.cport,
        dport: k.vport,
        proto: k.protocol.number(),
    }
}

/// Takes `key`'s flow back from the program (its entry is going, or its
/// frames must reach uvs again) and adds what the program forwarded to
/// the service's and real server's counters. Every take-back goes
/// through here (FIN or RST, timer, real server or service gone, a SYN
/// that reuses the entry, becoming a backup). A free function: the
/// sweep calls it while the connection table is borrowed.
pub(super) fn take_back<I: PacketIo, A: Family>(
    io: &mut I,
    books: &Books,
    key: &ConnKey<A>,
    c: &Conn<A>,
) {
    let Some(o) = io.unoffload(c.client_link, &tuple(key)) else {
        return;
    };
    count_in_many(books.stats_of(c), o.packets, o.bytes);
}

/// An entry a full table evicted for a new one (`inserted`, the insert's
/// result) may be the program's too: a TCP one (SYN-only: established
/// ones are not evicted) is taken back, so that the client's retried SYN
/// finds no stale entry of it in the program's map, which would send the
/// handshake's ACK to the old entry's server while uvs schedules the SYN
/// anew; a one-packet UDP one is left to the program's map (adopt.rs).
pub(super) fn evicted_back<I: PacketIo, A: Family>(
    io: &mut I,
    books: &Books,
    inserted: &Result<Option<Entry<A>>, InsertError>,
) {
    if let Ok(Some((gone, old))) = inserted
        && old.offloaded
        && gone.protocol == Protocol::Tcp
    {
        take_back(io, books, gone, old);
    }
}

impl Dataplane {
    /// Where connections' counts go now.
    pub(super) fn books(&self) -> Books<'_> {
        Books {
            table: &self.table,
            positions: &self.positions,
            retired: &self.retired,
        }
    }

    /// Offloading on or off (`uvs director --offload`; off by default).
    pub fn set_offload(&mut self, on: bool) {
        self.offload = on;
    }

    /// What the program needs to forward `key`'s connection `c` itself,
    /// out of `link` to next hop `dmac`: DR, or TUN of an IPv4 flow to an
    /// IPv4 real server from the table's tunnel source. `None`: it stays
    /// with uvs (NAT, other TUN, no tunnel source).
    pub(super) fn handover<A: Family>(
        &self,
        key: &ConnKey<A>,
        c: &Conn<A>,
        link: u8,
        dmac: MacAddr,
    ) -> Option<Handover<A>> {
        let tun = match c.fwd {
            Forward::Route => None,
            Forward::Tunnel => {
                let src = self.table.tun_source;
                let IpAddr::V4(dst) = c.dest_addr(&self.table)? else {
                    return None;
                };
                let vaddr: IpAddr = key.vaddr.into();
                if !vaddr.is_ipv4() || src.is_unspecified() {
                    return None;
                }
                Some(IpipRepr { src, dst })
            }
            Forward::Masq => return None,
        };
        Some(Handover {
            flow: tuple(key),
            dmac: dmac.0,
            smac: self.link(link).mac.0,
            up_every_ms: c.state.up_every_ms(&self.table.timeouts),
            tun,
            dest_id: self
                .table
                .dest(c.svc, c.dest, c.dest_id)
                .map_or(0, |(_, d)| d.id),
        })
    }

    /// After a DR or TUN frame of `key`'s connection `c` went to `hop`:
    /// hands the flow over once it is established (if the program can
    /// forward it: [`Self::handover`]), or takes it back at FIN or RST.
    pub(super) fn offload_step<I: PacketIo, A: Family>(
        &mut self,
        io: &mut I,
        meta: RxMeta,
        tcp_flags: u8,
        key: &ConnKey<A>,
        c: &Conn<A>,
        hop: NextHop,
    ) {
        let ending = tcp_flags & (flags::FIN | flags::RST) != 0;
        if c.offloaded && ending {
            take_back(io, &self.books(), key, c);
            if let Some(e) = self.conns_mut::<A>().get_mut(key) {
                e.offloaded = false;
            }
            return;
        }
        if !self.offload || ending || tcp_flags & flags::SYN != 0 {
            return;
        }
        if hop.link != meta.link || self.table.standby {
            return;
        }
        let established = match c.state {
            ConnState::Tcp(s) => s == TcpState::Established,
            ConnState::Udp => self.conns_of::<A>().seen_twice(key),
            ConnState::Template | ConnState::Assured => false,
        };
        if !established {
            return;
        }
        // An offloaded flow's frame that came up anyway (the periodic
        // one, a TUN frame too big once wrapped, or the program's map
        // dropped the flow): the entry is written again, with the real
        // server's MAC as it is now.
        let Some(h) = self.handover(key, c, meta.link, hop.mac) else {
            return;
        };
        if io.offload(meta.link, &h) && !c.offloaded {
            if let Some(e) = self.conns_mut::<A>().get_mut(key) {
                e.offloaded = true;
            }
            DataplaneCounters::bump(&self.counters.offloads);
        }
    }

    /// Every flow back from the program (this director became a backup).
    pub(super) fn take_back_all<I: PacketIo>(&mut self, io: &mut I) {
        let books = Books {
            table: &self.table,
            positions: &self.positions,
            retired: &self.retired,
        };
        take_all_back(io, &books, &mut self.conns);
        take_all_back(io, &books, &mut self.conns6);
    }
}

/// Every offloaded flow of `conns` back from the program.
fn take_all_back<I: PacketIo, A: Family>(io: &mut I, books: &Books, conns: &mut ConnTable<A>) {
    conns.retain(|k, c, _| {
        if c.offloaded {
            take_back(io, books, k, c);
            c.offloaded = false;
        }
        true
    });
}
