//! Shortest expected delay (ip_vs_sed.c): the server minimising
//! (active connections + 1) / weight.

use super::least::{expected, least};
use super::scheduler::{Member, Pool, Scheduler};
use crate::lvs::conn::ConnKey;

/// No state: the real servers' counts and weights decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sed;

impl Scheduler for Sed {
    fn init(_dests: &[Member]) -> Sed {
        Sed
    }

    fn schedule(&mut self, pool: &Pool, _: &ConnKey) -> Option<usize> {
        least(pool.dests, expected, |d| u64::from(d.weight))
    }
}
