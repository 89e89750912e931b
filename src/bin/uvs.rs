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
use uvs::io::afpacket::{self, AfPacketLinks};
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
    /// Run the director on one or more interfaces (configure it with
    /// uvsadm).
    Director {
        /// Interface that receives VIP traffic or reaches real servers;
        /// repeat it for a two-armed director (clients on one, NAT real
        /// servers on another).
        #[arg(long, short = 'i', required = true)]
        interface: Vec<String>,
        /// Control socket for uvsadm.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Outer source address for tunnelled (-i) real servers; default:
        /// the first interface's first IPv4 address.
        #[arg(long)]
        tun_source: Option<std::net::Ipv4Addr>,
        /// Refused with an explanation: the MSS that limits tunnelled
        /// uploads is the real server's, set there (see `uvs audit`).
        #[arg(long, hide = true)]
        tun_mss_clamp: Option<String>,
    },
    /// Check a real server's (or the director's) sysctls and addresses
    /// for the mistakes that silently break LVS, with the fix for each.
    /// Exit status: 0 all good, 1 warnings, 2 failures, 3 could not audit.
    Audit(AuditArgs),
    /// Real-server side of TUN without the kernel's ipip module: receive
    /// IP-in-IP packets on a raw socket and inject the inner packets into
    /// the local stack through a TUN device.
    Decap {
        /// Name of the TUN device to create.
        #[arg(long, default_value = "uvs-decap0")]
        device: String,
    },
    /// Find out whether DR and TUN can reach a real server: run
    /// `--responder` on the real server, then `--to RIP --vip VIP` on the
    /// director. Exit status: 0 the method (--method, or either) works,
    /// 1 it does not, 3 the probe could not run.
    Probe(ProbeArgs),
    /// Print the data plane's counters (drops, checksum fixes, GSO).
    Status {
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

#[derive(clap::Args)]
struct ProbeArgs {
    /// Run the real-server side: report which probes arrive.
    #[arg(long, conflicts_with_all = ["to", "vip", "method", "json"])]
    responder: bool,
    /// The real server to probe (its own address).
    #[arg(long, required_unless_present = "responder")]
    to: Option<std::net::Ipv4Addr>,
    /// The virtual IP the real server serves.
    #[arg(long, required_unless_present = "responder")]
    vip: Option<std::net::Ipv4Addr>,
    /// Interface to send on (default: the one the route to --to uses).
    #[arg(long)]
    interface: Option<String>,
    /// The director's address (default: the interface's first IPv4).
    #[arg(long)]
    source: Option<std::net::Ipv4Addr>,
    /// Source address that stands for a client in the DR and TUN cases.
    #[arg(long, default_value_t = uvs::probe::DEFAULT_CLIENT)]
    client: std::net::Ipv4Addr,
    /// Responder's TCP control port; probes use UDP port + 1.
    #[arg(long, default_value_t = uvs::probe::DEFAULT_PORT)]
    port: u16,
    /// The method the exit status is about (default: either).
    #[arg(long, value_enum)]
    method: Option<MethodArg>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum MethodArg {
    Dr,
    Tun,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum ModeArg {
    Dr,
    Tun,
    Nat,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum RoleArg {
    RealServer,
    Director,
}

#[derive(clap::Args)]
struct AuditArgs {
    /// Forwarding method the host is (or will be) used with.
    #[arg(long, value_enum)]
    mode: ModeArg,
    /// Virtual IP(s) served (repeat for several).
    #[arg(long = "vip")]
    vips: Vec<std::net::Ipv4Addr>,
    #[arg(long, value_enum, default_value = "real-server")]
    role: RoleArg,
    /// Director: the capture interface (default: every interface in use).
    #[arg(long)]
    interface: Option<String>,
    /// NAT: the director's address, which must be the real server's gateway.
    #[arg(long = "director")]
    director_addr: Option<std::net::Ipv4Addr>,
    /// Apply the sysctl fixes now and persist them in --sysctl-file.
    #[arg(long)]
    fix: bool,
    /// Do not ask before applying fixes.
    #[arg(long)]
    yes: bool,
    /// With --fix: also apply address changes (otherwise printed only).
    #[arg(long)]
    fix_addresses: bool,
    #[arg(long, default_value = "/etc/sysctl.d/90-uvs.conf")]
    sysctl_file: PathBuf,
    /// Audit a remote host over the system ssh client (read-only).
    #[arg(long, conflicts_with = "from_dump")]
    ssh: Option<String>,
    /// Audit saved `sysctl -a` (sysctl.txt) and `ip -j addr` (addr.json)
    /// output, plus optional `ip -j route` (route.json).
    #[arg(long)]
    from_dump: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Command::Audit(a) => return audit(&a),
        Command::Probe(p) => return probe(&p),
        Command::Director {
            tun_mss_clamp: Some(_),
            ..
        } => Err(TUN_MSS_CLAMP.to_string()),
        Command::Director {
            interface,
            socket,
            tun_source,
            tun_mss_clamp: None,
        } => director(&interface, &socket, tun_source),
        Command::Status { socket } => status(&socket),
        Command::Decap { device } => uvs::decap::run(&device),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uvs: {e}");
            ExitCode::FAILURE
        }
    }
}

const TUN_MSS_CLAMP: &str = "--tun-mss-clamp: the director cannot clamp the MSS that matters for TUN. \
Clients size their segments by the MSS in the real server's SYN-ACK, which goes straight to them and \
never passes the director; clamping the clients' SYNs would only shrink the server's replies, which do \
not cross the tunnel. Set it on each real server instead: `uvs audit --mode tun --vip VIP` there prints \
the `ip route change ... advmss` command (MTU - 60, 1440 for 1500). Without it uploads still work: \
uvs sends clients \"fragmentation needed\" (MTU - 20) as IPVS does";

fn audit_once(a: &AuditArgs) -> Result<(uvs::audit::HostState, Vec<uvs::audit::Finding>), String> {
    use uvs::audit::{self, Mode, Options, source};
    let h = match (&a.ssh, &a.from_dump) {
        (Some(t), _) => source::from_ssh(t)?,
        (_, Some(d)) => source::from_dump(d)?,
        _ => source::live()?,
    };
    let o = Options {
        mode: match a.mode {
            ModeArg::Dr => Mode::Dr,
            ModeArg::Tun => Mode::Tun,
            ModeArg::Nat => Mode::Nat,
        },
        vips: a.vips.clone(),
        director: a.role == RoleArg::Director,
        interface: a.interface.clone(),
        director_addr: a.director_addr,
    };
    let f = audit::audit(&h, &o);
    Ok((h, f))
}

fn print_audit(a: &AuditArgs, h: &uvs::audit::HostState, f: &[uvs::audit::Finding]) {
    if a.json {
        let v = serde_json::json!({
            "source": h.source,
            "findings": f,
            "exit": uvs::audit::exit_code(f),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", uvs::audit::render(h, f));
    }
}

fn audit(a: &AuditArgs) -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    use uvs::audit::fix;
    if a.vips.is_empty() && a.mode != ModeArg::Nat && a.role == RoleArg::RealServer {
        eprintln!("uvs audit: give the VIP(s) with --vip ADDR");
        return ExitCode::from(3);
    }
    let (h, f) = match audit_once(a) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("uvs audit: {e}");
            return ExitCode::from(3);
        }
    };
    print_audit(a, &h, &f);
    if !a.fix {
        return ExitCode::from(uvs::audit::exit_code(&f));
    }
    if a.ssh.is_some() || a.from_dump.is_some() {
        eprintln!(
            "uvs audit: --fix changes this host only; run `uvs audit --fix` on the host itself"
        );
        return ExitCode::from(3);
    }
    let plan = fix::plan(&f);
    if plan.sysctls.is_empty() && (plan.addresses.is_empty() || !a.fix_addresses) {
        for c in plan.addresses.iter().chain(&plan.manual) {
            println!("to do by hand: {c}");
        }
        println!("nothing to fix automatically");
        return ExitCode::from(uvs::audit::exit_code(&f));
    }
    let old = std::fs::read_to_string(&a.sysctl_file).unwrap_or_default();
    let new = fix::merged_file(&old, &plan.sysctls);
    println!("\nplanned changes:");
    for (k, v) in &plan.sysctls {
        println!("  sysctl -w {k}={v}");
    }
    if a.fix_addresses {
        for c in &plan.addresses {
            println!("  {c}");
        }
    }
    if !plan.sysctls.is_empty() {
        println!("{}:\n{}", a.sysctl_file.display(), fix::diff(&old, &new));
    }
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("uvs audit: not changing anything without --yes when not interactive");
            return ExitCode::from(3);
        }
        print!("apply? [y/N] ");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let mut ans = String::new();
        let _ = std::io::stdin().lock().read_line(&mut ans);
        if !matches!(ans.trim(), "y" | "Y" | "yes") {
            println!("nothing changed");
            return ExitCode::from(uvs::audit::exit_code(&f));
        }
    }
    let applied = fix::apply_sysctls(&plan.sysctls)
        .and_then(|_| {
            if plan.sysctls.is_empty() {
                Ok(())
            } else {
                fix::write_file(&a.sysctl_file, &new)
            }
        })
        .and_then(|_| {
            if a.fix_addresses {
                fix::apply_addresses(&plan.addresses)
            } else {
                Ok(())
            }
        });
    if let Err(e) = applied {
        eprintln!("uvs audit: {e}");
        return ExitCode::from(3);
    }
    if !a.fix_addresses {
        for c in &plan.addresses {
            println!("address change not applied (use --fix-addresses): {c}");
        }
    }
    for c in &plan.manual {
        println!("to do by hand: {c}");
    }
    println!("\nafter the fixes:");
    match audit_once(a) {
        Ok((h, f)) => {
            print_audit(a, &h, &f);
            ExitCode::from(uvs::audit::exit_code(&f))
        }
        Err(e) => {
            eprintln!("uvs audit: {e}");
            ExitCode::from(3)
        }
    }
}

fn probe(p: &ProbeArgs) -> ExitCode {
    use uvs::probe::{Method, render, responder, sender};
    if p.responder {
        return match responder::run(p.port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("uvs probe: {e}");
                ExitCode::from(3)
            }
        };
    }
    let (Some(rip), Some(vip)) = (p.to, p.vip) else {
        eprintln!("uvs probe: give --to RIP and --vip VIP (or --responder)");
        return ExitCode::from(3);
    };
    let o = sender::Options {
        rip,
        vip,
        interface: p.interface.clone(),
        source: p.source,
        client: p.client,
        port: p.port,
    };
    let run = match sender::run(&o) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("uvs probe: {e}");
            return ExitCode::from(3);
        }
    };
    let method = p.method.map(|m| match m {
        MethodArg::Dr => Method::Dr,
        MethodArg::Tun => Method::Tun,
    });
    let works = run.works(method);
    if p.json {
        let mut v = serde_json::to_value(&run).unwrap_or_default();
        v["method"] = serde_json::to_value(method).unwrap_or_default();
        v["works"] = works.into();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "probing real server {} for VIP {} from {} on {} (client stand-in {})\n",
            run.real_server, run.vip, run.director, run.interface, run.client
        );
        print!("{}", render(&run.outcomes, &run.verdict));
    }
    if works {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
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

fn director(
    ifnames: &[String],
    socket: &Path,
    tun_source: Option<std::net::Ipv4Addr>,
) -> Result<(), String> {
    let mut indexes = Vec::new();
    for (i, name) in ifnames.iter().enumerate() {
        let idx = afpacket::ifindex(name).map_err(|e| e.to_string())? as u32;
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
    let addrs = rt.block_on(netlink.addresses())?;
    let first_addr = |idx: u32| addrs.iter().find(|(_, i)| *i == idx).map(|(a, _)| *a);
    let mut links = Vec::new();
    for (name, idx) in ifnames.iter().zip(&indexes) {
        let (mac, mtu) = afpacket::link_info(name).map_err(|e| e.to_string())?;
        links.push(LinkParams {
            mac: MacAddr(mac),
            mtu,
            addr: first_addr(*idx).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        });
    }
    let tun_source = tun_source.or_else(|| first_addr(indexes[0]));
    let mut io = AfPacketLinks::open(ifnames).map_err(|e| format!("cannot capture on {e}"))?;
    let listener = bind_socket(socket)?;

    let shared = Arc::new(ArcSwap::from_pointee(Table::default()));
    let counters = Arc::new(DataplaneCounters::default());
    let (dp_tx, dp_rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let described: Vec<String> = ifnames
        .iter()
        .zip(&links)
        .map(|(n, l)| format!("{n} ({}, mtu {})", l.mac, l.mtu))
        .collect();
    let dp_thread = {
        let (shared, counters, stop) = (shared.clone(), counters.clone(), stop.clone());
        std::thread::Builder::new()
            .name("uvs-dataplane".into())
            .spawn(move || {
                let mut dp = Dataplane::with_links(shared, links, counters, Some(dp_rx));
                dp.run(&mut io, &stop);
            })
            .map_err(|e| e.to_string())?
    };

    let result = rt.block_on(async {
        let control = Arc::new(Control::new(
            shared,
            dp_tx,
            counters,
            netlink,
            indexes
                .iter()
                .copied()
                .zip(ifnames.iter().cloned())
                .collect(),
            tun_source,
        ));
        let listener = tokio::net::UnixListener::from_std(listener).map_err(|e| e.to_string())?;
        eprintln!(
            "uvs: director on {}, control socket {}",
            described.join(", "),
            socket.display()
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
    let _ = std::fs::remove_file(socket);
    eprintln!("uvs: stopped");
    result
}
