//! Never queue (ip_vs_nq.c): the first idle server (no active
//! connection) in list order, else as sed.

use super::least::{expected, least};
use super::scheduler::stateless;

stateless!(
    /// No state: the real servers' counts and weights decide.
    Nq,
    |pool| {
        let idle = pool
            .dests
            .iter()
            .position(|d| d.weight > 0 && d.state.active() == 0);
        idle.or_else(|| least(pool.dests, expected, |d| u64::from(d.weight)))
    }
);
