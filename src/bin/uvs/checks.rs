//! `uvs audit` and `uvs probe`: their command lines and how their results
//! become an exit status; the work is in the library (`audit::run`,
//! `probe`).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub(crate) struct ProbeArgs {
    /// Run the real-server side: report which probes arrive.
    #[arg(long, conflicts_with_all = ["to", "vip", "method", "json"])]
    responder: bool,
    /// The real server to probe (its own address, IPv4 or IPv6).
    #[arg(long, required_unless_present = "responder")]
    to: Option<std::net::IpAddr>,
    /// The virtual IP the real server serves (IPv4 or IPv6).
    #[arg(long, required_unless_present = "responder")]
    vip: Option<std::net::IpAddr>,
    /// Interface to send on (default: the one the route to --to uses).
    #[arg(long)]
    interface: Option<String>,
    /// The director's address (default: the interface's first of the
    /// real server's family).
    #[arg(long)]
    source: Option<std::net::IpAddr>,
    /// Source address that stands for a client in the DR and TUN cases
    /// (default: 192.0.2.1 for an IPv4 VIP, 2001:db8::1 for an IPv6 one).
    #[arg(long)]
    client: Option<std::net::IpAddr>,
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
pub(crate) struct AuditArgs {
    /// Forwarding method the host is (or will be) used with.
    #[arg(long, value_enum)]
    mode: ModeArg,
    /// Virtual IP(s) served, IPv4 or IPv6 (repeat for several).
    #[arg(long = "vip")]
    vips: Vec<std::net::IpAddr>,
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

pub(crate) fn audit(a: &AuditArgs) -> ExitCode {
    use uvs::audit::{Mode, Options, run};
    let r = run::Request {
        source: match (&a.ssh, &a.from_dump) {
            (Some(t), _) => run::Source::Ssh(t.clone()),
            (_, Some(d)) => run::Source::Dump(d.clone()),
            _ => run::Source::Live,
        },
        options: Options {
            mode: match a.mode {
                ModeArg::Dr => Mode::Dr,
                ModeArg::Tun => Mode::Tun,
                ModeArg::Nat => Mode::Nat,
            },
            vips: a.vips.clone(),
            director: a.role == RoleArg::Director,
            interface: a.interface.clone(),
            director_addr: a.director_addr,
        },
        json: a.json,
        fix: a.fix,
        yes: a.yes,
        fix_addresses: a.fix_addresses,
        sysctl_file: a.sysctl_file.clone(),
    };
    ExitCode::from(run::run(&r))
}

pub(crate) fn probe(p: &ProbeArgs) -> ExitCode {
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
