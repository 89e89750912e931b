//! A new connection of either family: the scheduler's real server or, on
//! a persistent service, its client network's template's
//! (`ip_vs_sched_persist`), entered in the family's table. An IPv4
//! client's network is its service's netmask, an IPv6 one's its prefix
//! (`lvs::service::Persistence`); the rest is the same code.

use super::books::{locate, take};
use super::conn::Conn;
use super::flow::{NoConn, Start, update_state};
use super::offload::evicted_back;
use super::{Dataplane, Family};
use crate::io::PacketIo;
use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, ConnState, TcpState};
use crate::lvs::sched::scheduler::SchedKey;
use crate::lvs::service::{Forward, Persistence, Protocol};
use crate::lvs::sync::{Record, SyncEvent};
use crate::lvs::table::Table;
use std::sync::atomic::Ordering::Relaxed;

impl Dataplane {
    /// Picks a real server for a new connection (through its client's
    /// persistence template on a persistent service) and enters it in
    /// its family's table.
    pub(super) fn schedule<I: PacketIo, A: Family>(
        &mut self,
        io: &mut I,
        f: &Start<A>,
        now: u64,
    ) -> Result<Conn<A>, NoConn> {
        let (di, tk) = match self.table.services[f.svc].persistence {
            Some(p) => {
                let (di, tk) = self.persist(f, p, now)?;
                (di, Some(tk))
            }
            None => (self.pick(f)?, None),
        };
        let raddr = held(&self.table.services[f.svc].dests[di])?;
        let at = (f.svc, di);
        let (c, entered) = fresh(&self.table, at, &f.key, raddr, f.from, f.tcp_flags, now);
        if entered {
            let conns = A::table_mut(&mut self.conns, &mut self.conns6);
            let inserted = match tk {
                Some(tk) => conns.insert_controlled(f.key, c, &tk),
                None => conns.insert(f.key, c),
            };
            evicted_back(io, &self.books(), &inserted);
            self.entered(inserted, &c, at)?;
            self.emit_upsert(&f.key, &c, false);
        }
        count_new(&self.table, at);
        Ok(c)
    }

    /// The scheduler's real server for a new flow of its service.
    fn pick<A: Family>(&mut self, f: &Start<A>) -> Result<usize, NoConn> {
        let pool = self.table.pool(f.svc).ok_or(NoConn::NoRealServer)?;
        let k = &f.key;
        let sk = SchedKey::new(k.caddr.into(), k.cport, k.vaddr.into());
        self.sched[f.svc]
            .schedule(&pool, &sk)
            .ok_or(NoConn::NoRealServer)
    }

    /// The real server of a new connection on a persistent service: its
    /// client network's template's, if that is usable (its real server
    /// still in the table, weight 0 included: expire_quiescent_template
    /// is 0 by default), whose timer starts again; otherwise the
    /// scheduler's, in a new template (`ip_vs_sched_persist`). Returns
    /// the server and the template's key.
    fn persist<A: Family>(
        &mut self,
        f: &Start<A>,
        p: Persistence,
        now: u64,
    ) -> Result<(usize, ConnKey<A>), NoConn> {
        let svc_key = self.table.services[f.svc].key;
        let (svc_port, tk) = (svc_key.port, f.key.template(&p, &svc_key));
        let (table, positions) = (&self.table, &self.positions);
        let conns = A::table_mut(&mut self.conns, &mut self.conns6);
        if let Some((t, controls)) = conns.template_controls(&tk) {
            let live = t.expires_ms(now) > now || controls > 0;
            if live && locate(table, positions, t).is_some() {
                t.set_expires_ms(now + u64::from(p.timeout) * 1000);
                let t = *t;
                self.emit_upsert(&tk, &t, false);
                return Ok((t.dest as usize, tk));
            }
            // Expired, or its real server gone: a new one replaces it.
            if controls == 0 {
                self.forget(&tk, true);
                self.emit_with(|| SyncEvent::Record(Record::RemoveTemplate(tk.portable())));
            }
        }
        let di = self.pick(f)?;
        let svc = &self.table.services[f.svc];
        let d = &svc.dests[di];
        let raddr = held(d)?;
        let mut t = Conn::new(
            f.svc as u32,
            di as u32,
            d.id,
            ConnState::Template,
            now + u64::from(p.timeout) * 1000,
            d.forward,
            raddr,
            svc.dest_port(d, svc_port),
            f.from.0,
            f.from.1,
        );
        take(&d.state, t.state);
        match A::table_mut(&mut self.conns, &mut self.conns6).template_mut(&tk) {
            // Its real server gone while it still controls connections:
            // it leads to the new one now, keeping those connections'
            // links and its state. (IPVS unhashes such a template and
            // makes another; two entries under one key here would let a
            // peer's removal of the old take the new.)
            Some(old) => {
                t.state = old.state;
                *old = t;
            }
            None => {
                let inserted = self.conns_mut::<A>().insert(tk, t);
                self.entered(inserted, &t, (f.svc, di))?
            }
        }
        self.emit_upsert(&tk, &t, false);
        Ok((di, tk))
    }

    /// Connection `k` was established: its template, if it has one, is
    /// assured now (and the peers told).
    pub(super) fn assure_template<A: Family>(&mut self, k: &ConnKey<A>) {
        if let Some((tk, t)) = self.conns_mut::<A>().assure(k) {
            self.emit_upsert(&tk, &t, false);
        }
    }
}

/// A new connection of real server `di` of service `si` from `from` (the
/// client's link and MAC), its TCP state moved by its first segment and
/// counted in its server's connections (TCP inactive until established,
/// UDP active); whether it is entered
/// in the table (`false`: `-o`, this datagram alone, nothing to sync).
pub(super) fn fresh<A: Addr>(
    table: &Table,
    (si, di): (usize, usize),
    k: &ConnKey<A>,
    raddr: A,
    from: (u8, crate::wire::MacAddr),
    tcp_flags: u8,
    now: u64,
) -> (Conn<A>, bool) {
    let svc = &table.services[si];
    let d = &svc.dests[di];
    let (state, one_packet) = match k.protocol {
        Protocol::Tcp => (ConnState::Tcp(TcpState::None), false),
        // (A frame is never IP: `Protocol::from_number`.)
        Protocol::Udp | Protocol::Ip => (ConnState::Udp, svc.ops),
    };
    let rport = svc.dest_port(d, k.vport);
    let (si, di) = (si as u32, di as u32);
    let mut c = Conn::new(
        si,
        di,
        d.id,
        state,
        now + 3000,
        d.forward,
        raddr,
        rport,
        from.0,
        from.1,
    );
    if !one_packet {
        take(&d.state, state);
        let dir = c.input_direction();
        update_state(&mut c, &d.state, dir, tcp_flags, table, now);
    }
    (c, !one_packet)
}

/// A new connection counted in its service's and real server's totals.
pub(super) fn count_new(table: &Table, (si, di): (usize, usize)) {
    let svc = &table.services[si];
    svc.stats.conns.fetch_add(1, Relaxed);
    svc.dests[di].state.stats.conns.fetch_add(1, Relaxed);
}

/// What a new entry holds of real server `d`: its address, if of the
/// entry's family; the unspecified address for a tunnelled server of the
/// other family (read back by `Conn::dest_addr`). The model gives other
/// methods servers of the service's family only; were one of the other
/// family found, the flow is refused rather than sent to a wrong address.
#[inline]
pub(super) fn held<A: Addr>(d: &crate::lvs::dest::DestEntry) -> Result<A, NoConn> {
    match A::from_ip(d.addr) {
        Some(a) => Ok(a),
        None if d.forward == Forward::Tunnel => Ok(A::UNSPECIFIED),
        None => Err(NoConn::Refused),
    }
}
