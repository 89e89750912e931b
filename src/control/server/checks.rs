//! The health checks' runner: one task per checked real server, its
//! verdicts turned into the model's up, down and weight changes.

use super::{Control, lock};
use crate::control::check::via_vip::{Route, ViaVipError};
use crate::control::check::{self, CheckSpec};
use crate::control::model::{CheckVerdict, FailAction};
use crate::control::plan::CheckedServer;
use crate::lvs::service::{Forward, ServiceKey};
use crate::wire::carry::Carry;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

impl Control {
    /// (Re)starts one check task per checked real server. A server keeps
    /// its up or down state across a restart; its rise and fall counts
    /// start over.
    pub(super) fn start_checks(self: &Arc<Self>, checks: &[CheckedServer]) {
        let mut tasks = lock(&self.checks);
        for t in tasks.drain(..) {
            t.abort();
        }
        for c in checks {
            let me = self.clone();
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                me.check_loop(c.key, c.addr, c.port, c.on_failure, c.spec)
                    .await
            }));
        }
    }

    /// One real server's check, forever: after a random warm-up, one
    /// check per interval (with its retries while the server is up); `fall` failures in a row take it down (quiesce
    /// or remove), `rise` successes bring it back. Each change is logged
    /// once, with the reason, and published.
    pub(super) async fn check_loop(
        &self,
        key: crate::lvs::service::ServiceKey,
        addr: IpAddr,
        port: u16,
        action: FailAction,
        spec: CheckSpec,
    ) {
        use std::hash::BuildHasher;
        let warm = spec.warmup.as_micros().max(1) as u64;
        let jitter = foldhash::fast::RandomState::default().hash_one((addr, port)) % warm;
        tokio::time::sleep(Duration::from_micros(jitter)).await;
        let up = !self.state.lock().await.model.is_down(&key, addr, port);
        let mut counter = check::Counter::new(up);
        let to = check::target(&spec, addr, port);
        let mut tick = tokio::time::interval(spec.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = match spec.via_vip {
                false => check::run_retrying(&spec, to, None, counter.up).await,
                true => match self.via_vip_route(key, addr, port, to.port()).await {
                    Ok(r) => check::run_retrying(&spec, to, Some(&r), counter.up).await,
                    Err(e) => Err(e.into()),
                },
            };
            if let Ok(Some(w)) = result {
                self.dynamic_weight(key, addr, port, w).await;
            }
            let Some(now_up) = counter.record(result.is_ok(), spec.rise, spec.fall) else {
                continue;
            };
            let why = match &result {
                Ok(_) => format!(
                    "{} check passed, {} of {} in a row",
                    spec.kind_name(),
                    spec.rise,
                    spec.rise
                ),
                Err(e) => format!(
                    "{e}, {} of {} checks failed{}",
                    spec.fall,
                    spec.fall,
                    match spec.retry {
                        0 => String::new(),
                        n => format!(" (each tried {} times)", n + 1),
                    }
                ),
            };
            let svc = key.to_string();
            let what = match (now_up, action) {
                (true, _) => "up",
                (false, FailAction::Quiesce) => "down (quiesced: weight 0)",
                (false, FailAction::Remove) => "down (removed)",
            };
            let rs = std::net::SocketAddr::new(addr, port);
            tracing::info!("{svc} real server {rs} {what}: {why}");
            {
                let mut st = self.state.lock().await;
                let down = (!now_up).then_some(action);
                st.health.checked(key, addr, port, why);
                if st
                    .model
                    .apply_check(&key, addr, port, CheckVerdict::Down(down))
                {
                    st.publish();
                }
            }
            self.judge_quorum(key).await;
        }
    }

    /// Where a via-VIP check of a real server goes: its forwarding method,
    /// link and next hop as the data plane has them now.
    async fn via_vip_route(
        &self,
        key: ServiceKey,
        addr: IpAddr,
        port: u16,
        check_port: u16,
    ) -> Result<Route, ViaVipError> {
        let st = self.state.lock().await;
        let dest = st
            .model
            .services
            .iter()
            .filter(|s| s.key == key)
            .flat_map(|s| s.dests.iter())
            .find(|d| d.spec.addr == addr && d.spec.port == port);
        let (IpAddr::V4(vip), IpAddr::V4(rip)) = (key.addr, addr) else {
            return Err(setup(addr, "IPv4 only"));
        };
        let setup = |why: &str| ViaVipError::Setup {
            rip,
            why: why.to_string(),
        };
        let d = dest.ok_or_else(|| setup("not in the table"))?;
        if !d.hop.is_resolved() {
            return Err(setup("its next hop does not resolve"));
        }
        let carry = match d.spec.forward {
            Forward::Route => Carry::Direct,
            Forward::Tunnel => Carry::Tunnel,
            _ => return Err(setup("only DR and TUN servers are checked through the VIP")),
        };
        let link = self.links.get(usize::from(d.hop.link));
        Ok(Route {
            vip: SocketAddrV4::new(vip, check_port),
            rip,
            carry,
            link: link.ok_or_else(|| setup("no link"))?.1.clone(),
            hop_mac: d.hop.mac,
        })
    }

    /// An exec check's exit code set a weight (misc_dynamic): used in
    /// place of the configured one, shown by `-Ln`, logged when it changes.
    pub(super) async fn dynamic_weight(&self, key: ServiceKey, addr: IpAddr, port: u16, w: u32) {
        let changed = {
            let mut st = self.state.lock().await;
            let changed = st
                .model
                .apply_check(&key, addr, port, CheckVerdict::Weight(w));
            if changed {
                st.publish();
            }
            changed
        };
        if changed {
            let rs = std::net::SocketAddr::new(addr, port);
            tracing::info!("{key} real server {rs} weight {w} (set by its check)");
            self.judge_quorum(key).await;
        }
    }
}

/// A via-VIP check that cannot be sent to `addr`.
fn setup(addr: IpAddr, why: &str) -> ViaVipError {
    ViaVipError::Setup {
        rip: match addr {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        },
        why: why.to_string(),
    }
}
