//! Least connection (ip_vs_lc.c): the server with the lowest overhead.

use super::least::{least, overhead};
use super::scheduler::{Member, Pool, Scheduler};
use crate::lvs::conn::ConnKey;

/// No state: the real servers' counts decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lc;

impl Scheduler for Lc {
    fn init(_dests: &[Member]) -> Lc {
        Lc
    }

    fn schedule(&mut self, pool: &Pool, _: &ConnKey) -> Option<usize> {
        least(pool.dests, overhead, |_| 1)
    }
}
