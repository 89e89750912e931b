//! Connection sync between directors, verified. The active director sends
//! its connection changes ([`Record`]s, queued by the data plane) to every
//! peer as a stream of numbered messages, each keyed with HMAC-SHA256 (the
//! MAC is the checksum: a damaged message fails it like a forged one).
//! A receiver takes the stream strictly in order: a gap holds what follows
//! and asks for the missing messages again (`Nack`); what the sender no
//! longer has, or a gap that does not fill, ends in a full resync. The
//! stream also carries the sender's table digest at that point; a backup
//! whose own digest differs there asks for a full resync too. IPVS's sync
//! protocol has none of this (no sequence numbers, no checksums, no
//! resend), which is how its backups drift silently.

use super::Fresh;
use crate::lvs::conn::{ConnKey, ConnState, PortableConn};
use crate::lvs::service::{Forward, Protocol};
use crate::lvs::sync::{Digest, Record};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

pub const MAGIC: &[u8; 4] = b"UVSS";
const VERSION: u8 = 1;
const HEADER: usize = 48;
const RECORD: usize = 36;
const MAC: usize = 32;
/// Records per message: a message stays under 1400 bytes, inside any MTU
/// a director's link has.
pub const MAX_RECORDS: usize = 36;
/// The largest message.
pub const MAX_LEN: usize = HEADER + MAX_RECORDS * RECORD + MAC;
/// Messages the sender keeps for resending.
const KEEP: usize = 4096;
/// Out-of-order messages a receiver holds while it waits for a gap.
const HOLD: usize = 1024;
/// A gap not filled by then is skipped, and a full resync asked for.
pub const GAP_TIMEOUT: Duration = Duration::from_millis(500);

/// What a sync message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// In the stream: connection changes.
    Records(Vec<Record>),
    /// In the stream: the sender's digest here.
    Digest(Digest),
    /// In the stream: a full resync begins; entries it does not send
    /// again before `ResyncEnd` are dropped then.
    ResyncBegin,
    ResyncEnd,
    /// Receiver to sender: send stream messages `from..=to` again.
    Nack {
        from: u64,
        to: u64,
    },
    /// Receiver to sender: send the whole table.
    ResyncRequest,
}

impl Body {
    /// Whether it belongs to the numbered stream (the others are
    /// requests back to the sender).
    pub fn in_stream(&self) -> bool {
        !matches!(self, Body::Nack { .. } | Body::ResyncRequest)
    }

    fn kind(&self) -> u8 {
        match self {
            Body::Records(_) => 1,
            Body::Digest(_) => 2,
            Body::ResyncBegin => 3,
            Body::ResyncEnd => 4,
            Body::Nack { .. } => 5,
            Body::ResyncRequest => 6,
        }
    }
}

/// One sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncMsg {
    pub boot: u64,
    /// In the stream: its place; otherwise the sender's count of requests.
    pub seq: u64,
    pub sent_ms: u64,
    pub body: Body,
}

/// Why a sync message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Wrong length, magic, version, kind or record contents.
    Malformed,
    /// The MAC does not match: damaged, forged, or another key.
    BadMac,
}

fn forward_code(f: Forward) -> u8 {
    match f {
        Forward::Route => 0,
        Forward::Tunnel => 1,
        Forward::Masq => 2,
    }
}

fn forward_from(b: u8) -> Option<Forward> {
    [Forward::Route, Forward::Tunnel, Forward::Masq]
        .get(usize::from(b))
        .copied()
}

fn protocol_from(b: u8) -> Option<Protocol> {
    [Protocol::Tcp, Protocol::Udp]
        .into_iter()
        .find(|p| p.number() == b)
}

fn emit_record(r: &Record, b: &mut [u8]) {
    let (op, k, p) = match r {
        Record::Upsert(p) => (1, p.key(), Some(p)),
        Record::Remove(k) => (2, *k, None),
    };
    b[0] = op;
    b[1] = k.protocol.number();
    b[4..8].copy_from_slice(&k.caddr.octets());
    b[8..10].copy_from_slice(&k.cport.to_be_bytes());
    b[10..14].copy_from_slice(&k.vaddr.octets());
    b[14..16].copy_from_slice(&k.vport.to_be_bytes());
    if let Some(p) = p {
        b[2] = forward_code(p.fwd);
        b[3] = p.state.code();
        b[16..20].copy_from_slice(&p.raddr.octets());
        b[20..22].copy_from_slice(&p.rport.to_be_bytes());
        b[22] = p.client_link;
        b[23] = u8::from(p.seen_twice);
        b[24..30].copy_from_slice(&p.client_mac);
        let ms = u32::try_from(p.expires_in_ms).unwrap_or(u32::MAX);
        b[30..34].copy_from_slice(&ms.to_be_bytes());
    }
}

fn parse_record(b: &[u8]) -> Option<Record> {
    if b.len() < RECORD {
        return None;
    }
    let ip = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
    let port = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let key = ConnKey {
        protocol: protocol_from(b[1])?,
        caddr: ip(4),
        cport: port(8),
        vaddr: ip(10),
        vport: port(14),
    };
    match b[0] {
        2 => Some(Record::Remove(key)),
        1 if b[23] <= 1 => {
            let state = ConnState::from_code(b[3])?;
            // A state of the other protocol is nonsense.
            if matches!(state, ConnState::Udp) != (key.protocol == Protocol::Udp) {
                return None;
            }
            Some(Record::Upsert(PortableConn {
                protocol: key.protocol,
                caddr: key.caddr,
                cport: key.cport,
                vaddr: key.vaddr,
                vport: key.vport,
                raddr: ip(16),
                rport: port(20),
                fwd: forward_from(b[2])?,
                state,
                expires_in_ms: u64::from(u32::from_be_bytes(b[30..34].try_into().ok()?)),
                client_link: b[22],
                client_mac: b[24..30].try_into().ok()?,
                seen_twice: b[23] == 1,
            }))
        }
        _ => None,
    }
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

impl SyncMsg {
    /// The message on the wire. `Records` holds at most [`MAX_RECORDS`].
    pub fn emit(&self, key: &[u8]) -> Vec<u8> {
        let recs: &[Record] = match &self.body {
            Body::Records(r) => &r[..r.len().min(MAX_RECORDS)],
            _ => &[],
        };
        let mut b = vec![0u8; HEADER + recs.len() * RECORD + MAC];
        b[0..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[5] = self.body.kind();
        b[6..8].copy_from_slice(&(recs.len() as u16).to_be_bytes());
        b[8..16].copy_from_slice(&self.boot.to_be_bytes());
        b[16..24].copy_from_slice(&self.seq.to_be_bytes());
        b[24..32].copy_from_slice(&self.sent_ms.to_be_bytes());
        let (x, y) = match &self.body {
            Body::Digest(d) => (d.count, d.sum),
            Body::Nack { from, to } => (*from, *to),
            _ => (0, 0),
        };
        b[32..40].copy_from_slice(&x.to_be_bytes());
        b[40..48].copy_from_slice(&y.to_be_bytes());
        for (i, r) in recs.iter().enumerate() {
            emit_record(r, &mut b[HEADER + i * RECORD..HEADER + (i + 1) * RECORD]);
        }
        let end = b.len() - MAC;
        let mut m = keyed(key);
        m.update(&b[..end]);
        let mac = m.finalize().into_bytes();
        b[end..].copy_from_slice(&mac);
        b
    }

    /// A message from the wire: the MAC is checked before anything in it
    /// is believed.
    pub fn parse(b: &[u8], key: &[u8]) -> Result<SyncMsg, Refused> {
        if b.len() < HEADER + MAC || &b[0..4] != MAGIC || b[4] != VERSION {
            return Err(Refused::Malformed);
        }
        let n = usize::from(u16::from_be_bytes([b[6], b[7]]));
        if n > MAX_RECORDS || b.len() != HEADER + n * RECORD + MAC {
            return Err(Refused::Malformed);
        }
        let end = b.len() - MAC;
        let mut m = keyed(key);
        m.update(&b[..end]);
        if m.verify_slice(&b[end..]).is_err() {
            return Err(Refused::BadMac);
        }
        let u = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let (x, y) = (u(32), u(40));
        let body = match b[5] {
            1 => Body::Records(
                (0..n)
                    .map(|i| parse_record(&b[HEADER + i * RECORD..HEADER + (i + 1) * RECORD]))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(Refused::Malformed)?,
            ),
            2 => Body::Digest(Digest { count: x, sum: y }),
            3 => Body::ResyncBegin,
            4 => Body::ResyncEnd,
            5 if x <= y => Body::Nack { from: x, to: y },
            6 => Body::ResyncRequest,
            _ => return Err(Refused::Malformed),
        };
        if n > 0 && !matches!(body, Body::Records(_)) {
            return Err(Refused::Malformed);
        }
        Ok(SyncMsg {
            boot: u(8),
            seq: u(16),
            sent_ms: u(24),
            body,
        })
    }
}

/// Counters shown by `uvs ha`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCounters {
    pub msgs_sent: u64,
    pub records_sent: u64,
    pub msgs_received: u64,
    pub records_received: u64,
    /// Stream messages missing (a gap), asked for again, and resent.
    pub gaps: u64,
    pub resends_asked: u64,
    pub resends_sent: u64,
    /// Gaps that did not fill in time and were skipped.
    pub gaps_skipped: u64,
    pub resyncs_asked: u64,
    pub resyncs_sent: u64,
    pub resyncs_received: u64,
    pub digests_ok: u64,
    pub digest_mismatches: u64,
    pub bad_mac: u64,
    pub malformed: u64,
    /// Old messages again (replays, or resends already had).
    pub replayed: u64,
    /// Connection changes the data plane could not queue.
    pub overflows: u64,
}

/// The sending side of the stream: numbers messages and keeps the last
/// [`KEEP`] for resending.
pub struct Outbox {
    pub boot: u64,
    seq: u64,
    requests: u64,
    kept: VecDeque<(u64, Vec<u8>)>,
}

impl Outbox {
    pub fn new(boot: u64) -> Outbox {
        Outbox {
            boot,
            seq: 0,
            requests: 0,
            kept: VecDeque::with_capacity(KEEP),
        }
    }

    /// The last stream sequence number used.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The next message with `body`, on the wire; stream messages are
    /// kept for resending.
    pub fn next(&mut self, body: Body, now_ms: u64, key: &[u8]) -> Vec<u8> {
        let stream = body.in_stream();
        let seq = match stream {
            true => {
                self.seq += 1;
                self.seq
            }
            false => {
                self.requests += 1;
                self.requests
            }
        };
        let b = SyncMsg {
            boot: self.boot,
            seq,
            sent_ms: now_ms,
            body,
        }
        .emit(key);
        if stream {
            if self.kept.len() == KEEP {
                self.kept.pop_front();
            }
            self.kept.push_back((seq, b.clone()));
        }
        b
    }

    /// Stream messages `from..=to` as first sent; `None` if any of them
    /// is no longer kept (or was never sent).
    pub fn resend(&self, from: u64, to: u64) -> Option<Vec<Vec<u8>>> {
        let first = self.kept.front()?.0;
        if from < first || to > self.seq || to - from >= KEEP as u64 {
            return None;
        }
        let at = (from - first) as usize;
        Some(
            self.kept
                .range(at..=at + (to - from) as usize)
                .map(|(_, b)| b.clone())
                .collect(),
        )
    }
}

/// What a receiver does with an accepted message.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Stream messages to apply now, in order.
    Deliver(Vec<Body>),
    /// A request from the peer.
    Request(Body),
    /// Held behind a gap: ask for `from..=to` again.
    Gap { from: u64, to: u64 },
    /// Held behind a gap already asked for.
    Held,
    /// Had already, or a replay.
    Old,
}

/// The receiving side of one peer's stream.
#[derive(Default)]
pub struct Inbox {
    stream: Fresh,
    requests: Fresh,
    /// The next stream sequence number to apply (0: none heard yet).
    next: u64,
    held: BTreeMap<u64, Body>,
    /// Since when a gap holds the stream.
    pub gap_since: Option<Instant>,
    /// The highest stream sequence number seen.
    pub highest: u64,
    /// The peer's stream began (or restarted) after messages this
    /// receiver never had: only a full resync makes the table whole.
    pub joined_late: bool,
    /// Between a `ResyncBegin` and its `ResyncEnd` (digests wait).
    pub resyncing: bool,
}

impl Inbox {
    /// The boot of the stream being followed.
    pub fn boot(&self) -> Option<u64> {
        self.stream.boot()
    }

    /// The last stream sequence number applied.
    pub fn applied(&self) -> u64 {
        self.next.saturating_sub(1)
    }

    /// Takes a message whose MAC was checked.
    pub fn take(&mut self, m: SyncMsg, now: Instant) -> Taken {
        if !m.body.in_stream() {
            return match self.requests.accept(m.boot, m.seq, m.sent_ms) {
                true => Taken::Request(m.body),
                false => Taken::Old,
            };
        }
        if self.stream.boot() != Some(m.boot) {
            // A new stream (the peer restarted, or the first one heard):
            // only if its clock is later than the old stream's, so an old
            // boot's messages cannot be replayed.
            if !self.stream.accept(m.boot, m.seq, m.sent_ms) {
                return Taken::Old;
            }
            self.joined_late = m.seq != 1;
            self.resyncing = false;
            self.next = m.seq;
            self.held.clear();
            self.gap_since = None;
            self.highest = m.seq;
        }
        if m.seq < self.next || self.held.contains_key(&m.seq) {
            return Taken::Old;
        }
        self.stream.seen(m.seq, m.sent_ms);
        self.highest = self.highest.max(m.seq);
        if m.seq > self.next {
            if self.held.len() >= HOLD {
                // Too far behind: give up on the gap.
                return self.skip(Some((m.seq, m.body)));
            }
            self.held.insert(m.seq, m.body);
            if self.gap_since.is_none() {
                self.gap_since = Some(now);
                return Taken::Gap {
                    from: self.next,
                    to: m.seq - 1,
                };
            }
            return Taken::Held;
        }
        let mut out = vec![m.body];
        self.next += 1;
        while let Some(b) = self.held.remove(&self.next) {
            out.push(b);
            self.next += 1;
        }
        self.gap_since = (!self.held.is_empty()).then_some(now);
        Taken::Deliver(out)
    }

    /// Gives up on the gap: what is held is applied in order (a full
    /// resync, which the caller asks for, repairs what was lost).
    pub fn skip(&mut self, extra: Option<(u64, Body)>) -> Taken {
        if let Some((s, b)) = extra {
            self.held.insert(s, b);
        }
        let held = std::mem::take(&mut self.held);
        let out: Vec<Body> = held.into_values().collect();
        self.next = self.highest + 1;
        self.gap_since = None;
        Taken::Deliver(out)
    }

    /// The gap to ask for again (after a lost `Nack`), if one holds.
    pub fn missing(&self) -> Option<(u64, u64)> {
        let first = *self.held.keys().next()?;
        Some((self.next, first - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvs::conn::TcpState;

    const KEY: &[u8] = b"a key of sixteen bytes";

    fn upsert(cport: u16, state: ConnState) -> Record {
        Record::Upsert(PortableConn {
            protocol: match state {
                ConnState::Udp => Protocol::Udp,
                _ => Protocol::Tcp,
            },
            caddr: Ipv4Addr::new(198, 18, 0, 10),
            cport,
            vaddr: Ipv4Addr::new(198, 18, 0, 100),
            vport: 80,
            raddr: Ipv4Addr::new(198, 18, 0, 21),
            rport: 80,
            fwd: Forward::Route,
            state,
            expires_in_ms: 900_000,
            client_link: 0,
            client_mac: [2, 0, 0, 0, 0, 10],
            seen_twice: true,
        })
    }

    fn records(n: u16) -> Body {
        Body::Records(
            (0..n)
                .map(|i| match i % 3 {
                    0 => upsert(1000 + i, ConnState::Tcp(TcpState::Established)),
                    1 => upsert(1000 + i, ConnState::Udp),
                    _ => Record::Remove(key_of(upsert(1000 + i, ConnState::Udp))),
                })
                .collect(),
        )
    }

    fn key_of(r: Record) -> ConnKey {
        match r {
            Record::Upsert(p) => p.key(),
            Record::Remove(k) => k,
        }
    }

    #[test]
    fn every_kind_of_message_survives_the_wire() {
        for body in [
            records(0),
            records(1),
            records(MAX_RECORDS as u16),
            Body::Digest(Digest { count: 3, sum: 99 }),
            Body::ResyncBegin,
            Body::ResyncEnd,
            Body::Nack { from: 4, to: 9 },
            Body::ResyncRequest,
        ] {
            let m = SyncMsg {
                boot: 7,
                seq: 42,
                sent_ms: 1_700_000_000_000,
                body,
            };
            let b = m.emit(KEY);
            assert!(b.len() <= MAX_LEN);
            assert_eq!(SyncMsg::parse(&b, KEY), Ok(m));
        }
    }

    #[test]
    fn damaged_forged_and_truncated_messages_are_refused() {
        let m = SyncMsg {
            boot: 7,
            seq: 42,
            sent_ms: 5,
            body: records(3),
        };
        let b = m.emit(KEY);
        assert_eq!(
            SyncMsg::parse(&b, b"another key!!!!!"),
            Err(Refused::BadMac)
        );
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 0x10;
            assert!(SyncMsg::parse(&x, KEY).is_err(), "byte {i} flipped");
        }
        for n in 0..b.len() {
            assert_eq!(SyncMsg::parse(&b[..n], KEY), Err(Refused::Malformed));
        }
        // Nonsense under a valid MAC (a peer with a bug) is refused too.
        let mut bad = m.clone();
        bad.body = Body::Records(vec![upsert(1, ConnState::Udp)]);
        let mut x = bad.emit(KEY);
        x[HEADER + 1] = 6; // UDP's state with TCP's protocol
        let end = x.len() - MAC;
        let mut mac = keyed(KEY);
        mac.update(&x[..end]);
        let tag = mac.finalize().into_bytes();
        x[end..].copy_from_slice(&tag);
        assert_eq!(SyncMsg::parse(&x, KEY), Err(Refused::Malformed));
    }

    fn msg(out: &mut Outbox, body: Body) -> SyncMsg {
        SyncMsg::parse(&out.next(body, 1000 + out.seq(), KEY), KEY).unwrap()
    }

    #[test]
    fn a_gap_holds_the_stream_until_the_resend_fills_it() {
        let now = Instant::now();
        let mut out = Outbox::new(1);
        let mut inb = Inbox::default();
        let m1 = msg(&mut out, records(1));
        let m2 = msg(&mut out, records(2));
        let m3 = msg(&mut out, records(3));
        let m4 = msg(&mut out, Body::Digest(Digest::default()));
        assert_eq!(inb.take(m1.clone(), now), Taken::Deliver(vec![records(1)]));
        // m2 and m3 lost: m4 is held and 2..=3 asked for.
        assert_eq!(inb.take(m4.clone(), now), Taken::Gap { from: 2, to: 3 });
        let again: Vec<SyncMsg> = out
            .resend(2, 3)
            .unwrap()
            .iter()
            .map(|b| SyncMsg::parse(b, KEY).unwrap())
            .collect();
        assert_eq!(again, vec![m2.clone(), m3.clone()]);
        assert_eq!(inb.take(again[1].clone(), now), Taken::Held);
        assert_eq!(
            inb.take(again[0].clone(), now),
            Taken::Deliver(vec![records(2), records(3), m4.body.clone()])
        );
        assert_eq!(inb.applied(), 4);
        assert!(inb.gap_since.is_none());
        // Replays of any of them are old news.
        for m in [m1, m2, m3, m4] {
            assert_eq!(inb.take(m, now), Taken::Old);
        }
        assert!(!inb.joined_late);
    }

    #[test]
    fn what_the_sender_no_longer_keeps_cannot_be_resent() {
        let mut out = Outbox::new(1);
        for _ in 0..KEEP + 10 {
            out.next(records(0), 1, KEY);
        }
        assert!(out.resend(1, 5).is_none());
        assert!(out.resend(20, 30).is_some());
        assert!(out.resend(20, out.seq() + 1).is_none());
        // Requests are not kept.
        out.next(Body::ResyncRequest, 1, KEY);
        assert_eq!(out.seq(), (KEEP + 10) as u64);
    }

    #[test]
    fn a_skipped_gap_delivers_what_was_held_and_a_new_boot_needs_a_later_clock() {
        let now = Instant::now();
        let mut out = Outbox::new(1);
        let mut inb = Inbox::default();
        let m: Vec<SyncMsg> = (0..4).map(|i| msg(&mut out, records(i))).collect();
        inb.take(m[0].clone(), now);
        assert!(matches!(inb.take(m[2].clone(), now), Taken::Gap { .. }));
        assert_eq!(inb.take(m[3].clone(), now), Taken::Held);
        assert_eq!(inb.missing(), Some((2, 2)));
        assert_eq!(inb.skip(None), Taken::Deliver(vec![records(2), records(3)]));
        assert_eq!(inb.applied(), 4);
        // A restarted sender with a later clock starts a new stream; the
        // old boot's messages are then refused.
        let mut out2 = Outbox::new(2);
        let n1 = SyncMsg::parse(&out2.next(records(1), 9999, KEY), KEY).unwrap();
        assert!(matches!(inb.take(n1, now), Taken::Deliver(_)));
        assert_eq!(inb.take(m[1].clone(), now), Taken::Old);
        // A receiver that joins a stream midway knows it.
        let mut late = Inbox::default();
        late.take(m[2].clone(), now);
        assert!(late.joined_late);
        // Requests are taken once each.
        let r = SyncMsg::parse(&out.next(Body::ResyncRequest, 5000, KEY), KEY).unwrap();
        assert_eq!(
            late.take(r.clone(), now),
            Taken::Request(Body::ResyncRequest)
        );
        assert_eq!(late.take(r, now), Taken::Old);
    }
}
