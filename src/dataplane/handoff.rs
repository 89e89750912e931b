//! A connection in a form that survives a change of process: the real
//! server by service, address and port instead of table indexes and ids,
//! the timer as time left. A planned restart hands the whole table to the
//! new director this way (`uvs director --takeover`), so established
//! connections continue.

use super::conn::{Conn, ConnKey, ConnState};
use super::{Dataplane, locate};
use crate::lvs::service::{Forward, Protocol};
use crate::wire::MacAddr;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;

/// One connection, portable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortableConn {
    pub protocol: Protocol,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub raddr: Ipv4Addr,
    pub rport: u16,
    pub fwd: Forward,
    pub state: ConnState,
    pub expires_in_ms: u64,
    pub client_link: u8,
    pub client_mac: [u8; 6],
    pub seen_twice: bool,
}

impl PortableConn {
    pub fn key(&self) -> ConnKey {
        ConnKey {
            protocol: self.protocol,
            caddr: self.caddr,
            cport: self.cport,
            vaddr: self.vaddr,
            vport: self.vport,
        }
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

    /// Every connection, portable (its real server must still be in the
    /// table).
    pub fn export_conns(&self) -> Vec<PortableConn> {
        let now = self.now_ms();
        self.conns
            .iter()
            .filter_map(|(k, c)| {
                let mut c = *c;
                locate(&self.table, &self.positions, &mut c)?;
                Some(super::sync::portable(k, &c, now, self.conns.seen_twice(k)))
            })
            .collect()
    }

    /// Takes over connections exported by another process: each is
    /// entered with its real server in the current table (found by
    /// service, address and port) and counted as that server's active or
    /// inactive connection. Returns how many were taken; the others name
    /// a service or server this table does not have.
    pub fn import_conns(&mut self, conns: &[PortableConn]) -> usize {
        let now = self.now_ms();
        conns.iter().filter(|p| self.import_one(p, now)).count()
    }

    /// Enters one portable connection (not in the table yet) with its
    /// real server in the current table; false if there is none.
    pub(super) fn import_one(&mut self, p: &PortableConn, now: u64) -> bool {
        let Some((si, svc)) = self.table.services.iter().enumerate().find(|(_, s)| {
            s.key.protocol == p.protocol && s.key.addr == p.vaddr && s.key.port == p.vport
        }) else {
            return false;
        };
        let Some((di, d)) = svc
            .dests
            .iter()
            .enumerate()
            .find(|(_, d)| d.addr == p.raddr && d.port == p.rport)
        else {
            return false;
        };
        let key = p.key();
        if self.conns.get(&key).is_some() {
            return false;
        }
        let c = Conn::new(
            si as u32,
            di as u32,
            d.id,
            p.state,
            now + p.expires_in_ms,
            p.fwd,
            p.raddr,
            p.rport,
            p.client_link,
            MacAddr(p.client_mac),
        );
        match self.conns.insert(key, c) {
            Ok(None) => {}
            // A full backup table makes room like a full active one.
            Ok(Some((_, mut old))) => {
                if let Some((_, od)) = locate(&self.table, &self.positions, &mut old) {
                    super::release(&od.state, &old);
                }
            }
            Err(_) => return false,
        }
        if p.seen_twice {
            self.conns.mark_seen_twice(&key);
        }
        let counter = match c.state.is_active() {
            true => &d.state.active,
            false => &d.state.inactive,
        };
        counter.fetch_add(1, Relaxed);
        true
    }
}
