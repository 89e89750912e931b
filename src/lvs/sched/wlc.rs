//! Weighted least connection (ip_vs_wlc.c): the server with the lowest
//! overhead per weight.

use super::least::{least, overhead};
use super::scheduler::stateless;

stateless!(
    /// No state: the real servers' counts and weights decide.
    Wlc,
    |pool| least(pool.dests, overhead, |d| u64::from(d.weight))
);
