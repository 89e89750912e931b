//! Weighted least connection (ip_vs_wlc.c): the server with the lowest
//! overhead per weight.

use super::least::least;
use super::scheduler::Scheduler;
use crate::lvs::conn::ConnKey;
use crate::lvs::dest::DestEntry;

/// No state: the real servers' counts and weights decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wlc;

impl Scheduler for Wlc {
    fn init(_dests: &[DestEntry]) -> Wlc {
        Wlc
    }

    fn schedule(&mut self, dests: &[DestEntry], _: &[u16], _: &ConnKey) -> Option<usize> {
        least(dests, |d| u64::from(d.weight))
    }
}
