//! `uvs trace`'s answer: where a flow goes and why, from what the data
//! plane's workers know of it ([`FlowFacts`]: entries, the template, the
//! scheduler's choice now, computed by the scheduler's own code) and what
//! the control plane knows (the service, each real server's weight and
//! health, the quorum and its sorry server, HA). Pure: the server's
//! `trace` gathers the inputs, [`explain`] says what they mean.

use crate::control::proto::{HealthRow, ServiceSnap, TraceQuorum, TraceReport, TraceServer};
use crate::lvs::service::SchedulerKind;
use crate::lvs::trace::{FlowFacts, TraceEntry, TraceQuery};
use std::net::{IpAddr, SocketAddr};

/// What [`explain`] reads.
pub struct Inputs<'a> {
    pub query: &'a TraceQuery,
    pub service: Option<&'a ServiceSnap>,
    /// `uvs health`'s rows of the service.
    pub health: &'a [HealthRow],
    pub quorum: Option<TraceQuorum>,
    /// Every worker's facts combined (the template and next server from
    /// the worker that owns the client).
    pub facts: FlowFacts,
    /// `Some(role)` with HA configured.
    pub ha_role: Option<String>,
}

/// Schedulers whose choice is a function of the flow and the table.
fn hashes(k: SchedulerKind) -> bool {
    matches!(k, SchedulerKind::Sh | SchedulerKind::Mh | SchedulerKind::Dh)
}

/// Says where the flow goes and why.
pub fn explain(i: Inputs) -> TraceReport {
    let q = i.query;
    let cport = q.cport.map_or("*".to_string(), |p| p.to_string());
    let mut r = TraceReport {
        flow: format!(
            "{} {} -> {}",
            q.protocol.name().to_uppercase(),
            at(q.client, &cport),
            SocketAddr::new(q.vip, q.vport)
        ),
        ..TraceReport::default()
    };
    let Some(svc) = i.service else {
        r.why.push(format!(
            "no virtual service {}: the director leaves these frames to the kernel",
            SocketAddr::new(q.vip, q.vport)
        ));
        return r;
    };
    let kind = SchedulerKind::from_name(&svc.def.scheduler);
    r.service = Some(svc.def.key.to_string());
    r.scheduler = Some(svc.def.scheduler.clone());
    r.persistent_secs = svc.def.persistent.map(|p| p.timeout);
    r.quorum = i.quorum;
    r.servers = servers(svc, i.health, r.quorum.as_ref());
    r.entries = i.facts.entries;
    r.template = i.facts.template;
    r.next_server = i
        .facts
        .predicted
        .map(|(a, p)| SocketAddr::new(a, p).to_string());
    let hashed = kind.is_some_and(hashes);
    r.deterministic = hashed || r.template.is_some();
    r.ecmp_agree = hashed;
    for e in &r.entries {
        r.why.push(entry_line(e));
    }
    if !r.entries.is_empty() {
        r.why
            .push("its frames follow the entry, whatever the scheduler would choose now".into());
    }
    let new = match r.entries.is_empty() {
        true => "a new connection",
        false => "a new connection of this client",
    };
    match (&r.template, &r.next_server) {
        (Some(t), _) => r.why.push(format!(
            "the persistence template of its network pins the client to {} ({}s left, \
             controls {} connection(s)): {new} goes there",
            SocketAddr::new(t.server, t.port),
            t.expires_secs,
            t.controls
        )),
        (None, None) => r.why.push(format!(
            "no usable real server (every weight 0 or none resolved): {new} is refused"
        )),
        (None, Some(to)) if hashed => r.why.push(format!(
            "{} hashes the flow over the table's servers: {new} goes to {to}",
            svc.def.scheduler
        )),
        (None, Some(to)) => r.why.push(format!(
            "{} picks by the order of arrivals (and the servers' counts), so the next \
             server depends on what arrives first; candidates: {}; on its worker's state \
             now the next pick is {to} (where a kernel program schedules new flows, \
             --io auto, rr and wrr turn its own position over the same sequence)",
            svc.def.scheduler,
            candidates(&r.servers)
        )),
    }
    if let Some(qu) = &r.quorum
        && qu.lost
    {
        r.why.push(format!(
            "the quorum (live weight at least {}) is lost{}",
            qu.min_weight,
            qu.sorry.as_ref().map_or(String::new(), |s| format!(
                ": new connections go to the sorry server {s}"
            ))
        ));
    }
    for s in r.servers.iter().filter(|s| s.state != "up" && !s.sorry) {
        r.why
            .push(format!("{} is {}: {}", s.server, s.state, s.reason));
    }
    r.why.push(
        match (hashed, r.entries.is_empty() && r.template.is_none()) {
            (true, _) => "behind ECMP (--announce routed) every director with this table computes \
                      the same server: they agree"
                .into(),
            (false, true) => format!(
                "behind ECMP (--announce routed) directors may disagree: {} depends on each \
             director's own arrivals",
                svc.def.scheduler
            ),
            (false, false) => "behind ECMP (--announce routed) only this director (and its HA \
                           peers) holds the entry; another would schedule the flow anew"
                .into(),
        },
    );
    r.ha = i.ha_role.map(|role| match role.as_str() {
        "active" => "active: entries are synced to the backup (whether it holds this one is \
                     not asked per connection; `uvs ha` shows the digest comparison)"
            .into(),
        other => format!("{other}: this director forwards nothing"),
    });
    r
}

fn at(a: IpAddr, port: &str) -> String {
    match a {
        IpAddr::V4(_) => format!("{a}:{port}"),
        IpAddr::V6(_) => format!("[{a}]:{port}"),
    }
}

/// An entry's sentence.
fn entry_line(e: &TraceEntry) -> String {
    let carried = match e.offloaded {
        true => "; the kernel program carries it (its frames do not reach uvs)",
        false => "",
    };
    format!(
        "entry: client port {} {} to {}, expires in {}s, on worker {}{carried}",
        e.cport,
        e.state,
        SocketAddr::new(e.server, e.port),
        e.expires_secs,
        e.worker
    )
}

/// The service's real servers with their weight now and health.
fn servers(svc: &ServiceSnap, health: &[HealthRow], q: Option<&TraceQuorum>) -> Vec<TraceServer> {
    let mut out: Vec<TraceServer> = svc
        .dests
        .iter()
        .map(|d| {
            let server = SocketAddr::new(d.spec.addr, d.spec.port).to_string();
            let h = health.iter().find(|h| h.server == server);
            let sorry = q.and_then(|q| q.sorry.as_deref()) == Some(server.as_str());
            TraceServer {
                weight: d.spec.weight,
                state: h.map_or("up".into(), |h| h.state.clone()),
                reason: h.map_or(String::new(), |h| h.reason.clone()),
                sorry,
                server,
            }
        })
        .collect();
    // A server its check took out of the table is still the service's.
    let gone: Vec<&HealthRow> = health
        .iter()
        .filter(|h| !out.iter().any(|s| s.server == h.server))
        .collect();
    for h in gone {
        out.push(TraceServer {
            server: h.server.clone(),
            weight: 0,
            state: h.state.clone(),
            reason: h.reason.clone(),
            sorry: false,
        });
    }
    out.sort_by(|a, b| a.server.cmp(&b.server));
    out
}

/// The servers that can take a new connection: `a (w 1), b (w 2)`.
fn candidates(s: &[TraceServer]) -> String {
    let c: Vec<String> = s
        .iter()
        .filter(|s| s.weight > 0 && s.state == "up")
        .map(|s| format!("{} (weight {})", s.server, s.weight))
        .collect();
    match c.is_empty() {
        true => "none".into(),
        false => c.join(", "),
    }
}

#[cfg(test)]
mod tests;
