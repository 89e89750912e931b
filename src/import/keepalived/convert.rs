//! The translation: keepalived's statements as the config's services,
//! each part remembering the statement it came from, so that what the
//! director would refuse ([`super::verify`]) is reported at its place.
//! Top-level blocks are dispatched here; [`super::service`] converts a
//! virtual server, [`super::check`] its checks.

use super::output;
use super::read::Node;
use super::report::{Place, Report, shown};
use super::service::virtual_server;
use super::statement::{block, extra, no_block, option};
use crate::config::ServiceSection;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

/// A virtual service of the output.
#[derive(Debug)]
pub(super) struct Service {
    /// The statement that gives its address (the virtual_server, or the
    /// group member).
    pub at: Place,
    pub key: crate::lvs::service::ServiceKey,
    /// Its body (shared by the members of a group).
    pub body: usize,
}

/// What a virtual_server block becomes: its `[[service]]` table, and
/// where its real servers came from.
#[derive(Debug)]
pub(super) struct Body {
    /// The table but its address, which is each service's own.
    pub section: ServiceSection,
    pub nat: bool,
    pub real_servers: Vec<RealServer>,
    pub sorry: Option<RealServer>,
}

/// A real (or sorry) server as the output has it.
#[derive(Debug, Clone)]
pub(super) struct RealServer {
    pub at: Place,
    pub addr: Ipv4Addr,
    /// The port given, if any: NAT uses it (else the service's), DR and
    /// TUN the service's.
    pub port: Option<u16>,
}

impl RealServer {
    pub fn port_for(&self, nat: bool, service_port: u16) -> u16 {
        match nat {
            true => self.port.unwrap_or(service_port),
            false => service_port,
        }
    }
}

/// The converted file: its text, and where each part came from.
#[derive(Debug, Default)]
pub(super) struct Converted {
    /// The main file, for what has no better place.
    pub file: Place,
    pub text: String,
    pub services: Vec<Service>,
    pub bodies: Vec<Body>,
    /// `virtual_server fwmark N`s (not carried over, but checked for
    /// duplicates).
    pub fwmarks: Vec<(Place, String)>,
    /// The first line in `text` of each service and real server, and its
    /// place in the input.
    pub origins: Vec<(usize, Place)>,
}

/// A member of a virtual_server_group: its address and port words.
pub(super) struct Member<'a> {
    pub at: &'a Place,
    pub words: &'a [String],
}

/// The statements' services; what has no place in uvs gets a warning.
pub(super) fn convert(path: &Path, nodes: &[Node], r: &mut Report) -> Converted {
    let mut groups: HashMap<&str, Vec<Member>> = HashMap::new();
    for n in nodes.iter().filter(|n| n.key() == "virtual_server_group") {
        if !block(n, r) {
            continue;
        }
        let Some(name) = n.arg(1) else {
            r.error(&n.at, "virtual_server_group needs a name");
            continue;
        };
        extra(n, 2, r);
        let members = n
            .children
            .iter()
            .map(|m| {
                no_block(m, r);
                Member {
                    at: &m.at,
                    words: &m.words,
                }
            })
            .collect();
        if groups.insert(name, members).is_some() {
            r.error(
                &n.at,
                format!("virtual_server_group {} is defined twice", shown(name)),
            );
        }
    }
    let mut out = Converted {
        file: Place {
            file: std::rc::Rc::from(path),
            line: 0,
        },
        ..Converted::default()
    };
    for n in nodes {
        match n.key() {
            "virtual_server_group" => {}
            "virtual_server" => virtual_server(n, &groups, &mut out, r),
            "include" => r.warn(&n.at, "include without a file"),
            k if k.starts_with("vrrp_")
                || k == "static_ipaddress"
                || k == "static_routes"
                || k == "static_rules" =>
            {
                r.warn(
                    &n.at,
                    format!(
                        "{k} is not carried over: uvs does not do VRRP. uvs answers ARP for its VIPs itself; \
                     for failover keep keepalived's VRRP (without virtual servers) until uvs has its \
                     backup director"
                    ),
                )
            }
            "global_defs" => r.warn(
                &n.at,
                "global_defs is not carried over (nothing in it applies to uvs)",
            ),
            _ => r.warn(&n.at, format!("{} is not carried over", option(n))),
        }
    }
    output::render(&mut out, r);
    out
}
