//! The control plane's state and its jobs, one file each: the control
//! socket (`serve`), applying operations with the host's answers
//! (`apply`), the table's life (`lifecycle`: load, reload, takeover,
//! handoff), quorums and sorry servers (`quorum`), the health checks'
//! runner (`checks`), `uvs trace` (`trace`), the VIPs' routes through BIRD (`announce`),
//! background watchers and the rate estimator
//! (`watch`), HA (`ha`) and the metrics endpoint (`metrics`). Changes are
//! checked against the host, applied to a copy of the model, and only
//! then published. The model's lock is never held across a netlink
//! request: host lookups run between a dry run and the real apply, so a
//! listing never waits behind an unresolved neighbour.

mod announce;
mod apply;
mod checks;
mod ha;
mod lifecycle;
mod metrics;
mod quorum;
mod serve;
mod trace;
mod watch;

pub use ha::Queues;
pub use lifecycle::{LoadError, Reloaded, log_lines};
pub use serve::{IDLE_TIMEOUT, MAX_CLIENTS};

use super::health::Health;
use super::model::Model;
use super::plan::{Quorum, Source};
use super::publish::Publisher;
use super::workers::Workers;
use crate::host::netlink::Netlink;
use crate::lvs::service::{Forward, ServiceKey};
use crate::lvs::table::{LinkRoute, NextHop};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use tokio::sync::Mutex;

/// A std mutex of the control plane, whatever a panicked holder left.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs an operator's command (`sh -c`) without waiting for it; its exit
/// status is logged when it ends.
fn run_command(what: String, cmd: String) {
    tokio::spawn(async move {
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .kill_on_drop(true)
            .status()
            .await;
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => tracing::info!("{what} command `{cmd}` failed: {s}"),
            Err(e) => tracing::info!("{what} command `{cmd}` could not run: {e}"),
        }
    });
}

/// How often an apply is retried when the model changed under its host
/// lookups (another change came in meanwhile) and needs new ones.
const APPLY_ROUNDS: usize = 4;

struct State {
    model: Model,
    /// Each real server's resolution state and since when.
    health: Health,
    publisher: Publisher,
    /// The kernel's routes through the director's links, for NAT replies.
    routes: Vec<LinkRoute>,
}

impl State {
    pub(super) fn publish(&mut self) {
        self.publisher.publish(&self.model, &self.routes);
    }

    /// `uvs health`'s rows.
    pub(super) fn health_rows(&mut self) -> Vec<super::proto::HealthRow> {
        self.health.rows(&self.model)
    }
}

pub struct Control {
    state: Mutex<State>,
    /// The data plane's workers: their requests and counters.
    dp: Workers,
    netlink: Netlink,
    /// The director's links: interface index and name, in link order.
    links: Vec<(u32, String)>,
    /// The config file and what it held when last loaded (a reload
    /// applies the difference from this).
    config: Mutex<Option<Box<dyn Source>>>,
    /// The running health checks, one task per checked real server.
    checks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Each configured service's quorum, and whether it is lost now.
    quorums: std::sync::Mutex<HashMap<ServiceKey, (Quorum, bool)>>,
    /// Set once the table was handed to a successor: the daemon stops.
    pub handed_off: tokio::sync::Notify,
    /// HA: the heartbeat state, when the director has peers.
    ha: std::sync::Mutex<Option<crate::ha::Ha>>,
    /// The VIPs' routes (`announce`), and a nudge to redo them now.
    routes: std::sync::Mutex<announce::Routes>,
    routes_changed: tokio::sync::Notify,
}

/// What host lookups found for one apply.
#[derive(Default)]
struct Found {
    hops: HashMap<(IpAddr, Forward), NextHop>,
    /// New VIPs already checked in this apply.
    vips: std::collections::HashSet<IpAddr>,
    /// Real servers kept although they do not resolve yet, and why.
    pending: Vec<(IpAddr, Forward, String)>,
    resolved: Vec<(IpAddr, Forward)>,
    locals: Option<Vec<(IpAddr, u32)>>,
}
impl Control {
    /// `publisher` is the one whose tables the data plane reads.
    pub fn new(
        publisher: Publisher,
        dp: Workers,
        netlink: Netlink,
        links: Vec<(u32, String)>,
        (tun_source, tun_source6): (Option<Ipv4Addr>, Option<std::net::Ipv6Addr>),
    ) -> Control {
        Control {
            state: Mutex::new(State {
                model: Model::with_tun_sources(tun_source, tun_source6),
                health: Health::default(),
                publisher,
                routes: Vec::new(),
            }),
            dp,
            netlink,
            links,
            config: Mutex::new(None),
            checks: std::sync::Mutex::new(Vec::new()),
            quorums: std::sync::Mutex::new(HashMap::new()),
            handed_off: tokio::sync::Notify::new(),
            ha: std::sync::Mutex::new(None),
            routes: Default::default(),
            routes_changed: tokio::sync::Notify::new(),
        }
    }
}
