//! `uvs trace` in the data plane: what this worker knows of a flow (its
//! entries, the template pinning its client, the real server a new
//! connection would get now: the scheduler's own code on a clone of its
//! state, so nothing moves), and `--live`'s verdict on each frame of the
//! traced flow. Frames of other flows pay one relaxed load (the tap's
//! `armed`) while no trace runs; a traced frame's verdict is read from
//! the counters its handling moved, so no step of the path is touched.

use super::books::locate;
use super::classify::{Class, Layout};
use super::{Dataplane, Family};
use crate::io::{PacketIo, RxMeta};
use crate::lvs::conn::ConnKey;
use crate::lvs::request::CONN_CHUNK;
use crate::lvs::sched::scheduler::SchedKey;
use crate::lvs::service::Protocol;
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::trace::{
    DropReason, FlowFacts, FrameVerdict, Stage, TraceEntry, TraceQuery, Verdict,
};
use crate::wire::{self, EthernetFrame, Ipv4Packet, TcpPacket, UdpPacket};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering::Relaxed;

/// The counters a frame's handling may move, read before and after it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Tally([u64; 11]);

impl Tally {
    fn of(c: &DataplaneCounters) -> Tally {
        let f = [
            &c.malformed,
            &c.fragments_dropped,
            &c.no_conn_dropped,
            &c.no_dest,
            &c.conn_table_full,
            &c.nat_reply_clash,
            &c.ttl_expired,
            &c.frag_needed,
            &c.icmp_rate_limited,
            &c.tx_errors,
            &c.forwarded,
        ];
        Tally(f.map(|a| a.load(Relaxed)))
    }
}

/// The stage and reason of a drop from the counters that moved (the
/// first in path order), or `None`: forwarded.
fn dropped(before: Tally, after: Tally) -> Option<(Stage, DropReason)> {
    use DropReason::*;
    const WHY: [(Stage, DropReason); 10] = [
        (Stage::Classify, Checksum),
        (Stage::Classify, Fragment),
        (Stage::Flow, NoConnection),
        (Stage::Flow, NoServer),
        (Stage::Flow, TableFull),
        (Stage::Flow, NatClash),
        (Stage::Egress, Ttl),
        (Stage::Egress, TooBig),
        (Stage::Egress, RateLimit),
        (Stage::Egress, SendError),
    ];
    let moved = |i: usize| after.0[i] != before.0[i];
    if let Some(i) = (0..WHY.len()).find(|&i| moved(i)) {
        return Some(WHY[i]);
    }
    match moved(10) {
        true => None,
        false => Some((Stage::Egress, Other)),
    }
}

impl Dataplane {
    /// A classified IPv4 frame while a live trace runs: handled as any,
    /// and if it is the traced flow's (a client's packet, or one too
    /// damaged to classify), its verdict reported.
    pub(super) fn traced_ipv4<I: PacketIo>(
        &mut self,
        io: &mut I,
        frame: &mut [u8],
        meta: RxMeta,
        class: wire::Result<(Class, Layout)>,
    ) {
        let q = self.trace.filter();
        let key = match &class {
            Ok((Class::Service(f), _)) => Some(f.key),
            Err(_) => loose_key(frame),
            _ => None,
        };
        let Some((_, key)) = q.zip(key).filter(|(q, k)| q.matches(k)) else {
            return self.dispatch_ipv4(io, frame, meta, class);
        };
        let (ttl, tcp_flags) = match &class {
            Ok((_, l)) => (l.ttl, l.tcp_flags),
            Err(_) => (0, 0),
        };
        let new = self.conns.entry(&key, false).is_none();
        let before = Tally::of(&self.counters);
        self.dispatch_ipv4(io, frame, meta, class);
        let (stage, verdict) = match dropped(before, Tally::of(&self.counters)) {
            Some((stage, why)) => (stage, Verdict::Dropped(why)),
            None => {
                let (server, port) = self
                    .entry_of(&key)
                    .map_or((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0), |e| {
                        (e.server, e.port)
                    });
                (Stage::Egress, Verdict::Forwarded { server, port, new })
            }
        };
        self.trace.report(FrameVerdict {
            worker: self.worker,
            client: key.caddr.into(),
            cport: key.cport,
            vip: key.vaddr.into(),
            vport: key.vport,
            ttl,
            tcp_flags,
            stage,
            verdict,
        });
    }

    /// Connection `k`'s entry as a trace shows it.
    fn entry_of<A: Family>(&self, k: &ConnKey<A>) -> Option<TraceEntry> {
        let c = self.conns_of::<A>().entry(k, false)?;
        self.shown(k, *c, 0)
    }

    /// An entry as a trace shows it, its real server located in the
    /// table now; `None` past its timer (gone, not yet swept) or if its
    /// server left.
    fn shown<A: Family>(
        &self,
        k: &ConnKey<A>,
        mut c: super::conn::Conn<A>,
        controls: u32,
    ) -> Option<TraceEntry> {
        let now = self.now_ms();
        let live = c.expires_ms(now) > now || controls > 0 || self.table.standby;
        if !live {
            return None;
        }
        locate(&self.table, &self.positions, &mut c)?;
        Some(TraceEntry {
            cport: k.cport,
            state: c.state.name().to_string(),
            server: c.dest_addr(&self.table)?,
            port: c.rport,
            expires_secs: c.expires_ms(now).saturating_sub(now).div_ceil(1000),
            offloaded: c.offloaded,
            worker: usize::from(self.worker),
            controls,
        })
    }

    /// What this worker knows of a traced flow (`DpRequest::Trace`).
    pub(super) fn trace_facts(&self, q: &TraceQuery, from: usize) -> (FlowFacts, Option<usize>) {
        match q.vip {
            IpAddr::V4(_) => self.facts_of::<Ipv4Addr>(q, from),
            IpAddr::V6(_) => self.facts_of::<Ipv6Addr>(q, from),
        }
    }

    fn facts_of<A: Family>(&self, q: &TraceQuery, from: usize) -> (FlowFacts, Option<usize>) {
        let mut facts = FlowFacts::default();
        let Some(k) = q.key::<A>(q.cport.unwrap_or(0)) else {
            return (facts, None);
        };
        let next = match q.cport {
            Some(_) => {
                facts.entries.extend(self.entry_of(&k));
                None
            }
            None => {
                let (chunk, next) = self.conns_of::<A>().chunk(from, CONN_CHUNK);
                let mine = chunk.into_iter().filter(|(ck, c)| {
                    q.matches(ck) && !matches!(c.state, crate::lvs::conn::ConnState::Template)
                });
                facts
                    .entries
                    .extend(mine.filter_map(|(ck, c)| self.shown(&ck, c, 0)));
                next
            }
        };
        if from == 0 {
            (facts.template, facts.predicted) = self.prediction(&k);
        }
        (facts, next)
    }

    /// The live template pinning `k`'s client, and the real server a new
    /// connection of `k` would get now: the template's, else the
    /// scheduler's (on a clone of this worker's state).
    fn prediction<A: Family>(&self, k: &ConnKey<A>) -> (Option<TraceEntry>, Option<(IpAddr, u16)>) {
        let Some(si) = self.table.lookup_ip(k.protocol, k.vaddr.into(), k.vport) else {
            return (None, None);
        };
        let svc = &self.table.services[si];
        if let Some(p) = svc.persistence {
            let tk = k.template(&p, &svc.key);
            let conns = self.conns_of::<A>();
            if let Some(t) = conns.entry(&tk, true)
                && let Some(e) = self.shown(&tk, *t, conns.controls(&tk))
            {
                let to = (e.server, e.port);
                return (Some(e), Some(to));
            }
        }
        let Some(pool) = self.table.pool(si) else {
            return (None, None);
        };
        let sk = SchedKey::new(k.caddr.into(), k.cport, k.vaddr.into());
        let mut sched = self.sched[si].clone();
        let to = sched.schedule(&pool, &sk).and_then(|di| {
            let d = svc.dests.get(di)?;
            Some((d.addr, svc.dest_port(d, k.vport)))
        });
        (None, to)
    }
}

/// The client's key of a frame too damaged to classify (a bad checksum,
/// say), read without the checks classify makes, so a trace can name
/// why it was dropped.
fn loose_key(frame: &[u8]) -> Option<ConnKey> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let protocol = Protocol::from_number(ip.protocol())?;
    let (cport, vport) = match protocol {
        Protocol::Tcp => {
            let t = TcpPacket::new_checked(ip.payload()).ok()?;
            (t.src_port(), t.dst_port())
        }
        Protocol::Udp => {
            let u = UdpPacket::new_checked(ip.payload()).ok()?;
            (u.src_port(), u.dst_port())
        }
        Protocol::Ip => return None,
    };
    Some(ConnKey {
        protocol,
        caddr: ip.src_addr(),
        cport,
        vaddr: ip.dst_addr(),
        vport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_counter_moved_names_the_drop() {
        let before = Tally([0; 11]);
        let mut after = before;
        after.0[10] = 1;
        assert_eq!(dropped(before, after), None, "forwarded");
        after.0[6] = 1; // TTL expired, the ICMP error rate-limited too
        after.0[8] = 1;
        assert_eq!(
            dropped(before, after),
            Some((Stage::Egress, DropReason::Ttl))
        );
        let mut nd = before;
        nd.0[3] = 1;
        assert_eq!(
            dropped(before, nd),
            Some((Stage::Flow, DropReason::NoServer))
        );
        assert_eq!(
            dropped(before, before),
            Some((Stage::Egress, DropReason::Other))
        );
    }
}
