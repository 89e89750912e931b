//! Expiry: the connection table's sweep, in bounded steps paced by the
//! shortest timer any entry has (the pacing is in the [module's
//! constants](super)), and the rule it applies to each entry.

use super::books::{Books, locate, release};
use super::conn::Conn;
use super::conn_table::walk::SweepStep;
use super::offload::take_back;
use super::sync::queue;
use super::{Dataplane, SWEEP_PASS_MAX_MS, SWEEP_PASS_MS, SWEEP_REMOVE, sweep_step_ms};
use crate::io::PacketIo;
use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, TEMPLATE_REARM_SECS};
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::sync::{Record, SyncEvent};
use crate::lvs::table::Table;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::SyncSender;

/// What the sweep's rule reads: the table and positions to find a
/// connection's real server, the time, and where removals are queued.
#[derive(Clone, Copy)]
struct Rule<'t> {
    table: &'t Table,
    positions: &'t HashMap<u32, (u32, u32)>,
    now: u64,
    sync: Option<&'t SyncSender<SyncEvent>>,
    counters: &'t DataplaneCounters,
}

/// The data plane `$dp`'s [`Rule`] at `$now`, borrowing only the fields
/// it reads (the tables stay free to sweep).
macro_rules! rule {
    ($dp:expr, $now:expr) => {
        Rule {
            table: &$dp.table,
            positions: &$dp.positions,
            now: $now,
            sync: $dp.sync.as_ref(),
            counters: &$dp.counters,
        }
    };
}

/// The sweep's rule at `now`: a connection whose real server is gone, or
/// whose timer ran out (its server's count given back), goes; the others
/// are remapped to the current table and stay. A backup's synced timers
/// do not run (the active director removes what ends). Removals are
/// queued for the peers. The same for both families' tables.
fn still_live<'t, A: Addr>(
    r: Rule<'t>,
    mut gone_offloaded: impl FnMut(&ConnKey<A>, &Conn<A>) + 't,
) -> impl FnMut(&ConnKey<A>, &mut Conn<A>, u32) -> bool + 't {
    let Rule {
        table,
        positions,
        now,
        sync,
        counters,
    } = r;
    let sync = sync.filter(|_| !table.standby);
    move |k, c, controls| {
        let live = match locate(table, positions, c) {
            // A template outlives its real server while it controls
            // connections (they end as they come), as an IPVS template
            // that ip_vs_check_template invalidated waits for them.
            None => controls > 0,
            Some(_) if c.expires_ms(now) > now || table.standby => true,
            // ip_vs_conn_expire: "do I control anybody?" Then later.
            Some(_) if controls > 0 => {
                c.set_expires_ms(now + u64::from(TEMPLATE_REARM_SECS) * 1000);
                true
            }
            Some((_, d)) => {
                release(&d.state, c);
                false
            }
        };
        if !live && c.offloaded {
            gone_offloaded(k, c);
        }
        if !live && let Some(tx) = sync {
            let r = Record::removal(k, c.state);
            queue(tx, counters, SyncEvent::Record(r));
        }
        live
    }
}

impl Dataplane {
    /// One bounded step of the table's sweep: drops connections whose
    /// timer ran out or whose real server is gone, and remaps the rest to
    /// the current table. Sized so a whole pass takes `pass` ms.
    pub(super) fn sweep_step<I: PacketIo>(&mut self, io: &mut I, now: u64, pass: u64) -> SweepStep {
        let visit = |slots: usize| {
            (slots * sweep_step_ms(pass) as usize)
                .div_ceil(pass as usize)
                .max(64)
        };
        let books = Books {
            table: &self.table,
            positions: &self.positions,
            retired: &self.retired,
        };
        let rule = rule!(self, now);
        let keep = still_live(rule, |k, c| take_back(io, &books, k, c));
        let mut step = self
            .conns
            .sweep_step(visit(self.conns.slots()), SWEEP_REMOVE, keep);
        // IPv6 connections: the same rule, paced alike.
        let keep6 = still_live(rule, |k, c| take_back(io, &books, k, c));
        let visit6 = visit(self.conns6.slots());
        step.removed += self.conns6.sweep_step(visit6, SWEEP_REMOVE, keep6).removed;
        let live = self.conns.len() + self.conns6.len();
        self.counters.conns.store(live as u64, Relaxed);
        if step.wrapped && self.sweep_urgent > 0 {
            self.sweep_urgent -= 1;
            if self.sweep_urgent == 0 {
                // What the program forwarded to them, read while they can
                // still be found.
                self.fold_real_counts(io);
                self.retired.forget();
            }
        }
        step
    }

    /// How long the sweep's pass may take now (`SWEEP_PASS_MS`).
    pub(super) fn sweep_pass_ms(&self) -> u64 {
        if self.sweep_urgent > 0 || self.conns.len() * 10 >= self.conns.limit() * 9 {
            return SWEEP_PASS_MS;
        }
        match self.conns.shortest_timeout(&self.table.timeouts) {
            None => SWEEP_PASS_MAX_MS,
            Some(t) => (u64::from(t) * 1000 / 8).clamp(SWEEP_PASS_MS, SWEEP_PASS_MAX_MS),
        }
    }

    /// Drops every connection whose timer ran out by `now`, in one pass
    /// (tests; the data plane itself sweeps in bounded steps).
    pub fn expire(&mut self, now: u64) {
        // "Later than every timer": within the timers' 99-day window of the
        // clock (the longest timeout is 31 days).
        let now = now.min(self.now_ms() + 32 * 86_400_000);
        // (Tests: their backends offload nothing.)
        let rule = rule!(self, now);
        self.conns.retain(still_live(rule, |_, _| {}));
        self.conns6.retain(still_live(rule, |_, _| {}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::LinkParams;
    use crate::lvs::conn::{ConnState, TcpState};
    use crate::lvs::service::{Forward, Protocol, Timeouts};
    use crate::wire::MacAddr;
    use arc_swap::ArcSwap;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn dataplane(max_conns: usize) -> (Dataplane, Arc<ArcSwap<Table>>) {
        let shared = Arc::new(ArcSwap::from_pointee(Table::new(
            1,
            vec![],
            Timeouts::default(),
        )));
        let link = LinkParams {
            mac: MacAddr::ZERO,
            mtu: 1500,
            addr: Ipv4Addr::UNSPECIFIED,
            addr6: std::net::Ipv6Addr::UNSPECIFIED,
        };
        let counters = Arc::new(DataplaneCounters::default());
        let dp = Dataplane::with_links(shared.clone(), vec![link], counters, None, max_conns);
        (dp, shared)
    }

    fn add(dp: &mut Dataplane, port: u16, state: ConnState) {
        let k = ConnKey {
            protocol: Protocol::Udp,
            caddr: Ipv4Addr::new(198, 19, 0, 1),
            cport: port,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 9,
        };
        let c = Conn::new(
            0,
            0,
            1,
            state,
            300_000,
            Forward::Route,
            Ipv4Addr::new(198, 18, 0, 11),
            9,
            0,
            MacAddr::ZERO,
        );
        dp.conns.insert(k, c).unwrap();
    }

    /// The sweep's pace: slow while every entry's timer is long, an eighth
    /// of the shortest one, the fastest after a table change (until a
    /// whole pass has seen it) and near the table's limit.
    #[test]
    fn the_sweep_goes_as_fast_as_the_shortest_timer_needs() {
        let (mut dp, _) = dataplane(100);
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MAX_MS);
        for p in 0..10 {
            add(&mut dp, p, ConnState::Udp);
        }
        // UDP's 300 s: 37.5 s, held to the slowest pace.
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MAX_MS);
        add(&mut dp, 100, ConnState::Tcp(TcpState::LastAck));
        assert_eq!(dp.sweep_pass_ms(), 30_000 / 8);
        add(&mut dp, 101, ConnState::Tcp(TcpState::None));
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MS);

        let (mut dp, shared) = dataplane(100);
        add(&mut dp, 1, ConnState::Udp);
        let mut io = crate::io::memory::MemoryIo::default();
        shared.store(Arc::new(Table::new(2, vec![], Timeouts::default())));
        dp.refresh_table(&mut io);
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MS);
        // Two wraps: the pass under way when the table changed, then a
        // whole one.
        for _ in 0..2 {
            while !dp.sweep_step(&mut io, 0, SWEEP_PASS_MS).wrapped {}
        }
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MAX_MS);

        let (mut dp, _) = dataplane(10);
        for p in 0..9 {
            add(&mut dp, p, ConnState::Udp);
        }
        assert_eq!(dp.sweep_pass_ms(), SWEEP_PASS_MS, "near the limit");
    }
}
