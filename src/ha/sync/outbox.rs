//! The sending side of the stream: numbers messages and keeps the last
//! [`KEEP`] for resending.

use super::{Body, SyncMsg};
use std::collections::VecDeque;

/// Messages the sender keeps for resending.
pub(super) const KEEP: usize = 4096;

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
