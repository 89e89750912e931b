//! `uvs director` assembled: the checks before start, the control socket,
//! the data-plane thread over AF_PACKET, and the control plane's tasks on
//! a single-threaded runtime, until SIGINT or SIGTERM.

use crate::control::publish::Publisher;
use crate::control::server::Control;
use crate::dataplane::{Dataplane, LinkParams};
use crate::host::netlink::Netlink;
use crate::host::sys;
use crate::io::afpacket::AfPacketLinks;
use crate::lvs::stats::DataplaneCounters;
use crate::wire::MacAddr;
use std::net::Ipv4Addr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What `uvs director` is started with.
pub struct Options {
    pub interfaces: Vec<String>,
    pub socket: PathBuf,
    /// Outer source of tunnelled packets; default: the first interface's
    /// first IPv4 address.
    pub tun_source: Option<Ipv4Addr>,
}

/// The kernel must stay quiet about VIP traffic: with forwarding on it
/// would route (or redirect) the very frames uvs forwards, and in NAT it
/// would also pass real servers' replies on untranslated.
fn preflight(ifname: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding");
    let v = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if v.trim() != "0" {
        return Err(format!(
            "IP forwarding is on for {ifname} ({path} = {}): the kernel would forward VIP traffic \
             alongside uvs. Turn it off with `sysctl -w net.ipv4.conf.{ifname}.forwarding=0` \
             (or net.ipv4.ip_forward=0) and start again",
            v.trim()
        ));
    }
    Ok(())
}

/// The control socket, mode 0600; a stale socket of a daemon that is gone
/// is replaced, a live one refuses the start.
fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another uvs daemon is already listening on {}",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
    }
    let l = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(l)
}

/// Runs the director until SIGINT or SIGTERM.
pub fn run(o: &Options) -> Result<(), String> {
    let ifnames = &o.interfaces;
    let mut indexes = Vec::new();
    for (i, name) in ifnames.iter().enumerate() {
        let idx = sys::ifindex(name).map_err(|e| e.to_string())? as u32;
        if ifnames[..i].contains(name) {
            return Err(format!("--interface {name} is given twice"));
        }
        preflight(name)?;
        indexes.push(idx);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    // The netlink connection's task lives on this runtime for the daemon's
    // whole life.
    let netlink = rt.block_on(async { Netlink::new() })?;
    let mut links = Vec::new();
    for (name, idx) in ifnames.iter().zip(&indexes) {
        let (mac, mtu) = sys::link_info(name).map_err(|e| e.to_string())?;
        let addr = rt.block_on(netlink.first_address(*idx));
        links.push(LinkParams {
            mac: MacAddr(mac),
            mtu,
            addr: addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
        });
    }
    let tun_source = o
        .tun_source
        .or_else(|| Some(links[0].addr).filter(|a| !a.is_unspecified()));
    let mut io = AfPacketLinks::open(ifnames).map_err(|e| format!("cannot capture on {e}"))?;
    let listener = bind_socket(&o.socket)?;

    let publisher = Publisher::new();
    let shared = publisher.shared();
    let counters = Arc::new(DataplaneCounters::default());
    let (dp_tx, dp_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let described: Vec<String> = ifnames
        .iter()
        .zip(&links)
        .map(|(n, l)| format!("{n} ({}, mtu {})", l.mac, l.mtu))
        .collect();
    let dp_thread = {
        let (counters, stop) = (counters.clone(), stop.clone());
        std::thread::Builder::new()
            .name("uvs-dataplane".into())
            .spawn(move || {
                let mut dp = Dataplane::with_links(shared, links, counters, Some(dp_rx));
                dp.run(&mut io, &stop);
            })
            .map_err(|e| e.to_string())?
    };

    let result = rt.block_on(async {
        let named = indexes.iter().copied().zip(ifnames.iter().cloned());
        let control = Arc::new(Control::new(
            publisher,
            dp_tx,
            counters,
            netlink,
            named.collect(),
            tun_source,
        ));
        let listener = tokio::net::UnixListener::from_std(listener).map_err(|e| e.to_string())?;
        eprintln!(
            "uvs: director on {}, control socket {}",
            described.join(", "),
            o.socket.display()
        );
        tokio::spawn(control.clone().serve(listener));
        tokio::spawn(control.clone().estimate_rates());
        tokio::spawn(control.clone().watch_nat_replies(Duration::from_secs(3)));
        tokio::spawn(control.refresh_neighbours(Duration::from_secs(5)));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), String>(())
    });
    stop.store(true, Ordering::Relaxed);
    let _ = dp_thread.join();
    let _ = std::fs::remove_file(&o.socket);
    eprintln!("uvs: stopped");
    result
}
