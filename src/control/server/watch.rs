//! Background watchers: real servers that did not resolve yet, the rate
//! estimator, the neighbours of real servers, and NAT replies that never
//! come back through the director.

use super::Control;
use crate::control::resolve;
use crate::lvs::service::ServiceKey;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often slow start's ramps take a step.
pub const RAMP_STEP: Duration = Duration::from_millis(250);

impl Control {
    /// Retries the real servers that do not resolve yet, every `every`:
    /// one that answers is put in service without any command (and
    /// logged); one whose route changed so that it can never work is
    /// logged and stays out of service.
    pub async fn resolve_pending(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let targets = self.state.lock().await.model.pending_targets();
            for (ip, fwd) in targets {
                let hop = resolve::next_hop(&self.netlink, ip, fwd, &self.links).await;
                let mut st = self.state.lock().await;
                match hop {
                    Ok(resolve::Hop::Resolved(h)) => {
                        if st.model.set_hop(ip, fwd, h) {
                            tracing::info!(
                                "real server {ip} ({}) resolved ({}): in service",
                                fwd.name(),
                                h.mac
                            );
                            st.health.resolved(ip, fwd);
                            st.publish();
                            let keys: Vec<ServiceKey> =
                                st.model.services.iter().map(|s| s.key).collect();
                            drop(st);
                            for k in keys {
                                self.judge_quorum(k).await;
                            }
                            continue;
                        }
                    }
                    Ok(resolve::Hop::Pending { why, .. }) => st.health.pending(ip, fwd, why),
                    Err(why) => st.health.pending(ip, fwd, why.to_string()),
                }
            }
        }
    }

    /// Slow start: steps the real servers' ramps every [`RAMP_STEP`] and
    /// publishes a table when a step changed a weight (the data plane
    /// sees a few tables a second while a ramp runs, none otherwise).
    pub async fn step_ramps(self: Arc<Self>) {
        let mut t = tokio::time::interval(RAMP_STEP);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            let mut st = self.state.lock().await;
            if st.model.ramping() && st.model.step_ramps(std::time::Instant::now()) {
                st.publish();
            }
        }
    }

    /// Drives the --rate estimators every 2 s, as the kernel does.
    pub async fn estimate_rates(self: Arc<Self>) {
        let period = Duration::from_secs(crate::lvs::stats::ESTIMATOR_PERIOD_SECS);
        let mut t = tokio::time::interval(period);
        loop {
            t.tick().await;
            self.state.lock().await.model.estimate();
        }
    }

    /// Keeps the MACs uvs sends to current: a real server (DR) or the next
    /// hop towards one (TUN, NAT: the server itself or its router) replaced
    /// behind the same address (failover, new NIC) and announced with a
    /// gratuitous ARP is followed without operator action. The routes NAT
    /// replies follow are re-read at the same time.
    pub async fn refresh_neighbours(self: Arc<Self>, every: Duration) {
        loop {
            let (targets, nat) = {
                let st = self.state.lock().await;
                (st.model.dest_targets(), st.model.has_masq())
            };
            let mut found = Vec::new();
            for (a, fwd, link) in targets {
                if let Some(m) =
                    resolve::current_mac(&self.netlink, a, fwd, link, &self.links).await
                {
                    found.push((a, fwd, m));
                }
            }
            let routes = match nat {
                true => resolve::link_routes(&self.netlink, &self.links).await,
                false => Vec::new(),
            };
            let mut st = self.state.lock().await;
            let mut changed = false;
            for (a, fwd, m) in found {
                changed |= st.model.set_mac(a, fwd, m);
            }
            if routes != st.routes {
                st.routes = routes;
                changed = true;
            }
            if changed {
                st.publish();
            } else {
                // An address added to the director since: its traffic is
                // the kernel's, so the XDP maps learn it.
                st.publisher.refresh_steering();
            }
            drop(st);
            tokio::time::sleep(every).await;
        }
    }

    /// Warns when a NAT real server of a TCP service gets packets but none
    /// of its replies come back through the director: its route to the clients bypasses
    /// the director, so clients get answers from the RIP they never asked
    /// and drop them. The director cannot read the real server's routes;
    /// this is what it can see.
    pub async fn watch_nat_replies(self: Arc<Self>, every: Duration) {
        let mut last: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut warned: std::collections::HashSet<u64> = std::collections::HashSet::new();
        loop {
            tokio::time::sleep(every).await;
            let dests = self.state.lock().await.model.masq_dests();
            let mut seen = HashMap::new();
            for d in dests {
                let (id, addr, port, link, inpkts, outpkts) =
                    (d.id, d.addr, d.port, d.link, d.inpkts, d.outpkts);
                seen.insert(id, (inpkts, outpkts));
                // A real server first seen now is judged from zero, so
                // packets that all came before the first look still count.
                let (in0, out0) = last.get(&id).copied().unwrap_or((0, 0));
                if outpkts > out0 {
                    warned.remove(&id);
                } else if inpkts >= in0 + 3 && warned.insert(id) {
                    let ours = self.link_address(link, addr.is_ipv6()).await;
                    let ip = if addr.is_ipv6() { "ip -6" } else { "ip" };
                    let rs = std::net::SocketAddr::new(addr, port);
                    tracing::warn!(
                        "NAT real server {rs} got {} packets in {} s but none of its \
                         replies came back through the director. Either it is not answering at all, or its \
                         route back to the clients does not go through the director, so clients drop the \
                         answers. Make the director its gateway \
                         (on the real server: `{ip} route replace default via {ours}`), or check with \
                         `uvs audit --mode nat --director {ours}` there",
                        inpkts - in0,
                        every.as_secs()
                    );
                }
            }
            last = seen;
        }
    }

    /// The director's first address of the family (global, for IPv6) on
    /// `link`, or words naming the link, for messages.
    pub(super) async fn link_address(&self, link: u8, v6: bool) -> String {
        let Some((index, name)) = self.links.get(usize::from(link)) else {
            return "this director's address".into();
        };
        let found = match v6 {
            false => self.netlink.first_address(*index).await.map(IpAddr::from),
            true => self.netlink.first_address6(*index).await.map(IpAddr::from),
        };
        match found {
            Some(a) => a.to_string(),
            None => format!("this director's address on {name}"),
        }
    }
}
