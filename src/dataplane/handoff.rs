//! Connections to and from their portable form ([`PortableConn`]: the
//! real server by service, address and port instead of table indexes and
//! ids, the timer as time left). A planned restart hands the whole table
//! to the new director this way (`uvs director --takeover`), so
//! established connections continue, of both families; HA sync sends
//! and applies them too.

use super::books::{locate, release, take};
use super::conn::Conn;
use super::{Dataplane, Family};
use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, PortableConn};
use crate::lvs::service::ServiceKey;
use crate::lvs::table::Table;
use crate::wire::MacAddr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A connection of either family's table in its portable form.
pub(super) fn portable<A: Addr>(
    t: &Table,
    k: &ConnKey<A>,
    c: &Conn<A>,
    now: u64,
    seen_twice: bool,
) -> PortableConn {
    // A mark template names its mark itself (its indexes may be stale
    // between a table change and the sweep).
    let fwmark = k.template_mark().unwrap_or_else(|| {
        t.dest(c.svc, c.dest, c.dest_id)
            .map_or(0, |(s, _)| s.key.fwmark)
    });
    PortableConn {
        protocol: k.protocol,
        caddr: k.caddr.into(),
        cport: k.cport,
        vaddr: k.vaddr.into(),
        vport: k.vport,
        raddr: c.dest_addr(t).unwrap_or(c.raddr.into()),
        rport: c.rport,
        fwd: c.fwd,
        state: c.state,
        expires_in_ms: c.expires_ms(now).saturating_sub(now),
        client_link: c.client_link,
        client_mac: c.client_mac.0,
        seen_twice,
        fwmark,
    }
}

impl Dataplane {
    /// Starts as the new owner of a handed-over table: picks up the
    /// published table (announcing its VIPs) and takes the connections.
    pub fn take_over<I: crate::io::PacketIo>(
        &mut self,
        io: &mut I,
        conns: &[PortableConn],
    ) -> usize {
        self.refresh_table(io);
        self.import_conns(conns)
    }

    /// Every connection of both tables, portable (its real server must
    /// still be in the table); persistence templates first, so an
    /// importer finds a connection's template when it enters the
    /// connection.
    pub fn export_conns(&self) -> Vec<PortableConn> {
        let mut out = self.portables::<Ipv4Addr>();
        out.extend(self.portables::<Ipv6Addr>());
        out.sort_by_key(|p| !p.is_template());
        out
    }

    /// Family `A`'s connections, portable.
    fn portables<A: Family>(&self) -> Vec<PortableConn> {
        let now = self.now_ms();
        let conns = self.conns_of::<A>();
        conns
            .iter()
            .filter_map(|(k, c)| {
                let mut c = *c;
                locate(&self.table, &self.positions, &mut c)?;
                Some(portable(&self.table, k, &c, now, conns.seen_twice(k)))
            })
            .collect()
    }

    /// Takes over connections exported by another process: each is
    /// entered in its family's table with its real server in the current
    /// table (found by service, address and port) and counted as that
    /// server's active or inactive connection. Returns how many were
    /// taken; the others name a service or server this table does not
    /// have.
    pub fn import_conns(&mut self, conns: &[PortableConn]) -> usize {
        let now = self.now_ms();
        conns
            .iter()
            .filter(|p| match p.caddr {
                IpAddr::V4(_) => self.import_one::<Ipv4Addr>(p, now),
                IpAddr::V6(_) => self.import_one::<Ipv6Addr>(p, now),
            })
            .count()
    }

    /// Enters one portable connection or template (not in the table yet)
    /// into family `A`'s table with its real server in the current table;
    /// false if there is none, or if its addresses are not all `A`'s. A
    /// connection of a persistent service is linked to its template when
    /// that is here already.
    pub(super) fn import_one<A: Family>(&mut self, p: &PortableConn, now: u64) -> bool {
        let Some((key, raddr)) = p.typed::<A>() else {
            return false;
        };
        // Its service: by mark if it names one, else as its frames find
        // it (a mark's first, then the port's, then a port-0 service).
        let si = match p.fwmark {
            0 => self.table.lookup_ip(p.protocol, p.vaddr, p.vport),
            m => self
                .table
                .service_index(&ServiceKey::mark_of(m, p.caddr.is_ipv6())),
        };
        let Some(si) = si else {
            return false;
        };
        let svc = &self.table.services[si];
        let Some((di, d)) = svc
            .dests
            .iter()
            .enumerate()
            .find(|(_, d)| d.addr == p.raddr && svc.dest_port(d, p.vport) == p.rport)
        else {
            return false;
        };
        let conns = A::table_mut(&mut self.conns, &mut self.conns6);
        if conns.entry(&key, p.is_template()).is_some() {
            return false;
        }
        let tk = svc.persistence.map(|ps| key.template(&ps, &svc.key));
        let c = Conn::new(
            si as u32,
            di as u32,
            d.id,
            p.state,
            now + p.expires_in_ms,
            p.fwd,
            raddr,
            p.rport,
            p.client_link,
            MacAddr(p.client_mac),
        );
        let state = d.state.clone();
        match conns.insert(key, c) {
            Ok(None) => {}
            // A full backup table makes room like a full active one.
            Ok(Some((_, mut old))) => {
                if let Some((_, od)) = locate(&self.table, &self.positions, &mut old) {
                    release(&od.state, &old);
                }
            }
            Err(_) => return false,
        }
        if p.seen_twice {
            conns.mark_seen_twice(&key);
        }
        if let Some(tk) = tk.filter(|_| !p.is_template()) {
            conns.adopt(&key, &tk);
        }
        take(&state, c.state);
        true
    }
}
