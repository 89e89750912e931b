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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
                let (_, d) = locate(&self.table, &self.positions, &mut c)?;
                Some(PortableConn {
                    protocol: k.protocol,
                    caddr: k.caddr,
                    cport: k.cport,
                    vaddr: k.vaddr,
                    vport: k.vport,
                    raddr: d.addr,
                    rport: d.port,
                    fwd: c.fwd,
                    state: c.state,
                    expires_in_ms: c.expires_ms.saturating_sub(now),
                    client_link: c.client_link,
                    client_mac: c.client_mac.0,
                    seen_twice: self.conns.seen_twice(k),
                })
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
        let mut taken = 0;
        for p in conns {
            let Some((si, svc)) = self.table.services.iter().enumerate().find(|(_, s)| {
                s.key.protocol == p.protocol && s.key.addr == p.vaddr && s.key.port == p.vport
            }) else {
                continue;
            };
            let Some((di, d)) = svc
                .dests
                .iter()
                .enumerate()
                .find(|(_, d)| d.addr == p.raddr && d.port == p.rport)
            else {
                continue;
            };
            let key = ConnKey {
                protocol: p.protocol,
                caddr: p.caddr,
                cport: p.cport,
                vaddr: p.vaddr,
                vport: p.vport,
            };
            if self.conns.get(&key).is_some() {
                continue;
            }
            let c = Conn {
                svc: si as u32,
                dest: di as u32,
                dest_id: d.id,
                state: p.state,
                expires_ms: now + p.expires_in_ms,
                fwd: p.fwd,
                raddr: p.raddr,
                rport: p.rport,
                client_link: p.client_link,
                client_mac: MacAddr(p.client_mac),
            };
            if self.conns.insert(key, c).is_err() {
                continue;
            }
            if p.seen_twice {
                self.conns.mark_seen_twice(&key);
            }
            let counter = match c.state.is_active() {
                true => &d.state.active,
                false => &d.state.inactive,
            };
            counter.fetch_add(1, Relaxed);
            taken += 1;
        }
        taken
    }
}
