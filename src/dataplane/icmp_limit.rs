//! Rate limits for the ICMP errors the director itself originates (time
//! exceeded, port unreachable, fragmentation needed), so spoofed packets
//! cannot turn it into a reflector. Like the kernel's: a global budget
//! (icmp_msgs_per_sec 1000, icmp_msgs_burst 50) and, per destination, one
//! message per icmp_ratelimit (1000 ms) with a burst of 6. PMTU's
//! fragmentation-needed is exempt from the per-destination limit (as in
//! the kernel) but not from the global one.

/// A token bucket: credit earned with time, spent per message.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    credit: u64,
    last_ms: u64,
}

impl Bucket {
    /// Takes one message costing `cost` if the bucket (refilled with
    /// `rate` units of credit per ms, up to `cap`) has it.
    fn take(&mut self, now_ms: u64, cost: u64, cap: u64, rate: u64) -> bool {
        let earned = now_ms.saturating_sub(self.last_ms) * rate;
        self.credit = (self.credit + earned).min(cap);
        self.last_ms = now_ms;
        if self.credit < cost {
            return false;
        }
        self.credit -= cost;
        true
    }
}

/// The limits; the defaults are the kernel's.
#[derive(Debug, Clone, Copy)]
pub struct IcmpLimits {
    pub msgs_per_sec: u64,
    pub msgs_burst: u64,
    pub per_dest_interval_ms: u64,
    pub per_dest_burst: u64,
}

impl Default for IcmpLimits {
    fn default() -> Self {
        IcmpLimits {
            msgs_per_sec: 1000,
            msgs_burst: 50,
            per_dest_interval_ms: 1000,
            per_dest_burst: 6,
        }
    }
}

/// Destinations tracked at once; more share slots (which only makes the
/// limit stricter for the ones that collide).
const PEERS: usize = 1024;

pub struct IcmpLimiter {
    limits: IcmpLimits,
    /// Credit in thousandths of a millisecond: at 1000 msgs/s a message
    /// costs 1000.
    global: Bucket,
    peers: Box<[(u32, Bucket)]>,
}

impl IcmpLimiter {
    pub fn new(limits: IcmpLimits) -> IcmpLimiter {
        IcmpLimiter {
            limits,
            global: Bucket {
                credit: limits.msgs_burst * (1_000_000 / limits.msgs_per_sec.max(1)),
                last_ms: 0,
            },
            peers: vec![(0, Bucket::default()); PEERS].into_boxed_slice(),
        }
    }

    /// Whether an error to `dst` may go out now; `per_dest` is false for
    /// fragmentation needed.
    pub fn allow(&mut self, dst: std::net::Ipv4Addr, now_ms: u64, per_dest: bool) -> bool {
        let l = self.limits;
        if per_dest {
            let a = u32::from(dst);
            let slot = (a.wrapping_mul(0x9e37_79b1) >> 22) as usize % PEERS;
            let (who, b) = &mut self.peers[slot];
            if *who != a || b.last_ms == 0 {
                // A destination not seen (recently) starts with its burst.
                *who = a;
                *b = Bucket {
                    credit: l.per_dest_burst * l.per_dest_interval_ms,
                    last_ms: now_ms.max(1),
                };
            }
            let cap = l.per_dest_burst * l.per_dest_interval_ms;
            if !b.take(now_ms.max(1), l.per_dest_interval_ms, cap, 1) {
                return false;
            }
        }
        // Global: msgs_per_sec a second; a message costs 1000/rate ms,
        // counted in thousandths of a ms to stay integral.
        let cost = 1_000_000 / l.msgs_per_sec.max(1);
        let cap = (l.msgs_burst * cost).max(cost);
        self.global.take(now_ms, cost, cap, 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

    /// A fresh limiter after `tries` errors to `A` at 10 ms (`per_dest` as
    /// in [`IcmpLimiter::allow`]), and how many it let go.
    fn burst(tries: usize, per_dest: bool) -> (IcmpLimiter, usize) {
        let mut l = IcmpLimiter::new(IcmpLimits::default());
        let sent = (0..tries).filter(|_| l.allow(A, 10, per_dest)).count();
        (l, sent)
    }

    #[test]
    fn one_destination_gets_its_burst_then_one_per_interval() {
        let (mut l, sent) = burst(100, true);
        assert_eq!(sent, 6);
        assert!(!l.allow(A, 500, true));
        assert!(l.allow(A, 1010, true));
        // Another destination is not held back by the first.
        assert!(l.allow(Ipv4Addr::new(198, 18, 0, 11), 1010, true));
    }

    #[test]
    fn the_global_budget_caps_many_destinations() {
        let mut l = IcmpLimiter::new(IcmpLimits::default());
        // 10,000 spoofed sources within one millisecond: the burst (50).
        let sent = (0..10_000u32)
            .filter(|i| l.allow(Ipv4Addr::from(0xc612_0000 + i), 5, true))
            .count();
        assert_eq!(sent, 50);
        // Over a further second, about msgs_per_sec more.
        let mut later = 0;
        for ms in 6..1006u64 {
            for i in 0..10u32 {
                if l.allow(Ipv4Addr::from(0xc613_0000 + (ms as u32) * 10 + i), ms, true) {
                    later += 1;
                }
            }
        }
        assert!((990..=1010).contains(&later), "{later}");
    }

    #[test]
    fn frag_needed_skips_the_per_destination_limit() {
        let (_, sent) = burst(40, false);
        assert_eq!(sent, 40);
    }
}
