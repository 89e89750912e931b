//! What the translation builds: the services, their bodies and real
//! servers, each remembering the statement it came from, and the text
//! written from them.

use super::report::Place;
use crate::config::ServiceSection;
use std::net::IpAddr;
use toml::Spanned;

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
    pub addr: IpAddr,
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
    /// The `[director]` table's lines from the VRRP blocks, if any.
    pub director: Option<String>,
    pub services: Vec<Service>,
    pub bodies: Vec<Body>,
    /// `virtual_server fwmark N`s (checked for duplicates; each needs a
    /// `[[mark]]` the operator writes).
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

/// A value to write: it has no place in a file yet.
pub(super) fn written<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}
