//! `uvs`: the director daemon and its tools. This file only defines the
//! command line and dispatches; the work is in the library (`daemon`,
//! `audit::run`, `probe`, `decap`).

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use uvs::admin::client::{self, DEFAULT_SOCKET};
use uvs::control::proto::{Request, Response};

#[path = "uvs/checks.rs"]
mod checks;
use checks::{AuditArgs, ProbeArgs, audit, probe};

#[derive(Parser)]
#[command(name = "uvs", version, about = "Userspace LVS-style layer-4 director")]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

// Parsed once per run: the director's many flags cost nothing by value.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the director on one or more interfaces (configure it with a
    /// config file, uvsadm, or both).
    Director(DirectorCmd),
    /// Check a real server's (or the director's) sysctls and addresses
    /// for the mistakes that silently break LVS, with the fix for each.
    /// Exit status: 0 all good, 1 warnings, 2 failures, 3 could not audit.
    Audit(AuditArgs),
    /// The third voter of two directors (docs/ha.md): answers their keyed
    /// messages and gives its vote to one director at a time, so that
    /// when the two cannot hear each other only one holds the VIPs.
    Witness {
        /// Address (and port) to listen on, IPv4 or IPv6 ([ADDR]:PORT)
        /// [port: 5405].
        #[arg(long, value_name = "ADDR[:PORT]")]
        listen: String,
        /// A director's own address (repeat it for each).
        #[arg(long, required = true)]
        director: Vec<std::net::IpAddr>,
        /// The directors' shared secret (mode 0600).
        #[arg(long)]
        ha_key_file: PathBuf,
    },
    /// Real-server side of TUN without the kernel's tunnel devices (ipip,
    /// sit, ip6tnl): receive IPv4-in-IPv4, IPv6-in-IPv4 (protocol 41),
    /// IPv4-in-IPv6 (next header 4) and IPv6-in-IPv6 (next header 41)
    /// packets on raw sockets and inject the inner packets into the local
    /// stack through a TUN device.
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
        #[arg(long, env = "UVS_SOCKET", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON (one object, name: value) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print keepalived.conf's virtual servers as a uvs config file, with
    /// a warning (file:line) on stderr for every option not carried over.
    /// Exit status 1, with every error (file:line) and no config, when
    /// keepalived would not read the file or the director would refuse
    /// what it becomes (a duplicate, a port or address out of range).
    ImportKeepalived {
        /// keepalived.conf (its includes are followed).
        file: PathBuf,
    },
    /// The director's HA role, its peers as heard, and the heartbeat
    /// counters.
    Ha {
        #[arg(long, env = "UVS_SOCKET", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Re-read the director's config file and apply what changed,
    /// printing the services and real servers added, removed and changed;
    /// on an error nothing changes and the error (file:line:column) is
    /// printed. A file with no services, where it had some, is refused.
    Reload {
        #[arg(long, env = "UVS_SOCKET", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Apply a file with no services although the director's file had
        /// some: every service it put in goes, with its connections.
        #[arg(long)]
        force: bool,
        /// Print what the reload would change; change nothing.
        #[arg(long, alias = "check")]
        dry_run: bool,
        /// Print what changed as JSON (docs/cli.md); an error stays text
        /// on stderr.
        #[arg(long)]
        json: bool,
    },
    /// A live view: the services and real servers with their connections
    /// and rates per second, each real server's health and the HA role,
    /// redrawn in place until q or Ctrl-C. One frame when stdout is not a
    /// terminal (or with --once).
    Top {
        #[arg(long, env = "UVS_SOCKET", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Seconds between frames (fractions allowed: 0.5).
        #[arg(long, default_value = "1", value_parser = interval)]
        interval: std::time::Duration,
        /// Print one frame and exit.
        #[arg(long)]
        once: bool,
    },
    /// Drain the director, or one real server.
    ///
    /// `uvs drain`: withdraw this director's routes (BGP through BIRD:
    /// --bgp-socket) while it keeps forwarding the flows that still
    /// arrive; print progress and exit 0 once no packet for a VIP came
    /// for --quiet seconds, 1 at --timeout. `--cancel` announces the
    /// routes again.
    ///
    /// `uvs drain [-t|-u|-f] VIP:PORT RS[:PORT]`: quiesce that real server
    /// (weight 0: no new connection, its own go on), print its
    /// connections left by state each second, exit 0 once it carries none
    /// (TCP established or opening, and UDP flows while they see traffic,
    /// count; closing ones are left to expire), 1 at --timeout (it stays
    /// quiesced). `--remove` deletes it once empty.
    Drain {
        #[arg(long, env = "UVS_SOCKET", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// The service (VIP:PORT, or a mark with -f) of the real server
        /// to drain; without it the whole director drains.
        #[arg(requires = "server", conflicts_with_all = ["cancel", "quiet"])]
        service: Option<String>,
        /// The real server (ADDR, or ADDR:PORT for NAT).
        server: Option<String>,
        /// A TCP service (the default).
        #[arg(short = 't', conflicts_with_all = ["udp", "fwmark"], requires = "service")]
        tcp: bool,
        /// A UDP service.
        #[arg(short = 'u', conflicts_with = "fwmark", requires = "service")]
        udp: bool,
        /// A firewall-mark service (SERVICE is the mark).
        #[arg(short = 'f', requires = "service")]
        fwmark: bool,
        /// Delete the real server once it carries no connection.
        #[arg(long, requires = "service")]
        remove: bool,
        /// Seconds without a packet for a VIP that mean drained (the
        /// director's drain).
        #[arg(long, value_parser = interval)]
        quiet: Option<std::time::Duration>,
        /// Seconds before giving up (exit 1; the routes stay withdrawn,
        /// the real server quiesced).
        #[arg(long, default_value = "300", value_parser = interval)]
        timeout: std::time::Duration,
        /// Announce the routes again (end a drain).
        #[arg(long)]
        cancel: bool,
    },
    /// Where a flow goes and why: its connection entry, or what the
    /// scheduler would choose now (the template, each server's weight and
    /// health, the quorum); `--live` follows its frames through the data
    /// plane, each frame's verdict as it happens.
    Trace {
        #[arg(long, env = "UVS_SOCKET", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// A TCP service (the default).
        #[arg(short = 't', long = "tcp-service", conflicts_with = "udp")]
        tcp: bool,
        /// A UDP service.
        #[arg(short = 'u', long = "udp-service")]
        udp: bool,
        /// CLIENT or CLIENT:PORT ([v6]:PORT).
        client: String,
        /// VIP:PORT.
        vip: String,
        /// Follow the flow's frames for this many seconds.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3600))]
        live: Option<u32>,
        /// Print the answer (or, with --live, each verdict) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each real server's state: in service, or kept but not scheduled
    /// (its MAC does not resolve yet), with the reason and since when.
    Health {
        #[arg(long, env = "UVS_SOCKET", default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a man page or a shell completion script to standard output
    /// (for packaging: scripts/install.sh).
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        what: uvs::admin::manual::Artifact,
    },
}

#[derive(clap::Args)]
struct DirectorCmd {
    #[command(flatten)]
    settings: uvs::config::cli::DirectorArgs,
    /// Check the flags and the config file as a start would, print what
    /// would run, and exit (0: it would start; nothing is touched).
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    uvs::logging::init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Command::Audit(a) => return audit(&a),
        Command::Probe(p) => return probe(&p),
        Command::Director(d) => director(&d),
        Command::Status { socket, json } => status(&socket, json),
        Command::Generate { what } => {
            let mut out = std::io::stdout().lock();
            uvs::admin::manual::generate(what, <Cli as clap::CommandFactory>::command(), &mut out)
                .map_err(|e| format!("generate: {e}"))
        }
        Command::Health { socket, json } => health(&socket, json),
        Command::Trace {
            socket,
            tcp: _,
            udp,
            client,
            vip,
            live,
            json,
        } => uvs::admin::trace::query(udp, &client, &vip).and_then(|query| {
            uvs::admin::trace::run(&uvs::admin::trace::Options {
                socket,
                query,
                live,
                json,
            })
        }),
        Command::Drain {
            socket,
            service: Some(service),
            server: Some(server),
            udp,
            fwmark,
            remove,
            timeout,
            ..
        } => uvs::admin::quiesce::run(&uvs::admin::quiesce::Options {
            socket,
            kind: match (udp, fwmark) {
                (true, _) => "-u",
                (_, true) => "-f",
                _ => "-t",
            },
            service,
            server,
            timeout,
            remove,
        }),
        Command::Drain {
            socket,
            quiet,
            timeout,
            cancel,
            ..
        } => uvs::admin::drain::run(&uvs::admin::drain::Options {
            socket,
            quiet: quiet.unwrap_or(std::time::Duration::from_secs(5)),
            timeout,
            cancel,
        }),
        Command::Top {
            socket,
            interval,
            once,
        } => uvs::admin::top::run(&uvs::admin::top::Options {
            socket,
            interval,
            once,
        }),
        Command::ImportKeepalived { file } => match uvs::import::keepalived::import(&file) {
            Ok(i) => {
                print!("{}", i.config);
                let _ = std::io::Write::flush(&mut std::io::stdout());
                for w in &i.warnings {
                    eprintln!("uvs: warning: {w}");
                }
                Ok(())
            }
            // Every finding, then one line: no config is printed that
            // the director would refuse.
            Err(e) => {
                for w in &e.warnings {
                    eprintln!("uvs: warning: {w}");
                }
                for x in &e.errors {
                    eprintln!("uvs: error: {x}");
                }
                Err(format!(
                    "{}: {} error{}; no config printed",
                    file.display(),
                    e.errors.len(),
                    if e.errors.len() == 1 { "" } else { "s" }
                ))
            }
        },
        Command::Ha { socket, json } => match client::call(&socket, &Request::Ha) {
            Ok(Response::Ha(None)) => Err("this director has no peers (no --peer)".into()),
            Ok(Response::Ha(Some(h))) if json => {
                print!("{}", uvs::admin::format::json::to_text(&h));
                Ok(())
            }
            Ok(Response::Ha(Some(h))) => {
                print!("{}", uvs::admin::format::ha_status(&h));
                Ok(())
            }
            Ok(Response::Error { message, .. }) => Err(message),
            Ok(_) => Err("unexpected answer from the daemon".into()),
            Err(e) => Err(e.to_string()),
        },
        Command::Reload {
            socket,
            force,
            dry_run,
            json,
        } => match client::call(&socket, &reload_request(force, dry_run, json)) {
            Ok(Response::Done(m)) if !json => {
                println!("{m}");
                Ok(())
            }
            Ok(Response::Reloaded(r)) if json => {
                print!("{}", uvs::admin::format::json::to_text(&*r));
                Ok(())
            }
            Ok(Response::Done(_)) => Err("this director answers reloads in text only: \
                                          run `uvs reload` without --json"
                .into()),
            Ok(Response::Error { message, .. }) => Err(message),
            Ok(_) => Err("unexpected answer from the daemon".into()),
            Err(e) => Err(e.to_string()),
        },
        Command::Decap { device } => uvs::decap::run(&device).map_err(|e| e.to_string()),
        Command::Witness {
            listen,
            director,
            ha_key_file,
        } => uvs::config::settings::listen_addr(&listen)
            .map_err(|e| format!("--listen {listen}: {e}"))
            .and_then(|addr| {
                let key = uvs::daemon::read_key_file(&ha_key_file).map_err(|e| e.to_string())?;
                uvs::ha::witness::run(addr, &director, key).map_err(|e| e.to_string())
            }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            uvs::logging::fatal(&e);
            ExitCode::FAILURE
        }
    }
}

/// `uvs director`: its settings checked, merged with the config file's,
/// then the director run.
fn director(d: &DirectorCmd) -> Result<(), String> {
    let s = d.settings.settings().map_err(|e| e.to_string())?;
    // The log began before the settings were read: the command line's
    // format now (the config file's errors come in it), the file's once
    // it is read.
    uvs::logging::set_format(s.log_format.filter(|_| s.given.contains("log-format")));
    if s.tun_mss_clamp.is_some() {
        return Err(TUN_MSS_CLAMP.to_string());
    }
    let o = uvs::daemon::Options::build(s).map_err(|e| e.to_string())?;
    if d.check {
        println!("{}", o.summary());
        return Ok(());
    }
    uvs::logging::set_format(o.log_format);
    uvs::daemon::run(&o).map_err(|e| e.to_string())
}

const TUN_MSS_CLAMP: &str = "--tun-mss-clamp: the director cannot clamp the MSS that matters for TUN. \
Clients size their segments by the MSS in the real server's SYN-ACK, which goes straight to them and \
never passes the director; clamping the clients' SYNs would only shrink the server's replies, which do \
not cross the tunnel. Set it on each real server instead: `uvs audit --mode tun --vip VIP` there prints \
the `ip route change ... advmss` command (MTU - 60, 1440 for 1500). Without it uploads still work: \
uvs sends clients \"fragmentation needed\" (MTU - 20) as IPVS does";

/// `--interval SECS`: 0.1 to 3600 seconds.
fn interval(s: &str) -> Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=3600.0).contains(&v) => Ok(std::time::Duration::from_secs_f64(v)),
        _ => Err(format!("`{s}`: give seconds from 0.1 to 3600")),
    }
}

/// A plain reload is asked for as older daemons know it.
fn reload_request(force: bool, dry_run: bool, json: bool) -> Request {
    match force || dry_run || json {
        false => Request::Reload,
        true => Request::ReloadWith(uvs::control::proto::ReloadOptions {
            force,
            dry_run,
            json,
        }),
    }
}

fn health(socket: &Path, json: bool) -> Result<(), String> {
    match client::call(socket, &Request::Health).map_err(|e| e.to_string())? {
        Response::Health(rows) if json => {
            print!("{}", uvs::admin::format::json::to_text(&rows));
            Ok(())
        }
        Response::Health(rows) => {
            print!("{}", uvs::admin::format::list_health(&rows));
            Ok(())
        }
        Response::Error { message, .. } => Err(message),
        _ => Err("unexpected answer from the daemon".into()),
    }
}

fn status(socket: &Path, json: bool) -> Result<(), String> {
    match client::call(socket, &Request::Status).map_err(|e| e.to_string())? {
        Response::Status(pairs) if json => {
            print!("{}", uvs::admin::format::json::status(&pairs));
            Ok(())
        }
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
