//! The control plane's HA task: heartbeats and the election
//! ([`crate::ha`]), connection sync ([`crate::ha::sync`]) over the same
//! UDP port, track conditions and notify commands. Role changes only
//! republish the table (active, or standby).

mod queues;
mod receive;
mod send;
mod tracks;

pub use queues::Queues;

use super::{Control, lock};
use crate::ha::sync::Body;
use crate::ha::{Ha, HaConfig, HaStatus, msg};
use send::Sending;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tracks::notify;

/// How often queued connection changes go out.
const FLUSH: Duration = Duration::from_millis(10);
/// How often the active director sends its digest.
const DIGEST_EVERY: Duration = Duration::from_secs(1);

impl Control {
    /// HA, before anything is published: a director with peers starts as
    /// a backup (silent) until its election says otherwise.
    pub async fn start_standby(&self, cfg: &HaConfig) {
        *lock(&self.ha) = Some(Ha::new(cfg.clone()));
        let mut st = self.state.lock().await;
        st.publisher.set_standby(true);
        st.publish();
    }

    /// HA: heartbeats to and from the peers every interval and the
    /// election after each round; the sync stream out (when active) and
    /// in (when backup); track conditions. A role change republishes the
    /// table as active (with gratuitous ARPs, repeated twice a second
    /// apart) or as standby. Runs for the daemon's life.
    pub async fn run_ha(self: Arc<Self>, cfg: HaConfig, mut events: Queues) {
        let me = SocketAddr::new(cfg.me, cfg.port);
        let sock = match UdpSocket::bind(me).await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!("HA: cannot listen on {me}: {e}; staying backup");
                return;
            }
        };
        // A resync comes in bursts; resends cover what still overflows.
        let _ = crate::host::sys::raise_rcvbuf(&sock, 4 << 20);
        // The time to hear the peers before claiming runs from now, when
        // this director starts listening (its table is loaded by then).
        if let Some(h) = lock(&self.ha).as_mut() {
            h.started = Instant::now();
        }
        if !cfg.tracks.is_empty() {
            tokio::spawn(self.clone().watch_tracks(cfg.tracks.clone()));
        }
        let mut beat = tokio::time::interval(cfg.interval);
        let mut flush = tokio::time::interval(FLUSH);
        let mut slow = tokio::time::interval(DIGEST_EVERY);
        let mut buf = vec![0u8; 2048];
        let mut out = Sending::default();
        let mut notified = String::new();
        loop {
            tokio::select! {
                _ = beat.tick() => self.beat(&sock, &cfg, &mut notified).await,
                _ = flush.tick() => self.flush(&sock, &cfg, &mut events, &mut out).await,
                _ = slow.tick() => self.slow_tick(&sock, &cfg).await,
                r = sock.recv_from(&mut buf) => {
                    if let Ok((n, from)) = r {
                        // Without its flow label and scope, as configured.
                        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
                        self.datagram(&sock, &cfg, from, &buf[..n], &mut out).await;
                    }
                }
            }
        }
    }

    /// One heartbeat round: send, elect, change role, notify, and ask
    /// for the holder's table if this backup lacks it.
    pub(super) async fn beat(
        self: &Arc<Self>,
        sock: &UdpSocket,
        cfg: &HaConfig,
        notified: &mut String,
    ) {
        let now = Instant::now();
        let now_ms = crate::host::unix_ms();
        let conflicts = self.dp.total(|c| &c.vip_conflicts);
        let (msgs, asks, to_witness) = {
            let mut g = lock(&self.ha);
            let Some(ha) = g.as_mut() else { return };
            ha.seq += 1;
            ha.update_ready(now);
            ha.note_conflicts(conflicts, now);
            let msgs: Vec<(IpAddr, [u8; msg::LEN])> = (0..ha.peers.len())
                .map(|i| (ha.peers[i].addr, ha.heartbeat(i, now_ms, now)))
                .collect();
            let asks: Vec<(IpAddr, Vec<u8>)> = ha
                .resync_due(now)
                .into_iter()
                .map(|i| {
                    let m = ha.out.next(Body::ResyncRequest, now_ms, &cfg.key);
                    (ha.peers[i].addr, m)
                })
                .collect();
            (msgs, asks, ha.witness_message(now, now_ms))
        };
        let mut sent = 0;
        for (a, m) in msgs {
            sent += u64::from(sock.send_to(&m, (a, cfg.port)).await.is_ok());
        }
        for (a, m) in asks {
            let _ = sock.send_to(&m, (a, cfg.port)).await;
        }
        if let Some((w, m)) = to_witness {
            let _ = sock.send_to(&m, w).await;
        }
        let (change, state, again) = {
            let mut g = lock(&self.ha);
            let Some(ha) = g.as_mut() else { return };
            ha.counters.sent += sent;
            let now = Instant::now();
            let (change, note) = ha.elect(now);
            if let Some(n) = note {
                tracing::info!("HA: {n}");
            }
            if let Some(n) = ha.witness_news(now) {
                tracing::info!("HA: {n}");
            }
            let change = change.map(|a| (a, ha.reason.clone()));
            let state = (ha.state_name(), ha.priority, ha.reason.clone());
            (change, state, ha.reannounce_due(now))
        };
        if let Some((active, why)) = change {
            self.set_role(active, &why).await;
        } else if again {
            tracing::info!(
                "HA: announcing the VIPs again: another director held them or could not be \
                 heard, and neighbours may have followed it"
            );
            self.announce_vips(1).await;
        }
        let (name, prio, why) = state;
        if *notified != name {
            if !notified.is_empty() || name != "BACKUP" {
                tracing::info!("HA: state {name} (priority {prio}): {why}");
                if let Some(cmd) = &cfg.notify {
                    notify(cmd, name, prio, &why);
                }
            }
            *notified = name.to_string();
        }
    }

    /// Publishes the table as active (announcing the VIPs, and twice more
    /// a second apart, as keepalived repeats its gratuitous ARPs) or as
    /// standby, logging why.
    pub(super) async fn set_role(self: &Arc<Self>, active: bool, why: &str) {
        tracing::info!(
            "HA: now {}: {why}",
            if active {
                "active (holding the VIPs)"
            } else {
                "backup"
            }
        );
        {
            let mut st = self.state.lock().await;
            st.publisher.set_standby(!active);
            st.publisher.announce();
            st.publish();
        }
        if active {
            self.repeat_announcements(2);
        }
    }

    /// Announces the VIPs now (gratuitous ARP on every link) and `repeats`
    /// more times a second apart, while this director holds them.
    pub(super) async fn announce_vips(self: &Arc<Self>, repeats: u32) {
        {
            let mut st = self.state.lock().await;
            if !self.holds_vips() {
                return;
            }
            st.publisher.announce();
            st.publish();
        }
        self.repeat_announcements(repeats);
    }

    /// The repeats of an announcement, in the background.
    pub(super) fn repeat_announcements(self: &Arc<Self>, repeats: u32) {
        if repeats == 0 {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            for _ in 0..repeats {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut st = me.state.lock().await;
                if !me.holds_vips() {
                    return;
                }
                st.publisher.announce();
                st.publish();
            }
        });
    }

    /// keepalived's `garp_master_refresh`: the holder announces its VIPs
    /// every `every`, so a neighbour whose cache went astray (a switch
    /// that lost its table, a host that claimed a VIP) comes back.
    pub async fn refresh_announcements(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.announce_vips(0).await;
        }
    }

    /// The HA peers, if any.
    pub(super) fn ha_peers(&self) -> Vec<IpAddr> {
        lock(&self.ha)
            .as_ref()
            .map_or_else(Vec::new, |h| h.cfg.peers.clone())
    }

    pub(super) fn ha_active(&self) -> bool {
        lock(&self.ha).as_ref().is_some_and(|h| h.active)
    }

    /// This director answers for the VIPs: it has no peers, or it is the
    /// active one.
    pub(super) fn holds_vips(&self) -> bool {
        lock(&self.ha).as_ref().is_none_or(|h| h.active)
    }

    /// `uvs ha`: `None` without peers.
    pub fn ha_status(&self) -> Option<Box<HaStatus>> {
        let g = lock(&self.ha);
        g.as_ref().map(|h| Box::new(h.status(Instant::now())))
    }
}
