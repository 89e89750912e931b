//! The daemon's control socket. Each connection carries one JSON request
//! line and gets one JSON response line. Changes are checked against the
//! host, applied to a copy of the model, and only then published.

use super::model::{Model, Need, OpError};
use super::netlink::{Netlink, RouteInfo};
use super::proto::{Op, Request, Response};
use crate::dataplane::DpRequest;
use crate::service::Forward;
use crate::stats::DataplaneCounters;
use crate::table::{LinkRoute, NextHop, Table};
use crate::wire::MacAddr;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;

/// Largest request accepted (a restore of a very large table fits).
const MAX_REQUEST: u64 = 64 << 20;

struct State {
    model: Model,
    generation: u64,
    /// The kernel's routes through the director's links, for NAT replies.
    routes: Vec<LinkRoute>,
}

impl State {
    /// Publishes the model (and the routes) as a new table.
    fn publish(&mut self, shared: &ArcSwap<Table>) {
        self.generation += 1;
        let t = self
            .model
            .table(self.generation)
            .with_routes(self.routes.clone());
        shared.store(Arc::new(t));
    }
}

pub struct Control {
    state: Mutex<State>,
    shared: Arc<ArcSwap<Table>>,
    dp: std::sync::Mutex<Sender<DpRequest>>,
    counters: Arc<DataplaneCounters>,
    netlink: Netlink,
    /// The director's links: interface index and name, in link order.
    links: Vec<(u32, String)>,
}

impl Control {
    pub fn new(
        shared: Arc<ArcSwap<Table>>,
        dp: Sender<DpRequest>,
        counters: Arc<DataplaneCounters>,
        netlink: Netlink,
        links: Vec<(u32, String)>,
        tun_source: Option<Ipv4Addr>,
    ) -> Control {
        Control {
            state: Mutex::new(State {
                model: Model::with_tun_source(tun_source),
                generation: 0,
                routes: Vec::new(),
            }),
            shared,
            dp: std::sync::Mutex::new(dp),
            counters,
            netlink,
            links,
        }
    }

    /// Accepts connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let me = self.clone();
                    tokio::spawn(async move { me.connection(stream).await });
                }
                Err(e) => {
                    eprintln!("uvs: control socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn connection(&self, stream: UnixStream) {
        let (r, mut w) = stream.into_split();
        let mut line = String::new();
        let mut reader = BufReader::new(r.take(MAX_REQUEST));
        let resp = match reader.read_line(&mut line).await {
            Err(e) => Response::Error {
                index: None,
                message: format!("bad request: {e}"),
            },
            Ok(_) => match serde_json::from_str::<Request>(&line) {
                Err(e) => Response::Error {
                    index: None,
                    message: format!("bad request: {e}"),
                },
                Ok(req) => self.handle(req).await,
            },
        };
        let mut out = serde_json::to_string(&resp).unwrap_or_else(|_| "\"Ok\"".into());
        out.push('\n');
        let _ = w.write_all(out.as_bytes()).await;
    }

    pub async fn handle(&self, req: Request) -> Response {
        match req {
            Request::Apply(ops) => match self.apply(&ops).await {
                Ok(()) => Response::Ok,
                Err((index, e)) => Response::Error {
                    index: Some(index),
                    message: e.to_string(),
                },
            },
            Request::Snapshot => Response::Snapshot(self.state.lock().await.model.snapshot()),
            Request::Conns => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let sent = self
                    .dp
                    .lock()
                    .map(|d| d.send(DpRequest::Conns(tx)).is_ok())
                    .unwrap_or(false);
                if !sent {
                    return Response::Error {
                        index: None,
                        message: "the data plane is not running".into(),
                    };
                }
                match tokio::time::timeout(Duration::from_secs(5), rx).await {
                    Ok(Ok(c)) => Response::Conns(c),
                    _ => Response::Error {
                        index: None,
                        message: "the data plane did not answer".into(),
                    },
                }
            }
            Request::Status => Response::Status(
                self.counters
                    .pairs()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ),
        }
    }

    /// All or nothing: a dry run finds semantic errors first, then host
    /// checks and MAC lookups run, then the ops are applied for real to a
    /// copy that replaces the model and is published.
    async fn apply(&self, ops: &[Op]) -> Result<(), (usize, OpError)> {
        let mut st = self.state.lock().await;
        let mut needs: Vec<(usize, Need)> = Vec::new();
        st.model
            .apply_all(ops, &mut |_, _| Ok(NO_HOP), &mut |i, n| needs.push((i, n)))?;
        let mut macs: HashMap<(Ipv4Addr, Forward), NextHop> = HashMap::new();
        let mut locals: Option<Vec<(Ipv4Addr, u32)>> = None;
        for (i, need) in needs {
            match need {
                Need::VipNotLocal(vip) => {
                    if locals.is_none() {
                        locals = Some(
                            self.netlink
                                .addresses()
                                .await
                                .map_err(|e| (i, OpError::Host(e)))?,
                        );
                    }
                    if let Some((_, idx)) = locals.iter().flatten().find(|(a, _)| *a == vip) {
                        let dev = self.netlink.link_name(*idx).await;
                        return Err((
                            i,
                            OpError::Host(format!(
                                "VIP {vip} is configured on the director ({dev}): the kernel would answer \
                                 and reset its traffic. uvs answers ARP for the VIP itself; remove it with \
                                 `ip addr del {vip}/32 dev {dev}` (use the address's real prefix)"
                            )),
                        ));
                    }
                }
                Need::Mac(ip, fwd) => {
                    if let std::collections::hash_map::Entry::Vacant(e) = macs.entry((ip, fwd)) {
                        let r = self.netlink.resolve_mac(ip, fwd, &self.links).await;
                        e.insert(r.map_err(|m| (i, OpError::Host(m)))?);
                    }
                }
            }
        }
        let new = st.model.apply_all(
            ops,
            &mut |ip, f| {
                macs.get(&(ip, f))
                    .copied()
                    .ok_or_else(|| OpError::Host(format!("no MAC for {ip}")))
            },
            &mut |_, _| {},
        )?;
        let nat_before = st.model.has_masq();
        st.model = new;
        if !nat_before && st.model.has_masq() {
            // NAT replies need the gateways' MACs: resolve them now rather
            // than at the next refresh.
            st.routes = self.link_routes().await;
        }
        st.publish(&self.shared);
        Ok(())
    }

    /// Drives the --rate estimators every 2 s, as the kernel does.
    pub async fn estimate_rates(self: Arc<Self>) {
        let period = Duration::from_secs(crate::stats::ESTIMATOR_PERIOD_SECS);
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
                // DR sends to the server itself on its link; TUN and NAT to
                // the next hop, which only the route knows.
                let (hop, oif) = match fwd {
                    Forward::Route => match self.links.get(usize::from(link)) {
                        Some((index, _)) => (a, *index),
                        None => continue,
                    },
                    Forward::Tunnel | Forward::Masq => {
                        let Ok(RouteInfo {
                            oif: Some(oif),
                            gateway,
                            ..
                        }) = self.netlink.route_get(a).await
                        else {
                            continue;
                        };
                        (gateway.unwrap_or(a), oif)
                    }
                };
                if let Ok(Some(m)) = self.netlink.neighbour(hop, oif).await {
                    found.push((a, fwd, m));
                }
            }
            let routes = match nat {
                true => self.link_routes().await,
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
                st.publish(&self.shared);
            }
            drop(st);
            tokio::time::sleep(every).await;
        }
    }

    /// The kernel's main-table routes that leave through a director link,
    /// with their gateways' MACs from the neighbour table (asking the kernel
    /// to resolve missing ones). Only NAT replies use them.
    async fn link_routes(&self) -> Vec<LinkRoute> {
        let Ok(routes) = self.netlink.routes().await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (r, oif) in routes {
            let Some(link) = self.links.iter().position(|(i, _)| *i == oif) else {
                continue;
            };
            let Some((net, prefix)) = parse_prefix(&r.dst) else {
                continue;
            };
            let gateway_mac = match r.gateway {
                None => None,
                Some(gw) => {
                    let what = format!("the gateway {gw} of route {}", r.dst);
                    let name = &self.links[link].1;
                    self.netlink
                        .resolve_neighbour(gw, &what, oif, name)
                        .await
                        .ok()
                }
            };
            out.push(LinkRoute {
                net,
                prefix,
                link: link as u8,
                gateway_mac,
            });
        }
        out.sort_by_key(|r| (std::cmp::Reverse(r.prefix), u32::from(r.net), r.link));
        out
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
            for (id, addr, port, link, inpkts, outpkts) in dests {
                seen.insert(id, (inpkts, outpkts));
                let Some(&(in0, out0)) = last.get(&id) else {
                    continue;
                };
                if outpkts > out0 {
                    warned.remove(&id);
                } else if inpkts >= in0 + 3 && warned.insert(id) {
                    let ours = self.link_address(link).await;
                    eprintln!(
                        "uvs: warning: NAT real server {addr}:{port} got {} packets in {} s but none of its \
                         replies came back through the director. Either it is not answering at all, or its \
                         route back to the clients does not go through the director, so clients drop the \
                         answers. Make the director its gateway \
                         (on the real server: `ip route replace default via {ours}`), or check with \
                         `uvs audit --mode nat --director {ours}` there",
                        inpkts - in0,
                        every.as_secs()
                    );
                }
            }
            last = seen;
        }
    }
}

impl Control {
    /// The director's first address on `link`, or words naming the link,
    /// for messages.
    async fn link_address(&self, link: u8) -> String {
        let Some((index, name)) = self.links.get(usize::from(link)) else {
            return "this director's address".into();
        };
        let addrs = self.netlink.addresses().await.unwrap_or_default();
        match addrs.iter().find(|(_, i)| i == index) {
            Some((a, _)) => a.to_string(),
            None => format!("this director's address on {name}"),
        }
    }
}

/// "default" or "a.b.c.d/len" as a network and prefix length.
fn parse_prefix(dst: &str) -> Option<(Ipv4Addr, u8)> {
    if dst == "default" {
        return Some((Ipv4Addr::UNSPECIFIED, 0));
    }
    let (a, l) = dst.split_once('/').unwrap_or((dst, "32"));
    let prefix: u8 = l.parse().ok().filter(|p| *p <= 32)?;
    Some((a.parse().ok()?, prefix))
}

/// Placeholder next hop for the dry run, which only collects what to look
/// up.
const NO_HOP: NextHop = NextHop {
    link: 0,
    mac: MacAddr::ZERO,
};

#[cfg(test)]
mod tests {
    use super::parse_prefix;
    use std::net::Ipv4Addr;

    #[test]
    fn route_destinations_parse_or_are_skipped() {
        assert_eq!(parse_prefix("default"), Some((Ipv4Addr::UNSPECIFIED, 0)));
        assert_eq!(
            parse_prefix("198.18.0.0/24"),
            Some((Ipv4Addr::new(198, 18, 0, 0), 24))
        );
        assert_eq!(
            parse_prefix("198.18.0.9"),
            Some((Ipv4Addr::new(198, 18, 0, 9), 32))
        );
        for bad in ["198.18.0.0/33", "198.18.0.0/x", "fe80::/64", "", "/8"] {
            assert_eq!(parse_prefix(bad), None, "{bad}");
        }
    }
}
