//! What a front end asks of the control plane beyond table operations:
//! the health checks of real servers and the quorums of services. The
//! config file is such a front end (as `uvsadm` is for the table): it
//! turns a file into a [`Plan`], and the control plane knows files only
//! through the [`Source`] it is given, so `control/` never reads one.

use super::check::CheckSpec;
use super::model::FailAction;
use super::proto::{DestSpec, Op};
use crate::lvs::service::{Forward, ServiceKey};
use std::net::IpAddr;

/// A real server with a health check, and what its failure does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedServer {
    pub key: ServiceKey,
    pub addr: IpAddr,
    pub port: u16,
    pub on_failure: FailAction,
    pub spec: CheckSpec,
}

/// A real server that takes a service's new connections while its
/// quorum is lost (keepalived's `sorry_server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SorryServer {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
}

impl SorryServer {
    /// The operation that puts it in (`add`) or takes it out.
    pub fn op(&self, key: ServiceKey, add: bool) -> Op {
        match add {
            true => Op::AddDest {
                key,
                dest: DestSpec {
                    addr: self.addr,
                    port: self.port,
                    forward: self.forward,
                    weight: 1,
                    uthreshold: 0,
                    lthreshold: 0,
                    slow_start: 0,
                },
            },
            false => Op::DelDest {
                key,
                addr: self.addr,
                port: self.port,
            },
        }
    }
}

/// When a service has too few live real servers, and what then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    /// The least total weight of live (checked up, resolved) servers.
    pub min_weight: u32,
    /// Added to the table while the quorum is lost, removed after.
    pub sorry: Option<SorryServer>,
    pub up_cmd: Option<String>,
    pub down_cmd: Option<String>,
}

/// A front end's whole wish at one moment: the table's operations (from
/// what it asked before), and every check and quorum it wants running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub checks: Vec<CheckedServer>,
    pub quorums: Vec<(ServiceKey, Quorum)>,
}

/// A reload's plan, with how it is told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reload {
    pub plan: Plan,
    /// What changes: a line of counts, then a line per service.
    pub summary: String,
    /// The same for scripts (`uvs reload --json`).
    pub report: super::proto::ReloadReport,
    /// Nothing changes (the reload is not logged).
    pub changes_nothing: bool,
    /// Why it is refused unless forced (it removes every service).
    pub refused_unless_forced: Option<String>,
}

/// Why a source could not be read again: its own error (the config
/// file's, with its line and column), which `control/` only passes on.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Where the table comes from at start and at each reload (the config
/// file): read again on every reload, compared with what it gave last.
pub trait Source: Send {
    /// How errors and logs name it (the file's path).
    fn name(&self) -> String;
    /// Its whole plan from nothing (a start), and lines for the log.
    fn start(&self) -> (Plan, Vec<String>);
    /// Its checks and quorums alone (after a takeover, the table came
    /// from the previous director).
    fn supervision(&self) -> Plan;
    /// Reads it again: the plan from what it gave last.
    fn reload(&mut self) -> Result<Reload, SourceError>;
    /// The last reload's reading is applied: from now on reloads compare
    /// with it.
    fn commit(&mut self);
}
