//! Schedulers: which real server a new connection goes to. One file per
//! algorithm, each implementing [`Scheduler`] as an IPVS scheduler
//! module fills a `struct ip_vs_scheduler`, and registered below by its
//! [`SchedulerKind`] (as ip_vs_sched.c registers them by name): rr and wrr
//! follow the kernel's ip_vs_rr.c and ip_vs_wrr.c step by step, lc, wlc,
//! sed and nq use the kernel's overhead formulas, fo and ovf its weight
//! rules, and sh, dh and mh hash the flow through a lookup table.
//!
//! The published table builds each service's [`buckets`] once (the
//! control plane, when it publishes); every data-plane worker keeps a
//! [`SchedState`] per service and carries it over from table to table,
//! replaying the changes logged in between ([`Logged`]) one by one, as
//! the kernel's hooks would have seen them.

pub mod dh;
pub mod fo;
pub mod hashed;
pub mod lc;
pub mod least;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod scheduler;
pub mod sed;
pub mod sh;
pub mod wlc;
pub mod wrr;

use crate::lvs::dest::DestEntry;
use crate::lvs::service::SchedulerKind;
use scheduler::{Buckets, Member, Pool, SchedKey, Scheduler};
use std::sync::Arc;

/// One change of a service the kernel's scheduler hooks would have been
/// told of, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The scheduler was bound anew (`-E` with another scheduler):
    /// init_service.
    Bind,
    /// add_dest, del_dest or upd_dest: the list after the change.
    Dests(Arc<[Member]>),
}

/// A [`Change`] with the service epoch it led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub epoch: u64,
    pub change: Change,
}

/// The registry: each [`SchedulerKind`] with the type that implements it.
/// Declares [`SchedState`] (a worker's state for one service, whichever
/// scheduler it names) and [`buckets`], both dispatching to that type.
macro_rules! register {
    ($($kind:ident => $ty:ty,)+) => {
        /// A worker's state for one service's scheduler.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum SchedState {
            $($kind($ty),)+
        }

        impl SchedState {
            /// The state for a new service, or one whose scheduler changed.
            pub fn new(kind: SchedulerKind, dests: &[Member]) -> SchedState {
                match kind {
                    $(SchedulerKind::$kind => SchedState::$kind(<$ty>::init(dests)),)+
                }
            }

            /// The scheduler this state is for.
            pub fn kind(&self) -> SchedulerKind {
                match self {
                    $(SchedState::$kind(_) => SchedulerKind::$kind,)+
                }
            }

            /// One change of the real-server list or of a weight (see
            /// [`Scheduler::update`]).
            pub fn update(&mut self, old: &[Member], new: &[Member]) {
                match self {
                    $(SchedState::$kind(s) => s.update(old, new),)+
                }
            }

            /// Picks a server for a new connection (see
            /// [`Scheduler::schedule`]).
            #[inline]
            pub fn schedule(&mut self, pool: &Pool, key: &SchedKey) -> Option<usize> {
                match self {
                    $(SchedState::$kind(s) => s.schedule(pool, key),)+
                }
            }
        }

        /// What a service's scheduler builds when a table is published
        /// (see [`Scheduler::buckets`]).
        pub fn buckets(kind: SchedulerKind, dests: &[DestEntry]) -> Buckets {
            match kind {
                $(SchedulerKind::$kind => <$ty>::buckets(dests),)+
            }
        }
    };
}

register! {
    Rr => rr::Rr,
    Wrr => wrr::Wrr,
    Lc => lc::Lc,
    Wlc => wlc::Wlc,
    Sh => sh::Sh,
    Sed => sed::Sed,
    Nq => nq::Nq,
    Dh => dh::Dh,
    Mh => mh::Mh,
    Fo => fo::Fo,
    Ovf => ovf::Ovf,
}

/// A service as the previous published table had it: a worker's state
/// for it, the service's epoch and its real servers.
pub struct Before<'a> {
    pub state: &'a SchedState,
    pub epoch: u64,
    pub dests: &'a [DestEntry],
}

impl SchedState {
    /// A worker's state for a service now scheduled by `kind` among
    /// `dests`, carried over from `before` (`None` for a service new to
    /// the worker: it starts empty, as the service did): the changes of
    /// `log` after its epoch are applied one by one, so several changes
    /// published at once (a restore, say) leave the state the kernel's
    /// would be in after the same commands.
    pub fn carried(
        before: Option<Before>,
        kind: SchedulerKind,
        log: &[Logged],
        dests: &[DestEntry],
    ) -> SchedState {
        let now = Member::of(dests);
        let (mut st, mut view, epoch) = match before {
            None => (SchedState::new(kind, &[]), Vec::new(), 0),
            Some(b) => {
                let view = Member::of(b.dests);
                let st = match b.state.kind() == kind {
                    true => b.state.clone(),
                    false => SchedState::new(kind, &view),
                };
                (st, view, b.epoch)
            }
        };
        for l in log.iter().filter(|l| l.epoch > epoch) {
            match &l.change {
                Change::Bind => st = SchedState::new(kind, &view),
                Change::Dests(new) => {
                    st.update(&view, new);
                    view = new.to_vec();
                }
            }
        }
        // What the log no longer holds (or never held) arrives as one
        // change.
        if view != now {
            st.update(&view, &now);
        }
        st
    }
}

#[cfg(test)]
mod tests;
