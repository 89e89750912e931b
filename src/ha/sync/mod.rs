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

mod inbox;
mod outbox;
mod record;

pub use crate::wire::ha::Refused;
pub use crate::wire::ha::sync::{MAGIC, MAX_LEN, MAX_RECORDS};
pub use inbox::{Inbox, Taken};
pub use outbox::Outbox;
pub use record::{Batch, batches};

use crate::lvs::sync::{Digest, Record};
use crate::wire::ha::sync::{self as wire, SyncHeader, SyncRecord};
use record::{from_wire, to_wire};
use serde::{Deserialize, Serialize};
use std::time::Duration;

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

impl SyncMsg {
    /// The message on the wire. `Records` holds at most what one
    /// message has room for (as a [`Batch`] gathers them; the rest is
    /// left out).
    pub fn emit(&self, key: &[u8]) -> Vec<u8> {
        let recs: Vec<SyncRecord> = match &self.body {
            Body::Records(r) => r.iter().take(MAX_RECORDS).map(to_wire).collect(),
            _ => Vec::new(),
        };
        let (x, y) = match &self.body {
            Body::Digest(d) => (d.count, d.sum),
            Body::Nack { from, to } => (*from, *to),
            _ => (0, 0),
        };
        let h = SyncHeader {
            kind: self.body.kind(),
            boot: self.boot,
            seq: self.seq,
            sent_ms: self.sent_ms,
            x,
            y,
        };
        wire::emit(&h, &recs, key)
    }

    /// A message from the wire: the MAC is checked before anything in it
    /// is believed.
    pub fn parse(b: &[u8], key: &[u8]) -> Result<SyncMsg, Refused> {
        let (h, p) = wire::parse(b, key)?;
        let n = p.count();
        let (x, y) = (h.x, h.y);
        let body = match h.kind {
            1 => Body::Records(
                p.records()
                    .map(|r| SyncRecord::parse(r).as_ref().and_then(from_wire))
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
            boot: h.boot,
            seq: h.seq,
            sent_ms: h.sent_ms,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvs::conn::{ConnKey, ConnState, PortableConn, PortableKey, TcpState};
    use crate::lvs::service::{Forward, Protocol};
    use outbox::KEEP;
    use record::{OP_REMOVE, OP_TEMPLATE, OP_UPSERT};
    use std::net::Ipv4Addr;
    use std::time::Instant;

    const KEY: &[u8] = b"a key of sixteen bytes";

    fn upsert(cport: u16, state: ConnState) -> Record {
        Record::Upsert(PortableConn {
            protocol: match state {
                ConnState::Udp => Protocol::Udp,
                _ => Protocol::Tcp,
            },
            caddr: Ipv4Addr::new(198, 18, 0, 10).into(),
            cport,
            vaddr: Ipv4Addr::new(198, 18, 0, 100).into(),
            vport: 80,
            raddr: Ipv4Addr::new(198, 18, 0, 21).into(),
            rport: 80,
            fwd: Forward::Route,
            state,
            expires_in_ms: 900_000,
            client_link: 0,
            client_mac: [2, 0, 0, 0, 0, 10],
            seen_twice: true,
            fwmark: 0,
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

    fn key_of(r: Record) -> PortableKey {
        match r {
            Record::Upsert(p) => p.key(),
            Record::Remove(k) | Record::RemoveTemplate(k) => k,
        }
    }

    #[test]
    fn templates_have_records_of_their_own() {
        for state in [ConnState::Template, ConnState::Assured] {
            let up = upsert(0, state);
            for r in [up, Record::RemoveTemplate(key_of(up))] {
                assert_eq!(from_wire(&to_wire(&r)), Some(r));
            }
            // A template's state in a connection's record is refused.
            let mut w = to_wire(&up);
            w.op = OP_UPSERT;
            assert_eq!(from_wire(&w), None);
        }
        let mut w = to_wire(&upsert(1, ConnState::Udp));
        w.op = OP_TEMPLATE;
        assert_eq!(from_wire(&w), None);
    }

    #[test]
    fn a_mark_templates_record_carries_its_mark_and_nonsense_is_refused() {
        let Record::Upsert(mut p) = upsert(0, ConnState::Assured) else {
            unreachable!()
        };
        let k = ConnKey::mark_template(Ipv4Addr::new(198, 18, 0, 10), 100).portable();
        (p.protocol, p.vaddr, p.vport, p.fwmark) = (k.protocol, k.vaddr, 0, 100);
        let up = Record::Upsert(p);
        for r in [up, Record::RemoveTemplate(k)] {
            assert_eq!(from_wire(&to_wire(&r)), Some(r));
        }
        assert_eq!(to_wire(&up).protocol, 0);
        // IP only in a template's record, with ports 0 and a mark.
        let bad = [
            SyncRecord {
                op: OP_UPSERT,
                ..to_wire(&up)
            },
            SyncRecord {
                op: OP_REMOVE,
                ..to_wire(&up)
            },
            SyncRecord {
                vport: 80,
                ..to_wire(&up)
            },
            SyncRecord {
                cport: 1,
                ..to_wire(&up)
            },
            SyncRecord {
                vaddr: Ipv4Addr::UNSPECIFIED.into(),
                ..to_wire(&up)
            },
        ];
        for w in bad {
            assert_eq!(from_wire(&w), None, "{w:?}");
        }
    }

    /// A message of boot 7, number 42, with `body`.
    fn stamped(body: Body) -> SyncMsg {
        SyncMsg {
            boot: 7,
            seq: 42,
            sent_ms: 1_700_000_000_000,
            body,
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
            let m = stamped(body);
            let b = m.emit(KEY);
            assert!(b.len() <= MAX_LEN);
            assert_eq!(SyncMsg::parse(&b, KEY), Ok(m));
        }
    }

    #[test]
    fn damaged_forged_and_truncated_messages_are_refused() {
        let b = stamped(records(3)).emit(KEY);
        assert_eq!(
            SyncMsg::parse(&b, b"another key!!!!!"),
            Err(Refused::BadMac)
        );
        damage_is_refused(&b, 0x10);
        // Nonsense under a valid MAC (a peer with a bug) is refused too.
        let mut r = to_wire(&upsert(1, ConnState::Udp));
        r.protocol = 6; // UDP's state with TCP's protocol
        assert_eq!(under_mac(r), Err(Refused::Malformed));
    }

    /// `b` with any byte flipped (by `flip`), or cut short: refused.
    fn damage_is_refused(b: &[u8], flip: u8) {
        for i in 0..b.len() {
            let mut x = b.to_vec();
            x[i] ^= flip;
            assert!(SyncMsg::parse(&x, KEY).is_err(), "byte {i} flipped");
        }
        for n in 0..b.len() {
            assert_eq!(SyncMsg::parse(&b[..n], KEY), Err(Refused::Malformed));
        }
    }

    /// A message of record `r` under a valid MAC, parsed.
    fn under_mac(r: SyncRecord) -> Result<SyncMsg, Refused> {
        let h = SyncHeader {
            kind: 1,
            boot: 7,
            seq: 42,
            sent_ms: 5,
            x: 0,
            y: 0,
        };
        SyncMsg::parse(&wire::emit(&h, &[r], KEY), KEY)
    }

    /// `n` records, IPv6 and IPv4 ones in turn (upserts and removals).
    fn mixed(n: u16) -> Body {
        let Body::Records(v4) = records(n) else {
            unreachable!()
        };
        // 198.18.x.y as 2001:2::c612:xy (a v4-mapped one would be read
        // back as the IPv4 address: a tunnel's mixed families).
        let to6 = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(a) => {
                std::net::Ipv6Addr::from((0x2001_0002u128 << 96) | u128::from(u32::from(a))).into()
            }
            a => a,
        };
        let recs = v4.into_iter().enumerate().map(|(i, r)| match (i % 2, r) {
            (1, r) => r,
            (_, Record::Upsert(p)) => Record::Upsert(PortableConn {
                caddr: to6(p.caddr),
                vaddr: to6(p.vaddr),
                raddr: to6(p.raddr),
                ..p
            }),
            (_, r) => {
                let k = r.key();
                Record::Remove(PortableKey {
                    caddr: to6(k.caddr),
                    vaddr: to6(k.vaddr),
                    ..k
                })
            }
        });
        Body::Records(recs.collect())
    }

    #[test]
    fn messages_mix_ipv4_and_ipv6_records() {
        // 12 IPv6 records and 12 IPv4 ones fill the 36 places.
        for (n, len) in [(1, 72), (2, 108), (24, MAX_LEN - 80)] {
            let m = stamped(mixed(n));
            let b = m.emit(KEY);
            assert_eq!(b.len(), 80 + len, "{n} records");
            assert_eq!(SyncMsg::parse(&b, KEY), Ok(m));
        }
        // What does not fit is left out: a Batch never makes such a body.
        let Body::Records(all) = mixed(26) else {
            unreachable!()
        };
        let b = stamped(Body::Records(all.clone())).emit(KEY);
        assert_eq!(b.len(), MAX_LEN);
        assert_eq!(
            SyncMsg::parse(&b, KEY).map(|m| m.body),
            Ok(Body::Records(all[..24].to_vec()))
        );
    }

    #[test]
    fn damaged_forged_and_truncated_ipv6_records_are_refused() {
        let b = stamped(mixed(5)).emit(KEY);
        // The high bit flipped turns an op into the other family's.
        damage_is_refused(&b, 0x80);
        // Nonsense in an IPv6 record under a valid MAC is refused too.
        let Body::Records(r) = mixed(1) else {
            unreachable!()
        };
        let mut w = to_wire(&r[0]);
        w.protocol = 17; // TCP's state with UDP's protocol
        assert_eq!(under_mac(w), Err(Refused::Malformed));
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
