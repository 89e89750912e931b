//! What the connection table keeps count of as entries come, change
//! state and go: entries per state, so the sweep knows the shortest timer
//! any entry can have without a pass, and the sum of every entry's
//! [`digest_term`], so a digest of the table costs nothing.

use crate::dataplane::conn::Conn;
use crate::lvs::addr::Addr;
use crate::lvs::conn::{ConnKey, ConnState, TcpState};
use crate::lvs::service::Timeouts;
use crate::lvs::sync::{Digest, digest_term};

/// The number of connection states (TCP's eleven, templates, UDP).
const STATES: usize = 13;
/// Templates' number (assured or not: the same timeout).
const TEMPLATE: usize = STATES - 2;

/// A dense number per state: TCP's by its code, templates, then UDP.
fn index(s: ConnState) -> usize {
    match s {
        ConnState::Tcp(s) => s as usize,
        ConnState::Template | ConnState::Assured => TEMPLATE,
        ConnState::Udp => STATES - 1,
    }
}

/// The state numbered `i` by [`index`].
fn of_index(i: usize) -> ConnState {
    match u8::try_from(i).ok().and_then(TcpState::from_code) {
        Some(s) => ConnState::Tcp(s),
        None if i == TEMPLATE => ConnState::Template,
        None => ConnState::Udp,
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    /// Entries in each state ([`index`]).
    per_state: [u32; STATES],
    digest: u64,
}

impl Tally {
    /// Entry `k`, with its real server and `state`, came.
    #[inline]
    fn enter<A: Addr>(&mut self, k: &ConnKey<A>, c: &Conn<A>, state: ConnState) {
        self.per_state[index(state)] += 1;
        self.digest = self
            .digest
            .wrapping_add(digest_term(k, c.raddr, c.rport, state));
    }

    /// Entry `k`, with its real server and `state`, went.
    #[inline]
    fn leave<A: Addr>(&mut self, k: &ConnKey<A>, c: &Conn<A>, state: ConnState) {
        self.per_state[index(state)] = self.per_state[index(state)].saturating_sub(1);
        self.digest = self
            .digest
            .wrapping_sub(digest_term(k, c.raddr, c.rport, state));
    }

    /// A new entry.
    #[inline]
    pub(super) fn add<A: Addr>(&mut self, k: &ConnKey<A>, c: &Conn<A>) {
        self.enter(k, c, c.state);
    }

    /// An entry removed.
    #[inline]
    pub(super) fn remove<A: Addr>(&mut self, k: &ConnKey<A>, c: &Conn<A>) {
        self.leave(k, c, c.state);
    }

    /// An entry changed state from `old`.
    #[inline]
    pub(super) fn restate<A: Addr>(&mut self, k: &ConnKey<A>, c: &Conn<A>, old: ConnState) {
        self.leave(k, c, old);
        self.enter(k, c, c.state);
    }

    /// The digest of `count` entries counted here.
    pub(super) fn digest(&self, count: usize) -> Digest {
        Digest {
            count: count as u64,
            sum: self.digest,
        }
    }

    /// The shortest timeout, in seconds, of any state an entry is in
    /// (`None` when empty).
    pub(super) fn shortest_timeout(&self, t: &Timeouts) -> Option<u32> {
        self.per_state
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(i, _)| of_index(i).timeout(t))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state has its own dense number, UDP's after TCP's.
    #[test]
    fn each_state_has_its_own_index() {
        for i in 0..STATES {
            assert_eq!(index(of_index(i)), i);
        }
        assert_eq!(of_index(STATES - 1), ConnState::Udp);
        assert_eq!(TcpState::from_code((STATES - 1) as u8), None);
    }
}
