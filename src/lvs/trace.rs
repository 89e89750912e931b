//! `uvs trace`'s contract between the planes: what a trace asks about
//! ([`TraceQuery`]), what a worker knows of it ([`FlowFacts`]: entries,
//! the template, the scheduler's choice now) and, for `--live`, the tap
//! ([`TraceTap`]) through which the data plane reports the verdict of
//! each frame of a matching flow ([`FrameVerdict`]).
//!
//! The tap costs a data plane with no trace running one relaxed load per
//! frame (`armed`); a matching frame's verdict goes through a bounded
//! channel made once, so reporting it allocates nothing, and a verdict
//! that finds the channel full is counted, never waited for.

use crate::lvs::addr::Addr;
use crate::lvs::conn::ConnKey;
use crate::lvs::service::Protocol;
use arc_swap::ArcSwapOption;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// A flow a trace is about: a client (any port when `cport` is `None`)
/// and a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceQuery {
    pub protocol: Protocol,
    pub client: IpAddr,
    pub cport: Option<u16>,
    pub vip: IpAddr,
    pub vport: u16,
}

impl TraceQuery {
    /// Whether a connection's key is this flow's (either family).
    #[inline]
    pub fn matches<A: Addr>(&self, k: &ConnKey<A>) -> bool {
        k.protocol == self.protocol
            && k.vport == self.vport
            && self.cport.is_none_or(|p| p == k.cport)
            && A::from_ip(self.client) == Some(k.caddr)
            && A::from_ip(self.vip) == Some(k.vaddr)
    }

    /// The flow's key for a client port.
    pub fn key<A: Addr>(&self, cport: u16) -> Option<ConnKey<A>> {
        Some(ConnKey {
            protocol: self.protocol,
            caddr: A::from_ip(self.client)?,
            cport,
            vaddr: A::from_ip(self.vip)?,
            vport: self.vport,
        })
    }
}

/// A connection entry (or persistence template) as a trace shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEntry {
    pub cport: u16,
    /// `ESTABLISHED`, `UDP`, `NONE` (a template), as `-Lnc` names them.
    pub state: String,
    pub server: IpAddr,
    pub port: u16,
    pub expires_secs: u64,
    /// The kernel program forwards its frames (offload or its own
    /// scheduling); uvs keeps the entry and its timer.
    pub offloaded: bool,
    /// The data-plane worker that holds it.
    pub worker: usize,
    /// Connections the template controls (0 for a connection).
    #[serde(default)]
    pub controls: u32,
}

/// What one worker knows of a traced flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowFacts {
    /// Its connection entries (one with a client port; any number
    /// without).
    pub entries: Vec<TraceEntry>,
    /// The persistence template that pins the client's network, live.
    pub template: Option<TraceEntry>,
    /// The real server a new connection of this flow would get now, by
    /// this worker's scheduler state (on a clone: nothing moves), through
    /// the template if one pins it. `None`: no usable real server.
    pub predicted: Option<(IpAddr, u16)>,
}

/// Where in the data plane a frame's fate was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Classify,
    Flow,
    Egress,
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// A bad IP header checksum or a malformed header.
    Checksum,
    /// A fragment (uvs does not reassemble).
    Fragment,
    /// Not a connection's and not one that may start one (a non-SYN).
    NoConnection,
    /// The scheduler found no usable real server.
    NoServer,
    /// The connection table is full.
    TableFull,
    /// The TTL ran out here (the client is told, rate permitting).
    Ttl,
    /// Too big for the way out with DF set (the client is told).
    TooBig,
    /// The ICMP error it called for was rate-limited.
    RateLimit,
    /// Another NAT connection has the same reply 5-tuple.
    NatClash,
    /// The send failed.
    SendError,
    /// Not forwarded, for no reason the counters name.
    Other,
}

impl DropReason {
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Checksum => "bad checksum or malformed header",
            DropReason::Fragment => "fragment",
            DropReason::NoConnection => "no connection (not a SYN)",
            DropReason::NoServer => "no usable real server",
            DropReason::TableFull => "connection table full",
            DropReason::Ttl => "TTL expired",
            DropReason::TooBig => "too big (DF set)",
            DropReason::RateLimit => "rate limit",
            DropReason::NatClash => "NAT reply tuple in use",
            DropReason::SendError => "send error",
            DropReason::Other => "not forwarded",
        }
    }
}

/// What became of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Sent on to this real server; `new`: its connection began here.
    Forwarded {
        server: IpAddr,
        port: u16,
        new: bool,
    },
    Dropped(DropReason),
}

/// One frame of a traced flow (no heap: reporting it allocates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameVerdict {
    pub worker: u16,
    pub client: IpAddr,
    pub cport: u16,
    pub vip: IpAddr,
    pub vport: u16,
    pub ttl: u8,
    pub tcp_flags: u8,
    pub stage: Stage,
    pub verdict: Verdict,
}

/// Verdicts waiting for the control plane, at most.
pub const TAP_QUEUE: usize = 1024;

/// The live trace's switch, filter and channel, shared by the control
/// plane and every worker.
pub struct TraceTap {
    armed: AtomicBool,
    filter: ArcSwapOption<TraceQuery>,
    tx: SyncSender<FrameVerdict>,
    rx: Mutex<Option<Receiver<FrameVerdict>>>,
    /// Verdicts lost to a full channel.
    pub lost: AtomicU64,
}

impl Default for TraceTap {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(TAP_QUEUE);
        TraceTap {
            armed: AtomicBool::new(false),
            filter: ArcSwapOption::empty(),
            tx,
            rx: Mutex::new(Some(rx)),
            lost: AtomicU64::new(0),
        }
    }
}

impl TraceTap {
    /// Whether a live trace runs: the one check a frame pays without one.
    #[inline]
    pub fn armed(&self) -> bool {
        self.armed.load(Relaxed)
    }

    /// The filter of the trace running, if any.
    #[inline]
    pub fn filter(&self) -> Option<TraceQuery> {
        self.filter.load().as_deref().copied()
    }

    /// Reports a matching frame's verdict; a full channel loses it
    /// (counted).
    #[inline]
    pub fn report(&self, v: FrameVerdict) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(v) {
            self.lost.fetch_add(1, Relaxed);
        }
    }

    /// Starts a live trace for `q`: the receiver of its verdicts, or
    /// `None` when one runs already (one at a time). Give the receiver
    /// back with [`TraceTap::stop`].
    pub fn start(&self, q: TraceQuery) -> Option<Receiver<FrameVerdict>> {
        let rx = self.rx.lock().ok()?.take()?;
        while rx.try_recv().is_ok() {}
        self.lost.store(0, Relaxed);
        self.filter.store(Some(Arc::new(q)));
        self.armed.store(true, Relaxed);
        Some(rx)
    }

    /// Ends the live trace and takes its receiver back.
    pub fn stop(&self, rx: Receiver<FrameVerdict>) {
        self.armed.store(false, Relaxed);
        self.filter.store(None);
        if let Ok(mut slot) = self.rx.lock() {
            *slot = Some(rx);
        }
    }
}

/// The tests' query: TCP from 198.18.0.1 (port `cport`, or any) to
/// 198.18.0.100:80.
#[cfg(test)]
pub(crate) fn test_query(cport: Option<u16>) -> TraceQuery {
    TraceQuery {
        protocol: Protocol::Tcp,
        client: "198.18.0.1".parse().unwrap(),
        cport,
        vip: "198.18.0.100".parse().unwrap(),
        vport: 80,
    }
}

#[cfg(test)]
mod tests {
    use super::test_query as q;
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn a_query_matches_its_flow_with_or_without_a_port() {
        let k: ConnKey<Ipv4Addr> = q(None).key(4000).unwrap();
        assert!(q(None).matches(&k));
        assert!(q(Some(4000)).matches(&k));
        assert!(!q(Some(4001)).matches(&k));
        let other = ConnKey { vport: 81, ..k };
        assert!(!q(None).matches(&other));
        assert!(q(None).key::<std::net::Ipv6Addr>(1).is_none());
    }

    #[test]
    fn one_live_trace_at_a_time_and_a_full_channel_counts() {
        let tap = TraceTap::default();
        assert!(!tap.armed());
        let rx = tap.start(q(None)).unwrap();
        assert!(tap.armed() && tap.filter() == Some(q(None)));
        assert!(tap.start(q(None)).is_none(), "a second trace is refused");
        let v = FrameVerdict {
            worker: 0,
            client: q(None).client,
            cport: 1,
            vip: q(None).vip,
            vport: 80,
            ttl: 64,
            tcp_flags: 0,
            stage: Stage::Egress,
            verdict: Verdict::Dropped(DropReason::Ttl),
        };
        for _ in 0..TAP_QUEUE + 3 {
            tap.report(v);
        }
        assert_eq!(tap.lost.load(Relaxed), 3);
        assert_eq!(rx.try_recv().unwrap(), v);
        tap.stop(rx);
        assert!(!tap.armed() && tap.filter().is_none());
        assert!(tap.start(q(None)).is_some());
    }
}
