//! The daemon's control socket. Each connection carries one JSON request
//! line and gets one JSON response line. Changes are checked against the
//! host, applied to a copy of the model, and only then published.

use super::model::{Model, Need, OpError};
use super::netlink::Netlink;
use super::proto::{Op, Request, Response};
use crate::dataplane::DpRequest;
use crate::service::Forward;
use crate::stats::DataplaneCounters;
use crate::table::Table;
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
}

pub struct Control {
    state: Mutex<State>,
    shared: Arc<ArcSwap<Table>>,
    dp: std::sync::Mutex<Sender<DpRequest>>,
    counters: Arc<DataplaneCounters>,
    netlink: Netlink,
    ifindex: u32,
    ifname: String,
}

impl Control {
    pub fn new(
        shared: Arc<ArcSwap<Table>>,
        dp: Sender<DpRequest>,
        counters: Arc<DataplaneCounters>,
        netlink: Netlink,
        ifindex: u32,
        ifname: String,
        tun_source: Option<Ipv4Addr>,
    ) -> Control {
        Control {
            state: Mutex::new(State {
                model: Model::with_tun_source(tun_source),
                generation: 0,
            }),
            shared,
            dp: std::sync::Mutex::new(dp),
            counters,
            netlink,
            ifindex,
            ifname,
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
            .apply_all(ops, &mut |_, _| Ok(MacAddr::ZERO), &mut |i, n| {
                needs.push((i, n))
            })?;
        let mut macs: HashMap<(Ipv4Addr, Forward), MacAddr> = HashMap::new();
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
                        let r = self
                            .netlink
                            .resolve_mac(ip, fwd, self.ifindex, &self.ifname)
                            .await;
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
        st.model = new;
        st.generation += 1;
        self.shared.store(Arc::new(st.model.table(st.generation)));
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
    /// hop towards one (TUN: the server itself or its router) replaced
    /// behind the same address (failover, new NIC) and announced with a
    /// gratuitous ARP is followed without operator action.
    pub async fn refresh_neighbours(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let targets = self.state.lock().await.model.dest_targets();
            let mut found = Vec::new();
            for (a, fwd) in targets {
                let hop = match fwd {
                    Forward::Tunnel => match self.netlink.route_get(a).await {
                        Ok(r) => r.gateway.unwrap_or(a),
                        Err(_) => continue,
                    },
                    _ => a,
                };
                if let Ok(Some(m)) = self.netlink.neighbour(hop, self.ifindex).await {
                    found.push((a, fwd, m));
                }
            }
            let mut st = self.state.lock().await;
            let mut changed = false;
            for (a, fwd, m) in found {
                changed |= st.model.set_mac(a, fwd, m);
            }
            if changed {
                st.generation += 1;
                self.shared.store(Arc::new(st.model.table(st.generation)));
            }
        }
    }
}
