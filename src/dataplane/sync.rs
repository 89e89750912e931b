//! The data plane's side of connection sync between directors (HA). The
//! active director queues a [`Record`] for each new connection, state
//! change and removal (as IPVS's sync daemon does: not every packet) on a
//! bounded queue the control plane drains and sends ([`crate::ha::sync`]);
//! a full queue loses the record, is counted, and makes the control plane
//! send the whole table again. A backup applies what it receives to its
//! own table, which it keeps in standby (no forwarding, no timer expiry:
//! removals come from the active one) until it takes over. Both families'
//! tables are synced by the same code ([`Family`]): a record goes to its
//! addresses' table, the digest and a full resync cover both. The records
//! and events are the planes' contract ([`crate::lvs::sync`]).

use super::books::{locate, release, take};
use super::conn::Conn;
use super::handoff::portable;
use super::requests::both_tables;
use super::{Dataplane, Family};
use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, PortableConn};
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::sync::{Digest, Record, SyncEvent};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::mpsc::SyncSender;

impl Dataplane {
    /// Queues this director's connection changes on `tx` while it is
    /// active.
    pub fn set_sync(&mut self, tx: SyncSender<SyncEvent>) {
        self.sync = Some(tx);
    }

    /// Queues `ev` if this director is the active one and syncs; never
    /// blocks, never allocates.
    #[inline]
    pub(super) fn emit(&self, ev: SyncEvent) {
        self.emit_with(|| ev);
    }

    /// As `emit`, the event built only when it is queued.
    #[inline]
    pub(super) fn emit_with(&self, ev: impl FnOnce() -> SyncEvent) {
        if let Some(tx) = self.sync.as_ref().filter(|_| !self.table.standby) {
            queue(tx, &self.counters, ev());
        }
    }

    /// Queues a connection's state for the peers (one to a tunnelled
    /// real server of the other family too: its record is an IPv6 one,
    /// its IPv4 addresses v4-mapped).
    #[inline]
    pub(super) fn emit_upsert<A: Addr>(&self, k: &ConnKey<A>, c: &Conn<A>, seen_twice: bool) {
        self.emit_with(|| {
            let p = portable(&self.table, k, c, self.now_ms(), seen_twice);
            SyncEvent::Record(Record::Upsert(p))
        });
    }

    /// Applies records received from the active director, each to its
    /// family's table. Returns how many were applied; the others name a
    /// service or server this director does not have (or mix families).
    pub fn apply_sync(&mut self, recs: &[Record]) -> usize {
        let now = self.now_ms();
        let mut applied = 0;
        for r in recs {
            applied += usize::from(match r.key().caddr {
                IpAddr::V4(_) => self.apply_one::<Ipv4Addr>(r, now),
                IpAddr::V6(_) => self.apply_one::<Ipv6Addr>(r, now),
            });
        }
        applied
    }

    /// Applies one record to family `A`'s table.
    fn apply_one<A: Family>(&mut self, r: &Record, now: u64) -> bool {
        match r {
            // An active director trusts its own table: it takes only
            // connections it does not know (the last ones the previous
            // holder made as it let go), and removes nothing.
            _ if !self.table.standby => match r {
                Record::Upsert(p) if !self.has::<A>(p) => self.import_one::<A>(p, now),
                _ => false,
            },
            Record::Remove(k) => k.typed::<A>().is_some_and(|k| {
                self.forget(&k, false);
                true
            }),
            Record::RemoveTemplate(k) => k.typed::<A>().is_some_and(|k| {
                self.forget(&k, true);
                true
            }),
            Record::Upsert(p) => self.upsert::<A>(p, now),
        }
    }

    /// Whether family `A`'s table has `p`'s entry already.
    fn has<A: Family>(&self, p: &PortableConn) -> bool {
        p.key()
            .typed::<A>()
            .is_some_and(|k| self.conns_of::<A>().entry(&k, p.is_template()).is_some())
    }

    /// Enters or updates one synced connection.
    fn upsert<A: Family>(&mut self, p: &PortableConn, now: u64) -> bool {
        let Some((key, raddr)) = p.typed::<A>() else {
            return false;
        };
        let tpl = p.is_template();
        let same = self
            .conns_of::<A>()
            .entry(&key, tpl)
            .is_some_and(|c| c.raddr == raddr && c.rport == p.rport && c.fwd == p.fwd);
        if !same {
            self.forget(&key, tpl);
            return self.import_one::<A>(p, now);
        }
        let (table, positions) = (&self.table, &self.positions);
        let conns = A::table_mut(&mut self.conns, &mut self.conns6);
        let Some(c) = conns.entry_mut(&key, tpl) else {
            return false;
        };
        let old = c.state;
        if let Some((_, d)) = locate(table, positions, c)
            && old.is_active() != p.state.is_active()
        {
            release(&d.state, c);
            take(&d.state, p.state);
        }
        c.state = p.state;
        c.set_expires_ms(now + p.expires_in_ms);
        c.client_link = p.client_link;
        c.client_mac = crate::wire::MacAddr(p.client_mac);
        let c = *c;
        conns.restated(&key, &c, old);
        conns.confirm_entry(&key, tpl);
        true
    }

    /// Removes a connection (or a template), giving its real server's
    /// count back.
    pub(super) fn forget<A: Family>(&mut self, k: &ConnKey<A>, template: bool) {
        if let Some(mut c) = self.conns_mut::<A>().remove_entry(k, template)
            && let Some((_, d)) = locate(&self.table, &self.positions, &mut c)
        {
            release(&d.state, &c);
        }
    }

    /// A full resync from the active director begins: what it does not
    /// send again before [`Dataplane::resync_end`] is dropped then, in
    /// both tables.
    pub fn resync_begin(&mut self) {
        self.conns.begin_marking();
        self.conns6.begin_marking();
    }

    /// A full resync ended; returns how many stale entries went. The
    /// connections that came before their templates are linked to them.
    pub fn resync_end(&mut self) -> usize {
        let gone = self.drop_unconfirmed::<Ipv4Addr>() + self.drop_unconfirmed::<Ipv6Addr>();
        self.adopt_orphans();
        self.counters.conns.store(
            self.conn_count() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        gone
    }

    /// Drops family `A`'s entries a resync did not send again.
    fn drop_unconfirmed<A: Family>(&mut self) -> usize {
        let gone = self.conns_mut::<A>().drop_unconfirmed();
        for mut c in gone.iter().copied() {
            if let Some((_, d)) = locate(&self.table, &self.positions, &mut c) {
                release(&d.state, &c);
            }
        }
        gone.len()
    }

    /// Links the connections of persistent services that came before
    /// their templates (a full resync's order, or a takeover in its
    /// midst) to them, so a template never expires under them.
    pub(super) fn adopt_orphans(&mut self) -> usize {
        self.adopt_orphans_of::<Ipv4Addr>() + self.adopt_orphans_of::<Ipv6Addr>()
    }

    fn adopt_orphans_of<A: Family>(&mut self) -> usize {
        let table = &self.table;
        A::table_mut(&mut self.conns, &mut self.conns6).adopt_orphans(|k| {
            let svc = &table.services[table.lookup_ip(k.protocol, k.vaddr.into(), k.vport)?];
            Some(k.template(&svc.persistence?, &svc.key))
        })
    }

    /// Both tables' digest now: what the directors compare.
    pub fn digest(&self) -> Digest {
        Digest::sum_of(&[self.conns.digest(), self.conns6.digest()])
    }

    /// For a full resync: queues a mark (so the records queued before it
    /// go first), then returns up to `n` connections from cursor `from`
    /// on and where the next chunk starts: the IPv4 table's slots, then
    /// the IPv6 table's (as the listing's cursor, [`both_tables`]).
    pub fn sync_chunk(
        &mut self,
        from: usize,
        n: usize,
        mark: u64,
    ) -> (Vec<PortableConn>, Option<usize>) {
        if let Some(tx) = &self.sync {
            queue(tx, &self.counters, SyncEvent::Mark(mark));
        }
        both_tables(
            from,
            |at| self.portable_chunk::<Ipv4Addr>(at, n),
            |at| self.portable_chunk::<Ipv6Addr>(at, n),
        )
    }

    /// Up to `n` of family `A`'s connections from slot `from` on, portable.
    fn portable_chunk<A: Family>(
        &self,
        from: usize,
        n: usize,
    ) -> (Vec<PortableConn>, Option<usize>) {
        let now = self.now_ms();
        let conns = self.conns_of::<A>();
        let (chunk, next) = conns.chunk(from, n);
        let out = chunk
            .iter()
            .map(|(k, c)| portable(&self.table, k, c, now, conns.seen_twice(k)))
            .collect();
        (out, next)
    }

    /// A backup taking over: synced timers stood still while it was
    /// standby (the active director refreshed them with every packet), so
    /// each restarts at least at its state's timeout, as IPVS's backup
    /// gives a synced connection its state's timeout. Connections still
    /// without their templates (a resync cut short) are linked first.
    pub(super) fn restart_timers(&mut self) {
        self.adopt_orphans();
        self.restart_timers_of::<Ipv4Addr>();
        self.restart_timers_of::<Ipv6Addr>();
    }

    fn restart_timers_of<A: Family>(&mut self) {
        let now = self.now_ms();
        let t = self.table.timeouts;
        self.conns_mut::<A>().retain(|_, c, _| {
            let full = now + u64::from(c.state.timeout(&t)) * 1000;
            c.set_expires_ms(c.expires_ms(now).max(full));
            true
        });
    }
}

/// Queues `ev` without blocking; a full queue counts an overflow.
pub(super) fn queue(tx: &SyncSender<SyncEvent>, counters: &DataplaneCounters, ev: SyncEvent) {
    match tx.try_send(ev) {
        Ok(()) => DataplaneCounters::bump(&counters.sync_events),
        Err(_) => DataplaneCounters::bump(&counters.sync_overflows),
    }
}
