//! The VIPs' routes through BIRD (`control::bgp`): once a second, and at
//! once when something changes (a quorum, `uvs drain`, SIGTERM), the VIPs
//! to announce are worked out; when they differ from what BIRD holds, the
//! file is rewritten and BIRD reconfigured. The speaker's health (its
//! socket answers, its BGP sessions) is looked at on the same tick: the
//! control plane's work only, never the data plane's.

use super::{Control, lock};
use crate::control::bgp::decide::{self, Director, Withheld};
use crate::control::bgp::{BgpConfig, BgpStatus, bird, conf};
use crate::control::proto::Response;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the speaker is looked at when nothing changes.
const TICK: Duration = Duration::from_secs(1);

/// The director's routes: what decides them and what BIRD holds.
#[derive(Default)]
pub(super) struct Routes {
    pub(super) config: Option<BgpConfig>,
    /// The data plane forwards (set once it turns; cleared at a handoff).
    pub(super) forwarding: bool,
    pub(super) draining: bool,
    pub(super) stopping: bool,
    /// The VIPs BIRD accepted last (`None`: not known yet).
    pub(super) held: Option<BTreeSet<IpAddr>>,
    pub(super) status: BgpStatus,
}

impl Control {
    /// The data plane forwards (or no longer does): announce accordingly.
    pub fn set_forwarding(&self, on: bool) {
        lock(&self.routes).forwarding = on;
        self.routes_changed.notify_one();
    }

    /// `uvs drain` (`on`) and `uvs drain --cancel`.
    pub(super) fn drain(&self, on: bool) -> Response {
        let mut r = lock(&self.routes);
        let was = std::mem::replace(&mut r.draining, on);
        let bgp = r.config.is_some();
        drop(r);
        self.routes_changed.notify_one();
        let msg = match (on, was, bgp) {
            (true, _, true) => {
                "draining: the routes are withdrawn; flows that still arrive are \
                                forwarded"
            }
            (true, _, false) => {
                "draining, but there is no --bgp-socket: take this director's \
                                 route out on the routers; flows that still arrive are forwarded"
            }
            (false, true, _) => "drain cancelled: the routes are announced again",
            (false, false, _) => "not draining",
        };
        if on != was {
            tracing::info!("{msg}");
        }
        Response::Done(msg.into())
    }

    /// SIGTERM: withdraws every route and waits until BIRD holds none
    /// (at most 5 s), then keeps forwarding for the drain delay while the
    /// routers move the flows to the other directors.
    pub async fn stop_announcing(&self) {
        let delay = {
            let mut r = lock(&self.routes);
            r.stopping = true;
            match &r.config {
                Some(c) => c.drain_delay,
                None => return,
            }
        };
        self.routes_changed.notify_one();
        let t = Instant::now();
        while t.elapsed() < bird::TIMEOUT {
            if lock(&self.routes)
                .held
                .as_ref()
                .is_some_and(|h| h.is_empty())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(
            "stopping: routes withdrawn; forwarding {:.1} s more (--bgp-drain-delay)",
            delay.as_secs_f64()
        );
        tokio::time::sleep(delay).await;
    }

    /// What the routes go by now.
    fn director_now(&self) -> Director {
        let active = lock(&self.ha)
            .as_ref()
            .is_none_or(|h| h.state_name() == "ACTIVE");
        let links_up = self.links.iter().all(|(_, name)| {
            crate::host::sys::link_flags(name).is_ok_and(crate::host::sys::link_is_up)
        });
        let r = lock(&self.routes);
        Director {
            forwarding: r.forwarding && active,
            draining: r.draining,
            stopping: r.stopping,
            links_up,
        }
    }

    /// Each VIP of the table (its services' and its marks'), and whether
    /// one of its services lost its quorum.
    async fn vip_quorums(&self) -> BTreeMap<IpAddr, bool> {
        let lost: Vec<_> = lock(&self.quorums)
            .iter()
            .filter(|(_, (_, lost))| *lost)
            .map(|(k, _)| *k)
            .collect();
        let st = self.state.lock().await;
        let mut vips = BTreeMap::new();
        for s in &st.model.services {
            let l = lost.contains(&s.key);
            let marked = (s.key.fwmark != 0)
                .then(|| st.model.marks.get(&s.key.fwmark))
                .flatten()
                .into_iter()
                .flatten()
                .map(|r| r.vip)
                .filter(|v| v.is_ipv6() == s.key.addr.is_ipv6());
            for vip in s.key.vip().into_iter().chain(marked) {
                *vips.entry(vip).or_insert(false) |= l;
            }
        }
        vips
    }

    /// Announces and withdraws the VIPs through BIRD for as long as the
    /// daemon runs.
    pub async fn run_bgp(self: Arc<Self>, cfg: BgpConfig) {
        lock(&self.routes).config = Some(cfg.clone());
        tracing::info!(
            "announcing the VIPs through BIRD ({}, {})",
            cfg.socket.display(),
            cfg.vips_file.display()
        );
        let mut failing: Option<String> = None;
        loop {
            let (want, why) = decide::announced(self.director_now(), &self.vip_quorums().await);
            let held = lock(&self.routes).held.clone();
            if held.as_ref() != Some(&want) {
                match reconfigure(&cfg, &want).await {
                    Ok(()) => {
                        log_change(held.as_ref(), &want, why);
                        lock(&self.routes).held = Some(want.clone());
                        if failing.take().is_some() {
                            tracing::info!("BIRD accepts the VIPs again");
                        }
                    }
                    Err(e) => {
                        let e = e.to_string();
                        if failing.as_ref() != Some(&e) {
                            tracing::warn!("BGP: {e}; retrying every second");
                        }
                        failing = Some(e);
                    }
                }
            }
            let look = bird::command(&cfg.socket, "show protocols").await;
            let vips = self.vip_quorums().await.len() as u64;
            {
                let mut r = lock(&self.routes);
                let announced = r.held.as_ref().map_or(0, |h| h.len() as u64);
                r.status = match look {
                    Ok(lines) => {
                        let p = bird::protocols(&lines);
                        let bgp = p.iter().filter(|p| p.is_bgp());
                        BgpStatus {
                            speaker_up: true,
                            sessions: bgp.clone().count() as u64,
                            established: bgp.filter(|p| p.established()).count() as u64,
                            ..Default::default()
                        }
                    }
                    Err(_) => BgpStatus::default(),
                };
                r.status.announced = announced;
                r.status.withheld = vips.saturating_sub(announced);
                r.status.reason = why.map(|w| w.as_str().to_string());
            }
            let _ = tokio::time::timeout(TICK, self.routes_changed.notified()).await;
        }
    }

    /// `uvs status`'s lines about the routes: draining, and with BGP the
    /// speaker's health and the VIPs announced.
    pub(super) fn route_pairs(&self) -> Vec<(String, u64)> {
        let r = lock(&self.routes);
        let mut pairs = vec![("draining".to_string(), u64::from(r.draining))];
        if r.config.is_some() {
            let s = &r.status;
            pairs.extend([
                ("bgp_speaker_up".to_string(), u64::from(s.speaker_up)),
                ("bgp_sessions".to_string(), s.sessions),
                ("bgp_established".to_string(), s.established),
                ("bgp_vips_announced".to_string(), s.announced),
                ("bgp_vips_withheld".to_string(), s.withheld),
            ]);
        }
        pairs
    }
}

/// Rewrites the file and has BIRD read it again.
async fn reconfigure(cfg: &BgpConfig, vips: &BTreeSet<IpAddr>) -> Result<(), String> {
    conf::write_vips_file(&cfg.vips_file, vips)
        .map_err(|e| format!("{}: {e}", cfg.vips_file.display()))?;
    bird::command(&cfg.socket, "configure")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Logs the VIPs announced and withdrawn, with why.
fn log_change(before: Option<&BTreeSet<IpAddr>>, now: &BTreeSet<IpAddr>, why: Option<Withheld>) {
    let empty = BTreeSet::new();
    let before = before.unwrap_or(&empty);
    let list = |s: Vec<&IpAddr>| {
        s.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let added: Vec<_> = now.difference(before).collect();
    let gone: Vec<_> = before.difference(now).collect();
    if !added.is_empty() {
        tracing::info!("BGP: announcing {}", list(added));
    }
    if !gone.is_empty() {
        let why = why.map_or("no longer configured", Withheld::as_str);
        tracing::info!("BGP: withdrawing {} ({why})", list(gone));
    }
}
