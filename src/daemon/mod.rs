//! `uvs director` assembled: the checks before start, the control socket,
//! the data-plane thread over AF_PACKET, and the control plane's tasks on
//! a single-threaded runtime, until SIGINT or SIGTERM.

mod backends;
mod error;
mod host;
mod options;

pub use error::Error;
pub use options::{Options, read_key_file};

use crate::admin::client;
use crate::config;
use crate::config::settings::Announce;
use crate::control::proto::{HandoffState, Request, Response};
use crate::control::publish::Publisher;
use crate::control::server::{Control, Queues};
use crate::control::workers::Workers;
use crate::dataplane::conn_table::ConnTable;
use crate::dataplane::{Dataplane, LinkParams};
use crate::host::netlink::Netlink;
use crate::host::{notify, sys};
use crate::io::PacketIo;
use crate::lvs::conn::PortableConn;
use crate::lvs::stats::DataplaneCounters;
use crate::wire::MacAddr;
use backends::open_workers_io;
use host::{
    bind_socket, check_link, lock_interfaces, preflight, remove_socket, retry, watch_links,
};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How the director stopped.
enum Stopped {
    /// A signal.
    Asked,
    /// Its table went to a successor (`--takeover`), which owns the
    /// control socket's path now.
    HandedOver,
}

/// A takeover with a config file of no services while the running
/// director has some is refused before anything is handed over (the
/// running director goes on): the file would be what reloads compare
/// with from then on, and an empty one is most likely a truncated write.
/// A director that does not answer is left to `request_handoff` to
/// report.
fn refuse_empty_takeover(o: &Options) -> Result<(), Error> {
    let Some((path, _)) = o.config.as_ref().filter(|(_, c)| c.services.is_empty()) else {
        return Ok(());
    };
    let Ok(Response::Snapshot(snap)) = client::call(&o.socket, &Request::Snapshot) else {
        return Ok(());
    };
    if snap.services.is_empty() {
        return Ok(());
    }
    Err(Error::EmptyTakeover {
        path: path.clone(),
        services: snap.services.len(),
        reals: snap.services.iter().map(|s| s.dests.len()).sum(),
    })
}

/// Asks the director on `socket` for its table and connections; it
/// stops forwarding as it answers.
fn request_handoff(socket: &Path) -> Result<HandoffState, Error> {
    match client::call(socket, &Request::Handoff) {
        Ok(Response::Handoff(h)) => Ok(*h),
        Ok(Response::Error { message, .. }) => Err(Error::TakeoverRefused(message)),
        Ok(_) => Err(Error::TakeoverAnswer),
        Err(e) => Err(Error::Takeover(e)),
    }
}

/// Runs the director until SIGINT or SIGTERM (or until one of its
/// interfaces disappears, which is an error).
pub fn run(o: &Options) -> Result<(), Error> {
    let ifnames = &o.interfaces;
    let mut indexes = Vec::new();
    for (i, name) in ifnames.iter().enumerate() {
        let idx = sys::ifindex(name)? as u32;
        if ifnames[..i].contains(name) {
            return Err(Error::InterfaceTwice(name.clone()));
        }
        preflight(name)?;
        indexes.push(idx);
    }
    // A planned restart: the running director hands its table over and
    // stops; its interface locks come free a moment later.
    let handoff = match o.takeover {
        false => None,
        true => {
            if !o.force {
                refuse_empty_takeover(o)?;
            }
            Some(request_handoff(&o.socket)?)
        }
    };
    let locks = lock_interfaces(ifnames, &indexes, handoff.is_some())?;
    for name in ifnames {
        check_link(name)?;
    }
    // Before anything is captured: a daemon already on this socket means
    // this start is a mistake.
    // After a handoff the old director may still be closing its listeners.
    let listener = retry(
        Duration::from_secs(5),
        || bind_socket(&o.socket),
        |e| handoff.is_some() && matches!(e, Error::AlreadyListening(_)),
    )?;
    let ours = {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&o.socket)
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    let metrics = o.metrics.map(|addr| {
        let again = |e: &Error| handoff.is_some() && is_in_use(e);
        retry(Duration::from_secs(5), || bind_metrics(addr), again)
    });
    let r = match metrics.transpose() {
        Ok(metrics) => serve(o, &indexes, locks, (listener, metrics), handoff),
        Err(e) => Err(e),
    };
    // After a handoff the path is the successor's: its socket may even
    // have our old socket's inode number, so it is not even looked at.
    if !matches!(r, Ok(Stopped::HandedOver)) {
        remove_socket(&o.socket, ours);
    }
    r.map(|_| ())
}

/// The director once its socket is bound: the data plane's thread and the
/// control plane's tasks, until a signal or a vanished interface.
fn serve(
    o: &Options,
    indexes: &[u32],
    locks: Vec<UnixListener>,
    (listener, metrics): (UnixListener, Option<std::net::TcpListener>),
    handoff: Option<HandoffState>,
) -> Result<Stopped, Error> {
    let ifnames = &o.interfaces;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Held until the director ends: BIRD's routes to the VIPs go through
    // it, so they go when this process does, however it ends.
    let _tether = match &o.bgp {
        Some(b) => Some(
            rt.block_on(crate::control::bgp::tether(b, handoff.is_none()))
                .map_err(Error::Tether)?,
        ),
        None => None,
    };
    // The netlink connection's task lives on this runtime for the daemon's
    // whole life.
    let netlink = rt.block_on(async { Netlink::new() })?;
    let mut links = Vec::new();
    for (name, idx) in ifnames.iter().zip(indexes) {
        let (mac, mtu) = sys::link_info(name)?;
        let addr = rt.block_on(netlink.first_address(*idx));
        let addr6 = rt.block_on(netlink.first_address6(*idx));
        links.push(LinkParams {
            mac: MacAddr(mac),
            mtu,
            addr: addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            addr6: addr6.unwrap_or(std::net::Ipv6Addr::UNSPECIFIED),
        });
    }
    let tun_source = o
        .tun_source
        .or_else(|| Some(links[0].addr).filter(|a| !a.is_unspecified()));
    let tun_source6 = match o.tun_source6 {
        Some(a) => Some(a),
        None => rt.block_on(first_address6(&netlink, indexes[0])),
    };
    let macs: Vec<[u8; 6]> = links.iter().map(|l| l.mac.0).collect();
    let workers = o.workers;
    if let Some(rule) = &o.workers_rule {
        tracing::info!("{rule}");
    }
    let (ios, steering, fanout) = open_workers_io(
        o.io,
        workers,
        ifnames,
        &macs,
        (o.offload, o.xdp_peer_program),
    )?;

    let steering_present = steering.is_some();
    let mut publisher = Publisher::new();
    if let Some(s) = steering {
        publisher.set_steering(s);
    }
    if let Some(f) = fanout {
        publisher.set_fanout(f);
    }
    let shared = publisher.shared();
    let stop = Arc::new(AtomicBool::new(false));
    let described: Vec<String> = ifnames
        .iter()
        .zip(&links)
        .map(|(n, l)| format!("{n} ({}, mtu {})", l.mac, l.mtu))
        .collect();
    let max_conns = o.max_conns;
    let takes_over = handoff.is_some();
    // Only the XDP or tc program can take flows: without one (said above)
    // the data plane does not try.
    let offload = o.offload.is_on() && steering_present;
    // One thread per worker, each with its share of the connection table
    // (the first takes what does not divide), its request channel, its
    // counters, its HA sync queue and its part of a handed-over table.
    let mut txs = Vec::new();
    let mut counters = Vec::new();
    let mut sync_rxs = Vec::new();
    let mut import_txs = Vec::new();
    let mut wakes = Vec::new();
    let mut threads = Vec::new();
    let tap = Arc::new(crate::lvs::trace::TraceTap::default());
    for (w, mut io) in ios.into_iter().enumerate() {
        let share = max_conns / workers + if w == 0 { max_conns % workers } else { 0 };
        let (dp_tx, dp_rx) = std::sync::mpsc::channel();
        txs.push(dp_tx);
        let wake = Arc::new(sys::Wake::new().map_err(Error::Eventfd)?);
        io.wake_on(wake.fd());
        wakes.push(wake.clone());
        let c = Arc::new(DataplaneCounters::default());
        counters.push(c.clone());
        let sync_tx = match o.ha.is_some() {
            true => {
                let (tx, rx) = std::sync::mpsc::sync_channel(crate::lvs::sync::QUEUE);
                sync_rxs.push(rx);
                Some(tx)
            }
            false => None,
        };
        // Handed-over connections reach the data plane once their table
        // is published.
        let (import_tx, import_rx) = std::sync::mpsc::channel::<Vec<PortableConn>>();
        import_txs.push(import_tx);
        let (shared, links, stop) = (shared.clone(), links.clone(), stop.clone());
        let tap = tap.clone();
        let routed = o.announce == Announce::Routed;
        let name = match workers {
            1 => "uvs-dataplane".to_string(),
            _ => format!("uvs-worker{w}"),
        };
        let t = std::thread::Builder::new().name(name).spawn(move || {
            let mut dp = Dataplane::with_links(shared, links, c, Some(dp_rx), share);
            dp.set_worker(w);
            dp.set_routed(routed);
            dp.set_offload(offload);
            dp.set_wake(wake);
            dp.set_trace(tap);
            if let Some(tx) = sync_tx {
                dp.set_sync(tx);
            }
            if takes_over && let Ok(conns) = import_rx.recv() {
                let n = dp.take_over(&mut io, &conns);
                tracing::info!("took over {n} of {} connections", conns.len());
            }
            dp.run(&mut io, &stop);
        })?;
        threads.push(t);
    }
    publisher.set_wakes(wakes.clone());
    // Each worker's loop turns (`DataplaneCounters::loops`): what
    // readiness and systemd's watchdog go by.
    let marks = counters.clone();
    let loops = move || -> Vec<u64> {
        marks
            .iter()
            .map(|c| c.loops.load(Ordering::Relaxed))
            .collect()
    };
    let dp = Workers::new(txs, wakes.clone(), counters).with_tap(tap);

    let named_links: Vec<(u32, String)> = indexes
        .iter()
        .copied()
        .zip(ifnames.iter().cloned())
        .collect();
    let result = rt.block_on(async {
        let control = Arc::new(Control::new(
            publisher,
            dp,
            netlink,
            named_links.clone(),
            (tun_source, tun_source6),
        ));
        // This director's own address of its peers' family (the tunnel
        // source's: given, or the first interface's first) sends the
        // heartbeats and the sync stream.
        let ha = o.ha.clone().map(|mut ha| {
            ha.me = match ha.me {
                IpAddr::V4(_) => tun_source.map(IpAddr::V4),
                IpAddr::V6(_) => tun_source6.map(IpAddr::V6),
            }
            .unwrap_or(ha.me);
            ha
        });
        if let Some(ha) = &ha {
            if ha.me.is_unspecified() {
                return Err(match ha.me {
                    IpAddr::V4(_) => Error::NoHeartbeatSource("IPv4", "--tun-source"),
                    IpAddr::V6(_) => Error::NoHeartbeatSource("IPv6", "--tun-source6"),
                });
            }
            control.start_standby(ha).await;
        }
        let source = o.config.clone().map(|(path, cfg)| {
            Box::new(config::FileSource::new(path, cfg)) as Box<dyn crate::control::plan::Source>
        });
        match handoff {
            Some(h) => {
                control.take_over(&h.ops, source).await?;
                // Each connection to the worker that will see its frames.
                let mut parts: Vec<Vec<PortableConn>> = vec![Vec::new(); workers];
                for c in h.conns {
                    parts[crate::io::fanout::worker_of_ip(c.caddr, c.cport, workers)].push(c);
                }
                for (tx, part) in import_txs.iter().zip(parts) {
                    let _ = tx.send(part);
                }
                let now = crate::host::unix_ms();
                tracing::info!(
                    "took over from pid {}: forwarding resumes {} ms after it stopped",
                    h.pid,
                    now.saturating_sub(h.stopped_unix_ms)
                );
            }
            // The file's table first, with every host check; a file that
            // cannot be applied stops the start.
            None => {
                if let Some(src) = source {
                    control.load_config(src).await?;
                }
            }
        }
        // Heartbeats and sync once the table has its services: a backup
        // that asked for the holder's table before its file was applied
        // dropped the connections of services it did not have yet, and
        // found out only at the digest after, one full resync later.
        if let Some(ha) = ha {
            tokio::spawn(control.clone().run_ha(ha, Queues::new(sync_rxs)));
        }
        let listener = tokio::net::UnixListener::from_std(listener)?;
        tracing::info!(
            "director on {}, control socket {}",
            described.join(", "),
            o.socket.display()
        );
        tracing::info!(
            "connection table: {}; {} (--max-conns, each family); when full, the oldest \
             one-packet or half-open entries make room",
            ConnTable::<Ipv4Addr>::limit_line(max_conns),
            ConnTable::<std::net::Ipv6Addr>::limit_line(max_conns)
        );
        tokio::spawn(control.clone().serve(listener));
        if let Some(m) = metrics {
            let m = tokio::net::TcpListener::from_std(m)?;
            if let Ok(a) = m.local_addr() {
                tracing::info!("metrics on http://{a}/metrics");
            }
            tokio::spawn(control.clone().serve_metrics(m));
        }
        for lock in locks {
            // A director that finds the lock taken connects to learn who
            // holds it: accept and drop, so the backlog never fills.
            let lock = tokio::net::UnixListener::from_std(lock)?;
            tokio::spawn(async move {
                loop {
                    if lock.accept().await.is_err() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            });
        }
        if let Some(every) = o.garp_refresh {
            tokio::spawn(control.clone().refresh_announcements(every));
        }
        tokio::spawn(control.clone().estimate_rates());
        tokio::spawn(control.clone().step_ramps());
        tokio::spawn(control.clone().watch_nat_replies(Duration::from_secs(3)));
        tokio::spawn(control.clone().resolve_pending(Duration::from_secs(1)));
        tokio::spawn(control.clone().refresh_neighbours(Duration::from_secs(5)));
        ready(&loops, &wakes, &ifnames.join(", ")).await;
        control.set_forwarding(true);
        if let Some(b) = &o.bgp {
            tokio::spawn(control.clone().run_bgp(b.clone()));
        }
        tokio::spawn(crate::control::watchdog::run(loops.clone()));
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let gone = watch_links(named_links);
        tokio::pin!(gone);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hup.recv() => match control.has_config().await {
                    false => tracing::info!(
                        "SIGHUP ignored: there is no config file to reload (the table stays as it is)"
                    ),
                    // A SIGHUP cannot carry --force: a file with no
                    // services is refused, and the log says how to apply it.
                    true => match control.reload(Default::default()).await {
                        Ok(m) => tracing::info!("SIGHUP: {}", m.text.lines().next().unwrap_or_default()),
                        Err(e) => crate::control::server::log_lines(
                            "SIGHUP: reload refused, the table stays as it is: ",
                            &e.to_string(),
                        ),
                    },
                },
                why = &mut gone => return Err(why),
                _ = control.handed_off.notified() => {
                    tracing::info!("handed over to the new director; stopped");
                    return Ok(Stopped::HandedOver);
                }
            }
        }
        // The routes go first; the data plane forwards through the drain
        // delay (`--bgp-drain-delay`).
        control.stop_announcing().await;
        Ok(Stopped::Asked)
    });
    notify::stopping();
    stop.store(true, Ordering::Relaxed);
    for w in &wakes {
        w.wake();
    }
    for t in threads {
        let _ = t.join();
    }
    tracing::info!("stopped");
    result
}

/// The metrics listener on `addr` (`--metrics`), non-blocking for tokio.
fn bind_metrics(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, Error> {
    let l = std::net::TcpListener::bind(addr).map_err(|source| Error::Metrics { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| Error::Metrics { addr, source })?;
    Ok(l)
}

/// The metrics address is still the old director's (a takeover).
fn is_in_use(e: &Error) -> bool {
    matches!(e, Error::Metrics { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
}

/// Tells systemd the director forwards (`READY=1`) once every worker's
/// loop has turned since the table was published: each turn takes the
/// newest table, so a connection sent after it is forwarded. A loop that
/// does not turn within 5 s is left to the watchdog.
async fn ready(loops: &impl Fn() -> Vec<u64>, wakes: &[Arc<sys::Wake>], links: &str) {
    if !notify::listening() {
        return;
    }
    let before = loops();
    for w in wakes {
        w.wake();
    }
    let t = std::time::Instant::now();
    while loops().iter().zip(&before).any(|(n, b)| n == b) && t.elapsed().as_secs() < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    notify::ready(&format!("forwarding on {links}"));
}

/// The first IPv6 address of link `index` that is not link-local: the
/// default outer source of IPv6 tunnels.
async fn first_address6(netlink: &Netlink, index: u32) -> Option<std::net::Ipv6Addr> {
    let addrs = netlink.addresses6().await.ok()?;
    addrs
        .iter()
        .find(|(a, i, ..)| *i == index && !a.is_unicast_link_local() && !a.is_loopback())
        .map(|(a, ..)| *a)
}
