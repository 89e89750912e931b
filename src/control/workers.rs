//! The control plane's handle on the data plane's workers (`--workers`):
//! a request channel and the counters of each. Workers share nothing but
//! the published table; each owns the connections of its clients (the
//! fanout program's hash, [`fanout::worker_of`]). So a question about the
//! whole table is asked of every worker and the answers combined here,
//! counters are summed, and what is addressed to one connection (a synced
//! record from the active director) goes to the worker that will see its
//! frames.

use crate::host::sys::Wake;
use crate::io::fanout;
use crate::lvs::request::DpRequest;
use crate::lvs::stats::DataplaneCounters;
use crate::lvs::sync::{Digest, Record};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Sender;
use std::time::Duration;
use tokio::sync::oneshot;

/// Why a question to the data plane got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// A worker's channel is closed (its thread ended).
    #[error("the data plane is not running")]
    NotRunning,
    /// No answer within the wait.
    #[error("the data plane did not answer")]
    NoAnswer,
}

pub struct Workers {
    txs: Vec<Sender<DpRequest>>,
    /// Each worker's wake-up, written after a request is sent.
    wakes: Vec<Arc<Wake>>,
    counters: Vec<Arc<DataplaneCounters>>,
    /// The last digest round asked for (HA sync).
    rounds: AtomicU64,
    /// `uvs trace --live`'s tap, which every worker holds too.
    tap: Arc<crate::lvs::trace::TraceTap>,
}

impl Workers {
    /// Worker `i` reads `txs[i]`, is woken by `wakes[i]` and counts in
    /// `counters[i]`.
    pub fn new(
        txs: Vec<Sender<DpRequest>>,
        wakes: Vec<Arc<Wake>>,
        counters: Vec<Arc<DataplaneCounters>>,
    ) -> Workers {
        assert!(!txs.is_empty() && txs.len() == counters.len() && txs.len() == wakes.len());
        Workers {
            txs,
            wakes,
            counters,
            rounds: AtomicU64::new(0),
            tap: Arc::default(),
        }
    }

    /// With the live-trace tap the workers were given
    /// (`Dataplane::set_trace`).
    pub fn with_tap(mut self, tap: Arc<crate::lvs::trace::TraceTap>) -> Workers {
        self.tap = tap;
        self
    }

    /// The live-trace tap.
    pub fn tap(&self) -> &crate::lvs::trace::TraceTap {
        &self.tap
    }

    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Where a walk over every worker's table goes after worker `w`'s chunk
    /// that ended at `next` (`None`: that worker is done): on in the same
    /// worker, to the next worker's start, or nowhere (all done).
    pub fn next_cursor(&self, w: usize, next: Option<usize>) -> Option<(usize, usize)> {
        match next {
            Some(slot) => Some((w, slot)),
            None if w + 1 < self.len() => Some((w + 1, 0)),
            None => None,
        }
    }

    /// The worker that owns client `addr`:`port`'s connections.
    pub fn of(&self, addr: IpAddr, port: u16) -> usize {
        fanout::worker_of_ip(addr, port, self.len())
    }

    /// Tells worker `w` (no answer expected).
    pub fn tell(&self, w: usize, r: DpRequest) {
        if let Some(tx) = self.txs.get(w) {
            let _ = tx.send(r);
            self.wakes[w].wake();
        }
    }

    pub fn tell_all(&self, r: impl Fn() -> DpRequest) {
        for (tx, wake) in self.txs.iter().zip(&self.wakes) {
            let _ = tx.send(r());
            wake.wake();
        }
    }

    /// Asks worker `w` (answered between its frames), waiting at most
    /// `wait`.
    pub async fn ask<T>(
        &self,
        w: usize,
        question: impl FnOnce(oneshot::Sender<T>) -> DpRequest,
        wait: Duration,
    ) -> Result<T, AskError> {
        let (tx, rx) = oneshot::channel();
        let sent = self.txs.get(w).map(|s| s.send(question(tx)).is_ok());
        if sent != Some(true) {
            return Err(AskError::NotRunning);
        }
        self.wakes[w].wake();
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => Err(AskError::NoAnswer),
        }
    }

    /// Asks every worker at once; the answers in worker order.
    pub async fn ask_all<T>(
        &self,
        question: impl Fn(oneshot::Sender<T>) -> DpRequest,
        wait: Duration,
    ) -> Result<Vec<T>, AskError> {
        let mut pending = Vec::with_capacity(self.len());
        for (tx, wake) in self.txs.iter().zip(&self.wakes) {
            let (reply, rx) = oneshot::channel();
            if tx.send(question(reply)).is_err() {
                return Err(AskError::NotRunning);
            }
            wake.wake();
            pending.push(rx);
        }
        let all = futures::future::join_all(pending);
        match tokio::time::timeout(wait, all).await {
            Ok(answers) => answers
                .into_iter()
                .map(|a| a.map_err(|_| AskError::NoAnswer))
                .collect(),
            Err(_) => Err(AskError::NoAnswer),
        }
    }

    /// The whole table's digest: the sum of the workers'.
    pub async fn digest(&self, wait: Duration) -> Result<Digest, AskError> {
        let parts = self.ask_all(DpRequest::Digest, wait).await?;
        Ok(Digest::sum_of(&parts))
    }

    /// HA, the active side: every worker queues its share of the digest
    /// in its sync queue (the HA task sums a round's shares).
    pub fn ask_digest_shares(&self) {
        let round = self.rounds.fetch_add(1, Relaxed) + 1;
        self.tell_all(|| DpRequest::SyncDigest(round));
    }

    /// A synced batch, each record to its connection's worker, in order.
    pub fn apply_sync(&self, recs: Vec<Record>) {
        let mut per: Vec<Vec<Record>> = vec![Vec::new(); self.len()];
        for r in recs {
            let k = r.key();
            per[self.of(k.caddr, k.cport)].push(r);
        }
        for (w, recs) in per.into_iter().enumerate() {
            if !recs.is_empty() {
                self.tell(w, DpRequest::SyncApply(recs));
            }
        }
    }

    /// One counter summed over the workers.
    pub fn total(&self, field: impl Fn(&DataplaneCounters) -> &AtomicU64) -> u64 {
        self.counters.iter().map(|c| field(c).load(Relaxed)).sum()
    }

    /// Every counter summed over the workers (`uvs status`), then, with
    /// several, the frames each received and the new flows the kernel
    /// program scheduled for each (reported to its ring).
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let mut sum: Vec<(String, u64)> = Vec::new();
        for c in &self.counters {
            for (i, (k, v)) in c.pairs().into_iter().enumerate() {
                match sum.get_mut(i) {
                    Some(s) => s.1 += v,
                    None => sum.push((k.to_string(), v)),
                }
            }
        }
        if self.len() > 1 {
            sum.push(("workers".into(), self.len() as u64));
            for (i, c) in self.counters.iter().enumerate() {
                sum.push((format!("worker{i}_rx_frames"), c.rx_frames.load(Relaxed)));
                let scheduled = c.kernel_scheduled.load(Relaxed);
                sum.push((format!("worker{i}_kernel_scheduled"), scheduled));
            }
        }
        sum
    }
}
