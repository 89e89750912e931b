//! Slow start: a real server that joins (added to a running service,
//! its weight raised from 0, restored by its check, resolved after being
//! absent) gets its weight over its `slow_start` seconds, a linear ramp,
//! so a cold cache is not flooded. The model holds each ramp's current
//! step; the control plane steps the ramps a few times a second and
//! publishes a table only when a step changes a weight.

use super::{Dest, Model};
use std::time::{Duration, Instant};

/// A real server's ramp: when it started, how long it takes, and the
/// weight of its current step (what is published).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ramp {
    pub start: Instant,
    pub secs: u32,
    pub weight: u32,
}

impl Ramp {
    /// Time left of the ramp at `now`.
    pub fn left(&self, now: Instant) -> Duration {
        (self.start + Duration::from_secs(self.secs.into())).saturating_duration_since(now)
    }
}

/// The weight `elapsed` into a ramp of `secs` seconds towards `target`:
/// linear, in whole weight steps (rounded up), at least 1 so a server on
/// its ramp always takes some connections, and `target` at the end.
pub fn ramp_weight(target: u32, elapsed: Duration, secs: u32) -> u32 {
    let total = u128::from(secs) * 1000;
    if target == 0 || total == 0 {
        return target;
    }
    let done = elapsed.as_millis().min(total);
    let w = (u128::from(target) * done).div_ceil(total);
    (w as u32).clamp(1, target)
}

impl Dest {
    /// Starts its ramp at `now` if it has a slow start.
    pub(super) fn start_ramp(&mut self, now: Instant) {
        let secs = self.spec.slow_start;
        self.ramp = (secs > 0).then(|| Ramp {
            start: now,
            secs,
            weight: ramp_weight(self.target_weight(), Duration::ZERO, secs),
        });
    }

    /// The weight it ramps to: its check's (exec), else the configured.
    pub fn target_weight(&self) -> u32 {
        self.dyn_weight.unwrap_or(self.spec.weight)
    }
}

impl Model {
    /// Starts the ramps of the real servers that joined a service between
    /// `before` and this model: new in a service that was already there
    /// (not on a first load or for a new service: nothing there to
    /// protect them from), or with their weight raised from 0. Returns
    /// whether any started.
    pub fn start_joined(&mut self, before: &Model, now: Instant) -> bool {
        let mut any = false;
        for s in &mut self.services {
            let Some(old) = before.services.iter().find(|o| o.key == s.key) else {
                continue;
            };
            let mut here = false;
            for d in &mut s.dests {
                let was = old
                    .dests
                    .iter()
                    .find(|o| o.spec.addr == d.spec.addr && o.spec.port == d.spec.port);
                let joins = match was {
                    None => true,
                    Some(o) => o.spec.weight == 0 && d.spec.weight > 0,
                };
                if joins && d.spec.slow_start > 0 {
                    d.start_ramp(now);
                    here = true;
                }
            }
            if here {
                s.changed();
                any = true;
            }
        }
        any
    }

    /// Moves every ramp to its step at `now` and ends those done. Returns
    /// whether a published weight changed (then the table is published).
    pub fn step_ramps(&mut self, now: Instant) -> bool {
        let mut any = false;
        for s in &mut self.services {
            let mut here = false;
            for d in &mut s.dests {
                let Some(r) = d.ramp else { continue };
                let before = d.shown_weight();
                let elapsed = now.saturating_duration_since(r.start);
                d.ramp = match elapsed >= Duration::from_secs(r.secs.into()) {
                    true => None,
                    false => Some(Ramp {
                        weight: ramp_weight(d.target_weight(), elapsed, r.secs),
                        ..r
                    }),
                };
                here |= d.shown_weight() != before;
            }
            if here {
                s.changed();
                any = true;
            }
        }
        any
    }

    /// Whether any real server is on its ramp.
    pub fn ramping(&self) -> bool {
        self.services
            .iter()
            .any(|s| s.dests.iter().any(|d| d.ramp.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_is_linear_in_whole_steps_from_1_to_the_target() {
        let s = |ms| Duration::from_millis(ms);
        assert_eq!(ramp_weight(10, s(0), 5), 1);
        assert_eq!(ramp_weight(10, s(500), 5), 1);
        assert_eq!(ramp_weight(10, s(501), 5), 2);
        assert_eq!(ramp_weight(10, s(2500), 5), 5);
        assert_eq!(ramp_weight(10, s(4999), 5), 10);
        assert_eq!(ramp_weight(10, s(9000), 5), 10);
        assert_eq!(ramp_weight(100, s(1000), 5), 20);
        // Weight 0 stays quiesced; no slow start is the weight at once.
        assert_eq!(ramp_weight(0, s(1000), 5), 0);
        assert_eq!(ramp_weight(7, s(0), 0), 7);
        assert_eq!(ramp_weight(u32::MAX, s(1000), 3600), 1_193_047);
        // Monotone over the whole ramp.
        let mut last = 0;
        for ms in (0..=5000).step_by(50) {
            let w = ramp_weight(37, s(ms), 5);
            assert!(w >= last && (1..=37).contains(&w));
            last = w;
        }
    }
}
