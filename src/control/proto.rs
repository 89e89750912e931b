//! Requests and responses between `uvsadm` and the daemon: one JSON object
//! per line over a Unix stream socket.

use crate::lvs::ConnInfo;
use crate::lvs::mark::MarkRule;
use crate::lvs::service::{Forward, Persistence, SchedFlags, SchedulerKind, ServiceKey, Timeouts};
use crate::lvs::stats::{Rates, StatsSnapshot};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// A real server as `-a`/`-e` describe it. As with ipvsadm, `-e` replaces
/// every field, with ipvsadm's defaults for the ones not given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSpec {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    pub uthreshold: u32,
    pub lthreshold: u32,
    /// Seconds over which a joining real server's weight ramps up to its
    /// own (uvs's own, docs/config.md); 0: at once, as IPVS.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slow_start: u32,
}

/// The longest ramp a real server's weight may take, in seconds (a
/// longer one is a mistake, not a plan).
pub const MAX_SLOW_START: u32 = 3600;

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A virtual service as `-A` and `-E` give it. `-E`, like ipvsadm's,
/// sets every option, with the defaults for those not given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDef {
    pub key: ServiceKey,
    pub scheduler: String,
    /// `-b`: the scheduler flags.
    #[serde(default)]
    pub flags: SchedFlags,
    /// One-packet scheduling (`-o`).
    #[serde(default)]
    pub ops: bool,
    /// `-p` and `-M`.
    pub persistent: Option<Persistence>,
}

impl ServiceDef {
    /// The definition of a service with these options.
    pub fn of(
        key: ServiceKey,
        scheduler: SchedulerKind,
        flags: SchedFlags,
        ops: bool,
        persistent: Option<Persistence>,
    ) -> ServiceDef {
        let scheduler = scheduler.name().into();
        ServiceDef {
            key,
            scheduler,
            flags,
            ops,
            persistent,
        }
    }
}

/// One table change: an ipvsadm command that modifies state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    AddService(ServiceDef),
    EditService(ServiceDef),
    DelService {
        key: ServiceKey,
    },
    Clear,
    AddDest {
        key: ServiceKey,
        dest: DestSpec,
    },
    EditDest {
        key: ServiceKey,
        dest: DestSpec,
    },
    DelDest {
        key: ServiceKey,
        addr: IpAddr,
        port: u16,
    },
    Zero {
        key: Option<ServiceKey>,
    },
    /// `--set`: 0 keeps the current value.
    SetTimeouts(Timeouts),
    /// Defines firewall mark `mark` as these rules (`[[mark]]` in the
    /// config file), replacing its rules; none deletes it.
    SetMark {
        mark: u32,
        rules: Vec<MarkRule>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Apply all ops or none of them.
    Apply(Vec<Op>),
    Snapshot,
    Conns,
    Status,
    /// Each real server's state (`uvs health`).
    Health,
    /// Re-read the config file and apply what changed (`uvs reload`);
    /// as `ReloadWith` with neither option (what older clients send).
    Reload,
    /// `uvs reload --force` or `--dry-run`.
    ReloadWith(ReloadOptions),
    /// Hand the table and every connection to a new director process and
    /// stop (`uvs director --takeover`).
    Handoff,
    /// The HA role, peers and counters (`uvs ha`).
    Ha,
    /// `uvs drain` (`on`): withdraw the routes, keep forwarding; or
    /// `--cancel`: announce again.
    Drain {
        on: bool,
    },
    /// `uvs trace`: where a flow goes and why.
    Trace(crate::lvs::trace::TraceQuery),
    /// `uvs trace --live`: each frame of the flow for `secs` seconds,
    /// answered as `Frame` lines, ended by `Done`.
    TraceLive {
        query: crate::lvs::trace::TraceQuery,
        secs: u32,
    },
}

/// How a reload is asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOptions {
    /// Apply a file with no services although the file as last loaded
    /// had some (refused otherwise: a 0-byte or truncated file).
    pub force: bool,
    /// Say what the reload would change, and change nothing.
    pub dry_run: bool,
    /// Answer with a [`ReloadReport`] (`uvs reload --json`) rather than
    /// text; older daemons ignore it and answer text.
    #[serde(default)]
    pub json: bool,
}

/// What a reload changed (or, dry, would change), for scripts: the
/// facts of `uvs reload`'s text, every service named.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// The config file.
    pub file: String,
    /// Nothing was applied (`--dry-run`).
    pub dry_run: bool,
    /// Operations on the table.
    pub table_changes: usize,
    pub services: ChangeCounts,
    pub real_servers: ChangeCounts,
    pub timeouts_changed: bool,
    /// Each service concerned, in the file's order (removed ones first).
    pub changed: Vec<ServiceChangeReport>,
}

/// Added, removed and changed counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
}

/// One service a reload adds, removes or changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceChangeReport {
    /// `TCP 198.18.0.100:80`, as the listings name it.
    pub service: String,
    /// `added`, `removed` or `changed`.
    pub change: String,
    /// Its real servers added, removed and changed.
    pub real_servers: ChangeCounts,
    /// Its own settings that changed, by their keys in the file.
    pub settings: Vec<String>,
}

/// What a director hands to its successor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandoffState {
    pub ops: Vec<Op>,
    pub conns: Vec<crate::lvs::conn::PortableConn>,
    /// When the old data plane stopped, in ms since the Unix epoch.
    pub stopped_unix_ms: u64,
    pub pid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSnap {
    /// As configured (flattened: the JSON has the same fields as before).
    #[serde(flatten)]
    pub spec: DestSpec,
    pub active: u32,
    pub inactive: u32,
    /// Persistence templates that point at it (`--persistent-conn`).
    #[serde(default)]
    pub persistent: u32,
    /// Slow start: the weight its ramp goes to, while it runs (`spec`
    /// has the ramp's step, as `-Ln` shows it; `-S` saves this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_to: Option<u32>,
    pub stats: StatsSnapshot,
    #[serde(default)]
    pub rates: Rates,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSnap {
    /// The service as `-A` would give it.
    #[serde(flatten)]
    pub def: ServiceDef,
    pub stats: StatsSnapshot,
    #[serde(default)]
    pub rates: Rates,
    /// In the kernel's list order (newest first); listings sort them.
    pub dests: Vec<DestSnap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    pub services: Vec<ServiceSnap>,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Ok,
    /// Done, with what was done.
    Done(String),
    /// `index` is the position of the failing op in an `Apply`.
    Error {
        index: Option<usize>,
        message: String,
    },
    Snapshot(Snapshot),
    /// A listing of connections comes as `ConnChunk` lines, each of a
    /// bounded size, ended by one `Conns` line (the last chunk).
    ConnChunk(Vec<ConnInfo>),
    Conns(Vec<ConnInfo>),
    Status(Vec<(String, u64)>),
    Health(Vec<HealthRow>),
    Handoff(Box<HandoffState>),
    Ha(Option<Box<crate::ha::HaStatus>>),
    /// A reload asked for with `json` (`uvs reload --json`).
    Reloaded(Box<ReloadReport>),
    Trace(Box<TraceReport>),
    /// One frame of a live trace.
    Frame(crate::lvs::trace::FrameVerdict),
}

/// One row of `uvs health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRow {
    /// `TCP 198.18.0.100:80`.
    pub service: String,
    /// `198.18.0.11:80`.
    pub server: String,
    pub forward: String,
    /// As configured (or set by its check: exec's misc_dynamic).
    pub weight: u32,
    /// The weight it is scheduled with now: `weight`, its slow start's
    /// step while it ramps, 0 while down or unresolved.
    #[serde(default)]
    pub weight_now: u32,
    /// Slow start: milliseconds left of its ramp (none: not ramping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_left_ms: Option<u64>,
    /// `up` (scheduled by its weight), `down` (its health check failed:
    /// quiesced or removed) or `unresolved` (kept, never scheduled until
    /// its next hop answers ARP).
    pub state: String,
    pub reason: String,
    /// Its next hop: `resolved 02:..` or `unresolved`.
    pub resolution: String,
    /// Its health check's last verdict: `up`, `down`, or `none` (no check,
    /// or none has changed its state yet).
    pub check: String,
    /// Seconds in this state.
    pub since_secs: u64,
    /// When it entered this state, in milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
}

/// A real server of the traced service as the trace shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceServer {
    /// `198.18.0.11:80`.
    pub server: String,
    /// In effect now (0: quiesced, takes no new connection).
    pub weight: u32,
    /// `up`, `down` or `unresolved` (`uvs health`), and why.
    pub state: String,
    pub reason: String,
    /// The quorum's sorry server.
    pub sorry: bool,
}

/// The quorum of the traced service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceQuorum {
    pub min_weight: u32,
    pub lost: bool,
    pub sorry: Option<String>,
}

/// Where a flow goes and why (`uvs trace`, `--json` prints it as is).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceReport {
    /// `TCP 198.18.0.1:40000 -> 198.18.0.100:80` (`:*` for any port).
    pub flow: String,
    /// The service, `None` when the VIP:PORT has none.
    pub service: Option<String>,
    pub scheduler: Option<String>,
    /// `-p`'s timeout.
    pub persistent_secs: Option<u32>,
    /// Its connection entries (the flow's frames follow them).
    pub entries: Vec<crate::lvs::trace::TraceEntry>,
    /// The persistence template that pins the client's network.
    pub template: Option<crate::lvs::trace::TraceEntry>,
    /// `ip:port` a new connection would get now; `None`: refused.
    pub next_server: Option<String>,
    /// The next server is a function of the flow and the table alone
    /// (sh, mh, dh, or a template): not of the order of arrivals.
    pub deterministic: bool,
    /// Behind ECMP (`--announce routed`), every director holding the same
    /// table would send a new connection of this flow to the same server.
    pub ecmp_agree: bool,
    pub servers: Vec<TraceServer>,
    pub quorum: Option<TraceQuorum>,
    /// HA: this director's role and what the backup can hold.
    pub ha: Option<String>,
    /// The explanation, a sentence a line.
    pub why: Vec<String>,
}
