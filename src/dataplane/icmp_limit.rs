//! Rate limits for the ICMP and ICMPv6 errors the director itself
//! originates (time exceeded, port unreachable, fragmentation needed,
//! packet too big), so spoofed packets cannot turn it into a reflector.
//! Like the kernel's: one global budget for both families
//! (icmp_msgs_per_sec 1000, icmp_msgs_burst 50) and, per destination,
//! a token bucket of one message per interval with a burst of 6
//! (`inet_peer_xrlim_allow`): net.ipv4.icmp_ratelimit (1000 ms) for IPv4,
//! net.ipv6.icmp.ratelimit for IPv6 (100 ms since Linux took out its
//! per-prefix scaling, 1000 ms before). PMTU's fragmentation-needed is
//! exempt from the per-destination limit (the kernel exempts it from
//! both); IPv6's packet too big is outside the default
//! net.ipv6.icmp.ratemask ("0-1,3-127"), so no limit applies to it
//! ([`limited6`]).

use crate::lvs::addr::Addr;
use crate::wire::icmpv6;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
    /// net.ipv6.icmp.ratelimit: the IPv6 per-destination interval.
    pub per_dest_interval6_ms: u64,
    pub per_dest_burst: u64,
}

impl Default for IcmpLimits {
    fn default() -> Self {
        IcmpLimits {
            msgs_per_sec: 1000,
            msgs_burst: 50,
            per_dest_interval_ms: 1000,
            per_dest_interval6_ms: 100,
            per_dest_burst: 6,
        }
    }
}

/// Destinations tracked at once, per family; more share slots (which
/// only makes the limit stricter for the ones that collide).
const PEERS: usize = 1024;

/// The per-destination buckets of one family.
struct Peers<A> {
    slots: Box<[(A, Bucket)]>,
}

impl<A: Addr> Peers<A> {
    fn new() -> Peers<A> {
        Peers {
            slots: vec![(A::UNSPECIFIED, Bucket::default()); PEERS].into_boxed_slice(),
        }
    }

    /// Takes one message's `interval` from `dst`'s bucket (burst
    /// `burst`), if it has it.
    fn allow(&mut self, dst: A, now_ms: u64, interval: u64, burst: u64) -> bool {
        let slot = (dst.digest_word().wrapping_mul(0x9e37_79b1) >> 22) as usize % PEERS;
        let (who, b) = &mut self.slots[slot];
        let cap = burst * interval;
        if *who != dst || b.last_ms == 0 {
            // A destination not seen (recently) starts with its burst.
            *who = dst;
            *b = Bucket {
                credit: cap,
                last_ms: now_ms.max(1),
            };
        }
        b.take(now_ms.max(1), interval, cap, 1)
    }
}

/// Whether an ICMPv6 error of `msg_type` is rate limited: the default
/// net.ipv6.icmp.ratemask limits every error type but packet too big
/// (`icmpv6_mask_allow`), which PMTU discovery must not lose.
pub fn limited6(msg_type: u8) -> bool {
    msg_type < 128 && msg_type != icmpv6::TYPE_PACKET_TOO_BIG
}

pub struct IcmpLimiter {
    limits: IcmpLimits,
    /// Credit in thousandths of a millisecond: at 1000 msgs/s a message
    /// costs 1000. Shared by both families, as the kernel's.
    global: Bucket,
    peers4: Peers<Ipv4Addr>,
    peers6: Peers<Ipv6Addr>,
}

impl IcmpLimiter {
    pub fn new(limits: IcmpLimits) -> IcmpLimiter {
        IcmpLimiter {
            limits,
            global: Bucket {
                credit: limits.msgs_burst * (1_000_000 / limits.msgs_per_sec.max(1)),
                last_ms: 0,
            },
            peers4: Peers::new(),
            peers6: Peers::new(),
        }
    }

    /// Whether an error to `dst` may go out now; `per_dest` is false for
    /// fragmentation needed.
    pub fn allow(&mut self, dst: impl Into<IpAddr>, now_ms: u64, per_dest: bool) -> bool {
        let l = self.limits;
        let burst = l.per_dest_burst;
        let ok = !per_dest
            || match dst.into() {
                IpAddr::V4(a) => self.peers4.allow(a, now_ms, l.per_dest_interval_ms, burst),
                IpAddr::V6(a) => self.peers6.allow(a, now_ms, l.per_dest_interval6_ms, burst),
            };
        if !ok {
            return false;
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
    fn an_ipv6_destination_has_its_own_bucket_at_its_own_interval() {
        let b: Ipv6Addr = "2001:2::10".parse().unwrap();
        let (mut l, sent) = burst(100, true);
        assert_eq!(sent, 6);
        // The IPv4 bucket of A is empty; B's (IPv6) is full.
        let six = (0..100).filter(|_| l.allow(b, 20, true)).count();
        assert_eq!(six, 6);
        // One more each 100 ms (net.ipv6.icmp.ratelimit), not 1000.
        assert!(!l.allow(b, 110, true));
        assert!(l.allow(b, 125, true));
        assert!(!l.allow(A, 125, true));
        // The global budget is the families' together: 50 in all.
        let mut l = IcmpLimiter::new(IcmpLimits::default());
        let mut n = 0;
        for i in 0..40u16 {
            n += usize::from(l.allow(Ipv4Addr::from(0xc612_0000 + u32::from(i)), 5, true));
            n += usize::from(l.allow(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 1, i), 5, true));
        }
        assert_eq!(n, 50);
    }

    #[test]
    fn packet_too_big_is_outside_the_default_ratemask() {
        assert!(!limited6(icmpv6::TYPE_PACKET_TOO_BIG));
        for t in [1, 3, 4] {
            assert!(limited6(t));
        }
        assert!(!limited6(icmpv6::TYPE_ECHO_REPLY));
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
