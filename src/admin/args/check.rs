//! The checks ipvsadm makes once a command line is parsed (which
//! options the command needs and allows, the tunnel options, the list
//! variants), and the table op a modifying command becomes.

use super::table::{OPTIONS, Rule};
use super::{Cmd, Fail, Opt, Parsed, fail};
use crate::control::proto::Op;
use crate::control::proto::ServiceDef;
use crate::lvs::service::{Forward, Persistence, Protocol, SchedFlags};

/// process_options' checks after parsing.
pub(super) fn check(p: &mut Parsed) -> Result<(), Fail> {
    let mut first_one: Option<Opt> = None;
    for d in OPTIONS {
        let o = d.opt;
        let set = p.has(o);
        match (d.rule(p.cmd), set) {
            (Rule::Required, false) => {
                return fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    o.name(),
                    p.cmd.name()
                ));
            }
            (Rule::Illegal, true) => {
                return fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    o.name(),
                    p.cmd.name()
                ));
            }
            (Rule::OneOf, true) => match first_one {
                None => first_one = Some(o),
                Some(f) => {
                    return fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        o.name(),
                        f.name(),
                        p.cmd.name()
                    ));
                }
            },
            _ => {}
        }
    }
    match p.cmd {
        Cmd::Add | Cmd::Edit => {
            if p.fwmark.is_none() && p.port == 0 && p.persistent.is_none() {
                return fail("Zero port specified for non-persistent service");
            }
            if p.has(Opt::Ops) && p.fwmark.is_none() && p.protocol != Protocol::Udp {
                return fail("One-Packet Scheduling is only for UDP virtual services");
            }
            if p.scheduler.is_empty() {
                p.scheduler = "wlc".into();
            }
            if p.has(Opt::SchedFlags) {
                p.flags = SchedFlags::parse(&p.sched_flags, &p.scheduler)
                    .or_else(|e| fail(e.to_string()))?;
            }
        }
        Cmd::AddDest | Cmd::EditDest => {
            if p.fwmark.is_none() && matches!(p.dest.forward, Forward::Route | Forward::Tunnel) {
                p.dest.port = p.port;
            }
            let tun = [
                Opt::TunType,
                Opt::TunPort,
                Opt::TunNocsum,
                Opt::TunCsum,
                Opt::TunRemcsum,
            ];
            if tun.iter().any(|o| p.has(*o)) && p.dest.forward != Forward::Tunnel {
                return fail("Tunnel options conflict with forward method");
            }
            let tun_names = ["ipip", "gue", "gre"];
            let tname = tun_names[usize::from(p.tun_type)];
            // Which of tun-port/nocsum/csum/remcsum each tunnel type allows.
            let allowed: [Rule; 4] = match p.tun_type {
                0 => [Rule::Illegal; 4],
                1 => [Rule::Required, Rule::OneOf, Rule::OneOf, Rule::OneOf],
                _ => [Rule::Illegal, Rule::OneOf, Rule::OneOf, Rule::Illegal],
            };
            let mut first: Option<Opt> = None;
            for (o, r) in tun[1..].iter().zip(allowed) {
                match (r, p.has(*o)) {
                    (Rule::Required, false) => {
                        return fail(format!(
                            "You need to supply the '{}' option for the '{tname}' tunnel type",
                            o.name()
                        ));
                    }
                    (Rule::Illegal, true) => {
                        return fail(format!(
                            "Illegal '{}' option with the '{tname}' tunnel type",
                            o.name()
                        ));
                    }
                    (Rule::OneOf, true) => match first {
                        None => first = Some(*o),
                        Some(f) => {
                            return fail(format!(
                                "The option '{}' conflicts with the '{}' option in the '{tname}' tunnel type",
                                o.name(),
                                f.name()
                            ));
                        }
                    },
                    _ => {}
                }
            }
        }
        Cmd::List => {
            let one = p.has(Opt::Connection) || p.has(Opt::Timeout) || p.has(Opt::Daemon);
            let fmt = p.has(Opt::Stats) || p.has(Opt::Rate) || p.has(Opt::Thresholds);
            if (one && fmt)
                || ((p.has(Opt::Timeout) || p.has(Opt::Daemon)) && p.has(Opt::PersistentConn))
            {
                return fail("options conflicts in the list command");
            }
        }
        _ => {}
    }
    Ok(())
}

/// A refusal for something ipvsadm accepts but uvs does not do (yet).
fn unsupported<T>(what: &str) -> Result<T, Fail> {
    fail(format!("{what} not supported by uvs"))
}

/// Turns a modifying command into a table op; `Ok(None)` for commands that
/// only read (list, save) or restore.
pub fn to_op(p: &Parsed) -> Result<Option<Op>, Fail> {
    if p.sctp {
        return unsupported("SCTP services are");
    }
    if p.has(Opt::Pe) {
        return unsupported("Persistence engines (--pe) are");
    }
    if p.has(Opt::UThreshold) || p.has(Opt::LThreshold) {
        return unsupported("Connection thresholds (-x/-y) are");
    }
    if p.tun_type != 0 {
        return unsupported("GUE and GRE tunnels (--tun-type) are");
    }
    let key = p.service_key();
    let dest = || p.dest.clone();
    let need_key = || {
        key.ok_or_else(|| Fail {
            msg: "illegal virtual server address[:port] specified".into(),
            code: 2,
        })
    };
    let def = || {
        Ok(ServiceDef {
            key: need_key()?,
            scheduler: p.scheduler.clone(),
            flags: p.flags,
            ops: p.has(Opt::Ops),
            persistent: persistence(p),
        })
    };
    Ok(Some(match p.cmd {
        Cmd::Add => Op::AddService(def()?),
        Cmd::Edit => Op::EditService(def()?),
        Cmd::Del => Op::DelService { key: need_key()? },
        Cmd::Flush => Op::Clear,
        Cmd::AddDest => Op::AddDest {
            key: need_key()?,
            dest: dest(),
        },
        Cmd::EditDest => Op::EditDest {
            key: need_key()?,
            dest: dest(),
        },
        Cmd::DelDest => Op::DelDest {
            key: need_key()?,
            addr: p.dest.addr,
            port: p.dest.port,
        },
        Cmd::Zero => Op::Zero { key },
        Cmd::Timeout => Op::SetTimeouts(p.timeouts),
        Cmd::StartDaemon | Cmd::StopDaemon => {
            return fail(
                "uvs has no separate sync daemon: directors started with --peer sync their \
                 connections themselves (uvs director --help, docs/ha.md); `uvsadm -L --daemon` \
                 shows the sync"
                    .to_string(),
            );
        }
        Cmd::List | Cmd::Save | Cmd::Restore => return Ok(None),
    }))
}

/// `-p` with `-M`'s mask (without `-M`, /32 or /128): `-M` alone is
/// kept by ipvsadm but means nothing for a service that is not
/// persistent.
fn persistence(p: &Parsed) -> Option<Persistence> {
    p.persistent.map(|timeout| Persistence {
        timeout,
        netmask: p.netmask.unwrap_or(Persistence::DEFAULT_NETMASK),
        prefix6: p.prefix6.unwrap_or(Persistence::DEFAULT_PREFIX6),
    })
}
