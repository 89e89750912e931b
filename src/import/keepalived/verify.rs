//! What the director would refuse in the converted config, found at
//! import with its place in keepalived.conf: the same virtual server
//! twice (protocol, address and port, or firewall mark), the same real
//! server twice in a service (DR and TUN servers take the service's port,
//! so two ports of one address are one server), and an address that is
//! both a VIP and a real server. Then, as the last word, the director's
//! own checks run on the output ([`crate::config::parse`] and the table
//! model), so whatever else they refuse is reported too, at the place the
//! refused part came from.

use super::converted::{Converted, RealServer};
use super::report::{Place, Report};
use crate::control::proto::Op;
use crate::control::proto::ServiceDef;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Duplicates and VIP/real-server clashes, each an error.
pub(super) fn identities(c: &Converted, r: &mut Report) {
    let mut marks: HashMap<&str, &Place> = HashMap::new();
    for (at, mark) in &c.fwmarks {
        if let Some(first) = marks.insert(mark, at) {
            r.error(
                at,
                format!("virtual_server fwmark {mark} is defined twice (first at {first})"),
            );
            marks.insert(mark, first);
        }
    }
    let mut keys = HashMap::new();
    // Marks are checked above, by their words.
    for s in c.services.iter().filter(|s| s.key.fwmark().is_none()) {
        let k = s.key;
        if let Some(first) = keys.insert(k, &s.at) {
            r.error(
                &s.at,
                format!(
                    "virtual server {} {} is defined twice (first at {first})",
                    k.protocol.name(),
                    SocketAddr::new(k.addr, k.port)
                ),
            );
            keys.insert(k, first);
        }
    }
    // Each body once per service port it serves (the members of a group
    // may differ), each real server reported once.
    let mut reported: Vec<&Place> = Vec::new();
    for s in &c.services {
        let b = &c.bodies[s.body];
        let mut seen: HashMap<(IpAddr, u16), &Place> = HashMap::new();
        for rs in &b.real_servers {
            let port = rs.port_for(b.nat, s.key.port);
            match seen.get(&(rs.addr, port)) {
                Some(first) if !reported.contains(&&rs.at) => {
                    reported.push(&rs.at);
                    let why = match b.nat {
                        true => "",
                        false => "; DR and TUN send to the service's port, whatever port is given",
                    };
                    r.error(
                        &rs.at,
                        format!(
                            "real server {} is listed twice in virtual server {} \
                             (first at {first}{why})",
                            SocketAddr::new(rs.addr, port),
                            SocketAddr::new(s.key.addr, s.key.port)
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    seen.insert((rs.addr, port), &rs.at);
                }
            }
        }
    }
    let vips: HashMap<IpAddr, &Place> = c
        .services
        .iter()
        .rev()
        .filter(|s| s.key.fwmark().is_none())
        .map(|s| (s.key.addr, &s.at))
        .collect();
    let mut clashes: Vec<&Place> = Vec::new();
    for b in &c.bodies {
        for rs in b.real_servers.iter().chain(&b.sorry) {
            if let Some(v) = vips.get(&rs.addr)
                && !clashes.contains(&&rs.at)
            {
                clashes.push(&rs.at);
                r.error(
                    &rs.at,
                    format!(
                        "real server {} is also a virtual server's address (at {v}): the director \
                         refuses it, as its traffic would loop back to the director",
                        rs.addr
                    ),
                );
            }
        }
    }
}

/// Loads the output as the director does (the file's checks, then the
/// table's), with a stand-in for the host's answers (MAC addresses, the
/// tunnel source): an error for what they refuse, at its origin.
pub(super) fn director_accepts(c: &Converted, r: &mut Report) {
    // With the marks the operator is asked to define.
    // With the mark services uncommented and the marks the operator is
    // asked to define.
    let prefix = super::output::SERVICE_PREFIX;
    let lines = c.text.lines().map(|l| l.strip_prefix(prefix).unwrap_or(l));
    let text: String = lines.flat_map(|l| [l, "\n"]).collect();
    let text = format!("{text}{}", super::output::stand_in_marks(c));
    let cfg = match crate::config::parse(std::path::Path::new("imported.toml"), text.as_bytes()) {
        Ok(cfg) => cfg,
        Err(e) => {
            let at = c
                .origins
                .iter()
                .rev()
                .find(|(line, _)| *line <= e.line)
                .map_or(&c.file, |(_, p)| p);
            report(r, at, &e.msg);
            return;
        }
    };
    let ops = cfg.ops_from(&crate::config::Config::default());
    let model = crate::control::model::Model::with_tun_source(Some(Ipv4Addr::new(192, 0, 2, 1)));
    let mut mac = |_: std::net::IpAddr, _| {
        Ok(crate::lvs::table::NextHop {
            link: 0,
            mac: crate::wire::MacAddr([2, 0, 0, 0, 0, 1]),
        })
    };
    if let Err((i, e)) = model.apply_all(&ops, &mut mac, &mut |_, _| {}) {
        let at = ops.get(i).and_then(|op| origin(c, op));
        report(r, at.as_ref().unwrap_or(&c.file), &e.to_string());
    }
}

fn report(r: &mut Report, at: &Place, msg: &str) {
    r.error(
        at,
        format!("the director would refuse the imported config: {msg}"),
    );
}

/// Where an op's service or real server came from.
fn origin(c: &Converted, op: &Op) -> Option<Place> {
    let (key, dest) = match op {
        Op::AddService(ServiceDef { key, .. }) | Op::EditService(ServiceDef { key, .. }) => {
            (key, None)
        }
        Op::AddDest { key, dest } | Op::EditDest { key, dest } => (key, Some(dest)),
        _ => return None,
    };
    let s = c.services.iter().find(|s| s.key == *key)?;
    let b = &c.bodies[s.body];
    let rs: Option<&RealServer> = dest.and_then(|d| {
        b.real_servers
            .iter()
            .find(|x| x.addr == d.addr && x.port_for(b.nat, key.port) == d.port)
    });
    Some(rs.map_or(&s.at, |x| &x.at).clone())
}
