//! Answers to the control plane's questions ([`DpRequest`]), between
//! frames: listings in chunks, the handoff, and HA sync's digests,
//! resync chunks and records.

use super::Dataplane;
use super::books::locate;
use super::conn_table::ConnTable;
use crate::lvs::addr::Addr;
use crate::lvs::conn::ConnInfo;
use crate::lvs::request::{CONN_CHUNK, DpRequest};
use crate::lvs::sync::SyncEvent;

/// Where a listing's cursor enters the IPv6 table: the IPv4 table's
/// slots are below it (a table holds at most `MAX_LIMIT`, 2^31, entries).
pub const V6_CURSOR: usize = 1 << 40;

/// A chunk of a walk through both tables from cursor `from` (a listing,
/// a full resync): `v4` and `v6` read a table's chunk from a slot. The
/// IPv4 table's slots come first, then the IPv6 table's, from
/// [`V6_CURSOR`] on; the walk ends after the IPv6 table.
pub(super) fn both_tables<T>(
    from: usize,
    v4: impl FnOnce(usize) -> (Vec<T>, Option<usize>),
    v6: impl FnOnce(usize) -> (Vec<T>, Option<usize>),
) -> (Vec<T>, Option<usize>) {
    match from.checked_sub(V6_CURSOR) {
        None => {
            let (part, next) = v4(from);
            (part, Some(next.unwrap_or(V6_CURSOR)))
        }
        Some(at) => {
            let (part, next) = v6(at);
            (part, next.map(|s| s + V6_CURSOR))
        }
    }
}

impl Dataplane {
    /// Answers one request.
    pub(super) fn answer(&mut self, req: DpRequest) {
        match req {
            DpRequest::Conns { from, reply } => {
                let _ = reply.send(self.conn_chunk(from, CONN_CHUNK));
            }
            DpRequest::Handoff(reply) => {
                let _ = reply.send(self.export_conns());
                self.handed_off = true;
            }
            DpRequest::SyncDigest(round) => self.emit(SyncEvent::Digest(round, self.digest())),
            DpRequest::SyncChunk { from, mark, reply } => {
                let _ = reply.send(self.sync_chunk(from, CONN_CHUNK, mark));
            }
            DpRequest::SyncApply(recs) => {
                self.apply_sync(&recs);
            }
            DpRequest::ResyncBegin => self.resync_begin(),
            DpRequest::ResyncEnd(reply) => {
                let _ = reply.send(self.resync_end());
            }
            DpRequest::Digest(reply) => {
                let _ = reply.send(self.digest());
            }
            DpRequest::Trace { query, from, reply } => {
                let _ = reply.send(self.trace_facts(&query, from));
            }
        }
    }

    /// Up to `n` connections from cursor `from` on, for `-Lnc`, and where
    /// the next chunk starts ([`both_tables`]).
    pub fn conn_chunk(&self, from: usize, n: usize) -> (Vec<ConnInfo>, Option<usize>) {
        both_tables(
            from,
            |at| self.chunk_of(&self.conns, at, n),
            |at| self.chunk_of(&self.conns6, at, n),
        )
    }

    /// One table's chunk of the listing.
    fn chunk_of<A: Addr>(
        &self,
        conns: &ConnTable<A>,
        from: usize,
        n: usize,
    ) -> (Vec<ConnInfo>, Option<usize>) {
        let now = self.now_ms();
        let (chunk, next) = conns.chunk(from, n);
        let infos = chunk
            .into_iter()
            .filter_map(|(k, mut c)| {
                // Past its timer, not yet swept: gone (a backup's synced
                // timers do not run, its entries stay listed).
                if c.expires_ms(now) <= now && !self.table.standby {
                    return None;
                }
                locate(&self.table, &self.positions, &mut c)?;
                let daddr = c.dest_addr(&self.table)?;
                Some(ConnInfo {
                    protocol: k.protocol,
                    caddr: k.caddr.into(),
                    cport: k.cport,
                    vaddr: k.vaddr.into(),
                    vport: k.vport,
                    daddr,
                    // The connection's: a port-0 service's carry the
                    // client's port, its templates 0.
                    dport: c.rport,
                    state: c.state.name().to_string(),
                    expires_secs: c.expires_ms(now).saturating_sub(now).div_ceil(1000),
                })
            })
            .collect();
        (infos, next)
    }

    /// Every tracked connection (tests; the daemon lists in chunks).
    pub fn conn_list(&self) -> Vec<ConnInfo> {
        let mut all = Vec::new();
        let mut from = Some(0);
        while let Some(f) = from {
            let (mut part, next) = self.conn_chunk(f, CONN_CHUNK);
            all.append(&mut part);
            from = next;
        }
        all
    }

    pub fn conn_count(&self) -> usize {
        self.conns.len() + self.conns6.len()
    }
}
