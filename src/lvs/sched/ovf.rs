//! Weighted overflow (ip_vs_ovf.c): the highest-weight server whose
//! active connections do not exceed its weight; when it fills up, the
//! next one takes the overflow.

use super::least::heaviest;
use super::scheduler::stateless;

stateless!(
    /// No state: the weights and active counts decide.
    Ovf,
    |pool| heaviest(pool.dests, |d| d.state.active() <= d.weight)
);
