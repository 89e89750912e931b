//! `uvs`: the director daemon.

use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uvs::admin::client::{self, DEFAULT_SOCKET};
use uvs::control::netlink::Netlink;
use uvs::control::proto::{Request, Response};
use uvs::control::server::Control;
use uvs::dataplane::{Dataplane, LinkParams};
use uvs::io::afpacket::{self, AfPacket};
use uvs::stats::DataplaneCounters;
use uvs::table::Table;
use uvs::wire::MacAddr;

#[derive(Parser)]
#[command(name = "uvs", version, about = "Userspace LVS-style layer-4 director")]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the director on an interface (configure it with uvsadm).
    Director {
        /// Interface that receives VIP traffic and reaches the real servers.
        #[arg(long, short = 'i')]
        interface: String,
        /// Control socket for uvsadm.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Print the data plane's counters (drops, checksum fixes, GSO).
    Status {
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Command::Director { interface, socket } => director(&interface, &socket),
        Command::Status { socket } => status(&socket),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uvs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(socket: &Path) -> Result<(), String> {
    match client::call(socket, &Request::Status)? {
        Response::Status(pairs) => {
            for (k, v) in pairs {
                println!("{k:<20} {v}");
            }
            Ok(())
        }
        Response::Error { message, .. } => Err(message),
        _ => Err("unexpected answer from the daemon".into()),
    }
}

/// The kernel must stay quiet about VIP traffic: with forwarding on it
/// would route (or redirect) the very frames uvs forwards.
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

fn bind_socket(path: &Path) -> Result<std::os::unix::net::UnixListener, String> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another uvs daemon is already listening on {}",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
    }
    let l = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(l)
}

fn director(ifname: &str, socket: &Path) -> Result<(), String> {
    let ifindex = afpacket::ifindex(ifname).map_err(|e| e.to_string())?;
    preflight(ifname)?;
    let (mac, mtu) = afpacket::link_info(ifname).map_err(|e| e.to_string())?;
    let link = LinkParams {
        mac: MacAddr(mac),
        mtu,
    };
    let mut io = AfPacket::open(ifname).map_err(|e| format!("cannot capture on {ifname}: {e}"))?;
    let listener = bind_socket(socket)?;

    let shared = Arc::new(ArcSwap::from_pointee(Table::default()));
    let counters = Arc::new(DataplaneCounters::default());
    let (dp_tx, dp_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let dp_thread = {
        let (shared, counters, stop) = (shared.clone(), counters.clone(), stop.clone());
        std::thread::Builder::new()
            .name("uvs-dataplane".into())
            .spawn(move || {
                let mut dp = Dataplane::new(shared, link, counters, Some(dp_rx));
                dp.run(&mut io, &stop);
            })
            .map_err(|e| e.to_string())?
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = rt.block_on(async {
        let netlink = Netlink::new()?;
        let control = Arc::new(Control::new(
            shared,
            dp_tx,
            counters,
            netlink,
            ifindex as u32,
            ifname.to_string(),
        ));
        let listener = tokio::net::UnixListener::from_std(listener).map_err(|e| e.to_string())?;
        eprintln!(
            "uvs: director on {ifname} ({}, mtu {mtu}), control socket {}",
            link.mac,
            socket.display()
        );
        tokio::spawn(control.clone().serve(listener));
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
    let _ = std::fs::remove_file(socket);
    eprintln!("uvs: stopped");
    result
}
