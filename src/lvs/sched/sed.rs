//! Shortest expected delay (ip_vs_sed.c): the server minimising
//! (active connections + 1) / weight.

use super::least::{expected, least};
use super::scheduler::stateless;

stateless!(
    /// No state: the real servers' counts and weights decide.
    Sed,
    |pool| least(pool.dests, expected, |d| u64::from(d.weight))
);
