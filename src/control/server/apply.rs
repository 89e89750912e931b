//! Applying operations to the model with the host's answers they need
//! (next hops of new real servers, ARP probes of new VIPs), all or
//! nothing, then publishing the new table.

use super::{APPLY_ROUNDS, Control, Found};
use crate::control::acd;
use crate::control::model::{Need, OpError};
use crate::control::proto::Op;
use crate::control::resolve;
use crate::host::sys;
use crate::lvs::service::Forward;
use crate::lvs::table::NextHop;
use crate::wire::MacAddr;
use std::net::{IpAddr, Ipv4Addr};

impl Control {
    /// All or nothing: a dry run finds semantic errors and what the host
    /// must be asked; the host checks and MAC lookups run with the model
    /// unlocked; then the ops are applied for real to a copy that replaces
    /// the model and is published. If the model changed meanwhile so that
    /// other lookups are needed, the round is repeated.
    pub(super) async fn apply(&self, ops: &[Op]) -> Result<(), (usize, OpError)> {
        self.apply_with(ops, Default::default()).await
    }

    /// `apply`, with these VIPs taken as already checked.
    pub(super) async fn apply_with(
        &self,
        ops: &[Op],
        known_vips: std::collections::HashSet<IpAddr>,
    ) -> Result<(), (usize, OpError)> {
        let mut found = Found {
            vips: known_vips,
            ..Found::default()
        };
        for _ in 0..APPLY_ROUNDS {
            let (needs, nat_before) = {
                let st = self.state.lock().await;
                let mut needs: Vec<(usize, Need)> = Vec::new();
                st.model
                    .apply_all(ops, &mut |_, _| Ok(NO_HOP), &mut |i, n| needs.push((i, n)))?;
                (needs, st.model.has_masq())
            };
            let adds_nat = needs
                .iter()
                .any(|(_, n)| matches!(n, Need::Mac(_, Forward::Masq)));
            self.ask_host(&mut found, needs).await?;
            // The first NAT server's table needs the routes towards
            // clients (with the gateways' MACs): read them now, unlocked,
            // rather than at the next refresh.
            let routes = match adds_nat && !nat_before {
                true => Some(resolve::link_routes(&self.netlink, &self.links).await),
                false => None,
            };
            let mut st = self.state.lock().await;
            let mut missing = false;
            let lookup = &mut |ip, f| match found.hops.get(&(ip, f)) {
                Some(h) => Ok(*h),
                None => {
                    missing = true;
                    Err(OpError::Host(format!("no MAC for {ip}")))
                }
            };
            let mut new = match st.model.apply_all(ops, lookup, &mut |_, _| {}) {
                Err(_) if missing => continue,
                r => r?,
            };
            let nat_now = !st.model.has_masq() && new.has_masq();
            new.start_joined(&st.model, std::time::Instant::now());
            st.model = new;
            for (ip, fwd, why) in found.pending.drain(..) {
                tracing::info!(
                    "real server {ip} ({}) does not resolve yet: {why}; kept, and not \
                     scheduled until it answers",
                    fwd.name()
                );
                st.health.pending(ip, fwd, why);
            }
            for (ip, fwd) in found.resolved.drain(..) {
                st.health.seen_resolved(ip, fwd);
            }
            if let Some(routes) = routes.filter(|_| nat_now) {
                st.routes = routes;
            }
            st.publish();
            return Ok(());
        }
        Err((
            0,
            OpError::Host("the configuration kept changing; try again".into()),
        ))
    }

    /// Asks the host this round's new questions, each once and all at
    /// once: ARP probes and neighbour resolution wait on the network, so a
    /// restore of many new VIPs or many absent servers takes as long as
    /// the slowest, not the sum. The first failure in op order is the
    /// answer.
    pub(super) async fn ask_host(
        &self,
        found: &mut Found,
        needs: Vec<(usize, Need)>,
    ) -> Result<(), (usize, OpError)> {
        let mut todo: Vec<(usize, Need)> = Vec::new();
        for (i, need) in needs {
            let new = match need {
                Need::NewVip(v) => !found.vips.contains(&v),
                Need::Mac(ip, f) => !found.hops.contains_key(&(ip, f)),
            };
            if new && !todo.iter().any(|(_, n)| *n == need) {
                todo.push((i, need));
            }
        }
        if found.locals.is_none() && todo.iter().any(|(_, n)| matches!(n, Need::NewVip(_))) {
            let first = todo
                .iter()
                .find(|(_, n)| matches!(n, Need::NewVip(_)))
                .map_or(0, |t| t.0);
            let host = |e: crate::host::Error| (first, OpError::Host(e.to_string()));
            let v4 = self.netlink.addresses().await.map_err(host)?;
            let v6 = self.netlink.addresses6().await.map_err(host)?;
            let v4 = v4.into_iter().map(|(a, i)| (IpAddr::V4(a), i));
            let v6 = v6.into_iter().map(|(a, i, ..)| (IpAddr::V6(a), i));
            found.locals = Some(v4.chain(v6).collect());
        }
        let locals = found.locals.clone().unwrap_or_default();
        let answers =
            futures::future::join_all(todo.iter().map(|(_, n)| self.ask(*n, &locals))).await;
        for ((i, need), answer) in todo.into_iter().zip(answers) {
            match (need, answer.map_err(|e| (i, e))?) {
                (Need::NewVip(v), _) => {
                    found.vips.insert(v);
                }
                (Need::Mac(ip, fwd), Some(resolve::Hop::Resolved(h))) => {
                    found.hops.insert((ip, fwd), h);
                    found.resolved.push((ip, fwd));
                }
                (Need::Mac(ip, fwd), Some(resolve::Hop::Pending { link, why })) => {
                    found.hops.insert((ip, fwd), NextHop::pending(link));
                    found.pending.push((ip, fwd, why));
                }
                (Need::Mac(..), None) => {}
            }
        }
        Ok(())
    }

    /// Answers one host question: a new VIP's checks (`None`), or a real
    /// server's next hop.
    pub(super) async fn ask(
        &self,
        need: Need,
        locals: &[(IpAddr, u32)],
    ) -> Result<Option<resolve::Hop>, OpError> {
        match need {
            Need::NewVip(vip) => {
                if let Some((_, idx)) = locals.iter().find(|(a, _)| *a == vip) {
                    let dev = self.netlink.link_name(*idx).await;
                    let (proto, len) = (acd::protocol(vip), if vip.is_ipv4() { 32 } else { 128 });
                    return Err(OpError::Host(format!(
                        "VIP {vip} is configured on the director ({dev}): the kernel would answer \
                         and reset its traffic. uvs answers {proto} for the VIP itself; remove it \
                         with `ip addr del {vip}/{len} dev {dev}` (use the address's real prefix)"
                    )));
                }
                self.check_vip_on_links(vip).await?;
                Ok(None)
            }
            Need::Mac(ip, fwd) => resolve::next_hop(&self.netlink, ip, fwd, &self.links)
                .await
                .map(Some)
                .map_err(|e| OpError::Host(e.to_string())),
        }
    }

    /// A new VIP must not be the network or broadcast address of an IPv4
    /// subnet on the director's links, and no host there may answer ARP or
    /// neighbour discovery for it: announcing it would take another host's
    /// address over.
    pub(super) async fn check_vip_on_links(&self, vip: IpAddr) -> Result<(), OpError> {
        if let IpAddr::V4(v4) = vip {
            self.check_subnet_ends(v4).await?;
        }
        let proto = acd::protocol(vip);
        let announce = match vip {
            IpAddr::V4(_) => "its gratuitous ARP",
            IpAddr::V6(_) => "its unsolicited neighbour advertisement",
        };
        for (_, name) in &self.links {
            let Ok((mac, _)) = sys::link_info(name) else {
                continue;
            };
            let (name, mac) = (name.clone(), MacAddr(mac));
            let probe = tokio::task::spawn_blocking(move || {
                acd::probe(&name, mac, vip, acd::PROBE_WAIT).map(|o| (name, o))
            });
            match probe.await {
                // The other director of an HA pair holds it: as it should.
                Ok(Ok((name, Some(owner)))) if self.is_peer(owner).await => {
                    tracing::info!("VIP {vip} is held by an HA peer ({owner} on {name})");
                }
                Ok(Ok((name, Some(owner)))) => {
                    return Err(OpError::Host(format!(
                        "VIP {vip} is in use: {owner} answered {proto} for it on {name}. uvs will \
                         not announce an address another host has ({announce} would take the \
                         address over on the whole segment); choose a free address"
                    )));
                }
                Ok(Ok((_, None))) => {}
                Ok(Err(e)) => tracing::warn!("cannot probe for {vip} with {proto}: {e}"),
                Err(e) => tracing::warn!("cannot probe for {vip} with {proto}: {e}"),
            }
        }
        Ok(())
    }

    /// An IPv4 VIP must not be the network or broadcast address of a
    /// subnet on the director's links.
    async fn check_subnet_ends(&self, vip: Ipv4Addr) -> Result<(), OpError> {
        let addrs = self
            .netlink
            .addresses_with_prefix()
            .await
            .map_err(|e| OpError::Host(e.to_string()))?;
        for (addr, idx, len) in addrs {
            let Some((_, name)) = self.links.iter().find(|(i, _)| *i == idx) else {
                continue;
            };
            if len >= 31 {
                continue;
            }
            let mask = u32::MAX << (32 - u32::from(len));
            let network = Ipv4Addr::from(u32::from(addr) & mask);
            let broadcast = Ipv4Addr::from(u32::from(addr) | !mask);
            if vip == network || vip == broadcast {
                let which = if vip == network {
                    "network"
                } else {
                    "broadcast"
                };
                return Err(OpError::BadAddress(format!(
                    "{vip} cannot be a VIP: it is the {which} address of {network}/{len} on {name}"
                )));
            }
        }
        Ok(())
    }

    /// Whether `mac` is one of the HA peers' (resolved by ARP if the
    /// neighbour table does not have it yet).
    pub(super) async fn is_peer(&self, mac: MacAddr) -> bool {
        for peer in self.ha_peers() {
            let hop = resolve::next_hop(&self.netlink, peer, Forward::Route, &self.links).await;
            if matches!(hop, Ok(resolve::Hop::Resolved(h)) if h.mac == mac) {
                return true;
            }
        }
        false
    }
}

/// Placeholder next hop for the dry run, which only collects what to look
/// up.
pub(super) const NO_HOP: NextHop = NextHop {
    link: 0,
    mac: MacAddr::ZERO,
};
