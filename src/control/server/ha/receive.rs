//! The receiving side: a datagram on the HA port (a heartbeat, a witness's
//! answer, or a sync message), the stream applied in order, and the
//! digest compared at its place.

use super::super::Control;
use super::send::Sending;
use crate::control::server::lock;
use crate::ha::HaConfig;
use crate::ha::sync::{self, Body, SyncMsg, Taken};
use crate::ha::witness;
use crate::lvs::request::DpRequest;
use crate::lvs::sync::Digest;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

impl Control {
    /// A datagram on the HA port: a heartbeat or a sync message.
    pub(super) async fn datagram(
        &self,
        sock: &UdpSocket,
        cfg: &HaConfig,
        from: SocketAddr,
        b: &[u8],
        out: &mut Sending,
    ) {
        let now = Instant::now();
        if b.starts_with(witness::MAGIC) {
            if let Some(ha) = lock(&self.ha).as_mut() {
                match ha.witness.as_ref().is_some_and(|w| w.addr == from) {
                    true => ha.witness_answer(b, now),
                    false => ha.counters.unknown_sender += 1,
                }
            }
            return;
        }
        if !b.starts_with(sync::MAGIC) {
            if let Some(ha) = lock(&self.ha).as_mut() {
                ha.receive(from.ip(), b, now);
            }
            return;
        }
        let taken = {
            let mut g = lock(&self.ha);
            let Some(ha) = g.as_mut() else { return };
            let Some(i) = ha.peer_index(from.ip()) else {
                ha.counters.unknown_sender += 1;
                return;
            };
            match SyncMsg::parse(b, &cfg.key) {
                Err(sync::Refused::BadMac) => {
                    ha.sync.bad_mac += 1;
                    return;
                }
                Err(sync::Refused::Malformed) => {
                    ha.sync.malformed += 1;
                    return;
                }
                Ok(m) => {
                    ha.sync.msgs_received += 1;
                    (i, ha.inboxes[i].take(m, now))
                }
            }
        };
        let (i, taken) = taken;
        match taken {
            Taken::Old => {
                if let Some(ha) = lock(&self.ha).as_mut() {
                    ha.sync.replayed += 1;
                }
            }
            Taken::Held => {}
            Taken::Gap { from: f, to } => {
                let m = {
                    let mut g = lock(&self.ha);
                    let Some(ha) = g.as_mut() else { return };
                    ha.sync.gaps += 1;
                    ha.sync.resends_asked += 1;
                    ha.out
                        .next(Body::Nack { from: f, to }, crate::host::unix_ms(), &cfg.key)
                };
                let _ = sock.send_to(&m, (from.ip(), cfg.port)).await;
            }
            Taken::Request(Body::Nack { from: f, to }) => {
                let again = {
                    let mut g = lock(&self.ha);
                    let Some(ha) = g.as_mut() else { return };
                    let again = ha.out.resend(f, to);
                    if let Some(a) = &again {
                        ha.sync.resends_sent += a.len() as u64;
                    }
                    again
                };
                match again {
                    Some(msgs) => {
                        for m in msgs {
                            let _ = sock.send_to(&m, (from.ip(), cfg.port)).await;
                        }
                    }
                    // Gone from what is kept: the whole table instead.
                    None if self.ha_active() => self.start_resync(out),
                    None => {}
                }
            }
            // The holder sends its table; a backup sends its copy too,
            // as the one asking may have just started and find there the
            // connections it held before it restarted.
            Taken::Request(_) => {
                tracing::info!("HA: {} asks for the whole table", from.ip());
                self.start_resync(out);
            }
            Taken::Deliver(bodies) => {
                for b in bodies {
                    self.apply_synced(i, b).await;
                }
            }
        }
    }

    /// Applies one stream message from peer `i`, in order.
    pub(super) async fn apply_synced(&self, i: usize, body: Body) {
        match body {
            Body::Records(r) => {
                if let Some(ha) = lock(&self.ha).as_mut() {
                    ha.sync.records_received += r.len() as u64;
                }
                self.dp.apply_sync(r);
            }
            // A whole table replaces this director's copy only on a backup,
            // and only from the holder or a peer it asked: an active
            // director trusts its own table.
            Body::ResyncBegin => {
                {
                    let mut g = lock(&self.ha);
                    let Some(ha) = g.as_mut() else { return };
                    if !ha.takes_resync_from(i, Instant::now()) {
                        return;
                    }
                    ha.sync.resyncs_received += 1;
                    ha.inboxes[i].resyncing = true;
                }
                self.dp.tell_all(|| DpRequest::ResyncBegin);
            }
            Body::ResyncEnd => {
                let taken = lock(&self.ha)
                    .as_mut()
                    .map(|h| {
                        let take = h.inboxes[i].resyncing && !h.active;
                        h.inboxes[i].resyncing = false;
                        take
                    })
                    .unwrap_or(false);
                if !taken {
                    return;
                }
                let stale: usize = self
                    .dp
                    .ask_all(DpRequest::ResyncEnd, Duration::from_secs(5))
                    .await
                    .map(|v| v.iter().sum())
                    .unwrap_or(0);
                let conns = self.dp.total(|c| &c.conns);
                let mut g = lock(&self.ha);
                let Some(ha) = g.as_mut() else { return };
                ha.inboxes[i].resyncing = false;
                ha.inboxes[i].joined_late = false;
                let peer = ha.peers[i].addr;
                if let Some(boot) = ha.inboxes[i].boot() {
                    ha.table_from(i, boot);
                }
                tracing::info!(
                    "HA: has the whole table of {peer} ({stale} stale entries dropped, \
                     {conns} connections)"
                );
            }
            Body::Digest(theirs) => self.check_digest(i, theirs).await,
            Body::Nack { .. } | Body::ResyncRequest => {}
        }
    }

    /// Compares the peer's digest with this director's at the same point
    /// of the stream; a mismatch asks for the whole table.
    pub(super) async fn check_digest(&self, i: usize, theirs: Digest) {
        // A backup that joined the stream late lacks part of the table until
        // its full resync ends: a digest before that says nothing new.
        let resyncing = lock(&self.ha)
            .as_ref()
            .is_none_or(|h| h.active || h.inboxes[i].resyncing || h.inboxes[i].joined_late);
        if resyncing {
            return;
        }
        let Ok(ours) = self.dp.digest(Duration::from_secs(2)).await else {
            return;
        };
        let mut g = lock(&self.ha);
        let Some(ha) = g.as_mut() else { return };
        let at = ha.inboxes[i].applied();
        if ours == theirs {
            ha.sync.digests_ok += 1;
            ha.digest = format!("ok at seq {at}");
            return;
        }
        ha.sync.digest_mismatches += 1;
        if !ha.digest.starts_with("mismatch") {
            tracing::info!(
                "HA: the synced table differs from {}'s at seq {at} ({} connections there, \
                 {} here); asking for the whole table",
                ha.peers[i].addr,
                theirs.count,
                ours.count
            );
        }
        ha.digest = format!(
            "mismatch at seq {at}: {} connections there, {} here",
            theirs.count, ours.count
        );
        ha.table_lost(i);
    }
}
