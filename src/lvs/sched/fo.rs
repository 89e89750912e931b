//! Weighted failover (ip_vs_fo.c): the available server with the
//! highest weight, the first in list order (the newest) on a tie.

use super::least::heaviest;
use super::scheduler::stateless;

stateless!(
    /// No state: the weights decide.
    Fo,
    |pool| heaviest(pool.dests, |_| true)
);
