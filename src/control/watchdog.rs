//! systemd's watchdog (`WatchdogSec=`), fed from the data plane's
//! progress rather than from a timer alone: each worker's loop stores its
//! turn count (`DataplaneCounters::loops`, at least one turn a second
//! when idle), and every half interval this task sends `WATCHDOG=1` only
//! if every worker has turned since the last feed. A data plane stuck in
//! a loop or a lock stops the feeding, and systemd restarts uvs; a
//! control plane that is stuck stops it too, since this task runs there.

use crate::host::notify;
use crate::lvs::stats::LOOP_IDLE_MAX_MS;
use std::time::Duration;
use tokio::time::Instant;

/// What one check of the loops decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// Every loop turned since the last feed: send `WATCHDOG=1`.
    Feed,
    /// These workers' loops have not turned since the last feed, `since`
    /// ago: send nothing.
    Stalled {
        workers: Vec<usize>,
        since: Duration,
    },
}

/// The feeding decision, apart from any clock or socket: the loops' turn
/// counts at the last feed, and when that was.
#[derive(Debug)]
pub struct Feeder {
    fed: Vec<u64>,
    fed_at: Instant,
}

impl Feeder {
    /// Starts from the loops' counts `now` (one count per worker, always
    /// in worker order).
    pub fn new(loops: &[u64], now: Instant) -> Feeder {
        Feeder {
            fed: loops.to_vec(),
            fed_at: now,
        }
    }

    /// Decides on the loops' counts `now`.
    pub fn tick(&mut self, loops: &[u64], now: Instant) -> Tick {
        let mut workers: Vec<usize> = (0..loops.len().max(self.fed.len()))
            .filter(|&w| loops.get(w).is_none_or(|n| self.fed.get(w) == Some(n)))
            .collect();
        if loops.is_empty() {
            workers.push(0);
        }
        if !workers.is_empty() {
            return Tick::Stalled {
                workers,
                since: now.duration_since(self.fed_at),
            };
        }
        self.fed = loops.to_vec();
        self.fed_at = now;
        Tick::Feed
    }
}

/// The shortest interval an idle data plane is sure to turn within at
/// each half of it.
pub const SHORTEST: Duration = Duration::from_millis(3 * LOOP_IDLE_MAX_MS);

/// Every half `interval`, reads the loops' counts (`loops`) and calls
/// `feed` when `Feeder` says so; a stall is logged once, and so is the
/// recovery. Runs until dropped.
pub async fn feed_while_turning(
    interval: Duration,
    loops: impl Fn() -> Vec<u64>,
    mut feed: impl FnMut(),
) {
    let mut every = tokio::time::interval(interval / 2);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut feeder = Feeder::new(&loops(), every.tick().await);
    let mut stalled = false;
    loop {
        let now = every.tick().await;
        match feeder.tick(&loops(), now) {
            Tick::Feed => {
                feed();
                if std::mem::take(&mut stalled) {
                    tracing::info!("the data plane turns again: feeding systemd's watchdog");
                }
            }
            Tick::Stalled { workers, since } if !stalled => {
                stalled = true;
                tracing::error!(
                    "the data plane's loop (worker {workers:?}) has not turned for {} ms: \
                     systemd's watchdog is no longer fed and will restart uvs",
                    since.as_millis()
                );
            }
            Tick::Stalled { .. } => {}
        }
    }
}

/// Feeds systemd's watchdog while every worker's loop turns, if systemd
/// asked for it (`WATCHDOG_USEC`); otherwise returns at once.
pub async fn run(loops: impl Fn() -> Vec<u64>) {
    let Some(interval) = notify::watchdog_interval() else {
        return;
    };
    if interval < SHORTEST {
        tracing::warn!(
            "WatchdogSec={} ms is short: an idle data plane turns once a second, so give \
             {} s or more, or uvs may be restarted while idle",
            interval.as_millis(),
            SHORTEST.as_secs()
        );
    }
    tracing::info!(
        "systemd's watchdog: fed every {} ms while the data plane turns",
        (interval / 2).as_millis()
    );
    feed_while_turning(interval, loops, notify::watchdog).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

    #[test]
    fn feeds_only_when_every_loop_turned_since_the_last_feed() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let mut f = Feeder::new(&[10, 20], t0);
        assert_eq!(f.tick(&[11, 25], s(500)), Tick::Feed);
        // Worker 1 stuck: no feed, however long, and the wait counts
        // from the last feed.
        let stuck = |ms| Tick::Stalled {
            workers: vec![1],
            since: Duration::from_millis(ms),
        };
        assert_eq!(f.tick(&[12, 25], s(1000)), stuck(500));
        assert_eq!(f.tick(&[13, 25], s(1500)), stuck(1000));
        // It turns again: fed, and the next check needs new turns.
        assert_eq!(f.tick(&[14, 26], s(2000)), Tick::Feed);
        assert_eq!(
            f.tick(&[14, 26], s(2500)),
            Tick::Stalled {
                workers: vec![0, 1],
                since: Duration::from_millis(500)
            }
        );
        // A count that wrapped is a turn too.
        let mut w = Feeder::new(&[u64::MAX], t0);
        assert_eq!(w.tick(&[0], s(1)), Tick::Feed);
        // No loops (none running) is never fed.
        assert!(matches!(
            Feeder::new(&[], t0).tick(&[], s(1)),
            Tick::Stalled { .. }
        ));
    }

    /// The task on tokio's paused clock: fed every half interval while the
    /// fake loop turns, not once while it is stuck, again once it turns.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_loop_stops_the_feeding() {
        let turns = Arc::new(AtomicU64::new(0));
        let fed = Arc::new(AtomicUsize::new(0));
        let (t, f) = (turns.clone(), fed.clone());
        let task = tokio::spawn(feed_while_turning(
            Duration::from_secs(4),
            move || vec![t.load(Relaxed)],
            move || {
                f.fetch_add(1, Relaxed);
            },
        ));
        // The task takes its first reading before the loop turns.
        tokio::task::yield_now().await;
        let step = |secs: u64| tokio::time::sleep(Duration::from_millis(secs * 1000 + 10));
        // Turning: one feed each 2 s.
        for _ in 0..3 {
            turns.fetch_add(1, Relaxed);
            step(2).await;
        }
        assert_eq!(fed.load(Relaxed), 3);
        // Stuck for 10 s: nothing.
        step(10).await;
        assert_eq!(fed.load(Relaxed), 3);
        turns.fetch_add(1, Relaxed);
        step(2).await;
        assert_eq!(fed.load(Relaxed), 4);
        task.abort();
    }
}
