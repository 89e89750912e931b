//! Least connection (ip_vs_lc.c): the server with the lowest overhead.

use super::least::least;
use super::scheduler::Scheduler;
use crate::lvs::conn::ConnKey;
use crate::lvs::dest::DestEntry;

/// No state: the real servers' counts decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lc;

impl Scheduler for Lc {
    fn init(_dests: &[DestEntry]) -> Lc {
        Lc
    }

    fn schedule(&mut self, dests: &[DestEntry], _: &[u16], _: &ConnKey) -> Option<usize> {
        least(dests, |_| 1)
    }
}
