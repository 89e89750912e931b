//! Weighted overflow (ip_vs_ovf.c): the highest-weight server whose
//! active connections do not exceed its weight; when it fills up, the
//! next one takes the overflow.

use super::least::heaviest;
use super::scheduler::{Member, Pool, Scheduler};
use crate::lvs::conn::ConnKey;

/// No state: the weights and active counts decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ovf;

impl Scheduler for Ovf {
    fn init(_dests: &[Member]) -> Ovf {
        Ovf
    }

    fn schedule(&mut self, pool: &Pool, _: &ConnKey) -> Option<usize> {
        heaviest(pool.dests, |d| d.state.active() <= d.weight)
    }
}
