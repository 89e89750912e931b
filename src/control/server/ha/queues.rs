//! The active director's sync queues, one per data-plane worker, read
//! into one stream with each digest in its place.

use crate::ha::sync::{Batch, Body};
use crate::lvs::sync::Digest;
use crate::lvs::sync::SyncEvent;
use std::sync::mpsc::Receiver;

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
        let mut batch = Batch::default();
        loop {
            let mut moved = false;
            for w in 0..self.rx.len() {
                while self.shares[w].is_none() {
                    let Ok(ev) = self.rx[w].try_recv() else { break };
                    moved = true;
                    match ev {
                        SyncEvent::Record(r) => batch.push(r),
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
                batch.push_body(Body::Digest(Digest::sum_of(&parts)));
                moved = true;
            }
            if !moved {
                break;
            }
        }
        batch.into_bodies()
    }

    /// What worker `w` queued before its resync chunk's `mark`: those
    /// records go before the chunk, what it queued after goes after.
    pub fn drain_until(&mut self, w: usize, mark: u64) -> Vec<Body> {
        let mut batch = Batch::default();
        if let Some((round, _)) = self.shares[w] {
            self.spoil(round);
        }
        while let Ok(ev) = self.rx[w].try_recv() {
            match ev {
                SyncEvent::Record(r) => batch.push(r),
                SyncEvent::Digest(round, _) => self.spoil(round),
                SyncEvent::Mark(m) if m == mark => break,
                SyncEvent::Mark(_) => {}
            }
        }
        batch.into_bodies()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvs::conn::ConnKey;
    use crate::lvs::service::Protocol;
    use crate::lvs::sync::Record;
    use std::net::Ipv4Addr;
    use std::sync::mpsc::sync_channel;

    fn rec(port: u16) -> SyncEvent {
        SyncEvent::Record(Record::Remove(
            ConnKey {
                protocol: Protocol::Tcp,
                caddr: Ipv4Addr::new(198, 18, 0, 10),
                cport: port,
                vaddr: Ipv4Addr::new(198, 18, 0, 100),
                vport: 80,
            }
            .portable(),
        ))
    }

    fn ports(bodies: &[Body]) -> Vec<String> {
        bodies
            .iter()
            .flat_map(|b| match b {
                Body::Records(r) => r
                    .iter()
                    .map(|r| match r {
                        Record::Remove(k) | Record::RemoveTemplate(k) => k.cport.to_string(),
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
    pub(super) fn a_digest_goes_out_once_every_worker_s_share_is_in_between_before_and_after() {
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
    pub(super) fn a_round_that_cannot_complete_is_dropped_not_summed_with_another() {
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
    pub(super) fn one_worker_s_digest_goes_out_where_it_was_queued() {
        let (t0, r0) = sync_channel(16);
        let mut q = Queues::new(vec![r0]);
        for e in [rec(1), share(1, 1), rec(2), share(2, 2)] {
            t0.send(e).unwrap();
        }
        assert_eq!(ports(&q.drain()), ["1", "digest 1 10", "2", "digest 2 20"]);
    }
}
