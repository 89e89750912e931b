//! Weighted failover (ip_vs_fo.c): the available server with the
//! highest weight, the first in list order (the newest) on a tie.

use super::least::heaviest;
use super::scheduler::{Member, Pool, Scheduler};
use crate::lvs::conn::ConnKey;

/// No state: the weights decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fo;

impl Scheduler for Fo {
    fn init(_dests: &[Member]) -> Fo {
        Fo
    }

    fn schedule(&mut self, pool: &Pool, _: &ConnKey) -> Option<usize> {
        heaviest(pool.dests, |_| true)
    }
}
