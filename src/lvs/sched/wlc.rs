//! Weighted least connection (ip_vs_wlc.c): the server with the lowest
//! overhead per weight.

use super::least::{least, overhead};
use super::scheduler::{Member, Pool, Scheduler};
use crate::lvs::conn::ConnKey;

/// No state: the real servers' counts and weights decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wlc;

impl Scheduler for Wlc {
    fn init(_dests: &[Member]) -> Wlc {
        Wlc
    }

    fn schedule(&mut self, pool: &Pool, _: &ConnKey) -> Option<usize> {
        least(pool.dests, overhead, |d| u64::from(d.weight))
    }
}
