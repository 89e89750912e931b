//! The sending side of the sync stream: queued changes every flush, a
//! full resync in chunks between frames, the digest and the repair of
//! gaps every second.

use super::super::Control;
use super::Queues;
use crate::control::server::lock;
use crate::ha::HaConfig;
use crate::ha::sync::{Body, GAP_TIMEOUT, Taken, batches};
use crate::lvs::request::DpRequest;
use crate::lvs::sync::Record;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// A full resync being sent.
pub(super) struct Resync {
    /// The next worker and slot to read (`None`: the table is done).
    from: Option<(usize, usize)>,
    sent: usize,
    started: Instant,
    begun: bool,
    /// Asked of this director while a backup (by a director that has
    /// just started): it goes on whatever the role; one sent as the
    /// holder stops when this director lets go.
    as_backup: bool,
}

/// The sending side's state between ticks.
#[derive(Default)]
pub(super) struct Sending {
    resync: Option<Resync>,
    marks: u64,
    overflows_seen: u64,
}

impl Control {
    /// Sends stream messages to every peer, numbering and keeping them.
    pub(super) async fn send_stream(&self, sock: &UdpSocket, cfg: &HaConfig, bodies: Vec<Body>) {
        if bodies.is_empty() {
            return;
        }
        let now_ms = crate::host::unix_ms();
        let wire: Vec<Vec<u8>> = {
            let mut g = lock(&self.ha);
            let Some(ha) = g.as_mut() else { return };
            bodies
                .into_iter()
                .map(|b| {
                    if let Body::Records(r) = &b {
                        ha.sync.records_sent += r.len() as u64;
                    }
                    ha.sync.msgs_sent += 1;
                    ha.out.next(b, now_ms, &cfg.key)
                })
                .collect()
        };
        for m in &wire {
            for p in &cfg.peers {
                let _ = sock.send_to(m, (*p, cfg.port)).await;
            }
        }
    }

    /// Every flush tick: queued changes go out (whatever the role now:
    /// the data plane queues only while active, so they are this
    /// director's), then the next chunk of a full resync.
    pub(super) async fn flush(
        &self,
        sock: &UdpSocket,
        cfg: &HaConfig,
        events: &mut Queues,
        out: &mut Sending,
    ) {
        let overflows = self.dp.total(|c| &c.sync_overflows);
        if overflows != out.overflows_seen {
            // Changes were lost before they were queued: only the whole
            // table repairs that.
            if let Some(ha) = lock(&self.ha).as_mut() {
                ha.sync.overflows += overflows - out.overflows_seen;
            }
            out.overflows_seen = overflows;
            tracing::info!("HA: the sync queue overflowed; sending the whole table again");
            self.start_resync(out);
        }
        let bodies = events.drain();
        self.send_stream(sock, cfg, bodies).await;
        let Some(r) = out.resync.as_mut() else {
            return;
        };
        if !r.as_backup && !self.ha_active() {
            out.resync = None;
            self.set_resync(None);
            return;
        }
        if !r.begun {
            r.begun = true;
            self.send_stream(sock, cfg, vec![Body::ResyncBegin]).await;
        }
        let Some((w, from)) = r.from else { return };
        out.marks += 1;
        let mark = out.marks;
        let chunk = self
            .dp
            .ask(
                w,
                |reply| DpRequest::SyncChunk { from, mark, reply },
                Duration::from_secs(2),
            )
            .await;
        let Ok((conns, next)) = chunk else {
            return;
        };
        // What the data plane queued before it read the chunk goes first.
        let before = events.drain_until(w, mark);
        self.send_stream(sock, cfg, before).await;
        let n = conns.len();
        let bodies = batches(conns.into_iter().map(Record::Upsert));
        self.send_stream(sock, cfg, bodies).await;
        let r = out.resync.as_mut().expect("a resync is under way");
        r.sent += n;
        r.from = self.dp.next_cursor(w, next);
        let progress = format!("{} connections sent", r.sent);
        if r.from.is_none() {
            let (sent, ms) = (r.sent, r.started.elapsed().as_millis());
            out.resync = None;
            self.send_stream(sock, cfg, vec![Body::ResyncEnd]).await;
            tracing::info!("HA: full table sent to the peers: {sent} connections in {ms} ms");
            self.set_resync(None);
            // A digest right after lets the peers check the result.
            self.dp.ask_digest_shares();
        } else {
            self.set_resync(Some(progress));
        }
    }

    pub(super) fn set_resync(&self, progress: Option<String>) {
        if let Some(h) = lock(&self.ha).as_mut() {
            h.resync = progress;
        }
    }

    pub(super) fn start_resync(&self, out: &mut Sending) {
        if out.resync.is_some() {
            return;
        }
        out.resync = Some(Resync {
            from: Some((0, 0)),
            sent: 0,
            started: Instant::now(),
            begun: false,
            as_backup: !self.ha_active(),
        });
        if let Some(ha) = lock(&self.ha).as_mut() {
            ha.sync.resyncs_sent += 1;
            ha.resync = Some("starting".into());
        }
    }

    /// Every second: the active director's digest goes into its stream;
    /// rates are sampled; a gap that did not fill is skipped, and the
    /// missing messages asked for again otherwise.
    pub(super) async fn slow_tick(&self, sock: &UdpSocket, cfg: &HaConfig) {
        let now = Instant::now();
        let mut nacks = Vec::new();
        let mut skipped = Vec::new();
        let active = {
            let mut g = lock(&self.ha);
            let Some(ha) = g.as_mut() else { return };
            ha.sample_rates(now);
            for i in 0..ha.inboxes.len() {
                let Some(since) = ha.inboxes[i].gap_since else {
                    continue;
                };
                if now.duration_since(since) >= GAP_TIMEOUT {
                    if let Taken::Deliver(b) = ha.inboxes[i].skip(None) {
                        skipped.push((i, b));
                    }
                    ha.sync.gaps_skipped += 1;
                    ha.table_lost(i);
                } else if let Some((from, to)) = ha.inboxes[i].missing() {
                    ha.sync.resends_asked += 1;
                    let m = ha
                        .out
                        .next(Body::Nack { from, to }, crate::host::unix_ms(), &cfg.key);
                    nacks.push((ha.peers[i].addr, m));
                }
            }
            ha.active
        };
        for (a, m) in nacks {
            let _ = sock.send_to(&m, (a, cfg.port)).await;
        }
        for (i, bodies) in skipped {
            tracing::info!(
                "HA: sync messages from {} missing and not resent in time; \
                 asking for the whole table",
                cfg.peers[i]
            );
            for b in bodies {
                self.apply_synced(i, b).await;
            }
        }
        if active {
            self.dp.ask_digest_shares();
        }
    }
}
