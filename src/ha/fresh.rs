//! The replay window of one sender's keyed messages (heartbeats, the
//! sync stream's requests, the witness's answers).

/// Replay protection for one sender's messages: its (boot, sequence)
/// only moves forward, and a new boot must carry a later clock than the
/// last message of the old one.
#[derive(Debug, Clone, Default)]
pub struct Fresh {
    pub(super) last: Option<(u64, u64, u64)>,
}

impl Fresh {
    /// Takes (boot, seq, sent_ms) if it is newer than anything before.
    pub fn accept(&mut self, boot: u64, seq: u64, sent_ms: u64) -> bool {
        let fresh = match self.last {
            None => true,
            Some((b, s, sent)) if b == boot => seq > s && sent_ms >= sent,
            Some((_, _, sent)) => sent_ms > sent,
        };
        if fresh {
            self.last = Some((boot, seq, sent_ms));
        }
        fresh
    }

    /// Notes a message of the current boot that may come out of order.
    pub fn seen(&mut self, seq: u64, sent_ms: u64) {
        if let Some((_, s, sent)) = &mut self.last {
            *s = (*s).max(seq);
            *sent = (*sent).max(sent_ms);
        }
    }

    pub fn boot(&self) -> Option<u64> {
        self.last.map(|l| l.0)
    }

    pub fn seq(&self) -> u64 {
        self.last.map_or(0, |l| l.1)
    }
}
