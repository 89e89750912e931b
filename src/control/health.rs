//! What `uvs health` shows: each real server's state (resolved and in
//! service, or kept but not scheduled because its MAC does not resolve),
//! the reason and since when. Health checks add their state here.

use super::model::Model;
use super::proto::HealthRow;
use crate::lvs::service::{Forward, ServiceKey};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Now minus `ago`, in milliseconds since the Unix epoch.
fn unix_ms(ago: Duration) -> u64 {
    crate::host::unix_ms().saturating_sub(ago.as_millis() as u64)
}

/// The resolution state of each real server address (per forwarding
/// method, as the next hop depends on it).
#[derive(Debug, Default)]
pub struct Health {
    pending: HashMap<(IpAddr, Forward), (String, Instant)>,
    resolved: HashMap<(IpAddr, Forward), Instant>,
    /// Why the last check changed a real server's state, and when (the
    /// state itself is the model's `Dest::down`).
    checks: HashMap<(ServiceKey, IpAddr, u16), (String, Instant)>,
}

impl Health {
    /// A real server that does not resolve (the first time, or again).
    pub fn pending(&mut self, a: IpAddr, f: Forward, why: String) {
        self.resolved.remove(&(a, f));
        let since = self.pending.get(&(a, f)).map_or_else(Instant::now, |p| p.1);
        self.pending.insert((a, f), (why, since));
    }

    /// A real server that resolved when it was added (its "since" starts
    /// now unless it was already known).
    pub fn seen_resolved(&mut self, a: IpAddr, f: Forward) {
        if !self.pending.contains_key(&(a, f)) {
            self.resolved.entry((a, f)).or_insert_with(Instant::now);
        }
    }

    pub fn resolved(&mut self, a: IpAddr, f: Forward) {
        self.pending.remove(&(a, f));
        self.resolved.insert((a, f), Instant::now());
    }

    /// A check changed a real server's state.
    pub fn checked(&mut self, key: ServiceKey, a: IpAddr, port: u16, why: String) {
        self.checks.insert((key, a, port), (why, Instant::now()));
    }

    /// Every configured real server, in the listing's order.
    pub fn rows(&mut self, m: &Model) -> Vec<HealthRow> {
        let now = Instant::now();
        let mut out = Vec::new();
        for s in &m.services {
            for d in &s.dests {
                let k = (d.spec.addr, d.spec.forward);
                let check = self.checks.get(&(s.key, d.spec.addr, d.spec.port));
                let (state, reason, since) = match d.hop.is_resolved() {
                    true if d.down.is_some() => {
                        let (why, since) = check.cloned().unwrap_or_else(|| (String::new(), now));
                        ("down", why, since)
                    }
                    true => {
                        let resolved = *self.resolved.entry(k).or_insert(now);
                        match check {
                            Some((why, since)) => ("up", why.clone(), (*since).max(resolved)),
                            None => ("up", format!("next hop {}", d.hop.mac), resolved),
                        }
                    }
                    false => {
                        let (why, since) = self
                            .pending
                            .entry(k)
                            .or_insert_with(|| ("not resolved yet".into(), now));
                        ("unresolved", why.clone(), *since)
                    }
                };
                let resolution = match d.hop.is_resolved() {
                    true => format!("resolved {}", d.hop.mac),
                    false => "unresolved".to_string(),
                };
                let verdict = match (d.down.is_some(), check) {
                    (true, _) => "down",
                    (false, Some(_)) => "up",
                    (false, None) => "none",
                };
                out.push(HealthRow {
                    resolution,
                    check: verdict.to_string(),
                    service: s.key.to_string(),
                    server: std::net::SocketAddr::new(d.spec.addr, d.spec.port).to_string(),
                    forward: d.spec.forward.name().to_string(),
                    weight: d.target_weight(),
                    weight_now: d.effective_weight(),
                    ramp_left_ms: d.ramp.map(|r| r.left(now).as_millis() as u64),
                    state: state.into(),
                    reason,
                    since_secs: now.saturating_duration_since(since).as_secs(),
                    since_unix_ms: unix_ms(now.saturating_duration_since(since)),
                });
            }
        }
        out
    }
}
