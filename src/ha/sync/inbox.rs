//! The receiving side of one peer's stream: strictly in order, a gap
//! held and asked for again, a new boot taken only with a later clock.

use super::super::Fresh;
use super::{Body, SyncMsg};
use std::collections::BTreeMap;
use std::time::Instant;

/// Out-of-order messages a receiver holds while it waits for a gap.
const HOLD: usize = 1024;

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
