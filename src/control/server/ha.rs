//! The control plane's HA task: heartbeats and the election
//! ([`crate::ha`]), connection sync ([`crate::ha::sync`]) over the same
//! UDP port, track conditions and notify commands. Role changes only
//! republish the table (active, or standby).

use super::{Control, lock};
use crate::ha::sync::{self, Body, GAP_TIMEOUT, MAX_RECORDS, SyncMsg, Taken};
use crate::ha::track::Watch;
use crate::ha::{Ha, HaConfig, HaStatus, msg, witness};
use crate::lvs::request::DpRequest;
use crate::lvs::sync::{Digest, Record, SyncEvent};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// How often queued connection changes go out.
const FLUSH: Duration = Duration::from_millis(10);
/// How often the active director sends its digest.
const DIGEST_EVERY: Duration = Duration::from_secs(1);

/// A full resync being sent.
struct Resync {
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
struct Sending {
    resync: Option<Resync>,
    marks: u64,
    overflows_seen: u64,
}

/// The active side's sync queues, one per worker, read into one stream.
/// Workers own disjoint connections, so their records may interleave in
/// any way; what must hold is each worker's own order, and a digest's
/// place: it is the sum of every worker's share, each taken at a point of
/// that worker's queue, so it goes out after what each worker queued
/// before its share and before anything queued after. A worker's queue is
/// read no further until all shares of the round are in.
pub struct Queues {
    rx: Vec<Receiver<SyncEvent>>,
    shares: Vec<Option<(u64, Digest)>>,
    /// Shares of rounds below this can no longer complete.
    min_round: u64,
}

impl Queues {
    pub fn new(rx: Vec<Receiver<SyncEvent>>) -> Queues {
        let shares = vec![None; rx.len()];
        Queues {
            rx,
            shares,
            min_round: 0,
        }
    }

    /// A record into the batch; a full batch becomes a message.
    fn push(batch: &mut Vec<Record>, bodies: &mut Vec<Body>, r: Record) {
        batch.push(r);
        if batch.len() == MAX_RECORDS {
            Self::flush(batch, bodies);
        }
    }

    /// The batch so far, as a message (before a digest, or at the end).
    fn flush(batch: &mut Vec<Record>, bodies: &mut Vec<Body>) {
        if !batch.is_empty() {
            bodies.push(Body::Records(std::mem::take(batch)));
        }
    }

    /// Reading worker `w` past its share spoils that round.
    fn spoil(&mut self, round: u64) {
        self.min_round = self.min_round.max(round + 1);
        for s in &mut self.shares {
            if s.is_some_and(|(r, _)| r <= round) {
                *s = None;
            }
        }
    }

    /// Everything queued, as stream messages (a partial batch included),
    /// with each digest whose shares are all in.
    pub fn drain(&mut self) -> Vec<Body> {
        let (mut bodies, mut batch) = (Vec::new(), Vec::new());
        loop {
            let mut moved = false;
            for w in 0..self.rx.len() {
                while self.shares[w].is_none() {
                    let Ok(ev) = self.rx[w].try_recv() else { break };
                    moved = true;
                    match ev {
                        SyncEvent::Record(r) => Self::push(&mut batch, &mut bodies, r),
                        SyncEvent::Digest(round, _) if round < self.min_round => {}
                        SyncEvent::Digest(round, d) => self.shares[w] = Some((round, d)),
                        SyncEvent::Mark(_) => {}
                    }
                }
            }
            // A share of an older round than another's never completes.
            let newest = self.shares.iter().flatten().map(|(r, _)| *r).max();
            if let Some(n) = newest.filter(|n| *n > 0) {
                self.spoil(n - 1);
            }
            if self.shares.iter().all(Option::is_some) {
                let parts: Vec<Digest> = self
                    .shares
                    .iter_mut()
                    .filter_map(|s| s.take())
                    .map(|s| s.1)
                    .collect();
                Self::flush(&mut batch, &mut bodies);
                bodies.push(Body::Digest(Digest::sum_of(&parts)));
                moved = true;
            }
            if !moved {
                break;
            }
        }
        Self::flush(&mut batch, &mut bodies);
        bodies
    }

    /// What worker `w` queued before its resync chunk's `mark`: those
    /// records go before the chunk, what it queued after goes after.
    pub fn drain_until(&mut self, w: usize, mark: u64) -> Vec<Body> {
        let (mut bodies, mut batch) = (Vec::new(), Vec::new());
        if let Some((round, _)) = self.shares[w] {
            self.spoil(round);
        }
        while let Ok(ev) = self.rx[w].try_recv() {
            match ev {
                SyncEvent::Record(r) => Self::push(&mut batch, &mut bodies, r),
                SyncEvent::Digest(round, _) => self.spoil(round),
                SyncEvent::Mark(m) if m == mark => break,
                SyncEvent::Mark(_) => {}
            }
        }
        Self::flush(&mut batch, &mut bodies);
        bodies
    }
}

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
        let sock = match UdpSocket::bind((cfg.me, cfg.port)).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "uvs: HA: cannot listen on {}:{}: {e}; staying backup",
                    cfg.me, cfg.port
                );
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
                    if let Ok((n, std::net::SocketAddr::V4(from))) = r {
                        self.datagram(&sock, &cfg, from, &buf[..n], &mut out).await;
                    }
                }
            }
        }
    }

    /// One heartbeat round: send, elect, change role, notify, and ask
    /// for the holder's table if this backup lacks it.
    async fn beat(self: &Arc<Self>, sock: &UdpSocket, cfg: &HaConfig, notified: &mut String) {
        let now = Instant::now();
        let now_ms = crate::host::unix_ms();
        let conflicts = self.dp.total(|c| &c.vip_conflicts);
        let (msgs, asks, to_witness) = {
            let mut g = lock(&self.ha);
            let Some(ha) = g.as_mut() else { return };
            ha.seq += 1;
            ha.update_ready(now);
            ha.note_conflicts(conflicts, now);
            let msgs: Vec<(Ipv4Addr, [u8; msg::LEN])> = (0..ha.peers.len())
                .map(|i| (ha.peers[i].addr, ha.heartbeat(i, now_ms, now)))
                .collect();
            let asks: Vec<(Ipv4Addr, Vec<u8>)> = ha
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
                eprintln!("uvs: HA: {n}");
            }
            if let Some(n) = ha.witness_news(now) {
                eprintln!("uvs: HA: {n}");
            }
            let change = change.map(|a| (a, ha.reason.clone()));
            let state = (ha.state_name(), ha.priority, ha.reason.clone());
            (change, state, ha.reannounce_due(now))
        };
        if let Some((active, why)) = change {
            self.set_role(active, &why).await;
        } else if again {
            eprintln!(
                "uvs: HA: announcing the VIPs again: another director held them or could not be \
                 heard, and neighbours may have followed it"
            );
            self.announce_vips(1).await;
        }
        let (name, prio, why) = state;
        if *notified != name {
            if !notified.is_empty() || name != "BACKUP" {
                eprintln!("uvs: HA: state {name} (priority {prio}): {why}");
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
    async fn set_role(self: &Arc<Self>, active: bool, why: &str) {
        eprintln!(
            "uvs: HA: now {}: {why}",
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
    fn repeat_announcements(self: &Arc<Self>, repeats: u32) {
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
    pub(super) fn ha_peers(&self) -> Vec<Ipv4Addr> {
        lock(&self.ha)
            .as_ref()
            .map_or_else(Vec::new, |h| h.cfg.peers.clone())
    }

    fn ha_active(&self) -> bool {
        lock(&self.ha).as_ref().is_some_and(|h| h.active)
    }

    /// This director answers for the VIPs: it has no peers, or it is the
    /// active one.
    fn holds_vips(&self) -> bool {
        lock(&self.ha).as_ref().is_none_or(|h| h.active)
    }

    /// `uvs ha`: `None` without peers.
    pub fn ha_status(&self) -> Option<Box<HaStatus>> {
        let g = lock(&self.ha);
        g.as_ref().map(|h| Box::new(h.status(Instant::now())))
    }

    /// Sends stream messages to every peer, numbering and keeping them.
    async fn send_stream(&self, sock: &UdpSocket, cfg: &HaConfig, bodies: Vec<Body>) {
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
    async fn flush(
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
            eprintln!("uvs: HA: the sync queue overflowed; sending the whole table again");
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
        let recs: Vec<Record> = conns.into_iter().map(Record::Upsert).collect();
        let n = recs.len();
        let bodies: Vec<Body> = recs
            .chunks(MAX_RECORDS)
            .map(|c| Body::Records(c.to_vec()))
            .collect();
        self.send_stream(sock, cfg, bodies).await;
        let r = out.resync.as_mut().expect("a resync is under way");
        r.sent += n;
        r.from = self.dp.next_cursor(w, next);
        let progress = format!("{} connections sent", r.sent);
        if r.from.is_none() {
            let (sent, ms) = (r.sent, r.started.elapsed().as_millis());
            out.resync = None;
            self.send_stream(sock, cfg, vec![Body::ResyncEnd]).await;
            eprintln!("uvs: HA: full table sent to the peers: {sent} connections in {ms} ms");
            self.set_resync(None);
            // A digest right after lets the peers check the result.
            self.dp.ask_digest_shares();
        } else {
            self.set_resync(Some(progress));
        }
    }

    fn set_resync(&self, progress: Option<String>) {
        if let Some(h) = lock(&self.ha).as_mut() {
            h.resync = progress;
        }
    }

    fn start_resync(&self, out: &mut Sending) {
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
    async fn slow_tick(&self, sock: &UdpSocket, cfg: &HaConfig) {
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
            eprintln!(
                "uvs: HA: sync messages from {} missing and not resent in time; \
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

    /// A datagram on the HA port: a heartbeat or a sync message.
    async fn datagram(
        &self,
        sock: &UdpSocket,
        cfg: &HaConfig,
        from: SocketAddrV4,
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
                ha.receive(from, b, now);
            }
            return;
        }
        let taken = {
            let mut g = lock(&self.ha);
            let Some(ha) = g.as_mut() else { return };
            let Some(i) = ha.peer_index(*from.ip()) else {
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
                let _ = sock.send_to(&m, (*from.ip(), cfg.port)).await;
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
                            let _ = sock.send_to(&m, (*from.ip(), cfg.port)).await;
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
                eprintln!("uvs: HA: {} asks for the whole table", from.ip());
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
    async fn apply_synced(&self, i: usize, body: Body) {
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
                eprintln!(
                    "uvs: HA: has the whole table of {peer} ({stale} stale entries dropped, \
                     {conns} connections)"
                );
            }
            Body::Digest(theirs) => self.check_digest(i, theirs).await,
            Body::Nack { .. } | Body::ResyncRequest => {}
        }
    }

    /// Compares the peer's digest with this director's at the same point
    /// of the stream; a mismatch asks for the whole table.
    async fn check_digest(&self, i: usize, theirs: Digest) {
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
            eprintln!(
                "uvs: HA: the synced table differs from {}'s at seq {at} ({} connections there, \
                 {} here); asking for the whole table",
                ha.peers[i].addr, theirs.count, ours.count
            );
        }
        ha.digest = format!(
            "mismatch at seq {at}: {} connections there, {} here",
            theirs.count, ours.count
        );
        ha.table_lost(i);
    }

    /// Evaluates the track conditions every second.
    async fn watch_tracks(self: Arc<Self>, tracks: Vec<crate::ha::track::Track>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last: Vec<bool> = vec![false; tracks.len()];
        loop {
            tick.tick().await;
            let mut failing = Vec::with_capacity(tracks.len());
            for t in &tracks {
                failing.push(match &t.watch {
                    Watch::Interface(name) => {
                        let up = libc::IFF_UP as u32 | libc::IFF_RUNNING as u32;
                        crate::host::sys::link_flags(name).map_or(true, |f| f & up != up)
                    }
                    Watch::Script(cmd) => !script_ok(cmd).await,
                    Watch::Quorum => lock(&self.quorums).values().any(|(_, lost)| *lost),
                });
            }
            if failing != last {
                let mut g = lock(&self.ha);
                let Some(ha) = g.as_mut() else { return };
                ha.set_tracks(&failing);
                for (t, (now, was)) in tracks.iter().zip(failing.iter().zip(&last)) {
                    if now != was {
                        eprintln!(
                            "uvs: HA: track: {} {}; priority {}{}",
                            t.describe(),
                            if *now { "(failing)" } else { "(recovered)" },
                            ha.priority,
                            ha.fault
                                .as_ref()
                                .map_or(String::new(), |f| format!(", fault: {f}"))
                        );
                    }
                }
                last = failing;
            }
        }
    }
}

/// Runs a track script: it passes if it exits 0 within 3 s.
async fn script_ok(cmd: &str) -> bool {
    let child = tokio::process::Command::new("sh")
        .args(["-c", cmd])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(3), child).await,
        Ok(Ok(s)) if s.success()
    )
}

/// Runs the notify command in the background, as keepalived's notify
/// script: `sh -c CMD uvs STATE PRIORITY`, the reason in the environment.
fn notify(cmd: &str, state: &str, priority: u8, why: &str) {
    let spawned = tokio::process::Command::new("sh")
        .args(["-c", cmd, "uvs", state, &priority.to_string()])
        .env("UVS_HA_REASON", why)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false)
        .spawn();
    match spawned {
        Ok(mut child) => {
            let cmd = cmd.to_string();
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(s) if s.success() => {}
                    Ok(s) => eprintln!("uvs: HA: notify `{cmd}` {s}"),
                    Err(e) => eprintln!("uvs: HA: notify `{cmd}`: {e}"),
                }
            });
        }
        Err(e) => eprintln!("uvs: HA: cannot run notify `{cmd}`: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvs::conn::ConnKey;
    use crate::lvs::service::Protocol;
    use std::sync::mpsc::sync_channel;

    fn rec(port: u16) -> SyncEvent {
        SyncEvent::Record(Record::Remove(ConnKey {
            protocol: Protocol::Tcp,
            caddr: Ipv4Addr::new(198, 18, 0, 10),
            cport: port,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
        }))
    }

    fn ports(bodies: &[Body]) -> Vec<String> {
        bodies
            .iter()
            .flat_map(|b| match b {
                Body::Records(r) => r
                    .iter()
                    .map(|r| match r {
                        Record::Remove(k) => k.cport.to_string(),
                        Record::Upsert(c) => c.cport.to_string(),
                    })
                    .collect(),
                Body::Digest(d) => vec![format!("digest {} {}", d.count, d.sum)],
                _ => vec!["other".into()],
            })
            .collect()
    }

    fn share(round: u64, count: u64) -> SyncEvent {
        SyncEvent::Digest(
            round,
            Digest {
                count,
                sum: count * 10,
            },
        )
    }

    #[test]
    fn a_digest_goes_out_once_every_worker_s_share_is_in_between_before_and_after() {
        let (t0, r0) = sync_channel(16);
        let (t1, r1) = sync_channel(16);
        let mut q = Queues::new(vec![r0, r1]);
        t0.send(rec(1)).unwrap();
        t0.send(share(1, 2)).unwrap();
        t0.send(rec(2)).unwrap();
        t1.send(rec(3)).unwrap();
        // Worker 1 has not answered yet: worker 0 is read up to its share.
        assert_eq!(ports(&q.drain()), ["1", "3"]);
        t1.send(rec(4)).unwrap();
        t1.send(share(1, 3)).unwrap();
        t1.send(rec(5)).unwrap();
        assert_eq!(ports(&q.drain()), ["4", "digest 5 50", "2", "5"]);
        assert!(q.drain().is_empty());
    }

    #[test]
    fn a_round_that_cannot_complete_is_dropped_not_summed_with_another() {
        let (t0, r0) = sync_channel(16);
        let (t1, r1) = sync_channel(16);
        let mut q = Queues::new(vec![r0, r1]);
        // Worker 1's share of round 1 was lost to a resync chunk read.
        t0.send(share(1, 2)).unwrap();
        t0.send(rec(1)).unwrap();
        t1.send(share(1, 7)).unwrap();
        t1.send(rec(2)).unwrap();
        t1.send(SyncEvent::Mark(9)).unwrap();
        t1.send(rec(3)).unwrap();
        assert_eq!(ports(&q.drain_until(1, 9)), ["2"], "up to the mark only");
        t1.send(share(2, 4)).unwrap();
        t0.send(share(2, 1)).unwrap();
        assert_eq!(ports(&q.drain()), ["1", "3", "digest 5 50"]);
    }

    #[test]
    fn one_worker_s_digest_goes_out_where_it_was_queued() {
        let (t0, r0) = sync_channel(16);
        let mut q = Queues::new(vec![r0]);
        for e in [rec(1), share(1, 1), rec(2), share(2, 2)] {
            t0.send(e).unwrap();
        }
        assert_eq!(ports(&q.drain()), ["1", "digest 1 10", "2", "digest 2 20"]);
    }
}
