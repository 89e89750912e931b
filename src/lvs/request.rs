//! What the control plane asks a data plane (each worker of several) and
//! what it answers: [`DpRequest`], sent on a channel and answered between
//! frames, so the answer is consistent with what was forwarded.

use crate::lvs::conn::{ConnInfo, PortableConn};
use crate::lvs::sync::{Digest, Record};
use crate::lvs::trace::{FlowFacts, TraceQuery};
use tokio::sync::oneshot::Sender;

/// Connections per listing or resync chunk, answered between frames.
pub const CONN_CHUNK: usize = 4096;

/// Questions the control plane asks the data plane.
pub enum DpRequest {
    /// Stop forwarding and hand every connection over (a planned
    /// restart): the data plane answers and then leaves its loop.
    Handoff(Sender<Vec<PortableConn>>),
    /// Up to [`CONN_CHUNK`] connections from slot `from` on (`-Lnc`), and
    /// where the next chunk starts (`None`: that was the last).
    Conns {
        from: usize,
        reply: Sender<(Vec<ConnInfo>, Option<usize>)>,
    },
    /// HA, the active side: queue the table's digest in the sync stream,
    /// as this worker's share of round `.0`.
    SyncDigest(u64),
    /// HA, the active side, a full resync: queue a mark, then answer with
    /// up to [`CONN_CHUNK`] connections from slot `from` on.
    SyncChunk {
        from: usize,
        mark: u64,
        reply: Sender<(Vec<PortableConn>, Option<usize>)>,
    },
    /// HA, a backup: records received from the active director.
    SyncApply(Vec<Record>),
    /// HA, a backup: a full resync begins, or ends (answered with how
    /// many stale entries went).
    ResyncBegin,
    ResyncEnd(Sender<usize>),
    /// HA, a backup: the table's digest now.
    Digest(Sender<Digest>),
    /// `uvs trace`: what this worker knows of a flow. With a client port,
    /// its entry looked up at once (`from` ignored, no next chunk);
    /// without, the entries of up to [`CONN_CHUNK`] slots from `from` on,
    /// and where the next chunk starts.
    Trace {
        query: TraceQuery,
        from: usize,
        reply: Sender<(FlowFacts, Option<usize>)>,
    },
}
