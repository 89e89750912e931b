//! Least connection (ip_vs_lc.c): the server with the lowest overhead.

use super::least::{least, overhead};
use super::scheduler::stateless;

stateless!(
    /// No state: the real servers' counts decide.
    Lc,
    |pool| least(pool.dests, overhead, |_| 1)
);
